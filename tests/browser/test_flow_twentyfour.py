"""Seed 004 in a real browser: 24SevenOffice -> reconciliation. "API keys", the
24SevenOffice tab: the integration user's e-mail and password, "Done" logs in live, the
transaction type appears (the vendor's list), "Import companies" lists every client the user
was given access to, each red until its setup wizard is done. A refused login is shown next
to the password and a further attempt is held back (24SevenOffice throttles logins)."""

from __future__ import annotations

import json
import re
from typing import Any

import httpx
import pytest
from browser.flows_b_support import APPLICATION_ID, SERVICE_TOKEN, FlowStage, flow_stage
from playwright.async_api import expect
from wire_helpers import EventReader

from ledgerlink.cli.stack import Stack
from ledgerlink.sandbox.vendors import twentyfour as tf
from ledgerlink.sandbox.world import Tenant, World
from ledgerlink.shared.testing import KafkaBackend

pytestmark = [pytest.mark.wire]

USER, PASSWORD = "integrasjon@regnskap-demo.no", "Integrasjon-passord-1"
ACTIVATED = "ledgerlink.connection.activated.v1"


def _prepare(world: World, tenants: list[Tenant]) -> None:
    tenants.extend(world.add_tenant("twentyfour", lines=5) for _ in range(3))
    state = tf.state_of(world)
    state.register_application(APPLICATION_ID)
    # The integration user was given access to the first two clients only (seed 004 step 1).
    state.add_integration_user(USER, PASSWORD, [t.tenant_id for t in tenants[:2]])


async def _keys_page(stage: FlowStage) -> dict[str, Any]:
    await stage.sign_in("anna", "/me")
    created = await stage.json("POST", "/v1/organisations", {"name": "Regnskap Demo AS"})
    organisation: dict[str, Any] = created.get("organisation", created)
    keys = f"{stage.auth}/connect/24sevenoffice?organisation_id={organisation['id']}"
    await stage.page.goto(keys)
    await expect(stage.page.get_by_role("heading", level=1)).to_have_text("API keys")
    await expect(stage.page.get_by_role("heading", name="24SevenOffice")).to_be_visible()
    return organisation


