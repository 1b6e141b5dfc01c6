"""Settings of the auth service (env prefix ``LEDGERLINK_AUTH_``)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field, SecretStr, model_validator
from pydantic_settings import SettingsConfigDict

from ledgerlink.shared.config import DatabaseSettings, HttpSettings, KafkaSettings, ServiceConfig

#: Development defaults; production refuses to start with them.
DEVELOPMENT_VAULT_KEY = SecretStr("development-only-vault-key-never-use-in-production")
DEVELOPMENT_SERVICE_TOKEN = SecretStr("development-only-service-token")
MIN_KEY_LENGTH = 32


class VaultSettings(BaseModel):
    """Versioned keys of the credential vault (``VAULT__KEYS`` as ``{"1": "...", "2": ...}``)."""

    keys: dict[int, SecretStr] = Field(
        default_factory=lambda: {1: DEVELOPMENT_VAULT_KEY},
        description="Key material by version (each at least 32 characters). Keep a retired "
        "version here until `ledgerlink-auth vault status` shows no ciphertext under it.",
    )
    active_key: int = Field(default=1, description="The version that encrypts from now on.")
    rotate_batch_size: int = Field(
        default=200, ge=1, description="Secrets re-encrypted per transaction by `vault rotate`."
    )

    @model_validator(mode="after")
    def _check_keys(self) -> VaultSettings:
        if self.active_key not in self.keys:
            raise ValueError(f"vault.active_key {self.active_key} is not one of vault.keys")
        for version, key in self.keys.items():
            if len(key.get_secret_value()) < MIN_KEY_LENGTH:
                raise ValueError(f"vault key {version} is shorter than {MIN_KEY_LENGTH} characters")
        return self


class OAuthProviderSettings(BaseModel):
    """Our registered OAuth client at one vendor (used to refresh and revoke)."""

    client_id: str = Field(min_length=1, description="Our client id at the vendor.")
    client_secret: SecretStr | None = Field(default=None, description="Our client secret.")
    token_url: str = Field(description="The vendor's token endpoint.")
    revocation_url: str | None = Field(
        default=None, description="RFC 7009 revocation endpoint, where the vendor has one."
    )
    token_endpoint_auth_method: Literal["client_secret_post", "client_secret_basic", "none"] = (
        Field(default="client_secret_post", description="How the client authenticates.")
    )


class Config(ServiceConfig):
    """Auth: activations, environments, connections, the credential vault and token service."""

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
    vault: VaultSettings = Field(default_factory=VaultSettings)
    service_tokens: dict[str, SecretStr] = Field(
        default_factory=lambda: {"development": DEVELOPMENT_SERVICE_TOKEN},
        description="Bearer tokens of the services allowed on /internal (name -> token), "
        'e.g. {"importer": "...", "journal-exporter": "..."}.',
    )
    oauth_providers: dict[str, OAuthProviderSettings] = Field(
        default_factory=dict,
        description="Our OAuth client per provider (visma_net, procountor, nmbrs).",
    )
    refresh_leeway_seconds: float = Field(
        default=120, ge=0, description="Refresh an access token this long before it expires."
    )
    credential_cache_seconds: float = Field(
        default=5,
        ge=0,
        description="Longest time a replica answers from memory without re-reading the "
        "connection (a revocation on another replica is seen within it).",
    )
    vendor_timeout_seconds: float = Field(
        default=15, gt=0, description="Timeout of token and revocation calls to a vendor."
    )
    activation_ttl_hours: float = Field(
        default=72, gt=0, description="A pending activation not authorised by then expires."
    )
    expiry_check_seconds: float = Field(
        default=300, gt=0, description="How often pending activations are checked for expiry."
    )

    @model_validator(mode="after")
    def _refuse_development_secrets_in_production(self) -> Config:
        if self.environment != "production":
            return self
        development = DEVELOPMENT_VAULT_KEY.get_secret_value()
        if any(key.get_secret_value() == development for key in self.vault.keys.values()):
            raise ValueError("production needs its own vault keys, not the development default")
        if not self.service_tokens or any(
            token.get_secret_value() == DEVELOPMENT_SERVICE_TOKEN.get_secret_value()
            or len(token.get_secret_value()) < MIN_KEY_LENGTH
            for token in self.service_tokens.values()
        ):
            raise ValueError(
                "production needs service tokens of at least 32 characters, not the default"
            )
        return self
