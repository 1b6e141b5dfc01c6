"""Auth's sign-in pages and session routes that need no provider: pages, refusals, /me."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import httpx
import pytest
from fastapi import FastAPI

from ledgerlink.auth.config import Config
from ledgerlink.auth.handlers.web import register_web_routes
from ledgerlink.auth.main import build_web_context
from ledgerlink.shared.db import Database


def _unreachable(request: httpx.Request) -> httpx.Response:
    return httpx.Response(503, text="down for maintenance")


def _app(db: Database, config: Config) -> FastAPI:
    app = FastAPI()
    context = build_web_context(
        config,
        db,
        clock=lambda: datetime(2027, 3, 1, 12, tzinfo=UTC),
        oidc_transport=httpx.MockTransport(_unreachable),
    )
    register_web_routes(app, context)
    return app


@pytest.fixture
async def client(db: Database) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=_app(db, Config()))
    async with httpx.AsyncClient(transport=transport, base_url="http://auth") as client:
        yield client


def _assert_accessible_page(html: str) -> None:
    assert html.startswith("<!doctype html>")
    assert '<html lang="en">' in html
    assert len(re.findall(r"<h1[ >]", html)) == 1
    assert "<script" not in html
    for field in re.findall(r'<input[^>]*type="(?!hidden)[^"]*"[^>]*id="([^"]+)"', html):
        assert f'for="{field}"' in html, f"input {field} has no label"


async def test_the_signin_page_offers_both_providers(client: httpx.AsyncClient) -> None:
    response = await client.get("/signin", params={"next": "/me"})
    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"
    _assert_accessible_page(response.text)
    assert '<h1 class="heading-l">Sign in to Ledgerlink</h1>' in response.text
    assert 'href="/signin/google?next=%2Fme">Sign in with Google</a>' in response.text
    assert 'href="/signin/microsoft?next=%2Fme">Sign in with Microsoft</a>' in response.text


async def test_a_disabled_provider_is_neither_listed_nor_started(db: Database) -> None:
    config = Config.model_validate(
        {
            "signin": {
                "microsoft": {
                    "enabled": False,
                    "discovery_url": "http://x/.well-known/openid-configuration",
                }
            }
        }
    )
    transport = httpx.ASGITransport(app=_app(db, config))
    async with httpx.AsyncClient(transport=transport, base_url="http://auth") as client:
        page = await client.get("/signin")
        assert "Sign in with Microsoft" not in page.text
        refused = await client.get("/signin/microsoft")
    assert refused.status_code == 400
    assert "This sign-in service is not offered" in refused.text


async def test_an_unknown_provider_gets_a_clear_page(client: httpx.AsyncClient) -> None:
    response = await client.get("/signin/facebook")
    assert response.status_code == 400
    _assert_accessible_page(response.text)
    assert "This sign-in service is not offered" in response.text
    assert "ledgerlink_session" not in response.headers.get("set-cookie", "")


async def test_an_unreachable_provider_gets_a_clear_page(client: httpx.AsyncClient) -> None:
    response = await client.get("/signin/google")
    assert response.status_code == 400
    assert "The sign-in service could not be reached" in response.text


async def test_a_callback_nobody_started_is_refused(client: httpx.AsyncClient) -> None:
    response = await client.get("/signin/google/callback", params={"code": "c", "state": "s"})
    assert response.status_code == 400
    _assert_accessible_page(response.text)
    assert "This sign-in did not start in this browser" in response.text
    assert "ledgerlink_session" not in response.cookies


async def test_me_without_a_session_is_401(client: httpx.AsyncClient) -> None:
    client.cookies.set("ledgerlink_session", "made.up")
    response = await client.get("/me")
    assert response.status_code == 401
    assert response.json() == {"detail": "not signed in"}


async def test_sign_out_without_a_session_still_clears_the_cookie(
    client: httpx.AsyncClient,
) -> None:
    response = await client.post("/signout", data={"csrf_token": "x"})
    assert response.status_code == 200
    _assert_accessible_page(response.text)
    assert 'ledgerlink_session=""' in response.headers["set-cookie"]


async def test_the_shared_stylesheet_is_served(client: httpx.AsyncClient) -> None:
    response = await client.get("/static/ledgerlink.css")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/css")
    assert ".button" in response.text
