"""Visma.net ERP connector: REST/JSON, OAuth 2.0 through Visma Connect.

* **Authorization.** Machine access uses the client credentials grant with
  ``vismanet_erp_service_api:*`` scopes and ``tenant_id`` = the *customer's* tenant GUID (a
  company's own id there gets a token but every call answers 12027 "No license for this
  company"). A person authorises with the code grant + PKCE,
  ``vismanet_erp_interactive_api:*`` plus ``openid profile email tenants offline_access``
  (refresh tokens only with ``offline_access``; they rotate); the company is then chosen with
  the ``ipp-company-id`` header. Both go through the shared
  :class:`~ledgerlink.connectors.oauth.OAuthSession` (authlib); a 401 renews once.
* **Incremental reads** use ``GET /v2/journaltransaction?lastModifiedDateTime=T`` with
  ``lastModifiedDateTimeCondition=>=`` and the mandatory ``pageNumber``/``pageSize`` (a first
  read sends ``lastModifiedDateTime=1900-01-01``: the contract makes it or ``periodId``
  mandatory), where
  ``pageSize`` counts *lines*: a batch may start at the end of one page and continue on the
  next. The connector merges consecutive pages by batch number, holds back the last batch of
  a full page (it may go on) and reads it whole on the next call; a batch longer than a page
  is reassembled over as many pages as it takes; if a batch's header totals disagree with the
  lines received (the data moved between two pages) it is read whole. The cursor keeps the
  last modification stamp delivered, the batches delivered with exactly that stamp, and a
  page number used only while many batches share one stamp. A batch edited or voided between
  two syncs gets a new stamp and comes back on the next sync.
* **Posting** sends the value-wrapped write DTO (``{"accountNumber": {"value": "3000"}}``);
  the cost centre goes to subaccount segment 1 and the cost unit to segment 2 (configurable).
  Visma.net has no idempotency key, so the connector makes posting idempotent itself: every
  line carries a reference number derived from the posting's reference, and before posting
  it looks for a batch with that reference in the financial period; if one exists (and is not
  void) that batch is returned instead of posting again.
* **Reading** follows the published OpenAPI DTOs (see ``connectors/README.md``): a journal
  line's subaccount is an object whose ``segments`` carry ``segmentId``/``segmentValue`` and
  its VAT code an object ``{id}``; batch statuses are the published enum (``Voided`` marks
  a void batch); a financial period is identified by ``period`` (YYYYPP) and closed by
  ``closedInGeneralLedger``; ``/v1/dimension`` lists ids and ``/v1/dimension/{id}`` holds
  the segment values (``valueId``); a branch's currency is asked for (``expandCurrency``).
  Extra fields are ignored; a missing required field, an unknown enum value or a body of
  the wrong type is an :class:`UnexpectedResponse` naming the endpoint and the field.
* **Errors**: IPPException bodies (``ExceptionFaultCode``: 12002 company not set or not
  authorised, 12027 no licence) and ``{"message"}`` bodies are mapped to the connector error
  classes, keeping the vendor's code and message.
* **Rate**: every answer carries ``X-RateLimit-Limit/-Remaining/-Reset``; when the remaining
  calls reach zero the connection pauses until the window resets, and a 429 is retried after
  its ``Retry-After``. Visma's limit is a fixed window and ``Reset`` counts whole seconds, so
  "until the window resets" is estimated from two facts (see :class:`WindowTracker`): every
  answer says the window ends by its arrival time + ``Reset``, and the window began before
  its first answer arrived, so it ends by then + its length (``Limit`` / the configured
  calls per second). The pause lasts until the earlier of the two, not a whole second past
  every reset.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import json
import logging
import re
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, ClassVar, Final, Literal, NoReturn, Self

import httpx
from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator

from ledgerlink.connectors.base import LedgerConnector
from ledgerlink.connectors.credentials import CredentialBearerAuth, CredentialProvider
from ledgerlink.connectors.errors import (
    AccessNotEnabled,
    AuthenticationFailed,
    ConcurrencyConflict,
    ConnectorError,
    InvalidData,
    NotFound,
    PeriodLocked,
    RateLimited,
    UnexpectedResponse,
    VendorUnavailable,
)
from ledgerlink.connectors.http import (
    RateBudget,
    RetryPolicy,
    VendorHttpClient,
    budget_for,
    parse_retry_after,
    retry_after_of,
)
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
)
from ledgerlink.connectors.oauth import OAuthClientSettings, OAuthSession, TokenSet, TokenStore

__all__ = [
    "INTERACTIVE_SCOPES",
    "SERVICE_SCOPES",
    "VENDOR",
    "PreparedJournal",
    "VismaNetConnector",
    "VismaNetSettings",
    "classify_response",
    "reference_number",
]

logger = logging.getLogger(__name__)

VENDOR: Final = "vismanet"
SERVICE_SCOPES: Final = tuple(
    f"vismanet_erp_service_api:{op}" for op in ("read", "create", "update", "delete")
)
INTERACTIVE_SCOPES: Final = (
    *(f"vismanet_erp_interactive_api:{op}" for op in ("read", "create", "update", "delete")),
    "openid",
    "profile",
    "email",
    "tenants",
    "offline_access",
)
#: Largest pageSize the API accepts (lines for journal transactions).
MAX_PAGE_SIZE: Final = 1000
# UNCONFIRMED: GL reference numbers hold 15 characters (Acumatica's RefNbr); longer
# references are replaced by a stable digest.
MAX_REFERENCE_LENGTH: Final = 15
MAX_DESCRIPTION_LENGTH: Final = 255

# AccountDto.type: the published enum (Asset, Liability, Income, Expense); equity accounts
# are liability-type accounts in Visma.net.
_ACCOUNT_TYPES: Final[Mapping[str, AccountType]] = {
    "Asset": "asset",
    "Liability": "liability",
    "Income": "revenue",
    "Expense": "expense",
}
# JournalTransactionDto.status: the published enum (JournalTransactionStatusEnum). The field's
# description lists "On hold" and "Void" instead of "Hold" and "Voided"; UNCONFIRMED which
# words the API sends, so both are known. Anything else is outside the contract.
_BATCH_STATUSES: Final = frozenset(
    {
        "Hold",
        "Balanced",
        "Unposted",
        "Posted",
        "Completed",
        "Voided",
        "Released",
        "PartiallyReleased",
        "Scheduled",
        "On hold",
        "Void",
    }
)
_VOID_STATUSES: Final = frozenset({"Voided", "Void"})
#: The dimension whose segments make up subaccounts (cost centre, cost unit...).
# UNCONFIRMED: the id; Visma.net names its segmented keys as Acumatica does (SUBACCOUNT).
SUBACCOUNT_DIMENSION: Final = "SUBACCOUNT"
# UNCONFIRMED: the wording of a closed-period refusal; matched loosely.
_PERIOD_CLOSED: Final = re.compile(r"(?i)financial period\s+\S+\s+is\s+(closed|locked)")
_FAULT_MESSAGES: Final[Mapping[str, str]] = {
    "12002": "the company is not set or not authorised (ipp-company-id)",
    "12027": "no licence for this company: check that tenant_id is the customer's tenant id, "
    "not a company's, that the user has the API user role, and that the licence is valid",
}


class VismaNetSettings(BaseModel):
    """One Visma.net connection: the ISV client, the grant, the tenant or company."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    client_id: str = Field(min_length=1, description="The Visma Developer Portal client id.")
    client_secret: SecretStr = Field(description="The client's secret.")
    grant: Literal["client_credentials", "authorization_code"] = Field(
        default="client_credentials",
        description="Service (machine) access or a person's interactive authorisation.",
    )
    tenant_id: str | None = Field(
        default=None,
        description="The customer's tenant GUID (client credentials): not a company's id.",
    )
    company_id: str | None = Field(
        default=None,
        description="The company to work in (ipp-company-id); required for interactive "
        "tokens, optional for service tokens (which are bound to one company).",
    )
    scopes: tuple[str, ...] | None = Field(
        default=None, description="Scopes to ask for; default: all of the grant's scopes."
    )
    redirect_uri: str | None = Field(
        default=None, description="The registered redirect URI (authorization code grant)."
    )
    api_base_url: str = Field(
        default="https://api.finance.visma.net", description="Base of the ERP API."
    )
    connect_base_url: str = Field(
        default="https://connect.visma.com", description="Base of Visma Connect."
    )
    page_size: int = Field(
        default=500, ge=1, le=MAX_PAGE_SIZE, description="Lines per journal page."
    )
    cost_centre_segment: int = Field(default=1, ge=1, description="Subaccount segment id.")
    cost_unit_segment: int = Field(default=2, ge=1, description="Subaccount segment id.")
    release_after_post: bool = Field(
        default=False, description="Release (post) a journal right after creating it."
    )
    requests_per_second: float = Field(
        default=15_000 / 3600, gt=0, description="Visma's historical 15,000 calls/hour."
    )
    burst: int = Field(default=100, ge=1, description="Requests allowed at once.")

    @model_validator(mode="after")
    def _grant_needs(self) -> Self:
        if self.grant == "client_credentials" and not self.tenant_id:
            raise ValueError("client credentials need tenant_id (the customer's tenant GUID)")
        # A connection authorised through auth's pages reads with the token auth hands out:
        # it needs the company, not the redirect URI (only a code exchange does).
        if self.grant == "authorization_code" and not self.company_id:
            raise ValueError("the authorization code grant needs company_id")
        return self

    def oauth(self) -> OAuthClientSettings:
        """The OAuth client settings for Visma Connect."""
        default = SERVICE_SCOPES if self.grant == "client_credentials" else INTERACTIVE_SCOPES
        connect = self.connect_base_url.rstrip("/")
        return OAuthClientSettings(
            client_id=self.client_id,
            client_secret=self.client_secret,
            authorize_url=f"{connect}/connect/authorize",
            token_url=f"{connect}/connect/token",
            redirect_uri=self.redirect_uri,
            scopes=self.scopes if self.scopes is not None else default,
            use_pkce=True,
        )


