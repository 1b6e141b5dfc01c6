"""A streaming parser for Norwegian SAF-T Financial files (schema 1.10/1.20 and 1.30).

Pure domain logic: bytes in, typed records out; no I/O beyond reading the given stream.

:func:`parse_saft` reads the file with :func:`xml.etree.ElementTree.iterparse` and yields
one frozen record per header, general-ledger account, customer, supplier, analysis-type
entry and journal transaction, in document order, followed by one
:class:`SaftLedgerTotals` when the file has ``GeneralLedgerEntries``. Every element is
cleared and detached from its parent as soon as it has been turned into a record (or
skipped), so the tree never holds more than the record being read and its ancestors: peak
memory is flat however large the file is.

Versions and namespaces. Both published schemas (the file named ``..._v_1.10.xsd``, which
calls itself 1.20 inside, and ``..._v_1.30.xsd``) use the target namespace
``urn:StandardAuditFile-Taxation-Financial:NO``. Elements are matched by local name, so a
file in that namespace or in no namespace at all is read the same way; the namespace, the
``xsi:schemaLocation`` hint and ``AuditFileVersion`` are recorded on :class:`SaftHeader`.
A root ``AuditFile`` in any other namespace (OECD SAF-T, Portuguese SAF-T, ...) is
refused: those are different formats with the same root name. The 1.10 and 1.30 variants
of the structures the records are built from are both understood:

* account mapping: ``StandardAccountID`` (1.10) or ``GroupingCategory``/``GroupingCode``
  (1.30);
* analysis amounts: ``AnalysisAmount`` (1.10, no side of its own: it takes the side of its
  line) or ``DebitAnalysisAmount``/``CreditAnalysisAmount`` (1.30).

Signs and types. Amounts are :class:`~decimal.Decimal` (never float), signed debit minus
credit: a debit line or balance is positive, a credit one negative. Dates are
:class:`datetime.date`; a time-zone suffix allowed by ``xs:date`` is dropped.

What is refused and what is reported. :class:`SaftParseError` is raised for anything that
cannot be read correctly: XML that is not well-formed (with line and column), a root that
is not a Norwegian SAF-T ``AuditFile``, a document type declaration, a missing required
element, a value that is not of its type (``'abc'`` as an amount, ``2015-13-01`` as a
date, an amount with more than two decimals) and a header whose identity fields are
placeholders (``AuditFileVersion``, the company's ``RegistrationNumber``,
``DefaultCurrencyCode``): a ledger that cannot be attributed to a company and a currency
must not be imported at all, and the header is checked before any other record is
yielded. Accounting findings are *not* errors here; they are facts the importer and the
accountant must see and decide on: a transaction whose lines do not sum to zero
(:attr:`SaftTransaction.balance`), control totals that do not match the entries
(:attr:`SaftLedgerTotals.discrepancies`), and opening balance plus movements that do not
give the closing balance (computed by the caller from the records).

Untrusted input. SAF-T files are uploads. ElementTree never fetches external entities or
DTDs, and expat >= 2.4 limits entity amplification, but internal entities still allow
quadratic blow-up. SAF-T has no use for a DTD, so any ``<!DOCTYPE`` before the root element
is refused before the parser sees the bytes that contain it.
"""

from __future__ import annotations

import os
import re
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date
from decimal import ROUND_DOWN, Decimal, InvalidOperation
from pathlib import Path
from typing import Any, BinaryIO, NoReturn, cast

from lxml import etree as lxml_etree

__all__ = [
    "SAFT_NAMESPACE",
    "SaftAccount",
    "SaftAnalysis",
    "SaftAnalysisType",
    "SaftCustomer",
    "SaftDocument",
    "SaftHeader",
    "SaftLedgerTotals",
    "SaftLine",
    "SaftParseError",
    "SaftRecord",
    "SaftSelection",
    "SaftSupplier",
    "SaftTransaction",
    "parse_saft",
    "read_saft",
]

SAFT_NAMESPACE = "urn:StandardAuditFile-Taxation-Financial:NO"
"""Target namespace of the Norwegian SAF-T Financial schemas, 1.10/1.20 and 1.30 alike."""

_XSI_SCHEMA_LOCATION = "{http://www.w3.org/2001/XMLSchema-instance}schemaLocation"
_ZERO = Decimal(0)
_CENT = Decimal("0.01")
_MONETARY_LIMIT = Decimal(10) ** 16  # SAFmonetaryType: 18 digits, 2 of them decimals
_READ_SIZE = 64 * 1024
_TRANSACTION_TAG = b"<Transaction>"
#: Bytes of plain transactions read at once by a chunk's reader (``_raw_transactions``).
_RAW_READ_SIZE = 1 << 20
#: What XML 1.0 does not allow in text (libxml2 refuses it): such text goes to libxml2.
_NOT_XML_TEXT = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]|]]>")
_BLANKS = re.compile("[ \t\r\n]*")


class SaftParseError(ValueError):
    """A SAF-T file that cannot be read; reading it again cannot help.

    ``element_path`` locates the problem in the document, e.g.
    ``/AuditFile/GeneralLedgerEntries/Journal[JournalID=A]/Transaction[TransactionID=123]/Line[2]``
    (``Line[2]`` is the second ``Line`` of its transaction). It is empty for problems
    before the root element. ``line`` and ``column`` (both 1-based, as an editor shows
    them) are set when the XML itself is not well-formed.
    """

    reason_code = "saft_invalid"

    def __init__(
        self,
        filename: str,
        element_path: str,
        reason: str,
        *,
        line: int | None = None,
        column: int | None = None,
    ) -> None:
        self.filename = filename
        self.element_path = element_path
        self.reason = reason
        self.line = line
        self.column = column
        where = f"{filename} {element_path}" if element_path else filename
        super().__init__(f"{where}: {reason}")


# --- records ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SaftSelection:
    """``Header/SelectionCriteria``: by accounting periods or by calendar dates."""

    period_start: int | None = None
    period_start_year: int | None = None
    period_end: int | None = None
    period_end_year: int | None = None
    start_date: date | None = None
    end_date: date | None = None


@dataclass(frozen=True, slots=True)
class SaftHeader:
    """``Header``: always the first record."""

    namespace: str | None
    """Namespace of the root element; None when the file uses no namespace."""
    schema_location: str | None
    """The root's ``xsi:schemaLocation`` as written (names the XSD the producer used)."""
    audit_file_version: str
    audit_file_country: str | None
    date_created: date | None
    software_company_name: str | None
    software_id: str | None
    software_version: str | None
    registration_number: str
    """The company's organisation number (9 digits) or national identity number (11)."""
    company_name: str
    default_currency_code: str
    selection: SaftSelection
    tax_accounting_basis: str | None


@dataclass(frozen=True, slots=True)
class SaftAccount:
    """``MasterFiles/GeneralLedgerAccounts/Account``; balances are debit minus credit."""

    account_id: str
    description: str
    standard_account_id: str | None
    """1.10 ``StandardAccountID``."""
    grouping_category: str | None
    """1.30 (and optional 1.10) ``GroupingCategory``."""
    grouping_code: str | None
    account_type: str | None
    opening_balance: Decimal
    closing_balance: Decimal


@dataclass(frozen=True, slots=True)
class SaftCustomer:
    """``MasterFiles/Customers/Customer``."""

    customer_id: str
    name: str
    registration_number: str | None


@dataclass(frozen=True, slots=True)
class SaftSupplier:
    """``MasterFiles/Suppliers/Supplier``."""

    supplier_id: str
    name: str
    registration_number: str | None


@dataclass(frozen=True, slots=True)
class SaftAnalysisType:
    """``MasterFiles/AnalysisTypeTable/AnalysisTypeTableEntry``: one value of a dimension."""

    analysis_type: str
    type_description: str
    analysis_id: str
    description: str


@dataclass(frozen=True, slots=True)
class SaftAnalysis:
    """A line's ``Analysis``: dimension type and value, with an optional signed amount."""

    analysis_type: str
    analysis_id: str
    amount: Decimal | None = None


@dataclass(frozen=True, slots=True)
class SaftLine:
    """A transaction ``Line``; ``amount`` is positive for a debit, negative for a credit."""

    record_id: str
    account_id: str
    amount: Decimal
    description: str
    analyses: tuple[SaftAnalysis, ...] = ()
    currency_code: str | None = None
    currency_amount: Decimal | None = None
    """Amount in ``currency_code``, signed like ``amount``."""
    customer_id: str | None = None
    supplier_id: str | None = None


