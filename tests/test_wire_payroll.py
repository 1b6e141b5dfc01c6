"""Over the wire: payroll journals from the sandbox's Nmbrs into its Visma.net through the
journal-exporter process, with credentials from the auth process's token service.

* A year of runs for 300 employees with cost centres, cost units and retroactive
  corrections: Visma.net holds exactly the batches computed from the Nmbrs data in this test
  (per period and reference: accounts, segments, amounts). Exporting again posts nothing.
* 20 trials, each a new Nmbrs company: faults on the posting calls in turn (answer lost
  after Visma.net accepted, 5xx, a 429 storm, connection resets) and a SIGKILL of the
  exporter at a seeded random moment: 0 missing and 0 duplicate batches. Four exporter
  processes run as replicas on one store, in turn: each trial's export goes to one of
  them, which is SIGKILLed at the trial's moment and restarted in the background; the next
  one (restarted three trials ago) finishes the trial. A restart takes ~15 s here (mostly
  Kafka group joins), so overlapping it with the next trials keeps every trial's kill
  without waiting for each restart (10-13 min before, one process restarted in place).
* A test company is refused with the seed's meaning; nothing is posted.
"""

from __future__ import annotations

import asyncio
import json
import random
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import IO, Any

import httpx
import pytest
from auth_store import stored_connections
from payroll_kit import (
    NMBRS_DOMAIN,
    NMBRS_TOKEN,
    NMBRS_USER,
    VISMA_CLIENT,
    VISMA_SECRET,
    actual_batches,
    expected_batches,
)
from wire_helpers import EventReader, PlainKafkaClient, eventually, free_port

from ledgerlink.cli.stack import SERVICES_BY_NAME, Stack
from ledgerlink.sandbox.config import RateLimitSettings, SandboxConfig
from ledgerlink.sandbox.faults import FaultPlan
from ledgerlink.sandbox.payroll import payroll_company
from ledgerlink.sandbox.testing import RunningSandbox, running_sandbox
from ledgerlink.sandbox.vendors import nmbrs as sandbox_nmbrs
from ledgerlink.sandbox.vendors import vismanet as sandbox_visma
from ledgerlink.sandbox.world import Tenant, World
from ledgerlink.shared.testing import KafkaBackend
from ledgerlink.shared.topics import Topic

# 20 trials, each with a SIGKILL and a restart of an exporter process.
pytestmark = [pytest.mark.wire, pytest.mark.timeout(900)]

SERVICE_TOKEN = "wire-exporter-token-0123456789abcdef0123"
API_TOKEN = "wire-payroll-operator-token-0123456789"
API = {"Authorization": f"Bearer {API_TOKEN}"}
ACTIVATION = "ledgerlink.activation.requested.v1"
POSTED = "ledgerlink.payroll_journal.posted.v1"
TRIALS = 20
REPLICAS = 4


