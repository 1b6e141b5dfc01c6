"""Auth's Kafka handler, driven through the shared EventConsumer without a broker.

A stand-in for the process context hands out real consumers on the test store and
captures dead letters, so each record goes through parsing, the inbox, the handler and
the outbox exactly as in the service.
"""

from __future__ import annotations

import json
from typing import Any, cast

import pytest
from sqlalchemy import func, select
from sqlmodel import col

from ledgerlink.auth.config import Config
from ledgerlink.auth.handlers.kafka import register_kafka_handlers
from ledgerlink.auth.storage.models import Connection, ConnectionStatus, Environment, messaging
from ledgerlink.shared.db import Database
from ledgerlink.shared.envelope import CloudEvent
from ledgerlink.shared.events import (
    ActivationRequestedV1,
    ConnectionActivatedV1,
    ConnectionNeedsReauthV1,
    ConnectionRejectedV1,
    ConnectionRevokedV1,
    ImportCompletedV1,
    ImportFailedV1,
)
from ledgerlink.shared.messaging.consumer import EventConsumer, Outcome
from ledgerlink.shared.messaging.dead_letters import DeadLetter, RawRecord
from ledgerlink.shared.pytest_plugin import StandInProcess, raw_record
from ledgerlink.shared.runtime import ProcessContext
from ledgerlink.shared.topics import Topic

SAAB = "556036-0793"
DLQ = "ledgerlink.activations.dlq"


def wire(db: Database) -> tuple[StandInProcess, EventConsumer]:
    process = StandInProcess(db, messaging, "ledgerlink/auth")
    register_kafka_handlers(cast(ProcessContext, process), Config())
    [consumer] = process.consumers
    return process, consumer


def payload(**changes: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "provider": "sie",
        "business_id": SAAB,
        "country": "SE",
        "company_name": "Saab AB",
        "requested_by": {"email": "karin@example.se", "name": "Karin"},
        "product": "planning",
    }
    data.update(changes)
    return data


def record(*, offset: int = 0, **changes: Any) -> RawRecord:
    data = ActivationRequestedV1.model_validate(payload(**changes))
    return raw_record(data, key=str(changes.get("business_id", SAAB)), offset=offset)


def raw(
    value: bytes,
    *,
    ce_type: str = ActivationRequestedV1.EVENT_TYPE,
    headers: list[tuple[str, bytes]] | None = None,
    offset: int = 3,
) -> RawRecord:
    envelope = CloudEvent.new(source="urn:test:store", type=ce_type)
    return RawRecord(
        topic=str(Topic.ACTIVATIONS),
        partition=2,
        offset=offset,
        key=SAAB.encode(),
        value=value,
        headers=envelope.to_headers() if headers is None else headers,
    )


def event_id(rec: RawRecord) -> str:
    return CloudEvent.from_headers(rec.headers).id


def header(letter: DeadLetter, name: str) -> str:
    return dict(letter.headers)[name].decode()


async def count(db: Database, table: Any) -> int:
    async with db.transaction() as session:
        return int(await session.scalar(select(func.count()).select_from(table)) or 0)


async def connections(db: Database) -> list[Connection]:
    async with db.transaction() as session:
        result = await session.execute(select(Connection).order_by(col(Connection.created_at)))
        return list(result.scalars().all())


async def outbox(db: Database) -> list[tuple[str, dict[str, Any]]]:
    async with db.transaction() as session:
        rows = await session.execute(
            select(messaging.outbox.c.event_type, messaging.outbox.c.payload).order_by(
                messaging.outbox.c.id
            )
        )
        return [(event_type, json.loads(body)) for event_type, body in rows.all()]


async def inbox_ids(db: Database) -> list[str]:
    async with db.transaction() as session:
        return list(await session.scalars(select(messaging.inbox.c.event_id)))


async def test_one_group_reads_activations_and_documents_connection_events(
    db: Database,
) -> None:
    process, consumer = wire(db)
    assert consumer.name == "ledgerlink-auth"
    # Issue 12: auth also consumes import outcomes (configuring -> active) and documents
    # the lifecycle events it now publishes.
    assert consumer.event_types == sorted(
        [ActivationRequestedV1.EVENT_TYPE, ImportCompletedV1.EVENT_TYPE, ImportFailedV1.EVENT_TYPE]
    )
    assert process.subscriptions == [
        ("ledgerlink-auth", Topic.ACTIVATIONS),
        ("ledgerlink-auth", Topic.IMPORTS),
    ]
    assert process.documented[:2] == [ConnectionActivatedV1, ConnectionRejectedV1]
    assert ConnectionNeedsReauthV1 in process.documented
    assert ConnectionRevokedV1 in process.documented


