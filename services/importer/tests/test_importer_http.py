"""The importer's HTTP routes, served from the test store (no broker): jobs, uploads, reports.

Report figures are checked against sums computed here from the generator's own vouchers,
not against numbers copied from a previous run.
"""

from __future__ import annotations

import csv
import io
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from ledgerlink.importer.handlers.http import build_router
from ledgerlink.importer.sample_ledgers import LedgerSpec, write_sie
from ledgerlink.importer.services.ledger_import import LedgerImportService
from ledgerlink.importer.storage.files import FileArea
from ledgerlink.importer.storage.models import (
    Company,
    FiscalYear,
    ImportJob,
    ImportStatus,
    ImportTrigger,
    messaging,
)
from ledgerlink.importer.storage.repository import ImportJobRepository
from ledgerlink.shared.db import Database
from ledgerlink.shared.messaging.outbox import Outbox

BUSINESS_ID = "0112038-9"
MAX_UPLOAD = 5_000_000
SPEC = LedgerSpec(lines=1200, seed=4, business_id="5560000001")
SE_ID = "556000-0001"
START = datetime(2026, 5, 1, 8, 0, tzinfo=UTC)


@pytest.fixture
def files(tmp_path: Path) -> FileArea:
    return FileArea(tmp_path / "files")


@pytest.fixture
def imports(db: Database, files: FileArea) -> LedgerImportService:
    return LedgerImportService(db, Outbox(messaging, source="test"), files)


@pytest.fixture
async def client(
    db: Database, files: FileArea, imports: LedgerImportService
) -> AsyncIterator[httpx.AsyncClient]:
    app = FastAPI()
    app.include_router(
        build_router(
            db,
            Outbox(messaging, source="test"),
            files,
            max_upload_bytes=MAX_UPLOAD,
            runner_progress=imports.progress,
        )
    )
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://importer") as client:
        yield client


async def add_job(db: Database, *, minutes: int, business_id: str = BUSINESS_ID) -> ImportJob:
    created = START + timedelta(minutes=minutes)
    async with db.transaction() as session:
        return await ImportJobRepository(session).add(
            ImportJob(
                connection_id=uuid.uuid4(),
                business_id=business_id,
                provider="netvisor",
                scope=["accounts", "ledger"],
                trigger=ImportTrigger.IMPORT_REQUESTED,
                status=ImportStatus.QUEUED,
                requested_event_id=str(uuid.uuid4()),
                created_at=created,
                updated_at=created,
            )
        )


async def test_get_import(db: Database, client: httpx.AsyncClient) -> None:
    job = await add_job(db, minutes=0)
    response = await client.get(f"/v1/imports/{job.id}")
    assert response.status_code == 200
    body = response.json()
    assert body == {
        "id": str(job.id),
        "connection_id": str(job.connection_id),
        "business_id": BUSINESS_ID,
        "provider": "netvisor",
        "scope": ["accounts", "ledger"],
        "trigger": "import_requested",
        "status": "queued",
        "file_location": None,
        "filename": None,
        "requested_event_id": job.requested_event_id,
        "outcome": None,
        "progress_lines": 0,
        "fiscal_year_start": None,
        "fiscal_year_end": None,
        "counts": None,
        "periods": None,
        "reconciliation_status": None,
        "differences": None,
        "notices": None,
        "replace_reason": None,  # issue 10: the reason of an explicit replacement
        "sync_mode": None,  # issue 14: first, incremental, full_refresh or backfill
        "sync_from": None,  # issue 14: a backfill's range of voucher dates
        "sync_to": None,
        "error_code": None,
        "error_message": None,
        "attempts": 0,
        "created_at": body["created_at"],
        "updated_at": body["updated_at"],
        "started_at": None,
        "finished_at": None,
    }
    assert datetime.fromisoformat(body["created_at"]) == START


