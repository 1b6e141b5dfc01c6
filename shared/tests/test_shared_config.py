"""Settings: env prefix, nested ``__`` variables, secrets kept out of output, production guards."""

from __future__ import annotations

import os

import pytest
from pydantic import SecretStr, ValidationError
from pydantic_settings import SettingsConfigDict

from ledgerlink.shared.config import DatabaseSettings, KafkaSettings, ServiceConfig
from ledgerlink.shared.topics import Topic

POSTGRES_URL = "postgresql+asyncpg://ledger:pg-password-0xA1@db.internal:5432/ledger"


class XConfig(ServiceConfig):
    """A service config the way every service declares one."""

    model_config = SettingsConfigDict(env_prefix="LEDGERLINK_X_", env_nested_delimiter="__")


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Nothing from the outer environment leaks into these settings."""
    for name in list(os.environ):
        if name.startswith("LEDGERLINK_X_"):
            monkeypatch.delenv(name)


def test_defaults_without_environment() -> None:
    config = XConfig()

    assert config.environment == "development"
    assert config.kafka.bootstrap_servers == "127.0.0.1:9092"
    assert config.kafka.topic_prefix == ""
    assert config.database.url.get_secret_value().startswith("sqlite+aiosqlite:///")
    assert config.http.port == 8080
    assert config.outbox.relay_enabled is True


def test_env_prefix_and_nested_delimiter(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LEDGERLINK_X_ENVIRONMENT", "test")
    monkeypatch.setenv("LEDGERLINK_X_LOG_LEVEL", "DEBUG")
    monkeypatch.setenv("LEDGERLINK_X_KAFKA__BOOTSTRAP_SERVERS", "kafka-0:9092,kafka-1:9092")
    monkeypatch.setenv("LEDGERLINK_X_KAFKA__TOPIC_PREFIX", "staging.")
    monkeypatch.setenv("LEDGERLINK_X_KAFKA__HANDLER_ATTEMPTS", "7")
    monkeypatch.setenv("LEDGERLINK_X_DATABASE__URL", POSTGRES_URL)
    monkeypatch.setenv("LEDGERLINK_X_DATABASE__POOL_SIZE", "11")
    monkeypatch.setenv("LEDGERLINK_X_HTTP__PORT", "9123")
    monkeypatch.setenv("LEDGERLINK_X_OUTBOX__RELAY_ENABLED", "false")
    monkeypatch.setenv("LEDGERLINK_X_OUTBOX__BATCH_SIZE", "17")

    config = XConfig()

    assert config.environment == "test"
    assert config.log_level == "DEBUG"
    assert config.kafka.bootstrap_servers == "kafka-0:9092,kafka-1:9092"
    assert config.kafka.topic_prefix == "staging."
    assert config.kafka.handler_attempts == 7
    assert config.database.url.get_secret_value() == POSTGRES_URL
    assert config.database.pool_size == 11
    assert config.http.port == 9123
    assert config.outbox.relay_enabled is False
    assert config.outbox.batch_size == 17


def test_variables_without_the_prefix_are_not_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAFKA__BOOTSTRAP_SERVERS", "elsewhere:9092")
    monkeypatch.setenv("LEDGERLINK_Y_KAFKA__BOOTSTRAP_SERVERS", "other-service:9092")
    monkeypatch.setenv("ENVIRONMENT", "production")

    config = XConfig()

    assert config.kafka.bootstrap_servers == "127.0.0.1:9092"
    assert config.environment == "development"


def test_invalid_nested_value_from_environment_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("LEDGERLINK_X_KAFKA__HANDLER_ATTEMPTS", "0")

    with pytest.raises(ValidationError, match="handler_attempts"):
        XConfig()


def test_secrets_never_appear_in_repr_str_or_json(monkeypatch: pytest.MonkeyPatch) -> None:
    sasl_password = "sasl-pw-Zx81"
    monkeypatch.setenv("LEDGERLINK_X_DATABASE__URL", POSTGRES_URL)
    monkeypatch.setenv("LEDGERLINK_X_KAFKA__SASL_MECHANISM", "PLAIN")
    monkeypatch.setenv("LEDGERLINK_X_KAFKA__SASL_USERNAME", "svc")
    monkeypatch.setenv("LEDGERLINK_X_KAFKA__SASL_PASSWORD", sasl_password)

    config = XConfig()

    assert config.kafka.sasl_password is not None
    assert config.kafka.sasl_password.get_secret_value() == sasl_password
    rendered = {
        "repr": repr(config),
        "str": str(config),
        "json": config.model_dump_json(),
        "kafka repr": repr(config.kafka),
        "database repr": repr(config.database),
        "database json": config.database.model_dump_json(),
    }
    for how, text in rendered.items():
        for secret in (sasl_password, "pg-password-0xA1", POSTGRES_URL):
            assert secret not in text, f"{secret!r} leaked through {how}"
    assert "**********" in rendered["json"]


def test_refusal_errors_do_not_echo_secret_values(monkeypatch: pytest.MonkeyPatch) -> None:
    secret_url = "sqlite+aiosqlite:////srv/private-9f/ledger.db"
    monkeypatch.setenv("LEDGERLINK_X_ENVIRONMENT", "production")
    monkeypatch.setenv("LEDGERLINK_X_DATABASE__URL", secret_url)

    with pytest.raises(ValidationError) as caught:
        XConfig()

    assert "production needs PostgreSQL" in str(caught.value)
    assert "private-9f" not in str(caught.value)


def test_there_is_no_shared_secret_key_setting() -> None:
    # No service uses one yet; a service that needs a key declares it on its own Config.
    assert "secret_key" not in ServiceConfig.model_fields


def test_leftover_secret_key_variable_is_ignored_even_in_production(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Deployments that still set the old variable keep starting, whatever its value.
    monkeypatch.setenv("LEDGERLINK_X_ENVIRONMENT", "production")
    monkeypatch.setenv("LEDGERLINK_X_SECRET_KEY", "short")
    monkeypatch.setenv("LEDGERLINK_X_DATABASE__URL", POSTGRES_URL)

    config = XConfig()

    assert config.environment == "production"
    assert not hasattr(config, "secret_key")


@pytest.mark.parametrize(
    "url", ["sqlite+aiosqlite:///./var/ledgerlink.db", "sqlite+aiosqlite:///:memory:"]
)
def test_production_refuses_sqlite(url: str) -> None:
    with pytest.raises(ValidationError, match="production needs PostgreSQL"):
        ServiceConfig(environment="production", database=DatabaseSettings(url=SecretStr(url)))


def test_production_refuses_the_default_database() -> None:
    with pytest.raises(ValidationError, match="production needs PostgreSQL"):
        ServiceConfig(environment="production")


def test_production_accepts_postgres(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LEDGERLINK_X_ENVIRONMENT", "production")
    monkeypatch.setenv("LEDGERLINK_X_DATABASE__URL", POSTGRES_URL)

    config = XConfig()

    assert config.environment == "production"


@pytest.mark.parametrize("environment", ["development", "test"])
def test_non_production_may_use_development_defaults(environment: str) -> None:
    config = ServiceConfig.model_validate({"environment": environment})

    assert config.database.url.get_secret_value().startswith("sqlite")


def test_unknown_environment_refused() -> None:
    with pytest.raises(ValidationError, match="environment"):
        ServiceConfig.model_validate({"environment": "staging"})


def test_kafka_topic_adds_prefix() -> None:
    assert KafkaSettings().topic(Topic.ACTIVATIONS) == "ledgerlink.activations"
    prefixed = KafkaSettings(topic_prefix="dev-eu.")
    assert prefixed.topic(Topic.ACTIVATIONS) == "dev-eu.ledgerlink.activations"
    assert prefixed.topic("ledgerlink.journals.dlq") == "dev-eu.ledgerlink.journals.dlq"


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("handler_attempts", 0),
        ("handler_attempts", 21),
        ("retry_backoff_seconds", -0.1),
        ("security_protocol", "TLS"),
        ("sasl_mechanism", "GSSAPI"),
    ],
)
def test_kafka_settings_bounds(field: str, value: object) -> None:
    with pytest.raises(ValidationError, match=field):
        KafkaSettings.model_validate({field: value})


def test_production_refuses_producers_that_are_not_idempotent() -> None:
    kafka = KafkaSettings(idempotent_producer=False)
    database = DatabaseSettings(url=SecretStr(POSTGRES_URL))
    with pytest.raises(ValidationError, match="idempotent Kafka producers"):
        ServiceConfig(environment="production", database=database, kafka=kafka)
    # Tests against a broker without InitProducerId may turn them off.
    assert ServiceConfig(environment="test", database=database, kafka=kafka).kafka == kafka
    assert ServiceConfig().kafka.idempotent_producer is True
