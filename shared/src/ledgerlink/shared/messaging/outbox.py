"""The transactional outbox: events are written with the state change, then relayed.

A handler calls :meth:`Outbox.add` inside its transaction; nothing reaches Kafka unless
that transaction commits. :class:`OutboxRelay` publishes committed rows in id order and
marks them published. A crash between publishing and marking republishes the row with
the same CloudEvents id, and consumers drop it through their inbox.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import propagate
from sqlalchemy import func, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from ledgerlink.shared.config import OutboxSettings
from ledgerlink.shared.db import Database
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
        await session.execute(
            self._table.insert().values(
                event_id=envelope.id,
                event_type=envelope.type,
                topic=f"{self._topic_prefix}{data.TOPIC}",
                key=key,
                headers={
                    "ce": {name: value.decode() for name, value in envelope.to_headers()},
                    "trace": carrier,
                },
                payload=data.model_dump_json().encode(),
                created_at=datetime.now(UTC),
            )
        )
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
    ) -> None:
        self._db = db
        self._table = tables.outbox
        self._publish = publish
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
            published_ids: list[int] = []
            for row in rows:
                record = _record_from_row(row)
                if record.id in self._sent_unmarked:
                    published_ids.append(record.id)
                    continue
                try:
                    await self._publish_in_trace(record)
                except Exception as exc:
                    failure = exc
                    await session.execute(
                        update(self._table)
                        .where(self._table.c.id == record.id)
                        .values(
                            attempts=self._table.c.attempts + 1,
                            last_error=f"{type(exc).__name__}: {exc}"[:1000],
                        )
                    )
                    break
                published_ids.append(record.id)
                self._sent_unmarked.add(record.id)
                self._metrics.outbox_published.labels(record.topic).inc()
            if published_ids:
                await session.execute(
                    update(self._table)
                    .where(self._table.c.id.in_(published_ids))
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
