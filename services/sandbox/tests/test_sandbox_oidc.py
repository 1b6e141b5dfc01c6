"""The sandbox's Google and Microsoft stand-ins: discovery, login page, code + PKCE, RS256."""

from __future__ import annotations

import base64
import hashlib
import secrets
from collections.abc import AsyncIterator
from html.parser import HTMLParser
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest
from joserfc import jwt
from joserfc.errors import BadSignatureError, InvalidKeyIdError
from joserfc.jwk import KeySet

from ledgerlink.sandbox.config import SandboxConfig
from ledgerlink.sandbox.oidc import MICROSOFT_TENANTS, identity_providers
from ledgerlink.sandbox.testing import RunningSandbox, running_sandbox
from ledgerlink.sandbox.world import World

REDIRECT = "http://127.0.0.1:8081/signin/google/callback"
CLIENT = "ledgerlink-auth-dev"
SECRET = "sandbox-oidc-client-secret"
CONTOSO = next(iter(MICROSOFT_TENANTS))


class FakeClock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


class _Form(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.action = ""
        self.fields: dict[str, str] = {}
        self.usernames: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {key: value or "" for key, value in attrs}
        if tag == "form":
            self.action = values["action"]
        elif tag == "input" and values.get("type") == "hidden":
            self.fields[values["name"]] = values["value"]
        elif tag == "input" and values.get("name") == "username":
            self.usernames.append(values["value"])


def _parse(page: str) -> _Form:
    form = _Form()
    form.feed(page)
    return form


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def sandbox(clock: FakeClock) -> AsyncIterator[RunningSandbox]:
    world = World(SandboxConfig(lines_per_company=0, oidc_key_retention_seconds=600), clock=clock)
    async with running_sandbox(world=world, vendors=()) as running:
        yield running


@pytest.fixture
async def http(sandbox: RunningSandbox) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=sandbox.base_url) as client:
        yield client


def _pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    digest = hashlib.sha256(verifier.encode()).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


async def _authorize(
    http: httpx.AsyncClient,
    path: str,
    *,
    username: str = "anna",
    challenge: str,
    redirect_uri: str = REDIRECT,
    **extra: str,
) -> httpx.Response:
    params = {
        "response_type": "code",
        "client_id": CLIENT,
        "redirect_uri": redirect_uri,
        "scope": "openid email profile",
        "state": "st-1",
        "nonce": "n-1",
        "code_challenge": challenge,
        "code_challenge_method": "S256",
        **extra,
    }
    page = await http.get(f"{path}?{urlencode(params)}")
    if page.status_code != 200:
        return page
    form = _parse(page.text)
    assert username in form.usernames
    return await http.post(form.action, data={**form.fields, "username": username})


def _code(response: httpx.Response) -> str:
    assert response.status_code == 302, response.text
    query = parse_qs(urlsplit(response.headers["location"]).query)
    assert query["state"] == ["st-1"]
    return query["code"][0]


async def _token(
    http: httpx.AsyncClient, path: str, code: str, verifier: str, secret: str = SECRET
) -> httpx.Response:
    return await http.post(
        path,
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": REDIRECT,
            "code_verifier": verifier,
        },
        auth=(CLIENT, secret),
    )


async def test_google_discovery_names_its_own_base_url(
    http: httpx.AsyncClient, sandbox: RunningSandbox
) -> None:
    document = (await http.get("/google/.well-known/openid-configuration")).json()
    assert document["issuer"] == f"{sandbox.base_url}/google"
    assert document["jwks_uri"] == f"{sandbox.base_url}/google/oauth2/v3/certs"
    assert document["id_token_signing_alg_values_supported"] == ["RS256"]
    assert document["code_challenge_methods_supported"] == ["S256"]


async def test_microsoft_multi_tenant_discovery_has_the_tenant_template(
    http: httpx.AsyncClient, sandbox: RunningSandbox
) -> None:
    common = (await http.get("/microsoft/common/v2.0/.well-known/openid-configuration")).json()
    assert common["issuer"] == f"{sandbox.base_url}/microsoft/{{tenantid}}/v2.0"
    single = (await http.get(f"/microsoft/{CONTOSO}/v2.0/.well-known/openid-configuration")).json()
    assert single["issuer"] == f"{sandbox.base_url}/microsoft/{CONTOSO}/v2.0"
    unknown = await http.get("/microsoft/nobody/v2.0/.well-known/openid-configuration")
    assert unknown.status_code == 404


async def test_google_code_flow_issues_a_verifiable_id_token(
    http: httpx.AsyncClient, sandbox: RunningSandbox, clock: FakeClock
) -> None:
    verifier, challenge = _pkce()
    code = _code(await _authorize(http, "/google/o/oauth2/v2/auth", challenge=challenge))
    response = await _token(http, "/google/token", code, verifier)
    assert response.status_code == 200, response.text
    keys = KeySet.import_key_set((await http.get("/google/oauth2/v3/certs")).json())
    token = jwt.decode(response.json()["id_token"], keys)
    assert token.header["alg"] == "RS256"
    claims = token.claims
    assert claims["iss"] == f"{sandbox.base_url}/google"
    assert claims["aud"] == CLIENT
    assert claims["nonce"] == "n-1"
    assert claims["email"] == "anna@virtanen-demo.fi"
    assert claims["email_verified"] is True
    assert claims["hd"] == "virtanen-demo.fi"
    assert claims["iat"] == int(clock.now)
    userinfo = await http.get(
        "/google/v1/userinfo",
        headers={"Authorization": f"Bearer {response.json()['access_token']}"},
    )
    assert userinfo.json()["sub"] == claims["sub"]


