"""The 24SevenOffice stand-in refuses what 24SevenOffice refuses (plain httpx, real HTTP)."""

from __future__ import annotations

import datetime as dt
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import defusedxml.ElementTree as SafeET
import httpx
import pytest

from ledgerlink.sandbox.config import RateLimitSettings, SandboxConfig
from ledgerlink.sandbox.data import generate_company
from ledgerlink.sandbox.faults import FaultPlan
from ledgerlink.sandbox.testing import RunningSandbox, running_sandbox
from ledgerlink.sandbox.vendors import twentyfour as tf
from ledgerlink.sandbox.world import Tenant, World

NS = tf.SOAP_NS
# TransactionService answers in its own published namespace (changed: it shared NS before).
ACC = tf.ACCOUNTING_NS
ENV = tf.SOAP_ENV
APP_ID = "app-under-test"
USER = "integration@firm.example"
PASSWORD = "correct horse"
CLIENT_ID = "rest-client"
CLIENT_SECRET = "rest-secret"


@dataclass
class Env:
    sandbox: RunningSandbox
    http: httpx.AsyncClient
    first: Tenant
    second: Tenant
    outsider: Tenant
    state: tf.TwentyFourState


@pytest.fixture
async def env() -> AsyncIterator[Env]:
    config = SandboxConfig(
        rate_limits={"twentyfour": RateLimitSettings(rate_per_second=1000, burst=1000)}
    )
    world = World(config)
    first = world.add_tenant("twentyfour", tenant_id="1001", lines=40)
    second = world.add_tenant("twentyfour", tenant_id="1002", lines=60)
    outsider = world.add_tenant("twentyfour", tenant_id="1003", lines=10)
    state = tf.state_of(world)
    state.register_application(APP_ID)
    state.add_integration_user(USER, PASSWORD, ["1001", "1002"])
    state.add_rest_client(CLIENT_ID, CLIENT_SECRET, ["1001", "1002"])
    async with (
        running_sandbox(world=world, vendors=("twentyfour",)) as sandbox,
        httpx.AsyncClient(base_url=sandbox.base_url) as http,
    ):
        yield Env(sandbox, http, first, second, outsider, state)


def envelope(
    operation: str, build: Callable[[ET.Element], None] | None = None, ns: str = NS
) -> bytes:
    root = ET.Element(f"{{{ENV}}}Envelope")
    body = ET.SubElement(root, f"{{{ENV}}}Body")
    element = ET.SubElement(body, f"{{{ns}}}{operation}")
    if build is not None:
        build(element)
    return bytes(ET.tostring(root, encoding="utf-8"))


def sub(parent: ET.Element, name: str, text: str | None = None) -> ET.Element:
    ns = parent.tag[1:].partition("}")[0]
    element = ET.SubElement(parent, f"{{{ns}}}{name}")
    element.text = text
    return element


async def soap(
    http: httpx.AsyncClient,
    path: str,
    operation: str,
    build: Callable[[ET.Element], None] | None = None,
    *,
    session: str | None = None,
) -> httpx.Response:
    ns = ACC if path == tf.TRANSACTION_PATH else NS
    action = f"{ns}{operation}" if ns.endswith("/") else f"{ns}/{operation}"
    headers = {"Content-Type": "text/xml; charset=utf-8", "SOAPAction": f'"{action}"'}
    if session:
        headers["Cookie"] = f"ASP.NET_SessionId={session}"
    return await http.post(path, content=envelope(operation, build, ns), headers=headers)


def fault_string(response: httpx.Response) -> str:
    assert response.status_code == 500, response.text
    root = SafeET.fromstring(response.content)
    fault = root.find(f"{{{ENV}}}Body/{{{ENV}}}Fault")
    assert fault is not None, response.text
    return fault.findtext("faultstring") or ""


def result(response: httpx.Response, operation: str, ns: str = NS) -> ET.Element:
    assert response.status_code == 200, response.text
    root = SafeET.fromstring(response.content)
    found = root.find(f"{{{ENV}}}Body/{{{ns}}}{operation}Response/{{{ns}}}{operation}Result")
    assert found is not None, response.text
    return found


