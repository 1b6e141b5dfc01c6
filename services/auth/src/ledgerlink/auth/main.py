"""The auth service's application factory."""

from __future__ import annotations

from fastapi import FastAPI

from ledgerlink.auth.config import Config
from ledgerlink.auth.factory import build_components
from ledgerlink.auth.handlers.http import register_http_routes
from ledgerlink.auth.handlers.internal_http import register_internal_routes
from ledgerlink.auth.handlers.kafka import register_kafka_handlers
from ledgerlink.auth.storage.models import messaging, metadata
from ledgerlink.auth.storage.vendor_oauth import VendorOAuthClient
from ledgerlink.connectors import metrics as connector_metrics
from ledgerlink.shared.runtime import ProcessContext, create_service_app

SERVICE_NAME = "auth"
VERSION = "0.1.0"
MIGRATIONS = "ledgerlink.auth:migrations"


def create_app(config: Config | None = None) -> FastAPI:
    """Build the app; a factory so tests configure Kafka and the store first."""
    config = config or Config()

    def register(process: ProcessContext, app: FastAPI) -> None:
        # Vendor API traffic of every connector this process uses goes to its /metrics.
        connector_metrics.install(process.registry)
        components = build_components(
            config,
            process.db,
            process.outbox,
            VendorOAuthClient(process.http_client, timeout=config.vendor_timeout_seconds),
            on_commit=process.relay.wake,
        )
        app.state.auth = components
        process.workers.append(components.expiry())
        register_kafka_handlers(process, config, components.clock)
        register_http_routes(process, app)
        register_internal_routes(components, app)

    return create_service_app(
        service_name=SERVICE_NAME,
        version=VERSION,
        config=config,
        metadata=metadata,
        tables=messaging,
        register=register,
        description="Activations, environments matched by business ID, connections, the "
        "credential vault and the token service.",
    )
