"""Ledger sync over the vendors' APIs, against the sandbox over real HTTP and a real store.

(Here rather than in the importer's own tests: a service's tests import no other service,
and the vendor sandboxes are one.)

The vendor is the sandbox served over HTTP in the test's loop; auth's token service is a
small stand-in here (its own tests and the wire tests run the real one); the store is
migrated PostgreSQL (and SQLite). Ground truth is the sandbox company itself: what the
ledger holds per period, account and dimension object, computed from its vouchers.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from pydantic import SecretStr
from sqlalchemy import select
from sqlmodel import col

from ledgerlink.connectors.http import RetryPolicy
from ledgerlink.connectors.twentyfour import open_session
from ledgerlink.importer.config import (
    NetvisorPartnerSettings,
    ProcountorClientSettings,
    TwentyFourClientSettings,
    VendorSettings,
)
from ledgerlink.importer.domain.ledger_sync import CARRIED_RESULT_ACCOUNT, SyncMode
from ledgerlink.importer.handlers.sync_http import build_sync_router
from ledgerlink.importer.main import MIGRATIONS
from ledgerlink.importer.services.imports import ImportService
from ledgerlink.importer.services.ledger_sync import (
    ClaimedSync,
    LedgerSyncService,
    SyncSettings,
)
from ledgerlink.importer.services.reports import ReportService
from ledgerlink.importer.services.sync_schedule import SyncScheduleService
from ledgerlink.importer.storage.models import (
    Company,
    Dimension,
    ImportJob,
    ImportStatus,
    LedgerPeriod,
    PeriodBalance,
    SyncState,
    VoucherLine,
    messaging,
    metadata,
)
from ledgerlink.importer.storage.sync_store import SyncStateRepository
from ledgerlink.importer.storage.vendor_ledgers import VendorLedgers
from ledgerlink.sandbox.config import RateLimitSettings, SandboxConfig
from ledgerlink.sandbox.data import CompanyData, LineData, generate_company
from ledgerlink.sandbox.faults import FaultPlan
from ledgerlink.sandbox.testing import RunningSandbox, running_sandbox
from ledgerlink.sandbox.world import Tenant, World
from ledgerlink.shared.config import TokenServiceSettings
from ledgerlink.shared.db import Database, as_utc
from ledgerlink.shared.events import ConnectionActivatedV1, Provider
from ledgerlink.shared.messaging.outbox import Outbox
from ledgerlink.shared.pytest_plugin import define_store_fixtures

#: A migrated importer store on PostgreSQL and SQLite, emptied before each test.
database_url, db = define_store_fixtures(MIGRATIONS, metadata, "importer-sync-test")

CUSTOMER_KEY = "customer-key-never-logged"
PARTNER_KEY = "partner-key-never-logged"
PARTNER_ID = "LEDGERLINK_TEST"
SERVICE_TOKEN = "importer-service-token-0123456789"
#: The sandbox's and the connector's clock: a fixed day, moved by hand.
T0 = dt.datetime(2026, 1, 15, 9, 0, tzinfo=dt.UTC)
FAST_RETRY = RetryPolicy(attempts=8, initial_backoff_seconds=0.01, jitter_seconds=0.0)

Key = tuple[dt.date, str, str, str]


class Clock:
    """One hand-moved clock for the sandbox, the connector and the sync service."""

    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> dt.datetime:
        return self.now

    def timestamp(self) -> float:
        return self.now.timestamp()

    def advance(self, **delta: float) -> None:
        self.now += dt.timedelta(**delta)


@dataclass
class TokenService:
    """auth's token service for one Netvisor connection (a stand-in: the wire tests and
    auth's own tests run the real one). Counts requests; can refuse the connection."""

    tenant: Tenant
    requests: int = 0
    refuse: bool = False
    seen_tokens: list[str] = field(default_factory=list)

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.requests += 1
        self.seen_tokens.append(request.headers.get("Authorization", ""))
        if self.refuse:
            return httpx.Response(
                409, json={"detail": {"reason_code": "needs_reauth", "message": "no"}}
            )
        connection_id = request.url.path.split("/")[-2]
        return httpx.Response(
            200,
            json={
                "connection_id": connection_id,
                "provider": "netvisor",
                "kind": "netvisor",
                "expires_at": None,
                "secrets": {"customer_key": CUSTOMER_KEY},
                "attributes": {
                    "customer_id": self.tenant.tenant_id,
                    "organisation_id": self.tenant.company.business_id,
                },
            },
        )


