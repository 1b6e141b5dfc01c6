"""The Nmbrs connector against the sandbox over real HTTP (SOAP v3 and REST with OAuth).

Nmbrs is a journal *source*: nothing is written towards it, so the "write" side of the
connector proofs does not apply; the journals read here are what the exporter posts.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from ledgerlink.connectors.base import PayrollJournal
from ledgerlink.connectors.errors import (
    AccessNotEnabled,
    AuthenticationFailed,
    ConnectorError,
    InvalidData,
    NotFound,
    RateLimited,
    ReauthorizationRequired,
    VendorUnavailable,
)
from ledgerlink.connectors.http import RetryPolicy
from ledgerlink.connectors.models import Company
from ledgerlink.connectors.nmbrs import NmbrsConnector, NmbrsSettings, parse_journal_xml
from ledgerlink.connectors.oauth import OAuthClientSettings
from ledgerlink.sandbox.config import RateLimitSettings, SandboxConfig
from ledgerlink.sandbox.data import PayrollLineData, PayrollRunData, generate_company
from ledgerlink.sandbox.faults import FaultPlan
from ledgerlink.sandbox.oauth import OAuthClient
from ledgerlink.sandbox.testing import RunningSandbox, running_sandbox
from ledgerlink.sandbox.vendors import nmbrs as sandbox_nmbrs
from ledgerlink.sandbox.world import Tenant, World

USER = "payroll-api@firm.example"
TOKEN = "nmbrs-api-token-never-logged-7f3a"
DOMAIN = "firm"
DEBTOR = "D-100"
CLIENT_ID = "ledgerlink-nmbrs"
CLIENT_SECRET = "nmbrs-client-secret-never-logged"
REDIRECT_URI = "http://127.0.0.1:9/callback"
OAUTH_USER = "accountant@firm.example"
OAUTH_PASSWORD = "oauth-password-never-logged"
SECRETS = (TOKEN, CLIENT_SECRET, OAUTH_PASSWORD)
# The expense accounts of the NL chart that payroll lines carry per cost centre and unit.
WAGE_COST_ACCOUNTS = frozenset({"4000", "4010", "4020"})
FAST_RETRY = RetryPolicy(attempts=4, initial_backoff_seconds=0.01, jitter_seconds=0.01)
CREDENTIALS = {"username": USER, "token": TOKEN, "domain": DOMAIN}


class RecordingSleep:
    """Stands in for asyncio.sleep: records the waits the connector asks for and moves its
    own clock by them instead of waiting (the connector gets both: time is one pair)."""

    def __init__(self) -> None:
        self.waits: list[float] = []
        self.now = 0.0

    def clock(self) -> float:
        return self.now

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)
        self.now += seconds
        await asyncio.sleep(0)


@dataclass
class Env:
    sandbox: RunningSandbox
    world: World
    first: Tenant
    second: Tenant
    test_company: Tenant
    blocked: Tenant
    disabled: Tenant
    stranger: Tenant

    def settings(self, **changes: Any) -> NmbrsSettings:
        values: dict[str, Any] = {
            "base_url": self.sandbox.url("/nmbrs"),
            "username": USER,
            "token": SecretStr(TOKEN),
            "domain": DOMAIN,
            "retry": FAST_RETRY,
            "rate_per_second": 10_000,
            "burst": 10_000,
        }
        values.update(changes)
        return NmbrsSettings(**values)

    def rest_settings(self, **changes: Any) -> NmbrsSettings:
        oauth = OAuthClientSettings(
            client_id=CLIENT_ID,
            client_secret=SecretStr(CLIENT_SECRET),
            authorize_url=self.sandbox.url(sandbox_nmbrs.AUTHORIZE_PATH),
            token_url=self.sandbox.url(sandbox_nmbrs.TOKEN_PATH),
            redirect_uri=REDIRECT_URI,
            use_pkce=True,
        )
        return self.settings(
            api="rest",
            username="",
            token=None,
            domain="",
            rest_base_url=self.sandbox.url("/nmbrs/rest"),
            oauth=oauth,
            **changes,
        )

    def connector(self, **changes: Any) -> NmbrsConnector:
        return NmbrsConnector(self.settings(**changes))

    def company_id(self, tenant: Tenant) -> str:
        return str(sandbox_nmbrs.company_id(tenant))

    def guid(self, tenant: Tenant) -> str:
        return sandbox_nmbrs.company_guid(tenant)


@pytest.fixture
async def env() -> AsyncIterator[Env]:
    config = SandboxConfig(
        rate_limits={"nmbrs": RateLimitSettings(rate_per_second=10_000, burst=10_000)}
    )
    world = World(config)

    def add(tenant_id: str, seed: int, **flags: Any) -> Tenant:
        company = generate_company(seed, country="NL", lines=0)
        credentials = flags.pop("credentials", CREDENTIALS)
        return world.add_tenant(
            "nmbrs",
            tenant_id=tenant_id,
            company=company,
            credentials=credentials,
            debtor_id=flags.pop("debtor_id", DEBTOR),
            **flags,
        )

    first = add("700001", 11)
    second = add("700002", 12)
    test_company = add("700003", 13, test_company=True)
    blocked = add("700004", 14, blocked=True)
    disabled = add("700005", 15, api_enabled=False)
    stranger = add(
        "800001",
        16,
        credentials={"username": "other", "token": "other-token", "domain": "elsewhere"},
        debtor_id="D-999",
    )
    server = sandbox_nmbrs.oauth_server(world)
    server.register_client(
        OAuthClient(CLIENT_ID, CLIENT_SECRET, redirect_uri=REDIRECT_URI, require_pkce=True)
    )
    server.add_user(OAUTH_USER, OAUTH_PASSWORD, tenant=DEBTOR)
    async with running_sandbox(world=world, vendors=("nmbrs",)) as sandbox:
        yield Env(sandbox, world, first, second, test_company, blocked, disabled, stranger)


async def authorise(env: Env, connector: NmbrsConnector) -> None:
    """The authorization code flow with PKCE, as a person's browser would do it."""
    url, verifier = connector.authorization_url("st4te-xyz")
    assert verifier is not None
    params = dict(httpx.URL(url).params)
    assert params["code_challenge_method"] == "S256"
    async with httpx.AsyncClient() as browser:
        page = await browser.get(url)
        assert page.status_code == 200
        answer = await browser.post(
            env.sandbox.url(sandbox_nmbrs.AUTHORIZE_PATH),
            data={**params, "username": OAUTH_USER, "password": OAUTH_PASSWORD},
        )
    assert answer.status_code == 302
    location = httpx.URL(answer.headers["location"])
    assert location.params["state"] == "st4te-xyz"
    await connector.complete_authorization(location.params["code"], verifier)


