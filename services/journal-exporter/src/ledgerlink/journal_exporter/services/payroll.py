"""Payroll journals from Visma Nmbrs into Visma.net: mappings, planning, posting exactly once.

These services span vendor calls, so they open their own short transactions (through the
repositories) instead of running inside a caller's: a posting's *intent* (with the exact
body to send) commits before Visma.net is called, and its *outcome* commits after, with its
event in the outbox in the same transaction. A crash in between leaves the posting leased;
the next attempt first looks the batch up by its reference in its financial period (the
connector's :meth:`~ledgerlink.connectors.vismanet.VismaNetConnector.post_prepared`), so a
batch Visma.net accepted is found, not posted again.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
import json
import logging
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, Literal

from prometheus_client import CollectorRegistry, Counter, Histogram
from sqlalchemy.ext.asyncio import AsyncSession

from ledgerlink.connectors.base import PayrollJournal, PayrollRun
from ledgerlink.connectors.errors import (
    AuthenticationFailed,
    ConnectorError,
    RateLimited,
    UnexpectedResponse,
    VendorUnavailable,
)
from ledgerlink.connectors.models import Dimension
from ledgerlink.connectors.vismanet import PreparedJournal, VismaNetConnector
from ledgerlink.journal_exporter.config import PayrollExportSettings
from ledgerlink.journal_exporter.domain.payroll import (
    DimensionKind,
    MappingProblem,
    PostingProblem,
    check_lines,
    journal_detail,
    journal_from_ready,
    ledger_refusal,
    match_dimensions,
    period_text,
    posting_for,
    posting_key,
    source_hash,
    source_refusal,
    summary,
)
from ledgerlink.journal_exporter.storage.models import (
    Connection,
    PayrollMapping,
    PayrollPosting,
    PayrollRunMark,
    PostingStatus,
)
from ledgerlink.journal_exporter.storage.repository import (
    ConnectionRepository,
    PayrollMappingRepository,
    PayrollPostingRepository,
    PayrollRunMarkRepository,
)
from ledgerlink.journal_exporter.storage.vendors import VendorGateway
from ledgerlink.shared.db import Database, as_utc
from ledgerlink.shared.events import (
    JournalReadyV1,
    PayrollJournalFailedV1,
    PayrollJournalPostedV1,
    PayrollJournalReleasedV1,
    PayrollPostingProblemV1,
)
from ledgerlink.shared.messaging.outbox import Outbox

__all__ = [
    "ExportRefusedError",
    "ExportService",
    "MappingDraft",
    "MappingRefusedError",
    "MappingService",
    "NotFoundError",
    "PayrollMetrics",
    "RunStatus",
]

logger = logging.getLogger(__name__)

Clock = Callable[[], datetime]

SOURCE = "nmbrs"
LEDGER = "vismanet"
MAX_PROBLEMS_PER_EVENT = 100


def utc_now() -> datetime:
    """The wall clock in UTC (the default clock; tests inject theirs)."""
    return datetime.now(UTC)


class NotFoundError(Exception):
    """No such mapping or posting."""


class MappingRefusedError(Exception):
    """A mapping cannot be saved; every problem names its field."""

    def __init__(self, problems: Sequence[MappingProblem]) -> None:
        super().__init__("; ".join(problem.message for problem in problems))
        self.problems = list(problems)


class ExportRefusedError(Exception):
    """An export that cannot start (nothing was planned or posted)."""

    def __init__(self, reason_code: str, message: str, *, status: int = 422) -> None:
        super().__init__(message)
        self.reason_code = reason_code
        self.message = message
        self.status = status


class PayrollMetrics:
    """Postings by outcome and the time Visma.net takes to answer a posting."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.postings = Counter(
            "ledgerlink_payroll_postings",
            "Payroll postings by outcome (posted, found_existing, retrying, refused, failed).",
            ["outcome"],
            registry=registry,
        )
        self.vendor_seconds = Histogram(
            "ledgerlink_payroll_vendor_seconds",
            "Time spent in Visma.net calls per posting attempt.",
            ["outcome"],
            registry=registry,
        )
        self.vendor_time_total = 0.0


@dataclass(frozen=True)
class MappingDraft:
    """What a person enters for a mapping (seed 003 "Ny mappning")."""

    name: str
    nmbrs_connection_id: uuid.UUID
    nmbrs_company_id: str
    vismanet_connection_id: uuid.UUID
    vismanet_company_id: str
    cost_centre_description: str | None = None
    cost_unit_description: str | None = None
    auto_export: bool = False
    journal_business_id: str | None = None
    #: Release each batch in Visma.net once posted.
    release: bool = False
    #: The first period (YYYY-MM) the schedule posts (None: January of the year before the
    #: mapping was made).
    start_period: str | None = None


