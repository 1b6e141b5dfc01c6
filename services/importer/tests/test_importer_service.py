"""ImportService against a real, migrated store: jobs, connections and the outbox."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from sqlalchemy import select

from ledgerlink.importer.domain.import_rules import (
    BusinessIdMismatchError,
    FileLocationMissingError,
    ReplaceReasonMissingError,
)
from ledgerlink.importer.services.imports import ImportService
from ledgerlink.importer.storage.models import (
    Connection,
    ImportJob,
    ImportStatus,
    ImportTrigger,
    messaging,
)
from ledgerlink.shared.db import Database
from ledgerlink.shared.events import ConnectionActivatedV1, ImportRequestedV1, Provider
from ledgerlink.shared.messaging.outbox import Outbox

BUSINESS_ID = "0112038-9"
OTHER_BUSINESS_ID = "1927400-1"
ENVIRONMENT = uuid.UUID("0b7e4b8e-5d36-4b8a-a8d4-1f0f3e2b9c10")


def utc(moment: datetime) -> datetime:
    """SQLite returns stored UTC times without their offset."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def outbox() -> Outbox:
    return Outbox(messaging, source="ledgerlink/importer")


def activated(
    connection_id: uuid.UUID, *, provider: Provider = Provider.NETVISOR
) -> ConnectionActivatedV1:
    return ConnectionActivatedV1(
        connection_id=connection_id,
        environment_id=ENVIRONMENT,
        provider=provider,
        business_id=BUSINESS_ID,
        company_name="Nokia Oyj",
    )


async def outbox_rows(db: Database) -> list[dict[str, Any]]:
    async with db.transaction() as session:
        rows = (
            (await session.execute(select(messaging.outbox).order_by(messaging.outbox.c.id)))
            .mappings()
            .all()
        )
    return [dict(row) for row in rows]


async def jobs(db: Database) -> list[ImportJob]:
    async with db.transaction() as session:
        result = await session.execute(select(ImportJob))
        return list(result.scalars().all())


async def activate(db: Database, event: ConnectionActivatedV1, event_id: str) -> ImportJob:
    async with db.transaction() as session:
        return await ImportService(session, outbox()).connection_activated(
            event, event_id=event_id, activated_at=datetime(2026, 5, 4, 12, 0, tzinfo=UTC)
        )


async def request(db: Database, event: ImportRequestedV1, event_id: str) -> ImportJob:
    async with db.transaction() as session:
        return await ImportService(session, outbox()).import_requested(event, event_id=event_id)


async def test_activation_records_the_connection_and_queues_a_full_import(db: Database) -> None:
    connection_id = uuid.uuid4()
    job = await activate(db, activated(connection_id), "evt-activated-1")

    async with db.transaction() as session:
        connection = await session.get(Connection, connection_id)
    assert connection is not None
    assert connection.environment_id == ENVIRONMENT
    assert connection.provider == "netvisor"
    assert connection.business_id == BUSINESS_ID
    assert connection.company_name == "Nokia Oyj"
    assert utc(connection.activated_at) == datetime(2026, 5, 4, 12, 0, tzinfo=UTC)
    assert connection.last_activation_event_id == "evt-activated-1"

    [stored] = await jobs(db)
    assert stored.id == job.id
    assert stored.connection_id == connection_id
    assert stored.business_id == BUSINESS_ID
    assert stored.provider == "netvisor"
    assert stored.scope == ["companies", "accounts", "dimensions", "ledger"]
    assert stored.trigger is ImportTrigger.CONNECTION_ACTIVATED
    assert stored.status is ImportStatus.QUEUED
    assert stored.file_location is None
    assert stored.requested_event_id == "evt-activated-1"

    [row] = await outbox_rows(db)
    assert row["event_type"] == "ledgerlink.import.queued.v1"
    assert row["topic"] == "ledgerlink.imports"
    assert row["key"] == BUSINESS_ID
    assert row["published_at"] is None
    assert row["headers"]["ce"]["ce_source"] == "ledgerlink/importer"
    assert row["headers"]["ce"]["ce_subject"] == str(job.id)
    assert json.loads(row["payload"]) == {
        "import_id": str(job.id),
        "connection_id": str(connection_id),
        "business_id": BUSINESS_ID,
        "provider": "netvisor",
        "scope": ["companies", "accounts", "dimensions", "ledger"],
        "trigger": "connection_activated",
    }


async def test_repeated_activation_updates_the_connection_and_queues_another_job(
    db: Database,
) -> None:
    connection_id = uuid.uuid4()
    await activate(db, activated(connection_id), "evt-1")
    renamed = activated(connection_id).model_copy(update={"company_name": "Nokia"})
    await activate(db, renamed, "evt-2")

    async with db.transaction() as session:
        connection = await session.get(Connection, connection_id)
    assert connection is not None
    assert connection.company_name == "Nokia"
    assert connection.last_activation_event_id == "evt-2"
    assert sorted(job.requested_event_id for job in await jobs(db)) == ["evt-1", "evt-2"]
    assert len(await outbox_rows(db)) == 2


async def test_activation_time_is_stored_in_utc(db: Database) -> None:
    connection_id = uuid.uuid4()
    helsinki_summer = timezone(timedelta(hours=3))
    async with db.transaction() as session:
        await ImportService(session, outbox()).connection_activated(
            activated(connection_id),
            event_id="evt-tz",
            activated_at=datetime(2026, 5, 4, 15, 0, tzinfo=helsinki_summer),
        )
    async with db.transaction() as session:
        connection = await session.get(Connection, connection_id)
    assert connection is not None
    assert utc(connection.activated_at) == datetime(2026, 5, 4, 12, 0, tzinfo=UTC)


