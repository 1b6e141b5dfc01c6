"""Visma Nmbrs connector: payroll runs and their journals (a :class:`PayrollSource`).

Nmbrs is a payroll system; Ledgerlink only *reads* from it: the journal entries of each
payroll run, to post into a ledger. There is no journal write towards Nmbrs.

Two APIs, chosen by ``NmbrsSettings.api``:

* **SOAP v3** ``CompanyService.asmx`` (default) with the SOAP header
  ``AuthHeaderWithDomain{Username, Token, Domain}``: ``List_GetAll`` (companies),
  ``Run_GetList(CompanyId, Year)`` (runs) and one of the journal operations
  ``Journals_GetByRunCompany_v2`` / ``Journals_GetByRunCostCenter_v2`` /
  ``Journals_GetByRunCostCenterCostUnitPerYear`` (``NmbrsSettings.journal_detail``). The
  journal arrives as an XML *string* inside the SOAP result:
  ``<transactions><transaction><header><date/><period>3/2025</period></header><lines>
  <line id=".."><dim1/>(GL account)<dim2/>(cost centre)<dim3/>(cost unit)<value/>
  <debitcredit/><description/></line>...``. SOAP faults carry the Nmbrs error number in the
  fault string (``---> 1001: Invalid Authentication``); it is mapped to the connectors' error
  categories and kept as ``vendor_code``.
* **REST** (``api.nmbrsapp.com``) with OAuth 2.0 authorization code + PKCE; tokens are
  debtor-level. Companies and payruns are documented resources; the journal resource is
  UNCONFIRMED (see :meth:`NmbrsConnector.read_run_journal`).

Retroactive corrections (seed 003): a run with an earlier period unlocked answers one
transaction per corrected period besides the normal one. Each becomes its own
:class:`PayrollJournal` with ``kind="correction"``, ``period`` = the period it corrects (where
it must be posted) and the normal run's ``reference``.

SOAP run ids are only unique together with the year the journal calls need, so this
connector's ``PayrollRun.run_id`` is ``"<year>-<RunInfo.ID>"`` for SOAP and the payrun GUID for
REST. The API token, the OAuth tokens and the client secret are ``SecretStr``; they are put
into the request body or the Authorization header only, never into a log line or an
exception message.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import re
import time
import xml.etree.ElementTree as ET  # parsing goes through defusedxml; ET only for types
from collections.abc import Awaitable, Callable
from decimal import Decimal, InvalidOperation
from typing import Any, ClassVar, Final, Literal
from xml.sax.saxutils import escape

import defusedxml.ElementTree as SafeET
import httpx
from defusedxml import DefusedXmlException
from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator

from ledgerlink.connectors.base import (
    PayrollJournal,
    PayrollJournalLine,
    PayrollRun,
    PayrollSource,
)
from ledgerlink.connectors.errors import (
    AccessNotEnabled,
    AuthenticationFailed,
    ConnectorError,
    InvalidData,
    NotFound,
    RateLimited,
    VendorUnavailable,
)
from ledgerlink.connectors.http import (
    RateBudget,
    RetryPolicy,
    VendorHttpClient,
    default_classify,
    parse_retry_after,
)
from ledgerlink.connectors.models import Company
from ledgerlink.connectors.oauth import OAuthClientSettings, OAuthSession, TokenSet, TokenStore

__all__ = [
    "JOURNAL_OPERATIONS",
    "SERVICE_NS",
    "JournalDetail",
    "NmbrsConnector",
    "NmbrsSettings",
    "classify_rest",
    "classify_soap",
    "parse_journal_xml",
]

logger = logging.getLogger(__name__)

VENDOR: Final = "nmbrs"
SERVICE_NS: Final = "https://api.nmbrs.nl/soap/v3/CompanyService"
SOAP_ENV: Final = "http://schemas.xmlsoap.org/soap/envelope/"
SOAP_PATH: Final = "/soap/v3/CompanyService.asmx"

JournalDetail = Literal["company", "cost_centre", "cost_centre_cost_unit"]

#: The SOAP operation answering the journal at each level of detail.
JOURNAL_OPERATIONS: Final[dict[JournalDetail, str]] = {
    "company": "Journals_GetByRunCompany_v2",
    "cost_centre": "Journals_GetByRunCostCenter_v2",
    "cost_centre_cost_unit": "Journals_GetByRunCostCenterCostUnitPerYear",
}

# "Server was unable to process request. ---> 1001: Invalid Authentication"
_NMBRS_CODE: Final = re.compile(r"--->\s*(\d{4}):\s*(.*)", re.DOTALL)

# Nmbrs error numbers by category (public client libraries list them). Authentication:
# 1000 invalid credentials, 1001 invalid authentication, 1006 login security failure.
_AUTHENTICATION_CODES: Final = frozenset({"1000", "1001", "1006"})
# Authenticated but not allowed: 1002 authorization, 1003 authorization data, 1004 no valid
# subscription (blocked debtor), 2003 unauthorized employee, 2009 unauthorized debtor,
# 2011 protected mode, 2013 not available (free trial, test company).
_ACCESS_CODES: Final = frozenset({"1002", "1003", "1004", "2003", "2009", "2011", "2013"})
# 2004 unauthorized company: Nmbrs answers it for a company id the user cannot see, which
# includes ids that do not exist, so it reads as "not found" for a caller. 2046 not found.
_NOT_FOUND_CODES: Final = frozenset({"2004", "2046"})
_UNAVAILABLE_CODES: Final = frozenset({"9999"})


class NmbrsSettings(BaseModel):
    """One Nmbrs connection (the API user's token, or an OAuth client for REST)."""

    model_config = ConfigDict(frozen=True)

    api: Literal["soap", "rest"] = Field(
        default="soap", description="SOAP v3 with a user token, or REST with OAuth."
    )
    base_url: str = Field(
        default="https://api.nmbrs.nl", description="SOAP host; the service path is appended."
    )
    username: str = Field(default="", description="The API user's login (SOAP).")
    token: SecretStr | None = Field(default=None, description="The API user's token (SOAP).")
    domain: str = Field(default="", description="The Nmbrs environment, e.g. mycompany (SOAP).")
    rest_base_url: str = Field(
        default="https://api.nmbrsapp.com", description="REST host; /api/... is appended."
    )
    oauth: OAuthClientSettings | None = Field(
        default=None, description="The registered OAuth client (REST; PKCE on)."
    )
    journal_detail: JournalDetail = Field(
        default="cost_centre_cost_unit",
        description="Journal lines per GL account, per cost centre, or per centre and unit.",
    )
    currency: str = Field(default="EUR", description="Currency of the companies' payroll.")
    page_size: int = Field(default=100, ge=1, le=100, description="REST page size.")
    rate_per_second: float = Field(default=5.0, gt=0, description="Own request budget.")
    burst: int = Field(default=10, ge=1)
    retry: RetryPolicy = Field(default_factory=RetryPolicy)
    timeout_seconds: float = Field(default=60.0, gt=0)

    @model_validator(mode="after")
    def _complete(self) -> NmbrsSettings:
        if self.api == "soap" and not (self.username and self.token and self.domain):
            raise ValueError("the SOAP API needs username, token and domain")
        if self.api == "rest" and self.oauth is None:
            raise ValueError("the REST API needs the OAuth client settings")
        return self


# --------------------------------------------------------------------------------------------
# Error mapping
# --------------------------------------------------------------------------------------------


def _fault_of(response: httpx.Response) -> tuple[str, str] | None:
    """(faultcode, faultstring) of a SOAP fault answer, if it is one."""
    try:
        root = SafeET.fromstring(response.content)
    except (ET.ParseError, DefusedXmlException, ValueError):
        return None
    fault = root.find(f"{{{SOAP_ENV}}}Body/{{{SOAP_ENV}}}Fault")
    if fault is None:
        return None
    return (fault.findtext("faultcode") or "").strip(), (
        fault.findtext("faultstring") or ""
    ).strip()


def classify_soap(response: httpx.Response) -> ConnectorError | None:
    """The error a SOAP answer means (``None`` for a result)."""
    status = response.status_code
    if status < 400:
        return None
    fault = _fault_of(response)
    if fault is None:
        return default_classify(VENDOR, response)
    fault_code, text = fault
    if status == 429:
        return RateLimited(
            VENDOR,
            "rate limited",
            retry_after=parse_retry_after(response.headers.get("retry-after")),
            vendor_message=text,
        )
    match = _NMBRS_CODE.search(text)
    if match is None:
        if status >= 502 or "server" in fault_code.lower():
            return VendorUnavailable(VENDOR, "Nmbrs failed", status=status, vendor_message=text)
        return InvalidData(VENDOR, "Nmbrs refused the request", status=status, vendor_message=text)
    code, message = match.group(1), match.group(2).strip()
    error_class: type[ConnectorError]
    if code in _AUTHENTICATION_CODES:
        error_class = AuthenticationFailed
    elif code in _ACCESS_CODES:
        error_class = AccessNotEnabled
    elif code in _NOT_FOUND_CODES:
        error_class = NotFound
    elif code in _UNAVAILABLE_CODES:
        error_class = VendorUnavailable
    else:
        error_class = InvalidData
    return error_class(VENDOR, message, vendor_code=code, vendor_message=message, status=status)


def classify_rest(response: httpx.Response) -> ConnectorError | None:
    """The error a REST answer (``{title, detail, code}``) means (``None`` for success)."""
    status = response.status_code
    if status < 400:
        return None
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict) or "title" not in body:
        return default_classify(VENDOR, response)
    title, detail = str(body.get("title") or ""), str(body.get("detail") or "")
    code = str(body["code"]) if body.get("code") is not None else None
    message = f"{title}: {detail}" if detail else title
    if status == 429:
        return RateLimited(
            VENDOR,
            "rate limited",
            retry_after=parse_retry_after(response.headers.get("retry-after")),
            vendor_code=code,
            vendor_message=message,
        )
    error_class: type[ConnectorError] = {
        401: AuthenticationFailed,
        403: AccessNotEnabled,
        404: NotFound,
    }.get(status, VendorUnavailable if status >= 500 else InvalidData)
    return error_class(VENDOR, message, vendor_code=code, vendor_message=message, status=status)


