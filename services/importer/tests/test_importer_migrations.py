"""The importer's migrations build exactly the schema its models describe."""

from __future__ import annotations

import asyncio

from alembic import command
from sqlalchemy import inspect
from sqlalchemy.ext.asyncio import create_async_engine

from ledgerlink.importer.main import MIGRATIONS
from ledgerlink.importer.storage.models import metadata
from ledgerlink.shared.migrations import alembic_config, model_differences, upgrade_to_head


async def table_names(url: str) -> set[str]:
    engine = create_async_engine(url)
    try:
        async with engine.connect() as connection:
            names = await connection.run_sync(lambda sync: inspect(sync).get_table_names())
    finally:
        await engine.dispose()
    return set(names) - {"alembic_version"}


async def test_models_agree_with_migrations(database_url: str) -> None:
    assert await model_differences(database_url, metadata) == []


async def test_migrations_upgrade_downgrade_and_upgrade_again(empty_database_url: str) -> None:
    url = empty_database_url
    await asyncio.to_thread(upgrade_to_head, MIGRATIONS, url)
    assert await table_names(url) == {"connections", "import_jobs", "inbox", "outbox"}
    await asyncio.to_thread(command.downgrade, alembic_config(MIGRATIONS, url), "base")
    assert await table_names(url) == set()
    await asyncio.to_thread(upgrade_to_head, MIGRATIONS, url)
    assert await model_differences(url, metadata) == []
