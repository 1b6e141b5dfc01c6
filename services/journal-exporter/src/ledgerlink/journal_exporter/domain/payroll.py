"""Payroll journals from Visma Nmbrs posted into Visma.net: the rules, no I/O.

* A **mapping** pairs an Nmbrs company with a Visma.net company (seed 003
  "Kartläggningsförvaltningar"); cost centres and cost units may be sent as Visma.net
  dimensions, each named by the description it has in Visma.net (its subaccount segment's
  description). :func:`match_dimensions` finds the segment each description names, or says
  which dimensions Visma.net has.
* A **posting** is one journal of one run in one period: the normal part in the run's own
  period, each retroactive correction in the period it corrects, all with the run's
  reference (seed 003 "Skickar rättelser"). Its identity is :func:`posting_key` of
  (mapping, run, period, kind), so planning the same run twice finds the same posting.
* Before posting, every line is checked against what Visma.net holds
  (:func:`check_lines`): account exists and is active, dimension values exist and are
  active, the period is open; each problem in an accountant's words (seed 003
  "Felmeddelanden").
* Nmbrs refuses journals of a test company and of a blocked debtor (seed 003 "Vänligen
  observera!"): :func:`source_refusal` words those refusals.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Literal

from ledgerlink.connectors.base import PayrollJournal, PayrollJournalLine
from ledgerlink.connectors.models import Dimension, JournalLine, JournalPosting
from ledgerlink.shared.events import JournalReadyV1

__all__ = [
    "DimensionMatch",
    "MappingProblem",
    "PostingProblem",
    "SourceRefusal",
    "check_lines",
    "journal_detail",
    "journal_from_ready",
    "ledger_refusal",
    "match_dimensions",
    "period_text",
    "posting_for",
    "posting_key",
    "posting_lines",
    "source_hash",
    "source_refusal",
]

DimensionKind = Literal["cost_centre", "cost_unit"]
JournalDetail = Literal["company", "cost_centre", "cost_centre_cost_unit"]

_KIND_WORDS: Mapping[DimensionKind, str] = {
    "cost_centre": "cost centres",
    "cost_unit": "cost units",
}


@dataclass(frozen=True)
class MappingProblem:
    """Why a mapping cannot be saved; ``field`` names the form field at fault."""

    field: str
    message: str


@dataclass(frozen=True)
class DimensionMatch:
    """A dimension of the mapping and the Visma.net subaccount segment it names."""

    kind: DimensionKind
    description: str
    segment_id: int


def _normal(text: str) -> str:
    return " ".join(text.split()).casefold()


def _segment_id(dimension: Dimension) -> int | None:
    # The connector names subaccount segments "<dimension id>:<segment id>".
    _, _, tail = dimension.id.rpartition(":")
    return int(tail) if tail.isdigit() else None


def match_dimensions(
    wanted: Mapping[DimensionKind, str | None], available: Sequence[Dimension]
) -> tuple[list[DimensionMatch], list[MappingProblem]]:
    """The Visma.net segment each enabled dimension's description names.

    Seed 003: the description "must resemble the description of the dimensions in
    Visma.net"; compared without regard to case or repeated spaces. A description that
    names no dimension (or two) is a problem listing the dimensions Visma.net has.
    """
    matches: list[DimensionMatch] = []
    problems: list[MappingProblem] = []
    names = sorted({dimension.name for dimension in available})
    have = ", ".join(f"'{name}'" for name in names) if names else "none"
    used: dict[int, DimensionKind] = {}
    for kind, description in wanted.items():
        if description is None:
            continue
        if not description.strip():
            problems.append(
                MappingProblem(
                    f"{kind}_description",
                    f"Enter the description of the Visma.net dimension for "
                    f"{_KIND_WORDS[kind]} (Visma.net has: {have}).",
                )
            )
            continue
        found = [d for d in available if _normal(d.name) == _normal(description)]
        segment = _segment_id(found[0]) if len(found) == 1 else None
        if segment is None:
            problems.append(
                MappingProblem(
                    f"{kind}_description",
                    f"No dimension in Visma.net has the description '{description.strip()}' "
                    f"(for {_KIND_WORDS[kind]}); the dimensions Visma.net has: {have}.",
                )
            )
            continue
        if segment in used:
            problems.append(
                MappingProblem(
                    f"{kind}_description",
                    f"Cost centres and cost units cannot both go to the Visma.net dimension "
                    f"'{found[0].name}'.",
                )
            )
            continue
        used[segment] = kind
        matches.append(DimensionMatch(kind, found[0].name, segment))
    return matches, problems


def journal_detail(*, cost_centres: bool, cost_units: bool) -> JournalDetail:
    """The Nmbrs journal operation the mapping needs: per company, per cost centre, or per
    cost centre and cost unit (Nmbrs has no "per cost unit" journal; the centre is dropped
    then)."""
    if cost_units:
        return "cost_centre_cost_unit"
    return "cost_centre" if cost_centres else "company"


def period_text(period: dt.date) -> str:
    """``YYYY-MM`` of a period's first day."""
    return f"{period.year:04d}-{period.month:02d}"


