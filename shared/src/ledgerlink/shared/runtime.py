"""The process around a service: wiring built in the lifespan, HTTP basics, shutdown.

Every service calls :func:`create_service_app` from its own ``main.create_app`` with a
``register`` function that attaches its Kafka consumers and HTTP routes; so the three
services share one shape (health, readiness, metrics, AsyncAPI, outbox relay).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol

import httpx
from fastapi import FastAPI, Response
from fastapi.responses import JSONResponse
from faststream.kafka import KafkaBroker
from faststream.specification import AsyncAPI
from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor
from opentelemetry.instrumentation.sqlalchemy import SQLAlchemyInstrumentor
from opentelemetry.sdk.trace import TracerProvider
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from pydantic import BaseModel
from sqlalchemy import MetaData

from ledgerlink.shared.config import ServiceConfig
from ledgerlink.shared.db import Database
from ledgerlink.shared.events import EventData
from ledgerlink.shared.kafka.broker import (
    DeadLetterProducer,
    RecordProducer,
    build_broker,
    outbox_publisher,
    outbox_sender,
    subscribe,
)
from ledgerlink.shared.messaging.consumer import EventConsumer
from ledgerlink.shared.messaging.dead_letters import DeadLetterPublisher
from ledgerlink.shared.messaging.inbox import Inbox
from ledgerlink.shared.messaging.outbox import Outbox, OutboxRelay
from ledgerlink.shared.messaging.tables import MessagingTables
from ledgerlink.shared.metrics import MessagingMetrics
from ledgerlink.shared.telemetry import configure_logging, configure_tracing

logger = logging.getLogger(__name__)


class BackgroundWorker(Protocol):
    """A task that runs for the process's lifetime."""

    def start(self) -> None:
        """Start working (in the running event loop)."""

    async def stop(self) -> None:
        """Finish or abandon the current piece of work and return."""


@dataclass
class ProcessContext:
    """Everything a service process holds for its lifetime."""

    service_name: str
    config: ServiceConfig
    db: Database
    broker: KafkaBroker
    #: Sends dead letters byte for byte; runs alongside the broker.
    dead_letter_producer: DeadLetterProducer
    tables: MessagingTables
    outbox: Outbox
    relay: OutboxRelay
    #: Sends the relay's records (a pass is sent, then flushed once); runs with the relay.
    outbox_producer: RecordProducer
    metrics: MessagingMetrics
    registry: CollectorRegistry
    tracer_provider: TracerProvider
    http_client: httpx.AsyncClient
    consumers: list[EventConsumer] = field(default_factory=list)
    #: Long-running tasks of the service (import runners ...), started after the broker
    #: and stopped before it.
    workers: list[BackgroundWorker] = field(default_factory=list)
    #: Called after each consumed event's transaction commits (besides waking the relay).
    commit_listeners: list[Callable[[], None]] = field(default_factory=list)

    def _committed(self) -> None:
        self.relay.wake()
        for listener in self.commit_listeners:
            listener()

    def consumer(self, group: str) -> EventConsumer:
        """A consumer for consumer group ``group`` writing to this process's store."""
        consumer = EventConsumer(
            name=group,
            db=self.db,
            inbox=Inbox(self.tables, group),
            dead_letters=DeadLetterPublisher(
                self.dead_letter_producer.publish, self.metrics, consumer=group
            ),
            settings=self.config.kafka,
            metrics=self.metrics,
            on_commit=self._committed,
            tracer_provider=self.tracer_provider,
        )
        self.consumers.append(consumer)
        return consumer

    def subscribe(self, consumer: EventConsumer, topic: str) -> None:
        """Attach ``consumer`` to ``topic`` (the environment's prefix is added)."""
        subscribe(self.broker, consumer, self.config.kafka.topic(topic))

    def document_publication(self, *models: type[EventData]) -> None:
        """List the events this service publishes in its AsyncAPI document."""
        for model in models:
            self.broker.publisher(
                self.config.kafka.topic(model.TOPIC),
                title=f"{model.TOPIC}:{model.EVENT_TYPE}",
                description=(model.__doc__ or "").strip(),
                schema=model,
                include_in_schema=True,
            )


