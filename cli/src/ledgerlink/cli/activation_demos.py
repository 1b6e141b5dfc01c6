"""The activation flows a developer can try against the sandbox (``ledgerlink dev up``).

For each store-started flow: a sandbox customer whose credentials the flow uses, the
command that publishes its activation (as a vendor's store would) and the page that starts
it. Each flow adds one :class:`ActivationDemo` to :data:`DEMOS`.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field
from typing import Any

import httpx

#: auth's development service token (``ledgerlink.auth.config.DEVELOPMENT_SERVICE_TOKEN``).
_DEV_SERVICE_TOKEN = "development-only-service-token"  # noqa: S105 - a development default


@dataclass(frozen=True)
class ActivationDemo:
    """One flow to try: its sandbox customer, activation and what to type in the flow."""

    label: str
    provider: str
    product: str
    store_reference: str
    business_id: str
    company_name: str
    #: POST /_sandbox/tenants body, without the redirect URI (filled from auth's address).
    tenant: dict[str, Any]
    #: What the person types or chooses in the flow (sandbox values, not secrets).
    hint: str
    #: Facts auth must know first (the financial model of seed 000).
    financial_model: bool = False
    redirect_path: str | None = None
    extra: dict[str, str] = field(default_factory=dict)


DEMOS: tuple[ActivationDemo, ...] = (
    ActivationDemo(
        label="Netvisor -> planning",
        provider="netvisor",
        product="planning",
        store_reference="dev-netvisor-1",
        business_id="0112038-9",
        company_name="Virtanen Demo Oy",
        tenant={
            "vendor": "netvisor",
            "tenant_id": "NV_DEMO_1001",
            "credentials": {
                "customer_key": "demo-netvisor-customer-key",
                "partner_id": "LEDGERLINK_DEMO",
                "partner_key": "demo-partner-key",
            },
        },
        hint="sign in as anna; customer ID NV_DEMO_1001, key demo-netvisor-customer-key",
        financial_model=True,
    ),
    ActivationDemo(
        label="Procountor -> planning",
        provider="procountor",
        product="planning",
        store_reference="dev-procountor-1",
        business_id="2331972-7",
        company_name="Koivu Demo Oy",
        tenant={
            "vendor": "procountor",
            "tenant_id": "410001",
            "credentials": {
                "client_id": "ledgerlink-procountor-dev",
                "client_secret": "ledgerlink-procountor-dev-secret",
                "username": "demo.procountor",
                "password": "demo-procountor",
            },
        },
        hint="Procountor login demo.procountor / demo-procountor; sign in as anna",
        redirect_path="/activate/procountor/callback",
    ),
)


def publish_command(demo: ActivationDemo, bootstrap_servers: str) -> str:
    """The ``ledgerlink publish activation`` command a vendor's store stands for."""
    return shlex.join(
        [
            "ledgerlink",
            "publish",
            "activation",
            "--provider",
            demo.provider,
            "--business-id",
            demo.business_id,
            "--country",
            "FI",
            "--company-name",
            demo.company_name,
            "--email",
            "anna@virtanen-demo.fi",
            "--name",
            "Anna Virtanen",
            "--product",
            demo.product,
            "--store-reference",
            demo.store_reference,
            "--kafka",
            bootstrap_servers,
        ]
    )


def demo_lines(auth_url: str, bootstrap_servers: str) -> list[str]:
    """One block per flow for the status footer: publish, then open the page."""
    lines = ["Activation flows against the sandbox (publish the store's event, open the page):"]
    for demo in DEMOS:
        lines.append(
            f"  {demo.label}: {auth_url}/activate/{demo.provider}/{demo.store_reference} "
            f"({demo.hint})"
        )
        lines.append(f"    {publish_command(demo, bootstrap_servers)}")
    return lines


async def prepare_demos(sandbox_url: str, auth_url: str) -> None:
    """Add each flow's sandbox customer and the facts auth needs (idempotent)."""
    async with httpx.AsyncClient(timeout=10) as http:
        for demo in DEMOS:
            body = {
                **demo.tenant,
                "business_id": demo.business_id,
                "name": demo.company_name,
            }
            if demo.redirect_path is not None:
                body["credentials"] = {
                    **body["credentials"],
                    "redirect_uri": f"{auth_url}{demo.redirect_path}",
                }
            response = await http.post(f"{sandbox_url}/_sandbox/tenants", json=body)
            if response.status_code not in (201, 409):
                response.raise_for_status()
            if demo.financial_model:
                answer = await http.put(
                    f"{auth_url}/internal/v1/financial-models/FI/{demo.business_id}",
                    json={"active": True},
                    headers={"Authorization": f"Bearer {_DEV_SERVICE_TOKEN}"},
                )
                answer.raise_for_status()


def connection_page_lines(auth_url: str) -> list[str]:
    """The in-product connection pages and the sandbox's demo logins to use on them."""
    return [
        "Connection pages against the sandbox (sign in first; an organisation is created on "
        "the page):",
        f"  Visma.net (seed 002): {auth_url}/connect/visma_net "
        "(Visma login demo@sandbox.invalid / sandbox)",
        f"  24SevenOffice (seed 004): {auth_url}/connect/24sevenoffice "
        "(integration user integration@sandbox.invalid / sandbox)",
        f"  Nmbrs -> Visma.net (seed 003): {auth_url}/connect/nmbrs "
        "(Nmbrs API user payroll@sandbox.invalid, token sandbox-nmbrs-token, domain sandbox)",
    ]