@dataclass(frozen=True, slots=True)
class SaftTransaction:
    """``GeneralLedgerEntries/Journal/Transaction``: one voucher and its lines."""

    journal_id: str
    transaction_id: str
    period: int
    period_year: int
    transaction_date: date
    description: str
    system_entry_date: date | None
    gl_posting_date: date | None
    lines: tuple[SaftLine, ...]

    @property
    def balance(self) -> Decimal:
        """Sum of the lines: zero for a voucher that balances."""
        return sum((line.amount for line in self.lines), _ZERO)


@dataclass(frozen=True, slots=True)
class SaftLedgerTotals:
    """Control totals of ``GeneralLedgerEntries``: as declared and as counted.

    Yielded after the last transaction. The counted debit (credit) is the sum of the
    ``Amount`` of every ``DebitAmount`` (``CreditAmount``) line, as the schema defines
    ``TotalDebit`` (``TotalCredit``); entries are transactions.
    """

    declared_entries: int
    declared_debit: Decimal
    declared_credit: Decimal
    counted_entries: int
    counted_debit: Decimal
    counted_credit: Decimal

    @property
    def discrepancies(self) -> tuple[str, ...]:
        """What does not match, in words; empty when the totals agree."""
        found: list[str] = []
        if self.declared_entries != self.counted_entries:
            found.append(
                f"NumberOfEntries is {self.declared_entries} "
                f"but the file has {self.counted_entries} transactions"
            )
        if self.declared_debit != self.counted_debit:
            found.append(
                f"TotalDebit is {self.declared_debit} but the debit lines sum to "
                f"{self.counted_debit}"
            )
        if self.declared_credit != self.counted_credit:
            found.append(
                f"TotalCredit is {self.declared_credit} but the credit lines sum to "
                f"{self.counted_credit}"
            )
        return tuple(found)


SaftRecord = (
    SaftHeader
    | SaftAccount
    | SaftCustomer
    | SaftSupplier
    | SaftAnalysisType
    | SaftTransaction
    | SaftLedgerTotals
)


@dataclass(frozen=True, slots=True)
class SaftDocument:
    """A whole SAF-T file in memory (see :func:`read_saft`); for small files and tests."""

    header: SaftHeader
    accounts: tuple[SaftAccount, ...] = ()
    customers: tuple[SaftCustomer, ...] = ()
    suppliers: tuple[SaftSupplier, ...] = ()
    analysis_types: tuple[SaftAnalysisType, ...] = ()
    transactions: tuple[SaftTransaction, ...] = ()
    ledger_totals: SaftLedgerTotals | None = None


# --- entry points ----------------------------------------------------------------------


def parse_saft(
    stream: BinaryIO, *, filename: str, fast: bool = True, lxml: bool = False
) -> Iterator[SaftRecord]:
    """Yield the records of the SAF-T file read from ``stream``, in document order.

    ``filename`` is only used in error messages. The first record is the
    :class:`SaftHeader`. Parsing is lazy: errors are raised while iterating, as
    :class:`SaftParseError`; records yielded before an error must be discarded by a caller
    that wants all or nothing. ``fast=False`` reads every transaction the general way
    (the reference the fast path is tested against); the records are the same.
    ``lxml=True`` (with ``fast``) lets libxml2 read the file first (``_Parser.records``);
    only for a caller that iterates in one thread from start to end (the import's worker
    process): lxml's parser and tree must not move between threads, as the records of an
    in-process import do (each batch in a worker thread of its own).
    """
    return _Parser(stream, filename, fast=fast, lxml=lxml).records()


def open_saft(
    stream: BinaryIO,
    *,
    filename: str,
    fast: bool = True,
    lxml: bool = False,
    checkpoint: int | None = None,
) -> _Parser:
    """The parser :func:`parse_saft` uses, for a chunk's reader (``domain.chunks``).

    Its ``records()`` are :func:`parse_saft`'s; as it reads it counts ``journals``.
    ``checkpoint``: the offset of the stream where the first journal's first
    ``<Transaction>`` is said to start, for a stream whose reads stop there. The lxml
    pass proves libxml2 starts that element there (``checkpoint_proven``) and reads
    the plain transactions that follow from the text itself (``_raw_transactions``).
    """
    return _Parser(stream, filename, fast=fast, lxml=lxml, checkpoint=checkpoint)


def read_saft(path: str | os.PathLike[str]) -> SaftDocument:
    """Parse the SAF-T file at ``path`` into one :class:`SaftDocument`."""
    file_path = Path(path)
    header: SaftHeader | None = None
    accounts: list[SaftAccount] = []
    customers: list[SaftCustomer] = []
    suppliers: list[SaftSupplier] = []
    analysis_types: list[SaftAnalysisType] = []
    transactions: list[SaftTransaction] = []
    totals: SaftLedgerTotals | None = None
    with file_path.open("rb") as stream:
        for record in parse_saft(stream, filename=file_path.name):
            match record:
                case SaftHeader():
                    header = record
                case SaftAccount():
                    accounts.append(record)
                case SaftCustomer():
                    customers.append(record)
                case SaftSupplier():
                    suppliers.append(record)
                case SaftAnalysisType():
                    analysis_types.append(record)
                case SaftTransaction():
                    transactions.append(record)
                case SaftLedgerTotals():
                    totals = record
    if header is None:  # pragma: no cover - parse_saft refuses a file without a header
        raise SaftParseError(file_path.name, "/AuditFile", "Header is missing")
    return SaftDocument(
        header=header,
        accounts=tuple(accounts),
        customers=tuple(customers),
        suppliers=tuple(suppliers),
        analysis_types=tuple(analysis_types),
        transactions=tuple(transactions),
        ledger_totals=totals,
    )


# --- the streaming machinery -----------------------------------------------------------

_ROOT = "AuditFile"
_HEADER = (_ROOT, "Header")
_ACCOUNT = (_ROOT, "MasterFiles", "GeneralLedgerAccounts", "Account")
_CUSTOMER = (_ROOT, "MasterFiles", "Customers", "Customer")
_SUPPLIER = (_ROOT, "MasterFiles", "Suppliers", "Supplier")
_ANALYSIS_TYPE = (_ROOT, "MasterFiles", "AnalysisTypeTable", "AnalysisTypeTableEntry")
_LEDGER = (_ROOT, "GeneralLedgerEntries")
_JOURNAL = (*_LEDGER, "Journal")
_TRANSACTION = (*_JOURNAL, "Transaction")
_RECORDS = frozenset({_HEADER, _ACCOUNT, _CUSTOMER, _SUPPLIER, _ANALYSIS_TYPE, _TRANSACTION})

# Elements named by their ID child in paths, e.g. Account[AccountID=1925]; other repeated
# elements are named by position, e.g. Line[2].
_ID_CHILD = {
    "Transaction": "TransactionID",
    "Account": "AccountID",
    "Customer": "CustomerID",
    "Supplier": "SupplierID",
}
_REPEATED = frozenset(
    {"Journal", "Transaction", "Line", "Account", "Customer", "Supplier"}
    | {"AnalysisTypeTableEntry", "Analysis"}
)

_DOCTYPE_MARKERS = tuple(
    "<!DOCTYPE".encode(encoding) for encoding in ("utf-8", "utf-16-le", "utf-16-be")
)
_MARKER_OVERLAP = max(len(marker) for marker in _DOCTYPE_MARKERS) - 1


def _local(tag: str) -> str:
    return tag.rpartition("}")[2]


class _PrologGuard:
    """Reads the stream for the parser; refuses a ``<!DOCTYPE`` before the root element.

    Every chunk is checked before the parser sees it, until the parser reports the root
    element (a DOCTYPE may only precede it).
    """

    def __init__(self, stream: BinaryIO, filename: str) -> None:
        self._stream = stream
        self.stream = stream
        self._filename = filename
        self._tail = b""
        self.root_seen = False

    def read(self, size: int = -1) -> bytes:
        data = self._stream.read(size)
        if not self.root_seen and data:
            window = self._tail + data
            if any(marker in window for marker in _DOCTYPE_MARKERS):
                raise SaftParseError(
                    self._filename,
                    "",
                    "the file has a document type declaration (<!DOCTYPE ...>); SAF-T files "
                    "have none, and DTDs and entities are refused in uploaded files",
                )
            self._tail = window[-_MARKER_OVERLAP:]
        return data


