"""Settings of the importer service (env prefix ``LEDGERLINK_IMPORTER_``)."""

from __future__ import annotations

from pydantic import Field, SecretStr
from pydantic_settings import SettingsConfigDict

from ledgerlink.shared.config import DatabaseSettings, HttpSettings, KafkaSettings, ServiceConfig


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
