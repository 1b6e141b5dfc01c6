"""Payroll exports (the journal-exporter's services) against the sandbox's Nmbrs and Visma.net
over real HTTP, on a real store.

Visma.net's expected content is computed from the Nmbrs sandbox's run entries in the test
(:func:`payroll_kit.expected_batches`), not with the exporter's own code.
"""

from __future__ import annotations

import asyncio
import csv
import dataclasses
import hashlib
import io
import json
import uuid
from collections.abc import AsyncIterator, Collection
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Literal

import httpx
import pytest
from fastapi import FastAPI
from payroll_kit import (
    SERVICE_TOKEN,
    PayrollWorld,
    actual_batches,
    expected_batches,
    payroll_world,
    post_all,
)
from pydantic import SecretStr
from sqlalchemy import select

from ledgerlink.journal_exporter.config import PayrollExportSettings, PayrollSigninSettings
from ledgerlink.journal_exporter.handlers.payroll_web import register_payroll_pages
from ledgerlink.journal_exporter.main import MIGRATIONS
from ledgerlink.journal_exporter.services.journals import JournalService
from ledgerlink.journal_exporter.services.payroll import (
    ExportRefusedError,
    ExportService,
    MappingDraft,
    MappingRefusedError,
    MappingService,
)
from ledgerlink.journal_exporter.storage.auth_sessions import SignedIn
from ledgerlink.journal_exporter.storage.models import (
    PayrollMapping,
    PostingStatus,
    messaging,
    metadata,
)
from ledgerlink.journal_exporter.storage.repository import ConnectionRepository
from ledgerlink.journal_exporter.storage.vendors import VendorGateway
from ledgerlink.sandbox.faults import FaultPlan
from ledgerlink.sandbox.payroll import payroll_company
from ledgerlink.sandbox.vendors import nmbrs as sandbox_nmbrs
from ledgerlink.shared.config import TokenServiceSettings
from ledgerlink.shared.db import Database
from ledgerlink.shared.events import ConnectionActivatedV1, JournalReadyV1, Provider
from ledgerlink.shared.messaging.outbox import Outbox
from ledgerlink.shared.pytest_plugin import define_store_fixtures

T0 = datetime(2026, 1, 20, 9, 0, tzinfo=UTC)

# The journal-exporter's store, migrated, on PostgreSQL and SQLite (its own tests' fixture;
# these tests live here because they run the sandbox, another service).
database_url, db = define_store_fixtures(MIGRATIONS, metadata, "payroll-export-test")


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@dataclasses.dataclass
class Exporter:
    world: PayrollWorld
    mappings: MappingService
    exports: ExportService
    gateway: VendorGateway
    clock: Clock
    db: Database

    def draft(self, **changes: object) -> MappingDraft:
        base = MappingDraft(
            name="Payroll NL",
            nmbrs_connection_id=self.world.nmbrs_connection,
            nmbrs_company_id=self.world.nmbrs_company,
            vismanet_connection_id=self.world.visma_connection,
            vismanet_company_id=self.world.visma_company,
            cost_centre_description="Kostenplaats",
            cost_unit_description="Kostendrager",
        )
        return dataclasses.replace(base, **changes)  # type: ignore[arg-type]

    async def mapping(self, **changes: object) -> PayrollMapping:
        return await self.mappings.save(self.draft(**changes), created_by="test")


class CountingTransport(httpx.AsyncBaseTransport):
    """The real transport, noting the year of every Nmbrs run listing (SOAP ``Run_GetList``;
    reading a run's journal lists its year too)."""

    def __init__(self) -> None:
        self._inner = httpx.AsyncHTTPTransport()
        self.run_lists: list[int] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        body = request.content
        if b"Run_GetList" in body:
            year = body.split(b"<Year>", 1)[1].split(b"<", 1)[0] if b"<Year>" in body else b"0"
            self.run_lists.append(int(year))
        return await self._inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self._inner.aclose()


def exporter_for(
    world: PayrollWorld,
    db: Database,
    clock: Clock,
    transport: httpx.AsyncBaseTransport | None = None,
) -> Exporter:
    settings = PayrollExportSettings(
        nmbrs_base_url=f"{world.sandbox.base_url}/nmbrs",
        vismanet_api_base_url=f"{world.sandbox.base_url}/vismanet",
        retry_initial_seconds=5,
        vendor_retry_attempts=2,
        lease_seconds=60,
        vismanet_requests_per_second=10_000,
    )
    gateway = VendorGateway(
        settings,
        TokenServiceSettings(url=world.token_service_url, token=SecretStr(SERVICE_TOKEN)),
        transport=transport,
    )
    outbox = Outbox(messaging, source="ledgerlink/journal-exporter")
    return Exporter(
        world,
        MappingService(db, gateway, clock=clock),
        ExportService(db, gateway, outbox, settings, clock=clock),
        gateway,
        clock,
        db,
    )


