"""Deterministic company data for the sandboxes: charts, dimensions, periods, vouchers, payroll.

:func:`generate_company` builds a whole set of books from a seed with ``random.Random(seed)``:
the same seed and arguments always give the same data, so a test can name what it expects.
The data is plain ``__slots__`` dataclasses, vendor-neutral; each vendor module renders it in
its own format.

Conventions:

* Amounts are ``Decimal`` with two decimals, debit positive, credit negative on voucher lines;
  payroll lines carry a positive amount plus ``debit_credit`` ("D"/"C") as Nmbrs does.
* Every voucher and every payroll run balances (the sum of its lines is zero).
* Business IDs carry valid check digits (FI Y-tunnus, NO organisation number MOD11, SE
  organisation number Luhn, NL KvK eight digits).
* Fiscal years are calendar years ending with ``last_year``; monthly periods up to
  ``lock_date`` are closed, later ones open (a posting into a closed period must be refused).
* Line ``dimensions`` map a dimension kind (``cost_centre``, ``cost_unit``, ``project``) to an
  object code. They are read-only mappings shared between lines with the same combination:
  one million lines with their own dict each would cost hundreds of megabytes.
* ``modified_at`` grows with the voucher id for generated vouchers; every change made later
  (:meth:`CompanyData.edit_voucher`, :meth:`CompanyData.invalidate_voucher`,
  :meth:`CompanyData.add_voucher`) stamps a time strictly later than any before, so an
  incremental read "changed since T" always sees it.

Generation is eager: a million voucher lines take a few seconds and a few hundred megabytes.
"""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from types import MappingProxyType
from typing import Final, Literal

__all__ = [
    "COUNTRIES",
    "AccountData",
    "AccountType",
    "CompanyData",
    "Country",
    "DimensionData",
    "DimensionKind",
    "DimensionObjectData",
    "FiscalYearData",
    "LineData",
    "PayrollLineData",
    "PayrollRunData",
    "PeriodData",
    "VoucherData",
    "fi_business_id",
    "generate_company",
    "nl_business_id",
    "no_business_id",
    "se_business_id",
]

Country = Literal["FI", "NO", "SE", "NL"]
AccountType = Literal["asset", "liability", "equity", "revenue", "expense"]
DimensionKind = Literal["cost_centre", "cost_unit", "project"]
VoucherKind = Literal["sales", "purchase", "bank", "journal"]

COUNTRIES: Final[tuple[Country, ...]] = ("FI", "NO", "SE", "NL")
_CURRENCY: Final[dict[Country, str]] = {"FI": "EUR", "NO": "NOK", "SE": "SEK", "NL": "EUR"}
_EMPTY_DIMENSIONS: Final[Mapping[str, str]] = MappingProxyType({})


# --------------------------------------------------------------------------------------------
# Data classes
# --------------------------------------------------------------------------------------------


@dataclass(slots=True)
class AccountData:
    """One account of the chart."""

    number: str
    name: str
    type: AccountType
    active: bool = True
    vat_code: str | None = None


@dataclass(slots=True)
class DimensionObjectData:
    """One object (value) of a dimension."""

    code: str
    name: str
    active: bool = True


@dataclass(slots=True)
class DimensionData:
    """A dimension: cost centre, cost unit or project, with its objects."""

    id: str
    name: str
    kind: DimensionKind
    objects: list[DimensionObjectData]


@dataclass(slots=True)
class PeriodData:
    """A monthly accounting period; postings into a closed one are refused."""

    start: dt.date
    end: dt.date
    closed: bool


@dataclass(slots=True)
class FiscalYearData:
    """A fiscal year and its periods."""

    start: dt.date
    end: dt.date
    periods: list[PeriodData]

    @property
    def closed(self) -> bool:
        """True when every period of the year is closed."""
        return all(period.closed for period in self.periods)


_ZERO: Final = Decimal(0)


@dataclass(slots=True)
class LineData:
    """One voucher line: ``amount`` debit positive, credit negative."""

    line_no: int
    account: str
    amount: Decimal
    description: str = ""
    vat_percent: Decimal | None = None
    vat_code: str | None = None
    dimensions: Mapping[str, str] = field(default_factory=lambda: _EMPTY_DIMENSIONS)


@dataclass(slots=True)
class VoucherData:
    """A voucher; ``version`` and ``modified_at`` change with every edit or invalidation."""

    id: int
    series: str
    number: int
    date: dt.date
    description: str
    lines: list[LineData]
    #: "deleted": removed at the vendor (Netvisor lists deleted vouchers under
    #: ``voucherstatus`` 3 with the invalidated ones); out of the books like "invalidated".
    status: Literal["valid", "invalidated", "deleted"] = "valid"
    version: int = 1
    modified_at: dt.datetime = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)

    @property
    def balance(self) -> Decimal:
        """The sum of the line amounts (zero for a balanced voucher)."""
        return sum((line.amount for line in self.lines), Decimal(0))


@dataclass(slots=True)
class PayrollLineData:
    """One payroll journal line: a positive amount and its side."""

    gl_account: str
    cost_centre: str | None
    cost_unit: str | None
    amount: Decimal
    debit_credit: Literal["D", "C"]
    description: str
    wage_code: str

    @property
    def signed_amount(self) -> Decimal:
        """Debit positive, credit negative."""
        return self.amount if self.debit_credit == "D" else -self.amount


