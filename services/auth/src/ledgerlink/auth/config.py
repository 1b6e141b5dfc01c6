"""Settings of the auth service (env prefix ``LEDGERLINK_AUTH_``)."""

from __future__ import annotations

from pydantic import Field, SecretStr
from pydantic_settings import SettingsConfigDict

from ledgerlink.shared.config import DatabaseSettings, HttpSettings, KafkaSettings, ServiceConfig


class Config(ServiceConfig):
    """Auth: activations, environments and connections."""

    model_config = SettingsConfigDict(
        env_prefix="LEDGERLINK_AUTH_", env_nested_delimiter="__", extra="ignore"
    )

    kafka: KafkaSettings = Field(default_factory=lambda: KafkaSettings(client_id="ledgerlink-auth"))
    database: DatabaseSettings = Field(
        default_factory=lambda: DatabaseSettings(url=SecretStr("sqlite+aiosqlite:///./var/auth.db"))
    )
    http: HttpSettings = Field(default_factory=lambda: HttpSettings(port=8081))
    consumer_group: str = Field(
        default="ledgerlink-auth", description="Kafka consumer group of the activation consumer."
    )
