"""Consume throughput: FastStream's batch subscriber against raw aiokafka ``getmany``.

Three sides read the same messages on the same broker in the same run, each in its own
fresh consumer group from the earliest offset, with the same fetch settings and the
same ``max_records``; all JSON-decode every value and commit offsets after every batch
(``enable_auto_commit=False``):

- ``aiokafka_getmany`` (the peer): a hand-written ``getmany`` loop;
- ``faststream_batch_default``: a FastStream batch subscriber with FastStream's own
  batch parser and decoder, shown for reference;
- ``faststream_batch_tuned``: the same subscriber with a custom ``parser=`` and
  ``decoder=`` (:class:`JsonBatchCodec`), the path the services would use.

Sides run in rotating order, ``--rounds`` times each, and the medians are compared:
``faststream_batch_tuned / aiokafka_getmany`` against ``--target`` gives the verdict;
``faststream_batch_default / aiokafka_getmany`` is reported next to it.

On a real broker the messages go to one topic with ``--partitions`` partitions. The
embedded broker keeps only 5 MiB per partition (older record batches are dropped), so
there the messages are spread round-robin over as many such topics as needed to keep
every partition well under that cap, and every side subscribes to all of them.

Timing window, identical on all sides: from the moment the first non-empty batch
reaches user code (``getmany`` returned for aiokafka; a broker middleware's
``on_receive``, i.e. before parsing, for FastStream) to the moment the last message
has been decoded and counted. The last batch's commit falls outside the window on
every side (FastStream commits after its handler returns); it still happens and is
checked afterwards.

Usage::

    uv run python bench/bench_consume_throughput.py [--messages N] [--bootstrap HOST:PORT]

Without ``--bootstrap`` (or ``KAFKA_BOOTSTRAP_SERVERS``) an embedded broker (librdkafka's
mock cluster) is started for the run.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import importlib
import importlib.util
import itertools
import json
import logging
import math
import os
import platform
import random
import statistics
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, cast

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from faststream import AckPolicy, BaseMiddleware, ContextRepo
from faststream.kafka import KafkaBroker, Topic
from faststream.kafka.message import KafkaAckableMessage
from faststream.kafka.subscriber.usecase import BatchSubscriber as KafkaBatchSubscriber
from faststream.message import StreamMessage

from ledgerlink.shared.kafka.embedded import EmbeddedKafka

PEER = "aiokafka_getmany"
SUBJECT_DEFAULT = "faststream_batch_default"  # FastStream's own batch parser/decoder
SUBJECT_TUNED = "faststream_batch_tuned"  # custom parser= and decoder= (JsonBatchCodec)
SUBJECT = SUBJECT_TUNED  # the verdict is on the path the services would use
SIDES = (PEER, SUBJECT_DEFAULT, SUBJECT_TUNED)

DEFAULT_MESSAGES = 100_000
DEFAULT_ROUNDS = 3
DEFAULT_PARTITIONS = 3
DEFAULT_MAX_RECORDS = 500
DEFAULT_BATCH_TIMEOUT_MS = 200
DEFAULT_TARGET = 0.6
PRODUCE_CHUNK = 10_000
SHUTDOWN_TIMEOUT_S = 20.0
ADMIN_TIMEOUT_S = 30.0
# librdkafka's mock cluster keeps at most 5 MiB per partition and silently drops the
# oldest record batches beyond that (rdkafka_mock.c: mpart->max_size, not configurable).
EMBEDDED_PARTITION_BYTES = 5 * 1024 * 1024
EMBEDDED_FILL = 0.7  # headroom for key skew between partitions and batch framing

log = logging.getLogger("bench.consume_throughput")


class BenchError(RuntimeError):
    """The benchmark could not complete (timeout, lost messages, missing commits)."""


@dataclass(frozen=True)
class FetchSettings:
    """Consumer settings shared verbatim by both sides."""

    max_records: int
    batch_timeout_ms: int
    fetch_max_wait_ms: int = 500
    fetch_min_bytes: int = 1
    fetch_max_bytes: int = 50 * 1024 * 1024
    max_partition_fetch_bytes: int = 1024 * 1024


@dataclass
class RunResult:
    side: str
    round: int
    group_id: str
    messages: int
    batches: int
    seconds: float
    msgs_per_s: float


@dataclass
class Report:
    messages: int
    rounds: int
    topics: int
    partitions_per_topic: int
    broker: str
    fetch: dict[str, Any]
    payload_bytes_avg: float
    produce_seconds: float
    produce_msgs_per_s: float
    json_decoder: str
    runs: list[RunResult] = field(default_factory=list)
    median_msgs_per_s: dict[str, float] = field(default_factory=dict)
    verdict_side: str = SUBJECT
    ratio: float = 0.0  # SUBJECT_TUNED / PEER: the one the verdict is on
    ratio_default: float = 0.0  # SUBJECT_DEFAULT / PEER: for reference
    target: float = DEFAULT_TARGET
    verdict: str = ""
    environment: dict[str, str] = field(default_factory=dict)


# --------------------------------------------------------------------------- payloads


def _business_id(number: int) -> str:
    """A Finnish Business ID (Y-tunnus, "1234567-8") with a valid check digit, or ''."""
    digits = f"{number:07d}"
    weights = (7, 9, 10, 5, 8, 4, 2)
    remainder = sum(int(d) * w for d, w in zip(digits, weights, strict=True)) % 11
    if remainder == 1:
        return ""
    check = 0 if remainder == 0 else 11 - remainder
    return f"{digits}-{check}"


def _business_ids(rng: random.Random, count: int) -> list[str]:
    ids: list[str] = []
    while len(ids) < count:
        if bid := _business_id(rng.randrange(1_000_000, 9_999_999)):
            ids.append(bid)
    return ids


_SOURCES = ("netvisor", "procountor", "fennoa", "tripletex", "fortnox")
_ACCOUNTS = ("3000", "3010", "4000", "1701", "1910", "2871", "2939", "6800")
_CE_TYPE = "fi.ledgerlink.journal.voucher.imported.v1"


def _message(
    i: int, rng: random.Random, business_ids: list[str], batch_id: str
) -> tuple[bytes, bytes, list[tuple[str, bytes]]]:
    """key, value, headers of one CloudEvents binary-mode event (~400-byte JSON value)."""
    bid = business_ids[i % len(business_ids)]
    source = _SOURCES[i % len(_SOURCES)]
    net = rng.randrange(1_000, 2_500_000)
    vat = net * 255 // 1000
    day = date(2025, 1, 1) + timedelta(days=i % 365)
    data = {
        "businessId": bid,
        "voucher": {
            "number": 100_000 + i,
            "date": day.isoformat(),
            "currency": "EUR",
            "description": f"Sales invoice {20_000 + i % 80_000} / {source}",
        },
        "lines": [
            {"account": rng.choice(_ACCOUNTS), "amount": f"-{net / 100:.2f}", "vatCode": "25.5"},
            {"account": "2939", "amount": f"-{vat / 100:.2f}"},
            {"account": "1701", "amount": f"{(net + vat) / 100:.2f}"},
        ],
        "vatPeriod": day.strftime("%Y-%m"),
        "sourceSystem": source,
        "importBatchId": batch_id,
        "schemaVersion": 2,
    }
    value = json.dumps(data, separators=(",", ":")).encode()
    headers = [
        ("ce_id", str(uuid.uuid4()).encode()),
        ("ce_type", _CE_TYPE.encode()),
        ("ce_source", f"/importer/{source}".encode()),
        ("ce_specversion", b"1.0"),
        ("content-type", b"application/json"),
    ]
    return bid.encode(), value, headers


def _messages(n: int, seed: int) -> Iterator[tuple[bytes, bytes, list[tuple[str, bytes]]]]:
    rng = random.Random(seed)
    business_ids = _business_ids(rng, 5_000)
    batch_id = str(uuid.UUID(int=rng.getrandbits(128)))
    for i in range(n):
        yield _message(i, rng, business_ids, batch_id)


def _json_decoder() -> tuple[str, Callable[[bytes], Any]]:
    """The JSON decoder FastStream uses (orjson when installed, else the stdlib).

    The aiokafka side and the tuned FastStream decoder use the same one, so every side
    does the same decoding work.
    """
    if importlib.util.find_spec("orjson") is not None:
        orjson = importlib.import_module("orjson")
        loads: Callable[[bytes], Any] = orjson.loads
        return "orjson.loads", loads
    return "json.loads", json.loads


# --------------------------------------------------------------------------- broker setup


async def _bounded(aw: Awaitable[Any], what: str, timeout_s: float = SHUTDOWN_TIMEOUT_S) -> None:
    """Await a shutdown step, but never hang on it: warn and go on after ``timeout_s``."""
    try:
        await asyncio.wait_for(aw, timeout_s)
    except TimeoutError:
        log.warning("%s did not finish within %.0fs; abandoned", what, timeout_s)


def estimated_record_bytes(seed: int, sample: int = 1_000) -> float:
    """Average stored size of one record: value, key, headers and ~25 B of framing."""
    total = 0
    for key, value, headers in itertools.islice(_messages(sample, seed), sample):
        total += len(key) + len(value) + sum(len(k) + len(v) + 2 for k, v in headers) + 25
    return total / sample


def embedded_topic_count(n: int, partitions: int, record_bytes: float) -> int:
    """How many topics keep every embedded-broker partition well under its retention cap."""
    per_topic = int(partitions * EMBEDDED_PARTITION_BYTES * EMBEDDED_FILL / record_bytes)
    return max(1, math.ceil(n / max(per_topic, 1)))


async def create_topics_with_admin(
    bootstrap: str, topics: list[str], partitions: int, replication_factor: int
) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        async with asyncio.timeout(ADMIN_TIMEOUT_S):
            await admin.start()
            response = await admin.create_topics(
                [NewTopic(t, partitions, replication_factor) for t in topics]
            )
    except TimeoutError:
        raise BenchError(f"creating the topics took over {ADMIN_TIMEOUT_S:.0f}s") from None
    finally:
        await _bounded(admin.close(), "admin.close()")
    errors = {
        e["topic"]: (e["error_code"], e.get("error_message"))
        for e in response.to_object()["topic_errors"]
        if e["error_code"]
    }
    if errors:
        raise BenchError(f"creating the topics failed: {errors}")


async def delete_topics_with_admin(bootstrap: str, topics: list[str]) -> None:
    """Best effort: a broker that refuses (or lacks) DeleteTopics only earns a warning."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        async with asyncio.timeout(ADMIN_TIMEOUT_S):
            await admin.start()
            await admin.delete_topics(topics)
    except Exception as e:
        log.warning("could not delete the benchmark topics %s...: %r", topics[0], e)
    finally:
        await _bounded(admin.close(), "admin.close()")


