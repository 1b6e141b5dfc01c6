"""FastStream KafkaBroker wiring: idempotent producer, telemetry, manual offset commits."""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError
from faststream import AckPolicy
from faststream.kafka import KafkaBroker
from faststream.kafka.annotations import KafkaMessage
from faststream.kafka.opentelemetry import KafkaTelemetryMiddleware
from faststream.kafka.prometheus import KafkaPrometheusMiddleware
from faststream.kafka.security import parse_security
from faststream.security import SASLPlaintext, SASLScram256, SASLScram512
from opentelemetry.trace import TracerProvider
from prometheus_client import CollectorRegistry

from ledgerlink.shared.config import KafkaSettings
from ledgerlink.shared.messaging.consumer import EventConsumer
from ledgerlink.shared.messaging.dead_letters import DeadLetter, RawRecord
from ledgerlink.shared.messaging.outbox import OutboxRecord

logger = logging.getLogger(__name__)


def _security(settings: KafkaSettings) -> Any:
    if settings.sasl_mechanism is None:
        return None
    password = settings.sasl_password.get_secret_value() if settings.sasl_password else ""
    use_ssl = settings.security_protocol == "SASL_SSL"
    kind = {
        "PLAIN": SASLPlaintext,
        "SCRAM-SHA-256": SASLScram256,
        "SCRAM-SHA-512": SASLScram512,
    }[settings.sasl_mechanism]
    return kind(username=settings.sasl_username or "", password=password, use_ssl=use_ssl)


def build_broker(
    settings: KafkaSettings,
    *,
    tracer_provider: TracerProvider | None = None,
    registry: CollectorRegistry | None = None,
    app_name: str = "ledgerlink",
) -> KafkaBroker:
    """A KafkaBroker whose producer is idempotent with ``acks=all`` (unless
    ``settings.idempotent_producer`` is off, for test brokers that cannot).

    Built at run time from settings (never at import), so tests can point it anywhere.
    """
    middlewares: list[Any] = [KafkaTelemetryMiddleware(tracer_provider=tracer_provider)]
    if registry is not None:
        middlewares.append(KafkaPrometheusMiddleware(registry=registry, app_name=app_name))
    return KafkaBroker(
        settings.bootstrap_servers,
        client_id=settings.client_id,
        acks="all",
        enable_idempotence=settings.idempotent_producer,
        allow_auto_create_topics=False,
        security=_security(settings),
        middlewares=middlewares,
        logger=logging.getLogger(f"ledgerlink.{app_name}.kafka"),
        description="Ledgerlink event bus (CloudEvents 1.0, Kafka binary content mode).",
    )


def subscribe(
    broker: KafkaBroker,
    consumer: EventConsumer,
    topic: str,
    *,
    batch_size: int | None = None,
    batch_timeout_ms: int | None = None,
    **spec: Any,
) -> None:
    """Attach ``consumer`` to ``topic`` in consumer group ``consumer.name``.

    With ``batch_size`` > 1 (default: the consumer's ``KafkaSettings.consume_batch_size``)
    the subscriber takes up to that many records at once and hands them to
    :meth:`EventConsumer.process_batch` (one transaction for the batch); with 1, each
    record goes to :meth:`EventConsumer.process` in its own transaction.

    Offsets are committed by FastStream only after the call returns
    (``AckPolicy.NACK_ON_ERROR``): by then the transaction has committed or the dead
    letters were acknowledged. If it raises, every partition of the batch is rewound to
    its first record of the batch and the records are redelivered.
    """
    size = consumer.settings.consume_batch_size if batch_size is None else batch_size
    timeout_ms = (
        consumer.settings.consume_batch_timeout_ms if batch_timeout_ms is None else batch_timeout_ms
    )
    if size > 1:
        _subscribe_batches(broker, consumer, topic, size, timeout_ms, **spec)
        return

    async def on_record(message: KafkaMessage) -> None:
        raw = message.raw_message
        record = RawRecord(
            topic=raw.topic,  # type: ignore[union-attr]
            partition=raw.partition,  # type: ignore[union-attr]
            offset=raw.offset,  # type: ignore[union-attr]
            key=raw.key,  # type: ignore[union-attr]
            value=raw.value,  # type: ignore[union-attr]
            headers=list(raw.headers or ()),  # type: ignore[union-attr]
        )
        await consumer.process(record)

    async def keep_raw_bytes(message: Any) -> Any:
        # The consumer parses and validates itself, so malformed JSON reaches it and is
        # dead-lettered with its reason instead of failing inside FastStream.
        return message.body

    async def parse_tolerating_binary_headers(record: Any, original: Any) -> Any:
        # FastStream decodes every header as UTF-8; a record with a binary header would be
        # lost before reaching the consumer. Parse a sanitised copy and keep the original
        # record, so the consumer (and a dead letter) sees the bytes as they were.
        try:
            return await original(record)
        except UnicodeDecodeError:
            sanitised = dataclasses.replace(
                record,
                headers=[(name, _utf8_or_empty(value)) for name, value in record.headers],
            )
            message = await original(sanitised)
            message.raw_message = record
            return message

    on_record.__name__ = f"{consumer.name}__{topic}"
    broker.subscriber(
        topic,
        group_id=consumer.name,
        auto_offset_reset="earliest",
        ack_policy=AckPolicy.NACK_ON_ERROR,
        decoder=keep_raw_bytes,
        parser=parse_tolerating_binary_headers,
        title=f"{topic}:{consumer.name}",
        description="CloudEvents (Kafka binary content mode) of type: "
        + ", ".join(consumer.event_types),
        **spec,
    )(on_record)


