"""The token service over HTTP on the test store (SQLite and PostgreSQL): service tokens,
authorization results into the vault, proactive refresh, coalescing, the refresh lock,
``invalid_grant``, and revocation. The IdP is a fake with rotating refresh tokens; the
clock is injected."""

from __future__ import annotations

import asyncio
import hashlib
import uuid

import pytest
from auth_token_kit import HEADERS, PARTNER_KEY, Clock, config, harness
from sqlalchemy import func, select
from sqlmodel import col

from ledgerlink.auth.config import NetvisorPartnerSettings
from ledgerlink.auth.domain.lifecycle import ConnectionStatus
from ledgerlink.auth.storage.models import Connection, ConnectionCredential, ConnectionSecret
from ledgerlink.shared.db import Database

ACTIVATED = "ledgerlink.connection.activated.v1"
NEEDS_REAUTH = "ledgerlink.connection.needs_reauth.v1"
REVOKED = "ledgerlink.connection.revoked.v1"


async def secret_rows(db: Database, connection_id: uuid.UUID) -> int:
    async with db.transaction() as session:
        return int(
            (
                await session.execute(
                    select(func.count())
                    .select_from(ConnectionSecret)
                    .where(col(ConnectionSecret.connection_id) == connection_id)
                )
            ).scalar_one()
        )


async def status_of(db: Database, connection_id: uuid.UUID) -> ConnectionStatus:
    async with db.transaction() as session:
        connection = await session.get(Connection, connection_id)
        assert connection is not None
        return connection.status


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic abc"}],
    ids=["none", "wrong", "not-bearer"],
)
async def test_internal_routes_need_a_service_token(db: Database, headers: dict[str, str]) -> None:
    async with harness(db) as h:
        connection = await h.activate()
        for path in ("credentials", "authorization"):
            response = await h.client.post(
                f"/internal/v1/connections/{connection.id}/{path}", json={}, headers=headers
            )
            assert response.status_code == 401, path
        revoke = await h.client.delete(f"/v1/connections/{connection.id}", headers=headers)
        assert revoke.status_code == 401


async def test_unknown_connection_is_404_and_unauthorised_one_409(db: Database) -> None:
    async with harness(db) as h:
        missing = await h.credentials(uuid.uuid4())
        assert missing.status_code == 404
        assert missing.json()["detail"]["reason_code"] == "not_found"
        connection = await h.activate()
        pending = await h.credentials(connection.id)
        assert pending.status_code == 409
        assert pending.json()["detail"]["reason_code"] == "connection_pending_authorization"


async def test_authorization_result_is_sealed_and_the_connection_configuring(
    db: Database,
) -> None:
    async with harness(db) as h:
        connection = await h.activate()
        response = await h.authorize(connection.id)
        assert response.status_code == 200, response.text
        assert response.json()["status"] == "configuring"
        assert "access_token" not in response.text
        events = await h.events()
        assert [kind for kind, _ in events][-2:] == [
            "ledgerlink.connection.authorization_started.v1",
            ACTIVATED,
        ]
        assert events[-1][1]["connection_id"] == str(connection.id)
        # No plaintext in the store or in any event.
        async with db.transaction() as session:
            stored = [
                row.ciphertext
                for row in (await session.execute(select(ConnectionSecret))).scalars()
            ]
        assert len(stored) == 2
        for token in (h.idp.access_tokens[-1], *h.idp.refresh_tokens):
            assert all(token not in text for text in stored)
            assert all(token not in str(payload) for _, payload in events)

        answer = await h.credentials(connection.id)
        assert answer.status_code == 200
        body = answer.json()
        assert body["kind"] == "bearer"
        assert body["secrets"] == {"access_token": h.idp.access_tokens[-1]}
        assert answer.headers["cache-control"] == "no-store"
        assert h.idp.refreshes == 0