async def test_file_activation_is_recorded_and_announced(db: Database) -> None:
    process, consumer = wire(db)
    activation = record(business_id="5560360793")

    assert await consumer.process(activation) is Outcome.PROCESSED

    [connection] = await connections(db)
    assert connection.status is ConnectionStatus.ACTIVE
    assert connection.business_id == SAAB
    assert connection.activation_event_id == event_id(activation)
    [(event_type, data)] = await outbox(db)
    assert event_type == ConnectionActivatedV1.EVENT_TYPE
    assert data["connection_id"] == str(connection.id)
    assert data["business_id"] == SAAB
    assert await inbox_ids(db) == [event_id(activation)]
    assert process.dead_letters == []


async def test_api_activation_waits_for_authorization(db: Database) -> None:
    _, consumer = wire(db)
    activation = record(provider="procountor", country="FI", business_id="0112038-9")

    assert await consumer.process(activation) is Outcome.PROCESSED

    [connection] = await connections(db)
    assert connection.status is ConnectionStatus.PENDING_AUTHORIZATION
    # Not activated yet: only the link that finishes it in a browser (issue 13) goes out.
    [(event_type, link)] = await outbox(db)
    assert event_type == "ledgerlink.connection.activation_link_issued.v1"
    assert link["connection_id"] == str(connection.id)
    assert "/activate/link/" in link["url"]


async def test_redelivered_event_is_a_no_op(db: Database) -> None:
    _, consumer = wire(db)
    activation = record()

    assert await consumer.process(activation) is Outcome.PROCESSED
    assert await consumer.process(activation) is Outcome.DUPLICATE
    # Same event id at another offset (a producer retry) is a duplicate too.
    moved = RawRecord(
        topic=activation.topic,
        partition=activation.partition,
        offset=activation.offset + 5,
        key=activation.key,
        value=activation.value,
        headers=activation.headers,
    )
    assert await consumer.process(moved) is Outcome.DUPLICATE

    assert await count(db, Connection) == 1
    assert await count(db, Environment) == 1
    assert [event_type for event_type, _ in await outbox(db)] == [ConnectionActivatedV1.EVENT_TYPE]
    assert await inbox_ids(db) == [event_id(activation)]


async def test_new_event_for_the_same_company_reuses_environment_and_connection(
    db: Database,
) -> None:
    _, consumer = wire(db)
    first, second = record(business_id=SAAB), record(business_id="16556036-0793", offset=1)

    assert await consumer.process(first) is Outcome.PROCESSED
    assert await consumer.process(second) is Outcome.PROCESSED

    [connection] = await connections(db)
    assert connection.activation_event_id == event_id(second)
    assert await count(db, Environment) == 1
    assert len(await outbox(db)) == 2


async def test_invalid_business_id_is_answered_with_a_rejection_not_dead_lettered(
    db: Database,
) -> None:
    process, consumer = wire(db)
    activation = record(business_id="556036-0794")

    assert await consumer.process(activation) is Outcome.PROCESSED

    assert process.dead_letters == []
    [connection] = await connections(db)
    assert connection.status is ConnectionStatus.REJECTED
    [(event_type, data)] = await outbox(db)
    assert event_type == ConnectionRejectedV1.EVENT_TYPE
    assert data["reason_code"] == "invalid_check_digit"
    assert data["message"] == (
        "Swedish organisation number (organisationsnummer) 556036-0794 has check digit 4; "
        "expected 3"
    )
    assert await count(db, Environment) == 0


async def test_rejected_event_redelivered_is_a_no_op(db: Database) -> None:
    _, consumer = wire(db)
    activation = record(business_id="92360901", country="NO")

    assert await consumer.process(activation) is Outcome.PROCESSED
    assert await consumer.process(activation) is Outcome.DUPLICATE

    [connection] = await connections(db)
    assert connection.reason_code == "invalid_format"
    assert len(await outbox(db)) == 1


# --- dead letters -------------------------------------------------------------------


MALFORMED = [
    pytest.param(b'{"provider": "sie"', "MalformedDataError", "data is not valid JSON", id="json"),
    pytest.param(
        b"[1, 2]", "MalformedDataError", "data must be a JSON object, not list", id="array"
    ),
    pytest.param(b"", "MalformedDataError", "the record has no value", id="empty"),
    pytest.param(
        json.dumps(payload(provider="dropbox")).encode(),
        "ValidationError",
        "invalid data: provider:",
        id="unknown-provider",
    ),
    pytest.param(
        json.dumps({k: v for k, v in payload().items() if k != "company_name"}).encode(),
        "ValidationError",
        "invalid data: company_name: Field required",
        id="missing-field",
    ),
    pytest.param(
        json.dumps(payload(requested_by={"email": "not-an-email", "name": "K"})).encode(),
        "ValidationError",
        "invalid data: requested_by.email:",
        id="bad-email",
    ),
    pytest.param(
        json.dumps(payload(extra_field=1)).encode(),
        "ValidationError",
        "invalid data: extra_field: Extra inputs are not permitted",
        id="extra-field",
    ),
]


