"""Procountor -> planning (seed 001) in a real browser: the sandbox's Procountor (its login
page and API) and IdPs, auth and the importer as processes, PostgreSQL, the Kafka
protocol. Each test ends with the connection over HTTP and its events on Kafka, and
leaves a screenshot per step."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest
from browser_helpers import SERVICE_TOKEN, PagesStack, Shot, sign_in
from playwright.async_api import Page, expect
from signin_helpers import SigninRun

from ledgerlink.shared.topics import Topic

pytestmark = [pytest.mark.wire, pytest.mark.browser]

BUSINESS_ID = "0112038-9"
COMPANY = "Virtanen Demo Oy"
TENANT = "410001"
USER = "anna.procountor"
PASSWORD = "procountor-password-1"


def activation(store_reference: str) -> dict[str, Any]:
    return {
        "provider": "procountor",
        "business_id": BUSINESS_ID,
        "country": "FI",
        "company_name": COMPANY,
        "requested_by": {"email": "anna@virtanen-demo.fi", "name": "Anna Virtanen"},
        "product": "planning",
        "store_reference": store_reference,
    }


async def procountor_company(stack: PagesStack, *, api_enabled: bool = True) -> None:
    await stack.add_tenant(
        vendor="procountor",
        tenant_id=TENANT,
        business_id=BUSINESS_ID,
        name=COMPANY,
        api_enabled=api_enabled,
        credentials={
            "client_id": "ledgerlink-procountor-dev",
            "client_secret": "ledgerlink-procountor-dev-secret",
            "redirect_uri": f"{stack.auth}/activate/procountor/callback",
            "username": USER,
            "password": PASSWORD,
        },
    )


async def through_to_procountor(page: Page, shot: Shot, auth: str, ref: str) -> None:
    """The steps before Procountor's login: warning, terms, what we read."""
    await page.goto(f"{auth}/activate/procountor/{ref}")
    await expect(page.get_by_role("heading", level=1)).to_have_text("Payroll rights are needed")
    await expect(page.get_by_role("note")).to_contain_text("the general ledger will not add up")
    await shot(page, "payroll-warning")
    await page.get_by_role("button", name="I understand, continue").click()

    await expect(page.get_by_role("heading", level=1)).to_have_text("Review and accept the terms")
    await page.get_by_label("I have read and accept").check()
    await shot(page, "terms")
    await page.get_by_role("button", name="Next").click()

    await expect(page.get_by_role("heading", level=1)).to_have_text(
        "What Ledgerlink will read from Procountor"
    )
    await expect(page.get_by_role("main")).to_contain_text("One company per activation")
    await expect(page.locator(".scopes li")).to_have_count(5)
    await shot(page, "what-we-read")
    await page.get_by_role("button", name="Continue to Procountor").click()


async def log_in_at_procountor(page: Page, shot: Shot) -> None:
    await expect(page.get_by_role("heading", level=1)).to_have_text("procountor sandbox login")
    await page.get_by_label("User name").fill(USER)
    await page.get_by_label("Password").fill(PASSWORD)
    await shot(page, "procountor-login")
    await page.get_by_role("button", name="Log in and allow").click()


async def not_connected(stack: PagesStack) -> None:
    """The activation still awaits authorization: no credential, no connection.activated."""
    link = await stack.link_issued(BUSINESS_ID)
    response = await stack.http.post(
        f"{stack.auth}/internal/v1/connections/{link.data['connection_id']}/credentials",
        headers={"Authorization": f"Bearer {SERVICE_TOKEN}"},
    )
    assert response.status_code == 409, response.text
    assert response.json()["detail"]["reason_code"] == "connection_pending_authorization"
    assert stack.reader.matching(lambda seen: "connection.activated" in (seen.type or "")) == []


