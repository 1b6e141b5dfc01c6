"""Netvisor -> planning (seed 000) in a real browser: the sandbox's Netvisor and IdPs, auth
as a process, PostgreSQL, the Kafka protocol. Each test ends with the connection over HTTP
and its events on Kafka, and leaves a screenshot per step."""

from __future__ import annotations

import re
from typing import Any

import pytest
from browser_helpers import PagesStack, Shot, sign_in
from playwright.async_api import Page, expect

pytestmark = [pytest.mark.wire, pytest.mark.browser]

BUSINESS_ID = "0112038-9"
COMPANY = "Virtanen Demo Oy"
CUSTOMER_ID = "NV_1001_2002"
CUSTOMER_KEY = "nv-customer-key-0001"


def activation(store_reference: str, **changes: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "provider": "netvisor",
        "business_id": BUSINESS_ID,
        "country": "FI",
        "company_name": COMPANY,
        "requested_by": {"email": "anna@virtanen-demo.fi", "name": "Anna Virtanen"},
        "product": "planning",
        "store_reference": store_reference,
    }
    data.update(changes)
    return data


async def netvisor_customer(stack: PagesStack) -> None:
    await stack.add_tenant(
        vendor="netvisor",
        tenant_id=CUSTOMER_ID,
        business_id=BUSINESS_ID,
        name=COMPANY,
        credentials={
            "customer_key": CUSTOMER_KEY,
            "partner_id": "LEDGERLINK_DEMO",
            "partner_key": "demo-partner-key",
        },
    )


async def test_netvisor_activation_from_the_store_to_the_environment(
    pages_stack: PagesStack, page: Page, shot: Shot
) -> None:
    """The browser arrives before the event; a wrong key is shown next to its field; the
    connection ends configuring with the key in the vault; the link is then used up."""
    await netvisor_customer(pages_stack)
    await pages_stack.set_financial_model("FI", BUSINESS_ID, True)
    auth = pages_stack.auth

    # The store sends the browser first: the page waits for the event.
    await page.goto(f"{auth}/activate/netvisor/nv-order-1")
    await expect(page.get_by_role("heading", level=1)).to_have_text("Getting your activation ready")
    await expect(page.locator("html")).to_have_attribute("lang", "en")
    await shot(page, "waiting-for-the-event")
    await pages_stack.publish_activation(**activation("nv-order-1"))

    # The event arrives: the page goes on by itself, to the mandatory sign-in.
    await expect(page.get_by_role("link", name="Sign in with Google")).to_be_visible()
    await shot(page, "sign-in")
    await sign_in(page, "anna")

    await expect(page.get_by_role("heading", level=1)).to_have_text("Choose the environment")
    await shot(page, "environment")
    await page.get_by_role("button", name="Create the environment").click()

    await expect(page.get_by_role("heading", level=1)).to_have_text(
        "Enter your Netvisor identifiers"
    )
    await page.get_by_label("Customer ID").fill(CUSTOMER_ID)
    await page.get_by_label("Customer key").fill("not-the-key")
    await shot(page, "identifiers")
    await page.get_by_role("button", name="Check and continue").click()

    # Netvisor refused the key (live call): the error is next to the key's field.
    key_error = page.locator("#customer_key-error")
    await expect(key_error).to_contain_text("Netvisor did not accept this customer key")
    await expect(page.get_by_label("Customer key")).to_have_attribute(
        "aria-describedby", re.compile("customer_key-error")
    )
    await expect(page.get_by_label("Customer key")).to_be_focused()
    await expect(page.get_by_role("alert")).to_contain_text("There is a problem")
    await expect(page.get_by_label("Customer ID")).to_have_value(CUSTOMER_ID)
    assert "not-the-key" not in await page.content()
    await shot(page, "wrong-key-next-to-its-field")

    await page.get_by_label("Customer key").fill(CUSTOMER_KEY)
    await page.get_by_role("button", name="Check and continue").click()
    await expect(page.get_by_role("heading", level=1)).to_have_text("Read and accept the terms")
    await page.get_by_role("button", name="Connect").click()
    await expect(page.locator("#accept_terms-error")).to_contain_text("Accept the terms")
    await shot(page, "terms-not-accepted")
    await page.get_by_label("I have read and accept").check()
    await page.get_by_role("button", name="Connect").click()

    await expect(page.get_by_role("heading", level=1)).to_have_text(
        f"Netvisor was successfully connected to {COMPANY} environment"
    )
    await shot(page, "connected")
    # A few seconds later the page goes on to the environment's own address.
    await expect(page).to_have_url(re.compile(r"/environments/virtanen-demo-oy$"), timeout=15_000)
    await expect(page.get_by_role("heading", level=1)).to_have_text(COMPANY)
    await shot(page, "environment-page")

    activated = await pages_stack.activated(BUSINESS_ID)
    connection_id = activated.data["connection_id"]
    assert activated.data["provider"] == "netvisor"
    assert CUSTOMER_KEY not in activated.value.decode()
    # Over HTTP: the person sees it configuring; the token service hands out the key.
    seen = await page.request.get(f"{auth}/v1/connections/{connection_id}")
    assert seen.status == 200
    assert (await seen.json())["status"] == "configuring"
    credential = await pages_stack.connection(connection_id)
    assert credential["kind"] == "netvisor"
    assert credential["secrets"] == {"customer_key": CUSTOMER_KEY}
    assert credential["attributes"]["customer_id"] == CUSTOMER_ID

    # The e-mailed link is used up now.
    link = await pages_stack.link_issued(BUSINESS_ID)
    assert link.data["connection_id"] == connection_id
    await page.goto(link.data["url"])
    await expect(page.get_by_role("heading", level=1)).to_have_text(
        "This activation is already finished"
    )
    await shot(page, "used-link")