async def test_unknown_import_is_404(client: httpx.AsyncClient) -> None:
    missing = uuid.uuid4()
    response = await client.get(f"/v1/imports/{missing}")
    assert response.status_code == 404
    assert response.json() == {"detail": f"no import {missing}"}


async def test_malformed_import_id_is_422(client: httpx.AsyncClient) -> None:
    response = await client.get("/v1/imports/not-a-uuid")
    assert response.status_code == 422


async def test_list_imports_newest_first(db: Database, client: httpx.AsyncClient) -> None:
    older = await add_job(db, minutes=0)
    newer = await add_job(db, minutes=5)
    await add_job(db, minutes=10, business_id="1927400-1")
    response = await client.get("/v1/imports", params={"business_id": BUSINESS_ID})
    assert response.status_code == 200
    assert [job["id"] for job in response.json()] == [str(newer.id), str(older.id)]

    response = await client.get("/v1/imports", params={"business_id": BUSINESS_ID, "limit": 1})
    assert [job["id"] for job in response.json()] == [str(newer.id)]


async def test_list_imports_needs_a_business_id(client: httpx.AsyncClient) -> None:
    assert (await client.get("/v1/imports")).status_code == 422
    response = await client.get("/v1/imports", params={"business_id": "2021005-7"})
    assert response.json() == []


# ------------------------------------------------------------------ uploads and reports


def expected_movements(
    spec: LedgerSpec, first: date, last: date, *, centre: str | None = None
) -> dict[str, tuple[Decimal, Decimal]]:
    """(debit, credit) per account over [first, last], from the generator itself."""
    totals: dict[str, tuple[Decimal, Decimal]] = {}
    for voucher in spec.vouchers():
        if not first <= voucher.date <= last:
            continue
        for line in voucher.lines:
            if centre is not None and line.cost_centre != centre:
                continue
            debit, credit = totals.get(line.account, (Decimal(0), Decimal(0)))
            if line.amount >= 0:
                debit += line.amount
            else:
                credit -= line.amount
            totals[line.account] = (debit, credit)
    return totals


async def upload_and_run(
    client: httpx.AsyncClient, imports: LedgerImportService, name: str, content: bytes
) -> dict[str, Any]:
    response = await client.post("/v1/imports", files={"file": (name, content)})
    assert response.status_code == 202, response.text
    accepted = response.json()
    claimed = await imports.claim_next()
    assert claimed is not None
    assert str(claimed.id) == accepted["import_id"]
    await imports.run(claimed)
    status = await client.get(accepted["status_url"])
    assert status.status_code == 200
    body: dict[str, Any] = status.json()
    return body


@pytest.fixture
def books(tmp_path: Path) -> bytes:
    return write_sie(SPEC, tmp_path / "books.se").read_bytes()


@pytest.fixture
async def imported(
    client: httpx.AsyncClient, imports: LedgerImportService, books: bytes
) -> dict[str, Any]:
    return await upload_and_run(client, imports, "books.se", books)


async def test_upload_imports_the_file(imported: dict[str, Any]) -> None:
    assert imported["status"] == "completed", imported["error_message"]
    assert imported["business_id"] == SE_ID
    assert imported["trigger"] == "upload"
    assert imported["filename"] == "books.se"
    assert imported["counts"]["lines"] == 1200
    assert imported["progress_lines"] == 1200
    assert imported["reconciliation_status"] == "balanced"


async def test_trial_balance_for_the_year(
    client: httpx.AsyncClient, imported: dict[str, Any]
) -> None:
    response = await client.get(f"/v1/companies/{SE_ID}/trial-balance")

    assert response.status_code == 200
    body = response.json()
    assert body["header"]["period_from"] == "2024-01"
    assert body["header"]["period_to"] == "2024-12"
    closing = SPEC.closing()
    moved = expected_movements(SPEC, SPEC.start, SPEC.end)
    rows = {row["account"]: row for row in body["accounts"]}
    for account, row in rows.items():
        assert Decimal(row["closing"]) == closing[account]
        assert Decimal(row["opening"]) == SPEC.opening.get(account, Decimal(0))
        assert (Decimal(row["debit"]), Decimal(row["credit"])) == moved.get(
            account, (Decimal(0), Decimal(0))
        )
    assert {a for a, v in closing.items() if v or a in moved} == set(rows)
    assert Decimal(body["totals"]["closing"]) == 0
    assert Decimal(body["totals"]["debit"]) == Decimal(body["totals"]["credit"])


