"""Consuming events: parse, dedupe, handle in one transaction, or dead-letter.

Flow for each record:

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
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Generic, TypeVar

from pydantic import ValidationError
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.ext.asyncio import AsyncSession

from ledgerlink.shared.config import KafkaSettings
from ledgerlink.shared.db import Database
from ledgerlink.shared.envelope import CloudEvent, EnvelopeError
from ledgerlink.shared.events import EventData
from ledgerlink.shared.messaging.dead_letters import DeadLetterPublisher, RawRecord
from ledgerlink.shared.messaging.inbox import Inbox
from ledgerlink.shared.metrics import MessagingMetrics
from ledgerlink.shared.telemetry import bound_log_fields

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
    ) -> None:
        self.name = name
        self._db = db
        self._inbox = inbox
        self._dead_letters = dead_letters
        self._settings = settings
        self._metrics = metrics
        self._on_commit = on_commit
        self._routes: dict[str, tuple[type[EventData], Handler]] = {}
        self._permanent: dict[str, tuple[type[Exception], ...]] = {}
        self._ignored: set[str] = set()

    def route(
        self,
        model: type[E],
        handler: Callable[[AsyncSession, ReceivedEvent[E]], Awaitable[None]],
        *,
        permanent_errors: tuple[type[Exception], ...] = (),
    ) -> None:
        """Handle events of ``model.EVENT_TYPE`` with ``handler``.

        ``permanent_errors`` are the handler's errors that no retry can cure (a request
        that breaks a business rule): such an event is dead-lettered at once.
        """
        self._routes[model.EVENT_TYPE] = (model, handler)
        self._permanent[model.EVENT_TYPE] = permanent_errors

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

    async def _process(self, record: RawRecord) -> Outcome:
        try:
            parsed = self._parse(record)
        except (EnvelopeError, ValidationError, UnknownEventTypeError, MalformedDataError) as exc:
            return await self._dead_letter(record, type(exc).__name__, _describe(exc))
        if parsed is None:
            self._metrics.events_consumed.labels(record.topic, "?", Outcome.IGNORED).inc()
            return Outcome.IGNORED
        event, handler = parsed

        delay = self._settings.retry_backoff_seconds
        for attempt in range(1, self._settings.handler_attempts + 1):
            started = time.perf_counter()
            try:
                outcome = await self._handle_once(event, handler)
            except Exception as exc:
                if _is_infrastructure_error(exc):
                    raise
                logger.warning(
                    "handler failed",
                    extra={
                        "event_id": event.envelope.id,
                        "event_type": event.envelope.type,
                        "attempt": attempt,
                        "error": repr(exc),
                    },
                )
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
            raw = json.loads(record.value)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise MalformedDataError(f"data is not valid JSON: {exc}") from exc
        if not isinstance(raw, dict):
            raise MalformedDataError(f"data must be a JSON object, not {type(raw).__name__}")
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
