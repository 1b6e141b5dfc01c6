"""Ledger sync over a vendor's API: the pure rules (no I/O).

A connector (``ledgerlink.connectors``) reads a ledger's master data and pages of vouchers;
these rules turn what it reads into the accounting model the file imports use
(:mod:`ledgerlink.importer.domain.ledger`) and say what a page changes:

* a voucher is known by the vendor's id (``source_id``): a page's voucher replaces the
  stored one with that id (an edit), an invalidated or deleted voucher leaves the ledger;
* the per-period balances change by exactly the difference between the old and the new
  lines (:func:`movement_delta`), so they move in the same transaction as the lines;
* fiscal years come from the ledger's periods (:func:`fiscal_years_of`).

Decisions, and why:

* A **full read** (first import, full refresh) is written into a *staging* company that
  replaces the live one only when the read has completed: a sync that fails, or stops at
  a cursor boundary, never leaves the live books half-replaced (Airbyte #14732, #15427;
  Nango #1132 lost data exactly there).
* An **unbalanced voucher** from an API is stored with a notice rather than failing the
  sync: the vendor holds it as posted, and a sync that stops on it would leave every
  later change out too. The trial balance shows the difference, the notice says why.
* An **account or object used but not in the chart** is created with its code as its
  name, with a notice (the amounts are right; the vendor's chart read missed it).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum
from typing import Final

from ledgerlink.connectors.models import Account as VendorAccount
from ledgerlink.connectors.models import Dimension as VendorDimension
from ledgerlink.connectors.models import Period as VendorPeriod
from ledgerlink.connectors.models import Voucher as VendorVoucher
from ledgerlink.importer.domain.ledger import (
    AccountType,
    DimensionKind,
    LedgerAccount,
    LedgerDimension,
    LedgerLine,
    LedgerNotice,
    LedgerObject,
    LedgerVoucher,
    PeriodMovements,
    period_of,
)

_ZERO: Final = Decimal(0)
_CENT: Final = Decimal("0.01")

__all__ = [
    "CARRIED_RESULT_ACCOUNT",
    "DimensionResolver",
    "FiscalYearSpan",
    "PageChanges",
    "StoredLine",
    "SyncMode",
    "effective_mode",
    "fiscal_years_of",
    "ledger_accounts",
    "ledger_dimensions",
    "movement_delta",
    "staging_business_id",
    "voucher_of",
]


class SyncMode(StrEnum):
    """What a sync reads and where it writes."""

    #: The connection's first import: everything, into staging, swapped in at the end.
    FIRST = "first"
    #: What changed since the last sync's cursor, applied to the live books page by page.
    INCREMENTAL = "incremental"
    #: Everything again, into staging, swapped in only when complete.
    FULL_REFRESH = "full_refresh"
    #: A date range read again and replaced exactly in the live books (vouchers gone at
    #: the vendor leave it); other periods and the connection's cursor stay as they are.
    BACKFILL = "backfill"

    @property
    def is_full(self) -> bool:
        """Whether the sync reads everything into staging (swapped in when complete)."""
        return self in (SyncMode.FIRST, SyncMode.FULL_REFRESH)


#: Ledgers whose API lists what changed since a point, so an incremental sync reads only
#: the changed vouchers: Netvisor (``voucherlist.nv`` ``changedsince`` and the voucher
#: status filter), Procountor (``GET /ledgerreceipts`` ``versionStartDate``), Visma.net
#: (``GET /v2/journaltransaction`` ``lastModifiedDateTime``, published JournalTransactionV2Api).
#: 24SevenOffice's ``GET /transactionlines`` filters by date only and a deleted transaction
#: is simply no longer listed: its incremental sync is a full refresh (everything read into
#: staging, swapped in when complete), the only read that sees a deletion.
CHANGE_QUERY_PROVIDERS: Final = frozenset({"netvisor", "procountor", "visma_net"})


def effective_mode(mode: SyncMode, provider: str) -> SyncMode:
    """The mode a requested sync runs in: incremental only where the vendor lists changes."""
    if mode is SyncMode.INCREMENTAL and provider not in CHANGE_QUERY_PROVIDERS:
        return SyncMode.FULL_REFRESH
    return mode


#: The equity account that holds the results of earlier years in a synced ledger's opening
#: balances. A vendor's API gives movements, not the opening balances of a file (whose
#: equity already holds the previous years' results): a later year's balance sheet balances
#: only with the earlier results carried into equity. Its number is in class 20 (equity in
#: the report's charts) and cannot clash with a vendor's numeric account.
CARRIED_RESULT_ACCOUNT: Final = "20-RESULT"
CARRIED_RESULT_NAME: Final = "Result of previous years (carried forward by Ledgerlink)"


def staging_business_id(import_id_hex: str) -> str:
    """The business ID of a full read's staging company (never a real one: starts with ~)."""
    return f"~{import_id_hex[:31]}"


