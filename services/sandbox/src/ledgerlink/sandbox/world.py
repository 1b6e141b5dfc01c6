"""The whole sandbox state: tenants per vendor, faults, rate limits, OAuth servers.

A :class:`World` is deterministic from its seed: tenants added without explicit data get a
company generated from ``(seed, vendor, ordinal)``. Everything is in memory; nothing
survives a restart, which is what a test or a demo wants.

Vendor modules keep their own per-tenant state in ``Tenant.state`` (sessions, ETags...) and
their credentials in ``Tenant.credentials`` (a plain dict whose keys each vendor defines:
the sandbox stands in for the vendor, whose side holds the keys too). OAuth vendors get
their :class:`OAuthServer` from :meth:`World.oauth_server`.
"""

from __future__ import annotations

import datetime as dt
import random
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ledgerlink.sandbox.config import SandboxConfig
from ledgerlink.sandbox.data import CompanyData, Country, generate_company
from ledgerlink.sandbox.faults import FaultBook
from ledgerlink.sandbox.oauth import ClientCredentialsValidator, OAuthServer
from ledgerlink.sandbox.ratelimit import OneAtATime, SlidingWindow, TokenBucket

__all__ = ["VENDOR_COUNTRIES", "Tenant", "World"]

#: The country of the books a vendor's generated tenants keep.
VENDOR_COUNTRIES: dict[str, Country] = {
    "netvisor": "FI",
    "procountor": "FI",
    "vismanet": "NL",
    "twentyfour": "NO",
    "nmbrs": "NL",
}


@dataclass(eq=False)
class Tenant:
    """One customer environment of a vendor (a Netvisor customer, a Visma tenant...).

    ``api_enabled=False`` models an API that is not enabled or not licensed; ``test_company``
    a company marked as a test company (Visma refuses journals then); ``blocked`` a blocked
    debtor. ``flags`` holds further vendor-specific switches (e.g. ``salary_rights``).
    """

    vendor: str
    tenant_id: str
    company: CompanyData
    credentials: dict[str, str] = field(default_factory=dict)
    api_enabled: bool = True
    test_company: bool = False
    blocked: bool = False
    flags: dict[str, Any] = field(default_factory=dict)
    #: Vendor module's own per-tenant state (sessions, ETags, transaction ids...).
    state: dict[str, Any] = field(default_factory=dict)
    #: Rebuilds the generated company on reset (None when the test gave the company).
    company_factory: Callable[[], CompanyData] | None = field(default=None, repr=False)

    def __repr__(self) -> str:
        # Credentials never appear in a repr.
        return (
            f"Tenant(vendor={self.vendor!r}, tenant_id={self.tenant_id!r}, "
            f"company={self.company.name!r}, api_enabled={self.api_enabled}, "
            f"test_company={self.test_company}, blocked={self.blocked})"
        )


