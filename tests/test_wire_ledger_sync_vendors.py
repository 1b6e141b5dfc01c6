"""Over the wire, for each of the four ledgers (Netvisor, Procountor, Visma.net,
24SevenOffice): a sandbox company activated through auth is imported by the importer, kept
current by incremental syncs, and survives the sandbox's faults.

One set of processes for the whole module (lean on CI time): auth and the importer as
processes on PostgreSQL, the Kafka protocol, and the vendor sandbox over real HTTP in the
test's loop, so the test reads the sandbox's own books (its ground truth) and changes them
as another program at the company would. Auth holds each connection's credential: the
importer asks auth's token service, which renews OAuth tokens (Procountor, Visma.net) and
logs in to 24SevenOffice itself.

What each vendor offers for change queries (and so what "only the changed vouchers were
read" means):

* Netvisor: ``voucherlist.nv`` with ``changedsince`` and voucher status filters;
* Procountor: ``GET /ledgerreceipts`` with ``versionStartDate``;
* Visma.net: ``GET /v2/journaltransaction`` with ``lastModifiedDateTime`` (published
  contract: JournalTransactionV2Api);
* 24SevenOffice: ``GET /transactionlines`` has date filters only (no change filter, and a
  deleted transaction is simply gone), so an incremental sync of a 24SevenOffice ledger is
  run as a full refresh: everything is read into staging and swapped in, which is what it
  takes to see a deletion at all.

Also here: the sandbox's faults mid-sync (token expiry renewed through auth, a 429 storm,
5xx bursts, connection resets; Netvisor signs with keys, so it has no token to expire),
changes stamped alike across a page boundary and exactly at the cursor (Airbyte #14732,
#15427, Nango #1132), reconciliation with the vendor's own balances (Netvisor, Visma.net),
and a backfill of a date range requested over Kafka.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import hashlib
import json
import secrets
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from auth_store import stored_connections
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine
from wire_helpers import EventReader, PlainKafkaClient, Seen, eventually, free_port

from ledgerlink.cli.stack import SERVICES, Stack, StackConfig, create_all_topics
from ledgerlink.sandbox.config import RateLimitSettings, SandboxConfig
from ledgerlink.sandbox.data import CompanyData, Country, LineData, generate_company
from ledgerlink.sandbox.faults import FaultPlan
from ledgerlink.sandbox.testing import RunningSandbox, running_sandbox
from ledgerlink.sandbox.vendors import twentyfour as tf
from ledgerlink.sandbox.vendors import vismanet as vn
from ledgerlink.sandbox.vendors.procountor import _salary_receipts
from ledgerlink.sandbox.world import Tenant, World
from ledgerlink.shared.testing import KafkaBackend, PostgresBackend
from ledgerlink.shared.topics import Topic

pytestmark = [pytest.mark.wire, pytest.mark.timeout(900)]

#: Voucher lines per company: a few hundred vouchers each, in one fiscal year (12 periods
#: to compare per object keep the module lean; later years' openings are proven in
#: tests/test_ledger_sync.py).
LINES = 1200


def small_company(seed: int, country: Country = "FI") -> CompanyData:
    return generate_company(seed, country=country, lines=LINES, years=1)


SERVICE_TOKEN = "wire-importer-token-0123456789abcdef0123"
HEADERS = {"Authorization": f"Bearer {SERVICE_TOKEN}"}
ACTIVATION = "ledgerlink.activation.requested.v1"
REQUESTED = "ledgerlink.import.requested.v1"

NETVISOR = {"customer_key": "nv-customer-key", "partner_id": "LL_WIRE", "partner_key": "nv-pk"}
PROCOUNTOR = {
    "client_id": "ledgerlink-procountor-wire",
    "client_secret": "procountor-wire-secret",
    "redirect_uri": "http://127.0.0.1:8000/oauth/procountor/callback",
    "username": "controller",
    "password": "procountor-password",
}
VISMA_CLIENT, VISMA_SECRET = "isv_ledgerlink_wire", "visma-wire-secret"
TF_APP, TF_USER, TF_PASSWORD = "wire-24so-app", "integration@wire.example", "tf-wire-password"
TF_REST_CLIENT, TF_REST_SECRET = "wire-rest-client", "wire-rest-secret"

#: provider (as Ledgerlink names it), the sandbox's vendor module, country, and the
#: dimension kinds the vendor's API carries on a voucher line.
#: Ledgers whose own account balances a sync reconciles with: Netvisor (accountbalance.nv)
#: and Visma.net (GET /v2/generalLedgerBalance). Procountor and 24SevenOffice publish no
#: balance read the connectors use: their imports say ``not_available``.
RECONCILED = frozenset({"netvisor", "visma_net"})
VENDORS: dict[str, tuple[str, str, frozenset[str]]] = {
    "netvisor": ("netvisor", "FI", frozenset({"cost_centre", "cost_unit", "project"})),
    "procountor": ("procountor", "FI", frozenset({"cost_centre", "cost_unit"})),
    "visma_net": ("vismanet", "NL", frozenset({"cost_centre", "cost_unit"})),
    "24sevenoffice": ("twentyfour", "NO", frozenset({"cost_centre", "project"})),
}

Key = tuple[str, str, str, str]
#: The sandbox vendors whose tokens come from an OAuth server.
OAUTH = frozenset({"procountor", "vismanet"})


@dataclass
class Wire:
    stack: Stack
    sandbox: RunningSandbox
    reader: EventReader
    kafka: PlainKafkaClient
    http: httpx.AsyncClient
    tenants: dict[str, Tenant]
    connections: dict[str, str]

    @property
    def importer(self) -> str:
        return self.stack.services["importer"].url

    @property
    def auth(self) -> str:
        return self.stack.services["auth"].url


def make_world() -> World:
    fast = RateLimitSettings(rate_per_second=10_000, burst=10_000)
    world = World(
        SandboxConfig(
            seed=14,
            rate_limits=dict.fromkeys(("netvisor", "procountor", "vismanet", "twentyfour"), fast),
        )
    )  # fmt: skip
    world.add_tenant(
        "netvisor", tenant_id="nv-wire", company=small_company(141), credentials=NETVISOR
    )
    world.add_tenant("procountor", company=small_company(142), credentials=PROCOUNTOR)
    world.add_tenant("vismanet", company=small_company(143, "NL"))
    vn.register_client(world, VISMA_CLIENT, VISMA_SECRET)
    world.add_tenant("twentyfour", tenant_id="7001", company=small_company(144, "NO"))
    state = tf.state_of(world)
    state.register_application(TF_APP)
    state.add_integration_user(TF_USER, TF_PASSWORD, ["7001"])
    state.add_rest_client(TF_REST_CLIENT, TF_REST_SECRET, ["7001"])
    return world


def auth_env(sandbox: RunningSandbox) -> dict[str, str]:
    return {
        "LEDGERLINK_AUTH_VAULT__KEYS": json.dumps({"1": "wire-vault-key-0123456789abcdef-0123"}),
        "LEDGERLINK_AUTH_VAULT__ACTIVE_KEY": "1",
        "LEDGERLINK_AUTH_SERVICE_TOKENS": json.dumps({"importer": SERVICE_TOKEN}),
        "LEDGERLINK_AUTH_NETVISOR__PARTNER_ID": NETVISOR["partner_id"],
        "LEDGERLINK_AUTH_NETVISOR__PARTNER_KEY": NETVISOR["partner_key"],
        "LEDGERLINK_AUTH_TWENTYFOUR__APPLICATION_ID": TF_APP,
        "LEDGERLINK_AUTH_TWENTYFOUR__SOAP_BASE_URL": sandbox.url("/24so/soap"),
        "LEDGERLINK_AUTH_OAUTH_PROVIDERS": json.dumps(
            {
                "procountor": {
                    "client_id": PROCOUNTOR["client_id"],
                    "client_secret": PROCOUNTOR["client_secret"],
                    "token_url": sandbox.url("/procountor/api/oauth/token"),
                },
                "visma_net": {
                    "client_id": VISMA_CLIENT,
                    "client_secret": VISMA_SECRET,
                    "token_url": sandbox.url(vn.TOKEN_PATH),
                },
            }
        ),
        "LEDGERLINK_AUTH_LOG_LEVEL": "WARNING",
    }


def importer_env(sandbox: RunningSandbox, auth: str) -> dict[str, str]:
    vendors = "LEDGERLINK_IMPORTER_VENDORS__"
    return {
        "LEDGERLINK_IMPORTER_TOKEN_SERVICE__URL": auth,
        "LEDGERLINK_IMPORTER_TOKEN_SERVICE__TOKEN": SERVICE_TOKEN,
        f"{vendors}NETVISOR__BASE_URL": sandbox.url("/netvisor"),
        f"{vendors}NETVISOR__PARTNER_ID": NETVISOR["partner_id"],
        f"{vendors}NETVISOR__PARTNER_KEY": NETVISOR["partner_key"],
        f"{vendors}PROCOUNTOR__BASE_URL": sandbox.url("/procountor"),
        f"{vendors}PROCOUNTOR__CLIENT_ID": PROCOUNTOR["client_id"],
        f"{vendors}PROCOUNTOR__CLIENT_SECRET": PROCOUNTOR["client_secret"],
        f"{vendors}PROCOUNTOR__REDIRECT_URI": PROCOUNTOR["redirect_uri"],
        f"{vendors}VISMA_NET__API_BASE_URL": sandbox.url(vn.API_PREFIX),
        f"{vendors}VISMA_NET__CONNECT_BASE_URL": sandbox.url("/visma-connect"),
        f"{vendors}VISMA_NET__CLIENT_ID": VISMA_CLIENT,
        f"{vendors}VISMA_NET__CLIENT_SECRET": VISMA_SECRET,
        f"{vendors}TWENTYFOUR__SOAP_BASE_URL": sandbox.url("/24so/soap"),
        f"{vendors}TWENTYFOUR__REST_BASE_URL": sandbox.url(tf.REST_PREFIX),
        f"{vendors}TWENTYFOUR__TOKEN_URL": sandbox.url(tf.TOKEN_PATH),
        f"{vendors}TWENTYFOUR__APPLICATION_ID": TF_APP,
        f"{vendors}TWENTYFOUR__REST_CLIENT_ID": TF_REST_CLIENT,
        f"{vendors}TWENTYFOUR__REST_CLIENT_SECRET": TF_REST_SECRET,
        "LEDGERLINK_IMPORTER_LOG_LEVEL": "WARNING",
    }


@pytest.fixture(scope="module")
async def wire(
    kafka_backend: KafkaBackend,
    postgres_backend: PostgresBackend,
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[Wire]:
    """auth and the importer as processes, the sandbox in the test's loop, one Kafka prefix
    and one database per service: shared by every test of the module."""
    tmp: Path = tmp_path_factory.mktemp("wire-ledger-sync")
    prefix = f"t{uuid.uuid4().hex[:10]}."
    await create_all_topics(kafka_backend, prefix)
    urls = {
        spec.name: await postgres_backend.create_database() for spec in SERVICES if spec.stateful
    }
    stack = Stack(
        StackConfig(
            bootstrap_servers=kafka_backend.bootstrap_servers,
            database_urls=urls,
            ports={spec.name: free_port() for spec in SERVICES},
            topic_prefix=prefix,
            env={
                "OTEL_TRACES_EXPORTER": "none",
                "LEDGERLINK_IMPORTER_FILES_DIR": str(tmp / "importer-files"),
                "LEDGERLINK_IMPORTER_IMPORT_POLL_SECONDS": "0.2",
            },
            log_dir=tmp / "logs",
        )
    )
    reader = EventReader(kafka_backend.bootstrap_servers, prefix)
    await reader.start()
    try:
        async with (
            running_sandbox(world=make_world()) as sandbox,
            PlainKafkaClient(kafka_backend.bootstrap_servers, prefix) as kafka,
            httpx.AsyncClient(timeout=60) as http,
        ):
            for name in ("auth", "importer"):
                stack.migrate(name)
            stack.start("auth", auth_env(sandbox))
            await stack.wait_ready("auth")
            stack.start("importer", importer_env(sandbox, stack.services["auth"].url))
            await stack.wait_ready("importer")
            world = sandbox.world
            tenants = {
                provider: world.vendor_tenants(module)[0]
                for provider, (module, _, _) in VENDORS.items()
            }
            yield Wire(stack, sandbox, reader, kafka, http, tenants, {})
    finally:
        await reader.stop()
        await asyncio.to_thread(stack.stop_all)
        for url in urls.values():
            await postgres_backend.drop_database(url)


# ----------------------------------------------------------------- authorising at vendors


def _pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    digest = hashlib.sha256(verifier.encode()).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


async def procountor_tokens(wire: Wire) -> dict[str, Any]:
    """The authorization code grant at the sandbox's Procountor, as a person and our
    callback would run it."""
    sandbox, http = wire.sandbox, wire.http
    login = await http.post(
        sandbox.url("/procountor/login"),
        data={
            "response_type": "code",
            "client_id": PROCOUNTOR["client_id"],
            "redirect_uri": PROCOUNTOR["redirect_uri"],
            "state": "s",
            "username": PROCOUNTOR["username"],
            "password": PROCOUNTOR["password"],
        },
    )
    assert login.status_code in (302, 303), login.text
    code = parse_qs(urlsplit(login.headers["location"]).query)["code"][0]
    tokens = await http.post(
        sandbox.url("/procountor/api/oauth/token"),
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": PROCOUNTOR["redirect_uri"],
            "client_id": PROCOUNTOR["client_id"],
            "client_secret": PROCOUNTOR["client_secret"],
        },
    )
    assert tokens.status_code == 200, tokens.text
    body: dict[str, Any] = tokens.json()
    return body


async def authorization(wire: Wire, provider: str) -> dict[str, Any]:
    """What the activation flow hands auth for this vendor's connection."""
    tenant = wire.tenants[provider]
    if provider == "netvisor":
        return {
            "kind": "netvisor",
            "vendor_account": tenant.tenant_id,
            "customer_id": tenant.tenant_id,
            "customer_key": NETVISOR["customer_key"],
            "organisation_id": tenant.company.business_id,
        }
    if provider == "procountor":
        tokens = await procountor_tokens(wire)
        return {
            "kind": "oauth",
            "vendor_account": tenant.tenant_id,
            "access_token": tokens["access_token"],
            "refresh_token": tokens.get("refresh_token"),
            "expires_in": tokens.get("expires_in"),
            "scope": tokens.get("scope"),
        }
    if provider == "visma_net":
        return {
            "kind": "client_credentials",
            "vendor_account": tenant.tenant_id,
            "client_id": VISMA_CLIENT,
            "client_secret": VISMA_SECRET,
            "tenant_id": tenant.tenant_id,
            "scope": "vismanet_erp_service_api:read",
        }
    identity = tf.state_of(wire.sandbox.world).users[TF_USER].identity_of(tenant.tenant_id)
    return {
        "kind": "twentyfour",
        "vendor_account": TF_USER,
        "username": TF_USER,
        "password": TF_PASSWORD,
        "identity_id": identity,
    }


