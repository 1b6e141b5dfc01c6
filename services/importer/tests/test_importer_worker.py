"""The import's worker process (issue 16) stores what the in-process reader stores.

* On PostgreSQL an import parses, checks and encodes in a child process; the parent's
  COPY of that text data gives the very rows the in-process path's binary COPY gives,
  texts with tabs, newlines and backslashes included, cut to the same sizes.
* A refused file fails in the worker with the same error code and words as in-process,
  and nothing of it is written.
* SAF-T's lxml pass reads what the ElementTree pass reads, and hands crafted files it
  does not vouch for to it.

The store tests run on PostgreSQL and SQLite (the ``db`` fixture); SQLite has no COPY,
so there the import parses in-process, which is checked too.
"""

from __future__ import annotations

import io
import os
import uuid
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any, BinaryIO, cast

import pytest
from sqlalchemy import select

from ledgerlink.importer.config import usable_cpus
from ledgerlink.importer.domain import saft
from ledgerlink.importer.domain.chunks import Newlines, Part, SplicedStream, plan_chunks
from ledgerlink.importer.domain.ledger import LedgerLine, LedgerVoucher
from ledgerlink.importer.sample_ledgers import LedgerSpec, write_saft, write_sie
from ledgerlink.importer.services.import_worker import CopyEncoder
from ledgerlink.importer.services.imports import ImportService
from ledgerlink.importer.services.ledger_import import ImportSettings, LedgerImportService
from ledgerlink.importer.storage.files import FileArea
from ledgerlink.importer.storage.ledger_store import LedgerRowBuilder, LedgerRows, LedgerStore
from ledgerlink.importer.storage.models import (
    Company,
    FiscalYear,
    ImportJob,
    ImportStatus,
    PeriodBalance,
    SourceBalance,
    Voucher,
    VoucherLine,
    messaging,
    metadata,
)
from ledgerlink.shared.db import Database
from ledgerlink.shared.events import Provider
from ledgerlink.shared.messaging.outbox import Outbox

NO_ID = "923609016"
DATA = Path(__file__).resolve().parents[3] / ".." / "shared" / "data"
SAFT_SAMPLES = sorted((DATA / "saf-t").glob("*.xml")) if DATA.is_dir() else []


class _Importer:
    def __init__(self, db: Database, root: Path, settings: ImportSettings) -> None:
        self.db = db
        self.outbox = Outbox(messaging, source="ledgerlink/importer")
        self.service = LedgerImportService(db, self.outbox, FileArea(root), settings)

    async def run(self, path: Path, provider: Provider) -> ImportJob:
        import_id = uuid.uuid4()
        async with self.db.transaction() as session:
            await ImportService(session, self.outbox).file_uploaded(
                import_id=import_id,
                provider=provider,
                file_location=path.as_uri(),
                filename=path.name,
                business_id=None,
            )
        claimed = await self.service.claim_next()
        assert claimed is not None
        await self.service.run(claimed)
        async with self.db.transaction() as session:
            job = await session.get(ImportJob, import_id)
        assert job is not None
        return job


async def _books(db: Database, business_id: str) -> dict[str, list[tuple[Any, ...]]]:
    """Every voucher, line, period and source balance of the company's year, in key order."""
    async with db.transaction() as session:
        company = (
            await session.execute(select(Company).where(Company.business_id == business_id))  # type: ignore[arg-type]
        ).scalar_one()
        year_id = (
            await session.execute(select(FiscalYear.id).where(FiscalYear.company_id == company.id))  # type: ignore[call-overload]
        ).scalar_one()
        found: dict[str, list[tuple[Any, ...]]] = {}
        models: tuple[tuple[Any, tuple[str, ...]], ...] = (
            (Voucher, ("voucher_no", "series", "number", "date", "period", "text", "source_id")),
            (VoucherLine, ("voucher_no", "line_no", "account", "amount", "text", "objects")),
            (PeriodBalance, ("period", "account", "dimension_id", "object_id", "debit", "credit")),
            (SourceBalance, ("account", "opening", "closing")),
        )
        for model, columns in models:
            table = model.__table__
            result = await session.execute(
                select(*(table.c[name] for name in columns))
                .where(table.c.fiscal_year_id == year_id)
                .order_by(*(table.c[name] for name in columns))
            )
            found[table.name] = [tuple(row) for row in result.all()]
        return found


