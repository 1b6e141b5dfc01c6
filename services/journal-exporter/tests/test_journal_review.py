"""Unit tests for ledgerlink.journal_exporter.domain.journal_review."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from decimal import Decimal

from ledgerlink.journal_exporter.domain.journal_review import (
    MAX_STORED_AMOUNT,
    EarlierAcceptance,
    JournalReview,
    Problem,
    rejection_message,
    review_journal,
)
from ledgerlink.shared.events import JournalLineV1

EARLIER = EarlierAcceptance(
    stored_id=uuid.UUID("8d1f0a2e-4a7b-4c59-9d2e-2f6f7c1b0a11"),
    run_reference="run-41",
    received_at=datetime(2026, 5, 31, 18, 0, tzinfo=UTC),
)


def dr(account: str, amount: str) -> JournalLineV1:
    return JournalLineV1(account=account, debit=amount)


def cr(account: str, amount: str) -> JournalLineV1:
    return JournalLineV1(account=account, credit=amount)


BALANCED = (dr("5000", "4200"), dr("5700", "1020.5"), cr("2710", "1300.00"), cr("1930", "3920.5"))


def review(
    lines: Sequence[JournalLineV1] = BALANCED,
    *,
    period: str = "2026-05",
    corrects_period: str | None = None,
    earlier: EarlierAcceptance | None = None,
) -> JournalReview:
    return review_journal(
        source="payroll-nmbrs",
        journal_id="J-2026-05",
        period=period,
        corrects_period=corrects_period,
        lines=lines,
        earlier=earlier,
    )


def test_shared_journal_lines_fit_the_rules_protocol() -> None:
    outcome = review()
    assert outcome.accepted
    assert outcome.problems == ()
    assert outcome.reason_code is None


def test_accepted_journal_has_exact_line_amounts_and_totals() -> None:
    outcome = review()
    assert outcome.line_amounts is not None
    assert [(a.debit, a.credit) for a in outcome.line_amounts] == [
        (Decimal("4200.00"), Decimal("0.00")),
        (Decimal("1020.50"), Decimal("0.00")),
        (Decimal("0.00"), Decimal("1300.00")),
        (Decimal("0.00"), Decimal("3920.50")),
    ]
    assert str(outcome.line_amounts[1].debit) == "1020.50"
    assert outcome.total_debit == outcome.total_credit == Decimal("5220.50")
    assert str(outcome.total_debit) == "5220.50"


def test_unbalanced_journal() -> None:
    outcome = review([dr("5000", "1000"), cr("1930", "900.00")])
    assert not outcome.accepted
    assert outcome.reason_code == "unbalanced"
    assert outcome.problems == (
        Problem(
            "unbalanced",
            "journal is unbalanced: debits 1000.00, credits 900.00, difference 100.00",
        ),
    )
    # The amounts are valid, so the totals are known even though the journal is refused.
    assert (outcome.total_debit, outcome.total_credit) == (Decimal("1000.00"), Decimal("900.00"))


def test_one_code_several_times_is_that_code() -> None:
    outcome = review([dr("5000", "1,0"), cr("1930", "x")])
    assert [p.code for p in outcome.problems] == ["invalid_amount", "invalid_amount"]
    assert outcome.reason_code == "invalid_amount"
    assert outcome.line_amounts is None
    assert outcome.total_debit is None
    assert outcome.total_credit is None


def test_several_codes_are_an_invalid_journal() -> None:
    outcome = review([dr("", "-5"), cr("1930", "5")], period="2026-13")
    assert [p.code for p in outcome.problems] == [
        "invalid_period",
        "missing_account",
        "negative_amount",
    ]
    assert outcome.reason_code == "invalid_journal"
    assert [p.line for p in outcome.problems] == [None, 1, 1]


def test_duplicate_of_an_accepted_journal() -> None:
    outcome = review(earlier=EARLIER)
    assert not outcome.accepted
    assert outcome.reason_code == "duplicate_journal"
    assert outcome.problems == (
        Problem(
            "duplicate_journal",
            "journal J-2026-05 from payroll-nmbrs was already accepted at "
            "2026-05-31T18:00:00+00:00 (stored as 8d1f0a2e-4a7b-4c59-9d2e-2f6f7c1b0a11, "
            "run run-41)",
        ),
    )
    assert outcome.total_debit == Decimal("5220.50")


def test_duplicate_wins_over_other_problems_which_are_still_listed() -> None:
    outcome = review([dr("5000", "1000"), cr("1930", "900")], earlier=EARLIER)
    assert outcome.reason_code == "duplicate_journal"
    assert [p.code for p in outcome.problems] == ["duplicate_journal", "unbalanced"]


def test_correction_of_an_earlier_period_is_accepted() -> None:
    assert review(period="2026-06", corrects_period="2026-04").accepted


def test_correction_of_a_later_period_is_refused() -> None:
    outcome = review(period="2026-05", corrects_period="2026-05")
    assert outcome.reason_code == "correction_not_earlier"


def test_largest_storable_amount_is_accepted() -> None:
    top = str(MAX_STORED_AMOUNT)
    outcome = review([dr("5000", top), cr("1930", top)])
    assert outcome.accepted
    assert outcome.total_debit == MAX_STORED_AMOUNT


def test_amount_too_large_to_store() -> None:
    big = "10000000000000000"
    outcome = review([dr("5000", big), cr("1930", big)])
    assert outcome.reason_code == "amount_too_large"
    assert [(p.code, p.line) for p in outcome.problems] == [
        ("amount_too_large", 1),
        ("amount_too_large", 2),
    ]
    assert outcome.problems[0].message == (
        "line 1: debit amount '10000000000000000' is larger than 9999999999999999.99, "
        "the largest amount that can be stored"
    )
    assert outcome.total_debit is None
    assert outcome.total_credit is None


def test_total_too_large_to_store() -> None:
    top = str(MAX_STORED_AMOUNT)
    outcome = review([dr("5000", top), dr("5001", "0.01"), cr("1930", top), cr("1931", "0.01")])
    assert outcome.reason_code == "total_too_large"
    [problem] = outcome.problems
    assert problem.line is None
    assert "debits 10000000000000000.00, credits 10000000000000000.00" in problem.message
    assert outcome.total_debit is None


def test_longest_amounts_the_contract_allows_are_refused() -> None:
    amount = "9" * 32  # JournalLineV1 allows 32 characters
    outcome = review([dr("5000", amount), cr("1930", amount)])
    assert outcome.reason_code == "amount_too_large"
    assert f"debit amount '{amount}' is larger than" in outcome.problems[0].message


def test_rejection_message_joins_every_problem() -> None:
    problems = [Problem("a", "first", 1), Problem("b", "second"), Problem("a", "third", 3)]
    assert rejection_message(problems, limit=10) == "first; second; third"


def test_rejection_message_is_capped() -> None:
    problems = [Problem("zero_line", f"line {n}: zero", n) for n in range(1, 6)]
    assert rejection_message(problems, limit=2) == "line 1: zero; line 2: zero; and 3 more problems"
    assert rejection_message(problems, limit=4).endswith("; and 1 more problem")
    assert rejection_message(problems, limit=5).endswith("line 5: zero")
