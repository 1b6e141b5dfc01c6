"""``ledgerlink import`` and ``ledgerlink report`` against a real importer and store.

The importer's HTTP routes are served by uvicorn on a free port of 127.0.0.1 from the
test's event loop, with an import runner beside them, over the test store (PostgreSQL and
SQLite). The CLI runs in a worker thread, as a user's process would: blocking HTTP, its
own event loop for ``--direct``. Expected figures come from the generator's own vouchers.
"""

from __future__ import annotations

import asyncio
import json
import re
import socket
from collections.abc import AsyncIterator
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from fastapi import FastAPI
from sqlalchemy import select
from sqlmodel import col
from typer.testing import CliRunner, Result

from ledgerlink.cli.main import app
from ledgerlink.importer.handlers.http import build_router
from ledgerlink.importer.sample_ledgers import LedgerSpec, write_saft, write_sie
from ledgerlink.importer.services.ledger_import import ImportSettings, LedgerImportService
from ledgerlink.importer.services.runner import ImportRunner
from ledgerlink.importer.storage.files import FileArea
from ledgerlink.importer.storage.models import ImportJob, ImportStatus, messaging
from ledgerlink.shared.db import Database
from ledgerlink.shared.messaging.outbox import Outbox
from ledgerlink.shared.testing import serving

SPEC = LedgerSpec(lines=1500, seed=11)
SE_ID = "556000-0001"  # SPEC.business_id as the importer keeps it
SAFT_SPEC = LedgerSpec(lines=400, seed=5, business_id="923456783", name="Eksempel AS")
DATA = Path(__file__).resolve().parents[2] / ".." / "shared" / "data"
SAMPLE_999 = DATA / "saf-t" / "example-financial-999999999.xml"
RUNNER = CliRunner()
ZERO = Decimal(0)


# ------------------------------------------------------------------------ helpers


async def cli(*args: str, env: dict[str, str] | None = None) -> Result:
    """Run ``ledgerlink ARGS`` in a worker thread (it blocks, and may run its own loop)."""

    def invoke() -> Result:
        return RUNNER.invoke(app, list(args), env=env)

    return await asyncio.to_thread(invoke)


def vouchers(spec: LedgerSpec) -> int:
    return sum(1 for _ in spec.vouchers())


def movements(spec: LedgerSpec, first: date, last: date) -> dict[str, Decimal]:
    """Net movement (debit positive) per account over [first, last], from the generator."""
    moved: dict[str, Decimal] = {}
    for voucher in spec.vouchers():
        if first <= voucher.date <= last:
            for line in voucher.lines:
                moved[line.account] = moved.get(line.account, ZERO) + line.amount
    return moved


def table_rows(output: str) -> dict[str, list[Decimal]]:
    """Account rows of a printed table: account -> its trailing amounts."""
    rows: dict[str, list[Decimal]] = {}
    amount = re.compile(r"^-?\d+\.\d{2}$")
    for line in output.splitlines():
        cells = line.split()
        if len(cells) < 3 or not re.fullmatch(r"\d{4}", cells[0]):
            continue
        tail = [Decimal(cell) for cell in cells if amount.match(cell)]
        rows[cells[0]] = tail
    return rows


@pytest.fixture
async def importer(db: Database, tmp_path: Path) -> AsyncIterator[str]:
    """The importer's HTTP API and an import runner on the test store; yields its URL."""
    files = FileArea(tmp_path / "importer-files")
    outbox = Outbox(messaging, source="ledgerlink/importer")
    service = LedgerImportService(db, outbox, files, ImportSettings(batch_lines=300))
    runner = ImportRunner(service, poll_seconds=0.05)
    api = FastAPI()
    api.include_router(
        build_router(
            db,
            outbox,
            files,
            max_upload_bytes=50_000_000,
            runner_progress=service.progress,
            on_queued=runner.wake,
        )
    )
    config = uvicorn.Config(
        api, host="127.0.0.1", port=0, log_level="warning", access_log=False, lifespan="off"
    )
    runner.start()
    try:
        async with serving(config) as url:
            yield url
    finally:
        await runner.stop()


@pytest.fixture
def books(tmp_path: Path) -> Path:
    return write_sie(SPEC, tmp_path / "books.se")


@pytest.fixture
async def imported(importer: str, books: Path) -> str:
    """SPEC imported through the CLI; yields the importer's URL."""
    result = await cli("import", str(books), "--importer-url", importer)
    assert result.exit_code == 0, result.output
    return importer


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


# ------------------------------------------------------------------------- import


