"""Read models that several services keep from the same events.

``connection.activated`` is consumed by the importer and the journal exporter alike; each
keeps, in its own store, the connections it may work for. The columns and the upsert rule
live here once; each service declares its own table from :class:`ConnectionReadModel`
(in its own metadata, so its migrations own it):

    class Connection(ConnectionReadModel, ImporterModel, table=True):
        __tablename__ = "connections"

and records activations through :class:`ConnectionReadModelRepository`.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Generic, TypeVar

from sqlalchemy import DateTime
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import Field, SQLModel

from ledgerlink.shared.db import as_utc
from ledgerlink.shared.events import ConnectionActivatedV1

__all__ = ["ConnectionReadModel", "ConnectionReadModelRepository"]


class ConnectionReadModel(SQLModel):
    """An activated connection as a consuming service learnt of it from auth's events."""

    connection_id: uuid.UUID = Field(primary_key=True)
    environment_id: uuid.UUID
    provider: str = Field(max_length=32)
    business_id: str = Field(max_length=32, index=True)
    company_name: str = Field(max_length=300)
    #: When the latest activation happened (its event's time).
    activated_at: datetime = Field(sa_type=DateTime(timezone=True), nullable=False)
    last_activation_event_id: str = Field(max_length=200)


ConnectionT = TypeVar("ConnectionT", bound=ConnectionReadModel)


class ConnectionReadModelRepository(Generic[ConnectionT]):
    """The connections table of one service (``model`` is that service's table class)."""

    def __init__(self, session: AsyncSession, model: type[ConnectionT]) -> None:
        self._session = session
        self._model = model

    async def get(self, connection_id: uuid.UUID) -> ConnectionT | None:
        """One connection by id."""
        return await self._session.get(self._model, connection_id)

    async def record_activation(
        self, activation: ConnectionActivatedV1, *, event_id: str, activated_at: datetime
    ) -> ConnectionT:
        """Insert the connection, or take the latest facts of a repeated activation (auth
        reuses a connection when a company activates again). ``activated_at`` is stored in
        UTC, a naive time being taken as UTC."""
        moment = as_utc(activated_at)
        connection = await self.get(activation.connection_id)
        if connection is None:
            connection = self._model(
                connection_id=activation.connection_id,
                environment_id=activation.environment_id,
                provider=activation.provider.value,
                business_id=activation.business_id,
                company_name=activation.company_name,
                activated_at=moment,
                last_activation_event_id=event_id,
            )
            self._session.add(connection)
            await self._session.flush()
            return connection
        connection.environment_id = activation.environment_id
        connection.provider = activation.provider.value
        connection.business_id = activation.business_id
        connection.company_name = activation.company_name
        connection.activated_at = moment
        connection.last_activation_event_id = event_id
        return connection