async def produce(
    bootstrap: str, topics: list[str], n: int, seed: int, timeout_s: float
) -> tuple[float, list[TopicPartition]]:
    """Produce ``n`` events round-robin over ``topics``.

    Returns the average value size and every partition of ``topics``.
    """
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        acks="all",
        enable_idempotence=True,
        linger_ms=50,
        max_batch_size=512 * 1024,
        max_request_size=4 * 1024 * 1024,
    )
    total_bytes = 0
    partitions: list[TopicPartition] = []
    try:
        async with asyncio.timeout(timeout_s):
            await producer.start()
            futures: list[asyncio.Future[Any]] = []
            for i, (key, value, headers) in enumerate(_messages(n, seed)):
                total_bytes += len(value)
                topic = topics[i % len(topics)]
                futures.append(await producer.send(topic, value=value, key=key, headers=headers))
                if len(futures) >= PRODUCE_CHUNK:
                    await asyncio.gather(*futures)
                    futures.clear()
            await asyncio.gather(*futures)
            await producer.flush()
            for topic in topics:
                ids = sorted(await producer.partitions_for(topic))
                partitions.extend(TopicPartition(topic, p) for p in ids)
    except TimeoutError:
        raise BenchError(f"producing {n:,} messages took over {timeout_s:.0f}s") from None
    finally:
        await _bounded(producer.stop(), "producer.stop()")
    return total_bytes / n, partitions


