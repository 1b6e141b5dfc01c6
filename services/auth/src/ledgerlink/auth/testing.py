"""Test support: auth's HTTP app without Kafka, and people signed in through the session
service directly (no provider), each with their own client: cookie set, CSRF header sent
with every request. Used by auth's own tests; nothing in the service imports it."""

from __future__ import annotations

import itertools
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime

import httpx
from fastapi import FastAPI

from ledgerlink.auth.config import Config
from ledgerlink.auth.domain.identity import VerifiedIdentity
from ledgerlink.auth.factory import build_components
from ledgerlink.auth.handlers.dependencies import CSRF_HEADER, People
from ledgerlink.auth.handlers.http import register_http_routes
from ledgerlink.auth.handlers.internal_http import register_internal_routes
from ledgerlink.auth.handlers.tenancy import register_tenancy_routes
from ledgerlink.auth.handlers.web import register_web_routes
from ledgerlink.auth.main import build_web_context
from ledgerlink.auth.storage.models import messaging
from ledgerlink.auth.storage.vendor_oauth import VendorOAuthClient
from ledgerlink.shared.db import Database
from ledgerlink.shared.messaging.outbox import Outbox

NOW = datetime(2027, 3, 1, 12, tzinfo=UTC)


@dataclass
class Person:
    """A signed-in person and their browser."""

    user_id: uuid.UUID
    email: str
    name: str
    client: httpx.AsyncClient
    csrf: str


@dataclass
class Town:
    """The auth app and the people signed in to it."""

    db: Database
    app: FastAPI
    clients: list[httpx.AsyncClient] = field(default_factory=list)
    _subjects: itertools.count[int] = field(default_factory=itertools.count)

    def client(self) -> httpx.AsyncClient:
        """A browser with no session."""
        client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=self.app), base_url="http://auth"
        )
        self.clients.append(client)
        return client

    async def sign_in(self, email: str, name: str = "") -> Person:
        """A session made by the session service, as a finished sign-in makes it."""
        context = self.app.state.web_context
        identity = VerifiedIdentity(
            provider="google",
            subject=f"subject-{next(self._subjects)}",
            email=email,
            name=name,
            organisation=None,
            authenticated_at=NOW,
        )
        async with self.db.transaction() as session:
            sessions = context.sessions(session)
            cookie, active = await sessions.start(identity)
            csrf = sessions.csrf_token(active)
        client = self.client()
        client.cookies.set(context.config.sessions.cookie_name, cookie)
        client.headers[CSRF_HEADER] = csrf
        return Person(active.user.id, email, name, client, csrf)


def build_auth_app(db: Database) -> FastAPI:
    """Auth's HTTP routes (connections, environments ..., sign-in, revocation) without
    Kafka; no vendor is configured, so a revocation wipes without calling one."""
    config = Config()
    context = build_web_context(config, db, clock=lambda: NOW)
    app = FastAPI()
    people = People(context)
    register_http_routes(app, context, people)
    register_tenancy_routes(app, context, people)
    register_web_routes(app, context)
    components = build_components(
        config,
        db,
        Outbox(messaging, source="ledgerlink/auth"),
        # Never used: no OAuth provider is configured here.
        VendorOAuthClient(httpx.AsyncClient()),
        clock=lambda: NOW,
    )
    register_internal_routes(components, app, people)
    app.state.web_context = context
    return app
