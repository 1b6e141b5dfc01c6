"""All SQL of the ledger sync: sync states, vouchers replaced by the vendor's id, balance
changes, and the swap of a completed full read into the live books.

Everything runs in the caller's transaction (see ``services/ledger_sync.py`` for where
they are): a page's rows, its balance changes and its cursor commit together.
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    Table,
    and_,
    delete,
    func,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import TextClause
from sqlmodel import col

from ledgerlink.importer.domain.ledger import (
    AccountType,
    LedgerAccount,
    LedgerVoucher,
    PeriodMovements,
    period_of,
)
from ledgerlink.importer.domain.ledger_sync import (
    CARRIED_RESULT_ACCOUNT,
    CARRIED_RESULT_NAME,
    FiscalYearSpan,
    StoredLine,
)
from ledgerlink.importer.domain.reports import (
    chart_family,
    is_balance_sheet_account,
    is_profit_and_loss_account,
)
from ledgerlink.importer.storage.ledger_store import LedgerStore, LineRow, VoucherRow
from ledgerlink.importer.storage.models import (
    Account,
    Company,
    ComparisonBalance,
    Dimension,
    DimensionObject,
    FiscalYear,
    ImportJob,
    ImportStatus,
    LedgerPeriod,
    ObjectSourceBalance,
    PeriodBalance,
    SourceBalance,
    SyncState,
    Voucher,
    VoucherLine,
)

__all__ = ["LedgerSyncStore", "SyncStateRepository"]

_NO_AMOUNT = Decimal("0.00")


def _table(model: type[Any]) -> Table:
    table = model.__table__
    assert isinstance(table, Table)
    return table


@dataclass(frozen=True)
class _StoredKey:
    """A stored vendor voucher: its year, number, vendor id and date."""

    year_id: uuid.UUID
    voucher_no: int
    source_id: str
    date: date


def _pairs(objects: str) -> tuple[tuple[str, str], ...]:
    """``"1=100;2=7"`` -> ``(("1", "100"), ("2", "7"))`` (the stored dimension objects)."""
    return tuple(
        (pair.split("=", 1)[0], pair.split("=", 1)[1]) for pair in objects.split(";") if "=" in pair
    )


# The per-page look-ups of a sync on PostgreSQL. Written as a LATERAL probe per (year, id)
# or per (year, number), each fenced by LIMIT / OFFSET 0 so the planner cannot turn them
# into a join: ``fiscal_year_id = ANY(years) AND source_id = ANY(ids)`` was planned as a scan
# of every voucher of the years with the ids as a filter (PostgreSQL 15 prices a second
# array column of an index above that), and a plain join of the unnested ids as a hash join
# over the whole table, both O(company) per page, O(company^2) per import: the first import
# of a 300,000-line company spent 55 s of PostgreSQL CPU in this query alone, with or
# without fresh statistics. Probes keep a page at ~10 ms however large the company grows.
_KEYS_OF_SOURCE_IDS = text(
    """
    SELECT hit.fiscal_year_id, hit.voucher_no, hit.source_id, hit.date
    FROM unnest(CAST(:years AS uuid[])) AS y(id)
    CROSS JOIN unnest(CAST(:ids AS varchar[])) AS s(id)
    CROSS JOIN LATERAL (
        SELECT v.fiscal_year_id, v.voucher_no, v.source_id, v.date FROM vouchers AS v
        WHERE v.fiscal_year_id = y.id AND v.source_id = s.id
        OFFSET 0
    ) AS hit
    """
)
_LINES_OF_KEYS = text(
    """
    SELECT k.y, k.n, l.account, l.amount, l.objects
    FROM unnest(CAST(:years AS uuid[]), CAST(:numbers AS integer[])) AS k(y, n)
    CROSS JOIN LATERAL (
        SELECT account, amount, objects FROM voucher_lines
        WHERE fiscal_year_id = k.y AND voucher_no = k.n
        OFFSET 0
    ) AS l
    """
)


def _delete_by_keys(table: str) -> TextClause:
    """``DELETE`` from ``table`` (``vouchers`` or ``voucher_lines``) the rows of the given
    (year, number) keys, found by probe and deleted by tuple id (a TID scan)."""
    return text(
        f"""
        DELETE FROM {table} WHERE ctid = ANY(ARRAY(
            SELECT hit.ctid
            FROM unnest(CAST(:years AS uuid[]), CAST(:numbers AS integer[])) AS k(y, n)
            CROSS JOIN LATERAL (
                SELECT ctid FROM {table} WHERE fiscal_year_id = k.y AND voucher_no = k.n
                OFFSET 0
            ) AS hit
        ))
        """  # noqa: S608 - table is one of two constants
    )


_DELETE_LINES_OF_KEYS = _delete_by_keys("voucher_lines")
_DELETE_VOUCHERS_OF_KEYS = _delete_by_keys("vouchers")


def _stored_time(session: AsyncSession, moment: datetime) -> datetime:
    bind = session.bind
    if bind is not None and bind.dialect.name == "postgresql":
        return moment
    return moment.astimezone(UTC).replace(tzinfo=None)


class SyncStateRepository:
    """Sync states of connections (one row per connection synced over an API)."""

    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def get(self, connection_id: uuid.UUID, *, lock: bool = False) -> SyncState | None:
        """The connection's state; ``lock``: held until the transaction ends."""
        return await self._session.get(
            SyncState, connection_id, with_for_update=lock, populate_existing=lock
        )

    async def ensure(
        self, connection_id: uuid.UUID, *, business_id: str, provider: str, interval_minutes: int
    ) -> SyncState:
        """The connection's state, created (not scheduled yet) when it has none; locked."""
        state = await self.get(connection_id, lock=True)
        if state is None:
            state = SyncState(
                connection_id=connection_id,
                business_id=business_id,
                provider=provider,
                cursor="",
                interval_minutes=interval_minutes,
            )
            self._session.add(state)
            await self._session.flush()
        return state

    async def due(self, now: datetime, *, limit: int = 100) -> list[SyncState]:
        """Unpaused states whose next run is due and that have no sync queued or running.

        Locked (skipping rows another replica holds), so two schedulers never queue the
        same connection twice.
        """
        busy = select(col(ImportJob.connection_id)).where(
            col(ImportJob.status).in_((ImportStatus.QUEUED, ImportStatus.RUNNING)),
            col(ImportJob.sync_mode).is_not(None),
        )
        result = await self._session.execute(
            select(SyncState)
            .where(
                col(SyncState.paused_reason).is_(None),
                col(SyncState.next_run_at).is_not(None),
                col(SyncState.next_run_at) <= _stored_time(self._session, now),
                col(SyncState.connection_id).not_in(busy),
            )
            .order_by(col(SyncState.next_run_at))
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        return list(result.scalars().all())

    async def all(self, *, business_id: str | None = None) -> list[SyncState]:
        """Every state (of one business ID), by business ID."""
        statement = select(SyncState).order_by(col(SyncState.business_id))
        if business_id is not None:
            statement = statement.where(col(SyncState.business_id) == business_id)
        result = await self._session.execute(statement)
        return list(result.scalars().all())

    async def claim_next_sync(self, providers: Sequence[str], *, now: datetime) -> ImportJob | None:
        """The oldest runnable API sync, locked; one per connection at a time.

        Runnable: queued, or running with a lease that ran out (its runner died); never
        a job whose connection has another sync running under a live lease (another
        replica holds that connection).
        """
        stored_now = _stored_time(self._session, now)
        other = ImportJob.__table__.alias("other")  # type: ignore[attr-defined]
        held = (
            select(other.c.id)
            .where(
                other.c.connection_id == ImportJob.connection_id,
                other.c.id != ImportJob.id,
                other.c.status == ImportStatus.RUNNING.value,
                other.c.lease_expires_at >= stored_now,
            )
            .exists()
        )
        result = await self._session.execute(
            select(ImportJob)
            .where(
                col(ImportJob.provider).in_(providers),
                col(ImportJob.file_location).is_(None),
                or_(
                    col(ImportJob.status) == ImportStatus.QUEUED,
                    and_(
                        col(ImportJob.status) == ImportStatus.RUNNING,
                        col(ImportJob.lease_expires_at) < stored_now,
                    ),
                ),
                ~held,
            )
            .order_by(col(ImportJob.created_at))
            .limit(1)
            .with_for_update(skip_locked=True)
        )
        return result.scalar_one_or_none()

    async def active_sync(self, connection_id: uuid.UUID) -> ImportJob | None:
        """The connection's queued or running sync, if any."""
        result = await self._session.execute(
            select(ImportJob)
            .where(
                col(ImportJob.connection_id) == connection_id,
                col(ImportJob.sync_mode).is_not(None),
                col(ImportJob.status).in_((ImportStatus.QUEUED, ImportStatus.RUNNING)),
            )
            .order_by(col(ImportJob.created_at))
            .limit(1)
        )
        return result.scalar_one_or_none()

    async def checkpoint(
        self,
        import_id: uuid.UUID,
        *,
        cursor: str,
        progress_lines: int,
        counts: Mapping[str, int],
        lease_expires_at: datetime,
        notices: Sequence[Mapping[str, str | None]] = (),
    ) -> None:
        """A sync's cursor after a page, its progress and the notices collected so far
        (a resumed sync goes on with them), and its lease extended."""
        await self._session.execute(
            update(ImportJob)
            .where(col(ImportJob.id) == import_id)
            .values(
                sync_cursor=cursor,
                progress_lines=progress_lines,
                counts=dict(counts),
                notices=[dict(notice) for notice in notices] or None,
                lease_expires_at=lease_expires_at,
            )
        )


class LedgerSyncStore:
    """The accounting store as a sync writes it (vouchers by the vendor's id)."""

    def __init__(self, session: AsyncSession) -> None:
        self._session = session
        self.ledger = LedgerStore(session)

    async def fiscal_years(
        self, company_id: uuid.UUID, spans: Iterable[FiscalYearSpan], *, import_id: uuid.UUID,
        source_format: str,
    ) -> dict[date, uuid.UUID]:  # fmt: skip
        """Id of each year (by its start), created when the company lacks it."""
        existing = {year.start: year for year in await self.ledger.fiscal_years(company_id)}
        for span in spans:
            if span.start in existing:
                continue
            year = FiscalYear(
                company_id=company_id,
                start=span.start,
                end=span.end,
                import_id=import_id,
                content_hash="",
                source_format=source_format[:16],
            )
            self._session.add(year)
            existing[span.start] = year
        await self._session.flush()
        return {start: year.id for start, year in existing.items()}

    async def save_periods(
        self, company_id: uuid.UUID, periods: Sequence[tuple[date, date, str]]
    ) -> None:
        """Replace the company's periods and their open/closed state."""
        table = _table(LedgerPeriod)
        await self._session.execute(delete(table).where(table.c.company_id == company_id))
        if periods:
            await self._session.execute(
                table.insert(),
                [
                    {"company_id": company_id, "start": start, "end": end, "status": status}
                    for start, end, status in periods
                ],
            )

    async def periods(self, company_id: uuid.UUID) -> list[LedgerPeriod]:
        """The company's periods, oldest first."""
        result = await self._session.execute(
            select(LedgerPeriod)
            .where(col(LedgerPeriod.company_id) == company_id)
            .order_by(col(LedgerPeriod.start))
        )
        return list(result.scalars().all())

    async def chart_keys(self, company_id: uuid.UUID) -> tuple[set[str], set[tuple[str, str]]]:
        """The account numbers and (dimension, object) pairs the company's chart holds."""
        accounts = await self._session.execute(
            select(col(Account.number)).where(col(Account.company_id) == company_id)
        )
        objects = await self._session.execute(
            select(col(DimensionObject.dimension_id), col(DimensionObject.object_id)).where(
                col(DimensionObject.company_id) == company_id
            )
        )
        return {row[0] for row in accounts}, {(row[0], row[1]) for row in objects}

    async def _stored_keys(
        self, year_ids: Sequence[uuid.UUID], source_ids: Sequence[str]
    ) -> list[_StoredKey]:
        """Where these vendor vouchers are stored (PostgreSQL): one index probe per year
        and id, whatever the planner's statistics say (see :data:`_KEYS_OF_SOURCE_IDS`)."""
        keys: list[_StoredKey] = []
        unique = list(dict.fromkeys(source_ids))
        for start in range(0, len(unique), 1000):
            result = await self._session.execute(
                _KEYS_OF_SOURCE_IDS,
                {"years": list(year_ids), "ids": unique[start : start + 1000]},
            )
            keys.extend(_StoredKey(*row) for row in result)
        return keys

    async def existing_source_ids(
        self, year_ids: Sequence[uuid.UUID], source_ids: Sequence[str]
    ) -> list[str]:
        """Which of these vendor vouchers the company's years hold already.

        One index lookup per id (``ix_vouchers_fiscal_year_id_source_id``), sent as two
        array parameters on PostgreSQL: an ``IN`` list of a thousand ids cost more to compile
        and plan than the lookups. Most pages of a full read find none, and then the store
        neither reads old lines nor deletes (see :meth:`stored_lines`,
        :meth:`delete_vouchers`).
        """
        if not source_ids or not year_ids:
            return []
        vouchers = _table(Voucher)
        found: set[str] = set()
        if self.ledger.uses_copy:
            found.update(key.source_id for key in await self._stored_keys(year_ids, source_ids))
        else:
            for start in range(0, len(source_ids), 500):
                ids = list(source_ids[start : start + 500])
                result = await self._session.execute(
                    select(vouchers.c.source_id).where(
                        vouchers.c.fiscal_year_id.in_(year_ids), vouchers.c.source_id.in_(ids)
                    )
                )
                found.update(row[0] for row in result)
        return [source_id for source_id in dict.fromkeys(source_ids) if source_id in found]

    async def stored_lines(
        self, year_ids: Sequence[uuid.UUID], source_ids: Sequence[str]
    ) -> list[StoredLine]:
        """The stored lines of these vendor vouchers (to take out of the balances)."""
        if not source_ids or not year_ids:
            return []
        lines: list[StoredLine] = []
        if self.ledger.uses_copy:
            keys = await self._stored_keys(year_ids, source_ids)
            for start in range(0, len(keys), 1000):
                chunk = keys[start : start + 1000]
                day_of = {(key.year_id, key.voucher_no): key.date for key in chunk}
                result = await self._session.execute(
                    _LINES_OF_KEYS,
                    {
                        "years": [key.year_id for key in chunk],
                        "numbers": [key.voucher_no for key in chunk],
                    },
                )
                for year_id, number, account, amount, objects in result:
                    lines.append(
                        StoredLine(
                            day_of[(year_id, number)], account, Decimal(amount), _pairs(objects)
                        )
                    )
            return lines
        for start in range(0, len(source_ids), 1000):
            ids = list(source_ids[start : start + 1000])
            result = await self._session.execute(
                select(
                    col(Voucher.date),
                    col(VoucherLine.account),
                    col(VoucherLine.amount),
                    col(VoucherLine.objects),
                )
                .join(
                    VoucherLine,
                    and_(
                        col(VoucherLine.fiscal_year_id) == col(Voucher.fiscal_year_id),
                        col(VoucherLine.voucher_no) == col(Voucher.voucher_no),
                    ),
                )
                .where(
                    col(Voucher.fiscal_year_id).in_(year_ids),
                    col(Voucher.source_id).in_(ids),
                )
            )
            for day, account, amount, objects in result:
                lines.append(StoredLine(day, account, Decimal(amount), _pairs(objects)))
        return lines

    async def source_ids_between(
        self, year_ids: Sequence[uuid.UUID], first_day: date, last_day: date
    ) -> list[str]:
        """The vendor ids of the vouchers dated ``first_day`` to ``last_day`` (included)."""
        if not year_ids:
            return []
        result = await self._session.execute(
            select(col(Voucher.source_id)).where(
                col(Voucher.fiscal_year_id).in_(year_ids),
                col(Voucher.date) >= first_day,
                col(Voucher.date) <= last_day,
            )
        )
        return [row[0] for row in result if row[0]]

    async def delete_vouchers(
        self, year_ids: Sequence[uuid.UUID], source_ids: Sequence[str]
    ) -> None:
        """Remove these vendor vouchers and their lines from the company's years."""
        if not source_ids or not year_ids:
            return
        vouchers = _table(Voucher)
        lines = _table(VoucherLine)
        if self.ledger.uses_copy:
            stored = await self._stored_keys(year_ids, source_ids)
            for start in range(0, len(stored), 1000):
                chunk = stored[start : start + 1000]
                params = {
                    "years": [key.year_id for key in chunk],
                    "numbers": [key.voucher_no for key in chunk],
                }
                await self._session.execute(_DELETE_LINES_OF_KEYS, params)
                await self._session.execute(_DELETE_VOUCHERS_OF_KEYS, params)
            return
        for start in range(0, len(source_ids), 1000):
            ids = list(source_ids[start : start + 1000])
            keys = select(vouchers.c.fiscal_year_id, vouchers.c.voucher_no).where(
                vouchers.c.fiscal_year_id.in_(year_ids), vouchers.c.source_id.in_(ids)
            )
            found = (await self._session.execute(keys)).all()
            for year_id, number in found:
                await self._session.execute(
                    delete(lines).where(
                        lines.c.fiscal_year_id == year_id, lines.c.voucher_no == number
                    )
                )
            await self._session.execute(
                delete(vouchers).where(
                    vouchers.c.fiscal_year_id.in_(year_ids), vouchers.c.source_id.in_(ids)
                )
            )

    async def voucher_counts(self, year_ids: Sequence[uuid.UUID]) -> dict[str, int]:
        """``{"vouchers": n, "voucher_lines": n}`` over these years (two counting queries;
        the file imports' ``count_rows`` counts four tables per year)."""
        totals = {"vouchers": 0, "voucher_lines": 0}
        if not year_ids:
            return totals
        for model, name in ((Voucher, "vouchers"), (VoucherLine, "voucher_lines")):
            table = _table(model)
            counted = await self._session.scalar(
                select(func.count()).select_from(table).where(table.c.fiscal_year_id.in_(year_ids))
            )
            totals[name] = int(counted or 0)
        return totals

    async def last_voucher_numbers(self, year_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, int]:
        """The highest ``voucher_no`` of each year (0 for an empty one)."""
        numbers = dict.fromkeys(year_ids, 0)
        for year_id in year_ids:
            # One year at a time: an ungrouped max is one step down the primary key's index;
            # grouped over several years it read every voucher of them.
            number = await self._session.scalar(
                select(func.max(col(Voucher.voucher_no))).where(
                    col(Voucher.fiscal_year_id) == year_id
                )
            )
            numbers[year_id] = int(number or 0)
        return numbers

    async def insert_vouchers(
        self,
        vouchers: Sequence[tuple[uuid.UUID, LedgerVoucher]],
        numbers: dict[uuid.UUID, int],
    ) -> int:
        """Insert (year id, voucher) pairs numbered after ``numbers``; returns lines written."""
        voucher_rows: list[VoucherRow] = []
        line_rows: list[LineRow] = []
        for year_id, voucher in vouchers:
            numbers[year_id] = number = numbers.get(year_id, 0) + 1
            voucher_rows.append(
                (year_id, number, voucher.series[:32], voucher.number[:64], voucher.date,
                 period_of(voucher.date), voucher.text[:1000], voucher.source_id[:200])
            )  # fmt: skip
            for line_no, line in enumerate(voucher.lines, start=1):
                objects = ";".join(f"{d}={o}" for d, o in line.objects)
                line_rows.append(
                    (year_id, number, line_no, line.account, line.amount.quantize(Decimal("0.01")),
                     line.text[:1000], objects[:1000])
                )  # fmt: skip
        await self.ledger.bulk_insert_vouchers(voucher_rows)
        await self.ledger.bulk_insert_lines(line_rows)
        return len(line_rows)

    async def change_balances(
        self, year_of_period: Mapping[date, uuid.UUID], delta: PeriodMovements
    ) -> None:
        """Add ``delta`` to the per-period balances; rows that fall to zero are removed."""
        if not delta:
            return
        rows: list[dict[str, Any]] = [
            {
                "fiscal_year_id": year_of_period[period],
                "period": period,
                "account": account,
                "dimension_id": dimension_id,
                "object_id": object_id,
                "debit": debit,
                "credit": credit,
            }
            for (period, account, dimension_id, object_id), (debit, credit) in delta.items()
        ]
        table = _table(PeriodBalance)
        if not self.ledger.uses_copy:
            await self._change_balances_one_by_one(table, rows)
            rows = []
        if rows:
            # One statement, many parameter sets: compiled once (a VALUES list of thousands
            # of rows took most of a page's time to compile).
            statement = self.ledger._insert(PeriodBalance)
            statement = statement.on_conflict_do_update(
                index_elements=["fiscal_year_id", "period", "account", "dimension_id", "object_id"],
                set_={
                    "debit": table.c.debit + statement.excluded.debit,
                    "credit": table.c.credit + statement.excluded.credit,
                },
            )
            await self._session.execute(statement, rows)
        years = sorted(set(year_of_period.values()))
        await self._session.execute(
            delete(table).where(
                table.c.fiscal_year_id.in_(years),
                table.c.debit == _NO_AMOUNT,
                table.c.credit == _NO_AMOUNT,
            )
        )

    async def _change_balances_one_by_one(self, table: Table, rows: list[dict[str, Any]]) -> None:
        # SQLite keeps Money as decimal text: an UPDATE adding two of them would add
        # floats. Read, add as Decimal, write (dev-sized stores only).
        keys = ("fiscal_year_id", "period", "account", "dimension_id", "object_id")
        for row in rows:
            match = and_(*(table.c[key] == row[key] for key in keys))
            found = (await self._session.execute(select(table).where(match))).first()
            if found is None:
                await self._session.execute(table.insert().values(row))
                continue
            await self._session.execute(
                update(table)
                .where(match)
                .values(
                    debit=Decimal(found.debit) + row["debit"],
                    credit=Decimal(found.credit) + row["credit"],
                )
            )

    async def account_movements(
        self, company_id: uuid.UUID
    ) -> list[tuple[date, str, Decimal, Decimal]]:
        """(period, account, debit, credit) of every year of the company (totals only)."""
        years = [year.id for year in await self.ledger.fiscal_years(company_id)]
        if not years:
            return []
        result = await self._session.execute(
            select(
                col(PeriodBalance.period),
                col(PeriodBalance.account),
                col(PeriodBalance.debit),
                col(PeriodBalance.credit),
            ).where(
                col(PeriodBalance.fiscal_year_id).in_(years), col(PeriodBalance.dimension_id) == ""
            )
        )
        return [(p, a, Decimal(d), Decimal(c)) for p, a, d, c in result]

    async def carry_forward_openings(self, company_id: uuid.UUID) -> int:
        """Each later year's opening balances: the balance-sheet accounts' closing of the
        year before, and the earlier years' P&L result in equity (vendors' APIs give
        movements, not the opening balances a file has, whose equity holds that result).

        P&L accounts open at zero; their results of all earlier years open on
        :data:`CARRIED_RESULT_ACCOUNT`, so a later year's balance sheet balances as a
        file import's does. Returns the balance rows written.
        """
        years = await self.ledger.fiscal_years(company_id)
        company = await self.ledger.company(company_id)
        family = chart_family(company.chart, company.country) if company else "BAS"
        typed = await self._session.execute(
            select(col(Account.number), col(Account.account_type)).where(
                col(Account.company_id) == company_id
            )
        )
        kinds: dict[str, str | None] = {str(number): kind for number, kind in typed}

        def side(account: str) -> str | None:
            kind = kinds.get(account)
            if kind in ("asset", "liability"):
                return "balance"
            if kind in ("revenue", "expense"):
                return "result"
            # No type from the vendor: the account class decides (as the reports do).
            if is_profit_and_loss_account(account, family):
                return "result"
            return "balance" if is_balance_sheet_account(account) else None

        table = _table(SourceBalance)
        balances: dict[str, Decimal] = {}
        written = 0
        if len(years) > 1:
            await self.ledger.save_chart(
                company_id,
                [LedgerAccount(CARRIED_RESULT_ACCOUNT, CARRIED_RESULT_NAME, AccountType.LIABILITY)],
                [],
                [],
            )
        for previous, year in itertools.pairwise(years):
            moved = await self._session.execute(
                # Summed here, as Decimal: SQLite would add its decimal text as floats.
                select(
                    col(PeriodBalance.account),
                    col(PeriodBalance.debit),
                    col(PeriodBalance.credit),
                ).where(
                    col(PeriodBalance.fiscal_year_id) == previous.id,
                    col(PeriodBalance.dimension_id) == "",
                )
            )
            for account, debit, credit in moved:
                where = side(account)
                if where is None:
                    continue
                key = account if where == "balance" else CARRIED_RESULT_ACCOUNT
                balances[key] = balances.get(key, _NO_AMOUNT) + Decimal(debit) - Decimal(credit)
            await self._session.execute(delete(table).where(table.c.fiscal_year_id == year.id))
            rows = [
                (year.id, account, amount.quantize(_NO_AMOUNT), None)
                for account, amount in sorted(balances.items())
                if amount
            ]
            await self.ledger._bulk(
                SourceBalance, ("fiscal_year_id", "account", "opening", "closing"), rows
            )
            written += len(rows)
        return written

    async def swap_in(self, staging: Company, business_id: str) -> Company:
        """Make ``staging`` the company ``business_id``: the live books go, at once.

        The live company's vouchers, lines, years (with their balances), chart and periods
        are deleted and the staging company takes its business ID, in the caller's
        transaction: readers see the old books or the new, never a mix.
        """
        live = await self.ledger.company_by_business_id(business_id)
        if live is not None:
            await self.delete_company(live.id)
        await self._session.execute(
            update(Company)
            .where(col(Company.id) == staging.id)
            .values(business_id=business_id, updated_at=datetime.now(UTC))
        )
        await self._session.refresh(staging)
        return staging

    async def delete_company(self, company_id: uuid.UUID) -> None:
        """A company and everything it holds (a replaced live one, or abandoned staging)."""
        years = [year.id for year in await self.ledger.fiscal_years(company_id)]
        if years:
            for model in (
                VoucherLine,
                Voucher,
                PeriodBalance,
                SourceBalance,
                ObjectSourceBalance,
                ComparisonBalance,
            ):
                table = _table(model)
                await self._session.execute(delete(table).where(table.c.fiscal_year_id.in_(years)))
            years_table = _table(FiscalYear)
            await self._session.execute(delete(years_table).where(years_table.c.id.in_(years)))
        for owned in (DimensionObject, Dimension, Account, LedgerPeriod):
            table = _table(owned)
            await self._session.execute(delete(table).where(table.c.company_id == company_id))
        await self._session.execute(delete(Company).where(col(Company.id) == company_id))
