"""Run a file import: read, check, replace the fiscal year atomically, announce the result.

One import is three transactions:

1. **claim** (:meth:`LedgerImportService.claim_next`): the job becomes ``running`` with a
   lease, and ``import.started`` goes to the outbox;
2. **data**: the fiscal year is emptied and refilled, the chart upserted, the per-period
   balances and the job's result written, and ``import.completed`` + ``reports.ready``
   added to the outbox, all in one transaction. Parsing runs in a worker thread, batch by
   batch, so the event loop keeps serving HTTP and Kafka meanwhile;
3. on a refused file, **failed**: the data transaction is rolled back first, so nothing
   of the file remains, then the job becomes ``failed`` and ``import.failed`` is sent.

A process killed in step 2 leaves its job ``running`` with a lease that runs out; the
next claim takes it over and runs it again from the start (nothing of the first attempt
was committed). On PostgreSQL the lease is extended, and progress recorded, by short
transactions of their own while the data transaction is open.

**Where the transactions are.** The house rule is that a service runs inside its
caller's transaction and never commits. A long import cannot: its lease heartbeats
must commit while the data transaction is still open, and a refusal must be recorded
after the data transaction rolled back. So :class:`LedgerImportService` is the unit of
work of a file import, the one place that opens and commits the import's transactions
(claim, data, heartbeat, failure); every other method of it, and every other service,
works in a session it is given. The runner, the CLI's ``--direct`` import and the
benchmark all go through it. All SQL is in ``storage/``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import BinaryIO, Final

from sqlalchemy.ext.asyncio import AsyncSession

from ledgerlink.importer.domain.chunks import MIN_CHUNK_BYTES, plan_chunks
from ledgerlink.importer.domain.import_rules import ImportRequestError
from ledgerlink.importer.domain.ledger import (
    LedgerCheck,
    LedgerCompany,
    LedgerFormat,
    LedgerImportError,
    LedgerItem,
    LedgerNotice,
    Reconciliation,
    periods_between,
    read_ledger,
)
from ledgerlink.importer.domain.replace_rules import YearContent, check_replacement
from ledgerlink.importer.services.import_worker import (
    ChunkedReader,
    RestartWriteError,
    WorkerReader,
)
from ledgerlink.importer.storage.files import FileArea, sha256_of
from ledgerlink.importer.storage.ledger_store import LedgerRowBuilder, LedgerRows, LedgerStore
from ledgerlink.importer.storage.models import Company, FiscalYear, ImportJob, ImportStatus
from ledgerlink.importer.storage.repository import ImportJobRepository
from ledgerlink.shared.db import Database
from ledgerlink.shared.events import (
    AccountDifferenceV1,
    ImportCompletedV1,
    ImportCountsV1,
    ImportFailedV1,
    ImportStartedV1,
    Provider,
    ReportsReadyV1,
)
from ledgerlink.shared.messaging.outbox import Outbox

logger = logging.getLogger(__name__)

FILE_PROVIDERS: Final = tuple(fmt.provider.value for fmt in LedgerFormat)
REPORTS: Final = ("trial-balance", "profit-and-loss", "balance-sheet")


class BusinessIdMismatchError(LedgerImportError):
    """The file is another company's books than the import was asked for."""

    reason_code = "business_id_mismatch"


class FormatMismatchError(LedgerImportError):
    """A SIE file for a SAF-T connection, or the other way round."""

    reason_code = "format_mismatch"


class AttemptsExhaustedError(LedgerImportError):
    """The import died (process killed, database lost) too many times in a row."""

    reason_code = "attempts_exhausted"


