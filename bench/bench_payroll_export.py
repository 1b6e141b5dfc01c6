"""A year of payroll from Nmbrs into Visma.net through the journal-exporter's services.

The sandbox (Nmbrs with one company of ``--employees`` people, twelve monthly runs and their
retroactive corrections; Visma.net with the same chart and dimensions) runs in a *separate
process* and enforces ``--rate`` requests/s on Visma.net (``--rate-burst`` at once). In this
process the exporter's own :class:`ExportService` plans the year (reads Nmbrs, checks every
line against Visma.net) and posts it with ``--workers`` runners, its Visma.net budget set to
the same rate; credentials come from a token service stand-in over HTTP; the store is a
migrated SQLite file (or ``--database-url``).

Reported, all measured in the same run:

* postings per second of the posting phase;
* the share of the posting phase spent waiting on Visma.net (time inside its calls, summed
  over runners, over the phase's wall time x runners);
* rate-limit use: ``(Visma.net requests - burst) / elapsed / rate`` over the posting phase
  (a bucket allows ``burst + rate x t`` requests in ``t`` seconds, so a poster that uses its
  whole budget scores 1.0). PASS when it is >= ``--target`` (0.95), every posting is posted
  once (one batch per posting) and Visma.net answered no 429.
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


async def _serve(employees: int, rate: float, burst: int) -> None:
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
    source = world.add_tenant(
        "nmbrs", company=payroll_company(SEED, employees=employees), credentials=dict(NMBRS)
    )
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
        "nmbrs_company": str(nmbrs.company_id(source)),
        "visma_company": vismanet.company_id(target),
        "visma_tenant": target.tenant_id,
        "postings": len(source.company.payroll_runs),
    }
    print(json.dumps(info), flush=True)
    await asyncio.to_thread(sys.stdin.read)
    batches = len(target.state.get("vismanet_batches", {}))
    print(json.dumps({"batches": batches}), flush=True)
    server.should_exit = True
    await serving


@contextlib.contextmanager
def sandbox_process(employees: int, rate: float, burst: int) -> Iterator[subprocess.Popen[str]]:
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
    """The real transport, counting Visma.net API requests and 429 answers."""

    def __init__(self) -> None:
        self._inner = httpx.AsyncHTTPTransport()
        self.visma_requests = 0
        self.refused = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self._inner.handle_async_request(request)
        if request.url.path.startswith("/vismanet/"):
            self.visma_requests += 1
            if response.status_code == 429:
                self.refused += 1
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


async def _run(args: argparse.Namespace) -> dict[str, Any]:
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
    from ledgerlink.journal_exporter.storage.vendors import VendorGateway
    from ledgerlink.shared.config import TokenServiceSettings
    from ledgerlink.shared.db import Database, create_engine
    from ledgerlink.shared.messaging.outbox import Outbox
    from ledgerlink.shared.migrations import upgrade_to_head
    from ledgerlink.shared.testing import serving

    with sandbox_process(args.employees, args.rate, args.rate_burst) as child:
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
                    vismanet_burst=args.rate_burst,
                    lease_seconds=600,
                )
                gateway = VendorGateway(
                    settings,
                    TokenServiceSettings(url=token_url, token=SecretStr(SERVICE_TOKEN)),
                    transport=transport,
                )
                metrics = PayrollMetrics(None)
                exports = ExportService(
                    db, gateway, Outbox(messaging, source="bench"), settings, metrics=metrics
                )
                ids = {which: cid for cid, which in connections.items()}
                try:
                    mapping = await MappingService(db, gateway).save(
                        MappingDraft(
                            name="bench",
                            nmbrs_connection_id=ids["nmbrs"],
                            nmbrs_company_id=info["nmbrs_company"],
                            vismanet_connection_id=ids["visma"],
                            vismanet_company_id=info["visma_company"],
                            cost_centre_description="Kostenplaats",
                            cost_unit_description="Kostendrager",
                        ),
                        created_by="bench",
                    )
                    started = time.perf_counter()
                    planned = await exports.export(
                        mapping.mapping_id,
                        trigger="bench",
                        period_from="2025-01",
                        period_to="2025-12",
                    )
                    planning = time.perf_counter() - started
                    # The posting phase starts on a full bucket at both ends.
                    await asyncio.sleep(args.rate_burst / args.rate + 0.1)
                    requests_before = transport.visma_requests
                    vendor_before = metrics.vendor_time_total
                    started = time.perf_counter()

                    async def runner() -> None:
                        while await exports.post_next():
                            pass

                    await asyncio.gather(*(runner() for _ in range(args.workers)))
                    posting = time.perf_counter() - started
                    statuses = [p.status for p in await exports.postings()]
                finally:
                    await gateway.aclose()
                    await transport.aclose()
                    await db.dispose()
        assert child.stdin is not None
        child.stdin.close()
        batches = _readline(child, 30)["batches"]
    requests = transport.visma_requests - requests_before
    use = max(0, requests - args.rate_burst) / posting / args.rate
    vendor_share = (metrics.vendor_time_total - vendor_before) / (posting * args.workers)
    posted = sum(1 for status in statuses if status == PostingStatus.POSTED)
    ok = (
        use >= args.target
        and posted == len(planned) == info["postings"]
        and batches == posted
        and transport.refused == 0
    )
    return {
        "settings": vars(args),
        "postings": len(planned),
        "posted": posted,
        "visma_batches": batches,
        "planning_seconds": round(planning, 3),
        "posting_seconds": round(posting, 3),
        "postings_per_second": round(len(planned) / posting, 2),
        "vendor_wait_share": round(vendor_share, 3),
        "visma_requests": requests,
        "rate_limit_use": round(use, 3),
        "refused_429": transport.refused,
        "verdict": "PASS" if ok else "FAIL",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--employees", type=int, default=500)
    parser.add_argument("--rate", type=float, default=5.0, help="Visma.net requests/s.")
    parser.add_argument("--rate-burst", type=int, default=5)
    parser.add_argument("--workers", type=int, default=1, help="Posting runners.")
    parser.add_argument("--target", type=float, default=0.95)
    parser.add_argument("--database-url", default=None, help="Default: a SQLite file.")
    parser.add_argument("--json", action="store_true", help="The report as JSON.")
    parser.add_argument("--strict", action="store_true", help="Exit 1 on FAIL.")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        asyncio.run(_serve(args.employees, args.rate, args.rate_burst))
        return
    report = asyncio.run(_run(args))
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        for key, value in report.items():
            if key != "settings":
                print(f"{key:>22}: {value}")
    if args.strict and report["verdict"] != "PASS":
        raise SystemExit(1)


if __name__ == "__main__":
    main()
