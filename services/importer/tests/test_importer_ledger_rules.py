"""What the import makes of a file's rows, before anything is stored (issue 10).

Small hand-made SIE files through :func:`read_ledger` and :class:`LedgerCheck`, the
path every import takes: rows the books do not depend on are skipped with a notice,
notices carry a code of their own, and per-object and previous-year balances are kept.
"""

from __future__ import annotations

import io
from decimal import Decimal

import pytest

from ledgerlink.importer.domain.ledger import (
    ComparisonBalance,
    FileParseError,
    LedgerCheck,
    LedgerNotice,
    ObjectBalance,
    Reconciliation,
    read_ledger,
)

HEADER = (
    "#FLAGGA 0",
    "#FORMAT PC8",
    "#GEN 20240110",
    "#SIETYP 4",
    "#ORGNR 5560000001",
    '#FNAMN "Test AB"',
    "#RAR 0 20240101 20241231",
    '#KONTO 1930 "Bank"',
    '#KONTO 3010 "Sales"',
)
VOUCHER = ('#VER A 1 20240105 "Sale"', "{", "#TRANS 1930 {} 100.00", "#TRANS 3010 {} -100.00", "}")


def sie(*lines: str, encoding: str = "cp437") -> bytes:
    return "\r\n".join(lines).encode(encoding) + b"\r\n"


def check(data: bytes) -> tuple[LedgerCheck, Reconciliation]:
    checked = LedgerCheck()
    for item in read_ledger(io.BytesIO(data), filename="t.se"):
        checked.take(item)
    return checked, checked.finish()


def notices(checked: LedgerCheck, code: str) -> list[LedgerNotice]:
    return [n for n in checked.notices if n.code == code]


# ------------------------------------------------------- rows the books do not use


def test_malformed_informational_rows_are_skipped_with_a_notice_and_their_line() -> None:
    data = sie(
        *HEADER,
        "#TAXAR 20x5",  # line 10
        "#PBUDGET 0 202401 1930 {} lots",  # line 11
        "#BUDGET 0 3010 {} -1,5",  # line 12
        "#PBUDGET 0 202402 1930 {} 10.00",  # line 13: a good budget row
        *VOUCHER,
    )

    checked, reconciliation = check(data)

    assert checked.voucher_count == 1
    assert reconciliation.status == "not_available"  # the file has no closing balances
    skipped = notices(checked, "informational_row_skipped")
    assert [(n.location, n.message) for n in skipped] == [
        (
            "t.se line 10",
            "#TAXAR field 'year' is not an integer: '20x5': the row is skipped (it is not "
            "part of the books)",
        ),
        (
            "t.se line 11",
            "#PBUDGET field 'amount' is not a valid amount: 'lots': the row is skipped (it "
            "is not part of the books)",
        ),
        (
            "t.se line 12",
            "#BUDGET field 'amount' is not a valid amount: '-1,5': the row is skipped (it is "
            "not part of the books)",
        ),
    ]


def test_a_blank_and_a_missing_sru_code_are_the_same_thing() -> None:
    data = sie(*HEADER, '#SRU 1930 " "', "#SRU 3010", "#SRU 3010 7410", *VOUCHER)

    checked, _ = check(data)

    skipped = notices(checked, "informational_row_skipped")
    assert [(n.location, n.message) for n in skipped] == [
        (
            f"t.se line {line}",
            f"#SRU of account {account} has no code: the row is skipped "
            "(it is not part of the books)",
        )
        for line, account in ((10, "1930"), (11, "3010"))
    ]
    assert checked.accounts["1930"].sru_code is None
    assert checked.accounts["3010"].sru_code == "7410"


def test_a_malformed_period_balance_still_refuses_the_file() -> None:
    # #PSALDO is a balance of the books, not a plan: it stays strict.
    with pytest.raises(FileParseError, match="#PSALDO field 'amount' is not a valid amount"):
        check(sie(*HEADER, "#PSALDO 0 202401 1930 {} lots", *VOUCHER))


