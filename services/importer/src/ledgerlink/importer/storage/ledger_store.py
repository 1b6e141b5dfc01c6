"""All SQL that writes and reads a company's books (the accounting store).

Writes run inside the caller's transaction: an import opens one, replaces a fiscal
year through :class:`LedgerStore` and commits once, so a failed or killed import leaves
nothing behind. Bulk rows go through PostgreSQL's ``COPY`` (asyncpg's binary copy on the
session's own connection, hence inside the same transaction); SQLite, the embedded
default, takes batched ``executemany`` inserts.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from asyncpg.pgproto import pgproto
from sqlalchemy import Table, delete, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from ledgerlink.importer.domain.ledger import (
    ComparisonBalance as ComparisonBalanceItem,
)
from ledgerlink.importer.domain.ledger import (
    LedgerAccount,
    LedgerCompany,
    LedgerDimension,
    LedgerObject,
    LedgerVoucher,
    ObjectBalance,
    PeriodMovements,
)
from ledgerlink.importer.domain.ledger import SourceBalance as SourceBalanceItem
from ledgerlink.importer.storage.models import (
    Account,
    Company,
    ComparisonBalance,
    Dimension,
    DimensionObject,
    FiscalYear,
    ObjectSourceBalance,
    PeriodBalance,
    SourceBalance,
    Voucher,
    VoucherLine,
)

VoucherRow = tuple[uuid.UUID, int, str, str, date, date, str, str]
LineRow = tuple[uuid.UUID, int, int, str, Decimal, str, str]

_VOUCHER_COLUMNS = ("fiscal_year_id", "voucher_no", "series", "number", "date", "period", "text",
                    "source_id")  # fmt: skip
_LINE_COLUMNS = ("fiscal_year_id", "voucher_no", "line_no", "account", "amount", "text",
                 "objects")  # fmt: skip
_BALANCE_COLUMNS = ("fiscal_year_id", "period", "account", "dimension_id", "object_id", "debit",
                    "credit")  # fmt: skip


@dataclass
class LedgerRows:
    """One batch of voucher and line rows, shaped and truncated as the store keeps them."""

    vouchers: list[VoucherRow] = field(default_factory=list)
    lines: list[LineRow] = field(default_factory=list)
    #: True for the file's last batch.
    done: bool = False


class LedgerRowBuilder:
    """Turns a fiscal year's vouchers into rows (pure: runs in the import's worker thread).

    Vouchers are numbered in the order they come (``voucher_no``, the key lines refer
    to); texts are cut to their column sizes, as the store's tables define them.
    """

    def __init__(self, fiscal_year_id: uuid.UUID) -> None:
        self.fiscal_year_id = _copy_uuid(fiscal_year_id)
        self._voucher_no = 0
        #: The ``objects`` column of a line, by its (repeating) object list.
        self._objects_text: dict[tuple[tuple[str, str], ...], str] = {(): ""}

    def add(self, voucher: LedgerVoucher, rows: LedgerRows) -> None:
        """Append ``voucher`` and its lines to ``rows``."""
        year = self.fiscal_year_id
        self._voucher_no += 1
        number = self._voucher_no
        rows.vouchers.append(
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
        append = rows.lines.append
        known = self._objects_text
        for line_no, line in enumerate(voucher.lines, start=1):
            objects = known.get(line.objects)
            if objects is None:
                if len(known) >= 4096:
                    known.clear()
                    known[()] = ""
                objects = known[line.objects] = ";".join(f"{d}={o}" for d, o in line.objects)[:1000]
            text = line.text
            append((year, number, line_no, line.account, line.amount,
                    text[:1000] if len(text) > 1000 else text, objects))  # fmt: skip


def _copy_uuid(value: uuid.UUID) -> uuid.UUID:
    """``value`` as asyncpg's own UUID (a :class:`uuid.UUID`, equal and hashing alike).

    Every row of a year carries the same ``fiscal_year_id``; asyncpg's binary COPY copies
    the bytes of its own UUID type, but calls ``.bytes`` (a Python property) on every
    other UUID of every row: 10-15% of the COPY's CPU, on the event loop's thread.
    It is a subclass of :class:`uuid.UUID`; only code that looks up the exact type (dlt's
    type mapping, in the benchmark) needs a plain one.
    """
    fast: uuid.UUID = pgproto.UUID(value.bytes)
    return fast


def _table(model: type[Any]) -> Table:
    table = model.__table__
    assert isinstance(table, Table)
    return table


class LedgerStore:
    """Companies, charts and fiscal years; bulk voucher and balance rows."""

    def __init__(self, session: AsyncSession) -> None:
        self._session = session
        self._dialect = session.bind.dialect.name if session.bind else "postgresql"

    @contextlib.asynccontextmanager
    async def savepoint(self, wanted: bool = True) -> AsyncIterator[None]:
        """A savepoint around the block (when ``wanted``): an error undoes just the block."""
        if not wanted:
            yield
            return
        async with self._session.begin_nested():
            yield

    @property
    def uses_copy(self) -> bool:
        """Whether bulk rows go through COPY (PostgreSQL) rather than inserts."""
        return self._dialect == "postgresql"

    def _insert(self, model: type[Any]) -> Any:
        table = _table(model)
        return postgresql.insert(table) if self.uses_copy else sqlite.insert(table)

    async def company_by_business_id(self, business_id: str) -> Company | None:
        """The company with this business ID, if its books were imported."""
        result = await self._session.execute(
            select(Company).where(col(Company.business_id) == business_id)
        )
        return result.scalar_one_or_none()

    async def save_company(self, facts: LedgerCompany) -> Company:
        """Insert the company or update its name, currency and chart; locks its row."""
        now = datetime.now(UTC)
        statement = (
            self._insert(Company)
            .values(
                id=uuid.uuid4(),
                business_id=facts.business_id,
                country=facts.country,
                name=facts.name[:300],
                currency=facts.currency,
                chart=facts.chart[:32],
                created_at=now,
                updated_at=now,
            )
            .on_conflict_do_update(
                index_elements=["business_id"],
                set_={
                    "name": facts.name[:300],
                    "currency": facts.currency,
                    "chart": facts.chart[:32],
                    "updated_at": now,
                },
            )
        )
        await self._session.execute(statement)
        result = await self._session.execute(
            select(Company)
            .where(col(Company.business_id) == facts.business_id)
            .with_for_update()
            .execution_options(populate_existing=True)
        )
        return result.scalar_one()

    async def fiscal_year(self, company_id: uuid.UUID, start: date) -> FiscalYear | None:
        """The company's fiscal year starting on ``start``, locked for this transaction."""
        result = await self._session.execute(
            select(FiscalYear)
            .where(col(FiscalYear.company_id) == company_id, col(FiscalYear.start) == start)
            .with_for_update()
            .execution_options(populate_existing=True)
        )
        return result.scalar_one_or_none()

    async def fiscal_years(self, company_id: uuid.UUID) -> list[FiscalYear]:
        """The company's fiscal years, oldest first."""
        result = await self._session.execute(
            select(FiscalYear).where(FiscalYear.company_id == company_id).order_by(FiscalYear.start)  # type: ignore[arg-type]
        )
        return list(result.scalars().all())

    async def replace_fiscal_year(
        self,
        company: Company,
        facts: LedgerCompany,
        *,
        import_id: uuid.UUID,
        content_hash: str,
    ) -> tuple[FiscalYear, bool]:
        """Empty (or create) the fiscal year ``facts`` holds; True when it held data.

        The year's vouchers, lines and balances are deleted; the caller inserts the new
        ones in the same transaction, so readers see the old year or the new, never a mix.
        """
        year = await self.fiscal_year(company.id, facts.fiscal_year_start)
        replaced = year is not None
        if year is None:
            year = FiscalYear(
                company_id=company.id,
                start=facts.fiscal_year_start,
                end=facts.fiscal_year_end,
                import_id=import_id,
                content_hash=content_hash,
                source_format=facts.source_format.value,
                source_generated_on=facts.generated_on,
                source_sie_type=facts.sie_type,
            )
            self._session.add(year)
            await self._session.flush()
            return year, False
        for model in (
            VoucherLine,
            Voucher,
            PeriodBalance,
            SourceBalance,
            ObjectSourceBalance,
            ComparisonBalance,
        ):
            table = _table(model)
            await self._session.execute(delete(table).where(table.c.fiscal_year_id == year.id))
        year.end = facts.fiscal_year_end
        year.import_id = import_id
        year.content_hash = content_hash
        year.source_format = facts.source_format.value
        year.source_generated_on = facts.generated_on
        year.source_sie_type = facts.sie_type
        await self._session.flush()
        return year, replaced

    async def save_chart(
        self,
        company_id: uuid.UUID,
        accounts: Iterable[LedgerAccount],
        dimensions: Iterable[LedgerDimension],
        objects: Iterable[LedgerObject],
    ) -> None:
        """Upsert the company's accounts, dimensions and objects (kept across years)."""
        account_rows = [
            {
                "company_id": company_id,
                "number": a.number,
                "name": a.name[:300],
                "account_type": a.account_type.value if a.account_type else None,
                "standard_code": a.standard_code,
                "sru_code": a.sru_code,
            }
            for a in accounts
        ]
        await self._upsert(
            Account, account_rows, ["company_id", "number"],
            ["name", "account_type", "standard_code", "sru_code"],
        )  # fmt: skip
        dimension_rows = [
            {
                "company_id": company_id,
                "dimension_id": d.dimension_id,
                "name": d.name[:300],
                "kind": d.kind.value,
            }
            for d in dimensions
        ]
        await self._upsert(
            Dimension, dimension_rows, ["company_id", "dimension_id"], ["name", "kind"]
        )
        object_rows = [
            {
                "company_id": company_id,
                "dimension_id": o.dimension_id,
                "object_id": o.object_id,
                "name": o.name[:300],
            }
            for o in objects
        ]
        await self._upsert(
            DimensionObject, object_rows, ["company_id", "dimension_id", "object_id"], ["name"]
        )

    async def _upsert(
        self, model: type[Any], rows: list[dict[str, Any]], keys: list[str], updates: list[str]
    ) -> None:
        for start in range(0, len(rows), 1000):
            batch = rows[start : start + 1000]
            statement = self._insert(model).values(batch)
            statement = statement.on_conflict_do_update(
                index_elements=keys, set_={name: statement.excluded[name] for name in updates}
            )
            await self._session.execute(statement)

    async def write_rows(self, rows: LedgerRows) -> None:
        """Insert one batch of voucher and line rows."""
        await self.bulk_insert_vouchers(rows.vouchers)
        await self.bulk_insert_lines(rows.lines)

    async def copy_text_rows(self, vouchers: memoryview, lines: memoryview) -> None:
        """Insert voucher and line rows given as ``COPY ... (FORMAT text)`` data (PostgreSQL).

        The columns are :class:`LedgerRowBuilder`'s, in its order; the import's worker
        process encodes them (:class:`ledgerlink.importer.services.import_worker.CopyEncoder`).
        """
        assert self.uses_copy, "COPY data needs PostgreSQL"
        connection = await self._session.connection()
        raw = await connection.get_raw_connection()
        driver = raw.driver_connection
        assert driver is not None
        for table, columns, data in (
            (_table(Voucher), _VOUCHER_COLUMNS, vouchers),
            (_table(VoucherLine), _LINE_COLUMNS, lines),
        ):
            if len(data):
                # A memoryview: asyncpg takes bytes for a file name.
                await driver.copy_to_table(
                    table.name, source=data, columns=list(columns), format="text"
                )

    async def company(self, company_id: uuid.UUID) -> Company | None:
        """The company with this id."""
        return await self._session.get(Company, company_id)

    async def bulk_insert_vouchers(self, rows: Sequence[VoucherRow]) -> None:
        """Insert voucher rows (``fiscal_year_id, voucher_no, series, number, date, ...``)."""
        await self._bulk(Voucher, _VOUCHER_COLUMNS, rows)

    async def bulk_insert_lines(self, rows: Sequence[LineRow]) -> None:
        """Insert line rows (``fiscal_year_id, voucher_no, line_no, account, amount, ...``)."""
        await self._bulk(VoucherLine, _LINE_COLUMNS, rows)

    async def save_period_balances(
        self, fiscal_year_id: uuid.UUID, movements: PeriodMovements
    ) -> int:
        """Store each (period, account[, object]) turnover; returns the rows written."""
        rows = [
            (fiscal_year_id, period, account, dimension_id, object_id, debit, credit)
            for (period, account, dimension_id, object_id), (debit, credit) in movements.items()
        ]
        await self._bulk(PeriodBalance, _BALANCE_COLUMNS, rows)
        return len(rows)

    async def save_source_balances(
        self, fiscal_year_id: uuid.UUID, balances: Iterable[SourceBalanceItem]
    ) -> None:
        """Store the opening and closing balances the source reported."""
        rows = [(fiscal_year_id, b.account, b.opening, b.closing) for b in balances]
        await self._bulk(SourceBalance, ("fiscal_year_id", "account", "opening", "closing"), rows)

    async def save_object_balances(
        self, fiscal_year_id: uuid.UUID, balances: Iterable[ObjectBalance]
    ) -> None:
        """Store the per-object opening and closing balances the source reported."""
        rows = [
            (fiscal_year_id, b.account, b.dimension_id, b.object_id[:64], b.opening, b.closing)
            for b in balances
        ]
        columns = ("fiscal_year_id", "account", "dimension_id", "object_id", "opening", "closing")
        await self._bulk(ObjectSourceBalance, columns, rows)

    async def save_comparison_balances(
        self, fiscal_year_id: uuid.UUID, balances: Iterable[ComparisonBalanceItem]
    ) -> None:
        """Store the previous year's balances the source reported (the comparison year)."""
        rows = [(fiscal_year_id, b.account, b.opening, b.closing) for b in balances]
        await self._bulk(
            ComparisonBalance, ("fiscal_year_id", "account", "opening", "closing"), rows
        )

    async def _bulk(
        self, model: type[Any], columns: Sequence[str], rows: Sequence[tuple[Any, ...]]
    ) -> None:
        if not rows:
            return
        table = _table(model)
        if self.uses_copy:
            connection = await self._session.connection()
            raw = await connection.get_raw_connection()
            driver = raw.driver_connection
            assert driver is not None
            await driver.copy_records_to_table(table.name, records=rows, columns=list(columns))
            return
        await self._session.execute(
            table.insert(), [dict(zip(columns, row, strict=True)) for row in rows]
        )

    async def count_rows(self, fiscal_year_id: uuid.UUID) -> dict[str, int]:
        """Rows the fiscal year holds per table (for checks and tests)."""
        counts: dict[str, int] = {}
        for model in (Voucher, VoucherLine, PeriodBalance, SourceBalance):
            table = _table(model)
            result = await self._session.execute(
                select(func.count())
                .select_from(table)
                .where(table.c.fiscal_year_id == fiscal_year_id)
            )
            counts[table.name] = int(result.scalar_one())
        return counts
