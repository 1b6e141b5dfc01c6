"""Visma Netvisor sandbox: ``/netvisor/<resource>.nv`` answering as Netvisor does.

The sandbox stands in for Netvisor and refuses what Netvisor refuses:

* every ``X-Netvisor-*`` header is checked and the MAC is recomputed from the customer's and
  the partner's registered keys (HMAC-SHA256, key ``CustomerKey&PartnerKey``, message
  ``URL&Sender&CustomerId&Timestamp&Language&OrganisationId&TransactionId&TimestampUnix&
  CustomerKey&PartnerKey``, ISO-8859-1, lowercase hex). It is computed here on its own, not
  with the connector's code, so a mistake on one side cannot hide behind the same mistake on
  the other;
* a reused TransactionId answers ``REQUEST_NOT_UNIQUE``, a stale timestamp
  ``AUTHENTICATION_FAILED``, a customer without interface rights ``SERVICE_ACCESS_ERROR``;
* one request at a time per customer: a second concurrent one is refused;
* request XML must follow the DTD's element order; dates on or before the accounting
  period lock date answer ``PERIOD_LOCK``; unknown or inactive accounts and unbalanced
  vouchers answer ``INVALID_DATA``;
* answers are ``Root/ResponseStatus`` documents in ISO-8859-15 with Finnish dates
  (``31.1.2024``) and decimal commas (``-17,18``); with
  ``X-Netvisor-Authentication-UseHTTPResponseStatusCodes: 1`` failures also carry an HTTP
  error status, without it they come back as 200 with ``Status`` FAILED, as Netvisor's
  legacy clients expect.

Simplification: a line posted in ``net`` mode with a VAT percent is stored at its gross
amount on its own account (Netvisor would book the VAT part on the VAT account). Journals
posted by Ledgerlink carry no VAT, so no connector behaviour depends on it.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import re
import xml.etree.ElementTree as ET  # building only; requests are parsed with defusedxml
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Final
from xml.sax.saxutils import escape

import defusedxml
import defusedxml.ElementTree as SafeET
from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import Response

from ledgerlink.sandbox.data import CompanyData, LineData, VoucherData
from ledgerlink.sandbox.errors import SandboxBusy, SandboxRateLimited, SandboxServerError
from ledgerlink.sandbox.world import Tenant, World

__all__ = ["DEMO_CREDENTIALS", "PREFIX", "VENDOR", "mount", "netvisor_mac"]

VENDOR: Final = "netvisor"
PREFIX: Final = "/netvisor"
ENCODING: Final = "ISO-8859-15"

# UNCONFIRMED: Netvisor publishes no clock tolerance. Fifteen minutes either way is what
# the common signed-request schemes allow, generous for customer servers with drifting
# clocks yet short enough that a captured request cannot be replayed much later (and a
# replay inside the window still needs a fresh TransactionId).
TIMESTAMP_TOLERANCE: Final = dt.timedelta(minutes=15)
#: Netvisor's documented limits on key lists.
MAX_LEDGER_KEYS: Final = 500
MAX_INVALIDATE_KEYS: Final = 100

# Categories and the HTTP status each gets when the client asks for status codes.
# UNCONFIRMED: Netvisor documents the flag but not the table; these are the statuses a
# careful REST service would use for the same meaning.
CATEGORY_STATUS: Final[dict[str, int]] = {
    "AUTHENTICATION_FAILED": 401,
    "SERVICE_ACCESS_ERROR": 403,
    "INVALID_DATA": 400,
    "INVALID_DATA_SIZE": 413,
    "DUPLICATE_DATA": 409,
    "REQUEST_NOT_UNIQUE": 409,
    "PERIOD_LOCK": 422,
    "SYSTEM_MAINTANANCE": 503,  # sic: Netvisor's spelling
    "TECHNICAL_ERROR": 500,
}

_LANGUAGES: Final = frozenset({"FI", "EN", "SE"})
_MAC_ALGORITHM: Final = "HMACSHA256"
_REQUIRED_HEADERS: Final = (
    "X-Netvisor-Authentication-Sender",
    "X-Netvisor-Authentication-CustomerId",
    "X-Netvisor-Authentication-PartnerId",
    "X-Netvisor-Authentication-Timestamp",
    "X-Netvisor-Authentication-TimestampUnix",
    "X-Netvisor-Authentication-TransactionId",
    "X-Netvisor-Interface-Language",
    "X-Netvisor-Organisation-ID",
    "X-Netvisor-Authentication-MAC",
    "X-Netvisor-Authentication-MACHashCalculationAlgorithm",
)

# Netvisor's VAT codes (vatpercent@vatcode).
_VAT_CODES: Final = frozenset(
    {
        "NONE", "KOOS", "EUOS", "EUUO", "EUPO", "100", "KOMY", "EUMY", "EUUM",
        "EUPM312", "EUPM309", "MUUL", "EVTO", "EVPO", "RAMY", "RAOS", "EVRO",
    }
)  # fmt: skip

# Voucher classes (tositelajit) of the sandbox companies: name <-> the generator's series.
_CLASS_BY_SERIES: Final[dict[str, str]] = {
    "MY": "Myyntilasku",
    "OL": "Ostolasku",
    "TO": "Tiliote",
    "MU": "Muistiotosite",
    "PA": "Palkkatosite",
    "API": "Rajapintatosite",
}
_SERIES_BY_CLASS: Final = {name.casefold(): series for series, name in _CLASS_BY_SERIES.items()}


class NetvisorFailure(Exception):  # noqa: N818 - a refusal, named as Netvisor's FAILED
    """A request Netvisor refuses: rendered as ``FAILED`` + ``CATEGORY :: message``."""

    def __init__(
        self,
        category: str,
        message: str,
        *,
        status: int | None = None,
        retry_after: int | None = None,
    ) -> None:
        super().__init__(f"{category} :: {message}")
        self.category = category
        self.message = message
        self.status = status if status is not None else CATEGORY_STATUS[category]
        self.retry_after = retry_after


def _invalid(message: str) -> NetvisorFailure:
    return NetvisorFailure("INVALID_DATA", message)


# --------------------------------------------------------------------------- formats


def _fi_date(value: dt.date) -> str:
    return f"{value.day}.{value.month}.{value.year}"


def _fi_decimal(value: Decimal) -> str:
    return f"{value:.2f}".replace(".", ",")


def _fi_percent(value: Decimal | None) -> str:
    if value is None:
        return "0"
    text = format(value.normalize(), "f")
    return text.replace(".", ",")


def _fi_timestamp(value: dt.datetime) -> str:
    return f"{_fi_date(value.date())} {value:%H:%M:%S}"


def _parse_ansi_date(text: str | None, what: str) -> dt.date:
    try:
        return dt.date.fromisoformat((text or "").strip())
    except ValueError:
        raise _invalid(f"{what} is not a date in ANSI format (yyyy-MM-dd)") from None


def _parse_any_date(text: str, *, ansi: bool, what: str) -> dt.date:
    if ansi:
        return _parse_ansi_date(text, what)
    try:
        day, month, year = (int(part) for part in text.strip().split("."))
        return dt.date(year, month, day)
    except ValueError:
        raise _invalid(f"{what} is not a date in Finnish format (d.M.yyyy)") from None


def _parse_amount(text: str | None, what: str) -> Decimal:
    cleaned = (text or "").strip().replace(",", ".")
    try:
        value = Decimal(cleaned)
    except InvalidOperation:
        raise _invalid(f"{what} is not a number") from None
    if not value.is_finite():
        raise _invalid(f"{what} is not a number")
    exponent = value.as_tuple().exponent
    if isinstance(exponent, int) and exponent < -2:
        raise _invalid(f"{what} has more than two decimals")
    return value


# --------------------------------------------------------------------------- responses


def _element(parent: ET.Element, tag: str, text: str | None = None, **attrib: str) -> ET.Element:
    child = ET.SubElement(parent, tag, attrib)
    if text is not None:
        child.text = text
    return child


def _document(root: ET.Element) -> bytes:
    body = ET.tostring(root, encoding="unicode")
    text = f'<?xml version="1.0" encoding="{ENCODING}"?>\n{body}'
    return text.encode("iso-8859-15", errors="xmlcharrefreplace")


def _xml_response(
    root: ET.Element, status: int = 200, headers: dict[str, str] | None = None
) -> Response:
    return Response(
        content=_document(root),
        status_code=status,
        media_type=f"text/xml; charset={ENCODING}",
        headers=headers,
    )


#: What a resource answers: elements, or XML text already rendered (the ledger's vouchers,
#: rendered as text because building an element tree for a million lines is slow).
_Payload = Sequence[ET.Element | str]


def _ok(payload: _Payload, now: dt.datetime) -> Response:
    status = ET.Element("ResponseStatus")
    _element(status, "Status", "OK")
    _element(status, "TimeStamp", _fi_timestamp(now))
    parts = [f'<?xml version="1.0" encoding="{ENCODING}"?>\n<Root>']
    parts.append(ET.tostring(status, encoding="unicode"))
    parts.extend(
        part if isinstance(part, str) else ET.tostring(part, encoding="unicode") for part in payload
    )
    parts.append("</Root>")
    return Response(
        content="".join(parts).encode("iso-8859-15", errors="xmlcharrefreplace"),
        media_type=f"text/xml; charset={ENCODING}",
    )


def _failed(failure: NetvisorFailure, *, use_status_codes: bool, now: dt.datetime) -> Response:
    root = ET.Element("Root")
    status = _element(root, "ResponseStatus")
    _element(status, "Status", "FAILED")
    _element(status, "Status", f"{failure.category} :: {failure.message}")
    _element(status, "TimeStamp", _fi_timestamp(now))
    headers = {}
    if failure.retry_after is not None:
        headers["Retry-After"] = str(failure.retry_after)
    # 429 and 5xx come from the service's front (load balancer, maintenance page) and are
    # answered with their status whatever the flag; application refusals are 200 + FAILED
    # for legacy clients that did not ask for status codes.
    code = failure.status
    if not use_status_codes and code < 500 and code != 429:
        code = 200
    return _xml_response(root, code, headers)


# --------------------------------------------------------------------------- request XML

# Element order of the request DTDs: (child, min, max); max None = unbounded.
_Rule = tuple[str, int, int | None]
_SCHEMAS: Final[dict[str, list[_Rule]]] = {
    "voucher": [
        ("calculationmode", 1, 1),
        ("voucherdate", 1, 1),
        ("number", 0, 1),
        ("description", 0, 1),
        ("voucherclass", 1, 1),
        ("voucherline", 1, None),
        ("voucherattachments", 0, 1),
    ],
    "voucherline": [
        ("linesum", 1, 1),
        ("description", 0, 1),
        ("accountnumber", 1, 1),
        ("vatpercent", 1, 1),
        ("accountdimension", 0, 1),
        ("dimension", 0, None),
    ],
    "dimension": [("dimensionname", 1, 1), ("dimensionitem", 1, 1)],
    "invalidatevouchers": [("netvisorkey", 1, None)],
}


def _check_order(element: ET.Element, path: str) -> None:
    """Refuse children out of the DTD's order, unknown, missing or repeated too often."""
    rules = _SCHEMAS.get(element.tag)
    if rules is None:
        return
    counts = [0] * len(rules)
    position = 0
    for child in element:
        while position < len(rules) and rules[position][0] != child.tag:
            name, minimum, _ = rules[position]
            if counts[position] < minimum:
                raise _invalid(f"{path}/{name} is missing or not in DTD order before <{child.tag}>")
            position += 1
        if position == len(rules):
            raise _invalid(f"{path}/{child.tag} is not allowed here (unknown element or DTD order)")
        counts[position] += 1
        maximum = rules[position][2]
        if maximum is not None and counts[position] > maximum:
            raise _invalid(f"{path}/{child.tag} may appear at most {maximum} time(s)")
        _check_order(child, f"{path}/{child.tag}")
    for index in range(position, len(rules)):
        name, minimum, _ = rules[index]
        if counts[index] < minimum:
            raise _invalid(f"{path}/{name} is missing")


