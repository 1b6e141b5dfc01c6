"""Trial balance, profit and loss, and balance sheet from per-period balances.

Pure domain code: the store hands over each account's opening balance and its debit and
credit turnover for the asked periods; this module lays them out as an accountant reads
them. Amounts are :class:`~decimal.Decimal`.

Signs. The trial balance shows the books as they are: debit positive, credit negative.
The profit and loss shows revenue positive and costs negative, so its total is the
result (a profit is positive). The balance sheet shows assets positive and equity and
liabilities positive, with the result of the year so far as a line of equity; when the
books balance, the two totals are equal.

Classification follows the chart's account classes, shared by the Swedish BAS chart and
the Norwegian standard chart: class 1 assets, class 2 equity and liabilities, classes
3-8 profit and loss. Accounts in other classes (9: internal accounting in both) appear
in the trial balance only.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Final

_ZERO: Final = Decimal(0)


@dataclass(frozen=True, slots=True)
class AccountInfo:
    """What the chart says about an account."""

    number: str
    name: str
    account_type: str | None = None


@dataclass(frozen=True, slots=True)
class Turnover:
    """An account's debit and credit turnover (both positive) over some periods."""

    debit: Decimal = _ZERO
    credit: Decimal = _ZERO

    @property
    def net(self) -> Decimal:
        return self.debit - self.credit


@dataclass(frozen=True, slots=True)
class TrialBalanceRow:
    """One account: opening, turnover and closing balance (debit positive)."""

    account: str
    name: str
    opening: Decimal
    debit: Decimal
    credit: Decimal
    closing: Decimal

    @property
    def movement(self) -> Decimal:
        return self.debit - self.credit


@dataclass(frozen=True, slots=True)
class TrialBalance:
    """Every account with a balance or movement, and the column totals."""

    rows: tuple[TrialBalanceRow, ...]

    @property
    def totals(self) -> TrialBalanceRow:
        def total(attribute: str) -> Decimal:
            return sum((getattr(row, attribute) for row in self.rows), _ZERO)

        return TrialBalanceRow(
            "", "Total", total("opening"), total("debit"), total("credit"), total("closing")
        )


def trial_balance(
    accounts: dict[str, AccountInfo],
    opening: dict[str, Decimal],
    turnover: dict[str, Turnover],
) -> TrialBalance:
    """Opening + turnover = closing for every account that has any of them."""
    rows = []
    for number in sorted(opening.keys() | turnover.keys()):
        start = opening.get(number, _ZERO)
        moved = turnover.get(number, Turnover())
        if start == _ZERO and moved.debit == _ZERO and moved.credit == _ZERO:
            continue
        info = accounts.get(number)
        rows.append(
            TrialBalanceRow(
                number,
                info.name if info else number,
                start,
                moved.debit,
                moved.credit,
                start + moved.net,
            )
        )
    return TrialBalance(tuple(rows))


# ----------------------------------------------------------------- classification


@dataclass(frozen=True, slots=True)
class Group:
    """A section of a statement: the accounts whose number starts in ``[low, high]``."""

    key: str
    title: str
    low: str
    high: str

    def holds(self, account: str) -> bool:
        head = account[: len(self.low)]
        return self.low <= head <= self.high