@dataclass
class Env:
    db: Database
    sandbox: RunningSandbox
    world: World
    tenant: Tenant
    clock: Clock
    tokens: TokenService
    waits: list[float] = field(default_factory=list)
    connection_id: uuid.UUID = field(default_factory=uuid.uuid4)

    @property
    def company(self) -> CompanyData:
        return self.tenant.company

    @property
    def business_id(self) -> str:
        return self.company.business_id

    def service(self, **settings: Any) -> LedgerSyncService:
        async def sleep(seconds: float) -> None:
            self.waits.append(seconds)
            await asyncio.sleep(0)

        ledgers = VendorLedgers(
            VendorSettings(
                netvisor=NetvisorPartnerSettings(
                    base_url=self.sandbox.url("/netvisor"),
                    sender="Ledgerlink tests",
                    partner_id=PARTNER_ID,
                    partner_key=PARTNER_KEY,  # type: ignore[arg-type]
                )
            ),
            TokenServiceSettings(url="http://auth.invalid", token=SERVICE_TOKEN),  # type: ignore[arg-type]
            token_transport=httpx.MockTransport(self.tokens.handle),
            retry=FAST_RETRY,
            sleep=sleep,
            clock=self.clock.timestamp,
            now=self.clock,
        )
        return LedgerSyncService(
            self.db,
            Outbox(messaging, source="ledgerlink/importer"),
            ledgers,
            SyncSettings(**settings),
            clock=self.clock,
            sleep=sleep,
        )

    async def activate(self) -> uuid.UUID:
        async with self.db.transaction() as session:
            job = await ImportService(
                session, Outbox(messaging, source="ledgerlink/importer")
            ).connection_activated(
                ConnectionActivatedV1(
                    connection_id=self.connection_id,
                    environment_id=uuid.uuid4(),
                    provider=Provider.NETVISOR,
                    business_id=self.business_id,
                    company_name=self.company.name,
                ),
                event_id=str(uuid.uuid4()),
                activated_at=self.clock(),
            )
            return job.id

    async def request(self, mode: SyncMode) -> uuid.UUID:
        async with self.db.transaction() as session:
            job = ImportJob(
                connection_id=self.connection_id,
                business_id=self.business_id,
                provider=Provider.NETVISOR.value,
                scope=["ledger"],
                trigger="import_requested",  # type: ignore[arg-type]
                status=ImportStatus.QUEUED,
                requested_event_id=str(uuid.uuid4()),
                sync_mode=mode.value,
            )
            session.add(job)
            await session.flush()
            return job.id

    async def run_next(self, service: LedgerSyncService | None = None) -> ImportJob:
        service = service or self.service()
        claimed = await service.claim_next()
        assert claimed is not None
        await service.run(claimed)
        return await self.job(claimed.id)

    async def job(self, import_id: uuid.UUID) -> ImportJob:
        async with self.db.transaction() as session:
            job = await session.get(ImportJob, import_id)
            assert job is not None
            return job

    async def stored_balances(self) -> dict[Key, tuple[Decimal, Decimal]]:
        """The live company's balances, keyed by kind (not id) of dimension."""
        async with self.db.transaction() as session:
            company = (
                await session.execute(
                    select(Company).where(col(Company.business_id) == self.business_id)
                )
            ).scalar_one()
            kinds = {
                d.dimension_id: d.kind
                for d in (
                    await session.execute(
                        select(Dimension).where(col(Dimension.company_id) == company.id)
                    )
                ).scalars()
            }
            rows = (await session.execute(select(PeriodBalance))).scalars().all()
        found: dict[Key, tuple[Decimal, Decimal]] = {}
        for row in rows:
            if row.debit == 0 and row.credit == 0:
                continue
            kind = kinds.get(row.dimension_id, "") if row.dimension_id else ""
            found[(row.period, row.account, kind, row.object_id)] = (
                Decimal(row.debit),
                Decimal(row.credit),
            )
        return found

    async def line_count(self) -> int:
        async with self.db.transaction() as session:
            return len((await session.execute(select(col(VoucherLine.line_no)))).all())


def ground_truth(company: CompanyData) -> dict[Key, tuple[Decimal, Decimal]]:
    """Debit and credit per period, account, and dimension kind + object: the books as the
    sandbox holds them (valid vouchers only)."""
    totals: dict[Key, list[Decimal]] = {}
    for voucher in company.vouchers:
        if voucher.status != "valid":
            continue
        period = voucher.date.replace(day=1)
        for line in voucher.lines:
            keys = [(period, line.account, "", "")]
            keys += [(period, line.account, kind, code) for kind, code in line.dimensions.items()]
            for key in keys:
                pair = totals.setdefault(key, [Decimal(0), Decimal(0)])
                pair[0 if line.amount >= 0 else 1] += abs(line.amount)
    return {key: (debit, credit) for key, (debit, credit) in totals.items() if debit or credit}


def truth_lines(company: CompanyData) -> int:
    return sum(len(v.lines) for v in company.vouchers if v.status == "valid")


async def start(db: Database, company: CompanyData, **tenant: Any) -> AsyncIterator[Env]:
    clock = Clock()
    config = SandboxConfig(
        rate_limits={"netvisor": RateLimitSettings(rate_per_second=10_000, burst=10_000)}
    )
    world = World(config, clock=clock.timestamp)
    added = world.add_tenant(
        "netvisor",
        company=company,
        credentials={
            "customer_key": CUSTOMER_KEY,
            "partner_id": PARTNER_ID,
            "partner_key": PARTNER_KEY,
        },
        **tenant,
    )
    async with running_sandbox(world=world, vendors=("netvisor",)) as sandbox:
        yield Env(db, sandbox, world, added, clock, TokenService(added))


@pytest.fixture
async def env(db: Database) -> AsyncIterator[Env]:
    async for value in start(db, generate_company(21, lines=600, last_year=2025)):
        yield value


