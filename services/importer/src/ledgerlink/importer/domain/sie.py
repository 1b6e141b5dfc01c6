"""A streaming parser for SIE 4 files (SIE-Gruppen, "SIE filformat ver 4B").

Pure domain code: no database, no I/O beyond reading the binary stream it is given.
:func:`parse_sie` reads the stream line by line and yields typed, immutable records
(:class:`SieRecord` subclasses) as soon as each is complete; it never holds more than
one voucher (plus a bounded look-ahead used to choose the text encoding) in memory.
:func:`read_sie` is the convenience wrapper that opens a file and collects every
record into a :class:`SieDocument`.

The file format, as read here
-----------------------------
* Every line starts with a label (``#KONTO``, ``#VER`` …); the fields that follow are
  separated by spaces or tabs. A field holding spaces is quoted with ``"``; inside it
  ``\\"`` is a literal quote. Any other backslash is literal (real exports write texts
  such as ``"1110\\1002 Hus 1:1"``). An empty quoted field ``""`` means "absent".
* ``{…}`` in a field position is an object list: pairs of dimension number and object
  id, e.g. ``{1 "100" 6 "P1"}``. Writers that leave the (mandatory) object list out of
  ``#TRANS``/``#PSALDO``/``#PBUDGET`` are tolerated: the list is taken as empty.
* ``#VER`` is followed by a block ``{`` … ``}`` on lines of their own, holding the
  voucher's ``#TRANS``, ``#RTRANS`` and ``#BTRANS`` lines.

  - ``#RTRANS`` is a transaction added after the voucher was first registered. For
    compatibility with old readers the spec has the writer repeat it as an identical
    ``#TRANS`` on the next line; that copy is skipped so the row counts once (when the
    copy is missing a warning says so, and nothing is skipped).
  - ``#BTRANS`` is a removed transaction: it is kept (kind ``REMOVED``) for the audit
    trail but is not part of :attr:`Voucher.balance`.

* Amounts are read as :class:`~decimal.Decimal` (``.`` as decimal point, never a
  float); dates (``YYYYMMDD``) as :class:`datetime.date`; periods (``YYYYMM``) as the
  first day of the month. Year indexes (``0`` current year, ``-1`` previous …) are ints.
* Labels the parser does not know are ignored, as the spec requires of readers, and
  reported as :class:`SieWarning` records. So is ``#KSUMMA``: the checksum is not
  verified. Fields beyond the ones the spec defines for a label are ignored.
* The identification labels (``#FLAGGA``, ``#PROGRAM``, ``#FORMAT``, ``#GEN``,
  ``#SIETYP``, ``#FNR``, ``#ORGNR``, ``#FNAMN``, ``#ADRESS``, ``#TAXAR``, ``#KPTYP``,
  ``#VALUTA`` …) are gathered into one :class:`CompanyInfo`, yielded (followed by the
  ``#RAR`` fiscal years met meanwhile) when the first other record starts. Should an
  identification label appear later in the file, an updated :class:`CompanyInfo` is
  yielded again; the last one is the complete one.
* The parser checks syntax, not bookkeeping: it does not check that vouchers balance
  or that balances add up. That is a separate validation step.

Text encoding
-------------
The spec prescribes ``#FORMAT PC8``, i.e. IBM code page 437, which is also the default
when ``#FORMAT`` is absent. Files found in the wild are also UTF-8 or ISO-8859-1/-15
(Windows programs) while still declaring ``PC8``. :func:`detect_encoding` decides:

1. A UTF-8 byte order mark means UTF-8.
2. A ``#FORMAT`` other than ``PC8`` naming a codec Python knows (``UTF-8``,
   ``ISO-8859-1`` …) is obeyed as declared.
3. Otherwise (``PC8`` or absent) the content decides. Pure ASCII is the same in every
   candidate, so CP437. Content with non-ASCII bytes that is valid UTF-8 is UTF-8:
   CP437 or Latin-1 text forming valid UTF-8 would need sequences such as a box-drawing
   character followed by an accented letter (CP437) or ``Ã`` followed by a C1 control
   or symbol (Latin-1), which Swedish accounting texts do not contain.
4. Between CP437 and Latin-1 it counts the bytes of the letters Swedish texts actually
   use, å ä ö Å Ä Ö é ü: CP437 has them at 0x86 0x84 0x94 0x8F 0x8E 0x99 0x82 0x81,
   Latin-1 at 0xE5 0xE4 0xF6 0xC5 0xC4 0xD6 0xE9 0xFC. In CP437 those Latin-1 bytes
   are Greek letters, maths and box-drawing symbols, in Latin-1 the CP437 bytes are
   C1 control codes: neither shows up in real text. More Latin-1 hits than CP437 hits
   means Latin-1; a tie (including none of either) keeps CP437. ISO-8859-1 and -15
   differ in 8 rarely used code points only; byte 0xA4 (€ in -15, the unused ¤ in -1)
   in the sample picks ISO-8859-15.

:func:`parse_sie` decides at the first line holding a non-ASCII byte (everything before
is ASCII and reads the same in every candidate), on a sample made of the ASCII lines
before it (the first 64 KiB of them, which hold ``#FORMAT``), that line and up to
64 KiB of lines after it. A content-based choice other than CP437 is reported as a
:class:`SieWarning`. A line that then fails to decode is a :class:`SieParseError`.
"""

from __future__ import annotations

import codecs
import functools
import os
import re
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from datetime import date
from decimal import Decimal
from enum import StrEnum
from pathlib import Path
from typing import BinaryIO, Final, TypeAlias, TypeVar

__all__ = [
    "Account",
    "AccountKind",
    "AccountType",
    "AccountUnit",
    "Address",
    "Balance",
    "BalanceKind",
    "CompanyInfo",
    "Dimension",
    "DimensionObject",
    "FiscalYear",
    "ObjectBalance",
    "ObjectRef",
    "PeriodBalance",
    "PeriodBalanceKind",
    "Result",
    "SieDocument",
    "SieParseError",
    "SieRecord",
    "SieWarning",
    "SruCode",
    "Transaction",
    "TransactionKind",
    "Voucher",
    "detect_encoding",
    "parse_sie",
    "read_sie",
]


_Date: TypeAlias = date  # for classes with a field named ``date``


class SieParseError(ValueError):
    """The file is not SIE 4 the parser can read; says where and why.

    ``str(error)`` reads ``"<filename> line <n>: <reason>"``. ``line_number`` is
    1-based (0 when the error is not tied to a line).
    """

    def __init__(self, filename: str, line_number: int, reason: str) -> None:
        super().__init__(filename, line_number, reason)
        self.filename = filename
        self.line_number = line_number
        self.reason = reason

    def __str__(self) -> str:
        return f"{self.filename} line {self.line_number}: {self.reason}"


# --------------------------------------------------------------------------- records


