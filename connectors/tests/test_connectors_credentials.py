"""Credentials from auth's token service: cached in memory until near expiry, asked again
once on a vendor 401 (naming the refused token), and wired into Visma.net and Nmbrs."""

from __future__ import annotations

import hashlib
import json
import uuid
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from ledgerlink.connectors.credentials import CredentialBearerAuth, TokenServiceCredentials
from ledgerlink.connectors.errors import (
    AuthenticationFailed,
    ReauthorizationRequired,
    VendorUnavailable,
)
from ledgerlink.connectors.nmbrs import NmbrsConnector, NmbrsSettings
from ledgerlink.connectors.oauth import OAuthClientSettings
from ledgerlink.connectors.vismanet import VismaNetConnector, VismaNetSettings

CONNECTION = uuid.UUID("0b6f3f7e-7f57-4a55-9d0c-6a3f2a0c1e11")
NOW = 1_800_000_000.0
SERVICE_TOKEN = SecretStr("service-token")


class TokenService:
    """auth's credential route, in memory: hands out tokens t1, t2, ...; renews on request."""

    def __init__(self, status: int = 200, expires_in: float = 3600) -> None:
        self.status = status
        self.expires_in = expires_in
        self.issued = 1
        self.bodies: list[dict[str, Any]] = []
        self.vendor_valid = {"t1"}
        #: Whether a renewed token is accepted by the vendor (False: the grant is dead).
        self.renewal_works = True

    def handle(self, request: httpx.Request) -> httpx.Response:
        if request.url.path.startswith("/internal/"):
            assert request.headers["authorization"] == "Bearer service-token"
            assert request.url.path == f"/internal/v1/connections/{CONNECTION}/credentials"
            body = json.loads(request.content or b"{}")
            self.bodies.append(body)
            if self.status != 200:
                return httpx.Response(
                    self.status, json={"detail": {"reason_code": "connection_needs_reauth"}}
                )
            current = f"t{self.issued}"
            if body.get("refused_token_sha256") == hashlib.sha256(current.encode()).hexdigest():
                self.issued += 1
                current = f"t{self.issued}"
                if self.renewal_works:
                    self.vendor_valid = {current}
            return httpx.Response(
                200,
                json={
                    "connection_id": str(CONNECTION),
                    "provider": "visma_net",
                    "kind": "bearer",
                    "expires_at": datetime.fromtimestamp(NOW + self.expires_in, UTC).isoformat(),
                    "secrets": {"access_token": current},
                    "attributes": {},
                },
            )
        # The vendor: accepts only the current token.
        token = request.headers.get("authorization", "").removeprefix("Bearer ")
        if token not in self.vendor_valid:
            return httpx.Response(401, json={"message": "expired"})
        if request.url.path.endswith("/api/company"):
            return httpx.Response(200, json={"seen_token": token})
        if request.url.path.endswith("/v1/account"):
            return httpx.Response(200, json=[], headers={"X-RateLimit-Remaining": "100"})
        return httpx.Response(200, json={"ok": token})


def provider(service: TokenService, clock: list[float] | None = None) -> TokenServiceCredentials:
    moments = clock or [NOW]
    return TokenServiceCredentials(
        "http://auth",
        SERVICE_TOKEN,
        CONNECTION,
        transport=httpx.MockTransport(service.handle),
        clock=lambda: moments[0],
    )


async def test_credential_is_cached_until_shortly_before_it_expires() -> None:
    service = TokenService(expires_in=100)
    clock = [NOW]
    credentials = provider(service, clock)
    first = await credentials.get()
    assert first.access_token.get_secret_value() == "t1"
    await credentials.get()
    assert credentials.requests == 1
    clock[0] = NOW + 71  # within 30 s of expiry
    await credentials.get()
    assert credentials.requests == 2
    await credentials.aclose()


async def test_a_vendor_401_asks_again_once_naming_the_refused_token() -> None:
    service = TokenService()
    credentials = provider(service)
    async with httpx.AsyncClient(
        transport=httpx.MockTransport(service.handle),
        auth=CredentialBearerAuth(credentials, "vismanet"),
        base_url="http://vendor",
    ) as vendor:
        assert (await vendor.get("/data")).json() == {"ok": "t1"}
        service.vendor_valid = set()  # the vendor now refuses t1
        assert (await vendor.get("/data")).json() == {"ok": "t2"}
        assert service.bodies[-1] == {"refused_token_sha256": hashlib.sha256(b"t1").hexdigest()}
        service.vendor_valid = set()  # refuses t2, and the renewal t3 too
        service.renewal_works = False
        with pytest.raises(ReauthorizationRequired):
            await vendor.get("/data")
    await credentials.aclose()


