"""Auth's own settings: the session secret and sign-in providers, refused in production
when they are development values."""

from __future__ import annotations

import os

import pytest
from pydantic import SecretStr, ValidationError

from ledgerlink.auth.config import DEVELOPMENT_SESSION_SECRET, Config

PG = "postgresql+asyncpg://auth:pw@db.internal:5432/auth"
GOOD_SECRET = "p" * 40


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("LEDGERLINK_AUTH_"):
            monkeypatch.delenv(name)


def _production(monkeypatch: pytest.MonkeyPatch, **env: str) -> None:
    base = {
        "LEDGERLINK_AUTH_ENVIRONMENT": "production",
        "LEDGERLINK_AUTH_DATABASE__URL": PG,
        "LEDGERLINK_AUTH_SESSION_SECRET": GOOD_SECRET,
        "LEDGERLINK_AUTH_SIGNIN__GOOGLE__CLIENT_SECRET": "google-real-secret",
        "LEDGERLINK_AUTH_SIGNIN__GOOGLE__DISCOVERY_URL": (
            "https://accounts.google.com/.well-known/openid-configuration"
        ),
        "LEDGERLINK_AUTH_SIGNIN__MICROSOFT__CLIENT_SECRET": "microsoft-real-secret",
        "LEDGERLINK_AUTH_SIGNIN__MICROSOFT__DISCOVERY_URL": (
            "https://login.microsoftonline.com/organizations/v2.0/.well-known/openid-configuration"
        ),
        # The vault and the token service refuse their development defaults too.
        "LEDGERLINK_AUTH_VAULT__KEYS": '{"1": "production-vault-key-0123456789abcdef0123"}',
        "LEDGERLINK_AUTH_SERVICE_TOKENS": '{"importer": "production-token-0123456789abcdef0123"}',
        # Ledgerlink's Netvisor partner key (the activation pages sign with it).
        "LEDGERLINK_AUTH_NETVISOR__PARTNER_KEY": "netvisor-partner-key-of-production",
        "LEDGERLINK_AUTH_CONNECT__VISMA_CONNECT__CLIENT_SECRET": "visma-connect-real-secret",
        "LEDGERLINK_AUTH_CONNECT__VISMA_CONNECT__AUTHORIZE_URL": "https://connect.example/authorize",
        "LEDGERLINK_AUTH_CONNECT__VISMA_CONNECT__TOKEN_URL": "https://connect.example/token",
        "LEDGERLINK_AUTH_CONNECT__VISMA_CONNECT__API_BASE_URL": "https://erp.example/API",
        "LEDGERLINK_AUTH_TWENTYFOUR__APPLICATION_ID": "24so-real-application-id",
        "LEDGERLINK_AUTH_TWENTYFOUR__SOAP_BASE_URL": "https://soap.example",
        "LEDGERLINK_AUTH_CONNECT__NMBRS__SOAP_BASE_URL": "https://nmbrs.example",
        "LEDGERLINK_AUTH_SIGNIN__PUBLIC_URL": "https://ledgerlink.example.com",
    }
    base.update(env)
    for key, value in base.items():
        monkeypatch.setenv(key, value)


def test_development_defaults_point_at_the_sandbox() -> None:
    config = Config()
    assert config.session_secret.get_secret_value() == DEVELOPMENT_SESSION_SECRET
    assert config.signin.enabled() == ["google", "microsoft"]
    assert config.signin.google.discovery_url.startswith("http://127.0.0.1:8084/google/")
    assert config.cookie_secure is False
    assert Config(environment="test").cookie_secure is True


def test_production_with_its_own_values_is_accepted(monkeypatch: pytest.MonkeyPatch) -> None:
    _production(monkeypatch)
    config = Config()
    assert config.cookie_secure is True
    assert "google-real-secret" not in repr(config)
    assert GOOD_SECRET not in repr(config)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        (
            {"LEDGERLINK_AUTH_SESSION_SECRET": DEVELOPMENT_SESSION_SECRET},
            "production needs its own session_secret",
        ),
        (
            {"LEDGERLINK_AUTH_PAGES__CLOCK_CONTROL": "true"},
            "clock_control is for development and tests",
        ),
        (
            {"LEDGERLINK_AUTH_NETVISOR__PARTNER_KEY": "demo-partner-key"},
            "real Netvisor partner key",
        ),
        (
            {"LEDGERLINK_AUTH_CONNECT__VISMA_CONNECT__CLIENT_SECRET": "sandbox-secret"},
            "real Visma Connect client secret",
        ),
        (
            {"LEDGERLINK_AUTH_TWENTYFOUR__APPLICATION_ID": "24so-sandbox-application"},
            "real 24SevenOffice ApplicationId",
        ),
        (
            {"LEDGERLINK_AUTH_CONNECT__NMBRS__SOAP_BASE_URL": "http://nmbrs.internal"},
            "https connect.nmbrs.soap_base_url",
        ),
        (
            {"LEDGERLINK_AUTH_SIGNIN__GOOGLE__CLIENT_SECRET": "sandbox-oidc-client-secret"},
            "production needs google's real client secret",
        ),
        (
            {"LEDGERLINK_AUTH_SIGNIN__MICROSOFT__DISCOVERY_URL": "http://idp.internal/x"},
            "production needs an https discovery URL for microsoft",
        ),
        ({"LEDGERLINK_AUTH_SIGNIN__PUBLIC_URL": ""}, "production needs signin.public_url"),
        (
            {"LEDGERLINK_AUTH_SIGNIN__PUBLIC_URL": "http://ledgerlink.example.com"},
            "production needs signin.public_url",
        ),
    ],
)
def test_production_refuses_development_values(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], message: str
) -> None:
    _production(monkeypatch, **env)
    with pytest.raises(ValidationError, match=message) as error:
        Config()
    assert "sandbox-oidc-client-secret" not in str(error.value)


def test_a_disabled_provider_needs_no_secret_in_production(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _production(
        monkeypatch,
        LEDGERLINK_AUTH_SIGNIN__MICROSOFT__ENABLED="false",
        LEDGERLINK_AUTH_SIGNIN__MICROSOFT__CLIENT_SECRET="sandbox-oidc-client-secret",
    )
    assert Config().signin.enabled() == ["google"]


def test_a_short_session_secret_is_refused_everywhere() -> None:
    with pytest.raises(ValidationError, match="at least 32 characters"):
        Config(session_secret=SecretStr("short"))
