"""Visma Netvisor connector: XML resources (``<name>.nv``) signed with an HMAC-SHA256 MAC.

What this module knows about Netvisor, and why the connector behaves as it does:

* **Authentication.** Every request carries the ``X-Netvisor-*`` headers and a MAC:
  HMAC-SHA256 with key ``CustomerKey&PartnerKey`` over
  ``URL-with-query&Sender&CustomerId&Timestamp&Language&OrganisationId&TransactionId&
  TimestampUnix&CustomerKey&PartnerKey``, both ISO-8859-1 encoded, lowercase hex. The keys
  themselves are never sent. Signing is an :class:`httpx.Auth` flow, so every attempt (a
  retry after a 429, a 5xx or a connection reset too) is signed afresh with a new
  ``TransactionId``: Netvisor refuses a reused one with ``REQUEST_NOT_UNIQUE``.
* **One request at a time per customer.** Netvisor processes one request per customer
  environment at a time, so every connector talking to the same customer (same base URL and
  customer id) in this process shares one :class:`asyncio.Lock`.
* **Formats.** Requests use ANSI dates (``2024-01-31``) and a decimal point; responses use
  Finnish dates (``31.1.2024``) and a decimal comma (``-17,18``). Bodies are ISO-8859-15
  (the euro sign exists there, not in ISO-8859-1); characters outside it are sent as XML
  character references so nothing is lost.
* **Errors.** Every answer is ``Root/ResponseStatus`` with ``Status`` OK or FAILED and a
  second ``Status`` ``CATEGORY :: message``; the category decides the connector error class
  (see :data:`ERROR_CATEGORIES`) and the vendor message is kept on the exception.
* **No paging.** ``accountingledger.nv`` returns everything matching its filter in one
  answer, so reads are chunked by date windows: a first, full read walks the fiscal years
  month by month by voucher date; incremental reads ask for vouchers *modified* in windows
  of at most :data:`INCREMENTAL_WINDOW_DAYS` days (``lastmodifiedstart``/``lastmodifiedend``).
  Every ledger read sends ``voucherstatus=1`` (all): Netvisor's published default is 2,
  valid vouchers only, which would never show an invalidation or a deletion.
  ``netvisorkeylist`` (<= 500 keys) is not used for chunking: keys cannot be listed
  without reading the vouchers themselves, so a key list would only ever re-read what a
  date window has already returned.
* **No company endpoint.** Netvisor has no company-information resource; a set of
  credentials reaches exactly one organisation, so :meth:`NetvisorConnector.list_companies`
  returns that one, built from the settings.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import hashlib
import hmac
import json
import logging
import re
import time
import uuid
import weakref
import xml.etree.ElementTree as ET  # parsing only after _parse_document's checks
from collections.abc import (
    AsyncGenerator,
    Awaitable,
    Callable,
    Generator,
    Mapping,
    Sequence,
)
from decimal import Decimal, InvalidOperation
from typing import Any, ClassVar, Final, Literal

import httpx
from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from ledgerlink.connectors.answers import AnswerReader
from ledgerlink.connectors.base import LedgerConnector
from ledgerlink.connectors.credentials import Credential, CredentialProvider
from ledgerlink.connectors.errors import (
    AccessNotEnabled,
    AuthenticationFailed,
    ConnectorError,
    DuplicateData,
    InvalidData,
    PeriodLocked,
    RateLimited,
    RequestNotUnique,
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
    "ERROR_CATEGORIES",
    "INCREMENTAL_WINDOW_DAYS",
    "NetvisorAuth",
    "NetvisorConnector",
    "NetvisorCredentialAuth",
    "NetvisorSettings",
    "build_voucher_xml",
    "compute_mac",
    "format_fi_date",
    "format_fi_decimal",
    "parse_fi_date",
    "parse_fi_decimal",
    "sign_headers",
]

logger = logging.getLogger(__name__)

VENDOR: Final = "netvisor"
XML_ENCODING: Final = "ISO-8859-15"
MAC_ALGORITHM: Final = "HMACSHA256"
#: Longest span of modification dates one incremental request asks for.
INCREMENTAL_WINDOW_DAYS: Final = 31
#: Netvisor documents no answer time; its own guidance is to allow at least 120 s.
DEFAULT_TIMEOUT_SECONDS: Final = 120.0
_CURSOR_VERSION: Final = 1
#: accountingledger.nv ``voucherstatus``: 1 all, 2 valid only (the default), 3 invalidated
#: and deleted.
_ALL_VOUCHERS: Final = "1"

#: Netvisor's error categories and the connector error each one becomes.
ERROR_CATEGORIES: Final[Mapping[str, type[ConnectorError]]] = {
    "AUTHENTICATION_FAILED": AuthenticationFailed,
    "INVALID_DATA": InvalidData,
    "INVALID_DATA_SIZE": InvalidData,
    "DUPLICATE_DATA": DuplicateData,
    "REQUEST_NOT_UNIQUE": RequestNotUnique,
    "PERIOD_LOCK": PeriodLocked,
    "SERVICE_ACCESS_ERROR": AccessNotEnabled,
    "SYSTEM_MAINTANANCE": VendorUnavailable,  # sic: Netvisor's spelling
    "TECHNICAL_ERROR": VendorUnavailable,
}

_HEADER_PREFIX: Final = "X-Netvisor-"
_ASCII_PRINTABLE = re.compile(r"^[\x20-\x7e]+$")


# --------------------------------------------------------------------------- settings


class NetvisorSettings(BaseModel):
    """Credentials and options of one Netvisor customer environment."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    sender: str = Field(description="Name of the integration (X-Netvisor-Authentication-Sender).")
    # The signing identity. Given here, the connector signs with it; left out, it comes
    # from auth's token service (``NetvisorConnector(credentials=...)``), which holds the
    # customer's key in its vault and our partner identity in its settings.
    customer_id: str | None = Field(
        default=None, description="The customer's API identifier (CustomerId)."
    )
    partner_id: str | None = Field(
        default=None, description="Ledgerlink's partner identifier (PartnerId)."
    )
    customer_key: SecretStr | None = Field(
        default=None, description="The customer's MAC key (never sent)."
    )
    partner_key: SecretStr | None = Field(
        default=None, description="Ledgerlink's partner MAC key (never sent)."
    )
    organisation_id: str | None = Field(
        default=None, description="The company's business ID (Y-tunnus), 1234567-8."
    )
    language: Literal["FI", "EN", "SE"] = Field(
        default="FI", description="Language of Netvisor's messages (X-Netvisor-Interface-Language)."
    )
    base_url: str = Field(
        default="https://integration.netvisor.fi",
        description="Netvisor's API root; the ISV/test host is https://isvapi.netvisor.fi.",
    )
    company_name: str = Field(
        default="", description="Name shown for the company (Netvisor has no company endpoint)."
    )
    voucher_class: str = Field(
        default="Muistiotosite",
        description="Voucher class (tositelaji) of posted journals; must exist in Netvisor.",
    )
    cost_centre_dimension: str | None = Field(
        default=None,
        description="Netvisor dimension name for cost centres; found by name when unset.",
    )
    cost_unit_dimension: str | None = Field(
        default=None,
        description="Netvisor dimension name for cost units; found by name when unset.",
    )
    timeout_seconds: float = Field(default=DEFAULT_TIMEOUT_SECONDS, gt=0)

    @field_validator("sender", "customer_id", "partner_id", "organisation_id")
    @classmethod
    def _header_safe(cls, value: str | None) -> str | None:
        # These travel as HTTP header values and inside the MAC: printable ASCII only, so
        # both ends encode them the same way.
        if value is not None and not _ASCII_PRINTABLE.match(value):
            raise ValueError("must be non-empty printable ASCII")
        return value

    @field_validator("base_url")
    @classmethod
    def _strip_slash(cls, value: str) -> str:
        return value.rstrip("/")

    def missing_identity(self) -> list[str]:
        """The signing fields not given (all must be, unless auth supplies them)."""
        fields = ("customer_id", "customer_key", "partner_id", "partner_key", "organisation_id")
        return [name for name in fields if getattr(self, name) is None]

    def with_identity(self, credential: Credential) -> NetvisorSettings:
        """These settings signing as the identity auth's token service gave (``netvisor``).

        Validated like any settings, so a header-unsafe value from auth is refused here.
        """
        if credential.kind != "netvisor":
            raise ValueError(f"a {credential.kind} credential is not a Netvisor identity")
        attributes = credential.attributes
        values = {name: getattr(self, name) for name in type(self).model_fields}
        values.update(
            customer_id=str(attributes.get("customer_id") or ""),
            partner_id=str(attributes.get("partner_id") or ""),
            customer_key=credential.secret("customer_key"),
            partner_key=credential.secret("partner_key"),
            organisation_id=str(attributes.get("organisation_id") or self.organisation_id or ""),
        )
        return NetvisorSettings.model_validate(values)


