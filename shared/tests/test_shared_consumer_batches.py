"""EventConsumer.process_batch: one transaction per batch, a savepoint per event.

Real databases (SQLite file and PostgreSQL); the dead-letter topic is an in-memory list.
The handler writes a row of its own and an outbox row, so a rolled-back event shows in
both tables.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client import CollectorRegistry
from sqlalchemy import Column, Integer, MetaData, String, Table, select, text
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncSession

from ledgerlink.shared.config import KafkaSettings
from ledgerlink.shared.db import Database, create_engine
from ledgerlink.shared.envelope import CloudEvent
from ledgerlink.shared.events import ActivationRequestedV1, ConnectionRejectedV1, Provider
from ledgerlink.shared.messaging.consumer import (
    EventConsumer,
    Outcome,
    ReceivedEvent,
    event_scope,
)
from ledgerlink.shared.messaging.dead_letters import (
    DLQ_ERROR_CLASS,
    DLQ_ERROR_MESSAGE,
    DeadLetter,
    DeadLetterPublisher,
    RawRecord,
)
from ledgerlink.shared.messaging.inbox import Inbox
from ledgerlink.shared.messaging.outbox import Outbox
from ledgerlink.shared.messaging.tables import define_messaging_tables
from ledgerlink.shared.metrics import MessagingMetrics
from ledgerlink.shared.pytest_plugin import LazyPostgresDatabase

TOPIC = "ledgerlink.activations"
GROUP = "ledgerlink-auth"

METADATA = MetaData()
TABLES = define_messaging_tables(METADATA)
HANDLED = Table(
    "handled",
    METADATA,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("event_id", String(200), nullable=False),
    Column("company", String(200), nullable=False),
)


@pytest.fixture(scope="module")
async def module_database() -> AsyncIterator[LazyPostgresDatabase]:
    holder = LazyPostgresDatabase(METADATA, "ledgerlink_shared_batches")
    yield holder
    await holder.drop()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.wire)])
async def db(
    request: pytest.FixtureRequest, tmp_path: Path, module_database: LazyPostgresDatabase
) -> AsyncIterator[Database]:
    if request.param == "sqlite":
        database = Database(create_engine(f"sqlite+aiosqlite:///{tmp_path / 'batches.db'}"))
        async with database.engine.begin() as connection:
            await connection.run_sync(METADATA.create_all)
    else:
        database = await module_database.open(request.getfixturevalue("postgres_backend"))
    try:
        assert database.dialect == request.param
        yield database
    finally:
        await database.dispose()


class PoisonError(Exception):
    """A handler failure no retry cures (when declared permanent)."""


@dataclass
class Harness:
    db: Database
    consumer: EventConsumer
    registry: CollectorRegistry
    #: Companies whose events fail, and how many more times (a large number: always).
    failing: dict[str, int] = field(default_factory=dict)
    calls: list[tuple[str, str]] = field(default_factory=list)
    dead_letters: list[DeadLetter] = field(default_factory=list)
    commits: int = 0
    outbox: Outbox = field(default_factory=lambda: Outbox(TABLES, source="ledgerlink/test"))

    async def handle(self, session: AsyncSession, event: ReceivedEvent[Any]) -> None:
        company = event.data.business_id
        self.calls.append((company, event.envelope.id))
        # Written before the failure: a failed event's rows must roll back with it.
        await session.execute(HANDLED.insert().values(event_id=event.envelope.id, company=company))
        await self.outbox.add(
            session,
            ConnectionRejectedV1(
                connection_id=uuid.uuid4(),
                environment_id=None,
                provider=Provider.NETVISOR,
                business_id=company,
                company_name="Test Oy",
                reason_code="test",
                message=event.envelope.id,
            ),
            key=company,
        )
        if self.failing.get(company, 0) > 0:
            self.failing[company] -= 1
            raise PoisonError(f"cannot handle {company}")

    async def handled(self) -> list[tuple[str, str]]:
        async with self.db.transaction() as session:
            rows = await session.execute(
                select(HANDLED.c.company, HANDLED.c.event_id).order_by(HANDLED.c.id)
            )
            return [(row.company, row.event_id) for row in rows]

    async def outbox_messages(self) -> list[str]:
        async with self.db.transaction() as session:
            payloads = await session.scalars(
                select(TABLES.outbox.c.payload).order_by(TABLES.outbox.c.id)
            )
            return [json.loads(payload)["message"] for payload in payloads]

    async def inbox_ids(self) -> set[str]:
        async with self.db.transaction() as session:
            return set(await session.scalars(select(TABLES.inbox.c.event_id)))

    def count(self, outcome: Outcome) -> float:
        value = self.registry.get_sample_value(
            "ledgerlink_events_consumed_total",
            {
                "topic": TOPIC,
                "event_type": ActivationRequestedV1.EVENT_TYPE,
                "outcome": str(outcome),
            },
        )
        return value or 0.0


def _harness(
    db: Database,
    *,
    attempts: int = 3,
    permanent: tuple[type[Exception], ...] = (),
    tracer_provider: TracerProvider | None = None,
    events_per_parallel_transaction: int = 100,
) -> Harness:
    registry = CollectorRegistry()
    metrics = MessagingMetrics(registry)
    holder: list[Harness] = []

    async def publish_dead_letter(letter: DeadLetter) -> None:
        holder[0].dead_letters.append(letter)

    def committed() -> None:
        holder[0].commits += 1

    consumer = EventConsumer(
        name=GROUP,
        db=db,
        inbox=Inbox(TABLES, GROUP),
        dead_letters=DeadLetterPublisher(publish_dead_letter, metrics, consumer=GROUP),
        settings=KafkaSettings(
            handler_attempts=attempts,
            retry_backoff_seconds=0,
            consume_events_per_parallel_transaction=events_per_parallel_transaction,
        ),
        metrics=metrics,
        on_commit=committed,
        tracer_provider=tracer_provider,
    )
    harness = Harness(db=db, consumer=consumer, registry=registry)
    holder.append(harness)
    consumer.route(ActivationRequestedV1, harness.handle, permanent_errors=permanent)
    return harness


def _record(
    company: str,
    offset: int,
    *,
    partition: int = 0,
    envelope: CloudEvent | None = None,
    value: bytes | None = None,
    headers: list[tuple[str, bytes]] | None = None,
) -> RawRecord:
    envelope = envelope or CloudEvent.new(
        source="ledgerlink/store", type=ActivationRequestedV1.EVENT_TYPE
    )
    data = {
        "provider": "netvisor",
        "business_id": company,
        "country": "FI",
        "company_name": "Test Oy",
        "requested_by": {"email": "cfo@example.fi", "name": "Maija"},
        "product": "planning",
    }
    return RawRecord(
        topic=TOPIC,
        partition=partition,
        offset=offset,
        key=company.encode(),
        value=json.dumps(data).encode() if value is None else value,
        headers=(headers or []) + envelope.to_headers(),
    )


def _id(record: RawRecord) -> str:
    return dict(record.headers)["ce_id"].decode()


async def test_batch_is_handled_in_order_with_bulk_inbox_and_outbox(db: Database) -> None:
    harness = _harness(db)
    records = [_record(company, offset) for offset, company in enumerate(["A", "B", "A", "C"])]

    outcomes = await harness.consumer.process_batch(records)

    assert outcomes == [Outcome.PROCESSED] * 4
    assert await harness.handled() == [(r.key.decode(), _id(r)) for r in records if r.key]
    # outbox rows follow the events' order, so the relay publishes them in that order
    assert await harness.outbox_messages() == [_id(r) for r in records]
    assert await harness.inbox_ids() == {_id(r) for r in records}
    assert harness.commits == 1  # one transaction, one wake-up of the relay
    assert harness.count(Outcome.PROCESSED) == 4


async def test_poison_event_in_the_middle_rolls_back_alone_and_is_dead_lettered(
    db: Database,
) -> None:
    harness = _harness(db, attempts=3)
    harness.failing["P"] = 100
    records = [
        _record("A", 10),
        _record("P", 11),
        _record("B", 12),
        _record("P", 13),  # same company, behind the poison: must not overtake it
        _record("C", 14),
    ]

    outcomes = await harness.consumer.process_batch(records)

    assert outcomes == [
        Outcome.PROCESSED,
        Outcome.DEAD_LETTERED,
        Outcome.PROCESSED,
        Outcome.DEAD_LETTERED,
        Outcome.PROCESSED,
    ]
    # every attempt at P rolled back with its savepoint: its own row and its outbox row
    assert await harness.handled() == [
        ("A", _id(records[0])),
        ("B", _id(records[2])),
        ("C", _id(records[4])),
    ]
    assert await harness.outbox_messages() == [_id(records[i]) for i in (0, 2, 4)]
    assert await harness.inbox_ids() == {_id(records[i]) for i in (0, 2, 4)}
    # the poison: one attempt in the batch, two more on its own, then its dead letter;
    # the later P event was not tried before the first one was dead-lettered
    p_calls = [event_id for company, event_id in harness.calls if company == "P"]
    assert p_calls == [_id(records[1])] * 3 + [_id(records[3])] * 3
    letters = [dict(letter.headers) for letter in harness.dead_letters]
    assert [letter["ce_id"].decode() for letter in letters] == [_id(records[1]), _id(records[3])]
    assert letters[0][DLQ_ERROR_CLASS] == b"PoisonError"
    assert b"failed after 3 attempt(s)" in letters[0][DLQ_ERROR_MESSAGE]
    assert harness.count(Outcome.DEAD_LETTERED) == 2


async def test_transient_failure_is_retried_after_the_batch_keeping_company_order(
    db: Database,
) -> None:
    harness = _harness(db, attempts=3)
    harness.failing["P"] = 1  # fails once, then succeeds
    records = [_record("P", 0), _record("A", 1), _record("P", 2), _record("A", 3)]

    outcomes = await harness.consumer.process_batch(records)

    assert outcomes == [Outcome.PROCESSED] * 4
    handled = await harness.handled()
    by_company: dict[str, list[str]] = {}
    for company, event_id in handled:
        by_company.setdefault(company, []).append(event_id)
    # per-company order kept: P's second event only after its first succeeded
    assert by_company == {
        "P": [_id(records[0]), _id(records[2])],
        "A": [_id(records[1]), _id(records[3])],
    }
    assert await harness.inbox_ids() == {_id(r) for r in records}
    assert harness.dead_letters == []


async def test_company_order_holds_across_a_long_batch(db: Database) -> None:
    """Long enough for SQLite to split it into several transactions (one writer at a time):
    a company's event held back by a failure is not overtaken by its later events."""
    harness = _harness(db, attempts=3)
    harness.failing["P"] = 1
    companies = [f"C{index}" for index in range(120)]
    companies[10] = companies[110] = "P"
    records = [_record(company, offset) for offset, company in enumerate(companies)]

    outcomes = await harness.consumer.process_batch(records)

    assert outcomes == [Outcome.PROCESSED] * 120
    handled = await harness.handled()
    assert [event_id for company, event_id in handled if company == "P"] == [
        _id(records[10]),
        _id(records[110]),
    ]
    assert len(handled) == 120
    assert await harness.inbox_ids() == {_id(r) for r in records}


