"""Over the wire: a Netvisor company activated through auth is imported by the importer over
the vendor sandbox's API, then kept current by an incremental sync.

Processes: the sandbox, auth and the importer; PostgreSQL stores; the Kafka protocol. The
importer gets the company's key from auth's token service (its service token), never from
the test. Ground truth is the sandbox's own company: the demo tenant is generated from the
sandbox's seed, so the test regenerates the same books and changes them the way it asks
the sandbox to.
"""

from __future__ import annotations

import datetime as dt
import json
import random
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import httpx
import pytest
from auth_store import stored_connection, stored_connections
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine
from wire_helpers import EventReader, PlainKafkaClient, Seen, eventually

from ledgerlink.cli.stack import Stack
from ledgerlink.connectors.models import JournalLine, JournalPosting
from ledgerlink.sandbox.data import CompanyData, LineData, generate_company
from ledgerlink.shared.testing import KafkaBackend
from ledgerlink.shared.topics import Topic

pytestmark = pytest.mark.wire

LINES = 3000
SANDBOX_SEED = 7
SERVICE_TOKEN = "wire-importer-token-0123456789abcdef0123"
VAULT_KEY = "wire-vault-key-0123456789abcdef-0123"
ACTIVATION = "ledgerlink.activation.requested.v1"
REQUESTED = "ledgerlink.import.requested.v1"
# The sandbox's public demo Netvisor partner and customer key (vendors/netvisor.py).
PARTNER_ID, PARTNER_KEY, CUSTOMER_KEY = "LEDGERLINK_DEMO", "demo-partner-key", "demo-customer-key"


def of_type(reader: EventReader, ce_type: str) -> Callable[[Seen], bool]:
    topic = reader.topic(Topic.IMPORTS)
    return lambda seen: seen.topic == topic and seen.type == f"ledgerlink.{ce_type}.v1"


def truth(company: CompanyData) -> dict[tuple[str, str, str, str], tuple[Decimal, Decimal]]:
    """(period YYYY-MM, account, dimension kind, object) -> (debit, credit)."""
    totals: dict[tuple[str, str, str, str], list[Decimal]] = {}
    for voucher in company.vouchers:
        if voucher.status != "valid":
            continue
        period = voucher.date.strftime("%Y-%m")
        for line in voucher.lines:
            keys = [(period, line.account, "", "")]
            keys += [(period, line.account, kind, code) for kind, code in line.dimensions.items()]
            for key in keys:
                pair = totals.setdefault(key, [Decimal(0), Decimal(0)])
                pair[0 if line.amount >= 0 else 1] += abs(line.amount)
    return {k: (d, c) for k, (d, c) in totals.items() if d or c}


async def trial_balances(
    http: httpx.AsyncClient, url: str, business_id: str, company: CompanyData
) -> dict[tuple[str, str, str, str], tuple[Decimal, Decimal]]:
    """The importer's per-period trial balances over HTTP, in total and per object."""
    found: dict[tuple[str, str, str, str], tuple[Decimal, Decimal]] = {}
    dimensions = {d.kind: d for d in company.dimensions}
    periods = sorted({v.date.strftime("%Y-%m") for v in company.vouchers})
    for period in periods:
        targets: list[tuple[str, str, dict[str, str]]] = [("", "", {})]
        targets += [
            (kind, item.code, {"dimension": dimension.id, "object": item.code})
            for kind, dimension in dimensions.items()
            for item in dimension.objects
        ]
        for kind, code, params in targets:
            response = await http.get(
                f"{url}/v1/companies/{business_id}/trial-balance",
                params={"from": period, "to": period, **params},
            )
            assert response.status_code == 200, response.text
            for row in response.json()["accounts"]:
                debit, credit = Decimal(row["debit"]), Decimal(row["credit"])
                if debit or credit:
                    found[(period, row["account"], kind, code)] = (debit, credit)
    return found