# --------------------------------------------------------------------------- formats


def format_fi_date(value: dt.date) -> str:
    """A date the way Netvisor writes it in responses: ``31.1.2024``."""
    return f"{value.day}.{value.month}.{value.year}"


def parse_fi_date(text: str) -> dt.date:
    """``31.1.2024`` (Finnish) or ``2024-01-31`` (ANSI) as a date."""
    text = text.strip()
    if "-" in text:
        return dt.date.fromisoformat(text)
    day, month, year = (int(part) for part in text.split("."))
    return dt.date(year, month, day)


def format_fi_decimal(value: Decimal) -> str:
    """An amount the way Netvisor writes it in responses: ``-17,18``."""
    return f"{value:.2f}".replace(".", ",")


def parse_fi_decimal(text: str) -> Decimal:
    """``-17,18`` or ``-17.18`` (spaces as thousands separators allowed) as a Decimal."""
    cleaned = text.strip().replace("\xa0", "").replace(" ", "").replace(",", ".")
    try:
        return Decimal(cleaned)
    except InvalidOperation as exc:
        raise ValueError(f"not an amount: {text!r}") from exc


def _ansi(value: dt.date) -> str:
    return value.isoformat()


# --------------------------------------------------------------------------- signing


def compute_mac(
    *,
    url: str,
    sender: str,
    customer_id: str,
    timestamp: str,
    language: str,
    organisation_id: str,
    transaction_id: str,
    timestamp_unix: str,
    customer_key: str,
    partner_key: str,
) -> str:
    """Netvisor's request MAC: HMAC-SHA256, key ``CustomerKey&PartnerKey``, lowercase hex."""
    message = "&".join(
        (
            url,
            sender,
            customer_id,
            timestamp,
            language,
            organisation_id,
            transaction_id,
            timestamp_unix,
            customer_key,
            partner_key,
        )
    )
    key = f"{customer_key}&{partner_key}"
    # Netvisor computes over ISO-8859-1 bytes; anything outside it cannot match anyway.
    return hmac.new(
        key.encode("iso-8859-1", errors="replace"),
        message.encode("iso-8859-1", errors="replace"),
        hashlib.sha256,
    ).hexdigest()


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def sign_headers(
    settings: NetvisorSettings,
    url: str,
    *,
    now: dt.datetime | None = None,
    transaction_id: str | None = None,
) -> dict[str, str]:
    """Every Netvisor header for a request to ``url`` (the full URL with its query)."""
    missing = settings.missing_identity()
    if missing:
        raise ValueError(f"cannot sign without {', '.join(missing)}")
    assert settings.customer_id is not None
    assert settings.organisation_id is not None
    assert settings.partner_id is not None
    assert settings.customer_key is not None
    assert settings.partner_key is not None
    moment = (now or _utcnow()).astimezone(dt.UTC)
    timestamp = moment.strftime("%Y-%m-%d %H:%M:%S.") + f"{moment.microsecond // 1000:03d}"
    timestamp_unix = str(int(moment.timestamp()))
    transaction = transaction_id or uuid.uuid4().hex
    mac = compute_mac(
        url=url,
        sender=settings.sender,
        customer_id=settings.customer_id,
        timestamp=timestamp,
        language=settings.language,
        organisation_id=settings.organisation_id,
        transaction_id=transaction,
        timestamp_unix=timestamp_unix,
        customer_key=settings.customer_key.get_secret_value(),
        partner_key=settings.partner_key.get_secret_value(),
    )
    return {
        "X-Netvisor-Authentication-Sender": settings.sender,
        "X-Netvisor-Authentication-CustomerId": settings.customer_id,
        "X-Netvisor-Authentication-PartnerId": settings.partner_id,
        "X-Netvisor-Authentication-Timestamp": timestamp,
        "X-Netvisor-Authentication-TimestampUnix": timestamp_unix,
        "X-Netvisor-Authentication-TransactionId": transaction,
        "X-Netvisor-Interface-Language": settings.language,
        "X-Netvisor-Organisation-ID": settings.organisation_id,
        "X-Netvisor-Authentication-MAC": mac,
        "X-Netvisor-Authentication-MACHashCalculationAlgorithm": MAC_ALGORITHM,
        "X-Netvisor-Authentication-UseHTTPResponseStatusCodes": "1",
    }


