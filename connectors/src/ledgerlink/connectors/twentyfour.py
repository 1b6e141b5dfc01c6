"""24SevenOffice connector: SOAP for the integration user's clients and master data, REST for
transactions.

Which API for what, and why:

* **SOAP** (``authenticate.asmx``, AccountService, TransactionService) with the integration
  user's username and password (seed 004: one integration user per accounting firm, invited
  to every client to reconcile). ``Login`` gives a session (cookie ``ASP.NET_SessionId``);
  ``GetIdentities`` lists the clients (:meth:`TwentyFourConnector.list_companies`) and
  ``SetIdentityById`` switches between them (:meth:`TwentyFourConnector.select_company`).
  Accounts, user-defined dimensions, fiscal years with their locks and the transaction types
  (the "Transaction Type" choice that appears once the credentials are accepted) are read over
  the same session: they are small, and SOAP needs nothing but the integration user.
* **REST** (``/v1``, client credentials with ``login_organization`` = the selected client) for
  transaction lines. ``GET /transactionlines`` pages with ``Link: rel="next"``, so a ledger of
  a million lines is read in bounded memory, whereas SOAP ``GetTransactions`` answers a whole
  date range in one document. Its published filters are ``dateFrom`` (inclusive) and
  ``dateTo`` (exclusive) only: there is no change-time filter, so an incremental read walks
  the whole range again and keeps the transactions modified after the last pass.
* **Postings** go through SOAP ``SaveBundleList`` (AccountService): the public REST API has
  no transaction write endpoint. Its answer (``Ok``, ``DuplicateData``, ``DataAlreadySaved``,
  ``NotAuthenticated``, ``SystemError``, ``Exception``, ``NotSaved``) carries no id; the
  bundle's name is the posting's reference, which also makes a repeated posting answer
  ``DataAlreadySaved`` instead of booking twice.
* **Namespaces.** Authenticate and AccountService live in ``http://24sevenOffice.com/
  webservices``; TransactionService in ``http://24sevenoffice.com/webservices/economy/
  accounting/`` (its published WSDL). An answer in another namespace is refused.

Sessions expire: a SOAP call answered "not authenticated" logs in again once and is repeated;
a REST 401 fetches a new token once and repeats. Logins are throttled by the vendor, so the
session is kept and reused, never renewed pre-emptively. Passwords, the ApplicationId, the
session id and tokens are ``SecretStr`` or private attributes and never reach a log line or an
exception message.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import json
import logging
import time
import xml.etree.ElementTree as ET  # building only; parsing goes through defusedxml
from collections.abc import Awaitable, Callable, Mapping, Sequence
from decimal import Decimal
from typing import Any, ClassVar, Final

import defusedxml.ElementTree as SafeET
import httpx
from defusedxml import DefusedXmlException
from pydantic import BaseModel, ConfigDict, Field, SecretStr

from ledgerlink.connectors.answers import AnswerReader, child_text, namespace_of
from ledgerlink.connectors.base import LedgerConnector
from ledgerlink.connectors.credentials import Credential, CredentialProvider
from ledgerlink.connectors.errors import (
    AccessNotEnabled,
    AuthenticationFailed,
    ConnectorError,
    DuplicateData,
    InvalidData,
    NotFound,
    PeriodLocked,
    RateLimited,
    UnexpectedResponse,
    VendorUnavailable,
)
from ledgerlink.connectors.http import RateBudget, RetryPolicy, VendorHttpClient, retry_after_of
from ledgerlink.connectors.models import (
    Account,
    AccountType,
    Company,
    Dimension,
    DimensionKind,
    DimensionObject,
    JournalPosting,
    Period,
    PostedJournal,
    SyncCursor,
    Voucher,
    VoucherLine,
    VoucherPage,
    month_end,
)

__all__ = [
    "TransactionType",
    "TwentyFourConnector",
    "TwentyFourSettings",
    "login_envelope",
    "open_session",
]

logger = logging.getLogger(__name__)

VENDOR: Final = "twentyfour"
SOAP_NS: Final = "http://24sevenOffice.com/webservices"
#: TransactionService's namespace: its published WSDL's targetNamespace (lower-case "office",
#: trailing slash), not the one of Authenticate and AccountService.
ACCOUNTING_NS: Final = "http://24sevenoffice.com/webservices/economy/accounting/"
SOAP_ENV: Final = "http://schemas.xmlsoap.org/soap/envelope/"
SESSION_COOKIE: Final = "ASP.NET_SessionId"
MAX_TRANSACTION_LINES: Final = 1000

_AUTH_SERVICE: Final = "authenticate/v001/authenticate.asmx"
_ACCOUNT_SERVICE: Final = "Economy/Account/V004/Accountservice.asmx"
_TRANSACTION_SERVICE: Final = "Economy/Accounting/V001/TransactionService.asmx"
_SERVICE_NS: Final = {
    _AUTH_SERVICE: SOAP_NS,
    _ACCOUNT_SERVICE: SOAP_NS,
    _TRANSACTION_SERVICE: ACCOUNTING_NS,
}
#: Published enumerations (WSDLs of TransactionService and AccountService).
_DIMENSION_TYPES: Final = frozenset(
    {
        "None",
        "Project",
        "Department",
        "Employee",
        "Product",
        "Customer",
        "CustomerOrderSlip",
        "SupplierOrderSlip",
        "UserDefined",
    }
)
_SAVE_RESPONSE_TYPES: Final = frozenset(
    {
        "Ok",
        "DuplicateData",
        "DataAlreadySaved",
        "NotAuthenticated",
        "SystemError",
        "Exception",
        "NotSaved",
    }
)

# 24SevenOffice's built-in dimension types, by the published DimensionType name: the cost
# centre is the department. Cost units are a user-defined dimension, recognised by name.
_KIND_OF_TYPE: Final[Mapping[str, DimensionKind]] = {
    "Department": "cost_centre",
    "Project": "project",
}
# UNCONFIRMED: the usual names of a user-defined cost-unit dimension.
_COST_UNIT_NAMES: Final = frozenset(
    {"kostnadsbærer", "kostnadsbaerer", "cost unit", "unit", "kostnadsenhet"}
)


class TwentyFourSettings(BaseModel):
    """How to reach one 24SevenOffice integration user (and, for transactions, the REST API)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    # The login. Left out when auth's token service logs in centrally and hands out the
    # live session (``TwentyFourConnector(credentials=...)``).
    application_id: SecretStr | None = Field(
        default=None, description="The integrator's SOAP ApplicationId."
    )
    username: str = Field(
        default="", description="The integration user's login (an e-mail address)."
    )
    password: SecretStr | None = Field(default=None, description="The integration user's password.")
    client: str | None = Field(
        default=None,
        description="The client (Company.external_id) to work on; None: the user's default.",
    )
    rest_client_id: SecretStr | None = Field(
        default=None, description="REST API client id (needed for vouchers and postings)."
    )
    rest_client_secret: SecretStr | None = Field(default=None, description="REST client secret.")
    organization: str | None = Field(
        default=None,
        description="REST login_organization; None: the selected client's id.",
    )
    audience: str = Field(default="https://api.24sevenoffice.com", description="Token audience.")
    transaction_type: int | None = Field(
        default=None,
        description="The transaction type (No) postings get: the choice seed 004 shows.",
    )
    soap_base_url: str = Field(
        default="https://api.24sevenoffice.com", description="Base URL of the SOAP services."
    )
    rest_base_url: str = Field(
        default="https://rest.api.24sevenoffice.com/v1", description="Base URL of the REST API."
    )
    token_url: str = Field(
        default="https://login.24sevenoffice.com/oauth/token", description="OAuth token URL."
    )
    sync_from: dt.date | None = Field(
        default=None, description="First date of voucher history; None: first fiscal year."
    )
    page_size: int = Field(default=500, ge=1, le=1000, description="Lines per REST page.")
    timeout_seconds: float = Field(default=30.0, gt=0)
    retry: RetryPolicy = Field(
        default_factory=RetryPolicy, description="Retries of 429/5xx and dropped connections."
    )


