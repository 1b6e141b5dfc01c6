"""Tables of the importer store (its own metadata: the service owns its database)."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime
from decimal import Decimal
from enum import StrEnum

from sqlalchemy import JSON, Column, DateTime, ForeignKey, Index, Text, UniqueConstraint, Uuid
from sqlalchemy import Enum as SqlEnum
from sqlalchemy.orm import registry
from sqlmodel import Field, SQLModel

from ledgerlink.shared.db import Money
from ledgerlink.shared.messaging.read_models import ConnectionReadModel
from ledgerlink.shared.messaging.tables import define_messaging_tables


class ImporterModel(SQLModel, registry=registry()):
    """Base of every importer table; its metadata is the importer store's schema."""


metadata = ImporterModel.metadata
messaging = define_messaging_tables(metadata)


_Date = date  # for tables with a column named ``date``


def _now() -> datetime:
    return datetime.now(UTC)


class ImportStatus(StrEnum):
    """Where an import job stands."""

    QUEUED = "queued"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"


class ImportTrigger(StrEnum):
    """What asked for an import job."""

    CONNECTION_ACTIVATED = "connection_activated"
    IMPORT_REQUESTED = "import_requested"
    UPLOAD = "upload"
    #: A connection's scheduled incremental sync.
    SCHEDULE = "schedule"


class Connection(ConnectionReadModel, ImporterModel, table=True):
    """An activated connection, as the importer learnt of it from auth's events."""

    __tablename__ = "connections"


class ImportJob(ImporterModel, table=True):
    """One import of one connection's books."""

    __tablename__ = "import_jobs"
    __table_args__ = (Index("ix_import_jobs_business_id_created_at", "business_id", "created_at"),)

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    #: No foreign key: an import request may arrive before the connection's activation.
    #: None for a file uploaded directly (HTTP or CLI) without a connection.
    connection_id: uuid.UUID | None = Field(default=None, index=True)
    business_id: str = Field(max_length=32)
    provider: str = Field(max_length=32)
    #: Parts of the books to import, in canonical order (see ``ImportScope``).
    scope: list[str] = Field(sa_column=Column(JSON, nullable=False))
    trigger: ImportTrigger = Field(
        sa_type=SqlEnum(
            ImportTrigger,
            native_enum=False,
            length=32,
            values_callable=lambda kinds: [kind.value for kind in kinds],
        )
    )
    status: ImportStatus = Field(
        sa_type=SqlEnum(
            ImportStatus,
            native_enum=False,
            length=32,
            values_callable=lambda kinds: [kind.value for kind in kinds],
        )
    )
    #: For file providers: where the uploaded file can be read.
    file_location: str | None = Field(default=None, max_length=300)
    #: The event that asked for the job (an activation or an import request), or
    #: "upload:<id>" for a direct upload.
    requested_event_id: str = Field(max_length=200, unique=True)
    #: The file's name as uploaded, and the SHA-256 of its content (set when it is read).
    filename: str | None = Field(default=None, max_length=300)
    content_hash: str | None = Field(default=None, max_length=64, index=True)
    #: What the import did: "imported", "replaced" (a year held before), "unchanged"
    #: (the same file was imported before).
    outcome: str | None = Field(default=None, max_length=16)
    company_id: uuid.UUID | None = None
    fiscal_year_start: date | None = None
    fiscal_year_end: date | None = None
    #: Lines read so far (progress; committed separately from the import's data).
    progress_lines: int = 0
    #: {"accounts": n, "dimensions": n, "objects": n, "vouchers": n, "lines": n}
    counts: dict[str, int] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    periods: list[str] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    #: "balanced", "differences" or "not_available".
    reconciliation_status: str | None = Field(default=None, max_length=16)
    differences: list[dict[str, str]] | None = Field(
        default=None, sa_column=Column(JSON, nullable=True)
    )
    notices: list[dict[str, str]] | None = Field(
        default=None, sa_column=Column(JSON, nullable=True)
    )
    #: Why the person asked to replace a stored fiscal year that the file would
    #: otherwise not replace (fewer kinds of data, or an older file); None: not asked.
    replace_reason: str | None = Field(default=None, max_length=1000)
    #: API syncs: "first", "incremental", "full_refresh" or "backfill" (None: a file import).
    sync_mode: str | None = Field(default=None, max_length=16)
    #: A full read's checkpoint: the connector's cursor after the last committed page
    #: (committed with that page's rows, so a resumed sync goes on from there).
    sync_cursor: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    #: A full read writes into a staging company swapped in only when the read completes.
    staging_company_id: uuid.UUID | None = None
    #: A backfill's range of voucher dates (both days included); None otherwise.
    sync_from: date | None = None
    sync_to: date | None = None
    error_code: str | None = Field(default=None, max_length=64)
    error_message: str | None = Field(default=None, max_length=2000)
    attempts: int = 0
    #: A runner holds the job until this time and extends it while working; a job left
    #: "running" past it (its runner died) is taken over and run again.
    lease_expires_at: datetime | None = Field(
        default=None, sa_column=Column(DateTime(timezone=True), nullable=True)
    )
    started_at: datetime | None = Field(
        default=None, sa_column=Column(DateTime(timezone=True), nullable=True)
    )
    finished_at: datetime | None = Field(
        default=None, sa_column=Column(DateTime(timezone=True), nullable=True)
    )
    created_at: datetime = Field(
        default_factory=_now, sa_column=Column(DateTime(timezone=True), nullable=False)
    )
    updated_at: datetime = Field(
        default_factory=_now, sa_column=Column(DateTime(timezone=True), nullable=False)
    )


