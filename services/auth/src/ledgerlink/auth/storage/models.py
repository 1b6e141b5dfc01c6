"""Tables of the auth store (its own metadata: the service owns its database)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, Column, DateTime, ForeignKey, Index, Text, UniqueConstraint
from sqlalchemy import Enum as SqlEnum
from sqlalchemy.orm import registry
from sqlmodel import Field, SQLModel

from ledgerlink.auth.domain.environments import Role

# Re-exported: the connection's status column is typed by the lifecycle's states.
from ledgerlink.auth.domain.lifecycle import ConnectionStatus as ConnectionStatus
from ledgerlink.auth.domain.terms import TermsKind
from ledgerlink.shared.messaging.tables import define_messaging_tables


class AuthModel(SQLModel, registry=registry()):
    """Base of every auth table; its metadata is the auth store's schema."""


metadata = AuthModel.metadata
messaging = define_messaging_tables(metadata)


def _now() -> datetime:
    return datetime.now(UTC)


def _str_enum(kind: type[StrEnum]) -> SqlEnum:
    # Stored as its value in a VARCHAR (no native enum type): adding a value needs no DDL.
    return SqlEnum(
        kind,
        native_enum=False,
        length=32,
        values_callable=lambda kinds: [item.value for item in kinds],
    )


class Environment(AuthModel, table=True):
    """A company's environment, matched by its (normalised) business ID and country."""

    __tablename__ = "environments"
    __table_args__ = (
        UniqueConstraint("country", "business_id", name="uq_environments_business_id"),
        UniqueConstraint("subdomain", name="uq_environments_subdomain"),
    )

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    country: str = Field(max_length=2)
    business_id: str = Field(max_length=32, index=True)
    company_name: str = Field(max_length=300)
    created_at: datetime = Field(
        default_factory=_now, sa_column=Column(DateTime(timezone=True), nullable=False)
    )
    # What a signed-in person enters when creating the environment. An environment made
    # by a file activation before anyone signed in has none of these (and no members):
    # it is "unclaimed" until a person its activations name claims it.
    official_name: str | None = Field(default=None, max_length=300)
    company_email: str | None = Field(default=None, max_length=320)
    subdomain: str | None = Field(default=None, max_length=63)
    created_by: uuid.UUID | None = Field(default=None, foreign_key="users.id")
    #: Who claimed an unclaimed environment, and when (the audit of the claim).
    claimed_by: uuid.UUID | None = Field(default=None, foreign_key="users.id")
    claimed_at: datetime | None = Field(
        default=None, sa_column=Column(DateTime(timezone=True), nullable=True)
    )


class EnvironmentMember(AuthModel, table=True):
    """A person's role in an environment."""

    __tablename__ = "environment_members"

    environment_id: uuid.UUID = Field(foreign_key="environments.id", primary_key=True)
    user_id: uuid.UUID = Field(foreign_key="users.id", primary_key=True, index=True)
    role: Role = Field(sa_type=_str_enum(Role))
    added_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    #: Who added them; None for the environment's first admin (its creator or claimer).
    added_by: uuid.UUID | None = Field(default=None, foreign_key="users.id")


class Organisation(AuthModel, table=True):
    """An accounting office (or group) that looks after many companies' administrations."""

    __tablename__ = "organisations"

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    name: str = Field(max_length=300)
    created_by: uuid.UUID = Field(foreign_key="users.id")
    created_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))


class OrganisationMember(AuthModel, table=True):
    """A person's role in an organisation."""

    __tablename__ = "organisation_members"

    organisation_id: uuid.UUID = Field(foreign_key="organisations.id", primary_key=True)
    user_id: uuid.UUID = Field(foreign_key="users.id", primary_key=True, index=True)
    role: Role = Field(sa_type=_str_enum(Role))
    added_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))


class Division(AuthModel, table=True):
    """A group of an organisation's administrations (a team, a region)."""

    __tablename__ = "divisions"
    __table_args__ = (UniqueConstraint("organisation_id", "name", name="uq_divisions_name"),)

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    organisation_id: uuid.UUID = Field(foreign_key="organisations.id", index=True)
    name: str = Field(max_length=200)
    created_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))


class RoleTemplate(AuthModel, table=True):
    """A named role an organisation hands out with administrations (seed 002's templates)."""

    __tablename__ = "templates"
    __table_args__ = (UniqueConstraint("organisation_id", "name", name="uq_templates_name"),)

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    organisation_id: uuid.UUID = Field(foreign_key="organisations.id", index=True)
    name: str = Field(max_length=200)
    role: Role = Field(sa_type=_str_enum(Role))
    description: str = Field(default="", max_length=1000)
    created_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))


class Administration(AuthModel, table=True):
    """An environment (one company) that an organisation administers."""

    __tablename__ = "administrations"

    organisation_id: uuid.UUID = Field(foreign_key="organisations.id", primary_key=True)
    environment_id: uuid.UUID = Field(foreign_key="environments.id", primary_key=True)
    division_id: uuid.UUID | None = Field(default=None, foreign_key="divisions.id")
    added_by: uuid.UUID = Field(foreign_key="users.id")
    added_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))