def _spec(fmt: str, business_id: str) -> LedgerSpec:
    if fmt == "sie":
        return LedgerSpec(lines=700, business_id=business_id)
    return LedgerSpec(lines=700, business_id=business_id, currency="NOK", name="Eks AS")


@pytest.mark.parametrize("fmt", ["sie", "saf_t"])
async def test_the_worker_process_stores_what_the_in_process_reader_stores(
    db: Database, database_url: str, tmp_path: Path, fmt: str
) -> None:
    worker = _Importer(db, tmp_path, ImportSettings(batch_lines=50))
    local = _Importer(db, tmp_path, ImportSettings(batch_lines=50, parse_process=False))
    write, provider, suffix = (
        (write_sie, Provider.SIE, ".se") if fmt == "sie" else (write_saft, Provider.SAF_T, ".xml")
    )
    # The same ledger for two companies (the business ID is all that differs).
    ids = ("5560000001", "5560000027") if fmt == "sie" else (NO_ID, "914778271")
    a = await worker.run(write(_spec(fmt, ids[0]), tmp_path / f"a{suffix}"), provider)
    worker_rss = worker.service.worker_peak_rss
    b = await local.run(write(_spec(fmt, ids[1]), tmp_path / f"b{suffix}"), provider)
    assert (a.status, b.status) == (ImportStatus.COMPLETED, ImportStatus.COMPLETED)
    assert a.counts == b.counts
    assert a.notices == b.notices
    assert a.reconciliation_status == b.reconciliation_status
    assert local.service.worker_peak_rss == 0
    if database_url.startswith("postgresql"):
        assert worker_rss > 0  # the child process read the file and said so
    else:
        assert worker_rss == 0  # no COPY on SQLite: read in-process
    books_a = await _books(db, str(a.business_id))
    books_b = await _books(db, str(b.business_id))
    assert books_a == books_b
    assert len(books_a["voucher_lines"]) == 700


@pytest.mark.parametrize("fmt", ["sie", "saf_t"])
async def test_a_file_refused_in_the_worker_fails_as_in_process_and_writes_nothing(
    db: Database, tmp_path: Path, fmt: str
) -> None:
    write, provider, suffix, old, new = (
        (write_sie, Provider.SIE, ".se", b"   #TRANS 1920 ", b"   #TRANS 9999 ")
        if fmt == "sie"
        else (write_saft, Provider.SAF_T, ".xml", b"<AccountID>1920</AccountID>",
              b"<AccountID>9999</AccountID>")
    )  # fmt: skip
    path = write(_spec(fmt, "5560000001" if fmt == "sie" else NO_ID), tmp_path / f"x{suffix}")
    text = path.read_bytes()
    at = text.rindex(old)
    path.write_bytes(text[:at] + new + text[at + len(old) :])

    in_worker = await _Importer(db, tmp_path, ImportSettings(batch_lines=50)).run(path, provider)
    local = _Importer(db, tmp_path, ImportSettings(batch_lines=50, parse_process=False))
    in_process = await local.run(path, provider)

    assert in_worker.status == in_process.status == ImportStatus.FAILED
    assert in_worker.error_code == in_process.error_code == "undeclared_account"
    assert in_worker.error_message == in_process.error_message
    assert "9999" in (in_worker.error_message or "")
    async with db.transaction() as session:
        assert (await session.execute(select(VoucherLine))).first() is None