async def test_first_import_holds_the_vendors_books_to_the_cent(env: Env) -> None:
    await env.activate()
    job = await env.run_next()

    assert job.status is ImportStatus.COMPLETED, job.error_message
    assert job.outcome == "imported"
    assert await env.stored_balances() == ground_truth(env.company)
    assert await env.line_count() == truth_lines(env.company)
    assert job.counts is not None
    assert job.counts["lines"] == truth_lines(env.company)
    # Netvisor's own balances (accountbalance.nv) at every past period end agree with ours.
    assert job.reconciliation_status == "balanced"
    assert job.differences == []
    # The credential came from the token service, with the importer's service token.
    assert env.tokens.requests >= 1
    assert set(env.tokens.seen_tokens) == {f"Bearer {SERVICE_TOKEN}"}
    async with env.db.transaction() as session:
        periods = (await session.execute(select(LedgerPeriod))).scalars().all()
        state = await session.get(SyncState, env.connection_id)
        events = (await session.execute(select(messaging.outbox.c.event_type))).scalars().all()
        report = await ReportService(session).trial_balance(env.business_id, "2025-01", "2025-01")
    closed = {p.start for p in periods if p.status == "closed"}
    assert dt.date(2025, 3, 1) in closed
    assert dt.date(2025, 4, 1) not in closed
    assert state is not None
    assert state.last_status == "completed"
    assert state.next_run_at is not None
    assert as_utc(state.next_run_at) == T0 + dt.timedelta(minutes=15)
    assert "ledgerlink.import.completed.v1" in events
    assert "ledgerlink.reports.ready.v1" in events
    truth = ground_truth(env.company)
    january = {
        key[1]: value
        for key, value in truth.items()
        if key[0] == dt.date(2025, 1, 1) and not key[2]
    }
    assert {
        row.account: (row.debit, row.credit)
        for row in report.report.rows
        if row.debit or row.credit
    } == january


async def test_incremental_sync_replaces_edited_removes_invalidated_adds_new(env: Env) -> None:
    await env.activate()
    first = await env.run_next()
    assert first.status is ImportStatus.COMPLETED, first.error_message

    env.clock.advance(minutes=20)
    company = env.company
    edited = company.vouchers[10]
    new_lines = [
        LineData(1, edited.lines[0].account, Decimal("777.77")),
        LineData(2, edited.lines[-1].account, Decimal("-777.77")),
    ]
    company.edit_voucher(edited.id, lines=new_lines)
    company.invalidate_voucher(company.vouchers[20].id)
    company.delete_voucher(company.vouchers[30].id)
    added = company.add_voucher(
        date=dt.date(2025, 6, 10),
        description="Added after the first import",
        lines=[
            LineData(1, company.vouchers[0].lines[0].account, Decimal("12.34")),
            LineData(2, company.vouchers[0].lines[-1].account, Decimal("-12.34")),
        ],
    )
    job_id = await env.request(SyncMode.INCREMENTAL)
    job = await env.run_next()

    assert job.id == job_id
    assert job.status is ImportStatus.COMPLETED, job.error_message
    assert job.sync_mode == "incremental"
    assert await env.stored_balances() == ground_truth(company)
    assert await env.line_count() == truth_lines(company)
    # Only the changed vouchers were read.
    assert job.counts is not None
    assert job.counts["sync_vouchers_read"] == 4
    assert job.counts["sync_vouchers_removed"] == 2
    assert added.id


async def test_full_refresh_that_fails_leaves_the_live_books_untouched(env: Env) -> None:
    await env.activate()
    await env.run_next()
    before = await env.stored_balances()
    env.company.invalidate_voucher(env.company.vouchers[5].id)

    await env.request(SyncMode.FULL_REFRESH)
    service = env.service(page_retries=2, page_retry_pause=0.01)
    pages = 0

    async def fail_after_two(import_id: uuid.UUID, lines: int) -> None:
        nonlocal pages
        pages += 1
        if pages == 2:
            # The vendor goes away after the second page (a cursor boundary).
            env.world.faults.set(FaultPlan(vendor="netvisor", error_rate=1.0))

    service.on_page = fail_after_two
    job = await env.run_next(service)

    assert job.status is ImportStatus.FAILED
    assert job.error_code == "vendor_unavailable"
    assert await env.stored_balances() == before  # not a page of the refresh is visible
    async with env.db.transaction() as session:
        companies = (await session.execute(select(col(Company.business_id)))).scalars().all()
    assert companies == [env.business_id]  # the staging company is gone

    env.world.faults.clear()
    await env.request(SyncMode.FULL_REFRESH)
    job = await env.run_next()
    assert job.status is ImportStatus.COMPLETED, job.error_message
    assert job.outcome == "replaced"
    assert await env.stored_balances() == ground_truth(env.company)


async def test_killed_mid_import_resumes_from_its_checkpoint_and_stores_no_line_twice(
    env: Env,
) -> None:
    await env.activate()
    service = env.service(lease=dt.timedelta(seconds=30))
    claimed = await service.claim_next()
    assert claimed is not None
    pages = 0

    async def die_on_third(import_id: uuid.UUID, lines: int) -> None:
        nonlocal pages
        pages += 1
        if pages == 3:
            raise asyncio.CancelledError  # the process is killed after a committed page

    service.on_page = die_on_third
    with pytest.raises(asyncio.CancelledError):
        await service.run(claimed)
    checkpoint = await env.job(claimed.id)
    assert checkpoint.status is ImportStatus.RUNNING
    assert checkpoint.sync_cursor
    committed = checkpoint.progress_lines
    assert committed > 0

    env.clock.advance(seconds=31)  # the dead runner's lease runs out
    resumed = env.service()
    again = await resumed.claim_next()
    assert again == ClaimedSync(claimed.id, 2)
    await resumed.run(again)
    job = await env.job(claimed.id)

    assert job.status is ImportStatus.COMPLETED, job.error_message
    assert await env.line_count() == truth_lines(env.company)
    assert await env.stored_balances() == ground_truth(env.company)
    assert job.counts is not None
    assert job.counts["sync_lines_written"] == truth_lines(env.company)


