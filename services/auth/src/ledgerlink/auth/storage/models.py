"""Tables of the auth store (its own metadata: the service owns its database)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, Column, DateTime, ForeignKey, Index, Text, UniqueConstraint
from sqlalchemy import Enum as SqlEnum
from sqlalchemy.orm import registry
from sqlmodel import Field, SQLModel

from ledgerlink.auth.domain.lifecycle import ConnectionStatus
from ledgerlink.shared.messaging.tables import define_messaging_tables

__all__ = [
    "AuthModel",
    "Connection",
    "ConnectionCredential",
    "ConnectionSecret",
    "ConnectionStatus",
    "Environment",
    "messaging",
    "metadata",
]


class AuthModel(SQLModel, registry=registry()):
    """Base of every auth table; its metadata is the auth store's schema."""


metadata = AuthModel.metadata
messaging = define_messaging_tables(metadata)


def _now() -> datetime:
    return datetime.now(UTC)


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
    #: The vendor account first authorised (tenant, customer, user): a re-authorization
    #: must come from the same one.
    vendor_account: str | None = Field(default=None, max_length=300)
    #: When the first import completed (configuring -> active).
    first_import_completed_at: datetime | None = Field(
        default=None, sa_column=Column(DateTime(timezone=True), nullable=True)
    )


class ConnectionCredential(AuthModel, table=True):
    """What is known about a connection's credential besides its secrets.

    Its row is also the refresh lock: a refresh takes ``SELECT ... FOR UPDATE`` on it.
    """

    __tablename__ = "connection_credentials"

    connection_id: uuid.UUID = Field(
        sa_column=Column(ForeignKey("connections.id", ondelete="CASCADE"), primary_key=True)
    )
    #: oauth, client_credentials, netvisor, twentyfour, nmbrs_token.
    kind: str = Field(max_length=32)
    #: Non-secret facts the connector needs (Netvisor customer id, Nmbrs user and domain).
    attributes: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    access_expires_at: datetime | None = Field(
        default=None, sa_column=Column(DateTime(timezone=True), nullable=True)
    )
    refreshed_at: datetime | None = Field(
        default=None, sa_column=Column(DateTime(timezone=True), nullable=True)
    )
    #: Token endpoint renewals so far (operators and tests read it).
    refresh_count: int = Field(default=0)
    updated_at: datetime = Field(
        default_factory=_now, sa_column=Column(DateTime(timezone=True), nullable=False)
    )


class ConnectionSecret(AuthModel, table=True):
    """One encrypted secret of a connection (``field``: access_token, refresh_token...).

    ``ciphertext`` is AES-GCM under key ``key_version``, bound to the connection and the
    field by its associated data: copied to another row it does not open.
    """

    __tablename__ = "connection_secrets"
    __table_args__ = (Index("ix_connection_secrets_key_version", "key_version"),)

    connection_id: uuid.UUID = Field(
        sa_column=Column(ForeignKey("connections.id", ondelete="CASCADE"), primary_key=True)
    )
    field: str = Field(primary_key=True, max_length=64)
    key_version: int
    ciphertext: str = Field(sa_column=Column(Text, nullable=False))
    updated_at: datetime = Field(
        default_factory=_now, sa_column=Column(DateTime(timezone=True), nullable=False)
    )
