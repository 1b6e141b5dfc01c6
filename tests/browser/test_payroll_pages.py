"""The journal exporter's payroll pages in a real browser, signed in through auth.

Auth, the sandbox (its Google and Microsoft stand-ins) and the journal exporter run as
processes on PostgreSQL and the Kafka broker; the exporter asks auth (over HTTP, with its
service token) who the browser's session cookie belongs to and what the person is in the
environment owning the mapping's Nmbrs and Visma.net connections.

* Signed out: to auth's sign-in page, with the page to come back to.
* Anna (admin of the environment) gets a mapping form error next to its field, a period
  error next to its field in the send-journals form, and changes the mapping (version 2).
* Ola (a member) sees the mapping's status per run and period.
* Erik (not a member) is refused the mapping and does not see it listed.

The services here listen on different ports of one host, so auth's cookie reaches the
exporter (cookies ignore ports) but auth's sign-in returns to its own host's path: in a
deployment both are one site (the ingress sends ``/payroll`` to the exporter). The test
opens the exporter's page again after signing in.
"""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import httpx
import pytest
from auth_store import stored_connections
from browser_helpers import SERVICE_TOKEN, PagesStack, Shot, sign_in, sign_in_with
from playwright.async_api import Browser, Page, expect
from wire_helpers import PlainKafkaClient, eventually

from ledgerlink.journal_exporter.storage.models import PayrollPosting, PostingStatus
from ledgerlink.journal_exporter.storage.repository import PayrollPostingRepository
from ledgerlink.shared.db import Database, create_engine
from ledgerlink.shared.topics import Topic

pytestmark = [pytest.mark.wire, pytest.mark.browser]

API_TOKEN = "browser-payroll-operator-token-0123456789"
BUSINESS_ID = "0112038-9"


async def _start_exporter(pages: PagesStack) -> str:
    auth = pages.auth
    pages.stack.migrate("journal-exporter")
    pages.stack.start(
        "journal-exporter",
        {
            "LEDGERLINK_JOURNAL_EXPORTER_TOKEN_SERVICE__URL": auth,
            "LEDGERLINK_JOURNAL_EXPORTER_TOKEN_SERVICE__TOKEN": SERVICE_TOKEN,
            "LEDGERLINK_JOURNAL_EXPORTER_PAYROLL__PAGES_ENABLED": "true",
            "LEDGERLINK_JOURNAL_EXPORTER_PAYROLL__SIGNIN__AUTH_URL": auth,
            "LEDGERLINK_JOURNAL_EXPORTER_PAYROLL__SIGNIN__SIGNIN_URL": f"{auth}/signin",
            "LEDGERLINK_JOURNAL_EXPORTER_PAYROLL__API_TOKENS": f'{{"ops": "{API_TOKEN}"}}',
        },
    )
    await pages.stack.wait_ready("journal-exporter", timeout=180)
    return pages.stack.services["journal-exporter"].url


async def _sign_in_at_auth(page: Page, auth: str, provider: str, username: str) -> None:
    await page.goto(f"{auth}/signin")
    await sign_in_with(page, provider, username)
    await expect(page.get_by_role("heading", level=1)).to_have_text("You are signed in")


async def _environment_with_connections(pages: PagesStack, page: Page) -> dict[str, str]:
    """Anna's environment (she is signed in on ``page``) and its Nmbrs and Visma.net
    connections (activations of its business ID join it)."""
    auth = pages.auth
    csrf = (await (await page.request.get(f"{auth}/me")).json())["csrf_token"]
    created = await page.request.post(
        f"{auth}/v1/environments",
        data={
            "country": "FI",
            "business_id": BUSINESS_ID,
            "official_name": "Virtanen Demo Oy",
            "company_email": "anna@virtanen-demo.fi",
        },
        headers={"X-CSRF-Token": csrf},
    )
    assert created.status == 201, await created.text()
    for provider in ("nmbrs", "visma_net"):
        await pages.publish_activation(
            provider=provider,
            business_id=BUSINESS_ID,
            country="FI",
            company_name="Virtanen Demo Oy",
            requested_by={"email": "anna@virtanen-demo.fi", "name": "Anna Virtanen"},
            product="planning",
        )

    async def both() -> list[dict[str, Any]] | None:
        rows = await stored_connections(pages.stack, BUSINESS_ID)
        return rows if len(rows) == 2 else None

    rows = await eventually(both, timeout=60, what="the Nmbrs and Visma.net connections")
    return {
        "environment": (await created.json())["environment"]["id"],
        "csrf": csrf,
        **{row["provider"]: row["id"] for row in rows},
    }