@dataclass
class ImportSettings:
    """How imports run (from the service config)."""

    lease: timedelta = timedelta(seconds=60)
    max_attempts: int = 3
    batch_lines: int = 20_000
    #: Parse the next batch while the last one is written (issue 16). ``False`` is the
    #: earlier one-after-the-other path, kept for the benchmark's side-by-side run.
    pipelined: bool = True
    #: The parsers' fast paths for plain rows (issue 16); ``False`` reads every row the
    #: general way (same result; for the benchmark's side-by-side run and tests).
    fast_parse: bool = True
    #: Parse, check and encode the rows in a child process (issue 16; PostgreSQL only,
    #: see :mod:`.import_worker`). ``False`` parses in a worker thread of this process.
    parse_process: bool = True
    #: Children reading one big file at once, a voucher-aligned chunk each (with
    #: ``parse_process``; see :mod:`ledgerlink.importer.domain.chunks`); 1: one reads it.
    parse_workers: int = 1
    #: Files smaller than this are read by one child (tests set it low).
    chunk_min_bytes: int = MIN_CHUNK_BYTES


@dataclass
class ClaimedJob:
    """A job this runner holds."""

    id: uuid.UUID
    attempt: int
    #: Whether ``import.started`` went out. It is keyed by the company, like every
    #: import event, so for a job whose company is not known yet (an upload without a
    #: business ID) it waits until the file has said whose books it holds.
    announced: bool = field(default=True, compare=False)


class LedgerReader:
    """Parses and checks a ledger in a worker thread, one batch of rows at a time.

    ``items`` is what :func:`read_ledger` yields for a file (:meth:`of_file`), or any
    stream of ledger items in that order (the benchmark feeds generated ones).
    """

    def __init__(
        self, items: Iterator[LedgerItem], *, batch_lines: int, check: LedgerCheck | None = None
    ) -> None:
        self._items = items
        self._batch_lines = batch_lines
        self.check = check if check is not None else LedgerCheck()
        self._rows: LedgerRowBuilder | None = None

    @classmethod
    def of_file(
        cls, stream: BinaryIO, filename: str, *, batch_lines: int, fast: bool = True
    ) -> LedgerReader:
        """A reader of a SIE 4 or SAF-T file (format detected from its content)."""
        return cls(read_ledger(stream, filename=filename, fast=fast), batch_lines=batch_lines)

    def company(self) -> LedgerCompany:
        """Read up to the company (always the first item)."""
        for item in self._items:
            self.check.take(item)
            if isinstance(item, LedgerCompany):
                return item
        raise LedgerImportError("the file holds no company")

    def begin_year(self, fiscal_year_id: uuid.UUID) -> None:
        """The rows that follow belong to this (emptied) fiscal year."""
        self._rows = LedgerRowBuilder(fiscal_year_id)

    def batch(self) -> LedgerRows:
        """Read, check and turn into rows about ``batch_lines`` more lines."""
        builder = self._rows
        assert builder is not None, "begin_year() first"
        rows = LedgerRows()
        take = self.check.take
        for item in self._items:
            voucher = take(item)
            if voucher is not None:
                builder.add(voucher, rows)
                if len(rows.lines) >= self._batch_lines:
                    return rows
        rows.done = True
        return rows


@dataclass(frozen=True)
class WrittenYear:
    """What :meth:`LedgerImportService.write_year` wrote."""

    company: Company
    year: FiscalYear
    replaced: bool
    lines: int
    reconciliation: Reconciliation


