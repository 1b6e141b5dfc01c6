"""The Procountor connector against the Procountor sandbox, over real HTTP."""

from __future__ import annotations

import datetime as dt
import html
import logging
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qs, urljoin, urlsplit

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
from ledgerlink.connectors.procountor import (
    SALARY_NOT_VISIBLE,
    ProcountorConnector,
    ProcountorSettings,
    ProcountorVoucherPage,
)
from ledgerlink.sandbox.config import SandboxConfig
from ledgerlink.sandbox.data import LineData
from ledgerlink.sandbox.faults import FaultPlan
from ledgerlink.sandbox.testing import RunningSandbox, running_sandbox
from ledgerlink.sandbox.vendors.procountor import add_user, procountor_server
from ledgerlink.sandbox.world import Tenant, World

CLIENT_ID = "ledgerlink-test"
CLIENT_SECRET = "client-secret-7f3a9"
REDIRECT_URI = "https://ledgerlink.example/procountor/callback"
PASSWORD = "user-password-c41e"
API_KEY = "api-key-91bd2e"


@dataclass
class RequestLog:
    """Paths and queries of the requests the sandbox received."""

    entries: list[tuple[str, str, dict[str, str]]] = field(default_factory=list)
    statuses: list[int] = field(default_factory=list)

    def count(self, method: str, path: str) -> int:
        return sum(1 for m, p, _ in self.entries if m == method and p == path)

    def queries(self, path: str) -> list[dict[str, str]]:
        return [q for m, p, q in self.entries if m == "GET" and p == path]


@dataclass
class Env:
    sandbox: RunningSandbox
    world: World
    tenant: Tenant
    log: RequestLog

    @property
    def base_url(self) -> str:
        return self.sandbox.url("/procountor")

    def settings(self, **overrides: Any) -> ProcountorSettings:
        values: dict[str, Any] = {
            "client_id": CLIENT_ID,
            "client_secret": SecretStr(CLIENT_SECRET),
            "redirect_uri": REDIRECT_URI,
            "base_url": self.base_url,
        }
        values.update(overrides)
        return ProcountorSettings(**values)


class SteppingClock:
    """A monotonic clock that moves ``step`` seconds each time it is read."""

    def __init__(self, step: float) -> None:
        self.step = step
        self.now = 0.0

    def __call__(self) -> float:
        self.now += self.step
        return self.now


class FakeSleep:
    """Records the waits instead of sleeping them: "slows down" is the sum of the waits.
    Its own clock moves by each wait, and the budget runs on it (time is one pair)."""

    def __init__(self) -> None:
        self.waits: list[float] = []
        self.now = 0.0

    def clock(self) -> float:
        return self.now

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)
        self.now += seconds


def connector(env: Env, sleep: FakeSleep | None = None, **overrides: Any) -> ProcountorConnector:
    fake = sleep or FakeSleep()
    return ProcountorConnector(
        env.settings(**overrides),
        budget=RateBudget(20, 10, clock=fake.clock, sleep=fake),
        retry=RetryPolicy(attempts=6, max_total_seconds=60),
        sleep=fake,
    )


def _credentials(username: str) -> dict[str, str]:
    return {
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
        "redirect_uri": REDIRECT_URI,
        "username": username,
        "password": PASSWORD,
        "api_key": API_KEY,
    }


_counter = 0


def _username() -> str:
    global _counter
    _counter += 1
    return f"user{_counter}"


def _log_requests(log: RequestLog) -> Callable[[FastAPI, World], None]:
    def setup(app: FastAPI, world: World) -> None:
        @app.middleware("http")
        async def record(
            request: Request, call_next: Callable[[Request], Awaitable[Response]]
        ) -> Response:
            log.entries.append((request.method, request.url.path, dict(request.query_params)))
            response = await call_next(request)
            log.statuses.append(response.status_code)
            return response

    return setup


@pytest.fixture
async def env() -> AsyncIterator[Env]:
    # The sandbox's rate limiter sees every request 50 ms after the previous one, so tests that
    # do not sleep for real stay within 20/s; test_rate_budget_keeps_to_twenty_per_second
    # runs the real limiter against the real budget.
    world = World(SandboxConfig(lines_per_company=300), monotonic=SteppingClock(0.05))
    tenant = world.add_tenant("procountor", credentials=_credentials(_username()))
    log = RequestLog()
    async with running_sandbox(
        world=world, vendors=("procountor",), setup=_log_requests(log)
    ) as sandbox:
        yield Env(sandbox, world, tenant, log)


