"""Finago Procountor sandbox: OAuth 2.0 login and token endpoint, REST/JSON under ``/api``.

Mounted under ``/procountor``: the login page at ``/procountor/login``, the token endpoint at
``/procountor/api/oauth/token`` and the API under ``/procountor/api``. It refuses what
Procountor refuses:

* the authorization code grant needs the client's one registered redirect URI (exact match,
  no query string); client credentials need an ``api_key`` bound to user + company + client;
* access tokens live ``access_token_ttl_seconds`` (3600 s by default); an expired or unknown
  token is answered 401 with an OAuth ``{error, error_description}`` body;
* a company that has not allowed "invoiceable API clients" is refused (403);
* 20 requests/s per client (token bucket), answered 429 with ``Retry-After``;
* ``GET /ledgerreceipts`` pages of at most 200, at most 200 ids per ``GET /ledgerreceipts/{ids}``;
* ``POST /ledgerreceipts`` takes JOURNAL receipts only, dated in an open period, balanced,
  on active accounts and known dimension items; new receipts are UNFINISHED;
* ``PUT /ledgerreceipts/{id}`` needs the receipt's latest ``version`` (optimistic lock);
* salary receipts (the company's payroll runs, type SALARY) are hidden from a user without
  full salary rights, as Procountor does: the ledger then does not balance (seed 001).

Validation errors are HTTP 400 ``{"errors": [{"status", "field", "message"}]}`` with every
problem found, as Procountor answers them.

Tenant credentials (``Tenant.credentials``) this module reads: ``client_id``,
``client_secret``, ``redirect_uri`` (the client), ``username``, ``password`` (the user who
logs in; ``Tenant.flags["salary_rights"]`` says whether that user has full salary rights,
default true) and ``api_key`` (for client credentials, bound to that user, this company and
that client). More users per company: :func:`add_user`.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import weakref
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any, Final, Literal

from fastapi import APIRouter, Depends, FastAPI, Request, Response
from fastapi.responses import JSONResponse

from ledgerlink.sandbox.data import CompanyData, DimensionData, LineData, VoucherData
from ledgerlink.sandbox.errors import SandboxRateLimited, SandboxServerError
from ledgerlink.sandbox.oauth import (
    ClientCredentialsGrant,
    OAuthClient,
    OAuthError,
    OAuthServer,
    OAuthTokenExpired,
    OAuthTokenInvalid,
    TokenInfo,
    oauth_router,
)
from ledgerlink.sandbox.world import Tenant, World

__all__ = [
    "MAX_IDS",
    "MAX_PAGE_SIZE",
    "RECEIPT_TYPES",
    "VENDOR",
    "add_user",
    "mount",
    "procountor_server",
    "set_period_status",
]

logger = logging.getLogger(__name__)

VENDOR: Final = "procountor"
MAX_PAGE_SIZE: Final = 200
MAX_IDS: Final = 200
# UNCONFIRMED: the default page size; 50 is what a careful vendor picks below the maximum.
DEFAULT_PAGE_SIZE: Final = 50

RECEIPT_TYPES: Final = frozenset(
    {
        "JOURNAL",
        "SALARY",
        "SALES_INVOICE",
        "PURCHASE_INVOICE",
        "TRAVEL_INVOICE",
        "BILL_OF_CHARGES",
        "PERIODIC_TAX_RETURN",
        "VAT_SUMMARY",
        "EU_VAT_SUMMARY",
    }
)
# UNCONFIRMED: how generated series map to receipt types. Sales and purchase vouchers are
# invoices in Procountor; bank and memo vouchers are journal receipts.
_SERIES_TYPES: Final[dict[str, str]] = {
    "MY": "SALES_INVOICE",
    "SF": "SALES_INVOICE",
    "B": "SALES_INVOICE",
    "VK": "SALES_INVOICE",
    "OL": "PURCHASE_INVOICE",
    "LF": "PURCHASE_INVOICE",
    "C": "PURCHASE_INVOICE",
    "IK": "PURCHASE_INVOICE",
}
# Salary receipts get ids far above the generated vouchers' so both share one id space.
_SALARY_ID_BASE: Final = 900_000_000
_TRANSACTION_TYPES: Final = frozenset({"ENTRY", "REVERSING_ENTRY"})
PeriodStatus = Literal["OPEN", "CLOSED", "PENDING"]
_COUNTRY_NAMES: Final = {"FI": "FINLAND", "NO": "NORWAY", "SE": "SWEDEN", "NL": "NETHERLANDS"}
_TOKEN_PATH: Final = "/api/oauth/token"  # noqa: S105 - a URL path, not a secret

# Demo tenants (``demo=True``) get these well-known credentials, so a person can try the
# sandbox by hand. They are sandbox-only values, not secrets of anything real.
_DEMO_CREDENTIALS: Final[dict[str, str]] = {
    "client_id": "procountor-demo",
    "client_secret": "procountor-demo-secret",
    "redirect_uri": "http://127.0.0.1:8080/callback",
    "username": "demo",
    "password": "demo",
    "api_key": "procountor-demo-api-key",
}


# --------------------------------------------------------------------------------------------
# Registration: clients, users and API keys come from the tenants' credentials
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _ApiKey:
    username: str
    tenant_id: str
    client_id: str


def add_user(
    world: World, tenant: Tenant, username: str, password: str, *, salary_rights: bool = True
) -> None:
    """Give ``tenant``'s company another user (with or without full salary rights)."""
    users: dict[str, dict[str, Any]] = tenant.flags.setdefault("users", {})
    users[username] = {"password": password, "salary_rights": salary_rights}
    _sync(world)


