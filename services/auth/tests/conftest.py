"""A real, migrated auth store for the tests, on PostgreSQL and on SQLite, and a town of
signed-in people on auth's in-process app (``ledgerlink.auth.testing``)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from ledgerlink.auth.main import MIGRATIONS
from ledgerlink.auth.storage.models import metadata
from ledgerlink.auth.testing import Town, build_auth_app
from ledgerlink.shared.db import Database
from ledgerlink.shared.pytest_plugin import define_store_fixtures

database_url, db = define_store_fixtures(MIGRATIONS, metadata, "auth-test")


@pytest.fixture
async def town(db: Database) -> AsyncIterator[Town]:
    town = Town(db, build_auth_app(db))
    try:
        yield town
    finally:
        for client in town.clients:
            await client.aclose()