async def authorize(env: Env, conn: ProcountorConnector, *, username: str | None = None) -> None:
    """The whole authorization code flow, as a browser would do it."""
    url = conn.authorization_url(state="state-123")
    async with httpx.AsyncClient() as browser:
        page = await browser.get(url)
        assert page.status_code == 200
        action = re.search(r'<form method="post" action="([^"]+)"', page.text)
        assert action is not None
        form = {
            name: html.unescape(value)
            for name, value in re.findall(
                r'<input type="hidden" name="([^"]+)" value="([^"]*)">', page.text
            )
        }
        form["username"] = username or env.tenant.credentials["username"]
        form["password"] = PASSWORD
        answer = await browser.post(urljoin(url, html.unescape(action.group(1))), data=form)
    assert answer.status_code == 302
    location = answer.headers["location"]
    assert location.startswith(REDIRECT_URI + "?")
    query = parse_qs(urlsplit(location).query)
    assert query["state"] == ["state-123"]
    await conn.exchange_code(query["code"][0])


def _fresh_company(env: Env, count: int) -> None:
    """Replace the tenant's receipts by ``count`` new ones (and no payroll)."""
    company = env.tenant.company
    company.vouchers.clear()
    company.payroll_runs.clear()
    company.__post_init__()
    for index in range(count):
        company.add_voucher(
            date=dt.date(2025, 6, 1 + index % 28),
            description=f"Receipt {index}",
            lines=[
                LineData(1, "1910", Decimal("10.00")),
                LineData(2, "3000", Decimal("-10.00")),
            ],
        )


async def _read_all(
    conn: ProcountorConnector, cursor: SyncCursor | None = None, page_size: int | None = None
) -> tuple[list[Voucher], SyncCursor, int]:
    vouchers: list[Voucher] = []
    pages = 0
    while True:
        page = await conn.read_vouchers(cursor, page_size=page_size)
        pages += 1
        vouchers.extend(page.vouchers)
        cursor = page.cursor
        if not page.has_more:
            return vouchers, cursor, pages


def _posting(**overrides: Any) -> JournalPosting:
    values: dict[str, Any] = {
        "date": dt.date(2025, 6, 25),
        "period": dt.date(2025, 6, 1),
        "description": "Payroll June",
        "reference": "RUN-2025-06",
        "lines": (
            JournalLine(account="5000", amount=Decimal("1234.56"), cost_centre="100"),
            JournalLine(account="2960", amount=Decimal("-1234.56")),
        ),
    }
    values.update(overrides)
    return JournalPosting(**values)


# --------------------------------------------------------------------------------------------
# Happy path
# --------------------------------------------------------------------------------------------


async def test_happy_path_read_and_write(env: Env) -> None:
    company = env.tenant.company
    async with connector(env) as conn:
        await authorize(env, conn)

        companies = await conn.list_companies()
        assert [(c.external_id, c.business_id, c.name) for c in companies] == [
            (env.tenant.tenant_id, company.business_id, company.name)
        ]
        accounts = await conn.read_accounts()
        assert [a.number for a in accounts] == [a.number for a in company.accounts]
        assert {a.number for a in accounts if not a.active} == {
            a.number for a in company.accounts if not a.active
        }
        dimensions = await conn.read_dimensions()
        assert [d.kind for d in dimensions] == ["cost_centre", "cost_unit", "project"]
        assert any(not o.active for o in dimensions[0].objects)
        periods = await conn.read_periods()
        assert len(periods) == 24
        assert {p.start for p in periods if p.status == "closed"} == {
            p.start for y in company.fiscal_years for p in y.periods if p.closed
        }

        vouchers, _cursor, _pages = await _read_all(conn)
        ids = [v.external_id for v in vouchers]
        assert len(ids) == len(set(ids))
        salary = [v for v in vouchers if v.series == "SALARY"]
        assert len(salary) == len(company.payroll_runs)
        assert len(vouchers) == len(company.vouchers) + len(company.payroll_runs)
        assert all(v.balance == 0 for v in vouchers)
        sample = company.vouchers[0]
        read = next(v for v in vouchers if v.external_id == str(sample.id))
        assert [line.amount for line in read.lines] == [line.amount for line in sample.lines]
        assert [dict(line.dimensions) for line in read.lines] == [
            dict(line.dimensions) for line in sample.lines
        ]

        posted = await conn.post_journal(_posting())
        assert posted.status == "UNFINISHED"
        [receipt] = await conn.read_receipts([posted.external_id])
        assert receipt.series == "JOURNAL"
        assert receipt.date == dt.date(2025, 6, 25)
        assert [(line.account, line.amount, dict(line.dimensions)) for line in receipt.lines] == [
            ("5000", Decimal("1234.56"), {"cost_centre": "100"}),
            ("2960", Decimal("-1234.56"), {}),
        ]
        assert receipt.version is not None

        changed = _posting(description="Payroll June, corrected")
        updated = await conn.update_journal(posted.external_id, changed, version=receipt.version)
        assert updated.external_id == posted.external_id
        [again] = await conn.read_receipts([posted.external_id])
        assert again.description.startswith("Payroll June, corrected")
        assert again.version != receipt.version


