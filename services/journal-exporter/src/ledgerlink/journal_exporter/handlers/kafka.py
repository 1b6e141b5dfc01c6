"""Kafka subscribers of the journal exporter."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from ledgerlink.journal_exporter.config import Config
from ledgerlink.journal_exporter.services.connections import ConnectionService
from ledgerlink.journal_exporter.services.journals import JournalService
from ledgerlink.journal_exporter.services.payroll import ExportService
from ledgerlink.journal_exporter.storage.models import JournalStatus
from ledgerlink.shared.events import (
    CONNECTION_LIFECYCLE_EVENT_TYPES,
    ConnectionActivatedV1,
    ConnectionRejectedV1,
    JournalAcceptedV1,
    JournalReadyV1,
    JournalRejectedV1,
    PayrollJournalFailedV1,
    PayrollJournalPostedV1,
    PayrollJournalReleasedV1,
)
from ledgerlink.shared.messaging.consumer import ReceivedEvent
from ledgerlink.shared.runtime import ProcessContext
from ledgerlink.shared.topics import Topic


def register_kafka_handlers(
    process: ProcessContext, config: Config, exports: ExportService | None = None
) -> None:
    """Consume journals and activated connections; document what we publish.

    With ``exports``, an accepted journal of a business mapped for ``journal.ready``
    journals is also planned for posting into Visma.net, in the same transaction.
    """
    consumer = process.consumer(config.consumer_group)

    async def on_journal_ready(session: AsyncSession, event: ReceivedEvent[JournalReadyV1]) -> None:
        stored = await JournalService(session, process.outbox).receive(
            event.data, event_id=event.envelope.id
        )
        if exports is not None and stored.status == JournalStatus.ACCEPTED:
            await exports.plan_ready_journal(
                session, event.data, trigger=f"event:{event.envelope.id}"
            )

    async def on_connection_activated(
        session: AsyncSession, event: ReceivedEvent[ConnectionActivatedV1]
    ) -> None:
        await ConnectionService(session).connection_activated(
            event.data, event_id=event.envelope.id, activated_at=event.envelope.time
        )

    consumer.route(JournalReadyV1, on_journal_ready)
    consumer.route(ConnectionActivatedV1, on_connection_activated)
    consumer.ignore(ConnectionRejectedV1.EVENT_TYPE, *CONNECTION_LIFECYCLE_EVENT_TYPES)
    process.subscribe(consumer, Topic.JOURNALS)
    process.subscribe(consumer, Topic.CONNECTIONS)
    process.document_publication(
        JournalAcceptedV1,
        JournalRejectedV1,
        PayrollJournalPostedV1,
        PayrollJournalReleasedV1,
        PayrollJournalFailedV1,
    )
