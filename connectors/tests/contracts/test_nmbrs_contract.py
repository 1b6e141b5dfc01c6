"""The Nmbrs connector against the published contract, through httpx MockTransport.

SOAP answers are written from the WSDL's types (as typed in public clients) and the journal
XML from its published element names; ``nmbrs/SOURCES.md`` gives each source. None of this
goes through our sandbox.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable, Mapping
from decimal import Decimal
from typing import Any
from xml.sax.saxutils import escape

import httpx
import pytest
from pydantic import SecretStr

from ledgerlink.connectors.base import PayrollRun
from ledgerlink.connectors.errors import InvalidData, UnexpectedResponse
from ledgerlink.connectors.http import RetryPolicy
from ledgerlink.connectors.nmbrs import (
    SERVICE_NS,
    NmbrsConnector,
    NmbrsSettings,
    UnexpectedJournal,
    parse_journal_xml,
)
from ledgerlink.connectors.oauth import MemoryTokenStore, OAuthClientSettings, TokenSet

SOAP_ENV = "http://schemas.xmlsoap.org/soap/envelope/"
SOAP_PATH = "/soap/v3/CompanyService.asmx"


def envelope(operation: str, result: str | None, *, namespace: str = SERVICE_NS) -> bytes:
    """An .asmx SOAP 1.1 answer: ``<op>Response/<op>Result`` in the service namespace
    (``result=None``: the Result element omitted, as .asmx does for an empty result)."""
    inner = "" if result is None else f"<{operation}Result>{result}</{operation}Result>"
    return (
        '<?xml version="1.0" encoding="utf-8"?>'
        f'<soap:Envelope xmlns:soap="{SOAP_ENV}" '
        'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" '
        'xmlns:xsd="http://www.w3.org/2001/XMLSchema">'
        f'<soap:Body><{operation}Response xmlns="{namespace}">{inner}</{operation}Response>'
        "</soap:Body></soap:Envelope>"
    ).encode()


# List_GetAll: Company as typed from the WSDL (go-nmbrs companies/company.go).
COMPANIES = (
    "<Company><ID>52171</ID><Number>1</Number><Name>Voorbeeld B.V.</Name>"
    "<PhoneNumber>020-1234567</PhoneNumber><FaxNumber /><Email>info@voorbeeld.example</Email>"
    "<Website /><LoonaangifteTijdvak>Month</LoonaangifteTijdvak><KvkNr>12345678</KvkNr>"
    "</Company>"
    "<Company><ID>52172</ID><Number>2</Number><Name>Tweede B.V.</Name><KvkNr /></Company>"
)

# Run_GetList: RunInfo (go-nmbrs companies/run_get_list.go).
RUNS = (
    "<RunInfo><ID>109319</ID><Number>3</Number><Year>2025</Year><PeriodStart>3</PeriodStart>"
    "<PeriodEnd>3</PeriodEnd><Description>Maart 2025</Description>"
    "<RunAt>2025-03-25T18:00:00</RunAt><IsLocked>true</IsLocked></RunInfo>"
)


def journal(
    *,
    declaration: str = '<?xml version="1.0" encoding="utf-16"?>',
    date: str = "20250325",
    period: str = "3/2025",
    correction: bool = True,
) -> str:
    """The journal XML string, with the declaration .NET's StringWriter writes."""
    normal = (
        f"<transaction><header><date>{date}</date><period>{period}</period></header><lines>"
        '<line id="0"><dim1>4000</dim1><dim2>100</dim2><dim3>CU01</dim3><value>3210.55</value>'
        "<debitcredit>debit</debitcredit><description>Brutoloon é ö €</description></line>"
        '<line id="1"><dim1>1600</dim1><dim2 /><dim3 /><value>3210.55</value>'
        "<debitcredit>credit</debitcredit><description>Te betalen nettoloon</description></line>"
        "</lines></transaction>"
    )
    retro = (
        "<transaction><header><date>20250125</date><period>1/2025</period></header><lines>"
        '<line id="0"><dim1>4000</dim1><dim2>100</dim2><dim3 /><value>-12.50</value>'
        "<debitcredit>debit</debitcredit><description>Correctie</description></line>"
        '<line id="1"><dim1>1600</dim1><dim2 /><dim3 /><value>12.50</value>'
        "<debitcredit>debit</debitcredit><description>Correctie</description></line>"
        "</lines></transaction>"
    )
    return f"{declaration}<transactions>{normal}{retro if correction else ''}</transactions>"


