"""Pytest fixtures every test suite of the workspace shares (loaded by the root conftest).

Back-ends are chosen once per session (see :mod:`ledgerlink.shared.testing`).
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry
from sqlalchemy import MetaData, text

from ledgerlink.shared.config import KafkaSettings
from ledgerlink.shared.db import Database, create_engine
from ledgerlink.shared.envelope import CloudEvent
from ledgerlink.shared.events import EventData
from ledgerlink.shared.messaging.consumer import EventConsumer
from ledgerlink.shared.messaging.dead_letters import DeadLetter, DeadLetterPublisher, RawRecord
from ledgerlink.shared.messaging.inbox import Inbox
from ledgerlink.shared.messaging.outbox import Outbox
from ledgerlink.shared.messaging.tables import MessagingTables
from ledgerlink.shared.metrics import MessagingMetrics
from ledgerlink.shared.migrations import upgrade_to_head
from ledgerlink.shared.telemetry import JsonLogFormatter
from ledgerlink.shared.testing import (
    KafkaBackend,
    PostgresBackend,
    start_kafka_backend,
    start_postgres_backend,
)

ENGINES = ("postgresql", "sqlite")


class _JsonLinesHandler(logging.Handler):
    """Keeps each record as the services' JSON formatter renders it when it is logged."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.setFormatter(JsonLogFormatter("test"))
        self.lines: list[dict[str, Any]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(json.loads(self.format(record)))


@pytest.fixture
def json_log_lines() -> Iterator[list[dict[str, Any]]]:
    """Every INFO-or-above log line of the test, as a service would write it (parsed JSON).

    Formatted at the moment of the log call, so trace ids and bound fields are those of
    the caller's context.
    """
    handler = _JsonLinesHandler()
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(min(level, logging.INFO))
    try:
        yield handler.lines
    finally:
        root.removeHandler(handler)
        root.setLevel(level)


@pytest.fixture(scope="session")
def kafka_backend() -> Iterator[KafkaBackend]:
    """The session's Kafka: explicit, testcontainers, or the embedded mock cluster."""
    backend = start_kafka_backend()
    yield backend
    backend.close()


@pytest.fixture(scope="session")
def postgres_backend() -> Iterator[PostgresBackend]:
    """The session's PostgreSQL: explicit, testcontainers, or the local server."""
    backend = start_postgres_backend()
    yield backend
    backend.close()


@asynccontextmanager
async def empty_database(
    engine: str, postgres: PostgresBackend, folder: Path, prefix: str
) -> AsyncIterator[str]:
    """The URL of a new, empty database on ``engine``, removed afterwards."""
    if engine == "sqlite":
        yield f"sqlite+aiosqlite:///{folder / f'{prefix}-{uuid.uuid4().hex[:8]}.db'}"
        return
    url = await postgres.create_database(prefix=prefix.replace("-", "_"))
    try:
        yield url
    finally:
        await postgres.drop_database(url)


@asynccontextmanager
async def migrated_database(
    engine: str, postgres: PostgresBackend, folder: Path, prefix: str, migrations: str
) -> AsyncIterator[str]:
    """A new database on ``engine`` with ``migrations`` applied up to head."""
    async with empty_database(engine, postgres, folder, prefix) as url:
        await asyncio.to_thread(upgrade_to_head, migrations, url)
        yield url


def define_store_fixtures(migrations: str, metadata: MetaData, prefix: str) -> tuple[Any, Any]:
    """``database_url`` and ``db`` fixtures for one service's store, on every engine.

    ``database_url`` is a store migrated to head, once per session and engine; ``db`` is
    a :class:`Database` on it, emptied before each test. Use in a service's conftest::

        database_url, db = define_store_fixtures(MIGRATIONS, metadata, "importer-test")
    """

    @pytest.fixture(scope="session", params=ENGINES)
    async def database_url(
        request: pytest.FixtureRequest,
        postgres_backend: PostgresBackend,
        tmp_path_factory: pytest.TempPathFactory,
    ) -> AsyncIterator[str]:
        folder = tmp_path_factory.mktemp(prefix)
        async with migrated_database(
            request.param, postgres_backend, folder, prefix, migrations
        ) as url:
            yield url

    @pytest.fixture
    async def db(database_url: str) -> AsyncIterator[Database]:
        database = Database(create_engine(database_url))
        async with database.transaction() as session:
            for table in reversed(metadata.sorted_tables):
                await session.execute(table.delete())
        try:
            yield database
        finally:
            await database.dispose()

    return database_url, db


class LazyPostgresDatabase:
    """One PostgreSQL database holding ``metadata``'s tables, made on first use.

    For test modules that want PostgreSQL only in some parametrisations (so SQLite-only
    runs never touch the server): tables are created once, emptied by :meth:`open`.
    """

    def __init__(self, metadata: MetaData, prefix: str) -> None:
        self._metadata = metadata
        self._prefix = prefix
        self._backend: PostgresBackend | None = None
        self._url: str | None = None

    async def open(self, backend: PostgresBackend) -> Database:
        """A :class:`Database` on the (created if need be) database, every table emptied."""
        if self._url is None:
            self._url = await backend.create_database(self._prefix)
            self._backend = backend
            engine = create_engine(self._url)
            try:
                async with engine.begin() as connection:
                    await connection.run_sync(self._metadata.create_all)
            finally:
                await engine.dispose()
        db = Database(create_engine(self._url))
        names = ", ".join(table.name for table in self._metadata.sorted_tables)
        async with db.engine.begin() as connection:
            await connection.execute(text(f"TRUNCATE {names} RESTART IDENTITY"))
        return db

    async def drop(self) -> None:
        """Drop the database if it was made."""
        if self._backend is not None and self._url is not None:
            await self._backend.drop_database(self._url)


@dataclass
class StandInProcess:
    """The parts of :class:`~ledgerlink.shared.runtime.ProcessContext` that a service's
    ``register_kafka_handlers`` uses, without a broker: consumers run against a real
    store, dead letters are collected in a list, subscriptions are recorded."""

    db: Database
    tables: MessagingTables
    source: str
    handler_attempts: int = 2
    #: ``KafkaSettings.consume_batch_handlers`` of the consumers handed out.
    batch_handlers: bool = True
    consumers: list[EventConsumer] = field(default_factory=list)
    subscriptions: list[tuple[str, str]] = field(default_factory=list)
    documented: list[type[EventData]] = field(default_factory=list)
    dead_letters: list[DeadLetter] = field(default_factory=list)

    @property
    def outbox(self) -> Outbox:
        return Outbox(self.tables, source=self.source)

    def consumer(self, group: str) -> EventConsumer:
        metrics = MessagingMetrics(CollectorRegistry())

        async def publish(letter: DeadLetter) -> None:
            self.dead_letters.append(letter)

        consumer = EventConsumer(
            name=group,
            db=self.db,
            inbox=Inbox(self.tables, group),
            dead_letters=DeadLetterPublisher(publish, metrics, consumer=group),
            settings=KafkaSettings(
                handler_attempts=self.handler_attempts,
                retry_backoff_seconds=0,
                consume_batch_handlers=self.batch_handlers,
            ),
            metrics=metrics,
        )
        self.consumers.append(consumer)
        return consumer

    def subscribe(self, consumer: EventConsumer, topic: str) -> None:
        self.subscriptions.append((consumer.name, topic))

    def document_publication(self, *models: type[EventData]) -> None:
        self.documented.extend(models)


def raw_record(
    data: EventData, *, key: str, offset: int = 0, source: str = "ledgerlink/test"
) -> RawRecord:
    """``data`` as the consumer would receive it from its topic."""
    envelope = CloudEvent.new(source=source, type=data.EVENT_TYPE)
    return RawRecord(
        topic=str(data.TOPIC),
        partition=0,
        offset=offset,
        key=key.encode(),
        value=data.model_dump_json().encode(),
        headers=envelope.to_headers(),
    )
