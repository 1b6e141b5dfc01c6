"""The browser tests' harness: the stack as processes, a real Chromium, sign-in, screenshots.

* ``pages_stack``: the sandbox (vendors and the Google/Microsoft stand-ins) and auth as
  processes on the test's back-ends (PostgreSQL, the embedded Kafka broker), auth's clock
  movable from outside (``pages.clock_control``: ``advance_clock``), auth's vendor calls
  pointed at the sandbox. Add ``importer`` with ``await pages_stack.start("importer")``.
* ``page``: a fresh browser context (no cookies) in Debian's Chromium through Playwright's
  async API; ``shot(page, "step")`` saves ``var/test-artifacts/browser/<test>/<nn>-step.png``.
* ``sign_in(page, username)``: choose a test user on the sandbox IdP's page, from wherever
  auth sent the browser (its sign-in page or straight to the IdP for a step-up).

Browser tests are marked ``wire`` (they run the services as processes) and ``browser``.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from browser_helpers import (
    ARTIFACTS,
    CHROMIUM_ARGS,
    PagesStack,
    Shot,
    auth_settings,
    chromium_path,
)
from playwright.async_api import Browser, Page, async_playwright
from wire_helpers import EventReader

from ledgerlink.cli.stack import Stack
from ledgerlink.shared.testing import KafkaBackend


@pytest.fixture(scope="session")
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        chromium = await playwright.chromium.launch(
            executable_path=chromium_path(), args=CHROMIUM_ARGS, headless=True
        )
        try:
            yield chromium
        finally:
            await chromium.close()


@pytest.fixture
async def pages_stack(
    stack: Stack, reader: EventReader, kafka_backend: KafkaBackend
) -> AsyncIterator[PagesStack]:
    stack.start("sandbox")
    await stack.wait_ready("sandbox")
    env = auth_settings(stack.services["sandbox"].url)
    stack.migrate("auth")
    stack.start("auth", env)
    await stack.wait_ready("auth")
    async with httpx.AsyncClient(timeout=20) as http:
        yield PagesStack(stack, kafka_backend, reader, http, env)


@pytest.fixture
async def page(browser: Browser) -> AsyncIterator[Page]:
    context = await browser.new_context(locale="en-GB", viewport={"width": 1000, "height": 900})
    context.set_default_timeout(20_000)
    page = await context.new_page()
    try:
        yield page
    finally:
        await context.close()


@pytest.fixture
def shot(request: pytest.FixtureRequest) -> Shot:
    """``await shot(page, "step")``: a full-page screenshot per step, numbered in order."""
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.name)
    directory = ARTIFACTS / name
    if directory.exists():
        shutil.rmtree(directory)
    counter = {"n": 0}

    async def take(page: Page, step: str) -> Path:
        counter["n"] += 1
        path = directory / f"{counter['n']:02d}-{re.sub(r'[^A-Za-z0-9_-]+', '-', step)}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        await page.screenshot(path=str(path), full_page=True)
        return path

    return take
