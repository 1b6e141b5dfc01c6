"""All SQL of the importer."""

from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col, select

from ledgerlink.importer.storage.models import Connection, ImportJob
from ledgerlink.shared.messaging.read_models import ConnectionReadModelRepository


class ConnectionRepository(ConnectionReadModelRepository[Connection]):
    """Activated connections this service knows of (the shared read model's rules)."""

    def __init__(self, session: AsyncSession) -> None:
        super().__init__(session, Connection)


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