def login_body(
    app_id: str = APP_ID, user: str = USER, password: str = PASSWORD, identity: str | None = None
) -> Callable[[ET.Element], None]:
    def build(element: ET.Element) -> None:
        credential = sub(element, "credential")
        sub(credential, "ApplicationId", app_id)
        sub(credential, "Username", user)
        sub(credential, "Password", password)
        if identity:
            sub(credential, "IdentityId", identity)

    return build


async def login(env: Env, **kwargs: str) -> str:
    response = await soap(env.http, tf.AUTH_PATH, "Login", login_body(**kwargs))
    session = result(response, "Login").text or ""
    assert response.cookies.get("ASP.NET_SessionId") == session
    return session


async def token(env: Env, organization: str = "1001") -> str:
    response = await env.http.post(
        tf.TOKEN_PATH,
        data={
            "grant_type": "client_credentials",
            "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET,
            "login_organization": organization,
            "audience": tf.AUDIENCE,
        },
    )
    assert response.status_code == 200, response.text
    return str(response.json()["access_token"])


# -- SOAP: authentication ------------------------------------------------------------------


async def test_login_refuses_wrong_password_unknown_application_and_unknown_user(env: Env) -> None:
    for build, expected in (
        (login_body(password="wrong"), "Invalid username or password"),
        (login_body(user="nobody@example.com"), "Invalid username or password"),
        (login_body(app_id="unregistered"), "ApplicationId is not registered"),
    ):
        response = await soap(env.http, tf.AUTH_PATH, "Login", build)
        assert expected in fault_string(response)
        assert "ASP.NET_SessionId" not in response.cookies


async def test_login_sets_the_session_cookie_and_repeated_logins_are_throttled(env: Env) -> None:
    env.state.login_limit = 3
    sessions = {await login(env) for _ in range(3)}
    assert len(sessions) == 3
    response = await soap(env.http, tf.AUTH_PATH, "Login", login_body())
    assert "Too many logins" in fault_string(response)
    assert int(response.headers["Retry-After"]) >= 1


async def test_sandbox_reset_forgets_sessions_and_logins_but_keeps_users(env: Env) -> None:
    env.state.login_limit = 2
    session = await login(env)
    await login(env)
    assert "Too many logins" in fault_string(
        await soap(env.http, tf.AUTH_PATH, "Login", login_body())
    )
    assert (await env.http.post("/_sandbox/reset")).status_code == 204
    response = await soap(env.http, tf.ACCOUNT_PATH, "GetAccountList", session=session)
    assert fault_string(response).startswith("Not authenticated")
    assert env.state.login_count == 0
    # The integration user and its application are still there: logging in works again.
    assert await login(env) != session


async def test_calls_without_a_valid_session_are_refused(env: Env) -> None:
    for session in (None, "not-a-session"):
        response = await soap(env.http, tf.ACCOUNT_PATH, "GetAccountList", session=session)
        assert fault_string(response).startswith("Not authenticated")
    session = await login(env)
    env.state.expire_sessions()
    response = await soap(env.http, tf.TRANSACTION_PATH, "GetFiscalYears", session=session)
    assert fault_string(response).startswith("Not authenticated")


async def test_save_bundle_list_without_session_answers_not_authenticated(env: Env) -> None:
    def build(element: ET.Element) -> None:
        sub(sub(element, "BundleList"), "Bundles")

    response = await soap(env.http, tf.ACCOUNT_PATH, "SaveBundleList", build)
    assert result(response, "SaveBundleList").findtext(f"{{{NS}}}Type") == "NotAuthenticated"


