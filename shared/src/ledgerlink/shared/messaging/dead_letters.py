"""Dead letters: what cannot be processed goes to ``<topic>.dlq`` with the reason."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from ledgerlink.shared.metrics import MessagingMetrics
from ledgerlink.shared.topics import dead_letter_topic

#: Header names carried by every dead letter, besides the original record's own headers.
DLQ_ERROR_CLASS = "dlq_error_class"
DLQ_ERROR_MESSAGE = "dlq_error_message"
DLQ_ORIGINAL_TOPIC = "dlq_original_topic"
DLQ_ORIGINAL_PARTITION = "dlq_original_partition"
DLQ_ORIGINAL_OFFSET = "dlq_original_offset"
DLQ_CONSUMER = "dlq_consumer"
DLQ_FAILED_AT = "dlq_failed_at"
_DLQ_HEADERS = {
    DLQ_ERROR_CLASS,
    DLQ_ERROR_MESSAGE,
    DLQ_ORIGINAL_TOPIC,
    DLQ_ORIGINAL_PARTITION,
    DLQ_ORIGINAL_OFFSET,
    DLQ_CONSUMER,
    DLQ_FAILED_AT,
}


@dataclass(frozen=True)
class RawRecord:
    """A Kafka record as consumed, before any parsing."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: Sequence[tuple[str, bytes]]


@dataclass(frozen=True)
class DeadLetter:
    """A record bound for a dead-letter topic."""

    topic: str
    key: bytes | None
    value: bytes
    headers: list[tuple[str, bytes]]


PublishDeadLetter = Callable[[DeadLetter], Awaitable[None]]


class DeadLetterPublisher:
    """Sends failed records to their dead-letter topic, original bytes untouched."""

    def __init__(
        self, publish: PublishDeadLetter, metrics: MessagingMetrics, *, consumer: str
    ) -> None:
        self._publish = publish
        self._metrics = metrics
        self._consumer = consumer

    async def send(self, record: RawRecord, error_class: str, message: str) -> DeadLetter:
        """Publish ``record`` to ``<record.topic>.dlq`` explaining why it failed."""
        headers = [(name, value) for name, value in record.headers if name not in _DLQ_HEADERS]
        headers += [
            (DLQ_ERROR_CLASS, error_class.encode()),
            (DLQ_ERROR_MESSAGE, message[:4000].encode()),
            (DLQ_ORIGINAL_TOPIC, record.topic.encode()),
            (DLQ_ORIGINAL_PARTITION, str(record.partition).encode()),
            (DLQ_ORIGINAL_OFFSET, str(record.offset).encode()),
            (DLQ_CONSUMER, self._consumer.encode()),
            (DLQ_FAILED_AT, datetime.now(UTC).isoformat().encode()),
        ]
        letter = DeadLetter(
            topic=dead_letter_topic(record.topic),
            key=record.key,
            value=record.value or b"",
            headers=headers,
        )
        await self._publish(letter)
        self._metrics.dead_letters.labels(record.topic, error_class).inc()
        return letter