async def test_permanent_error_is_dead_lettered_without_retries(db: Database) -> None:
    harness = _harness(db, attempts=3, permanent=(PoisonError,))
    harness.failing["P"] = 100
    records = [_record("P", 0), _record("A", 1)]

    assert await harness.consumer.process_batch(records) == [
        Outcome.DEAD_LETTERED,
        Outcome.PROCESSED,
    ]
    assert [company for company, _ in harness.calls] == ["P", "A"]
    assert dict(harness.dead_letters[0].headers)[DLQ_ERROR_MESSAGE] == b"cannot handle P"


async def test_malformed_record_in_the_middle_is_dead_lettered_and_the_rest_handled(
    db: Database,
) -> None:
    harness = _harness(db)
    records = [_record("A", 0), _record("B", 1, value=b'{"provider": '), _record("C", 2)]

    outcomes = await harness.consumer.process_batch(records)

    assert outcomes == [Outcome.PROCESSED, Outcome.DEAD_LETTERED, Outcome.PROCESSED]
    assert [company for company, _ in await harness.handled()] == ["A", "C"]
    [letter] = harness.dead_letters
    assert dict(letter.headers)[DLQ_ERROR_CLASS] == b"MalformedDataError"


async def test_duplicate_inside_one_batch_is_handled_once(db: Database) -> None:
    harness = _harness(db)
    envelope = CloudEvent.new(source="ledgerlink/store", type=ActivationRequestedV1.EVENT_TYPE)
    records = [_record("A", 0, envelope=envelope), _record("A", 1, envelope=envelope)]

    assert await harness.consumer.process_batch(records) == [
        Outcome.PROCESSED,
        Outcome.DUPLICATE,
    ]
    assert await harness.handled() == [("A", envelope.id)]
    assert await harness.outbox_messages() == [envelope.id]
    assert harness.count(Outcome.DUPLICATE) == 1