class TransactionType(BaseModel):
    """A 24SevenOffice transaction type (bilagsart): what a posted journal is booked as."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    no: int
    title: str


class _SoapFaultError(Exception):
    """A SOAP fault, before it is mapped to a ConnectorError."""

    def __init__(self, code: str, message: str, status: int, retry_after: float | None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status
        self.retry_after = retry_after


def _q(name: str, ns: str = SOAP_NS) -> str:
    return f"{{{ns}}}{name}"


def _child_present(element: ET.Element, name: str) -> bool:
    return element.find(_q(name, namespace_of(element))) is not None


def _bool(text: str) -> bool:
    return text.strip().lower() == "true"


def _soap_action(ns: str, operation: str) -> str:
    # The WSDLs' soapAction: namespace + "/" + operation, or namespace + operation where the
    # namespace already ends with a slash (TransactionService).
    return f"{ns}{operation}" if ns.endswith("/") else f"{ns}/{operation}"


def _required(read: AnswerReader, element: ET.Element, name: str, where: str) -> str:
    if not _child_present(element, name):
        raise read.unexpected(f"{where}/{name} is missing")
    return read.required_text(child_text(element, name), f"{where}/{name}")


def _required_bool(read: AnswerReader, element: ET.Element, name: str, where: str) -> bool:
    text = _required(read, element, name, where).lower()
    if text not in ("true", "false"):
        raise read.unexpected(f"{where}/{name} is not a boolean: {text[:10]!r}")
    return text == "true"


def _account_type(number: str) -> AccountType | None:
    """The type implied by the Norwegian standard chart (NS 4102) for an account number."""
    if not number.isdigit():
        return None
    if number.startswith("1"):
        return "asset"
    if number.startswith("20"):
        return "equity"
    if number.startswith("2"):
        return "liability"
    if number.startswith("3"):
        return "revenue"
    if number[0] in "4567":
        return "expense"
    # Class 8 mixes financial income and costs and taxes: no single type.
    return None


def _encode_cursor(state: Mapping[str, Any]) -> SyncCursor:
    raw = json.dumps(state, separators=(",", ":"), default=str).encode()
    return SyncCursor(token=base64.urlsafe_b64encode(raw).decode())


def _decode_cursor(cursor: SyncCursor) -> dict[str, Any]:
    try:
        state = json.loads(base64.urlsafe_b64decode(cursor.token.encode()))
    except (ValueError, json.JSONDecodeError):
        raise ValueError("not a 24SevenOffice sync cursor") from None
    if not isinstance(state, dict) or state.get("v") != 1:
        raise ValueError("not a 24SevenOffice sync cursor")
    return state


class TwentyFourConnector(LedgerConnector):
    """24SevenOffice through the integration user (SOAP) and the REST API."""

    vendor: ClassVar[str] = VENDOR

    def __init__(
        self,
        settings: TwentyFourSettings,
        *,
        credentials: CredentialProvider | None = None,
        budget: RateBudget | None = None,
        retry: RetryPolicy | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """``budget``: optional (24SevenOffice publishes no request rate; it throttles
        logins, and a 429 or fault's ``Retry-After`` is honoured either way). ``retry``
        overrides ``settings.retry``; ``sleep`` and ``clock`` are injected together.

        ``credentials`` (auth's token service): SOAP sessions come from it (auth logs in
        with the stored integration user, once per connection, and reuses the session
        until near its expiry); this connector then never logs in itself, and asks auth
        again when 24SevenOffice says the session is not authenticated."""
        self.settings = settings
        self.credentials = credentials
        self._session_credential: Credential | None = None
        #: Sessions taken from the token service (tests read it).
        self.sessions_fetched = 0
        # One pooled client for the three hosts (SOAP, REST, token): every URL is absolute.
        # The session cookie is sent explicitly on SOAP calls only, never from a jar that
        # would also hand it to the REST API and the token endpoint.
        self._http = VendorHttpClient(
            VENDOR,
            settings.soap_base_url,
            tenant=settings.client or "",
            budget=budget,
            retry=retry or settings.retry,
            timeout=settings.timeout_seconds,
            transport=transport,
            sleep=sleep,
            clock=clock,
        )
        self._client: str | None = settings.client
        self._session: SecretStr | None = None
        self._session_client: str | None = None
        self._session_lock = asyncio.Lock()
        self._token: SecretStr | None = None
        self._token_expires = 0.0
        self._token_lock = asyncio.Lock()
        self._identities: dict[str, str] = {}
        self._transaction_type = settings.transaction_type
        # Dimension TypeId -> kind, from read_dimensions (for REST lines' dimensionType).
        self._dimension_kinds: dict[str, DimensionKind] | None = None
        #: How many SOAP logins and REST tokens this connector made (for tests and metrics).
        self.logins = 0
        self.tokens = 0

    def __repr__(self) -> str:
        return f"TwentyFourConnector(username={self.settings.username!r}, client={self._client!r})"

    async def aclose(self) -> None:
        """Close the HTTP client (the vendor session simply times out)."""
        await self._http.aclose()

    # ------------------------------------------------------------------------------------
    # SOAP
    # ------------------------------------------------------------------------------------

    def _soap_url(self, service: str) -> str:
        return f"{self.settings.soap_base_url.rstrip('/')}/{service}"

    @staticmethod
    def _envelope(operation: str, build: Any = None, ns: str = SOAP_NS) -> bytes:
        envelope = ET.Element(f"{{{SOAP_ENV}}}Envelope")
        body = ET.SubElement(envelope, f"{{{SOAP_ENV}}}Body")
        element = ET.SubElement(body, _q(operation, ns))
        if build is not None:
            build(element)
        return bytes(ET.tostring(envelope, encoding="utf-8", xml_declaration=True))

    async def _soap_raw(
        self, service: str, operation: str, body: bytes, session: SecretStr | None
    ) -> ET.Element:
        """One SOAP call: the operation's result element, or :class:`_SoapFaultError`."""
        ns = _SERVICE_NS[service]
        headers = {
            "Content-Type": "text/xml; charset=utf-8",
            "SOAPAction": f'"{_soap_action(ns, operation)}"',
        }
        if session is not None:
            headers["Cookie"] = f"{SESSION_COOKIE}={session.get_secret_value()}"
        # Every operation the connector calls over SOAP reads (Login included), so a
        # request whose answer was lost can be repeated.
        response = await self._http.post(
            self._soap_url(service),
            content=body,
            headers=headers,
            idempotent=True,
            classify=lambda answer: _classify_soap(operation, answer),
        )
        return _soap_result(service, operation, response)

    async def _login(self, refused: SecretStr | None = None) -> None:
        """Log in (into the selected client's identity if it is known) and keep the session.

        With auth's token service the session is auth's (it logs in centrally, one login
        per connection at a time); ``refused`` names a session the vendor just refused, so
        auth logs in again only if that one is still its current session.
        """
        if self.credentials is not None:
            session = await self._provided_session(refused)
        else:
            session = await self._own_login()
        try:
            # Which client did the session land on? (With IdentityId, the selected one.)
            try:
                identities = await self._soap_raw(
                    _AUTH_SERVICE, "GetIdentities", self._envelope("GetIdentities"), session
                )
            except _SoapFaultError as fault:
                if not (self.credentials is not None and self._is_unauthenticated(fault)):
                    raise
                # auth's session was forgotten by the vendor before auth knew (an expiry,
                # a restart): say so once, and auth logs in anew.
                session = await self._provided_session(session, force=True)
                identities = await self._soap_raw(
                    _AUTH_SERVICE, "GetIdentities", self._envelope("GetIdentities"), session
                )
            self._parse_identities(identities)
            if self._client is not None and self._session_client != self._client:
                self._refuse_switch_of_a_shared_session(self._client)
                # First login of this connector: switch to the selected client (later
                # logins name its identity directly).
                wanted = self._identity_or_raise(self._client)
                await self._soap_raw(
                    _AUTH_SERVICE,
                    "SetIdentityById",
                    self._envelope("SetIdentityById", _identity_body(wanted)),
                    session,
                )
                self._session_client = self._client
        except _SoapFaultError as fault:
            raise self._map_fault("Login", fault) from None
        self._session = session

    async def _provided_session(
        self, refused: SecretStr | None, *, force: bool = False
    ) -> SecretStr:
        """auth's session; ``refused`` (one the vendor refused) is named to auth when it is
        the one auth gave last (``force``: the one just given)."""
        assert self.credentials is not None
        refused_credential = (
            self._session_credential
            if refused is not None
            and self._session_credential is not None
            and (force or self._session_credential.primary == refused)
            else None
        )
        credential = await self.credentials.get(refused=refused_credential)
        if credential.kind != "twentyfour_session":
            raise AuthenticationFailed(
                VENDOR, f"the token service gave a {credential.kind} credential, not a session"
            )
        self._session_credential = credential
        self.sessions_fetched += 1
        return credential.secret("session_id")

    async def _own_login(self) -> SecretStr:
        settings = self.settings
        if settings.application_id is None or settings.password is None or not settings.username:
            raise AuthenticationFailed(
                VENDOR,
                "no ApplicationId, username or password, and no credential provider "
                "(auth's token service) was given",
            )
        identity = self._identities.get(self._client) if self._client else None
        body = login_envelope(
            settings.application_id, settings.username, settings.password, identity
        )
        self.logins += 1
        logger.info("24SevenOffice: logging in as %s", settings.username)
        try:
            result = await self._soap_raw(_AUTH_SERVICE, "Login", body, None)
        except _SoapFaultError as fault:
            raise self._map_fault("Login", fault) from None
        return _session_of(result)

    async def _ensure_session(self) -> SecretStr:
        async with self._session_lock:
            if self._session is None:
                await self._login()
            assert self._session is not None
            return self._session

    async def _soap(
        self, service: str, operation: str, build: Any = None, *, relogin: bool = True
    ) -> ET.Element:
        """A SOAP call in the session; an expired session is renewed once and the call
        repeated."""
        body = self._envelope(operation, build, _SERVICE_NS[service])
        session = await self._ensure_session()
        try:
            return await self._soap_raw(service, operation, body, session)
        except _SoapFaultError as fault:
            if not (relogin and self._is_unauthenticated(fault)):
                raise self._map_fault(operation, fault) from None
        logger.info("24SevenOffice: session expired during %s; logging in again", operation)
        async with self._session_lock:
            if self._session is None or self._session.get_secret_value() == (
                session.get_secret_value()
            ):
                self._session = None
                await self._login(refused=session)
            assert self._session is not None
            session = self._session
        try:
            return await self._soap_raw(service, operation, body, session)
        except _SoapFaultError as fault:
            error = self._map_fault(operation, fault)
            if self._is_unauthenticated(fault):
                error = AuthenticationFailed(
                    VENDOR,
                    f"{operation}: the session was refused right after a new login",
                    vendor_code=fault.code,
                    vendor_message=fault.message,
                    status=fault.status,
                )
            raise error from None

    @staticmethod
    def _is_unauthenticated(fault: _SoapFaultError) -> bool:
        return fault.message.lower().startswith("not authenticated")

    @staticmethod
    def _map_fault(operation: str, fault: _SoapFaultError) -> ConnectorError:
        """A SOAP fault as a vendor-neutral error; the fault string is kept as said."""
        text = fault.message.lower()
        details: dict[str, Any] = {
            "vendor_code": fault.code or None,
            "vendor_message": fault.message,
            "status": fault.status,
        }
        if "too many" in text or fault.status == 429:
            return RateLimited(
                VENDOR,
                f"{operation}: throttled by 24SevenOffice",
                retry_after=fault.retry_after,
                **details,
            )
        if (
            text.startswith("not authenticated")
            or "username or password" in text
            or "applicationid" in text
        ):
            return AuthenticationFailed(VENDOR, f"{operation}: credentials refused", **details)
        if "not enabled" in text or "no access" in text:
            return AccessNotEnabled(VENDOR, f"{operation}: API access not enabled", **details)
        if "identity" in text and "not available" in text:
            return NotFound(VENDOR, f"{operation}: client not available to the user", **details)
        if fault.status >= 500 and fault.code.endswith("Server"):
            return VendorUnavailable(VENDOR, f"{operation}: 24SevenOffice failed", **details)
        return InvalidData(VENDOR, f"{operation}: request refused", **details)

    # ------------------------------------------------------------------------------------
    # Clients (identities)
    # ------------------------------------------------------------------------------------

    async def _load_identities(self) -> list[tuple[str, Company]]:
        return self._parse_identities(await self._soap(_AUTH_SERVICE, "GetIdentities"))

    def _parse_identities(self, result: ET.Element) -> list[tuple[str, Company]]:
        read = AnswerReader(VENDOR, _soap_endpoint(_AUTH_SERVICE, "GetIdentities"))
        found: list[tuple[str, Company]] = []
        for n, identity in enumerate(result.findall(_q("Identity"))):
            where = f"Identity[{n}]"
            client = identity.find(_q("Client"))
            if client is None:
                # The WSDL allows an identity without a client (minOccurs 0): nothing to
                # work on through it.
                continue
            client_id = _required(read, client, "Id", f"{where}/Client")
            identity_id = _required(read, identity, "Id", where)
            self._identities[client_id] = identity_id
            if _required_bool(read, identity, "IsCurrent", where):
                self._session_client = client_id
            found.append(
                (
                    identity_id,
                    Company(
                        external_id=client_id,
                        # The published Client is Id and Name only: no organisation number.
                        business_id=None,
                        name=child_text(client, "Name"),
                        # UNCONFIRMED: the identity carries no currency; 24SevenOffice
                        # clients keep Norwegian books.
                        currency="NOK",
                    ),
                )
            )
        return found

    async def list_companies(self) -> list[Company]:
        """The clients the integration user was invited to (its identities)."""
        return [company for _identity, company in await self._load_identities()]

    def _identity_or_raise(self, client: str) -> str:
        identity = self._identities.get(client)
        if identity is None:
            raise NotFound(
                VENDOR,
                f"client {client} is not among the integration user's identities "
                "(was the invitation accepted?)",
            )
        return identity

    async def _switch_identity(self, client: str) -> None:
        if client not in self._identities:
            await self._load_identities()
        identity = self._identity_or_raise(client)
        if self._session_client == client:
            return
        self._refuse_switch_of_a_shared_session(client)
        await self._soap(_AUTH_SERVICE, "SetIdentityById", _identity_body(identity))
        self._session_client = client

    def _refuse_switch_of_a_shared_session(self, client: str) -> None:
        # auth's session belongs to one connection, one client (its IdentityId), and other
        # workers of that connection use it too: switching its identity would move them.
        if self.credentials is not None:
            raise NotFound(
                VENDOR,
                f"the connection's session serves client {self._session_client}, not "
                f"{client}: a connection through auth's token service is one client",
            )

    async def select_company(self, external_id: str) -> None:
        """Work on another client from now on (SOAP identity and REST organization)."""
        await self._ensure_session()
        await self._switch_identity(external_id)
        if self._client != external_id and self.settings.organization is None:
            self._token = None  # the REST token is per organization
        self._client = external_id

    async def _ensure_client(self) -> None:
        """The session is on the selected client (a re-login may have landed elsewhere)."""
        await self._ensure_session()
        if self._client is not None and self._session_client != self._client:
            await self._switch_identity(self._client)

    # ------------------------------------------------------------------------------------
    # Master data (SOAP)
    # ------------------------------------------------------------------------------------

    async def read_transaction_types(self) -> list[TransactionType]:
        """The transaction types to choose from for postings (seed 004's choice)."""
        await self._ensure_client()
        result = await self._soap(_TRANSACTION_SERVICE, "GetTransactionTypes")
        read = AnswerReader(VENDOR, _soap_endpoint(_TRANSACTION_SERVICE, "GetTransactionTypes"))
        types = []
        for n, item in enumerate(result.findall(_q("TransactionType", ACCOUNTING_NS))):
            where = f"TransactionType[{n}]"
            types.append(
                TransactionType(
                    no=read.integer_text(_required(read, item, "No", where), f"{where}/No"),
                    title=child_text(item, "Title"),
                )
            )
        return types

    def select_transaction_type(self, no: int) -> None:
        """The transaction type postings get from now on."""
        self._transaction_type = no

    async def read_accounts(self) -> list[Account]:
        """The chart of accounts (``GetAccountList``, published ``AccountData``); the type
        follows the Norwegian standard chart. AccountData has no active flag: every listed
        account counts as active."""
        await self._ensure_client()
        result = await self._soap(_ACCOUNT_SERVICE, "GetAccountList")
        read = AnswerReader(VENDOR, _soap_endpoint(_ACCOUNT_SERVICE, "GetAccountList"))
        accounts = []
        for n, item in enumerate(result.findall(_q("AccountData"))):
            number = _required(read, item, "AccountNo", f"AccountData[{n}]")
            read.integer_text(number, f"AccountData[{n}]/AccountNo")
            accounts.append(
                Account(
                    number=number,
                    name=child_text(item, "AccountName"),
                    type=_account_type(number),
                )
            )
        return accounts

    async def read_dimensions(self) -> list[Dimension]:
        """Dimension types (``GetUserDefinedDimensions``) with their values
        (``GetUserDefinedDimensionValues(DimensionType=TypeId)``), both flat ``Dimension``
        elements (Type, Name, Value, TypeId) in the published WSDL. The published values carry
        no active flag."""
        await self._ensure_client()
        result = await self._soap(_TRANSACTION_SERVICE, "GetUserDefinedDimensions")
        read = AnswerReader(
            VENDOR, _soap_endpoint(_TRANSACTION_SERVICE, "GetUserDefinedDimensions")
        )
        dimensions: list[Dimension] = []
        user_defined: list[bool] = []
        for n, item in enumerate(result.findall(_q("Dimension", ACCOUNTING_NS))):
            where = f"Dimension[{n}]"
            kind_name = child_text(item, "Type") or "None"
            if kind_name not in _DIMENSION_TYPES:
                raise read.unexpected(f"{where}/Type has the unknown value {kind_name!r}")
            type_id = _required(read, item, "TypeId", where)
            read.integer_text(type_id, f"{where}/TypeId")
            name = child_text(item, "Name")
            kind = _KIND_OF_TYPE.get(kind_name)
            if kind is None and name.strip().casefold() in _COST_UNIT_NAMES:
                kind = "cost_unit"
            values = await self._soap(
                _TRANSACTION_SERVICE,
                "GetUserDefinedDimensionValues",
                _dimension_type_body(type_id),
            )
            values_read = AnswerReader(
                VENDOR, _soap_endpoint(_TRANSACTION_SERVICE, "GetUserDefinedDimensionValues")
            )
            objects = []
            for m, value in enumerate(values.findall(_q("Dimension", ACCOUNTING_NS))):
                code = _required(values_read, value, "Value", f"Dimension[{m}]")
                objects.append(DimensionObject(code=code, name=child_text(value, "Name") or code))
            dimensions.append(Dimension(id=type_id, name=name, kind=kind, objects=tuple(objects)))
            user_defined.append(kind_name == "UserDefined")
        # UNCONFIRMED: cost units are a user-defined dimension; when no name says which and
        # the client has exactly one user-defined dimension, that one holds the cost units.
        candidates = [
            index for index, is_user_defined in enumerate(user_defined) if is_user_defined
        ]
        if len(candidates) == 1 and not any(d.kind == "cost_unit" for d in dimensions):
            only = dimensions[candidates[0]]
            dimensions[candidates[0]] = only.model_copy(update={"kind": "cost_unit"})
        self._dimension_kinds = {d.id: d.kind for d in dimensions if d.kind is not None}
        return dimensions

    async def read_periods(self) -> list[Period]:
        """Monthly periods of every fiscal year (``GetFiscalYears``, published ``FiscalYear``:
        Id, StartingDate, EndingDate, IsLocked).

        The lock is the fiscal year's: the published contract has no period locks, so every
        month of a locked year is closed and every month of an open one open. EndingDate is
        read as the year's last day. UNCONFIRMED: whether a midnight EndingDate can be the
        exclusive first day of the next year; a year ending on a first of a month is read so.
        """
        await self._ensure_client()
        result = await self._soap(_TRANSACTION_SERVICE, "GetFiscalYears")
        read = AnswerReader(VENDOR, _soap_endpoint(_TRANSACTION_SERVICE, "GetFiscalYears"))
        periods = []
        for n, year in enumerate(result.findall(_q("FiscalYear", ACCOUNTING_NS))):
            where = f"FiscalYear[{n}]"
            start = read.date_text(
                _required(read, year, "StartingDate", where), f"{where}/StartingDate"
            )
            end = read.date_text(_required(read, year, "EndingDate", where), f"{where}/EndingDate")
            if end.day == 1 and end > start:
                end -= dt.timedelta(days=1)
            if end < start:
                raise read.unexpected(f"{where}/EndingDate is before StartingDate")
            locked = _required_bool(read, year, "IsLocked", where)
            month = start
            while month <= end:
                last_day = min(month_end(month), end)
                periods.append(
                    Period(start=month, end=last_day, status="closed" if locked else "open")
                )
                month = last_day + dt.timedelta(days=1)
        return sorted(periods, key=lambda period: period.start)

    # ------------------------------------------------------------------------------------
    # REST
    # ------------------------------------------------------------------------------------

    def _organization(self) -> str:
        organization = self.settings.organization or self._client
        if organization is None:
            raise InvalidData(
                VENDOR, "no client selected: call select_company() or set settings.client"
            )
        return organization

    async def _fetch_token(self) -> None:
        settings = self.settings
        if settings.rest_client_id is None or settings.rest_client_secret is None:
            raise AccessNotEnabled(
                VENDOR, "the REST API needs rest_client_id and rest_client_secret"
            )
        if settings.organization is None and self._client is None and self.credentials:
            # A session from auth's token service is on the connection's one client (auth
            # logged in with its identity): that client is the REST organization.
            await self._ensure_session()
            self._client = self._session_client
        response = await self._http.post(
            settings.token_url,
            idempotent=True,
            classify=_classify_token,
            data={
                "grant_type": "client_credentials",
                "client_id": settings.rest_client_id.get_secret_value(),
                "client_secret": settings.rest_client_secret.get_secret_value(),
                "login_organization": self._organization(),
                "audience": settings.audience,
            },
        )
        self.tokens += 1
        try:
            payload = response.json()
        except ValueError:
            payload = {}
        if not isinstance(payload, dict):
            payload = {}
        if response.status_code == 200 and not isinstance(payload.get("access_token"), str):
            raise UnexpectedResponse(
                VENDOR,
                "POST /oauth/token",
                "the token answer has no access_token (empty, truncated or mistyped body)",
                status=response.status_code,
            )
        if response.status_code != 200:
            error = str(payload.get("error") or "")
            description = str(payload.get("error_description") or "")
            details: dict[str, Any] = {
                "vendor_code": error or None,
                "vendor_message": description or None,
                "status": response.status_code,
            }
            if error == "access_denied" or response.status_code == 403:
                raise AccessNotEnabled(
                    VENDOR, "the REST client is not allowed for this organization", **details
                )
            raise AuthenticationFailed(VENDOR, "REST client credentials refused", **details)
        self._token = SecretStr(str(payload["access_token"]))
        raw_expiry = payload.get("expires_in")
        expires_in = (
            float(raw_expiry)
            if isinstance(raw_expiry, (int, float)) and not isinstance(raw_expiry, bool)
            else 3600.0
        )
        # Renew a little early so a token does not expire between check and use.
        self._token_expires = time.monotonic() + max(0.0, expires_in - 30)

    async def _bearer(self) -> SecretStr:
        async with self._token_lock:
            if self._token is None or time.monotonic() >= self._token_expires:
                await self._fetch_token()
            assert self._token is not None
            return self._token

    async def _rest(
        self,
        method: str,
        path_or_url: str,
        *,
        params: Mapping[str, str] | None = None,
        json_body: object = None,
    ) -> httpx.Response:
        """A REST call with a bearer token; a 401 fetches a new token once and repeats."""
        url = (
            path_or_url
            if path_or_url.startswith(("http://", "https://"))
            else f"{self.settings.rest_base_url.rstrip('/')}{path_or_url}"
        )
        content = (
            json.dumps(json_body, default=_json_default).encode() if json_body is not None else None
        )
        for attempt in (1, 2):
            token = await self._bearer()
            headers = {"Authorization": f"Bearer {token.get_secret_value()}"}
            if content is not None:
                headers["Content-Type"] = "application/json"
            response = await self._http.request(
                method,
                url,
                params=params,
                content=content,
                headers=headers,
                classify=lambda answer: _classify_rest(method, url, answer),
            )
            if response.status_code != 401 or attempt == 2:
                break
            logger.info("24SevenOffice: REST token refused; fetching a new one")
            async with self._token_lock:
                if self._token is not None and (
                    self._token.get_secret_value() == token.get_secret_value()
                ):
                    self._token = None
        if response.status_code >= 400:
            raise self._rest_error(method, url, response)
        return response

    @staticmethod
    def _rest_error(method: str, url: str, response: httpx.Response) -> ConnectorError:
        return _rest_error(method, url, response)

    # ------------------------------------------------------------------------------------
    # Vouchers (REST transaction lines)
    # ------------------------------------------------------------------------------------

    async def _history_range(self) -> tuple[dt.date, dt.date]:
        periods = await self.read_periods()
        if not periods:
            raise NotFound(VENDOR, "the client has no fiscal years")
        start = self.settings.sync_from or min(period.start for period in periods)
        return start, max(period.end for period in periods)

    async def read_vouchers(
        self, cursor: SyncCursor | None = None, *, page_size: int | None = None
    ) -> VoucherPage:
        """One page of transactions (REST lines grouped by transaction) changed since
        ``cursor``.

        ``GET /transactionlines`` (published ``Transaction`` lines) with ``dateFrom``
        (inclusive), ``dateTo`` (exclusive: the day after the last one wanted), ``page``,
        ``limit`` and ``includeDimensions=true``. The cursor keeps the page to fetch, the
        newest ``modifiedAt`` seen and the lines of a transaction cut by the page boundary.
        The API has no change filter, so a later pass walks the range again and returns only
        transactions modified after the previous pass. UNCONFIRMED: a deleted transaction is
        no longer listed, so a deletion cannot be seen here.
        """
        state: dict[str, Any] = (
            _decode_cursor(cursor) if cursor is not None and not cursor.is_start else {"v": 1}
        )
        limit = page_size or self.settings.page_size
        if "page" not in state:
            date_from, date_to = await self._history_range()
            state.update(
                {
                    "from": date_from.isoformat(),
                    "to": date_to.isoformat(),
                    "page": 1,
                    "carry": [],
                    "hw": state.get("since"),
                }
            )
        last_day = dt.date.fromisoformat(str(state["to"]))
        params: dict[str, str] = {
            "dateFrom": str(state["from"]),
            "dateTo": (last_day + dt.timedelta(days=1)).isoformat(),
            "page": str(state["page"]),
            "limit": str(limit),
            "includeDimensions": "true",
        }
        response = await self._rest("GET", "/transactionlines", params=params)
        read = AnswerReader(VENDOR, "GET /transactionlines", response.status_code)
        try:
            body = json.loads(response.content, parse_float=Decimal)
        except (ValueError, UnicodeDecodeError):
            raise read.unexpected("the answer is not JSON (empty or truncated body)") from None
        items = read.items(body, "Transactions")
        kinds = await self._line_dimension_kinds(read, items)
        lines = [_rest_line(read, item, f"[{n}]", kinds) for n, item in enumerate(items)]
        has_next = response.links.get("next") is not None
        pending: list[dict[str, Any]] = list(state.get("carry") or [])
        seen = {line["id"] for line in pending}
        pending.extend(line for line in lines if line["id"] not in seen)
        high_water: str | None = state.get("hw")
        for line in pending:
            if line["stamp"] and (high_water is None or _later(line["stamp"], high_water)):
                high_water = line["stamp"]
        groups: list[list[dict[str, Any]]] = []
        for line in pending:
            if groups and groups[-1][0]["tx"] == line["tx"]:
                groups[-1].append(line)
            else:
                groups.append([line])
        carry: list[dict[str, Any]] = []
        if has_next and groups:
            # The last transaction may continue on the next page.
            carry = groups.pop()
        since: str | None = state.get("since")
        vouchers = tuple(
            voucher
            for voucher in (_voucher(group) for group in groups)
            if since is None or (voucher.version is not None and _later(voucher.version, since))
        )
        if has_next:
            next_state = {**state, "page": int(state["page"]) + 1, "carry": carry, "hw": high_water}
        else:
            # Pass complete: the next pass keeps what was modified after the newest change.
            next_state = {"v": 1, "since": high_water or since}
        return VoucherPage(vouchers=vouchers, cursor=_encode_cursor(next_state), has_more=has_next)

    async def _line_dimension_kinds(
        self, read: AnswerReader, items: Sequence[Any]
    ) -> Mapping[str, DimensionKind]:
        """Dimension type -> kind for the lines' dimensions; the dimension list (SOAP) is
        read once, only when a line carries a dimension its type name does not explain."""
        needed = False
        for item in items:
            if not isinstance(item, Mapping):
                continue
            for dimension in item.get("dimensions") or []:
                if isinstance(dimension, Mapping) and (
                    dimension.get("dimensionTypeName") not in _KIND_OF_TYPE
                ):
                    needed = True
        if needed and self._dimension_kinds is None:
            await self.read_dimensions()
        return self._dimension_kinds or {}

    # ------------------------------------------------------------------------------------
    # Posting (SOAP SaveBundleList)
    # ------------------------------------------------------------------------------------

    async def post_journal(self, posting: JournalPosting) -> PostedJournal:
        """Post a journal as one transaction of the chosen type (SOAP ``SaveBundleList``).

        The public REST API has no transaction write endpoint. The lines are dated
        ``posting.date`` when it lies in the posting's period, otherwise on the period's last
        day: 24SevenOffice assigns the period from the date, and a retroactive correction
        must land in the period it corrects. The bundle is named by the posting's reference,
        so a repeated posting answers ``DataAlreadySaved`` (:class:`DuplicateData`).
        ``SaveResponse`` carries no id: the posting is known by its reference.
        """
        if self._transaction_type is None:
            raise InvalidData(
                VENDOR,
                "no transaction type chosen: pick one of read_transaction_types() first",
            )
        if len(posting.lines) > MAX_TRANSACTION_LINES:
            raise InvalidData(
                VENDOR,
                f"a transaction takes at most {MAX_TRANSACTION_LINES} lines, "
                f"got {len(posting.lines)}",
            )
        line_date = _date_in_period(posting.date, posting.period)
        unit_type: str | None = None
        if any(line.cost_unit for line in posting.lines):
            if self._dimension_kinds is None:
                await self.read_dimensions()
            unit_type = next(
                (k for k, kind in (self._dimension_kinds or {}).items() if kind == "cost_unit"),
                None,
            )
            if unit_type is None:
                raise InvalidData(VENDOR, "the client has no user-defined cost-unit dimension")
        type_no = str(self._transaction_type)
        stamp = f"{line_date.isoformat()}T00:00:00"

        def build(element: ET.Element) -> None:
            # Element order as the published sequences: BundleList(Bundles, AllowDifference),
            # Bundle(Vouchers, Sort, Name), Voucher(TransactionNo, Entries, Sort),
            # Entry(AccountNo, Date, Amount, DepartmentId, UserDefinedDimensions, Comment).
            bundle_list = ET.SubElement(element, _q("BundleList"))
            bundles = ET.SubElement(bundle_list, _q("Bundles"))
            bundle = ET.SubElement(bundles, _q("Bundle"))
            vouchers = ET.SubElement(bundle, _q("Vouchers"))
            voucher = ET.SubElement(vouchers, _q("Voucher"))
            # UNCONFIRMED: TransactionNo 0 lets 24SevenOffice number the transaction.
            ET.SubElement(voucher, _q("TransactionNo")).text = "0"
            entries = ET.SubElement(voucher, _q("Entries"))
            for line in posting.lines:
                entry = ET.SubElement(entries, _q("Entry"))
                ET.SubElement(entry, _q("AccountNo")).text = str(_account_number(line.account))
                ET.SubElement(entry, _q("Date")).text = stamp
                ET.SubElement(entry, _q("Amount")).text = format(line.amount, "f")
                if line.cost_centre:
                    ET.SubElement(entry, _q("DepartmentId")).text = str(
                        _numeric_id(line.cost_centre, "department")
                    )
                if line.cost_unit and unit_type is not None:
                    dimensions = ET.SubElement(entry, _q("UserDefinedDimensions"))
                    dimension = ET.SubElement(dimensions, _q("UserDefinedDimension"))
                    ET.SubElement(dimension, _q("Type")).text = unit_type
                    ET.SubElement(dimension, _q("Value")).text = line.cost_unit
                ET.SubElement(entry, _q("Comment")).text = line.description or posting.description
            # UNCONFIRMED: the transaction type travels as the voucher's and the bundle's
            # Sort (the WSDL has no type field on either).
            ET.SubElement(voucher, _q("Sort")).text = type_no
            ET.SubElement(bundle, _q("Sort")).text = type_no
            ET.SubElement(bundle, _q("Name")).text = posting.reference
            ET.SubElement(bundle_list, _q("AllowDifference")).text = "false"

        await self._ensure_client()
        result = await self._soap(_ACCOUNT_SERVICE, "SaveBundleList", build)
        read = AnswerReader(VENDOR, _soap_endpoint(_ACCOUNT_SERVICE, "SaveBundleList"))
        kind = _required(read, result, "Type", "SaveBundleListResult")
        if kind not in _SAVE_RESPONSE_TYPES:
            raise read.unexpected(f"SaveBundleListResult/Type has the unknown value {kind!r}")
        description = child_text(result, "Description")
        details: dict[str, Any] = {"vendor_code": kind, "vendor_message": description or None}
        if kind == "Ok":
            return PostedJournal(external_id=posting.reference, status="Ok")
        if kind in ("DuplicateData", "DataAlreadySaved"):
            raise DuplicateData(VENDOR, "SaveBundleList: already saved", **details)
        if kind == "NotAuthenticated":
            raise AuthenticationFailed(VENDOR, "SaveBundleList: not authenticated", **details)
        if kind in ("SystemError", "Exception"):
            raise VendorUnavailable(VENDOR, "SaveBundleList: 24SevenOffice failed", **details)
        lowered = description.lower()
        # UNCONFIRMED: NotSaved says why only in its text; a closed or missing period is
        # recognised by its words.
        if "period" in lowered and ("closed" in lowered or "locked" in lowered or "no " in lowered):
            raise PeriodLocked(VENDOR, "SaveBundleList: the period is closed", **details)
        raise InvalidData(VENDOR, "SaveBundleList: not saved", **details)


def _later(stamp: str, than: str) -> bool:
    return _instant(stamp) > _instant(than)


def _instant(stamp: str) -> dt.datetime:
    value = dt.datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    return value if value.tzinfo is not None else value.replace(tzinfo=dt.UTC)


def _rest_line(
    read: AnswerReader, item: Any, where: str, kinds: Mapping[str, DimensionKind]
) -> dict[str, Any]:
    """One published ``Transaction`` line, normalised (JSON-safe: it may ride in a cursor)."""
    line = read.mapping(item, where)
    transaction = read.mapping(read.field(line, "transaction", where), f"{where}.transaction")
    account = read.mapping(read.field(line, "account", where), f"{where}.account")
    transaction_type = line.get("transactionType")
    type_id = (
        read.integer(read.mapping(transaction_type, f"{where}.transactionType"), "id", where)
        if transaction_type is not None
        else None
    )
    tax = line.get("tax")
    tax_id = (
        read.integer(read.mapping(tax, f"{where}.tax"), "id", f"{where}.tax")
        if tax is not None and read.mapping(tax, f"{where}.tax").get("id") is not None
        else None
    )
    dimensions: dict[str, str] = {}
    for n, entry in enumerate(read.optional_items(line, "dimensions", where)):
        dimension_where = f"{where}.dimensions[{n}]"
        dimension = read.mapping(entry, dimension_where)
        type_number = read.integer(dimension, "dimensionType", dimension_where)
        type_name = read.optional_string(dimension, "dimensionTypeName", dimension_where)
        value = read.string(dimension, "value", dimension_where)
        kind = _KIND_OF_TYPE.get(type_name or "") or kinds.get(str(type_number))
        dimensions[kind or type_name or str(type_number)] = value
    stamp = read.optional_string(line, "modifiedAt", where) or read.optional_string(
        line, "createdAt", where
    )
    if stamp is not None:
        try:
            _instant(stamp)
        except ValueError:
            raise read.unexpected(
                f"{where}.modifiedAt is not a timestamp: {stamp[:40]!r}"
            ) from None
    number = transaction.get("number")
    return {
        "id": read.optional_string(line, "id", where) or f"{where}",
        "tx": read.string(transaction, "id", f"{where}.transaction"),
        "number": read.integer(transaction, "number", f"{where}.transaction")
        if number is not None
        else None,
        "type": type_id,
        "date": read.iso_date(line, "date", where).isoformat(),
        "account": str(read.integer(account, "number", f"{where}.account")),
        "amount": str(read.number(line, "amount", where)),
        "comment": read.optional_string(line, "comment", where) or "",
        "tax": str(tax_id) if tax_id is not None else None,
        "dims": dimensions,
        "stamp": stamp,
    }


def _voucher(lines: Sequence[Mapping[str, Any]]) -> Voucher:
    first = lines[0]
    stamps = [str(line["stamp"]) for line in lines if line["stamp"]]
    return Voucher(
        external_id=str(first["tx"]),
        series=str(first["type"]) if first["type"] is not None else None,
        number=str(first["number"]) if first["number"] is not None else None,
        date=dt.date.fromisoformat(str(first["date"])),
        # The published line has only a comment (<= 75 characters); the transaction's
        # description is its first line's. UNCONFIRMED.
        description=str(first["comment"]),
        version=max(stamps, key=_instant) if stamps else None,
        lines=tuple(
            VoucherLine(
                account=str(line["account"]),
                amount=Decimal(str(line["amount"])),
                description=str(line["comment"]),
                vat_code=line["tax"],
                dimensions=dict(line["dims"]),
            )
            for line in lines
        ),
    )


def _numeric_id(code: str, what: str) -> int:
    if not code.isdigit():
        raise InvalidData(VENDOR, f"24SevenOffice {what} ids are numeric, got {code!r}")
    return int(code)


def _soap_result(service: str, operation: str, response: httpx.Response) -> ET.Element:
    """The operation's result element of a SOAP answer, or :class:`_SoapFaultError`."""
    ns = _SERVICE_NS[service]
    try:
        root = SafeET.fromstring(response.content)
    except (ET.ParseError, DefusedXmlException, ValueError):
        if response.status_code == 429:
            raise RateLimited(
                VENDOR, "too many requests", retry_after=retry_after_of(response)
            ) from None
        if response.status_code >= 500:
            raise VendorUnavailable(
                VENDOR, f"{operation} failed", status=response.status_code
            ) from None
        raise UnexpectedResponse(
            VENDOR,
            _soap_endpoint(service, operation),
            "the answer is not a SOAP envelope (empty, truncated or not XML)",
            status=response.status_code,
        ) from None
    read = AnswerReader(VENDOR, _soap_endpoint(service, operation), response.status_code)
    body_element = root.find(f"{{{SOAP_ENV}}}Body")
    if body_element is None or len(body_element) == 0:
        raise read.unexpected("the answer has no SOAP Body")
    first = body_element[0]
    if first.tag == f"{{{SOAP_ENV}}}Fault":
        raise _SoapFaultError(
            (first.findtext("faultcode") or "").strip(),
            (first.findtext("faultstring") or "").strip(),
            response.status_code,
            retry_after_of(response),
        )
    if response.status_code >= 400:
        raise VendorUnavailable(VENDOR, f"{operation} failed", status=response.status_code)
    if first.tag != _q(f"{operation}Response", ns):
        # A wrong namespace is as foreign as a wrong element: the published WSDL fixes
        # both, and reading it anyway would find none of the fields.
        raise read.unexpected(f"Body/{first.tag[:120]} is not {{{ns}}}{operation}Response")
    result = first.find(_q(f"{operation}Result", ns))
    return result if result is not None else first


def login_envelope(
    application_id: SecretStr, username: str, password: SecretStr, identity_id: str | None
) -> bytes:
    """The SOAP ``Login`` request (authenticate.asmx, published WSDL: ``credential`` with
    ApplicationId, Username, Password and the optional IdentityId)."""

    def build(element: ET.Element) -> None:
        credential = ET.SubElement(element, _q("credential"))
        ET.SubElement(credential, _q("ApplicationId")).text = application_id.get_secret_value()
        ET.SubElement(credential, _q("Username")).text = username
        ET.SubElement(credential, _q("Password")).text = password.get_secret_value()
        if identity_id:
            ET.SubElement(credential, _q("IdentityId")).text = identity_id

    return TwentyFourConnector._envelope("Login", build)


def _session_of(result: ET.Element) -> SecretStr:
    session_id = (result.text or "").strip()
    if not session_id:
        raise AuthenticationFailed(VENDOR, "login refused: no session was given")
    return SecretStr(session_id)


async def open_session(
    http: httpx.AsyncClient,
    *,
    soap_base_url: str,
    application_id: SecretStr,
    username: str,
    password: SecretStr,
    identity_id: str | None = None,
    timeout: float = 30.0,
) -> SecretStr:
    """One SOAP ``Login``: the session id, or the refusal as a :class:`ConnectorError`.

    Exactly one request, never repeated here: 24SevenOffice throttles repeated logins
    (seed 004's integration user is shared by every client), so whoever calls this decides
    what a refusal means. A refused username or password is :class:`AuthenticationFailed`;
    a throttled login :class:`RateLimited`; a client the user may no longer reach
    :class:`NotFound`; an outage or a dropped connection :class:`VendorUnavailable`.
    Nothing secret reaches a log line or an error message.
    """
    body = login_envelope(application_id, username, password, identity_id)
    try:
        response = await http.post(
            f"{soap_base_url.rstrip('/')}/{_AUTH_SERVICE}",
            content=body,
            headers={
                "Content-Type": "text/xml; charset=utf-8",
                "SOAPAction": f'"{_soap_action(SOAP_NS, "Login")}"',
            },
            timeout=timeout,
        )
    except httpx.TransportError as exc:
        raise VendorUnavailable(VENDOR, f"Login: unreachable ({type(exc).__name__})") from None
    classified = _classify_soap("Login", response)
    if classified is not None:
        raise classified
    try:
        result = _soap_result(_AUTH_SERVICE, "Login", response)
    except _SoapFaultError as fault:
        raise TwentyFourConnector._map_fault("Login", fault) from None
    return _session_of(result)


def _classify_soap(operation: str, response: httpx.Response) -> ConnectorError | None:
    """Errors the HTTP core retries or raises; SOAP faults are left to the connector.

    A throttling fault and 502/503/504 are retried; a fault answered with 500 (the SOAP 1.1
    way) reaches :meth:`TwentyFourConnector._soap_raw`, which maps it by its fault string.
    """
    status = response.status_code
    if status < 400:
        return None
    said = _fault_string(response)
    if status == 429 or (
        status == 500 and said is not None and "too many requests" in said.lower()
    ):
        return RateLimited(
            VENDOR,
            f"{operation}: too many requests",
            retry_after=retry_after_of(response),
            vendor_message=said,
            status=status,
        )
    if status in (502, 503, 504):
        return VendorUnavailable(
            VENDOR, f"{operation}: 24SevenOffice unavailable", vendor_message=said, status=status
        )
    return None


def _fault_string(response: httpx.Response) -> str | None:
    """The faultstring of a SOAP fault answer (or the start of any other body)."""
    try:
        root = SafeET.fromstring(response.content)
    except (ET.ParseError, DefusedXmlException, ValueError):
        return response.text[:200] or None
    found = root.find(f"{{{SOAP_ENV}}}Body/{{{SOAP_ENV}}}Fault")
    return (found.findtext("faultstring") or "").strip() or None if found is not None else None


def _classify_token(response: httpx.Response) -> ConnectorError | None:
    status = response.status_code
    if status == 429:
        return RateLimited(
            VENDOR, "token request throttled", retry_after=retry_after_of(response), status=429
        )
    if status >= 500:
        return VendorUnavailable(VENDOR, "token request failed", status=status)
    return None


def _classify_rest(method: str, url: str, response: httpx.Response) -> ConnectorError | None:
    """The REST error body as a ConnectorError; 401 is left to the token renewal."""
    if response.status_code < 400 or response.status_code == 401:
        return None
    return _rest_error(method, url, response)


def _rest_error(method: str, url: str, response: httpx.Response) -> ConnectorError:
    """A REST error answer as a ConnectorError; the vendor's messages and trackingId kept."""
    path = httpx.URL(url).path
    try:
        payload = response.json()
    except ValueError:
        payload = {}
    errors = payload.get("errors") if isinstance(payload, dict) else None
    items = [e for e in errors if isinstance(e, dict)] if isinstance(errors, list) else []
    kinds = [str(e.get("type") or "") for e in items]
    message = "; ".join(str(e.get("message") or "") for e in items) or response.reason_phrase
    tracking = payload.get("trackingId") if isinstance(payload, dict) else None
    if tracking:
        message = f"{message} (trackingId {tracking})"
    details: dict[str, Any] = {
        "vendor_code": kinds[0] if kinds else None,
        "vendor_message": message,
        "status": response.status_code,
    }
    status = response.status_code
    what = f"{method} {path}"
    if status == 429:
        return RateLimited(
            VENDOR, f"{what}: too many requests", retry_after=retry_after_of(response), **details
        )
    if status >= 500:
        return VendorUnavailable(VENDOR, f"{what}: 24SevenOffice failed", **details)
    if status == 401:
        return AuthenticationFailed(VENDOR, f"{what}: token refused", **details)
    if status == 403:
        return AccessNotEnabled(VENDOR, f"{what}: access not enabled", **details)
    if status == 404:
        return NotFound(VENDOR, f"{what}: not found", **details)
    if status == 409:
        return DuplicateData(VENDOR, f"{what}: already exists", **details)
    if "closedPeriod" in kinds:
        return PeriodLocked(VENDOR, f"{what}: the period is closed", **details)
    return InvalidData(VENDOR, f"{what}: refused", **details)


def _soap_endpoint(service: str, operation: str) -> str:
    return f"SOAP {service.rsplit('/', 1)[-1]} {operation}"


def _dimension_type_body(type_id: str) -> Any:
    def build(element: ET.Element) -> None:
        ET.SubElement(element, _q("DimensionType", ACCOUNTING_NS)).text = type_id

    return build


def _identity_body(identity: str) -> Any:
    def build(element: ET.Element) -> None:
        ET.SubElement(element, _q("identityId")).text = identity

    return build


def _json_default(value: object) -> object:
    if isinstance(value, Decimal):
        # Two-decimal amounts survive the float's shortest repr exactly.
        return float(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def _account_number(account: str) -> int:
    if not account.isdigit():
        raise InvalidData(VENDOR, f"24SevenOffice account numbers are numeric, got {account!r}")
    return int(account)


def _date_in_period(day: dt.date, period: dt.date) -> dt.date:
    """``day`` if it lies in the month starting ``period``, else that month's last day."""
    if (day.year, day.month) == (period.year, period.month):
        return day
    next_month = (
        dt.date(period.year + 1, 1, 1)
        if period.month == 12
        else dt.date(period.year, period.month + 1, 1)
    )
    return next_month - dt.timedelta(days=1)