async def test_killed_between_a_pages_rows_and_its_checkpoint_keeps_neither(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The next page is read while this one is written (pipelined), but a page's rows,
    balances and cursor commit together: a kill after the rows are written and before the
    checkpoint rolls the page back, and the resumed sync reads it again, storing it once."""
    await env.activate()
    service = env.service(lease=dt.timedelta(seconds=30))
    claimed = await service.claim_next()
    assert claimed is not None
    real_checkpoint = SyncStateRepository.checkpoint
    checkpoints = 0

    async def die_at_third(self: SyncStateRepository, *args: Any, **kwargs: Any) -> None:
        nonlocal checkpoints
        checkpoints += 1
        if checkpoints == 3:
            raise asyncio.CancelledError  # killed with the page's rows flushed, uncommitted
        await real_checkpoint(self, *args, **kwargs)

    monkeypatch.setattr(SyncStateRepository, "checkpoint", die_at_third)
    with pytest.raises(asyncio.CancelledError):
        await service.run(claimed)
    monkeypatch.setattr(SyncStateRepository, "checkpoint", real_checkpoint)
    checkpoint = await env.job(claimed.id)
    assert checkpoint.sync_cursor
    counts = checkpoint.counts or {}
    assert counts["pages"] == 2  # the third page's rows went with its checkpoint

    env.clock.advance(seconds=31)
    resumed = env.service()
    again = await resumed.claim_next()
    assert again == ClaimedSync(claimed.id, 2)
    await resumed.run(again)
    job = await env.job(claimed.id)
    assert job.status is ImportStatus.COMPLETED, job.error_message
    assert await env.line_count() == truth_lines(env.company)
    assert await env.stored_balances() == ground_truth(env.company)
    assert job.counts is not None
    assert job.counts["sync_lines_written"] == truth_lines(env.company)


async def test_resumed_sync_keeps_the_notices_collected_before_the_kill(env: Env) -> None:
    # The first voucher (the first page) books to an account the chart does not list.
    first = env.company.vouchers[0]
    env.company.edit_voucher(
        first.id,
        lines=[LineData(1, "9999", Decimal("10.00")), LineData(2, "1910", Decimal("-10.00"))],
    )
    await env.activate()
    service = env.service(lease=dt.timedelta(seconds=30))
    claimed = await service.claim_next()
    assert claimed is not None
    pages = 0

    async def die_on_third(import_id: uuid.UUID, lines: int) -> None:
        nonlocal pages
        pages += 1
        if pages == 3:
            raise asyncio.CancelledError  # killed after the notice's page was committed

    service.on_page = die_on_third
    with pytest.raises(asyncio.CancelledError):
        await service.run(claimed)
    env.clock.advance(seconds=31)
    resumed = env.service()
    again = await resumed.claim_next()
    assert again == ClaimedSync(claimed.id, 2)
    await resumed.run(again)
    job = await env.job(claimed.id)

    assert job.status is ImportStatus.COMPLETED, job.error_message
    assert job.notices is not None
    assert [n["code"] for n in job.notices] == ["undeclared_account"]
    assert "9999" in job.notices[0]["message"]
    assert await env.stored_balances() == ground_truth(env.company)


async def test_previous_years_result_is_carried_into_equity_so_later_balance_sheets_balance(
    env: Env,
) -> None:
    await env.activate()
    job = await env.run_next()
    assert job.status is ImportStatus.COMPLETED, job.error_message

    async with env.db.transaction() as session:
        reports = ReportService(session)
        result_2024 = await reports.profit_and_loss(env.business_id, "2024-01", "2024-12")
        sheet_2025 = await reports.balance_sheet(env.business_id, "2025-12")
        sheet_2024 = await reports.balance_sheet(env.business_id, "2024-12")
    (profit,) = set(result_2024.statement.totals["result"])
    assert profit != 0
    for sheet in (sheet_2024, sheet_2025):
        assert set(sheet.statement.totals["difference"]) == {Decimal(0)}
    # 2025 opens with 2024's result in equity, on the carried-result line.
    carried = [
        line
        for section in sheet_2025.statement.sections
        if section.key == "equity"
        for line in section.lines
        if line.account == CARRIED_RESULT_ACCOUNT
    ]
    assert [line.amounts[0] for line in carried] == [profit]


async def test_backfill_replaces_exactly_its_range_and_leaves_other_periods_untouched(
    env: Env,
) -> None:
    await env.activate()
    assert (await env.run_next()).status is ImportStatus.COMPLETED
    before = ground_truth(env.company)
    async with env.db.transaction() as session:
        state = await session.get(SyncState, env.connection_id)
        assert state is not None
        cursor = state.cursor

    # The vendor's books change without a change stamp (a correction the incremental read
    # cannot see): inside the range one voucher's lines change sides and one is gone
    # altogether; outside it one voucher changes too.
    first_day, last_day = dt.date(2025, 3, 1), dt.date(2025, 4, 30)
    inside = [v for v in env.company.vouchers if first_day <= v.date <= last_day]
    outside = next(v for v in env.company.vouchers if v.date.year == 2024 and v.status == "valid")
    for voucher in (inside[0], outside):
        voucher.lines = [
            LineData(line.line_no, line.account, -line.amount, line.description,
                     line.vat_percent, line.vat_code, line.dimensions)
            for line in voucher.lines
        ]  # fmt: skip
    env.company.vouchers.remove(inside[1])
    env.company.__post_init__()  # its index, without the vanished voucher
    after = ground_truth(env.company)

    app = FastAPI()
    app.include_router(build_sync_router(env.db, on_queued=lambda: None))
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://importer"
    ) as http:
        backwards = await http.post(
            f"/v1/connections/{env.connection_id}/sync",
            json={"mode": "backfill", "from": "2025-04-30", "to": "2025-03-01"},
        )
        queued = await http.post(
            f"/v1/connections/{env.connection_id}/sync",
            json={"mode": "backfill", "from": str(first_day), "to": str(last_day)},
        )
    assert backwards.status_code == 422
    assert "from is after to" in backwards.text
    assert queued.status_code == 202, queued.text
    assert queued.json()["mode"] == "backfill"

    job = await env.run_next()

    assert job.status is ImportStatus.COMPLETED, job.error_message
    assert job.sync_mode == "backfill"
    assert (job.sync_from, job.sync_to) == (first_day, last_day)
    assert job.counts is not None
    assert job.counts["sync_vouchers_removed"] == 1  # the voucher gone at the vendor
    stored = await env.stored_balances()

    def within(key: Key) -> bool:
        return first_day <= key[0] <= last_day

    # The range holds the vendor's books now; every other period is as it was.
    assert {k: v for k, v in stored.items() if within(k)} == {
        k: v for k, v in after.items() if within(k)
    }
    assert {k: v for k, v in stored.items() if not within(k)} == {
        k: v for k, v in before.items() if not within(k)
    }
    assert before != after
    async with env.db.transaction() as session:
        state = await session.get(SyncState, env.connection_id, populate_existing=True)
        assert state is not None
        assert state.cursor == cursor  # the incremental sync goes on where it stood


async def test_429_storm_slows_the_sync_and_never_fails_it(env: Env) -> None:
    env.world.faults.set(FaultPlan(vendor="netvisor", storm_429=30, retry_after_seconds=2))
    await env.activate()
    job = await env.run_next()

    assert job.status is ImportStatus.COMPLETED, job.error_message
    assert await env.stored_balances() == ground_truth(env.company)
    assert 2 in [round(wait) for wait in env.waits]


async def test_5xx_bursts_and_connection_resets_do_not_change_the_ledger(env: Env) -> None:
    env.world.faults.set(FaultPlan(vendor="netvisor", error_rate=0.3, reset_rate=0.2, seed=14))
    await env.activate()
    job = await env.run_next()

    assert job.status is ImportStatus.COMPLETED, job.error_message
    assert await env.stored_balances() == ground_truth(env.company)
    assert await env.line_count() == truth_lines(env.company)
    assert env.waits  # the faults were met and waited out


async def test_refused_credential_fails_the_sync_and_pauses_the_schedule(env: Env) -> None:
    env.tokens.refuse = True
    await env.activate()
    job = await env.run_next()

    assert job.status is ImportStatus.FAILED
    assert job.error_code == "needs_reauth"
    async with env.db.transaction() as session:
        state = await session.get(SyncState, env.connection_id)
        outbox = (await session.execute(select(messaging.outbox.c.payload))).scalars().all()
    assert state is not None
    assert state.paused_reason is not None
    assert "authorised again" in state.paused_reason
    assert state.next_run_at is None
    assert all(CUSTOMER_KEY.encode() not in payload for payload in outbox)


async def test_schedule_queues_an_incremental_sync_when_due(env: Env) -> None:
    await env.activate()
    service = env.service()
    await env.run_next(service)
    assert await service.queue_scheduled() == 0  # not due yet
    env.clock.advance(minutes=15)
    assert await service.queue_scheduled() == 1
    assert await service.queue_scheduled() == 0  # one at a time
    job = await env.run_next(service)
    assert job.trigger == "schedule"
    assert job.sync_mode == "incremental"
    assert job.status is ImportStatus.COMPLETED, job.error_message
    assert job.outcome == "unchanged"


async def test_status_run_reset_and_balances_over_http(env: Env) -> None:
    await env.activate()
    await env.run_next()
    woken: list[bool] = []
    app = FastAPI()
    app.include_router(build_sync_router(env.db, on_queued=lambda: woken.append(True)))
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://importer"
    ) as http:
        status = (await http.get(f"/v1/connections/{env.connection_id}/sync")).json()
        listed = (await http.get("/v1/syncs", params={"business_id": env.business_id})).json()
        unknown = await http.get(f"/v1/connections/{uuid.uuid4()}/sync")
        queued = await http.post(
            f"/v1/connections/{env.connection_id}/sync", json={"mode": "full_refresh"}
        )
        again = await http.post(f"/v1/connections/{env.connection_id}/sync")
        running = (await http.get(f"/v1/connections/{env.connection_id}/sync")).json()
        truth = ground_truth(env.company)
        june = "2025-06"
        accounts = sorted({key[1] for key in truth})
        accounts = [accounts[0], accounts[1], accounts[-1]]  # assets and an expense
        balances = await http.get(
            f"/v1/companies/{env.business_id}/balances",
            params={"period": june, "accounts": ",".join([*accounts, "0000"])},
        )
        outside = await http.get(
            f"/v1/companies/{env.business_id}/balances", params={"period": "2031-01"}
        )

    assert status["last_status"] == "completed"
    assert status["last_mode"] == "first"
    assert status["paused_reason"] is None
    assert dt.datetime.fromisoformat(status["data_as_of"]) == T0
    assert dt.datetime.fromisoformat(status["next_run_at"]) == T0 + dt.timedelta(minutes=15)
    assert status["lag_seconds"] is not None
    assert status["last_counts"]["lines"] == truth_lines(env.company)
    assert [row["connection_id"] for row in listed] == [str(env.connection_id)]
    assert unknown.status_code == 404
    assert queued.status_code == 202
    assert queued.json()["mode"] == "full_refresh"
    assert again.status_code == 409
    assert woken == [True]
    assert running["active"]["mode"] == "full_refresh"
    assert running["active"]["status"] == "queued"
    assert balances.status_code == 200, balances.text
    body = balances.json()
    assert body["as_of_date"] == "2025-06-30"
    # Balance-sheet accounts carry their balance over from 2024; P&L accounts open at zero.
    kinds = {account.number: account.type for account in env.company.accounts}

    def first_period(account: str) -> dt.date:
        carried = kinds[account] in ("asset", "liability", "equity")
        return dt.date(2000, 1, 1) if carried else dt.date(2025, 1, 1)

    expected = {
        account: sum(
            (d - c for (p, a, kind, _), (d, c) in truth.items()
             if a == account and not kind and first_period(a) <= p <= dt.date(2025, 6, 1)),
            Decimal(0),
        )
        for account in accounts
    }  # fmt: skip
    assert {row["account"]: Decimal(row["balance"]) for row in body["accounts"]} == {
        **expected,
        "0000": Decimal(0),
    }
    assert outside.status_code == 400


# ------------------------------------------------------------------------- Procountor

PROCOUNTOR = {
    "client_id": "ledgerlink-procountor-test",
    "client_secret": "procountor-client-secret",
    "redirect_uri": "http://127.0.0.1:8000/oauth/procountor/callback",
    "username": "controller",
    "password": "procountor-password",
    "api_key": "procountor-api-key-never-logged",
}


@dataclass
class BearerTokens:
    """auth's token service for a Procountor connection (a stand-in): it gets a machine
    token from the sandbox's token endpoint as auth would, and a new one when the caller
    reports the current one refused."""

    sandbox: RunningSandbox
    issued: int = 0
    renewals: int = 0
    current: str | None = None

    async def handle(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content or b"{}")
        if self.current is None or body.get("refused_token_sha256"):
            self.renewals += bool(self.current)
            async with httpx.AsyncClient() as http:
                answer = await http.post(
                    self.sandbox.url("/procountor/api/oauth/token"),
                    data={
                        "grant_type": "client_credentials",
                        "client_id": PROCOUNTOR["client_id"],
                        "client_secret": PROCOUNTOR["client_secret"],
                        "api_key": PROCOUNTOR["api_key"],
                    },
                )
            assert answer.status_code == 200, answer.text
            self.current = answer.json()["access_token"]
            self.issued += 1
        return httpx.Response(
            200,
            json={
                "connection_id": request.url.path.split("/")[-2],
                "provider": "procountor",
                "kind": "bearer",
                "expires_at": None,
                "secrets": {"access_token": self.current},
                "attributes": {},
            },
        )


def procountor_truth(tenant: Tenant) -> CompanyData:
    """The books Procountor holds: the generated vouchers and the payroll receipts."""
    from ledgerlink.sandbox.vendors.procountor import _salary_receipts  # the sandbox's own

    company = tenant.company
    return CompanyData(
        business_id=company.business_id,
        name=company.name,
        country=company.country,
        currency=company.currency,
        accounts=company.accounts,
        dimensions=company.dimensions,
        fiscal_years=company.fiscal_years,
        vouchers=[*company.vouchers, *_salary_receipts(tenant)],
        payroll_runs=[],
    )


async def procountor_env(db: Database, **flags: Any) -> AsyncIterator[tuple[Env, BearerTokens]]:
    clock = Clock()
    world = World(
        SandboxConfig(rate_limits={"procountor": RateLimitSettings(rate_per_second=10_000,
                                                                     burst=10_000)}),
        clock=clock.timestamp,
    )  # fmt: skip
    tenant = world.add_tenant(
        "procountor",
        company=generate_company(31, lines=500, last_year=2025),
        credentials=dict(PROCOUNTOR),
        **flags,
    )
    async with running_sandbox(world=world, vendors=("procountor",)) as sandbox:
        env = Env(db, sandbox, world, tenant, clock, TokenService(tenant))
        yield env, BearerTokens(sandbox)


def procountor_service(env: Env, tokens: BearerTokens) -> LedgerSyncService:
    async def sleep(seconds: float) -> None:
        env.waits.append(seconds)
        await asyncio.sleep(0)

    ledgers = VendorLedgers(
        VendorSettings(
            procountor=ProcountorClientSettings(
                base_url=env.sandbox.url("/procountor"),
                client_id=PROCOUNTOR["client_id"],
                client_secret=PROCOUNTOR["client_secret"],  # type: ignore[arg-type]
                redirect_uri=PROCOUNTOR["redirect_uri"],
            )
        ),
        TokenServiceSettings(url="http://auth.invalid", token=SERVICE_TOKEN),  # type: ignore[arg-type]
        token_transport=httpx.MockTransport(tokens.handle),
        retry=FAST_RETRY,
        sleep=sleep,
        clock=env.clock.timestamp,
    )
    return LedgerSyncService(
        env.db,
        Outbox(messaging, source="ledgerlink/importer"),
        ledgers,
        clock=env.clock,
        sleep=sleep,
    )


async def activate_procountor(env: Env) -> None:
    outbox = Outbox(messaging, source="ledgerlink/importer")
    async with env.db.transaction() as session:
        await ImportService(session, outbox).connection_activated(
            ConnectionActivatedV1(
                connection_id=env.connection_id,
                environment_id=uuid.uuid4(),
                provider=Provider.PROCOUNTOR,
                business_id=env.business_id,
                company_name=env.company.name,
            ),
            event_id=str(uuid.uuid4()),
            activated_at=env.clock(),
        )  # fmt: skip


async def test_procountor_first_import_renews_an_expired_token_through_auth(db: Database) -> None:
    async for env, tokens in procountor_env(db):
        # The vendor expires every token at the 6th request: mid-sync.
        env.world.faults.set(FaultPlan(vendor="procountor", expire_tokens_after=6))
        await activate_procountor(env)
        job = await env.run_next(procountor_service(env, tokens))

        assert job.status is ImportStatus.COMPLETED, job.error_message
        assert tokens.renewals >= 1  # the refused token was renewed through "auth"
        assert await env.stored_balances() == ground_truth(procountor_truth(env.tenant))
        assert not job.notices


async def test_procountor_payroll_hidden_from_the_user_is_flagged_on_import_and_reports(
    db: Database,
) -> None:
    async for env, tokens in procountor_env(db, salary_rights=False):
        await activate_procountor(env)
        job = await env.run_next(procountor_service(env, tokens))

        assert job.status is ImportStatus.COMPLETED, job.error_message
        assert job.notices is not None
        assert [n["code"] for n in job.notices] == ["payroll_not_visible"]
        # What was imported is what the user sees: the books without the payroll receipts.
        assert await env.stored_balances() == ground_truth(env.company)
        assert ground_truth(env.company) != ground_truth(procountor_truth(env.tenant))
        async with env.db.transaction() as session:
            report = await ReportService(session).trial_balance(env.business_id, None, None)
        assert report.scope.warnings
        assert "salary" in report.scope.warnings[0]


async def test_every_difference_from_the_vendors_balances_is_listed(env: Env) -> None:
    await env.activate()
    service = env.service()
    changed = env.company.vouchers[3]
    debit_account, credit_account = changed.lines[0].account, changed.lines[-1].account
    old: dict[str, Decimal] = {}
    for line in changed.lines:
        old[line.account] = old.get(line.account, Decimal(0)) + line.amount
    new = {debit_account: Decimal("1000.00"), credit_account: Decimal("-1000.00")}
    moved = {
        account: old.get(account, Decimal(0)) - new.get(account, Decimal(0))
        for account in old.keys() | new.keys()
    }

    async def change_behind_the_read(import_id: uuid.UUID, lines: int) -> None:
        # After the first page (the voucher's month) was read, the vendor's books change
        # in a way the rest of the read does not show (an old modification stamp): its
        # own balances then differ from what was read, and the sync must say where.
        if changed.lines[0].amount != Decimal("1000.00"):
            env.company.edit_voucher(
                changed.id,
                lines=[
                    LineData(1, debit_account, Decimal("1000.00")),
                    LineData(2, credit_account, Decimal("-1000.00")),
                ],
                at=dt.datetime(2000, 1, 1, tzinfo=dt.UTC),
            )

    service.on_page = change_behind_the_read
    job = await env.run_next(service)

    assert job.status is ImportStatus.COMPLETED, job.error_message
    assert job.reconciliation_status == "differences"
    assert job.differences
    first_period = changed.date.strftime("%Y-%m")
    at_first = {d["account"]: d for d in job.differences if d["period"] == first_period}
    assert set(at_first) == {account for account, amount in moved.items() if amount}
    assert {a: Decimal(d["difference"]) for a, d in at_first.items()} == {
        account: amount for account, amount in moved.items() if amount
    }
    # Every later period end differs too (balances are cumulative): all are listed.
    periods = {d["period"] for d in job.differences}
    assert first_period in periods
    assert len(periods) > 1


# ---------------------------------------------------------------------- 24SevenOffice

TF_APP, TF_USER, TF_PASSWORD = "app-id-never-logged", "integration@example.no", "tf-password"
TF_CLIENT, TF_SECRET = "rest-client", "rest-secret-never-logged"


class Capturing(VendorLedgers):
    """The real ledgers, remembering the connectors they opened (to look at settings)."""

    opened: list[Any]

    @contextlib.asynccontextmanager
    async def open(self, provider: Provider, connection_id: uuid.UUID, *, business_id: str,
                   transaction_type: str | None = None) -> AsyncIterator[Any]:  # fmt: skip
        async with super().open(
            provider, connection_id, business_id=business_id, transaction_type=transaction_type
        ) as connector:
            self.opened.append(connector)
            yield connector


async def test_twentyfour_import_reads_every_type_and_keeps_the_activation_type(
    db: Database,
) -> None:
    from ledgerlink.sandbox.vendors import twentyfour as tf

    clock = Clock()
    world = World(
        SandboxConfig(rate_limits={"twentyfour": RateLimitSettings(rate_per_second=10_000,
                                                                     burst=10_000)}),
        clock=clock.timestamp,
    )  # fmt: skip
    tenant = world.add_tenant(
        "twentyfour", tenant_id="5001", company=generate_company(41, country="NO", lines=400)
    )
    state = tf.state_of(world)
    state.register_application(TF_APP)
    state.add_integration_user(TF_USER, TF_PASSWORD, ["5001"])
    state.add_rest_client(TF_CLIENT, TF_SECRET, ["5001"])

    async with running_sandbox(world=world, vendors=("twentyfour",)) as sandbox:

        async def credential(request: httpx.Request) -> httpx.Response:
            # As auth's token service: it logs in to 24SevenOffice and hands out the session.
            async with httpx.AsyncClient() as http:
                session = await open_session(
                    http,
                    soap_base_url=sandbox.url("/24so/soap"),
                    application_id=SecretStr(TF_APP),
                    username=TF_USER,
                    password=SecretStr(TF_PASSWORD),
                    identity_id=None,
                )
            return httpx.Response(
                200,
                json={
                    "connection_id": request.url.path.split("/")[-2],
                    "provider": "24sevenoffice",
                    "kind": "twentyfour_session",
                    "expires_at": None,
                    "secrets": {"session_id": session.get_secret_value()},
                    "attributes": {"username": TF_USER},
                },
            )

        env = Env(db, sandbox, world, tenant, clock, TokenService(tenant))
        ledgers = Capturing(
            VendorSettings(
                twentyfour=TwentyFourClientSettings(
                    soap_base_url=sandbox.url("/24so/soap"),
                    rest_base_url=sandbox.url(tf.REST_PREFIX),
                    token_url=sandbox.url(tf.TOKEN_PATH),
                    application_id=TF_APP,  # type: ignore[arg-type]
                    rest_client_id=TF_CLIENT,  # type: ignore[arg-type]
                    rest_client_secret=TF_SECRET,  # type: ignore[arg-type]
                )
            ),
            TokenServiceSettings(url="http://auth.invalid", token=SERVICE_TOKEN),  # type: ignore[arg-type]
            token_transport=httpx.MockTransport(credential),
            retry=FAST_RETRY,
        )
        ledgers.opened = []
        outbox = Outbox(messaging, source="ledgerlink/importer")
        async with db.transaction() as session:
            await ImportService(session, outbox).connection_activated(
                ConnectionActivatedV1(
                    connection_id=env.connection_id,
                    environment_id=uuid.uuid4(),
                    provider=Provider.TWENTYFOUR_SEVEN_OFFICE,
                    business_id=tenant.company.business_id,
                    company_name=tenant.company.name,
                    transaction_type="5",
                ),
                event_id=str(uuid.uuid4()),
                activated_at=clock(),
            )
        job = await env.run_next(LedgerSyncService(db, outbox, ledgers, clock=clock))

        assert job.status is ImportStatus.COMPLETED, job.error_message
        # Every transaction type was read (the sandbox's series map to several types).
        assert len({v.series for v in tenant.company.vouchers}) > 1
        assert await env.stored_balances() == ground_truth(tenant.company)
        # The type chosen at activation is the company's default for what we write.
        async with db.transaction() as session:
            sync_state = await session.get(SyncState, env.connection_id)
        assert sync_state is not None
        assert sync_state.default_transaction_type == "5"
        assert [c.settings.transaction_type for c in ledgers.opened] == [5]


async def test_lifecycle_events_pause_and_resume_the_schedule(env: Env) -> None:
    await env.activate()
    service = env.service()
    await env.run_next(service)
    env.clock.advance(minutes=30)
    async with env.db.transaction() as session:
        assert await SyncScheduleService(session).pause(
            env.connection_id, "the connection needs to be authorised again (invalid_grant)"
        )
        assert not await SyncScheduleService(session).pause(uuid.uuid4(), "unknown")
    assert await service.queue_scheduled() == 0  # paused: nothing is queued
    async with env.db.transaction() as session:
        state = await session.get(SyncState, env.connection_id)
        assert state is not None
        assert state.paused_reason == "the connection needs to be authorised again (invalid_grant)"
        assert await SyncScheduleService(session).resume(env.connection_id, now=env.clock())
    assert await service.queue_scheduled() == 1  # due at once after re-authorisation