# --------------------------------------------------------------------------------------------
# Journal XML
# --------------------------------------------------------------------------------------------


def _journal_date(text: str) -> dt.date:
    """A journal header date; UNCONFIRMED format, so ISO and Dutch day-month-year are read."""
    value = text.strip().split("T", 1)[0].split(" ", 1)[0]
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        pass
    for pattern in ("%d-%m-%Y", "%d/%m/%Y"):
        try:
            return dt.datetime.strptime(value, pattern).date()
        except ValueError:
            continue
    raise InvalidData(VENDOR, f"unreadable journal date {value!r}")


def _journal_period(text: str) -> tuple[int, int]:
    """``"3/2025"`` -> (2025, 3)."""
    period, _, year = text.strip().partition("/")
    try:
        month, full_year = int(period), int(year)
    except ValueError:
        raise InvalidData(VENDOR, f"unreadable journal period {text!r}") from None
    if not 1 <= month <= 12:
        # Four-weekly payrolls have 13 periods; those have no calendar month to post in.
        raise InvalidData(VENDOR, f"journal period {text!r} is not a calendar month")
    return full_year, month


def _line(element: ET.Element) -> PayrollJournalLine:
    def text(name: str) -> str:
        return (element.findtext(name) or "").strip()

    account = text("dim1")
    if not account:
        raise InvalidData(VENDOR, "a journal line has no GL account (dim1)")
    try:
        amount = Decimal(text("value"))
    except InvalidOperation:
        raise InvalidData(VENDOR, f"unreadable journal amount {text('value')!r}") from None
    side_text = text("debitcredit").lower()
    if side_text not in {"debit", "credit", "d", "c"}:
        raise InvalidData(VENDOR, f"unknown debitcredit {side_text!r}")
    side: Literal["D", "C"] = "D" if side_text.startswith("d") else "C"
    if amount < 0:
        # A negative value on one side is a positive value on the other.
        amount, side = -amount, "C" if side == "D" else "D"
    return PayrollJournalLine(
        gl_account=account,
        cost_centre=text("dim2") or None,
        cost_unit=text("dim3") or None,
        amount=amount,
        debit_credit=side,
        description=text("description"),
    )


