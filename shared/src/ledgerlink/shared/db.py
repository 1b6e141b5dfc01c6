"""Async database access: one engine per service store, PostgreSQL or SQLite from one URL."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Collection
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated, Any

from pydantic import AfterValidator
from sqlalchemy import (
    ColumnElement,
    Dialect,
    Numeric,
    Select,
    String,
    any_,
    bindparam,
    event,
    func,
    select,
    text,
    true,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.types import TypeDecorator, TypeEngine

from ledgerlink.shared.config import DatabaseSettings


def as_utc(moment: datetime) -> datetime:
    """``moment`` in UTC; a naive time is taken to be UTC already.

    Stores keep UTC, and SQLite hands ``DateTime(timezone=True)`` values back without
    their offset.
    """
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


#: A datetime field of an API model: always rendered with its UTC offset.
UtcDatetime = Annotated[datetime, AfterValidator(as_utc)]


def create_engine(url: str, *, pool_size: int = 5, echo: bool = False) -> AsyncEngine:
    """An async engine; SQLite gets WAL, foreign keys and a busy timeout."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database
        if database and database != ":memory:":
            from pathlib import Path

            Path(database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(url, echo=echo)

        @event.listens_for(engine.sync_engine, "connect")
        def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA busy_timeout=5000")
            cursor.close()

        return engine
    engine = create_async_engine(
        url, echo=echo, pool_size=pool_size, pool_pre_ping=True, max_overflow=pool_size
    )
    event.listen(engine.sync_engine, "before_cursor_execute", _one_savepoint_name, retval=True)
    return engine


#: SQLAlchemy names every savepoint of a connection anew (``sa_savepoint_1``, ``_2``, ...).
_SAVEPOINT_STATEMENT = re.compile(
    r"^(SAVEPOINT|RELEASE SAVEPOINT|ROLLBACK TO SAVEPOINT) sa_savepoint_\d+$"
)


def _one_savepoint_name(
    _connection: Any,
    _cursor: Any,
    statement: str,
    parameters: Any,
    _context: Any,
    _executemany: bool,
) -> tuple[str, Any]:
    """Give every savepoint the same name on PostgreSQL.

    asyncpg prepares each distinct statement text (a round trip) and keeps 100 in its
    cache: with a savepoint per event, fresh names cost two prepares per event and push
    the handlers' own statements out of the cache. One name is equivalent because
    savepoints nest strictly (SQLAlchemy's nested transactions are LIFO), and PostgreSQL
    releases or rolls back to the most recent savepoint of a repeated name.
    """
    if "sa_savepoint_" in statement:
        statement = _SAVEPOINT_STATEMENT.sub(r"\1 ledgerlink_savepoint", statement)
    return statement, parameters


def one_of(column: ColumnElement[Any], values: Collection[Any], dialect: str) -> Any:
    """``column IN (values)`` whose SQL text is the same however many values there are.

    On PostgreSQL ``column = ANY($1)`` with one array parameter: asyncpg prepares a
    statement once per text and keeps it, whereas an ``IN`` list renders a parameter per
    value, so every new count is a new text, a new prepare (a round trip) and a new plan.
    Elsewhere (SQLite) an ordinary ``IN``.
    """
    if dialect == "postgresql":
        return column == any_(bindparam(None, list(values), type_=ARRAY(column.type)))
    return column.in_(list(values))


def probe_each(
    statement: Select[Any], column: ColumnElement[Any], values: Collection[Any], dialect: str
) -> Select[Any]:
    """``statement`` restricted to the rows whose ``column`` is one of ``values``, read by
    one index probe per value on PostgreSQL, whatever the planner's statistics say.

    ``column = ANY($1)`` (:func:`one_of`) leaves the plan to PostgreSQL, and on a table it
    has no statistics for (never analysed: a new service, a first import, a cluster without
    autovacuum) or with a long array it chooses to read every row of the table and filter
    them by the array, even where ``column`` leads an index: O(table) per batch, so a
    consumer's inbox check grew with every event it had ever recorded. Here each value is
    looked up in a LATERAL subquery behind ``OFFSET`` (which keeps PostgreSQL from turning
    it into a join), so the work follows the values, not the table. The columns are the
    statement's; its ORDER BY applies per value (order the result again if it matters).
    Elsewhere (SQLite) an ordinary ``IN``.
    """
    unique = list(dict.fromkeys(values))
    if dialect != "postgresql":
        return statement.where(column.in_(unique))
    probe = (
        func.unnest(bindparam(None, unique, type_=ARRAY(column.type)))
        .table_valued("value")
        .render_derived(name="probe")
    )
    hit = statement.where(column == probe.c.value).offset(0).lateral("hit")
    return select(*hit.c).select_from(probe).join(hit, true())


#: For :func:`plan_each_execution`.
_FORCE_CUSTOM_PLANS = text("SET LOCAL plan_cache_mode = force_custom_plan")


async def plan_each_execution(session: AsyncSession) -> None:
    """PostgreSQL: plan each statement of this transaction for its parameters.

    A prepared statement is planned generically after five executions, with the table
    statistics of that moment: for ``column = ANY($1)`` (:func:`one_of`) on a table that
    was nearly empty then, that plan filters the whole table instead of probing the
    index, and stays until the next ANALYZE (it took a batch's inbox check from 3 ms to
    130 ms over 20,000 events). A transaction that runs each statement once for many
    rows (a consumed batch, a relay pass) pays one planning per statement instead.
    """
    if session.get_bind().dialect.name == "postgresql":
        await session.execute(_FORCE_CUSTOM_PLANS)


class Database:
    """A service's store: the engine, a session factory and transactions.

    The message or request boundary (a Kafka handler, an HTTP route) opens one
    :meth:`transaction`, and everything inside it commits or rolls back together: a
    service works in the session it is given and does not commit.

    The exception is work that outlives one transaction, and it is owned in one named
    place per service: the importer's file import (``LedgerImportService``, its unit
    of work) opens its own transactions, because its lease heartbeats and progress
    must commit while its data transaction is still open, and a refusal is recorded
    after that transaction rolled back (see ``services/importer/README.md``).
    """

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self.sessionmaker = async_sessionmaker(engine, expire_on_commit=False)

    @classmethod
    def from_settings(cls, settings: DatabaseSettings) -> Database:
        """Build from the service's database settings."""
        return cls(
            create_engine(
                settings.url.get_secret_value(), pool_size=settings.pool_size, echo=settings.echo
            )
        )

    @property
    def dialect(self) -> str:
        """``postgresql`` or ``sqlite``."""
        return self.engine.dialect.name

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        """A session inside one transaction: committed on success, rolled back on error."""
        async with self.sessionmaker() as session, session.begin():
            yield session

    async def ping(self) -> None:
        """Raise if the database cannot be reached."""
        async with self.engine.connect() as connection:
            await connection.execute(text("SELECT 1"))

    async def dispose(self) -> None:
        """Close every pooled connection."""
        await self.engine.dispose()


_CENT = Decimal("0.01")
_LIMIT = Decimal("10") ** 16  # NUMERIC(18, 2): 16 digits before the point


class Money(TypeDecorator[Decimal]):
    """An exact amount with 2 decimals: ``NUMERIC(18, 2)``; exact text on SQLite.

    SQLite has no exact decimal type: its NUMERIC keeps 15 significant digits and
    SQLAlchemy would pass values through ``float``. There the amount is stored as its
    decimal text instead (``"1234.50"``). Either way Python sees :class:`Decimal` only.
    The migrations spell this ``sa.Numeric(precision=18, scale=2).with_variant(
    sa.String(length=24), 'sqlite')``.
    """

    impl = Numeric(18, 2, asdecimal=True)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "sqlite":
            return dialect.type_descriptor(String(24))
        return dialect.type_descriptor(Numeric(18, 2, asdecimal=True))

    def process_bind_param(self, value: Decimal | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        if not isinstance(value, Decimal) or not value.is_finite():
            raise TypeError(f"an amount must be a finite Decimal, not {value!r}")
        amount = value.quantize(_CENT)
        if amount != value:
            raise ValueError(f"amount {value} has more than 2 decimals")
        if abs(amount) >= _LIMIT:
            raise ValueError(f"amount {value} does not fit NUMERIC(18, 2)")
        return format(amount, "f") if dialect.name == "sqlite" else amount

    def process_result_value(self, value: Any, dialect: Dialect) -> Decimal | None:
        if value is None:
            return None
        return Decimal(value).quantize(_CENT)