class TermsDocument(AuthModel, table=True):
    """One published version of the terms of use or the privacy notice."""

    __tablename__ = "terms_documents"
    __table_args__ = (UniqueConstraint("kind", "version", name="uq_terms_documents_version"),)

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    kind: TermsKind = Field(sa_type=_str_enum(TermsKind))
    version: int
    title: str = Field(max_length=300)
    #: The text itself, or where it is published (one of the two).
    text: str | None = Field(default=None)
    url: str | None = Field(default=None, max_length=1000)
    published_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))


class TermsAcceptance(AuthModel, table=True):
    """Who accepted which version, when, for which environment (None: for themselves)."""

    __tablename__ = "terms_acceptances"

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    user_id: uuid.UUID = Field(foreign_key="users.id", index=True)
    document_id: uuid.UUID = Field(foreign_key="terms_documents.id")
    environment_id: uuid.UUID | None = Field(default=None, foreign_key="environments.id")
    accepted_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))


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


class ConnectFlow(AuthModel, table=True):
    """A connection flow a person started in the product, between its pages.

    ``state_hash`` is SHA-256 of the OAuth ``state`` sent to the vendor (the callback finds
    the flow by it); ``sealed`` holds the flow's secrets (PKCE verifier, then the tokens)
    encrypted by the vault, bound to the flow's id. ``data`` is what the pages collected.
    """

    __tablename__ = "connect_flows"

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    user_id: uuid.UUID = Field(foreign_key="users.id", index=True)
    provider: str = Field(max_length=32)
    #: administrations (seed 002) or nmbrs_account (seed 003).
    kind: str = Field(max_length=32)
    state_hash: str | None = Field(default=None, max_length=64, index=True)
    data: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    key_version: int | None = Field(default=None)
    sealed: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    created_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    finished_at: datetime | None = Field(
        default=None, sa_column=Column(DateTime(timezone=True), nullable=True)
    )


class OrganisationCredential(AuthModel, table=True):
    """A vendor login an organisation keeps for importing companies (24SevenOffice's
    integration user, seed 004), sealed by the vault bound to the organisation's id."""

    __tablename__ = "organisation_credentials"

    organisation_id: uuid.UUID = Field(foreign_key="organisations.id", primary_key=True)
    provider: str = Field(primary_key=True, max_length=32)
    username: str = Field(max_length=320)
    attributes: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    key_version: int
    ciphertext: str = Field(sa_column=Column(Text, nullable=False))
    verified_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))


class LoginThrottle(AuthModel, table=True):
    """Refused vendor logins in a row per login (``key``: SHA-256 of provider and user)."""

    __tablename__ = "login_throttle"

    key: str = Field(primary_key=True, max_length=64)
    failures: int = Field(default=0)
    last_failed_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))


class ConnectionSettings(AuthModel, table=True):
    """What a connection page recorded about a connection (CoC reason and sector, the
    24SevenOffice transaction type and reconciliation setup, an account's name...)."""

    __tablename__ = "connection_settings"

    connection_id: uuid.UUID = Field(
        sa_column=Column(ForeignKey("connections.id", ondelete="CASCADE"), primary_key=True)
    )
    organisation_id: uuid.UUID | None = Field(
        default=None, foreign_key="organisations.id", index=True
    )
    settings: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    #: When the connection's setup (24SevenOffice's wizard) was completed.
    setup_completed_at: datetime | None = Field(
        default=None, sa_column=Column(DateTime(timezone=True), nullable=True)
    )
    updated_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))


# --- the activation pages (issue 13; migration 0005_activation_pages) ----------------------


class ActivationLink(AuthModel, table=True):
    """A single-use, expiring link to finish one activation (for upstreams that e-mail it).

    Only the SHA-256 of the link's token is kept: the link itself left in an event.
    ``used_at`` is set when the activation it leads to completes.
    """

    __tablename__ = "activation_links"

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    connection_id: uuid.UUID = Field(
        sa_column=Column(ForeignKey("connections.id", ondelete="CASCADE"), nullable=False)
    )
    token_hash: str = Field(max_length=64, unique=True)
    created_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    expires_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    used_at: datetime | None = Field(
        default=None, sa_column=Column(DateTime(timezone=True), nullable=True)
    )


class ActivationFlow(AuthModel, table=True):
    """Where one browser is in one activation's pages, between its requests.

    ``data`` holds what the steps decided (no secrets); ``sealed`` the vendor secrets a
    step obtained before the connection may hold them (Netvisor's customer key after its
    live check, Procountor's tokens before "Confirm connection"), each sealed by the vault
    and bound to this flow; the row is deleted when the activation completes.
    """

    __tablename__ = "activation_flows"
    __table_args__ = (
        UniqueConstraint("connection_id", "browser_hash", name="uq_activation_flows_browser"),
    )

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    connection_id: uuid.UUID = Field(
        sa_column=Column(ForeignKey("connections.id", ondelete="CASCADE"), nullable=False)
    )
    #: SHA-256 of the browser's flow cookie: each browser has its own progress.
    browser_hash: str = Field(max_length=64)
    user_id: uuid.UUID | None = Field(default=None, foreign_key="users.id")
    data: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    sealed: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    created_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    updated_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))


class FinancialModel(AuthModel, table=True):
    """Whether a company's financial model is active (seed 000: planning needs it first).

    Set by the financial model's own upstream through
    ``PUT /internal/v1/financial-models/{country}/{business_id}``.
    """

    __tablename__ = "financial_models"

    country: str = Field(max_length=2, primary_key=True)
    business_id: str = Field(max_length=32, primary_key=True)
    active: bool
    changed_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