@pytest.fixture
async def exporter(db: Database) -> AsyncIterator[Exporter]:
    async with payroll_world(employees=40) as world:
        made = exporter_for(world, db, Clock())
        try:
            yield made
        finally:
            await made.gateway.aclose()


async def outbox_events(db: Database) -> list[tuple[str, dict[str, object]]]:
    async with db.transaction() as session:
        rows = (
            await session.execute(select(messaging.outbox).order_by(messaging.outbox.c.id))
        ).mappings()
        return [(row["event_type"], json.loads(row["payload"])) for row in rows]


async def test_a_mapping_names_visma_dimensions_by_description_and_changes_make_versions(
    exporter: Exporter,
) -> None:
    first = await exporter.mapping(cost_unit_description=None)
    assert (first.version, first.cost_centre_segment, first.cost_unit_segment) == (1, 1, None)
    # Compared as a person types it: case and spaces do not matter.
    second = await exporter.mappings.save(
        exporter.draft(cost_unit_description="  kostendrager "),
        created_by="test",
        mapping_id=first.mapping_id,
    )
    assert (second.version, second.cost_unit_segment) == (2, 2)
    assert second.cost_unit_description == "Kostendrager"
    versions = await exporter.mappings.versions(first.mapping_id)
    assert [v.version for v in versions] == [1, 2]

    with pytest.raises(MappingRefusedError) as refused:
        await exporter.mapping(cost_centre_description="Afdeling")
    [problem] = refused.value.problems
    assert problem.field == "cost_centre_description"
    assert "'Afdeling'" in problem.message
    assert "'Kostendrager', 'Kostenplaats'" in problem.message
    assert exporter.world.batches() == []


async def test_a_year_of_runs_with_corrections_lands_in_visma_exactly_once_per_period(
    exporter: Exporter, db: Database
) -> None:
    mapping = await exporter.mapping()
    planned = await exporter.exports.export(
        mapping.mapping_id, trigger="test", period_from="2025-01", period_to="2025-12"
    )
    company = exporter.world.nmbrs.company
    assert len(planned) == len(company.payroll_runs)
    assert all(p.status == PostingStatus.PENDING for p in planned)
    assert exporter.world.batches() == []  # nothing is posted while planning

    await post_all(exporter.exports)
    assert actual_batches(exporter.world.batches()) == expected_batches(company)
    # Corrections: posted in the period they correct, with the normal run's reference.
    corrections = [p for p in planned if p.kind == "correction"]
    assert corrections
    march = {(b["period"], next(iter(b["references"]))) for b in exporter.world.batches()}
    assert {(f"20250{month}", "RUN-2025-03-015") for month in (1, 2, 3)} <= march

    # Exporting again posts nothing new.
    again = await exporter.exports.export(
        mapping.mapping_id, trigger="test", period_from="2025-01", period_to="2025-12"
    )
    assert {p.id for p in again} == {p.id for p in planned}
    assert await post_all(exporter.exports) == 0
    assert len(exporter.world.batches()) == len(planned)

    statuses = await exporter.exports.statuses(mapping.mapping_id, "period")
    assert [s.key for s in statuses] == [f"2025-{m:02d}" for m in range(1, 13)]
    assert {s.status for s in statuses} == {"posted"}
    events = await outbox_events(db)
    posted = [data for kind, data in events if kind == "ledgerlink.payroll_journal.posted.v1"]
    assert len(posted) == len(planned)
    assert {data["batch_number"] for data in posted} == {
        b["number"] for b in exporter.world.batches()
    }

    rows = list(csv.DictReader(io.StringIO(await exporter.exports.evidence_csv(None))))
    assert len(rows) == len(planned)
    row = rows[0]
    assert row["status"] == "posted"
    assert row["batch_number"]
    assert row["mapping_version"] == "1"
    assert row["trigger"] == "test"
    assert json.loads(row["payload"])["journalTransactionLines"]
    assert hashlib.sha256(row["payload"].encode()).hexdigest() == row["payload_sha256"]
    # The Nmbrs document a run came in: one per run, shared by its normal part and its
    # corrections; the per-journal hash tells the parts apart.
    march_rows = [r for r in rows if r["run_id"] == "2025-3"]
    assert len(march_rows) == 3
    assert len({r["source_document_sha256"] for r in march_rows}) == 1
    assert len(march_rows[0]["source_document_sha256"]) == 64
    assert len({r["source_sha256"] for r in march_rows}) == 3