async def test_microsoft_token_names_the_users_tenant(
    http: httpx.AsyncClient, sandbox: RunningSandbox
) -> None:
    verifier, challenge = _pkce()
    base = "/microsoft/organizations"
    code = _code(
        await _authorize(
            http, f"{base}/oauth2/v2.0/authorize", username="erik", challenge=challenge
        )
    )
    response = await _token(http, f"{base}/oauth2/v2.0/token", code, verifier)
    keys = KeySet.import_key_set((await http.get(f"{base}/discovery/v2.0/keys")).json())
    claims = jwt.decode(response.json()["id_token"], keys).claims
    assert claims["tid"] == CONTOSO
    assert claims["iss"] == f"{sandbox.base_url}/microsoft/{CONTOSO}/v2.0"
    assert claims["xms_edov"] is True
    assert "email_verified" not in claims


async def test_a_code_is_single_use_and_pkce_and_secret_are_checked(
    http: httpx.AsyncClient,
) -> None:
    verifier, challenge = _pkce()
    code = _code(await _authorize(http, "/google/o/oauth2/v2/auth", challenge=challenge))
    wrong_secret = await _token(http, "/google/token", code, verifier, secret="guess")
    assert wrong_secret.status_code == 401
    assert wrong_secret.json()["error"] == "invalid_client"
    wrong_verifier = await _token(http, "/google/token", code, "x" * 50)
    assert wrong_verifier.json() == {
        "error": "invalid_grant",
        "error_description": "PKCE verification failed",
    }
    # The failed attempt spent the code, as a careful provider does.
    replay = await _token(http, "/google/token", code, verifier)
    assert replay.json()["error_description"] == "authorization code already used"


async def test_a_code_expires(http: httpx.AsyncClient, clock: FakeClock) -> None:
    verifier, challenge = _pkce()
    code = _code(await _authorize(http, "/google/o/oauth2/v2/auth", challenge=challenge))
    clock.now += 61
    response = await _token(http, "/google/token", code, verifier)
    assert response.json()["error_description"] == "authorization code expired"


async def test_pkce_is_required_and_redirect_uri_must_be_registered(
    http: httpx.AsyncClient,
) -> None:
    no_pkce = await http.get(
        "/google/o/oauth2/v2/auth?"
        + urlencode(
            {
                "response_type": "code",
                "client_id": CLIENT,
                "redirect_uri": REDIRECT,
                "scope": "openid",
                "state": "st-1",
            }
        )
    )
    assert no_pkce.status_code == 302
    assert "error=invalid_request" in no_pkce.headers["location"]
    _, challenge = _pkce()
    foreign = await _authorize(
        http,
        "/google/o/oauth2/v2/auth",
        challenge=challenge,
        redirect_uri="https://evil.example/callback",
    )
    assert foreign.status_code == 400
    assert "redirect_uri is not registered" in foreign.text


async def test_an_idp_session_skips_the_page_unless_prompt_login(
    http: httpx.AsyncClient,
) -> None:
    _, challenge = _pkce()
    _code(await _authorize(http, "/google/o/oauth2/v2/auth", challenge=challenge))
    params = {
        "response_type": "code",
        "client_id": CLIENT,
        "redirect_uri": REDIRECT,
        "scope": "openid email",
        "state": "st-1",
        "code_challenge": challenge,
        "code_challenge_method": "S256",
    }
    again = await http.get(f"/google/o/oauth2/v2/auth?{urlencode(params)}")
    assert again.status_code == 302
    assert "code=" in again.headers["location"]
    forced = await http.get(f"/google/o/oauth2/v2/auth?{urlencode({**params, 'prompt': 'login'})}")
    assert forced.status_code == 200
    assert "Choose a test user" in forced.text


async def test_rotation_keeps_the_old_key_published_for_the_retention(
    http: httpx.AsyncClient, clock: FakeClock
) -> None:
    first = (await http.get("/google/oauth2/v3/certs")).json()["keys"]
    rotated = (await http.post("/_sandbox/oidc/google/rotate-keys")).json()
    kids = [key["kid"] for key in (await http.get("/google/oauth2/v3/certs")).json()["keys"]]
    assert kids == [first[0]["kid"], rotated["current_kid"]]
    clock.now += 601
    kids = [key["kid"] for key in (await http.get("/google/oauth2/v3/certs")).json()["keys"]]
    assert kids == [rotated["current_kid"]]


async def test_faults_make_wrong_nonce_unknown_key_and_old_tokens(
    http: httpx.AsyncClient, sandbox: RunningSandbox, clock: FakeClock
) -> None:
    keys = KeySet.import_key_set((await http.get("/google/oauth2/v3/certs")).json())
    await http.post(
        "/_sandbox/oidc/google/faults",
        json={"wrong_nonce": True, "clock_offset_seconds": -7200},
    )
    verifier, challenge = _pkce()
    code = _code(await _authorize(http, "/google/o/oauth2/v2/auth", challenge=challenge))
    claims = jwt.decode(
        (await _token(http, "/google/token", code, verifier)).json()["id_token"], keys
    ).claims
    assert claims["nonce"] != "n-1"
    assert claims["exp"] == int(clock.now) - 7200 + 3600
    await http.post("/_sandbox/oidc/google/faults", json={"unknown_key": True})
    verifier, challenge = _pkce()
    code = _code(await _authorize(http, "/google/o/oauth2/v2/auth", challenge=challenge))
    id_token = (await _token(http, "/google/token", code, verifier)).json()["id_token"]
    with pytest.raises((InvalidKeyIdError, BadSignatureError)):
        jwt.decode(id_token, keys)
    await http.post("/_sandbox/reset")
    assert identity_providers(sandbox.world)["google"].faults.unknown_key is False
