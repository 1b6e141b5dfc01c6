"""The auth app as create_app builds it: its own routes next to the operational ones.

The lifespan is not entered, so no broker is started: readiness reports the broker as
unreachable, which is exactly what /readyz must do when Kafka does not answer.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
from pydantic import SecretStr

from ledgerlink.auth.config import Config
from ledgerlink.auth.main import create_app
from ledgerlink.shared.config import DatabaseSettings, KafkaSettings
from ledgerlink.shared.db import Database
from ledgerlink.shared.runtime import ProcessContext


@pytest.fixture
def root_handlers() -> Iterator[None]:
    # create_app installs the JSON log handler on the root logger; give pytest its own back.
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:
        yield
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)


@pytest.fixture
async def client(
    database_url: str, db: Database, root_handlers: None
) -> AsyncIterator[httpx.AsyncClient]:
    del db  # requested so the store is emptied first
    config = Config(
        database=DatabaseSettings(url=SecretStr(database_url)),
        kafka=KafkaSettings(bootstrap_servers="127.0.0.1:9", client_id="auth-app-test"),
    )
    app = create_app(config)
    process: ProcessContext = app.state.process
    transport = httpx.ASGITransport(app=app)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://auth") as client:
            yield client
    finally:
        await process.http_client.aclose()
        await process.db.dispose()


async def test_healthz(client: httpx.AsyncClient) -> None:
    response = await client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "service": "auth"}


async def test_readyz_names_the_failing_check(client: httpx.AsyncClient) -> None:
    response = await client.get("/readyz")
    assert response.status_code == 503
    assert response.json() == {
        "ready": False,
        "checks": {"database": "ok", "broker": "unreachable"},
    }


async def test_metrics_include_the_messaging_metrics(client: httpx.AsyncClient) -> None:
    response = await client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    assert "# TYPE ledgerlink_events_consumed_total counter" in response.text


async def test_asyncapi_lists_the_activation_subscription_and_connection_events(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get("/asyncapi.json")
    assert response.status_code == 200
    document = response.json()
    assert document["asyncapi"].startswith("3.")
    assert document["info"]["title"] == "Ledgerlink auth"
    channels = set(document["channels"])
    assert any(name.startswith("ledgerlink.activations:ledgerlink-auth") for name in channels)
    assert any("ledgerlink.connection.activated.v1" in name for name in channels)
    assert any("ledgerlink.connection.rejected.v1" in name for name in channels)


async def test_openapi_documents_the_connection_routes(client: httpx.AsyncClient) -> None:
    response = await client.get("/openapi.json")
    assert response.status_code == 200
    paths = response.json()["paths"]
    assert set(paths["/v1/connections"]) == {"get"}
    # Issue 12 adds revocation: DELETE on the same path.
    assert set(paths["/v1/connections/{connection_id}"]) == {"get", "delete"}
    assert (await client.get("/docs")).status_code == 200


async def test_connection_routes_are_mounted(client: httpx.AsyncClient) -> None:
    # Mounted and, since issue 12, for signed-in people only (route tests sign people in).
    response = await client.get("/v1/connections", params={"business_id": "556036-0793"})
    assert response.status_code == 401
    assert response.json() == {"detail": "not signed in"}
    missing = await client.get("/v1/connections/00000000-0000-0000-0000-000000000000")
    assert missing.status_code == 401
    environments = await client.get("/v1/environments")
    assert environments.status_code == 401


async def test_unknown_path_is_404(client: httpx.AsyncClient) -> None:
    response = await client.get("/v2/connections")
    assert response.status_code == 404
    assert response.json() == {"detail": "Not Found"}