@dataclass(slots=True)
class PayrollRunData:
    """The journal entry of a payroll run for one period.

    A run with retroactive changes (an earlier period reopened) yields its normal entry
    (``kind="normal"``, ``corrects_period=None``) and one correction entry per corrected
    period (``kind="correction"``). The correction entries share the run's ``run_id``,
    ``period``, ``date`` and ``reference`` (the journal reference equals the normal run's)
    and must be posted in ``corrects_period`` of ``year``.
    """

    run_id: str
    year: int
    period: int
    date: dt.date
    kind: Literal["normal", "correction"]
    corrects_period: int | None
    reference: str
    lines: list[PayrollLineData]

    @property
    def posting_period(self) -> int:
        """The period the entry is posted in: the corrected one for a correction."""
        return self.corrects_period if self.corrects_period is not None else self.period

    @property
    def balance(self) -> Decimal:
        """Debits minus credits (zero for a balanced entry)."""
        return sum((line.signed_amount for line in self.lines), Decimal(0))


@dataclass(slots=True)
class CompanyData:
    """The books of one company. Vouchers are kept in id order."""

    business_id: str
    name: str
    country: Country
    currency: str
    accounts: list[AccountData]
    dimensions: list[DimensionData]
    fiscal_years: list[FiscalYearData]
    vouchers: list[VoucherData]
    payroll_runs: list[PayrollRunData]
    _index: dict[int, int] = field(default_factory=dict, repr=False)
    _accounts_by_number: dict[str, AccountData] = field(default_factory=dict, repr=False)
    _last_modified: dt.datetime = field(default=dt.datetime(2000, 1, 1, tzinfo=dt.UTC), repr=False)
    #: What stamps a change made without an explicit time: the :class:`World`'s clock once
    #: the company is one of its tenants' (tests move it), the wall clock otherwise.
    clock: Callable[[], dt.datetime] | None = field(default=None, repr=False, compare=False)
    #: Built on first use, then kept up to date by every change method below: a vendor
    #: answers a window of dates from its indexes, not by walking every voucher (at a
    #: million lines the walk made the sandbox, not the client, the slow side).
    _indexes: _VoucherIndexes | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        self._index = {voucher.id: position for position, voucher in enumerate(self.vouchers)}
        self._accounts_by_number = {account.number: account for account in self.accounts}
        # Derived again from the lists on next use (a caller that edited them directly
        # calls this to re-derive every lookup).
        self._indexes = None
        if self.vouchers:
            self._last_modified = max(voucher.modified_at for voucher in self.vouchers)

    # -- lookups ---------------------------------------------------------------------------

    @property
    def line_count(self) -> int:
        """Number of voucher lines over all vouchers."""
        return sum(len(voucher.lines) for voucher in self.vouchers)

    @property
    def lock_date(self) -> dt.date | None:
        """The last day of the last closed period (``None`` if nothing is closed)."""
        closed = [p.end for year in self.fiscal_years for p in year.periods if p.closed]
        return max(closed) if closed else None

    def account(self, number: str) -> AccountData | None:
        """The account with this number, if the chart has it."""
        return self._accounts_by_number.get(number)

    def voucher(self, voucher_id: int) -> VoucherData:
        """The voucher with this id; ``KeyError`` if there is none."""
        return self.vouchers[self._index[voucher_id]]

    def period_of(self, day: dt.date) -> PeriodData | None:
        """The period containing ``day`` (``None`` outside every fiscal year)."""
        for year in self.fiscal_years:
            if year.start <= day <= year.end:
                for period in year.periods:
                    if period.start <= day <= period.end:
                        return period
        return None

    def is_open(self, day: dt.date) -> bool:
        """Whether a posting dated ``day`` is accepted (an open period exists for it)."""
        period = self.period_of(day)
        return period is not None and not period.closed

    def _indexed(self) -> _VoucherIndexes:
        if self._indexes is None:
            self._indexes = _VoucherIndexes()
            for voucher in self.vouchers:
                self._indexes.add(voucher)
        return self._indexes

    def vouchers_dated(self, start: dt.date, end: dt.date) -> list[VoucherData]:
        """Vouchers dated ``start``..``end`` (inclusive), in id order, from the index."""
        return self._ordered(self._indexed().by_date, start, end)

    def vouchers_modified_between(self, start: dt.date, end: dt.date) -> list[VoucherData]:
        """Vouchers whose last change (``modified_at`` as a UTC date) falls in
        ``start``..``end`` (inclusive), in id order, from the index."""
        return self._ordered(self._indexed().by_modified, start, end)

    def _ordered(
        self, index: dict[dt.date, dict[int, None]], start: dt.date, end: dt.date
    ) -> list[VoucherData]:
        if end < start:
            return []
        if (end - start).days > len(index):
            days: Iterable[dt.date] = [day for day in index if start <= day <= end]
        else:
            days = (start + dt.timedelta(days=n) for n in range((end - start).days + 1))
        ids = sorted(key for day in days for key in index.get(day, ()))
        return [self.vouchers[self._index[key]] for key in ids]

    def account_movements(self) -> Mapping[str, Mapping[dt.date, tuple[Decimal, Decimal]]]:
        """Per account and day, the (debit, credit) of every valid voucher (from the index)."""
        return self._indexed().moves

    def _unindex(self, voucher: VoucherData) -> None:
        if self._indexes is not None:
            self._indexes.remove(voucher)

    def _reindex(self, voucher: VoucherData) -> None:
        if self._indexes is not None:
            self._indexes.add(voucher)

    def vouchers_modified_since(self, since: dt.datetime) -> list[VoucherData]:
        """Vouchers created, edited or invalidated strictly after ``since``."""
        return [voucher for voucher in self.vouchers if voucher.modified_at > since]

    def run_entries(self, run_id: str) -> list[PayrollRunData]:
        """The normal entry and the correction entries of one payroll run."""
        return [run for run in self.payroll_runs if run.run_id == run_id]

    def normal_runs(self, year: int | None = None) -> list[PayrollRunData]:
        """The normal payroll runs (one per run id), optionally of one year."""
        return [
            run
            for run in self.payroll_runs
            if run.kind == "normal" and (year is None or run.year == year)
        ]

    # -- changes ---------------------------------------------------------------------------

    def _next_modified(self, at: dt.datetime | None) -> dt.datetime:
        stamp = at or (self.clock() if self.clock is not None else dt.datetime.now(dt.UTC))
        # Strictly after every earlier change, even for two changes in the same microsecond
        # or a clock that stepped back: incremental reads compare with ">".
        if stamp <= self._last_modified:
            stamp = self._last_modified + dt.timedelta(milliseconds=1)
        self._last_modified = stamp
        return stamp

    def invalidate_voucher(self, voucher_id: int, *, at: dt.datetime | None = None) -> VoucherData:
        """Mark a voucher invalidated (kept, as ledgers keep it), bumping version and stamp."""
        voucher = self.voucher(voucher_id)
        self._unindex(voucher)
        voucher.status = "invalidated"
        voucher.version += 1
        voucher.modified_at = self._next_modified(at)
        self._reindex(voucher)
        return voucher

    def delete_voucher(self, voucher_id: int, *, at: dt.datetime | None = None) -> VoucherData:
        """Mark a voucher deleted (kept for vendors that list deletions), bumping its stamp."""
        voucher = self.voucher(voucher_id)
        self._unindex(voucher)
        voucher.status = "deleted"
        voucher.version += 1
        voucher.modified_at = self._next_modified(at)
        self._reindex(voucher)
        return voucher

    def edit_voucher(
        self,
        voucher_id: int,
        *,
        description: str | None = None,
        date: dt.date | None = None,
        lines: Sequence[LineData] | None = None,
        at: dt.datetime | None = None,
    ) -> VoucherData:
        """Change a voucher, bumping version and stamp.

        Without arguments the description gets an " (edited)" suffix, so a test can make a
        visible edit with one call. New lines must balance.
        """
        voucher = self.voucher(voucher_id)
        if lines is not None:
            _check_balanced(lines)
        self._unindex(voucher)
        if lines is not None:
            voucher.lines = list(lines)
        if date is not None:
            voucher.date = date
        if description is not None:
            voucher.description = description
        elif lines is None and date is None:
            voucher.description = f"{voucher.description} (edited)"
        voucher.version += 1
        voucher.modified_at = self._next_modified(at)
        self._reindex(voucher)
        return voucher

    def add_voucher(
        self,
        *,
        date: dt.date,
        description: str,
        lines: Sequence[LineData],
        series: str = "API",
        at: dt.datetime | None = None,
    ) -> VoucherData:
        """Append a voucher posted through an API (lines must balance; period checks are the
        vendor module's job, since each vendor answers them in its own words)."""
        _check_balanced(lines)
        next_id = (self.vouchers[-1].id + 1) if self.vouchers else 1
        number = 1 + sum(
            1 for v in self.vouchers if v.series == series and v.date.year == date.year
        )
        voucher = VoucherData(
            id=next_id,
            series=series,
            number=number,
            date=date,
            description=description,
            lines=list(lines),
            modified_at=self._next_modified(at),
        )
        self._index[next_id] = len(self.vouchers)
        self.vouchers.append(voucher)
        self._reindex(voucher)
        return voucher


