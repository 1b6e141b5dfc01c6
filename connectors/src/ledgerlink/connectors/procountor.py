"""Finago Procountor connector: REST/JSON with OAuth 2.0.

* **Authorization.** A person logs in at ``{host}/login`` (authorization code; the client has
  exactly one registered redirect URI, without a query string) and the code is exchanged at
  ``{host}/api/oauth/token``; access tokens live an hour and are refreshed with the rotating
  refresh token. Machine-to-machine connections use ``client_credentials`` plus an
  ``api_key`` bound to one user, one company and this client. Both go through the shared
  :class:`~ledgerlink.connectors.oauth.OAuthSession` (authlib); a 401 refreshes once.
* **One company per token.** A token speaks for the company it was issued for, so
  :meth:`ProcountorConnector.list_companies` returns that one company (``GET /company``).
* **Incremental reads** use ``GET /ledgerreceipts?versionStartDate=...&page=...&size=...``.
  The cursor keeps the last version read and the id of the last receipt with that version:
  the next request starts at that version (the filter is inclusive) and drops what was
  already delivered. A receipt edited or invalidated between two syncs gets a new version
  and is returned again by the next sync. Paging inside one version (more receipts with the
  same version than fit on a page) uses ``page``.
* **Salary receipts** are visible only to a user with full salary rights. Without them the
  ledger does not balance (Procountor's own warning, seed 001); the connector checks once
  per connection and puts a warning on every :class:`ProcountorVoucherPage` (or raises
  :class:`AccessNotEnabled` when ``require_salary_visibility`` is set).
* **Errors** ``{"errors": [{status, field, message}]}`` are mapped by their ``message``
  code to the connector error classes; the vendor's codes and fields are kept on the
  exception. OAuth errors are mapped by :mod:`ledgerlink.connectors.oauth`.
* **Rate**: 20 requests/s per client (Procountor documents that exceeding it may suspend
  the client), enforced by a process-wide :class:`SlidingWindowBudget` keyed by client id:
  at most 20 requests in any 1/0.97 s, whatever way Procountor counts (unpublished).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import math
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from decimal import Decimal
from typing import Any, ClassVar, Final
from urllib.parse import urlsplit

import httpx
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator

from ledgerlink.connectors.answers import AnswerReader
from ledgerlink.connectors.base import LedgerConnector
from ledgerlink.connectors.credentials import CredentialBearerAuth, CredentialProvider
from ledgerlink.connectors.errors import (
    AccessNotEnabled,
    ConcurrencyConflict,
    ConnectorError,
    DuplicateData,
    InvalidData,
    NotFound,
    PeriodLocked,
    RateLimited,
    ReauthorizationRequired,
    VendorUnavailable,
)
from ledgerlink.connectors.http import (
    RateBudget,
    RetryPolicy,
    VendorHttpClient,
    default_classify,
    retry_after_of,
)
from ledgerlink.connectors.models import (
    Account,
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
from ledgerlink.connectors.oauth import OAuthClientSettings, OAuthSession, TokenSet, TokenStore
from ledgerlink.connectors.window_budget import window_budget_for

__all__ = [
    "MAX_IDS",
    "MAX_PAGE_SIZE",
    "SALARY_NOT_VISIBLE",
    "ProcountorConnector",
    "ProcountorSettings",
    "ProcountorVoucherPage",
    "classify_response",
]

logger = logging.getLogger(__name__)

VENDOR: Final = "procountor"
MAX_PAGE_SIZE: Final = 200
MAX_IDS: Final = 200
SALARY_NOT_VISIBLE: Final = (
    "salary receipts are not visible to the Procountor user of this connection (no full "
    "salary rights): the ledger read will not balance; connect with a user who has access "
    "to payroll"
)

# Enums of the published schema (Procountor's OpenAPI document, as generated into the public
# client rantalainen/procountor-api-client src/api.ts; see connectors/tests/contracts/
# procountor/SOURCES.md). A value outside these is an UnexpectedResponse, not a guess.
_CURRENCIES: Final = frozenset({"DKK", "EUR", "NOK", "SEK"})
_PERIOD_STATUSES: Final = frozenset({"OPEN", "CLOSED", "PENDING"})
_TRANSACTION_TYPES: Final = frozenset({"ENTRY", "RECONCILIATION_ENTRY", "REVERSING_ENTRY"})
_RECEIPT_TYPES: Final = frozenset(
    {
        "JOURNAL",
        "PURCHASE_INVOICE",
        "SALES_INVOICE",
        "PERIODIC_TAX_RETURN",
        "TRAVEL_INVOICE",
        "BILL_OF_CHARGES",
        "VAT_FORM",
        "SALARY",
        "EMPLOYER_CONTRIBUTION",
        "PURCHASE_ORDER",
        "SALES_ORDER",
        "BANK_STATEMENT_AS_RECEIPT",
        "RECEIPT_FOR_OPENING_ACCOUNTS",
        "REFERENCE_PAYMENT",
        "TRACKING_PERIOD_OPENING_RECEIPT",
        "VAT_SUMMARY",
    }
)
_RECEIPT_STATUSES: Final = frozenset(
    {
        "APPROVED",
        "DELETED",
        "EMPTY",
        "INVALIDATED",
        "INVOICED",
        "MARKED_PAID",
        "NOT_SENT",
        "OVERRIDDEN",
        "PAID",
        "PARTLY_PAID",
        "PAYMENT_DENIED",
        "PAYMENT_QUEUED",
        "PAYMENT_SENT_TO_BANK",
        "PAYMENT_TRANSACTION_REMOVED",
        "RECEIVED",
        "SENT",
        "STARTED",
        "UNFINISHED",
        "UNSAVED",
        "VERIFIED",
    }
)
# UNCONFIRMED: the schema does not say which statuses take a receipt out of the ledger;
# INVALIDATED does by name (journals: UNFINISHED, APPROVED, INVALIDATED) and DELETED is read
# the same way.
_VOID_STATUSES: Final = frozenset({"INVALIDATED", "DELETED"})

# Error codes of ``errors[].message`` that need a more precise class than the status gives.
# UNCONFIRMED: Procountor's exact codes are not public; these are the sandbox's, named the
# way Procountor names its codes.
_PERIOD_CODES: Final = frozenset({"RECEIPT_DATE_NOT_IN_OPEN_PERIOD", "PERIOD_CLOSED"})
_CONFLICT_CODES: Final = frozenset({"VERSION_CONFLICT"})
_DUPLICATE_CODES: Final = frozenset({"DUPLICATE", "ALREADY_EXISTS"})
_SALARY_RIGHTS_CODE: Final = "INSUFFICIENT_SALARY_RIGHTS"

# UNCONFIRMED: Procountor dimensions carry no kind; these are the usual names (Finnish and
# English). Settings can add more.
_DEFAULT_DIMENSION_KINDS: Final[dict[str, DimensionKind]] = {
    "kustannuspaikka": "cost_centre",
    "cost centre": "cost_centre",
    "cost center": "cost_centre",
    "kustannusyksikkö": "cost_unit",
    "cost unit": "cost_unit",
    "tuote": "cost_unit",
    "projekti": "project",
    "project": "project",
}

# A process-wide budget: several connections of one client share Procountor's per-client
# limit. Keyed by (vendor, client id) inside.


class ProcountorSettings(BaseModel):
    """One Procountor API client (and, for machine access, its API key)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    client_id: str = Field(min_length=1, description="The API client's id.")
    client_secret: SecretStr = Field(description="The API client's secret.")
    redirect_uri: str = Field(
        description="The one redirect URI registered for the client (no query string)."
    )
    base_url: str = Field(
        default="https://api.procountor.com",
        description="Host of the environment (test: https://pts-api.procountor.com); "
        "the API is under /api.",
    )
    api_key: SecretStr | None = Field(
        default=None,
        description="API key for client_credentials (bound to user + company + client).",
    )
    requests_per_second: float = Field(
        default=20, gt=0, description="Procountor's documented limit per client."
    )
    burst: int = Field(
        default=10,
        ge=1,
        description="Unused since the budget counts per second (kept for old settings).",
    )
    page_size: int = Field(default=MAX_PAGE_SIZE, ge=1, le=MAX_PAGE_SIZE)
    require_salary_visibility: bool = Field(
        default=False,
        description="Refuse to read vouchers when salary receipts are hidden from the user.",
    )
    dimension_kinds: dict[str, DimensionKind] = Field(
        default_factory=dict,
        description="Extra dimension name (case-insensitive) -> kind mappings.",
    )

    @field_validator("redirect_uri")
    @classmethod
    def _no_query(cls, value: str) -> str:
        if urlsplit(value).query or "?" in value:
            raise ValueError("Procountor accepts no query string in the redirect URI")
        return value

    @field_validator("base_url")
    @classmethod
    def _strip_slash(cls, value: str) -> str:
        return value.rstrip("/")

    def oauth(self) -> OAuthClientSettings:
        """The OAuth client settings of this API client."""
        return OAuthClientSettings(
            client_id=self.client_id,
            client_secret=self.client_secret,
            authorize_url=f"{self.base_url}/login",
            token_url=f"{self.base_url}/api/oauth/token",
            redirect_uri=self.redirect_uri,
            # Procountor documents no PKCE for its code grant.
            use_pkce=False,
        )