async def test_trial_balance_for_a_range_opens_with_earlier_periods(
    client: httpx.AsyncClient, imported: dict[str, Any]
) -> None:
    response = await client.get(
        f"/v1/companies/{SE_ID}/trial-balance", params={"from": "2024-04-01", "to": "2024-06"}
    )

    assert response.status_code == 200
    rows = {row["account"]: row for row in response.json()["accounts"]}
    before = expected_movements(SPEC, SPEC.start, date(2024, 3, 31))
    during = expected_movements(SPEC, date(2024, 4, 1), date(2024, 6, 30))
    for account, row in rows.items():
        debit, credit = before.get(account, (Decimal(0), Decimal(0)))
        assert Decimal(row["opening"]) == SPEC.opening.get(account, Decimal(0)) + debit - credit
        assert (Decimal(row["debit"]), Decimal(row["credit"])) == during.get(
            account, (Decimal(0), Decimal(0))
        )


async def test_trial_balance_per_cost_centre(
    client: httpx.AsyncClient, imported: dict[str, Any]
) -> None:
    response = await client.get(
        f"/v1/companies/{SE_ID}/trial-balance",
        params={"from": "2024-02", "to": "2024-02", "dimension": "1", "object": "100"},
    )

    assert response.status_code == 200
    body = response.json()
    assert body["dimension_id"] == "1"
    moved = expected_movements(SPEC, date(2024, 2, 1), date(2024, 2, 29), centre="100")
    assert moved
    assert {
        row["account"]: (Decimal(row["debit"]), Decimal(row["credit"]))
        for row in body["accounts"]
        if Decimal(row["debit"]) or Decimal(row["credit"])
    } == moved


async def test_trial_balance_as_csv(client: httpx.AsyncClient, imported: dict[str, Any]) -> None:
    as_json = (await client.get(f"/v1/companies/{SE_ID}/trial-balance")).json()
    response = await client.get(
        f"/v1/companies/{SE_ID}/trial-balance", headers={"Accept": "text/csv"}
    )

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(response.text)))
    assert rows[0] == ["account", "name", "opening", "debit", "credit", "movement", "closing"]
    assert [r[0] for r in rows[1:-1]] == [a["account"] for a in as_json["accounts"]]
    assert rows[-1][6] == as_json["totals"]["closing"]
    explicit = await client.get(f"/v1/companies/{SE_ID}/trial-balance", params={"format": "csv"})
    assert explicit.text == response.text


async def test_profit_and_loss_period_and_year_to_date(
    client: httpx.AsyncClient, imported: dict[str, Any]
) -> None:
    response = await client.get(
        f"/v1/companies/{SE_ID}/profit-and-loss", params={"from": "2024-03", "to": "2024-03"}
    )

    assert response.status_code == 200
    body = response.json()
    assert body["columns"] == ["period", "year_to_date"]

    def result(first: date, last: date) -> Decimal:
        moved = expected_movements(SPEC, first, last)
        return -sum((d - c for a, (d, c) in moved.items() if a[0] in "345678"), Decimal(0))

    assert [Decimal(v) for v in body["totals"]["result"]] == [
        result(date(2024, 3, 1), date(2024, 3, 31)),
        result(SPEC.start, date(2024, 3, 31)),
    ]
    revenue = next(s for s in body["sections"] if s["key"] == "revenue")
    assert all(Decimal(line["amounts"][1]) > 0 for line in revenue["lines"])