def balance(journal: PayrollJournal) -> Decimal:
    return sum((line.signed_amount for line in journal.lines), Decimal(0))


def totals_per_account(journal: PayrollJournal) -> dict[str, Decimal]:
    result: dict[str, Decimal] = {}
    for line in journal.lines:
        result[line.gl_account] = result.get(line.gl_account, Decimal(0)) + line.signed_amount
    return result


def data_totals(entry: PayrollRunData) -> dict[str, Decimal]:
    result: dict[str, Decimal] = {}
    for line in entry.lines:
        result[line.gl_account] = result.get(line.gl_account, Decimal(0)) + line.signed_amount
    return result


def run_with_corrections(tenant: Tenant) -> PayrollRunData:
    """A normal run of the generated data that carries retroactive corrections."""
    corrected = {run.run_id for run in tenant.company.payroll_runs if run.kind == "correction"}
    return next(
        run
        for run in tenant.company.payroll_runs
        if run.kind == "normal" and run.run_id in corrected
    )


# --------------------------------------------------------------------------------------------
# Happy path (SOAP)
# --------------------------------------------------------------------------------------------


async def test_lists_the_companies_of_the_users_environment(env: Env) -> None:
    async with env.connector() as connector:
        companies = await connector.list_companies()
    visible = [env.first, env.second, env.test_company, env.blocked, env.disabled]
    assert companies == [
        Company(
            external_id=env.company_id(tenant),
            business_id=tenant.company.business_id,
            name=tenant.company.name,
            currency="EUR",
        )
        for tenant in visible
    ]
    assert env.company_id(env.stranger) not in {c.external_id for c in companies}