async def test_copy_text_rows_store_what_the_binary_copy_stores(db: Database) -> None:
    nasty = "tab\there, new\nline, cr\rhere, back\\slash \\N and \\. and ünïcödé"
    lines = (
        LedgerLine("1920", Decimal("-1234.50"), nasty, (("1", "a\tb"), ("6", "P\\1"))),
        LedgerLine("3010", Decimal("1234.50"), "x" * 1500, ()),
        LedgerLine("\\N", Decimal("0.00"), "", (("1", "o" * 1200),)),
    )
    voucher = LedgerVoucher(
        "S\tS" * 20, "N\n1" * 30, date(2024, 2, 29), nasty * 30, "src\\", lines, ""
    )
    async with db.transaction() as session:
        store = LedgerStore(session)
        if not store.uses_copy:  # SQLite: no COPY, the import reads in-process there
            assert not ImportSettings().parse_process or store.uses_copy is False
            return
        company = Company(
            business_id="5560000001", country="SE", name="C", currency="SEK", chart="BAS"
        )
        session.add(company)
        await session.flush()
        years = []
        for start in (date(2023, 1, 1), date(2024, 1, 1)):
            year = FiscalYear(
                company_id=company.id, start=start, end=date(start.year, 12, 31),
                import_id=uuid.uuid4(), content_hash="h", source_format="sie",
            )  # fmt: skip
            session.add(year)
            years.append(year)
        await session.flush()
        rows = LedgerRows()
        LedgerRowBuilder(years[0].id).add(voucher, rows)
        await store.write_rows(rows)
        encoder = CopyEncoder(years[1].id)
        encoder.add(voucher)
        vouchers_data, lines_data, count = encoder.take()
        assert count == 3
        await store.copy_text_rows(memoryview(vouchers_data), memoryview(lines_data))
        stored = []
        for year in years:
            vouchers = (
                await session.execute(
                    select(Voucher.series, Voucher.number, Voucher.date, Voucher.period,  # type: ignore[call-overload]
                           Voucher.text, Voucher.source_id).where(Voucher.fiscal_year_id == year.id)
                )
            ).all()  # fmt: skip
            line_rows = (
                await session.execute(
                    select(VoucherLine.line_no, VoucherLine.account, VoucherLine.amount,  # type: ignore[call-overload]
                           VoucherLine.text, VoucherLine.objects)
                    .where(VoucherLine.fiscal_year_id == year.id)
                    .order_by(VoucherLine.line_no)
                )
            ).all()  # fmt: skip
            stored.append(([tuple(v) for v in vouchers], [tuple(line) for line in line_rows]))
        assert stored[0] == stored[1]
        assert stored[1][1][0][3] == nasty
        assert len(stored[1][1][1][3]) == 1000


_SAFT_VARIANTS = {
    # name: (old, new) applied to every occurrence in a generated file
    "entities in texts": (b"<Description>Kostnad", b"<Description>A &amp; B &lt;C&gt; Kostnad"),
    "pretty printed": (b"</AccountID><Description>", b"</AccountID>\n      <Description>"),
    "analysis amounts": (
        b"</AnalysisID></Analysis>",
        b"</AnalysisID><AnalysisAmount><Amount>1.00</Amount></AnalysisAmount></Analysis>",
    ),
    "currency amounts (element path)": (
        b"</Amount></DebitAmount>",
        b"</Amount><CurrencyCode>EUR</CurrencyCode><CurrencyAmount>2.00</CurrencyAmount>"
        b"</DebitAmount>",
    ),
    "comments": (b"<Line>", b"<!-- c --><Line>"),
    "source documents": (
        b"</GeneralLedgerEntries>",
        b"</GeneralLedgerEntries><SourceDocuments><SalesInvoices><NumberOfEntries>1"
        b"</NumberOfEntries><TotalDebit>0</TotalDebit><TotalCredit>0</TotalCredit><Invoice>"
        b"<InvoiceNo>1</InvoiceNo><Line><AccountID>1920</AccountID></Line></Invoice>"
        b"</SalesInvoices><Payments><Payment><PaymentRefNo>2</PaymentRefNo></Payment>"
        b"</Payments></SourceDocuments>",
    ),
    "unknown element in a line": (b"<RecordID>", b"<Extra>1</Extra><RecordID>"),
    "three decimals (refused)": (b"<Amount>5294.78</Amount>", b"<Amount>5294.781</Amount>"),
    "not well-formed late (refused)": (b"</Transaction>\n</Journal>", b"</Transaction>\n<Journal>"),
}


