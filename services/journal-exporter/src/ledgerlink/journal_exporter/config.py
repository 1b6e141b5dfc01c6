"""Settings of the journal exporter (env prefix ``LEDGERLINK_JOURNAL_EXPORTER_``)."""

from __future__ import annotations

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