def _subscribe_batches(
    broker: KafkaBroker,
    consumer: EventConsumer,
    topic: str,
    max_records: int,
    timeout_ms: int,
    **spec: Any,
) -> None:
    async def on_batch(message: KafkaMessage) -> None:
        records = message.raw_message
        assert isinstance(records, tuple)
        await consumer.process_batch(
            [
                RawRecord(
                    topic=raw.topic,
                    partition=raw.partition,
                    offset=raw.offset,
                    key=raw.key,
                    value=raw.value,
                    headers=list(raw.headers or ()),
                )
                for raw in records
            ]
        )

    async def keep_raw_bytes(message: Any) -> Any:
        return message.body

    async def parse_without_per_record_work(records: Any, original: Any) -> Any:
        # FastStream's batch parser decodes every header of every record as UTF-8 (a
        # binary header would fail the whole batch) and copies each value: the consumer
        # reads the raw records itself. Let FastStream build its acknowledgeable message
        # (bound to the subscriber's consumer) from the first record without headers,
        # then hand it the whole batch: ``nack`` rewinds every partition of the batch.
        first = dataclasses.replace(records[0], headers=[])
        message = await original((first,))
        message.raw_message = tuple(records)
        message.body = [record.value or b"" for record in records]
        return message

    on_batch.__name__ = f"{consumer.name}__{topic}"
    broker.subscriber(
        topic,
        group_id=consumer.name,
        auto_offset_reset="earliest",
        ack_policy=AckPolicy.NACK_ON_ERROR,
        batch=True,
        max_records=max_records,
        batch_timeout_ms=timeout_ms,
        decoder=keep_raw_bytes,
        parser=parse_without_per_record_work,
        title=f"{topic}:{consumer.name}",
        description="CloudEvents (Kafka binary content mode) of type: "
        + ", ".join(consumer.event_types),
        **spec,
    )(on_batch)


def _utf8_or_empty(value: bytes | None) -> bytes:
    if value is None:
        return b""
    try:
        value.decode()
    except UnicodeDecodeError:
        return b""
    return value


def outbox_sender(producer: RecordProducer) -> Any:
    """A :data:`~ledgerlink.shared.messaging.outbox.SendRecord` for the outbox relay.

    Hands the record to ``producer`` (idempotent, ``acks=all``) without waiting and returns
    its delivery future, so a relay pass sends all its rows and then waits once. Straight
    to aiokafka, not through the broker's publish middlewares: the record carries its
    CloudEvents headers, and the trace context stored with the row goes out as its
    ``traceparent``, so the consumer's span continues the producing handler's trace.
    """

    async def send(record: OutboxRecord) -> Any:
        headers = list(record.headers)
        headers += [(name, value.encode()) for name, value in record.trace_carrier.items()]
        headers.append(("correlation_id", record.event_id.encode()))
        return await producer.send(
            record.topic,
            value=record.payload,
            key=record.key.encode() if record.key is not None else None,
            headers=headers,
        )

    return send