class AccountKind(StrEnum):
    """``#KTYP``: the kind of an account."""

    ASSET = "T"  # tillgång
    LIABILITY = "S"  # skuld (liabilities and equity)
    COST = "K"  # kostnad
    INCOME = "I"  # intäkt


class BalanceKind(StrEnum):
    OPENING = "IB"
    CLOSING = "UB"


class PeriodBalanceKind(StrEnum):
    BALANCE = "PSALDO"
    BUDGET = "PBUDGET"


class TransactionKind(StrEnum):
    NORMAL = "TRANS"
    ADDED = "RTRANS"  # added afterwards; part of the voucher
    REMOVED = "BTRANS"  # removed afterwards; kept for the record, not in the balance


@dataclass(frozen=True, slots=True)
class ObjectRef:
    """One entry of an object list: an object of a dimension (cost centre, project …)."""

    dimension: int
    object_id: str


@dataclass(frozen=True, slots=True)
class Address:
    """``#ADRESS``: contact, street address, postal address, phone."""

    contact: str
    street: str
    postal: str
    phone: str


@dataclass(frozen=True, slots=True, kw_only=True)
class SieRecord:
    """Base of every record :func:`parse_sie` yields; ``line_number`` is 1-based."""

    line_number: int


@dataclass(frozen=True, slots=True, kw_only=True)
class SieWarning(SieRecord):
    """Something the parser ignored (an unknown label …); not an error.

    ``code`` says which kind (stable, machine-readable): ``unknown_tag``,
    ``encoding_detected``, ``format_not_pc8``, ``not_a_label``, ``checksum_not_verified``,
    ``rtrans_copy_missing``, ``informational_row_skipped``.
    """

    message: str
    code: str = "unknown_tag"


@dataclass(frozen=True, slots=True, kw_only=True)
class CompanyInfo(SieRecord):
    """The identification labels of the file; ``None`` when the label is absent.

    ``line_number`` is that of the first identification label (or, for an update
    yielded later, of the label that changed it).
    """

    flag: int | None = None  # FLAGGA
    program: str | None = None  # PROGRAM name
    program_version: str | None = None  # PROGRAM version
    format: str | None = None  # FORMAT (PC8)
    generated_on: date | None = None  # GEN date
    generated_by: str | None = None  # GEN sign
    sie_type: int | None = None  # SIETYP
    comment: str | None = None  # PROSA
    company_type: str | None = None  # FTYP (AB, E, HB …)
    company_id: str | None = None  # FNR: the company's id in the exporting program
    org_number: str | None = None  # ORGNR
    acquisition_number: str | None = None  # ORGNR förvärvsnummer
    activity_number: str | None = None  # ORGNR verksamhetsnummer
    sni_code: str | None = None  # BKOD
    address: Address | None = None  # ADRESS
    name: str | None = None  # FNAMN
    tax_year: int | None = None  # TAXAR
    scope_end: date | None = None  # OMFATTN: balances/results include data up to
    chart_of_accounts: str | None = None  # KPTYP (BAS95, EUBAS97 …)
    currency: str | None = None  # VALUTA (ISO 4217; SEK when absent)


@dataclass(frozen=True, slots=True, kw_only=True)
class FiscalYear(SieRecord):
    """``#RAR``: year index 0 is the current year, -1 the previous one …"""

    year_index: int
    start: date
    end: date


@dataclass(frozen=True, slots=True, kw_only=True)
class Account(SieRecord):
    """``#KONTO``."""

    number: str
    name: str


@dataclass(frozen=True, slots=True, kw_only=True)
class AccountType(SieRecord):
    """``#KTYP``."""

    account: str
    kind: AccountKind


@dataclass(frozen=True, slots=True, kw_only=True)
class AccountUnit(SieRecord):
    """``#ENHET``: the unit of the quantities booked on an account."""

    account: str
    unit: str


@dataclass(frozen=True, slots=True, kw_only=True)
class SruCode(SieRecord):
    """``#SRU``: the tax-return (SRU) code of an account."""

    account: str
    code: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Dimension(SieRecord):
    """``#DIM`` (``parent`` is ``None``) or ``#UNDERDIM`` (``parent`` set)."""

    number: int
    name: str
    parent: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class DimensionObject(SieRecord):
    """``#OBJEKT``."""

    dimension: int
    object_id: str
    name: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Balance(SieRecord):
    """``#IB`` / ``#UB``: opening / closing balance of an account in a year."""

    kind: BalanceKind
    year_index: int
    account: str
    amount: Decimal
    quantity: Decimal | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ObjectBalance(SieRecord):
    """``#OIB`` / ``#OUB``: opening / closing balance of an account for an object."""

    kind: BalanceKind
    year_index: int
    account: str
    objects: tuple[ObjectRef, ...]
    amount: Decimal
    quantity: Decimal | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Result(SieRecord):
    """``#RES``: the result (P&L balance) of an account in a year."""

    year_index: int
    account: str
    amount: Decimal
    quantity: Decimal | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class PeriodBalance(SieRecord):
    """``#PSALDO`` / ``#PBUDGET``: balance / budget of an account for one month.

    ``period`` is the first day of the month. An empty ``objects`` is the account's
    total; other rows are per object (do not add both).
    """

    kind: PeriodBalanceKind
    year_index: int
    period: date
    account: str
    objects: tuple[ObjectRef, ...]
    amount: Decimal
    quantity: Decimal | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Transaction(SieRecord):
    """One ``#TRANS`` / ``#RTRANS`` / ``#BTRANS`` row of a voucher."""

    kind: TransactionKind
    account: str
    objects: tuple[ObjectRef, ...]
    amount: Decimal
    date: _Date | None = None
    text: str = ""
    quantity: Decimal | None = None
    signature: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class Voucher(SieRecord):
    """``#VER`` with its block; ``line_number`` is that of the ``#VER`` line.

    ``series`` and ``number`` may be empty (allowed in SIE 4I import files).
    ``transactions`` keeps file order, removed (``#BTRANS``) rows included.
    """

    series: str
    number: str
    date: _Date
    text: str = ""
    registration_date: _Date | None = None
    signature: str = ""
    transactions: tuple[Transaction, ...] = ()

    @property
    def balance(self) -> Decimal:
        """The sum of the amounts of the rows that count: all but ``#BTRANS``."""
        return sum(
            (t.amount for t in self.transactions if t.kind is not TransactionKind.REMOVED),
            Decimal(0),
        )

    @property
    def active_transactions(self) -> tuple[Transaction, ...]:
        """The rows that are part of the voucher (``#TRANS`` and ``#RTRANS``)."""
        return tuple(t for t in self.transactions if t.kind is not TransactionKind.REMOVED)


_R = TypeVar("_R", bound=SieRecord)