async def test_an_answer_lost_after_visma_accepted_is_found_by_reference_not_posted_twice(
    exporter: Exporter, db: Database
) -> None:
    mapping = await exporter.mapping()
    [normal] = await exporter.exports.export(mapping.mapping_id, trigger="test", runs=["2025-1"])
    exporter.world.world.faults.set(FaultPlan(vendor="vismanet", lose_answer_rate=1.0))
    assert await exporter.exports.post_next()
    assert len(exporter.world.batches()) == 1  # Visma.net accepted it ...
    [waiting] = await exporter.exports.postings(mapping_id=mapping.mapping_id)
    assert waiting.status == PostingStatus.RETRYING  # ... but we never heard
    assert not await exporter.exports.post_next()  # backing off
    exporter.world.world.faults.clear()
    exporter.clock.advance(5)
    assert await exporter.exports.post_next()
    [done] = await exporter.exports.postings(mapping_id=mapping.mapping_id)
    assert (done.status, done.found_existing, done.attempts) == (PostingStatus.POSTED, True, 2)
    assert len(exporter.world.batches()) == 1
    assert done.batch_number == exporter.world.batches()[0]["number"]
    assert normal.id == done.id


async def test_5xx_and_a_429_storm_are_retried_and_post_once(exporter: Exporter) -> None:
    mapping = await exporter.mapping()
    planned = await exporter.exports.export(mapping.mapping_id, trigger="test", runs=["2025-3"])
    assert len(planned) == 3
    faults = exporter.world.world.faults
    faults.set(FaultPlan(vendor="vismanet", error_rate=1.0, error_status=503))
    assert await exporter.exports.post_next()
    assert exporter.world.batches() == []
    faults.set(FaultPlan(vendor="vismanet", storm_429=2, retry_after_seconds=0.01))
    for _ in range(4):  # each round: the postings whose retry time came
        exporter.clock.advance(600)
        await post_all(exporter.exports)
    statuses = {p.status for p in await exporter.exports.postings()}
    assert statuses == {PostingStatus.POSTED}
    assert actual_batches(exporter.world.batches()) == expected_batches(
        exporter.world.nmbrs.company, runs=["3"]
    )


async def refused(exporter: Exporter, mapping: PayrollMapping, run: str) -> list[dict[str, object]]:
    planned = await exporter.exports.export(mapping.mapping_id, trigger="test", runs=[run])
    await post_all(exporter.exports)
    assert exporter.world.batches() == []
    assert planned
    assert all(p.status == PostingStatus.REFUSED for p in planned)
    return [problem for posting in planned for problem in posting.problems]


async def test_a_closed_period_is_refused_before_posting(db: Database) -> None:
    visma = payroll_company(15, employees=1, lock_date=datetime(2025, 2, 28).date())
    async with payroll_world(visma_company=visma) as world:
        exporter = exporter_for(world, db, Clock())
        problems = await refused(exporter, await exporter.mapping(), "2025-2")
        assert problems[0]["code"] == "period_closed"
        assert "Period 2025-02 is closed" in str(problems[0]["message"])


async def test_an_inactive_account_is_refused_per_line(db: Database) -> None:
    visma = payroll_company(15, employees=1)
    next(a for a in visma.accounts if a.number == "4010").active = False
    async with payroll_world(visma_company=visma) as world:
        exporter = exporter_for(world, db, Clock())
        problems = await refused(exporter, await exporter.mapping(), "2025-1")
        assert {p["code"] for p in problems} == {"account_inactive"}
        assert all(isinstance(p["line"], int) for p in problems)
        assert "account 4010 is inactive in Visma.net" in str(problems[0]["message"])


async def test_an_unknown_dimension_value_is_refused(db: Database) -> None:
    visma = payroll_company(15, employees=1)
    centres = next(d for d in visma.dimensions if d.kind == "cost_centre")
    removed = centres.objects.pop(0).code
    async with payroll_world(visma_company=visma) as world:
        exporter = exporter_for(world, db, Clock())
        problems = await refused(exporter, await exporter.mapping(), "2025-1")
        assert {p["code"] for p in problems} == {"cost_centre_missing"}
        assert f"cost centre {removed} does not exist in Visma.net" in str(problems[0]["message"])