# ----------------------------------------------------------------------- master data

_ACCOUNT_TYPES: Final = {
    "asset": AccountType.ASSET,
    "liability": AccountType.LIABILITY,
    "equity": AccountType.LIABILITY,  # the store's LIABILITY covers equity too (as SIE "S")
    "revenue": AccountType.REVENUE,
    "expense": AccountType.EXPENSE,
}
_DIMENSION_KINDS: Final = {
    "cost_centre": DimensionKind.COST_CENTRE,
    "cost_unit": DimensionKind.COST_UNIT,
    "project": DimensionKind.PROJECT,
}


def ledger_accounts(accounts: Iterable[VendorAccount]) -> list[LedgerAccount]:
    """The vendor's chart as the store keeps it."""
    return [
        LedgerAccount(
            number=account.number[:32],
            name=account.name or account.number,
            account_type=_ACCOUNT_TYPES.get(account.type) if account.type else None,
        )
        for account in accounts
    ]


def ledger_dimensions(
    dimensions: Iterable[VendorDimension],
) -> tuple[list[LedgerDimension], list[LedgerObject]]:
    """The vendor's dimensions and their objects as the store keeps them."""
    kept: list[LedgerDimension] = []
    objects: list[LedgerObject] = []
    for dimension in dimensions:
        dimension_id = dimension.id[:32]
        kind = _DIMENSION_KINDS.get(dimension.kind or "", DimensionKind.OTHER)
        kept.append(LedgerDimension(dimension_id, dimension.name or dimension.id, kind))
        objects.extend(
            LedgerObject(dimension_id, item.code[:64], item.name or item.code)
            for item in dimension.objects
        )
    return kept, objects


class DimensionResolver:
    """Which dimension a voucher line's key names.

    Connectors key a line's objects by the dimension's kind (``cost_centre``), name or id,
    whichever the vendor's voucher carries; the store keys them by the dimension's id.
    """

    def __init__(self, dimensions: Iterable[VendorDimension]) -> None:
        self._ids: dict[str, str] = {}
        for dimension in dimensions:
            for key in (dimension.id, dimension.name, dimension.kind):
                if key:
                    self._ids.setdefault(key, dimension.id[:32])

    def dimension_id(self, key: str) -> str:
        """The dimension id for a line's key (the key itself when no dimension matches)."""
        return self._ids.get(key, key[:32])


# --------------------------------------------------------------------------- periods


@dataclass(frozen=True, slots=True)
class FiscalYearSpan:
    """A fiscal year's first and last day."""

    start: dt.date
    end: dt.date

    def holds(self, day: dt.date) -> bool:
        """Whether ``day`` is in this year."""
        return self.start <= day <= self.end


def fiscal_years_of(periods: Sequence[VendorPeriod]) -> list[FiscalYearSpan]:
    """The fiscal years the ledger's periods make up, oldest first.

    Connectors give periods, not fiscal years. Periods are grouped by calendar year:
    UNCONFIRMED for non-calendar fiscal years (none of the four ledgers' period reads says
    where a year starts in a way every connector passes on); a company whose year is not
    the calendar year gets its vouchers in calendar-year buckets, which changes the
    year a report defaults to, not the per-period amounts.
    """
    years = sorted({period.start.year for period in periods} | {p.end.year for p in periods})
    return [calendar_year(year) for year in years]


def calendar_year(year: int) -> FiscalYearSpan:
    """The calendar year ``year`` as a fiscal year."""
    return FiscalYearSpan(dt.date(year, 1, 1), dt.date(year, 12, 31))