@dataclass(frozen=True, slots=True)
class SieDocument:
    """Every record of a file, collected by kind, in file order."""

    filename: str
    company: CompanyInfo
    fiscal_years: tuple[FiscalYear, ...] = ()
    accounts: tuple[Account, ...] = ()
    account_types: tuple[AccountType, ...] = ()
    account_units: tuple[AccountUnit, ...] = ()
    sru_codes: tuple[SruCode, ...] = ()
    dimensions: tuple[Dimension, ...] = ()
    objects: tuple[DimensionObject, ...] = ()
    balances: tuple[Balance, ...] = ()
    object_balances: tuple[ObjectBalance, ...] = ()
    results: tuple[Result, ...] = ()
    period_balances: tuple[PeriodBalance, ...] = ()
    vouchers: tuple[Voucher, ...] = ()
    warnings: tuple[SieWarning, ...] = ()

    @property
    def transaction_count(self) -> int:
        """All transaction rows of all vouchers (``#BTRANS`` included)."""
        return sum(len(v.transactions) for v in self.vouchers)

    @classmethod
    def from_records(cls, records: Iterable[SieRecord], *, filename: str) -> SieDocument:
        company = CompanyInfo(line_number=0)
        lists: dict[type[SieRecord], list[SieRecord]] = {}
        for record in records:
            if isinstance(record, CompanyInfo):
                company = record  # a later one is an update of an earlier one
            else:
                lists.setdefault(type(record), []).append(record)

        def of(kind: type[_R]) -> tuple[_R, ...]:
            return tuple(r for r in lists.get(kind, ()) if isinstance(r, kind))

        return cls(
            filename=filename,
            company=company,
            fiscal_years=of(FiscalYear),
            accounts=of(Account),
            account_types=of(AccountType),
            account_units=of(AccountUnit),
            sru_codes=of(SruCode),
            dimensions=of(Dimension),
            objects=of(DimensionObject),
            balances=of(Balance),
            object_balances=of(ObjectBalance),
            results=of(Result),
            period_balances=of(PeriodBalance),
            vouchers=of(Voucher),
            warnings=of(SieWarning),
        )


# ------------------------------------------------------------------------- encoding

_SAMPLE_BYTES: Final = 64 * 1024
_MAX_LINE_BYTES: Final = 1024 * 1024
_BLOCK_BYTES: Final = 256 * 1024
# Codecs in which byte 0x0A is a line feed wherever it stands, and a line feed is 0x0A
# (single-byte ASCII supersets and UTF-8): blocks of lines may be decoded at once.
_BLOCK_CODECS: Final = frozenset(
    {"cp437", "utf-8", "iso8859-1", "iso8859-15", "ascii", "cp1252", "cp850", "cp865"}
)


def _codec_name(codec: str) -> str:
    try:
        return codecs.lookup(codec).name
    except LookupError:  # pragma: no cover - the codec was used already
        return codec


_UTF8_BOM: Final = codecs.BOM_UTF8
_UTF16_BOMS: Final = (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)
# å ä ö Å Ä Ö é ü
_SWEDISH_CP437: Final = frozenset(b"\x86\x84\x94\x8f\x8e\x99\x82\x81")
_SWEDISH_LATIN: Final = frozenset(b"\xe5\xe4\xf6\xc5\xc4\xd6\xe9\xfc")
_FORMAT_RE: Final = re.compile(rb'(?im)^[ \t]*#FORMAT[ \t]+"?([^\s"]+)')


@dataclass(frozen=True, slots=True)
class _Detection:
    codec: str
    note: str | None  # set when the content, not the declaration, decided


def _declared_codec(declared: str) -> str | None:
    """The codec a declared ``#FORMAT`` names; ``None`` for PC8 or an unknown name."""
    if declared.upper() == "PC8":
        return None
    try:
        return codecs.lookup(declared).name
    except LookupError:
        return None


def _detect(sample: bytes) -> _Detection:
    if sample.startswith(_UTF8_BOM):
        return _Detection("utf-8-sig", "the file starts with a UTF-8 byte order mark")
    match = _FORMAT_RE.search(sample)
    declared = match.group(1).decode("ascii", "replace") if match else None
    if declared is not None and (codec := _declared_codec(declared)) is not None:
        return _Detection(codec, None)
    said = f"#FORMAT {declared}" if declared else "no #FORMAT"
    if sample.isascii():
        return _Detection("cp437", None)
    try:
        codecs.getincrementaldecoder("utf-8")().decode(sample, final=False)
    except UnicodeDecodeError:
        pass
    else:
        return _Detection("utf-8", f"{said}, but the content reads as utf-8")
    latin = sum(1 for byte in sample if byte in _SWEDISH_LATIN)
    pc8 = sum(1 for byte in sample if byte in _SWEDISH_CP437)
    if latin > pc8:
        codec = "iso8859-15" if b"\xa4" in sample else "iso8859-1"
        return _Detection(
            codec,
            f"{said}, but the content reads as {codec} "
            f"({latin} Latin-1 against {pc8} CP437 Swedish letters)",
        )
    return _Detection("cp437", None)


def detect_encoding(first_bytes: bytes) -> str:
    """The Python codec to decode a SIE file with, judged on its first bytes.

    See the module documentation for the rules. Returns ``"cp437"``, ``"utf-8"``,
    ``"utf-8-sig"`` (byte order mark), ``"iso8859-1"``, ``"iso8859-15"`` or the codec a
    non-PC8 ``#FORMAT`` names. ``first_bytes`` may end in the middle of a character.
    """
    return _detect(first_bytes).codec


# ------------------------------------------------------------------------ tokenizing

_Field = str | tuple[str, ...]  # a value, or the raw tokens of an object list {…}

# Groups: quoted field (escapes kept), '{', '}', bare field, a quote never closed.
_TOKEN_RE: Final = re.compile(r'"((?:\\"|[^"])*)"|(\{)|(\})|([^ \t"{}]+)|(")')
_AMOUNT_RE: Final = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)")
_INT_RE: Final = re.compile(r"[+-]?\d+")
_DATE_RE: Final = re.compile(r"\d{8}")
_PERIOD_RE: Final = re.compile(r"\d{6}")


class _LineError(Exception):
    """A problem with the current line; becomes a :class:`SieParseError`."""


def _tokenize(text: str) -> list[_Field]:
    """Split a line into fields; only spaces and tabs separate them."""
    if '"' not in text and "{" not in text and "}" not in text:
        return [token for token in text.replace("\t", " ").split(" ") if token]
    fields: list[_Field] = []
    objects: list[str] | None = None
    for quoted, opening, closing, bare, stray in _TOKEN_RE.findall(text):
        if bare:
            value = bare
        elif opening:
            if objects is not None:
                raise _LineError("nested '{' in an object list")
            objects = []
            continue
        elif closing:
            if objects is None:
                raise _LineError("'}' without a '{' in the middle of the line")
            fields.append(tuple(objects))
            objects = None
            continue
        elif stray:
            column = next(m.start() for m in _TOKEN_RE.finditer(text) if m.group(5)) + 1
            raise _LineError(f"unterminated quoted field at column {column}")
        else:
            value = quoted.replace('\\"', '"') if "\\" in quoted else quoted
        if objects is not None:
            objects.append(value)
        else:
            fields.append(value)
    if objects is not None:
        raise _LineError("object list '{' is not closed on its line")
    return fields


