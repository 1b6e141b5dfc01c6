"""``ledgerlink sync status|run|reset`` against a real importer API, store and sync runner.

The vendor is a small in-memory ledger here (the sync itself is proven against the vendor
sandboxes in the importer's and the wire tests); what is under test is the CLI: what it
asks the importer, how it waits, what it prints and how it exits.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import uuid
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path

import pytest
import uvicorn
from fastapi import FastAPI
from typer.testing import CliRunner, Result

from ledgerlink.cli.main import app
from ledgerlink.connectors.base import LedgerConnector
from ledgerlink.connectors.models import (
    Account,
    Company,
    Dimension,
    JournalPosting,
    Period,
    PostedJournal,
    SyncCursor,
    Voucher,
    VoucherLine,
    VoucherPage,
)
from ledgerlink.importer.handlers.http import build_router
from ledgerlink.importer.handlers.sync_http import build_sync_router
from ledgerlink.importer.services.imports import ImportService
from ledgerlink.importer.services.ledger_sync import LedgerSyncService
from ledgerlink.importer.services.runner import ImportRunner
from ledgerlink.importer.storage.files import FileArea
from ledgerlink.importer.storage.models import messaging
from ledgerlink.shared.db import Database
from ledgerlink.shared.events import ConnectionActivatedV1, Provider
from ledgerlink.shared.messaging.outbox import Outbox
from ledgerlink.shared.testing import serving

RUNNER = CliRunner()
BUSINESS_ID = "1572860-0"
CONNECTION = uuid.UUID("6b1f7a52-3f0e-4a57-9a55-0d1c2a3b4c5d")


class TinyLedger(LedgerConnector):
    """Three vouchers over two pages; a voucher is added between syncs."""

    vendor = "netvisor"

    def __init__(self, vouchers: list[Voucher]) -> None:
        self.vouchers = vouchers

    async def aclose(self) -> None:
        return None

    async def list_companies(self) -> list[Company]:
        return [Company(external_id="1", business_id=BUSINESS_ID, name="Pieni Oy")]

    async def read_accounts(self) -> list[Account]:
        return [Account(number="1910", name="Pankki", type="asset"),
                Account(number="3000", name="Myynti", type="revenue")]  # fmt: skip

    async def read_dimensions(self) -> list[Dimension]:
        return []

    async def read_periods(self) -> list[Period]:
        return [Period(start=dt.date(2025, 1, 1), end=dt.date(2025, 1, 31), status="open")]

    async def read_vouchers(
        self, cursor: SyncCursor | None = None, *, page_size: int | None = None
    ) -> VoucherPage:
        seen = int(cursor.token) if cursor and cursor.token else 0
        page = tuple(self.vouchers[seen : seen + 2])
        after = seen + len(page)
        return VoucherPage(
            vouchers=page, cursor=SyncCursor(token=str(after)), has_more=after < len(self.vouchers)
        )

    async def post_journal(self, posting: JournalPosting) -> PostedJournal:
        raise NotImplementedError


def sale(number: int, amount: str) -> Voucher:
    return Voucher(
        external_id=str(number),
        number=str(number),
        date=dt.date(2025, 1, number),
        lines=(
            VoucherLine(account="1910", amount=Decimal(amount)),
            VoucherLine(account="3000", amount=-Decimal(amount)),
        ),
    )


class Opener:
    def __init__(self) -> None:
        self.ledger = TinyLedger([sale(1, "100.00"), sale(2, "50.50"), sale(3, "9.99")])

    @contextlib.asynccontextmanager
    async def open(
        self,
        provider: Provider,
        connection_id: uuid.UUID,
        *,
        business_id: str,
        transaction_type: str | None = None,
    ) -> AsyncIterator[LedgerConnector]:
        yield self.ledger


async def cli(*args: str) -> Result:
    return await asyncio.to_thread(RUNNER.invoke, app, list(args))


@pytest.fixture
async def importer(db: Database, tmp_path: Path) -> AsyncIterator[tuple[str, Opener]]:
    outbox = Outbox(messaging, source="ledgerlink/importer")
    opener = Opener()
    service = LedgerSyncService(db, outbox, opener)
    runner = ImportRunner(service, poll_seconds=0.05)
    api = FastAPI()
    api.include_router(
        build_router(db, outbox, FileArea(tmp_path / "files"), max_upload_bytes=1000)
    )
    api.include_router(build_sync_router(db, on_queued=runner.wake))
    async with db.transaction() as session:
        await ImportService(session, outbox).connection_activated(
            ConnectionActivatedV1(
                connection_id=CONNECTION,
                environment_id=uuid.uuid4(),
                provider=Provider.NETVISOR,
                business_id=BUSINESS_ID,
                company_name="Pieni Oy",
            ),
            event_id="activation-1",
        )
    config = uvicorn.Config(
        api, host="127.0.0.1", port=0, log_level="warning", access_log=False, lifespan="off"
    )
    runner.start()
    try:
        async with serving(config) as url:
            yield url, opener
    finally:
        await runner.stop()


async def test_status_run_and_reset(importer: tuple[str, Opener]) -> None:
    url, opener = importer

    # The activation queued the first import; the runner takes it.
    async def first_done() -> None:
        while True:
            result = await cli("sync", "status", "--json", "--importer-url", url)
            rows = json.loads(result.output)
            if rows and rows[0]["last_status"] == "completed":
                return
            await asyncio.sleep(0.05)  # polling the CLI's own answer, bounded below

    await asyncio.wait_for(first_done(), timeout=60)
    status = await cli("sync", "status", "--business-id", BUSINESS_ID, "--importer-url", url)
    assert status.exit_code == 0, status.output
    assert f"{BUSINESS_ID}  netvisor  connection {CONNECTION}" in status.output
    assert "first completed" in status.output
    assert "3 vouchers, 6 lines" in status.output

    opener.ledger.vouchers.append(sale(4, "1.00"))
    ran = await cli("sync", "run", str(CONNECTION), "--json", "--importer-url", url,
                    "--poll-seconds", "0.05")  # fmt: skip
    assert ran.exit_code == 0, ran.output
    job = json.loads(ran.output)
    assert job["status"] == "completed"
    assert job["sync_mode"] == "incremental"
    assert job["counts"]["sync_vouchers_read"] == 1
    assert job["counts"]["lines"] == 8

    reset = await cli("sync", "reset", str(CONNECTION), "--importer-url", url,
                      "--poll-seconds", "0.05")  # fmt: skip
    assert reset.exit_code == 0, reset.output
    assert "completed: replaced, 4 vouchers read, 8 lines in the books" in reset.output

    # Voucher 2 vanishes at the vendor: a backfill of its days takes it out of the books.
    opener.ledger.vouchers = [v for v in opener.ledger.vouchers if v.external_id != "2"]
    backfill = await cli("sync", "run", str(CONNECTION), "--backfill", "2025-01-01",
                         "2025-01-02", "--json", "--importer-url", url,
                         "--poll-seconds", "0.05")  # fmt: skip
    assert backfill.exit_code == 0, backfill.output
    job = json.loads(backfill.output)
    assert (job["status"], job["sync_mode"]) == ("completed", "backfill")
    assert job["counts"]["sync_vouchers_removed"] == 1
    assert job["counts"]["lines"] == 6
    both = await cli("sync", "run", str(CONNECTION), "--full", "--backfill", "2025-01-01",
                     "2025-01-02", "--importer-url", url)  # fmt: skip
    assert both.exit_code != 0
    assert "not both" in both.output

    unknown = await cli("sync", "status", "--connection", str(uuid.uuid4()), "--importer-url", url)
    assert unknown.exit_code != 0
    assert "no connection" in unknown.output