async def test_wrong_kind_and_other_vendor_account_are_refused(db: Database) -> None:
    async with harness(db) as h:
        connection = await h.activate()
        wrong = await h.client.post(
            f"/internal/v1/connections/{connection.id}/authorization",
            json={
                "kind": "netvisor",
                "vendor_account": "x",
                "customer_id": "1",
                "customer_key": "k",
            },
            headers=HEADERS,
        )
        assert wrong.status_code == 422
        assert wrong.json()["detail"]["reason_code"] == "wrong_credential_kind"
        assert (await h.authorize(connection.id, account="tenant-1")).status_code == 200
        # Refresh token revoked at the IdP -> needs_reauth, then another account tries.
        h.idp.refresh_tokens.clear()
        h.clock.advance(seconds=3600)
        assert (await h.credentials(connection.id)).status_code == 409
        other = await h.authorize(connection.id, account="tenant-2")
        assert other.status_code == 409
        assert other.json()["detail"]["reason_code"] == "vendor_account_mismatch"
        same = await h.authorize(connection.id, account="tenant-1")
        assert same.status_code == 200
        assert same.json()["id"] == str(connection.id)
        assert same.json()["status"] == "configuring"
        assert (await h.events())[-1][0] == "ledgerlink.connection.reauthorized.v1"


async def test_expiring_token_is_refreshed_once_for_many_concurrent_callers(
    db: Database,
) -> None:
    async with harness(db) as h:
        connection = await h.activate()
        await h.authorize(connection.id, expires_in=60)  # inside the 120 s leeway
        h.idp.gate = asyncio.Event()
        calls = [asyncio.create_task(h.credentials(connection.id)) for _ in range(50)]
        await asyncio.sleep(0)  # let them all start before the IdP answers
        h.idp.gate.set()
        answers = await asyncio.gather(*calls)
        assert {answer.status_code for answer in answers} == {200}
        assert h.idp.refreshes == 1
        assert h.components.credentials.refreshes == 1
        tokens = {answer.json()["secrets"]["access_token"] for answer in answers}
        assert tokens == {h.idp.access_tokens[-1]}
        # Warm: no further refresh, no write.
        again = await h.credentials(connection.id)
        assert again.json()["secrets"]["access_token"] == h.idp.access_tokens[-1]
        assert h.idp.refreshes == 1
        async with db.transaction() as session:
            credential = await session.get(ConnectionCredential, connection.id)
            assert credential is not None
            assert credential.refresh_count == 1


async def test_clock_moving_past_the_leeway_triggers_a_proactive_refresh(db: Database) -> None:
    async with harness(db) as h:
        connection = await h.activate()
        await h.authorize(connection.id, expires_in=3600)
        first = (await h.credentials(connection.id)).json()["secrets"]["access_token"]
        h.clock.advance(seconds=3600 - 119)
        second = (await h.credentials(connection.id)).json()["secrets"]["access_token"]
        assert first != second
        assert h.idp.refreshes == 1


async def test_a_refused_token_is_renewed_once(db: Database) -> None:
    async with harness(db) as h:
        connection = await h.activate()
        await h.authorize(connection.id)
        token = (await h.credentials(connection.id)).json()["secrets"]["access_token"]
        refused = hashlib.sha256(token.encode()).hexdigest()
        renewed = await h.credentials(connection.id, refused_token_sha256=refused)
        assert renewed.json()["secrets"]["access_token"] != token
        # The same refusal again (a slower caller) does not refresh a second time.
        late = await h.credentials(connection.id, refused_token_sha256=refused)
        assert late.json()["secrets"]["access_token"] == renewed.json()["secrets"]["access_token"]
        assert h.idp.refreshes == 1
        bad = await h.credentials(connection.id, refused_token_sha256="not-a-hash")
        assert bad.status_code == 422


