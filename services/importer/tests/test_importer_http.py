"""The importer's read-only HTTP routes, served from the test store (no broker)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from fastapi import FastAPI

from ledgerlink.importer.handlers.http import build_router
from ledgerlink.importer.storage.models import ImportJob, ImportStatus, ImportTrigger
from ledgerlink.importer.storage.repository import ImportJobRepository
from ledgerlink.shared.db import Database

BUSINESS_ID = "0112038-9"
START = datetime(2026, 5, 1, 8, 0, tzinfo=UTC)


@pytest.fixture
async def client(db: Database) -> AsyncIterator[httpx.AsyncClient]:
    app = FastAPI()
    app.include_router(build_router(db))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://importer") as client:
        yield client


async def add_job(db: Database, *, minutes: int, business_id: str = BUSINESS_ID) -> ImportJob:
    created = START + timedelta(minutes=minutes)
    async with db.transaction() as session:
        return await ImportJobRepository(session).add(
            ImportJob(
                connection_id=uuid.uuid4(),
                business_id=business_id,
                provider="netvisor",
                scope=["accounts", "ledger"],
                trigger=ImportTrigger.IMPORT_REQUESTED,
                status=ImportStatus.QUEUED,
                requested_event_id=str(uuid.uuid4()),
                created_at=created,
                updated_at=created,
            )
        )


async def test_get_import(db: Database, client: httpx.AsyncClient) -> None:
    job = await add_job(db, minutes=0)
    response = await client.get(f"/v1/imports/{job.id}")
    assert response.status_code == 200
    body = response.json()
    assert body == {
        "id": str(job.id),
        "connection_id": str(job.connection_id),
        "business_id": BUSINESS_ID,
        "provider": "netvisor",
        "scope": ["accounts", "ledger"],
        "trigger": "import_requested",
        "status": "queued",
        "file_location": None,
        "requested_event_id": job.requested_event_id,
        "created_at": body["created_at"],
        "updated_at": body["updated_at"],
    }
    assert datetime.fromisoformat(body["created_at"]) == START


async def test_unknown_import_is_404(client: httpx.AsyncClient) -> None:
    missing = uuid.uuid4()
    response = await client.get(f"/v1/imports/{missing}")
    assert response.status_code == 404
    assert response.json() == {"detail": f"no import {missing}"}


async def test_malformed_import_id_is_422(client: httpx.AsyncClient) -> None:
    response = await client.get("/v1/imports/not-a-uuid")
    assert response.status_code == 422


async def test_list_imports_newest_first(db: Database, client: httpx.AsyncClient) -> None:
    older = await add_job(db, minutes=0)
    newer = await add_job(db, minutes=5)
    await add_job(db, minutes=10, business_id="1927400-1")
    response = await client.get("/v1/imports", params={"business_id": BUSINESS_ID})
    assert response.status_code == 200
    assert [job["id"] for job in response.json()] == [str(newer.id), str(older.id)]

    response = await client.get("/v1/imports", params={"business_id": BUSINESS_ID, "limit": 1})
    assert [job["id"] for job in response.json()] == [str(newer.id)]


async def test_list_imports_needs_a_business_id(client: httpx.AsyncClient) -> None:
    assert (await client.get("/v1/imports")).status_code == 422
    response = await client.get("/v1/imports", params={"business_id": "2021005-7"})
    assert response.json() == []