def _decode_body(body: bytes, content_type: str | None) -> str:
    charset = "iso-8859-15"
    for part in (content_type or "").split(";")[1:]:
        key, _, value = part.strip().partition("=")
        if key.lower() == "charset" and value:
            charset = value.strip().strip('"')
    try:
        return body.decode(charset)
    except (LookupError, UnicodeDecodeError):
        raise _invalid(f"the body is not valid {charset}") from None


def _parse_body(body: bytes, content_type: str | None, root_child: str) -> ET.Element:
    if not body.strip():
        raise _invalid("the request body is empty")
    text = _decode_body(body, content_type)
    try:
        root: ET.Element = SafeET.fromstring(text)
    except (ET.ParseError, defusedxml.DefusedXmlException) as exc:
        raise _invalid(f"the body is not well-formed XML ({exc})") from None
    if root.tag != "root":
        raise _invalid(f"the document element must be <root>, not <{root.tag}>")
    children = list(root)
    if not children or children[0].tag != root_child:
        raise _invalid(f"root/{root_child} is missing")
    if len(children) > 1:
        if all(child.tag == root_child for child in children):
            raise _invalid(f"one {root_child} per request")
        raise _invalid(f"root/{children[1].tag} is not allowed here")
    _check_order(children[0], f"root/{root_child}")
    return children[0]


