"""Parse, check and encode a ledger file in a child process (issue 16).

The import's CPU goes to reading the file: parsing, :class:`LedgerCheck` and building the
rows. In a worker thread that work holds the GIL against the event loop (which encodes
the COPY rows and serves HTTP), so it cannot overlap the write on a second core. With
``ImportSettings.parse_process`` (the default on PostgreSQL) it runs in a child process
instead, started by :class:`WorkerReader`:

1. the child reads the file up to the company and sends it;
2. the parent saves the company, empties (or creates) the fiscal year and sends its id
   (or ``stop``: the same file again, nothing to write);
3. the child sends the year's voucher and line rows batch by batch, already encoded
   as PostgreSQL ``COPY ... (FORMAT text)`` data, which the parent hands to the COPY as
   they are (no Python object per row in the parent); it runs ahead of the writes by
   at most :data:`_AHEAD` batches;
4. after the last batch it sends the :class:`LedgerCheck` (chart, balances, movements,
   notices), and its own peak RSS and CPU seconds.

A refused file makes the child send the :class:`LedgerImportError` it raised (the same
message and location as in-process), which the parent raises in its data transaction, so
nothing is written. The rows are the ones :class:`LedgerRowBuilder` makes, cut to the
same column sizes; the tests compare both paths table by table.

Frames on the child's stdout (its own output goes to stderr): one kind byte, the
payload's length (8 bytes, little endian), the payload. The parent writes one line to
the child's stdin. This module imports nothing of the storage layer, so the child stays
small.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import gc
import io
import logging
import os
import pickle
import secrets
import struct
import sys
import time
import traceback
import uuid
from array import array
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from typing import BinaryIO, Final, NoReturn, cast

from ledgerlink.importer.domain.chunks import (
    Chunk,
    ChunkPlan,
    ChunksDisagreeError,
    SplicedStream,
    merge_checks,
)
from ledgerlink.importer.domain.ledger import (
    ChunkFacts,
    FileParseError,
    LedgerCheck,
    LedgerCompany,
    LedgerFormat,
    LedgerImportError,
    LedgerItem,
    LedgerVoucher,
    read_ledger,
)

_HEADER: Final = struct.Struct("<cQ")
_COMPANY: Final = b"C"
_BATCH: Final = b"B"
_CHECK: Final = b"K"
_ERROR: Final = b"E"
_CRASH: Final = b"X"
_BATCH_HEADER: Final = struct.Struct("<QQ?")  # lines, voucher bytes, done
#: Batches the child may be ahead of the writes (each a few MiB at 20 000 lines).
_AHEAD: Final = 2
_log = logging.getLogger(__name__)
_ESCAPE: Final = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def _text(value: str) -> str:
    """``value`` as a field of ``COPY ... (FORMAT text)``."""
    if "\\" in value or "\t" in value or "\n" in value or "\r" in value:
        return value.translate(_ESCAPE)
    return value


class CopyEncoder:
    """:class:`LedgerRowBuilder`'s rows as ``COPY`` text lines (same numbering, same cuts)."""

    def __init__(self, fiscal_year_id: uuid.UUID, *, first_number: int = 1) -> None:
        self._year = str(fiscal_year_id)
        self._voucher_no = first_number - 1
        self._objects: dict[tuple[tuple[str, str], ...], str] = {(): ""}
        self._accounts: dict[str, str] = {}
        self._dates: dict[date, str] = {}
        self.vouchers: list[str] = []
        self.lines: list[str] = []
        self.line_count = 0

    def add(self, voucher: LedgerVoucher) -> None:
        """Append ``voucher`` and its lines."""
        self._voucher_no += 1
        number = self._voucher_no
        day = voucher.date
        dates = self._dates.get(day)
        if dates is None:
            if len(self._dates) >= 4096:
                self._dates.clear()
            dates = self._dates[day] = f"{day.isoformat()}\t{day.replace(day=1).isoformat()}"
        self.vouchers.append(
            f"{self._year}\t{number}\t{_text(voucher.series[:32])}\t{_text(voucher.number[:64])}"
            f"\t{dates}\t{_text(voucher.text[:1000])}\t{_text(voucher.source_id[:200])}\n"
        )
        head = f"{self._year}\t{number}\t"
        append = self.lines.append
        objects_known = self._objects
        accounts = self._accounts
        # A voucher's rows mostly repeat one text (often the voucher's): escaped once.
        last_text = last_escaped = ""
        line_no = 0
        for line in voucher.lines:
            line_no += 1
            objects = objects_known.get(line.objects)
            if objects is None:
                if len(objects_known) >= 4096:
                    objects_known.clear()
                    objects_known[()] = ""
                objects = objects_known[line.objects] = _text(
                    ";".join(f"{d}={o}" for d, o in line.objects)[:1000]
                )
            account = accounts.get(line.account)
            if account is None:
                if len(accounts) >= 65536:
                    accounts.clear()
                account = accounts[line.account] = _text(line.account)
            text = line.text
            if text != last_text:
                last_text = text
                last_escaped = _text(text[:1000]) if text else ""
            append(
                head + str(line_no) + "\t" + account + "\t" + str(line.amount) + "\t"
                + last_escaped + "\t" + objects + "\n"
            )  # fmt: skip
        self.line_count += line_no

    def take(self) -> tuple[bytes, bytes, int]:
        """The vouchers and lines so far, encoded, and the line count; starts afresh."""
        vouchers = "".join(self.vouchers).encode()
        lines = "".join(self.lines).encode()
        count = self.line_count
        self.vouchers, self.lines, self.line_count = [], [], 0
        return vouchers, lines, count


