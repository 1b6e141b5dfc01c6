"""Seed 002 in a real browser: a Visma.net connection from "New connection" to ``active``,
with a wrong and a missing CoC number on the way, and "Import from an existing connection"
(the stored login reused; Visma asked again once it no longer works)."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import quote

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

VISMA_USER, VISMA_PASSWORD = "controller@office-demo.nl", "correct horse battery"


def _tenants(world: World, count: int) -> list[Tenant]:
    return [world.add_tenant("vismanet", lines=10) for _ in range(count)]


def _prepare(world: World, auth: str, tenants: list[Tenant], reach: int) -> None:
    vn.register_client(
        world,
        VISMA_CLIENT_ID,
        VISMA_CLIENT_SECRET,
        kind="interactive",
        redirect_uri=f"{auth}/connect/visma_net/callback",
        consent_page=True,
    )
    vn.add_user(
        world,
        VISMA_USER,
        VISMA_PASSWORD,
        tenants[0],
        extra_companies=[vn.company_id(t) for t in tenants[1:reach]],
    )


async def _organisation(stage: FlowStage) -> dict[str, Any]:
    created = await stage.json("POST", "/v1/organisations", {"name": "Boekhouding Demo B.V."})
    organisation: dict[str, Any] = created.get("organisation", created)
    return organisation


async def _visma_login(stage: FlowStage, shot_prefix: str) -> None:
    """The sandbox's Visma Connect: user name and password, then "Allow"."""
    page = stage.page
    await expect(page.get_by_role("heading", name="Visma Connect sandbox login")).to_be_visible()
    await stage.shot(f"{shot_prefix}-visma-login")
    await page.get_by_label("User name").fill(VISMA_USER)
    await page.get_by_label("Password").fill(VISMA_PASSWORD)
    await page.get_by_role("button", name="Log in and allow").click()
    await expect(page.get_by_role("heading", name=re.compile("^Allow"))).to_be_visible()
    await stage.shot(f"{shot_prefix}-visma-allow")
    await page.get_by_role("button", name="Allow").click()


