"""The vendors' ledgers as connectors, with credentials from auth's token service.

The importer never holds a vendor secret beyond the sync that uses it: each sync opens a
connector whose credential provider asks auth (``TokenServiceCredentials``) and keeps the
answer in memory only. OAuth vendors (Procountor, Visma.net) get a bearer token that auth
renews; a token refused mid-sync (HTTP 401) is renewed through auth once and the request
retried (``CredentialBearerAuth``). Netvisor keys are read once per sync; 24SevenOffice
sessions are auth's (it logs in centrally): the connector asks auth again when the vendor
forgets one.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime
from typing import Any, Protocol

import httpx
from pydantic import SecretStr

from ledgerlink.connectors.base import LedgerConnector
from ledgerlink.connectors.credentials import Credential, TokenServiceCredentials
from ledgerlink.connectors.errors import ReauthorizationRequired
from ledgerlink.connectors.http import RetryPolicy
from ledgerlink.connectors.netvisor import NetvisorConnector, NetvisorSettings
from ledgerlink.connectors.procountor import ProcountorConnector, ProcountorSettings
from ledgerlink.connectors.twentyfour import TwentyFourConnector, TwentyFourSettings
from ledgerlink.connectors.vismanet import VismaNetConnector, VismaNetSettings
from ledgerlink.importer.config import VendorSettings
from ledgerlink.shared.config import TokenServiceSettings
from ledgerlink.shared.events import Provider

__all__ = ["API_PROVIDERS", "LedgerOpener", "VendorLedgers"]

#: Ledgers read over their vendor's API (the others are file providers, or Nmbrs, which is
#: a payroll source, not a ledger).
API_PROVIDERS: tuple[str, ...] = (
    Provider.NETVISOR.value,
    Provider.PROCOUNTOR.value,
    Provider.VISMA_NET.value,
    Provider.TWENTYFOUR_SEVEN_OFFICE.value,
)


class LedgerOpener(Protocol):
    """Opens the connector of one connection (tests pass their own)."""

    def open(
        self,
        provider: Provider,
        connection_id: uuid.UUID,
        *,
        business_id: str,
        transaction_type: str | None = None,
    ) -> contextlib.AbstractAsyncContextManager[LedgerConnector]:
        """The connection's connector, closed (with its credential) at the block's end."""


class VendorLedgers:
    """Builds each vendor's connector from Ledgerlink's client settings and auth's answer.

    ``transport``, ``retry``, ``sleep`` and ``clock`` are the connectors' (tests inject a
    recording transport and a fast retry policy).
    """

    def __init__(
        self,
        vendors: VendorSettings,
        token_service: TokenServiceSettings,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        token_transport: httpx.AsyncBaseTransport | None = None,
        retry: RetryPolicy | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        clock: Callable[[], float] = time.monotonic,
        now: Callable[[], datetime] | None = None,
    ) -> None:
        """``now``: the wall clock of connectors that date their requests (Netvisor)."""
        self._vendors = vendors
        self._now = now
        self._token_service = token_service
        self._transport = transport
        self._token_transport = token_transport
        self._retry = retry
        self._sleep = sleep
        self._clock = clock

    def credentials(self, provider: Provider, connection_id: uuid.UUID) -> TokenServiceCredentials:
        """A credential provider asking auth for this connection."""
        token = self._token_service.token
        if token is None:
            raise ReauthorizationRequired(
                provider.value,
                "the importer has no service token for auth's token service "
                "(LEDGERLINK_IMPORTER_TOKEN_SERVICE__TOKEN)",
            )
        return TokenServiceCredentials(
            self._token_service.url,
            token,
            connection_id,
            vendor=provider.value,
            transport=self._token_transport,
        )

    @contextlib.asynccontextmanager
    async def open(
        self,
        provider: Provider,
        connection_id: uuid.UUID,
        *,
        business_id: str,
        transaction_type: str | None = None,
    ) -> AsyncIterator[LedgerConnector]:
        """The connection's connector; its credential is forgotten when the block ends."""
        credentials = self.credentials(provider, connection_id)
        try:
            connector = await self._build(
                provider, credentials, business_id=business_id, transaction_type=transaction_type
            )
            async with connector:
                yield connector
        finally:
            await credentials.aclose()

    async def _build(
        self,
        provider: Provider,
        credentials: TokenServiceCredentials,
        *,
        business_id: str,
        transaction_type: str | None,
    ) -> LedgerConnector:
        common: dict[str, Any] = {
            "retry": self._retry,
            "transport": self._transport,
            "sleep": self._sleep,
            "clock": self._clock,
        }
        if provider is Provider.PROCOUNTOR:
            procountor = self._vendors.procountor
            return ProcountorConnector(
                ProcountorSettings(
                    client_id=procountor.client_id,
                    client_secret=procountor.client_secret,
                    redirect_uri=procountor.redirect_uri,
                    base_url=procountor.base_url,
                ),
                credentials=credentials,
                **common,
            )
        if provider is Provider.VISMA_NET:
            credential = await credentials.get()
            visma = self._vendors.visma_net
            attributes = credential.attributes
            return VismaNetConnector(
                VismaNetSettings(
                    client_id=visma.client_id,
                    client_secret=visma.client_secret,
                    grant="client_credentials"
                    if attributes.get("tenant_id")
                    else "authorization_code",
                    tenant_id=attributes.get("tenant_id"),
                    company_id=attributes.get("company_id"),
                    api_base_url=visma.api_base_url,
                    connect_base_url=visma.connect_base_url,
                ),
                credentials=credentials,
                **common,
            )
        if provider is Provider.NETVISOR:
            credential = await credentials.get()
            netvisor = self._vendors.netvisor
            clocks: dict[str, Any] = {"now": self._now} if self._now is not None else {}
            return NetvisorConnector(
                NetvisorSettings(
                    sender=netvisor.sender,
                    customer_id=str(credential.attributes["customer_id"]),
                    partner_id=netvisor.partner_id,
                    customer_key=_secret(credential, "customer_key"),
                    partner_key=netvisor.partner_key,
                    organisation_id=str(
                        credential.attributes.get("organisation_id") or business_id
                    ),
                    base_url=netvisor.base_url,
                ),
                **common,
                **clocks,
            )
        if provider is Provider.TWENTYFOUR_SEVEN_OFFICE:
            twentyfour = self._vendors.twentyfour
            chosen = (
                int(transaction_type) if transaction_type and transaction_type.isdigit() else None
            )
            # Auth logs in to 24SevenOffice centrally and hands out the live session
            # (kind ``twentyfour_session``): the connector reads through it and asks auth
            # again when the vendor forgets it. No password reaches the importer.
            return TwentyFourConnector(
                TwentyFourSettings(
                    # The session auth logged in with the connection's identity is on
                    # the connection's client already.
                    client=None,
                    rest_client_id=twentyfour.rest_client_id,
                    rest_client_secret=twentyfour.rest_client_secret,
                    transaction_type=chosen,
                    soap_base_url=twentyfour.soap_base_url,
                    rest_base_url=twentyfour.rest_base_url,
                    token_url=twentyfour.token_url,
                ),
                credentials=credentials,
                **common,
            )
        raise ValueError(f"{provider.value} is not a ledger read over an API")


def _secret(credential: Credential, name: str) -> SecretStr:
    try:
        return credential.secrets[name]
    except KeyError:
        raise ReauthorizationRequired(
            credential.provider, f"auth's credential for the connection has no {name}"
        ) from None
