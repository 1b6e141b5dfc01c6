"""The Procountor sandbox refuses what Procountor refuses (plain httpx over real HTTP)."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from ledgerlink.sandbox.config import SandboxConfig
from ledgerlink.sandbox.faults import FaultPlan
from ledgerlink.sandbox.testing import RunningSandbox, running_sandbox
from ledgerlink.sandbox.vendors.procountor import add_user, procountor_server, set_period_status
from ledgerlink.sandbox.world import Tenant, World

CLIENT_ID = "sandbox-client"
CLIENT_SECRET = "sandbox-secret"
REDIRECT_URI = "https://app.example/callback"
PASSWORD = "pw-1"
API_KEY = "key-1"
TOKEN_PATH = "/procountor/api/oauth/token"


class Clock:
    """A clock the test moves by hand."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@dataclass
class Env:
    sandbox: RunningSandbox
    world: World
    tenant: Tenant
    http: httpx.AsyncClient
    clock: Clock
    monotonic: Clock

    async def token(self, username: str | None = None) -> str:
        code = await login(self.http, username or self.tenant.credentials["username"])
        answer = await self.http.post(TOKEN_PATH, data=code_grant(code))
        assert answer.status_code == 200, answer.text
        token: str = answer.json()["access_token"]
        return token

    async def api(self, method: str, path: str, token: str, **kwargs: Any) -> httpx.Response:
        # Each call is a new rate-limiter second: only the rate-limit test spends the bucket.
        self.monotonic.now += 1
        return await self.http.request(
            method,
            f"/procountor/api{path}",
            headers={"Authorization": f"Bearer {token}"},
            **kwargs,
        )


_users = 0


def _credentials() -> dict[str, str]:
    global _users
    _users += 1
    return {
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
        "redirect_uri": REDIRECT_URI,
        "username": f"sb-user{_users}",
        "password": PASSWORD,
        "api_key": API_KEY,
    }


@pytest.fixture
async def env() -> AsyncIterator[Env]:
    clock = Clock(1_800_000_000.0)
    monotonic = Clock(1000.0)
    world = World(
        SandboxConfig(lines_per_company=200, access_token_ttl_seconds=600),
        clock=clock,
        monotonic=monotonic,
    )
    tenant = world.add_tenant("procountor", credentials=_credentials())
    async with (
        running_sandbox(world=world, vendors=("procountor",)) as sandbox,
        httpx.AsyncClient(base_url=sandbox.base_url) as http,
    ):
        yield Env(sandbox, world, tenant, http, clock, monotonic)


def login_params(**overrides: str) -> dict[str, str]:
    params = {
        "response_type": "code",
        "client_id": CLIENT_ID,
        "redirect_uri": REDIRECT_URI,
        "state": "s-1",
    }
    params.update(overrides)
    return params


async def login(http: httpx.AsyncClient, username: str, **overrides: str) -> str:
    form = {**login_params(**overrides), "username": username, "password": PASSWORD}
    answer = await http.post("/procountor/login", data=form)
    assert answer.status_code == 302, answer.text
    query = parse_qs(urlsplit(answer.headers["location"]).query)
    assert query["state"] == ["s-1"]
    return query["code"][0]


def code_grant(code: str, **overrides: str) -> dict[str, str]:
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
        "redirect_uri": REDIRECT_URI,
    }
    form.update(overrides)
    return form


def journal(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "type": "JOURNAL",
        "name": "Accrual",
        "receiptDate": "2025-06-30",
        "transactions": [
            {"transactionType": "ENTRY", "account": "5000", "accountingValue": 100.25},
            {"transactionType": "ENTRY", "account": "2960", "accountingValue": -100.25},
        ],
    }
    body.update(overrides)
    return body


def error_messages(answer: httpx.Response) -> set[tuple[str | None, str]]:
    errors = answer.json()["errors"]
    assert all(error["status"] == answer.status_code for error in errors)
    return {(error["field"], error["message"]) for error in errors}


# --------------------------------------------------------------------------------------------
# OAuth
# --------------------------------------------------------------------------------------------


async def test_login_needs_the_one_registered_redirect_uri(env: Env) -> None:
    ok = await env.http.get("/procountor/login", params=login_params())
    assert ok.status_code == 200
    assert "<form" in ok.text
    for wrong in (REDIRECT_URI + "?next=1", REDIRECT_URI + "/other", "https://evil.example/cb"):
        answer = await env.http.get("/procountor/login", params=login_params(redirect_uri=wrong))
        assert answer.status_code == 400
        assert "location" not in answer.headers