async def test_redelivered_batch_after_a_crash_before_the_offset_commit_applies_nothing_twice(
    db: Database,
) -> None:
    """The batch committed, the process died before committing offsets: Kafka redelivers."""
    harness = _harness(db)
    records = [_record(company, offset) for offset, company in enumerate("ABC")]
    assert await harness.consumer.process_batch(records) == [Outcome.PROCESSED] * 3

    # redelivered from the first record of the batch, plus a new one behind it
    later = _record("D", 3)
    outcomes = await harness.consumer.process_batch([*records, later])

    assert outcomes == [Outcome.DUPLICATE] * 3 + [Outcome.PROCESSED]
    assert [company for company, _ in await harness.handled()] == ["A", "B", "C", "D"]
    assert await harness.outbox_messages() == [_id(r) for r in [*records, later]]
    assert len(harness.calls) == 4


async def test_infrastructure_error_rolls_back_the_whole_batch_for_redelivery(
    db: Database,
) -> None:
    harness = _harness(db)
    records = [_record("A", 0), _record("DOWN", 1), _record("C", 2)]
    original = harness.handle

    async def database_down(session: AsyncSession, event: ReceivedEvent[Any]) -> None:
        await original(session, event)
        if event.data.business_id == "DOWN":
            raise OperationalError("INSERT", {}, Exception("server closed the connection"))

    harness.consumer.route(ActivationRequestedV1, database_down)

    with pytest.raises(OperationalError):
        await harness.consumer.process_batch(records)
    # A's savepoint had been released, yet nothing of the batch is kept (on SQLite too)
    assert await harness.handled() == []
    assert await harness.outbox_messages() == []
    assert await harness.inbox_ids() == set()
    assert harness.dead_letters == []
    assert harness.commits == 0

    harness.consumer.route(ActivationRequestedV1, original)
    assert await harness.consumer.process_batch(records) == [Outcome.PROCESSED] * 3
    assert [company for company, _ in await harness.handled()] == ["A", "DOWN", "C"]