def _child_text(element: ET.Element, tag: str) -> str | None:
    child = element.find(tag)
    if child is None:
        return None
    return (child.text or "").strip()


# --------------------------------------------------------------------------- resources


def _voucher_class(series: str) -> str:
    return _CLASS_BY_SERIES.get(series, series)


def _line_key(voucher: VoucherData, line: LineData) -> str:
    # Netvisor gives every voucher line its own key; the sandbox derives a stable one.
    return str(voucher.id * 1000 + line.line_no)


_MARKUP: Final = re.compile(r"[&<>]")


def _tag(tag: str, text: str) -> str:
    if not text:
        return f"<{tag} />"
    return f"<{tag}>{escape(text) if _MARKUP.search(text) else text}</{tag}>"


def _render_voucher(
    voucher: VoucherData, lines: Iterable[LineData], dimension_names: Mapping[str, str]
) -> str:
    """One ``Voucher`` element as XML text."""
    parts = [
        f'<Voucher Status="{voucher.status}">',
        _tag("NetvisorKey", str(voucher.id)),
        _tag("VoucherDate", _fi_date(voucher.date)),
        _tag("VoucherNumber", str(voucher.number)),
        _tag("VoucherDescription", voucher.description),
        _tag("VoucherClass", _voucher_class(voucher.series)),
    ]
    for line in lines:
        parts.append("<VoucherLine>")
        parts.append(_tag("NetvisorKey", _line_key(voucher, line)))
        parts.append(_tag("LineSum", _fi_decimal(line.amount)))
        parts.append(_tag("Description", line.description))
        parts.append(_tag("AccountNumber", line.account))
        parts.append(_tag("VatPercent", _fi_percent(line.vat_percent)))
        # Published examples write a line without a VAT code as "-" ("NONE" is what a
        # request sends for it).
        parts.append(_tag("VatCode", line.vat_code or "-"))
        for kind, code in line.dimensions.items():
            parts.append("<Dimension>")
            parts.append(_tag("DimensionName", dimension_names.get(kind, kind)))
            parts.append(_tag("DimensionItem", code))
            parts.append("</Dimension>")
        parts.append("</VoucherLine>")
    parts.append("</Voucher>")
    return "".join(parts)


def _keys(text: str, limit: int, what: str) -> set[int]:
    parts = [part.strip() for part in text.split(",") if part.strip()]
    if len(parts) > limit:
        raise NetvisorFailure("INVALID_DATA_SIZE", f"{what} takes at most {limit} keys")
    try:
        return {int(part) for part in parts}
    except ValueError:
        raise _invalid(f"{what} must be a comma-separated list of NetvisorKeys") from None


