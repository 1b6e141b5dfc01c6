"""The journal exporter's application factory."""

from __future__ import annotations

from fastapi import FastAPI

from ledgerlink.connectors import metrics as connector_metrics
from ledgerlink.journal_exporter.config import Config
from ledgerlink.journal_exporter.handlers.http import register_http_routes
from ledgerlink.journal_exporter.handlers.kafka import register_kafka_handlers
from ledgerlink.journal_exporter.handlers.payroll_http import build_payroll_router
from ledgerlink.journal_exporter.handlers.payroll_web import register_payroll_pages
from ledgerlink.journal_exporter.services.payroll import (
    ExportService,
    MappingService,
    PayrollMetrics,
)
from ledgerlink.journal_exporter.services.payroll_runner import PostingRunner
from ledgerlink.journal_exporter.storage.auth_sessions import AuthSessions
from ledgerlink.journal_exporter.storage.models import messaging, metadata
from ledgerlink.journal_exporter.storage.rate_windows import StoreRateWindows
from ledgerlink.journal_exporter.storage.vendors import VendorGateway
from ledgerlink.shared.runtime import ProcessContext, create_service_app

SERVICE_NAME = "journal-exporter"
VERSION = "0.1.0"
MIGRATIONS = "ledgerlink.journal_exporter:migrations"


def create_app(config: Config | None = None) -> FastAPI:
    """Build the app; a factory so tests configure Kafka and the store first."""
    config = config or Config()

    def register(process: ProcessContext, app: FastAPI) -> None:
        # Vendor API traffic of every connector this process uses goes to its /metrics.
        connector_metrics.install(process.registry)
        exports = register_payroll(process, app, config)
        register_kafka_handlers(process, config, exports)
        register_http_routes(process, app)

    return create_service_app(
        service_name=SERVICE_NAME,
        version=VERSION,
        config=config,
        metadata=metadata,
        tables=messaging,
        register=register,
        description="Payroll journals: validated, stored as received, accepted or rejected.",
    )


def register_payroll(process: ProcessContext, app: FastAPI, config: Config) -> ExportService:
    """Payroll journals from Nmbrs into Visma.net: routes, the posting runner, metrics."""
    settings = config.payroll
    # Every runner of every replica shares Visma.net's window through the store.
    windows = StoreRateWindows(
        process.db, rate=settings.vismanet_requests_per_second, limit=settings.vismanet_burst
    )
    gateway = VendorGateway(settings, config.token_service, budget=windows)
    metrics = PayrollMetrics(process.registry)
    exports = ExportService(
        db=process.db, gateway=gateway, outbox=process.outbox, settings=settings, metrics=metrics
    )
    sessions: AuthSessions | None = None
    if settings.pages_enabled:
        # Checked by Config: the pages run only with auth's sign-in configured.
        assert settings.signin.auth_url is not None
        assert config.token_service.token is not None
        sessions = AuthSessions(settings.signin.auth_url, config.token_service.token)

    async def close() -> None:
        await gateway.aclose()
        if sessions is not None:
            await sessions.aclose()

    runner = PostingRunner(
        exports,
        workers=settings.workers,
        poll_seconds=settings.runner_poll_seconds,
        schedule_seconds=settings.schedule_seconds,
        on_stop=close,
    )
    process.workers.append(runner)
    # A journal.ready event planned a posting: post it without waiting for the next poll.
    process.commit_listeners.append(runner.wake)
    mappings = MappingService(process.db, gateway)
    app.include_router(
        build_payroll_router(mappings, exports, settings.api_tokens, on_planned=runner.wake)
    )
    if sessions is not None:
        register_payroll_pages(
            app, mappings, exports, sessions, settings.signin, on_planned=runner.wake
        )
    return exports
