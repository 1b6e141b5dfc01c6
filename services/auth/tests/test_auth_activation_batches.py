"""Set-based activations (``ActivationService.activate_many``, the activation route's batch
handler) leave exactly what the per-event handler leaves.

The same stream of activation requests goes through auth's consumer three ways, each on
a freshly emptied store: record by record (``EventConsumer.process``, one transaction
each), in one batch with the batch handler switched off (a savepoint per event), and in
one batch with it (the default). The environments, connections, activation links,
outbox rows, inbox, outcomes and dead letters must be the same, ignoring generated ids
(each is replaced by what it names), timestamps and link tokens.
"""

from __future__ import annotations

import json
import logging
import re
import uuid
from typing import Any, cast

import pytest
from sqlalchemy import String, event, select, text, type_coerce

from ledgerlink.auth.config import Config
from ledgerlink.auth.handlers.kafka import register_kafka_handlers
from ledgerlink.auth.storage.models import (
    ActivationLink,
    Connection,
    Environment,
    messaging,
    metadata,
)
from ledgerlink.shared.db import Database
from ledgerlink.shared.events import ActivationRequestedV1
from ledgerlink.shared.messaging.consumer import EventConsumer, Outcome
from ledgerlink.shared.messaging.dead_letters import DLQ_ERROR_CLASS, RawRecord
from ledgerlink.shared.pytest_plugin import StandInProcess, raw_record
from ledgerlink.shared.runtime import ProcessContext

#: Valid Finnish business IDs (Y-tunnus), in the normal form.
NEW_FILE = "1000000-4"
NEW_API = "1000001-2"
KNOWN_FILE = "1000002-0"
KNOWN_API = "1000003-9"
POISONED = "1000004-7"
OTHERS = ["1000005-5", "1000006-3", "1000007-1"]
INVALID = "1234567-0"  # wrong check digit: rejected, not an error


def _wire(db: Database, *, batch_handlers: bool) -> tuple[StandInProcess, EventConsumer]:
    process = StandInProcess(
        db, messaging, "ledgerlink/auth", handler_attempts=2, batch_handlers=batch_handlers
    )
    register_kafka_handlers(cast(ProcessContext, process), Config())
    [consumer] = process.consumers
    return process, consumer


def _request(offset: int, business_id: str, provider: str, **changes: Any) -> RawRecord:
    data = ActivationRequestedV1.model_validate(
        {
            "provider": provider,
            "business_id": business_id,
            "country": "FI",
            "company_name": f"Company {business_id} Oy",
            "requested_by": {"email": "cfo@example.fi", "name": "Maija"},
            "product": "planning",
            **changes,
        }
    )
    return raw_record(data, key=business_id, offset=offset)


#: Already in the store before the stream: one active (file) connection, one waiting for
#: authorization (API), one whose row no handler can read (a status no release knows).
SEEDS = [
    _request(0, KNOWN_FILE, "sie"),
    _request(1, KNOWN_API, "netvisor"),
]

STREAM = [
    _request(10, NEW_FILE, "sie"),  # new company, file provider: active + activated
    _request(11, NEW_API, "netvisor"),  # new company, API provider: pending + link
    _request(12, KNOWN_FILE, "sie", company_name="Renamed Oy"),  # repeat of a stored one
    _request(13, POISONED, "sie"),  # poison: its stored connection cannot be read
    _request(14, KNOWN_API, "netvisor"),  # repeat of a pending one: no event
    _request(15, NEW_FILE, "sie"),  # the same company twice in one batch
    _request(16, INVALID, "sie"),  # invalid business ID: rejected
    _request(17, NEW_API, "netvisor", store_reference="order-2"),  # twice, pending
    _request(18, "556036-0793", "sie", country="SE"),  # another country
    _request(19, NEW_API, "sie"),  # same company, other provider: a second connection
    _request(20, POISONED, "sie"),  # behind the poison (same key): after it, same fate
    _request(21, "12345", "sie"),  # invalid format: rejected
]


