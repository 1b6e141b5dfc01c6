"""AnswerReader: every shape mismatch is an UnexpectedResponse naming vendor, endpoint, field."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from ledgerlink.connectors.answers import AnswerReader
from ledgerlink.connectors.errors import ConnectorError, UnexpectedResponse

READER = AnswerReader("acme", "GET /things", status=200)


def test_reads_typed_fields_and_ignores_unknown_ones() -> None:
    body = {"id": 7, "day": "2025-01-31", "sum": Decimal("-17.18"), "kind": "A", "extra": [1]}
    assert READER.integer(body, "id", "") == 7
    assert READER.string(body, "id", "") == "7"
    assert READER.iso_date(body, "day", "") == dt.date(2025, 1, 31)
    assert READER.number(body, "sum", "") == Decimal("-17.18")
    assert READER.choice(body, "kind", "", {"A", "B"}) == "A"
    assert READER.boolean(body, "flag", "", default=True) is True
    assert READER.decimal_text("-1 017,18", "x", comma=True) == Decimal("-1017.18")
    assert READER.date_text("31.1.2024", "x", formats=("%d.%m.%Y",)) == dt.date(2024, 1, 31)


@pytest.mark.parametrize(
    ("read", "detail"),
    [
        (lambda: READER.field({}, "id", "results[3]"), "results[3].id is missing"),
        (lambda: READER.integer({"id": "7"}, "id", ""), "id is text, not an integer"),
        (lambda: READER.number({"v": True}, "v", "t"), "t.v is a boolean, not a number"),
        (lambda: READER.mapping([], "body"), "body is a list, not an object"),
        (lambda: READER.items({}, "body"), "body is an object, not a list"),
        (lambda: READER.choice({"s": "NEW"}, "s", "", {"A"}), "s has the unknown value 'NEW'"),
        (lambda: READER.iso_date({"d": "yesterday"}, "d", ""), "d is not a date"),
        (lambda: READER.decimal_text("1,2,3", "x", comma=True), "x is not a number"),
        (lambda: READER.decimal_text("NaN", "x"), "x is not a finite number"),
        (lambda: READER.required_text("  ", "Voucher.Date"), "Voucher.Date is missing"),
    ],
)
def test_every_mismatch_is_unexpected_response(read: object, detail: str) -> None:
    with pytest.raises(UnexpectedResponse) as caught:
        read()  # type: ignore[operator]
    error = caught.value
    assert isinstance(error, ConnectorError)
    assert (error.vendor, error.endpoint, error.status) == ("acme", "GET /things", 200)
    assert detail in error.detail
    assert "GET /things" in str(error)
