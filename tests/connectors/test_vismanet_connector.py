"""The Visma.net connector against the Visma.net sandbox, over real HTTP."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from fastapi import FastAPI, Request, Response
from pydantic import SecretStr

from ledgerlink.connectors.errors import (
    AccessNotEnabled,
    AuthenticationFailed,
    ConcurrencyConflict,
    ConnectorError,
    InvalidData,
    NotFound,
    PeriodLocked,
    RateLimited,
    ReauthorizationRequired,
    VendorUnavailable,
)
from ledgerlink.connectors.http import RateBudget, RetryPolicy
from ledgerlink.connectors.models import JournalLine, JournalPosting, SyncCursor, Voucher
from ledgerlink.connectors.vismanet import (
    INTERACTIVE_SCOPES,
    VismaNetConnector,
    VismaNetSettings,
    reference_number,
)
from ledgerlink.sandbox.config import RateLimitSettings, SandboxConfig
from ledgerlink.sandbox.data import CompanyData, LineData, generate_company
from ledgerlink.sandbox.faults import FaultPlan
from ledgerlink.sandbox.testing import RunningSandbox, running_sandbox
from ledgerlink.sandbox.vendors import vismanet as vn
from ledgerlink.sandbox.world import Tenant, World

CLIENT_ID = "isv_ledgerlink"
CLIENT_SECRET = "client-secret-5d1c"
WEB_CLIENT_ID = "isv_ledgerlink_web"
WEB_SECRET = "web-secret-a93f"
REDIRECT_URI = "https://ledgerlink.example/visma/callback"
USER = "anna@customer.example"
PASSWORD = "user-password-77e0"


class Clock:
    """The sandbox's wall clock; FakeSleep moves it, so waiting really lets time pass."""

    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class RequestLog:
    """What the sandbox received and answered."""

    entries: list[tuple[str, str, dict[str, str], int]] = field(default_factory=list)

    def count(self, method: str, path: str, status: int | None = None) -> int:
        return sum(
            1
            for m, p, _q, s in self.entries
            if m == method and p == path and (status is None or s == status)
        )

    def statuses(self) -> list[int]:
        return [s for *_rest, s in self.entries]


@dataclass
class Env:
    sandbox: RunningSandbox
    tenant: Tenant
    clock: Clock
    log: RequestLog

    @property
    def world(self) -> World:
        return self.sandbox.world

    def settings(self, **overrides: Any) -> VismaNetSettings:
        values: dict[str, Any] = {
            "client_id": CLIENT_ID,
            "client_secret": SecretStr(CLIENT_SECRET),
            "tenant_id": self.tenant.tenant_id,
            "api_base_url": self.sandbox.url("/vismanet"),
            "connect_base_url": self.sandbox.url("/visma-connect"),
        }
        values.update(overrides)
        return VismaNetSettings(**values)

    def interactive_settings(self, **overrides: Any) -> VismaNetSettings:
        return self.settings(
            client_id=WEB_CLIENT_ID,
            client_secret=SecretStr(WEB_SECRET),
            grant="authorization_code",
            tenant_id=None,
            company_id=vn.company_id(self.tenant),
            redirect_uri=REDIRECT_URI,
            **overrides,
        )