def _scalar(fields: list[_Field], index: int, label: str, name: str) -> str:
    if index >= len(fields):
        return ""
    value = fields[index]
    if isinstance(value, tuple):
        raise _LineError(f"{label} field '{name}' must be a value, not an object list")
    return value


def _required(fields: list[_Field], index: int, label: str, name: str) -> str:
    value = _scalar(fields, index, label, name)
    if not value:
        raise _LineError(f"{label} field '{name}' is missing")
    return value


def _optional(fields: list[_Field], index: int, label: str, name: str) -> str | None:
    return _scalar(fields, index, label, name) or None


def _to_amount(raw: str, label: str, name: str) -> Decimal:
    if _AMOUNT_RE.fullmatch(raw) is None:
        raise _LineError(f"{label} field '{name}' is not a valid amount: {raw!r}")
    return Decimal(raw)


def _amount(fields: list[_Field], index: int, label: str, name: str) -> Decimal:
    return _to_amount(_required(fields, index, label, name), label, name)


def _optional_amount(fields: list[_Field], index: int, label: str, name: str) -> Decimal | None:
    raw = _scalar(fields, index, label, name)
    return _to_amount(raw, label, name) if raw else None


def _integer(fields: list[_Field], index: int, label: str, name: str) -> int:
    raw = _required(fields, index, label, name)
    if _INT_RE.fullmatch(raw) is None:
        raise _LineError(f"{label} field '{name}' is not an integer: {raw!r}")
    return int(raw)


def _optional_integer(fields: list[_Field], index: int, label: str, name: str) -> int | None:
    return _integer(fields, index, label, name) if _scalar(fields, index, label, name) else None


@functools.lru_cache(maxsize=4096)
def _parse_date(raw: str) -> date | None:
    if _DATE_RE.fullmatch(raw) is None:
        return None
    try:
        return date(int(raw[:4]), int(raw[4:6]), int(raw[6:]))
    except ValueError:
        return None


def _to_date(raw: str, label: str, name: str) -> date:
    parsed = _parse_date(raw)
    if parsed is None:
        raise _LineError(f"{label} field '{name}' is not a valid date (YYYYMMDD): {raw!r}")
    return parsed


def _date(fields: list[_Field], index: int, label: str, name: str) -> date:
    return _to_date(_required(fields, index, label, name), label, name)


def _optional_date(fields: list[_Field], index: int, label: str, name: str) -> date | None:
    raw = _scalar(fields, index, label, name)
    return _to_date(raw, label, name) if raw else None


def _period(fields: list[_Field], index: int, label: str, name: str) -> date:
    raw = _required(fields, index, label, name)
    month = int(raw[4:]) if _PERIOD_RE.fullmatch(raw) else 0
    if not 1 <= month <= 12:
        raise _LineError(f"{label} field '{name}' is not a valid period (YYYYMM): {raw!r}")
    return date(int(raw[:4]), month, 1)


def _object_list(raw: tuple[str, ...], label: str) -> tuple[ObjectRef, ...]:
    if not raw:
        return ()
    if len(raw) % 2:
        raise _LineError(
            f"{label} field 'objects' must hold dimension/object pairs, got {len(raw)} items"
        )
    refs: list[ObjectRef] = []
    for i in range(0, len(raw), 2):
        dimension, object_id = raw[i], raw[i + 1]
        if _INT_RE.fullmatch(dimension) is None:
            raise _LineError(
                f"{label} field 'objects' has a dimension that is not a number: {dimension!r}"
            )
        refs.append(ObjectRef(int(dimension), object_id))
    return tuple(refs)


def _objects_at(
    fields: list[_Field], index: int, label: str
) -> tuple[tuple[ObjectRef, ...], list[_Field]]:
    """The object list at ``index`` and the fields with it removed.

    A writer that leaves the object list out is tolerated: it counts as empty.
    """
    value = fields[index] if index < len(fields) else ()
    if isinstance(value, tuple):
        return _object_list(value, label), fields[:index] + fields[index + 1 :]
    return (), fields


# The plain form of a #TRANS row (see _Parser._fast_transaction): account, object list,
# amount, then optionally a date and a quoted text; no backslash anywhere.
_FAST_TRANS_RE: Final = re.compile(
    r'#TRANS[ \t]+([^ \t"{}\\]+)[ \t]*\{([^{}\\]*)\}[ \t]*([+-]?(?:\d+(?:\.\d*)?|\.\d+))'
    r'(?:[ \t]+(\d{8})(?:[ \t]+"([^"\\]*)")?)?'
)


# The plain form of a #VER row: series and number (bare or quoted), a date and optionally
# a quoted text; no backslash anywhere.
_FAST_VER_RE: Final = re.compile(
    r'#VER[ \t]+(?:"([^"\\]*)"|([^ \t"{}\\]+))[ \t]+(?:"([^"\\]*)"|([^ \t"{}\\]+))'
    r'[ \t]+(\d{8})(?:[ \t]+"([^"\\]*)")?'
)


def _fast_object_list(inner: str) -> tuple[ObjectRef, ...] | None:
    """The object list between ``{`` and ``}`` as the tokenizer reads it; None if unsure.

    Split at the quotes, the odd parts are quoted values and the even parts bare ones
    separated by spaces and tabs, exactly the tokens ``_TOKEN_RE`` finds when there is
    no backslash. An odd number of quotes, or a list ``_object_list`` would refuse,
    gives None (the general path then says what is wrong).
    """
    parts = inner.split('"')
    if len(parts) % 2 == 0:
        return None
    tokens: list[str] = []
    for index, part in enumerate(parts):
        if index % 2:
            tokens.append(part)
        else:
            tokens.extend(token for token in part.replace("\t", " ").split(" ") if token)
    try:
        return _object_list(tuple(tokens), "#TRANS")
    except _LineError:
        return None


def _voucher_name(series: str, number: str) -> str:
    name = f"{series} {number}".strip()
    return f"voucher {name}" if name else "voucher without series and number"


# --------------------------------------------------------------------------- parsing

#: Rows the imported books do not depend on (budgets, tax-return codes): one that is
#: malformed is skipped with a warning instead of refusing the whole file.
_INFORMATIONAL: Final = frozenset({"#PBUDGET", "#BUDGET", "#SRU"})