def outbox_publisher(broker: KafkaBroker) -> Any:
    """A publish function for the outbox relay (one record, waits for its acknowledgement)."""

    async def publish(record: OutboxRecord) -> None:
        await broker.publish(
            record.payload,
            topic=record.topic,
            key=record.key.encode() if record.key is not None else None,
            headers={name: value.decode() for name, value in record.headers},
            correlation_id=record.event_id,
        )

    return publish


class RecordProducer:
    """An aiokafka producer with the broker's guarantees (idempotent, ``acks=all``) and
    security settings, sending records byte for byte."""

    def __init__(self, settings: KafkaSettings, *, purpose: str = "records") -> None:
        self._settings = settings
        self._purpose = purpose
        self._producer: AIOKafkaProducer | None = None

    async def send(
        self,
        topic: str,
        *,
        value: bytes,
        key: bytes | None,
        headers: list[tuple[str, bytes]],
    ) -> Any:
        """Hand one record to the producer; returns the future of its acknowledgement."""
        if self._producer is None:
            raise RuntimeError(f"the {self._purpose} producer is not started")
        return await self._producer.send(topic, value=value, key=key, headers=headers)

    async def start(self) -> None:
        """Connect to the brokers (aiokafka needs a running event loop, so not in init)."""
        if self._producer is not None:
            return
        producer = AIOKafkaProducer(
            bootstrap_servers=self._settings.bootstrap_servers,
            client_id=f"{self._settings.client_id}-{self._purpose}",
            acks="all",
            enable_idempotence=self._settings.idempotent_producer,
            **parse_security(_security(self._settings)),
        )
        await producer.start()
        self._producer = producer

    async def stop(self) -> None:
        """Flush pending records and disconnect."""
        producer, self._producer = self._producer, None
        if producer is not None:
            await producer.stop()


class DeadLetterProducer(RecordProducer):
    """Publishes dead letters with the original record's key, value and header bytes.

    FastStream's ``publish`` takes header values as ``str`` and encodes them as UTF-8, so a
    binary header (often the very reason a record failed) could not pass through it
    unchanged, and repeated header names would collapse in its dict. This producer sends
    through aiokafka directly. :meth:`publish` is a
    :data:`~ledgerlink.shared.messaging.dead_letters.PublishDeadLetter`.
    """

    def __init__(self, settings: KafkaSettings) -> None:
        super().__init__(settings, purpose="dead-letters")

    async def publish(self, letter: DeadLetter) -> None:
        """Send ``letter`` and wait until the brokers acknowledged it."""
        if self._producer is None:
            raise RuntimeError("the dead-letter producer is not started")
        await self._producer.send_and_wait(
            letter.topic, value=letter.value, key=letter.key, headers=list(letter.headers)
        )


async def create_topics(
    settings: KafkaSettings, topics: dict[str, int], *, replication_factor: int | None = None
) -> None:
    """Create ``topics`` (name -> partitions) on a real cluster; existing ones are kept.

    ``replication_factor`` defaults to three copies, or one per broker on a smaller
    cluster (aiokafka's admin client needs an explicit count; it cannot ask for the
    broker's default). The embedded mock cluster refuses CreateTopics; use
    ``EmbeddedKafka.create_topic``.
    """
    admin = AIOKafkaAdminClient(
        bootstrap_servers=settings.bootstrap_servers, **parse_security(_security(settings))
    )
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        if replication_factor is None:
            cluster = await admin.describe_cluster()
            replication_factor = max(1, min(3, len(cluster.get("brokers") or ())))
        wanted = [
            NewTopic(name=name, num_partitions=partitions, replication_factor=replication_factor)
            for name, partitions in topics.items()
            if name not in existing
        ]
        if wanted:
            try:
                await admin.create_topics(wanted)
            except TopicAlreadyExistsError:
                logger.info("topics were created concurrently")
    finally:
        await admin.close()