_BAS_PROFIT_AND_LOSS: Final = (
    Group("revenue", "Revenue (Rörelsens intäkter)", "30", "39"),
    Group("goods", "Goods and materials (Material och varor)", "40", "49"),
    Group("external", "Other external costs (Övriga externa kostnader)", "50", "69"),
    Group("personnel", "Personnel costs (Personalkostnader)", "70", "76"),
    Group("depreciation", "Depreciation (Av- och nedskrivningar)", "77", "79"),
    Group("financial", "Financial items, appropriations and tax", "80", "89"),
)
_NO_PROFIT_AND_LOSS: Final = (
    Group("revenue", "Operating revenue (Driftsinntekter)", "30", "39"),
    Group("goods", "Cost of goods (Varekostnad)", "40", "49"),
    Group("personnel", "Payroll costs (Lønnskostnad)", "50", "59"),
    Group(
        "depreciation",
        "Depreciation and other costs (Avskrivning, annen driftskostnad)",
        "60",
        "69",
    ),
    Group("other", "Other operating costs (Annen driftskostnad)", "70", "79"),
    Group("financial", "Financial items and tax (Finansposter og skatt)", "80", "89"),
)
_BAS_BALANCE_SHEET: Final = (
    Group("fixed_assets", "Fixed assets (Anläggningstillgångar)", "10", "13"),
    Group("current_assets", "Current assets (Omsättningstillgångar)", "14", "19"),
    Group("equity", "Equity (Eget kapital)", "20", "20"),
    Group("untaxed_reserves", "Untaxed reserves (Obeskattade reserver)", "21", "21"),
    Group("provisions", "Provisions (Avsättningar)", "22", "22"),
    Group("long_term", "Long-term liabilities (Långfristiga skulder)", "23", "23"),
    Group("current", "Current liabilities (Kortfristiga skulder)", "24", "29"),
)
_NO_BALANCE_SHEET: Final = (
    Group("fixed_assets", "Fixed assets (Anleggsmidler)", "10", "13"),
    Group("current_assets", "Current assets (Omløpsmidler)", "14", "19"),
    Group("equity", "Equity (Egenkapital)", "20", "20"),
    Group(
        "long_term",
        "Provisions and long-term liabilities (Avsetninger og langsiktig gjeld)",
        "21",
        "22",
    ),
    Group("current", "Current liabilities (Kortsiktig gjeld)", "23", "29"),
)


def chart_family(chart: str) -> str:
    """``"NO"`` for the Norwegian standard chart, ``"BAS"`` otherwise (BAS, EUBAS97 ...)."""
    return "NO" if chart.upper().startswith("NO") else "BAS"


def is_balance_sheet_account(account: str) -> bool:
    return account[:1] in ("1", "2")


def is_profit_and_loss_account(account: str) -> bool:
    return account[:1] in ("3", "4", "5", "6", "7", "8")


@dataclass(frozen=True, slots=True)
class StatementLine:
    """An account in a statement, with one amount per column."""

    account: str
    name: str
    amounts: tuple[Decimal, ...]


@dataclass(frozen=True, slots=True)
class StatementSection:
    """A group of accounts and its totals per column."""

    key: str
    title: str
    lines: tuple[StatementLine, ...]
    totals: tuple[Decimal, ...]


@dataclass(frozen=True, slots=True)
class Statement:
    """A profit and loss or balance sheet: sections, columns, and named totals."""

    columns: tuple[str, ...]
    sections: tuple[StatementSection, ...]
    totals: dict[str, tuple[Decimal, ...]]


def _sections(
    groups: tuple[Group, ...],
    accounts: dict[str, AccountInfo],
    columns: list[dict[str, Decimal]],
    *,
    sign: int,
    keys: tuple[str, ...] | None = None,
) -> list[StatementSection]:
    numbers = sorted(set().union(*(column.keys() for column in columns)))
    sections = []
    for group in groups:
        if keys is not None and group.key not in keys:
            continue
        lines = []
        for number in numbers:
            if not group.holds(number):
                continue
            amounts = tuple(sign * column.get(number, _ZERO) for column in columns)
            if all(amount == _ZERO for amount in amounts):
                continue
            info = accounts.get(number)
            lines.append(StatementLine(number, info.name if info else number, amounts))
        totals = tuple(sum((line.amounts[i] for line in lines), _ZERO) for i in range(len(columns)))
        sections.append(StatementSection(group.key, group.title, tuple(lines), totals))
    return sections


def _sum(sections: list[StatementSection], width: int) -> tuple[Decimal, ...]:
    return tuple(sum((s.totals[i] for s in sections), _ZERO) for i in range(width))


def profit_and_loss(
    chart: str,
    accounts: dict[str, AccountInfo],
    period: dict[str, Decimal],
    year_to_date: dict[str, Decimal],
    previous_year: dict[str, Decimal] | None = None,
) -> Statement:
    """P&L for the asked periods and for the year to date (net balances, debit positive).

    ``previous_year``: the previous fiscal year's result per account (SIE ``#RES -1``),
    when the source gave it; it becomes a third column, the comparison year.
    """
    groups = _NO_PROFIT_AND_LOSS if chart_family(chart) == "NO" else _BAS_PROFIT_AND_LOSS
    names = ["period", "year_to_date"]
    columns = [
        {a: v for a, v in period.items() if is_profit_and_loss_account(a)},
        {a: v for a, v in year_to_date.items() if is_profit_and_loss_account(a)},
    ]
    previous = {a: v for a, v in (previous_year or {}).items() if is_profit_and_loss_account(a)}
    if previous:
        names.append("previous_year")
        columns.append(previous)
    sections = _sections(groups, accounts, columns, sign=-1)
    return Statement(tuple(names), tuple(sections), {"result": _sum(sections, len(columns))})


