"""OAuthSession (authlib) against the sandbox OAuth server over real HTTP."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Mapping
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import SecretStr

from ledgerlink.connectors.errors import AuthenticationFailed, ReauthorizationRequired
from ledgerlink.connectors.http import VendorHttpClient
from ledgerlink.connectors.oauth import (
    EncryptedTokenStore,
    MemoryTokenStore,
    OAuthClientSettings,
    OAuthSession,
    TokenSet,
)
from ledgerlink.sandbox.config import SandboxConfig
from ledgerlink.sandbox.oauth import (
    ClientCredentialsGrant,
    OAuthClient,
    OAuthError,
    OAuthServer,
    OAuthTokenInvalid,
    oauth_router,
)
from ledgerlink.sandbox.testing import RunningSandbox, running_sandbox
from ledgerlink.sandbox.world import World
from ledgerlink.shared.secrets import SecretBox

REDIRECT = "https://app.example.test/oauth/callback"
CLIENT_SECRET = "client-secret-value"
API_KEY = "api-key-value"


class FakeClock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


def _validate(
    client: OAuthClient, extra: Mapping[str, str], scopes: frozenset[str]
) -> ClientCredentialsGrant:
    if extra.get("api_key") != API_KEY:
        raise OAuthError("invalid_grant", "api_key not valid")
    return ClientCredentialsGrant(subject="m2m", tenant="company-1")


def _setup(app: FastAPI, world: World) -> None:
    server = world.oauth_server("idp", require_pkce=True, client_credentials_validator=_validate)
    server.register_client(OAuthClient("ledgerlink", CLIENT_SECRET, REDIRECT))
    server.add_user("anna", "anna-password", tenant="company-1")
    app.include_router(
        oauth_router(server, authorize_path="/idp/login", token_path="/idp/oauth/token")
    )

    @app.get("/rs/me")
    async def me(request: Request) -> JSONResponse:
        try:
            info = server.authenticate(request.headers.get("authorization"))
        except OAuthTokenInvalid:
            return JSONResponse({"error": "invalid_token"}, status_code=401)
        return JSONResponse({"subject": info.subject, "tenant": info.tenant})

    @app.get("/rs/always-401")
    async def always_401() -> JSONResponse:
        return JSONResponse({"error": "invalid_token"}, status_code=401)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def sandbox(clock: FakeClock) -> AsyncIterator[RunningSandbox]:
    world = World(SandboxConfig(lines_per_company=0), clock=clock)
    async with running_sandbox(world=world, vendors=(), setup=_setup) as running:
        yield running


def _server(sandbox: RunningSandbox) -> OAuthServer:
    return sandbox.world.oauth_server("idp")


def _settings(sandbox: RunningSandbox) -> OAuthClientSettings:
    return OAuthClientSettings(
        client_id="ledgerlink",
        client_secret=SecretStr(CLIENT_SECRET),
        authorize_url=sandbox.url("/idp/login"),
        token_url=sandbox.url("/idp/oauth/token"),
        redirect_uri=REDIRECT,
        scopes=("read",),
        use_pkce=True,
    )


@pytest.fixture
async def session(sandbox: RunningSandbox) -> AsyncIterator[OAuthSession]:
    async with OAuthSession("idp", _settings(sandbox)) as session:
        yield session


async def _log_in(sandbox: RunningSandbox, session: OAuthSession) -> tuple[str, str | None]:
    """The person's part: open the login URL, submit the form, follow to the callback."""
    url, verifier = session.authorization_url("state-42")
    async with httpx.AsyncClient() as browser:
        page = await browser.get(url)
        assert page.status_code == 200
        params = {key: values[0] for key, values in parse_qs(urlsplit(url).query).items()}
        answer = await browser.post(
            sandbox.url("/idp/login"),
            data=params | {"username": "anna", "password": "anna-password"},
        )
    assert answer.status_code == 302
    callback = parse_qs(urlsplit(answer.headers["location"]).query)
    assert callback["state"] == ["state-42"]
    return callback["code"][0], verifier


async def _authorised(sandbox: RunningSandbox, session: OAuthSession) -> TokenSet:
    code, verifier = await _log_in(sandbox, session)
    return await session.exchange_code(code, verifier)


async def test_code_flow_with_pkce_gives_working_tokens(
    sandbox: RunningSandbox, session: OAuthSession
) -> None:
    url, verifier = session.authorization_url("s")
    query = parse_qs(urlsplit(url).query)
    assert query["code_challenge_method"] == ["S256"]
    assert verifier is not None
    assert verifier not in url
    tokens = await _authorised(sandbox, session)
    assert tokens.refresh_token is not None
    async with VendorHttpClient("idp", sandbox.base_url, auth=session.auth()) as api:
        assert (await api.get("/rs/me")).json() == {"subject": "anna", "tenant": "company-1"}


async def test_wrong_verifier_is_refused(sandbox: RunningSandbox, session: OAuthSession) -> None:
    code, _ = await _log_in(sandbox, session)
    with pytest.raises(ReauthorizationRequired) as refused:
        await session.exchange_code(code, "w" * 60)
    assert refused.value.vendor_code == "invalid_grant"