def imports_of(wire: Wire, connection: str, ce_type: str) -> Callable[[Seen], bool]:
    topic = wire.reader.topic(Topic.IMPORTS)
    return lambda seen: (
        seen.topic == topic
        and seen.type == f"ledgerlink.{ce_type}.v1"
        and seen.data.get("connection_id") == connection
    )


async def completed(wire: Wire, connection: str, count: int) -> dict[str, Any]:
    """The ``count``-th ``import.completed`` of the connection (no sync of it failed)."""
    done = imports_of(wire, connection, "import.completed")
    failed = imports_of(wire, connection, "import.failed")
    # A failure ends the wait at once (every sync of these tests must complete).
    await wire.reader.wait_for(lambda seen: done(seen) or failed(seen), count=count, timeout=240)
    failures = wire.reader.matching(failed)
    assert not failures, [f.data for f in failures]
    data: dict[str, Any] = wire.reader.matching(done)[count - 1].data
    return data


async def activated(wire: Wire, provider: str) -> str:
    """The connection of the vendor's company, activated through auth and imported once."""
    if provider in wire.connections:
        return wire.connections[provider]
    tenant = wire.tenants[provider]
    business_id, country = tenant.company.business_id, VENDORS[provider][1]
    await wire.kafka.send(
        Topic.ACTIVATIONS,
        {
            "provider": provider,
            "business_id": business_id,
            "country": country,
            "company_name": tenant.company.name,
            "requested_by": {"email": "controller@example.fi", "name": "Kaisa Controller"},
            "product": "planning",
        },
        key=business_id,
        ce_type=ACTIVATION,
    )

    async def connection_id() -> str | None:
        rows = [row for row in await stored_connections(wire.stack, business_id) if row]
        return str(rows[0]["id"]) if rows else None

    connection = await eventually(connection_id, timeout=60, what=f"the {provider} connection")
    started = await wire.http.post(
        f"{wire.auth}/internal/v1/connections/{connection}/authorization/start", headers=HEADERS
    )
    assert started.status_code == 200, started.text
    authorized = await wire.http.post(
        f"{wire.auth}/internal/v1/connections/{connection}/authorization",
        json=await authorization(wire, provider),
        headers=HEADERS,
    )
    assert authorized.status_code == 200, authorized.text
    wire.connections[provider] = connection
    return connection