async def test_over_the_wire_procountor_activation_to_the_importers_first_job(
    pages_stack: PagesStack, page: Page, shot: Shot
) -> None:
    """A plain Kafka client's activation, the whole browser flow (two sign-ins), then
    connection.activated and the importer's job for the connection."""
    await pages_stack.start("importer")
    await procountor_company(pages_stack)
    await pages_stack.publish_activation(**activation("pc-order-1"))
    auth = pages_stack.auth

    await through_to_procountor(page, shot, auth, "pc-order-1")
    await log_in_at_procountor(page, shot)

    # Back from Procountor: the first sign-in with the company's e-mail service.
    await expect(page.get_by_role("link", name="Sign in with Google")).to_be_visible()
    await sign_in(page, "anna")

    await expect(page.get_by_role("heading", level=1)).to_have_text("Your company in Ledgerlink")
    await expect(page.get_by_label("VAT ID")).to_have_value("FI01120389")
    await expect(page.get_by_label("VAT ID")).to_have_attribute("readonly", "")
    await expect(page.get_by_label("Company name")).to_have_value(COMPANY)
    await expect(page.get_by_label("Company e-mail")).to_have_value("anna@virtanen-demo.fi")
    # The subdomain is suggested from the name when the field gets the focus.
    await page.get_by_label("Subdomain").focus()
    await expect(page.get_by_label("Subdomain")).to_have_value("virtanen-demo-oy")
    await shot(page, "company-form")
    await page.get_by_role("button", name="Create company").click()
    await expect(page.locator("#accept_terms-error")).to_be_visible()
    await expect(page.get_by_label("I have read and accept")).to_be_focused()
    await shot(page, "terms-again-not-accepted")
    await page.get_by_label("I have read and accept").check()
    await page.get_by_role("button", name="Create company").click()

    await expect(page.get_by_role("heading", level=1)).to_have_text("Confirm the connection")
    await shot(page, "confirm")
    await page.get_by_role("button", name="Confirm connection").click()

    await expect(page.get_by_role("heading", level=1)).to_have_text(
        f"Procountor was successfully connected to {COMPANY} environment"
    )
    await shot(page, "connected")
    # "To <product>" asks for a sign-in at or after the click (within a second). A fast
    # machine reaches this page within a second of the sign-in above, so time moves on a
    # minute here -- auth's clock and the Google stand-in's alike (never a sleep) -- and
    # the page is opened again to take the click's time from the moved clock.
    await pages_stack.advance_clock(60)
    moved = await pages_stack.http.post(
        f"{pages_stack.sandbox}/_sandbox/oidc/google/faults", json={"clock_offset_seconds": 60}
    )
    assert moved.status_code == 200, moved.text
    await page.reload()
    await page.get_by_role("link", name="To Ledgerlink Planning").click()
    # Sign-in once more (the IdP asks again), then the environment.
    await sign_in(page, "anna")
    await expect(page).to_have_url(re.compile(r"/environments/virtanen-demo-oy$"))
    await expect(page.get_by_role("heading", level=1)).to_have_text(COMPANY)
    await shot(page, "environment")

    activated = await pages_stack.activated(BUSINESS_ID)
    connection_id = activated.data["connection_id"]
    assert activated.data["provider"] == "procountor"
    seen = await page.request.get(f"{auth}/v1/connections/{connection_id}")
    assert (await seen.json())["status"] == "configuring"
    credential = await pages_stack.connection(connection_id)
    assert credential["kind"] == "bearer"
    assert credential["secrets"]["access_token"]
    assert credential["secrets"]["access_token"] not in activated.value.decode()

    # The importer starts the first import of the new connection.
    queued_topic = pages_stack.reader.topic(Topic.IMPORTS)
    [queued] = await pages_stack.reader.wait_for(
        lambda s: (
            s.topic == queued_topic
            and s.type == "ledgerlink.import.queued.v1"
            and s.data.get("connection_id") == connection_id
        )
    )
    assert queued.data["trigger"] == "connection_activated"
    jobs = await pages_stack.http.get(
        f"{pages_stack.stack.services['importer'].url}/v1/imports",
        params={"business_id": BUSINESS_ID},
    )
    assert [job["id"] for job in jobs.json()] == [queued.data["import_id"]]


