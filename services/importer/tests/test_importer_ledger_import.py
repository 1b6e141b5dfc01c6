"""File imports against a real, migrated store (PostgreSQL and SQLite).

The real samples come from ../shared/data (never copied into the project); crafted bad
files are small edits of a generated ledger, so each differs from a good file in exactly
the way it is meant to.
"""

from __future__ import annotations

import json
import uuid
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlmodel import col

from ledgerlink.importer.sample_ledgers import LedgerSpec, write_saft, write_sie
from ledgerlink.importer.services.imports import ImportService
from ledgerlink.importer.services.ledger_import import (
    ClaimedJob,
    ImportSettings,
    LedgerImportService,
)
from ledgerlink.importer.storage.files import FileArea
from ledgerlink.importer.storage.models import (
    Company,
    ComparisonBalance,
    FiscalYear,
    ImportJob,
    ImportStatus,
    PeriodBalance,
    SourceBalance,
    Voucher,
    VoucherLine,
    messaging,
)
from ledgerlink.shared.db import Database
from ledgerlink.shared.events import Provider
from ledgerlink.shared.messaging.outbox import Outbox

DATA = Path(__file__).resolve().parents[3] / ".." / "shared" / "data"
needs_samples = pytest.mark.skipif(
    not DATA.is_dir(), reason=f"the public sample files are not at {DATA}"
)
SE_ID = "556000-0001"
NO_ID = "923609016"


def se_spec(lines: int = 400, seed: int = 1, year: int = 2024) -> LedgerSpec:
    return LedgerSpec(lines=lines, seed=seed, year=year, business_id="5560000001")


def no_spec(lines: int = 400, seed: int = 1) -> LedgerSpec:
    return LedgerSpec(lines=lines, seed=seed, business_id=NO_ID, currency="NOK", name="Eksempel AS")


class Harness:
    """Queues a file import and runs it the way the runner does."""

    def __init__(self, db: Database, root: Path) -> None:
        self.db = db
        self.files = FileArea(root, extra_roots=(DATA,) if DATA.is_dir() else ())
        self.outbox = Outbox(messaging, source="ledgerlink/importer")
        self.service = LedgerImportService(
            db, self.outbox, self.files, ImportSettings(batch_lines=500)
        )

    async def run(
        self,
        path: Path,
        provider: Provider,
        *,
        business_id: str | None = None,
        replace_reason: str | None = None,
    ) -> ImportJob:
        import_id = uuid.uuid4()
        async with self.db.transaction() as session:
            await ImportService(session, self.outbox).file_uploaded(
                import_id=import_id,
                provider=provider,
                file_location=path.as_uri(),
                filename=path.name,
                business_id=business_id,
                replace_reason=replace_reason,
            )
        claimed = await self.service.claim_next()
        assert claimed == ClaimedJob(import_id, 1)
        await self.service.run(claimed)
        async with self.db.transaction() as session:
            job = await session.get(ImportJob, import_id)
        assert job is not None
        return job

    async def events(self) -> list[tuple[str, dict[str, Any]]]:
        async with self.db.transaction() as session:
            rows = (
                await session.execute(
                    select(messaging.outbox.c.event_type, messaging.outbox.c.payload).order_by(
                        messaging.outbox.c.id
                    )
                )
            ).all()
        return [
            (kind.rsplit(".", 2)[-2], json.loads(p) if isinstance(p, str | bytes) else p)
            for kind, p in rows
        ]

    async def keys(self) -> list[tuple[str, str]]:
        """(event kind, Kafka key) of every outbox row, in order."""
        async with self.db.transaction() as session:
            rows = (
                await session.execute(
                    select(messaging.outbox.c.event_type, messaging.outbox.c.key).order_by(
                        messaging.outbox.c.id
                    )
                )
            ).all()
        return [(kind.rsplit(".", 2)[-2], key) for kind, key in rows]

    async def counts(self) -> dict[str, int]:
        found: dict[str, int] = {}
        async with self.db.transaction() as session:
            for model in (Company, FiscalYear, Voucher, VoucherLine, PeriodBalance):
                result = await session.execute(select(func.count()).select_from(model))
                found[str(model.__tablename__)] = int(result.scalar_one())
        return found


@pytest.fixture
def harness(db: Database, tmp_path: Path) -> Harness:
    return Harness(db, tmp_path)