async def test_import_over_http_prints_the_summary(importer: str, books: Path) -> None:
    result = await cli("import", str(books), "--importer-url", importer)

    assert result.exit_code == 0, result.output
    out = result.stdout
    assert f"Imported books.se: {SPEC.name} ({SE_ID})" in out
    assert "fiscal year     2024-01-01 to 2024-12-31" in out
    assert "outcome         imported" in out
    assert f"{vouchers(SPEC):,} vouchers, {SPEC.lines:,} lines" in out
    assert "periods         2024-01 to 2024-12 (12)" in out
    assert "reconciliation  balanced" in out
    assert "notices         0" in out
    assert result.stderr == ""


async def test_import_over_http_as_json(importer: str, books: Path) -> None:
    result = await cli(
        "import", str(books), "--business-id", SE_ID, "--json", "--importer-url", importer
    )

    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["status"] == "completed"
    assert summary["outcome"] == "imported"
    assert summary["company"] == {"business_id": SE_ID, "name": SPEC.name}
    assert summary["fiscal_year"] == {"start": "2024-01-01", "end": "2024-12-31"}
    assert summary["counts"] == {
        "accounts": 21,
        "dimensions": 2,
        "objects": 7,
        "vouchers": vouchers(SPEC),
        "lines": SPEC.lines,
    }
    assert summary["periods"] == [f"2024-{month:02}" for month in range(1, 13)]
    assert summary["reconciliation_status"] == "balanced"
    assert summary["differences"] == []
    assert summary["error_code"] is None


async def test_import_of_the_same_file_again_is_unchanged(imported: str, books: Path) -> None:
    result = await cli("import", str(books), "--json", "--importer-url", imported)

    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["outcome"] == "unchanged"
    assert summary["counts"]["lines"] == SPEC.lines


async def test_import_of_saft_over_http(importer: str, tmp_path: Path) -> None:
    path = write_saft(SAFT_SPEC, tmp_path / "books.xml")

    result = await cli("import", str(path), "--json", "--importer-url", importer)

    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["company"] == {"business_id": "923456783", "name": "Eksempel AS"}
    assert summary["counts"]["vouchers"] == vouchers(SAFT_SPEC)
    assert summary["counts"]["lines"] == SAFT_SPEC.lines
    assert summary["reconciliation_status"] == "balanced"


async def test_import_of_the_norwegian_sample_shows_its_differences(importer: str) -> None:
    if not SAMPLE_999.is_file():
        pytest.skip(f"the SAF-T sample is not here: {SAMPLE_999}")

    result = await cli("import", str(SAMPLE_999), "--importer-url", importer)

    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "reconciliation  differences: 4 account(s) do not reconcile" in out
    expected = {
        "1925": "-23611.11",
        "2400": "11111.11",
        "2740": "13611.11",
        "4000": "10000.00",
    }
    shown = {
        cells[0]: cells[1]
        for cells in (line.split() for line in out.splitlines())
        if len(cells) == 6 and re.fullmatch(r"\d{4}", cells[0])
    }
    assert shown == expected

    as_json = await cli("import", str(SAMPLE_999), "--json", "--importer-url", importer)
    summary = json.loads(as_json.stdout)
    assert summary["reconciliation_status"] == "differences"
    assert {d["account"]: d["difference"] for d in summary["differences"]} == expected


async def test_import_of_a_bad_file_fails_with_its_error_code(
    importer: str, tmp_path: Path, db: Database
) -> None:
    bad = tmp_path / "bad.se"
    bad.write_text(
        '#FLAGGA 0\n#SIETYP 4\n#ORGNR 5560000001\n#FNAMN "Bad AB"\n#RAR 0 20240101 20241231\n'
        '#KONTO 1920 "Bank"\n#KONTO 3010 "Sales"\n#VER A 1 20240105 "x"\n{\n'
        "   #TRANS 1920 {} 100.00\n   #TRANS 3010 {} -90.00\n}\n",
        encoding="cp437",
    )

    result = await cli("import", str(bad), "--importer-url", importer)

    assert result.exit_code == 1
    assert "error [unbalanced_voucher]:" in result.stderr
    assert "does not balance" in result.stderr
    async with db.transaction() as session:
        jobs = (await session.execute(select(ImportJob))).scalars().all()
    assert [job.status for job in jobs] == [ImportStatus.FAILED]


async def test_import_of_the_wrong_company_fails(importer: str, books: Path) -> None:
    result = await cli(
        "import", str(books), "--business-id", "5569999999", "--json", "--importer-url", importer
    )

    assert result.exit_code == 1
    assert "error [business_id_mismatch]:" in result.stderr
    assert json.loads(result.stdout)["status"] == "failed"