async def test_code_reuse_is_refused(sandbox: RunningSandbox, session: OAuthSession) -> None:
    code, verifier = await _log_in(sandbox, session)
    await session.exchange_code(code, verifier)
    with pytest.raises(ReauthorizationRequired):
        await session.exchange_code(code, verifier)


async def test_refresh_rotates_and_the_old_refresh_token_is_refused(
    sandbox: RunningSandbox, session: OAuthSession
) -> None:
    first = await _authorised(sandbox, session)
    second = await session.refresh()
    assert first.refresh_token is not None
    assert second.refresh_token is not None
    assert second.refresh_token.get_secret_value() != first.refresh_token.get_secret_value()
    async with httpx.AsyncClient() as raw:
        reused = await raw.post(
            sandbox.url("/idp/oauth/token"),
            data={
                "grant_type": "refresh_token",
                "refresh_token": first.refresh_token.get_secret_value(),
                "client_id": "ledgerlink",
                "client_secret": CLIENT_SECRET,
            },
        )
    assert reused.json()["error"] == "invalid_grant"
    third = await session.refresh()  # the kept, rotated token still works
    assert third.access_token.get_secret_value() != second.access_token.get_secret_value()


async def test_refresh_expiry_requires_reauthorization(
    sandbox: RunningSandbox, session: OAuthSession, clock: FakeClock
) -> None:
    await _authorised(sandbox, session)
    clock.now += 30 * 24 * 3600 + 1
    with pytest.raises(ReauthorizationRequired):
        await session.refresh()
    assert await session.store.load(session.store_key) is None


async def test_concurrent_401s_refresh_once(sandbox: RunningSandbox, session: OAuthSession) -> None:
    await _authorised(sandbox, session)
    async with VendorHttpClient("idp", sandbox.base_url, auth=session.auth()) as api:
        assert (await api.get("/rs/me")).status_code == 200
        sandbox.world.faults.expire_tokens("idp")
        answers = await asyncio.gather(*(api.get("/rs/me") for _ in range(6)))
    assert [a.status_code for a in answers] == [200] * 6
    assert _server(sandbox).grant_counts["refresh_token"] == 1
    assert session.refresh_count == 1


async def test_a_second_401_requires_reauthorization(
    sandbox: RunningSandbox, session: OAuthSession
) -> None:
    await _authorised(sandbox, session)
    async with VendorHttpClient("idp", sandbox.base_url, auth=session.auth()) as api:
        with pytest.raises(ReauthorizationRequired):
            await api.get("/rs/always-401")
    assert session.refresh_count == 1


async def test_client_credentials_with_vendor_extras(
    sandbox: RunningSandbox, session: OAuthSession, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    with pytest.raises(AuthenticationFailed) as refused:
        await session.client_credentials(api_key="wrong-key-value")
    assert not isinstance(refused.value, ReauthorizationRequired)
    tokens = await session.client_credentials(api_key=API_KEY)
    assert tokens.refresh_token is None
    async with VendorHttpClient("idp", sandbox.base_url, auth=session.auth()) as api:
        assert (await api.get("/rs/me")).json() == {"subject": "m2m", "tenant": "company-1"}
        sandbox.world.faults.expire_tokens("idp")
        # No refresh token: a 401 fetches a new client-credentials token instead.
        assert (await api.get("/rs/me")).status_code == 200
    assert _server(sandbox).grant_counts["client_credentials"] == 2
    text = f"{refused.value} {refused.value!r} {caplog.text}"
    for secret in (
        CLIENT_SECRET,
        API_KEY,
        "wrong-key-value",
        tokens.access_token.get_secret_value(),
    ):
        assert secret not in text


async def test_tokens_are_stored_encrypted_and_reused_by_a_new_session(
    sandbox: RunningSandbox,
) -> None:
    backend: dict[str, str] = {}
    store = EncryptedTokenStore(SecretBox(SecretStr("a-long-test-key-for-the-box")), backend)
    async with OAuthSession("idp", _settings(sandbox), store=store, store_key="conn-1") as first:
        tokens = await _authorised(sandbox, first)
    assert tokens.refresh_token is not None
    stored = backend["conn-1"]
    assert tokens.access_token.get_secret_value() not in stored
    assert tokens.refresh_token.get_secret_value() not in stored
    second = OAuthSession("idp", _settings(sandbox), store=store, store_key="conn-1")
    async with second, VendorHttpClient("idp", sandbox.base_url, auth=second.auth()) as api:
        assert (await api.get("/rs/me")).status_code == 200


async def test_no_tokens_yet_means_reauthorization(sandbox: RunningSandbox) -> None:
    session = OAuthSession("idp", _settings(sandbox), store=MemoryTokenStore())
    async with session, VendorHttpClient("idp", sandbox.base_url, auth=session.auth()) as api:
        with pytest.raises(ReauthorizationRequired):
            await api.get("/rs/me")


def test_token_set_hides_secrets_in_repr_and_knows_its_expiry() -> None:
    tokens = TokenSet(
        access_token=SecretStr("acc-secret"),
        refresh_token=SecretStr("ref-secret"),
        expires_at=1000.0,
    )
    assert "acc-secret" not in repr(tokens)
    assert "ref-secret" not in str(tokens)
    assert tokens.expires_within(60, now=950)
    assert not tokens.expires_within(60, now=900)
