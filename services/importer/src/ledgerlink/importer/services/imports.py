"""Import jobs: queue one per activated connection and per explicit import request."""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, date, datetime
from typing import Literal

from sqlalchemy.ext.asyncio import AsyncSession

from ledgerlink.importer.domain.import_rules import (
    KnownConnection,
    check_import_request,
    replace_reason_of,
)
from ledgerlink.importer.domain.ledger_sync import SyncMode
from ledgerlink.importer.storage.models import ImportJob, ImportStatus, ImportTrigger
from ledgerlink.importer.storage.repository import ConnectionRepository, ImportJobRepository
from ledgerlink.importer.storage.sync_store import SyncStateRepository
from ledgerlink.importer.storage.vendor_ledgers import API_PROVIDERS
from ledgerlink.shared.events import (
    ALL_IMPORT_SCOPES,
    ConnectionActivatedV1,
    ImportQueuedV1,
    ImportRequestedV1,
    ImportScope,
    Provider,
)
from ledgerlink.shared.messaging.outbox import Outbox

logger = logging.getLogger(__name__)


class ImportService:
    """Records import jobs and announces them.

    Runs inside the caller's transaction; the events it emits go to the outbox and leave
    only if that transaction commits.
    """

    def __init__(
        self, session: AsyncSession, outbox: Outbox, *, sync_interval_minutes: int = 15
    ) -> None:
        self._session = session
        self._sync_interval_minutes = sync_interval_minutes
        self._outbox = outbox
        self._connections = ConnectionRepository(session)
        self._jobs = ImportJobRepository(session)

    async def connection_activated(
        self,
        activation: ConnectionActivatedV1,
        *,
        event_id: str,
        activated_at: datetime | None = None,
    ) -> ImportJob:
        """Remember the connection and queue a full import of it.

        ``activated_at`` is the activation event's time (now when it has none); it is
        stored in UTC, a naive time being taken as UTC.
        """
        await self._connections.record_activation(
            activation, event_id=event_id, activated_at=activated_at or datetime.now(UTC)
        )
        if activation.provider.value in API_PROVIDERS:
            state = await SyncStateRepository(self._session).ensure(
                activation.connection_id,
                business_id=activation.business_id,
                provider=activation.provider.value,
                interval_minutes=self._sync_interval_minutes,
            )
            if activation.transaction_type:
                # 24SevenOffice: the type chosen at activation is the company's default for
                # anything written to it; imports read every type.
                state.default_transaction_type = activation.transaction_type
        return await self._queue(
            connection_id=activation.connection_id,
            business_id=activation.business_id,
            provider=activation.provider,
            scope=ALL_IMPORT_SCOPES,
            trigger="connection_activated",
            file_location=None,
            event_id=event_id,
            sync_mode=SyncMode.FIRST if activation.provider.value in API_PROVIDERS else None,
        )

    async def import_requested(self, request: ImportRequestedV1, *, event_id: str) -> ImportJob:
        """Queue the requested import.

        Raises:
            ImportRequestError: the request breaks a rule (permanent; see the domain).
        """
        connection = await self._connections.get(request.connection_id)
        known = (
            None
            if connection is None
            else KnownConnection(
                connection_id=connection.connection_id,
                business_id=connection.business_id,
                provider=connection.provider,
            )
        )
        scope = check_import_request(
            connection_id=request.connection_id,
            business_id=request.business_id,
            provider=request.provider,
            scope=request.scope,
            file_location=request.file_location,
            known=known,
        )
        replace_reason = replace_reason_of(replace=request.replace, reason=request.replace_reason)
        if connection is None:
            logger.info(
                "import requested for a connection not (yet) known",
                extra={"connection_id": str(request.connection_id), "event_id": event_id},
            )
        return await self._queue(
            connection_id=request.connection_id,
            business_id=request.business_id,
            provider=request.provider,
            scope=scope,
            trigger="import_requested",
            file_location=request.file_location,
            event_id=event_id,
            replace_reason=replace_reason,
            sync_mode=None
            if request.provider.is_file_based
            else SyncMode(request.mode or SyncMode.INCREMENTAL.value),
            backfill=(request.backfill_from, request.backfill_to)
            if request.mode == "backfill" and request.backfill_from and request.backfill_to
            else None,
        )

    async def file_uploaded(
        self,
        *,
        import_id: uuid.UUID,
        provider: Provider,
        file_location: str,
        filename: str,
        business_id: str | None,
        connection_id: uuid.UUID | None = None,
        replace_reason: str | None = None,
    ) -> ImportJob:
        """Queue the import of a file uploaded directly (HTTP or CLI), not by an event.

        ``business_id`` is what the uploader says the books are; the runner refuses a
        file holding another company's books. None: whatever company the file holds.
        ``replace_reason``: the person asked to replace the stored fiscal year even with
        less data or an older file, and why (see ``domain/replace_rules.py``).
        No ``import.queued`` is sent (that contract names a connection and an event
        trigger); ``import.started`` follows when a runner takes the job.
        """
        job = await self._jobs.add(
            ImportJob(
                id=import_id,
                connection_id=connection_id,
                business_id=business_id or "",
                provider=provider.value,
                scope=list(ALL_IMPORT_SCOPES),
                trigger=ImportTrigger.UPLOAD,
                status=ImportStatus.QUEUED,
                file_location=file_location,
                filename=filename[:300],
                requested_event_id=f"upload:{import_id}",
                replace_reason=replace_reason,
            )
        )
        logger.info(
            "file import queued",
            extra={"import_id": str(import_id), "provider": provider.value, "file": filename},
        )
        return job

    async def _queue(
        self,
        *,
        connection_id: uuid.UUID,
        business_id: str,
        provider: Provider,
        scope: tuple[ImportScope, ...],
        trigger: Literal["connection_activated", "import_requested"],
        file_location: str | None,
        event_id: str,
        replace_reason: str | None = None,
        sync_mode: SyncMode | None = None,
        backfill: tuple[date, date] | None = None,
    ) -> ImportJob:
        job = await self._jobs.add(
            ImportJob(
                connection_id=connection_id,
                business_id=business_id,
                provider=provider.value,
                scope=list(scope),
                trigger=ImportTrigger(trigger),
                status=ImportStatus.QUEUED,
                file_location=file_location,
                requested_event_id=event_id,
                replace_reason=replace_reason,
                sync_mode=sync_mode.value if sync_mode else None,
                sync_from=backfill[0] if backfill else None,
                sync_to=backfill[1] if backfill else None,
            )
        )
        await self._outbox.add(
            self._session,
            ImportQueuedV1(
                import_id=job.id,
                connection_id=connection_id,
                business_id=business_id,
                provider=provider,
                scope=scope,
                trigger=trigger,
            ),
            key=business_id,
            subject=str(job.id),
        )
        logger.info(
            "import queued",
            extra={
                "import_id": str(job.id),
                "connection_id": str(job.connection_id),
                "trigger": trigger,
                "scope": ",".join(scope),
            },
        )
        return job
