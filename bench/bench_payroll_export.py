"""A year of payroll from Nmbrs into Visma.net through the journal-exporter's services.

The sandbox (Nmbrs with ``--companies`` companies of ``--employees`` people, twelve monthly
runs each and their retroactive corrections; Visma.net with the same chart and dimensions)
runs in a *separate process* and enforces Visma.net's published rate policy, a fixed window
per client and company ("4-fixed-window": ``--rate`` x ``--window`` calls per ``--window``
seconds, windows aligned to the clock, with ``X-RateLimit-*`` headers and 429 +
Retry-After). In this process the exporter's own :class:`ExportService` plans the year
(reads Nmbrs, checks every line against Visma.net) and posts it with each of ``--workers``
runner counts (a fresh sandbox each), through the service's own store-shared window budget
(:class:`StoreRateWindows`) configured with the same rate; credentials come from a token
service stand-in over HTTP; the store is a migrated SQLite file (or ``--database-url``).

Reported per runner count, all measured in the same run:

* postings per second of the posting phase;
* ``vendor_wait_share``: the posting phase's time inside Visma.net calls (rate waits
  included), summed over runners, over the phase's wall time x runners; and
  ``rate_wait_share``, the part of it spent waiting for the rate window;
* ``rate_limit_use``: of the calls Visma.net allowed in the windows the posting phase went
  through (every window but the one it finished in, where it ran out of work; the first
  one less what planning spent of it), the share it made. The ceiling is computed from the
  sandbox's windows (clock-aligned, ``--window`` long), which the recorded send time of
  every request falls in. PASS when it is >= ``--target`` (0.95), every posting is posted
  once (one batch per posting) and Visma.net answered no 429 after the first.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import selectors
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

SEED = 15
VISMA_CLIENT, VISMA_SECRET = "isv_payroll_bench", "payroll-bench-secret"
NMBRS = {"username": "bench@payroll.invalid", "token": "bench-token", "domain": "bench"}
SERVICE_TOKEN = "bench-service-token-0123456789abcdef"


# ============================================================================ sandbox child


async def _serve(employees: int, rate: float, burst: int, companies: int) -> None:
    """Child: build the world, serve on 127.0.0.1:0, print one info line, stop at EOF."""
    import uvicorn

    from ledgerlink.sandbox.app import create_app, uvicorn_config
    from ledgerlink.sandbox.config import RateLimitSettings, SandboxConfig
    from ledgerlink.sandbox.payroll import payroll_company
    from ledgerlink.sandbox.vendors import nmbrs, vismanet
    from ledgerlink.sandbox.world import World

    config = SandboxConfig(
        seed=SEED,
        demo_tenants=False,
        rate_limits={"vismanet": RateLimitSettings(rate_per_second=rate, burst=burst)},
    )
    world = World(config)
    sources = [
        world.add_tenant(
            "nmbrs",
            company=payroll_company(SEED + index, employees=employees),
            credentials=dict(NMBRS),
        )
        for index in range(companies)
    ]
    target = world.add_tenant("vismanet", company=payroll_company(SEED, employees=1))
    app = create_app(config, world, vendors=("nmbrs", "vismanet"))
    vismanet.register_client(world, VISMA_CLIENT, VISMA_SECRET)
    server = uvicorn.Server(uvicorn_config(app, "127.0.0.1", 0, lifespan="off"))
    serving = asyncio.create_task(server.serve())
    while not server.started:
        if serving.done():
            await serving
            return
        await asyncio.sleep(0.01)  # the child's own start-up, bounded by the parent
    info = {
        "port": server.servers[0].sockets[0].getsockname()[1],
        "nmbrs_companies": [str(nmbrs.company_id(source)) for source in sources],
        "visma_company": vismanet.company_id(target),
        "visma_tenant": target.tenant_id,
        "postings": sum(len(source.company.payroll_runs) for source in sources),
    }
    print(json.dumps(info), flush=True)
    await asyncio.to_thread(sys.stdin.read)
    batches = len(target.state.get("vismanet_batches", {}))
    print(json.dumps({"batches": batches}), flush=True)
    server.should_exit = True
    await serving


@contextlib.contextmanager
def sandbox_process(
    employees: int, rate: float, burst: int, companies: int
) -> Iterator[subprocess.Popen[str]]:
    command = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--serve",
        "--employees",
        str(employees),
        "--rate",
        repr(rate),
        "--rate-burst",
        str(burst),
        "--companies",
        str(companies),
    ]
    process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        yield process
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=10)


def _readline(process: subprocess.Popen[str], timeout: float) -> dict[str, Any]:
    assert process.stdout is not None
    with selectors.DefaultSelector() as selector:
        selector.register(process.stdout, selectors.EVENT_READ)
        if not selector.select(timeout):
            raise SystemExit(2)
    line = process.stdout.readline()
    if not line:
        raise SystemExit(2)
    result: dict[str, Any] = json.loads(line)
    return result


# ============================================================================ exporter side


class CountingTransport(httpx.AsyncBaseTransport):
    """The real transport, recording when each Visma.net API request was sent (wall clock,
    as the sandbox's windows are aligned to it) and which were answered 429."""

    def __init__(self) -> None:
        self._inner = httpx.AsyncHTTPTransport()
        self.sent: list[float] = []
        self.refused_at: list[int] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        visma = request.url.path.startswith("/vismanet/")
        if visma:
            self.sent.append(time.time())
            index = len(self.sent) - 1
        response = await self._inner.handle_async_request(request)
        if visma and response.status_code == 429:
            self.refused_at.append(index)
        return response

    async def aclose(self) -> None:
        await self._inner.aclose()


async def _token(base_url: str, tenant: str) -> str:
    from ledgerlink.sandbox.vendors.vismanet import SERVICE_SCOPES

    async with httpx.AsyncClient() as http:
        answer = await http.post(
            f"{base_url}/visma-connect/connect/token",
            data={
                "grant_type": "client_credentials",
                "client_id": VISMA_CLIENT,
                "client_secret": VISMA_SECRET,
                "scope": " ".join(sorted(SERVICE_SCOPES)),
                "tenant_id": tenant,
            },
        )
        answer.raise_for_status()
        return str(answer.json()["access_token"])


def window_use(
    sent: list[float], phase_start: float, window: float, limit: int
) -> tuple[float | None, int]:
    """(share of the allowed calls the posting phase made, full windows it went through).

    Windows are ``[k * window, (k + 1) * window)`` on the wall clock, as the sandbox counts
    them. The phase's last window is left out (the work ran out in it), and in its first one
    only what planning left was allowed.
    """
    phase = [t for t in sent if t >= phase_start]
    if not phase:
        return None, 0
    first, last = int(phase[0] // window), int(phase[-1] // window)
    if last == first:
        return None, 0
    before = sum(1 for t in sent if t < phase_start and int(t // window) == first)
    allowed = limit * (last - first) - before
    made = sum(1 for t in phase if int(t // window) < last)
    return made / allowed, last - first


def calls_per_window(sent: list[float], phase_start: float, window: float) -> list[int]:
    """Visma.net calls in each window from the posting phase's first to its last."""
    indexes = [int(t // window) for t in sent if t >= phase_start]
    if not indexes:
        return []
    return [indexes.count(k) for k in range(indexes[0], indexes[-1] + 1)]


async def _run(args: argparse.Namespace, workers: int) -> dict[str, Any]:
    import uvicorn
    from fastapi import FastAPI
    from pydantic import SecretStr

    from ledgerlink.journal_exporter.config import PayrollExportSettings
    from ledgerlink.journal_exporter.main import MIGRATIONS
    from ledgerlink.journal_exporter.services.payroll import (
        ExportService,
        MappingDraft,
        MappingService,
        PayrollMetrics,
    )
    from ledgerlink.journal_exporter.storage.models import PostingStatus, messaging
    from ledgerlink.journal_exporter.storage.rate_windows import StoreRateWindows
    from ledgerlink.journal_exporter.storage.vendors import VendorGateway
    from ledgerlink.shared.config import TokenServiceSettings
    from ledgerlink.shared.db import Database, create_engine
    from ledgerlink.shared.messaging.outbox import Outbox
    from ledgerlink.shared.migrations import upgrade_to_head
    from ledgerlink.shared.testing import serving

    limit = max(1, round(args.rate * args.window))
    with sandbox_process(args.employees, args.rate, limit, args.companies) as child:
        info = _readline(child, 120)
        base = f"http://127.0.0.1:{info['port']}"
        credentials = {
            "nmbrs": {
                "kind": "nmbrs_token",
                "secrets": {"token": NMBRS["token"]},
                "attributes": {"username": NMBRS["username"], "domain": NMBRS["domain"]},
            },
            "visma": {
                "kind": "bearer",
                "secrets": {"access_token": await _token(base, info["visma_tenant"])},
                "attributes": {},
            },
        }
        connections = {uuid.uuid4(): "nmbrs", uuid.uuid4(): "visma"}
        stub = FastAPI()

        @stub.post("/internal/v1/connections/{connection_id}/credentials")
        async def credential(connection_id: uuid.UUID) -> dict[str, Any]:
            which = connections[connection_id]
            return {
                "connection_id": str(connection_id),
                "provider": which,
                "expires_at": None,
                **credentials[which],
            }

        with tempfile.TemporaryDirectory() as folder:
            url = args.database_url or f"sqlite+aiosqlite:///{folder}/bench.db"
            await asyncio.to_thread(upgrade_to_head, MIGRATIONS, url)
            db = Database(create_engine(url))
            config = uvicorn.Config(stub, host="127.0.0.1", port=0, log_level="warning")
            transport = CountingTransport()
            async with serving(config) as token_url:
                settings = PayrollExportSettings(
                    nmbrs_base_url=f"{base}/nmbrs",
                    vismanet_api_base_url=f"{base}/vismanet",
                    vismanet_requests_per_second=args.rate,
                    vismanet_burst=limit,
                    lease_seconds=600,
                )
                windows = StoreRateWindows(db, rate=args.rate, limit=limit)
                gateway = VendorGateway(
                    settings,
                    TokenServiceSettings(url=token_url, token=SecretStr(SERVICE_TOKEN)),
                    transport=transport,
                    budget=windows,
                )
                metrics = PayrollMetrics(None)
                exports = ExportService(
                    db, gateway, Outbox(messaging, source="bench"), settings, metrics=metrics
                )
                ids = {which: cid for cid, which in connections.items()}
                try:
                    started = time.perf_counter()
                    planned = []
                    for company in info["nmbrs_companies"]:
                        mapping = await MappingService(db, gateway).save(
                            MappingDraft(
                                name=f"bench {company}",
                                nmbrs_connection_id=ids["nmbrs"],
                                nmbrs_company_id=company,
                                vismanet_connection_id=ids["visma"],
                                vismanet_company_id=info["visma_company"],
                                cost_centre_description="Kostenplaats",
                                cost_unit_description="Kostendrager",
                            ),
                            created_by="bench",
                        )
                        planned += await exports.export(
                            mapping.mapping_id,
                            trigger="bench",
                            period_from="2025-01",
                            period_to="2025-12",
                        )
                    planning = time.perf_counter() - started
                    vendor_before = metrics.vendor_time_total
                    waited_before = windows.waited_total
                    phase_start = time.time()
                    started = time.perf_counter()

                    async def runner() -> None:
                        # As the service's runners: a lost claim race is not the end.
                        while True:
                            if await exports.post_next():
                                continue
                            due = await exports.postings(status=PostingStatus.PENDING)
                            due += await exports.postings(status=PostingStatus.RETRYING)
                            if not due:
                                return
                            await asyncio.sleep(0.01)  # another runner holds the rest

                    await asyncio.gather(*(runner() for _ in range(workers)))
                    posting = time.perf_counter() - started
                    statuses = [p.status for p in await exports.postings()]
                finally:
                    await gateway.aclose()
                    await transport.aclose()
                    await db.dispose()
        assert child.stdin is not None
        child.stdin.close()
        batches = _readline(child, 30)["batches"]
    phase_index = next(
        (i for i, t in enumerate(transport.sent) if t >= phase_start), len(transport.sent)
    )
    use, windows_used = window_use(transport.sent, phase_start, args.window, limit)
    vendor_share = (metrics.vendor_time_total - vendor_before) / (posting * workers)
    rate_wait_share = (windows.waited_total - waited_before) / (posting * workers)
    posted = sum(1 for status in statuses if status == PostingStatus.POSTED)
    late_429 = transport.refused_at[1:]
    ok = (
        use is not None
        and use >= args.target
        and posted == len(planned) == info["postings"]
        and batches == posted
        and not late_429
    )
    return {
        "workers": workers,
        "postings": len(planned),
        "posted": posted,
        "visma_batches": batches,
        "planning_seconds": round(planning, 3),
        "posting_seconds": round(posting, 3),
        "postings_per_second": round(len(planned) / posting, 2),
        "vendor_wait_share": round(vendor_share, 3),
        "rate_wait_share": round(rate_wait_share, 3),
        "visma_requests": len(transport.sent) - phase_index,
        "full_windows": windows_used,
        "rate_limit_use": None if use is None else round(use, 3),
        "calls_per_window": calls_per_window(transport.sent, phase_start, args.window),
        "refused_429": len(transport.refused_at),
        "verdict": "PASS" if ok else "FAIL",
    }


async def _all(args: argparse.Namespace) -> dict[str, Any]:
    runs = [await _run(args, int(workers)) for workers in args.workers.split(",")]
    verdict = "PASS" if all(run["verdict"] == "PASS" for run in runs) else "FAIL"
    return {"settings": vars(args), "runs": runs, "verdict": verdict}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--employees", type=int, default=500)
    parser.add_argument("--companies", type=int, default=6, help="Nmbrs companies (a year each).")
    parser.add_argument("--rate", type=float, default=5.0, help="Visma.net calls/s.")
    parser.add_argument(
        "--window", type=float, default=10.0, help="Visma.net's fixed window in seconds."
    )
    parser.add_argument("--workers", default="1,4", help="Runner counts, one run each.")
    parser.add_argument("--target", type=float, default=0.95)
    parser.add_argument("--database-url", default=None, help="Default: a SQLite file.")
    parser.add_argument("--json", action="store_true", help="The report as JSON.")
    parser.add_argument("--strict", action="store_true", help="Exit 1 on FAIL.")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--rate-burst", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        asyncio.run(_serve(args.employees, args.rate, args.rate_burst, args.companies))
        return
    report = asyncio.run(_all(args))
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        for run in report["runs"]:
            print(f"-- {run['workers']} runner(s)")
            for key, value in run.items():
                if key != "workers":
                    print(f"{key:>22}: {value}")
        print(f"{'verdict':>22}: {report['verdict']}")
    if args.strict and report["verdict"] != "PASS":
        raise SystemExit(1)


if __name__ == "__main__":
    main()
