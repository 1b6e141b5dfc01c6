"""Settings of the importer service (env prefix ``LEDGERLINK_IMPORTER_``)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import SettingsConfigDict

from ledgerlink.shared.config import (
    DatabaseSettings,
    HttpSettings,
    KafkaSettings,
    ServiceConfig,
    TokenServiceSettings,
)


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
