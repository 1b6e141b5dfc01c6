"""Issue 16's fast paths change nothing but the speed.

* The parsers' fast paths (plain SIE ``#TRANS`` rows, SAF-T transactions read without
  ``_Fields``) give the very records of the general path, and every file the general
  path refuses is refused with the same words: real samples, generated ledgers and
  crafted rows each way.
* Batches end at a voucher's end, so a voucher never straddles two COPY batches, and a
  file imported one voucher per batch (pipelined) stores exactly what one big batch does.
* A refused row found after earlier batches were written rolls the whole import back.
* A write that fails while the next batch is being read waits for that read to end.

The store tests run on PostgreSQL and SQLite (the ``db`` fixture).
"""

from __future__ import annotations

import asyncio
import io
import threading
import uuid
from collections.abc import Callable
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from sqlmodel import col

from ledgerlink.importer.domain import saft, sie
from ledgerlink.importer.domain.ledger import LedgerLine, LedgerVoucher, read_ledger
from ledgerlink.importer.sample_ledgers import LedgerSpec, write_saft, write_sie
from ledgerlink.importer.services.imports import ImportService
from ledgerlink.importer.services.ledger_import import (
    ImportSettings,
    LedgerImportService,
    LedgerReader,
    _write_batches,
)
from ledgerlink.importer.storage.files import FileArea
from ledgerlink.importer.storage.ledger_store import LedgerRowBuilder, LedgerRows
from ledgerlink.importer.storage.models import (
    Company,
    FiscalYear,
    ImportJob,
    ImportStatus,
    PeriodBalance,
    Voucher,
    VoucherLine,
    messaging,
)
from ledgerlink.shared.db import Database
from ledgerlink.shared.events import Provider
from ledgerlink.shared.messaging.outbox import Outbox

DATA = Path(__file__).resolve().parents[3] / ".." / "shared" / "data"
SIE_SAMPLES = sorted((DATA / "sie").glob("*.SE")) if DATA.is_dir() else []
SAFT_SAMPLES = sorted((DATA / "saf-t").glob("*.xml")) if DATA.is_dir() else []
NO_ID = "923609016"


def _se(lines: int, business_id: str = "5560000001", seed: int = 1) -> LedgerSpec:
    return LedgerSpec(lines=lines, seed=seed, business_id=business_id)


def _no(lines: int, seed: int = 1) -> LedgerSpec:
    return LedgerSpec(lines=lines, seed=seed, business_id=NO_ID, currency="NOK", name="Eks AS")


def _outcome(read: Callable[[], list[Any]]) -> tuple[str, Any]:
    """The records read, or the refusal (its type and every detail it carries)."""
    try:
        return "records", read()
    except (sie.SieParseError, saft.SaftParseError) as error:
        return "refused", (type(error).__name__, str(error), vars(error))


def _sie_both_ways(data: bytes) -> tuple[tuple[str, Any], tuple[str, Any]]:
    def read(fast: bool) -> Callable[[], list[Any]]:
        return lambda: list(sie.parse_sie(io.BytesIO(data), filename="t.se", fast=fast))

    return _outcome(read(True)), _outcome(read(False))


def _saft_both_ways(data: bytes) -> tuple[tuple[str, Any], tuple[str, Any]]:
    def read(fast: bool) -> Callable[[], list[Any]]:
        return lambda: list(saft.parse_saft(io.BytesIO(data), filename="t.xml", fast=fast))

    return _outcome(read(True)), _outcome(read(False))


# ------------------------------------------------------------------ SIE fast path

_SIE_HEAD = (
    '#FLAGGA 0\r\n#FORMAT PC8\r\n#SIETYP 4\r\n#ORGNR 5560000001\r\n#FNAMN "Bolaget AB"\r\n'
    '#RAR 0 20240101 20241231\r\n#KONTO 1920 "Bank"\r\n#KONTO 3010 "Försäljning"\r\n'
    '#VER A 1 20240105 "Voucher"\r\n{\r\n'
)

