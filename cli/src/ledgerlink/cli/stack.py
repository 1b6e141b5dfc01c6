"""Run the whole system as separate processes: broker, migrations, three services.

Used by ``ledgerlink dev up`` and by the cross-service tests, so what a developer runs
is what the tests prove.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import httpx

from ledgerlink.shared.kafka.embedded import EmbeddedKafka
from ledgerlink.shared.testing import KafkaBackend
from ledgerlink.shared.topics import all_topics


@dataclass(frozen=True)
class ServiceSpec:
    """How to run one service."""

    name: str
    module: str
    env_prefix: str
    default_port: int
    #: A Ledgerlink service proper: a store to migrate, Kafka, nested settings. The
    #: vendor sandbox is not (no store, no Kafka, flat settings).
    stateful: bool = True

    @property
    def ready_path(self) -> str:
        """The path that answers 200 once the process can serve."""
        return "/readyz" if self.stateful else "/healthz"

    def env(self, key: str) -> str:
        """The full name of one of this service's settings variables."""
        return f"{self.env_prefix}{key}"


SERVICES: tuple[ServiceSpec, ...] = (
    ServiceSpec("auth", "ledgerlink.auth", "LEDGERLINK_AUTH_", 8081),
    ServiceSpec("importer", "ledgerlink.importer", "LEDGERLINK_IMPORTER_", 8082),
    ServiceSpec(
        "journal-exporter", "ledgerlink.journal_exporter", "LEDGERLINK_JOURNAL_EXPORTER_", 8083
    ),
    # The vendors' stand-in (Netvisor, Procountor, Visma.net, 24SevenOffice, Nmbrs):
    # development, demos and tests only, never a production part.
    ServiceSpec("sandbox", "ledgerlink.sandbox", "LEDGERLINK_SANDBOX_", 8084, stateful=False),
)
SERVICES_BY_NAME = {spec.name: spec for spec in SERVICES}


@dataclass(frozen=True)
class StatusRow:
    """One line of the status table ``ledgerlink dev up`` prints."""

    part: str
    address: str
    state: str
    detail: str = ""


def render_status(rows: list[StatusRow], *, footer: list[str] | None = None) -> str:
    """A plain-text table a person reads at a glance (no colour codes: it may go to a file).

    Columns are as wide as their widest cell, so nothing wraps on a normal terminal.
    """
    header = StatusRow("part", "address", "state", "logs / notes")
    table = [header, *rows]
    widths = [
        max(len(getattr(row, name)) for row in table) for name in ("part", "address", "state")
    ]
    lines = []
    for index, row in enumerate(table):
        cells = [row.part, row.address, row.state]
        line = "  ".join(cell.ljust(width) for cell, width in zip(cells, widths, strict=True))
        lines.append(f"  {line}  {row.detail}".rstrip())
        if index == 0:
            lines.append("  " + "  ".join("-" * width for width in widths) + "  " + "-" * 12)
    return "\n".join(lines + [""] + [f"  {text}" for text in footer or []])


class StackError(RuntimeError):
    """A part of the stack failed to start."""


@dataclass
class StackConfig:
    """Where the stack's parts live."""

    bootstrap_servers: str
    database_urls: Mapping[str, str]
    ports: Mapping[str, int]
    topic_prefix: str = ""
    #: Variables given to every service (OTEL_*, log level, ...).
    env: Mapping[str, str] = field(default_factory=dict)
    #: Directory for each service's log file; None lets the logs through to our terminal.
    log_dir: Path | None = None
    #: False only on a test broker that cannot give producer ids (Tansu): the services'
    #: producers then run without idempotence (production refuses that).
    idempotent_producers: bool = True


@dataclass
class RunningService:
    """A service process and where to reach it."""

    spec: ServiceSpec
    process: subprocess.Popen[bytes]
    url: str
    log: IO[bytes] | None