async def _credential(stage: FlowStage, connection_id: str) -> dict[str, Any]:
    async with httpx.AsyncClient(timeout=15) as client:
        response = await client.post(
            f"{stage.auth}/internal/v1/connections/{connection_id}/credentials",
            headers={"Authorization": f"Bearer {SERVICE_TOKEN}"},
        )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_api_keys_login_transaction_type_import_and_setup(
    stack: Stack, reader: EventReader, kafka_backend: KafkaBackend, request: pytest.FixtureRequest
) -> None:
    tenants: list[Tenant] = []
    async with flow_stage(
        stack,
        reader,
        kafka_backend.bootstrap_servers,
        request.node.name,
        lambda world, auth: _prepare(world, tenants),
    ) as stage:
        page = stage.page
        await _keys_page(stage)
        await expect(page.get_by_label("Transaction type")).to_have_count(0)
        await stage.shot("api-keys-24sevenoffice")

        await page.get_by_label("Integration user's e-mail address").fill(USER)
        await page.get_by_label("Password").fill(PASSWORD)
        await page.get_by_role("button", name="Done").click()
        await expect(page.locator("#login-status")).to_contain_text(USER)
        types = page.get_by_label("Transaction type")
        await expect(types).to_be_visible()  # appears once the login worked
        await expect(types.locator("option")).to_have_count(7)  # "Choose" and the vendor's six
        await stage.shot("logged-in-transaction-type")
        await types.select_option("6")
        await page.get_by_role("button", name="Save transaction type").click()
        await expect(page.get_by_label("Transaction type")).to_have_value("6")

        await page.get_by_role("button", name="Import companies").click()
        await expect(page.get_by_role("status")).to_contain_text("Companies imported")
        rows = page.locator("tr[data-connection-id]")
        await expect(rows).to_have_count(2)  # only the clients the user was given
        for row in range(2):
            await expect(rows.nth(row).locator(".tag")).to_have_text(re.compile("Not set up", re.I))
            await expect(rows.nth(row).locator(".tag")).to_have_class(re.compile("tag--refused"))
        await expect(page.get_by_text(tenants[2].company.name)).to_have_count(0)
        await stage.shot("companies-not-set-up")

        ids = [str(await rows.nth(i).get_attribute("data-connection-id")) for i in range(2)]
        for connection_id in ids:
            connection = await stage.connection(connection_id)
            assert connection["status"] == "configuring"
            assert connection["provider"] == "24sevenoffice"
            event = await stage.activated(connection_id)
            assert event["company_name"] == connection["company_name"]
            # The chosen transaction type travels to the importer with the activation.
            assert event["transaction_type"] == "6"
        # The token service logs in itself and hands out a live session, never the password.
        credential = await _credential(stage, ids[0])
        assert credential["kind"] == "twentyfour_session"
        assert set(credential["secrets"]) == {"session_id"}
        assert PASSWORD not in json.dumps(credential)
        assert credential["attributes"]["transaction_type"] == "6"
        assert credential["attributes"]["client"] in {t.tenant_id for t in tenants[:2]}

        # The setup wizard: wrong answers next to their fields, then done: active.
        first = (await stage.connection(ids[0]))["company_name"]
        await page.get_by_role("link", name=first).click()
        await expect(page.get_by_role("heading", level=1)).to_have_text("Set up reconciliation")
        await stage.shot("setup-wizard")
        await page.get_by_label("First period to reconcile").fill("2025-13")
        await page.get_by_label("Accounts to reconcile").fill("1920, 19x0")
        await page.get_by_role("button", name="Complete setup").click()
        await expect(page.locator("#start_period-error")).to_contain_text("YYYY-MM")
        await expect(page.locator("#accounts-error")).to_contain_text("19x0")
        await expect(page.get_by_label("Accounts to reconcile")).to_have_value("1920, 19x0")
        await stage.shot("setup-errors")
        await page.get_by_label("First period to reconcile").fill("2025-01")
        await page.get_by_label("Accounts to reconcile").fill("1920, 1500")
        await page.get_by_role("button", name="Complete setup").click()
        done = page.locator(f"tr[data-connection-id='{ids[0]}'] .tag")
        await expect(done).to_have_text(re.compile("Active", re.I))
        await expect(page.locator(f"tr[data-connection-id='{ids[1]}'] .tag")).to_have_class(
            re.compile("tag--refused")
        )
        await stage.shot("company-active")


async def test_a_refused_login_is_shown_and_the_next_attempt_is_held_back(
    stack: Stack, reader: EventReader, kafka_backend: KafkaBackend, request: pytest.FixtureRequest
) -> None:
    tenants: list[Tenant] = []
    async with flow_stage(
        stack,
        reader,
        kafka_backend.bootstrap_servers,
        request.node.name,
        lambda world, auth: _prepare(world, tenants),
    ) as stage:
        page = stage.page
        state = tf.state_of(stage.sandbox.world)
        organisation = await _keys_page(stage)
        await page.get_by_label("Integration user's e-mail address").fill(USER)
        await page.get_by_label("Password").fill("wrong password")
        await page.get_by_role("button", name="Done").click()
        error = page.locator("#password-error")
        await expect(error).to_contain_text("refused the e-mail address or password")
        await expect(page.get_by_label("Password")).to_have_attribute(
            "aria-describedby", re.compile("password-error")
        )
        await expect(page.get_by_label("Integration user's e-mail address")).to_have_value(USER)
        await expect(page.get_by_label("Transaction type")).to_have_count(0)
        await stage.shot("login-refused")
        assert state.login_count == 1

        # At once again, with the right password: held back, 24SevenOffice not asked.
        await page.get_by_label("Password").fill(PASSWORD)
        await page.get_by_role("button", name="Done").click()
        await expect(error).to_contain_text(re.compile(r"wait \d+ seconds before trying again"))
        await stage.shot("login-held-back")
        assert state.login_count == 1
        await expect(page.get_by_label("Transaction type")).to_have_count(0)

        # Nothing was connected: no connection over HTTP, no event on Kafka.
        response = await page.request.get(
            f"{stage.auth}/v1/organisations/{organisation['id']}/administrations"
        )
        assert response.ok, await response.text()
        assert await response.json() == []
        assert not stage.reader.matching(lambda record: record.type == ACTIVATED)