@pytest.mark.parametrize("name", sorted(_SAFT_VARIANTS))
def test_the_saft_lxml_pass_reads_what_the_elementtree_pass_reads(
    name: str, tmp_path: Path
) -> None:
    path = write_saft(
        LedgerSpec(lines=300, business_id=NO_ID, currency="NOK", name="Eks AS"), tmp_path / "f.xml"
    )
    old, new = _SAFT_VARIANTS[name]
    data = path.read_bytes()
    assert old in data
    data = data.replace(old, new)

    def read(lxml: bool) -> tuple[str, Any]:
        stream: Any = io.BytesIO(data)
        if not lxml:  # a stream that cannot seek is read by the ElementTree pass alone
            stream.seekable = lambda: False
        try:
            return "records", list(saft.parse_saft(stream, filename="f.xml", lxml=True))
        except saft.SaftParseError as error:
            return "refused", (str(error), vars(error))

    assert read(True) == read(False)
    if "(refused)" in name:
        assert read(True)[0] == "refused"
    else:
        assert len([r for r in read(True)[1] if isinstance(r, saft.SaftTransaction)]) > 50


def _both_passes(data: bytes) -> tuple[tuple[str, Any], tuple[str, Any]]:
    def read(lxml: bool) -> tuple[str, Any]:
        try:
            return "records", list(saft.parse_saft(io.BytesIO(data), filename="f", lxml=lxml))
        except saft.SaftParseError as error:
            return "refused", (str(error), vars(error))

    return read(True), read(False)


@pytest.mark.parametrize("path", SAFT_SAMPLES, ids=[p.name for p in SAFT_SAMPLES])
def test_saft_samples_read_the_same_by_both_passes(path: Path) -> None:
    by_lxml, by_elementtree = _both_passes(path.read_bytes())
    assert by_lxml == by_elementtree  # the same records, or the same refusal
    assert by_lxml[1]


def test_a_generated_saft_ledger_reads_the_same_by_both_passes(tmp_path: Path) -> None:
    spec = LedgerSpec(lines=3000, seed=3, business_id=NO_ID, currency="NOK", name="Eks AS")
    by_lxml, by_elementtree = _both_passes(write_saft(spec, tmp_path / "g.xml").read_bytes())
    assert by_lxml == by_elementtree
    transactions = [r for r in by_lxml[1] if isinstance(r, saft.SaftTransaction)]
    assert sum(len(t.lines) for t in transactions) == 3000


# ------------------------------------------------------------------ chunks (issue 16)
#
# A big file is read by several children at once, a voucher-aligned chunk each
# (ledgerlink.importer.domain.chunks). Whatever the chunks do, the import must store,
# count, notice and refuse exactly what one reader of the whole file does; what the
# chunks cannot prove is read whole.


def _chunk_settings(workers: int) -> ImportSettings:
    return ImportSettings(batch_lines=200, parse_workers=workers, chunk_min_bytes=0)


async def _outcome(
    db: Database, tmp_path: Path, path: Path, provider: Provider, settings: ImportSettings
) -> tuple[dict[str, Any], dict[str, list[tuple[Any, ...]]], LedgerImportService]:
    """Import ``path``; what the job says and the books it left; then empty the store."""
    importer = _Importer(db, tmp_path, settings)
    job = await importer.run(path, provider)
    said = {
        "status": job.status,
        "error_code": job.error_code,
        "error_message": job.error_message,
        "counts": job.counts,
        "notices": job.notices,
        "reconciliation": job.reconciliation_status,
    }
    books = await _books(db, str(job.business_id)) if job.status is ImportStatus.COMPLETED else {}
    async with db.transaction() as session:
        for table in reversed(metadata.sorted_tables):
            await session.execute(table.delete())
    return said, books, importer.service