async def test_runs_of_a_year_with_none_one_and_many(env: Env) -> None:
    company = env.first.company
    # Keep a single run (and its corrections) in 2024; 2025 keeps all twelve.
    keep = company.normal_runs(2024)[4].run_id
    company.payroll_runs[:] = [
        run for run in company.payroll_runs if run.year != 2024 or run.run_id == keep
    ]
    async with env.connector() as connector:
        none = await connector.list_runs(env.company_id(env.first), 2019)
        one = await connector.list_runs(env.company_id(env.first), 2024)
        many = await connector.list_runs(env.company_id(env.first), 2025)
    assert none == []
    assert [(run.year, run.period, run.run_id) for run in one] == [(2024, 5, f"2024-{keep}")]
    assert [run.period for run in many] == list(range(1, 13))
    assert len({run.run_id for run in many}) == 12
    expected = {run.period: run for run in company.normal_runs(2025)}
    for run in many:
        assert run.description == expected[run.period].reference
        assert run.date == expected[run.period].date


@pytest.mark.parametrize("detail", ["company", "cost_centre", "cost_centre_cost_unit"])
async def test_run_journal_at_each_detail_balances_and_matches_the_payroll(
    env: Env, detail: str
) -> None:
    source = run_with_corrections(env.first)
    entries = env.first.company.run_entries(source.run_id)
    async with env.connector(journal_detail=detail) as connector:
        runs = await connector.list_runs(env.company_id(env.first), source.year)
        run = next(r for r in runs if r.period == source.period)
        journals = await connector.read_run_journal(env.company_id(env.first), run.run_id)

    assert len(journals) == len(entries) >= 2
    for journal in journals:
        assert journal.lines
        assert balance(journal) == 0
        assert all(line.amount > 0 for line in journal.lines)
    by_period = {journal.period: journal for journal in journals}
    for entry in entries:
        journal = by_period[dt.date(entry.year, entry.posting_period, 1)]
        assert totals_per_account(journal) == data_totals(entry)

    lines = [line for journal in journals for line in journal.lines]
    debit_lines = [line for line in lines if line.gl_account in WAGE_COST_ACCOUNTS]
    if detail == "company":
        assert all(line.cost_centre is None and line.cost_unit is None for line in debit_lines)
    elif detail == "cost_centre":
        assert all(line.cost_unit is None for line in debit_lines)
        assert {line.cost_centre for line in debit_lines} - {None}
    else:
        centres_units = {(line.cost_centre, line.cost_unit) for line in debit_lines}
        expected = {
            (line.cost_centre, line.cost_unit)
            for entry in entries
            for line in entry.lines
            if line.gl_account in WAGE_COST_ACCOUNTS
        }
        assert centres_units == expected


async def test_correction_is_posted_in_the_period_it_corrects_with_the_runs_reference(
    env: Env,
) -> None:
    source = run_with_corrections(env.first)
    corrections = [
        entry
        for entry in env.first.company.run_entries(source.run_id)
        if entry.kind == "correction"
    ]
    async with env.connector() as connector:
        run_id = f"{source.year}-{source.run_id}"
        journals = await connector.read_run_journal(env.company_id(env.first), run_id)

    normal = [journal for journal in journals if journal.kind == "normal"]
    fixes = [journal for journal in journals if journal.kind == "correction"]
    assert len(normal) == 1
    assert normal[0].period == dt.date(source.year, source.period, 1)
    assert normal[0].date == source.date
    assert sorted(journal.period for journal in fixes) == sorted(
        dt.date(entry.year, entry.corrects_period or 0, 1) for entry in corrections
    )
    for journal in fixes:
        # Dated in the period it corrects, earlier than the run's own period.
        assert journal.date.replace(day=1) == journal.period < normal[0].period
        # The same wage codes (descriptions) as the normal run, and the same reference.
        assert {line.description for line in journal.lines} <= {
            line.description for line in normal[0].lines
        }
    assert {journal.reference for journal in journals} == {source.reference}
    postings = [journal.to_posting("Payroll") for journal in journals]
    assert all(posting.balance == 0 for posting in postings)
    assert {posting.period for posting in postings} == {journal.period for journal in journals}