async def test_import_of_a_file_of_no_known_format_is_refused(tmp_path: Path) -> None:
    text = tmp_path / "notes.txt"
    text.write_text("just some notes\n")

    result = await cli("import", str(text), "--importer-url", f"http://127.0.0.1:{closed_port()}")

    assert result.exit_code == 1
    assert "error [unknown_format]:" in result.stderr


async def test_import_without_a_reachable_importer_is_a_usage_error(books: Path) -> None:
    url = f"http://127.0.0.1:{closed_port()}"

    result = await cli("import", str(books), "--importer-url", url)

    assert result.exit_code == 2
    assert f"cannot reach the importer at {url}" in result.stderr
    assert "--direct" in result.stderr


async def test_import_of_a_missing_file_is_a_usage_error(tmp_path: Path) -> None:
    result = await cli("import", str(tmp_path / "nowhere.se"))

    assert result.exit_code == 2
    assert "does not exist" in result.stderr


# ------------------------------------------------------------------------- direct


async def test_import_direct_into_the_store(
    db: Database, database_url: str, books: Path, tmp_path: Path
) -> None:
    result = await cli(
        "import",
        str(books),
        "--direct",
        "--database-url",
        database_url,
        "--json",
        env={"LEDGERLINK_IMPORTER_FILES_DIR": str(tmp_path / "files")},
    )

    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["status"] == "completed"
    assert summary["company"] == {"business_id": SE_ID, "name": SPEC.name}
    assert summary["counts"]["vouchers"] == vouchers(SPEC)
    assert summary["counts"]["lines"] == SPEC.lines
    assert summary["reconciliation_status"] == "balanced"
    async with db.transaction() as session:
        job = (await session.execute(select(ImportJob))).scalar_one()
        events = (
            (await session.execute(select(messaging.outbox.c.event_type).order_by("id")))
            .scalars()
            .all()
        )
    assert job.status is ImportStatus.COMPLETED
    assert job.trigger == "upload"
    assert job.file_location == books.as_uri()
    assert job.attempts == 1
    assert events == [
        "ledgerlink.import.started.v1",
        "ledgerlink.import.completed.v1",
        "ledgerlink.reports.ready.v1",
    ]


async def test_import_direct_prints_the_summary_and_fails_like_over_http(
    db: Database, database_url: str, books: Path, tmp_path: Path
) -> None:
    env = {"LEDGERLINK_IMPORTER_FILES_DIR": str(tmp_path / "files")}
    result = await cli("import", str(books), "--direct", "--database-url", database_url, env=env)
    assert result.exit_code == 0, result.output
    assert f"Imported books.se: {SPEC.name} ({SE_ID})" in result.stdout
    assert "reconciliation  balanced" in result.stdout

    wrong = await cli(
        "import",
        str(books),
        "--direct",
        "--database-url",
        database_url,
        "--business-id",
        "5569999999",
        env=env,
    )
    assert wrong.exit_code == 1
    assert "error [business_id_mismatch]:" in wrong.stderr


async def test_import_direct_of_a_file_with_a_long_path_copies_it(
    db: Database, database_url: str, tmp_path: Path
) -> None:
    deep = tmp_path / ("d" * 120) / ("e" * 120) / ("f" * 60)
    deep.mkdir(parents=True)
    books = write_sie(SPEC, deep / "books.se")
    assert len(books.as_uri()) > 300  # longer than an import job keeps
    files = tmp_path / "files"

    result = await cli(
        "import",
        str(books),
        "--direct",
        "--database-url",
        database_url,
        "--json",
        env={"LEDGERLINK_IMPORTER_FILES_DIR": str(files)},
    )

    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["counts"]["lines"] == SPEC.lines
    async with db.transaction() as session:
        job = (await session.execute(select(ImportJob))).scalar_one()
    assert job.file_location is not None
    assert job.file_location.startswith("uploads/")
    assert (files / job.file_location).read_bytes() == books.read_bytes()


def test_import_direct_refuses_a_store_that_does_not_exist(books: Path, tmp_path: Path) -> None:
    store = tmp_path / "nothing-here.db"

    result = RUNNER.invoke(
        app, ["import", str(books), "--direct", "--database-url", f"sqlite+aiosqlite:///{store}"]
    )

    assert result.exit_code == 2
    assert "error [store_not_migrated]:" in result.stderr
    assert "ledgerlink-importer migrate" in result.stderr
    assert not store.exists()