async def _seed(db: Database) -> None:
    """Empty the store, then the seeds through the per-record path, and a connection row
    for POISONED whose status no code knows (so reading it fails, on every engine)."""
    async with db.transaction() as session:
        for table in reversed(metadata.sorted_tables):
            await session.execute(table.delete())
    _, consumer = _wire(db, batch_handlers=False)
    for record in SEEDS:
        assert await consumer.process(record) == Outcome.PROCESSED
    environment_id = uuid.uuid4()
    async with db.transaction() as session:
        await session.execute(
            Environment.__table__.insert().values(  # type: ignore[attr-defined]
                id=environment_id,
                country="FI",
                business_id=POISONED,
                company_name="Poisoned Oy",
                created_at=text("CURRENT_TIMESTAMP"),
            )
        )
        await session.execute(
            text(
                "INSERT INTO connections (id, environment_id, provider, product, country, "
                "business_id_raw, business_id, company_name, requested_by_email, "
                "requested_by_name, status, activation_event_id, created_at, updated_at) "
                "VALUES (:id, :environment_id, 'sie', 'planning', 'FI', :business_id, "
                ":business_id, 'Poisoned Oy', 'cfo@example.fi', 'Maija', 'from_the_future', "
                "'seed', CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"
            ),
            {
                "id": uuid.uuid4() if db.dialect == "postgresql" else uuid.uuid4().hex,
                "environment_id": environment_id
                if db.dialect == "postgresql"
                else environment_id.hex,
                "business_id": POISONED,
            },
        )


_TOKEN = re.compile(r"/activate/link/[A-Za-z0-9_-]+")


async def _snapshot(db: Database) -> dict[str, Any]:
    """The store with every generated id replaced by what it names."""
    async with db.transaction() as session:
        environments = (await session.execute(select(Environment))).scalars().all()
        table = Connection.__table__  # type: ignore[attr-defined]
        # the status as stored: the poisoned row's is no ConnectionStatus
        columns = [
            type_coerce(column, String()).label("status") if column.name == "status" else column
            for column in table.c
        ]
        connections = (await session.execute(select(*columns))).mappings().all()
        links = (await session.execute(select(ActivationLink))).scalars().all()
        outbox = (
            (await session.execute(select(messaging.outbox).order_by(messaging.outbox.c.id)))
            .mappings()
            .all()
        )
        inbox = set(await session.scalars(select(messaging.inbox.c.event_id)))
    names: dict[str, str] = {}
    for environment in environments:
        names[str(environment.id)] = f"environment {environment.country} {environment.business_id}"
    for row in connections:
        # the event that last activated it names it (each event makes or touches one)
        names[str(row["id"])] = f"connection of {row['activation_event_id']}"

    def named(value: Any) -> Any:
        if isinstance(value, uuid.UUID) or (isinstance(value, str) and value in names):
            return names.get(str(value), "?")
        return value

    ignored = {"id", "created_at", "updated_at", "claimed_at"}
    return {
        "environments": sorted(
            (environment.country, environment.business_id, environment.company_name)
            for environment in environments
        ),
        "connections": sorted(
            tuple(
                sorted((key, str(named(value))) for key, value in row.items() if key not in ignored)
            )
            for row in connections
        ),
        "links": sorted(
            (names[str(link.connection_id)], link.used_at, link.expires_at - link.created_at)
            for link in links
        ),
        "outbox": [
            (
                row["event_type"],
                row["topic"],
                row["key"],
                named(row["headers"]["ce"].get("ce_subject")),
                {
                    field: _TOKEN.sub("/activate/link/<token>", named(value))
                    if isinstance(value, str)
                    else value
                    for field, value in json.loads(row["payload"]).items()
                    if field != "expires_at"
                },
                row["published_at"],
            )
            for row in outbox
        ],
        "inbox": inbox,
    }


