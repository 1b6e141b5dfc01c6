"""All SQL of the importer."""

from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col, select

from ledgerlink.importer.storage.models import Connection, ImportJob


class ConnectionRepository:
    """Activated connections the importer knows of."""

    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def get(self, connection_id: uuid.UUID) -> Connection | None:
        """One connection by id."""
        return await self._session.get(Connection, connection_id)

    async def add(self, connection: Connection) -> Connection:
        """Insert a newly learnt connection."""
        self._session.add(connection)
        await self._session.flush()
        return connection


class ImportJobRepository:
    """Import jobs."""

    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def add(self, job: ImportJob) -> ImportJob:
        """Insert a new job."""
        self._session.add(job)
        await self._session.flush()
        return job

    async def get(self, import_id: uuid.UUID) -> ImportJob | None:
        """One job by id."""
        return await self._session.get(ImportJob, import_id)

    async def list_for_business_id(self, business_id: str, *, limit: int) -> list[ImportJob]:
        """The business's most recent jobs, newest first."""
        result = await self._session.execute(
            select(ImportJob)
            .where(ImportJob.business_id == business_id)
            .order_by(col(ImportJob.created_at).desc(), col(ImportJob.id))
            .limit(limit)
        )
        return list(result.scalars().all())
