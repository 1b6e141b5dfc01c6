"""Helpers of the over-the-wire tests: a plain Kafka client and an OTLP receiver."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, TypeVar

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from ledgerlink.shared.topics import all_topics

T = TypeVar("T")


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def eventually(
    probe: Callable[[], Awaitable[T | None]],
    *,
    timeout: float = 30.0,
    what: str = "condition",
    interval: float = 0.1,
) -> T:
    """Poll ``probe`` until it returns something other than None (for state only
    observable by asking, such as a row over HTTP); fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        result = await probe()
        if result is not None:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        await asyncio.sleep(interval)


@dataclass(frozen=True)
class Seen:
    """A record read back from Kafka."""

    topic: str
    key: str | None
    headers: dict[str, str]
    value: bytes

    @property
    def type(self) -> str | None:
        return self.headers.get("ce_type")

    @property
    def data(self) -> Any:
        return json.loads(self.value)


class EventReader:
    """Consumes every topic of one environment (no consumer group) into a list."""

    def __init__(self, bootstrap_servers: str, prefix: str) -> None:
        self._prefix = prefix
        self._consumer = AIOKafkaConsumer(
            *all_topics(prefix),
            bootstrap_servers=bootstrap_servers,
            auto_offset_reset="earliest",
            enable_auto_commit=False,
        )
        self.seen: list[Seen] = []
        self._changed = asyncio.Condition()
        self._task: asyncio.Task[None] | None = None

    def topic(self, name: str) -> str:
        return f"{self._prefix}{name}"

    async def start(self) -> None:
        await self._consumer.start()
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
        await self._consumer.stop()

    async def _run(self) -> None:
        while True:
            batches = await self._consumer.getmany(timeout_ms=200)
            if not batches:
                continue
            async with self._changed:
                for records in batches.values():
                    for record in records:
                        self.seen.append(
                            Seen(
                                topic=record.topic,
                                key=record.key.decode() if record.key else None,
                                headers={
                                    name: value.decode(errors="replace")
                                    for name, value in record.headers
                                },
                                value=record.value or b"",
                            )
                        )
                self._changed.notify_all()

    def matching(self, predicate: Callable[[Seen], bool]) -> list[Seen]:
        return [seen for seen in self.seen if predicate(seen)]

    async def wait_for(
        self, predicate: Callable[[Seen], bool], *, count: int = 1, timeout: float = 30.0
    ) -> list[Seen]:
        """Wait until ``count`` records match ``predicate``; return them."""

        async def condition() -> list[Seen]:
            async with self._changed:
                await self._changed.wait_for(lambda: len(self.matching(predicate)) >= count)
                return self.matching(predicate)

        try:
            return await asyncio.wait_for(condition(), timeout)
        except TimeoutError:
            summary = [(seen.topic, seen.type) for seen in self.seen]
            raise AssertionError(
                f"timed out waiting for {count} matching record(s); seen: {summary}"
            ) from None


class PlainKafkaClient:
    """An upstream system's producer: CloudEvents headers set by hand, JSON value."""

    def __init__(self, bootstrap_servers: str, prefix: str) -> None:
        self._producer = AIOKafkaProducer(bootstrap_servers=bootstrap_servers, acks="all")
        self._prefix = prefix

    async def __aenter__(self) -> PlainKafkaClient:
        await self._producer.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._producer.stop()

    async def send(
        self,
        topic: str,
        value: bytes | dict[str, Any],
        *,
        key: str,
        ce_type: str | None,
        ce_id: str | None = None,
        extra_headers: dict[str, str] | None = None,
    ) -> str:
        event_id = ce_id or str(uuid.uuid4())
        headers = {
            "ce_specversion": "1.0",
            "ce_id": event_id,
            "ce_source": "urn:test:upstream",
            "ce_time": "2026-11-21T10:00:00Z",
            "content-type": "application/json",
        }
        if ce_type is not None:
            headers["ce_type"] = ce_type
        headers.update(extra_headers or {})
        body = value if isinstance(value, bytes) else json.dumps(value).encode()
        await self._producer.send_and_wait(
            f"{self._prefix}{topic}",
            body,
            key=key.encode(),
            headers=[(name, text.encode()) for name, text in headers.items()],
        )
        return event_id


@dataclass(frozen=True)
class ReceivedSpan:
    service: str
    name: str
    trace_id: str
    span_id: str
    parent_span_id: str


class OtlpReceiver:
    """A minimal OTLP/HTTP (protobuf) trace receiver on an ephemeral port."""

    def __init__(self) -> None:
        self.spans: list[ReceivedSpan] = []
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                request = ExportTraceServiceRequest()
                request.ParseFromString(body)
                receiver._collect(request)
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                return

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _collect(self, request: ExportTraceServiceRequest) -> None:
        with self._lock:
            for resource_spans in request.resource_spans:
                service = next(
                    (
                        attribute.value.string_value
                        for attribute in resource_spans.resource.attributes
                        if attribute.key == "service.name"
                    ),
                    "?",
                )
                for scope_spans in resource_spans.scope_spans:
                    for span in scope_spans.spans:
                        self.spans.append(
                            ReceivedSpan(
                                service=service,
                                name=span.name,
                                trace_id=span.trace_id.hex(),
                                span_id=span.span_id.hex(),
                                parent_span_id=span.parent_span_id.hex(),
                            )
                        )

    def services_in_trace(self, trace_id: str) -> set[str]:
        with self._lock:
            return {span.service for span in self.spans if span.trace_id == trace_id}

    async def wait_for_services(
        self, trace_id: str, services: set[str], timeout: float = 30.0
    ) -> set[str]:
        """Wait until every one of ``services`` exported a span in ``trace_id``."""

        async def probe() -> set[str] | None:
            found = self.services_in_trace(trace_id)
            return found if services <= found else None

        return await eventually(
            probe, timeout=timeout, what=f"spans of {sorted(services)} in trace {trace_id}"
        )
