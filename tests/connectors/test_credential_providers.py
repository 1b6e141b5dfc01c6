"""Netvisor and 24SevenOffice connectors whose credential comes from a provider (auth's
token service in production), against the sandbox over real HTTP.

The provider here is a small hand-written one: it hands out what a test scripts and
records every refusal; the token service itself is tested in auth's tests and, with these
connectors, over the wire in ``tests/test_wire_vendor_credentials.py``.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from ledgerlink.connectors.credentials import Credential
from ledgerlink.connectors.errors import AuthenticationFailed, NotFound
from ledgerlink.connectors.http import RetryPolicy
from ledgerlink.connectors.netvisor import NetvisorConnector, NetvisorSettings
from ledgerlink.connectors.twentyfour import (
    TwentyFourConnector,
    TwentyFourSettings,
    open_session,
)
from ledgerlink.sandbox.config import RateLimitSettings, SandboxConfig
from ledgerlink.sandbox.data import generate_company
from ledgerlink.sandbox.testing import RunningSandbox, running_sandbox
from ledgerlink.sandbox.vendors import twentyfour as tf
from ledgerlink.sandbox.world import World

pytestmark = pytest.mark.timeout(60)

CUSTOMER_KEY = "customer-key-from-the-vault"
PARTNER_ID = "LEDGERLINK_TEST"
PARTNER_KEY = "partner-key-from-auth-settings"
APP_ID = "ledgerlink-app-id"
USER = "integration@firm.example"
PASSWORD = "integration-password"
FAST_RETRY = RetryPolicy(attempts=3, initial_backoff_seconds=0.01, jitter_seconds=0.01)


@dataclass
class ScriptedProvider:
    """A CredentialProvider handing out ``make(refusals so far)``; records refusals."""

    make: Callable[[int], Credential]
    refused: list[Credential] = field(default_factory=list)
    asked: int = 0
    connection_id: uuid.UUID = field(default_factory=uuid.uuid4)
    _current: Credential | None = None

    async def get(self, *, refused: Credential | None = None) -> Credential:
        self.asked += 1
        if refused is not None:
            self.refused.append(refused)
            self._current = None
        if self._current is None:
            self._current = self.make(len(self.refused))
        return self._current


def netvisor_identity(customer_id: str, customer_key: str, organisation_id: str) -> Credential:
    return Credential(
        connection_id=uuid.uuid4(),
        provider="netvisor",
        kind="netvisor",
        expires_at=None,
        secrets={"customer_key": SecretStr(customer_key), "partner_key": SecretStr(PARTNER_KEY)},
        attributes={
            "customer_id": customer_id,
            "organisation_id": organisation_id,
            "partner_id": PARTNER_ID,
        },
    )


@pytest.fixture
async def netvisor() -> AsyncIterator[tuple[RunningSandbox, World, str, str]]:
    world = World(
        SandboxConfig(rate_limits={"netvisor": RateLimitSettings(rate_per_second=1000, burst=1000)})
    )
    company = generate_company(11, lines=40)
    tenant = world.add_tenant(
        "netvisor",
        company=company,
        credentials={
            "customer_key": CUSTOMER_KEY,
            "partner_id": PARTNER_ID,
            "partner_key": PARTNER_KEY,
        },
    )
    async with running_sandbox(world=world, vendors=("netvisor",)) as sandbox:
        yield sandbox, world, tenant.tenant_id, company.business_id


def netvisor_settings(sandbox: RunningSandbox) -> NetvisorSettings:
    # No identity at all: customer and partner come from the provider.
    return NetvisorSettings(sender="Ledgerlink tests", base_url=sandbox.url("/netvisor"))


async def test_netvisor_signs_with_the_identity_the_provider_gives(
    netvisor: tuple[RunningSandbox, World, str, str],
) -> None:
    sandbox, _world, customer_id, business_id = netvisor
    provider = ScriptedProvider(lambda _: netvisor_identity(customer_id, CUSTOMER_KEY, business_id))
    async with NetvisorConnector(
        netvisor_settings(sandbox), credentials=provider, retry=FAST_RETRY
    ) as connector:
        companies = await connector.list_companies()
        assert [(c.external_id, c.business_id) for c in companies] == [(customer_id, business_id)]
        assert await connector.read_accounts()
        assert provider.refused == []
        assert PARTNER_KEY not in repr(connector)
        assert CUSTOMER_KEY not in repr(connector)


async def test_netvisor_asks_again_once_when_the_identity_is_refused(
    netvisor: tuple[RunningSandbox, World, str, str],
) -> None:
    sandbox, _world, customer_id, business_id = netvisor
    # The first identity holds an old key (the customer re-issued it); auth has the new one.
    keys = ["an-old-customer-key", CUSTOMER_KEY]
    provider = ScriptedProvider(
        lambda refusals: netvisor_identity(customer_id, keys[min(refusals, 1)], business_id)
    )
    async with NetvisorConnector(
        netvisor_settings(sandbox), credentials=provider, retry=FAST_RETRY
    ) as connector:
        assert await connector.read_accounts()
        assert [c.secrets["customer_key"].get_secret_value() for c in provider.refused] == [
            "an-old-customer-key"
        ]
        assert await connector.read_dimensions() is not None
        assert len(provider.refused) == 1


async def test_netvisor_gives_up_when_auth_has_nothing_newer(
    netvisor: tuple[RunningSandbox, World, str, str],
) -> None:
    sandbox, _world, customer_id, business_id = netvisor
    provider = ScriptedProvider(lambda _: netvisor_identity(customer_id, "wrong-key", business_id))
    async with NetvisorConnector(
        netvisor_settings(sandbox), credentials=provider, retry=FAST_RETRY
    ) as connector:
        with pytest.raises(AuthenticationFailed) as refused:
            await connector.read_accounts()
        assert "wrong-key" not in str(refused.value)
        assert len(provider.refused) == 1  # asked again once, not in a loop


async def test_netvisor_refuses_an_incomplete_identity_clearly(
    netvisor: tuple[RunningSandbox, World, str, str],
) -> None:
    sandbox, _world, customer_id, _business_id = netvisor
    provider = ScriptedProvider(lambda _: netvisor_identity(customer_id, CUSTOMER_KEY, ""))
    async with NetvisorConnector(
        netvisor_settings(sandbox), credentials=provider, retry=FAST_RETRY
    ) as connector:
        with pytest.raises(AuthenticationFailed, match="identity is incomplete") as refused:
            await connector.read_accounts()
        assert CUSTOMER_KEY not in str(refused.value)
        assert PARTNER_KEY not in str(refused.value)


def test_netvisor_without_identity_or_provider_is_refused_up_front() -> None:
    settings = NetvisorSettings(sender="Ledgerlink tests")
    with pytest.raises(ValueError, match="customer_id, customer_key, partner_id"):
        NetvisorConnector(settings)


# -- 24SevenOffice -------------------------------------------------------------------------------


@pytest.fixture
async def twentyfour() -> AsyncIterator[tuple[RunningSandbox, tf.TwentyFourState]]:
    world = World(
        SandboxConfig(
            rate_limits={"twentyfour": RateLimitSettings(rate_per_second=10_000, burst=10_000)}
        )
    )
    world.add_tenant(
        "twentyfour", tenant_id="5001", company=generate_company(41, country="NO", lines=30)
    )
    state = tf.state_of(world)
    state.register_application(APP_ID)
    world.add_tenant(
        "twentyfour", tenant_id="5002", company=generate_company(43, country="NO", lines=10)
    )
    state.add_integration_user(USER, PASSWORD, ["5001", "5002"])
    async with running_sandbox(world=world, vendors=("twentyfour",)) as sandbox:
        yield sandbox, state


class CentralLogin:
    """What auth's token service does for 24SevenOffice, in small: one login per session."""

    def __init__(self, sandbox: RunningSandbox, identity_id: str | None = None) -> None:
        self.sandbox = sandbox
        self.identity_id = identity_id
        self.sessions: list[SecretStr] = []

    async def login(self, http: httpx.AsyncClient) -> SecretStr:
        session = await open_session(
            http,
            soap_base_url=self.sandbox.url("/24so/soap"),
            application_id=SecretStr(APP_ID),
            username=USER,
            password=SecretStr(PASSWORD),
            identity_id=self.identity_id,
        )
        self.sessions.append(session)
        return session


