"""The pure rules of the ledger sync: balance changes, fiscal years, reconciliation."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from ledgerlink.connectors.models import Dimension, DimensionObject, Period, Voucher, VoucherLine
from ledgerlink.importer.domain.ledger_sync import (
    DimensionResolver,
    StoredLine,
    fiscal_years_of,
    movement_delta,
    page_changes,
    page_warnings,
    reconcile_with_vendor,
)

JAN, FEB = dt.date(2025, 1, 1), dt.date(2025, 2, 1)


def line(day: dt.date, account: str, amount: str, *objects: tuple[str, str]) -> StoredLine:
    return StoredLine(day, account, Decimal(amount), tuple(objects))


def test_an_edit_changes_the_balances_by_the_difference_only() -> None:
    old = [line(JAN, "1910", "100.00", ("1", "A")), line(JAN, "3000", "-100.00")]
    new = [line(JAN, "1910", "120.00", ("1", "A")), line(JAN, "3000", "-120.00")]
    delta = movement_delta(old, new)
    assert delta == {
        (JAN, "1910", "", ""): [Decimal("20.00"), Decimal(0)],
        (JAN, "1910", "1", "A"): [Decimal("20.00"), Decimal(0)],
        (JAN, "3000", "", ""): [Decimal(0), Decimal("20.00")],
    }


def test_a_voucher_moved_to_another_period_leaves_the_first() -> None:
    old = [line(JAN, "1910", "5.00"), line(JAN, "3000", "-5.00")]
    new = [line(FEB, "1910", "5.00"), line(FEB, "3000", "-5.00")]
    delta = movement_delta(old, new)
    assert delta[(JAN, "1910", "", "")] == [Decimal("-5.00"), Decimal(0)]
    assert delta[(FEB, "1910", "", "")] == [Decimal("5.00"), Decimal(0)]


def test_an_unchanged_voucher_changes_nothing() -> None:
    same = [line(JAN, "1910", "5.00"), line(JAN, "3000", "-5.00")]
    assert movement_delta(same, same) == {}


def test_invalidated_vouchers_leave_and_the_last_version_on_a_page_wins() -> None:
    resolver = DimensionResolver(
        [Dimension(id="7", name="Kustannuspaikka", kind="cost_centre",
                   objects=(DimensionObject(code="100", name="Myynti"),))]
    )  # fmt: skip
    lines = (
        VoucherLine(account="1910", amount=Decimal("10"), dimensions={"Kustannuspaikka": "100"}),
        VoucherLine(account="3000", amount=Decimal("-10")),
    )
    first = Voucher(external_id="1", date=JAN, lines=lines)
    again = Voucher(external_id="1", date=FEB, lines=lines)
    gone = Voucher(external_id="2", date=JAN, status="invalidated", lines=lines)
    changes = page_changes([first, gone, again], resolver, accounts={"1910": 1}, objects={})
    assert changes.source_ids == ["2", "1"]
    assert [v.date for v in changes.vouchers] == [FEB]
    assert changes.vouchers[0].lines[0].objects == (("7", "100"),)
    assert changes.removed == 1
    assert [a.number for a in changes.missing_accounts] == ["3000"]
    assert [n.code for n in changes.notices] == ["undeclared_account"]


def test_fiscal_years_are_the_periods_calendar_years() -> None:
    periods = [
        Period(start=dt.date(2024, 12, 1), end=dt.date(2024, 12, 31), status="closed"),
        Period(start=dt.date(2025, 1, 1), end=dt.date(2025, 1, 31), status="open"),
    ]
    assert [(y.start, y.end) for y in fiscal_years_of(periods)] == [
        (dt.date(2024, 1, 1), dt.date(2024, 12, 31)),
        (dt.date(2025, 1, 1), dt.date(2025, 12, 31)),
    ]


def test_reconciliation_lists_every_account_and_period_that_differs() -> None:
    movements = [
        (JAN, "1910", Decimal("100"), Decimal(0)),
        (JAN, "3000", Decimal(0), Decimal("100")),
        (FEB, "1910", Decimal("50"), Decimal(0)),
        (FEB, "3000", Decimal(0), Decimal("50")),
    ]
    vendor = {
        dt.date(2025, 1, 31): {"1910": Decimal("100"), "3000": Decimal("-100")},
        dt.date(2025, 2, 28): {"1910": Decimal("140"), "3000": Decimal("-140")},
    }
    status, differences = reconcile_with_vendor(movements, vendor)
    assert status == "differences"
    assert [(d.period, d.account, d.difference) for d in differences] == [
        (FEB, "1910", Decimal("10")),
        (FEB, "3000", Decimal("-10")),
    ]
    assert differences[0].opening == Decimal("100")
    assert differences[0].movements == Decimal("50")
    assert reconcile_with_vendor(movements, {})[0] == "not_available"
    balanced = {dt.date(2025, 1, 31): {"1910": Decimal("100"), "3000": Decimal("-100")}}
    assert reconcile_with_vendor(movements, balanced) == ("balanced", [])


def test_payroll_hidden_by_the_vendor_is_a_notice_of_its_own() -> None:
    [notice] = page_warnings(["salary receipts are not visible to the Procountor user"])
    assert notice.code == "payroll_not_visible"
    assert [n.code for n in page_warnings(["something else"])] == ["vendor_warning"]
