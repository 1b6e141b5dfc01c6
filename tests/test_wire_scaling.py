"""Two replicas of a service share its consumer group (needs a real Kafka broker).

The embedded mock cluster cannot run a group of two members, so when the session's broker
is the mock this module runs on a Tansu broker of its own (see
``ledgerlink.shared.testing.start_tansu_backend``); the services' producers are then not
idempotent, which Tansu cannot serve -- the subject here is the group coordinator.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import pytest
from auth_store import stored_connections
from wire_helpers import EventReader, PlainKafkaClient, free_port

from ledgerlink.cli.stack import Stack
from ledgerlink.shared.testing import KafkaBackend, start_tansu_backend
from ledgerlink.shared.topics import Topic

pytestmark = [pytest.mark.wire, pytest.mark.real_kafka]

ACTIVATION = "ledgerlink.activation.requested.v1"
ACTIVATED = "ledgerlink.connection.activated.v1"
# Public, check-digit-valid Norwegian organisation numbers.
COMPANIES = ["923609016", "984851006", "982463718", "974760673"]


@pytest.fixture(scope="module")
def kafka_backend(kafka_backend: KafkaBackend) -> Iterator[KafkaBackend]:
    """The session's broker when it coordinates real groups, else a Tansu broker."""
    if kafka_backend.supports_multi_member_groups:
        yield kafka_backend
        return
    tansu = start_tansu_backend()
    try:
        yield tansu
    finally:
        tansu.close()


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