@dataclass
class Replica:
    """One journal-exporter process of the ``REPLICAS`` the trials take in turn."""

    port: int
    process: subprocess.Popen[bytes] | None = None
    log: IO[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@dataclass
class Payroll:
    stack: Stack
    sandbox: RunningSandbox
    visma: Tenant
    nmbrs_connection: str
    visma_connection: str
    exporter_env: dict[str, str]
    replicas: list[Replica] = field(default_factory=list)
    active: int = 0
    starts: int = 0

    @property
    def world(self) -> World:
        return self.sandbox.world

    @property
    def url(self) -> str:
        return self.replicas[self.active].url

    def batches(self, company: Tenant) -> list[dict[str, Any]]:
        """The batches the exporter made for one Nmbrs company (its description names it:
        several companies here share run references, as payrolls may)."""
        extras = self.visma.state.get("vismanet_batches", {})
        found = []
        mark = f"(Nmbrs {sandbox_nmbrs.company_id(company)})"
        for voucher in self.visma.company.vouchers:
            extra = extras.get(voucher.id)
            if extra is None or mark not in voucher.description:
                continue
            refs = set(extra.references.values())
            found.append(
                {
                    "number": str(voucher.id),
                    "period": extra.financial_period,
                    "references": refs,
                    "lines": [
                        (
                            line.account,
                            line.dimensions.get("cost_centre"),
                            line.dimensions.get("cost_unit"),
                            line.amount,
                        )
                        for line in voucher.lines
                    ],
                }
            )
        return found

    def add_company(self, seed: int, employees: int, **flags: Any) -> Tenant:
        return self.world.add_tenant(
            "nmbrs",
            company=payroll_company(seed, employees=employees),
            credentials={"username": NMBRS_USER, "token": NMBRS_TOKEN, "domain": NMBRS_DOMAIN},
            **flags,
        )

    def start_replica(self, index: int) -> None:
        """Start replica ``index`` (not waiting for it)."""
        # Each start joins its own consumer group: a SIGKILLed member would hold the group
        # in a rebalance until its session times out (nothing here consumes payroll events).
        self.starts += 1
        replica = self.replicas[index]
        env = self.stack.service_env(
            SERVICES_BY_NAME["journal-exporter"],
            {
                **self.exporter_env,
                "LEDGERLINK_JOURNAL_EXPORTER_CONSUMER_GROUP": f"exporter-{self.starts}",
                "LEDGERLINK_JOURNAL_EXPORTER_HTTP__PORT": str(replica.port),
            },
        )
        path = self.stack.log_path("journal-exporter")
        assert path is not None
        path.parent.mkdir(parents=True, exist_ok=True)
        replica.log = path.with_name(f"journal-exporter-{index}.log").open("ab")
        replica.process = subprocess.Popen(
            [sys.executable, "-m", "ledgerlink.journal_exporter", "serve"],
            env=env,
            stdout=replica.log,
            stderr=subprocess.STDOUT,
        )

    async def wait_ready(self, index: int) -> None:
        replica = self.replicas[index]
        process = replica.process
        assert process is not None

        async def probe() -> bool | None:
            assert process.poll() is None, f"replica {index} exited with {process.returncode}"
            try:
                async with httpx.AsyncClient(timeout=5) as http:
                    answer = await http.get(f"{replica.url}/readyz")
            except httpx.TransportError:
                return None
            return True if answer.status_code == 200 else None

        # Generous: a start joins Kafka, and this machine may be busy with other runs.
        await eventually(probe, timeout=180, what=f"exporter replica {index} ready")

    def kill(self, index: int) -> None:
        """SIGKILL: no shutdown, no flush: a crash."""
        replica = self.replicas[index]
        assert replica.process is not None
        replica.process.kill()
        replica.process.wait(timeout=30)
        if replica.log is not None:
            replica.log.close()
        replica.process, replica.log = None, None

    def stop_all(self) -> None:
        running = [r.process for r in self.replicas if r.process and r.process.poll() is None]
        for process in running:  # all at once: each takes seconds to leave Kafka
            process.terminate()
        for process in running:
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)
        for replica in self.replicas:
            if replica.log is not None:
                replica.log.close()

    async def map(self, http: httpx.AsyncClient, tenant: Tenant) -> str:
        response = await http.post(
            f"{self.url}/v1/payroll/mappings",
            json={
                "name": f"Payroll {tenant.tenant_id}",
                "nmbrs_connection_id": self.nmbrs_connection,
                "nmbrs_company_id": str(sandbox_nmbrs.company_id(tenant)),
                "vismanet_connection_id": self.visma_connection,
                "vismanet_company_id": sandbox_visma.company_id(self.visma),
                "cost_centre_description": "Kostenplaats",
                "cost_unit_description": "Kostendrager",
            },
            headers=API,
        )
        assert response.status_code == 201, response.text
        return str(response.json()["mapping_id"])

    async def all_posted(self, http: httpx.AsyncClient, mapping: str, expected: int) -> None:
        async def probe() -> bool | None:
            try:
                answer = await http.get(
                    f"{self.url}/v1/payroll/postings", params={"mapping_id": mapping}, headers=API
                )
            except httpx.TransportError:
                return None
            rows = answer.json()
            done = len(rows) == expected and all(row["status"] == "posted" for row in rows)
            return True if done else None

        await eventually(probe, timeout=120, what=f"every posting of {mapping} posted")