def ledger(company: CompanyData, params: dict[str, str]) -> _Payload:
    """``accountingledger.nv``: vouchers matching every filter given (at least one)."""
    keys: set[int] | None = None
    if "netvisorkey" in params:
        keys = _keys(params["netvisorkey"], 1, "netvisorkey")
    if "netvisorkeylist" in params:
        listed = _keys(params["netvisorkeylist"], MAX_LEDGER_KEYS, "netvisorkeylist")
        keys = listed if keys is None else keys & listed
    start = end = changed_since = modified_start = modified_end = None
    if "startdate" in params or "enddate" in params:
        start = _parse_ansi_date(params.get("startdate"), "startdate")
        end = _parse_ansi_date(params.get("enddate"), "enddate")
        if start > end:
            raise _invalid("startdate is after enddate")
    if "changedsince" in params:
        changed_since = _parse_ansi_date(params["changedsince"], "changedsince")
    if "lastmodifiedstart" in params or "lastmodifiedend" in params:
        modified_start = _parse_ansi_date(params.get("lastmodifiedstart"), "lastmodifiedstart")
        modified_end = _parse_ansi_date(params.get("lastmodifiedend"), "lastmodifiedend")
        if modified_start > modified_end:
            raise _invalid("lastmodifiedstart is after lastmodifiedend")
    if keys is None and start is None and changed_since is None and modified_start is None:
        raise _invalid(
            "give netvisorkey, netvisorkeylist, startdate and enddate, changedsince, "
            "or lastmodifiedstart and lastmodifiedend"
        )
    account_start = params.get("accountnumberstart")
    account_end = params.get("accountnumberend")
    # Published: voucherstatus 1 = all, 2 = valid (the default), 3 = invalidated and
    # deleted. UNCONFIRMED: whether it also filters netvisorkey/netvisorkeylist reads (the
    # page says only showgenerator goes with those); here it does not.
    voucher_status = params.get("voucherstatus", "2")
    if voucher_status not in ("1", "2", "3"):
        raise _invalid("voucherstatus must be 1, 2 or 3")
    wanted: set[str] | None = None
    if keys is None:
        wanted = {
            "1": {"valid", "invalidated", "deleted"},
            "2": {"valid"},
            "3": {"invalidated", "deleted"},
        }[voucher_status]

    names: dict[str, str] = {dimension.kind: dimension.name for dimension in company.dimensions}
    candidates: Iterable[VoucherData]
    if keys is not None:
        candidates = []
        for key in sorted(keys):
            try:
                candidates.append(company.voucher(key))
            except KeyError:
                continue
    elif start is not None and end is not None:
        # From the sandbox's indexes (the filters below still apply to what they return).
        candidates = company.vouchers_dated(start, end)
    elif modified_start is not None and modified_end is not None:
        candidates = company.vouchers_modified_between(modified_start, modified_end)
    else:
        candidates = company.vouchers
    parts = ["<Vouchers>"]
    for voucher in candidates:
        if wanted is not None and voucher.status not in wanted:
            continue
        if start is not None and end is not None and not start <= voucher.date <= end:
            continue
        # Modification dates are compared in UTC (UNCONFIRMED: Netvisor likely uses Finnish
        # local time; clients overlap their windows by a day, so either works for them).
        modified = voucher.modified_at.astimezone(dt.UTC).date()
        if changed_since is not None and modified < changed_since:
            continue
        if (
            modified_start is not None
            and modified_end is not None
            and not modified_start <= modified <= modified_end
        ):
            continue
        lines: Iterable[LineData] = voucher.lines
        if account_start or account_end:
            lines = [
                line
                for line in voucher.lines
                if not (account_start and line.account < account_start)
                and not (account_end and line.account > account_end)
            ]
            if not lines:
                continue
        parts.append(_render_voucher(voucher, lines, names))
    parts.append("</Vouchers>")
    return ["".join(parts)]


# Account-group headings of a Finnish chart by the account number's first digit (the
# shape of the published example: groups are Account elements with AccountType
# accountgroup, the accounts under them point to their group by FatherNetvisorKey).
_ACCOUNT_GROUPS: Final = {
    "1": "VASTAAVAA",
    "2": "VASTATTAVAA",
    "3": "LIIKEVAIHTO",
    "4": "MATERIAALIT JA PALVELUT",
    "5": "HENKILÖSTÖKULUT",
    "6": "POISTOT",
    "7": "LIIKETOIMINNAN MUUT KULUT",
    "8": "RAHOITUSTUOTOT JA -KULUT",
    "9": "TILINPÄÄTÖSSIIRROT JA VEROT",
}
_GROUP_KEY_BASE: Final = 100_000


def account_list(company: CompanyData) -> list[ET.Element]:
    """``accountlist.nv``: the chart as published, ``AccountList/CompanyDefaultAccounts``
    and ``AccountList/Accounts/Account`` with account-group headings among the accounts."""
    root = ET.Element("AccountList")
    defaults = _element(root, "CompanyDefaultAccounts")
    numbers = [account.number for account in company.accounts]
    # UNCONFIRMED: which accounts a company has as defaults; the sandbox names the first
    # receivables-like and payables-like accounts it has, or nothing.
    _element(defaults, "TradePayables", next((n for n in numbers if n.startswith("29")), ""))
    _element(defaults, "SalesReceivables", next((n for n in numbers if n.startswith("17")), ""))
    accounts = _element(root, "Accounts")
    groups_written: set[str] = set()
    for key, account in enumerate(company.accounts, start=1):
        digit = account.number[:1]
        group = _ACCOUNT_GROUPS.get(digit)
        if group is not None and digit not in groups_written:
            groups_written.add(digit)
            heading = _element(accounts, "Account")
            _element(heading, "NetvisorKey", str(_GROUP_KEY_BASE + int(digit)))
            # The published example has a heading with an empty Number.
            _element(heading, "Number", "")
            _element(heading, "Name", group)
            _element(heading, "AccountType", "accountgroup")
            _element(heading, "FatherNetvisorKey", "0")
            _element(heading, "IsActive", "1")
            _element(heading, "IsCumulative", "1")
        element = _element(accounts, "Account")
        _element(element, "NetvisorKey", str(key))
        _element(element, "Number", account.number)
        _element(element, "Name", account.name)
        _element(element, "AccountType", "account")
        father = _GROUP_KEY_BASE + int(digit) if group is not None else 0
        _element(element, "FatherNetvisorKey", str(father))
        _element(element, "IsActive", "1" if account.active else "0")
        _element(element, "IsCumulative", "0")
    return [root]


