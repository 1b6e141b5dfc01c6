"""Injected faults: latency, 5xx, 429 storms, connection resets and token expiry.

A :class:`FaultPlan` applies to one vendor and one tenant, or to every tenant of the vendor
(``tenant="*"``); a tenant's own plan wins over the vendor-wide one. Vendor routers call
``await world.faults.apply(request, vendor, tenant)`` first thing in each request; it

1. sleeps ``latency_ms``;
2. counts the request and, on the ``expire_tokens_after``-th one, expires every token of the
   vendor (the OAuth servers' and whatever else the vendor registered, e.g. SOAP sessions);
3. resets the connection with probability ``reset_rate`` (the transport is aborted, the
   client sees a dropped connection);
4. answers the next ``storm_429`` requests with :class:`SandboxRateLimited`;
5. answers with :class:`SandboxServerError` with probability ``error_rate``.

After a request was handled, a vendor router may call :meth:`FaultBook.after` for requests
that change something: with probability ``lose_answer_rate`` the connection is dropped
*after* the change was made (the vendor accepted; the client never hears of it), the
fault behind "timeout after the vendor accepted".

The vendor router renders the raised fault in its own error format. Random draws come from a
per-plan ``random.Random(seed)``, so a run is reproducible.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from fastapi import Request
from pydantic import BaseModel, ConfigDict, Field
from uvicorn.protocols.http.h11_impl import H11Protocol

from ledgerlink.sandbox.errors import (
    SandboxConnectionReset,
    SandboxRateLimited,
    SandboxServerError,
)

__all__ = [
    "TRANSPORT_STATE_KEY",
    "FaultBook",
    "FaultPlan",
    "ResettableH11Protocol",
    "SandboxConnectionReset",
    "SandboxRateLimited",
    "SandboxServerError",
]

logger = logging.getLogger(__name__)

#: Key of the connection's transport in the ASGI scope ``state`` (see ResettableH11Protocol).
TRANSPORT_STATE_KEY = "ledgerlink_sandbox_transport"


class FaultPlan(BaseModel):
    """What to do to the requests of one vendor (and tenant); the control API's body."""

    model_config = ConfigDict(extra="forbid")

    vendor: str = Field(description="Vendor module name, e.g. procountor.")
    tenant: str = Field(default="*", description="Tenant id, or * for every tenant.")
    latency_ms: int = Field(default=0, ge=0, le=600_000)
    error_rate: float = Field(default=0.0, ge=0, le=1, description="Share of 5xx answers.")
    error_status: int = Field(default=503, ge=500, le=599)
    storm_429: int = Field(default=0, ge=0, description="Answer the next N requests 429.")
    retry_after_seconds: float = Field(default=1.0, ge=0, description="Retry-After of a 429.")
    reset_rate: float = Field(default=0.0, ge=0, le=1, description="Share of dropped connections.")
    lose_answer_rate: float = Field(
        default=0.0,
        ge=0,
        le=1,
        description="Share of accepted changes whose answer is lost (connection dropped).",
    )
    expire_tokens_after: int | None = Field(
        default=None, ge=1, description="Expire all tokens at the Nth request from now."
    )
    seed: int = Field(default=0, description="Seed of the plan's random draws.")


@dataclass
class _ActivePlan:
    plan: FaultPlan
    rng: random.Random
    storm_left: int
    requests: int = 0
    expired: bool = False


