"""24SevenOffice stand-in: the legacy SOAP web services and the REST API.

SOAP 1.1 (``/24so/soap/...``), document/literal, as the ASP.NET ``.asmx`` services answer,
each in the namespace of its published WSDL: authenticate and AccountService in
``http://24sevenOffice.com/webservices``, TransactionService in
``http://24sevenoffice.com/webservices/economy/accounting/`` (lower-case "office", trailing
slash; SOAPAction is the namespace plus the operation):

* ``authenticate/v001/authenticate.asmx``: ``Login(credential{ApplicationId, Username,
  Password, IdentityId?})`` answers the session id and sets it as the ``ASP.NET_SessionId``
  cookie; ``HasSession``; ``GetIdentities`` lists the clients the integration user was invited
  to (seed 004: one integration user, invited to every client to reconcile);
  ``SetIdentityById`` switches the session to another client. Repeated logins of one user are
  throttled.
* ``Economy/Account/V004/Accountservice.asmx``: ``GetAccountList``, ``GetTypeList``,
  ``SaveBundleList`` (bundle posting; the contract places it in AccountService, as the public
  WSDL does).
* ``Economy/Accounting/V001/TransactionService.asmx``: ``GetTransactionTypes`` (Turnover,
  Title, No, Id), ``GetTransactions(searchParams)``, ``GetFiscalYears`` (Id, StartingDate,
  EndingDate, IsLocked: a lock per fiscal year, no periods), ``GetUserDefinedDimensions`` and
  ``GetUserDefinedDimensionValues`` (flat ``Dimension`` elements: Type, Name, Value, TypeId).

Malformed envelopes, a wrong ``SOAPAction`` or a missing session are SOAP faults (HTTP 500,
``soap:Client``/``soap:Server``), except ``SaveBundleList``, which reports a missing session in
its result ``Type`` (``NotAuthenticated``) as the contract lists.

REST (``/24so/rest/v1``, bearer tokens from ``POST /24so/login/oauth/token`` with the client
credentials grant plus ``login_organization`` and ``audience``): ``/organization/information``,
``/transactionlines`` (the published ``Transaction`` line shape; ``dateFrom`` inclusive,
``dateTo`` exclusive, ``page``/``limit``, ``includeDimensions``; ``Link: rel="next"``
paging), ``/transactiontypes``, ``/accounts``, ``/dimensions``, ``/fiscalyears``. The public
API has no transaction write endpoint: postings go through SOAP ``SaveBundleList``. Errors are
``{"errors": [{"type", "message"}], "trackingId"}``; 429 carries ``Retry-After``.

The 24SevenOffice-specific state (application ids, integration users, sessions, REST clients)
lives in :class:`TwentyFourState`, reachable with :func:`state_of`; tests register their own
users and clients through it.
"""

from __future__ import annotations

import datetime as dt
import json
import secrets
import uuid
import weakref
import xml.etree.ElementTree as ET
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any, Final
from urllib.parse import urlencode

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import fromstring as safe_fromstring
from fastapi import APIRouter, FastAPI, Request, Response
from fastapi.responses import JSONResponse

from ledgerlink.sandbox.data import CompanyData, LineData, VoucherData
from ledgerlink.sandbox.errors import SandboxRateLimited, SandboxServerError
from ledgerlink.sandbox.world import Tenant, World

__all__ = [
    "ACCOUNTING_NS",
    "AUDIENCE",
    "SOAP_NS",
    "VENDOR",
    "IntegrationUser",
    "RestClient",
    "TwentyFourState",
    "mount",
    "state_of",
]

VENDOR: Final = "twentyfour"
SOAP_NS: Final = "http://24sevenOffice.com/webservices"
#: TransactionService's own namespace (its published WSDL's targetNamespace).
ACCOUNTING_NS: Final = "http://24sevenoffice.com/webservices/economy/accounting/"
SOAP_ENV: Final = "http://schemas.xmlsoap.org/soap/envelope/"
# UNCONFIRMED: the audience the token endpoint expects; a careful vendor pins one value.
AUDIENCE: Final = "https://api.24sevenoffice.com"
SESSION_COOKIE: Final = "ASP.NET_SessionId"

AUTH_PATH: Final = "/24so/soap/authenticate/v001/authenticate.asmx"
ACCOUNT_PATH: Final = "/24so/soap/Economy/Account/V004/Accountservice.asmx"
TRANSACTION_PATH: Final = "/24so/soap/Economy/Accounting/V001/TransactionService.asmx"
REST_PREFIX: Final = "/24so/rest/v1"
TOKEN_PATH: Final = "/24so/login/oauth/token"  # noqa: S105 - a path, not a secret

MAX_TRANSACTION_LINES: Final = 1000
MAX_PAGE_LIMIT: Final = 1000
DEFAULT_PAGE_LIMIT: Final = 100

# Well-known credentials of the demo tenants (``ledgerlink-sandbox serve``), so a person can
# try the sandbox; tests register their own.
DEMO_APPLICATION_ID: Final = "24so-sandbox-application"
DEMO_USERNAME: Final = "integration@sandbox.invalid"
DEMO_PASSWORD: Final = "sandbox"  # noqa: S105 - a public demo credential of the stand-in
DEMO_REST_CLIENT_ID: Final = "sandbox-client"
DEMO_REST_CLIENT_SECRET: Final = "sandbox-secret"  # noqa: S105 - public demo credential

# The transaction types (bilagsarter) every sandbox client has, with the voucher series the
# generated data uses for each. "API" is the series of transactions posted through the API.
_TRANSACTION_TYPES: Final[tuple[tuple[int, str, str], ...]] = (
    (1, "Utgående faktura", "SF"),
    (2, "Inngående faktura", "LF"),
    (3, "Bank", "BA"),
    (4, "Memorialbilag", "MV"),
    (5, "Lønn", "LO"),
    (6, "Integrasjon", "API"),
)
_TYPE_BY_NO: Final = {no: (title, series) for no, title, series in _TRANSACTION_TYPES}
_TYPE_BY_SERIES: Final = {series: no for no, _title, series in _TRANSACTION_TYPES}