async def test_invalid_grant_makes_the_connection_need_reauth(db: Database) -> None:
    async with harness(db) as h:
        connection = await h.activate()
        await h.authorize(connection.id, expires_in=10)
        h.idp.refresh_tokens.clear()  # revoked at the vendor
        answer = await h.credentials(connection.id)
        assert answer.status_code == 409
        assert answer.json()["detail"]["reason_code"] == "connection_needs_reauth"
        assert await status_of(db, connection.id) is ConnectionStatus.NEEDS_REAUTH
        kind, payload = (await h.events())[-1]
        assert kind == NEEDS_REAUTH
        assert payload["reason_code"] == "invalid_grant"
        assert payload["previous_status"] == "configuring"
        assert await secret_rows(db, connection.id) == 0
        assert h.idp.invalid_grants == 1
        # Later callers get the 409 without another trip to the IdP.
        assert (await h.credentials(connection.id)).status_code == 409
        assert h.idp.invalid_grants == 1


async def test_two_replicas_refresh_a_connection_once(db: Database) -> None:
    """Two token services (two processes' worth of caches) on one store: the row lock and
    the re-read after it make the second see the first's refresh."""
    async with harness(db) as first, harness(db) as second:
        second.idp = first.idp  # one vendor
        second.components.vendor._http = first.components.vendor._http
        second.clock.now = first.clock.now
        connection = await first.activate()
        await first.authorize(connection.id, expires_in=30)
        answers = await asyncio.gather(
            *(first.credentials(connection.id) for _ in range(20)),
            *(second.credentials(connection.id) for _ in range(20)),
        )
        assert {answer.status_code for answer in answers} == {200}
        assert first.idp.refreshes == 1
        assert first.idp.invalid_grants == 0
        assert len({answer.json()["secrets"]["access_token"] for answer in answers}) == 1


async def test_revocation_revokes_at_the_vendor_and_wipes_the_secrets(db: Database) -> None:
    async with harness(db) as h:
        connection = await h.activate()
        await h.authorize(connection.id)
        refresh_token = next(iter(h.idp.refresh_tokens))
        assert (await h.credentials(connection.id)).status_code == 200
        response = await h.client.delete(f"/v1/connections/{connection.id}", headers=HEADERS)
        assert response.status_code == 200
        assert response.json()["vendor_revocation"] == "revoked"
        assert response.json()["connection"]["status"] == "revoked"
        assert h.idp.revoked == [refresh_token]
        assert await secret_rows(db, connection.id) == 0
        kind, payload = (await h.events())[-1]
        assert kind == REVOKED
        assert payload["vendor_revocation"] == "revoked"
        # The cache is gone with it: no credential after revocation.
        after = await h.credentials(connection.id)
        assert after.status_code == 409
        assert after.json()["detail"]["reason_code"] == "connection_revoked"
        assert (
            await h.client.delete(f"/v1/connections/{uuid.uuid4()}", headers=HEADERS)
        ).status_code == 404


async def test_netvisor_identity_is_handed_out_as_stored(db: Database) -> None:
    async with harness(db) as h:
        connection = await h.activate(provider="netvisor")
        stored = await h.client.post(
            f"/internal/v1/connections/{connection.id}/authorization",
            json={
                "kind": "netvisor",
                "vendor_account": "cust-1",
                "customer_id": "cust-1",
                "customer_key": "the-customer-key",
            },
            headers=HEADERS,
        )
        assert stored.status_code == 200
        body = (await h.credentials(connection.id)).json()
        assert body["kind"] == "netvisor"
        # The customer's key from the vault, our partner identity from auth's settings.
        assert body["secrets"] == {
            "customer_key": "the-customer-key",
            "partner_key": PARTNER_KEY,
        }
        assert body["attributes"] == {"customer_id": "cust-1", "partner_id": "LEDGERLINK"}
        assert body["expires_at"] is None


async def test_netvisor_without_our_partner_identity_is_a_clear_503(db: Database) -> None:
    unconfigured = NetvisorPartnerSettings(partner_id=None, partner_key=None)
    async with harness(db, config(netvisor=unconfigured)) as h:
        connection = await h.activate(provider="netvisor")
        stored = await h.client.post(
            f"/internal/v1/connections/{connection.id}/authorization",
            json={
                "kind": "netvisor",
                "vendor_account": "cust-1",
                "customer_id": "cust-1",
                "customer_key": "the-customer-key",
            },
            headers=HEADERS,
        )
        assert stored.status_code == 200
        answer = await h.credentials(connection.id)
        assert answer.status_code == 503
        assert answer.json()["detail"]["reason_code"] == "partner_unconfigured"
        assert "the-customer-key" not in answer.text


