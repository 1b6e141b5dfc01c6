"""The payroll export rules (pure): dimensions, identity, lines, checks, refusals."""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal

from ledgerlink.connectors.base import PayrollJournal, PayrollJournalLine
from ledgerlink.connectors.models import Dimension, DimensionObject
from ledgerlink.journal_exporter.domain.payroll import (
    check_lines,
    journal_detail,
    ledger_refusal,
    match_dimensions,
    posting_for,
    posting_key,
    source_hash,
    source_refusal,
)
from ledgerlink.journal_exporter.services.payroll import overall_status

DIMENSIONS = [
    Dimension(
        id="SUBACCOUNT:1", name="Kostenplaats", objects=(DimensionObject(code="100", name="A"),)
    ),
    Dimension(id="SUBACCOUNT:2", name="Kostendrager", objects=()),
]


def journal(kind: str = "normal", period: dt.date = dt.date(2025, 3, 1)) -> PayrollJournal:
    return PayrollJournal(
        run_id="2025-3",
        date=period.replace(day=25),
        period=period,
        kind=kind,  # type: ignore[arg-type]
        reference="RUN-2025-03",
        lines=(
            PayrollJournalLine(
                gl_account="4000",
                cost_centre="100",
                cost_unit="CU01",
                amount=Decimal("10.00"),
                debit_credit="D",
                description="Salaries",
            ),
            PayrollJournalLine(
                gl_account="4000",
                cost_centre="100",
                cost_unit="CU02",
                amount=Decimal("5.50"),
                debit_credit="D",
                description="Salaries",
            ),
            PayrollJournalLine(
                gl_account="1560",
                amount=Decimal("15.50"),
                debit_credit="C",
                description="Net wages payable",
            ),
        ),
    )


def test_descriptions_name_segments_regardless_of_case_and_spaces() -> None:
    matches, problems = match_dimensions(
        {"cost_centre": " kostenplaats", "cost_unit": "KOSTENDRAGER"}, DIMENSIONS
    )
    assert problems == []
    assert {(m.kind, m.segment_id, m.description) for m in matches} == {
        ("cost_centre", 1, "Kostenplaats"),
        ("cost_unit", 2, "Kostendrager"),
    }


def test_an_unknown_description_lists_what_visma_has() -> None:
    matches, problems = match_dimensions({"cost_centre": "Afdeling", "cost_unit": None}, DIMENSIONS)
    assert matches == []
    [problem] = problems
    assert problem.field == "cost_centre_description"
    assert "'Afdeling'" in problem.message
    assert "'Kostendrager', 'Kostenplaats'" in problem.message


def test_both_dimensions_cannot_go_to_one_segment() -> None:
    _, problems = match_dimensions(
        {"cost_centre": "Kostenplaats", "cost_unit": "Kostenplaats"}, DIMENSIONS
    )
    assert [p.field for p in problems] == ["cost_unit_description"]


def test_the_identity_is_mapping_run_period_and_kind() -> None:
    mapping = uuid.uuid4()
    march, jan = dt.date(2025, 3, 1), dt.date(2025, 1, 1)
    key = posting_key(mapping, "2025-3", march, "normal")
    assert key == posting_key(mapping, "2025-3", march, "normal")
    assert (
        len(
            {
                key,
                posting_key(mapping, "2025-3", jan, "correction"),
                posting_key(uuid.uuid4(), "2025-3", march, "normal"),
                posting_key(mapping, "2025-4", march, "normal"),
            }
        )
        == 4
    )


def test_the_source_hash_changes_with_any_amount() -> None:
    changed = journal().model_copy(update={"lines": journal().lines[:2]})
    assert source_hash(journal()) == source_hash(journal())
    assert source_hash(journal()) != source_hash(changed)


def test_lines_keep_only_the_dimensions_sent_and_add_up_what_then_coincides() -> None:
    posting = posting_for(journal(), cost_centres=True, cost_units=False)
    assert [(x.account, x.cost_centre, x.cost_unit, x.amount) for x in posting.lines] == [
        ("4000", "100", None, Decimal("15.50")),
        ("1560", None, None, Decimal("-15.50")),
    ]
    assert posting.balance == 0
    assert posting.reference == "RUN-2025-03"
    correction = posting_for(
        journal("correction", dt.date(2025, 1, 1)), cost_centres=False, cost_units=False
    )
    assert correction.period == dt.date(2025, 1, 1)
    assert correction.description.startswith("Payroll correction RUN-2025-03 2025-01")
    assert journal_detail(cost_centres=False, cost_units=True) == "cost_centre_cost_unit"
    assert journal_detail(cost_centres=True, cost_units=False) == "cost_centre"
    assert journal_detail(cost_centres=False, cost_units=False) == "company"


def test_each_problem_is_reported_per_line_in_an_accountants_words() -> None:
    posting = posting_for(journal(), cost_centres=True, cost_units=True)
    problems = check_lines(
        posting,
        accounts={"4000": False},
        segment_values={1: {"100": True}, 2: {"CU01": True, "CU02": False}},
        segment_of={"cost_centre": 1, "cost_unit": 2},
        period_status="closed",
    )
    assert [(p.code, p.line) for p in problems] == [
        ("period_closed", None),
        ("account_inactive", 1),
        ("account_inactive", 2),
        ("cost_unit_inactive", 2),
        ("account_missing", 3),
    ]
    assert "Period 2025-03 is closed" in problems[0].message
    assert "Line 3: account 1560 does not exist" in problems[-1].message
    assert (
        check_lines(
            posting,
            accounts={"4000": True, "1560": True},
            segment_values={1: {"100": True}, 2: {"CU01": True, "CU02": True}},
            segment_of={"cost_centre": 1, "cost_unit": 2},
            period_status="open",
        )
        == []
    )


def test_nmbrs_refusals_carry_the_seeds_meaning() -> None:
    test_company = source_refusal("2013")
    blocked = source_refusal("1004")
    assert test_company is not None
    assert "test company" in test_company.message
    assert blocked is not None
    assert "debtor" in blocked.message
    assert "blocked" in blocked.message
    assert source_refusal("1001") is None


def test_visma_refusals_keep_the_vendor_code_and_message_and_name_the_line() -> None:
    problem = ledger_refusal(
        None, "journalTransactionLines[2].subaccount: 'X' is not a value of segment 1.", "x"
    )
    assert problem.line == 3
    assert problem.message.startswith("Line 3: Visma.net refused the journal:")
    assert problem.vendor_message is not None
    assert "segment 1" in problem.vendor_message


def test_a_run_is_posted_only_when_every_posting_is() -> None:
    assert overall_status(["posted", "posted"]) == "posted"
    assert overall_status(["posted", "retrying"]) == "retrying"
    assert overall_status(["pending", "refused", "posted"]) == "refused"
