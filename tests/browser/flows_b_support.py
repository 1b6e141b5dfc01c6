"""The stage of the Visma.net, Nmbrs and 24SevenOffice browser tests.

Auth runs as a process (PostgreSQL, Kafka), the vendor sandbox in the test's event loop
with a world each test prepares (its Visma users, 24SevenOffice clients, Nmbrs tokens), and
a real Chromium (Debian's ``chromium`` through Playwright) clicks through the pages. Every
step is saved as a screenshot under ``var/test-artifacts/browser/<test>/`` (gitignored, as
the shared harness's ``shot``; ``LEDGERLINK_BROWSER_ARTIFACTS`` moves it).

Kept beside the shared browser harness (``conftest.py`` of this folder, built with the
activation pages) rather than in it: these flows need a sandbox world of their own.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from playwright.async_api import Browser, Page, async_playwright, expect
from wire_helpers import EventReader, PlainKafkaClient

from ledgerlink.cli.stack import Stack
from ledgerlink.sandbox.config import SandboxConfig
from ledgerlink.sandbox.testing import RunningSandbox, running_sandbox
from ledgerlink.sandbox.world import World
from ledgerlink.shared.events import ImportCompletedV1, ImportCountsV1, Provider

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SERVICE_TOKEN = "browser-flows-service-token-0123456789abcdef"
#: Our interactive client at the sandbox's Visma Connect (registered by the tests).
VISMA_CLIENT_ID = "isv_ledgerlink_pages"
VISMA_CLIENT_SECRET = "pages-secret"
APPLICATION_ID = "24so-browser-application"
ACTIVATED = "ledgerlink.connection.activated.v1"
CONFIGURED = "ledgerlink.connection.configured.v1"


def artifacts_dir(test_name: str) -> Path:
    """Where a test's screenshots go."""
    base = Path(
        os.environ.get("LEDGERLINK_BROWSER_ARTIFACTS", ROOT / "var" / "test-artifacts" / "browser")
    )
    path = base / re.sub(r"[^A-Za-z0-9_.-]+", "_", test_name)
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True, exist_ok=True)
    return path


@dataclass
class FlowStage:
    """Auth, the sandbox, the browser and the event reader of one test."""

    auth: str
    sandbox: RunningSandbox
    page: Page
    reader: EventReader
    kafka_servers: str
    topic_prefix: str
    shots: Path
    steps: list[str] = field(default_factory=list)

    async def shot(self, name: str) -> Path:
        """A full-page screenshot of the current step."""
        self.steps.append(name)
        path = self.shots / f"{len(self.steps):02d}-{name}.png"
        await self.page.screenshot(path=str(path), full_page=True)
        assert path.stat().st_size > 0
        return path

    async def sign_in(self, username: str, next_path: str, provider: str = "google") -> None:
        """Sign in through the sandbox IdP in the browser, ending on ``next_path``."""
        page = self.page
        if next_path.startswith("/connect"):
            # The pages send a person who is not signed in to sign in first.
            await page.goto(f"{self.auth}{next_path}")
            await expect(page).to_have_url(re.compile(r"/signin\?next="))
        else:
            await page.goto(f"{self.auth}/signin?{urlencode({'next': next_path})}")
        label = "Google" if provider == "google" else "Microsoft"
        await page.get_by_role("link", name=f"Sign in with {label}").click()
        await page.locator(f"input[name=username][value={username}]").check()
        await page.get_by_role("button", name="Sign in").click()
        await expect(page).to_have_url(re.compile(re.escape(next_path.split("?")[0])))

    async def json(self, method: str, path: str, body: Any | None = None) -> Any:
        """A JSON call to auth as the signed-in person (CSRF token from /me)."""
        me = await self.page.request.get(f"{self.auth}/me")
        assert me.ok, await me.text()
        csrf = (await me.json())["csrf_token"]
        response = await self.page.request.fetch(
            f"{self.auth}{path}",
            method=method,
            headers={"X-CSRF-Token": csrf, "Content-Type": "application/json"},
            data=json.dumps(body) if body is not None else None,
        )
        assert response.status < 300, f"{method} {path}: {response.status} {await response.text()}"
        return await response.json()

    async def connection(self, connection_id: str) -> dict[str, Any]:
        """The connection as the person sees it over HTTP."""
        response = await self.page.request.get(f"{self.auth}/v1/connections/{connection_id}")
        assert response.ok, await response.text()
        body: dict[str, Any] = await response.json()
        return body

    async def activated(self, connection_id: str) -> dict[str, Any]:
        """The connection's ``connection.activated`` event on Kafka."""
        seen = await self.reader.wait_for(
            lambda record: (
                record.type == ACTIVATED and record.data.get("connection_id") == connection_id
            )
        )
        data: dict[str, Any] = seen[0].data
        return data

    async def complete_first_import(self, connection: dict[str, Any]) -> None:
        """The importer's answer, published by a plain Kafka client: the first import of
        the connection completed (auth then makes it ``active``)."""
        event = ImportCompletedV1(
            import_id=uuid.uuid4(),
            connection_id=uuid.UUID(connection["id"]),
            business_id=connection["business_id"],
            company_name=connection["company_name"],
            provider=Provider(connection["provider"]),
            outcome="imported",
            fiscal_year_start="2025-01-01",  # type: ignore[arg-type]
            fiscal_year_end="2025-12-31",  # type: ignore[arg-type]
            counts=ImportCountsV1(accounts=1, dimensions=0, objects=0, vouchers=1, lines=2),
            periods=("2025-01",),
            reconciliation_status="balanced",
        )
        async with PlainKafkaClient(self.kafka_servers, self.topic_prefix) as client:
            await client.send(
                "ledgerlink.imports",
                event.model_dump(mode="json"),
                key=connection["business_id"],
                ce_type=ImportCompletedV1.EVENT_TYPE,
            )
        await self.reader.wait_for(
            lambda record: (
                record.type == CONFIGURED and record.data.get("connection_id") == connection["id"]
            )
        )