async def _chunks_agree(
    db: Database, database_url: str, tmp_path: Path, path: Path, workers: int = 2
) -> tuple[dict[str, Any], LedgerImportService]:
    """Import ``path`` in chunks and whole; both must say and store the same."""
    provider = Provider.SIE if path.suffix == ".se" else Provider.SAF_T
    chunked, chunked_books, service = await _outcome(
        db, tmp_path, path, provider, _chunk_settings(workers)
    )
    whole, whole_books, single = await _outcome(db, tmp_path, path, provider, _chunk_settings(1))
    assert chunked == whole
    assert chunked_books == whole_books
    if database_url.startswith("postgresql"):
        assert single.read_chunks == 1
    else:  # no COPY on SQLite: read in-process, never in chunks
        assert service.read_chunks == single.read_chunks == 0
    return chunked, service


def _ledger(tmp_path: Path, fmt: str, lines: int = 2000) -> Path:
    if fmt == "sie":
        return write_sie(LedgerSpec(lines=lines, business_id="5560000001"), tmp_path / "l.se")
    spec = LedgerSpec(lines=lines, business_id=NO_ID, currency="NOK", name="Eks AS")
    return write_saft(spec, tmp_path / "l.xml")


def _pg(database_url: str) -> bool:
    return database_url.startswith("postgresql")


@pytest.mark.parametrize("workers", [2, 3])
@pytest.mark.parametrize("fmt", ["sie", "saf_t"])
async def test_a_file_read_in_chunks_is_stored_as_read_whole(
    db: Database, database_url: str, tmp_path: Path, fmt: str, workers: int
) -> None:
    said, service = await _chunks_agree(db, database_url, tmp_path, _ledger(tmp_path, fmt), workers)
    assert said["status"] is ImportStatus.COMPLETED
    assert said["counts"]["lines"] == 2000
    if _pg(database_url):
        assert (service.read_chunks, service.chunk_fallback) == (workers, None)


@pytest.mark.parametrize("fmt", ["sie", "saf_t"])
async def test_undeclared_objects_and_control_totals_merge_as_one_reader_sees_them(
    db: Database, database_url: str, tmp_path: Path, fmt: str
) -> None:
    path = _ledger(tmp_path, fmt)
    text = path.read_bytes()
    if fmt == "sie":  # cost centre 100 is used all through the year, and not declared
        text = text.replace(b'{1 "100"}', b'{1 "ZZ"}').replace(b'{1 "100" ', b'{1 "ZZ" ')
    else:  # the same, and the declared debit total is off by 0.01
        at = text.index(b"<Transaction>")  # in the lines only (the table declares 100)
        text = text[:at] + text[at:].replace(b"<AnalysisID>100<", b"<AnalysisID>ZZ<")
        head, _, rest = text.partition(b"<TotalDebit>")
        total, _, tail = rest.partition(b"</TotalDebit>")
        wrong = f"{Decimal(total.decode()) + Decimal('0.01'):.2f}".encode()
        text = head + b"<TotalDebit>" + wrong + b"</TotalDebit>" + tail
    path.write_bytes(text)
    said, service = await _chunks_agree(db, database_url, tmp_path, path)
    codes = [notice["code"] for notice in said["notices"]]
    assert codes.count("undeclared_object") == 1
    assert codes.count("control_totals") == (1 if fmt == "saf_t" else 0)
    if _pg(database_url):
        assert (service.read_chunks, service.chunk_fallback) == (2, None)


def _sie_voucher_at(text: bytes, share: float) -> int:
    return text.index(b"\n#VER ", int(len(text) * share)) + 1


