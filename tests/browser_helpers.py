"""Helpers of the browser tests (fixtures in ``tests/browser/conftest.py``)."""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.async_api import Page, expect
from wire_helpers import EventReader, PlainKafkaClient, Seen

from ledgerlink.cli.stack import Stack
from ledgerlink.shared.testing import KafkaBackend
from ledgerlink.shared.topics import Topic

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "var" / "test-artifacts" / "browser"
SERVICE_TOKEN = "development-only-service-token"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
ACTIVATION = "ledgerlink.activation.requested.v1"
ACTIVATED = "ledgerlink.connection.activated.v1"
LINK_ISSUED = "ledgerlink.connection.activation_link_issued.v1"


def chromium_path() -> str:
    """Debian's Chromium (``playwright install`` cannot download browsers here)."""
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        pytest.fail("chromium is not installed: run scripts/bootstrap (it installs Debian's)")
    return found


@dataclass
class PagesStack:
    """The running stack of a browser test and what tests do with it."""

    stack: Stack
    kafka: KafkaBackend
    reader: EventReader
    http: httpx.AsyncClient
    auth_env: dict[str, str] = field(default_factory=dict)

    @property
    def auth(self) -> str:
        return self.stack.services["auth"].url

    @property
    def sandbox(self) -> str:
        return self.stack.services["sandbox"].url

    async def start(self, name: str) -> None:
        """Start one more service (migrated first), e.g. the importer."""
        self.stack.migrate(name)
        self.stack.start(name)
        await self.stack.wait_ready(name)

    async def add_tenant(self, **tenant: Any) -> dict[str, Any]:
        """A customer at a sandbox vendor (``POST /_sandbox/tenants``)."""
        response = await self.http.post(f"{self.sandbox}/_sandbox/tenants", json=tenant)
        assert response.status_code == 201, response.text
        body: dict[str, Any] = response.json()
        return body

    async def publish_activation(self, **activation: Any) -> str:
        """An upstream's ``activation.requested.v1``, sent by a plain Kafka client."""
        async with PlainKafkaClient(
            self.kafka.bootstrap_servers, self.stack.config.topic_prefix
        ) as client:
            return await client.send(
                Topic.ACTIVATIONS,
                activation,
                key=str(activation["business_id"]),
                ce_type=ACTIVATION,
            )

    async def set_financial_model(self, country: str, business_id: str, active: bool) -> None:
        response = await self.http.put(
            f"{self.auth}/internal/v1/financial-models/{country}/{business_id}",
            json={"active": active},
            headers={"Authorization": f"Bearer {SERVICE_TOKEN}"},
        )
        assert response.status_code == 204, response.text

    async def advance_clock(self, seconds: float) -> None:
        """Move auth's clock forward (never a sleep)."""
        response = await self.http.post(
            f"{self.auth}/internal/v1/clock/advance",
            json={"seconds": seconds},
            headers={"Authorization": f"Bearer {SERVICE_TOKEN}"},
        )
        assert response.status_code == 200, response.text

    async def connection(self, connection_id: str) -> dict[str, Any]:
        """The connection as the token service sees it (over HTTP): 200 means usable."""
        response = await self.http.post(
            f"{self.auth}/internal/v1/connections/{connection_id}/credentials",
            headers={"Authorization": f"Bearer {SERVICE_TOKEN}"},
        )
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    async def activated(self, business_id: str) -> Seen:
        """Wait for ``connection.activated.v1`` of this company on the connections topic."""
        topic = self.reader.topic(Topic.CONNECTIONS)
        [seen] = await self.reader.wait_for(
            lambda s: s.topic == topic and s.type == ACTIVATED and s.key == business_id
        )
        return seen

    async def link_issued(self, business_id: str) -> Seen:
        topic = self.reader.topic(Topic.CONNECTIONS)
        [seen] = await self.reader.wait_for(
            lambda s: s.topic == topic and s.type == LINK_ISSUED and s.key == business_id
        )
        return seen


def auth_settings(sandbox: str, **extra: str) -> dict[str, str]:
    """Auth's settings for the browser tests (everything else: the stack's wiring)."""
    return {
        "LEDGERLINK_AUTH_PAGES__CLOCK_CONTROL": "true",
        "LEDGERLINK_AUTH_PAGES__WAIT_SECONDS": "60",
        "LEDGERLINK_AUTH_PAGES__POLL_SECONDS": "0.3",
        "LEDGERLINK_AUTH_PAGES__NETVISOR__BASE_URL": f"{sandbox}/netvisor",
        "LEDGERLINK_AUTH_PAGES__PROCOUNTOR__BASE_URL": f"{sandbox}/procountor",
        "LEDGERLINK_AUTH_OAUTH_PROVIDERS": json.dumps(
            {
                "procountor": {
                    "client_id": "ledgerlink-procountor-dev",
                    "client_secret": "ledgerlink-procountor-dev-secret",
                    "token_url": f"{sandbox}/procountor/api/oauth/token",
                }
            }
        ),
        **extra,
    }


Shot = Callable[[Page, str], Awaitable[Path]]


async def sign_in(page: Page, username: str) -> None:
    """Finish a sign-in from auth's sign-in page or the IdP's page, as ``username``.

    On auth's page the first provider button is taken unless the page is already at the
    IdP; Microsoft users (``erik``) need ``sign_in_with(page, "Microsoft", ...)``.
    """
    await sign_in_with(page, "Google", username)


async def sign_in_with(page: Page, provider: str, username: str) -> None:
    if "/signin" in page.url and "sandbox" not in await page.title():
        await page.get_by_role("link", name=f"Sign in with {provider}").click()
    await expect(page.get_by_role("heading", name=re.compile("sandbox"))).to_be_visible()
    await page.locator(f"#user-{username}").check()
    await page.get_by_role("button", name="Sign in").click()
