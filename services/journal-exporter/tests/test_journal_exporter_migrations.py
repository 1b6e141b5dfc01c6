"""The journal exporter's migrations build exactly the schema its models describe."""

from __future__ import annotations

import asyncio

from alembic import command
from sqlalchemy import inspect
from sqlalchemy.ext.asyncio import create_async_engine

from ledgerlink.journal_exporter.main import MIGRATIONS
from ledgerlink.journal_exporter.storage.models import metadata
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
    assert await table_names(url) == {"connections", "inbox", "journal_lines", "journals", "outbox"}
    await asyncio.to_thread(command.downgrade, alembic_config(MIGRATIONS, url), "base")
    assert await table_names(url) == set()
    await asyncio.to_thread(upgrade_to_head, MIGRATIONS, url)
    assert await model_differences(url, metadata) == []


async def test_amount_columns_are_exact(database_url: str) -> None:
    engine = create_async_engine(database_url)
    try:
        async with engine.connect() as connection:
            columns = await connection.run_sync(
                lambda sync: {
                    column["name"]: str(column["type"])
                    for column in inspect(sync).get_columns("journal_lines")
                }
            )
    finally:
        await engine.dispose()
    expected = "VARCHAR(24)" if database_url.startswith("sqlite") else "NUMERIC(18, 2)"
    assert columns["debit"] == expected
    assert columns["credit"] == expected
