"""Over the wire against the embedded Kafka mock cluster (real Kafka protocol over TCP).

Consumer-group members take ~3 s to join (the mock cluster's initial rebalance delay),
so each subscriber test costs that once. Topic names are unique per test.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from faststream.kafka import KafkaBroker
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client import CollectorRegistry
from sqlalchemy import MetaData, select
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncSession

from ledgerlink.shared.config import KafkaSettings, OutboxSettings
from ledgerlink.shared.db import Database, create_engine
from ledgerlink.shared.envelope import CloudEvent
from ledgerlink.shared.events import ActivationRequestedV1
from ledgerlink.shared.kafka.broker import (
    DeadLetterProducer,
    RecordProducer,
    build_broker,
    outbox_publisher,
    outbox_sender,
    subscribe,
)
from ledgerlink.shared.kafka.embedded import EmbeddedKafka, EmbeddedKafkaError
from ledgerlink.shared.messaging.consumer import EventConsumer, ReceivedEvent
from ledgerlink.shared.messaging.dead_letters import (
    DLQ_CONSUMER,
    DLQ_ERROR_CLASS,
    DLQ_ERROR_MESSAGE,
    DLQ_FAILED_AT,
    DLQ_ORIGINAL_OFFSET,
    DLQ_ORIGINAL_PARTITION,
    DLQ_ORIGINAL_TOPIC,
    DeadLetterPublisher,
    RawRecord,
)
from ledgerlink.shared.messaging.inbox import Inbox
from ledgerlink.shared.messaging.outbox import Outbox, OutboxRecord, OutboxRelay
from ledgerlink.shared.messaging.tables import MessagingTables, define_messaging_tables
from ledgerlink.shared.metrics import MessagingMetrics
from ledgerlink.shared.testing import KafkaBackend
from ledgerlink.shared.topics import all_topics, dead_letter_topic

pytestmark = pytest.mark.wire

WAIT = 20.0  # seconds: upper bound for anything awaited (group joins take ~3 s)


@pytest.fixture(scope="module")
def kafka() -> Iterator[EmbeddedKafka]:
    with EmbeddedKafka() as embedded:
        yield embedded


def _unique(name: str) -> str:
    return f"wire.{name}.{uuid.uuid4().hex[:10]}"


def _activation(business_id: str = "0112038-9") -> ActivationRequestedV1:
    return ActivationRequestedV1.model_validate(
        {
            "provider": "netvisor",
            "business_id": business_id,
            "country": "FI",
            "company_name": "Nokia Oyj",
            "requested_by": {"email": "cfo@example.fi", "name": "Maija"},
            "product": "planning",
        }
    )


@dataclass
class Store:
    db: Database
    tables: MessagingTables


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    metadata = MetaData()
    tables = define_messaging_tables(metadata)
    db = Database(create_engine(f"sqlite+aiosqlite:///{tmp_path / 'wire.db'}"))
    async with db.engine.begin() as connection:
        await connection.run_sync(metadata.create_all)
    try:
        yield Store(db=db, tables=tables)
    finally:
        await db.dispose()


async def _describe_partitions(kafka: EmbeddedKafka, topics: list[str]) -> dict[str, int]:
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka.bootstrap_servers)
    await admin.start()
    try:
        described = await admin.describe_topics(topics)
    finally:
        await admin.close()
    assert all(topic["error_code"] == 0 for topic in described)
    return {topic["topic"]: len(topic["partitions"]) for topic in described}


async def _read(kafka: EmbeddedKafka, topic: str, count: int, partition: int = 0) -> list[Any]:
    """The first ``count`` records of one partition, read without a consumer group."""
    consumer = AIOKafkaConsumer(bootstrap_servers=kafka.bootstrap_servers)
    await consumer.start()
    try:
        consumer.assign([TopicPartition(topic, partition)])
        await consumer.seek_to_beginning()
        return [await asyncio.wait_for(consumer.getone(), WAIT) for _ in range(count)]
    finally:
        await consumer.stop()


async def _end_offset(kafka: EmbeddedKafka, topic: str, partition: int = 0) -> int:
    consumer = AIOKafkaConsumer(bootstrap_servers=kafka.bootstrap_servers)
    await consumer.start()
    try:
        tp = TopicPartition(topic, partition)
        offsets = await consumer.end_offsets([tp])
        return int(offsets[tp])
    finally:
        await consumer.stop()


async def _committed(kafka: EmbeddedKafka, group: str, topic: str, partition: int = 0) -> int:
    """The group's committed offset; AIOKafkaConsumer.committed works on the mock cluster
    (AIOKafkaAdminClient.list_consumer_group_offsets does not)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=kafka.bootstrap_servers, group_id=group)
    await consumer.start()
    try:
        committed = await consumer.committed(TopicPartition(topic, partition))
        return -1 if committed is None else int(committed)
    finally:
        await consumer.stop()