async def test_full_sync_of_two_companies_reads_every_run(env: Env) -> None:
    async with env.connector() as connector:
        read = 0
        for company in (env.first, env.second):
            for year in (2024, 2025):
                for run in await connector.list_runs(env.company_id(company), year):
                    journals = await connector.read_run_journal(env.company_id(company), run.run_id)
                    assert all(balance(journal) == 0 for journal in journals)
                    read += len(journals)
    assert read == len(env.first.company.payroll_runs) + len(env.second.company.payroll_runs)


async def test_a_run_added_or_changed_between_two_reads_is_seen_on_the_next(env: Env) -> None:
    company = env.first.company
    company_id = env.company_id(env.first)
    async with env.connector() as connector:
        assert await connector.list_runs(company_id, 2026) == []
        target = company.normal_runs(2025)[5]
        before = await connector.read_run_journal(company_id, f"2025-{target.run_id}")

        # Nmbrs runs January 2026 and recalculates June 2025 (a higher wage, same balance).
        added_lines = [
            PayrollLineData("4000", "100", "CU01", Decimal("1000.00"), "D", "Salaries", "1000"),
            PayrollLineData("1600", None, None, Decimal("1000.00"), "C", "Net wages", "9000"),
        ]
        company.payroll_runs.append(
            PayrollRunData(
                "9001", 2026, 1, dt.date(2026, 1, 25), "normal", None, "RUN-2026-01", added_lines
            )
        )
        wages = next(line for line in target.lines if line.debit_credit == "D")
        net = next(line for line in target.lines if line.wage_code == "9000")
        wages.amount += Decimal("250.00")
        net.amount += Decimal("250.00")

        added = await connector.list_runs(company_id, 2026)
        after = await connector.read_run_journal(company_id, f"2025-{target.run_id}")
        new_journal = await connector.read_run_journal(company_id, added[0].run_id)

    assert [(run.run_id, run.description) for run in added] == [("2026-9001", "RUN-2026-01")]
    assert [journal.period for journal in new_journal] == [dt.date(2026, 1, 1)]
    assert {line.amount for line in new_journal[0].lines} == {Decimal("1000.00")}
    debit_before = sum(line.amount for line in before[0].lines if line.debit_credit == "D")
    debit_after = sum(line.amount for line in after[0].lines if line.debit_credit == "D")
    assert debit_after - debit_before == Decimal("250.00")
    assert balance(after[0]) == 0


# --------------------------------------------------------------------------------------------
# Errors (every category reachable from a read-only source)
# --------------------------------------------------------------------------------------------


async def test_wrong_token_is_authentication_failed_with_the_vendor_message(env: Env) -> None:
    async with env.connector(token=SecretStr("wrong-token-also-secret")) as connector:
        with pytest.raises(AuthenticationFailed) as caught:
            await connector.list_companies()
    assert caught.value.vendor_code == "1001"
    assert caught.value.vendor_message == "Invalid Authentication"
    assert "wrong-token-also-secret" not in str(caught.value) + repr(caught.value)


async def test_wrong_domain_is_authentication_failed(env: Env) -> None:
    async with env.connector(domain="elsewhere") as connector:
        with pytest.raises(AuthenticationFailed):
            await connector.list_runs(env.company_id(env.first), 2025)


@pytest.mark.parametrize(
    ("tenant_name", "code"), [("blocked", "1004"), ("disabled", "1002"), ("test_company", "2013")]
)
async def test_refused_companies_are_access_not_enabled(
    env: Env, tenant_name: str, code: str
) -> None:
    tenant: Tenant = getattr(env, tenant_name)
    run = tenant.company.normal_runs(2025)[0]
    async with env.connector() as connector:
        with pytest.raises(AccessNotEnabled) as caught:
            await connector.read_run_journal(env.company_id(tenant), f"2025-{run.run_id}")
    assert caught.value.vendor_code == code
    assert caught.value.vendor_message


async def test_a_test_company_lists_its_runs_but_not_its_journals(env: Env) -> None:
    async with env.connector() as connector:
        runs = await connector.list_runs(env.company_id(env.test_company), 2025)
        with pytest.raises(AccessNotEnabled, match="test company"):
            await connector.read_run_journal(env.company_id(env.test_company), runs[0].run_id)
    assert len(runs) == 12