async def request_sync(wire: Wire, provider: str, mode: str) -> None:
    connection = wire.connections[provider]
    business_id = wire.tenants[provider].company.business_id
    await wire.kafka.send(
        Topic.IMPORT_REQUESTS,
        {
            "connection_id": connection,
            "business_id": business_id,
            "provider": provider,
            "mode": mode,
        },
        key=business_id,
        ce_type=REQUESTED,
    )


# ------------------------------------------------------------------------- ground truth


def books(provider: str, tenant: Tenant) -> CompanyData:
    """The books the vendor's API shows (Procountor adds its payroll's salary receipts)."""
    company = tenant.company
    if provider != "procountor":
        return company
    return CompanyData(
        business_id=company.business_id,
        name=company.name,
        country=company.country,
        currency=company.currency,
        accounts=company.accounts,
        dimensions=company.dimensions,
        fiscal_years=company.fiscal_years,
        vouchers=[*company.vouchers, *_salary_receipts(tenant)],
        payroll_runs=[],
    )


def truth(company: CompanyData, kinds: frozenset[str]) -> dict[Key, tuple[Decimal, Decimal]]:
    """(period YYYY-MM, account, dimension kind, object) -> (debit, credit) of valid vouchers."""
    totals: dict[Key, list[Decimal]] = {}
    for voucher in company.vouchers:
        if voucher.status != "valid":
            continue
        period = voucher.date.strftime("%Y-%m")
        for line in voucher.lines:
            keys = [(period, line.account, "", "")]
            keys += [
                (period, line.account, kind, code)
                for kind, code in line.dimensions.items()
                if kind in kinds
            ]
            for key in keys:
                pair = totals.setdefault(key, [Decimal(0), Decimal(0)])
                pair[0 if line.amount >= 0 else 1] += abs(line.amount)
    return {k: (d, c) for k, (d, c) in totals.items() if d or c}