# 24SevenOffice calls the cost centre "department"; cost units are a user-defined dimension.
_DIMENSION_KEYS: Final = {"cost_centre": "department", "project": "project", "cost_unit": "unit"}
_DIMENSION_KINDS: Final = {value: key for key, value in _DIMENSION_KEYS.items()}
# The published DimensionType of each kind; cost units are a user-defined dimension.
_DIMENSION_TYPES: Final = {"cost_centre": "Department", "project": "Project"}
# REST dimensionType numbers of the built-in dimensions (the published example: 1 = Project;
# the WSDL's DimensionType enumeration order gives Department 2). UNCONFIRMED: user-defined
# dimensions carry their TypeId (as GetUserDefinedDimensions names it) and their own name.
_DIMENSION_TYPE_IDS: Final = {"project": 1, "cost_centre": 2}


# --------------------------------------------------------------------------------------------
# State
# --------------------------------------------------------------------------------------------


@dataclass
class IntegrationUser:
    """An integration user and the clients (tenant ids) it was invited to, in order."""

    username: str
    password: str
    clients: list[str]
    identity_ids: dict[str, str] = field(default_factory=dict)

    def identity_of(self, client: str) -> str:
        """The identity id (a GUID, stable per user and client) for one client."""
        if client not in self.identity_ids:
            self.identity_ids[client] = str(
                uuid.uuid5(uuid.NAMESPACE_URL, f"24so:{self.username}:{client}")
            )
        return self.identity_ids[client]


@dataclass
class RestClient:
    """A REST API client (the integrator's app) and the organizations that installed it."""

    client_id: str
    client_secret: str
    organizations: set[str]


@dataclass
class _Session:
    username: str
    client: str
    requests: int = 0


@dataclass
class _AccessToken:
    client_id: str
    organization: str
    expires_at: float


@dataclass
class TwentyFourState:
    """Everything the 24SevenOffice stand-in keeps besides the company data."""

    application_ids: set[str] = field(default_factory=set)
    users: dict[str, IntegrationUser] = field(default_factory=dict)
    rest_clients: dict[str, RestClient] = field(default_factory=dict)
    sessions: dict[str, _Session] = field(default_factory=dict)
    tokens: dict[str, _AccessToken] = field(default_factory=dict)
    token_ttl_seconds: float = 3600.0
    #: Logins per user allowed within ``login_window_seconds`` before Login is throttled.
    login_limit: int = 10
    login_window_seconds: float = 60.0
    #: Expire a session after this many requests (``None``: never); lets tests expire
    #: sessions mid-sync deterministically.
    session_max_requests: int | None = None
    logins: dict[str, deque[float]] = field(default_factory=dict)
    login_count: int = 0
    token_count: int = 0
    #: Bundle names (per client) already saved: SaveBundleList answers DataAlreadySaved.
    saved_bundles: dict[str, set[str]] = field(default_factory=dict)
    #: REST references (per client) already posted: POST /transactions answers 409.
    posted_references: dict[str, dict[str, int]] = field(default_factory=dict)

    def register_application(self, application_id: str) -> None:
        """Allow SOAP logins with this ApplicationId."""
        self.application_ids.add(application_id)

    def add_integration_user(
        self, username: str, password: str, clients: Iterable[str]
    ) -> IntegrationUser:
        """An integration user invited to ``clients`` (tenant ids; the first is its home)."""
        user = IntegrationUser(username, password, list(clients))
        self.users[username] = user
        return user

    def add_rest_client(
        self, client_id: str, client_secret: str, organizations: Iterable[str]
    ) -> RestClient:
        """A REST client installed in ``organizations`` (tenant ids)."""
        client = RestClient(client_id, client_secret, set(organizations))
        self.rest_clients[client_id] = client
        return client

    def expire_sessions(self) -> None:
        """Drop every SOAP session and REST token (as a vendor restart or timeout would)."""
        self.sessions.clear()
        self.tokens.clear()

    def reset(self) -> None:
        """What :meth:`World.reset` forgets: sessions, tokens, login history, counters and
        saved bundles and references. Applications, users and REST clients stay."""
        self.expire_sessions()
        self.logins.clear()
        self.login_count = 0
        self.token_count = 0
        self.saved_bundles.clear()
        self.posted_references.clear()


_STATES: weakref.WeakKeyDictionary[World, TwentyFourState] = weakref.WeakKeyDictionary()


def state_of(world: World) -> TwentyFourState:
    """The 24SevenOffice state of ``world`` (made on first use).

    The state spans tenants (an integration user is invited to several clients), so it
    lives beside the world rather than in one ``Tenant.state``. Sessions and REST tokens
    expire with the vendor's token-expiry fault and ``POST /_sandbox/tokens/expire``.
    """
    state = _STATES.get(world)
    if state is None:
        state = _STATES[world] = TwentyFourState(
            token_ttl_seconds=float(world.config.access_token_ttl_seconds)
        )
        world.faults.on_expire_tokens(VENDOR, state.expire_sessions)
        world.on_reset(state.reset)
    return state


# --------------------------------------------------------------------------------------------
# SOAP plumbing
# --------------------------------------------------------------------------------------------