def _sie_case(text: bytes, case: str) -> bytes:
    first = _sie_voucher_at(text, 0.0)
    late = _sie_voucher_at(text, 0.9)
    early = _sie_voucher_at(text, 0.1)
    if case == "repeated_number":  # a voucher of the second chunk reuses voucher A 1
        line_end = text.index(b"\n", late)
        number = text[late:line_end].split(b" ")[2]
        return (
            text[:late]
            + text[late:line_end].replace(b" " + number + b" ", b" 1 ", 1)
            + (text[line_end:])
        )
    if case == "balance_between_vouchers":
        return text[:early] + b"#IB 0 1920 5.00\r\n" + text[early:]
    if case == "encoding_chosen_in_a_voucher":  # an ASCII head; a cp437 'o' umlaut later
        head = bytes(b if b < 0x80 else ord("o") for b in text[:first])
        quote = text.index(b'"', early)  # the voucher's text
        return head + text[first : quote + 1] + b"\x94\x94 " + text[quote + 1 :]
    if case in ("refused_in_the_first_chunk", "refused_in_the_last_chunk"):
        at = text.index(b"   #TRANS 1920 ", early if case.endswith("first_chunk") else late)
        return text[:at] + b"   #TRANS 9999 " + text[at + 15 :]
    raise AssertionError(case)


def _saft_case(text: bytes, case: str) -> bytes:
    first = text.index(b"<Transaction>")
    late = text.index(b"<Transaction>", int(len(text) * 0.8))
    if case == "repeated_number":
        end = text.index(b"</TransactionID>", late)
        start = text.index(b"<TransactionID>", late) + len(b"<TransactionID>")
        return text[:start] + b"1" + text[end:]
    if case == "transaction_in_a_comment":
        # The byte search takes the commented one for the first transaction. Cut there,
        # a later chunk's stream would read as a comment up to the journal's last one
        # and parse well, without its transactions: only the first chunk's proof of
        # where libxml2 starts the first transaction catches it.
        end = text.index(b"</Journal>")
        return (
            text[:first] + b"<!-- <Transaction> -->\n" + text[first:end] + b" -->"
            + text[end:]
        )  # fmt: skip
    if case == "refused_in_the_last_chunk":
        at = text.index(b"<AccountID>1920</AccountID>", late)
        return text[:at] + b"<AccountID>9999</AccountID>" + text[at + 27 :]
    raise AssertionError(case)


@pytest.mark.parametrize(
    ("fmt", "case", "reason"),
    [
        ("sie", "repeated_number", "two chunks"),
        ("sie", "balance_between_vouchers", "records between"),
        ("sie", "encoding_chosen_in_a_voucher", "encoding"),
        ("sie", "refused_in_the_first_chunk", "not read"),
        ("sie", "refused_in_the_last_chunk", "not read"),
        ("saf_t", "repeated_number", "two chunks"),
        ("saf_t", "transaction_in_a_comment", "not where planned"),
        ("saf_t", "refused_in_the_last_chunk", "not read"),
    ],
)
async def test_what_the_chunks_cannot_prove_is_read_whole(
    db: Database, database_url: str, tmp_path: Path, fmt: str, case: str, reason: str
) -> None:
    path = _ledger(tmp_path, fmt)
    text = path.read_bytes()
    path.write_bytes(_sie_case(text, case) if fmt == "sie" else _saft_case(text, case))
    said, service = await _chunks_agree(db, database_url, tmp_path, path)
    if case.startswith("refused"):
        assert said["status"] is ImportStatus.FAILED
        assert said["error_code"] == "undeclared_account"
    else:
        assert said["status"] is ImportStatus.COMPLETED
    if case == "repeated_number":
        codes = [notice["code"] for notice in said["notices"]]
        assert codes.count("duplicate_voucher_number") == 1
    if _pg(database_url):
        assert service.read_chunks == 1
        assert reason in (service.chunk_fallback or "")


