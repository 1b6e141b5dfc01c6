"""The connection lifecycle: the pure state machine, import outcomes (consumed from
``ledgerlink.imports``), expiry of pending activations (injected clock) and the revoke
command."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import pytest
from auth_token_kit import T0, config, harness

from ledgerlink.auth.__main__ import operator_command
from ledgerlink.auth.config import Config
from ledgerlink.auth.domain.lifecycle import (
    TERMINAL,
    TRANSITIONS,
    USABLE,
    ConnectionStatus,
    InvalidTransitionError,
    activation_expired,
    check_transition,
    needs_refresh,
    status_after_authorization,
)
from ledgerlink.auth.handlers.kafka import register_kafka_handlers
from ledgerlink.auth.services.expiry import ActivationExpiry
from ledgerlink.auth.storage.models import Connection, messaging
from ledgerlink.shared.db import Database
from ledgerlink.shared.events import ImportCompletedV1, ImportCountsV1, ImportFailedV1
from ledgerlink.shared.messaging.consumer import Outcome
from ledgerlink.shared.messaging.outbox import Outbox
from ledgerlink.shared.pytest_plugin import StandInProcess, raw_record
from ledgerlink.shared.runtime import ProcessContext

S = ConnectionStatus


@pytest.mark.parametrize(
    ("current", "wanted"),
    [
        (S.PENDING_AUTHORIZATION, S.AUTHORIZING),
        (S.AUTHORIZING, S.CONFIGURING),
        (S.CONFIGURING, S.ACTIVE),
        (S.ACTIVE, S.NEEDS_REAUTH),
        (S.NEEDS_REAUTH, S.ACTIVE),
        (S.PENDING_AUTHORIZATION, S.EXPIRED),
        (S.ACTIVE, S.REVOKED),
    ],
)
def test_allowed_transitions(current: ConnectionStatus, wanted: ConnectionStatus) -> None:
    check_transition(current, wanted)


@pytest.mark.parametrize(
    ("current", "wanted"),
    [
        (S.PENDING_AUTHORIZATION, S.ACTIVE),
        (S.PENDING_AUTHORIZATION, S.CONFIGURING),
        (S.ACTIVE, S.EXPIRED),
        (S.REVOKED, S.ACTIVE),
        (S.EXPIRED, S.AUTHORIZING),
        (S.REJECTED, S.PENDING_AUTHORIZATION),
        (S.NEEDS_REAUTH, S.AUTHORIZING),
    ],
)
def test_refused_transitions(current: ConnectionStatus, wanted: ConnectionStatus) -> None:
    with pytest.raises(InvalidTransitionError, match=f"{current.value} cannot become"):
        check_transition(current, wanted)


def test_terminal_states_lead_nowhere_and_every_state_has_rules() -> None:
    assert set(TRANSITIONS) == set(ConnectionStatus)
    assert all(TRANSITIONS[state] == frozenset() for state in TERMINAL)
    assert {S.CONFIGURING, S.ACTIVE} == USABLE
    assert status_after_authorization(S.NEEDS_REAUTH, first_import_done=True) is S.ACTIVE
    assert status_after_authorization(S.NEEDS_REAUTH, first_import_done=False) is S.CONFIGURING
    assert status_after_authorization(S.AUTHORIZING, first_import_done=True) is S.CONFIGURING


def test_expiry_and_refresh_rules() -> None:
    ttl = timedelta(hours=72)
    assert activation_expired(S.PENDING_AUTHORIZATION, T0, T0 + ttl + timedelta(seconds=1), ttl)
    assert not activation_expired(S.PENDING_AUTHORIZATION, T0, T0 + ttl, ttl)
    assert not activation_expired(S.CONFIGURING, T0, T0 + 2 * ttl, ttl)
    leeway = timedelta(seconds=120)
    assert needs_refresh(T0 + leeway, T0, leeway)
    assert not needs_refresh(T0 + leeway + timedelta(seconds=1), T0, leeway)
    assert not needs_refresh(None, T0, leeway)


def wire(db: Database) -> tuple[StandInProcess, Any]:
    process = StandInProcess(db, messaging, "ledgerlink/auth")
    register_kafka_handlers(cast(ProcessContext, process), Config())
    [consumer] = process.consumers
    return process, consumer


def completed(connection_id: uuid.UUID) -> ImportCompletedV1:
    return ImportCompletedV1(
        import_id=uuid.uuid4(),
        connection_id=connection_id,
        business_id="33011433",
        company_name="Acme BV",
        provider="visma_net",  # type: ignore[arg-type]
        outcome="imported",
        fiscal_year_start=datetime(2025, 1, 1, tzinfo=UTC).date(),
        fiscal_year_end=datetime(2025, 12, 31, tzinfo=UTC).date(),
        counts=ImportCountsV1(accounts=1, dimensions=0, objects=0, vouchers=1, lines=2),
        periods=("2025-01",),
        reconciliation_status="balanced",
    )


async def connection_row(db: Database, connection_id: uuid.UUID) -> Connection:
    async with db.transaction() as session:
        connection = await session.get(Connection, connection_id)
        assert connection is not None
        return connection


async def test_first_import_makes_a_configuring_connection_active(db: Database) -> None:
    async with harness(db) as h:
        connection = await h.activate()
        await h.authorize(connection.id)
        _, consumer = wire(db)
        failed = ImportFailedV1(
            import_id=uuid.uuid4(),
            connection_id=connection.id,
            business_id="33011433",
            provider="visma_net",  # type: ignore[arg-type]
            reason_code="vendor_unavailable",
            message="Visma.net answered 503",
        )
        assert await consumer.process(raw_record(failed, key="33011433")) is Outcome.PROCESSED
        row = await connection_row(db, connection.id)
        assert row.status is S.CONFIGURING
        assert row.reason_code == "vendor_unavailable"
        assert row.message == "Visma.net answered 503"

        first = completed(connection.id)
        assert await consumer.process(raw_record(first, key="33011433", offset=1)) is (
            Outcome.PROCESSED
        )
        row = await connection_row(db, connection.id)
        assert row.status is S.ACTIVE
        assert row.reason_code is None
        kind, payload = (await h.events())[-1]
        assert kind == "ledgerlink.connection.configured.v1"
        assert payload["import_id"] == str(first.import_id)
        # A later import changes nothing and emits nothing.
        count = len(await h.events())
        second = raw_record(completed(connection.id), key="33011433", offset=2)
        assert await consumer.process(second) is Outcome.PROCESSED
        assert len(await h.events()) == count
        # Queued/started/reports events share the topic and are ignored, not dead-lettered.
        # An import for an unknown connection is ignored too.
        assert await consumer.process(raw_record(completed(uuid.uuid4()), key="x")) is (
            Outcome.PROCESSED
        )


async def test_pending_activations_expire_after_their_time(db: Database) -> None:
    async with harness(db) as h:
        stale = await h.activate(business_id="33011433")
        waiting = await h.activate(business_id="33011434")
        authorised = await h.activate(business_id="33011435")
        await h.authorize(authorised.id)
        async with db.transaction() as session:
            for connection_id, age in ((stale.id, 73), (waiting.id, 71), (authorised.id, 100)):
                row = await session.get(Connection, connection_id)
                assert row is not None
                row.updated_at = T0 - timedelta(hours=age)
        expiry = ActivationExpiry(
            db,
            Outbox(messaging, source="ledgerlink/auth"),
            ttl=timedelta(hours=72),
            interval=60,
            clock=lambda: T0,
        )
        assert await expiry.run_once() == 1
        assert (await connection_row(db, stale.id)).status is S.EXPIRED
        assert (await connection_row(db, waiting.id)).status is S.PENDING_AUTHORIZATION
        assert (await connection_row(db, authorised.id)).status is S.CONFIGURING
        kind, payload = (await h.events())[-1]
        assert kind == "ledgerlink.connection.expired.v1"
        assert payload["connection_id"] == str(stale.id)
        assert await expiry.run_once() == 0
        # A new activation after expiry starts a new connection.
        again = await h.activate(business_id="33011433")
        assert again.id != stale.id


async def test_expiry_worker_starts_and_stops(db: Database) -> None:
    expiry = ActivationExpiry(
        db, Outbox(messaging, source="ledgerlink/auth"), ttl=timedelta(hours=1), interval=3600
    )
    expiry.start()
    await asyncio.wait_for(expiry.stop(), timeout=10)


async def test_revoke_command_wipes_and_reports(
    db: Database,
    database_url: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The command configures the process's logging onto this test's captured stderr,
    # which closes after the test; later tests' log lines would then fail to print.
    monkeypatch.setattr("ledgerlink.auth.__main__.configure_logging", lambda *_: None)
    async with harness(db) as h:
        connection = await h.activate(provider="procountor")
        await h.authorize(connection.id)
    cfg = config(database={"url": database_url})
    code = await asyncio.to_thread(
        operator_command, ["connections", "revoke", str(connection.id)], cfg
    )
    assert code == 0
    # Procountor has no revocation endpoint configured: wiped here only.
    assert json.loads(capsys.readouterr().out) == {
        "connection_id": str(connection.id),
        "status": "revoked",
        "vendor_revocation": "not_supported",
    }
    assert (await connection_row(db, connection.id)).status is S.REVOKED
    missing = await asyncio.to_thread(
        operator_command, ["connections", "revoke", str(uuid.uuid4())], cfg
    )
    assert missing == 1
    assert json.loads(capsys.readouterr().out)["error"] == "not_found"
