"""The app: health, control API, vendor module loading, reset."""

from __future__ import annotations

import importlib
from collections.abc import AsyncIterator
from types import ModuleType

import httpx
import pytest

from ledgerlink.sandbox.app import create_app
from ledgerlink.sandbox.config import SandboxConfig
from ledgerlink.sandbox.faults import FaultPlan
from ledgerlink.sandbox.world import World


@pytest.fixture
def world() -> World:
    return World(SandboxConfig(lines_per_company=60))


@pytest.fixture
async def client(world: World) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(world=world, vendors=())
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://sandbox") as client:
        yield client


async def test_healthz(client: httpx.AsyncClient) -> None:
    response = await client.get("/healthz")
    assert response.json() == {"status": "ok"}


async def test_tenants_are_listed_without_credentials(
    client: httpx.AsyncClient, world: World
) -> None:
    tenant = world.add_tenant("procountor", credentials={"api_key": "very-secret-key"})
    response = await client.get("/_sandbox/tenants")
    assert response.status_code == 200
    (listed,) = response.json()
    assert listed["tenant_id"] == tenant.tenant_id
    assert listed["business_id"] == tenant.company.business_id
    assert "very-secret-key" not in response.text
    assert "very-secret-key" not in repr(tenant)


async def test_a_tenant_is_added_and_its_api_opened_through_the_control_api(
    client: httpx.AsyncClient, world: World
) -> None:
    added = await client.post(
        "/_sandbox/tenants",
        json={
            "vendor": "procountor",
            "tenant_id": "410001",
            "business_id": "0112038-9",
            "name": "Virtanen Demo Oy",
            "lines": 20,
            "api_enabled": False,
            "credentials": {"client_id": "c", "client_secret": "never-echoed"},
        },
    )
    assert added.status_code == 201, added.text
    assert added.json()["business_id"] == "0112038-9"
    assert "never-echoed" not in added.text
    tenant = world.tenant("procountor", "410001")
    assert tenant is not None
    assert tenant.company.name == "Virtanen Demo Oy"
    assert tenant.credentials["client_secret"] == "never-echoed"
    assert tenant.api_enabled is False

    again = await client.post(
        "/_sandbox/tenants", json={"vendor": "procountor", "tenant_id": "410001"}
    )
    assert again.status_code == 409
    unknown = await client.post("/_sandbox/tenants", json={"vendor": "fortnox"})
    assert unknown.status_code == 404

    opened = await client.post("/_sandbox/procountor/410001/api", params={"enabled": "true"})
    assert opened.status_code == 204
    assert tenant.api_enabled is True


async def test_invalidate_and_edit_through_the_control_api(
    client: httpx.AsyncClient, world: World
) -> None:
    tenant = world.add_tenant("netvisor")
    voucher_id = tenant.company.vouchers[2].id
    base = f"/_sandbox/netvisor/{tenant.tenant_id}/vouchers/{voucher_id}"
    invalidated = (await client.post(f"{base}/invalidate")).json()
    assert invalidated["status"] == "invalidated"
    assert invalidated["version"] == 2
    edited = (await client.post(f"{base}/edit", json={"description": "Corrected"})).json()
    assert edited["description"] == "Corrected"
    assert edited["version"] == 3
    assert tenant.company.voucher(voucher_id).description == "Corrected"
    missing = await client.post(f"/_sandbox/netvisor/{tenant.tenant_id}/vouchers/999999/edit")
    assert missing.status_code == 404
    assert (await client.post("/_sandbox/netvisor/nobody/vouchers/1/edit")).status_code == 404


async def test_reset_rebuilds_generated_books_and_keeps_tenants(
    client: httpx.AsyncClient, world: World
) -> None:
    tenant = world.add_tenant("nmbrs", credentials={"token": "t"})
    original = tenant.company.vouchers[0].description
    tenant.company.edit_voucher(tenant.company.vouchers[0].id, description="changed")
    world.faults.set(FaultPlan(vendor="nmbrs", error_rate=1.0))
    assert (await client.post("/_sandbox/reset")).status_code == 204
    assert world.tenant("nmbrs", tenant.tenant_id) is tenant
    assert tenant.credentials == {"token": "t"}
    assert tenant.company.vouchers[0].description == original
    assert world.faults.plan_for("nmbrs", tenant.tenant_id) is None


def test_generated_tenants_are_deterministic_per_seed() -> None:
    first, second = (
        World(SandboxConfig(seed=3, lines_per_company=20)),
        World(SandboxConfig(seed=3, lines_per_company=20)),
    )
    a, b = first.add_tenant("vismanet"), second.add_tenant("vismanet")
    assert a.tenant_id == b.tenant_id
    assert len(a.tenant_id) == 36  # a GUID, as Visma Connect tenant ids are
    assert a.company.business_id == b.company.business_id
    assert a.company.country == "NL"
    with pytest.raises(ValueError, match="already has"):
        first.add_tenant("vismanet", tenant_id=a.tenant_id)


def test_add_tenant_keeps_flags_and_given_company(world: World) -> None:
    company = world.add_tenant("procountor").company
    tenant = world.add_tenant("procountor", company=company, api_enabled=False, salary_rights=False)
    assert tenant.company is company
    assert tenant.api_enabled is False
    assert tenant.flags == {"salary_rights": False}
    assert world.tenants("procountor")[tenant.tenant_id] is tenant


def test_an_unknown_vendor_module_fails_the_app() -> None:
    with pytest.raises(ModuleNotFoundError, match="not_a_vendor"):
        create_app(world=World(SandboxConfig(lines_per_company=0)), vendors=("not_a_vendor",))


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/netvisor/accountlist.nv"),
        ("GET", "/procountor/api/company"),
        ("GET", "/vismanet/v1/account"),
        ("GET", "/24so/rest/v1/transactiontypes"),
        ("POST", "/nmbrs/soap/v3/CompanyService.asmx"),
    ],
)
async def test_every_vendor_is_mounted_by_default(method: str, path: str) -> None:
    app = create_app(world=World(SandboxConfig(lines_per_company=0)))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://sandbox") as client:
        response = await client.request(method, path)
    # Unauthenticated: refused by the vendor's own rules (Netvisor answers 200 FAILED
    # unless asked for status codes), never "no such route".
    assert response.status_code != 404, response.text
    assert response.status_code == 200 or response.status_code >= 400
    assert "Not Found" not in response.text


def test_vendor_modules_are_mounted_with_the_world(monkeypatch: pytest.MonkeyPatch) -> None:
    mounted: list[World] = []
    fake = ModuleType("ledgerlink.sandbox.vendors.fakevendor")
    fake.mount = lambda app, world: mounted.append(world)  # type: ignore[attr-defined]
    real_import = importlib.import_module
    monkeypatch.setattr(
        importlib,
        "import_module",
        lambda name, package=None: fake if name == fake.__name__ else real_import(name, package),
    )
    world = World(SandboxConfig(lines_per_company=0))
    create_app(world=world, vendors=("fakevendor",))
    assert mounted == [world]
