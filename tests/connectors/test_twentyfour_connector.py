"""The 24SevenOffice connector against the sandbox over real HTTP."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import pytest

from ledgerlink.connectors.errors import (
    AccessNotEnabled,
    AuthenticationFailed,
    ConnectorError,
    DuplicateData,
    InvalidData,
    NotFound,
    PeriodLocked,
    RateLimited,
    VendorUnavailable,
)
from ledgerlink.connectors.http import RetryPolicy
from ledgerlink.connectors.models import JournalLine, JournalPosting, SyncCursor, Voucher
from ledgerlink.connectors.twentyfour import TwentyFourConnector, TwentyFourSettings
from ledgerlink.sandbox.config import RateLimitSettings, SandboxConfig
from ledgerlink.sandbox.data import CompanyData, generate_company
from ledgerlink.sandbox.faults import FaultPlan
from ledgerlink.sandbox.testing import RunningSandbox, running_sandbox
from ledgerlink.sandbox.vendors import twentyfour as tf
from ledgerlink.sandbox.world import Tenant, World

APP_ID = "ledgerlink-app-id-secret"
USER = "integration@firm.example"
PASSWORD = "pa55-word-never-logged"
CLIENT_ID = "ledgerlink-rest"
CLIENT_SECRET = "rest-secret-never-logged"
pytestmark = pytest.mark.timeout(60)

SECRETS = (APP_ID, PASSWORD, CLIENT_SECRET)
FAST_RETRY = RetryPolicy(attempts=4, initial_backoff_seconds=0.01, jitter_seconds=0.01)


@dataclass
class Env:
    sandbox: RunningSandbox
    world: World
    first: Tenant
    second: Tenant
    state: tf.TwentyFourState

    def settings(self, **changes: Any) -> TwentyFourSettings:
        values: dict[str, Any] = {
            "application_id": APP_ID,
            "username": USER,
            "password": PASSWORD,
            "client": self.first.tenant_id,
            "rest_client_id": CLIENT_ID,
            "rest_client_secret": CLIENT_SECRET,
            "transaction_type": 5,
            "soap_base_url": self.sandbox.url("/24so/soap"),
            "rest_base_url": self.sandbox.url(tf.REST_PREFIX),
            "token_url": self.sandbox.url(tf.TOKEN_PATH),
            "retry": FAST_RETRY,
        }
        values.update(changes)
        return TwentyFourSettings(**values)

    def connector(self, **changes: Any) -> TwentyFourConnector:
        return TwentyFourConnector(self.settings(**changes))


async def make_env(first: CompanyData, second: CompanyData) -> AsyncIterator[Env]:
    config = SandboxConfig(
        rate_limits={"twentyfour": RateLimitSettings(rate_per_second=10_000, burst=10_000)}
    )
    world = World(config)
    tenant_a = world.add_tenant("twentyfour", tenant_id="5001", company=first)
    tenant_b = world.add_tenant("twentyfour", tenant_id="5002", company=second)
    world.add_tenant("twentyfour", tenant_id="5003", company=generate_company(9, lines=10))
    state = tf.state_of(world)
    state.register_application(APP_ID)
    state.add_integration_user(USER, PASSWORD, ["5001", "5002"])
    state.add_rest_client(CLIENT_ID, CLIENT_SECRET, ["5001", "5002"])
    async with running_sandbox(world=world, vendors=("twentyfour",)) as sandbox:
        yield Env(sandbox, world, tenant_a, tenant_b, state)


@pytest.fixture
async def env() -> AsyncIterator[Env]:
    async for value in make_env(
        generate_company(41, country="NO", lines=300),
        generate_company(42, country="NO", lines=120),
    ):
        yield value


async def read_all(
    connector: TwentyFourConnector, cursor: SyncCursor | None = None, page_size: int = 50
) -> tuple[list[Voucher], SyncCursor, int]:
    vouchers: list[Voucher] = []
    pages = 0
    while True:
        page = await connector.read_vouchers(cursor, page_size=page_size)
        pages += 1
        vouchers.extend(page.vouchers)
        cursor = page.cursor
        if not page.has_more:
            return vouchers, cursor, pages


def expected_lines(company: CompanyData) -> dict[str, list[tuple[str, Decimal]]]:
    return {
        str(voucher.id): [(line.account, line.amount) for line in voucher.lines]
        for voucher in company.vouchers
    }


def assert_no_secret(text: str) -> None:
    for secret in SECRETS:
        assert secret not in text


# -- happy path ----------------------------------------------------------------------------------


async def test_reads_master_data_and_every_voucher_of_the_selected_client(env: Env) -> None:
    async with env.connector() as connector:
        companies = await connector.list_companies()
        assert [(c.external_id, c.name, c.currency) for c in companies] == [
            ("5001", env.first.company.name, "NOK"),
            ("5002", env.second.company.name, "NOK"),
        ]
        # Published Client (authenticate WSDL) is Id and Name only: no organisation number
        # (changed: the sandbox used to add one).
        assert companies[0].business_id is None
        types = await connector.read_transaction_types()
        assert (types[0].no, types[0].title) == (1, "Utgående faktura")

        accounts = await connector.read_accounts()
        assert [a.number for a in accounts] == [a.number for a in env.first.company.accounts]
        by_number = {a.number: a for a in accounts}
        assert by_number["1920"].type == "asset"
        assert by_number["2400"].type == "liability"
        assert by_number["3000"].type == "revenue"
        # Published AccountData has no active flag (changed: was read from a sandbox-only
        # IsActive): every listed account reads as active.
        assert all(a.active for a in accounts)

        dimensions = await connector.read_dimensions()
        assert [d.kind for d in dimensions] == ["cost_centre", "cost_unit", "project"]
        # Published values (GetUserDefinedDimensionValues) carry no active flag (changed).
        assert [o.code for o in dimensions[0].objects] == [
            o.code for o in env.first.company.dimensions[0].objects
        ]

        periods = await connector.read_periods()
        closed = [p for p in periods if p.status == "closed"]
        assert len(periods) == 24
        # Published FiscalYear locks whole years only (IsLocked; changed from period locks).
        assert max(p.end for p in closed) == max(
            y.end for y in env.first.company.fiscal_years if y.closed
        )

        vouchers, _cursor, pages = await read_all(connector)
    assert pages == 6  # 300 lines, 50 per page
    got = {v.external_id: [(line.account, line.amount) for line in v.lines] for v in vouchers}
    assert got == expected_lines(env.first.company)
    assert all(v.balance == 0 for v in vouchers)
    assert {v.status for v in vouchers} <= {"valid", "invalidated"}
    assert connector.logins == 1
    assert connector.tokens == 1


async def test_posts_a_journal_that_the_next_incremental_read_returns(env: Env) -> None:
    async with env.connector() as connector:
        _vouchers, cursor, _pages = await read_all(connector)
        posting = JournalPosting(
            date=dt.date(2025, 6, 25),
            period=dt.date(2025, 5, 1),  # a correction of May, posted in May
            description="Payroll correction May",
            reference="RUN-2025-05-corr",
            lines=(
                JournalLine(account="5000", amount=Decimal("1200.50"), cost_centre="100"),
                JournalLine(account="2930", amount=Decimal("-1200.50")),
            ),
        )
        # Published: the REST API has no transaction write endpoint; SaveBundleList answers
        # Ok without an id, so the posting is known by its reference (changed from
        # POST /transactions -> id, "Posted").
        posted = await connector.post_journal(posting)
        assert (posted.external_id, posted.status) == ("RUN-2025-05-corr", "Ok")
        changed, _cursor, _pages = await read_all(connector, cursor)
    assert len(changed) == 1
    voucher = changed[0]
    assert voucher.date == dt.date(2025, 5, 31)
    assert voucher.series == "5"
    assert [(line.account, line.amount) for line in voucher.lines] == [
        ("5000", Decimal("1200.50")),
        ("2930", Decimal("-1200.50")),
    ]
    assert voucher.lines[0].dimensions == {"cost_centre": "100"}


# -- errors --------------------------------------------------------------------------------------


async def test_every_error_category_keeps_the_vendor_message(
    env: Env, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    errors: list[ConnectorError] = []
    # Posting is a SOAP call now (the published REST API cannot post), so every connector
    # below logs in: allow the logins (the throttle itself is checked at the end).
    env.state.login_limit = 100

    async def expect(
        kind: type[ConnectorError],
        connector: TwentyFourConnector,
        call: Any,
        *,
        vendor_said: bool = True,
    ) -> None:
        async with connector:
            with pytest.raises(kind) as caught:
                await call(connector)
        assert caught.value.vendor == "twentyfour"
        # What the vendor said is kept; the connector's own refusals have nothing to keep.
        assert bool(caught.value.vendor_message) is vendor_said
        errors.append(caught.value)

    async def accounts(c: TwentyFourConnector) -> object:
        return await c.read_accounts()

    async def vouchers(c: TwentyFourConnector) -> object:
        return await c.read_vouchers()

    def posting(day: dt.date, *lines: tuple[str, str], reference: str = "R1") -> JournalPosting:
        return JournalPosting(
            date=day,
            period=day.replace(day=1),
            description="test",
            reference=reference,
            lines=tuple(JournalLine(account=a, amount=Decimal(m)) for a, m in lines),
        )

    await expect(AuthenticationFailed, env.connector(password="wrong-password"), accounts)
    await expect(AuthenticationFailed, env.connector(application_id="unregistered"), accounts)
    await expect(AuthenticationFailed, env.connector(rest_client_secret="nope"), vouchers)
    await expect(NotFound, env.connector(client="5003"), accounts, vendor_said=False)
    env.state.rest_clients[CLIENT_ID].organizations.discard("5002")
    await expect(AccessNotEnabled, env.connector(client="5002"), vouchers)
    env.second.api_enabled = False
    await expect(AccessNotEnabled, env.connector(client="5002"), accounts)

    unbalanced = posting(dt.date(2025, 6, 30), ("5000", "10.00"), ("2930", "-9.00"))
    closed = posting(dt.date(2025, 2, 28), ("5000", "10.00"), ("2930", "-10.00"))
    unknown = posting(dt.date(2025, 6, 30), ("9999", "10.00"), ("2930", "-10.00"))
    good = posting(dt.date(2025, 6, 30), ("5000", "10.00"), ("2930", "-10.00"), reference="R2")

    async def post(p: JournalPosting) -> Any:
        async def call(c: TwentyFourConnector) -> object:
            return await c.post_journal(p)

        return call

    await expect(InvalidData, env.connector(), await post(unbalanced))
    await expect(PeriodLocked, env.connector(), await post(closed))
    await expect(InvalidData, env.connector(), await post(unknown))
    await expect(
        InvalidData, env.connector(transaction_type=None), await post(good), vendor_said=False
    )
    async with env.connector() as connector:
        await connector.post_journal(good)
    await expect(DuplicateData, env.connector(), await post(good))

    env.world.faults.set(FaultPlan(vendor="twentyfour", error_rate=1.0, error_status=503))
    await expect(VendorUnavailable, env.connector(), accounts)
    env.world.faults.clear()
    env.state.login_limit = 0
    await expect(RateLimited, env.connector(), accounts)

    assert "do not balance" in (errors[6].vendor_message or "")
    assert errors[6].vendor_code == "NotSaved"
    assert "closed" in (errors[7].vendor_message or "")
    for error in errors:
        assert_no_secret(str(error))
        assert_no_secret(repr(error))
    assert_no_secret(caplog.text)


# -- pagination ------------------------------------------------------------------------------


@pytest.mark.parametrize(("lines", "pages"), [(0, 1), (100, 2), (102, 3)])
async def test_pagination_boundaries(lines: int, pages: int) -> None:
    # 0 lines: one empty page; 100 lines at 50: exactly two pages, the last without a next
    # link; 102: a third page with the rest.
    async for env in make_env(generate_company(7, country="NO", lines=lines), generate_company(8)):
        async with env.connector() as connector:
            vouchers, _cursor, read_pages = await read_all(connector, page_size=50)
        assert read_pages == pages
        got = {v.external_id: [(ln.account, ln.amount) for ln in v.lines] for v in vouchers}
        assert got == expected_lines(env.first.company)


async def test_a_transaction_cut_by_a_page_boundary_is_returned_whole(env: Env) -> None:
    async with env.connector() as connector:
        vouchers, _cursor, _pages = await read_all(connector, page_size=7)
    assert [v.external_id for v in vouchers] == [str(v.id) for v in env.first.company.vouchers]
    assert all(v.balance == 0 for v in vouchers)


# -- sessions, tokens, throttling ------------------------------------------------------------


async def test_token_and_session_expiring_mid_sync_are_renewed_once(env: Env) -> None:
    async with env.connector() as connector:
        first = await connector.read_vouchers(page_size=50)
        # The sandbox expires every session and token at the next request.
        env.world.faults.set(FaultPlan(vendor="twentyfour", expire_tokens_after=1))
        rest, _cursor, _pages = await read_all(connector, first.cursor, page_size=50)
        assert connector.tokens == 2
        assert len(first.vouchers) + len(rest) == len(env.first.company.vouchers)
        env.world.faults.clear()
        env.state.expire_sessions()
        accounts = await connector.read_accounts()
        assert len(accounts) == len(env.first.company.accounts)
        # Logged in again once, back into the selected client's identity.
        assert connector.logins == 2
        assert env.state.login_count == 2


async def test_a_429_storm_slows_the_sync_without_failing_it(env: Env) -> None:
    async with env.connector(retry=RetryPolicy(attempts=4, jitter_seconds=0)) as connector:
        first = await connector.read_vouchers(page_size=100)
        env.world.faults.set(FaultPlan(vendor="twentyfour", storm_429=2))
        loop_time = connector_loop_time()
        rest, _cursor, _pages = await read_all(connector, first.cursor, page_size=100)
        elapsed = connector_loop_time() - loop_time
    assert len(first.vouchers) + len(rest) == len(env.first.company.vouchers)
    assert elapsed >= 2.0  # two Retry-After: 1 waits were honoured


def connector_loop_time() -> float:
    return asyncio.get_running_loop().time()


# -- incremental reads and identities ---------------------------------------------------------


async def test_changed_and_removed_transactions_show_on_the_next_incremental_read(
    env: Env,
) -> None:
    async with env.connector() as connector:
        before, cursor, _pages = await read_all(connector)
        assert (await read_all(connector, cursor))[0] == []
        edited = env.first.company.edit_voucher(5)
        removed = env.first.company.invalidate_voucher(9)
        changed, _cursor, _pages = await read_all(connector, cursor)
    by_id = {v.external_id: v for v in changed}
    # Published transaction lines carry modifiedAt (no version, no deleted flag) and the
    # API has no change filter (changed): the edit shows with its new modification time;
    # a deleted transaction is simply no longer listed, so it does not show here.
    assert set(by_id) == {"5"}
    assert by_id["5"].version is not None
    assert dt.datetime.fromisoformat(by_id["5"].version) == edited.modified_at
    assert removed.status == "invalidated"
    assert {v.external_id: v.version for v in before}["5"] != by_id["5"].version


async def test_switching_identity_reads_the_other_clients_data(env: Env) -> None:
    async with env.connector() as connector:
        first_accounts = await connector.read_accounts()
        first_page = await connector.read_vouchers(page_size=10)
        await connector.select_company("5002")
        vouchers, _cursor, _pages = await read_all(connector)
        second_periods = await connector.read_periods()
        with pytest.raises(NotFound):
            await connector.select_company("5003")
    got = {v.external_id: [(ln.account, ln.amount) for ln in v.lines] for v in vouchers}
    assert got == expected_lines(env.second.company)
    assert got != expected_lines(env.first.company)
    assert len(first_accounts) == len(env.first.company.accounts)
    assert first_page.vouchers[0].lines[0].account == (
        env.first.company.vouchers[0].lines[0].account
    )
    assert len(second_periods) == 24
    assert connector.logins == 1
    assert connector.tokens == 2  # one token per organization
