"""CloudEvents 1.0 in Kafka binary content mode: headers out, headers in, every refusal."""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta, timezone

import pytest

from ledgerlink.shared.envelope import CONTENT_TYPE, SPECVERSION, CloudEvent, EnvelopeError

EVENT_TIME = datetime(2024, 3, 1, 12, 30, 15, 123456, tzinfo=UTC)


def _event(*, subject: str | None = "1234567-8") -> CloudEvent:
    return CloudEvent(
        id="6c1a1bb8-5a4b-4bb7-9d4e-1d0c0f4a0e01",
        source="ledgerlink/auth",
        type="ledgerlink.connection.activated.v1",
        time=EVENT_TIME,
        subject=subject,
    )


def _valid_headers() -> dict[str, str]:
    return {name: value.decode() for name, value in _event().to_headers()}


def test_to_headers_binary_content_mode() -> None:
    headers = _event().to_headers()

    assert headers == [
        ("ce_specversion", b"1.0"),
        ("ce_id", b"6c1a1bb8-5a4b-4bb7-9d4e-1d0c0f4a0e01"),
        ("ce_source", b"ledgerlink/auth"),
        ("ce_type", b"ledgerlink.connection.activated.v1"),
        ("ce_time", b"2024-03-01T12:30:15.123456+00:00"),
        ("ce_subject", b"1234567-8"),
        ("content-type", b"application/json"),
    ]


def test_optional_attributes_are_left_out() -> None:
    event = CloudEvent(id="e1", source="s", type="t")

    names = [name for name, _ in event.to_headers()]

    assert names == ["ce_specversion", "ce_id", "ce_source", "ce_type", "content-type"]
    assert CloudEvent.from_headers(event.to_headers()) == event


def test_new_gives_random_id_and_current_utc_time() -> None:
    before = datetime.now(UTC)
    first = CloudEvent.new(source="ledgerlink/test", type="x.v1", subject="s")
    second = CloudEvent.new(source="ledgerlink/test", type="x.v1")
    after = datetime.now(UTC)

    assert first.id != second.id
    assert uuid.UUID(first.id).version == 4
    assert first.time is not None
    assert first.time.tzinfo is not None
    assert before <= first.time <= after
    assert first.specversion == SPECVERSION
    assert first.datacontenttype == CONTENT_TYPE
    assert first.subject == "s"
    assert second.subject is None


def test_round_trip_bytes_list() -> None:
    event = _event()

    assert CloudEvent.from_headers(event.to_headers()) == event


def test_round_trip_str_list() -> None:
    event = _event()
    headers = [(name, value.decode()) for name, value in event.to_headers()]

    assert CloudEvent.from_headers(headers) == event


def test_round_trip_bytes_mapping() -> None:
    event = _event()

    assert CloudEvent.from_headers(dict(event.to_headers())) == event


def test_round_trip_str_mapping() -> None:
    event = _event()

    parsed = CloudEvent.from_headers(_valid_headers())

    assert parsed == event
    assert parsed.time == EVENT_TIME


def test_round_trip_tuple_of_tuples_as_aiokafka_delivers() -> None:
    event = _event(subject=None)

    assert CloudEvent.from_headers(tuple(event.to_headers())) == event


def test_header_names_are_case_insensitive_and_unrelated_headers_ignored() -> None:
    headers: dict[str, bytes | str | None] = {
        name.upper(): value for name, value in _valid_headers().items()
    }
    headers["traceparent"] = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    headers["x-unrelated"] = None

    assert CloudEvent.from_headers(headers) == _event()


def test_content_type_with_parameters_is_accepted_and_kept() -> None:
    headers = _valid_headers()
    headers["content-type"] = "Application/JSON; charset=utf-8"

    parsed = CloudEvent.from_headers(headers)

    assert parsed.datacontenttype == "Application/JSON; charset=utf-8"


def test_missing_content_type_defaults_to_json() -> None:
    headers = _valid_headers()
    del headers["content-type"]

    assert CloudEvent.from_headers(headers).datacontenttype == CONTENT_TYPE


def test_ce_time_with_z_suffix_and_offset() -> None:
    headers = _valid_headers()
    headers["ce_time"] = "2024-03-01T12:30:15Z"
    assert CloudEvent.from_headers(headers).time == datetime(2024, 3, 1, 12, 30, 15, tzinfo=UTC)

    headers["ce_time"] = "2024-03-01T14:30:15+02:00"
    parsed = CloudEvent.from_headers(headers).time
    assert parsed == datetime(2024, 3, 1, 14, 30, 15, tzinfo=timezone(timedelta(hours=2)))
    assert parsed == datetime(2024, 3, 1, 12, 30, 15, tzinfo=UTC)


