"""JournalService against a real, migrated store: journals, lines and the outbox."""

from __future__ import annotations

import json
import uuid
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from ledgerlink.journal_exporter.services.connections import ConnectionService
from ledgerlink.journal_exporter.services.journals import MAX_PROBLEMS_PER_EVENT, JournalService
from ledgerlink.journal_exporter.storage.models import (
    Connection,
    Journal,
    JournalLine,
    JournalStatus,
    messaging,
)
from ledgerlink.journal_exporter.storage.repository import JournalRepository
from ledgerlink.shared.db import Database
from ledgerlink.shared.events import (
    ConnectionActivatedV1,
    JournalLineV1,
    JournalReadyV1,
    Provider,
)
from ledgerlink.shared.messaging.outbox import Outbox

BUSINESS_ID = "556036-0793"
SOURCE = "payroll-nmbrs"


def outbox() -> Outbox:
    return Outbox(messaging, source="ledgerlink/journal-exporter")


def dr(account: str, amount: str, **extra: str) -> JournalLineV1:
    return JournalLineV1(account=account, debit=amount, **extra)


def cr(account: str, amount: str, **extra: str) -> JournalLineV1:
    return JournalLineV1(account=account, credit=amount, **extra)


BALANCED = (
    dr("5000", "4200", cost_center="CC-10", cost_unit="CU-1", description="Salaries May"),
    dr("5700", "1020.5", cost_center="CC-10", description="Employer contributions"),
    cr("2710", "1300.00"),
    cr("1930", "3920.5"),
)


def journal(
    lines: tuple[JournalLineV1, ...] = BALANCED,
    *,
    journal_id: str = "J-2026-05",
    period: str = "2026-05",
    corrects_period: str | None = None,
    run_reference: str = "run-1",
) -> JournalReadyV1:
    return JournalReadyV1(
        journal_id=journal_id,
        source=SOURCE,
        business_id=BUSINESS_ID,
        period=period,
        run_reference=run_reference,
        lines=lines,
        corrects_period=corrects_period,
    )


async def receive(db: Database, data: JournalReadyV1, event_id: str | None = None) -> Journal:
    async with db.transaction() as session:
        return await JournalService(session, outbox()).receive(
            data, event_id=event_id or str(uuid.uuid4())
        )


async def stored(db: Database, stored_id: uuid.UUID) -> tuple[Journal, list[JournalLine]]:
    async with db.transaction() as session:
        repository = JournalRepository(session)
        row = await repository.get(stored_id)
        assert row is not None
        return row, await repository.lines_of(stored_id)


async def outbox_rows(db: Database) -> list[dict[str, Any]]:
    async with db.transaction() as session:
        rows = (
            (await session.execute(select(messaging.outbox).order_by(messaging.outbox.c.id)))
            .mappings()
            .all()
        )
    return [dict(row) for row in rows]


async def last_event(db: Database) -> tuple[str, dict[str, Any]]:
    row = (await outbox_rows(db))[-1]
    return row["event_type"], json.loads(row["payload"])


async def test_balanced_journal_is_accepted_with_exact_lines_and_totals(db: Database) -> None:
    received = journal()
    result = await receive(db, received, "evt-1")

    row, lines = await stored(db, result.id)
    assert row.status is JournalStatus.ACCEPTED
    assert row.journal_id == "J-2026-05"
    assert row.source == SOURCE
    assert row.business_id == BUSINESS_ID
    assert row.period == "2026-05"
    assert row.corrects_period is None
    assert row.run_reference == "run-1"
    assert row.line_count == 4
    assert row.total_debit == Decimal("5220.50")
    assert row.total_credit == Decimal("5220.50")
    assert str(row.total_debit) == "5220.50"
    assert row.problems == []
    assert row.payload == received.model_dump(mode="json")
    assert row.payload["lines"][1]["debit"] == "1020.5"  # as received
    assert row.received_event_id == "evt-1"

    assert [
        (line.line_no, line.account, line.debit, line.credit, line.cost_center, line.cost_unit)
        for line in lines
    ] == [
        (1, "5000", Decimal("4200.00"), Decimal("0.00"), "CC-10", "CU-1"),
        (2, "5700", Decimal("1020.50"), Decimal("0.00"), "CC-10", None),
        (3, "2710", Decimal("0.00"), Decimal("1300.00"), None, None),
        (4, "1930", Decimal("0.00"), Decimal("3920.50"), None, None),
    ]
    assert all(isinstance(line.debit, Decimal) for line in lines)
    assert lines[0].description == "Salaries May"

    [event] = await outbox_rows(db)
    assert event["event_type"] == "ledgerlink.journal.accepted.v1"
    assert event["topic"] == "ledgerlink.journal-exports"
    assert event["key"] == BUSINESS_ID
    assert event["headers"]["ce"]["ce_subject"] == "J-2026-05"
    assert json.loads(event["payload"]) == {
        "journal_id": "J-2026-05",
        "business_id": BUSINESS_ID,
        "period": "2026-05",
        "corrects_period": None,
        "line_count": 4,
        "total_debit": "5220.50",
        "total_credit": "5220.50",
    }


