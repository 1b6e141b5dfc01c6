"""Run ledger syncs over the vendors' APIs: first import, incremental sync, full refresh.

Like a file import (``ledger_import.py``), a sync is the unit of work that opens and
commits its own transactions; unlike one, it commits **once per page**:

1. **claim**: the job becomes ``running`` with a lease (one sync per connection at a time
   across replicas: a job is not claimed while another of its connection is held);
2. **pages**: each page of vouchers read from the vendor, the balance changes it makes and
   the cursor after it commit together. A killed importer leaves a job whose lease runs
   out; the next claim resumes from the committed cursor, so nothing is read twice into
   the store and nothing is lost. Vouchers are replaced by the vendor's id, so a page read
   again (its commit never happened) stores each line once;
3. **complete**: a full read (first import, full refresh) wrote into a staging company,
   which now replaces the live books in one transaction with ``import.completed`` and
   ``reports.ready``. An incremental sync wrote into the live books page by page.

A sync that fails leaves the live books as they were before it (full read), or as of its
last committed page (incremental: each page is a consistent set of whole vouchers and
their balances); its staging company is dropped.

Vendor trouble: a 429 or 5xx is retried by the connector (honouring ``Retry-After``);
when its retries run out, the page is tried again after a pause, so a 429 storm slows a
sync and never fails it (``page_retries`` bounds 5xx and connection failures only). A
credential auth cannot give (``needs_reauth``, revoked) fails the sync and pauses the
connection's schedule, saying why.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Final, TypeVar

from sqlalchemy.ext.asyncio import AsyncSession

from ledgerlink.connectors.base import AccountBalanceSource, LedgerConnector
from ledgerlink.connectors.errors import (
    AccessNotEnabled,
    AuthenticationFailed,
    ConnectorError,
    RateLimited,
)
from ledgerlink.connectors.models import Account as VendorAccount
from ledgerlink.connectors.models import Dimension as VendorDimension
from ledgerlink.connectors.models import Period as VendorPeriod
from ledgerlink.connectors.models import SyncCursor, VoucherPage
from ledgerlink.importer.domain.ledger import LedgerCompany, LedgerFormat, periods_between
from ledgerlink.importer.domain.ledger_sync import (
    PAYROLL_NOT_VISIBLE,
    DimensionResolver,
    FiscalYearSpan,
    SyncMode,
    calendar_year,
    effective_mode,
    fiscal_years_of,
    ledger_accounts,
    ledger_dimensions,
    movement_delta,
    page_changes,
    page_warnings,
    reconcile_with_vendor,
    staging_business_id,
    stored_lines,
    vendor_periods,
    year_of,
)
from ledgerlink.importer.storage.models import Company, ImportJob, ImportStatus, ImportTrigger
from ledgerlink.importer.storage.repository import ImportJobRepository
from ledgerlink.importer.storage.sync_store import LedgerSyncStore, SyncStateRepository
from ledgerlink.importer.storage.vendor_ledgers import API_PROVIDERS, LedgerOpener
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

REPORTS: Final = ("trial-balance", "profit-and-loss", "balance-sheet")

Clock = Callable[[], datetime]
_T = TypeVar("_T")


def _utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass
class SyncSettings:
    """How syncs run (from the service config)."""

    lease: timedelta = timedelta(seconds=60)
    max_attempts: int = 5
    interval: timedelta = timedelta(minutes=15)
    #: Tries of a page that keeps failing with 5xx or dropped connections after the
    #: connector's own retries (a 429 is tried again without limit: it only slows).
    page_retries: int = 5
    #: Pause before a page is tried again (doubled each time, at most 60 s).
    page_retry_pause: float = 1.0


@dataclass
class ClaimedSync:
    """A sync this runner holds."""

    id: uuid.UUID
    attempt: int


class SyncFailedError(Exception):
    """A sync that cannot complete; ``reason_code`` is stable, the message says why."""

    def __init__(self, reason_code: str, message: str, *, pause: bool = False) -> None:
        super().__init__(message)
        self.reason_code = reason_code
        self.message = message
        #: Whether the connection's schedule pauses until a person acts.
        self.pause = pause


@dataclass
class _Progress:
    vouchers: int = 0
    lines: int = 0
    removed: int = 0
    pages: int = 0
    notices: list[dict[str, str]] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        return {
            "vouchers_read": self.vouchers,
            "lines_written": self.lines,
            "vouchers_removed": self.removed,
            "pages": self.pages,
        }


@dataclass(frozen=True)
class _Master:
    """The ledger's master data, read before the vouchers."""

    accounts: list[VendorAccount]
    dimensions: list[VendorDimension]
    periods: list[VendorPeriod]


