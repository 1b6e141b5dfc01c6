"""All SQL of the importer."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import and_, or_, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col, select

from ledgerlink.importer.storage.models import Connection, ImportJob, ImportStatus
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

    async def get_for_update(self, import_id: uuid.UUID) -> ImportJob | None:
        """One job by id, its row locked until the transaction ends."""
        return await self._session.get(ImportJob, import_id, with_for_update=True)

    def _stored_time(self, moment: datetime) -> datetime:
        # SQLite keeps naive datetimes (UTC); compare like with like there.
        bind = self._session.bind
        if bind is not None and bind.dialect.name == "postgresql":
            return moment
        return moment.replace(tzinfo=None)

    async def claim_next_runnable(
        self, providers: Sequence[str], *, now: datetime
    ) -> ImportJob | None:
        """The oldest job a runner may take, locked (rows other runners hold are skipped).

        Runnable: of a file ``provider`` with a file location, and either queued or
        running with a lease that ran out before ``now`` (its runner died).
        """
        result = await self._session.execute(
            select(ImportJob)
            .where(
                col(ImportJob.provider).in_(providers),
                col(ImportJob.file_location).is_not(None),
                or_(
                    col(ImportJob.status) == ImportStatus.QUEUED,
                    and_(
                        col(ImportJob.status) == ImportStatus.RUNNING,
                        col(ImportJob.lease_expires_at) < self._stored_time(now),
                    ),
                ),
            )
            .order_by(col(ImportJob.created_at))
            .limit(1)
            .with_for_update(skip_locked=True)
        )
        return result.scalar_one_or_none()

    async def extend_lease(
        self, import_id: uuid.UUID, *, progress_lines: int, lease_expires_at: datetime
    ) -> None:
        """Record a running job's progress and hold it until ``lease_expires_at``."""
        await self._session.execute(
            update(ImportJob)
            .where(col(ImportJob.id) == import_id)
            .values(progress_lines=progress_lines, lease_expires_at=lease_expires_at)
        )

    async def list_for_business_id(self, business_id: str, *, limit: int) -> list[ImportJob]:
        """The business's most recent jobs, newest first."""
        result = await self._session.execute(
            select(ImportJob)
            .where(ImportJob.business_id == business_id)
            .order_by(col(ImportJob.created_at).desc(), col(ImportJob.id))
            .limit(limit)
        )
        return list(result.scalars().all())