async def dimension_ids(wire: Wire, business_id: str) -> dict[str, str]:
    """kind -> the importer's dimension id, for the live company (read from its store)."""
    engine = create_async_engine(wire.stack.config.database_urls["importer"])
    try:
        async with engine.connect() as connection:
            rows = await connection.execute(
                text(
                    "SELECT d.kind, d.dimension_id FROM dimensions d "
                    "JOIN companies c ON c.id = d.company_id WHERE c.business_id = :b"
                ),
                {"b": business_id},
            )
            return {str(kind): str(dimension_id) for kind, dimension_id in rows.all()}
    finally:
        await engine.dispose()


async def trial_balances(
    wire: Wire, provider: str, company: CompanyData
) -> dict[Key, tuple[Decimal, Decimal]]:
    """The importer's per-period trial balances over HTTP, in total and per object."""
    business_id = company.business_id
    kinds = VENDORS[provider][2]
    ids = await dimension_ids(wire, business_id)
    assert kinds <= set(ids), (provider, ids)
    objects = {
        kind: sorted({o.code for d in company.dimensions if d.kind == kind for o in d.objects})
        for kind in kinds
    }
    periods = [p.start.strftime("%Y-%m") for year in company.fiscal_years for p in year.periods]
    targets: list[tuple[str, str, dict[str, str]]] = [("", "", {})]
    targets += [
        (kind, code, {"dimension": ids[kind], "object": code})
        for kind in sorted(kinds)
        for code in objects[kind]
    ]
    limit = asyncio.Semaphore(8)
    found: dict[Key, tuple[Decimal, Decimal]] = {}

    async def one(period: str, kind: str, code: str, params: dict[str, str]) -> None:
        async with limit:
            response = await wire.http.get(
                f"{wire.importer}/v1/companies/{business_id}/trial-balance",
                params={"from": period, "to": period, **params},
            )
        assert response.status_code == 200, response.text
        for row in response.json()["accounts"]:
            debit, credit = Decimal(row["debit"]), Decimal(row["credit"])
            if debit or credit:
                found[(period, row["account"], kind, code)] = (debit, credit)

    await asyncio.gather(*(one(period, *target) for period in periods for target in targets))
    return found


