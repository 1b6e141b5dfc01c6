"""Tables of the auth store (its own metadata: the service owns its database)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from enum import StrEnum

from sqlalchemy import Column, DateTime, UniqueConstraint
from sqlalchemy import Enum as SqlEnum
from sqlalchemy.orm import registry
from sqlmodel import Field, SQLModel

from ledgerlink.shared.messaging.tables import define_messaging_tables


class AuthModel(SQLModel, registry=registry()):
    """Base of every auth table; its metadata is the auth store's schema."""


metadata = AuthModel.metadata
messaging = define_messaging_tables(metadata)


def _now() -> datetime:
    return datetime.now(UTC)


class ConnectionStatus(StrEnum):
    """Where a connection stands."""

    PENDING_AUTHORIZATION = "pending_authorization"
    ACTIVE = "active"
    REJECTED = "rejected"


class Environment(AuthModel, table=True):
    """A company's environment, matched by its (normalised) business ID and country."""

    __tablename__ = "environments"
    __table_args__ = (
        UniqueConstraint("country", "business_id", name="uq_environments_business_id"),
    )

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    country: str = Field(max_length=2)
    business_id: str = Field(max_length=32, index=True)
    company_name: str = Field(max_length=300)
    created_at: datetime = Field(
        default_factory=_now, sa_column=Column(DateTime(timezone=True), nullable=False)
    )


class Connection(AuthModel, table=True):
    """One company's link from a provider (its books) to a product."""

    __tablename__ = "connections"

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    environment_id: uuid.UUID | None = Field(
        default=None, foreign_key="environments.id", index=True
    )
    provider: str = Field(max_length=32)
    product: str = Field(max_length=32)
    country: str = Field(max_length=2)
    #: As received, so a rejection can quote it.
    business_id_raw: str = Field(max_length=32)
    #: Normalised; empty when the activation was rejected for its business ID.
    business_id: str = Field(default="", max_length=32, index=True)
    company_name: str = Field(max_length=300)
    requested_by_email: str = Field(max_length=320)
    requested_by_name: str = Field(max_length=300)
    store_reference: str | None = Field(default=None, max_length=300)
    status: ConnectionStatus = Field(
        sa_type=SqlEnum(
            ConnectionStatus,
            native_enum=False,
            length=32,
            values_callable=lambda kinds: [kind.value for kind in kinds],
        )
    )
    reason_code: str | None = Field(default=None, max_length=64)
    message: str | None = Field(default=None, max_length=1000)
    activation_event_id: str = Field(max_length=200)
    created_at: datetime = Field(
        default_factory=_now, sa_column=Column(DateTime(timezone=True), nullable=False)
    )
    updated_at: datetime = Field(
        default_factory=_now, sa_column=Column(DateTime(timezone=True), nullable=False)
    )