class FakeSleep:
    """Records waits and moves the sandbox clock instead of sleeping."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)
        self.clock.now += seconds


def _log_requests(log: RequestLog) -> Callable[[FastAPI, World], None]:
    def setup(app: FastAPI, world: World) -> None:
        @app.middleware("http")
        async def record(
            request: Request, call_next: Callable[[Request], Awaitable[Response]]
        ) -> Response:
            response = await call_next(request)
            log.entries.append(
                (
                    request.method,
                    request.url.path,
                    dict(request.query_params),
                    response.status_code,
                )
            )
            return response

    return setup


async def _env(rate: RateLimitSettings | None = None) -> AsyncIterator[Env]:
    clock = Clock()
    config = SandboxConfig(
        rate_limits={"vismanet": rate or RateLimitSettings(rate_per_second=100, burst=100_000)}
    )
    world = World(config, clock=clock)
    tenant = world.add_tenant("vismanet", lines=80)
    vn.register_client(world, CLIENT_ID, CLIENT_SECRET, tenants=[tenant.tenant_id])
    vn.register_client(
        world, WEB_CLIENT_ID, WEB_SECRET, kind="interactive", redirect_uri=REDIRECT_URI
    )
    vn.add_user(world, USER, PASSWORD, tenant)
    log = RequestLog()
    async with running_sandbox(
        world=world, vendors=("vismanet",), setup=_log_requests(log)
    ) as sandbox:
        yield Env(sandbox, tenant, clock, log)


@pytest.fixture
async def env() -> AsyncIterator[Env]:
    async for value in _env():
        yield value


def connector(
    env: Env,
    sleep: FakeSleep | None = None,
    *,
    settings: VismaNetSettings | None = None,
    retry: RetryPolicy | None = None,
    **overrides: Any,
) -> VismaNetConnector:
    fake = sleep or FakeSleep(env.clock)
    return VismaNetConnector(
        settings or env.settings(**overrides),
        budget=RateBudget(1000, 1000, clock=env.clock, sleep=fake),
        retry=retry or RetryPolicy(attempts=6, max_total_seconds=600),
        sleep=fake,
    )


async def read_all(
    conn: VismaNetConnector, cursor: SyncCursor | None = None, page_size: int | None = None
) -> tuple[list[Voucher], SyncCursor, int]:
    vouchers: list[Voucher] = []
    calls = 0
    while True:
        page = await conn.read_vouchers(cursor, page_size=page_size)
        calls += 1
        # A call that says "more" always brings something.
        assert page.vouchers or not page.has_more
        vouchers.extend(page.vouchers)
        cursor = page.cursor
        if not page.has_more:
            return vouchers, cursor, calls


def expected_vouchers(company: CompanyData) -> dict[str, list[tuple[str, Decimal]]]:
    return {str(v.id): [(line.account, line.amount) for line in v.lines] for v in company.vouchers}


def as_lines(vouchers: list[Voucher]) -> dict[str, list[tuple[str, Decimal]]]:
    return {v.external_id: [(line.account, line.amount) for line in v.lines] for v in vouchers}


def posting(env: Env, reference: str = "RUN-2025-06-0001-normal", **overrides: Any) -> Any:
    company = env.tenant.company
    expense = next(a.number for a in company.accounts if a.type == "expense" and a.active)
    liability = next(a.number for a in company.accounts if a.type == "liability" and a.active)
    values: dict[str, Any] = {
        "date": dt.date(2025, 6, 25),
        "period": dt.date(2025, 6, 1),
        "description": "Payroll June",
        "reference": reference,
        "lines": (
            JournalLine(
                account=expense,
                amount=Decimal("2500.10"),
                description="Salaries",
                cost_centre="100",
                cost_unit="CU01",
            ),
            JournalLine(account=liability, amount=Decimal("-2500.10"), description="Net wages"),
        ),
    }
    values.update(overrides)
    return JournalPosting(**values)


# --------------------------------------------------------------------------------------------
# Happy path
# --------------------------------------------------------------------------------------------


async def test_reads_master_data_and_every_voucher(env: Env) -> None:
    company = env.tenant.company
    async with connector(env) as conn:
        (found,) = await conn.list_companies()
        accounts = await conn.read_accounts()
        dimensions = await conn.read_dimensions()
        periods = await conn.read_periods()
        vouchers, _cursor, _calls = await read_all(conn, page_size=9)
    assert found.business_id == company.business_id
    assert found.currency == company.currency
    assert [a.number for a in accounts] == [a.number for a in company.accounts]
    assert {a.type for a in accounts} <= {"asset", "liability", "revenue", "expense"}
    kinds = {d.kind: d for d in dimensions}
    assert {o.code for o in kinds["cost_centre"].objects} >= {"100", "900"}
    assert not next(o for o in kinds["cost_centre"].objects if o.code == "900").active
    assert periods[0].status == "closed"
    assert any(p.status == "open" for p in periods)
    assert as_lines(vouchers) == expected_vouchers(company)
    assert all(v.balance == 0 for v in vouchers)
    with_dims = next(
        (v, line) for v in company.vouchers for line in v.lines if "cost_unit" in line.dimensions
    )
    read = next(v for v in vouchers if v.external_id == str(with_dims[0].id))
    line = read.lines[with_dims[0].lines.index(with_dims[1])]
    assert line.dimensions == {
        "cost_centre": with_dims[1].dimensions["cost_centre"],
        "cost_unit": with_dims[1].dimensions["cost_unit"],
    }


async def test_posts_a_value_wrapped_journal_with_segments_once(env: Env) -> None:
    company = env.tenant.company
    before = len(company.vouchers)
    async with connector(env) as conn:
        posted = await conn.post_journal(posting(env))
        assert posted.status == "Balanced"
        again = await conn.post_journal(posting(env))
    # The second posting found the first batch by its reference (and said so).
    assert (again.external_id, again.status) == (posted.external_id, posted.status)
    assert (posted.found_existing, again.found_existing) == (False, True)
    assert len(company.vouchers) == before + 1
    assert env.log.count("POST", "/vismanet/v2/journaltransaction") == 1
    voucher = company.voucher(int(posted.external_id))
    assert voucher.lines[0].dimensions == {"cost_centre": "100", "cost_unit": "CU01"}
    assert voucher.lines[1].amount == Decimal("-2500.10")
    extra = env.tenant.state["vismanet_batches"][voucher.id]
    assert extra.financial_period == "202506"
    assert set(extra.references.values()) == {reference_number("RUN-2025-06-0001-normal")}


async def test_release_after_post_and_correction_in_its_own_period(env: Env) -> None:
    async with connector(env, release_after_post=True) as conn:
        normal = await conn.post_journal(posting(env))
        # A retroactive correction carries the normal run's reference but goes to the
        # period it corrects: a different batch, not a duplicate.
        correction = await conn.post_journal(
            posting(env, period=dt.date(2025, 5, 1), description="Correction May")
        )
        again = await conn.post_journal(posting(env))
    assert normal.status == correction.status == "Posted"
    assert normal.external_id != correction.external_id
    assert again.external_id == normal.external_id
    extras = env.tenant.state["vismanet_batches"]
    assert extras[int(correction.external_id)].financial_period == "202505"


async def test_interactive_authorization_with_pkce_and_refresh(env: Env) -> None:
    server = vn.oauth_server(env.world)
    async with (
        connector(env, settings=env.interactive_settings()) as conn,
        httpx.AsyncClient(base_url=env.sandbox.base_url) as browser,
    ):
        url, verifier = conn.authorization_url("state-1")
        assert verifier is not None
        query = {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}
        assert query["code_challenge_method"] == "S256"
        assert set(query["scope"].split()) == set(INTERACTIVE_SCOPES)
        login = await browser.post(
            vn.AUTHORIZE_PATH, data={**query, "username": USER, "password": PASSWORD}
        )
        assert login.status_code == 302
        code = parse_qs(urlsplit(login.headers["location"]).query)["code"][0]
        tokens = await conn.exchange_code(code, verifier)
        assert tokens.refresh_token is not None
        (company,) = await conn.list_companies()
        assert company.external_id == vn.company_id(env.tenant)
        env.world.faults.expire_tokens("vismanet")
        accounts = await conn.read_accounts()
        assert accounts
        assert server.grant_counts.get("refresh_token") == 1
        rotated = await conn.session.current_tokens()
        assert rotated.refresh_token is not None
        assert rotated.refresh_token.get_secret_value() != tokens.refresh_token.get_secret_value()


# --------------------------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------------------------


async def test_wrong_secret_is_authentication_failed(env: Env) -> None:
    async with connector(env, client_secret=SecretStr("wrong")) as conn:
        with pytest.raises(AuthenticationFailed) as caught:
            await conn.read_accounts()
    assert caught.value.vendor_code == "invalid_client"


async def test_unknown_tenant_is_access_not_enabled(env: Env) -> None:
    async with connector(env, tenant_id="00000000-0000-4000-8000-000000000000") as conn:
        with pytest.raises(AccessNotEnabled) as caught:
            await conn.read_accounts()
    assert caught.value.vendor_code == "invalid_tenant"


async def test_company_tenant_id_is_12027_with_vendor_message(env: Env) -> None:
    async with connector(env, tenant_id=vn.company_tenant_id(env.tenant)) as conn:
        with pytest.raises(AccessNotEnabled) as caught:
            await conn.read_accounts()
    assert caught.value.vendor_code == "12027"
    assert caught.value.vendor_message == "No license for this company."
    assert "tenant id" in str(caught.value)


async def test_interactive_without_company_rights_is_12002(env: Env) -> None:
    other = env.world.add_tenant("vismanet", lines=4)
    settings = env.interactive_settings().model_copy(update={"company_id": vn.company_id(other)})
    async with (
        connector(env, settings=settings) as conn,
        httpx.AsyncClient(base_url=env.sandbox.base_url) as browser,
    ):
        url, verifier = conn.authorization_url("s")
        query = {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}
        login = await browser.post(
            vn.AUTHORIZE_PATH, data={**query, "username": USER, "password": PASSWORD}
        )
        code = parse_qs(urlsplit(login.headers["location"]).query)["code"][0]
        await conn.exchange_code(code, verifier)
        with pytest.raises(AccessNotEnabled) as caught:
            await conn.read_accounts()
    assert caught.value.vendor_code == "12002"


@pytest.mark.parametrize(
    ("change", "error", "fragment"),
    [
        ({"period": dt.date(2025, 1, 1)}, PeriodLocked, "is closed"),
        ({"period": dt.date(2031, 1, 1)}, InvalidData, "does not exist"),
        (
            {"lines": (JournalLine(account="0000", amount=Decimal(1)),)},
            InvalidData,
            "cannot be found",
        ),
        (
            {
                "lines": (
                    JournalLine(account="4000", amount=Decimal(5), cost_centre="900"),
                    JournalLine(account="4000", amount=Decimal(-5)),
                )
            },
            InvalidData,
            "inactive",
        ),
    ],
)
async def test_refused_postings_keep_the_vendor_message(
    env: Env, change: dict[str, Any], error: type[ConnectorError], fragment: str
) -> None:
    async with connector(env) as conn:
        with pytest.raises(error) as caught:
            await conn.post_journal(posting(env, **change))
    assert caught.value.status == 400
    assert caught.value.vendor_message is not None
    assert fragment in caught.value.vendor_message


async def test_unbalanced_posting_is_invalid_data(env: Env) -> None:
    base = posting(env)
    unbalanced = base.model_copy(
        update={"lines": (base.lines[0], base.lines[1].model_copy(update={"amount": -1}))}
    )
    async with connector(env) as conn:
        with pytest.raises(InvalidData) as caught:
            await conn.post_journal(unbalanced)
    assert "out of balance" in (caught.value.vendor_message or "")
    assert not isinstance(caught.value, PeriodLocked)


async def test_not_found_and_concurrency_conflict(env: Env) -> None:
    async with connector(env) as conn:
        with pytest.raises(NotFound):
            await conn.read_batch("999999")
        posted = await conn.post_journal(posting(env))
        voucher, etag = await conn.read_batch(posted.external_id)
        assert etag is not None
        new_etag = await conn.update_description(posted.external_id, "Renamed", etag=etag)
        assert new_etag != etag
        with pytest.raises(ConcurrencyConflict) as caught:
            await conn.update_description(posted.external_id, "Lost update", etag=etag)
    assert caught.value.status == 412
    assert env.tenant.company.voucher(int(voucher.external_id)).description == "Renamed"


async def test_persistent_429_is_rate_limited(env: Env) -> None:
    sleep = FakeSleep(env.clock)
    async with connector(env, sleep, retry=RetryPolicy(attempts=3)) as conn:
        await conn.read_accounts()
        env.world.faults.set(FaultPlan(vendor="vismanet", storm_429=100, retry_after_seconds=3))
        with pytest.raises(RateLimited) as caught:
            await conn.read_accounts()
    assert caught.value.retry_after == 3
    assert env.log.count("GET", "/vismanet/v1/account", 429) == 3
    assert sum(sleep.waits) >= 2 * 3  # two retries, each after the Retry-After


async def test_outage_is_vendor_unavailable_after_retries(env: Env) -> None:
    async with connector(env, retry=RetryPolicy(attempts=3)) as conn:
        env.world.faults.set(FaultPlan(vendor="vismanet", error_rate=1.0, error_status=503))
        with pytest.raises(VendorUnavailable) as caught:
            await conn.read_accounts()
    assert caught.value.status == 503
    assert env.log.count("GET", "/vismanet/v1/account", 503) == 3


async def test_expired_grant_without_offline_access_needs_reauthorization(env: Env) -> None:
    scopes = tuple(s for s in INTERACTIVE_SCOPES if s != "offline_access")
    settings = env.interactive_settings(scopes=scopes)
    async with (
        connector(env, settings=settings) as conn,
        httpx.AsyncClient(base_url=env.sandbox.base_url) as browser,
    ):
        url, verifier = conn.authorization_url("s")
        query = {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}
        login = await browser.post(
            vn.AUTHORIZE_PATH, data={**query, "username": USER, "password": PASSWORD}
        )
        code = parse_qs(urlsplit(login.headers["location"]).query)["code"][0]
        tokens = await conn.exchange_code(code, verifier)
        assert tokens.refresh_token is None
        env.world.faults.expire_tokens("vismanet")
        with pytest.raises(ReauthorizationRequired):
            await conn.read_accounts()


# --------------------------------------------------------------------------------------------
# Line-based paging
# --------------------------------------------------------------------------------------------


def books(env: Env, *line_counts: int) -> CompanyData:
    """Replace the tenant's books by vouchers with exactly these line counts."""
    company = generate_company(99, country="NL", lines=0)
    expense = next(a.number for a in company.accounts if a.type == "expense" and a.active)
    bank = next(a.number for a in company.accounts if a.type == "asset" and a.active)
    for index, count in enumerate(line_counts):
        lines = [
            LineData(n, expense, Decimal(n * 10 + index), f"line {n}") for n in range(1, count)
        ]
        total = sum((line.amount for line in lines), Decimal(0))
        lines.append(LineData(count, bank, -total, "counter"))
        # An explicit modification time: without one the sandbox stamps with the wall clock,
        # and whether two batches share a millisecond stamp (Visma's resolution) then
        # depended on the machine's speed, and so did the number of pages read.
        company.add_voucher(
            date=dt.date(2025, 6, 1 + index),
            description=f"v{index}",
            lines=lines,
            at=dt.datetime(2025, 7, 1, tzinfo=dt.UTC) + dt.timedelta(seconds=index),
        )
    env.tenant.company = company
    env.tenant.state.clear()
    return company