async def log_bounds(
    bootstrap: str, partitions: list[TopicPartition]
) -> tuple[dict[TopicPartition, int], dict[TopicPartition, int]]:
    """(beginning, end) offsets of each partition, read by a group-less consumer."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    try:
        async with asyncio.timeout(ADMIN_TIMEOUT_S):
            await consumer.start()
            starts: dict[TopicPartition, int] = await consumer.beginning_offsets(partitions)
            ends: dict[TopicPartition, int] = await consumer.end_offsets(partitions)
            return starts, ends
    except TimeoutError:
        raise BenchError("reading the log bounds timed out") from None
    finally:
        await _bounded(consumer.stop(), "consumer.stop()")


async def check_committed(bootstrap: str, group_id: str, ends: dict[TopicPartition, int]) -> None:
    """Fail unless ``group_id`` committed every partition up to its end offset."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        async with asyncio.timeout(ADMIN_TIMEOUT_S):
            await admin.start()
            committed = await admin.list_consumer_group_offsets(group_id, partitions=list(ends))
    except TimeoutError:
        raise BenchError(f"reading the offsets of {group_id} timed out") from None
    finally:
        await _bounded(admin.close(), "admin.close()")
    got = {tp: (meta.offset if meta is not None else -1) for tp, meta in committed.items()}
    missing = {f"{tp.topic}[{tp.partition}]": (got.get(tp, -1), end) for tp, end in ends.items()}
    missing = {k: v for k, v in missing.items() if v[0] != v[1]}
    if missing:
        raise BenchError(f"group {group_id}: committed != end offsets: {missing}")


# --------------------------------------------------------------------------- the two sides


async def consume_aiokafka(
    bootstrap: str,
    topics: list[str],
    n: int,
    fetch: FetchSettings,
    loads: Callable[[bytes], Any],
    group_id: str,
    timeout_s: float,
) -> tuple[int, int, float]:
    """The peer: raw getmany loop. Returns (messages, batches, seconds)."""
    consumer = AIOKafkaConsumer(
        *topics,
        bootstrap_servers=bootstrap,
        group_id=group_id,
        enable_auto_commit=False,  # committed explicitly after each batch
        auto_offset_reset="earliest",
        fetch_max_wait_ms=fetch.fetch_max_wait_ms,
        fetch_min_bytes=fetch.fetch_min_bytes,
        fetch_max_bytes=fetch.fetch_max_bytes,
        max_partition_fetch_bytes=fetch.max_partition_fetch_bytes,
    )
    count = batches = 0
    t0: float | None = None
    t1 = 0.0
    try:
        async with asyncio.timeout(timeout_s):
            await consumer.start()
            while count < n:
                records = await consumer.getmany(
                    timeout_ms=fetch.batch_timeout_ms, max_records=fetch.max_records
                )
                if not records:
                    continue
                if t0 is None:
                    t0 = time.perf_counter()
                for partition_records in records.values():
                    bodies = [loads(record.value) for record in partition_records]
                    count += len(bodies)
                batches += 1
                if count >= n:
                    t1 = time.perf_counter()
                await consumer.commit()
    except TimeoutError:
        raise BenchError(f"{PEER}: only {count}/{n} messages within {timeout_s:g}s") from None
    finally:
        await _bounded(consumer.stop(), f"{PEER}: consumer.stop()")
    assert t0 is not None
    return count, batches, t1 - t0


@dataclass
class _SubjectState:
    n: int
    done: asyncio.Event = field(default_factory=asyncio.Event)
    count: int = 0
    batches: int = 0
    t0: float | None = None
    t1: float = 0.0


class _FirstReceive(BaseMiddleware[Any, Any]):
    """Stamps the first non-empty batch as it reaches FastStream, before parsing."""

    __slots__ = ("state",)

    def __init__(self, msg: Any, /, *, context: ContextRepo, state: _SubjectState) -> None:
        super().__init__(msg, context=context)
        self.state = state

    async def on_receive(self) -> None:
        if self.state.t0 is None:
            self.state.t0 = time.perf_counter()


class JsonBatchCodec:
    """A custom ``parser=`` and ``decoder=`` for a FastStream Kafka batch subscriber.

    This is the tuned FastStream path, the one the services would use: plain FastStream
    extension points (``broker.subscriber(..., batch=True, parser=codec.parse,
    decoder=codec.decode)``), with FastStream's subscriber loop, middlewares,
    ``AckPolicy.ACK`` and commit left as they are.

    Why: FastStream's default batch decoder (``AioKafkaBatchParser.decode_batch``)
    re-parses every record of the batch into a full ``KafkaMessage`` (decodes its
    headers into a dict again, generates a ``uuid4`` correlation id, ...) only to run
    ``decode_message`` on it: ~19 us per record, against ~7 us for the JSON decoding
    itself. Its default batch parser also decodes every record's headers (~0.7 us).

    - :meth:`parse` builds the ONE message of the batch, like the default parser, but
      without per-record work: ``body`` = the raw values, ``headers`` = the first
      record's (as the default), no ``batch_headers`` (a handler that needs a record's
      headers reads ``message.raw_message[i].headers``). It is a
      ``KafkaAckableMessage`` bound to the subscriber's consumer, exactly what the
      default parser returns when the ack policy is not ``ACK_FIRST``, so FastStream's
      acknowledgement middleware commits through ``consumer.commit()`` after the handler
      and ``nack`` seeks back as usual.
    - :meth:`decode` JSON-decodes every value with ``loads`` (the JSON library
      FastStream itself uses) and returns the list the handler receives.

    Only for JSON values and ack policies other than ``ACK_FIRST`` (which uses
    auto-commit and the non-ackable ``KafkaMessage``). :meth:`bind` must be called with
    the subscriber before the broker starts.
    """

    __slots__ = ("_loads", "_subscriber")

    def __init__(self, loads: Callable[[bytes], Any]) -> None:
        self._loads = loads
        self._subscriber: KafkaBatchSubscriber | None = None

    def bind(self, subscriber: KafkaBatchSubscriber) -> None:
        self._subscriber = subscriber

    async def parse(self, records: tuple[ConsumerRecord[Any, Any], ...]) -> KafkaAckableMessage:
        assert self._subscriber is not None, "JsonBatchCodec.bind() was not called"
        consumer = self._subscriber.consumer
        assert consumer is not None, "the subscriber is not started"
        first, last = records[0], records[-1]
        headers = {k: v.decode() for k, v in first.headers}
        return KafkaAckableMessage(
            raw_message=records,
            body=[record.value for record in records],
            headers=headers,
            reply_to=headers.get("reply_to", ""),
            content_type=headers.get("content-type"),
            message_id=f"{first.offset}-{last.offset}-{first.timestamp}",
            correlation_id=headers.get("correlation_id"),
            consumer=consumer,
        )

    async def decode(self, message: StreamMessage[Any]) -> list[Any]:
        loads = self._loads
        values = cast("list[bytes]", message.body)  # what parse() put there
        return [loads(value) for value in values]


