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
import gc
import os
import pickle
import struct
import sys
import time
import traceback
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from typing import BinaryIO, Final

from ledgerlink.importer.domain.ledger import (
    FileParseError,
    LedgerCheck,
    LedgerCompany,
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
_ESCAPE: Final = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def _text(value: str) -> str:
    """``value`` as a field of ``COPY ... (FORMAT text)``."""
    if "\\" in value or "\t" in value or "\n" in value or "\r" in value:
        return value.translate(_ESCAPE)
    return value


class CopyEncoder:
    """:class:`LedgerRowBuilder`'s rows as ``COPY`` text lines (same numbering, same cuts)."""

    def __init__(self, fiscal_year_id: uuid.UUID) -> None:
        self._year = str(fiscal_year_id)
        self._voucher_no = 0
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


def _serve(out: BinaryIO, path: str, filename: str, batch_lines: int, fast: bool) -> None:
    with open(path, "rb") as stream:
        # One thread from start to end: SAF-T may be read by lxml (see parse_saft).
        items: Iterator[LedgerItem] = read_ledger(stream, filename=filename, fast=fast, lxml=True)
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
        encoder = CopyEncoder(uuid.UUID(answer))
        add = encoder.add
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
        # The voucher numbers seen (one tuple per voucher) only serve the checks, which
        # are done: not sent, so the parent does not hold them.
        check._voucher_keys = set()
        facts = (check, _peak_rss(), time.process_time())
        _send(out, _CHECK, pickle.dumps(facts, pickle.HIGHEST_PROTOCOL))


def main() -> None:
    """The child: ``python -m ledgerlink.importer.services.import_worker PATH NAME LINES FAST``."""
    path, filename, batch_lines, fast = sys.argv[1:5]
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
        _serve(out, path, filename, int(batch_lines), fast == "1")
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

    def __init__(self, path: str, filename: str, *, batch_lines: int, fast: bool = True) -> None:
        self._args = (path, filename, str(batch_lines), "1" if fast else "0")
        self._process: asyncio.subprocess.Process | None = None
        self._frames: asyncio.Queue[tuple[bytes, bytes]] = asyncio.Queue(maxsize=_AHEAD)
        self._pump: asyncio.Task[None] | None = None
        self._check: LedgerCheck | None = None
        #: The child's peak RSS in bytes and CPU seconds, once it sent its last batch.
        self.peak_rss = 0
        self.cpu_seconds = 0.0

    async def __aenter__(self) -> WorkerReader:
        env = dict(os.environ)
        # The child imports the very code the parent runs (also from a PYTHONPATH checkout).
        env["PYTHONPATH"] = os.pathsep.join(entry for entry in sys.path if entry)
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
            check, self.peak_rss, self.cpu_seconds = pickle.loads(payload)  # noqa: S301 -- from our own child
            assert isinstance(check, LedgerCheck)
            self._check = check
        return batch

    @property
    def check(self) -> LedgerCheck:
        """What the child's :class:`LedgerCheck` kept (after the last batch)."""
        assert self._check is not None, "read every batch first"
        return self._check


if __name__ == "__main__":
    main()