async def test_amounts_beyond_float_precision_are_stored_exactly(db: Database) -> None:
    # 18 significant digits: a float (or SQLite's NUMERIC affinity) keeps only ~15.
    top = "9999999999999999.99"
    result = await receive(
        db, journal((dr("5000", top), cr("1930", "9999999999999999.98"), cr("1931", "0.01")))
    )
    row, lines = await stored(db, result.id)
    assert row.status is JournalStatus.ACCEPTED
    assert lines[0].debit == Decimal(top)
    assert str(lines[0].debit) == top
    assert lines[1].credit == Decimal("9999999999999999.98")
    assert row.total_debit == Decimal(top)
    _, payload = await last_event(db)
    assert payload["total_debit"] == top


async def test_unbalanced_journal_is_rejected_naming_the_imbalance(db: Database) -> None:
    result = await receive(db, journal((dr("5000", "1000"), cr("1930", "900.00"))))
    row, lines = await stored(db, result.id)
    assert row.status is JournalStatus.REJECTED
    assert lines == []
    assert row.line_count == 2
    assert row.total_debit == Decimal("1000.00")
    assert row.total_credit == Decimal("900.00")
    message = "journal is unbalanced: debits 1000.00, credits 900.00, difference 100.00"
    assert row.problems == [{"code": "unbalanced", "message": message, "line": None}]

    event_type, payload = await last_event(db)
    assert event_type == "ledgerlink.journal.rejected.v1"
    assert payload == {
        "journal_id": "J-2026-05",
        "business_id": BUSINESS_ID,
        "reason_code": "unbalanced",
        "message": message,
        "problems": [{"code": "unbalanced", "message": message, "line": None}],
    }


async def test_invalid_amounts_leave_the_totals_empty(db: Database) -> None:
    received = journal((dr("5000", "1,000.00"), cr("1930", "1000"), dr("", "0")))
    result = await receive(db, received)
    row, lines = await stored(db, result.id)
    assert row.status is JournalStatus.REJECTED
    assert lines == []
    assert row.total_debit is None
    assert row.total_credit is None
    assert row.payload["lines"][0]["debit"] == "1,000.00"
    assert [problem["code"] for problem in row.problems] == [
        "invalid_amount",
        "missing_account",
        "zero_line",
    ]
    _, payload = await last_event(db)
    assert payload["reason_code"] == "invalid_journal"
    assert payload["message"] == "; ".join(problem["message"] for problem in row.problems)
    assert [problem["line"] for problem in payload["problems"]] == [1, 3, 3]


async def test_duplicate_of_an_accepted_journal_is_rejected(db: Database) -> None:
    first = await receive(db, journal(run_reference="run-1"))
    second = await receive(db, journal(run_reference="run-2"))

    row, lines = await stored(db, second.id)
    assert row.status is JournalStatus.REJECTED
    assert lines == []
    assert row.run_reference == "run-2"
    [problem] = row.problems
    assert problem["code"] == "duplicate_journal"
    assert problem["message"].startswith(
        f"journal J-2026-05 from {SOURCE} was already accepted at "
    )
    assert f"(stored as {first.id}, run run-1)" in problem["message"]

    event_type, payload = await last_event(db)
    assert event_type == "ledgerlink.journal.rejected.v1"
    assert payload["reason_code"] == "duplicate_journal"
    assert payload["message"] == problem["message"]
    # The original stays the one accepted journal.
    _, first_lines = await stored(db, first.id)
    assert len(first_lines) == 4


async def test_same_journal_id_from_another_source_is_not_a_duplicate(db: Database) -> None:
    await receive(db, journal())
    other = journal().model_copy(update={"source": "payroll-other"})
    result = await receive(db, other)
    row, _ = await stored(db, result.id)
    assert row.status is JournalStatus.ACCEPTED


async def test_rejected_journal_may_be_resubmitted(db: Database) -> None:
    rejected = await receive(
        db, journal((dr("5000", "1000"), cr("1930", "900")), run_reference="a")
    )
    accepted = await receive(db, journal(run_reference="b"))
    assert rejected.id != accepted.id

    row, lines = await stored(db, accepted.id)
    assert row.status is JournalStatus.ACCEPTED
    assert len(lines) == 4
    assert [row["event_type"] for row in await outbox_rows(db)] == [
        "ledgerlink.journal.rejected.v1",
        "ledgerlink.journal.accepted.v1",
    ]
    # ... and once accepted, it is a duplicate from then on.
    again = await receive(db, journal(run_reference="c"))
    row, _ = await stored(db, again.id)
    assert row.status is JournalStatus.REJECTED
    assert f"(stored as {accepted.id}, run b)" in row.problems[0]["message"]


async def test_correction_of_an_earlier_period_is_accepted(db: Database) -> None:
    correction = journal(
        (dr("5000", "150.25"), cr("1930", "150.25")),
        journal_id="J-2026-06-corr",
        period="2026-06",
        corrects_period="2026-04",
    )
    result = await receive(db, correction)
    row, lines = await stored(db, result.id)
    assert row.status is JournalStatus.ACCEPTED
    assert row.corrects_period == "2026-04"
    assert [line.debit for line in lines] == [Decimal("150.25"), Decimal("0.00")]
    event_type, payload = await last_event(db)
    assert event_type == "ledgerlink.journal.accepted.v1"
    assert payload["period"] == "2026-06"
    assert payload["corrects_period"] == "2026-04"
    assert payload["total_debit"] == payload["total_credit"] == "150.25"