async def test_client_with_a_query_in_its_redirect_uri_is_never_registered(env: Env) -> None:
    credentials = {**_credentials(), "client_id": "query-client"}
    credentials["redirect_uri"] = "https://app.example/cb?tenant=1"
    env.world.add_tenant("procountor", credentials=credentials)
    answer = await env.http.get(
        "/procountor/login",
        params=login_params(client_id="query-client", redirect_uri=credentials["redirect_uri"]),
    )
    assert answer.status_code == 400
    assert "query-client" not in procountor_server(env.world).clients


async def test_login_refuses_a_wrong_password(env: Env) -> None:
    form = {**login_params(), "username": env.tenant.credentials["username"], "password": "x"}
    answer = await env.http.post("/procountor/login", data=form)
    assert answer.status_code == 401
    assert "location" not in answer.headers


async def test_token_endpoint_refuses_bad_grants(env: Env) -> None:
    code = await login(env.http, env.tenant.credentials["username"])
    wrong_secret = await env.http.post(TOKEN_PATH, data=code_grant(code, client_secret="no"))
    assert wrong_secret.status_code == 401
    assert wrong_secret.json()["error"] == "invalid_client"
    assert "error_description" in wrong_secret.json()
    first = await env.http.post(TOKEN_PATH, data=code_grant(code))
    assert first.status_code == 200
    body = first.json()
    assert body["expires_in"] == 600
    assert body["token_type"] == "Bearer"
    # Rotation: a refresh token works once.
    refresh = {
        "grant_type": "refresh_token",
        "refresh_token": body["refresh_token"],
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
    }
    rotated = await env.http.post(TOKEN_PATH, data=refresh)
    assert rotated.status_code == 200
    again = await env.http.post(TOKEN_PATH, data=refresh)
    assert again.status_code == 400
    assert again.json()["error"] == "invalid_grant"
    # A code used twice is refused, and what was issued from it is revoked.
    reused = await env.http.post(TOKEN_PATH, data=code_grant(code))
    assert reused.status_code == 400
    assert reused.json()["error"] == "invalid_grant"
    revoked = await env.api("GET", "/company", rotated.json()["access_token"])
    assert revoked.status_code == 401


async def test_client_credentials_need_the_bound_api_key(env: Env) -> None:
    base = {"grant_type": "client_credentials", "client_id": CLIENT_ID}
    missing = await env.http.post(TOKEN_PATH, data={**base, "client_secret": CLIENT_SECRET})
    assert missing.status_code == 400
    assert missing.json()["error"] == "invalid_request"
    wrong = await env.http.post(
        TOKEN_PATH, data={**base, "client_secret": CLIENT_SECRET, "api_key": "other"}
    )
    assert wrong.json()["error"] == "invalid_grant"
    # The key is bound to its client: another registered client cannot use it.
    other = {**_credentials(), "client_id": "other-client", "api_key": "other-key"}
    env.world.add_tenant("procountor", credentials=other)
    foreign = await env.http.post(
        TOKEN_PATH,
        data={
            "grant_type": "client_credentials",
            "client_id": "other-client",
            "client_secret": CLIENT_SECRET,
            "api_key": API_KEY,
        },
    )
    assert foreign.json()["error"] == "invalid_grant"
    ok = await env.http.post(
        TOKEN_PATH, data={**base, "client_secret": CLIENT_SECRET, "api_key": API_KEY}
    )
    assert ok.status_code == 200
    assert "refresh_token" not in ok.json()
    company = await env.api("GET", "/company", ok.json()["access_token"])
    assert company.json()["id"] == int(env.tenant.tenant_id)


async def test_expired_and_missing_tokens_are_401(env: Env) -> None:
    token = await env.token()
    assert (await env.api("GET", "/company", token)).status_code == 200
    env.clock.now += 601
    expired = await env.api("GET", "/company", token)
    assert expired.status_code == 401
    assert expired.json()["error"] == "invalid_token"
    assert "expired" in expired.json()["error_description"]
    assert "Bearer" in expired.headers["www-authenticate"]
    missing = await env.http.get("/procountor/api/company")
    assert missing.status_code == 401
    assert missing.json()["error"] == "invalid_token"


