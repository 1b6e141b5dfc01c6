"""The Visma.net connector against the published contract, through httpx MockTransport.

Every fixture is written from the published OpenAPI as generated into public clients; each
names its DTO, and ``vismanet/SOURCES.md`` gives the repository, path and commit. None of
this goes through our sandbox.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Awaitable, Callable, Mapping
from decimal import Decimal
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from ledgerlink.connectors.errors import UnexpectedResponse
from ledgerlink.connectors.http import RateBudget, RetryPolicy
from ledgerlink.connectors.models import JournalLine, JournalPosting, SyncCursor
from ledgerlink.connectors.vismanet import VismaNetConnector, VismaNetSettings

API = "https://api.finance.visma.net"
TOKEN_URL = "https://connect.visma.com/connect/token"

Handler = Callable[[httpx.Request], httpx.Response]


def _json(body: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> Handler:
    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(status, json=body, headers=dict(headers or {}))

    return answer


def _raw(content: bytes, status: int = 200) -> Handler:
    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(status, content=content, headers={"Content-Type": "application/json"})

    return answer


# --------------------------------------------------------------------------------------------
# Fixtures written from the published DTOs (vismanet/SOURCES.md)
# --------------------------------------------------------------------------------------------

# BranchDto, asked with expandCurrency=true: the currency is CurrencyInBranchDto. A Swedish
# company: its books are in SEK. "ledger" and "vatZone" are fields the connector does not use.
BRANCH = {
    "branchId": 1,
    "number": "1",
    "name": "Exempel AB",
    "organizationId": 1234567,
    "isMainBranch": True,
    "isActive": True,
    "corporateId": "556036-0793",
    "vatRegistrationId": "SE556036079301",
    "currency": {"id": "SEK", "description": "Svensk krona", "symbol": "kr"},
    "vatZone": {"id": "01", "description": "Domestic"},
    "ledger": {"id": "L", "description": "Actual"},
    "lastModifiedDateTime": "2024-05-02T10:11:12.123",
}

# AccountDto (accountID/accountCD as MapName gives them; type from AccountTypeEnum).
ACCOUNTS = [
    {
        "accountID": 11,
        "accountCD": "1930",
        "accountGroupCD": None,
        "accountClass": "BANK",
        "type": "Asset",
        "active": True,
        "description": "Företagskonto",
        "useDefaultSub": False,
        "postOption": "Summary",
        "currency": None,
        "taxCategory": None,
        "cashAccount": True,
        "lastModifiedDateTime": "2024-01-02T08:00:00",
    },
    {
        "accountID": 12,
        "accountCD": "3001",
        "type": "Income",
        "active": True,
        "description": "Försäljning",
    },
    {
        "accountID": 13,
        "accountCD": "2081",
        "type": "Liability",
        "active": False,
        "description": "Aktiekapital",
    },
    {
        "accountID": 14,
        "accountCD": "7010",
        "type": "Expense",
        "active": True,
        "description": "Löner",
    },
]

# GET /v1/dimension: string[] of dimension ids (DimensionApi.md: "> string[]").
DIMENSION_IDS = ["ACCOUNT", "BIZACCT", "SUBACCOUNT", "INVENTORY"]

# GET /v1/dimension/SUBACCOUNT: DtoDimension with DtoSegment and DtoSegmentValue (valueId).
SUBACCOUNT_DIMENSION = {
    "id": "SUBACCOUNT",
    "length": 8,
    "description": "Subaccount",
    "segments": [
        {
            "segmentId": 1,
            "description": "Kostnadsställe",
            "length": 4,
            "validate": True,
            "isAutoNumber": False,
            "segmentValues": [
                {
                    "segmentId": 1,
                    "valueId": "100",
                    "description": "Ekonomi",
                    "active": True,
                    "publicId": "a1",
                    "timeStamp": "AAAA",
                    "lastModified": "2024-01-02T08:00:00",
                },
                {"segmentId": 1, "valueId": "200", "description": "Lager", "active": False},
            ],
        },
        {
            "segmentId": 2,
            "description": "Projekt",
            "length": 4,
            "validate": True,
            "segmentValues": [{"segmentId": 2, "valueId": "P01", "description": "Bygget"}],
        },
    ],
}

# FinancialPeriodDto: "period" is the id (YYYYPP); closedInGeneralLedger is the GL flag.
PERIODS = [
    {
        "year": 2024,
        "period": "202401",
        "startDate": "2024-01-01T00:00:00",
        "endDate": "2024-01-31T00:00:00",
        "description": "January",
        "active": True,
        "closedInSupplierLedger": True,
        "closedInCustomerLedger": True,
        "closedInInventoryManagement": True,
        "closedInGeneralLedger": True,
        "closedInCashManagement": True,
        "closedInFixedAssets": True,
    },
    {
        "year": 2024,
        "period": "202402",
        "startDate": "2024-02-01T00:00:00",
        "endDate": "2024-02-29T00:00:00",
        "description": "February",
        "active": True,
        # Closed in the supplier ledger only: still open for GL postings.
        "closedInSupplierLedger": True,
        "closedInGeneralLedger": False,
    },
    {
        "year": 2024,
        "period": "202403",
        "startDate": "2024-03-01T00:00:00",
        "endDate": "2024-03-31T00:00:00",
        "description": "March",
        "active": False,
        "closedInGeneralLedger": False,
    },
]


def journal_line(
    number: int,
    account: str,
    *,
    debit: float = 0.0,
    credit: float = 0.0,
    segments: list[tuple[int, str]] | None = None,
    vat: str | None = None,
    reference: str = "LL-1",
) -> dict[str, Any]:
    """A JournalTransactionLineDto: subaccount is SubaccountInJournalTransactionLineDto
    (segments are SegmentDto), vatCode is VatCodeInJournalTransactionLineDto."""
    return {
        "lineNumber": number,
        "accountNumber": account,
        "description": f"line {number}",
        "subaccount": {
            "subaccountNumber": "-".join(value for _id, value in segments or []) or "0",
            "subaccountId": 100 + number,
            "description": None,
            "active": True,
            "segments": [
                {
                    "segmentId": segment_id,
                    "segmentDescription": "Kostnadsställe" if segment_id == 1 else "Projekt",
                    "segmentValue": value,
                    "segmentValueDescription": None,
                }
                for segment_id, value in segments or []
            ],
        },
        "referenceNumber": reference,
        "debitAmount": debit,
        "debitAmountInCurrency": debit,
        "creditAmount": credit,
        "creditAmountInCurrency": credit,
        "transactionDescription": f"transaction {number}",
        "vatCode": {"id": vat, "description": "25 %"} if vat else None,
        "vat": None,
        "branch": "1",
        "transactionType": "GL",
        "module": "ModuleGL",
    }


def batch(
    number: str,
    *,
    status: str = "Posted",
    stamp: str = "2024-02-10T09:00:00.250",
    lines: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """A JournalTransactionDto (header totals are the whole batch's)."""
    lines = (
        lines
        if lines is not None
        else [
            journal_line(1, "7010", debit=1500.25, segments=[(1, "100"), (2, "P01")], vat="MP1"),
            journal_line(2, "1930", credit=1500.25),
        ]
    )
    return {
        "module": "ModuleGL",
        "batchNumber": number,
        "status": status,
        "hold": status == "Hold",
        "transactionDate": "2024-02-10T00:00:00",
        "postPeriod": "022024",
        "financialPeriod": "202402",
        "ledger": "L",
        "currencyId": "SEK",
        "exchangeRate": 1.0,
        "autoReversing": False,
        "reversingEntry": False,
        "description": f"Batch {number}",
        "debitTotal": 1500.25,
        "debitTotalInCurrency": 1500.25,
        "creditTotal": 1500.25,
        "creditTotalInCurrency": 1500.25,
        "controlTotal": 0.0,
        "lastModifiedDateTime": stamp,
        "branch": "1",
        "journalTransactionLines": lines,
        "attachments": [],
        "timeStamp": "AAAAAAAB",
    }


# --------------------------------------------------------------------------------------------
# The connector on a MockTransport
# --------------------------------------------------------------------------------------------


class Vendor:
    """Routes (method, path) to answers and records the requests."""

    def __init__(self, routes: Mapping[tuple[str, str], Handler]) -> None:
        self.routes = dict(routes)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if str(request.url) == TOKEN_URL:
            return httpx.Response(
                200, json={"access_token": "t0k3n", "token_type": "Bearer", "expires_in": 3600}
            )
        self.requests.append(request)
        handler = self.routes.get((request.method, request.url.path))
        if handler is None:
            return httpx.Response(404, json={"message": f"no route {request.url.path}"})
        return handler(request)

    def params(self, path: str) -> dict[str, str]:
        found = [r for r in self.requests if r.url.path == path and r.method == "GET"]
        assert found, f"{path} was not called"
        return dict(found[-1].url.params)


def connector(vendor: Vendor) -> VismaNetConnector:
    settings = VismaNetSettings(
        client_id="isv_contract",
        client_secret=SecretStr("contract-secret"),
        tenant_id="7d5e3c1a-0000-4000-8000-000000000001",
    )
    return VismaNetConnector(
        settings,
        budget=RateBudget(1_000_000, 1_000),
        retry=RetryPolicy(attempts=1),
        transport=httpx.MockTransport(vendor),
    )


def valid_routes() -> dict[tuple[str, str], Handler]:
    return {
        ("GET", "/v1/branch"): _json([BRANCH]),
        ("GET", "/v1/account"): _json(ACCOUNTS),
        ("GET", "/v1/dimension"): _json(DIMENSION_IDS),
        ("GET", "/v1/dimension/SUBACCOUNT"): _json(SUBACCOUNT_DIMENSION),
        ("GET", "/v1/financialperiod"): _json(PERIODS),
        ("GET", "/v2/journaltransaction"): _json([batch("17"), batch("18", status="Voided")]),
        ("GET", "/v2/journaltransaction/17"): _json(batch("17"), headers={"ETag": '"17-3"'}),
        # POST answers 201 with Location and ETag; the body type is an untyped object.
        ("POST", "/v2/journaltransaction"): lambda request: httpx.Response(
            201, headers={"Location": f"{API}/v2/journaltransaction/42", "ETag": '"42-1"'}
        ),
    }


# --------------------------------------------------------------------------------------------
# Each method reads the published shapes
# --------------------------------------------------------------------------------------------


async def test_list_companies_reads_the_expanded_base_currency() -> None:
    vendor = Vendor(valid_routes())
    async with connector(vendor) as visma:
        (company,) = await visma.list_companies()
    # Was: the currency was absent without expandCurrency and read as EUR.
    assert company.currency == "SEK"
    assert company.business_id == "556036-0793"
    assert company.external_id == "1234567"
    assert company.name == "Exempel AB"
    assert vendor.params("/v1/branch")["expandCurrency"] == "true"


async def test_a_branch_without_its_currency_is_unexpected_not_eur() -> None:
    routes = valid_routes()
    routes[("GET", "/v1/branch")] = _json([{k: v for k, v in BRANCH.items() if k != "currency"}])
    async with connector(Vendor(routes)) as visma:
        with pytest.raises(UnexpectedResponse) as caught:
            await visma.list_companies()
    assert caught.value.vendor == "vismanet"
    assert caught.value.endpoint == "GET /v1/branch"
    assert "currency" in caught.value.detail


async def test_read_accounts_maps_the_published_type_enum() -> None:
    async with connector(Vendor(valid_routes())) as visma:
        accounts = await visma.read_accounts()
    assert [(a.number, a.type, a.active) for a in accounts] == [
        ("1930", "asset", True),
        ("3001", "revenue", True),
        ("2081", "liability", False),
        ("7010", "expense", True),
    ]


async def test_an_account_type_outside_the_enum_is_unexpected() -> None:
    routes = valid_routes()
    routes[("GET", "/v1/account")] = _json([{**ACCOUNTS[0], "type": "Equity"}])
    async with connector(Vendor(routes)) as visma:
        with pytest.raises(UnexpectedResponse, match="Equity"):
            await visma.read_accounts()


async def test_read_dimensions_lists_ids_then_reads_the_subaccount_segments() -> None:
    vendor = Vendor(valid_routes())
    async with connector(vendor) as visma:
        dimensions = await visma.read_dimensions()
    assert [(d.id, d.kind, d.name) for d in dimensions] == [
        ("SUBACCOUNT:1", "cost_centre", "Kostnadsställe"),
        ("SUBACCOUNT:2", "cost_unit", "Projekt"),
    ]
    # Was: values were read from "value" (a KeyError on the published "valueId").
    assert [(o.code, o.name, o.active) for o in dimensions[0].objects] == [
        ("100", "Ekonomi", True),
        ("200", "Lager", False),
    ]
    assert dimensions[1].objects[0].code == "P01"
    assert vendor.params("/v1/dimension/SUBACCOUNT")["expandSegmentsValues"] == "true"


async def test_no_subaccount_dimension_means_no_dimensions() -> None:
    routes = valid_routes()
    routes[("GET", "/v1/dimension")] = _json(["ACCOUNT", "BIZACCT"])
    async with connector(Vendor(routes)) as visma:
        assert await visma.read_dimensions() == []


async def test_read_periods_uses_period_and_closed_in_general_ledger() -> None:
    async with connector(Vendor(valid_routes())) as visma:
        periods = await visma.read_periods()
    # Was: "closedInGl" (absent in the published DTO) read every period as open.
    assert [(p.start, p.end, p.status) for p in periods] == [
        (dt.date(2024, 1, 1), dt.date(2024, 1, 31), "closed"),
        (dt.date(2024, 2, 1), dt.date(2024, 2, 29), "open"),
        (dt.date(2024, 3, 1), dt.date(2024, 3, 31), "closed"),
    ]


async def test_a_period_without_its_general_ledger_flag_is_unexpected() -> None:
    routes = valid_routes()
    routes[("GET", "/v1/financialperiod")] = _json(
        [{k: v for k, v in PERIODS[0].items() if k != "closedInGeneralLedger"}]
    )
    async with connector(Vendor(routes)) as visma:
        with pytest.raises(UnexpectedResponse, match="closedInGeneralLedger"):
            await visma.read_periods()


async def test_read_vouchers_reads_segments_vat_code_and_the_voided_status() -> None:
    async with connector(Vendor(valid_routes())) as visma:
        page = await visma.read_vouchers(SyncCursor.start())
    first, voided = page.vouchers
    assert not page.has_more
    assert first.status == "valid"
    # Was: "Void" only, so a "Voided" batch read as valid.
    assert voided.status == "invalidated"
    line = first.lines[0]
    # Was: the subaccount was iterated as a list and the VAT code read from "vatCodeId".
    assert line.dimensions == {"cost_centre": "100", "cost_unit": "P01"}
    assert line.vat_code == "MP1"
    assert line.amount == Decimal("1500.25")
    assert first.lines[1].amount == Decimal("-1500.25")
    assert first.balance == 0
    assert first.date == dt.date(2024, 2, 10)


@pytest.mark.parametrize(
    "status",
    [
        "Hold",
        "Balanced",
        "Unposted",
        "Posted",
        "Completed",
        "Released",
        "PartiallyReleased",
        "Scheduled",
        "On hold",
    ],
)
async def test_every_published_status_but_voided_reads_as_valid(status: str) -> None:
    routes = valid_routes()
    routes[("GET", "/v2/journaltransaction")] = _json([batch("5", status=status)])
    async with connector(Vendor(routes)) as visma:
        page = await visma.read_vouchers()
    assert [v.status for v in page.vouchers] == ["valid"]


async def test_an_unknown_batch_status_is_unexpected() -> None:
    routes = valid_routes()
    routes[("GET", "/v2/journaltransaction")] = _json([batch("5", status="Deleted")])
    async with connector(Vendor(routes)) as visma:
        with pytest.raises(UnexpectedResponse) as caught:
            await visma.read_vouchers()
    assert caught.value.endpoint == "GET /v2/journaltransaction"
    assert "batch[0].status" in caught.value.detail


async def test_the_old_bare_list_subaccount_is_unexpected() -> None:
    line = journal_line(1, "7010", debit=1.0)
    line["subaccount"] = [{"segmentId": 1, "segmentValue": "100"}]
    routes = valid_routes()
    routes[("GET", "/v2/journaltransaction")] = _json([batch("5", lines=[line])])
    async with connector(Vendor(routes)) as visma:
        with pytest.raises(UnexpectedResponse, match="subaccount is not an object"):
            await visma.read_vouchers()


async def test_read_batch_returns_the_voucher_and_its_etag() -> None:
    async with connector(Vendor(valid_routes())) as visma:
        voucher, etag = await visma.read_batch("17")
    assert (voucher.external_id, etag) == ("17", '"17-3"')
    assert voucher.lines[0].dimensions["cost_centre"] == "100"


async def test_post_journal_sends_the_write_dto_and_reads_the_location() -> None:
    routes = valid_routes()
    routes[("GET", "/v2/journaltransaction")] = _json([])

    def created(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            201,
            headers={"Location": f"{API}/v2/journaltransaction/42", "ETag": '"42-1"'},
        )

    routes[("POST", "/v2/journaltransaction")] = created
    vendor = Vendor(routes)
    posting = JournalPosting(
        date=dt.date(2024, 2, 29),
        period=dt.date(2024, 2, 1),
        description="Payroll February",
        reference="NMBRS-2024-02",
        lines=(
            JournalLine(account="7010", amount=Decimal("100.10"), cost_centre="100"),
            JournalLine(account="1930", amount=Decimal("-100.10")),
        ),
    )
    async with connector(vendor) as visma:
        posted = await visma.post_journal(posting)
    assert (posted.external_id, posted.status) == ("42", "Balanced")
    assert vendor.params("/v2/journaltransaction")["periodId"] == "202402"
    (sent,) = [r for r in vendor.requests if r.method == "POST"]
    body = json.loads(sent.content)
    # JournalTransactionUpdateDto: value-wrapped scalars; SegmentUpdateDto is not wrapped.
    assert body["financialPeriod"] == {"value": "202402"}
    assert body["transactionDate"] == {"value": "2024-02-29"}
    first = body["journalTransactionLines"][0]
    assert first["accountNumber"] == {"value": "7010"}
    assert first["subaccount"] == [{"segmentId": 1, "segmentValue": "100"}]
    assert first["debitAmountInCurrency"] == {"value": 100.1}


async def test_post_journal_without_location_or_body_is_unexpected() -> None:
    routes = valid_routes()
    routes[("GET", "/v2/journaltransaction")] = _json([])
    routes[("POST", "/v2/journaltransaction")] = _raw(b"", 201)
    posting = JournalPosting(
        date=dt.date(2024, 2, 29),
        period=dt.date(2024, 2, 1),
        description="x",
        reference="R1",
        lines=(
            JournalLine(account="7010", amount=Decimal("1")),
            JournalLine(account="1930", amount=Decimal("-1")),
        ),
    )
    async with connector(Vendor(routes)) as visma:
        with pytest.raises(UnexpectedResponse) as caught:
            await visma.post_journal(posting)
    assert caught.value.endpoint == "POST /v2/journaltransaction"


# --------------------------------------------------------------------------------------------
# Truncated, empty and wrongly typed answers: only ConnectorError subclasses come out
# --------------------------------------------------------------------------------------------

POSTING = JournalPosting(
    date=dt.date(2024, 2, 29),
    period=dt.date(2024, 2, 1),
    description="x",
    reference="R1",
    lines=(
        JournalLine(account="7010", amount=Decimal("1")),
        JournalLine(account="1930", amount=Decimal("-1")),
    ),
)

Call = Callable[[VismaNetConnector], Awaitable[object]]

CALLS: dict[str, tuple[Call, list[str]]] = {
    "list_companies": (lambda c: c.list_companies(), ["/v1/branch"]),
    "read_accounts": (lambda c: c.read_accounts(), ["/v1/account"]),
    "read_dimensions": (
        lambda c: c.read_dimensions(),
        ["/v1/dimension", "/v1/dimension/SUBACCOUNT"],
    ),
    "read_periods": (lambda c: c.read_periods(), ["/v1/financialperiod"]),
    "read_vouchers": (lambda c: c.read_vouchers(), ["/v2/journaltransaction"]),
    "read_batch": (lambda c: c.read_batch("17"), ["/v2/journaltransaction/17"]),
    "post_journal": (
        lambda c: c.post_journal(POSTING),
        ["/v1/financialperiod", "/v2/journaltransaction"],
    ),
}

MALFORMED: dict[str, bytes] = {
    "empty": b"",
    "truncated": b'[{"batchNumber": "17", "status": "Pos',
    "a string": b'"OK"',
    "null": b"null",
    "an object for a list": b'{"items": []}',
    "a list of numbers": b"[1, 2, 3]",
    "a list for an object": b"[]",
    "wrongly typed fields": json.dumps(
        [
            {
                "batchNumber": {"n": 1},
                "accountCD": ["1930"],
                "period": 202401,
                "startDate": "yesterday",
                "segments": "all",
                "currency": "SEK",
                "isMainBranch": "yes",
                "closedInGeneralLedger": "no",
                "journalTransactionLines": {"0": {}},
                "type": 3,
            }
        ]
    ).encode(),
}


async def outcome(call: Call, visma: VismaNetConnector) -> Exception | None:
    """What ``call`` raised (None: it returned)."""
    try:
        await call(visma)
    except Exception as exc:  # every exception is looked at by the caller
        return exc
    return None


@pytest.mark.parametrize("body", list(MALFORMED), ids=list(MALFORMED))
@pytest.mark.parametrize("method", list(CALLS))
async def test_malformed_answers_raise_unexpected_response(method: str, body: str) -> None:
    call, paths = CALLS[method]
    for path in paths:
        routes = valid_routes()
        if method == "post_journal":
            routes[("GET", "/v2/journaltransaction")] = _json([])
        routes[("GET", path)] = _raw(MALFORMED[body])
        async with connector(Vendor(routes)) as visma:
            error = await outcome(call, visma)
        if error is None:
            # Only an answer that is valid for this endpoint may pass: an empty list.
            assert MALFORMED[body] == b"[]", f"{method} accepted {body} from {path}"
            continue
        assert isinstance(error, UnexpectedResponse), repr(error)
        assert error.vendor == "vismanet"
        assert error.endpoint.startswith("GET /v")
        assert error.detail


async def test_every_journal_list_sends_one_of_the_mandatory_filters() -> None:
    # JournalTransactionV2Api: periodId "Mandatory if 'LastModifiedDateTime' not provided";
    # lastModifiedDateTime in a published format (no offset). A first sync sent neither.
    routes = valid_routes()
    routes[("GET", "/v2/journaltransaction")] = _json(
        [batch("5", stamp="2024-02-10T09:00:00.250+00:00")]
    )
    vendor = Vendor(routes)
    async with connector(vendor) as visma:
        page = await visma.read_vouchers()
        first = vendor.params("/v2/journaltransaction")
        await visma.read_vouchers(page.cursor)
        later = vendor.params("/v2/journaltransaction")
    assert (first["lastModifiedDateTime"], first["lastModifiedDateTimeCondition"]) == (
        "1900-01-01",
        ">=",
    )
    assert later["lastModifiedDateTime"] == "2024-02-10T09:00:00.250"


async def test_gl_balances_add_up_each_periods_movements() -> None:
    # GeneralLedgerBalanceV2Api / GeneralLedgerBalanceDto: periodToDateDebit/Credit per period.
    routes = valid_routes()

    def balances(request: httpx.Request) -> httpx.Response:
        period = request.url.params["periodId"]
        rows = {
            "202401": [{"account": {"number": "1930"}, "periodToDateDebit": 100.5,
                        "periodToDateCredit": 0}],
            "202402": [{"account": {"number": "1930"}, "periodToDateDebit": 0,
                        "periodToDateCredit": 20.25}],
        }.get(period, [])  # fmt: skip
        return httpx.Response(200, json=rows)

    routes[("GET", "/v2/generalLedgerBalance")] = balances
    vendor = Vendor(routes)
    async with connector(vendor) as visma:
        found = await visma.read_account_balances([dt.date(2024, 1, 31), dt.date(2024, 2, 29)])
    assert found == {
        dt.date(2024, 1, 31): {"1930": Decimal("100.50")},
        dt.date(2024, 2, 29): {"1930": Decimal("80.25")},
    }


def test_a_person_authorised_through_auth_needs_no_redirect_uri_to_read() -> None:
    settings = VismaNetSettings(
        client_id="isv_contract",
        client_secret=SecretStr("contract-secret"),
        grant="authorization_code",
        company_id="1234567",
    )
    with pytest.raises(ValueError, match="redirect_uri"):
        VismaNetConnector(settings).authorization_url("state")
    with pytest.raises(ValueError, match="company_id"):
        VismaNetSettings(
            client_id="isv_contract",
            client_secret=SecretStr("contract-secret"),
            grant="authorization_code",
        )
