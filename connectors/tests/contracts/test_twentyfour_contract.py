"""24SevenOffice connector against answers written from 24SevenOffice's published WSDLs and
OpenAPI document.

Sources (ids T1-T4) are listed in ``twentyfour/SOURCES.md``: the WSDLs of TransactionService
(T1), AccountService (T2) and authenticate (T3) and the Public API OpenAPI 3.0.3 document
(T4), as kept in the public client valuetechdev/24sevenoffice-go at commit
bf61ecd082021acce75f426b68d16cc13cd88a13. Every fixture below is written by us in those
shapes. The connector runs over httpx MockTransport, independent of our sandbox.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import Any

import defusedxml.ElementTree as SafeET
import httpx
import pytest
from pydantic import SecretStr

from ledgerlink.connectors.errors import (
    ConnectorError,
    DuplicateData,
    PeriodLocked,
    UnexpectedResponse,
)
from ledgerlink.connectors.http import RetryPolicy
from ledgerlink.connectors.models import JournalLine, JournalPosting
from ledgerlink.connectors.twentyfour import TwentyFourConnector, TwentyFourSettings

WS = "http://24sevenOffice.com/webservices"  # T2, T3
ACC = "http://24sevenoffice.com/webservices/economy/accounting/"  # T1
SOAP_ENV = "http://schemas.xmlsoap.org/soap/envelope/"
AUTH = "/authenticate/v001/authenticate.asmx"
ACCOUNT = "/Economy/Account/V004/Accountservice.asmx"
TRANSACTION = "/Economy/Accounting/V001/TransactionService.asmx"


def answer(ns: str, operation: str, inner: str) -> bytes:
    """A document/literal answer: Body/{ns}OperationResponse/{ns}OperationResult."""
    return (
        '<?xml version="1.0" encoding="utf-8"?>'
        f'<soap:Envelope xmlns:soap="{SOAP_ENV}"><soap:Body>'
        f'<{operation}Response xmlns="{ns}"><{operation}Result>{inner}</{operation}Result>'
        f"</{operation}Response></soap:Body></soap:Envelope>"
    ).encode()


# T3 Login -> LoginResult (the session id); GetIdentities -> Identity{Id, Client{Id, Name},
# IsCurrent, IsDefault, IsProtected} (no organisation number, no currency).
LOGIN = answer(WS, "Login", "session-1")
IDENTITIES = answer(
    WS,
    "GetIdentities",
    "<Identity><Id>11111111-1111-1111-1111-111111111111</Id><Client><Id>5001</Id>"
    "<Name>Fjord Teknikk AS</Name></Client><IsCurrent>true</IsCurrent><IsDefault>true"
    "</IsDefault><IsProtected>false</IsProtected></Identity>"
    "<Identity><Id>22222222-2222-2222-2222-222222222222</Id><Client><Id>5002</Id>"
    "<Name>Vidde Tjenester AS</Name></Client><IsCurrent>false</IsCurrent><IsDefault>false"
    "</IsDefault><IsProtected>false</IsProtected><IsDisabled>false</IsDisabled></Identity>",
)
# T1 GetTransactionTypes -> TransactionType{Turnover, Title, No, Id}.
TRANSACTION_TYPES = answer(
    ACC,
    "GetTransactionTypes",
    "<TransactionType><Turnover>false</Turnover><Title>Lønn</Title><No>5</No><Id>5</Id>"
    "</TransactionType>",
)
# T2 GetAccountList -> AccountData{AccountId, AccountNo, AccountName, AccountTax, TaxNo}.
ACCOUNTS = answer(
    WS,
    "GetAccountList",
    "<AccountData><AccountId>1920</AccountId><AccountNo>1920</AccountNo><AccountName>Bank"
    "</AccountName><AccountTax>0</AccountTax><TaxNo>0</TaxNo></AccountData>"
    "<AccountData><AccountId>5000</AccountId><AccountNo>5000</AccountNo><AccountName>Lønn"
    "</AccountName><AccountTax>0</AccountTax><TaxNo>0</TaxNo></AccountData>",
)
# T1 GetUserDefinedDimensions -> flat Dimension{Type, Name, TypeId}.
DIMENSIONS = answer(
    ACC,
    "GetUserDefinedDimensions",
    "<Dimension><Type>Department</Type><Name>Avdeling</Name><TypeId>1</TypeId></Dimension>"
    "<Dimension><Type>UserDefined</Type><Name>Produkt</Name><TypeId>7</TypeId></Dimension>",
)
# T1 GetUserDefinedDimensionValues(DimensionType) -> Dimension{Type, Name, Value, TypeId}.
DIMENSION_VALUES = {
    "1": answer(
        ACC,
        "GetUserDefinedDimensionValues",
        "<Dimension><Type>Department</Type><Name>Salg</Name><Value>100</Value>"
        "<TypeId>1</TypeId></Dimension>",
    ),
    "7": answer(
        ACC,
        "GetUserDefinedDimensionValues",
        "<Dimension><Type>UserDefined</Type><Name>Konsulent</Name><Value>K1</Value>"
        "<TypeId>7</TypeId></Dimension>",
    ),
}
# T1 GetFiscalYears -> FiscalYear{Id, StartingDate, EndingDate, IsLocked}.
FISCAL_YEARS = answer(
    ACC,
    "GetFiscalYears",
    "<FiscalYear><Id>33333333-3333-3333-3333-333333333333</Id>"
    "<StartingDate>2024-01-01T00:00:00</StartingDate><EndingDate>2024-12-31T00:00:00"
    "</EndingDate><IsLocked>true</IsLocked></FiscalYear>"
    "<FiscalYear><Id>44444444-4444-4444-4444-444444444444</Id>"
    "<StartingDate>2025-01-01T00:00:00</StartingDate><EndingDate>2025-12-31T00:00:00"
    "</EndingDate><IsLocked>false</IsLocked></FiscalYear>",
)
# T2 SaveBundleList -> SaveResponse{Type, Description}.
SAVED = answer(WS, "SaveBundleList", "<Type>Ok</Type><Description></Description>")


def rest_line(
    line_id: str, tx: str, number: int, account: int, amount: float, day: str, **extra: Any
) -> dict[str, Any]:
    """T4 Transaction: one transaction line (account, amount, date required)."""
    return {
        "id": line_id,
        "transaction": {"id": tx, "number": number},
        "account": {"id": 1000000 + account, "number": account, "name": "x"},
        "transactionType": {"id": 5},
        "tax": {"id": 0, "rate": 0},
        "amount": amount,
        "currency": {"code": "NOK", "rate": 1},
        "date": day,
        "comment": "Lønn mai",
        "createdAt": "2025-05-31T18:00:00Z",
        "modifiedAt": "2025-06-01T08:00:00Z",
        **extra,
    }


LINES: list[Any] = [
    rest_line(
        "l1",
        "tx-a",
        1010,
        5000,
        1200.5,
        "2025-05-31",
        dimensions=[
            {"dimensionType": 2, "dimensionTypeName": "Department", "value": "100", "name": "Salg"},
            {"dimensionType": 7, "value": "K1", "name": "Konsulent"},
        ],
    ),
    rest_line("l2", "tx-a", 1010, 2930, -1200.5, "2025-05-31", dimensions=[]),
    # The last day of the range: read only because dateTo is exclusive (T4).
    rest_line("l3", "tx-b", 1011, 1920, 10, "2025-12-31", modifiedAt="2025-12-31T10:00:00Z"),
    rest_line("l4", "tx-b", 1011, 5000, -10, "2025-12-31", modifiedAt="2025-12-31T10:00:00Z"),
]

SOAP_ANSWERS: dict[str, bytes] = {
    "Login": LOGIN,
    "GetIdentities": IDENTITIES,
    "GetTransactionTypes": TRANSACTION_TYPES,
    "GetAccountList": ACCOUNTS,
    "GetUserDefinedDimensions": DIMENSIONS,
    "GetFiscalYears": FISCAL_YEARS,
    "SaveBundleList": SAVED,
}


def xml(body: bytes, status: int = 200) -> httpx.Response:
    return httpx.Response(status, content=body, headers={"Content-Type": "text/xml"})


def published(routes: Any, answers: dict[str, bytes] | None = None) -> dict[str, bytes]:
    soap = dict(SOAP_ANSWERS)
    soap.update(answers or {})

    def handle(request: httpx.Request) -> httpx.Response:
        action = request.headers["SOAPAction"].strip('"')
        operation = action.rsplit("/", 1)[1]
        if operation == "GetUserDefinedDimensionValues" and operation not in soap:
            wanted = SafeET.fromstring(request.content).findtext(f".//{{{ACC}}}DimensionType")
            return xml(DIMENSION_VALUES[wanted or ""])
        return xml(soap[operation])

    for path in (AUTH, ACCOUNT, TRANSACTION):
        routes.add("POST", path, handle)
    routes.add(
        "POST",
        "/oauth/token",
        routes.json({"access_token": "t0k", "token_type": "Bearer", "expires_in": 3600}),
    )
    routes.add("GET", "/v1/transactionlines", routes.json(LINES))
    return soap


def connector(routes: Any) -> TwentyFourConnector:
    settings = TwentyFourSettings(
        application_id=SecretStr("app"),
        username="integration@firm.example",
        password=SecretStr("pw"),
        client="5001",
        rest_client_id=SecretStr("rest-id"),
        rest_client_secret=SecretStr("rest-secret"),
        transaction_type=5,
        soap_base_url="https://soap.example",
        rest_base_url="https://rest.example/v1",
        token_url="https://login.example/oauth/token",
        retry=RetryPolicy(attempts=1),
    )
    return TwentyFourConnector(settings, transport=routes.transport())


def posting() -> JournalPosting:
    return JournalPosting(
        date=dt.date(2025, 6, 25),
        period=dt.date(2025, 5, 1),
        description="Lønn mai, korreksjon",
        reference="RUN-2025-05-corr",
        lines=(
            JournalLine(
                account="5000", amount=Decimal("1200.50"), cost_centre="100", cost_unit="K1"
            ),
            JournalLine(account="2930", amount=Decimal("-1200.50")),
        ),
    )


def sent_soap(routes: Any, operation: str) -> list[httpx.Request]:
    return [
        r for r in routes.requests if r.headers.get("SOAPAction", "").strip('"').endswith(operation)
    ]


# --------------------------------------------------------------------------------------------
# Each method reads the published shape
# --------------------------------------------------------------------------------------------


async def test_namespaces_and_soap_actions_follow_each_wsdl(routes: Any) -> None:
    published(routes)
    async with connector(routes) as conn:
        await conn.read_periods()
    [years] = sent_soap(routes, "GetFiscalYears")
    # Old: TransactionService was called in the webservices namespace.
    assert years.headers["SOAPAction"] == f'"{ACC}GetFiscalYears"'
    assert SafeET.fromstring(years.content).find(f".//{{{ACC}}}GetFiscalYears") is not None
    [login] = sent_soap(routes, "Login")
    assert login.headers["SOAPAction"] == f'"{WS}/Login"'


async def test_identities_carry_id_and_name_only(routes: Any) -> None:
    published(routes)
    async with connector(routes) as conn:
        companies = await conn.list_companies()
    assert [(c.external_id, c.name, c.business_id) for c in companies] == [
        ("5001", "Fjord Teknikk AS", None),
        ("5002", "Vidde Tjenester AS", None),
    ]


async def test_master_data_follow_the_wsdls(routes: Any) -> None:
    published(routes)
    async with connector(routes) as conn:
        types = await conn.read_transaction_types()
        accounts = await conn.read_accounts()
        dimensions = await conn.read_dimensions()
        periods = await conn.read_periods()
    assert [(t.no, t.title) for t in types] == [(5, "Lønn")]
    assert [(a.number, a.name, a.type, a.active) for a in accounts] == [
        ("1920", "Bank", "asset", True),
        ("5000", "Lønn", "expense", True),
    ]
    # Old: UserDefinedDimension/Values did not exist, so no dimension was read.
    assert [(d.id, d.name, d.kind, [o.code for o in d.objects]) for d in dimensions] == [
        ("1", "Avdeling", "cost_centre", ["100"]),
        ("7", "Produkt", "cost_unit", ["K1"]),
    ]
    # Old: StartDate/EndDate did not exist. IsLocked locks the whole year.
    assert len(periods) == 24
    assert {p.status for p in periods if p.start.year == 2024} == {"closed"}
    assert {p.status for p in periods if p.start.year == 2025} == {"open"}
    assert (periods[-1].start, periods[-1].end) == (dt.date(2025, 12, 1), dt.date(2025, 12, 31))


async def test_transaction_lines_are_nested_and_date_to_is_exclusive(routes: Any) -> None:
    published(routes)
    async with connector(routes) as conn:
        page = await conn.read_vouchers(page_size=100)
        again = await conn.read_vouchers(page.cursor, page_size=100)
    [query] = [dict(r.url.params) for r in routes.sent("GET", "/v1/transactionlines")][:1]
    # Old: dateTo was the last day, which the API excludes, and changedAfter does not exist.
    assert (query["dateFrom"], query["dateTo"]) == ("2024-01-01", "2026-01-01")
    assert query["includeDimensions"] == "true"
    assert "changedAfter" not in query
    by_id = {v.external_id: v for v in page.vouchers}
    assert set(by_id) == {"tx-a", "tx-b"}
    first = by_id["tx-a"]
    assert (first.series, first.number, first.date) == ("5", "1010", dt.date(2025, 5, 31))
    assert first.version == "2025-06-01T08:00:00Z"
    assert [(line.account, line.amount, dict(line.dimensions)) for line in first.lines] == [
        ("5000", Decimal("1200.5"), {"cost_centre": "100", "cost_unit": "K1"}),
        ("2930", Decimal("-1200.5"), {}),
    ]
    assert first.balance == 0
    assert page.has_more is False
    # Nothing modified since: the next pass walks the range again and returns nothing.
    assert again.vouchers == ()


async def test_post_journal_is_a_save_bundle_list(routes: Any) -> None:
    published(routes)
    async with connector(routes) as conn:
        posted = await conn.post_journal(posting())
    # Old: POST /transactions, which the public REST API does not have.
    assert not routes.sent("POST", "/v1/transactions")
    assert (posted.external_id, posted.status) == ("RUN-2025-05-corr", "Ok")
    [saved] = sent_soap(routes, "SaveBundleList")
    assert saved.headers["SOAPAction"] == f'"{WS}/SaveBundleList"'
    bundle = SafeET.fromstring(saved.content).find(f".//{{{WS}}}Bundle")
    assert bundle is not None
    assert [child.tag.rpartition("}")[2] for child in bundle] == ["Vouchers", "Sort", "Name"]
    entries = bundle.findall(f".//{{{WS}}}Entry")
    assert [
        (
            e.findtext(f"{{{WS}}}AccountNo"),
            e.findtext(f"{{{WS}}}Date"),
            e.findtext(f"{{{WS}}}Amount"),
            e.findtext(f"{{{WS}}}DepartmentId"),
            e.findtext(f"{{{WS}}}UserDefinedDimensions/{{{WS}}}UserDefinedDimension/{{{WS}}}Type"),
        )
        for e in entries
    ] == [
        ("5000", "2025-05-31T00:00:00", "1200.50", "100", "7"),
        ("2930", "2025-05-31T00:00:00", "-1200.50", None, None),
    ]


@pytest.mark.parametrize(
    ("kind", "description", "error"),
    [
        ("DataAlreadySaved", "The bundle is already saved.", DuplicateData),
        ("NotSaved", "The period containing 2025-02-28 is closed.", PeriodLocked),
    ],
)
async def test_save_response_types_map_to_errors(
    routes: Any, kind: str, description: str, error: type[ConnectorError]
) -> None:
    published(
        routes,
        {
            "SaveBundleList": answer(
                WS, "SaveBundleList", f"<Type>{kind}</Type><Description>{description}</Description>"
            )
        },
    )
    async with connector(routes) as conn:
        with pytest.raises(error) as caught:
            await conn.post_journal(posting())
    assert caught.value.vendor_code == kind
    assert caught.value.vendor_message == description


# --------------------------------------------------------------------------------------------
# Answers outside the contract: only UnexpectedResponse, naming vendor, endpoint and field
# --------------------------------------------------------------------------------------------

Call = Callable[[TwentyFourConnector], Awaitable[object]]

# name: (call, SOAP operation answered badly or None for REST, endpoint named)
METHODS: dict[str, tuple[Call, str | None, str]] = {
    "list_companies": (
        lambda c: c.list_companies(),
        "GetIdentities",
        "SOAP authenticate.asmx GetIdentities",
    ),
    "read_transaction_types": (
        lambda c: c.read_transaction_types(),
        "GetTransactionTypes",
        "SOAP TransactionService.asmx GetTransactionTypes",
    ),
    "read_accounts": (
        lambda c: c.read_accounts(),
        "GetAccountList",
        "SOAP Accountservice.asmx GetAccountList",
    ),
    "read_dimensions": (
        lambda c: c.read_dimensions(),
        "GetUserDefinedDimensions",
        "SOAP TransactionService.asmx GetUserDefinedDimensions",
    ),
    "read_periods": (
        lambda c: c.read_periods(),
        "GetFiscalYears",
        "SOAP TransactionService.asmx GetFiscalYears",
    ),
    "read_vouchers": (lambda c: c.read_vouchers(), None, "GET /transactionlines"),
    "post_journal": (
        lambda c: c.post_journal(posting()),
        "SaveBundleList",
        "SOAP Accountservice.asmx SaveBundleList",
    ),
}

WRONG: dict[str, list[tuple[Any, str]]] = {
    "list_companies": [
        (
            answer(WS, "GetIdentities", "<Identity><Client><Id>1</Id></Client></Identity>"),
            "Identity[0]/Id is missing",
        ),
        (
            answer(
                WS,
                "GetIdentities",
                "<Identity><Id>x</Id><Client><Id>1</Id></Client><IsCurrent>maybe</IsCurrent>"
                "</Identity>",
            ),
            "IsCurrent is not a boolean",
        ),
    ],
    "read_transaction_types": [
        (
            answer(ACC, "GetTransactionTypes", "<TransactionType><No>five</No></TransactionType>"),
            "TransactionType[0]/No is not an integer",
        ),
    ],
    "read_accounts": [
        (
            answer(WS, "GetAccountList", "<AccountData><AccountName>x</AccountName></AccountData>"),
            "AccountData[0]/AccountNo is missing",
        ),
    ],
    "read_dimensions": [
        (
            answer(ACC, "GetUserDefinedDimensions", "<Dimension><Type>Galaxy</Type></Dimension>"),
            "Dimension[0]/Type has the unknown value 'Galaxy'",
        ),
    ],
    "read_periods": [
        (
            answer(
                ACC, "GetFiscalYears", "<FiscalYear><StartDate>2025-01-01</StartDate></FiscalYear>"
            ),
            "FiscalYear[0]/StartingDate is missing",
        ),
        (
            answer(
                ACC,
                "GetFiscalYears",
                "<FiscalYear><StartingDate>2025-01-01T00:00:00</StartingDate>"
                "<EndingDate>2025-12-31T00:00:00</EndingDate></FiscalYear>",
            ),
            "FiscalYear[0]/IsLocked is missing",
        ),
    ],
    "read_vouchers": [
        ({"items": LINES}, "Transactions is an object, not a list"),
        ([{**LINES[0], "account": None}], "[0].account is missing"),
        ([{**LINES[0], "amount": "1200.5"}], "[0].amount is text"),
        ([{**LINES[0], "transaction": {"number": 1}}], "[0].transaction.id is missing"),
        ([{**LINES[0], "date": "31.05.2025"}], "[0].date is not a date"),
        ([{**LINES[0], "dimensions": [{"value": "1"}]}], "dimensions[0].dimensionType is missing"),
    ],
    "post_journal": [
        (answer(WS, "SaveBundleList", "<Description>?</Description>"), "Type is missing"),
        (answer(WS, "SaveBundleList", "<Type>Maybe</Type>"), "unknown value 'Maybe'"),
    ],
}


def _break(routes: Any, name: str, body: Any) -> None:
    _call, operation, _endpoint = METHODS[name]
    if operation is None:
        content = body if isinstance(body, bytes) else json.dumps(body).encode()
        routes.add(
            "GET",
            "/v1/transactionlines",
            httpx.Response(200, content=content, headers={"Content-Type": "application/json"}),
        )
        published_soap: dict[str, bytes] = {}
    else:
        published_soap = {operation: body}
    soap = dict(SOAP_ANSWERS)
    soap.update(published_soap)

    def handle(request: httpx.Request) -> httpx.Response:
        action = request.headers["SOAPAction"].strip('"')
        wanted = action.rsplit("/", 1)[1]
        if wanted == "GetUserDefinedDimensionValues":
            which = SafeET.fromstring(request.content).findtext(f".//{{{ACC}}}DimensionType")
            return xml(DIMENSION_VALUES.get(which or "", DIMENSION_VALUES["1"]))
        return xml(soap[wanted])

    for path in (AUTH, ACCOUNT, TRANSACTION):
        routes.add("POST", path, handle)


async def _refused(routes: Any, name: str) -> UnexpectedResponse:
    call, _operation, endpoint = METHODS[name]
    async with connector(routes) as conn:
        with pytest.raises(ConnectorError) as caught:
            await call(conn)
    error = caught.value
    assert isinstance(error, UnexpectedResponse), repr(error)
    assert error.vendor == "twentyfour"
    assert error.endpoint == endpoint
    assert endpoint in str(error)
    return error


def _good(name: str) -> bytes:
    operation = METHODS[name][1]
    return json.dumps(LINES).encode() if operation is None else SOAP_ANSWERS[operation]


def _other_namespace(body: bytes) -> bytes:
    # The same answer in the other service's namespace.
    text = body.decode()
    if f'xmlns="{ACC}"' in text:
        return text.replace(f'xmlns="{ACC}"', f'xmlns="{WS}"').encode()
    return text.replace(f'xmlns="{WS}"', f'xmlns="{ACC}"').encode()


@pytest.mark.parametrize("name", sorted(METHODS))
@pytest.mark.parametrize("kind", ["empty", "truncated", "wrong type", "wrong namespace"])
async def test_malformed_bodies_raise_unexpected_response(
    routes: Any, name: str, kind: str
) -> None:
    published(routes)
    good = _good(name)
    rest = METHODS[name][1] is None
    if kind == "wrong namespace" and rest:
        body: Any = b"<Transactions/>"  # XML where JSON is published
    else:
        body = {
            "empty": b"",
            "truncated": good[: len(good) // 2],
            "wrong type": b'{"ok": true}' if not rest else json.dumps({"lines": 1}).encode(),
            "wrong namespace": _other_namespace(good),
        }[kind]
    _break(routes, name, body)
    error = await _refused(routes, name)
    assert error.detail


@pytest.mark.parametrize(
    ("name", "body", "detail"),
    [(name, body, detail) for name, cases in WRONG.items() for body, detail in cases],
)
async def test_missing_fields_bad_values_and_unknown_enums_are_named(
    routes: Any, name: str, body: Any, detail: str
) -> None:
    published(routes)
    _break(routes, name, body)
    error = await _refused(routes, name)
    assert detail in error.detail


@pytest.mark.parametrize("body", [b"", b"[]", b'{"access_token": 42}', b'{"token_type": "Bearer"'])
async def test_a_malformed_token_answer_is_unexpected_response(routes: Any, body: bytes) -> None:
    # OAuth 2.0 token answer (client credentials, T4's security scheme): access_token text.
    published(routes)
    routes.add("POST", "/oauth/token", httpx.Response(200, content=body))
    async with connector(routes) as conn:
        with pytest.raises(UnexpectedResponse) as caught:
            await conn.read_vouchers()
    assert (caught.value.vendor, caught.value.endpoint) == ("twentyfour", "POST /oauth/token")
