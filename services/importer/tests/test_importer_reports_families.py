"""Statements by chart family: Finnish companies, and Visma.net's typed accounts.

Finnish companies (Netvisor, Procountor): class 9 is profit and loss.

Finnish charts book financial items, appropriations and income taxes in class 9 (9440
interest expenses, 9800 change in depreciation difference, 9900 income taxes), and their
wages in class 5 and other operating expenses in class 7 — the reverse of the Swedish BAS
chart. Read with BAS's classes, a Finnish P&L dropped its interest and taxes, showed wages
as "other external costs" and rent as "personnel costs", and the balance sheet's result
line disagreed with the books. Visma.net companies keep national charts (a Dutch one has
equity in 0xxx and revenue in 8xxx) and type every account: there the types decide.
"""

from __future__ import annotations

from decimal import Decimal

import pytest

from ledgerlink.importer.domain.reports import (
    AccountInfo,
    Statement,
    balance_sheet,
    chart_family,
    is_profit_and_loss_account,
    profit_and_loss,
)

# One year of a Finnish company, debit positive: it sold 10,000, paid wages, pension,
# rent, interest and income tax, booked a depreciation difference; the bank holds the rest.
MOVEMENTS = {
    "1910": Decimal("7000.00"),  # Pankkitili
    "2000": Decimal("-2500.00"),  # Osakepääoma
    "2450": Decimal("-100.00"),  # Poistoero (accumulated appropriations)
    "2871": Decimal("-400.00"),  # Ostovelat
    "3000": Decimal("-10000.00"),  # Myynti
    "5000": Decimal("3000.00"),  # Palkat
    "6130": Decimal("500.00"),  # Eläkekulut
    "7010": Decimal("1200.00"),  # Vuokrat
    "9440": Decimal("150.00"),  # Korkokulut
    "9800": Decimal("100.00"),  # Poistoeron muutos
    "9900": Decimal("1050.00"),  # Tuloverot
}
ACCOUNTS = {number: AccountInfo(number, number) for number in MOVEMENTS}


def _section(statement: Statement, key: str) -> tuple[list[str], Decimal]:
    section = next(s for s in statement.sections if s.key == key)
    return [line.account for line in section.lines], section.totals[0]


@pytest.mark.parametrize(
    ("chart", "country", "family"),
    [
        ("netvisor", "FI", "FI"),
        ("procountor", "fi", "FI"),
        ("EUBAS97", "SE", "BAS"),
        ("BAS2024", "", "BAS"),
        ("NO-standard", "NO", "NO"),
    ],
)
def test_the_family_follows_the_company_country_then_the_chart(
    chart: str, country: str, family: str
) -> None:
    assert chart_family(chart, country) == family


def test_class_9_is_profit_and_loss_in_finland_and_internal_in_bas() -> None:
    assert is_profit_and_loss_account("9440", "FI")
    assert is_profit_and_loss_account("9900", "FI")
    assert not is_profit_and_loss_account("9440", "BAS")
    assert not is_profit_and_loss_account("9440")
    assert not is_profit_and_loss_account("1910", "FI")


def test_a_finnish_profit_and_loss_keeps_interest_taxes_and_appropriations() -> None:
    statement = profit_and_loss("FI", ACCOUNTS, MOVEMENTS, MOVEMENTS)

    assert _section(statement, "revenue") == (["3000"], Decimal("10000.00"))
    assert _section(statement, "personnel") == (["5000", "6130"], Decimal("-3500.00"))
    assert _section(statement, "other") == (["7010"], Decimal("-1200.00"))
    assert _section(statement, "financial") == (["9440"], Decimal("-150.00"))
    assert _section(statement, "appropriations") == (["9800"], Decimal("-100.00"))
    assert _section(statement, "taxes") == (["9900"], Decimal("-1050.00"))
    # 10,000 - 3,500 - 1,200 - 150 - 100 - 1,050
    assert statement.totals["result"] == (Decimal("4000.00"), Decimal("4000.00"))


def test_a_finnish_balance_sheet_balances_with_the_whole_result() -> None:
    result = profit_and_loss("FI", ACCOUNTS, MOVEMENTS, MOVEMENTS).totals["result"][0]
    statement = balance_sheet("FI", ACCOUNTS, MOVEMENTS, result)

    assert _section(statement, "current_assets") == (["1910"], Decimal("7000.00"))
    accounts, equity = _section(statement, "equity")
    assert accounts == ["2000", ""]  # share capital, then the result for the year
    assert equity == Decimal("6500.00")
    assert _section(statement, "appropriations") == (["2450"], Decimal("100.00"))
    assert _section(statement, "liabilities") == (["2871"], Decimal("400.00"))
    assert statement.totals["assets"] == (Decimal("7000.00"),)
    assert statement.totals["equity_and_liabilities"] == (Decimal("7000.00"),)
    assert statement.totals["difference"] == (Decimal("0.00"),)


def test_the_same_books_read_as_bas_lose_class_9_which_is_why_finland_has_its_own() -> None:
    result = profit_and_loss("BAS", ACCOUNTS, MOVEMENTS, MOVEMENTS).totals["result"][0]
    assert result == Decimal("5300.00")  # interest, appropriation and tax left out


def test_the_books_of_the_example_balance() -> None:
    assert sum(MOVEMENTS.values()) == Decimal(0)


# A Visma.net company with a Dutch chart: equity in 0xxx, bank in 1xxx, costs in 4xxx,
# revenue in 8xxx; Visma.net types every account (AccountDto.type), so the types decide.
DUTCH = {
    "0500": ("Geplaatst kapitaal", "liability", Decimal("-1000.00")),
    "1100": ("Bank", "asset", Decimal("2300.00")),
    "1600": ("Crediteuren", "liability", Decimal("-300.00")),
    "4000": ("Lonen", "expense", Decimal("700.00")),
    "8000": ("Omzet", "revenue", Decimal("-1700.00")),
    "9999": ("Untyped suspense", None, Decimal("0.00")),
}
DUTCH_ACCOUNTS = {n: AccountInfo(n, name, kind) for n, (name, kind, _) in DUTCH.items()}
DUTCH_BOOKS = {n: amount for n, (_, _, amount) in DUTCH.items()}


def test_visma_net_statements_follow_the_vendors_account_types() -> None:
    assert chart_family("visma_net", "NL") == "TYPED"
    assert sum(DUTCH_BOOKS.values()) == Decimal(0)

    pnl = profit_and_loss("TYPED", DUTCH_ACCOUNTS, DUTCH_BOOKS, DUTCH_BOOKS)
    assert _section(pnl, "revenue") == (["8000"], Decimal("1700.00"))
    assert _section(pnl, "expenses") == (["4000"], Decimal("-700.00"))
    assert pnl.totals["result"][0] == Decimal("1000.00")

    sheet = balance_sheet("TYPED", DUTCH_ACCOUNTS, DUTCH_BOOKS, pnl.totals["result"][0])
    assert _section(sheet, "assets") == (["1100"], Decimal("2300.00"))
    assert _section(sheet, "equity") == (["0500", "1600", ""], Decimal("2300.00"))
    assert sheet.totals["difference"] == (Decimal("0.00"),)
    # By number classes the same books lose the equity (0xxx) and the revenue (8xxx is
    # read as BAS's financial items, but the 0500 capital drops out of the balance sheet).
    assert balance_sheet("BAS", DUTCH_ACCOUNTS, DUTCH_BOOKS, Decimal("1000.00")).totals[
        "difference"
    ] != (Decimal("0.00"),)