async def test_malformed_requests_are_soap_faults(env: Env) -> None:
    good = envelope("GetAccountList")
    cases: list[tuple[bytes, dict[str, str], str]] = [
        (b"<not xml", {"SOAPAction": f'"{NS}/GetAccountList"'}, "unable to read request"),
        (
            b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "b">]><x>&a;</x>',
            {"SOAPAction": f'"{NS}/GetAccountList"'},
            "unable to read request",
        ),
        (good, {"SOAPAction": f'"{NS}/GetTypeList"'}, "SOAPAction"),
        (good, {}, "SOAPAction"),
        (envelope("DropDatabase"), {"SOAPAction": f'"{NS}/DropDatabase"'}, "operation"),
    ]
    for body, headers, expected in cases:
        response = await env.http.post(
            tf.ACCOUNT_PATH, content=body, headers={"Content-Type": "text/xml", **headers}
        )
        assert expected in fault_string(response)
    response = await env.http.post(
        tf.ACCOUNT_PATH,
        content=good,
        headers={"Content-Type": "application/json", "SOAPAction": f'"{NS}/GetAccountList"'},
    )
    assert "text/xml" in fault_string(response)


# -- SOAP: identities ------------------------------------------------------------------------


async def test_identities_list_only_invited_clients_and_switching_changes_the_data(
    env: Env,
) -> None:
    session = await login(env)
    identities = result(
        await soap(env.http, tf.AUTH_PATH, "GetIdentities", session=session), "GetIdentities"
    )
    clients = {
        identity.findtext(f"{{{NS}}}Client/{{{NS}}}Id"): identity.findtext(f"{{{NS}}}Id")
        for identity in identities
    }
    assert set(clients) == {"1001", "1002"}

    async def current_client() -> str:
        found = result(
            await soap(env.http, tf.AUTH_PATH, "GetIdentities", session=session), "GetIdentities"
        )
        return next(
            i.findtext(f"{{{NS}}}Client/{{{NS}}}Id") or ""
            for i in found
            if i.findtext(f"{{{NS}}}IsCurrent") == "true"
        )

    assert await current_client() == "1001"

    def switch(identity: str) -> Callable[[ET.Element], None]:
        def build(element: ET.Element) -> None:
            sub(element, "identityId", identity)

        return build

    response = await soap(
        env.http, tf.AUTH_PATH, "SetIdentityById", switch(clients["1002"] or ""), session=session
    )
    assert response.status_code == 200
    assert await current_client() == "1002"

    # The outsider's identity (not invited) cannot be chosen, by id nor at login.
    foreign = env.state.users[USER].identity_of("1003")
    response = await soap(
        env.http, tf.AUTH_PATH, "SetIdentityById", switch(foreign), session=session
    )
    assert "not available" in fault_string(response)
    response = await soap(env.http, tf.AUTH_PATH, "Login", login_body(identity=foreign))
    assert "not available" in fault_string(response)


async def test_a_client_without_api_access_is_refused(env: Env) -> None:
    env.first.api_enabled = False
    response = await soap(env.http, tf.AUTH_PATH, "Login", login_body())
    assert "not enabled" in fault_string(response)


# -- SOAP: master data and bundles -----------------------------------------------------------