@needs_samples
async def test_sie_sample_imports_and_reconciles(harness: Harness) -> None:
    job = await harness.run(DATA / "sie" / "BLBLOV_SIE4.SE", Provider.SIE)

    assert job.status == ImportStatus.COMPLETED, job.error_message
    assert job.business_id == "165571-0918"
    assert job.outcome == "imported"
    assert job.counts is not None
    assert job.counts["vouchers"] == 20
    assert job.counts["lines"] == 74
    assert job.reconciliation_status == "balanced"
    assert job.differences == []
    assert job.periods is not None
    assert job.periods[0] == "2017-01"
    assert len(job.periods) == 12
    kinds = [kind for kind, _ in await harness.events()]
    assert kinds == ["started", "completed", "ready"]
    counts = await harness.counts()
    assert counts["vouchers"] == 20
    assert counts["voucher_lines"] == 74


@needs_samples
async def test_saft_sample_names_every_account_that_does_not_reconcile(harness: Harness) -> None:
    job = await harness.run(DATA / "saf-t" / "example-financial-999999999.xml", Provider.SAF_T)

    assert job.status == ImportStatus.COMPLETED, job.error_message
    assert job.reconciliation_status == "differences"
    differences = {d["account"]: Decimal(d["difference"]) for d in job.differences or []}
    assert differences == {
        "1925": Decimal("-23611.11"),
        "2400": Decimal("11111.11"),
        "2740": Decimal("13611.11"),
        "4000": Decimal("10000.00"),
    }
    completed = [data for kind, data in await harness.events() if kind == "completed"]
    assert completed[0]["reconciliation_status"] == "differences"
    assert len(completed[0]["differences"]) == 4


@needs_samples
async def test_xmlspy_filler_is_refused_with_every_reason(harness: Harness) -> None:
    job = await harness.run(DATA / "saf-t" / "example-financial-1.30-xmlspy.xml", Provider.SAF_T)

    assert job.status == ImportStatus.FAILED
    assert job.error_code == "parse_error"
    assert job.error_message is not None
    for reason in ("AuditFileVersion 'a'", "RegistrationNumber 'a'", "DefaultCurrencyCode 'aaa'"):
        assert reason in job.error_message
    assert (await harness.counts())["companies"] == 0
    failed = [data for kind, data in await harness.events() if kind == "failed"]
    assert failed[0]["reason_code"] == "parse_error"


@pytest.mark.parametrize("fmt", ["sie", "saf_t"])
async def test_generated_ledger_balances_and_period_balances_hold_every_line(
    harness: Harness, tmp_path: Path, fmt: str
) -> None:
    if fmt == "sie":
        path, provider = write_sie(se_spec(3000), tmp_path / "gen.se"), Provider.SIE
    else:
        path, provider = write_saft(no_spec(3000), tmp_path / "gen.xml"), Provider.SAF_T

    job = await harness.run(path, provider)

    assert job.status == ImportStatus.COMPLETED, job.error_message
    assert job.counts is not None
    assert job.counts["lines"] == 3000
    assert job.reconciliation_status == "balanced"
    async with harness.db.transaction() as session:
        lines = (await session.execute(select(col(VoucherLine.amount)))).scalars().all()
        totals = (
            await session.execute(
                select(col(PeriodBalance.debit), col(PeriodBalance.credit)).where(
                    col(PeriodBalance.dimension_id) == ""
                )
            )
        ).all()
    assert len(lines) == 3000
    assert sum(lines, Decimal(0)) == 0
    assert sum((d for d, _ in totals), Decimal(0)) == sum((a for a in lines if a > 0), Decimal(0))


async def test_same_file_twice_is_a_no_op(harness: Harness, tmp_path: Path) -> None:
    path = write_sie(se_spec(), tmp_path / "a.se")
    first = await harness.run(path, Provider.SIE)
    before = await harness.counts()

    again = await harness.run(path, Provider.SIE)

    assert again.status == ImportStatus.COMPLETED
    assert again.outcome == "unchanged"
    assert again.counts == first.counts
    assert await harness.counts() == before
    completed = [data for kind, data in await harness.events() if kind == "completed"]
    assert [c["outcome"] for c in completed] == ["imported", "unchanged"]


async def test_newer_file_replaces_the_year(harness: Harness, tmp_path: Path) -> None:
    await harness.run(write_sie(se_spec(400, seed=1), tmp_path / "v1.se"), Provider.SIE)
    other_year = await harness.run(
        write_sie(se_spec(100, seed=3, year=2023), tmp_path / "y.se"), Provider.SIE
    )
    newer = await harness.run(write_sie(se_spec(250, seed=2), tmp_path / "v2.se"), Provider.SIE)

    assert newer.outcome == "replaced"
    assert other_year.outcome == "imported"
    counts = await harness.counts()
    assert counts["fiscal_years"] == 2
    assert counts["voucher_lines"] == 250 + 100