class _VoucherIndexes:
    """A company's vouchers by date and by modification date, and each account's daily
    turnover of valid vouchers; kept current by :class:`CompanyData`'s change methods."""

    __slots__ = ("by_date", "by_modified", "moves")

    def __init__(self) -> None:
        self.by_date: dict[dt.date, dict[int, None]] = {}
        self.by_modified: dict[dt.date, dict[int, None]] = {}
        self.moves: dict[str, dict[dt.date, tuple[Decimal, Decimal]]] = {}

    @staticmethod
    def _modified_day(voucher: VoucherData) -> dt.date:
        return voucher.modified_at.astimezone(dt.UTC).date()

    def add(self, voucher: VoucherData) -> None:
        self.by_date.setdefault(voucher.date, {})[voucher.id] = None
        self.by_modified.setdefault(self._modified_day(voucher), {})[voucher.id] = None
        self._book(voucher, 1)

    def remove(self, voucher: VoucherData) -> None:
        self.by_date.get(voucher.date, {}).pop(voucher.id, None)
        self.by_modified.get(self._modified_day(voucher), {}).pop(voucher.id, None)
        self._book(voucher, -1)

    def _book(self, voucher: VoucherData, sign: int) -> None:
        if voucher.status != "valid":
            return
        for line in voucher.lines:
            days = self.moves.setdefault(line.account, {})
            debit, credit = days.get(voucher.date, (_ZERO, _ZERO))
            if line.amount > 0:
                debit += sign * line.amount
            else:
                credit -= sign * line.amount
            days[voucher.date] = (debit, credit)


def _check_balanced(lines: Sequence[LineData]) -> None:
    total = sum((line.amount for line in lines), Decimal(0))
    if total != 0:
        raise ValueError(f"voucher lines do not balance: the sum is {total}")