async def _credential(stage: FlowStage, connection_id: str) -> dict[str, Any]:
    async with httpx.AsyncClient(timeout=15) as client:
        response = await client.post(
            f"{stage.auth}/internal/v1/connections/{connection_id}/credentials",
            headers={"Authorization": f"Bearer {SERVICE_TOKEN}"},
        )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_new_visma_net_connection_with_coc_problems_until_active(
    stack: Stack, reader: EventReader, kafka_backend: KafkaBackend, request: pytest.FixtureRequest
) -> None:
    tenants: list[Tenant] = []

    def prepare(world: World, auth: str) -> None:
        tenants.extend(_tenants(world, 3))
        _prepare(world, auth, tenants, reach=3)

    async with flow_stage(
        stack, reader, kafka_backend.bootstrap_servers, request.node.name, prepare
    ) as stage:
        page = stage.page
        await stage.sign_in("anna", "/connect/visma_net")
        # No organisation yet: the page creates one ("Organisatie", seed 002 step 1).
        await expect(page.get_by_role("heading", level=1)).to_have_text("Create your organisation")
        await page.get_by_role("button", name="Create organisation").click()
        await expect(page.locator("#organisation_name-error")).to_contain_text("Enter the")
        await page.get_by_label("Organisation name").fill("Boekhouding Demo B.V.")
        await page.get_by_role("button", name="Create organisation").click()
        await expect(page).to_have_url(re.compile(r"/connect/visma_net\?organisation_id="))
        organisation = {"id": page.url.split("organisation_id=")[1]}
        division = await stage.json(
            "POST", f"/v1/organisations/{organisation['id']}/divisions", {"name": "Noord"}
        )
        await page.goto(f"{stage.auth}/connect/visma_net?organisation_id={organisation['id']}")
        await expect(page.get_by_role("heading", level=1)).to_have_text("Visma.net connections")
        await stage.shot("connections-none-yet")

        # Steps 1-4: New connection, Visma credentials, "allow".
        await page.get_by_role("button", name="New connection").click()
        authorize = page.url
        assert "code_challenge_method=S256" in authorize
        callback = quote(f"{stage.auth}/connect/visma_net/callback", safe="")
        assert f"redirect_uri={callback}&" in authorize  # the exact registered URI
        await _visma_login(stage, "new")

        # Step 5: every administration the login reaches, each with a checkbox.
        await expect(page.get_by_role("heading", level=1)).to_have_text("Choose administrations")
        await stage.shot("administrations")
        names = [t.company.name for t in tenants]
        for name in names:
            await expect(page.get_by_label(re.compile(re.escape(name)))).to_be_visible()
        await page.get_by_role("button", name="Next").click()
        await expect(page.locator("#administrations-error")).to_contain_text(
            "Choose at least one administration"
        )
        await stage.shot("administrations-none-chosen")
        await page.get_by_label(re.compile(re.escape(names[0]))).check()
        await page.get_by_label(re.compile(re.escape(names[1]))).check()
        await page.get_by_role("button", name="Next").click()

        # Step 6: a wrong CoC number and a missing one, each error next to its field.
        await expect(page.get_by_role("heading", level=1)).to_have_text("CoC number and sector")
        first, second = vn.company_id(tenants[0]), vn.company_id(tenants[1])
        await stage.shot("details")
        await page.locator(f"#coc-{first}").fill("1234 567")
        await page.locator(f"#sector-{first}").select_option("professional_services")
        await page.locator(f"#sector-{second}").select_option("trade")
        await page.locator(f"#coc-{first}").press("Enter")  # keyboard submits the form
        error_first = page.locator(f"#coc-{first}-error")
        await expect(error_first).to_contain_text("7 digits")
        await expect(page.locator(f"#coc-{first}")).to_have_attribute(
            "aria-describedby", re.compile(f"coc-{first}-error")
        )
        await expect(page.locator(f"#coc-{first}")).to_have_value("1234 567")  # nothing lost
        await expect(page.locator(f"#coc-{second}-error")).to_contain_text(
            "or choose why there is none"
        )
        await expect(page.get_by_role("alert")).to_contain_text("There is a problem")
        await stage.shot("details-errors")

        await page.locator(f"#coc-{first}").fill("1234 5678")
        await page.locator(f"#reason-{second}").select_option("test_demo")
        await page.get_by_role("button", name="Next").click()

        # Step 7: bulk assignment (all administrations selected by default).
        await expect(page.get_by_role("heading", level=1)).to_have_text("Assign administrations")
        for name in names[:2]:
            await expect(page.get_by_label(name, exact=True)).to_be_checked()
        await page.get_by_label("Division").select_option(division["id"])
        await stage.shot("assign")
        await page.get_by_role("button", name="Finish").click()

        # Finished: both administrations are connections that are configuring.
        await expect(page.get_by_role("heading", level=1)).to_have_text("Administrations imported")
        rows = page.locator("tr[data-connection-id]")
        await expect(rows).to_have_count(2)
        await expect(rows.nth(0)).to_contain_text("configuring")
        await stage.shot("imported-configuring")
        ids = [await rows.nth(i).get_attribute("data-connection-id") for i in range(2)]
        connections = [await stage.connection(str(i)) for i in ids]
        assert {c["status"] for c in connections} == {"configuring"}
        by_name = {c["company_name"]: c for c in connections}
        assert by_name[names[0]]["business_id"] == "12345678"
        assert by_name[names[1]]["business_id"] == f"VISMA-{second}"
        for connection in connections:
            event = await stage.activated(connection["id"])
            assert event["provider"] == "visma_net"
            assert event["business_id"] == connection["business_id"]

        # One Visma grant for both: the token service answers each with its own company.
        credentials = [await _credential(stage, c["id"]) for c in connections]
        assert (
            credentials[0]["secrets"]["access_token"] == (credentials[1]["secrets"]["access_token"])
        )
        assert {c["attributes"]["company_id"] for c in credentials} == {first, second}
        assert "refresh_token" not in credentials[0]["secrets"]

        # The first import completes: the administration becomes active.
        await stage.complete_first_import(by_name[names[0]])
        await page.goto(f"{stage.auth}/connect/visma_net?organisation_id={organisation['id']}")
        active_row = page.locator(f"tr[data-connection-id='{by_name[names[0]]['id']}']")
        await expect(active_row).to_contain_text("active")
        await expect(
            page.locator(f"tr[data-connection-id='{by_name[names[1]]['id']}']")
        ).to_contain_text("configuring")
        assert (await stage.connection(by_name[names[0]]["id"]))["status"] == "active"
        await stage.shot("connections-active")

        # Finnish, chosen on the page.
        await page.get_by_role("link", name="Suomi").click()
        await expect(page.get_by_role("heading", level=1)).to_have_text("Visma.net-yhteydet")
        await expect(page.locator("html")).to_have_attribute("lang", "fi")
        await stage.shot("connections-in-finnish")


