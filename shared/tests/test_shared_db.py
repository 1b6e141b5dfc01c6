"""UTC handling at the edge of the stores."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from pydantic import TypeAdapter

from ledgerlink.shared.db import UtcDatetime, as_utc


def test_naive_time_is_taken_as_utc() -> None:
    assert as_utc(datetime(2026, 11, 21, 10, 0)) == datetime(2026, 11, 21, 10, 0, tzinfo=UTC)


def test_aware_time_is_converted_to_utc() -> None:
    helsinki = timezone(timedelta(hours=2))
    converted = as_utc(datetime(2026, 11, 21, 12, 0, tzinfo=helsinki))
    assert converted.utcoffset() == timedelta(0)
    assert converted.hour == 10


def test_api_datetime_is_rendered_with_its_offset() -> None:
    adapter = TypeAdapter(UtcDatetime)
    assert adapter.dump_json(adapter.validate_python(datetime(2026, 1, 2, 3, 4, 5))) == (
        b'"2026-01-02T03:04:05Z"'
    )