@pytest.mark.parametrize(
    ("line_counts", "expected_calls"),
    [
        ((), 1),  # empty
        ((2, 2), 2),  # exact multiple: a full page, then the held-back batch
        ((2, 3), 2),  # one over: the second batch is split over two pages
        ((3, 3, 3), 3),  # a batch split across a page boundary, more after it
        ((10,), 1),  # one batch longer than a page: three pages reassembled
        ((2, 10, 2), 2),
        ((4, 4, 4), 3),  # every page ends exactly at a batch boundary
        ((2, 2, 2, 2, 2), 3),  # several whole batches per page
    ],
)
async def test_line_paging_boundaries(
    env: Env, line_counts: tuple[int, ...], expected_calls: int
) -> None:
    company = books(env, *line_counts)
    async with connector(env) as conn:
        vouchers, cursor, calls = await read_all(conn, page_size=4)
        again, _cursor, _calls = await read_all(conn, cursor, page_size=4)
    assert as_lines(vouchers) == expected_vouchers(company)
    # Each batch exactly once, in stamp order, whole.
    assert [v.external_id for v in vouchers] == [str(v.id) for v in company.vouchers]
    assert calls == expected_calls
    assert again == []
    pages = [
        q for m, p, q, _s in env.log.entries if m == "GET" and p.endswith("/journaltransaction")
    ]
    assert {q["pageSize"] for q in pages} <= {"4"}