async def test_fiscal_years_carry_locks_and_types_carry_no_and_title(env: Env) -> None:
    session = await login(env)
    # A call in the webservices namespace is refused by TransactionService (published WSDL).
    wrong = await env.http.post(
        tf.TRANSACTION_PATH,
        content=envelope("GetFiscalYears"),
        headers={
            "Content-Type": "text/xml; charset=utf-8",
            "SOAPAction": f'"{NS}/GetFiscalYears"',
            "Cookie": f"ASP.NET_SessionId={session}",
        },
    )
    assert "namespace" in fault_string(wrong)
    years = result(
        await soap(env.http, tf.TRANSACTION_PATH, "GetFiscalYears", session=session),
        "GetFiscalYears",
        ACC,
    )
    # Published FiscalYear (changed from StartDate/EndDate/Periods): Id, StartingDate,
    # EndingDate, IsLocked for the whole year.
    found = [
        (
            year.findtext(f"{{{ACC}}}StartingDate"),
            year.findtext(f"{{{ACC}}}EndingDate"),
            year.findtext(f"{{{ACC}}}IsLocked"),
        )
        for year in years.findall(f"{{{ACC}}}FiscalYear")
    ]
    assert found == [
        (
            f"{y.start.isoformat()}T00:00:00",
            f"{y.end.isoformat()}T00:00:00",
            "true" if y.closed else "false",
        )
        for y in env.first.company.fiscal_years
    ]
    assert not list(years.iter(f"{{{ACC}}}Period"))
    types = result(
        await soap(env.http, tf.TRANSACTION_PATH, "GetTransactionTypes", session=session),
        "GetTransactionTypes",
        ACC,
    )
    first_type = types[0]
    assert (first_type.findtext(f"{{{ACC}}}No"), first_type.findtext(f"{{{ACC}}}Title")) == (
        "1",
        "Utgående faktura",
    )
    assert len(types) == 6
    dimensions = result(
        await soap(env.http, tf.TRANSACTION_PATH, "GetUserDefinedDimensions", session=session),
        "GetUserDefinedDimensions",
        ACC,
    )
    # Published: flat Dimension elements (Type, Name, TypeId); values come separately.
    kinds = [d.findtext(f"{{{ACC}}}Type") for d in dimensions.findall(f"{{{ACC}}}Dimension")]
    assert kinds == ["Department", "UserDefined", "Project"]

    def dimension_type(element: ET.Element) -> None:
        sub(element, "DimensionType", "1")

    values = result(
        await soap(
            env.http,
            tf.TRANSACTION_PATH,
            "GetUserDefinedDimensionValues",
            dimension_type,
            session=session,
        ),
        "GetUserDefinedDimensionValues",
        ACC,
    )
    assert [v.findtext(f"{{{ACC}}}Value") for v in values] == [
        o.code for o in env.first.company.dimensions[0].objects
    ]


async def test_get_transactions_needs_search_params(env: Env) -> None:
    session = await login(env)
    response = await soap(env.http, tf.TRANSACTION_PATH, "GetTransactions", session=session)
    assert "searchParams" in fault_string(response)


def bundle_list(
    *vouchers: list[tuple[str, str, str]],
    name: str = "Payroll 2025-05",
    number: str = "1",
    sort: int = 5,
) -> Callable[[ET.Element], None]:
    def build(element: ET.Element) -> None:
        bundles = sub(sub(element, "BundleList"), "Bundles")
        bundle = sub(bundles, "Bundle")
        sub(bundle, "YearId", "2025")
        container = sub(bundle, "Vouchers")
        for index, entries in enumerate(vouchers):
            voucher = sub(container, "Voucher")
            sub(voucher, "TransactionNo", number if index == 0 else f"{number}{index}")
            entries_element = sub(voucher, "Entries")
            for day, account, amount in entries:
                entry = sub(entries_element, "Entry")
                sub(entry, "AccountNo", account)
                sub(entry, "Date", f"{day}T00:00:00")
                sub(entry, "Amount", amount)
            sub(voucher, "Sort", str(sort))
        sub(bundle, "Sort", str(sort))
        sub(bundle, "Name", name)

    return build


async def test_save_bundle_list_refuses_what_24sevenoffice_refuses(env: Env) -> None:
    session = await login(env)
    balanced = [("2025-05-31", "5000", "100.00"), ("2025-05-31", "2930", "-100.00")]

    async def save(build: Callable[[ET.Element], None]) -> tuple[str, str]:
        found = result(
            await soap(env.http, tf.ACCOUNT_PATH, "SaveBundleList", build, session=session),
            "SaveBundleList",
        )
        return found.findtext(f"{{{NS}}}Type") or "", found.findtext(f"{{{NS}}}Description") or ""

    before = len(env.first.company.vouchers)
    kind, text = await save(bundle_list([balanced[0], ("2025-05-31", "2930", "-90.00")]))
    assert (kind, "do not balance" in text) == ("NotSaved", True)
    kind, text = await save(
        bundle_list([("2025-02-28", "5000", "1.00"), ("2025-02-28", "2930", "-1.00")])
    )
    assert (kind, "closed" in text) == ("NotSaved", True)
    kind, text = await save(
        bundle_list([("2025-05-31", "9999", "1.00"), ("2025-05-31", "2930", "-1.00")])
    )
    assert (kind, "does not exist" in text) == ("NotSaved", True)
    kind, text = await save(
        bundle_list([("2025-05-31", "7350", "1.00"), ("2025-05-31", "2930", "-1.00")])
    )
    assert (kind, "inactive" in text) == ("NotSaved", True)
    kind, text = await save(bundle_list(balanced, sort=99))
    assert (kind, "99" in text) == ("NotSaved", True)
    assert len(env.first.company.vouchers) == before

    def duplicated(element: ET.Element) -> None:
        bundle_list(balanced, balanced)(element)
        for voucher in element.iter(f"{{{NS}}}Voucher"):
            voucher.find(f"{{{NS}}}TransactionNo").text = "7"  # type: ignore[union-attr]

    assert (await save(duplicated))[0] == "DuplicateData"
    assert await save(bundle_list(balanced)) == ("Ok", "")
    assert len(env.first.company.vouchers) == before + 1
    assert (await save(bundle_list(balanced)))[0] == "DataAlreadySaved"