async def test_one_span_per_event_continuing_its_producer_trace_and_one_per_batch(
    db: Database,
) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    harness = _harness(db, tracer_provider=provider)
    trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
    traced = _record(
        "A", 0, headers=[("traceparent", f"00-{trace_id}-00f067aa0ba902b7-01".encode())]
    )

    await harness.consumer.process_batch([traced, _record("B", 1)])

    spans = exporter.get_finished_spans()
    names = sorted(span.name for span in spans)
    assert names == sorted(
        [f"{GROUP} process batch"] + [f"{ActivationRequestedV1.EVENT_TYPE} process"] * 2
    )
    [batch] = [span for span in spans if span.name.endswith("batch")]
    events = [span for span in spans if span is not batch]
    assert format(events[0].context.trace_id, "032x") == trace_id
    assert all(span.links[0].context.span_id == batch.context.span_id for span in events)
    # no span per SQL statement: statement spans are opt-in (DatabaseSettings)
    assert not [span for span in spans if span.name.split()[0] in {"INSERT", "SELECT"}]


@pytest.fixture
async def postgres_db(
    request: pytest.FixtureRequest, module_database: LazyPostgresDatabase
) -> AsyncIterator[Database]:
    database = await module_database.open(request.getfixturevalue("postgres_backend"))
    try:
        yield database
    finally:
        await database.dispose()