#: Rows the fast path takes, rows it leaves to the general path, and rows that are wrong.
SIE_ROWS = {
    "plain": "#TRANS 1920 {} 100.00",
    "objects": '#TRANS 1920 {1 "100" 6 "P1"} -100.00',
    "bare objects": "#TRANS 1920 {1 100} 5",
    "quoted object with a space": '#TRANS 1920 {6 "P 1"} 1.5',
    "empty quoted object": '#TRANS 1920 {1 ""} 1',
    "date and text": '#TRANS 1920 {} 100.00 20240105 "Hyra jan"',
    "empty text": '#TRANS 1920 {} 100.00 20240105 ""',
    "tabs": "#TRANS\t1920\t{}\t-7.25\t20240105",
    "no space before the list": "#TRANS 1920{} 1",
    "no space after the list": "#TRANS 1920 {}1",
    "escaped quote in the text": '#TRANS 1920 {} 1 20240105 "a \\"b\\" c"',
    "backslash in the text": '#TRANS 1920 {} 1 20240105 "1110\\1002"',
    "quantity and sign": '#TRANS 1920 {} 1 20240105 "t" 2.5 "KL"',
    "absent date, text": '#TRANS 1920 {} 1 "" "text"',
    "object list left out": "#TRANS 1920 100.00",
    "lower-case label": "#trans 1920 {} 1",
    "plus sign and bare decimals": "#TRANS 1920 {} +.50",
    "impossible date": "#TRANS 1920 {} 1 20241399",
    "odd object list": "#TRANS 1920 {1} 1",
    "object dimension not a number": '#TRANS 1920 {X "1"} 1',
    "unterminated quote": '#TRANS 1920 {1 "100} 1',
    "not an amount": "#TRANS 1920 {} 1,50",
    "no account": "#TRANS {} 1",
    "nested list": "#TRANS 1920 {{1 2}} 1",
    "rtrans and its copy": "#RTRANS 1920 {} 5 20240106\r\n#TRANS 1920 {} 5 20240106",
    "rtrans without its copy": "#RTRANS 1920 {} 5\r\n#TRANS 3010 {} -5",
    "btrans": '#BTRANS 1920 {} 5 20240106 "bort"\r\n#TRANS 1920 {} 1',
    "trans before the block": None,
}


@pytest.mark.parametrize("case", sorted(SIE_ROWS))
def test_sie_fast_path_reads_each_kind_of_row_as_the_general_path(case: str) -> None:
    row = SIE_ROWS[case]
    if row is None:  # a #TRANS where the voucher's '{' should be
        text = _SIE_HEAD.replace("{\r\n", "#TRANS 1920 {} 1\r\n{\r\n") + "}\r\n"
    else:
        text = _SIE_HEAD + f"   {row}\r\n" + "   #TRANS 3010 {} -100.00\r\n}\r\n"
    fast, general = _sie_both_ways(text.encode("cp437"))
    assert fast == general


SIE_VERS = {
    "plain": '#VER A 1 20240105 "Voucher"',
    "no text": "#VER A 1 20240105",
    "quoted series and number": '#VER "A" "12" 20240105 "t"',
    "empty series": '#VER "" 12 20240105 "t"',
    "tabs": '#VER\tA\t1\t20240105\t"t"',
    "bare text": "#VER A 1 20240105 Hyra",
    "registration date and sign": '#VER A 1 20240105 "t" 20240110 "KL"',
    "escaped quote": '#VER A 1 20240105 "a \\"b\\""',
    "series left out": '#VER 12 20240105 "t"',
    "impossible date": '#VER A 1 20241340 "t"',
    "lower-case label": '#ver A 1 20240105 "t"',
    "object list as series": '#VER {} 1 20240105 "t"',
}