def set_period_status(tenant: Tenant, start: dt.date, status: PeriodStatus) -> None:
    """Force the status of the period starting on ``start`` (e.g. PENDING)."""
    overrides: dict[str, str] = tenant.flags.setdefault("period_status", {})
    overrides[start.isoformat()] = status


def _users(tenant: Tenant) -> dict[str, dict[str, Any]]:
    users: dict[str, dict[str, Any]] = dict(tenant.flags.get("users", {}))
    credentials = tenant.credentials
    if "username" in credentials and "password" in credentials:
        users[credentials["username"]] = {
            "password": credentials["password"],
            "salary_rights": bool(tenant.flags.get("salary_rights", True)),
        }
    return users


def _subject(tenant: Tenant, username: str) -> str:
    # A user's subject names the company too: one person may be a user of several companies.
    return f"{tenant.tenant_id}:{username}"


def _sync(world: World) -> None:
    """Register every tenant's client, users and API key with the OAuth server.

    Tenants may be added after ``mount`` (tests add them to a running sandbox), so this
    runs before every login, token and API request; registering is idempotent and cheap.
    """
    server = procountor_server(world)
    keys: dict[str, _ApiKey] = {}
    for tenant in world.vendor_tenants(VENDOR):
        if tenant.flags.get("demo") and not tenant.credentials:
            tenant.credentials.update(_DEMO_CREDENTIALS)
        credentials = tenant.credentials
        client_id = credentials.get("client_id")
        if client_id:
            known = server.clients.get(client_id)
            wanted = (credentials.get("client_secret"), credentials.get("redirect_uri"))
            if known is None or (known.client_secret, known.redirect_uri) != wanted:
                try:
                    server.register_client(
                        OAuthClient(client_id, wanted[0], redirect_uri=wanted[1])
                    )
                except ValueError:
                    # Procountor accepts no query string in the registered redirect URI: such
                    # a client is never registered, so its logins and tokens are refused.
                    logger.warning("procountor client refused: redirect URI has a query")
        for username, user in _users(tenant).items():
            subject = _subject(tenant, username)
            registered = server.users.get(username)
            if registered is None or registered.subject != subject:
                server.add_user(
                    username, user["password"], subject=subject, tenant=tenant.tenant_id
                )
        api_key = credentials.get("api_key")
        if api_key and client_id and credentials.get("username"):
            keys[api_key] = _ApiKey(credentials["username"], tenant.tenant_id, client_id)
    _API_KEYS[world] = keys


# API keys by world: derived from the tenants' credentials on every sync; weak so a finished
# test's world is not kept alive.
_API_KEYS: weakref.WeakKeyDictionary[World, dict[str, _ApiKey]] = weakref.WeakKeyDictionary()


def procountor_server(world: World) -> OAuthServer:
    """The Procountor OAuth server of ``world`` (tests read ``grant_counts`` from it)."""
    return world.oauth_server(VENDOR, client_credentials_validator=_api_key_validator(world))


def _api_key_validator(
    world: World,
) -> Callable[[OAuthClient, Mapping[str, str], frozenset[str]], ClientCredentialsGrant]:
    def validate(
        client: OAuthClient, extra: Mapping[str, str], scopes: frozenset[str]
    ) -> ClientCredentialsGrant:
        api_key = extra.get("api_key")
        if not api_key:
            raise OAuthError("invalid_request", "api_key is required for client_credentials")
        bound = _API_KEYS.get(world, {}).get(api_key)
        # An API key is bound to one user, one company and one client: presented by another
        # client it is as good as unknown.
        if bound is None or bound.client_id != client.client_id:
            raise OAuthError("invalid_grant", "api_key is invalid for this client")
        tenant = world.tenant(VENDOR, bound.tenant_id)
        if tenant is None:
            raise OAuthError("invalid_grant", "api_key is invalid for this client")
        return ClientCredentialsGrant(_subject(tenant, bound.username), tenant.tenant_id)

    return validate


# --------------------------------------------------------------------------------------------
# Errors in Procountor's shape
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _FieldError:
    field: str | None
    message: str


