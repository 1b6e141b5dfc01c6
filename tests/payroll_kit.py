"""Test kit of payroll exports: the sandbox's Nmbrs and Visma.net over real HTTP, a stand-in
of auth's token service over real HTTP, and what Visma.net should hold, computed from the
Nmbrs data independently of the exporter's code."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import httpx
import uvicorn
from fastapi import FastAPI, HTTPException

from ledgerlink.sandbox.config import SandboxConfig
from ledgerlink.sandbox.data import CompanyData
from ledgerlink.sandbox.payroll import payroll_company
from ledgerlink.sandbox.testing import RunningSandbox, running_sandbox
from ledgerlink.sandbox.vendors import nmbrs as sandbox_nmbrs
from ledgerlink.sandbox.vendors import vismanet as sandbox_visma
from ledgerlink.sandbox.world import Tenant, World
from ledgerlink.shared.testing import serving

SERVICE_TOKEN = "exporter-service-token-0123456789abcdef"
VISMA_CLIENT, VISMA_SECRET = "isv_payroll_tests", "payroll-tests-secret"
NMBRS_USER, NMBRS_TOKEN, NMBRS_DOMAIN = "payroll@tests.invalid", "nmbrs-api-token-42", "tests"

#: (account, cost centre, cost unit) -> signed amount (debit positive).
Totals = dict[tuple[str, str | None, str | None], Decimal]


@dataclass
class TokenServiceStub:
    """auth's token service as the exporter sees it: connection id -> credential answer."""

    credentials: dict[uuid.UUID, dict[str, Any]] = field(default_factory=dict)
    requests: int = 0

    def app(self) -> FastAPI:
        app = FastAPI()

        @app.post("/internal/v1/connections/{connection_id}/credentials")
        async def credentials(connection_id: uuid.UUID, request: Any = None) -> dict[str, Any]:
            self.requests += 1
            found = self.credentials.get(connection_id)
            if found is None:
                raise HTTPException(404, "no such connection")
            return found

        return app


@dataclass
class PayrollWorld:
    """The vendors, the token service and the two connections of one test."""

    sandbox: RunningSandbox
    token_service_url: str
    tokens: TokenServiceStub
    nmbrs: Tenant
    visma: Tenant
    nmbrs_connection: uuid.UUID
    visma_connection: uuid.UUID

    @property
    def world(self) -> World:
        return self.sandbox.world

    @property
    def nmbrs_company(self) -> str:
        return str(sandbox_nmbrs.company_id(self.nmbrs))

    @property
    def visma_company(self) -> str:
        return sandbox_visma.company_id(self.visma)

    def add_nmbrs_company(self, company: CompanyData, **flags: Any) -> Tenant:
        """Another Nmbrs company of the same API user (test company, blocked debtor...)."""
        return self.world.add_tenant(
            "nmbrs",
            company=company,
            credentials={"username": NMBRS_USER, "token": NMBRS_TOKEN, "domain": NMBRS_DOMAIN},
            **flags,
        )

    def batches(self) -> list[dict[str, Any]]:
        """Every batch the exporter made in Visma.net: period, references, lines."""
        extras = self.visma.state.get("vismanet_batches", {})
        result = []
        for voucher in self.visma.company.vouchers:
            extra = extras.get(voucher.id)
            if extra is None:
                continue
            result.append(
                {
                    "number": str(voucher.id),
                    "period": extra.financial_period,
                    "references": set(extra.references.values()),
                    "lines": [
                        (
                            line.account,
                            line.dimensions.get("cost_centre"),
                            line.dimensions.get("cost_unit"),
                            line.amount,
                        )
                        for line in voucher.lines
                    ],
                    "date": voucher.date,
                }
            )
        return result


def visma_token(world: World) -> str:
    """A service (client credentials) token for the Visma.net tenant, issued by the sandbox."""
    server = sandbox_visma.oauth_server(world)
    return str(
        server.token(
            {
                "grant_type": "client_credentials",
                "client_id": VISMA_CLIENT,
                "client_secret": VISMA_SECRET,
                "scope": " ".join(sorted(sandbox_visma.SERVICE_SCOPES)),
                "tenant_id": world.vendor_tenants("vismanet")[0].tenant_id,
            }
        )["access_token"]
    )


