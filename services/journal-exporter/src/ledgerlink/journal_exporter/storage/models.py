"""Tables of the journal exporter's store (its own metadata: the service owns its database)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, Column, DateTime, ForeignKey, Index, Text, Uuid, text
from sqlalchemy import Enum as SqlEnum
from sqlalchemy.orm import registry
from sqlmodel import Field, SQLModel

from ledgerlink.shared.db import Money
from ledgerlink.shared.messaging.read_models import ConnectionReadModel
from ledgerlink.shared.messaging.tables import define_messaging_tables


class JournalExporterModel(SQLModel, registry=registry()):
    """Base of every journal-exporter table; its metadata is the store's schema."""


metadata = JournalExporterModel.metadata
messaging = define_messaging_tables(metadata)


def _now() -> datetime:
    return datetime.now(UTC)


class JournalStatus(StrEnum):
    """The outcome of a received journal."""

    ACCEPTED = "accepted"
    REJECTED = "rejected"


class Journal(JournalExporterModel, table=True):
    """A journal as received, accepted or rejected: one row per ``journal.ready`` event.

    ``id`` is ours; ``journal_id`` is the source's own id for the journal.
    """

    __tablename__ = "journals"
    __table_args__ = (
        Index("ix_journals_business_id_period", "business_id", "period"),
        # At most one accepted journal per source and journal id (rejected ones may
        # repeat); also the index of the duplicate check.
        Index(
            "uq_journals_accepted_source_journal_id",
            "source",
            "journal_id",
            unique=True,
            postgresql_where=text("status = 'accepted'"),
            sqlite_where=text("status = 'accepted'"),
        ),
    )

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    journal_id: str = Field(max_length=300)
    source: str = Field(max_length=300)
    business_id: str = Field(max_length=32)
    #: As received (a rejected journal's period may be malformed).
    period: str = Field(max_length=16)
    corrects_period: str | None = Field(default=None, max_length=16)
    run_reference: str = Field(max_length=300)
    status: JournalStatus = Field(
        sa_type=SqlEnum(
            JournalStatus,
            native_enum=False,
            length=32,
            values_callable=lambda kinds: [kind.value for kind in kinds],
        )
    )
    line_count: int
    #: Exact totals; null when an amount is invalid or a total too large to store.
    total_debit: Decimal | None = Field(default=None, sa_column=Column(Money(), nullable=True))
    total_credit: Decimal | None = Field(default=None, sa_column=Column(Money(), nullable=True))
    #: Every problem found ({code, message, line}); empty for an accepted journal.
    problems: list[dict[str, Any]] = Field(
        default_factory=list, sa_column=Column(JSON, nullable=False)
    )
    #: The event's data exactly as received.
    payload: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    received_event_id: str = Field(max_length=200, unique=True)
    received_at: datetime = Field(
        default_factory=_now, sa_column=Column(DateTime(timezone=True), nullable=False)
    )


class JournalLine(JournalExporterModel, table=True):
    """One line of an accepted journal, amounts exact."""

    __tablename__ = "journal_lines"

    #: The stored journal (``journals.id``), not the source's ``journal_id``.
    journal_row_id: uuid.UUID = Field(
        sa_column=Column(Uuid(), ForeignKey("journals.id", ondelete="CASCADE"), primary_key=True)
    )
    #: 1-based, in the order received.
    line_no: int = Field(primary_key=True)
    account: str = Field(max_length=64)
    debit: Decimal = Field(sa_column=Column(Money(), nullable=False))
    credit: Decimal = Field(sa_column=Column(Money(), nullable=False))
    cost_center: str | None = Field(default=None, max_length=64)
    cost_unit: str | None = Field(default=None, max_length=64)
    description: str | None = Field(default=None, max_length=500)


class Connection(ConnectionReadModel, JournalExporterModel, table=True):
    """An activated connection: a company whose journals this service may export."""

    __tablename__ = "connections"


class PayrollMapping(JournalExporterModel, table=True):
    """One version of a mapping: an Nmbrs company paired with a Visma.net company.

    A change makes a new version (the highest is current); postings record the version
    they were made with. Connections are auth's: credentials come from its token service.
    """

    __tablename__ = "payroll_mappings"

    mapping_id: uuid.UUID = Field(primary_key=True)
    version: int = Field(primary_key=True)
    name: str = Field(max_length=300)
    nmbrs_connection_id: uuid.UUID
    nmbrs_company_id: str = Field(max_length=100, index=True)
    vismanet_connection_id: uuid.UUID
    vismanet_company_id: str = Field(max_length=100)
    #: The Visma.net dimension descriptions (None: not sent) and the segments they name.
    cost_centre_description: str | None = Field(default=None, max_length=300)
    cost_centre_segment: int | None = None
    cost_unit_description: str | None = Field(default=None, max_length=300)
    cost_unit_segment: int | None = None
    auto_export: bool = False
    #: Journals of this business arriving as ``journal.ready`` (another payroll system)
    #: are posted through this mapping too.
    journal_business_id: str | None = Field(default=None, max_length=32, index=True)
    #: Release each batch in Visma.net after posting it (off: batches stay Balanced for an
    #: accountant to review and release, which is all seed 003 promises: "sent").
    release: bool = Field(default=False, sa_column_kwargs={"server_default": text("false")})
    #: The first period (YYYY-MM) whose runs the schedule posts (None: January of the year
    #: before the mapping was made).
    start_period: str | None = Field(default=None, max_length=7)
    created_by: str = Field(max_length=300)
    created_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))


