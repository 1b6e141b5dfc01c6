"""Sign-in end to end in one process: auth's routes (in-process, on SQLite and PostgreSQL)
against the sandbox's Google and Microsoft stand-ins over real HTTP, on one fake clock.

Fast tier (no Kafka, no processes); the same refusals over the wire are in
``test_wire_signin.py``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from signin_helpers import SigninRun, hidden_field, with_query
from sqlmodel import select

from ledgerlink.auth.config import Config, OidcProviderSettings, SigninSettings
from ledgerlink.auth.handlers.web import register_web_routes, require_recent_signin
from ledgerlink.auth.main import MIGRATIONS, build_web_context
from ledgerlink.auth.storage.models import BrowserSession, User, metadata
from ledgerlink.sandbox.config import SandboxConfig
from ledgerlink.sandbox.oidc import MICROSOFT_TENANTS, OidcFaults, identity_providers
from ledgerlink.sandbox.testing import RunningSandbox, running_sandbox
from ledgerlink.sandbox.world import World
from ledgerlink.shared.db import Database
from ledgerlink.shared.pytest_plugin import define_store_fixtures

database_url, db = define_store_fixtures(MIGRATIONS, metadata, "signin-test")

AUTH = "http://auth"
CONTOSO = next(iter(MICROSOFT_TENANTS))


class FakeClock:
    """One time for auth and the IdPs; tests move it, never sleep."""

    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now

    def utc(self) -> datetime:
        return datetime.fromtimestamp(self.now, UTC)


@dataclass
class Setup:
    client: httpx.AsyncClient
    sandbox: RunningSandbox
    clock: FakeClock
    db: Database

    def run(self, provider: str = "google") -> SigninRun:
        return SigninRun(self.client, AUTH, provider)

    async def rows(self, model: Any) -> list[Any]:
        async with self.db.transaction() as session:
            return list((await session.execute(select(model))).scalars().all())

    async def me(self) -> httpx.Response:
        return await self.client.get(f"{AUTH}/me")


@pytest.fixture
async def setup(db: Database) -> AsyncIterator[Setup]:
    clock = FakeClock()
    world = World(
        SandboxConfig(
            lines_per_company=0,
            oidc_redirect_uris=[
                f"{AUTH}/signin/google/callback",
                f"{AUTH}/signin/microsoft/callback",
            ],
        ),
        clock=clock,
    )
    async with running_sandbox(world=world, vendors=()) as sandbox:
        config = Config(
            signin=SigninSettings(
                google=OidcProviderSettings(
                    discovery_url=sandbox.url("/google/.well-known/openid-configuration")
                ),
                microsoft=OidcProviderSettings(
                    discovery_url=sandbox.url(
                        "/microsoft/organizations/v2.0/.well-known/openid-configuration"
                    )
                ),
            )
        )
        context = build_web_context(config, db, clock=clock.utc)
        app = FastAPI()
        register_web_routes(app, context)

        @app.get("/test/step-up")
        async def step_up(request: Request) -> Response:
            outcome = await require_recent_signin(context, request, max_age=300)
            if isinstance(outcome, Response):
                return outcome
            return JSONResponse({"fresh_since": outcome.authenticated_at.isoformat()})

        mounts = {"http://auth": httpx.ASGITransport(app=app)}
        async with httpx.AsyncClient(mounts=mounts, timeout=10) as client:
            yield Setup(client, sandbox, clock, db)


async def test_sign_in_with_google_then_me(setup: Setup) -> None:
    response = await setup.run("google").sign_in("anna", next_url="/me")

    assert response.status_code == 303
    assert response.headers["location"] == "/me"
    cookie = response.cookies["ledgerlink_session"]
    set_cookie = response.headers["set-cookie"].lower()
    assert "httponly" in set_cookie
    assert "samesite=lax" in set_cookie
    assert "secure" not in set_cookie  # development: plain http on loopback
    me = await setup.me()
    assert me.status_code == 200
    assert me.json()["user"] == {
        "id": me.json()["user"]["id"],
        "provider": "google",
        "email": "anna@virtanen-demo.fi",
        "name": "Anna Virtanen",
        "organisation": "virtanen-demo.fi",
    }
    [record] = await setup.rows(BrowserSession)
    token = cookie.split(".")[0]
    assert record.token_hash != token
    assert token not in record.token_hash
    assert len(record.token_hash) == 64


async def test_sign_in_with_microsoft_checks_the_tenant_issuer(setup: Setup) -> None:
    response = await setup.run("microsoft").sign_in("erik")

    assert response.status_code == 303, response.text
    assert response.headers["location"] == "/signin"
    me = (await setup.me()).json()
    assert me["user"]["email"] == "erik@contoso-demo.fi"
    assert me["user"]["organisation"] == CONTOSO
    [user] = await setup.rows(User)
    assert (user.provider, user.email) == ("microsoft", "erik@contoso-demo.fi")


async def _refused(setup: Setup, response: httpx.Response, status: int, heading: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("text/html")
    assert f'id="problem-title">{heading}</h1>' in response.text
    assert "ledgerlink_session" not in response.cookies
    assert await setup.rows(BrowserSession) == []
    assert (await setup.me()).status_code == 401


async def test_a_forged_state_is_refused(setup: Setup) -> None:
    run = setup.run()
    callback = await run.login(await run.start(), "anna")
    response = await run.finish(with_query(callback, state="forged-state"))
    await _refused(setup, response, 400, "This sign-in did not start in this browser")


async def test_a_callback_without_the_attempt_cookie_is_refused(setup: Setup) -> None:
    run = setup.run()
    callback = await run.login(await run.start(), "anna")
    setup.client.cookies.delete("ledgerlink_signin")
    response = await run.finish(callback)
    await _refused(setup, response, 400, "This sign-in did not start in this browser")


async def test_a_replayed_code_is_refused(setup: Setup) -> None:
    run = setup.run()
    first = await run.login(await run.start(), "anna")
    assert (await run.finish(first)).status_code == 303
    await setup.client.post(
        f"{AUTH}/signout",
        data={
            "csrf_token": hidden_field(
                (await setup.client.get(f"{AUTH}/signin")).text, "csrf_token"
            )
        },
    )
    # A new attempt (its own state), answered with the first attempt's spent code.
    second = await run.login(await run.start(), "anna")
    state = httpx.URL(second).params["state"]
    replay = with_query(first, state=state)
    await _refused(setup, await run.finish(replay), 400, "The sign-in code was not accepted")


async def test_a_wrong_nonce_is_refused(setup: Setup) -> None:
    identity_providers(setup.sandbox.world)["google"].faults = OidcFaults(wrong_nonce=True)
    response = await setup.run().sign_in("anna")
    await _refused(setup, response, 401, "The sign-in answer does not belong to this sign-in")


async def test_an_expired_id_token_is_refused(setup: Setup) -> None:
    # The IdP's clock runs two hours behind: its one-hour tokens arrive expired.
    faults = OidcFaults(clock_offset_seconds=-7200)
    identity_providers(setup.sandbox.world)["google"].faults = faults
    response = await setup.run().sign_in("anna")
    await _refused(setup, response, 401, "The sign-in had already expired")


async def test_a_token_signed_by_an_unknown_key_is_refused(setup: Setup) -> None:
    identity_providers(setup.sandbox.world)["microsoft"].faults = OidcFaults(unknown_key=True)
    response = await setup.run("microsoft").sign_in("erik")
    await _refused(setup, response, 401, "The sign-in could not be verified")


@pytest.mark.parametrize(
    ("provider", "username"), [("google", "unverified"), ("microsoft", "unverified")]
)
async def test_an_unverified_email_is_refused(setup: Setup, provider: str, username: str) -> None:
    response = await setup.run(provider).sign_in(username)
    await _refused(setup, response, 401, "Your e-mail address is not verified")


async def test_a_rotated_key_is_fetched_again(setup: Setup) -> None:
    run = setup.run()
    assert (await run.sign_in("anna")).status_code == 303
    identity_providers(setup.sandbox.world)["google"].rotate_keys()
    response = await run.sign_in("anna")
    assert response.status_code == 303, response.text
    assert len(await setup.rows(BrowserSession)) == 1  # the second sign-in replaced the first


async def test_sign_out_needs_the_csrf_token_and_ends_the_session(setup: Setup) -> None:
    await setup.run().sign_in("anna")
    page = await setup.client.get(f"{AUTH}/signin")
    assert "You are signed in" in page.text
    token = hidden_field(page.text, "csrf_token")

    forged = await setup.client.post(f"{AUTH}/signout", data={"csrf_token": "guess"})
    assert forged.status_code == 400
    assert (await setup.me()).status_code == 200

    done = await setup.client.post(f"{AUTH}/signout", data={"csrf_token": token})
    assert done.status_code == 200
    assert '<h1 class="heading-l">You have signed out</h1>' in done.text
    assert await setup.rows(BrowserSession) == []
    assert (await setup.me()).status_code == 401


async def test_an_idle_session_ends(setup: Setup) -> None:
    await setup.run().sign_in("anna")
    setup.clock.now += 29 * 60
    assert (await setup.me()).status_code == 200
    setup.clock.now += 29 * 60  # last seen 29 minutes ago: still alive
    assert (await setup.me()).status_code == 200
    setup.clock.now += 30 * 60
    assert (await setup.me()).status_code == 401
    assert await setup.rows(BrowserSession) == []


async def test_step_up_sends_the_person_through_prompt_login(setup: Setup) -> None:
    await setup.run().sign_in("anna")
    assert (await setup.client.get(f"{AUTH}/test/step-up")).status_code == 200

    setup.clock.now += 301
    demand = await setup.client.get(f"{AUTH}/test/step-up")
    assert demand.status_code == 303
    assert demand.headers["location"] == "/signin/google?next=%2Ftest%2Fstep-up&max_age=300"
    start = await setup.client.get(f"{AUTH}{demand.headers['location']}")
    authorize = start.headers["location"]
    assert "prompt=login" in authorize
    assert "max_age=300" in authorize
    # The IdP still has a session, yet prompt=login shows its login page again.
    page = await setup.client.get(authorize)
    assert page.status_code == 200
    callback = await setup.run().login(authorize, "anna")
    back = await setup.client.get(callback)
    assert back.headers["location"] == "/test/step-up"
    fresh = await setup.client.get(f"{AUTH}/test/step-up")
    assert fresh.json() == {"fresh_since": setup.clock.utc().isoformat()}


@pytest.mark.parametrize(
    "next_url",
    ["https://evil.example/", "//evil.example/x", "/\\evil.example", "javascript:alert(1)"],
)
async def test_next_must_be_a_path_on_auth(setup: Setup, next_url: str) -> None:
    for path in ("/signin", "/signin/google"):
        response = await setup.client.get(f"{AUTH}{path}", params={"next": next_url})
        assert response.status_code == 400
        assert "The return address is not allowed" in response.text
        assert "location" not in response.headers