@pytest.mark.parametrize("case", sorted(SIE_VERS))
def test_sie_fast_path_reads_each_kind_of_voucher_row_as_the_general_path(case: str) -> None:
    text = _SIE_HEAD.replace('#VER A 1 20240105 "Voucher"', SIE_VERS[case])
    text += "   #TRANS 1920 {} 1\r\n   #TRANS 3010 {} -1\r\n}\r\n"
    # and a voucher opened inside another one's block
    nested = _SIE_HEAD + "   #TRANS 1920 {} 1\r\n" + SIE_VERS[case] + "\r\n}\r\n"
    for data in (text, nested):
        fast, general = _sie_both_ways(data.encode("cp437"))
        assert fast == general
    assert _sie_both_ways(nested.encode("cp437"))[0][0] == "refused"


def test_sie_fast_path_refuses_what_the_general_path_refuses_with_its_words() -> None:
    fast, general = _sie_both_ways((_SIE_HEAD + "#TRANS 1920 {} 1 20241399\r\n}\r\n").encode())
    assert fast == general
    assert fast[0] == "refused"
    assert "not a valid date" in fast[1][1]


@pytest.fixture(scope="module")
def long_sie(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """A generated SIE file of over a megabyte: many of the fast path's 256 KiB blocks."""
    data = write_sie(_se(30_000), tmp_path_factory.mktemp("sie") / "l.se").read_bytes()
    assert len(data) > 1024 * 1024
    return data


def _late(data: bytes, old: bytes, new: bytes) -> bytes:
    """``data`` with the last ``old`` (three quarters in or later) replaced by ``new``."""
    at = data.rindex(old)
    assert at > len(data) * 3 // 4
    return data[:at] + new + data[at + len(old) :]


#: Edits of a long file that the block decoding must read (or refuse) as lines are.
SIE_BLOCK_EDITS: dict[str, Callable[[bytes], bytes]] = {
    "as generated": lambda data: data,
    "no line feed at the end": lambda data: data.rstrip(b"\r\n"),
    "DOS end-of-file mark": lambda data: data + b"\x1a",
    "bare line feeds": lambda data: data.replace(b"\r\n", b"\n"),
    "utf-8 declared, a cp437 byte late": lambda data: _late(
        data.replace(b"#FORMAT PC8", b"#FORMAT UTF-8", 1).replace(b"\x94", "ö".encode()),
        b"Kostnad",
        b"Kostn\x94d",
    ),
    "a line over the limit late": lambda data: _late(
        data, b'"Kostnad', b'"' + b"x" * (1024 * 1024) + b"Kostnad"
    ),
    "a line at the limit late": lambda data: _late(
        data, b"\r\n}", b"\r\n" + b" " * (1024 * 1024 - 1) + b"\n}"
    ),
    "a line one byte over the limit late": lambda data: _late(
        data, b"\r\n}", b"\r\n" + b" " * (1024 * 1024) + b"\n}"
    ),
    "a last line over the limit": lambda data: data + b"#PROSA " + b"x" * (1024 * 1024),
}


@pytest.mark.parametrize("case", sorted(SIE_BLOCK_EDITS))
def test_sie_block_decoding_reads_lines_as_the_line_by_line_path(
    long_sie: bytes, case: str
) -> None:
    fast, general = _sie_both_ways(SIE_BLOCK_EDITS[case](long_sie))
    assert fast == general
    refused = case.startswith(("utf-8", "a line over", "a line one byte", "a last line"))
    assert fast[0] == ("refused" if refused else "records"), fast[1] if refused else case


@pytest.mark.skipif(not SIE_SAMPLES, reason=f"the public SIE samples are not at {DATA}")
@pytest.mark.parametrize("path", SIE_SAMPLES, ids=lambda p: p.name)
def test_sie_samples_read_the_same_both_ways(path: Path) -> None:
    fast, general = _sie_both_ways(path.read_bytes())
    assert fast == general
    assert fast[0] == "records"


def test_generated_ledgers_read_the_same_both_ways_down_to_the_ledger_items(
    tmp_path: Path,
) -> None:
    for path in (
        write_sie(_se(3_000), tmp_path / "l.se"),
        write_saft(_no(3_000), tmp_path / "l.xml"),
    ):
        data = path.read_bytes()
        items = [
            list(read_ledger(io.BytesIO(data), filename=path.name, fast=fast))
            for fast in (True, False)
        ]
        assert items[0] == items[1]
        assert sum(1 for item in items[0] if type(item).__name__ == "LedgerVoucher") > 500


# ---------------------------------------------------------------- SAF-T fast path

_DEBIT = "<DebitAmount><Amount>5294.78</Amount></DebitAmount>"
#: (old, new) edits of the generated file's first transaction line.
SAFT_EDITS: dict[str, tuple[str, str]] = {
    "as generated": ("", ""),
    "currency amount": (
        _DEBIT,
        "<DebitAmount><Amount>5294.78</Amount><CurrencyCode>EUR</CurrencyCode>"
        "<CurrencyAmount>470.10</CurrencyAmount></DebitAmount>",
    ),
    "1.30 analysis amount": (
        "<AnalysisID>100</AnalysisID></Analysis>",
        "<AnalysisID>100</AnalysisID><DebitAnalysisAmount><Amount>5294.78</Amount>"
        "</DebitAnalysisAmount></Analysis>",
    ),
    "1.10 analysis amount": (
        "<AnalysisID>100</AnalysisID></Analysis>",
        "<AnalysisID>100</AnalysisID><AnalysisAmount><Amount>5294.78</Amount>"
        "</AnalysisAmount></Analysis>",
    ),
    "customer and extra children": (
        "<RecordID>1</RecordID>",
        "<RecordID>1</RecordID><CustomerID> K1 </CustomerID><ValueDate>2024-01-01</ValueDate>",
    ),
    "blank description": (
        "<Description>Kostnad 1</Description><Debit",
        "<Description> </Description><Debit",
    ),
    "date with a time zone": ("<TransactionDate>2024-01-01<", "<TransactionDate>2024-01-01Z<"),
    "three decimals": (_DEBIT, "<DebitAmount><Amount>5294.781</Amount></DebitAmount>"),
    "not an amount": (_DEBIT, "<DebitAmount><Amount>abc</Amount></DebitAmount>"),
    "both sides": (_DEBIT, _DEBIT + "<CreditAmount><Amount>1</Amount></CreditAmount>"),
    "no side": (_DEBIT, ""),
    "bad currency code": (
        _DEBIT,
        _DEBIT.replace("</Amount>", "</Amount><CurrencyCode>eur</CurrencyCode>"),
    ),
    "blank currency amount": (_DEBIT, _DEBIT.replace("</Amount>", "</Amount><CurrencyAmount/>")),
    "no record id": ("<RecordID>1</RecordID>", ""),
    "empty transaction id": (
        "<TransactionID>1</TransactionID>",
        "<TransactionID> </TransactionID>",
    ),
    "period year out of range": ("<PeriodYear>2024</PeriodYear>", "<PeriodYear>1969</PeriodYear>"),
    "impossible date": ("<TransactionDate>2024-01-01<", "<TransactionDate>2024-02-30<"),
    "bad posting date": ("<GLPostingDate>2024-01-01<", "<GLPostingDate>soon<"),
    "analysis without id": ("<AnalysisID>100</AnalysisID>", ""),
}


@pytest.fixture(scope="module")
def saft_file(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    return write_saft(_no(200), tmp_path_factory.mktemp("saft") / "l.xml").read_bytes()


@pytest.mark.parametrize("case", sorted(SAFT_EDITS))
def test_saft_fast_path_reads_each_kind_of_transaction_as_the_general_path(
    saft_file: bytes, case: str
) -> None:
    old, new = SAFT_EDITS[case]
    data = saft_file
    if old:
        assert old.encode() in data
        data = data.replace(old.encode(), new.encode(), 1)
    fast, general = _saft_both_ways(data)
    assert fast == general
    assert fast[0] == ("records" if case in _SAFT_GOOD else "refused")


_SAFT_GOOD = {
    "as generated",
    "currency amount",
    "1.30 analysis amount",
    "1.10 analysis amount",
    "customer and extra children",
    "blank description",
    "date with a time zone",
}


@pytest.mark.skipif(not SAFT_SAMPLES, reason=f"the public SAF-T samples are not at {DATA}")
@pytest.mark.parametrize("path", SAFT_SAMPLES, ids=lambda p: p.name)
def test_saft_samples_read_the_same_both_ways(path: Path) -> None:
    fast, general = _saft_both_ways(path.read_bytes())
    assert fast == general


# ------------------------------------------------------------------ batches


def test_every_batch_ends_at_the_end_of_a_voucher(tmp_path: Path) -> None:
    path = write_sie(_se(400), tmp_path / "l.se")
    with path.open("rb") as stream:
        reader = LedgerReader.of_file(stream, path.name, batch_lines=3)
        reader.company()
        reader.begin_year(uuid.uuid4())
        batches: list[LedgerRows] = []
        while not batches or not batches[-1].done:
            batches.append(reader.batch())
    assert len(batches) > 50
    for batch in batches:
        numbers = {row[1] for row in batch.vouchers}
        assert {row[1] for row in batch.lines} == numbers
        for number in numbers:  # all of the voucher's lines, 1..n, in this batch
            line_nos = [row[2] for row in batch.lines if row[1] == number]
            assert line_nos == list(range(1, len(line_nos) + 1))
            assert len(line_nos) >= 2
    assert sum(len(b.lines) for b in batches) == 400


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
    """Every voucher, line and period balance of the company's year, in key order."""
    async with db.transaction() as session:
        by_business_id = select(col(Company.id)).where(col(Company.business_id) == business_id)
        company_id = (await session.execute(by_business_id)).scalar_one()
        year_id = (
            await session.execute(
                select(col(FiscalYear.id)).where(col(FiscalYear.company_id) == company_id)
            )
        ).scalar_one()
        found: dict[str, list[tuple[Any, ...]]] = {}
        models: tuple[tuple[Any, tuple[str, ...]], ...] = (
            (Voucher, ("voucher_no", "series", "number", "date", "period", "text", "source_id")),
            (VoucherLine, ("voucher_no", "line_no", "account", "amount", "text", "objects")),
            (PeriodBalance, ("period", "account", "dimension_id", "object_id", "debit", "credit")),
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


async def test_one_voucher_per_pipelined_batch_stores_what_one_batch_stores(
    db: Database, tmp_path: Path
) -> None:
    small = _Importer(db, tmp_path, ImportSettings(batch_lines=1))
    one = _Importer(db, tmp_path, ImportSettings(batch_lines=10**9, pipelined=False))
    # The same ledger for two companies (the business ID is all that differs).
    a = await small.run(write_sie(_se(600, "5560000001"), tmp_path / "a.se"), Provider.SIE)
    b = await one.run(write_sie(_se(600, "5560000027"), tmp_path / "b.se"), Provider.SIE)
    assert (a.status, b.status) == (ImportStatus.COMPLETED, ImportStatus.COMPLETED)
    assert a.counts == b.counts
    assert a.counts is not None
    assert a.counts["lines"] == 600
    books_a = await _books(db, "556000-0001")
    books_b = await _books(db, "556000-0027")
    assert books_a == books_b
    assert len(books_a["voucher_lines"]) == 600


_LATE_BAD = {
    # The last row on account 1920 moves to an account the chart does not declare.
    "sie": ("   #TRANS 1920 ", "   #TRANS 9999 ", "undeclared_account"),
    "saf_t": ("<AccountID>1920</AccountID>", "<AccountID>9999</AccountID>", "undeclared_account"),
}


@pytest.mark.parametrize("fmt", sorted(_LATE_BAD))
async def test_a_row_refused_in_a_later_batch_rolls_the_whole_import_back(
    db: Database, database_url: str, tmp_path: Path, fmt: str
) -> None:
    importer = _Importer(db, tmp_path, ImportSettings(batch_lines=20))
    writer, provider, suffix = (
        (write_sie, Provider.SIE, ".se") if fmt == "sie" else (write_saft, Provider.SAF_T, ".xml")
    )
    spec = _se(400) if fmt == "sie" else _no(400)
    good = await importer.run(writer(spec, tmp_path / f"good{suffix}"), provider)
    assert good.status == ImportStatus.COMPLETED
    business_id = good.business_id
    before = await _books(db, business_id)

    # A newer file of the same year whose refused row comes after many batches.
    bad_spec = _se(800, seed=2) if fmt == "sie" else _no(800, seed=2)
    path = writer(bad_spec, tmp_path / f"bad{suffix}")
    old, new, code = _LATE_BAD[fmt]
    text = path.read_bytes()
    at = text.rindex(old.encode())
    assert at > len(text) * 3 // 4
    path.write_bytes(text[:at] + new.encode() + text[at + len(old) :])

    job = await importer.run(path, provider)

    assert job.status == ImportStatus.FAILED
    assert job.error_code == code, job.error_message
    assert "9999" in (job.error_message or "")
    assert await _books(db, business_id) == before
    if database_url.startswith("postgresql"):
        # Progress is committed beside the open data transaction on PostgreSQL only:
        # batches had been written when the refused row was read.
        assert (job.progress_lines or 0) >= 400


# --------------------------------------------------------- a failing write


class _SlowReader:
    """Endless batches; the third waits until the second write has failed."""

    def __init__(self, write_failed: threading.Event) -> None:
        self.write_failed = write_failed
        self.calls = 0
        self.active = 0
        self.lock = threading.Lock()

    def batch(self) -> LedgerRows:
        with self.lock:
            self.calls += 1
            self.active += 1
            call = self.calls
        try:
            if call == 3:
                assert self.write_failed.wait(timeout=30)
            return LedgerRows(lines=[], done=False)
        finally:
            with self.lock:
                self.active -= 1


class _FailingStore:
    def __init__(self, write_failed: threading.Event) -> None:
        self.write_failed = write_failed
        self.writes = 0

    async def write_rows(self, rows: LedgerRows) -> None:
        self.writes += 1
        if self.writes == 2:
            self.write_failed.set()
            raise ConnectionResetError("the database went away")


async def test_a_failed_write_waits_for_the_read_under_way_then_raises() -> None:
    write_failed = threading.Event()
    reader = _SlowReader(write_failed)
    store = _FailingStore(write_failed)
    with pytest.raises(ConnectionResetError):
        await asyncio.wait_for(
            _write_batches(store, reader, None, pipelined=True),  # type: ignore[arg-type]
            timeout=30,
        )
    assert store.writes == 2
    assert reader.calls == 3  # batch 3 was being read while batch 2 was written ...
    assert reader.active == 0  # ... and had ended before the error reached the caller


def test_the_row_builder_keeps_the_year_id_equal_to_the_one_given() -> None:
    year = uuid.uuid4()
    rows = LedgerRows()
    line = LedgerLine("1920", Decimal("1.00"), "", (("1", "100"), ("6", "P1")))
    voucher = LedgerVoucher("A", "1", date(2024, 1, 5), "t", "A1", (line, line), "here")
    LedgerRowBuilder(year).add(voucher, rows)
    assert rows.vouchers[0][0] == year
    assert [row[0] for row in rows.lines] == [year, year]
    assert isinstance(rows.lines[0][0], uuid.UUID)
    assert str(rows.lines[0][0]) == str(year)
    assert [row[6] for row in rows.lines] == ["1=100;6=P1", "1=100;6=P1"]