# --------------------------------------------------------------------- accounting store
#
# One company's books: the chart, dimensions and their objects are the company's; vouchers,
# lines and balances belong to one fiscal year, so that a newer file for that year replaces
# exactly that year (delete by fiscal_year_id, then insert, in one transaction).
# Amounts are Money: NUMERIC(18, 2) on PostgreSQL, exact decimal text on SQLite.


class Company(ImporterModel, table=True):
    """Whose books these are."""

    __tablename__ = "companies"

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    business_id: str = Field(max_length=32, unique=True)
    country: str = Field(max_length=2)
    name: str = Field(max_length=300)
    currency: str = Field(max_length=3)
    #: The chart the accounts follow (BAS, EUBAS97, NO-standard ...): classifies reports.
    chart: str = Field(max_length=32)
    created_at: datetime = Field(
        default_factory=_now, sa_column=Column(DateTime(timezone=True), nullable=False)
    )
    updated_at: datetime = Field(
        default_factory=_now, sa_column=Column(DateTime(timezone=True), nullable=False)
    )


class FiscalYear(ImporterModel, table=True):
    """A company's fiscal year and the import whose data it holds now."""

    __tablename__ = "fiscal_years"
    __table_args__ = (
        UniqueConstraint("company_id", "start", name="uq_fiscal_years_company_start"),
    )

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    company_id: uuid.UUID = Field(foreign_key="companies.id")
    start: date
    end: date
    #: The import that wrote this year's vouchers and balances.
    import_id: uuid.UUID
    content_hash: str = Field(max_length=64)
    source_format: str = Field(max_length=16)
    source_generated_on: date | None = None
    #: The SIE type (#SIETYP 1-4) of the file the year holds; None for SAF-T.
    source_sie_type: int | None = None


class Account(ImporterModel, table=True):
    """An account of a company's chart."""

    __tablename__ = "accounts"

    company_id: uuid.UUID = Field(foreign_key="companies.id", primary_key=True)
    number: str = Field(max_length=32, primary_key=True)
    name: str = Field(max_length=300)
    account_type: str | None = Field(default=None, max_length=16)
    #: SAF-T standard account / grouping code.
    standard_code: str | None = Field(default=None, max_length=32)
    sru_code: str | None = Field(default=None, max_length=16)