#: Local names the lxml pass is told about: the records' roots and what surrounds them
#: (:data:`_RECORDS`, the journal's ID, the ledger's control totals), and the repeated
#: entries of ``SourceDocuments`` (not read, but cleared as they end: memory stays flat).
_LXML_TAGS = (
    "AuditFile", "Header", "MasterFiles", "GeneralLedgerAccounts", "Account", "Customers",
    "Customer", "Suppliers", "Supplier", "AnalysisTypeTable", "AnalysisTypeTableEntry",
    "GeneralLedgerEntries", "NumberOfEntries", "TotalDebit", "TotalCredit", "Journal",
    "JournalID", "Transaction", "SourceDocuments", "SalesInvoices", "PurchaseInvoices",
    "Payments", "Invoice", "Payment",
)  # fmt: skip
_LXML_TAG_FILTER = tuple(f"{{{SAFT_NAMESPACE}}}{name}" for name in _LXML_TAGS) + tuple(
    f"{{}}{name}" for name in _LXML_TAGS
)
_XML_ENCODING = re.compile(rb"""encoding\s*=\s*["']([A-Za-z0-9._-]+)["']""")


class _ChunkProofError(SaftParseError):
    """A chunk's first transaction is not where its plan says: the chunk is not used
    (raised as it is, not handed to the reference pass, which would read it in vain)."""


class _GiveUpError(Exception):
    """The lxml pass leaves the file to the reference pass."""


def _lxml_start(stream: BinaryIO) -> int | None:
    """Where the lxml pass may start reading ``stream``; None when it must not read it.

    It reads UTF-8 files (declared so, or undeclared without a byte-order mark of
    UTF-16) from a seekable stream, so that the reference pass can read them again and
    no file is read in an encoding ElementTree would refuse.
    """
    try:
        if not stream.seekable():
            return None
        start = stream.tell()
        head = stream.read(512)
        stream.seek(start)
    except (AttributeError, OSError, ValueError):
        return None
    head = head.removeprefix(b"\xef\xbb\xbf")
    if head.startswith((b"\xff\xfe", b"\xfe\xff")) or b"\x00" in head:
        return None
    if head.startswith(b"<?xml"):
        end = head.find(b"?>")
        if end < 0:
            return None
        match = _XML_ENCODING.search(head[:end])
        if match is not None and match[1].lower() not in (b"utf-8", b"utf8"):
            return None
    return start