class NetvisorAuth(httpx.Auth):
    """Signs each request, and each retry of it, with a fresh TransactionId and MAC."""

    def __init__(
        self, settings: NetvisorSettings, *, clock: Callable[[], dt.datetime] = _utcnow
    ) -> None:
        self._settings = settings
        self._clock = clock

    def __repr__(self) -> str:
        return f"NetvisorAuth(customer_id={self._settings.customer_id!r})"

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        """Add the headers; httpx calls this once per send, so retries are re-signed."""
        request.headers.update(sign_headers(self._settings, str(request.url), now=self._clock()))
        yield request


def _authentication_failed(response: httpx.Response) -> bool:
    return isinstance(classify_response(response), AuthenticationFailed)


class _ProvidedIdentity:
    """The signing identity auth's token service gives, as settings ready to sign with.

    Held in memory only (by the provider); rebuilt whenever the provider hands out another
    credential object (a new identity after a refusal or after its memory went stale).
    """

    def __init__(self, provider: CredentialProvider, base: NetvisorSettings) -> None:
        self._provider = provider
        self._base = base
        self._credential: Credential | None = None
        self._settings: NetvisorSettings | None = None

    @property
    def known(self) -> NetvisorSettings | None:
        """The settings of the last identity fetched (None before the first request)."""
        return self._settings

    async def current(
        self, *, refused: Credential | None = None
    ) -> tuple[Credential, NetvisorSettings]:
        credential = await self._provider.get(refused=refused)
        if credential is not self._credential or self._settings is None:
            try:
                self._settings = self._base.with_identity(credential)
            except ValueError as error:  # pydantic's ValidationError too (secrets masked)
                raise AuthenticationFailed(
                    VENDOR,
                    "the token service's Netvisor identity is incomplete or not header-safe: "
                    + str(error).splitlines()[0],
                ) from None
            self._credential = credential
        return credential, self._settings


class NetvisorCredentialAuth(httpx.Auth):
    """Signs with the identity from auth's token service; when Netvisor answers
    ``AUTHENTICATION_FAILED``, asks auth once more (naming the refused key by its SHA-256)
    and, if auth now gives another identity, repeats the request signed with it."""

    def __init__(
        self, identity: _ProvidedIdentity, *, clock: Callable[[], dt.datetime] = _utcnow
    ) -> None:
        self._identity = identity
        self._clock = clock

    def __repr__(self) -> str:
        return "NetvisorCredentialAuth()"

    def sync_auth_flow(
        self, request: httpx.Request
    ) -> Generator[httpx.Request, httpx.Response, None]:
        raise RuntimeError("the token service's identity is fetched asynchronously")

    async def async_auth_flow(
        self, request: httpx.Request
    ) -> AsyncGenerator[httpx.Request, httpx.Response]:
        """Sign, send; on a refused identity ask auth again once and re-sign if it changed."""
        credential, settings = await self._identity.current()
        request.headers.update(sign_headers(settings, str(request.url), now=self._clock()))
        response = yield request
        # Answers are streamed: only a refusal (an error status, with Netvisor's
        # UseHTTPResponseStatusCodes) is read here to learn its category.
        if response.status_code < 400:
            return
        await response.aread()
        if not _authentication_failed(response):
            return
        fresh, settings = await self._identity.current(refused=credential)
        if fresh.primary == credential.primary and fresh.attributes == credential.attributes:
            return  # auth holds nothing newer: the refusal stands
        logger.info("netvisor: identity refused; signing with the one auth now holds")
        request.headers.update(sign_headers(settings, str(request.url), now=self._clock()))
        yield request


# --------------------------------------------------------------------------- XML


def _sub(parent: ET.Element, tag: str, text: str | None = None, **attrib: str) -> ET.Element:
    element = ET.SubElement(parent, tag, attrib)
    if text is not None:
        element.text = text
    return element


def _encode_xml(root: ET.Element) -> bytes:
    body = ET.tostring(root, encoding="unicode")
    document = f'<?xml version="1.0" encoding="{XML_ENCODING}"?>\n{body}'
    # Characters ISO-8859-15 lacks become character references: valid XML, nothing lost.
    return document.encode("iso-8859-15", errors="xmlcharrefreplace")


def build_voucher_xml(
    *,
    voucher_date: dt.date,
    description: str,
    voucher_class: str,
    lines: Sequence[tuple[Decimal, str, str, Mapping[str, str]]],
    calculation_mode: Literal["net", "gross"] = "net",
    number: int | None = None,
) -> bytes:
    """An ``accounting.nv`` body for one voucher, its elements in the DTD's order.

    ``lines`` are ``(amount, description, account number, {dimension name: item})``; VAT is
    not posted by the connector (journals carry no VAT), so every line has ``vatcode NONE``.
    """
    root = ET.Element("root")
    voucher = _sub(root, "voucher")
    _sub(voucher, "calculationmode", calculation_mode)
    _sub(voucher, "voucherdate", _ansi(voucher_date), format="ansi")
    if number is not None:
        _sub(voucher, "number", str(number))
    _sub(voucher, "description", description)
    _sub(voucher, "voucherclass", voucher_class)
    for amount, line_description, account, dimensions in lines:
        line = _sub(voucher, "voucherline")
        _sub(line, "linesum", format(amount, "f"), type=calculation_mode)
        _sub(line, "description", line_description)
        _sub(line, "accountnumber", account)
        _sub(line, "vatpercent", "0", vatcode="NONE")
        for name, item in dimensions.items():
            dimension = _sub(line, "dimension")
            _sub(dimension, "dimensionname", name)
            _sub(dimension, "dimensionitem", item)
    return _encode_xml(root)


#: Encodings an answer may declare: Netvisor writes ISO-8859-15; the others are its
#: ASCII-compatible neighbours. In each of them markup is plain ASCII bytes, so a DTD
#: cannot hide from :func:`_parse_document`'s byte search.
_SAFE_ENCODINGS: Final = frozenset(
    {"iso-8859-15", "iso8859-15", "latin-9", "iso-8859-1", "iso8859-1", "latin-1", "latin1",
     "utf-8", "utf8", "us-ascii", "ascii", "windows-1252", "cp1252"}
)  # fmt: skip
_DECLARED_ENCODING = re.compile(rb"""^\s*<\?xml[^>]*?encoding\s*=\s*["']([A-Za-z0-9._-]+)["']""")


def _acceptable(content: bytes) -> bool:
    """defusedxml's rules on the bytes (see :func:`_parse_document`)."""
    head = content[:256]
    if b"\x00" in head[:4] or head.startswith((b"\xfe\xff", b"\xff\xfe")):
        return False
    declared = _DECLARED_ENCODING.match(head)
    if declared is not None and declared.group(1).decode().lower() not in _SAFE_ENCODINGS:
        return False
    return b"<!DOCTYPE" not in content and b"<!ENTITY" not in content