@pytest.mark.parametrize(
    ("flags", "reason", "words"),
    [
        ({"test_company": True}, "test_company", "marked as a test company"),
        ({"blocked": True}, "debtor_blocked", "debtor of this company is blocked"),
    ],
)
async def test_a_test_company_or_blocked_debtor_cannot_send_journals(
    exporter: Exporter, flags: dict[str, bool], reason: str, words: str
) -> None:
    for name, value in flags.items():
        setattr(exporter.world.nmbrs, name, value)
    mapping = await exporter.mapping()
    with pytest.raises(ExportRefusedError) as refusal:
        await exporter.exports.export(mapping.mapping_id, trigger="test", runs=["2025-1"])
    assert refusal.value.reason_code == reason
    assert words in refusal.value.message
    assert await exporter.exports.postings() == []
    assert exporter.world.batches() == []


async def test_the_schedule_exports_runs_nmbrs_finalised_since_the_last_look(
    exporter: Exporter,
) -> None:
    mapping = await exporter.mapping(auto_export=True)
    company = exporter.world.nmbrs.company
    all_runs = company.payroll_runs
    company.payroll_runs = [r for r in all_runs if int(r.run_id) <= 2]
    exporter.clock.now = datetime(2025, 3, 1, tzinfo=UTC)
    assert await exporter.exports.export_new_runs() == 2
    company.payroll_runs = [r for r in all_runs if int(r.run_id) <= 3]  # March finalised
    assert await exporter.exports.export_new_runs() == 3  # its normal part and 2 corrections
    assert await exporter.exports.export_new_runs() == 0
    await post_all(exporter.exports)
    assert actual_batches(exporter.world.batches()) == expected_batches(
        company, runs=["1", "2", "3"]
    )
    runs = await exporter.exports.statuses(mapping.mapping_id, "run")
    assert [(r.key, r.status, r.postings) for r in runs] == [
        ("2025-1", "posted", 1),
        ("2025-2", "posted", 1),
        ("2025-3", "posted", 3),
    ]


async def test_the_schedule_covers_every_year_from_the_start_and_lists_settled_years_no_more(
    db: Database,
) -> None:
    transport = CountingTransport()
    async with payroll_world(employees=5) as world:
        exporter = exporter_for(world, db, Clock(), transport)
        try:
            await exporter.mapping(auto_export=True, start_period="2024-01")
            company = world.nmbrs.company
            all_runs = company.payroll_runs
            company.payroll_runs = [r for r in all_runs if int(r.run_id) <= 11]
            december = len([r for r in all_runs if int(r.run_id) == 12])
            # Early January 2026: 2024 is settled at once, 2025 waits for late runs.
            exporter.clock.now = datetime(2026, 1, 10, tzinfo=UTC)
            first = await exporter.exports.export_new_runs()
            assert first == len(company.payroll_runs)
            assert set(transport.run_lists) == {2024, 2025, 2026}
            company.payroll_runs = all_runs  # December finalised late
            exporter.clock.now = datetime(2026, 1, 20, tzinfo=UTC)
            transport.run_lists.clear()
            assert await exporter.exports.export_new_runs() == december
            assert set(transport.run_lists) == {2025, 2026}  # 2024 is not listed again
            # After the grace period 2025 is looked at once more, then settled.
            exporter.clock.now = datetime(2026, 3, 1, tzinfo=UTC)
            transport.run_lists.clear()
            assert await exporter.exports.export_new_runs() == 0
            assert set(transport.run_lists) == {2025, 2026}
            transport.run_lists.clear()
            assert await exporter.exports.export_new_runs() == 0
            assert set(transport.run_lists) == {2026}
            await post_all(exporter.exports)
            assert actual_batches(world.batches()) == expected_batches(company)
        finally:
            await exporter.gateway.aclose()
            await transport.aclose()


class LosingTransport(httpx.AsyncBaseTransport):
    """The real transport; the answer to the first release is lost after Visma.net acted."""

    def __init__(self) -> None:
        self._inner = httpx.AsyncHTTPTransport()
        self.releases = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self._inner.handle_async_request(request)
        if request.url.path.endswith("/action/release"):
            self.releases += 1
            if self.releases == 1:
                await response.aread()
                raise httpx.ReadTimeout("answer lost", request=request)
        return response

    async def aclose(self) -> None:
        await self._inner.aclose()


