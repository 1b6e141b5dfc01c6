"""Auth's read-only HTTP routes, served from the test store (no broker)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from ledgerlink.auth.handlers.http import build_router
from ledgerlink.auth.services.activation import ActivationService
from ledgerlink.auth.storage.models import Connection, messaging
from ledgerlink.shared.db import Database
from ledgerlink.shared.events import ActivationRequestedV1
from ledgerlink.shared.messaging.outbox import Outbox

SAAB = "556036-0793"


@pytest.fixture
async def client(db: Database) -> AsyncIterator[httpx.AsyncClient]:
    app = FastAPI()
    app.include_router(build_router(db))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://auth") as client:
        yield client


async def activate(
    db: Database,
    *,
    business_id: str = SAAB,
    provider: str = "sie",
    product: str = "planning",
    country: str = "SE",
) -> Connection:
    data = ActivationRequestedV1.model_validate(
        {
            "provider": provider,
            "business_id": business_id,
            "country": country,
            "company_name": "Saab AB",
            "requested_by": {"email": "karin@example.se", "name": "Karin"},
            "product": product,
        }
    )
    async with db.transaction() as session:
        return await ActivationService(session, Outbox(messaging, source="test")).activate(
            data, event_id=str(uuid.uuid4())
        )


def expected(connection: Connection, **fields: Any) -> dict[str, Any]:
    body = {
        "id": str(connection.id),
        "environment_id": str(connection.environment_id) if connection.environment_id else None,
        "provider": connection.provider,
        "product": connection.product,
        "country": connection.country,
        "business_id": connection.business_id,
        "business_id_raw": connection.business_id_raw,
        "company_name": "Saab AB",
        "status": connection.status.value,
        "reason_code": connection.reason_code,
        "message": connection.message,
    }
    body.update(fields)
    return body


def without_times(body: dict[str, Any]) -> dict[str, Any]:
    # Timestamps come from the service's clock; checked for shape separately.
    for name in ("created_at", "updated_at"):
        assert datetime.fromisoformat(body.pop(name)).tzinfo is not None, name
    return body


async def test_get_active_connection(db: Database, client: httpx.AsyncClient) -> None:
    connection = await activate(db, business_id="5560360793")

    response = await client.get(f"/v1/connections/{connection.id}")

    assert response.status_code == 200
    assert without_times(response.json()) == expected(
        connection,
        status="active",
        business_id=SAAB,
        business_id_raw="5560360793",
        provider="sie",
        product="planning",
        country="SE",
        reason_code=None,
        message=None,
    )


async def test_get_pending_connection(db: Database, client: httpx.AsyncClient) -> None:
    connection = await activate(db, provider="nmbrs", product="payroll_export")

    body = (await client.get(f"/v1/connections/{connection.id}")).json()

    assert body["status"] == "pending_authorization"
    assert body["provider"] == "nmbrs"
    assert body["product"] == "payroll_export"
    assert body["environment_id"] == str(connection.environment_id)


async def test_get_rejected_connection_quotes_reason_and_message(
    db: Database, client: httpx.AsyncClient
) -> None:
    connection = await activate(db, business_id="556036-0794")

    response = await client.get(f"/v1/connections/{connection.id}")

    assert response.status_code == 200
    assert without_times(response.json()) == expected(
        connection,
        status="rejected",
        environment_id=None,
        business_id="",
        business_id_raw="556036-0794",
        reason_code="invalid_check_digit",
        message="Swedish organisation number (organisationsnummer) 556036-0794 has check "
        "digit 4; expected 3",
    )


async def test_unknown_connection_is_404(client: httpx.AsyncClient) -> None:
    missing = uuid.uuid4()
    response = await client.get(f"/v1/connections/{missing}")
    assert response.status_code == 404
    assert response.json() == {"detail": f"no connection {missing}"}


async def test_malformed_connection_id_is_422(client: httpx.AsyncClient) -> None:
    response = await client.get("/v1/connections/not-a-uuid")
    assert response.status_code == 422
    [error] = response.json()["detail"]
    assert error["loc"] == ["path", "connection_id"]


async def test_list_by_normalised_or_raw_business_id(
    db: Database, client: httpx.AsyncClient
) -> None:
    planning = await activate(db, business_id="5560360793", product="planning")
    payroll = await activate(db, business_id=SAAB, product="payroll_export", provider="nmbrs")
    rejected = await activate(db, business_id="556036-0794")
    other = await activate(db, business_id="0112038-9", country="FI")

    by_normal_form = await client.get("/v1/connections", params={"business_id": SAAB})
    assert by_normal_form.status_code == 200
    assert [body["id"] for body in by_normal_form.json()] == [str(planning.id), str(payroll.id)]

    by_raw_spelling = await client.get("/v1/connections", params={"business_id": "5560360793"})
    assert [body["id"] for body in by_raw_spelling.json()] == [str(planning.id)]

    # A rejected request has no normal form; it is found by what the company typed.
    by_rejected = await client.get("/v1/connections", params={"business_id": "556036-0794"})
    [body] = by_rejected.json()
    assert without_times(body) == expected(
        rejected,
        status="rejected",
        reason_code="invalid_check_digit",
        business_id="",
        business_id_raw="556036-0794",
    )

    finnish = await client.get("/v1/connections", params={"business_id": "0112038-9"})
    assert [body["id"] for body in finnish.json()] == [str(other.id)]


async def test_list_for_unknown_business_id_is_empty(client: httpx.AsyncClient) -> None:
    response = await client.get("/v1/connections", params={"business_id": "923609016"})
    assert response.status_code == 200
    assert response.json() == []


async def test_list_without_business_id_is_422(client: httpx.AsyncClient) -> None:
    response = await client.get("/v1/connections")
    assert response.status_code == 422
    [error] = response.json()["detail"]
    assert error["loc"] == ["query", "business_id"]
    assert error["type"] == "missing"


async def test_unknown_route_is_404(client: httpx.AsyncClient) -> None:
    response = await client.get("/v1/environments")
    assert response.status_code == 404
    assert response.json() == {"detail": "Not Found"}