class ProcountorError(Exception):
    """An API error answered as ``{"errors": [{status, field, message}]}``."""

    def __init__(
        self, status: int, errors: Sequence[_FieldError], headers: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(", ".join(error.message for error in errors))
        self.status = status
        self.errors = list(errors)
        self.headers = dict(headers or {})

    def response(self) -> JSONResponse:
        """The JSON answer."""
        body = {
            "errors": [
                {"status": self.status, "field": error.field, "message": error.message}
                for error in self.errors
            ]
        }
        return JSONResponse(body, status_code=self.status, headers=self.headers)


def _error(status: int, field: str | None, message: str) -> ProcountorError:
    return ProcountorError(status, [_FieldError(field, message)])


def _unauthorized(description: str) -> JSONResponse:
    # Expired and unknown tokens are OAuth errors (RFC 6750), not the API's errors list.
    return JSONResponse(
        {"error": "invalid_token", "error_description": description},
        status_code=401,
        headers={
            "WWW-Authenticate": f'Bearer error="invalid_token", error_description="{description}"'
        },
    )


# --------------------------------------------------------------------------------------------
# Rendering
# --------------------------------------------------------------------------------------------


def _version(stamp: dt.datetime) -> str:
    # UNCONFIRMED: Procountor's version is a modification timestamp; rendered here as UTC
    # without an offset, with microseconds, so string order is time order.
    return stamp.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")


def _number(amount: Decimal) -> float:
    # JSON numbers: two-decimal amounts survive the float round trip (shortest repr).
    return float(amount)


@dataclass(frozen=True)
class _Receipt:
    """A ledger receipt as the API sees it: a generated voucher or a salary receipt."""

    voucher: VoucherData
    type: str
    status: str

    @property
    def id(self) -> int:
        return self.voucher.id

    @property
    def sort_key(self) -> tuple[dt.datetime, int]:
        return (self.voucher.modified_at, self.voucher.id)


class _Dimensions:
    """Procountor's numeric dimension and item ids for the company's dimensions."""

    def __init__(self, dimensions: Sequence[DimensionData]) -> None:
        self.by_kind: dict[str, DimensionData] = {}
        self.item_ids: dict[tuple[str, str], int] = {}
        self.items: dict[int, tuple[DimensionData, int]] = {}
        for dimension in dimensions:
            self.by_kind[dimension.kind] = dimension
            for index, obj in enumerate(dimension.objects):
                item_id = int(dimension.id) * 1000 + index + 1
                self.item_ids[(dimension.kind, obj.code)] = item_id
                self.items[item_id] = (dimension, index)

    def render(self) -> list[dict[str, Any]]:
        return [
            {
                "id": int(dimension.id),
                "name": dimension.name,
                "items": [
                    {
                        "id": self.item_ids[(dimension.kind, obj.code)],
                        "codeName": obj.code,
                        "description": obj.name,
                        # The published DimensionItem: no status when active, "P" when not.
                        **({} if obj.active else {"status": "P"}),
                    }
                    for obj in dimension.objects
                ],
            }
            for dimension in self.by_kind.values()
        ]

    def line_values(self, line: LineData) -> list[dict[str, Any]]:
        values = []
        for kind, code in line.dimensions.items():
            dimension = self.by_kind.get(kind)
            item_id = self.item_ids.get((kind, code))
            if dimension is None or item_id is None:
                continue
            values.append(
                {"dimensionId": int(dimension.id), "itemId": item_id, "value": _number(line.amount)}
            )
        return values


def _render_basic_info(receipt: _Receipt) -> dict[str, Any]:
    """A search result: the published ``LedgerReceiptBasicInfo`` (no transactions)."""
    voucher = receipt.voucher
    return {
        "id": voucher.id,
        "type": receipt.type,
        "status": receipt.status,
        "name": voucher.description,
        "receiptDate": voucher.date.isoformat(),
        "receiptNumber": voucher.number,
        # UNCONFIRMED: the creation stamp; the sandbox keeps only the last modification.
        "created": _version(voucher.modified_at),
        "version": _version(voucher.modified_at),
    }


def _render_receipt(receipt: _Receipt, dimensions: _Dimensions) -> dict[str, Any]:
    """A receipt read by id or saved: the published ``LedgerReceipt``."""
    voucher = receipt.voucher
    return {
        "id": voucher.id,
        "type": receipt.type,
        "status": receipt.status,
        "name": voucher.description,
        "receiptDate": voucher.date.isoformat(),
        "receiptNumber": voucher.number,
        # Required by the schema. UNCONFIRMED: the values Procountor gives a journal without
        # VAT; the sandbox books no VAT, so the receipt-level status is 0.
        "vatType": "SALES" if receipt.type == "SALES_INVOICE" else "PURCHASE",
        "vatStatus": 0,
        "version": _version(voucher.modified_at),
        "transactions": [
            {
                "id": voucher.id * 1000 + line.line_no,
                "transactionType": "ENTRY",
                "account": line.account,
                "accountingValue": _number(line.amount),
                "vatPercent": _number(line.vat_percent or Decimal(0)),
                "description": line.description,
                "dimensionItemValues": dimensions.line_values(line),
            }
            for line in voucher.lines
        ],
    }


# --------------------------------------------------------------------------------------------
# The company's receipts
# --------------------------------------------------------------------------------------------


def _salary_receipts(tenant: Tenant) -> list[VoucherData]:
    """The payroll runs as SALARY receipts (built once per company, kept in Tenant.state)."""
    company = tenant.company
    cached = tenant.state.get("salary")
    if cached is not None and cached[0] is company:
        return list(cached[1])
    receipts = []
    for index, run in enumerate(company.payroll_runs, start=1):
        day = run.date
        if run.corrects_period is not None:
            period = company.fiscal_years[0].periods[0]
            for year in company.fiscal_years:
                if year.start.year == run.year:
                    period = year.periods[run.corrects_period - 1]
            day = period.end
        lines = [
            LineData(
                line_no,
                line.gl_account,
                line.signed_amount,
                line.description,
                dimensions={
                    kind: code
                    for kind, code in (
                        ("cost_centre", line.cost_centre),
                        ("cost_unit", line.cost_unit),
                    )
                    if code is not None
                },
            )
            for line_no, line in enumerate(run.lines, start=1)
        ]
        receipts.append(
            VoucherData(
                id=_SALARY_ID_BASE + index,
                series="SALARY",
                number=index,
                date=day,
                description=f"Salaries {run.reference}",
                lines=lines,
                # Booked in the evening of the pay day, after the day's other receipts.
                modified_at=dt.datetime(day.year, day.month, day.day, 20, tzinfo=dt.UTC)
                + dt.timedelta(microseconds=index),
            )
        )
    tenant.state["salary"] = (company, receipts)
    return list(receipts)


def _receipt_type(voucher: VoucherData) -> str:
    if voucher.series == "SALARY":
        return "SALARY"
    return _SERIES_TYPES.get(voucher.series, "JOURNAL")


def _receipt_status(tenant: Tenant, voucher: VoucherData) -> str:
    if voucher.status != "valid":  # invalidated, or deleted (which Procountor does not do)
        return "INVALIDATED"
    unfinished: set[int] = tenant.state.get("unfinished", set())
    return "UNFINISHED" if voucher.id in unfinished else "APPROVED"


def _receipts(tenant: Tenant, *, salary_visible: bool) -> list[_Receipt]:
    vouchers: Iterable[VoucherData] = tenant.company.vouchers
    if salary_visible:
        vouchers = [*vouchers, *_salary_receipts(tenant)]
    return [_Receipt(v, _receipt_type(v), _receipt_status(tenant, v)) for v in vouchers]


def _find_receipt(tenant: Tenant, receipt_id: int, *, salary_visible: bool) -> _Receipt | None:
    if receipt_id > _SALARY_ID_BASE:
        if not salary_visible:
            return None
        for voucher in _salary_receipts(tenant):
            if voucher.id == receipt_id:
                return _Receipt(voucher, "SALARY", _receipt_status(tenant, voucher))
        return None
    try:
        voucher = tenant.company.voucher(receipt_id)
    except KeyError:
        return None
    return _Receipt(voucher, _receipt_type(voucher), _receipt_status(tenant, voucher))


def _period_status(tenant: Tenant, start: dt.date, closed: bool) -> PeriodStatus:
    overrides: dict[str, str] = tenant.flags.get("period_status", {})
    forced = overrides.get(start.isoformat())
    if forced in ("OPEN", "CLOSED", "PENDING"):
        return forced  # type: ignore[return-value]
    return "CLOSED" if closed else "OPEN"


def _open_for_posting(tenant: Tenant, day: dt.date) -> bool:
    period = tenant.company.period_of(day)
    if period is None:
        return False
    # UNCONFIRMED: a PENDING period (not yet opened) takes no postings either.
    return _period_status(tenant, period.start, period.closed) == "OPEN"


# --------------------------------------------------------------------------------------------
# Request parsing and validation
# --------------------------------------------------------------------------------------------


def _parse_date(value: str | None, field: str, errors: list[_FieldError]) -> dt.date | None:
    if value is None or value == "":
        return None
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        errors.append(_FieldError(field, "INVALID_DATE"))
        return None


def _parse_timestamp(value: str | None, errors: list[_FieldError]) -> dt.datetime | None:
    if value is None or value == "":
        return None
    try:
        stamp = dt.datetime.fromisoformat(value)
    except ValueError:
        errors.append(_FieldError("versionStartDate", "INVALID_DATE"))
        return None
    # A version stamp without an offset is UTC, as the versions this API renders.
    return stamp if stamp.tzinfo is not None else stamp.replace(tzinfo=dt.UTC)


def _parse_int(
    value: str | None,
    field: str,
    default: int,
    low: int,
    high: int | None,
    errors: list[_FieldError],
) -> int:
    if value is None or value == "":
        return default
    try:
        number = int(value)
    except ValueError:
        errors.append(_FieldError(field, "INVALID_VALUE"))
        return default
    if number < low or (high is not None and number > high):
        errors.append(_FieldError(field, "INVALID_VALUE"))
        return default
    return number


def _parse_types(values: Sequence[str], errors: list[_FieldError]) -> set[str] | None:
    wanted = {part.strip() for value in values for part in value.split(",") if part.strip()}
    if not wanted:
        return None
    unknown = wanted - RECEIPT_TYPES
    if unknown:
        errors.append(_FieldError("types", "INVALID_VALUE"))
    return wanted


def _decimal(value: Any) -> Decimal | None:
    if isinstance(value, bool) or not isinstance(value, (int, Decimal, str)):
        return None
    try:
        number = Decimal(value)
    except InvalidOperation:
        return None
    return number if number.is_finite() else None


def _validate_receipt(
    tenant: Tenant, body: Any, dimensions: _Dimensions
) -> tuple[dt.date, str, list[LineData]]:
    """Validate a JOURNAL receipt body; raises :class:`ProcountorError` with every problem."""
    if not isinstance(body, dict):
        raise _error(400, None, "INVALID_JSON")
    errors: list[_FieldError] = []
    company = tenant.company
    if body.get("type") != "JOURNAL":
        # Only journal receipts can be created or edited through the API.
        errors.append(_FieldError("type", "ONLY_JOURNAL_RECEIPTS_ALLOWED"))
    receipt_date = None
    raw_date = body.get("receiptDate")
    if not isinstance(raw_date, str) or not raw_date:
        errors.append(_FieldError("receiptDate", "REQUIRED"))
    else:
        receipt_date = _parse_date(raw_date, "receiptDate", errors)
        if receipt_date is not None and not _open_for_posting(tenant, receipt_date):
            errors.append(_FieldError("receiptDate", "RECEIPT_DATE_NOT_IN_OPEN_PERIOD"))
    name = body.get("name", "")
    if not isinstance(name, str) or len(name) > 255:
        errors.append(_FieldError("name", "INVALID_VALUE"))
        name = ""
    transactions = body.get("transactions")
    lines: list[LineData] = []
    if not isinstance(transactions, list) or len(transactions) < 2:
        errors.append(_FieldError("transactions", "AT_LEAST_TWO_TRANSACTIONS_REQUIRED"))
        transactions = transactions if isinstance(transactions, list) else []
    total = Decimal(0)
    for index, transaction in enumerate(transactions):
        prefix = f"transactions[{index}]"
        if not isinstance(transaction, dict):
            errors.append(_FieldError(prefix, "INVALID_VALUE"))
            continue
        if transaction.get("transactionType", "ENTRY") not in _TRANSACTION_TYPES:
            errors.append(_FieldError(f"{prefix}.transactionType", "INVALID_VALUE"))
        account_number = transaction.get("account")
        account = company.account(account_number) if isinstance(account_number, str) else None
        if account is None:
            errors.append(_FieldError(f"{prefix}.account", "LEDGER_ACCOUNT_NOT_FOUND"))
        elif not account.active:
            errors.append(_FieldError(f"{prefix}.account", "LEDGER_ACCOUNT_NOT_ACTIVE"))
        amount = _decimal(transaction.get("accountingValue"))
        if amount is None or amount.as_tuple().exponent < -2:  # type: ignore[operator]
            errors.append(_FieldError(f"{prefix}.accountingValue", "INVALID_VALUE"))
            amount = Decimal(0)
        total += amount
        vat_percent = _decimal(transaction.get("vatPercent", 0))
        if vat_percent is None or not Decimal(0) <= vat_percent <= Decimal(100):
            errors.append(_FieldError(f"{prefix}.vatPercent", "INVALID_VALUE"))
            vat_percent = Decimal(0)
        description = transaction.get("description", "")
        if not isinstance(description, str):
            errors.append(_FieldError(f"{prefix}.description", "INVALID_VALUE"))
            description = ""
        line_dimensions = _validate_dimension_values(
            transaction.get("dimensionItemValues", []), amount, prefix, dimensions, errors
        )
        lines.append(
            LineData(
                index + 1,
                account_number if isinstance(account_number, str) else "",
                amount,
                description,
                vat_percent or None,
                None,
                line_dimensions,
            )
        )
    if transactions and total != 0:
        errors.append(_FieldError("transactions", "TRANSACTIONS_NOT_BALANCED"))
    if errors:
        raise ProcountorError(400, errors)
    assert receipt_date is not None
    return receipt_date, name, lines


def _validate_dimension_values(
    values: Any, amount: Decimal, prefix: str, dimensions: _Dimensions, errors: list[_FieldError]
) -> dict[str, str]:
    result: dict[str, str] = {}
    if not isinstance(values, list):
        errors.append(_FieldError(f"{prefix}.dimensionItemValues", "INVALID_VALUE"))
        return result
    for index, value in enumerate(values):
        field = f"{prefix}.dimensionItemValues[{index}]"
        if not isinstance(value, dict):
            errors.append(_FieldError(field, "INVALID_VALUE"))
            continue
        item_id = value.get("itemId")
        found = dimensions.items.get(item_id) if isinstance(item_id, int) else None
        if found is None or int(found[0].id) != value.get("dimensionId"):
            errors.append(_FieldError(f"{field}.itemId", "DIMENSION_ITEM_NOT_FOUND"))
            continue
        dimension, position = found
        obj = dimension.objects[position]
        if not obj.active:
            errors.append(_FieldError(f"{field}.itemId", "DIMENSION_ITEM_NOT_ACTIVE"))
            continue
        share = _decimal(value.get("value"))
        if dimension.kind in result:
            # UNCONFIRMED whether the sandbox's data could keep a split: it cannot, so a split
            # of one line over several items of one dimension is refused.
            errors.append(_FieldError(field, "DIMENSION_SPLIT_NOT_SUPPORTED"))
            continue
        if share is None or share != amount:
            errors.append(_FieldError(f"{field}.value", "DIMENSION_VALUE_MUST_MATCH_TRANSACTION"))
            continue
        result[dimension.kind] = obj.code
    return result


# --------------------------------------------------------------------------------------------
# The API
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Caller:
    tenant: Tenant
    token: TokenInfo
    salary_visible: bool


class _Api:
    def __init__(self, world: World) -> None:
        self.world = world

    async def caller(self, request: Request) -> _Caller:
        """Faults, rate limit, token, company checks: the start of every API request."""
        world = self.world
        _sync(world)
        server = procountor_server(world)
        header = request.headers.get("authorization")
        peeked: TokenInfo | None
        try:
            peeked = server.authenticate(header)
        except OAuthTokenInvalid:
            peeked = None
        try:
            await world.faults.apply(request, VENDOR, peeked.tenant if peeked else None)
            if peeked is not None:
                # 20 requests per second per client, as Procountor documents.
                world.rate_limiter(VENDOR).take(peeked.client_id)
        except SandboxRateLimited as limited:
            # UNCONFIRMED: Procountor's 429 body; the errors list keeps one shape for clients.
            raise ProcountorError(
                429,
                [_FieldError(None, "TOO_MANY_REQUESTS")],
                {"Retry-After": limited.retry_after_header},
            ) from None
        except SandboxServerError as failure:
            # UNCONFIRMED: the body of a 5xx; Procountor's gateway answers with a short text.
            raise _error(failure.status, None, "SERVICE_UNAVAILABLE") from None
        try:
            token = server.authenticate(header)
        except OAuthTokenExpired:
            raise _TokenRefusedError("The access token has expired") from None
        except OAuthTokenInvalid:
            raise _TokenRefusedError("The access token is invalid") from None
        tenant = world.tenant(VENDOR, token.tenant or "")
        if tenant is None:
            raise _TokenRefusedError("The access token is invalid")
        if tenant.blocked:
            raise _error(403, None, "COMPANY_BLOCKED")
        if not tenant.api_enabled:
            # The company has not allowed "invoiceable API clients" (a paid add-on).
            raise _error(403, None, "API_CLIENTS_NOT_ALLOWED")
        username = token.subject.partition(":")[2]
        user = _users(tenant).get(username, {})
        return _Caller(tenant, token, bool(user.get("salary_rights", False)))


class _TokenRefusedError(Exception):
    def __init__(self, description: str) -> None:
        super().__init__(description)
        self.description = description


def _api_router(world: World) -> APIRouter:
    api = _Api(world)
    router = APIRouter()

    def dims(tenant: Tenant) -> _Dimensions:
        return _Dimensions(tenant.company.dimensions)

    @router.get("/company")
    async def company(caller: _Caller = Depends(api.caller)) -> dict[str, Any]:
        data: CompanyData = caller.tenant.company
        tenant_id = caller.tenant.tenant_id
        # The published Company: identity in businessIdentifier{brnType, code}, the books'
        # currency in companyCurrency (DKK, EUR, NOK, SEK).
        return {
            "id": int(tenant_id) if tenant_id.isdigit() else tenant_id,
            "name": data.name,
            "country": _COUNTRY_NAMES.get(data.country, "FINLAND"),
            "businessIdentifier": {
                # UNCONFIRMED: the brnType of a company registered in the Nordic country.
                "brnType": data.country if data.country in ("FI", "NO", "SE") else "FI",
                "code": data.business_id,
            },
            "companyCurrency": data.currency,
        }

    @router.get("/coa")
    async def coa(caller: _Caller = Depends(api.caller)) -> dict[str, Any]:
        return {
            "ledgerAccounts": [
                {"ledgerAccountCode": a.number, "name": a.name, "active": a.active}
                for a in caller.tenant.company.accounts
            ]
        }

    @router.get("/dimensions")
    async def dimensions(caller: _Caller = Depends(api.caller)) -> list[dict[str, Any]]:
        return dims(caller.tenant).render()

    @router.get("/fiscalyears")
    async def fiscal_years(caller: _Caller = Depends(api.caller)) -> dict[str, Any]:
        tenant = caller.tenant
        years = []
        for number, year in enumerate(tenant.company.fiscal_years, start=1):
            # The published FiscalYear: periods are trackingPeriods[] (status OPEN, CLOSED,
            # PENDING) and the year itself says isOpen.
            periods = [
                {
                    "id": number * 100 + index,
                    "startDate": period.start.isoformat(),
                    "endDate": period.end.isoformat(),
                    "status": _period_status(tenant, period.start, period.closed),
                }
                for index, period in enumerate(year.periods, start=1)
            ]
            statuses = {period["status"] for period in periods}
            years.append(
                {
                    "id": number,
                    "startDate": year.start.isoformat(),
                    "endDate": year.end.isoformat(),
                    "isOpen": statuses != {"CLOSED"},
                    "trackingPeriods": periods,
                }
            )
        # Published: newest fiscal year first, tracking periods in chronological order.
        years.reverse()
        return {"fiscalYears": years}

    @router.get("/ledgerreceipts")
    async def list_receipts(
        request: Request, caller: _Caller = Depends(api.caller)
    ) -> dict[str, Any]:
        params = request.query_params
        errors: list[_FieldError] = []
        start = _parse_date(params.get("startDate"), "startDate", errors)
        end = _parse_date(params.get("endDate"), "endDate", errors)
        since = _parse_timestamp(params.get("versionStartDate"), errors)
        types = _parse_types(params.getlist("types"), errors)
        page = _parse_int(params.get("page"), "page", 0, 0, None, errors)
        size = _parse_int(params.get("size"), "size", DEFAULT_PAGE_SIZE, 1, MAX_PAGE_SIZE, errors)
        if start is not None and end is not None and start > end:
            errors.append(_FieldError("endDate", "END_DATE_BEFORE_START_DATE"))
        if types and "SALARY" in types and not caller.salary_visible:
            # UNCONFIRMED: asking for salary receipts outright without full salary rights is
            # refused; an unfiltered listing silently leaves them out (as Procountor does).
            raise _error(403, "types", "INSUFFICIENT_SALARY_RIGHTS")
        if errors:
            raise ProcountorError(400, errors)
        selected = [
            receipt
            for receipt in _receipts(caller.tenant, salary_visible=caller.salary_visible)
            if (start is None or receipt.voucher.date >= start)
            and (end is None or receipt.voucher.date <= end)
            and (since is None or receipt.voucher.modified_at >= since)
            and (types is None or receipt.type in types)
        ]
        _sort_receipts(selected, params, errors)
        if errors:
            raise ProcountorError(400, errors)
        chunk = selected[page * size : (page + 1) * size]
        return {
            # The published search answers LedgerReceiptBasicInfo: transactions only come
            # with GET /ledgerreceipts/{receiptId}.
            "results": [_render_basic_info(receipt) for receipt in chunk],
            "meta": {
                "pageNumber": page,
                "pageSize": size,
                "resultCount": len(chunk),
                "totalCount": len(selected),
            },
        }

    @router.get("/ledgerreceipts/{ids}")
    async def get_receipts(ids: str, caller: _Caller = Depends(api.caller)) -> Any:
        parts = [part.strip() for part in ids.split(",")]
        if len(parts) > MAX_IDS:
            raise _error(400, "ids", "TOO_MANY_IDS")
        try:
            numbers = [int(part) for part in parts]
        except ValueError:
            raise _error(400, "ids", "INVALID_VALUE") from None
        dimension_ids = dims(caller.tenant)
        found = [
            receipt
            for number in numbers
            if (
                receipt := _find_receipt(
                    caller.tenant, number, salary_visible=caller.salary_visible
                )
            )
            is not None
        ]
        if len(numbers) == 1:
            if not found:
                raise _error(404, "id", "NOT_FOUND")
            return _render_receipt(found[0], dimension_ids)
        # UNCONFIRMED: several ids answer a list; ids not found (or not visible) are left out.
        return [_render_receipt(receipt, dimension_ids) for receipt in found]

    @router.post("/ledgerreceipts")
    async def create_receipt(
        request: Request, caller: _Caller = Depends(api.caller)
    ) -> dict[str, Any]:
        body = await _json_body(request)
        tenant = caller.tenant
        dimension_ids = dims(tenant)
        receipt_date, name, lines = _validate_receipt(tenant, body, dimension_ids)
        voucher = tenant.company.add_voucher(
            date=receipt_date, description=name, lines=lines, series="JOURNAL"
        )
        tenant.state.setdefault("unfinished", set()).add(voucher.id)
        return _render_receipt(_Receipt(voucher, "JOURNAL", "UNFINISHED"), dimension_ids)

    @router.put("/ledgerreceipts/{receipt_id}")
    async def update_receipt(
        receipt_id: str, request: Request, caller: _Caller = Depends(api.caller)
    ) -> dict[str, Any]:
        tenant = caller.tenant
        try:
            number = int(receipt_id)
        except ValueError:
            raise _error(400, "id", "INVALID_VALUE") from None
        receipt = _find_receipt(tenant, number, salary_visible=caller.salary_visible)
        if receipt is None:
            raise _error(404, "id", "NOT_FOUND")
        body = await _json_body(request)
        version = body.get("version") if isinstance(body, dict) else None
        if not isinstance(version, str) or not version:
            raise _error(400, "version", "REQUIRED")
        if version != _version(receipt.voucher.modified_at):
            # UNCONFIRMED: the status of a stale version; 409 Conflict in the errors shape.
            raise _error(409, "version", "VERSION_CONFLICT")
        if receipt.type != "JOURNAL":
            raise _error(400, "type", "ONLY_JOURNAL_RECEIPTS_ALLOWED")
        if receipt.status == "INVALIDATED":
            raise _error(400, "status", "RECEIPT_INVALIDATED")
        if not _open_for_posting(tenant, receipt.voucher.date):
            raise _error(400, "receiptDate", "RECEIPT_DATE_NOT_IN_OPEN_PERIOD")
        dimension_ids = dims(tenant)
        receipt_date, name, lines = _validate_receipt(tenant, body, dimension_ids)
        voucher = tenant.company.edit_voucher(
            number, description=name, date=receipt_date, lines=lines
        )
        return _render_receipt(
            _Receipt(voucher, receipt.type, _receipt_status(tenant, voucher)), dimension_ids
        )

    return router


_ORDERS: Final = ("orderByVersion", "orderById", "orderByDate", "orderByCreated")


def _sort_receipts(
    receipts: list[_Receipt], params: Mapping[str, str], errors: list[_FieldError]
) -> None:
    """Order a search as the published parameters ask: every ``orderBy*`` defaults to DESC.

    UNCONFIRMED: how several ``orderBy*`` parameters combine; here the first one given in
    the order version, id, date, created decides, ties broken by id in the same direction.
    Without any the newest version comes first.
    """
    chosen: tuple[str, str] | None = None
    for name in _ORDERS:
        value = params.get(name)
        if value is None:
            continue
        if value not in ("ASC", "DESC"):
            errors.append(_FieldError(name, "INVALID_VALUE"))
            continue
        if chosen is None:
            chosen = (name, value)
    name, direction = chosen or ("orderByVersion", "DESC")
    keys: dict[str, Callable[[_Receipt], tuple[Any, ...]]] = {
        "orderByVersion": lambda r: r.sort_key,
        "orderById": lambda r: (r.id,),
        "orderByDate": lambda r: (r.voucher.date, r.id),
        "orderByCreated": lambda r: r.sort_key,
    }
    receipts.sort(key=keys[name], reverse=direction == "DESC")


async def _json_body(request: Request) -> Any:
    raw = await request.body()
    try:
        # Amounts are read exactly: a float would hide a third decimal.
        return json.loads(raw or b"null", parse_float=Decimal)
    except (ValueError, UnicodeDecodeError):
        raise _error(400, None, "INVALID_JSON") from None


def mount(app: FastAPI, world: World) -> None:
    """Mount the Procountor stand-in under ``/procountor``."""
    server = procountor_server(world)

    async def sync() -> None:
        _sync(world)

    app.include_router(
        oauth_router(server, authorize_path="/login", token_path=_TOKEN_PATH),
        prefix=f"/{VENDOR}",
        dependencies=[Depends(sync)],
    )
    app.include_router(_api_router(world), prefix=f"/{VENDOR}/api", include_in_schema=False)

    async def procountor_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, ProcountorError)
        return exc.response()

    async def token_refused(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, _TokenRefusedError)
        return _unauthorized(exc.description)

    app.add_exception_handler(ProcountorError, procountor_error)
    app.add_exception_handler(_TokenRefusedError, token_refused)
