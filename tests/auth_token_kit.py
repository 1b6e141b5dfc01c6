"""Test kit of auth's token service (its fast tests): a fake IdP with rotating refresh tokens,
a hand-moved clock, and the internal routes wired on a test store."""

from __future__ import annotations

import asyncio
import json
import re
import secrets
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl

import httpx
from fastapi import FastAPI
from pydantic import SecretStr
from sqlalchemy import select

from ledgerlink.auth.config import (
    Config,
    NetvisorPartnerSettings,
    OAuthProviderSettings,
    TwentyFourLoginSettings,
    VaultSettings,
)
from ledgerlink.auth.factory import AuthComponents, build_components
from ledgerlink.auth.handlers.internal_http import build_internal_router
from ledgerlink.auth.services.activation import ActivationService
from ledgerlink.auth.storage.models import Connection, messaging
from ledgerlink.auth.storage.vendor_oauth import VendorOAuthClient
from ledgerlink.shared.db import Database
from ledgerlink.shared.events import ActivationRequestedV1
from ledgerlink.shared.messaging.outbox import Outbox

SERVICE_TOKEN = "importer-service-token-0123456789abcdef"
HEADERS = {"Authorization": f"Bearer {SERVICE_TOKEN}"}
KEY_1 = SecretStr("first-vault-key-material-0123456789abcdef")
KEY_2 = SecretStr("second-vault-key-material-0123456789abcdef")
T0 = datetime(2026, 11, 21, 10, 0, tzinfo=UTC)
TWENTYFOUR_SOAP = "https://24so.test"
TWENTYFOUR_APPLICATION = "ledgerlink-application-id"
TWENTYFOUR_PASSWORD = "integration-password"
PARTNER_KEY = "our-partner-key"
_SOAP_FAULT = (
    '<?xml version="1.0" encoding="utf-8"?><soap:Envelope '
    'xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Body><soap:Fault>'
    "<faultcode>soap:Client</faultcode><faultstring>{}</faultstring></soap:Fault>"
    "</soap:Body></soap:Envelope>"
)
_SOAP_LOGIN = (
    '<?xml version="1.0" encoding="utf-8"?><soap:Envelope '
    'xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Body>'
    '<LoginResponse xmlns="http://24sevenOffice.com/webservices"><LoginResult>{}</LoginResult>'
    "</LoginResponse></soap:Body></soap:Envelope>"
)


class Clock:
    """A clock tests move by hand."""

    def __init__(self, start: datetime = T0) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@dataclass
class FakeIdP:
    """A token endpoint with rotating refresh tokens and a revocation endpoint.

    ``gate``, when set, holds every refresh until it is opened, so tests can pile up
    concurrent requests behind one refresh.
    """

    expires_in: int = 3600
    refresh_tokens: set[str] = field(default_factory=set)
    refreshes: int = 0
    invalid_grants: int = 0
    revoked: list[str] = field(default_factory=list)
    gate: asyncio.Event | None = None
    access_tokens: list[str] = field(default_factory=list)
    #: The connection's own client secret (client credentials grant) and its grants.
    machine_secret: str = "connection-client-secret"
    machine_grants: int = 0
    #: When set, the token endpoint answers 503.
    unavailable: bool = False
    #: 24SevenOffice's Login: attempts, sessions given, and a gate like ``gate``.
    logins: list[dict[str, str]] = field(default_factory=list)
    sessions: list[str] = field(default_factory=list)
    login_gate: asyncio.Event | None = None
    login_arrived: asyncio.Event = field(default_factory=asyncio.Event)
    login_throttled: bool = False

    async def twentyfour_login(self, request: httpx.Request) -> httpx.Response:
        """authenticate.asmx Login, as 24SevenOffice answers it (a SOAP fault is HTTP 500)."""
        body = request.content.decode()
        fields = dict(re.findall(r"<(?:\w+:)?(\w+)>([^<]*)</", body))
        self.logins.append(fields)
        self.login_arrived.set()
        if self.login_gate is not None:
            await self.login_gate.wait()
        if self.login_throttled:
            text = "Too many logins for this user; try again in 30 seconds."
            return httpx.Response(500, text=_SOAP_FAULT.format(text), headers={"Retry-After": "30"})
        if fields.get("ApplicationId") != TWENTYFOUR_APPLICATION:
            text = "The ApplicationId is not registered for API access."
            return httpx.Response(500, text=_SOAP_FAULT.format(text))
        if fields.get("Password") != TWENTYFOUR_PASSWORD:
            return httpx.Response(500, text=_SOAP_FAULT.format("Invalid username or password."))
        session = secrets.token_hex(12)
        self.sessions.append(session)
        return httpx.Response(200, text=_SOAP_LOGIN.format(session))

    def grant(self) -> dict[str, Any]:
        access, refresh = secrets.token_urlsafe(16), secrets.token_urlsafe(16)
        self.refresh_tokens.add(refresh)
        self.access_tokens.append(access)
        return {"access_token": access, "refresh_token": refresh, "expires_in": self.expires_in}

    async def handle(self, request: httpx.Request) -> httpx.Response:
        if request.url.host == "24so.test":
            return await self.twentyfour_login(request)
        form = dict(parse_qsl(request.content.decode()))
        if request.url.path == "/revoke":
            self.revoked.append(form["token"])
            self.refresh_tokens.discard(form["token"])
            return httpx.Response(200)
        if self.unavailable:
            return httpx.Response(503, text="maintenance")
        if form["grant_type"] == "client_credentials":
            if form.get("client_secret") != self.machine_secret or form.get("tenant_id") != (
                "tenant-9"
            ):
                return httpx.Response(401, json={"error": "invalid_client"})
            self.machine_grants += 1
            access = secrets.token_urlsafe(16)
            self.access_tokens.append(access)
            return httpx.Response(200, json={"access_token": access, "expires_in": 600})
        assert form["grant_type"] == "refresh_token"
        assert form["client_id"] == "ledgerlink"
        assert form["client_secret"] == "client-secret"
        if self.gate is not None:
            await self.gate.wait()
        token = form["refresh_token"]
        if token not in self.refresh_tokens:
            self.invalid_grants += 1
            return httpx.Response(400, json={"error": "invalid_grant"})
        self.refresh_tokens.discard(token)  # rotation: spent
        self.refreshes += 1
        body = self.grant()
        body["token_type"] = "Bearer"
        return httpx.Response(200, content=json.dumps(body).encode())