def test_clock_helper_moves() -> None:
    clock = Clock()
    start = clock()
    clock.advance(seconds=5)
    assert (clock() - start).total_seconds() == 5


async def test_a_machine_grant_is_fetched_and_renewed_with_the_connections_own_secret(
    db: Database,
) -> None:
    async with harness(db) as h:
        connection = await h.activate()
        stored = await h.client.post(
            f"/internal/v1/connections/{connection.id}/authorization",
            json={
                "kind": "client_credentials",
                "vendor_account": "tenant-9",
                "client_id": "isv-client",
                "client_secret": "connection-client-secret",
                "tenant_id": "tenant-9",
            },
            headers=HEADERS,
        )
        assert stored.status_code == 200, stored.text
        first = (await h.credentials(connection.id)).json()
        assert first["kind"] == "bearer"
        assert first["secrets"] == {"access_token": h.idp.access_tokens[-1]}
        assert first["attributes"] == {"tenant_id": "tenant-9"}
        assert h.idp.machine_grants == 1
        h.clock.advance(seconds=600 - 100)  # inside the leeway
        second = (await h.credentials(connection.id)).json()
        assert second["secrets"]["access_token"] != first["secrets"]["access_token"]
        assert h.idp.machine_grants == 2
        # The client secret is refused (rotated at the vendor): needs_reauth.
        h.idp.machine_secret = "rotated"
        h.clock.advance(seconds=600)
        refused = await h.credentials(connection.id)
        assert refused.status_code == 409
        kind, payload = (await h.events())[-1]
        assert kind == NEEDS_REAUTH
        assert payload["reason_code"] == "invalid_client"
        async with db.transaction() as session:
            stored_text = [
                row.ciphertext
                for row in (await session.execute(select(ConnectionSecret))).scalars()
            ]
        assert all("connection-client-secret" not in text for text in stored_text)


async def test_reauthorizing_an_active_connection_returns_it_to_active(db: Database) -> None:
    async with harness(db) as h:
        connection = await h.activate()
        await h.authorize(connection.id, account="tenant-1")
        async with db.transaction() as session:
            row = await session.get(Connection, connection.id)
            assert row is not None
            row.status = ConnectionStatus.ACTIVE
            row.first_import_completed_at = h.clock.now
        h.idp.refresh_tokens.clear()
        h.clock.advance(seconds=3600)
        assert (await h.credentials(connection.id)).status_code == 409
        start = await h.client.post(
            f"/internal/v1/connections/{connection.id}/authorization/start", headers=HEADERS
        )
        assert start.status_code == 409
        assert start.json()["detail"]["reason_code"] == "connection_needs_reauth"
        again = await h.authorize(connection.id, account="tenant-1")
        assert again.json()["status"] == "active"
        kind, payload = (await h.events())[-1]
        assert kind == "ledgerlink.connection.reauthorized.v1"
        assert payload["status"] == "active"
        assert (await h.credentials(connection.id)).status_code == 200


async def test_an_unavailable_token_endpoint_keeps_a_still_valid_token(db: Database) -> None:
    async with harness(db) as h:
        connection = await h.activate()
        await h.authorize(connection.id, expires_in=60)  # due, but valid for a minute
        h.idp.unavailable = True
        still = await h.credentials(connection.id)
        assert still.status_code == 200
        assert still.json()["secrets"]["access_token"] == h.idp.access_tokens[-1]
        h.clock.advance(seconds=61)  # now expired: nothing valid to give
        gone = await h.credentials(connection.id)
        assert gone.status_code == 503
        assert gone.json()["detail"]["reason_code"] == "vendor_unavailable"
        assert await status_of(db, connection.id) is ConnectionStatus.CONFIGURING
        h.idp.unavailable = False
        assert (await h.credentials(connection.id)).status_code == 200
        assert h.idp.refreshes == 1