async def _produce(kafka: EmbeddedKafka, topic: str, records: list[dict[str, Any]]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=kafka.bootstrap_servers)
    await producer.start()
    try:
        for record in records:
            await producer.send_and_wait(topic, **record)
    finally:
        await producer.stop()


def _headers(record: Any) -> dict[str, bytes]:
    return dict(record.headers)


# --- the embedded cluster and plain aiokafka --------------------------------------------------


async def test_topics_are_created_with_their_partition_counts(kafka: EmbeddedKafka) -> None:
    six, one = _unique("six"), _unique("one")
    kafka.create_topic(six, 6)
    kafka.create_topic(one, 1)
    kafka.create_topic(six, 6)  # idempotent

    assert await _describe_partitions(kafka, [six, one]) == {six: 6, one: 1}
    assert kafka.topics[six] == 6
    assert kafka.topics[one] == 1


async def test_all_topics_through_the_embedded_backend(kafka: EmbeddedKafka) -> None:
    prefix = f"{_unique('env')}."
    backend = KafkaBackend(
        kind="embedded", bootstrap_servers=kafka.bootstrap_servers, embedded=kafka
    )
    wanted = all_topics(prefix)

    await backend.create_topics(wanted)

    assert await _describe_partitions(kafka, list(wanted)) == wanted
    assert wanted[f"{prefix}ledgerlink.activations"] == 6
    assert wanted[f"{prefix}ledgerlink.activations.dlq"] == 1
    assert backend.supports_multi_member_groups is False


async def test_create_topic_requires_a_running_cluster() -> None:
    stopped = EmbeddedKafka()

    with pytest.raises(EmbeddedKafkaError, match="not running"):
        stopped.create_topic("x")
    with pytest.raises(EmbeddedKafkaError, match="not running"):
        _ = stopped.bootstrap_servers


async def test_aiokafka_round_trip(kafka: EmbeddedKafka) -> None:
    topic = _unique("roundtrip")
    kafka.create_topic(topic, 3)
    sent: list[dict[str, Any]] = [
        {"key": b"company-a", "value": b'{"n": 1}', "headers": [("h", b"1")]},
        {"key": b"company-b", "value": b'{"n": 2}', "headers": [("h", b"2"), ("h", b"3")]},
        {"key": b"company-a", "value": b'{"n": 3}', "headers": []},
    ]
    await _produce(kafka, topic, sent)

    consumer = AIOKafkaConsumer(bootstrap_servers=kafka.bootstrap_servers)
    await consumer.start()
    try:
        consumer.assign([TopicPartition(topic, partition) for partition in range(3)])
        await consumer.seek_to_beginning()
        received = [await asyncio.wait_for(consumer.getone(), WAIT) for _ in sent]
    finally:
        await consumer.stop()

    by_value = {record.value: record for record in received}
    assert set(by_value) == {b'{"n": 1}', b'{"n": 2}', b'{"n": 3}'}
    first, second, third = (by_value[s["value"]] for s in sent)
    assert first.key == third.key == b"company-a"
    assert first.partition == third.partition  # same key, same partition
    assert third.offset > first.offset  # and kept in order there
    assert second.headers == (("h", b"2"), ("h", b"3"))
    assert first.headers == (("h", b"1"),)


# --- subscribe(): EventConsumer behind FastStream ---------------------------------------------


@dataclass
class Pipeline:
    """A real broker + EventConsumer on one topic, its handler feeding a queue."""

    kafka: EmbeddedKafka
    store: Store
    topic: str
    group: str
    broker: KafkaBroker
    consumer: EventConsumer
    handled: asyncio.Queue[ReceivedEvent[ActivationRequestedV1]] = field(
        default_factory=asyncio.Queue
    )
    failures_left: int = 0

    async def next_handled(self) -> ReceivedEvent[ActivationRequestedV1]:
        return await asyncio.wait_for(self.handled.get(), WAIT)