class _Parser:
    def __init__(
        self,
        stream: BinaryIO,
        filename: str,
        *,
        fast: bool = True,
        lxml: bool = False,
        checkpoint: int | None = None,
    ) -> None:
        self.filename = filename
        self.fast = fast
        self.lxml = lxml
        self.checkpoint = checkpoint
        self.checkpoint_proven = False
        #: Transactions read from the text at the checkpoint (``_raw_transactions``).
        self.plain_transactions = 0
        #: ``Journal`` and ``Transaction`` elements opened so far (see :func:`open_saft`).
        self.journals = 0
        self.transactions = 0
        #: Whether the elements are lxml's (:meth:`_lxml_records`).
        self.lxml_pass = False
        #: A line's serialised ``Analysis`` children and side -> what they read as (they
        #: repeat: a few cost objects over a whole ledger).
        self.known_analyses: dict[tuple[str, int], tuple[SaftAnalysis, ...] | None] = {}
        #: Serialised dates -> what ``_fast_date`` makes of them (a year has 366 at most).
        self.known_dates: dict[str, date | None] = {}
        #: Local names by tag (``{namespace}Line`` -> ``Line``), for the fast path.
        self.local_names: dict[str, str] = {}
        self.guard = _PrologGuard(stream, filename)
        # The open elements down to the innermost record (or other element) being read,
        # root first: local names, elements, and positions among same-named siblings.
        # Below a record's root nothing is tracked but the number of open elements
        # (``inner``): the record's subtree stays intact until the record is complete, and
        # the open element at each level is the last child of the one above it.
        self.names: list[str] = []
        self.elems: list[ET.Element] = []
        self.positions: list[int] = []
        self.child_counts: list[dict[str, int]] = []
        self.in_record = False
        self.inner = 0
        self.namespace: str | None = None
        self.schema_location: str | None = None
        self.header_seen = False
        self.journal_id: str | None = None
        self.declared: dict[str, str] = {}
        self.counted_entries = 0
        self.counted_debit = _ZERO
        self.counted_credit = _ZERO

    # -- the event loop --

    def records(self) -> Iterator[SaftRecord]:
        """The file's records: by the lxml pass where it applies, else the reference pass.

        The lxml pass (:meth:`_lxml_records`) sees only the elements that records and
        their places are made of; anything it cannot vouch for (an XML error, a refused
        value, a structure it does not track) makes it give up, and the reference pass
        (ElementTree) reads the file again from the start, skips the records already
        yielded (it makes the same ones) and words the error exactly as it always has.
        """
        stream = self.guard.stream
        start = _lxml_start(stream) if self.fast and self.lxml else None
        if start is None:
            yield from self._reference_records()
            return
        yielded = 0
        records = self._lxml_records()
        while True:
            try:
                record = next(records)
            except StopIteration:
                return
            except _ChunkProofError:
                raise
            except Exception:  # the reference pass words it (or reads on)
                break
            yield record
            yielded += 1
        stream.seek(start)
        reference = _Parser(stream, self.filename, fast=self.fast)
        for index, record in enumerate(reference._reference_records()):
            if index >= yielded:
                yield record
        self.journals = reference.journals

    def _lxml_records(self) -> Iterator[SaftRecord]:
        """What :meth:`_reference_records` yields, with libxml2 doing the parsing.

        The parser reports only the elements in :data:`_LXML_TAGS` (the records' roots
        and the elements around them), so Python sees one start and one end per record
        and per tracked element instead of one per element. No DTD is loaded, no entity
        resolved, nothing fetched; the guard still refuses a DOCTYPE. Raises
        :class:`_GiveUpError` (or any error) wherever the reference pass must take over.
        """
        parser = lxml_etree.XMLPullParser(
            events=("start", "end"),
            tag=_LXML_TAG_FILTER,
            remove_comments=True,
            remove_pis=True,
            resolve_entities=False,
            no_network=True,
            load_dtd=False,
            huge_tree=False,
        )
        self.lxml_pass = True
        read = self.guard.read
        elems = self.elems
        in_record = False
        inner = 0
        finished = False
        stream = self.guard.stream
        checkpoint = self.checkpoint
        while True:
            for event, elem in parser.read_events():
                if in_record:
                    if event == "start":
                        inner += 1
                    elif inner:
                        inner -= 1
                    else:  # the record is complete
                        yield self._build_record(elem)
                        in_record = self.in_record = False
                        self._lxml_close(elem)
                elif event == "start":
                    if elems and elem.getparent() is not elems[-1]:
                        raise _GiveUpError("a tracked element inside an untracked one")
                    if len(elems) == 1 and elem.getprevious() is not None and not self.header_seen:
                        raise _GiveUpError("an untracked element before the Header")
                    self._open(elem)
                    in_record = self.in_record
                else:
                    if not elems or elem is not elems[-1]:
                        raise _GiveUpError("an end without its start")
                    yield from self._end_outside(elem)
                    self._lxml_close(elem)
            if finished:
                break
            if checkpoint is not None and stream.tell() == checkpoint:
                checkpoint = None
                yield from self._raw_transactions(parser, stream)
            data = read(_READ_SIZE)
            if data:
                parser.feed(data)
            else:
                parser.close()
                finished = True
        if elems or not self.header_seen:
            raise _GiveUpError("no complete AuditFile with a Header")

    def _raw_transactions(self, parser: Any, stream: BinaryIO) -> Iterator[SaftTransaction]:
        """The plain transactions at the checkpoint, read from the file's own text.

        For a chunk's reader (:func:`open_saft`): libxml2 has read the stream up to the
        checkpoint, where the first journal's first ``<Transaction>`` is said to start.
        That is proven first: fed exactly those 13 bytes, libxml2 must start a
        ``Transaction`` in the journal, before any other (the element is then closed and
        dropped). Then the transactions are matched by the patterns of
        :meth:`_pattern_text` straight from the text, which only match whole plain
        elements (no markup inside a value, no other entity, no character XML forbids):
        each is the element libxml2 would read there. Where the patterns stop (the end
        of the journal, or anything not plain), the stream is set back to that byte and
        libxml2 reads on from it. A refused proof raises :class:`_ChunkProofError` (the
        chunk is not used).
        """
        elems = self.elems
        if not (
            self.names == ["AuditFile", "GeneralLedgerEntries", "Journal"]
            and not self.in_record
            and self.journals == 1
            and self.transactions == 0
            and self.journal_id is not None
        ):
            raise _ChunkProofError(
                self.filename, self._path(), "the chunk does not start in the first journal"
            )
        parser.feed(_TRANSACTION_TAG)
        started = list(parser.read_events())
        parser.feed(b"</Transaction>")
        ended = list(parser.read_events())
        if not (
            len(started) == 1
            and started[0][0] == "start"
            and _local(started[0][1].tag) == "Transaction"
            and started[0][1].getparent() is elems[-1]
            and len(ended) == 1
            and ended[0] == ("end", started[0][1])
        ):
            raise _ChunkProofError(
                self.filename, self._path(), "the chunk's first transaction is not where planned"
            )
        elems[-1].remove(started[0][1])
        self.checkpoint_proven = True
        begin = stream.tell()
        carry = b""
        offset = begin  # of carry's first byte
        while True:
            data = stream.read(_RAW_READ_SIZE)
            buffer = carry + data if carry else data
            cut = buffer.rfind(b"</Transaction>") + len(b"</Transaction>")
            if cut < len(b"</Transaction>") or not data:
                # The end of the stream, or no transaction ends in a whole window: what
                # is left goes to libxml2 after this last piece.
                cut, data = len(buffer), b""
            try:
                text = buffer[:cut].decode("utf-8")
            except UnicodeDecodeError:
                break  # libxml2 reads (and words) it
            if _NOT_XML_TEXT.search(text) is not None:
                break
            position = 0
            while True:
                position = _BLANKS.match(text, position).end()  # type: ignore[union-attr]
                found = self._pattern_text(text, position, _plain_raw)
                if found is None:
                    break
                transaction, position = found
                self.transactions += 1
                self.plain_transactions += 1
                yield transaction
            if position < len(text) or not data:
                offset += len(text[:position].encode("utf-8"))
                break
            offset += cut
            carry = buffer[cut:]
        stream.seek(offset)

    def _lxml_close(self, elem: Any) -> None:
        """Forget ``elem``: clear it and drop its earlier siblings from its parent.

        (The element itself goes when its next tracked sibling, or its parent, closes:
        libxml2 may still be appending to the parent it just closed.)
        """
        self.names.pop()
        self.elems.pop()
        self.positions.pop()
        self.child_counts.pop()
        elem.clear(keep_tail=True)
        parent = elem.getparent()
        if parent is not None:
            while elem.getprevious() is not None:
                del parent[0]

    def _reference_records(self) -> Iterator[SaftRecord]:
        # What ET.iterparse does, without its generator around every event: the events
        # inside a record (most of them) only count the open elements, in a local.
        # The guard refuses DTDs before expat sees them (module doc); expat never
        # fetches external entities for ElementTree.
        parser: ET.XMLPullParser[ET.Element] = ET.XMLPullParser(events=("start", "end"))
        read = self.guard.read
        in_record = False
        inner = 0
        finished = False
        try:
            while True:
                events = cast("Iterator[tuple[str, ET.Element]]", parser.read_events())
                for event, elem in events:
                    if in_record:
                        if event == "start":
                            inner += 1
                        elif inner:
                            inner -= 1
                        else:  # the record is complete
                            yield self._build_record(elem)
                            in_record = self.in_record = False
                            self._close(elem)
                    elif event == "start":
                        self._open(elem)
                        in_record = self.in_record
                    else:
                        yield from self._end_outside(elem)
                        self._close(elem)
                if finished:
                    break
                data = read(16 * 1024)  # iterparse's read size: the guard sees the same
                if data:
                    parser.feed(data)
                else:
                    parser.close()
                    finished = True
        except ET.ParseError as error:
            self.inner = inner
            line, column = error.position
            message = re.sub(r": line \d+, column \d+$", "", str(error))
            hint = ""
            if message in ("no element found", "unclosed token") and self.names:
                hint = f" (the file ends before </{self.names[0]}>: is it truncated?)"
            elif not self.names and (line, column) == (1, 0):
                hint = " (the file is empty or not XML)"
            raise SaftParseError(
                self.filename,
                self._path(self.inner),
                f"XML is not well-formed at line {line}, column {column + 1}: {message}{hint}",
                line=line,
                column=column + 1,
            ) from None

    def _open(self, elem: ET.Element) -> None:
        names = self.names
        name = _local(elem.tag)
        names.append(name)
        self.elems.append(elem)
        depth = len(names)
        if depth == 1:
            self._check_root(elem)
            self.guard.root_seen = True
            self.positions.append(1)
            self.child_counts.append({})
            return
        counts = self.child_counts[-1]
        counts[name] = position = counts.get(name, 0) + 1
        self.positions.append(position)
        self.child_counts.append({})
        if depth == 2:
            if name == "Header":
                if self.header_seen:
                    self._fail(self._path(), "the file has a second Header")
            elif not self.header_seen:
                self._fail(self._path(), f"{name} comes before the Header")
        key = tuple(names)
        if key in _RECORDS:
            self.in_record = True
            if name == "Transaction":
                self.transactions += 1
        elif key == _JOURNAL:
            self.journal_id = None
            self.journals += 1

    def _close(self, elem: ET.Element) -> None:
        """Forget ``elem``, the innermost open element: clear it, detach it from its parent."""
        elem.clear()
        self.names.pop()
        self.elems.pop()
        self.positions.pop()
        self.child_counts.pop()
        if self.elems:
            self.elems[-1].remove(elem)

    def _check_root(self, elem: ET.Element) -> None:
        tag = elem.tag
        namespace = tag[1:].partition("}")[0] if tag.startswith("{") else None
        name = _local(tag)
        shown = f"<{name}>" if namespace is None else f"<{name}> in namespace {namespace!r}"
        if name != _ROOT:
            self._fail(
                f"/{name}",
                f"root element is {shown}, not <{_ROOT}>: this is not a SAF-T Financial file",
            )
        if namespace not in (None, SAFT_NAMESPACE):
            self._fail(
                f"/{name}",
                f"root element is {shown}, not in the Norwegian SAF-T Financial namespace "
                f"{SAFT_NAMESPACE!r} (or none): this is not a Norwegian SAF-T Financial file",
            )
        self.namespace = namespace
        self.schema_location = elem.get(_XSI_SCHEMA_LOCATION)

    def _end_outside(self, elem: ET.Element) -> Iterator[SaftRecord]:
        names = self.names
        parent = tuple(names[:-1])
        name = names[-1]
        if parent == _JOURNAL and name == "JournalID":
            self.journal_id = (elem.text or "").strip() or None
        elif parent == _LEDGER and name in ("NumberOfEntries", "TotalDebit", "TotalCredit"):
            self.declared[name] = (elem.text or "").strip()
        elif tuple(names) == _LEDGER:
            yield self._ledger_totals()
        elif len(names) == 1 and not self.header_seen:
            self._fail(self._path(), "Header is missing")

    # -- paths and errors --

    def _fail(self, path: str, reason: str) -> NoReturn:
        raise SaftParseError(self.filename, path, reason)

    def _path(self, inner: int = 0) -> str:
        """Path of the innermost tracked element and the ``inner`` open ones below it."""
        if not self.names:
            return ""  # before the root element
        parts: list[str] = []
        for depth, (name, elem) in enumerate(zip(self.names, self.elems, strict=True)):
            parts.append(name + self._qualifier(name, elem, self.positions[depth]))
        parent = self.elems[-1]
        for _ in range(inner):
            child = parent[-1]
            name = _local(child.tag)
            position = 1 + sum(1 for sibling in parent[:-1] if _local(sibling.tag) == name)
            parts.append(name + self._qualifier(name, child, position))
            parent = child
        return "/" + "/".join(parts)

    def _qualifier(self, name: str, elem: ET.Element, position: int) -> str:
        if name == "Journal" and self.journal_id is not None:
            return f"[JournalID={self.journal_id}]"
        id_child = _ID_CHILD.get(name)
        if id_child is not None:
            found = _first_child(elem, id_child)
            if found is not None and (found.text or "").strip():
                return f"[{id_child}={(found.text or '').strip()}]"
        return f"[{position}]" if name in _REPEATED else ""

    # -- records --

    def _build_record(self, elem: ET.Element) -> SaftRecord:
        key = tuple(self.names)
        if key == _TRANSACTION:
            if self.fast:
                transaction = None
                if self.lxml_pass:
                    transaction = self._pattern_transaction(elem)
                if transaction is None:
                    transaction = self._fast_transaction(elem)
                if transaction is not None:
                    return transaction
            return self._transaction(_Fields(elem, self.filename, self._path))
        fields = _Fields(elem, self.filename, self._path)
        if key == _ACCOUNT:
            return _account(fields)
        if key == _CUSTOMER:
            return SaftCustomer(
                customer_id=fields.required_text("CustomerID"),
                name=fields.text("Name") or "",
                registration_number=fields.text("RegistrationNumber"),
            )
        if key == _SUPPLIER:
            return SaftSupplier(
                supplier_id=fields.required_text("SupplierID"),
                name=fields.text("Name") or "",
                registration_number=fields.text("RegistrationNumber"),
            )
        if key == _ANALYSIS_TYPE:
            return SaftAnalysisType(
                analysis_type=fields.required_text("AnalysisType"),
                type_description=fields.text("AnalysisTypeDescription") or "",
                analysis_id=fields.required_text("AnalysisID"),
                description=fields.text("AnalysisIDDescription") or "",
            )
        header = self._header(fields)
        self.header_seen = True
        return header

    def _header(self, fields: _Fields) -> SaftHeader:
        company = fields.child("Company")
        selection = fields.optional_child("SelectionCriteria")
        version = fields.required_text("AuditFileVersion")
        registration = company.required_text("RegistrationNumber")
        currency = fields.required_text("DefaultCurrencyCode")
        problems: list[str] = []
        if not re.fullmatch(r"\d+(\.\d+)*", version):
            problems.append(
                f"AuditFileVersion {version!r} is not a SAF-T version number (such as '1.30')"
            )
        normalised_registration = re.sub(r"\s+", "", registration)
        if not re.fullmatch(r"\d{9}|\d{11}", normalised_registration):
            problems.append(
                f"Company/RegistrationNumber {registration!r} is not a Norwegian organisation "
                "number (9 digits) or national identity number (11 digits)"
            )
        if not _is_currency_code(currency):
            problems.append(
                f"DefaultCurrencyCode {currency!r} is not an ISO 4217 currency code "
                "(three capital letters, such as 'NOK')"
            )
        if problems:
            fields.fail(
                "the header does not identify a company and its currency, so nothing in "
                "this file can be imported: " + "; ".join(problems)
            )
        return SaftHeader(
            namespace=self.namespace,
            schema_location=self.schema_location,
            audit_file_version=version,
            audit_file_country=fields.text("AuditFileCountry"),
            date_created=fields.optional_date("AuditFileDateCreated"),
            software_company_name=fields.text("SoftwareCompanyName"),
            software_id=fields.text("SoftwareID"),
            software_version=fields.text("SoftwareVersion"),
            registration_number=normalised_registration,
            company_name=company.required_text("Name"),
            default_currency_code=currency,
            selection=SaftSelection()
            if selection is None
            else SaftSelection(
                period_start=selection.optional_integer("PeriodStart"),
                period_start_year=selection.optional_integer(
                    "PeriodStartYear", minimum=1970, maximum=2100
                ),
                period_end=selection.optional_integer("PeriodEnd"),
                period_end_year=selection.optional_integer(
                    "PeriodEndYear", minimum=1970, maximum=2100
                ),
                start_date=selection.optional_date("SelectionStartDate"),
                end_date=selection.optional_date("SelectionEndDate"),
            ),
            tax_accounting_basis=fields.text("TaxAccountingBasis"),
        )

    def _transaction(self, fields: _Fields) -> SaftTransaction:
        if self.journal_id is None:
            fields.fail("the Journal has no JournalID before its transactions")
        transaction = SaftTransaction(
            journal_id=self.journal_id,
            transaction_id=fields.required_text("TransactionID"),
            period=fields.integer("Period"),
            period_year=fields.integer("PeriodYear", minimum=1970, maximum=2100),
            transaction_date=fields.required_date("TransactionDate"),
            description=fields.text("Description") or "",
            system_entry_date=fields.optional_date("SystemEntryDate"),
            gl_posting_date=fields.optional_date("GLPostingDate"),
            lines=tuple(
                self._line(line)
                for line in fields.children("Line", required=True, each_own_path=True)
            ),
        )
        self.counted_entries += 1
        return transaction

    # -- the fast path of transactions --

    def _children(
        self, elem: ET.Element, repeated: str = ""
    ) -> tuple[dict[str, ET.Element], list[ET.Element]]:
        """The first child of each local name (what ``_Fields`` looks at), and every
        ``repeated`` child (``Line``, ``Analysis``) in order."""
        names = self.local_names
        first: dict[str, ET.Element] = {}
        repeats: list[ET.Element] = []
        for child in elem:
            tag = child.tag
            name = names.get(tag)
            if name is None:
                name = names[tag] = _local(tag)
            if name == repeated:
                repeats.append(child)
            if name not in first:
                first[name] = child
        return first, repeats

    def _fast_transaction(self, elem: ET.Element) -> SaftTransaction | None:
        """A transaction read without ``_Fields``; None when anything is missing or wrong.

        Accepts only what the general path (:meth:`_transaction`) accepts, and builds the
        same record (``test_importer_saft`` reads files both ways and compares). Anything
        it does not accept goes the general way, which words the error at its path.
        """
        journal_id = self.journal_id
        if journal_id is None:
            return None
        found, line_elems = self._children(elem, "Line")
        transaction_id = _fast_text(found.get("TransactionID"))
        period = _fast_integer(found.get("Period"), 0, None)
        period_year = _fast_integer(found.get("PeriodYear"), 1970, 2100)
        transaction_date = _fast_date(_fast_text(found.get("TransactionDate")))
        if not transaction_id or period is None or period_year is None or transaction_date is None:
            return None
        system_entry_date = _fast_text(found.get("SystemEntryDate"))
        gl_posting_date = _fast_text(found.get("GLPostingDate"))
        entry = None if system_entry_date is None else _fast_date(system_entry_date)
        posting = None if gl_posting_date is None else _fast_date(gl_posting_date)
        if (system_entry_date is not None and entry is None) or (
            gl_posting_date is not None and posting is None
        ):
            return None
        if not line_elems:
            return None
        lines: list[SaftLine] = []
        debit = credit = _ZERO
        for line_elem in line_elems:
            line = self._fast_line(line_elem)
            if line is None:
                return None
            saft_line, side = line
            if side.sign > 0:
                debit += side.value
            else:
                credit += side.value
            lines.append(saft_line)
        self.counted_debit += debit
        self.counted_credit += credit
        self.counted_entries += 1
        return SaftTransaction(
            journal_id=journal_id,
            transaction_id=transaction_id,
            period=period,
            period_year=period_year,
            transaction_date=transaction_date,
            description=_fast_text(found.get("Description")) or "",
            system_entry_date=entry,
            gl_posting_date=posting,
            lines=tuple(lines),
        )

    def _pattern_transaction(self, elem: Any) -> SaftTransaction | None:
        """A plain transaction read from its serialisation by patterns; None otherwise.

        The lxml pass serialises the transaction (C, a few microseconds) and matches the
        schema's element order with only the children the record takes plus a few it
        ignores, no attributes, no nesting beyond ``Analysis`` and the amounts, no other
        entity than ``&amp;``, ``&lt;``, ``&gt;``, ``&quot;`` and ``&#13;``. The values
        then pass the very checks of :meth:`_fast_transaction`; anything else (another
        order, a currency amount, a second ``Description``, a prefix) goes that way.
        """
        xml = lxml_etree.tostring(elem, encoding="unicode", with_tail=False)
        found = self._pattern_text(xml, 0, _plain if "&" in xml else _stripped)
        if found is None or found[1] != len(xml):
            return None
        return found[0]

    def _pattern_text(
        self, xml: str, start: int, plain: Callable[[str], str | None]
    ) -> tuple[SaftTransaction, int] | None:
        """The plain transaction starting at ``xml[start]`` and where it (and the blanks
        after it) end; None when there is none (see :meth:`_pattern_transaction`).

        ``plain`` reads a value: :func:`_stripped` for text without entities.
        """
        journal_id = self.journal_id
        if journal_id is None:
            return None
        head = _TX_HEAD.match(xml, start)
        if head is None:
            return None
        transaction_id = plain(head[1])
        period = _integer(head[2], 0, None, plain)
        period_year = _integer(head[3], 1970, 2100, plain)
        dates = self.known_dates
        if len(dates) >= 4096:
            dates.clear()
        raw = head[4]
        transaction_date = dates.get(raw, _UNKNOWN)
        if transaction_date is _UNKNOWN:
            transaction_date = dates[raw] = _fast_date(plain(raw))
        if not transaction_id or period is None or period_year is None or transaction_date is None:
            return None
        entry = posting = None
        if head[6] is not None:
            raw = head[6]
            entry = dates.get(raw, _UNKNOWN)
            if entry is _UNKNOWN:
                entry = dates[raw] = _fast_date(plain(raw))
            if entry is None and plain(raw) is not None:
                return None
        if head[7] is not None:
            raw = head[7]
            posting = dates.get(raw, _UNKNOWN)
            if posting is _UNKNOWN:
                posting = dates[raw] = _fast_date(plain(raw))
            if posting is None and plain(raw) is not None:
                return None
        position = head.end()
        lines: list[SaftLine] = []
        debit = credit = _ZERO
        match_line = _TX_LINE.match
        known = self.known_analyses
        while True:
            found = match_line(xml, position)
            if found is None:
                break
            position = found.end()
            record_id = plain(found[1])
            account_id = plain(found[2])
            if not record_id or not account_id:
                return None
            value = Decimal(found[8])  # the pattern admits only valid amounts (_AMOUNT)
            analyses: tuple[SaftAnalysis, ...] = ()
            if found[7] == "Debit":
                debit += value
                if found[3]:
                    parsed = known.get((found[3], 1), _UNKNOWN)
                    if parsed is _UNKNOWN:
                        parsed = _remember(known, (found[3], 1), _analyses(found[3], 1, plain))
                    if parsed is None:
                        return None
                    analyses = parsed
                amount = value
            else:
                credit += value
                if found[3]:
                    parsed = known.get((found[3], -1), _UNKNOWN)
                    if parsed is _UNKNOWN:
                        parsed = _remember(known, (found[3], -1), _analyses(found[3], -1, plain))
                    if parsed is None:
                        return None
                    analyses = parsed
                amount = -value
            description = found[6]
            customer_id = found[4]
            supplier_id = found[5]
            lines.append(
                SaftLine(
                    record_id,
                    account_id,
                    amount,
                    (description and plain(description)) or "",
                    analyses,
                    None,
                    None,
                    customer_id and plain(customer_id),
                    supplier_id and plain(supplier_id),
                )
            )
        end = _TX_END.match(xml, position) if lines else None
        if end is None:
            return None
        self.counted_debit += debit
        self.counted_credit += credit
        self.counted_entries += 1
        transaction = SaftTransaction(
            journal_id=journal_id,
            transaction_id=transaction_id,
            period=period,
            period_year=period_year,
            transaction_date=transaction_date,
            description=(plain(head[5]) or "") if head[5] is not None else "",
            system_entry_date=entry,
            gl_posting_date=posting,
            lines=tuple(lines),
        )
        return transaction, end.end()

    def _fast_line(self, elem: ET.Element) -> tuple[SaftLine, _Side] | None:
        found, analysis_elems = self._children(elem, "Analysis")
        record_id = _fast_text(found.get("RecordID"))
        account_id = _fast_text(found.get("AccountID"))
        if not record_id or not account_id:
            return None
        amount = self._fast_amount(found, "DebitAmount", "CreditAmount")
        if amount is None:
            return None
        side, currency_code, currency_amount = amount
        analyses: list[SaftAnalysis] = []
        for analysis_elem in analysis_elems:
            analysis = self._fast_analysis(analysis_elem, side.sign)
            if analysis is None:
                return None
            analyses.append(analysis)
        return (
            SaftLine(
                record_id=record_id,
                account_id=account_id,
                amount=side.signed,
                description=_fast_text(found.get("Description")) or "",
                analyses=tuple(analyses),
                currency_code=currency_code,
                currency_amount=currency_amount,
                customer_id=_fast_text(found.get("CustomerID")),
                supplier_id=_fast_text(found.get("SupplierID")),
            ),
            side,
        )

    def _fast_amount(
        self, found: dict[str, ET.Element], debit: str, credit: str
    ) -> tuple[_Side, str | None, Decimal | None] | None:
        """``_Fields.amount`` for valid input; None where it would fail."""
        debit_elem = found.get(debit)
        credit_elem = found.get(credit)
        if (debit_elem is None) == (credit_elem is None):
            return None
        sign = 1 if debit_elem is not None else -1
        chosen = debit_elem if debit_elem is not None else credit_elem
        assert chosen is not None
        structure, _ = self._children(chosen)
        value = _fast_monetary(structure.get("Amount"))
        if value is None:
            return None
        currency_code = _fast_text(structure.get("CurrencyCode"))
        if currency_code is not None and not _is_currency_code(currency_code):
            return None
        currency_amount: Decimal | None = None
        if "CurrencyAmount" in structure:
            currency_value = _fast_monetary(structure["CurrencyAmount"])
            if currency_value is None:
                return None
            currency_amount = currency_value * sign
        return _Side(sign, value), currency_code, currency_amount

    def _fast_analysis(self, elem: ET.Element, line_sign: int) -> SaftAnalysis | None:
        found, _ = self._children(elem)
        amount: Decimal | None = None
        if "AnalysisAmount" in found:
            value = _fast_monetary(self._children(found["AnalysisAmount"])[0].get("Amount"))
            if value is None:
                return None
            amount = value if line_sign > 0 else -value
        elif "DebitAnalysisAmount" in found or "CreditAnalysisAmount" in found:
            side = self._fast_amount(found, "DebitAnalysisAmount", "CreditAnalysisAmount")
            if side is None:
                return None
            amount = side[0].signed
        analysis_type = _fast_text(found.get("AnalysisType"))
        analysis_id = _fast_text(found.get("AnalysisID"))
        if not analysis_type or not analysis_id:
            return None
        return SaftAnalysis(analysis_type=analysis_type, analysis_id=analysis_id, amount=amount)

    def _line(self, fields: _Fields) -> SaftLine:
        amount, currency_code, currency_amount = fields.amount("DebitAmount", "CreditAmount")
        if amount.sign > 0:
            self.counted_debit += amount.value
        else:
            self.counted_credit += amount.value
        return SaftLine(
            record_id=fields.required_text("RecordID"),
            account_id=fields.required_text("AccountID"),
            amount=amount.signed,
            description=fields.text("Description") or "",
            analyses=tuple(
                _analysis(analysis, line_sign=amount.sign)
                for analysis in fields.children("Analysis")
            ),
            currency_code=currency_code,
            currency_amount=currency_amount,
            customer_id=fields.text("CustomerID"),
            supplier_id=fields.text("SupplierID"),
        )

    def _ledger_totals(self) -> SaftLedgerTotals:
        fields = _Fields(self.elems[-1], self.filename, self._path)
        for name in ("NumberOfEntries", "TotalDebit", "TotalCredit"):
            if name not in self.declared:
                fields.fail(f"{name} is missing")
        return SaftLedgerTotals(
            declared_entries=fields.parse_integer(
                "NumberOfEntries", self.declared["NumberOfEntries"]
            ),
            declared_debit=fields.parse_monetary("TotalDebit", self.declared["TotalDebit"]),
            declared_credit=fields.parse_monetary("TotalCredit", self.declared["TotalCredit"]),
            counted_entries=self.counted_entries,
            counted_debit=self.counted_debit,
            counted_credit=self.counted_credit,
        )


