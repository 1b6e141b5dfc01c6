"""One accounting model for every ledger source, and the rules an import must pass.

Pure domain code. The SIE 4 and SAF-T parsers each speak their own format; the readers
here (:func:`read_ledger`) turn either into the same stream of :class:`LedgerItem`
records: the company and its fiscal year first, then master data (accounts, dimensions,
objects), vouchers as they stream by, and the balances the source itself reports.

:class:`LedgerCheck` is what a careful accountant does with that stream. It refuses
what cannot be imported truthfully (:class:`LedgerImportError` subclasses, each naming
the voucher, account or line), warns about what can be imported but must be seen
(:class:`LedgerNotice`), keeps the per-period balances the reports are built from, and
reconciles every account: source opening balance + imported movements must equal the
source closing balance, and every difference is listed, never hidden.

Decisions, and why:

* An **imbalanced voucher** fails the import: a ledger whose vouchers do not balance
  gives a trial balance that does not balance, and no report built on it can be trusted.
* A **voucher with no rows** fails: it is a broken export (a voucher exists to move
  amounts), not an accounting fact. A voucher whose rows were all removed afterwards
  (SIE ``#BTRANS`` only) is a cancelled voucher and imports with a notice.
* An **account used but never declared** fails: the chart is what classifies amounts into
  the balance sheet and P&L, and a file missing part of its chart is incomplete.
* A **voucher dated outside the fiscal year** fails: it would land in a year the file
  does not replace.
* An **object used but never declared** (cost centre, project …) imports with a notice
  and the object is created with its id as its name: exports often omit unused master
  data, and the amounts are still right.
* **Unknown tags** (SIE labels the spec does not define) are ignored, as the SIE spec
  requires of readers, with a notice. **Control totals** that disagree (SAF-T) are a
  notice; the entries themselves are what is imported.
* **Reconciliation differences** do not fail the import: real exports do not always add
  up, and the import reports exactly which accounts differ and by how much.
"""

from __future__ import annotations

import calendar
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from enum import StrEnum
from typing import BinaryIO, Final

from ledgerlink.importer.domain import saft, sie
from ledgerlink.shared.business_id import normalise_business_id
from ledgerlink.shared.events import Provider

_ZERO: Final = Decimal(0)
_CENT: Final = Decimal("0.01")
_AMOUNT_LIMIT: Final = Decimal(10) ** 16  # NUMERIC(18, 2)


class LedgerFormat(StrEnum):
    """The file formats the importer reads; each is the format of one file provider."""

    SIE = "sie"
    SAF_T = "saf_t"

    @property
    def provider(self) -> Provider:
        """The file provider whose connections send files of this format."""
        return Provider(self.value)

    @classmethod
    def of_provider(cls, provider: Provider) -> LedgerFormat:
        """The format a file provider's connection sends; ValueError for an API provider."""
        if not provider.is_file_based:
            raise ValueError(f"{provider.value} is not a file provider")
        return cls(provider.value)


class AccountType(StrEnum):
    """The kind of an account, where the source says it."""

    ASSET = "asset"
    LIABILITY = "liability"  # SIE "S" covers equity and liabilities alike
    REVENUE = "revenue"
    EXPENSE = "expense"


class DimensionKind(StrEnum):
    """What a dimension is used for."""

    COST_CENTRE = "cost_centre"
    COST_UNIT = "cost_unit"
    PROJECT = "project"
    OTHER = "other"


@dataclass(frozen=True, slots=True)
class LedgerCompany:
    """Who the books belong to and which fiscal year the file holds."""

    business_id: str
    country: str
    name: str
    currency: str
    chart: str
    fiscal_year_start: date
    fiscal_year_end: date
    source_format: LedgerFormat
    generated_on: date | None = None
    #: SIE ``#SIETYP`` (1-3: balances only, 4: with vouchers); None for SAF-T.
    sie_type: int | None = None


@dataclass(frozen=True, slots=True)
class LedgerAccount:
    """An account of the chart."""

    number: str
    name: str
    account_type: AccountType | None = None
    standard_code: str | None = None
    sru_code: str | None = None
    #: Where the file declares it (for notices).
    location: str = ""


@dataclass(frozen=True, slots=True)
class LedgerDimension:
    """A dimension (SIE ``#DIM``, SAF-T analysis type)."""

    dimension_id: str
    name: str
    kind: DimensionKind


@dataclass(frozen=True, slots=True)
class LedgerObject:
    """An object of a dimension: one cost centre, one project …"""

    dimension_id: str
    object_id: str
    name: str


@dataclass(frozen=True, slots=True)
class SourceBalance:
    """An account's opening and closing balance for the year, as the source reports them."""

    account: str
    opening: Decimal | None
    closing: Decimal | None