# --------------------------------------------------------------------------------------------
# Business IDs with valid check digits
# --------------------------------------------------------------------------------------------


def fi_business_id(rng: random.Random) -> str:
    """A random Finnish Y-tunnus ``NNNNNNN-C`` with a valid check digit."""
    weights = (7, 9, 10, 5, 8, 4, 2)
    while True:
        body = f"{rng.randint(1000000, 3299999):07d}"
        remainder = sum(w * int(d) for w, d in zip(weights, body, strict=True)) % 11
        if remainder == 1:  # no valid ID exists for such a body
            continue
        check = 0 if remainder == 0 else 11 - remainder
        return f"{body}-{check}"


def no_business_id(rng: random.Random) -> str:
    """A random Norwegian organisation number (nine digits, MOD11 check digit)."""
    weights = (3, 2, 7, 6, 5, 4, 3, 2)
    while True:
        head = f"{rng.choice('89')}{rng.randint(0, 9999999):07d}"
        check = 11 - sum(w * int(d) for w, d in zip(weights, head, strict=True)) % 11
        if check == 10:
            continue
        return f"{head}{0 if check == 11 else check}"


def se_business_id(rng: random.Random) -> str:
    """A random Swedish organisation number ``NNNNNN-NNNN`` (legal entity, Luhn check)."""
    # 55xxxx is the aktiebolag range; the third digit >= 2 marks a legal entity.
    payload = f"55{rng.randint(2, 9)}{rng.randint(0, 999999):06d}"
    total = 0
    for index, char in enumerate(reversed(payload)):
        digit = int(char)
        if index % 2 == 0:
            digit *= 2
            if digit > 9:
                digit -= 9
        total += digit
    check = (10 - total % 10) % 10
    number = payload + str(check)
    return f"{number[:6]}-{number[6:]}"


def nl_business_id(rng: random.Random) -> str:
    """A random Dutch KvK number (eight digits, no check digit)."""
    return f"{rng.randint(10000000, 99999999)}"


_BUSINESS_ID = {
    "FI": fi_business_id,
    "NO": no_business_id,
    "SE": se_business_id,
    "NL": nl_business_id,
}


# --------------------------------------------------------------------------------------------
# Charts of accounts and dimensions per country
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Chart:
    """A country's chart plus the roles the generator books against."""

    accounts: tuple[tuple[str, str, AccountType], ...]
    inactive: tuple[tuple[str, str, AccountType], ...]
    bank: str
    receivables: str
    payables: str
    vat_out: str
    vat_in: str
    revenue: tuple[str, ...]
    expense: tuple[str, ...]
    wages: str
    social_expense: str
    pension_expense: str
    tax_withheld: str
    social_liability: str
    pension_liability: str
    net_wages: str
    sales_vat_code: str
    purchase_vat_code: str
    series: Mapping[VoucherKind, str]
    dimension_names: tuple[str, str, str]
    cost_centres: tuple[str, ...]
    name_parts: tuple[tuple[str, ...], tuple[str, ...], str]


# Finnish charts number accounts 1000-9999 (1 assets, 2 equity and liabilities, 3 revenue,
# 4-9 expenses and financial items), in the style of the Finnish accounting firms' model.
_FI = _Chart(
    accounts=(
        ("1100", "Koneet ja kalusto", "asset"),
        ("1700", "Myyntisaamiset", "asset"),
        ("1763", "Arvonlisäverosaamiset", "asset"),
        ("1910", "Pankkitili", "asset"),
        ("2000", "Osakepääoma", "equity"),
        ("2250", "Edellisten tilikausien voitto", "equity"),
        ("2871", "Ostovelat", "liability"),
        ("2920", "Ennakonpidätysvelka", "liability"),
        ("2930", "Sosiaaliturvamaksuvelka", "liability"),
        ("2939", "Arvonlisäverovelka", "liability"),
        ("2950", "Eläkevakuutusmaksuvelka", "liability"),
        ("2960", "Palkkavelat", "liability"),
        ("3000", "Myynti", "revenue"),
        ("3100", "Palvelumyynti", "revenue"),
        ("3300", "Vientimyynti", "revenue"),
        ("4000", "Ostot", "expense"),
        ("4450", "Alihankinnat", "expense"),
        ("5000", "Palkat", "expense"),
        ("6130", "Eläkekulut", "expense"),
        ("6410", "Sosiaaliturvamaksut", "expense"),
        ("7010", "Vuokrat", "expense"),
        ("7380", "Matkakulut", "expense"),
        ("7600", "Markkinointikulut", "expense"),
        ("7800", "Hallintokulut", "expense"),
        ("9440", "Korkokulut", "expense"),
    ),
    inactive=(("7390", "Edustuskulut (vanha)", "expense"),),
    bank="1910",
    receivables="1700",
    payables="2871",
    vat_out="2939",
    vat_in="1763",
    revenue=("3000", "3100", "3300"),
    expense=("4000", "4450", "7010", "7380", "7600", "7800"),
    wages="5000",
    social_expense="6410",
    pension_expense="6130",
    tax_withheld="2920",
    social_liability="2930",
    pension_liability="2950",
    net_wages="2960",
    sales_vat_code="KOMY",
    purchase_vat_code="KOOS",
    series={"sales": "MY", "purchase": "OL", "bank": "TO", "journal": "MU"},
    dimension_names=("Kustannuspaikka", "Kustannusyksikkö", "Projekti"),
    cost_centres=("Hallinto", "Myynti", "Tuotanto", "Tietohallinto"),
    name_parts=(("Järvi", "Kivi", "Koivu", "Revontuli", "Saimaa"), ("Tekniikka", "Palvelut"), "Oy"),
)

