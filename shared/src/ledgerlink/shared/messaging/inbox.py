"""The inbox: consumed event ids recorded in the handler's own transaction."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import Table, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from ledgerlink.shared.db import probe_each
from ledgerlink.shared.messaging.tables import MessagingTables


@dataclass(frozen=True)
class InboxEntry:
    """One consumed event, as the inbox records it."""

    event_id: str
    event_type: str
    topic: str
    partition: int
    offset: int


class Inbox:
    """Remembers which events a consumer has processed."""

    def __init__(self, tables: MessagingTables, consumer: str) -> None:
        self._table = tables.inbox
        self._consumer = consumer

    @property
    def table(self) -> Table:
        """The inbox table this consumer records into."""
        return self._table

    async def already_recorded(self, session: AsyncSession, event_ids: Sequence[str]) -> set[str]:
        """Which of ``event_ids`` this consumer has processed already (one query)."""
        if not event_ids:
            return set()
        result = await session.scalars(
            probe_each(
                select(self._table.c.event_id).where(self._table.c.consumer == self._consumer),
                self._table.c.event_id,
                event_ids,
                session.get_bind().dialect.name,
            )
        )
        return set(result)

    async def record_many(self, session: AsyncSession, entries: Sequence[InboxEntry]) -> None:
        """Record ``entries`` in one multi-row insert (Core, no ORM).

        For a batch that checked :meth:`already_recorded` in the same transaction: an id
        recorded meanwhile by another member of the group (a rebalance) violates the
        primary key and rolls the whole batch back, so nothing is applied twice.
        """
        if not entries:
            return
        now = datetime.now(UTC)
        await session.execute(
            self._table.insert(),
            [
                {
                    "consumer": self._consumer,
                    "event_id": entry.event_id,
                    "event_type": entry.event_type,
                    "topic": entry.topic,
                    "partition": entry.partition,
                    "offset": entry.offset,
                    "received_at": now,
                }
                for entry in entries
            ],
        )

    async def record_once(
        self,
        session: AsyncSession,
        *,
        event_id: str,
        event_type: str,
        topic: str,
        partition: int,
        offset: int,
    ) -> bool:
        """Record the event; False if it had been processed already (a redelivery)."""
        values = {
            "consumer": self._consumer,
            "event_id": event_id,
            "event_type": event_type,
            "topic": topic,
            "partition": partition,
            "offset": offset,
            "received_at": datetime.now(UTC),
        }
        dialect = session.get_bind().dialect.name
        insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
        statement = insert(self._table).values(**values).on_conflict_do_nothing()
        result = await session.execute(statement)
        return bool(result.rowcount == 1)  # type: ignore[attr-defined]