class ProcountorVoucherPage(VoucherPage):
    """A page of vouchers with warnings about what the read could not see."""

    warnings: tuple[str, ...] = ()


# --------------------------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------------------------


def _json(response: httpx.Response) -> Any:
    try:
        return json.loads(response.content, parse_float=Decimal)
    except (ValueError, UnicodeDecodeError):
        return None


def classify_response(response: httpx.Response) -> ConnectorError | None:
    """The connector error for a Procountor API answer (``None`` for success)."""
    status = response.status_code
    if status < 400:
        return None
    body = _json(response)
    errors = body.get("errors") if isinstance(body, dict) else None
    if not isinstance(errors, list) or not errors:
        if isinstance(body, dict) and "error" in body:
            # The OAuth shape: an expired or unknown token that a refresh did not fix.
            return ReauthorizationRequired(
                VENDOR,
                "the access token was refused",
                vendor_code=str(body.get("error")),
                vendor_message=str(body.get("error_description") or ""),
                status=status,
            )
        return default_classify(VENDOR, response)
    codes = [str(error.get("message", "")) for error in errors if isinstance(error, dict)]
    detail = "; ".join(
        f"{error.get('field')}: {error.get('message')}"
        if error.get("field")
        else f"{error.get('message')}"
        for error in errors
        if isinstance(error, dict)
    )
    code = codes[0] if codes else None
    kwargs: dict[str, Any] = {"vendor_code": code, "vendor_message": detail, "status": status}
    if status == 429:
        return RateLimited(
            VENDOR,
            "rate limited",
            retry_after=retry_after_of(response),
            **kwargs,
        )
    if status >= 500:
        return VendorUnavailable(VENDOR, "Procountor is unavailable", **kwargs)
    found = set(codes)
    if status == 401:
        return ReauthorizationRequired(VENDOR, "the access token was refused", **kwargs)
    if status == 403:
        return AccessNotEnabled(VENDOR, _access_message(found), **kwargs)
    if status == 404:
        return NotFound(VENDOR, "not found", **kwargs)
    if status in (409, 412) or found & _CONFLICT_CODES:
        return ConcurrencyConflict(
            VENDOR, "the receipt changed since it was read (stale version)", **kwargs
        )
    if found & _PERIOD_CODES:
        return PeriodLocked(VENDOR, "the receipt date is not in an open period", **kwargs)
    if found & _DUPLICATE_CODES:
        return DuplicateData(VENDOR, "Procountor already has this item", **kwargs)
    return InvalidData(VENDOR, "Procountor refused the data", **kwargs)


