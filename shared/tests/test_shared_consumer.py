"""EventConsumer.process: parse, dedupe, handle in one transaction, retry, dead-letter.

Real databases (SQLite file and PostgreSQL); the dead-letter topic is an in-memory list.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.trace import TracerProvider
from prometheus_client import CollectorRegistry
from sqlalchemy import Column, Integer, MetaData, String, Table, func, select
from sqlalchemy.exc import DBAPIError, IntegrityError, InterfaceError, OperationalError
from sqlalchemy.ext.asyncio import AsyncSession

from ledgerlink.shared.config import KafkaSettings
from ledgerlink.shared.db import Database, create_engine
from ledgerlink.shared.envelope import CloudEvent
from ledgerlink.shared.events import (
    ActivationRequestedV1,
    ConnectionActivatedV1,
    ConnectionRejectedV1,
    Provider,
)
from ledgerlink.shared.messaging.consumer import (
    EventConsumer,
    InfrastructureError,
    Outcome,
    ReceivedEvent,
)
from ledgerlink.shared.messaging.dead_letters import (
    DLQ_CONSUMER,
    DLQ_ERROR_CLASS,
    DLQ_ERROR_MESSAGE,
    DLQ_FAILED_AT,
    DLQ_ORIGINAL_OFFSET,
    DLQ_ORIGINAL_PARTITION,
    DLQ_ORIGINAL_TOPIC,
    DeadLetter,
    DeadLetterPublisher,
    RawRecord,
)
from ledgerlink.shared.messaging.inbox import Inbox
from ledgerlink.shared.messaging.tables import MessagingTables, define_messaging_tables
from ledgerlink.shared.metrics import MessagingMetrics
from ledgerlink.shared.pytest_plugin import LazyPostgresDatabase

TOPIC = "ledgerlink.activations"
GROUP = "ledgerlink-auth"


#: A fresh metadata holding only the shared messaging tables and one table for handlers.
METADATA = MetaData()
TABLES = define_messaging_tables(METADATA)
HANDLED = Table(
    "handled",
    METADATA,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("event_id", String(200), nullable=False),
    Column("attempt", Integer, nullable=False),
)


@dataclass
class Store:
    db: Database
    tables: MessagingTables
    handled: Table


@pytest.fixture(scope="module")
async def module_database() -> AsyncIterator[LazyPostgresDatabase]:
    holder = LazyPostgresDatabase(METADATA, "ledgerlink_shared_consumer")
    yield holder
    await holder.drop()


async def _postgres_database(
    request: pytest.FixtureRequest, holder: LazyPostgresDatabase
) -> Database:
    return await holder.open(request.getfixturevalue("postgres_backend"))


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.wire)])
async def store(
    request: pytest.FixtureRequest, tmp_path: Path, module_database: LazyPostgresDatabase
) -> AsyncIterator[Store]:
    if request.param == "sqlite":
        db = Database(create_engine(f"sqlite+aiosqlite:///{tmp_path / 'consumer.db'}"))
        async with db.engine.begin() as connection:
            await connection.run_sync(METADATA.create_all)
    else:
        db = await _postgres_database(request, module_database)
    try:
        assert db.dialect == request.param
        yield Store(db=db, tables=TABLES, handled=HANDLED)
    finally:
        await db.dispose()


@dataclass
class Harness:
    """A consumer wired to a store, a fake dead-letter topic and its own metrics."""

    store: Store
    consumer: EventConsumer
    registry: CollectorRegistry
    dead_letters: list[DeadLetter] = field(default_factory=list)
    commits: list[int] = field(default_factory=list)
    calls: list[ReceivedEvent[Any]] = field(default_factory=list)

    def count(self, outcome: Outcome, event_type: str = ActivationRequestedV1.EVENT_TYPE) -> float:
        value = self.registry.get_sample_value(
            "ledgerlink_events_consumed_total",
            {"topic": TOPIC, "event_type": event_type, "outcome": str(outcome)},
        )
        return value or 0.0

    async def inbox_ids(self) -> list[str]:
        async with self.store.db.transaction() as session:
            result = await session.scalars(select(self.store.tables.inbox.c.event_id))
            return list(result)

    async def handled_rows(self) -> list[tuple[str, int]]:
        table = self.store.handled
        async with self.store.db.transaction() as session:
            result = await session.execute(
                select(table.c.event_id, table.c.attempt).order_by(table.c.id)
            )
            return [(row.event_id, row.attempt) for row in result]


def _harness(store: Store, *, attempts: int = 3, fail_dead_letters: bool = False) -> Harness:
    registry = CollectorRegistry()
    metrics = MessagingMetrics(registry)
    letters: list[DeadLetter] = []
    commits: list[int] = []

    async def publish_dead_letter(letter: DeadLetter) -> None:
        if fail_dead_letters:
            raise ConnectionError("dead-letter topic unreachable")
        letters.append(letter)

    consumer = EventConsumer(
        name=GROUP,
        db=store.db,
        inbox=Inbox(store.tables, GROUP),
        dead_letters=DeadLetterPublisher(publish_dead_letter, metrics, consumer=GROUP),
        settings=KafkaSettings(handler_attempts=attempts, retry_backoff_seconds=0),
        metrics=metrics,
        on_commit=lambda: commits.append(len(commits) + 1),
    )
    return Harness(
        store=store,
        consumer=consumer,
        registry=registry,
        dead_letters=letters,
        commits=commits,
    )


def _activation_json(**overrides: Any) -> bytes:
    payload: dict[str, Any] = {
        "provider": "procountor",
        "business_id": "0112038-9",
        "country": "FI",
        "company_name": "Nokia Oyj",
        "requested_by": {"email": "cfo@example.fi", "name": "Maija"},
        "product": "reconciliation",
    }
    payload.update(overrides)
    return json.dumps(payload).encode()


def _record(
    *,
    value: bytes | None = None,
    event_type: str = ActivationRequestedV1.EVENT_TYPE,
    envelope: CloudEvent | None = None,
    headers: list[tuple[str, bytes]] | None = None,
    offset: int = 41,
) -> RawRecord:
    envelope = envelope or CloudEvent.new(source="ledgerlink/store", type=event_type)
    return RawRecord(
        topic=TOPIC,
        partition=2,
        offset=offset,
        key=b"0112038-9",
        value=_activation_json() if value is None else value,
        headers=envelope.to_headers() if headers is None else headers,
    )


def _recording_handler(harness: Harness) -> Any:
    async def handle(session: AsyncSession, event: ReceivedEvent[ActivationRequestedV1]) -> None:
        harness.calls.append(event)
        await session.execute(
            harness.store.handled.insert().values(
                event_id=event.envelope.id, attempt=len(harness.calls)
            )
        )

    return handle


def _dlq_headers(letter: DeadLetter) -> dict[str, str]:
    return {name: value.decode() for name, value in letter.headers}


# --- the happy path and redeliveries -------------------------------------------------------


async def test_valid_event_is_handled_once_and_recorded(store: Store) -> None:
    harness = _harness(store)
    harness.consumer.route(ActivationRequestedV1, _recording_handler(harness))
    envelope = CloudEvent.new(source="ledgerlink/store", type=ActivationRequestedV1.EVENT_TYPE)
    record = _record(envelope=envelope)

    outcome = await harness.consumer.process(record)

    assert outcome is Outcome.PROCESSED
    [event] = harness.calls
    assert event.envelope == envelope
    assert isinstance(event.data, ActivationRequestedV1)
    assert event.data.provider is Provider.PROCOUNTOR
    assert event.key == "0112038-9"
    assert (event.topic, event.partition, event.offset) == (TOPIC, 2, 41)
    assert await harness.inbox_ids() == [envelope.id]
    assert await harness.handled_rows() == [(envelope.id, 1)]
    assert harness.dead_letters == []
    assert harness.commits == [1]
    assert harness.count(Outcome.PROCESSED) == 1
    assert (
        harness.registry.get_sample_value(
            "ledgerlink_event_handler_seconds_count",
            {"event_type": ActivationRequestedV1.EVENT_TYPE},
        )
        == 1
    )


async def test_log_lines_while_handling_name_the_record(
    store: Store, json_log_lines: list[dict[str, Any]]
) -> None:
    harness = _harness(store)
    handler_logger = logging.getLogger("ledgerlink.test.handler")

    async def handle(session: AsyncSession, event: ReceivedEvent[ActivationRequestedV1]) -> None:
        handler_logger.info("handling the activation")

    harness.consumer.route(ActivationRequestedV1, handle)
    envelope = CloudEvent.new(source="ledgerlink/store", type=ActivationRequestedV1.EVENT_TYPE)
    tracer = TracerProvider().get_tracer("test")

    # The Kafka telemetry middleware opens a consumer span around process(); so do we.
    with tracer.start_as_current_span("consume") as span:
        assert await harness.consumer.process(_record(envelope=envelope)) is Outcome.PROCESSED
    logging.getLogger("ledgerlink.test.handler").info("after the record")

    [line] = [entry for entry in json_log_lines if entry["message"] == "handling the activation"]
    assert line["event_id"] == envelope.id
    assert line["topic"] == TOPIC
    assert line["partition"] == 2
    assert line["offset"] == 41
    assert line["trace_id"] == format(span.get_span_context().trace_id, "032x")
    [after] = [entry for entry in json_log_lines if entry["message"] == "after the record"]
    assert "event_id" not in after
    assert "offset" not in after


async def test_dead_letter_log_names_the_record_even_without_an_envelope(
    store: Store, json_log_lines: list[dict[str, Any]]
) -> None:
    harness = _harness(store)
    harness.consumer.route(ActivationRequestedV1, _recording_handler(harness))
    headers = [("ce_id", b"evt-no-type"), ("ce_specversion", b"1.0")]

    outcome = await harness.consumer.process(_record(headers=headers, offset=9))

    assert outcome is Outcome.DEAD_LETTERED
    [line] = [entry for entry in json_log_lines if entry["message"] == "event dead-lettered"]
    assert line["event_id"] == "evt-no-type"
    assert (line["topic"], line["partition"], line["offset"]) == (TOPIC, 2, 9)
    assert line["error_class"] == "EnvelopeError"


async def test_same_event_again_is_a_duplicate(store: Store) -> None:
    harness = _harness(store)
    harness.consumer.route(ActivationRequestedV1, _recording_handler(harness))
    envelope = CloudEvent.new(source="ledgerlink/store", type=ActivationRequestedV1.EVENT_TYPE)

    first = await harness.consumer.process(_record(envelope=envelope))
    again = await harness.consumer.process(_record(envelope=envelope))
    # A redelivery after a rebalance or an outbox re-send: other offset, same event id.
    republished = await harness.consumer.process(_record(envelope=envelope, offset=977))

    assert (first, again, republished) == (
        Outcome.PROCESSED,
        Outcome.DUPLICATE,
        Outcome.DUPLICATE,
    )
    assert len(harness.calls) == 1
    assert await harness.handled_rows() == [(envelope.id, 1)]
    assert harness.commits == [1]
    assert harness.count(Outcome.DUPLICATE) == 2
    assert harness.dead_letters == []


async def test_key_may_be_absent(store: Store) -> None:
    harness = _harness(store)
    harness.consumer.route(ActivationRequestedV1, _recording_handler(harness))
    record = _record()
    keyless = RawRecord(
        topic=record.topic,
        partition=record.partition,
        offset=record.offset,
        key=None,
        value=record.value,
        headers=record.headers,
    )

    assert await harness.consumer.process(keyless) is Outcome.PROCESSED
    assert harness.calls[0].key is None


async def test_routes_by_event_type(store: Store) -> None:
    harness = _harness(store)
    seen: list[str] = []

    async def on_activated(session: AsyncSession, event: ReceivedEvent[Any]) -> None:
        seen.append(f"activated:{event.data.connection_id}")

    async def on_rejected(session: AsyncSession, event: ReceivedEvent[Any]) -> None:
        seen.append(f"rejected:{event.data.reason_code}")

    harness.consumer.route(ConnectionActivatedV1, on_activated)
    harness.consumer.route(ConnectionRejectedV1, on_rejected)
    connection_id = uuid.uuid4()
    base = {
        "connection_id": str(connection_id),
        "provider": "netvisor",
        "business_id": "0112038-9",
        "company_name": "Nokia Oyj",
    }
    activated = json.dumps({**base, "environment_id": str(uuid.uuid4())}).encode()
    rejected = json.dumps(
        {**base, "environment_id": None, "reason_code": "nope", "message": "No."}
    ).encode()

    outcomes = [
        await harness.consumer.process(
            _record(value=activated, event_type=ConnectionActivatedV1.EVENT_TYPE)
        ),
        await harness.consumer.process(
            _record(value=rejected, event_type=ConnectionRejectedV1.EVENT_TYPE)
        ),
    ]

    assert outcomes == [Outcome.PROCESSED, Outcome.PROCESSED]
    assert seen == [f"activated:{connection_id}", "rejected:nope"]


# --- records that can never succeed go to the dead-letter topic -----------------------------


@pytest.mark.parametrize(
    ("value", "headers", "error_class", "message"),
    [
        pytest.param(
            b'{"provider": "netvisor",',
            None,
            "MalformedDataError",
            "data is not valid JSON: Expecting",
            id="malformed-json",
        ),
        pytest.param(
            b"\xff\xfe not utf-8",
            None,
            "MalformedDataError",
            "data is not valid JSON",
            id="not-utf8-value",
        ),
        pytest.param(b"", None, "MalformedDataError", "the record has no value", id="empty"),
        pytest.param(
            b'["a", "list"]',
            None,
            "MalformedDataError",
            "data must be a JSON object, not list",
            id="json-array",
        ),
        pytest.param(
            None,
            [("ce_specversion", b"1.0"), ("ce_source", b"ledgerlink/store")],
            "EnvelopeError",
            "missing CloudEvents header(s): ce_id, ce_type",
            id="missing-ce-headers",
        ),
        pytest.param(
            None,
            [],
            "EnvelopeError",
            "missing CloudEvents header(s): ce_specversion, ce_id, ce_source, ce_type",
            id="no-headers",
        ),
        pytest.param(
            _activation_json(provider="xero"),
            None,
            "ValidationError",
            "invalid data: provider: Input should be 'netvisor', 'procountor'",
            id="unknown-provider",
        ),
        pytest.param(
            _activation_json(requested_by={"email": "nope", "name": "A"}),
            None,
            "ValidationError",
            "invalid data: requested_by.email: String should match pattern",
            id="bad-email",
        ),
        pytest.param(
            _activation_json(colour="blue"),
            None,
            "ValidationError",
            "invalid data: colour: Extra inputs are not permitted",
            id="extra-field",
        ),
    ],
)
async def test_unprocessable_records_are_dead_lettered(
    store: Store,
    value: bytes | None,
    headers: list[tuple[str, bytes]] | None,
    error_class: str,
    message: str,
) -> None:
    harness = _harness(store)
    harness.consumer.route(ActivationRequestedV1, _recording_handler(harness))
    record = _record(value=value, headers=headers, offset=1234)

    outcome = await harness.consumer.process(record)

    assert outcome is Outcome.DEAD_LETTERED
    assert harness.calls == []
    assert await harness.inbox_ids() == []
    assert harness.commits == []
    [letter] = harness.dead_letters
    assert letter.topic == f"{TOPIC}.dlq"
    assert letter.key == b"0112038-9"
    assert letter.value == (record.value or b"")
    assert letter.value == (value if value is not None else _activation_json())
    assert letter.headers[: len(record.headers)] == list(record.headers)
    dlq = _dlq_headers(letter)
    assert dlq[DLQ_ERROR_CLASS] == error_class
    assert dlq[DLQ_ERROR_MESSAGE].startswith(message)
    assert dlq[DLQ_ORIGINAL_TOPIC] == TOPIC
    assert dlq[DLQ_ORIGINAL_PARTITION] == "2"
    assert dlq[DLQ_ORIGINAL_OFFSET] == "1234"
    assert dlq[DLQ_CONSUMER] == GROUP
    assert datetime.fromisoformat(dlq[DLQ_FAILED_AT]).tzinfo is not None
    assert (
        harness.registry.get_sample_value(
            "ledgerlink_dead_letters_total", {"topic": TOPIC, "error_class": error_class}
        )
        == 1
    )


async def test_unknown_type_is_dead_lettered_naming_what_is_expected(store: Store) -> None:
    harness = _harness(store)
    harness.consumer.route(ActivationRequestedV1, _recording_handler(harness))
    harness.consumer.route(ConnectionActivatedV1, _recording_handler(harness))

    outcome = await harness.consumer.process(_record(event_type="ledgerlink.surprise.v1"))

    assert outcome is Outcome.DEAD_LETTERED
    dlq = _dlq_headers(harness.dead_letters[0])
    assert dlq[DLQ_ERROR_CLASS] == "UnknownEventTypeError"
    assert dlq[DLQ_ERROR_MESSAGE] == (
        "event type 'ledgerlink.surprise.v1' is not consumed from ledgerlink.activations; "
        "expected ledgerlink.activation.requested.v1, ledgerlink.connection.activated.v1"
    )
    assert harness.calls == []
    assert harness.count(Outcome.DEAD_LETTERED, event_type="?") == 1


async def test_replayed_dead_letter_gets_fresh_dlq_headers(store: Store) -> None:
    harness = _harness(store)
    harness.consumer.route(ActivationRequestedV1, _recording_handler(harness))
    envelope = CloudEvent.new(source="s", type=ActivationRequestedV1.EVENT_TYPE)
    stale = [(DLQ_ERROR_CLASS, b"OldError"), (DLQ_ORIGINAL_OFFSET, b"1")]
    record = _record(value=b"{", headers=envelope.to_headers() + stale, offset=5)

    await harness.consumer.process(record)

    names = [name for name, _ in harness.dead_letters[0].headers]
    assert names.count(DLQ_ERROR_CLASS) == 1
    assert names.count(DLQ_ORIGINAL_OFFSET) == 1
    dlq = _dlq_headers(harness.dead_letters[0])
    assert dlq[DLQ_ERROR_CLASS] == "MalformedDataError"
    assert dlq[DLQ_ORIGINAL_OFFSET] == "5"


async def test_long_error_message_is_truncated(store: Store) -> None:
    harness = _harness(store)

    async def fail(session: AsyncSession, event: ReceivedEvent[Any]) -> None:
        raise ValueError("x" * 10_000)

    harness.consumer.route(ActivationRequestedV1, fail)

    assert await harness.consumer.process(_record()) is Outcome.DEAD_LETTERED
    assert len(_dlq_headers(harness.dead_letters[0])[DLQ_ERROR_MESSAGE]) == 4000


async def test_ignored_type_is_neither_handled_nor_dead_lettered(store: Store) -> None:
    harness = _harness(store)
    harness.consumer.route(ActivationRequestedV1, _recording_handler(harness))
    harness.consumer.ignore(ConnectionRejectedV1.EVENT_TYPE, "ledgerlink.other.v1")

    outcome = await harness.consumer.process(
        _record(value=b"not even json", event_type=ConnectionRejectedV1.EVENT_TYPE)
    )

    assert outcome is Outcome.IGNORED
    assert harness.dead_letters == []
    assert harness.calls == []
    assert await harness.inbox_ids() == []
    assert harness.commits == []
    assert harness.count(Outcome.IGNORED, event_type="?") == 1


# --- handler failures --------------------------------------------------------------------


async def test_failing_handler_is_retried_and_failed_attempts_roll_back(store: Store) -> None:
    harness = _harness(store, attempts=3)
    record_and_maybe_fail = _recording_handler(harness)

    async def flaky(session: AsyncSession, event: ReceivedEvent[Any]) -> None:
        await record_and_maybe_fail(session, event)
        if len(harness.calls) < 3:
            raise RuntimeError(f"transient failure {len(harness.calls)}")

    harness.consumer.route(ActivationRequestedV1, flaky)
    envelope = CloudEvent.new(source="s", type=ActivationRequestedV1.EVENT_TYPE)

    outcome = await harness.consumer.process(_record(envelope=envelope))

    assert outcome is Outcome.PROCESSED
    assert len(harness.calls) == 3
    assert await harness.handled_rows() == [(envelope.id, 3)]  # attempts 1 and 2 rolled back
    assert await harness.inbox_ids() == [envelope.id]
    assert harness.dead_letters == []
    assert harness.commits == [1]


async def test_always_failing_handler_is_dead_lettered(store: Store) -> None:
    harness = _harness(store, attempts=3)
    record_then_fail = _recording_handler(harness)

    async def broken(session: AsyncSession, event: ReceivedEvent[Any]) -> None:
        await record_then_fail(session, event)
        raise KeyError("account 9999")

    harness.consumer.route(ActivationRequestedV1, broken)
    record = _record()

    outcome = await harness.consumer.process(record)

    assert outcome is Outcome.DEAD_LETTERED
    assert len(harness.calls) == 3
    assert await harness.handled_rows() == []
    assert await harness.inbox_ids() == []  # a replay from the DLQ will be processed
    assert harness.commits == []
    [letter] = harness.dead_letters
    dlq = _dlq_headers(letter)
    assert dlq[DLQ_ERROR_CLASS] == "KeyError"
    assert dlq[DLQ_ERROR_MESSAGE] == "handler failed after 3 attempt(s): 'account 9999'"
    assert letter.value == record.value
    assert harness.count(Outcome.DEAD_LETTERED) == 1


async def test_single_attempt_setting(store: Store) -> None:
    harness = _harness(store, attempts=1)

    async def broken(session: AsyncSession, event: ReceivedEvent[Any]) -> None:
        harness.calls.append(event)
        raise RuntimeError("no")

    harness.consumer.route(ActivationRequestedV1, broken)

    assert await harness.consumer.process(_record()) is Outcome.DEAD_LETTERED
    assert len(harness.calls) == 1
    assert _dlq_headers(harness.dead_letters[0])[DLQ_ERROR_MESSAGE] == (
        "handler failed after 1 attempt(s): no"
    )


async def test_integrity_error_is_a_handler_failure_not_infrastructure(store: Store) -> None:
    harness = _harness(store, attempts=2)

    async def conflict(session: AsyncSession, event: ReceivedEvent[Any]) -> None:
        harness.calls.append(event)
        raise IntegrityError("INSERT ...", {}, Exception("duplicate key"))

    harness.consumer.route(ActivationRequestedV1, conflict)

    assert await harness.consumer.process(_record()) is Outcome.DEAD_LETTERED
    assert len(harness.calls) == 2
    assert _dlq_headers(harness.dead_letters[0])[DLQ_ERROR_CLASS] == "IntegrityError"


@pytest.mark.parametrize(
    "error",
    [
        pytest.param(OperationalError("stmt", {}, Exception("down")), id="OperationalError"),
        pytest.param(InterfaceError("stmt", {}, Exception("closed")), id="InterfaceError"),
        pytest.param(
            DBAPIError("stmt", {}, Exception("gone"), connection_invalidated=True),
            id="DBAPIError-invalidated",
        ),
        pytest.param(ConnectionError("refused"), id="ConnectionError"),
        pytest.param(TimeoutError("slow"), id="TimeoutError"),
        pytest.param(InfrastructureError("auth service down"), id="InfrastructureError"),
    ],
)
async def test_infrastructure_errors_propagate_for_redelivery(
    store: Store, error: Exception
) -> None:
    harness = _harness(store, attempts=3)

    async def down(session: AsyncSession, event: ReceivedEvent[Any]) -> None:
        await _recording_handler(harness)(session, event)
        raise error

    harness.consumer.route(ActivationRequestedV1, down)
    record = _record()

    with pytest.raises(type(error)) as caught:
        await harness.consumer.process(record)

    assert caught.value is error
    assert len(harness.calls) == 1  # not retried here: Kafka redelivers
    assert harness.dead_letters == []
    assert await harness.inbox_ids() == []
    assert await harness.handled_rows() == []
    assert harness.commits == []

    # The redelivered record is processed once the dependency is back.
    harness.consumer.route(ActivationRequestedV1, _recording_handler(harness))
    assert await harness.consumer.process(record) is Outcome.PROCESSED
    assert harness.commits == [1]


async def test_failed_dead_letter_publish_propagates(store: Store) -> None:
    harness = _harness(store, fail_dead_letters=True)
    harness.consumer.route(ActivationRequestedV1, _recording_handler(harness))

    with pytest.raises(ConnectionError, match="dead-letter topic unreachable"):
        await harness.consumer.process(_record(value=b"{broken"))

    assert harness.count(Outcome.DEAD_LETTERED, event_type="?") == 0


async def test_on_commit_only_for_processed(store: Store) -> None:
    harness = _harness(store, attempts=1)
    harness.consumer.route(ActivationRequestedV1, _recording_handler(harness))
    harness.consumer.ignore(ConnectionRejectedV1.EVENT_TYPE)
    envelope = CloudEvent.new(source="s", type=ActivationRequestedV1.EVENT_TYPE)

    outcomes = [
        await harness.consumer.process(_record(value=b"[")),
        await harness.consumer.process(_record(event_type=ConnectionRejectedV1.EVENT_TYPE)),
        await harness.consumer.process(_record(envelope=envelope)),
        await harness.consumer.process(_record(envelope=envelope)),
    ]

    assert outcomes == [
        Outcome.DEAD_LETTERED,
        Outcome.IGNORED,
        Outcome.PROCESSED,
        Outcome.DUPLICATE,
    ]
    assert harness.commits == [1]
    count = await _count_inbox(store)
    assert count == 1


async def _count_inbox(store: Store) -> int:
    async with store.db.transaction() as session:
        return int(await session.scalar(select(func.count()).select_from(store.tables.inbox)) or 0)
