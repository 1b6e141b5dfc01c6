"""The Netvisor connector against the Netvisor sandbox over real HTTP."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from ledgerlink.connectors import netvisor as netvisor_module
from ledgerlink.connectors.errors import (
    AccessNotEnabled,
    AuthenticationFailed,
    ConnectorError,
    DuplicateData,
    InvalidData,
    PeriodLocked,
    RateLimited,
    RequestNotUnique,
    VendorUnavailable,
)
from ledgerlink.connectors.http import RetryPolicy
from ledgerlink.connectors.models import JournalLine, JournalPosting, SyncCursor, Voucher
from ledgerlink.connectors.netvisor import (
    NetvisorConnector,
    NetvisorSettings,
    build_voucher_xml,
    parse_fi_date,
    parse_fi_decimal,
)
from ledgerlink.sandbox.config import RateLimitSettings, SandboxConfig
from ledgerlink.sandbox.data import CompanyData, LineData, generate_company
from ledgerlink.sandbox.faults import FaultPlan
from ledgerlink.sandbox.testing import RunningSandbox, running_sandbox
from ledgerlink.sandbox.world import Tenant, World

CUSTOMER_KEY = "customer-key-never-logged"
PARTNER_KEY = "partner-key-never-logged"
PARTNER_ID = "LEDGERLINK_TEST"
LOCK_DATE = dt.date(2025, 3, 31)
FAST_RETRY = RetryPolicy(attempts=6, initial_backoff_seconds=0.01, jitter_seconds=0.01)


class RecordingTransport(httpx.AsyncBaseTransport):
    """The real HTTP transport, remembering every attempt: headers, status, failures."""

    def __init__(self) -> None:
        self.inner = httpx.AsyncHTTPTransport()
        self.attempts: list[httpx.Headers] = []
        self.methods: list[str] = []
        self.statuses: list[int] = []
        self.failures: list[str] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.attempts.append(httpx.Headers(request.headers))
        self.methods.append(request.method)
        try:
            response = await self.inner.handle_async_request(request)
        except httpx.TransportError as exc:
            self.failures.append(type(exc).__name__)
            raise
        self.statuses.append(response.status_code)
        return response

    async def aclose(self) -> None:
        await self.inner.aclose()

    @property
    def transaction_ids(self) -> list[str]:
        return [h["X-Netvisor-Authentication-TransactionId"] for h in self.attempts]

    @property
    def macs(self) -> list[str]:
        return [h["X-Netvisor-Authentication-MAC"] for h in self.attempts]


@dataclass
class Env:
    sandbox: RunningSandbox
    world: World
    tenant: Tenant
    transports: list[RecordingTransport] = field(default_factory=list)
    waits: list[float] = field(default_factory=list)

    def settings(self, **changes: Any) -> NetvisorSettings:
        values: dict[str, Any] = {
            "sender": "Ledgerlink tests",
            "customer_id": self.tenant.tenant_id,
            "partner_id": PARTNER_ID,
            "customer_key": SecretStr(CUSTOMER_KEY),
            "partner_key": SecretStr(PARTNER_KEY),
            "organisation_id": self.tenant.company.business_id,
            "company_name": self.tenant.company.name,
            "base_url": self.sandbox.url("/netvisor"),
        }
        values.update(changes)
        return NetvisorSettings(**values)

    def connector(self, **changes: Any) -> NetvisorConnector:
        transport = RecordingTransport()
        self.transports.append(transport)

        async def sleep(seconds: float) -> None:
            # Waits are recorded (that is the slowing down) and kept short in the test.
            self.waits.append(seconds)
            await asyncio.sleep(min(seconds, 0.05))

        return NetvisorConnector(
            self.settings(**changes), retry=FAST_RETRY, transport=transport, sleep=sleep
        )

    def fault(self, **plan: Any) -> None:
        self.world.faults.set(FaultPlan(vendor="netvisor", **plan))


def credentials() -> dict[str, str]:
    return {"customer_key": CUSTOMER_KEY, "partner_id": PARTNER_ID, "partner_key": PARTNER_KEY}


async def start(company: CompanyData | None = None, **tenant: Any) -> AsyncIterator[Env]:
    config = SandboxConfig(
        rate_limits={"netvisor": RateLimitSettings(rate_per_second=1000, burst=1000)}
    )
    world = World(config)
    if company is None:
        company = generate_company(11, lines=150)
    added = world.add_tenant("netvisor", company=company, credentials=credentials(), **tenant)
    async with running_sandbox(world=world, vendors=("netvisor",)) as sandbox:
        yield Env(sandbox, world, added)


@pytest.fixture
async def env() -> AsyncIterator[Env]:
    async for value in start():
        yield value


async def sync(
    connector: NetvisorConnector, cursor: SyncCursor | None = None
) -> tuple[list[Voucher], SyncCursor, list[tuple[Voucher, ...]]]:
    """Read pages until has_more is false: all vouchers, the final cursor, the pages."""
    pages: list[tuple[Voucher, ...]] = []
    while True:
        page = await connector.read_vouchers(cursor)
        pages.append(page.vouchers)
        cursor = page.cursor
        if not page.has_more:
            return [v for vouchers in pages for v in vouchers], cursor, pages


def by_id(vouchers: list[Voucher]) -> dict[str, Voucher]:
    return {v.external_id: v for v in vouchers}


def posting(
    *,
    date: dt.date = dt.date(2025, 6, 30),
    period: dt.date = dt.date(2025, 6, 1),
    account: str = "5000",
    amounts: tuple[Decimal, Decimal] = (Decimal("1234.56"), Decimal("-1234.56")),
) -> JournalPosting:
    return JournalPosting(
        date=date,
        period=period,
        description="Palkat kesäkuu \u2013 Åke & Söderström €",  # \u2013 is not in 8859-15
        reference="RUN-2025-06",
        lines=(
            JournalLine(
                account=account,
                amount=amounts[0],
                description="Palkat",
                cost_centre="100",
                cost_unit="CU01",
            ),
            JournalLine(account="2960", amount=amounts[1], description="Nettopalkat"),
        ),
    )


# --------------------------------------------------------------------------- reading


async def test_reads_master_data(env: Env) -> None:
    company = env.tenant.company
    async with env.connector() as connector:
        companies = await connector.list_companies()
        accounts = await connector.read_accounts()
        dimensions = await connector.read_dimensions()
        periods = await connector.read_periods()
    assert [(c.external_id, c.business_id, c.name) for c in companies] == [
        (env.tenant.tenant_id, company.business_id, company.name)
    ]
    assert [(a.number, a.name, a.active) for a in accounts] == [
        (a.number, a.name, a.active) for a in company.accounts
    ]
    assert {a.number: a.type for a in accounts} == {a.number: a.type for a in company.accounts}
    assert [(d.name, d.kind) for d in dimensions] == [(d.name, d.kind) for d in company.dimensions]
    assert [(o.code, o.active) for o in dimensions[0].objects] == [
        (o.code, o.active) for o in company.dimensions[0].objects
    ]
    expected = [(p.start, p.end, p.closed) for y in company.fiscal_years for p in y.periods]
    assert [(p.start, p.end, p.status == "closed") for p in periods] == expected


async def test_full_sync_reads_every_voucher(env: Env) -> None:
    company = env.tenant.company
    async with env.connector() as connector:
        vouchers, _, pages = await sync(connector)
    assert len(vouchers) == len(company.vouchers)
    read = by_id(vouchers)
    for expected in company.vouchers:
        voucher = read[str(expected.id)]
        assert voucher.date == expected.date
        assert voucher.status == expected.status
        assert voucher.description == expected.description
        assert [(line.account, line.amount) for line in voucher.lines] == [
            (line.account, line.amount) for line in expected.lines
        ]
    names: dict[str, str] = {d.kind: d.name for d in company.dimensions}
    line = company.vouchers[0].lines[1]
    assert read[str(company.vouchers[0].id)].lines[1].dimensions == {
        names[kind]: code for kind, code in line.dimensions.items()
    }
    # 24 months with vouchers + the incremental read that ends the sync.
    assert len(pages) == 25


# --------------------------------------------------------------------------- writing


async def test_posts_a_journal_and_reads_it_back(env: Env) -> None:
    async with env.connector() as connector:
        _, cursor, _ = await sync(connector)
        posted = await connector.post_journal(posting())
        changed, _, _ = await sync(connector, cursor)
    stored = env.tenant.company.voucher(int(posted.external_id))
    assert stored.date == dt.date(2025, 6, 30)
    assert stored.series == "MU"  # the Muistiotosite class
    assert stored.description == "Palkat kesäkuu \u2013 Åke & Söderström € (RUN-2025-06)"
    assert stored.lines[0].dimensions == {"cost_centre": "100", "cost_unit": "CU01"}
    assert [v.external_id for v in changed] == [posted.external_id]
    assert changed[0].description == stored.description
    assert changed[0].lines[0].amount == Decimal("1234.56")
    assert changed[0].lines[0].dimensions == {"Kustannuspaikka": "100", "Kustannusyksikkö": "CU01"}


async def test_correction_is_dated_in_the_period_it_corrects(env: Env) -> None:
    async with env.connector() as connector:
        posted = await connector.post_journal(
            posting(date=dt.date(2025, 8, 25), period=dt.date(2025, 6, 1))
        )
    assert env.tenant.company.voucher(int(posted.external_id)).date == dt.date(2025, 6, 30)


# --------------------------------------------------------------------------- errors


async def test_authentication_failed(env: Env) -> None:
    async with env.connector(partner_key=SecretStr("wrong")) as connector:
        with pytest.raises(AuthenticationFailed) as caught:
            await connector.read_accounts()
    assert caught.value.vendor_code == "AUTHENTICATION_FAILED"
    assert caught.value.status == 401
    assert "MAC" in (caught.value.vendor_message or "")


async def test_service_access_error(env: Env) -> None:
    env.tenant.api_enabled = False
    async with env.connector() as connector:
        with pytest.raises(AccessNotEnabled) as caught:
            await connector.list_companies()
    assert caught.value.vendor_code == "SERVICE_ACCESS_ERROR"
    assert "interface resources" in str(caught.value)


async def test_invalid_data(env: Env) -> None:
    async with env.connector() as connector:
        with pytest.raises(InvalidData) as caught:
            await connector.post_journal(posting(account="9999"))
        with pytest.raises(InvalidData) as unbalanced:
            await connector.post_journal(posting(amounts=(Decimal("10"), Decimal("-9"))))
    assert type(caught.value) is InvalidData
    assert caught.value.vendor_code == "INVALID_DATA"
    assert "9999 does not exist" in (caught.value.vendor_message or "")
    assert "does not balance" in (unbalanced.value.vendor_message or "")


async def test_period_lock(env: Env) -> None:
    async with env.connector() as connector:
        with pytest.raises(PeriodLocked) as caught:
            await connector.post_journal(posting(date=LOCK_DATE, period=dt.date(2025, 3, 1)))
    assert caught.value.vendor_code == "PERIOD_LOCK"
    assert "locked" in (caught.value.vendor_message or "")


async def test_invalid_data_size(env: Env) -> None:
    body = (
        b"<root><invalidatevouchers>"
        + b"".join(f"<netvisorkey>{key}</netvisorkey>".encode() for key in range(1, 102))
        + b"</invalidatevouchers></root>"
    )
    async with env.connector() as connector:
        with pytest.raises(InvalidData) as caught:
            await connector.send("POST", "invalidatevouchers.nv", body=body)
    assert caught.value.vendor_code == "INVALID_DATA_SIZE"


async def test_duplicate_data(env: Env) -> None:
    body = build_voucher_xml(
        voucher_date=dt.date(2025, 6, 30),
        description="Numbered",
        voucher_class="Muistiotosite",
        lines=[(Decimal("5"), "", "5000", {}), (Decimal("-5"), "", "2960", {})],
        number=777,
    )
    async with env.connector() as connector:
        await connector.send("POST", "accounting.nv", body=body)
        with pytest.raises(DuplicateData) as caught:
            await connector.send("POST", "accounting.nv", body=body)
    assert caught.value.vendor_code == "DUPLICATE_DATA"


async def test_request_not_unique(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    fixed = uuid.UUID(int=42)
    monkeypatch.setattr("uuid.uuid4", lambda: fixed)
    async with env.connector() as connector:
        await connector.read_accounts()
        with pytest.raises(RequestNotUnique) as caught:
            await connector.read_accounts()
    assert caught.value.vendor_code == "REQUEST_NOT_UNIQUE"
    assert len(env.transports[0].attempts) == 2  # never retried with the same id


async def test_system_maintenance_and_technical_error(env: Env) -> None:
    async with env.connector() as connector:
        await connector.read_dimensions()  # what a posting needs, read before the outage
        env.fault(error_rate=1.0, error_status=503)
        with pytest.raises(VendorUnavailable) as maintenance:
            await connector.read_accounts()
        env.fault(error_rate=1.0, error_status=500)
        with pytest.raises(VendorUnavailable) as technical:
            await connector.read_accounts()
        count = len(env.tenant.company.vouchers)
        with pytest.raises(VendorUnavailable):
            await connector.post_journal(posting())
    assert maintenance.value.vendor_code == "SYSTEM_MAINTANANCE"
    assert technical.value.vendor_code == "TECHNICAL_ERROR"
    # Reads were retried to the limit; the posting was sent once (a retry could book twice).
    assert env.transports[0].methods == ["GET"] * (1 + 2 * FAST_RETRY.attempts) + ["POST"]
    assert len(env.tenant.company.vouchers) == count


async def test_rate_limited_beyond_the_longest_wait(env: Env) -> None:
    env.fault(storm_429=1, retry_after_seconds=3600)
    async with env.connector() as connector:
        with pytest.raises(RateLimited) as caught:
            await connector.read_accounts()
    assert caught.value.retry_after == 3600


# --------------------------------------------------------------------------- windows


def company_with_vouchers(days: list[dt.date]) -> CompanyData:
    company = generate_company(5, lines=0)
    for day in days:
        company.add_voucher(
            date=day,
            description=f"On {day}",
            lines=[LineData(1, "1910", Decimal("10.00")), LineData(2, "3000", Decimal("-10.00"))],
            series="MU",
        )
    return company


async def test_month_windows_at_their_boundaries() -> None:
    days = [
        dt.date(2024, 1, 1),  # the first day of the first fiscal year
        dt.date(2024, 1, 31),  # the last day of a window
        dt.date(2024, 2, 1),  # the first day of the next one
        dt.date(2024, 2, 29),
        # March to November 2024 and January to November 2025 are empty.
        dt.date(2024, 12, 31),
        dt.date(2025, 12, 31),  # the last day of the last fiscal year
    ]
    async for env in start(company_with_vouchers(days)):
        async with env.connector() as connector:
            vouchers, _, pages = await sync(connector)
        assert sorted(v.date for v in vouchers) == days
        assert len(vouchers) == len({v.external_id for v in vouchers})
        # Empty months are skipped, each page holds one month, the last page is incremental.
        assert [sorted(v.date for v in page) for page in pages] == [
            days[0:2],
            days[2:4],
            days[4:5],
            days[5:6],
            [],
        ]


async def test_empty_ledger() -> None:
    async for env in start(company_with_vouchers([])):
        async with env.connector() as connector:
            vouchers, cursor, pages = await sync(connector)
            again, _, _ = await sync(connector, cursor)
        assert vouchers == []
        assert again == []
        # The period list, the up-front modified read, 24 months and two incremental reads.
        assert len(env.transports[0].attempts) == 1 + 1 + 24 + 1 + 1
        assert len(pages) == 2


async def test_incremental_windows_catch_up_without_gaps_or_repeats(env: Env) -> None:
    now = dt.datetime.now(dt.UTC)
    today = now.date()
    company = env.tenant.company
    edits = {3: 75, 4: 40, 5: 31, 6: 1, 7: 0}  # voucher id -> days ago
    for voucher_id, days_ago in sorted(edits.items(), key=lambda item: -item[1]):
        company.edit_voucher(voucher_id, at=now - dt.timedelta(days=days_ago))
    # A cursor stored by a sync 80 days ago.
    stale = netvisor_module._Cursor(mode="incremental", since=today - dt.timedelta(days=80))
    async with env.connector() as connector:
        vouchers, cursor, pages = await sync(connector, stale.dump())
        again, _, _ = await sync(connector, cursor)
    assert sorted(int(v.external_id) for v in vouchers) == sorted(edits)
    assert all(v.description.endswith("(edited)") for v in vouchers)
    assert len(pages) == 3  # 81 days of modifications in windows of at most 31 days
    assert again == []


# --------------------------------------------------------------------------- resilience


async def test_429_storm_slows_the_sync_without_failing_it(env: Env) -> None:
    env.fault(storm_429=4, retry_after_seconds=1)
    async with env.connector() as connector:
        vouchers, _, _ = await sync(connector)
    assert len(vouchers) == len(env.tenant.company.vouchers)
    assert env.transports[0].statuses.count(429) == 4
    assert len([wait for wait in env.waits if wait >= 1.0]) == 4  # Retry-After honoured


async def test_5xx_and_resets_mid_sync_are_retried_and_the_sync_continues(env: Env) -> None:
    env.fault(error_rate=0.25, error_status=502, reset_rate=0.15, seed=3)
    async with env.connector() as connector:
        vouchers, _, _ = await sync(connector)
    transport = env.transports[0]
    assert len(vouchers) == len(env.tenant.company.vouchers)
    assert transport.statuses.count(502) >= 1
    assert len(transport.failures) >= 1
    # Every attempt, retries included, carried its own TransactionId.
    assert len(set(transport.transaction_ids)) == len(transport.attempts)


async def test_requests_of_one_customer_are_serialised(env: Env) -> None:
    env.fault(latency_ms=50)
    first, second = env.connector(), env.connector()
    async with first, second:
        results = await asyncio.gather(
            *(c.read_accounts() for c in (first, second, first, second, first, second))
        )
    assert all(len(accounts) == len(env.tenant.company.accounts) for accounts in results)
    statuses = env.transports[0].statuses + env.transports[1].statuses
    assert statuses == [200] * 6  # no request was refused as concurrent


async def test_invalidated_and_edited_vouchers_seen_on_next_incremental_read(env: Env) -> None:
    company = env.tenant.company
    open_ids = [v.id for v in company.vouchers if v.date > LOCK_DATE and v.status == "valid"]
    async with env.connector() as connector:
        _, cursor, _ = await sync(connector)
        nothing, cursor, _ = await sync(connector, cursor)
        async with httpx.AsyncClient(base_url=env.sandbox.base_url) as control:
            tenant = env.tenant.tenant_id
            invalidated = await control.post(
                f"/_sandbox/netvisor/{tenant}/vouchers/{open_ids[0]}/invalidate"
            )
            edited = await control.post(f"/_sandbox/netvisor/{tenant}/vouchers/{open_ids[1]}/edit")
        assert invalidated.status_code == edited.status_code == 200
        changed, cursor, _ = await sync(connector, cursor)
        after, _, _ = await sync(connector, cursor)
    assert nothing == []
    found = by_id(changed)
    assert found.keys() == {str(open_ids[0]), str(open_ids[1])}
    assert found[str(open_ids[0])].status == "invalidated"
    assert found[str(open_ids[1])].description.endswith("(edited)")
    assert after == []


# --------------------------------------------------------------------------- secrets


async def test_no_secret_in_errors_or_logs(env: Env, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    errors: list[ConnectorError] = []
    env.fault(storm_429=1, retry_after_seconds=1)
    async with env.connector() as connector:
        await sync(connector)
        await connector.post_journal(posting())
        for attempt in (
            connector.post_journal(posting(account="9999")),
            connector.post_journal(posting(date=LOCK_DATE, period=dt.date(2025, 3, 1))),
        ):
            with pytest.raises(ConnectorError) as caught:
                await attempt
            errors.append(caught.value)
        text = repr(connector) + repr(connector.settings) + str(connector.settings)
    async with env.connector(customer_key=SecretStr("wrong-" + CUSTOMER_KEY)) as wrong:
        with pytest.raises(ConnectorError) as caught:
            await wrong.read_accounts()
        errors.append(caught.value)
    macs = [mac for transport in env.transports for mac in transport.macs]
    assert macs
    assert any(record.levelno == logging.WARNING for record in caplog.records)  # the retry
    haystacks = [caplog.text, text] + [str(e) for e in errors] + [repr(e) for e in errors]
    for secret in (CUSTOMER_KEY, PARTNER_KEY, *macs):
        for haystack in haystacks:
            assert secret not in haystack


def test_finnish_formats() -> None:
    assert parse_fi_date("31.1.2024") == dt.date(2024, 1, 31)
    assert parse_fi_date("2024-01-31") == dt.date(2024, 1, 31)
    assert parse_fi_decimal("-17,18") == Decimal("-17.18")
    assert parse_fi_decimal("1 234,5") == Decimal("1234.5")
