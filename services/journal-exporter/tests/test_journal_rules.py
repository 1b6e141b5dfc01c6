"""Unit tests for ledgerlink.journal_exporter.domain.journal_rules."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

import pytest

from ledgerlink.journal_exporter.domain.journal_rules import (
    JournalLineInput,
    JournalProblem,
    journal_totals,
    validate_journal,
)


def fullwidth(text: str) -> str:
    """``text`` with ASCII digits replaced by full-width digits (U+FF10..U+FF19)."""
    return "".join(chr(ord(c) - ord("0") + 0xFF10) if "0" <= c <= "9" else c for c in text)


def arabic_indic(text: str) -> str:
    """``text`` with ASCII digits replaced by Arabic-Indic digits (U+0660..U+0669)."""
    return "".join(chr(ord(c) - ord("0") + 0x0660) if "0" <= c <= "9" else c for c in text)


@dataclass(frozen=True)
class Line:
    """Frozen test implementation of the JournalLineInput protocol."""

    account: str
    debit: str = "0"
    credit: str = "0"
    cost_center: str | None = None
    cost_unit: str | None = None
    description: str | None = None


@dataclass
class MutableLine:
    """A plain mutable class satisfies the protocol as well."""

    account: str
    debit: str
    credit: str
    cost_center: str | None
    cost_unit: str | None
    description: str | None


def dr(account: str, amount: str) -> Line:
    return Line(account, debit=amount, credit="0")


def cr(account: str, amount: str) -> Line:
    return Line(account, debit="0", credit=amount)


BALANCED: list[JournalLineInput] = [
    Line("5000", "4200.00", "0", "CC-10", "CU-1", "Salaries May"),
    Line("5700", "1020.50", "0", "CC-10", None, "Employer social security"),
    cr("2710", "1300.00"),
    cr("2730", "1020.50"),
    cr("1930", "2900.00"),
]


def codes(problems: Sequence[JournalProblem]) -> list[str]:
    return [p.code for p in problems]


def only(problems: Sequence[JournalProblem]) -> JournalProblem:
    assert len(problems) == 1, problems
    return problems[0]


# --- valid journals -------------------------------------------------------------------


def test_balanced_journal_has_no_problems() -> None:
    assert validate_journal("2024-05", BALANCED) == []


def test_mutable_lines_and_missing_optional_fields() -> None:
    lines = [
        MutableLine("5000", "10", "0", None, None, None),
        MutableLine("1930", "0", "10", None, None, None),
    ]
    assert validate_journal("2024-05", lines) == []


def test_correction_of_an_earlier_period_is_valid() -> None:
    assert validate_journal("2024-05", BALANCED, corrects_period="2024-04") == []
    assert validate_journal("2024-01", BALANCED, corrects_period="2023-12") == []
    assert validate_journal("2999-12", BALANCED, corrects_period="1900-01") == []


@pytest.mark.parametrize("amount", ["0.5", "0.50", "5", "5.0", "5.00", "007", "1234567.89"])
def test_accepted_amount_forms(amount: str) -> None:
    assert validate_journal("2024-05", [dr("5000", amount), cr("1930", amount)]) == []


# --- no_lines -------------------------------------------------------------------------


def test_no_lines() -> None:
    problem = only(validate_journal("2024-05", []))
    assert problem == JournalProblem("no_lines", "journal has no lines", None)


def test_no_lines_is_reported_with_period_problems() -> None:
    assert codes(validate_journal("2024-13", [], corrects_period="bad")) == [
        "invalid_period",
        "invalid_corrects_period",
        "no_lines",
    ]


# --- periods --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "period",
    [
        "",
        "2024-00",
        "2024-13",
        "2024-5",
        "24-05",
        "2024/05",
        "202405",
        "2024-05-01",
        " 2024-05",
        "2024-05 ",
        "2024-05\n",
        "1899-12",
        "3000-01",
        fullwidth("2024-05"),
        "abcd-ef",
    ],
)
def test_invalid_period(period: str) -> None:
    problem = only(validate_journal(period, BALANCED))
    assert problem.code == "invalid_period"
    assert problem.line is None
    assert "YYYY-MM" in problem.message


@pytest.mark.parametrize("period", ["1900-01", "2999-12", "2024-01", "2024-12"])
def test_period_bounds_are_inclusive(period: str) -> None:
    assert validate_journal(period, BALANCED) == []


@pytest.mark.parametrize("corrects", ["", "2024-13", "2024-4", "1899-12", "April 2024"])
def test_invalid_corrects_period(corrects: str) -> None:
    problem = only(validate_journal("2024-05", BALANCED, corrects_period=corrects))
    assert problem.code == "invalid_corrects_period"
    assert problem.line is None


@pytest.mark.parametrize("corrects", ["2024-05", "2024-06", "2025-01"])
def test_correction_not_earlier(corrects: str) -> None:
    problem = only(validate_journal("2024-05", BALANCED, corrects_period=corrects))
    assert problem.code == "correction_not_earlier"
    assert problem.line is None
    assert corrects in problem.message
    assert "2024-05" in problem.message


def test_correction_order_compares_numerically_across_years() -> None:
    assert validate_journal("2024-01", BALANCED, corrects_period="2023-12") == []
    assert codes(validate_journal("2023-12", BALANCED, corrects_period="2024-01")) == [
        "correction_not_earlier"
    ]


def test_correction_order_not_checked_when_period_is_invalid() -> None:
    assert codes(validate_journal("2024-13", BALANCED, corrects_period="2025-01")) == [
        "invalid_period"
    ]


def test_none_corrects_period_means_not_a_correction() -> None:
    assert validate_journal("2024-05", BALANCED, corrects_period=None) == []


# --- amounts --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "amount",
    [
        "",
        " ",
        " 100",
        "100 ",
        "100\n",
        "NaN",
        "nan",
        "sNaN",
        "Infinity",
        "inf",
        "1E3",
        "1e3",
        "1.5E2",
        "1,000",
        "1,000.00",
        "1 000",
        "1_000",
        "100,50",
        "+100",
        "-0",
        "-0.00",
        "1.",
        ".5",
        "1..5",
        "1.2.3",
        "0x10",
        "abc",
        fullwidth("100"),  # full-width digits
        arabic_indic("100"),  # Arabic-Indic digits, which Decimal() itself would accept
        "--5",
    ],
)
def test_invalid_amount(amount: str) -> None:
    problems = validate_journal("2024-05", [dr("5000", amount), cr("1930", "100")])
    problem = only(problems)
    assert problem.code == "invalid_amount"
    assert problem.line == 1
    assert problem.message.startswith("line 1: debit amount ")


@pytest.mark.parametrize("amount", ["-5", "-5.00", "-0.01", "-1.234", "-1000000"])
def test_negative_amount(amount: str) -> None:
    problem = only(validate_journal("2024-05", [dr("5000", "5"), cr("1930", amount)]))
    assert problem.code == "negative_amount"
    assert problem.line == 2
    assert problem.message == f"line 2: credit amount {amount!r} is negative"


@pytest.mark.parametrize(("amount", "places"), [("1.234", 3), ("1.230", 3), ("0.00001", 5)])
def test_too_many_decimals(amount: str, places: int) -> None:
    problem = only(validate_journal("2024-05", [dr("5000", amount), cr("1930", "1.23")]))
    assert problem.code == "too_many_decimals"
    assert problem.line == 1
    assert f"has {places} decimal places; at most 2 allowed" in problem.message


def test_long_amount_is_truncated_in_message() -> None:
    problem = only(validate_journal("2024-05", [dr("5000", "x" * 10_000), cr("1930", "1")]))
    assert problem.code == "invalid_amount"
    assert len(problem.message) < 250


# --- one side per line ----------------------------------------------------------------


def test_both_sides() -> None:
    problems = validate_journal("2024-05", [Line("5000", "100", "100")])
    problem = only(problems)
    assert problem.code == "both_sides"
    assert problem.line == 1
    assert "'100'" in problem.message


@pytest.mark.parametrize(("debit", "credit"), [("0", "0"), ("0.00", "0"), ("000", "0.0")])
def test_zero_line(debit: str, credit: str) -> None:
    problems = validate_journal("2024-05", [*BALANCED, Line("9999", debit, credit)])
    problem = only(problems)
    assert problem.code == "zero_line"
    assert problem.line == len(BALANCED) + 1


def test_side_rule_not_checked_when_an_amount_is_invalid() -> None:
    assert codes(validate_journal("2024-05", [Line("5000", "abc", "0")])) == ["invalid_amount"]


# --- accounts -------------------------------------------------------------------------


@pytest.mark.parametrize("account", ["", " ", "\t\n", "\u00a0"])
def test_missing_account(account: str) -> None:
    problem = only(validate_journal("2024-05", [dr(account, "10"), cr("1930", "10")]))
    assert problem == JournalProblem("missing_account", "line 1: account is empty", 1)


# --- balance --------------------------------------------------------------------------


def test_unbalanced_message_names_totals_and_difference() -> None:
    problem = only(validate_journal("2024-05", [dr("5000", "1000"), cr("1930", "900.00")]))
    assert problem == JournalProblem(
        "unbalanced",
        "journal is unbalanced: debits 1000.00, credits 900.00, difference 100.00",
        None,
    )


def test_unbalanced_difference_is_debits_minus_credits() -> None:
    problem = only(validate_journal("2024-05", [dr("5000", "900"), cr("1930", "1000")]))
    assert problem.message.endswith("debits 900.00, credits 1000.00, difference -100.00")


def test_one_cent_difference_is_unbalanced() -> None:
    problem = only(validate_journal("2024-05", [dr("5000", "100.01"), cr("1930", "100")]))
    assert problem.code == "unbalanced"
    assert problem.message.endswith("difference 0.01")


def test_decimal_arithmetic_is_exact() -> None:
    # 0.1 + 0.2 == 0.3 exactly (with floats it would be 0.30000000000000004)
    lines = [dr("5000", "0.1"), dr("5000", "0.2"), cr("1930", "0.3")]
    assert validate_journal("2024-05", lines) == []
    assert journal_totals(lines) == (Decimal("0.30"), Decimal("0.30"))


def test_many_cents_sum_exactly() -> None:
    lines: list[JournalLineInput] = [dr("5000", "0.01") for _ in range(10_000)]
    lines.append(cr("1930", "100.00"))
    assert validate_journal("2024-05", lines) == []


def test_big_amounts_beyond_float_precision() -> None:
    # 2**53 + 1 cents does not survive a float round trip
    lines = [dr("5000", "90071992547409.93"), cr("1930", "90071992547409.92"), cr("1931", "0.01")]
    assert validate_journal("2024-05", lines) == []
    assert journal_totals(lines) == (Decimal("90071992547409.93"), Decimal("90071992547409.93"))


def test_big_amounts_beyond_default_decimal_precision() -> None:
    # 42 significant digits: the default 28-digit decimal context would round these
    # to the same value and hide the 1-cent difference.
    huge = "9" * 40 + ".99"
    lines = [dr("5000", huge), dr("5000", "0.01"), cr("1930", "1" + "0" * 40 + ".00")]
    assert validate_journal("2024-05", lines) == []
    unbalanced = validate_journal("2024-05", [dr("5000", huge), cr("1930", "1" + "0" * 40)])
    problem = only(unbalanced)
    assert problem.code == "unbalanced"
    assert problem.message.endswith(f"debits {huge}, credits 1{'0' * 40}.00, difference -0.01")


def test_enormous_amounts_do_not_crash() -> None:
    # 5000 digits: past Python's 4300-digit int/str conversion limit, so summing as
    # integer cents would fail; the check must still be exact.
    amount = "1" * 5000
    assert validate_journal("2024-05", [dr("5000", amount), cr("1930", amount)]) == []
    problem = only(validate_journal("2024-05", [dr("5000", amount), cr("1930", amount[:-1])]))
    assert problem.code == "unbalanced"


def test_balance_not_checked_when_an_amount_is_invalid() -> None:
    # totals over partly unreadable amounts would be misleading
    lines = [dr("5000", "1000"), cr("1930", "1,000"), cr("1931", "5")]
    assert codes(validate_journal("2024-05", lines)) == ["invalid_amount"]


def test_balance_still_checked_with_side_rule_problems() -> None:
    lines = [Line("5000", "100", "50"), cr("1930", "10")]
    assert codes(validate_journal("2024-05", lines)) == ["both_sides", "unbalanced"]


# --- several problems at once ---------------------------------------------------------


def test_all_problems_are_reported_in_order() -> None:
    lines = [
        Line(" ", "-5", "1.234"),
        Line("5000", "0", "0"),
        Line("5001", "1", "1"),
        Line("5002", "1E3", "NaN"),
        Line("", "10", "0"),
    ]
    problems = validate_journal("2024-13", lines, corrects_period="2024/01")
    assert [(p.code, p.line) for p in problems] == [
        ("invalid_period", None),
        ("invalid_corrects_period", None),
        ("missing_account", 1),
        ("negative_amount", 1),
        ("too_many_decimals", 1),
        ("zero_line", 2),
        ("both_sides", 3),
        ("invalid_amount", 4),
        ("invalid_amount", 4),
        ("missing_account", 5),
    ]
    assert problems[3].message == "line 1: debit amount '-5' is negative"
    assert problems[4].message.startswith("line 1: credit amount '1.234'")
    assert problems[8].message.startswith("line 4: credit amount 'NaN'")


def test_line_problems_and_unbalanced_together() -> None:
    lines = [dr("", "100"), cr("1930", "90"), Line("5000", "0", "0")]
    problems = validate_journal("2024-05", lines, corrects_period="2024-06")
    assert [(p.code, p.line) for p in problems] == [
        ("correction_not_earlier", None),
        ("missing_account", 1),
        ("zero_line", 3),
        ("unbalanced", None),
    ]


def test_every_problem_code_is_reachable() -> None:
    seen = set(codes(validate_journal("x", [], corrects_period="y")))
    seen |= set(codes(validate_journal("2024-05", BALANCED, corrects_period="2024-05")))
    seen |= set(
        codes(
            validate_journal(
                "2024-05",
                [Line("", "-1", "1.234"), Line("a", "x", "0"), Line("a", "0", "0")],
            )
        )
    )
    seen |= set(codes(validate_journal("2024-05", [Line("a", "1", "2")])))
    assert seen == {
        "no_lines",
        "invalid_period",
        "invalid_corrects_period",
        "correction_not_earlier",
        "invalid_amount",
        "negative_amount",
        "too_many_decimals",
        "both_sides",
        "zero_line",
        "missing_account",
        "unbalanced",
    }


# --- journal_totals -------------------------------------------------------------------


def test_journal_totals() -> None:
    assert journal_totals(BALANCED) == (Decimal("5220.50"), Decimal("5220.50"))


def test_journal_totals_of_no_lines() -> None:
    assert journal_totals([]) == (Decimal("0.00"), Decimal("0.00"))


def test_journal_totals_have_two_decimals() -> None:
    debits, credits = journal_totals([dr("5000", "7"), cr("1930", "7.5")])
    assert str(debits) == "7.00"
    assert str(credits) == "7.50"


def test_journal_totals_include_both_sides_lines() -> None:
    assert journal_totals([Line("5000", "3", "4")]) == (Decimal("3.00"), Decimal("4.00"))


def test_journal_totals_rejects_invalid_amounts() -> None:
    with pytest.raises(ValueError, match=r"line 2: credit amount '-5' is negative"):
        journal_totals([dr("5000", "5"), cr("1930", "-5")])