async def test_a_mapping_that_releases_releases_each_batch_exactly_once(db: Database) -> None:
    transport = LosingTransport()
    async with payroll_world(employees=5) as world:
        exporter = exporter_for(world, db, Clock(), transport)
        try:
            mapping = await exporter.mapping(release=True)
            planned = await exporter.exports.export(
                mapping.mapping_id, trigger="test", runs=["2025-1", "2025-2"]
            )
            await post_all(exporter.exports)
            # The lost answer: retried later, after reading the batch's status first.
            [waiting] = await exporter.exports.postings(status=PostingStatus.RELEASING)
            assert waiting.batch_number is not None
            exporter.clock.advance(3600)
            await post_all(exporter.exports)
            postings = await exporter.exports.postings(mapping_id=mapping.mapping_id)
            assert {p.status for p in postings} == {PostingStatus.RELEASED}
            assert all(p.released_at is not None for p in postings)
            assert transport.releases == len(planned)  # the released batch: not again
            batches = world.batches()
            assert len(batches) == len(planned)
            extras = world.visma.state["vismanet_batches"]
            assert {extras[int(b["number"])].status for b in batches} == {"Posted"}
            runs = await exporter.exports.statuses(mapping.mapping_id, "run")
            assert {r.status for r in runs} == {"released"}
            # One released event per posting, in the transaction that recorded it; the one
            # whose answer was lost says it was found released.
            released = [
                data
                for kind, data in await outbox_events(db)
                if kind == "ledgerlink.payroll_journal.released.v1"
            ]
            assert sorted(str(e["posting_id"]) for e in released) == sorted(
                str(p.id) for p in postings
            )
            assert {str(e["batch_number"]) for e in released} == {
                str(p.batch_number) for p in postings
            }
            assert [e["found_released"] for e in released].count(True) == 1
            assert all(e["kind"] in ("normal", "correction") for e in released)
            # A mapping without release leaves its batches Balanced for the accountant.
            other = world.add_nmbrs_company(payroll_company(7, employees=3))
            plain = await exporter.mapping(nmbrs_company_id=str(sandbox_nmbrs.company_id(other)))
            await exporter.exports.export(plain.mapping_id, trigger="test", runs=["2025-1"])
            await post_all(exporter.exports)
            [posted] = await exporter.exports.postings(mapping_id=plain.mapping_id)
            assert posted.status == PostingStatus.POSTED
            assert extras[int(posted.batch_number or 0)].status == "Balanced"
        finally:
            await exporter.gateway.aclose()
            await transport.aclose()


async def test_a_journal_ready_event_of_a_mapped_business_is_checked_and_posted(
    exporter: Exporter, db: Database
) -> None:
    await exporter.mapping(journal_business_id="0112038-9")
    data = JournalReadyV1.model_validate(
        {
            "journal_id": "run-77",
            "source": "other-payroll",
            "business_id": "0112038-9",
            "period": "2025-05",
            "run_reference": "OTHER-05",
            "lines": [
                {"account": "4000", "debit": "1000.00", "cost_center": "100", "cost_unit": "CU01"},
                {"account": "1560", "credit": "1000.00"},
            ],
        }
    )
    unmapped = data.model_copy(update={"business_id": "2459836-5", "journal_id": "run-78"})
    async with db.transaction() as session:
        outbox = Outbox(messaging, source="test")
        for journal, event_id in ((data, "e-1"), (unmapped, "e-2")):
            await JournalService(session, outbox).receive(journal, event_id=event_id)
            await exporter.exports.plan_ready_journal(session, journal, trigger=f"event:{event_id}")
    [listed] = await exporter.exports.postings()
    planned = await exporter.exports.posting(listed.id)
    assert planned.payload is None  # checked against Visma.net by the runner, not the consumer
    assert await post_all(exporter.exports) == 1
    [done] = await exporter.exports.postings()
    assert (done.status, done.trigger, done.period) == (
        PostingStatus.POSTED,
        "event:e-1",
        "2025-05",
    )
    [batch] = exporter.world.batches()
    assert batch["period"] == "202505"
    assert batch["references"] == {"OTHER-05"}
    assert sorted(batch["lines"]) == [
        ("1560", None, None, Decimal("-1000.00")),
        ("4000", "100", "CU01", Decimal("1000.00")),
    ]


