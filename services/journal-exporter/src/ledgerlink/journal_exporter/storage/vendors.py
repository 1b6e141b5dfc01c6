"""The vendors' APIs as this service uses them: Nmbrs and Visma.net connectors built on
credentials from auth's token service (held in memory only, never stored or logged)."""

from __future__ import annotations

import uuid
from typing import Literal

import httpx
from pydantic import SecretStr

from ledgerlink.connectors.credentials import TokenServiceCredentials
from ledgerlink.connectors.errors import AccessNotEnabled
from ledgerlink.connectors.http import RateBudget, RetryPolicy
from ledgerlink.connectors.nmbrs import NmbrsConnector, NmbrsSettings
from ledgerlink.connectors.vismanet import VismaNetConnector, VismaNetSettings
from ledgerlink.journal_exporter.config import PayrollExportSettings
from ledgerlink.shared.config import TokenServiceSettings

__all__ = ["VendorGateway"]

JournalDetail = Literal["company", "cost_centre", "cost_centre_cost_unit"]

# With credentials from the token service the connector never runs an OAuth flow itself;
# VismaNetSettings still wants a client, so this names the token service instead.
_TOKEN_SERVICE_CLIENT = "ledgerlink-token-service"  # noqa: S105 - a client name, not a secret
_UNUSED_SECRET = SecretStr("unused: the token service supplies the bearer token")
_UNUSED_REDIRECT = "urn:ledgerlink:token-service"


class VendorGateway:
    """Builds connectors for auth's connections; one credential cache per connection."""

    def __init__(
        self,
        settings: PayrollExportSettings,
        token_service: TokenServiceSettings,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        budget: RateBudget | None = None,
    ) -> None:
        #: Visma.net's rate budget (the store's shared window in the service; None: the
        #: connector's own process-wide budget).
        self._budget = budget
        self._settings = settings
        self._token_service = token_service
        self._transport = transport
        self._credentials: dict[uuid.UUID, TokenServiceCredentials] = {}
        self._vismanet: dict[tuple[uuid.UUID, str, int, int], VismaNetConnector] = {}

    def credentials(self, connection_id: uuid.UUID, vendor: str) -> TokenServiceCredentials:
        """The (cached) credential provider of one of auth's connections."""
        provider = self._credentials.get(connection_id)
        if provider is None:
            token = self._token_service.token
            if token is None:
                raise AccessNotEnabled(
                    vendor, "no token service token is configured for the journal exporter"
                )
            provider = TokenServiceCredentials(
                self._token_service.url,
                token,
                connection_id,
                vendor=vendor,
                transport=self._transport,
            )
            self._credentials[connection_id] = provider
        return provider

    def _retry(self) -> RetryPolicy:
        return RetryPolicy(
            attempts=self._settings.vendor_retry_attempts,
            max_total_seconds=self._settings.vendor_retry_seconds,
        )

    async def nmbrs(self, connection_id: uuid.UUID, detail: JournalDetail) -> NmbrsConnector:
        """An Nmbrs connector (SOAP, the API user's token) reading journals at ``detail``."""
        credential = await self.credentials(connection_id, "nmbrs").get()
        if credential.kind != "nmbrs_token":
            # UNCONFIRMED: Nmbrs publishes no REST journal resource, so journals are read
            # with the SOAP API user's token only.
            raise AccessNotEnabled(
                "nmbrs",
                f"the Nmbrs connection holds a {credential.kind} credential; journals are read "
                "with an API user's token (SOAP)",
            )
        return NmbrsConnector(
            NmbrsSettings(
                api="soap",
                base_url=self._settings.nmbrs_base_url,
                username=str(credential.attributes.get("username", "")),
                domain=str(credential.attributes.get("domain", "")),
                token=credential.secrets.get("token"),
                journal_detail=detail,
                retry=self._retry(),
            ),
            transport=self._transport,
        )

    def vismanet(
        self,
        connection_id: uuid.UUID,
        company_id: str,
        *,
        cost_centre_segment: int | None = None,
        cost_unit_segment: int | None = None,
    ) -> VismaNetConnector:
        """A Visma.net connector working in ``company_id`` (``ipp-company-id``).

        Kept for the process's lifetime (its HTTP connections are pooled); callers do not
        close it, :meth:`aclose` does.
        """
        centre = cost_centre_segment or 1
        unit = cost_unit_segment or (2 if centre != 2 else 1)
        key = (connection_id, company_id, centre, unit)
        cached = self._vismanet.get(key)
        if cached is not None:
            return cached
        connector = self._vismanet[key] = VismaNetConnector(
            VismaNetSettings(
                client_id=_TOKEN_SERVICE_CLIENT,
                client_secret=_UNUSED_SECRET,
                grant="authorization_code",
                company_id=company_id,
                redirect_uri=_UNUSED_REDIRECT,
                api_base_url=self._settings.vismanet_api_base_url,
                cost_centre_segment=centre,
                cost_unit_segment=unit,
                requests_per_second=self._settings.vismanet_requests_per_second,
                burst=self._settings.vismanet_burst,
            ),
            credentials=self.credentials(connection_id, "vismanet"),
            budget=self._budget,
            retry=self._retry(),
            transport=self._transport,
        )
        return connector

    async def aclose(self) -> None:
        """Close the Visma.net connectors, forget every credential, close the token service
        clients."""
        connectors, self._vismanet = list(self._vismanet.values()), {}
        for connector in connectors:
            await connector.aclose()
        providers, self._credentials = list(self._credentials.values()), {}
        for provider in providers:
            await provider.aclose()