@dataclass(frozen=True)
class _Live:
    """A sync into the live books, set up (see ``LedgerSyncService._open_live``)."""

    master: _Master
    target: _Target
    import_id: uuid.UUID
    provider: str
    connection_id: uuid.UUID
    #: The connection's cursor when the sync started.
    cursor: str
    progress: _Progress
    #: The job's date range, for a backfill.
    backfill: tuple[date, date] | None


@dataclass
class _Target:
    """Where a sync writes: the staging company of a full read, or the live one."""

    company_id: uuid.UUID
    years: dict[date, uuid.UUID]
    spans: list[FiscalYearSpan]
    accounts: set[str]
    objects: set[tuple[str, str]]
    resolver: DimensionResolver
    #: The highest voucher_no of each year, known after the first page (asking the store
    #: on every page costs a scan of the year's vouchers each time).
    numbers: dict[uuid.UUID, int] = field(default_factory=dict)


class LedgerSyncService:
    """Claims API syncs, runs them, and queues the scheduled ones (see the module doc)."""

    def __init__(
        self,
        db: Database,
        outbox: Outbox,
        ledgers: LedgerOpener,
        settings: SyncSettings | None = None,
        *,
        clock: Clock = _utc_now,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._db = db
        self._outbox = outbox
        self._ledgers = ledgers
        self._settings = settings or SyncSettings()
        self._clock = clock
        self._sleep = sleep
        #: Called after each committed page with (import id, lines written so far).
        self.on_page: Callable[[uuid.UUID, int], Awaitable[None]] | None = None

    # ------------------------------------------------------------------ claiming

    async def claim_next(self) -> ClaimedSync | None:
        """Queue the syncs whose schedule is due, then take the oldest runnable one."""
        await self.queue_scheduled()
        while True:
            async with self._db.transaction() as session:
                job = await SyncStateRepository(session).claim_next_sync(
                    API_PROVIDERS, now=self._clock()
                )
                if job is None:
                    return None
                if job.attempts >= self._settings.max_attempts:
                    await self._record_failure(
                        session,
                        job,
                        SyncFailedError(
                            "attempts_exhausted",
                            f"the sync was interrupted {job.attempts} times and is not tried "
                            "again; it is queued anew on the next schedule",
                        ),
                    )
                    continue
                now = self._clock()
                job.status = ImportStatus.RUNNING
                job.attempts += 1
                job.lease_expires_at = now + self._settings.lease
                job.started_at = job.started_at or now
                job.updated_at = now
                if job.sync_mode is None:
                    job.sync_mode = SyncMode.FIRST.value
                await self._outbox.add(
                    session,
                    ImportStartedV1(
                        import_id=job.id,
                        connection_id=job.connection_id,
                        business_id=job.business_id,
                        provider=Provider(job.provider),
                        attempt=job.attempts,
                    ),
                    key=job.business_id,
                    subject=str(job.id),
                )
                return ClaimedSync(job.id, job.attempts)

    async def queue_scheduled(self) -> int:
        """Queue an incremental sync for every connection whose next run is due."""
        now = self._clock()
        async with self._db.transaction() as session:
            due = await SyncStateRepository(session).due(now)
            jobs = ImportJobRepository(session)
            for state in due:
                job_id = uuid.uuid4()
                await jobs.add(
                    ImportJob(
                        id=job_id,
                        connection_id=state.connection_id,
                        business_id=state.business_id,
                        provider=state.provider,
                        scope=["accounts", "dimensions", "periods", "vouchers"],
                        trigger=ImportTrigger.SCHEDULE,
                        status=ImportStatus.QUEUED,
                        requested_event_id=f"schedule:{job_id}",
                        sync_mode=SyncMode.INCREMENTAL.value,
                    )
                )
                # Not due again until this sync has finished and set the next run.
                state.next_run_at = None
        return len(due)

    # ------------------------------------------------------------------- running

    async def run(self, claimed: ClaimedSync) -> ImportStatus:
        """Run a claimed sync to completion or failure; returns the final status.

        Infrastructure errors (the database going away) propagate: the job stays running
        and is resumed from its checkpoint when its lease has run out.
        """
        async with self._db.transaction() as session:
            job = await ImportJobRepository(session).get(claimed.id)
            assert job is not None
            assert job.connection_id is not None
            connection_id, business_id = job.connection_id, job.business_id
            provider = Provider(job.provider)
            mode = SyncMode(job.sync_mode or SyncMode.FIRST.value)
            state = await SyncStateRepository(session).ensure(
                connection_id,
                business_id=business_id,
                provider=provider.value,
                interval_minutes=int(self._settings.interval.total_seconds() // 60),
            )
            transaction_type = state.default_transaction_type
            live = await LedgerSyncStore(session).ledger.company_by_business_id(business_id)
            if mode is SyncMode.INCREMENTAL and (live is None or not state.cursor):
                # Nothing to be incremental on: read everything.
                mode = SyncMode.FIRST if live is None else SyncMode.FULL_REFRESH
            if mode is SyncMode.BACKFILL and live is None:
                mode = SyncMode.FIRST  # no books yet: the range is part of a first import
            # A vendor that cannot list changes (24SevenOffice) is read in full.
            mode = effective_mode(mode, provider.value)
            job.sync_mode = mode.value
            state.last_import_id = job.id
            state.last_status = ImportStatus.RUNNING.value
            state.last_mode = mode.value
            state.last_started_at = job.started_at
        started_at = self._clock()
        try:
            async with self._ledgers.open(
                provider, connection_id, business_id=business_id, transaction_type=transaction_type
            ) as connector:
                if mode.is_full:
                    await self._full(claimed, connector, mode, started_at)
                elif mode is SyncMode.BACKFILL:
                    await self._backfill(claimed, connector, started_at)
                else:
                    await self._incremental(claimed, connector, started_at)
        except (ConnectorError, SyncFailedError) as error:
            failure = error if isinstance(error, SyncFailedError) else _failure_of(error)
            async with self._db.transaction() as session:
                job = await ImportJobRepository(session).get_for_update(claimed.id)
                assert job is not None
                if job.staging_company_id is not None:
                    await LedgerSyncStore(session).delete_company(job.staging_company_id)
                    job.staging_company_id = None
                    job.sync_cursor = None
                await self._record_failure(session, job, failure)
            return ImportStatus.FAILED
        return ImportStatus.COMPLETED

    async def _page(self, connector: LedgerConnector, cursor: str) -> VoucherPage:
        """One page, tried again after a pause when the vendor stays busy or away."""
        return await self._patiently(lambda: connector.read_vouchers(SyncCursor(token=cursor)))

    async def _pages(self, connector: LedgerConnector, cursor: str) -> AsyncIterator[VoucherPage]:
        """Every page from ``cursor`` on; the next page is read from the vendor while the
        caller writes this one (the vendor's answer time and ours overlap)."""
        pending = asyncio.create_task(self._page(connector, cursor))
        try:
            while True:
                page = await pending
                if page.has_more:
                    pending = asyncio.create_task(self._page(connector, page.cursor.token))
                yield page
                if not page.has_more:
                    return
        finally:
            if not pending.done():
                pending.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await pending

    async def _patiently(self, call: Callable[[], Awaitable[_T]]) -> _T:
        """``call()``, tried again after a pause when the vendor stays busy or away."""
        failures = 0
        pause = self._settings.page_retry_pause
        while True:
            try:
                return await call()
            except ConnectorError as error:
                if not error.retryable:
                    raise
                if not isinstance(error, RateLimited):
                    failures += 1
                    if failures >= self._settings.page_retries:
                        raise
                wait = error.retry_after if isinstance(error, RateLimited) else None
                logger.warning(
                    "vendor busy or unavailable; the page is read again after a pause",
                    extra={"vendor": error.vendor, "error": str(error)},
                )
                await self._sleep(wait if wait is not None else pause)
                pause = min(pause * 2, 60.0)

    async def _master_data(self, connector: LedgerConnector) -> _Master:
        return _Master(
            accounts=await self._patiently(connector.read_accounts),
            dimensions=await self._patiently(connector.read_dimensions),
            periods=await self._patiently(connector.read_periods),
        )

    async def _prepare(
        self,
        session: AsyncSession,
        company: Company,
        master: _Master,
        import_id: uuid.UUID,
        provider: str,
    ) -> _Target:
        store = LedgerSyncStore(session)
        dims, objects = ledger_dimensions(master.dimensions)
        await store.ledger.save_chart(company.id, ledger_accounts(master.accounts), dims, objects)
        spans = fiscal_years_of(master.periods)
        await store.save_periods(company.id, vendor_periods(master.periods))
        years = await store.fiscal_years(
            company.id, spans, import_id=import_id, source_format=provider
        )
        chart_accounts, chart_objects = await store.chart_keys(company.id)
        return _Target(
            company.id,
            years,
            spans,
            chart_accounts,
            chart_objects,
            DimensionResolver(master.dimensions),
        )

    async def _apply(
        self,
        session: AsyncSession,
        target: _Target,
        page: VoucherPage,
        progress: _Progress,
        *,
        import_id: uuid.UUID,
        provider: str,
    ) -> None:
        """Write one page into ``target``: replaced vouchers, removed ones, balances."""
        store = LedgerSyncStore(session)
        changes = page_changes(
            page.vouchers,
            target.resolver,
            accounts=dict.fromkeys(target.accounts),
            objects=dict.fromkeys(target.objects),
        )
        if changes.missing_accounts or changes.missing_objects:
            await store.ledger.save_chart(
                target.company_id, changes.missing_accounts, [], changes.missing_objects
            )
            target.accounts.update(a.number for a in changes.missing_accounts)
            target.objects.update((o.dimension_id, o.object_id) for o in changes.missing_objects)
        new_spans = {
            year_of(v.date, target.spans)
            for v in changes.vouchers
            if year_of(v.date, target.spans).start not in target.years
        }
        if new_spans:
            target.spans = sorted({*target.spans, *new_spans}, key=lambda s: s.start)
            target.years = await store.fiscal_years(
                target.company_id, target.spans, import_id=import_id, source_format=provider
            )
        year_ids = list(target.years.values())
        # Only vouchers already stored are read back and deleted (on a full read, those of
        # a page read again after a restart, or moved between windows): one indexed lookup.
        present = await store.existing_source_ids(year_ids, changes.source_ids)
        removed = await store.stored_lines(year_ids, present)
        await store.delete_vouchers(year_ids, present)
        placed = [(target.years[year_of(v.date, target.spans).start], v) for v in changes.vouchers]
        unknown = sorted({year for year, _ in placed} - target.numbers.keys())
        if unknown:
            target.numbers.update(await store.last_voucher_numbers(unknown))
        progress.lines += await store.insert_vouchers(placed, target.numbers)
        added = [line for _, voucher in placed for line in stored_lines(voucher)]
        delta = movement_delta(removed, added)
        year_of_period = {
            period: target.years[year_of(period, target.spans).start]
            for period in {key[0] for key in delta}
        }
        await store.change_balances(year_of_period, delta)
        progress.vouchers += len(page.vouchers)
        progress.removed += changes.removed
        progress.pages += 1
        for notice in [*changes.notices, *page_warnings(getattr(page, "warnings", ()))]:
            entry = {"code": notice.code, "message": notice.message, "location": notice.location}
            if entry not in progress.notices:
                progress.notices.append(entry)

    async def _full(
        self,
        claimed: ClaimedSync,
        connector: LedgerConnector,
        mode: SyncMode,
        started_at: datetime,
    ) -> None:
        master = await self._master_data(connector)
        companies = await self._patiently(connector.list_companies)
        async with self._db.transaction() as session:
            job = await ImportJobRepository(session).get_for_update(claimed.id)
            assert job is not None
            store = LedgerSyncStore(session)
            vendor_company = next(
                (c for c in companies if c.business_id == job.business_id),
                companies[0] if companies else None,
            )
            name = vendor_company.name if vendor_company else job.business_id
            currency = (vendor_company.currency if vendor_company else "EUR")[:3]
            spans = fiscal_years_of(master.periods) or [calendar_year(self._clock().year)]
            facts = LedgerCompany(
                business_id=staging_business_id(job.id.hex),
                country=_country(job.business_id, job.provider),
                name=name,
                currency=currency,
                chart=job.provider,
                fiscal_year_start=spans[0].start,
                fiscal_year_end=spans[-1].end,
                source_format=LedgerFormat.SAF_T,  # unused for a staging company
            )
            if job.staging_company_id is None:
                company = await store.ledger.save_company(facts)
                job.staging_company_id = company.id
                job.sync_cursor = ""
            else:
                found = await store.ledger.company(job.staging_company_id)
                assert found is not None
                company = found
            target = await self._prepare(session, company, master, job.id, job.provider)
            cursor = job.sync_cursor or ""
            progress = _restore(job)
            import_id, provider = job.id, job.provider
        async for page in self._pages(connector, cursor):
            async with self._db.transaction() as session:
                await self._apply(
                    session, target, page, progress, import_id=import_id, provider=provider
                )
                cursor = page.cursor.token
                await SyncStateRepository(session).checkpoint(
                    import_id,
                    cursor=cursor,
                    progress_lines=progress.lines,
                    counts=progress.counts(),
                    notices=progress.notices,
                    lease_expires_at=self._clock() + self._settings.lease,
                )
            if self.on_page is not None:
                await self.on_page(import_id, progress.lines)
        await self._reconcile(connector, claimed.id, target.company_id, master)
        async with self._db.transaction() as session:
            job = await ImportJobRepository(session).get_for_update(claimed.id)
            assert job is not None
            assert job.staging_company_id is not None
            store = LedgerSyncStore(session)
            staging = await store.ledger.company(job.staging_company_id)
            assert staging is not None
            live = await store.swap_in(staging, job.business_id)
            job.staging_company_id = None
            await self._complete(
                session,
                job,
                live,
                cursor=cursor,
                progress=progress,
                outcome="imported" if mode is SyncMode.FIRST else "replaced",
                started_at=started_at,
            )

    async def _open_live(self, claimed: ClaimedSync, connector: LedgerConnector) -> _Live:
        """Read the master data and set up a sync into the live books (incremental and
        backfill): chart, periods and years saved, the connection's cursor read."""
        master = await self._master_data(connector)
        async with self._db.transaction() as session:
            job = await ImportJobRepository(session).get_for_update(claimed.id)
            assert job is not None
            assert job.connection_id is not None
            state = await SyncStateRepository(session).get(job.connection_id)
            assert state is not None
            live = await LedgerSyncStore(session).ledger.company_by_business_id(job.business_id)
            assert live is not None
            target = await self._prepare(session, live, master, job.id, job.provider)
            backfill = None
            if job.sync_from is not None and job.sync_to is not None:
                backfill = (job.sync_from, job.sync_to)
            return _Live(
                master=master,
                target=target,
                import_id=job.id,
                provider=job.provider,
                connection_id=job.connection_id,
                cursor=state.cursor,
                progress=_restore(job),
                backfill=backfill,
            )

    async def _incremental(
        self, claimed: ClaimedSync, connector: LedgerConnector, started_at: datetime
    ) -> None:
        opened = await self._open_live(claimed, connector)
        target, import_id, provider = opened.target, opened.import_id, opened.provider
        connection_id, cursor, progress = opened.connection_id, opened.cursor, opened.progress
        master = opened.master
        async for page in self._pages(connector, cursor):
            async with self._db.transaction() as session:
                await self._apply(
                    session, target, page, progress, import_id=import_id, provider=provider
                )
                cursor = page.cursor.token
                # The live books and the connection's cursor move together.
                state = await SyncStateRepository(session).get(connection_id, lock=True)
                assert state is not None
                state.cursor = cursor
                await SyncStateRepository(session).checkpoint(
                    import_id,
                    cursor=cursor,
                    progress_lines=progress.lines,
                    counts=progress.counts(),
                    notices=progress.notices,
                    lease_expires_at=self._clock() + self._settings.lease,
                )
            if self.on_page is not None:
                await self.on_page(import_id, progress.lines)
        await self._reconcile(connector, claimed.id, target.company_id, master)
        async with self._db.transaction() as session:
            job = await ImportJobRepository(session).get_for_update(claimed.id)
            assert job is not None
            live = await LedgerSyncStore(session).ledger.company_by_business_id(job.business_id)
            assert live is not None
            changed = progress.vouchers > 0
            await self._complete(
                session,
                job,
                live,
                cursor=cursor,
                progress=progress,
                outcome="replaced" if changed else "unchanged",
                started_at=started_at,
            )

    async def _backfill(
        self, claimed: ClaimedSync, connector: LedgerConnector, started_at: datetime
    ) -> None:
        """Read the vendor's books again and replace the vouchers dated in the job's range.

        The connectors read from the start (none offers a date window every vendor shares;
        UNCONFIRMED per vendor, see the README), and only the vouchers dated in the range,
        or stored in it (one the vendor moved out of it), are applied to the live books page
        by page, replaced by the vendor's id. At the end the vouchers still stored in the
        range that the vendor no longer listed leave, with their balances, in one
        transaction. Other periods and the connection's cursor stay as they are. A backfill
        interrupted by a kill starts its read over (replacing by id makes that harmless).
        """
        opened = await self._open_live(claimed, connector)
        target, import_id, provider = opened.target, opened.import_id, opened.provider
        master, cursor_kept, progress = opened.master, opened.cursor, _Progress()
        assert opened.backfill is not None
        first_day, last_day = opened.backfill
        async with self._db.transaction() as session:
            stored_in_range = set(
                await LedgerSyncStore(session).source_ids_between(
                    list(target.years.values()), first_day, last_day
                )
            )
        seen: set[str] = set()
        async for page in self._pages(connector, ""):
            inside = tuple(
                voucher
                for voucher in page.vouchers
                if first_day <= voucher.date <= last_day
                or voucher.external_id[:200] in stored_in_range
            )
            seen.update(voucher.external_id[:200] for voucher in inside)
            async with self._db.transaction() as session:
                await self._apply(
                    session,
                    target,
                    page.model_copy(update={"vouchers": inside}),
                    progress,
                    import_id=import_id,
                    provider=provider,
                )
                await SyncStateRepository(session).checkpoint(
                    import_id,
                    cursor="",
                    progress_lines=progress.lines,
                    counts=progress.counts(),
                    notices=progress.notices,
                    lease_expires_at=self._clock() + self._settings.lease,
                )
            if self.on_page is not None:
                await self.on_page(import_id, progress.lines)
        async with self._db.transaction() as session:
            store = LedgerSyncStore(session)
            year_ids = list(target.years.values())
            still = await store.source_ids_between(year_ids, first_day, last_day)
            gone = sorted(set(still) - seen)
            removed = await store.stored_lines(year_ids, gone)
            await store.delete_vouchers(year_ids, gone)
            delta = movement_delta(removed, [])
            await store.change_balances(
                {p: target.years[year_of(p, target.spans).start] for p in {k[0] for k in delta}},
                delta,
            )
            progress.removed += len(gone)
        await self._reconcile(connector, claimed.id, target.company_id, master)
        async with self._db.transaction() as session:
            job = await ImportJobRepository(session).get_for_update(claimed.id)
            assert job is not None
            live = await LedgerSyncStore(session).ledger.company_by_business_id(job.business_id)
            assert live is not None
            await self._complete(
                session,
                job,
                live,
                cursor=cursor_kept,
                progress=progress,
                outcome="replaced",
                started_at=started_at,
            )

    async def _reconcile(
        self,
        connector: LedgerConnector,
        import_id: uuid.UUID,
        company_id: uuid.UUID,
        master: _Master,
    ) -> None:
        """Compare our balances with the vendor's own at every closed-or-past period end.

        Only ledgers that report balances can be reconciled (``AccountBalanceSource``);
        for the others the import says ``not_available``. Every difference is listed on
        the job, per account and period, as the file imports list theirs.
        """
        if not isinstance(connector, AccountBalanceSource):
            return
        today = self._clock().date()
        ends = sorted({p.end for p in master.periods if p.end <= today})
        if not ends:
            return
        vendor = await self._patiently(lambda: connector.read_account_balances(ends))
        async with self._db.transaction() as session:
            movements = await LedgerSyncStore(session).account_movements(company_id)
            status, differences = reconcile_with_vendor(movements, vendor)
            job = await ImportJobRepository(session).get_for_update(import_id)
            assert job is not None
            job.reconciliation_status = status
            job.differences = [
                AccountDifferenceV1(
                    account=d.account,
                    opening=f"{d.opening:.2f}",
                    movements=f"{d.movements:.2f}",
                    computed_closing=f"{d.computed_closing:.2f}",
                    source_closing=f"{d.source_closing:.2f}",
                    difference=f"{d.difference:.2f}",
                    period=d.period.strftime("%Y-%m"),
                ).model_dump()
                for d in differences
            ]

    # ------------------------------------------------------------------ outcomes

    async def _complete(
        self,
        session: AsyncSession,
        job: ImportJob,
        company: Company,
        *,
        cursor: str,
        progress: _Progress,
        outcome: str,
        started_at: datetime,
    ) -> None:
        store = LedgerSyncStore(session)
        await store.carry_forward_openings(company.id)
        years = await store.ledger.fiscal_years(company.id)
        totals = await store.voucher_counts([year.id for year in years])
        accounts, objects = await store.chart_keys(company.id)
        dimensions = {dimension for dimension, _ in objects}
        now = self._clock()
        start = years[0].start if years else now.date()
        end = years[-1].end if years else now.date()
        periods = [p.strftime("%Y-%m") for p in periods_between(start, end)]
        job.outcome = outcome
        job.company_id = company.id
        job.fiscal_year_start, job.fiscal_year_end = start, end
        job.periods = periods
        job.counts = ImportCountsV1(
            accounts=len(accounts),
            dimensions=len(dimensions),
            objects=len(objects),
            vouchers=totals["vouchers"],
            lines=totals["voucher_lines"],
        ).model_dump() | {f"sync_{name}": value for name, value in progress.counts().items()}
        job.progress_lines = progress.lines
        job.reconciliation_status = job.reconciliation_status or "not_available"
        job.notices = progress.notices or None
        job.sync_cursor = None
        job.status = ImportStatus.COMPLETED
        job.lease_expires_at = None
        job.finished_at = now
        job.updated_at = now
        assert job.connection_id is not None
        state = await SyncStateRepository(session).get(job.connection_id, lock=True)
        assert state is not None
        state.cursor = cursor
        state.last_status = ImportStatus.COMPLETED.value
        state.last_finished_at = now
        state.last_completed_at = started_at
        state.last_counts = dict(job.counts)
        state.last_error = None
        # Flagged on the import (its notices), the connection and every report.
        state.warnings = [
            n["message"] for n in progress.notices if n["code"] == PAYROLL_NOT_VISIBLE
        ] or None
        if state.paused_reason is None:
            state.next_run_at = now + timedelta(minutes=state.interval_minutes)
        empty = ImportCountsV1(accounts=0, dimensions=0, objects=0, vouchers=0, lines=0)
        counts = ImportCountsV1.model_validate(
            {k: v for k, v in job.counts.items() if k in ImportCountsV1.model_fields}
        ) if job.counts else empty  # fmt: skip
        await self._outbox.add(
            session,
            ImportCompletedV1(
                import_id=job.id,
                connection_id=job.connection_id,
                business_id=job.business_id,
                company_name=company.name[:300] or job.business_id,
                provider=Provider(job.provider),
                outcome=outcome,  # type: ignore[arg-type]
                fiscal_year_start=start,
                fiscal_year_end=end,
                counts=counts,
                periods=tuple(periods),
                reconciliation_status=job.reconciliation_status,  # type: ignore[arg-type]
                differences=tuple(
                    AccountDifferenceV1.model_validate(d) for d in job.differences or ()
                ),
                notice_count=len(job.notices or ()),
            ),
            key=job.business_id,
            subject=str(job.id),
        )
        await self._outbox.add(
            session,
            ReportsReadyV1(
                import_id=job.id,
                business_id=job.business_id,
                fiscal_year_start=start,
                fiscal_year_end=end,
                periods=tuple(periods),
                reports=tuple(f"/v1/companies/{job.business_id}/{report}" for report in REPORTS),
            ),
            key=job.business_id,
            subject=str(job.id),
        )
        logger.info(
            "sync completed",
            extra={
                "import_id": str(job.id),
                "connection_id": str(job.connection_id),
                "mode": job.sync_mode,
                "outcome": outcome,
                "lines": progress.lines,
            },
        )

    async def _record_failure(
        self, session: AsyncSession, job: ImportJob, error: SyncFailedError
    ) -> None:
        now = self._clock()
        job.error_code = error.reason_code
        job.error_message = error.message[:2000]
        job.status = ImportStatus.FAILED
        job.lease_expires_at = None
        job.finished_at = now
        job.updated_at = now
        if job.connection_id is not None:
            state = await SyncStateRepository(session).get(job.connection_id, lock=True)
            if state is not None:
                state.last_status = ImportStatus.FAILED.value
                state.last_finished_at = now
                state.last_error = f"{error.reason_code}: {error.message}"[:2000]
                if error.pause:
                    state.paused_reason = error.message[:300]
                    state.next_run_at = None
                elif state.paused_reason is None:
                    state.next_run_at = now + timedelta(minutes=state.interval_minutes)
        await self._outbox.add(
            session,
            ImportFailedV1(
                import_id=job.id,
                connection_id=job.connection_id,
                business_id=job.business_id,
                provider=Provider(job.provider),
                reason_code=error.reason_code,
                message=error.message[:2000],
            ),
            key=job.business_id,
            subject=str(job.id),
        )
        logger.warning(
            "sync failed",
            extra={"import_id": str(job.id), "reason_code": error.reason_code},
        )


def _failure_of(error: ConnectorError) -> SyncFailedError:
    if isinstance(error, AuthenticationFailed):
        return SyncFailedError(
            "needs_reauth",
            f"the connection's credentials were refused ({error}); the schedule is paused "
            "until it is authorised again",
            pause=True,
        )
    if isinstance(error, AccessNotEnabled):
        return SyncFailedError(
            "access_not_enabled",
            f"the vendor's API is not enabled for this company ({error}); the schedule is "
            "paused until it is",
            pause=True,
        )
    if error.retryable:
        return SyncFailedError("vendor_unavailable", str(error))
    return SyncFailedError("vendor_error", str(error))


def _restore(job: ImportJob) -> _Progress:
    """The progress a resumed sync had committed: its counts and the notices of the pages
    read before it stopped (both are checkpointed with each page)."""
    counts = job.counts or {}
    return _Progress(
        vouchers=int(counts.get("vouchers_read", 0)),
        lines=int(counts.get("lines_written", 0)),
        removed=int(counts.get("vouchers_removed", 0)),
        pages=int(counts.get("pages", 0)),
        notices=[dict(notice) for notice in job.notices or ()],
    )


def _country(business_id: str, provider: str) -> str:
    return {
        Provider.NETVISOR.value: "FI",
        Provider.PROCOUNTOR.value: "FI",
        Provider.VISMA_NET.value: "NL",
        Provider.TWENTYFOUR_SEVEN_OFFICE.value: "NO",
    }.get(provider, "FI")
