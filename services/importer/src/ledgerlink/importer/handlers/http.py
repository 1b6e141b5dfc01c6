"""HTTP routes of the importer."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, FastAPI, HTTPException, Query
from pydantic import BaseModel

from ledgerlink.importer.storage.models import ImportJob
from ledgerlink.importer.storage.repository import ImportJobRepository
from ledgerlink.shared.db import Database, UtcDatetime
from ledgerlink.shared.runtime import ProcessContext


class ImportJobPublic(BaseModel):
    """An import job as operators see it."""

    id: uuid.UUID
    connection_id: uuid.UUID | None
    business_id: str
    provider: str
    scope: list[str]
    trigger: str
    status: str
    file_location: str | None
    requested_event_id: str
    created_at: UtcDatetime
    updated_at: UtcDatetime

    @classmethod
    def of(cls, job: ImportJob) -> ImportJobPublic:
        return cls.model_validate(job, from_attributes=True)


def build_router(db: Database) -> APIRouter:
    """Read-only views of import jobs."""
    router = APIRouter(prefix="/v1", tags=["imports"])

    @router.get("/imports/{import_id}", response_model=ImportJobPublic)
    async def get_import(import_id: uuid.UUID) -> ImportJobPublic:
        async with db.transaction() as session:
            job = await ImportJobRepository(session).get(import_id)
        if job is None:
            raise HTTPException(404, f"no import {import_id}")
        return ImportJobPublic.of(job)

    @router.get("/imports", response_model=list[ImportJobPublic])
    async def list_imports(
        business_id: str,
        limit: int = Query(default=100, ge=1, le=1000, description="Most jobs returned."),
    ) -> list[ImportJobPublic]:
        """The business's import jobs, newest first."""
        async with db.transaction() as session:
            jobs = await ImportJobRepository(session).list_for_business_id(business_id, limit=limit)
        return [ImportJobPublic.of(job) for job in jobs]

    return router


def register_http_routes(process: ProcessContext, app: FastAPI) -> None:
    """Attach the routes to the service's app."""
    app.include_router(build_router(process.db))