async def test_client_credentials_with_api_key(env: Env) -> None:
    async with connector(env, api_key=SecretStr(API_KEY)) as conn:
        [company] = await conn.list_companies()
    assert company.external_id == env.tenant.tenant_id
    assert procountor_server(env.world).grant_counts == {"client_credentials": 1}


async def test_correction_posted_in_the_period_it_corrects(env: Env) -> None:
    async with connector(env) as conn:
        await authorize(env, conn)
        posted = await conn.post_journal(
            _posting(date=dt.date(2025, 7, 25), period=dt.date(2025, 5, 1))
        )
        [receipt] = await conn.read_receipts([posted.external_id])
    assert receipt.date == dt.date(2025, 5, 31)


# --------------------------------------------------------------------------------------------
# Error categories
# --------------------------------------------------------------------------------------------


async def test_wrong_client_secret_is_authentication_failed(env: Env) -> None:
    async with connector(env, client_secret=SecretStr("wrong-secret-123")) as conn:
        with pytest.raises(AuthenticationFailed) as caught:
            await authorize(env, conn)
    assert caught.value.vendor_code == "invalid_client"
    assert not isinstance(caught.value, ReauthorizationRequired)


async def test_wrong_api_key_is_authentication_failed(env: Env) -> None:
    async with connector(env, api_key=SecretStr("not-the-key")) as conn:
        with pytest.raises(AuthenticationFailed) as caught:
            await conn.list_companies()
    assert caught.value.vendor_code == "invalid_grant"


async def test_not_authorised_yet_needs_a_person(env: Env) -> None:
    async with connector(env) as conn:
        with pytest.raises(ReauthorizationRequired):
            await conn.list_companies()


async def test_revoked_grant_requires_reauthorization(env: Env) -> None:
    async with connector(env) as conn:
        await authorize(env, conn)
        procountor_server(env.world).revoke_all()
        with pytest.raises(ReauthorizationRequired) as caught:
            await conn.read_accounts()
    assert caught.value.vendor_code == "invalid_grant"


async def test_api_not_enabled_is_access_not_enabled(env: Env) -> None:
    async with connector(env) as conn:
        await authorize(env, conn)
        env.tenant.api_enabled = False
        with pytest.raises(AccessNotEnabled) as caught:
            await conn.read_accounts()
    assert caught.value.vendor_code == "API_CLIENTS_NOT_ALLOWED"
    assert caught.value.status == 403
    assert "invoiceable API clients" in str(caught.value)


async def test_closed_period_is_period_locked(env: Env) -> None:
    async with connector(env) as conn:
        await authorize(env, conn)
        with pytest.raises(PeriodLocked) as caught:
            await conn.post_journal(_posting(date=dt.date(2025, 2, 28), period=dt.date(2025, 2, 1)))
    assert caught.value.vendor_code == "RECEIPT_DATE_NOT_IN_OPEN_PERIOD"
    assert "receiptDate" in (caught.value.vendor_message or "")


async def test_unbalanced_and_inactive_account_are_invalid_data(env: Env) -> None:
    inactive = next(a.number for a in env.tenant.company.accounts if not a.active)
    async with connector(env) as conn:
        await authorize(env, conn)
        with pytest.raises(InvalidData) as caught:
            await conn.post_journal(
                _posting(
                    lines=(
                        JournalLine(account="5000", amount=Decimal("10.00")),
                        JournalLine(account=inactive, amount=Decimal("-9.99")),
                    )
                )
            )
        assert not isinstance(caught.value, PeriodLocked)
        message = caught.value.vendor_message or ""
        assert "TRANSACTIONS_NOT_BALANCED" in message
        assert "LEDGER_ACCOUNT_NOT_ACTIVE" in message
        with pytest.raises(InvalidData, match="cost centre '999'"):
            await conn.post_journal(
                _posting(
                    lines=(
                        JournalLine(account="5000", amount=Decimal("1"), cost_centre="999"),
                        JournalLine(account="2960", amount=Decimal("-1")),
                    )
                )
            )