class PostingStatus(StrEnum):
    """Where a posting stands. ``posted`` is seed 003's dark logo."""

    PENDING = "pending"
    RETRYING = "retrying"
    #: Posted as a batch; its release (the mapping asks for one) is still to come.
    RELEASING = "releasing"
    POSTED = "posted"
    #: Posted and released in Visma.net.
    RELEASED = "released"
    REFUSED = "refused"
    FAILED = "failed"


class PayrollPosting(JournalExporterModel, table=True):
    """One journal of one run in one period, and the evidence of its posting.

    ``posting_key`` is the identity (mapping, run, period, kind). The row is written (the
    intent, with the exact body to send) before Visma.net is called, and the outcome after.
    """

    __tablename__ = "payroll_postings"
    __table_args__ = (
        Index("ix_payroll_postings_mapping_period", "mapping_id", "period"),
        Index("ix_payroll_postings_due", "status", "next_attempt_at"),
    )

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    posting_key: str = Field(max_length=64, unique=True)
    mapping_id: uuid.UUID
    mapping_version: int
    nmbrs_company_id: str = Field(max_length=100)
    run_id: str = Field(max_length=100)
    run_period: str = Field(max_length=7, description="The run's own period, YYYY-MM.")
    period: str = Field(max_length=7, description="Where it is posted, YYYY-MM.")
    kind: str = Field(max_length=16)
    reference: str = Field(max_length=300)
    reference_number: str | None = Field(default=None, max_length=30)
    financial_period: str | None = Field(default=None, max_length=6)
    status: PostingStatus = Field(
        sa_type=SqlEnum(
            PostingStatus,
            native_enum=False,
            length=16,
            values_callable=lambda kinds: [kind.value for kind in kinds],
        )
    )
    line_count: int
    total_debit: Decimal = Field(sa_column=Column(Money(), nullable=False))
    source_hash: str = Field(max_length=64)
    #: The journal as read from Nmbrs (JSON of the connector's PayrollJournal).
    source: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    #: The exact bytes sent to Visma.net (UTF-8 JSON) and their SHA-256.
    payload: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    payload_hash: str | None = Field(default=None, max_length=64)
    batch_number: str | None = Field(default=None, max_length=100)
    found_existing: bool = False
    problems: list[dict[str, Any]] = Field(
        default_factory=list, sa_column=Column(JSON, nullable=False)
    )
    last_error: str | None = Field(default=None, max_length=2000)
    trigger: str = Field(max_length=300)
    attempts: int = 0
    next_attempt_at: datetime | None = Field(
        default=None, sa_column=Column(DateTime(timezone=True), nullable=True)
    )
    lease_until: datetime | None = Field(
        default=None, sa_column=Column(DateTime(timezone=True), nullable=True)
    )
    created_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    first_attempt_at: datetime | None = Field(
        default=None, sa_column=Column(DateTime(timezone=True), nullable=True)
    )
    finished_at: datetime | None = Field(
        default=None, sa_column=Column(DateTime(timezone=True), nullable=True)
    )
    #: Release wanted (the mapping version's choice), attempts made, and when it was done.
    release: bool = Field(default=False, sa_column_kwargs={"server_default": text("false")})
    release_attempts: int = Field(default=0, sa_column_kwargs={"server_default": text("0")})
    released_at: datetime | None = Field(
        default=None, sa_column=Column(DateTime(timezone=True), nullable=True)
    )


class PayrollRunMark(JournalExporterModel, table=True):
    """How far the schedule has looked at one Nmbrs company's runs of one year.

    ``high_water`` is the highest run (YYYY-MM-run) planned; a ``settled`` year is past
    and was looked at after its grace period: the schedule does not list it again.
    """

    __tablename__ = "payroll_run_marks"

    mapping_id: uuid.UUID = Field(primary_key=True)
    year: int = Field(primary_key=True)
    nmbrs_company_id: str = Field(max_length=100)
    high_water: str | None = Field(default=None, max_length=100)
    runs_seen: int = 0
    settled: bool = False
    checked_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))


class VendorRateWindow(JournalExporterModel, table=True):
    """A vendor's fixed rate window as every replica sees it (one row per client and
    company): calls counted in it, when it ends, and a pause a 429 asked for."""

    __tablename__ = "vendor_rate_windows"

    key: str = Field(primary_key=True, max_length=300)
    #: Calls allowed per window (X-RateLimit-Limit; the configured guess before the first).
    limit: int
    used: int = 0
    #: The vendor's latest X-RateLimit-Remaining (it only falls within one window).
    remaining: int | None = None
    #: Wall-clock seconds (UTC epoch) when the window surely ends (None: not known yet).
    ends_at: float | None = None
    #: The window's length as configured (limit / calls per second) or learned.
    length_seconds: float
    paused_until: float | None = None
    updated_at: float