def _break(path: Path, old: str, new: str, *, count: int = 1) -> Path:
    text = path.read_text(encoding="cp437")
    assert old in text
    path.write_text(text.replace(old, new, count), encoding="cp437", newline="")
    return path


CRAFTED = {
    "unbalanced": ("unbalanced_voucher", "does not balance"),
    "undeclared": ("undeclared_account", "account 9999 is not in the file's chart"),
    "empty": ("empty_voucher", "has no rows"),
    "truncated": ("parse_error", "line"),
    "encoding": ("parse_error", "not valid utf-8"),
    "outside": ("voucher_outside_fiscal_year", "outside the fiscal year"),
}


@pytest.mark.parametrize("case", sorted(CRAFTED))
async def test_crafted_bad_sie_file_fails_specifically_and_changes_nothing(
    harness: Harness, tmp_path: Path, case: str
) -> None:
    good = await harness.run(write_sie(se_spec(300), tmp_path / "good.se"), Provider.SIE)
    assert good.status == ImportStatus.COMPLETED
    before = await harness.counts()
    path = write_sie(se_spec(300, seed=9), tmp_path / f"{case}.se")
    text = path.read_text(encoding="cp437")
    if case == "unbalanced":
        line = next(ln for ln in text.splitlines() if "#TRANS" in ln)
        amount = line.rsplit(" ", 1)[1]
        _break(path, line, line[: -len(amount)] + str(Decimal(amount) + Decimal("0.01")))
    elif case == "undeclared":
        _break(path, "   #TRANS 1920 ", "   #TRANS 9999 ")
    elif case == "empty":
        start = text.index("#VER A 2 ")
        body_start = text.index("\n{", start) + 2
        block_end = text.index("\n}", start) + 1
        path.write_text(text[:body_start] + "\r\n" + text[block_end:], encoding="cp437", newline="")
    elif case == "truncated":
        path.write_bytes(path.read_bytes()[: len(path.read_bytes()) * 2 // 3])
    elif case == "encoding":
        raw = path.read_bytes().replace(b"#FORMAT PC8", b"#FORMAT UTF-8", 1)
        path.write_bytes(raw.replace(b"Kostnad", b"Kostn\x94d"))
    elif case == "outside":
        _break(path, "#VER A 3 2024", "#VER A 3 2025")

    job = await harness.run(path, Provider.SIE)

    code, words = CRAFTED[case]
    assert job.status == ImportStatus.FAILED
    assert job.error_code == code, job.error_message
    assert job.error_message is not None
    assert words in job.error_message
    assert "line" in job.error_message  # it says where
    assert await harness.counts() == before


async def test_file_of_another_company_is_refused(harness: Harness, tmp_path: Path) -> None:
    job = await harness.run(
        write_sie(se_spec(), tmp_path / "x.se"), Provider.SIE, business_id="165571-0918"
    )

    assert job.status == ImportStatus.FAILED
    assert job.error_code == "business_id_mismatch"
    assert (await harness.counts())["companies"] == 0


async def test_sie_file_for_a_saft_connection_is_refused(harness: Harness, tmp_path: Path) -> None:
    job = await harness.run(write_sie(se_spec(), tmp_path / "x.se"), Provider.SAF_T)

    assert job.error_code == "format_mismatch"


async def test_location_outside_the_file_roots_is_refused(harness: Harness) -> None:
    job = await harness.run(Path(__file__), Provider.SIE)

    assert job.status == ImportStatus.FAILED
    assert job.error_code == "file_location_invalid"


# ------------------------------------------------------------- issue 10: data loss


def _sie_lines(path: Path) -> list[str]:
    return path.read_text(encoding="cp437").splitlines()


def _write_sie_lines(path: Path, lines: list[str]) -> Path:
    path.write_text("\r\n".join(lines) + "\r\n", encoding="cp437", newline="")
    return path


def _without_vouchers(lines: list[str]) -> list[str]:
    kept: list[str] = []
    in_voucher = False
    for line in lines:
        if line.startswith("#VER"):
            in_voucher = True
        elif in_voucher and line == "}":
            in_voucher = False
            continue
        if not in_voucher:
            kept.append(line)
    return kept


def chart_only(source: Path, target: Path) -> Path:
    """The same company's SIE file with its chart and nothing else (no balances)."""
    lines = _without_vouchers(_sie_lines(source))
    balances = ("#IB ", "#UB ", "#RES ")
    return _write_sie_lines(target, [ln for ln in lines if not ln.startswith(balances)])


def balances_only(source: Path, target: Path, *, sie_type: int = 1) -> Path:
    """A SIE type 1-3 file: chart and balances, no vouchers."""
    lines = _without_vouchers(_sie_lines(source))
    return _write_sie_lines(
        target, [f"#SIETYP {sie_type}" if ln == "#SIETYP 4" else ln for ln in lines]
    )


async def _stored_books(harness: Harness) -> tuple[int, str]:
    async with harness.db.transaction() as session:
        lines = (await session.execute(select(func.count()).select_from(VoucherLine))).scalar_one()
        name = (await session.execute(select(col(Company.name)))).scalar_one()
    return int(lines), str(name)


@pytest.mark.parametrize("kind", ["chart_only", "sie_type_1", "older"])
async def test_a_file_with_less_or_older_data_does_not_replace_the_year(
    harness: Harness, tmp_path: Path, kind: str
) -> None:
    full = write_sie(se_spec(400, seed=1), tmp_path / "full.se")
    stored = await harness.run(full, Provider.SIE)
    assert stored.status == ImportStatus.COMPLETED
    if kind == "chart_only":
        path = chart_only(full, tmp_path / "chart.se")
    elif kind == "sie_type_1":
        path = balances_only(full, tmp_path / "type1.se")
    else:
        path = write_sie(se_spec(400, seed=2), tmp_path / "older.se")
        lines = ["#GEN 20231215" if ln == "#GEN 20240101" else ln for ln in _sie_lines(path)]
        _write_sie_lines(path, lines)
    # Every refused file also tries to rename the company.
    _write_sie_lines(
        path,
        ['#FNAMN "Renamed AB"' if ln.startswith("#FNAMN") else ln for ln in _sie_lines(path)],
    )

    job = await harness.run(path, Provider.SIE)

    assert job.status == ImportStatus.FAILED
    assert job.error_code == "replace_refused"
    message = job.error_message or ""
    expected = {
        "chart_only": "the file holds no vouchers, and the stored year holds",
        "sie_type_1": "the file holds no vouchers, and the stored year holds",
        "older": "generated on 2023-12-15, before the stored one (2024-01-01)",
    }[kind]
    assert expected in message
    stored_counts = stored.counts or {}
    assert (
        f"Stored: SIE type 4, generated 2024-01-01, {stored_counts['vouchers']:,} vouchers, "
        "400 lines" in message
    )
    file_type = 1 if kind == "sie_type_1" else 4
    assert f"File: SIE type {file_type}, generated " in message
    assert "replace=true" in message
    assert await _stored_books(harness) == (400, "Exempelbolaget AB")
    failed = [data for kind_, data in await harness.events() if kind_ == "failed"]
    assert failed[-1]["reason_code"] == "replace_refused"
    assert failed[-1]["business_id"] == SE_ID


async def test_an_explicit_replacement_with_a_reason_replaces_and_is_recorded(
    harness: Harness, tmp_path: Path
) -> None:
    full = write_sie(se_spec(400, seed=1), tmp_path / "full.se")
    await harness.run(full, Provider.SIE)

    job = await harness.run(
        chart_only(full, tmp_path / "chart.se"),
        Provider.SIE,
        replace_reason="the ledger was reset in the source system",
    )

    assert job.status == ImportStatus.COMPLETED, job.error_message
    assert job.outcome == "replaced"
    assert job.replace_reason == "the ledger was reset in the source system"
    notices = {n["code"]: n["message"] for n in job.notices or []}
    assert "the ledger was reset in the source system" in notices["replaced_on_request"]
    assert "400 lines" in notices["replaced_on_request"]
    assert (await _stored_books(harness))[0] == 0


async def test_a_newer_complete_file_still_replaces_without_being_asked(
    harness: Harness, tmp_path: Path
) -> None:
    await harness.run(write_sie(se_spec(400, seed=1), tmp_path / "v1.se"), Provider.SIE)
    newer = write_sie(se_spec(300, seed=2), tmp_path / "v2.se")
    _write_sie_lines(
        newer, ["#GEN 20240301" if ln == "#GEN 20240101" else ln for ln in _sie_lines(newer)]
    )

    job = await harness.run(newer, Provider.SIE)

    assert (job.status, job.outcome, job.replace_reason) == (
        ImportStatus.COMPLETED,
        "replaced",
        None,
    )


async def test_sie_type_1_imports_as_balances_for_a_company_without_books(
    harness: Harness, tmp_path: Path
) -> None:
    full = write_sie(se_spec(400, seed=1), tmp_path / "full.se")

    job = await harness.run(balances_only(full, tmp_path / "type1.se"), Provider.SIE)

    assert job.status == ImportStatus.COMPLETED, job.error_message
    assert job.outcome == "imported"
    assert (job.counts or {})["vouchers"] == 0
    assert job.reconciliation_status == "not_available"
    assert "balances_only" in {n["code"] for n in job.notices or []}
    async with harness.db.transaction() as session:
        balances = (
            await session.execute(select(func.count()).select_from(SourceBalance))
        ).scalar_one()
    assert balances > 0


async def test_an_impossible_fiscal_year_is_refused_with_its_line(
    harness: Harness, tmp_path: Path
) -> None:
    path = write_sie(se_spec(100), tmp_path / "rar.se")
    lines = _sie_lines(path)
    rar = lines.index("#RAR 0 20240101 20241231")
    lines[rar] = "#RAR 0 20240301 20230228"

    job = await harness.run(_write_sie_lines(path, lines), Provider.SIE)

    assert job.status == ImportStatus.FAILED
    assert job.error_code == "invalid_fiscal_year"
    assert job.error_message == (
        f"rar.se line {rar + 1}: #RAR 0 says the fiscal year ends on 2023-02-28 before it "
        "starts on 2024-03-01; no fiscal year can, so the books cannot be placed in time"
    )
    assert (await harness.counts())["fiscal_years"] == 0


async def test_an_impossible_saft_selection_is_refused(harness: Harness, tmp_path: Path) -> None:
    path = write_saft(no_spec(100), tmp_path / "sel.xml")
    text = path.read_text(encoding="utf-8")
    start, end = text.index("<SelectionCriteria>"), text.index("</SelectionCriteria>")
    selection = (
        "<SelectionCriteria><SelectionStartDate>2024-01-01</SelectionStartDate>"
        "<SelectionEndDate>2023-12-31</SelectionEndDate>"
    )
    path.write_text(text[:start] + selection + text[end:], encoding="utf-8")

    job = await harness.run(path, Provider.SAF_T)

    assert job.error_code == "invalid_fiscal_year"
    assert "SelectionCriteria" in (job.error_message or "")


# ------------------------------------------------------------- issue 10: events


async def test_import_started_of_an_upload_is_keyed_by_the_company(
    harness: Harness, tmp_path: Path
) -> None:
    job = await harness.run(write_sie(se_spec(100), tmp_path / "a.se"), Provider.SIE)

    assert job.status == ImportStatus.COMPLETED
    assert await harness.keys() == [("started", SE_ID), ("completed", SE_ID), ("ready", SE_ID)]
    started = [data for kind, data in await harness.events() if kind == "started"]
    assert started[0]["business_id"] == SE_ID


async def test_a_failed_import_keeps_the_business_id_the_file_gave(
    harness: Harness, tmp_path: Path
) -> None:
    path = write_sie(se_spec(100), tmp_path / "bad.se")
    _break(path, "   #TRANS 1920 ", "   #TRANS 9999 ")

    job = await harness.run(path, Provider.SIE)

    assert job.status == ImportStatus.FAILED
    assert job.business_id == SE_ID
    assert await harness.keys() == [("started", SE_ID), ("failed", SE_ID)]
    failed = [data for kind, data in await harness.events() if kind == "failed"]
    assert failed[0]["business_id"] == SE_ID


async def test_an_unreadable_file_is_keyed_by_its_import(harness: Harness, tmp_path: Path) -> None:
    path = tmp_path / "junk.se"
    path.write_bytes(b'#FLAGGA 0\r\n#KONTO 1930 "Bank\r\n')

    job = await harness.run(path, Provider.SIE)

    assert job.status == ImportStatus.FAILED
    assert job.business_id == ""
    assert await harness.keys() == [("started", str(job.id)), ("failed", str(job.id))]


@needs_samples
async def test_sie_sample_keeps_its_previous_year_for_comparison(harness: Harness) -> None:
    path = DATA / "sie" / "BLBLOV_SIE4.SE"
    previous: dict[str, set[str]] = {}
    for line in path.read_text(encoding="cp437").splitlines():
        label, *fields = line.split()
        if label in ("#IB", "#UB", "#RES") and fields[0] == "-1":
            previous.setdefault(fields[1], set()).add(label)

    job = await harness.run(path, Provider.SIE)

    assert job.reconciliation_status == "balanced"  # as before
    async with harness.db.transaction() as session:
        stored = (
            await session.execute(
                select(col(ComparisonBalance.account), col(ComparisonBalance.closing))
            )
        ).all()
    assert {account for account, _ in stored} == set(previous)
    assert all(closing is not None for account, closing in stored if previous[account] != {"#IB"})