def reference_number(reference: str) -> str:
    """The line reference number carrying a posting's ``reference`` (max 15 characters).

    Short references are used as they are; longer ones become ``LL`` + 13 hex digits of
    their SHA-256, stable across runs, so a retry finds the batch it posted before.
    """
    if len(reference) <= MAX_REFERENCE_LENGTH:
        return reference
    return "LL" + hashlib.sha256(reference.encode()).hexdigest()[:13].upper()


# --------------------------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------------------------


def _body(response: httpx.Response) -> Any:
    try:
        return json.loads(response.content, parse_float=Decimal)
    except ValueError:
        return None


def classify_response(response: httpx.Response) -> ConnectorError | None:
    """Visma.net's answer as a :class:`ConnectorError` (``None`` for success)."""
    status = response.status_code
    if status < 400:
        return None
    body = _body(response)
    code: str | None = None
    vendor_message: str | None = None
    if isinstance(body, dict):
        if body.get("ExceptionType") is not None or body.get("ExceptionFaultCode") is not None:
            code = str(body.get("ExceptionFaultCode") or "") or None
            vendor_message = str(body.get("ExceptionMessage") or "") or None
        elif isinstance(body.get("message"), str):
            vendor_message = body["message"]
    elif response.content:
        vendor_message = response.text[:500]
    what = f"{response.request.method} {response.url.path}"
    if status == 429:
        return RateLimited(
            VENDOR,
            f"rate limited on {what}",
            retry_after=retry_after_of(response),
            vendor_code=code,
            vendor_message=vendor_message,
        )
    if status >= 500:
        return VendorUnavailable(
            VENDOR, f"Visma.net unavailable on {what}", status=status, vendor_message=vendor_message
        )
    if code is not None and code in _FAULT_MESSAGES:
        return AccessNotEnabled(
            VENDOR,
            _FAULT_MESSAGES[code],
            vendor_code=code,
            vendor_message=vendor_message,
            status=status,
        )
    kwargs: dict[str, Any] = {
        "vendor_code": code,
        "vendor_message": vendor_message,
        "status": status,
    }
    if status == 401:
        return AuthenticationFailed(VENDOR, f"the token was refused on {what}", **kwargs)
    if status == 403:
        return AccessNotEnabled(VENDOR, f"access refused on {what}", **kwargs)
    if status == 404:
        return NotFound(VENDOR, f"not found: {what}", **kwargs)
    if status in (409, 412):
        return ConcurrencyConflict(VENDOR, f"changed by someone else: {what}", **kwargs)
    if vendor_message and _PERIOD_CLOSED.search(vendor_message):
        return PeriodLocked(VENDOR, "the financial period is closed", **kwargs)
    return InvalidData(VENDOR, f"Visma.net refused {what}", **kwargs)


# --------------------------------------------------------------------------------------------
# The published shapes (answers outside them raise UnexpectedResponse)
# --------------------------------------------------------------------------------------------
#
# Sources (see connectors/README.md): the Visma.net ERP API's OpenAPI document as generated
# into public clients (Pionect/visma-php-sdk, madsoliver/vismanet_api_lib). The generated
# DTOs mark every field optional; the fields checked as required here are those without
# which an answer cannot be read correctly (an id, an amount, a status, a closed flag).


def _fail(endpoint: str, detail: str, status: int | None = None) -> NoReturn:
    raise UnexpectedResponse(VENDOR, endpoint, detail, status=status)