def _parse_document(content: bytes) -> ET.Element | None:
    """The document's root, or None when it is not well-formed or not acceptable XML.

    defusedxml's rules, checked on the bytes so that the C parser can build the tree (its
    pure-Python parser took most of a ledger read's time: bench/README.md): no DTD (so no
    entity to expand and no external entity to fetch), an ASCII-compatible encoding (no
    BOM of UTF-16/32, no NUL bytes, a declared encoding from :data:`_SAFE_ENCODINGS`).
    """
    if not _acceptable(content):
        return None
    try:
        parser = ET.XMLParser()  # noqa: S314 - DTDs and foreign encodings refused above
        parser.feed(content)
        root: ET.Element = parser.close()
    except (ET.ParseError, ValueError):
        return None
    return root


def _response_status(root: ET.Element | None) -> tuple[str, str | None]:
    """``(status, "CATEGORY :: message" or None)`` from ``Root/ResponseStatus``."""
    if root is None:
        return "", None
    statuses = [(element.text or "").strip() for element in root.findall("ResponseStatus/Status")]
    if not statuses:
        return "", None
    return statuses[0], (statuses[1] if len(statuses) > 1 else None)


def _split_category(detail: str | None) -> tuple[str | None, str]:
    if not detail:
        return None, ""
    category, separator, message = detail.partition("::")
    if not separator:
        return None, detail.strip()
    return category.strip(), message.strip()


def _status_document(content: bytes) -> ET.Element | None:
    """``Root`` with only its ``ResponseStatus``: the status comes first, so a ledger answer
    of many megabytes need not be parsed twice just to learn that it is OK."""
    end = content.find(b"</ResponseStatus>", 0, 8192)
    if end == -1:
        return _parse_document(content)
    head = content[: end + len(b"</ResponseStatus>")] + b"</Root>"
    return _parse_document(head) or _parse_document(content)


def classify_response(response: httpx.Response) -> ConnectorError | None:
    """The connector error a Netvisor answer stands for, or None for a successful one."""
    root = _status_document(response.content)
    status, detail = _response_status(root)
    category, message = _split_category(detail)
    if response.status_code == 429:
        return RateLimited(
            VENDOR,
            "Netvisor asked to slow down",
            retry_after=retry_after_of(response),
            vendor_code=category,
            vendor_message=message or None,
        )
    if status == "OK" and response.status_code < 400:
        return None
    if category is not None:
        error_class = ERROR_CATEGORIES.get(category, ConnectorError)
        return error_class(
            VENDOR,
            f"Netvisor refused the request: {category}",
            vendor_code=category,
            vendor_message=message,
            status=response.status_code,
        )
    if response.status_code >= 500:
        return VendorUnavailable(
            VENDOR,
            "Netvisor answered without a readable response status",
            status=response.status_code,
        )
    if root is None or not status:
        # A success status code with an empty, truncated or foreign body: outside the
        # contract (every answer is Root/ResponseStatus), and the same request would get
        # the same answer, so this is not retried.
        return UnexpectedResponse(
            VENDOR,
            f"{response.request.method} {response.request.url.path.rsplit('/', 1)[-1]}",
            "the answer has no readable Root/ResponseStatus (empty, truncated or not XML)",
            status=response.status_code,
        )
    return ConnectorError(
        VENDOR,
        f"Netvisor answered {status or 'nothing'}",
        vendor_message=detail,
        status=response.status_code,
    )


# --------------------------------------------------------------------------- reading


def _voucher_digest(element: ET.Element) -> str:
    """A short fingerprint of a voucher's content, to notice edits without a version.

    Every element's tag, attributes and text in document order (the whitespace between
    elements is not content: Netvisor's answers have no mixed content). Built directly
    rather than by serialising the voucher back to XML, which took 0.4 ms a voucher.
    """
    parts: list[str] = []
    for node in element.iter():
        parts.append(node.tag)
        if node.attrib:
            parts.extend(f"\x1f{name}={value}" for name, value in sorted(node.attrib.items()))
        parts.append("\x1e")
        parts.append((node.text or "").strip())  # values are read stripped too
        parts.append("\x1d")
    canonical = "".join(parts)
    return hashlib.blake2b(canonical.encode("utf-8"), digest_size=8).hexdigest()


#: Voucher (and voucher line) ``Status`` values of accountingledger.nv; the attribute is
#: optional (0...1) and a voucher without it is valid.
_VOUCHER_STATUSES: Final = frozenset({"valid", "invalidated", "deleted"})
#: How the published examples write "no VAT code" on a read line ("-"); "NONE" is the code
#: a request sends for it.
_NO_VAT_CODES: Final = frozenset({"", "-", "NONE"})
_FI_DATE_FORMATS: Final = ("%d.%m.%Y",)


def _element_text(element: ET.Element | None, tag: str) -> str | None:
    """The stripped text of ``element/tag``; None when the element is absent."""
    if element is None:
        return None
    child = element.find(tag)
    if child is None:
        return None
    return (child.text or "").strip()


def _required(read: AnswerReader, element: ET.Element, tag: str, where: str) -> str:
    return read.required_text(_element_text(element, tag), f"{where}/{tag}")


def _fi_date(read: AnswerReader, element: ET.Element, tag: str, where: str) -> dt.date:
    # Netvisor writes Finnish dates (31.1.2024) even where the element says format="ansi".
    return read.date_text(
        _required(read, element, tag, where), f"{where}/{tag}", formats=_FI_DATE_FORMATS
    )


def _status(read: AnswerReader, element: ET.Element, where: str) -> str:
    status = (element.get("Status") or element.get("status") or "valid").strip().lower()
    if status not in _VOUCHER_STATUSES:
        raise read.unexpected(f"{where}@Status has the unknown value {status!r}")
    return status


def _children(element: ET.Element) -> tuple[dict[str, str], dict[str, list[ET.Element]]]:
    """One pass over ``element``'s children: the stripped text of the first of each tag
    (what ``find`` would return) and the elements of the repeated tags."""
    texts: dict[str, str] = {}
    repeated: dict[str, list[ET.Element]] = {}
    for child in element:
        tag = child.tag
        if tag in _REPEATED:
            repeated.setdefault(tag, []).append(child)
        elif tag not in texts:
            texts[tag] = (child.text or "").strip()
    return texts, repeated


_REPEATED: Final = frozenset({"VoucherLine", "Dimension"})