async def test_import_request_for_a_known_connection(db: Database) -> None:
    connection_id = uuid.uuid4()
    await activate(db, activated(connection_id), "evt-activated")
    job = await request(
        db,
        ImportRequestedV1(
            connection_id=connection_id,
            business_id=BUSINESS_ID,
            provider=Provider.NETVISOR,
            scope=("ledger", "accounts"),
        ),
        "evt-requested",
    )

    async with db.transaction() as session:
        stored = await session.get(ImportJob, job.id)
    assert stored is not None
    assert stored.trigger is ImportTrigger.IMPORT_REQUESTED
    assert stored.status is ImportStatus.QUEUED
    assert stored.scope == ["accounts", "ledger"]
    assert stored.requested_event_id == "evt-requested"

    rows = await outbox_rows(db)
    assert [row["event_type"] for row in rows] == ["ledgerlink.import.queued.v1"] * 2
    payload = json.loads(rows[-1]["payload"])
    assert payload["import_id"] == str(job.id)
    assert payload["scope"] == ["accounts", "ledger"]
    assert payload["trigger"] == "import_requested"


async def test_import_request_for_a_file_provider_records_the_file(db: Database) -> None:
    connection_id = uuid.uuid4()
    job = await request(
        db,
        ImportRequestedV1(
            connection_id=connection_id,
            business_id=BUSINESS_ID,
            provider=Provider.SAF_T,
            file_location="s3://uploads/0112038-9/2026-05.xml",
        ),
        "evt-file",
    )
    [stored] = await jobs(db)
    assert stored.id == job.id
    assert stored.file_location == "s3://uploads/0112038-9/2026-05.xml"
    assert stored.provider == "saf_t"
    [row] = await outbox_rows(db)
    assert json.loads(row["payload"])["provider"] == "saf_t"


async def test_import_request_for_an_unknown_connection_is_recorded(db: Database) -> None:
    connection_id = uuid.uuid4()
    job = await request(
        db,
        ImportRequestedV1(
            connection_id=connection_id, business_id=BUSINESS_ID, provider=Provider.PROCOUNTOR
        ),
        "evt-early",
    )
    async with db.transaction() as session:
        assert await session.get(Connection, connection_id) is None
    [stored] = await jobs(db)
    assert stored.id == job.id
    assert stored.connection_id == connection_id
    assert len(await outbox_rows(db)) == 1


async def test_file_provider_without_file_location_raises_and_writes_nothing(
    db: Database,
) -> None:
    with pytest.raises(FileLocationMissingError, match="has no file_location; sie is a file"):
        await request(
            db,
            ImportRequestedV1(
                connection_id=uuid.uuid4(), business_id=BUSINESS_ID, provider=Provider.SIE
            ),
            "evt-no-file",
        )
    assert await jobs(db) == []
    assert await outbox_rows(db) == []


async def test_business_id_mismatch_raises_and_writes_nothing(db: Database) -> None:
    connection_id = uuid.uuid4()
    await activate(db, activated(connection_id), "evt-activated")
    with pytest.raises(BusinessIdMismatchError) as info:
        await request(
            db,
            ImportRequestedV1(
                connection_id=connection_id,
                business_id=OTHER_BUSINESS_ID,
                provider=Provider.NETVISOR,
            ),
            "evt-mismatch",
        )
    assert str(info.value) == (
        f"import request for connection {connection_id} names business ID "
        f"{OTHER_BUSINESS_ID} but the connection belongs to {BUSINESS_ID}"
    )
    assert [job.requested_event_id for job in await jobs(db)] == ["evt-activated"]
    assert len(await outbox_rows(db)) == 1


# ----------------------------------------------------------------------- issue 10


def test_an_import_request_of_an_older_producer_asks_for_no_replacement() -> None:
    # The v1 payload as producers sent it before replace/replace_reason existed.
    event = ImportRequestedV1.model_validate_json(
        json.dumps(
            {
                "connection_id": str(uuid.uuid4()),
                "business_id": BUSINESS_ID,
                "provider": "sie",
                "file_location": "books.se",
            }
        )
    )

    assert (event.replace, event.replace_reason) == (False, None)


async def test_an_import_request_to_replace_records_its_reason(db: Database) -> None:
    await request(
        db,
        ImportRequestedV1(
            connection_id=uuid.uuid4(),
            business_id=BUSINESS_ID,
            provider=Provider.SIE,
            file_location="books.se",
            replace=True,
            replace_reason="re-exported after the audit",
        ),
        "evt-replace",
    )

    [stored] = await jobs(db)
    assert stored.replace_reason == "re-exported after the audit"


async def test_an_import_request_to_replace_without_a_reason_raises_and_writes_nothing(
    db: Database,
) -> None:
    with pytest.raises(ReplaceReasonMissingError, match="replace=true needs a reason"):
        await request(
            db,
            ImportRequestedV1(
                connection_id=uuid.uuid4(),
                business_id=BUSINESS_ID,
                provider=Provider.SIE,
                file_location="books.se",
                replace=True,
            ),
            "evt-replace-no-reason",
        )

    assert await jobs(db) == []
    assert await outbox_rows(db) == []