def _access_message(codes: set[str]) -> str:
    if "API_CLIENTS_NOT_ALLOWED" in codes:
        return "the company has not enabled the API (Allow the usage of invoiceable API clients)"
    if _SALARY_RIGHTS_CODE in codes:
        return "the user has no full salary rights"
    return "access refused"


# --------------------------------------------------------------------------------------------
# Cursor
# --------------------------------------------------------------------------------------------


class _Cursor(BaseModel):
    """What :attr:`SyncCursor.token` holds for Procountor (JSON)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    since: str | None = Field(default=None, description="versionStartDate (inclusive).")
    after_id: int | None = Field(
        default=None, description="Receipts with version == since and id <= this were read."
    )
    page: int = Field(default=0, ge=0)

    def dump(self) -> SyncCursor:
        return SyncCursor(token=self.model_dump_json(exclude_defaults=True))

    @classmethod
    def load(cls, cursor: SyncCursor | None) -> _Cursor:
        if cursor is None or cursor.is_start:
            return cls()
        try:
            return cls.model_validate_json(cursor.token)
        except ValidationError:
            raise ValueError("not a Procountor sync cursor") from None


def _stamp(version: str) -> dt.datetime:
    stamp = dt.datetime.fromisoformat(version)
    return stamp if stamp.tzinfo is not None else stamp.replace(tzinfo=dt.UTC)


# --------------------------------------------------------------------------------------------
# The connector
# --------------------------------------------------------------------------------------------


class _DimensionIndex:
    """Item ids <-> (dimension, code) from ``GET /dimensions``."""

    def __init__(self, dimensions: Sequence[Dimension], item_ids: Mapping[int, tuple[str, str]]):
        self.dimensions = list(dimensions)
        self.by_item: dict[int, tuple[str, str]] = dict(item_ids)  # item id -> (key, code)
        self.items: dict[tuple[DimensionKind, str], tuple[int, int]] = {}
        for dimension in dimensions:
            if dimension.kind is None:
                continue
            for item_id, (key, code) in item_ids.items():
                if key == dimension.kind:
                    self.items[(dimension.kind, code)] = (int(dimension.id), item_id)


class ProcountorConnector(LedgerConnector):
    """A :class:`LedgerConnector` for the Procountor company a token speaks for."""

    vendor: ClassVar[str] = VENDOR

    def __init__(
        self,
        settings: ProcountorSettings,
        *,
        session: OAuthSession | None = None,
        store: TokenStore | None = None,
        store_key: str | None = None,
        credentials: CredentialProvider | None = None,
        budget: RateBudget | None = None,
        retry: RetryPolicy | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        #: When given (auth's token service), it supplies the bearer token.
        self.credentials = credentials
        self.session = session or OAuthSession(
            VENDOR,
            settings.oauth(),
            store=store,
            store_key=store_key or f"{VENDOR}:{settings.client_id}",
            transport=transport,
        )
        self._http = VendorHttpClient(
            VENDOR,
            f"{settings.base_url}/api",
            tenant=settings.client_id,
            classify=classify_response,
            # Procountor publishes "20 requests/s per client" and nothing of how it counts
            # (UNCONFIRMED: fixed second, sliding second or token bucket). The budget keeps
            # to the strictest reading: never more than the limit in any second (a token
            # bucket with a burst let burst + rate through in a second after a pause).
            budget=budget
            or window_budget_for(
                VENDOR,
                max(1, math.floor(settings.requests_per_second)),
                1.0,
                spread=True,
                sleep=sleep,
                clock=clock,
            ),
            retry=retry,
            # With auth's token service the bearer token comes from it, and this connector
            # never fetches or refreshes one itself (one refresher per connection).
            auth=CredentialBearerAuth(credentials, VENDOR)
            if credentials is not None
            else self.session.auth(),
            transport=transport,
            sleep=sleep,
            clock=clock,
        )
        self._machine_token_fetched = False
        self._dimensions: _DimensionIndex | None = None
        self._salary_visible: bool | None = None

    def __repr__(self) -> str:
        return f"ProcountorConnector(client_id={self.settings.client_id!r})"

    async def aclose(self) -> None:
        """Close the API and token endpoint clients."""
        await self._http.aclose()
        await self.session.aclose()

    # -- authorization ---------------------------------------------------------------------

    def authorization_url(self, state: str) -> str:
        """The login URL to send the person to (authorization code grant)."""
        url, _verifier = self.session.authorization_url(state)
        return url

    async def exchange_code(self, code: str) -> TokenSet:
        """Trade the code from the redirect for tokens (stored in the session's store)."""
        return await self.session.exchange_code(code)

    async def _ensure_token(self) -> None:
        # With an API key the connection is machine-to-machine: fetch the token at first use
        # (and again whenever the session refreshes it).
        if (
            self.settings.api_key is not None
            and self.credentials is None
            and not self._machine_token_fetched
        ):
            await self.session.client_credentials(api_key=self.settings.api_key.get_secret_value())
            self._machine_token_fetched = True

    async def _call(
        self, method: str, path: str, *, endpoint: str | None = None, **kwargs: Any
    ) -> tuple[Any, AnswerReader]:
        """The decoded JSON answer and a reader naming the endpoint (``endpoint`` is the path
        template when ``path`` carries identifiers)."""
        await self._ensure_token()
        response = await self._http.request(method, path, **kwargs)
        reader = AnswerReader(VENDOR, f"{method} {endpoint or path}", response.status_code)
        body = _json(response)
        if body is None:
            raise reader.unexpected("the answer is not JSON (empty or truncated body)")
        return body, reader

    # -- reads -----------------------------------------------------------------------------

    async def list_companies(self) -> list[Company]:
        """The one company the token speaks for (``GET /company``, published ``Company``).

        The published schema carries the business ID in ``businessIdentifier.code`` and the
        books' currency in ``companyCurrency`` (DKK, EUR, NOK or SEK); there is no
        ``businessId`` or ``currency`` field.
        """
        body, read = await self._call("GET", "/company")
        company = read.mapping(body, "Company")
        identifier = company.get("businessIdentifier")
        business_id = None
        if identifier is not None:
            business_id = read.optional_string(
                read.mapping(identifier, "Company.businessIdentifier"),
                "code",
                "Company.businessIdentifier",
            )
        currency = read.choice(company, "companyCurrency", "Company", _CURRENCIES)
        if currency is None:
            # UNCONFIRMED: the field is optional in the schema; a company that does not say
            # keeps its books in euros (Procountor's home currency).
            currency = "EUR"
        return [
            Company(
                external_id=read.string(company, "id", "Company"),
                business_id=business_id or None,
                name=read.string(company, "name", "Company"),
                currency=currency,
            )
        ]

    async def read_accounts(self) -> list[Account]:
        """The chart of accounts (``GET /coa``, published ``LedgerAccounts``); Procountor
        gives no account type."""
        body, read = await self._call("GET", "/coa")
        root = read.mapping(body, "LedgerAccounts")
        accounts = []
        for n, item in enumerate(read.optional_items(root, "ledgerAccounts", "LedgerAccounts")):
            where = f"ledgerAccounts[{n}]"
            account = read.mapping(item, where)
            accounts.append(
                Account(
                    number=read.string(account, "ledgerAccountCode", where),
                    name=read.optional_string(account, "name", where) or "",
                    active=read.boolean(account, "active", where, default=True),
                )
            )
        return accounts

    async def read_dimensions(self) -> list[Dimension]:
        """Dimensions and their items (``GET /dimensions``, published ``Dimension[]``); kinds
        recognised by name.

        An item is active unless it carries ``status`` (the schema: absent when active,
        ``"P"`` when inactive).
        """
        body, read = await self._call("GET", "/dimensions")
        kinds = {
            **_DEFAULT_DIMENSION_KINDS,
            **{k.lower(): v for k, v in self.settings.dimension_kinds.items()},
        }
        dimensions = []
        item_ids: dict[int, tuple[str, str]] = {}
        for n, element in enumerate(read.items(body, "Dimension[]")):
            where = f"[{n}]"
            dimension = read.mapping(element, where)
            name = read.string(dimension, "name", where)
            kind = kinds.get(name.strip().lower())
            key = kind or name
            objects = []
            for m, entry in enumerate(read.optional_items(dimension, "items", where)):
                item_where = f"{where}.items[{m}]"
                item = read.mapping(entry, item_where)
                code = read.string(item, "codeName", item_where)
                item_ids[read.integer(item, "id", item_where)] = (key, code)
                objects.append(
                    DimensionObject(
                        code=code,
                        name=read.optional_string(item, "description", item_where) or code,
                        # UNCONFIRMED: only "P" is documented; any status at all means the
                        # item is not plainly active.
                        active=read.optional_string(item, "status", item_where) is None,
                    )
                )
            dimensions.append(
                Dimension(
                    id=read.string(dimension, "id", where),
                    name=name,
                    kind=kind,
                    objects=tuple(objects),
                )
            )
        self._dimensions = _DimensionIndex(dimensions, item_ids)
        return dimensions

    async def read_periods(self) -> list[Period]:
        """Tracking periods of every fiscal year (``GET /fiscalyears``, published
        ``FiscalYears``): they live in ``fiscalYears[].trackingPeriods[]`` with a required
        ``status`` of OPEN, CLOSED or PENDING; only OPEN ones take postings.

        A PENDING period is not open yet, so it counts as closed. A fiscal year without
        tracking periods is one period, open or closed by its ``isOpen``.
        """
        body, read = await self._call("GET", "/fiscalyears")
        root = read.mapping(body, "FiscalYears")
        periods = []
        for n, entry in enumerate(read.optional_items(root, "fiscalYears", "FiscalYears")):
            where = f"fiscalYears[{n}]"
            year = read.mapping(entry, where)
            tracking = read.optional_items(year, "trackingPeriods", where)
            if not tracking:
                # UNCONFIRMED: the schema says tracking periods exist "if" defined; a year
                # without them is read as one period.
                open_year = read.boolean(year, "isOpen", where, default=False)
                periods.append(
                    Period(
                        start=read.iso_date(year, "startDate", where),
                        end=read.iso_date(year, "endDate", where),
                        status="open" if open_year else "closed",
                    )
                )
                continue
            for m, item in enumerate(tracking):
                period_where = f"{where}.trackingPeriods[{m}]"
                period = read.mapping(item, period_where)
                status = read.choice(period, "status", period_where, _PERIOD_STATUSES)
                if status is None:
                    raise read.unexpected(f"{period_where}.status is missing")
                periods.append(
                    Period(
                        start=read.iso_date(period, "startDate", period_where),
                        end=read.iso_date(period, "endDate", period_where),
                        status="open" if status == "OPEN" else "closed",
                    )
                )
        return sorted(periods, key=lambda period: period.start)

    async def _dimension_index(self) -> _DimensionIndex:
        if self._dimensions is None:
            await self.read_dimensions()
        assert self._dimensions is not None
        return self._dimensions

    async def salary_receipts_visible(self) -> bool:
        """Whether the user sees salary receipts (checked once per connection)."""
        if self._salary_visible is None:
            try:
                await self._call("GET", "/ledgerreceipts", params={"types": "SALARY", "size": 1})
            except AccessNotEnabled as refused:
                if refused.vendor_code != _SALARY_RIGHTS_CODE:
                    raise
                self._salary_visible = False
                logger.warning(
                    "procountor salary receipts not visible: the ledger will not balance",
                    extra={"vendor": VENDOR, "client_id": self.settings.client_id},
                )
            else:
                self._salary_visible = True
        return self._salary_visible

    async def read_vouchers(
        self, cursor: SyncCursor | None = None, *, page_size: int | None = None
    ) -> ProcountorVoucherPage:
        """One page of ledger receipts changed since ``cursor``; see the module docstring.

        The search (``GET /ledgerreceipts``) answers ``LedgerReceiptBasicInfo`` only: no
        transactions. The receipts of a page are then read in full by id
        (``GET /ledgerreceipts/{id,id,...}``, at most 200 ids, one call per page).
        ``page_size`` above Procountor's maximum of 200 is lowered to 200.
        """
        state = _Cursor.load(cursor)
        size = min(page_size or self.settings.page_size, MAX_PAGE_SIZE)
        if size < 1:
            raise ValueError("page_size must be at least 1")
        warnings: tuple[str, ...] = ()
        if not await self.salary_receipts_visible():
            if self.settings.require_salary_visibility:
                raise AccessNotEnabled(VENDOR, SALARY_NOT_VISIBLE, vendor_code=_SALARY_RIGHTS_CODE)
            warnings = (SALARY_NOT_VISIBLE,)
        # The published default order is newest first (DESC); the cursor needs oldest
        # version first, ties by id. UNCONFIRMED: which of two orderBy parameters wins; both
        # ask for ascending order, version being the one the cursor depends on.
        params: dict[str, Any] = {
            "page": state.page,
            "size": size,
            "orderByVersion": "ASC",
            "orderById": "ASC",
        }
        if state.since is not None:
            params["versionStartDate"] = state.since
        body, read = await self._call("GET", "/ledgerreceipts", params=params)
        root = read.mapping(body, "LedgerReceiptSearchResult")
        results = [
            _basic_info(read, item, f"results[{n}]")
            for n, item in enumerate(read.optional_items(root, "results", ""))
        ]
        meta = root.get("meta")
        total: int | None = None
        if meta is not None:
            meta_map = read.mapping(meta, "meta")
            if meta_map.get("totalCount") is not None:
                total = read.integer(meta_map, "totalCount", "meta")
        if total is None:
            # UNCONFIRMED: meta is optional in the schema; without it a full page means
            # there may be more.
            has_more = len(results) >= size
        else:
            has_more = (state.page + 1) * size < total and bool(results)
        since = _stamp(state.since) if state.since is not None else None
        wanted = [
            info
            for info in results
            if not (
                since is not None
                and state.after_id is not None
                and info.stamp == since
                and info.id <= state.after_id
            )
        ]
        full = {voucher.external_id: voucher for voucher in await self._read_by_ids(wanted)}
        vouchers = []
        for info in wanted:
            voucher = full.get(str(info.id))
            if voucher is None:
                # UNCONFIRMED: a receipt deleted between the search and the read is left
                # out; its next version (if any) comes with a later sync.
                continue
            vouchers.append(voucher)
        next_state = state.model_copy(update={"page": 0})
        if results:
            last = results[-1]
            last_version, last_id = last.version, last.id
            same_version = since is not None and last.stamp == since
            if same_version and state.after_id is not None:
                # Re-reading receipts of the cursor's own version must not move it back.
                last_id = max(last_id, state.after_id)
            if has_more and same_version:
                # A whole page with one version: page on within it.
                next_state = _Cursor(since=state.since, after_id=last_id, page=state.page + 1)
            else:
                next_state = _Cursor(since=last_version, after_id=last_id)
        logger.info(
            "procountor receipts read",
            extra={"vendor": VENDOR, "count": len(vouchers), "has_more": has_more},
        )
        return ProcountorVoucherPage(
            vouchers=tuple(vouchers),
            cursor=next_state.dump(),
            has_more=has_more,
            warnings=warnings,
        )

    async def _read_by_ids(self, infos: Sequence[_BasicInfo]) -> list[Voucher]:
        if not infos:
            return []
        return await self.read_receipts([info.id for info in infos])

    async def read_receipts(self, ids: Sequence[str | int]) -> list[Voucher]:
        """The receipts with these ids (``GET /ledgerreceipts/{id,...}``, published
        ``LedgerReceipt``; 200 ids per call)."""
        # Item ids of the lines are resolved against the dimensions: read them first.
        await self._dimension_index()
        vouchers = []
        numbers = [int(value) for value in ids]
        for start in range(0, len(numbers), MAX_IDS):
            chunk = numbers[start : start + MAX_IDS]
            body, read = await self._call(
                "GET",
                f"/ledgerreceipts/{','.join(map(str, chunk))}",
                endpoint="/ledgerreceipts/{receiptId}",
            )
            # The schema answers one LedgerReceipt; UNCONFIRMED: several comma-separated ids
            # (documented, up to 200) answer a list of them.
            receipts = body if isinstance(body, list) else [body]
            for n, receipt in enumerate(receipts):
                where = f"[{n}]" if isinstance(body, list) else "LedgerReceipt"
                vouchers.append(await self._voucher(read, read.mapping(receipt, where), where))
        return vouchers

    async def _voucher(self, read: AnswerReader, receipt: Mapping[str, Any], where: str) -> Voucher:
        index = await self._dimension_index()
        receipt_type = read.choice(receipt, "type", where, _RECEIPT_TYPES)
        if receipt_type is None:
            raise read.unexpected(f"{where}.type is missing")
        status = read.choice(receipt, "status", where, _RECEIPT_STATUSES)
        transactions = read.items(
            read.field(receipt, "transactions", where), f"{where}.transactions"
        )
        lines: list[VoucherLine] = []
        for n, transaction in enumerate(transactions):
            line_where = f"{where}.transactions[{n}]"
            lines_read, index = await self._lines(
                read, read.mapping(transaction, line_where), line_where, index
            )
            lines.extend(lines_read)
        receipt_number = receipt.get("receiptNumber")
        return Voucher(
            external_id=read.string(receipt, "id", where),
            series=receipt_type,
            number=read.text(receipt_number, f"{where}.receiptNumber")
            if receipt_number is not None
            else None,
            date=read.iso_date(receipt, "receiptDate", where),
            description=read.optional_string(receipt, "name", where) or "",
            status="invalidated" if status in _VOID_STATUSES else "valid",
            version=read.optional_string(receipt, "version", where),
            lines=tuple(lines),
        )

    async def _lines(
        self,
        read: AnswerReader,
        transaction: Mapping[str, Any],
        where: str,
        index: _DimensionIndex,
    ) -> tuple[list[VoucherLine], _DimensionIndex]:
        read.choice(transaction, "transactionType", where, _TRANSACTION_TYPES)
        amount = read.number(transaction, "accountingValue", where)
        raw_values = read.optional_items(transaction, "dimensionItemValues", where)
        values: list[tuple[int, int, Decimal]] = []
        for n, entry in enumerate(raw_values):
            value_where = f"{where}.dimensionItemValues[{n}]"
            value = read.mapping(entry, value_where)
            values.append(
                (
                    read.integer(value, "dimensionId", value_where),
                    read.integer(value, "itemId", value_where),
                    read.number(value, "value", value_where)
                    if value.get("value") is not None
                    else amount,
                )
            )
        if any(item_id not in index.by_item for _dim, item_id, _share in values):
            # An item added since the dimensions were read: read them again, once.
            await self.read_dimensions()
            assert self._dimensions is not None
            index = self._dimensions
        per_dimension: dict[str, list[tuple[str, Decimal]]] = {}
        for dimension_id, item_id, share in values:
            key, code = index.by_item.get(item_id, (str(dimension_id), ""))
            per_dimension.setdefault(key, []).append((code, share))
        single = {key: parts[0][0] for key, parts in per_dimension.items() if len(parts) == 1}
        split = next(((k, parts) for k, parts in per_dimension.items() if len(parts) > 1), None)
        account = read.string(transaction, "account", where)
        description = read.optional_string(transaction, "description", where) or ""
        if split is None:
            return [
                VoucherLine(
                    account=account, amount=amount, description=description, dimensions=single
                )
            ], index
        # A line split over several items of one dimension becomes one line per item.
        key, parts = split
        return [
            VoucherLine(
                account=account,
                amount=share,
                description=description,
                dimensions={**single, key: code},
            )
            for code, share in parts
        ], index

    # -- writes ----------------------------------------------------------------------------

    async def post_journal(self, posting: JournalPosting) -> PostedJournal:
        """Post a JOURNAL ledger receipt (created UNFINISHED by Procountor)."""
        body = await self._receipt_body(posting)
        # POST is not repeated after it was sent (it could book twice); 429s, which
        # Procountor answers before doing anything, are.
        answer, read = await self._call(
            "POST", "/ledgerreceipts", content=_dumps(body), headers=_JSON_HEADERS
        )
        return _posted(read, answer)

    async def update_journal(
        self, external_id: str, posting: JournalPosting, *, version: str
    ) -> PostedJournal:
        """Replace a JOURNAL receipt; ``version`` must be the latest one read.

        A stale version raises :class:`ConcurrencyConflict` (read the receipt again).
        """
        body = await self._receipt_body(posting)
        body["id"] = int(external_id)
        body["version"] = version
        answer, read = await self._call(
            "PUT",
            f"/ledgerreceipts/{int(external_id)}",
            endpoint="/ledgerreceipts/{receiptId}",
            content=_dumps(body),
            headers=_JSON_HEADERS,
        )
        return _posted(read, answer)

    async def _receipt_body(self, posting: JournalPosting) -> dict[str, Any]:
        index = await self._dimension_index()
        transactions = []
        for number, line in enumerate(posting.lines, start=1):
            values = []
            for kind, code in (("cost_centre", line.cost_centre), ("cost_unit", line.cost_unit)):
                if code is None:
                    continue
                found = index.items.get((kind, code))  # type: ignore[arg-type]
                if found is None:
                    raise InvalidData(
                        VENDOR,
                        f"line {number}: {kind.replace('_', ' ')} {code!r} is not an item of a "
                        "Procountor dimension",
                    )
                dimension_id, item_id = found
                values.append(
                    {"dimensionId": dimension_id, "itemId": item_id, "value": line.amount}
                )
            transactions.append(
                {
                    "transactionType": "ENTRY",
                    "account": line.account,
                    "accountingValue": line.amount,
                    "vatPercent": 0,
                    "description": line.description,
                    "dimensionItemValues": values,
                }
            )
        name = posting.description
        if posting.reference and posting.reference not in name:
            name = f"{name} ({posting.reference})"
        return {
            "type": "JOURNAL",
            "name": name[:255],
            "receiptDate": (await self._receipt_date(posting)).isoformat(),
            "transactions": transactions,
        }

    async def _receipt_date(self, posting: JournalPosting) -> dt.date:
        # The receipt date decides the period: a correction of an earlier period is dated on
        # the last day of that period unless its date already lies in it.
        end = month_end(posting.period)
        if posting.period <= posting.date <= end:
            return posting.date
        return end


_JSON_HEADERS: Final = {"Content-Type": "application/json"}


def _posted(read: AnswerReader, answer: Any) -> PostedJournal:
    """The saved ``LedgerReceipt`` a POST or PUT answers: its id and status."""
    receipt = read.mapping(answer, "LedgerReceipt")
    status = read.choice(receipt, "status", "LedgerReceipt", _RECEIPT_STATUSES)
    return PostedJournal(
        external_id=read.string(receipt, "id", "LedgerReceipt"),
        # The schema: every ledger receipt is created UNFINISHED.
        status=status or "UNFINISHED",
    )


class _BasicInfo(BaseModel):
    """What the search answers of one receipt (published ``LedgerReceiptBasicInfo``)."""

    model_config = ConfigDict(frozen=True)

    id: int
    version: str
    stamp: dt.datetime


def _basic_info(read: AnswerReader, item: Any, where: str) -> _BasicInfo:
    info = read.mapping(item, where)
    version = read.string(info, "version", where)
    try:
        stamp = _stamp(version)
    except ValueError:
        raise read.unexpected(f"{where}.version is not a timestamp: {version[:40]!r}") from None
    return _BasicInfo(id=read.integer(info, "id", where), version=version, stamp=stamp)


def _dumps(body: Mapping[str, Any]) -> bytes:
    def default(value: Any) -> Any:
        if isinstance(value, Decimal):
            # Two-decimal amounts survive the float: its repr is the shortest exact form.
            return float(value)
        raise TypeError(f"cannot serialise {type(value).__name__}")

    return json.dumps(body, default=default).encode()