@pytest.mark.wire
async def test_partitions_of_a_batch_run_in_their_own_transactions_on_postgres(
    postgres_db: Database,
) -> None:
    """PostgreSQL: each partition's share of a batch commits on its own, several at once;
    a partition whose database fails is redelivered and what did commit is not reapplied.
    (SQLite, one writer at a time, runs a whole batch in one transaction: the tests above.)
    """
    harness = _harness(postgres_db, events_per_parallel_transaction=1)
    transactions: dict[str, int] = {}
    original = harness.handle
    down = {"yes": True}

    async def recording(session: AsyncSession, event: ReceivedEvent[Any]) -> None:
        await original(session, event)
        transactions[event.envelope.id] = int(await session.scalar(text("SELECT txid_current()")))
        if event.data.business_id == "DOWN" and down["yes"]:
            raise OperationalError("INSERT", {}, Exception("server closed the connection"))

    harness.consumer.route(ActivationRequestedV1, recording)
    first = [_record("A", 0, partition=0), _record("B", 1, partition=0)]
    second = [_record("C", 0, partition=1), _record("DOWN", 1, partition=1)]
    records = [first[0], second[0], first[1], second[1]]

    with pytest.raises(OperationalError):
        await harness.consumer.process_batch(records)
    # partition 0 committed in one transaction; partition 1 rolled back in another
    assert transactions[_id(first[0])] == transactions[_id(first[1])]
    assert transactions[_id(first[0])] != transactions[_id(second[0])]
    assert [company for company, _ in await harness.handled()] == ["A", "B"]

    down["yes"] = False
    outcomes = await harness.consumer.process_batch(records)  # Kafka redelivers the batch

    assert outcomes == [Outcome.DUPLICATE, Outcome.PROCESSED, Outcome.DUPLICATE, Outcome.PROCESSED]
    handled = await harness.handled()
    assert sorted(company for company, _ in handled) == ["A", "B", "C", "DOWN"]
    assert [c for c, _ in handled if c in {"C", "DOWN"}] == ["C", "DOWN"]  # partition order


# --- batch handlers: a route's set-based handler for runs of one event type ---------------


def _with_batch_handler(harness: Harness) -> list[list[str]]:
    """Route ``harness``'s events through a batch handler too; returns its calls (event ids).

    The batch handler writes what the per-event handler writes, event after event, and
    raises when it meets a failing company (after writing the rows of the earlier ones:
    they must roll back with its savepoint).
    """
    batches: list[list[str]] = []

    async def handle_batch(
        session: AsyncSession, events: Sequence[ReceivedEvent[ActivationRequestedV1]]
    ) -> None:
        batches.append([event.envelope.id for event in events])
        for event in events:
            company = event.data.business_id
            if harness.failing.get(company, 0) > 0:
                raise PoisonError(f"cannot handle {company} in a batch")
            with event_scope(event):
                harness.calls.append((company, event.envelope.id))
                await session.execute(
                    HANDLED.insert().values(event_id=event.envelope.id, company=company)
                )
                await harness.outbox.add(
                    session, _rejected(company, event.envelope.id), key=company
                )

    harness.consumer.route(ActivationRequestedV1, harness.handle, batch_handler=handle_batch)
    return batches


def _rejected(company: str, message: str) -> ConnectionRejectedV1:
    return ConnectionRejectedV1(
        connection_id=uuid.uuid4(),
        environment_id=None,
        provider=Provider.NETVISOR,
        business_id=company,
        company_name="Test Oy",
        reason_code="test",
        message=message,
    )


def _other_record(company: str, offset: int) -> RawRecord:
    """An event of another type consumed by the same consumer, same topic and partition."""
    envelope = CloudEvent.new(source="ledgerlink/auth", type=ConnectionRejectedV1.EVENT_TYPE)
    return RawRecord(
        topic=TOPIC,
        partition=0,
        offset=offset,
        key=company.encode(),
        value=_rejected(company, "other").model_dump_json().encode(),
        headers=envelope.to_headers(),
    )


async def test_batch_handler_takes_a_run_of_one_type_in_one_call(db: Database) -> None:
    harness = _harness(db)
    batches = _with_batch_handler(harness)
    records = [_record(company, offset) for offset, company in enumerate(["A", "B", "A", "C"])]

    assert await harness.consumer.process_batch(records) == [Outcome.PROCESSED] * 4

    assert batches == [[_id(r) for r in records]]
    assert await harness.handled() == [(r.key.decode(), _id(r)) for r in records if r.key]
    assert await harness.outbox_messages() == [_id(r) for r in records]
    assert await harness.inbox_ids() == {_id(r) for r in records}
    assert harness.commits == 1
    assert harness.count(Outcome.PROCESSED) == 4


