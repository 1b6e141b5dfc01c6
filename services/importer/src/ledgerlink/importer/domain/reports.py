"""Trial balance, profit and loss, and balance sheet from per-period balances.

Pure domain code: the store hands over each account's opening balance and its debit and
credit turnover for the asked periods; this module lays them out as an accountant reads
them. Amounts are :class:`~decimal.Decimal`.

Signs. The trial balance shows the books as they are: debit positive, credit negative.
The profit and loss shows revenue positive and costs negative, so its total is the
result (a profit is positive). The balance sheet shows assets positive and equity and
liabilities positive, with the result of the year so far as a line of equity; when the
books balance, the two totals are equal.

Classification follows the chart's account classes. The Swedish BAS chart and the
Norwegian standard chart share class 1 assets, class 2 equity and liabilities, classes 3-8
profit and loss; class 9 is internal accounting in both and appears in the trial balance
only. Finnish charts (Netvisor's and Procountor's companies) put profit and loss in classes
3-9: class 9 holds the financial items, appropriations and income taxes, and the sections
follow the Finnish P&L and balance-sheet formats (see :data:`_FI_PROFIT_AND_LOSS`).
Visma.net types every account itself (asset, liability, income, expense), whatever the
country's chart: there the vendor's types decide (see :data:`_TYPED_PROFIT_AND_LOSS`).
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
    """A section of a statement: the accounts whose number starts in ``[low, high]``.

    With ``types``, the accounts of those types (the vendor's own classification); an
    account without a type falls back to the number range.
    """

    key: str
    title: str
    low: str
    high: str
    types: tuple[str, ...] = ()

    def holds(self, account: str, info: AccountInfo | None = None) -> bool:
        if self.types and info is not None and info.account_type:
            return info.account_type in self.types
        head = account[: len(self.low)]
        return self.low <= head <= self.high

    @property
    def assets(self) -> bool:
        """A section of the balance sheet's assets side."""
        return "asset" in self.types or self.low.startswith("1")


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
# Finnish companies: the statement formats of the Accounting Ordinance (Kirjanpitoasetus
# 1339/1997, ch. 1, the expense-type P&L and the balance sheet) over the number ranges of the
# Liikekirjuri chart that Finnish charts follow: 30-35 revenue, 36-39 change in stocks and
# other operating income, 40-49 materials and services, 50-67 personnel, 68-69 depreciation,
# 70-89 other operating expenses, 90-96 financial items, 97 extraordinary items, 98
# appropriations, 99 income taxes; 10-14 fixed and 15-19 current assets, 20-23 equity, 24
# accumulated appropriations, 25 provisions, 26-29 liabilities. UNCONFIRMED: that Netvisor's
# and Procountor's default charts keep these ranges (their APIs give no statement line per
# account; the Netvisor connector's account types use the same ranges, and a company with a
# chart of its own may differ).
_FI_PROFIT_AND_LOSS: Final = (
    Group("revenue", "Revenue (Liikevaihto)", "30", "35"),
    Group("other_income", "Other operating income (Liiketoiminnan muut tuotot)", "36", "39"),
    Group("materials", "Materials and services (Materiaalit ja palvelut)", "40", "49"),
    Group("personnel", "Personnel expenses (Henkilöstökulut)", "50", "67"),
    Group("depreciation", "Depreciation (Poistot ja arvonalentumiset)", "68", "69"),
    Group("other", "Other operating expenses (Liiketoiminnan muut kulut)", "70", "89"),
    Group("financial", "Financial income and expenses (Rahoitustuotot ja -kulut)", "90", "96"),
    Group("extraordinary", "Extraordinary items (Satunnaiset erät)", "97", "97"),
    Group("appropriations", "Appropriations (Tilinpäätössiirrot)", "98", "98"),
    Group("taxes", "Income taxes (Tuloverot)", "99", "99"),
)
_FI_BALANCE_SHEET: Final = (
    Group("fixed_assets", "Fixed assets (Pysyvät vastaavat)", "10", "14"),
    Group("current_assets", "Current assets (Vaihtuvat vastaavat)", "15", "19"),
    Group("equity", "Equity (Oma pääoma)", "20", "23"),
    Group(
        "appropriations",
        "Accumulated appropriations (Tilinpäätössiirtojen kertymä)",
        "24",
        "24",
    ),
    Group("provisions", "Provisions (Pakolliset varaukset)", "25", "25"),
    Group("liabilities", "Liabilities (Vieras pääoma)", "26", "29"),
)
# Visma.net: every account carries its type (AccountDto.type: Asset, Liability, Income,
# Expense; equity accounts are Liability-type), published in the Visma.net Financials API's
# account schema. Its companies use national charts (NL, NO, SE, DK, FI) whose number ranges
# differ (a Dutch chart keeps equity in 0xxx and revenue in 8xxx), so the vendor's types
# decide; an account without one falls back to the classes 1 / 2 / 3 / 4-8.
_TYPED_PROFIT_AND_LOSS: Final = (
    Group("revenue", "Revenue", "3", "3", types=("revenue",)),
    Group("expenses", "Expenses", "4", "8", types=("expense",)),
)
_TYPED_BALANCE_SHEET: Final = (
    Group("assets", "Assets", "1", "1", types=("asset",)),
    Group("equity", "Equity and liabilities", "2", "2", types=("liability",)),
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


def chart_family(chart: str, country: str = "") -> str:
    """``"TYPED"`` for Visma.net (the vendor types every account), ``"FI"`` for a Finnish
    company, ``"NO"`` for the Norwegian standard chart, ``"BAS"`` otherwise (BAS, EUBAS97 ...).
    """
    if chart == "visma_net":
        return "TYPED"
    if country.upper() == "FI":
        return "FI"
    return "NO" if chart.upper().startswith("NO") else "BAS"


def is_balance_sheet_account(
    account: str, family: str = "BAS", info: AccountInfo | None = None
) -> bool:
    if family == "TYPED" and info is not None and info.account_type:
        return info.account_type in ("asset", "liability")
    return account[:1] in ("1", "2")


def is_profit_and_loss_account(
    account: str, family: str = "BAS", info: AccountInfo | None = None
) -> bool:
    """Classes 3-8, and 9 too in Finnish charts (financial items, appropriations, taxes);
    in the ``TYPED`` family, the revenue and expense accounts."""
    if family == "TYPED" and info is not None and info.account_type:
        return info.account_type in ("revenue", "expense")
    return account[:1] in (_FI_RESULT_CLASSES if family == "FI" else _RESULT_CLASSES)


_RESULT_CLASSES: Final = ("3", "4", "5", "6", "7", "8")
_FI_RESULT_CLASSES: Final = ("3", "4", "5", "6", "7", "8", "9")
_PROFIT_AND_LOSS: Final = {
    "TYPED": _TYPED_PROFIT_AND_LOSS,
    "FI": _FI_PROFIT_AND_LOSS,
    "NO": _NO_PROFIT_AND_LOSS,
    "BAS": _BAS_PROFIT_AND_LOSS,
}
_BALANCE_SHEET: Final = {
    "TYPED": _TYPED_BALANCE_SHEET,
    "FI": _FI_BALANCE_SHEET,
    "NO": _NO_BALANCE_SHEET,
    "BAS": _BAS_BALANCE_SHEET,
}


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
            info = accounts.get(number)
            if not group.holds(number, info):
                continue
            amounts = tuple(sign * column.get(number, _ZERO) for column in columns)
            if all(amount == _ZERO for amount in amounts):
                continue
            lines.append(StatementLine(number, info.name if info else number, amounts))
        totals = tuple(sum((line.amounts[i] for line in lines), _ZERO) for i in range(len(columns)))
        sections.append(StatementSection(group.key, group.title, tuple(lines), totals))
    return sections


def _sum(sections: list[StatementSection], width: int) -> tuple[Decimal, ...]:
    return tuple(sum((s.totals[i] for s in sections), _ZERO) for i in range(width))


def profit_and_loss(
    family: str,
    accounts: dict[str, AccountInfo],
    period: dict[str, Decimal],
    year_to_date: dict[str, Decimal],
    previous_year: dict[str, Decimal] | None = None,
) -> Statement:
    """P&L for the asked periods and for the year to date (net balances, debit positive).

    ``family``: the chart family (:func:`chart_family`). ``previous_year``: the previous
    fiscal year's result per account (SIE ``#RES -1``), when the source gave it; it becomes
    a third column, the comparison year.
    """
    groups = _PROFIT_AND_LOSS[family]
    names = ["period", "year_to_date"]

    def kept(balances: dict[str, Decimal]) -> dict[str, Decimal]:
        return {
            a: v
            for a, v in balances.items()
            if is_profit_and_loss_account(a, family, accounts.get(a))
        }

    columns = [kept(period), kept(year_to_date)]
    previous = kept(previous_year or {})
    if previous:
        names.append("previous_year")
        columns.append(previous)
    sections = _sections(groups, accounts, columns, sign=-1)
    return Statement(tuple(names), tuple(sections), {"result": _sum(sections, len(columns))})


def balance_sheet(
    family: str,
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
    groups = _BALANCE_SHEET[family]
    names = ["balance"]

    def kept(balances: dict[str, Decimal]) -> dict[str, Decimal]:
        return {
            a: v
            for a, v in balances.items()
            if is_balance_sheet_account(a, family, accounts.get(a))
        }

    columns = [kept(closing)]
    results = [result_to_date]
    if previous is not None:
        names.append("previous_year_end")
        columns.append(kept(previous[0]))
        results.append(previous[1])
    width = len(columns)
    assets = _sections(
        groups, accounts, columns, sign=1, keys=tuple(g.key for g in groups if g.assets)
    )
    liabilities = _sections(
        groups, accounts, columns, sign=-1, keys=tuple(g.key for g in groups if not g.assets)
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