def balance_sheet(
    chart: str,
    accounts: dict[str, AccountInfo],
    closing: dict[str, Decimal],
    result_to_date: Decimal,
    previous: tuple[dict[str, Decimal], Decimal] | None = None,
) -> Statement:
    """Balance sheet from closing balances (debit positive) and the year's result so far.

    ``result_to_date`` is the P&L result (profit positive) not yet closed into equity; it
    is shown as a line of equity so that assets equal equity and liabilities.
    ``previous``: the previous year's closing balances (SIE ``#UB -1``) and its result
    (from ``#RES -1``), when the source gave them: a second column, the comparison year.
    """
    groups = _NO_BALANCE_SHEET if chart_family(chart) == "NO" else _BAS_BALANCE_SHEET
    names = ["balance"]
    columns = [{a: v for a, v in closing.items() if is_balance_sheet_account(a)}]
    results = [result_to_date]
    if previous is not None:
        names.append("previous_year_end")
        columns.append({a: v for a, v in previous[0].items() if is_balance_sheet_account(a)})
        results.append(previous[1])
    width = len(columns)
    assets = _sections(groups, accounts, columns, sign=1, keys=("fixed_assets", "current_assets"))
    liabilities = _sections(
        groups,
        accounts,
        columns,
        sign=-1,
        keys=tuple(g.key for g in groups if g.low.startswith("2")),
    )
    equity = next(s for s in liabilities if s.key == "equity")
    result_line = StatementLine("", "Result for the year to date", tuple(results))
    liabilities[liabilities.index(equity)] = StatementSection(
        equity.key,
        equity.title,
        (*equity.lines, result_line),
        tuple(equity.totals[i] + results[i] for i in range(width)),
    )
    total_assets = _sum(assets, width)
    total_liabilities = _sum(liabilities, width)
    return Statement(
        tuple(names),
        (*assets, *liabilities),
        {
            "assets": total_assets,
            "equity_and_liabilities": total_liabilities,
            "difference": tuple(total_assets[i] - total_liabilities[i] for i in range(width)),
        },
    )


# ----------------------------------------------------------------------- periods


class PeriodRangeError(ValueError):
    """A report range that cannot be answered from whole periods."""


def parse_period_start(raw: str, name: str) -> date:
    """``YYYY-MM`` or the first day of a month, as that month's first day."""
    day = _parse(raw, name)
    if len(raw) > 7 and day.day != 1:
        raise PeriodRangeError(
            f"{name}={raw} is not the first day of a period; reports cover whole periods "
            f"(months): use {day:%Y-%m} or {day:%Y-%m}-01"
        )
    return day.replace(day=1)


def parse_period_end(raw: str, name: str) -> date:
    """``YYYY-MM`` or the last day of a month, as that month's first day."""
    day = _parse(raw, name)
    if len(raw) > 7 and date.fromordinal(_month_after(day).toordinal() - 1) != day:
        raise PeriodRangeError(
            f"{name}={raw} is not the last day of a period; reports cover whole periods "
            f"(months): use {day:%Y-%m}"
        )
    return day.replace(day=1)


def period_end(period: date) -> date:
    """The last day of the period (month) starting on ``period``."""
    return date.fromordinal(_month_after(period).toordinal() - 1)


def _month_after(day: date) -> date:
    return date(day.year + day.month // 12, day.month % 12 + 1, 1)


def _parse(raw: str, name: str) -> date:
    try:
        if len(raw) == 7:
            return date.fromisoformat(f"{raw}-01")
        return date.fromisoformat(raw)
    except ValueError:
        raise PeriodRangeError(
            f"{name}={raw!r} is not a date (YYYY-MM-DD) or a period (YYYY-MM)"
        ) from None
