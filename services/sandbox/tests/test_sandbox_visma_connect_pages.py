"""Visma Connect as the connection pages meet it: the "Allow" step after the password, a
live login session that skips the password unless ``prompt=login``/``max_age=0`` asks for a
fresh one, grants narrowed to what a read-only user may do, and the ERP API's list of the
companies a token reaches (``GET /resources/v1/context``)."""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from ledgerlink.sandbox.config import SandboxConfig
from ledgerlink.sandbox.testing import running_sandbox
from ledgerlink.sandbox.vendors import vismanet as vn
from ledgerlink.sandbox.world import Tenant, World

CLIENT_ID, CLIENT_SECRET = "isv_pages", "pages-secret"
REDIRECT_URI = "http://127.0.0.1:9/connect/visma_net/callback"
WRITER, READER, PASSWORD = "writer@demo.nl", "reader@demo.nl", "pw"
SCOPE = (
    "openid offline_access vismanet_erp_interactive_api:read "
    "vismanet_erp_interactive_api:create vismanet_erp_interactive_api:update"
)


@dataclass
class Env:
    http: httpx.AsyncClient
    world: World
    tenants: list[Tenant]


@pytest.fixture
async def env() -> AsyncIterator[Env]:
    world = World(SandboxConfig(lines_per_company=5, demo_tenants=False))
    tenants = [world.add_tenant("vismanet", lines=5) for _ in range(3)]
    vn.register_client(
        world,
        CLIENT_ID,
        CLIENT_SECRET,
        kind="interactive",
        redirect_uri=REDIRECT_URI,
        consent_page=True,
    )
    vn.add_user(world, WRITER, PASSWORD, tenants[0], extra_companies=[vn.company_id(tenants[2])])
    vn.add_user(world, READER, PASSWORD, tenants[1], write_rights=False)
    async with (
        running_sandbox(world=world) as sandbox,
        httpx.AsyncClient(base_url=sandbox.base_url) as http,
    ):
        yield Env(http, world, tenants)


def _pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    digest = hashlib.sha256(verifier.encode()).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def _params(challenge: str, **extra: str) -> dict[str, str]:
    return {
        "response_type": "code",
        "client_id": CLIENT_ID,
        "redirect_uri": REDIRECT_URI,
        "scope": SCOPE,
        "state": "s1",
        "code_challenge": challenge,
        "code_challenge_method": "S256",
        **extra,
    }


def _consent_handle(page: str) -> str:
    found = re.search(r'name="consent" value="([^"]+)"', page)
    assert found is not None, page
    return found.group(1)


async def _log_in_and_allow(env: Env, username: str, **extra: str) -> tuple[dict[str, Any], str]:
    """Password, then "Allow"; the token answer and the verifier."""
    verifier, challenge = _pkce()
    params = _params(challenge, **extra)
    consent = await env.http.post(
        vn.AUTHORIZE_PATH, data={**params, "username": username, "password": PASSWORD}
    )
    assert consent.status_code == 200
    assert "Allow" in consent.text
    redirect = await env.http.post(
        vn.AUTHORIZE_PATH,
        data={**params, "consent": _consent_handle(consent.text), "decision": "allow"},
    )
    assert redirect.status_code == 302
    code = parse_qs(urlsplit(redirect.headers["location"]).query)["code"][0]
    tokens = await env.http.post(
        vn.TOKEN_PATH,
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": REDIRECT_URI,
            "code_verifier": verifier,
            "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET,
        },
    )
    assert tokens.status_code == 200, tokens.text
    body: dict[str, Any] = tokens.json()
    return body, verifier


async def test_allow_comes_after_the_password_and_deny_goes_back_with_access_denied(
    env: Env,
) -> None:
    tokens, _ = await _log_in_and_allow(env, WRITER)
    assert "vismanet_erp_interactive_api:create" in tokens["scope"]
    _, challenge = _pkce()
    params = _params(challenge)
    consent = await env.http.post(
        vn.AUTHORIZE_PATH, data={**params, "username": WRITER, "password": PASSWORD}
    )
    denied = await env.http.post(
        vn.AUTHORIZE_PATH,
        data={**params, "consent": _consent_handle(consent.text), "decision": "deny"},
    )
    assert denied.status_code == 302
    assert parse_qs(urlsplit(denied.headers["location"]).query)["error"] == ["access_denied"]
    reused = await env.http.post(
        vn.AUTHORIZE_PATH,
        data={**params, "consent": _consent_handle(consent.text), "decision": "allow"},
    )
    assert reused.status_code == 400  # a consent handle is single use


async def test_a_live_session_skips_the_password_unless_a_fresh_login_is_asked(
    env: Env,
) -> None:
    await _log_in_and_allow(env, WRITER)  # leaves the login page's session cookie
    server = vn.oauth_server(env.world)
    assert server.page_logins == 1
    _, challenge = _pkce()
    remembered = await env.http.get(vn.AUTHORIZE_PATH, params=_params(challenge))
    assert "Allow" in remembered.text
    assert 'name="password"' not in remembered.text
    for fresh in ({"prompt": "login"}, {"max_age": "0"}):
        page = await env.http.get(vn.AUTHORIZE_PATH, params=_params(challenge, **fresh))
        assert 'name="password"' in page.text, fresh


async def test_a_read_only_user_gets_a_grant_without_write_scopes(env: Env) -> None:
    tokens, _ = await _log_in_and_allow(env, READER)
    granted = set(tokens["scope"].split())
    assert "vismanet_erp_interactive_api:read" in granted
    assert not {"vismanet_erp_interactive_api:create", "vismanet_erp_interactive_api:update"} & (
        granted
    )


async def test_the_context_list_names_the_companies_a_token_reaches(env: Env) -> None:
    tokens, _ = await _log_in_and_allow(env, WRITER)
    answer = await env.http.get(
        "/vismanet/resources/v1/context",
        headers={"Authorization": f"Bearer {tokens['access_token']}"},
    )
    assert answer.status_code == 200
    reached = {(item["id"], item["name"], item["type"]) for item in answer.json()}
    assert reached == {
        (int(vn.company_id(t)), t.company.name, "Company") for t in (env.tenants[0], env.tenants[2])
    }
    refused = await env.http.get(
        "/vismanet/resources/v1/context", headers={"Authorization": "Bearer nope"}
    )
    assert refused.status_code == 401