@dataclass
class FaultBook:
    """The active fault plans and the token-expiry hooks, per vendor."""

    _plans: dict[tuple[str, str], _ActivePlan] = field(default_factory=dict)
    _expiry_hooks: dict[str, list[Callable[[], None]]] = field(default_factory=dict)

    def set(self, plan: FaultPlan) -> None:
        """Activate ``plan`` (replacing the plan for the same vendor and tenant)."""
        self._plans[(plan.vendor, plan.tenant)] = _ActivePlan(
            plan=plan, rng=random.Random(plan.seed), storm_left=plan.storm_429
        )

    def clear(self, vendor: str | None = None, tenant: str | None = None) -> None:
        """Remove plans: all, a vendor's, or one (vendor, tenant)."""
        for key in list(self._plans):
            if (vendor is None or key[0] == vendor) and (tenant is None or key[1] == tenant):
                del self._plans[key]

    def plan_for(self, vendor: str, tenant: str | None) -> FaultPlan | None:
        """The plan that applies to this vendor and tenant, if any."""
        active = self._active(vendor, tenant)
        return active.plan if active else None

    def progress(self, vendor: str, tenant: str | None) -> dict[str, int | bool] | None:
        """How far the applying plan got: requests seen, 429s still to answer, whether the
        tokens were expired (tests check that a fault really happened)."""
        active = self._active(vendor, tenant)
        if active is None:
            return None
        return {
            "requests": active.requests,
            "storm_left": active.storm_left,
            "tokens_expired": active.expired,
        }

    def _active(self, vendor: str, tenant: str | None) -> _ActivePlan | None:
        if tenant is not None and (vendor, tenant) in self._plans:
            return self._plans[(vendor, tenant)]
        return self._plans.get((vendor, "*"))

    def on_expire_tokens(self, vendor: str, hook: Callable[[], None]) -> None:
        """Call ``hook`` whenever the vendor's tokens are expired (fault or control API)."""
        self._expiry_hooks.setdefault(vendor, []).append(hook)

    def expire_tokens(self, vendor: str | None = None) -> None:
        """Expire every token of ``vendor`` (of every vendor when ``None``)."""
        for name, hooks in self._expiry_hooks.items():
            if vendor is None or name == vendor:
                for hook in hooks:
                    hook()

    async def apply(self, request: Request, vendor: str, tenant: str | None) -> None:
        """Apply the plan for (vendor, tenant) to this request; see the module docstring."""
        active = self._active(vendor, tenant)
        if active is None:
            return
        plan = active.plan
        if plan.latency_ms:
            await asyncio.sleep(plan.latency_ms / 1000)
        active.requests += 1
        if (
            plan.expire_tokens_after is not None
            and not active.expired
            and active.requests >= plan.expire_tokens_after
        ):
            active.expired = True
            logger.info("sandbox fault: expiring tokens", extra={"vendor": vendor})
            self.expire_tokens(vendor)
        if plan.reset_rate and active.rng.random() < plan.reset_rate:
            reset_connection(request)
        if active.storm_left > 0:
            active.storm_left -= 1
            raise SandboxRateLimited(plan.retry_after_seconds, "rate limit exceeded (storm)")
        if plan.error_rate and active.rng.random() < plan.error_rate:
            raise SandboxServerError(plan.error_status, "injected server error")

    def after(self, request: Request, vendor: str, tenant: str | None) -> None:
        """Drop the connection of a request that was handled (see ``lose_answer_rate``)."""
        active = self._active(vendor, tenant)
        if active is None or not active.plan.lose_answer_rate:
            return
        if active.rng.random() < active.plan.lose_answer_rate:
            logger.info("sandbox fault: losing an accepted answer", extra={"vendor": vendor})
            reset_connection(request)

    def reset(self) -> None:
        """Remove every plan (hooks stay registered)."""
        self._plans.clear()


def reset_connection(request: Request) -> None:
    """Abort the request's TCP connection and raise :class:`SandboxConnectionReset`.

    The transport is found in the scope state when the server runs with
    :class:`ResettableH11Protocol` (``running_sandbox`` and ``ledgerlink-sandbox serve`` do);
    otherwise (an in-process ASGI client) only the exception is raised.
    """
    transport: Any = request.scope.get("state", {}).get(TRANSPORT_STATE_KEY)
    if transport is not None:
        transport.abort()
    raise SandboxConnectionReset("connection reset by the sandbox")


class ResettableH11Protocol(H11Protocol):
    """uvicorn's h11 protocol, exposing the connection's transport to the app.

    The scope ``state`` of each request is a copy of ``app_state``; giving each connection
    its own ``app_state`` with the transport in it lets a fault abort exactly that
    connection, which is what a connection reset looks like to the client.
    """

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        """Remember the transport in this connection's state, then proceed as usual."""
        self.app_state = {**self.app_state, TRANSPORT_STATE_KEY: transport}
        super().connection_made(transport)
