"""OpenTelemetry and logging set-up, configured from the standard ``OTEL_*`` variables.

Exporters are off unless ``OTEL_TRACES_EXPORTER`` names them (``otlp``, ``console``);
the OTLP exporter reads ``OTEL_EXPORTER_OTLP_*`` itself. Trace context crosses services
in W3C ``traceparent`` Kafka headers.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar, Token
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter
from opentelemetry.sdk.trace.sampling import (
    ALWAYS_ON,
    Decision,
    ParentBased,
    Sampler,
    SamplingResult,
)
from opentelemetry.trace import Link, SpanKind
from opentelemetry.trace.span import TraceState
from opentelemetry.util.types import Attributes

_STANDARD_RECORD_FIELDS = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}

#: Fields every log line carries while they are bound (see :func:`bound_log_fields`). A
#: context variable, so concurrent handlers (one asyncio task each) never see each
#: other's fields.
_BOUND_FIELDS: ContextVar[Mapping[str, Any]] = ContextVar(
    "ledgerlink_log_fields", default=MappingProxyType({})
)


@contextmanager
def bound_log_fields(**fields: Any) -> Iterator[None]:
    """Add ``fields`` to every JSON log line emitted inside the block.

    Applies to the current task and to tasks it starts; nested blocks add to (and may
    override) the outer fields. A log call's own ``extra`` still wins over bound fields.
    """
    token = _BOUND_FIELDS.set({**_BOUND_FIELDS.get(), **fields})
    try:
        yield
    finally:
        _BOUND_FIELDS.reset(token)


def bind_log_fields(**fields: Any) -> Token[Mapping[str, Any]]:
    """:func:`bound_log_fields` without the ``with``: returns the token to
    :func:`reset_log_fields` with (for hot paths where a generator context costs)."""
    return _BOUND_FIELDS.set({**_BOUND_FIELDS.get(), **fields})


def reset_log_fields(token: Token[Mapping[str, Any]]) -> None:
    """Undo :func:`bind_log_fields`."""
    _BOUND_FIELDS.reset(token)


class _RecordWhenExported(TracerProvider):
    """A tracer provider that records spans only once a span processor can take them.

    Without an exporter nobody can read a span, and recording one per event and per SQL
    statement cost the event path ~10% of its CPU. Until a processor is added the sampler
    drops every span: spans still get trace and span ids, so logs and outgoing events carry
    trace context. With one, the SDK's default sampling (parent-based, always on).
    """

    def __init__(self, resource: Resource) -> None:
        self.exported = False
        super().__init__(resource=resource, sampler=_WhenExported(self))

    def add_span_processor(self, span_processor: SpanProcessor) -> None:
        super().add_span_processor(span_processor)
        self.exported = True


class _WhenExported(Sampler):
    """Drop every span until the provider has a processor (see :class:`_RecordWhenExported`)."""

    _DEFAULT = ParentBased(ALWAYS_ON)

    def __init__(self, provider: _RecordWhenExported) -> None:
        self._provider = provider

    def should_sample(
        self,
        parent_context: Context | None,
        trace_id: int,
        name: str,
        kind: SpanKind | None = None,
        attributes: Attributes = None,
        links: Sequence[Link] | None = None,
        trace_state: TraceState | None = None,
    ) -> SamplingResult:
        if not self._provider.exported:
            return _DROPPED
        return self._DEFAULT.should_sample(
            parent_context, trace_id, name, kind, attributes, links, trace_state
        )

    def get_description(self) -> str:
        return "RecordWhenExported"


_DROPPED = SamplingResult(Decision.DROP)


def configure_tracing(service_name: str) -> TracerProvider:
    """A tracer provider for this process, installed as the global one."""
    attributes: dict[str, Any] = {}
    if not os.environ.get("OTEL_SERVICE_NAME"):
        attributes[SERVICE_NAME] = service_name
    provider = _RecordWhenExported(resource=Resource.create(attributes))
    exporters = os.environ.get("OTEL_TRACES_EXPORTER", "none")
    for name in filter(None, (part.strip().lower() for part in exporters.split(","))):
        if name == "otlp":
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
        elif name == "console":
            provider.add_span_processor(BatchSpanProcessor(ConsoleSpanExporter(out=sys.stderr)))
        elif name != "none":
            raise ValueError(f"unsupported OTEL_TRACES_EXPORTER value {name!r}")
    # The global provider can be set once per process; tests building several apps in
    # one process still get their own provider passed explicitly everywhere.
    if isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider):
        trace.set_tracer_provider(provider)
    return provider


class JsonLogFormatter(logging.Formatter):
    """One JSON object per line, carrying the current trace and span ids and bound fields."""

    def __init__(self, service_name: str) -> None:
        super().__init__()
        self._service = service_name

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "timestamp": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname,
            "logger": record.name,
            "service": self._service,
            "message": record.getMessage(),
        }
        span_context = trace.get_current_span().get_span_context()
        if span_context.is_valid:
            entry["trace_id"] = format(span_context.trace_id, "032x")
            entry["span_id"] = format(span_context.span_id, "016x")
        # Read at format time, which for the stream handler is the moment of the log call,
        # in the caller's context.
        entry.update(_BOUND_FIELDS.get())
        entry.update(
            (key, value)
            for key, value in vars(record).items()
            if key not in _STANDARD_RECORD_FIELDS and not key.startswith("_")
        )
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def configure_logging(service_name: str, level: str) -> None:
    """Send every log record to stderr as JSON."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonLogFormatter(service_name))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        uvicorn_logger = logging.getLogger(name)
        uvicorn_logger.handlers[:] = []
        uvicorn_logger.propagate = True
    # aiokafka is chatty at INFO about group coordination.
    logging.getLogger("aiokafka").setLevel(max(logging.WARNING, root.level))