def _account(fields: _Fields) -> SaftAccount:
    return SaftAccount(
        account_id=fields.required_text("AccountID"),
        description=fields.text("AccountDescription") or "",
        standard_account_id=fields.text("StandardAccountID"),
        grouping_category=fields.text("GroupingCategory"),
        grouping_code=fields.text("GroupingCode"),
        account_type=fields.text("AccountType"),
        opening_balance=fields.balance("OpeningDebitBalance", "OpeningCreditBalance"),
        closing_balance=fields.balance("ClosingDebitBalance", "ClosingCreditBalance"),
    )


def _analysis(fields: _Fields, *, line_sign: int) -> SaftAnalysis:
    amount: Decimal | None = None
    if fields.has("AnalysisAmount"):  # 1.10: the amount has the side of its line
        value = fields.child("AnalysisAmount").monetary("Amount")
        amount = value if line_sign > 0 else -value
    elif fields.has("DebitAnalysisAmount") or fields.has("CreditAnalysisAmount"):
        side, _, _ = fields.amount("DebitAnalysisAmount", "CreditAnalysisAmount")
        amount = side.signed
    return SaftAnalysis(
        analysis_type=fields.required_text("AnalysisType"),
        analysis_id=fields.required_text("AnalysisID"),
        amount=amount,
    )


