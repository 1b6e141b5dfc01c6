"""The sync schedule of connections, as auth's lifecycle events change it.

A connection that needs re-authorisation, was revoked or expired is paused, with the
reason people see in its status; re-authorised, it is due at once. Runs inside the
consumer's transaction (state change and inbox record commit together).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime

from sqlalchemy.ext.asyncio import AsyncSession

from ledgerlink.importer.domain.ledger_sync import SyncMode
from ledgerlink.importer.storage.models import ImportJob, ImportStatus, ImportTrigger, SyncState
from ledgerlink.importer.storage.repository import ImportJobRepository
from ledgerlink.importer.storage.sync_store import SyncStateRepository
from ledgerlink.shared.db import as_utc


class SyncScheduleService:
    """Pauses and resumes connections' scheduled syncs."""

    def __init__(self, session: AsyncSession) -> None:
        self._states = SyncStateRepository(session)

    async def pause(self, connection_id: uuid.UUID, reason: str) -> bool:
        """Pause the connection's schedule with ``reason``; False when it has none."""
        state = await self._states.get(connection_id, lock=True)
        if state is None:
            return False
        state.paused_reason = reason[:300]
        state.next_run_at = None
        return True

    async def resume(self, connection_id: uuid.UUID, *, now: datetime | None = None) -> bool:
        """Unpause; the next sync is due at once. False when the connection has no state."""
        state = await self._states.get(connection_id, lock=True)
        if state is None:
            return False
        state.paused_reason = None
        state.next_run_at = now or datetime.now(UTC)
        return True


@dataclass(frozen=True)
class SyncStatus:
    """What a person wants to know about a connection's sync."""

    state: SyncState
    #: The sync queued or running now, if any (with its progress).
    active: ImportJob | None
    #: How far the books are behind the vendor: now - when the last completed sync began.
    lag_seconds: float | None


class SyncRequestRefusedError(Exception):
    """A sync cannot be requested now (unknown connection, or one already queued)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class SyncControlService:
    """Status of connections' syncs, and syncs requested by people (HTTP, CLI).

    Runs in the caller's transaction.
    """

    def __init__(self, session: AsyncSession, *, now: datetime | None = None) -> None:
        self._session = session
        self._states = SyncStateRepository(session)
        self._now = now or datetime.now(UTC)

    async def status(self, connection_id: uuid.UUID) -> SyncStatus | None:
        """The connection's sync status; None for a connection never synced over an API."""
        state = await self._states.get(connection_id)
        if state is None:
            return None
        return await self._status_of(state)

    async def statuses(self, business_id: str | None = None) -> list[SyncStatus]:
        """Every connection's sync status (of one business ID)."""
        return [await self._status_of(s) for s in await self._states.all(business_id=business_id)]

    async def _status_of(self, state: SyncState) -> SyncStatus:
        active = await self._states.active_sync(state.connection_id)
        lag = (
            None
            if state.last_completed_at is None
            else max(0.0, (self._now - as_utc(state.last_completed_at)).total_seconds())
        )
        return SyncStatus(state, active, lag)

    async def request(
        self,
        connection_id: uuid.UUID,
        mode: SyncMode,
        *,
        backfill: tuple[date, date] | None = None,
    ) -> ImportJob:
        """Queue a sync of ``mode`` now (a backfill of the dates ``backfill``).

        Raises:
            SyncRequestRefusedError: no such connection (404), or a sync of it is already
                queued or running (409; its id is in the message).
        """
        state = await self._states.get(connection_id, lock=True)
        if state is None:
            raise SyncRequestRefusedError(404, f"no connection {connection_id} is synced")
        active = await self._states.active_sync(connection_id)
        if active is not None:
            raise SyncRequestRefusedError(
                409, f"sync {active.id} of connection {connection_id} is already {active.status}"
            )
        job_id = uuid.uuid4()
        job = ImportJob(
            id=job_id,
            connection_id=connection_id,
            business_id=state.business_id,
            provider=state.provider,
            scope=["companies", "accounts", "dimensions", "ledger"],
            trigger=ImportTrigger.IMPORT_REQUESTED,
            status=ImportStatus.QUEUED,
            requested_event_id=f"request:{job_id}",
            sync_mode=mode.value,
            sync_from=backfill[0] if backfill else None,
            sync_to=backfill[1] if backfill else None,
        )
        return await ImportJobRepository(self._session).add(job)

    async def reset(self, connection_id: uuid.UUID) -> ImportJob:
        """Forget where the connection's sync stood and read everything again (a full
        refresh, swapped in when complete); unpauses the schedule."""
        state = await self._states.get(connection_id, lock=True)
        if state is not None:
            state.cursor = ""
            state.paused_reason = None
        return await self.request(connection_id, SyncMode.FULL_REFRESH)