def build_process_context(
    service_name: str, config: ServiceConfig, metadata_tables: MessagingTables
) -> ProcessContext:
    """Wire the process: store, broker, outbox and its relay, metrics and tracing."""
    tracer_provider = configure_tracing(service_name)
    registry = CollectorRegistry()
    metrics = MessagingMetrics(registry)
    db = Database.from_settings(config.database)
    if config.database.trace_statements:
        # Opt-in: a span per SQL statement costs more CPU than the statement itself on
        # the event path; events and batches have their own spans.
        SQLAlchemyInstrumentor().instrument(
            engine=db.engine.sync_engine, tracer_provider=tracer_provider
        )
    broker = build_broker(
        config.kafka, tracer_provider=tracer_provider, registry=registry, app_name=service_name
    )
    http_client = httpx.AsyncClient(timeout=httpx.Timeout(30.0))
    HTTPXClientInstrumentor.instrument_client(http_client, tracer_provider=tracer_provider)
    outbox_producer = RecordProducer(config.kafka, purpose="outbox")
    relay = OutboxRelay(
        db,
        metadata_tables,
        outbox_publisher(broker),
        config.outbox,
        metrics,
        lock_name=f"ledgerlink-outbox:{service_name}",
        send=outbox_sender(outbox_producer),
    )
    return ProcessContext(
        service_name=service_name,
        config=config,
        db=db,
        broker=broker,
        dead_letter_producer=DeadLetterProducer(config.kafka),
        tables=metadata_tables,
        outbox=Outbox(
            metadata_tables,
            source=f"ledgerlink/{service_name}",
            topic_prefix=config.kafka.topic_prefix,
        ),
        relay=relay,
        outbox_producer=outbox_producer,
        metrics=metrics,
        registry=registry,
        tracer_provider=tracer_provider,
        http_client=http_client,
    )


#: Allocations between collections of the youngest generation (Python's default: 700).
YOUNG_GENERATION_THRESHOLD = 50_000
_heap_settled = False


def settle_heap() -> None:
    """Move every object alive after start-up out of the collector's sight (``gc.freeze``).

    Modules, pydantic and SQLAlchemy metadata, clients: a few hundred thousand objects that
    live as long as the process, yet every full collection walked them again. A ledger sync
    allocates fast (XML trees, vouchers, rows), so full collections came often: in
    ``bench/bench_ledger_sync.py`` they took 4-6 s of a 100,000-line first import, and
    ~0.5 s once the start-up heap was frozen. Objects created later are collected as ever;
    what was frozen stays for the life of the process (it would anyway).

    The youngest generation is collected every 50,000 allocations instead of 700: a page
    of a million-line ledger keeps several hundred thousand objects alive for a moment, and
    with collections every 700 allocations the full ones (which the frozen heap no longer
    damps) walked them again and again: 129 s of a 287 s import of a million lines.
    """
    global _heap_settled  # once per process
    if _heap_settled:
        # Once per process: a test session starting many apps would otherwise freeze
        # each earlier test's still-referenced objects for good.
        return
    _heap_settled = True
    gc.collect()
    gc.freeze()
    _, middle, oldest = gc.get_threshold()
    gc.set_threshold(YOUNG_GENERATION_THRESHOLD, middle, oldest)


