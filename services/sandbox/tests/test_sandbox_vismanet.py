"""The Visma.net stand-in refuses what Visma.net and Visma Connect refuse (plain httpx)."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from ledgerlink.sandbox.config import RateLimitSettings, SandboxConfig
from ledgerlink.sandbox.faults import FaultPlan
from ledgerlink.sandbox.testing import RunningSandbox, running_sandbox
from ledgerlink.sandbox.vendors import vismanet as vn
from ledgerlink.sandbox.world import Tenant, World

CLIENT_ID = "isv_service"
CLIENT_SECRET = "service-secret"
TEST_CLIENT_ID = "isv_test_service"
WEB_CLIENT_ID = "isv_web"
WEB_SECRET = "web-secret"
REDIRECT_URI = "https://app.example/visma/callback"
USER = "anna@customer.example"
PASSWORD = "correct horse"
ALL_SERVICE = " ".join(sorted(vn.SERVICE_SCOPES))


class Clock:
    """A wall clock the test moves (token lifetimes, rate-limit windows)."""

    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Env:
    sandbox: RunningSandbox
    http: httpx.AsyncClient
    tenant: Tenant
    other: Tenant
    clock: Clock

    @property
    def world(self) -> World:
        return self.sandbox.world


def make_world(clock: Clock, *, burst: int = 1000) -> tuple[World, Tenant, Tenant]:
    config = SandboxConfig(
        rate_limits={"vismanet": RateLimitSettings(rate_per_second=burst / 3600, burst=burst)}
    )
    world = World(config, clock=clock)
    tenant = world.add_tenant("vismanet", lines=60)
    other = world.add_tenant("vismanet", lines=10)
    vn.register_client(world, CLIENT_ID, CLIENT_SECRET, tenants=[tenant.tenant_id])
    vn.register_client(world, TEST_CLIENT_ID, CLIENT_SECRET, test_client=True)
    vn.register_client(
        world, WEB_CLIENT_ID, WEB_SECRET, kind="interactive", redirect_uri=REDIRECT_URI
    )
    vn.add_user(world, USER, PASSWORD, tenant)
    return world, tenant, other


@pytest.fixture
async def env() -> AsyncIterator[Env]:
    clock = Clock()
    world, tenant, other = make_world(clock)
    async with (
        running_sandbox(world=world, vendors=("vismanet",)) as sandbox,
        httpx.AsyncClient(base_url=sandbox.base_url) as http,
    ):
        yield Env(sandbox, http, tenant, other, clock)


async def token_request(http: httpx.AsyncClient, **form: str) -> httpx.Response:
    return await http.post(vn.TOKEN_PATH, data=form)


async def service_token(
    http: httpx.AsyncClient,
    tenant_id: str,
    *,
    client_id: str = CLIENT_ID,
    scope: str = ALL_SERVICE,
) -> str:
    response = await token_request(
        http,
        grant_type="client_credentials",
        client_id=client_id,
        client_secret=CLIENT_SECRET,
        scope=scope,
        tenant_id=tenant_id,
    )
    assert response.status_code == 200, response.text
    token: str = response.json()["access_token"]
    return token


def bearer(token: str, company: str | None = None) -> dict[str, str]:
    headers = {"Authorization": f"Bearer {token}"}
    if company is not None:
        headers["ipp-company-id"] = company
    return headers


PAGE = {"pageNumber": 1, "pageSize": 100}
#: The list filter that asks for every batch (one of periodId/lastModifiedDateTime is
#: mandatory in the published contract).
EVERYTHING = {"lastModifiedDateTime": "1900-01-01"}


def journal(**overrides: Any) -> dict[str, Any]:
    """A valid value-wrapped journal transaction for the NL sandbox chart (open period)."""
    body: dict[str, Any] = {
        "transactionDate": {"value": "2025-06-15"},
        "financialPeriod": {"value": "202506"},
        "description": {"value": "Payroll June"},
        "journalTransactionLines": [
            {
                "operation": "Insert",
                "accountNumber": {"value": "4000"},
                "subaccount": [
                    {"segmentId": 1, "segmentValue": "100"},
                    {"segmentId": 2, "segmentValue": "CU01"},
                ],
                "referenceNumber": {"value": "RUN-6"},
                "transactionDescription": {"value": "Salaries"},
                "debitAmountInCurrency": {"value": 1500.25},
            },
            {
                "operation": "Insert",
                "accountNumber": {"value": "1300"},
                "referenceNumber": {"value": "RUN-6"},
                "transactionDescription": {"value": "Net wages"},
                "creditAmountInCurrency": {"value": 1500.25},
            },
        ],
    }
    body.update(overrides)
    return body


def accounts_of(tenant: Tenant) -> tuple[str, str, str]:
    """(an active expense account, an active asset account, an inactive account)."""
    company = tenant.company
    expense = next(a.number for a in company.accounts if a.type == "expense" and a.active)
    asset = next(a.number for a in company.accounts if a.type == "asset" and a.active)
    inactive = next(a.number for a in company.accounts if not a.active)
    return expense, asset, inactive


def valid_journal(tenant: Tenant, reference: str = "RUN-6", amount: float = 1500.25) -> Any:
    expense, asset, _ = accounts_of(tenant)
    body = journal()
    lines = body["journalTransactionLines"]
    lines[0]["accountNumber"] = {"value": expense}
    lines[1]["accountNumber"] = {"value": asset}
    for line in lines:
        line["referenceNumber"] = {"value": reference}
    lines[0]["debitAmountInCurrency"] = {"value": amount}
    lines[1]["creditAmountInCurrency"] = {"value": amount}
    return body


# -- Visma Connect: client credentials --------------------------------------------------------


async def test_client_credentials_need_tenant_and_service_scopes(env: Env) -> None:
    base = {
        "grant_type": "client_credentials",
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
        "scope": ALL_SERVICE,
    }
    missing = await token_request(env.http, **base)
    assert missing.status_code == 400
    assert missing.json()["error"] == "invalid_request"

    unknown = await token_request(env.http, **base, tenant_id=secrets.token_hex(16))
    assert unknown.status_code == 400
    assert unknown.json()["error"] == "invalid_tenant"

    # The other tenant never approved this client.
    unapproved = await token_request(env.http, **base, tenant_id=env.other.tenant_id)
    assert unapproved.json()["error"] == "invalid_tenant"

    interactive = await token_request(
        env.http,
        **{**base, "scope": "vismanet_erp_interactive_api:read"},
        tenant_id=env.tenant.tenant_id,
    )
    assert interactive.json()["error"] == "invalid_scope"

    wrong_secret = await token_request(
        env.http, **{**base, "client_secret": "nope"}, tenant_id=env.tenant.tenant_id
    )
    assert wrong_secret.status_code == 401
    assert wrong_secret.json()["error"] == "invalid_client"

    ok = await token_request(env.http, **base, tenant_id=env.tenant.tenant_id)
    assert ok.status_code == 200
    assert "refresh_token" not in ok.json()


@pytest.mark.parametrize("which", ["company_tenant", "company_id"])
async def test_company_id_instead_of_tenant_id_fails_with_12027(env: Env, which: str) -> None:
    wrong = (
        vn.company_tenant_id(env.tenant) if which == "company_tenant" else vn.company_id(env.tenant)
    )
    token = await service_token(env.http, wrong)
    response = await env.http.get("/vismanet/v1/account", params=PAGE, headers=bearer(token))
    assert response.status_code == 403
    body = response.json()
    assert body["ExceptionType"] == "IPPException"
    assert body["ExceptionFaultCode"] == "12027"
    assert body["ExceptionMessage"] == "No license for this company."
    assert body["ExceptionMessageID"].startswith("12027_")


async def test_unlicensed_or_blocked_company_fails_with_12027(env: Env) -> None:
    token = await service_token(env.http, env.tenant.tenant_id)
    env.tenant.api_enabled = False
    refused = await env.http.get("/vismanet/v1/account", params=PAGE, headers=bearer(token))
    assert refused.json()["ExceptionFaultCode"] == "12027"
    env.tenant.api_enabled = True
    env.tenant.blocked = True
    blocked = await env.http.get("/vismanet/v1/account", params=PAGE, headers=bearer(token))
    assert blocked.json()["ExceptionFaultCode"] == "12027"
    env.tenant.blocked = False
    ok = await env.http.get("/vismanet/v1/account", params=PAGE, headers=bearer(token))
    assert ok.status_code == 200


async def test_bearer_token_refused_and_expired(env: Env) -> None:
    none = await env.http.get("/vismanet/v1/account", params=PAGE)
    assert none.status_code == 401
    assert none.json() == {"message": "Authorization has been denied for this request."}
    token = await service_token(env.http, env.tenant.tenant_id)
    env.clock.now += 3601
    expired = await env.http.get("/vismanet/v1/account", params=PAGE, headers=bearer(token))
    assert expired.status_code == 401
    assert 'error="invalid_token"' in expired.headers["www-authenticate"]


async def test_scopes_limit_operations(env: Env) -> None:
    token = await service_token(
        env.http, env.tenant.tenant_id, scope="vismanet_erp_service_api:read"
    )
    read = await env.http.get("/vismanet/v1/account", params=PAGE, headers=bearer(token))
    assert read.status_code == 200
    write = await env.http.post(
        "/vismanet/v2/journaltransaction", json=valid_journal(env.tenant), headers=bearer(token)
    )
    assert write.status_code == 403
    assert "vismanet_erp_service_api:create" in write.json()["message"]


async def test_service_token_refuses_a_foreign_ipp_company_id(env: Env) -> None:
    token = await service_token(env.http, env.tenant.tenant_id)
    foreign = await env.http.get(
        "/vismanet/v1/account", params=PAGE, headers=bearer(token, vn.company_id(env.other))
    )
    assert foreign.status_code == 400
    assert foreign.json()["ExceptionFaultCode"] == "12002"


# -- Visma Connect: authorization code + PKCE -------------------------------------------------


def pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    digest = hashlib.sha256(verifier.encode()).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


async def authorize(env: Env, scope: str, *, challenge: str | None) -> httpx.Response:
    form = {
        "response_type": "code",
        "client_id": WEB_CLIENT_ID,
        "redirect_uri": REDIRECT_URI,
        "scope": scope,
        "state": "xyz",
        "username": USER,
        "password": PASSWORD,
    }
    if challenge is not None:
        form.update(code_challenge=challenge, code_challenge_method="S256")
    return await env.http.post(vn.AUTHORIZE_PATH, data=form)


async def interactive_tokens(env: Env, scope: str) -> dict[str, Any]:
    verifier, challenge = pkce()
    redirect = await authorize(env, scope, challenge=challenge)
    assert redirect.status_code == 302
    query = parse_qs(urlsplit(redirect.headers["location"]).query)
    assert query["state"] == ["xyz"]
    response = await token_request(
        env.http,
        grant_type="authorization_code",
        client_id=WEB_CLIENT_ID,
        client_secret=WEB_SECRET,
        code=query["code"][0],
        redirect_uri=REDIRECT_URI,
        code_verifier=verifier,
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


INTERACTIVE = "vismanet_erp_interactive_api:read openid profile email tenants"


async def test_code_grant_requires_pkce(env: Env) -> None:
    redirect = await authorize(env, INTERACTIVE, challenge=None)
    assert redirect.status_code == 302
    query = parse_qs(urlsplit(redirect.headers["location"]).query)
    assert query["error"] == ["invalid_request"]
    assert "code" not in query


async def test_refresh_token_only_with_offline_access_and_it_rotates(env: Env) -> None:
    without = await interactive_tokens(env, INTERACTIVE)
    assert "refresh_token" not in without
    with_offline = await interactive_tokens(env, f"{INTERACTIVE} offline_access")
    first_refresh = with_offline["refresh_token"]
    rotated = await token_request(
        env.http,
        grant_type="refresh_token",
        client_id=WEB_CLIENT_ID,
        client_secret=WEB_SECRET,
        refresh_token=first_refresh,
    )
    assert rotated.status_code == 200
    assert rotated.json()["refresh_token"] != first_refresh
    reused = await token_request(
        env.http,
        grant_type="refresh_token",
        client_id=WEB_CLIENT_ID,
        client_secret=WEB_SECRET,
        refresh_token=first_refresh,
    )
    assert reused.status_code == 400
    assert reused.json()["error"] == "invalid_grant"
    # Refresh tokens expire too.
    latest = rotated.json()["refresh_token"]
    env.clock.now += env.world.config.refresh_token_ttl_seconds + 1
    expired = await token_request(
        env.http,
        grant_type="refresh_token",
        client_id=WEB_CLIENT_ID,
        client_secret=WEB_SECRET,
        refresh_token=latest,
    )
    assert expired.json()["error"] == "invalid_grant"


async def test_interactive_token_needs_ipp_company_id_of_an_allowed_company(env: Env) -> None:
    token = (await interactive_tokens(env, INTERACTIVE))["access_token"]
    missing = await env.http.get("/vismanet/v1/account", params=PAGE, headers=bearer(token))
    assert missing.status_code == 400
    assert missing.json()["ExceptionFaultCode"] == "12002"
    foreign = await env.http.get(
        "/vismanet/v1/account", params=PAGE, headers=bearer(token, vn.company_id(env.other))
    )
    assert foreign.json()["ExceptionFaultCode"] == "12002"
    own = await env.http.get(
        "/vismanet/v1/account", params=PAGE, headers=bearer(token, vn.company_id(env.tenant))
    )
    assert own.status_code == 200
    assert own.json()[0]["accountCD"] == env.tenant.company.accounts[0].number


# -- Paging -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("params", "fragment"),
    [
        ({}, "Paging is mandatory"),
        ({"pageNumber": 1}, "Paging is mandatory"),
        ({"pageNumber": 0, "pageSize": 10}, "pageNumber"),
        ({"pageNumber": 1, "pageSize": 1001}, "pageSize"),
        ({"pageNumber": "x", "pageSize": 10}, "integers"),
    ],
)
async def test_paging_is_mandatory_and_bounded(
    env: Env, params: dict[str, Any], fragment: str
) -> None:
    token = await service_token(env.http, env.tenant.tenant_id)
    for path in ("/vismanet/v1/account", "/vismanet/v2/journaltransaction"):
        response = await env.http.get(path, params=params, headers=bearer(token))
        assert response.status_code == 400
        assert fragment in response.json()["message"]


async def test_journal_pages_count_lines_and_split_batches(env: Env) -> None:
    token = await service_token(env.http, env.tenant.tenant_id)
    company = env.tenant.company
    total = company.line_count
    size = 7
    seen: list[tuple[str, int]] = []
    split = 0
    number = 1
    previous_last: str | None = None
    while True:
        response = await env.http.get(
            "/vismanet/v2/journaltransaction",
            params={"pageNumber": number, "pageSize": size, **EVERYTHING},
            headers=bearer(token),
        )
        assert response.status_code == 200
        page = response.json()
        lines = [
            (b["batchNumber"], line["lineNumber"])
            for b in page
            for line in b["journalTransactionLines"]
        ]
        assert len(lines) <= size
        if page and previous_last == page[0]["batchNumber"]:
            split += 1
            # The continued batch repeats its header, with the whole batch's totals.
            assert page[0]["debitTotalInCurrency"] == page[0]["creditTotalInCurrency"]
        seen.extend(lines)
        if len(lines) < size:
            break
        previous_last = page[-1]["batchNumber"]
        number += 1
    expected = [
        (str(v.id), line.line_no)
        for v in sorted(company.vouchers, key=lambda v: (v.modified_at, v.id))
        for line in v.lines
    ]
    assert seen == expected
    assert len(seen) == total
    assert split > 0


async def test_exact_multiple_ends_with_an_empty_page(env: Env) -> None:
    token = await service_token(env.http, env.tenant.tenant_id)
    total = env.tenant.company.line_count
    full = await env.http.get(
        "/vismanet/v2/journaltransaction",
        params={"pageNumber": 1, "pageSize": total, **EVERYTHING},
        headers=bearer(token),
    )
    assert sum(len(b["journalTransactionLines"]) for b in full.json()) == total
    after = await env.http.get(
        "/vismanet/v2/journaltransaction",
        params={"pageNumber": 2, "pageSize": total, **EVERYTHING},
        headers=bearer(token),
    )
    assert after.status_code == 200
    assert after.json() == []


async def test_last_modified_filter_sees_an_edit(env: Env) -> None:
    token = await service_token(env.http, env.tenant.tenant_id)
    company = env.tenant.company
    latest = max(v.modified_at for v in company.vouchers)
    # The published filter formats carry no offset (yyyy-MM-ddTHH:mm:ss.FFF, read as UTC).
    stamp = latest.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3]
    before = await env.http.get(
        "/vismanet/v2/journaltransaction",
        params={**PAGE, "lastModifiedDateTime": stamp, "lastModifiedDateTimeCondition": ">"},
        headers=bearer(token),
    )
    assert before.json() == []
    edited = await env.http.post(f"/_sandbox/vismanet/{env.tenant.tenant_id}/vouchers/3/invalidate")
    assert edited.status_code == 200
    after = await env.http.get(
        "/vismanet/v2/journaltransaction",
        params={**PAGE, "lastModifiedDateTime": stamp, "lastModifiedDateTimeCondition": ">"},
        headers=bearer(token),
    )
    # The published status enum says "Voided" (JournalTransactionStatusEnum), not "Void".
    assert [(b["batchNumber"], b["status"]) for b in after.json()] == [("3", "Voided")]
    for bad_stamp in ("yesterday", latest.isoformat()):  # an offset is not a published format
        bad = await env.http.get(
            "/vismanet/v2/journaltransaction",
            params={**PAGE, "lastModifiedDateTime": bad_stamp},
            headers=bearer(token),
        )
        assert bad.status_code == 400
        assert "lastModifiedDateTime" in bad.json()["message"]
    # Neither filter: the published contract makes one of them mandatory.
    unfiltered = await env.http.get(
        "/vismanet/v2/journaltransaction", params=PAGE, headers=bearer(token)
    )
    assert unfiltered.status_code == 400
    assert "periodId is mandatory" in unfiltered.json()["message"]


# -- Journal transactions: writes -------------------------------------------------------------


async def post(env: Env, body: Any, token: str | None = None) -> httpx.Response:
    token = token or await service_token(env.http, env.tenant.tenant_id)
    return await env.http.post("/vismanet/v2/journaltransaction", json=body, headers=bearer(token))


async def test_create_read_update_release(env: Env) -> None:
    token = await service_token(env.http, env.tenant.tenant_id)
    created = await post(env, valid_journal(env.tenant), token)
    assert created.status_code == 201, created.text
    batch = created.json()
    number = batch["batchNumber"]
    assert batch["status"] == "Balanced"
    assert batch["financialPeriod"] == "202506"
    assert created.headers["location"].endswith(f"/v2/journaltransaction/{number}")
    lines = batch["journalTransactionLines"]
    # The read DTO's subaccount is an object whose segments carry the values (published
    # SubaccountInJournalTransactionLineDto), not the write DTO's bare list.
    assert [
        (segment["segmentId"], segment["segmentValue"])
        for segment in lines[0]["subaccount"]["segments"]
    ] == [(1, "100"), (2, "CU01")]
    assert lines[0]["debitAmountInCurrency"] == 1500.25
    assert lines[1]["creditAmountInCurrency"] == 1500.25

    read = await env.http.get(f"/vismanet/v2/journaltransaction/{number}", headers=bearer(token))
    etag = read.headers["etag"]
    update = {"description": {"value": "Payroll June (corrected)"}}
    stale = await env.http.put(
        f"/vismanet/v2/journaltransaction/{number}",
        json=update,
        headers={**bearer(token), "If-Match": '"0-0"'},
    )
    assert stale.status_code == 412
    updated = await env.http.put(
        f"/vismanet/v2/journaltransaction/{number}",
        json=update,
        headers={**bearer(token), "If-Match": etag},
    )
    assert updated.status_code == 204
    assert updated.headers["etag"] != etag
    again = await env.http.put(
        f"/vismanet/v2/journaltransaction/{number}",
        json=update,
        headers={**bearer(token), "If-Match": etag},
    )
    assert again.status_code == 412

    released = await env.http.post(
        f"/vismanet/v2/journaltransaction/{number}/action/release", headers=bearer(token)
    )
    assert released.status_code == 200
    assert released.json()["actionResult"] == "Done"
    posted = await env.http.get(f"/vismanet/v2/journaltransaction/{number}", headers=bearer(token))
    assert posted.json()["status"] == "Posted"
    assert posted.json()["description"] == "Payroll June (corrected)"
    twice = await env.http.post(
        f"/vismanet/v2/journaltransaction/{number}/action/release", headers=bearer(token)
    )
    assert twice.status_code == 400
    frozen = await env.http.put(
        f"/vismanet/v2/journaltransaction/{number}", json=update, headers=bearer(token)
    )
    assert frozen.status_code == 400
    assert "Posted" in frozen.json()["message"]
    missing = await env.http.get("/vismanet/v2/journaltransaction/999999", headers=bearer(token))
    assert missing.status_code == 404


async def test_update_lines_must_stay_balanced(env: Env) -> None:
    token = await service_token(env.http, env.tenant.tenant_id)
    number = (await post(env, valid_journal(env.tenant), token)).json()["batchNumber"]
    unbalanced = await env.http.put(
        f"/vismanet/v2/journaltransaction/{number}",
        json={
            "journalTransactionLines": [
                {
                    "operation": "Update",
                    "lineNumber": {"value": 1},
                    "accountNumber": {"value": accounts_of(env.tenant)[0]},
                    "debitAmountInCurrency": {"value": 1},
                }
            ]
        },
        headers=bearer(token),
    )
    assert unbalanced.status_code == 400
    assert "out of balance" in unbalanced.json()["message"]


def unwrap_account(body: Any) -> Any:
    body["journalTransactionLines"][0]["accountNumber"] = "4000"
    return body


def set_line(index: int, **fields: Any) -> Any:
    def change(body: Any) -> Any:
        body["journalTransactionLines"][index].update(fields)
        return body

    return change


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        (unwrap_account, 'expected a value object {"value": ...}'),
        (lambda b: {**b, "transactionDate": "2025-06-15"}, "transactionDate"),
        (lambda b: {**b, "financialPeriod": {"value": "2025-06"}}, "YYYYPP"),
        (lambda b: {**b, "financialPeriod": {"value": "202501"}}, "is closed"),
        (lambda b: {**b, "financialPeriod": {"value": "209901"}}, "does not exist"),
        (set_line(0, accountNumber={"value": "0000"}), "cannot be found"),
        (set_line(0, subaccount=[{"segmentId": 1, "segmentValue": "900"}]), "inactive"),
        (set_line(0, subaccount=[{"segmentId": 1, "segmentValue": "nope"}]), "not a value"),
        (set_line(0, subaccount=[{"segmentId": 7, "segmentValue": "100"}]), "segment 7"),
        (set_line(0, subaccount={"value": "100"}), "subaccount"),
        (set_line(0, debitAmountInCurrency={"value": 99}), "out of balance"),
        (set_line(0, creditAmountInCurrency={"value": 5}), "not both"),
        (set_line(0, debitAmountInCurrency={"value": -5}), "positive"),
        (set_line(0, debitAmountInCurrency={"value": 1.234}), "two decimals"),
        (set_line(0, referenceNumber={"value": "R" * 16}), "longer than 15"),
        (lambda b: {**b, "branch": {"value": "9"}}, "Branch"),
        (lambda b: {**b, "journalTransactionLines": []}, "journalTransactionLines"),
    ],
)
async def test_create_refuses_what_visma_refuses(env: Env, change: Any, fragment: str) -> None:
    response = await post(env, change(valid_journal(env.tenant)))
    assert response.status_code == 400
    assert fragment in response.json()["message"]
    # Nothing was booked.
    assert all(v.series != "GL" for v in env.tenant.company.vouchers)


async def test_inactive_account_refused(env: Env) -> None:
    _, _, inactive = accounts_of(env.tenant)
    body = set_line(0, accountNumber={"value": inactive})(valid_journal(env.tenant))
    response = await post(env, body)
    assert response.status_code == 400
    assert "inactive" in response.json()["message"]


async def test_test_company_refuses_journals(env: Env) -> None:
    env.tenant.test_company = True
    response = await post(env, valid_journal(env.tenant))
    assert response.status_code == 400
    assert "test company" in response.json()["message"]


async def test_no_idempotency_key_a_second_post_books_twice(env: Env) -> None:
    # Visma.net has no idempotency key: the exporter must look up before posting.
    token = await service_token(env.http, env.tenant.tenant_id)
    first = await post(env, valid_journal(env.tenant), token)
    second = await post(env, valid_journal(env.tenant), token)
    assert first.json()["batchNumber"] != second.json()["batchNumber"]


# -- Master data ------------------------------------------------------------------------------


async def test_master_data_shapes(env: Env) -> None:
    token = await service_token(env.http, env.tenant.tenant_id)
    company = env.tenant.company

    async def get(path: str, **params: Any) -> Any:
        response = await env.http.get(
            f"/vismanet{path}", params={**PAGE, **params}, headers=bearer(token)
        )
        assert response.status_code == 200, response.text
        return response.json()

    accounts = await get("/v1/account")
    assert [a["accountCD"] for a in accounts] == [a.number for a in company.accounts]
    assert {a["type"] for a in accounts} <= {"Asset", "Liability", "Income", "Expense"}
    # Published shapes: GET /v1/dimension lists ids only, the segments and their values
    # (valueId) come from /v1/dimension/{id}; a financial period's id is "period" and its
    # GL flag "closedInGeneralLedger"; a branch's currency needs expandCurrency=true.
    assert await get("/v1/dimension") == ["SUBACCOUNT"]
    dimension = await get("/v1/dimension/SUBACCOUNT")
    assert [s["segmentId"] for s in dimension["segments"]] == [1, 2]
    assert all("valueId" in v for s in dimension["segments"] for v in s["segmentValues"])
    periods = await get("/v1/financialperiod")
    assert periods[0]["period"] == "202401"
    assert periods[0]["closedInGeneralLedger"] is True
    assert any(not p["closedInGeneralLedger"] for p in periods)
    (branch,) = await get("/v1/branch")
    assert branch["corporateId"] == company.business_id
    assert "currency" not in branch
    (branch,) = await get("/v1/branch", expandCurrency="true")
    assert branch["currency"]["id"] == company.currency
    subaccounts = await get("/v1/subaccount")
    assert subaccounts
    balances = await get("/v2/generalLedgerBalance", periodId="202401")
    assert balances
    assert sum(row["yearToDateBalance"] for row in balances) == pytest.approx(0)
    assert all(
        row["yearToDateBalance"]
        == pytest.approx(
            row["beginningBalance"] + row["periodToDateDebit"] - row["periodToDateCredit"]
        )
        for row in balances
    )


# -- Rate limits and faults -------------------------------------------------------------------


async def test_rate_limit_headers_and_429_per_client_and_company() -> None:
    clock = Clock()
    world, tenant, _ = make_world(clock, burst=60)
    async with (
        running_sandbox(world=world, vendors=("vismanet",)) as sandbox,
        httpx.AsyncClient(base_url=sandbox.base_url) as http,
    ):
        token = await service_token(http, tenant.tenant_id)
        first = await http.get("/vismanet/v1/account", params=PAGE, headers=bearer(token))
        assert first.headers["x-ratelimit-limit"] == "60"
        assert first.headers["x-ratelimit-remaining"] == "59"
        assert int(first.headers["x-ratelimit-reset"]) > 0
        # Errors carry the headers too.
        error = await http.get("/vismanet/v1/account", headers=bearer(token))
        assert error.status_code == 400
        assert error.headers["x-ratelimit-remaining"] == "58"
        for _ in range(58):
            await http.get("/vismanet/v1/account", params=PAGE, headers=bearer(token))
        limited = await http.get("/vismanet/v1/account", params=PAGE, headers=bearer(token))
        assert limited.status_code == 429
        assert int(limited.headers["retry-after"]) >= 1
        assert limited.headers["x-ratelimit-remaining"] == "0"
        # A test client has a much lower limit (500 of 15,000), counted apart.
        test_token = await service_token(http, tenant.tenant_id, client_id=TEST_CLIENT_ID)
        test_first = await http.get("/vismanet/v1/account", params=PAGE, headers=bearer(test_token))
        assert test_first.status_code == 200
        assert test_first.headers["x-ratelimit-limit"] == "2"
        # The window resets (the hour-long window outlives the token: take a new one).
        clock.now += int(limited.headers["retry-after"])
        token = await service_token(http, tenant.tenant_id)
        again = await http.get("/vismanet/v1/account", params=PAGE, headers=bearer(token))
        assert again.status_code == 200


async def test_sandbox_reset_refills_the_rate_windows() -> None:
    world, tenant, _ = make_world(Clock(), burst=2)
    async with (
        running_sandbox(world=world, vendors=("vismanet",)) as sandbox,
        httpx.AsyncClient(base_url=sandbox.base_url) as http,
    ):
        token = await service_token(http, tenant.tenant_id)
        for _ in range(2):
            await http.get("/vismanet/v1/account", params=PAGE, headers=bearer(token))
        limited = await http.get("/vismanet/v1/account", params=PAGE, headers=bearer(token))
        assert limited.status_code == 429
        assert (await http.post("/_sandbox/reset")).status_code == 204
        # Tokens are forgotten by a reset as well: a new one, then a full window again.
        token = await service_token(http, tenant.tenant_id)
        again = await http.get("/vismanet/v1/account", params=PAGE, headers=bearer(token))
        assert again.status_code == 200
        assert again.headers["x-ratelimit-remaining"] == "1"


async def test_faults_render_as_visma_answers(env: Env) -> None:
    token = await service_token(env.http, env.tenant.tenant_id)
    env.world.faults.set(FaultPlan(vendor="vismanet", storm_429=1, retry_after_seconds=2))
    storm = await env.http.get("/vismanet/v1/account", params=PAGE, headers=bearer(token))
    assert storm.status_code == 429
    assert storm.headers["retry-after"] == "2"
    assert "x-ratelimit-limit" in storm.headers
    env.world.faults.set(FaultPlan(vendor="vismanet", error_rate=1.0, error_status=503))
    down = await env.http.get("/vismanet/v1/account", params=PAGE, headers=bearer(token))
    assert down.status_code == 503
    assert "message" in down.json()
    env.world.faults.clear()
    assert (
        await env.http.get("/vismanet/v1/account", params=PAGE, headers=bearer(token))
    ).status_code == 200


async def test_transaction_dates_round_trip(env: Env) -> None:
    token = await service_token(env.http, env.tenant.tenant_id)
    voucher = env.tenant.company.vouchers[0]
    response = await env.http.get(
        f"/vismanet/v2/journaltransaction/{voucher.id}", headers=bearer(token)
    )
    body = response.json()
    assert body["transactionDate"].startswith(voucher.date.isoformat())
    stamp = dt.datetime.fromisoformat(body["lastModifiedDateTime"])
    assert abs((stamp - voucher.modified_at).total_seconds()) < 0.001