@dataclass
class Running:
    """The three processes of a wire test, the demo Netvisor tenant and its connection."""

    stack: Stack
    sandbox: str
    auth: str
    importer: str
    tenant: dict[str, Any]
    company: CompanyData
    importer_env: dict[str, str]

    @property
    def business_id(self) -> str:
        return self.company.business_id


async def start_processes(stack: Stack, *, lines: int, **importer_env: str) -> Running:
    stack.start(
        "sandbox",
        {
            "LEDGERLINK_SANDBOX_LINES_PER_COMPANY": str(lines),
            "LEDGERLINK_SANDBOX_SEED": str(SANDBOX_SEED),
            "LEDGERLINK_SANDBOX_LOG_LEVEL": "WARNING",
        },
    )
    await stack.wait_ready("sandbox")
    sandbox = stack.services["sandbox"].url
    async with httpx.AsyncClient(timeout=60) as http:
        tenants = (await http.get(f"{sandbox}/_sandbox/tenants")).json()
    [tenant] = [t for t in tenants if t["vendor"] == "netvisor"]
    company = generate_company(SANDBOX_SEED * 1000 + 1, country="FI", lines=lines)
    assert company.business_id == tenant["business_id"]

    for name in ("auth", "importer"):
        stack.migrate(name)
    stack.start(
        "auth",
        {
            "LEDGERLINK_AUTH_VAULT__KEYS": json.dumps(
                {"1": "wire-vault-key-0123456789abcdef-0123"}
            ),
            "LEDGERLINK_AUTH_VAULT__ACTIVE_KEY": "1",
            "LEDGERLINK_AUTH_SERVICE_TOKENS": json.dumps({"importer": SERVICE_TOKEN}),
        },
    )
    auth = stack.services["auth"].url
    env = {
        "LEDGERLINK_IMPORTER_TOKEN_SERVICE__URL": auth,
        "LEDGERLINK_IMPORTER_TOKEN_SERVICE__TOKEN": SERVICE_TOKEN,
        "LEDGERLINK_IMPORTER_VENDORS__NETVISOR__BASE_URL": f"{sandbox}/netvisor",
        "LEDGERLINK_IMPORTER_VENDORS__NETVISOR__PARTNER_ID": PARTNER_ID,
        "LEDGERLINK_IMPORTER_VENDORS__NETVISOR__PARTNER_KEY": PARTNER_KEY,
        **importer_env,
    }
    stack.start("importer", env)
    await stack.wait_ready("auth")
    await stack.wait_ready("importer")
    return Running(stack, sandbox, auth, stack.services["importer"].url, tenant, company, env)


async def activate(running: Running, kafka: PlainKafkaClient, http: httpx.AsyncClient) -> str:
    """The company's activation through auth, as the flow's HTTP steps do it; its id."""
    business_id = running.business_id
    await kafka.send(
        Topic.ACTIVATIONS,
        {
            "provider": "netvisor",
            "business_id": business_id,
            "country": "FI",
            "company_name": running.company.name,
            "requested_by": {"email": "controller@example.fi", "name": "Kaisa Controller"},
            "product": "planning",
        },
        key=business_id,
        ce_type=ACTIVATION,
    )
    headers = {"Authorization": f"Bearer {SERVICE_TOKEN}"}

    async def connection_id() -> str | None:
        rows = await stored_connections(running.stack, business_id)
        return str(rows[0]["id"]) if rows else None

    connection = await eventually(connection_id, timeout=60, what="the connection")
    started = await http.post(
        f"{running.auth}/internal/v1/connections/{connection}/authorization/start",
        headers=headers,
    )
    assert started.status_code == 200, started.text
    authorized = await http.post(
        f"{running.auth}/internal/v1/connections/{connection}/authorization",
        json={
            "kind": "netvisor",
            "vendor_account": running.tenant["tenant_id"],
            "customer_id": running.tenant["tenant_id"],
            "customer_key": CUSTOMER_KEY,
            "organisation_id": business_id,
        },
        headers=headers,
    )
    assert authorized.status_code == 200, authorized.text
    return connection


