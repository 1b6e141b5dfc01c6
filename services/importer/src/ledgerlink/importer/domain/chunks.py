"""Cutting a ledger file into voucher-aligned chunks for parallel reading (issue 16).

A big file is read by several worker processes at once, each a *chunk* of its vouchers.
Each worker reads a spliced copy of the file: the head (everything before the first
voucher: company, chart, dimensions, balances) followed by its own vouchers, so that it
checks them against the same master data as a reader of the whole file would.

- **SIE 4**: chunks start at a ``#VER`` line. A later chunk's stream is the head, one
  empty line for every line left out (line numbers in notices stay those of the file),
  then its vouchers.
- **SAF-T**: chunks start at a ``<Transaction>`` of the first ``Journal``. A later
  chunk's stream is the file up to that journal's first transaction, then its own
  transactions; every chunk but the last ends with ``</Journal></GeneralLedgerEntries>
  </AuditFile>``.

The cuts are found by searching the bytes, which cannot tell a voucher from the same
text in a comment: so every cut is *proven* by the worker that reads up to it (see
:class:`ChunkFacts` and :func:`merge_checks`), and whatever cannot be proven, or any
file a worker refuses, is read again by one worker from the start: the chunks are a
faster way to the same result, never a different one.
"""

from __future__ import annotations

import heapq
import io
import os
from array import array
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Final

from ledgerlink.importer.domain import saft
from ledgerlink.importer.domain.ledger import (
    ChunkFacts,
    LedgerCheck,
    LedgerFormat,
    LedgerNotice,
    detect_format,
)

__all__ = [
    "Chunk",
    "ChunkFacts",
    "ChunkPlan",
    "ChunksDisagreeError",
    "Newlines",
    "ResolvedChunk",
    "SplicedStream",
    "merge_checks",
    "plan_chunks",
]

#: A file smaller than this is read by one worker (a second one costs more than it saves).
MIN_CHUNK_BYTES: Final = 4 << 20
_WINDOW: Final = 8 << 20
_SIE_VOUCHERS: Final = (b"\n#VER ", b"\n#VER\t")
_SAFT_TRANSACTION: Final = b"<Transaction>"
#: What ends a SAF-T chunk other than the last (the first journal is still open there).
_SAFT_JOURNAL_END: Final = b"</Journal>"
SAFT_CLOSERS: Final = b"</Journal></GeneralLedgerEntries></AuditFile>"


@dataclass(frozen=True, slots=True)
class Newlines:
    """``count`` line feeds in a spliced stream (the lines of the vouchers left out)."""

    count: int


Part = tuple[int, int] | bytes | Newlines


@dataclass(frozen=True, slots=True)
class Chunk:
    """One worker's share of a file: its vouchers are the bytes ``[start, end)``.

    The plan only finds the cuts (a few short searches); the worker itself counts what
    comes before its chunk (:meth:`resolve`), in parallel with the others.
    """

    index: int
    format: LedgerFormat
    #: Where the vouchers begin: the first ``#VER`` line or ``<Transaction>``.
    head_end: int
    start: int
    end: int
    last: bool

    @property
    def first(self) -> bool:
        return self.index == 0

    @property
    def checkpoint(self) -> int | None:
        """SAF-T: the offset of the file's first ``<Transaction>`` (and of the chunk's
        transactions in its stream), where the worker proves libxml2 starts that element
        and reads the plain transactions from the text (``saft.open_saft``)."""
        return self.head_end if self.format is LedgerFormat.SAF_T else None

    def resolve(self, path: str | os.PathLike[str]) -> ResolvedChunk:
        """The stream's parts, the vouchers before the chunk and its first line."""
        with open(path, "rb") as stream:
            scan = _Scan(stream.fileno())
            if self.format is LedgerFormat.SIE:
                before = scan.count(_SIE_VOUCHERS, self.head_end - 1, self.start - 1)
                skipped = scan.count((b"\n",), self.head_end, self.start)
                first_line = scan.count((b"\n",), 0, self.head_end) + skipped + 1
                parts: tuple[Part, ...] = (
                    ((0, self.end),)
                    if self.first
                    else ((0, self.head_end), Newlines(skipped), (self.start, self.end))
                )
                return ResolvedChunk(parts, before, first_line)
            before = scan.count((_SAFT_TRANSACTION,), self.head_end, self.start)
            closers: tuple[Part, ...] = () if self.last else (SAFT_CLOSERS,)
            if self.first:
                return ResolvedChunk(((0, self.end), *closers), 0, 0)
            return ResolvedChunk(((0, self.head_end), (self.start, self.end), *closers), before, 0)


