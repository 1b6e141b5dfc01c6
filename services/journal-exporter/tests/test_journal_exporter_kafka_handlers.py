"""The journal exporter's Kafka handlers, driven through the shared EventConsumer.

A stand-in for the process context hands out real consumers on the test store and
captures dead letters; no broker is involved.
"""

from __future__ import annotations

import json
import uuid
from typing import Any, cast

from sqlalchemy import func, select

from ledgerlink.journal_exporter.config import Config
from ledgerlink.journal_exporter.handlers.kafka import register_kafka_handlers
from ledgerlink.journal_exporter.storage.models import Connection, Journal, messaging
from ledgerlink.shared.db import Database
from ledgerlink.shared.envelope import CloudEvent
from ledgerlink.shared.events import (
    ConnectionActivatedV1,
    ConnectionRejectedV1,
    EventData,
    JournalAcceptedV1,
    JournalLineV1,
    JournalReadyV1,
    JournalRejectedV1,
    PayrollJournalFailedV1,
    PayrollJournalPostedV1,
    PayrollJournalReleasedV1,
    Provider,
)
from ledgerlink.shared.messaging.consumer import EventConsumer, Outcome
from ledgerlink.shared.messaging.dead_letters import RawRecord
from ledgerlink.shared.pytest_plugin import StandInProcess, raw_record
from ledgerlink.shared.runtime import ProcessContext
from ledgerlink.shared.topics import Topic

BUSINESS_ID = "556036-0793"


def wire(db: Database) -> tuple[StandInProcess, EventConsumer]:
    process = StandInProcess(db, messaging, "ledgerlink/journal-exporter")
    register_kafka_handlers(cast(ProcessContext, process), Config())
    [consumer] = process.consumers
    return process, consumer


def raw(topic: Topic, ce_type: str, value: bytes, *, offset: int = 0) -> RawRecord:
    envelope = CloudEvent.new(source="urn:test:payroll", type=ce_type)
    return RawRecord(
        topic=str(topic),
        partition=0,
        offset=offset,
        key=BUSINESS_ID.encode(),
        value=value,
        headers=envelope.to_headers(),
    )


def record(data: EventData, *, offset: int = 0) -> RawRecord:
    return raw_record(data, key=BUSINESS_ID, offset=offset)


def ready(*lines: JournalLineV1) -> JournalReadyV1:
    return JournalReadyV1(
        journal_id="J-1",
        source="payroll-nmbrs",
        business_id=BUSINESS_ID,
        period="2026-05",
        run_reference="run-1",
        lines=lines,
    )


async def count(db: Database, table: Any) -> int:
    async with db.transaction() as session:
        return int(await session.scalar(select(func.count()).select_from(table)) or 0)


async def event_types(db: Database) -> list[str]:
    async with db.transaction() as session:
        result = await session.execute(
            select(messaging.outbox.c.event_type).order_by(messaging.outbox.c.id)
        )
        return list(result.scalars().all())


async def test_one_group_reads_journals_and_connections(db: Database) -> None:
    process, consumer = wire(db)
    assert consumer.name == "ledgerlink-journal-exporter"
    assert process.subscriptions == [
        ("ledgerlink-journal-exporter", Topic.JOURNALS),
        ("ledgerlink-journal-exporter", Topic.CONNECTIONS),
    ]
    assert process.documented == [
        JournalAcceptedV1,
        JournalRejectedV1,
        PayrollJournalPostedV1,
        PayrollJournalReleasedV1,
        PayrollJournalFailedV1,
    ]


async def test_journal_is_processed_once(db: Database) -> None:
    _, consumer = wire(db)
    journal = record(
        ready(JournalLineV1(account="5000", debit="10"), JournalLineV1(account="1930", credit="10"))
    )
    assert await consumer.process(journal) is Outcome.PROCESSED
    assert await consumer.process(journal) is Outcome.DUPLICATE
    assert await count(db, Journal) == 1
    assert await event_types(db) == ["ledgerlink.journal.accepted.v1"]


async def test_invalid_journal_is_answered_not_dead_lettered(db: Database) -> None:
    process, consumer = wire(db)
    journal = record(ready(JournalLineV1(account="5000", debit="10")))
    assert await consumer.process(journal) is Outcome.PROCESSED
    assert process.dead_letters == []
    assert await event_types(db) == ["ledgerlink.journal.rejected.v1"]


async def test_float_amounts_break_the_contract_and_are_dead_lettered(db: Database) -> None:
    process, consumer = wire(db)
    data = ready(
        JournalLineV1(account="5000", debit="10"), JournalLineV1(account="1930", credit="10")
    )
    payload = data.model_dump(mode="json")
    payload["lines"][0]["debit"] = 10.0
    letter_record = raw(Topic.JOURNALS, JournalReadyV1.EVENT_TYPE, json.dumps(payload).encode())
    assert await consumer.process(letter_record) is Outcome.DEAD_LETTERED
    [letter] = process.dead_letters
    headers = {name: value.decode() for name, value in letter.headers}
    assert headers["dlq_error_class"] == "ValidationError"
    assert "lines.0.debit" in headers["dlq_error_message"]
    assert await count(db, Journal) == 0


async def test_activated_connections_are_recorded_and_rejected_ones_ignored(db: Database) -> None:
    _, consumer = wire(db)
    activated = ConnectionActivatedV1(
        connection_id=uuid.uuid4(),
        environment_id=uuid.uuid4(),
        provider=Provider.NMBRS,
        business_id=BUSINESS_ID,
        company_name="Saab AB",
    )
    rejected = ConnectionRejectedV1(
        connection_id=uuid.uuid4(),
        environment_id=None,
        provider=Provider.NMBRS,
        business_id="556036-0794",
        company_name="Saab AB",
        reason_code="invalid_check_digit",
        message="wrong check digit",
    )
    assert await consumer.process(record(activated)) is Outcome.PROCESSED
    assert await consumer.process(record(rejected, offset=1)) is Outcome.IGNORED
    assert await count(db, Connection) == 1
    assert await event_types(db) == []
