"""Visma Nmbrs stand-in: the SOAP v3 CompanyService and the REST API with OAuth.

Nmbrs is a payroll system; for Ledgerlink it is a *journal source*: the journal entries of
each payroll run are read and posted into a ledger. Nothing is written towards Nmbrs.

SOAP 1.1 at ``/nmbrs/soap/v3/CompanyService.asmx`` (namespace
``https://api.nmbrs.nl/soap/v3/CompanyService``), answered as the ASP.NET ``.asmx`` service
answers:

* every request carries the SOAP header ``AuthHeaderWithDomain{Username, Token, Domain}``;
  anything else is the fault ``1001: Invalid Authentication``;
* ``List_GetAll`` lists the companies of the environment (domain) the user belongs to;
* ``Run_GetList(CompanyId, Year)`` lists the payroll runs (``RunInfo``) of a year;
* ``Journals_GetByRunCompany_v2``, ``Journals_GetByRunCostCenter_v2`` and
  ``Journals_GetByRunCostCenterCostUnitPerYear`` (each ``CompanyId, RunId, Year``) answer the
  journal of a run as an XML *string* (escaped inside the SOAP result):
  ``<transactions><transaction><header><date/><period>3/2025</period></header><lines>
  <line id="0"><dim1/>GL account<dim2/>cost centre<dim3/>cost unit<value/><debitcredit/>
  <description/></line>...``. The company variant totals per GL account (dim2 and dim3
  empty), the cost-centre variant per GL account and cost centre, the cost-centre/cost-unit
  variant per GL account, cost centre and cost unit.
* A run with retroactive changes (an earlier period unlocked) has one ``<transaction>`` per
  corrected period besides the normal one, with the same wage codes, dated and periodised in
  the period it corrects (seed 003: the correction is posted in the period it corrects, with
  the reference of the normal run).

Faults are HTTP 500 ``soap:Server``/``soap:Client`` with the Nmbrs error number in the fault
string (``Server was unable to process request. ---> 1001: Invalid Authentication``), as
client libraries parse it. A company marked as test company, or whose debtor is blocked, is
refused (seed 003: journals cannot be sent for test companies or blocked debtors).

REST under ``/nmbrs/rest``: the identity service's ``/connect/authorize`` (login page,
authorization code + PKCE S256 required) and ``/connect/token``; tokens are debtor-level
(the user's debtor). ``/api/companies``, ``/api/companies/{companyId}/payruns`` and the
UNCONFIRMED ``/api/companies/{companyId}/payruns/{payrunId}/journals``. Errors are
``{"title", "detail", "code"}``; 429 carries ``Retry-After``.

Credentials of a tenant (``Tenant.credentials``): ``username``, ``token``, ``domain``. The
debtor of a tenant is ``Tenant.flags["debtor_id"]`` (default: its domain).
"""

from __future__ import annotations

import calendar
import datetime as dt
import hashlib
import secrets
import uuid
import xml.etree.ElementTree as ET
import zlib
from collections.abc import Iterable, Mapping, Sequence
from decimal import Decimal
from typing import Any, Final, Literal
from xml.sax.saxutils import escape

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import fromstring as safe_fromstring
from fastapi import APIRouter, FastAPI, Request, Response
from fastapi.responses import JSONResponse

from ledgerlink.sandbox.data import PayrollLineData, PayrollRunData
from ledgerlink.sandbox.errors import SandboxRateLimited, SandboxServerError
from ledgerlink.sandbox.oauth import (
    OAuthClient,
    OAuthServer,
    OAuthTokenExpired,
    OAuthTokenInvalid,
    oauth_router,
)
from ledgerlink.sandbox.world import Tenant, World

__all__ = [
    "AUTHORIZE_PATH",
    "DEMO_DOMAIN",
    "DEMO_USERNAME",
    "JOURNAL_OPERATIONS",
    "REST_API",
    "SERVICE_NS",
    "SOAP_ENV",
    "SOAP_PATH",
    "TOKEN_PATH",
    "VENDOR",
    "company_guid",
    "company_id",
    "debtor_of",
    "mount",
    "oauth_server",
    "payrun_guid",
]