@dataclass(frozen=True, slots=True)
class ObjectBalance:
    """An account's opening and closing balance for one object (SIE ``#OIB``/``#OUB``)."""

    account: str
    dimension_id: str
    object_id: str
    opening: Decimal | None
    closing: Decimal | None


@dataclass(frozen=True, slots=True)
class ComparisonBalance:
    """An account's balances of the previous fiscal year (SIE ``#IB/#UB/#RES -1``)."""

    account: str
    opening: Decimal | None
    closing: Decimal | None


@dataclass(frozen=True, slots=True)
class LedgerLine:
    """A voucher row: account, signed amount (debit positive) and dimension objects."""

    account: str
    amount: Decimal
    text: str
    objects: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class LedgerVoucher:
    """A voucher; ``location`` says where it is in the file, for messages."""

    series: str
    number: str
    date: date
    text: str
    source_id: str
    lines: tuple[LedgerLine, ...]
    location: str
    removed_rows: int = 0

    @property
    def name(self) -> str:
        """How an accountant names the voucher: series, number and date."""
        series = f"series {self.series!r} " if self.series else ""
        return f"voucher {series}number {self.number!r} dated {self.date.isoformat()}"


@dataclass(frozen=True, slots=True)
class LedgerNotice:
    """Something imported that the accountant should know about (not an error)."""

    code: str
    message: str
    location: str = ""


LedgerItem = (
    LedgerCompany
    | LedgerAccount
    | LedgerDimension
    | LedgerObject
    | SourceBalance
    | ObjectBalance
    | ComparisonBalance
    | LedgerVoucher
    | LedgerNotice
)


# --------------------------------------------------------------------------- errors