class LedgerImportService:
    """Claims file imports and runs them (see the module docstring)."""

    def __init__(
        self,
        db: Database,
        outbox: Outbox,
        files: FileArea,
        settings: ImportSettings | None = None,
    ) -> None:
        self._db = db
        self._outbox = outbox
        self._files = files
        self._settings = settings or ImportSettings()
        #: Lines read so far by the imports running in this process (also on SQLite,
        #: where progress cannot be committed beside the open data transaction).
        self.progress: dict[uuid.UUID, int] = {}
        #: Peak RSS (bytes) and CPU seconds of the last import's worker process (0: none).
        self.worker_peak_rss = 0
        self.worker_cpu_seconds = 0.0
        #: How many chunks the last import written by a child process was read in, and
        #: why the chunks were given up for one reader (None when they were not).
        self.read_chunks = 0
        self.chunk_fallback: str | None = None

    # ------------------------------------------------------------------ claiming

    async def claim_next(self) -> ClaimedJob | None:
        """Take the oldest runnable job: queued with a file, or running with a dead lease."""
        while True:
            async with self._db.transaction() as session:
                jobs = ImportJobRepository(session)
                job = await jobs.claim_next_runnable(FILE_PROVIDERS, now=datetime.now(UTC))
                if job is None:
                    return None
                if job.attempts >= self._settings.max_attempts:
                    error = AttemptsExhaustedError(
                        f"the import was interrupted {job.attempts} times (process killed or "
                        "database lost) and is not tried again; request it anew"
                    )
                    await self._record_failure(session, job, error)
                    continue
                return await self.start(session, job)

    async def start(self, session: AsyncSession, job: ImportJob) -> ClaimedJob:
        """Mark ``job`` running under this runner's lease and announce ``import.started``.

        In ``session``'s transaction: used by :meth:`claim_next`, and by a caller that
        queues a job and runs it itself (``ledgerlink import --direct``), so that no other
        runner takes it in between.
        """
        now = datetime.now(UTC)
        job.status = ImportStatus.RUNNING
        job.attempts += 1
        job.lease_expires_at = now + self._settings.lease
        job.started_at = now
        job.updated_at = now
        if not job.business_id:
            return ClaimedJob(job.id, job.attempts, announced=False)
        await self._announce_started(session, job)
        return ClaimedJob(job.id, job.attempts)

    async def _announce_started(self, session: AsyncSession, job: ImportJob) -> None:
        # Keyed by the company (the import id only when the file never said whose books
        # it holds), so that it cannot overtake import.completed on another partition.
        await self._outbox.add(
            session,
            ImportStartedV1(
                import_id=job.id,
                connection_id=job.connection_id,
                business_id=job.business_id,
                provider=Provider(job.provider),
                attempt=job.attempts,
            ),
            key=job.business_id or str(job.id),
            subject=str(job.id),
        )

    async def _company_known(self, claimed: ClaimedJob, business_id: str) -> None:
        """The file said whose books it holds: keep that on the job, announce the start.

        A short transaction of its own, so that the business ID stays on the job (and
        in its ``import.failed``) even when the data transaction is rolled back.
        """
        async with self._db.transaction() as session:
            job = await ImportJobRepository(session).get_for_update(claimed.id)
            assert job is not None
            if not job.business_id:
                job.business_id = business_id
            if not claimed.announced:
                await self._announce_started(session, job)
        claimed.announced = True

    # ------------------------------------------------------------------- running

    async def run(self, claimed: ClaimedJob) -> ImportStatus:
        """Run a claimed job to completion or failure; returns the final status.

        Infrastructure errors (the database going away) propagate: the job stays
        ``running`` and is taken over when its lease has run out.
        """
        async with self._db.transaction() as session:
            job = await ImportJobRepository(session).get(claimed.id)
            assert job is not None
            assert job.file_location is not None
            location, provider = job.file_location, Provider(job.provider)
            expected_business_id = job.business_id
            filename = job.filename
            replace_reason = job.replace_reason
        self.progress[claimed.id] = 0
        try:
            path = self._files.resolve(location)
            content_hash = await asyncio.to_thread(sha256_of, path)
            return await self._import(
                claimed,
                path,
                filename or path.name,
                provider=provider,
                expected_business_id=expected_business_id,
                content_hash=content_hash,
                replace_reason=replace_reason,
            )
        except (LedgerImportError, ImportRequestError) as error:
            async with self._db.transaction() as session:
                job = await ImportJobRepository(session).get_for_update(claimed.id)
                assert job is not None
                if not claimed.announced:
                    # The file never said whose books it holds: started, then failed,
                    # both keyed by the import id.
                    await self._announce_started(session, job)
                    claimed.announced = True
                await self._record_failure(session, job, error)
            return ImportStatus.FAILED
        finally:
            self.progress.pop(claimed.id, None)

    async def _import(
        self,
        claimed: ClaimedJob,
        path: Path,
        filename: str,
        *,
        provider: Provider,
        expected_business_id: str,
        content_hash: str,
        replace_reason: str | None,
    ) -> ImportStatus:
        async with contextlib.AsyncExitStack() as stack:
            reader: LedgerReader | WorkerReader | ChunkedReader
            if self._settings.parse_process and self._db.dialect == "postgresql":
                plan = None
                if self._settings.parse_workers > 1:
                    plan = await asyncio.to_thread(
                        plan_chunks,
                        path,
                        self._settings.parse_workers,
                        min_bytes=self._settings.chunk_min_bytes,
                    )
                child: WorkerReader | ChunkedReader = await stack.enter_async_context(
                    WorkerReader(
                        str(path),
                        filename,
                        batch_lines=self._settings.batch_lines,
                        fast=self._settings.fast_parse,
                    )
                    if plan is None
                    else ChunkedReader(
                        str(path),
                        filename,
                        batch_lines=self._settings.batch_lines,
                        fast=self._settings.fast_parse,
                        plan=plan,
                    )
                )
                facts = await child.company()
                reader = child
            else:
                stream = stack.enter_context(path.open("rb"))
                reader = LedgerReader.of_file(
                    stream,
                    filename,
                    batch_lines=self._settings.batch_lines,
                    fast=self._settings.fast_parse,
                )
                facts = await asyncio.to_thread(reader.company)
            if not claimed.announced or not expected_business_id:
                await self._company_known(claimed, facts.business_id)
            self._check_request(facts, provider, expected_business_id)
            async with self._db.transaction() as session:
                store = LedgerStore(session)
                company = await store.save_company(facts)
                year = await store.fiscal_year(company.id, facts.fiscal_year_start)
                if year is not None and year.content_hash == content_hash:
                    if not isinstance(reader, LedgerReader):
                        await reader.stop()
                    await self._complete_unchanged(session, claimed, facts, year, content_hash)
                    return ImportStatus.COMPLETED
                stored = None if year is None else await self._stored_content(session, year)
                written = await self.write_year(
                    session,
                    reader,
                    facts,
                    company=company,
                    import_id=claimed.id,
                    content_hash=content_hash,
                    on_batch=lambda lines: self._heartbeat(claimed.id, lines),
                )
                overridden: list[str] = []
                if stored is not None:
                    overridden = check_replacement(
                        stored,
                        _incoming_content(facts, reader.check),
                        business_id=facts.business_id,
                        fiscal_year=(facts.fiscal_year_start, facts.fiscal_year_end),
                        replace_reason=replace_reason,
                        location=filename,
                    )
                if overridden:
                    reader.check.notices.append(
                        LedgerNotice(
                            "replaced_on_request",
                            f"the stored year was replaced as asked ({replace_reason}) "
                            f"although {'; and '.join(overridden)}; it held: "
                            f"{stored.describe() if stored else ''}",
                            filename,
                        )
                    )
                job = await ImportJobRepository(session).get_for_update(claimed.id)
                assert job is not None
                await self._complete(
                    session,
                    job,
                    facts,
                    company_id=written.company.id,
                    check=reader.check,
                    reconciliation=written.reconciliation,
                    outcome="replaced" if written.replaced else "imported",
                    content_hash=content_hash,
                )
        return ImportStatus.COMPLETED

    async def write_year(
        self,
        session: AsyncSession,
        reader: LedgerReader | WorkerReader | ChunkedReader,
        facts: LedgerCompany,
        *,
        import_id: uuid.UUID,
        content_hash: str,
        company: Company | None = None,
        on_batch: Callable[[int], Awaitable[None]] | None = None,
    ) -> WrittenYear:
        """Replace the fiscal year ``facts`` names with what ``reader`` reads, in ``session``.

        The import's write path: the company upserted, the year emptied, vouchers and
        lines written batch by batch (parsed in a worker thread), then the chart, the
        per-period balances and the source's balances. ``company`` is the company row
        when the caller saved (and locked) it already. ``on_batch`` gets the lines
        written so far after each batch. Nothing is committed here.
        """
        store = LedgerStore(session)
        if company is None:
            company = await store.save_company(facts)
        year, replaced = await store.replace_fiscal_year(
            company, facts, import_id=import_id, content_hash=content_hash
        )
        if not isinstance(reader, LedgerReader):
            await reader.begin_year(year.id)
            try:
                lines = await _write_worker_batches(store, reader, on_batch)
            finally:
                self.worker_peak_rss, self.worker_cpu_seconds = reader.peak_rss, reader.cpu_seconds
                if isinstance(reader, ChunkedReader):
                    self.read_chunks = 1 if reader.fallback_reason else len(reader.plan.chunks)
                    self.chunk_fallback = reader.fallback_reason
                else:
                    self.read_chunks, self.chunk_fallback = 1, None
        else:
            reader.begin_year(year.id)
            lines = await _write_batches(
                store, reader, on_batch, pipelined=self._settings.pipelined
            )
        check = reader.check
        reconciliation = check.finish()
        await store.save_chart(
            company.id, check.accounts.values(), check.dimensions.values(), check.objects.values()
        )
        await store.save_period_balances(year.id, check.movements)
        await store.save_source_balances(year.id, check.balances.values())
        await store.save_object_balances(year.id, check.object_balances.values())
        await store.save_comparison_balances(year.id, check.comparison.values())
        return WrittenYear(company, year, replaced, lines, reconciliation)

    async def _stored_content(self, session: AsyncSession, year: FiscalYear) -> YearContent:
        """What the stored fiscal year holds, read before the import empties it."""
        rows = await LedgerStore(session).count_rows(year.id)
        holder = await ImportJobRepository(session).get(year.import_id)
        accounts = int((holder.counts or {}).get("accounts", 0)) if holder else 0
        return YearContent(
            source_format=year.source_format,
            sie_type=year.source_sie_type,
            generated_on=year.source_generated_on,
            vouchers=rows["vouchers"],
            lines=rows["voucher_lines"],
            accounts=accounts,
            balances=rows["source_balances"],
        )

    def _check_request(
        self, facts: LedgerCompany, provider: Provider, expected_business_id: str
    ) -> None:
        wanted = LedgerFormat.of_provider(provider)
        if facts.source_format is not wanted:
            raise FormatMismatchError(
                f"the file is {facts.source_format.value}, but the import was requested for "
                f"a {provider.value} connection"
            )
        if expected_business_id and expected_business_id != facts.business_id:
            raise BusinessIdMismatchError(
                f"the file holds the books of business ID {facts.business_id} "
                f"({facts.name}), but the import was requested for {expected_business_id}"
            )

    async def _heartbeat(self, import_id: uuid.UUID, lines: int) -> None:
        self.progress[import_id] = lines
        if self._db.dialect != "postgresql":
            return
        # A short transaction of its own, committed while the data transaction is open:
        # other runners must see the lease extended (and operators the progress) now.
        async with self._db.transaction() as session:
            await ImportJobRepository(session).extend_lease(
                import_id,
                progress_lines=lines,
                lease_expires_at=datetime.now(UTC) + self._settings.lease,
            )

    # ------------------------------------------------------------------ outcomes

    async def _complete(
        self,
        session: AsyncSession,
        job: ImportJob,
        facts: LedgerCompany,
        *,
        company_id: uuid.UUID,
        check: LedgerCheck,
        reconciliation: Reconciliation,
        outcome: str,
        content_hash: str,
    ) -> None:
        span = periods_between(facts.fiscal_year_start, facts.fiscal_year_end)
        job.outcome = outcome
        job.business_id = facts.business_id
        job.company_id = company_id
        job.content_hash = content_hash
        job.fiscal_year_start = facts.fiscal_year_start
        job.fiscal_year_end = facts.fiscal_year_end
        job.progress_lines = check.line_count
        job.counts = ImportCountsV1(
            accounts=len(check.accounts),
            dimensions=len(check.dimensions),
            objects=len(check.objects),
            vouchers=check.voucher_count,
            lines=check.line_count,
        ).model_dump()
        job.periods = [period.strftime("%Y-%m") for period in span]
        job.reconciliation_status = reconciliation.status
        job.differences = [
            AccountDifferenceV1(
                account=d.account,
                opening=_text(d.opening),
                movements=_text(d.movements),
                computed_closing=_text(d.computed_closing),
                source_closing=_text(d.source_closing),
                difference=_text(d.difference),
            ).model_dump()
            for d in reconciliation.differences
        ]
        job.notices = [
            {"code": n.code, "message": n.message, "location": n.location} for n in check.notices
        ]
        _finish(job, ImportStatus.COMPLETED)
        await self._announce_completed(session, job, facts.name)
        await self._reports_ready(session, job, facts, job.periods)
        logger.info(
            "import completed",
            extra={
                "import_id": str(job.id),
                "business_id": facts.business_id,
                "lines": check.line_count,
                "reconciliation": reconciliation.status,
                "outcome": outcome,
            },
        )

    async def _announce_completed(
        self, session: AsyncSession, job: ImportJob, company_name: str
    ) -> None:
        """``import.completed`` from the result recorded on the finished job."""
        assert job.fiscal_year_start is not None
        assert job.fiscal_year_end is not None
        empty = {"accounts": 0, "dimensions": 0, "objects": 0, "vouchers": 0, "lines": 0}
        await self._outbox.add(
            session,
            ImportCompletedV1(
                import_id=job.id,
                connection_id=job.connection_id,
                business_id=job.business_id,
                company_name=company_name[:300],
                provider=Provider(job.provider),
                outcome=job.outcome,  # type: ignore[arg-type]
                fiscal_year_start=job.fiscal_year_start,
                fiscal_year_end=job.fiscal_year_end,
                counts=ImportCountsV1.model_validate(job.counts or empty),
                periods=tuple(job.periods or ()),
                reconciliation_status=job.reconciliation_status or "not_available",  # type: ignore[arg-type]
                differences=tuple(
                    AccountDifferenceV1.model_validate(d) for d in job.differences or ()
                ),
                notice_count=len(job.notices or ()),
            ),
            key=job.business_id,
            subject=str(job.id),
        )

    async def _reports_ready(
        self, session: AsyncSession, job: ImportJob, facts: LedgerCompany, periods: list[str]
    ) -> None:
        await self._outbox.add(
            session,
            ReportsReadyV1(
                import_id=job.id,
                business_id=facts.business_id,
                fiscal_year_start=facts.fiscal_year_start,
                fiscal_year_end=facts.fiscal_year_end,
                periods=tuple(periods),
                reports=tuple(f"/v1/companies/{facts.business_id}/{report}" for report in REPORTS),
            ),
            key=facts.business_id,
            subject=str(job.id),
        )

    async def _complete_unchanged(
        self,
        session: AsyncSession,
        claimed: ClaimedJob,
        facts: LedgerCompany,
        year: FiscalYear,
        content_hash: str,
    ) -> None:
        """The same file again: point at the import that holds the year; write nothing."""
        jobs = ImportJobRepository(session)
        job = await jobs.get_for_update(claimed.id)
        original = await jobs.get(year.import_id)
        assert job is not None
        job.outcome = "unchanged"
        job.business_id = facts.business_id
        job.company_id = year.company_id
        job.content_hash = content_hash
        job.fiscal_year_start = year.start
        job.fiscal_year_end = year.end
        if original is not None:
            job.counts = original.counts
            job.periods = original.periods
            job.reconciliation_status = original.reconciliation_status
            job.differences = original.differences
            job.notices = original.notices
            job.progress_lines = original.progress_lines
        _finish(job, ImportStatus.COMPLETED)
        await self._announce_completed(session, job, facts.name)
        logger.info(
            "import unchanged: the fiscal year already holds this file",
            extra={"import_id": str(job.id), "holding_import_id": str(year.import_id)},
        )

    async def _record_failure(
        self, session: AsyncSession, job: ImportJob, error: LedgerImportError | ImportRequestError
    ) -> None:
        location = getattr(error, "location", "") or None
        message = getattr(error, "message", None) or str(error)
        job.error_code = error.reason_code
        job.error_message = (f"{location}: {message}" if location else message)[:2000]
        _finish(job, ImportStatus.FAILED)
        await self._outbox.add(
            session,
            ImportFailedV1(
                import_id=job.id,
                connection_id=job.connection_id,
                business_id=job.business_id,
                provider=Provider(job.provider),
                reason_code=error.reason_code,
                message=message[:2000],
                location=location[:1000] if location else None,
            ),
            key=job.business_id or str(job.id),
            subject=str(job.id),
        )
        logger.warning(
            "import failed",
            extra={"import_id": str(job.id), "reason_code": error.reason_code, "error": message},
        )


