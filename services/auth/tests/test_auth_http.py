"""Auth's read-only connection routes, served from the test store (no broker).

Issue 12 made them person-facing: a signed-in session is required (401 without), and a
person sees only the connections of environments they are a member of (404 / left out
otherwise). Karin is the admin of Saab's environment in every test here.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import httpx
import pytest

from ledgerlink.auth.handlers.http import ConnectionPublic
from ledgerlink.auth.services.activation import ActivationService
from ledgerlink.auth.storage.models import Connection, messaging
from ledgerlink.auth.testing import Town
from ledgerlink.shared.db import Database
from ledgerlink.shared.events import ActivationRequestedV1
from ledgerlink.shared.messaging.outbox import Outbox

SAAB = "556036-0793"


async def environment_of(
    town: Town, email: str, country: str, business_id: str
) -> httpx.AsyncClient:
    """A person signed in as ``email``, admin of the business ID's new environment."""
    person = await town.sign_in(email)
    created = await person.client.post(
        "/v1/environments",
        json={
            "country": country,
            "business_id": business_id,
            "official_name": "Saab AB" if country == "SE" else "Nokia Oyj",
            "company_email": email,
        },
    )
    assert created.status_code == 201, created.text
    return person.client


@pytest.fixture
async def client(town: Town) -> httpx.AsyncClient:
    return await environment_of(town, "karin@example.se", "SE", SAAB)


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

    # A rejected activation has no environment: no person sees it (issue 12).
    response = await client.get(f"/v1/connections/{connection.id}")
    assert response.status_code == 404
    assert response.json()["detail"] == f"no connection {connection.id}"

    # What operators' views of it carry (the route's model), quoting reason and message.
    body = ConnectionPublic.of(connection).model_dump(mode="json")
    assert without_times(body) == expected(
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
    assert response.json() == {"detail": f"no connection {missing}", "code": None}


async def test_another_companys_connection_is_404_and_not_listed(
    db: Database, town: Town, client: httpx.AsyncClient
) -> None:
    nokia = await environment_of(town, "pekka@example.fi", "FI", "0112038-9")
    theirs = await activate(db, business_id="0112038-9", country="FI")

    assert (await client.get(f"/v1/connections/{theirs.id}")).status_code == 404
    listed = await client.get("/v1/connections", params={"business_id": "0112038-9"})
    assert listed.json() == []
    assert (await nokia.get(f"/v1/connections/{theirs.id}")).status_code == 200


async def test_nobody_signed_in_is_401(db: Database, town: Town) -> None:
    connection = await activate(db)
    anonymous = town.client()
    for response in (
        await anonymous.get(f"/v1/connections/{connection.id}"),
        await anonymous.get("/v1/connections", params={"business_id": SAAB}),
    ):
        assert response.status_code == 401
        assert response.json() == {"detail": "not signed in"}


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

    # A rejected request has no normal form and no environment: no person sees it.
    by_rejected = await client.get("/v1/connections", params={"business_id": "556036-0794"})
    assert by_rejected.status_code == 200
    assert by_rejected.json() == []
    assert rejected.environment_id is None

    # Another company's environment: its connections are not Karin's to see.
    finnish = await client.get("/v1/connections", params={"business_id": "0112038-9"})
    assert finnish.json() == []
    assert other.environment_id is not None


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
    # (was /v1/environments, which issue 12 added)
    response = await client.get("/v1/nothing-here")
    assert response.status_code == 404
    assert response.json() == {"detail": "Not Found"}