async def test_batches_sharing_one_stamp_are_paged_within_it(env: Env) -> None:
    company = books(env, 3, 2, 3, 2, 3)
    stamp = dt.datetime(2025, 6, 30, 12, tzinfo=dt.UTC)
    for voucher in company.vouchers:
        voucher.modified_at = stamp
    async with connector(env) as conn:
        first, cursor, _calls = await read_all(conn, page_size=4)
        second, _cursor, _calls = await read_all(conn, cursor, page_size=4)
    assert as_lines(first) == expected_vouchers(company)
    assert len(first) == len(company.vouchers)
    assert second == []


# --------------------------------------------------------------------------------------------
# Token expiry, 429 storms, rate headers, incremental reads
# --------------------------------------------------------------------------------------------


async def test_token_expiring_mid_sync_is_renewed_once(env: Env) -> None:
    server = vn.oauth_server(env.world)
    async with connector(env) as conn:
        env.world.faults.set(FaultPlan(vendor="vismanet", expire_tokens_after=3))
        vouchers, _cursor, calls = await read_all(conn, page_size=20)
    assert calls > 3
    assert conn.session.refresh_count == 1
    assert server.grant_counts["client_credentials"] == 2
    assert env.log.count("GET", "/vismanet/v2/journaltransaction", 401) == 1
    assert as_lines(vouchers) == expected_vouchers(env.tenant.company)