class MappingService:
    """Saves mapping versions after checking their dimensions against Visma.net."""

    def __init__(self, db: Database, gateway: VendorGateway, *, clock: Clock = utc_now) -> None:
        self._db = db
        self._gateway = gateway
        self._clock = clock

    async def visma_dimensions(self, draft: MappingDraft) -> list[Dimension]:
        """The dimensions (subaccount segments) of the Visma.net company."""
        connector = self._gateway.vismanet(draft.vismanet_connection_id, draft.vismanet_company_id)
        return await connector.read_dimensions()

    async def save(
        self, draft: MappingDraft, *, created_by: str, mapping_id: uuid.UUID | None = None
    ) -> PayrollMapping:
        """A new mapping (version 1), or a new version of ``mapping_id``."""
        wanted: dict[DimensionKind, str | None] = {
            "cost_centre": draft.cost_centre_description,
            "cost_unit": draft.cost_unit_description,
        }
        segments: dict[DimensionKind, int] = {}
        descriptions: dict[DimensionKind, str] = {}
        if any(value is not None for value in wanted.values()):
            try:
                available = await self.visma_dimensions(draft)
            except ConnectorError as exc:
                raise MappingRefusedError(
                    [
                        MappingProblem(
                            "vismanet_connection_id",
                            f"Visma.net could not be asked for its dimensions: {exc}",
                        )
                    ]
                ) from None
            matches, problems = match_dimensions(wanted, available)
            if problems:
                raise MappingRefusedError(problems)
            for match in matches:
                segments[match.kind] = match.segment_id
                descriptions[match.kind] = match.description
        async with self._db.transaction() as session:
            mappings = PayrollMappingRepository(session)
            others = [
                other
                for other in await mappings.for_nmbrs_company(
                    draft.nmbrs_connection_id, draft.nmbrs_company_id
                )
                if other != mapping_id
            ]
            if others:
                raise MappingRefusedError(
                    [
                        MappingProblem(
                            "nmbrs_company_id",
                            f"Nmbrs company {draft.nmbrs_company_id} is mapped already "
                            f"(mapping {others[0]}); change that mapping instead.",
                        )
                    ]
                )
            version = 1
            if mapping_id is None:
                mapping_id = uuid.uuid4()
            else:
                current = await mappings.current(mapping_id)
                if current is None:
                    raise NotFoundError(f"no mapping {mapping_id}")
                version = current.version + 1
            return await mappings.add(
                PayrollMapping(
                    mapping_id=mapping_id,
                    version=version,
                    name=draft.name,
                    nmbrs_connection_id=draft.nmbrs_connection_id,
                    nmbrs_company_id=draft.nmbrs_company_id,
                    vismanet_connection_id=draft.vismanet_connection_id,
                    vismanet_company_id=draft.vismanet_company_id,
                    cost_centre_description=descriptions.get("cost_centre"),
                    cost_centre_segment=segments.get("cost_centre"),
                    cost_unit_description=descriptions.get("cost_unit"),
                    cost_unit_segment=segments.get("cost_unit"),
                    auto_export=draft.auto_export,
                    journal_business_id=draft.journal_business_id,
                    release=draft.release,
                    start_period=draft.start_period,
                    created_by=created_by,
                    created_at=self._clock(),
                )
            )

    async def current(self, mapping_id: uuid.UUID) -> PayrollMapping:
        """The current version of a mapping."""
        async with self._db.transaction() as session:
            mapping = await PayrollMappingRepository(session).current(mapping_id)
        if mapping is None:
            raise NotFoundError(f"no mapping {mapping_id}")
        return mapping

    async def versions(self, mapping_id: uuid.UUID) -> list[PayrollMapping]:
        """Every version of a mapping, oldest first."""
        async with self._db.transaction() as session:
            versions = await PayrollMappingRepository(session).versions(mapping_id)
        if not versions:
            raise NotFoundError(f"no mapping {mapping_id}")
        return versions

    async def all_current(self) -> list[PayrollMapping]:
        """Every mapping's current version."""
        async with self._db.transaction() as session:
            return await PayrollMappingRepository(session).all_current()

    async def known_connections(
        self, providers: Sequence[str], *, limit: int = 1000
    ) -> list[Connection]:
        """The activated connections of ``providers`` this service learnt of from auth's
        events (which of them a person may map, auth says)."""
        async with self._db.transaction() as session:
            return await ConnectionRepository(session).of_providers(providers, limit=limit)


class _BatchVoided(Exception):  # noqa: N818 - internal signal
    def __init__(self, status: str) -> None:
        super().__init__(status)
        self.status = status


@dataclass(frozen=True)
class RunStatus:
    """Where a run (or a period) stands: the worst of its postings' statuses."""

    key: str
    status: str
    postings: int
    batch_numbers: tuple[str, ...]


@dataclass(frozen=True)
class _MasterData:
    accounts: dict[str, bool]
    periods: dict[dt.date, Literal["open", "closed"]]
    segment_values: dict[int, dict[str, bool]]


_STATUS_ORDER = ("refused", "failed", "retrying", "pending", "releasing", "posted", "released")

#: Batch statuses after a release (UNCONFIRMED which one Visma.net reports: its published
#: enum has Unposted, Posted, Completed, Released, PartiallyReleased; a released batch is
#: Unposted until posted, or Posted when the company posts on release).
RELEASED_BATCH_STATUSES = frozenset(
    {"Unposted", "Posted", "Completed", "Released", "PartiallyReleased"}
)
VOID_BATCH_STATUSES = frozenset({"Voided", "Void"})


def overall_status(statuses: Iterable[str]) -> str:
    """``released`` only when every posting is, ``posted`` when every posting is posted
    or released; otherwise the first of refused, failed, retrying, pending, releasing."""
    present = set(statuses)
    return next((status for status in _STATUS_ORDER if status in present), "posted")


def _period_range(period_from: str | None, period_to: str | None) -> tuple[str, str] | None:
    if period_from is None and period_to is None:
        return None
    low, high = period_from or "0000-01", period_to or "9999-12"
    if low > high:
        raise ExportRefusedError(
            "invalid_period_range", f"period_from {low} is after period_to {high}", status=400
        )
    return low, high