_IDENTIFICATION: Final = frozenset(
    {
        "#FLAGGA",
        "#PROGRAM",
        "#FORMAT",
        "#GEN",
        "#SIETYP",
        "#PROSA",
        "#FTYP",
        "#FNR",
        "#ORGNR",
        "#BKOD",
        "#ADRESS",
        "#FNAMN",
        "#TAXAR",
        "#OMFATTN",
        "#KPTYP",
        "#VALUTA",
    }
)
_TRANSACTION_KINDS: Final = {
    "#TRANS": TransactionKind.NORMAL,
    "#RTRANS": TransactionKind.ADDED,
    "#BTRANS": TransactionKind.REMOVED,
}

_OUTSIDE, _EXPECT_BLOCK, _IN_BLOCK = 0, 1, 2


@dataclass(slots=True)
class _OpenVoucher:
    line_number: int
    series: str
    number: str
    date: _Date
    text: str
    registration_date: _Date | None
    signature: str
    transactions: list[Transaction] = field(default_factory=list)
    awaiting_copy_of: Transaction | None = None  # an #RTRANS whose #TRANS copy is due

    @property
    def name(self) -> str:
        return _voucher_name(self.series, self.number)


class _Parser:
    def __init__(self, stream: BinaryIO, filename: str, *, fast: bool = True) -> None:
        self._stream = stream
        self._filename = filename
        self._out: list[SieRecord] = []
        self._header_open = True
        self._company: CompanyInfo | None = None
        self._held_years: list[FiscalYear] = []
        self._state = _OUTSIDE
        self._voucher: _OpenVoucher | None = None
        self._handlers: dict[str, Callable[[list[_Field], int], None]] = {
            "#RAR": self._fiscal_year,
            "#KONTO": self._account,
            "#KTYP": self._account_type,
            "#ENHET": self._account_unit,
            "#SRU": self._sru,
            "#DIM": self._dimension,
            "#UNDERDIM": self._underdimension,
            "#OBJEKT": self._object,
            "#IB": self._balance,
            "#UB": self._balance,
            "#OIB": self._object_balance,
            "#OUB": self._object_balance,
            "#RES": self._result,
            "#PSALDO": self._period_balance,
            "#PBUDGET": self._period_balance,
            "#BUDGET": self._budget,
            "#VER": self._voucher_start,
            "#KSUMMA": self._checksum,
        }
        self._label = ""  # of the line being handled, for the handlers' messages
        self._fast = fast
        #: Object lists of the fast path, by their text between the braces.
        self._fast_objects: dict[str, tuple[ObjectRef, ...]] = {}
        self._labels_seen = False
        #: The text encoding chosen, the line where it was chosen and the note made
        #: (None while every line so far is ASCII); see ``domain.chunks``.
        self.encoding: tuple[str, int, str] | None = None

    # -- reading lines

    def _error(self, line_number: int, reason: str) -> SieParseError:
        return SieParseError(self._filename, line_number, reason)

    def _read_raw(self) -> bytes | None:
        raw = self._stream.readline(_MAX_LINE_BYTES + 1)
        return raw or None

    def _lines(self) -> Iterator[tuple[int, str]]:
        """The decoded lines with their numbers, line ends stripped."""
        codec: str | None = None
        head = bytearray()  # the ASCII lines before the first non-ASCII one
        ahead: deque[bytes] = deque()
        line_number = 0
        while True:
            raw = ahead.popleft() if ahead else self._read_raw()
            if raw is None:
                return
            line_number += 1
            if len(raw) > _MAX_LINE_BYTES:
                raise self._error(line_number, f"line longer than {_MAX_LINE_BYTES} bytes")
            if line_number == 1 and raw.startswith(_UTF16_BOMS):
                raise self._error(
                    line_number, "the file is UTF-16 (byte order mark): not a SIE 4 file"
                )
            if line_number == 1 and raw.startswith(_UTF8_BOM):
                raw = raw[len(_UTF8_BOM) :]
                codec = "utf-8"
                self.encoding = (codec, line_number, "bom")
                self._warn(
                    line_number,
                    "the file starts with a UTF-8 byte order mark: read as utf-8",
                    "encoding_detected",
                )
            if codec is None:
                if raw.isascii():
                    if len(head) < _SAMPLE_BYTES:
                        head += raw
                    yield line_number, raw.decode("ascii").rstrip("\r\n\x1a")
                    continue
                sample = head + raw
                while len(sample) < len(head) + _SAMPLE_BYTES:
                    more = self._read_raw()
                    if more is None:
                        break
                    ahead.append(more)
                    sample += more
                detection = _detect(bytes(sample))
                codec = "utf-8" if detection.codec == "utf-8-sig" else detection.codec
                self.encoding = (codec, line_number, detection.note or "")
                if detection.note is not None:
                    self._warn(line_number, detection.note, "encoding_detected")
                head = bytearray()
            yield line_number, self._decode(raw, codec, line_number)
            if self._fast and not ahead and _codec_name(codec) in _BLOCK_CODECS:
                yield from self._block_lines(codec, line_number)
                return

    def _decode(self, raw: bytes, codec: str, line_number: int) -> str:
        try:
            text = raw.decode(codec)
        except UnicodeDecodeError as error:
            raise self._error(
                line_number,
                f"byte 0x{raw[error.start]:02X} at byte {error.start + 1} is not valid "
                f"{codec}, the encoding chosen for this file",
            ) from None
        return text.rstrip("\r\n\x1a")

    def _block_lines(self, codec: str, line_number: int) -> Iterator[tuple[int, str]]:
        """The rest of the file, decoded a block of lines at a time (the fast path).

        Once the codec is chosen, lines are read in blocks of about 256 KiB and each
        block is decoded at once: one call instead of one per line. Only for codecs in
        which byte 0x0A is always a line feed and nothing else (``_BLOCK_CODECS``), so
        splitting the text at line feeds splits it where the bytes split. The lines,
        their numbers and every refusal are those of the line-by-line path: a block that
        does not decode, or that could hold a line longer than the limit, is read again
        line by line to find and name the line.
        """
        read = self._stream.read
        pending = b""
        while True:
            chunk = read(_BLOCK_BYTES)
            if not chunk:
                if pending:
                    if len(pending) > _MAX_LINE_BYTES:
                        raise self._error(
                            line_number + 1, f"line longer than {_MAX_LINE_BYTES} bytes"
                        )
                    yield line_number + 1, self._decode(pending, codec, line_number + 1)
                return
            data = pending + chunk if pending else chunk
            end = data.rfind(b"\n") + 1
            if not end:
                pending = data
                if len(pending) > _MAX_LINE_BYTES:
                    raise self._error(line_number + 1, f"line longer than {_MAX_LINE_BYTES} bytes")
                continue
            block, pending = data[:end], data[end:]
            try:
                if len(block) > _MAX_LINE_BYTES:
                    raise ValueError("maybe a line over the limit")
                lines = block.decode(codec).split("\n")
            except ValueError:  # UnicodeDecodeError too: find and name the line
                for raw in block.split(b"\n")[:-1]:
                    line_number += 1
                    if len(raw) + 1 > _MAX_LINE_BYTES:
                        raise self._error(
                            line_number, f"line longer than {_MAX_LINE_BYTES} bytes"
                        ) from None
                    yield line_number, self._decode(raw, codec, line_number)
                continue
            lines.pop()  # the empty text after the block's last line feed
            for text in lines:
                line_number += 1
                yield line_number, text.rstrip("\r\n\x1a")

    # -- the main loop

    def records(self) -> Iterator[SieRecord]:
        line_number = 0
        out = self._out
        for line_number, text in self._lines():
            try:
                self._line(text, line_number)
            except _LineError as error:
                raise self._error(line_number, str(error)) from None
            if out:
                yield from out
                out.clear()
        self._end(line_number)
        yield from out
        out.clear()

    def _line(self, text: str, line_number: int) -> None:
        stripped = text.strip()
        if not stripped:
            return
        if self._fast:
            if stripped.startswith("#TRANS") and self._fast_transaction(stripped, line_number):
                return
            if stripped.startswith("#VER") and self._fast_voucher_start(stripped, line_number):
                return
        if stripped == "{":
            self._block_start(line_number)
            return
        if stripped == "}":
            self._block_end(line_number)
            return
        if not stripped.startswith("#"):
            self._warn(line_number, "line does not start with a #label: ignored", "not_a_label")
            return
        tokens = _tokenize(stripped)
        label = tokens[0]
        if not isinstance(label, str):  # pragma: no cover - a '#' starts a bare token
            raise _LineError("a line must start with a #label")
        label = label.upper()
        fields = tokens[1:]
        self._label = label
        self._labels_seen = True
        kind = _TRANSACTION_KINDS.get(label)
        if kind is not None:
            self._transaction(kind, fields, line_number)
            return
        if label in _IDENTIFICATION:
            self._expect_no_voucher(label)
            self._identification(label, fields, line_number)
            return
        handler = self._handlers.get(label)
        if handler is None:
            self._warn(line_number, f"unknown label {label} ignored")
            return
        self._expect_no_voucher(label)
        if label != "#RAR":
            self._close_header()
        if label in _INFORMATIONAL:
            self._lenient(handler, fields, line_number)
            return
        handler(fields, line_number)

    def _fast_transaction(self, stripped: str, line_number: int) -> bool:
        """A plain ``#TRANS`` row read without the general tokenizer; False to use it.

        Most rows of a ledger look alike: ``#TRANS account {objects} amount [date
        ["text"]]``, without backslashes. Such a row, inside an open block and with no
        ``#RTRANS`` awaiting its copy, is read here by one pattern match, and gives the
        very :class:`Transaction` the general path gives (``test_importer_sie`` parses
        files both ways and compares the records). Anything else, including every row
        that is wrong, returns False and goes the general way, which words the error.
        """
        voucher = self._voucher
        if voucher is None or self._state != _IN_BLOCK or voucher.awaiting_copy_of is not None:
            return False
        match = _FAST_TRANS_RE.fullmatch(stripped)
        if match is None:
            return False
        account, inner, amount, raw_date, text = match.groups()
        objects = self._fast_objects.get(inner)
        if objects is None:
            parsed = _fast_object_list(inner)
            if parsed is None:
                return False
            if len(self._fast_objects) >= 4096:
                self._fast_objects.clear()
            objects = self._fast_objects[inner] = parsed
        day: _Date | None = None
        if raw_date is not None:
            day = _parse_date(raw_date)
            if day is None:
                return False
        self._label = "#TRANS"
        self._labels_seen = True
        voucher.transactions.append(
            Transaction(
                line_number=line_number,
                kind=TransactionKind.NORMAL,
                account=account,
                objects=objects,
                amount=Decimal(amount),
                date=day,
                text=text or "",
            )
        )
        return True

    def _fast_voucher_start(self, stripped: str, line_number: int) -> bool:
        """A plain ``#VER series number date ["text"]`` read by one pattern match.

        Only outside a voucher and after the identification labels (so the general
        path would neither refuse the label here nor close the header), and only with a
        valid date (so the "series left out" check cannot apply): the same open voucher
        as :meth:`_voucher_start` builds. Anything else returns False.
        """
        if self._voucher is not None or self._header_open:
            return False
        match = _FAST_VER_RE.fullmatch(stripped)
        if match is None:
            return False
        quoted_series, series, quoted_number, number, raw_date, text = match.groups()
        day = _parse_date(raw_date)
        if day is None:
            return False
        self._label = "#VER"
        self._labels_seen = True
        self._voucher = _OpenVoucher(
            line_number=line_number,
            series=quoted_series if quoted_series is not None else series,
            number=quoted_number if quoted_number is not None else number,
            date=day,
            text=text or "",
            registration_date=None,
            signature="",
        )
        self._state = _EXPECT_BLOCK
        return True

    def _lenient(
        self, handler: Callable[[list[_Field], int], None], fields: list[_Field], line_number: int
    ) -> None:
        """Run the handler of a row the books do not depend on; a bad one is skipped."""
        try:
            handler(fields, line_number)
        except _LineError as error:
            self._warn(
                line_number,
                f"{error}: the row is skipped (it is not part of the books)",
                "informational_row_skipped",
            )

    def _end(self, last_line: int) -> None:
        voucher = self._voucher
        if voucher is not None:
            reason = "has no '{' block" if self._state == _EXPECT_BLOCK else "is never closed"
            raise self._error(
                voucher.line_number,
                f"{voucher.name} {reason}: the file ends at line {last_line} "
                "without its '}' (truncated file?)",
            )
        if not self._labels_seen:
            raise self._error(last_line, "no line starts with a #label: empty or not a SIE file")
        self._close_header()

    def _warn(self, line_number: int, message: str, code: str = "unknown_tag") -> None:
        self._out.append(SieWarning(line_number=line_number, message=message, code=code))

    # -- identification

    def _close_header(self) -> None:
        if not self._header_open:
            return
        self._header_open = False
        if self._company is not None:
            self._out.append(self._company)
        self._out.extend(self._held_years)
        self._held_years.clear()

    def _identification(self, label: str, f: list[_Field], line_number: int) -> None:
        info = self._company or CompanyInfo(line_number=line_number)
        match label:
            case "#FLAGGA":
                info = replace(info, flag=_integer(f, 0, label, "flag"))
            case "#PROGRAM":
                info = replace(
                    info,
                    program=_required(f, 0, label, "name"),
                    program_version=_optional(f, 1, label, "version"),
                )
            case "#FORMAT":
                value = _required(f, 0, label, "format")
                if value.upper() != "PC8":
                    self._warn(
                        line_number,
                        f"#FORMAT {value} is not PC8, the only format SIE 4 defines",
                        "format_not_pc8",
                    )
                info = replace(info, format=value)
            case "#GEN":
                info = replace(
                    info,
                    generated_on=_date(f, 0, label, "date"),
                    generated_by=_optional(f, 1, label, "sign"),
                )
            case "#SIETYP":
                info = replace(info, sie_type=_integer(f, 0, label, "type"))
            case "#PROSA":
                info = replace(info, comment=_optional(f, 0, label, "text"))
            case "#FTYP":
                info = replace(info, company_type=_required(f, 0, label, "type"))
            case "#FNR":
                info = replace(info, company_id=_required(f, 0, label, "id"))
            case "#ORGNR":
                info = replace(
                    info,
                    org_number=_required(f, 0, label, "org number"),
                    acquisition_number=_optional(f, 1, label, "acquisition number"),
                    activity_number=_optional(f, 2, label, "activity number"),
                )
            case "#BKOD":
                info = replace(info, sni_code=_required(f, 0, label, "SNI code"))
            case "#ADRESS":
                info = replace(
                    info,
                    address=Address(
                        contact=_scalar(f, 0, label, "contact"),
                        street=_scalar(f, 1, label, "street"),
                        postal=_scalar(f, 2, label, "postal address"),
                        phone=_scalar(f, 3, label, "phone"),
                    ),
                )
            case "#FNAMN":
                info = replace(info, name=_required(f, 0, label, "name"))
            case "#TAXAR":
                # The tax year is informational: a bad one is skipped, not fatal.
                try:
                    info = replace(info, tax_year=_integer(f, 0, label, "year"))
                except _LineError as error:
                    self._warn(
                        line_number,
                        f"{error}: the row is skipped (it is not part of the books)",
                        "informational_row_skipped",
                    )
            case "#OMFATTN":
                info = replace(info, scope_end=_date(f, 0, label, "date"))
            case "#KPTYP":
                info = replace(info, chart_of_accounts=_required(f, 0, label, "type"))
            case "#VALUTA":
                info = replace(info, currency=_required(f, 0, label, "currency"))
            case _:  # pragma: no cover - _IDENTIFICATION and this match agree
                raise AssertionError(label)
        if not self._header_open:
            info = replace(info, line_number=line_number)
            self._out.append(info)
        self._company = info

    def _checksum(self, f: list[_Field], line_number: int) -> None:
        if f:
            self._warn(line_number, "#KSUMMA checksum not verified", "checksum_not_verified")

    def _fiscal_year(self, f: list[_Field], line_number: int) -> None:
        year = FiscalYear(
            line_number=line_number,
            year_index=_integer(f, 0, "#RAR", "year"),
            start=_date(f, 1, "#RAR", "start"),
            end=_date(f, 2, "#RAR", "end"),
        )
        if self._header_open:
            self._held_years.append(year)
        else:
            self._out.append(year)

    # -- chart of accounts and dimensions

    def _account(self, f: list[_Field], line_number: int) -> None:
        self._out.append(
            Account(
                line_number=line_number,
                number=_required(f, 0, "#KONTO", "account"),
                name=_scalar(f, 1, "#KONTO", "name"),
            )
        )

    def _account_type(self, f: list[_Field], line_number: int) -> None:
        account = _required(f, 0, "#KTYP", "account")
        raw = _required(f, 1, "#KTYP", "type")
        try:
            kind = AccountKind(raw.upper())
        except ValueError:
            raise _LineError(f"#KTYP field 'type' is not T, S, K or I: {raw!r}") from None
        self._out.append(AccountType(line_number=line_number, account=account, kind=kind))

    def _account_unit(self, f: list[_Field], line_number: int) -> None:
        self._out.append(
            AccountUnit(
                line_number=line_number,
                account=_required(f, 0, "#ENHET", "account"),
                unit=_required(f, 1, "#ENHET", "unit"),
            )
        )

    def _sru(self, f: list[_Field], line_number: int) -> None:
        account = _required(f, 0, "#SRU", "account")
        # A blank code ("#SRU 1110 \" \"") and a missing one ("#SRU 1110") say the same:
        # the account has no SRU code.
        code = _scalar(f, 1, "#SRU", "code").strip()
        if not code:
            raise _LineError(f"#SRU of account {account} has no code")
        self._out.append(SruCode(line_number=line_number, account=account, code=code))

    def _budget(self, f: list[_Field], line_number: int) -> None:
        # ``#BUDGET year account {objects} amount [quantity]``: a plan, not the books;
        # checked for form only, then dropped.
        _integer(f, 0, "#BUDGET", "year")
        _required(f, 1, "#BUDGET", "account")
        _, f = _objects_at(f, 2, "#BUDGET")
        _amount(f, 2, "#BUDGET", "amount")

    def _dimension(self, f: list[_Field], line_number: int) -> None:
        self._out.append(
            Dimension(
                line_number=line_number,
                number=_integer(f, 0, "#DIM", "dimension"),
                name=_scalar(f, 1, "#DIM", "name"),
            )
        )

    def _underdimension(self, f: list[_Field], line_number: int) -> None:
        self._out.append(
            Dimension(
                line_number=line_number,
                number=_integer(f, 0, "#UNDERDIM", "dimension"),
                name=_scalar(f, 1, "#UNDERDIM", "name"),
                parent=_integer(f, 2, "#UNDERDIM", "parent dimension"),
            )
        )

    def _object(self, f: list[_Field], line_number: int) -> None:
        self._out.append(
            DimensionObject(
                line_number=line_number,
                dimension=_integer(f, 0, "#OBJEKT", "dimension"),
                object_id=_required(f, 1, "#OBJEKT", "object"),
                name=_scalar(f, 2, "#OBJEKT", "name"),
            )
        )

    # -- balances

    def _balance(self, f: list[_Field], line_number: int) -> None:
        label = self._label
        self._out.append(
            Balance(
                line_number=line_number,
                kind=BalanceKind(label[1:]),
                year_index=_integer(f, 0, label, "year"),
                account=_required(f, 1, label, "account"),
                amount=_amount(f, 2, label, "amount"),
                quantity=_optional_amount(f, 3, label, "quantity"),
            )
        )

    def _object_balance(self, f: list[_Field], line_number: int) -> None:
        label = self._label
        year_index = _integer(f, 0, label, "year")
        account = _required(f, 1, label, "account")
        if len(f) < 3 or not isinstance(f[2], tuple):
            raise _LineError(f"{label} field 'objects' is missing")
        objects, f = _objects_at(f, 2, label)
        self._out.append(
            ObjectBalance(
                line_number=line_number,
                kind=BalanceKind(label[2:]),
                year_index=year_index,
                account=account,
                objects=objects,
                amount=_amount(f, 2, label, "amount"),
                quantity=_optional_amount(f, 3, label, "quantity"),
            )
        )

    def _result(self, f: list[_Field], line_number: int) -> None:
        self._out.append(
            Result(
                line_number=line_number,
                year_index=_integer(f, 0, "#RES", "year"),
                account=_required(f, 1, "#RES", "account"),
                amount=_amount(f, 2, "#RES", "amount"),
                quantity=_optional_amount(f, 3, "#RES", "quantity"),
            )
        )

    def _period_balance(self, f: list[_Field], line_number: int) -> None:
        label = self._label
        year_index = _integer(f, 0, label, "year")
        period = _period(f, 1, label, "period")
        account = _required(f, 2, label, "account")
        objects, f = _objects_at(f, 3, label)
        self._out.append(
            PeriodBalance(
                line_number=line_number,
                kind=PeriodBalanceKind(label[1:]),
                year_index=year_index,
                period=period,
                account=account,
                objects=objects,
                amount=_amount(f, 3, label, "amount"),
                quantity=_optional_amount(f, 4, label, "quantity"),
            )
        )

    # -- vouchers

    def _expect_no_voucher(self, label: str) -> None:
        voucher = self._voucher
        if voucher is None:
            return
        if self._state == _EXPECT_BLOCK:
            raise _LineError(
                f"{label} where the '{{' block of {voucher.name} "
                f"(line {voucher.line_number}) should start"
            )
        raise _LineError(
            f"{label} inside the block of {voucher.name} (line {voucher.line_number}): "
            "its '}' is missing"
        )

    def _voucher_start(self, f: list[_Field], line_number: int) -> None:
        label = "#VER"
        series = _scalar(f, 0, label, "series")
        number = _scalar(f, 1, label, "number")
        if (
            len(f) >= 2
            and isinstance(f[1], str)
            and _parse_date(f[1]) is not None
            and (len(f) < 3 or not isinstance(f[2], str) or _parse_date(f[2]) is None)
        ):
            # "#VER 12 20240105 text": the series was left out, so the number stands
            # where the series goes and the date where the number goes.
            raise _LineError(
                f"#VER field 'series' is missing: {series!r} stands where the series goes "
                f'and the date {f[1]} where the number goes; an empty series is written ""'
            )
        try:
            self._voucher = _OpenVoucher(
                line_number=line_number,
                series=series,
                number=number,
                date=_date(f, 2, label, "date"),
                text=_scalar(f, 3, label, "text"),
                registration_date=_optional_date(f, 4, label, "registration date"),
                signature=_scalar(f, 5, label, "sign"),
            )
        except _LineError as error:
            raise _LineError(f"{error} ({_voucher_name(series, number)})") from None
        self._state = _EXPECT_BLOCK

    def _block_start(self, line_number: int) -> None:
        if self._state == _EXPECT_BLOCK:
            self._state = _IN_BLOCK
            return
        if self._voucher is not None:
            raise _LineError(
                f"a second '{{' inside the block of {self._voucher.name} "
                f"(line {self._voucher.line_number})"
            )
        raise _LineError("'{' without a #VER before it")

    def _block_end(self, line_number: int) -> None:
        voucher = self._voucher
        if voucher is None:
            raise _LineError("'}' outside a #VER block")
        if self._state == _EXPECT_BLOCK:
            raise _LineError(
                f"'}}' where the '{{' block of {voucher.name} "
                f"(line {voucher.line_number}) should start"
            )
        self._rtrans_copy_missing(voucher)
        self._out.append(
            Voucher(
                line_number=voucher.line_number,
                series=voucher.series,
                number=voucher.number,
                date=voucher.date,
                text=voucher.text,
                registration_date=voucher.registration_date,
                signature=voucher.signature,
                transactions=tuple(voucher.transactions),
            )
        )
        self._voucher = None
        self._state = _OUTSIDE

    def _rtrans_copy_missing(self, voucher: _OpenVoucher) -> None:
        added = voucher.awaiting_copy_of
        if added is not None:
            voucher.awaiting_copy_of = None
            self._warn(
                added.line_number,
                f"#RTRANS of {voucher.name} is not followed by the identical #TRANS the "
                "spec requires; counted once",
                "rtrans_copy_missing",
            )

    def _transaction(self, kind: TransactionKind, f: list[_Field], line_number: int) -> None:
        label = self._label
        voucher = self._voucher
        if voucher is None:
            raise _LineError(f"{label} outside a #VER block")
        if self._state == _EXPECT_BLOCK:
            raise _LineError(
                f"{label} before the '{{' block of {voucher.name} (line {voucher.line_number})"
            )
        account = _required(f, 0, label, "account")
        objects, f = _objects_at(f, 1, label)
        transaction = Transaction(
            line_number=line_number,
            kind=kind,
            account=account,
            objects=objects,
            amount=_amount(f, 1, label, "amount"),
            date=_optional_date(f, 2, label, "date"),
            text=_scalar(f, 3, label, "text"),
            quantity=_optional_amount(f, 4, label, "quantity"),
            signature=_scalar(f, 5, label, "sign"),
        )
        added = voucher.awaiting_copy_of
        if added is not None:
            if kind is TransactionKind.NORMAL and _same_row(transaction, added):
                voucher.awaiting_copy_of = None
                return  # the backward-compatibility copy of the #RTRANS before it
            self._rtrans_copy_missing(voucher)
        voucher.transactions.append(transaction)
        if kind is TransactionKind.ADDED:
            voucher.awaiting_copy_of = transaction