def test_import_direct_refuses_an_unmigrated_store(books: Path, tmp_path: Path) -> None:
    store = tmp_path / "empty.db"
    store.touch()

    result = RUNNER.invoke(
        app, ["import", str(books), "--direct", "--database-url", f"sqlite+aiosqlite:///{store}"]
    )

    assert result.exit_code == 2
    assert "is not migrated" in result.stderr
    assert "ledgerlink-importer migrate" in result.stderr


def test_database_url_needs_direct(books: Path) -> None:
    result = RUNNER.invoke(app, ["import", str(books), "--database-url", "sqlite+aiosqlite://"])

    assert result.exit_code == 2
    assert "--direct" in result.stderr


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--replace"], "--replace needs --reason"),
        (["--replace", "--reason", "  "], "--replace needs --reason"),
        (["--reason", "why"], "--reason goes with --replace"),
    ],
)
def test_replace_and_reason_go_together(books: Path, args: list[str], words: str) -> None:
    result = RUNNER.invoke(app, ["import", str(books), *args])

    assert result.exit_code == 2
    assert words in result.stderr


@pytest.fixture
def chart(books: Path, tmp_path: Path) -> Path:
    """The same company's books with the chart only (no balances, no vouchers)."""
    text = books.read_bytes().decode("cp437")
    path = tmp_path / "chart.se"
    path.write_bytes(text[: text.index("#IB ")].encode("cp437"))
    return path


async def test_import_direct_records_an_explicit_replacement(
    db: Database, database_url: str, books: Path, chart: Path, tmp_path: Path
) -> None:
    env = {"LEDGERLINK_IMPORTER_FILES_DIR": str(tmp_path / "files")}
    args = ["--direct", "--database-url", database_url, "--json"]
    first = await cli("import", str(books), *args, env=env)
    assert first.exit_code == 0, first.output

    refused = await cli("import", str(chart), *args, env=env)
    replaced = await cli(
        "import", str(chart), *args, "--replace", "--reason", "chart re-imported", env=env
    )

    assert refused.exit_code == 1
    assert json.loads(refused.stdout)["error_code"] == "replace_refused"
    assert "error [replace_refused]" in refused.stderr
    assert replaced.exit_code == 0, replaced.output
    assert json.loads(replaced.stdout)["outcome"] == "replaced"
    async with db.transaction() as session:
        reasons = (await session.execute(select(col(ImportJob.replace_reason)))).scalars().all()
    assert sorted(reason or "" for reason in reasons) == ["", "", "chart re-imported"]


# ------------------------------------------------------------------------ reports


async def test_trial_balance_as_of_a_date(imported: str) -> None:
    result = await cli(
        "report",
        "trial-balance",
        "--business-id",
        SE_ID,
        "--as-of",
        "2024-06-15",
        "--importer-url",
        imported,
    )

    assert result.exit_code == 0, result.output
    assert f"Trial balance: {SPEC.name} ({SE_ID})" in result.stdout
    assert "Periods 2024-01 to 2024-06" in result.stdout
    rows = table_rows(result.stdout)
    moved = movements(SPEC, SPEC.start, date(2024, 6, 30))
    expected = {
        account: [
            SPEC.opening.get(account, ZERO),
            moved.get(account, ZERO),
            SPEC.opening.get(account, ZERO) + moved.get(account, ZERO),
        ]
        for account in {*SPEC.opening, *moved}
    }
    assert rows == expected
    total = next(line for line in result.stdout.splitlines() if line.split()[:1] == ["Total"])
    assert total.split()[1:] == ["0.00", "0.00", "0.00"]


async def test_trial_balance_for_a_range_as_json_and_csv(imported: str) -> None:
    common = ["--business-id", SE_ID, "--from", "2024-04", "--to", "2024-06"]
    as_json = await cli("report", "trial-balance", *common, "--json", "--importer-url", imported)
    as_csv = await cli("report", "trial-balance", *common, "--csv", "--importer-url", imported)

    assert as_json.exit_code == 0, as_json.output
    body = json.loads(as_json.stdout)
    assert body["header"]["period_from"] == "2024-04"
    assert body["header"]["period_to"] == "2024-06"
    before = movements(SPEC, SPEC.start, date(2024, 3, 31))
    during = movements(SPEC, date(2024, 4, 1), date(2024, 6, 30))
    for row in body["accounts"]:
        opening = SPEC.opening.get(row["account"], ZERO) + before.get(row["account"], ZERO)
        assert Decimal(row["opening"]) == opening
        assert Decimal(row["movement"]) == during.get(row["account"], ZERO)
    assert as_csv.exit_code == 0, as_csv.output
    lines = as_csv.stdout.splitlines()
    assert lines[0] == "account,name,opening,debit,credit,movement,closing"
    assert len(lines) == len(body["accounts"]) + 2


