"""Over the wire: ledger files imported by the importer process, events on Kafka, reports
over HTTP, and an import killed mid-way that leaves the year as it was."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine
from wire_helpers import EventReader, PlainKafkaClient, Seen, eventually

from ledgerlink.cli.stack import Stack
from ledgerlink.importer.sample_ledgers import LedgerSpec, write_sie
from ledgerlink.shared.testing import KafkaBackend
from ledgerlink.shared.topics import Topic

pytestmark = pytest.mark.wire

REQUESTED = "ledgerlink.import.requested.v1"
SE_ID = "556000-0001"


def of_type(reader: EventReader, ce_type: str) -> Callable[[Seen], bool]:
    topic = reader.topic(Topic.IMPORTS)
    return lambda seen: seen.topic == topic and seen.type == f"ledgerlink.{ce_type}.v1"


def spec(lines: int, seed: int = 1) -> LedgerSpec:
    return LedgerSpec(lines=lines, seed=seed, business_id="5560000001")


async def upload(http: httpx.AsyncClient, url: str, name: str, content: bytes) -> str:
    response = await http.post(f"{url}/v1/imports", files={"file": (name, content)})
    assert response.status_code == 202, response.text
    import_id: str = response.json()["import_id"]
    return import_id


async def job_status(http: httpx.AsyncClient, url: str, import_id: str) -> dict[str, Any]:
    response = await http.get(f"{url}/v1/imports/{import_id}")
    assert response.status_code == 200
    body: dict[str, Any] = response.json()
    return body


async def finished(http: httpx.AsyncClient, url: str, import_id: str) -> dict[str, Any]:
    async def done() -> dict[str, Any] | None:
        job = await job_status(http, url, import_id)
        return job if job["status"] in ("completed", "failed") else None

    return await eventually(done, what=f"import {import_id} to finish", timeout=120)


async def test_file_import_requested_over_kafka_is_reported_over_http(
    stack: Stack, reader: EventReader, kafka_backend: KafkaBackend, tmp_path: Path
) -> None:
    ledger = spec(2000)
    drop = tmp_path / "drop"
    drop.mkdir()
    path = write_sie(ledger, drop / "books-2024.se")
    await stack.up(("importer",))
    async with PlainKafkaClient(
        kafka_backend.bootstrap_servers, stack.config.topic_prefix
    ) as client:
        await client.send(
            Topic.IMPORT_REQUESTS,
            {
                "connection_id": str(uuid.uuid4()),
                "business_id": SE_ID,
                "provider": "sie",
                "file_location": path.as_uri(),
            },
            key=SE_ID,
            ce_type=REQUESTED,
        )

    [completed] = await reader.wait_for(of_type(reader, "import.completed"))
    [ready] = await reader.wait_for(of_type(reader, "reports.ready"))
    [started] = reader.matching(of_type(reader, "import.started"))
    [queued] = reader.matching(of_type(reader, "import.queued"))
    import_id = queued.data["import_id"]
    assert started.data["import_id"] == completed.data["import_id"] == import_id
    assert completed.key == SE_ID
    assert completed.data["counts"]["lines"] == 2000
    assert completed.data["reconciliation_status"] == "balanced"
    assert completed.data["periods"][0] == "2024-01"
    assert ready.data["reports"][0] == f"/v1/companies/{SE_ID}/trial-balance"

    url = stack.services["importer"].url
    async with httpx.AsyncClient() as http:
        response = await http.get(f"{url}{ready.data['reports'][0]}")
    assert response.status_code == 200
    closing = ledger.closing()
    rows = response.json()["accounts"]
    assert rows
    assert all(Decimal(row["closing"]) == closing[row["account"]] for row in rows)


async def test_bad_upload_fails_with_its_reason_and_leaves_no_books(
    stack: Stack, reader: EventReader, tmp_path: Path
) -> None:
    path = write_sie(spec(300), tmp_path / "bad.se")
    content = path.read_bytes().replace(b"   #TRANS 1920 ", b"   #TRANS 9999 ", 1)
    await stack.up(("importer",))
    url = stack.services["importer"].url
    async with httpx.AsyncClient() as http:
        import_id = await upload(http, url, "bad.se", content)
        job = await finished(http, url, import_id)
        report = await http.get(f"{url}/v1/companies/{SE_ID}/trial-balance")

    assert job["status"] == "failed"
    assert job["error_code"] == "undeclared_account"
    assert "account 9999" in job["error_message"]
    [failed] = await reader.wait_for(of_type(reader, "import.failed"))
    assert failed.data["import_id"] == import_id
    assert failed.data["reason_code"] == "undeclared_account"
    assert "bad.se line" in failed.data["location"]
    assert report.status_code == 404


async def _count_rows(database_url: str) -> dict[str, int]:
    engine = create_async_engine(database_url)
    try:
        async with engine.connect() as connection:
            counts = {}
            for table in ("fiscal_years", "vouchers", "voucher_lines", "period_balances"):
                result = await connection.execute(text(f"SELECT count(*) FROM {table}"))  # noqa: S608
                counts[table] = int(result.scalar_one())
            return counts
    finally:
        await engine.dispose()


async def test_import_killed_mid_year_leaves_the_old_year_and_rerun_completes(
    stack: Stack, reader: EventReader, tmp_path: Path
) -> None:
    """SIGKILL while a newer file replaces a year: the old year stays whole; a restart
    takes the job over once its lease runs out and completes it."""
    settings = {
        "LEDGERLINK_IMPORTER_IMPORT_LEASE_SECONDS": "2",
        "LEDGERLINK_IMPORTER_IMPORT_BATCH_LINES": "500",
    }
    old, new = spec(1000, seed=1), spec(150_000, seed=2)
    old_file = write_sie(old, tmp_path / "old.se").read_bytes()
    new_file = write_sie(new, tmp_path / "new.se").read_bytes()
    stack.migrate("importer")
    stack.start("importer", settings)
    await stack.wait_ready("importer")
    url = stack.services["importer"].url
    database_url = stack.config.database_urls["importer"]

    async with httpx.AsyncClient() as http:
        first = await finished(http, url, await upload(http, url, "old.se", old_file))
        assert first["status"] == "completed"
        before = await _count_rows(database_url)
        assert before["voucher_lines"] == 1000

        import_id = await upload(http, url, "new.se", new_file)

        async def midway() -> dict[str, Any] | None:
            job = await job_status(http, url, import_id)
            assert job["status"] != "completed", "the import finished before it could be killed"
            return job if job["status"] == "running" and job["progress_lines"] > 0 else None

        await eventually(midway, what="the import to be part-way", interval=0.02)
        stack.kill("importer")

        assert await _count_rows(database_url) == before

        stack.start("importer", settings)
        await stack.wait_ready("importer")
        job = await finished(http, url, import_id)

    assert job["status"] == "completed", job["error_message"]
    assert job["outcome"] == "replaced"
    assert job["attempts"] == 2
    after = await _count_rows(database_url)
    assert after["voucher_lines"] == 150_000
    assert after["fiscal_years"] == 1
    started = await reader.wait_for(
        lambda seen: (
            of_type(reader, "import.started")(seen) and seen.data["import_id"] == import_id
        ),
        count=2,
    )
    assert sorted(seen.data["attempt"] for seen in started) == [1, 2]
    await reader.wait_for(
        lambda seen: (
            of_type(reader, "import.completed")(seen) and seen.data["import_id"] == import_id
        )
    )
