"""Netvisor connector against answers written from Netvisor's published documentation.

Sources (ids N1-N4) are listed in ``netvisor/SOURCES.md``: Netvisor's support pages for
accountlist.nv (N1) and accountingledger.nv (N2), and answers recorded in the public clients
Heltti/netvisor-api-client (N3) and rantalainen/netvisor-api-client (N4). Every XML fixture
below is written by us in those shapes. The connector runs over httpx MockTransport,
independent of our sandbox.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import Any

import defusedxml.ElementTree as SafeET
import httpx
import pytest
from pydantic import SecretStr

from ledgerlink.connectors.errors import ConnectorError, UnexpectedResponse
from ledgerlink.connectors.http import RetryPolicy
from ledgerlink.connectors.models import JournalLine, JournalPosting
from ledgerlink.connectors.netvisor import NetvisorConnector, NetvisorSettings

NOW = dt.datetime(2025, 2, 10, 9, 30, tzinfo=dt.UTC)
OK = "<ResponseStatus><Status>OK</Status><TimeStamp>10.2.2025 11:30:00</TimeStamp></ResponseStatus>"


def root(payload: str) -> bytes:
    """A successful answer: ``Root/ResponseStatus`` then the payload (ISO-8859-15)."""
    text = f'<?xml version="1.0" encoding="ISO-8859-15"?><Root>{OK}{payload}</Root>'
    return text.encode("iso-8859-15")


# N1 (nesting, AccountType) + N3 AccountList.xml (a heading with an empty Number): the
# account-group headings are Account elements among the accounts.
ACCOUNT_LIST = root(
    "<AccountList>"
    "<CompanyDefaultAccounts><TradePayables>2871</TradePayables>"
    "<SalesReceivables>1701</SalesReceivables></CompanyDefaultAccounts>"
    "<Accounts>"
    "<Account><NetvisorKey>1</NetvisorKey><Number/><Name>Vastaavaa</Name>"
    "<AccountType>accountgroup</AccountType><FatherNetvisorKey>0</FatherNetvisorKey>"
    "<IsActive>1</IsActive><IsCumulative>1</IsCumulative><Sort>0</Sort><EndSort>9</EndSort>"
    "<IsNaturalNegative>0</IsNaturalNegative></Account>"
    "<Account><NetvisorKey>2</NetvisorKey><Number>1701</Number><Name>Myyntisaamiset</Name>"
    '<ForeignName iso-3166="en">Trade receivables</ForeignName>'
    "<AccountType>account</AccountType><FatherNetvisorKey>1</FatherNetvisorKey>"
    "<IsActive>1</IsActive><IsCumulative>0</IsCumulative><Sort>1</Sort><EndSort>1</EndSort>"
    "<IsNaturalNegative>0</IsNaturalNegative></Account>"
    "<Account><NetvisorKey>3</NetvisorKey><Number>300</Number><Name>LIIKEVAIHTO</Name>"
    "<AccountType>accountgroup</AccountType><FatherNetvisorKey>0</FatherNetvisorKey>"
    "<IsActive>1</IsActive></Account>"
    "<Account><NetvisorKey>4</NetvisorKey><Number>3000</Number><Name>Myynti</Name>"
    "<AccountType>account</AccountType><FatherNetvisorKey>3</FatherNetvisorKey>"
    "<IsActive>0</IsActive></Account>"
    "</Accounts></AccountList>"
)

# N3 AccountingPeriodList.xml: format="ansi" on Finnish dates, lock information first.
PERIOD_LIST = root(
    "<AccountingPeriodList><PeriodLockInformation>"
    '<AccountingPeriodLockDate format="ansi">31.1.2025</AccountingPeriodLockDate>'
    '<VatPeriodLockDate format="ansi">31.1.2025</VatPeriodLockDate>'
    '<PurchaseLockDate format="ansi"></PurchaseLockDate>'
    "</PeriodLockInformation>"
    '<Period><NetvisorKey>3</NetvisorKey><Name>2025</Name><BeginDate format="ansi">1.1.2025'
    '</BeginDate><EndDate format="ansi">31.3.2025</EndDate></Period>'
    "</AccountingPeriodList>"
)

# N3 DimensionList.xml: Netvisorkey with a lower-case k, IsHidden True/False.
DIMENSION_LIST = root(
    "<DimensionNameList><DimensionName><Netvisorkey>9</Netvisorkey><Name>Kustannuspaikka</Name>"
    "<IsHidden>False</IsHidden><LinkType>0</LinkType><DimensionDetails>"
    "<DimensionDetail><Netvisorkey>12</Netvisorkey><Name>100</Name><IsHidden>False</IsHidden>"
    "<Level>1</Level><Sort>0</Sort><EndSort>0</EndSort><FatherID>0</FatherID></DimensionDetail>"
    "<DimensionDetail><Netvisorkey>13</Netvisorkey><Name>200</Name><IsHidden>True</IsHidden>"
    "<Level>1</Level><Sort>1</Sort><EndSort>1</EndSort><FatherID>0</FatherID></DimensionDetail>"
    "</DimensionDetails></DimensionName></DimensionNameList>"
)

# N2 + N3 AccountingLedger.xml: "-" for no VAT code, a blank DimensionItem, a voucher
# without a Status attribute, an invalidated and a deleted voucher (N2, N4).
LEDGER = root(
    "<Vouchers>"
    '<Voucher Status="valid"><NetvisorKey>12</NetvisorKey><VoucherDate>15.1.2025</VoucherDate>'
    "<VoucherNumber>13</VoucherNumber><VoucherDescription>Palkat</VoucherDescription>"
    '<VoucherClass netvisorkey="5">Muistiotosite</VoucherClass>'
    "<VoucherNetvisorURI>https://netvisor.example/voucher/12</VoucherNetvisorURI>"
    "<VoucherLine><NetvisorKey>121</NetvisorKey><LineSum>-1 017,18</LineSum>"
    "<Description>Pankki</Description><AccountNumber>1910</AccountNumber>"
    "<VatPercent>0</VatPercent><VatCode>-</VatCode>"
    "<Dimension><DimensionName>Kustannuspaikka</DimensionName><DimensionItem> </DimensionItem>"
    "</Dimension></VoucherLine>"
    "<VoucherLine><NetvisorKey>122</NetvisorKey><LineSum>1017,18</LineSum>"
    "<Description>Palkka</Description><AccountNumber>5000</AccountNumber>"
    "<VatPercent>24</VatPercent><VatCode>KOMY</VatCode>"
    "<Dimension><DimensionName>Kustannuspaikka</DimensionName><DimensionItem>100</DimensionItem>"
    "</Dimension></VoucherLine></Voucher>"
    '<Voucher Status="invalidated"><NetvisorKey>25</NetvisorKey>'
    "<VoucherDate>16.1.2025</VoucherDate><VoucherNumber>26</VoucherNumber>"
    "<VoucherDescription>Virhe</VoucherDescription><VoucherClass>Muistiotosite</VoucherClass>"
    "<VoucherLine><NetvisorKey>251</NetvisorKey><LineSum>-5,00</LineSum><Description/>"
    "<AccountNumber>1910</AccountNumber><VatPercent>0</VatPercent><VatCode>-</VatCode>"
    "</VoucherLine></Voucher>"
    '<Voucher Status="deleted"><NetvisorKey>27</NetvisorKey><VoucherDate>17.1.2025</VoucherDate>'
    "<VoucherNumber>27</VoucherNumber><VoucherDescription/><VoucherClass>Muistiotosite"
    "</VoucherClass></Voucher>"
    "<Voucher><NetvisorKey>36</NetvisorKey><VoucherDate>18.1.2025</VoucherDate>"
    "<VoucherNumber>37</VoucherNumber><VoucherDescription>Tyhjä</VoucherDescription>"
    "<VoucherClass>Muistiotosite</VoucherClass></Voucher>"
    "</Vouchers>"
)
EMPTY_LEDGER = root("<Vouchers></Vouchers>")

# N3 AccountingCreateVoucher.xml.
CREATED = root("<Replies><InsertedDataIdentifier>8</InsertedDataIdentifier></Replies>")


def xml(body: bytes, status: int = 200) -> httpx.Response:
    return httpx.Response(
        status, content=body, headers={"Content-Type": "text/xml; charset=ISO-8859-15"}
    )


def connector(routes: Any) -> NetvisorConnector:
    settings = NetvisorSettings(
        sender="Ledgerlink contract",
        customer_id="CUST1",
        partner_id="PART1",
        customer_key=SecretStr("customer-key"),
        partner_key=SecretStr("partner-key"),
        organisation_id="1234567-8",
        base_url="https://isvapi.example",
        company_name="Esimerkki Oy",
    )
    return NetvisorConnector(
        settings, now=lambda: NOW, retry=RetryPolicy(attempts=1), transport=routes.transport()
    )


def published(routes: Any) -> None:
    routes.add("GET", "/accountlist.nv", xml(ACCOUNT_LIST))
    routes.add("GET", "/accountingperiodlist.nv", xml(PERIOD_LIST))
    routes.add("GET", "/dimensionlist.nv", xml(DIMENSION_LIST))

    def ledger(request: httpx.Request) -> httpx.Response:
        january = request.url.params.get("startdate") == "2025-01-01"
        return xml(LEDGER if january else EMPTY_LEDGER)

    routes.add("GET", "/accountingledger.nv", ledger)
    routes.add("POST", "/accounting.nv", xml(CREATED))


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


async def test_accounts_are_nested_and_group_headings_are_left_out(routes: Any) -> None:
    published(routes)
    async with connector(routes) as conn:
        accounts = await conn.read_accounts()
    # Old reading: AccountList/Account does not exist, so no account was read at all.
    assert [(a.number, a.name, a.active, a.type) for a in accounts] == [
        ("1701", "Myyntisaamiset", True, "asset"),
        ("3000", "Myynti", False, "revenue"),
    ]


async def test_periods_follow_the_fiscal_years_and_the_finnish_lock_date(routes: Any) -> None:
    published(routes)
    async with connector(routes) as conn:
        periods = await conn.read_periods()
        [company] = await conn.list_companies()
    assert [(p.start.isoformat(), p.status) for p in periods] == [
        ("2025-01-01", "closed"),
        ("2025-02-01", "open"),
        ("2025-03-01", "open"),
    ]
    assert (company.external_id, company.business_id, company.name) == (
        "CUST1",
        "1234567-8",
        "Esimerkki Oy",
    )


async def test_dimensions_hidden_items_are_inactive(routes: Any) -> None:
    published(routes)
    async with connector(routes) as conn:
        [dimension] = await conn.read_dimensions()
    assert (dimension.id, dimension.name, dimension.kind) == ("9", "Kustannuspaikka", "cost_centre")
    assert [(o.code, o.active) for o in dimension.objects] == [("100", True), ("200", False)]


async def test_vouchers_read_vat_dash_blank_dimensions_and_every_status(routes: Any) -> None:
    published(routes)
    async with connector(routes) as conn:
        page = await conn.read_vouchers()
    ledger_queries = [dict(r.url.params) for r in routes.sent("GET", "/accountingledger.nv")]
    # Published default voucherstatus is 2 (valid only): every read asks for all (1).
    assert ledger_queries
    assert all(q.get("voucherstatus") == "1" for q in ledger_queries)
    by_id = {v.external_id: v for v in page.vouchers}
    assert {k: v.status for k, v in by_id.items()} == {
        "12": "valid",
        "25": "invalidated",
        "27": "invalidated",  # deleted: old reading took it for valid
        "36": "valid",  # no Status attribute (0...1): valid
    }
    first = by_id["12"]
    assert first.date == dt.date(2025, 1, 15)
    assert [
        (line.account, line.amount, line.vat_code, dict(line.dimensions)) for line in first.lines
    ] == [
        # "-" is no VAT code, a blank DimensionItem is no dimension value (old: "-", {"...": ""})
        ("1910", Decimal("-1017.18"), None, {}),
        ("5000", Decimal("1017.18"), "KOMY", {"Kustannuspaikka": "100"}),
    ]
    assert first.balance == 0
    assert by_id["36"].lines == ()


async def test_post_journal_reads_the_inserted_key(routes: Any) -> None:
    published(routes)
    async with connector(routes) as conn:
        posted = await conn.post_journal(posting())
    assert (posted.external_id, posted.status) == ("8", "OK")
    [sent] = routes.sent("POST", "/accounting.nv")
    voucher = SafeET.fromstring(sent.content).find("voucher")
    assert voucher is not None
    assert [child.tag for child in voucher][:4] == [
        "calculationmode",
        "voucherdate",
        "description",
        "voucherclass",
    ]
    line = voucher.find("voucherline")
    assert line is not None
    vat = line.find("vatpercent")
    assert vat is not None
    assert vat.get("vatcode") == "NONE"  # N4: the request's no-VAT code
    assert line.findtext("dimension/dimensionname") == "Kustannuspaikka"


# --------------------------------------------------------------------------------------------
# Answers outside the contract: only UnexpectedResponse, naming vendor, endpoint and field
# --------------------------------------------------------------------------------------------

Call = Callable[[NetvisorConnector], Awaitable[object]]

METHODS: dict[str, tuple[Call, str, str, bytes]] = {
    # name: (call, method, resource answered badly, its good answer)
    "list_companies": (lambda c: c.list_companies(), "GET", "accountingperiodlist.nv", PERIOD_LIST),
    "read_accounts": (lambda c: c.read_accounts(), "GET", "accountlist.nv", ACCOUNT_LIST),
    "read_dimensions": (lambda c: c.read_dimensions(), "GET", "dimensionlist.nv", DIMENSION_LIST),
    "read_periods": (lambda c: c.read_periods(), "GET", "accountingperiodlist.nv", PERIOD_LIST),
    "read_vouchers": (lambda c: c.read_vouchers(), "GET", "accountingledger.nv", LEDGER),
    "post_journal": (lambda c: c.post_journal(posting()), "POST", "accounting.nv", CREATED),
}

WRONG: dict[str, list[tuple[bytes, str]]] = {
    "read_accounts": [
        (
            root("<AccountList><Account><Number>1</Number></Account></AccountList>"),
            "Accounts is missing",
        ),
        (
            root(
                "<AccountList><Accounts><Account><Number>1</Number></Account></Accounts></AccountList>"
            ),
            "Account[0]/AccountType is missing",
        ),
        (
            root(
                "<AccountList><Accounts><Account><AccountType>ledger</AccountType></Account>"
                "</Accounts></AccountList>"
            ),
            "AccountType has the unknown value 'ledger'",
        ),
        (
            root(
                "<AccountList><Accounts><Account><AccountType>account</AccountType><Number/>"
                "</Account></Accounts></AccountList>"
            ),
            "Account[0]/Number is missing",
        ),
    ],
    "read_dimensions": [(root("<DimensionList/>"), "DimensionNameList is missing")],
    "read_periods": [
        (
            root(
                "<AccountingPeriodList><Period><BeginDate>1.1.2025</BeginDate></Period></AccountingPeriodList>"
            ),
            "Period[0]/EndDate is missing",
        ),
        (
            root(
                "<AccountingPeriodList><Period><BeginDate>2025/01/01</BeginDate>"
                "<EndDate>31.12.2025</EndDate></Period></AccountingPeriodList>"
            ),
            "BeginDate is not a date",
        ),
    ],
    "read_vouchers": [
        (root("<Voucher/>"), "Root/Vouchers is missing"),
        (
            root(
                '<Vouchers><Voucher Status="archived"><NetvisorKey>1</NetvisorKey>'
                "</Voucher></Vouchers>"
            ),
            "unknown value 'archived'",
        ),
        (
            root(
                "<Vouchers><Voucher><NetvisorKey>1</NetvisorKey><VoucherDate>1.1.2025</VoucherDate>"
                "<VoucherLine><LineSum>1,2,3</LineSum><AccountNumber>1</AccountNumber></VoucherLine>"
                "</Voucher></Vouchers>"
            ),
            "VoucherLine[0]/LineSum is not a number",
        ),
        (
            root(
                "<Vouchers><Voucher><NetvisorKey>1</NetvisorKey><VoucherDate>1.1.2025</VoucherDate>"
                "<VoucherLine><LineSum>1,00</LineSum></VoucherLine></Voucher></Vouchers>"
            ),
            "VoucherLine[0]/AccountNumber is missing",
        ),
        (
            root("<Vouchers><Voucher><NetvisorKey>1</NetvisorKey></Voucher></Vouchers>"),
            "VoucherDate is missing",
        ),
    ],
    "post_journal": [(root("<Replies/>"), "Replies/InsertedDataIdentifier is missing")],
}


def _break(routes: Any, name: str, body: bytes) -> None:
    _call, method, resource, _good = METHODS[name]
    routes.add(method, f"/{resource}", xml(body))


async def _refused(routes: Any, name: str) -> UnexpectedResponse:
    call, method, resource, _good = METHODS[name]
    async with connector(routes) as conn:
        with pytest.raises(ConnectorError) as caught:
            await call(conn)
    error = caught.value
    assert isinstance(error, UnexpectedResponse), repr(error)
    assert error.vendor == "netvisor"
    assert error.endpoint == f"{method} {resource}"
    assert error.endpoint in str(error)
    return error


@pytest.mark.parametrize("name", sorted(METHODS))
@pytest.mark.parametrize("kind", ["empty", "truncated", "wrong type", "foreign root"])
async def test_malformed_bodies_raise_unexpected_response(
    routes: Any, name: str, kind: str
) -> None:
    published(routes)
    good = METHODS[name][3]
    body = {
        "empty": b"",
        "truncated": good[: len(good) * 2 // 3],
        "wrong type": b'{"Status": "OK"}',
        "foreign root": b"<html><body>Service temporarily moved</body></html>",
    }[kind]
    _break(routes, name, body)
    error = await _refused(routes, name)
    assert error.detail


@pytest.mark.parametrize(
    ("name", "body", "detail"),
    [(name, body, detail) for name, cases in WRONG.items() for body, detail in cases],
)
async def test_missing_elements_bad_values_and_unknown_enums_are_named(
    routes: Any, name: str, body: bytes, detail: str
) -> None:
    published(routes)
    _break(routes, name, body)
    error = await _refused(routes, name)
    assert detail in error.detail