def test_a_spliced_stream_reads_its_parts_in_order_and_stops_where_told(tmp_path: Path) -> None:
    path = tmp_path / "f.bin"
    path.write_bytes(b"0123456789abcdefghij")
    parts: tuple[Part, ...] = ((0, 4), Newlines(3), b"XY", (10, 14))
    raw = SplicedStream(path, parts, stops=(5, 9))
    whole = b"0123\n\n\nXYabcd"
    assert raw.read(100) == whole[:5]  # up to the first stop
    assert raw.read(100) == whole[5:9]  # up to the second
    assert raw.read(100) == whole[9:]
    assert raw.read(100) == b""
    raw.seek(2)
    assert raw.peek(3) == whole[2:5]
    assert raw.tell() == 2
    with io.BufferedReader(SplicedStream(path, parts)) as buffered:
        assert buffered.readlines() == [b"0123\n", b"\n", b"\n", b"XYabcd"]
    raw.close()


@pytest.mark.parametrize("fmt", ["sie", "saf_t"])
def test_the_plan_cuts_at_vouchers_and_numbers_them_on(tmp_path: Path, fmt: str) -> None:
    path = _ledger(tmp_path, fmt)
    text = path.read_bytes()
    assert plan_chunks(path, 1, min_bytes=0) is None
    assert plan_chunks(path, 2) is None  # under MIN_CHUNK_BYTES: one reader
    plan = plan_chunks(path, 3, min_bytes=0)
    assert plan is not None
    assert len(plan.chunks) == 3
    marker = b"\n#VER " if fmt == "sie" else b"<Transaction>"
    resolved = [chunk.resolve(path) for chunk in plan.chunks]
    for chunk, part in zip(plan.chunks, resolved, strict=True):
        share = text[: chunk.start + (1 if fmt == "sie" else 0)]
        assert part.vouchers_before == share.count(marker)  # numbered on from the last
        with SplicedStream(path, part.parts) as stream:
            spliced = stream.read()
        if fmt == "sie":  # the head, then the chunk's vouchers on their own line numbers
            lines = spliced.split(b"\n")
            assert lines[part.first_line - 1].startswith(b"#VER ")
            assert part.first_line == text[: chunk.start].count(b"\n") + 1
            assert lines[part.first_line - 1] == text[chunk.start :].split(b"\n")[0]
        else:  # a document of its own: the head, the chunk's transactions, closed
            assert spliced.rstrip().endswith(b"</AuditFile>")
            assert spliced.count(marker) == (
                text.count(marker) - part.vouchers_before
                if chunk.last
                else text[chunk.start : chunk.end].count(marker)
            )


