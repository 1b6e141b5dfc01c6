"""Every service's migrations reach head on both engines and match its models."""

from __future__ import annotations

import asyncio
import importlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import MetaData, inspect
from sqlalchemy.ext.asyncio import create_async_engine

from ledgerlink.shared.migrations import alembic_config, model_differences, upgrade_to_head
from ledgerlink.shared.testing import PostgresBackend

SERVICES = {
    "auth": "ledgerlink.auth",
    "importer": "ledgerlink.importer",
    "journal-exporter": "ledgerlink.journal_exporter",
}


async def table_names(url: str) -> set[str]:
    engine = create_async_engine(url)
    try:
        async with engine.connect() as connection:
            return set(await connection.run_sync(lambda sync: inspect(sync).get_table_names()))
    finally:
        await engine.dispose()


def service_metadata(package: str) -> MetaData:
    metadata: MetaData = importlib.import_module(f"{package}.storage.models").metadata
    return metadata


@pytest.fixture(params=["sqlite", "postgresql"])
async def database_url(
    request: pytest.FixtureRequest, tmp_path: Path, postgres_backend: PostgresBackend
) -> AsyncIterator[str]:
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'store.db'}"
        return
    url = await postgres_backend.create_database()
    try:
        yield url
    finally:
        await postgres_backend.drop_database(url)


@pytest.mark.parametrize("service", sorted(SERVICES))
async def test_upgrade_head_matches_the_models(service: str, database_url: str) -> None:
    package = SERVICES[service]
    await asyncio.to_thread(upgrade_to_head, f"{package}:migrations", database_url)

    metadata = service_metadata(package)
    assert await model_differences(database_url, metadata) == []

    tables = await table_names(database_url)
    assert set(metadata.tables) | {"alembic_version"} == tables
    assert {"outbox", "inbox"} <= tables


@pytest.mark.parametrize("service", sorted(SERVICES))
async def test_downgrade_to_base_removes_everything_and_upgrade_rebuilds_it(
    service: str, database_url: str
) -> None:
    package = SERVICES[service]
    location = f"{package}:migrations"
    await asyncio.to_thread(upgrade_to_head, location, database_url)
    await asyncio.to_thread(command.downgrade, alembic_config(location, database_url), "base")
    assert await table_names(database_url) == {"alembic_version"}
    await asyncio.to_thread(upgrade_to_head, location, database_url)
    assert await model_differences(database_url, service_metadata(package)) == []


@pytest.mark.parametrize("service", sorted(SERVICES))
async def test_upgrade_head_twice_is_a_no_op(service: str, database_url: str) -> None:
    location = f"{SERVICES[service]}:migrations"
    await asyncio.to_thread(upgrade_to_head, location, database_url)
    await asyncio.to_thread(upgrade_to_head, location, database_url)
    assert await model_differences(database_url, service_metadata(SERVICES[service])) == []