async def test_soap_rate_limit_storm_is_a_fault_with_retry_after(env: Env) -> None:
    session = await login(env)
    env.sandbox.world.faults.set(FaultPlan(vendor="twentyfour", storm_429=1))
    response = await soap(env.http, tf.ACCOUNT_PATH, "GetAccountList", session=session)
    assert "Too many requests" in fault_string(response)
    assert response.headers["Retry-After"] == "1"
    response = await soap(env.http, tf.ACCOUNT_PATH, "GetAccountList", session=session)
    assert len(result(response, "GetAccountList")) == len(env.first.company.accounts)


# -- REST --------------------------------------------------------------------------------------


async def test_token_endpoint_refuses_bad_clients_audiences_and_organizations(env: Env) -> None:
    base = {
        "grant_type": "client_credentials",
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
        "login_organization": "1001",
        "audience": tf.AUDIENCE,
    }
    cases = [
        ({"client_secret": "wrong"}, 401, "invalid_client"),
        ({"audience": "https://elsewhere.example"}, 400, "invalid_request"),
        ({"login_organization": ""}, 400, "invalid_request"),
        ({"login_organization": "1003"}, 403, "access_denied"),
        ({"grant_type": "password"}, 400, "unsupported_grant_type"),
    ]
    for change, status, error in cases:
        response = await env.http.post(tf.TOKEN_PATH, data={**base, **change})
        assert (response.status_code, response.json()["error"]) == (status, error)
        assert "access_token" not in response.json()


async def test_rest_refuses_missing_invalid_and_expired_tokens(env: Env) -> None:
    path = f"{tf.REST_PREFIX}/organization/information"
    for headers in ({}, {"Authorization": "Bearer nope"}):
        response = await env.http.get(path, headers=headers)
        assert response.status_code == 401
        body = response.json()
        assert body["errors"][0]["type"] == "unauthorized"
        assert body["trackingId"]
    bearer = {"Authorization": f"Bearer {await token(env)}"}
    response = await env.http.get(path, headers=bearer)
    assert response.json()["organizationNumber"] == env.first.company.business_id
    await env.http.post("/_sandbox/tokens/expire", json={"vendor": "twentyfour"})
    assert (await env.http.get(path, headers=bearer)).status_code == 401