async def activate(
    kafka_backend: KafkaBackend, stack: Stack, provider: str, business_id: str
) -> str:
    async with PlainKafkaClient(
        kafka_backend.bootstrap_servers, stack.config.topic_prefix
    ) as kafka:
        await kafka.send(
            Topic.ACTIVATIONS,
            {
                "provider": provider,
                "business_id": business_id,
                "country": "NL",
                "company_name": f"{provider} {business_id}",
                "requested_by": {"email": "ops@example.nl", "name": "Ops"},
                "product": "planning",
            },
            key=business_id,
            ce_type=ACTIVATION,
        )

    async def probe() -> str | None:
        rows = await stored_connections(stack, business_id)
        return str(rows[0]["id"]) if rows else None

    return await eventually(probe, timeout=60, what=f"the {provider} connection")


@pytest.fixture
async def payroll(stack: Stack, kafka_backend: KafkaBackend) -> AsyncIterator[Payroll]:
    config = SandboxConfig(
        seed=15,
        rate_limits={"vismanet": RateLimitSettings(rate_per_second=100_000, burst=1_000_000)},
    )
    world = World(config)
    first = world.add_tenant(
        "nmbrs",
        company=payroll_company(15, employees=300),
        credentials={"username": NMBRS_USER, "token": NMBRS_TOKEN, "domain": NMBRS_DOMAIN},
    )
    assert first is not None
    visma = world.add_tenant("vismanet", company=payroll_company(15, employees=1))
    async with running_sandbox(world=world, vendors=("nmbrs", "vismanet")) as sandbox:
        sandbox_visma.register_client(world, VISMA_CLIENT, VISMA_SECRET)
        auth_env = {
            "LEDGERLINK_AUTH_VAULT__KEYS": json.dumps(
                {"1": "wire-vault-key-0123456789abcdef-0123"}
            ),
            "LEDGERLINK_AUTH_VAULT__ACTIVE_KEY": "1",
            "LEDGERLINK_AUTH_SERVICE_TOKENS": json.dumps({"journal-exporter": SERVICE_TOKEN}),
            "LEDGERLINK_AUTH_OAUTH_PROVIDERS": json.dumps(
                {
                    "visma_net": {
                        "client_id": VISMA_CLIENT,
                        "client_secret": VISMA_SECRET,
                        "token_url": f"{sandbox.base_url}/visma-connect/connect/token",
                    }
                }
            ),
            "LEDGERLINK_AUTH_LOG_LEVEL": "WARNING",
            "OTEL_TRACES_EXPORTER": "none",
        }
        stack.migrate("auth")
        stack.start("auth", auth_env)
        stack.migrate("journal-exporter")
        auth = stack.services["auth"].url
        exporter_env = {
            "LEDGERLINK_JOURNAL_EXPORTER_TOKEN_SERVICE__URL": auth,
            "LEDGERLINK_JOURNAL_EXPORTER_TOKEN_SERVICE__TOKEN": SERVICE_TOKEN,
            "LEDGERLINK_JOURNAL_EXPORTER_PAYROLL__NMBRS_BASE_URL": f"{sandbox.base_url}/nmbrs",
            "LEDGERLINK_JOURNAL_EXPORTER_PAYROLL__VISMANET_API_BASE_URL": (
                f"{sandbox.base_url}/vismanet"
            ),
            "LEDGERLINK_JOURNAL_EXPORTER_PAYROLL__RUNNER_POLL_SECONDS": "0.2",
            "LEDGERLINK_JOURNAL_EXPORTER_PAYROLL__LEASE_SECONDS": "3",
            "LEDGERLINK_JOURNAL_EXPORTER_PAYROLL__RETRY_INITIAL_SECONDS": "0.2",
            "LEDGERLINK_JOURNAL_EXPORTER_PAYROLL__RETRY_MAX_SECONDS": "1",
            "LEDGERLINK_JOURNAL_EXPORTER_PAYROLL__VENDOR_RETRY_ATTEMPTS": "3",
            "LEDGERLINK_JOURNAL_EXPORTER_PAYROLL__VISMANET_REQUESTS_PER_SECOND": "10000",
            "LEDGERLINK_JOURNAL_EXPORTER_PAYROLL__API_TOKENS": json.dumps({"ops": API_TOKEN}),
            "LEDGERLINK_JOURNAL_EXPORTER_LOG_LEVEL": "WARNING",
            "OTEL_TRACES_EXPORTER": "none",
        }
        made = Payroll(
            stack,
            sandbox,
            visma,
            "",
            "",
            exporter_env,
            replicas=[Replica(free_port()) for _ in range(REPLICAS)],
        )
        try:
            # The first replica starts beside auth (it needs auth only once it posts); the
            # others join once it serves.
            made.start_replica(0)
            await stack.wait_ready("auth")
            nmbrs_connection = await activate(kafka_backend, stack, "nmbrs", "81500015")
            visma_connection = await activate(kafka_backend, stack, "visma_net", "81500016")
            async with httpx.AsyncClient(timeout=30) as http:
                for connection, body in (
                    (
                        nmbrs_connection,
                        {
                            "kind": "nmbrs_token",
                            "vendor_account": NMBRS_DOMAIN,
                            "username": NMBRS_USER,
                            "domain": NMBRS_DOMAIN,
                            "token": NMBRS_TOKEN,
                        },
                    ),
                    (
                        visma_connection,
                        {
                            "kind": "client_credentials",
                            "vendor_account": visma.tenant_id,
                            "client_id": VISMA_CLIENT,
                            "client_secret": VISMA_SECRET,
                            "tenant_id": visma.tenant_id,
                            "scope": " ".join(sorted(sandbox_visma.SERVICE_SCOPES)),
                        },
                    ),
                ):
                    stored = await http.post(
                        f"{auth}/internal/v1/connections/{connection}/authorization",
                        json=body,
                        headers={"Authorization": f"Bearer {SERVICE_TOKEN}"},
                    )
                    assert stored.status_code == 200, stored.text
            made.nmbrs_connection, made.visma_connection = nmbrs_connection, visma_connection
            await made.wait_ready(0)
            for index in range(1, REPLICAS):
                made.start_replica(index)
            yield made
        finally:
            await asyncio.to_thread(made.stop_all)


