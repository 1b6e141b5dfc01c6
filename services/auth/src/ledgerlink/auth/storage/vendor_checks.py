"""Calls to vendors the activation pages make before anything is saved (adapters).

* Netvisor: the customer's API identifiers are checked with one signed request
  (``accountingperiodlist.nv``, through the connector's ``list_companies``), signed with
  the customer's key and Ledgerlink's partner key (Netvisor's authentication headers:
  https://support.netvisor.fi/en/support/solutions/articles/77000466919 "Netvisor API
  authentication").
* Procountor: the authorization code grant (login page ``/login``, token endpoint
  ``/api/oauth/token``; one redirect URI per client, exact, without a query string:
  https://dev.procountor.com/api-authentication/) and the company the token speaks for
  (``GET /api/company``, https://dev.procountor.com/api-reference/). UNCONFIRMED: the body
  of the refusal while the company's API add-on is closed; the sandbox and the connector
  agree on 403 ``API_CLIENTS_NOT_ALLOWED``.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

import httpx
from pydantic import SecretStr

from ledgerlink.connectors.errors import (
    AccessNotEnabled,
    AuthenticationFailed,
    ConnectorError,
    VendorUnavailable,
)
from ledgerlink.connectors.models import Company
from ledgerlink.connectors.netvisor import NetvisorConnector, NetvisorSettings
from ledgerlink.connectors.oauth import TokenSet
from ledgerlink.connectors.procountor import ProcountorConnector, ProcountorSettings


class CheckOutcome(StrEnum):
    """What a vendor said about the credentials."""

    ACCEPTED = "accepted"
    #: The customer ID is not known (or not linked to our partner / this company).
    WRONG_CUSTOMER_ID = "wrong_customer_id"
    #: The key does not sign the request correctly.
    WRONG_KEY = "wrong_key"
    #: The credentials are right but the API (interface rights, paid add-on) is closed.
    API_CLOSED = "api_closed"
    #: The vendor could not be reached or failed; try again later.
    UNAVAILABLE = "unavailable"


@dataclass(frozen=True)
class NetvisorPartner:
    """Ledgerlink's own Netvisor identity (from settings)."""

    partner_id: str
    partner_key: SecretStr
    base_url: str
    sender: str


class NetvisorCheck:
    """One live, signed call with the customer's identifiers."""

    def __init__(
        self, partner: NetvisorPartner, transport: httpx.AsyncBaseTransport | None = None
    ) -> None:
        self._partner = partner
        self._transport = transport

    async def check(
        self, *, customer_id: str, customer_key: SecretStr, business_id: str
    ) -> CheckOutcome:
        """Whether Netvisor accepts these identifiers for the company ``business_id``."""
        settings = NetvisorSettings(
            sender=self._partner.sender,
            customer_id=customer_id,
            partner_id=self._partner.partner_id,
            customer_key=customer_key,
            partner_key=self._partner.partner_key,
            organisation_id=business_id,
            language="EN",
            base_url=self._partner.base_url,
            timeout_seconds=15,
        )
        connector = NetvisorConnector(settings, transport=self._transport)
        try:
            await connector.list_companies()
        except AuthenticationFailed as error:
            return _netvisor_refusal(error)
        except AccessNotEnabled:
            return CheckOutcome.API_CLOSED
        except VendorUnavailable:
            return CheckOutcome.UNAVAILABLE
        except ConnectorError:
            return CheckOutcome.UNAVAILABLE
        finally:
            await connector.aclose()
        return CheckOutcome.ACCEPTED


def _netvisor_refusal(error: ConnectorError) -> CheckOutcome:
    # UNCONFIRMED: Netvisor answers every authentication failure with the one category
    # AUTHENTICATION_FAILED; which identifier was wrong is only in its message text. A
    # message naming the CustomerId (unknown, not linked to the partner, another company's)
    # points at the customer ID; anything else (the MAC) at the key.
    message = (error.vendor_message or "").lower()
    if "customerid" in message or "customer id" in message or "organisation" in message:
        return CheckOutcome.WRONG_CUSTOMER_ID
    return CheckOutcome.WRONG_KEY


@dataclass(frozen=True)
class ProcountorClient:
    """Ledgerlink's Procountor API client (from settings)."""

    client_id: str
    client_secret: SecretStr
    base_url: str
    redirect_uri: str


@dataclass(frozen=True)
class ProcountorGrant:
    """What the code grant gave: tokens and the company they speak for."""

    tokens: TokenSet
    company: Company


class ProcountorApiClosed(Exception):  # noqa: N818 - a vendor's refusal, named for its meaning
    """The company has not opened the API (a paid add-on, closed by default)."""


class ProcountorAuthorization:
    """The authorization code grant of the Procountor flow."""

    def __init__(
        self, client: ProcountorClient, transport: httpx.AsyncBaseTransport | None = None
    ) -> None:
        self._client = client
        self._transport = transport

    def _connector(self) -> ProcountorConnector:
        settings = ProcountorSettings(
            client_id=self._client.client_id,
            client_secret=self._client.client_secret,
            redirect_uri=self._client.redirect_uri,
            base_url=self._client.base_url,
        )
        return ProcountorConnector(settings, transport=self._transport)

    def authorization_url(self, state: str) -> str:
        """Procountor's login page for our client, carrying ``state``."""
        return self._connector().authorization_url(state)

    async def redeem(self, code: str) -> ProcountorGrant:
        """Trade the code for tokens and read the company (``ProcountorApiClosed`` when the
        company's API is closed; connector errors otherwise)."""
        connector = self._connector()
        try:
            tokens = await connector.exchange_code(code)
            try:
                [company] = await connector.list_companies()
            except AccessNotEnabled as error:
                # Procountor answers 403 while "Allow the usage of invoiceable API clients"
                # is off (the API add-on); the connector names it API_CLIENTS_NOT_ALLOWED.
                if error.vendor_code == "API_CLIENTS_NOT_ALLOWED":
                    raise ProcountorApiClosed() from None
                raise
        finally:
            await connector.aclose()
        return ProcountorGrant(tokens, company)
