"""Reports of a company's imported books: which year and periods, then the figures."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal

from sqlalchemy.ext.asyncio import AsyncSession

from ledgerlink.importer.domain.reports import (
    AccountInfo,
    PeriodRangeError,
    Statement,
    TrialBalance,
    Turnover,
    balance_sheet,
    chart_family,
    is_profit_and_loss_account,
    parse_period_end,
    parse_period_start,
    period_end,
    profit_and_loss,
    trial_balance,
)
from ledgerlink.importer.storage.models import Company, FiscalYear
from ledgerlink.importer.storage.report_store import ReportStore

_ZERO = Decimal(0)


class CompanyNotFoundError(LookupError):
    """No books were imported for this business ID."""


@dataclass(frozen=True)
class ReportScope:
    """The company, its fiscal year, and the periods a report covers."""

    company: Company
    fiscal_year: FiscalYear
    first_period: date
    last_period: date
    #: How current the books are (the last completed sync, or the file's import).
    data_as_of: datetime | None = None
    #: What the books are known to lack (e.g. payroll the vendor hid from the connection).
    warnings: tuple[str, ...] = ()

    @property
    def to_date(self) -> date:
        return period_end(self.last_period)


@dataclass(frozen=True)
class TrialBalanceReport:
    scope: ReportScope
    dimension_id: str | None
    object_id: str | None
    report: TrialBalance


@dataclass(frozen=True)
class StatementReport:
    scope: ReportScope
    statement: Statement


class ReportService:
    """Builds reports from the store; raises on unknown companies and bad ranges."""

    def __init__(self, session: AsyncSession) -> None:
        self._store = ReportStore(session)

    async def scope(self, business_id: str, start: str | None, end: str | None) -> ReportScope:
        """Resolve ``from``/``to`` (periods or dates; both optional) within one fiscal year.

        No ``to``: the last period of the latest fiscal year. No ``from``: the first
        period of the fiscal year ``to`` is in.
        """
        company = await self._store.company(business_id)
        if company is None:
            raise CompanyNotFoundError(f"no books have been imported for business ID {business_id}")
        years = await self._store.fiscal_years(company.id)
        if not years:
            raise CompanyNotFoundError(f"no fiscal year has been imported for {business_id}")
        if end:
            last = parse_period_end(end, "to")
            found = next((y for y in years if y.start.replace(day=1) <= last <= y.end), None)
            if found is None:
                raise PeriodRangeError(f"to={end} is in no imported fiscal year ({_years(years)})")
            year = found
        else:
            # The latest year's last period, whatever the stored year says: a year stored
            # before impossible years were refused (its end before its start) still
            # answers, over its first period, rather than refusing every default report.
            year = years[-1]
            last = max(year.end, year.start).replace(day=1)
        first = parse_period_start(start, "from") if start else year.start.replace(day=1)
        if first > last:
            raise PeriodRangeError(f"from={start} is after to={end}")
        if first < year.start.replace(day=1):
            raise PeriodRangeError(
                f"from={start} and to={end or last.strftime('%Y-%m')} are in different fiscal "
                f"years; a report covers periods of one fiscal year ({_years(years)})"
            )
        as_of = await self._store.data_as_of(business_id, year)
        warnings = tuple(await self._store.sync_warnings(business_id))
        return ReportScope(company, year, first, last, as_of, warnings)

    async def _opening(
        self, scope: ReportScope, *, dimension_id: str = "", object_id: str = ""
    ) -> dict[str, Decimal]:
        """Balances at the start of ``first_period``: source opening + earlier movements.

        Per object, the opening is the one the source gave (SIE ``#OIB``; none in most
        files) plus the object's movements in the year's earlier periods.
        """
        year = scope.fiscal_year
        if dimension_id:
            opening = await self._store.object_openings(year.id, dimension_id, object_id)
        else:
            opening = dict(await self._store.source_openings(year.id))
        year_first = year.start.replace(day=1)
        if scope.first_period > year_first:
            before = await self._store.turnover(
                year.id,
                year_first,
                _previous(scope.first_period),
                dimension_id=dimension_id,
                object_id=object_id,
            )
            for account, moved in before.items():
                opening[account] = opening.get(account, _ZERO) + moved.net
        return opening

    async def trial_balance(
        self,
        business_id: str,
        start: str | None,
        end: str | None,
        *,
        dimension_id: str | None = None,
        object_id: str | None = None,
    ) -> TrialBalanceReport:
        """Each account's opening, debit/credit turnover and closing over the periods."""
        if (dimension_id is None) != (object_id is None):
            raise PeriodRangeError("dimension and object must be given together")
        scope = await self.scope(business_id, start, end)
        filters = {"dimension_id": dimension_id or "", "object_id": object_id or ""}
        opening = await self._opening(scope, **filters)
        turnover = await self._store.turnover(
            scope.fiscal_year.id, scope.first_period, scope.last_period, **filters
        )
        accounts = await self._store.accounts(scope.company.id)
        return TrialBalanceReport(
            scope, dimension_id, object_id, trial_balance(accounts, opening, turnover)
        )

    async def profit_and_loss(
        self, business_id: str, start: str | None, end: str | None
    ) -> StatementReport:
        """P&L for the periods and for the fiscal year to the last of them."""
        scope = await self.scope(business_id, start, end)
        year = scope.fiscal_year
        period = await self._store.turnover(year.id, scope.first_period, scope.last_period)
        to_date = await self._store.turnover(year.id, year.start.replace(day=1), scope.last_period)
        accounts = await self._store.accounts(scope.company.id)
        previous = await self._store.comparison_closings(year.id)
        family = chart_family(scope.company.chart, scope.company.country)
        statement = profit_and_loss(family, accounts, _net(period), _net(to_date), previous or None)
        return StatementReport(scope, statement)

    async def balance_sheet(self, business_id: str, as_of: str | None) -> StatementReport:
        """Balance sheet at the end of the period ``as_of`` (default: latest year end)."""
        scope = await self.scope(business_id, None, as_of)
        year = scope.fiscal_year
        opening = dict(await self._store.source_openings(year.id))
        moved = await self._store.turnover(year.id, year.start.replace(day=1), scope.last_period)
        closing = dict(opening)
        for account, turnover in moved.items():
            closing[account] = closing.get(account, _ZERO) + turnover.net
        family = chart_family(scope.company.chart, scope.company.country)
        accounts: dict[str, AccountInfo] = await self._store.accounts(scope.company.id)

        def result_of(balances: dict[str, Decimal]) -> Decimal:
            return -sum(
                (
                    amount
                    for account, amount in balances.items()
                    if is_profit_and_loss_account(account, family, accounts.get(account))
                ),
                _ZERO,
            )

        result = result_of(closing)
        previous = await self._store.comparison_closings(year.id)
        comparison = None
        if previous:
            previous_result = result_of(previous)
            comparison = (previous, previous_result)
        statement = balance_sheet(family, accounts, closing, result, comparison)
        return StatementReport(scope, statement)


def _net(turnover: dict[str, Turnover]) -> dict[str, Decimal]:
    return {account: moved.net for account, moved in turnover.items()}


def _previous(period: date) -> date:
    return date(period.year - (period.month == 1), (period.month - 2) % 12 + 1, 1)


def _years(years: list[FiscalYear]) -> str:
    return ", ".join(f"{y.start} to {y.end}" for y in years)