async def test_a_closed_api_is_explained_and_can_be_opened(
    pages_stack: PagesStack, page: Page, shot: Shot
) -> None:
    await procountor_company(pages_stack, api_enabled=False)
    await pages_stack.publish_activation(**activation("pc-order-2"))
    await pages_stack.link_issued(BUSINESS_ID)

    await through_to_procountor(page, shot, pages_stack.auth, "pc-order-2")
    await log_in_at_procountor(page, shot)
    await expect(page.get_by_role("heading", level=1)).to_have_text(
        "Open the API in Procountor first"
    )
    await expect(page.get_by_role("main")).to_contain_text(
        "Allow the usage of invoiceable API clients"
    )
    await shot(page, "api-closed")
    await not_connected(pages_stack)

    # The company opens the API; trying again goes on to the company step.
    opened = await pages_stack.http.post(
        f"{pages_stack.sandbox}/_sandbox/procountor/{TENANT}/api", params={"enabled": "true"}
    )
    assert opened.status_code == 204
    await page.get_by_role("link", name="Try again").click()
    await page.get_by_role("button", name="Continue to Procountor").click()
    await log_in_at_procountor(page, shot)
    await expect(page.get_by_role("link", name="Sign in with Google")).to_be_visible()
    await shot(page, "api-open-sign-in")
    await not_connected(pages_stack)


async def test_an_existing_environment_is_joined_by_admins_only(
    pages_stack: PagesStack, page: Page, shot: Shot
) -> None:
    """Erik made the company's environment; Anna is not its admin: she is told to ask him."""
    auth = pages_stack.auth
    async with httpx.AsyncClient(timeout=15) as erik:
        done = await SigninRun(erik, auth, "microsoft").sign_in("erik", next_url="/me")
        assert done.status_code == 303
        csrf = (await erik.get(f"{auth}/me")).json()["csrf_token"]
        created = await erik.post(
            f"{auth}/v1/environments",
            json={
                "country": "FI",
                "business_id": BUSINESS_ID,
                "official_name": COMPANY,
                "company_email": "erik@contoso-demo.fi",
            },
            headers={"X-CSRF-Token": csrf},
        )
        assert created.status_code == 201, created.text
    await procountor_company(pages_stack)
    await pages_stack.publish_activation(**activation("pc-order-3"))
    await pages_stack.link_issued(BUSINESS_ID)

    await through_to_procountor(page, shot, auth, "pc-order-3")
    await log_in_at_procountor(page, shot)
    await sign_in(page, "anna")
    await expect(page.get_by_role("heading", level=1)).to_have_text(
        "Only an admin can connect this company"
    )
    await expect(page.get_by_role("main")).to_contain_text("erik@contoso-demo.fi")
    await shot(page, "not-an-admin")
    await not_connected(pages_stack)


async def test_an_admin_of_the_existing_environment_joins_it(
    pages_stack: PagesStack, page: Page, shot: Shot
) -> None:
    """Anna is admin of the company's environment: the same flow joins it, no new one."""
    auth = pages_stack.auth
    await page.goto(f"{auth}/signin")
    await sign_in(page, "anna")
    csrf = (await (await page.request.get(f"{auth}/me")).json())["csrf_token"]
    created = await page.request.post(
        f"{auth}/v1/environments",
        data={
            "country": "FI",
            "business_id": BUSINESS_ID,
            "official_name": "Virtanen Group Oy",
            "company_email": "anna@virtanen-demo.fi",
        },
        headers={"X-CSRF-Token": csrf},
    )
    assert created.status == 201
    environment_id = (await created.json())["environment"]["id"]
    await procountor_company(pages_stack)
    await pages_stack.publish_activation(**activation("pc-order-4"))
    await pages_stack.link_issued(BUSINESS_ID)

    await through_to_procountor(page, shot, auth, "pc-order-4")
    await log_in_at_procountor(page, shot)
    await expect(page.get_by_role("heading", level=1)).to_have_text(
        "Connect Procountor to your environment"
    )
    await expect(page.get_by_role("main")).to_contain_text("Virtanen Group Oy")
    await expect(page.get_by_label("VAT ID")).to_have_value("FI01120389")
    await page.get_by_label("I have read and accept").check()
    await shot(page, "join-existing-environment")
    await page.get_by_role("button", name="Continue").click()
    await page.get_by_role("button", name="Confirm connection").click()
    await expect(page.get_by_role("heading", level=1)).to_have_text(
        "Procountor was successfully connected to Virtanen Group Oy environment"
    )
    await shot(page, "connected")

    activated = await pages_stack.activated(BUSINESS_ID)
    assert activated.data["environment_id"] == environment_id
    mine = await page.request.get(f"{auth}/v1/environments")
    assert [item["id"] for item in await mine.json()] == [environment_id]
    seen = await page.request.get(f"{auth}/v1/connections/{activated.data['connection_id']}")
    assert (await seen.json())["status"] == "configuring"