def create_service_app(
    *,
    service_name: str,
    version: str,
    config: ServiceConfig,
    metadata: MetaData,
    tables: MessagingTables,
    register: Callable[[ProcessContext, FastAPI], None],
    description: str,
) -> FastAPI:
    """The ASGI app of one service; the broker and relay run inside its lifespan."""
    del metadata  # the schema is owned by migrations, never create_all()
    configure_logging(service_name, config.log_level)
    process = build_process_context(service_name, config, tables)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # Before the broker: its subscribers may dead-letter the first record they fetch.
        await process.dead_letter_producer.start()
        try:
            await process.broker.start()
        except BaseException:
            await process.dead_letter_producer.stop()
            raise
        if config.outbox.relay_enabled:
            await process.outbox_producer.start()
            process.relay.start()
        settle_heap()
        for worker in process.workers:
            worker.start()
        logger.info(
            "service started",
            extra={"bootstrap_servers": config.kafka.bootstrap_servers, "port": config.http.port},
        )
        try:
            yield
        finally:
            for worker in process.workers:
                await worker.stop()
            await process.relay.stop()
            await process.outbox_producer.stop()
            await process.broker.stop()
            await process.dead_letter_producer.stop()
            await process.http_client.aclose()
            await process.db.dispose()
            process.tracer_provider.shutdown()
            logger.info("service stopped")

    app = FastAPI(
        title=f"Ledgerlink {service_name}",
        version=version,
        description=description,
        lifespan=lifespan,
    )
    app.state.process = process
    register(process, app)
    _add_operational_routes(app, process, version)
    FastAPIInstrumentor.instrument_app(
        app, tracer_provider=process.tracer_provider, excluded_urls="healthz,readyz,metrics"
    )
    return app


class ErrorBody(BaseModel):
    """What an HTTP error answers (FastAPI's ``HTTPException`` body)."""

    detail: str


def error_responses(
    statuses: dict[int, str], *, model: type[BaseModel] = ErrorBody
) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` for the error statuses a route returns, each with its meaning.

    Every status a route can answer is documented, so a contract test (schemathesis or
    ``tests/test_openapi_contract.py``) finds no undocumented one.
    """
    return {status: {"model": model, "description": text} for status, text in statuses.items()}


class ReadinessBody(BaseModel):
    """``/readyz``: whether the service is ready, and each check's result."""

    ready: bool
    checks: dict[str, str]


def _add_operational_routes(app: FastAPI, process: ProcessContext, version: str) -> None:
    @app.get("/healthz", tags=["operations"], summary="Liveness: the process is up.")
    async def healthz() -> dict[str, str]:
        return {"status": "ok", "service": process.service_name}

    @app.get(
        "/readyz",
        tags=["operations"],
        summary="Readiness: database and broker reachable.",
        response_model=ReadinessBody,
        responses={
            503: {"model": ReadinessBody, "description": "A check failed (named in checks)."}
        },
    )
    async def readyz() -> JSONResponse:
        checks: dict[str, str] = {}
        try:
            await asyncio.wait_for(process.db.ping(), timeout=3)
            checks["database"] = "ok"
        except Exception as exc:  # reported, not raised: this is the health endpoint
            checks["database"] = f"unreachable: {type(exc).__name__}"
        broker_ok = False
        with contextlib.suppress(Exception):
            broker_ok = await process.broker.ping(timeout=3.0)
        checks["broker"] = "ok" if broker_ok else "unreachable"
        ready = all(value == "ok" for value in checks.values())
        return JSONResponse({"ready": ready, "checks": checks}, status_code=200 if ready else 503)

    @app.get(
        "/metrics",
        tags=["operations"],
        summary="Prometheus metrics.",
        response_class=Response,
        responses={
            200: {
                "description": "Prometheus text exposition format.",
                "content": {CONTENT_TYPE_LATEST.split(";")[0]: {"schema": {"type": "string"}}},
            }
        },
    )
    async def metrics() -> Response:
        return Response(generate_latest(process.registry), media_type=CONTENT_TYPE_LATEST)

    @app.get("/asyncapi.json", tags=["operations"], summary="AsyncAPI document of the events.")
    async def asyncapi() -> dict[str, Any]:
        return asyncapi_document(process, version)


def asyncapi_document(process: ProcessContext, version: str) -> dict[str, Any]:
    """The AsyncAPI 3.0 document FastStream generates for this service's broker."""
    spec = AsyncAPI(
        process.broker,
        title=f"Ledgerlink {process.service_name}",
        version=version,
        description="Events are CloudEvents 1.0 in Kafka binary content mode: "
        "ce_id, ce_source, ce_type, ce_specversion, ce_time, ce_subject and "
        "content-type: application/json headers; JSON data; key = the business ID.",
    )
    document: dict[str, Any] = spec.to_specification().to_jsonable()
    return document
