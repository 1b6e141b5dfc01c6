"""JSON logs with trace ids, tracing set-up from OTEL_* variables."""

from __future__ import annotations

import asyncio
import json
import logging
import sys
import uuid
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.sdk.resources import SERVICE_NAME
from opentelemetry.sdk.trace import TracerProvider

from ledgerlink.shared import telemetry
from ledgerlink.shared.telemetry import (
    JsonLogFormatter,
    bound_log_fields,
    configure_logging,
    configure_tracing,
)


class _ListHandler(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def captured() -> tuple[logging.Logger, _ListHandler]:
    handler = _ListHandler()
    logger = logging.Logger(f"ledgerlink.test.{uuid.uuid4().hex[:8]}", level=logging.DEBUG)
    logger.addHandler(handler)
    return logger, handler


def _format_last(handler: _ListHandler, service: str = "svc") -> dict[str, Any]:
    line = JsonLogFormatter(service).format(handler.records[-1])
    assert "\n" not in line
    entry = json.loads(line)
    assert isinstance(entry, dict)
    return entry


def test_json_line_outside_a_span_has_no_trace_ids(
    captured: tuple[logging.Logger, _ListHandler],
) -> None:
    logger, handler = captured

    logger.warning("imported %d rows for %s", 12, "0112038-9")

    entry = _format_last(handler, "importer")
    assert entry["message"] == "imported 12 rows for 0112038-9"
    assert entry["level"] == "WARNING"
    assert entry["logger"] == logger.name
    assert entry["service"] == "importer"
    assert entry["timestamp"].endswith("+00:00")
    assert "trace_id" not in entry
    assert "span_id" not in entry
    assert "exception" not in entry
    # LogRecord plumbing is not copied into the entry.
    for noise in ("args", "msg", "levelno", "pathname", "lineno", "threadName", "exc_info"):
        assert noise not in entry


def test_json_line_inside_a_span_carries_its_ids(
    captured: tuple[logging.Logger, _ListHandler],
) -> None:
    logger, handler = captured
    tracer = TracerProvider().get_tracer("test")

    with tracer.start_as_current_span("work") as span:
        logger.info("inside")
        entry = _format_last(handler)
    context = span.get_span_context()

    assert entry["trace_id"] == format(context.trace_id, "032x")
    assert entry["span_id"] == format(context.span_id, "016x")
    assert len(entry["trace_id"]) == 32
    assert len(entry["span_id"]) == 16


def test_extra_fields_are_included(captured: tuple[logging.Logger, _ListHandler]) -> None:
    logger, handler = captured
    event_id = uuid.uuid4()

    logger.error(
        "event dead-lettered",
        extra={"event_id": event_id, "attempt": 3, "topic": "ledgerlink.imports", "ok": False},
    )

    entry = _format_last(handler)
    assert entry["event_id"] == str(event_id)  # not JSON-native: rendered with str()
    assert entry["attempt"] == 3
    assert entry["topic"] == "ledgerlink.imports"
    assert entry["ok"] is False


def test_exception_is_rendered(captured: tuple[logging.Logger, _ListHandler]) -> None:
    logger, handler = captured

    try:
        raise ValueError("broken ledger")
    except ValueError:
        logger.exception("failed")

    entry = _format_last(handler)
    assert entry["level"] == "ERROR"
    assert "ValueError: broken ledger" in entry["exception"]
    assert "Traceback" in entry["exception"]


@pytest.fixture
def no_global_provider(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """Record, instead of performing, set_tracer_provider: the global can be set only once."""
    installed: list[object] = []
    monkeypatch.setattr(trace, "get_tracer_provider", trace.ProxyTracerProvider)
    monkeypatch.setattr(trace, "set_tracer_provider", installed.append)
    monkeypatch.delenv("OTEL_SERVICE_NAME", raising=False)
    monkeypatch.delenv("OTEL_RESOURCE_ATTRIBUTES", raising=False)
    return installed


@pytest.mark.parametrize("value", ["none", "", " none , ", "NONE"])
def test_configure_tracing_without_exporters(
    monkeypatch: pytest.MonkeyPatch, no_global_provider: list[object], value: str
) -> None:
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", value)

    provider = configure_tracing("ledgerlink-importer")
    try:
        assert isinstance(provider, TracerProvider)
        assert provider.resource.attributes[SERVICE_NAME] == "ledgerlink-importer"
        assert no_global_provider == [provider]
        with provider.get_tracer("t").start_as_current_span("s") as span:
            # ids for logs and propagation, but nothing recorded: no exporter reads it
            assert span.get_span_context().is_valid
            assert not span.is_recording()
    finally:
        provider.shutdown()


def test_configure_tracing_default_is_none(
    monkeypatch: pytest.MonkeyPatch, no_global_provider: list[object]
) -> None:
    monkeypatch.delenv("OTEL_TRACES_EXPORTER", raising=False)

    provider = configure_tracing("svc")
    try:
        assert no_global_provider == [provider]
    finally:
        provider.shutdown()


def test_otel_service_name_wins(
    monkeypatch: pytest.MonkeyPatch, no_global_provider: list[object]
) -> None:
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "none")
    monkeypatch.setenv("OTEL_SERVICE_NAME", "from-the-environment")

    provider = configure_tracing("from-the-code")
    try:
        assert provider.resource.attributes[SERVICE_NAME] == "from-the-environment"
    finally:
        provider.shutdown()


def test_console_exporter_accepted(
    monkeypatch: pytest.MonkeyPatch, no_global_provider: list[object]
) -> None:
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "console")

    provider = configure_tracing("svc")
    try:
        assert no_global_provider == [provider]
        with provider.get_tracer("t").start_as_current_span("s") as span:
            assert span.is_recording()  # an exporter: spans are recorded
    finally:
        provider.shutdown()