@dataclasses.dataclass
class FakeSessions:
    """auth's session look-up, in memory (the real one: tests/browser/test_payroll_pages)."""

    roles: dict[uuid.UUID, Literal["admin", "member"]]

    async def resolve(
        self, cookie: str, connection_ids: Collection[uuid.UUID] = ()
    ) -> SignedIn | None:
        if cookie != "anna-session":
            return None
        return SignedIn(
            person_id=uuid.UUID(int=1),
            email="anna@example.test",
            name="Anna",
            csrf_token="csrf-anna",
            roles={c: self.roles.get(c) for c in connection_ids},
        )


async def test_the_pages_show_field_errors_and_each_runs_status(exporter: Exporter) -> None:
    app = FastAPI()
    sessions = FakeSessions(
        {exporter.world.nmbrs_connection: "admin", exporter.world.visma_connection: "admin"}
    )
    register_payroll_pages(
        app, exporter.mappings, exporter.exports, sessions, PayrollSigninSettings()
    )
    form = {
        "csrf_token": "csrf-anna",
        "name": "Payroll NL",
        "nmbrs_connection_id": str(exporter.world.nmbrs_connection),
        "nmbrs_company_id": exporter.world.nmbrs_company,
        "vismanet_connection_id": "not-an-id",
        "vismanet_company_id": exporter.world.visma_company,
        "cost_centre_description": "Kostenplaats",
    }
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://exporter"
    ) as browser:
        signed_out = await browser.get("/payroll/mappings/new")
        assert signed_out.status_code == 303
        assert signed_out.headers["location"] == "/signin?next=%2Fpayroll%2Fmappings%2Fnew"
        browser.cookies.set("ledgerlink_session", "anna-session")
        blank = await browser.get("/payroll/mappings/new")
        assert blank.status_code == 200
        assert '<label for="cost_centre_description">' in blank.text
        forged = await browser.post("/payroll/mappings/new", data={**form, "csrf_token": "x"})
        assert forged.status_code == 403
        bad_id = await browser.post("/payroll/mappings/new", data=form)
        assert bad_id.status_code == 422
        assert '<a class="link" href="#vismanet_connection_id">' in bad_id.text
        assert 'id="vismanet_connection_id-error"' in bad_id.text
        form["vismanet_connection_id"] = str(exporter.world.visma_connection)
        wrong = await browser.post(
            "/payroll/mappings/new", data={**form, "cost_centre_description": "Afdeling"}
        )
        assert wrong.status_code == 422
        assert 'id="cost_centre_description-error"' in wrong.text
        assert "No dimension in Visma.net has the description" in wrong.text
        bad_start = await browser.post("/payroll/mappings/new", data={**form, "start_period": "25"})
        assert 'id="start_period-error"' in bad_start.text
        saved = await browser.post("/payroll/mappings/new", data=form)
        assert saved.status_code == 303
        mapping_page = saved.headers["location"]
        assert "Nothing has been sent yet" in (await browser.get(mapping_page)).text
        mapping_id = uuid.UUID(mapping_page.rsplit("/", 1)[-1])
        await exporter.exports.export(mapping_id, trigger="test", runs=["2025-1"])
        await post_all(exporter.exports)
        shown = (await browser.get(mapping_page)).text
        assert '<strong class="tag tag--posted">Posted</strong>' in shown
        assert "2025-01" in shown
        listing = await browser.get("/payroll")
        assert "Payroll NL" in listing.text
        assert (await browser.get("/payroll/static/ledgerlink.css")).status_code == 200
        # A member (not an admin) sees the mapping but cannot map connections.
        sessions.roles[exporter.world.nmbrs_connection] = "member"
        assert (await browser.get(mapping_page)).status_code == 200
        member = await browser.post("/payroll/mappings/new", data={**form, "name": "Again"})
        assert member.status_code == 422
        assert "Only an admin of the environment" in member.text
        # Someone else's mapping: refused, and not listed.
        del sessions.roles[exporter.world.nmbrs_connection]
        assert (await browser.get(mapping_page)).status_code == 403
        assert "Payroll NL" not in (await browser.get("/payroll")).text


