"""Kafka subscribers of the importer."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from ledgerlink.importer.config import Config
from ledgerlink.importer.domain.import_rules import ImportRequestError
from ledgerlink.importer.services.imports import ImportService
from ledgerlink.shared.events import (
    CONNECTION_LIFECYCLE_EVENT_TYPES,
    ConnectionActivatedV1,
    ConnectionRejectedV1,
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
        await ImportService(session, process.outbox).connection_activated(
            event.data, event_id=event.envelope.id, activated_at=event.envelope.time
        )

    async def on_import_requested(
        session: AsyncSession, event: ReceivedEvent[ImportRequestedV1]
    ) -> None:
        await ImportService(session, process.outbox).import_requested(
            event.data, event_id=event.envelope.id
        )

    consumer.route(ConnectionActivatedV1, on_connection_activated)
    consumer.route(ImportRequestedV1, on_import_requested, permanent_errors=(ImportRequestError,))
    consumer.ignore(ConnectionRejectedV1.EVENT_TYPE, *CONNECTION_LIFECYCLE_EVENT_TYPES)
    process.subscribe(consumer, Topic.CONNECTIONS)
    process.subscribe(consumer, Topic.IMPORT_REQUESTS)
    process.document_publication(
        ImportQueuedV1, ImportStartedV1, ImportCompletedV1, ImportFailedV1, ReportsReadyV1
    )