async def test_balance_sheet_balances(client: httpx.AsyncClient, imported: dict[str, Any]) -> None:
    response = await client.get(f"/v1/companies/{SE_ID}/balance-sheet", params={"to": "2024-06"})

    assert response.status_code == 200
    body = response.json()
    assert body["header"]["to_date"] == "2024-06-30"
    assert Decimal(body["totals"]["difference"][0]) == 0
    closing = dict(SPEC.opening)
    for account, (debit, credit) in expected_movements(SPEC, SPEC.start, date(2024, 6, 30)).items():
        closing[account] = closing.get(account, Decimal(0)) + debit - credit
    assets = sum((v for a, v in closing.items() if a[0] == "1"), Decimal(0))
    assert Decimal(body["totals"]["assets"][0]) == assets


@pytest.mark.parametrize(
    ("params", "words"),
    [
        ({"from": "2024-04-02"}, "not the first day of a period"),
        ({"to": "2024-04-29"}, "not the last day of a period"),
        ({"from": "2024-05", "to": "2024-04"}, "is after"),
        ({"to": "2031-01"}, "in no imported fiscal year"),
        ({"from": "april"}, "is not a date"),
    ],
)
async def test_bad_report_ranges_are_400_with_the_reason(
    client: httpx.AsyncClient, imported: dict[str, Any], params: dict[str, str], words: str
) -> None:
    response = await client.get(f"/v1/companies/{SE_ID}/trial-balance", params=params)

    assert response.status_code == 400
    assert words in response.json()["detail"]


async def test_unknown_company_is_404(client: httpx.AsyncClient) -> None:
    response = await client.get("/v1/companies/999999999/profit-and-loss")

    assert response.status_code == 404
    assert "no books have been imported for business ID 999999999" in response.json()["detail"]


@pytest.mark.parametrize(
    ("content", "status", "words"),
    [
        (b"", 400, "empty"),
        (b"%PDF-1.7 not a ledger", 400, "neither SIE 4"),
        (b"#FLAGGA 0\n" + b"x" * MAX_UPLOAD, 413, "larger than the limit"),
    ],
)
async def test_bad_uploads_are_refused(
    client: httpx.AsyncClient, files: FileArea, content: bytes, status: int, words: str
) -> None:
    response = await client.post("/v1/imports", files={"file": ("x.se", content)})

    assert response.status_code == status
    assert words in response.json()["detail"]
    uploads = files.root / "uploads"
    assert not uploads.exists() or not any(uploads.iterdir())


# ----------------------------------------------------------------------- issue 10


async def test_replace_without_a_reason_is_400(
    client: httpx.AsyncClient, files: FileArea, books: bytes
) -> None:
    response = await client.post(
        "/v1/imports", files={"file": ("books.se", books)}, data={"replace": "true"}
    )

    assert response.status_code == 400
    assert "replace=true needs a reason" in response.json()["detail"]
    uploads = files.root / "uploads"
    assert not uploads.exists() or not any(uploads.iterdir())


async def test_replace_with_a_reason_is_recorded_on_the_job(
    client: httpx.AsyncClient, books: bytes
) -> None:
    response = await client.post(
        "/v1/imports",
        files={"file": ("books.se", books)},
        data={"replace": "true", "reason": "  the year was re-exported after an audit  "},
    )

    assert response.status_code == 202
    job = (await client.get(response.json()["status_url"])).json()
    assert job["replace_reason"] == "the year was re-exported after an audit"