async def test_trial_balance_of_one_cost_centre(imported: str) -> None:
    result = await cli(
        "report",
        "trial-balance",
        "--business-id",
        SE_ID,
        "--from",
        "2024-02",
        "--to",
        "2024-02",
        "--dimension",
        "1",
        "--object",
        "100",
        "--json",
        "--importer-url",
        imported,
    )

    assert result.exit_code == 0, result.output
    body = json.loads(result.stdout)
    expected: dict[str, Decimal] = {}
    for voucher in SPEC.vouchers():
        if voucher.date.month == 2:
            for line in voucher.lines:
                if line.cost_centre == "100":
                    expected[line.account] = expected.get(line.account, ZERO) + line.amount
    assert {
        row["account"]: Decimal(row["movement"])
        for row in body["accounts"]
        if Decimal(row["movement"])
    } == {account: amount for account, amount in expected.items() if amount}


async def test_profit_and_loss_and_balance_sheet(imported: str) -> None:
    moved = movements(SPEC, SPEC.start, date(2024, 6, 30))
    result_to_june = -sum((v for a, v in moved.items() if a[0] in "345678"), ZERO)

    pnl = await cli(
        "report",
        "profit-and-loss",
        "--business-id",
        SE_ID,
        "--as-of",
        "2024-06-30",
        "--importer-url",
        imported,
    )
    assert pnl.exit_code == 0, pnl.output
    assert f"Profit and loss: {SPEC.name} ({SE_ID})" in pnl.stdout
    result_line = next(line for line in pnl.stdout.splitlines() if line.startswith("Result"))
    assert [Decimal(cell) for cell in result_line.split()[1:]] == [result_to_june] * 2

    sheet = await cli(
        "report",
        "balance-sheet",
        "--business-id",
        SE_ID,
        "--as-of",
        "2024-06-30",
        "--json",
        "--importer-url",
        imported,
    )
    assert sheet.exit_code == 0, sheet.output
    body: dict[str, Any] = json.loads(sheet.stdout)
    closing = {a: SPEC.opening.get(a, ZERO) + moved.get(a, ZERO) for a in {*SPEC.opening, *moved}}
    assets = sum((v for a, v in closing.items() if a[0] == "1"), ZERO)
    assert [Decimal(v) for v in body["totals"]["assets"]] == [assets]
    assert [Decimal(v) for v in body["totals"]["difference"]] == [ZERO]

    human = await cli("report", "balance-sheet", "--business-id", SE_ID, "--importer-url", imported)
    assert human.exit_code == 0, human.output
    assert "Balance sheet:" in human.stdout
    assert "Result for the year to date" in human.stdout
    assert re.search(r"^Difference\s+0\.00$", human.stdout, re.MULTILINE)


async def test_report_of_an_unknown_company_fails_with_the_api_message(importer: str) -> None:
    result = await cli(
        "report", "trial-balance", "--business-id", "9999999999", "--importer-url", importer
    )

    assert result.exit_code == 1
    assert "no books have been imported for business ID 9999999999" in result.stderr
    assert result.stdout == ""


async def test_report_of_a_period_outside_the_books_fails(imported: str) -> None:
    result = await cli(
        "report",
        "profit-and-loss",
        "--business-id",
        SE_ID,
        "--to",
        "2031-01",
        "--importer-url",
        imported,
    )

    assert result.exit_code == 1
    assert "is in no imported fiscal year" in result.stderr


def test_report_options_that_exclude_each_other_are_usage_errors() -> None:
    both = RUNNER.invoke(
        app,
        [
            "report",
            "trial-balance",
            "--business-id",
            SE_ID,
            "--as-of",
            "2024-06-01",
            "--to",
            "2024-06",
        ],
    )
    formats = RUNNER.invoke(
        app, ["report", "balance-sheet", "--business-id", SE_ID, "--json", "--csv"]
    )
    object_only = RUNNER.invoke(
        app, ["report", "trial-balance", "--business-id", SE_ID, "--object", "100"]
    )

    assert both.exit_code == 2
    assert "--as-of" in both.stderr
    assert formats.exit_code == 2
    assert object_only.exit_code == 2


def test_report_without_a_reachable_importer_is_a_usage_error() -> None:
    url = f"http://127.0.0.1:{closed_port()}"
    result = RUNNER.invoke(
        app, ["report", "trial-balance", "--business-id", SE_ID, "--importer-url", url]
    )

    assert result.exit_code == 2
    assert f"cannot reach the importer at {url}" in result.stderr