async def _write_batches(
    store: LedgerStore,
    reader: LedgerReader,
    on_batch: Callable[[int], Awaitable[None]] | None,
    *,
    pipelined: bool,
) -> int:
    """Parse batch N+1 in the worker thread while batch N is written; returns the lines.

    At most two batches are in memory: the one being written and the one being read.
    A batch is read only after the one before it was read to the end (the reader is
    not thread-safe, and is never used by two threads at once). When a write fails, the
    read under way is awaited (its result or error dropped) before the error
    propagates, so the file is not closed under the worker thread. A refused line in a
    later batch raises here after the earlier batches were written: the caller's data
    transaction rolls all of them back, as before.
    """
    lines = 0
    if not pipelined:  # one batch after the other (the path before issue 16)
        while True:
            rows = await asyncio.to_thread(reader.batch)
            await store.write_rows(rows)
            lines += len(rows.lines)
            if on_batch is not None:
                await on_batch(lines)
            if rows.done:
                return lines
    reading: asyncio.Future[LedgerRows] = asyncio.ensure_future(asyncio.to_thread(reader.batch))
    try:
        while True:
            rows = await reading
            if not rows.done:
                reading = asyncio.ensure_future(asyncio.to_thread(reader.batch))
            await store.write_rows(rows)
            lines += len(rows.lines)
            if on_batch is not None:
                await on_batch(lines)
            if rows.done:
                return lines
    finally:
        if not reading.done():
            # A write (or heartbeat) failed or was cancelled while the next batch was
            # being read: let the worker thread finish before the stream is closed.
            await asyncio.wait([reading])
        if reading.done() and not reading.cancelled():
            reading.exception()  # retrieved: an error here is not the one that counts


