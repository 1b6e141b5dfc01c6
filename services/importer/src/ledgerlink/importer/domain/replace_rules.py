"""When a file may replace a fiscal year that is stored already.

Pure domain code. A careful accountant does not let a file overwrite a year's books
with less than they hold, or with an older state of them, by accident:

* a file that holds **fewer kinds of data** than the stored year (no vouchers where the
  year has vouchers, as a chart-only SIE file or a SIE type 1-3 file has; no opening
  or closing balances where the year has them) would silently delete what it lacks;
* a file **generated earlier** than the one the year holds (SIE ``#GEN``, SAF-T
  ``DateCreated``) is an older state of the books than the one stored.

Either is refused unless the person asks for the replacement explicitly, with a reason
(recorded on the import job). A newer or equally complete file replaces the year as
before. A year nobody stored yet takes any file, so SIE types 1-3 still import as
balances for a company that has none.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from ledgerlink.importer.domain.ledger import LedgerImportError


class ReplaceRefusedError(LedgerImportError):
    """The file would replace a stored year with less data or an older state of it."""

    reason_code = "replace_refused"


@dataclass(frozen=True, slots=True)
class YearContent:
    """What a fiscal year holds (stored) or a file brings (incoming)."""

    source_format: str  # "sie" or "saf_t"
    sie_type: int | None
    generated_on: date | None
    vouchers: int
    lines: int
    accounts: int
    balances: int  # accounts with an opening or closing balance

    def describe(self) -> str:
        """One line an accountant can compare: type, generation date, counts."""
        kind = (
            f"SIE type {self.sie_type if self.sie_type is not None else 'not given'}"
            if self.source_format == "sie"
            else "SAF-T"
        )
        generated = (
            f"generated {self.generated_on.isoformat()}"
            if self.generated_on
            else "no generation date"
        )
        return (
            f"{kind}, {generated}, {self.vouchers:,} vouchers, {self.lines:,} lines, "
            f"{self.accounts:,} accounts, {self.balances:,} account balances"
        )


def replacement_problems(stored: YearContent, incoming: YearContent) -> list[str]:
    """Why ``incoming`` must not replace ``stored`` without being asked to; [] if it may."""
    problems: list[str] = []
    if stored.vouchers and not incoming.vouchers:
        problems.append(
            f"the file holds no vouchers, and the stored year holds {stored.vouchers:,}"
        )
    if stored.balances and not incoming.balances:
        problems.append(
            "the file holds no opening or closing balances, and the stored year holds "
            f"{stored.balances:,}"
        )
    if (
        stored.generated_on is not None
        and incoming.generated_on is not None
        and incoming.generated_on < stored.generated_on
    ):
        problems.append(
            f"the file was generated on {incoming.generated_on.isoformat()}, before the "
            f"stored one ({stored.generated_on.isoformat()})"
        )
    return problems


def check_replacement(
    stored: YearContent,
    incoming: YearContent,
    *,
    business_id: str,
    fiscal_year: tuple[date, date],
    replace_reason: str | None,
    location: str = "",
) -> list[str]:
    """The problems the replacement has; raises unless the person asked for it.

    Returns the problems overridden by an explicit replacement ([] when there were
    none), so that the import can record them beside the reason.

    Raises:
        ReplaceRefusedError: there are problems and no ``replace_reason`` was given.
    """
    problems = replacement_problems(stored, incoming)
    if problems and not replace_reason:
        start, end = fiscal_year
        raise ReplaceRefusedError(
            f"the file would replace the stored fiscal year {start} to {end} of "
            f"{business_id}, but {'; and '.join(problems)}. File: {incoming.describe()}. "
            f"Stored: {stored.describe()}. To replace the year anyway, import the file "
            "again with replace=true and a reason (CLI: --replace --reason)",
            location=location,
        )
    return problems
