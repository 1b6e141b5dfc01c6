"""The Nmbrs stand-in refuses what Nmbrs refuses (plain httpx, hand-built SOAP, real HTTP)."""

from __future__ import annotations

import base64
import hashlib
import secrets
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any
from xml.sax.saxutils import escape

import defusedxml.ElementTree as SafeET
import httpx
import pytest

from ledgerlink.sandbox.config import RateLimitSettings, SandboxConfig
from ledgerlink.sandbox.data import generate_company
from ledgerlink.sandbox.faults import FaultPlan
from ledgerlink.sandbox.oauth import OAuthClient
from ledgerlink.sandbox.testing import RunningSandbox, running_sandbox
from ledgerlink.sandbox.vendors import nmbrs
from ledgerlink.sandbox.world import Tenant, World

NS = nmbrs.SERVICE_NS
ENV = nmbrs.SOAP_ENV
USER = "api@firm.example"
TOKEN = "token-under-test"
DOMAIN = "firm"
DEBTOR = "D-1"
CLIENT_ID = "rest-client"
CLIENT_SECRET = "rest-secret"
REDIRECT_URI = "http://127.0.0.1:9/cb"
OAUTH_USER = "accountant"
OAUTH_PASSWORD = "pw"


@dataclass
class Env:
    sandbox: RunningSandbox
    world: World
    http: httpx.AsyncClient
    first: Tenant
    test_company: Tenant
    blocked: Tenant
    disabled: Tenant
    outsider: Tenant


def _world(rate: float = 1000, burst: int = 1000) -> World:
    world = World(
        SandboxConfig(rate_limits={"nmbrs": RateLimitSettings(rate_per_second=rate, burst=burst)})
    )
    credentials = {"username": USER, "token": TOKEN, "domain": DOMAIN}
    cases: tuple[tuple[str, int, dict[str, Any]], ...] = (
        ("600001", 1, {}),
        ("600002", 2, {"test_company": True}),
        ("600003", 3, {"blocked": True}),
        ("600004", 4, {"api_enabled": False}),
    )
    for tenant_id, seed, flags in cases:
        world.add_tenant(
            "nmbrs",
            tenant_id=tenant_id,
            company=generate_company(seed, country="NL", lines=0),
            credentials=credentials,
            debtor_id=DEBTOR,
            **flags,
        )
    world.add_tenant(
        "nmbrs",
        tenant_id="600009",
        company=generate_company(9, country="NL", lines=0),
        credentials={"username": "x", "token": "y", "domain": "other"},
        debtor_id="D-2",
    )
    server = nmbrs.oauth_server(world)
    server.register_client(OAuthClient(CLIENT_ID, CLIENT_SECRET, redirect_uri=REDIRECT_URI))
    server.add_user(OAUTH_USER, OAUTH_PASSWORD, tenant=DEBTOR)
    return world


@pytest.fixture
async def env() -> AsyncIterator[Env]:
    world = _world()
    async with (
        running_sandbox(world=world, vendors=("nmbrs",)) as sandbox,
        httpx.AsyncClient(base_url=sandbox.base_url) as http,
    ):
        tenants = world.vendor_tenants("nmbrs")
        yield Env(sandbox, world, http, *tenants)


def envelope(
    operation: str,
    params: Mapping[str, object] | None = None,
    *,
    username: str | None = USER,
    token: str = TOKEN,
    domain: str = DOMAIN,
) -> bytes:
    header = (
        f'<soap:Header><AuthHeaderWithDomain xmlns="{NS}"><Username>{escape(username)}</Username>'
        f"<Token>{escape(token)}</Token><Domain>{escape(domain)}</Domain>"
        "</AuthHeaderWithDomain></soap:Header>"
        if username is not None
        else ""
    )
    body = "".join(f"<{k}>{escape(str(v))}</{k}>" for k, v in (params or {}).items())
    return (
        f'<?xml version="1.0" encoding="utf-8"?><soap:Envelope xmlns:soap="{ENV}">{header}'
        f'<soap:Body><{operation} xmlns="{NS}">{body}</{operation}></soap:Body></soap:Envelope>'
    ).encode()


async def call(
    env: Env,
    operation: str,
    params: Mapping[str, object] | None = None,
    *,
    action: str | None = None,
    content_type: str = "text/xml; charset=utf-8",
    body: bytes | None = None,
    username: str | None = USER,
    token: str = TOKEN,
    domain: str = DOMAIN,
) -> httpx.Response:
    if body is None:
        body = envelope(operation, params, username=username, token=token, domain=domain)
    return await env.http.post(
        nmbrs.SOAP_PATH,
        content=body,
        headers={
            "Content-Type": content_type,
            "SOAPAction": f'"{NS}/{operation}"' if action is None else action,
        },
    )