async def test_batch_handler_failing_falls_back_to_a_savepoint_per_event(db: Database) -> None:
    """A poison event in the middle: the batch handler's savepoint rolls back (with the rows
    it wrote for earlier events), the run goes through the per-event handler, the poison is
    retried and dead-lettered alone, and every other event is applied exactly once."""
    harness = _harness(db, attempts=3)
    batches = _with_batch_handler(harness)
    harness.failing["P"] = 100
    records = [
        _record("A", 10),
        _record("P", 11),
        _record("B", 12),
        _record("P", 13),  # same company, behind the poison
        _record("C", 14),
    ]

    outcomes = await harness.consumer.process_batch(records)

    assert outcomes == [
        Outcome.PROCESSED,
        Outcome.DEAD_LETTERED,
        Outcome.PROCESSED,
        Outcome.DEAD_LETTERED,
        Outcome.PROCESSED,
    ]
    assert batches == [[_id(r) for r in records]]  # tried once as a whole
    assert await harness.handled() == [
        ("A", _id(records[0])),
        ("B", _id(records[2])),
        ("C", _id(records[4])),
    ]
    assert await harness.outbox_messages() == [_id(records[i]) for i in (0, 2, 4)]
    assert await harness.inbox_ids() == {_id(records[i]) for i in (0, 2, 4)}
    # A was written by the batch handler (rolled back), then once by its own handler
    a_calls = [event_id for company, event_id in harness.calls if company == "A"]
    assert a_calls == [_id(records[0])] * 2
    p_calls = [event_id for company, event_id in harness.calls if company == "P"]
    assert p_calls == [_id(records[1])] * 3 + [_id(records[3])] * 3
    letters = [dict(letter.headers)["ce_id"].decode() for letter in harness.dead_letters]
    assert letters == [_id(records[1]), _id(records[3])]
    assert harness.count(Outcome.DEAD_LETTERED) == 2
    assert harness.count(Outcome.PROCESSED) == 3
    assert harness.commits == 1


async def test_batch_handler_runs_keep_order_across_types_duplicates_and_rejects(
    db: Database,
) -> None:
    """Runs are cut where another handled type comes between; duplicates, ignored and
    unparsable records inside a run do not cut it; every company's order holds."""
    harness = _harness(db)
    batches = _with_batch_handler(harness)

    async def other(session: AsyncSession, event: ReceivedEvent[ConnectionRejectedV1]) -> None:
        harness.calls.append((event.data.business_id, event.envelope.id))

    harness.consumer.route(ConnectionRejectedV1, other)
    harness.consumer.ignore("ledgerlink.something.else.v1")
    envelope = CloudEvent.new(source="ledgerlink/store", type=ActivationRequestedV1.EVENT_TYPE)
    ignored = CloudEvent.new(source="ledgerlink/store", type="ledgerlink.something.else.v1")
    records = [
        _record("A", 0),  # a run of one: the per-event handler
        _other_record("A", 1),
        _record("A", 2, envelope=envelope),
        _record("B", 3, value=b"[]"),  # unparsable: dead-lettered
        _record("A", 4, envelope=envelope),  # the same event again
        _record("C", 5, envelope=ignored),
        _record("A", 6),
    ]

    outcomes = await harness.consumer.process_batch(records)

    assert outcomes == [
        Outcome.PROCESSED,
        Outcome.PROCESSED,
        Outcome.PROCESSED,
        Outcome.DEAD_LETTERED,
        Outcome.DUPLICATE,
        Outcome.IGNORED,
        Outcome.PROCESSED,
    ]
    assert batches == [[_id(records[2]), _id(records[6])]]
    assert harness.calls == [("A", _id(records[i])) for i in (0, 1, 2, 6)]
    assert await harness.outbox_messages() == [_id(records[i]) for i in (0, 2, 6)]