def _fast_fi_date(read: AnswerReader, text: str | None, where: str) -> dt.date:
    """A Finnish date (``31.1.2024``); anything else goes to the reader for its error."""
    value = read.required_text(text, where)
    parts = value.split(".")
    if len(parts) == 3 and all(part.isdigit() and len(part) <= 4 for part in parts):
        with contextlib.suppress(ValueError):
            return dt.date(int(parts[2]), int(parts[1]), int(parts[0]))
    # Netvisor writes Finnish dates (31.1.2024) even where the element says format="ansi".
    return read.date_text(value, where, formats=_FI_DATE_FORMATS)


def _parse_voucher(read: AnswerReader, element: ET.Element, where: str) -> Voucher:
    # One pass over the children of each element (a find per field took a third of the
    # read); the models are built without a second validation: every value below is
    # already of its field's type.
    status = _status(read, element, where)
    texts, repeated = _children(element)
    lines = []
    for n, line in enumerate(repeated.get("VoucherLine", ())):
        line_where = f"{where}/VoucherLine[{n}]"
        if status == "valid" and _status(read, line, line_where) != "valid":
            # UNCONFIRMED: a line marked invalidated or deleted inside a valid voucher is no
            # longer part of it (its current content is the valid lines).
            continue
        line_texts, line_repeated = _children(line)
        vat_code = line_texts.get("VatCode", "")
        dimensions = {}
        for m, dimension in enumerate(line_repeated.get("Dimension", ())):
            dimension_texts, _ = _children(dimension)
            name = dimension_texts.get("DimensionName", "")
            item = dimension_texts.get("DimensionItem", "")
            if not item:
                # Netvisor writes a dimension without an item as an empty (or blank)
                # DimensionItem: the line carries no value of that dimension.
                continue
            if not name:
                raise read.unexpected(f"{line_where}/Dimension[{m}]/DimensionName is missing")
            dimensions[name] = item
        lines.append(
            VoucherLine.model_construct(
                account=read.required_text(
                    line_texts.get("AccountNumber"), f"{line_where}/AccountNumber"
                ),
                amount=read.decimal_text(
                    read.required_text(line_texts.get("LineSum"), f"{line_where}/LineSum"),
                    f"{line_where}/LineSum",
                    comma=True,
                ),
                description=line_texts.get("Description", ""),
                vat_code=None if vat_code in _NO_VAT_CODES else vat_code,
                dimensions=dimensions,
            )
        )
    return Voucher.model_construct(
        external_id=read.required_text(texts.get("NetvisorKey"), f"{where}/NetvisorKey"),
        series=texts.get("VoucherClass") or None,
        number=texts.get("VoucherNumber") or None,
        date=_fast_fi_date(read, texts.get("VoucherDate"), f"{where}/VoucherDate"),
        description=texts.get("VoucherDescription", ""),
        # A deleted voucher is out of the books just as an invalidated one.
        status="valid" if status == "valid" else "invalidated",
        version=None,
        lines=tuple(lines),
    )


def _root_of(read: AnswerReader, content: bytes) -> ET.Element:
    """``Root`` of a successful answer; an :class:`UnexpectedResponse` saying what is wrong."""
    if not _acceptable(content):
        raise read.unexpected("the answer is not acceptable XML (a DTD or a foreign encoding)")
    root = _parse_document(content)
    if root is None:
        # The status came first and was OK, but the rest of the body is cut off.
        raise read.unexpected("the answer is not well-formed XML (truncated body)")
    if root.tag != "Root":
        raise read.unexpected(f"the document element is {root.tag[:40]!r}, not Root")
    return root


def _ledger_vouchers(
    read: AnswerReader, content: bytes, digest_of: Callable[[str], bool]
) -> list[tuple[Voucher, str | None]]:
    """Every ``Root/Vouchers/Voucher`` of a ledger answer as a :class:`Voucher`, with its
    content digest when ``digest_of`` its key.

    The document is parsed whole by the C parser (a pull parser's Python-level event loop
    took 2.4 times as long for a month of a 400,000-line company); each voucher's elements
    are dropped once it is read, so the tree shrinks as the page is read.
    """
    root = _root_of(read, content)
    found: list[tuple[Voucher, str | None]] = []
    for n, element in enumerate(_vouchers(read, root)):
        voucher = _parse_voucher(read, element, f"Vouchers/Voucher[{n}]")
        digest = _voucher_digest(element) if digest_of(voucher.external_id) else None
        found.append((voucher, digest))
        element.clear()
    return found


def _vouchers(read: AnswerReader, root: ET.Element) -> list[ET.Element]:
    container = root.find("Vouchers")
    if container is None:
        raise read.unexpected("Root/Vouchers is missing")
    return container.findall("Voucher")


_KIND_BY_NAME: Final[Mapping[str, DimensionKind]] = {
    "kustannuspaikka": "cost_centre",
    "kustannuspaikat": "cost_centre",
    "cost centre": "cost_centre",
    "cost center": "cost_centre",
    "kostnadsställe": "cost_centre",
    "kustannuskohde": "cost_unit",
    "kustannusyksikkö": "cost_unit",
    "cost unit": "cost_unit",
    "kostnadsbärare": "cost_unit",
    "projekti": "project",
    "projektit": "project",
    "project": "project",
    "projekt": "project",
}


def _dimension_kind(name: str) -> DimensionKind | None:
    # Netvisor dimensions are free-named by the customer; the usual names tell the kind.
    return _KIND_BY_NAME.get(name.strip().casefold())


def _account_type(number: str) -> AccountType | None:
    """The account's type from the Finnish chart of accounts' number ranges.

    Netvisor's account list carries no balance-sheet/P&L class, but Finnish charts follow
    the same ranges: 1xxx assets, 20xx-23xx equity, 24xx-29xx liabilities, 3xxx revenue,
    4xxx-9xxx expenses (9xxx also holds appropriations and taxes).
    """
    digits = number.strip()
    if not digits.isdigit():
        return None
    first = digits[0]
    if first == "1":
        return "asset"
    if first == "2":
        return "equity" if len(digits) >= 2 and digits[1] in "0123" else "liability"
    if first == "3":
        return "revenue"
    if first in "456789":
        return "expense"
    return None


# --------------------------------------------------------------------------- cursor


class _Cursor(BaseModel):
    """What :class:`SyncCursor.token` holds for Netvisor (JSON)."""

    model_config = ConfigDict(extra="forbid")

    v: int = _CURSOR_VERSION
    mode: Literal["full", "incremental"]
    #: Full mode: next voucher-date window starts here; the walk ends after ``until``.
    next: dt.date | None = None
    until: dt.date | None = None
    #: Modification date from which the next incremental read starts.
    since: dt.date
    #: NetvisorKey -> content digest of vouchers already returned from the overlapping days.
    seen: dict[str, str] = Field(default_factory=dict)

    def dump(self) -> SyncCursor:
        return SyncCursor(token=self.model_dump_json(exclude_none=True))

    @classmethod
    def load(cls, cursor: SyncCursor) -> _Cursor:
        try:
            data: dict[str, Any] = json.loads(cursor.token)
            return cls.model_validate(data)
        except ValueError as exc:
            raise ValueError("not a Netvisor cursor") from exc