class World:
    """Everything the sandbox knows; one per app."""

    def __init__(
        self,
        config: SandboxConfig | None = None,
        *,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config or SandboxConfig()
        self.seed = self.config.seed
        #: Wall clock of token lifetimes (injectable: tests move time, never sleep).
        self.clock = clock
        #: Clock of the rate limiters.
        self.monotonic = monotonic
        self.faults = FaultBook()
        self._tenants: dict[str, dict[str, Tenant]] = {}
        self._oauth: dict[str, OAuthServer] = {}
        self._buckets: dict[str, TokenBucket | SlidingWindow] = {}
        self._one_at_a_time: dict[str, OneAtATime] = {}
        self._ordinals: dict[str, int] = {}
        self._ids = random.Random(f"{self.seed}:tenant-ids")
        self._reset_hooks: list[Callable[[], None]] = []

    # -- tenants ---------------------------------------------------------------------------

    def add_tenant(
        self,
        vendor: str,
        *,
        company: CompanyData | None = None,
        tenant_id: str | None = None,
        credentials: dict[str, str] | None = None,
        country: Country | None = None,
        lines: int | None = None,
        api_enabled: bool = True,
        test_company: bool = False,
        blocked: bool = False,
        **flags: Any,
    ) -> Tenant:
        """Add a tenant to ``vendor``; without ``company`` its books are generated.

        Generated books use ``country`` (default: the vendor's, see VENDOR_COUNTRIES) and
        ``lines`` voucher lines (default: ``config.lines_per_company``).
        """
        ordinal = self._ordinals.get(vendor, 0) + 1
        self._ordinals[vendor] = ordinal
        factory: Callable[[], CompanyData] | None = None
        if company is None:
            chosen_country = country or VENDOR_COUNTRIES.get(vendor, "FI")
            chosen_lines = self.config.lines_per_company if lines is None else lines
            company_seed = self.seed * 1000 + ordinal

            def factory() -> CompanyData:
                return generate_company(company_seed, country=chosen_country, lines=chosen_lines)

            company = factory()
        tenant = Tenant(
            vendor=vendor,
            tenant_id=tenant_id or self._new_tenant_id(vendor),
            company=company,
            credentials=dict(credentials or {}),
            api_enabled=api_enabled,
            test_company=test_company,
            blocked=blocked,
            flags=dict(flags),
            company_factory=factory,
        )
        self._stamp_with_clock(company)
        vendor_tenants = self._tenants.setdefault(vendor, {})
        if tenant.tenant_id in vendor_tenants:
            raise ValueError(f"{vendor} already has a tenant {tenant.tenant_id!r}")
        vendor_tenants[tenant.tenant_id] = tenant
        return tenant

    def now(self) -> dt.datetime:
        """The world's clock as an aware UTC datetime."""
        return dt.datetime.fromtimestamp(self.clock(), dt.UTC)

    def _stamp_with_clock(self, company: CompanyData) -> None:
        # Changes made through the vendor APIs (or the control API) are stamped with the
        # world's clock, which tests control, not the machine's.
        company.clock = self.now

    def _new_tenant_id(self, vendor: str) -> str:
        if vendor == "vismanet":
            # Visma Connect tenant ids are GUIDs.
            return str(uuid.UUID(int=self._ids.getrandbits(128), version=4))
        return str(self._ids.randint(100_000, 999_999))

    def tenants(self, vendor: str) -> dict[str, Tenant]:
        """The vendor's tenants by tenant id (the live dict, in the order they were added)."""
        return self._tenants.setdefault(vendor, {})

    def tenant(self, vendor: str, tenant_id: str) -> Tenant | None:
        """The tenant, or ``None``."""
        return self._tenants.get(vendor, {}).get(tenant_id)

    def vendor_tenants(self, vendor: str) -> list[Tenant]:
        """The vendor's tenants in the order they were added."""
        return list(self._tenants.get(vendor, {}).values())

    def all_tenants(self) -> list[Tenant]:
        """Every tenant of every vendor."""
        return [tenant for tenants in self._tenants.values() for tenant in tenants.values()]

    def find_tenant(self, vendor: str, predicate: Callable[[Tenant], bool]) -> Tenant | None:
        """The first tenant of ``vendor`` matching ``predicate`` (e.g. by a credential)."""
        return next((t for t in self.vendor_tenants(vendor) if predicate(t)), None)

    def add_demo_tenants(self, vendors: tuple[str, ...]) -> None:
        """One generated tenant per vendor flagged ``demo=True``; a vendor's ``mount`` may
        give demo tenants well-known credentials so a person can try the sandbox."""
        for vendor in vendors:
            if not self.vendor_tenants(vendor):
                self.add_tenant(vendor, demo=True)

    # -- per-vendor machinery --------------------------------------------------------------

    def oauth_server(
        self,
        vendor: str,
        *,
        require_pkce: bool = False,
        refresh_requires_offline_access: bool = False,
        issue_refresh_tokens: bool = True,
        client_credentials_validator: ClientCredentialsValidator | None = None,
        name: str | None = None,
    ) -> OAuthServer:
        """The vendor's OAuth server, created on first call with the config's TTLs.

        Its tokens expire with the vendor's token-expiry fault and the control API.
        """
        server = self._oauth.get(vendor)
        if server is None:
            server = OAuthServer(
                name or vendor,
                access_token_ttl=self.config.access_token_ttl_seconds,
                refresh_token_ttl=self.config.refresh_token_ttl_seconds,
                code_ttl=self.config.authorization_code_ttl_seconds,
                require_pkce=require_pkce,
                refresh_requires_offline_access=refresh_requires_offline_access,
                issue_refresh_tokens=issue_refresh_tokens,
                client_credentials_validator=client_credentials_validator,
                clock=lambda: self.clock(),
            )
            self._oauth[vendor] = server
            self.faults.on_expire_tokens(vendor, server.expire_all)
        return server

    def oauth_servers(self) -> dict[str, OAuthServer]:
        """The OAuth servers created so far, by vendor."""
        return dict(self._oauth)

    def rate_limiter(self, vendor: str) -> TokenBucket | SlidingWindow:
        """The vendor's limiter (keyed per tenant or client by the vendor module)."""
        bucket = self._buckets.get(vendor)
        if bucket is None:
            settings = self.config.rate_limit(vendor)
            if settings.counting == "sliding_window":
                bucket = SlidingWindow(
                    settings.burst,
                    settings.burst / settings.rate_per_second,
                    clock=lambda: self.monotonic(),
                )
            else:
                bucket = TokenBucket(
                    settings.rate_per_second, settings.burst, clock=lambda: self.monotonic()
                )
            self._buckets[vendor] = bucket
        return bucket

    def one_at_a_time(self, vendor: str) -> OneAtATime:
        """The vendor's one-request-at-a-time guard (Netvisor: per customer)."""
        guard = self._one_at_a_time.get(vendor)
        if guard is None:
            guard = self._one_at_a_time[vendor] = OneAtATime()
        return guard

    def reset(self) -> None:
        """Back to a fresh state: faults cleared, limits refilled, tokens and codes
        forgotten, generated books rebuilt from the seed. Tenants and their credentials and
        the registered OAuth clients and users stay, so tests can go on."""
        self.faults.reset()
        for bucket in self._buckets.values():
            bucket.reset()
        for guard in self._one_at_a_time.values():
            guard.reset()
        for server in self._oauth.values():
            server.reset()
        for tenant in self.all_tenants():
            tenant.state.clear()
            if tenant.company_factory is not None:
                tenant.company = tenant.company_factory()
                self._stamp_with_clock(tenant.company)
        for hook in self._reset_hooks:
            hook()

    def on_reset(self, hook: Callable[[], None]) -> None:
        """Call ``hook`` on :meth:`reset`: for state a vendor keeps beside the world."""
        self._reset_hooks.append(hook)
