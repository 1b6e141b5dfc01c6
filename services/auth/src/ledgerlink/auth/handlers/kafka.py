"""Kafka subscribers of the auth service."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from functools import partial

from sqlalchemy.ext.asyncio import AsyncSession

from ledgerlink.auth.config import Config
from ledgerlink.auth.domain.clock import Clock, utc_now
from ledgerlink.auth.services.activation import ActivationRequest, ActivationService
from ledgerlink.auth.services.activation_links import ActivationLinkService, LinkSettings
from ledgerlink.auth.services.lifecycle import LifecycleService
from ledgerlink.shared.events import (
    ActivationRequestedV1,
    ConnectionActivatedV1,
    ConnectionActivationLinkIssuedV1,
    ConnectionAuthorizationStartedV1,
    ConnectionConfiguredV1,
    ConnectionExpiredV1,
    ConnectionNeedsReauthV1,
    ConnectionReauthorizedV1,
    ConnectionRejectedV1,
    ConnectionRevokedV1,
    ImportCompletedV1,
    ImportFailedV1,
    ImportQueuedV1,
    ImportStartedV1,
    ReportsReadyV1,
)
from ledgerlink.shared.messaging.consumer import ReceivedEvent, event_scope
from ledgerlink.shared.runtime import ProcessContext
from ledgerlink.shared.topics import Topic


def register_kafka_handlers(
    process: ProcessContext, config: Config, clock: Clock = utc_now
) -> None:
    """Consume activation requests and import outcomes; document what we publish.

    One consumer group reads both topics, so its inbox dedupes events across them.
    """
    consumer = process.consumer(config.consumer_group)
    link_settings = LinkSettings(
        public_url=config.public_base_url, ttl=timedelta(hours=config.pages.link_ttl_hours)
    )

    async def on_activation_requested(
        session: AsyncSession, event: ReceivedEvent[ActivationRequestedV1]
    ) -> None:
        links = ActivationLinkService(session, process.outbox, link_settings, clock)
        await ActivationService(session, process.outbox, links).activate(
            event.data, event_id=event.envelope.id
        )

    async def on_activations_requested(
        session: AsyncSession, events: Sequence[ReceivedEvent[ActivationRequestedV1]]
    ) -> None:
        # Consecutive activation requests of one batch at once (set-based): the same
        # outcome as on_activation_requested on each in turn.
        links = ActivationLinkService(session, process.outbox, link_settings, clock)
        await ActivationService(session, process.outbox, links).activate_many(
            [
                ActivationRequest(event.data, event.envelope.id, partial(event_scope, event))
                for event in events
            ]
        )

    async def on_import_completed(
        session: AsyncSession, event: ReceivedEvent[ImportCompletedV1]
    ) -> None:
        if event.data.connection_id is not None:
            await LifecycleService(session, process.outbox, clock=clock).import_completed(
                event.data.connection_id, event.data.import_id
            )

    async def on_import_failed(session: AsyncSession, event: ReceivedEvent[ImportFailedV1]) -> None:
        if event.data.connection_id is not None:
            await LifecycleService(session, process.outbox, clock=clock).import_failed(
                event.data.connection_id, event.data.reason_code, event.data.message
            )

    consumer.route(
        ActivationRequestedV1, on_activation_requested, batch_handler=on_activations_requested
    )
    consumer.route(ImportCompletedV1, on_import_completed)
    consumer.route(ImportFailedV1, on_import_failed)
    consumer.ignore(
        ImportQueuedV1.EVENT_TYPE, ImportStartedV1.EVENT_TYPE, ReportsReadyV1.EVENT_TYPE
    )
    process.subscribe(consumer, Topic.ACTIVATIONS)
    process.subscribe(consumer, Topic.IMPORTS)
    process.document_publication(
        ConnectionActivatedV1,
        ConnectionRejectedV1,
        ConnectionAuthorizationStartedV1,
        ConnectionConfiguredV1,
        ConnectionNeedsReauthV1,
        ConnectionReauthorizedV1,
        ConnectionRevokedV1,
        ConnectionExpiredV1,
        ConnectionActivationLinkIssuedV1,
    )