def _source_label(mapping: PayrollMapping, journal: PayrollJournal) -> str:
    """Whose payroll it is, in the batch description: a Visma.net company may receive
    several payrolls whose runs carry the same reference."""
    if ":" in journal.run_id:  # a journal.ready journal: <source>:<journal id>
        return journal.run_id.split(":", 1)[0]
    return f"Nmbrs {mapping.nmbrs_company_id}"


def _sent_description(payload: str) -> str | None:
    """The batch description inside a recorded body (the value-wrapped DTO)."""
    try:
        value = json.loads(payload).get("description", {}).get("value")
    except (ValueError, AttributeError):
        return None
    return str(value) if value is not None else None


def _run_period(run: PayrollRun) -> str:
    return f"{run.year:04d}-{run.period:02d}"


def _run_year(run_id: str) -> int | None:
    year, _, _ = run_id.partition("-")
    return int(year) if year.isdigit() and len(year) == 4 else None


class ExportService:
    """Plans postings from Nmbrs runs and posts them into Visma.net exactly once."""

    def __init__(
        self,
        db: Database,
        gateway: VendorGateway,
        outbox: Outbox,
        settings: PayrollExportSettings,
        *,
        metrics: PayrollMetrics | None = None,
        clock: Clock = utc_now,
    ) -> None:
        self._db = db
        self._gateway = gateway
        self._outbox = outbox
        self._settings = settings
        self._metrics = metrics or PayrollMetrics(CollectorRegistry())
        self._clock = clock
        #: Postings this process is posting now (its runners never take one twice).
        self._in_flight: set[uuid.UUID] = set()

    # -- planning ---------------------------------------------------------------------------

    async def _mapping(self, mapping_id: uuid.UUID) -> PayrollMapping:
        async with self._db.transaction() as session:
            mapping = await PayrollMappingRepository(session).current(mapping_id)
        if mapping is None:
            raise NotFoundError(f"no mapping {mapping_id}")
        return mapping

    async def export(
        self,
        mapping_id: uuid.UUID,
        *,
        trigger: str,
        runs: Sequence[str] | None = None,
        period_from: str | None = None,
        period_to: str | None = None,
        years: Sequence[int] | None = None,
        only_new_runs: bool = False,
        not_before: str | None = None,
        on_listed: Callable[[int, list[PayrollRun]], None] | None = None,
    ) -> list[PayrollPosting]:
        """Plan the postings of the chosen runs (or of the runs in a period range).

        Reads each run's journal from Nmbrs and checks every line against Visma.net; a
        posting with problems is recorded as refused (final), the others as pending for
        the runner. Postings planned before are kept (a refused or failed one is planned
        again). Raises :class:`ExportRefusedError` when Nmbrs refuses the company's
        journals (test company, blocked debtor): nothing is planned or posted then.
        """
        mapping = await self._mapping(mapping_id)
        wanted_range = _period_range(period_from, period_to)
        chosen_years = set(years or [])
        if runs:
            chosen_years |= {year for run in runs if (year := _run_year(run)) is not None}
        if wanted_range is not None:
            low, high = (int(wanted_range[0][:4]), int(wanted_range[1][:4]))
            if high - low > 10 or low < 1990:
                now_year = self._clock().year
                low, high = max(low, now_year - 1), min(high, now_year)
            chosen_years |= set(range(low, high + 1))
        if not chosen_years:
            raise ExportRefusedError(
                "nothing_chosen", "choose runs or a period range to export", status=400
            )
        detail = journal_detail(
            cost_centres=mapping.cost_centre_segment is not None,
            cost_units=mapping.cost_unit_segment is not None,
        )
        known_runs: set[str] = set()
        if only_new_runs:
            async with self._db.transaction() as session:
                known_runs = await PayrollPostingRepository(session).run_ids_of(mapping_id)
        journals: list[tuple[PayrollRun, PayrollJournal]] = []
        try:
            nmbrs = await self._gateway.nmbrs(mapping.nmbrs_connection_id, detail)
            async with nmbrs:
                selected: list[PayrollRun] = []
                for year in sorted(chosen_years):
                    listed = await nmbrs.list_runs(mapping.nmbrs_company_id, year)
                    if on_listed is not None:
                        on_listed(year, list(listed))
                    for run in listed:
                        if not_before is not None and _run_period(run) < not_before:
                            continue
                        if runs and run.run_id not in runs:
                            continue
                        if wanted_range and not (
                            wanted_range[0] <= _run_period(run) <= wanted_range[1]
                        ):
                            continue
                        if run.run_id in known_runs:
                            continue
                        selected.append(run)
                missing = sorted(set(runs or []) - {run.run_id for run in selected} - known_runs)
                if missing:
                    raise ExportRefusedError(
                        "unknown_run",
                        f"Nmbrs has no run {', '.join(missing)} for company "
                        f"{mapping.nmbrs_company_id}",
                        status=404,
                    )
                for run in selected:
                    read = await nmbrs.read_run_journal(mapping.nmbrs_company_id, run.run_id)
                    journals.extend((run, journal) for journal in read)
        except ConnectorError as exc:
            refusal = source_refusal(exc.vendor_code)
            if refusal is not None:
                logger.info(
                    "payroll export refused by Nmbrs",
                    extra={"mapping_id": str(mapping_id), "reason_code": refusal.reason_code},
                )
                raise ExportRefusedError(refusal.reason_code, refusal.message) from None
            raise ExportRefusedError(
                "nmbrs_unavailable" if exc.retryable else "nmbrs_refused",
                f"Nmbrs could not give the journals: {exc}",
                status=503 if exc.retryable else 502,
            ) from None
        if not journals:
            return []
        return await self._plan(mapping, journals, trigger=trigger)

    @staticmethod
    def _segments(mapping: PayrollMapping) -> dict[DimensionKind, int]:
        segment_of: dict[DimensionKind, int] = {}
        if mapping.cost_centre_segment is not None:
            segment_of["cost_centre"] = mapping.cost_centre_segment
        if mapping.cost_unit_segment is not None:
            segment_of["cost_unit"] = mapping.cost_unit_segment
        return segment_of

    @staticmethod
    async def _master_data(visma: VismaNetConnector, mapping: PayrollMapping) -> _MasterData:
        """What every line is checked against: accounts, periods, dimension values."""
        accounts = {a.number: a.active for a in await visma.read_accounts()}
        periods = {p.start: p.status for p in await visma.read_periods()}
        segment_values: dict[int, dict[str, bool]] = {}
        if ExportService._segments(mapping):
            for dimension in await visma.read_dimensions():
                _, _, tail = dimension.id.rpartition(":")
                if tail.isdigit():
                    segment_values[int(tail)] = {o.code: o.active for o in dimension.objects}
        return _MasterData(accounts, periods, segment_values)

    async def _check_and_prepare(
        self,
        visma: VismaNetConnector,
        master: _MasterData,
        mapping: PayrollMapping,
        journal: PayrollJournal,
    ) -> tuple[PreparedJournal, list[PostingProblem]]:
        segment_of = self._segments(mapping)
        posting = posting_for(
            journal,
            cost_centres="cost_centre" in segment_of,
            cost_units="cost_unit" in segment_of,
            source=_source_label(mapping, journal),
        )
        problems = check_lines(
            posting,
            accounts=master.accounts,
            segment_values=master.segment_values,
            segment_of=segment_of,
            period_status=master.periods.get(journal.period),
        )
        return await visma.prepare_journal(posting), problems

    async def _plan(
        self,
        mapping: PayrollMapping,
        journals: Sequence[tuple[PayrollRun, PayrollJournal]],
        *,
        trigger: str,
    ) -> list[PayrollPosting]:
        planned: list[tuple[PayrollPosting, bool]] = []
        try:
            visma = self._visma(mapping)
            master = await self._master_data(visma, mapping)
            for run, journal in journals:
                prepared, problems = await self._check_and_prepare(visma, master, mapping, journal)
                planned.append(
                    (
                        self._posting_row(
                            mapping,
                            run.run_id,
                            _run_period(run),
                            journal,
                            prepared,
                            problems,
                            trigger=trigger,
                        ),
                        bool(problems),
                    )
                )
        except ConnectorError as exc:
            raise ExportRefusedError(
                "vismanet_unavailable" if exc.retryable else "vismanet_refused",
                f"Visma.net could not be read to check the journals: {exc}",
                status=503 if exc.retryable else 502,
            ) from None
        result: list[PayrollPosting] = []
        async with self._db.transaction() as session:
            postings = PayrollPostingRepository(session)
            for row, refused in planned:
                inserted = await postings.add_if_new(row)
                stored = await postings.by_key(row.posting_key)
                assert stored is not None
                if not inserted and stored.status in (PostingStatus.REFUSED, PostingStatus.FAILED):
                    # Planned again (a person fixed Visma.net or Nmbrs and exports again).
                    self._replan(stored, row)
                    inserted = True
                if inserted and refused:
                    await self._publish_failed(session, stored, "invalid_journal")
                    self._metrics.postings.labels("refused").inc()
                result.append(stored)
        return result

    @staticmethod
    def _replan(stored: PayrollPosting, row: PayrollPosting) -> None:
        for name in (
            "mapping_version",
            "source_hash",
            "source",
            "payload",
            "payload_hash",
            "reference_number",
            "financial_period",
            "line_count",
            "total_debit",
            "problems",
            "status",
            "trigger",
            "created_at",
            "release",
        ):
            setattr(stored, name, getattr(row, name))
        stored.attempts = 0
        stored.release_attempts = 0
        stored.released_at = None
        stored.next_attempt_at = row.next_attempt_at
        stored.lease_until = None
        stored.last_error = None
        stored.finished_at = row.finished_at

    def _posting_row(
        self,
        mapping: PayrollMapping,
        run_id: str,
        run_period: str,
        journal: PayrollJournal,
        prepared: PreparedJournal | None,
        problems: Sequence[PostingProblem],
        *,
        trigger: str,
    ) -> PayrollPosting:
        now = self._clock()
        debit = sum((line.amount for line in journal.lines if line.debit_credit == "D"), Decimal(0))
        return PayrollPosting(
            posting_key=posting_key(mapping.mapping_id, run_id, journal.period, journal.kind),
            mapping_id=mapping.mapping_id,
            mapping_version=mapping.version,
            nmbrs_company_id=mapping.nmbrs_company_id,
            run_id=run_id,
            run_period=run_period,
            period=period_text(journal.period),
            kind=journal.kind,
            reference=journal.reference,
            reference_number=prepared.reference_number if prepared else None,
            financial_period=prepared.period_id if prepared else None,
            status=PostingStatus.REFUSED if problems else PostingStatus.PENDING,
            line_count=len(journal.lines),
            total_debit=debit,
            source_hash=source_hash(journal),
            source=journal.model_dump(mode="json"),
            payload=prepared.body.decode() if prepared else None,
            payload_hash=hashlib.sha256(prepared.body).hexdigest() if prepared else None,
            problems=[problem.as_dict() for problem in problems],
            trigger=trigger[:300],
            next_attempt_at=now,
            created_at=now,
            finished_at=now if problems else None,
            release=mapping.release,
        )

    def _visma(self, mapping: PayrollMapping) -> VismaNetConnector:
        return self._gateway.vismanet(
            mapping.vismanet_connection_id,
            mapping.vismanet_company_id,
            cost_centre_segment=mapping.cost_centre_segment,
            cost_unit_segment=mapping.cost_unit_segment,
        )

    # -- posting ----------------------------------------------------------------------------

    async def post_next(self) -> bool:
        """Post one due posting (False when none is due)."""
        now = self._clock()
        lease = now + timedelta(seconds=self._settings.lease_seconds)
        async with self._db.transaction() as session:
            claimed = await PayrollPostingRepository(session).claim_due(now, lease, self._in_flight)
            if claimed is None:
                return False
            releasing = claimed.status == PostingStatus.RELEASING
            # The intent of this attempt, committed before Visma.net is called.
            if releasing:
                claimed.release_attempts += 1
            else:
                claimed.attempts += 1
            claimed.first_attempt_at = claimed.first_attempt_at or now
            batch_number, release_attempts = claimed.batch_number, claimed.release_attempts
            mapping = await PayrollMappingRepository(session).version(
                claimed.mapping_id, claimed.mapping_version
            )
            posting_id = claimed.id
            assert mapping is not None
            source = dict(claimed.source)
            payload, period_id, ref = (
                claimed.payload,
                claimed.financial_period,
                claimed.reference_number,
            )
        self._in_flight.add(posting_id)
        try:
            if releasing:
                assert batch_number is not None
                await self._release(posting_id, mapping, batch_number, release_attempts)
                return True
            if payload is None or period_id is None or ref is None:
                # Planned from an event, without Visma.net: checked and prepared now, and
                # the body recorded before anything is sent.
                prepared = await self._prepare(posting_id, mapping, source)
                if prepared is None:
                    return True
            else:
                prepared = PreparedJournal(
                    period_id, ref, payload.encode(), description=_sent_description(payload)
                )
            await self._attempt(posting_id, mapping, prepared)
        finally:
            self._in_flight.discard(posting_id)
        return True

    async def _prepare(
        self, posting_id: uuid.UUID, mapping: PayrollMapping, source: dict[str, Any]
    ) -> PreparedJournal | None:
        """Check a posting planned without Visma.net and record its body (None: refused,
        or Visma.net could not be read: it is retried then)."""
        journal = PayrollJournal.model_validate(source)
        try:
            visma = self._visma(mapping)
            master = await self._master_data(visma, mapping)
            prepared, problems = await self._check_and_prepare(visma, master, mapping, journal)
        except ConnectorError as exc:
            if exc.retryable or isinstance(exc, AuthenticationFailed | UnexpectedResponse):
                await self._record_retry(posting_id, exc)
            else:
                await self._record_refusal(posting_id, exc)
            return None
        async with self._db.transaction() as session:
            posting = await PayrollPostingRepository(session).get(posting_id)
            assert posting is not None
            posting.reference_number = prepared.reference_number
            posting.financial_period = prepared.period_id
            posting.payload = prepared.body.decode()
            posting.payload_hash = hashlib.sha256(prepared.body).hexdigest()
            if problems:
                posting.status = PostingStatus.REFUSED
                posting.problems = [problem.as_dict() for problem in problems]
                posting.lease_until = None
                posting.next_attempt_at = None
                posting.finished_at = self._clock()
                await self._publish_failed(session, posting, "invalid_journal")
        if problems:
            self._metrics.postings.labels("refused").inc()
            return None
        return prepared

    async def plan_ready_journal(
        self, session: AsyncSession, journal: JournalReadyV1, *, trigger: str
    ) -> PayrollPosting | None:
        """A ``journal.ready`` journal (accepted) of a mapped business, planned for posting
        in the consumer's transaction; the runner checks it against Visma.net and posts it.

        A correction is posted in the event's ``period``: the contract of ``journal.ready``
        says so (``corrects_period`` only names what it corrects).
        """
        mapping = await PayrollMappingRepository(session).for_journal_business_id(
            journal.business_id
        )
        if mapping is None:
            return None
        payroll = journal_from_ready(journal)
        row = self._posting_row(
            mapping,
            payroll.run_id,
            journal.period,
            payroll,
            None,
            [],
            trigger=trigger,
        )
        row.nmbrs_company_id = journal.source[:100]
        postings = PayrollPostingRepository(session)
        await postings.add_if_new(row)
        return await postings.by_key(row.posting_key)

    async def _attempt(
        self, posting_id: uuid.UUID, mapping: PayrollMapping, prepared: PreparedJournal
    ) -> None:
        started = time.perf_counter()
        outcome: Literal["posted", "found_existing", "retrying", "refused", "failed"]
        try:
            visma = self._visma(mapping)
            posted = await visma.post_prepared(prepared)
        except (VendorUnavailable, RateLimited, AuthenticationFailed, UnexpectedResponse) as exc:
            # Not a refusal of the journal: the answer was lost, the vendor was busy or the
            # credential needs renewing. Tried again later; the look-up by reference makes
            # that safe even if Visma.net did create the batch.
            outcome = await self._record_retry(posting_id, exc)
        except ConnectorError as exc:
            outcome = "refused"
            await self._record_refusal(posting_id, exc)
        except Exception as exc:  # an unexpected failure: tried again, never lost
            logger.exception("payroll posting attempt failed", extra={"posting": str(posting_id)})
            outcome = await self._record_retry(posting_id, exc)
        else:
            outcome = "found_existing" if posted.found_existing else "posted"
            await self._record_posted(
                posting_id, mapping, posted.external_id, posted.found_existing, posted.status
            )
        elapsed = time.perf_counter() - started
        self._metrics.vendor_seconds.labels(outcome).observe(elapsed)
        self._metrics.vendor_time_total += elapsed
        self._metrics.postings.labels(outcome).inc()

    async def _record_posted(
        self,
        posting_id: uuid.UUID,
        mapping: PayrollMapping,
        batch_number: str,
        found_existing: bool,
        batch_status: str = "Balanced",
    ) -> None:
        released_already = False
        async with self._db.transaction() as session:
            posting = await PayrollPostingRepository(session).get(posting_id)
            assert posting is not None
            now = self._clock()
            posting.status = PostingStatus.POSTED
            posting.batch_number = batch_number
            posting.found_existing = found_existing
            posting.lease_until = None
            posting.next_attempt_at = None
            posting.last_error = None
            posting.finished_at = now
            if posting.release:
                if batch_status in RELEASED_BATCH_STATUSES:
                    # Found released already (a person released it, or an earlier run).
                    posting.status = PostingStatus.RELEASED
                    posting.released_at = now
                    released_already = True
                else:
                    # Released next, by the runner, as a step of its own.
                    posting.status = PostingStatus.RELEASING
                    posting.next_attempt_at = now
            await self._outbox.add(
                session,
                PayrollJournalPostedV1(
                    **_in_ledger(posting, mapping, batch_number), found_existing=found_existing
                ),
                key=str(posting.mapping_id),
                subject=posting.run_id,
            )
            if released_already:
                await self._publish_released(session, posting, mapping, found=True)
        logger.info(
            "payroll journal posted",
            extra={"posting": str(posting_id), "batch": batch_number, "found": found_existing},
        )

    async def _release(
        self,
        posting_id: uuid.UUID,
        mapping: PayrollMapping,
        batch_number: str,
        release_attempts: int,
    ) -> None:
        """Release a posted batch exactly once: after an earlier attempt (its answer may
        have been lost), the batch's status is read first and a released batch is only
        recorded."""
        started = time.perf_counter()
        outcome: Literal["released", "retrying", "refused", "failed"] = "released"
        try:
            visma = self._visma(mapping)
            found = False
            if release_attempts > 1:
                status = await visma.batch_status(batch_number)
                if status in VOID_BATCH_STATUSES:
                    raise _BatchVoided(status)
                found = status in RELEASED_BATCH_STATUSES
            if not found:
                await visma.release(batch_number)
        except _BatchVoided as voided:
            outcome = "refused"
            await self._record_release_refusal(
                posting_id,
                PostingProblem(
                    "batch_voided",
                    f"Batch {batch_number} was voided in Visma.net before it was released "
                    f"(status {voided.status}); export the run again to post it anew.",
                ),
            )
        except (VendorUnavailable, RateLimited, AuthenticationFailed, UnexpectedResponse) as exc:
            outcome = await self._record_retry(posting_id, exc, releasing=True)
        except ConnectorError as exc:
            outcome = "refused"
            problem = ledger_refusal(exc.vendor_code, exc.vendor_message, str(exc))
            await self._record_release_refusal(
                posting_id,
                PostingProblem(
                    "release_refused",
                    f"Posted as batch {batch_number}, but Visma.net refused to release it: "
                    f"{problem.message}",
                    vendor_code=problem.vendor_code,
                    vendor_message=problem.vendor_message,
                ),
            )
        except Exception as exc:  # unexpected: tried again (the status read makes it safe)
            logger.exception("payroll release attempt failed", extra={"posting": str(posting_id)})
            outcome = await self._record_retry(posting_id, exc, releasing=True)
        else:
            async with self._db.transaction() as session:
                posting = await PayrollPostingRepository(session).get(posting_id)
                assert posting is not None
                now = self._clock()
                posting.status = PostingStatus.RELEASED
                posting.released_at = now
                posting.finished_at = now
                posting.lease_until = None
                posting.next_attempt_at = None
                posting.last_error = None
                await self._publish_released(session, posting, mapping, found=found)
            logger.info(
                "payroll batch released",
                extra={"posting": str(posting_id), "batch": batch_number, "found": found},
            )
        elapsed = time.perf_counter() - started
        self._metrics.vendor_seconds.labels(outcome).observe(elapsed)
        self._metrics.vendor_time_total += elapsed
        self._metrics.postings.labels(outcome).inc()

    async def _publish_released(
        self,
        session: AsyncSession,
        posting: PayrollPosting,
        mapping: PayrollMapping,
        *,
        found: bool,
    ) -> None:
        """``payroll_journal.released``, in the transaction that records the release."""
        assert posting.batch_number is not None
        await self._outbox.add(
            session,
            PayrollJournalReleasedV1(
                **_in_ledger(posting, mapping, posting.batch_number), found_released=found
            ),
            key=str(posting.mapping_id),
            subject=posting.run_id,
        )

    async def _record_release_refusal(self, posting_id: uuid.UUID, problem: PostingProblem) -> None:
        async with self._db.transaction() as session:
            posting = await PayrollPostingRepository(session).get(posting_id)
            assert posting is not None
            posting.status = PostingStatus.REFUSED
            posting.problems = [problem.as_dict()]
            posting.last_error = problem.message[:2000]
            posting.lease_until = None
            posting.next_attempt_at = None
            posting.finished_at = self._clock()
            await self._publish_failed(session, posting, "release_refused")

    async def _record_retry(
        self, posting_id: uuid.UUID, exc: Exception, *, releasing: bool = False
    ) -> Literal["retrying", "failed"]:
        now = self._clock()
        async with self._db.transaction() as session:
            posting = await PayrollPostingRepository(session).get(posting_id)
            assert posting is not None
            posting.last_error = f"{type(exc).__name__}: {exc}"[:2000]
            posting.lease_until = None
            attempts = posting.release_attempts if releasing else posting.attempts
            if attempts >= self._settings.max_attempts:
                posting.status = PostingStatus.FAILED
                posting.next_attempt_at = None
                posting.finished_at = now
                posting.problems = [
                    PostingProblem(
                        "gave_up",
                        f"Visma.net could not be reached after {attempts} attempts"
                        + (" to release the posted batch" if releasing else "")
                        + f": "
                        f"{posting.last_error}",
                    ).as_dict()
                ]
                await self._publish_failed(session, posting, "gave_up")
                return "failed"
            wait = min(
                self._settings.retry_max_seconds,
                self._settings.retry_initial_seconds * 2 ** (max(attempts, 1) - 1),
            )
            retry_after = getattr(exc, "retry_after", None)
            if isinstance(retry_after, int | float) and retry_after > wait:
                wait = float(retry_after)
            posting.status = PostingStatus.RELEASING if releasing else PostingStatus.RETRYING
            posting.next_attempt_at = now + timedelta(seconds=wait)
        logger.warning(
            "payroll posting will be retried",
            extra={"posting": str(posting_id), "error": type(exc).__name__, "wait": wait},
        )
        return "retrying"

    async def _record_refusal(self, posting_id: uuid.UUID, exc: ConnectorError) -> None:
        async with self._db.transaction() as session:
            posting = await PayrollPostingRepository(session).get(posting_id)
            assert posting is not None
            problem = ledger_refusal(exc.vendor_code, exc.vendor_message, str(exc))
            posting.status = PostingStatus.REFUSED
            posting.problems = [problem.as_dict()]
            posting.last_error = str(exc)[:2000]
            posting.lease_until = None
            posting.next_attempt_at = None
            posting.finished_at = self._clock()
            await self._publish_failed(session, posting, "ledger_refused")
        logger.info("payroll posting refused by Visma.net", extra={"posting": str(posting_id)})

    async def _publish_failed(
        self, session: Any, posting: PayrollPosting, reason_code: str
    ) -> None:
        problems = [PostingProblem(**problem) for problem in posting.problems]
        await self._outbox.add(
            session,
            PayrollJournalFailedV1(
                posting_id=posting.id,
                mapping_id=posting.mapping_id,
                mapping_version=posting.mapping_version,
                source=SOURCE,
                source_company=posting.nmbrs_company_id,
                run_id=posting.run_id,
                period=posting.period,
                kind="correction" if posting.kind == "correction" else "normal",
                reference=posting.reference,
                reason_code=reason_code,
                message=summary(problems),
                problems=tuple(
                    PayrollPostingProblemV1(
                        code=problem.code,
                        message=problem.message[:2000],
                        line=problem.line,
                        vendor_code=problem.vendor_code,
                        vendor_message=(problem.vendor_message or None)
                        and problem.vendor_message[:2000],
                    )
                    for problem in problems[:MAX_PROBLEMS_PER_EVENT]
                ),
            ),
            key=str(posting.mapping_id),
            subject=posting.run_id,
        )

    # -- the schedule -----------------------------------------------------------------------

    async def export_new_runs(self) -> int:
        """Plan the runs finalised in Nmbrs and not yet planned, for every mapping with
        automatic export on: every year from the mapping's start period to this year (by
        the injected clock).

        A year is listed in Nmbrs (one call) only until it is *settled*: past, looked at
        after ``schedule_settle_days`` into the next year, with every run planned; journals
        are read only for runs without postings. The marks per mapping and year keep this
        across polls and replicas.
        """
        async with self._db.transaction() as session:
            mappings = [
                m for m in await PayrollMappingRepository(session).all_current() if m.auto_export
            ]
        now = self._clock()
        planned = 0
        for mapping in mappings:
            # Default: January of the year before the mapping was made (December's run is
            # often finalised in January).
            start = mapping.start_period or f"{as_utc(mapping.created_at).year - 1:04d}-01"
            async with self._db.transaction() as session:
                marks = await PayrollRunMarkRepository(session).of_mapping(mapping.mapping_id)
            years = [
                year
                for year in range(int(start[:4]), now.year + 1)
                if not (year in marks and marks[year].settled)
            ]
            if not years:
                continue
            listed: dict[int, list[PayrollRun]] = {}
            try:
                postings = await self.export(
                    mapping.mapping_id,
                    trigger="schedule:nmbrs-poll",
                    years=years,
                    only_new_runs=True,
                    not_before=start,
                    on_listed=listed.__setitem__,
                )
            except ExportRefusedError as refused:
                logger.warning(
                    "scheduled payroll export refused",
                    extra={"mapping_id": str(mapping.mapping_id), "reason": refused.reason_code},
                )
                continue
            planned += len(postings)
            await self._mark(mapping, listed, marks, now)
        return planned

    async def _mark(
        self,
        mapping: PayrollMapping,
        listed: dict[int, list[PayrollRun]],
        marks: dict[int, PayrollRunMark],
        now: datetime,
    ) -> None:
        """Record how far each listed year was looked at (every listed run is planned)."""
        settle = timedelta(days=self._settings.schedule_settle_days)
        async with self._db.transaction() as session:
            repository = PayrollRunMarkRepository(session)
            for year, runs in listed.items():
                keys = sorted(f"{_run_period(run)}:{run.run_id}" for run in runs)
                mark = marks.get(year) or PayrollRunMark(
                    mapping_id=mapping.mapping_id,
                    year=year,
                    nmbrs_company_id=mapping.nmbrs_company_id,
                    checked_at=now,
                )
                mark.high_water = keys[-1][:100] if keys else mark.high_water
                mark.runs_seen = len(keys)
                mark.checked_at = now
                mark.settled = now >= datetime(year + 1, 1, 1, tzinfo=UTC) + settle
                await repository.save(mark)

    # -- reading ----------------------------------------------------------------------------

    async def postings(
        self,
        *,
        mapping_id: uuid.UUID | None = None,
        status: PostingStatus | None = None,
        run_id: str | None = None,
    ) -> list[PayrollPosting]:
        """Postings without their bodies."""
        async with self._db.transaction() as session:
            return await PayrollPostingRepository(session).find(
                mapping_id=mapping_id, status=status, run_id=run_id, limit=100_000
            )

    async def posting(self, posting_id: uuid.UUID) -> PayrollPosting:
        """One posting with its evidence."""
        async with self._db.transaction() as session:
            posting = await PayrollPostingRepository(session).get(posting_id)
        if posting is None:
            raise NotFoundError(f"no posting {posting_id}")
        return posting

    async def statuses(
        self, mapping_id: uuid.UUID, by: Literal["run", "period"]
    ) -> list[RunStatus]:
        """Status per run or per period of a mapping's postings."""
        groups: dict[str, list[PayrollPosting]] = {}
        for posting in await self.postings(mapping_id=mapping_id):
            key = posting.run_id if by == "run" else posting.period
            groups.setdefault(key, []).append(posting)
        return [
            RunStatus(
                key=key,
                status=overall_status(str(p.status) for p in group),
                postings=len(group),
                batch_numbers=tuple(p.batch_number for p in group if p.batch_number),
            )
            for key, group in sorted(groups.items())
        ]

    async def evidence_csv(self, mapping_id: uuid.UUID | None) -> str:
        """Every posting's evidence as CSV (one row per posting, payload included)."""
        async with self._db.transaction() as session:
            rows = await PayrollPostingRepository(session).with_bodies(mapping_id)
        return evidence_csv(rows)


