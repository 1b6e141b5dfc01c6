"""The few queries reports need: the chart, source openings and per-period turnover.

Reports read ``period_balances`` (a handful of rows per account and period, kept at
import), never the voucher lines, so their cost does not grow with the ledger.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime
from decimal import Decimal

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from ledgerlink.importer.domain.reports import AccountInfo, Turnover
from ledgerlink.importer.storage.models import (
    Account,
    Company,
    ComparisonBalance,
    FiscalYear,
    ImportJob,
    ObjectSourceBalance,
    PeriodBalance,
    SourceBalance,
    SyncState,
)
from ledgerlink.shared.db import as_utc

_ZERO = Decimal(0)


class ReportStore:
    """Read-only queries over a company's books."""

    def __init__(self, session: AsyncSession) -> None:
        self._session = session
        self._exact_sums = session.bind is not None and session.bind.dialect.name == "postgresql"

    async def company(self, business_id: str) -> Company | None:
        """The company with this business ID."""
        result = await self._session.execute(
            select(Company).where(col(Company.business_id) == business_id)
        )
        return result.scalar_one_or_none()

    async def data_as_of(self, business_id: str, fiscal_year: FiscalYear) -> datetime | None:
        """How current the books are: when the last completed API sync began reading, or
        when the import holding ``fiscal_year`` finished (a file is as of its import)."""
        synced = await self._session.execute(
            select(func.max(col(SyncState.last_completed_at))).where(
                col(SyncState.business_id) == business_id
            )
        )
        moment = synced.scalar_one_or_none()
        if moment is None:
            imported = await self._session.execute(
                select(col(ImportJob.finished_at)).where(col(ImportJob.id) == fiscal_year.import_id)
            )
            moment = imported.scalar_one_or_none()
        return None if moment is None else as_utc(moment)

    async def sync_warnings(self, business_id: str) -> list[str]:
        """What the company's last completed syncs say the books lack."""
        result = await self._session.execute(
            select(col(SyncState.warnings)).where(col(SyncState.business_id) == business_id)
        )
        return [warning for warnings in result.scalars() for warning in warnings or ()]

    async def fiscal_years(self, company_id: uuid.UUID) -> list[FiscalYear]:
        """The company's fiscal years, oldest first."""
        result = await self._session.execute(
            select(FiscalYear)
            .where(col(FiscalYear.company_id) == company_id)
            .order_by(col(FiscalYear.start))
        )
        return list(result.scalars().all())

    async def accounts(self, company_id: uuid.UUID) -> dict[str, AccountInfo]:
        """The company's chart."""
        result = await self._session.execute(
            select(col(Account.number), col(Account.name), col(Account.account_type)).where(
                col(Account.company_id) == company_id
            )
        )
        return {number: AccountInfo(number, name, kind) for number, name, kind in result.all()}

    async def source_openings(self, fiscal_year_id: uuid.UUID) -> dict[str, Decimal]:
        """Opening balances the source reported for the year (accounts that have one)."""
        result = await self._session.execute(
            select(col(SourceBalance.account), col(SourceBalance.opening)).where(
                col(SourceBalance.fiscal_year_id) == fiscal_year_id,
                col(SourceBalance.opening).is_not(None),
            )
        )
        return {account: amount for account, amount in result.all() if amount is not None}

    async def object_openings(
        self, fiscal_year_id: uuid.UUID, dimension_id: str, object_id: str
    ) -> dict[str, Decimal]:
        """Opening balances the source reported for one object (SIE #OIB), per account."""
        result = await self._session.execute(
            select(col(ObjectSourceBalance.account), col(ObjectSourceBalance.opening)).where(
                col(ObjectSourceBalance.fiscal_year_id) == fiscal_year_id,
                col(ObjectSourceBalance.dimension_id) == dimension_id,
                col(ObjectSourceBalance.object_id) == object_id,
                col(ObjectSourceBalance.opening).is_not(None),
            )
        )
        return {account: amount for account, amount in result.all() if amount is not None}

    async def comparison_closings(self, fiscal_year_id: uuid.UUID) -> dict[str, Decimal]:
        """The previous year's closing balance (or result) per account, as the source gave."""
        result = await self._session.execute(
            select(col(ComparisonBalance.account), col(ComparisonBalance.closing)).where(
                col(ComparisonBalance.fiscal_year_id) == fiscal_year_id,
                col(ComparisonBalance.closing).is_not(None),
            )
        )
        return {account: amount for account, amount in result.all() if amount is not None}

    async def turnover(
        self,
        fiscal_year_id: uuid.UUID,
        first_period: date,
        last_period: date,
        *,
        dimension_id: str = "",
        object_id: str = "",
    ) -> dict[str, Turnover]:
        """Each account's debit and credit turnover over the periods, in total or per object."""
        conditions = (
            col(PeriodBalance.fiscal_year_id) == fiscal_year_id,
            col(PeriodBalance.period) >= first_period,
            col(PeriodBalance.period) <= last_period,
            col(PeriodBalance.dimension_id) == dimension_id,
            col(PeriodBalance.object_id) == object_id,
        )
        if self._exact_sums:
            # NUMERIC sums are exact on PostgreSQL: let it aggregate.
            summed = await self._session.execute(
                select(
                    col(PeriodBalance.account),
                    func.sum(col(PeriodBalance.debit)),
                    func.sum(col(PeriodBalance.credit)),
                )
                .where(*conditions)
                .group_by(col(PeriodBalance.account))
            )
            return {
                account: Turnover(Decimal(debit), Decimal(credit))
                for account, debit, credit in summed.all()
            }
        # SQLite keeps amounts as decimal text; its SUM would go through floats.
        rows = await self._session.execute(
            select(
                col(PeriodBalance.account), col(PeriodBalance.debit), col(PeriodBalance.credit)
            ).where(*conditions)
        )
        totals: dict[str, list[Decimal]] = {}
        for account, debit, credit in rows.all():
            pair = totals.setdefault(account, [_ZERO, _ZERO])
            pair[0] += debit
            pair[1] += credit
        return {account: Turnover(d, c) for account, (d, c) in totals.items()}