async def test_the_form_offers_the_connections_the_person_may_map(exporter: Exporter) -> None:
    world = exporter.world
    stranger = uuid.uuid4()
    sessions = FakeSessions({world.nmbrs_connection: "admin", world.visma_connection: "member"})
    app = FastAPI()
    register_payroll_pages(
        app, exporter.mappings, exporter.exports, sessions, PayrollSigninSettings()
    )
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://exporter"
    ) as browser:
        browser.cookies.set("ledgerlink_session", "anna-session")
        before = await browser.get("/payroll/mappings/new")
        # No connection is known yet (no connection.activated seen): ids can be entered.
        assert "<select" not in before.text
        assert "None is known here yet" in before.text
        async with exporter.db.transaction() as session:
            connections = ConnectionRepository(session)
            for connection_id, provider, name in (
                (world.nmbrs_connection, Provider.NMBRS, "Payroll BV"),
                (world.visma_connection, Provider.VISMA_NET, "Ledger BV"),
                (stranger, Provider.NMBRS, "Someone Else BV"),
            ):
                activation = ConnectionActivatedV1(
                    connection_id=connection_id,
                    environment_id=uuid.uuid4(),
                    provider=provider,
                    business_id="12345678",
                    company_name=name,
                )
                await connections.record_activation(
                    activation,
                    event_id=f"e-{connection_id}",
                    activated_at=datetime(2025, 1, 1, tzinfo=UTC),
                )
        offered = (await browser.get("/payroll/mappings/new")).text
        # Anna's own Nmbrs account (she is its environment's admin) is offered by name.
        assert '<select class="input" id="nmbrs_connection_id"' in offered
        assert f'<option value="{world.nmbrs_connection}">Payroll BV (12345678)' in offered
        # Neither a stranger's account nor one where she is only a member.
        assert "Someone Else BV" not in offered
        assert "Ledger BV" not in offered
        assert '<select class="input" id="vismanet_connection_id"' not in offered
        # A form sent back with errors keeps the choice.
        again = await browser.post(
            "/payroll/mappings/new",
            data={"csrf_token": "csrf-anna", "nmbrs_connection_id": str(world.nmbrs_connection)},
        )
        assert again.status_code == 422
        assert f'<option value="{world.nmbrs_connection}" selected>' in again.text