async def post_voucher(running: Running, http: httpx.AsyncClient) -> dict[str, Any]:
    """Post a voucher through the sandbox's Netvisor API (accounting.nv), as another
    program at the company would; returns what it booked (for the ground truth)."""
    from ledgerlink.connectors.netvisor import NetvisorConnector, NetvisorSettings

    account_a, account_b = running.company.vouchers[0].lines[0].account, "1910"
    day = dt.date(2025, 6, 12)
    settings = NetvisorSettings(
        sender="wire test",
        customer_id=running.tenant["tenant_id"],
        partner_id=PARTNER_ID,
        customer_key=CUSTOMER_KEY,  # type: ignore[arg-type]
        partner_key=PARTNER_KEY,  # type: ignore[arg-type]
        organisation_id=running.business_id,
        base_url=f"{running.sandbox}/netvisor",
    )
    async with NetvisorConnector(settings) as connector:
        await connector.post_journal(
            JournalPosting(
                date=day,
                period=day.replace(day=1),
                description="Posted between two syncs",
                reference="WIRE-1",
                lines=(
                    JournalLine(account=account_a, amount=Decimal("321.09")),
                    JournalLine(account=account_b, amount=Decimal("-321.09")),
                ),
            )
        )
    return {
        "date": day,
        "description": "Posted between two syncs (WIRE-1)",
        "lines": [
            LineData(1, account_a, Decimal("321.09")),
            LineData(2, account_b, Decimal("-321.09")),
        ],
    }


async def test_netvisor_company_imported_through_auth_equals_the_sandbox_and_stays_current(
    stack: Stack, reader: EventReader, kafka_backend: KafkaBackend
) -> None:
    running = await start_processes(stack, lines=LINES)
    company, business_id, importer = running.company, running.business_id, running.importer
    sandbox, tenant = running.sandbox, running.tenant
    async with (
        PlainKafkaClient(kafka_backend.bootstrap_servers, stack.config.topic_prefix) as kafka,
        httpx.AsyncClient(timeout=60) as http,
    ):
        connection = await activate(running, kafka, http)

        [completed] = await reader.wait_for(of_type(reader, "import.completed"), timeout=180)
        [ready] = await reader.wait_for(of_type(reader, "reports.ready"))
        assert completed.data["connection_id"] == connection
        assert completed.data["counts"]["lines"] == sum(
            len(v.lines) for v in company.vouchers if v.status == "valid"
        )
        assert ready.data["reports"][0] == f"/v1/companies/{business_id}/trial-balance"

        async def active() -> dict[str, Any] | None:
            row = await stored_connection(stack, connection)
            return row if row and row["status"] == "active" else None

        await eventually(active, timeout=60, what="auth to see the first import")
        assert await trial_balances(http, importer, business_id, company) == truth(company)

        # Between two syncs the vendor's books change: an edit, an invalidation, a deletion
        # and a voucher posted through the vendor's API.
        edited, invalidated = company.vouchers[7].id, company.vouchers[11].id
        deleted = company.vouchers[15].id
        for path, body in (
            (f"netvisor/{tenant['tenant_id']}/vouchers/{edited}/edit",
             {"date": "2025-05-20"}),
            (f"netvisor/{tenant['tenant_id']}/vouchers/{invalidated}/invalidate", None),
            (f"netvisor/{tenant['tenant_id']}/vouchers/{deleted}/delete", None),
        ):  # fmt: skip
            answer = await http.post(f"{sandbox}/_sandbox/{path}", json=body)
            assert answer.status_code == 200, answer.text
        company.edit_voucher(edited, date=dt.date(2025, 5, 20))
        company.invalidate_voucher(invalidated)
        company.delete_voucher(deleted)
        posted = await post_voucher(running, http)
        company.add_voucher(**posted)

        await kafka.send(
            Topic.IMPORT_REQUESTS,
            {
                "connection_id": connection,
                "business_id": business_id,
                "provider": "netvisor",
                "mode": "incremental",
            },
            key=business_id,
            ce_type=REQUESTED,
        )
        [_, second] = await reader.wait_for(
            of_type(reader, "import.completed"), count=2, timeout=120
        )
        job = (await http.get(f"{importer}/v1/imports/{second.data['import_id']}")).json()
        assert job["sync_mode"] == "incremental"
        # Only the four changed vouchers were read.
        assert job["counts"]["sync_vouchers_read"] == 4
        assert job["counts"]["sync_vouchers_removed"] == 2
        assert await trial_balances(http, importer, business_id, company) == truth(company)