# Norwegian Standard Chart of Accounts (NS 4102): classes 1-8.
_NO = _Chart(
    accounts=(
        ("1200", "Maskiner og anlegg", "asset"),
        ("1500", "Kundefordringer", "asset"),
        ("1920", "Bankinnskudd", "asset"),
        ("2000", "Aksjekapital", "equity"),
        ("2050", "Annen egenkapital", "equity"),
        ("2400", "Leverandørgjeld", "liability"),
        ("2600", "Forskuddstrekk", "liability"),
        ("2700", "Utgående merverdiavgift", "liability"),
        ("2710", "Inngående merverdiavgift", "liability"),
        ("2770", "Skyldig arbeidsgiveravgift", "liability"),
        ("2780", "Skyldig pensjon", "liability"),
        ("2930", "Skyldig lønn", "liability"),
        ("3000", "Salgsinntekt, avgiftspliktig", "revenue"),
        ("3100", "Salgsinntekt, avgiftsfri", "revenue"),
        ("3600", "Leieinntekt", "revenue"),
        ("4300", "Innkjøp av varer for videresalg", "expense"),
        ("5000", "Lønn til ansatte", "expense"),
        ("5400", "Arbeidsgiveravgift", "expense"),
        ("5420", "Innberetningspliktig pensjonskostnad", "expense"),
        ("6300", "Leie lokale", "expense"),
        ("6800", "Kontorrekvisita", "expense"),
        ("7100", "Bilgodtgjørelse", "expense"),
        ("7320", "Reklamekostnad", "expense"),
        ("7770", "Bank og kortgebyrer", "expense"),
        ("8150", "Annen rentekostnad", "expense"),
    ),
    inactive=(("7350", "Representasjon (utgått)", "expense"),),
    bank="1920",
    receivables="1500",
    payables="2400",
    vat_out="2700",
    vat_in="2710",
    revenue=("3000", "3100", "3600"),
    expense=("4300", "6300", "6800", "7100", "7320", "7770"),
    wages="5000",
    social_expense="5400",
    pension_expense="5420",
    tax_withheld="2600",
    social_liability="2770",
    pension_liability="2780",
    net_wages="2930",
    # SAF-T standard tax codes: 3 = output VAT high rate, 1 = input VAT high rate.
    sales_vat_code="3",
    purchase_vat_code="1",
    series={"sales": "SF", "purchase": "LF", "bank": "BA", "journal": "MV"},
    dimension_names=("Avdeling", "Produkt", "Prosjekt"),
    cost_centres=("Administrasjon", "Salg", "Produksjon", "IT"),
    name_parts=(("Fjord", "Nordlys", "Vidde", "Bjørk", "Havbris"), ("Teknikk", "Tjenester"), "AS"),
)

# BAS chart (Sweden): classes 1-8.
_SE = _Chart(
    accounts=(
        ("1220", "Inventarier och verktyg", "asset"),
        ("1510", "Kundfordringar", "asset"),
        ("1930", "Företagskonto", "asset"),
        ("2081", "Aktiekapital", "equity"),
        ("2091", "Balanserad vinst eller förlust", "equity"),
        ("2440", "Leverantörsskulder", "liability"),
        ("2611", "Utgående moms på försäljning inom Sverige, 25 %", "liability"),
        ("2641", "Debiterad ingående moms", "liability"),
        ("2710", "Personalskatt", "liability"),
        ("2731", "Avräkning lagstadgade sociala avgifter", "liability"),
        ("2740", "Avräkning pensionspremier", "liability"),
        ("2821", "Löneskulder", "liability"),
        ("3001", "Försäljning inom Sverige, 25 % moms", "revenue"),
        ("3041", "Försäljning tjänster inom Sverige, 25 % moms", "revenue"),
        ("3105", "Försäljning varor till land utanför EU", "revenue"),
        ("4010", "Inköp material och varor", "expense"),
        ("5010", "Lokalhyra", "expense"),
        ("6110", "Kontorsmateriel", "expense"),
        ("6212", "Mobiltelefon", "expense"),
        ("5910", "Annonsering", "expense"),
        ("6570", "Bankkostnader", "expense"),
        ("7210", "Löner till tjänstemän", "expense"),
        ("7411", "Premier för kollektiva pensionsförsäkringar", "expense"),
        ("7510", "Arbetsgivaravgifter", "expense"),
        ("8410", "Räntekostnader för långfristiga skulder", "expense"),
    ),
    inactive=(("6071", "Representation, avdragsgill (gammal)", "expense"),),
    bank="1930",
    receivables="1510",
    payables="2440",
    vat_out="2611",
    vat_in="2641",
    revenue=("3001", "3041", "3105"),
    expense=("4010", "5010", "6110", "6212", "5910", "6570"),
    wages="7210",
    social_expense="7510",
    pension_expense="7411",
    tax_withheld="2710",
    social_liability="2731",
    pension_liability="2740",
    net_wages="2821",
    # UNCONFIRMED: sandbox VAT codes in the SIE/Fortnox style (MP1 sales 25 %, IP1 input).
    sales_vat_code="MP1",
    purchase_vat_code="IP1",
    series={"sales": "B", "purchase": "C", "bank": "D", "journal": "A"},
    dimension_names=("Kostnadsställe", "Kostnadsbärare", "Projekt"),
    cost_centres=("Administration", "Försäljning", "Produktion", "IT"),
    name_parts=(("Älv", "Skog", "Fjäll", "Ek", "Sjö"), ("Teknik", "Konsult"), "AB"),
)