def parse_journal_xml(document: str, run: PayrollRun, reference: str) -> list[PayrollJournal]:
    """The journals of ``run`` from the Nmbrs journal XML: one per ``<transaction>``.

    A transaction in another period than the run's is a retroactive correction: it is
    posted in the period it corrects, with the run's reference (seed 003).
    """
    try:
        root = SafeET.fromstring(document)
    except (ET.ParseError, DefusedXmlException, ValueError) as exc:
        raise InvalidData(VENDOR, f"unreadable journal XML ({type(exc).__name__})") from None
    if root.tag != "transactions":
        raise InvalidData(VENDOR, f"unexpected journal root <{root.tag}>")
    journals = []
    for transaction in root.findall("transaction"):
        year, month = _journal_period(transaction.findtext("header/period") or "")
        date_text = transaction.findtext("header/date")
        day = _journal_date(date_text) if date_text and date_text.strip() else None
        period = dt.date(year, month, 1)
        journals.append(
            PayrollJournal(
                run_id=run.run_id,
                date=day or period,
                period=period,
                kind="normal" if (year, month) == (run.year, run.period) else "correction",
                reference=reference,
                lines=tuple(_line(line) for line in transaction.findall("lines/line")),
            )
        )
    return journals


def _reference(company: str, run: PayrollRun) -> str:
    # UNCONFIRMED: which field Nmbrs uses as the journal reference. The run description is
    # what people see and type, so it is used; without one, company, year and run number.
    return run.description or f"NMBRS-{company}-{run.year}-{run.period:02d}"