class Dimension(ImporterModel, table=True):
    """A dimension: cost centre, cost unit, project, or another the source defines."""

    __tablename__ = "dimensions"

    company_id: uuid.UUID = Field(foreign_key="companies.id", primary_key=True)
    dimension_id: str = Field(max_length=32, primary_key=True)
    name: str = Field(max_length=300)
    kind: str = Field(max_length=16)


class DimensionObject(ImporterModel, table=True):
    """One object of a dimension (one cost centre, one project ...)."""

    __tablename__ = "dimension_objects"

    company_id: uuid.UUID = Field(foreign_key="companies.id", primary_key=True)
    dimension_id: str = Field(max_length=32, primary_key=True)
    object_id: str = Field(max_length=64, primary_key=True)
    name: str = Field(max_length=300)


class Voucher(ImporterModel, table=True):
    """A voucher; ``voucher_no`` is its position in the import (the key lines refer to).

    No foreign key to ``fiscal_years``, here and on ``voucher_lines``: PostgreSQL checks a
    foreign key with one query per inserted row, which took a COPY of a million lines from
    ~315k to ~135k rows/s (bench/bench_ledger_import.py). Rows are only ever written and
    deleted by the import, per fiscal year, in the transaction that locks that year's row.
    """

    __tablename__ = "vouchers"
    #: API syncs replace or remove a voucher by the vendor's id.
    __table_args__ = (Index("ix_vouchers_fiscal_year_id_source_id", "fiscal_year_id", "source_id"),)

    fiscal_year_id: uuid.UUID = Field(primary_key=True)
    voucher_no: int = Field(primary_key=True)
    series: str = Field(max_length=32)
    number: str = Field(max_length=64)
    date: _Date
    period: _Date
    text: str = Field(max_length=1000)
    #: The source's own id (SIE series+number, SAF-T JournalID/TransactionID).
    source_id: str = Field(max_length=200)


class VoucherLine(ImporterModel, table=True):
    """A voucher row: account, signed amount (debit positive), text, dimension objects."""

    __tablename__ = "voucher_lines"

    fiscal_year_id: uuid.UUID = Field(primary_key=True)
    voucher_no: int = Field(primary_key=True)
    line_no: int = Field(primary_key=True)
    account: str = Field(max_length=32)
    amount: Decimal = Field(sa_column=Column(Money(), nullable=False))
    text: str = Field(max_length=1000)
    #: "dimension=object" pairs joined by ";" (e.g. "1=100;6=P1"); "" for none.
    objects: str = Field(max_length=1000)


class PeriodBalance(ImporterModel, table=True):
    """An account's debit and credit turnover in one period, in total or for one object.

    ``dimension_id``/``object_id`` are "" for the account's total. Kept at import so that
    reports read a few rows per account, however many lines the ledger has.
    """

    __tablename__ = "period_balances"

    fiscal_year_id: uuid.UUID = Field(
        sa_column=Column(
            Uuid(), ForeignKey("fiscal_years.id", ondelete="CASCADE"), primary_key=True
        )
    )
    period: date = Field(primary_key=True)
    account: str = Field(max_length=32, primary_key=True)
    dimension_id: str = Field(max_length=32, primary_key=True)
    object_id: str = Field(max_length=64, primary_key=True)
    debit: Decimal = Field(sa_column=Column(Money(), nullable=False))
    credit: Decimal = Field(sa_column=Column(Money(), nullable=False))


class SourceBalance(ImporterModel, table=True):
    """An account's opening and closing balance for the year as the source reported them."""

    __tablename__ = "source_balances"

    fiscal_year_id: uuid.UUID = Field(
        sa_column=Column(
            Uuid(), ForeignKey("fiscal_years.id", ondelete="CASCADE"), primary_key=True
        )
    )
    account: str = Field(max_length=32, primary_key=True)
    opening: Decimal | None = Field(default=None, sa_column=Column(Money(), nullable=True))
    closing: Decimal | None = Field(default=None, sa_column=Column(Money(), nullable=True))