def fault(response: httpx.Response) -> tuple[str, str]:
    root = SafeET.fromstring(response.content)
    element = root.find(f"{{{ENV}}}Body/{{{ENV}}}Fault")
    assert element is not None, response.text
    return element.findtext("faultcode") or "", element.findtext("faultstring") or ""


def result(response: httpx.Response, operation: str) -> ET.Element:
    assert response.status_code == 200, response.text
    root = SafeET.fromstring(response.content)
    element = root.find(f"{{{ENV}}}Body/{{{NS}}}{operation}Response/{{{NS}}}{operation}Result")
    assert element is not None
    return element


def cid(tenant: Tenant) -> int:
    return nmbrs.company_id(tenant)


def first_run_with_corrections(tenant: Tenant) -> tuple[int, int]:
    corrected = {run.run_id for run in tenant.company.payroll_runs if run.kind == "correction"}
    run = next(r for r in tenant.company.normal_runs() if r.run_id in corrected and r.year == 2025)
    return int(run.run_id), run.year


# --------------------------------------------------------------------------------------------
# SOAP: authentication and envelope
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "auth",
    [
        {"username": None},
        {"token": "wrong"},
        {"username": "someone@else"},
        {"domain": "otherdomain"},
        {"token": ""},
    ],
)
async def test_wrong_or_missing_auth_header_is_fault_1001(env: Env, auth: dict[str, Any]) -> None:
    response = await call(env, "List_GetAll", **auth)
    assert response.status_code == 500
    code, text = fault(response)
    assert code == "soap:Server"
    assert text.endswith("---> 1001: Invalid Authentication")


async def test_soap_action_must_name_the_operation(env: Env) -> None:
    wrong = await call(env, "List_GetAll", action=f'"{NS}/Run_GetList"')
    missing = await call(env, "List_GetAll", action="")
    unknown = await call(env, "Company_Delete")
    for response in (wrong, missing, unknown):
        assert response.status_code == 500
        code, text = fault(response)
        assert code == "soap:Client"
        assert "did not recognize the value of HTTP Header SOAPAction" in text


async def test_malformed_requests_are_client_faults(env: Env) -> None:
    garbage = await call(env, "List_GetAll", body=b"<soap:Envelope")
    not_soap = await call(env, "List_GetAll", body=b"<Envelope/>")
    json_body = await call(env, "List_GetAll", content_type="application/json")
    bad_year = await call(env, "Run_GetList", {"CompanyId": cid(env.first), "Year": "twenty"})
    assert fault(garbage)[0] == fault(not_soap)[0] == fault(bad_year)[0] == "soap:Client"
    assert "Input string was not in a correct format" in fault(bad_year)[1]
    assert json_body.status_code == 415


# --------------------------------------------------------------------------------------------
# SOAP: companies and runs
# --------------------------------------------------------------------------------------------


async def test_list_get_all_lists_only_the_users_environment(env: Env) -> None:
    companies = result(await call(env, "List_GetAll"), "List_GetAll")
    ids = [company.findtext(f"{{{NS}}}ID") for company in companies]
    assert ids == [str(cid(t)) for t in (env.first, env.test_company, env.blocked, env.disabled)]
    kvk = companies[0].findtext(f"{{{NS}}}KvkNr")
    assert kvk == env.first.company.business_id


async def test_company_of_another_environment_is_fault_2004(env: Env) -> None:
    for company in (cid(env.outsider), 424242, 0):
        response = await call(env, "Run_GetList", {"CompanyId": company, "Year": 2025})
        assert fault(response)[1].endswith("2004: Unauthorized Company")


async def test_run_get_list_answers_run_info_of_the_year(env: Env) -> None:
    runs = result(
        await call(env, "Run_GetList", {"CompanyId": cid(env.first), "Year": 2025}), "Run_GetList"
    )
    empty = result(
        await call(env, "Run_GetList", {"CompanyId": cid(env.first), "Year": 2019}), "Run_GetList"
    )
    assert len(empty) == 0
    periods = [int(run.findtext(f"{{{NS}}}PeriodStart") or 0) for run in runs]
    assert periods == list(range(1, 13))
    # Periods up to the lock date (31 March) are locked.
    locked = [run.findtext(f"{{{NS}}}IsLocked") for run in runs]
    assert locked[:3] == ["true"] * 3
    assert locked[3:] == ["false"] * 9