async def job_of(wire: Wire, import_id: str) -> dict[str, Any]:
    response = await wire.http.get(f"{wire.importer}/v1/imports/{import_id}")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def change_books(company: CompanyData, seed: int) -> int:
    """Edit, invalidate and delete vouchers and add one, as people at the company would
    between two syncs; returns how many vouchers changed."""
    valid = [v for v in company.vouchers if v.status == "valid" and v.series != "API"]
    edited, invalidated, deleted, moved = (
        valid[seed],
        valid[seed + 5],
        valid[seed + 9],
        valid[seed + 13],
    )
    # An edit of the amounts (the lines swap sides) and one of the date (another period).
    company.edit_voucher(
        edited.id,
        lines=[
            LineData(line.line_no, line.account, -line.amount, line.description,
                     line.vat_percent, line.vat_code, line.dimensions)
            for line in edited.lines
        ],
    )  # fmt: skip
    company.edit_voucher(moved.id, date=moved.date.replace(day=1) + dt.timedelta(days=40))
    company.invalidate_voucher(invalidated.id)
    company.delete_voucher(deleted.id)
    first = valid[0].lines
    company.add_voucher(
        date=dt.date(2025, 6, 12),
        description=f"Posted between two syncs {seed}",
        lines=[
            LineData(1, first[0].account, Decimal("321.09"), dimensions=first[1].dimensions),
            LineData(2, first[1].account, Decimal("-321.09"), dimensions=first[1].dimensions),
        ],
    )
    return 5


