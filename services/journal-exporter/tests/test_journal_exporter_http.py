"""The journal exporter's read-only HTTP routes, served from the test store (no broker)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import datetime

import httpx
import pytest
from fastapi import FastAPI

from ledgerlink.journal_exporter.handlers.http import build_router
from ledgerlink.journal_exporter.services.journals import JournalService
from ledgerlink.journal_exporter.storage.models import Journal, messaging
from ledgerlink.shared.db import Database
from ledgerlink.shared.events import JournalLineV1, JournalReadyV1
from ledgerlink.shared.messaging.outbox import Outbox

BUSINESS_ID = "556036-0793"


@pytest.fixture
async def client(db: Database) -> AsyncIterator[httpx.AsyncClient]:
    app = FastAPI()
    app.include_router(build_router(db))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://exporter") as client:
        yield client


async def receive(
    db: Database, *lines: JournalLineV1, period: str = "2026-05", journal_id: str = "J-1"
) -> Journal:
    data = JournalReadyV1(
        journal_id=journal_id,
        source="payroll-nmbrs",
        business_id=BUSINESS_ID,
        period=period,
        run_reference="run-1",
        lines=lines,
    )
    async with db.transaction() as session:
        return await JournalService(
            session, Outbox(messaging, source="ledgerlink/journal-exporter")
        ).receive(data, event_id=str(uuid.uuid4()))


BALANCED = (
    JournalLineV1(account="5000", debit="1020.5", cost_center="CC-10", description="Salaries"),
    JournalLineV1(account="1930", credit="1020.50"),
)


async def test_get_accepted_journal_with_lines(db: Database, client: httpx.AsyncClient) -> None:
    journal = await receive(db, *BALANCED)
    response = await client.get(f"/v1/journals/{journal.id}")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "accepted"
    assert body["journal_id"] == "J-1"
    assert body["total_debit"] == "1020.50"  # decimal strings, never floats
    assert body["total_credit"] == "1020.50"
    assert body["problems"] == []
    assert body["lines"] == [
        {
            "line_no": 1,
            "account": "5000",
            "debit": "1020.50",
            "credit": "0.00",
            "cost_center": "CC-10",
            "cost_unit": None,
            "description": "Salaries",
        },
        {
            "line_no": 2,
            "account": "1930",
            "debit": "0.00",
            "credit": "1020.50",
            "cost_center": None,
            "cost_unit": None,
            "description": None,
        },
    ]
    assert datetime.fromisoformat(body["received_at"]).tzinfo is not None


async def test_get_rejected_journal_with_problems(db: Database, client: httpx.AsyncClient) -> None:
    journal = await receive(db, JournalLineV1(account="5000", debit="5"))
    body = (await client.get(f"/v1/journals/{journal.id}")).json()
    assert body["status"] == "rejected"
    assert body["lines"] == []
    assert body["problems"] == [
        {
            "code": "unbalanced",
            "message": "journal is unbalanced: debits 5.00, credits 0.00, difference 5.00",
            "line": None,
        }
    ]


async def test_unknown_journal_is_404(client: httpx.AsyncClient) -> None:
    missing = uuid.uuid4()
    response = await client.get(f"/v1/journals/{missing}")
    assert response.status_code == 404
    assert response.json() == {"detail": f"no journal {missing}"}


async def test_malformed_journal_id_is_422(client: httpx.AsyncClient) -> None:
    assert (await client.get("/v1/journals/J-1")).status_code == 422


async def test_list_journals_by_business_and_period(
    db: Database, client: httpx.AsyncClient
) -> None:
    may = await receive(db, *BALANCED, journal_id="J-may")
    june = await receive(db, *BALANCED, period="2026-06", journal_id="J-june")

    response = await client.get("/v1/journals", params={"business_id": BUSINESS_ID})
    assert response.status_code == 200
    assert [journal["id"] for journal in response.json()] == [str(june.id), str(may.id)]
    assert "lines" not in response.json()[0]

    response = await client.get(
        "/v1/journals", params={"business_id": BUSINESS_ID, "period": "2026-05"}
    )
    assert [journal["id"] for journal in response.json()] == [str(may.id)]

    response = await client.get("/v1/journals", params={"business_id": "923609016"})
    assert response.json() == []
    assert (await client.get("/v1/journals")).status_code == 422