async def _authorized(pages: PagesStack, ids: dict[str, str]) -> None:
    """What auth publishes once each account's authorization completes (the Nmbrs and
    Visma.net flows themselves are proven in tests/browser/test_flow_nmbrs.py):
    the exporter offers only accounts it has seen activated."""
    async with PlainKafkaClient(
        pages.kafka.bootstrap_servers, pages.stack.config.topic_prefix
    ) as client:
        for provider in ("nmbrs", "visma_net"):
            await client.send(
                Topic.CONNECTIONS,
                {
                    "connection_id": ids[provider],
                    "environment_id": ids["environment"],
                    "provider": provider,
                    "business_id": BUSINESS_ID,
                    "company_name": "Virtanen Demo Oy",
                },
                key=BUSINESS_ID,
                ce_type="ledgerlink.connection.activated.v1",
            )


async def _posted_run(pages: PagesStack, mapping: dict[str, Any]) -> None:
    """One posted run in the exporter's store (posting itself is proven over the wire in
    tests/test_wire_payroll.py; this page test shows what the store holds)."""
    database = Database(create_engine(pages.stack.config.database_urls["journal-exporter"]))
    now = datetime(2026, 1, 25, tzinfo=UTC)
    try:
        async with database.transaction() as session:
            await PayrollPostingRepository(session).add_if_new(
                PayrollPosting(
                    posting_key=uuid.uuid4().hex,
                    mapping_id=uuid.UUID(mapping["mapping_id"]),
                    mapping_version=1,
                    nmbrs_company_id=mapping["nmbrs_company_id"],
                    run_id="2025-1",
                    run_period="2025-01",
                    period="2025-01",
                    kind="normal",
                    reference="RUN-2025-01",
                    status=PostingStatus.POSTED,
                    line_count=2,
                    total_debit=Decimal("1000.00"),
                    source_hash="0" * 64,
                    source={},
                    batch_number="000123",
                    trigger="test",
                    created_at=now,
                    finished_at=now,
                )
            )
    finally:
        await database.dispose()