def _parse_json(response: httpx.Response, endpoint: str) -> Any:
    if not response.content.strip():
        _fail(endpoint, "the body is empty", response.status_code)
    try:
        return json.loads(response.content, parse_float=Decimal)
    except ValueError:
        _fail(endpoint, "the body is not JSON (truncated?)", response.status_code)


def _object(value: Any, endpoint: str, where: str) -> Mapping[str, Any]:
    if not isinstance(value, dict):
        _fail(endpoint, f"{where} is not an object ({type(value).__name__})")
    return value


def _array(value: Any, endpoint: str, where: str) -> list[Any]:
    if not isinstance(value, list):
        _fail(endpoint, f"{where} is not a list ({type(value).__name__})")
    return value


def _str(
    obj: Mapping[str, Any], name: str, endpoint: str, where: str, *, required: bool = True
) -> str | None:
    """A string field; ids the API may send as numbers are read as their text."""
    value = obj.get(name)
    if value is None:
        if required:
            _fail(endpoint, f"{where}.{name} is missing")
        return None
    if isinstance(value, bool) or not isinstance(value, str | int):
        _fail(endpoint, f"{where}.{name} is not a string ({type(value).__name__})")
    return str(value)


def _required_str(obj: Mapping[str, Any], name: str, endpoint: str, where: str) -> str:
    value = _str(obj, name, endpoint, where)
    assert value is not None
    return value


def _amount(obj: Mapping[str, Any], name: str, endpoint: str, where: str) -> Decimal | None:
    value = obj.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | Decimal):
        _fail(endpoint, f"{where}.{name} is not a number ({type(value).__name__})")
    return Decimal(value)


def _flag(
    obj: Mapping[str, Any], name: str, endpoint: str, where: str, *, default: bool | None = None
) -> bool:
    value = obj.get(name)
    if value is None:
        if default is None:
            _fail(endpoint, f"{where}.{name} is missing")
        return default
    if not isinstance(value, bool):
        _fail(endpoint, f"{where}.{name} is not a boolean ({type(value).__name__})")
    return value


def _date_of(obj: Mapping[str, Any], name: str, endpoint: str, where: str) -> dt.date:
    text = _required_str(obj, name, endpoint, where)
    try:
        return dt.date.fromisoformat(text[:10])
    except ValueError:
        _fail(endpoint, f"{where}.{name} is not a date: {text[:40]!r}")


def _moment(obj: Mapping[str, Any], name: str, endpoint: str, where: str) -> str:
    text = _required_str(obj, name, endpoint, where)
    try:
        _stamp(text)
    except ValueError:
        _fail(endpoint, f"{where}.{name} is not a date and time: {text[:40]!r}")
    return text


def _checked_line(raw: Any, endpoint: str, where: str) -> dict[str, Any]:
    """A JournalTransactionLineDto, checked; the subaccount is an object whose ``segments``
    list carries ``segmentId``/``segmentValue`` (SubaccountInJournalTransactionLineDto), and
    the VAT code is an object ``{id, description}`` (VatCodeInJournalTransactionLineDto)."""
    line = dict(_object(raw, endpoint, where))
    _required_str(line, "accountNumber", endpoint, where)
    for name in ("debitAmountInCurrency", "creditAmountInCurrency", "debitAmount", "creditAmount"):
        _amount(line, name, endpoint, where)
    _str(line, "referenceNumber", endpoint, where, required=False)
    _str(line, "transactionDescription", endpoint, where, required=False)
    _str(line, "description", endpoint, where, required=False)
    subaccount = line.get("subaccount")
    if subaccount is not None:
        sub = _object(subaccount, endpoint, f"{where}.subaccount")
        segments = sub.get("segments")
        for index, segment in enumerate(
            _array(segments, endpoint, f"{where}.subaccount.segments")
            if segments is not None
            else []
        ):
            path = f"{where}.subaccount.segments[{index}]"
            item = _object(segment, endpoint, path)
            segment_id = item.get("segmentId")
            if isinstance(segment_id, bool) or not isinstance(segment_id, int):
                _fail(endpoint, f"{path}.segmentId is missing or not an integer")
            _str(item, "segmentValue", endpoint, path, required=False)
    vat_code = line.get("vatCode")
    if vat_code is not None:
        _str(_object(vat_code, endpoint, f"{where}.vatCode"), "id", endpoint, f"{where}.vatCode")
    return line


def _checked_batch(raw: Any, endpoint: str, where: str = "batch") -> dict[str, Any]:
    """A JournalTransactionDto, checked (number, stamp, date, status, lines)."""
    batch = dict(_object(raw, endpoint, where))
    batch["batchNumber"] = _required_str(batch, "batchNumber", endpoint, where)
    _moment(batch, "lastModifiedDateTime", endpoint, where)
    _date_of(batch, "transactionDate", endpoint, where)
    status = _required_str(batch, "status", endpoint, where)
    if status not in _BATCH_STATUSES:
        _fail(endpoint, f"{where}.status {status[:40]!r} is not a published batch status")
    for name in ("debitTotalInCurrency", "creditTotalInCurrency"):
        _amount(batch, name, endpoint, where)
    lines = batch.get("journalTransactionLines")
    batch["journalTransactionLines"] = [
        _checked_line(line, endpoint, f"{where}.journalTransactionLines[{index}]")
        for index, line in enumerate(
            _array(lines, endpoint, f"{where}.journalTransactionLines") if lines is not None else []
        )
    ]
    return batch


def _line_amount(line: Mapping[str, Any], side: str) -> Decimal:
    # UNCONFIRMED which of the two the ledger's own currency is: the write DTO has only
    # ``...InCurrency`` and its description says "in your default currency", so it is read
    # first, the plain amount only when it is absent.
    for name in (f"{side}AmountInCurrency", f"{side}Amount"):
        value = line.get(name)
        if value is not None:
            return Decimal(value)
    return Decimal(0)


# --------------------------------------------------------------------------------------------
# Cursor and batch reassembly
# --------------------------------------------------------------------------------------------


@dataclass
class _Cursor:
    """Where an incremental read stands (the JSON of :class:`SyncCursor`)."""

    since: str | None = None
    page: int = 1
    #: ``batchNumber@lastModifiedDateTime`` of batches delivered with stamp ``since``.
    skip: list[str] = field(default_factory=list)

    @classmethod
    def parse(cls, cursor: SyncCursor | None) -> _Cursor:
        if cursor is None or cursor.is_start:
            return cls()
        try:
            data = json.loads(cursor.token)
            return cls(
                since=data["since"], page=int(data["page"]), skip=[str(k) for k in data["skip"]]
            )
        except (ValueError, KeyError, TypeError):
            raise InvalidData(VENDOR, "the sync cursor is not a Visma.net cursor") from None

    def token(self) -> SyncCursor:
        return SyncCursor(
            token=json.dumps(
                {"since": self.since, "page": self.page, "skip": self.skip},
                separators=(",", ":"),
            )
        )