async def _write_worker_batches(
    store: LedgerStore,
    reader: WorkerReader | ChunkedReader,
    on_batch: Callable[[int], Awaitable[None]] | None,
) -> int:
    """Write the worker processes' batches as they come; returns the lines.

    The children parse ahead of the writes (a few batches at most, see
    :mod:`.import_worker`); a refused line raises here, and the caller's data transaction
    rolls back what was written. A file read in chunks is written under a savepoint:
    when the chunks are given up (:class:`RestartWriteError`), their rows are undone and
    the batches of the one reader of the whole file are written instead.
    """
    while True:
        lines = 0
        try:
            async with store.savepoint(isinstance(reader, ChunkedReader)):
                while True:
                    batch = await reader.batch()
                    await store.copy_text_rows(batch.vouchers, batch.lines)
                    lines += batch.line_count
                    if on_batch is not None:
                        await on_batch(lines)
                    if batch.done:
                        return lines
        except RestartWriteError:
            continue


def _incoming_content(facts: LedgerCompany, check: LedgerCheck) -> YearContent:
    """What the file brought, once it has been read to the end."""
    return YearContent(
        source_format=facts.source_format.value,
        sie_type=facts.sie_type,
        generated_on=facts.generated_on,
        vouchers=check.voucher_count,
        lines=check.line_count,
        accounts=len(check.accounts),
        balances=sum(
            1 for b in check.balances.values() if b.opening is not None or b.closing is not None
        ),
    )


def _finish(job: ImportJob, status: ImportStatus) -> None:
    """The job's final status; its lease is given up."""
    now = datetime.now(UTC)
    job.status = status
    job.lease_expires_at = None
    job.finished_at = now
    job.updated_at = now


def _text(amount: Decimal) -> str:
    return f"{amount:.2f}"
