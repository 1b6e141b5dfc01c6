"""The token service's 24SevenOffice sessions: it logs in with the stored integration user,
reuses the session until near its expiry, one login per connection at a time across
replicas, and never repeats a refused login (the vendor throttles them, seed 004)."""

from __future__ import annotations

import asyncio
import hashlib
import uuid

from auth_token_kit import (
    HEADERS,
    TWENTYFOUR_PASSWORD,
    Harness,
    config,
    harness,
)
from pydantic import SecretStr
from sqlalchemy import func, select
from sqlmodel import col

from ledgerlink.auth.config import TwentyFourLoginSettings
from ledgerlink.auth.domain.lifecycle import ConnectionStatus
from ledgerlink.auth.storage.models import Connection, ConnectionSecret
from ledgerlink.shared.db import Database
from ledgerlink.shared.events import Provider

NEEDS_REAUTH = "ledgerlink.connection.needs_reauth.v1"
IDENTITY = "3f0c1d7e-0000-4000-8000-000000000001"


async def stored_integration_user(h: Harness, password: str = TWENTYFOUR_PASSWORD) -> uuid.UUID:
    connection = await h.activate(provider=Provider.TWENTYFOUR_SEVEN_OFFICE.value)
    stored = await h.client.post(
        f"/internal/v1/connections/{connection.id}/authorization",
        json={
            "kind": "twentyfour",
            "vendor_account": "integration@firm.no",
            "username": "integration@firm.no",
            "password": password,
            "identity_id": IDENTITY,
        },
        headers=HEADERS,
    )
    assert stored.status_code == 200, stored.text
    return connection.id


async def status_of(db: Database, connection_id: uuid.UUID) -> ConnectionStatus:
    async with db.transaction() as session:
        connection = await session.get(Connection, connection_id)
        assert connection is not None
        return connection.status


async def secret_fields(db: Database, connection_id: uuid.UUID) -> set[str]:
    async with db.transaction() as session:
        rows = await session.execute(
            select(col(ConnectionSecret.field)).where(
                col(ConnectionSecret.connection_id) == connection_id
            )
        )
        return {str(name) for name in rows.scalars()}


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


async def test_a_live_session_is_handed_out_and_reused_until_near_expiry(db: Database) -> None:
    async with harness(db) as h:
        connection_id = await stored_integration_user(h)
        first = await h.credentials(connection_id)
        assert first.status_code == 200, first.text
        body = first.json()
        assert body["kind"] == "twentyfour_session"
        assert body["secrets"] == {"session_id": h.idp.sessions[0]}
        assert TWENTYFOUR_PASSWORD not in first.text  # the password never leaves auth
        assert body["attributes"] == {"username": "integration@firm.no", "identity_id": IDENTITY}
        assert body["expires_at"].startswith("2026-11-21T10:20:00")
        # The login named our ApplicationId and the connection's client (its identity).
        assert h.idp.logins[0]["IdentityId"] == IDENTITY
        assert h.idp.logins[0]["Username"] == "integration@firm.no"
        # Reused: from memory, then (memory gone) from the vault, without a new login.
        assert (await h.credentials(connection_id)).json() == body
        h.clock.advance(seconds=600)
        assert (await h.credentials(connection_id)).json()["secrets"] == body["secrets"]
        assert len(h.idp.logins) == 1
        assert await secret_fields(db, connection_id) == {"password", "session_id"}
        # Within the leeway (120 s) of its expiry: a new login, a new session.
        h.clock.advance(seconds=500)
        renewed = await h.credentials(connection_id)
        assert renewed.json()["secrets"]["session_id"] == h.idp.sessions[1]
        assert len(h.idp.logins) == 2