async def test_unknown_company_and_run_are_not_found(env: Env) -> None:
    async with env.connector() as connector:
        with pytest.raises(NotFound) as unknown:
            await connector.list_runs("123", 2025)
        with pytest.raises(NotFound):
            # A company of another environment is invisible, as if it did not exist.
            await connector.list_runs(env.company_id(env.stranger), 2025)
        with pytest.raises(NotFound):
            await connector.read_run_journal(env.company_id(env.first), "2025-999999")
        with pytest.raises(NotFound):
            await connector.read_run_journal(env.company_id(env.first), "not-a-run")
    assert unknown.value.vendor_code == "2004"


async def test_unreadable_journal_xml_is_invalid_data() -> None:
    from ledgerlink.connectors.base import PayrollRun

    run = PayrollRun(run_id="2025-1", year=2025, period=1)
    with pytest.raises(InvalidData):
        parse_journal_xml("<transactions><transaction>", run, "R")
    with pytest.raises(InvalidData):
        parse_journal_xml(
            "<transactions><transaction><header><period>13/2025</period></header>"
            "</transaction></transactions>",
            run,
            "R",
        )


async def test_persistent_429_is_rate_limited_after_the_retries(env: Env) -> None:
    env.world.faults.set(FaultPlan(vendor="nmbrs", storm_429=100, retry_after_seconds=1))
    sleep = RecordingSleep()
    async with NmbrsConnector(env.settings(), sleep=sleep, clock=sleep.clock) as connector:
        with pytest.raises(RateLimited) as caught:
            await connector.list_companies()
    assert caught.value.retry_after == 1
    assert len([wait for wait in sleep.waits if wait >= 1]) >= FAST_RETRY.attempts - 1


async def test_server_errors_and_resets_become_vendor_unavailable(env: Env) -> None:
    sleep = RecordingSleep()
    env.world.faults.set(FaultPlan(vendor="nmbrs", error_rate=1.0, error_status=503))
    async with NmbrsConnector(env.settings(), sleep=sleep, clock=sleep.clock) as connector:
        with pytest.raises(VendorUnavailable) as unavailable:
            await connector.list_companies()
        env.world.faults.set(FaultPlan(vendor="nmbrs", reset_rate=1.0))
        with pytest.raises(VendorUnavailable):
            await connector.list_companies()
    assert unavailable.value.status == 503


# --------------------------------------------------------------------------------------------
# Slowing down and recovering
# --------------------------------------------------------------------------------------------


async def test_a_429_storm_slows_the_sync_without_failing_it(env: Env) -> None:
    async with env.connector() as connector:
        baseline = await connector.read_run_journal(
            env.company_id(env.first),
            (await connector.list_runs(env.company_id(env.first), 2025))[2].run_id,
        )
    env.world.faults.set(FaultPlan(vendor="nmbrs", storm_429=3, retry_after_seconds=2))
    sleep = RecordingSleep()
    async with NmbrsConnector(env.settings(), sleep=sleep, clock=sleep.clock) as connector:
        runs = await connector.list_runs(env.company_id(env.first), 2025)
        journals = await connector.read_run_journal(env.company_id(env.first), runs[2].run_id)
    assert journals == baseline
    assert sum(wait for wait in sleep.waits) >= 3 * 2


async def test_rest_token_expiring_mid_sync_is_refreshed_once_and_the_sync_goes_on(
    env: Env,
) -> None:
    server = sandbox_nmbrs.oauth_server(env.world)
    async with NmbrsConnector(env.rest_settings()) as connector:
        await authorise(env, connector)
        session = connector.oauth_session
        assert session is not None
        env.world.faults.set(FaultPlan(vendor="nmbrs", expire_tokens_after=3))
        companies = await connector.list_companies()
        read = []
        for company in companies[:2]:
            for year in (2024, 2025):
                for run in await connector.list_runs(company.external_id, year):
                    read.extend(await connector.read_run_journal(company.external_id, run.run_id))
    assert [c.external_id for c in companies[:2]] == [env.guid(env.first), env.guid(env.second)]
    assert env.guid(env.stranger) not in {c.external_id for c in companies}
    assert session.refresh_count == 1
    assert server.grant_counts.get("refresh_token") == 1
    assert len(read) == len(env.first.company.payroll_runs) + len(env.second.company.payroll_runs)
    assert all(balance(journal) == 0 for journal in read)
    kinds = {journal.kind for journal in read}
    assert kinds == {"normal", "correction"}