def _same_row(a: Transaction, b: Transaction) -> bool:
    return (
        a.account == b.account
        and a.objects == b.objects
        and a.amount == b.amount
        and a.date == b.date
        and a.text == b.text
        and a.quantity == b.quantity
        and a.signature == b.signature
    )


def parse_sie(stream: BinaryIO, *, filename: str, fast: bool = True) -> Iterator[SieRecord]:
    """Yield the records of the SIE 4 file read from the binary ``stream``.

    Reads line by line and yields each record as soon as it is complete (a
    :class:`Voucher` at its closing ``}``). ``filename`` is only used in messages.
    Raises :class:`SieParseError` (while iterating) for a file it cannot read.
    ``fast=False`` reads every row the general way (the reference the fast path is
    tested against, and the benchmark's "before" side); the records are the same.
    """
    return _Parser(stream, filename, fast=fast).records()


def open_sie(stream: BinaryIO, *, filename: str, fast: bool = True) -> _Parser:
    """The parser :func:`parse_sie` uses: ``records()`` and, as it reads, ``encoding``."""
    return _Parser(stream, filename, fast=fast)


def read_sie(path: str | os.PathLike[str]) -> SieDocument:
    """Parse the SIE 4 file at ``path`` and collect all its records."""
    file_path = Path(path)
    with file_path.open("rb") as stream:
        return SieDocument.from_records(
            parse_sie(stream, filename=file_path.name), filename=file_path.name
        )
