"""Tables of the importer store (its own metadata: the service owns its database)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from enum import StrEnum

from sqlalchemy import JSON, Column, DateTime, Index
from sqlalchemy import Enum as SqlEnum
from sqlalchemy.orm import registry
from sqlmodel import Field, SQLModel

from ledgerlink.shared.messaging.tables import define_messaging_tables


class ImporterModel(SQLModel, registry=registry()):
    """Base of every importer table; its metadata is the importer store's schema."""


metadata = ImporterModel.metadata
messaging = define_messaging_tables(metadata)


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


class Connection(ImporterModel, table=True):
    """An activated connection, as the importer learnt of it from auth's events."""

    __tablename__ = "connections"

    connection_id: uuid.UUID = Field(primary_key=True)
    environment_id: uuid.UUID
    provider: str = Field(max_length=32)
    business_id: str = Field(max_length=32, index=True)
    company_name: str = Field(max_length=300)
    #: When the latest activation happened (its event's time).
    activated_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    last_activation_event_id: str = Field(max_length=200)


class ImportJob(ImporterModel, table=True):
    """One import of one connection's books."""

    __tablename__ = "import_jobs"
    __table_args__ = (Index("ix_import_jobs_business_id_created_at", "business_id", "created_at"),)

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    #: No foreign key: an import request may arrive before the connection's activation.
    connection_id: uuid.UUID = Field(index=True)
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
    #: The event that asked for the job (an activation or an import request).
    requested_event_id: str = Field(max_length=200, unique=True)
    created_at: datetime = Field(
        default_factory=_now, sa_column=Column(DateTime(timezone=True), nullable=False)
    )
    updated_at: datetime = Field(
        default_factory=_now, sa_column=Column(DateTime(timezone=True), nullable=False)
    )