def _fast_text(elem: ET.Element | None) -> str | None:
    """``_Fields.text``: the stripped text of a child, None when absent or blank."""
    if elem is None:
        return None
    return (elem.text or "").strip() or None


def _fast_monetary(elem: ET.Element | None) -> Decimal | None:
    """``_Fields.monetary`` of a present, valid child; None where it would fail."""
    raw = _fast_text(elem)
    if raw is None or _DECIMAL.fullmatch(raw) is None:
        return None
    value = Decimal(raw)
    if abs(value) >= _MONETARY_LIMIT or value != value.quantize(_CENT, rounding=ROUND_DOWN):
        return None
    return value


def _fast_integer(elem: ET.Element | None, minimum: int, maximum: int | None) -> int | None:
    """``_Fields.integer`` of a present, valid child; None where it would fail."""
    raw = _fast_text(elem)
    if raw is None or _INTEGER.fullmatch(raw) is None:
        return None
    value = int(raw)
    if value < minimum or (maximum is not None and value > maximum):
        return None
    return value


def _fast_date(raw: str | None) -> date | None:
    """``_Fields.parse_date`` of valid text; None where it would fail."""
    if raw is None:
        return None
    match = _DATE.fullmatch(raw)
    if match is None:
        return None
    try:
        return date(int(match[1]), int(match[2]), int(match[3]))
    except ValueError:
        return None


