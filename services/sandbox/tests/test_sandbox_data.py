"""The generated books: deterministic, balanced, valid IDs, charts, periods, payroll."""

from __future__ import annotations

import datetime as dt
import resource
import time
from collections.abc import Callable
from decimal import Decimal

import pytest

from ledgerlink.sandbox.data import COUNTRIES, CompanyData, Country, LineData, generate_company


def _fi_valid(value: str) -> bool:
    body, check = value.split("-")
    remainder = sum(w * int(d) for w, d in zip((7, 9, 10, 5, 8, 4, 2), body, strict=True)) % 11
    return remainder != 1 and int(check) == (0 if remainder == 0 else 11 - remainder)


def _no_valid(value: str) -> bool:
    weights = (3, 2, 7, 6, 5, 4, 3, 2)
    check = 11 - sum(w * int(d) for w, d in zip(weights, value[:8], strict=True)) % 11
    return value[0] in "89" and check != 10 and int(value[8]) == (0 if check == 11 else check)


def _se_valid(value: str) -> bool:
    digits = value.replace("-", "")
    total = 0
    for index, char in enumerate(reversed(digits)):
        digit = int(char)
        if index % 2 == 1:
            digit *= 2
            digit -= 9 if digit > 9 else 0
        total += digit
    return len(digits) == 10 and total % 10 == 0 and int(digits[2]) >= 2


def _nl_valid(value: str) -> bool:
    return len(value) == 8 and value.isdigit()


_VALID: dict[str, Callable[[str], bool]] = {
    "FI": _fi_valid,
    "NO": _no_valid,
    "SE": _se_valid,
    "NL": _nl_valid,
}


def _fingerprint(company: CompanyData) -> list[tuple[object, ...]]:
    return [
        (
            v.id,
            v.series,
            v.number,
            v.date,
            v.description,
            [(ln.account, ln.amount) for ln in v.lines],
        )
        for v in company.vouchers
    ]


@pytest.mark.parametrize("country", COUNTRIES)
def test_same_seed_same_books_other_seed_other_books(country: Country) -> None:
    first = generate_company(11, country=country, lines=500)
    again = generate_company(11, country=country, lines=500)
    other = generate_company(12, country=country, lines=500)
    assert _fingerprint(first) == _fingerprint(again)
    assert first.business_id == again.business_id
    assert _fingerprint(first) != _fingerprint(other)


@pytest.mark.parametrize("country", COUNTRIES)
def test_business_ids_carry_valid_check_digits(country: Country) -> None:
    ids = {generate_company(seed, country=country, lines=0).business_id for seed in range(60)}
    assert len(ids) > 50
    invalid = [value for value in ids if not _VALID[country](value)]
    assert invalid == []


@pytest.mark.parametrize("lines", [0, 2, 3, 7, 8, 9, 2001])
def test_exact_line_count(lines: int) -> None:
    assert generate_company(3, lines=lines).line_count == lines


def test_one_line_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 2"):
        generate_company(3, lines=1)


@pytest.mark.parametrize("country", COUNTRIES)
def test_vouchers_balance_and_book_to_the_chart_and_dimensions(country: Country) -> None:
    company = generate_company(5, country=country, lines=3000)
    active_accounts = {a.number for a in company.accounts if a.active}
    active_objects = {(d.kind, o.code) for d in company.dimensions for o in d.objects if o.active}
    assert {d.kind for d in company.dimensions} == {"cost_centre", "cost_unit", "project"}
    assert any(not o.active for d in company.dimensions for o in d.objects)
    assert any(not a.active for a in company.accounts)
    for voucher in company.vouchers:
        assert voucher.balance == 0, voucher.id
        assert len(voucher.lines) >= 2
        assert [line.line_no for line in voucher.lines] == list(range(1, len(voucher.lines) + 1))
        for line in voucher.lines:
            assert line.account in active_accounts
            assert line.amount == line.amount.quantize(Decimal("0.01"))
            for kind, code in line.dimensions.items():
                assert (kind, code) in active_objects
    assert any(line.dimensions for v in company.vouchers for line in v.lines)
    assert any(line.vat_code for v in company.vouchers for line in v.lines)