VENDOR: Final = "nmbrs"
SERVICE_NS: Final = "https://api.nmbrs.nl/soap/v3/CompanyService"
SOAP_ENV: Final = "http://schemas.xmlsoap.org/soap/envelope/"
SOAP_PATH: Final = "/nmbrs/soap/v3/CompanyService.asmx"
REST_PREFIX: Final = "/nmbrs/rest"
REST_API: Final = f"{REST_PREFIX}/api"
# The identity service (identityservice.nmbrs.com) lives under the REST prefix here.
AUTHORIZE_PATH: Final = f"{REST_PREFIX}/connect/authorize"
TOKEN_PATH: Final = f"{REST_PREFIX}/connect/token"

# Well-known credentials of the demo tenants (``ledgerlink-sandbox serve``), so a person can
# try the sandbox; tests register their own.
DEMO_USERNAME: Final = "payroll@sandbox.invalid"
DEMO_TOKEN: Final = "sandbox-nmbrs-token"  # noqa: S105 - public demo credential of the stand-in
DEMO_DOMAIN: Final = "sandbox"
DEMO_CLIENT_ID: Final = "sandbox-nmbrs-client"
DEMO_REDIRECT_URI: Final = "http://127.0.0.1:8080/callback"
DEMO_PASSWORD: Final = "sandbox"  # noqa: S105 - public demo credential of the stand-in

JournalDetail = Literal["company", "cost_centre", "cost_centre_cost_unit"]

#: The journal operations served and the detail each gives.
JOURNAL_OPERATIONS: Final[Mapping[str, JournalDetail]] = {
    "Journals_GetByRunCompany_v2": "company",
    "Journals_GetByRunCostCenter_v2": "cost_centre",
    "Journals_GetByRunCostCenterCostUnitPerYear": "cost_centre_cost_unit",
}
_OPERATIONS: Final = frozenset({"List_GetAll", "Run_GetList", *JOURNAL_OPERATIONS})

# Nmbrs error numbers (as public client libraries map them).
_INVALID_AUTHENTICATION: Final = (1001, "Invalid Authentication")
# UNCONFIRMED: the numbers and texts Nmbrs uses for a company without API access, a blocked
# debtor and a test company; these are the closest documented numbers (1002 authorization,
# 1004 no valid subscription, 2013 not available on free trial).
_API_NOT_ENABLED: Final = (1002, "Unauthorized Access: the API is not enabled for this company")
_DEBTOR_BLOCKED: Final = (1004, "No valid subscription: the debtor of this company is blocked")
_TEST_COMPANY: Final = (
    2013,
    "Not available for a test company: journals of a company marked as test company "
    "cannot be exported",
)
_UNAUTHORIZED_COMPANY: Final = (2004, "Unauthorized Company")
# UNCONFIRMED: the answer to an unknown run; 2046 is Nmbrs' "not found".
_RUN_NOT_FOUND: Final = (2046, "Not found: no run with this id in this year")


# --------------------------------------------------------------------------------------------
# Identities: company ids, GUIDs, debtors
# --------------------------------------------------------------------------------------------


def company_id(tenant: Tenant) -> int:
    """The SOAP ``CompanyId`` of a tenant (its numeric tenant id, else a stable hash)."""
    if tenant.tenant_id.isdigit():
        return int(tenant.tenant_id)
    return zlib.crc32(tenant.tenant_id.encode()) & 0x7FFFFFFF


def company_guid(tenant: Tenant) -> str:
    """The REST ``companyId`` of a tenant: a GUID, as the REST API identifies companies."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"nmbrs:company:{company_id(tenant)}"))


def payrun_guid(tenant: Tenant, run_id: str) -> str:
    """The REST ``payrunId`` of a run."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"nmbrs:payrun:{company_id(tenant)}:{run_id}"))