# A common Dutch layout: 0 fixed assets and equity, 1 financial accounts, 4 costs,
# 7 cost of sales, 8 revenue.
_NL = _Chart(
    accounts=(
        ("0200", "Inventaris", "asset"),
        ("0500", "Geplaatst kapitaal", "equity"),
        ("0600", "Overige reserves", "equity"),
        ("1100", "Bank", "asset"),
        ("1300", "Debiteuren", "asset"),
        ("1510", "Te betalen btw hoog", "liability"),
        ("1520", "Te vorderen btw", "asset"),
        ("1540", "Af te dragen loonheffing", "liability"),
        ("1545", "Af te dragen sociale lasten", "liability"),
        ("1550", "Af te dragen pensioenpremies", "liability"),
        ("1560", "Netto lonen", "liability"),
        ("1600", "Crediteuren", "liability"),
        ("4000", "Bruto lonen", "expense"),
        ("4010", "Sociale lasten werkgever", "expense"),
        ("4020", "Pensioenlasten", "expense"),
        ("4100", "Huur", "expense"),
        ("4300", "Kantoorkosten", "expense"),
        ("4400", "Autokosten", "expense"),
        ("4500", "Verkoopkosten", "expense"),
        ("4900", "Bankkosten", "expense"),
        ("4950", "Rentelasten", "expense"),
        ("7000", "Inkoopwaarde van de omzet", "expense"),
        ("8000", "Omzet hoog tarief", "revenue"),
        ("8100", "Omzet laag tarief", "revenue"),
        ("8200", "Omzet diensten", "revenue"),
    ),
    inactive=(("4600", "Representatiekosten (oud)", "expense"),),
    bank="1100",
    receivables="1300",
    payables="1600",
    vat_out="1510",
    vat_in="1520",
    revenue=("8000", "8100", "8200"),
    expense=("7000", "4100", "4300", "4400", "4500", "4900"),
    wages="4000",
    social_expense="4010",
    pension_expense="4020",
    tax_withheld="1540",
    social_liability="1545",
    pension_liability="1550",
    net_wages="1560",
    # UNCONFIRMED: sandbox VAT codes (verkoop/inkoop hoog tarief).
    sales_vat_code="VH",
    purchase_vat_code="IH",
    series={"sales": "VK", "purchase": "IK", "bank": "BNK", "journal": "MEM"},
    dimension_names=("Kostenplaats", "Kostendrager", "Project"),
    cost_centres=("Administratie", "Verkoop", "Productie", "ICT"),
    name_parts=(("Polder", "Duin", "Tulp", "Molen", "Gracht"), ("Techniek", "Diensten"), "B.V."),
)

_CHARTS: Final[dict[Country, _Chart]] = {"FI": _FI, "NO": _NO, "SE": _SE, "NL": _NL}

_DESCRIPTIONS: Final[dict[VoucherKind, tuple[str, ...]]] = {
    "sales": ("Sales invoice", "Service invoice", "Export invoice"),
    "purchase": ("Purchase invoice", "Supplier invoice", "Subcontracting invoice"),
    "bank": ("Customer payment", "Bank statement", "Incoming payments"),
    "journal": ("Card expenses", "Accrual", "Memo voucher"),
}


def _vat_permille(country: Country, day: dt.date) -> int:
    """Standard VAT rate in tenths of a percent."""
    if country == "FI":
        # Finland raised the standard rate from 24 % to 25.5 % on 1 September 2024.
        return 255 if day >= dt.date(2024, 9, 1) else 240
    return {"NO": 250, "SE": 250, "NL": 210}[country]


def _money(cents: int) -> Decimal:
    return Decimal(cents).scaleb(-2)


# --------------------------------------------------------------------------------------------
# The generator
# --------------------------------------------------------------------------------------------


