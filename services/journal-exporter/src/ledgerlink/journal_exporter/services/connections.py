"""Activated connections: the companies whose journals this service may export."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncSession

from ledgerlink.journal_exporter.storage.models import Connection
from ledgerlink.journal_exporter.storage.repository import ConnectionRepository
from ledgerlink.shared.events import ConnectionActivatedV1


class ConnectionService:
    """Keeps what the journal exporter knows of activated connections up to date."""

    def __init__(self, session: AsyncSession) -> None:
        self._connections = ConnectionRepository(session)

    async def connection_activated(
        self,
        activation: ConnectionActivatedV1,
        *,
        event_id: str,
        activated_at: datetime | None = None,
    ) -> Connection:
        """Record (or refresh) an activated connection.

        ``activated_at`` is the activation event's time (now when it has none); it is
        stored in UTC, a naive time being taken as UTC.
        """
        return await self._connections.record_activation(
            activation, event_id=event_id, activated_at=activated_at or datetime.now(UTC)
        )
