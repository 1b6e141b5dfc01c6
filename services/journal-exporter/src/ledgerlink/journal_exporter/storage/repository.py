"""All SQL of the journal exporter."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any, cast

from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import QueryableAttribute, defer
from sqlmodel import col, select

from ledgerlink.journal_exporter.storage.models import (
    Connection,
    Journal,
    JournalLine,
    JournalStatus,
)
from ledgerlink.shared.messaging.read_models import ConnectionReadModelRepository

#: A journal's payload holds every line as received: loaded only when asked for.
_PAYLOAD = cast("QueryableAttribute[Any]", Journal.payload)


class JournalRepository:
    """Received journals and the lines of accepted ones."""

    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def find_accepted(self, source: str, journal_id: str) -> Journal | None:
        """The accepted journal with this source and journal id, if any (no payload)."""
        result = await self._session.execute(
            select(Journal)
            .where(
                Journal.source == source,
                Journal.journal_id == journal_id,
                Journal.status == JournalStatus.ACCEPTED,
            )
            .options(defer(_PAYLOAD))
        )
        return result.scalars().first()

    async def add(self, journal: Journal) -> Journal:
        """Insert a received journal."""
        self._session.add(journal)
        await self._session.flush()
        return journal

    async def add_lines(self, lines: Sequence[JournalLine]) -> None:
        """Insert an accepted journal's lines (in bulk: journals can be long)."""
        if lines:
            await self._session.execute(insert(JournalLine), [line.model_dump() for line in lines])

    async def get(self, stored_id: uuid.UUID) -> Journal | None:
        """One journal by our id."""
        return await self._session.get(Journal, stored_id)

    async def lines_of(self, stored_id: uuid.UUID) -> list[JournalLine]:
        """A journal's stored lines, in order."""
        result = await self._session.execute(
            select(JournalLine)
            .where(JournalLine.journal_row_id == stored_id)
            .order_by(col(JournalLine.line_no))
        )
        return list(result.scalars().all())

    async def list_for_business_id(
        self, business_id: str, *, period: str | None, limit: int
    ) -> list[Journal]:
        """The business's journals (of one period, if given), newest first.

        Their payloads are not loaded (a journal can hold many lines).
        """
        statement = (
            select(Journal).where(Journal.business_id == business_id).options(defer(_PAYLOAD))
        )
        if period is not None:
            statement = statement.where(Journal.period == period)
        result = await self._session.execute(
            statement.order_by(col(Journal.received_at).desc(), col(Journal.id)).limit(limit)
        )
        return list(result.scalars().all())


class ConnectionRepository(ConnectionReadModelRepository[Connection]):
    """Activated connections this service knows of (the shared read model's rules)."""

    def __init__(self, session: AsyncSession) -> None:
        super().__init__(session, Connection)
