"""Credentials from auth's token service, so a connector never refreshes by itself.

auth keeps every vendor secret in its vault and renews OAuth grants under a per-connection
lock (rotating refresh tokens make a second, uncoordinated refresher a bug). A connector in
the importer or the journal-exporter asks it with :class:`TokenServiceCredentials`:

* the answer is kept **in memory only**, until shortly before it expires;
* :class:`CredentialBearerAuth` puts the bearer token on each request; on a 401 from the
  vendor it asks auth again **once**, naming the refused token by its SHA-256 (auth renews
  it if it is still the current one), and retries; a second 401 needs a person
  (:class:`ReauthorizationRequired`).

The token service answers 409 for a connection that is not usable (``needs_reauth``,
``revoked``, ``pending_authorization``...): that is :class:`ReauthorizationRequired` too.

Not only bearer tokens come this way: a Netvisor signing identity (``kind`` ``netvisor``)
and a live 24SevenOffice session (``twentyfour_session``) too. Each kind has one **primary
secret** (:data:`PRIMARY_SECRET`): the one a vendor refuses, and the one a caller names by
its SHA-256 when it asks again after a refusal. A credential without an expiry (a Netvisor
identity) is kept at most ``stale_after_seconds``, so a re-authorisation at auth reaches a
long-running connector without a refusal first.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
import uuid
from collections.abc import AsyncGenerator, Callable, Mapping
from datetime import datetime
from typing import Any, Protocol

import httpx
from pydantic import BaseModel, ConfigDict, SecretStr

from ledgerlink.connectors.errors import (
    AuthenticationFailed,
    ReauthorizationRequired,
    VendorUnavailable,
)

__all__ = [
    "PRIMARY_SECRET",
    "Credential",
    "CredentialBearerAuth",
    "CredentialProvider",
    "TokenServiceCredentials",
]

_SOURCE = "token-service"

#: The secret a vendor refuses, per credential kind (what a refusal names by its SHA-256).
PRIMARY_SECRET: Mapping[str, str] = {
    "bearer": "access_token",
    "netvisor": "customer_key",
    "twentyfour_session": "session_id",
    "nmbrs_token": "token",
}


class Credential(BaseModel):
    """What a connector needs now: ``kind`` bearer, netvisor, twentyfour_session, nmbrs_token."""

    model_config = ConfigDict(frozen=True)

    connection_id: uuid.UUID
    provider: str
    kind: str
    expires_at: datetime | None
    secrets: dict[str, SecretStr]
    attributes: dict[str, Any]

    @property
    def access_token(self) -> SecretStr:
        """The bearer token (``kind == "bearer"``)."""
        try:
            return self.secrets["access_token"]
        except KeyError:
            raise ValueError(f"a {self.kind} credential has no access token") from None

    def secret(self, name: str) -> SecretStr:
        """One named secret; a clear error (no value) when auth did not send it."""
        try:
            return self.secrets[name]
        except KeyError:
            raise ValueError(f"a {self.kind} credential has no {name}") from None

    @property
    def primary(self) -> SecretStr | None:
        """The secret a vendor refuses (see :data:`PRIMARY_SECRET`)."""
        return self.secrets.get(PRIMARY_SECRET.get(self.kind, "access_token"))


class CredentialProvider(Protocol):
    """Where a connector gets its credential."""

    async def get(self, *, refused: Credential | None = None) -> Credential:
        """A usable credential; ``refused``: the vendor just refused this one."""


def _fingerprint(secret: SecretStr) -> str:
    return hashlib.sha256(secret.get_secret_value().encode()).hexdigest()


class TokenServiceCredentials:
    """A :class:`CredentialProvider` asking auth's token service for one connection."""

    def __init__(
        self,
        base_url: str,
        service_token: SecretStr,
        connection_id: uuid.UUID,
        *,
        vendor: str = _SOURCE,
        transport: httpx.AsyncBaseTransport | None = None,
        timeout: float = 15.0,
        renew_before_seconds: float = 30.0,
        stale_after_seconds: float = 300.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.connection_id = connection_id
        self._stale_after = stale_after_seconds
        self._fetched_at = 0.0
        self._vendor = vendor
        self._token = service_token
        self._renew_before = renew_before_seconds
        self._clock = clock
        self._cached: Credential | None = None
        self._lock = asyncio.Lock()
        self._http = httpx.AsyncClient(
            base_url=base_url.rstrip("/"), transport=transport, timeout=timeout
        )
        #: Requests made to the token service (tests count them).
        self.requests = 0

    async def aclose(self) -> None:
        """Close the HTTP client and forget the credential."""
        self._cached = None
        await self._http.aclose()

    def _usable(self, credential: Credential | None) -> bool:
        if credential is None:
            return False
        if credential.expires_at is None:
            return self._clock() < self._fetched_at + self._stale_after
        return self._clock() + self._renew_before < credential.expires_at.timestamp()

    async def get(self, *, refused: Credential | None = None) -> Credential:
        """The cached credential while it is good; otherwise (or when refused) ask auth."""
        async with self._lock:
            cached = self._cached
            if refused is None and self._usable(cached):
                assert cached is not None
                return cached
            if refused is not None and cached is not None and cached.primary != refused.primary:
                return cached  # another request already got a new one
            self._cached = await self._ask(refused)
            self._fetched_at = self._clock()
            return self._cached

    async def _ask(self, refused: Credential | None) -> Credential:
        primary = refused.primary if refused is not None else None
        body: Mapping[str, str] = (
            {"refused_token_sha256": _fingerprint(primary)} if primary is not None else {}
        )
        self.requests += 1
        try:
            response = await self._http.post(
                f"/internal/v1/connections/{self.connection_id}/credentials",
                json=dict(body),
                headers={"Authorization": f"Bearer {self._token.get_secret_value()}"},
            )
        except httpx.TransportError as exc:
            raise VendorUnavailable(
                self._vendor, f"the token service is unreachable ({type(exc).__name__})"
            ) from None
        if response.status_code == 200:
            return Credential.model_validate(response.json())
        reason = _reason(response)
        if response.status_code == 409:
            raise ReauthorizationRequired(
                self._vendor, f"the connection cannot be used now ({reason})", status=409
            )
        if response.status_code in (401, 403):
            raise AuthenticationFailed(
                self._vendor, "the token service refused this service's token", status=401
            )
        if response.status_code == 404:
            raise ReauthorizationRequired(
                self._vendor, "the token service knows no such connection", status=404
            )
        raise VendorUnavailable(
            self._vendor,
            f"the token service answered HTTP {response.status_code} ({reason})",
            status=response.status_code,
        )


def _reason(response: httpx.Response) -> str:
    try:
        detail = response.json().get("detail")
    except ValueError:
        return "no detail"
    if isinstance(detail, dict):
        return str(detail.get("reason_code", "unknown"))
    return str(detail)


class CredentialBearerAuth(httpx.Auth):
    """Bearer header from a :class:`CredentialProvider`; one renewal on a 401."""

    requires_request_body = True

    def __init__(self, provider: CredentialProvider, vendor: str) -> None:
        self._provider = provider
        self._vendor = vendor

    async def async_auth_flow(
        self, request: httpx.Request
    ) -> AsyncGenerator[httpx.Request, httpx.Response]:
        credential = await self._provider.get()
        request.headers["Authorization"] = f"Bearer {credential.access_token.get_secret_value()}"
        response = yield request
        if response.status_code != 401:
            return
        await response.aread()
        fresh = await self._provider.get(refused=credential)
        request.headers["Authorization"] = f"Bearer {fresh.access_token.get_secret_value()}"
        response = yield request
        if response.status_code == 401:
            await response.aread()
            raise ReauthorizationRequired(
                self._vendor,
                "the vendor refused a renewed token: authorise the connection again",
                status=401,
            )
