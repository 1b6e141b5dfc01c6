"""Netvisor answers are parsed by the C parser behind defusedxml's rules, checked on the
bytes: no DTD, no entity, an ASCII-compatible encoding. And the one-pass voucher reader
gives what the element-by-element one gave."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from ledgerlink.connectors.answers import AnswerReader
from ledgerlink.connectors.errors import UnexpectedResponse
from ledgerlink.connectors.netvisor import (
    _ledger_vouchers,
    _parse_document,
    _parse_voucher,
    _voucher_digest,
)

_OK = "<ResponseStatus><Status>OK</Status></ResponseStatus>"


def _doc(body: str, *, declaration: str = 'encoding="ISO-8859-15"') -> bytes:
    return f'<?xml version="1.0" {declaration}?>\n<Root>{_OK}{body}</Root>'.encode("iso-8859-15")


def test_an_iso_8859_15_answer_with_the_euro_sign_parses() -> None:
    root = _parse_document(_doc("<Vouchers><Voucher><VoucherDescription>10 €</VoucherDescription>"
                                "</Voucher></Vouchers>"))  # fmt: skip
    assert root is not None
    assert root.findtext("Vouchers/Voucher/VoucherDescription") == "10 €"


@pytest.mark.parametrize(
    "content",
    [
        # entity expansion (billion laughs) and external entities need a DTD
        b'<?xml version="1.0"?><!DOCTYPE Root [<!ENTITY a "aaaa">]><Root>&a;</Root>',
        b'<?xml version="1.0"?><!DOCTYPE Root SYSTEM "http://example.invalid/x.dtd"><Root/>',
        # a DTD the byte search could not see: UTF-16, with and without a BOM
        '<?xml version="1.0" encoding="UTF-16"?><!DOCTYPE Root><Root/>'.encode("utf-16"),
        '<?xml version="1.0" encoding="UTF-16"?><Root/>'.encode("utf-16-le"),
        # a declared encoding outside the ASCII-compatible ones Netvisor uses
        b'<?xml version="1.0" encoding="cp500"?><Root/>',
        # not well-formed
        b"<Root><Vouchers></Root>",
        b"",
    ],
)
def test_unsafe_or_broken_documents_are_refused(content: bytes) -> None:
    assert _parse_document(content) is None


def test_the_one_pass_reader_keeps_first_fields_lines_and_dimensions() -> None:
    root = _parse_document(
        _doc(
            '<Vouchers><Voucher Status="valid"><NetvisorKey> 17 </NetvisorKey>'
            "<VoucherDate>3.1.2025</VoucherDate><VoucherNumber>5</VoucherNumber>"
            "<VoucherDescription>first</VoucherDescription>"
            "<VoucherDescription>second</VoucherDescription><VoucherClass>Muistio</VoucherClass>"
            "<VoucherLine><LineSum>-1 234,50</LineSum><AccountNumber>3000</AccountNumber>"
            "<VatCode>-</VatCode><Dimension><DimensionName>Projekti</DimensionName>"
            "<DimensionItem>P1</DimensionItem></Dimension><Dimension><DimensionName>Tyhjä"
            "</DimensionName><DimensionItem> </DimensionItem></Dimension></VoucherLine>"
            '<VoucherLine Status="invalidated"><LineSum>1,00</LineSum>'
            "<AccountNumber>1910</AccountNumber></VoucherLine>"
            "<VoucherLine><LineSum>1234,50</LineSum><AccountNumber>1910</AccountNumber>"
            "<VatCode>ALV24</VatCode><Description>x</Description></VoucherLine>"
            "</Voucher></Vouchers>"
        )
    )
    assert root is not None
    element = root.find("Vouchers/Voucher")
    assert element is not None
    voucher = _parse_voucher(AnswerReader("netvisor", "GET accountingledger.nv"), element, "V")
    assert (voucher.external_id, voucher.number, voucher.series) == ("17", "5", "Muistio")
    assert voucher.date == dt.date(2025, 1, 3)
    assert voucher.description == "first"
    assert [(line.account, line.amount) for line in voucher.lines] == [
        ("3000", Decimal("-1234.50")),
        ("1910", Decimal("1234.50")),
    ]
    assert voucher.lines[0].dimensions == {"Projekti": "P1"}
    assert voucher.lines[0].vat_code is None
    assert (voucher.lines[1].vat_code, voucher.lines[1].description) == ("ALV24", "x")
    assert voucher.balance == 0


@pytest.mark.parametrize(
    ("date", "detail"),
    [("2025-13-01", "VoucherDate is not a date"), ("", "VoucherDate is missing"),
     ("31.2.2025", "VoucherDate is not a date")],
)  # fmt: skip
def test_a_bad_voucher_date_is_named(date: str, detail: str) -> None:
    root = _parse_document(
        _doc(f"<Vouchers><Voucher><NetvisorKey>1</NetvisorKey><VoucherDate>{date}"
             "</VoucherDate></Voucher></Vouchers>")
    )  # fmt: skip
    assert root is not None
    element = root.find("Vouchers/Voucher")
    assert element is not None
    with pytest.raises(UnexpectedResponse, match=detail):
        _parse_voucher(AnswerReader("netvisor", "GET accountingledger.nv"), element, "V")


def _ledger(vouchers: int) -> bytes:
    body = "".join(
        f"<Voucher><NetvisorKey>{n}</NetvisorKey><VoucherDate>1.2.2025</VoucherDate>"
        f"<VoucherLine><LineSum>{n},00</LineSum><AccountNumber>1910</AccountNumber>"
        f"</VoucherLine><VoucherLine><LineSum>-{n},00</LineSum><AccountNumber>3000"
        "</AccountNumber></VoucherLine></Voucher>\n  "
        for n in range(1, vouchers + 1)
    )
    return _doc(f"<Vouchers>{body}</Vouchers><Other><Voucher/></Other>")


def test_ledger_vouchers_are_read_with_their_digests_on_demand() -> None:
    content = _ledger(300)
    read = AnswerReader("netvisor", "GET accountingledger.nv")
    root = _parse_document(content)
    assert root is not None
    whole = [
        (_parse_voucher(read, element, "V"), _voucher_digest(element))
        for element in root.findall("Vouchers/Voucher")
    ]
    # The Voucher outside Root/Vouchers is not one; digests ignore the text between vouchers.
    assert _ledger_vouchers(read, content, lambda key: True) == whole
    only_some = _ledger_vouchers(read, content, {"2", "7"}.__contains__)
    assert [key.external_id for key, digest in only_some if digest] == ["2", "7"]


@pytest.mark.parametrize(
    ("content", "detail"),
    [
        (_ledger(3)[:-40], "not well-formed"),
        (_doc("<Voucher/>"), "Root/Vouchers is missing"),
        (b'<?xml version="1.0"?><!DOCTYPE Root><Root/>', "not acceptable XML"),
        (b"<Other><Vouchers/></Other>", "not Root"),
    ],
)
def test_ledger_answers_outside_the_contract_are_named(content: bytes, detail: str) -> None:
    with pytest.raises(UnexpectedResponse, match=detail):
        _ledger_vouchers(AnswerReader("netvisor", "GET x"), content, lambda key: False)


def test_the_digest_sees_every_text_and_attribute_and_not_the_layout() -> None:
    def digest(voucher: str) -> str:
        root = _parse_document(_doc(f"<Vouchers>{voucher}</Vouchers>"))
        assert root is not None
        element = root.find("Vouchers/Voucher")
        assert element is not None
        return _voucher_digest(element)

    base = digest('<Voucher Status="valid"><NetvisorKey>1</NetvisorKey><X>a</X></Voucher>')
    assert base == digest(
        '<Voucher Status="valid">\n  <NetvisorKey>1</NetvisorKey>\n  <X>a</X>\n</Voucher>'
    )
    for changed in (
        '<Voucher Status="invalidated"><NetvisorKey>1</NetvisorKey><X>a</X></Voucher>',
        '<Voucher Status="valid"><NetvisorKey>1</NetvisorKey><X>b</X></Voucher>',
        '<Voucher Status="valid"><NetvisorKey>1</NetvisorKey><Y>a</Y></Voucher>',
        '<Voucher Status="valid"><NetvisorKey>1</NetvisorKey><X>a</X><X/></Voucher>',
    ):
        assert digest(changed) != base