@pytest.fixture
async def pipeline(kafka: EmbeddedKafka, store: Store) -> AsyncIterator[Pipeline]:
    topic, group = _unique("activations"), _unique("auth")
    kafka.create_topic(topic, 1)
    kafka.create_topic(dead_letter_topic(topic), 1)
    settings = KafkaSettings(
        bootstrap_servers=kafka.bootstrap_servers, retry_backoff_seconds=0, handler_attempts=2
    )
    broker = build_broker(settings, app_name="wire-test")
    dead_letter_producer = DeadLetterProducer(settings)
    metrics = MessagingMetrics(CollectorRegistry())
    consumer = EventConsumer(
        name=group,
        db=store.db,
        inbox=Inbox(store.tables, group),
        dead_letters=DeadLetterPublisher(dead_letter_producer.publish, metrics, consumer=group),
        settings=settings,
        metrics=metrics,
    )
    built = Pipeline(
        kafka=kafka, store=store, topic=topic, group=group, broker=broker, consumer=consumer
    )

    async def handle(session: AsyncSession, event: ReceivedEvent[ActivationRequestedV1]) -> None:
        if built.failures_left > 0:
            built.failures_left -= 1
            raise OperationalError("SELECT 1", {}, Exception("database down"))
        built.handled.put_nowait(event)

    consumer.route(ActivationRequestedV1, handle)
    subscribe(broker, consumer, topic)
    await dead_letter_producer.start()
    await broker.start()
    try:
        yield built
    finally:
        await broker.stop()
        await dead_letter_producer.stop()


def _event_record(
    envelope: CloudEvent | None = None, *, value: bytes | None = None, key: bytes = b"0112038-9"
) -> tuple[CloudEvent, dict[str, Any]]:
    envelope = envelope or CloudEvent.new(
        source="ledgerlink/store", type=ActivationRequestedV1.EVENT_TYPE, subject="0112038-9"
    )
    record = {
        "key": key,
        "value": _activation().model_dump_json().encode() if value is None else value,
        "headers": envelope.to_headers(),
    }
    return envelope, record


async def _inbox_ids(store: Store) -> set[str]:
    async with store.db.transaction() as session:
        return set(await session.scalars(select(store.tables.inbox.c.event_id)))


async def test_valid_event_is_handled_and_malformed_one_dead_lettered(
    pipeline: Pipeline,
) -> None:
    valid, valid_record = _event_record()
    malformed, malformed_record = _event_record(value=b'{"provider": "netvisor"', key=b"bad")
    sentinel, sentinel_record = _event_record()
    await _produce(pipeline.kafka, pipeline.topic, [valid_record, malformed_record])

    handled = await pipeline.next_handled()
    assert handled.envelope == valid
    assert handled.data == _activation()
    assert handled.key == "0112038-9"
    assert (handled.topic, handled.partition, handled.offset) == (pipeline.topic, 0, 0)

    [letter] = await _read(pipeline.kafka, dead_letter_topic(pipeline.topic), 1)
    assert letter.value == b'{"provider": "netvisor"'  # the original bytes
    assert letter.key == b"bad"
    headers = _headers(letter)
    assert headers[DLQ_ERROR_CLASS] == b"MalformedDataError"
    assert headers[DLQ_ERROR_MESSAGE].startswith(b"data is not valid JSON")
    assert headers[DLQ_ORIGINAL_TOPIC] == pipeline.topic.encode()
    assert headers[DLQ_ORIGINAL_PARTITION] == b"0"
    assert headers[DLQ_ORIGINAL_OFFSET] == b"1"
    assert headers[DLQ_CONSUMER] == pipeline.group.encode()
    assert CloudEvent.from_headers(letter.headers) == malformed  # original headers kept

    # The subscriber handles records one at a time and commits each before the next, so
    # once a third record reaches the handler the offset is committed past both.
    await _produce(pipeline.kafka, pipeline.topic, [sentinel_record])
    assert (await pipeline.next_handled()).envelope == sentinel
    assert await _committed(pipeline.kafka, pipeline.group, pipeline.topic) >= 2
    # The valid event's transaction committed before the sentinel was fetched; the
    # malformed one never reached the inbox.
    assert valid.id in await _inbox_ids(pipeline.store)
    assert malformed.id not in await _inbox_ids(pipeline.store)