# ------------------------------------------------------------------------------- tests


@pytest.mark.parametrize("provider", list(VENDORS))
async def test_company_activated_through_auth_equals_the_sandbox_and_stays_current(
    wire: Wire, provider: str
) -> None:
    tenant = wire.tenants[provider]
    kinds = VENDORS[provider][2]
    connection = await activated(wire, provider)
    first = await completed(wire, connection, 1)
    assert first["outcome"] == "imported"
    reconciled = "balanced" if provider in RECONCILED else "not_available"
    assert (first["reconciliation_status"], first["differences"]) == (reconciled, [])
    company = books(provider, tenant)
    assert await trial_balances(wire, provider, company) == truth(company, kinds)

    changed = change_books(tenant.company, seed=3)
    await request_sync(wire, provider, "incremental")
    second = await completed(wire, connection, 2)
    job = await job_of(wire, second["import_id"])
    assert (second["reconciliation_status"], second["differences"]) == (reconciled, [])
    company = books(provider, tenant)
    assert await trial_balances(wire, provider, company) == truth(company, kinds)
    if provider == "24sevenoffice":
        # No change filter at 24SevenOffice: the incremental sync reads everything.
        assert job["sync_mode"] == "full_refresh"
        # Everything listed was read: the valid vouchers (24SevenOffice does not list a
        # deleted or invalidated transaction, so those left with the swap).
        assert job["counts"]["sync_vouchers_read"] == sum(
            1 for v in company.vouchers if v.status == "valid"
        )
    else:
        assert job["sync_mode"] == "incremental"
        # Only the changed vouchers were read; the invalidated and the deleted one left.
        assert job["counts"]["sync_vouchers_read"] == changed
        assert job["counts"]["sync_vouchers_removed"] == 2