class _Generator:
    def __init__(self, rng: random.Random, country: Country, chart: _Chart) -> None:
        self.rng = rng
        self.country = country
        self.chart = chart
        self.cost_centres = [f"{100 * (i + 1)}" for i in range(len(chart.cost_centres))]
        self.cost_units = [f"CU{i:02d}" for i in range(1, 6)]
        self.projects = [f"P{1000 + i}" for i in range(1, 9)]
        self._dims_cache: dict[tuple[str | None, str | None, str | None], Mapping[str, str]] = {}
        self._vat_percent_cache: dict[int, Decimal] = {}

    def dimensions(self) -> list[DimensionData]:
        chart = self.chart
        centres = [
            DimensionObjectData(code, name)
            for code, name in zip(self.cost_centres, chart.cost_centres, strict=True)
        ]
        centres.append(DimensionObjectData("900", f"{chart.cost_centres[0]} 2", active=False))
        units = [DimensionObjectData(code, f"Product line {code[2:]}") for code in self.cost_units]
        projects = [
            DimensionObjectData(code, f"Project {code[1:]}", active=index < 6)
            for index, code in enumerate(self.projects)
        ]
        return [
            DimensionData("1", chart.dimension_names[0], "cost_centre", centres),
            DimensionData("2", chart.dimension_names[1], "cost_unit", units),
            DimensionData("3", chart.dimension_names[2], "project", projects),
        ]

    def line_dimensions(self) -> Mapping[str, str]:
        rng = self.rng
        centre = rng.choice(self.cost_centres)
        unit = rng.choice(self.cost_units) if rng.random() < 0.5 else None
        # Only the six active projects are booked to.
        project = self.projects[rng.randrange(6)] if rng.random() < 0.2 else None
        key = (centre, unit, project)
        cached = self._dims_cache.get(key)
        if cached is None:
            values = {"cost_centre": centre}
            if unit is not None:
                values["cost_unit"] = unit
            if project is not None:
                values["project"] = project
            cached = self._dims_cache[key] = MappingProxyType(values)
        return cached

    def vat_percent(self, permille: int) -> Decimal:
        cached = self._vat_percent_cache.get(permille)
        if cached is None:
            cached = self._vat_percent_cache[permille] = Decimal(permille).scaleb(-1).normalize()
        return cached

    def plan(self, lines: int) -> list[tuple[VoucherKind, int]]:
        """Voucher kinds and line counts adding up to exactly ``lines``."""
        rng = self.rng
        plan: list[tuple[VoucherKind, int]] = []
        remaining = lines
        while remaining > 0:
            if remaining <= 7:
                # A bank voucher can have any number >= 2 of lines: it closes the plan.
                plan.append(("bank", remaining))
                break
            draw = rng.random()
            kind: VoucherKind
            if draw < 0.4:
                kind, count = "sales", 2 + rng.randint(1, 3)
            elif draw < 0.75:
                kind, count = "purchase", 2 + rng.randint(1, 4)
            elif draw < 0.9:
                kind, count = "bank", 1 + rng.randint(1, 3)
            else:
                kind, count = "journal", 2 + rng.randint(1, 3)
            plan.append((kind, count))
            remaining -= count
        return plan

    def voucher_lines(
        self, kind: VoucherKind, count: int, day: dt.date, text: str
    ) -> list[LineData]:
        rng = self.rng
        chart = self.chart
        result: list[LineData] = []
        if kind == "bank":
            total = 0
            for line_no in range(2, count + 1):
                cents = rng.randint(5_000, 2_500_000)
                total += cents
                result.append(LineData(line_no, chart.receivables, _money(-cents), text))
            result.insert(0, LineData(1, chart.bank, _money(total), text))
            return result
        permille = _vat_permille(self.country, day)
        vat_percent = self.vat_percent(permille)
        # sales: receivable, revenue lines, output VAT; purchase/journal: expense lines,
        # input VAT, and the payable or the bank.
        sign = -1 if kind == "sales" else 1
        accounts = chart.revenue if kind == "sales" else chart.expense
        vat_code = chart.sales_vat_code if kind == "sales" else chart.purchase_vat_code
        net_total = 0
        vat_total = 0
        for line_no in range(2, count):
            net = rng.randint(1_000, 1_000_000)
            net_total += net
            vat_total += (net * permille + 500) // 1000
            result.append(
                LineData(
                    line_no,
                    rng.choice(accounts),
                    _money(sign * net),
                    text,
                    vat_percent,
                    vat_code,
                    self.line_dimensions(),
                )
            )
        vat_account = chart.vat_out if kind == "sales" else chart.vat_in
        result.append(LineData(count, vat_account, _money(sign * vat_total), text))
        counter_account = {"sales": chart.receivables, "purchase": chart.payables}.get(
            kind, chart.bank
        )
        result.insert(
            0, LineData(1, counter_account, _money(-sign * (net_total + vat_total)), text)
        )
        return result

    def payroll(self, fiscal_years: list[FiscalYearData], business_id: str) -> list[PayrollRunData]:
        """Monthly runs; about one in four also carries corrections of earlier periods."""
        rng = self.rng
        chart = self.chart
        groups = sorted(
            {(rng.choice(self.cost_centres), rng.choice(self.cost_units)) for _ in range(4)}
        )
        base = {group: rng.randint(800_000, 4_000_000) for group in groups}
        runs: list[PayrollRunData] = []
        run_number = 0
        for year in fiscal_years:
            for period_index, period in enumerate(year.periods, start=1):
                run_number += 1
                run_id = f"{run_number}"
                day = period.start.replace(day=25)
                reference = f"RUN-{period.start.year}-{period_index:02d}-{business_id[-4:]}"
                gross = {g: base[g] + rng.randint(-50_000, 150_000) for g in groups}
                runs.append(
                    PayrollRunData(
                        run_id,
                        period.start.year,
                        period_index,
                        day,
                        "normal",
                        None,
                        reference,
                        self._payroll_lines(gross, chart),
                    )
                )
                if period_index >= 2 and rng.random() < 0.25:
                    depth = min(period_index - 1, rng.randint(1, 2))
                    for corrected in range(period_index - depth, period_index):
                        # A retroactive raise, or now and then a reversal of an overpayment.
                        delta = {g: rng.randint(5_000, 60_000) for g in groups[:2]}
                        lines = self._payroll_lines(delta, chart)
                        if rng.random() < 0.3:
                            for line in lines:
                                line.debit_credit = "C" if line.debit_credit == "D" else "D"
                        runs.append(
                            PayrollRunData(
                                run_id,
                                period.start.year,
                                period_index,
                                day,
                                "correction",
                                corrected,
                                reference,
                                lines,
                            )
                        )
        return runs

    @staticmethod
    def _payroll_lines(
        gross: Mapping[tuple[str, str], int], chart: _Chart
    ) -> list[PayrollLineData]:
        """Wages, employer costs and the liabilities for gross pay per (centre, unit)."""
        lines: list[PayrollLineData] = []
        tax = social = pension_employer = pension_employee = 0
        for (centre, unit), cents in gross.items():
            group_social = cents * 20 // 100
            group_pension = cents * 15 // 100
            social += group_social
            pension_employer += group_pension
            tax += cents * 25 // 100
            pension_employee += cents * 7 // 100
            lines.append(
                PayrollLineData(chart.wages, centre, unit, _money(cents), "D", "Salaries", "1000")
            )
            lines.append(
                PayrollLineData(
                    chart.social_expense,
                    centre,
                    unit,
                    _money(group_social),
                    "D",
                    "Employer social costs",
                    "4000",
                )
            )
            lines.append(
                PayrollLineData(
                    chart.pension_expense,
                    centre,
                    unit,
                    _money(group_pension),
                    "D",
                    "Employer pension",
                    "4100",
                )
            )
        total_gross = sum(gross.values())
        net = total_gross - tax - pension_employee
        for account, cents, text, code in (
            (chart.tax_withheld, tax, "Tax withheld", "7000"),
            (chart.social_liability, social, "Social costs payable", "7050"),
            (chart.pension_liability, pension_employer + pension_employee, "Pension", "7100"),
            (chart.net_wages, net, "Net wages payable", "9000"),
        ):
            lines.append(PayrollLineData(account, None, None, _money(cents), "C", text, code))
        return lines