def _stamp(text: str) -> dt.datetime:
    moment = dt.datetime.fromisoformat(text)
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


#: The ``lastModifiedDateTime`` of a first read: before any batch a Visma.net company holds.
#: UNCONFIRMED: that Visma.net answers a filter this far back with every batch (the contract
#: says "all records that have been modified since that time, up to the present").
FIRST_READ_SINCE: Final = "1900-01-01"


def filter_stamp(text: str) -> str:
    """A batch's ``lastModifiedDateTime`` as the list filter accepts it: UTC,
    ``yyyy-MM-ddTHH:mm:ss.FFF`` (the published formats carry no offset).

    UNCONFIRMED: that the filter is read as UTC (the stamps the sandbox sends are UTC).
    """
    moment = _stamp(text).astimezone(dt.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}"


def _key(batch: Mapping[str, Any]) -> str:
    return f"{batch['batchNumber']}@{batch['lastModifiedDateTime']}"


def _lines(batch: Mapping[str, Any]) -> list[dict[str, Any]]:
    lines = batch.get("journalTransactionLines") or []
    return list(lines)


def _complete(batch: Mapping[str, Any]) -> bool:
    """Whether the lines received add up to the batch's header totals (when it has them)."""
    debit_total = batch.get("debitTotalInCurrency")
    credit_total = batch.get("creditTotalInCurrency")
    if debit_total is None or credit_total is None:
        return True
    lines = _lines(batch)
    debit = sum((_line_amount(x, "debit") for x in lines), Decimal(0))
    credit = sum((_line_amount(x, "credit") for x in lines), Decimal(0))
    return debit == Decimal(debit_total) and credit == Decimal(credit_total)


class _Assembler:
    """Batches of consecutive line pages, merged by batch number in order of appearance."""

    def __init__(self) -> None:
        self.batches: dict[str, dict[str, Any]] = {}

    def add(self, entries: Sequence[Mapping[str, Any]]) -> None:
        """Merge a page's entries: a batch continued from the previous page gets its lines."""
        for entry in entries:
            number = str(entry["batchNumber"])
            known = self.batches.get(number)
            if known is None:
                self.batches[number] = {**entry, "journalTransactionLines": _lines(entry)}
            else:
                known["journalTransactionLines"].extend(_lines(entry))

    @property
    def last(self) -> str | None:
        return next(reversed(self.batches), None)


# --------------------------------------------------------------------------------------------
# The connector
# --------------------------------------------------------------------------------------------


#: Added to an estimated window end before calling again: the vendor's clock granularity,
#: plus a ten-thousandth of the window for clocks that run at slightly different rates.
WINDOW_MARGIN_S: Final = 0.005
WINDOW_MARGIN_SHARE: Final = 1e-4


@dataclass
class WindowTracker:
    """Visma.net's fixed rate window, as far as the ``X-RateLimit-*`` headers reveal it.

    ``Reset`` is whole seconds rounded up, so one answer only says the window ends within
    (arrival + Reset - 1, arrival + Reset]; the smallest arrival + Reset over the window's
    answers is the best such bound (it is within one call's spacing of the real end when the
    answers cross a change of ``Reset``). The window also began before its first answer
    arrived, so it ends by that arrival + the window's length, where the length is ``Limit``
    divided by the calls per second the connection was configured with. That bound is used
    only while it agrees with what Visma says: the first answer's ``Reset`` must not exceed
    the length (a test client's smaller ``Limit`` over the same hour would make the length
    look shorter), and after a 429 it is not used again for this connection.
    """

    #: The vendor's calls per second as configured (15,000/hour by default).
    rate: float
    limit: int | None = None
    remaining: int | None = None
    #: Arrival of the window's first answer seen here, and that answer's Reset.
    first_seen: float | None = None
    first_reset: float | None = None
    #: The window has certainly ended by then (min of arrival + Reset).
    ends_by: float | None = None
    #: False once the length-based bound met a 429.
    trust_length: bool = True

    def observe(self, now: float, limit: int | None, remaining: int, reset: float | None) -> None:
        """Take in one answer's headers, read at ``now``."""
        ended_by = self.ended_by()
        new_window = (
            self.remaining is None
            or remaining > self.remaining
            or (ended_by is not None and now >= ended_by)
        )
        if new_window:
            self.first_seen, self.first_reset, self.ends_by = now, reset, None
        if limit is not None:
            self.limit = limit
        self.remaining = remaining
        if reset is not None:
            bound = now + reset
            self.ends_by = bound if self.ends_by is None else min(self.ends_by, bound)

    def refused(self) -> None:
        """A 429 came: the estimate was early; from now on only Reset is trusted."""
        self.trust_length = False

    def resume_at(self) -> float | None:
        """When to call again after the window is spent (None: nothing known)."""
        end = self.ended_by()
        return None if end is None else end + WINDOW_MARGIN_S

    def ended_by(self) -> float | None:
        """When the current window has surely ended (None: nothing known)."""
        end = self.ends_by
        if (
            self.trust_length
            and self.first_seen is not None
            and self.limit is not None
            and self.limit > 0
        ):
            length = self.limit / self.rate
            if self.first_reset is None or self.first_reset <= length + 1:
                by_length = self.first_seen + length * (1 + WINDOW_MARGIN_SHARE)
                end = by_length if end is None else min(end, by_length)
        return end


def _header_int(response: httpx.Response, name: str) -> int | None:
    try:
        return int(response.headers[name])
    except (KeyError, ValueError):
        return None


def _wrap(value: Any) -> dict[str, Any]:
    return {"value": value}


@dataclass(frozen=True)
class PreparedJournal:
    """A journal transaction ready to send: period id, reference number, exact body."""

    period_id: str
    reference_number: str
    body: bytes
    #: The batch description sent; when given, a batch found by reference must carry it
    #: too (two sources may post the same reference into one company).
    description: str | None = None