async def consume_faststream(
    bootstrap: str,
    topics: list[str],
    n: int,
    fetch: FetchSettings,
    group_id: str,
    timeout_s: float,
    codec: JsonBatchCodec | None = None,
) -> tuple[int, int, float]:
    """A FastStream batch subscriber. Returns (messages, batches, seconds).

    With ``codec`` None it uses FastStream's default batch parser and decoder
    (``SUBJECT_DEFAULT``); otherwise ``codec.parse`` and ``codec.decode`` as custom
    ``parser=`` and ``decoder=`` (``SUBJECT_TUNED``). Everything else is identical.
    """
    side = SUBJECT_DEFAULT if codec is None else SUBJECT_TUNED
    state = _SubjectState(n)

    def first_receive(msg: Any, /, *, context: ContextRepo) -> BaseMiddleware[Any, Any]:
        return _FirstReceive(msg, context=context, state=state)

    quiet = logging.getLogger("bench.faststream")
    quiet.setLevel(logging.WARNING)  # no per-batch "Received"/"Processed" INFO lines
    broker = KafkaBroker(bootstrap, logger=quiet, middlewares=(first_receive,))

    subscriber = broker.subscriber(
        *(Topic(t, declare=False) for t in topics),  # created beforehand: no CreateTopics
        batch=True,
        group_id=group_id,
        max_records=fetch.max_records,
        batch_timeout_ms=fetch.batch_timeout_ms,
        ack_policy=AckPolicy.ACK,  # commit after each batch, auto-commit off
        auto_offset_reset="earliest",
        fetch_max_wait_ms=fetch.fetch_max_wait_ms,
        fetch_min_bytes=fetch.fetch_min_bytes,
        fetch_max_bytes=fetch.fetch_max_bytes,
        max_partition_fetch_bytes=fetch.max_partition_fetch_bytes,
        parser=codec.parse if codec is not None else None,
        decoder=codec.decode if codec is not None else None,
    )
    if codec is not None:
        codec.bind(subscriber)

    @subscriber
    async def handle(bodies: list[Any]) -> None:
        state.count += len(bodies)
        state.batches += 1
        if state.count >= state.n and not state.done.is_set():
            state.t1 = time.perf_counter()
            state.done.set()

    try:
        async with asyncio.timeout(timeout_s):
            await broker.start()
            await state.done.wait()
    except TimeoutError:
        raise BenchError(f"{side}: only {state.count}/{n} messages within {timeout_s:g}s") from None
    finally:
        await _bounded(broker.stop(), f"{side}: broker.stop()")
    assert state.t0 is not None
    return state.count, state.batches, state.t1 - state.t0


# --------------------------------------------------------------------------- the services' path
#
# The headline: activation requests through a running auth service (its own process,
# started with ``python -m ledgerlink.auth serve``, PostgreSQL store, the shared kernel's
# batch consumer and outbox relay), against a ceiling measured in the same run on the same
# records: raw aiokafka ``getmany`` plus asyncpg batched inserts of exactly the rows the
# service wrote (environments, connections, outbox, inbox), one transaction per batch.

SERVICE_EVENTS = 20_000
SERVICE_TARGET_RATIO = 0.3
SERVICE_TARGET_RATE = 2_000.0
AUTH_TABLES = ("environments", "connections", "outbox", "inbox")
_ACTIVATION_TYPE = "ledgerlink.activation.requested.v1"


@dataclass
class PathRun:
    """One side of the services' path measurement."""

    side: str
    events: int
    seconds: float
    events_per_s: float
    cpu_seconds: float
    cpu_ms_per_event: float


@dataclass
class ServiceReport:
    events: int
    batch_size: int
    database: str
    service: PathRun | None = None
    ceiling: PathRun | None = None
    ratio: float = 0.0
    target_ratio: float = SERVICE_TARGET_RATIO
    target_rate: float = SERVICE_TARGET_RATE
    verdict: str = ""
    #: Every round's (auth events/s, ceiling events/s, ratio), in order.
    rounds: list[tuple[float, float, float]] = field(default_factory=list)


def median_round(reports: list[ServiceReport]) -> ServiceReport:
    """The round whose ratio is the median (the lower middle one of an even count), with
    every round listed: one round swings by +-15% on a shared 2-core machine."""
    ordered = sorted(reports, key=lambda r: r.ratio)
    chosen = ordered[(len(ordered) - 1) // 2]
    chosen.rounds = [
        (r.service.events_per_s, r.ceiling.events_per_s, r.ratio)
        for r in reports
        if r.service is not None and r.ceiling is not None
    ]
    return chosen


def _activation_records(n: int, seed: int) -> list[tuple[bytes, bytes, list[tuple[str, bytes]]]]:
    """``n`` activation requests of distinct Finnish companies (file provider: active)."""
    rng = random.Random(seed)
    seen: set[str] = set()
    records: list[tuple[bytes, bytes, list[tuple[str, bytes]]]] = []
    while len(records) < n:
        bid = _business_id(rng.randrange(1_000_000, 9_999_999))
        if not bid or bid in seen:
            continue
        seen.add(bid)
        value = json.dumps(
            {
                "provider": "sie",
                "business_id": bid,
                "country": "FI",
                "company_name": f"Yritys {len(records)} Oy",
                "requested_by": {"email": "cfo@example.fi", "name": "Maija Meikäläinen"},
                "product": "planning",
                "store_reference": f"store-order-{len(records)}",
            }
        ).encode()
        headers = [
            ("ce_id", str(uuid.UUID(int=rng.getrandbits(128))).encode()),
            ("ce_source", b"ledgerlink/bench"),
            ("ce_type", _ACTIVATION_TYPE.encode()),
            ("ce_specversion", b"1.0"),
            ("ce_time", datetime.now(UTC).isoformat().encode()),
            ("content-type", b"application/json"),
        ]
        records.append((bid.encode(), value, headers))
    return records


async def _produce_records(
    bootstrap: str, topic: str, records: list[tuple[bytes, bytes, list[tuple[str, bytes]]]]
) -> None:
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, acks="all", enable_idempotence=True, linger_ms=20
    )
    try:
        async with asyncio.timeout(120):
            await producer.start()
            futures = [
                await producer.send(topic, value=value, key=key, headers=headers)
                for key, value, headers in records
            ]
            await asyncio.gather(*futures)
    finally:
        await _bounded(producer.stop(), "producer.stop()")


def _cpu_seconds(pid: int) -> float:
    """User + system CPU of process ``pid`` (psutil when installed, else /proc)."""
    if importlib.util.find_spec("psutil") is not None:
        psutil: Any = importlib.import_module("psutil")
        times = psutil.Process(pid).cpu_times()
        return float(times.user + times.system)
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _cols(names: list[str]) -> str:
    return ", ".join(f'"{name}"' for name in names)


