"""Whether a received journal is accepted: its rules, what can be stored, duplicates.

Pure domain logic: no I/O, stdlib only. :func:`review_journal` applies, in this order:

1. **Duplicates.** A journal whose ``(source, journal_id)`` was already *accepted* is
   refused with ``duplicate_journal``, naming the earlier acceptance. A journal that was
   only ever rejected may be sent again.
2. **The business ID**, when given: it must be a valid ID in Ledgerlink's normal form
   (:func:`ledgerlink.shared.business_id.parse_normal_form`, the rule activations follow);
   otherwise ``invalid_business_id`` with the reason (format or check digit).
3. **The journal rules** of :mod:`.journal_rules` (:func:`validate_journal`), every
   problem in their stable order.
4. **What the store can hold.** Amounts and totals are kept as ``NUMERIC(18, 2)``, so an
   amount or total above :data:`MAX_STORED_AMOUNT` is refused (``amount_too_large``,
   ``total_too_large``) rather than rounded or failing in the database.

The outcome's ``reason_code`` is ``duplicate_journal`` for a duplicate whatever else is
wrong with it; otherwise the one problem code found, or ``invalid_journal`` when the
problems have several different codes.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Final

from ledgerlink.journal_exporter.domain.journal_rules import (
    JournalLineInput,
    journal_totals,
    validate_journal,
)
from ledgerlink.shared.business_id import BusinessIdError, parse_normal_form

__all__ = [
    "MAX_STORED_AMOUNT",
    "EarlierAcceptance",
    "JournalReview",
    "Problem",
    "rejection_message",
    "review_journal",
]

#: The largest amount NUMERIC(18, 2) holds.
MAX_STORED_AMOUNT: Final = Decimal("9999999999999999.99")
DUPLICATE_JOURNAL: Final = "duplicate_journal"
INVALID_JOURNAL: Final = "invalid_journal"
INVALID_BUSINESS_ID: Final = "invalid_business_id"
_MAX_SHOWN_AMOUNT: Final = 40


@dataclass(frozen=True)
class Problem:
    """One reason a journal is refused; ``line`` is 1-based, None for the whole journal."""

    code: str
    message: str
    line: int | None = None


@dataclass(frozen=True)
class EarlierAcceptance:
    """The journal with the same source and id that was already accepted."""

    stored_id: uuid.UUID
    run_reference: str
    received_at: datetime


@dataclass(frozen=True)
class LineAmounts:
    """One line's amounts, exact, with 2 decimals."""

    debit: Decimal
    credit: Decimal


@dataclass(frozen=True)
class JournalReview:
    """The outcome of :func:`review_journal`."""

    problems: tuple[Problem, ...]
    #: Each line's amounts, when every amount in the journal is valid.
    line_amounts: tuple[LineAmounts, ...] | None
    #: Exact totals, when every amount is valid and the totals can be stored.
    total_debit: Decimal | None
    total_credit: Decimal | None

    @property
    def accepted(self) -> bool:
        """True when nothing is wrong with the journal."""
        return not self.problems

    @property
    def reason_code(self) -> str | None:
        """The stable reason for a refusal (see the module docstring); None if accepted."""
        if not self.problems:
            return None
        codes = {problem.code for problem in self.problems}
        if DUPLICATE_JOURNAL in codes:
            return DUPLICATE_JOURNAL
        if len(codes) == 1:
            return self.problems[0].code
        return INVALID_JOURNAL


def review_journal(
    *,
    source: str,
    journal_id: str,
    period: str,
    corrects_period: str | None,
    lines: Sequence[JournalLineInput],
    earlier: EarlierAcceptance | None,
    business_id: str | None = None,
) -> JournalReview:
    """Review one received journal; ``earlier`` is its accepted predecessor, if any."""
    problems: list[Problem] = []
    if earlier is not None:
        problems.append(
            Problem(
                DUPLICATE_JOURNAL,
                f"journal {journal_id} from {source} was already accepted at "
                f"{earlier.received_at.isoformat()} (stored as {earlier.stored_id}, run "
                f"{earlier.run_reference})",
            )
        )
    if business_id is not None:
        try:
            parse_normal_form(business_id)
        except BusinessIdError as error:
            problems.append(Problem(INVALID_BUSINESS_ID, error.message))
    problems.extend(
        Problem(problem.code, problem.message, problem.line)
        for problem in validate_journal(period, lines, corrects_period)
    )

    amounts = [_line_amounts(line) for line in lines]
    for number, (line, line_amounts) in enumerate(zip(lines, amounts, strict=True), start=1):
        if line_amounts is None:
            continue
        for side, raw, value in (
            ("debit", line.debit, line_amounts.debit),
            ("credit", line.credit, line_amounts.credit),
        ):
            if value > MAX_STORED_AMOUNT:
                problems.append(
                    Problem(
                        "amount_too_large",
                        f"line {number}: {side} amount {_show(raw)} is larger than "
                        f"{MAX_STORED_AMOUNT}, the largest amount that can be stored",
                        number,
                    )
                )

    valid_amounts = [line_amounts for line_amounts in amounts if line_amounts is not None]
    if len(valid_amounts) < len(amounts):
        return JournalReview(tuple(problems), None, None, None)
    total_debit, total_credit = journal_totals(lines)
    if max(total_debit, total_credit) > MAX_STORED_AMOUNT:
        if not any(problem.code == "amount_too_large" for problem in problems):
            problems.append(
                Problem(
                    "total_too_large",
                    f"journal totals (debits {_shorten(format(total_debit, 'f'))}, credits "
                    f"{_shorten(format(total_credit, 'f'))}) are larger than "
                    f"{MAX_STORED_AMOUNT}, the largest total that can be stored",
                )
            )
        return JournalReview(tuple(problems), tuple(valid_amounts), None, None)
    return JournalReview(tuple(problems), tuple(valid_amounts), total_debit, total_credit)


def rejection_message(problems: Sequence[Problem], *, limit: int) -> str:
    """Every problem's message joined by ``"; "``, at most ``limit`` of them."""
    shown = "; ".join(problem.message for problem in problems[:limit])
    hidden = len(problems) - limit
    if hidden > 0:
        return f"{shown}; and {hidden} more problem{'s' if hidden > 1 else ''}"
    return shown


def _line_amounts(line: JournalLineInput) -> LineAmounts | None:
    try:
        debit, credit = journal_totals([line])
    except ValueError:
        return None  # reported by validate_journal
    return LineAmounts(debit, credit)


def _shorten(text: str) -> str:
    """An amount for a message, truncated so messages stay short."""
    if len(text) > _MAX_SHOWN_AMOUNT:
        return text[: _MAX_SHOWN_AMOUNT - 1] + "…"
    return text


def _show(text: str) -> str:
    """Quote an amount as received, truncated so messages stay short."""
    return repr(_shorten(text))