class LedgerImportError(ValueError):
    """An import that must not happen; ``reason_code`` is stable, the message is specific."""

    reason_code = "ledger_invalid"

    def __init__(self, message: str, *, location: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.location = location

    def __str__(self) -> str:
        return f"{self.location}: {self.message}" if self.location else self.message


class UnknownFormatError(LedgerImportError):
    """Neither SIE 4 nor SAF-T Financial."""

    reason_code = "unknown_format"


class FileParseError(LedgerImportError):
    """The parser could not read the file (syntax, encoding, truncation …)."""

    reason_code = "parse_error"


class MissingCompanyError(LedgerImportError):
    """The file does not say whose books these are or which year they cover."""

    reason_code = "company_missing"


class UnbalancedVoucherError(LedgerImportError):
    """A voucher whose rows do not sum to zero."""

    reason_code = "unbalanced_voucher"


class EmptyVoucherError(LedgerImportError):
    """A voucher without any rows."""

    reason_code = "empty_voucher"


class UndeclaredAccountError(LedgerImportError):
    """A voucher row on an account the chart does not declare."""

    reason_code = "undeclared_account"


class VoucherOutsideYearError(LedgerImportError):
    """A voucher dated outside the file's fiscal year."""

    reason_code = "voucher_outside_fiscal_year"


class InvalidFiscalYearError(LedgerImportError):
    """A fiscal year that cannot exist (it ends before it starts)."""

    reason_code = "invalid_fiscal_year"


class InvalidAmountError(LedgerImportError):
    """An amount with more than two decimals or too large for the store."""

    reason_code = "invalid_amount"


# --------------------------------------------------------------------------- readers


@dataclass(slots=True)
class ChunkFacts:
    """What a worker tells about its chunk, for ``chunks.merge_checks`` to prove the cuts."""

    #: Vouchers the byte search found before the chunk; SIE: the line of its first.
    vouchers_before: int = 0
    planned_first_line: int = 0
    #: Notices before the first voucher (made from the head: the same in every chunk).
    head_notices: int = -1
    #: Records that are not vouchers after the first voucher (other than SIE warnings).
    records_after_vouchers: int = 0
    #: SIE: line of the first voucher; where and how the text encoding was chosen.
    first_voucher_line: int = 0
    encoding: tuple[str, int, str] | None = None
    #: SAF-T: the first ``<Transaction>`` started exactly at the chunk's checkpoint.
    checkpoint_proven: bool = False
    #: SAF-T: journals opened (a chunk other than the last must stay in the first).
    journals: int = 0
    #: SAF-T: the ledger's control totals as declared, and as counted in this chunk.
    ledger_totals: object | None = None
    #: The distinct (series, number) keys of the chunk's vouchers, hashed, sorted.
    key_hashes: bytes = b""
    #: Objects the chunk created for undeclared references -> index of their notice.
    created_objects: dict[tuple[str, str], int] = field(default_factory=dict)


def detect_format(first_bytes: bytes) -> LedgerFormat:
    """SIE 4 starts with a ``#`` label; SAF-T is XML. Anything else is refused."""
    text = first_bytes.removeprefix(b"\xef\xbb\xbf").lstrip()
    if text.startswith(b"<"):
        return LedgerFormat.SAF_T
    if text.startswith(b"#"):
        return LedgerFormat.SIE
    raise UnknownFormatError(
        "the file is neither SIE 4 (text starting with a # label) nor SAF-T Financial (XML)"
    )


def read_ledger(
    stream: BinaryIO,
    *,
    filename: str,
    fast: bool = True,
    lxml: bool = False,
    facts: ChunkFacts | None = None,
    checkpoint: int | None = None,
) -> Iterator[LedgerItem]:
    """Read a SIE 4 or SAF-T file as :class:`LedgerItem` records (format detected).

    Raises :class:`LedgerImportError` (while iterating) for a file that cannot be read.
    ``fast=False`` makes the parsers read every row the general way (the reference the
    fast paths are tested against); the items are the same either way. ``lxml=True``: a
    SAF-T file may be read by libxml2 first (:func:`saft.parse_saft`; one thread only).
    ``facts``: the stream is a chunk of a file (``domain.chunks``); what proves the cut is
    noted there, and SAF-T control totals are left to the merge (``facts.ledger_totals``).
    ``checkpoint``: see :attr:`ledgerlink.importer.domain.chunks.Chunk.checkpoint`.
    """
    head = stream.peek(64) if hasattr(stream, "peek") else b""
    if not head:
        position = stream.tell()
        head = stream.read(64)
        stream.seek(position)
    if not head.strip():
        raise UnknownFormatError(f"{filename} is empty")
    kind = detect_format(head)
    if kind is LedgerFormat.SIE:
        return _SieReader(stream, filename, fast=fast, facts=facts).items()
    return _SaftReader(
        stream, filename, fast=fast, lxml=lxml, facts=facts, checkpoint=checkpoint
    ).items()


_SIE_KIND: Final = {
    sie.AccountKind.ASSET: AccountType.ASSET,
    sie.AccountKind.LIABILITY: AccountType.LIABILITY,
    sie.AccountKind.COST: AccountType.EXPENSE,
    sie.AccountKind.INCOME: AccountType.REVENUE,
}
# SIE reserves dimension numbers: 1 cost centre, 2 cost unit, 6 project (SIE 4B, 8.18).
_SIE_DIMENSIONS: Final = {
    1: ("Kostnadsställe", DimensionKind.COST_CENTRE),
    2: ("Kostnadsbärare", DimensionKind.COST_UNIT),
    6: ("Projekt", DimensionKind.PROJECT),
}


class _SieReader:
    """SIE records -> ledger items. Master data is held until the first voucher."""

    def __init__(
        self, stream: BinaryIO, filename: str, *, fast: bool = True, facts: ChunkFacts | None = None
    ) -> None:
        self._stream = stream
        self._filename = filename
        self._fast = fast
        self._facts = facts
        #: A row's object list as ledger lines hold it, by the parser's (repeating) list.
        self._line_objects: dict[tuple[sie.ObjectRef, ...], tuple[tuple[str, str], ...]] = {}
        self._company: sie.CompanyInfo | None = None
        self._years: dict[int, sie.FiscalYear] = {}
        self._accounts: dict[str, sie.Account] = {}
        self._types: dict[str, sie.AccountKind] = {}
        self._sru: dict[str, str] = {}
        self._dimensions: dict[int, sie.Dimension] = {}
        self._objects: dict[tuple[int, str], str] = {}
        self._opening: dict[str, Decimal] = {}
        self._closing: dict[str, Decimal] = {}
        self._object_opening: dict[tuple[str, str, str], Decimal] = {}
        self._object_closing: dict[tuple[str, str, str], Decimal] = {}
        self._previous_opening: dict[str, Decimal] = {}
        self._previous_closing: dict[str, Decimal] = {}
        self._master_sent = False

    def _fail(self, error: sie.SieParseError) -> FileParseError:
        return FileParseError(error.reason, location=f"{error.filename} line {error.line_number}")

    def items(self) -> Iterator[LedgerItem]:
        facts = self._facts
        parser = sie.open_sie(self._stream, filename=self._filename, fast=self._fast)
        try:
            voucher_type = sie.Voucher
            for record in parser.records():
                if type(record) is voucher_type and self._master_sent:
                    # Nearly every record: straight to its voucher, past the match below.
                    yield self._voucher(record)
                else:
                    if facts is not None:
                        if type(record) is voucher_type:
                            facts.first_voucher_line = record.line_number
                        elif self._master_sent and type(record) is not sie.SieWarning:
                            facts.records_after_vouchers += 1
                    yield from self._take(record)
        except sie.SieParseError as error:
            raise self._fail(error) from error
        if facts is not None:
            facts.encoding = parser.encoding
        if not self._master_sent:
            yield from self._master()
        for account in sorted(self._opening.keys() | self._closing.keys()):
            yield SourceBalance(account, self._opening.get(account), self._closing.get(account))
        for key in sorted(self._object_opening.keys() | self._object_closing.keys()):
            yield ObjectBalance(*key, self._object_opening.get(key), self._object_closing.get(key))
        previous = self._previous_opening.keys() | self._previous_closing.keys()
        for account in sorted(previous):
            yield ComparisonBalance(
                account, self._previous_opening.get(account), self._previous_closing.get(account)
            )

    def _take(self, record: sie.SieRecord) -> Iterator[LedgerItem]:
        match record:
            case sie.CompanyInfo():
                self._company = record
            case sie.FiscalYear():
                self._years[record.year_index] = record
            case sie.Account():
                self._accounts[record.number] = record
            case sie.AccountType():
                self._types[record.account] = record.kind
            case sie.SruCode():
                self._sru[record.account] = record.code
            case sie.Dimension():
                self._dimensions[record.number] = record
            case sie.DimensionObject():
                self._objects[(record.dimension, record.object_id)] = record.name
            case sie.Balance() if record.year_index == 0:
                target = self._opening if record.kind is sie.BalanceKind.OPENING else self._closing
                target[record.account] = record.amount
            case sie.Result() if record.year_index == 0:
                # #RES is a P&L account's result for the year: its closing balance (the
                # year opens at zero for P&L accounts).
                self._closing[record.account] = record.amount
            case sie.Balance() if record.year_index == -1:
                target = (
                    self._previous_opening
                    if record.kind is sie.BalanceKind.OPENING
                    else self._previous_closing
                )
                target[record.account] = record.amount
            case sie.Result() if record.year_index == -1:
                self._previous_closing[record.account] = record.amount
            case sie.ObjectBalance() if record.year_index == 0:
                yield from self._object_balance(record)
            case sie.SieWarning():
                yield LedgerNotice(
                    record.code, record.message, f"{self._filename} line {record.line_number}"
                )
            case sie.Voucher():
                if not self._master_sent:
                    yield from self._master()
                yield self._voucher(record)
            case _:
                pass  # other years' balances, period balances, budgets: not imported

    def _object_balance(self, record: sie.ObjectBalance) -> Iterator[LedgerItem]:
        if len(record.objects) != 1:
            # Balances are kept per object, as the reports filter by one object; a
            # balance of a combination of objects has no place there.
            yield LedgerNotice(
                "object_balance_skipped",
                f"#O{record.kind.value} of account {record.account} is for "
                f"{len(record.objects)} objects at once; only single-object balances are kept",
                f"{self._filename} line {record.line_number}",
            )
            return
        ref = record.objects[0]
        key = (record.account, str(ref.dimension), ref.object_id)
        opening = record.kind is sie.BalanceKind.OPENING
        (self._object_opening if opening else self._object_closing)[key] = record.amount

    def _master(self) -> Iterator[LedgerItem]:
        self._master_sent = True
        yield self._company_item()
        for account_number, account in self._accounts.items():
            sie_kind = self._types.get(account_number)
            yield LedgerAccount(
                number=account_number,
                name=account.name,
                account_type=_SIE_KIND[sie_kind] if sie_kind else None,
                sru_code=self._sru.get(account_number),
                location=f"{self._filename} line {account.line_number}",
            )
        dimension_numbers = set(self._dimensions) | {d for d, _ in self._objects}
        for number in sorted(dimension_numbers):
            declared = self._dimensions.get(number)
            default_name, kind = _SIE_DIMENSIONS.get(
                number, (f"Dimension {number}", DimensionKind.OTHER)
            )
            if declared is not None and declared.parent in _SIE_DIMENSIONS:
                kind = _SIE_DIMENSIONS[declared.parent][1]
            yield LedgerDimension(
                dimension_id=str(number),
                name=declared.name if declared else default_name,
                kind=kind,
            )
        for (dimension, object_id), name in self._objects.items():
            yield LedgerObject(str(dimension), object_id, name)

    def _company_item(self) -> LedgerCompany:
        company = self._company
        year = self._years.get(0)
        where = self._filename
        if company is None or not company.org_number:
            raise MissingCompanyError(
                "the file has no #ORGNR, so the books cannot be matched to a company",
                location=where,
            )
        if year is None:
            raise MissingCompanyError(
                "the file has no #RAR 0, so the fiscal year it holds is unknown", location=where
            )
        if year.end < year.start:
            raise InvalidFiscalYearError(
                f"#RAR 0 says the fiscal year ends on {year.end} before it starts on "
                f"{year.start}; no fiscal year can, so the books cannot be placed in time",
                location=f"{where} line {year.line_number}",
            )
        return LedgerCompany(
            business_id=normalise_business_id("SE", company.org_number),
            country="SE",
            name=company.name or company.org_number,
            currency=(company.currency or "SEK").upper(),
            chart=company.chart_of_accounts or "BAS",
            fiscal_year_start=year.start,
            fiscal_year_end=year.end,
            source_format=LedgerFormat.SIE,
            generated_on=company.generated_on,
            sie_type=company.sie_type,
        )

    def _voucher(self, voucher: sie.Voucher) -> LedgerVoucher:
        known = self._line_objects
        lines: list[LedgerLine] = []
        removed = sie.TransactionKind.REMOVED
        for row in voucher.transactions:
            if row.kind is removed:
                continue
            refs = row.objects
            objects = known.get(refs)
            if objects is None:
                if len(known) >= 4096:
                    known.clear()
                objects = known[refs] = tuple((str(ref.dimension), ref.object_id) for ref in refs)
            lines.append(LedgerLine(row.account, row.amount, row.text, objects))
        source_id = f"{voucher.series}{voucher.number}" if voucher.series else voucher.number
        return LedgerVoucher(
            series=voucher.series,
            number=voucher.number,
            date=voucher.date,
            text=voucher.text,
            source_id=source_id,
            lines=tuple(lines),
            location=f"{self._filename} line {voucher.line_number}",
            removed_rows=len(voucher.transactions) - len(lines),
        )


_SAFT_DIMENSION_KINDS: Final = {
    # Norwegian SAF-T practice: A = avdeling (department / cost centre), P = prosjekt.
    "A": DimensionKind.COST_CENTRE,
    "AVD": DimensionKind.COST_CENTRE,
    "P": DimensionKind.PROJECT,
    "PRO": DimensionKind.PROJECT,
    "K": DimensionKind.COST_UNIT,
}


class _SaftReader:
    """SAF-T records -> ledger items (SAF-T already puts master data first)."""

    def __init__(
        self,
        stream: BinaryIO,
        filename: str,
        *,
        fast: bool = True,
        lxml: bool = False,
        facts: ChunkFacts | None = None,
        checkpoint: int | None = None,
    ) -> None:
        self._stream = stream
        self._filename = filename
        self._fast = fast
        self._lxml = lxml
        self._facts = facts
        self._checkpoint = checkpoint
        self._dimensions: set[str] = set()

    def items(self) -> Iterator[LedgerItem]:
        try:
            transaction_type = saft.SaftTransaction
            parser = saft.open_saft(
                self._stream,
                filename=self._filename,
                fast=self._fast,
                lxml=self._lxml,
                checkpoint=self._checkpoint,
            )
            facts = self._facts
            for record in parser.records():
                if type(record) is transaction_type:
                    yield self._voucher(record)
                elif facts is not None and type(record) is saft.SaftLedgerTotals:
                    facts.ledger_totals = record  # checked once every chunk has counted
                else:
                    yield from self._take(record)
            if facts is not None:
                facts.checkpoint_proven = parser.checkpoint_proven
                facts.journals = parser.journals
        except saft.SaftParseError as error:
            where = error.filename
            if error.line is not None:
                where += f" line {error.line}" + (f" column {error.column}" if error.column else "")
            elif error.element_path:
                where += f" {error.element_path}"
            raise FileParseError(error.reason, location=where) from error

    def _take(self, record: saft.SaftRecord) -> Iterator[LedgerItem]:
        match record:
            case saft.SaftHeader():
                yield self._company(record)
            case saft.SaftAccount():
                yield LedgerAccount(
                    number=record.account_id,
                    name=record.description,
                    standard_code=record.grouping_code or record.standard_account_id,
                    location=(
                        f"{self._filename} /AuditFile/MasterFiles/GeneralLedgerAccounts/"
                        f"Account[AccountID={record.account_id}]"
                    ),
                )
                yield SourceBalance(
                    record.account_id, record.opening_balance, record.closing_balance
                )
            case saft.SaftAnalysisType():
                if record.analysis_type not in self._dimensions:
                    self._dimensions.add(record.analysis_type)
                    yield LedgerDimension(
                        record.analysis_type,
                        record.type_description,
                        _SAFT_DIMENSION_KINDS.get(
                            record.analysis_type.upper(), DimensionKind.OTHER
                        ),
                    )
                yield LedgerObject(record.analysis_type, record.analysis_id, record.description)
            case saft.SaftTransaction():
                yield self._voucher(record)
            case saft.SaftLedgerTotals():
                for discrepancy in record.discrepancies:
                    yield LedgerNotice(
                        "control_totals", discrepancy, f"{self._filename} GeneralLedgerEntries"
                    )
            case _:
                pass  # customers, suppliers: not part of the ledger model yet

    def _company(self, header: saft.SaftHeader) -> LedgerCompany:
        start, end = _saft_year(header, self._filename)
        country = (header.audit_file_country or "NO").upper()
        return LedgerCompany(
            business_id=normalise_business_id(country, header.registration_number),
            country=country,
            name=header.company_name,
            currency=header.default_currency_code.upper(),
            chart="NO-standard",
            fiscal_year_start=start,
            fiscal_year_end=end,
            source_format=LedgerFormat.SAF_T,
            generated_on=header.date_created,
        )

    def _voucher(self, transaction: saft.SaftTransaction) -> LedgerVoucher:
        lines: list[LedgerLine] = []
        for line in transaction.lines:
            analyses = line.analyses
            objects = (
                tuple([(a.analysis_type, a.analysis_id) for a in analyses]) if analyses else ()
            )
            lines.append(LedgerLine(line.account_id, line.amount, line.description, objects))
        return LedgerVoucher(
            series=transaction.journal_id,
            number=transaction.transaction_id,
            date=transaction.transaction_date,
            text=transaction.description,
            source_id=f"{transaction.journal_id}/{transaction.transaction_id}",
            lines=tuple(lines),
            location=(
                f"{self._filename} /AuditFile/GeneralLedgerEntries/Journal[JournalID="
                f"{transaction.journal_id}]/Transaction[TransactionID="
                f"{transaction.transaction_id}]"
            ),
        )


def _saft_year(header: saft.SaftHeader, filename: str) -> tuple[date, date]:
    """The fiscal year a SAF-T file covers, from its selection criteria.

    By dates when given; otherwise by periods, taken as calendar months (period 1 of
    ``PeriodStartYear`` is January), which is how Norwegian ledgers number them for a
    calendar fiscal year.
    """
    selection = header.selection
    if selection.start_date and selection.end_date:
        if selection.end_date < selection.start_date:
            raise InvalidFiscalYearError(
                f"SelectionEndDate {selection.end_date} is before SelectionStartDate "
                f"{selection.start_date}; no fiscal year can end before it starts",
                location=f"{filename} /AuditFile/Header/SelectionCriteria",
            )
        return selection.start_date, selection.end_date
    if selection.period_start_year and selection.period_end_year:
        first = min(max(selection.period_start or 1, 1), 12)
        last = min(max(selection.period_end or 12, 1), 12)
        start = date(selection.period_start_year, first, 1)
        end = _month_end(date(selection.period_end_year, last, 1))
        if end >= start:
            return start, end
    raise MissingCompanyError(
        "Header/SelectionCriteria gives neither dates nor periods, so the fiscal year the "
        "file holds is unknown",
        location=f"{filename} /AuditFile/Header/SelectionCriteria",
    )


def _month_end(day: date) -> date:
    return day.replace(day=calendar.monthrange(day.year, day.month)[1])


def period_of(day: date) -> date:
    """The accounting period (a calendar month, by its first day) a date falls in."""
    return day.replace(day=1)


def periods_between(start: date, end: date) -> list[date]:
    """Every period (month start) from the one holding ``start`` to the one holding ``end``."""
    periods: list[date] = []
    current = period_of(start)
    while current <= end:
        periods.append(current)
        current = date(current.year + current.month // 12, current.month % 12 + 1, 1)
    return periods


# --------------------------------------------------------------------------- checking


@dataclass(frozen=True, slots=True)
class AccountDifference:
    """An account whose source closing balance is not opening + movements."""

    account: str
    opening: Decimal
    movements: Decimal
    computed_closing: Decimal
    source_closing: Decimal
    difference: Decimal


@dataclass(frozen=True, slots=True)
class Reconciliation:
    """Opening + movements against the source's closing balance, for every account."""

    status: str  # "balanced" | "differences" | "not_available"
    accounts_checked: int
    differences: tuple[AccountDifference, ...]


#: (period, account, dimension id, object id) -> [debit, credit]; "" ids are the total.
PeriodMovements = dict[tuple[date, str, str, str], list[Decimal]]


@dataclass
class LedgerCheck:
    """Applies the import rules to a stream of items and keeps what the store needs.

    Feed every item to :meth:`take` in order; it raises :class:`LedgerImportError` for
    the first rule broken. :meth:`finish` then reconciles.
    """

    company: LedgerCompany | None = None
    accounts: dict[str, LedgerAccount] = field(default_factory=dict)
    dimensions: dict[str, LedgerDimension] = field(default_factory=dict)
    objects: dict[tuple[str, str], LedgerObject] = field(default_factory=dict)
    balances: dict[str, SourceBalance] = field(default_factory=dict)
    #: (account, dimension id, object id) -> the object's balances.
    object_balances: dict[tuple[str, str, str], ObjectBalance] = field(default_factory=dict)
    comparison: dict[str, ComparisonBalance] = field(default_factory=dict)
    notices: list[LedgerNotice] = field(default_factory=list)
    movements: PeriodMovements = field(default_factory=dict)
    voucher_count: int = 0
    line_count: int = 0
    #: Objects created for undeclared references -> the index of their notice.
    created_objects: dict[tuple[str, str], int] = field(default_factory=dict)
    _voucher_keys: set[tuple[str, str]] = field(default_factory=set)

    def take(self, item: LedgerItem) -> LedgerVoucher | None:
        """Check one item; returns it when it is a voucher to store, else None."""
        if isinstance(item, LedgerVoucher):
            self._check_voucher(item)
            return item
        if isinstance(item, LedgerCompany):
            self.company = item
        elif isinstance(item, LedgerAccount):
            if not item.number.isdigit():
                self.notices.append(
                    LedgerNotice(
                        "non_numeric_account",
                        f"account {item.number!r} ({item.name}) is not a number; BAS and the "
                        "Norwegian standard chart number accounts with digits, so it falls in "
                        "no class of the P&L or balance sheet and shows in the trial balance "
                        "only",
                        item.location,
                    )
                )
            self.accounts[item.number] = item
        elif isinstance(item, LedgerDimension):
            self.dimensions[item.dimension_id] = item
        elif isinstance(item, LedgerObject):
            self.objects[(item.dimension_id, item.object_id)] = item
        elif isinstance(item, SourceBalance):
            self._check_amounts(
                (a for a in (item.opening, item.closing) if a is not None),
                f"the balances of account {item.account}",
            )
            self.balances[item.account] = item
        elif isinstance(item, ObjectBalance):
            self._check_amounts(
                (a for a in (item.opening, item.closing) if a is not None),
                f"the balances of account {item.account} for object {item.object_id} of "
                f"dimension {item.dimension_id}",
            )
            self.object_balances[(item.account, item.dimension_id, item.object_id)] = item
        elif isinstance(item, ComparisonBalance):
            self._check_amounts(
                (a for a in (item.opening, item.closing) if a is not None),
                f"the previous year's balances of account {item.account}",
            )
            self.comparison[item.account] = item
        else:
            self.notices.append(item)
        return None

    def _check_amounts(self, amounts: Iterable[Decimal], what: str, location: str = "") -> None:
        for amount in amounts:
            if amount.quantize(_CENT) != amount or abs(amount) >= _AMOUNT_LIMIT:
                raise InvalidAmountError(
                    f"{what}: amount {amount} has more than two decimals or is too large",
                    location=location,
                )

    def _check_voucher(self, voucher: LedgerVoucher) -> None:
        company = self.company
        if company is None:  # readers always yield the company first
            raise MissingCompanyError("vouchers before the company", location=voucher.location)
        if not voucher.lines and voucher.removed_rows == 0:
            raise EmptyVoucherError(f"{voucher.name} has no rows", location=voucher.location)
        if not company.fiscal_year_start <= voucher.date <= company.fiscal_year_end:
            raise VoucherOutsideYearError(
                f"{voucher.name} is outside the fiscal year {company.fiscal_year_start} to "
                f"{company.fiscal_year_end} the file holds",
                location=voucher.location,
            )
        total = _ZERO
        accounts = self.accounts
        for line in voucher.lines:
            amount = line.amount
            if (
                line.account not in accounts
                or amount.quantize(_CENT) != amount
                or abs(amount) >= _AMOUNT_LIMIT
            ):
                self._refuse_row(voucher)
            total += amount
        if total != _ZERO:
            debit = sum((line.amount for line in voucher.lines if line.amount > 0), _ZERO)
            credit = -sum((line.amount for line in voucher.lines if line.amount < 0), _ZERO)
            raise UnbalancedVoucherError(
                f"{voucher.name} does not balance: debits {debit:.2f}, credits {credit:.2f}, "
                f"difference {total:.2f}",
                location=voucher.location,
            )
        if not voucher.lines:
            self.notices.append(
                LedgerNotice(
                    "cancelled_voucher",
                    f"{voucher.name}: all {voucher.removed_rows} rows were removed afterwards "
                    "(#BTRANS); imported without rows",
                    voucher.location,
                )
            )
        key = (voucher.series, voucher.number)
        if key in self._voucher_keys:
            self.notices.append(
                LedgerNotice(
                    "duplicate_voucher_number",
                    f"{voucher.name} repeats a voucher number already used in the file",
                    voucher.location,
                )
            )
        self._voucher_keys.add(key)
        self._book(voucher)

    def _refuse_row(self, voucher: LedgerVoucher) -> None:
        """Raise the error of the voucher's first bad row (the messages are built here only)."""
        for index, line in enumerate(voucher.lines, start=1):
            if line.account not in self.accounts:
                raise UndeclaredAccountError(
                    f"{voucher.name}, row {index}: account {line.account} is not in the "
                    "file's chart of accounts",
                    location=voucher.location,
                )
            self._check_amounts((line.amount,), f"{voucher.name}, row {index}", voucher.location)
        raise AssertionError("_refuse_row() on a voucher without a bad row")  # pragma: no cover

    def _book(self, voucher: LedgerVoucher) -> None:
        period = period_of(voucher.date)
        movements = self.movements
        objects = self.objects
        for line in voucher.lines:
            amount = line.amount
            account = line.account
            if amount >= 0:
                side, size = 0, amount
            else:
                side, size = 1, -amount
            key: tuple[date, str, str, str] = (period, account, "", "")
            totals = movements.get(key)
            if totals is None:
                totals = movements[key] = [_ZERO, _ZERO]
            totals[side] += size
            for dimension_id, object_id in line.objects:
                if (dimension_id, object_id) not in objects:
                    self._undeclared_object(voucher, dimension_id, object_id)
                key = (period, account, dimension_id, object_id)
                totals = movements.get(key)
                if totals is None:
                    totals = movements[key] = [_ZERO, _ZERO]
                totals[side] += size
        self.voucher_count += 1
        self.line_count += len(voucher.lines)

    def _undeclared_object(self, voucher: LedgerVoucher, dimension_id: str, object_id: str) -> None:
        if dimension_id not in self.dimensions:
            self.dimensions[dimension_id] = LedgerDimension(
                dimension_id, f"Dimension {dimension_id}", DimensionKind.OTHER
            )
        self.objects[(dimension_id, object_id)] = LedgerObject(dimension_id, object_id, object_id)
        self.created_objects[(dimension_id, object_id)] = len(self.notices)
        self.notices.append(
            LedgerNotice(
                "undeclared_object",
                f"{voucher.name} uses object {object_id!r} of dimension {dimension_id}, which "
                "the file does not declare; it was created with its id as its name",
                voucher.location,
            )
        )

    def account_movements(self) -> dict[str, Decimal]:
        """Each account's net movement over the year (debit positive)."""
        totals: dict[str, Decimal] = {}
        for (_, account, dimension_id, _), (debit, credit) in self.movements.items():
            if not dimension_id:
                totals[account] = totals.get(account, _ZERO) + debit - credit
        return totals

    def _reconcile_objects(self) -> None:
        """Opening + movements against the closing balance per object (SIE #OIB/#OUB)."""
        if not self.object_balances:
            return
        moved: dict[tuple[str, str, str], Decimal] = {}
        for (_, account, dimension_id, object_id), (debit, credit) in self.movements.items():
            if dimension_id:
                key = (account, dimension_id, object_id)
                moved[key] = moved.get(key, _ZERO) + debit - credit
        for key, balance in sorted(self.object_balances.items()):
            if balance.closing is None:
                continue
            opening = balance.opening if balance.opening is not None else _ZERO
            computed = opening + moved.get(key, _ZERO)
            if computed != balance.closing:
                account, dimension_id, object_id = key
                self.notices.append(
                    LedgerNotice(
                        "object_balance_difference",
                        f"account {account}, object {object_id} of dimension {dimension_id}: "
                        f"opening {opening:.2f} + movements {computed - opening:.2f} = "
                        f"{computed:.2f}, but the file's closing balance is "
                        f"{balance.closing:.2f} (difference {computed - balance.closing:.2f})",
                    )
                )

    def finish(self) -> Reconciliation:
        """Reconcile every account; also adds accounts the balances name but the chart lacks."""
        if self.company is None:
            raise MissingCompanyError("the file holds no company")
        for account in self.balances:
            if account not in self.accounts:
                self.accounts[account] = LedgerAccount(account, account)
                self.notices.append(
                    LedgerNotice(
                        "undeclared_balance_account",
                        f"account {account} has balances but is not in the chart; it was "
                        "created with its number as its name",
                    )
                )
        self._reconcile_objects()
        movements = self.account_movements()
        has_closing = any(b.closing is not None for b in self.balances.values())
        if self.company.sie_type in (1, 2, 3):
            # Types 1-3 carry balances and no vouchers: there are no movements to
            # reconcile the closing balances with.
            self.notices.append(
                LedgerNotice(
                    "balances_only",
                    f"SIE type {self.company.sie_type} holds balances and no vouchers; "
                    "imported as the year's opening and closing balances",
                )
            )
            return Reconciliation("not_available", 0, ())
        if not has_closing:
            return Reconciliation("not_available", 0, ())
        differences: list[AccountDifference] = []
        accounts = sorted(self.balances.keys() | movements.keys())
        for account in accounts:
            balance = self.balances.get(account)
            opening = balance.opening if balance and balance.opening is not None else _ZERO
            closing = balance.closing if balance and balance.closing is not None else _ZERO
            moved = movements.get(account, _ZERO)
            computed = opening + moved
            if computed != closing:
                differences.append(
                    AccountDifference(
                        account, opening, moved, computed, closing, computed - closing
                    )
                )
        status = "differences" if differences else "balanced"
        return Reconciliation(status, len(accounts), tuple(differences))