Handler = Callable[[httpx.Request], httpx.Response]


def soap(body: bytes, status: int = 200) -> Handler:
    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            status, content=body, headers={"Content-Type": "text/xml; charset=utf-8"}
        )

    return answer


def valid_soap(document: str | None = None) -> dict[str, Handler]:
    operation = "Journals_GetByRunCostCenterCostUnitPerYear"
    return {
        "List_GetAll": soap(envelope("List_GetAll", COMPANIES)),
        "Run_GetList": soap(envelope("Run_GetList", RUNS)),
        # The journal string is escaped inside the SOAP result.
        operation: soap(envelope(operation, escape(document or journal()))),
    }


class SoapVendor:
    def __init__(self, routes: Mapping[str, Handler]) -> None:
        self.routes = dict(routes)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        assert request.url.path == SOAP_PATH
        operation = request.headers["SOAPAction"].strip('"').rsplit("/", 1)[-1]
        return self.routes[operation](request)


def soap_connector(routes: Mapping[str, Handler]) -> NmbrsConnector:
    settings = NmbrsSettings(
        username="api@voorbeeld.example",
        token=SecretStr("nmbrs-token-1"),
        domain="voorbeeld",
        rate_per_second=1_000_000,
        burst=1_000,
        retry=RetryPolicy(attempts=1),
    )
    return NmbrsConnector(settings, transport=httpx.MockTransport(SoapVendor(routes)))


# --------------------------------------------------------------------------------------------
# SOAP: the published shapes
# --------------------------------------------------------------------------------------------


async def test_list_companies_reads_company_elements() -> None:
    async with soap_connector(valid_soap()) as nmbrs:
        companies = await nmbrs.list_companies()
    assert [(c.external_id, c.name, c.business_id) for c in companies] == [
        ("52171", "Voorbeeld B.V.", "12345678"),
        ("52172", "Tweede B.V.", None),
    ]


async def test_list_runs_reads_run_info_and_an_omitted_result_is_no_runs() -> None:
    async with soap_connector(valid_soap()) as nmbrs:
        (run,) = await nmbrs.list_runs("52171", 2025)
    assert (run.run_id, run.year, run.period, run.date) == (
        "2025-109319",
        2025,
        3,
        dt.date(2025, 3, 25),
    )
    routes = valid_soap()
    routes["Run_GetList"] = soap(envelope("Run_GetList", None))
    async with soap_connector(routes) as nmbrs:
        assert await nmbrs.list_runs("52171", 2024) == []


async def test_a_response_in_another_namespace_is_unexpected_not_empty() -> None:
    routes = valid_soap()
    routes["Run_GetList"] = soap(
        envelope("Run_GetList", RUNS, namespace="https://api.nmbrs.nl/soap/v2.1/CompanyService")
    )
    async with soap_connector(routes) as nmbrs:
        with pytest.raises(UnexpectedResponse) as caught:
            await nmbrs.list_runs("52171", 2025)
    assert caught.value.vendor == "nmbrs"
    assert caught.value.endpoint == f"POST {SOAP_PATH} Run_GetList"
    assert "Run_GetListResponse" in caught.value.detail


async def test_read_run_journal_reads_the_journal_string_with_its_correction() -> None:
    async with soap_connector(valid_soap()) as nmbrs:
        normal, correction = await nmbrs.read_run_journal("52171", "2025-109319")
    assert (normal.kind, normal.period, normal.date) == (
        "normal",
        dt.date(2025, 3, 1),
        dt.date(2025, 3, 25),
    )
    assert normal.lines[0].description == "Brutoloon é ö €"
    assert (normal.lines[0].gl_account, normal.lines[0].cost_centre) == ("4000", "100")
    assert normal.lines[0].cost_unit == "CU01"
    assert normal.lines[1].cost_centre is None
    assert sum(line.signed_amount for line in normal.lines) == 0
    assert (correction.kind, correction.period, correction.reference) == (
        "correction",
        dt.date(2025, 1, 1),
        normal.reference,
    )
    # A negative debit is a credit.
    assert correction.lines[0].signed_amount == Decimal("-12.50")