EVIDENCE_COLUMNS = (
    "posting_id",
    "mapping_id",
    "mapping_version",
    "nmbrs_company_id",
    "run_id",
    "run_period",
    "period",
    "kind",
    "reference",
    "reference_number",
    "financial_period",
    "status",
    "batch_number",
    "found_existing",
    "line_count",
    "total_debit",
    "source_sha256",
    "source_document_sha256",
    "payload_sha256",
    "payload",
    "trigger",
    "attempts",
    "created_at",
    "first_attempt_at",
    "finished_at",
    "problems",
    "released_at",
)


def _time(value: datetime | None) -> str:
    return as_utc(value).isoformat() if value is not None else ""


def evidence_csv(rows: Iterable[PayrollPosting]) -> str:
    """The auditor's CSV of postings (RFC 4180, a header row first)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(EVIDENCE_COLUMNS)
    for row in rows:
        writer.writerow(
            [
                row.id,
                row.mapping_id,
                row.mapping_version,
                row.nmbrs_company_id,
                row.run_id,
                row.run_period,
                row.period,
                row.kind,
                row.reference,
                row.reference_number or "",
                row.financial_period or "",
                row.status,
                row.batch_number or "",
                "yes" if row.found_existing else "no",
                row.line_count,
                format(row.total_debit, "f"),
                row.source_hash,
                str(row.source.get("source_sha256") or "") if row.source else "",
                row.payload_hash or "",
                row.payload or "",
                row.trigger,
                row.attempts,
                _time(row.created_at),
                _time(row.first_attempt_at),
                _time(row.finished_at),
                json.dumps(row.problems, ensure_ascii=False) if row.problems else "",
                _time(row.released_at),
            ]
        )
    return out.getvalue()


def _in_ledger(posting: PayrollPosting, mapping: PayrollMapping, batch: str) -> dict[str, Any]:
    """The fields of ``PayrollJournalInLedger`` for a posting in batch ``batch``."""
    return {
        "posting_id": posting.id,
        "mapping_id": posting.mapping_id,
        "mapping_version": posting.mapping_version,
        "source": SOURCE,
        "source_company": posting.nmbrs_company_id,
        "run_id": posting.run_id,
        "period": posting.period,
        "kind": "correction" if posting.kind == "correction" else "normal",
        "reference": posting.reference,
        "ledger": LEDGER,
        "ledger_company": mapping.vismanet_company_id,
        "batch_number": batch,
    }