@pytest.mark.parametrize(
    ("status", "error"),
    [(409, ReauthorizationRequired), (401, AuthenticationFailed), (503, VendorUnavailable)],
)
async def test_token_service_refusals_map_to_connector_errors(
    status: int, error: type[Exception]
) -> None:
    credentials = provider(TokenService(status=status))
    with pytest.raises(error):
        await credentials.get()
    await credentials.aclose()


async def test_visma_net_takes_its_bearer_token_from_the_token_service() -> None:
    service = TokenService()
    transport = httpx.MockTransport(service.handle)
    settings = VismaNetSettings(
        client_id="isv",
        client_secret=SecretStr("unused"),
        tenant_id="tenant",
        api_base_url="http://vendor/vismanet",
        connect_base_url="http://vendor/visma-connect",
    )
    connector = VismaNetConnector(settings, credentials=provider(service), transport=transport)
    try:
        assert await connector.read_accounts() == []
    finally:
        await connector.aclose()
    # No client-credentials grant of its own: only the token service was asked.
    assert connector.session.refresh_count == 0
    assert len(service.bodies) == 1


async def test_nmbrs_rest_takes_its_bearer_token_from_the_token_service() -> None:
    service = TokenService()
    settings = NmbrsSettings(
        api="rest",
        oauth=OAuthClientSettings(client_id="c", token_url="http://vendor/token"),
        rest_base_url="http://vendor/nmbrs",
    )
    credentials = provider(service)
    connector = NmbrsConnector(
        settings, credentials=credentials, transport=httpx.MockTransport(service.handle)
    )
    try:
        assert connector.credentials is credentials
        assert connector._http is not None
        response = await connector._http.get("/anything")
        assert response.json() == {"ok": "t1"}
    finally:
        await connector.aclose()


async def test_procountor_takes_its_bearer_token_from_the_token_service() -> None:
    from ledgerlink.connectors.procountor import ProcountorConnector, ProcountorSettings

    service = TokenService()
    settings = ProcountorSettings(
        client_id="ledgerlink",
        client_secret=SecretStr("unused"),
        redirect_uri="http://127.0.0.1/callback",
        api_key=SecretStr("unused-api-key"),
        base_url="http://vendor/procountor",
    )
    connector = ProcountorConnector(
        settings, credentials=provider(service), transport=httpx.MockTransport(service.handle)
    )
    try:
        await connector._ensure_token()
        response = await connector._http.get("/company")
    finally:
        await connector.aclose()
    # The token service's token reached the vendor; no client-credentials grant was made.
    assert response.json() == {"seen_token": "t1"}
    assert len(service.bodies) == 1


async def test_a_session_credential_is_refused_by_its_primary_secret_and_goes_stale() -> None:
    """Not only bearer tokens: a 24SevenOffice session is named by its session id when
    refused; a Netvisor identity (no expiry) is asked for again once it is stale."""
    answers = iter(["s1", "s2", "s3"])
    bodies: list[dict[str, Any]] = []

    def handle(request: httpx.Request) -> httpx.Response:
        bodies.append(json.loads(request.content or b"{}"))
        return httpx.Response(
            200,
            json={
                "connection_id": str(CONNECTION),
                "provider": "24sevenoffice",
                "kind": "twentyfour_session",
                "expires_at": None,
                "secrets": {"session_id": next(answers)},
                "attributes": {"username": "integration@firm.example"},
            },
        )

    now = [NOW]
    provider = TokenServiceCredentials(
        "http://auth",
        SERVICE_TOKEN,
        CONNECTION,
        transport=httpx.MockTransport(handle),
        stale_after_seconds=300,
        clock=lambda: now[0],
    )
    first = await provider.get()
    assert first.primary == SecretStr("s1")
    assert await provider.get() is first  # held in memory
    renewed = await provider.get(refused=first)
    assert renewed.primary == SecretStr("s2")
    assert bodies[-1] == {"refused_token_sha256": hashlib.sha256(b"s1").hexdigest()}
    # A late refusal of s1 is answered from memory: s2 is already newer.
    assert await provider.get(refused=first) is renewed
    now[0] += 301
    assert (await provider.get()).primary == SecretStr("s3")
    assert provider.requests == 3
    with pytest.raises(ValueError, match="no customer_key"):
        renewed.secret("customer_key")
    await provider.aclose()