# --------------------------------------------------------------------------------------------
# Access, rate limit, faults
# --------------------------------------------------------------------------------------------


async def test_api_not_enabled_is_refused(env: Env) -> None:
    token = await env.token()
    env.tenant.api_enabled = False
    answer = await env.api("GET", "/coa", token)
    assert answer.status_code == 403
    assert error_messages(answer) == {(None, "API_CLIENTS_NOT_ALLOWED")}


async def test_twenty_requests_per_second_per_client(env: Env) -> None:
    token = await env.token()
    env.monotonic.now += 10  # a full bucket
    headers = {"Authorization": f"Bearer {token}"}
    statuses = [
        (await env.http.get("/procountor/api/company", headers=headers)).status_code
        for _ in range(21)
    ]
    assert statuses == [200] * 20 + [429]
    limited = await env.http.get("/procountor/api/company", headers=headers)
    assert limited.status_code == 429
    assert int(limited.headers["retry-after"]) >= 1
    assert error_messages(limited) == {(None, "TOO_MANY_REQUESTS")}
    env.monotonic.now += 1
    assert (await env.http.get("/procountor/api/company", headers=headers)).status_code == 200


async def test_faults_are_answered_in_procountor_shape(env: Env) -> None:
    token = await env.token()
    env.world.faults.set(FaultPlan(vendor="procountor", storm_429=1, retry_after_seconds=3))
    storm = await env.api("GET", "/coa", token)
    assert storm.status_code == 429
    assert storm.headers["retry-after"] == "3"
    env.world.faults.set(FaultPlan(vendor="procountor", error_rate=1.0, error_status=503))
    down = await env.api("GET", "/coa", token)
    assert down.status_code == 503
    assert error_messages(down) == {(None, "SERVICE_UNAVAILABLE")}
    env.world.faults.clear()
    assert (await env.api("GET", "/coa", token)).status_code == 200


# --------------------------------------------------------------------------------------------
# Reads
# --------------------------------------------------------------------------------------------


async def test_master_data_shapes(env: Env) -> None:
    token = await env.token()
    coa = (await env.api("GET", "/coa", token)).json()
    assert {"ledgerAccountCode", "name", "active"} <= set(coa["ledgerAccounts"][0])
    dimensions = (await env.api("GET", "/dimensions", token)).json()
    assert [d["name"] for d in dimensions] == ["Kustannuspaikka", "Kustannusyksikkö", "Projekti"]
    # Published DimensionItem (changed from ACTIVE/INACTIVE): no status when active, "P" not.
    assert {None, "P"} == {i.get("status") for i in dimensions[0]["items"]}
    set_period_status(env.tenant, dt.date(2025, 12, 1), "PENDING")
    years = (await env.api("GET", "/fiscalyears", token)).json()["fiscalYears"]
    # Published FiscalYear (changed from "periods"/"status"): trackingPeriods[] and isOpen,
    # newest year first.
    assert [y["startDate"] for y in years] == sorted((y["startDate"] for y in years), reverse=True)
    assert all(isinstance(y["isOpen"], bool) and "periods" not in y for y in years)
    statuses = {p["startDate"]: p["status"] for y in years for p in y["trackingPeriods"]}
    assert statuses["2025-03-01"] == "CLOSED"
    assert statuses["2025-04-01"] == "OPEN"
    assert statuses["2025-12-01"] == "PENDING"


