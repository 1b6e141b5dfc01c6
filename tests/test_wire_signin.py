"""Over the wire: auth as a process on PostgreSQL, the sandbox's Google and Microsoft
stand-ins as a process, a person signing in with httpx following the login form."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from signin_helpers import SigninRun, hidden_field, with_query
from sqlalchemy import func, select
from sqlmodel import col

from ledgerlink.auth.storage.models import BrowserSession, User
from ledgerlink.cli.stack import Stack
from ledgerlink.shared.db import Database, create_engine

pytestmark = pytest.mark.wire


@pytest.fixture
async def auth_store(stack: Stack) -> AsyncIterator[Database]:
    database = Database(create_engine(stack.config.database_urls["auth"]))
    yield database
    await database.dispose()


async def _session_rows(store: Database) -> int:
    async with store.transaction() as session:
        return int(
            (await session.execute(select(func.count()).select_from(BrowserSession))).scalar_one()
        )


async def test_sign_in_with_each_provider_then_me_then_sign_out(
    stack: Stack, auth_store: Database
) -> None:
    await stack.up(("auth", "sandbox"))
    auth = stack.services["auth"].url
    for provider, username, email in (
        ("google", "anna", "anna@virtanen-demo.fi"),
        ("microsoft", "maja", "maja@fabrikam-demo.se"),
    ):
        async with httpx.AsyncClient(timeout=15) as client:
            response = await SigninRun(client, auth, provider).sign_in(username, next_url="/me")
            assert response.status_code == 303, response.text
            assert response.headers["location"] == "/me"
            me = await client.get(f"{auth}/me")
            assert me.status_code == 200, me.text
            assert me.json()["user"]["email"] == email
            assert me.json()["user"]["provider"] == provider
            assert await _session_rows(auth_store) == 1

            page = await client.get(f"{auth}/signin")
            signed_out = await client.post(
                f"{auth}/signout", data={"csrf_token": hidden_field(page.text, "csrf_token")}
            )
            assert signed_out.status_code == 200
            assert (await client.get(f"{auth}/me")).status_code == 401
            assert await _session_rows(auth_store) == 0
    async with auth_store.transaction() as session:
        users = (await session.execute(select(col(User.provider), col(User.email)))).all()
    assert sorted(users) == [
        ("google", "anna@virtanen-demo.fi"),
        ("microsoft", "maja@fabrikam-demo.se"),
    ]


async def test_each_forgery_is_refused_with_a_clear_page_and_no_session(
    stack: Stack, auth_store: Database
) -> None:
    await stack.up(("auth", "sandbox"))
    auth = stack.services["auth"].url
    sandbox = stack.services["sandbox"].url

    async def refused(response: httpx.Response, status: int, heading: str) -> None:
        assert response.status_code == status, response.text
        assert f'id="problem-title">{heading}</h1>' in response.text
        assert "ledgerlink_session" not in response.cookies
        assert await _session_rows(auth_store) == 0

    async def with_fault(provider: str, **fault: object) -> httpx.Response:
        async with httpx.AsyncClient(timeout=15) as client:
            set_fault = await client.post(f"{sandbox}/_sandbox/oidc/{provider}/faults", json=fault)
            assert set_fault.status_code == 200, set_fault.text
            try:
                return await SigninRun(client, auth, provider).sign_in(
                    "anna" if provider == "google" else "erik"
                )
            finally:
                await client.delete(f"{sandbox}/_sandbox/oidc/{provider}/faults")

    # A forged state: the callback does not belong to the attempt this browser started.
    async with httpx.AsyncClient(timeout=15) as client:
        run = SigninRun(client, auth, "google")
        callback = await run.login(await run.start(), "anna")
        await refused(
            await run.finish(with_query(callback, state="forged")),
            400,
            "This sign-in did not start in this browser",
        )

    # A replayed code: a new attempt answered with a code the provider already redeemed.
    async with httpx.AsyncClient(timeout=15) as client:
        run = SigninRun(client, auth, "microsoft")
        first = await run.login(await run.start(), "erik")
        assert (await run.finish(first)).status_code == 303
        page = await client.get(f"{auth}/signin")
        await client.post(
            f"{auth}/signout", data={"csrf_token": hidden_field(page.text, "csrf_token")}
        )
        assert await _session_rows(auth_store) == 0
        second = await run.login(await run.start(), "erik")
        replay = with_query(first, state=httpx.URL(second).params["state"])
        await refused(await run.finish(replay), 400, "The sign-in code was not accepted")

    await refused(
        await with_fault("google", wrong_nonce=True),
        401,
        "The sign-in answer does not belong to this sign-in",
    )
    # The provider's clock two hours behind: its one-hour ID token arrives expired.
    await refused(
        await with_fault("google", clock_offset_seconds=-7200),
        401,
        "The sign-in had already expired",
    )
    await refused(
        await with_fault("microsoft", unknown_key=True), 401, "The sign-in could not be verified"
    )

    async with httpx.AsyncClient(timeout=15) as client:
        response = await SigninRun(client, auth, "google").sign_in("unverified")
        await refused(response, 401, "Your e-mail address is not verified")
    async with auth_store.transaction() as session:
        assert (await session.execute(select(func.count()).select_from(User))).scalar_one() == 1