def _asyncpg_dsn(url: str) -> str:
    return url.replace("postgresql+asyncpg://", "postgresql://", 1)


async def _observe(
    dsn: str,
    pid: int,
    n: int,
    count_sql: str,
    timeout_s: float,
    child: Any,
    *,
    started_sql: str | None = None,
    maybe_done_sql: str | None = None,
) -> tuple[int, float, float]:
    """Watch the store until ``count_sql`` says all ``n`` events are through.

    The window opens at the first poll that sees an event done (so process start-up and
    the group join are left out) and closes at the poll that sees all ``n``; returns
    (events inside the window, seconds, the child's CPU seconds inside the window).

    The observer's own queries run on the PostgreSQL the process under test uses, every
    50 ms, so they must not grow with the tables: a ``count(*)`` over 60,000 rows 20 times a
    second is PostgreSQL CPU taken from the side under test. ``started_sql`` (any event
    through?) and ``maybe_done_sql`` (could all be through?) are cheap checks; the exact
    ``count_sql`` then runs only when the window opens and near its end.
    """
    asyncpg: Any = importlib.import_module("asyncpg")
    connection = await asyncpg.connect(dsn)
    try:
        start: tuple[int, float, float] | None = None
        deadline = time.monotonic() + timeout_s
        while True:
            if child.poll() is not None:
                raise BenchError(f"the process under test exited with {child.returncode}")
            done = 0
            if start is None:
                if started_sql is None or await connection.fetchval(started_sql):
                    done = int(await connection.fetchval(count_sql))
            elif maybe_done_sql is None or await connection.fetchval(maybe_done_sql):
                done = int(await connection.fetchval(count_sql))
            now = time.perf_counter()
            if start is None and done > 0:
                start = (done, now, _cpu_seconds(pid))
            if start is not None and done >= n:
                return n - start[0], now - start[1], _cpu_seconds(pid) - start[2]
            if time.monotonic() > deadline:
                raise BenchError(f"only {done:,}/{n:,} events through within {timeout_s:g}s")
            await asyncio.sleep(0.05)  # polling interval of the observer, not synchronisation
    finally:
        await connection.close()


def _path_run(side: str, events: int, seconds: float, cpu: float) -> PathRun:
    return PathRun(
        side=side,
        events=events,
        seconds=round(seconds, 3),
        events_per_s=round(events / seconds, 1),
        cpu_seconds=round(cpu, 3),
        cpu_ms_per_event=round(cpu * 1000 / events, 3),
    )


def _spawn(command: list[str], env: dict[str, str], log: Any) -> Any:
    """Start a process under test (output to ``log``, or ours when None)."""
    import subprocess

    return subprocess.Popen(
        command, env=env, stdout=log, stderr=subprocess.STDOUT if log is not None else None
    )


def _stop_child(child: Any) -> None:
    import signal
    import subprocess

    if child.poll() is None:
        child.send_signal(signal.SIGTERM)
        try:
            child.wait(timeout=SHUTDOWN_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()


async def run_service_benchmark(
    opts: ServiceOptions, bootstrap: str, embedded: EmbeddedKafka | None
) -> ServiceReport:
    """Auth's real event path against the raw ceiling, on the same records and store."""
    import pickle
    import socket
    import subprocess
    import tempfile

    from ledgerlink.shared.testing import start_postgres_backend
    from ledgerlink.shared.topics import Topic, all_topics

    asyncpg: Any = importlib.import_module("asyncpg")
    n = opts.events
    prefix = f"bench{uuid.uuid4().hex[:8]}."
    topics = all_topics(prefix)
    if embedded is not None:
        for name, partitions in topics.items():
            embedded.create_topic(name, partitions=partitions)
    else:
        await create_topics_with_admin(bootstrap, list(topics), 6, 1)
    activations = f"{prefix}{Topic.ACTIVATIONS}"
    postgres = start_postgres_backend()
    url = await postgres.create_database("ledgerlink_bench_consume")
    dsn = _asyncpg_dsn(url)
    workdir = Path(tempfile.mkdtemp(prefix="bench-consume-"))
    report = ServiceReport(events=n, batch_size=opts.batch_size, database=postgres.kind)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = dict(os.environ)
    env.update(
        {
            "LEDGERLINK_AUTH_KAFKA__BOOTSTRAP_SERVERS": bootstrap,
            "LEDGERLINK_AUTH_KAFKA__TOPIC_PREFIX": prefix,
            "LEDGERLINK_AUTH_KAFKA__CONSUME_BATCH_SIZE": str(opts.batch_size),
            "LEDGERLINK_AUTH_DATABASE__URL": url,
            "LEDGERLINK_AUTH_HTTP__PORT": str(port),
            "LEDGERLINK_AUTH_LOG_LEVEL": "WARNING",
            "OTEL_TRACES_EXPORTER": "none",
        }
    )
    try:
        migrated = await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-m", "ledgerlink.auth", "migrate"],
            env=env,
            capture_output=True,
            check=False,
            timeout=180,
        )
        if migrated.returncode != 0:
            raise BenchError(f"migrating auth failed: {migrated.stderr.decode()[-2000:]}")
        _progress(f"producing {n:,} activation requests to {activations}")
        records = _activation_records(n, opts.seed)
        await _produce_records(bootstrap, activations, records)

        # 1. the service, as deployed: its own process, default settings but the batch size
        with (workdir / "auth.log").open("wb") as log:
            child = _spawn([sys.executable, "-m", "ledgerlink.auth", "serve"], env, log)
            try:
                _progress(f"  auth (pid {child.pid}) consuming ...")
                events, secs, cpu = await _observe(
                    dsn,
                    child.pid,
                    n,
                    # through = its outcome event published by the relay (one per event)
                    "SELECT count(*) FROM outbox WHERE published_at IS NOT NULL",
                    opts.timeout_s,
                    child,
                    started_sql="SELECT EXISTS "
                    "(SELECT 1 FROM outbox WHERE published_at IS NOT NULL)",
                    # every event has its outbox row (ids count up from 1) and none waits
                    maybe_done_sql=f"SELECT coalesce(max(id), 0) >= {n} "  # noqa: S608
                    "AND NOT EXISTS (SELECT 1 FROM outbox WHERE published_at IS NULL) FROM outbox",
                )
            finally:
                _stop_child(child)
        report.service = _path_run("auth_service", events, secs, cpu)
        _progress(f"  auth: {report.service.events_per_s:,.0f} events/s")

        # 2. the rows it wrote, keyed by event id; then an empty store for the ceiling
        connection = await asyncpg.connect(dsn)
        try:
            columns = {
                table: [
                    row["column_name"]
                    for row in await connection.fetch(
                        "SELECT column_name FROM information_schema.columns "
                        "WHERE table_name = $1 ORDER BY ordinal_position",
                        table,
                    )
                ]
                for table in AUTH_TABLES
            }
            rows: dict[str, dict[str, tuple[Any, ...]]] = {}
            environments = {
                r["id"]: tuple(r)
                for r in await connection.fetch(
                    f"SELECT {_cols(columns['environments'])} FROM environments"  # noqa: S608
                )
            }
            connections = {}
            for r in await connection.fetch(
                f"SELECT {_cols(columns['connections'])} FROM connections"  # noqa: S608
            ):
                connections[str(r["id"])] = r
                rows.setdefault(r["activation_event_id"], {})["environments"] = environments[
                    r["environment_id"]
                ]
                rows[r["activation_event_id"]]["connections"] = tuple(r)
            by_connection = {str(r["id"]): r["activation_event_id"] for r in connections.values()}
            for r in await connection.fetch(
                f"SELECT {_cols(columns['outbox'])} FROM outbox"  # noqa: S608
            ):
                subject = json.loads(r["headers"])["ce"].get("ce_subject")
                rows[by_connection[subject]]["outbox"] = tuple(r)
            for r in await connection.fetch(
                f"SELECT {_cols(columns['inbox'])} FROM inbox"  # noqa: S608
            ):
                rows[r["event_id"]]["inbox"] = tuple(r)
            if len(rows) != n or any(len(v) != len(AUTH_TABLES) for v in rows.values()):
                raise BenchError(f"auth wrote rows for {len(rows):,} events, expected {n:,}")
            await connection.execute(f"TRUNCATE {', '.join(AUTH_TABLES)} CASCADE")
            await connection.execute(
                "CREATE TABLE bench_progress (done bigint NOT NULL);"
                "INSERT INTO bench_progress VALUES (0)"
            )
        finally:
            await connection.close()
        rows_file = workdir / "rows.pickle"
        rows_file.write_bytes(pickle.dumps({"columns": columns, "rows": rows}))

        # 3. the ceiling: raw aiokafka + asyncpg on the same records, its own process
        child = _spawn(
            [
                sys.executable,
                __file__,
                "--ceiling-worker",
                str(rows_file),
                "--bootstrap",
                bootstrap,
                "--ceiling-topic",
                activations,
                "--ceiling-dsn",
                dsn,
                "--max-records",
                str(opts.batch_size),
            ],
            env,
            None,
        )
        try:
            _progress(f"  ceiling (pid {child.pid}) consuming ...")
            # The worker counts its committed events in bench_progress (one row, updated in
            # each batch's transaction): read in O(1), like auth's cheap checks.
            events, secs, cpu = await _observe(
                dsn, child.pid, n, "SELECT done FROM bench_progress", opts.timeout_s, child
            )
        finally:
            _stop_child(child)
        report.ceiling = _path_run("ceiling_aiokafka_asyncpg", events, secs, cpu)
        _progress(f"  ceiling: {report.ceiling.events_per_s:,.0f} events/s")
    finally:
        (workdir / "rows.pickle").unlink(missing_ok=True)
        _progress(f"  auth's log: {workdir / 'auth.log'}")
        await postgres.drop_database(url)
        postgres.close()
        if embedded is None:
            await delete_topics_with_admin(bootstrap, list(topics))
    report.ratio = round(report.service.events_per_s / report.ceiling.events_per_s, 3)
    ok = report.ratio >= report.target_ratio and report.service.events_per_s >= report.target_rate
    report.verdict = "PASS" if ok else "FAIL"
    return report