async def test_listing_pages_at_most_200_with_meta(env: Env) -> None:
    token = await env.token()
    too_big = await env.api("GET", "/ledgerreceipts", token, params={"size": 201})
    assert too_big.status_code == 400
    assert error_messages(too_big) == {("size", "INVALID_VALUE")}
    bad = await env.api(
        "GET", "/ledgerreceipts", token, params={"page": -1, "types": "NOPE", "startDate": "x"}
    )
    assert error_messages(bad) == {
        ("page", "INVALID_VALUE"),
        ("types", "INVALID_VALUE"),
        ("startDate", "INVALID_DATE"),
    }
    full = await env.api("GET", "/ledgerreceipts", token, params={"size": 200})
    body = full.json()
    total = body["meta"]["totalCount"]
    assert body["meta"] == {
        "pageNumber": 0,
        "pageSize": 200,
        "resultCount": min(200, total),
        "totalCount": total,
    }
    # Published: the search answers LedgerReceiptBasicInfo (no transactions) and orders
    # newest first by default (changed from oldest first); orderByVersion=ASC reverses it.
    assert all("transactions" not in r for r in body["results"])
    versions = [r["version"] for r in body["results"]]
    assert versions == sorted(versions, reverse=True)
    ascending = await env.api(
        "GET", "/ledgerreceipts", token, params={"size": 200, "orderByVersion": "ASC"}
    )
    ascending_versions = [r["version"] for r in ascending.json()["results"]]
    assert ascending_versions == sorted(ascending_versions)
    last_page = total // 200
    tail = (
        await env.api("GET", "/ledgerreceipts", token, params={"page": last_page, "size": 200})
    ).json()
    assert tail["meta"]["resultCount"] == total - 200 * last_page
    journals = await env.api(
        "GET",
        "/ledgerreceipts",
        token,
        params={"types": "JOURNAL", "startDate": "2025-01-01", "endDate": "2025-01-31"},
    )
    found = journals.json()["results"]
    assert found
    assert all(r["type"] == "JOURNAL" and r["receiptDate"].startswith("2025-01") for r in found)


async def test_version_start_date_returns_what_changed(env: Env) -> None:
    token = await env.token()
    env.tenant.company.edit_voucher(4)
    edited = env.tenant.company.voucher(4)
    since = edited.modified_at.strftime("%Y-%m-%dT%H:%M:%S.%f")
    answer = await env.api("GET", "/ledgerreceipts", token, params={"versionStartDate": since})
    assert [r["id"] for r in answer.json()["results"]] == [4]


async def test_get_by_ids_at_most_200(env: Env) -> None:
    token = await env.token()
    ids = ",".join(str(n) for n in range(1, 202))
    too_many = await env.api("GET", f"/ledgerreceipts/{ids}", token)
    assert too_many.status_code == 400
    assert error_messages(too_many) == {("ids", "TOO_MANY_IDS")}
    two = await env.api("GET", "/ledgerreceipts/1,2", token)
    assert [r["id"] for r in two.json()] == [1, 2]
    missing = await env.api("GET", "/ledgerreceipts/7777777", token)
    assert missing.status_code == 404


async def test_salary_receipts_hidden_without_full_salary_rights(env: Env) -> None:
    add_user(env.world, env.tenant, "no-salary-user", PASSWORD, salary_rights=False)
    limited = await env.token("no-salary-user")
    full = await env.token()
    payroll = len(env.tenant.company.payroll_runs)

    def count(answer: httpx.Response) -> int:
        total: int = answer.json()["meta"]["totalCount"]
        return total

    seen_full = count(await env.api("GET", "/ledgerreceipts", full, params={"size": 1}))
    seen_limited = count(await env.api("GET", "/ledgerreceipts", limited, params={"size": 1}))
    assert seen_full - seen_limited == payroll > 0
    salary = await env.api("GET", "/ledgerreceipts", full, params={"types": "SALARY"})
    salary_id = salary.json()["results"][0]["id"]
    assert (await env.api("GET", f"/ledgerreceipts/{salary_id}", full)).status_code == 200
    hidden = await env.api("GET", f"/ledgerreceipts/{salary_id}", limited)
    assert hidden.status_code == 404
    refused = await env.api("GET", "/ledgerreceipts", limited, params={"types": "SALARY"})
    assert refused.status_code == 403
    assert error_messages(refused) == {("types", "INSUFFICIENT_SALARY_RIGHTS")}


# --------------------------------------------------------------------------------------------
# Writes
# --------------------------------------------------------------------------------------------


async def test_new_journal_receipts_are_unfinished(env: Env) -> None:
    token = await env.token()
    answer = await env.api("POST", "/ledgerreceipts", token, json=journal())
    assert answer.status_code == 200
    receipt = answer.json()
    assert (receipt["type"], receipt["status"]) == ("JOURNAL", "UNFINISHED")
    again = await env.api("GET", f"/ledgerreceipts/{receipt['id']}", token)
    assert again.json()["status"] == "UNFINISHED"