async def test_admins_send_journals_and_change_the_mapping_from_its_page(
    exporter: Exporter,
) -> None:
    world = exporter.world
    sessions = FakeSessions({world.nmbrs_connection: "admin", world.visma_connection: "admin"})
    woken: list[bool] = []
    app = FastAPI()
    register_payroll_pages(
        app,
        exporter.mappings,
        exporter.exports,
        sessions,
        PayrollSigninSettings(),
        on_planned=lambda: woken.append(True),
    )
    mapping = await exporter.mapping(journal_business_id="0112038-9")
    page_url = f"/payroll/mappings/{mapping.mapping_id}"
    send = f"{page_url}/export"
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://exporter"
    ) as browser:
        browser.cookies.set("ledgerlink_session", "anna-session")
        shown = (await browser.get(page_url)).text
        assert "Send journals to Visma.net" in shown
        assert f'action="{send}"' in shown

        # Errors next to their fields, nothing planned.
        for form, field, words in (
            ({}, "runs", "Enter the runs to send, or the first and last period"),
            ({"period_from": "2025-1"}, "period_from", "Enter the period as YYYY-MM"),
            ({"period_from": "2025-03"}, "period_to", "Enter the last period too"),
            (
                {"period_from": "2025-03", "period_to": "2025-01"},
                "period_to",
                "The last period must be the same as the first or after it",
            ),
            (
                {"runs": "2025-1", "period_from": "2025-01", "period_to": "2025-01"},
                "runs",
                "Enter either the runs or the periods, not both",
            ),
        ):
            answer = await browser.post(send, data={"csrf_token": "csrf-anna", **form})
            assert answer.status_code == 422, form
            assert f'<a class="link" href="#{field}">{words}' in answer.text
            assert f'id="{field}-error"' in answer.text
            assert f'aria-describedby="{field}-hint {field}-error"' in answer.text
            for value in form.values():
                assert f'value="{value}"' in answer.text  # what was typed stays
        assert (
            await browser.post(send, data={"runs": "2025-1", "csrf_token": "x"})
        ).status_code == 403
        assert await exporter.exports.postings() == []
        assert woken == []

        # A run: planned, the runner woken, the page says so; posted in the background.
        sent = await browser.post(send, data={"csrf_token": "csrf-anna", "runs": "2025-1"})
        assert sent.status_code == 303
        planned = await exporter.exports.postings(mapping_id=mapping.mapping_id)
        assert planned
        assert sent.headers["location"] == f"{page_url}?sent={len(planned)}"
        assert woken == [True]
        notice = (await browser.get(sent.headers["location"])).text
        assert f"{len(planned)} journal" in notice
        await post_all(exporter.exports)
        assert (
            '<strong class="tag tag--posted">Posted</strong>' in (await browser.get(page_url)).text
        )
        batches = len(world.batches())
        # The same run again: nothing is posted twice.
        again = await browser.post(send, data={"csrf_token": "csrf-anna", "runs": "2025-1"})
        assert again.status_code == 303
        await post_all(exporter.exports)
        assert len(world.batches()) == batches

        # Nmbrs refuses a test company's journals: said at the top, nothing planned.
        world.nmbrs.test_company = True
        refused = await browser.post(
            send, data={"csrf_token": "csrf-anna", "period_from": "2025-02", "period_to": "2025-03"}
        )
        assert refused.status_code == 422
        assert '<a class="link" href="#send">' in refused.text
        assert "marked as a test company" in refused.text
        world.nmbrs.test_company = False

        # Changing the mapping: the form shows the current version; errors next to fields.
        edit = (await browser.get(f"{page_url}/edit")).text
        assert "Change Payroll NL" in edit
        assert 'value="Kostenplaats"' in edit
        values = {
            "csrf_token": "csrf-anna",
            "name": "Payroll NL (new chart)",
            "nmbrs_connection_id": str(world.nmbrs_connection),
            "nmbrs_company_id": world.nmbrs_company,
            "vismanet_connection_id": str(world.visma_connection),
            "vismanet_company_id": world.visma_company,
            "cost_centre_description": "Afdeling",
            "cost_unit_description": "Kostendrager",
        }
        wrong = await browser.post(f"{page_url}/edit", data=values)
        assert wrong.status_code == 422
        assert 'id="cost_centre_description-error"' in wrong.text
        saved = await browser.post(
            f"{page_url}/edit", data={**values, "cost_centre_description": "Kostenplaats"}
        )
        assert saved.status_code == 303
        assert saved.headers["location"] == page_url
        current = await exporter.mappings.current(mapping.mapping_id)
        assert (current.version, current.name) == (2, "Payroll NL (new chart)")
        assert current.created_by == "anna@example.test"
        assert current.journal_business_id == "0112038-9"  # not on the form: kept

        # A member sees the mapping but neither form; sending or changing is refused.
        sessions.roles[world.visma_connection] = "member"
        member_view = (await browser.get(page_url)).text
        assert "Send journals to Visma.net" not in member_view
        assert "Change this mapping" not in member_view
        member_send = await browser.post(send, data={"csrf_token": "csrf-anna", "runs": "2025-2"})
        assert member_send.status_code == 403
        assert "Only an admin can send journals" in member_send.text
        assert (await browser.get(f"{page_url}/edit")).status_code == 403
        assert (
            await browser.get("/payroll/mappings/" + str(uuid.uuid4()) + "/edit")
        ).status_code == 404


async def test_two_payrolls_with_the_same_run_references_each_get_their_batches(
    exporter: Exporter,
) -> None:
    # Seed 1015 gives the same run references as the first company (seed 15).
    other = exporter.world.add_nmbrs_company(payroll_company(1015, employees=5))
    first = await exporter.mapping()
    second = await exporter.mapping(nmbrs_company_id=str(sandbox_nmbrs.company_id(other)))
    for mapping in (first, second):
        await exporter.exports.export(mapping.mapping_id, trigger="test", runs=["2025-1"])
    # The second company's batch is not taken for the first's (or the reverse).
    await post_all(exporter.exports)
    batches = exporter.world.batches()
    assert len(batches) == 2
    assert {next(iter(b["references"])) for b in batches} == {"RUN-2025-01-015"}
    statuses = [p.found_existing for p in await exporter.exports.postings()]
    assert statuses == [False, False]


async def test_concurrent_runners_never_post_one_journal_twice(exporter: Exporter) -> None:
    mapping = await exporter.mapping()
    planned = await exporter.exports.export(
        mapping.mapping_id, trigger="test", period_from="2025-01", period_to="2025-06"
    )
    for _ in range(10):  # rounds: a runner that lost a claim race stops, as on "nothing due"
        await asyncio.gather(*(post_all(exporter.exports) for _ in range(4)))
        if {p.status for p in await exporter.exports.postings()} == {PostingStatus.POSTED}:
            break
    assert len(exporter.world.batches()) == len(planned)
    assert actual_batches(exporter.world.batches()) == expected_batches(
        exporter.world.nmbrs.company, runs=[str(month) for month in range(1, 7)]
    )