@pytest.mark.parametrize(
    ("tenant_name", "runs_code", "journal_code"),
    [("blocked", "1004", "1004"), ("disabled", "1002", "1002"), ("test_company", None, "2013")],
)
async def test_blocked_disabled_and_test_companies_are_refused(
    env: Env, tenant_name: str, runs_code: str | None, journal_code: str
) -> None:
    tenant: Tenant = getattr(env, tenant_name)
    run = tenant.company.normal_runs(2025)[0]
    runs = await call(env, "Run_GetList", {"CompanyId": cid(tenant), "Year": 2025})
    journal = await call(
        env,
        "Journals_GetByRunCompany_v2",
        {"CompanyId": cid(tenant), "RunId": run.run_id, "Year": 2025},
    )
    if runs_code is None:
        assert runs.status_code == 200
    else:
        assert f"---> {runs_code}:" in fault(runs)[1]
    assert f"---> {journal_code}:" in fault(journal)[1]


# --------------------------------------------------------------------------------------------
# SOAP: journals
# --------------------------------------------------------------------------------------------


def journal_document(response: httpx.Response, operation: str) -> ET.Element:
    element = result(response, operation)
    # The journal is a string inside the result, not child elements.
    assert len(element) == 0
    assert element.text is not None
    assert element.text.startswith("<transactions>")
    return SafeET.fromstring(element.text)


@pytest.mark.parametrize("operation", list(nmbrs.JOURNAL_OPERATIONS))
async def test_journal_is_an_escaped_xml_string_with_corrections_in_their_period(
    env: Env, operation: str
) -> None:
    run_id, year = first_run_with_corrections(env.first)
    entries = env.first.company.run_entries(str(run_id))
    response = await call(
        env, operation, {"CompanyId": cid(env.first), "RunId": run_id, "Year": year}
    )
    document = journal_document(response, operation)
    transactions = document.findall("transaction")
    assert [t.findtext("header/period") for t in transactions] == [
        f"{entry.posting_period}/{entry.year}"
        for entry in sorted(entries, key=lambda e: (e.kind != "normal", e.posting_period))
    ]
    detail = nmbrs.JOURNAL_OPERATIONS[operation]
    normal_descriptions = {line.findtext("description") for line in transactions[0].iter("line")}
    for transaction in transactions:
        lines = transaction.findall("lines/line")
        assert [line.get("id") for line in lines] == [str(i) for i in range(len(lines))]
        signed = sum(
            Decimal(line.findtext("value") or "")
            * (1 if line.findtext("debitcredit") == "debit" else -1)
            for line in lines
        )
        assert signed == 0
        assert {line.findtext("debitcredit") for line in lines} == {"debit", "credit"}
        assert {line.findtext("description") for line in lines} <= normal_descriptions
        centres = {line.findtext("dim2") for line in lines}
        units = {line.findtext("dim3") for line in lines}
        if detail == "company":
            assert centres == units == {""}
        elif detail == "cost_centre":
            assert units == {""}
            assert len(centres) > 1
        else:
            assert len(units) > 1
        month, _, _ = (transaction.findtext("header/period") or "").partition("/")
        assert (transaction.findtext("header/date") or "")[5:7] == f"{int(month):02d}"


async def test_unknown_run_or_run_of_another_year_is_fault_2046(env: Env) -> None:
    run_id, year = first_run_with_corrections(env.first)
    for params in (
        {"CompanyId": cid(env.first), "RunId": 999999, "Year": year},
        {"CompanyId": cid(env.first), "RunId": run_id, "Year": year - 1},
    ):
        response = await call(env, "Journals_GetByRunCompany_v2", params)
        assert "---> 2046:" in fault(response)[1]


# --------------------------------------------------------------------------------------------
# Rate limits and injected faults
# --------------------------------------------------------------------------------------------


async def test_rate_limit_answers_429_with_retry_after() -> None:
    world = _world(rate=0.5, burst=2)
    async with (
        running_sandbox(world=world, vendors=("nmbrs",)) as sandbox,
        httpx.AsyncClient(base_url=sandbox.base_url) as http,
    ):
        env = Env(sandbox, world, http, *world.vendor_tenants("nmbrs"))
        statuses = [(await call(env, "List_GetAll")).status_code for _ in range(3)]
        limited = await call(env, "List_GetAll")
    assert statuses == [200, 200, 429]
    assert limited.status_code == 429
    assert int(limited.headers["retry-after"]) >= 1
    assert "Too many requests" in fault(limited)[1]


