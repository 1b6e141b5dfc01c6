"""A real, migrated journal-exporter store for the tests.

PostgreSQL when ``LEDGERLINK_TEST_DATABASE_URL`` names an admin URL (a database is
created for the session and dropped at its end), otherwise a temporary SQLite file.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from ledgerlink.journal_exporter.main import MIGRATIONS
from ledgerlink.journal_exporter.storage.models import metadata
from ledgerlink.shared.db import Database, create_engine
from ledgerlink.shared.migrations import upgrade_to_head
from ledgerlink.shared.testing import PostgresBackend

ADMIN_URL_VARIABLE = "LEDGERLINK_TEST_DATABASE_URL"


@asynccontextmanager
async def empty_database(folder: Path) -> AsyncIterator[str]:
    """The URL of a new, empty database, removed again afterwards."""
    admin_url = os.environ.get(ADMIN_URL_VARIABLE)
    if not admin_url:
        yield f"sqlite+aiosqlite:///{folder / f'journal-exporter-{uuid.uuid4().hex[:8]}.db'}"
        return
    postgres = PostgresBackend(kind="external", admin_url=admin_url)
    url = await postgres.create_database(prefix="ledgerlink_journal_exporter_test")
    try:
        yield url
    finally:
        await postgres.drop_database(url)


@pytest.fixture(scope="session")
def database_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("journal-exporter-store")


@pytest.fixture(scope="session")
async def database_url(database_folder: Path) -> AsyncIterator[str]:
    """A store migrated to head, shared by the session's tests."""
    async with empty_database(database_folder) as url:
        await asyncio.to_thread(upgrade_to_head, MIGRATIONS, url)
        yield url


@pytest.fixture
async def empty_database_url(database_folder: Path) -> AsyncIterator[str]:
    """A new database with no tables at all (for migration tests)."""
    async with empty_database(database_folder) as url:
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