async def ceiling_worker(
    loaded: dict[str, Any], bootstrap: str, topic: str, dsn: str, max_records: int
) -> None:
    """The ceiling: getmany, JSON-decode, insert the event's rows raw, commit, commit offsets."""
    asyncpg: Any = importlib.import_module("asyncpg")
    columns: dict[str, list[str]] = loaded["columns"]
    rows: dict[str, dict[str, tuple[Any, ...]]] = loaded["rows"]
    statements = {
        table: f"INSERT INTO {table} ({_cols(cols)}) VALUES "  # noqa: S608
        f"({', '.join(f'${i}' for i in range(1, len(cols) + 1))})"
        for table, cols in columns.items()
    }
    connection = await asyncpg.connect(dsn)
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=f"bench-ceiling-{uuid.uuid4().hex[:8]}",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    await consumer.start()
    try:
        done = 0
        while done < len(rows):
            batch = await consumer.getmany(timeout_ms=100, max_records=max_records)
            event_rows: list[dict[str, tuple[Any, ...]]] = []
            for records in batch.values():
                for record in records:
                    json.loads(record.value)
                    event_id = dict(record.headers)["ce_id"].decode()
                    event_rows.append(rows[event_id])
            if not event_rows:
                continue
            async with connection.transaction():
                for table in AUTH_TABLES:
                    await connection.executemany(statements[table], [r[table] for r in event_rows])
                # for the observer (see _observe): one row, not a count over the inbox
                await connection.execute(
                    "UPDATE bench_progress SET done = done + $1", len(event_rows)
                )
            await consumer.commit()
            done += len(event_rows)
    finally:
        await consumer.stop()
        await connection.close()


# --------------------------------------------------------------------------- driver


@dataclass(frozen=True)
class ServiceOptions:
    events: int
    batch_size: int
    timeout_s: float
    seed: int
    rounds: int = 3


@dataclass(frozen=True)
class Options:
    messages: int
    rounds: int
    partitions: int
    topics: int
    replication_factor: int
    bootstrap: str | None
    fetch: FetchSettings
    target: float
    timeout_s: float
    seed: int
    as_json: bool
    strict: bool
    service: ServiceOptions | None = None
    framework: bool = True


def _progress(text: str) -> None:
    """Progress goes to stderr, so stdout carries only the report (text or --json)."""
    print(text, file=sys.stderr, flush=True)