async def test_payroll_pages_need_auths_sign_in_and_environment_membership(
    pages_stack: PagesStack, page: Page, browser: Browser, shot: Shot
) -> None:
    auth = pages_stack.auth
    exporter = await _start_exporter(pages_stack)

    # Signed out: to auth's sign-in page, which knows the page to come back to.
    await page.goto(f"{exporter}/payroll")
    await expect(page).to_have_url(re.compile(re.escape(f"{auth}/signin?next=%2Fpayroll")))
    await shot(page, "signed-out-to-sign-in")
    await sign_in(page, "anna")
    await expect(page).not_to_have_url(re.compile(r"/signin"))

    ids = await _environment_with_connections(pages_stack, page)
    # Ola signs in once (so he can be added), then Anna adds him as a member.
    ola_context = await browser.new_context(locale="en-GB")
    ola = await ola_context.new_page()
    await _sign_in_at_auth(ola, auth, "Google", "ola")
    added = await page.request.post(
        f"{auth}/v1/environments/{ids['environment']}/members",
        data={"email": "ola.nordmann@gmail-demo.test", "role": "member"},
        headers={"X-CSRF-Token": ids["csrf"]},
    )
    assert added.status == 201, await added.text()

    await _authorized(pages_stack, ids)

    # Anna, an admin of the environment: the form offers her connections by company name
    # (once the exporter has read their connection.activated events) ...
    async def form_offering_her_connections() -> bool | None:
        await page.goto(f"{exporter}/payroll/mappings/new")
        return True if await page.locator("select#vismanet_connection_id").count() else None

    await eventually(
        form_offering_her_connections, timeout=60, what="the form offering Anna's connections"
    )
    await expect(page.get_by_role("heading", level=1)).to_have_text("New mapping")
    nmbrs_choice = page.get_by_label("Visma Nmbrs connection")
    await expect(nmbrs_choice.locator("option")).to_contain_text(
        ["Choose a connection", "Virtanen Demo Oy"]
    )
    # ... and a form error shows next to its field.
    await page.get_by_label("Name of the mapping").fill("Virtanen payroll")
    await nmbrs_choice.select_option(ids["nmbrs"])
    await page.get_by_label("Visma Nmbrs company").fill("42")
    await page.get_by_label("Visma.net connection").select_option(ids["visma_net"])
    await page.get_by_label("Visma.net company (administration)").fill("1234567")
    await page.get_by_label("First period sent automatically").fill("January")
    await page.get_by_role("button", name="Save mapping").click()
    await expect(page.get_by_role("alert")).to_contain_text("There is a problem")
    error = page.locator("#start_period-error")
    await expect(error).to_contain_text("Enter the period as YYYY-MM")
    await expect(page.get_by_label("First period sent automatically")).to_have_attribute(
        "aria-describedby", re.compile("start_period-error")
    )
    await shot(page, "form-error-next-to-its-field")
    await page.get_by_label("First period sent automatically").fill("2025-01")
    await page.get_by_role("button", name="Save mapping").click()
    await expect(page.get_by_role("heading", level=1)).to_contain_text("Virtanen payroll")
    mapping_url = page.url
    mapping_id = mapping_url.rsplit("/", 1)[-1]

    # Anna sends journals from the mapping's page: a wrong period shows next to its field
    # (the sending itself, against Nmbrs and Visma.net: tests/test_payroll_export.py).
    await page.get_by_label("First period").fill("2025-13")
    await page.get_by_label("Last period").fill("2025-03")
    await page.get_by_role("button", name="Send journals").click()
    await expect(page.get_by_role("alert")).to_contain_text("There is a problem")
    await expect(page.locator("#period_from-error")).to_contain_text("Enter the period as YYYY-MM")
    await expect(page.get_by_label("First period")).to_have_attribute(
        "aria-describedby", re.compile("period_from-error")
    )
    await expect(page.get_by_label("Last period")).to_have_value("2025-03")
    await shot(page, "send-journals-error-next-to-its-field")
    # ... and changes the mapping: the form shows it as it is, saving makes version 2.
    await page.get_by_role("link", name="Change this mapping").click()
    await expect(page.get_by_role("heading", level=1)).to_have_text("Change Virtanen payroll")
    await expect(page.get_by_label("Visma Nmbrs company")).to_have_value("42")
    await page.get_by_label("Name of the mapping").fill("Virtanen payroll 2025")
    await page.get_by_role("button", name="Save a new version").click()
    await expect(page.get_by_role("heading", level=1)).to_have_text("Virtanen payroll 2025")
    await expect(page.get_by_text("version 2", exact=False)).to_be_visible()
    assert page.url == mapping_url
    await shot(page, "mapping-changed-version-2")
    async with httpx.AsyncClient(timeout=20) as http:
        saved = await http.get(
            f"{exporter}/v1/payroll/mappings/{mapping_id}",
            headers={"Authorization": f"Bearer {API_TOKEN}"},
        )
    assert saved.status_code == 200, saved.text
    assert saved.json()["created_by"] == "anna@virtanen-demo.fi"
    await _posted_run(pages_stack, saved.json())

    # Ola, a member: sees the status of each run and period.
    await ola.goto(mapping_url)
    await expect(ola.get_by_role("heading", level=1)).to_contain_text("Virtanen payroll")
    await expect(ola.get_by_text("Posted").first).to_be_visible()
    await expect(ola.get_by_text("2025-01").first).to_be_visible()
    await expect(ola.get_by_text("Signed in as ola.nordmann@gmail-demo.test")).to_be_visible()
    await shot(ola, "member-sees-status")
    await ola_context.close()

    # Erik, not a member: refused, and the list does not show the mapping.
    erik_context = await browser.new_context(locale="en-GB")
    erik = await erik_context.new_page()
    await _sign_in_at_auth(erik, auth, "Microsoft", "erik")
    answer = await erik.goto(mapping_url)
    assert answer is not None
    assert answer.status == 403
    await expect(erik.get_by_role("heading", level=1)).to_have_text("You cannot see this mapping")
    await shot(erik, "non-member-refused")
    await erik.goto(f"{exporter}/payroll")
    await expect(erik.get_by_text("There are no mappings yet.")).to_be_visible()
    await expect(erik.get_by_text("Virtanen payroll")).to_have_count(0)
    await erik_context.close()