async def test_infrastructure_error_is_redelivered_not_dead_lettered(
    pipeline: Pipeline,
) -> None:
    pipeline.failures_left = 1
    envelope, record = _event_record()
    sentinel, sentinel_record = _event_record()

    await _produce(pipeline.kafka, pipeline.topic, [record])
    handled = await pipeline.next_handled()  # the second delivery of the same record

    assert handled.envelope == envelope
    assert handled.offset == 0
    assert pipeline.failures_left == 0
    await _produce(pipeline.kafka, pipeline.topic, [sentinel_record])
    assert (await pipeline.next_handled()).envelope == sentinel
    assert await _end_offset(pipeline.kafka, dead_letter_topic(pipeline.topic)) == 0
    assert await _committed(pipeline.kafka, pipeline.group, pipeline.topic) >= 1
    assert envelope.id in await _inbox_ids(pipeline.store)


async def test_record_with_an_unrelated_binary_header_is_processed_not_dropped(
    pipeline: Pipeline,
) -> None:
    envelope, record = _event_record()
    record["headers"] = [*record["headers"], ("x-binary", b"\xff\x00\x9f")]
    sentinel, sentinel_record = _event_record()
    await _produce(pipeline.kafka, pipeline.topic, [record, sentinel_record])

    assert (await pipeline.next_handled()).envelope == envelope
    assert (await pipeline.next_handled()).envelope == sentinel
    assert await _end_offset(pipeline.kafka, dead_letter_topic(pipeline.topic)) == 0


async def test_record_with_a_binary_cloudevents_header_is_dead_lettered(
    pipeline: Pipeline,
) -> None:
    _, record = _event_record()
    record["headers"] = [
        (name, b"\xff\xfe" if name == "ce_source" else value) for name, value in record["headers"]
    ]
    sentinel, sentinel_record = _event_record()
    await _produce(pipeline.kafka, pipeline.topic, [record, sentinel_record])

    assert (await pipeline.next_handled()).envelope == sentinel
    assert await _end_offset(pipeline.kafka, dead_letter_topic(pipeline.topic)) == 1


async def test_dead_letter_keeps_non_utf8_headers_byte_for_byte(pipeline: Pipeline) -> None:
    _, record = _event_record(value=b"{not json")
    binary = b"\xff\x00\x9f\xc3("  # not UTF-8: a stray byte and a broken sequence
    record["headers"] = [
        *record["headers"],
        ("x-binary", binary),
        ("x-repeated", b"\x80one"),
        ("x-repeated", b"two"),
    ]
    await _produce(pipeline.kafka, pipeline.topic, [record])

    [letter] = await _read(pipeline.kafka, dead_letter_topic(pipeline.topic), 1)
    assert letter.value == b"{not json"
    assert letter.key == b"0112038-9"
    # Every original header, repeats included, in order and with its exact bytes.
    assert list(letter.headers[: len(record["headers"])]) == record["headers"]
    headers = _headers(letter)
    assert headers["x-binary"] == binary
    assert [value for name, value in letter.headers if name == "x-repeated"] == [
        b"\x80one",
        b"two",
    ]
    assert headers[DLQ_ERROR_CLASS] == b"MalformedDataError"
    assert headers[DLQ_ERROR_MESSAGE].startswith(b"data is not valid JSON")
    assert headers[DLQ_ORIGINAL_TOPIC] == pipeline.topic.encode()
    assert headers[DLQ_ORIGINAL_PARTITION] == b"0"
    assert headers[DLQ_ORIGINAL_OFFSET] == b"0"
    assert headers[DLQ_CONSUMER] == pipeline.group.encode()
    assert DLQ_FAILED_AT in headers
    # Nothing but the original headers and the dlq_* ones.
    assert [name for name, _ in letter.headers[len(record["headers"]) :]] == [
        DLQ_ERROR_CLASS,
        DLQ_ERROR_MESSAGE,
        DLQ_ORIGINAL_TOPIC,
        DLQ_ORIGINAL_PARTITION,
        DLQ_ORIGINAL_OFFSET,
        DLQ_CONSUMER,
        DLQ_FAILED_AT,
    ]


async def test_binary_cloudevents_header_is_dead_lettered_with_its_bytes(
    pipeline: Pipeline,
) -> None:
    _, record = _event_record()
    record["headers"] = [
        (name, b"\xff\xfe" if name == "ce_source" else value) for name, value in record["headers"]
    ]
    await _produce(pipeline.kafka, pipeline.topic, [record])

    [letter] = await _read(pipeline.kafka, dead_letter_topic(pipeline.topic), 1)
    headers = _headers(letter)
    assert headers["ce_source"] == b"\xff\xfe"
    assert headers[DLQ_ERROR_CLASS] == b"EnvelopeError"
    assert list(letter.headers[: len(record["headers"])]) == record["headers"]


# --- the outbox relayed to Kafka ------------------------------------------------------------