@pytest.mark.parametrize("value", ["zipkin", "none,jaeger", "otlp_grpc"])
def test_unsupported_exporter_raises(
    monkeypatch: pytest.MonkeyPatch, no_global_provider: list[object], value: str
) -> None:
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", value)

    with pytest.raises(ValueError, match="unsupported OTEL_TRACES_EXPORTER value") as caught:
        configure_tracing("svc")

    assert value.split(",")[-1] in str(caught.value)
    assert no_global_provider == []


def test_existing_global_provider_is_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    existing = TracerProvider()
    installed: list[object] = []
    monkeypatch.setattr(trace, "get_tracer_provider", lambda: existing)
    monkeypatch.setattr(trace, "set_tracer_provider", installed.append)
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "none")

    provider = configure_tracing("svc")
    try:
        assert provider is not existing
        assert installed == []
    finally:
        provider.shutdown()


def test_configure_logging_installs_one_json_handler() -> None:
    root = logging.getLogger()
    saved_handlers, saved_level = root.handlers[:], root.level
    aiokafka = logging.getLogger("aiokafka")
    saved_aiokafka = aiokafka.level
    try:
        configure_logging("svc", "debug")

        assert len(root.handlers) == 1
        handler = root.handlers[0]
        assert isinstance(handler, logging.StreamHandler)
        assert handler.stream is sys.stderr
        assert isinstance(handler.formatter, telemetry.JsonLogFormatter)
        assert root.level == logging.DEBUG
        assert aiokafka.level == logging.WARNING
        assert logging.getLogger("uvicorn.access").propagate is True
        assert logging.getLogger("uvicorn.access").handlers == []
    finally:
        root.handlers[:] = saved_handlers
        root.setLevel(saved_level)
        aiokafka.setLevel(saved_aiokafka)


# --- fields bound to a block (one record being handled) --------------------------------------


def test_bound_fields_are_on_every_line_inside_the_block_only(
    captured: tuple[logging.Logger, _ListHandler],
) -> None:
    logger, handler = captured

    with bound_log_fields(event_id="evt-1", topic="ledgerlink.activations", offset=7):
        logger.info("inside")
        inside = _format_last(handler)
    logger.info("after")
    after = _format_last(handler)

    assert inside["event_id"] == "evt-1"
    assert inside["topic"] == "ledgerlink.activations"
    assert inside["offset"] == 7
    for name in ("event_id", "topic", "offset"):
        assert name not in after


def test_nested_blocks_add_fields_and_explicit_extra_wins(
    captured: tuple[logging.Logger, _ListHandler],
) -> None:
    logger, handler = captured

    with bound_log_fields(topic="t", partition=1), bound_log_fields(partition=2, event_id="e"):
        logger.info("nested", extra={"event_id": "explicit"})
        entry = _format_last(handler)
        assert (entry["topic"], entry["partition"], entry["event_id"]) == ("t", 2, "explicit")
    with bound_log_fields(topic="t", partition=1):
        logger.info("outer again")
        assert _format_last(handler)["partition"] == 1


async def test_concurrent_tasks_keep_their_own_fields(
    captured: tuple[logging.Logger, _ListHandler],
) -> None:
    logger, handler = captured
    formatter = JsonLogFormatter("svc")
    lines: dict[str, dict[str, Any]] = {}
    first_bound, second_logged = asyncio.Event(), asyncio.Event()

    async def first() -> None:
        with bound_log_fields(event_id="first"):
            first_bound.set()
            await second_logged.wait()  # the other task binds and logs meanwhile
            logger.info("first")
            lines["first"] = json.loads(formatter.format(handler.records[-1]))

    async def second() -> None:
        await first_bound.wait()
        with bound_log_fields(event_id="second"):
            logger.info("second")
            lines["second"] = json.loads(formatter.format(handler.records[-1]))
        second_logged.set()

    await asyncio.gather(first(), second())

    assert lines["first"]["event_id"] == "first"
    assert lines["second"]["event_id"] == "second"


# --- spans per SQL statement: opt-in ------------------------------------------------------------


@pytest.mark.parametrize("trace_statements", [False, True])
async def test_sql_statement_spans_only_when_asked_for(
    trace_statements: bool, tmp_path: Any
) -> None:
    from opentelemetry.instrumentation.sqlalchemy import SQLAlchemyInstrumentor
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    from sqlalchemy import MetaData, text

    from ledgerlink.shared.config import DatabaseSettings, ServiceConfig
    from ledgerlink.shared.messaging.tables import define_messaging_tables
    from ledgerlink.shared.runtime import build_process_context

    config = ServiceConfig(
        database=DatabaseSettings(
            url=f"sqlite+aiosqlite:///{tmp_path / 'spans.db'}",  # type: ignore[arg-type]
            trace_statements=trace_statements,
        )
    )
    process = build_process_context("spans-test", config, define_messaging_tables(MetaData()))
    exporter = InMemorySpanExporter()
    process.tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    try:
        tracer = process.tracer_provider.get_tracer("test")
        with tracer.start_as_current_span("handle event"):
            async with process.db.transaction() as session:
                await session.execute(text("SELECT 1"))
    finally:
        await process.db.dispose()
        if trace_statements:
            SQLAlchemyInstrumentor().uninstrument()
    names = [span.name for span in exporter.get_finished_spans()]
    statement_spans = [name for name in names if name != "handle event"]
    assert names.count("handle event") == 1
    assert bool(statement_spans) is trace_statements, names