async def test_correction_of_the_same_period_is_rejected(db: Database) -> None:
    result = await receive(db, journal(corrects_period="2026-05"))
    row, _ = await stored(db, result.id)
    assert row.status is JournalStatus.REJECTED
    _, payload = await last_event(db)
    assert payload["reason_code"] == "correction_not_earlier"


async def test_malformed_period_is_stored_as_received(db: Database) -> None:
    result = await receive(db, journal(period="May 2026"))
    row, _ = await stored(db, result.id)
    assert row.status is JournalStatus.REJECTED
    assert row.period == "May 2026"
    _, payload = await last_event(db)
    assert payload["reason_code"] == "invalid_period"


async def test_amount_too_large_to_store_is_rejected(db: Database) -> None:
    big = "10000000000000000"
    result = await receive(db, journal((dr("5000", big), cr("1930", big))))
    row, lines = await stored(db, result.id)
    assert row.status is JournalStatus.REJECTED
    assert lines == []
    assert row.total_debit is None
    _, payload = await last_event(db)
    assert payload["reason_code"] == "amount_too_large"


async def test_a_long_list_of_problems_is_stored_whole_and_capped_in_the_event(
    db: Database,
) -> None:
    count = MAX_PROBLEMS_PER_EVENT + 50
    zero_lines = tuple(JournalLineV1(account=f"{5000 + n}") for n in range(count))
    result = await receive(db, journal(zero_lines))
    row, _ = await stored(db, result.id)
    assert len(row.problems) == count
    _, payload = await last_event(db)
    assert payload["reason_code"] == "zero_line"
    assert len(payload["problems"]) == MAX_PROBLEMS_PER_EVENT
    assert payload["message"].endswith("; and 50 more problems")


async def test_the_store_refuses_a_second_accepted_journal(db: Database) -> None:
    """The partial unique index backs the duplicate rule against concurrent deliveries."""
    await receive(db, journal())

    def accepted_copy() -> Journal:
        return Journal(
            journal_id="J-2026-05",
            source=SOURCE,
            business_id=BUSINESS_ID,
            period="2026-05",
            run_reference="sneaky",
            status=JournalStatus.ACCEPTED,
            line_count=0,
            payload={},
            received_event_id=str(uuid.uuid4()),
        )

    with pytest.raises(IntegrityError):
        async with db.transaction() as session:
            await JournalRepository(session).add(accepted_copy())
    # Rejected copies are fine.
    async with db.transaction() as session:
        copy = accepted_copy()
        copy.status = JournalStatus.REJECTED
        await JournalRepository(session).add(copy)


async def test_activated_connection_is_recorded(db: Database) -> None:
    connection_id = uuid.uuid4()
    activation = ConnectionActivatedV1(
        connection_id=connection_id,
        environment_id=uuid.uuid4(),
        provider=Provider.NMBRS,
        business_id=BUSINESS_ID,
        company_name="Saab AB",
    )
    async with db.transaction() as session:
        await ConnectionService(session).connection_activated(activation, event_id="evt-a")
    async with db.transaction() as session:
        await ConnectionService(session).connection_activated(
            activation.model_copy(update={"company_name": "Saab"}), event_id="evt-b"
        )
    async with db.transaction() as session:
        connection = await session.get(Connection, connection_id)
    assert connection is not None
    assert connection.provider == "nmbrs"
    assert connection.company_name == "Saab"
    assert connection.last_activation_event_id == "evt-b"
    assert await outbox_rows(db) == []


async def test_a_business_id_with_a_wrong_check_digit_is_rejected_as_activations_are(
    db: Database,
) -> None:
    # Saab AB is 556036-0793; the last digit is the Luhn check digit.
    received = journal().model_copy(update={"business_id": "556036-0794"})
    result = await receive(db, received)
    row, lines = await stored(db, result.id)
    assert row.status is JournalStatus.REJECTED
    assert lines == []
    message = (
        "Swedish organisation number (organisationsnummer) 556036-0794 has check digit 4; "
        "expected 3"
    )
    assert row.problems == [{"code": "invalid_business_id", "message": message, "line": None}]
    event_type, payload = await last_event(db)
    assert event_type == "ledgerlink.journal.rejected.v1"
    assert payload["reason_code"] == "invalid_business_id"
    assert payload["business_id"] == "556036-0794"


async def test_a_business_id_outside_the_normal_form_is_rejected(db: Database) -> None:
    result = await receive(db, journal().model_copy(update={"business_id": "5560360793"}))
    row, _lines = await stored(db, result.id)
    assert row.status is JournalStatus.REJECTED
    assert row.problems is not None
    assert row.problems[0]["code"] == "invalid_business_id"
    assert "not in the normal form" in row.problems[0]["message"]
