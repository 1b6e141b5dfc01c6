"""Kafka subscribers of the auth service."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from ledgerlink.auth.config import Config
from ledgerlink.auth.services.activation import ActivationService
from ledgerlink.shared.events import (
    ActivationRequestedV1,
    ConnectionActivatedV1,
    ConnectionRejectedV1,
)
from ledgerlink.shared.messaging.consumer import ReceivedEvent
from ledgerlink.shared.runtime import ProcessContext
from ledgerlink.shared.topics import Topic


def register_kafka_handlers(process: ProcessContext, config: Config) -> None:
    """Consume activation requests; document what we publish."""
    consumer = process.consumer(config.consumer_group)

    async def on_activation_requested(
        session: AsyncSession, event: ReceivedEvent[ActivationRequestedV1]
    ) -> None:
        await ActivationService(session, process.outbox).activate(
            event.data, event_id=event.envelope.id
        )

    consumer.route(ActivationRequestedV1, on_activation_requested)
    process.subscribe(consumer, Topic.ACTIVATIONS)
    process.document_publication(ConnectionActivatedV1, ConnectionRejectedV1)