def _saft_plain_case(text: bytes, case: str) -> bytes:
    middle = text.index(b"<Transaction>", len(text) // 3)
    late = text.index(b"<Transaction>", len(text) * 3 // 4)
    if case == "crlf_and_entities":  # Windows line ends; entities and a CR in values
        at = text.index(b"<Description>", middle) + len(b"<Description>")
        text = text[:at] + b"R&amp;D &lt;x&gt; &quot;q&quot;&#13;\nnext line\r\nthird " + text[at:]
        return text.replace(b">\n<", b">\r\n<")
    if case == "a_transaction_that_is_not_plain":  # libxml2 reads it, and on from there
        at = text.index(b"</TransactionID>", middle) + len(b"</TransactionID>")
        return text[:at] + b"<!-- checked -->" + text[at:]
    if case == "text_xml_forbids":  # refused by libxml2, whichever way it is read
        at = text.index(b"<Description>", late) + len(b"<Description>")
        return text[:at] + b"a ]]> b" + text[at:]
    raise AssertionError(case)


@pytest.mark.parametrize(
    "case", ["crlf_and_entities", "a_transaction_that_is_not_plain", "text_xml_forbids"]
)
async def test_transactions_read_from_the_text_are_what_libxml2_reads(
    db: Database, database_url: str, tmp_path: Path, case: str
) -> None:
    path = _ledger(tmp_path, "saf_t")
    path.write_bytes(_saft_plain_case(path.read_bytes(), case))
    said, service = await _chunks_agree(db, database_url, tmp_path, path)
    if case == "text_xml_forbids":
        assert said["status"] is ImportStatus.FAILED
        assert said["error_code"] == "parse_error"
        assert "well-formed" in (said["error_message"] or "")
        return
    assert said["status"] is ImportStatus.COMPLETED
    if _pg(database_url):
        assert (service.read_chunks, service.chunk_fallback) == (2, None)


@pytest.mark.parametrize("case", ["plain", "crlf_and_entities", "a_transaction_that_is_not_plain"])
def test_a_chunk_reads_its_plain_transactions_from_the_text(tmp_path: Path, case: str) -> None:
    path = _ledger(tmp_path, "saf_t")
    if case != "plain":
        path.write_bytes(_saft_plain_case(path.read_bytes(), case))
    with path.open("rb") as stream:
        whole = list(saft.parse_saft(stream, filename="l.xml", lxml=True))
    plan = plan_chunks(path, 2, min_bytes=0)
    assert plan is not None
    records: list[saft.SaftRecord] = []
    plain = 0
    for chunk in plan.chunks:
        part = chunk.resolve(path)
        assert chunk.checkpoint is not None
        with SplicedStream(path, part.parts, stops=(chunk.checkpoint,)) as stream:
            parser = saft.open_saft(
                cast(BinaryIO, stream), filename="l.xml", lxml=True, checkpoint=chunk.checkpoint
            )
            found = list(parser.records())
        assert parser.checkpoint_proven
        plain += parser.plain_transactions
        records += [r for r in found if isinstance(r, saft.SaftTransaction)]
    assert records == [r for r in whole if isinstance(r, saft.SaftTransaction)]
    transactions = len(records)
    if case == "a_transaction_that_is_not_plain":  # libxml2 read the rest of that chunk
        assert 0 < plain < transactions
    else:
        assert plain == transactions


@pytest.mark.parametrize(
    ("cpu_max", "expected"),
    [("max 100000", None), ("100000 100000", 1), ("150000 100000", 2), ("50000 100000", 1)],
)
def test_the_default_workers_follow_the_cgroup_cpu_quota(
    tmp_path: Path, cpu_max: str, expected: int | None
) -> None:
    affinity = len(os.sched_getaffinity(0))
    cpu_file = tmp_path / "cpu.max"
    cpu_file.write_text(cpu_max + "\n")
    assert usable_cpus(cpu_file) == (affinity if expected is None else min(expected, affinity))
    assert usable_cpus(tmp_path / "absent") == affinity  # no cgroup v2: the affinity


@pytest.mark.parametrize("first_journal", ["big", "small"])
async def test_a_second_journal_is_read_by_the_last_chunk_or_by_one_reader(
    db: Database, database_url: str, tmp_path: Path, first_journal: str
) -> None:
    path = _ledger(tmp_path, "saf_t")
    text = path.read_bytes()
    share = 0.8 if first_journal == "big" else 0.05
    at = text.index(b"<Transaction>", int(len(text) * share))
    second = (
        b"</Journal>\n<Journal><JournalID>B</JournalID><Description>B</Description><Type>B</Type>"
    )
    path.write_bytes(text[:at] + second + text[at:])
    plan = plan_chunks(path, 2, min_bytes=len(text) // 4)
    # A small first journal is not cut: one reader, not a chunked try read again whole.
    assert (plan is None) is (first_journal == "small")
    said, service = await _chunks_agree(db, database_url, tmp_path, path)
    assert said["status"] is ImportStatus.COMPLETED
    if _pg(database_url) and plan is not None:
        assert (service.read_chunks, service.chunk_fallback) == (2, None)