@asynccontextmanager
async def payroll_world(
    seed: int = 15,
    *,
    employees: int = 40,
    visma_company: CompanyData | None = None,
    config: SandboxConfig | None = None,
) -> AsyncIterator[PayrollWorld]:
    """Nmbrs with one payroll company, Visma.net with the same chart and dimensions."""
    world = World(config or SandboxConfig(seed=seed))
    nmbrs = world.add_tenant(
        "nmbrs",
        company=payroll_company(seed, employees=employees),
        credentials={"username": NMBRS_USER, "token": NMBRS_TOKEN, "domain": NMBRS_DOMAIN},
    )
    visma = world.add_tenant(
        "vismanet", company=visma_company or payroll_company(seed, employees=1)
    )
    async with running_sandbox(world=world, vendors=("nmbrs", "vismanet")) as sandbox:
        sandbox_visma.register_client(world, VISMA_CLIENT, VISMA_SECRET)
        stub = TokenServiceStub()
        nmbrs_connection, visma_connection = uuid.uuid4(), uuid.uuid4()
        stub.credentials[nmbrs_connection] = {
            "connection_id": str(nmbrs_connection),
            "provider": "nmbrs",
            "kind": "nmbrs_token",
            "expires_at": None,
            "secrets": {"token": NMBRS_TOKEN},
            "attributes": {"username": NMBRS_USER, "domain": NMBRS_DOMAIN},
        }
        stub.credentials[visma_connection] = {
            "connection_id": str(visma_connection),
            "provider": "visma_net",
            "kind": "bearer",
            "expires_at": None,
            "secrets": {"access_token": visma_token(world)},
            "attributes": {},
        }
        config_ = uvicorn.Config(stub.app(), host="127.0.0.1", port=0, log_level="warning")
        async with serving(config_) as token_url:
            yield PayrollWorld(
                sandbox, token_url, stub, nmbrs, visma, nmbrs_connection, visma_connection
            )


def expected_batches(
    company: CompanyData,
    *,
    cost_centres: bool = True,
    cost_units: bool = True,
    runs: Iterable[str] | None = None,
    period_id: Callable[[int, int], str] = lambda year, month: f"{year:04d}{month:02d}",
) -> dict[tuple[str, str], Totals]:
    """(Visma.net period YYYYPP, reference) -> totals per account and dimensions, straight
    from the Nmbrs sandbox's run entries (zero totals left out)."""
    wanted = set(runs) if runs is not None else None
    result: dict[tuple[str, str], Totals] = {}
    for entry in company.payroll_runs:
        if wanted is not None and entry.run_id not in wanted:
            continue
        totals = result.setdefault(
            (period_id(entry.year, entry.posting_period), entry.reference), {}
        )
        for line in entry.lines:
            key = (
                line.gl_account,
                line.cost_centre if cost_centres else None,
                line.cost_unit if cost_units else None,
            )
            totals[key] = totals.get(key, Decimal(0)) + line.signed_amount
    return {key: {k: v for k, v in totals.items() if v != 0} for key, totals in result.items()}


def actual_batches(batches: list[dict[str, Any]]) -> dict[tuple[str, str], Totals]:
    """The same shape, read from the Visma.net sandbox's batches (one reference each)."""
    result: dict[tuple[str, str], Totals] = {}
    for batch in batches:
        (reference,) = batch["references"]
        key = (batch["period"], reference)
        assert key not in result, f"two batches for {key}"
        totals: Totals = {}
        for account, centre, unit, amount in batch["lines"]:
            totals[(account, centre, unit)] = (
                totals.get((account, centre, unit), Decimal(0)) + amount
            )
        result[key] = {k: v for k, v in totals.items() if v != 0}
    return result


async def post_all(service: Any, *, limit: int = 10_000) -> int:
    """Run the posting runner's step until nothing is due; how many steps ran."""
    steps = 0
    while steps < limit and await service.post_next():
        steps += 1
    return steps


def http_client(base_url: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=base_url, timeout=60)