@dataclass(frozen=True, slots=True)
class ResolvedChunk:
    """What :meth:`Chunk.resolve` counted."""

    #: The stream, in order: ``(start, end)`` byte ranges of the file, literal bytes,
    #: line feeds.
    parts: tuple[Part, ...]
    #: Vouchers the byte search found before the chunk (the first is number this + 1);
    #: proven when the chunks are merged (each chunk's count must meet the next's).
    vouchers_before: int
    #: SIE: the line number of the chunk's first ``#VER`` (proven by the worker).
    first_line: int


@dataclass(frozen=True, slots=True)
class ChunkPlan:
    """The chunks of a file, in order."""

    format: LedgerFormat
    chunks: tuple[Chunk, ...]


class _Scan:
    """Searches in a file by windows read with ``pread`` (no mapping: the file's pages
    would count in the reading process's resident set)."""

    def __init__(self, fd: int) -> None:
        self._fd = fd
        self.size = os.fstat(fd).st_size

    def read(self, start: int, end: int) -> bytes:
        return os.pread(self._fd, max(0, end - start), start)

    def find(self, pattern: bytes, start: int, end: int | None = None) -> int:
        """The first match starting in ``[start, end)``, or -1."""
        end = self.size if end is None else min(end, self.size)
        position = max(start, 0)
        while position < end:
            stop = min(position + _WINDOW, end)
            window = self.read(position, min(stop + len(pattern) - 1, self.size))
            hit = window.find(pattern, 0, stop - position + len(pattern) - 1)
            if hit >= 0:
                return position + hit
            position = stop
        return -1

    def count(self, patterns: tuple[bytes, ...], start: int, end: int) -> int:
        """Matches of ``patterns`` starting in ``[start, end)``."""
        total = 0
        longest = max(len(pattern) for pattern in patterns)
        position = max(start, 0)
        while position < end:
            stop = min(position + _WINDOW, end)
            window = self.read(position, min(stop + longest - 1, self.size))
            for pattern in patterns:
                # A match starting at or after ``stop`` does not fit in the overlap.
                total += window.count(pattern, 0, stop - position + len(pattern) - 1)
            position = stop
        return total