async def test_429_storm_slows_the_sync_without_failing_it(env: Env) -> None:
    sleep = FakeSleep(env.clock)
    async with connector(env, sleep) as conn:
        env.world.faults.set(FaultPlan(vendor="vismanet", storm_429=4, retry_after_seconds=2))
        vouchers, _cursor, _calls = await read_all(conn, page_size=50)
    assert as_lines(vouchers) == expected_vouchers(env.tenant.company)
    assert sum(sleep.waits) >= 4 * 2
    assert env.log.statuses().count(429) == 4


async def test_spent_rate_window_pauses_instead_of_hitting_429() -> None:
    async for env in _env(RateLimitSettings(rate_per_second=3 / 60, burst=3)):
        sleep = FakeSleep(env.clock)
        async with connector(env, sleep) as conn:
            for _ in range(3):
                await conn.read_accounts()
            assert conn.rate_remaining == 0
            # The window is spent: the next calls wait for its reset instead of a 429.
            for _ in range(2):
                await conn.read_accounts()
            assert conn.rate_remaining is not None
            assert conn.rate_remaining > 0
        assert 429 not in env.log.statuses()
        assert any(wait >= 1 for wait in sleep.waits), "paused until the window reset"


def paced_connector(env: Env, sleep: FakeSleep, rate: float, burst: int) -> VismaNetConnector:
    """A connector whose budget runs on the sandbox's clock (simulated time throughout)."""
    return VismaNetConnector(
        env.settings(requests_per_second=rate, burst=burst),
        budget=RateBudget(rate, burst, clock=env.clock, sleep=sleep),
        retry=RetryPolicy(attempts=6, max_total_seconds=600),
        sleep=sleep,
    )