async def test_transactionlines_validates_queries_and_pages_with_link_next(env: Env) -> None:
    bearer = {"Authorization": f"Bearer {await token(env)}"}
    path = f"{tf.REST_PREFIX}/transactionlines"
    for params in (
        {"dateTo": "2025-12-31"},
        {"dateFrom": "2025-13-01", "dateTo": "2025-12-31"},
        {"dateFrom": "2024-01-01", "dateTo": "2025-12-31", "limit": "1001"},
        {"dateFrom": "2024-01-01", "dateTo": "2025-12-31", "page": "0"},
    ):
        response = await env.http.get(path, params=params, headers=bearer)
        assert response.status_code == 400, params
        assert response.json()["errors"][0]["type"] == "validation"
    # 40 lines: two full pages of 20, the second without a next link (exact multiple).
    window = {"dateFrom": "2024-01-01", "dateTo": "2025-12-31", "limit": "20"}
    first = await env.http.get(path, params=window, headers=bearer)
    assert len(first.json()) == 20
    next_url = first.links["next"]["url"]
    second = await env.http.get(next_url, headers=bearer)
    assert len(second.json()) == 20
    assert "next" not in second.links
    third = await env.http.get(path, params={**window, "page": "3"}, headers=bearer)
    assert third.json() == []
    assert "next" not in third.links
    # Published Transaction line (changed from a flat sandbox shape): nested transaction,
    # account and transactionType, modifiedAt; dimensions only with includeDimensions.
    line = first.json()[0]
    assert {"transaction", "account", "transactionType", "amount", "date", "modifiedAt"} <= set(
        line
    )
    assert "dimensions" not in line
    assert set(line["transaction"]) == {"id", "number"}
    with_dimensions = await env.http.get(
        path, params={**window, "includeDimensions": "true"}, headers=bearer
    )
    assert all("dimensions" in item for item in with_dimensions.json())
    # Published: dateTo is exclusive, and there is no change filter (an unknown parameter
    # is ignored; changed from a 400 for a malformed changedAfter).
    last_day = max(v.date for v in env.first.company.vouchers).isoformat()
    on_last_day = sum(
        len(v.lines) for v in env.first.company.vouchers if v.date.isoformat() == last_day
    )
    upto = await env.http.get(
        path,
        params={"dateFrom": last_day, "dateTo": last_day, "changedAfter": "yesterday"},
        headers=bearer,
    )
    assert upto.json() == []
    including = await env.http.get(
        path,
        params={
            "dateFrom": last_day,
            "dateTo": (dt.date.fromisoformat(last_day) + dt.timedelta(days=1)).isoformat(),
        },
        headers=bearer,
    )
    assert len(including.json()) == on_last_day > 0


async def test_the_public_rest_api_has_no_transaction_write_endpoint(env: Env) -> None:
    # Published: the REST API (rest.yaml) has no POST /transactions; postings go through SOAP
    # SaveBundleList (changed: the sandbox used to accept REST postings).
    bearer = {"Authorization": f"Bearer {await token(env)}"}
    before = len(env.first.company.vouchers)
    response = await env.http.post(
        f"{tf.REST_PREFIX}/transactions", json={"lines": []}, headers=bearer
    )
    assert response.status_code in (404, 405)
    assert len(env.first.company.vouchers) == before


async def test_rest_rate_limit_answers_429_with_retry_after(env: Env) -> None:
    bearer = {"Authorization": f"Bearer {await token(env)}"}
    env.sandbox.world.faults.set(FaultPlan(vendor="twentyfour", storm_429=1))
    path = f"{tf.REST_PREFIX}/transactiontypes"
    limited = await env.http.get(path, headers=bearer)
    assert limited.status_code == 429
    assert limited.headers["Retry-After"] == "1"
    assert limited.json()["errors"][0]["type"] == "rateLimit"
    assert (await env.http.get(path, headers=bearer)).status_code == 200


async def test_rest_token_bucket_refuses_floods_per_client() -> None:
    config = SandboxConfig(
        rate_limits={"twentyfour": RateLimitSettings(rate_per_second=0.001, burst=3)}
    )
    world = World(config, monotonic=lambda: 0.0)
    world.add_tenant("twentyfour", tenant_id="1001", company=generate_company(1, lines=0))
    state = tf.state_of(world)
    state.add_rest_client(CLIENT_ID, CLIENT_SECRET, ["1001"])
    async with (
        running_sandbox(world=world, vendors=("twentyfour",)) as sandbox,
        httpx.AsyncClient(base_url=sandbox.base_url) as http,
    ):
        response = await http.post(
            tf.TOKEN_PATH,
            data={
                "grant_type": "client_credentials",
                "client_id": CLIENT_ID,
                "client_secret": CLIENT_SECRET,
                "login_organization": "1001",
                "audience": tf.AUDIENCE,
            },
        )
        bearer = {"Authorization": f"Bearer {response.json()['access_token']}"}
        statuses = [
            (await http.get(f"{tf.REST_PREFIX}/accounts", headers=bearer)).status_code
            for _ in range(4)
        ]
    assert statuses == [200, 200, 200, 429]