@dataclass
class SessionProvider:
    login: CentralLogin
    http: httpx.AsyncClient
    refused: list[Credential] = field(default_factory=list)
    _current: Credential | None = None

    async def get(self, *, refused: Credential | None = None) -> Credential:
        if refused is not None:
            self.refused.append(refused)
        if self._current is None or (
            refused is not None and refused.primary == self._current.primary
        ):
            session = await self.login.login(self.http)
            self._current = Credential(
                connection_id=uuid.uuid4(),
                provider="24sevenoffice",
                kind="twentyfour_session",
                expires_at=None,
                secrets={"session_id": session},
                attributes={"username": USER},
            )
        return self._current


def twentyfour_settings(sandbox: RunningSandbox, **changes: Any) -> TwentyFourSettings:
    values: dict[str, Any] = {
        "client": "5001",
        "soap_base_url": sandbox.url("/24so/soap"),
        "rest_base_url": sandbox.url(tf.REST_PREFIX),
        "token_url": sandbox.url(tf.TOKEN_PATH),
        "retry": FAST_RETRY,
    }
    values.update(changes)
    return TwentyFourSettings(**values)


async def test_twentyfour_uses_the_provided_session_and_asks_again_when_it_expires(
    twentyfour: tuple[RunningSandbox, tf.TwentyFourState],
) -> None:
    sandbox, state = twentyfour
    async with httpx.AsyncClient() as http:
        provider = SessionProvider(CentralLogin(sandbox), http)
        async with TwentyFourConnector(
            twentyfour_settings(sandbox), credentials=provider
        ) as connector:
            assert [c.external_id for c in await connector.list_companies()] == ["5001", "5002"]
            assert await connector.read_accounts()
            assert connector.logins == 0  # the connector never logs in itself
            assert state.login_count == 1
            state.expire_sessions()  # the vendor forgot the session
            assert await connector.read_accounts()
            assert len(provider.refused) == 1
            assert provider.refused[0].primary == provider.login.sessions[0]
            assert state.login_count == 2
            assert connector.logins == 0


