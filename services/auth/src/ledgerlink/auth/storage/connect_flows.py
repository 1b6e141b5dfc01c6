"""All SQL of the in-product connection pages: flows, organisation logins, the login
throttle and connections' page settings."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import delete
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col, select

from ledgerlink.auth.storage.models import (
    ConnectFlow,
    Connection,
    ConnectionSettings,
    LoginThrottle,
    OrganisationCredential,
    OrganisationMember,
    User,
)


class ConnectFlowRepository:
    """Started connection flows."""

    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def add(self, flow: ConnectFlow) -> ConnectFlow:
        """Insert a flow."""
        self._session.add(flow)
        await self._session.flush()
        return flow

    async def get(self, flow_id: uuid.UUID) -> ConnectFlow | None:
        """One flow by id (locked: its pages change it one at a time)."""
        result = await self._session.execute(
            select(ConnectFlow)
            .where(ConnectFlow.id == flow_id)
            .with_for_update()
            .execution_options(populate_existing=True)
        )
        return result.scalars().first()

    async def by_state(self, state_hash: str) -> ConnectFlow | None:
        """The flow waiting for the vendor's answer with this state."""
        result = await self._session.execute(
            select(ConnectFlow).where(ConnectFlow.state_hash == state_hash).with_for_update()
        )
        return result.scalars().first()

    async def save(self, flow: ConnectFlow) -> None:
        """Write a changed flow."""
        self._session.add(flow)
        await self._session.flush()

    async def delete_started_before(self, cutoff: datetime) -> int:
        """Forget flows started before ``cutoff`` (with any sealed tokens); how many."""
        result = await self._session.execute(
            delete(ConnectFlow).where(col(ConnectFlow.created_at) < cutoff)
        )
        return int(result.rowcount or 0)  # type: ignore[attr-defined]


class OrganisationCredentialRepository:
    """Vendor logins kept per organisation."""

    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def get(self, organisation_id: uuid.UUID, provider: str) -> OrganisationCredential | None:
        """The organisation's login at ``provider``, if any."""
        return await self._session.get(OrganisationCredential, (organisation_id, provider))

    async def save(self, credential: OrganisationCredential) -> None:
        """Insert or replace it."""
        await self._session.merge(credential)
        await self._session.flush()


class LoginThrottleRepository:
    """Refused logins in a row, per login key."""

    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def get(self, key: str) -> LoginThrottle | None:
        """The login's refusals, if any (locked)."""
        result = await self._session.execute(
            select(LoginThrottle).where(LoginThrottle.key == key).with_for_update()
        )
        return result.scalars().first()

    async def save(self, row: LoginThrottle) -> None:
        """Insert or update the row."""
        await self._session.merge(row)
        await self._session.flush()

    async def clear(self, key: str) -> None:
        """Forget the refusals (a login succeeded)."""
        row = await self._session.get(LoginThrottle, key)
        if row is not None:
            await self._session.delete(row)
            await self._session.flush()


class ConnectionSettingsRepository:
    """What the pages recorded per connection."""

    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def get(self, connection_id: uuid.UUID) -> ConnectionSettings | None:
        """A connection's settings, if any."""
        return await self._session.get(ConnectionSettings, connection_id)

    async def save(self, settings: ConnectionSettings) -> None:
        """Insert or update."""
        await self._session.merge(settings)
        await self._session.flush()

    async def of_organisation(
        self, organisation_id: uuid.UUID, provider: str
    ) -> list[tuple[Connection, ConnectionSettings]]:
        """The organisation's connections at ``provider`` made by the pages, oldest first."""
        result = await self._session.execute(
            select(Connection, ConnectionSettings)
            .join(
                ConnectionSettings,
                col(ConnectionSettings.connection_id) == col(Connection.id),
            )
            .where(
                ConnectionSettings.organisation_id == organisation_id,
                Connection.provider == provider,
            )
            .order_by(col(Connection.created_at), col(Connection.id))
        )
        return [(connection, settings) for connection, settings in result.all()]

    async def of_environment(
        self, environment_id: uuid.UUID, provider: str, product: str
    ) -> list[tuple[Connection, ConnectionSettings | None]]:
        """The environment's connections at ``provider`` for ``product``, oldest first."""
        result = await self._session.execute(
            select(Connection, ConnectionSettings)
            .join(
                ConnectionSettings,
                col(ConnectionSettings.connection_id) == col(Connection.id),
                isouter=True,
            )
            .where(
                Connection.environment_id == environment_id,
                Connection.provider == provider,
                Connection.product == product,
            )
            .order_by(col(Connection.created_at), col(Connection.id))
        )
        return [(connection, settings) for connection, settings in result.all()]


class OrganisationPeople:
    """An organisation's members with their users (for assigning administrations)."""

    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def members(self, organisation_id: uuid.UUID) -> list[tuple[OrganisationMember, User]]:
        """Every member, by e-mail."""
        result = await self._session.execute(
            select(OrganisationMember, User)
            .join(User, col(User.id) == col(OrganisationMember.user_id))
            .where(OrganisationMember.organisation_id == organisation_id)
            .order_by(col(User.email))
        )
        return [(member, user) for member, user in result.all()]