def year_of(day: dt.date, years: Sequence[FiscalYearSpan]) -> FiscalYearSpan:
    """The fiscal year holding ``day`` (its calendar year when no known year does)."""
    for year in years:
        if year.holds(day):
            return year
    return calendar_year(day.year)


# -------------------------------------------------------------------------- vouchers


@dataclass(frozen=True, slots=True)
class StoredLine:
    """A stored voucher line, as far as the balances are concerned."""

    date: dt.date
    account: str
    amount: Decimal
    objects: tuple[tuple[str, str], ...]


def voucher_of(voucher: VendorVoucher, resolver: DimensionResolver) -> LedgerVoucher | None:
    """The vendor's voucher as the store keeps it; None for one that leaves the ledger."""
    if voucher.status != "valid" or not voucher.lines:
        return None
    lines = tuple(
        LedgerLine(
            account=line.account[:32],
            amount=line.amount,
            text=line.description,
            objects=tuple(
                sorted(
                    (resolver.dimension_id(key), code[:64])
                    for key, code in line.dimensions.items()
                    if code
                )
            ),
        )
        for line in voucher.lines
    )
    return LedgerVoucher(
        series=voucher.series or "",
        number=voucher.number or voucher.external_id,
        date=voucher.date,
        text=voucher.description,
        source_id=voucher.external_id[:200],
        lines=lines,
        location=f"voucher {voucher.external_id}",
    )


def _add(movements: PeriodMovements, key: tuple[dt.date, str, str, str], amount: Decimal,
         sign: int) -> None:  # fmt: skip
    totals = movements.get(key)
    if totals is None:
        totals = movements[key] = [_ZERO, _ZERO]
    totals[0 if amount >= 0 else 1] += sign * abs(amount)


def _book(movements: PeriodMovements, line: StoredLine, sign: int) -> None:
    period = period_of(line.date)
    _add(movements, (period, line.account, "", ""), line.amount, sign)
    for dimension_id, object_id in line.objects:
        _add(movements, (period, line.account, dimension_id, object_id), line.amount, sign)


def movement_delta(removed: Iterable[StoredLine], added: Iterable[StoredLine]) -> PeriodMovements:
    """How the per-period balances change when ``removed`` lines go and ``added`` come.

    Debit and credit are kept apart (as the file imports keep them), so the change of a
    key is a (debit, credit) pair that may be negative.
    """
    movements: PeriodMovements = {}
    for line in removed:
        _book(movements, line, -1)
    for line in added:
        _book(movements, line, 1)
    return {key: totals for key, totals in movements.items() if totals[0] or totals[1]}


def stored_lines(voucher: LedgerVoucher) -> list[StoredLine]:
    """A voucher's lines as :class:`StoredLine` records."""
    return [
        StoredLine(voucher.date, line.account, line.amount, line.objects) for line in voucher.lines
    ]


@dataclass
class PageChanges:
    """What one page of vouchers does to the ledger, with its notices."""

    #: The vendor ids of every voucher on the page (their stored versions are replaced).
    source_ids: list[str] = field(default_factory=list)
    #: The vouchers to store now (valid ones with lines).
    vouchers: list[LedgerVoucher] = field(default_factory=list)
    #: Vouchers read that leave the ledger (invalidated or deleted at the vendor).
    removed: int = 0
    notices: list[LedgerNotice] = field(default_factory=list)
    #: Accounts and objects the lines use that the chart lacks (created with notices).
    missing_accounts: list[LedgerAccount] = field(default_factory=list)
    missing_objects: list[LedgerObject] = field(default_factory=list)


