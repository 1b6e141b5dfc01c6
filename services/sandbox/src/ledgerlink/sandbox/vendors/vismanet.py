"""Visma.net ERP and Visma Connect stand-in.

Identity (``/visma-connect/connect/authorize`` and ``/visma-connect/connect/token``):

* client credentials: ``scope`` made of ``vismanet_erp_service_api:read|create|update|delete``
  and ``tenant_id`` = the customer's tenant GUID. A company-level id given instead (the
  company's own tenant GUID from the App Store, or its numeric company id) still gets a token,
  since Visma Connect knows that tenant, but every ERP call then answers IPPException 12027
  "No license for this company." (the Visma knowledge base names exactly this mistake). An
  unknown tenant, or one that has not approved the client, is refused at the token endpoint.
* authorization code + PKCE (S256, required): ``vismanet_erp_interactive_api:*`` plus
  ``openid profile email tenants offline_access``; a refresh token only with
  ``offline_access``; refresh tokens rotate and expire (the core OAuth server).

ERP API under ``/vismanet`` (``/v1/...`` and ``/v2/...``, as ``api.finance.visma.net``):
journal transactions (create, list with line-based paging, read, update with ETag/If-Match,
release), accounts, subaccounts, dimensions (subaccount segments), financial periods,
branches and general ledger balances. Interactive tokens choose the company with the
``ipp-company-id`` header (missing or not allowed: IPPException 12002); service tokens are
bound to their tenant's company.

Errors: IPPException bodies for the documented fault codes (12002, 12027), ``{"message"}``
for validation and business-rule refusals, ASP.NET's default body for a refused bearer token.
Every answer of the ERP API carries ``X-RateLimit-Limit/-Remaining/-Reset/-Policy``
(a fixed window per client and company, Visma's "4-fixed-window"); 429 with ``Retry-After``.

The Visma-specific state (test clients, client approvals, extra companies of users) lives in
:class:`VismaNetState` (:func:`state_of`); per-company journal extras (status, branch,
reference numbers, financial period) in ``Tenant.state``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
import re
import uuid
import weakref
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any, Final, Literal

from fastapi import APIRouter, FastAPI, Request, Response
from fastapi.responses import JSONResponse

from ledgerlink.sandbox.data import CompanyData, LineData, PeriodData, VoucherData
from ledgerlink.sandbox.errors import SandboxRateLimited, SandboxServerError
from ledgerlink.sandbox.oauth import (
    ClientCredentialsGrant,
    OAuthClient,
    OAuthError,
    OAuthServer,
    OAuthTokenInvalid,
    OAuthUser,
    TokenInfo,
    oauth_router,
)
from ledgerlink.sandbox.world import Tenant, World

__all__ = [
    "API_PREFIX",
    "AUTHORIZE_PATH",
    "IDENTITY_SCOPES",
    "INTERACTIVE_SCOPE_PREFIX",
    "SERVICE_SCOPE_PREFIX",
    "TOKEN_PATH",
    "VENDOR",
    "VismaNetState",
    "add_user",
    "companies_of_user",
    "company_id",
    "company_tenant_id",
    "mount",
    "oauth_server",
    "register_client",
    "state_of",
]

VENDOR: Final = "vismanet"
API_PREFIX: Final = "/vismanet"
AUTHORIZE_PATH: Final = "/visma-connect/connect/authorize"
TOKEN_PATH: Final = "/visma-connect/connect/token"  # noqa: S105 - a path, not a secret
#: Visma Connect's RFC 7009 revocation endpoint (IdentityServer's connect/revocation).
REVOCATION_PATH: Final = "/visma-connect/connect/revocation"

SERVICE_SCOPE_PREFIX: Final = "vismanet_erp_service_api:"
INTERACTIVE_SCOPE_PREFIX: Final = "vismanet_erp_interactive_api:"
OPERATIONS: Final = ("read", "create", "update", "delete")
IDENTITY_SCOPES: Final = frozenset({"openid", "profile", "email", "tenants", "offline_access"})
SERVICE_SCOPES: Final = frozenset(SERVICE_SCOPE_PREFIX + op for op in OPERATIONS)
INTERACTIVE_SCOPES: Final = frozenset(INTERACTIVE_SCOPE_PREFIX + op for op in OPERATIONS)

# Visma documents 15,000 calls/hour/company and 500 for test clients: test clients get this
# share of the configured limit.
TEST_CLIENT_SHARE: Final = 500 / 15_000
RATE_LIMIT_POLICY: Final = "4-fixed-window"
# UNCONFIRMED: the largest pageSize accepted; a careful vendor caps it (1000 here).
MAX_PAGE_SIZE: Final = 1000
# UNCONFIRMED: GL reference numbers are short (15 characters, as Acumatica's RefNbr).
MAX_REFERENCE_LENGTH: Final = 15
MAX_DESCRIPTION_LENGTH: Final = 255

#: The dimension holding the subaccount segments (UNCONFIRMED id, as Acumatica names it).
SUBACCOUNT_DIMENSION: Final = "SUBACCOUNT"
#: Subaccount segment id per dimension kind: cost centre in segment 1, cost unit in 2.
SEGMENT_OF_KIND: Final[Mapping[str, int]] = {"cost_centre": 1, "cost_unit": 2}
KIND_OF_SEGMENT: Final[Mapping[int, str]] = {v: k for k, v in SEGMENT_OF_KIND.items()}

# Visma.net has four account types; equity accounts are liability-type accounts there.
_ACCOUNT_TYPES: Final[Mapping[str, str]] = {
    "asset": "Asset",
    "liability": "Liability",
    "equity": "Liability",
    "revenue": "Income",
    "expense": "Expense",
}

# Well-known credentials of the demo tenants (``ledgerlink-sandbox serve``) so a person can
# try the sandbox; tests register their own.
DEMO_CLIENT_ID: Final = "isv_ledgerlink_sandbox"
DEMO_CLIENT_SECRET: Final = "sandbox-secret"  # noqa: S105 - a public demo credential
DEMO_INTERACTIVE_CLIENT_ID: Final = "isv_ledgerlink_sandbox_web"
DEMO_REDIRECT_URI: Final = "http://127.0.0.1:8000/oauth/visma/callback"
#: Auth's connection pages' client (its redirect URI: ``SandboxConfig.visma_pages_redirect_uri``).
DEMO_PAGES_CLIENT_ID: Final = "isv_ledgerlink_pages"
DEMO_USERNAME: Final = "demo@sandbox.invalid"
DEMO_PASSWORD: Final = "sandbox"  # noqa: S105 - a public demo credential

# JournalTransactionStatusEnum of the published OpenAPI (Pionect/visma-php-sdk
# src/Enums/JournalTransactionStatusEnum.php): "Hold" and "Voided", not "On hold"/"Void".
BatchStatus = Literal["Hold", "Balanced", "Unposted", "Posted", "Voided"]


# --------------------------------------------------------------------------------------------
# State
# --------------------------------------------------------------------------------------------


@dataclass
class _Window:
    start: float
    used: int


@dataclass
class VismaNetState:
    """Visma-specific state beside the world: clients, approvals, users' companies, limits."""

    #: Clients registered as test clients (lower rate limit, as Visma's test clients).
    test_clients: set[str] = field(default_factory=set)
    #: client id -> tenant ids that approved the client (``None``: every tenant).
    approvals: dict[str, set[str] | None] = field(default_factory=dict)
    #: user subject -> company ids the user may choose besides their tenant's.
    user_companies: dict[str, set[str]] = field(default_factory=dict)
    #: Subjects whose rights (role template) do not allow writing: their interactive
    #: grants are narrowed to ``vismanet_erp_interactive_api:read``.
    read_only_users: set[str] = field(default_factory=set)
    #: Fixed rate-limit windows per (client, company).
    windows: dict[str, _Window] = field(default_factory=dict)

    def reset(self) -> None:
        """What :meth:`World.reset` forgets: the rate windows (clients and users stay)."""
        self.windows.clear()


