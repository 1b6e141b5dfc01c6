"""Injected faults over real HTTP: 429 storms, 5xx, resets, latency, token expiry."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from ledgerlink.sandbox.config import SandboxConfig
from ledgerlink.sandbox.errors import SandboxRateLimited, SandboxServerError
from ledgerlink.sandbox.testing import RunningSandbox, running_sandbox
from ledgerlink.sandbox.world import World

VENDOR = "faultvendor"


def _mount_probe(app: FastAPI, world: World) -> None:
    """A minimal vendor router: applies the faults, renders them like a vendor would."""

    @app.get("/probe/{tenant}")
    async def probe(request: Request, tenant: str) -> JSONResponse:
        try:
            await world.faults.apply(request, VENDOR, tenant)
        except SandboxRateLimited as limited:
            return JSONResponse(
                {"error": "rate"},
                status_code=429,
                headers={"Retry-After": limited.retry_after_header},
            )
        except SandboxServerError as failure:
            return JSONResponse({"error": failure.message}, status_code=failure.status)
        return JSONResponse({"ok": True})


@pytest.fixture
async def sandbox() -> AsyncIterator[RunningSandbox]:
    world = World(SandboxConfig(lines_per_company=10))
    async with running_sandbox(world=world, vendors=(), setup=_mount_probe) as running:
        yield running


async def test_storm_answers_exactly_n_requests_429_with_retry_after(
    sandbox: RunningSandbox,
) -> None:
    async with httpx.AsyncClient(base_url=sandbox.base_url) as client:
        plan = {"vendor": VENDOR, "storm_429": 3, "retry_after_seconds": 2}
        assert (await client.post("/_sandbox/faults", json=plan)).status_code == 200
        answers = [await client.get("/probe/t1") for _ in range(5)]
    assert [a.status_code for a in answers] == [429, 429, 429, 200, 200]
    assert answers[0].headers["Retry-After"] == "2"


async def test_error_rate_one_fails_every_request_and_delete_clears(
    sandbox: RunningSandbox,
) -> None:
    async with httpx.AsyncClient(base_url=sandbox.base_url) as client:
        plan = {"vendor": VENDOR, "error_rate": 1.0, "error_status": 502}
        await client.post("/_sandbox/faults", json=plan)
        assert (await client.get("/probe/t1")).status_code == 502
        assert (
            await client.delete("/_sandbox/faults", params={"vendor": VENDOR})
        ).status_code == 204
        assert (await client.get("/probe/t1")).status_code == 200


async def test_a_tenant_plan_wins_over_the_vendor_wide_plan(sandbox: RunningSandbox) -> None:
    async with httpx.AsyncClient(base_url=sandbox.base_url) as client:
        await client.post("/_sandbox/faults", json={"vendor": VENDOR, "error_rate": 1.0})
        await client.post("/_sandbox/faults", json={"vendor": VENDOR, "tenant": "calm"})
        assert (await client.get("/probe/calm")).status_code == 200
        assert (await client.get("/probe/other")).status_code == 503


async def test_seeded_error_rate_is_reproducible(sandbox: RunningSandbox) -> None:
    async def run() -> list[int]:
        async with httpx.AsyncClient(base_url=sandbox.base_url) as client:
            plan = {"vendor": VENDOR, "error_rate": 0.5, "seed": 42}
            await client.post("/_sandbox/faults", json=plan)
            return [(await client.get("/probe/t")).status_code for _ in range(20)]

    first, second = await run(), await run()
    assert first == second
    assert {200, 503} == set(first)


async def test_reset_rate_drops_the_connection(sandbox: RunningSandbox) -> None:
    async with httpx.AsyncClient(base_url=sandbox.base_url) as client:
        await client.post("/_sandbox/faults", json={"vendor": VENDOR, "reset_rate": 1.0})
        with pytest.raises(httpx.RemoteProtocolError):
            await client.get("/probe/t1")
        # The server lives on: the control API still answers on a new connection.
        await client.delete("/_sandbox/faults")
        assert (await client.get("/probe/t1")).status_code == 200


async def test_latency_delays_the_answer(sandbox: RunningSandbox) -> None:
    async with httpx.AsyncClient(base_url=sandbox.base_url) as client:
        await client.post("/_sandbox/faults", json={"vendor": VENDOR, "latency_ms": 150})
        started = time.perf_counter()
        assert (await client.get("/probe/t1")).status_code == 200
        assert time.perf_counter() - started >= 0.15


async def test_tokens_expire_at_the_nth_request_and_by_control_api(
    sandbox: RunningSandbox,
) -> None:
    expired: list[str] = []
    sandbox.world.faults.on_expire_tokens(VENDOR, lambda: expired.append("fault"))
    async with httpx.AsyncClient(base_url=sandbox.base_url) as client:
        await client.post("/_sandbox/faults", json={"vendor": VENDOR, "expire_tokens_after": 3})
        await client.get("/probe/t1")
        await client.get("/probe/t1")
        assert expired == []
        await client.get("/probe/t1")
        assert expired == ["fault"]
        await client.get("/probe/t1")
        assert expired == ["fault"], "expiry fires once per plan"
        response = await client.post("/_sandbox/tokens/expire", json={"vendor": "elsewhere"})
        assert response.status_code == 204
        assert expired == ["fault"]
        await client.post("/_sandbox/tokens/expire", json={"vendor": VENDOR})
        assert expired == ["fault", "fault"]


async def test_unknown_fault_fields_are_refused(sandbox: RunningSandbox) -> None:
    async with httpx.AsyncClient(base_url=sandbox.base_url) as client:
        response = await client.post("/_sandbox/faults", json={"vendor": VENDOR, "storm": 3})
    assert response.status_code == 422