async def test_injected_faults_are_rendered_as_nmbrs_answers(env: Env) -> None:
    env.world.faults.set(FaultPlan(vendor="nmbrs", storm_429=1, retry_after_seconds=3))
    storm = await call(env, "List_GetAll")
    env.world.faults.set(FaultPlan(vendor="nmbrs", error_rate=1.0, error_status=503))
    down = await call(env, "List_GetAll")
    rest_down = await env.http.get(f"{nmbrs.REST_API}/companies")
    env.world.faults.clear()
    ok = await call(env, "List_GetAll")
    assert storm.status_code == 429
    assert storm.headers["retry-after"] == "3"
    assert down.status_code == 503
    assert fault(down)[0] == "soap:Server"
    assert rest_down.status_code == 503
    assert set(rest_down.json()) == {"title", "detail", "code"}
    assert ok.status_code == 200


# --------------------------------------------------------------------------------------------
# REST and the identity service
# --------------------------------------------------------------------------------------------


async def rest_token(env: Env) -> str:
    verifier = secrets.token_urlsafe(48)
    challenge = (
        base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    )
    params = {
        "response_type": "code",
        "client_id": CLIENT_ID,
        "redirect_uri": REDIRECT_URI,
        "state": "s1",
        "code_challenge": challenge,
        "code_challenge_method": "S256",
    }
    login = await env.http.post(
        nmbrs.AUTHORIZE_PATH,
        data={**params, "username": OAUTH_USER, "password": OAUTH_PASSWORD},
    )
    assert login.status_code == 302
    code = httpx.URL(login.headers["location"]).params["code"]
    token = await env.http.post(
        nmbrs.TOKEN_PATH,
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": REDIRECT_URI,
            "code_verifier": verifier,
            "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET,
        },
    )
    assert token.status_code == 200, token.text
    return str(token.json()["access_token"])


async def test_authorization_without_pkce_is_refused(env: Env) -> None:
    answer = await env.http.get(
        nmbrs.AUTHORIZE_PATH,
        params={
            "response_type": "code",
            "client_id": CLIENT_ID,
            "redirect_uri": REDIRECT_URI,
            "state": "s",
        },
    )
    assert answer.status_code == 302
    location = httpx.URL(answer.headers["location"])
    assert location.params["error"] == "invalid_request"
    assert location.params["state"] == "s"


async def test_rest_refuses_missing_and_expired_tokens(env: Env) -> None:
    missing = await env.http.get(f"{nmbrs.REST_API}/companies")
    token = await rest_token(env)
    auth = {"Authorization": f"Bearer {token}"}
    ok = await env.http.get(f"{nmbrs.REST_API}/companies", headers=auth)
    env.world.faults.expire_tokens("nmbrs")
    expired = await env.http.get(f"{nmbrs.REST_API}/companies", headers=auth)
    assert missing.status_code == expired.status_code == 401
    assert expired.json()["code"] == "TokenExpired"
    assert set(missing.json()) == {"title", "detail", "code"}
    assert "invalid_token" in expired.headers["www-authenticate"]
    assert ok.status_code == 200
    # Debtor-level token: only the debtor's companies.
    names = [company["companyId"] for company in ok.json()["data"]]
    assert nmbrs.company_guid(env.outsider) not in names
    assert names[0] == nmbrs.company_guid(env.first)


async def test_rest_refuses_other_debtors_bad_parameters_and_test_company_journals(
    env: Env,
) -> None:
    auth = {"Authorization": f"Bearer {await rest_token(env)}"}
    base = f"{nmbrs.REST_API}/companies"
    outsider = await env.http.get(
        f"{base}/{nmbrs.company_guid(env.outsider)}/payruns", params={"year": 2025}, headers=auth
    )
    no_year = await env.http.get(f"{base}/{nmbrs.company_guid(env.first)}/payruns", headers=auth)
    big_page = await env.http.get(
        f"{base}/{nmbrs.company_guid(env.first)}/payruns",
        params={"year": 2025, "pageSize": 500},
        headers=auth,
    )
    test_guid = nmbrs.company_guid(env.test_company)
    runs = await env.http.get(f"{base}/{test_guid}/payruns", params={"year": 2025}, headers=auth)
    payrun = runs.json()["data"][0]["payrunId"]
    journal = await env.http.get(f"{base}/{test_guid}/payruns/{payrun}/journals", headers=auth)
    unknown_run = await env.http.get(
        f"{base}/{nmbrs.company_guid(env.first)}/payruns/{payrun}/journals", headers=auth
    )
    assert outsider.status_code == 404
    assert no_year.status_code == big_page.status_code == 400
    assert journal.status_code == 403
    assert journal.json()["code"] == "2013"
    assert unknown_run.status_code == 404
    for answer in (outsider, no_year, journal, unknown_run):
        assert set(answer.json()) == {"title", "detail", "code"}
