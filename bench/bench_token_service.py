"""Token service throughput: credential requests per second against a bare endpoint.

**Question:** how much of an auth replica's request rate does a credential request cost,
on a warm cache and when the tokens are expiring (a refresh at the vendor per connection)?

Peer and subject run against **the same auth process in the same run**, in alternating
order over several rounds (medians reported):

* ``bare``: ``GET /healthz`` of the auth app (routing, middleware, JSON; nothing else);
* ``warm``: ``POST /internal/v1/connections/{id}/credentials`` for connections whose access
  tokens are fresh (service-token check, the process's credential cache, JSON answer);
* ``refresh``: the same requests for a fresh set of connections whose tokens are expiring
  (auth was told ``expires_in=60``, inside its 120 s leeway): each connection's first
  request refreshes at the sandbox's Visma Connect token endpoint under the row lock and
  commits the rotated refresh token; the others share that refresh or hit the cache.

Each run sends ``--connections x --requests-per-connection`` requests from
``--concurrency`` workers, each with its own kept-alive socket (closed loop). The
script checks that the refresh runs made exactly one refresh per connection at the sandbox
and no ``invalid_grant`` (exit 2 otherwise). Verdict: PASS when the warm and the refresh
ratios (requests/s over the bare endpoint's) are both ``>= --target`` (0.5).

Processes: the embedded Kafka broker (or ``--bootstrap``), the vendor sandbox, one auth
replica (SQLite in a temporary folder, or ``--database-url`` for PostgreSQL), started with
``ledgerlink.cli.stack`` as in the wire tests.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import hashlib
import json
import os
import platform
import secrets
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
from aiokafka import AIOKafkaProducer

from ledgerlink.cli.stack import Stack, StackConfig, create_all_topics
from ledgerlink.shared.kafka.embedded import EmbeddedKafka
from ledgerlink.shared.topics import Topic

SERVICE_TOKEN = "bench-service-token-0123456789abcdef0123"
HEADERS = {"Authorization": f"Bearer {SERVICE_TOKEN}"}
CLIENT_ID = "isv_ledgerlink_sandbox_web"
CLIENT_SECRET = "sandbox-secret"  # the sandbox's public demo credential
REDIRECT_URI = "http://127.0.0.1:8000/oauth/visma/callback"
SCOPE = "vismanet_erp_interactive_api:read openid offline_access"
ACTIVATION = "ledgerlink.activation.requested.v1"
DEFAULT_TARGET = 0.5


class BenchError(RuntimeError):
    """The benchmark could not complete (exit 2)."""


@dataclass
class Run:
    """One measured run."""

    side: str
    round: int
    requests: int
    seconds: float
    p50_ms: float
    p99_ms: float
    refreshes: int = 0

    @property
    def per_second(self) -> float:
        return self.requests / self.seconds


@dataclass
class Result:
    """Medians per side and the ratios."""

    runs: list[Run] = field(default_factory=list)

    def median(self, side: str, attribute: str) -> float:
        values = [
            run.per_second if attribute == "per_second" else float(getattr(run, attribute))
            for run in self.runs
            if run.side == side
        ]
        return statistics.median(values)

    def ratio(self, side: str) -> float:
        return self.median(side, "per_second") / self.median("bare", "per_second")


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def _activate(bootstrap: str, prefix: str, numbers: list[str]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        for number in numbers:
            data = {
                "provider": "visma_net",
                "business_id": number,
                "country": "NL",
                "company_name": f"Bench {number}",
                "requested_by": {"email": "bench@example.nl", "name": "Bench"},
                "product": "planning",
            }
            headers = {
                "ce_specversion": "1.0",
                "ce_id": str(uuid.uuid4()),
                "ce_source": "urn:bench",
                "ce_type": ACTIVATION,
                "ce_time": "2026-11-21T10:00:00Z",
                "content-type": "application/json",
            }
            await producer.send_and_wait(
                f"{prefix}{Topic.ACTIVATIONS}",
                json.dumps(data).encode(),
                key=number.encode(),
                headers=[(name, value.encode()) for name, value in headers.items()],
            )
    finally:
        await producer.stop()


async def _connection_ids(
    http: httpx.AsyncClient, auth: str, numbers: list[str], timeout: float
) -> list[str]:
    found: dict[str, str] = {}
    deadline = time.monotonic() + timeout
    while len(found) < len(numbers):
        for number in [n for n in numbers if n not in found]:
            rows = (await http.get(f"{auth}/v1/connections", params={"business_id": number})).json()
            if rows:
                found[number] = rows[0]["id"]
        if time.monotonic() > deadline:
            raise BenchError(f"only {len(found)} of {len(numbers)} activations were handled")
        if len(found) < len(numbers):
            await asyncio.sleep(0.2)  # polling auth's state, bounded by the deadline
    return [found[number] for number in numbers]


async def _authorize(http: httpx.AsyncClient, sandbox: str, auth: str, connection: str) -> None:
    verifier = secrets.token_urlsafe(48)
    challenge = (
        base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    )
    login = await http.post(
        f"{sandbox}/visma-connect/connect/authorize",
        data={
            "response_type": "code",
            "client_id": CLIENT_ID,
            "redirect_uri": REDIRECT_URI,
            "scope": SCOPE,
            "state": "bench",
            "code_challenge": challenge,
            "code_challenge_method": "S256",
            "username": "demo@sandbox.invalid",
            "password": "sandbox",
        },
    )
    if login.status_code != 302:
        raise BenchError(f"sandbox login failed: HTTP {login.status_code}")
    code = parse_qs(urlsplit(login.headers["location"]).query)["code"][0]
    tokens = (
        await http.post(
            f"{sandbox}/visma-connect/connect/token",
            data={
                "grant_type": "authorization_code",
                "code": code,
                "redirect_uri": REDIRECT_URI,
                "code_verifier": verifier,
                "client_id": CLIENT_ID,
                "client_secret": CLIENT_SECRET,
            },
        )
    ).json()
    stored = await http.post(
        f"{auth}/internal/v1/connections/{connection}/authorization",
        json={
            "kind": "oauth",
            "vendor_account": "bench-tenant",
            "access_token": tokens["access_token"],
            "refresh_token": tokens["refresh_token"],
            "expires_in": 60,
        },
        headers=HEADERS,
    )
    if stored.status_code != 200:
        raise BenchError(f"auth refused the authorization: {stored.text}")


async def _load(
    count: int,
    send: Callable[[httpx.AsyncClient, int], Awaitable[httpx.Response]],
    args: argparse.Namespace,
    warm_url: str,
) -> tuple[float, list[float]]:
    """``count`` requests by ``--concurrency`` workers, each on its own kept-alive socket
    (a closed loop: the generator never queues thousands of requests on one pool)."""
    clients = [
        httpx.AsyncClient(timeout=args.timeout, limits=httpx.Limits(max_connections=1))
        for _ in range(args.concurrency)
    ]
    latencies: list[float] = []
    next_index = iter(range(count))

    async def worker(client: httpx.AsyncClient) -> None:
        for index in next_index:
            started = time.perf_counter()
            response = await send(client, index)
            latencies.append(time.perf_counter() - started)
            if response.status_code != 200:
                raise BenchError(f"HTTP {response.status_code}: {response.text[:200]}")

    try:
        # Open every socket before the clock starts.
        await asyncio.gather(*(client.get(warm_url) for client in clients))
        started = time.perf_counter()
        await asyncio.wait_for(
            asyncio.gather(*(worker(client) for client in clients)), args.timeout
        )
        return time.perf_counter() - started, latencies
    finally:
        await asyncio.gather(*(client.aclose() for client in clients))


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] * 1000


async def _grants(http: httpx.AsyncClient, sandbox: str) -> dict[str, Any]:
    body: dict[str, Any] = (await http.get(f"{sandbox}/_sandbox/oauth/vismanet/grants")).json()
    return body


async def run(args: argparse.Namespace) -> Result:
    embedded: EmbeddedKafka | None = None
    bootstrap = args.bootstrap or os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    prefix = f"bench{uuid.uuid4().hex[:8]}."
    with tempfile.TemporaryDirectory() as folder:
        if bootstrap is None:
            embedded = EmbeddedKafka().start()
            bootstrap = embedded.bootstrap_servers
            await create_all_topics(embedded, prefix)
        database = args.database_url or f"sqlite+aiosqlite:///{Path(folder) / 'auth.db'}"
        stack = Stack(
            StackConfig(
                bootstrap_servers=bootstrap,
                database_urls={"auth": database},
                ports={"auth": _free_port(), "sandbox": _free_port()},
                topic_prefix=prefix,
                env={"OTEL_TRACES_EXPORTER": "none"},
                log_dir=Path(folder) / "logs",
            )
        )
        try:
            return await _measure(stack, args)
        finally:
            stack.stop_all()
            if embedded is not None:
                embedded.close()


async def _measure(stack: Stack, args: argparse.Namespace) -> Result:
    stack.start(
        "sandbox",
        {"LEDGERLINK_SANDBOX_LINES_PER_COMPANY": "10", "LEDGERLINK_SANDBOX_LOG_LEVEL": "WARNING"},
    )
    await stack.wait_ready("sandbox")
    sandbox = stack.services["sandbox"].url
    stack.migrate("auth")
    stack.start(
        "auth",
        {
            "LEDGERLINK_AUTH_SERVICE_TOKENS": json.dumps({"bench": SERVICE_TOKEN}),
            "LEDGERLINK_AUTH_VAULT__KEYS": json.dumps({"1": "bench-vault-key-0123456789abcdef-01"}),
            "LEDGERLINK_AUTH_OAUTH_PROVIDERS": json.dumps(
                {
                    "visma_net": {
                        "client_id": CLIENT_ID,
                        "client_secret": CLIENT_SECRET,
                        "token_url": f"{sandbox}/visma-connect/connect/token",
                    }
                }
            ),
            "LEDGERLINK_AUTH_LOG_LEVEL": "WARNING",
        },
    )
    await stack.wait_ready("auth", timeout=120)
    auth = stack.services["auth"].url
    count = args.connections * args.requests_per_connection
    # One warm set, and one expiring set per round for the refresh runs.
    numbers = [f"6{index:07d}" for index in range(args.connections * (args.rounds + 1))]
    print(f"activating {len(numbers)} connections", file=sys.stderr)
    await _activate(stack.config.bootstrap_servers, stack.config.topic_prefix, numbers)
    result = Result()
    async with httpx.AsyncClient(timeout=args.timeout) as http:
        ids = await _connection_ids(http, auth, numbers, args.timeout)
        for connection in ids:
            await _authorize(http, sandbox, auth, connection)
        warm_ids = ids[: args.connections]
        # Make the warm set warm: one refresh each, before anything is measured.
        for connection in warm_ids:
            await http.post(
                f"{auth}/internal/v1/connections/{connection}/credentials", headers=HEADERS
            )

        def credentials(
            targets: list[str],
        ) -> Callable[[httpx.AsyncClient, int], Awaitable[httpx.Response]]:
            def send(client: httpx.AsyncClient, index: int) -> Awaitable[httpx.Response]:
                return client.post(
                    f"{auth}/internal/v1/connections/{targets[index % len(targets)]}/credentials",
                    headers=HEADERS,
                )

            return send

        def bare(client: httpx.AsyncClient, index: int) -> Awaitable[httpx.Response]:
            return client.get(f"{auth}/healthz")

        for round_ in range(args.rounds):
            expiring = ids[args.connections * (round_ + 1) : args.connections * (round_ + 2)]
            sides: list[
                tuple[str, Callable[[httpx.AsyncClient, int], Awaitable[httpx.Response]]]
            ] = [
                ("bare", bare),
                ("warm", credentials(warm_ids)),
                ("refresh", credentials(expiring)),
            ]
            shift = round_ % len(sides)
            for side, send in sides[shift:] + sides[:shift]:
                before = await _grants(http, sandbox)
                seconds, latencies = await _load(count, send, args, f"{auth}/healthz")
                after = await _grants(http, sandbox)
                refreshes = after["grants"].get("refresh_token", 0) - before["grants"].get(
                    "refresh_token", 0
                )
                if after["errors"].get("invalid_grant", 0):
                    raise BenchError("the sandbox refused a refresh with invalid_grant")
                expected = args.connections if side == "refresh" else 0
                if refreshes != expected:
                    raise BenchError(f"{side}: {refreshes} refreshes, expected {expected}")
                run = Run(
                    side,
                    round_ + 1,
                    count,
                    seconds,
                    _percentile(latencies, 0.5),
                    _percentile(latencies, 0.99),
                    refreshes,
                )
                result.runs.append(run)
                print(
                    f"round {round_ + 1} {side}: {run.per_second:.0f} req/s, "
                    f"p99 {run.p99_ms:.1f} ms",
                    file=sys.stderr,
                )
    return result


def report_text(result: Result, args: argparse.Namespace, verdict: str) -> str:
    lines = [
        f"token service: {args.connections} connections x {args.requests_per_connection} "
        f"requests, {args.rounds} rounds, {args.concurrency} in flight",
        "",
        f"{'side':8} {'req/s (median)':>15} {'ratio':>7} {'p50 ms':>8} {'p99 ms':>8}",
    ]
    lines.extend(
        f"{side:8} {result.median(side, 'per_second'):15.0f} {result.ratio(side):7.2f} "
        f"{result.median(side, 'p50_ms'):8.1f} {result.median(side, 'p99_ms'):8.1f}"
        for side in ("bare", "warm", "refresh")
    )
    lines += ["", f"target: warm and refresh ratios >= {args.target}", f"verdict: {verdict}"]
    return "\n".join(lines)


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    found = {"python": platform.python_version()}
    for package in ("httpx", "uvicorn", "fastapi", "sqlalchemy"):
        with contextlib.suppress(PackageNotFoundError):
            found[package] = version(package)
    return found


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    p.add_argument("--connections", type=int, default=200, help="connections per set (200)")
    p.add_argument("--requests-per-connection", type=int, default=25, help="(25)")
    p.add_argument("--rounds", type=int, default=3, help="rounds, sides alternating (3)")
    p.add_argument(
        "--concurrency", type=int, default=64, help="requests in flight, one socket each (64)"
    )
    p.add_argument("--bootstrap", help="Kafka bootstrap servers (default: embedded broker)")
    p.add_argument("--database-url", help="auth's store (default: SQLite in a temp folder)")
    p.add_argument("--target", type=float, default=DEFAULT_TARGET, help="minimum ratio (0.5)")
    p.add_argument("--timeout", type=float, default=300.0, help="seconds allowed per step")
    p.add_argument("--json", action="store_true", help="print the report as JSON on stdout")
    p.add_argument("--strict", action="store_true", help="exit 1 when the verdict is FAIL")
    args = p.parse_args(argv)
    if min(args.connections, args.requests_per_connection, args.rounds, args.concurrency) < 1:
        p.error("--connections, --requests-per-connection, --rounds and --concurrency must be >= 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        result = asyncio.run(run(args))
    except (BenchError, TimeoutError) as exc:
        print(f"benchmark failed: {exc}", file=sys.stderr)
        return 2
    verdict = (
        "PASS" if min(result.ratio("warm"), result.ratio("refresh")) >= args.target else "FAIL"
    )
    if args.json:
        document = {
            "settings": {k: v for k, v in vars(args).items() if k != "json"},
            "cpu_count": os.cpu_count(),
            "runs": [asdict(run) | {"per_second": run.per_second} for run in result.runs],
            "medians": {
                side: {
                    "per_second": result.median(side, "per_second"),
                    "p50_ms": result.median(side, "p50_ms"),
                    "p99_ms": result.median(side, "p99_ms"),
                }
                for side in ("bare", "warm", "refresh")
            },
            "ratios": {"warm": result.ratio("warm"), "refresh": result.ratio("refresh")},
            "verdict": verdict,
            "versions": _versions(),
        }
        print(json.dumps(document, indent=2))
    else:
        print(report_text(result, args, verdict))
    return 1 if args.strict and verdict == "FAIL" else 0


if __name__ == "__main__":
    sys.exit(main())
