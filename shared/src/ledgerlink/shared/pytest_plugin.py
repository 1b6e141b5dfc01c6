"""Pytest fixtures every test suite of the workspace shares (loaded by the root conftest).

Back-ends are chosen once per session (see :mod:`ledgerlink.shared.testing`).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from ledgerlink.shared.migrations import upgrade_to_head
from ledgerlink.shared.testing import (
    KafkaBackend,
    PostgresBackend,
    start_kafka_backend,
    start_postgres_backend,
)

ENGINES = ("postgresql", "sqlite")


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
