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
        description="Serve the mapping pages under /payroll (they have no sign-in of their "
        "own: put them behind auth's sessions, or use them in development).",
    )
    workers: int = Field(default=1, ge=1, le=32, description="Postings sent at once.")
    api_tokens: dict[str, SecretStr] = Field(
        default_factory=dict,
        description="Bearer tokens of the payroll routes by caller name (none: open routes, "
        "for development only); the name is recorded as who triggered an export.",
    )
    vismanet_burst: int = Field(
        default=100, ge=1, description="Visma.net requests allowed at once (own budget)."
    )
    vismanet_requests_per_second: float = Field(
        default=15_000 / 3600, gt=0, description="Visma.net's documented call budget."
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
        if self.environment == "production" and self.payroll.pages_enabled:
            raise ValueError("payroll.pages_enabled has no sign-in: not in production")
        return self