class ObjectSourceBalance(ImporterModel, table=True):
    """An account's opening and closing balance for one dimension object (SIE #OIB/#OUB)."""

    __tablename__ = "object_balances"

    fiscal_year_id: uuid.UUID = Field(
        sa_column=Column(
            Uuid(), ForeignKey("fiscal_years.id", ondelete="CASCADE"), primary_key=True
        )
    )
    account: str = Field(max_length=32, primary_key=True)
    dimension_id: str = Field(max_length=32, primary_key=True)
    object_id: str = Field(max_length=64, primary_key=True)
    opening: Decimal | None = Field(default=None, sa_column=Column(Money(), nullable=True))
    closing: Decimal | None = Field(default=None, sa_column=Column(Money(), nullable=True))


class ComparisonBalance(ImporterModel, table=True):
    """An account's balances of the previous fiscal year as the file reports them.

    SIE ``#IB -1`` / ``#UB -1`` / ``#RES -1``: the comparison year of the P&L and the
    balance sheet.
    """

    __tablename__ = "comparison_balances"

    fiscal_year_id: uuid.UUID = Field(
        sa_column=Column(
            Uuid(), ForeignKey("fiscal_years.id", ondelete="CASCADE"), primary_key=True
        )
    )
    account: str = Field(max_length=32, primary_key=True)
    opening: Decimal | None = Field(default=None, sa_column=Column(Money(), nullable=True))
    closing: Decimal | None = Field(default=None, sa_column=Column(Money(), nullable=True))


# ------------------------------------------------------------------------ ledger sync


class LedgerPeriod(ImporterModel, table=True):
    """An accounting period of a company as its ledger reports it, open or closed."""

    __tablename__ = "ledger_periods"

    company_id: uuid.UUID = Field(
        sa_column=Column(Uuid(), ForeignKey("companies.id", ondelete="CASCADE"), primary_key=True)
    )
    start: date = Field(primary_key=True)
    end: date
    status: str = Field(max_length=8)


class SyncState(ImporterModel, table=True):
    """A connection's sync over its vendor's API: where it stands and when it runs next."""

    __tablename__ = "sync_states"

    connection_id: uuid.UUID = Field(primary_key=True)
    business_id: str = Field(max_length=32)
    provider: str = Field(max_length=32)
    #: The connector's cursor after the last completed sync ("" before the first one).
    cursor: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    #: Minutes between scheduled incremental syncs.
    interval_minutes: int = 15
    next_run_at: datetime | None = Field(
        default=None, sa_column=Column(DateTime(timezone=True), nullable=True)
    )
    #: Why the schedule is paused (the connection needs re-authorisation, was revoked ...).
    paused_reason: str | None = Field(default=None, max_length=300)
    last_import_id: uuid.UUID | None = None
    last_status: str | None = Field(default=None, max_length=16)
    last_mode: str | None = Field(default=None, max_length=16)
    last_started_at: datetime | None = Field(
        default=None, sa_column=Column(DateTime(timezone=True), nullable=True)
    )
    last_finished_at: datetime | None = Field(
        default=None, sa_column=Column(DateTime(timezone=True), nullable=True)
    )
    #: When the last completed sync began reading: the books are current up to then.
    last_completed_at: datetime | None = Field(
        default=None, sa_column=Column(DateTime(timezone=True), nullable=True)
    )
    last_counts: dict[str, int] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    last_error: str | None = Field(default=None, max_length=2000)
    #: What the last completed sync says the books lack (e.g. Procountor payroll receipts
    #: hidden from the connection's user: the ledger will not add up). Shown in reports.
    warnings: list[str] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    #: 24SevenOffice: the transaction type chosen at activation, the default of anything
    #: written to the company (imports read every type).
    default_transaction_type: str | None = Field(default=None, max_length=64)
