"""Auth's connections read straight from its store, in the shape its routes answer.

Since issue 12 auth's connection routes serve signed-in people of the connection's
environment only; the wire tests of activations (no person involved) check what auth
recorded here instead of through those routes.
"""

from __future__ import annotations

import uuid
from typing import Any

from ledgerlink.auth.handlers.http import ConnectionPublic
from ledgerlink.auth.storage.repository import ConnectionRepository
from ledgerlink.cli.stack import Stack
from ledgerlink.shared.db import Database, create_engine


async def _read(stack: Stack, business_id: str | None, connection_id: str | None) -> Any:
    database = Database(create_engine(stack.config.database_urls["auth"]))
    try:
        async with database.transaction() as session:
            repository = ConnectionRepository(session)
            if connection_id is not None:
                found = await repository.get(uuid.UUID(connection_id))
                return None if found is None else ConnectionPublic.of(found).model_dump(mode="json")
            assert business_id is not None
            return [
                ConnectionPublic.of(connection).model_dump(mode="json")
                for connection in await repository.list_for_business_id(business_id)
            ]
    finally:
        await database.dispose()


async def stored_connections(stack: Stack, business_id: str) -> list[dict[str, Any]]:
    """Every connection whose raw or normalised business ID matches."""
    result: list[dict[str, Any]] = await _read(stack, business_id, None)
    return result


async def stored_connection(stack: Stack, connection_id: str) -> dict[str, Any] | None:
    """One connection by id."""
    result: dict[str, Any] | None = await _read(stack, None, connection_id)
    return result