# --------------------------------------------------------------------------- connector

_CUSTOMER_LOCKS: weakref.WeakKeyDictionary[
    asyncio.AbstractEventLoop, dict[tuple[str, str], asyncio.Lock]
] = weakref.WeakKeyDictionary()


def _customer_lock(settings: NetvisorSettings) -> asyncio.Lock:
    # Netvisor serves one request at a time per customer environment: every connector of
    # this process aimed at the same customer waits on the same lock (one per event loop,
    # since an asyncio lock belongs to the loop it is used in).
    locks = _CUSTOMER_LOCKS.setdefault(asyncio.get_running_loop(), {})
    key = (settings.base_url, settings.customer_id or "")
    lock = locks.get(key)
    if lock is None:
        lock = locks[key] = asyncio.Lock()
    return lock


class NetvisorConnector(LedgerConnector):
    """A :class:`LedgerConnector` for one Netvisor customer environment (one company)."""

    vendor: ClassVar[str] = VENDOR

    def __init__(
        self,
        settings: NetvisorSettings,
        *,
        credentials: CredentialProvider | None = None,
        budget: RateBudget | None = None,
        retry: RetryPolicy | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        clock: Callable[[], float] = time.monotonic,
        now: Callable[[], dt.datetime] = _utcnow,
    ) -> None:
        """``budget``: a request rate per customer on top of one-at-a-time. UNCONFIRMED:
        Netvisor publishes no number; give one where an environment is known to throttle.
        ``now`` is the wall clock that timestamps and signs each request and dates the
        periods; ``clock`` the monotonic one paired with ``sleep`` for waits.

        ``credentials`` (auth's token service): the signing identity (customer id and key,
        our partner id and key) comes from it, held in memory only; the settings then need
        none of it. Without it the settings must carry the whole identity."""
        self.settings = settings
        self.credentials = credentials
        self._now = now
        self._identity: _ProvidedIdentity | None = None
        auth: httpx.Auth
        if credentials is None:
            missing = settings.missing_identity()
            if missing:
                raise ValueError(
                    f"Netvisor settings lack {', '.join(missing)} and no credential provider "
                    "(auth's token service) was given"
                )
            auth = NetvisorAuth(settings, clock=now)
        else:
            self._identity = _ProvidedIdentity(credentials, settings)
            auth = NetvisorCredentialAuth(self._identity, clock=now)
        tenant = settings.customer_id or str(getattr(credentials, "connection_id", ""))
        self._http = VendorHttpClient(
            VENDOR,
            f"{settings.base_url}/",
            tenant=tenant,
            classify=classify_response,
            retry=retry,
            timeout=httpx.Timeout(settings.timeout_seconds, connect=10.0),
            # Signing is an auth flow: httpx runs it for every send, so each retry gets a
            # fresh TransactionId, timestamp and MAC.
            auth=auth,
            transport=transport,
            sleep=sleep,
            clock=clock,
            budget=budget,
        )
        self._dimension_names: dict[DimensionKind, str] | None = None

    async def aclose(self) -> None:
        """Close the HTTP connection pool."""
        await self._http.aclose()

    def __repr__(self) -> str:
        signing = self._signing()
        return (
            f"NetvisorConnector(customer_id={signing.customer_id!r}, "
            f"organisation_id={signing.organisation_id!r})"
        )

    def _signing(self) -> NetvisorSettings:
        """The settings with the identity last signed with (auth's, once fetched)."""
        known = self._identity.known if self._identity is not None else None
        return known or self.settings

    # -- reads -------------------------------------------------------------------------

    async def list_companies(self) -> list[Company]:
        """The one organisation these credentials reach.

        Netvisor has no company-information resource: a customer id and key pair belongs
        to exactly one organisation, whose business ID the settings already carry. The
        call still costs a cheap signed request (the period list), so a wrong key or a
        missing interface right shows here rather than at the first sync.
        """
        await self._read("GET", "accountingperiodlist.nv")
        signing = self._signing()
        assert signing.customer_id is not None
        assert signing.organisation_id is not None
        return [
            Company(
                external_id=signing.customer_id,
                business_id=signing.organisation_id,
                name=self.settings.company_name or signing.organisation_id,
                currency="EUR",
            )
        ]

    async def read_accounts(self) -> list[Account]:
        """The chart of accounts (``accountlist.nv``).

        Netvisor's list carries no balance-sheet/P&L class; the type comes from the
        Finnish chart's number ranges (see ``_account_type``).
        """
        root, read = await self._read("GET", "accountlist.nv")
        # Published: AccountList/Accounts/Account, where each Account is an account or an
        # account-group heading (AccountType accountgroup, possibly without a Number); the
        # groups are the chart's headings, not accounts to post to.
        container = root.find("AccountList/Accounts")
        if container is None:
            raise read.unexpected("Root/AccountList/Accounts is missing")
        accounts = []
        for n, element in enumerate(container.findall("Account")):
            where = f"AccountList/Accounts/Account[{n}]"
            kind = _required(read, element, "AccountType", where).lower()
            if kind not in ("account", "accountgroup"):
                raise read.unexpected(f"{where}/AccountType has the unknown value {kind!r}")
            if kind == "accountgroup":
                continue
            number = _required(read, element, "Number", where)
            active = (_element_text(element, "IsActive") or "1").lower()
            if active not in ("0", "1", "true", "false"):
                raise read.unexpected(f"{where}/IsActive is not 0 or 1: {active[:10]!r}")
            accounts.append(
                Account(
                    number=number,
                    name=_element_text(element, "Name") or "",
                    type=_account_type(number),
                    active=active in ("1", "true"),
                )
            )
        return accounts

    async def read_dimensions(self) -> list[Dimension]:
        """Dimensions and their items (``dimensionlist.nv``).

        Netvisor identifies an item by its name, so an item's code and name are the same;
        hidden items are inactive. The kind is recognised from the usual dimension names.
        """
        root, read = await self._read("GET", "dimensionlist.nv")
        container = root.find("DimensionNameList")
        if container is None:
            raise read.unexpected("Root/DimensionNameList is missing")
        dimensions = []
        for n, element in enumerate(container.findall("DimensionName")):
            where = f"DimensionNameList/DimensionName[{n}]"
            name = _required(read, element, "Name", where)
            objects = []
            for m, detail in enumerate(element.findall("DimensionDetails/DimensionDetail")):
                detail_where = f"{where}/DimensionDetails/DimensionDetail[{m}]"
                item = _required(read, detail, "Name", detail_where)
                hidden = (_element_text(detail, "IsHidden") or "false").lower()
                objects.append(
                    DimensionObject(code=item, name=item, active=hidden not in ("true", "1"))
                )
            dimensions.append(
                Dimension(
                    id=_element_text(element, "Netvisorkey")
                    or _element_text(element, "NetvisorKey")
                    or name,
                    name=name,
                    kind=_dimension_kind(name),
                    objects=tuple(objects),
                )
            )
        self._dimension_names = {
            dimension.kind: dimension.name for dimension in dimensions if dimension.kind
        }
        return dimensions

    async def read_periods(self) -> list[Period]:
        """Monthly periods of every fiscal year, closed up to the period lock date.

        Netvisor lists fiscal years and one lock date (``AccountingPeriodLockDate``):
        postings dated on or before it are refused. Finnish books close month by month,
        so the fiscal years are cut into calendar months.
        """
        years, lock_date = await self._fiscal_years()
        periods = []
        for start, end in years:
            month = start
            while month <= end:
                last_day = min(month_end(month), end)
                closed = lock_date is not None and last_day <= lock_date
                periods.append(
                    Period(start=month, end=last_day, status="closed" if closed else "open")
                )
                month = last_day + dt.timedelta(days=1)
        return periods

    async def _fiscal_years(self) -> tuple[list[tuple[dt.date, dt.date]], dt.date | None]:
        root, read = await self._read("GET", "accountingperiodlist.nv")
        container = root.find("AccountingPeriodList")
        if container is None:
            raise read.unexpected("Root/AccountingPeriodList is missing")
        years = sorted(
            (
                _fi_date(read, element, "BeginDate", f"AccountingPeriodList/Period[{n}]"),
                _fi_date(read, element, "EndDate", f"AccountingPeriodList/Period[{n}]"),
            )
            for n, element in enumerate(container.findall("Period"))
        )
        lock_text = _element_text(
            container.find("PeriodLockInformation"), "AccountingPeriodLockDate"
        )
        lock_date = None
        if lock_text:
            lock_date = read.date_text(
                lock_text,
                "AccountingPeriodList/PeriodLockInformation/AccountingPeriodLockDate",
                formats=_FI_DATE_FORMATS,
            )
        return years, lock_date

    async def read_vouchers(
        self, cursor: SyncCursor | None = None, *, page_size: int | None = None
    ) -> VoucherPage:
        """One window of vouchers; see the module docstring for how windows are chosen.

        ``page_size`` does not apply: Netvisor has no paging, a page is one voucher-date
        month (first read) or up to :data:`INCREMENTAL_WINDOW_DAYS` days of modifications
        (incremental read). A first read skips empty months within one call.
        """
        del page_size  # Netvisor cannot cap an answer's size; windows do instead.
        if cursor is None or cursor.is_start:
            state = await self._start_cursor()
        else:
            state = _Cursor.load(cursor)
        if state.mode == "full":
            return await self._read_full_window(state)
        return await self._read_modified_window(state)

    async def _start_cursor(self) -> _Cursor:
        years, _ = await self._fiscal_years()
        today = self._now().astimezone(dt.UTC).date()
        # What changed since yesterday is read once up front, only for its fingerprints:
        # the walk returns those vouchers anyway, and the incremental read that ends the
        # first sync (from yesterday on) then does not return them a second time.
        start = today - dt.timedelta(days=1)
        recent = await self._ledger(
            {
                "lastmodifiedstart": _ansi(start),
                "lastmodifiedend": _ansi(today + dt.timedelta(days=1)),
                "voucherstatus": _ALL_VOUCHERS,
            },
            digest_of=lambda key: True,
        )
        seen = {voucher.external_id: digest or "" for voucher, digest in recent}
        if not years:
            return _Cursor(mode="incremental", since=today, seen=seen)
        return _Cursor(mode="full", next=years[0][0], until=years[-1][1], since=today, seen=seen)

    async def _read_full_window(self, state: _Cursor) -> VoucherPage:
        if state.next is None or state.until is None:
            raise ValueError("not a Netvisor full-read cursor")
        start = state.next
        seen = dict(state.seen)
        vouchers: list[Voucher] = []
        # Empty months are skipped within one call, so a page is never empty before the end.
        while start <= state.until and not vouchers:
            end = min(month_end(start), state.until)
            read_now = await self._ledger(
                {"startdate": _ansi(start), "enddate": _ansi(end), "voucherstatus": _ALL_VOUCHERS},
                # A recently changed voucher: remember the content the walk returned.
                digest_of=seen.__contains__,
            )
            vouchers = [voucher for voucher, _ in read_now]
            for voucher, digest in read_now:
                if digest is not None:
                    seen[voucher.external_id] = digest
            start = end + dt.timedelta(days=1)
        if start <= state.until:
            following = state.model_copy(update={"next": start, "seen": seen})
        else:
            # The walk is done; from here on modifications only, from the day the first
            # read began, so whatever changed during the walk is read (again) next.
            following = _Cursor(mode="incremental", since=state.since, seen=seen)
        # has_more stays true after the walk: the incremental read that follows is part of
        # the same sync and ends it.
        return VoucherPage(vouchers=tuple(vouchers), cursor=following.dump(), has_more=True)

    async def _read_modified_window(self, state: _Cursor) -> VoucherPage:
        today = self._now().astimezone(dt.UTC).date()
        # One day of overlap: modification dates have day precision (and may be Finnish
        # local dates), so the watermark's own day and the day before are read again and
        # vouchers already returned unchanged are recognised by their content digest.
        start = state.since - dt.timedelta(days=1)
        horizon = today + dt.timedelta(days=1)
        end = min(start + dt.timedelta(days=INCREMENTAL_WINDOW_DAYS - 1), horizon)
        modified = await self._ledger(
            {
                "lastmodifiedstart": _ansi(start),
                "lastmodifiedend": _ansi(end),
                "voucherstatus": _ALL_VOUCHERS,
            },
            digest_of=lambda key: True,
        )
        vouchers = []
        seen: dict[str, str] = {}
        for voucher, found in modified:
            digest = found or ""
            seen[voucher.external_id] = digest
            if state.seen.get(voucher.external_id) != digest:
                vouchers.append(voucher)
        done = end >= horizon
        following = _Cursor(mode="incremental", since=today if done else end, seen=seen)
        return VoucherPage(vouchers=tuple(vouchers), cursor=following.dump(), has_more=not done)

    async def read_account_balances(
        self, dates: Sequence[dt.date]
    ) -> dict[dt.date, dict[str, Decimal]]:
        """Each account's balance (debit positive) on each of ``dates``, as Netvisor reports it.

        Published (support.netvisor.fi, "Get account balances accountbalance.nv"):
        ``GET accountbalance.nv`` with ``balancedates`` (dates separated by commas) and
        ``intervaltype`` 0 (those separate dates); the answer is
        ``Root/AccountBalances/Account`` with ``Number`` and one ``AccountBalance`` per date
        (``Date`` attribute; ``Debet``, ``Kredit``, ``Balance`` = Debet - Kredit). The dates
        are asked for as given (no interval steps, whose placement is not published).
        UNCONFIRMED: whether P&L accounts' sums restart at each fiscal year.
        """
        if not dates:
            return {}
        root, read = await self._read(
            "GET",
            "accountbalance.nv",
            params={
                "balancedates": ",".join(_ansi(day) for day in sorted(set(dates))),
                "intervaltype": "0",
            },
        )
        container = root.find("AccountBalances")
        if container is None:
            raise read.unexpected("Root/AccountBalances is missing")
        balances: dict[dt.date, dict[str, Decimal]] = {}
        for n, account in enumerate(container.findall("Account")):
            where = f"AccountBalances/Account[{n}]"
            number = _required(read, account, "Number", where)
            for m, entry in enumerate(account.findall("AccountBalance")):
                entry_where = f"{where}/AccountBalance[{m}]"
                day = read.date_text(
                    entry.get("Date") or "", f"{entry_where}/@Date", formats=_FI_DATE_FORMATS
                )
                balances.setdefault(day, {})[number] = read.decimal_text(
                    _required(read, entry, "Balance", entry_where),
                    f"{entry_where}/Balance",
                    comma=True,
                )
        return balances

    # -- writes ------------------------------------------------------------------------

    async def post_journal(self, posting: JournalPosting) -> PostedJournal:
        """Post one journal as one voucher (``accounting.nv`` takes one per request).

        The voucher is dated ``posting.date`` when it falls in the posting's period, else
        on the last day of that period (a retroactive correction belongs to the period it
        corrects). The reference goes into the voucher description, Netvisor's only
        free-text field on a voucher.
        """
        period_end = month_end(posting.period)
        voucher_date = posting.date if posting.period <= posting.date <= period_end else period_end
        description = posting.description
        if posting.reference and posting.reference not in description:
            description = (
                f"{description} ({posting.reference})" if description else posting.reference
            )
        names = await self._dimension_names_for_posting(posting)
        lines = []
        for line in posting.lines:
            dimensions: dict[str, str] = {}
            if line.cost_centre:
                dimensions[names["cost_centre"]] = line.cost_centre
            if line.cost_unit:
                dimensions[names["cost_unit"]] = line.cost_unit
            lines.append((line.amount, line.description or description, line.account, dimensions))
        body = build_voucher_xml(
            voucher_date=voucher_date,
            description=description,
            voucher_class=self.settings.voucher_class,
            lines=lines,
        )
        root, read = await self._read("POST", "accounting.nv", body=body)
        key = _required(read, root, "Replies/InsertedDataIdentifier", "Root")
        return PostedJournal(external_id=key, status="OK")

    async def _dimension_names_for_posting(self, posting: JournalPosting) -> dict[str, str]:
        needs_centre = any(line.cost_centre for line in posting.lines)
        needs_unit = any(line.cost_unit for line in posting.lines)
        names: dict[str, str] = {}
        configured = {
            "cost_centre": self.settings.cost_centre_dimension,
            "cost_unit": self.settings.cost_unit_dimension,
        }
        for kind, needed in (("cost_centre", needs_centre), ("cost_unit", needs_unit)):
            if not needed:
                continue
            name = configured[kind]
            if name is None:
                if self._dimension_names is None:
                    await self.read_dimensions()
                assert self._dimension_names is not None
                name = self._dimension_names.get(kind)  # type: ignore[call-overload]
            if name is None:
                raise InvalidData(
                    VENDOR,
                    f"no Netvisor dimension is known for {kind.replace('_', ' ')}s; "
                    f"set {kind}_dimension in the settings",
                )
            names[kind] = name
        return names

    async def send(
        self,
        method: Literal["GET", "POST"],
        resource: str,
        *,
        params: Mapping[str, str] | None = None,
        body: bytes | None = None,
    ) -> ET.Element:
        """A signed call to any ``.nv`` resource; the parsed ``Root`` of a successful answer.

        For resources this connector has no method for (``accountingedit.nv``,
        ``invalidatevouchers.nv``, ``accountbalance.nv``...). Failures raise the same
        :class:`ConnectorError` subclasses as every other method.
        """
        root, _read = await self._read(method, resource, params=params, body=body)
        return root

    async def _ledger(
        self, params: Mapping[str, str], *, digest_of: Callable[[str], bool]
    ) -> list[tuple[Voucher, str | None]]:
        """``GET accountingledger.nv``: its vouchers (see :func:`_ledger_vouchers`)."""
        response, read = await self._answer("GET", "accountingledger.nv", params=params)
        return _ledger_vouchers(read, response.content, digest_of)

    async def _read(
        self,
        method: Literal["GET", "POST"],
        resource: str,
        *,
        params: Mapping[str, str] | None = None,
        body: bytes | None = None,
    ) -> tuple[ET.Element, AnswerReader]:
        """The parsed ``Root`` of a successful answer and a reader naming the resource."""
        response, read = await self._answer(method, resource, params=params, body=body)
        return _root_of(read, response.content), read

    async def _answer(
        self,
        method: Literal["GET", "POST"],
        resource: str,
        *,
        params: Mapping[str, str] | None = None,
        body: bytes | None = None,
    ) -> tuple[httpx.Response, AnswerReader]:
        """A successful answer (status OK) and a reader naming the resource."""
        headers = (
            {"Content-Type": f"text/xml; charset={XML_ENCODING}"} if body is not None else None
        )
        # One request at a time per customer, retries included: the lock is held until the
        # answer (or the final failure) is in.
        if self._identity is not None and self._identity.known is None:
            await self._identity.current()  # which customer: the lock is per customer
        async with _customer_lock(self._signing()):
            response = await self._http.request(
                method, resource, params=dict(params or {}), content=body, headers=headers
            )
        logger.debug(
            "netvisor answered",
            extra={"vendor": VENDOR, "resource": resource, "status": response.status_code},
        )
        return response, AnswerReader(VENDOR, f"{method} {resource}", response.status_code)