_STATES: weakref.WeakKeyDictionary[World, VismaNetState] = weakref.WeakKeyDictionary()


def state_of(world: World) -> VismaNetState:
    """The Visma.net state of ``world`` (made on first use)."""
    state = _STATES.get(world)
    if state is None:
        state = _STATES[world] = VismaNetState()
        world.on_reset(state.reset)
    return state


def company_id(tenant: Tenant) -> str:
    """The numeric Visma.net company id of a tenant's company (``ipp-company-id``).

    Deterministic from the tenant id unless the tenant was added with ``company_id=...``.
    """
    given = tenant.flags.get("company_id")
    if given is not None:
        return str(given)
    digest = hashlib.sha256(f"company:{tenant.tenant_id}".encode()).digest()
    return str(1_000_000 + int.from_bytes(digest[:4], "big") % 9_000_000)


def company_tenant_id(tenant: Tenant) -> str:
    """The company-level tenant GUID (what a customer may wrongly hand out as tenant id)."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"visma-company-tenant:{tenant.tenant_id}"))


def _validate_client_credentials(world: World) -> Callable[..., ClientCredentialsGrant]:
    def validate(
        client: OAuthClient, extra: Mapping[str, str], scopes: frozenset[str]
    ) -> ClientCredentialsGrant:
        if not scopes:
            raise OAuthError("invalid_scope", "scope is required")
        if not scopes <= SERVICE_SCOPES:
            raise OAuthError(
                "invalid_scope",
                "client credentials take only vismanet_erp_service_api:* scopes",
            )
        tenant_id = extra.get("tenant_id", "").strip()
        if not tenant_id:
            raise OAuthError("invalid_request", "tenant_id is required")
        approvals = state_of(world).approvals.get(client.client_id)
        tenant = world.tenant(VENDOR, tenant_id)
        if tenant is not None:
            if approvals is not None and tenant.tenant_id not in approvals:
                # UNCONFIRMED: Visma Connect's error code; public reports show invalid_tenant.
                raise OAuthError("invalid_tenant", "the tenant has not approved this client")
            return ClientCredentialsGrant(subject=client.client_id, tenant=tenant.tenant_id)
        for candidate in world.vendor_tenants(VENDOR):
            if tenant_id in (company_tenant_id(candidate), company_id(candidate)):
                # Connect knows the company-level tenant and issues a token; the ERP API
                # then finds no licence for it (12027), see _Erp._resolve.
                return ClientCredentialsGrant(
                    subject=client.client_id, tenant=f"company:{candidate.tenant_id}"
                )
        raise OAuthError("invalid_tenant", "unknown tenant_id")

    return validate


def _narrow_to_rights(world: World) -> Callable[[OAuthUser, frozenset[str]], frozenset[str]]:
    # UNCONFIRMED: that Visma Connect narrows an interactive grant to what the user's role
    # allows. RFC 6749 3.3 lets a server issue a narrower scope, and it must then name the
    # scope it issued in the token answer: that is what a careful client checks.
    def narrow(user: OAuthUser, requested: frozenset[str]) -> frozenset[str]:
        if user.subject not in state_of(world).read_only_users:
            return requested
        writes = {INTERACTIVE_SCOPE_PREFIX + op for op in ("create", "update", "delete")}
        return requested - writes

    return narrow


def oauth_server(world: World) -> OAuthServer:
    """Visma Connect of ``world``: PKCE required, refresh tokens only with offline_access."""
    server = world.oauth_server(
        VENDOR,
        name="Visma Connect",
        require_pkce=True,
        refresh_requires_offline_access=True,
        client_credentials_validator=_validate_client_credentials(world),
    )
    if server.scope_filter is None:
        server.scope_filter = _narrow_to_rights(world)
    return server


def register_client(
    world: World,
    client_id: str,
    client_secret: str,
    *,
    kind: Literal["service", "interactive"] = "service",
    redirect_uri: str | None = None,
    tenants: Iterable[str] | None = None,
    test_client: bool = False,
    consent_page: bool = False,
) -> OAuthClient:
    """Register an ISV client with Visma Connect.

    A service client uses client credentials and ``vismanet_erp_service_api:*``; an
    interactive one the code grant with ``vismanet_erp_interactive_api:*`` and the identity
    scopes. ``tenants`` are the tenants that approved the client (``None``: all of them).
    """
    server = oauth_server(world)
    if kind == "service":
        client = OAuthClient(
            client_id,
            client_secret,
            allowed_scopes=SERVICE_SCOPES,
            grant_types=frozenset({"client_credentials"}),
        )
    else:
        client = OAuthClient(
            client_id,
            client_secret,
            redirect_uri=redirect_uri,
            allowed_scopes=INTERACTIVE_SCOPES | IDENTITY_SCOPES,
            grant_types=frozenset({"authorization_code", "refresh_token"}),
            require_pkce=True,
            consent_page=consent_page,
        )
    server.register_client(client)
    state = state_of(world)
    state.approvals[client_id] = set(tenants) if tenants is not None else None
    if test_client:
        state.test_clients.add(client_id)
    else:
        state.test_clients.discard(client_id)
    return client


def add_user(
    world: World,
    username: str,
    password: str,
    tenant: Tenant,
    *,
    extra_companies: Iterable[str] = (),
    write_rights: bool = True,
) -> OAuthUser:
    """A Visma.net user of ``tenant`` who may log in on the Connect page.

    The user may choose the tenant's company and ``extra_companies`` (company ids);
    without ``write_rights`` the interactive grants are read-only.
    """
    user = oauth_server(world).add_user(username, password, tenant=tenant.tenant_id)
    state = state_of(world)
    state.user_companies[user.subject] = set(extra_companies)
    if write_rights:
        state.read_only_users.discard(user.subject)
    else:
        state.read_only_users.add(user.subject)
    return user


def companies_of_user(world: World, token: TokenInfo) -> list[Tenant]:
    """The companies an interactive token may choose (its tenant's, then the extra ones)."""
    allowed = set(state_of(world).user_companies.get(token.subject, set()))
    home = world.tenant(VENDOR, token.tenant) if token.tenant else None
    if home is not None:
        allowed.add(company_id(home))
    return [t for t in world.vendor_tenants(VENDOR) if company_id(t) in allowed]


# --------------------------------------------------------------------------------------------
# Journal batches: per-company extras beside the vendor-neutral vouchers
# --------------------------------------------------------------------------------------------


@dataclass
class _BatchExtra:
    """What Visma keeps about a batch that the neutral voucher does not."""

    status: BatchStatus
    financial_period: str
    branch: str
    references: dict[int, str] = field(default_factory=dict)


def _extras(tenant: Tenant) -> dict[int, _BatchExtra]:
    extras: dict[int, _BatchExtra] = tenant.state.setdefault("vismanet_batches", {})
    return extras


def _period_id(company: CompanyData, day: dt.date) -> str | None:
    """``YYYYPP``: the fiscal year (named by its first year) and the period number in it."""
    for year in company.fiscal_years:
        if year.start <= day <= year.end:
            for index, period in enumerate(year.periods, start=1):
                if period.start <= day <= period.end:
                    return f"{year.start.year:04d}{index:02d}"
    return None


def _periods(company: CompanyData) -> list[tuple[str, PeriodData]]:
    return [
        (f"{year.start.year:04d}{index:02d}", period)
        for year in company.fiscal_years
        for index, period in enumerate(year.periods, start=1)
    ]


def _status(tenant: Tenant, voucher: VoucherData) -> BatchStatus:
    if voucher.status != "valid":  # invalidated or deleted: out of the books
        return "Voided"
    extra = _extras(tenant).get(voucher.id)
    return extra.status if extra is not None else "Posted"


def _financial_period(tenant: Tenant, voucher: VoucherData) -> str:
    extra = _extras(tenant).get(voucher.id)
    if extra is not None:
        return extra.financial_period
    return _period_id(tenant.company, voucher.date) or voucher.date.strftime("%Y%m")


def _etag(voucher: VoucherData) -> str:
    return f'"{voucher.id}-{voucher.version}"'


def _stamp(moment: dt.datetime) -> str:
    """Visma's ``lastModifiedDateTime``: ISO 8601 in UTC with milliseconds.

    UNCONFIRMED: whether the API writes an offset; the published filter formats have none
    (``yyyy-MM-ddTHH:mm:ss.FFF``), and the filter here reads both."""
    return moment.astimezone(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _number(amount: Decimal) -> float:
    # JSON numbers as Visma sends them; two decimals survive the float round trip exactly
    # for any ledger amount (the connector parses them back into Decimal).
    return float(amount)


def _subaccount(dimensions: Mapping[str, str]) -> list[dict[str, Any]]:
    """SegmentDto list (segmentId, segmentValue) of a combination of dimension values."""
    return [
        {"segmentId": segment, "segmentValue": dimensions[kind]}
        for kind, segment in SEGMENT_OF_KIND.items()
        if kind in dimensions
    ]


def _subaccount_number(dimensions: Mapping[str, str]) -> str:
    return "-".join(dimensions.get(kind) or "0" for kind in SEGMENT_OF_KIND)


def _line_subaccount(dimensions: Mapping[str, str]) -> dict[str, Any]:
    """The read DTO's subaccount: an object whose ``segments`` carry the values
    (SubaccountInJournalTransactionLineDto in the published OpenAPI), not a bare list."""
    return {
        "subaccountNumber": _subaccount_number(dimensions),
        "description": None,
        "active": True,
        "segments": [
            {**segment, "segmentDescription": None, "segmentValueDescription": None}
            for segment in _subaccount(dimensions)
        ],
    }


def _line_dto(tenant: Tenant, voucher: VoucherData, line: LineData) -> dict[str, Any]:
    extra = _extras(tenant).get(voucher.id)
    reference = extra.references.get(line.line_no) if extra else None
    debit = _number(line.amount) if line.amount > 0 else 0.0
    credit = _number(-line.amount) if line.amount < 0 else 0.0
    # JournalTransactionLineDto: the VAT code is an object {id, description} (the write
    # DTO's ``vatCodeId`` is not part of the read DTO).
    return {
        "lineNumber": line.line_no,
        "accountNumber": line.account,
        "subaccount": _line_subaccount(line.dimensions),
        "referenceNumber": reference or f"{voucher.series}{voucher.number}",
        "description": line.description,
        "transactionDescription": line.description,
        "debitAmount": debit,
        "debitAmountInCurrency": debit,
        "creditAmount": credit,
        "creditAmountInCurrency": credit,
        "vatCode": {"id": line.vat_code, "description": None} if line.vat_code else None,
    }


def _batch_dto(
    tenant: Tenant, voucher: VoucherData, lines: Sequence[LineData] | None = None
) -> dict[str, Any]:
    """The read DTO of a batch; ``lines`` limits the lines (a line page's share of it)."""
    extra = _extras(tenant).get(voucher.id)
    debit = sum((line.amount for line in voucher.lines if line.amount > 0), Decimal(0))
    return {
        "module": "ModuleGL",
        "batchNumber": str(voucher.id),
        "status": _status(tenant, voucher),
        "hold": _status(tenant, voucher) == "Hold",
        "transactionDate": f"{voucher.date.isoformat()}T00:00:00",
        "financialPeriod": _financial_period(tenant, voucher),
        "branch": extra.branch if extra else "1",
        "currencyId": tenant.company.currency,
        "description": voucher.description,
        # The whole batch's totals, also on a page carrying part of its lines: a client
        # reassembling a batch split over line pages can tell when it has all of them.
        # UNCONFIRMED: these header field names.
        "debitTotalInCurrency": _number(debit),
        "creditTotalInCurrency": _number(debit),
        "lastModifiedDateTime": _stamp(voucher.modified_at),
        "journalTransactionLines": [
            _line_dto(tenant, voucher, line) for line in (voucher.lines if lines is None else lines)
        ],
    }


# --------------------------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------------------------


class _VismaError(Exception):
    """An answer other than success, raised anywhere inside a request."""

    def __init__(
        self, status: int, body: Mapping[str, Any], headers: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(status)
        self.status = status
        self.body = dict(body)
        self.headers = dict(headers or {})


def _ipp(status: int, fault_code: str, message: str) -> _VismaError:
    """Visma's IPPException body."""
    return _VismaError(
        status,
        {
            "ExceptionType": "IPPException",
            "ExceptionMessage": message,
            "ExceptionFaultCode": fault_code,
            "ExceptionMessageID": f"{fault_code}_{uuid.uuid4()}",
            "ExceptionDetails": "",
        },
    )


def _message(status: int, text: str) -> _VismaError:
    """The ``{"message": ...}`` body of validation and business-rule refusals."""
    return _VismaError(status, {"message": text})


def _no_company(detail: str) -> _VismaError:
    # Observed publicly: 12002 comes back as HTTP 400 for a missing or foreign company.
    return _ipp(400, "12002", f"Invalid parameter exception: ipp-company-id. {detail}")


def _no_licence() -> _VismaError:
    # UNCONFIRMED: the HTTP status of 12027 (403: authenticated but not entitled).
    return _ipp(403, "12027", "No license for this company.")


# --------------------------------------------------------------------------------------------
# Write DTO parsing (value-wrapped scalars)
# --------------------------------------------------------------------------------------------


_MISSING: Final = object()


def _wrapped(obj: Mapping[str, Any], name: str, path: str) -> Any:
    """The ``value`` of a wrapped field ``{"name": {"value": ...}}`` (``_MISSING`` if absent).

    Visma's write DTOs wrap every scalar; a bare scalar is not deserialised by the API, so it
    is refused rather than silently taken.
    """
    if name not in obj or obj[name] is None:
        return _MISSING
    raw = obj[name]
    if not isinstance(raw, dict) or set(raw) != {"value"}:
        raise _message(
            400,
            f'The request is invalid. {path}{name}: expected a value object {{"value": ...}}',
        )
    return raw["value"]


def _text(obj: Mapping[str, Any], name: str, path: str, *, required: bool = False) -> str | None:
    value = _wrapped(obj, name, path)
    if value is _MISSING or value is None:
        if required:
            raise _message(400, f"The request is invalid. {path}{name} is required.")
        return None
    if not isinstance(value, str):
        raise _message(400, f"The request is invalid. {path}{name}: a string is expected.")
    return value


def _amount(obj: Mapping[str, Any], name: str, path: str) -> Decimal:
    value = _wrapped(obj, name, path)
    if value is _MISSING or value is None:
        return Decimal(0)
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise _message(400, f"The request is invalid. {path}{name}: a number is expected.")
    try:
        amount = Decimal(str(value))
    except InvalidOperation:
        raise _message(
            400, f"The request is invalid. {path}{name}: a number is expected."
        ) from None
    if not amount.is_finite() or amount < 0:
        raise _message(400, f"{path}{name} must be zero or positive.")
    if amount != amount.quantize(Decimal("0.01")):
        raise _message(400, f"{path}{name} has more than two decimals.")
    return amount


def _date(text: str, path: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text[:10])
    except ValueError:
        raise _message(400, f"The request is invalid. {path}: not a date: {text!r}") from None


@dataclass
class _LineInput:
    operation: str
    line_number: int | None
    account: str | None
    segments: dict[int, str] | None
    reference: str | None
    description: str | None
    debit: Decimal
    credit: Decimal
    vat_code: str | None


@dataclass
class _BatchInput:
    transaction_date: dt.date | None
    financial_period: str | None
    description: str | None
    branch: str | None
    lines: list[_LineInput] | None


def _parse_segments(raw: Any, path: str) -> dict[int, str]:
    if not isinstance(raw, list):
        raise _message(
            400,
            f"The request is invalid. {path}subaccount: a list of "
            "{segmentId, segmentValue} is expected.",
        )
    segments: dict[int, str] = {}
    for item in raw:
        if (
            not isinstance(item, dict)
            or not isinstance(item.get("segmentId"), int)
            or isinstance(item.get("segmentId"), bool)
            or not isinstance(item.get("segmentValue"), str)
        ):
            raise _message(
                400,
                f"The request is invalid. {path}subaccount: each segment needs an integer "
                "segmentId and a string segmentValue.",
            )
        segments[item["segmentId"]] = item["segmentValue"]
    return segments


def _parse_batch(body: Any, *, creating: bool) -> _BatchInput:
    if not isinstance(body, dict):
        raise _message(400, "The request is invalid. A journal transaction object is expected.")
    date_text = _text(body, "transactionDate", "", required=creating)
    lines_raw = body.get("journalTransactionLines")
    lines: list[_LineInput] | None = None
    if lines_raw is not None:
        if not isinstance(lines_raw, list):
            raise _message(400, "The request is invalid. journalTransactionLines: a list.")
        lines = []
        for index, raw in enumerate(lines_raw):
            path = f"journalTransactionLines[{index}]."
            if not isinstance(raw, dict):
                raise _message(400, f"The request is invalid. {path[:-1]}: an object.")
            operation = raw.get("operation", "Insert")
            if operation not in ("Insert", "Update", "Delete"):
                raise _message(400, f"{path}operation must be Insert, Update or Delete.")
            number = _wrapped(raw, "lineNumber", path)
            if number is not _MISSING and (not isinstance(number, int) or isinstance(number, bool)):
                raise _message(400, f"The request is invalid. {path}lineNumber: an integer.")
            segments = (
                _parse_segments(raw["subaccount"], path)
                if raw.get("subaccount") is not None
                else None
            )
            lines.append(
                _LineInput(
                    operation=operation,
                    line_number=number if isinstance(number, int) else None,
                    account=_text(raw, "accountNumber", path),
                    segments=segments,
                    reference=_text(raw, "referenceNumber", path),
                    description=_text(raw, "transactionDescription", path),
                    debit=_amount(raw, "debitAmountInCurrency", path),
                    credit=_amount(raw, "creditAmountInCurrency", path),
                    vat_code=_text(raw, "vatCodeId", path),
                )
            )
    if creating and not lines:
        raise _message(400, "The request is invalid. journalTransactionLines is required.")
    return _BatchInput(
        transaction_date=_date(date_text, "transactionDate") if date_text else None,
        financial_period=_text(body, "financialPeriod", ""),
        description=_text(body, "description", ""),
        branch=_text(body, "branch", ""),
        lines=lines,
    )


def _check_period(company: CompanyData, period_id: str) -> None:
    if len(period_id) != 6 or not period_id.isdigit():
        raise _message(400, f"financialPeriod {period_id!r} is not in the format YYYYPP.")
    for known, period in _periods(company):
        if known == period_id:
            if period.closed:
                # UNCONFIRMED: Visma's wording; the connector recognises "is closed".
                raise _message(
                    400, f"Financial period {period_id} is closed in the General Ledger."
                )
            return
    raise _message(400, f"Financial period {period_id} does not exist.")


def _check_account(company: CompanyData, number: str | None, path: str) -> str:
    if not number:
        raise _message(400, f"The request is invalid. {path}accountNumber is required.")
    account = company.account(number)
    if account is None:
        raise _message(400, f"Account '{number}' cannot be found in the system.")
    if not account.active:
        raise _message(400, f"Account '{number}' is inactive.")
    return number


def _check_segments(company: CompanyData, segments: Mapping[int, str], path: str) -> dict[str, str]:
    dimensions: dict[str, str] = {}
    for segment_id, value in segments.items():
        kind = KIND_OF_SEGMENT.get(segment_id)
        if kind is None:
            raise _message(400, f"{path}subaccount: segment {segment_id} does not exist.")
        dimension = next((d for d in company.dimensions if d.kind == kind), None)
        objects = {o.code: o for o in dimension.objects} if dimension else {}
        found = objects.get(value)
        if found is None:
            raise _message(
                400, f"{path}subaccount: '{value}' is not a value of segment {segment_id}."
            )
        if not found.active:
            raise _message(
                400, f"{path}subaccount: value '{value}' of segment {segment_id} is inactive."
            )
        dimensions[kind] = value
    return dimensions


def _build_line(
    company: CompanyData, item: _LineInput, line_no: int, path: str
) -> tuple[LineData, str | None]:
    account = _check_account(company, item.account, path)
    if item.debit and item.credit:
        raise _message(400, f"{path}: a line has either a debit or a credit amount, not both.")
    dimensions = _check_segments(company, item.segments or {}, path)
    if item.reference is not None and len(item.reference) > MAX_REFERENCE_LENGTH:
        raise _message(
            400, f"{path}referenceNumber is longer than {MAX_REFERENCE_LENGTH} characters."
        )
    line = LineData(
        line_no,
        account,
        item.debit - item.credit,
        item.description or "",
        None,
        item.vat_code,
        dimensions,
    )
    return line, item.reference


def _check_balanced(lines: Sequence[LineData]) -> None:
    debit = sum((line.amount for line in lines if line.amount > 0), Decimal(0))
    credit = -sum((line.amount for line in lines if line.amount < 0), Decimal(0))
    if debit != credit:
        raise _message(
            400,
            f"The batch is out of balance: debit total {debit} differs from credit total {credit}.",
        )


# --------------------------------------------------------------------------------------------
# The ERP API
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Context:
    token: TokenInfo
    tenant: Tenant
    company_id: str

    @property
    def company(self) -> CompanyData:
        return self.tenant.company


Handler = Callable[[Request, _Context], Awaitable[Response]]


def _paging(request: Request) -> tuple[int, int]:
    """``pageNumber``/``pageSize``: mandatory on every list (Visma enforces paging)."""
    number_text = request.query_params.get("pageNumber")
    size_text = request.query_params.get("pageSize")
    if number_text is None or size_text is None:
        raise _message(400, "Paging is mandatory: pageNumber and pageSize must be given.")
    try:
        number, size = int(number_text), int(size_text)
    except ValueError:
        raise _message(400, "pageNumber and pageSize must be integers.") from None
    if number < 1:
        raise _message(400, "pageNumber must be 1 or more.")
    if not 1 <= size <= MAX_PAGE_SIZE:
        raise _message(400, f"pageSize must be between 1 and {MAX_PAGE_SIZE}.")
    return number, size


def _page(items: Sequence[Any], number: int, size: int) -> list[Any]:
    return list(items[(number - 1) * size : number * size])


def _json(body: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> Response:
    return JSONResponse(body, status_code=status, headers=dict(headers or {}))


#: The accepted formats of ``lastModifiedDateTime`` (JournalTransactionV2Api and
#: GeneralLedgerBalanceV2Api: yyyy-MM-dd, yyyy-MM-dd HH:mm:ss, yyyy-MM-dd HH:mm:ss.FFF,
#: yyyy-MM-ddTHH:mm:ss, yyyy-MM-ddTHH:mm:ss.FFF); .FFF is up to three digits.
_STAMP_FORMAT: Final = re.compile(r"\d{4}-\d{2}-\d{2}(?:[ T]\d{2}:\d{2}:\d{2}(?:\.\d{1,3})?)?")


def _parse_stamp(text: str) -> dt.datetime:
    """A ``lastModifiedDateTime`` filter in one of the published formats (read as UTC:
    UNCONFIRMED which time zone Visma.net reads it in)."""
    if not _STAMP_FORMAT.fullmatch(text):
        raise _message(
            400,
            f"lastModifiedDateTime {text!r} is not in an accepted format (yyyy-MM-dd, "
            "yyyy-MM-dd HH:mm:ss[.FFF], yyyy-MM-ddTHH:mm:ss[.FFF]).",
        )
    try:
        moment = dt.datetime.fromisoformat(text.replace(" ", "T"))
    except ValueError:
        raise _message(400, f"lastModifiedDateTime {text!r} is not a date and time.") from None
    return moment.replace(tzinfo=dt.UTC)


_CONDITIONS: Final[Mapping[str, Callable[[dt.datetime, dt.datetime], bool]]] = {
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
}


class _Erp:
    """The ERP API routes and the pipeline every request goes through."""

    def __init__(self, world: World) -> None:
        self.world = world

    # -- pipeline --------------------------------------------------------------------------

    def _resolve(self, request: Request, token: TokenInfo) -> tuple[Tenant, str]:
        header = request.headers.get("ipp-company-id")
        interactive = any(scope.startswith(INTERACTIVE_SCOPE_PREFIX) for scope in token.scopes)
        if not interactive:
            if token.tenant is None or token.tenant.startswith("company:"):
                raise _no_licence()
            tenant = self.world.tenant(VENDOR, token.tenant)
            if tenant is None:
                raise _no_licence()
            own = company_id(tenant)
            if header is not None and header != own:
                raise _no_company("The company is not authorized for this client.")
            return tenant, own
        if not header:
            raise _no_company("The header ipp-company-id is missing.")
        allowed = set(state_of(self.world).user_companies.get(token.subject, set()))
        if token.tenant is not None and (home := self.world.tenant(VENDOR, token.tenant)):
            allowed.add(company_id(home))
        if header not in allowed:
            raise _no_company("The user is not authorized for this company.")
        tenant = next(
            (t for t in self.world.vendor_tenants(VENDOR) if company_id(t) == header), None
        )
        if tenant is None:
            raise _no_company("The company does not exist.")
        return tenant, header

    def _limit(self, client_id: str) -> tuple[int, float]:
        """(calls per window, window seconds) for a client.

        The configured bucket becomes Visma's fixed window: ``burst`` calls per
        ``burst / rate_per_second`` seconds (the defaults give 15,000 calls an hour).
        """
        settings = self.world.config.rate_limit(VENDOR)
        window = settings.burst / settings.rate_per_second
        limit = settings.burst
        if client_id in state_of(self.world).test_clients:
            limit = max(1, math.floor(limit * TEST_CLIENT_SHARE))
        return limit, window

    def _count(self, client_id: str, company: str) -> dict[str, str]:
        """Count one call in the (client, company) window; headers, or 429 when spent."""
        limit, window = self._limit(client_id)
        now = self.world.clock()
        key = f"{client_id}|{company}"
        windows = state_of(self.world).windows
        current = windows.get(key)
        if current is None or now >= current.start + window:
            # Windows are aligned to the clock, as "per hour" reads.
            current = windows[key] = _Window(start=now - now % window, used=0)
        reset = max(1, math.ceil(current.start + window - now))
        if current.used >= limit:
            headers = _rate_headers(limit, 0, reset)
            headers["Retry-After"] = str(reset)
            raise _VismaError(
                429,
                {"message": f"Rate limit is exceeded. Try again in {reset} seconds."},
                headers,
            )
        current.used += 1
        return _rate_headers(limit, limit - current.used, reset)

    async def handle(self, request: Request, operation: str, handler: Handler) -> Response:
        """Authenticate, choose the company, apply faults and limits, then ``handler``."""
        server = oauth_server(self.world)
        try:
            token = server.authenticate(request.headers.get("authorization"))
        except OAuthTokenInvalid:
            # ASP.NET Web API's answer to a refused bearer token.
            return _json(
                {"message": "Authorization has been denied for this request."},
                401,
                {"WWW-Authenticate": 'Bearer error="invalid_token"'},
            )
        headers: dict[str, str] = {}
        try:
            try:
                tenant, company = self._resolve(request, token)
            except _VismaError:
                # Still counted: the limit is per client and company asked for.
                headers = self._count(token.client_id, request.headers.get("ipp-company-id") or "-")
                raise
            try:
                await self.world.faults.apply(request, VENDOR, tenant.tenant_id)
            except SandboxRateLimited as fault:
                limit, _ = self._limit(token.client_id)
                raise _VismaError(
                    429,
                    {
                        "message": f"Rate limit is exceeded. Try again in "
                        f"{fault.retry_after_header} seconds."
                    },
                    {
                        **_rate_headers(limit, 0, int(fault.retry_after_header)),
                        "Retry-After": fault.retry_after_header,
                    },
                ) from None
            except SandboxServerError as fault:
                raise _message(fault.status, "The service is temporarily unavailable.") from None
            headers = self._count(token.client_id, company)
            if not tenant.api_enabled or tenant.blocked:
                raise _no_licence()
            prefix = (
                INTERACTIVE_SCOPE_PREFIX
                if any(s.startswith(INTERACTIVE_SCOPE_PREFIX) for s in token.scopes)
                else SERVICE_SCOPE_PREFIX
            )
            if prefix + operation not in token.scopes:
                # UNCONFIRMED: the wording of a missing-scope refusal.
                raise _message(403, f"The token lacks the scope {prefix}{operation}.")
            response = await handler(request, _Context(token, tenant, company))
            if request.method != "GET":
                # A change was made: a planned fault may now lose its answer.
                self.world.faults.after(request, VENDOR, tenant.tenant_id)
        except _VismaError as refused:
            return _json(refused.body, refused.status, {**headers, **refused.headers})
        response.headers.update(headers)
        return response

    # -- master data -----------------------------------------------------------------------

    async def accounts(self, request: Request, ctx: _Context) -> Response:
        number, size = _paging(request)
        active = request.query_params.get("active")
        accounts = [
            a
            for a in ctx.company.accounts
            if active is None or a.active == (active.lower() == "true")
        ]
        return _json(
            [
                {
                    "accountID": index,
                    "accountCD": account.number,
                    "description": account.name,
                    "type": _ACCOUNT_TYPES[account.type],
                    "active": account.active,
                    "vatCode": {"id": account.vat_code} if account.vat_code else None,
                }
                for index, account in _page(list(enumerate(accounts, start=1)), number, size)
            ]
        )

    async def dimensions(self, request: Request, ctx: _Context) -> Response:
        """``GET /v1/dimension``: the dimensions' ids only (``string[]`` in the published
        OpenAPI, no paging); segments come from :meth:`dimension`."""
        return _json([SUBACCOUNT_DIMENSION])

    async def dimension(self, request: Request, ctx: _Context) -> Response:
        """``GET /v1/dimension/{dimensionId}``: DtoDimension with its segments; the values
        of a segment (DtoSegmentValue, named by ``valueId``) unless
        ``expandSegmentsValues=false``."""
        if request.path_params["dimension_id"] != SUBACCOUNT_DIMENSION:
            raise _message(404, f"Dimension {request.path_params['dimension_id']} not found.")
        expand = request.query_params.get("expandSegmentsValues", "true").lower() != "false"
        segments = []
        for kind, segment_id in SEGMENT_OF_KIND.items():
            found = next((d for d in ctx.company.dimensions if d.kind == kind), None)
            if found is None:
                continue
            segment: dict[str, Any] = {
                "segmentId": segment_id,
                "description": found.name,
                "length": max((len(o.code) for o in found.objects), default=0),
                "validate": True,
            }
            if expand:
                segment["segmentValues"] = [
                    {
                        "segmentId": segment_id,
                        "valueId": o.code,
                        "description": o.name,
                        "active": o.active,
                    }
                    for o in found.objects
                ]
            segments.append(segment)
        return _json(
            {
                "id": SUBACCOUNT_DIMENSION,
                "length": sum(int(segment["length"]) for segment in segments),
                "description": "Subaccount",
                "segments": segments,
            }
        )

    async def subaccounts(self, request: Request, ctx: _Context) -> Response:
        number, size = _paging(request)
        combinations: dict[tuple[str, ...], Mapping[str, str]] = {}
        for voucher in ctx.company.vouchers:
            for line in voucher.lines:
                key = tuple(line.dimensions.get(kind, "") for kind in SEGMENT_OF_KIND)
                if any(key):
                    combinations.setdefault(key, line.dimensions)
        rows = [
            {
                "subaccountId": index,
                "subaccountNumber": "-".join(part or "0" for part in key),
                "active": True,
                "segments": _subaccount(dimensions),
            }
            for index, (key, dimensions) in enumerate(sorted(combinations.items()), start=1)
        ]
        return _json(_page(rows, number, size))

    async def financial_periods(self, request: Request, ctx: _Context) -> Response:
        number, size = _paging(request)
        # FinancialPeriodDto: ``period`` (YYYYPP) is the id, and a period closed in the
        # General Ledger says so in ``closedInGeneralLedger`` (no ``periodId``/``closedInGl``).
        rows = [
            {
                "year": int(period_id[:4]),
                "period": period_id,
                "startDate": f"{period.start.isoformat()}T00:00:00",
                "endDate": f"{period.end.isoformat()}T00:00:00",
                "description": period.start.strftime("%B %Y"),
                "active": True,
                "closedInSupplierLedger": period.closed,
                "closedInCustomerLedger": period.closed,
                "closedInInventoryManagement": period.closed,
                "closedInGeneralLedger": period.closed,
                "closedInCashManagement": period.closed,
                "closedInFixedAssets": period.closed,
            }
            for period_id, period in _periods(ctx.company)
        ]
        return _json(_page(rows, number, size))

    async def branches(self, request: Request, ctx: _Context) -> Response:
        number, size = _paging(request)
        company = ctx.company
        row: dict[str, Any] = {
            "branchId": 1,
            "number": "1",
            "name": company.name,
            # BranchDto.organizationId is an integer (the company's id here).
            "organizationId": int(ctx.company_id) if ctx.company_id.isdigit() else ctx.company_id,
            "isMainBranch": True,
            "isActive": True,
            "corporateId": company.business_id,
        }
        # BranchDto carries the base currency only when asked (expandCurrency=true).
        if request.query_params.get("expandCurrency", "").lower() == "true":
            row["currency"] = {"id": company.currency, "description": company.currency}
        rows = [row]
        return _json(_page(rows, number, size))

    async def gl_balances(self, request: Request, ctx: _Context) -> Response:
        """GeneralLedgerBalanceDto rows, one per account and financial period.

        The published contract (GeneralLedgerBalanceV2Api, ``GET /v2/generalLedgerBalance``,
        as generated into CaesarDev/visma-erp-client docs/Api/GeneralLedgerBalanceV2Api.md
        and docs/Model/GeneralLedgerBalanceDto.md): ``periodId`` is mandatory when
        ``lastModifiedDateTime`` is not given; a row carries ``financialPeriod``,
        ``account`` (AccountNumberDescriptionDto), ``periodToDateDebit``/``Credit`` ("the
        total of all debit/credit movements for the selected period"),
        ``beginningBalance`` and ``yearToDateBalance`` (the balance at the start and end
        of the period). Only posted batches count (the general ledger holds released
        batches). UNCONFIRMED: how Visma.net carries income and expense accounts over a
        year end (the sandbox closes no years: its balances run from the first period).
        """
        number, size = _paging(request)
        wanted = request.query_params.get("periodId")
        stamp_text = request.query_params.get("lastModifiedDateTime")
        if wanted is None and stamp_text is None:
            raise _message(400, "periodId is mandatory if lastModifiedDateTime is not provided.")
        if wanted is not None and (len(wanted) != 6 or not wanted.isdigit()):
            raise _message(400, f"periodId {wanted!r} is not in the format yyyyMM.")
        since = _parse_stamp(stamp_text) if stamp_text else None
        account_wanted = request.query_params.get("account")
        totals: dict[tuple[str, str], list[Decimal]] = {}
        modified: dict[tuple[str, str], dt.datetime] = {}
        for voucher in ctx.company.vouchers:
            if _status(ctx.tenant, voucher) != "Posted":
                continue
            period_id = _financial_period(ctx.tenant, voucher)
            for line in voucher.lines:
                key = (period_id, line.account)
                pair = totals.setdefault(key, [Decimal(0), Decimal(0)])
                if line.amount > 0:
                    pair[0] += line.amount
                else:
                    pair[1] -= line.amount
                modified[key] = max(modified.get(key, voucher.modified_at), voucher.modified_at)
        running: dict[str, Decimal] = {}
        rows = []
        for (period_id, account), (debit, credit) in sorted(totals.items()):
            beginning = running.get(account, Decimal(0))
            running[account] = closing = beginning + debit - credit
            if wanted is not None and period_id != wanted:
                continue
            if account_wanted is not None and account != account_wanted:
                continue
            if since is not None and modified[(period_id, account)] < since:
                continue
            rows.append(
                {
                    "branch": {"number": "1"},
                    "balanceType": "Actual",
                    "financialPeriod": period_id,
                    "account": {"type": None, "number": account, "description": None},
                    "currencyId": ctx.company.currency,
                    "periodToDateDebit": _number(debit),
                    "periodToDateCredit": _number(credit),
                    "beginningBalance": _number(beginning),
                    "yearToDateBalance": _number(closing),
                    "lastModifiedDateTime": _stamp(modified[(period_id, account)]),
                }
            )
        return _json(_page(rows, number, size))

    # -- journal transactions --------------------------------------------------------------

    async def list_journals(self, request: Request, ctx: _Context) -> Response:
        """Batches, paged by LINES.

        Order: ``lastModifiedDateTime`` ascending, then batch number; each batch's lines in
        line-number order. ``pageSize`` counts lines of that flattened sequence: page n holds
        lines ``(n-1)*pageSize .. n*pageSize-1``. Each batch touched by the page is returned
        with its full header and only its lines on this page, so a batch may start at the
        end of one page and continue at the start of the next one (same batchNumber, header
        repeated; ``debitTotalInCurrency``/``creditTotalInCurrency`` are the whole batch's).
        A page with fewer lines than ``pageSize`` (or none) is the last one.

        Filters as published (JournalTransactionV2Api, GET /v2/journaltransaction):
        ``periodId`` (YYYYPP) and ``lastModifiedDateTime`` (+ condition). The published
        contract makes one of the two mandatory: a list with neither is refused (400).
        """
        number, size = _paging(request)
        params = request.query_params
        period = params.get("periodId")
        stamp_text = params.get("lastModifiedDateTime")
        if period is None and stamp_text is None:
            # The published contract: periodId "Mandatory if 'LastModifiedDateTime' not
            # provided" (and the other way round). UNCONFIRMED: Visma.net's wording.
            raise _message(400, "periodId is mandatory if lastModifiedDateTime is not provided.")
        condition = params.get("lastModifiedDateTimeCondition", ">=")
        if condition not in _CONDITIONS:
            raise _message(400, "lastModifiedDateTimeCondition must be one of >, >=, <, <=.")
        since = _parse_stamp(stamp_text) if stamp_text else None
        if period is not None and (len(period) != 6 or not period.isdigit()):
            raise _message(400, f"periodId {period!r} is not in the format YYYYPP.")
        compare = _CONDITIONS[condition]
        batches = [
            voucher
            for voucher in ctx.company.vouchers
            if (since is None or compare(voucher.modified_at, since))
            and (period is None or _financial_period(ctx.tenant, voucher) == period)
        ]
        batches.sort(key=lambda v: (v.modified_at, v.id))
        first, last = (number - 1) * size, number * size
        offset = 0
        result = []
        for voucher in batches:
            count = len(voucher.lines)
            if offset + count > first:
                lines = voucher.lines[max(0, first - offset) : last - offset]
                result.append(_batch_dto(ctx.tenant, voucher, lines))
            offset += count
            if offset >= last:
                break
        return _json(result)

    def _voucher(self, ctx: _Context, batch_number: str) -> VoucherData:
        try:
            return ctx.company.voucher(int(batch_number))
        except (KeyError, ValueError):
            raise _message(
                404, f"Journal transaction with batch number {batch_number} was not found."
            ) from None

    async def get_journal(self, request: Request, ctx: _Context) -> Response:
        voucher = self._voucher(ctx, request.path_params["batch_number"])
        return _json(_batch_dto(ctx.tenant, voucher), headers={"ETag": _etag(voucher)})

    async def _body(self, request: Request) -> Any:
        try:
            return json.loads(await request.body())
        except (ValueError, UnicodeDecodeError):
            raise _message(400, "The request is invalid. The body is not JSON.") from None

    async def create_journal(self, request: Request, ctx: _Context) -> Response:
        batch = _parse_batch(await self._body(request), creating=True)
        tenant, company = ctx.tenant, ctx.company
        if tenant.test_company:
            # UNCONFIRMED: the wording; journals are refused for companies marked as test.
            raise _message(400, "Journal transactions cannot be created in a test company.")
        assert batch.transaction_date is not None
        assert batch.lines is not None
        period_id = batch.financial_period or _period_id(company, batch.transaction_date)
        if period_id is None:
            raise _message(400, f"No financial period contains {batch.transaction_date}.")
        _check_period(company, period_id)
        if batch.branch not in (None, "1"):
            raise _message(400, f"Branch '{batch.branch}' cannot be found in the system.")
        if batch.description and len(batch.description) > MAX_DESCRIPTION_LENGTH:
            raise _message(400, f"description is longer than {MAX_DESCRIPTION_LENGTH}.")
        lines: list[LineData] = []
        references: dict[int, str] = {}
        for index, item in enumerate(batch.lines):
            path = f"journalTransactionLines[{index}]."
            if item.operation != "Insert":
                raise _message(400, f"{path}operation must be Insert when creating.")
            line, reference = _build_line(company, item, index + 1, path)
            lines.append(line)
            if reference is not None:
                references[line.line_no] = reference
        _check_balanced(lines)
        voucher = company.add_voucher(
            date=batch.transaction_date,
            description=batch.description or "",
            lines=lines,
            series="GL",
        )
        _extras(tenant)[voucher.id] = _BatchExtra(
            status="Balanced",
            financial_period=period_id,
            branch=batch.branch or "1",
            references=references,
        )
        location = f"{request.url.path}/{voucher.id}"
        return _json(
            _batch_dto(tenant, voucher),
            201,
            {"Location": location, "ETag": _etag(voucher)},
        )

    def _editable(self, ctx: _Context, voucher: VoucherData) -> _BatchExtra:
        status = _status(ctx.tenant, voucher)
        extra = _extras(ctx.tenant).get(voucher.id)
        if extra is None or status not in ("Hold", "Balanced"):
            raise _message(400, f"Batch {voucher.id} has status {status} and cannot be changed.")
        return extra

    async def update_journal(self, request: Request, ctx: _Context) -> Response:
        voucher = self._voucher(ctx, request.path_params["batch_number"])
        if_match = request.headers.get("if-match")
        # Optimistic concurrency: an If-Match that no longer matches is refused (412); a
        # request without If-Match overwrites, as the API allows.
        if if_match is not None and if_match not in ("*", _etag(voucher)):
            raise _VismaError(
                412,
                {
                    "message": "The journal transaction was changed by someone else "
                    "(the ETag does not match)."
                },
                {"ETag": _etag(voucher)},
            )
        extra = self._editable(ctx, voucher)
        batch = _parse_batch(await self._body(request), creating=False)
        company = ctx.company
        period_id = batch.financial_period or extra.financial_period
        if batch.financial_period is not None or batch.transaction_date is not None:
            _check_period(company, period_id)
        lines = list(voucher.lines)
        references = dict(extra.references)
        for index, item in enumerate(batch.lines or []):
            path = f"journalTransactionLines[{index}]."
            position = next(
                (i for i, line in enumerate(lines) if line.line_no == item.line_number), None
            )
            if item.operation == "Insert":
                line_no = max((line.line_no for line in lines), default=0) + 1
                line, reference = _build_line(company, item, line_no, path)
                lines.append(line)
            elif position is None:
                raise _message(400, f"{path}lineNumber {item.line_number} does not exist.")
            elif item.operation == "Delete":
                references.pop(lines[position].line_no, None)
                del lines[position]
                continue
            else:
                line, reference = _build_line(company, item, lines[position].line_no, path)
                lines[position] = line
            if reference is not None:
                references[line.line_no] = reference
        _check_balanced(lines)
        # An explicit description always: edit_voucher marks an argument-less edit itself.
        updated = company.edit_voucher(
            voucher.id,
            description=batch.description if batch.description is not None else voucher.description,
            date=batch.transaction_date,
            lines=lines if batch.lines is not None else None,
        )
        extra.financial_period = period_id
        extra.references = references
        if batch.branch is not None:
            extra.branch = batch.branch
        return Response(status_code=204, headers={"ETag": _etag(updated)})

    async def release_journal(self, request: Request, ctx: _Context) -> Response:
        # POST /v2/journaltransaction/{journalTransactionNumber}/action/release, "Release
        # journal transaction operation": "The action result dto contains information about
        # the result of running the action; Response Message has StatusCode BadRequest or
        # InternalServerError if POST operation failed" (the ERP API's OpenAPI document as
        # generated into CaesarDev/visma-erp-client, docs/Api/JournalTransactionV2Api.md).
        # UNCONFIRMED: the action result's field names (actionId, actionResult, errorInfo)
        # and the status a released batch shows (Posted here; Unposted when a company does
        # not post on release). Releasing a batch that is not Balanced is a 400, as a
        # second release of the same batch is.
        voucher = self._voucher(ctx, request.path_params["batch_number"])
        status = _status(ctx.tenant, voucher)
        extra = _extras(ctx.tenant).get(voucher.id)
        if extra is None or status != "Balanced":
            raise _message(
                400,
                f"Batch {voucher.id} has status {status}; only a Balanced batch can be released.",
            )
        _check_period(ctx.company, extra.financial_period)
        extra.status = "Posted"
        return _json({"actionId": str(uuid.uuid4()), "actionResult": "Done", "errorInfo": None})


def _rate_headers(limit: int, remaining: int, reset: int) -> dict[str, str]:
    return {
        "X-RateLimit-Limit": str(limit),
        "X-RateLimit-Remaining": str(max(0, remaining)),
        "X-RateLimit-Reset": str(reset),
        "X-RateLimit-Policy": RATE_LIMIT_POLICY,
    }


# --------------------------------------------------------------------------------------------
# Mounting
# --------------------------------------------------------------------------------------------


def mount(app: FastAPI, world: World) -> None:
    """Serve Visma Connect under ``/visma-connect`` and the ERP API under ``/vismanet``."""
    server = oauth_server(world)
    demo = [t for t in world.vendor_tenants(VENDOR) if t.flags.get("demo")]
    if demo:
        register_client(world, DEMO_CLIENT_ID, DEMO_CLIENT_SECRET)
        register_client(
            world,
            DEMO_INTERACTIVE_CLIENT_ID,
            DEMO_CLIENT_SECRET,
            kind="interactive",
            redirect_uri=DEMO_REDIRECT_URI,
        )
        register_client(
            world,
            DEMO_PAGES_CLIENT_ID,
            DEMO_CLIENT_SECRET,
            kind="interactive",
            redirect_uri=world.config.visma_pages_redirect_uri,
            consent_page=True,
        )
        add_user(world, DEMO_USERNAME, DEMO_PASSWORD, demo[0])
    app.include_router(
        oauth_router(
            server,
            authorize_path=AUTHORIZE_PATH,
            token_path=TOKEN_PATH,
            revocation_path=REVOCATION_PATH,
        )
    )

    erp = _Erp(world)
    router = APIRouter()

    def route(path: str, method: str, operation: str, handler: Handler) -> None:
        async def endpoint(request: Request) -> Response:
            return await erp.handle(request, operation, handler)

        router.add_api_route(
            f"{API_PREFIX}{path}", endpoint, methods=[method], include_in_schema=False
        )

    async def contexts(request: Request) -> Response:
        # GET /resources/v1/context, "Get the companies available for this token"
        # (Visma.net API's ContextApi; ContextInformation: id, name, type). No
        # ipp-company-id: this is how a client learns which ids it may send.
        try:
            token = server.authenticate(request.headers.get("authorization"))
        except OAuthTokenInvalid:
            return _json(
                {"message": "Authorization has been denied for this request."},
                401,
                {"WWW-Authenticate": 'Bearer error="invalid_token"'},
            )
        return _json(
            [
                {"id": int(company_id(tenant)), "name": tenant.company.name, "type": "Company"}
                for tenant in companies_of_user(world, token)
            ]
        )

    router.add_api_route(
        f"{API_PREFIX}/resources/v1/context", contexts, methods=["GET"], include_in_schema=False
    )
    route("/v1/account", "GET", "read", erp.accounts)
    route("/v1/subaccount", "GET", "read", erp.subaccounts)
    route("/v1/dimension", "GET", "read", erp.dimensions)
    route("/v1/dimension/{dimension_id}", "GET", "read", erp.dimension)
    route("/v1/financialperiod", "GET", "read", erp.financial_periods)
    route("/v1/branch", "GET", "read", erp.branches)
    # The published path is /v2/generalLedgerBalance; ASP.NET routes ignore case, so the
    # lower-case spelling is served too.
    route("/v2/generalLedgerBalance", "GET", "read", erp.gl_balances)
    route("/v2/generalledgerbalance", "GET", "read", erp.gl_balances)
    route("/v2/journaltransaction", "GET", "read", erp.list_journals)
    route("/v2/journaltransaction", "POST", "create", erp.create_journal)
    route("/v2/journaltransaction/{batch_number}", "GET", "read", erp.get_journal)
    route("/v2/journaltransaction/{batch_number}", "PUT", "update", erp.update_journal)
    route(
        "/v2/journaltransaction/{batch_number}/action/release",
        "POST",
        "update",
        erp.release_journal,
    )
    app.include_router(router)