async def test_short_fixed_window_is_used_at_the_budget_rate() -> None:
    # 5 calls per 0.25 s window, Reset "1" throughout: a pause of Reset after each spent
    # window would leave 5 calls per 1.25 s (0.2 of the limit); the window's start + its
    # length ends the pause where the window really ends.
    async for env in _env(RateLimitSettings(rate_per_second=20, burst=5)):
        sleep = FakeSleep(env.clock)
        async with paced_connector(env, sleep, rate=20, burst=1) as conn:
            await conn.read_accounts()
            started = env.clock()
            calls = 100
            for _ in range(calls):
                await conn.read_accounts()
            elapsed = env.clock() - started
        assert 429 not in env.log.statuses()
        assert conn.rate_window.ends_by is not None
        assert calls / elapsed >= 0.95 * 20, f"{calls / elapsed:.2f} calls/s of 20"


async def test_a_window_length_that_visma_contradicts_costs_one_429_at_most() -> None:
    # Configured as 40 calls/s while the sandbox allows 20: the estimated window (0.125 s) is
    # too short, so the first resume is early and refused; after that only Reset counts.
    async for env in _env(RateLimitSettings(rate_per_second=20, burst=5)):
        sleep = FakeSleep(env.clock)
        async with paced_connector(env, sleep, rate=40, burst=5) as conn:
            for _ in range(40):
                await conn.read_accounts()
            assert conn.rate_window.trust_length is False
        assert env.log.statuses().count(429) == 1