RUN = PayrollRun(run_id="2025-109319", year=2025, period=3)

DECLARATIONS = {
    "utf-16 (.NET StringWriter)": '<?xml version="1.0" encoding="utf-16"?>',
    "utf-8": '<?xml version="1.0" encoding="utf-8"?>',
    "iso-8859-1": "<?xml version='1.0' encoding='ISO-8859-1'?>",
    "windows-1252, standalone": '<?xml version="1.0" encoding="windows-1252" standalone="yes"?>',
    "none": "",
    "bom and white space": '\ufeff\r\n  <?xml version="1.0" encoding="utf-16"?>\r\n',
}


@pytest.mark.parametrize("declaration", list(DECLARATIONS.values()), ids=list(DECLARATIONS))
def test_the_declared_encoding_of_the_journal_string_is_not_trusted(declaration: str) -> None:
    (normal, _correction) = parse_journal_xml(journal(declaration=declaration), RUN, "R")
    assert normal.lines[0].description == "Brutoloon é ö €"


@pytest.mark.parametrize(
    "text",
    ["20250325", "2025-03-25", "2025-03-25T00:00:00", "25-03-2025", "25/03/2025"],
)
def test_header_dates_in_every_form_read_the_same(text: str) -> None:
    (normal,) = parse_journal_xml(journal(date=text, correction=False), RUN, "R")
    assert normal.date == dt.date(2025, 3, 25)


def test_a_twinfield_style_period_reads_the_same() -> None:
    (normal,) = parse_journal_xml(journal(period="2025/03", correction=False), RUN, "R")
    assert (normal.period, normal.kind) == (dt.date(2025, 3, 1), "normal")


@pytest.mark.parametrize(
    ("document", "detail"),
    [
        ("", "empty"),
        ("<transactions><transaction><header>", "unreadable"),
        ("<journal />", "root"),
        ("<transactions><transaction><header /><lines /></transaction></transactions>", "period"),
        (
            "<transactions><transaction><header><period>3/2025</period></header>"
            "<lines /></transaction></transactions>",
            "no lines",
        ),
        (journal(date="2025-13-45"), "date"),
        (journal(period="13/2025"), "calendar month"),
        (journal().replace("<dim1>4000</dim1>", "<dim1 />", 1), "dim1"),
        (journal().replace("3210.55", "3.210,55", 1), "amount"),
        (journal().replace("<debitcredit>debit", "<debitcredit>both", 1), "debitcredit"),
    ],
)
def test_journal_strings_outside_the_shape_are_unexpected(document: str, detail: str) -> None:
    with pytest.raises(UnexpectedJournal) as caught:
        parse_journal_xml(document, RUN, "R", endpoint="POST /x Journals_GetByRunCompany_v2")
    assert detail in caught.value.detail
    assert caught.value.endpoint == "POST /x Journals_GetByRunCompany_v2"
    # Callers that caught InvalidData before the contract was pinned still do.
    assert isinstance(caught.value, InvalidData)


# --------------------------------------------------------------------------------------------
# SOAP: truncated, empty and wrongly typed answers
# --------------------------------------------------------------------------------------------

SoapCall = Callable[[NmbrsConnector], Awaitable[object]]

SOAP_CALLS: dict[str, tuple[SoapCall, list[str]]] = {
    "list_companies": (lambda c: c.list_companies(), ["List_GetAll"]),
    "list_runs": (lambda c: c.list_runs("52171", 2025), ["Run_GetList"]),
    "read_run_journal": (
        lambda c: c.read_run_journal("52171", "2025-109319"),
        ["Run_GetList", "Journals_GetByRunCostCenterCostUnitPerYear"],
    ),
}


def malformed_soap(operation: str) -> dict[str, bytes]:
    return {
        "empty": b"",
        "truncated": envelope(operation, COMPANIES)[:120],
        "html": b"<html><body>Service Unavailable</body></html>",
        "json": b'{"message": "ok"}',
        "no body": (
            f'<soap:Envelope xmlns:soap="{SOAP_ENV}"><soap:Header /></soap:Envelope>'.encode()
        ),
        "another operation": envelope("Other_Operation", "x"),
        "ids not numbers": envelope(
            operation,
            "<Company><ID>abc</ID></Company><RunInfo><ID>x</ID><Year>y</Year></RunInfo>",
        ),
        "ids missing": envelope(
            operation, "<Company><Name>n</Name></Company><RunInfo><Year>2025</Year></RunInfo>"
        ),
    }