def _auth_env(sandbox: str) -> dict[str, str]:
    return {
        "LEDGERLINK_AUTH_SIGNIN__GOOGLE__DISCOVERY_URL": (
            f"{sandbox}/google/.well-known/openid-configuration"
        ),
        "LEDGERLINK_AUTH_SIGNIN__MICROSOFT__DISCOVERY_URL": (
            f"{sandbox}/microsoft/organizations/v2.0/.well-known/openid-configuration"
        ),
        "LEDGERLINK_AUTH_CONNECT__VISMA_CONNECT__CLIENT_ID": VISMA_CLIENT_ID,
        "LEDGERLINK_AUTH_CONNECT__VISMA_CONNECT__CLIENT_SECRET": VISMA_CLIENT_SECRET,
        "LEDGERLINK_AUTH_CONNECT__VISMA_CONNECT__AUTHORIZE_URL": (
            f"{sandbox}/visma-connect/connect/authorize"
        ),
        "LEDGERLINK_AUTH_CONNECT__VISMA_CONNECT__TOKEN_URL": (
            f"{sandbox}/visma-connect/connect/token"
        ),
        "LEDGERLINK_AUTH_CONNECT__VISMA_CONNECT__API_BASE_URL": f"{sandbox}/vismanet",
        "LEDGERLINK_AUTH_TWENTYFOUR__APPLICATION_ID": APPLICATION_ID,
        "LEDGERLINK_AUTH_TWENTYFOUR__SOAP_BASE_URL": f"{sandbox}/24so/soap",
        "LEDGERLINK_AUTH_CONNECT__NMBRS__SOAP_BASE_URL": f"{sandbox}/nmbrs",
        # Long enough that a test never outlives it: no clock is read for the throttle proof.
        "LEDGERLINK_AUTH_CONNECT__LOGIN_BACKOFF_SECONDS": "600",
        "LEDGERLINK_AUTH_SERVICE_TOKENS": json.dumps({"importer": SERVICE_TOKEN}),
        "LEDGERLINK_AUTH_OAUTH_PROVIDERS": json.dumps(
            {
                "visma_net": {
                    "client_id": VISMA_CLIENT_ID,
                    "client_secret": VISMA_CLIENT_SECRET,
                    "token_url": f"{sandbox}/visma-connect/connect/token",
                }
            }
        ),
    }


@contextlib.asynccontextmanager
async def flow_stage(
    stack: Stack,
    reader: EventReader,
    kafka_servers: str,
    test_name: str,
    prepare: Callable[[World, str], None],
    *,
    locale: str = "en-GB",
) -> AsyncIterator[FlowStage]:
    """Start the sandbox (``prepare(world, auth_url)`` first), auth and Chromium."""
    auth_port = stack.config.ports["auth"]
    auth = f"http://127.0.0.1:{auth_port}"
    world = World(
        SandboxConfig(
            lines_per_company=20,
            demo_tenants=False,
            oidc_redirect_uris=[
                f"{auth}/signin/google/callback",
                f"{auth}/signin/microsoft/callback",
            ],
        )
    )
    prepare(world, auth)
    executable = shutil.which("chromium")
    assert executable is not None, "Debian's chromium package is needed (apt-get install chromium)"
    async with running_sandbox(world=world) as sandbox:
        stack.migrate("auth")
        stack.start("auth", _auth_env(sandbox.base_url))
        await stack.wait_ready("auth")
        async with async_playwright() as playwright:
            browser: Browser = await playwright.chromium.launch(
                executable_path=executable, args=CHROMIUM_ARGS
            )
            try:
                context = await browser.new_context(locale=locale)
                page = await context.new_page()
                page.set_default_timeout(15_000)
                yield FlowStage(
                    auth=auth,
                    sandbox=sandbox,
                    page=page,
                    reader=reader,
                    kafka_servers=kafka_servers,
                    topic_prefix=stack.config.topic_prefix,
                    shots=artifacts_dir(test_name),
                )
            finally:
                await browser.close()
                stack.stop("auth")