async def _run(
    db: Database, mode: str, stream: list[RawRecord]
) -> tuple[list[Outcome], list[str], dict[str, Any]]:
    await _seed(db)
    process, consumer = _wire(db, batch_handlers=mode == "batch handler")
    if mode == "record by record":
        outcomes = [await consumer.process(record) for record in stream]
    else:
        outcomes = await consumer.process_batch(stream)
    letters = [
        f"{dict(letter.headers)['ce_id'].decode()} {dict(letter.headers)[DLQ_ERROR_CLASS].decode()}"
        for letter in process.dead_letters
    ]
    return outcomes, letters, await _snapshot(db)


def _fell_back(caplog: pytest.LogCaptureFixture) -> int:
    """Runs the batch handler gave back to the per-event handler, or batches whose
    transaction failed as a whole (those went record by record: the batch path never ran)."""
    return sum(
        record.getMessage().startswith(("batch handler failed", "batch failed as a whole"))
        for record in caplog.records
    )


async def test_batch_handler_leaves_what_the_per_event_handler_leaves(
    db: Database, caplog: pytest.LogCaptureFixture
) -> None:
    stream = [record for record in STREAM if record.key != POISONED.encode()]
    caplog.set_level(logging.WARNING)
    by_record = await _run(db, "record by record", stream)
    by_savepoint = await _run(db, "savepoint per event", stream)
    assert _fell_back(caplog) == 0
    by_batch = await _run(db, "batch handler", stream)
    assert _fell_back(caplog) == 0  # the batch handler did the work

    outcomes, letters, store = by_record
    assert outcomes == [Outcome.PROCESSED] * len(stream)
    assert letters == []
    assert [row[0].split(".")[2] for row in store["outbox"]] == [
        "activated",  # seed KNOWN_FILE
        "activation_link_issued",  # seed KNOWN_API
        "activated",  # NEW_FILE
        "activation_link_issued",  # NEW_API
        "activated",  # KNOWN_FILE again
        "activated",  # NEW_FILE again
        "rejected",  # INVALID
        "activated",  # the Swedish company
        "activated",  # NEW_API with a file provider
        "rejected",  # "12345"
    ]
    assert len(store["environments"]) == 6  # 2 seeds, POISONED's, 2 new, the Swedish one
    assert len(store["links"]) == 2
    assert by_savepoint == by_record
    assert by_batch == by_record


async def test_a_poison_event_makes_the_batch_fall_back_to_the_per_event_handler(
    db: Database, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    by_record = await _run(db, "record by record", STREAM)
    assert _fell_back(caplog) == 0
    by_batch = await _run(db, "batch handler", STREAM)
    assert _fell_back(caplog) == 1

    outcomes, letters, store = by_record
    poisoned = [index for index, record in enumerate(STREAM) if record.key == POISONED.encode()]
    assert [
        index for index, outcome in enumerate(outcomes) if outcome is Outcome.DEAD_LETTERED
    ] == poisoned
    assert [letter.split()[1] for letter in letters] == ["LookupError", "LookupError"]
    assert len(store["inbox"]) == len(SEEDS) + len(STREAM) - 2
    assert by_batch == by_record


async def test_batch_handler_is_used_for_consecutive_activations(db: Database) -> None:
    """The batch path really is set-based: a run of activations costs a fixed number of
    statements, not a few per event."""
    await _seed(db)
    _, consumer = _wire(db, batch_handlers=True)
    statements: list[str] = []

    def count(*args: Any) -> None:
        statements.append(str(args[2]).split()[0])

    engine = db.engine.sync_engine
    event.listen(engine, "before_cursor_execute", count)
    try:
        stream = [
            _request(100 + index, business_id, "sie")
            for index, business_id in enumerate([NEW_FILE, KNOWN_FILE, NEW_FILE, *OTHERS])
        ]
        outcomes = await consumer.process_batch(stream)
    finally:
        event.remove(engine, "before_cursor_execute", count)
    assert outcomes == [Outcome.PROCESSED] * len(stream)
    inserts = [statement for statement in statements if statement == "INSERT"]
    selects = [statement for statement in statements if statement == "SELECT"]
    # environments, connections, outbox, inbox: one insert each; inbox check, environments
    # and live connections: one select each
    assert len(inserts) <= 4, statements
    assert len(selects) <= 3, statements