async def test_only_journal_receipts_in_open_periods_are_accepted(env: Env) -> None:
    token = await env.token()
    sales = await env.api("POST", "/ledgerreceipts", token, json=journal(type="SALES_INVOICE"))
    assert error_messages(sales) == {("type", "ONLY_JOURNAL_RECEIPTS_ALLOWED")}
    closed = await env.api("POST", "/ledgerreceipts", token, json=journal(receiptDate="2025-03-31"))
    assert error_messages(closed) == {("receiptDate", "RECEIPT_DATE_NOT_IN_OPEN_PERIOD")}
    outside = await env.api(
        "POST", "/ledgerreceipts", token, json=journal(receiptDate="2030-01-01")
    )
    assert error_messages(outside) == {("receiptDate", "RECEIPT_DATE_NOT_IN_OPEN_PERIOD")}
    set_period_status(env.tenant, dt.date(2025, 6, 1), "PENDING")
    pending = await env.api("POST", "/ledgerreceipts", token, json=journal())
    assert pending.status_code == 400
    assert error_messages(pending) == {("receiptDate", "RECEIPT_DATE_NOT_IN_OPEN_PERIOD")}


async def test_transactions_must_balance_on_active_accounts(env: Env) -> None:
    token = await env.token()
    body = journal(
        transactions=[
            {"transactionType": "ENTRY", "account": "7390", "accountingValue": 10},
            {"transactionType": "ENTRY", "account": "0000", "accountingValue": -9.99},
            {"transactionType": "BOGUS", "account": "5000", "accountingValue": 1.001},
        ]
    )
    answer = await env.api("POST", "/ledgerreceipts", token, json=body)
    assert answer.status_code == 400
    assert error_messages(answer) == {
        ("transactions[0].account", "LEDGER_ACCOUNT_NOT_ACTIVE"),
        ("transactions[1].account", "LEDGER_ACCOUNT_NOT_FOUND"),
        ("transactions[2].transactionType", "INVALID_VALUE"),
        ("transactions[2].accountingValue", "INVALID_VALUE"),
        ("transactions", "TRANSACTIONS_NOT_BALANCED"),
    }


async def test_dimension_items_must_exist_be_active_and_match(env: Env) -> None:
    token = await env.token()
    dimensions = (await env.api("GET", "/dimensions", token)).json()
    items = dimensions[0]["items"]
    active = next(i for i in items if "status" not in i)["id"]
    inactive = next(i for i in items if i.get("status") == "P")["id"]
    body = journal()
    body["transactions"][0]["dimensionItemValues"] = [
        {"dimensionId": 1, "itemId": inactive, "value": 100.25}
    ]
    body["transactions"][1]["dimensionItemValues"] = [
        {"dimensionId": 1, "itemId": active, "value": 5},
        {"dimensionId": 2, "itemId": 1, "value": -100.25},
    ]
    answer = await env.api("POST", "/ledgerreceipts", token, json=body)
    assert error_messages(answer) == {
        ("transactions[0].dimensionItemValues[0].itemId", "DIMENSION_ITEM_NOT_ACTIVE"),
        ("transactions[1].dimensionItemValues[0].value", "DIMENSION_VALUE_MUST_MATCH_TRANSACTION"),
        ("transactions[1].dimensionItemValues[1].itemId", "DIMENSION_ITEM_NOT_FOUND"),
    }


async def test_update_needs_the_latest_version(env: Env) -> None:
    token = await env.token()
    created = (await env.api("POST", "/ledgerreceipts", token, json=journal())).json()
    path = f"/ledgerreceipts/{created['id']}"
    no_version = await env.api("PUT", path, token, json=journal(name="v2"))
    assert error_messages(no_version) == {("version", "REQUIRED")}
    updated = await env.api("PUT", path, token, json=journal(name="v2", version=created["version"]))
    assert updated.status_code == 200
    assert updated.json()["version"] > created["version"]
    stale = await env.api("PUT", path, token, json=journal(name="v3", version=created["version"]))
    assert stale.status_code == 409
    assert error_messages(stale) == {("version", "VERSION_CONFLICT")}
    sales = next(
        r
        for r in (await env.api("GET", "/ledgerreceipts", token)).json()["results"]
        if r["type"] != "JOURNAL"
    )
    not_journal = await env.api(
        "PUT", f"/ledgerreceipts/{sales['id']}", token, json=journal(version=sales["version"])
    )
    assert error_messages(not_journal) == {("type", "ONLY_JOURNAL_RECEIPTS_ALLOWED")}