def page_changes(
    vouchers: Sequence[VendorVoucher],
    resolver: DimensionResolver,
    *,
    accounts: Mapping[str, object],
    objects: Mapping[tuple[str, str], object],
) -> PageChanges:
    """What a page of vouchers changes; ``accounts``/``objects``: what the chart holds.

    The last occurrence of a voucher id on a page wins (a page may carry a voucher twice
    when it changed while the page was being read).
    """
    latest: dict[str, VendorVoucher] = {}
    for voucher in vouchers:
        latest.pop(voucher.external_id[:200], None)
        latest[voucher.external_id[:200]] = voucher
    changes = PageChanges(source_ids=list(latest))
    new_accounts: dict[str, LedgerAccount] = {}
    new_objects: dict[tuple[str, str], LedgerObject] = {}
    for voucher in latest.values():
        kept = voucher_of(voucher, resolver)
        if kept is None:
            changes.removed += 1
            continue
        total = sum((line.amount for line in kept.lines), _ZERO)
        if total != _ZERO:
            changes.notices.append(
                LedgerNotice(
                    "unbalanced_voucher",
                    f"{kept.name} does not balance at the vendor (difference {total:.2f}); "
                    "stored as posted, so the trial balance shows the difference",
                    kept.location,
                )
            )
        for line in kept.lines:
            if line.amount.quantize(_CENT) != line.amount:
                changes.notices.append(
                    LedgerNotice(
                        "amount_rounded",
                        f"{kept.name}: amount {line.amount} has more than two decimals; the "
                        "store keeps cents",
                        kept.location,
                    )
                )
            if line.account not in accounts and line.account not in new_accounts:
                new_accounts[line.account] = LedgerAccount(line.account, line.account)
                changes.notices.append(
                    LedgerNotice(
                        "undeclared_account",
                        f"{kept.name} uses account {line.account}, which the vendor's chart "
                        "did not list; it was created with its number as its name",
                        kept.location,
                    )
                )
            for key in line.objects:
                if key not in objects and key not in new_objects:
                    new_objects[key] = LedgerObject(key[0], key[1], key[1])
        changes.vouchers.append(kept)
    changes.missing_accounts = list(new_accounts.values())
    changes.missing_objects = list(new_objects.values())
    return changes


#: What a connector's page warnings mean for the books: (code, what people are told).
PAYROLL_NOT_VISIBLE: Final = "payroll_not_visible"


def page_warnings(warnings: Iterable[str]) -> list[LedgerNotice]:
    """Notices for what a connector says its read could not see.

    Procountor hides salary receipts from a user without full salary rights: the ledger
    then "will not add up" and the P&L and balance sheet are wrong (seed 001). That is
    flagged, never absorbed.
    """
    notices = []
    for warning in warnings:
        code = PAYROLL_NOT_VISIBLE if "salary" in warning.lower() else "vendor_warning"
        notices.append(LedgerNotice(code, warning))
    return notices


def vendor_periods(periods: Iterable[VendorPeriod]) -> list[tuple[dt.date, dt.date, str]]:
    """(start, end, status) of each period, oldest first."""
    return sorted((period.start, period.end, period.status) for period in periods)


# ------------------------------------------------------------------- reconciliation


@dataclass(frozen=True, slots=True)
class PeriodDifference:
    """An account whose balance at a period end is not what the vendor reports."""

    period: dt.date
    account: str
    opening: Decimal
    movements: Decimal
    computed_closing: Decimal
    source_closing: Decimal

    @property
    def difference(self) -> Decimal:
        """Ours minus the vendor's."""
        return self.computed_closing - self.source_closing


def reconcile_with_vendor(
    movements: Iterable[tuple[dt.date, str, Decimal, Decimal]],
    vendor: Mapping[dt.date, Mapping[str, Decimal]],
) -> tuple[str, list[PeriodDifference]]:
    """Our balance of every account at each date the vendor reported, against the vendor's.

    ``movements``: (period, account, debit, credit) of the books read; balances run from
    the start of the books (as the vendor's cumulative balances do). Returns the status
    ("balanced", "differences", "not_available") and every difference, oldest first.
    """
    if not vendor:
        return "not_available", []
    by_account: dict[str, dict[dt.date, Decimal]] = {}
    for period, account, debit, credit in movements:
        per = by_account.setdefault(account, {})
        per[period] = per.get(period, _ZERO) + debit - credit
    differences: list[PeriodDifference] = []
    for day in sorted(vendor):
        theirs = vendor[day]
        period = period_of(day)
        for account in sorted(set(theirs) | set(by_account)):
            moved = by_account.get(account, {})
            closing = sum((a for p, a in moved.items() if p <= period), _ZERO)
            movement = moved.get(period, _ZERO)
            source = theirs.get(account, _ZERO)
            if closing != source:
                differences.append(
                    PeriodDifference(period, account, closing - movement, movement, closing, source)
                )
    return ("differences" if differences else "balanced"), differences
