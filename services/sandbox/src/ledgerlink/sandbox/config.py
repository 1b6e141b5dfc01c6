"""Settings of the sandbox (env prefix ``LEDGERLINK_SANDBOX_``)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["DEFAULT_RATE_LIMITS", "RateLimitSettings", "SandboxConfig"]


class RateLimitSettings(BaseModel):
    """A token bucket: ``rate_per_second`` sustained, ``burst`` at once."""

    rate_per_second: float = Field(gt=0, description="Tokens added per second.")
    burst: int = Field(ge=1, description="Bucket size: requests allowed at once.")
    counting: Literal["token_bucket", "sliding_window"] = Field(
        default="token_bucket",
        description="token_bucket; or sliding_window: at most `burst` requests in any "
        "`burst / rate_per_second` seconds (the strictest reading of 'N per second').",
    )


DEFAULT_RATE_LIMITS: dict[str, RateLimitSettings] = {
    # Procountor documents 20 requests/s per client (another version says 60/s).
    # UNCONFIRMED: how Procountor counts; the strictest reading, 20 in any second.
    "procountor": RateLimitSettings(rate_per_second=20, burst=20, counting="sliding_window"),
    # Visma.net: historically 15,000 calls/hour/company. UNCONFIRMED: burst size.
    "vismanet": RateLimitSettings(rate_per_second=15_000 / 3600, burst=1000),
    # UNCONFIRMED: 24SevenOffice and Nmbrs publish no numbers; a careful vendor allows a
    # modest sustained rate with some burst.
    "twentyfour": RateLimitSettings(rate_per_second=10, burst=50),
    "nmbrs": RateLimitSettings(rate_per_second=10, burst=50),
    # Netvisor publishes no number but allows one request at a time per customer
    # (OneAtATime); the bucket only stops floods.
    "netvisor": RateLimitSettings(rate_per_second=50, burst=100),
}


class SandboxConfig(BaseSettings):
    """The vendor sandboxes: a dev/demo/test stand-in, never a production part."""

    model_config = SettingsConfigDict(
        env_prefix="LEDGERLINK_SANDBOX_", env_nested_delimiter="__", extra="ignore"
    )

    host: str = Field(default="127.0.0.1", description="Interface to listen on.")
    port: int = Field(default=8090, ge=0, le=65535, description="TCP port (0 picks a free one).")
    seed: int = Field(default=7, description="Seed of all generated data (same seed, same data).")
    lines_per_company: int = Field(
        default=2000, ge=0, description="Voucher lines generated per demo company."
    )
    demo_tenants: bool = Field(
        default=True, description="Create one demo tenant per vendor at start-up (serve only)."
    )
    access_token_ttl_seconds: int = Field(
        default=3600, ge=1, description="Lifetime of OAuth access tokens."
    )
    refresh_token_ttl_seconds: int = Field(
        default=30 * 24 * 3600, ge=1, description="Lifetime of each OAuth refresh token."
    )
    authorization_code_ttl_seconds: int = Field(
        default=60, ge=1, description="Lifetime of OAuth authorization codes (single use)."
    )
    rate_limits: dict[str, RateLimitSettings] = Field(
        default_factory=lambda: dict(DEFAULT_RATE_LIMITS),
        description="Token bucket per vendor, applied per tenant.",
    )
    log_level: str = Field(default="INFO", description="Log level of the sandbox process.")
    # The sign-in stand-ins (oidc.py). Auth's development defaults name the same client.
    oidc_client_id: str = Field(
        default="ledgerlink-auth-dev", description="The one client of the sandbox IdPs."
    )
    oidc_client_secret: SecretStr = Field(
        default=SecretStr("sandbox-oidc-client-secret"),
        description="That client's secret (a sandbox value, never a real one).",
    )
    oidc_redirect_uris: list[str] = Field(
        default_factory=lambda: [
            f"http://{host}:8081/signin/{provider}/callback"
            for host in ("127.0.0.1", "localhost")
            for provider in ("google", "microsoft")
        ],
        description="Redirect URIs registered for that client (exact match).",
    )
    visma_pages_redirect_uri: str = Field(
        default="http://127.0.0.1:8081/connect/visma_net/callback",
        description="Redirect URI of auth's connection pages at the demo Visma Connect "
        "(client isv_ledgerlink_pages; exact match).",
    )
    oidc_issuer_base_url: str | None = Field(
        default=None,
        description="Base URL of the IdPs' issuers and endpoints; default: the request's.",
    )
    oidc_id_token_ttl_seconds: int = Field(
        default=3600, ge=1, description="Lifetime of ID and access tokens of the IdPs."
    )
    oidc_key_retention_seconds: int = Field(
        default=24 * 3600, ge=0, description="How long a rotated-out key stays in the JWKS."
    )

    def rate_limit(self, vendor: str) -> RateLimitSettings:
        """The bucket settings of ``vendor`` (the defaults when not configured)."""
        return self.rate_limits.get(vendor) or DEFAULT_RATE_LIMITS.get(
            vendor, RateLimitSettings(rate_per_second=10, burst=50)
        )
