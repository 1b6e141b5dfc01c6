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
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import BinaryIO, Final

from sqlalchemy import and_, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from ledgerlink.importer.domain.import_rules import ImportRequestError
from ledgerlink.importer.domain.ledger import (
    LedgerCheck,
    LedgerCompany,
    LedgerFormat,
    LedgerImportError,
    LedgerItem,
    LedgerVoucher,
    Reconciliation,
    periods_between,
    read_ledger,
)
from ledgerlink.importer.storage.files import FileArea, sha256_of
from ledgerlink.importer.storage.ledger_store import LedgerStore, LineRow, VoucherRow
from ledgerlink.importer.storage.models import FiscalYear, ImportJob, ImportStatus
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

FILE_PROVIDERS: Final = (Provider.SAF_T.value, Provider.SIE.value)
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


@dataclass
class ClaimedJob:
    """A job this runner holds."""

    id: uuid.UUID
    attempt: int


@dataclass
class _Batch:
    vouchers: list[VoucherRow] = field(default_factory=list)
    lines: list[LineRow] = field(default_factory=list)
    done: bool = False


class _Reader:
    """Runs parsing and checking in a worker thread, one batch of rows at a time."""

    def __init__(self, stream: BinaryIO, filename: str, batch_lines: int) -> None:
        self._items: Iterator[LedgerItem] = read_ledger(stream, filename=filename)
        self._batch_lines = batch_lines
        self.check = LedgerCheck()
        self._voucher_no = 0
        self.fiscal_year_id: uuid.UUID | None = None

    def company(self) -> LedgerCompany:
        """Read up to the company (always the first item)."""
        for item in self._items:
            self.check.take(item)
            if isinstance(item, LedgerCompany):
                return item
        raise LedgerImportError("the file holds no company")

    def batch(self) -> _Batch:
        """Read, check and turn into rows about ``batch_lines`` more lines."""
        year = self.fiscal_year_id
        assert year is not None
        batch = _Batch()
        take = self.check.take
        for item in self._items:
            voucher = take(item)
            if voucher is not None:
                self._rows(year, voucher, batch)
                if len(batch.lines) >= self._batch_lines:
                    return batch
        batch.done = True
        return batch

    def _rows(self, year: uuid.UUID, voucher: LedgerVoucher, batch: _Batch) -> None:
        self._voucher_no += 1
        number = self._voucher_no
        batch.vouchers.append(
            (
                year,
                number,
                voucher.series[:32],
                voucher.number[:64],
                voucher.date,
                voucher.date.replace(day=1),
                voucher.text[:1000],
                voucher.source_id[:200],
            )
        )
        lines = batch.lines
        for line_no, line in enumerate(voucher.lines, start=1):
            objects = ";".join(f"{d}={o}" for d, o in line.objects)
            lines.append((year, number, line_no, line.account, line.amount, line.text[:1000],
                          objects[:1000]))  # fmt: skip


def _utc(moment: datetime, dialect: str) -> datetime:
    # SQLite keeps naive datetimes; compare like with like there.
    return moment if dialect == "postgresql" else moment.replace(tzinfo=None)


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

    # ------------------------------------------------------------------ claiming

    async def claim_next(self) -> ClaimedJob | None:
        """Take the oldest runnable job: queued with a file, or running with a dead lease."""
        while True:
            now = datetime.now(UTC)
            dialect = self._db.dialect
            async with self._db.transaction() as session:
                result = await session.execute(
                    select(ImportJob)
                    .where(
                        col(ImportJob.provider).in_(FILE_PROVIDERS),
                        col(ImportJob.file_location).is_not(None),
                        or_(
                            col(ImportJob.status) == ImportStatus.QUEUED,
                            and_(
                                col(ImportJob.status) == ImportStatus.RUNNING,
                                col(ImportJob.lease_expires_at) < _utc(now, dialect),
                            ),
                        ),
                    )
                    .order_by(col(ImportJob.created_at))
                    .limit(1)
                    .with_for_update(skip_locked=True)
                )
                job = result.scalar_one_or_none()
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
        return ClaimedJob(job.id, job.attempts)

    # ------------------------------------------------------------------- running

    async def run(self, claimed: ClaimedJob) -> ImportStatus:
        """Run a claimed job to completion or failure; returns the final status.

        Infrastructure errors (the database going away) propagate: the job stays
        ``running`` and is taken over when its lease has run out.
        """
        async with self._db.transaction() as session:
            job = await session.get(ImportJob, claimed.id)
            assert job is not None
            assert job.file_location is not None
            location, provider = job.file_location, Provider(job.provider)
            expected_business_id = job.business_id
            filename = job.filename
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
            )
        except (LedgerImportError, ImportRequestError) as error:
            async with self._db.transaction() as session:
                job = await session.get(ImportJob, claimed.id, with_for_update=True)
                assert job is not None
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
    ) -> ImportStatus:
        with path.open("rb") as stream:
            reader = _Reader(stream, filename, self._settings.batch_lines)
            facts = await asyncio.to_thread(reader.company)
            self._check_request(facts, provider, expected_business_id)
            async with self._db.transaction() as session:
                store = LedgerStore(session)
                company = await store.save_company(facts)
                year = await store.fiscal_year(company.id, facts.fiscal_year_start)
                if year is not None and year.content_hash == content_hash:
                    await self._complete_unchanged(session, claimed, facts, year, content_hash)
                    return ImportStatus.COMPLETED
                year, replaced = await store.replace_fiscal_year(
                    company, facts, import_id=claimed.id, content_hash=content_hash
                )
                reader.fiscal_year_id = year.id
                lines = 0
                while True:
                    batch = await asyncio.to_thread(reader.batch)
                    await store.bulk_insert_vouchers(batch.vouchers)
                    await store.bulk_insert_lines(batch.lines)
                    lines += len(batch.lines)
                    await self._heartbeat(claimed.id, lines)
                    if batch.done:
                        break
                check = reader.check
                reconciliation = check.finish()
                await store.save_chart(
                    company.id,
                    check.accounts.values(),
                    check.dimensions.values(),
                    check.objects.values(),
                )
                await store.save_period_balances(year.id, check.movements)
                await store.save_source_balances(year.id, check.balances.values())
                job = await session.get(ImportJob, claimed.id, with_for_update=True)
                assert job is not None
                await self._complete(
                    session,
                    job,
                    facts,
                    company_id=company.id,
                    check=check,
                    reconciliation=reconciliation,
                    outcome="replaced" if replaced else "imported",
                    content_hash=content_hash,
                )
        return ImportStatus.COMPLETED

    def _check_request(
        self, facts: LedgerCompany, provider: Provider, expected_business_id: str
    ) -> None:
        wanted = LedgerFormat.SIE if provider is Provider.SIE else LedgerFormat.SAF_T
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
        async with self._db.transaction() as session:
            await session.execute(
                update(ImportJob)
                .where(col(ImportJob.id) == import_id)
                .values(
                    progress_lines=lines,
                    lease_expires_at=datetime.now(UTC) + self._settings.lease,
                )
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
        job = await session.get(ImportJob, claimed.id, with_for_update=True)
        original = await session.get(ImportJob, year.import_id)
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


def _finish(job: ImportJob, status: ImportStatus) -> None:
    """The job's final status; its lease is given up."""
    now = datetime.now(UTC)
    job.status = status
    job.lease_expires_at = None
    job.finished_at = now
    job.updated_at = now


def _text(amount: Decimal) -> str:
    return f"{amount:.2f}"