@pytest.mark.parametrize("provider", list(VENDORS))
async def test_token_expiry_429_storm_5xx_and_resets_slow_the_sync_never_change_the_ledger(
    wire: Wire, provider: str
) -> None:
    tenant = wire.tenants[provider]
    kinds = VENDORS[provider][2]
    connection = await activated(wire, provider)
    done = len(wire.reader.matching(imports_of(wire, connection, "import.completed")))
    if done == 0:
        await completed(wire, connection, 1)
        done = 1
    change_books(tenant.company, seed=20)
    module = VENDORS[provider][0]
    world = wire.sandbox.world
    world.faults.set(
        FaultPlan(
            vendor=module,
            tenant=tenant.tenant_id,
            storm_429=3,
            retry_after_seconds=0.01,
            error_rate=0.08,
            reset_rate=0.04,
            expire_tokens_after=4,
            seed=14,
        )
    )
    grants = dict(world.oauth_servers()[module].grant_counts) if module in OAUTH else {}
    logins = tf.state_of(world).login_count
    try:
        await request_sync(wire, provider, "full_refresh")
        result = await completed(wire, connection, done + 1)
        progress = world.faults.progress(module, tenant.tenant_id)
    finally:
        world.faults.clear(module)
    assert result["outcome"] == "replaced"
    # Every fault happened: the storm was answered in full, the tokens expired mid-sync.
    assert progress is not None
    assert progress["storm_left"] == 0
    assert progress["tokens_expired"] is True
    if module in OAUTH:
        # The refused token was renewed through auth's token service at the vendor.
        after = world.oauth_servers()[module].grant_counts
        assert sum(after.values()) > sum(grants.values())
    if module == "twentyfour":
        # The forgotten session was replaced by a new login (auth's, for the connection).
        assert tf.state_of(world).login_count > logins
    company = books(provider, tenant)
    assert await trial_balances(wire, provider, company) == truth(company, kinds)


def swap_sides(company: CompanyData, voucher_id: int, stamp: dt.datetime) -> None:
    """Edit a voucher (its lines change sides) and give the change exactly ``stamp``, as a
    vendor whose clock has coarse ticks stamps several changes alike."""
    voucher = company.voucher(voucher_id)
    company.edit_voucher(
        voucher_id,
        lines=[
            LineData(line.line_no, line.account, -line.amount, line.description,
                     line.vat_percent, line.vat_code, line.dimensions)
            for line in voucher.lines
        ],
    )  # fmt: skip
    voucher.modified_at = stamp