async def test_unknown_receipt_is_not_found(env: Env) -> None:
    async with connector(env) as conn:
        await authorize(env, conn)
        with pytest.raises(NotFound) as caught:
            await conn.read_receipts(["8888888"])
    assert caught.value.status == 404


async def test_stale_version_is_concurrency_conflict(env: Env) -> None:
    async with connector(env) as conn:
        await authorize(env, conn)
        posted = await conn.post_journal(_posting())
        [receipt] = await conn.read_receipts([posted.external_id])
        assert receipt.version is not None
        await conn.update_journal(posted.external_id, _posting(), version=receipt.version)
        with pytest.raises(ConcurrencyConflict) as caught:
            await conn.update_journal(posted.external_id, _posting(), version=receipt.version)
    assert caught.value.vendor_code == "VERSION_CONFLICT"


async def test_persistent_server_errors_are_vendor_unavailable(env: Env) -> None:
    sleep = FakeSleep()
    async with connector(env, sleep) as conn:
        await authorize(env, conn)
        env.world.faults.set(FaultPlan(vendor="procountor", error_rate=1.0))
        with pytest.raises(VendorUnavailable) as caught:
            await conn.read_accounts()
    assert caught.value.status == 503
    assert len(sleep.waits) == 5  # six attempts, five back-offs


async def test_endless_429_is_rate_limited(env: Env) -> None:
    sleep = FakeSleep()
    async with connector(env, sleep) as conn:
        await authorize(env, conn)
        env.world.faults.set(FaultPlan(vendor="procountor", storm_429=100))
        with pytest.raises(RateLimited) as caught:
            await conn.read_accounts()
    assert caught.value.retry_after == 1.0
    assert caught.value.vendor_code == "TOO_MANY_REQUESTS"


async def test_salary_receipts_hidden_warns_and_can_refuse(env: Env) -> None:
    username = _username()
    add_user(env.world, env.tenant, username, PASSWORD, salary_rights=False)
    company = env.tenant.company
    async with connector(env) as conn:
        await authorize(env, conn, username=username)
        page = await conn.read_vouchers(page_size=200)
        assert isinstance(page, ProcountorVoucherPage)
        assert page.warnings == (SALARY_NOT_VISIBLE,)
        vouchers, _cursor, _pages = await _read_all(conn)
        assert len(vouchers) == len(company.vouchers)
        assert all(v.series != "SALARY" for v in vouchers)
    async with connector(env, require_salary_visibility=True) as strict:
        await authorize(env, strict, username=username)
        with pytest.raises(AccessNotEnabled, match="ledger read will not balance"):
            await strict.read_vouchers()
    async with connector(env) as full:
        await authorize(env, full)
        page = await full.read_vouchers()
        assert page.warnings == ()


# --------------------------------------------------------------------------------------------
# Pagination, incremental reads, token expiry, 429 storms
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("count", "page_size", "expected_pages"),
    [(0, 5, 1), (5, 5, 1), (6, 5, 2), (200, 500, 1), (201, 500, 2)],
)
async def test_pagination_boundaries(
    env: Env, count: int, page_size: int, expected_pages: int
) -> None:
    _fresh_company(env, count)
    async with connector(env) as conn:
        await authorize(env, conn)
        vouchers, _cursor, pages = await _read_all(conn, page_size=page_size)
    assert pages == expected_pages
    assert sorted(int(v.external_id) for v in vouchers) == [
        v.id for v in env.tenant.company.vouchers
    ]
    sizes = {q["size"] for q in env.log.queries("/procountor/api/ledgerreceipts") if "page" in q}
    assert sizes == {str(min(page_size, 200))}


async def test_receipts_sharing_one_version_are_paged_within_it(env: Env) -> None:
    _fresh_company(env, 7)
    stamp = dt.datetime(2025, 6, 30, 12, tzinfo=dt.UTC)
    for voucher in env.tenant.company.vouchers:
        voucher.modified_at = stamp
    async with connector(env) as conn:
        await authorize(env, conn)
        first, cursor, _pages = await _read_all(conn, page_size=3)
        assert sorted(int(v.external_id) for v in first) == list(range(1, 8))
        second, _cursor, _pages = await _read_all(conn, cursor, page_size=3)
    assert second == []