async def run_benchmark(opts: Options, bootstrap: str, embedded: EmbeddedKafka | None) -> Report:
    n = opts.messages
    decoder_name, loads = _json_decoder()
    topic_count = opts.topics
    if topic_count == 0:  # auto
        record_bytes = estimated_record_bytes(opts.seed)
        topic_count = (
            embedded_topic_count(n, opts.partitions, record_bytes) if embedded is not None else 1
        )
    run_id = uuid.uuid4().hex[:12]
    topics = [f"bench.consume-throughput.{run_id}.{i}" for i in range(topic_count)]

    if embedded is not None:
        for topic in topics:
            embedded.create_topic(topic, partitions=opts.partitions)
    else:
        await create_topics_with_admin(bootstrap, topics, opts.partitions, opts.replication_factor)

    try:
        _progress(
            f"producing {n:,} messages to {topic_count} topic(s) x {opts.partitions} "
            f"partitions ({topics[0]}{', ...' if topic_count > 1 else ''})",
        )
        t = time.perf_counter()
        avg_bytes, partitions = await produce(
            bootstrap, topics, n, opts.seed, timeout_s=max(120.0, n / 1_000)
        )
        produce_s = time.perf_counter() - t
        starts, ends = await log_bounds(bootstrap, partitions)
        if any(starts.values()):
            dropped = sum(starts.values())
            why = (
                "librdkafka's mock cluster keeps only 5 MiB per partition; use more --topics "
                "(or 0 = auto), fewer --messages, or a real --bootstrap"
                if embedded is not None
                else "check the broker's retention settings"
            )
            raise BenchError(f"the broker dropped the oldest {dropped:,} of {n:,} messages: {why}")
        if sum(ends.values()) != n or len(ends) != topic_count * opts.partitions:
            raise BenchError(f"the topics hold {dict(ends)}, expected {n:,} messages")
        _progress(
            f"  produced in {produce_s:.1f}s ({n / produce_s:,.0f} msg/s), "
            f"avg value {avg_bytes:.0f} B, {min(ends.values()):,}..{max(ends.values()):,} "
            "per partition",
        )

        report = Report(
            messages=n,
            rounds=opts.rounds,
            topics=topic_count,
            partitions_per_topic=opts.partitions,
            broker="embedded (librdkafka mock cluster)" if embedded else bootstrap,
            fetch=asdict(opts.fetch),
            payload_bytes_avg=round(avg_bytes, 1),
            produce_seconds=round(produce_s, 3),
            produce_msgs_per_s=round(n / produce_s, 1),
            json_decoder=decoder_name,
            target=opts.target,
        )

        for rnd in range(1, opts.rounds + 1):
            # rotate the order, so each side runs first, second and third in turn
            shift = (rnd - 1) % len(SIDES)
            order = SIDES[shift:] + SIDES[:shift]
            for side in order:
                group_id = f"bench-{side}-{uuid.uuid4().hex[:12]}"
                gc.collect()
                if side == PEER:
                    count, batches, secs = await consume_aiokafka(
                        bootstrap, topics, n, opts.fetch, loads, group_id, opts.timeout_s
                    )
                else:
                    codec = JsonBatchCodec(loads) if side == SUBJECT_TUNED else None
                    count, batches, secs = await consume_faststream(
                        bootstrap, topics, n, opts.fetch, group_id, opts.timeout_s, codec
                    )
                if count != n:
                    raise BenchError(f"{side}: consumed {count} messages, expected {n}")
                await check_committed(bootstrap, group_id, ends)
                result = RunResult(
                    side=side,
                    round=rnd,
                    group_id=group_id,
                    messages=count,
                    batches=batches,
                    seconds=round(secs, 4),
                    msgs_per_s=round(count / secs, 1),
                )
                report.runs.append(result)
                _progress(
                    f"  round {rnd} {side:<24} {count:,} msgs in {secs:6.2f}s "
                    f"= {count / secs:>9,.0f} msg/s ({batches} batches, commits verified)",
                )
    finally:
        if embedded is None:
            await delete_topics_with_admin(bootstrap, topics)

    medians = report.median_msgs_per_s
    for side in SIDES:
        rates = [r.msgs_per_s for r in report.runs if r.side == side]
        medians[side] = round(statistics.median(rates), 1)
    report.ratio = round(medians[SUBJECT_TUNED] / medians[PEER], 3)
    report.ratio_default = round(medians[SUBJECT_DEFAULT] / medians[PEER], 3)
    report.verdict = "PASS" if report.ratio >= opts.target else "FAIL"
    return report


def _environment(started_at: datetime) -> dict[str, str]:
    from importlib.metadata import version

    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": str(os.cpu_count()),
        "faststream": version("faststream"),
        "aiokafka": version("aiokafka"),
        "confluent-kafka": version("confluent-kafka"),
        "started_at": started_at.isoformat(timespec="seconds"),
    }


def _print_text(report: Report) -> None:
    medians = report.median_msgs_per_s
    print(f"consume throughput, {report.messages:,} messages x {report.rounds} rounds")
    print(
        f"  broker: {report.broker}; {report.topics} topic(s) x "
        f"{report.partitions_per_topic} partitions"
    )
    print(
        f"  max_records={report.fetch['max_records']}, "
        f"getmany timeout={report.fetch['batch_timeout_ms']} ms, "
        f"json decoder: {report.json_decoder}, avg value {report.payload_bytes_avg:.0f} B"
    )
    for side in SIDES:
        print(f"  median {side:<24} {medians[side]:>10,.0f} msg/s")
    print(
        f"  ratio {SUBJECT_DEFAULT} / {PEER} = {report.ratio_default:.3f} "
        "(reference: FastStream's default batch parser/decoder)"
    )
    print(
        f"  ratio {SUBJECT_TUNED} / {PEER} = {report.ratio:.3f} "
        f"(target >= {report.target}): {report.verdict}"
    )
    print(
        f"  verdict on {SUBJECT_TUNED}: FastStream with a custom parser= and decoder=, "
        "the path the services would use"
    )