async def _import_one(stage: FlowStage, name: str, company: str, shot: str) -> str:
    """Steps 5-7 for one administration (a valid CoC number, assignment skipped)."""
    page = stage.page
    await expect(page.get_by_role("heading", level=1)).to_have_text("Choose administrations")
    await stage.shot(f"{shot}-administrations")
    await page.get_by_label(re.compile(re.escape(name))).check()
    await page.get_by_role("button", name="Next").click()
    await page.locator(f"#reason-{company}").select_option("not_a_company")
    await page.locator(f"#sector-{company}").select_option("other")
    await page.get_by_role("button", name="Next").click()
    await expect(page.get_by_role("heading", level=1)).to_have_text("Assign administrations")
    await page.get_by_role("button", name="Skip this step").click()
    await expect(page.get_by_role("heading", level=1)).to_have_text("Administrations imported")
    await stage.shot(f"{shot}-imported")
    row = page.locator("tr[data-connection-id]")
    await expect(row).to_have_count(1)
    connection_id = str(await row.get_attribute("data-connection-id"))
    connection = await stage.connection(connection_id)
    assert connection["status"] == "configuring"
    assert connection["company_name"] == name
    assert (await stage.activated(connection_id))["provider"] == "visma_net"
    return connection_id


async def test_import_from_an_existing_connection_asks_visma_only_when_needed(
    stack: Stack, reader: EventReader, kafka_backend: KafkaBackend, request: pytest.FixtureRequest
) -> None:
    tenants: list[Tenant] = []
    worlds: list[World] = []

    def prepare(world: World, auth: str) -> None:
        tenants.extend(_tenants(world, 3))
        _prepare(world, auth, tenants, reach=3)
        worlds.append(world)

    async with flow_stage(
        stack, reader, kafka_backend.bootstrap_servers, request.node.name, prepare
    ) as stage:
        page = stage.page
        server = vn.oauth_server(worlds[0])
        await stage.sign_in("anna", "/me")
        organisation = await _organisation(stage)
        overview = f"{stage.auth}/connect/visma_net?organisation_id={organisation['id']}"
        await page.goto(overview)
        await page.get_by_role("button", name="New connection").click()
        await _visma_login(stage, "first")
        names = [t.company.name for t in tenants]
        ids = [vn.company_id(t) for t in tenants]
        await _import_one(stage, names[0], ids[0], "first")
        assert server.page_logins == 1

        # The stored login still works: no Visma login page at all.
        await page.goto(overview)
        await stage.shot("overview-one-connection")
        await page.get_by_role("button", name="Import from an existing connection").click()
        await expect(page.get_by_text("Your stored Visma login still works")).to_be_visible()
        await expect(page.get_by_label(re.compile(re.escape(names[0])))).to_be_disabled()
        await _import_one(stage, names[1], ids[1], "stored-login")
        assert server.page_logins == 1

        # Visma no longer accepts the stored login (and the person's Visma session ended, as
        # after a password change): Visma's credentials are asked again.
        server.revoke_all()
        server.browser_sessions.clear()
        await page.goto(overview)
        await page.get_by_role("button", name="Import from an existing connection").click()
        await _visma_login(stage, "asked-again")
        assert server.page_logins == 2
        await _import_one(stage, names[2], ids[2], "asked-again")
        rows = await page.goto(overview)
        assert rows is not None
        await expect(page.locator("tr[data-connection-id]")).to_have_count(3)
        await stage.shot("overview-three-connections")