class Stack:
    """Starts, watches and stops the service processes."""

    def __init__(self, config: StackConfig) -> None:
        self.config = config
        self.services: dict[str, RunningService] = {}

    def service_env(
        self, spec: ServiceSpec, extra: Mapping[str, str] | None = None
    ) -> dict[str, str]:
        """The environment one service runs with."""
        env = dict(os.environ)
        env.update(self.config.env)
        env.update({"OTEL_SERVICE_NAME": f"ledgerlink-{spec.name}", "PYTHONUNBUFFERED": "1"})
        if not spec.stateful:
            env.update(
                {
                    spec.env("HOST"): "127.0.0.1",
                    spec.env("PORT"): str(self.config.ports[spec.name]),
                }
            )
            env.update(self._signin_wiring(spec))
            env.update(extra or {})
            return env
        env.update(
            {
                spec.env("KAFKA__BOOTSTRAP_SERVERS"): self.config.bootstrap_servers,
                spec.env("KAFKA__TOPIC_PREFIX"): self.config.topic_prefix,
                spec.env("KAFKA__CLIENT_ID"): f"ledgerlink-{spec.name}",
                spec.env("KAFKA__IDEMPOTENT_PRODUCER"): str(
                    self.config.idempotent_producers
                ).lower(),
                spec.env("DATABASE__URL"): self.config.database_urls[spec.name],
                spec.env("HTTP__HOST"): "127.0.0.1",
                spec.env("HTTP__PORT"): str(self.config.ports[spec.name]),
            }
        )
        env.update(self._signin_wiring(spec))
        env.update(extra or {})
        return env

    def signin_url(self) -> str | None:
        """Where a person signs in (auth's sign-in page), when auth is part of the stack."""
        port = self.config.ports.get("auth")
        return None if port is None else f"http://127.0.0.1:{port}/signin"

    def _signin_wiring(self, spec: ServiceSpec) -> dict[str, str]:
        """Auth signs people in at the sandbox's Google and Microsoft stand-ins, and the
        sandbox knows auth's callback URLs, whatever ports the stack chose."""
        auth_port = self.config.ports.get("auth")
        sandbox_port = self.config.ports.get("sandbox")
        if auth_port is None or sandbox_port is None:
            return {}
        sandbox = f"http://127.0.0.1:{sandbox_port}"
        if spec.name == "auth":
            return {
                spec.env("SIGNIN__GOOGLE__DISCOVERY_URL"): (
                    f"{sandbox}/google/.well-known/openid-configuration"
                ),
                spec.env("SIGNIN__MICROSOFT__DISCOVERY_URL"): (
                    f"{sandbox}/microsoft/organizations/v2.0/.well-known/openid-configuration"
                ),
            }
        if spec.name == "sandbox":
            callbacks = [
                f"http://{host}:{auth_port}/signin/{provider}/callback"
                for host in ("127.0.0.1", "localhost")
                for provider in ("google", "microsoft")
            ]
            return {
                spec.env("OIDC_REDIRECT_URIS"): json.dumps(callbacks),
                spec.env("VISMA_PAGES_REDIRECT_URI"): (
                    f"http://127.0.0.1:{auth_port}/connect/visma_net/callback"
                ),
            }
        return {}

    def migrate(self, name: str) -> None:
        """Apply the service's migrations (a separate process, as the k8s Job does)."""
        spec = SERVICES_BY_NAME[name]
        if not spec.stateful:
            return
        result = subprocess.run(
            [sys.executable, "-m", spec.module, "migrate"],
            env=self.service_env(spec),
            capture_output=True,
            check=False,
            timeout=120,
        )
        if result.returncode != 0:
            raise StackError(
                f"migrating {name} failed ({result.returncode}): "
                f"{result.stderr.decode(errors='replace')[-2000:]}"
            )

    def log_path(self, name: str) -> Path | None:
        """Where one service's log goes (None: to this process's terminal)."""
        if self.config.log_dir is None:
            return None
        return self.config.log_dir / f"{name}.log"

    def start(self, name: str, extra_env: Mapping[str, str] | None = None) -> RunningService:
        """Start one service process (it must have been migrated)."""
        spec = SERVICES_BY_NAME[name]
        log: IO[bytes] | None = None
        path = self.log_path(name)
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            log = path.open("ab")
        process = subprocess.Popen(
            [sys.executable, "-m", spec.module, "serve"],
            env=self.service_env(spec, extra_env),
            stdout=log,
            stderr=subprocess.STDOUT if log is not None else None,
        )
        running = RunningService(
            spec=spec,
            process=process,
            url=f"http://127.0.0.1:{self.config.ports[name]}",
            log=log,
        )
        self.services[name] = running
        return running

    async def wait_ready(self, name: str, timeout: float = 60.0) -> None:
        """Wait until the ready path answers 200 (``/readyz``: database and broker reachable)."""
        running = self.services[name]
        deadline = time.monotonic() + timeout
        async with httpx.AsyncClient(timeout=5.0) as client:
            while True:
                if running.process.poll() is not None:
                    raise StackError(
                        f"{name} exited with {running.process.returncode} while starting"
                        + self._log_tail(name)
                    )
                try:
                    response = await client.get(f"{running.url}{running.spec.ready_path}")
                    if response.status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline:
                    raise StackError(
                        f"{name} was not ready within {timeout:.0f}s" + self._log_tail(name)
                    )
                await asyncio.sleep(0.1)  # polling readiness, bounded by the deadline

    async def up(self, names: tuple[str, ...] | None = None) -> None:
        """Migrate and start the services, then wait for all of them to be ready."""
        for name in names or tuple(SERVICES_BY_NAME):
            self.migrate(name)
            self.start(name)
        await asyncio.gather(*(self.wait_ready(name) for name in names or tuple(SERVICES_BY_NAME)))

    def kill(self, name: str) -> None:
        """SIGKILL a service: no shutdown, no flush: a crash."""
        running = self.services.pop(name)
        running.process.kill()
        running.process.wait(timeout=30)
        if running.log is not None:
            running.log.close()

    def stop(self, name: str, timeout: float = 15.0) -> int:
        """SIGTERM a service and wait for it to exit (SIGKILL after ``timeout``)."""
        running = self.services.pop(name)
        if running.process.poll() is None:
            running.process.send_signal(signal.SIGTERM)
            try:
                running.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                running.process.kill()
                running.process.wait(timeout=10)
        if running.log is not None:
            running.log.close()
        return running.process.returncode

    def stop_all(self) -> None:
        """Stop every running service."""
        for name in list(self.services):
            self.stop(name)

    def _log_tail(self, name: str) -> str:
        if self.config.log_dir is None:
            return ""
        path = self.config.log_dir / f"{name}.log"
        if not path.exists():
            return ""
        return "\n--- last log lines ---\n" + path.read_text(errors="replace")[-3000:]


async def create_all_topics(
    kafka: KafkaBackend | EmbeddedKafka, prefix: str = ""
) -> dict[str, int]:
    """Create every topic (and its dead-letter topic) with its partition count."""
    topics = all_topics(prefix)
    if isinstance(kafka, EmbeddedKafka):
        for name, partitions in topics.items():
            kafka.create_topic(name, partitions)
    else:
        await kafka.create_topics(topics)
    return topics
