"""A real, migrated importer store for the tests, on PostgreSQL and on SQLite."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from ledgerlink.importer.main import MIGRATIONS
from ledgerlink.importer.storage.models import metadata
from ledgerlink.shared.db import Database, create_engine
from ledgerlink.shared.pytest_plugin import ENGINES, migrated_database
from ledgerlink.shared.testing import PostgresBackend


@pytest.fixture(scope="session")
def database_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("importer-store")


@pytest.fixture(scope="session", params=ENGINES)
async def database_url(
    request: pytest.FixtureRequest, postgres_backend: PostgresBackend, database_folder: Path
) -> AsyncIterator[str]:
    """A store migrated to head, shared by the session's tests of one engine."""
    async with migrated_database(
        request.param, postgres_backend, database_folder, "importer-test", MIGRATIONS
    ) as url:
        yield url


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Database]:
    """The migrated store, emptied before each test."""
    database = Database(create_engine(database_url))
    async with database.transaction() as session:
        for table in reversed(metadata.sorted_tables):
            await session.execute(table.delete())
    try:
        yield database
    finally:
        await database.dispose()
