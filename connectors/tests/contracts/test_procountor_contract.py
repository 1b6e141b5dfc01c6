"""Procountor connector against answers written from Procountor's published OpenAPI schema.

Every fixture below is written by us from the schema object it names; the source (P1) is in
``procountor/SOURCES.md``: Procountor's OpenAPI document as generated into the public client
rantalainen/procountor-api-client, ``src/api.ts``, commit 474738e22d2e5bbd68f7def34bafe829c5b62a16.
The connector runs over httpx MockTransport, independent of our sandbox.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from ledgerlink.connectors.errors import ConnectorError, UnexpectedResponse
from ledgerlink.connectors.http import RateBudget, RetryPolicy
from ledgerlink.connectors.models import JournalLine, JournalPosting, SyncCursor
from ledgerlink.connectors.procountor import ProcountorConnector, ProcountorSettings

BASE = "https://pts-api.example/api"

# P1 Company (+ BusinessIdentifier): identity in businessIdentifier.code, the books'
# currency in companyCurrency; a Swedish company keeps SEK books. "productVersion" and
# "futureField" stand for fields the connector must ignore.
COMPANY: dict[str, Any] = {
    "id": 104512,
    "name": "Exempel AB",
    "country": "SWEDEN",
    "accountingOfficeName": "Byrå",
    "businessIdentifier": {"brnType": "SE", "code": "556677-8899"},
    "accountingCoaLanguages": ["sv"],
    "companyCurrency": "SEK",
    "currencyRateSearchDensity": "DAILY_EXCHANGE_RATE",
    "futureField": {"anything": True},
}

# P1 LedgerAccounts / LedgerAccount (translations present only when there are some).
COA: dict[str, Any] = {
    "ledgerAccounts": [
        {
            "ledgerAccountCode": "1910",
            "name": "Kassa",
            "active": True,
            "translations": [{"languageCode": "en", "translation": "Cash"}],
        },
        {"ledgerAccountCode": "3000", "name": "Myynti", "active": False},
    ]
}

# P1 Dimension[] / DimensionItem: status is absent when active, "P" when inactive.
DIMENSIONS: list[Any] = [
    {
        "id": 1,
        "name": "Kustannuspaikka",
        "items": [
            {"id": 11, "codeName": "100", "description": "Hallinto"},
            {"id": 12, "codeName": "200", "status": "P", "description": "Vanha"},
        ],
    },
    {"id": 2, "name": "Projekti", "items": [{"id": 21, "codeName": "P1"}]},
]

# P1 FiscalYears / FiscalYear / TrackingPeriod: newest year first, periods in
# trackingPeriods[] with a required status; a year may come without tracking periods.
FISCAL_YEARS: dict[str, Any] = {
    "fiscalYears": [
        {
            "id": 2,
            "startDate": "2025-01-01",
            "endDate": "2025-12-31",
            "modified": "2025-02-01T08:00:00",
            "isOpen": True,
            "trackingPeriods": [
                {"id": 21, "startDate": "2025-01-01", "endDate": "2025-01-31", "status": "CLOSED"},
                {"id": 22, "startDate": "2025-02-01", "endDate": "2025-02-28", "status": "OPEN"},
                {"id": 23, "startDate": "2025-03-01", "endDate": "2025-03-31", "status": "PENDING"},
            ],
        },
        {"id": 1, "startDate": "2024-01-01", "endDate": "2024-12-31", "isOpen": False},
    ]
}


def basic_info(receipt_id: int, status: str, version: str) -> dict[str, Any]:
    """P1 LedgerReceiptBasicInfo: what the search answers (no transactions)."""
    return {
        "id": receipt_id,
        "type": "JOURNAL",
        "status": status,
        "name": f"Tosite {receipt_id}",
        "receiptDate": "2025-02-03",
        "receiptNumber": receipt_id - 500,
        "invoiceNumber": receipt_id + 9000,
        "created": "2025-02-03T10:00:00",
        "version": version,
    }


# P1 LedgerReceiptSearchResult + SearchResultMetaData.
SEARCH: dict[str, Any] = {
    "results": [
        basic_info(501, "APPROVED", "2025-02-03T10:00:00"),
        basic_info(502, "INVALIDATED", "2025-02-04T09:30:00"),
    ],
    "meta": {"pageNumber": 0, "pageSize": 50, "resultCount": 2, "totalCount": 2},
}


def receipt(receipt_id: int, status: str = "APPROVED") -> dict[str, Any]:
    """P1 LedgerReceipt + Transaction + DimensionItemValue (required: type, name,
    receiptDate, vatType, vatStatus, transactions; transactionType, account, accountingValue,
    vatPercent)."""
    return {
        "id": receipt_id,
        "type": "JOURNAL",
        "status": status,
        "name": f"Tosite {receipt_id}",
        "receiptDate": "2025-02-03",
        "vatType": "PURCHASE",
        "vatStatus": 1,
        "invoiceId": receipt_id + 7000,
        "receiptNumber": receipt_id - 500,
        "version": "2025-02-03T10:00:00",
        "transactions": [
            {
                "id": receipt_id * 10 + 1,
                "transactionType": "REVERSING_ENTRY",
                "account": "1910",
                "accountingValue": -100.25,
                "vatPercent": 0,
                "description": "Kassa",
            },
            {
                "id": receipt_id * 10 + 2,
                "transactionType": "ENTRY",
                "account": "4000",
                "accountingValue": 100.25,
                "vatPercent": 0,
                "dimensionItemValues": [{"dimensionId": 1, "itemId": 11, "value": 100.25}],
                "allocations": [],
            },
        ],
        "attachments": [],
    }


def connector(routes: Any, fake_time: Any) -> ProcountorConnector:
    settings = ProcountorSettings(
        client_id="contract-client",
        client_secret=SecretStr("contract-secret"),
        redirect_uri="https://ledgerlink.example/callback",
        base_url="https://pts-api.example",
        api_key=SecretStr("contract-api-key"),
    )
    return ProcountorConnector(
        settings,
        transport=routes.transport(),
        budget=RateBudget(1000, 1000, clock=fake_time.clock, sleep=fake_time.sleep),
        retry=RetryPolicy(attempts=1),
        sleep=fake_time.sleep,
    )


def published(routes: Any) -> None:
    """Every endpoint answering its published example."""
    routes.add(
        "POST",
        "/api/oauth/token",
        routes.json({"access_token": "t0k", "token_type": "bearer", "expires_in": 3600}),
    )
    routes.add("GET", "/api/company", routes.json(COMPANY))
    routes.add("GET", "/api/coa", routes.json(COA))
    routes.add("GET", "/api/dimensions", routes.json(DIMENSIONS))
    routes.add("GET", "/api/fiscalyears", routes.json(FISCAL_YEARS))
    routes.add("GET", "/api/ledgerreceipts", routes.json(SEARCH))

    def by_ids(request: httpx.Request) -> httpx.Response:
        ids = [int(part) for part in request.url.path.rsplit("/", 1)[1].split(",")]
        statuses = {501: "APPROVED", 502: "INVALIDATED"}
        bodies = [receipt(n, statuses.get(n, "APPROVED")) for n in ids]
        response: httpx.Response = routes.json(bodies[0] if len(ids) == 1 else bodies)
        return response

    routes.add_prefix("GET", "/api/ledgerreceipts/", by_ids)
    saved = receipt(777, "UNFINISHED")
    routes.add("POST", "/api/ledgerreceipts", routes.json(saved))
    routes.add_prefix("PUT", "/api/ledgerreceipts/", routes.json(saved))


def posting() -> JournalPosting:
    return JournalPosting(
        date=dt.date(2025, 2, 20),
        period=dt.date(2025, 2, 1),
        description="Palkat helmikuu",
        reference="RUN-7",
        lines=(
            JournalLine(account="5000", amount=Decimal("100.25"), cost_centre="100"),
            JournalLine(account="2960", amount=Decimal("-100.25")),
        ),
    )


# --------------------------------------------------------------------------------------------
# Each method reads the published shape
# --------------------------------------------------------------------------------------------


async def test_company_identity_and_currency_come_from_the_published_fields(
    routes: Any, fake_time: Any
) -> None:
    published(routes)
    async with connector(routes, fake_time) as conn:
        [company] = await conn.list_companies()
    # Old reading: "businessId"/"currency" do not exist, so SEK books were reported in EUR.
    assert (company.external_id, company.business_id, company.name, company.currency) == (
        "104512",
        "556677-8899",
        "Exempel AB",
        "SEK",
    )


async def test_accounts_follow_ledger_accounts(routes: Any, fake_time: Any) -> None:
    published(routes)
    async with connector(routes, fake_time) as conn:
        accounts = await conn.read_accounts()
    assert [(a.number, a.name, a.active) for a in accounts] == [
        ("1910", "Kassa", True),
        ("3000", "Myynti", False),
    ]


async def test_dimension_item_is_inactive_only_with_status_p(routes: Any, fake_time: Any) -> None:
    published(routes)
    async with connector(routes, fake_time) as conn:
        dimensions = await conn.read_dimensions()
    assert [(d.id, d.kind) for d in dimensions] == [("1", "cost_centre"), ("2", "project")]
    assert [(o.code, o.name, o.active) for o in dimensions[0].objects] == [
        ("100", "Hallinto", True),
        ("200", "Vanha", False),
    ]
    assert [(o.code, o.name, o.active) for o in dimensions[1].objects] == [("P1", "P1", True)]


async def test_periods_are_the_tracking_periods(routes: Any, fake_time: Any) -> None:
    published(routes)
    async with connector(routes, fake_time) as conn:
        periods = await conn.read_periods()
    # Old reading: "periods" does not exist in FiscalYear, so no period was read at all.
    assert [(p.start.isoformat(), p.end.isoformat(), p.status) for p in periods] == [
        ("2024-01-01", "2024-12-31", "closed"),
        ("2025-01-01", "2025-01-31", "closed"),
        ("2025-02-01", "2025-02-28", "open"),
        ("2025-03-01", "2025-03-31", "closed"),  # PENDING: not open yet
    ]


async def test_vouchers_are_searched_then_read_in_full_by_id(routes: Any, fake_time: Any) -> None:
    published(routes)
    async with connector(routes, fake_time) as conn:
        page = await conn.read_vouchers(page_size=50)
    search = [r for r in routes.sent("GET", "/api/ledgerreceipts") if "page" in r.url.params]
    [query] = [dict(r.url.params) for r in search]
    # Published default order is DESC: the connector asks for oldest version first.
    assert query["orderByVersion"] == "ASC"
    assert query["orderById"] == "ASC"
    assert (query["page"], query["size"]) == ("0", "50")
    assert [
        r.url.path for r in routes.requests if r.url.path.startswith("/api/ledgerreceipts/")
    ] == ["/api/ledgerreceipts/501,502"]
    # Old reading: transactions taken from the search result, so every voucher had no lines.
    assert [(v.external_id, v.status, v.series, v.number) for v in page.vouchers] == [
        ("501", "valid", "JOURNAL", "1"),
        ("502", "invalidated", "JOURNAL", "2"),
    ]
    first = page.vouchers[0]
    assert [(line.account, line.amount, dict(line.dimensions)) for line in first.lines] == [
        ("1910", Decimal("-100.25"), {}),
        ("4000", Decimal("100.25"), {"cost_centre": "100"}),
    ]
    assert first.balance == 0
    assert page.has_more is False
    assert json.loads(page.cursor.token) == {"since": "2025-02-04T09:30:00", "after_id": 502}


async def test_a_full_page_without_meta_has_more(routes: Any, fake_time: Any) -> None:
    published(routes)
    routes.add("GET", "/api/ledgerreceipts", routes.json({"results": SEARCH["results"]}))
    async with connector(routes, fake_time) as conn:
        page = await conn.read_vouchers(SyncCursor.start(), page_size=2)
    assert page.has_more is True
    assert len(page.vouchers) == 2


async def test_read_receipts_takes_one_object_for_one_id(routes: Any, fake_time: Any) -> None:
    published(routes)
    async with connector(routes, fake_time) as conn:
        [voucher] = await conn.read_receipts([501])
    assert voucher.external_id == "501"
    assert voucher.version == "2025-02-03T10:00:00"
    assert len(voucher.lines) == 2


async def test_post_and_update_send_and_read_ledger_receipts(routes: Any, fake_time: Any) -> None:
    published(routes)
    async with connector(routes, fake_time) as conn:
        posted = await conn.post_journal(posting())
        updated = await conn.update_journal("777", posting(), version="2025-02-03T10:00:00")
    assert (posted.external_id, posted.status) == ("777", "UNFINISHED")
    assert updated.external_id == "777"
    [sent] = routes.sent("POST", "/api/ledgerreceipts")
    body = json.loads(sent.content)
    assert (body["type"], body["receiptDate"]) == ("JOURNAL", "2025-02-20")
    assert [
        (t["transactionType"], t["account"], t["accountingValue"], t["vatPercent"])
        for t in body["transactions"]
    ] == [("ENTRY", "5000", 100.25, 0), ("ENTRY", "2960", -100.25, 0)]
    assert body["transactions"][0]["dimensionItemValues"] == [
        {"dimensionId": 1, "itemId": 11, "value": 100.25}
    ]
    [put] = routes.sent("PUT", "/api/ledgerreceipts/777")
    assert json.loads(put.content)["version"] == "2025-02-03T10:00:00"


# --------------------------------------------------------------------------------------------
# Answers outside the contract: only UnexpectedResponse, naming vendor, endpoint and field
# --------------------------------------------------------------------------------------------

Call = Callable[[ProcountorConnector], Awaitable[object]]

METHODS: dict[str, tuple[Call, str, str]] = {
    # name: (call, method, path answered badly)
    "list_companies": (lambda c: c.list_companies(), "GET", "/api/company"),
    "read_accounts": (lambda c: c.read_accounts(), "GET", "/api/coa"),
    "read_dimensions": (lambda c: c.read_dimensions(), "GET", "/api/dimensions"),
    "read_periods": (lambda c: c.read_periods(), "GET", "/api/fiscalyears"),
    "read_vouchers": (lambda c: c.read_vouchers(), "GET", "/api/ledgerreceipts"),
    "read_receipts": (lambda c: c.read_receipts([501]), "GET", "/api/ledgerreceipts/501"),
    "post_journal": (lambda c: c.post_journal(posting()), "POST", "/api/ledgerreceipts"),
    "update_journal": (
        lambda c: c.update_journal("777", posting(), version="v"),
        "PUT",
        "/api/ledgerreceipts/777",
    ),
}

GOOD: dict[str, Any] = {
    "list_companies": COMPANY,
    "read_accounts": COA,
    "read_dimensions": DIMENSIONS,
    "read_periods": FISCAL_YEARS,
    "read_vouchers": SEARCH,
    "read_receipts": receipt(501),
    "post_journal": receipt(777, "UNFINISHED"),
    "update_journal": receipt(777, "UNFINISHED"),
}

# A required field missing, a wrong type or an enum value the schema does not list, per
# method, with the field the error must name.
WRONG: dict[str, list[tuple[Any, str]]] = {
    "list_companies": [
        ({k: v for k, v in COMPANY.items() if k != "id"}, "Company.id is missing"),
        ({**COMPANY, "name": ["x"]}, "Company.name is a list"),
        ({**COMPANY, "companyCurrency": "USD"}, "companyCurrency has the unknown value"),
        ({**COMPANY, "businessIdentifier": "556677-8899"}, "businessIdentifier is text"),
    ],
    "read_accounts": [
        ({"ledgerAccounts": {"1910": "Kassa"}}, "ledgerAccounts is an object"),
        ({"ledgerAccounts": [{"name": "Kassa"}]}, "ledgerAccounts[0].ledgerAccountCode"),
        ({"ledgerAccounts": [{"ledgerAccountCode": "1", "active": "yes"}]}, "active is text"),
    ],
    "read_dimensions": [
        ({"dimensions": DIMENSIONS}, "Dimension[] is an object"),
        ([{"id": 1, "name": "K", "items": [{"codeName": "1"}]}], "[0].items[0].id is missing"),
    ],
    "read_periods": [
        (
            {"fiscalYears": [{"trackingPeriods": [{"startDate": "2025-01-01"}]}]},
            "fiscalYears[0].trackingPeriods[0].status is missing",
        ),
        (
            {"fiscalYears": [{"trackingPeriods": [{"status": "ARCHIVED"}]}]},
            "status has the unknown value 'ARCHIVED'",
        ),
        (
            {
                "fiscalYears": [
                    {"trackingPeriods": [{"status": "OPEN", "startDate": 20250101}]},
                ]
            },
            "startDate is a number",
        ),
    ],
    "read_vouchers": [
        ({"results": {"id": 1}}, "results is an object"),
        ({"results": [{"id": "501", "version": "2025-01-01T00:00:00"}]}, "results[0].id is text"),
        ({"results": [{"id": 501}]}, "results[0].version is missing"),
        ({"results": [{"id": 501, "version": "yesterday"}]}, "not a timestamp"),
    ],
    "read_receipts": [
        ({**receipt(501), "status": "FROZEN"}, "status has the unknown value 'FROZEN'"),
        ({**receipt(501), "transactions": None}, "LedgerReceipt.transactions is missing"),
        (
            {**receipt(501), "transactions": [{"account": "1910", "accountingValue": "1"}]},
            "transactions[0].accountingValue is text",
        ),
        ({**receipt(501), "receiptDate": "3.2.2025"}, "receiptDate is not a date"),
        ({**receipt(501), "type": None}, "LedgerReceipt.type is missing"),
    ],
    "post_journal": [
        ({"status": "UNFINISHED"}, "LedgerReceipt.id is missing"),
        ({"id": 777, "status": "NEW"}, "status has the unknown value 'NEW'"),
    ],
    "update_journal": [([receipt(777)], "LedgerReceipt is a list")],
}


def _break(routes: Any, name: str, body: bytes | Any) -> None:
    _call, method, path = METHODS[name]
    answer = (
        httpx.Response(200, content=body, headers={"Content-Type": "application/json"})
        if isinstance(body, bytes)
        else routes.json(body)
    )
    if name == "read_vouchers":
        # The salary-visibility probe shares the endpoint: it must see a valid answer.
        def search(request: httpx.Request) -> httpx.Response:
            valid: httpx.Response = routes.json(SEARCH)
            return valid if request.url.params.get("types") == "SALARY" else answer

        routes.add(method, path, search)
    else:
        routes.add(method, path, answer)


def _endpoint(name: str) -> str:
    _call, method, path = METHODS[name]
    if path.startswith("/api/ledgerreceipts/"):
        return f"{method} /ledgerreceipts/{{receiptId}}"
    return f"{method} {path.removeprefix('/api')}"


async def _refused(routes: Any, fake_time: Any, name: str) -> UnexpectedResponse:
    call = METHODS[name][0]
    async with connector(routes, fake_time) as conn:
        with pytest.raises(ConnectorError) as caught:
            await call(conn)
    error = caught.value
    assert isinstance(error, UnexpectedResponse), repr(error)
    assert error.vendor == "procountor"
    assert error.endpoint == _endpoint(name)
    assert error.endpoint in str(error)
    return error


@pytest.mark.parametrize("name", sorted(METHODS))
@pytest.mark.parametrize("kind", ["empty", "truncated", "wrong type"])
async def test_malformed_bodies_raise_unexpected_response(
    routes: Any, fake_time: Any, name: str, kind: str
) -> None:
    published(routes)
    good = json.dumps(GOOD[name]).encode()
    body: bytes | Any = {
        "empty": b"",
        "truncated": good[: len(good) // 2],
        # A JSON value of the wrong type for the whole body.
        "wrong type": "not an object" if isinstance(GOOD[name], (dict, list)) else {},
    }[kind]
    _break(routes, name, body)
    error = await _refused(routes, fake_time, name)
    if kind != "wrong type":
        assert "not JSON" in error.detail


@pytest.mark.parametrize(
    ("name", "body", "detail"),
    [(name, body, detail) for name, cases in WRONG.items() for body, detail in cases],
)
async def test_missing_fields_wrong_types_and_unknown_enums_are_named(
    routes: Any, fake_time: Any, name: str, body: Any, detail: str
) -> None:
    published(routes)
    _break(routes, name, body)
    error = await _refused(routes, fake_time, name)
    assert detail in error.detail