async def test_token_expiring_mid_sync_is_refreshed_once(env: Env) -> None:
    server = procountor_server(env.world)
    async with connector(env) as conn:
        await authorize(env, conn)
        env.world.faults.set(FaultPlan(vendor="procountor", expire_tokens_after=3))
        vouchers, _cursor, pages = await _read_all(conn, page_size=20)
    assert pages > 3
    assert server.grant_counts.get("refresh_token") == 1
    assert conn.session.refresh_count == 1
    company = env.tenant.company
    assert len(vouchers) == len(company.vouchers) + len(company.payroll_runs)


async def test_429_storm_slows_the_sync_without_failing_it(env: Env) -> None:
    sleep = FakeSleep()
    async with connector(env, sleep) as conn:
        await authorize(env, conn)
        env.world.faults.set(FaultPlan(vendor="procountor", storm_429=4, retry_after_seconds=2))
        vouchers, _cursor, _pages = await _read_all(conn, page_size=100)
    company = env.tenant.company
    assert len(vouchers) == len(company.vouchers) + len(company.payroll_runs)
    assert sum(sleep.waits) >= 4 * 2


async def test_invalidated_and_edited_vouchers_come_with_the_next_sync(env: Env) -> None:
    tenant = env.tenant
    async with connector(env) as conn:
        await authorize(env, conn)
        first, cursor, _pages = await _read_all(conn, page_size=50)
        assert first
        nothing, cursor, _pages = await _read_all(conn, cursor)
        assert nothing == []
        async with httpx.AsyncClient(base_url=env.sandbox.base_url) as control:
            base = f"/_sandbox/procountor/{tenant.tenant_id}/vouchers"
            assert (await control.post(f"{base}/3/invalidate")).status_code == 200
            assert (await control.post(f"{base}/5/edit")).status_code == 200
        changed, cursor, _pages = await _read_all(conn, cursor)
        assert {v.external_id: v.status for v in changed} == {"3": "invalidated", "5": "valid"}
        edited = next(v for v in changed if v.external_id == "5")
        assert edited.description.endswith("(edited)")
        after, _cursor, _pages = await _read_all(conn, cursor)
    assert after == []


# --------------------------------------------------------------------------------------------
# Secrets
# --------------------------------------------------------------------------------------------


async def test_no_secret_in_errors_or_logs(env: Env, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    errors: list[ConnectorError] = []
    secrets = [CLIENT_SECRET, PASSWORD, API_KEY, "wrong-secret-123"]
    async with connector(env, api_key=SecretStr(API_KEY)) as conn:
        await conn.list_companies()
        tokens = await conn.session.current_tokens()
        secrets.append(tokens.access_token.get_secret_value())
        env.world.faults.set(FaultPlan(vendor="procountor", expire_tokens_after=1))
        await conn.read_accounts()
        env.tenant.api_enabled = False
        with pytest.raises(AccessNotEnabled) as denied:
            await conn.read_accounts()
        errors.append(denied.value)
        env.tenant.api_enabled = True
        assert repr(conn.settings).count(API_KEY) == 0
        assert CLIENT_SECRET not in repr(conn) + repr(conn.settings)
    async with connector(env, client_secret=SecretStr("wrong-secret-123")) as conn:
        with pytest.raises(AuthenticationFailed) as refused:
            await authorize(env, conn)
        errors.append(refused.value)
    async with connector(env) as conn:
        await authorize(env, conn)
        tokens = await conn.session.current_tokens()
        assert tokens.refresh_token is not None
        secrets += [
            tokens.access_token.get_secret_value(),
            tokens.refresh_token.get_secret_value(),
        ]
        procountor_server(env.world).revoke_all()
        with pytest.raises(ReauthorizationRequired) as revoked:
            await conn.read_accounts()
        errors.append(revoked.value)
    assert caplog.records, "the connector logs what it does"
    for secret in secrets:
        assert secret not in caplog.text
        for error in errors:
            assert secret not in str(error)
            assert secret not in repr(error)


async def test_rate_budget_keeps_to_twenty_per_second() -> None:
    world = World(SandboxConfig(lines_per_company=20))
    tenant = world.add_tenant("procountor", credentials=_credentials(_username()))
    log = RequestLog()
    async with running_sandbox(
        world=world, vendors=("procountor",), setup=_log_requests(log)
    ) as sandbox:
        env = Env(sandbox, world, tenant, log)
        settings = env.settings(api_key=SecretStr(API_KEY))
        # The connector's own budget, real sleeps, against the sandbox's sliding one-second
        # window (a token bucket of 10 at 20/s let 29 through in the first second here).
        async with ProcountorConnector(settings) as conn:
            for _ in range(45):
                await conn.read_accounts()
    assert log.count("GET", "/procountor/api/coa") == 45
    assert 429 not in log.statuses
