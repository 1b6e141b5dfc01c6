"""Netvisor identities and 24SevenOffice sessions over the wire: auth as a process on
PostgreSQL, the vendor sandbox as a real HTTP server, activations over Kafka, and the
connectors asking auth's token service (``TokenServiceCredentials``) as the importer does.

* a Netvisor connection: auth hands out the customer's key (vault) with our partner
  identity (its settings); the connector signs with it and reads the sandbox's books;
* a 24SevenOffice connection: auth logs in once with the stored integration user and hands
  out the live session; the connector reads through it without logging in itself; when the
  vendor forgets the session, one new login;
* a wrong 24SevenOffice password: exactly one login attempt at the sandbox, the connection
  ``needs_reauth`` with its event, and no further attempt however often it is asked.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from auth_store import stored_connection, stored_connections
from pydantic import SecretStr
from wire_helpers import EventReader, PlainKafkaClient, eventually

from ledgerlink.cli.stack import Stack
from ledgerlink.connectors.credentials import TokenServiceCredentials
from ledgerlink.connectors.netvisor import NetvisorConnector, NetvisorSettings
from ledgerlink.connectors.twentyfour import TwentyFourConnector, TwentyFourSettings
from ledgerlink.sandbox.config import RateLimitSettings, SandboxConfig
from ledgerlink.sandbox.data import generate_company
from ledgerlink.sandbox.testing import RunningSandbox, running_sandbox
from ledgerlink.sandbox.vendors import twentyfour as tf
from ledgerlink.sandbox.world import World
from ledgerlink.shared.testing import KafkaBackend
from ledgerlink.shared.topics import Topic

pytestmark = [pytest.mark.wire]

SERVICE_TOKEN = "wire-importer-token-0123456789abcdef0123"
HEADERS = {"Authorization": f"Bearer {SERVICE_TOKEN}"}
ACTIVATION = "ledgerlink.activation.requested.v1"
NEEDS_REAUTH = "ledgerlink.connection.needs_reauth.v1"
CUSTOMER_ID = "wire-customer-1"
CUSTOMER_KEY = "wire-customer-key-from-the-vault"
PARTNER_ID = "LEDGERLINK_WIRE"
PARTNER_KEY = "wire-partner-key-in-auth-settings"
APP_ID = "wire-24so-application-id"
USER = "integration@wire.example"
PASSWORD = "wire-integration-password"
WRONG_USER = "someone-else@wire.example"


@pytest.fixture
async def sandbox() -> AsyncIterator[RunningSandbox]:
    limits = RateLimitSettings(rate_per_second=10_000, burst=10_000)
    world = World(SandboxConfig(rate_limits={"netvisor": limits, "twentyfour": limits}))
    world.add_tenant(
        "netvisor",
        tenant_id=CUSTOMER_ID,
        company=generate_company(21, lines=60),
        credentials={
            "customer_key": CUSTOMER_KEY,
            "partner_id": PARTNER_ID,
            "partner_key": PARTNER_KEY,
        },
    )
    world.add_tenant(
        "twentyfour", tenant_id="5001", company=generate_company(22, country="NO", lines=40)
    )
    state = tf.state_of(world)
    state.register_application(APP_ID)
    state.add_integration_user(USER, PASSWORD, ["5001"])
    state.add_integration_user(WRONG_USER, "the-real-password", ["5001"])
    async with running_sandbox(world=world, vendors=("netvisor", "twentyfour")) as running:
        yield running


def auth_env(sandbox: RunningSandbox) -> dict[str, str]:
    return {
        "LEDGERLINK_AUTH_VAULT__KEYS": json.dumps({"1": "wire-vault-key-0123456789abcdef-0123"}),
        "LEDGERLINK_AUTH_VAULT__ACTIVE_KEY": "1",
        "LEDGERLINK_AUTH_SERVICE_TOKENS": json.dumps({"importer": SERVICE_TOKEN}),
        "LEDGERLINK_AUTH_NETVISOR__PARTNER_ID": PARTNER_ID,
        "LEDGERLINK_AUTH_NETVISOR__PARTNER_KEY": PARTNER_KEY,
        "LEDGERLINK_AUTH_TWENTYFOUR__APPLICATION_ID": APP_ID,
        "LEDGERLINK_AUTH_TWENTYFOUR__SOAP_BASE_URL": sandbox.url("/24so/soap"),
        "LEDGERLINK_AUTH_LOG_LEVEL": "WARNING",
        "OTEL_TRACES_EXPORTER": "none",
    }


async def activate(
    stack: Stack, kafka: PlainKafkaClient, provider: str, country: str, business_id: str
) -> str:
    data = {
        "provider": provider,
        "business_id": business_id,
        "country": country,
        "company_name": f"Company {business_id}",
        "requested_by": {"email": "ops@example.fi", "name": "Ops"},
        "product": "planning",
    }
    await kafka.send(Topic.ACTIVATIONS, data, key=business_id, ce_type=ACTIVATION)

    async def probe() -> str | None:
        rows = [row for row in await stored_connections(stack, business_id) if row]
        matching = [row["id"] for row in rows if row["provider"] == provider]
        return matching[0] if matching else None

    found: str = await eventually(probe, timeout=60, what=f"the {provider} connection")
    return found


async def authorize(http: httpx.AsyncClient, auth: str, connection_id: str, body: Any) -> None:
    stored = await http.post(
        f"{auth}/internal/v1/connections/{connection_id}/authorization",
        json=body,
        headers=HEADERS,
    )
    assert stored.status_code == 200, stored.text


async def test_connectors_read_with_identities_and_sessions_served_by_auth(
    stack: Stack, reader: EventReader, kafka_backend: KafkaBackend, sandbox: RunningSandbox
) -> None:
    stack.migrate("auth")
    stack.start("auth", auth_env(sandbox))
    await stack.wait_ready("auth")
    auth = stack.services["auth"].url
    state = tf.state_of(sandbox.world)
    netvisor_tenant = sandbox.world.tenant("netvisor", CUSTOMER_ID)
    twentyfour_tenant = sandbox.world.tenant("twentyfour", "5001")
    assert netvisor_tenant is not None
    assert twentyfour_tenant is not None
    identity_id = state.users[USER].identity_of("5001")

    async with PlainKafkaClient(
        kafka_backend.bootstrap_servers, stack.config.topic_prefix
    ) as kafka:
        netvisor_id = await activate(
            stack, kafka, "netvisor", "FI", netvisor_tenant.company.business_id
        )
        twentyfour_id = await activate(
            stack, kafka, "24sevenoffice", "NO", twentyfour_tenant.company.business_id
        )
        refused_id = await activate(stack, kafka, "24sevenoffice", "NO", "923609016")

    async with httpx.AsyncClient(timeout=30) as http:
        await authorize(
            http,
            auth,
            netvisor_id,
            {
                "kind": "netvisor",
                "vendor_account": CUSTOMER_ID,
                "customer_id": CUSTOMER_ID,
                "customer_key": CUSTOMER_KEY,
                "organisation_id": netvisor_tenant.company.business_id,
            },
        )
        for connection_id, username, password in (
            (twentyfour_id, USER, PASSWORD),
            (refused_id, WRONG_USER, "a-mistyped-password"),
        ):
            await authorize(
                http,
                auth,
                connection_id,
                {
                    "kind": "twentyfour",
                    "vendor_account": username,
                    "username": username,
                    "password": password,
                    "identity_id": identity_id,
                },
            )

        # Netvisor: the connector's settings hold no identity; auth's answer signs.
        netvisor_credentials = TokenServiceCredentials(
            auth, SecretStr(SERVICE_TOKEN), uuid.UUID(netvisor_id), vendor="netvisor"
        )
        settings = NetvisorSettings(sender="Ledgerlink wire", base_url=sandbox.url("/netvisor"))
        async with NetvisorConnector(settings, credentials=netvisor_credentials) as connector:
            [company] = await connector.list_companies()
            assert company.external_id == CUSTOMER_ID
            assert company.business_id == netvisor_tenant.company.business_id
            accounts = await connector.read_accounts()
            assert {account.number for account in accounts} >= {
                line.account
                for voucher in netvisor_tenant.company.vouchers
                for line in voucher.lines
            }
        assert netvisor_credentials.requests == 1  # held in memory between requests
        await netvisor_credentials.aclose()

        # 24SevenOffice: auth logs in once; the connector reads through its session.
        before = state.login_count
        twentyfour_credentials = TokenServiceCredentials(
            auth, SecretStr(SERVICE_TOKEN), uuid.UUID(twentyfour_id), vendor="twentyfour"
        )
        connector_settings = TwentyFourSettings(
            client="5001",
            soap_base_url=sandbox.url("/24so/soap"),
            rest_base_url=sandbox.url(tf.REST_PREFIX),
            token_url=sandbox.url(tf.TOKEN_PATH),
        )
        async with TwentyFourConnector(
            connector_settings, credentials=twentyfour_credentials
        ) as connector:
            assert [c.external_id for c in await connector.list_companies()] == ["5001"]
            accounts = await connector.read_accounts()
            assert {account.number for account in accounts} >= {
                line.account
                for voucher in twentyfour_tenant.company.vouchers
                for line in voucher.lines
            }
            assert state.login_count - before == 1
            # The vendor forgets the session: the connector reports it, auth logs in once.
            state.expire_sessions()
            assert await connector.read_accounts() == accounts
            assert state.login_count - before == 2
            assert connector.logins == 0
        await twentyfour_credentials.aclose()

        # A wrong password: one login attempt, needs_reauth and its event, no second try.
        before = state.login_count
        for _ in range(3):
            refused = await http.post(
                f"{auth}/internal/v1/connections/{refused_id}/credentials", headers=HEADERS
            )
            assert refused.status_code == 409
            assert refused.json()["detail"]["reason_code"] == "connection_needs_reauth"
            assert "a-mistyped-password" not in refused.text
        assert state.login_count - before == 1
        stored = await stored_connection(stack, refused_id)
        assert stored is not None
        assert stored["status"] == "needs_reauth"
        connections_topic = reader.topic(Topic.CONNECTIONS)
        [event] = await reader.wait_for(
            lambda record: (
                record.topic == connections_topic
                and record.type == NEEDS_REAUTH
                and record.data["connection_id"] == refused_id
            )
        )
        assert event.data["reason_code"] == "invalid_credentials"
        assert "a-mistyped-password" not in json.dumps(event.data)
