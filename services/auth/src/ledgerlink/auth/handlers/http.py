"""HTTP routes of the auth service."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, FastAPI, HTTPException
from pydantic import BaseModel

from ledgerlink.auth.storage.models import Connection
from ledgerlink.auth.storage.repository import ConnectionRepository
from ledgerlink.shared.db import Database, UtcDatetime
from ledgerlink.shared.runtime import ProcessContext, error_responses


class ConnectionPublic(BaseModel):
    """A connection as operators see it."""

    id: uuid.UUID
    environment_id: uuid.UUID | None
    provider: str
    product: str
    country: str
    business_id: str
    business_id_raw: str
    company_name: str
    status: str
    reason_code: str | None
    message: str | None
    created_at: UtcDatetime
    updated_at: UtcDatetime

    @classmethod
    def of(cls, connection: Connection) -> ConnectionPublic:
        return cls.model_validate(connection, from_attributes=True)


def build_router(db: Database) -> APIRouter:
    """Read-only views of connections."""
    router = APIRouter(prefix="/v1", tags=["connections"])

    @router.get(
        "/connections/{connection_id}",
        response_model=ConnectionPublic,
        responses=error_responses({404: "No connection with this id."}),
    )
    async def get_connection(connection_id: uuid.UUID) -> ConnectionPublic:
        async with db.transaction() as session:
            connection = await ConnectionRepository(session).get(connection_id)
        if connection is None:
            raise HTTPException(404, f"no connection {connection_id}")
        return ConnectionPublic.of(connection)

    @router.get("/connections", response_model=list[ConnectionPublic])
    async def list_connections(business_id: str) -> list[ConnectionPublic]:
        async with db.transaction() as session:
            connections = await ConnectionRepository(session).list_for_business_id(business_id)
        return [ConnectionPublic.of(connection) for connection in connections]

    return router


def register_http_routes(process: ProcessContext, app: FastAPI) -> None:
    """Attach the routes to the service's app."""
    app.include_router(build_router(process.db))
