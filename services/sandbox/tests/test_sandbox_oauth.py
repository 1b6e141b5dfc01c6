"""The sandbox OAuth server over real HTTP: it refuses what a strict vendor refuses."""

from __future__ import annotations

import base64
import hashlib
import secrets
from collections.abc import AsyncIterator, Mapping
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from fastapi import FastAPI

from ledgerlink.sandbox.config import SandboxConfig
from ledgerlink.sandbox.oauth import (
    ClientCredentialsGrant,
    OAuthClient,
    OAuthError,
    OAuthServer,
    OAuthTokenExpired,
    OAuthTokenInvalid,
    oauth_router,
)
from ledgerlink.sandbox.testing import RunningSandbox, running_sandbox
from ledgerlink.sandbox.world import World

REDIRECT = "https://app.example.test/callback"
AUTHORIZE = "/idp/authorize"
TOKEN = "/idp/token"
REVOKE = "/idp/revoke"


class FakeClock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


def _validate(
    client: OAuthClient, extra: Mapping[str, str], scopes: frozenset[str]
) -> ClientCredentialsGrant:
    if extra.get("api_key") != "right-key":
        raise OAuthError("invalid_grant", "api_key is not valid for this client")
    return ClientCredentialsGrant(subject="integration-user", tenant="tenant-9")


def _setup(app: FastAPI, world: World) -> None:
    server = world.oauth_server(
        "idp",
        require_pkce=True,
        refresh_requires_offline_access=True,
        client_credentials_validator=_validate,
    )
    server.register_client(OAuthClient("web", "web-secret", REDIRECT))
    server.add_user("anna", "anna-password", tenant="tenant-1")
    server.register_client(OAuthClient("other", "other-secret", REDIRECT))
    app.include_router(
        oauth_router(server, authorize_path=AUTHORIZE, token_path=TOKEN, revocation_path=REVOKE)
    )


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def sandbox(clock: FakeClock) -> AsyncIterator[RunningSandbox]:
    world = World(SandboxConfig(lines_per_company=0), clock=clock)
    async with running_sandbox(world=world, vendors=(), setup=_setup) as running:
        yield running


@pytest.fixture
async def http(sandbox: RunningSandbox) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=sandbox.base_url) as client:
        yield client


def _server(sandbox: RunningSandbox) -> OAuthServer:
    return sandbox.world.oauth_server("idp")


def _pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    digest = hashlib.sha256(verifier.encode()).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def _authorize_params(challenge: str | None, scope: str = "read offline_access") -> dict[str, str]:
    params = {
        "response_type": "code",
        "client_id": "web",
        "redirect_uri": REDIRECT,
        "state": "st-1",
        "scope": scope,
    }
    if challenge:
        params |= {"code_challenge": challenge, "code_challenge_method": "S256"}
    return params


