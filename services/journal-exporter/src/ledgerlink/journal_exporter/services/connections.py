"""Activated connections: the companies whose journals this service may export."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncSession

from ledgerlink.journal_exporter.storage.models import Connection
from ledgerlink.journal_exporter.storage.repository import ConnectionRepository
from ledgerlink.shared.db import as_utc
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
        moment = as_utc(activated_at) if activated_at else datetime.now(UTC)
        connection = await self._connections.get(activation.connection_id)
        if connection is None:
            return await self._connections.add(
                Connection(
                    connection_id=activation.connection_id,
                    environment_id=activation.environment_id,
                    provider=activation.provider.value,
                    business_id=activation.business_id,
                    company_name=activation.company_name,
                    activated_at=moment,
                    last_activation_event_id=event_id,
                )
            )
        connection.environment_id = activation.environment_id
        connection.provider = activation.provider.value
        connection.business_id = activation.business_id
        connection.company_name = activation.company_name
        connection.activated_at = moment
        connection.last_activation_event_id = event_id
        return connection