@pytest.mark.parametrize(("value", "error_class", "reason"), MALFORMED)
async def test_malformed_activation_is_dead_lettered_with_its_reason(
    db: Database, value: bytes, error_class: str, reason: str
) -> None:
    process, consumer = wire(db)
    malformed = raw(value)

    assert await consumer.process(malformed) is Outcome.DEAD_LETTERED

    [letter] = process.dead_letters
    assert letter.topic == DLQ
    assert letter.key == SAAB.encode()
    assert letter.value == value  # the original bytes
    assert header(letter, "dlq_error_class") == error_class
    assert header(letter, "dlq_error_message").startswith(reason)
    assert header(letter, "dlq_original_topic") == "ledgerlink.activations"
    assert header(letter, "dlq_original_partition") == "2"
    assert header(letter, "dlq_original_offset") == "3"
    assert header(letter, "dlq_consumer") == "ledgerlink-auth"
    assert dict(letter.headers)["ce_id"] == dict(malformed.headers)["ce_id"]
    assert await count(db, Connection) == 0
    assert await outbox(db) == []
    assert await inbox_ids(db) == []


async def test_unsupported_country_is_refused_by_the_v1_contract(db: Database) -> None:
    # ActivationRequestedV1 only admits FI, NO, SE and NL, so a request for another country
    # never reaches the business-ID rules: it breaks the contract and is dead-lettered
    # (the rules' own "unsupported_country" cannot be produced by an event).
    process, consumer = wire(db)

    outcome = await consumer.process(raw(json.dumps(payload(country="DK")).encode()))

    assert outcome is Outcome.DEAD_LETTERED
    [letter] = process.dead_letters
    assert header(letter, "dlq_error_class") == "ValidationError"
    message = header(letter, "dlq_error_message")
    assert message.startswith("invalid data: country: Input should be 'FI', 'NO', 'SE' or 'NL'")
    assert await count(db, Connection) == 0


async def test_unknown_event_type_is_dead_lettered(db: Database) -> None:
    process, consumer = wire(db)

    outcome = await consumer.process(
        raw(json.dumps(payload()).encode(), ce_type="ledgerlink.activation.requested.v2")
    )

    assert outcome is Outcome.DEAD_LETTERED
    [letter] = process.dead_letters
    assert header(letter, "dlq_error_class") == "UnknownEventTypeError"
    assert header(letter, "dlq_error_message") == (
        "event type 'ledgerlink.activation.requested.v2' is not consumed from "
        "ledgerlink.activations; expected ledgerlink.activation.requested.v1, "
        # Issue 12: the same consumer group reads import outcomes too.
        "ledgerlink.import.completed.v1, ledgerlink.import.failed.v1"
    )


async def test_record_without_cloudevents_headers_is_dead_lettered(db: Database) -> None:
    process, consumer = wire(db)
    headers = [("content-type", b"application/json")]

    outcome = await consumer.process(raw(json.dumps(payload()).encode(), headers=headers))

    assert outcome is Outcome.DEAD_LETTERED
    [letter] = process.dead_letters
    assert header(letter, "dlq_error_class") == "EnvelopeError"
    assert "ce_id" in header(letter, "dlq_error_message")
    assert await count(db, Connection) == 0


async def test_dead_letter_does_not_stop_the_next_record(db: Database) -> None:
    process, consumer = wire(db)

    assert await consumer.process(raw(b"not json", offset=0)) is Outcome.DEAD_LETTERED
    assert await consumer.process(record(offset=1)) is Outcome.PROCESSED

    assert len(process.dead_letters) == 1
    assert await count(db, Connection) == 1


async def test_service_log_lines_name_the_record_they_are_about(
    db: Database, json_log_lines: list[dict[str, Any]]
) -> None:
    _, consumer = wire(db)
    activation = record(offset=12)

    assert await consumer.process(activation) is Outcome.PROCESSED

    [line] = [entry for entry in json_log_lines if entry["message"] == "activation handled"]
    assert line["event_id"] == event_id(activation)
    assert line["topic"] == "ledgerlink.activations"
    assert line["partition"] == 0
    assert line["offset"] == 12
    assert line["status"] == "active"
