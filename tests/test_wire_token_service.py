"""The token service over the wire: two auth processes on one PostgreSQL store, the vendor
sandbox as a process, activations over Kafka.

* 200 connections whose access tokens are expiring, 5,000 concurrent credential requests
  spread over both processes: exactly 200 refreshes at the sandbox's token endpoint,
  0 ``invalid_grant``, every caller served the connection's current, valid token;
* a refresh token revoked at the sandbox: ``needs_reauth`` and its event on Kafka;
* revocation through DELETE revokes at Visma Connect and publishes ``connection.revoked``;
* a dump of auth's database holds none of the secrets seen in the run.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import hashlib
import json
import secrets
import subprocess
from collections.abc import Iterable
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from auth_store import stored_connections
from sqlalchemy.engine import make_url
from wire_helpers import EventReader, PlainKafkaClient, eventually, free_port

from ledgerlink.cli.stack import Stack
from ledgerlink.shared.testing import KafkaBackend
from ledgerlink.shared.topics import Topic

pytestmark = [pytest.mark.wire]

CONNECTIONS = 200
REQUESTS = 5_000
SERVICE_TOKEN = "wire-importer-token-0123456789abcdef0123"
HEADERS = {"Authorization": f"Bearer {SERVICE_TOKEN}"}
# The sandbox's demo Visma Connect client and user (public demo credentials).
CLIENT_ID = "isv_ledgerlink_sandbox_web"
CLIENT_SECRET = "sandbox-secret"
REDIRECT_URI = "http://127.0.0.1:8000/oauth/visma/callback"
USERNAME, PASSWORD = "demo@sandbox.invalid", "sandbox"
SCOPE = "vismanet_erp_interactive_api:read openid tenants offline_access"
ACTIVATION = "ledgerlink.activation.requested.v1"
NEEDS_REAUTH = "ledgerlink.connection.needs_reauth.v1"
REVOKED = "ledgerlink.connection.revoked.v1"


def business_ids(count: int) -> list[str]:
    # Dutch KvK numbers: eight digits, no check digit.
    return [f"7{index:07d}" for index in range(count)]


async def authorize_at_sandbox(http: httpx.AsyncClient, sandbox: str) -> dict[str, Any]:
    """The authorization code flow with PKCE, as a person and our callback would run it."""
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
            "state": "s",
            "code_challenge": challenge,
            "code_challenge_method": "S256",
            "username": USERNAME,
            "password": PASSWORD,
        },
    )
    assert login.status_code == 302, login.text
    code = parse_qs(urlsplit(login.headers["location"]).query)["code"][0]
    tokens = await http.post(
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
    assert tokens.status_code == 200, tokens.text
    body: dict[str, Any] = tokens.json()
    assert body["refresh_token"]
    return body


def auth_env(sandbox: str) -> dict[str, str]:
    return {
        "LEDGERLINK_AUTH_VAULT__KEYS": json.dumps({"1": "wire-vault-key-0123456789abcdef-0123"}),
        "LEDGERLINK_AUTH_VAULT__ACTIVE_KEY": "1",
        "LEDGERLINK_AUTH_SERVICE_TOKENS": json.dumps({"importer": SERVICE_TOKEN}),
        "LEDGERLINK_AUTH_OAUTH_PROVIDERS": json.dumps(
            {
                "visma_net": {
                    "client_id": CLIENT_ID,
                    "client_secret": CLIENT_SECRET,
                    "token_url": f"{sandbox}/visma-connect/connect/token",
                    "revocation_url": f"{sandbox}/visma-connect/connect/revocation",
                }
            }
        ),
        "LEDGERLINK_AUTH_DATABASE__POOL_SIZE": "10",
        "LEDGERLINK_AUTH_LOG_LEVEL": "WARNING",
        # Spans are not what this test is about; exporting 10,000 of them costs its budget.
        "OTEL_TRACES_EXPORTER": "none",
    }


async def find_connections(stack: Stack, ids: Iterable[str]) -> dict[str, str]:
    """The connection id of each activation, read from auth's store (auth's connection
    routes serve signed-in people of the environment only, and none is involved here)."""
    found: dict[str, str] = {}
    wanted = list(ids)

    async def probe() -> dict[str, str] | None:
        for business_id in [number for number in wanted if number not in found]:
            rows = await stored_connections(stack, business_id)
            if rows:
                found[business_id] = rows[0]["id"]
        return found if len(found) == len(wanted) else None

    return await eventually(probe, timeout=60, what="the activations' connections")


def dump_database(url: str) -> str:
    plain = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    result = subprocess.run(
        ["pg_dump", "--data-only", "--no-owner", plain],
        capture_output=True,
        check=True,
        timeout=60,
    )
    return result.stdout.decode()


async def test_two_auth_processes_refresh_each_expiring_connection_exactly_once(
    stack: Stack, reader: EventReader, kafka_backend: KafkaBackend
) -> None:
    stack.start(
        "sandbox",
        {"LEDGERLINK_SANDBOX_LINES_PER_COMPANY": "10", "LEDGERLINK_SANDBOX_LOG_LEVEL": "WARNING"},
    )
    await stack.wait_ready("sandbox")
    sandbox = stack.services["sandbox"].url
    env = auth_env(sandbox)
    stack.migrate("auth")
    stack.start("auth", env)
    await stack.wait_ready("auth")

    numbers = business_ids(CONNECTIONS + 2)
    async with PlainKafkaClient(
        kafka_backend.bootstrap_servers, stack.config.topic_prefix
    ) as kafka:
        for number in numbers:
            data = {
                "provider": "visma_net",
                "business_id": number,
                "country": "NL",
                "company_name": f"Company {number}",
                "requested_by": {"email": "ops@example.nl", "name": "Ops"},
                "product": "planning",
            }
            await kafka.send(Topic.ACTIVATIONS, data, key=number, ce_type=ACTIVATION)

    first = stack.services["auth"].url
    limits = httpx.Limits(max_connections=100, max_keepalive_connections=100)
    async with httpx.AsyncClient(timeout=60, limits=limits) as http:
        ids = await find_connections(stack, numbers)
        # The second replica: same store, its own consumer group (the embedded broker
        # cannot run a group of two members; the activations it reads again are repeats
        # of known connections). Started now, it boots while the connections are authorised.
        second_stack = Stack(
            dataclasses.replace(stack.config, ports={**stack.config.ports, "auth": free_port()})
        )
        second_stack.start("auth", {**env, "LEDGERLINK_AUTH_CONSUMER_GROUP": "ledgerlink-auth-b"})
        # Each connection authorised through the sandbox's real code flow; auth is told the
        # access token expires in 60 s, inside its 120 s refresh leeway: every one is due.
        granted: dict[str, dict[str, Any]] = {}
        for number in numbers:
            granted[number] = await authorize_at_sandbox(http, sandbox)
            stored = await http.post(
                f"{first}/internal/v1/connections/{ids[number]}/authorization",
                json={
                    "kind": "oauth",
                    "vendor_account": "demo-tenant",
                    "access_token": granted[number]["access_token"],
                    "refresh_token": granted[number]["refresh_token"],
                    "expires_in": 60,
                    "scope": granted[number].get("scope"),
                },
                headers=HEADERS,
            )
            assert stored.status_code == 200, stored.text
            assert stored.json()["status"] == "configuring"

        try:
            await second_stack.wait_ready("auth")
            second = second_stack.services["auth"].url
            expiring, revoked_at_vendor, to_revoke = (
                numbers[:CONNECTIONS],
                numbers[CONNECTIONS],
                numbers[CONNECTIONS + 1],
            )
            before = (await http.get(f"{sandbox}/_sandbox/oauth/vismanet/grants")).json()

            # All 5,000 requests are started at once. They go out through 25 clients of 8
            # connections each (one pool with thousands of waiters costs httpx quadratic
            # time); a connection's 25 requests are spread over both processes.
            clients = [
                httpx.AsyncClient(timeout=60, limits=httpx.Limits(max_connections=8))
                for _ in range(25)
            ]

            async def ask(index: int) -> tuple[str, httpx.Response]:
                number = expiring[index % CONNECTIONS]
                base = first if (index // CONNECTIONS) % 2 == 0 else second
                response = await clients[index % len(clients)].post(
                    f"{base}/internal/v1/connections/{ids[number]}/credentials", headers=HEADERS
                )
                return number, response

            try:
                answers = await asyncio.gather(*(ask(index) for index in range(REQUESTS)))
            finally:
                await asyncio.gather(*(client.aclose() for client in clients))

            after = (await http.get(f"{sandbox}/_sandbox/oauth/vismanet/grants")).json()
            assert [response.status_code for _, response in answers] == [200] * REQUESTS
            refreshes = after["grants"].get("refresh_token", 0) - before["grants"].get(
                "refresh_token", 0
            )
            assert refreshes == CONNECTIONS
            assert after["errors"].get("invalid_grant", 0) == 0
            tokens: dict[str, set[str]] = {}
            for number, response in answers:
                tokens.setdefault(number, set()).add(response.json()["secrets"]["access_token"])
            # One current token per connection, and none is the expiring one it replaced.
            assert all(len(seen) == 1 for seen in tokens.values())
            assert len(tokens) == CONNECTIONS
            for number, (token,) in tokens.items():
                assert token != granted[number]["access_token"]
            # Valid at the vendor: the sandbox's API does not answer 401 to them.
            for token in list({next(iter(seen)) for seen in tokens.values()})[:20]:
                probe = await http.get(
                    f"{sandbox}/vismanet/v1/account", headers={"Authorization": f"Bearer {token}"}
                )
                assert probe.status_code != 401, probe.text

            # A refresh token revoked at the vendor: needs_reauth, and its event.
            revoked = await http.post(
                f"{sandbox}/visma-connect/connect/revocation",
                data={
                    "token": granted[revoked_at_vendor]["refresh_token"],
                    "client_id": CLIENT_ID,
                    "client_secret": CLIENT_SECRET,
                },
            )
            assert revoked.status_code == 200
            refused = await http.post(
                f"{second}/internal/v1/connections/{ids[revoked_at_vendor]}/credentials",
                headers=HEADERS,
            )
            assert refused.status_code == 409
            assert refused.json()["detail"]["reason_code"] == "connection_needs_reauth"
            connections_topic = reader.topic(Topic.CONNECTIONS)
            [event] = await reader.wait_for(
                lambda record: record.topic == connections_topic and record.type == NEEDS_REAUTH
            )
            assert event.data["connection_id"] == ids[revoked_at_vendor]
            assert event.data["reason_code"] == "invalid_grant"

            # Revocation: at Visma Connect, secrets wiped, event published.
            deleted = await http.delete(
                f"{second}/v1/connections/{ids[to_revoke]}", headers=HEADERS
            )
            assert deleted.status_code == 200
            assert deleted.json()["vendor_revocation"] == "revoked"
            [revoked_event] = await reader.wait_for(
                lambda record: record.topic == connections_topic and record.type == REVOKED
            )
            assert revoked_event.data["connection_id"] == ids[to_revoke]
            final = (await http.get(f"{sandbox}/_sandbox/oauth/vismanet/grants")).json()
            assert final["revocations"] >= 1
        finally:
            second_stack.stop_all()

    # No plaintext secret in auth's database: every token seen in the run is absent.
    dump = await asyncio.to_thread(dump_database, stack.config.database_urls["auth"])
    assert "connection_secrets" in dump
    seen_secrets = {CLIENT_SECRET}
    for grant in granted.values():
        seen_secrets.update({grant["access_token"], grant["refresh_token"]})
    for seen in tokens.values():
        seen_secrets.update(seen)
    leaked = sorted(secret for secret in seen_secrets if secret in dump)
    assert leaked == []