@pytest.mark.parametrize(
    ("removed", "named"),
    [
        (("ce_id",), "ce_id"),
        (("ce_specversion",), "ce_specversion"),
        (("ce_source", "ce_type"), "ce_source, ce_type"),
        (("ce_specversion", "ce_id", "ce_source", "ce_type"), "ce_specversion, ce_id"),
    ],
)
def test_missing_headers_are_named(removed: tuple[str, ...], named: str) -> None:
    headers = {name: value for name, value in _valid_headers().items() if name not in removed}

    with pytest.raises(EnvelopeError, match="missing CloudEvents header") as caught:
        CloudEvent.from_headers(headers)

    assert named in str(caught.value)
    for present in {"ce_specversion", "ce_id", "ce_source", "ce_type"} - set(removed):
        assert present not in str(caught.value)


def test_none_valued_header_counts_as_missing() -> None:
    headers: dict[str, str | None] = dict(_valid_headers())
    headers["ce_source"] = None

    with pytest.raises(EnvelopeError, match=r"missing CloudEvents header\(s\): ce_source$"):
        CloudEvent.from_headers(headers)


def test_no_headers_at_all() -> None:
    with pytest.raises(EnvelopeError, match="ce_specversion, ce_id, ce_source, ce_type"):
        CloudEvent.from_headers([])


@pytest.mark.parametrize("version", ["0.3", "1.1", "", "1"])
def test_wrong_specversion(version: str) -> None:
    headers = _valid_headers()
    headers["ce_specversion"] = version

    with pytest.raises(EnvelopeError, match="unsupported ce_specversion") as caught:
        CloudEvent.from_headers(headers)

    assert repr(version) in str(caught.value)
    assert "'1.0'" in str(caught.value)


@pytest.mark.parametrize(
    "content_type", ["text/plain", "application/cloudevents+json", "application/xml", ""]
)
def test_wrong_content_type(content_type: str) -> None:
    headers = _valid_headers()
    headers["content-type"] = content_type

    with pytest.raises(EnvelopeError, match="unsupported content-type") as caught:
        CloudEvent.from_headers(headers)

    assert repr(content_type) in str(caught.value)


@pytest.mark.parametrize("bad_time", ["yesterday", "2024-13-01T00:00:00Z", "not-a-time"])
def test_invalid_ce_time(bad_time: str) -> None:
    headers = _valid_headers()
    headers["ce_time"] = bad_time

    with pytest.raises(EnvelopeError, match="invalid CloudEvents header") as caught:
        CloudEvent.from_headers(headers)

    assert "ce_time:" in str(caught.value)


def test_empty_id_is_refused_with_the_attribute_named() -> None:
    headers = _valid_headers()
    headers["ce_id"] = ""

    with pytest.raises(EnvelopeError, match=r"ce_id: String should have at least 1 character"):
        CloudEvent.from_headers(headers)


def test_too_long_subject_refused() -> None:
    headers = _valid_headers()
    headers["ce_subject"] = "s" * 501

    with pytest.raises(EnvelopeError, match="ce_subject"):
        CloudEvent.from_headers(headers)


def test_non_utf8_ce_header() -> None:
    headers = list(_event().to_headers())
    headers[1] = ("ce_id", b"\xff\xfe\x00id")

    with pytest.raises(EnvelopeError, match="header 'ce_id' is not valid UTF-8"):
        CloudEvent.from_headers(headers)


def test_unrelated_binary_header_does_not_invalidate_event() -> None:
    headers = [*_event().to_headers(), ("x-schema-fingerprint", b"\x00\x9f\xff")]

    assert CloudEvent.from_headers(headers) == _event()


def test_envelope_error_is_a_value_error() -> None:
    assert issubclass(EnvelopeError, ValueError)


def test_cloud_event_is_frozen_and_closed() -> None:
    event = _event()
    with pytest.raises(ValueError, match="frozen"):
        event.id = "other"  # type: ignore[misc]
    with pytest.raises(ValueError, match="Extra inputs are not permitted"):
        CloudEvent.model_validate({"id": "a", "source": "b", "type": "c", "extension": "d"})


def test_from_headers_accepts_generic_mapping() -> None:
    class Headers(Mapping[str, bytes]):
        def __init__(self, items: list[tuple[str, bytes]]) -> None:
            self._items = dict(items)

        def __getitem__(self, key: str) -> bytes:
            return self._items[key]

        def __iter__(self) -> Iterator[str]:
            return iter(self._items)

        def __len__(self) -> int:
            return len(self._items)

    assert CloudEvent.from_headers(Headers(_event().to_headers())) == _event()