async def outcome(call: SoapCall, connector: NmbrsConnector) -> Exception | None:
    """What ``call`` raised (None: it returned)."""
    try:
        await call(connector)
    except Exception as exc:  # every exception is looked at by the caller
        return exc
    return None


@pytest.mark.parametrize("body", list(malformed_soap("X")), ids=list(malformed_soap("X")))
@pytest.mark.parametrize("method", list(SOAP_CALLS))
async def test_malformed_soap_answers_raise_unexpected_response(method: str, body: str) -> None:
    call, operations = SOAP_CALLS[method]
    for operation in operations:
        routes = valid_soap()
        routes[operation] = soap(malformed_soap(operation)[body])
        async with soap_connector(routes) as nmbrs:
            error = await outcome(call, nmbrs)
        assert isinstance(error, UnexpectedResponse), (operation, repr(error))
        assert error.vendor == "nmbrs"
        assert operation in error.endpoint
        assert error.detail


# --------------------------------------------------------------------------------------------
# REST: truncated, empty and wrongly typed answers (the shapes themselves are UNCONFIRMED)
# --------------------------------------------------------------------------------------------


async def rest_connector(handler: Handler) -> NmbrsConnector:
    """A REST connector whose debtor token is stored already (authorised before)."""
    store = MemoryTokenStore()
    await store.save("default", TokenSet(access_token=SecretStr("rest-token")))
    settings = NmbrsSettings(
        api="rest",
        oauth=OAuthClientSettings(
            client_id="ledgerlink",
            token_url="https://identityservice.nmbrs.com/connect/token",
            authorize_url="https://identityservice.nmbrs.com/connect/authorize",
            redirect_uri="https://ledgerlink.example/nmbrs/callback",
        ),
        rate_per_second=1_000_000,
        burst=1_000,
        retry=RetryPolicy(attempts=1),
    )
    return NmbrsConnector(settings, store=store, transport=httpx.MockTransport(handler))


RestCall = Callable[[NmbrsConnector], Awaitable[object]]

REST_CALLS: dict[str, RestCall] = {
    "list_companies": lambda c: c.list_companies(),
    "list_runs": lambda c: c.list_runs("c0ffee00-0000-4000-8000-000000000001", 2025),
    "read_run_journal": lambda c: c.read_run_journal(
        "c0ffee00-0000-4000-8000-000000000001", "0ddba11-0000-4000-8000-000000000002"
    ),
}

REST_BODIES: dict[str, Any] = {
    "empty": b"",
    "truncated": b'{"data": [{"companyId": "c0ff',
    "a list": b"[]",
    "data not a list": b'{"data": {"companyId": "x"}, "payrun": []}',
    "items not objects": b'{"data": ["x"], "payrun": {"payrunId": 1}}',
    "ids missing": b'{"data": [{"name": "n"}], "payrun": {"year": 2025}}',
    "wrong types": (
        b'{"data": [{"companyId": 5, "payrunId": "p", "year": "2025", "periodStart": 3}],'
        b' "payrun": {"payrunId": "p", "year": 2025, "periodStart": 3},'
        b' "transactions": [{"period": {"year": 2025, "period": 3}, "date": "2025-03-25",'
        b' "lines": [{"value": "x", "debitCredit": "debit", "generalLedgerAccount": "4000"}]}]}'
    ),
}


@pytest.mark.parametrize("body", list(REST_BODIES), ids=list(REST_BODIES))
@pytest.mark.parametrize("method", list(REST_CALLS))
async def test_malformed_rest_answers_raise_unexpected_response(method: str, body: str) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            200, content=REST_BODIES[body], headers={"Content-Type": "application/json"}
        )

    async with await rest_connector(handler) as nmbrs:
        error = await outcome(REST_CALLS[method], nmbrs)
    assert isinstance(error, UnexpectedResponse), repr(error)
    assert error.vendor == "nmbrs"
    assert error.endpoint.startswith("GET /api/companies")
    assert error.detail