# ------------------------------------------------------------------- the child


def _send(out: BinaryIO, kind: bytes, *parts: bytes) -> None:
    out.write(_HEADER.pack(kind, sum(len(part) for part in parts)))
    for part in parts:
        out.write(part)
    out.flush()


def _peak_rss() -> int:
    """This process's peak resident set (``VmHWM``), in bytes; 0 where unknown."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for row in status:
                if row.startswith("VmHWM:"):
                    return int(row.split()[1]) * 1024
    except OSError:
        pass
    return 0


def _open_stream(path: str, chunk: Chunk | None, facts: ChunkFacts | None) -> BinaryIO:
    if chunk is None or facts is None:
        return open(path, "rb")
    resolved = chunk.resolve(path)
    facts.vouchers_before = resolved.vouchers_before
    facts.planned_first_line = resolved.first_line
    checkpoint = chunk.checkpoint
    stops = () if checkpoint is None else (checkpoint,)
    raw = SplicedStream(path, resolved.parts, stops)
    if chunk.format is LedgerFormat.SIE:  # read by lines: buffered (no stops to keep)
        return io.BufferedReader(raw, buffer_size=1 << 18)
    return cast(BinaryIO, raw)  # SAF-T: every read stops at the checkpoint


def _serve(
    out: BinaryIO, path: str, filename: str, batch_lines: int, fast: bool, chunk: Chunk | None
) -> None:
    facts = ChunkFacts() if chunk is not None else None
    with _open_stream(path, chunk, facts) as stream:
        # One thread from start to end: SAF-T may be read by lxml (see parse_saft).
        items: Iterator[LedgerItem] = read_ledger(
            stream,
            filename=filename,
            fast=fast,
            lxml=True,
            facts=facts,
            checkpoint=None if chunk is None else chunk.checkpoint,
        )
        check = LedgerCheck()
        take = check.take
        company: LedgerCompany | None = None
        for item in items:
            take(item)
            if isinstance(item, LedgerCompany):
                company = item
                break
        if company is None:
            raise LedgerImportError("the file holds no company")
        _send(out, _COMPANY, pickle.dumps(company, pickle.HIGHEST_PROTOCOL))
        answer = sys.stdin.readline().strip()
        if not answer or answer == "stop":
            return
        first_number = 1 if facts is None else facts.vouchers_before + 1
        encoder = CopyEncoder(uuid.UUID(answer), first_number=first_number)
        add = encoder.add
        if facts is not None:
            # The notices made so far come from the head, which every chunk reads.
            for item in items:
                if isinstance(item, LedgerVoucher):
                    facts.head_notices = len(check.notices)
                    take(item)
                    add(item)
                    break
                take(item)
        for item in items:
            voucher = take(item)
            if voucher is not None:
                add(voucher)
                if encoder.line_count >= batch_lines:
                    vouchers, lines, count = encoder.take()
                    _send(out, _BATCH, _BATCH_HEADER.pack(count, len(vouchers), False), vouchers,
                          lines)  # fmt: skip
        vouchers, lines, count = encoder.take()
        _send(out, _BATCH, _BATCH_HEADER.pack(count, len(vouchers), True), vouchers, lines)
        if facts is not None:
            # Hashed with the seed every chunk of this import shares (PYTHONHASHSEED).
            facts.key_hashes = array("q", sorted(map(hash, check._voucher_keys))).tobytes()
        # The voucher numbers seen (one tuple per voucher) only serve the checks, which
        # are done: not sent, so the parent does not hold them.
        check._voucher_keys = set()
        report = (check, facts, _peak_rss(), time.process_time())
        _send(out, _CHECK, pickle.dumps(report, pickle.HIGHEST_PROTOCOL))


def main() -> None:
    """The child: ``python -m ledgerlink.importer.services.import_worker PATH NAME LINES FAST``."""
    path, filename, batch_lines, fast = sys.argv[1:5]
    chunk: Chunk | None = None
    if len(sys.argv) > 5:
        chunk = pickle.loads(base64.b64decode(sys.argv[5]))  # noqa: S301 -- from our parent
    # The frames get stdout's pipe to themselves; anything printed goes to stderr.
    out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    # What ledgerlink.shared.runtime.settle_heap does in the services (that module pulls in
    # the web stack): start-up objects out of the collector's sight, and the youngest
    # generation collected every 50,000 allocations instead of 700.
    gc.collect()
    gc.freeze()
    _, middle, oldest = gc.get_threshold()
    gc.set_threshold(50_000, middle, oldest)
    try:
        _serve(out, path, filename, int(batch_lines), fast == "1", chunk)
    except LedgerImportError as error:
        try:
            payload = pickle.dumps(error, pickle.HIGHEST_PROTOCOL)
            pickle.loads(payload)  # noqa: S301 -- our own bytes, just made
        except Exception:  # an error that does not survive pickling: its text, as a parse error
            payload = pickle.dumps(FileParseError(error.message, location=error.location))
        _send(out, _ERROR, payload)
    except BrokenPipeError:  # the parent went away or stopped reading: nothing to tell
        pass
    except BaseException:
        _send(out, _CRASH, traceback.format_exc().encode())
    out.close()


# ------------------------------------------------------------------ the parent


@dataclass(frozen=True)
class CopyBatch:
    """One batch of ``COPY`` text data for ``vouchers`` and ``voucher_lines``."""

    vouchers: memoryview
    lines: memoryview
    line_count: int
    done: bool


class WorkerCrashedError(RuntimeError):
    """The worker process died or failed other than by refusing the file."""


class WorkerReader:
    """The parent's side: the same steps as :class:`LedgerReader`, read from a child.

    Use as ``async with WorkerReader(...) as reader``: leaving the block ends the child
    (killed when it is still running, e.g. after a failed write).
    """

    def __init__(
        self,
        path: str,
        filename: str,
        *,
        batch_lines: int,
        fast: bool = True,
        chunk: Chunk | None = None,
        hash_seed: int | None = None,
    ) -> None:
        self._args: tuple[str, ...] = (path, filename, str(batch_lines), "1" if fast else "0")
        if chunk is not None:
            self._args += (base64.b64encode(pickle.dumps(chunk, pickle.HIGHEST_PROTOCOL)).decode(),)
        self._hash_seed = hash_seed
        self._process: asyncio.subprocess.Process | None = None
        self._frames: asyncio.Queue[tuple[bytes, bytes]] = asyncio.Queue(maxsize=_AHEAD)
        self._pump: asyncio.Task[None] | None = None
        self._check: LedgerCheck | None = None
        #: What the child tells about its chunk (when it reads one), after the last batch.
        self.facts: ChunkFacts | None = None
        #: The child's peak RSS in bytes and CPU seconds, once it sent its last batch.
        self.peak_rss = 0
        self.cpu_seconds = 0.0

    async def __aenter__(self) -> WorkerReader:
        env = dict(os.environ)
        # The child imports the very code the parent runs (also from a PYTHONPATH checkout).
        env["PYTHONPATH"] = os.pathsep.join(entry for entry in sys.path if entry)
        if self._hash_seed is not None:  # the chunks of one import hash voucher keys alike
            env["PYTHONHASHSEED"] = str(self._hash_seed)
        self._process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            __name__,
            *self._args,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            env=env,
            limit=1 << 22,
        )
        self._pump = asyncio.ensure_future(self._read_frames())
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        process = self._process
        if process is None:
            return
        if process.returncode is None and (exc_info[0] is not None or self._check is None):
            process.kill()
        if process.stdin is not None and not process.stdin.is_closing():
            process.stdin.close()
        if self._pump is not None:
            self._pump.cancel()
            await asyncio.gather(self._pump, return_exceptions=True)
        await process.wait()

    async def _read_frames(self) -> None:
        assert self._process is not None
        assert self._process.stdout is not None
        stdout = self._process.stdout
        try:
            while True:
                kind, size = _HEADER.unpack(await stdout.readexactly(_HEADER.size))
                payload = await stdout.readexactly(size) if size else b""
                await self._frames.put((kind, payload))
                if kind != _BATCH and kind != _COMPANY:
                    return
        except asyncio.IncompleteReadError:
            await self._frames.put((_CRASH, b"the import's worker process ended unexpectedly"))

    async def _next(self) -> tuple[bytes, bytes]:
        kind, payload = await self._frames.get()
        if kind == _ERROR:
            error = pickle.loads(payload)  # noqa: S301 -- from our own child
            assert isinstance(error, LedgerImportError)
            raise error
        if kind == _CRASH:
            raise WorkerCrashedError(payload.decode(errors="replace"))
        return kind, payload

    async def company(self) -> LedgerCompany:
        """Read up to the company (always the first item)."""
        kind, payload = await self._next()
        assert kind == _COMPANY
        company = pickle.loads(payload)  # noqa: S301 -- from our own child
        assert isinstance(company, LedgerCompany)
        return company

    async def _say(self, line: str) -> None:
        assert self._process is not None
        assert self._process.stdin is not None
        self._process.stdin.write(line.encode() + b"\n")
        await self._process.stdin.drain()

    async def begin_year(self, fiscal_year_id: uuid.UUID) -> None:
        """The rows that follow belong to this (emptied) fiscal year."""
        await self._say(str(fiscal_year_id))

    async def stop(self) -> None:
        """Nothing is to be written (the same file again)."""
        await self._say("stop")

    async def batch(self) -> CopyBatch:
        """The next batch of rows; after the one that is ``done``, :attr:`check` is set."""
        kind, payload = await self._next()
        assert kind == _BATCH
        view = memoryview(payload)
        lines, voucher_bytes, done = _BATCH_HEADER.unpack_from(view)
        start = _BATCH_HEADER.size
        batch = CopyBatch(
            view[start : start + voucher_bytes], view[start + voucher_bytes :], lines, done
        )
        if done:
            kind, payload = await self._next()
            assert kind == _CHECK
            check, self.facts, self.peak_rss, self.cpu_seconds = pickle.loads(payload)  # noqa: S301 -- from our own child
            assert isinstance(check, LedgerCheck)
            self._check = check
        return batch

    @property
    def check(self) -> LedgerCheck:
        """What the child's :class:`LedgerCheck` kept (after the last batch)."""
        assert self._check is not None, "read every batch first"
        return self._check


