"""Deterministic generated ledgers as SIE 4 and SAF-T Financial files.

For demos, tests and benchmarks: a seeded generator of a plausible company year (chart
of accounts, cost centres and projects, opening balances, balanced vouchers, and closing
balances that agree with them), written in either format without holding the vouchers in
memory. The same seed and size always give the same file, byte for byte.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path
from typing import IO, Final
from xml.sax.saxutils import escape

_CENT: Final = Decimal("0.01")

# (number, name) of a small chart that classifies like both BAS and the Norwegian
# standard: 1xxx assets, 2xxx equity and liabilities, 3xxx revenue, 4xxx-8xxx costs.
_ACCOUNTS: Final = (
    ("1220", "Inventarier"),
    ("1510", "Kundfordringar"),
    ("1920", "Bank"),
    ("1930", "Bank 2"),
    ("2081", "Aktiekapital"),
    ("2091", "Balanserat resultat"),
    ("2440", "Leverantörsskulder"),
    ("2610", "Utgående moms"),
    ("2640", "Ingående moms"),
    ("2710", "Personalskatt"),
    ("3010", "Försäljning varor"),
    ("3040", "Försäljning tjänster"),
    ("4010", "Inköp varor"),
    ("5010", "Lokalhyra"),
    ("5410", "Förbrukningsinventarier"),
    ("6110", "Kontorsmateriel"),
    ("6540", "IT-tjänster"),
    ("7010", "Löner"),
    ("7510", "Arbetsgivaravgifter"),
    ("8310", "Ränteintäkter"),
    ("8410", "Räntekostnader"),
)
_REVENUE: Final = ("3010", "3040", "8310")
_COSTS: Final = ("4010", "5010", "5410", "6110", "6540", "7010", "7510", "8410")
_SETTLEMENT: Final = ("1510", "1920", "1930", "2440")
_COST_CENTRES: Final = (("100", "Sales"), ("200", "Production"), ("300", "Administration"))
_PROJECTS: Final = (("P1", "Alpha"), ("P2", "Beta"), ("P3", "Gamma"), ("P4", "Delta"))


@dataclass(frozen=True, slots=True)
class GeneratedLine:
    """One line: account, signed amount (debit positive), cost centre and project."""

    account: str
    amount: Decimal
    cost_centre: str | None
    project: str | None


@dataclass(frozen=True, slots=True)
class GeneratedVoucher:
    """A balanced voucher of the generated year."""

    number: int
    date: date
    text: str
    lines: tuple[GeneratedLine, ...]


@dataclass(frozen=True)
class LedgerSpec:
    """What to generate: about ``lines`` voucher lines for the fiscal year ``year``."""

    lines: int
    year: int = 2024
    seed: int = 1
    business_id: str = "5560000001"
    name: str = "Exempelbolaget AB"
    currency: str = "SEK"
    opening: dict[str, Decimal] = field(
        default_factory=lambda: {
            "1220": Decimal("150000.00"),
            "1510": Decimal("84000.00"),
            "1920": Decimal("266000.00"),
            "2081": Decimal("-100000.00"),
            "2091": Decimal("-320000.00"),
            "2440": Decimal("-80000.00"),
        }
    )

    @property
    def start(self) -> date:
        return date(self.year, 1, 1)

    @property
    def end(self) -> date:
        return date(self.year, 12, 31)

    def vouchers(self) -> Iterator[GeneratedVoucher]:
        """The year's vouchers in date order; lines sum to exactly ``self.lines``."""
        rng = random.Random(self.seed)
        days = (self.end - self.start).days + 1
        written = 0
        number = 0
        while written < self.lines:
            remaining = self.lines - written
            size = min(remaining, rng.choice((2, 3, 3, 4, 5, 6)))
            if remaining - size == 1:  # never leave a one-line remainder
                size += 1
            number += 1
            day = self.start + timedelta(days=(written * days) // self.lines)
            yield self._voucher(rng, number, day, size)
            written += size

    def _voucher(self, rng: random.Random, number: int, day: date, size: int) -> GeneratedVoucher:
        income = rng.random() < 0.4
        pool = _REVENUE if income else _COSTS
        lines: list[GeneratedLine] = []
        total = Decimal(0)
        for _ in range(size - 1):
            cents = rng.randrange(100, 5_000_000)
            amount = Decimal(cents).scaleb(-2)
            amount = -amount if income else amount
            account = rng.choice(pool)
            centre = rng.choice(_COST_CENTRES)[0] if account[0] in "4567" else None
            project = rng.choice(_PROJECTS)[0] if rng.random() < 0.3 else None
            lines.append(GeneratedLine(account, amount, centre, project))
            total += amount
        lines.append(GeneratedLine(rng.choice(_SETTLEMENT), -total, None, None))
        kind = "Försäljning" if income else "Kostnad"
        return GeneratedVoucher(number, day, f"{kind} {number}", tuple(lines))

    def closing(self) -> dict[str, Decimal]:
        """Each account's closing balance: opening plus the year's movements."""
        balances = {number: Decimal(0) for number, _ in _ACCOUNTS}
        for account, amount in self.opening.items():
            balances[account] += amount
        for voucher in self.vouchers():
            for line in voucher.lines:
                balances[line.account] += line.amount
        return balances


def _sie_text(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def write_sie(spec: LedgerSpec, path: Path) -> Path:
    """Write ``spec`` as a SIE 4E file (``#FORMAT PC8``, i.e. CP437) at ``path``."""
    closing = spec.closing()
    with path.open("w", encoding="cp437", newline="\r\n") as out:
        _write_sie(spec, closing, out)
    return path


def _write_sie(spec: LedgerSpec, closing: dict[str, Decimal], out: IO[str]) -> None:
    span = f"{spec.start:%Y%m%d} {spec.end:%Y%m%d}"
    out.write(
        '#FLAGGA 0\n#PROGRAM "Ledgerlink generator" 1.0\n#FORMAT PC8\n'
        f"#GEN {spec.start:%Y%m%d}\n#SIETYP 4\n#ORGNR {spec.business_id}\n"
        f"#FNAMN {_sie_text(spec.name)}\n#RAR 0 {span}\n#KPTYP BAS2014\n"
        f"#VALUTA {spec.currency}\n"
    )
    for number, name in _ACCOUNTS:
        out.write(f"#KONTO {number} {_sie_text(name)}\n")
    out.write('#DIM 1 "Kostnadsställe"\n#DIM 6 "Projekt"\n')
    for code, name in _COST_CENTRES:
        out.write(f"#OBJEKT 1 {code} {_sie_text(name)}\n")
    for code, name in _PROJECTS:
        out.write(f"#OBJEKT 6 {code} {_sie_text(name)}\n")
    for number, _ in _ACCOUNTS:
        if number[0] in "12":
            out.write(f"#IB 0 {number} {spec.opening.get(number, Decimal(0)):.2f}\n")
            out.write(f"#UB 0 {number} {closing[number]:.2f}\n")
        else:
            out.write(f"#RES 0 {number} {closing[number]:.2f}\n")
    for voucher in spec.vouchers():
        out.write(f"#VER A {voucher.number} {voucher.date:%Y%m%d} {_sie_text(voucher.text)}\n{{\n")
        for line in voucher.lines:
            objects = []
            if line.cost_centre:
                objects.append(f'1 "{line.cost_centre}"')
            if line.project:
                objects.append(f'6 "{line.project}"')
            out.write(f"   #TRANS {line.account} {{{' '.join(objects)}}} {line.amount:.2f}\n")
        out.write("}\n")


def _saft_balance(kind: str, amount: Decimal) -> str:
    side = "Debit" if amount >= 0 else "Credit"
    return f"<{kind}{side}Balance>{abs(amount):.2f}</{kind}{side}Balance>"


def _saft_line_amount(amount: Decimal) -> str:
    side = "Debit" if amount >= 0 else "Credit"
    return f"<{side}Amount><Amount>{abs(amount):.2f}</Amount></{side}Amount>"


def write_saft(spec: LedgerSpec, path: Path) -> Path:
    """Write ``spec`` as a Norwegian SAF-T Financial 1.30 file at ``path``."""
    closing = spec.closing()
    with path.open("w", encoding="utf-8") as out:
        _write_saft(spec, closing, out)
    return path


def _write_saft(spec: LedgerSpec, closing: dict[str, Decimal], out: IO[str]) -> None:
    out.write(
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<AuditFile xmlns="urn:StandardAuditFile-Taxation-Financial:NO">\n<Header>'
        "<AuditFileVersion>1.30</AuditFileVersion><AuditFileCountry>NO</AuditFileCountry>"
        f"<AuditFileDateCreated>{spec.end + timedelta(days=1)}</AuditFileDateCreated>"
        "<SoftwareCompanyName>Ledgerlink</SoftwareCompanyName>"
        "<SoftwareID>generator</SoftwareID><SoftwareVersion>1.0</SoftwareVersion>"
        f"<Company><RegistrationNumber>{spec.business_id}</RegistrationNumber>"
        f"<Name>{escape(spec.name)}</Name></Company>"
        f"<DefaultCurrencyCode>{spec.currency}</DefaultCurrencyCode>"
        "<SelectionCriteria><PeriodStart>1</PeriodStart>"
        f"<PeriodStartYear>{spec.year}</PeriodStartYear><PeriodEnd>12</PeriodEnd>"
        f"<PeriodEndYear>{spec.year}</PeriodEndYear></SelectionCriteria>"
        "<TaxAccountingBasis>A</TaxAccountingBasis></Header>\n<MasterFiles>"
        "<GeneralLedgerAccounts>\n"
    )
    for number, name in _ACCOUNTS:
        category = "RF-1167" if number[0] in "12" else "RF-1175"
        out.write(
            f"<Account><AccountID>{number}</AccountID>"
            f"<AccountDescription>{escape(name)}</AccountDescription>"
            f"<GroupingCategory>{category}</GroupingCategory>"
            f"<GroupingCode>{number[:2]}</GroupingCode><AccountType>GL</AccountType>"
            f"{_saft_balance('Opening', spec.opening.get(number, Decimal(0)))}"
            f"{_saft_balance('Closing', closing[number])}</Account>\n"
        )
    out.write("</GeneralLedgerAccounts><AnalysisTypeTable>\n")
    for kind, description, values in (
        ("A", "Avdeling", _COST_CENTRES),
        ("P", "Prosjekt", _PROJECTS),
    ):
        for code, name in values:
            out.write(
                f"<AnalysisTypeTableEntry><AnalysisType>{kind}</AnalysisType>"
                f"<AnalysisTypeDescription>{description}</AnalysisTypeDescription>"
                f"<AnalysisID>{code}</AnalysisID>"
                f"<AnalysisIDDescription>{escape(name)}</AnalysisIDDescription>"
                "</AnalysisTypeTableEntry>\n"
            )
    debit = credit = Decimal(0)
    entries = 0
    for voucher in spec.vouchers():
        entries += 1
        for line in voucher.lines:
            if line.amount >= 0:
                debit += line.amount
            else:
                credit -= line.amount
    out.write(
        "</AnalysisTypeTable></MasterFiles>\n<GeneralLedgerEntries>"
        f"<NumberOfEntries>{entries}</NumberOfEntries><TotalDebit>{debit:.2f}</TotalDebit>"
        f"<TotalCredit>{credit:.2f}</TotalCredit><Journal><JournalID>GL</JournalID>"
        "<Description>General ledger</Description><Type>GL</Type>\n"
    )
    for voucher in spec.vouchers():
        out.write(
            f"<Transaction><TransactionID>{voucher.number}</TransactionID>"
            f"<Period>{voucher.date.month}</Period><PeriodYear>{voucher.date.year}</PeriodYear>"
            f"<TransactionDate>{voucher.date}</TransactionDate>"
            f"<Description>{escape(voucher.text)}</Description>"
            f"<SystemEntryDate>{voucher.date}</SystemEntryDate>"
            f"<GLPostingDate>{voucher.date}</GLPostingDate>\n"
        )
        for index, line in enumerate(voucher.lines, start=1):
            analyses = "".join(
                f"<Analysis><AnalysisType>{kind}</AnalysisType>"
                f"<AnalysisID>{code}</AnalysisID></Analysis>"
                for kind, code in (("A", line.cost_centre), ("P", line.project))
                if code
            )
            out.write(
                f"<Line><RecordID>{index}</RecordID><AccountID>{line.account}</AccountID>"
                f"{analyses}<Description>{escape(voucher.text)}</Description>"
                f"{_saft_line_amount(line.amount)}"
                "</Line>\n"
            )
        out.write("</Transaction>\n")
    out.write("</Journal></GeneralLedgerEntries>\n</AuditFile>\n")