# --- the pattern path of the lxml pass (see _Parser._pattern_transaction) ---

_W = r"[ \t\r\n]*"
#: An amount ``_fast_monetary`` accepts (at most 16 digits before the point, 2 after);
#: others (a wider or odder spelling) make the pattern fail and go the element way.
_AMOUNT = r"([+-]?[0-9]{1,16}(?:\.[0-9]{0,2})?)"
#: A text value as libxml2 serialises it (the loop unrolled: no step per character).
_V = r"([^<&]*(?:&(?:amp|lt|gt|quot|#13);[^<&]*)*)"


def _simple(name: str, value: bool = False) -> str:
    """An optional element ``name`` holding text (captured when ``value``)."""
    inner = _V if value else _V.replace("(", "(?:", 1)
    return f"(?:<{name}>{inner}</{name}>{_W})?"


_TX_HEAD = re.compile(
    rf'<Transaction(?: xmlns="[^"<>&]*")?>{_W}'
    rf"<TransactionID>{_V}</TransactionID>{_W}"
    rf"<Period>{_V}</Period>{_W}"
    rf"<PeriodYear>{_V}</PeriodYear>{_W}"
    rf"<TransactionDate>{_V}</TransactionDate>{_W}"
    + _simple("SourceID")
    + _simple("TransactionType")
    + _simple("Description", True)
    + _simple("BatchID")
    + _simple("SystemEntryDate", True)
    + _simple("GLPostingDate", True)
    + _simple("CustomerID")
    + _simple("SupplierID")
    + _simple("SystemID")
    + "(?=<Line>)"
)
_TX_ANALYSIS = (
    rf"(?:<Analysis>{_W}<AnalysisType>{_V[1:-1]}</AnalysisType>{_W}"
    rf"<AnalysisID>{_V[1:-1]}</AnalysisID>{_W}"
    rf"(?:<(?:Debit|Credit)?AnalysisAmount>{_W}<Amount>[^<&]*</Amount>{_W}"
    rf"</(?:Debit|Credit)?AnalysisAmount>{_W})?</Analysis>{_W})"
)
_TX_LINE = re.compile(
    rf"<Line>{_W}<RecordID>{_V}</RecordID>{_W}<AccountID>{_V}</AccountID>{_W}"
    rf"({_TX_ANALYSIS}*)"
    + _simple("ValueDate")
    + _simple("SourceDocumentID")
    + _simple("CustomerID", True)
    + _simple("SupplierID", True)
    + _simple("Description", True)
    + rf"<(Debit|Credit)Amount>{_W}<Amount>{_W}{_AMOUNT}{_W}</Amount>{_W}"
    + rf"</(?:Debit|Credit)Amount>{_W}"
    + "".join(
        _simple(name)
        for name in (
            "ReferenceNumber",
            "CID",
            "DueDate",
            "Quantity",
            "CrossReference",
            "SystemEntryTime",
            "OwnerID",
        )
    )
    + f"</Line>{_W}"
)
_TX_END = re.compile(f"</Transaction>{_W}")
_ONE_ANALYSIS = re.compile(
    rf"<Analysis>{_W}<AnalysisType>{_V}</AnalysisType>{_W}<AnalysisID>{_V}</AnalysisID>{_W}"
    rf"(?:<(Debit|Credit)?AnalysisAmount>{_W}<Amount>{_W}{_AMOUNT}{_W}</Amount>{_W}"
    rf"</(Debit|Credit)?AnalysisAmount>{_W})?</Analysis>{_W}"
)
_ENTITIES = {"&amp;": "&", "&lt;": "<", "&gt;": ">", "&quot;": '"', "&#13;": "\r"}
_ENTITY = re.compile("&(?:amp|lt|gt|quot|#13);")


_UNKNOWN: Any = object()


def _remember(
    known: dict[tuple[str, int], tuple[SaftAnalysis, ...] | None],
    key: tuple[str, int],
    value: tuple[SaftAnalysis, ...] | None,
) -> tuple[SaftAnalysis, ...] | None:
    if len(known) >= 4096:
        known.clear()
    known[key] = value
    return value


def _stripped(raw: str) -> str | None:
    """``_plain`` of a value without entities."""
    return raw.strip() or None


def _plain_raw(raw: str) -> str | None:
    """``_plain`` of a value as the file spells it: line ends as XML reads them first."""
    if "\r" in raw:
        raw = raw.replace("\r\n", "\n").replace("\r", "\n")
    if "&" in raw:
        raw = _ENTITY.sub(lambda entity: _ENTITIES[entity[0]], raw)
    return raw.strip() or None


def _plain(raw: str | None) -> str | None:
    """``_fast_text`` of a serialised value: unescaped, stripped, None when blank."""
    if raw is None:
        return None
    if "&" in raw:
        raw = _ENTITY.sub(lambda entity: _ENTITIES[entity[0]], raw)
    return raw.strip() or None


def _monetary(raw: str | None) -> Decimal | None:
    """``_fast_monetary`` of a serialised value."""
    text = _plain(raw)
    if text is None or _DECIMAL.fullmatch(text) is None:
        return None
    value = Decimal(text)
    if abs(value) >= _MONETARY_LIMIT or value != value.quantize(_CENT, rounding=ROUND_DOWN):
        return None
    return value


def _integer(
    raw: str, minimum: int, maximum: int | None, plain: Callable[[str], str | None] = _plain
) -> int | None:
    """``_fast_integer`` of a serialised value."""
    text = plain(raw)
    if text is None or _INTEGER.fullmatch(text) is None:
        return None
    value = int(text)
    if value < minimum or (maximum is not None and value > maximum):
        return None
    return value