def posting_key(mapping_id: uuid.UUID, run_id: str, period: dt.date, kind: str) -> str:
    """The deterministic identity of a posting: (mapping, run, period, kind)."""
    text = f"{mapping_id}|{run_id}|{period_text(period)}|{kind}"
    return hashlib.sha256(text.encode()).hexdigest()


def source_hash(journal: PayrollJournal) -> str:
    """SHA-256 of the journal as read from Nmbrs (canonical JSON of every field)."""
    canonical = json.dumps(
        journal.model_dump(mode="json"), sort_keys=True, separators=(",", ":"), ensure_ascii=False
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


def posting_lines(
    journal: PayrollJournal, *, cost_centres: bool, cost_units: bool
) -> list[JournalLine]:
    """The journal's lines as they go to Visma.net (debit positive, credit negative).

    Only the dimensions the mapping sends are kept; lines that then coincide (same
    account, dimensions and text) are added up, and lines adding up to zero are left out.
    """
    totals: dict[tuple[str, str | None, str | None, str], Decimal] = {}
    for line in journal.lines:
        key = (
            line.gl_account,
            line.cost_centre if cost_centres else None,
            line.cost_unit if cost_units else None,
            line.description,
        )
        totals[key] = totals.get(key, Decimal(0)) + line.signed_amount
    return [
        JournalLine(
            account=account,
            amount=amount,
            description=description,
            cost_centre=centre,
            cost_unit=unit,
        )
        for (account, centre, unit, description), amount in totals.items()
        if amount != 0
    ]


def posting_for(
    journal: PayrollJournal, *, cost_centres: bool, cost_units: bool, source: str = ""
) -> JournalPosting:
    """The Visma.net posting of one run journal: dated and periodised where it belongs.

    The description names the source (``Nmbrs <company>``): with the reference it tells
    this payroll's batch from another payroll's with the same run reference.
    """
    what = "Payroll correction" if journal.kind == "correction" else "Payroll"
    label = f"{what} {journal.reference} {period_text(journal.period)}"
    if source:
        label = f"{label} ({source})"
    return JournalPosting(
        date=journal.date,
        period=journal.period,
        description=label,
        reference=journal.reference,
        lines=tuple(posting_lines(journal, cost_centres=cost_centres, cost_units=cost_units)),
    )


@dataclass(frozen=True)
class PostingProblem:
    """One reason a posting cannot go (or was refused), per line when it has one."""

    code: str
    message: str
    line: int | None = None
    vendor_code: str | None = None
    vendor_message: str | None = None

    def as_dict(self) -> dict[str, object]:
        """JSON form, as stored and published."""
        return {
            "code": self.code,
            "message": self.message,
            "line": self.line,
            "vendor_code": self.vendor_code,
            "vendor_message": self.vendor_message,
        }


def check_lines(
    posting: JournalPosting,
    *,
    accounts: Mapping[str, bool],
    segment_values: Mapping[int, Mapping[str, bool]],
    segment_of: Mapping[DimensionKind, int],
    period_status: Literal["open", "closed"] | None,
) -> list[PostingProblem]:
    """Every problem Visma.net would refuse the posting for, found before sending it.

    ``accounts``: account number -> active; ``segment_values``: segment id -> value ->
    active; ``segment_of``: the segment each sent dimension goes to; ``period_status``:
    the Visma.net financial period's status (``None``: Visma.net has no such period).
    """
    problems: list[PostingProblem] = []
    period = period_text(posting.period)
    if period_status is None:
        problems.append(
            PostingProblem(
                "period_missing",
                f"Period {period} does not exist in Visma.net: create the financial period "
                "before sending this journal.",
            )
        )
    elif period_status == "closed":
        problems.append(
            PostingProblem(
                "period_closed",
                f"Period {period} is closed in Visma.net's General Ledger: reopen it, or "
                "the journal cannot be booked.",
            )
        )
    for number, line in enumerate(posting.lines, start=1):
        active = accounts.get(line.account)
        if active is None:
            problems.append(
                PostingProblem(
                    "account_missing",
                    f"Line {number}: account {line.account} does not exist in Visma.net's "
                    "chart of accounts.",
                    number,
                )
            )
        elif not active:
            problems.append(
                PostingProblem(
                    "account_inactive",
                    f"Line {number}: account {line.account} is inactive in Visma.net; "
                    "activate it or map the wage component to another account in Nmbrs.",
                    number,
                )
            )
        sent: tuple[tuple[DimensionKind, str | None], ...] = (
            ("cost_centre", line.cost_centre),
            ("cost_unit", line.cost_unit),
        )
        for kind, value in sent:
            if value is None:
                continue
            segment = segment_of.get(kind)
            if segment is None:
                continue
            word = "cost centre" if kind == "cost_centre" else "cost unit"
            values = segment_values.get(segment, {})
            state = values.get(value)
            if state is None:
                problems.append(
                    PostingProblem(
                        f"{kind}_missing",
                        f"Line {number}: {word} {value} does not exist in Visma.net "
                        f"(dimension segment {segment}).",
                        number,
                    )
                )
            elif not state:
                problems.append(
                    PostingProblem(
                        f"{kind}_inactive",
                        f"Line {number}: {word} {value} is inactive in Visma.net "
                        f"(dimension segment {segment}).",
                        number,
                    )
                )
    return problems


@dataclass(frozen=True)
class SourceRefusal:
    """Nmbrs will not give this company's journals; the seed's meaning in words."""

    reason_code: str
    message: str


# UNCONFIRMED: the error numbers Nmbrs answers for a test company (2013 "not available",
# as on a free trial) and a blocked debtor (1004 "no valid subscription"); Nmbrs publishes
# the numbers but not which one each case gets.
_TEST_COMPANY_CODES = frozenset({"2013"})
_BLOCKED_DEBTOR_CODES = frozenset({"1004"})


def source_refusal(vendor_code: str | None) -> SourceRefusal | None:
    """The refusal an Nmbrs error number means for sending journals, if it is one."""
    if vendor_code in _TEST_COMPANY_CODES:
        return SourceRefusal(
            "test_company",
            "Journals cannot be sent: the company is marked as a test company in Visma "
            "Nmbrs. Nothing was posted.",
        )
    if vendor_code in _BLOCKED_DEBTOR_CODES:
        return SourceRefusal(
            "debtor_blocked",
            "Journals cannot be sent: the debtor of this company is blocked in Visma Nmbrs. "
            "Nothing was posted.",
        )
    return None


_LINE_INDEX = re.compile(r"journalTransactionLines\[(\d+)\]")


def ledger_refusal(
    vendor_code: str | None, vendor_message: str | None, fallback: str
) -> PostingProblem:
    """Visma.net's own refusal of a posting, kept word for word, with the line it names."""
    text = vendor_message or fallback
    match = _LINE_INDEX.search(text)
    line = int(match.group(1)) + 1 if match else None
    where = f"Line {line}: " if line is not None else ""
    return PostingProblem(
        "ledger_refused",
        f"{where}Visma.net refused the journal: {text}",
        line,
        vendor_code,
        vendor_message,
    )


def summary(problems: Iterable[PostingProblem], limit: int = 5) -> str:
    """One message naming the first problems (and how many more there are)."""
    listed = list(problems)
    text = " ".join(problem.message for problem in listed[:limit])
    if len(listed) > limit:
        text += f" ... and {len(listed) - limit} more problem(s)."
    return text[:2000] or "refused"


def journal_from_ready(journal: JournalReadyV1) -> PayrollJournal:
    """An accepted ``journal.ready`` journal (another payroll system's) as a run journal.

    Dated on the last day of its ``period``, where it is posted; its run is
    ``<source>:<journal_id>``. Only accepted journals come here: their amounts are valid.
    """
    year, month = int(journal.period[:4]), int(journal.period[5:7])
    following = dt.date(year + (month == 12), month % 12 + 1, 1)
    lines: list[PayrollJournalLine] = []
    for line in journal.lines:
        for amount, side in ((Decimal(line.debit or "0"), "D"), (Decimal(line.credit or "0"), "C")):
            if amount == 0:
                continue
            lines.append(
                PayrollJournalLine(
                    gl_account=line.account,
                    cost_centre=line.cost_center,
                    cost_unit=line.cost_unit,
                    amount=abs(amount),
                    debit_credit=side if amount > 0 else ("C" if side == "D" else "D"),  # type: ignore[arg-type]
                    description=line.description or "",
                )
            )
    return PayrollJournal(
        run_id=f"{journal.source}:{journal.journal_id}"[:100],
        date=following - dt.timedelta(days=1),
        period=dt.date(year, month, 1),
        kind="correction" if journal.corrects_period else "normal",
        reference=journal.run_reference,
        lines=tuple(lines),
    )