@pytest.mark.parametrize("provider", ["netvisor", "procountor", "visma_net"])
async def test_equal_stamps_across_a_page_and_a_change_at_the_cursor_are_all_read(
    wire: Wire, provider: str
) -> None:
    """Airbyte #14732/#15427, Nango #1132: rows lost at cursor boundaries. Many changes
    share one stamp across a page boundary; then a change carries exactly the stamp the
    cursor stopped at. Both syncs must read every one of them."""
    tenant = wire.tenants[provider]
    kinds = VENDORS[provider][2]
    company = tenant.company
    connection = await activated(wire, provider)
    done = len(wire.reader.matching(imports_of(wire, connection, "import.completed")))
    if done == 0:
        await completed(wire, connection, 1)
        done = 1
    world = wire.sandbox.world
    # After every earlier change, and not ahead of the clock the importer reads up to.
    stamp = max(
        max(v.modified_at for v in company.vouchers) + dt.timedelta(milliseconds=1),
        world.now() - dt.timedelta(seconds=2),
    )
    # More changes than a page holds (Visma.net pages 500 lines, Procountor 200
    # receipts), all stamped alike.
    many = [v.id for v in company.vouchers if v.status == "valid"][:220]
    for voucher_id in many:
        swap_sides(company, voucher_id, stamp)
    company._last_modified = stamp
    await request_sync(wire, provider, "incremental")
    first = await completed(wire, connection, done + 1)
    assert (await job_of(wire, first["import_id"]))["counts"]["sync_vouchers_read"] >= len(many)
    assert await trial_balances(wire, provider, books(provider, tenant)) == truth(
        books(provider, tenant), kinds
    )

    # The cursor now stands at ``stamp``: one more change with exactly that stamp.
    late = next(v.id for v in company.vouchers if v.status == "valid" and v.id not in many)
    swap_sides(company, late, stamp)
    await request_sync(wire, provider, "incremental")
    result = await completed(wire, connection, done + 2)
    job = await job_of(wire, result["import_id"])
    assert job["sync_mode"] == "incremental"
    assert job["counts"]["sync_vouchers_read"] >= 1
    assert await trial_balances(wire, provider, books(provider, tenant)) == truth(
        books(provider, tenant), kinds
    )


async def test_backfill_requested_over_kafka_replaces_its_range_exactly(wire: Wire) -> None:
    """``import.requested`` with mode backfill: the range is read again and replaced
    exactly (a voucher gone at the vendor leaves), other periods stay as they were."""
    provider = "visma_net"
    tenant = wire.tenants[provider]
    kinds = VENDORS[provider][2]
    company = tenant.company
    connection = await activated(wire, provider)
    done = len(wire.reader.matching(imports_of(wire, connection, "import.completed")))
    if done == 0:
        await completed(wire, connection, 1)
        done = 1
    before = truth(company, kinds)
    first_day, last_day = dt.date(2025, 5, 1), dt.date(2025, 5, 31)
    inside = [
        v for v in company.vouchers if v.status == "valid" and first_day <= v.date <= last_day
    ]
    outside = next(v for v in company.vouchers if v.status == "valid" and v.date.month == 8)
    # Corrections the change filter cannot see (no new stamp), inside and outside the range,
    # and a voucher that vanished at the vendor.
    for voucher in (inside[0], outside):
        voucher.lines = [
            LineData(line.line_no, line.account, -line.amount, line.description,
                     line.vat_percent, line.vat_code, line.dimensions)
            for line in voucher.lines
        ]  # fmt: skip
    company.vouchers.remove(inside[1])
    company.__post_init__()
    after = truth(company, kinds)
    business_id = company.business_id
    await wire.kafka.send(
        Topic.IMPORT_REQUESTS,
        {
            "connection_id": connection,
            "business_id": business_id,
            "provider": provider,
            "mode": "backfill",
            "backfill_from": str(first_day),
            "backfill_to": str(last_day),
        },
        key=business_id,
        ce_type=REQUESTED,
    )
    result = await completed(wire, connection, done + 1)
    job = await job_of(wire, result["import_id"])
    assert job["sync_mode"] == "backfill"
    assert (job["sync_from"], job["sync_to"]) == (str(first_day), str(last_day))
    assert job["counts"]["sync_vouchers_removed"] == 1
    found = await trial_balances(wire, provider, company)
    may = first_day.strftime("%Y-%m")
    assert {k: v for k, v in found.items() if k[0] == may} == {
        k: v for k, v in after.items() if k[0] == may
    }
    assert {k: v for k, v in found.items() if k[0] != may} == {
        k: v for k, v in before.items() if k[0] != may
    }
    assert before != after
    # Visma.net's own balances now differ from ours from August on (the correction outside
    # the range): every difference is listed per account and period.
    assert result["reconciliation_status"] == "differences"
    listed = {(d["period"], d["account"]) for d in result["differences"]}
    assert min(period for period, _ in listed) == "2025-08"
    assert {account for _, account in listed} <= {line.account for line in outside.lines}