async def test_the_persons_existing_environment_is_selected(
    pages_stack: PagesStack, page: Page, shot: Shot
) -> None:
    """Anna's e-mail belongs to the environment of the business ID Netvisor sent: it is
    selected, and the connection joins it (no second environment)."""
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
            "subdomain": "virtanen-group",
        },
        headers={"X-CSRF-Token": csrf},
    )
    assert created.status == 201
    environment_id = (await created.json())["environment"]["id"]
    await netvisor_customer(pages_stack)
    await pages_stack.set_financial_model("FI", BUSINESS_ID, True)
    await pages_stack.publish_activation(**activation("nv-order-4"))
    await pages_stack.link_issued(BUSINESS_ID)

    await page.goto(f"{auth}/activate/netvisor/nv-order-4")
    await expect(page.get_by_role("heading", level=1)).to_have_text("Choose the environment")
    await expect(page.get_by_label("Virtanen Group Oy")).to_be_checked()
    await shot(page, "existing-environment-selected")
    await page.get_by_role("button", name="Continue").click()
    await page.get_by_label("Customer ID").fill(CUSTOMER_ID)
    await page.get_by_label("Customer key").fill(CUSTOMER_KEY)
    await page.get_by_role("button", name="Check and continue").click()
    await page.get_by_label("I have read and accept").check()
    await page.get_by_role("button", name="Connect").click()
    await expect(page.get_by_role("heading", level=1)).to_have_text(
        "Netvisor was successfully connected to Virtanen Group Oy environment"
    )
    await shot(page, "connected")

    activated = await pages_stack.activated(BUSINESS_ID)
    assert activated.data["environment_id"] == environment_id
    mine = await page.request.get(f"{auth}/v1/environments")
    assert [item["id"] for item in await mine.json()] == [environment_id]
    seen = await page.request.get(f"{auth}/v1/connections/{activated.data['connection_id']}")
    assert (await seen.json())["status"] == "configuring"


async def test_without_the_financial_model_the_activation_cannot_complete(
    pages_stack: PagesStack, page: Page, shot: Shot
) -> None:
    await netvisor_customer(pages_stack)
    await pages_stack.publish_activation(**activation("nv-order-2"))
    link = await pages_stack.link_issued(BUSINESS_ID)

    await page.goto(f"{pages_stack.auth}/activate/netvisor/nv-order-2")
    await expect(page.get_by_role("heading", level=1)).to_have_text(
        "Activate the financial model first"
    )
    await expect(page.get_by_role("main")).to_contain_text("In the Netvisor Store, activate")
    await shot(page, "financial-model-missing")

    # Nothing was connected: the connection still awaits authorization.
    response = await pages_stack.http.post(
        f"{pages_stack.auth}/internal/v1/connections/{link.data['connection_id']}/credentials",
        headers={"Authorization": "Bearer development-only-service-token"},
    )
    assert response.status_code == 409
    assert response.json()["detail"]["reason_code"] == "connection_pending_authorization"
    assert pages_stack.reader.matching(lambda seen: "activated" in (seen.type or "")) == []


async def test_an_expired_link_says_what_to_do(
    pages_stack: PagesStack, page: Page, shot: Shot
) -> None:
    await pages_stack.publish_activation(**activation("nv-order-3"))
    link = await pages_stack.link_issued(BUSINESS_ID)

    await pages_stack.advance_clock(73 * 3600)
    await page.goto(link.data["url"])
    await expect(page.get_by_role("heading", level=1)).to_have_text("This link has expired")
    await expect(page.get_by_role("main")).to_contain_text("Start the activation again")
    await shot(page, "expired-link")

    response = await pages_stack.http.post(
        f"{pages_stack.auth}/internal/v1/connections/{link.data['connection_id']}/credentials",
        headers={"Authorization": "Bearer development-only-service-token"},
    )
    assert response.status_code == 409
    assert pages_stack.reader.matching(lambda seen: "activated" in (seen.type or "")) == []


async def test_the_page_says_so_when_the_event_never_comes(
    pages_stack: PagesStack, page: Page, shot: Shot
) -> None:
    await page.goto(f"{pages_stack.auth}/activate/netvisor/nv-never")
    await expect(page.get_by_role("heading", level=1)).to_have_text("Getting your activation ready")
    await shot(page, "waiting")
    # Keyboard first: the skip link is the first stop.
    await page.keyboard.press("Tab")
    await expect(page.get_by_role("link", name="Skip to main content")).to_be_focused()
    await pages_stack.advance_clock(120)
    # The script asks again and is told to stop waiting: no reload loop, one page.
    await expect(page.get_by_role("heading", level=1)).to_have_text(
        "The activation has not arrived"
    )
    await expect(page.get_by_role("button", name="Check again")).to_be_visible()
    await shot(page, "gave-up")

    # The language switch on every page: Finnish, and the page says so in its lang.
    await page.get_by_role("link", name="Suomi").click()
    await expect(page.locator("html")).to_have_attribute("lang", "fi")
    await expect(page.get_by_role("heading", level=1)).to_have_text("Aktivointi ei ole saapunut")
    await expect(page.get_by_role("button", name="Tarkista uudelleen")).to_be_visible()
    await shot(page, "gave-up-in-finnish")

    # A form posted without this browser's CSRF token is refused with a page.
    forged = await pages_stack.http.post(
        f"{pages_stack.auth}/activate/netvisor/nv-never/identifiers",
        data={"customer_id": "NV_1", "customer_key": "x"},
    )
    assert forged.status_code == 400
    assert "This form has expired" in forged.text
    assert pages_stack.reader.matching(lambda seen: "activation" in (seen.type or "")) == []
