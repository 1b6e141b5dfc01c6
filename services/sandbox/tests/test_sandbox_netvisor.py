"""The Netvisor stand-in refuses what Netvisor refuses (plain httpx over real HTTP).

Requests are signed with the connector module's signer; the MAC itself is also checked
against a value computed here from the documented recipe, so signer and sandbox cannot
agree on a wrong MAC.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import hmac
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from decimal import Decimal

import defusedxml.ElementTree as SafeET
import httpx
import pytest
from pydantic import SecretStr

from ledgerlink.connectors.netvisor import NetvisorSettings, compute_mac, sign_headers
from ledgerlink.sandbox.config import RateLimitSettings, SandboxConfig
from ledgerlink.sandbox.faults import FaultPlan
from ledgerlink.sandbox.testing import RunningSandbox, running_sandbox
from ledgerlink.sandbox.vendors import netvisor as nv
from ledgerlink.sandbox.world import Tenant, World

CUSTOMER_KEY = "customer-key-123"
PARTNER_KEY = "partner-key-456"
PARTNER_ID = "LEDGERLINK_TEST"
LOCK_DATE = dt.date(2025, 3, 31)  # the generator's default lock date for last_year 2025


@dataclass
class Env:
    sandbox: RunningSandbox
    http: httpx.AsyncClient
    tenant: Tenant
    settings: NetvisorSettings


def settings_for(sandbox: RunningSandbox, tenant: Tenant) -> NetvisorSettings:
    return NetvisorSettings(
        sender="Ledgerlink tests",
        customer_id=tenant.tenant_id,
        partner_id=PARTNER_ID,
        customer_key=SecretStr(CUSTOMER_KEY),
        partner_key=SecretStr(PARTNER_KEY),
        organisation_id=tenant.company.business_id,
        base_url=sandbox.url("/netvisor"),
    )


@pytest.fixture
async def env() -> AsyncIterator[Env]:
    config = SandboxConfig(
        rate_limits={"netvisor": RateLimitSettings(rate_per_second=1000, burst=1000)}
    )
    world = World(config)
    tenant = world.add_tenant(
        "netvisor",
        lines=120,
        credentials={
            "customer_key": CUSTOMER_KEY,
            "partner_id": PARTNER_ID,
            "partner_key": PARTNER_KEY,
        },
    )
    async with (
        running_sandbox(world=world, vendors=("netvisor",)) as sandbox,
        httpx.AsyncClient() as http,
    ):
        yield Env(sandbox, http, tenant, settings_for(sandbox, tenant))


async def call(
    env: Env,
    method: str,
    resource: str,
    *,
    params: Mapping[str, str] | None = None,
    body: bytes | None = None,
    settings: NetvisorSettings | None = None,
    now: dt.datetime | None = None,
    transaction_id: str | None = None,
    use_status_codes: bool = True,
    header_changes: Mapping[str, str | None] | None = None,
) -> httpx.Response:
    """A request signed as the connector signs, with optional tampering."""
    request = env.http.build_request(
        method,
        f"{env.settings.base_url}/{resource}",
        params=dict(params or {}),
        content=body,
        headers={"Content-Type": "text/xml; charset=ISO-8859-15"} if body is not None else None,
    )
    headers = sign_headers(
        settings or env.settings, str(request.url), now=now, transaction_id=transaction_id
    )
    if not use_status_codes:
        del headers["X-Netvisor-Authentication-UseHTTPResponseStatusCodes"]
    for name, value in (header_changes or {}).items():
        if value is None:
            headers.pop(name, None)
        else:
            headers[name] = value
    request.headers.update(headers)
    return await env.http.send(request)


def parse(response: httpx.Response) -> ET.Element:
    root: ET.Element = SafeET.fromstring(response.content)
    return root


def status_of(response: httpx.Response) -> list[str]:
    return [(element.text or "") for element in parse(response).findall("ResponseStatus/Status")]


def assert_failed(response: httpx.Response, category: str, status: int) -> str:
    statuses = status_of(response)
    assert response.status_code == status, (response.status_code, statuses)
    assert statuses[0] == "FAILED"
    assert statuses[1].startswith(f"{category} :: "), statuses
    return statuses[1]


def voucher_xml(
    *,
    date: str = "2025-06-30",
    lines: tuple[tuple[str, str], ...] = (("100.00", "5000"), ("-100.00", "2960")),
    description: str = "Palkat kesäkuu €",
    voucher_class: str = "Muistiotosite",
    number: str | None = None,
    dimensions: Mapping[str, str] | None = None,
    swap_date_and_mode: bool = False,
    vouchers: int = 1,
) -> bytes:
    """An accounting.nv body, elements in DTD order unless told otherwise."""
    root = ET.Element("root")
    for _ in range(vouchers):
        voucher = ET.SubElement(root, "voucher")
        mode = ET.Element("calculationmode")
        mode.text = "net"
        date_element = ET.Element("voucherdate", {"format": "ansi"})
        date_element.text = date
        voucher.extend([date_element, mode] if swap_date_and_mode else [mode, date_element])
        if number is not None:
            ET.SubElement(voucher, "number").text = number
        ET.SubElement(voucher, "description").text = description
        ET.SubElement(voucher, "voucherclass").text = voucher_class
        for amount, account in lines:
            line = ET.SubElement(voucher, "voucherline")
            ET.SubElement(line, "linesum", {"type": "net"}).text = amount
            ET.SubElement(line, "description").text = description
            ET.SubElement(line, "accountnumber").text = account
            ET.SubElement(line, "vatpercent", {"vatcode": "NONE"}).text = "0"
            for name, item in (dimensions or {}).items():
                dimension = ET.SubElement(line, "dimension")
                ET.SubElement(dimension, "dimensionname").text = name
                ET.SubElement(dimension, "dimensionitem").text = item
    text = '<?xml version="1.0" encoding="ISO-8859-15"?>' + ET.tostring(root, encoding="unicode")
    return text.encode("iso-8859-15")


# --------------------------------------------------------------------------- the MAC


def test_mac_follows_the_documented_recipe() -> None:
    url = "https://integration.netvisor.fi/accountingledger.nv?startdate=2025-01-01"
    fields = {
        "url": url,
        "sender": "Ledgerlink",
        "customer_id": "C1",
        "timestamp": "2025-01-31 12:00:00.123",
        "language": "FI",
        "organisation_id": "1234567-8",
        "transaction_id": "tx-1",
        "timestamp_unix": "1738324800",
        "customer_key": "ck",
        "partner_key": "pk",
    }
    message = "&".join(fields.values()).encode("iso-8859-1")
    expected = hmac.new(b"ck&pk", message, hashlib.sha256).hexdigest()
    assert compute_mac(**fields) == expected
    headers = {
        "X-Netvisor-Authentication-Sender": "Ledgerlink",
        "X-Netvisor-Authentication-CustomerId": "C1",
        "X-Netvisor-Authentication-Timestamp": "2025-01-31 12:00:00.123",
        "X-Netvisor-Interface-Language": "FI",
        "X-Netvisor-Organisation-ID": "1234567-8",
        "X-Netvisor-Authentication-TransactionId": "tx-1",
        "X-Netvisor-Authentication-TimestampUnix": "1738324800",
    }
    assert nv.netvisor_mac(url=url, headers=headers, customer_key="ck", partner_key="pk") == (
        expected
    )
    assert expected == expected.lower()


# --------------------------------------------------------------------------- authentication


async def test_signed_request_is_answered_in_finnish_formats(env: Env) -> None:
    response = await call(env, "GET", "accountingledger.nv", params={
        "startdate": "2024-01-01", "enddate": "2024-12-31"})  # fmt: skip
    assert response.status_code == 200
    assert response.headers["content-type"].lower() == "text/xml; charset=iso-8859-15"
    assert status_of(response)[0] == "OK"
    first = parse(response).find("Vouchers/Voucher")
    assert first is not None
    expected = env.tenant.company.vouchers[0]
    assert first.get("Status") == expected.status
    assert first.findtext("VoucherDate") == (
        f"{expected.date.day}.{expected.date.month}.{expected.date.year}"
    )
    line_sum = first.findtext("VoucherLine/LineSum") or ""
    assert "," in line_sum
    assert "." not in line_sum


@pytest.mark.parametrize(
    "header",
    [
        "X-Netvisor-Authentication-Sender",
        "X-Netvisor-Authentication-TransactionId",
        "X-Netvisor-Authentication-TimestampUnix",
        "X-Netvisor-Authentication-MAC",
        "X-Netvisor-Organisation-ID",
    ],
)
async def test_missing_header_fails_authentication(env: Env, header: str) -> None:
    response = await call(env, "GET", "accountlist.nv", header_changes={header: None})
    assert header in assert_failed(response, "AUTHENTICATION_FAILED", 401)


async def test_wrong_key_fails_authentication(env: Env) -> None:
    wrong = env.settings.model_copy(update={"customer_key": SecretStr("not-the-key")})
    response = await call(env, "GET", "accountlist.nv", settings=wrong)
    assert "MAC" in assert_failed(response, "AUTHENTICATION_FAILED", 401)


async def test_mac_covers_the_query(env: Env) -> None:
    request = env.http.build_request(
        "GET", f"{env.settings.base_url}/accountingledger.nv", params={"netvisorkey": "1"}
    )
    request.headers.update(sign_headers(env.settings, str(request.url)))
    # The same headers on a different query: the MAC no longer matches.
    request.url = request.url.copy_with(params={"netvisorkey": "2"})
    response = await env.http.send(request)
    assert_failed(response, "AUTHENTICATION_FAILED", 401)


async def test_sha256_without_hmac_is_refused(env: Env) -> None:
    response = await call(
        env,
        "GET",
        "accountlist.nv",
        header_changes={"X-Netvisor-Authentication-MACHashCalculationAlgorithm": "SHA256"},
    )
    assert_failed(response, "AUTHENTICATION_FAILED", 401)


@pytest.mark.parametrize(
    ("field", "value"),
    [("partner_id", "SOMEONE_ELSE"), ("organisation_id", "1234567-8"), ("customer_id", "42")],
)
async def test_wrong_identity_fails_authentication(env: Env, field: str, value: str) -> None:
    response = await call(
        env, "GET", "accountlist.nv", settings=env.settings.model_copy(update={field: value})
    )
    assert_failed(response, "AUTHENTICATION_FAILED", 401)


async def test_reused_transaction_id_is_not_unique(env: Env) -> None:
    first = await call(env, "GET", "accountlist.nv", transaction_id="same-id")
    assert first.status_code == 200
    again = await call(env, "GET", "accountlist.nv", transaction_id="same-id")
    assert_failed(again, "REQUEST_NOT_UNIQUE", 409)


async def test_timestamp_tolerance(env: Env) -> None:
    now = dt.datetime.now(dt.UTC)
    near = await call(env, "GET", "accountlist.nv", now=now - dt.timedelta(minutes=10))
    assert near.status_code == 200
    stale = await call(env, "GET", "accountlist.nv", now=now - dt.timedelta(minutes=20))
    assert "timestamp" in assert_failed(stale, "AUTHENTICATION_FAILED", 401)
    ahead = await call(env, "GET", "accountlist.nv", now=now + dt.timedelta(minutes=20))
    assert_failed(ahead, "AUTHENTICATION_FAILED", 401)


async def test_customer_without_interface_rights(env: Env) -> None:
    env.tenant.api_enabled = False
    response = await call(env, "GET", "accountlist.nv")
    assert_failed(response, "SERVICE_ACCESS_ERROR", 403)


async def test_failures_are_200_without_the_status_code_flag(env: Env) -> None:
    env.tenant.api_enabled = False
    response = await call(env, "GET", "accountlist.nv", use_status_codes=False)
    assert_failed(response, "SERVICE_ACCESS_ERROR", 200)


async def test_one_request_at_a_time_per_customer(env: Env) -> None:
    # The first request holds the customer's slot while its latency runs.
    env.sandbox.world.faults.set(FaultPlan(vendor="netvisor", latency_ms=600))
    first, second = await asyncio.gather(
        call(env, "GET", "accountlist.nv"), call(env, "GET", "accountlist.nv")
    )
    codes = sorted([first.status_code, second.status_code])
    assert codes == [200, 429]
    refused = first if first.status_code == 429 else second
    assert "one request at a time" in assert_failed(refused, "TECHNICAL_ERROR", 429)
    assert refused.headers["Retry-After"] == "1"
    env.sandbox.world.faults.clear()
    assert (await call(env, "GET", "accountlist.nv")).status_code == 200


# --------------------------------------------------------------------------- faults


async def test_faults_are_rendered_as_netvisor_errors(env: Env) -> None:
    faults = env.sandbox.world.faults
    faults.set(FaultPlan(vendor="netvisor", storm_429=1, retry_after_seconds=2))
    throttled = await call(env, "GET", "accountlist.nv")
    assert_failed(throttled, "TECHNICAL_ERROR", 429)
    assert throttled.headers["Retry-After"] == "2"
    faults.set(FaultPlan(vendor="netvisor", error_rate=1.0, error_status=503))
    assert_failed(await call(env, "GET", "accountlist.nv"), "SYSTEM_MAINTANANCE", 503)
    faults.set(FaultPlan(vendor="netvisor", error_rate=1.0, error_status=500))
    # 5xx keep their status even for legacy clients: they come from the front, not the app.
    response = await call(env, "GET", "accountlist.nv", use_status_codes=False)
    assert_failed(response, "TECHNICAL_ERROR", 500)


# --------------------------------------------------------------------------- reading


async def test_ledger_needs_a_filter(env: Env) -> None:
    response = await call(env, "GET", "accountingledger.nv")
    assert_failed(response, "INVALID_DATA", 400)
    half = await call(env, "GET", "accountingledger.nv", params={"startdate": "2024-01-01"})
    assert_failed(half, "INVALID_DATA", 400)


async def test_ledger_key_list_limit(env: Env) -> None:
    keys = ",".join(str(key) for key in range(1, 502))
    too_many = await call(env, "GET", "accountingledger.nv", params={"netvisorkeylist": keys})
    assert "500" in assert_failed(too_many, "INVALID_DATA_SIZE", 413)
    keys = ",".join(str(key) for key in range(1, 501))
    response = await call(env, "GET", "accountingledger.nv", params={"netvisorkeylist": keys})
    assert response.status_code == 200
    assert len(parse(response).findall("Vouchers/Voucher")) == len(env.tenant.company.vouchers)


async def test_ledger_date_window_is_inclusive(env: Env) -> None:
    company = env.tenant.company
    day = company.vouchers[5].date
    response = await call(
        env,
        "GET",
        "accountingledger.nv",
        params={"startdate": day.isoformat(), "enddate": day.isoformat()},
    )
    keys = {int(v.findtext("NetvisorKey") or 0) for v in parse(response).iter("Voucher")}
    assert keys == {v.id for v in company.vouchers if v.date == day}


async def test_modified_window_returns_invalidated_and_edited_vouchers(env: Env) -> None:
    company = env.tenant.company
    today = dt.datetime.now(dt.UTC).date().isoformat()
    # Published: voucherstatus defaults to 2 (valid only); 1 returns every status (changed:
    # the sandbox used to return invalidated vouchers without it).
    params = {"lastmodifiedstart": today, "lastmodifiedend": today, "voucherstatus": "1"}
    assert (
        parse(await call(env, "GET", "accountingledger.nv", params=params)).find("Vouchers/Voucher")
        is None
    )
    company.invalidate_voucher(3)
    company.edit_voucher(4)
    response = await call(env, "GET", "accountingledger.nv", params=params)
    found = {
        v.findtext("NetvisorKey"): (v.get("Status"), v.findtext("VoucherDescription"))
        for v in parse(response).iter("Voucher")
    }
    assert found.keys() == {"3", "4"}
    assert found["3"][0] == "invalidated"
    assert (found["4"][1] or "").endswith("(edited)")
    default = {k: v for k, v in params.items() if k != "voucherstatus"}
    valid_only = parse(await call(env, "GET", "accountingledger.nv", params=default))
    assert [v.findtext("NetvisorKey") for v in valid_only.iter("Voucher")] == ["4"]
    removed = parse(
        await call(env, "GET", "accountingledger.nv", params={**default, "voucherstatus": "3"})
    )
    assert [v.findtext("NetvisorKey") for v in removed.iter("Voucher")] == ["3"]
    since = await call(
        env, "GET", "accountingledger.nv", params={"changedsince": today, "voucherstatus": "1"}
    )
    assert len(parse(since).findall("Vouchers/Voucher")) == 2


async def test_master_data_resources(env: Env) -> None:
    company = env.tenant.company
    # Published nesting (changed from AccountList/Account): AccountList/Accounts/Account,
    # with account-group headings (AccountType accountgroup) among the accounts.
    listed = parse(await call(env, "GET", "accountlist.nv")).findall("AccountList/Accounts/Account")
    groups = [a for a in listed if a.findtext("AccountType") == "accountgroup"]
    accounts = [a for a in listed if a.findtext("AccountType") == "account"]
    assert groups
    assert len(groups) + len(accounts) == len(listed)
    group_keys = {g.findtext("NetvisorKey") for g in groups}
    assert all(a.findtext("FatherNetvisorKey") in group_keys for a in accounts)
    assert [a.findtext("Number") for a in accounts] == [a.number for a in company.accounts]
    inactive = {a.findtext("Number") for a in accounts if a.findtext("IsActive") == "0"}
    assert inactive == {a.number for a in company.accounts if not a.active}

    periods = parse(await call(env, "GET", "accountingperiodlist.nv"))
    assert periods.findtext(
        "AccountingPeriodList/PeriodLockInformation/AccountingPeriodLockDate"
    ) == ("31.3.2025")
    assert [p.findtext("BeginDate") for p in periods.findall("AccountingPeriodList/Period")] == [
        "1.1.2024",
        "1.1.2025",
    ]

    dimensions = parse(await call(env, "GET", "dimensionlist.nv"))
    names = [d.findtext("Name") for d in dimensions.findall("DimensionNameList/DimensionName")]
    assert names == [d.name for d in company.dimensions]

    balances = parse(
        await call(
            env,
            "GET",
            "accountbalance.nv",
            params={"balancedates": "2025-01-31,2025-12-31", "intervaltype": "3"},
        )
    )
    accounts = balances.findall("AccountBalances/Account")
    dates = [b.get("Date") for b in accounts[0].findall("AccountBalance")]
    assert len(dates) == 12  # every month end of 2025
    assert dates[0] == "2025-01-31"
    assert dates[-1] == "2025-12-31"
    total = sum(
        Decimal((b.findtext("Balance") or "0").replace(",", "."))
        for account in accounts
        for b in account.findall("AccountBalance")
        if b.get("Date") == "2025-12-31"
    )
    assert total == 0  # every valid voucher balances, so the books do too


# --------------------------------------------------------------------------- writing


async def test_posting_a_voucher(env: Env) -> None:
    response = await call(env, "POST", "accounting.nv", body=voucher_xml(
        dimensions={"Kustannuspaikka": "100"}))  # fmt: skip
    assert response.status_code == 200, status_of(response)
    key = parse(response).findtext("Replies/InsertedDataIdentifier")
    assert key is not None
    stored = env.tenant.company.voucher(int(key))
    assert stored.description == "Palkat kesäkuu €"
    assert stored.lines[0].dimensions == {"cost_centre": "100"}
    read = await call(env, "GET", "accountingledger.nv", params={"netvisorkey": key})
    assert b"\xa4" in read.content  # the euro sign, as ISO-8859-15 encodes it
    assert parse(read).findtext("Vouchers/Voucher/VoucherDescription") == "Palkat kesäkuu €"


async def test_element_order_is_enforced(env: Env) -> None:
    response = await call(env, "POST", "accounting.nv", body=voucher_xml(swap_date_and_mode=True))
    message = assert_failed(response, "INVALID_DATA", 400)
    assert "calculationmode" in message


async def test_one_voucher_per_request(env: Env) -> None:
    response = await call(env, "POST", "accounting.nv", body=voucher_xml(vouchers=2))
    assert "one voucher" in assert_failed(response, "INVALID_DATA", 400)


@pytest.mark.parametrize(
    ("lines", "expected"),
    [
        ((("100.00", "5000"), ("-100.00", "9999")), "9999 does not exist"),
        ((("100.00", "7390"), ("-100.00", "2960")), "7390 is not in use"),
        ((("100.00", "5000"), ("-99.99", "2960")), "does not balance"),
        ((("100.001", "5000"), ("-100.001", "2960")), "two decimals"),
    ],
)
async def test_invalid_vouchers(
    env: Env, lines: tuple[tuple[str, str], ...], expected: str
) -> None:
    count = len(env.tenant.company.vouchers)
    response = await call(env, "POST", "accounting.nv", body=voucher_xml(lines=lines))
    assert expected in assert_failed(response, "INVALID_DATA", 400)
    assert len(env.tenant.company.vouchers) == count


@pytest.mark.parametrize(
    ("dimensions", "expected"),
    [({"Kustannuspaikka": "999"}, "does not exist"), ({"Kustannuspaikka": "900"}, "hidden"),
     ({"Osasto": "100"}, "does not exist")],
)  # fmt: skip
async def test_unknown_dimension_items(env: Env, dimensions: dict[str, str], expected: str) -> None:
    response = await call(env, "POST", "accounting.nv", body=voucher_xml(dimensions=dimensions))
    assert expected in assert_failed(response, "INVALID_DATA", 400)


async def test_period_lock(env: Env) -> None:
    on_lock = await call(env, "POST", "accounting.nv", body=voucher_xml(date=LOCK_DATE.isoformat()))
    assert_failed(on_lock, "PERIOD_LOCK", 422)
    after = LOCK_DATE + dt.timedelta(days=1)
    response = await call(env, "POST", "accounting.nv", body=voucher_xml(date=after.isoformat()))
    assert response.status_code == 200
    outside = await call(env, "POST", "accounting.nv", body=voucher_xml(date="2031-01-01"))
    assert "no accounting period" in assert_failed(outside, "INVALID_DATA", 400)


async def test_unknown_voucher_class(env: Env) -> None:
    response = await call(env, "POST", "accounting.nv", body=voucher_xml(voucher_class="Keksitty"))
    assert "voucherclass" in assert_failed(response, "INVALID_DATA", 400)


async def test_duplicate_voucher_number(env: Env) -> None:
    first = await call(env, "POST", "accounting.nv", body=voucher_xml(number="900"))
    assert first.status_code == 200
    again = await call(env, "POST", "accounting.nv", body=voucher_xml(number="900"))
    assert_failed(again, "DUPLICATE_DATA", 409)


async def test_editing_a_voucher(env: Env) -> None:
    posted = await call(env, "POST", "accounting.nv", body=voucher_xml())
    key = parse(posted).findtext("Replies/InsertedDataIdentifier") or ""
    edited = await call(
        env,
        "POST",
        "accountingedit.nv",
        params={"netvisorkey": key},
        body=voucher_xml(description="Korjattu", lines=(("250,00", "5000"), ("-250,00", "2960"))),
    )
    assert edited.status_code == 200, status_of(edited)
    voucher = env.tenant.company.voucher(int(key))
    assert voucher.description == "Korjattu"
    assert voucher.version == 2
    locked = next(v for v in env.tenant.company.vouchers if v.date <= LOCK_DATE)
    refused = await call(
        env, "POST", "accountingedit.nv", params={"netvisorkey": str(locked.id)}, body=voucher_xml()
    )
    assert_failed(refused, "PERIOD_LOCK", 422)


def invalidation_xml(keys: list[int]) -> bytes:
    root = ET.Element("root")
    element = ET.SubElement(root, "invalidatevouchers")
    for key in keys:
        ET.SubElement(element, "netvisorkey").text = str(key)
    return bytes(ET.tostring(root, encoding="iso-8859-15"))


async def test_invalidating_vouchers(env: Env) -> None:
    company = env.tenant.company
    open_ids = [v.id for v in company.vouchers if v.date > LOCK_DATE and v.status == "valid"]
    too_many = await call(
        env, "POST", "invalidatevouchers.nv", body=invalidation_xml(list(range(1, 102)))
    )
    assert "100" in assert_failed(too_many, "INVALID_DATA_SIZE", 413)
    done = await call(env, "POST", "invalidatevouchers.nv", body=invalidation_xml(open_ids[:2]))
    assert done.status_code == 200
    assert [company.voucher(i).status for i in open_ids[:2]] == ["invalidated", "invalidated"]
    locked = next(v.id for v in company.vouchers if v.date <= LOCK_DATE)
    refused = await call(
        env, "POST", "invalidatevouchers.nv", body=invalidation_xml([open_ids[2], locked])
    )
    assert_failed(refused, "PERIOD_LOCK", 422)
    assert company.voucher(open_ids[2]).status == "valid"  # all or nothing
