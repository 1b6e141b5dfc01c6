"""Outbox, relay and inbox against real databases (SQLite file and PostgreSQL).

The tables are made with ``create_all`` on a fresh ``MetaData``: this tests the shared
table definitions themselves; the services create them through their migrations.
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client import CollectorRegistry
from sqlalchemy import MetaData, event, func, select, text, update
from sqlalchemy.engine import RowMapping
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncSession

from ledgerlink.shared.config import OutboxSettings
from ledgerlink.shared.db import Database, create_engine
from ledgerlink.shared.envelope import CloudEvent
from ledgerlink.shared.events import ActivationRequestedV1, JournalLineV1, JournalReadyV1
from ledgerlink.shared.messaging.inbox import Inbox
from ledgerlink.shared.messaging.outbox import Outbox, OutboxRecord, OutboxRelay
from ledgerlink.shared.messaging.tables import MessagingTables, define_messaging_tables
from ledgerlink.shared.metrics import MessagingMetrics
from ledgerlink.shared.pytest_plugin import LazyPostgresDatabase

WAIT = 10.0  # seconds: upper bound for anything awaited on an event or queue
SOURCE = "ledgerlink/test"


#: A fresh metadata holding only the shared messaging tables.
METADATA = MetaData()
TABLES = define_messaging_tables(METADATA)


@dataclass
class Store:
    db: Database
    tables: MessagingTables


@pytest.fixture(scope="module")
async def module_database() -> AsyncIterator[LazyPostgresDatabase]:
    holder = LazyPostgresDatabase(METADATA, "ledgerlink_shared_messaging")
    yield holder
    await holder.drop()


async def _postgres_database(
    request: pytest.FixtureRequest, holder: LazyPostgresDatabase
) -> Database:
    return await holder.open(request.getfixturevalue("postgres_backend"))


async def _open_store(
    kind: str, tmp_path: Path, request: pytest.FixtureRequest, holder: LazyPostgresDatabase
) -> Store:
    if kind == "sqlite":
        db = Database(create_engine(f"sqlite+aiosqlite:///{tmp_path / 'store' / 'messaging.db'}"))
        async with db.engine.begin() as connection:
            await connection.run_sync(METADATA.create_all)
    else:
        db = await _postgres_database(request, holder)
    assert db.dialect == kind
    return Store(db=db, tables=TABLES)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.wire)])
async def store(
    request: pytest.FixtureRequest, tmp_path: Path, module_database: LazyPostgresDatabase
) -> AsyncIterator[Store]:
    opened = await _open_store(request.param, tmp_path, request, module_database)
    try:
        yield opened
    finally:
        await opened.db.dispose()


@pytest.fixture
async def pg_store(
    request: pytest.FixtureRequest, tmp_path: Path, module_database: LazyPostgresDatabase
) -> AsyncIterator[Store]:
    opened = await _open_store("postgresql", tmp_path, request, module_database)
    try:
        yield opened
    finally:
        await opened.db.dispose()


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


@pytest.fixture
def metrics(registry: CollectorRegistry) -> MessagingMetrics:
    return MessagingMetrics(registry)


def _activation(business_id: str = "0112038-9") -> ActivationRequestedV1:
    return ActivationRequestedV1.model_validate(
        {
            "provider": "netvisor",
            "business_id": business_id,
            "country": "FI",
            "company_name": "Nokia Oyj",
            "requested_by": {"email": "cfo@example.fi", "name": "Maija"},
            "product": "planning",
        }
    )


@dataclass
class FakePublisher:
    """An in-memory Kafka: records what was published; can fail on chosen calls."""

    fail_on_calls: set[int] = field(default_factory=set)
    records: list[OutboxRecord] = field(default_factory=list)
    trace_ids: list[int] = field(default_factory=list)
    calls: int = 0
    queue: asyncio.Queue[OutboxRecord] = field(default_factory=asyncio.Queue)
    failed: asyncio.Event = field(default_factory=asyncio.Event)

    async def __call__(self, record: OutboxRecord) -> None:
        self.calls += 1
        if self.calls in self.fail_on_calls:
            self.failed.set()
            raise RuntimeError(f"broker refused call {self.calls}")
        self.records.append(record)
        self.trace_ids.append(trace.get_current_span().get_span_context().trace_id)
        self.queue.put_nowait(record)

    async def next(self) -> OutboxRecord:
        return await asyncio.wait_for(self.queue.get(), WAIT)


def _relay(
    store: Store,
    publish: Any,
    metrics: MessagingMetrics,
    *,
    batch_size: int = 200,
    poll_interval_seconds: float = 60.0,
    retention_hours: float = 72,
    lock_name: str | None = None,
) -> OutboxRelay:
    return OutboxRelay(
        store.db,
        store.tables,
        publish,
        OutboxSettings(
            batch_size=batch_size,
            poll_interval_seconds=poll_interval_seconds,
            retention_hours=retention_hours,
        ),
        metrics,
        lock_name=lock_name or f"test-relay-{uuid.uuid4()}",
    )


async def _add(store: Store, count: int = 1, *, outbox: Outbox | None = None) -> list[CloudEvent]:
    outbox = outbox or Outbox(store.tables, source=SOURCE)
    envelopes = []
    for index in range(count):
        async with store.db.transaction() as session:
            envelopes.append(
                await outbox.add(session, _activation(), key=f"key-{index}", subject=f"s{index}")
            )
    return envelopes


async def _outbox_rows(store: Store) -> list[RowMapping]:
    async with store.db.transaction() as session:
        result = await session.execute(
            select(store.tables.outbox).order_by(store.tables.outbox.c.id)
        )
        return list(result.mappings().all())


# --- Outbox.add ---------------------------------------------------------------------------


async def test_add_writes_a_row_when_the_transaction_commits(store: Store) -> None:
    outbox = Outbox(store.tables, source=SOURCE, topic_prefix="dev.")
    data = _activation()

    async with store.db.transaction() as session:
        envelope = await outbox.add(session, data, key="0112038-9", subject="0112038-9")

    rows = await _outbox_rows(store)
    assert len(rows) == 1
    row = rows[0]
    assert row["event_id"] == envelope.id
    assert row["event_type"] == "ledgerlink.activation.requested.v1"
    assert row["topic"] == "dev.ledgerlink.activations"
    assert row["key"] == "0112038-9"
    assert bytes(row["payload"]) == data.model_dump_json().encode()
    assert ActivationRequestedV1.model_validate_json(row["payload"]) == data
    assert row["created_at"] is not None
    assert row["published_at"] is None
    assert row["attempts"] == 0
    assert row["last_error"] is None
    assert envelope.source == SOURCE
    assert envelope.subject == "0112038-9"


async def test_add_leaves_nothing_when_the_transaction_rolls_back(store: Store) -> None:
    outbox = Outbox(store.tables, source=SOURCE)

    async def add_then_fail() -> None:
        async with store.db.transaction() as session:
            await outbox.add(session, _activation(), key="k")
            raise RuntimeError("state change failed")

    with pytest.raises(RuntimeError, match="state change failed"):
        await add_then_fail()

    assert await _outbox_rows(store) == []


async def test_stored_cloud_event_headers(store: Store) -> None:
    outbox = Outbox(store.tables, source=SOURCE)

    async with store.db.transaction() as session:
        envelope = await outbox.add(session, _activation(), key="k", subject="0112038-9")

    headers = (await _outbox_rows(store))[0]["headers"]
    if isinstance(headers, str):  # pragma: no cover - depends on the driver
        headers = json.loads(headers)
    ce = headers["ce"]
    assert ce["ce_specversion"] == "1.0"
    assert ce["ce_id"] == envelope.id
    assert ce["ce_source"] == SOURCE
    assert ce["ce_type"] == ActivationRequestedV1.EVENT_TYPE
    assert ce["ce_subject"] == "0112038-9"
    assert ce["content-type"] == "application/json"
    assert datetime.fromisoformat(ce["ce_time"]) == envelope.time
    assert CloudEvent.from_headers(ce) == envelope
    assert headers["trace"] == {}  # no span was active


async def test_trace_context_is_captured_when_a_span_is_active(store: Store) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("test")
    outbox = Outbox(store.tables, source=SOURCE)

    with tracer.start_as_current_span("handle activation") as span:
        async with store.db.transaction() as session:
            await outbox.add(session, _activation(), key="k")
    context = span.get_span_context()

    headers = (await _outbox_rows(store))[0]["headers"]
    carrier = headers["trace"]
    trace_id = format(context.trace_id, "032x")
    assert trace_id in carrier["traceparent"]
    assert carrier["traceparent"].startswith(f"00-{trace_id}-{context.span_id:016x}-")
    finished = exporter.get_finished_spans()
    assert [s.name for s in finished] == ["handle activation"]
    assert finished[0].context is not None
    assert finished[0].context.trace_id == context.trace_id

    # The relay publishes inside that trace, from another task and long after.
    publisher = FakePublisher()
    relay = _relay(store, publisher, MessagingMetrics(CollectorRegistry()))
    assert await relay.publish_pending() == 1
    assert publisher.records[0].trace_carrier == carrier
    assert publisher.trace_ids == [context.trace_id]


# --- OutboxRelay.publish_pending ------------------------------------------------------------


async def test_publish_pending_in_id_order_and_only_once(
    store: Store, metrics: MessagingMetrics, registry: CollectorRegistry
) -> None:
    outbox = Outbox(store.tables, source=SOURCE, topic_prefix="t.")
    envelopes = await _add(store, 3, outbox=outbox)
    journal = JournalReadyV1(
        journal_id="j1",
        source="nmbrs",
        business_id="33011433",
        period="2024-03",
        run_reference="r1",
        lines=(JournalLineV1(account="4000", debit="1.00"),),
    )
    async with store.db.transaction() as session:
        envelopes.append(await outbox.add(session, journal, key="33011433"))
    publisher = FakePublisher()
    relay = _relay(store, publisher, metrics)

    assert await relay.publish_pending() == 4

    assert [record.event_id for record in publisher.records] == [e.id for e in envelopes]
    ids = [record.id for record in publisher.records]
    assert ids == sorted(ids)
    first = publisher.records[0]
    assert first.topic == "t.ledgerlink.activations"
    assert first.key == "key-0"
    assert first.payload == _activation().model_dump_json().encode()
    assert CloudEvent.from_headers(first.headers) == envelopes[0]
    assert all(isinstance(value, bytes) for _, value in first.headers)
    assert publisher.records[3].topic == "t.ledgerlink.journals"
    assert publisher.records[3].key == "33011433"
    rows = await _outbox_rows(store)
    assert all(row["published_at"] is not None for row in rows)
    assert (
        registry.get_sample_value(
            "ledgerlink_outbox_published_total", {"topic": "t.ledgerlink.activations"}
        )
        == 3
    )
    assert (
        registry.get_sample_value(
            "ledgerlink_outbox_published_total", {"topic": "t.ledgerlink.journals"}
        )
        == 1
    )

    assert await relay.publish_pending() == 0
    assert len(publisher.records) == 4


async def test_publish_pending_with_nothing_to_do(
    store: Store, metrics: MessagingMetrics, registry: CollectorRegistry
) -> None:
    publisher = FakePublisher()

    assert await _relay(store, publisher, metrics).publish_pending() == 0
    assert publisher.calls == 0
    assert registry.get_sample_value("ledgerlink_outbox_pending") == 0


async def test_failed_publish_loses_nothing(store: Store, metrics: MessagingMetrics) -> None:
    envelopes = await _add(store, 5)
    publisher = FakePublisher(fail_on_calls={3})
    relay = _relay(store, publisher, metrics)

    with pytest.raises(RuntimeError, match="broker refused call 3"):
        await relay.publish_pending()
    assert [r.event_id for r in publisher.records] == [e.id for e in envelopes[:2]]

    assert await relay.publish_pending() >= 3
    assert {r.event_id for r in publisher.records} == {e.id for e in envelopes}
    # Whatever was republished went out again in id order.
    assert [r.event_id for r in publisher.records[2:]][-3:] == [e.id for e in envelopes[2:]]
    assert all(row["published_at"] is not None for row in await _outbox_rows(store))
    assert await relay.publish_pending() == 0


async def test_failed_publish_keeps_what_went_out_marked(
    store: Store, metrics: MessagingMetrics
) -> None:
    envelopes = await _add(store, 5)
    publisher = FakePublisher(fail_on_calls={3})
    relay = _relay(store, publisher, metrics)

    with pytest.raises(RuntimeError, match="broker refused call 3"):
        await relay.publish_pending()

    rows = await _outbox_rows(store)
    assert [row["published_at"] is not None for row in rows] == [True, True, False, False, False]
    assert await relay.publish_pending() == 3
    assert [r.event_id for r in publisher.records] == [e.id for e in envelopes]


class _CommitFailsOnce(Database):
    """The store refuses the next commit (as SQLite does with "database is locked")."""

    def __init__(self, db: Database) -> None:
        super().__init__(db.engine)
        self.refuse_next_commit = True

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        async with self.sessionmaker() as session, session.begin():
            yield session
            if self.refuse_next_commit:
                self.refuse_next_commit = False
                raise OperationalError("COMMIT", {}, Exception("database is locked"))


async def test_rows_sent_but_not_marked_are_not_sent_again(
    store: Store, metrics: MessagingMetrics
) -> None:
    envelopes = await _add(store, 3)
    publisher = FakePublisher()
    db = _CommitFailsOnce(store.db)
    relay = OutboxRelay(
        db,
        store.tables,
        publisher,
        OutboxSettings(batch_size=200, poll_interval_seconds=60.0, retention_hours=72),
        metrics,
        lock_name="test-outbox-unmarked",
    )

    with pytest.raises(OperationalError, match="database is locked"):
        await relay.publish_pending()
    assert [r.event_id for r in publisher.records] == [e.id for e in envelopes]
    assert all(row["published_at"] is None for row in await _outbox_rows(store))

    assert await relay.publish_pending() == 3
    assert [r.event_id for r in publisher.records] == [e.id for e in envelopes]  # once each
    assert all(row["published_at"] is not None for row in await _outbox_rows(store))
    assert await relay.publish_pending() == 0
    assert publisher.calls == 3


async def test_outbox_pending_gauge(
    store: Store, metrics: MessagingMetrics, registry: CollectorRegistry
) -> None:
    await _add(store, 5)
    relay = _relay(store, FakePublisher(), metrics, batch_size=2)

    published = []
    pending = []
    for _ in range(4):
        published.append(await relay.publish_pending())
        pending.append(registry.get_sample_value("ledgerlink_outbox_pending"))

    assert published == [2, 2, 1, 0]
    assert pending == [3, 1, 0, 0]


# --- OutboxRelay background task ----------------------------------------------------------


def _relay_tasks() -> list[asyncio.Task[Any]]:
    return [task for task in asyncio.all_tasks() if task.get_name() == "outbox-relay"]


async def test_start_wake_stop(store: Store, metrics: MessagingMetrics) -> None:
    publisher = FakePublisher()
    relay = _relay(store, publisher, metrics, poll_interval_seconds=60)

    relay.start()
    relay.start()  # idempotent
    try:
        assert len(_relay_tasks()) == 1
        [envelope] = await _add(store, 1)
        relay.wake()
        record = await publisher.next()
        assert record.event_id == envelope.id

        [second] = await _add(store, 1)
        relay.wake()
        assert (await publisher.next()).event_id == second.id
    finally:
        await asyncio.wait_for(relay.stop(), WAIT)

    assert _relay_tasks() == []
    await relay.stop()  # stopping twice is harmless
    assert publisher.calls == 2
    assert (await _outbox_rows(store))[0]["published_at"] is not None


async def test_stop_lets_the_current_pass_finish(store: Store, metrics: MessagingMetrics) -> None:
    [envelope] = await _add(store, 1)
    stopping: list[asyncio.Task[None]] = []
    published: list[str] = []
    stop_requested = asyncio.Event()

    async def publish_then_stop(record: OutboxRecord) -> None:
        published.append(record.event_id)
        # Shutdown arrives while the pass is still running (right after the send).
        stopping.append(asyncio.create_task(relay.stop()))
        stop_requested.set()

    relay = _relay(store, publish_then_stop, metrics, poll_interval_seconds=60)
    relay.start()
    try:
        await asyncio.wait_for(stop_requested.wait(), WAIT)
        await asyncio.wait_for(stopping[0], WAIT)
    finally:
        await relay.stop()

    assert published == [envelope.id]
    assert (await _outbox_rows(store))[0]["published_at"] is not None


async def test_started_relay_drains_a_backlog_larger_than_one_batch(
    store: Store, metrics: MessagingMetrics
) -> None:
    envelopes = await _add(store, 5)
    publisher = FakePublisher()
    relay = _relay(store, publisher, metrics, batch_size=2, poll_interval_seconds=60)

    relay.start()
    try:
        received = [await publisher.next() for _ in envelopes]
    finally:
        await relay.stop()

    assert [r.event_id for r in received] == [e.id for e in envelopes]


async def test_relay_pass_failure_is_counted_and_retried(
    store: Store,
    metrics: MessagingMetrics,
    registry: CollectorRegistry,
    caplog: pytest.LogCaptureFixture,
) -> None:
    [envelope] = await _add(store, 1)
    publisher = FakePublisher(fail_on_calls={1})
    relay = _relay(store, publisher, metrics, poll_interval_seconds=60)

    with caplog.at_level(logging.ERROR, logger="ledgerlink.shared.messaging.outbox"):
        relay.start()
        try:
            await asyncio.wait_for(publisher.failed.wait(), WAIT)
            relay.wake()
            record = await publisher.next()
        finally:
            await relay.stop()

    assert record.event_id == envelope.id
    assert registry.get_sample_value("ledgerlink_outbox_relay_errors_total") == 1
    assert "outbox relay pass failed; retrying" in caplog.messages


async def test_relay_purges_published_rows_past_retention(
    store: Store, metrics: MessagingMetrics
) -> None:
    old, recent = await _add(store, 2)
    outbox = store.tables.outbox
    async with store.db.transaction() as session:
        now = datetime.now(UTC)
        await session.execute(
            update(outbox)
            .where(outbox.c.event_id == old.id)
            .values(published_at=now - timedelta(hours=100))
        )
        await session.execute(
            update(outbox)
            .where(outbox.c.event_id == recent.id)
            .values(published_at=now - timedelta(hours=1))
        )
    [first_new] = await _add(store, 1)
    publisher = FakePublisher()
    relay = _relay(store, publisher, metrics, retention_hours=72, poll_interval_seconds=60)

    relay.start()
    try:
        # Pass 1 publishes first_new, then purges; pass 2 (woken) proves pass 1 is over.
        assert (await publisher.next()).event_id == first_new.id
        [second_new] = await _add(store, 1)
        relay.wake()
        assert (await publisher.next()).event_id == second_new.id
    finally:
        await relay.stop()

    remaining = [row["event_id"] for row in await _outbox_rows(store)]
    assert remaining == [recent.id, first_new.id, second_new.id]


@pytest.mark.wire
async def test_only_one_relay_per_store_at_a_time_on_postgres(
    pg_store: Store, metrics: MessagingMetrics
) -> None:
    [envelope] = await _add(pg_store, 1)
    entered, release = asyncio.Event(), asyncio.Event()
    slow_records: list[OutboxRecord] = []

    async def slow_publish(record: OutboxRecord) -> None:
        slow_records.append(record)
        entered.set()
        await release.wait()

    other = FakePublisher()
    relay_a = _relay(pg_store, slow_publish, metrics, lock_name="ledgerlink-outbox:svc")
    relay_b = _relay(pg_store, other, metrics, lock_name="ledgerlink-outbox:svc")

    first_pass = asyncio.create_task(relay_a.publish_pending())
    try:
        await asyncio.wait_for(entered.wait(), WAIT)
        assert await relay_b.publish_pending() == 0  # the advisory lock is held by A
        assert other.calls == 0
    finally:
        release.set()
    assert await asyncio.wait_for(first_pass, WAIT) == 1

    assert [r.event_id for r in slow_records] == [envelope.id]
    assert await relay_b.publish_pending() == 0
    assert other.calls == 0


# --- Inbox -------------------------------------------------------------------------------


async def _record(inbox: Inbox, store: Store, event_id: str, offset: int = 7) -> bool:
    async with store.db.transaction() as session:
        return await inbox.record_once(
            session,
            event_id=event_id,
            event_type="ledgerlink.activation.requested.v1",
            topic="ledgerlink.activations",
            partition=3,
            offset=offset,
        )


async def test_inbox_records_once_per_consumer(store: Store) -> None:
    auth = Inbox(store.tables, "auth")
    importer = Inbox(store.tables, "importer")
    event_id = str(uuid.uuid4())

    assert await _record(auth, store, event_id) is True
    assert await _record(auth, store, event_id, offset=99) is False  # a redelivery
    assert await _record(importer, store, event_id) is True
    assert await _record(importer, store, event_id) is False
    assert await _record(auth, store, str(uuid.uuid4())) is True

    async with store.db.transaction() as session:
        rows = (
            (
                await session.execute(
                    select(store.tables.inbox).order_by(
                        store.tables.inbox.c.consumer, store.tables.inbox.c.event_id
                    )
                )
            )
            .mappings()
            .all()
        )
    assert len(rows) == 3
    first = next(r for r in rows if r["consumer"] == "auth" and r["event_id"] == event_id)
    assert first["offset"] == 7  # the redelivery did not overwrite it
    assert first["partition"] == 3
    assert first["topic"] == "ledgerlink.activations"
    assert first["event_type"] == "ledgerlink.activation.requested.v1"
    assert first["received_at"] is not None


@pytest.mark.wire
@pytest.mark.parametrize("analysed", [False, True], ids=["no statistics", "analysed"])
async def test_a_batchs_inbox_check_probes_the_index_however_many_events_it_holds(
    pg_store: Store, analysed: bool
) -> None:
    """The batch path asks which of 500 ids are recorded: one primary-key probe per id,
    with or without statistics, however large the inbox (it grew with every event when
    PostgreSQL was left to plan ``event_id = ANY($1)``: a scan of the consumer's inbox)."""
    inbox = Inbox(pg_store.tables, "auth")
    table = pg_store.tables.inbox
    async with pg_store.db.transaction() as session:
        await session.execute(table.delete())
        await session.execute(
            table.insert(),
            [
                {"consumer": consumer, "event_id": f"e-{n}", "event_type": "t", "topic": "x",
                 "partition": 0, "offset": n, "received_at": datetime(2026, 1, 1, tzinfo=UTC)}
                for consumer in ("auth", "importer")
                for n in range(10_000)
            ],
        )  # fmt: skip
        if analysed:
            await session.execute(text("ANALYZE inbox"))
    asked = [f"e-{n}" for n in range(9_800, 10_300)]  # 200 recorded, 300 new

    sent: list[tuple[str, Any]] = []

    def record(*args: Any) -> None:
        sent.append((args[2], args[3]))

    event.listen(pg_store.db.engine.sync_engine, "before_cursor_execute", record)
    try:
        async with pg_store.db.transaction() as session:
            found = await inbox.already_recorded(session, asked)
    finally:
        event.remove(pg_store.db.engine.sync_engine, "before_cursor_execute", record)
    assert found == {f"e-{n}" for n in range(9_800, 10_000)}
    [(statement, parameters)] = sent
    async with pg_store.db.engine.connect() as connection:
        raw = (
            await connection.exec_driver_sql(
                f"EXPLAIN (ANALYZE, FORMAT JSON) {statement}", parameters
            )
        ).scalar()
    document: Any = json.loads(raw) if isinstance(raw, str) else raw
    plan: Any = document[0]["Plan"]

    def nodes(node: dict[str, Any]) -> list[dict[str, Any]]:
        return [node, *(n for child in node.get("Plans", ()) for n in nodes(child))]

    scans = [n for n in nodes(plan) if n.get("Relation Name") == "inbox"]
    assert [n["Node Type"] for n in scans] in (["Index Only Scan"], ["Index Scan"]), scans
    assert scans[0]["Actual Loops"] == len(asked)
    assert sum(n.get("Rows Removed by Filter", 0) for n in nodes(plan)) == 0
    assert plan["Actual Rows"] == 200


async def test_inbox_record_rolled_back_with_its_transaction(store: Store) -> None:
    inbox = Inbox(store.tables, "auth")
    event_id = str(uuid.uuid4())

    recorded: list[bool] = []

    async def record_then_fail() -> None:
        async with store.db.transaction() as session:
            recorded.append(
                await inbox.record_once(
                    session, event_id=event_id, event_type="t", topic="x", partition=0, offset=1
                )
            )
            raise RuntimeError("handler failed")

    with pytest.raises(RuntimeError, match="handler failed"):
        await record_then_fail()
    assert recorded == [True]

    assert await _record(inbox, store, event_id) is True
    async with store.db.transaction() as session:
        count = await session.scalar(select(func.count()).select_from(store.tables.inbox))
    assert count == 1


async def test_messaging_tables_shape(store: Store) -> None:
    outbox, inbox = store.tables.outbox, store.tables.inbox

    assert [c.name for c in inbox.primary_key.columns] == ["consumer", "event_id"]
    assert [c.name for c in outbox.primary_key.columns] == ["id"]
    assert outbox.c.event_id.unique is True
    assert {index.name for index in outbox.indexes} == {"ix_outbox_unpublished"}
    await store.db.ping()


# --- OutboxRelay with a SendRecord: send the pass, then wait once ------------------------------


@dataclass
class FakeProducer:
    """Sends return deliveries that the test settles: a producer with its brokers' acks."""

    fail_deliveries: set[int] = field(default_factory=set)
    sent: list[OutboxRecord] = field(default_factory=list)
    deliveries: list[asyncio.Future[None]] = field(default_factory=list)
    #: How many sends had been made when the relay first waited on a delivery.
    sent_before_first_wait: int | None = None

    async def send(self, record: OutboxRecord) -> Any:
        self.sent.append(record)
        delivery: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        number = len(self.sent)
        if number in self.fail_deliveries:
            delivery.set_exception(RuntimeError(f"broker refused record {number}"))
        else:
            delivery.set_result(None)
        self.deliveries.append(delivery)
        return self._awaited(delivery)

    async def _awaited(self, delivery: asyncio.Future[None]) -> None:
        if self.sent_before_first_wait is None:
            self.sent_before_first_wait = len(self.sent)
        await delivery

    async def publish(self, record: OutboxRecord) -> None:
        raise AssertionError("the relay sends; it does not publish one record at a time")


def _sending_relay(store: Store, producer: FakeProducer, metrics: MessagingMetrics) -> OutboxRelay:
    return OutboxRelay(
        store.db,
        store.tables,
        producer.publish,
        OutboxSettings(batch_size=200, poll_interval_seconds=60.0, retention_hours=72),
        metrics,
        lock_name=f"test-relay-{uuid.uuid4()}",
        send=producer.send,
    )


async def test_relay_sends_the_whole_pass_before_waiting_for_deliveries(
    store: Store, metrics: MessagingMetrics
) -> None:
    envelopes = await _add(store, 4)
    producer = FakeProducer()

    assert await _sending_relay(store, producer, metrics).publish_pending() == 4

    assert producer.sent_before_first_wait == 4  # send, send, send, send, then one flush
    assert [r.event_id for r in producer.sent] == [e.id for e in envelopes]
    assert all(row["published_at"] is not None for row in await _outbox_rows(store))


async def test_relay_marks_every_acknowledged_row_and_retries_only_the_refused_one(
    store: Store, metrics: MessagingMetrics
) -> None:
    envelopes = await _add(store, 4)
    producer = FakeProducer(fail_deliveries={2})
    relay = _sending_relay(store, producer, metrics)

    with pytest.raises(RuntimeError, match="broker refused record 2"):
        await relay.publish_pending()
    rows = await _outbox_rows(store)
    # rows 3 and 4 went out after the refused one: marked, so never sent twice
    assert [row["published_at"] is not None for row in rows] == [True, False, True, True]
    assert rows[1]["attempts"] == 1
    assert "broker refused record 2" in rows[1]["last_error"]

    assert await relay.publish_pending() == 1
    assert [r.event_id for r in producer.sent] == [e.id for e in envelopes] + [envelopes[1].id]


async def test_relay_rows_acknowledged_but_not_marked_are_not_sent_again(
    store: Store, metrics: MessagingMetrics
) -> None:
    """A failure after the send but before the marking committed publishes nothing twice."""
    envelopes = await _add(store, 3)
    producer = FakeProducer()
    db = _CommitFailsOnce(store.db)
    relay = OutboxRelay(
        db,
        store.tables,
        producer.publish,
        OutboxSettings(batch_size=200, poll_interval_seconds=60.0, retention_hours=72),
        metrics,
        lock_name="test-outbox-unmarked-send",
        send=producer.send,
    )

    with pytest.raises(OperationalError, match="database is locked"):
        await relay.publish_pending()
    assert all(row["published_at"] is None for row in await _outbox_rows(store))

    assert await relay.publish_pending() == 3
    assert [r.event_id for r in producer.sent] == [e.id for e in envelopes]  # once each
    assert all(row["published_at"] is not None for row in await _outbox_rows(store))