class _SoapFaultError(Exception):
    def __init__(
        self, message: str, *, code: str = "soap:Client", headers: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.headers = dict(headers or {})


def _q(name: str, ns: str = SOAP_NS) -> str:
    return f"{{{ns}}}{name}"


def _ns_of(element: ET.Element) -> str:
    return element.tag[1:].partition("}")[0] if element.tag.startswith("{") else SOAP_NS


def _action(ns: str, operation: str) -> str:
    # The WSDLs' soapAction: "{ns}/{operation}" for the webservices namespace, and
    # namespace + operation for the accounting namespace, which ends with a slash.
    return f"{ns}{operation}" if ns.endswith("/") else f"{ns}/{operation}"


def _fault_response(fault: _SoapFaultError) -> Response:
    envelope = ET.Element(f"{{{SOAP_ENV}}}Envelope")
    body = ET.SubElement(envelope, f"{{{SOAP_ENV}}}Body")
    element = ET.SubElement(body, f"{{{SOAP_ENV}}}Fault")
    ET.SubElement(element, "faultcode").text = fault.code
    ET.SubElement(element, "faultstring").text = fault.message
    ET.SubElement(element, "detail")
    return Response(
        _serialize(envelope),
        status_code=500,
        media_type="text/xml; charset=utf-8",
        headers=fault.headers,
    )


def _serialize(envelope: ET.Element) -> bytes:
    ET.register_namespace("soap", SOAP_ENV)
    ET.register_namespace("", SOAP_NS)
    return bytes(ET.tostring(envelope, encoding="utf-8", xml_declaration=True))


def _result_response(operation: str, result: ET.Element | None, ns: str = SOAP_NS) -> Response:
    envelope = ET.Element(f"{{{SOAP_ENV}}}Envelope")
    body = ET.SubElement(envelope, f"{{{SOAP_ENV}}}Body")
    wrapper = ET.SubElement(body, _q(f"{operation}Response", ns))
    if result is not None:
        wrapper.append(result)
    return Response(_serialize(envelope), media_type="text/xml; charset=utf-8")


def _add(parent: ET.Element, name: str, value: object) -> ET.Element:
    # Children are in their parent's namespace (elementFormDefault="qualified").
    element = ET.SubElement(parent, _q(name, _ns_of(parent)))
    if isinstance(value, bool):
        element.text = "true" if value else "false"
    elif value is not None:
        element.text = str(value)
    return element


async def _parse_envelope(
    request: Request, operations: Iterable[str], ns: str = SOAP_NS
) -> tuple[str, ET.Element]:
    """The operation and its element, checked as ASP.NET checks a SOAP 1.1 request."""
    content_type = request.headers.get("content-type", "")
    if not content_type.startswith("text/xml"):
        # ASP.NET answers SOAP 1.1 only with text/xml; anything else is a client error.
        raise _SoapFaultError(
            f"Unsupported content type {content_type or '(none)'}; SOAP 1.1 requires text/xml."
        )
    raw = await request.body()
    try:
        root = safe_fromstring(raw)
    except (ET.ParseError, DefusedXmlException, ValueError) as exc:
        raise _SoapFaultError(
            f"Server was unable to read request. ---> There is an error in XML document: {exc}"
        ) from None
    if root.tag != f"{{{SOAP_ENV}}}Envelope":
        raise _SoapFaultError(
            "Server was unable to read request: the root is not a SOAP 1.1 Envelope."
        )
    body = root.find(f"{{{SOAP_ENV}}}Body")
    if body is None or len(body) != 1:
        raise _SoapFaultError(
            "Server was unable to read request: the Body must hold one operation."
        )
    element = body[0]
    if not element.tag.startswith(f"{{{ns}}}"):
        raise _SoapFaultError(f"Unknown operation namespace in {element.tag}.")
    operation = element.tag.rpartition("}")[2]
    if operation not in operations:
        raise _SoapFaultError(f"Server did not recognize the operation {operation}.")
    action = request.headers.get("soapaction", "").strip('"')
    if action != _action(ns, operation):
        raise _SoapFaultError(
            f"Server did not recognize the value of HTTP Header SOAPAction: {action}."
        )
    return operation, element


def _text(element: ET.Element, name: str) -> str | None:
    child = element.find(_q(name, _ns_of(element)))
    if child is None or child.text is None:
        return None
    return child.text.strip()


def _required(element: ET.Element, name: str) -> str:
    value = _text(element, name)
    if not value:
        raise _SoapFaultError(f"Required element {name} is missing or empty.")
    return value


def _soap_date(value: str, name: str) -> dt.date:
    try:
        return dt.datetime.fromisoformat(value).date()
    except ValueError:
        raise _SoapFaultError(
            f"The value of {name} is not a valid xs:dateTime: {value!r}."
        ) from None


def _soap_decimal(value: str, name: str) -> Decimal:
    try:
        amount = Decimal(value)
    except InvalidOperation:
        raise _SoapFaultError(
            f"The value of {name} is not a valid xs:decimal: {value!r}."
        ) from None
    if not amount.is_finite():
        raise _SoapFaultError(f"The value of {name} is not a valid xs:decimal: {value!r}.")
    return amount


# --------------------------------------------------------------------------------------------
# Vendor logic shared by SOAP and REST
# --------------------------------------------------------------------------------------------


def _tenants(world: World) -> Mapping[str, Tenant]:
    return world.tenants(VENDOR)


def _enabled(tenant: Tenant) -> bool:
    return tenant.api_enabled and not tenant.blocked


def _company(world: World, client: str) -> CompanyData:
    return _tenants(world)[client].company


def _organization_number(company: CompanyData) -> str:
    return company.business_id.replace("-", "").replace(" ", "")


def _dimension_key(kind: str) -> str:
    return _DIMENSION_KEYS.get(kind, kind)


def _type_of_series(series: str) -> int:
    return _TYPE_BY_SERIES.get(series, 4)


@dataclass
class _PostingLine:
    date: dt.date
    account: str
    amount: Decimal
    description: str
    dimensions: dict[str, str]


def _validate_posting(company: CompanyData, lines: list[_PostingLine]) -> list[tuple[str, str]]:
    """What 24SevenOffice refuses in a posting, as (type, message) pairs."""
    errors: list[tuple[str, str]] = []
    if not lines:
        errors.append(("validation", "A transaction needs at least two lines."))
        return errors
    if len(lines) > MAX_TRANSACTION_LINES:
        errors.append(
            (
                "validation",
                f"A transaction can have at most {MAX_TRANSACTION_LINES} lines, got {len(lines)}.",
            )
        )
    dimension_objects = {
        _dimension_key(dimension.kind): {obj.code: obj for obj in dimension.objects}
        for dimension in company.dimensions
    }
    per_date: dict[dt.date, Decimal] = {}
    for index, line in enumerate(lines, start=1):
        per_date[line.date] = per_date.get(line.date, Decimal(0)) + line.amount
        account = company.account(line.account)
        if account is None:
            errors.append(("validation", f"Line {index}: account {line.account} does not exist."))
        elif not account.active:
            errors.append(("validation", f"Line {index}: account {line.account} is inactive."))
        if line.amount.as_tuple().exponent < -2:  # type: ignore[operator]
            errors.append(("validation", f"Line {index}: amount has more than two decimals."))
        for key, code in line.dimensions.items():
            objects = dimension_objects.get(key)
            if objects is None:
                errors.append(("validation", f"Line {index}: unknown dimension {key}."))
            elif code not in objects:
                errors.append(("validation", f"Line {index}: {key} {code} does not exist."))
            elif not objects[code].active:
                errors.append(("validation", f"Line {index}: {key} {code} is inactive."))
    for day, total in sorted(per_date.items()):
        if total != 0:
            errors.append(
                ("validation", f"The lines dated {day.isoformat()} do not balance ({total}).")
            )
        period = company.period_of(day)
        if period is None:
            errors.append(("closedPeriod", f"No fiscal period exists for {day.isoformat()}."))
        elif period.closed:
            errors.append(("closedPeriod", f"The period containing {day.isoformat()} is closed."))
    return errors


def _save_voucher(
    company: CompanyData, type_no: int, description: str, lines: list[_PostingLine]
) -> VoucherData:
    _title, series = _TYPE_BY_NO[type_no]
    voucher_date = min(line.date for line in lines)
    return company.add_voucher(
        date=voucher_date,
        description=description,
        series=series,
        lines=[
            LineData(
                line_no=index,
                account=line.account,
                amount=line.amount,
                description=line.description,
                dimensions={
                    _DIMENSION_KINDS.get(key, key): code for key, code in line.dimensions.items()
                },
            )
            for index, line in enumerate(lines, start=1)
        ],
    )


# --------------------------------------------------------------------------------------------
# SOAP services
# --------------------------------------------------------------------------------------------


class _Soap:
    def __init__(self, world: World) -> None:
        self.world = world
        self.state = state_of(world)

    # -- sessions --------------------------------------------------------------------------

    def session(self, request: Request) -> tuple[str, _Session] | None:
        session_id = request.cookies.get(SESSION_COOKIE)
        if not session_id:
            return None
        session = self.state.sessions.get(session_id)
        if session is None:
            return None
        session.requests += 1
        limit = self.state.session_max_requests
        if limit is not None and session.requests > limit:
            del self.state.sessions[session_id]
            return None
        return session_id, session

    def require_session(self, request: Request) -> _Session:
        found = self.session(request)
        if found is None:
            # UNCONFIRMED: the wording; 24SevenOffice answers calls without a valid session
            # with a fault, and clients look for "not authenticated" to log in again.
            raise _SoapFaultError("Not authenticated: the session is missing or has expired.")
        return found[1]

    async def apply_faults(self, request: Request, client: str | None) -> Response | None:
        return await _apply_faults(self.world, request, client, soap=True)

    # -- authenticate.asmx -----------------------------------------------------------------

    async def authenticate(self, request: Request) -> Response:
        try:
            operation, element = await _parse_envelope(
                request, ("Login", "HasSession", "GetIdentities", "SetIdentityById")
            )
            found = self.session(request) if operation != "Login" else None
            fault = await self.apply_faults(request, found[1].client if found else None)
            if fault is not None:
                return fault
            if operation == "Login":
                return self.login(element)
            if operation == "HasSession":
                result = ET.Element(_q("HasSessionResult"))
                result.text = "true" if found is not None else "false"
                return _result_response(operation, result)
            if found is None:
                raise _SoapFaultError("Not authenticated: the session is missing or has expired.")
            session = found[1]
            if operation == "GetIdentities":
                return _result_response(operation, self.identities(session))
            return self.set_identity(element, session)
        except _SoapFaultError as fault:
            return _fault_response(fault)

    def login(self, element: ET.Element) -> Response:
        credential = element.find(_q("credential"))
        if credential is None:
            raise _SoapFaultError("Required element credential is missing.")
        application_id = _required(credential, "ApplicationId")
        username = _required(credential, "Username")
        password = _text(credential, "Password") or ""
        identity_id = _text(credential, "IdentityId")
        now = self.world.monotonic()
        window = self.state.logins.setdefault(username.lower(), deque())
        while window and now - window[0] > self.state.login_window_seconds:
            window.popleft()
        if len(window) >= self.state.login_limit:
            # UNCONFIRMED: 24SevenOffice throttles repeated logins; the sandbox answers a
            # fault naming the wait and a Retry-After header, so clients reuse sessions.
            retry_after = max(1, int(self.state.login_window_seconds - (now - window[0])) + 1)
            raise _SoapFaultError(
                f"Too many logins for this user; try again in {retry_after} seconds.",
                code="soap:Server",
                headers={"Retry-After": str(retry_after)},
            )
        window.append(now)
        self.state.login_count += 1
        if application_id not in self.state.application_ids:
            raise _SoapFaultError("The ApplicationId is not registered for API access.")
        user = self.state.users.get(username)
        if user is None or not secrets.compare_digest(user.password, password):
            raise _SoapFaultError("Invalid username or password.")
        tenants = _tenants(self.world)
        clients = [client for client in user.clients if client in tenants]
        if not clients:
            raise _SoapFaultError("The user has no access to any client.")
        client = clients[0]
        if identity_id:
            matching = [c for c in clients if user.identity_of(c) == identity_id]
            if not matching:
                raise _SoapFaultError(f"Identity {identity_id} is not available to this user.")
            client = matching[0]
        if not _enabled(tenants[client]):
            raise _SoapFaultError("API access is not enabled for this client.")
        session_id = secrets.token_hex(12)
        self.state.sessions[session_id] = _Session(username=username, client=client)
        result = ET.Element(_q("LoginResult"))
        result.text = session_id
        response = _result_response("Login", result)
        response.set_cookie(SESSION_COOKIE, session_id, httponly=True, path="/")
        return response

    def identities(self, session: _Session) -> ET.Element:
        user = self.state.users[session.username]
        tenants = _tenants(self.world)
        result = ET.Element(_q("GetIdentitiesResult"))
        for position, client in enumerate(c for c in user.clients if c in tenants):
            company = tenants[client].company
            identity = _add(result, "Identity", None)
            _add(identity, "Id", user.identity_of(client))
            client_element = _add(identity, "Client", None)
            _add(client_element, "Id", client)
            _add(client_element, "Name", company.name)
            # The published Client is Id and Name only (no organisation number, no
            # currency).
            _add(identity, "IsCurrent", client == session.client)
            _add(identity, "IsDefault", position == 0)
            _add(identity, "IsProtected", False)
        return result

    def set_identity(self, element: ET.Element, session: _Session) -> Response:
        identity_id = _required(element, "identityId")
        user = self.state.users[session.username]
        tenants = _tenants(self.world)
        for client in user.clients:
            if client in tenants and user.identity_of(client) == identity_id:
                if not _enabled(tenants[client]):
                    raise _SoapFaultError("API access is not enabled for this client.")
                session.client = client
                return _result_response("SetIdentityById", None)
        raise _SoapFaultError(f"Identity {identity_id} is not available to this user.")

    # -- Accountservice.asmx ---------------------------------------------------------------

    async def account(self, request: Request) -> Response:
        try:
            operation, element = await _parse_envelope(
                request, ("GetAccountList", "GetTypeList", "SaveBundleList")
            )
            found = self.session(request)
            fault = await self.apply_faults(request, found[1].client if found else None)
            if fault is not None:
                return fault
            if operation == "SaveBundleList":
                return self.save_bundle_list(element, found[1] if found else None)
            if found is None:
                raise _SoapFaultError("Not authenticated: the session is missing or has expired.")
            company = _company(self.world, found[1].client)
            if operation == "GetAccountList":
                result = ET.Element(_q("GetAccountListResult"))
                for account in company.accounts:
                    data = _add(result, "AccountData", None)
                    _add(data, "AccountId", account.number)
                    _add(data, "AccountNo", account.number)
                    _add(data, "AccountName", account.name)
                    _add(data, "AccountTax", 0)
                    _add(data, "TaxNo", account.vat_code or 0)
                    # The published AccountData has no active flag (nor a type).
                return _result_response(operation, result)
            result = ET.Element(_q("GetTypeListResult"))
            for no, title, _series in _TRANSACTION_TYPES:
                data = _add(result, "TypeData", None)
                _add(data, "TypeId", no)
                _add(data, "Title", title)
                _add(data, "EntrySeriesId", no)
                _add(data, "TypeNo", no)
            return _result_response(operation, result)
        except _SoapFaultError as fault:
            return _fault_response(fault)

    def save_bundle_list(self, element: ET.Element, session: _Session | None) -> Response:
        def answer(kind: str, description: str) -> Response:
            result = ET.Element(_q("SaveBundleListResult"))
            _add(result, "Type", kind)
            _add(result, "Description", description)
            return _result_response("SaveBundleList", result)

        bundle_list = element.find(_q("BundleList"))
        if bundle_list is None:
            raise _SoapFaultError("Required element BundleList is missing.")
        if session is None:
            return answer("NotAuthenticated", "The session is missing or has expired.")
        company = _company(self.world, session.client)
        allow_difference = (_text(bundle_list, "AllowDifference") or "false") == "true"
        bundles = bundle_list.find(_q("Bundles"))
        if bundles is None or len(bundles) == 0:
            return answer("NotSaved", "The bundle list holds no bundles.")
        saved = self.state.saved_bundles.setdefault(session.client, set())
        parsed: list[tuple[str, int, list[tuple[str, list[_PostingLine]]]]] = []
        for bundle in bundles.findall(_q("Bundle")):
            name = _text(bundle, "Name") or ""
            if name and name in saved:
                return answer("DataAlreadySaved", f"The bundle {name!r} is already saved.")
            # UNCONFIRMED: the transaction type of a bundle. The public WSDL has no type
            # field on Bundle; its Sort (an int, default 0) is read as the type number, 0
            # meaning the manual type 4.
            sort = _text(bundle, "Sort") or "0"
            if not sort.lstrip("-").isdigit():
                raise _SoapFaultError(f"The value of Sort is not a valid xs:int: {sort!r}.")
            type_no = int(sort) or 4
            if type_no not in _TYPE_BY_NO:
                return answer("NotSaved", f"Transaction type {type_no} does not exist.")
            vouchers: list[tuple[str, list[_PostingLine]]] = []
            seen_numbers: set[str] = set()
            container = bundle.find(_q("Vouchers"))
            for voucher in container.findall(_q("Voucher")) if container is not None else []:
                number = _text(voucher, "TransactionNo") or ""
                if number and number in seen_numbers:
                    return answer("DuplicateData", f"Transaction number {number} occurs twice.")
                seen_numbers.add(number)
                lines: list[_PostingLine] = []
                entries = voucher.find(_q("Entries"))
                for entry in entries.findall(_q("Entry")) if entries is not None else []:
                    dimensions: dict[str, str] = {}
                    # Published Entry: DepartmentId and ProjectId (0: none) and
                    # UserDefinedDimensions/UserDefinedDimension{Type, Value}.
                    if (department := _text(entry, "DepartmentId")) not in (None, "", "0"):
                        dimensions["department"] = str(department)
                    if (project := _text(entry, "ProjectId")) not in (None, "", "0"):
                        dimensions["project"] = str(project)
                    user_defined = entry.find(_q("UserDefinedDimensions"))
                    for dimension in (
                        user_defined.findall(_q("UserDefinedDimension"))
                        if user_defined is not None
                        else []
                    ):
                        # UserDefinedDimension.Type is the dimension's TypeId.
                        type_id = _text(dimension, "Type") or ""
                        key = next(
                            (
                                _dimension_key(d.kind)
                                for d in company.dimensions
                                if str(d.id) == type_id and d.kind not in _DIMENSION_TYPES
                            ),
                            None,
                        )
                        if key is None:
                            raise _SoapFaultError(
                                f"Unknown user-defined dimension type {_text(dimension, 'Type')}."
                            )
                        dimensions[key] = _required(dimension, "Value")
                    lines.append(
                        _PostingLine(
                            date=_soap_date(_required(entry, "Date"), "Date"),
                            account=_required(entry, "AccountNo"),
                            amount=_soap_decimal(_required(entry, "Amount"), "Amount"),
                            description=_text(entry, "Comment") or "",
                            dimensions=dimensions,
                        )
                    )
                vouchers.append((number, lines))
            if not vouchers:
                return answer("NotSaved", f"The bundle {name!r} holds no vouchers.")
            parsed.append((name, type_no, vouchers))
        for _name, _type_no, vouchers in parsed:
            for number, lines in vouchers:
                errors = _validate_posting(company, lines)
                if allow_difference:
                    errors = [e for e in errors if "do not balance" not in e[1]]
                if errors:
                    return answer(
                        "NotSaved", f"Voucher {number}: " + " ".join(m for _t, m in errors)
                    )
        for name, type_no, vouchers in parsed:
            for _number, lines in vouchers:
                _save_voucher(company, type_no, name, lines)
            if name:
                saved.add(name)
        return answer("Ok", "")

    # -- TransactionService.asmx -----------------------------------------------------------

    async def transaction(self, request: Request) -> Response:
        try:
            operation, element = await _parse_envelope(
                request,
                (
                    "GetTransactionTypes",
                    "GetTransactions",
                    "GetFiscalYears",
                    "GetUserDefinedDimensions",
                    "GetUserDefinedDimensionValues",
                ),
                ACCOUNTING_NS,
            )
            found = self.session(request)
            fault = await self.apply_faults(request, found[1].client if found else None)
            if fault is not None:
                return fault
            if found is None:
                raise _SoapFaultError("Not authenticated: the session is missing or has expired.")
            company = _company(self.world, found[1].client)
            result = ET.Element(_q(f"{operation}Result", ACCOUNTING_NS))
            if operation == "GetTransactionTypes":
                for no, title, _series in _TRANSACTION_TYPES:
                    data = _add(result, "TransactionType", None)
                    _add(data, "Turnover", False)
                    _add(data, "Title", title)
                    _add(data, "No", no)
                    _add(data, "Id", no)
            elif operation == "GetTransactions":
                self.transactions(element, company, result)
            elif operation == "GetFiscalYears":
                # The published FiscalYear: Id, StartingDate, EndingDate (the last day, as
                # xs:dateTime at midnight; UNCONFIRMED), IsLocked for the whole year.
                for year in company.fiscal_years:
                    data = _add(result, "FiscalYear", None)
                    _add(data, "Id", uuid.uuid5(uuid.NAMESPACE_URL, f"24so-year-{year.start}"))
                    _add(data, "StartingDate", f"{year.start.isoformat()}T00:00:00")
                    _add(data, "EndingDate", f"{year.end.isoformat()}T00:00:00")
                    _add(data, "IsLocked", year.closed)
            elif operation == "GetUserDefinedDimensions":
                for dimension in company.dimensions:
                    data = _add(result, "Dimension", None)
                    _add(data, "Type", _DIMENSION_TYPES.get(dimension.kind, "UserDefined"))
                    _add(data, "Name", dimension.name)
                    _add(data, "TypeId", dimension.id)
            else:
                wanted = _required(element, "DimensionType")
                found_dimension = next((d for d in company.dimensions if str(d.id) == wanted), None)
                if found_dimension is None:
                    raise _SoapFaultError(f"Dimension type {wanted} does not exist.")
                for obj in found_dimension.objects:
                    data = _add(result, "Dimension", None)
                    _add(data, "Type", _DIMENSION_TYPES.get(found_dimension.kind, "UserDefined"))
                    _add(data, "Name", obj.name)
                    _add(data, "Value", obj.code)
                    _add(data, "TypeId", found_dimension.id)
            return _result_response(operation, result, ACCOUNTING_NS)
        except _SoapFaultError as fault:
            return _fault_response(fault)

    def transactions(self, element: ET.Element, company: CompanyData, result: ET.Element) -> None:
        params = element.find(_q("searchParams"))
        if params is None:
            raise _SoapFaultError("Required element searchParams is missing.")
        start = _soap_date(_required(params, "DateStart"), "DateStart")
        end = _soap_date(_required(params, "DateEnd"), "DateEnd")
        if end < start:
            raise _SoapFaultError("DateEnd is before DateStart.")
        # UNCONFIRMED: DateSearchParameters picks what the range filters on: the entry date
        # (default) or the change time (DateChangedUTC), which makes incremental reads work.
        mode = _text(params, "DateSearchParameters") or "EntryDate"
        if mode not in ("EntryDate", "DateChangedUTC"):
            raise _SoapFaultError(f"Unknown DateSearchParameters value {mode}.")
        for voucher in company.vouchers:
            day = voucher.date if mode == "EntryDate" else voucher.modified_at.date()
            if not start <= day <= end:
                continue
            for line in voucher.lines:
                # The published Transaction, in its element order.
                data = _add(result, "Transaction", None)
                _add(data, "Date", f"{voucher.date.isoformat()}T00:00:00")
                _add(data, "AccountNo", line.account)
                _add(data, "Amount", line.amount)
                _add(data, "TransactionTypeId", _type_of_series(voucher.series))
                _add(data, "Comment", line.description)
                _add(data, "TransactionNo", voucher.number)
                _add(
                    data, "Id", uuid.uuid5(uuid.NAMESPACE_URL, f"24so-{voucher.id}-{line.line_no}")
                )
                dims = _add(data, "Dimensions", None)
                for kind, code in line.dimensions.items():
                    dim = _add(dims, "Dimension", None)
                    _add(dim, "Type", _DIMENSION_TYPES.get(kind, "UserDefined"))
                    _add(dim, "Value", code)
                _add(data, "DateChanged", voucher.modified_at.isoformat())
                # UNCONFIRMED: an invalidated (deleted) transaction as Hidden.
                _add(data, "Hidden", voucher.status != "valid")
                _add(data, "Open", False)
                _add(data, "HasVatDividend", False)


# --------------------------------------------------------------------------------------------
# Faults (latency, 5xx, 429, resets) through the core hook, in 24SevenOffice's own words
# --------------------------------------------------------------------------------------------


async def _apply_faults(
    world: World, request: Request, client: str | None, *, soap: bool
) -> Response | None:
    try:
        await world.faults.apply(request, VENDOR, client)
        # UNCONFIRMED: 24SevenOffice publishes no limits; the bucket is per client, and
        # requests before a client is known (login, token) share one bucket.
        world.rate_limiter(VENDOR).take(client or "-")
    except SandboxRateLimited as limited:
        retry_after = limited.retry_after_header
        if soap:
            return _fault_response(
                _SoapFaultError(
                    "Too many requests; slow down.",
                    code="soap:Server",
                    headers={"Retry-After": retry_after},
                )
            )
        return _rest_error(
            429, "rateLimit", "Too many requests.", headers={"Retry-After": retry_after}
        )
    except SandboxServerError as error:
        if soap:
            return Response(
                _fault_response(_SoapFaultError("Internal server error.", code="soap:Server")).body,
                status_code=error.status,
                media_type="text/xml; charset=utf-8",
            )
        return _rest_error(error.status, "internal", "The service is temporarily unavailable.")
    return None


# --------------------------------------------------------------------------------------------
# REST
# --------------------------------------------------------------------------------------------


def _rest_error(
    status: int,
    kind: str,
    message: str,
    *,
    more: Iterable[tuple[str, str]] = (),
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    errors = [{"type": kind, "message": message}]
    errors.extend({"type": t, "message": m} for t, m in more)
    return JSONResponse(
        {"errors": errors, "trackingId": str(uuid.uuid4())},
        status_code=status,
        headers=dict(headers or {}),
    )


class _RestError(Exception):
    def __init__(self, status: int, kind: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.kind = kind
        self.message = message


def _json_default(value: object) -> object:
    if isinstance(value, Decimal):
        return float(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def _json(
    payload: object, *, status: int = 200, headers: Mapping[str, str] | None = None
) -> Response:
    # Amounts are JSON numbers; two-decimal amounts survive the float's shortest repr
    # exactly, so a client parsing with Decimal gets the booked value back.
    body = json.dumps(payload, default=_json_default, ensure_ascii=False)
    return Response(
        body, status_code=status, media_type="application/json", headers=dict(headers or {})
    )


class _Rest:
    def __init__(self, world: World) -> None:
        self.world = world
        self.state = state_of(world)

    async def token(self, request: Request) -> Response:
        fault = await _apply_faults(self.world, request, None, soap=False)
        if fault is not None:
            return fault
        form = await request.form()
        values = {key: str(value) for key, value in form.items()}

        def refuse(error: str, description: str, status: int = 400) -> JSONResponse:
            return JSONResponse(
                {"error": error, "error_description": description}, status_code=status
            )

        if values.get("grant_type") != "client_credentials":
            return refuse("unsupported_grant_type", "Only client_credentials is supported.")
        client = self.state.rest_clients.get(values.get("client_id", ""))
        if client is None or not secrets.compare_digest(
            client.client_secret, values.get("client_secret", "")
        ):
            return refuse("invalid_client", "Unknown client or wrong secret.", 401)
        if values.get("audience") != AUDIENCE:
            return refuse("invalid_request", f"audience must be {AUDIENCE}.")
        organization = values.get("login_organization", "")
        if not organization:
            return refuse("invalid_request", "login_organization is required.")
        tenant = _tenants(self.world).get(organization)
        if tenant is None or organization not in client.organizations:
            return refuse(
                "access_denied", "The application is not installed in this organization.", 403
            )
        if not _enabled(tenant):
            return refuse("access_denied", "API access is not enabled for this organization.", 403)
        token = secrets.token_urlsafe(24)
        self.state.tokens[token] = _AccessToken(
            client.client_id, organization, self.world.clock() + self.state.token_ttl_seconds
        )
        self.state.token_count += 1
        return JSONResponse(
            {
                "access_token": token,
                "token_type": "Bearer",
                "expires_in": int(self.state.token_ttl_seconds),
            },
            headers={"Cache-Control": "no-store"},
        )

    def organization(self, request: Request) -> str:
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise _RestError(401, "unauthorized", "A bearer token is required.")
        info = self.state.tokens.get(token)
        if info is None:
            raise _RestError(401, "unauthorized", "The access token is invalid.")
        if self.world.clock() >= info.expires_at:
            del self.state.tokens[token]
            raise _RestError(401, "unauthorized", "The access token has expired.")
        return info.organization

    async def handle(
        self, request: Request, handler: Callable[[Request, str, CompanyData], Any]
    ) -> Response:
        try:
            organization = self.organization(request)
        except _RestError as error:
            fault = await _apply_faults(self.world, request, None, soap=False)
            return fault or _rest_error(
                error.status,
                error.kind,
                error.message,
                headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
            )
        fault = await _apply_faults(self.world, request, organization, soap=False)
        if fault is not None:
            return fault
        try:
            result = handler(request, organization, _company(self.world, organization))
            if hasattr(result, "__await__"):
                result = await result
        except _RestError as error:
            return _rest_error(error.status, error.kind, error.message)
        assert isinstance(result, Response)
        return result

    # -- resources -------------------------------------------------------------------------

    @staticmethod
    def information(_request: Request, organization: str, company: CompanyData) -> Response:
        return _json(
            {
                "id": organization,
                "name": company.name,
                "organizationNumber": _organization_number(company),
                "country": company.country,
                "currency": company.currency,
            }
        )

    @staticmethod
    def transaction_types(_request: Request, _org: str, _company: CompanyData) -> Response:
        return _json([{"id": no, "name": title} for no, title, _series in _TRANSACTION_TYPES])

    @staticmethod
    def accounts(_request: Request, _org: str, company: CompanyData) -> Response:
        return _json(
            [
                {
                    "number": int(account.number),
                    "name": account.name,
                    "isActive": account.active,
                    "taxCode": account.vat_code,
                }
                for account in company.accounts
            ]
        )

    @staticmethod
    def dimensions(_request: Request, _org: str, company: CompanyData) -> Response:
        return _json(
            [
                {
                    "id": dimension.id,
                    "key": _dimension_key(dimension.kind),
                    "name": dimension.name,
                    "values": [
                        {"code": obj.code, "name": obj.name, "isActive": obj.active}
                        for obj in dimension.objects
                    ],
                }
                for dimension in company.dimensions
            ]
        )

    @staticmethod
    def fiscal_years(_request: Request, _org: str, company: CompanyData) -> Response:
        return _json(
            [
                {
                    "year": year.start.year,
                    "startDate": year.start.isoformat(),
                    "endDate": year.end.isoformat(),
                    "isLocked": year.closed,
                    "periods": [
                        {
                            "period": number,
                            "startDate": period.start.isoformat(),
                            "endDate": period.end.isoformat(),
                            "isLocked": period.closed,
                        }
                        for number, period in enumerate(year.periods, start=1)
                    ],
                }
                for year in company.fiscal_years
            ]
        )

    @staticmethod
    def transaction_lines(request: Request, _org: str, company: CompanyData) -> Response:
        query = request.query_params
        date_from = _query_date(query.get("dateFrom"), "dateFrom", required=True)
        date_to = _query_date(query.get("dateTo"), "dateTo", required=True)
        assert date_from is not None
        assert date_to is not None
        if date_to < date_from:
            raise _RestError(400, "validation", "dateTo is before dateFrom.")
        page = _query_int(query.get("page"), "page", default=1, minimum=1)
        limit = _query_int(
            query.get("limit"),
            "limit",
            default=DEFAULT_PAGE_LIMIT,
            minimum=1,
            maximum=MAX_PAGE_LIMIT,
        )
        include_dimensions = query.get("includeDimensions", "false").lower() == "true"
        # Published: dateTo is exclusive. There is no change-time filter (an unknown query
        # parameter is ignored). UNCONFIRMED: a deleted (here: invalidated) transaction is
        # no longer listed.
        vouchers = [v for v in company.vouchers if v.status == "valid"]
        dimension_types: dict[str, tuple[int, str]] = {
            d.kind: (
                _DIMENSION_TYPE_IDS.get(d.kind, int(d.id) if d.id.isdigit() else 0),
                _DIMENSION_TYPES.get(d.kind, d.name),
            )
            for d in company.dimensions
        }
        # Lines are ordered by transaction then line number; a page can end inside a
        # transaction, as paging is by line.
        selected = [v for v in vouchers if date_from <= v.date < date_to]
        offset = (page - 1) * limit
        items: list[dict[str, object]] = []
        total = 0
        for voucher in selected:
            count = len(voucher.lines)
            if total + count <= offset:
                total += count
                continue
            for line in voucher.lines:
                if total >= offset and len(items) < limit:
                    items.append(
                        _line_json(
                            voucher,
                            line,
                            dimensions=dimension_types if include_dimensions else None,
                        )
                    )
                total += 1
            if len(items) >= limit and total > offset + limit:
                break
        has_next = total > offset + limit
        headers: dict[str, str] = {}
        if has_next:
            params = dict(query)
            params["page"] = str(page + 1)
            params["limit"] = str(limit)
            url = str(request.url.replace(query=urlencode(params)))
            headers["Link"] = f'<{url}>; rel="next"'
        return _json(items, headers=headers)


def _line_json(
    voucher: VoucherData,
    line: LineData,
    *,
    dimensions: Mapping[str, tuple[int, str]] | None,
) -> dict[str, object]:
    """A line in the published ``Transaction`` shape (rest.yaml, components/schemas)."""
    type_no = _type_of_series(voucher.series)
    item: dict[str, object] = {
        "id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"24so-{voucher.id}-{line.line_no}")),
        # UNCONFIRMED: the transaction id; the published example is a GUID, any string is
        # allowed. The sandbox keeps the voucher id.
        "transaction": {"id": str(voucher.id), "number": voucher.number},
        "account": {"id": int(line.account), "number": int(line.account), "name": ""},
        "transactionType": {"id": type_no},
        "amount": line.amount,
        "currency": {"code": "NOK", "rate": 1},
        "date": voucher.date.isoformat(),
        "comment": (line.description or voucher.description)[:75],
        "createdAt": voucher.modified_at.isoformat(),
        "modifiedAt": voucher.modified_at.isoformat(),
    }
    if line.vat_code:
        item["tax"] = {"id": int(line.vat_code) if line.vat_code.isdigit() else 0, "rate": 0}
    if dimensions is not None:
        item["dimensions"] = [
            {
                "dimensionType": dimensions.get(kind, (0, kind))[0],
                "dimensionTypeName": dimensions.get(kind, (0, kind))[1],
                "value": code,
                "name": code,
            }
            for kind, code in line.dimensions.items()
        ]
    return item


def _query_date(value: object, name: str, *, required: bool) -> dt.date | None:
    if value is None:
        if required:
            raise _RestError(400, "validation", f"{name} is required.")
        return None
    if not isinstance(value, str):
        raise _RestError(400, "validation", f"{name} must be a date (YYYY-MM-DD).")
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise _RestError(400, "validation", f"{name} is not a date (YYYY-MM-DD).") from None


def _query_int(
    value: str | None, name: str, *, default: int, minimum: int, maximum: int | None = None
) -> int:
    if value is None:
        return default
    try:
        number = int(value)
    except ValueError:
        raise _RestError(400, "validation", f"{name} must be an integer.") from None
    if number < minimum or (maximum is not None and number > maximum):
        bound = f"between {minimum} and {maximum}" if maximum is not None else f">= {minimum}"
        raise _RestError(400, "validation", f"{name} must be {bound}.")
    return number


# --------------------------------------------------------------------------------------------
# Mounting
# --------------------------------------------------------------------------------------------


def mount(app: FastAPI, world: World) -> None:
    """Serve the 24SevenOffice SOAP services, the REST API and its token endpoint."""
    soap = _Soap(world)
    rest = _Rest(world)
    demo = [t.tenant_id for t in world.vendor_tenants(VENDOR) if t.flags.get("demo")]
    if demo:
        state = state_of(world)
        state.register_application(DEMO_APPLICATION_ID)
        state.add_integration_user(DEMO_USERNAME, DEMO_PASSWORD, demo)
        state.add_rest_client(DEMO_REST_CLIENT_ID, DEMO_REST_CLIENT_SECRET, demo)
    router = APIRouter()
    router.add_api_route(AUTH_PATH, soap.authenticate, methods=["POST"], include_in_schema=False)
    router.add_api_route(ACCOUNT_PATH, soap.account, methods=["POST"], include_in_schema=False)
    router.add_api_route(
        TRANSACTION_PATH, soap.transaction, methods=["POST"], include_in_schema=False
    )
    router.add_api_route(TOKEN_PATH, rest.token, methods=["POST"], include_in_schema=False)

    def get(path: str, handler: Callable[[Request, str, CompanyData], Any]) -> None:
        async def endpoint(request: Request) -> Response:
            return await rest.handle(request, handler)

        router.add_api_route(
            f"{REST_PREFIX}{path}", endpoint, methods=["GET"], include_in_schema=False
        )

    get("/organization/information", rest.information)
    get("/transactiontypes", rest.transaction_types)
    get("/accounts", rest.accounts)
    get("/dimensions", rest.dimensions)
    get("/fiscalyears", rest.fiscal_years)
    get("/transactionlines", rest.transaction_lines)

    app.include_router(router)
