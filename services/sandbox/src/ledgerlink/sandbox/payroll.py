"""A payroll year per employee: a company with monthly runs and retroactive corrections.

:func:`payroll_company` builds the books of one company (no vouchers) whose payroll runs
are made of each employee's wages, employer social costs and pension on the employee's cost
centre and cost unit, and the liabilities (tax withheld, social costs, pension, net wages)
without dimensions. Every fourth month or so a run also corrects one or two earlier months
(a retroactive raise, now and then a reversal): seed 003's "normal run in March with
corrections of the previous months". Deterministic from the seed.

The same seed gives the Visma.net side the same chart and dimensions, so a test can pair an
Nmbrs company with a Visma.net company that knows its accounts and dimension values.
"""

from __future__ import annotations

import datetime as dt
import random
from dataclasses import dataclass
from decimal import Decimal

from ledgerlink.sandbox.data import (
    _CHARTS,
    CompanyData,
    Country,
    PayrollLineData,
    PayrollRunData,
    generate_company,
)

__all__ = ["Employee", "payroll_company"]


@dataclass(frozen=True)
class Employee:
    """One employee: where their costs go, and their monthly gross pay in cents."""

    number: int
    cost_centre: str
    cost_unit: str
    gross_cents: int


def _money(cents: int) -> Decimal:
    return Decimal(cents).scaleb(-2)


def _employees(
    rng: random.Random, count: int, centres: list[str], units: list[str]
) -> list[Employee]:
    return [
        Employee(number, rng.choice(centres), rng.choice(units), rng.randint(250_000, 900_000))
        for number in range(1, count + 1)
    ]


def _lines(
    company: CompanyData, country: Country, pay: dict[Employee, int]
) -> list[PayrollLineData]:
    chart = _CHARTS[country]
    lines: list[PayrollLineData] = []
    tax = social = pension = net = 0
    for employee, cents in pay.items():
        sign = 1 if cents >= 0 else -1
        amount = abs(cents)
        employer_social = amount * 20 // 100
        employer_pension = amount * 15 // 100
        employee_tax = amount * 25 // 100
        employee_pension = amount * 7 // 100
        debit = "D" if sign > 0 else "C"
        for account, value, text, code in (
            (chart.wages, amount, "Salaries", "1000"),
            (chart.social_expense, employer_social, "Employer social costs", "4000"),
            (chart.pension_expense, employer_pension, "Employer pension", "4100"),
        ):
            lines.append(
                PayrollLineData(
                    account,
                    employee.cost_centre,
                    employee.cost_unit,
                    _money(value),
                    debit,  # type: ignore[arg-type]
                    text,
                    code,
                )
            )
        tax += sign * employee_tax
        social += sign * employer_social
        pension += sign * (employer_pension + employee_pension)
        net += sign * (amount - employee_tax - employee_pension)
    for account, cents, text, code in (
        (chart.tax_withheld, tax, "Tax withheld", "7000"),
        (chart.social_liability, social, "Social costs payable", "7050"),
        (chart.pension_liability, pension, "Pension", "7100"),
        (chart.net_wages, net, "Net wages payable", "9000"),
    ):
        side = "C" if cents >= 0 else "D"
        lines.append(
            PayrollLineData(account, None, None, _money(abs(cents)), side, text, code)  # type: ignore[arg-type]
        )
    return lines


def payroll_company(
    seed: int,
    *,
    employees: int = 300,
    year: int = 2025,
    country: Country = "NL",
    lock_date: dt.date | None = None,
    name: str | None = None,
) -> CompanyData:
    """A company with twelve monthly runs of ``employees`` people in ``year``.

    Periods ending on or before ``lock_date`` (default: none of ``year``) are closed. Runs
    are numbered 1..12 (the month); runs of months 3, 6, 8 and 11 also correct earlier months.
    """
    company = generate_company(
        seed,
        country=country,
        lines=0,
        years=1,
        last_year=year,
        lock_date=lock_date or dt.date(year - 1, 12, 31),
        name=name,
    )
    rng = random.Random(f"{seed}:payroll:{employees}")
    centres = [
        o.code for d in company.dimensions if d.kind == "cost_centre" for o in d.objects if o.active
    ]
    units = [
        o.code for d in company.dimensions if d.kind == "cost_unit" for o in d.objects if o.active
    ]
    staff = _employees(rng, employees, centres, units)
    runs: list[PayrollRunData] = []
    corrected_by = {3: (1, 2), 6: (5,), 8: (6, 7), 11: (10,)}
    for month in range(1, 13):
        run_id = str(month)
        day = dt.date(year, month, 25)
        # Unique per company (seed): a Visma.net company may receive several payrolls.
        reference = f"RUN-{year}-{month:02d}-{seed % 1000:03d}"
        pay = {employee: employee.gross_cents + rng.randint(-20_000, 20_000) for employee in staff}
        runs.append(
            PayrollRunData(
                run_id, year, month, day, "normal", None, reference, _lines(company, country, pay)
            )
        )
        for earlier in corrected_by.get(month, ()):
            chosen = rng.sample(staff, k=min(len(staff), max(2, len(staff) // 10)))
            delta = {employee: rng.randint(1_000, 40_000) for employee in chosen}
            if rng.random() < 0.3:
                delta = {employee: -cents for employee, cents in delta.items()}
            runs.append(
                PayrollRunData(
                    run_id,
                    year,
                    month,
                    day,
                    "correction",
                    earlier,
                    reference,
                    _lines(company, country, delta),
                )
            )
    company.payroll_runs = runs
    return company