async def test_outbox_publisher_keeps_headers_key_and_trace(
    kafka: EmbeddedKafka, store: Store
) -> None:
    prefix = f"{_unique('env')}."
    topic = f"{prefix}{ActivationRequestedV1.TOPIC}"
    kafka.create_topic(topic, 1)
    exporter = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    settings = KafkaSettings(bootstrap_servers=kafka.bootstrap_servers, topic_prefix=prefix)
    broker = build_broker(settings, tracer_provider=tracer_provider, app_name="wire-outbox")
    outbox = Outbox(store.tables, source="ledgerlink/auth", topic_prefix=prefix)
    relay = OutboxRelay(
        store.db,
        store.tables,
        outbox_publisher(broker),
        OutboxSettings(),
        MessagingMetrics(CollectorRegistry()),
        lock_name="wire-outbox",
    )

    with tracer_provider.get_tracer("test").start_as_current_span("handle request") as span:
        async with store.db.transaction() as session:
            envelope = await outbox.add(session, _activation(), key="0112038-9", subject="s-1")
    trace_id = span.get_span_context().trace_id

    await broker.start()
    try:
        assert await relay.publish_pending() == 1
    finally:
        await broker.stop()

    [record] = await _read(kafka, topic, 1)
    assert record.key == b"0112038-9"
    assert record.value == _activation().model_dump_json().encode()
    assert ActivationRequestedV1.model_validate_json(record.value) == _activation()
    headers = _headers(record)
    for name, value in envelope.to_headers():
        assert headers[name] == value, name
    assert headers["content-type"] == b"application/json"
    assert headers["correlation_id"] == envelope.id.encode()
    assert CloudEvent.from_headers(record.headers) == envelope
    assert f"-{trace_id:032x}-".encode() in headers["traceparent"]
    assert any(
        s.context is not None and s.context.trace_id == trace_id and s.name != "handle request"
        for s in exporter.get_finished_spans()
    ), "the publish span continues the producing request's trace"


async def test_outbox_sender_sends_a_pass_in_order_with_headers_key_and_trace(
    kafka: EmbeddedKafka, store: Store
) -> None:
    prefix = f"{_unique('env')}."
    topic = f"{prefix}{ActivationRequestedV1.TOPIC}"
    kafka.create_topic(topic, 1)
    tracer_provider = TracerProvider()
    settings = KafkaSettings(bootstrap_servers=kafka.bootstrap_servers, topic_prefix=prefix)
    producer = RecordProducer(settings, purpose="outbox")

    async def publish_one(record: OutboxRecord) -> None:
        raise AssertionError("with a sender, the relay never publishes one record at a time")

    relay = OutboxRelay(
        store.db,
        store.tables,
        publish_one,
        OutboxSettings(),
        MessagingMetrics(CollectorRegistry()),
        lock_name="wire-outbox-send",
        send=outbox_sender(producer),
    )
    outbox = Outbox(store.tables, source="ledgerlink/auth", topic_prefix=prefix)
    with tracer_provider.get_tracer("test").start_as_current_span("handle request") as span:
        async with store.db.transaction() as session:
            envelopes = [
                await outbox.add(session, _activation(), key="0112038-9", subject=f"s-{i}")
                for i in range(5)
            ]
    trace_id = span.get_span_context().trace_id

    await producer.start()
    try:
        assert await relay.publish_pending() == 5
    finally:
        await producer.stop()

    records = await _read(kafka, topic, 5)
    assert [CloudEvent.from_headers(record.headers) for record in records] == envelopes
    for record, envelope in zip(records, envelopes, strict=True):
        headers = _headers(record)
        assert record.key == b"0112038-9"
        assert record.value == _activation().model_dump_json().encode()
        assert headers["content-type"] == b"application/json"
        assert headers["correlation_id"] == envelope.id.encode()
        assert f"-{trace_id:032x}-".encode() in headers["traceparent"]
    assert await _end_offset(kafka, topic) == 5  # each once
    assert await relay.publish_pending() == 0


