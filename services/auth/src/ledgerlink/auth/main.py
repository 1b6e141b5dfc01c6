"""The auth service's application factory."""

from __future__ import annotations

import logging
from datetime import timedelta

import httpx
from fastapi import FastAPI

from ledgerlink.auth.config import Config
from ledgerlink.auth.domain.clock import Clock, MovableClock, utc_now
from ledgerlink.auth.domain.sessions import SessionPolicy
from ledgerlink.auth.factory import build_components
from ledgerlink.auth.handlers.dependencies import People
from ledgerlink.auth.handlers.http import register_http_routes
from ledgerlink.auth.handlers.internal_http import register_internal_routes
from ledgerlink.auth.handlers.kafka import register_kafka_handlers
from ledgerlink.auth.handlers.pages import include_pages
from ledgerlink.auth.handlers.tenancy import register_tenancy_routes
from ledgerlink.auth.handlers.web import WebContext, register_web_routes, templates
from ledgerlink.auth.services.cookies import AttemptSealer, SessionTokens
from ledgerlink.auth.services.signin import SigninService
from ledgerlink.auth.storage.models import messaging, metadata
from ledgerlink.auth.storage.vendor_oauth import VendorOAuthClient
from ledgerlink.connectors import metrics as connector_metrics
from ledgerlink.shared.db import Database
from ledgerlink.shared.runtime import ProcessContext, create_service_app

SERVICE_NAME = "auth"
VERSION = "0.1.0"
MIGRATIONS = "ledgerlink.auth:migrations"


def build_web_context(
    config: Config,
    db: Database,
    *,
    clock: Clock = utc_now,
    oidc_transport: httpx.AsyncBaseTransport | None = None,
) -> WebContext:
    """Wire the sign-in and session routes (tests build them without Kafka)."""
    # authlib logs the PKCE verifier at DEBUG; a DEBUG service log must not carry it.
    logging.getLogger("authlib").setLevel(logging.INFO)
    secret = config.session_secret.get_secret_value()
    return WebContext(
        config=config,
        db=db,
        signin=SigninService(
            config.signin,
            AttemptSealer(secret, config.signin.attempt_seconds),
            clock,
            transport=oidc_transport,
        ),
        tokens=SessionTokens(secret),
        policy=SessionPolicy(
            idle=timedelta(seconds=config.sessions.idle_seconds),
            absolute=timedelta(seconds=config.sessions.absolute_seconds),
            touch_interval=timedelta(seconds=config.sessions.touch_interval_seconds),
        ),
        clock=clock,
        templates=templates(),
    )


def create_app(
    config: Config | None = None,
    *,
    clock: Clock = utc_now,
    oidc_transport: httpx.AsyncBaseTransport | None = None,
    vendor_transport: httpx.AsyncBaseTransport | None = None,
) -> FastAPI:
    """Build the app; a factory so tests configure Kafka and the store first.

    ``clock`` is the time of sessions and sign-in checks (tests move it instead of
    waiting); ``oidc_transport`` carries the calls to the providers (tests may route them
    to an in-process provider); ``vendor_transport`` the activation pages' calls to vendors.
    """
    config = config or Config()
    if config.pages.clock_control and clock is utc_now:
        # Development and tests only (production refuses the setting): the clock that
        # POST /internal/v1/clock/advance moves, so a test of a process moves its time.
        clock = MovableClock()

    def register(process: ProcessContext, app: FastAPI) -> None:
        # Vendor API traffic of every connector this process uses goes to its /metrics.
        connector_metrics.install(process.registry)
        components = build_components(
            config,
            process.db,
            process.outbox,
            VendorOAuthClient(process.http_client, timeout=config.vendor_timeout_seconds),
            clock=clock,
            on_commit=process.relay.wake,
        )
        app.state.auth = components
        process.workers.append(components.expiry())
        register_kafka_handlers(process, config, components.clock)
        context = build_web_context(config, process.db, clock=clock, oidc_transport=oidc_transport)
        people = People(context)
        register_http_routes(app, context, people)
        register_tenancy_routes(app, context, people)
        register_web_routes(app, context)
        register_internal_routes(components, app)
        include_pages(app, context, components, vendor_transport=vendor_transport)

    return create_service_app(
        service_name=SERVICE_NAME,
        version=VERSION,
        config=config,
        metadata=metadata,
        tables=messaging,
        register=register,
        description="Activations, environments matched by business ID, connections and their "
        "lifecycle; people's sign-in (OpenID Connect) and sessions; the credential vault and "
        "the token service.",
    )