# --------------------------------------------------------------------------------------------
# The connector
# --------------------------------------------------------------------------------------------


def _child_text(element: ET.Element, name: str) -> str:
    return (element.findtext(f"{{{SERVICE_NS}}}{name}") or "").strip()


def _split_run_id(run: str) -> tuple[int, int]:
    year, _, run_id = run.partition("-")
    if not (year.isdigit() and run_id.isdigit()):
        raise NotFound(VENDOR, f"not an Nmbrs SOAP run id: {run!r} (expected <year>-<id>)")
    return int(year), int(run_id)


class NmbrsConnector(PayrollSource):
    """Reads companies, payroll runs and run journals from Visma Nmbrs."""

    vendor: ClassVar[str] = VENDOR

    def __init__(
        self,
        settings: NmbrsSettings,
        *,
        oauth_session: OAuthSession | None = None,
        token_store: TokenStore | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        budget = RateBudget(settings.rate_per_second, settings.burst, sleep=sleep, clock=clock)
        self._own_session = False
        self._session = oauth_session
        if settings.api == "rest" and self._session is None:
            assert settings.oauth is not None  # checked by the settings
            self._session = OAuthSession(
                VENDOR, settings.oauth, store=token_store, transport=transport
            )
            self._own_session = True
        rest = settings.api == "rest"
        self._http = VendorHttpClient(
            VENDOR,
            settings.rest_base_url if rest else settings.base_url,
            tenant=settings.domain or settings.username,
            classify=classify_rest if rest else classify_soap,
            budget=budget,
            retry=settings.retry,
            timeout=httpx.Timeout(settings.timeout_seconds, connect=10.0),
            auth=self._session.auth() if rest and self._session is not None else None,
            transport=transport,
            sleep=sleep,
        )

    async def aclose(self) -> None:
        """Close the HTTP client (and the OAuth session this connector made)."""
        await self._http.aclose()
        if self._own_session and self._session is not None:
            await self._session.aclose()

    # -- OAuth (REST) -----------------------------------------------------------------------

    @property
    def oauth_session(self) -> OAuthSession | None:
        """The OAuth session of the REST API (``None`` for SOAP)."""
        return self._session

    def authorization_url(self, state: str) -> tuple[str, str | None]:
        """Where to send the person authorising the connection, and the PKCE verifier."""
        return self._require_session().authorization_url(state)

    async def complete_authorization(self, code: str, code_verifier: str | None) -> TokenSet:
        """Trade the code from the redirect (and the PKCE verifier) for debtor tokens."""
        return await self._require_session().exchange_code(code, code_verifier)

    def _require_session(self) -> OAuthSession:
        if self._session is None:
            raise ValueError("OAuth is only used with api='rest'")
        return self._session

    # -- PayrollSource ----------------------------------------------------------------------

    async def list_companies(self) -> list[Company]:
        """The companies the API user (SOAP) or the authorised debtor (REST) can see."""
        if self.settings.api == "rest":
            return [
                Company(
                    external_id=str(item["companyId"]),
                    business_id=item.get("kvkNumber") or None,
                    name=str(item.get("name") or ""),
                    currency=self.settings.currency,
                )
                for item in await self._rest_pages("/api/companies")
            ]
        result = await self._soap("List_GetAll", {})
        return [
            Company(
                external_id=_child_text(company, "ID"),
                business_id=_child_text(company, "KvkNr") or None,
                name=_child_text(company, "Name"),
                currency=self.settings.currency,
            )
            for company in result.findall(f"{{{SERVICE_NS}}}Company")
        ]

    async def list_runs(self, company: str, year: int) -> list[PayrollRun]:
        """The payroll runs of ``company`` in ``year`` (an empty list when there are none)."""
        if self.settings.api == "rest":
            items = await self._rest_pages(
                f"/api/companies/{company}/payruns", params={"year": year}
            )
            return [self._rest_run(item) for item in items]
        result = await self._soap("Run_GetList", {"CompanyId": company, "Year": year})
        runs = []
        for info in result.findall(f"{{{SERVICE_NS}}}RunInfo"):
            run_at = _child_text(info, "RunAt")
            runs.append(
                PayrollRun(
                    run_id=f"{_child_text(info, 'Year')}-{_child_text(info, 'ID')}",
                    year=int(_child_text(info, "Year")),
                    period=int(_child_text(info, "PeriodStart")),
                    date=_journal_date(run_at) if run_at else None,
                    description=_child_text(info, "Description"),
                )
            )
        return runs

    async def read_run_journal(self, company: str, run: str) -> list[PayrollJournal]:
        """The journals of one run: the normal one and one per corrected period.

        The run is looked up first (it gives the run's own period, which tells corrections
        apart, and the reference); then the journal is read at ``journal_detail``.
        """
        if self.settings.api == "rest":
            return await self._rest_journal(company, run)
        year, run_number = _split_run_id(run)
        info = next((r for r in await self.list_runs(company, year) if r.run_id == run), None)
        if info is None:
            raise NotFound(VENDOR, f"no run {run_number} in {year} for company {company}")
        operation = JOURNAL_OPERATIONS[self.settings.journal_detail]
        result = await self._soap(
            operation, {"CompanyId": company, "RunId": run_number, "Year": year}
        )
        journals = parse_journal_xml(result.text or "", info, _reference(company, info))
        logger.info(
            "nmbrs: read run journal",
            extra={
                "vendor": VENDOR,
                "company": company,
                "run": run,
                "journals": len(journals),
                "corrections": sum(1 for journal in journals if journal.kind == "correction"),
            },
        )
        return journals

    # -- SOAP -------------------------------------------------------------------------------

    def _envelope(self, operation: str, params: dict[str, Any]) -> str:
        token = self.settings.token.get_secret_value() if self.settings.token else ""
        body = "".join(f"<{name}>{escape(str(value))}</{name}>" for name, value in params.items())
        return (
            '<?xml version="1.0" encoding="utf-8"?>'
            f'<soap:Envelope xmlns:soap="{SOAP_ENV}"><soap:Header>'
            f'<AuthHeaderWithDomain xmlns="{SERVICE_NS}">'
            f"<Username>{escape(self.settings.username)}</Username>"
            f"<Token>{escape(token)}</Token>"
            f"<Domain>{escape(self.settings.domain)}</Domain>"
            "</AuthHeaderWithDomain></soap:Header><soap:Body>"
            f'<{operation} xmlns="{SERVICE_NS}">{body}</{operation}>'
            "</soap:Body></soap:Envelope>"
        )

    async def _soap(self, operation: str, params: dict[str, Any]) -> ET.Element:
        """Call ``operation``; its ``<operation>Result`` element."""
        logger.debug("nmbrs: SOAP %s", operation, extra={"vendor": VENDOR})
        response = await self._http.post(
            SOAP_PATH,
            content=self._envelope(operation, params).encode(),
            headers={
                "Content-Type": "text/xml; charset=utf-8",
                "SOAPAction": f'"{SERVICE_NS}/{operation}"',
            },
            # Every operation used here only reads: repeating one cannot book anything.
            idempotent=True,
        )
        try:
            root = SafeET.fromstring(response.content)
        except (ET.ParseError, DefusedXmlException, ValueError) as exc:
            raise VendorUnavailable(
                VENDOR, f"unreadable SOAP answer to {operation} ({type(exc).__name__})"
            ) from None
        result = root.find(
            f"{{{SOAP_ENV}}}Body/{{{SERVICE_NS}}}{operation}Response"
            f"/{{{SERVICE_NS}}}{operation}Result"
        )
        if result is None:
            # A void/empty result (no companies, no runs) may omit the element.
            return ET.Element(f"{{{SERVICE_NS}}}{operation}Result")
        return result

    # -- REST -------------------------------------------------------------------------------

    async def _rest_pages(
        self, path: str, params: dict[str, Any] | None = None
    ) -> list[dict[str, Any]]:
        """Every item of a paged REST list (``{data, pagination}``)."""
        items: list[dict[str, Any]] = []
        page = 1
        while True:
            response = await self._http.get(
                path, params={**(params or {}), "page": page, "pageSize": self.settings.page_size}
            )
            body = response.json()
            data = body.get("data") or []
            items.extend(data)
            total_pages = int((body.get("pagination") or {}).get("totalPages") or 0)
            if page >= total_pages or not data:
                return items
            page += 1

    @staticmethod
    def _rest_run(item: dict[str, Any]) -> PayrollRun:
        run_at = item.get("runAt")
        return PayrollRun(
            run_id=str(item["payrunId"]),
            year=int(item["year"]),
            period=int(item["periodStart"]),
            date=_journal_date(str(run_at)) if run_at else None,
            description=str(item.get("description") or ""),
        )

    async def _rest_journal(self, company: str, run: str) -> list[PayrollJournal]:
        # UNCONFIRMED: Nmbrs documents no REST journal resource; this reads
        # /api/companies/{companyId}/payruns/{payrunId}/journals, which answers the payrun and
        # its transactions with the SOAP journal's content as JSON.
        response = await self._http.get(f"/api/companies/{company}/payruns/{run}/journals")
        body = response.json()
        info = self._rest_run(body["payrun"])
        reference = _reference(company, info)
        journals = []
        for transaction in body.get("transactions") or []:
            year = int(transaction["period"]["year"])
            month = int(transaction["period"]["period"])
            period = dt.date(year, month, 1)
            lines = []
            for line in transaction.get("lines") or []:
                amount = Decimal(str(line["value"]))
                side: Literal["D", "C"] = (
                    "D" if str(line["debitCredit"]).lower().startswith("d") else "C"
                )
                if amount < 0:
                    amount, side = -amount, "C" if side == "D" else "D"
                lines.append(
                    PayrollJournalLine(
                        gl_account=str(line["generalLedgerAccount"]),
                        cost_centre=line.get("costCenter") or None,
                        cost_unit=line.get("costUnit") or None,
                        amount=amount,
                        debit_credit=side,
                        description=str(line.get("description") or ""),
                    )
                )
            journals.append(
                PayrollJournal(
                    run_id=info.run_id,
                    date=_journal_date(str(transaction["date"])),
                    period=period,
                    kind="normal" if (year, month) == (info.year, info.period) else "correction",
                    reference=reference,
                    lines=tuple(lines),
                )
            )
        return journals