async def test_voided_and_edited_batches_come_with_the_next_sync(env: Env) -> None:
    tenant = env.tenant
    async with connector(env) as conn:
        first, cursor, _calls = await read_all(conn, page_size=25)
        assert len(first) == len(tenant.company.vouchers)
        nothing, cursor, _calls = await read_all(conn, cursor, page_size=25)
        assert nothing == []
        async with httpx.AsyncClient(base_url=env.sandbox.base_url) as control:
            base = f"/_sandbox/vismanet/{tenant.tenant_id}/vouchers"
            assert (await control.post(f"{base}/3/invalidate")).status_code == 200
            assert (await control.post(f"{base}/5/edit")).status_code == 200
        changed, cursor, _calls = await read_all(conn, cursor, page_size=25)
        assert {v.external_id: v.status for v in changed} == {"3": "invalidated", "5": "valid"}
        edited = next(v for v in changed if v.external_id == "5")
        assert edited.description.endswith("(edited)")
        old = next(v for v in first if v.external_id == "5")
        assert edited.version != old.version
        after, _cursor, _calls = await read_all(conn, cursor, page_size=25)
    assert after == []


# --------------------------------------------------------------------------------------------
# Secrets
# --------------------------------------------------------------------------------------------


async def test_no_secret_in_errors_or_logs(env: Env, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    errors: list[ConnectorError] = []
    secrets = [CLIENT_SECRET, WEB_SECRET, PASSWORD, "wrong-secret-123"]
    async with connector(env) as conn:
        await conn.read_accounts()
        tokens = await conn.session.current_tokens()
        secrets.append(tokens.access_token.get_secret_value())
        env.world.faults.set(FaultPlan(vendor="vismanet", expire_tokens_after=1))
        await conn.read_accounts()
        env.world.faults.clear()
        env.tenant.api_enabled = False
        with pytest.raises(AccessNotEnabled) as denied:
            await conn.read_accounts()
        errors.append(denied.value)
        env.tenant.api_enabled = True
        with pytest.raises(PeriodLocked) as locked:
            await conn.post_journal(posting(env, period=dt.date(2025, 1, 1)))
        errors.append(locked.value)
        assert CLIENT_SECRET not in repr(conn) + repr(conn.settings) + str(conn.settings)
    async with connector(env, client_secret=SecretStr("wrong-secret-123")) as conn:
        with pytest.raises(AuthenticationFailed) as refused:
            await conn.read_accounts()
        errors.append(refused.value)
    assert caplog.records, "the connector logs what it does"
    for secret in secrets:
        assert secret not in caplog.text
        for error in errors:
            assert secret not in str(error)
            assert secret not in repr(error)
