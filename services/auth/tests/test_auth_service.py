"""ActivationService against a real, migrated store: environments, connections, outbox.

The business-ID rules are exercised only through what the service does with them (the
connection it records, the event it emits, the reason code and message it quotes).
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
from sqlalchemy import func, select

from ledgerlink.auth.services.activation import ActivationService
from ledgerlink.auth.storage.models import (
    Connection,
    ConnectionStatus,
    Environment,
    messaging,
)
from ledgerlink.shared.db import Database
from ledgerlink.shared.events import ActivationRequestedV1
from ledgerlink.shared.messaging.outbox import Outbox

SAAB = "556036-0793"
ACTIVATED = "ledgerlink.connection.activated.v1"
REJECTED = "ledgerlink.connection.rejected.v1"


def request(
    *,
    provider: str = "sie",
    business_id: str = SAAB,
    country: str = "SE",
    product: str = "planning",
    company_name: str = "Saab AB",
    store_reference: str | None = None,
) -> ActivationRequestedV1:
    return ActivationRequestedV1.model_validate(
        {
            "provider": provider,
            "business_id": business_id,
            "country": country,
            "company_name": company_name,
            "requested_by": {"email": "karin@example.se", "name": "Karin"},
            "product": product,
            "store_reference": store_reference,
        }
    )


async def activate(
    db: Database, data: ActivationRequestedV1, event_id: str | None = None
) -> Connection:
    async with db.transaction() as session:
        return await ActivationService(
            session, Outbox(messaging, source="ledgerlink/auth")
        ).activate(data, event_id=event_id or str(uuid.uuid4()))


async def outbox_rows(db: Database) -> list[dict[str, Any]]:
    async with db.transaction() as session:
        rows = (
            (await session.execute(select(messaging.outbox).order_by(messaging.outbox.c.id)))
            .mappings()
            .all()
        )
    return [dict(row) for row in rows]


async def environments(db: Database) -> list[Environment]:
    async with db.transaction() as session:
        return list((await session.execute(select(Environment))).scalars().all())


async def stored_connection(db: Database, connection_id: uuid.UUID) -> Connection:
    async with db.transaction() as session:
        connection = await session.get(Connection, connection_id)
    assert connection is not None
    return connection


async def connection_count(db: Database) -> int:
    async with db.transaction() as session:
        return int(await session.scalar(select(func.count()).select_from(Connection)) or 0)


# --- file providers: active at once -------------------------------------------------


async def test_file_provider_is_activated_at_once_and_announced(db: Database) -> None:
    result = await activate(
        db, request(business_id="5560360793", store_reference="order-17"), "evt-1"
    )

    connection = await stored_connection(db, result.id)
    assert connection.status is ConnectionStatus.ACTIVE
    assert connection.provider == "sie"
    assert connection.product == "planning"
    assert connection.country == "SE"
    assert connection.business_id == SAAB  # normalised
    assert connection.business_id_raw == "5560360793"  # as received
    assert connection.company_name == "Saab AB"
    assert connection.requested_by_email == "karin@example.se"
    assert connection.requested_by_name == "Karin"
    assert connection.store_reference == "order-17"
    assert connection.reason_code is None
    assert connection.message is None
    assert connection.activation_event_id == "evt-1"

    [environment] = await environments(db)
    assert connection.environment_id == environment.id
    assert (environment.country, environment.business_id) == ("SE", SAAB)
    assert environment.company_name == "Saab AB"

    [event] = await outbox_rows(db)
    assert event["event_type"] == ACTIVATED
    assert event["topic"] == "ledgerlink.connections"
    assert event["key"] == SAAB
    assert event["headers"]["ce"]["ce_subject"] == str(connection.id)
    assert event["headers"]["ce"]["ce_source"] == "ledgerlink/auth"
    assert json.loads(event["payload"]) == {
        "connection_id": str(connection.id),
        "environment_id": str(environment.id),
        "provider": "sie",
        "business_id": SAAB,
        "company_name": "Saab AB",
        # Issue 14's transaction_type is additive: only 24SevenOffice activations carry
        # it, so consumers on the model published before it accept this payload.
    }


async def test_saf_t_is_a_file_provider_too(db: Database) -> None:
    result = await activate(db, request(provider="saf_t", country="NO", business_id="923609016"))
    assert result.status is ConnectionStatus.ACTIVE
    assert [row["event_type"] for row in await outbox_rows(db)] == [ACTIVATED]


# --- API providers: waiting for the company's authorization --------------------------


@pytest.mark.parametrize(
    "provider", ["netvisor", "procountor", "visma_net", "24sevenoffice", "nmbrs"]
)
async def test_api_provider_is_left_pending_authorization_without_an_event(
    db: Database, provider: str
) -> None:
    result = await activate(
        db, request(provider=provider, country="FI", business_id="FI01120389", company_name="Nokia")
    )

    connection = await stored_connection(db, result.id)
    assert connection.status is ConnectionStatus.PENDING_AUTHORIZATION
    assert connection.provider == provider
    assert connection.business_id == "0112038-9"
    assert connection.reason_code is None
    [environment] = await environments(db)
    assert connection.environment_id == environment.id
    assert await outbox_rows(db) == []


# --- environments: created once, matched by the normalised business ID ----------------


async def test_environment_is_created_once_and_reused_for_every_spelling(db: Database) -> None:
    first = await activate(db, request(business_id="556036-0793", product="planning"))
    second = await activate(db, request(business_id="5560360793", product="reconciliation"))
    third = await activate(
        db,
        request(
            business_id=" 16556036-0793 ",
            product="payroll_export",
            company_name="Saab Aktiebolag",
        ),
    )

    [environment] = await environments(db)
    assert first.environment_id == second.environment_id == third.environment_id == environment.id
    assert environment.business_id == SAAB
    # The first activation names the environment; later ones do not rename it.
    assert environment.company_name == "Saab AB"
    assert len({first.id, second.id, third.id}) == 3
    events = await outbox_rows(db)
    assert [json.loads(row["payload"])["environment_id"] for row in events] == [
        str(environment.id)
    ] * 3


async def test_same_digits_in_another_country_get_their_own_environment(db: Database) -> None:
    # Eight digits that are both a Dutch KvK number and a Finnish Y-tunnus: two companies.
    dutch = await activate(db, request(country="NL", business_id="33011435"))
    finnish = await activate(db, request(country="FI", business_id="33011435"))

    assert dutch.status is ConnectionStatus.ACTIVE
    assert finnish.status is ConnectionStatus.ACTIVE
    assert dutch.environment_id != finnish.environment_id
    assert sorted((env.country, env.business_id) for env in await environments(db)) == [
        ("FI", "3301143-5"),
        ("NL", "33011435"),
    ]


async def test_repeated_activation_reuses_the_live_connection(db: Database) -> None:
    first = await activate(db, request(business_id="556036-0793"), "evt-1")
    again = await activate(db, request(business_id="5560360793"), "evt-2")

    assert again.id == first.id
    assert await connection_count(db) == 1
    connection = await stored_connection(db, first.id)
    assert connection.activation_event_id == "evt-2"
    assert connection.status is ConnectionStatus.ACTIVE
    # Every activation of an active connection is announced again, so a product that
    # missed the first event still learns of it.
    events = await outbox_rows(db)
    assert [row["event_type"] for row in events] == [ACTIVATED, ACTIVATED]
    assert {json.loads(row["payload"])["connection_id"] for row in events} == {str(first.id)}


async def test_repeated_api_activation_stays_pending_and_silent(db: Database) -> None:
    first = await activate(db, request(provider="netvisor", country="FI", business_id="0112038-9"))
    again = await activate(db, request(provider="netvisor", country="FI", business_id="01120389"))

    assert again.id == first.id
    assert again.status is ConnectionStatus.PENDING_AUTHORIZATION
    assert await connection_count(db) == 1
    assert await outbox_rows(db) == []


async def test_other_provider_of_the_same_company_gets_its_own_connection(db: Database) -> None:
    file_based = await activate(db, request(provider="sie"))
    api = await activate(db, request(provider="visma_net"))

    assert file_based.id != api.id
    assert file_based.environment_id == api.environment_id
    assert (file_based.status, api.status) == (
        ConnectionStatus.ACTIVE,
        ConnectionStatus.PENDING_AUTHORIZATION,
    )


# --- rejections ---------------------------------------------------------------------

REJECTIONS = [
    pytest.param(
        "SE",
        "556036-0794",
        "invalid_check_digit",
        "Swedish organisation number (organisationsnummer) 556036-0794 has check digit 4; "
        "expected 3",
        id="se-check-digit",
    ),
    pytest.param(
        "FI",
        "1234567-8",
        "invalid_check_digit",
        "Finnish business ID (Y-tunnus) 1234567-8 has check digit 8; expected 1",
        id="fi-check-digit",
    ),
    pytest.param(
        "NO",
        "923609017",
        "invalid_check_digit",
        "Norwegian organisation number (organisasjonsnummer) 923609017 has check digit 7; "
        "expected 6",
        id="no-check-digit",
    ),
    pytest.param(
        "SE",
        "556036-079",
        "invalid_format",
        "Swedish organisation number (organisationsnummer) '556036-079' has 9 digits; "
        "expected NNNNNN-NNNN or 10 digits, optionally prefixed with 16 (legal entity) or "
        "18/19/20 (century of a personnummer)",
        id="se-format",
    ),
    pytest.param(
        "FI",
        "0112038",
        "invalid_format",
        "Finnish business ID (Y-tunnus) '0112038' has 7 digits; expected NNNNNNN-C "
        "(7 digits, hyphen, check digit), 8 digits, or FI + 8 digits",
        id="fi-format",
    ),
    pytest.param(
        "NO",
        "723609016",
        "invalid_format",
        "Norwegian organisation number (organisasjonsnummer) 723609016 starts with 7; "
        "expected a first digit of 8 or 9, as assigned by the Brønnøysund Register Centre",
        id="no-format",
    ),
    pytest.param(
        "NL",
        "NL33011433",
        "invalid_format",
        "Dutch Chamber of Commerce number (KvK-nummer) 'NL33011433' contains characters "
        "that are not allowed; expected exactly 8 digits",
        id="nl-format",
    ),
]


@pytest.mark.parametrize(("country", "business_id", "reason_code", "message"), REJECTIONS)
async def test_rejection_records_and_announces_reason_and_message(
    db: Database, country: str, business_id: str, reason_code: str, message: str
) -> None:
    result = await activate(
        db, request(provider="netvisor", country=country, business_id=business_id), "evt-9"
    )

    connection = await stored_connection(db, result.id)
    assert connection.status is ConnectionStatus.REJECTED
    assert connection.reason_code == reason_code
    assert connection.message == message
    assert connection.environment_id is None
    assert connection.business_id == ""  # nothing normalised to record
    assert connection.business_id_raw == business_id
    assert connection.country == country
    assert connection.activation_event_id == "evt-9"
    assert await environments(db) == []

    [event] = await outbox_rows(db)
    assert event["event_type"] == REJECTED
    assert event["topic"] == "ledgerlink.connections"
    assert event["key"] == business_id
    assert event["headers"]["ce"]["ce_subject"] == str(connection.id)
    assert json.loads(event["payload"]) == {
        "connection_id": str(connection.id),
        "environment_id": None,
        "provider": "netvisor",
        "business_id": business_id,
        "company_name": "Saab AB",
        "reason_code": reason_code,
        "message": message,
    }


async def test_each_rejected_request_is_its_own_connection(db: Database) -> None:
    first = await activate(db, request(business_id="556036-0794"))
    second = await activate(db, request(business_id="556036-0794"))

    assert first.id != second.id
    assert await connection_count(db) == 2
    assert [row["event_type"] for row in await outbox_rows(db)] == [REJECTED, REJECTED]


async def test_rejection_does_not_block_a_corrected_activation(db: Database) -> None:
    rejected = await activate(db, request(business_id="556036-0794"))
    corrected = await activate(db, request(business_id="556036-0793"))

    assert rejected.status is ConnectionStatus.REJECTED
    assert corrected.status is ConnectionStatus.ACTIVE
    assert corrected.id != rejected.id
    assert [row["event_type"] for row in await outbox_rows(db)] == [REJECTED, ACTIVATED]