def period_list(company: CompanyData) -> list[ET.Element]:
    """``accountingperiodlist.nv``: fiscal years and the lock date."""
    periods = ET.Element("AccountingPeriodList")
    lock = _element(periods, "PeriodLockInformation")
    lock_date = company.lock_date
    # As published: the attribute says ansi while the value is a Finnish date.
    _element(
        lock, "AccountingPeriodLockDate", _fi_date(lock_date) if lock_date else "", format="ansi"
    )
    _element(lock, "VatPeriodLockDate", _fi_date(lock_date) if lock_date else "", format="ansi")
    _element(lock, "PurchaseLockDate", "", format="ansi")
    for key, year in enumerate(company.fiscal_years, start=1):
        period = _element(periods, "Period")
        _element(period, "NetvisorKey", str(key))
        _element(period, "Name", f"Tilikausi {_fi_date(year.start)} - {_fi_date(year.end)}")
        _element(period, "BeginDate", _fi_date(year.start), format="ansi")
        _element(period, "EndDate", _fi_date(year.end), format="ansi")
    return [periods]


def dimension_list(company: CompanyData) -> list[ET.Element]:
    """``dimensionlist.nv``: dimension names and their items.

    Netvisor identifies a dimension item by its name (``dimensionitem`` in a voucher), so
    the sandbox names items by the object code, as payroll integrations book them.
    """
    names = ET.Element("DimensionNameList")
    item_key = 0
    for dimension in company.dimensions:
        element = _element(names, "DimensionName")
        _element(element, "Netvisorkey", dimension.id)
        _element(element, "Name", dimension.name)
        _element(element, "IsHidden", "False")
        _element(element, "LinkType", "0")
        details = _element(element, "DimensionDetails")
        for sort, item in enumerate(dimension.objects, start=1):
            item_key += 1
            detail = _element(details, "DimensionDetail")
            _element(detail, "Netvisorkey", str(item_key))
            _element(detail, "Name", item.code)
            _element(detail, "IsHidden", "False" if item.active else "True")
            _element(detail, "Level", "1")
            _element(detail, "Sort", str(sort))
            _element(detail, "EndSort", str(sort))
            _element(detail, "FatherID", "0")
    return [names]


def _balance_dates(params: dict[str, str]) -> list[dt.date]:
    """The dates ``balancedates`` and ``intervaltype`` ask for (published: separate dates
    for intervaltype 0 or none; otherwise steps of a day, week, month or year between the
    first and the last date, both always included)."""
    text = params.get("balancedates")
    if not text:
        raise _invalid("balancedates is required")
    dates = [_parse_ansi_date(part.strip(), "balancedates") for part in text.split(",")]
    interval = params.get("intervaltype", "0") or "0"
    if interval not in ("0", "1", "2", "3", "4"):
        raise _invalid("intervaltype must be 0, 1, 2, 3 or 4")
    if interval == "0":
        return sorted(set(dates))
    first, last = min(dates), max(dates)
    steps = [first]
    current = first
    while True:
        if interval == "1":
            current += dt.timedelta(days=1)
        elif interval == "2":
            current += dt.timedelta(days=7)
        elif interval == "3":
            # UNCONFIRMED: where month steps fall; the sandbox steps to each month's last day.
            following = (current.replace(day=28) + dt.timedelta(days=4)).replace(day=1)
            current = (following.replace(day=28) + dt.timedelta(days=4)).replace(
                day=1
            ) - dt.timedelta(days=1)
        else:
            current = (
                dt.date(current.year, 12, 31)
                if current.month != 12 or current.day != 31
                else dt.date(current.year + 1, 12, 31)
            )
        if current >= last:
            break
        steps.append(current)
    steps.append(last)
    return sorted(set(steps))


def account_balance(
    company: CompanyData, params: dict[str, str], today: dt.date
) -> list[ET.Element]:
    """``accountbalance.nv`` as published (support.netvisor.fi "Get account balances
    accountbalance.nv"): ``balancedates`` (required, ANSI dates separated by commas) and
    ``intervaltype`` (0 separate dates, 1 day, 2 week, 3 month, 4 year), optional
    ``netvisorkey``/``netvisorkeylist``; answer ``Root/AccountBalances/Account``
    (``Netvisorkey`` attribute, ``Number``, ``Name``) with an ``AccountBalance`` per date
    (``Date`` attribute; ``Debet``, ``Kredit``, ``Balance`` = Debet - Kredit).

    UNCONFIRMED: whether the sums run from the start of the books or of the fiscal year;
    the sandbox sums every valid voucher dated on or before the date.
    """
    del today
    dates = _balance_dates(params)
    keys: set[int] | None = None
    if "netvisorkey" in params:
        keys = _keys(params["netvisorkey"], 1, "netvisorkey")
    if "netvisorkeylist" in params:
        listed = _keys(params["netvisorkeylist"], MAX_LEDGER_KEYS, "netvisorkeylist")
        keys = listed if keys is None else keys & listed
    # Each account's daily turnover comes from the sandbox's index (kept current by every
    # change): the sums to each date are a running total over its days, not over lines.
    moves = company.account_movements()
    root = ET.Element("AccountBalances")
    for key, account in enumerate(company.accounts, start=1):
        if keys is not None and key not in keys:
            continue
        element = _element(root, "Account", Netvisorkey=str(key))
        _element(element, "Number", account.number)
        _element(element, "Name", account.name)
        days = sorted(moves.get(account.number, {}).items())
        position, debit, credit = 0, Decimal(0), Decimal(0)
        for day in dates:
            while position < len(days) and days[position][0] <= day:
                debit += days[position][1][0]
                credit += days[position][1][1]
                position += 1
            entry = _element(element, "AccountBalance", Date=day.isoformat())
            _element(entry, "Debet", _fi_decimal(debit))
            _element(entry, "Kredit", _fi_decimal(credit))
            _element(entry, "Balance", _fi_decimal(debit - credit))
    return [root]


@dataclass(frozen=True, slots=True)
class _PostedVoucher:
    date: dt.date
    number: int | None
    description: str
    series: str
    lines: list[LineData]