async def _login(
    http: httpx.AsyncClient, challenge: str, scope: str = "read offline_access"
) -> str:
    form = _authorize_params(challenge, scope) | {"username": "anna", "password": "anna-password"}
    response = await http.post(AUTHORIZE, data=form)
    assert response.status_code == 302
    location = urlsplit(response.headers["location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == REDIRECT
    query = parse_qs(location.query)
    assert query["state"] == ["st-1"]
    return query["code"][0]


async def _tokens(http: httpx.AsyncClient, challenge: str, verifier: str) -> dict[str, str]:
    code = await _login(http, challenge)
    response = await http.post(TOKEN, data=_code_form(code, verifier))
    assert response.status_code == 200
    body: dict[str, str] = response.json()
    return body


def _code_form(code: str, verifier: str) -> dict[str, str]:
    return {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": REDIRECT,
        "client_id": "web",
        "client_secret": "web-secret",
        "code_verifier": verifier,
    }


async def test_login_page_is_a_form_and_wrong_redirect_is_not_followed(
    http: httpx.AsyncClient,
) -> None:
    _, challenge = _pkce()
    page = await http.get(AUTHORIZE, params=_authorize_params(challenge))
    assert page.status_code == 200
    assert '<form method="post"' in page.text
    assert 'name="code_challenge"' in page.text
    bad = _authorize_params(challenge) | {"redirect_uri": REDIRECT + "/other"}
    refused = await http.get(AUTHORIZE, params=bad)
    assert refused.status_code == 400
    assert "location" not in refused.headers
    with_query = _authorize_params(challenge) | {"redirect_uri": REDIRECT + "?x=1"}
    assert (await http.get(AUTHORIZE, params=with_query)).status_code == 400


async def test_missing_pkce_is_reported_back_by_redirect(http: httpx.AsyncClient) -> None:
    response = await http.get(AUTHORIZE, params=_authorize_params(None))
    assert response.status_code == 302
    query = parse_qs(urlsplit(response.headers["location"]).query)
    assert query["error"] == ["invalid_request"]
    assert query["state"] == ["st-1"]


async def test_wrong_password_shows_the_form_again(http: httpx.AsyncClient) -> None:
    _, challenge = _pkce()
    form = _authorize_params(challenge) | {"username": "anna", "password": "nope"}
    response = await http.post(AUTHORIZE, data=form)
    assert response.status_code == 401
    assert "Wrong user name or password" in response.text


async def test_code_flow_with_pkce_and_the_token_works(
    http: httpx.AsyncClient, sandbox: RunningSandbox
) -> None:
    verifier, challenge = _pkce()
    code = await _login(http, challenge)
    response = await http.post(TOKEN, data=_code_form(code, verifier))
    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 3600
    assert "refresh_token" in body
    info = _server(sandbox).authenticate(f"Bearer {body['access_token']}")
    assert (info.subject, info.tenant, info.scopes) == (
        "anna",
        "tenant-1",
        frozenset({"read", "offline_access"}),
    )


async def test_wrong_verifier_is_refused(http: httpx.AsyncClient) -> None:
    _, challenge = _pkce()
    code = await _login(http, challenge)
    response = await http.post(TOKEN, data=_code_form(code, "x" * 50))
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_grant"


async def test_code_reuse_is_refused_and_revokes_its_tokens(
    http: httpx.AsyncClient, sandbox: RunningSandbox
) -> None:
    verifier, challenge = _pkce()
    code = await _login(http, challenge)
    first = (await http.post(TOKEN, data=_code_form(code, verifier))).json()
    again = await http.post(TOKEN, data=_code_form(code, verifier))
    assert again.status_code == 400
    assert again.json()["error"] == "invalid_grant"
    with pytest.raises(OAuthTokenInvalid):
        _server(sandbox).authenticate(first["access_token"])


async def test_expired_code_is_refused(http: httpx.AsyncClient, clock: FakeClock) -> None:
    verifier, challenge = _pkce()
    code = await _login(http, challenge)
    clock.now += 61
    response = await http.post(TOKEN, data=_code_form(code, verifier))
    assert response.json()["error"] == "invalid_grant"


async def test_wrong_client_secret_is_invalid_client_401(http: httpx.AsyncClient) -> None:
    verifier, challenge = _pkce()
    code = await _login(http, challenge)
    form = _code_form(code, verifier) | {"client_secret": "wrong"}
    response = await http.post(TOKEN, data=form)
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"


async def test_refresh_rotates_and_the_old_refresh_token_is_refused(
    http: httpx.AsyncClient,
) -> None:
    verifier, challenge = _pkce()
    tokens = await _tokens(http, challenge, verifier)
    refresh = {"grant_type": "refresh_token", "client_id": "web", "client_secret": "web-secret"}
    rotated = await http.post(TOKEN, data=refresh | {"refresh_token": tokens["refresh_token"]})
    assert rotated.status_code == 200
    assert rotated.json()["refresh_token"] != tokens["refresh_token"]
    reused = await http.post(TOKEN, data=refresh | {"refresh_token": tokens["refresh_token"]})
    assert reused.status_code == 400
    assert reused.json()["error"] == "invalid_grant"
    # HTTP Basic client authentication works as well as form fields.
    basic = httpx.BasicAuth("web", "web-secret")
    newest = await http.post(
        TOKEN,
        data={"grant_type": "refresh_token", "refresh_token": rotated.json()["refresh_token"]},
        auth=basic,
    )
    assert newest.status_code == 200


async def test_refresh_token_expires(http: httpx.AsyncClient, clock: FakeClock) -> None:
    verifier, challenge = _pkce()
    tokens = await _tokens(http, challenge, verifier)
    clock.now += 30 * 24 * 3600 + 1
    response = await http.post(
        TOKEN,
        data={
            "grant_type": "refresh_token",
            "refresh_token": tokens["refresh_token"],
            "client_id": "web",
            "client_secret": "web-secret",
        },
    )
    assert response.json()["error"] == "invalid_grant"


async def test_no_refresh_token_without_offline_access(http: httpx.AsyncClient) -> None:
    verifier, challenge = _pkce()
    code = await _login(http, challenge, scope="read")
    body = (await http.post(TOKEN, data=_code_form(code, verifier))).json()
    assert "access_token" in body
    assert "refresh_token" not in body


async def test_access_tokens_expire_by_ttl_and_by_expire_all(
    http: httpx.AsyncClient, sandbox: RunningSandbox, clock: FakeClock
) -> None:
    server = _server(sandbox)
    verifier, challenge = _pkce()
    first = await _tokens(http, challenge, verifier)
    clock.now += 3600
    with pytest.raises(OAuthTokenExpired):
        server.authenticate(first["access_token"])
    verifier, challenge = _pkce()
    second = await _tokens(http, challenge, verifier)
    assert server.authenticate(second["access_token"]).subject == "anna"
    assert (await http.post("/_sandbox/tokens/expire", json={"vendor": "idp"})).status_code == 204
    with pytest.raises(OAuthTokenExpired):
        server.authenticate(second["access_token"])
    with pytest.raises(OAuthTokenInvalid):
        server.authenticate("Bearer not-a-token")


async def test_client_credentials_runs_the_validator(
    http: httpx.AsyncClient, sandbox: RunningSandbox
) -> None:
    form = {"grant_type": "client_credentials", "client_id": "web", "client_secret": "web-secret"}
    refused = await http.post(TOKEN, data=form | {"api_key": "wrong"})
    assert refused.status_code == 400
    assert refused.json() == {
        "error": "invalid_grant",
        "error_description": "api_key is not valid for this client",
    }
    granted = await http.post(TOKEN, data=form | {"api_key": "right-key"})
    body = granted.json()
    assert "refresh_token" not in body
    info = _server(sandbox).authenticate(body["access_token"])
    assert (info.subject, info.tenant) == ("integration-user", "tenant-9")


async def test_token_endpoint_requires_a_form_and_a_known_grant(http: httpx.AsyncClient) -> None:
    as_json = await http.post(TOKEN, json={"grant_type": "client_credentials"})
    assert as_json.json()["error"] == "invalid_request"
    unknown = await http.post(TOKEN, data={"grant_type": "password", "client_id": "web"})
    assert unknown.json()["error"] == "unsupported_grant_type"


def test_registered_redirect_uris_carry_no_query() -> None:
    with pytest.raises(ValueError, match="query"):
        OAuthServer("x").register_client(OAuthClient("c", "s", REDIRECT + "?a=1"))


async def test_revocation_kills_the_refresh_token_and_is_counted(http: httpx.AsyncClient) -> None:
    verifier, challenge = _pkce()
    tokens = await _tokens(http, challenge, verifier)
    client = {"client_id": "web", "client_secret": "web-secret"}
    # Another client cannot revoke it; an unknown token is not an error (RFC 7009 2.2).
    other = {"client_id": "other", "client_secret": "other-secret"}
    assert (
        await http.post(REVOKE, data=other | {"token": tokens["refresh_token"]})
    ).status_code == 200
    assert (await http.post(REVOKE, data=client | {"token": "unknown"})).status_code == 200
    missing = await http.post(REVOKE, data=client)
    assert missing.status_code == 400
    assert missing.json()["error"] == "invalid_request"
    wrong_secret = await http.post(
        REVOKE, data={"client_id": "web", "client_secret": "nope", "token": "x"}
    )
    assert wrong_secret.status_code == 401
    revoked = await http.post(REVOKE, data=client | {"token": tokens["refresh_token"]})
    assert revoked.status_code == 200
    refresh = client | {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]}
    refused = await http.post(TOKEN, data=refresh)
    assert refused.status_code == 400
    assert refused.json()["error"] == "invalid_grant"
    counts = (await http.get("/_sandbox/oauth/idp/grants")).json()
    assert counts == {
        "grants": {"authorization_code": 1},
        "errors": {"invalid_grant": 1},
        "revocations": 1,
    }
    assert (await http.get("/_sandbox/oauth/nobody/grants")).status_code == 404
