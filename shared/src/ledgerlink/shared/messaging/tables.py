"""Outbox and inbox tables, defined into each service's own metadata.

Every service owns its store, so the tables are created by a function rather than a
module-level model: each service calls :func:`define_messaging_tables` on its metadata
and its Alembic migrations create them.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    DateTime,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
)

#: BIGINT on PostgreSQL, INTEGER on SQLite (only INTEGER PRIMARY KEY auto-increments there).
_Id = BigInteger().with_variant(Integer(), "sqlite")


@dataclass(frozen=True)
class MessagingTables:
    """The outbox and inbox tables of one service's store."""

    outbox: Table
    inbox: Table


def define_messaging_tables(metadata: MetaData) -> MessagingTables:
    """Add ``outbox`` and ``inbox`` to ``metadata`` and return them."""
    outbox = Table(
        "outbox",
        metadata,
        Column("id", _Id, primary_key=True, autoincrement=True),
        Column("event_id", String(200), nullable=False, unique=True),
        Column("event_type", String(200), nullable=False),
        Column("topic", String(300), nullable=False),
        Column("key", String(200), nullable=True),
        Column("headers", JSON, nullable=False),
        Column("payload", LargeBinary, nullable=False),
        Column("created_at", DateTime(timezone=True), nullable=False),
        Column("published_at", DateTime(timezone=True), nullable=True),
        Column("attempts", Integer, nullable=False, server_default="0"),
        Column("last_error", String(1000), nullable=True),
    )
    Index("ix_outbox_unpublished", outbox.c.published_at, outbox.c.id)
    inbox = Table(
        "inbox",
        metadata,
        Column("consumer", String(200), primary_key=True),
        Column("event_id", String(200), primary_key=True),
        Column("event_type", String(200), nullable=False),
        Column("topic", String(300), nullable=False),
        Column("partition", Integer, nullable=False),
        Column("offset", BigInteger, nullable=False),
        Column("received_at", DateTime(timezone=True), nullable=False),
    )
    return MessagingTables(outbox=outbox, inbox=inbox)
