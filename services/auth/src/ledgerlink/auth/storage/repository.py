"""All SQL of the auth service."""

from __future__ import annotations

import uuid
from collections.abc import Collection, Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Row, String, bindparam, delete, func, type_coerce, update
from sqlalchemy import select as sa_select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col, select

from ledgerlink.auth.domain.lifecycle import AWAITING_AUTHORIZATION, TERMINAL
from ledgerlink.auth.storage.models import (
    Connection,
    ConnectionCredential,
    ConnectionSecret,
    Environment,
)
from ledgerlink.auth.storage.vault import Sealed
from ledgerlink.shared.db import probe_each

#: Stored values of the statuses that end a connection.
_TERMINAL_VALUES = sorted(status.value for status in TERMINAL)


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

    async def ids_by_business_id(
        self, keys: Collection[tuple[str, str]]
    ) -> dict[tuple[str, str], uuid.UUID]:
        """The ids of the environments of these (country, normalised business ID) pairs
        that exist, in one query (by business ID, one array parameter on PostgreSQL; the
        country is matched here)."""
        dialect = self._session.get_bind().dialect.name
        table = Environment.__table__  # type: ignore[attr-defined]
        rows = await self._session.execute(
            probe_each(
                sa_select(table.c.id, table.c.country, table.c.business_id),
                table.c.business_id,
                {value for _, value in keys},
                dialect,
            )
        )
        wanted = set(keys)
        return {
            (row.country, row.business_id): row.id
            for row in rows
            if (row.country, row.business_id) in wanted
        }

    async def insert_many(self, rows: Sequence[Mapping[str, Any]]) -> None:
        """Insert new environments from their column values (one multi-row Core insert)."""
        await self._session.execute(Environment.__table__.insert(), list(rows))  # type: ignore[attr-defined]

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
        """The environment's connection for this provider and product that has not ended
        (rejected, revoked or expired ones are history: a new activation starts afresh)."""
        result = await self._session.execute(
            select(Connection)
            .where(
                Connection.environment_id == environment_id,
                Connection.provider == provider,
                Connection.product == product,
                col(Connection.status).not_in(list(TERMINAL)),
            )
            .order_by(col(Connection.created_at).desc())
        )
        return result.scalars().first()

    async def live_of(self, environment_ids: Collection[uuid.UUID]) -> Sequence[Row[Any]]:
        """The live connections (not ended) of these environments, newest first: id,
        environment_id, provider, product, status (as stored) and company_name."""
        dialect = self._session.get_bind().dialect.name
        table = Connection.__table__  # type: ignore[attr-defined]
        live = probe_each(
            sa_select(
                table.c.id,
                table.c.environment_id,
                table.c.provider,
                table.c.product,
                type_coerce(table.c.status, String()).label("status"),
                table.c.company_name,
                table.c.created_at,
            ).where(table.c.status.not_in(_TERMINAL_VALUES)),
            table.c.environment_id,
            environment_ids,
            dialect,
        )
        # Newest first across all the environments (probe_each orders per environment).
        result = await self._session.execute(live.order_by(live.selected_columns.created_at.desc()))
        return result.all()

    async def insert_many(self, rows: Sequence[Mapping[str, Any]]) -> None:
        """Insert new connections from their column values (one multi-row Core insert)."""
        await self._session.execute(Connection.__table__.insert(), list(rows))  # type: ignore[attr-defined]

    async def touch_many(self, event_ids: Mapping[uuid.UUID, str], now: datetime) -> None:
        """Repeated activations: each connection's ``activation_event_id`` becomes its
        event id here, and ``updated_at`` ``now`` (one statement)."""
        table = Connection.__table__  # type: ignore[attr-defined]
        await self._session.execute(
            table.update()
            .where(table.c.id == bindparam("connection_id"))
            .values(updated_at=bindparam("now"), activation_event_id=bindparam("event_id")),
            [
                {"connection_id": connection_id, "now": now, "event_id": event_id}
                for connection_id, event_id in event_ids.items()
            ],
        )

    async def add(self, connection: Connection) -> Connection:
        """Insert a new connection."""
        self._session.add(connection)
        await self._session.flush()
        return connection

    async def get(self, connection_id: uuid.UUID, *, lock: bool = False) -> Connection | None:
        """One connection by id, read afresh; ``lock`` takes its row lock (PostgreSQL) so
        status changes of one connection happen one at a time."""
        statement = (
            select(Connection)
            .where(Connection.id == connection_id)
            .execution_options(populate_existing=True)
        )
        if lock:
            statement = statement.with_for_update()
        result = await self._session.execute(statement)
        return result.scalars().first()

    async def awaiting_authorization_since(
        self, cutoff: datetime, limit: int = 500
    ) -> list[Connection]:
        """Connections still awaiting authorization whose activation is older than
        ``cutoff`` (locked, skipping rows another replica is working on)."""
        statement = (
            select(Connection)
            .where(
                col(Connection.status).in_(list(AWAITING_AUTHORIZATION)),
                col(Connection.updated_at) < cutoff,
            )
            .order_by(col(Connection.updated_at))
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        return list((await self._session.execute(statement)).scalars().all())

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


class CredentialRepository:
    """A connection's credential row (the refresh lock) and its encrypted secrets."""

    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def get(
        self, connection_id: uuid.UUID, *, lock: bool = False
    ) -> ConnectionCredential | None:
        """The credential row, read afresh; ``lock`` takes ``SELECT ... FOR UPDATE`` on it.

        SQLite (development only) has no row locks: there a write to the row comes first, so
        the transaction holds the database's write lock from here on and a second refresher
        waits for this one to commit, then reads what it wrote.
        """
        if lock and self._session.bind.dialect.name == "sqlite":
            await self._session.execute(
                update(ConnectionCredential)
                .where(col(ConnectionCredential.connection_id) == connection_id)
                .values(refresh_count=ConnectionCredential.refresh_count)
            )
        statement = (
            select(ConnectionCredential)
            .where(ConnectionCredential.connection_id == connection_id)
            .execution_options(populate_existing=True)
        )
        if lock:
            statement = statement.with_for_update()
        return (await self._session.execute(statement)).scalars().first()

    async def sharers(self, holder_id: uuid.UUID, attribute: str) -> list[ConnectionCredential]:
        """The credentials that use ``holder_id``'s grant (``attributes[attribute]`` names
        it), oldest connection first; locked where the database has row locks."""
        statement = (
            select(ConnectionCredential)
            .join(Connection, col(Connection.id) == col(ConnectionCredential.connection_id))
            .where(ConnectionCredential.attributes[attribute].as_string() == str(holder_id))
            .order_by(col(Connection.created_at), col(Connection.id))
            .execution_options(populate_existing=True)
        )
        if self._session.bind.dialect.name != "sqlite":
            statement = statement.with_for_update()
        return list((await self._session.execute(statement)).scalars().all())

    async def save(self, credential: ConnectionCredential) -> ConnectionCredential:
        """Insert or update the credential row."""
        merged = await self._session.merge(credential)
        await self._session.flush()
        return merged

    async def secrets(self, connection_id: uuid.UUID) -> dict[str, Sealed]:
        """Every sealed secret of the connection by field."""
        result = await self._session.execute(
            select(ConnectionSecret)
            .where(ConnectionSecret.connection_id == connection_id)
            .execution_options(populate_existing=True)
        )
        return {
            row.field: Sealed(row.key_version, row.ciphertext) for row in result.scalars().all()
        }

    async def replace_secrets(
        self, connection_id: uuid.UUID, sealed: Mapping[str, Sealed], now: datetime
    ) -> None:
        """Make ``sealed`` the connection's secrets: other fields are deleted."""
        await self._session.execute(
            delete(ConnectionSecret).where(col(ConnectionSecret.connection_id) == connection_id)
        )
        for field, value in sealed.items():
            self._session.add(
                ConnectionSecret(
                    connection_id=connection_id,
                    field=field,
                    key_version=value.key_version,
                    ciphertext=value.ciphertext,
                    updated_at=now,
                )
            )
        await self._session.flush()

    async def wipe(self, connection_id: uuid.UUID) -> int:
        """Delete the connection's secrets and credential row; how many secrets went."""
        result = await self._session.execute(
            delete(ConnectionSecret).where(col(ConnectionSecret.connection_id) == connection_id)
        )
        await self._session.execute(
            delete(ConnectionCredential).where(
                col(ConnectionCredential.connection_id) == connection_id
            )
        )
        return int(result.rowcount or 0)  # type: ignore[attr-defined]

    async def sealed_under_other_keys(self, active_key: int, limit: int) -> list[ConnectionSecret]:
        """Up to ``limit`` secrets not under ``active_key``, locked (skipping rows another
        rotation or refresh holds, so two rotations can run at once)."""
        statement = (
            select(ConnectionSecret)
            .where(ConnectionSecret.key_version != active_key)
            .order_by(col(ConnectionSecret.connection_id), col(ConnectionSecret.field))
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        return list((await self._session.execute(statement)).scalars().all())

    async def count_by_key_version(self) -> dict[int, int]:
        """How many secrets each key version seals."""
        result = await self._session.execute(
            select(ConnectionSecret.key_version, func.count())
            .group_by(col(ConnectionSecret.key_version))
            .order_by(col(ConnectionSecret.key_version))
        )
        return {int(version): int(count) for version, count in result.all()}
