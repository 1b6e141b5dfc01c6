"""The sandbox answers windows of dates from indexes kept current by every change: after
edits, moves, invalidations, deletions and additions they give exactly what a walk over
every voucher gives."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from ledgerlink.sandbox.data import CompanyData, LineData, generate_company

_T0 = dt.datetime(2025, 6, 1, 12, tzinfo=dt.UTC)


def _walk_dated(company: CompanyData, start: dt.date, end: dt.date) -> list[int]:
    return [v.id for v in company.vouchers if start <= v.date <= end]


def _walk_modified(company: CompanyData, start: dt.date, end: dt.date) -> list[int]:
    return [
        v.id for v in company.vouchers if start <= v.modified_at.astimezone(dt.UTC).date() <= end
    ]


def _walk_moves(company: CompanyData) -> dict[str, dict[dt.date, tuple[Decimal, Decimal]]]:
    moves: dict[str, dict[dt.date, tuple[Decimal, Decimal]]] = {}
    for voucher in company.vouchers:
        if voucher.status != "valid":
            continue
        for line in voucher.lines:
            debit, credit = moves.setdefault(line.account, {}).get(
                voucher.date, (Decimal(0), Decimal(0))
            )
            if line.amount > 0:
                debit += line.amount
            else:
                credit -= line.amount
            moves[line.account][voucher.date] = (debit, credit)
    return moves


def _nonzero(
    moves: object,
) -> dict[str, dict[dt.date, tuple[Decimal, Decimal]]]:
    assert isinstance(moves, dict)
    return {
        account: {day: pair for day, pair in days.items() if pair != (0, 0)}
        for account, days in moves.items()
        if any(pair != (0, 0) for pair in days.values())
    }


def _check(company: CompanyData) -> None:
    for start, end in [
        (dt.date(2024, 1, 1), dt.date(2024, 1, 31)),
        (dt.date(2025, 2, 10), dt.date(2025, 3, 5)),
        (dt.date(2020, 1, 1), dt.date(2030, 12, 31)),
        (dt.date(2025, 3, 5), dt.date(2025, 2, 10)),
    ]:
        assert [v.id for v in company.vouchers_dated(start, end)] == _walk_dated(
            company, start, end
        )
        assert [v.id for v in company.vouchers_modified_between(start, end)] == _walk_modified(
            company, start, end
        )
    assert _nonzero(company.account_movements()) == _nonzero(_walk_moves(company))


def test_indexes_follow_every_change() -> None:
    company = generate_company(3, lines=600)
    _check(company)  # builds the indexes
    first, second, third = (v.id for v in company.vouchers[:3])
    company.edit_voucher(first, at=_T0)
    company.edit_voucher(
        second,
        date=dt.date(2025, 2, 14),
        lines=[LineData(1, "1910", Decimal("12.50")), LineData(2, "3000", Decimal("-12.50"))],
        at=_T0 + dt.timedelta(days=3),
    )
    company.invalidate_voucher(third, at=_T0 + dt.timedelta(days=40))
    company.delete_voucher(company.vouchers[-1].id, at=_T0 + dt.timedelta(days=41))
    added = company.add_voucher(
        date=dt.date(2025, 3, 1),
        description="added",
        lines=[LineData(1, "1910", Decimal("5.00")), LineData(2, "3000", Decimal("-5.00"))],
        at=_T0 + dt.timedelta(days=2),
    )
    _check(company)
    changed = added.modified_at.date()
    assert added in company.vouchers_modified_between(changed, changed)
    assert company.voucher(second) in company.vouchers_dated(
        dt.date(2025, 2, 14), dt.date(2025, 2, 14)
    )