class VismaNetConnector(LedgerConnector):
    """A :class:`LedgerConnector` for one Visma.net company."""

    vendor: ClassVar[str] = VENDOR

    def __init__(
        self,
        settings: VismaNetSettings,
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
        #: When given (auth's token service), it supplies the bearer token; the session
        #: then never refreshes by itself.
        self.credentials = credentials
        key = settings.company_id or settings.tenant_id or settings.client_id
        self.session = session or OAuthSession(
            VENDOR,
            settings.oauth(),
            store=store,
            store_key=store_key or f"{VENDOR}:{settings.client_id}:{key}",
            transport=transport,
        )
        headers = {"Accept": "application/json"}
        if settings.company_id:
            headers["ipp-company-id"] = settings.company_id
        self._budget = budget or budget_for(
            VENDOR, settings.requests_per_second, settings.burst, sleep=sleep, clock=clock
        )
        self._budget_key = (VENDOR, key)
        self._http = VendorHttpClient(
            VENDOR,
            settings.api_base_url.rstrip("/"),
            tenant=key,
            classify=self._classify,
            budget=self._budget,
            retry=retry,
            auth=CredentialBearerAuth(credentials, VENDOR)
            if credentials is not None
            else self.session.auth(),
            headers=headers,
            transport=transport,
            sleep=sleep,
            clock=clock,
        )
        self._token_fetched = False
        self._last_etag: str | None = None
        self._periods: dict[dt.date, str] | None = None
        self.rate_window = WindowTracker(settings.requests_per_second)

    def __repr__(self) -> str:
        return (
            f"VismaNetConnector(client_id={self.settings.client_id!r}, "
            f"tenant_id={self.settings.tenant_id!r}, company_id={self.settings.company_id!r})"
        )

    async def aclose(self) -> None:
        """Close the API and token endpoint clients."""
        await self._http.aclose()
        await self.session.aclose()

    # -- authorization ---------------------------------------------------------------------

    def authorization_url(self, state: str) -> tuple[str, str | None]:
        """The Visma Connect login URL and the PKCE verifier to keep until the callback."""
        if not self.settings.redirect_uri:
            raise ValueError("the authorization code grant needs redirect_uri to log in")
        return self.session.authorization_url(state)

    async def exchange_code(self, code: str, code_verifier: str | None) -> TokenSet:
        """Trade the code from the redirect for tokens (kept in the session's store)."""
        return await self.session.exchange_code(code, code_verifier)

    async def _ensure_token(self) -> None:
        if (
            self._token_fetched
            or self.credentials is not None
            or self.settings.grant != "client_credentials"
        ):
            return
        assert self.settings.tenant_id is not None  # checked by the settings
        try:
            await self.session.client_credentials(tenant_id=self.settings.tenant_id)
        except InvalidData as exc:
            if exc.vendor_code == "invalid_tenant":
                raise AccessNotEnabled(
                    VENDOR,
                    "Visma Connect refused the tenant: unknown tenant id, or the customer has "
                    "not approved this client",
                    vendor_code=exc.vendor_code,
                    vendor_message=exc.vendor_message,
                ) from None
            raise
        self._token_fetched = True

    # -- HTTP ------------------------------------------------------------------------------

    def _classify(self, response: httpx.Response) -> ConnectorError | None:
        self._observe_rate(response)
        return classify_response(response)

    @property
    def rate_remaining(self) -> int | None:
        """Latest X-RateLimit-Remaining of an answered call (None before the first)."""
        return self.rate_window.remaining

    def _observe_rate(self, response: httpx.Response) -> None:
        """Honour X-RateLimit headers: with no calls left, pause until the window resets."""
        remaining = _header_int(response, "x-ratelimit-remaining")
        if remaining is None:
            return
        window = self.rate_window
        now = self._budget.now()
        reset = parse_retry_after(response.headers.get("x-ratelimit-reset"))
        if response.status_code != 429:
            self._budget.observe_window(
                self._budget_key,
                limit=_header_int(response, "x-ratelimit-limit"),
                remaining=remaining,
                reset=reset,
            )
        if self._budget.follows_windows:
            return  # the budget follows the window (a 429's Retry-After pauses it too)
        if response.status_code == 429:
            # Retried after its Retry-After by the HTTP client; the estimate was too early.
            if window.remaining == 0:
                window.refused()
            return
        window.observe(
            now,
            _header_int(response, "x-ratelimit-limit"),
            remaining,
            reset,
        )
        if remaining > 0:
            return
        resume = window.resume_at()
        if resume is not None and resume > now:
            logger.info(
                "Visma.net rate window spent; pausing",
                extra={"vendor": VENDOR, "seconds": round(resume - now, 3)},
            )
            self._budget.pause(self._budget_key, resume - now)

    async def _get(self, path: str, params: Mapping[str, Any] | None = None) -> Any:
        """The JSON of a GET (an empty or unreadable body is :class:`UnexpectedResponse`)."""
        await self._ensure_token()
        response = await self._http.get(path, params=dict(params or {}))
        self._last_etag = response.headers.get("etag")
        return _parse_json(response, f"GET {path}")

    async def _list(self, path: str, params: Mapping[str, Any] | None = None) -> list[Any]:
        """Every row of a paged list (``pageNumber``/``pageSize`` are sent on every list)."""
        rows: list[Any] = []
        number = 1
        while True:
            page = _array(
                await self._get(
                    path, {**(params or {}), "pageNumber": number, "pageSize": MAX_PAGE_SIZE}
                ),
                f"GET {path}",
                "the answer",
            )
            rows.extend(page)
            if len(page) < MAX_PAGE_SIZE:
                return rows
            number += 1

    # -- master data -----------------------------------------------------------------------

    async def list_companies(self) -> list[Company]:
        """The company the connection works in (its main branch carries the details).

        BranchDto carries the base currency only when asked with ``expandCurrency=true``;
        without it the currency is absent, and it is never guessed: a missing currency is an
        :class:`UnexpectedResponse`, not EUR.
        """
        endpoint = "GET /v1/branch"
        branches = [
            _object(row, endpoint, f"branch[{index}]")
            for index, row in enumerate(await self._list("/v1/branch", {"expandCurrency": "true"}))
        ]
        if not branches:
            return []
        main_index = next(
            (
                index
                for index, branch in enumerate(branches)
                if _flag(branch, "isMainBranch", endpoint, f"branch[{index}]", default=False)
            ),
            0,
        )
        main, where = branches[main_index], f"branch[{main_index}]"
        currency = main.get("currency")
        if currency is None:
            _fail(endpoint, f"{where}.currency is missing (asked with expandCurrency=true)")
        currency_id = _required_str(
            _object(currency, endpoint, f"{where}.currency"), "id", endpoint, f"{where}.currency"
        )
        # The company is what ipp-company-id names; without one (a service token bound to
        # its company) the branch's organizationId is taken. UNCONFIRMED that the two agree.
        external_id = self.settings.company_id or _str(main, "organizationId", endpoint, where)
        return [
            Company(
                external_id=str(external_id),
                business_id=_str(main, "corporateId", endpoint, where, required=False) or None,
                name=_str(main, "name", endpoint, where, required=False) or "",
                currency=currency_id,
            )
        ]

    async def read_accounts(self) -> list[Account]:
        """The chart of accounts (Visma's four types; equity reads as liability)."""
        endpoint = "GET /v1/account"
        accounts = []
        for index, raw in enumerate(await self._list("/v1/account")):
            where = f"account[{index}]"
            row = _object(raw, endpoint, where)
            kind = _str(row, "type", endpoint, where, required=False)
            if kind is not None and kind not in _ACCOUNT_TYPES:
                _fail(endpoint, f"{where}.type {kind[:40]!r} is not a published account type")
            accounts.append(
                Account(
                    number=_required_str(row, "accountCD", endpoint, where),
                    name=_str(row, "description", endpoint, where, required=False) or "",
                    type=_ACCOUNT_TYPES[kind] if kind is not None else None,
                    active=_flag(row, "active", endpoint, where, default=True),
                )
            )
        return accounts

    def _segment_kind(self, segment_id: int) -> DimensionKind | None:
        if segment_id == self.settings.cost_centre_segment:
            return "cost_centre"
        if segment_id == self.settings.cost_unit_segment:
            return "cost_unit"
        return None

    def _segment_key(self, segment_id: int) -> str:
        return self._segment_kind(segment_id) or f"segment_{segment_id}"

    async def read_dimensions(self) -> list[Dimension]:
        """The subaccount segments as dimensions (segment 1 cost centre, 2 cost unit).

        ``GET /v1/dimension`` answers only the dimensions' ids (a list of strings); the
        segments and their values come from ``GET /v1/dimension/{id}`` (DtoDimension, with
        ``expandSegmentsValues``), each value named by ``valueId``.
        """
        listed = _array(await self._get("/v1/dimension"), "GET /v1/dimension", "the answer")
        for index, item in enumerate(listed):
            if not isinstance(item, str):
                _fail("GET /v1/dimension", f"the answer[{index}] is not a dimension id (string)")
        ids: list[str] = listed
        if SUBACCOUNT_DIMENSION not in ids:
            return []
        path = f"/v1/dimension/{SUBACCOUNT_DIMENSION}"
        endpoint = f"GET {path}"
        dimension = _object(
            await self._get(path, {"expandSegmentsValues": "true"}), endpoint, "dimension"
        )
        dimension_id = _str(dimension, "id", endpoint, "dimension", required=False)
        # Asked with expandSegmentsValues: a dimension without its segments is not one.
        segments = _array(dimension.get("segments"), endpoint, "dimension.segments")
        result = []
        for index, raw in enumerate(segments):
            where = f"dimension.segments[{index}]"
            segment = _object(raw, endpoint, where)
            segment_id = segment.get("segmentId")
            if isinstance(segment_id, bool) or not isinstance(segment_id, int):
                _fail(endpoint, f"{where}.segmentId is missing or not an integer")
            values = segment.get("segmentValues")
            objects = []
            for value_index, value_raw in enumerate(
                _array(values, endpoint, f"{where}.segmentValues") if values is not None else []
            ):
                value_where = f"{where}.segmentValues[{value_index}]"
                value = _object(value_raw, endpoint, value_where)
                objects.append(
                    DimensionObject(
                        code=_required_str(value, "valueId", endpoint, value_where),
                        name=_str(value, "description", endpoint, value_where, required=False)
                        or "",
                        active=_flag(value, "active", endpoint, value_where, default=True),
                    )
                )
            result.append(
                Dimension(
                    id=f"{dimension_id or SUBACCOUNT_DIMENSION}:{segment_id}",
                    name=_str(segment, "description", endpoint, where, required=False)
                    or f"Segment {segment_id}",
                    kind=self._segment_kind(segment_id),
                    objects=tuple(objects),
                )
            )
        return result

    async def read_periods(self) -> list[Period]:
        """Financial periods (FinancialPeriodDto): the id is ``period`` (YYYYPP); a period
        closed in the General Ledger (``closedInGeneralLedger``) or inactive reads as closed."""
        endpoint = "GET /v1/financialperiod"
        periods: dict[dt.date, str] = {}
        result = []
        for index, raw in enumerate(await self._list("/v1/financialperiod")):
            where = f"financialPeriod[{index}]"
            row = _object(raw, endpoint, where)
            period_id = _required_str(row, "period", endpoint, where)
            if len(period_id) != 6 or not period_id.isdigit():
                _fail(endpoint, f"{where}.period {period_id[:20]!r} is not YYYYPP")
            start = _date_of(row, "startDate", endpoint, where)
            closed = _flag(row, "closedInGeneralLedger", endpoint, where)
            active = _flag(row, "active", endpoint, where, default=True)
            periods[start] = period_id
            result.append(
                Period(
                    start=start,
                    end=_date_of(row, "endDate", endpoint, where),
                    status="closed" if closed or not active else "open",
                )
            )
        self._periods = periods
        return result

    # -- balances --------------------------------------------------------------------------

    async def read_account_balances(
        self, dates: Sequence[dt.date]
    ) -> dict[dt.date, dict[str, Decimal]]:
        """Each account's balance (debit positive) at the end of each date's period.

        From ``GET /v2/generalLedgerBalance?periodId=`` (GeneralLedgerBalanceV2Api; the DTO
        in CaesarDev/visma-erp-client docs/Model/GeneralLedgerBalanceDto.md): every
        period's ``periodToDateDebit`` and ``periodToDateCredit`` ("the total of all
        debit/credit movements for the selected period") from the first period on, added
        up. The movements are read rather than ``yearToDateBalance`` because how Visma.net
        carries income and expense accounts over a year end is UNCONFIRMED; movements mean
        the same in every period. The balances ``periodId`` is the financial period's
        ``period`` (YYYYPP; the DTO says yyyyMM, the same for calendar fiscal years).
        """
        if not dates:
            return {}
        await self.read_periods()
        assert self._periods is not None
        last = max(dates)
        endpoint = "GET /v2/generalLedgerBalance"
        running: dict[str, Decimal] = {}
        closing_of: dict[dt.date, dict[str, Decimal]] = {}
        for start, period_id in sorted(self._periods.items()):
            if start > last:
                break
            rows = await self._list("/v2/generalLedgerBalance", {"periodId": period_id})
            for index, raw in enumerate(rows):
                where = f"balance[{index}]"
                row = _object(raw, endpoint, where)
                account = _required_str(
                    _object(row.get("account"), endpoint, f"{where}.account"),
                    "number",
                    endpoint,
                    f"{where}.account",
                )
                debit = _amount(row, "periodToDateDebit", endpoint, where) or Decimal(0)
                credit = _amount(row, "periodToDateCredit", endpoint, where) or Decimal(0)
                running[account] = running.get(account, Decimal(0)) + debit - credit
            closing_of[start] = {a: b.quantize(Decimal("0.01")) for a, b in running.items()}
        result: dict[dt.date, dict[str, Decimal]] = {}
        for day in dates:
            starts = [start for start in closing_of if start <= day]
            if starts:
                result[day] = {a: b for a, b in closing_of[max(starts)].items() if b}
        return result

    # -- vouchers --------------------------------------------------------------------------

    def _voucher(self, batch: Mapping[str, Any]) -> Voucher:
        """A checked batch (see :func:`_checked_batch`) as a voucher."""
        lines = []
        for line in _lines(batch):
            subaccount = line.get("subaccount") or {}
            dimensions = {
                self._segment_key(int(segment["segmentId"])): str(segment["segmentValue"])
                for segment in subaccount.get("segments") or []
                if segment.get("segmentValue")
            }
            vat_code = (line.get("vatCode") or {}).get("id")
            lines.append(
                VoucherLine(
                    account=str(line["accountNumber"]),
                    amount=_line_amount(line, "debit") - _line_amount(line, "credit"),
                    description=str(
                        line.get("transactionDescription") or line.get("description") or ""
                    ),
                    vat_code=str(vat_code) if vat_code else None,
                    dimensions=dimensions,
                )
            )
        number = str(batch["batchNumber"])
        return Voucher(
            external_id=number,
            series=str(batch.get("module") or "") or None,
            number=number,
            date=dt.date.fromisoformat(str(batch["transactionDate"])[:10]),
            description=str(batch.get("description") or ""),
            status="invalidated" if batch["status"] in _VOID_STATUSES else "valid",
            version=str(batch["lastModifiedDateTime"]),
            lines=tuple(lines),
        )

    async def _journal_page(self, params: Mapping[str, Any]) -> list[dict[str, Any]]:
        endpoint = "GET /v2/journaltransaction"
        page = _array(await self._get("/v2/journaltransaction", params), endpoint, "the answer")
        return [_checked_batch(entry, endpoint, f"batch[{i}]") for i, entry in enumerate(page)]

    async def read_vouchers(
        self, cursor: SyncCursor | None = None, *, page_size: int | None = None
    ) -> VoucherPage:
        """Batches changed since ``cursor``; see the module docstring.

        Line pages are read in order and merged by batch number. On a full page the last
        batch may go on, on the next page, so it is held back: the call returns the batches
        known to be complete and the next call starts again at the newest stamp delivered
        (the filter is inclusive; what was delivered with that stamp is skipped), so the
        held-back batch is read whole then. A batch longer than a page is read across as
        many pages as it takes. A call returns at least one batch unless nothing is left.
        """
        state = _Cursor.parse(cursor)
        size = min(page_size or self.settings.page_size, MAX_PAGE_SIZE)
        # The published contract (JournalTransactionV2Api, GET /v2/journaltransaction, as
        # generated into CaesarDev/visma-erp-client docs/Api/JournalTransactionV2Api.md):
        # ``periodId`` is "Mandatory if 'LastModifiedDateTime' not provided" and
        # ``lastModifiedDateTime`` "Mandatory if 'PeriodId' is not provided", accepted as
        # yyyy-MM-dd[( |T)HH:mm:ss[.FFF]]. A first read asks for everything modified since
        # FIRST_READ_SINCE, so first and later reads are one stream in stamp order.
        base: dict[str, Any] = {
            "pageSize": size,
            "lastModifiedDateTime": filter_stamp(state.since)
            if state.since is not None
            else FIRST_READ_SINCE,
            "lastModifiedDateTimeCondition": ">=",
        }
        skip = set(state.skip)
        assembler = _Assembler()
        starts: dict[str, int] = {}
        page_number = state.page
        while True:
            entries = await self._journal_page({**base, "pageNumber": page_number})
            for entry in entries:
                starts.setdefault(str(entry["batchNumber"]), page_number)
            assembler.add(entries)
            batches = list(assembler.batches.values())
            if sum(len(_lines(entry)) for entry in entries) < size:
                ready, has_more = batches, False  # the last page: everything is complete
                break
            ready = batches[:-1]  # the last batch may continue on the next page
            if any(_key(batch) not in skip for batch in ready):
                has_more = True
                break
            page_number += 1
        vouchers = []
        for batch in ready:
            if _key(batch) in skip:
                continue
            complete = batch
            if not _complete(batch):
                # The data moved between two pages (an edit shifts the lines): read it whole.
                complete = await self._read_batch(str(batch["batchNumber"]))
            vouchers.append(self._voucher(complete))
        held_back = assembler.last
        resume = starts.get(held_back, 1) if has_more and held_back is not None else 1
        next_state = self._advance(state, ready, resume)
        return VoucherPage(vouchers=tuple(vouchers), cursor=next_state.token(), has_more=has_more)

    @staticmethod
    def _advance(state: _Cursor, ready: Sequence[Mapping[str, Any]], resume_page: int) -> _Cursor:
        """The cursor after a call that delivered ``ready`` (in the API's stamp order).

        ``resume_page`` is the page where the first batch not delivered starts (1 at the
        end): it is used only when every batch had the cursor's own stamp, since a page
        number only means something under an unchanged filter.
        """
        if not ready:
            return _Cursor(since=state.since, page=1, skip=list(state.skip))
        latest_text = str(ready[-1]["lastModifiedDateTime"])
        latest = _stamp(latest_text)
        at_latest = [_key(b) for b in ready if _stamp(str(b["lastModifiedDateTime"])) == latest]
        if state.since is None or latest > _stamp(state.since):
            return _Cursor(since=latest_text, page=1, skip=at_latest)
        skip = list(dict.fromkeys([*state.skip, *at_latest]))
        return _Cursor(since=state.since, page=resume_page, skip=skip)

    async def _read_batch(self, batch_number: str) -> dict[str, Any]:
        path = f"/v2/journaltransaction/{batch_number}"
        # The endpoint is named by its template: the batch number is the caller's own data.
        return _checked_batch(await self._get(path), "GET /v2/journaltransaction/{number}")

    async def read_batch(self, batch_number: str) -> tuple[Voucher, str | None]:
        """One batch, whole, with its ETag (for an optimistic-concurrency update)."""
        batch = await self._read_batch(batch_number)
        return self._voucher(batch), self._last_etag

    async def update_description(
        self, batch_number: str, description: str, *, etag: str | None
    ) -> str | None:
        """Change an unreleased batch's description; ``etag`` guards against lost updates
        (a stale one raises :class:`ConcurrencyConflict`). Returns the new ETag."""
        await self._ensure_token()
        response = await self._http.put(
            f"/v2/journaltransaction/{batch_number}",
            json={"description": _wrap(description[:MAX_DESCRIPTION_LENGTH])},
            headers={"If-Match": etag} if etag else None,
        )
        new_etag: str | None = response.headers.get("etag")
        return new_etag

    # -- posting ---------------------------------------------------------------------------

    async def _period_id(self, period_start: dt.date) -> str:
        if self._periods is None:
            await self.read_periods()
        assert self._periods is not None
        found = self._periods.get(period_start)
        # Unknown to the period list: send the calendar form and let Visma.net refuse it in
        # its own words.
        return found or period_start.strftime("%Y%m")

    async def find_batch(
        self, period_id: str, reference: str, description: str | None = None
    ) -> dict[str, Any] | None:
        """The batch of ``period_id`` whose lines carry ``reference`` (not void), if any;
        with ``description``, only a batch with exactly that description.

        The published contract of ``GET /v2/journaltransaction`` (the ERP API's OpenAPI
        document as generated into CaesarDev/visma-erp-client,
        docs/Api/JournalTransactionV2Api.md): ``periodId`` "Financial Period to query data
        for. Mandatory if 'LastModifiedDateTime' not provided. Format: YYYYPP"; ``pageSize``
        counts journal transaction *lines*, so one batch may span pages (read to the end).
        """
        number = 1
        while True:
            page = await self._journal_page(
                {"periodId": period_id, "pageNumber": number, "pageSize": MAX_PAGE_SIZE}
            )
            for entry in page:
                if entry["status"] in _VOID_STATUSES:
                    continue
                if description is not None and str(entry.get("description") or "") != (description):
                    continue
                if any(line.get("referenceNumber") == reference for line in _lines(entry)):
                    return entry
            if sum(len(_lines(entry)) for entry in page) < MAX_PAGE_SIZE:
                return None
            number += 1

    def _journal_dto(self, posting: JournalPosting, period_id: str, ref: str) -> dict[str, Any]:
        lines = []
        for line in posting.lines:
            segments = [
                {"segmentId": segment, "segmentValue": value}
                for segment, value in (
                    (self.settings.cost_centre_segment, line.cost_centre),
                    (self.settings.cost_unit_segment, line.cost_unit),
                )
                if value
            ]
            dto: dict[str, Any] = {
                "operation": "Insert",
                "accountNumber": _wrap(line.account),
                "referenceNumber": _wrap(ref),
                "transactionDescription": _wrap(
                    (line.description or posting.description)[:MAX_DESCRIPTION_LENGTH]
                ),
                "debitAmountInCurrency": _wrap(float(line.amount) if line.amount > 0 else 0),
                "creditAmountInCurrency": _wrap(float(-line.amount) if line.amount < 0 else 0),
            }
            if segments:
                dto["subaccount"] = segments
            lines.append(dto)
        return {
            "transactionDate": _wrap(posting.date.isoformat()),
            "financialPeriod": _wrap(period_id),
            "description": _wrap(posting.description[:MAX_DESCRIPTION_LENGTH]),
            "journalTransactionLines": lines,
        }

    async def release(self, batch_number: str) -> None:
        """Release (post) a Balanced batch.

        ``POST /v2/journaltransaction/{journalTransactionNumber}/action/release``, "Release
        journal transaction operation": "The action result dto contains information about
        the result of running the action; Response Message has StatusCode BadRequest or
        InternalServerError if POST operation failed" (the ERP API's OpenAPI document as
        generated into CaesarDev/visma-erp-client, docs/Api/JournalTransactionV2Api.md).
        Not repeated here: a lost answer is resolved by :meth:`batch_status` first.
        """
        await self._ensure_token()
        await self._http.post(
            f"/v2/journaltransaction/{batch_number}/action/release", idempotent=False
        )

    async def batch_status(self, batch_number: str) -> str:
        """The status of one batch (``GET /v2/journaltransaction/{number}``, the published
        ``status`` enum: Hold, Balanced, Unposted, Posted, Voided ...)."""
        return str((await self._read_batch(batch_number))["status"])

    async def prepare_journal(self, posting: JournalPosting) -> PreparedJournal:
        """The exact request a posting becomes: its financial period id (YYYYPP, from the
        period list), the line reference number and the JSON body's bytes.

        Kept by callers that must prove what was sent (and send the same bytes again on a
        retry): :meth:`post_prepared` posts exactly these bytes.
        """
        period_id = await self._period_id(posting.period)
        ref = reference_number(posting.reference)
        body = json.dumps(
            self._journal_dto(posting, period_id, ref), separators=(",", ":"), ensure_ascii=False
        ).encode()
        return PreparedJournal(
            period_id=period_id,
            reference_number=ref,
            body=body,
            description=posting.description[:MAX_DESCRIPTION_LENGTH],
        )

    async def post_journal(self, posting: JournalPosting) -> PostedJournal:
        """Create the journal as a batch, unless a batch with its reference exists already.

        Visma.net has no idempotency key: the connector looks the posting's reference up in
        its financial period first and returns the existing batch when there is one, so a
        retried or replayed posting does not book twice.
        """
        await self._ensure_token()
        return await self.post_prepared(await self.prepare_journal(posting))

    async def post_prepared(self, prepared: PreparedJournal) -> PostedJournal:
        """Post a prepared journal, unless its period holds a batch with its reference.

        The look-up (``GET /v2/journaltransaction?periodId=``, the published list filter)
        is what makes a retry after a lost answer safe: Visma.net may have created the
        batch although the answer never arrived.
        """
        await self._ensure_token()
        period_id, ref = prepared.period_id, prepared.reference_number
        existing = await self.find_batch(period_id, ref, prepared.description)
        if existing is not None:
            number, status = str(existing["batchNumber"]), str(existing["status"])
            logger.info(
                "Visma.net batch with this reference exists; not posting again",
                extra={"vendor": VENDOR, "batch": number, "period": period_id},
            )
            return PostedJournal(external_id=number, status=status, found_existing=True)
        # POST /v2/journaltransaction (JournalTransactionV2Api: "Create a Journal
        # Transaction", body JournalTransactionCreateDto with value-wrapped fields; the
        # created batch is named by the Location header). Never retried here: a lost answer
        # is resolved by find_batch on the next attempt.
        response = await self._http.post(
            "/v2/journaltransaction",
            content=prepared.body,
            headers={"Content-Type": "application/json"},
            idempotent=False,
        )
        # The published answer to a POST is an untyped object: 201 Created with the new
        # batch's Location (and ETag). A body naming the batch is read when there is one.
        created = _body(response)
        created = created if isinstance(created, dict) else {}
        number = str(created.get("batchNumber") or "")
        if not number:
            location = response.headers.get("location", "")
            number = location.rstrip("/").rsplit("/", 1)[-1]
        if not number:
            _fail(
                "POST /v2/journaltransaction",
                "neither a Location header nor a batchNumber names the new batch",
                response.status_code,
            )
        status = str(created.get("status") or "Balanced")
        if self.settings.release_after_post and status == "Balanced":
            await self.release(number)
            status = "Posted"
        return PostedJournal(external_id=number, status=status)
