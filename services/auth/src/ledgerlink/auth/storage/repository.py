"""All SQL of the auth service."""

from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col, select

from ledgerlink.auth.storage.models import Connection, ConnectionStatus, Environment


class EnvironmentRepository:
    """Environments, looked up by business ID."""

    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def find_by_business_id(self, country: str, business_id: str) -> Environment | None:
        """The environment of this normalised business ID, if any."""
        result = await self._session.execute(
            select(Environment).where(
                Environment.country == country, Environment.business_id == business_id
            )
        )
        return result.scalars().first()

    async def add(self, environment: Environment) -> Environment:
        """Insert a new environment."""
        self._session.add(environment)
        await self._session.flush()
        return environment

    async def get(self, environment_id: uuid.UUID) -> Environment | None:
        """One environment by id."""
        return await self._session.get(Environment, environment_id)


class ConnectionRepository:
    """Connections between a provider and a product for one environment."""

    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def find_live(
        self, environment_id: uuid.UUID, provider: str, product: str
    ) -> Connection | None:
        """The environment's non-rejected connection for this provider and product."""
        result = await self._session.execute(
            select(Connection)
            .where(
                Connection.environment_id == environment_id,
                Connection.provider == provider,
                Connection.product == product,
                Connection.status != ConnectionStatus.REJECTED,
            )
            .order_by(col(Connection.created_at).desc())
        )
        return result.scalars().first()

    async def add(self, connection: Connection) -> Connection:
        """Insert a new connection."""
        self._session.add(connection)
        await self._session.flush()
        return connection

    async def get(self, connection_id: uuid.UUID) -> Connection | None:
        """One connection by id."""
        return await self._session.get(Connection, connection_id)

    async def list_for_business_id(self, business_id: str) -> list[Connection]:
        """Every connection (rejected ones too) whose raw or normalised ID matches."""
        result = await self._session.execute(
            select(Connection)
            .where(
                (Connection.business_id == business_id)
                | (Connection.business_id_raw == business_id)
            )
            .order_by(col(Connection.created_at))
        )
        return list(result.scalars().all())