def _read_voucher(company: CompanyData, voucher: ET.Element) -> _PostedVoucher:
    """A posted ``<voucher>`` (DTD order already checked) validated against the books."""
    mode = _child_text(voucher, "calculationmode") or ""
    if mode not in ("net", "gross"):
        raise _invalid("calculationmode must be net or gross")
    date_element = voucher.find("voucherdate")
    assert date_element is not None  # the DTD check guarantees it
    ansi = (date_element.get("format") or "").lower() == "ansi"
    date = _parse_any_date(date_element.text or "", ansi=ansi, what="voucherdate")
    number_text = _child_text(voucher, "number")
    number: int | None = None
    if number_text is not None:
        if not number_text.isdigit() or int(number_text) < 1:
            raise _invalid("number must be a positive whole number")
        number = int(number_text)
    voucher_class = _child_text(voucher, "voucherclass") or ""
    series = _SERIES_BY_CLASS.get(voucher_class.casefold())
    if series is None:
        raise _invalid(f"voucherclass {voucher_class!r} does not exist")

    dimensions = {dimension.name.casefold(): dimension for dimension in company.dimensions}
    lines: list[LineData] = []
    gross_total = Decimal(0)
    for line_no, line in enumerate(voucher.findall("voucherline"), start=1):
        where = f"voucherline {line_no}"
        sum_element = line.find("linesum")
        assert sum_element is not None
        amount = _parse_amount(sum_element.text, f"{where}: linesum")
        line_mode = sum_element.get("type", mode)
        if line_mode not in ("net", "gross"):
            raise _invalid(f"{where}: linesum type must be net or gross")
        account_number = _child_text(line, "accountnumber") or ""
        account = company.account(account_number)
        if account is None:
            raise _invalid(f"{where}: account {account_number} does not exist")
        if not account.active:
            raise _invalid(f"{where}: account {account_number} is not in use")
        vat_element = line.find("vatpercent")
        assert vat_element is not None
        vat_code = (vat_element.get("vatcode") or "").strip()
        if vat_code not in _VAT_CODES:
            raise _invalid(f"{where}: vatcode {vat_code or '(none)'} is not a Netvisor VAT code")
        vat_percent = _parse_amount(vat_element.text, f"{where}: vatpercent")
        if vat_code == "NONE" and vat_percent != 0:
            raise _invalid(f"{where}: vatcode NONE needs vatpercent 0")
        gross = amount
        if line_mode == "net" and vat_percent:
            gross = (amount * (1 + vat_percent / 100)).quantize(Decimal("0.01"))
        gross_total += gross
        line_dimensions: dict[str, str] = {}
        for dimension_element in line.findall("dimension"):
            name = _child_text(dimension_element, "dimensionname") or ""
            item = _child_text(dimension_element, "dimensionitem") or ""
            dimension = dimensions.get(name.casefold())
            if dimension is None:
                raise _invalid(f"{where}: dimension {name!r} does not exist")
            known = {obj.code: obj for obj in dimension.objects}
            if item not in known:
                raise _invalid(
                    f"{where}: dimension item {item!r} of {dimension.name} does not exist"
                )
            if not known[item].active:
                raise _invalid(f"{where}: dimension item {item!r} of {dimension.name} is hidden")
            line_dimensions[dimension.kind] = item
        lines.append(
            LineData(
                line_no=line_no,
                account=account_number,
                amount=gross,
                description=_child_text(line, "description") or "",
                vat_percent=vat_percent if vat_percent else None,
                vat_code=None if vat_code == "NONE" else vat_code,
                dimensions=line_dimensions,
            )
        )
    if gross_total != 0:
        raise _invalid(f"the voucher does not balance: the lines sum to {_fi_decimal(gross_total)}")
    return _PostedVoucher(
        date=date,
        number=number,
        description=_child_text(voucher, "description") or "",
        series=series,
        lines=lines,
    )


def _check_open(company: CompanyData, day: dt.date) -> None:
    lock_date = company.lock_date
    if lock_date is not None and day <= lock_date:
        raise NetvisorFailure(
            "PERIOD_LOCK",
            f"the voucher date {_fi_date(day)} is in a locked period "
            f"(locked until {_fi_date(lock_date)})",
        )
    if company.period_of(day) is None:
        raise _invalid(f"no accounting period exists for {_fi_date(day)}")
    if not company.is_open(day):
        raise NetvisorFailure("PERIOD_LOCK", f"the period of {_fi_date(day)} is closed")


def post_voucher(company: CompanyData, body: bytes, content_type: str | None) -> list[ET.Element]:
    """``accounting.nv``: one voucher."""
    posted = _read_voucher(company, _parse_body(body, content_type, "voucher"))
    _check_open(company, posted.date)
    if posted.number is not None and any(
        voucher.series == posted.series
        and voucher.number == posted.number
        and voucher.date.year == posted.date.year
        for voucher in company.vouchers
    ):
        # UNCONFIRMED: Netvisor numbers vouchers itself; an explicit number that exists in
        # the class and year is refused as a duplicate rather than renumbered.
        raise NetvisorFailure(
            "DUPLICATE_DATA",
            f"voucher number {posted.number} already exists in {_voucher_class(posted.series)}",
        )
    voucher = company.add_voucher(
        date=posted.date, description=posted.description, lines=posted.lines, series=posted.series
    )
    if posted.number is not None:
        voucher.number = posted.number
    return [_replies(voucher.id)]


