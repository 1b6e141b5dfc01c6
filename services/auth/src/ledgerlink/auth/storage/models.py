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


class User(AuthModel, table=True):
    """A person who signed in, known by provider and the provider's subject identifier.

    OpenID Connect Core 5.7: ``sub`` (with the issuer) is the only stable identifier; an
    e-mail can change hands, so it is recorded, never used as the key.
    """

    __tablename__ = "users"
    __table_args__ = (UniqueConstraint("provider", "subject", name="uq_users_provider_subject"),)

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    provider: str = Field(max_length=32)
    subject: str = Field(max_length=255)
    #: Verified by the provider; lower-cased.
    email: str = Field(max_length=320, index=True)
    name: str = Field(default="", max_length=300)
    #: Google Workspace domain (``hd``) or Microsoft tenant id (``tid``), when there is one.
    organisation: str | None = Field(default=None, max_length=255)
    created_at: datetime = Field(
        default_factory=_now, sa_column=Column(DateTime(timezone=True), nullable=False)
    )
    last_signed_in_at: datetime = Field(
        default_factory=_now, sa_column=Column(DateTime(timezone=True), nullable=False)
    )


class BrowserSession(AuthModel, table=True):
    """A signed-in browser. The cookie holds a random token; only its SHA-256 is kept here,
    so a copy of the table does not let anyone act as the people in it."""

    __tablename__ = "sessions"

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    token_hash: str = Field(max_length=64, unique=True)
    user_id: uuid.UUID = Field(foreign_key="users.id", index=True)
    provider: str = Field(max_length=32)
    created_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    last_seen_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    #: The absolute end (created + the absolute lifetime); idle expiry is from last_seen_at.
    expires_at: datetime = Field(
        sa_column=Column(DateTime(timezone=True), nullable=False, index=True)
    )
    #: When the person last proved who they are at the provider (step-up compares it).
    authenticated_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