async def test_a_refused_session_is_replaced_once_however_many_callers_report_it(
    db: Database,
) -> None:
    async with harness(db) as h:
        connection_id = await stored_integration_user(h)
        session = (await h.credentials(connection_id)).json()["secrets"]["session_id"]
        answers = await asyncio.gather(
            *(h.credentials(connection_id, refused_token_sha256=sha256(session)) for _ in range(10))
        )
        fresh = {answer.json()["secrets"]["session_id"] for answer in answers}
        assert fresh == {h.idp.sessions[1]}
        assert len(h.idp.logins) == 2
        # A late report of the old session changes nothing.
        late = await h.credentials(connection_id, refused_token_sha256=sha256(session))
        assert late.json()["secrets"]["session_id"] == h.idp.sessions[1]
        assert len(h.idp.logins) == 2


async def test_two_replicas_log_in_once_per_connection(db: Database) -> None:
    async with harness(db) as first, harness(db) as second:
        second.idp = first.idp  # one vendor
        gate = first.idp.login_gate = asyncio.Event()
        login = second.components.credentials._twentyfour
        assert login is not None
        login.http = first.components.vendor.http
        connection_id = await stored_integration_user(first)
        requests = asyncio.gather(
            *(first.credentials(connection_id) for _ in range(20)),
            *(second.credentials(connection_id) for _ in range(20)),
        )
        # One login is in flight at the vendor; everything else queues behind its lock.
        await asyncio.wait_for(first.idp.login_arrived.wait(), timeout=10)
        gate.set()
        answers = await requests
        assert {answer.status_code for answer in answers} == {200}
        assert len(first.idp.logins) == 1
        assert {answer.json()["secrets"]["session_id"] for answer in answers} == {
            first.idp.sessions[0]
        }


async def test_a_rejected_password_is_tried_once_and_needs_reauth(db: Database) -> None:
    async with harness(db) as h:
        connection_id = await stored_integration_user(h, password="wrong-password")
        answers = await asyncio.gather(*(h.credentials(connection_id) for _ in range(5)))
        assert {answer.status_code for answer in answers} == {409}
        detail = answers[0].json()["detail"]
        assert detail["reason_code"] == "connection_needs_reauth"
        assert "invalid_credentials" in detail["message"]
        assert len(h.idp.logins) == 1
        assert await status_of(db, connection_id) is ConnectionStatus.NEEDS_REAUTH
        assert await secret_fields(db, connection_id) == set()  # nothing to try again with
        events = [event for event in await h.events() if event[0] == NEEDS_REAUTH]
        assert len(events) == 1
        assert events[0][1]["reason_code"] == "invalid_credentials"
        assert "wrong-password" not in str(events)
        # Later callers: the 409 without another login at the vendor.
        h.clock.advance(seconds=3600)
        assert (await h.credentials(connection_id)).status_code == 409
        assert len(h.idp.logins) == 1


async def test_a_throttled_login_is_a_503_and_the_connection_stays_usable(db: Database) -> None:
    async with harness(db) as h:
        connection_id = await stored_integration_user(h)
        h.idp.login_throttled = True
        answer = await h.credentials(connection_id)
        assert answer.status_code == 503
        assert answer.json()["detail"]["reason_code"] == "vendor_throttled"
        assert "30 s" in answer.json()["detail"]["message"]
        assert await status_of(db, connection_id) is ConnectionStatus.CONFIGURING
        h.idp.login_throttled = False
        assert (await h.credentials(connection_id)).status_code == 200


async def test_our_application_id_refused_is_not_the_customers_fault(db: Database) -> None:
    wrong = TwentyFourLoginSettings(
        application_id=SecretStr("not-registered"), soap_base_url="https://24so.test"
    )
    async with harness(db, config(twentyfour=wrong)) as h:
        connection_id = await stored_integration_user(h)
        answer = await h.credentials(connection_id)
        assert answer.status_code == 503
        assert answer.json()["detail"]["reason_code"] == "login_unconfigured"
        assert await status_of(db, connection_id) is ConnectionStatus.CONFIGURING
        async with db.transaction() as session:
            count = await session.execute(select(func.count()).select_from(ConnectionSecret))
            assert count.scalar_one() == 1  # the password stays
