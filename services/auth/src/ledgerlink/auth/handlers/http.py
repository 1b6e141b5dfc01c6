"""HTTP routes of the auth service: connections, as the signed-in person may see them.

People see only the connections of environments they are members of: anything else
(another company's, or a rejected activation's, which has no environment) is 404.
"""

# No ``from __future__ import annotations``: FastAPI must see the dependency aliases
# (``Reader``, ``Writer``), which are local to the router's builder, as real objects.
import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, FastAPI
from pydantic import BaseModel

from ledgerlink.auth.handlers.dependencies import People, install_refusals, statuses
from ledgerlink.auth.handlers.web import WebContext
from ledgerlink.auth.services.environments import EnvironmentService
from ledgerlink.auth.services.sessions import ActiveSession
from ledgerlink.auth.storage.models import Connection
from ledgerlink.shared.db import UtcDatetime


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
    def of(cls, connection: Connection) -> "ConnectionPublic":
        return cls.model_validate(connection, from_attributes=True)


def build_router(context: WebContext, people: People) -> APIRouter:
    """Read-only views of connections, for the people of their environments."""
    router = APIRouter(prefix="/v1", tags=["connections"])
    Reader = Annotated[ActiveSession, Depends(people.person)]  # noqa: N806 - a type alias

    @router.get(
        "/connections/{connection_id}",
        response_model=ConnectionPublic,
        responses=statuses(401, 404, 422),
    )
    async def get_connection(connection_id: uuid.UUID, active: Reader) -> "ConnectionPublic":
        async with context.db.transaction() as session:
            connection = await EnvironmentService(session, context.clock).connection(
                active.user, connection_id
            )
        return ConnectionPublic.of(connection)

    @router.get("/connections", response_model=list[ConnectionPublic], responses=statuses(401, 422))
    async def list_connections(business_id: str, active: Reader) -> list[ConnectionPublic]:
        async with context.db.transaction() as session:
            connections = await EnvironmentService(
                session, context.clock
            ).connections_for_business_id(active.user, business_id)
        return [ConnectionPublic.of(connection) for connection in connections]

    return router


def register_http_routes(app: FastAPI, context: WebContext, people: People) -> None:
    """Attach the routes to the service's app (refusals answer as JSON)."""
    install_refusals(app)
    app.include_router(build_router(context, people))