async def test_twentyfour_never_switches_the_client_of_auths_session(
    twentyfour: tuple[RunningSandbox, tf.TwentyFourState],
) -> None:
    sandbox, state = twentyfour
    async with httpx.AsyncClient() as http:
        provider = SessionProvider(CentralLogin(sandbox), http)
        async with TwentyFourConnector(
            twentyfour_settings(sandbox, client="5002"), credentials=provider
        ) as connector:
            with pytest.raises(NotFound, match="is one client"):
                await connector.read_accounts()
    assert {session.client for session in state.sessions.values()} == {"5001"}


async def test_open_session_makes_one_login_and_reports_a_wrong_password(
    twentyfour: tuple[RunningSandbox, tf.TwentyFourState],
) -> None:
    sandbox, state = twentyfour
    async with httpx.AsyncClient() as http:
        with pytest.raises(AuthenticationFailed) as refused:
            await open_session(
                http,
                soap_base_url=sandbox.url("/24so/soap"),
                application_id=SecretStr(APP_ID),
                username=USER,
                password=SecretStr("not-the-password"),
            )
    assert state.login_count == 1
    assert refused.value.vendor_message == "Invalid username or password."
    assert "not-the-password" not in str(refused.value)


async def test_twentyfour_without_login_or_provider_says_so() -> None:
    async with TwentyFourConnector(TwentyFourSettings()) as connector:
        with pytest.raises(AuthenticationFailed, match="no ApplicationId, username or password"):
            await connector.list_companies()