async def test_rest_journal_equals_the_soap_journal(env: Env) -> None:
    source = run_with_corrections(env.second)
    async with env.connector() as soap:
        soap_journals = await soap.read_run_journal(
            env.company_id(env.second), f"{source.year}-{source.run_id}"
        )
    async with NmbrsConnector(env.rest_settings()) as rest:
        await authorise(env, rest)
        runs = await rest.list_runs(env.guid(env.second), source.year)
        run = next(r for r in runs if r.period == source.period)
        rest_journals = await rest.read_run_journal(env.guid(env.second), run.run_id)
    # The same journal; only the hash of the document as each API sent it differs.
    same = {"run_id", "source_sha256"}
    assert [j.model_dump(exclude=same) for j in rest_journals] == [
        j.model_dump(exclude=same) for j in soap_journals
    ]
    assert all(j.source_sha256 for j in soap_journals)


@pytest.mark.parametrize("page_size", [1, 4, 6, 12, 13])
async def test_rest_payruns_are_read_across_pages(env: Env, page_size: int) -> None:
    async with NmbrsConnector(env.rest_settings(page_size=page_size)) as connector:
        await authorise(env, connector)
        runs = await connector.list_runs(env.guid(env.first), 2025)
        none = await connector.list_runs(env.guid(env.first), 2019)
    assert [run.period for run in runs] == list(range(1, 13))
    assert none == []


async def test_rest_errors_map_to_categories(env: Env) -> None:
    async with NmbrsConnector(env.rest_settings()) as connector:
        with pytest.raises(ReauthorizationRequired):
            await connector.list_companies()  # not authorised yet
        await authorise(env, connector)
        with pytest.raises(NotFound) as missing:
            await connector.list_runs(env.guid(env.stranger), 2025)
        with pytest.raises(InvalidData):
            await connector.list_runs(env.guid(env.first), 1800)
        runs = await connector.list_runs(env.guid(env.test_company), 2025)
        with pytest.raises(AccessNotEnabled) as refused:
            await connector.read_run_journal(env.guid(env.test_company), runs[0].run_id)
        # The grant is revoked at Nmbrs: the refresh fails and a person must authorise again.
        sandbox_nmbrs.oauth_server(env.world).revoke_all()
        with pytest.raises(ReauthorizationRequired):
            await connector.list_companies()
    assert missing.value.status == 404
    assert refused.value.vendor_code == "2013"


# --------------------------------------------------------------------------------------------
# Secrets
# --------------------------------------------------------------------------------------------


async def test_no_secret_in_exceptions_or_logs(env: Env, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    errors: list[ConnectorError] = []
    tokens: list[str] = []
    async with env.connector() as connector:
        companies = await connector.list_companies()
        runs = await connector.list_runs(companies[0].external_id, 2025)
        await connector.read_run_journal(companies[0].external_id, runs[0].run_id)
        for call in (
            connector.read_run_journal(env.company_id(env.test_company), runs[0].run_id),
            connector.list_runs("42", 2025),
        ):
            try:
                await call
            except ConnectorError as refused:
                errors.append(refused)
    async with env.connector(token=SecretStr(TOKEN + "-wrong")) as connector:
        try:
            await connector.list_companies()
        except ConnectorError as wrong_token:
            errors.append(wrong_token)
    async with NmbrsConnector(env.rest_settings()) as rest:
        await authorise(env, rest)
        env.world.faults.set(FaultPlan(vendor="nmbrs", expire_tokens_after=1))
        await rest.list_companies()
        session = rest.oauth_session
        assert session is not None
        current = await session.current_tokens()
        tokens.append(current.access_token.get_secret_value())
        assert current.refresh_token is not None
        tokens.append(current.refresh_token.get_secret_value())
        sandbox_nmbrs.oauth_server(env.world).revoke_all()
        try:
            await rest.list_companies()
        except ConnectorError as revoked:
            errors.append(revoked)
    assert len(errors) == 4
    settings_text = repr(env.settings()) + repr(env.rest_settings())
    for secret in (*SECRETS, *tokens):
        assert secret not in caplog.text
        assert secret not in settings_text
        for error in errors:
            assert secret not in str(error)
            assert secret not in repr(error)