async def test_a_stored_year_that_ends_before_it_starts_answers_default_reports(
    db: Database, client: httpx.AsyncClient
) -> None:
    # What an import left before impossible years were refused: #RAR 0 20210301 20200228.
    async with db.transaction() as session:
        company = Company(
            business_id=SE_ID, country="SE", name="Broken AB", currency="SEK", chart="BAS"
        )
        session.add(company)
        await session.flush()
        session.add(
            FiscalYear(
                company_id=company.id,
                start=date(2021, 3, 1),
                end=date(2020, 2, 28),
                import_id=uuid.uuid4(),
                content_hash="0" * 64,
                source_format="sie",
            )
        )

    for report in ("trial-balance", "profit-and-loss", "balance-sheet"):
        response = await client.get(f"/v1/companies/{SE_ID}/{report}")
        assert response.status_code == 200, (report, response.text)
        header = response.json()["header"]
        assert (header["period_from"], header["period_to"]) == ("2021-03", "2021-03")


def _with_object_openings(books: bytes) -> bytes:
    text = books.decode("cp437")
    anchor = "#IB 0 1220 "
    assert anchor in text
    openings = '#OIB 0 1510 {1 "100"} 1000.00\r\n#OIB 0 3010 {1 "100"} -250.00\r\n'
    return text.replace(anchor, openings + anchor, 1).encode("cp437")


async def test_trial_balance_per_object_starts_from_the_object_opening(
    client: httpx.AsyncClient, imports: LedgerImportService, books: bytes
) -> None:
    job = await upload_and_run(client, imports, "books.se", _with_object_openings(books))
    assert job["status"] == "completed", job["error_message"]
    params = {"dimension": "1", "object": "100"}

    report = (await client.get(f"/v1/companies/{SE_ID}/trial-balance", params=params)).json()

    rows = {row["account"]: row for row in report["accounts"]}
    assert rows["1510"]["opening"] == "1000.00"
    assert rows["3010"]["opening"] == "-250.00"
    for row in rows.values():
        movement = Decimal(row["debit"]) - Decimal(row["credit"])
        assert Decimal(row["closing"]) == Decimal(row["opening"]) + movement


def _with_previous_year(books: bytes) -> bytes:
    text = books.decode("cp437")
    anchor = "#IB 0 1220 "
    previous = (
        "#RAR -1 20230101 20231231\r\n"
        "#UB -1 1220 150000.00\r\n#UB -1 2081 -100000.00\r\n#UB -1 2091 -30000.00\r\n"
        "#RES -1 3010 -50000.00\r\n#RES -1 5010 30000.00\r\n"
    )
    return text.replace(anchor, previous + anchor, 1).encode("cp437")


async def test_statements_show_the_comparison_year(
    client: httpx.AsyncClient, imports: LedgerImportService, books: bytes
) -> None:
    job = await upload_and_run(client, imports, "books.se", _with_previous_year(books))
    assert job["status"] == "completed", job["error_message"]

    pnl = (await client.get(f"/v1/companies/{SE_ID}/profit-and-loss")).json()
    sheet = (await client.get(f"/v1/companies/{SE_ID}/balance-sheet")).json()

    assert pnl["columns"] == ["period", "year_to_date", "previous_year"]
    lines = {ln["account"]: ln["amounts"] for s in pnl["sections"] for ln in s["lines"]}
    assert lines["3010"][2] == "50000.00"
    assert lines["5010"][2] == "-30000.00"
    assert pnl["totals"]["result"][2] == "20000.00"
    assert sheet["columns"] == ["balance", "previous_year_end"]
    assert sheet["totals"]["assets"][1] == "150000.00"
    # 100 000 + 30 000 of equity and the previous year's result of 20 000.
    assert sheet["totals"]["equity_and_liabilities"][1] == "150000.00"
    assert sheet["totals"]["difference"][1] == "0.00"


async def test_statements_without_a_comparison_year_keep_their_columns(
    client: httpx.AsyncClient, imported: dict[str, Any]
) -> None:
    pnl = (await client.get(f"/v1/companies/{SE_ID}/profit-and-loss")).json()
    sheet = (await client.get(f"/v1/companies/{SE_ID}/balance-sheet")).json()

    assert pnl["columns"] == ["period", "year_to_date"]
    assert sheet["columns"] == ["balance"]
