"""Settings of the importer service (env prefix ``LEDGERLINK_IMPORTER_``)."""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import BaseModel, Field, SecretStr, model_validator
from pydantic_settings import SettingsConfigDict

from ledgerlink.shared.config import (
    DatabaseSettings,
    HttpSettings,
    KafkaSettings,
    ServiceConfig,
    TokenServiceSettings,
)


def usable_cpus(cgroup_cpu_max: Path = Path("/sys/fs/cgroup/cpu.max")) -> int:
    """CPUs this process may keep busy: its CPU affinity, capped by a cgroup v2 quota.

    ``os.cpu_count()`` is the host's in a container; a pod limited to one CPU that ran
    two busy children would only be throttled.
    """
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    cpus = cpus or 1
    try:
        quota, _, period = cgroup_cpu_max.read_text(encoding="ascii").strip().partition(" ")
    except OSError:
        return cpus
    if quota == "max" or not quota.isdigit() or not period.isdigit() or int(period) <= 0:
        return cpus
    return max(1, min(cpus, -(-int(quota) // int(period))))


class NetvisorPartnerSettings(BaseModel):
    """Ledgerlink's own Netvisor partner identity (signs every request with the customer's
    key, which comes from auth's token service)."""

    base_url: str = Field(default="https://integration.netvisor.fi", description="API root.")
    sender: str = Field(default="Ledgerlink", description="X-Netvisor-Authentication-Sender.")
    partner_id: str = Field(default="", description="Ledgerlink's PartnerId.")
    partner_key: SecretStr = Field(default=SecretStr(""), description="The partner MAC key.")


class ProcountorClientSettings(BaseModel):
    """Ledgerlink's Procountor API client (tokens come from auth's token service)."""

    base_url: str = Field(default="https://api.procountor.com", description="Environment host.")
    client_id: str = Field(default="ledgerlink", description="The API client's id.")
    client_secret: SecretStr = Field(default=SecretStr(""), description="The client's secret.")
    redirect_uri: str = Field(
        default="https://ledgerlink.invalid/oauth/procountor/callback",
        description="The client's registered redirect URI.",
    )


class VismaNetClientSettings(BaseModel):
    """Ledgerlink's Visma Developer Portal client (tokens come from auth's token service)."""

    api_base_url: str = Field(default="https://api.finance.visma.net", description="ERP API.")
    connect_base_url: str = Field(default="https://connect.visma.com", description="Connect.")
    client_id: str = Field(default="ledgerlink", description="The client id.")
    client_secret: SecretStr = Field(default=SecretStr(""), description="The client secret.")


class TwentyFourClientSettings(BaseModel):
    """Ledgerlink's 24SevenOffice integrator identity (the integration user's login comes
    from auth's token service)."""

    soap_base_url: str = Field(default="https://api.24sevenoffice.com", description="SOAP.")
    rest_base_url: str = Field(
        default="https://rest.api.24sevenoffice.com/v1", description="REST API."
    )
    token_url: str = Field(
        default="https://login.24sevenoffice.com/oauth/token", description="OAuth token URL."
    )
    application_id: SecretStr = Field(default=SecretStr(""), description="SOAP ApplicationId.")
    rest_client_id: SecretStr | None = Field(default=None, description="REST client id.")
    rest_client_secret: SecretStr | None = Field(default=None, description="REST secret.")


class VendorSettings(BaseModel):
    """How the importer reaches each ledger vendor's API (Ledgerlink's side of the keys)."""

    netvisor: NetvisorPartnerSettings = Field(default_factory=NetvisorPartnerSettings)
    procountor: ProcountorClientSettings = Field(default_factory=ProcountorClientSettings)
    visma_net: VismaNetClientSettings = Field(default_factory=VismaNetClientSettings)
    twentyfour: TwentyFourClientSettings = Field(default_factory=TwentyFourClientSettings)


class Config(ServiceConfig):
    """Importer: import jobs for activated connections and explicit import requests."""

    model_config = SettingsConfigDict(
        env_prefix="LEDGERLINK_IMPORTER_", env_nested_delimiter="__", extra="ignore"
    )

    kafka: KafkaSettings = Field(
        default_factory=lambda: KafkaSettings(client_id="ledgerlink-importer")
    )
    database: DatabaseSettings = Field(
        default_factory=lambda: DatabaseSettings(
            url=SecretStr("sqlite+aiosqlite:///./var/importer.db")
        )
    )
    http: HttpSettings = Field(default_factory=lambda: HttpSettings(port=8082))
    consumer_group: str = Field(
        default="ledgerlink-importer",
        description="Kafka consumer group reading connection events and import requests.",
    )
    token_service: TokenServiceSettings = Field(
        default_factory=TokenServiceSettings,
        description="auth's token service: where connectors get vendor credentials.",
    )
    files_dir: Path = Field(
        default=Path("./var/importer-files"),
        description="Where uploaded ledger files are kept (a volume shared by replicas).",
    )
    file_roots: tuple[Path, ...] = Field(
        default=(),
        description="Further directories whose files import requests may name "
        "(file:// locations); anything else is refused.",
    )
    max_upload_bytes: int = Field(
        default=2 * 1024**3, ge=1, description="Largest ledger file accepted over HTTP."
    )
    import_workers: int = Field(
        default=1, ge=0, description="Imports this replica runs at a time (0: none)."
    )
    import_poll_seconds: float = Field(
        default=2.0, gt=0, description="How often an idle runner looks for queued imports."
    )
    import_lease_seconds: float = Field(
        default=60.0,
        gt=0,
        description="How long a running import is held without a heartbeat before another "
        "replica takes it over (its runner is presumed dead).",
    )
    import_max_attempts: int = Field(
        default=3, ge=1, description="Attempts before an import that keeps dying is failed."
    )
    import_batch_lines: int = Field(
        default=20_000, ge=100, description="Lines parsed and written per batch."
    )
    import_parse_process: bool = Field(
        default=True,
        description="On PostgreSQL, parse, check and encode an import's rows in a child "
        "process (one per running import) while this process writes them; off: in a worker "
        "thread of this process.",
    )
    import_parse_workers: int = Field(
        default_factory=lambda: min(2, usable_cpus()),
        ge=1,
        le=16,
        description="Child processes that read one big file at once, each a voucher-aligned "
        "chunk (with import_parse_process; default: 2, or 1 where one CPU is usable, by "
        "affinity or cgroup quota). Files "
        "under 4 MiB, and files whose chunks cannot be proven to split cleanly, are read "
        "by one.",
    )
    vendors: VendorSettings = Field(
        default_factory=VendorSettings,
        description="Ledgerlink's own client identities and API roots per ledger vendor.",
    )
    sync_interval_minutes: int = Field(
        default=15, ge=1, description="Minutes between a connection's scheduled incremental syncs."
    )
    sync_max_attempts: int = Field(
        default=10,
        ge=1,
        description="Times a sync may be interrupted (its process killed) and resumed from "
        "its checkpoint before it is failed.",
    )
    sync_workers: int = Field(
        default=1, ge=0, description="API syncs this replica runs at a time (0: none)."
    )

    @model_validator(mode="after")
    def _development_token(self) -> Config:
        # auth accepts this token in development only (its DEVELOPMENT_SERVICE_TOKEN), so
        # `ledgerlink dev up` syncs without configuration; production must set its own.
        if self.token_service.token is None and self.environment == "development":
            self.token_service = self.token_service.model_copy(
                update={"token": SecretStr("development-only-service-token")}
            )
        return self
