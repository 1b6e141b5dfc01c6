"""The sandbox application: every vendor stand-in, the control API and ``/healthz``.

The sandbox is a development, demo and test stand-in for the vendors' systems. It is never
deployed as part of production: its control API is unauthenticated by design.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import importlib
import logging
from collections.abc import Sequence
from typing import Any, Literal, Protocol, cast

import uvicorn
from fastapi import APIRouter, FastAPI, HTTPException, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from ledgerlink.sandbox import oidc
from ledgerlink.sandbox.config import SandboxConfig
from ledgerlink.sandbox.data import generate_company
from ledgerlink.sandbox.errors import SandboxConnectionReset
from ledgerlink.sandbox.faults import FaultPlan, ResettableH11Protocol
from ledgerlink.sandbox.world import VENDOR_COUNTRIES, Tenant, World

__all__ = ["VENDOR_MODULES", "control_router", "create_app", "uvicorn_config"]

logger = logging.getLogger(__name__)

VENDOR_MODULES: tuple[str, ...] = ("netvisor", "procountor", "vismanet", "twentyfour", "nmbrs")
_VENDOR_PACKAGE = "ledgerlink.sandbox.vendors"


class _VendorModule(Protocol):
    def mount(self, app: FastAPI, world: World) -> None: ...


class ExpireTokensRequest(BaseModel):
    """Body of POST /_sandbox/tokens/expire."""

    model_config = ConfigDict(extra="forbid")

    vendor: str | None = None


class VoucherEdit(BaseModel):
    """Body of POST .../vouchers/{id}/edit (nothing given: a visible description edit)."""

    model_config = ConfigDict(extra="forbid")

    description: str | None = None
    date: dt.date | None = None


class NewTenant(BaseModel):
    """Body of POST /_sandbox/tenants: a customer added to a running sandbox (tests, demos).

    The books are generated from the seed; ``business_id`` and ``name`` replace the
    generated company's. ``credentials`` and ``flags`` are the vendor module's own (see each
    vendor's docstring: Netvisor ``customer_key``/``partner_id``/``partner_key``,
    Procountor ``client_id``/``client_secret``/``redirect_uri``/``username``/``password``).
    """

    model_config = ConfigDict(extra="forbid")

    vendor: str
    tenant_id: str | None = None
    business_id: str | None = None
    name: str | None = None
    country: Literal["FI", "NO", "SE", "NL"] | None = None
    lines: int = Field(default=200, ge=0, le=20_000)
    credentials: dict[str, str] = Field(default_factory=dict)
    api_enabled: bool = True
    test_company: bool = False
    blocked: bool = False
    flags: dict[str, Any] = Field(default_factory=dict)


def _tenant_or_404(world: World, vendor: str, tenant_id: str) -> Tenant:
    tenant = world.tenant(vendor, tenant_id)
    if tenant is None:
        raise HTTPException(404, f"no tenant {tenant_id!r} for {vendor!r}")
    return tenant


def _voucher_summary(tenant: Tenant, voucher_id: int) -> dict[str, Any]:
    voucher = tenant.company.voucher(voucher_id)
    return {
        "id": voucher.id,
        "status": voucher.status,
        "version": voucher.version,
        "description": voucher.description,
        "date": voucher.date.isoformat(),
        "modified_at": voucher.modified_at.isoformat(),
    }


def control_router(world: World) -> APIRouter:
    """The JSON control API under ``/_sandbox`` (faults, token expiry, data changes)."""
    router = APIRouter(prefix="/_sandbox", tags=["sandbox control"])

    @router.post("/faults")
    async def set_fault(plan: FaultPlan) -> FaultPlan:
        world.faults.set(plan)
        return plan

    @router.delete("/faults", status_code=204)
    async def clear_faults(vendor: str | None = None, tenant: str | None = None) -> Response:
        world.faults.clear(vendor, tenant)
        return Response(status_code=204)

    @router.post("/tokens/expire", status_code=204)
    async def expire_tokens(body: ExpireTokensRequest | None = None) -> Response:
        world.faults.expire_tokens(body.vendor if body else None)
        return Response(status_code=204)

    @router.get("/oauth/{vendor}/grants")
    async def oauth_grants(vendor: str) -> dict[str, Any]:
        # Counts only, never tokens: tests count refreshes across processes with this.
        server = world.oauth_servers().get(vendor)
        if server is None:
            raise HTTPException(404, f"no OAuth server for {vendor!r}")
        return {
            "grants": dict(server.grant_counts),
            "errors": dict(server.error_counts),
            "revocations": server.revocations,
        }

    @router.post("/reset", status_code=204)
    async def reset() -> Response:
        world.reset()
        return Response(status_code=204)

    @router.get("/tenants")
    async def tenants() -> list[dict[str, Any]]:
        # Credentials are not listed: the control API shows what exists, not its keys.
        return [
            {
                "vendor": tenant.vendor,
                "tenant_id": tenant.tenant_id,
                "business_id": tenant.company.business_id,
                "name": tenant.company.name,
                "country": tenant.company.country,
                "vouchers": len(tenant.company.vouchers),
                "api_enabled": tenant.api_enabled,
                "test_company": tenant.test_company,
                "blocked": tenant.blocked,
            }
            for tenant in world.all_tenants()
        ]

    @router.post("/tenants", status_code=201)
    async def add_tenant(body: NewTenant) -> dict[str, Any]:
        if body.vendor not in VENDOR_MODULES:
            raise HTTPException(404, f"no vendor {body.vendor!r}")
        country = body.country or VENDOR_COUNTRIES.get(body.vendor, "FI")
        company = generate_company(
            world.seed * 1000 + len(world.vendor_tenants(body.vendor)) + 500,
            country=country,
            lines=body.lines,
        )
        company = dataclasses.replace(
            company,
            business_id=body.business_id or company.business_id,
            name=body.name or company.name,
        )
        try:
            tenant = world.add_tenant(
                body.vendor,
                company=company,
                tenant_id=body.tenant_id,
                credentials=body.credentials,
                api_enabled=body.api_enabled,
                test_company=body.test_company,
                blocked=body.blocked,
                **body.flags,
            )
        except ValueError as error:
            raise HTTPException(409, str(error)) from None
        # Credentials are not echoed: the control API shows what exists, not its keys.
        return {
            "vendor": tenant.vendor,
            "tenant_id": tenant.tenant_id,
            "business_id": tenant.company.business_id,
            "name": tenant.company.name,
            "api_enabled": tenant.api_enabled,
        }

    @router.post("/{vendor}/{tenant_id}/api", status_code=204)
    async def set_api(vendor: str, tenant_id: str, enabled: bool) -> Response:
        # The customer opens (or closes) the vendor's API: Procountor's paid add-on,
        # Netvisor's interface rights.
        _tenant_or_404(world, vendor, tenant_id).api_enabled = enabled
        return Response(status_code=204)

    @router.post("/{vendor}/{tenant_id}/vouchers/{voucher_id}/invalidate")
    async def invalidate(vendor: str, tenant_id: str, voucher_id: int) -> dict[str, Any]:
        tenant = _tenant_or_404(world, vendor, tenant_id)
        try:
            tenant.company.invalidate_voucher(voucher_id)
        except KeyError:
            raise HTTPException(404, f"no voucher {voucher_id}") from None
        return _voucher_summary(tenant, voucher_id)

    @router.post("/{vendor}/{tenant_id}/vouchers/{voucher_id}/delete")
    async def delete(vendor: str, tenant_id: str, voucher_id: int) -> dict[str, Any]:
        tenant = _tenant_or_404(world, vendor, tenant_id)
        try:
            tenant.company.delete_voucher(voucher_id)
        except KeyError:
            raise HTTPException(404, f"no voucher {voucher_id}") from None
        return _voucher_summary(tenant, voucher_id)

    @router.post("/{vendor}/{tenant_id}/vouchers/{voucher_id}/edit")
    async def edit(
        vendor: str, tenant_id: str, voucher_id: int, body: VoucherEdit | None = None
    ) -> dict[str, Any]:
        tenant = _tenant_or_404(world, vendor, tenant_id)
        change = body or VoucherEdit()
        try:
            tenant.company.edit_voucher(
                voucher_id, description=change.description, date=change.date
            )
        except KeyError:
            raise HTTPException(404, f"no voucher {voucher_id}") from None
        return _voucher_summary(tenant, voucher_id)

    return router


async def _connection_reset(request: Request, exc: Exception) -> Response:
    # The transport is already aborted; this answer goes nowhere, it only ends the request.
    return Response(status_code=500)


def create_app(
    config: SandboxConfig | None = None,
    world: World | None = None,
    vendors: Sequence[str] = VENDOR_MODULES,
) -> FastAPI:
    """The sandbox app with the given vendors' stand-ins mounted.

    ``world`` defaults to an empty :class:`World` built from ``config``; tests usually pass
    their own world (with tenants added and a controllable clock).
    """
    config = config or (world.config if world is not None else SandboxConfig())
    world = world if world is not None else World(config)
    app = FastAPI(
        title="Ledgerlink vendor sandbox",
        description="Local stand-ins for the vendor APIs. Development and tests only.",
    )
    app.state.world = world
    app.state.config = config
    app.add_exception_handler(SandboxConnectionReset, _connection_reset)

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    app.include_router(control_router(world))

    for name in vendors:
        module = importlib.import_module(f"{_VENDOR_PACKAGE}.{name}")
        cast(_VendorModule, module).mount(app, world)
    # People's sign-in (Google and Microsoft stand-ins): not a vendor, always there.
    oidc.mount(app, world)
    return app


def uvicorn_config(app: FastAPI, host: str, port: int, **options: Any) -> uvicorn.Config:
    """uvicorn settings for the sandbox: the h11 protocol that can reset connections."""
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        http=ResettableH11Protocol,
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=5,
        **options,
    )
