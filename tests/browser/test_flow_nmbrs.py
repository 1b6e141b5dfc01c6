"""Seed 003 in a real browser: Visma Nmbrs -> Visma.net. A named Visma.net account at
master level, authorised with a fresh Visma login (an existing Visma session is not
reused), "allow", the company chosen, a success message and the account's status; the Nmbrs
API user's token checked live. And the template without write rights: said so, the account
stays not authorised (in red)."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest
from browser.flows_b_support import (
    SERVICE_TOKEN,
    VISMA_CLIENT_ID,
    VISMA_CLIENT_SECRET,
    FlowStage,
    flow_stage,
)
from playwright.async_api import expect
from wire_helpers import EventReader

from ledgerlink.cli.stack import Stack
from ledgerlink.sandbox.vendors import vismanet as vn
from ledgerlink.sandbox.world import Tenant, World
from ledgerlink.shared.testing import KafkaBackend

pytestmark = [pytest.mark.wire]

WRITER, READER, PASSWORD = "payroll@office-demo.nl", "viewer@office-demo.nl", "s3cret visma"
NMBRS = {"username": "api@payroll-demo.nl", "token": "nmbrs-api-token-4711", "domain": "demo"}
STARTED = "ledgerlink.connection.authorization_started.v1"
ACTIVATED = "ledgerlink.connection.activated.v1"
ENVIRONMENT = {
    "country": "NL",
    "business_id": "69599084",
    "official_name": "Loon Demo B.V.",
    "company_email": "anna@virtanen-demo.fi",
}


def _prepare(world: World, auth: str, tenants: list[Tenant]) -> None:
    tenants.extend(world.add_tenant("vismanet", lines=5) for _ in range(2))
    vn.register_client(
        world,
        VISMA_CLIENT_ID,
        VISMA_CLIENT_SECRET,
        kind="interactive",
        redirect_uri=f"{auth}/connect/visma_net/callback",
        consent_page=True,
    )
    vn.add_user(world, WRITER, PASSWORD, tenants[0], extra_companies=[vn.company_id(tenants[1])])
    vn.add_user(world, READER, PASSWORD, tenants[0], write_rights=False)
    world.add_tenant("nmbrs", lines=5, credentials=dict(NMBRS))


async def _integration_page(stage: FlowStage) -> str:
    await stage.sign_in("anna", "/me")
    created = await stage.json("POST", "/v1/environments", ENVIRONMENT)
    environment_id = str(created["environment"]["id"])
    await stage.page.goto(f"{stage.auth}/connect/nmbrs?environment_id={environment_id}")
    await expect(stage.page.get_by_role("heading", level=1)).to_have_text("Visma.net integration")
    return environment_id


async def _create_account(stage: FlowStage) -> None:
    page = stage.page
    await stage.shot("integration-no-account")
    await page.get_by_role("button", name="Create account").click()
    await expect(page.locator("#name-error")).to_contain_text("Enter a name")
    await expect(page.locator("#name")).to_have_attribute(
        "aria-describedby", re.compile("name-error")
    )
    await stage.shot("account-name-missing")
    await page.get_by_label("Account name").fill("Loonjournaals naar Visma")
    await page.get_by_role("button", name="Create account").click()
    status = page.locator("#account-status")
    await expect(status).to_have_text("Not authorized")
    await expect(status).to_have_class(re.compile("tag--refused"))
    red = await status.evaluate("element => getComputedStyle(element).color")
    assert red == "rgb(148, 37, 20)", red  # the red of a refusal
    await stage.shot("account-not-authorized")


async def _authorize(stage: FlowStage, username: str, shot: str) -> None:
    """ "Authorize at Visma": Visma asks for a login although a session exists."""
    page = stage.page
    await page.get_by_role("button", name="Authorize at Visma").click()
    assert "prompt=login" in page.url
    assert "max_age=0" in page.url
    await expect(page.get_by_role("heading", name="Visma Connect sandbox login")).to_be_visible()
    await stage.shot(f"{shot}-visma-login")
    await page.get_by_label("User name").fill(username)
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Log in and allow").click()
    await page.get_by_role("button", name="Allow").click()
    await expect(page.get_by_role("heading", level=1)).to_have_text("Choose the Visma.net company")
    await stage.shot(f"{shot}-choose-company")


async def _visma_session(stage: FlowStage) -> None:
    """The person is already logged in at Visma (the situation seed 003 warns about)."""
    server = vn.oauth_server(stage.sandbox.world)
    user = server.users[WRITER]
    cookie = server.start_browser_session(user)
    host = stage.sandbox.base_url.split("//", 1)[1].split(":")[0]
    await stage.page.context.add_cookies(
        [{"name": "sandbox_login_vismaconnect", "value": cookie, "domain": host, "path": "/"}]
    )


async def _credential(stage: FlowStage, connection_id: str) -> dict[str, Any]:
    async with httpx.AsyncClient(timeout=15) as client:
        response = await client.post(
            f"{stage.auth}/internal/v1/connections/{connection_id}/credentials",
            headers={"Authorization": f"Bearer {SERVICE_TOKEN}"},
        )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def _connections(stage: FlowStage, environment_id: str) -> dict[str, dict[str, Any]]:
    response = await stage.page.request.get(
        f"{stage.auth}/v1/environments/{environment_id}/connections"
    )
    assert response.ok, await response.text()
    return {item["provider"]: item for item in await response.json()}


async def test_nmbrs_visma_net_account_authorized_with_a_fresh_login(
    stack: Stack, reader: EventReader, kafka_backend: KafkaBackend, request: pytest.FixtureRequest
) -> None:
    tenants: list[Tenant] = []
    async with flow_stage(
        stack,
        reader,
        kafka_backend.bootstrap_servers,
        request.node.name,
        lambda world, auth: _prepare(world, auth, tenants),
    ) as stage:
        page = stage.page
        environment_id = await _integration_page(stage)
        await _create_account(stage)
        await _visma_session(stage)
        logins = vn.oauth_server(stage.sandbox.world).page_logins
        await _authorize(stage, WRITER, "writer")
        assert vn.oauth_server(stage.sandbox.world).page_logins == logins + 1

        chosen = tenants[1]
        await page.get_by_label(chosen.company.name).check()
        await page.get_by_role("button", name="Use this company").click()
        await expect(page.get_by_role("heading", level=1)).to_have_text(
            "Visma.net account authorized"
        )
        await expect(page.get_by_role("status")).to_contain_text(chosen.company.name)
        await stage.shot("account-authorized-message")
        await page.get_by_role("link", name="Back to the integration settings").click()
        await expect(page.locator("#account-status")).to_have_text("Authorized")
        await stage.shot("account-authorized")

        # The Nmbrs API user: a wrong token is refused next to its field, then the right one.
        await page.get_by_label("API user (e-mail address)").fill(NMBRS["username"])
        await page.get_by_label("API token").fill("not-the-token")
        await page.get_by_label("Nmbrs domain").fill(NMBRS["domain"])
        await page.get_by_role("button", name="Save API user").click()
        await expect(page.locator("#nmbrs_token-error")).to_contain_text("Nmbrs refused")
        await expect(page.get_by_label("Nmbrs domain")).to_have_value(NMBRS["domain"])
        await expect(page.get_by_label("API token")).to_have_value("")  # never shown again
        await stage.shot("nmbrs-token-refused")
        await page.get_by_label("API token").fill(NMBRS["token"])
        await page.get_by_role("button", name="Save API user").click()
        await expect(page.locator("#nmbrs-status")).to_contain_text("Connected")
        await stage.shot("nmbrs-connected")
        assert NMBRS["token"] not in await page.content()

        connections = await _connections(stage, environment_id)
        account, nmbrs = connections["visma_net"], connections["nmbrs"]
        assert account["status"] == "configuring"
        assert nmbrs["status"] == "configuring"
        event = await stage.activated(account["id"])
        assert event["provider"] == "visma_net"
        assert event["business_id"] == ENVIRONMENT["business_id"]
        assert (await stage.activated(nmbrs["id"]))["provider"] == "nmbrs"
        credential = await _credential(stage, account["id"])
        assert credential["attributes"]["company_id"] == vn.company_id(chosen)
        assert "vismanet_erp_interactive_api:create" in credential["attributes"]["scope"]
        payroll = await _credential(stage, nmbrs["id"])
        assert payroll["kind"] == "nmbrs_token"
        assert payroll["secrets"]["token"] == NMBRS["token"]
        assert payroll["attributes"] == {"username": NMBRS["username"], "domain": "demo"}


async def test_template_without_write_rights_is_said_and_the_account_stays_not_authorized(
    stack: Stack, reader: EventReader, kafka_backend: KafkaBackend, request: pytest.FixtureRequest
) -> None:
    tenants: list[Tenant] = []
    async with flow_stage(
        stack,
        reader,
        kafka_backend.bootstrap_servers,
        request.node.name,
        lambda world, auth: _prepare(world, auth, tenants),
    ) as stage:
        page = stage.page
        environment_id = await _integration_page(stage)
        await _create_account(stage)
        await _authorize(stage, READER, "reader")
        await page.get_by_role("button", name="Use this company").click()
        await expect(page.get_by_role("heading", level=1)).to_have_text("No write rights")
        await expect(page.locator("#write-rights")).to_contain_text("does not grant write rights")
        await stage.shot("no-write-rights")
        await page.get_by_role("link", name="Back to the integration settings").click()
        status = page.locator("#account-status")
        await expect(status).to_have_text("Not authorized")
        await expect(status).to_have_class(re.compile("tag--refused"))
        await expect(page.locator("#write-rights")).to_contain_text("write rights")
        await stage.shot("account-still-not-authorized")

        account = (await _connections(stage, environment_id))["visma_net"]
        assert account["status"] == "authorizing"
        await stage.reader.wait_for(
            lambda r: r.type == STARTED and r.data.get("connection_id") == account["id"]
        )
        assert not stage.reader.matching(
            lambda r: r.type == ACTIVATED and r.data.get("connection_id") == account["id"]
        )

        # With write rights granted (another user's template), the same account authorizes.
        await _authorize(stage, WRITER, "writer")
        await page.get_by_label(tenants[0].company.name).check()
        await page.get_by_role("button", name="Use this company").click()
        await expect(page.get_by_role("heading", level=1)).to_have_text(
            "Visma.net account authorized"
        )
        await stage.shot("authorized-after-rights")
        account = (await _connections(stage, environment_id))["visma_net"]
        assert account["status"] == "configuring"
        assert (await stage.activated(account["id"]))["provider"] == "visma_net"