def plan_chunks(
    path: str | os.PathLike[str], workers: int, *, min_bytes: int = MIN_CHUNK_BYTES
) -> ChunkPlan | None:
    """Chunks for ``workers`` workers, or None when the file is read by one.

    A few searches: near the head and the cuts, and (SAF-T) for the end of the first
    journal; well under a second for a million-line file.
    """
    if workers < 2:
        return None
    with open(path, "rb") as stream:
        scan = _Scan(stream.fileno())
        if scan.size < max(min_bytes, 1):
            return None
        try:
            kind = detect_format(scan.read(0, 64))
        except ValueError:
            return None
        if kind is LedgerFormat.SIE:
            first = _find_voucher(scan, 1)
            cuts = [_find_voucher(scan, scan.size * k // workers) for k in range(1, workers)]
        else:
            first = scan.find(_SAFT_TRANSACTION, 0)
            # Cuts in the first journal only (proven: a chunk's reader counts journals);
            # a file whose first journal is small is read by one (the end found here is
            # a hint: a chunk that leaves the journal is caught all the same).
            journal_end = scan.find(_SAFT_JOURNAL_END, first) if first >= 0 else -1
            span = journal_end - first
            if first < 0 or journal_end < 0 or span < min_bytes:
                return None
            cuts = [
                scan.find(_SAFT_TRANSACTION, first + span * k // workers, journal_end)
                for k in range(1, workers)
            ]
        if first < 0:
            return None
        starts = [first]
        for cut in cuts:
            if cut > starts[-1]:
                starts.append(cut)
        if len(starts) < 2:
            return None
        ends = [*starts[1:], scan.size]
        return ChunkPlan(
            kind,
            tuple(
                Chunk(index, kind, first, start, end, end == scan.size)
                for index, (start, end) in enumerate(zip(starts, ends, strict=True))
            ),
        )


def _find_voucher(scan: _Scan, start: int) -> int:
    """The offset of the first ``#VER`` line at or after ``start``, or -1."""
    hits = [scan.find(pattern, start - 1) for pattern in _SIE_VOUCHERS]
    found = [hit for hit in hits if hit >= 0]
    return min(found) + 1 if found else -1


class SplicedStream(io.RawIOBase):
    """A read-only binary stream over ranges of a file and literal bytes, in order.

    ``stops`` are offsets *of the spliced stream* that no single ``read`` crosses, so a
    caller feeding a parser can tell what it saw at exactly that point (the SAF-T
    checkpoint). Seekable (the SAF-T reader may read again from the start).
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        parts: tuple[Part, ...],
        stops: tuple[int, ...] = (),
    ) -> None:
        super().__init__()
        self._file = open(path, "rb")  # noqa: SIM115 -- closed in close()
        spans: list[tuple[int, int, Part]] = []
        position = 0
        for part in parts:
            if isinstance(part, Newlines):
                length = part.count
            else:
                length = len(part) if isinstance(part, bytes) else part[1] - part[0]
            if length > 0:
                spans.append((position, position + length, part))
                position += length
        self._spans = spans
        self._size = position
        self._position = 0
        self._stops = sorted(stops)

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._position, io.SEEK_END: self._size}[whence]
        self._position = max(0, base + offset)
        return self._position

    def close(self) -> None:
        self._file.close()
        super().close()

    def _limit(self, size: int) -> int:
        """How far one read may go from here (not past a stop or the end)."""
        end = self._size if size < 0 else min(self._size, self._position + size)
        for stop in self._stops:
            if self._position < stop < end:
                return stop
        return end

    def _span_at(self, position: int) -> tuple[int, int, Part]:
        for span in self._spans:
            if span[0] <= position < span[1]:
                return span
        raise AssertionError("a position past the end")  # pragma: no cover - see _limit

    def read(self, size: int = -1) -> bytes:
        end = self._limit(size)
        pieces: list[bytes] = []
        while self._position < end:
            start, stop, part = self._span_at(self._position)
            take = min(stop, end) - self._position
            inner = self._position - start
            if isinstance(part, Newlines):
                pieces.append(b"\n" * take)
            elif isinstance(part, bytes):
                pieces.append(part[inner : inner + take])
            else:
                self._file.seek(part[0] + inner)
                pieces.append(self._file.read(take))
            self._position += take
        return b"".join(pieces)

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def peek(self, size: int = 1) -> bytes:
        position = self._position
        data = self.read(max(size, 1))
        self._position = position
        return data


class ChunksDisagreeError(Exception):
    """A cut is not proven (or the chunks cannot be merged exactly): read the file whole."""


def merge_checks(
    plan: ChunkPlan, filename: str, parts: Sequence[tuple[LedgerCheck, ChunkFacts]]
) -> LedgerCheck:
    """One :class:`LedgerCheck` for the whole file from its chunks' checks, in order.

    Proves the cuts first (:class:`ChunksDisagreeError` when one is not proven): every
    chunk but the last holds exactly the vouchers the byte search counted and nothing
    but vouchers after its first one; the first voucher of each SIE chunk is on the line
    the plan says, and the text encoding was chosen in the head alike in all; SAF-T's
    first transaction starts where the plan says and every chunk but the last stays in
    the first journal; all chunks read the same company and head. A voucher number used
    in two chunks also sends the file to one reader (its notice names the second use).

    The merged check is what one reader of the whole file would hold: movements summed,
    notices in file order (the head's once; an undeclared object's once, where it was
    first used), objects and dimensions in first-use order, the balances of the last
    chunk (which read every record after the vouchers), SAF-T control totals over all
    chunks' counts.
    """
    if len(parts) != len(plan.chunks) or not parts:
        raise ChunksDisagreeError("a chunk is missing")
    first_check, first_facts = parts[0]
    head = first_facts.head_notices
    if head < 0:
        raise ChunksDisagreeError("the first chunk read no voucher")
    if first_facts.vouchers_before != 0:
        raise ChunksDisagreeError("the first chunk does not start at the first voucher")
    for chunk, (check, facts) in zip(plan.chunks, parts, strict=True):
        where = f"chunk {chunk.index + 1} of {len(plan.chunks)}"
        if plan.format is LedgerFormat.SIE:
            if facts.first_voucher_line != facts.planned_first_line:
                raise ChunksDisagreeError(
                    f"{where}: first voucher on line {facts.first_voucher_line}, "
                    f"not {facts.planned_first_line}"
                )
            if facts.encoding != first_facts.encoding or (
                facts.encoding is not None and facts.encoding[1] >= first_facts.planned_first_line
            ):
                raise ChunksDisagreeError(f"{where}: the encoding was not chosen in the head")
        else:
            if not facts.checkpoint_proven:
                raise ChunksDisagreeError(f"{where}: the first transaction is not where planned")
            if not chunk.last and facts.journals != 1:
                raise ChunksDisagreeError(f"{where}: leaves the first journal")
        if not chunk.last:
            following = parts[chunk.index + 1][1].vouchers_before
            if facts.vouchers_before + check.voucher_count != following:
                raise ChunksDisagreeError(
                    f"{where}: {check.voucher_count} vouchers read after "
                    f"{facts.vouchers_before}, but the byte search found {following} before "
                    "the next chunk"
                )
            if facts.records_after_vouchers:
                raise ChunksDisagreeError(f"{where}: records between its vouchers")
        if check.company != first_check.company:
            raise ChunksDisagreeError(f"{where}: another company")
        if facts.head_notices != head or check.notices[:head] != first_check.notices[:head]:
            raise ChunksDisagreeError(f"{where}: another head")
    # Each chunk's hashes are sorted and distinct: a repeat in their merge is a voucher
    # number in two chunks (or, once in 2**64, two numbers hashed alike: read whole).
    previous = None
    for value in heapq.merge(*(array("q", facts.key_hashes) for _, facts in parts)):
        if value == previous:
            raise ChunksDisagreeError("a voucher number is used in two chunks")
        previous = value
    last_check = parts[-1][0]
    merged = LedgerCheck(
        company=first_check.company,
        accounts=last_check.accounts,
        dimensions=dict(first_check.dimensions),
        objects=dict(first_check.objects),
        balances=last_check.balances,
        object_balances=last_check.object_balances,
        comparison=last_check.comparison,
        notices=list(first_check.notices),
        movements=first_check.movements,
        voucher_count=first_check.voucher_count,
        line_count=first_check.line_count,
        created_objects=dict(first_check.created_objects),
    )
    for check, _ in parts[1:]:
        for dimension_id, dimension in check.dimensions.items():
            merged.dimensions.setdefault(dimension_id, dimension)
        for key, obj in check.objects.items():
            merged.objects.setdefault(key, obj)
        repeated = {
            index for key, index in check.created_objects.items() if key in merged.created_objects
        }
        offset = len(merged.notices) - head
        for key, index in check.created_objects.items():
            merged.created_objects.setdefault(key, index + offset)
        merged.notices.extend(
            notice
            for index, notice in enumerate(check.notices[head:], start=head)
            if index not in repeated
        )
        movements = merged.movements
        for period_key, (debit, credit) in check.movements.items():
            sums = movements.get(period_key)
            if sums is None:
                movements[period_key] = [debit, credit]
            else:
                sums[0] += debit
                sums[1] += credit
        merged.voucher_count += check.voucher_count
        merged.line_count += check.line_count
    if plan.format is LedgerFormat.SAF_T:
        counted = [
            facts.ledger_totals
            for _, facts in parts
            if isinstance(facts.ledger_totals, saft.SaftLedgerTotals)
        ]
        if len(counted) != len(parts):
            raise ChunksDisagreeError("a chunk did not reach the ledger's end")
        declared = counted[-1]
        whole = saft.SaftLedgerTotals(
            declared_entries=declared.declared_entries,
            declared_debit=declared.declared_debit,
            declared_credit=declared.declared_credit,
            counted_entries=sum(t.counted_entries for t in counted),
            counted_debit=sum((t.counted_debit for t in counted), Decimal(0)),
            counted_credit=sum((t.counted_credit for t in counted), Decimal(0)),
        )
        for discrepancy in whole.discrepancies:
            merged.notices.append(
                LedgerNotice("control_totals", discrepancy, f"{filename} GeneralLedgerEntries")
            )
    return merged