def edit_voucher(
    company: CompanyData, params: dict[str, str], body: bytes, content_type: str | None
) -> list[ET.Element]:
    """``accountingedit.nv?netvisorkey=N``: replace a voucher's content (UNCONFIRMED: the
    body is the same ``<voucher>`` as for ``accounting.nv``)."""
    key = _keys(params.get("netvisorkey", ""), 1, "netvisorkey")
    if len(key) != 1:
        raise _invalid("give the netvisorkey of the voucher to edit")
    (voucher_id,) = key
    try:
        voucher = company.voucher(voucher_id)
    except KeyError:
        raise _invalid(f"voucher {voucher_id} does not exist") from None
    if voucher.status != "valid":
        raise _invalid(f"voucher {voucher_id} is invalidated and cannot be edited")
    posted = _read_voucher(company, _parse_body(body, content_type, "voucher"))
    _check_open(company, voucher.date)
    _check_open(company, posted.date)
    company.edit_voucher(
        voucher_id, description=posted.description, date=posted.date, lines=posted.lines
    )
    return [_replies(voucher_id)]


def invalidate_vouchers(
    company: CompanyData, body: bytes, content_type: str | None
) -> list[ET.Element]:
    """``invalidatevouchers.nv``: ``<root><invalidatevouchers><netvisorkey>...``
    (UNCONFIRMED body shape), at most 100 keys, all or nothing."""
    element = _parse_body(body, content_type, "invalidatevouchers")
    keys = [(child.text or "").strip() for child in element.findall("netvisorkey")]
    if len(keys) > MAX_INVALIDATE_KEYS:
        raise NetvisorFailure(
            "INVALID_DATA_SIZE", f"at most {MAX_INVALIDATE_KEYS} vouchers per request"
        )
    targets: list[VoucherData] = []
    for text in keys:
        if not text.isdigit():
            raise _invalid(f"netvisorkey {text!r} is not a key")
        try:
            voucher = company.voucher(int(text))
        except KeyError:
            raise _invalid(f"voucher {text} does not exist") from None
        _check_open(company, voucher.date)
        targets.append(voucher)
    for voucher in targets:
        # Invalidating an invalidated voucher changes nothing and is not an error.
        if voucher.status == "valid":
            company.invalidate_voucher(voucher.id)
    return []


def _replies(key: int) -> ET.Element:
    replies = ET.Element("Replies")
    _element(replies, "InsertedDataIdentifier", str(key))
    return replies


# --------------------------------------------------------------------------- front


def netvisor_mac(
    *,
    url: str,
    headers: dict[str, str],
    customer_key: str,
    partner_key: str,
) -> str:
    """The MAC Netvisor expects for a request to ``url`` with these ``X-Netvisor`` headers."""
    message = "&".join(
        (
            url,
            headers["X-Netvisor-Authentication-Sender"],
            headers["X-Netvisor-Authentication-CustomerId"],
            headers["X-Netvisor-Authentication-Timestamp"],
            headers["X-Netvisor-Interface-Language"],
            headers["X-Netvisor-Organisation-ID"],
            headers["X-Netvisor-Authentication-TransactionId"],
            headers["X-Netvisor-Authentication-TimestampUnix"],
            customer_key,
            partner_key,
        )
    )
    key = f"{customer_key}&{partner_key}".encode("iso-8859-1", errors="replace")
    return hmac.new(key, message.encode("iso-8859-1", errors="replace"), hashlib.sha256).hexdigest()


#: Credentials of demo tenants (``ledgerlink-sandbox serve``), so a person can try the API.
DEMO_CREDENTIALS: Final[dict[str, str]] = {
    "customer_key": "demo-customer-key",
    "partner_id": "LEDGERLINK_DEMO",
    "partner_key": "demo-partner-key",
}


def _parse_timestamp(text: str) -> dt.datetime:
    for pattern in ("%Y-%m-%d %H:%M:%S.%f", "%Y-%m-%d %H:%M:%S"):
        try:
            return dt.datetime.strptime(text.strip(), pattern).replace(tzinfo=dt.UTC)
        except ValueError:
            continue
    raise NetvisorFailure("AUTHENTICATION_FAILED", "Timestamp is not yyyy-MM-dd HH:mm:ss.fff")


def _auth_failed(message: str) -> NetvisorFailure:
    return NetvisorFailure("AUTHENTICATION_FAILED", message)


_Handler = Callable[[Tenant, dict[str, str], bytes, str | None, dt.datetime], _Payload]