async def test_batch_handler_infrastructure_error_rolls_back_the_batch(db: Database) -> None:
    harness = _harness(db)

    async def database_down(
        session: AsyncSession, events: Sequence[ReceivedEvent[ActivationRequestedV1]]
    ) -> None:
        await session.execute(HANDLED.insert().values(event_id="x", company="x"))
        raise OperationalError("INSERT", {}, Exception("server closed the connection"))

    harness.consumer.route(ActivationRequestedV1, harness.handle, batch_handler=database_down)
    records = [_record("A", 0), _record("B", 1)]

    with pytest.raises(OperationalError):
        await harness.consumer.process_batch(records)
    assert harness.calls == []  # no fallback: the batch is redelivered
    assert await harness.handled() == []
    assert await harness.inbox_ids() == set()
    assert harness.commits == 0


async def test_batch_handler_keeps_one_span_per_event_in_its_producer_trace(
    db: Database,
) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    harness = _harness(db, tracer_provider=provider)
    _with_batch_handler(harness)
    trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
    traced = _record(
        "A", 0, headers=[("traceparent", f"00-{trace_id}-00f067aa0ba902b7-01".encode())]
    )

    await harness.consumer.process_batch([traced, _record("B", 1)])

    spans = exporter.get_finished_spans()
    [batch] = [span for span in spans if span.name.endswith("batch")]
    events = [span for span in spans if span is not batch]
    assert [span.name for span in events] == [f"{ActivationRequestedV1.EVENT_TYPE} process"] * 2
    assert format(events[0].context.trace_id, "032x") == trace_id
    assert events[1].context.trace_id != events[0].context.trace_id
    assert all(span.links[0].context.span_id == batch.context.span_id for span in events)
    # the outbox row written in A's scope carries A's trace
    async with db.transaction() as session:
        headers = list(
            await session.scalars(select(TABLES.outbox.c.headers).order_by(TABLES.outbox.c.id))
        )
    assert trace_id in headers[0]["trace"]["traceparent"]
    assert trace_id not in headers[1]["trace"]["traceparent"]


@pytest.mark.wire
async def test_a_small_batch_is_not_split_and_a_big_one_keeps_partitions_whole(
    postgres_db: Database,
) -> None:
    """Each transaction costs a dozen statements: a batch is split by partition only into
    shares of at least ``consume_events_per_parallel_transaction`` events."""
    harness = _harness(postgres_db, events_per_parallel_transaction=4)
    transactions: dict[str, int] = {}
    original = harness.handle

    async def recording(session: AsyncSession, event: ReceivedEvent[Any]) -> None:
        await original(session, event)
        transactions[event.envelope.id] = int(await session.scalar(text("SELECT txid_current()")))

    harness.consumer.route(ActivationRequestedV1, recording)
    small = [_record(f"S{p}", 0, partition=p) for p in range(3)]  # 3 events < 4: one
    assert await harness.consumer.process_batch(small) == [Outcome.PROCESSED] * 3
    assert len({transactions[_id(r)] for r in small}) == 1

    # 12 events in 6 partitions, shares of >= 4 events: 3 transactions, partitions whole
    big = [_record(f"B{p}", 10 + n, partition=p) for n in range(2) for p in range(6)]
    assert await harness.consumer.process_batch(big) == [Outcome.PROCESSED] * 12
    by_partition: dict[int, set[int]] = {}
    for record in big:
        by_partition.setdefault(record.partition, set()).add(transactions[_id(record)])
    assert all(len(txids) == 1 for txids in by_partition.values())
    assert len(set().union(*by_partition.values())) == 3


async def test_batch_handler_after_a_crash_before_the_offset_commit_applies_nothing_twice(
    db: Database,
) -> None:
    """The batch committed, the process died before committing offsets: Kafka redelivers
    the batch; the batch handler gets only what is new."""
    harness = _harness(db)
    batches = _with_batch_handler(harness)
    records = [_record(company, offset) for offset, company in enumerate("ABC")]
    assert await harness.consumer.process_batch(records) == [Outcome.PROCESSED] * 3

    later = [_record("D", 3), _record("E", 4)]
    outcomes = await harness.consumer.process_batch([*records, *later])

    assert outcomes == [Outcome.DUPLICATE] * 3 + [Outcome.PROCESSED] * 2
    assert batches == [[_id(r) for r in records], [_id(r) for r in later]]
    assert [company for company, _ in await harness.handled()] == ["A", "B", "C", "D", "E"]
    assert await harness.outbox_messages() == [_id(r) for r in [*records, *later]]
