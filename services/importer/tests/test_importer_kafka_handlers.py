"""The importer's Kafka handlers, driven through the shared EventConsumer without a broker.

A stand-in for the process context hands out real consumers on the test store and
captures dead letters, so each record goes through parsing, the inbox, the handler and
the outbox exactly as in the service.
"""

from __future__ import annotations

import json
import uuid
from typing import Any, cast

from sqlalchemy import func, select

from ledgerlink.importer.config import Config
from ledgerlink.importer.handlers.kafka import register_kafka_handlers
from ledgerlink.importer.storage.models import ImportJob, messaging
from ledgerlink.shared.db import Database
from ledgerlink.shared.events import (
    ConnectionActivatedV1,
    ConnectionRejectedV1,
    EventData,
    ImportCompletedV1,
    ImportFailedV1,
    ImportQueuedV1,
    ImportRequestedV1,
    ImportStartedV1,
    Provider,
    ReportsReadyV1,
)
from ledgerlink.shared.messaging.consumer import EventConsumer, Outcome
from ledgerlink.shared.messaging.dead_letters import DeadLetter, RawRecord
from ledgerlink.shared.pytest_plugin import StandInProcess, raw_record
from ledgerlink.shared.runtime import ProcessContext
from ledgerlink.shared.topics import Topic

BUSINESS_ID = "0112038-9"


def wire(db: Database) -> tuple[StandInProcess, EventConsumer]:
    process = StandInProcess(db, messaging, "ledgerlink/importer")
    register_kafka_handlers(cast(ProcessContext, process), Config())
    [consumer] = process.consumers
    return process, consumer


def record(data: EventData, *, offset: int = 0) -> RawRecord:
    return raw_record(data, key=BUSINESS_ID, offset=offset)


def activated(connection_id: uuid.UUID) -> ConnectionActivatedV1:
    return ConnectionActivatedV1(
        connection_id=connection_id,
        environment_id=uuid.uuid4(),
        provider=Provider.NETVISOR,
        business_id=BUSINESS_ID,
        company_name="Nokia Oyj",
    )


async def count(db: Database, table: Any) -> int:
    async with db.transaction() as session:
        return int(await session.scalar(select(func.count()).select_from(table)) or 0)


def header(letter: DeadLetter, name: str) -> str:
    return dict(letter.headers)[name].decode()


async def test_one_group_reads_both_topics_and_documents_import_queued(db: Database) -> None:
    process, consumer = wire(db)
    assert consumer.name == "ledgerlink-importer"
    assert process.subscriptions == [
        ("ledgerlink-importer", Topic.CONNECTIONS),
        ("ledgerlink-importer", Topic.IMPORT_REQUESTS),
    ]
    assert process.documented == [
        ImportQueuedV1,
        ImportStartedV1,
        ImportCompletedV1,
        ImportFailedV1,
        ReportsReadyV1,
    ]


async def test_activation_is_processed_once(db: Database) -> None:
    _, consumer = wire(db)
    activation = record(activated(uuid.uuid4()))
    assert await consumer.process(activation) is Outcome.PROCESSED
    assert await consumer.process(activation) is Outcome.DUPLICATE
    assert await count(db, ImportJob) == 1
    assert await count(db, messaging.outbox) == 1
    assert await count(db, messaging.inbox) == 1


async def test_rejected_connections_are_ignored(db: Database) -> None:
    _, consumer = wire(db)
    rejected = ConnectionRejectedV1(
        connection_id=uuid.uuid4(),
        environment_id=None,
        provider=Provider.NETVISOR,
        business_id="1234567-8",
        company_name="Nobody Oy",
        reason_code="invalid_check_digit",
        message="wrong check digit",
    )
    assert await consumer.process(record(rejected)) is Outcome.IGNORED
    assert await count(db, ImportJob) == 0
    assert await count(db, messaging.inbox) == 0


async def test_import_request_is_processed(db: Database) -> None:
    _, consumer = wire(db)
    request = ImportRequestedV1(
        connection_id=uuid.uuid4(), business_id=BUSINESS_ID, provider=Provider.NETVISOR
    )
    assert await consumer.process(record(request)) is Outcome.PROCESSED
    async with db.transaction() as session:
        payload = await session.scalar(select(messaging.outbox.c.payload))
    assert payload is not None
    assert json.loads(payload)["trigger"] == "import_requested"


async def test_file_import_without_location_is_dead_lettered_with_its_reason(
    db: Database,
) -> None:
    process, consumer = wire(db)
    connection_id = uuid.uuid4()
    request = ImportRequestedV1(
        connection_id=connection_id, business_id=BUSINESS_ID, provider=Provider.SAF_T
    )
    assert await consumer.process(record(request, offset=7)) is Outcome.DEAD_LETTERED

    [letter] = process.dead_letters
    assert letter.topic == "ledgerlink.import-requests.dlq"
    assert header(letter, "dlq_error_class") == "FileLocationMissingError"
    assert header(letter, "dlq_original_offset") == "7"
    assert (
        f"import request for connection {connection_id} has no file_location; saf_t is a "
        "file-based provider" in header(letter, "dlq_error_message")
    )
    assert await count(db, ImportJob) == 0
    assert await count(db, messaging.outbox) == 0
    assert await count(db, messaging.inbox) == 0


async def test_business_id_mismatch_is_dead_lettered(db: Database) -> None:
    process, consumer = wire(db)
    connection_id = uuid.uuid4()
    assert await consumer.process(record(activated(connection_id))) is Outcome.PROCESSED
    request = ImportRequestedV1(
        connection_id=connection_id, business_id="1927400-1", provider=Provider.NETVISOR
    )
    assert await consumer.process(record(request, offset=1)) is Outcome.DEAD_LETTERED
    [letter] = process.dead_letters
    assert header(letter, "dlq_error_class") == "BusinessIdMismatchError"
    assert f"names business ID 1927400-1 but the connection belongs to {BUSINESS_ID}" in header(
        letter, "dlq_error_message"
    )
    assert await count(db, ImportJob) == 1
