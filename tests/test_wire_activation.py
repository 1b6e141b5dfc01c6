"""Over the wire: Kafka protocol, PostgreSQL stores, each service its own process."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest
from auth_store import stored_connection, stored_connections
from wire_helpers import EventReader, OtlpReceiver, PlainKafkaClient, Seen, eventually

from ledgerlink.cli.stack import Stack
from ledgerlink.shared.testing import KafkaBackend
from ledgerlink.shared.topics import Topic, dead_letter_topic

pytestmark = pytest.mark.wire

ACTIVATION = "ledgerlink.activation.requested.v1"
ACTIVATED = "ledgerlink.connection.activated.v1"
REJECTED = "ledgerlink.connection.rejected.v1"
QUEUED = "ledgerlink.import.queued.v1"

# Saab AB's organisationsnummer: Luhn-valid and public.
SE_ID = "556036-0793"


def activation(business_id: str = SE_ID, **changes: object) -> dict[str, object]:
    data: dict[str, object] = {
        "provider": "sie",
        "business_id": business_id,
        "country": "SE",
        "company_name": "Saab AB",
        "requested_by": {"email": "controller@example.se", "name": "Karin Controller"},
        "product": "planning",
        "store_reference": "store-order-1",
    }
    data.update(changes)
    return data


def of_type(reader: EventReader, topic: str, ce_type: str) -> Callable[[Seen], bool]:
    full = reader.topic(topic)
    return lambda seen: seen.topic == full and seen.type == ce_type


async def test_activation_reaches_every_service_in_one_trace(
    stack: Stack, reader: EventReader, kafka_backend: KafkaBackend, otlp_receiver: OtlpReceiver
) -> None:
    await stack.up()
    trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
    async with PlainKafkaClient(
        kafka_backend.bootstrap_servers, stack.config.topic_prefix
    ) as client:
        await client.send(
            Topic.ACTIVATIONS,
            activation(),
            key=SE_ID,
            ce_type=ACTIVATION,
            extra_headers={"traceparent": f"00-{trace_id}-00f067aa0ba902b7-01"},
        )

    [activated] = await reader.wait_for(of_type(reader, Topic.CONNECTIONS, ACTIVATED))
    assert activated.key == SE_ID
    assert activated.data["business_id"] == SE_ID
    assert activated.data["provider"] == "sie"
    assert activated.headers["ce_source"] == "ledgerlink/auth"
    assert activated.headers["content-type"] == "application/json"

    [queued] = await reader.wait_for(of_type(reader, Topic.IMPORTS, QUEUED))
    assert queued.data["connection_id"] == activated.data["connection_id"]
    assert queued.data["trigger"] == "connection_activated"
    assert queued.key == SE_ID

    async with httpx.AsyncClient() as http:
        jobs = (
            await http.get(
                f"{stack.services['importer'].url}/v1/imports", params={"business_id": SE_ID}
            )
        ).json()
        metrics = (await http.get(f"{stack.services['auth'].url}/metrics")).text
    # Auth's connection routes are for its environment's people (issue 12): read the store.
    connection = await stored_connection(stack, activated.data["connection_id"])
    assert connection is not None
    assert [job["id"] for job in jobs] == [queued.data["import_id"]]
    assert connection["status"] == "active"
    # One /metrics per service: the events it consumed, and its vendor API traffic families.
    consumed = [
        line
        for line in metrics.splitlines()
        if line.startswith("ledgerlink_events_consumed_total{")
        and f'event_type="{ACTIVATION}"' in line
        and 'outcome="processed"' in line
    ]
    assert consumed, metrics
    assert float(consumed[0].rsplit(" ", 1)[1]) >= 1
    assert "# TYPE ledgerlink_connector_requests_total counter" in metrics
    assert "# TYPE ledgerlink_connector_request_seconds histogram" in metrics

    services = await otlp_receiver.wait_for_services(
        trace_id, {"ledgerlink-auth", "ledgerlink-importer", "ledgerlink-journal-exporter"}
    )
    assert len(services) == 3


async def test_same_activation_twice_gives_one_connection_and_one_event(
    stack: Stack, reader: EventReader, kafka_backend: KafkaBackend
) -> None:
    await stack.up(("auth",))
    async with PlainKafkaClient(
        kafka_backend.bootstrap_servers, stack.config.topic_prefix
    ) as client:
        event_id = await client.send(Topic.ACTIVATIONS, activation(), key=SE_ID, ce_type=ACTIVATION)
        await client.send(
            Topic.ACTIVATIONS, activation(), key=SE_ID, ce_type=ACTIVATION, ce_id=event_id
        )
        # Same key, so the same partition: once the marker's outcome is out, the
        # duplicate ahead of it has been handled too.
        await client.send(
            Topic.ACTIVATIONS,
            activation(product="reconciliation"),
            key=SE_ID,
            ce_type=ACTIVATION,
        )

    await reader.wait_for(
        lambda seen: seen.type == ACTIVATED and seen.data.get("provider") == "sie", count=2
    )
    outcomes = reader.matching(of_type(reader, Topic.CONNECTIONS, ACTIVATED))
    assert len(outcomes) == 2
    assert outcomes[0].data["connection_id"] != outcomes[1].data["connection_id"]
    connections = await stored_connections(stack, SE_ID)
    assert sorted(connection["product"] for connection in connections) == [
        "planning",
        "reconciliation",
    ]
    # Both connections belong to the one environment matched by business ID.
    assert len({connection["environment_id"] for connection in connections}) == 1


async def test_bad_input_is_dead_lettered_or_rejected_and_the_partition_keeps_flowing(
    stack: Stack, reader: EventReader, kafka_backend: KafkaBackend
) -> None:
    await stack.up(("auth",))
    key = "bad-input"
    async with PlainKafkaClient(
        kafka_backend.bootstrap_servers, stack.config.topic_prefix
    ) as client:
        malformed = await client.send(
            Topic.ACTIVATIONS, b'{"provider": ', key=key, ce_type=ACTIVATION
        )
        unknown_provider = await client.send(
            Topic.ACTIVATIONS, activation(provider="fortnox"), key=key, ce_type=ACTIVATION
        )
        no_type = await client.send(Topic.ACTIVATIONS, activation(), key=key, ce_type=None)
        await client.send(
            Topic.ACTIVATIONS,
            activation("0112038-8", country="FI", company_name="Nokia Oyj", provider="netvisor"),
            key=key,
            ce_type=ACTIVATION,
        )
        await client.send(Topic.ACTIVATIONS, activation(), key=key, ce_type=ACTIVATION)

    dlq = reader.topic(dead_letter_topic(Topic.ACTIVATIONS))
    letters = await reader.wait_for(lambda seen: seen.topic == dlq, count=3)
    by_id = {letter.headers.get("ce_id"): letter for letter in letters}

    assert by_id[malformed].headers["dlq_error_class"] == "MalformedDataError"
    assert "not valid JSON" in by_id[malformed].headers["dlq_error_message"]
    assert by_id[malformed].value == b'{"provider": '
    assert by_id[malformed].headers["dlq_original_topic"] == reader.topic(Topic.ACTIVATIONS)
    assert by_id[malformed].headers["dlq_original_offset"].isdigit()

    assert by_id[unknown_provider].headers["dlq_error_class"] == "ValidationError"
    assert "provider" in by_id[unknown_provider].headers["dlq_error_message"]
    assert "netvisor" in by_id[unknown_provider].headers["dlq_error_message"]

    assert by_id[no_type].headers["dlq_error_class"] == "EnvelopeError"
    assert "ce_type" in by_id[no_type].headers["dlq_error_message"]

    [rejected] = await reader.wait_for(of_type(reader, Topic.CONNECTIONS, REJECTED))
    assert rejected.data["reason_code"] == "invalid_check_digit"
    assert "0112038-8" in rejected.data["message"]
    assert rejected.data["environment_id"] is None

    # The valid event behind all of them in the same partition still went through.
    [activated] = await reader.wait_for(of_type(reader, Topic.CONNECTIONS, ACTIVATED))
    assert activated.data["business_id"] == SE_ID


async def test_service_killed_after_commit_before_publishing_publishes_exactly_once(
    stack: Stack, reader: EventReader, kafka_backend: KafkaBackend
) -> None:
    """SIGKILL between the database commit and the publication: the outbox holds the event."""
    stack.migrate("auth")
    stack.start("auth", {"LEDGERLINK_AUTH_OUTBOX__RELAY_ENABLED": "false"})
    await stack.wait_ready("auth")
    async with PlainKafkaClient(
        kafka_backend.bootstrap_servers, stack.config.topic_prefix
    ) as client:
        await client.send(Topic.ACTIVATIONS, activation(), key=SE_ID, ce_type=ACTIVATION)

    async def committed() -> list[dict[str, object]] | None:
        return await stored_connections(stack, SE_ID) or None

    await eventually(committed, what="the activation to be committed")
    assert reader.matching(of_type(reader, Topic.CONNECTIONS, ACTIVATED)) == []

    stack.kill("auth")  # SIGKILL: the event was committed to the outbox, never published
    await stack.up(("auth", "importer"))
    async with PlainKafkaClient(
        kafka_backend.bootstrap_servers, stack.config.topic_prefix
    ) as client:
        await client.send(
            Topic.ACTIVATIONS, activation(product="reconciliation"), key=SE_ID, ce_type=ACTIVATION
        )
    activated = await reader.wait_for(of_type(reader, Topic.CONNECTIONS, ACTIVATED), count=2)
    queued = await reader.wait_for(of_type(reader, Topic.IMPORTS, QUEUED), count=2)
    # The marker (reconciliation) came after the recovered event: everything is out now.
    assert len(reader.matching(of_type(reader, Topic.CONNECTIONS, ACTIVATED))) == 2
    assert len({seen.headers["ce_id"] for seen in activated}) == 2
    assert {seen.data["connection_id"] for seen in queued} == {
        seen.data["connection_id"] for seen in activated
    }