def config(**overrides: Any) -> Config:
    base: dict[str, Any] = {
        "vault": VaultSettings(keys={1: KEY_1}, active_key=1),
        "service_tokens": {"importer": SecretStr(SERVICE_TOKEN)},
        "oauth_providers": {
            "visma_net": OAuthProviderSettings(
                client_id="ledgerlink",
                client_secret=SecretStr("client-secret"),
                token_url="https://idp.test/token",
                revocation_url="https://idp.test/revoke",
            ),
            "procountor": OAuthProviderSettings(
                client_id="ledgerlink",
                client_secret=SecretStr("client-secret"),
                token_url="https://idp.test/token",
            ),
        },
        "refresh_leeway_seconds": 120,
        "credential_cache_seconds": 5,
        "netvisor": NetvisorPartnerSettings(
            partner_id="LEDGERLINK", partner_key=SecretStr(PARTNER_KEY)
        ),
        "twentyfour": TwentyFourLoginSettings(
            application_id=SecretStr(TWENTYFOUR_APPLICATION),
            soap_base_url=TWENTYFOUR_SOAP,
            session_seconds=1200,
        ),
    }
    base.update(overrides)
    return Config(**base)


@dataclass
class Harness:
    """The token service's routes on the test store, with a fake IdP and a clock."""

    db: Database
    idp: FakeIdP
    clock: Clock
    components: AuthComponents
    client: httpx.AsyncClient

    async def activate(
        self, *, provider: str = "visma_net", business_id: str = "33011433"
    ) -> Connection:
        data = ActivationRequestedV1.model_validate(
            {
                "provider": provider,
                "business_id": business_id,
                "country": "NL",
                "company_name": "Acme BV",
                "requested_by": {"email": "a@example.nl", "name": "A"},
                "product": "planning",
            }
        )
        async with self.db.transaction() as session:
            return await ActivationService(session, Outbox(messaging, source="test")).activate(
                data, event_id=str(uuid.uuid4())
            )

    async def authorize(
        self, connection_id: uuid.UUID, *, expires_in: int = 3600, account: str = "tenant-1"
    ) -> httpx.Response:
        grant = self.idp.grant()
        return await self.client.post(
            f"/internal/v1/connections/{connection_id}/authorization",
            json={
                "kind": "oauth",
                "vendor_account": account,
                "access_token": grant["access_token"],
                "refresh_token": grant["refresh_token"],
                "expires_in": expires_in,
            },
            headers=HEADERS,
        )

    async def credentials(self, connection_id: uuid.UUID, **body: Any) -> httpx.Response:
        return await self.client.post(
            f"/internal/v1/connections/{connection_id}/credentials",
            json=body or None,
            headers=HEADERS,
        )

    async def events(self) -> list[tuple[str, dict[str, Any]]]:
        async with self.db.transaction() as session:
            rows = (
                await session.execute(select(messaging.outbox).order_by(messaging.outbox.c.id))
            ).mappings()
            return [(row["event_type"], json.loads(row["payload"])) for row in rows]


def components_for(
    db: Database, idp: FakeIdP, clock: Clock, cfg: Config | None = None
) -> AuthComponents:
    http = httpx.AsyncClient(transport=httpx.MockTransport(idp.handle))
    return build_components(
        cfg or config(),
        db,
        Outbox(messaging, source="ledgerlink/auth"),
        VendorOAuthClient(http),
        clock=clock,
    )


@asynccontextmanager
async def harness(db: Database, cfg: Config | None = None) -> AsyncIterator[Harness]:
    idp, clock = FakeIdP(), Clock()
    components = components_for(db, idp, clock, cfg)
    app = FastAPI()
    app.include_router(build_internal_router(components))
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://auth"
    ) as client:
        yield Harness(db, idp, clock, components, client)