def test_a_non_numeric_account_is_imported_with_a_notice() -> None:
    data = sie(
        *HEADER,
        '#KONTO K1 "Kassa"',  # line 10
        '#VER A 1 20240105 "Sale"',
        "{",
        "#TRANS K1 {} 100.00",
        "#TRANS 3010 {} -100.00",
        "}",
    )

    checked, _ = check(data)

    assert checked.voucher_count == 1
    [notice] = notices(checked, "non_numeric_account")
    assert notice.location == "t.se line 10"
    assert "account 'K1' (Kassa) is not a number" in notice.message
    assert "trial balance only" in notice.message


def test_a_voucher_without_its_series_names_the_series() -> None:
    data = sie(*HEADER, '#VER 1 20240105 "Sale"', "{", "#TRANS 1930 {} 1.00", "}")

    with pytest.raises(FileParseError) as raised:
        check(data)

    assert raised.value.location == "t.se line 10"
    assert raised.value.message == (
        "#VER field 'series' is missing: '1' stands where the series goes and the date "
        '20240105 where the number goes; an empty series is written ""'
    )


def test_content_read_as_utf8_despite_pc8_has_its_own_code() -> None:
    data = sie(*HEADER, '#KONTO 1510 "Kundfordringar för året"', *VOUCHER, encoding="utf-8")

    checked, _ = check(data)

    [notice] = notices(checked, "encoding_detected")
    assert notice.message == "#FORMAT PC8, but the content reads as utf-8"
    assert notice.location == "t.se line 10"
    assert notices(checked, "unknown_tag") == []


def test_unknown_labels_keep_their_code() -> None:
    checked, _ = check(sie(*HEADER, "#FUTURELABEL 1", *VOUCHER))

    assert [n.message for n in notices(checked, "unknown_tag")] == [
        "unknown label #FUTURELABEL ignored"
    ]


# ------------------------------------------------- what the files say, kept


def test_object_balances_are_kept_and_reconciled_per_object() -> None:
    data = sie(
        *HEADER,
        '#DIM 1 "Cost centre"',
        '#OBJEKT 1 "100" "Sales"',
        '#OIB 0 3010 {1 "100"} -40.00',
        '#OUB 0 3010 {1 "100"} -140.00',
        '#OIB 0 1930 {1 "100"} 40.00',
        '#OUB 0 1930 {1 "100"} 150.00',  # 40 + 100 is 140, not 150
        '#OUB 0 1930 {1 "100" 6 "P1"} 1.00',  # a combination: not kept
        "#IB 0 1930 500.00",
        "#UB 0 1930 600.00",
        "#RES 0 3010 -100.00",
        '#VER A 1 20240105 "Sale"',
        "{",
        '#TRANS 1930 {1 "100"} 100.00',
        '#TRANS 3010 {1 "100"} -100.00',
        "}",
    )

    checked, reconciliation = check(data)

    assert reconciliation.status == "balanced"
    assert checked.object_balances == {
        ("1930", "1", "100"): ObjectBalance(
            "1930", "1", "100", Decimal("40.00"), Decimal("150.00")
        ),
        ("3010", "1", "100"): ObjectBalance(
            "3010", "1", "100", Decimal("-40.00"), Decimal("-140.00")
        ),
    }
    [difference] = notices(checked, "object_balance_difference")
    assert difference.message == (
        "account 1930, object 100 of dimension 1: opening 40.00 + movements 100.00 = "
        "140.00, but the file's closing balance is 150.00 (difference -10.00)"
    )
    [skipped] = notices(checked, "object_balance_skipped")
    assert skipped.location == "t.se line 16"


def test_previous_year_balances_are_kept_for_the_comparison_year() -> None:
    data = sie(
        *HEADER,
        "#RAR -1 20230101 20231231",
        "#IB -1 1930 300.00",
        "#UB -1 1930 500.00",
        "#RES -1 3010 -200.00",
        "#IB 0 1930 500.00",
        *VOUCHER,
    )

    checked, _ = check(data)

    assert checked.comparison == {
        "1930": ComparisonBalance("1930", Decimal("300.00"), Decimal("500.00")),
        "3010": ComparisonBalance("3010", None, Decimal("-200.00")),
    }
    assert set(checked.balances) == {"1930"}  # the current year's balances are apart
