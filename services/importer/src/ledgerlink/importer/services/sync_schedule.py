"""The sync schedule of connections, as auth's lifecycle events change it.

A connection that needs re-authorisation, was revoked or expired is paused, with the
reason people see in its status; re-authorised, it is due at once. Runs inside the
consumer's transaction (state change and inbox record commit together).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncSession

from ledgerlink.importer.storage.sync_store import SyncStateRepository


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