async def test_dead_letter_publisher_over_the_wire(kafka: EmbeddedKafka) -> None:
    topic = _unique("dlq-direct")
    kafka.create_topic(dead_letter_topic(topic), 1)
    producer = DeadLetterProducer(KafkaSettings(bootstrap_servers=kafka.bootstrap_servers))
    publisher = DeadLetterPublisher(
        producer.publish, MessagingMetrics(CollectorRegistry()), consumer="grp"
    )
    original = RawRecord(
        topic=topic,
        partition=4,
        offset=99,
        key=None,
        value=json.dumps({"x": 1}).encode(),
        headers=[("ce_id", b"abc"), ("x-origin", b"store")],
    )

    await producer.start()
    try:
        letter = await publisher.send(original, "EnvelopeError", "missing CloudEvents header(s)")
    finally:
        await producer.stop()

    [record] = await _read(kafka, dead_letter_topic(topic), 1)
    assert letter.topic == dead_letter_topic(topic)
    assert record.key is None
    assert record.value == b'{"x": 1}'
    headers = _headers(record)
    assert headers["ce_id"] == b"abc"
    assert headers["x-origin"] == b"store"
    assert headers[DLQ_ERROR_CLASS] == b"EnvelopeError"
    assert headers[DLQ_ORIGINAL_PARTITION] == b"4"
    assert headers[DLQ_ORIGINAL_OFFSET] == b"99"


# --- batches over the wire --------------------------------------------------------------------


async def test_batch_redelivered_after_a_crash_before_the_offset_commit_is_applied_once(
    kafka: EmbeddedKafka, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The batch's transaction committed, then the process died before the offset commit.

    The first member's offset commit is made to fail (the crash), so nothing is committed
    to Kafka; a second member of the group gets the same records again and its inbox
    drops every one of them: no handler runs twice.
    """
    topic, group = _unique("activations"), _unique("auth")
    kafka.create_topic(topic, 1)
    kafka.create_topic(dead_letter_topic(topic), 1)
    settings = KafkaSettings(
        bootstrap_servers=kafka.bootstrap_servers, retry_backoff_seconds=0, consume_batch_size=50
    )
    sent = [_event_record() for _ in range(3)]
    await _produce(kafka, topic, [record for _, record in sent])
    handled: asyncio.Queue[str] = asyncio.Queue()
    registry = CollectorRegistry()
    metrics = MessagingMetrics(registry)
    batches: list[int] = []

    async def handle(session: AsyncSession, event: ReceivedEvent[ActivationRequestedV1]) -> None:
        handled.put_nowait(event.envelope.id)

    def member(delivered: asyncio.Event, expected: int) -> KafkaBroker:
        broker = build_broker(settings, app_name="wire-test")
        consumer = EventConsumer(
            name=group,
            db=store.db,
            inbox=Inbox(store.tables, group),
            dead_letters=DeadLetterPublisher(_refuse_dead_letters, metrics, consumer=group),
            settings=settings,
            metrics=metrics,
        )
        consumer.route(ActivationRequestedV1, handle)
        original = consumer.process_batch

        async def process_batch(records: Any) -> Any:
            outcomes = await original(records)
            batches.append(len(records))
            if sum(batches) >= expected:
                delivered.set()
            return outcomes

        consumer.process_batch = process_batch  # type: ignore[method-assign]
        subscribe(broker, consumer, topic)
        return broker

    async def crash_before_committing(self: AIOKafkaConsumer, *args: Any, **kwargs: Any) -> None:
        raise ConnectionError("process killed before the offset commit")

    monkeypatch.setattr(AIOKafkaConsumer, "commit", crash_before_committing)
    first_done = asyncio.Event()
    first = member(first_done, len(sent))
    await first.start()
    try:
        first_ids = [await asyncio.wait_for(handled.get(), WAIT) for _ in sent]
        await asyncio.wait_for(first_done.wait(), WAIT)
    finally:
        await first.stop()
    assert first_ids == [envelope.id for envelope, _ in sent]
    assert await _committed(kafka, group, topic) == -1  # the crash: no offset committed
    monkeypatch.undo()

    second_done = asyncio.Event()
    second = member(second_done, 2 * len(sent))
    await second.start()
    try:
        await asyncio.wait_for(second_done.wait(), WAIT)
    finally:
        await second.stop()
    assert sum(batches) == 2 * len(sent)  # every record was delivered twice
    assert handled.empty()  # ... and handled once
    duplicates = registry.get_sample_value(
        "ledgerlink_events_consumed_total",
        {"topic": topic, "event_type": ActivationRequestedV1.EVENT_TYPE, "outcome": "duplicate"},
    )
    assert duplicates == len(sent)
    assert await _committed(kafka, group, topic) == len(sent)
    assert await _inbox_ids(store) == {envelope.id for envelope, _ in sent}


async def _refuse_dead_letters(letter: Any) -> None:
    raise AssertionError(f"nothing here should be dead-lettered: {letter}")
