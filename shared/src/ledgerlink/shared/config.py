"""Settings models shared by every service.

Each service defines one ``Config(ServiceConfig)`` with its own env prefix; nested models
are filled from ``<PREFIX><SECTION>__<FIELD>`` variables (for example
``LEDGERLINK_AUTH_KAFKA__BOOTSTRAP_SERVERS``).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class KafkaSettings(BaseModel):
    """How a service reaches Kafka."""

    bootstrap_servers: str = Field(
        default="127.0.0.1:9092", description="Comma-separated host:port list of Kafka brokers."
    )
    client_id: str = Field(default="ledgerlink", description="Client id sent to the brokers.")
    topic_prefix: str = Field(
        default="",
        description="Prefix added to every topic name (isolates environments on one cluster).",
    )
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = Field(
        default="PLAINTEXT", description="Kafka security protocol."
    )
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = Field(
        default=None, description="SASL mechanism when a SASL protocol is used."
    )
    sasl_username: str | None = Field(default=None, description="SASL user name.")
    sasl_password: SecretStr | None = Field(default=None, description="SASL password.")
    idempotent_producer: bool = Field(
        default=True,
        description=(
            "Idempotent producers (acks=all, no duplicates on retry). Leave on: turning it off "
            "exists only for test brokers without InitProducerId (Tansu, used where a test "
            "needs a real consumer-group coordinator); production refuses it off."
        ),
    )
    handler_attempts: int = Field(
        default=3,
        ge=1,
        le=20,
        description="Attempts at a failing event before it goes to the dead-letter topic.",
    )
    retry_backoff_seconds: float = Field(
        default=0.2, ge=0, description="First back-off between attempts; doubles each time."
    )
    consume_batch_size: int = Field(
        default=500,
        ge=1,
        le=10_000,
        description="Records consumed per batch: one database transaction per batch with a "
        "savepoint per event, offsets committed after it. 1 = one transaction per record.",
    )
    consume_partitions_in_parallel: int = Field(
        default=4,
        ge=1,
        le=64,
        description="PostgreSQL: transactions a batch is split into, handled at once, each "
        "holding whole partitions (a company's events share a partition, so their order "
        "holds). 1 = one transaction for the whole batch. SQLite always uses one.",
    )
    consume_events_per_parallel_transaction: int = Field(
        default=100,
        ge=1,
        description="PostgreSQL: the fewest events that make a transaction of their own: a "
        "batch of N events is split into at most N / this many transactions (each costs "
        "about a dozen statements however few events it holds).",
    )
    consume_batch_handlers: bool = Field(
        default=True,
        description="Use the batch handlers routes register (set-based handling of runs of "
        "one event type in a batch). Off: every event through its per-event handler, a "
        "savepoint each (same outcome, more CPU per event).",
    )
    consume_batch_timeout_ms: int = Field(
        default=100,
        ge=1,
        description="Longest wait for records when none are ready (a batch never waits to fill).",
    )

    def topic(self, name: str) -> str:
        """The full topic name for ``name`` with this environment's prefix."""
        return f"{self.topic_prefix}{name}"


class DatabaseSettings(BaseModel):
    """The service's own store."""

    url: SecretStr = Field(
        default=SecretStr("sqlite+aiosqlite:///./var/ledgerlink.db"),
        description="SQLAlchemy async URL: postgresql+asyncpg://... or sqlite+aiosqlite:///...",
    )
    pool_size: int = Field(default=5, ge=1, description="Connection pool size (PostgreSQL).")
    echo: bool = Field(default=False, description="Log every SQL statement (debugging only).")
    trace_statements: bool = Field(
        default=False,
        description="An OpenTelemetry span per SQL statement (costly: off by default; events "
        "and batches have their own spans).",
    )


class HttpSettings(BaseModel):
    """The service's HTTP listener (health, metrics, AsyncAPI and its API)."""

    host: str = Field(default="127.0.0.1", description="Interface to listen on.")
    port: int = Field(default=8080, ge=0, le=65535, description="TCP port (0 picks a free one).")


class OutboxSettings(BaseModel):
    """The relay that moves committed outbox rows to Kafka."""

    relay_enabled: bool = Field(
        default=True, description="Run the relay in this process (off: rows wait in the outbox)."
    )
    poll_interval_seconds: float = Field(
        default=1.0, gt=0, description="Longest wait between scans when nothing wakes the relay."
    )
    batch_size: int = Field(
        default=1000,
        ge=1,
        description="Rows published per relay pass (sent together, then one flush and one "
        "update marking them).",
    )
    retention_hours: float = Field(
        default=72, gt=0, description="How long published rows are kept before being purged."
    )


class TokenServiceSettings(BaseModel):
    """How a service reaches auth's token service (vendor credentials, in memory only)."""

    url: str = Field(default="http://127.0.0.1:8081", description="Base URL of the auth service.")
    token: SecretStr | None = Field(
        default=None, description="This service's bearer token (one of auth's SERVICE_TOKENS)."
    )


class ServiceConfig(BaseSettings):
    """Settings every service has; subclasses set ``env_prefix`` and their defaults."""

    model_config = SettingsConfigDict(
        env_nested_delimiter="__", extra="ignore", hide_input_in_errors=True
    )

    environment: Literal["development", "test", "production"] = Field(
        default="development", description="Production refuses development defaults."
    )
    log_level: str = Field(default="INFO", description="Python logging level name.")
    # No secret key here: no service signs or encrypts anything yet. The service that
    # first does declares its own key on its own Config, with its own production guard.
    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
    database: DatabaseSettings = Field(default_factory=DatabaseSettings)
    http: HttpSettings = Field(default_factory=HttpSettings)
    outbox: OutboxSettings = Field(default_factory=OutboxSettings)

    @model_validator(mode="after")
    def _refuse_development_defaults_in_production(self) -> ServiceConfig:
        if self.environment == "production" and self.database.url.get_secret_value().startswith(
            "sqlite"
        ):
            raise ValueError("production needs PostgreSQL, not the embedded SQLite store")
        if self.environment == "production" and not self.kafka.idempotent_producer:
            raise ValueError(
                "production needs idempotent Kafka producers (kafka.idempotent_producer=true): "
                "without them a retried send can publish an event twice"
            )
        return self
