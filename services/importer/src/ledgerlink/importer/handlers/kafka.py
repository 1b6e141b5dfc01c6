"""Kafka subscribers of the importer."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from ledgerlink.importer.config import Config
from ledgerlink.importer.domain.import_rules import ImportRequestError
from ledgerlink.importer.services.imports import ImportService
from ledgerlink.importer.services.sync_schedule import SyncScheduleService
from ledgerlink.shared.events import (
    CONNECTION_LIFECYCLE_EVENT_TYPES,
    ConnectionActivatedV1,
    ConnectionExpiredV1,
    ConnectionNeedsReauthV1,
    ConnectionReauthorizedV1,
    ConnectionRejectedV1,
    ConnectionRevokedV1,
    ImportCompletedV1,
    ImportFailedV1,
    ImportQueuedV1,
    ImportRequestedV1,
    ImportStartedV1,
    ReportsReadyV1,
)
from ledgerlink.shared.messaging.consumer import ReceivedEvent
from ledgerlink.shared.runtime import ProcessContext
from ledgerlink.shared.topics import Topic


def register_kafka_handlers(process: ProcessContext, config: Config) -> None:
    """Consume activated connections and import requests; document what we publish.

    One consumer group reads both topics, so its inbox dedupes events across them.
    """
    consumer = process.consumer(config.consumer_group)

    async def on_connection_activated(
        session: AsyncSession, event: ReceivedEvent[ConnectionActivatedV1]
    ) -> None:
        await ImportService(
            session, process.outbox, sync_interval_minutes=config.sync_interval_minutes
        ).connection_activated(
            event.data, event_id=event.envelope.id, activated_at=event.envelope.time
        )

    async def on_import_requested(
        session: AsyncSession, event: ReceivedEvent[ImportRequestedV1]
    ) -> None:
        await ImportService(session, process.outbox).import_requested(
            event.data, event_id=event.envelope.id
        )

    async def on_needs_reauth(
        session: AsyncSession, event: ReceivedEvent[ConnectionNeedsReauthV1]
    ) -> None:
        await SyncScheduleService(session).pause(
            event.data.connection_id,
            f"the connection needs to be authorised again ({event.data.reason_code})",
        )

    async def on_revoked(session: AsyncSession, event: ReceivedEvent[ConnectionRevokedV1]) -> None:
        await SyncScheduleService(session).pause(
            event.data.connection_id, "the connection was revoked"
        )

    async def on_expired(session: AsyncSession, event: ReceivedEvent[ConnectionExpiredV1]) -> None:
        await SyncScheduleService(session).pause(
            event.data.connection_id, "the connection was never authorised in time (expired)"
        )

    async def on_reauthorized(
        session: AsyncSession, event: ReceivedEvent[ConnectionReauthorizedV1]
    ) -> None:
        await SyncScheduleService(session).resume(event.data.connection_id)

    consumer.route(ConnectionActivatedV1, on_connection_activated)
    consumer.route(ImportRequestedV1, on_import_requested, permanent_errors=(ImportRequestError,))
    consumer.route(ConnectionNeedsReauthV1, on_needs_reauth)
    consumer.route(ConnectionRevokedV1, on_revoked)
    consumer.route(ConnectionExpiredV1, on_expired)
    consumer.route(ConnectionReauthorizedV1, on_reauthorized)
    handled = {
        model.EVENT_TYPE
        for model in (
            ConnectionNeedsReauthV1,
            ConnectionRevokedV1,
            ConnectionExpiredV1,
            ConnectionReauthorizedV1,
        )
    }
    consumer.ignore(
        ConnectionRejectedV1.EVENT_TYPE,
        *(kind for kind in CONNECTION_LIFECYCLE_EVENT_TYPES if kind not in handled),
    )
    process.subscribe(consumer, Topic.CONNECTIONS)
    process.subscribe(consumer, Topic.IMPORT_REQUESTS)
    process.document_publication(
        ImportQueuedV1, ImportStartedV1, ImportCompletedV1, ImportFailedV1, ReportsReadyV1
    )