async def test_a_year_for_300_employees_lands_exactly_once_and_survives_faults_and_kills(
    payroll: Payroll, reader: EventReader
) -> None:
    first = payroll.world.vendor_tenants("nmbrs")[0]
    async with httpx.AsyncClient(timeout=120) as http:
        mapping = await payroll.map(http, first)
        exported = await http.post(
            f"{payroll.url}/v1/payroll/mappings/{mapping}/exports",
            json={"period_from": "2025-01", "period_to": "2025-12"},
            headers=API,
        )
        assert exported.status_code == 202, exported.text
        planned = exported.json()
        assert len(planned) == len(first.company.payroll_runs)
        await payroll.all_posted(http, mapping, len(planned))
        assert actual_batches(payroll.batches(first)) == expected_batches(first.company)

        # Exporting again posts nothing new.
        again = await http.post(
            f"{payroll.url}/v1/payroll/mappings/{mapping}/exports",
            json={"period_from": "2025-01", "period_to": "2025-12"},
            headers=API,
        )
        assert again.status_code == 202
        assert {row["id"] for row in again.json()} == {row["id"] for row in planned}
        assert len(payroll.batches(first)) == len(planned)
        periods = await http.get(
            f"{payroll.url}/v1/payroll/mappings/{mapping}/status",
            params={"by": "period"},
            headers=API,
        )
        assert {row["status"] for row in periods.json()} == {"posted"}
        assert len(periods.json()) == 12
        # The CLI, as an operator runs it against the exporter process.
        cli = await asyncio.to_thread(
            subprocess.run,
            [
                sys.executable,
                "-c",
                "from ledgerlink.cli.main import app; app()",
                "payroll",
                "status",
                mapping,
                "--by",
                "period",
                "--exporter-url",
                payroll.url,
                "--token",
                API_TOKEN,
            ],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert cli.returncode == 0, cli.stderr
        assert [line.split()[:2] for line in cli.stdout.splitlines()] == [
            [f"2025-{month:02d}", "posted"] for month in range(1, 13)
        ]
        wrong = await asyncio.to_thread(
            subprocess.run,
            [
                sys.executable,
                "-c",
                "from ledgerlink.cli.main import app; app()",
                "payroll",
                "map",
                "--name",
                "wrong",
                "--nmbrs-connection",
                payroll.nmbrs_connection,
                "--nmbrs-company",
                "999",
                "--vismanet-connection",
                payroll.visma_connection,
                "--vismanet-company",
                sandbox_visma.company_id(payroll.visma),
                "--cost-centres",
                "Afdeling",
                "--exporter-url",
                payroll.url,
                "--token",
                API_TOKEN,
            ],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert wrong.returncode == 1
        assert "error [mapping_invalid]" in wrong.stderr
        assert "cost_centre_description: No dimension in Visma.net" in wrong.stderr

        evidence = await http.get(
            f"{payroll.url}/v1/payroll/evidence.csv", params={"mapping_id": mapping}, headers=API
        )
        assert evidence.status_code == 200
        assert evidence.text.count("\r\n") >= len(planned) + 1

        # Faults on the posting calls in turn, and a SIGKILL at a seeded random moment.
        faults: list[dict[str, Any]] = [
            {"lose_answer_rate": 0.5},
            {"error_rate": 0.4, "error_status": 503},
            {"storm_429": 2, "retry_after_seconds": 1},
            {"reset_rate": 0.3},
        ]
        rng = random.Random(15)
        trial_postings = 0
        for trial in range(TRIALS):
            # This trial's exporter (restarted in an earlier trial, or at the beginning).
            payroll.active = trial % REPLICAS
            await payroll.wait_ready(payroll.active)
            tenant = payroll.add_company(1000 + trial, employees=15)
            trial_mapping = await payroll.map(http, tenant)
            exported = await http.post(
                f"{payroll.url}/v1/payroll/mappings/{trial_mapping}/exports",
                json={"period_from": "2025-01", "period_to": "2025-04"},
                headers=API,
            )
            assert exported.status_code == 202, exported.text
            # The faults hit the posting calls (the runner starts on the planned postings).
            payroll.world.faults.set(
                FaultPlan(vendor="vismanet", seed=trial, **faults[trial % len(faults)])
            )
            count = len(exported.json())
            trial_postings += count
            # The kill point: a seeded moment while the runner posts.
            await asyncio.sleep(rng.uniform(0, 0.6))
            killed = payroll.active
            payroll.kill(killed)
            payroll.start_replica(killed)  # back in REPLICAS - 1 trials
            # The next replica takes over what the killed one held once its lease runs out.
            payroll.active = (killed + 1) % REPLICAS
            await payroll.wait_ready(payroll.active)
            await payroll.all_posted(http, trial_mapping, count)
            payroll.world.faults.clear()
            expected = expected_batches(tenant.company, runs=[str(month) for month in range(1, 5)])
            # Trial 15's company has the first company's run references (seed 1015 vs 15).
            got = actual_batches(payroll.batches(tenant))  # raises on a duplicate batch
            assert got == expected, f"trial {trial}"

        # A test company: refused with the seed's meaning, nothing posted.
        test_company = payroll.add_company(77, employees=5, test_company=True)
        refused_mapping = await payroll.map(http, test_company)
        refused = await http.post(
            f"{payroll.url}/v1/payroll/mappings/{refused_mapping}/exports",
            json={"runs": ["2025-1"]},
            headers=API,
        )
        assert refused.status_code == 422
        assert refused.json()["detail"]["reason_code"] == "test_company"
        assert "marked as a test company" in refused.json()["detail"]["message"]
        assert payroll.batches(test_company) == []

        # Every posting's event is on Kafka (at least once; one posting id each).
        total = len(planned) + trial_postings
        exports_topic = reader.topic(Topic.JOURNAL_EXPORTS)

        async def posted_ids() -> set[str] | None:
            ids = {
                seen.data["posting_id"]
                for seen in reader.matching(
                    lambda seen: seen.topic == exports_topic and seen.type == POSTED
                )
            }
            return ids if len(ids) >= total else None

        assert len(await eventually(posted_ids, timeout=60, what="posted events")) == total
