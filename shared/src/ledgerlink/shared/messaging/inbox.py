"""The inbox: consumed event ids recorded in the handler's own transaction."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from ledgerlink.shared.messaging.tables import MessagingTables


class Inbox:
    """Remembers which events a consumer has processed."""

    def __init__(self, tables: MessagingTables, consumer: str) -> None:
        self._table = tables.inbox
        self._consumer = consumer

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
