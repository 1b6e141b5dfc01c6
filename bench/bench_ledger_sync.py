"""Ledger sync speed (issue 14): activation -> reports.ready, an incremental sync against a
full re-import of the same company, and a rate-limited read against the vendor's limit.

Three numbers, each against a peer or ceiling measured or fixed in the same run:

(a) **first import**: a Netvisor company of ``--lines`` voucher lines (default 100,000) is
    activated; the importer's sync service (real connector, HTTP, PostgreSQL) runs it to
    ``reports.ready`` in the outbox. Printed as seed 001's 10 minutes / measured (target
    >= 60). Then ``--changes`` vouchers are edited at the vendor and an incremental sync of
    this company runs too (the small-company twin of (b)).
(b) **incremental on a big company**: a Netvisor company of ``--big-lines`` lines (default
    1,000,000) is imported, ``--changes`` vouchers (default 1,000) are edited at the vendor,
    an incremental sync runs (target <= 2 s), then a full refresh of the same company (the
    peer). ``--big-lines 0`` skips it.
(c) **rate-limited read**: Procountor's ledger read (``read_vouchers``) by ``--readers``
    concurrent readers for ``--rate-seconds`` through one connector, whose budget keeps to
    Procountor's 20 requests/s; the sandbox enforces the limit as a sliding one-second
    window. Printed: achieved / limit (target >= 0.95), 429s after the first (target 0).

The vendor sandbox runs in a *separate process* (this script re-run with
``--serve-sandbox``), holding only the companies the run needs. The credential comes from
a stand-in of auth's token service (the token service has its own benchmark). The sync
service starts as a service process does (``settle_heap``: the start-up heap frozen).

Usage::

    uv run python bench/bench_ledger_sync.py [--lines N] [--big-lines N] [--changes N]
        [--rate-seconds S] [--admin-url URL] [--strict]
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import gc
import json
import os
import resource
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
from pydantic import SecretStr
from sqlalchemy import select

from ledgerlink.connectors.procountor import ProcountorConnector, ProcountorSettings
from ledgerlink.importer.config import NetvisorPartnerSettings, VendorSettings
from ledgerlink.importer.domain.ledger_sync import SyncMode
from ledgerlink.importer.main import MIGRATIONS
from ledgerlink.importer.services.imports import ImportService
from ledgerlink.importer.services.ledger_sync import LedgerSyncService
from ledgerlink.importer.services.sync_schedule import SyncControlService
from ledgerlink.importer.storage.models import ImportJob, messaging
from ledgerlink.importer.storage.vendor_ledgers import VendorLedgers
from ledgerlink.shared.config import TokenServiceSettings
from ledgerlink.shared.db import Database, create_engine
from ledgerlink.shared.events import ConnectionActivatedV1, Provider
from ledgerlink.shared.messaging.outbox import Outbox
from ledgerlink.shared.migrations import upgrade_to_head
from ledgerlink.shared.runtime import settle_heap
from ledgerlink.shared.testing import PostgresBackend, start_postgres_backend

SCRIPT = os.path.abspath(__file__)
SEED_PROMISE_SECONDS = 600.0  # seed 001: "within approximately 10-20 minutes"
TARGET_RATIO = 60.0
TARGET_INCREMENTAL_SECONDS = 2.0
TARGET_RATE_SHARE = 0.95
PROCOUNTOR_LIMIT = 20  # requests/s per client (upstream-apis.md, Procountor's API docs)
SERVICE_TOKEN = "bench-importer-token-0123456789abcdef"
# The sandbox's public demo Netvisor partner and customer key.
PARTNER_ID, PARTNER_KEY, CUSTOMER_KEY = "LEDGERLINK_DEMO", "demo-partner-key", "demo-customer-key"
NETVISOR_CREDENTIALS = {
    "customer_key": CUSTOMER_KEY,
    "partner_id": PARTNER_ID,
    "partner_key": PARTNER_KEY,
}
# The sandbox's demo Procountor client (sandbox-only values).
PROCOUNTOR_CLIENT = {
    "client_id": "procountor-demo",
    "client_secret": "procountor-demo-secret",
    "redirect_uri": "http://127.0.0.1:8080/callback",
    "api_key": "procountor-demo-api-key",
}


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# ----------------------------------------------------------------------------- sandbox


def serve_sandbox(spec: dict[str, Any]) -> None:
    """The sandbox process: only the tenants this run needs, then serve until stopped."""
    import uvicorn

    from ledgerlink.sandbox.app import create_app, uvicorn_config
    from ledgerlink.sandbox.config import SandboxConfig
    from ledgerlink.sandbox.world import World

    config = SandboxConfig(port=spec["port"], demo_tenants=False, log_level="WARNING")
    world = World(config)
    for tenant in spec["tenants"]:
        world.add_tenant(
            tenant["vendor"],
            tenant_id=tenant["tenant_id"],
            lines=tenant["lines"],
            credentials=tenant["credentials"],
        )
    app = create_app(config, world)
    gc.collect()  # as ledgerlink-sandbox serve does once its books are generated
    gc.freeze()
    uvicorn.Server(uvicorn_config(app, "127.0.0.1", spec["port"])).run()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


@asynccontextmanager
async def sandbox_process(tenants: list[dict[str, Any]]) -> AsyncIterator[str]:
    port = free_port()
    spec = json.dumps({"port": port, "tenants": tenants})
    process = await asyncio.to_thread(
        subprocess.Popen,
        [sys.executable, SCRIPT, "--serve-sandbox", spec],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient() as http:
            deadline = time.monotonic() + 600  # a million lines take a while to generate
            while True:
                try:
                    if (await http.get(f"{url}/healthz")).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline or process.poll() is not None:
                    raise RuntimeError("the sandbox did not start")
                await asyncio.sleep(0.2)
        yield url
    finally:
        process.terminate()
        await asyncio.to_thread(process.wait, 60)


# ----------------------------------------------------------------------------- sync


@dataclass
class Company:
    tenant_id: str
    business_id: str
    name: str
    vouchers: int
    connection_id: uuid.UUID = field(default_factory=uuid.uuid4)


def token_service(companies: dict[uuid.UUID, Company]) -> httpx.MockTransport:
    """auth's token service as far as the sync needs it: the Netvisor identity of each
    connection (the signing keys are the sandbox's public demo ones)."""

    def handle(request: httpx.Request) -> httpx.Response:
        company = companies[uuid.UUID(request.url.path.split("/")[-2])]
        return httpx.Response(
            200,
            json={
                "connection_id": str(company.connection_id),
                "provider": "netvisor",
                "kind": "netvisor",
                "expires_at": None,
                "secrets": {"customer_key": CUSTOMER_KEY},
                "attributes": {
                    "customer_id": company.tenant_id,
                    "organisation_id": company.business_id,
                },
            },
        )

    return httpx.MockTransport(handle)


async def run_one(service: LedgerSyncService, db: Database) -> tuple[float, ImportJob]:
    """Claim and run the next sync; its time and job (asserting reports.ready came)."""
    started = time.perf_counter()
    claimed = await service.claim_next()
    assert claimed is not None
    await service.run(claimed)
    elapsed = time.perf_counter() - started
    async with db.transaction() as session:
        job = await session.get(ImportJob, claimed.id)
        assert job is not None
        payloads = (
            await session.execute(
                select(messaging.outbox.c.payload).where(
                    messaging.outbox.c.event_type == "ledgerlink.reports.ready.v1"
                )
            )
        ).scalars()
        ready = [p for p in payloads if json.loads(p).get("import_id") == str(claimed.id)]
    assert job.status == "completed", job.error_message
    assert ready, "no reports.ready for this import"
    return elapsed, job


async def activate(service: LedgerSyncService, db: Database, company: Company) -> None:
    async with db.transaction() as session:
        await ImportService(session, service._outbox).connection_activated(
            ConnectionActivatedV1(
                connection_id=company.connection_id,
                environment_id=uuid.uuid4(),
                provider=Provider.NETVISOR,
                business_id=company.business_id,
                company_name=company.name,
            ),
            event_id=str(uuid.uuid4()),
        )


async def edit_vouchers(http: httpx.AsyncClient, sandbox: str, company: Company, n: int) -> int:
    """Edit ``n`` vouchers spread over the company at the vendor (its control API)."""
    step = max(1, company.vouchers // max(1, n))
    edited = 0
    for voucher_id in range(1, company.vouchers + 1, step)[:n]:
        answer = await http.post(
            f"{sandbox}/_sandbox/netvisor/{company.tenant_id}/vouchers/{voucher_id}/edit"
        )
        answer.raise_for_status()
        edited += 1
    return edited


async def sync(
    service: LedgerSyncService, db: Database, company: Company, mode: SyncMode
) -> tuple[float, ImportJob]:
    async with db.transaction() as session:
        await SyncControlService(session).request(company.connection_id, mode)
    return await run_one(service, db)


# ----------------------------------------------------------------------------- rate


class CountingTransport(httpx.AsyncBaseTransport):
    """The real transport, noting when each API request left and how it was answered."""

    def __init__(self) -> None:
        self._inner = httpx.AsyncHTTPTransport()
        self.starts: list[float] = []
        self.statuses: list[int] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        counted = "/api/" in request.url.path and not request.url.path.endswith("/oauth/token")
        if counted:
            self.starts.append(time.monotonic())
        response = await self._inner.handle_async_request(request)
        if counted:
            self.statuses.append(response.status_code)
        return response

    async def aclose(self) -> None:
        await self._inner.aclose()


def most_in_any_window(starts: list[float], window: float) -> int:
    ordered = sorted(starts)
    return max(
        (bisect.bisect_left(ordered, start + window) - i for i, start in enumerate(ordered)),
        default=0,
    )


async def rate_limited_read(sandbox: str, seconds: float, readers: int) -> dict[str, Any]:
    transport = CountingTransport()
    connector = ProcountorConnector(
        ProcountorSettings(
            client_id=PROCOUNTOR_CLIENT["client_id"],
            client_secret=SecretStr(PROCOUNTOR_CLIENT["client_secret"]),
            redirect_uri=PROCOUNTOR_CLIENT["redirect_uri"],
            api_key=SecretStr(PROCOUNTOR_CLIENT["api_key"]),
            base_url=f"{sandbox}/procountor",
            page_size=20,
        ),
        transport=transport,
    )
    try:
        await connector.read_accounts()  # the token, before the clock starts
        transport.starts.clear()
        transport.statuses.clear()
        deadline = time.monotonic() + seconds

        async def reader() -> None:
            cursor = None
            while time.monotonic() < deadline:
                page = await connector.read_vouchers(cursor)
                cursor = page.cursor if page.has_more else None

        await asyncio.gather(*(reader() for _ in range(readers)))
    finally:
        await connector.aclose()
        await transport.aclose()
    starts = sorted(transport.starts)
    # The rate over whole windows' worth of requests: from the first start to the start
    # k * limit requests later (a budget may send a window's worth at once, so counting to
    # the end of the run would count a partly used last window as a whole one, or not).
    whole = (len(starts) - 1) // PROCOUNTOR_LIMIT * PROCOUNTOR_LIMIT
    span = starts[whole] - starts[0] if whole else 0.0
    achieved = whole / span if span else 0.0
    refusals = [n for n, status in enumerate(transport.statuses) if status == 429]
    return {
        "requests": len(starts),
        "seconds": span,
        "achieved_per_second": achieved,
        "limit_per_second": PROCOUNTOR_LIMIT,
        "share": achieved / PROCOUNTOR_LIMIT,
        "most_in_any_second": most_in_any_window(starts, 1.0),
        "429s": len(refusals),
        "429s_after_first": max(0, len(refusals) - 1),
    }


# ----------------------------------------------------------------------------- main


class CollectorClock:
    """Seconds this process spent in the garbage collector (a diagnostic)."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self._began = 0.0
        gc.callbacks.append(self._note)

    def _note(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._began = time.perf_counter()
        else:
            self.seconds += time.perf_counter() - self._began

    def lap(self) -> float:
        seconds, self.seconds = self.seconds, 0.0
        return seconds


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


async def main(args: argparse.Namespace) -> int:
    backend = (
        PostgresBackend(kind="external", admin_url=args.admin_url)
        if args.admin_url
        else start_postgres_backend()
    )
    url = await backend.create_database("ledgerlink_bench_sync")
    tenants: list[dict[str, Any]] = [
        {"vendor": "netvisor", "tenant_id": "100001", "lines": args.lines,
         "credentials": NETVISOR_CREDENTIALS},
        {"vendor": "procountor", "tenant_id": "200001", "lines": 2000,
         "credentials": PROCOUNTOR_CLIENT | {"username": "demo", "password": "demo"}},
    ]  # fmt: skip
    if args.big_lines:
        tenants.append(
            {"vendor": "netvisor", "tenant_id": "100002", "lines": args.big_lines,
             "credentials": NETVISOR_CREDENTIALS}
        )  # fmt: skip
    results: dict[str, Any] = {"settings": vars(args)}
    ok = True
    try:
        await asyncio.to_thread(upgrade_to_head, MIGRATIONS, url)
        db = Database(create_engine(url))
        log(f"sandbox: generating {sum(t['lines'] for t in tenants):,} lines ...")
        async with sandbox_process(tenants) as sandbox, httpx.AsyncClient(timeout=120) as http:
            listed = (await http.get(f"{sandbox}/_sandbox/tenants")).json()
            companies = {
                t["tenant_id"]: Company(t["tenant_id"], t["business_id"], t["name"], t["vouchers"])
                for t in listed
                if t["vendor"] == "netvisor"
            }
            by_connection = {c.connection_id: c for c in companies.values()}
            ledgers = VendorLedgers(
                VendorSettings(
                    netvisor=NetvisorPartnerSettings(
                        base_url=f"{sandbox}/netvisor",
                        partner_id=PARTNER_ID,
                        partner_key=SecretStr(PARTNER_KEY),
                    )
                ),
                TokenServiceSettings(url="http://auth.invalid", token=SecretStr(SERVICE_TOKEN)),
                token_transport=token_service(by_connection),
            )
            service = LedgerSyncService(
                db, Outbox(messaging, source="ledgerlink/importer"), ledgers
            )
            settle_heap()  # as the service's lifespan does before its workers start
            collector = CollectorClock()

            # (a) activation -> reports.ready
            small = companies["100001"]
            await activate(service, db, small)
            collector.lap()
            first, job = await run_one(service, db)
            first_gc = collector.lap()
            lines = (job.counts or {}).get("lines", 0)
            ratio = SEED_PROMISE_SECONDS / first
            ok &= ratio >= TARGET_RATIO
            print(f"(a) netvisor first import, activation -> reports.ready: {lines:,} lines "
                  f"in {first:.2f} s ({lines / first:,.0f} lines/s; of which in the "
                  f"collector {first_gc:.2f} s)")  # fmt: skip
            print(f"    vs seed 001's 10 minutes: {ratio:.0f}x "
                  f"(target >= {TARGET_RATIO:.0f}x) {verdict(ratio >= TARGET_RATIO)}")  # fmt: skip
            edited = await edit_vouchers(http, sandbox, small, args.changes)
            small_incremental, job = await sync(service, db, small, SyncMode.INCREMENTAL)
            read = (job.counts or {}).get("sync_vouchers_read", 0)
            print(f"    incremental after {edited:,} edits: {read:,} vouchers read in "
                  f"{small_incremental:.2f} s")  # fmt: skip
            results["a"] = {"lines": lines, "seconds": first, "ratio": ratio,
                            "incremental_seconds": small_incremental}  # fmt: skip

            # (b) incremental vs full re-import of a big company
            if args.big_lines:
                big = companies["100002"]
                await activate(service, db, big)
                collector.lap()
                big_first, job = await run_one(service, db)
                big_gc = collector.lap()
                big_lines = (job.counts or {}).get("lines", 0)
                print(f"(b) netvisor company of {big_lines:,} lines: first import "
                      f"{big_first:.1f} s (collector {big_gc:.1f} s)")  # fmt: skip
                edited = await edit_vouchers(http, sandbox, big, args.changes)
                incremental, job = await sync(service, db, big, SyncMode.INCREMENTAL)
                read = (job.counts or {}).get("sync_vouchers_read", 0)
                full, _ = await sync(service, db, big, SyncMode.FULL_REFRESH)
                passed = incremental <= TARGET_INCREMENTAL_SECONDS
                ok &= passed
                print(f"    incremental, {edited:,} vouchers edited ({read:,} read): "
                      f"{incremental:.2f} s (target <= {TARGET_INCREMENTAL_SECONDS:.0f} s) "
                      f"{verdict(passed)}")  # fmt: skip
                print(f"    full re-import of the same company: {full:.1f} s; "
                      f"incremental / full = {incremental / full:.4f} "
                      f"({full / incremental:.0f}x faster)")  # fmt: skip
                results["b"] = {
                    "lines": big_lines,
                    "first_seconds": big_first,
                    "incremental_seconds": incremental,
                    "full_seconds": full,
                }

            # (c) rate-limited read
            if args.rate_seconds:
                rate = await rate_limited_read(sandbox, args.rate_seconds, args.readers)
                passed = rate["share"] >= TARGET_RATE_SHARE and rate["429s_after_first"] == 0
                ok &= passed
                print(f"(c) procountor read_vouchers, {args.readers} readers, "
                      f"{rate['requests']:,} requests in {rate['seconds']:.1f} s: "
                      f"{rate['achieved_per_second']:.2f}/s of {PROCOUNTOR_LIMIT}/s = "
                      f"{rate['share']:.3f} (target >= {TARGET_RATE_SHARE}); most in any "
                      f"second {rate['most_in_any_second']}; 429s {rate['429s']} (after "
                      f"the first: {rate['429s_after_first']}) {verdict(passed)}")  # fmt: skip
                results["c"] = rate
        await db.dispose()
    finally:
        await backend.drop_database(url)
        backend.close()
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    sandbox_rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(f"peak RSS: importer (this process) {own:,.0f} MiB, sandbox {sandbox_rss:,.0f} MiB")
    print(f"verdict: {verdict(ok)}")
    if args.json:
        results["peak_rss_mib"] = {"importer": own, "sandbox": sandbox_rss}
        results["verdict"] = verdict(ok)
        print(json.dumps(results, default=str))
    return 1 if args.strict and not ok else 0


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--lines", type=int, default=100_000, help="lines of company (a)")
    parser.add_argument(
        "--big-lines", type=int, default=1_000_000, help="lines of company (b); 0 skips (b)"
    )
    parser.add_argument("--changes", type=int, default=1_000, help="vouchers edited")
    parser.add_argument("--rate-seconds", type=float, default=20.0, help="(c); 0 skips it")
    parser.add_argument("--readers", type=int, default=8, help="concurrent readers in (c)")
    parser.add_argument("--admin-url", help="PostgreSQL admin URL (default: the tests' server)")
    parser.add_argument("--json", action="store_true", help="also print the results as JSON")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a target is missed")
    parser.add_argument("--serve-sandbox", help=argparse.SUPPRESS)
    return parser.parse_args()


if __name__ == "__main__":
    arguments = parse_args()
    if arguments.serve_sandbox:
        serve_sandbox(json.loads(arguments.serve_sandbox))
        sys.exit(0)
    try:
        sys.exit(asyncio.run(main(arguments)))
    except (AssertionError, RuntimeError, httpx.HTTPError) as error:
        log(f"the benchmark could not complete: {error!r}")
        sys.exit(2)