def _fiscal_years(last_year: int, years: int, lock_date: dt.date) -> list[FiscalYearData]:
    result = []
    for year in range(last_year - years + 1, last_year + 1):
        periods = []
        for month in range(1, 13):
            start = dt.date(year, month, 1)
            end = (
                dt.date(year + 1, 1, 1) if month == 12 else dt.date(year, month + 1, 1)
            ) - dt.timedelta(days=1)
            periods.append(PeriodData(start, end, closed=end <= lock_date))
        result.append(FiscalYearData(dt.date(year, 1, 1), dt.date(year, 12, 31), periods))
    return result


def generate_company(
    seed: int,
    *,
    country: Country = "FI",
    lines: int = 2000,
    years: int = 2,
    last_year: int = 2025,
    lock_date: dt.date | None = None,
    name: str | None = None,
) -> CompanyData:
    """The books of one company, deterministic from ``seed`` and the arguments.

    ``lines`` is the exact number of voucher lines (0, or at least 2); vouchers are spread
    over ``years`` calendar fiscal years ending with ``last_year``. Periods ending on or
    before ``lock_date`` (default: 31 March of ``last_year``) are closed.
    """
    if country not in _CHARTS:
        raise ValueError(f"unsupported country {country!r}; expected one of {COUNTRIES}")
    if lines < 0 or lines == 1:
        raise ValueError("lines must be 0 or at least 2 (a voucher has two lines or more)")
    if years < 1:
        raise ValueError("years must be at least 1")
    rng = random.Random(f"{seed}:{country}")
    chart = _CHARTS[country]
    generator = _Generator(rng, country, chart)
    lock = lock_date if lock_date is not None else dt.date(last_year, 3, 31)
    fiscal_years = _fiscal_years(last_year, years, lock)

    business_id = _BUSINESS_ID[country](rng)
    first, second, suffix = chart.name_parts
    company_name = name or f"{rng.choice(first)} {rng.choice(second)} {suffix}"

    accounts = [
        AccountData(
            number,
            account_name,
            account_type,
            vat_code=chart.sales_vat_code
            if number in chart.revenue
            else chart.purchase_vat_code
            if number in chart.expense
            else None,
        )
        for number, account_name, account_type in chart.accounts
    ]
    accounts.extend(AccountData(n, a, t, active=False) for n, a, t in chart.inactive)
    accounts.sort(key=lambda account: account.number)

    plan = generator.plan(lines)
    first_day = fiscal_years[0].start
    span_days = (fiscal_years[-1].end - first_day).days + 1
    vouchers: list[VoucherData] = []
    numbers: dict[tuple[str, int], int] = {}
    count = len(plan)
    previous_day: dt.date | None = None
    same_day = 0
    for index, (kind, line_count) in enumerate(plan):
        day = first_day + dt.timedelta(days=index * span_days // count)
        same_day = same_day + 1 if day == previous_day else 0
        previous_day = day
        series = chart.series[kind]
        key = (series, day.year)
        numbers[key] = number = numbers.get(key, 0) + 1
        text = f"{rng.choice(_DESCRIPTIONS[kind])} {number}"
        voucher = VoucherData(
            id=index + 1,
            series=series,
            number=number,
            date=day,
            description=text,
            lines=generator.voucher_lines(kind, line_count, day, text),
            # Entered in the evening of its date, a millisecond apart: strictly increasing.
            modified_at=dt.datetime(day.year, day.month, day.day, 18, tzinfo=dt.UTC)
            + dt.timedelta(milliseconds=same_day),
        )
        if rng.random() < 0.003:
            voucher.status = "invalidated"
            voucher.version = 2
        vouchers.append(voucher)

    return CompanyData(
        business_id=business_id,
        name=company_name,
        country=country,
        currency=_CURRENCY[country],
        accounts=accounts,
        dimensions=generator.dimensions(),
        fiscal_years=fiscal_years,
        vouchers=vouchers,
        payroll_runs=generator.payroll(fiscal_years, business_id),
    )
