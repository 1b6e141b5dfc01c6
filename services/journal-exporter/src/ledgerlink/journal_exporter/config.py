"""Settings of the journal exporter (env prefix ``LEDGERLINK_JOURNAL_EXPORTER_``)."""

from __future__ import annotations

from pydantic import BaseModel, Field, SecretStr, model_validator
from pydantic_settings import SettingsConfigDict

from ledgerlink.shared.config import (
    DatabaseSettings,
    HttpSettings,
    KafkaSettings,
    ServiceConfig,
    TokenServiceSettings,
)


class PayrollSigninSettings(BaseModel):
    """How the payroll pages know who is signed in: auth's session cookie, checked by auth."""

    auth_url: str | None = Field(
        default=None,
        description="auth's internal URL, asked who a session cookie belongs to and which "
        "environments own the connections (with the token service's token).",
    )
    signin_url: str = Field(
        default="/signin",
        description="auth's sign-in page as the browser reaches it (same site: a path).",
    )
    cookie_name: str = Field(
        default="ledgerlink_session", description="auth's session cookie (same site)."
    )


class PayrollExportSettings(BaseModel):
    """Payroll journals from Visma Nmbrs posted into Visma.net (issue 15)."""

    nmbrs_base_url: str = Field(
        default="https://api.nmbrs.nl", description="Nmbrs SOAP host (the service path is added)."
    )
    vismanet_api_base_url: str = Field(
        default="https://api.finance.visma.net", description="Visma.net ERP API base URL."
    )
    runner_poll_seconds: float = Field(
        default=2.0, gt=0, description="How often the posting runner looks for due postings."
    )
    schedule_seconds: float = Field(
        default=900.0,
        gt=0,
        description="How often Nmbrs is polled for newly finalised runs (auto-export mappings).",
    )
    lease_seconds: float = Field(
        default=600.0,
        gt=0,
        description="How long a claimed posting is reserved for its runner (a runner that "
        "died leaves it to another after this).",
    )
    retry_initial_seconds: float = Field(
        default=2.0, ge=0, description="First wait before a posting is tried again."
    )
    retry_max_seconds: float = Field(
        default=600.0, ge=0, description="Longest wait between two attempts of a posting."
    )
    max_attempts: int = Field(
        default=30, ge=1, description="Attempts before a posting is given up as failed."
    )
    vendor_retry_attempts: int = Field(
        default=6, ge=1, description="Attempts per vendor request (429s honour Retry-After)."
    )
    vendor_retry_seconds: float = Field(
        default=120.0,
        gt=0,
        description="Longest time one vendor request is retried; keep it well below "
        "lease_seconds so a lease never runs out while its posting is still being sent.",
    )
    pages_enabled: bool = Field(
        default=False,
        description="Serve the mapping pages under /payroll. They sign people in through "
        "auth: set signin.auth_url (and the token service's token, which asks auth who "
        "a session belongs to).",
    )
    signin: PayrollSigninSettings = Field(
        default_factory=lambda: PayrollSigninSettings(),
        description="Sign-in of the payroll pages (auth's sessions).",
    )
    schedule_settle_days: int = Field(
        default=45,
        ge=0,
        description="After a year ends, how long the schedule still lists that year's runs in "
        "Nmbrs (a late run); after it, a year with every run planned is not listed again.",
    )
    workers: int = Field(default=1, ge=1, le=32, description="Postings sent at once.")
    api_tokens: dict[str, SecretStr] = Field(
        default_factory=dict,
        description="Bearer tokens of the payroll routes by caller name (none: open routes, "
        "for development only); the name is recorded as who triggered an export.",
    )
    vismanet_burst: int = Field(
        default=15_000,
        ge=1,
        description="Visma.net calls per rate window until its X-RateLimit-Limit says "
        "(UNCONFIRMED: Visma publishes no number; 15,000/hour is the historical one). With "
        "vismanet_requests_per_second it gives the window's length.",
    )
    vismanet_requests_per_second: float = Field(
        default=15_000 / 3600,
        gt=0,
        description="Visma.net calls per second over a window (window length = "
        "vismanet_burst / this).",
    )


class Config(ServiceConfig):
    """Journal exporter: payroll journals validated, stored and answered."""

    model_config = SettingsConfigDict(
        env_prefix="LEDGERLINK_JOURNAL_EXPORTER_", env_nested_delimiter="__", extra="ignore"
    )

    kafka: KafkaSettings = Field(
        default_factory=lambda: KafkaSettings(client_id="ledgerlink-journal-exporter")
    )
    database: DatabaseSettings = Field(
        default_factory=lambda: DatabaseSettings(
            url=SecretStr("sqlite+aiosqlite:///./var/journal-exporter.db")
        )
    )
    http: HttpSettings = Field(default_factory=lambda: HttpSettings(port=8083))
    consumer_group: str = Field(
        default="ledgerlink-journal-exporter",
        description="Kafka consumer group reading journals and connection events.",
    )
    token_service: TokenServiceSettings = Field(
        default_factory=TokenServiceSettings,
        description="auth's token service: where connectors get vendor credentials.",
    )
    payroll: PayrollExportSettings = Field(
        default_factory=lambda: PayrollExportSettings(),
        description="Posting payroll journals from Nmbrs into Visma.net.",
    )

    @model_validator(mode="after")
    def _refuse_open_payroll_routes_in_production(self) -> Config:
        # Without bearer tokens the payroll routes (mappings, exports, evidence) are open:
        # development only.
        if self.environment == "production" and not self.payroll.api_tokens:
            raise ValueError(
                "production needs payroll.api_tokens (the payroll routes would be open)"
            )
        if self.payroll.pages_enabled and (
            self.payroll.signin.auth_url is None or self.token_service.token is None
        ):
            # The pages never run without sign-in, in development neither.
            raise ValueError(
                "payroll.pages_enabled needs payroll.signin.auth_url and token_service.token "
                "(the pages ask auth who is signed in)"
            )
        return self