def _analyses(
    raw: str, line_sign: int, plain: Callable[[str], str | None] = _plain
) -> tuple[SaftAnalysis, ...] | None:
    """The ``Analysis`` children of a line (``_fast_analysis``), None where it would fail."""
    found: list[SaftAnalysis] = []
    position = 0
    while position < len(raw):
        match = _ONE_ANALYSIS.match(raw, position)
        if match is None:
            return None
        position = match.end()
        analysis_type = plain(match[1])
        analysis_id = plain(match[2])
        if not analysis_type or not analysis_id:
            return None
        amount: Decimal | None = None
        if match[4] is not None:
            opening, closing = match[3], match[5]
            if opening != closing:
                return None
            value = Decimal(match[4])  # valid by the pattern (_AMOUNT)
            if opening is None:  # AnalysisAmount (1.10): the line's side
                amount = value if line_sign > 0 else -value
            else:
                amount = value if opening == "Debit" else -value
        found.append(
            SaftAnalysis(analysis_type=analysis_type, analysis_id=analysis_id, amount=amount)
        )
    return tuple(found)


def _is_currency_code(code: str) -> bool:
    return re.fullmatch(r"[A-Z]{3}", code) is not None


def _first_child(elem: ET.Element, name: str) -> ET.Element | None:
    for child in elem:
        if _local(child.tag) == name:
            return child
    return None


@dataclass(frozen=True, slots=True)
class _Side:
    sign: int  # +1 debit, -1 credit
    value: Decimal  # as written

    @property
    def signed(self) -> Decimal:
        return self.value if self.sign > 0 else -self.value


_DECIMAL = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)")
_DATE = re.compile(r"(\d{4})-(\d{2})-(\d{2})(Z|[+-]\d{2}:\d{2})?")
_INTEGER = re.compile(r"\+?\d+")


class _Fields:
    """The children of one element by local name, with typed, path-aware accessors.

    Errors are reported at the path of the record (``where()``, computed only when there
    is an error) plus ``suffix`` (``/Line[2]``); ``prefix`` is the relative path from
    there to this element (``DebitAmount/``), put before the child named in the message.
    """

    __slots__ = ("by_name", "filename", "prefix", "suffix", "where")

    def __init__(
        self,
        elem: ET.Element,
        filename: str,
        where: Callable[[], str],
        *,
        suffix: str = "",
        prefix: str = "",
    ) -> None:
        self.filename = filename
        self.where = where
        self.suffix = suffix
        self.prefix = prefix
        by_name: dict[str, list[ET.Element]] = {}
        for child in elem:
            by_name.setdefault(_local(child.tag), []).append(child)
        self.by_name = by_name

    def fail(self, reason: str) -> NoReturn:
        raise SaftParseError(self.filename, self.where() + self.suffix, reason)

    def _nested(self, elem: ET.Element, *, suffix: str = "", prefix: str = "") -> _Fields:
        return _Fields(elem, self.filename, self.where, suffix=self.suffix + suffix, prefix=prefix)

    def has(self, name: str) -> bool:
        return name in self.by_name

    def child(self, name: str) -> _Fields:
        found = self.optional_child(name)
        if found is None:
            self.fail(f"{self.prefix}{name} is missing")
        return found

    def optional_child(self, name: str) -> _Fields | None:
        found = self.by_name.get(name)
        if not found:
            return None
        return self._nested(found[0], prefix=f"{self.prefix}{name}/")

    def children(
        self, name: str, *, required: bool = False, each_own_path: bool = False
    ) -> list[_Fields]:
        """Every ``name`` child; ``each_own_path`` reports errors at ``.../Name[i]``."""
        found = self.by_name.get(name, [])
        if required and not found:
            self.fail(f"{self.prefix}{name} is missing")
        if each_own_path:
            return [
                self._nested(elem, suffix=f"/{self.prefix}{name}[{index}]")
                for index, elem in enumerate(found, start=1)
            ]
        return [
            self._nested(elem, prefix=f"{self.prefix}{name}[{index}]/")
            for index, elem in enumerate(found, start=1)
        ]

    def text(self, name: str) -> str | None:
        found = self.by_name.get(name)
        if not found:
            return None
        return (found[0].text or "").strip() or None

    def required_text(self, name: str) -> str:
        found = self.by_name.get(name)
        if not found:
            self.fail(f"{self.prefix}{name} is missing")
        value = (found[0].text or "").strip()
        if not value:
            self.fail(f"{self.prefix}{name} is empty")
        return value

    def monetary(self, name: str) -> Decimal:
        return self.parse_monetary(name, self.required_text(name))

    def parse_monetary(self, name: str, raw: str) -> Decimal:
        """``raw`` as SAFmonetaryType: a decimal with at most 2 decimals and 18 digits."""
        value = self.parse_decimal(name, raw)
        if abs(value) >= _MONETARY_LIMIT:
            self.fail(f"{self.prefix}{name} {raw!r} has more than 18 digits")
        if value != value.quantize(_CENT, rounding=ROUND_DOWN):
            self.fail(f"{self.prefix}{name} {raw!r} has more than 2 decimals")
        return value

    def parse_decimal(self, name: str, raw: str) -> Decimal:
        if _DECIMAL.fullmatch(raw) is None:
            self.fail(f"{self.prefix}{name} {raw!r} is not a decimal")
        try:
            return Decimal(raw)
        except InvalidOperation:  # pragma: no cover - the pattern admits only decimals
            self.fail(f"{self.prefix}{name} {raw!r} is not a decimal")

    def required_date(self, name: str) -> date:
        return self.parse_date(name, self.required_text(name))

    def optional_date(self, name: str) -> date | None:
        raw = self.text(name)
        return None if raw is None else self.parse_date(name, raw)

    def parse_date(self, name: str, raw: str) -> date:
        """``raw`` as ``xs:date``; a time-zone suffix is accepted and dropped."""
        match = _DATE.fullmatch(raw)
        try:
            if match is None:
                raise ValueError(raw)
            return date(int(match[1]), int(match[2]), int(match[3]))
        except ValueError:
            self.fail(f"{self.prefix}{name} {raw!r} is not a date (YYYY-MM-DD)")

    def integer(self, name: str, *, minimum: int = 0, maximum: int | None = None) -> int:
        return self.parse_integer(name, self.required_text(name), minimum, maximum)

    def optional_integer(
        self, name: str, *, minimum: int = 0, maximum: int | None = None
    ) -> int | None:
        raw = self.text(name)
        return None if raw is None else self.parse_integer(name, raw, minimum, maximum)

    def parse_integer(
        self, name: str, raw: str, minimum: int = 0, maximum: int | None = None
    ) -> int:
        """``raw`` as ``xs:nonNegativeInteger`` within ``minimum``..``maximum``."""
        if _INTEGER.fullmatch(raw) is None:
            self.fail(f"{self.prefix}{name} {raw!r} is not a whole number (0 or more)")
        value = int(raw)
        if value < minimum or (maximum is not None and value > maximum):
            limits = f"{minimum}-{maximum}" if maximum is not None else f">= {minimum}"
            self.fail(f"{self.prefix}{name} {value} is outside {limits}")
        return value

    def _here(self) -> str:
        return f"{self.prefix.rstrip('/')} " if self.prefix else ""

    def balance(self, debit: str, credit: str) -> Decimal:
        """The one of ``debit``/``credit`` that is present, signed debit minus credit."""
        has_debit, has_credit = self.has(debit), self.has(credit)
        if has_debit and has_credit:
            self.fail(f"{self._here()}has both {debit} and {credit}")
        if not has_debit and not has_credit:
            self.fail(f"{self.prefix}{debit} or {credit} is missing")
        return self.monetary(debit) if has_debit else -self.monetary(credit)

    def amount(self, debit: str, credit: str) -> tuple[_Side, str | None, Decimal | None]:
        """The one of two ``AmountStructure`` children present: side, currency, amount."""
        has_debit, has_credit = self.has(debit), self.has(credit)
        if has_debit and has_credit:
            self.fail(f"{self._here()}has both {debit} and {credit}")
        if not has_debit and not has_credit:
            self.fail(f"{self.prefix}{debit} or {credit} is missing")
        sign = 1 if has_debit else -1
        structure = self.child(debit if has_debit else credit)
        side = _Side(sign, structure.monetary("Amount"))
        currency_code = structure.text("CurrencyCode")
        if currency_code is not None and not _is_currency_code(currency_code):
            structure.fail(
                f"{structure.prefix}CurrencyCode {currency_code!r} is not an ISO 4217 "
                "currency code (three capital letters)"
            )
        currency_amount: Decimal | None = None
        if structure.has("CurrencyAmount"):
            currency_amount = structure.monetary("CurrencyAmount") * sign
        return side, currency_code, currency_amount
