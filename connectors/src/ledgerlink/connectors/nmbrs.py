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
import hashlib
import logging
import re
import time
import xml.etree.ElementTree as ET  # parsing goes through defusedxml; ET only for types
from collections.abc import Awaitable, Callable
from decimal import Decimal, InvalidOperation
from typing import Any, ClassVar, Final, Literal, NoReturn
from xml.sax.saxutils import escape

import defusedxml.ElementTree as SafeET
import httpx
from defusedxml import DefusedXmlException
from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator

from ledgerlink.connectors.answers import child_text
from ledgerlink.connectors.base import (
    PayrollJournal,
    PayrollJournalLine,
    PayrollRun,
    PayrollSource,
)
from ledgerlink.connectors.credentials import CredentialBearerAuth, CredentialProvider
from ledgerlink.connectors.errors import (
    AccessNotEnabled,
    AuthenticationFailed,
    ConnectorError,
    InvalidData,
    NotFound,
    RateLimited,
    UnexpectedResponse,
    VendorUnavailable,
)
from ledgerlink.connectors.http import (
    RateBudget,
    RetryPolicy,
    VendorHttpClient,
    budget_for,
    default_classify,
    retry_after_of,
)
from ledgerlink.connectors.models import Company
from ledgerlink.connectors.oauth import OAuthClientSettings, OAuthSession, TokenSet, TokenStore

