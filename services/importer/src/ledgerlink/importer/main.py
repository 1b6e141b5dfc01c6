"""The importer service's application factory."""

from __future__ import annotations

from fastapi import FastAPI

from ledgerlink.connectors import metrics as connector_metrics
from ledgerlink.importer.config import Config
from ledgerlink.importer.factory import build_importer
from ledgerlink.importer.handlers.http import register_http_routes
from ledgerlink.importer.handlers.kafka import register_kafka_handlers
from ledgerlink.importer.services.runner import ImportRunner
from ledgerlink.importer.storage.models import messaging, metadata
from ledgerlink.shared.runtime import ProcessContext, create_service_app

SERVICE_NAME = "importer"
VERSION = "0.1.0"
MIGRATIONS = "ledgerlink.importer:migrations"


def create_app(config: Config | None = None) -> FastAPI:
    """Build the app; a factory so tests configure Kafka and the store first."""
    config = config or Config()

    def register(process: ProcessContext, app: FastAPI) -> None:
        # Vendor API traffic of every connector this process uses goes to its /metrics.
        connector_metrics.install(process.registry)
        parts = build_importer(config, process.db, outbox=process.outbox)
        runner = ImportRunner(
            parts.imports, workers=config.import_workers, poll_seconds=config.import_poll_seconds
        )
        if config.import_workers:
            process.workers.append(runner)
            process.commit_listeners.append(runner.wake)
        syncs = ImportRunner(
            parts.syncs, workers=config.sync_workers, poll_seconds=config.import_poll_seconds
        )
        if config.sync_workers:
            process.workers.append(syncs)
            process.commit_listeners.append(syncs.wake)
        register_kafka_handlers(process, config)
        register_http_routes(process, app, parts, on_queued=runner.wake, on_sync_queued=syncs.wake)

    return create_service_app(
        service_name=SERVICE_NAME,
        version=VERSION,
        config=config,
        metadata=metadata,
        tables=messaging,
        register=register,
        description=(
            "Import jobs (activations, import requests, uploads), the imported books "
            "(SIE 4, SAF-T) and their reports: trial balance, P&L, balance sheet."
        ),
    )