@pytest.mark.timeout(600)
async def test_importer_killed_five_times_mid_import_resumes_and_stores_no_line_twice(
    stack: Stack, reader: EventReader, kafka_backend: KafkaBackend
) -> None:
    lines = 10_000
    running = await start_processes(
        stack,
        lines=lines,
        # A dead replica's sync is taken over 2 s after its last checkpoint.
        LEDGERLINK_IMPORTER_IMPORT_LEASE_SECONDS="2",
    )
    company = running.company
    truth_lines = sum(len(v.lines) for v in company.vouchers if v.status == "valid")
    rng = random.Random(14)
    # Five kill points: after this many lines are committed (seeded, increasing).
    kill_at = sorted(rng.sample(range(300, truth_lines - 2500, 100), 5))
    async with (
        PlainKafkaClient(kafka_backend.bootstrap_servers, stack.config.topic_prefix) as kafka,
        httpx.AsyncClient(timeout=60) as http,
    ):
        await activate(running, kafka, http)
        [queued] = await reader.wait_for(of_type(reader, "import.queued"), timeout=60)
        import_id = queued.data["import_id"]
        seen_progress: list[int] = []
        for threshold in kill_at:

            async def reached(threshold: int = threshold) -> int | None:
                job = (await http.get(f"{running.importer}/v1/imports/{import_id}")).json()
                done = int(job["progress_lines"])
                return done if done >= threshold or job["status"] != "running" else None

            seen_progress.append(
                await eventually(reached, timeout=120, what=f"{threshold} lines", interval=0.02)
            )
            stack.kill("importer")  # SIGKILL: no shutdown, no flush
            stack.start("importer", running.importer_env)
            await stack.wait_ready("importer")

        [completed] = await reader.wait_for(of_type(reader, "import.completed"), timeout=240)
        job = (await http.get(f"{running.importer}/v1/imports/{import_id}")).json()

    assert completed.data["import_id"] == import_id
    assert job["status"] == "completed"
    assert job["attempts"] >= 6  # five takeovers after the first run
    # Each run went on from the last checkpoint: the lines written over every attempt add
    # up to the ledger exactly (a run from scratch, or a page stored twice, would add more).
    assert job["counts"]["sync_lines_written"] == truth_lines
    assert job["counts"]["lines"] == truth_lines
    assert seen_progress == sorted(seen_progress)
    engine = create_async_engine(stack.config.database_urls["importer"])
    try:
        async with engine.connect() as connection:
            stored = (await connection.execute(text("SELECT count(*) FROM voucher_lines"))).scalar()
            duplicates = (
                await connection.execute(
                    text(
                        "SELECT count(*) FROM (SELECT v.source_id FROM vouchers v "
                        "GROUP BY v.source_id HAVING count(*) > 1) d"
                    )
                )
            ).scalar()
    finally:
        await engine.dispose()
    assert stored == truth_lines
    assert duplicates == 0
    async with httpx.AsyncClient(timeout=60) as http:
        for period in sorted({v.date.strftime("%Y-%m") for v in company.vouchers}):
            response = await http.get(
                f"{running.importer}/v1/companies/{running.business_id}/trial-balance",
                params={"from": period, "to": period},
            )
            rows = {
                row["account"]: (Decimal(row["debit"]), Decimal(row["credit"]))
                for row in response.json()["accounts"]
                if Decimal(row["debit"]) or Decimal(row["credit"])
            }
            expected = {
                account: value
                for (p, account, kind, _), value in truth(company).items()
                if p == period and not kind
            }
            assert rows == expected, period