def parse_args(argv: list[str] | None = None) -> Options:
    p = argparse.ArgumentParser(
        description="Consume throughput: FastStream batch subscriber vs raw aiokafka getmany."
    )
    p.add_argument(
        "--messages",
        type=int,
        default=DEFAULT_MESSAGES,
        help="messages of the framework comparison (100000)",
    )
    p.add_argument("--rounds", type=int, default=DEFAULT_ROUNDS, help="runs per side (3)")
    p.add_argument(
        "--partitions", type=int, default=DEFAULT_PARTITIONS, help="partitions per topic (3)"
    )
    p.add_argument(
        "--topics",
        type=int,
        default=0,
        help="topics to spread the messages over; 0 = auto: 1 on a real broker, enough to "
        "stay under the embedded broker's 5 MiB-per-partition retention otherwise",
    )
    p.add_argument(
        "--bootstrap",
        default=os.environ.get("KAFKA_BOOTSTRAP_SERVERS") or None,
        help="use this Kafka instead of an embedded one (env KAFKA_BOOTSTRAP_SERVERS)",
    )
    p.add_argument(
        "--replication-factor",
        type=int,
        default=1,
        help="replication factor of the topics created on a --bootstrap broker (1)",
    )
    p.add_argument("--max-records", type=int, default=DEFAULT_MAX_RECORDS, help="per batch (500)")
    p.add_argument(
        "--batch-timeout-ms",
        type=int,
        default=DEFAULT_BATCH_TIMEOUT_MS,
        help="getmany timeout_ms / FastStream batch_timeout_ms (200)",
    )
    p.add_argument("--target", type=float, default=DEFAULT_TARGET, help="minimum ratio (0.6)")
    p.add_argument("--timeout", type=float, default=60.0, help="seconds allowed per consume run")
    p.add_argument("--seed", type=int, default=20_250_101, help="payload generator seed")
    p.add_argument(
        "--events",
        type=int,
        default=SERVICE_EVENTS,
        help="activation requests through the auth service and the ceiling (20000); 0 = skip",
    )
    p.add_argument(
        "--batch-size",
        type=int,
        default=DEFAULT_MAX_RECORDS,
        help="auth's KAFKA__CONSUME_BATCH_SIZE and the ceiling's max_records (500)",
    )
    p.add_argument(
        "--service-timeout", type=float, default=600.0, help="seconds allowed per service run"
    )
    p.add_argument(
        "--service-rounds",
        type=int,
        default=3,
        help="rounds of (auth, then the ceiling on auth's rows), each on a fresh store and "
        "topic; the round with the median ratio is the headline (3)",
    )
    p.add_argument(
        "--no-framework",
        action="store_true",
        help="skip the secondary FastStream-vs-aiokafka framework comparison",
    )
    p.add_argument("--ceiling-worker", help=argparse.SUPPRESS)
    p.add_argument("--ceiling-topic", help=argparse.SUPPRESS)
    p.add_argument("--ceiling-dsn", help=argparse.SUPPRESS)
    p.add_argument("--json", action="store_true", help="print the report as JSON on stdout")
    p.add_argument("--strict", action="store_true", help="exit 1 when the ratio misses target")
    a = p.parse_args(argv)
    if a.messages < 1 or a.rounds < 1 or a.partitions < 1 or a.max_records < 1 or a.topics < 0:
        p.error("--messages, --rounds, --partitions, --max-records must be positive")
    return Options(
        messages=a.messages,
        rounds=a.rounds,
        partitions=a.partitions,
        topics=a.topics,
        replication_factor=a.replication_factor,
        bootstrap=a.bootstrap,
        fetch=FetchSettings(max_records=a.max_records, batch_timeout_ms=a.batch_timeout_ms),
        target=a.target,
        timeout_s=a.timeout,
        seed=a.seed,
        as_json=a.json,
        strict=a.strict,
        service=ServiceOptions(
            events=a.events,
            batch_size=a.batch_size,
            timeout_s=a.service_timeout,
            seed=a.seed,
            rounds=a.service_rounds,
        )
        if a.events > 0
        else None,
        framework=not a.no_framework,
    )


def _print_service(report: ServiceReport) -> None:
    service, ceiling = report.service, report.ceiling
    assert service is not None
    assert ceiling is not None
    print(
        f"services' event path: {report.events:,} activation requests, auth on PostgreSQL "
        f"({report.database}), batches of {report.batch_size}"
    )
    for run in (service, ceiling):
        print(
            f"  {run.side:<26} {run.events_per_s:>9,.0f} events/s "
            f"({run.events:,} in {run.seconds:.2f}s), CPU {run.cpu_ms_per_event:.3f} ms/event"
        )
    if len(report.rounds) > 1:
        listed = "; ".join(
            f"{auth:,.0f} / {ceiling:,.0f} = {ratio:.3f}" for auth, ceiling, ratio in report.rounds
        )
        print(f"  rounds (auth / ceiling events/s = ratio): {listed}; above: the median round")
    print(
        f"  ratio auth_service / ceiling = {report.ratio:.3f} (target >= {report.target_ratio}), "
        f"auth {service.events_per_s:,.0f} events/s (target >= {report.target_rate:,.0f}): "
        f"{report.verdict}"
    )


def _ceiling_worker_main(argv: list[str]) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--ceiling-worker", required=True)
    p.add_argument("--ceiling-topic", required=True)
    p.add_argument("--ceiling-dsn", required=True)
    p.add_argument("--bootstrap", required=True)
    p.add_argument("--max-records", type=int, required=True)
    a = p.parse_args(argv)
    import pickle

    loaded = pickle.loads(Path(a.ceiling_worker).read_bytes())  # noqa: S301 - ours
    asyncio.run(ceiling_worker(loaded, a.bootstrap, a.ceiling_topic, a.ceiling_dsn, a.max_records))
    return 0


async def _run_all(
    opts: Options, bootstrap: str, embedded: EmbeddedKafka | None
) -> tuple[ServiceReport | None, Report | None]:
    service = None
    if opts.service:
        reports = []
        for round_no in range(1, opts.service.rounds + 1):
            _progress(f"service path, round {round_no}/{opts.service.rounds}")
            reports.append(await run_service_benchmark(opts.service, bootstrap, embedded))
        service = median_round(reports)
    framework = await run_benchmark(opts, bootstrap, embedded) if opts.framework else None
    return service, framework


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if "--ceiling-worker" in args:
        return _ceiling_worker_main(args)
    opts = parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    started_at = datetime.now(UTC)
    try:
        if opts.bootstrap:
            service, framework = asyncio.run(_run_all(opts, opts.bootstrap, None))
        else:
            with EmbeddedKafka() as kafka:
                service, framework = asyncio.run(_run_all(opts, kafka.bootstrap_servers, kafka))
    except BenchError as e:
        print(f"benchmark failed: {e}", file=sys.stderr)
        return 2
    environment = _environment(started_at)
    if framework is not None:
        framework.environment = environment
    if opts.as_json:
        document = {
            "service_path": asdict(service) if service else None,
            "framework_overhead": asdict(framework) if framework else None,
            "environment": environment,
        }
        print(json.dumps(document, indent=2))
    else:
        if service is not None:
            _print_service(service)
        if framework is not None:
            print("secondary: framework overhead (no database, no handler)")
            _print_text(framework)
    verdicts = [r.verdict for r in (service, framework) if r is not None]
    if opts.strict and any(v != "PASS" for v in verdicts):
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