class _Front:
    """What every request goes through before a resource sees it."""

    def __init__(self, world: World) -> None:
        self.world = world

    def now(self) -> dt.datetime:
        return dt.datetime.fromtimestamp(self.world.clock(), dt.UTC)

    def authenticate(self, request: Request, now: dt.datetime) -> Tenant:
        """The customer the request is signed for; refuses anything Netvisor refuses."""
        headers = {name: request.headers.get(name, "") for name in _REQUIRED_HEADERS}
        for name, value in headers.items():
            if not value.strip():
                raise _auth_failed(f"header {name} is missing")
        algorithm = headers["X-Netvisor-Authentication-MACHashCalculationAlgorithm"]
        if algorithm.strip().upper() != _MAC_ALGORITHM:
            raise _auth_failed(f"MAC algorithm {algorithm} is not supported; use HMACSHA256")
        customer_id = headers["X-Netvisor-Authentication-CustomerId"]
        tenant = self.world.tenant(VENDOR, customer_id)
        if tenant is None or not tenant.credentials.get("customer_key"):
            raise _auth_failed("unknown CustomerId")
        if headers["X-Netvisor-Authentication-PartnerId"] != tenant.credentials.get("partner_id"):
            raise _auth_failed("the partner is not linked to this customer")
        if headers["X-Netvisor-Organisation-ID"] != tenant.company.business_id:
            raise _auth_failed("the organisation ID does not belong to this customer")
        if headers["X-Netvisor-Interface-Language"] not in _LANGUAGES:
            raise _auth_failed("interface language must be FI, EN or SE")
        stamp = _parse_timestamp(headers["X-Netvisor-Authentication-Timestamp"])
        try:
            stamp_unix = dt.datetime.fromtimestamp(
                int(headers["X-Netvisor-Authentication-TimestampUnix"]), dt.UTC
            )
        except (ValueError, OverflowError, OSError):
            raise _auth_failed("TimestampUnix is not a Unix time in seconds") from None
        if abs(stamp - now) > TIMESTAMP_TOLERANCE or abs(stamp_unix - now) > TIMESTAMP_TOLERANCE:
            raise _auth_failed("the request timestamp is too far from Netvisor's clock")
        expected = netvisor_mac(
            url=str(request.url),
            headers=headers,
            customer_key=tenant.credentials["customer_key"],
            partner_key=tenant.credentials.get("partner_key", ""),
        )
        given = headers["X-Netvisor-Authentication-MAC"].strip()
        if not hmac.compare_digest(expected.encode(), given.encode("utf-8", errors="replace")):
            raise _auth_failed("the MAC does not match")
        if tenant.blocked:
            raise _auth_failed("the customer's Netvisor use has ended")
        used: set[str] = tenant.state.setdefault("transaction_ids", set())
        transaction_id = headers["X-Netvisor-Authentication-TransactionId"]
        if transaction_id in used:
            raise NetvisorFailure("REQUEST_NOT_UNIQUE", "the TransactionId has been used")
        used.add(transaction_id)
        if not tenant.api_enabled:
            raise NetvisorFailure(
                "SERVICE_ACCESS_ERROR", "the customer has not granted rights to interface resources"
            )
        return tenant

    async def serve(self, request: Request, handler: _Handler) -> Response:
        """Authenticate, hold the customer's slot, apply faults, run ``handler``, render."""
        now = self.now()
        use_status_codes = (
            request.headers.get("X-Netvisor-Authentication-UseHTTPResponseStatusCodes", "").strip()
            == "1"
        )
        try:
            tenant = self.authenticate(request, now)
            async with self.world.one_at_a_time(VENDOR).hold(tenant.tenant_id):
                await self.world.faults.apply(request, VENDOR, tenant.tenant_id)
                self.world.rate_limiter(VENDOR).take(tenant.tenant_id)
                body = await request.body() if request.method == "POST" else b""
                params = {key.lower(): value for key, value in request.query_params.items()}
                payload = handler(tenant, params, body, request.headers.get("content-type"), now)
        except NetvisorFailure as failure:
            return _failed(failure, use_status_codes=use_status_codes, now=now)
        except SandboxBusy as busy:
            # UNCONFIRMED: Netvisor documents one request at a time per customer but not
            # the answer to a second one. Refused at once, like an overloaded front:
            # 429 with Retry-After, so the client retries after the first has finished.
            refusal = NetvisorFailure(
                "TECHNICAL_ERROR",
                "another request of this customer is in progress; send one request at a time",
                status=429,
                retry_after=int(busy.retry_after_header),
            )
            return _failed(refusal, use_status_codes=use_status_codes, now=now)
        except SandboxRateLimited as limited:
            # Netvisor has no rate-limit category; the front's 429 carries TECHNICAL_ERROR.
            throttled = NetvisorFailure(
                "TECHNICAL_ERROR",
                f"too many requests: {limited.message}",
                status=429,
                retry_after=int(limited.retry_after_header),
            )
            return _failed(throttled, use_status_codes=use_status_codes, now=now)
        except SandboxServerError as error:
            category = "SYSTEM_MAINTANANCE" if error.status == 503 else "TECHNICAL_ERROR"
            outage = NetvisorFailure(category, error.message, status=error.status)
            return _failed(outage, use_status_codes=use_status_codes, now=now)
        return _ok(payload, now)


def mount(app: FastAPI, world: World) -> None:
    """Serve Netvisor's resources under ``/netvisor``.

    A customer is a tenant of vendor ``netvisor`` whose tenant id is the CustomerId and
    whose credentials hold ``customer_key``, ``partner_id`` and ``partner_key``. Demo
    tenants without credentials get :data:`DEMO_CREDENTIALS`.
    """
    for tenant in world.vendor_tenants(VENDOR):
        if tenant.flags.get("demo") and not tenant.credentials:
            tenant.credentials.update(DEMO_CREDENTIALS)
    front = _Front(world)
    router = APIRouter(prefix=PREFIX, tags=["netvisor"])

    def route(method: str, resource: str, handler: _Handler) -> None:
        async def endpoint(request: Request) -> Response:
            return await front.serve(request, handler)

        endpoint.__name__ = f"netvisor_{resource.replace('.', '_')}"
        router.add_api_route(f"/{resource}", endpoint, methods=[method], include_in_schema=False)

    route("GET", "accountingledger.nv", lambda t, params, b, c, n: ledger(t.company, params))
    route(
        "POST", "accounting.nv", lambda t, p, body, ctype, n: post_voucher(t.company, body, ctype)
    )
    route(
        "POST",
        "accountingedit.nv",
        lambda t, params, body, ctype, n: edit_voucher(t.company, params, body, ctype),
    )
    route(
        "POST",
        "invalidatevouchers.nv",
        lambda t, p, body, ctype, n: invalidate_vouchers(t.company, body, ctype),
    )
    route("GET", "accountlist.nv", lambda t, p, b, c, n: account_list(t.company))
    route("GET", "accountingperiodlist.nv", lambda t, p, b, c, n: period_list(t.company))
    route("GET", "dimensionlist.nv", lambda t, p, b, c, n: dimension_list(t.company))
    route(
        "GET",
        "accountbalance.nv",
        lambda t, params, b, c, now: account_balance(t.company, params, now.date()),
    )
    app.include_router(router)