def test_country_charts_and_currencies() -> None:
    books = {c: generate_company(1, country=c, lines=0) for c in COUNTRIES}
    assert {c: b.currency for c, b in books.items()} == {
        "FI": "EUR",
        "NO": "NOK",
        "SE": "SEK",
        "NL": "EUR",
    }
    assert books["FI"].account("1910") is not None
    assert books["NO"].account("1920") is not None
    assert books["SE"].account("1930") is not None
    assert books["NL"].account("1100") is not None
    no_numbers = [int(a.number) for a in books["NO"].accounts]
    assert min(no_numbers) >= 1000
    assert max(no_numbers) < 9000


def test_periods_close_up_to_the_lock_date() -> None:
    company = generate_company(2, lines=100, years=2, last_year=2025)
    assert [y.start.year for y in company.fiscal_years] == [2024, 2025]
    assert all(len(y.periods) == 12 for y in company.fiscal_years)
    assert company.lock_date == dt.date(2025, 3, 31)
    assert company.fiscal_years[0].closed
    assert not company.is_open(dt.date(2025, 3, 31))
    assert company.is_open(dt.date(2025, 4, 1))
    assert not company.is_open(dt.date(2026, 1, 1))
    assert all(
        company.fiscal_years[0].start <= v.date <= company.fiscal_years[-1].end
        for v in company.vouchers
    )


def test_modified_at_grows_with_the_voucher_id() -> None:
    company = generate_company(4, lines=5000)
    stamps = [v.modified_at for v in company.vouchers]
    assert stamps == sorted(stamps)
    assert len(set(stamps)) == len(stamps)


def test_invalidate_and_edit_bump_version_and_stamp() -> None:
    company = generate_company(4, lines=200)
    before = max(v.modified_at for v in company.vouchers)
    target = company.vouchers[5]
    invalidated = company.invalidate_voucher(target.id, at=dt.datetime(2020, 1, 1, tzinfo=dt.UTC))
    assert invalidated.status == "invalidated"
    assert invalidated.version == 2
    # A clock behind the data still yields a later stamp: incremental reads must see it.
    assert invalidated.modified_at > before
    edited = company.edit_voucher(company.vouchers[6].id)
    assert edited.description.endswith("(edited)")
    assert edited.version == 2
    assert edited.modified_at > invalidated.modified_at
    assert company.vouchers_modified_since(before) == [invalidated, edited]
    with pytest.raises(ValueError, match="balance"):
        company.edit_voucher(
            edited.id, lines=[LineData(1, "1910", Decimal("1.00")), LineData(2, "3000", Decimal(0))]
        )


def test_add_voucher_appends_with_next_id_and_number() -> None:
    company = generate_company(4, lines=20)
    added = company.add_voucher(
        date=dt.date(2025, 5, 1),
        description="API journal",
        lines=[
            LineData(1, "1910", Decimal("10.00")),
            LineData(2, "3000", Decimal("-10.00")),
        ],
    )
    assert added.id == company.vouchers[-2].id + 1
    assert company.voucher(added.id) is added
    assert added.number == 1


@pytest.mark.parametrize("country", COUNTRIES)
def test_payroll_runs_balance_and_corrections_share_the_reference(country: Country) -> None:
    company = generate_company(9, country=country, lines=0, years=2)
    normal = company.normal_runs()
    assert len(normal) == 24
    corrections = [r for r in company.payroll_runs if r.kind == "correction"]
    assert corrections, "every generated company has retroactive corrections"
    for run in company.payroll_runs:
        assert run.balance == 0
        assert all(line.amount > 0 for line in run.lines)
        assert any(line.cost_centre for line in run.lines)
        assert any(line.cost_unit for line in run.lines)
        assert all(line.wage_code for line in run.lines)
    for correction in corrections:
        (parent,) = [r for r in normal if r.run_id == correction.run_id]
        assert correction.reference == parent.reference
        assert correction.corrects_period is not None
        assert 1 <= correction.corrects_period < parent.period
        assert correction.posting_period == correction.corrects_period
        entries = company.run_entries(parent.run_id)
        assert entries[0] is parent
        assert correction in entries
    corrected_wage_codes = {line.wage_code for c in corrections for line in c.lines}
    assert corrected_wage_codes <= {line.wage_code for r in normal for line in r.lines}


def test_a_million_lines_generate_fast_and_compact() -> None:
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.perf_counter()
    company = generate_company(1, country="SE", lines=1_000_000)
    elapsed = time.perf_counter() - started
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before) / 1024
    assert company.line_count == 1_000_000
    assert elapsed < 30
    assert grown_mb < 800
