"""Over the wire: a person signs in with the sandbox's Google, creates their company's
environment; a second person (Microsoft) is refused it, told whom to ask, and cannot see it.
Auth and the sandbox as processes, PostgreSQL."""

from __future__ import annotations

import httpx
import pytest
from signin_helpers import SigninRun

from ledgerlink.cli.stack import Stack

pytestmark = pytest.mark.wire

COMPANY = {
    "country": "FI",
    "business_id": "0112038-9",
    "official_name": "Virtanen Demo Oy",
    "company_email": "anna@virtanen-demo.fi",
}


async def _signed_in(client: httpx.AsyncClient, auth: str, provider: str, username: str) -> str:
    """Sign in; the CSRF token /me hands out for JSON writes."""
    response = await SigninRun(client, auth, provider).sign_in(username, next_url="/me")
    assert response.status_code == 303, response.text
    me = await client.get(f"{auth}/me")
    assert me.status_code == 200, me.text
    token: str = me.json()["csrf_token"]
    return token


async def test_create_an_environment_then_a_second_person_is_refused(stack: Stack) -> None:
    await stack.up(("auth", "sandbox"))
    auth = stack.services["auth"].url
    async with httpx.AsyncClient(timeout=15) as anna:
        csrf = await _signed_in(anna, auth, "google", "anna")
        without_token = await anna.post(f"{auth}/v1/environments", json=COMPANY)
        assert without_token.status_code == 403
        created = await anna.post(
            f"{auth}/v1/environments", json=COMPANY, headers={"X-CSRF-Token": csrf}
        )
        assert created.status_code == 201, created.text
        environment = created.json()["environment"]
        assert environment["subdomain"] == "virtanen-demo-oy"
        assert environment["role"] == "admin"

    async with httpx.AsyncClient(timeout=15) as erik:
        csrf = await _signed_in(erik, auth, "microsoft", "erik")
        refused = await erik.post(
            f"{auth}/v1/environments", json=COMPANY, headers={"X-CSRF-Token": csrf}
        )
        assert refused.status_code == 409, refused.text
        assert refused.json()["code"] == "refuse"
        assert "anna@virtanen-demo.fi" in refused.json()["detail"]
        hidden = await erik.get(f"{auth}/v1/environments/{environment['id']}")
        assert hidden.status_code == 404
        assert (await erik.get(f"{auth}/v1/environments")).json() == []
