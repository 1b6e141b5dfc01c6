"""Alembic helpers: each service keeps its own migrations and calls these from ``env.py``."""

from __future__ import annotations

import asyncio
from typing import Any

from alembic import command, context
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from sqlalchemy import Connection, MetaData, pool
from sqlalchemy.ext.asyncio import create_async_engine


def alembic_config(script_location: str, url: str) -> Config:
    """An Alembic config for ``script_location`` (``package:folder``) and database ``url``."""
    config = Config()
    config.set_main_option("script_location", script_location)
    config.attributes["database_url"] = url
    return config


def run_migrations(metadata: MetaData) -> None:
    """The body of every service's ``env.py``: run migrations online or offline."""
    config = context.config
    url = config.attributes.get("database_url") or config.get_main_option("sqlalchemy.url")
    if not url:
        raise RuntimeError("no database URL given to the migrations")
    options: dict[str, Any] = {
        "target_metadata": metadata,
        "compare_type": True,
        "render_as_batch": url.startswith("sqlite"),
    }
    if context.is_offline_mode():
        context.configure(url=url, literal_binds=True, **options)
        with context.begin_transaction():
            context.run_migrations()
        return

    def run_sync(connection: Connection) -> None:
        context.configure(connection=connection, **options)
        with context.begin_transaction():
            context.run_migrations()

    async def run_async() -> None:
        engine = create_async_engine(url, poolclass=pool.NullPool)
        try:
            async with engine.begin() as connection:
                await connection.run_sync(run_sync)
        finally:
            await engine.dispose()

    asyncio.run(run_async())


def upgrade_to_head(script_location: str, url: str) -> None:
    """Apply every migration (blocking; from async code use ``asyncio.to_thread``)."""
    command.upgrade(alembic_config(script_location, url), "head")


async def model_differences(url: str, metadata: MetaData) -> list[Any]:
    """Differences between the migrated database and the models (empty when they agree)."""
    engine = create_async_engine(url, poolclass=pool.NullPool)
    try:
        async with engine.connect() as connection:

            def compare(sync_connection: Connection) -> list[Any]:
                migration_context = MigrationContext.configure(
                    sync_connection, opts={"compare_type": True}
                )
                return list(compare_metadata(migration_context, metadata))

            return await connection.run_sync(compare)
    finally:
        await engine.dispose()
