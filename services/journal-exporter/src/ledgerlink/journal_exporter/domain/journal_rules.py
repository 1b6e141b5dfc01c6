"""Validation rules for a payroll journal before it is stored or exported.

Pure domain logic: no I/O, stdlib only. :func:`validate_journal` checks a whole
journal and returns *every* problem it finds (an empty list means the journal is
valid); :func:`journal_totals` sums the debit and credit columns exactly.

Rules
    * The journal has at least one line.
    * ``period`` is ``YYYY-MM`` with a year 1900-2999 and a month 01-12.
    * ``corrects_period``, when given, has the same format and is strictly before
      ``period``: a correction is posted in a later (still open) period for an
      earlier, already closed one, so a correction of the same or a later period is
      a mistake. ``None`` means "not a correction"; an empty string is an invalid
      period, not an absent one.
    * Every amount matches ``[0-9]+(\\.[0-9]{1,2})?`` exactly: plain ASCII digits,
      optionally a dot and one or two decimals. No sign, exponent (``1E3``),
      ``NaN``/``Infinity``, thousands separator, decimal comma or surrounding
      whitespace; an empty string is not zero. ``"-5"`` is reported as
      ``negative_amount`` and ``"1.234"`` (also ``"1.230"``) as
      ``too_many_decimals`` rather than the generic ``invalid_amount``.
    * Each line has exactly one non-zero side: both sides non-zero is
      ``both_sides``, both zero is ``zero_line``. Checked only when both amounts of
      the line are valid.
    * The account is non-empty after stripping whitespace.
    * Total debits equal total credits exactly. Checked only when every amount in
      the journal is valid, since totals over partly unreadable amounts would be
      misleading; the message names both totals and ``difference = debits -
      credits``.

Problems are reported in a stable order: period problems, then ``no_lines``, then
per line (in line order) the account, the debit, the credit and the one-side rule,
and finally ``unbalanced``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from decimal import (
    MAX_EMAX,
    MIN_EMIN,
    Context,
    Decimal,
    DivisionByZero,
    Inexact,
    InvalidOperation,
    Overflow,
    Rounded,
    localcontext,
)
from typing import Final, Literal, Protocol

__all__ = [
    "JournalLineInput",
    "JournalProblem",
    "ProblemCode",
    "journal_totals",
    "validate_journal",
]

ProblemCode = Literal[
    "no_lines",
    "invalid_period",
    "invalid_corrects_period",
    "correction_not_earlier",
    "invalid_amount",
    "negative_amount",
    "too_many_decimals",
    "both_sides",
    "zero_line",
    "missing_account",
    "unbalanced",
]

_AMOUNT: Final = re.compile(r"[0-9]+(?:\.[0-9]{1,2})?")
_NEGATIVE: Final = re.compile(r"-[0-9]+(?:\.[0-9]+)?")
_TOO_MANY_DECIMALS: Final = re.compile(r"[0-9]+\.[0-9]{3,}")
_PERIOD: Final = re.compile(r"([0-9]{4})-([0-9]{2})")

_MIN_YEAR: Final = 1900
_MAX_YEAR: Final = 2999
_MAX_SHOWN_INPUT: Final = 40
_ZERO: Final = Decimal(0)
_CENT: Final = Decimal("0.01")


class JournalLineInput(Protocol):
    """One journal line as read from any source (API model, parsed file, ORM row).

    Members are read-only properties so that frozen dataclasses and immutable models
    satisfy the protocol too. Amounts are decimal strings; see the module docstring
    for the exact accepted syntax. The cost dimensions and the description are
    carried along but not validated here.
    """

    @property
    def account(self) -> str: ...

    @property
    def debit(self) -> str: ...

    @property
    def credit(self) -> str: ...

    @property
    def cost_center(self) -> str | None: ...

    @property
    def cost_unit(self) -> str | None: ...

    @property
    def description(self) -> str | None: ...


@dataclass(frozen=True)
class JournalProblem:
    """One rule violation: a stable ``code``, a human ``message`` and the 1-based
    ``line`` number it concerns (``None`` for journal-level problems)."""

    code: ProblemCode
    message: str
    line: int | None


class _AmountError(Exception):
    def __init__(self, code: ProblemCode, detail: str) -> None:
        super().__init__(detail)
        self.code: ProblemCode = code
        self.detail = detail


def _show(text: str) -> str:
    """Quote user input for a message, truncated so messages stay short."""
    if len(text) > _MAX_SHOWN_INPUT:
        text = text[: _MAX_SHOWN_INPUT - 1] + "…"
    return repr(text)


def _parse_amount(raw: str) -> Decimal:
    """Parse one amount strictly; raise :class:`_AmountError` saying why not."""
    if _AMOUNT.fullmatch(raw):
        return Decimal(raw)
    if _NEGATIVE.fullmatch(raw) and Decimal(raw) != _ZERO:
        raise _AmountError("negative_amount", f"{_show(raw)} is negative")
    if _TOO_MANY_DECIMALS.fullmatch(raw):
        decimals = len(raw) - raw.index(".") - 1
        raise _AmountError(
            "too_many_decimals", f"{_show(raw)} has {decimals} decimal places; at most 2 allowed"
        )
    raise _AmountError(
        "invalid_amount",
        f"{_show(raw)} is not a plain decimal amount (digits, optionally a dot and "
        "1-2 decimals; no sign, exponent, separators or spaces)",
    )


def _exact_context(values: Sequence[Decimal]) -> AbstractContextManager[Context]:
    """A decimal context in which adding or subtracting ``values`` cannot round.

    The default context keeps only 28 significant digits and would round large
    totals silently, and its exponent limit caps the size of a total. Every value
    has at most 2 decimals, so aligning adds at most 2 digits, and n additions carry
    at most ``len(str(n))`` more; any rounding that still happened would raise
    instead of going unnoticed.
    """
    widest = max((len(v.as_tuple().digits) for v in values), default=1)
    ctx = Context(
        prec=max(28, widest + len(str(len(values))) + 3),
        Emax=MAX_EMAX,
        Emin=MIN_EMIN,
        traps=[InvalidOperation, DivisionByZero, Overflow, Inexact, Rounded],
    )
    return localcontext(ctx)


def _exact_sum(values: Sequence[Decimal]) -> Decimal:
    """Sum ``values`` exactly, whatever their size, as a 2-decimal Decimal."""
    with _exact_context(values):
        return sum(values, start=Decimal("0.00")).quantize(_CENT)


def _exact_difference(minuend: Decimal, subtrahend: Decimal) -> Decimal:
    """``minuend - subtrahend`` exactly, as a 2-decimal Decimal."""
    with _exact_context([minuend, subtrahend]):
        return (minuend - subtrahend).quantize(_CENT)


def _format_amount(value: Decimal) -> str:
    return format(value, "f")


def journal_totals(lines: Iterable[JournalLineInput]) -> tuple[Decimal, Decimal]:
    """Return ``(total_debits, total_credits)`` summed exactly, with 2 decimals.

    Amounts are parsed with the same strict rules as :func:`validate_journal`.

    Raises:
        ValueError: if any amount is not valid (the message names the 1-based line);
            run :func:`validate_journal` first to get every problem at once.
    """
    debits: list[Decimal] = []
    credits: list[Decimal] = []
    for number, line in enumerate(lines, start=1):
        for side, raw, bucket in (("debit", line.debit, debits), ("credit", line.credit, credits)):
            try:
                bucket.append(_parse_amount(raw))
            except _AmountError as error:
                raise ValueError(f"line {number}: {side} amount {error.detail}") from None
    return _exact_sum(debits), _exact_sum(credits)


def _parse_period(raw: str) -> tuple[int, int] | None:
    """``(year, month)`` of a ``YYYY-MM`` period in range, else None."""
    match = _PERIOD.fullmatch(raw)
    if match is None:
        return None
    year, month = int(match.group(1)), int(match.group(2))
    if not (_MIN_YEAR <= year <= _MAX_YEAR and 1 <= month <= 12):
        return None
    return year, month


def _period_problems(period: str, corrects_period: str | None) -> list[JournalProblem]:
    problems: list[JournalProblem] = []
    rule = f"expected YYYY-MM with year {_MIN_YEAR}-{_MAX_YEAR} and month 01-12"
    parsed = _parse_period(period)
    if parsed is None:
        problems.append(
            JournalProblem("invalid_period", f"period {_show(period)} is not valid; {rule}", None)
        )
    if corrects_period is None:
        return problems
    corrected = _parse_period(corrects_period)
    if corrected is None:
        problems.append(
            JournalProblem(
                "invalid_corrects_period",
                f"corrected period {_show(corrects_period)} is not valid; {rule}",
                None,
            )
        )
    elif parsed is not None and corrected >= parsed:
        problems.append(
            JournalProblem(
                "correction_not_earlier",
                f"corrected period {corrects_period} is not before the journal period "
                f"{period}; a correction is posted in a later period for an earlier one",
                None,
            )
        )
    return problems


def _line_problems(number: int, line: JournalLineInput) -> tuple[list[JournalProblem], bool]:
    """Problems of one line, and whether both of its amounts were valid."""
    problems: list[JournalProblem] = []
    if not line.account.strip():
        problems.append(
            JournalProblem("missing_account", f"line {number}: account is empty", number)
        )
    amounts: dict[str, Decimal] = {}
    for side, raw in (("debit", line.debit), ("credit", line.credit)):
        try:
            amounts[side] = _parse_amount(raw)
        except _AmountError as error:
            problems.append(
                JournalProblem(error.code, f"line {number}: {side} amount {error.detail}", number)
            )
    if len(amounts) < 2:
        return problems, False
    debit, credit = amounts["debit"], amounts["credit"]
    if debit != _ZERO and credit != _ZERO:
        problems.append(
            JournalProblem(
                "both_sides",
                f"line {number}: debit {_show(line.debit)} and credit {_show(line.credit)} "
                "are both non-zero; a line posts to exactly one side",
                number,
            )
        )
    elif debit == _ZERO and credit == _ZERO:
        problems.append(
            JournalProblem(
                "zero_line",
                f"line {number}: debit and credit are both zero; a line posts a non-zero "
                "amount to exactly one side",
                number,
            )
        )
    return problems, True


def validate_journal(
    period: str,
    lines: Sequence[JournalLineInput],
    corrects_period: str | None = None,
) -> list[JournalProblem]:
    """Check a payroll journal against every rule and return all problems found.

    ``period`` is the ``YYYY-MM`` accounting period the journal is posted in;
    ``corrects_period``, if the journal is a correction, is the earlier period it
    corrects. Returns an empty list when the journal is valid. The rules and the
    order of the returned problems are described in the module docstring.
    """
    problems = _period_problems(period, corrects_period)
    if not lines:
        problems.append(JournalProblem("no_lines", "journal has no lines", None))
        return problems
    all_amounts_valid = True
    for number, line in enumerate(lines, start=1):
        line_problems, amounts_valid = _line_problems(number, line)
        problems.extend(line_problems)
        all_amounts_valid = all_amounts_valid and amounts_valid
    if all_amounts_valid:
        debits, credits = journal_totals(lines)
        if debits != credits:
            difference = _exact_difference(debits, credits)
            problems.append(
                JournalProblem(
                    "unbalanced",
                    f"journal is unbalanced: debits {_format_amount(debits)}, credits "
                    f"{_format_amount(credits)}, difference {_format_amount(difference)}",
                    None,
                )
            )
    return problems