def debtor_of(tenant: Tenant) -> str:
    """The debtor a company belongs to (REST tokens are per debtor)."""
    return str(tenant.flags.get("debtor_id") or tenant.credentials.get("domain") or "")


def oauth_server(world: World) -> OAuthServer:
    """The Nmbrs identity service (PKCE required, rotating refresh tokens)."""
    return world.oauth_server(VENDOR, require_pkce=True, name="Visma Nmbrs")


class _RefusalError(Exception):
    """A company Nmbrs will not serve: error number and text."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def _check_company(tenant: Tenant, *, journals: bool) -> None:
    """Refuse what Nmbrs refuses for this company; journals also refuse test companies."""
    if tenant.blocked:
        raise _RefusalError(*_DEBTOR_BLOCKED)
    if not tenant.api_enabled:
        raise _RefusalError(*_API_NOT_ENABLED)
    if journals and tenant.test_company:
        raise _RefusalError(*_TEST_COMPANY)


# --------------------------------------------------------------------------------------------
# Runs and journals, vendor-neutral
# --------------------------------------------------------------------------------------------


def _normal_runs(tenant: Tenant, year: int) -> list[PayrollRunData]:
    return sorted(
        tenant.company.normal_runs(year), key=lambda run: (run.period, _run_number(run.run_id))
    )


def _run_number(run_id: str) -> int:
    return int(run_id) if run_id.isdigit() else zlib.crc32(run_id.encode()) & 0x7FFFFFFF


def _find_run(tenant: Tenant, run_number: int, year: int) -> list[PayrollRunData]:
    """The entries (normal first, then corrections) of the run with this id in ``year``."""
    for run in _normal_runs(tenant, year):
        if _run_number(run.run_id) == run_number:
            entries = tenant.company.run_entries(run.run_id)
            return sorted(entries, key=lambda entry: (entry.kind != "normal", entry.posting_period))
    raise _RefusalError(*_RUN_NOT_FOUND)


def _entry_date(entry: PayrollRunData) -> dt.date:
    """A normal entry keeps the run date; a correction is dated in the period it corrects."""
    if entry.corrects_period is None:
        return entry.date
    month = entry.corrects_period
    last_day = calendar.monthrange(entry.year, month)[1]
    return dt.date(entry.year, month, min(entry.date.day, last_day))


_GroupKey = tuple[str, str, str, str, str]


def _aggregate(
    lines: Iterable[PayrollLineData], detail: JournalDetail
) -> list[tuple[str, str, str, Decimal, str, str]]:
    """Journal lines at ``detail``: (account, centre, unit, amount, side, description).

    Lines are totalled per GL account, side and wage code, and per cost centre / cost unit
    when the variant shows them, in the order they first appear.
    """
    totals: dict[_GroupKey, Decimal] = {}
    descriptions: dict[_GroupKey, str] = {}
    for line in lines:
        centre = (line.cost_centre or "") if detail != "company" else ""
        unit = (line.cost_unit or "") if detail == "cost_centre_cost_unit" else ""
        key = (line.gl_account, centre, unit, line.debit_credit, line.wage_code)
        totals[key] = totals.get(key, Decimal(0)) + line.amount
        descriptions.setdefault(key, line.description)
    return [
        (account, centre, unit, amount, side, descriptions[(account, centre, unit, side, code)])
        for (account, centre, unit, side, code), amount in totals.items()
    ]


def _journal_xml(entries: Sequence[PayrollRunData], detail: JournalDetail) -> str:
    """The journal document Nmbrs answers (as a string, escaped again inside SOAP)."""
    parts = ["<transactions>"]
    for entry in entries:
        parts.append("<transaction><header>")
        parts.append(f"<date>{_entry_date(entry).isoformat()}</date>")
        parts.append(f"<period>{entry.posting_period}/{entry.year}</period>")
        parts.append("</header><lines>")
        for index, (account, centre, unit, amount, side, text) in enumerate(
            _aggregate(entry.lines, detail)
        ):
            parts.append(
                f'<line id="{index}"><dim1>{escape(account)}</dim1><dim2>{escape(centre)}</dim2>'
                f"<dim3>{escape(unit)}</dim3><value>{amount:.2f}</value>"
                f"<debitcredit>{'debit' if side == 'D' else 'credit'}</debitcredit>"
                f"<description>{escape(text)}</description></line>"
            )
        parts.append("</lines></transaction>")
    parts.append("</transactions>")
    return "".join(parts)


def _run_at(run: PayrollRunData) -> str:
    return dt.datetime.combine(run.date, dt.time(18, 0)).isoformat()


def _is_locked(tenant: Tenant, run: PayrollRunData) -> bool:
    last_day = calendar.monthrange(run.year, run.period)[1]
    lock = tenant.company.lock_date
    return lock is not None and dt.date(run.year, run.period, last_day) <= lock


# --------------------------------------------------------------------------------------------
# SOAP
# --------------------------------------------------------------------------------------------


class _SoapFault(Exception):  # noqa: N818 - a SOAP fault to answer, named as SOAP names it
    def __init__(
        self,
        message: str,
        *,
        code: str = "soap:Server",
        status: int = 500,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.status = status
        self.headers = dict(headers or {})

    @classmethod
    def nmbrs(cls, code: int, message: str) -> _SoapFault:
        """A fault carrying an Nmbrs error number, worded as the .asmx service words it."""
        return cls(f"Server was unable to process request. ---> {code}: {message}")


def _envelope(body: str) -> str:
    return (
        '<?xml version="1.0" encoding="utf-8"?>'
        f'<soap:Envelope xmlns:soap="{SOAP_ENV}" '
        'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" '
        'xmlns:xsd="http://www.w3.org/2001/XMLSchema">'
        f"<soap:Body>{body}</soap:Body></soap:Envelope>"
    )


def _fault_response(fault: _SoapFault) -> Response:
    body = (
        f"<soap:Fault><faultcode>{fault.code}</faultcode>"
        f"<faultstring>{escape(fault.message)}</faultstring><detail /></soap:Fault>"
    )
    return Response(
        _envelope(body),
        status_code=fault.status,
        media_type="text/xml; charset=utf-8",
        headers=fault.headers,
    )


def _result_response(operation: str, result: str) -> Response:
    body = (
        f'<{operation}Response xmlns="{SERVICE_NS}">'
        f"<{operation}Result>{result}</{operation}Result></{operation}Response>"
    )
    return Response(_envelope(body), media_type="text/xml; charset=utf-8")


def _q(name: str) -> str:
    return f"{{{SERVICE_NS}}}{name}"


class _SoapRequest:
    """A parsed request: operation, its element and the auth header (if any)."""

    def __init__(self, operation: str, element: ET.Element, auth: ET.Element | None) -> None:
        self.operation = operation
        self.element = element
        self.auth = auth

    def text(self, name: str) -> str | None:
        child = self.element.find(_q(name))
        if child is None or child.text is None:
            return None
        return child.text.strip()

    def integer(self, name: str) -> int:
        """An ``int`` parameter as XmlSerializer reads it: missing means 0."""
        value = self.text(name)
        if value is None or value == "":
            return 0
        try:
            return int(value)
        except ValueError:
            raise _SoapFault(
                "Server was unable to read request. ---> There is an error in XML document. "
                f"---> Input string was not in a correct format ({name}).",
                code="soap:Client",
            ) from None


async def _parse(request: Request) -> _SoapRequest:
    """The request, checked as ASP.NET checks a SOAP 1.1 request."""
    content_type = request.headers.get("content-type", "")
    if not content_type.startswith("text/xml"):
        raise _SoapFault(
            f"Unsupported content type {content_type or '(none)'}; SOAP 1.1 requires text/xml.",
            code="soap:Client",
            status=415,
        )
    try:
        root = safe_fromstring(await request.body())
    except (ET.ParseError, DefusedXmlException, ValueError) as exc:
        raise _SoapFault(
            f"Server was unable to read request. ---> There is an error in XML document: {exc}",
            code="soap:Client",
        ) from None
    if root.tag != f"{{{SOAP_ENV}}}Envelope":
        raise _SoapFault(
            "Server was unable to read request: the root is not a SOAP 1.1 Envelope.",
            code="soap:Client",
        )
    body = root.find(f"{{{SOAP_ENV}}}Body")
    if body is None or len(body) != 1:
        raise _SoapFault(
            "Server was unable to read request: the Body must hold one operation.",
            code="soap:Client",
        )
    element = body[0]
    operation = element.tag.rpartition("}")[2]
    action = request.headers.get("soapaction", "").strip().strip('"')
    if (
        not element.tag.startswith(f"{{{SERVICE_NS}}}")
        or operation not in _OPERATIONS
        or action != f"{SERVICE_NS}/{operation}"
    ):
        raise _SoapFault(
            f"Server did not recognize the value of HTTP Header SOAPAction: {action}.",
            code="soap:Client",
        )
    header = root.find(f"{{{SOAP_ENV}}}Header")
    auth = header.find(_q("AuthHeaderWithDomain")) if header is not None else None
    return _SoapRequest(operation, element, auth)


def _credentials_match(tenant: Tenant, username: str, token: str, domain: str) -> bool:
    stored = tenant.credentials
    if not stored.get("username") or not stored.get("token"):
        return False
    # Each comparison runs in constant time; all three always run.
    checks = [
        secrets.compare_digest(stored.get("username", "").encode(), username.encode()),
        secrets.compare_digest(stored.get("token", "").encode(), token.encode()),
        secrets.compare_digest(stored.get("domain", "").encode(), domain.encode()),
    ]
    return all(checks)


class _Soap:
    def __init__(self, world: World) -> None:
        self.world = world

    def _tenant_by_company(self, company: int) -> Tenant | None:
        return self.world.find_tenant(VENDOR, lambda tenant: company_id(tenant) == company)

    def _authenticate(self, parsed: _SoapRequest) -> list[Tenant]:
        """The companies the user may see, or the 1001 fault."""
        auth = parsed.auth

        def field(name: str) -> str:
            child = auth.find(_q(name)) if auth is not None else None
            return (child.text or "").strip() if child is not None else ""

        username, token, domain = field("Username"), field("Token"), field("Domain")
        if not (username and token and domain):
            raise _SoapFault.nmbrs(*_INVALID_AUTHENTICATION)
        visible = [
            tenant
            for tenant in self.world.vendor_tenants(VENDOR)
            if _credentials_match(tenant, username, token, domain)
        ]
        if not visible:
            raise _SoapFault.nmbrs(*_INVALID_AUTHENTICATION)
        return visible

    async def handle(self, request: Request) -> Response:
        try:
            parsed = await _parse(request)
            tenant: Tenant | None = None
            if parsed.operation != "List_GetAll":
                tenant = self._tenant_by_company(parsed.integer("CompanyId"))
            username = parsed.auth.findtext(_q("Username")) if parsed.auth is not None else None
            limited = await _apply_faults(
                self.world,
                request,
                tenant.tenant_id if tenant else None,
                soap=True,
                key=(username or "").strip() or None,
            )
            if limited is not None:
                return limited
            visible = self._authenticate(parsed)
            if parsed.operation == "List_GetAll":
                return _result_response(parsed.operation, self._companies(visible))
            if tenant is None or tenant not in visible:
                raise _SoapFault.nmbrs(*_UNAUTHORIZED_COMPANY)
            journals = parsed.operation in JOURNAL_OPERATIONS
            try:
                _check_company(tenant, journals=journals)
                if parsed.operation == "Run_GetList":
                    result = self._runs(tenant, parsed.integer("Year"))
                else:
                    entries = _find_run(tenant, parsed.integer("RunId"), parsed.integer("Year"))
                    result = escape(_journal_xml(entries, JOURNAL_OPERATIONS[parsed.operation]))
            except _RefusalError as refusal:
                raise _SoapFault.nmbrs(refusal.code, refusal.message) from None
            return _result_response(parsed.operation, result)
        except _SoapFault as fault:
            return _fault_response(fault)

    @staticmethod
    def _companies(visible: Iterable[Tenant]) -> str:
        parts = []
        for number, tenant in enumerate(visible, start=1):
            company = tenant.company
            parts.append(
                f"<Company><ID>{company_id(tenant)}</ID><Number>{number}</Number>"
                f"<Name>{escape(company.name)}</Name><PhoneNumber /><FaxNumber /><Email />"
                f"<Website /><LoonaangifteTijdvak>Month</LoonaangifteTijdvak>"
                f"<KvkNr>{escape(company.business_id)}</KvkNr></Company>"
            )
        return "".join(parts)

    @staticmethod
    def _runs(tenant: Tenant, year: int) -> str:
        parts = []
        for number, run in enumerate(_normal_runs(tenant, year), start=1):
            parts.append(
                f"<RunInfo><ID>{_run_number(run.run_id)}</ID><Number>{number}</Number>"
                f"<Year>{run.year}</Year><PeriodStart>{run.period}</PeriodStart>"
                f"<PeriodEnd>{run.period}</PeriodEnd>"
                f"<Description>{escape(run.reference)}</Description>"
                f"<RunAt>{_run_at(run)}</RunAt>"
                f"<IsLocked>{'true' if _is_locked(tenant, run) else 'false'}</IsLocked></RunInfo>"
            )
        return "".join(parts)


# --------------------------------------------------------------------------------------------
# Faults (latency, 5xx, 429, resets) through the core hook, in Nmbrs' own words
# --------------------------------------------------------------------------------------------


async def _apply_faults(
    world: World, request: Request, tenant: str | None, *, soap: bool, key: str | None = None
) -> Response | None:
    try:
        await world.faults.apply(request, VENDOR, tenant)
        # UNCONFIRMED: Nmbrs publishes no limits; the bucket is per company, and requests
        # that name no company (company lists) use one bucket per caller (SOAP user name,
        # REST token).
        world.rate_limiter(VENDOR).take(tenant or key or "-")
    except SandboxRateLimited as limited:
        headers = {"Retry-After": limited.retry_after_header}
        if soap:
            return _fault_response(
                _SoapFault("Too many requests; slow down.", status=429, headers=headers)
            )
        return _rest_error(429, "Too Many Requests", "Rate limit exceeded.", headers=headers)
    except SandboxServerError as error:
        if soap:
            return _fault_response(
                _SoapFault("The service is temporarily unavailable.", status=error.status)
            )
        return _rest_error(
            error.status, "Service Unavailable", "The service is temporarily unavailable."
        )
    return None


# --------------------------------------------------------------------------------------------
# REST
# --------------------------------------------------------------------------------------------


def _rest_error(
    status: int,
    title: str,
    detail: str,
    *,
    code: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    return JSONResponse(
        {"title": title, "detail": detail, "code": code or str(status)},
        status_code=status,
        headers=dict(headers or {}),
    )


class _RestError(Exception):
    def __init__(
        self,
        status: int,
        title: str,
        detail: str,
        code: str,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.response = _rest_error(status, title, detail, code=code, headers=headers)


_MAX_PAGE_SIZE: Final = 100
_DEFAULT_PAGE_SIZE: Final = 100


def _int_query(request: Request, name: str, default: int, low: int, high: int) -> int:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise _RestError(
            400, "Bad Request", f"{name} must be an integer.", "InvalidParameter"
        ) from None
    if not low <= value <= high:
        raise _RestError(
            400, "Bad Request", f"{name} must be between {low} and {high}.", "InvalidParameter"
        )
    return value


def _page(request: Request, items: Sequence[dict[str, Any]]) -> dict[str, Any]:
    # UNCONFIRMED: the REST API's paging shape; page numbers from 1, a total count.
    page = _int_query(request, "page", 1, 1, 1_000_000)
    size = _int_query(request, "pageSize", _DEFAULT_PAGE_SIZE, 1, _MAX_PAGE_SIZE)
    total_pages = -(-len(items) // size)
    start = (page - 1) * size
    return {
        "data": list(items[start : start + size]),
        "pagination": {
            "page": page,
            "pageSize": size,
            "totalItems": len(items),
            "totalPages": total_pages,
        },
    }


def _journal_json(entries: Sequence[PayrollRunData]) -> list[dict[str, Any]]:
    return [
        {
            "date": _entry_date(entry).isoformat(),
            "period": {"year": entry.year, "period": entry.posting_period},
            "lines": [
                {
                    "id": index,
                    "generalLedgerAccount": account,
                    "costCenter": centre or None,
                    "costUnit": unit or None,
                    "value": f"{amount:.2f}",
                    "debitCredit": "debit" if side == "D" else "credit",
                    "description": text,
                }
                for index, (account, centre, unit, amount, side, text) in enumerate(
                    _aggregate(entry.lines, "cost_centre_cost_unit")
                )
            ],
        }
        for entry in entries
    ]


def _payrun_json(tenant: Tenant, run: PayrollRunData, number: int) -> dict[str, Any]:
    return {
        "payrunId": payrun_guid(tenant, run.run_id),
        "number": number,
        "year": run.year,
        "periodStart": run.period,
        "periodEnd": run.period,
        "description": run.reference,
        "runAt": _run_at(run),
        "isLocked": _is_locked(tenant, run),
    }


class _Rest:
    def __init__(self, world: World) -> None:
        self.world = world

    def _debtor(self, request: Request) -> str:
        header = request.headers.get("authorization")
        try:
            info = oauth_server(self.world).authenticate(header)
        except OAuthTokenExpired:
            raise _RestError(
                401,
                "Unauthorized",
                "The access token has expired.",
                "TokenExpired",
                {"WWW-Authenticate": 'Bearer error="invalid_token"'},
            ) from None
        except OAuthTokenInvalid:
            raise _RestError(
                401,
                "Unauthorized",
                "The access token is missing or invalid.",
                "InvalidToken",
                {"WWW-Authenticate": 'Bearer error="invalid_token"'},
            ) from None
        return info.tenant or ""

    def _companies(self, debtor: str) -> list[Tenant]:
        return [t for t in self.world.vendor_tenants(VENDOR) if debtor_of(t) == debtor]

    def _company(self, debtor: str, guid: str, *, journals: bool) -> Tenant:
        tenant = next((t for t in self._companies(debtor) if company_guid(t) == guid), None)
        if tenant is None:
            raise _RestError(404, "Not Found", "Company not found.", "CompanyNotFound")
        try:
            _check_company(tenant, journals=journals)
        except _RefusalError as refusal:
            raise _RestError(403, "Forbidden", refusal.message, str(refusal.code)) from None
        return tenant

    async def handle(self, request: Request, company: str | None = None) -> Response:
        tenant = None
        if company is not None:
            tenant = self.world.find_tenant(VENDOR, lambda t: company_guid(t) == company)
        # The bucket of a caller is keyed by a digest of its token, never the token itself.
        authorization = request.headers.get("authorization", "")
        key = hashlib.sha256(authorization.encode()).hexdigest()[:16]
        limited = await _apply_faults(
            self.world, request, tenant.tenant_id if tenant else None, soap=False, key=key
        )
        if limited is not None:
            return limited
        try:
            debtor = self._debtor(request)
            path = request.scope.get("route")
            name = getattr(path, "name", "")
            if name == "companies":
                return JSONResponse(_page(request, self._company_list(debtor)))
            if name == "payruns":
                return JSONResponse(self._payruns(request, debtor, company or ""))
            return JSONResponse(
                self._journals(debtor, company or "", request.path_params["payrun"])
            )
        except _RestError as error:
            return error.response

    def _company_list(self, debtor: str) -> list[dict[str, Any]]:
        return [
            {
                "companyId": company_guid(tenant),
                "number": number,
                "name": tenant.company.name,
                "kvkNumber": tenant.company.business_id,
                "debtorId": debtor,
            }
            for number, tenant in enumerate(self._companies(debtor), start=1)
        ]

    def _payruns(self, request: Request, debtor: str, guid: str) -> dict[str, Any]:
        tenant = self._company(debtor, guid, journals=False)
        if "year" not in request.query_params:
            raise _RestError(400, "Bad Request", "year is required.", "InvalidParameter")
        year = _int_query(request, "year", 0, 1900, 2999)
        items = [
            _payrun_json(tenant, run, number)
            for number, run in enumerate(_normal_runs(tenant, year), start=1)
        ]
        return _page(request, items)

    def _journals(self, debtor: str, guid: str, payrun: str) -> dict[str, Any]:
        # UNCONFIRMED: no public REST journal endpoint was found; this one answers the same
        # content as the SOAP cost-centre/cost-unit journal, as JSON.
        tenant = self._company(debtor, guid, journals=True)
        for run in tenant.company.normal_runs():
            if payrun_guid(tenant, run.run_id) == payrun:
                number = _normal_runs(tenant, run.year).index(run) + 1
                entries = sorted(
                    tenant.company.run_entries(run.run_id),
                    key=lambda entry: (entry.kind != "normal", entry.posting_period),
                )
                return {
                    "payrun": _payrun_json(tenant, run, number),
                    "transactions": _journal_json(entries),
                }
        raise _RestError(404, "Not Found", "Payrun not found.", "PayrunNotFound")


# --------------------------------------------------------------------------------------------
# Mounting
# --------------------------------------------------------------------------------------------


def _setup_demo(world: World) -> None:
    demo = [t for t in world.vendor_tenants(VENDOR) if t.flags.get("demo")]
    if not demo:
        return
    server = oauth_server(world)
    for tenant in demo:
        if not tenant.credentials:
            tenant.credentials.update(
                {"username": DEMO_USERNAME, "token": DEMO_TOKEN, "domain": DEMO_DOMAIN}
            )
    server.register_client(
        OAuthClient(DEMO_CLIENT_ID, None, redirect_uri=DEMO_REDIRECT_URI, require_pkce=True)
    )
    server.add_user(DEMO_USERNAME, DEMO_PASSWORD, tenant=debtor_of(demo[0]))


def mount(app: FastAPI, world: World) -> None:
    """Serve the Nmbrs SOAP CompanyService, the REST API and its identity service."""
    _setup_demo(world)
    soap = _Soap(world)
    rest = _Rest(world)
    router = APIRouter()
    router.add_api_route(SOAP_PATH, soap.handle, methods=["POST"], include_in_schema=False)

    async def companies(request: Request) -> Response:
        return await rest.handle(request)

    async def payruns(request: Request, company: str) -> Response:
        return await rest.handle(request, company)

    async def journals(request: Request, company: str, payrun: str) -> Response:
        return await rest.handle(request, company)

    router.add_api_route(
        f"{REST_API}/companies",
        companies,
        methods=["GET"],
        name="companies",
        include_in_schema=False,
    )
    router.add_api_route(
        f"{REST_API}/companies/{{company}}/payruns",
        payruns,
        methods=["GET"],
        name="payruns",
        include_in_schema=False,
    )
    router.add_api_route(
        f"{REST_API}/companies/{{company}}/payruns/{{payrun}}/journals",
        journals,
        methods=["GET"],
        name="journals",
        include_in_schema=False,
    )
    app.include_router(router)
    app.include_router(
        oauth_router(
            oauth_server(world),
            authorize_path=AUTHORIZE_PATH,
            token_path=TOKEN_PATH,
        )
    )