class RestartWriteError(Exception):
    """The chunks were not merged (see :class:`ChunkedReader`): undo the rows, write again."""


class ChunkedReader:
    """:class:`WorkerReader`'s steps, with one child per chunk of the file read at once.

    The children (see :mod:`ledgerlink.importer.domain.chunks`) send their batches as
    they come (each numbers its vouchers from its chunk's offset); the last batch comes
    once every chunk is read and their checks are merged. Where the chunks disagree
    (:class:`~ledgerlink.importer.domain.chunks.ChunksDisagreeError`) or a child refuses
    its chunk or fails, the children are ended and one child reads the whole file
    instead: :meth:`batch` then raises :class:`RestartWriteError` once, and the caller
    undoes the rows written so far (a savepoint) and takes the batches again from the
    start. A refused file is so refused in the very words a single reader uses.
    """

    def __init__(
        self, path: str, filename: str, *, batch_lines: int, fast: bool, plan: ChunkPlan
    ) -> None:
        self._path = path
        self._filename = filename
        self._batch_lines = batch_lines
        self._fast = fast
        self.plan = plan
        self._stack = contextlib.AsyncExitStack()
        self._readers: list[WorkerReader] = []
        self._pending: dict[int, asyncio.Task[CopyBatch]] = {}
        self._finished: set[int] = set()
        self._single: WorkerReader | None = None
        self._single_stack: contextlib.AsyncExitStack | None = None
        self._company: LedgerCompany | None = None
        self._year: uuid.UUID | None = None
        self._check: LedgerCheck | None = None
        #: Why the chunks were given up (None while they hold).
        self.fallback_reason: str | None = None
        self.peak_rss = 0
        self.cpu_seconds = 0.0

    async def __aenter__(self) -> ChunkedReader:
        seed = secrets.randbelow(1 << 32)
        try:
            for chunk in self.plan.chunks:
                reader = WorkerReader(
                    self._path,
                    self._filename,
                    batch_lines=self._batch_lines,
                    fast=self._fast,
                    chunk=chunk,
                    hash_seed=seed,
                )
                self._readers.append(await self._stack.enter_async_context(reader))
        except BaseException:
            await self._stack.aclose()
            raise
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self._drop_chunks()
        if self._single_stack is not None:
            await self._single_stack.__aexit__(*exc_info)  # type: ignore[arg-type]

    async def _drop_chunks(self) -> None:
        for task in self._pending.values():
            task.cancel()
        if self._pending:
            await asyncio.gather(*self._pending.values(), return_exceptions=True)
        self._pending.clear()
        await self._stack.aclose()

    async def company(self) -> LedgerCompany:
        """The company (as the first chunk reads it; a refusal of the head is raised)."""
        company = await self._readers[0].company()
        for reader in self._readers[1:]:
            try:
                other = await reader.company()
            except (LedgerImportError, WorkerCrashedError) as error:
                self.fallback_reason = f"a later chunk did not read the head: {error}"
                continue
            if other != company and self.fallback_reason is None:
                self.fallback_reason = "a later chunk read another company"
        self._company = company
        return company

    async def stop(self) -> None:
        """Nothing is to be written (the same file again)."""
        for reader in self._readers:
            await reader.stop()

    async def begin_year(self, fiscal_year_id: uuid.UUID) -> None:
        """The rows that follow belong to this (emptied) fiscal year."""
        self._year = fiscal_year_id
        if self.fallback_reason is not None:
            await self._read_whole()
            return
        for reader in self._readers:
            await reader.begin_year(fiscal_year_id)

    async def _read_whole(self) -> None:
        """End the chunks' children; one child reads the whole file from here on."""
        await self._drop_chunks()
        stack = self._single_stack = contextlib.AsyncExitStack()
        single = await stack.enter_async_context(
            WorkerReader(self._path, self._filename, batch_lines=self._batch_lines, fast=self._fast)
        )
        company = await single.company()
        if company != self._company:  # pragma: no cover - the same bytes, read again
            raise WorkerCrashedError("the file read whole names another company")
        assert self._year is not None
        await single.begin_year(self._year)
        self._single = single
        _log.info(
            "ledger import: the file is read by one worker",
            extra={"file": self._filename, "reason": self.fallback_reason},
        )

    async def _give_up(self, reason: str) -> NoReturn:
        self.fallback_reason = reason
        await self._read_whole()
        raise RestartWriteError(reason)

    async def batch(self) -> CopyBatch:
        """The next batch of any chunk; the one that is ``done`` comes after the merge."""
        if self._single is not None:
            batch = await self._single.batch()
            if batch.done:
                self._check = self._single.check
                self.peak_rss = max(self.peak_rss, self._single.peak_rss)
                self.cpu_seconds += self._single.cpu_seconds
            return batch
        for index, reader in enumerate(self._readers):
            if index not in self._finished and index not in self._pending:
                self._pending[index] = asyncio.ensure_future(reader.batch())
        done, _ = await asyncio.wait(self._pending.values(), return_when=asyncio.FIRST_COMPLETED)
        index = min(i for i, task in self._pending.items() if task in done)
        task = self._pending.pop(index)
        try:
            batch = task.result()
        except (LedgerImportError, WorkerCrashedError) as error:
            await self._give_up(f"chunk {index + 1} was not read: {error}")
        if not batch.done:
            return batch
        self._finished.add(index)
        if len(self._finished) < len(self._readers):
            return CopyBatch(batch.vouchers, batch.lines, batch.line_count, False)
        parts: list[tuple[LedgerCheck, ChunkFacts]] = []
        for reader in self._readers:
            assert reader.facts is not None
            parts.append((reader.check, reader.facts))
            self.peak_rss = max(self.peak_rss, reader.peak_rss)
            self.cpu_seconds += reader.cpu_seconds
        try:
            self._check = merge_checks(self.plan, self._filename, parts)
        except ChunksDisagreeError as error:
            await self._give_up(str(error))
        return batch

    @property
    def check(self) -> LedgerCheck:
        """The merged check (or the whole file's), after the last batch."""
        assert self._check is not None, "read every batch first"
        return self._check


if __name__ == "__main__":
    main()
