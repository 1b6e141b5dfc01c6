"""Consuming events: parse, dedupe, handle in one transaction, or dead-letter.

Subscribers hand over batches (:meth:`EventConsumer.process_batch`, the default) or single
records (:meth:`EventConsumer.process`). A batch runs in one database transaction (on
PostgreSQL, a big batch is split by partition into up to ``consume_partitions_in_parallel``
transactions run at once, each of at least ``consume_events_per_parallel_transaction``
events: a company's events share a partition, since the key is its business ID; on
SQLite, transactions of at most 50 events one after the other):

1. Every record is parsed; what cannot be parsed is dead-lettered once the batch
   committed (the same reasons as below). An event id seen twice in the batch is handled
   once; ids already in the inbox are duplicates (one query for the batch).
2. Each event runs in its own savepoint and in its own span. A handler error rolls back
   that savepoint alone (with the outbox rows it added); the event, and every later event
   of the batch with the same key (the company: per-company order is kept), are taken
   out of the batch and go through the per-record path below after the batch committed:
   retried with back-off, or dead-lettered.

   A route may also have a **batch handler** (``route(..., batch_handler=...)``): the
   transaction's events are cut into runs of consecutive events of one type (duplicates
   and events held back behind a failed one change nothing, so they do not cut a run;
   an event of another handled type does), and a run of two or more events of a type
   with a batch handler goes to it at once, in order, in one savepoint, each event still
   with its own span (:class:`event_scope` makes it current for the event's own work).
   If the batch handler raises a non-infrastructure error, its savepoint rolls back and
   the run takes the path above: a savepoint per event with the per-event handler, so a
   poison event fails alone.
3. Inbox records and outbox rows of the handled events are written in bulk (one
   multi-row insert each), then the transaction commits. An infrastructure error rolls
   its transaction back and is raised once the others finished: no offset is committed,
   Kafka redelivers every record of the batch, and the inbox drops what had committed.
4. Offsets are committed by the subscriber after this returns; dead letters and the
   deferred events are done by then.

Flow for each record on the per-record path:

1. Read the CloudEvents headers and validate the JSON data against the versioned model
   registered for its ``ce_type``. Anything that fails here can never succeed, so it goes
   straight to the dead-letter topic and the partition moves on.
2. Open one transaction: record the event id in the inbox (a redelivery stops here), run
   the handler, which changes state and writes outgoing events to the outbox; commit.
3. A handler error is retried with back-off; when attempts run out the record is
   dead-lettered. Infrastructure errors (database unreachable) are raised instead, so
   the offset is not committed and Kafka redelivers the record later.

The Kafka offset is committed by the subscriber only after this returns, i.e. after the
transaction committed or the dead letter was acknowledged by the brokers.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextvars import ContextVar, Token
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Generic, TypeVar

from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.context import Context
from opentelemetry.trace import Link, Span, SpanKind, TracerProvider
from pydantic import ValidationError
from sqlalchemy import false
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.ext.asyncio import AsyncSession

from ledgerlink.shared.config import KafkaSettings
from ledgerlink.shared.db import Database, plan_each_execution
from ledgerlink.shared.envelope import CloudEvent, EnvelopeError
from ledgerlink.shared.events import EventData
from ledgerlink.shared.messaging.dead_letters import DeadLetterPublisher, RawRecord
from ledgerlink.shared.messaging.inbox import Inbox, InboxEntry
from ledgerlink.shared.messaging.outbox import OutboxBuffer
from ledgerlink.shared.metrics import MessagingMetrics
from ledgerlink.shared.telemetry import bind_log_fields, bound_log_fields, reset_log_fields

logger = logging.getLogger(__name__)

E = TypeVar("E", bound=EventData)


@dataclass(frozen=True)
class ReceivedEvent(Generic[E]):
    """A parsed event and where it came from."""

    envelope: CloudEvent
    data: E
    topic: str
    partition: int
    offset: int
    key: str | None


Handler = Callable[[AsyncSession, ReceivedEvent[Any]], Awaitable[None]]
#: Handles several events of one type together (set-based), in their order.
BatchHandler = Callable[[AsyncSession, Sequence[ReceivedEvent[Any]]], Awaitable[None]]


class Outcome(StrEnum):
    """What became of one record."""

    PROCESSED = "processed"
    DUPLICATE = "duplicate"
    IGNORED = "ignored"
    DEAD_LETTERED = "dead_lettered"


class InfrastructureError(Exception):
    """Raised by handlers when a dependency is down: the record must be redelivered."""


_INFRASTRUCTURE_ERRORS: tuple[type[BaseException], ...] = (
    OperationalError,
    InterfaceError,
    ConnectionError,
    TimeoutError,
    InfrastructureError,
)


def _log_handler_failure(event: ReceivedEvent[Any], attempt: int, exc: BaseException) -> None:
    logger.warning(
        "handler failed",
        extra={
            "event_id": event.envelope.id,
            "event_type": event.envelope.type,
            "topic": event.topic,
            "partition": event.partition,
            "offset": event.offset,
            "attempt": attempt,
            "error": repr(exc),
        },
    )


def _is_infrastructure_error(exc: BaseException) -> bool:
    if isinstance(exc, _INFRASTRUCTURE_ERRORS):
        return True
    return isinstance(exc, DBAPIError) and exc.connection_invalidated


class EventConsumer:
    """Routes the events of one consumer group to their handlers."""

    def __init__(
        self,
        *,
        name: str,
        db: Database,
        inbox: Inbox,
        dead_letters: DeadLetterPublisher,
        settings: KafkaSettings,
        metrics: MessagingMetrics,
        on_commit: Callable[[], None] = lambda: None,
        tracer_provider: TracerProvider | None = None,
    ) -> None:
        self.name = name
        self._tracer = trace.get_tracer(__name__, tracer_provider=tracer_provider)
        self._db = db
        self._inbox = inbox
        self._dead_letters = dead_letters
        self._settings = settings
        self._metrics = metrics
        self._on_commit = on_commit
        self._routes: dict[str, tuple[type[EventData], Handler]] = {}
        self._batch_handlers: dict[str, BatchHandler] = {}
        #: ``handler_seconds`` children by event type (``labels()`` is a lookup per call).
        self._observe_handler_seconds: dict[str, Callable[[float], None]] = {}
        self._permanent: dict[str, tuple[type[Exception], ...]] = {}
        self._ignored: set[str] = set()

    def route(
        self,
        model: type[E],
        handler: Callable[[AsyncSession, ReceivedEvent[E]], Awaitable[None]],
        *,
        permanent_errors: tuple[type[Exception], ...] = (),
        batch_handler: Callable[[AsyncSession, Sequence[ReceivedEvent[E]]], Awaitable[None]]
        | None = None,
    ) -> None:
        """Handle events of ``model.EVENT_TYPE`` with ``handler``.

        ``permanent_errors`` are the handler's errors that no retry can cure (a request
        that breaks a business rule): such an event is dead-lettered at once.

        ``batch_handler``, optional, handles a run of consecutive events of this type of
        one batch transaction at once (set-based: one query for all of them, bulk
        inserts). It must leave the same state and outbox rows as ``handler`` called on
        each event in turn. It runs in one savepoint; if it raises (other than an
        infrastructure error) that savepoint rolls back and the run's events go through
        ``handler``, a savepoint each, so a failing event is retried or dead-lettered
        alone. ``KafkaSettings.consume_batch_handlers`` off leaves it unused.
        """
        self._routes[model.EVENT_TYPE] = (model, handler)
        self._permanent[model.EVENT_TYPE] = permanent_errors
        if batch_handler is None or not self._settings.consume_batch_handlers:
            self._batch_handlers.pop(model.EVENT_TYPE, None)
        else:
            self._batch_handlers[model.EVENT_TYPE] = batch_handler

    @property
    def settings(self) -> KafkaSettings:
        """The Kafka settings this consumer runs with (attempts, back-off, batch size)."""
        return self._settings

    @property
    def event_types(self) -> list[str]:
        """The event types this consumer handles."""
        return sorted(self._routes)

    def ignore(self, *event_types: str) -> None:
        """Event types that share a topic with ours but are not for this consumer."""
        self._ignored.update(event_types)

    async def process(self, record: RawRecord) -> Outcome:
        """Process one record; returns only once it is safe to commit its offset.

        Every log line emitted meanwhile (ours, the handler's, the services') names the
        record: its event id, topic, partition and offset.
        """
        with bound_log_fields(
            event_id=_event_id_of(record),
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
        ):
            return await self._process(record)

    async def _process(self, record: RawRecord, first_attempt: int = 1) -> Outcome:
        try:
            parsed = self._parse(record)
        except (EnvelopeError, ValidationError, UnknownEventTypeError, MalformedDataError) as exc:
            return await self._dead_letter(record, type(exc).__name__, _describe(exc))
        if parsed is None:
            self._metrics.events_consumed.labels(record.topic, "?", Outcome.IGNORED).inc()
            return Outcome.IGNORED
        event, handler = parsed

        delay = self._settings.retry_backoff_seconds * 2 ** max(first_attempt - 2, 0)
        if first_attempt > 1:
            await asyncio.sleep(delay)  # back-off after the attempt made in a batch
            delay *= 2
        for attempt in range(first_attempt, self._settings.handler_attempts + 1):
            started = time.perf_counter()
            try:
                outcome = await self._handle_once(event, handler)
            except Exception as exc:
                if _is_infrastructure_error(exc):
                    raise
                _log_handler_failure(event, attempt, exc)
                permanent = isinstance(exc, self._permanent.get(event.envelope.type, ()))
                if permanent or attempt == self._settings.handler_attempts:
                    return await self._dead_letter(
                        record,
                        type(exc).__name__,
                        str(exc)
                        if permanent
                        else f"handler failed after {attempt} attempt(s): {exc}",
                        event_type=event.envelope.type,
                    )
                await asyncio.sleep(delay)  # back-off between retries, not synchronisation
                delay *= 2
                continue
            self._metrics.handler_seconds.labels(event.envelope.type).observe(
                time.perf_counter() - started
            )
            self._metrics.events_consumed.labels(record.topic, event.envelope.type, outcome).inc()
            if outcome is Outcome.PROCESSED:
                self._on_commit()
            return outcome
        raise AssertionError("unreachable")  # pragma: no cover

    async def process_batch(self, records: Sequence[RawRecord]) -> list[Outcome]:
        """Process records taken together from Kafka; returns their outcomes in order.

        Returns only once it is safe to commit the offsets of every record: the batch's
        transaction committed, and the records taken out of it were processed or
        dead-lettered. Raises (nothing committed) on infrastructure errors.
        """
        if not records:
            return []
        with self._tracer.start_as_current_span(
            f"{self.name} process batch",
            kind=SpanKind.CONSUMER,
            attributes={
                "messaging.system": "kafka",
                "messaging.consumer.group.name": self.name,
                "messaging.batch.message_count": len(records),
            },
        ) as batch_span:
            return await self._process_batch(records, batch_span)

    async def _process_batch(self, records: Sequence[RawRecord], batch_span: Span) -> list[Outcome]:
        items = [self._batch_item(record) for record in records]
        seen: set[str] = set()
        fresh: list[_BatchItem] = []
        for item in items:
            if item.event is None:
                continue
            if item.event.envelope.id in seen:
                item.outcome = Outcome.DUPLICATE  # the same event twice in one batch
                continue
            seen.add(item.event.envelope.id)
            fresh.append(item)
        parallel = self._settings.consume_partitions_in_parallel
        if self._db.dialect == "postgresql" and parallel > 1:
            groups = self._partition_groups(fresh, parallel)
        elif self._db.dialect == "sqlite":
            # SQLite has one writer at a time: transactions of a few dozen events keep the
            # relay's and HTTP routes' writes well inside their busy timeout. One after the
            # other, sharing which companies are held back by a failed event.
            parallel = 1
            groups = [
                fresh[start : start + _SQLITE_EVENTS_PER_TRANSACTION]
                for start in range(0, len(fresh), _SQLITE_EVENTS_PER_TRANSACTION)
            ] or [[]]
        else:
            groups = [fresh]
        blocked: set[tuple[str, int, str | None]] = set()
        results: list[list[_BatchItem] | BaseException]
        if parallel > 1 and len(groups) > 1:
            limit = asyncio.Semaphore(parallel)

            async def handle(group: list[_BatchItem]) -> list[_BatchItem]:
                async with limit:
                    return await self._handle_batch(group, batch_span, set())

            results = list(
                await asyncio.gather(*(handle(group) for group in groups), return_exceptions=True)
            )
        else:
            # One transaction after the other: a failed one holds back every later one,
            # which may carry the same companies' events.
            results = []
            failure: Exception | None = None
            for group in groups:
                if failure is None:
                    try:
                        results.append(await self._handle_batch(group, batch_span, blocked))
                        continue
                    except Exception as exc:
                        failure = exc
                results.append(failure)
        committed = False
        redeliver: BaseException | None = None
        for group, result in zip(groups, results, strict=True):
            if not isinstance(result, BaseException):
                committed = committed or bool(result)
                continue
            if not isinstance(result, Exception) or _is_infrastructure_error(result):
                redeliver = redeliver or result
                continue
            # A failure of the batch's own writes (an inbox id recorded meanwhile by
            # another member of the group after a rebalance): nothing of this group was
            # kept, so each of its records takes the per-record path, as without batches.
            logger.warning(
                "batch failed as a whole; processing its records one by one",
                extra={"consumer": self.name, "records": len(group), "error": repr(result)},
            )
            for item in group:
                item.one_by_one = True
        if committed:
            self._on_commit()
        if redeliver is not None:
            # Groups that committed are dropped by the inbox when Kafka redelivers them.
            raise redeliver
        counts: Counter[tuple[str, str, Outcome]] = Counter()
        outcomes: list[Outcome] = []
        for item in items:
            outcome = self._settled(item, counts)
            outcomes.append(outcome if outcome is not None else await self._finish(item))
        for (topic, event_type, outcome), count in counts.items():
            self._metrics.events_consumed.labels(topic, event_type, outcome).inc(count)
        return outcomes

    def _settled(
        self, item: _BatchItem, counts: Counter[tuple[str, str, Outcome]]
    ) -> Outcome | None:
        """The outcome of an item the batch settled (handled, duplicate, ignored), counted
        in ``counts``; None for one that needs :meth:`_finish` (dead letter, deferred)."""
        if item.one_by_one or item.rejection is not None or item.deferred:
            return None
        event = item.event
        if event is None or item.outcome is Outcome.IGNORED:
            counts[(item.record.topic, "?", Outcome.IGNORED)] += 1
            return Outcome.IGNORED
        outcome = item.outcome
        if outcome is None:
            return None
        event_type = event.envelope.type
        if outcome is Outcome.PROCESSED:
            observe = self._observe_handler_seconds.get(event_type)
            if observe is None:
                observe = self._metrics.handler_seconds.labels(event_type).observe
                self._observe_handler_seconds[event_type] = observe
            observe(item.seconds)
        counts[(item.record.topic, event_type, outcome)] += 1
        return outcome

    def _partition_groups(self, fresh: list[_BatchItem], parallel: int) -> list[list[_BatchItem]]:
        """``fresh`` split into up to ``parallel`` transactions of whole partitions.

        A company's events share a partition (key = business ID), so its order holds;
        different partitions are what different replicas would run in parallel. A
        transaction costs about a dozen statements however few events it holds, so a
        small batch is not split: each share has at least
        ``consume_events_per_parallel_transaction`` events (about; partitions stay whole).
        """
        by_partition: dict[tuple[str, int], list[_BatchItem]] = {}
        for item in fresh:
            by_partition.setdefault((item.record.topic, item.record.partition), []).append(item)
        shares = min(
            parallel,
            len(by_partition),
            len(fresh) // self._settings.consume_events_per_parallel_transaction,
        )
        if shares <= 1:
            return [fresh]
        # the biggest partitions first, each to the share with the fewest events so far
        loads = [0] * shares
        share_of: dict[tuple[str, int], int] = {}
        for key, members in sorted(by_partition.items(), key=lambda entry: -len(entry[1])):
            share = loads.index(min(loads))
            loads[share] += len(members)
            share_of[key] = share
        groups: list[list[_BatchItem]] = [[] for _ in range(shares)]
        for item in fresh:
            groups[share_of[(item.record.topic, item.record.partition)]].append(item)
        return groups

    def _batch_item(self, record: RawRecord) -> _BatchItem:
        item = _BatchItem(record)
        try:
            parsed = self._parse(record)
        except (EnvelopeError, ValidationError, UnknownEventTypeError, MalformedDataError) as exc:
            item.rejection = (type(exc).__name__, _describe(exc))
            return item
        if parsed is None:
            item.outcome = Outcome.IGNORED
        else:
            item.event, item.handler = parsed
        return item

    async def _handle_batch(
        self,
        items: list[_BatchItem],
        batch_span: Span,
        blocked: set[tuple[str, int, str | None]],
    ) -> list[_BatchItem]:
        """Run ``items`` in one transaction, a savepoint each; returns those handled.

        ``blocked`` holds the (topic, partition, key) of events that failed: later events
        with the same key are deferred behind them (shared by consecutive transactions).
        """
        if not items:
            return []
        handled: list[_BatchItem] = []
        async with self._db.transaction() as session:
            await plan_each_execution(session)  # PostgreSQL: plans fit the tables as they grow
            if self._db.dialect == "sqlite":
                # pysqlite opens its transaction lazily, before the first data change; a
                # SAVEPOINT before it would start one of its own, which the RELEASE of
                # that savepoint commits. A write that changes nothing opens it now.
                await session.execute(self._inbox.table.delete().where(false()))
            already = await self._inbox.already_recorded(
                session, [item.event.envelope.id for item in items if item.event is not None]
            )
            buffer = OutboxBuffer()
            buffer.attach(session)
            try:
                for run in self._runs(items, already):
                    await self._handle_run(session, buffer, run, batch_span, blocked, handled)
                await self._inbox.record_many(
                    session,
                    [
                        InboxEntry(
                            event_id=event.envelope.id,
                            event_type=event.envelope.type,
                            topic=event.topic,
                            partition=event.partition,
                            offset=event.offset,
                        )
                        for event in (item.event for item in handled)
                        if event is not None
                    ],
                )
                await buffer.flush(session)
            finally:
                OutboxBuffer.detach(session)
        return handled

    def _runs(self, items: list[_BatchItem], already: set[str]) -> Iterator[list[_BatchItem]]:
        """``items`` minus duplicates, cut into runs of consecutive events of one type
        that has a batch handler (every other event is a run of its own), in order.

        Duplicates and deferred events change nothing, so skipping them inside a run keeps
        every company's order: runs are handled one after the other, each in order.
        """
        run: list[_BatchItem] = []
        for item in items:
            event = item.event
            assert event is not None
            if event.envelope.id in already:
                item.outcome = Outcome.DUPLICATE
                logger.info(
                    "duplicate event skipped",
                    extra={"event_id": event.envelope.id, "event_type": event.envelope.type},
                )
                continue
            event_type = event.envelope.type
            if run and (event_type != run[0].event_type or event_type not in self._batch_handlers):
                yield run
                run = []
            run.append(item)
        if run:
            yield run

    async def _handle_run(
        self,
        session: AsyncSession,
        buffer: OutboxBuffer,
        run: list[_BatchItem],
        batch_span: Span,
        blocked: set[tuple[str, int, str | None]],
        handled: list[_BatchItem],
    ) -> None:
        """Handle one run: with its batch handler in one savepoint when it has one, else
        (or when that fails) each event in a savepoint of its own."""
        live: list[_BatchItem] = []
        for item in run:
            event = item.event
            assert event is not None
            if (event.topic, event.partition, event.key) in blocked:
                item.deferred = True  # behind a failed event of the same key
            else:
                live.append(item)
        if not live:
            return
        links = [Link(batch_span.get_span_context())]  # one for the run, not per event
        spans = {
            item.event.envelope.id: self._start_event_span(item.record, item.event, links)
            for item in live
            if item.event is not None
        }
        try:
            batch_handler = self._batch_handlers.get(live[0].event_type)
            if batch_handler is not None and len(live) > 1:
                mark = buffer.mark()
                started = time.perf_counter()
                token = _RUN_SPANS.set(spans)
                try:
                    async with session.begin_nested():
                        await batch_handler(session, [item.event for item in live if item.event])
                except Exception as exc:
                    buffer.discard_from(mark)
                    if _is_infrastructure_error(exc):
                        raise
                    logger.warning(
                        "batch handler failed; handling its events one by one",
                        extra={
                            "consumer": self.name,
                            "event_type": live[0].event_type,
                            "events": len(live),
                            "error": repr(exc),
                        },
                    )
                else:
                    seconds = (time.perf_counter() - started) / len(live)
                    for item in live:
                        item.seconds = seconds
                        item.outcome = Outcome.PROCESSED
                    handled.extend(live)
                    return
                finally:
                    _RUN_SPANS.reset(token)
            for item in live:
                await self._handle_one(session, buffer, item, spans, blocked, handled)
        finally:
            for span in spans.values():
                span.end()

    async def _handle_one(
        self,
        session: AsyncSession,
        buffer: OutboxBuffer,
        item: _BatchItem,
        spans: dict[str, Span],
        blocked: set[tuple[str, int, str | None]],
        handled: list[_BatchItem],
    ) -> None:
        """One event in its own savepoint, with its per-event handler."""
        event, handler = item.event, item.handler
        assert event is not None
        assert handler is not None
        order = (event.topic, event.partition, event.key)
        if order in blocked:
            item.deferred = True  # behind a failed event of the same key
            return
        mark = buffer.mark()
        started = time.perf_counter()
        try:
            with (
                bound_log_fields(
                    event_id=event.envelope.id,
                    topic=event.topic,
                    partition=event.partition,
                    offset=event.offset,
                ),
                trace.use_span(spans[event.envelope.id], end_on_exit=False),
            ):
                async with session.begin_nested():
                    await handler(session, event)
        except Exception as exc:
            buffer.discard_from(mark)
            if _is_infrastructure_error(exc):
                raise
            _log_handler_failure(event, 1, exc)
            item.failure = exc
            item.deferred = True
            blocked.add(order)
            return
        item.seconds = time.perf_counter() - started
        item.outcome = Outcome.PROCESSED
        handled.append(item)

    async def _finish(self, item: _BatchItem) -> Outcome:
        """After the batch committed: count, dead-letter, or process a deferred event."""
        record = item.record
        with bound_log_fields(
            event_id=_event_id_of(record),
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
        ):
            if item.one_by_one:
                return await self._process(record)
            if item.rejection is not None:
                return await self._dead_letter(record, *item.rejection)
            event = item.event
            if event is None or item.outcome is Outcome.IGNORED:
                self._metrics.events_consumed.labels(record.topic, "?", Outcome.IGNORED).inc()
                return Outcome.IGNORED
            event_type = event.envelope.type
            if item.deferred:
                failure = item.failure
                if failure is None:
                    return await self._process(record)
                if isinstance(failure, self._permanent.get(event_type, ())):
                    return await self._dead_letter(
                        record, type(failure).__name__, str(failure), event_type=event_type
                    )
                if self._settings.handler_attempts == 1:
                    return await self._dead_letter(
                        record,
                        type(failure).__name__,
                        f"handler failed after 1 attempt(s): {failure}",
                        event_type=event_type,
                    )
                return await self._process(record, first_attempt=2)
            assert item.outcome is not None
            if item.outcome is Outcome.PROCESSED:
                self._metrics.handler_seconds.labels(event_type).observe(item.seconds)
            self._metrics.events_consumed.labels(record.topic, event_type, item.outcome).inc()
            return item.outcome

    def _start_event_span(
        self, record: RawRecord, event: ReceivedEvent[Any], links: list[Link]
    ) -> Span:
        """One span per event, continuing the trace its producer put in the headers (not
        made current here: the caller does, around the event's own work)."""
        carrier = {
            name: value.decode(errors="replace")
            for name, value in record.headers
            if name in _TRACE_HEADERS
        }
        return self._tracer.start_span(
            f"{event.envelope.type} process",
            context=propagate.extract(carrier) if carrier else _NO_CONTEXT,
            kind=SpanKind.CONSUMER,
            links=links,
            attributes={
                "messaging.system": "kafka",
                "messaging.consumer.group.name": self.name,
                "messaging.destination.name": event.topic,
                "messaging.kafka.destination.partition": event.partition,
                "messaging.kafka.message.offset": event.offset,
                "messaging.message.id": event.envelope.id,
            },
        )

    async def _handle_once(self, event: ReceivedEvent[Any], handler: Handler) -> Outcome:
        async with self._db.transaction() as session:
            first_time = await self._inbox.record_once(
                session,
                event_id=event.envelope.id,
                event_type=event.envelope.type,
                topic=event.topic,
                partition=event.partition,
                offset=event.offset,
            )
            if not first_time:
                logger.info(
                    "duplicate event skipped",
                    extra={"event_id": event.envelope.id, "event_type": event.envelope.type},
                )
                return Outcome.DUPLICATE
            await handler(session, event)
        return Outcome.PROCESSED

    def _parse(self, record: RawRecord) -> tuple[ReceivedEvent[Any], Handler] | None:
        envelope = CloudEvent.from_headers(record.headers)
        if envelope.type in self._ignored:
            return None
        route = self._routes.get(envelope.type)
        if route is None:
            known = ", ".join(sorted(self._routes))
            raise UnknownEventTypeError(
                f"event type {envelope.type!r} is not consumed from {record.topic}; "
                f"expected {known}"
            )
        model, handler = route
        if not record.value:
            raise MalformedDataError("the record has no value; expected a JSON object")
        try:
            data = model.model_validate_json(record.value)  # the usual case, in one step
        except ValidationError:
            # Say what is wrong as before: not JSON, not an object, or invalid fields.
            try:
                raw = json.loads(record.value)
            except (UnicodeDecodeError, json.JSONDecodeError) as exc:
                raise MalformedDataError(f"data is not valid JSON: {exc}") from exc
            if not isinstance(raw, dict):
                raise MalformedDataError(
                    f"data must be a JSON object, not {type(raw).__name__}"
                ) from None
            data = model.model_validate(raw)
        key = record.key.decode(errors="replace") if record.key is not None else None
        event = ReceivedEvent(
            envelope=envelope,
            data=data,
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
            key=key,
        )
        return event, handler

    async def _dead_letter(
        self, record: RawRecord, error_class: str, message: str, *, event_type: str = "?"
    ) -> Outcome:
        logger.error(
            "event dead-lettered",
            extra={
                "topic": record.topic,
                "partition": record.partition,
                "offset": record.offset,
                "error_class": error_class,
                "reason": message,
            },
        )
        await self._dead_letters.send(record, error_class, message)
        self._metrics.events_consumed.labels(record.topic, event_type, Outcome.DEAD_LETTERED).inc()
        return Outcome.DEAD_LETTERED


#: Events per transaction on SQLite (one writer at a time: short transactions).
_SQLITE_EVENTS_PER_TRANSACTION = 50

#: The context of an event that carries no trace headers: its span starts a trace.
_NO_CONTEXT = Context()

#: Headers that carry trace context (W3C trace context and baggage).
_TRACE_HEADERS = frozenset({"traceparent", "tracestate", "baggage"})


#: The spans of the events a batch handler is running (event id -> span).
_RUN_SPANS: ContextVar[dict[str, Span] | None] = ContextVar("ledgerlink_run_spans", default=None)


class event_scope:  # noqa: N801 - used like the function-style context managers
    """Inside a batch handler: do what follows on behalf of ``event`` (``with
    event_scope(event): ...``).

    Its span becomes current (outbox rows added inside carry its trace, so the consumers
    of what it emits continue that trace) and log lines name it, as they would inside its
    per-event handler. Outside a batch handler only the log fields are bound. A class,
    not a generator: it runs once per event on the hot path.
    """

    __slots__ = ("_context", "_event", "_fields")

    def __init__(self, event: ReceivedEvent[Any]) -> None:
        self._event = event
        self._fields: Token[Any] | None = None
        self._context: object | None = None

    def __enter__(self) -> None:
        event = self._event
        self._fields = bind_log_fields(
            event_id=event.envelope.id,
            topic=event.topic,
            partition=event.partition,
            offset=event.offset,
        )
        spans = _RUN_SPANS.get()
        span = spans.get(event.envelope.id) if spans is not None else None
        if span is not None:
            self._context = otel_context.attach(trace.set_span_in_context(span))

    def __exit__(self, *exc_info: object) -> None:
        if self._context is not None:
            otel_context.detach(self._context)  # type: ignore[arg-type]
            self._context = None
        if self._fields is not None:
            reset_log_fields(self._fields)
            self._fields = None


@dataclass
class _BatchItem:
    """One record of a batch and what became of it."""

    record: RawRecord
    event: ReceivedEvent[Any] | None = None
    handler: Handler | None = None
    #: (error class, reason) when the record cannot be parsed: dead-lettered.
    rejection: tuple[str, str] | None = None
    outcome: Outcome | None = None
    #: Taken out of the batch (failed, or behind a failed event of its key).
    deferred: bool = False
    failure: Exception | None = None
    seconds: float = 0.0
    #: Its batch transaction failed as a whole: processed on the per-record path.
    one_by_one: bool = False

    @property
    def event_type(self) -> str:
        """The parsed event's type ("?" when it did not parse)."""
        return self.event.envelope.type if self.event is not None else "?"


class UnknownEventTypeError(ValueError):
    """The record's ``ce_type`` is not one this consumer handles."""


class MalformedDataError(ValueError):
    """The record's value is not a JSON object."""


def _event_id_of(record: RawRecord) -> str | None:
    """The record's ``ce_id`` for the logs, before (and even if not) the envelope parses."""
    for name, value in record.headers:
        if name == "ce_id":
            try:
                return value.decode()
            except UnicodeDecodeError:
                return None
    return None


def _describe(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        return "invalid data: " + "; ".join(
            f"{'.'.join(map(str, error['loc'])) or '<root>'}: {error['msg']}"
            for error in exc.errors(include_url=False)
        )
    return str(exc)
