"""The transactional outbox: events are written with the state change, then relayed.

A handler calls :meth:`Outbox.add` inside its transaction; nothing reaches Kafka unless
that transaction commits. Inside a batch consumer's transaction the rows are buffered
(:class:`OutboxBuffer`) and written in one multi-row insert when the batch commits; an
event whose savepoint rolls back takes its rows out of the buffer.

:class:`OutboxRelay` publishes committed rows in id order and marks them published. With
a :data:`SendRecord` it sends a whole pass before waiting once for the brokers'
acknowledgements, then marks every acknowledged row in one update. What is guaranteed:

- a row acknowledged by the brokers whose marking fails to commit is marked by the next
  pass of the same relay without being sent again;
- a crash (process killed) between sending and marking republishes the row on the next
  run with the same CloudEvents id: at-least-once, and consumers drop it through their
  inbox; the producer is idempotent, so its own retries add no duplicates;
- rows are sent in id order on one idempotent producer, so per-key order holds. A row
  whose send fails is retried on the next pass; rows after it that the brokers did
  acknowledge stay marked (they are not sent twice), so after such a failure that one
  row can arrive after later rows of its key.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import propagate
from sqlalchemy import Table, func, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from ledgerlink.shared.config import OutboxSettings
from ledgerlink.shared.db import Database, one_of, plan_each_execution
from ledgerlink.shared.envelope import CloudEvent
from ledgerlink.shared.events import EventData
from ledgerlink.shared.messaging.tables import MessagingTables
from ledgerlink.shared.metrics import MessagingMetrics

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class OutboxRecord:
    """One committed event waiting to be published."""

    id: int
    event_id: str
    topic: str
    key: str | None
    headers: list[tuple[str, bytes]]
    payload: bytes
    trace_carrier: dict[str, str]


PublishRecord = Callable[[OutboxRecord], Awaitable[None]]
#: Hands a record to the producer and returns its delivery: awaiting the delivery waits
#: for the brokers' acknowledgement (and raises if the send failed). Called without the
#: row's trace context attached: it is in the record's ``trace_carrier``.
SendRecord = Callable[[OutboxRecord], Awaitable[Awaitable[Any]]]

#: ``session.info`` key under which a batch consumer keeps its :class:`OutboxBuffer`.
_BUFFER_KEY = "ledgerlink.outbox_buffer"


class OutboxBuffer:
    """Outbox rows of one batch transaction, inserted together when the batch commits.

    Attached to a session (:meth:`attach`), it makes :meth:`Outbox.add` append instead of
    inserting. :meth:`mark` and :meth:`discard_from` let a batch drop the rows of an event
    whose savepoint rolled back; :meth:`flush` writes the rest in add order (so ids, and
    the relay's order, follow the events' order).
    """

    def __init__(self) -> None:
        self._rows: list[tuple[Table, dict[str, Any]]] = []

    def attach(self, session: AsyncSession) -> None:
        """Buffer every :meth:`Outbox.add` made in ``session`` from now on."""
        session.info[_BUFFER_KEY] = self

    @staticmethod
    def detach(session: AsyncSession) -> None:
        """Make :meth:`Outbox.add` in ``session`` insert at once again."""
        session.info.pop(_BUFFER_KEY, None)

    def append(self, table: Table, values: dict[str, Any]) -> None:
        """Keep one row for ``table``."""
        self._rows.append((table, values))

    def mark(self) -> int:
        """A position to :meth:`discard_from` later."""
        return len(self._rows)

    def discard_from(self, mark: int) -> None:
        """Forget the rows added since ``mark`` (their event rolled back)."""
        del self._rows[mark:]

    def __len__(self) -> int:
        return len(self._rows)

    async def flush(self, session: AsyncSession) -> None:
        """Insert the buffered rows (one multi-row insert per table run) and forget them."""
        start = 0
        rows = self._rows
        while start < len(rows):
            table = rows[start][0]
            end = start
            while end < len(rows) and rows[end][0] is table:
                end += 1
            await session.execute(table.insert(), [values for _, values in rows[start:end]])
            start = end
        self._rows = []


class Outbox:
    """Writes events into the outbox table of the current transaction."""

    def __init__(self, tables: MessagingTables, *, source: str, topic_prefix: str = "") -> None:
        self._table = tables.outbox
        self._source = source
        self._topic_prefix = topic_prefix

    async def add(
        self, session: AsyncSession, data: EventData, *, key: str, subject: str | None = None
    ) -> CloudEvent:
        """Record ``data`` for publication on its topic, keyed by ``key`` (a business ID)."""
        envelope = CloudEvent.new(source=self._source, type=data.EVENT_TYPE, subject=subject)
        carrier: dict[str, str] = {}
        # Keep the producing span's context so the consumer's trace continues from it
        # even though the relay publishes later, from another task.
        propagate.inject(carrier)
        values: dict[str, Any] = {
            "event_id": envelope.id,
            "event_type": envelope.type,
            "topic": f"{self._topic_prefix}{data.TOPIC}",
            "key": key,
            "headers": {
                "ce": envelope.header_values(),
                "trace": carrier,
            },
            "payload": data.model_dump_json().encode(),
            "created_at": datetime.now(UTC),
        }
        buffer = session.info.get(_BUFFER_KEY)
        if isinstance(buffer, OutboxBuffer):
            buffer.append(self._table, values)
        else:
            await session.execute(self._table.insert().values(**values))
        return envelope


class OutboxRelay:
    """Moves committed outbox rows to Kafka, in order, one relay at a time per store."""

    def __init__(
        self,
        db: Database,
        tables: MessagingTables,
        publish: PublishRecord,
        settings: OutboxSettings,
        metrics: MessagingMetrics,
        *,
        lock_name: str,
        send: SendRecord | None = None,
    ) -> None:
        self._db = db
        self._table = tables.outbox
        self._publish = publish
        #: When given, a pass sends all its rows and then waits once for the deliveries.
        self._send = send
        self._settings = settings
        self._metrics = metrics
        # PostgreSQL advisory lock: with several replicas only one relays at a time, so
        # rows leave in id order and per-key ordering holds.
        self._lock_key = int.from_bytes(
            hashlib.sha256(lock_name.encode()).digest()[:8], "big", signed=True
        )
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self._last_purge = datetime.min.replace(tzinfo=UTC)
        #: Rows this relay published whose marking has not committed yet (the store
        #: refused it, e.g. SQLite's "database is locked"): the next pass marks them
        #: without publishing them again.
        self._sent_unmarked: set[int] = set()

    def wake(self) -> None:
        """Tell the relay that new rows were committed."""
        self._wake.set()

    def start(self) -> None:
        """Run the relay in the background."""
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="outbox-relay")

    async def stop(self, timeout: float = 10.0) -> None:
        """Stop after the current pass (a pass cut short would republish its rows)."""
        if self._task is None:
            return
        self._stopping = True
        self._wake.set()
        try:
            await asyncio.wait_for(asyncio.shield(self._task), timeout)
        except TimeoutError:
            logger.warning("outbox relay did not finish its pass in time; cancelling it")
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._task = None
        self._stopping = False

    async def _run(self) -> None:
        backoff = self._settings.poll_interval_seconds
        while not self._stopping:
            try:
                published = await self.publish_pending()
                backoff = self._settings.poll_interval_seconds
                await self._purge_published()
            except asyncio.CancelledError:
                raise
            except Exception:
                self._metrics.outbox_relay_errors.inc()
                logger.exception("outbox relay pass failed; retrying")
                published = 0
                backoff = min(backoff * 2, 30.0)
            if self._stopping:
                return
            if published >= self._settings.batch_size:
                continue  # more rows are waiting
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=backoff)
            self._wake.clear()

    async def publish_pending(self) -> int:
        """Publish one batch of unpublished rows; returns how many were published.

        Rows that went out are marked in the same transaction even when a later row
        fails; the failing row records its error and the exception is raised after the
        commit, so the next pass starts from it. Rows published by a pass whose marking
        failed to commit are marked by the next pass, not published again.
        """
        failure: Exception | None = None
        async with self._db.transaction() as session:
            if self._db.dialect == "postgresql":
                await plan_each_execution(session)  # the marking's ANY($1) probes the index
                locked = await session.scalar(
                    text("SELECT pg_try_advisory_xact_lock(:key)"), {"key": self._lock_key}
                )
                if not locked:
                    return 0
            rows = (
                (
                    await session.execute(
                        select(self._table)
                        .where(self._table.c.published_at.is_(None))
                        .order_by(self._table.c.id)
                        .limit(self._settings.batch_size)
                    )
                )
                .mappings()
                .all()
            )
            records = [_record_from_row(row) for row in rows]
            published_ids: list[int] = []
            failed: tuple[OutboxRecord, Exception] | None
            if self._send is not None:
                failed = await self._send_all(records, published_ids)
            else:
                failed = await self._publish_each(records, published_ids)
            if failed is not None:
                record, failure = failed
                await session.execute(
                    update(self._table)
                    .where(self._table.c.id == record.id)
                    .values(
                        attempts=self._table.c.attempts + 1,
                        last_error=f"{type(failure).__name__}: {failure}"[:1000],
                    )
                )
            if published_ids:
                await session.execute(
                    update(self._table)
                    .where(one_of(self._table.c.id, published_ids, self._db.dialect))
                    .values(published_at=datetime.now(UTC))
                )
            pending = await session.scalar(
                select(func.count())
                .select_from(self._table)
                .where(self._table.c.published_at.is_(None))
            )
            self._metrics.outbox_pending.set(pending or 0)
        self._sent_unmarked.difference_update(published_ids)
        if failure is not None:
            raise failure
        return len(published_ids)

    async def _publish_each(
        self, records: list[OutboxRecord], published_ids: list[int]
    ) -> tuple[OutboxRecord, Exception] | None:
        """Publish one row at a time, stopping at the first failure."""
        for record in records:
            if record.id in self._sent_unmarked:
                published_ids.append(record.id)
                continue
            try:
                await self._publish_in_trace(record)
            except Exception as exc:
                return record, exc
            published_ids.append(record.id)
            self._sent_unmarked.add(record.id)
            self._metrics.outbox_published.labels(record.topic).inc()
        return None

    async def _send_all(
        self, records: list[OutboxRecord], published_ids: list[int]
    ) -> tuple[OutboxRecord, Exception] | None:
        """Send every row, then wait once for all deliveries (the flush).

        Returns the first row that failed (to be sent again next pass); every row the
        brokers acknowledged goes into ``published_ids``, including rows after a failed
        one, because sending those again would publish them twice.
        """
        assert self._send is not None
        sent: list[tuple[OutboxRecord, Awaitable[Any]]] = []
        first_failure: tuple[OutboxRecord, Exception] | None = None
        for record in records:
            if record.id in self._sent_unmarked:
                published_ids.append(record.id)
                continue
            # No trace context is attached around the send: the record carries its own
            # (``trace_carrier``), which the sender puts in the record's headers.
            try:
                sent.append((record, await self._send(record)))
            except Exception as exc:
                # Not handed to the producer: it and every later row wait for the next pass.
                first_failure = (record, exc)
                break
        results = await asyncio.gather(*(delivery for _, delivery in sent), return_exceptions=True)
        published: Counter[str] = Counter()
        for (record, _), result in zip(sent, results, strict=True):
            if isinstance(result, BaseException):
                if not isinstance(result, Exception):
                    raise result  # cancelled: the pass is abandoned, nothing is marked
                if first_failure is None or first_failure[0].id > record.id:
                    first_failure = (record, result)
                continue
            published_ids.append(record.id)
            self._sent_unmarked.add(record.id)
            published[record.topic] += 1
        for topic, count in published.items():
            self._metrics.outbox_published.labels(topic).inc(count)
        return first_failure

    async def _publish_in_trace(self, record: OutboxRecord) -> None:
        token = otel_context.attach(propagate.extract(record.trace_carrier))
        try:
            await self._publish(record)
        finally:
            otel_context.detach(token)

    async def _purge_published(self) -> None:
        now = datetime.now(UTC)
        if now - self._last_purge < timedelta(minutes=10):
            return
        self._last_purge = now
        cutoff = now - timedelta(hours=self._settings.retention_hours)
        async with self._db.transaction() as session:
            await session.execute(
                self._table.delete().where(
                    self._table.c.published_at.is_not(None), self._table.c.published_at < cutoff
                )
            )


def _record_from_row(row: Any) -> OutboxRecord:
    headers: dict[str, Any] = row["headers"]
    return OutboxRecord(
        id=row["id"],
        event_id=row["event_id"],
        topic=row["topic"],
        key=row["key"],
        headers=[(name, str(value).encode()) for name, value in headers.get("ce", {}).items()],
        payload=row["payload"],
        trace_carrier=dict(headers.get("trace", {})),
    )
