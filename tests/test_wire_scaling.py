"""Two replicas of a service share its consumer group (needs a real Kafka broker)."""

from __future__ import annotations

import dataclasses

import pytest
from auth_store import stored_connections
from wire_helpers import EventReader, PlainKafkaClient, free_port

from ledgerlink.cli.stack import Stack
from ledgerlink.shared.testing import KafkaBackend
from ledgerlink.shared.topics import Topic

pytestmark = [pytest.mark.wire, pytest.mark.real_kafka]

ACTIVATION = "ledgerlink.activation.requested.v1"
ACTIVATED = "ledgerlink.connection.activated.v1"
# Public, check-digit-valid Norwegian organisation numbers.
COMPANIES = ["923609016", "984851006", "982463718", "974760673"]


async def test_two_auth_replicas_split_the_partitions_and_handle_each_event_once(
    stack: Stack, reader: EventReader, kafka_backend: KafkaBackend
) -> None:
    await stack.up(("auth",))
    # A second replica on another port, same store and consumer group.
    second = Stack(
        dataclasses.replace(stack.config, ports={**stack.config.ports, "auth": free_port()})
    )
    second.start("auth")
    await second.wait_ready("auth")
    try:
        async with PlainKafkaClient(
            kafka_backend.bootstrap_servers, stack.config.topic_prefix
        ) as client:
            for number in COMPANIES:
                data = {
                    "provider": "saf_t",
                    "business_id": number,
                    "country": "NO",
                    "company_name": f"Company {number}",
                    "requested_by": {"email": "ops@example.no", "name": "Ops"},
                    "product": "reconciliation",
                }
                await client.send(Topic.ACTIVATIONS, data, key=number, ce_type=ACTIVATION)
        connections = reader.topic(Topic.CONNECTIONS)
        seen = await reader.wait_for(
            lambda record: record.topic == connections and record.type == ACTIVATED,
            count=len(COMPANIES),
        )
        assert sorted(record.data["business_id"] for record in seen) == sorted(COMPANIES)
        # Auth's connection routes are for its environment's people (issue 12): the store.
        for number in COMPANIES:
            found = await stored_connections(stack, number)
            assert len(found) == 1
    finally:
        second.stop_all()