__all__ = [
    "JOURNAL_OPERATIONS",
    "SERVICE_NS",
    "JournalDetail",
    "NmbrsConnector",
    "NmbrsSettings",
    "UnexpectedJournal",
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
            retry_after=retry_after_of(response),
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
            retry_after=retry_after_of(response),
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


class UnexpectedJournal(UnexpectedResponse, InvalidData):
    """The journal XML string is outside what Nmbrs publishes (unreadable, a missing period or
    account, an unknown debit/credit word).

    Also an :class:`InvalidData`, as :func:`parse_journal_xml` raised before the published
    contract was pinned, so callers that catch that keep working.
    """


#: Where the journal XML comes from, for error messages when the caller does not say.
JOURNAL_ENDPOINT: Final = "the journal XML"

# The XML declaration of the inner document. Nmbrs builds the string with .NET, whose
# StringWriter declares encoding="utf-16" although the string travels inside a UTF-8 SOAP
# answer; other writers declare utf-8 or a single-byte code page. The string is already
# text, so the declaration says nothing true about it and is removed before parsing
# (UNCONFIRMED which encodings Nmbrs declares; any declaration is handled alike).
_DECLARATION: Final = re.compile(r"\A\s*<\?xml[^>]*\?>", re.IGNORECASE)


def _journal_fail(endpoint: str, detail: str) -> NoReturn:
    raise UnexpectedJournal(VENDOR, endpoint, detail)


def _journal_date(text: str, endpoint: str = JOURNAL_ENDPOINT) -> dt.date:
    """A journal header (or run) date.

    UNCONFIRMED format: Nmbrs publishes no example. Its journal XML has the element names of
    Twinfield's transaction XML (header/date, lines/line/dim1..dim3, value, debitcredit),
    whose published header date is ``yyyymmdd``; .NET writes ``yyyy-mm-ddThh:mm:ss``; Dutch
    users write ``dd-mm-yyyy``. All of these are read.
    """
    value = text.strip().split("T", 1)[0].split(" ", 1)[0]
    if len(value) == 8 and value.isdigit():
        try:
            return dt.date(int(value[:4]), int(value[4:6]), int(value[6:]))
        except ValueError:
            _journal_fail(endpoint, f"unreadable journal date {value!r}")
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        pass
    for pattern in ("%d-%m-%Y", "%d/%m/%Y"):
        try:
            return dt.datetime.strptime(value, pattern).date()
        except ValueError:
            continue
    _journal_fail(endpoint, f"unreadable journal date {value[:40]!r}")


def _journal_period(text: str, endpoint: str = JOURNAL_ENDPOINT) -> tuple[int, int]:
    """``"3/2025"`` -> (2025, 3); Twinfield's ``"2025/03"`` is read too (UNCONFIRMED form)."""
    first, _, second = text.strip().partition("/")
    try:
        if len(first) == 4 and len(second) <= 2:
            full_year, month = int(first), int(second)
        else:
            month, full_year = int(first), int(second)
    except ValueError:
        _journal_fail(endpoint, f"unreadable journal period {text[:40]!r}")
    if not 1 <= month <= 12:
        # Four-weekly payrolls have 13 periods; those have no calendar month to post in.
        _journal_fail(endpoint, f"journal period {text[:40]!r} is not a calendar month")
    return full_year, month


def _line(element: ET.Element, endpoint: str, where: str) -> PayrollJournalLine:
    def text(name: str) -> str:
        return (element.findtext(name) or "").strip()

    account = text("dim1")
    if not account:
        _journal_fail(endpoint, f"{where} has no GL account (dim1)")
    try:
        amount = Decimal(text("value"))
    except InvalidOperation:
        _journal_fail(endpoint, f"{where} has an unreadable amount {text('value')[:40]!r}")
    if not amount.is_finite():
        _journal_fail(endpoint, f"{where} has an unreadable amount {text('value')[:40]!r}")
    side_text = text("debitcredit").lower()
    if side_text not in {"debit", "credit", "d", "c"}:
        _journal_fail(endpoint, f"{where} has an unknown debitcredit {side_text[:20]!r}")
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


def parse_journal_xml(
    document: str, run: PayrollRun, reference: str, *, endpoint: str = JOURNAL_ENDPOINT
) -> list[PayrollJournal]:
    """The journals of ``run`` from the Nmbrs journal XML: one per ``<transaction>``.

    A transaction in another period than the run's is a retroactive correction: it is
    posted in the period it corrects, with the run's reference (seed 003). Whatever the
    document declares as its encoding is ignored (it is a string already). Anything outside
    the shape raises :class:`UnexpectedJournal` naming ``endpoint``.
    """
    digest = hashlib.sha256(document.encode()).hexdigest()
    text = _DECLARATION.sub("", document.lstrip("\ufeff"), count=1).strip()
    if not text:
        _journal_fail(endpoint, "the journal XML is empty")
    try:
        root = SafeET.fromstring(text)
    except (ET.ParseError, DefusedXmlException, ValueError) as exc:
        _journal_fail(endpoint, f"unreadable journal XML ({type(exc).__name__})")
    if root.tag != "transactions":
        _journal_fail(endpoint, f"unexpected journal root <{root.tag[:60]}>")
    journals = []
    for index, transaction in enumerate(root.findall("transaction")):
        where = f"transaction[{index}]"
        period_text = transaction.findtext("header/period")
        if period_text is None or not period_text.strip():
            _journal_fail(endpoint, f"{where}/header/period is missing")
        year, month = _journal_period(period_text, endpoint)
        date_text = transaction.findtext("header/date")
        day = _journal_date(date_text, endpoint) if date_text and date_text.strip() else None
        period = dt.date(year, month, 1)
        elements = transaction.findall("lines/line")
        if not elements:
            # A journal entry without lines books nothing; a run's transaction always has.
            _journal_fail(endpoint, f"{where} has no lines/line")
        journals.append(
            PayrollJournal(
                run_id=run.run_id,
                date=day or period,
                period=period,
                kind="normal" if (year, month) == (run.year, run.period) else "correction",
                reference=reference,
                lines=tuple(
                    _line(line, endpoint, f"{where}/lines/line[{number}]")
                    for number, line in enumerate(elements)
                ),
                source_sha256=digest,
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


def _fail(endpoint: str, detail: str, status: int | None = None) -> NoReturn:
    raise UnexpectedResponse(VENDOR, endpoint, detail, status=status)


def _soap_endpoint(operation: str) -> str:
    return f"POST {SOAP_PATH} {operation}"


def _child_int(element: ET.Element, name: str, endpoint: str, where: str) -> int:
    """A required integer child (WSDL ``s:int``) of a result element."""
    text = child_text(element, name, SERVICE_NS)
    if not text:
        _fail(endpoint, f"{where}/{name} is missing")
    try:
        return int(text)
    except ValueError:
        _fail(endpoint, f"{where}/{name} is not an integer: {text[:20]!r}")


def _rest_json(response: httpx.Response, endpoint: str) -> dict[str, Any]:
    if not response.content.strip():
        _fail(endpoint, "the body is empty", response.status_code)
    try:
        body = response.json()
    except ValueError:
        _fail(endpoint, "the body is not JSON (truncated?)", response.status_code)
    if not isinstance(body, dict):
        _fail(endpoint, f"the answer is not an object ({type(body).__name__})")
    return body


def _rest_value(
    obj: Any, name: str, endpoint: str, where: str, kinds: tuple[type, ...], *, required: bool
) -> Any:
    if not isinstance(obj, dict):
        _fail(endpoint, f"{where} is not an object ({type(obj).__name__})")
    value = obj.get(name)
    if value is None:
        if required:
            _fail(endpoint, f"{where}.{name} is missing")
        return None
    if isinstance(value, bool) or not isinstance(value, kinds):
        _fail(endpoint, f"{where}.{name} has the wrong type ({type(value).__name__})")
    return value


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
        budget = budget or budget_for(
            VENDOR, settings.rate_per_second, settings.burst, sleep=sleep, clock=clock
        )
        self._own_session = False
        self._session = session
        if settings.api == "rest" and self._session is None:
            assert settings.oauth is not None  # checked by the settings
            self._session = OAuthSession(
                VENDOR,
                settings.oauth,
                store=store,
                # One token set per debtor session; the key is the caller's to choose.
                store_key=store_key or "default",
                transport=transport,
            )
            self._own_session = True
        rest = settings.api == "rest"
        #: When given (auth's token service), it supplies the REST bearer token; the OAuth
        #: session then never refreshes by itself.
        self.credentials = credentials
        auth: httpx.Auth | None = None
        if rest and credentials is not None:
            auth = CredentialBearerAuth(credentials, VENDOR)
        elif rest and self._session is not None:
            auth = self._session.auth()
        self._http = VendorHttpClient(
            VENDOR,
            settings.rest_base_url if rest else settings.base_url,
            tenant=settings.domain or settings.username,
            classify=classify_rest if rest else classify_soap,
            budget=budget,
            retry=retry or settings.retry,
            timeout=httpx.Timeout(settings.timeout_seconds, connect=10.0),
            auth=auth,
            transport=transport,
            sleep=sleep,
            clock=clock,
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
            endpoint = "GET /api/companies"
            return [
                Company(
                    external_id=str(
                        _rest_value(item, "companyId", endpoint, where, (str,), required=True)
                    ),
                    business_id=_rest_value(
                        item, "kvkNumber", endpoint, where, (str,), required=False
                    )
                    or None,
                    name=_rest_value(item, "name", endpoint, where, (str,), required=False) or "",
                    currency=self.settings.currency,
                )
                for index, item in enumerate(await self._rest_pages("/api/companies"))
                for where in (f"data[{index}]",)
            ]
        result = await self._soap("List_GetAll", {})
        endpoint = _soap_endpoint("List_GetAll")
        return [
            Company(
                external_id=str(_child_int(company, "ID", endpoint, f"Company[{index}]")),
                business_id=child_text(company, "KvkNr", SERVICE_NS) or None,
                name=child_text(company, "Name", SERVICE_NS),
                currency=self.settings.currency,
            )
            for index, company in enumerate(result.findall(f"{{{SERVICE_NS}}}Company"))
        ]

    async def list_runs(self, company: str, year: int) -> list[PayrollRun]:
        """The payroll runs of ``company`` in ``year`` (an empty list when there are none)."""
        if self.settings.api == "rest":
            items = await self._rest_pages(
                f"/api/companies/{company}/payruns", params={"year": year}
            )
            endpoint = "GET /api/companies/{companyId}/payruns"
            return [
                self._rest_run(item, endpoint, f"data[{index}]") for index, item in enumerate(items)
            ]
        result = await self._soap("Run_GetList", {"CompanyId": company, "Year": year})
        endpoint = _soap_endpoint("Run_GetList")
        runs = []
        for index, info in enumerate(result.findall(f"{{{SERVICE_NS}}}RunInfo")):
            where = f"RunInfo[{index}]"
            run_year = _child_int(info, "Year", endpoint, where)
            run_at = child_text(info, "RunAt", SERVICE_NS)
            runs.append(
                PayrollRun(
                    run_id=f"{run_year}-{_child_int(info, 'ID', endpoint, where)}",
                    year=run_year,
                    period=_child_int(info, "PeriodStart", endpoint, where),
                    date=_journal_date(run_at, endpoint) if run_at else None,
                    description=child_text(info, "Description", SERVICE_NS),
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
        journals = parse_journal_xml(
            result.text or "",
            info,
            _reference(company, info),
            endpoint=f"{_soap_endpoint(operation)} (journal XML)",
        )
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
        endpoint = _soap_endpoint(operation)
        if not response.content.strip():
            _fail(endpoint, "the body is empty", response.status_code)
        try:
            root = SafeET.fromstring(response.content)
        except (ET.ParseError, DefusedXmlException, ValueError) as exc:
            _fail(endpoint, f"unreadable SOAP answer ({type(exc).__name__})", response.status_code)
        body = root.find(f"{{{SOAP_ENV}}}Body")
        if root.tag != f"{{{SOAP_ENV}}}Envelope" or body is None:
            _fail(endpoint, f"not a SOAP 1.1 envelope (root <{root.tag[:80]}>)")
        answer = body.find(f"{{{SERVICE_NS}}}{operation}Response")
        if answer is None:
            # Not silently "nothing": a response in another namespace (or another operation's)
            # would otherwise read as no companies, no runs.
            found = [child.tag[:80] for child in body]
            _fail(endpoint, f"{operation}Response in {SERVICE_NS} is missing (found {found})")
        result = answer.find(f"{{{SERVICE_NS}}}{operation}Result")
        if result is None:
            # A void/empty result (no companies, no runs) omits the element (.asmx).
            return ET.Element(f"{{{SERVICE_NS}}}{operation}Result")
        return result

    # -- REST -------------------------------------------------------------------------------

    async def _rest_pages(
        self, path: str, params: dict[str, Any] | None = None
    ) -> list[dict[str, Any]]:
        """Every item of a paged REST list (``{data, pagination}``)."""
        endpoint = f"GET {_path_template(path)}"
        items: list[dict[str, Any]] = []
        page = 1
        while True:
            response = await self._http.get(
                path, params={**(params or {}), "page": page, "pageSize": self.settings.page_size}
            )
            body = _rest_json(response, endpoint)
            data = _rest_value(body, "data", endpoint, "answer", (list,), required=True)
            for index, item in enumerate(data):
                if not isinstance(item, dict):
                    _fail(endpoint, f"data[{index}] is not an object ({type(item).__name__})")
            items.extend(data)
            pagination = _rest_value(
                body, "pagination", endpoint, "answer", (dict,), required=False
            )
            total_pages = (
                _rest_value(
                    pagination, "totalPages", endpoint, "pagination", (int,), required=False
                )
                if pagination is not None
                else None
            ) or 0
            if page >= total_pages or not data:
                return items
            page += 1

    @staticmethod
    def _rest_run(item: dict[str, Any], endpoint: str, where: str) -> PayrollRun:
        run_at = _rest_value(item, "runAt", endpoint, where, (str,), required=False)
        return PayrollRun(
            run_id=str(_rest_value(item, "payrunId", endpoint, where, (str,), required=True)),
            year=_rest_value(item, "year", endpoint, where, (int,), required=True),
            period=_rest_value(item, "periodStart", endpoint, where, (int,), required=True),
            date=_journal_date(run_at, endpoint) if run_at else None,
            description=_rest_value(item, "description", endpoint, where, (str,), required=False)
            or "",
        )

    async def _rest_journal(self, company: str, run: str) -> list[PayrollJournal]:
        # UNCONFIRMED: Nmbrs documents no REST journal resource; this reads
        # /api/companies/{companyId}/payruns/{payrunId}/journals, which answers the payrun and
        # its transactions with the SOAP journal's content as JSON.
        endpoint = "GET /api/companies/{companyId}/payruns/{payrunId}/journals"
        response = await self._http.get(f"/api/companies/{company}/payruns/{run}/journals")
        body = _rest_json(response, endpoint)
        payrun = _rest_value(body, "payrun", endpoint, "answer", (dict,), required=True)
        info = self._rest_run(payrun, endpoint, "payrun")
        reference = _reference(company, info)
        transactions = (
            _rest_value(body, "transactions", endpoint, "answer", (list,), required=False) or []
        )
        journals = []
        for index, transaction in enumerate(transactions):
            where = f"transactions[{index}]"
            period_of = _rest_value(transaction, "period", endpoint, where, (dict,), required=True)
            year = _rest_value(
                period_of, "year", endpoint, f"{where}.period", (int,), required=True
            )
            month = _rest_value(
                period_of, "period", endpoint, f"{where}.period", (int,), required=True
            )
            if not 1 <= month <= 12:
                _fail(endpoint, f"{where}.period.period {month} is not a calendar month")
            period = dt.date(year, month, 1)
            lines = []
            raw_lines = _rest_value(transaction, "lines", endpoint, where, (list,), required=True)
            for number, line in enumerate(raw_lines):
                line_where = f"{where}.lines[{number}]"
                value = _rest_value(
                    line, "value", endpoint, line_where, (int, float, str), required=True
                )
                try:
                    amount = Decimal(str(value))
                except InvalidOperation:
                    _fail(endpoint, f"{line_where}.value is not a number")
                if not amount.is_finite():
                    _fail(endpoint, f"{line_where}.value is not a number")
                side_text = str(
                    _rest_value(line, "debitCredit", endpoint, line_where, (str,), required=True)
                ).lower()
                if side_text not in {"debit", "credit", "d", "c"}:
                    _fail(endpoint, f"{line_where}.debitCredit {side_text[:20]!r} is unknown")
                side: Literal["D", "C"] = "D" if side_text.startswith("d") else "C"
                if amount < 0:
                    amount, side = -amount, "C" if side == "D" else "D"
                lines.append(
                    PayrollJournalLine(
                        gl_account=str(
                            _rest_value(
                                line,
                                "generalLedgerAccount",
                                endpoint,
                                line_where,
                                (str, int),
                                required=True,
                            )
                        ),
                        cost_centre=_rest_value(
                            line, "costCenter", endpoint, line_where, (str,), required=False
                        )
                        or None,
                        cost_unit=_rest_value(
                            line, "costUnit", endpoint, line_where, (str,), required=False
                        )
                        or None,
                        amount=amount,
                        debit_credit=side,
                        description=_rest_value(
                            line, "description", endpoint, line_where, (str,), required=False
                        )
                        or "",
                    )
                )
            date_text = _rest_value(transaction, "date", endpoint, where, (str,), required=True)
            journals.append(
                PayrollJournal(
                    run_id=info.run_id,
                    date=_journal_date(date_text, endpoint),
                    period=period,
                    kind="normal" if (year, month) == (info.year, info.period) else "correction",
                    reference=reference,
                    lines=tuple(lines),
                )
            )
        return journals


def _path_template(path: str) -> str:
    """``path`` with its ids replaced by their names (ids are the caller's data)."""
    parts = path.split("/")
    if len(parts) > 3 and parts[1:3] == ["api", "companies"]:
        parts[3] = "{companyId}"
    return "/".join(parts)
