"""Production refuses open payroll routes; the pages never run without auth's sign-in, and
production accepts them once sign-in is configured."""

from __future__ import annotations

from typing import Literal

import pytest
from pydantic import SecretStr, ValidationError

from ledgerlink.journal_exporter.config import (
    Config,
    PayrollExportSettings,
    PayrollSigninSettings,
)
from ledgerlink.shared.config import DatabaseSettings, TokenServiceSettings

PRODUCTION_DB = DatabaseSettings(url=SecretStr("postgresql+asyncpg://u:p@db:5432/exporter"))
TOKENS = {"ops": SecretStr("a-production-payroll-token-0123456789")}


def test_production_without_payroll_tokens_is_refused() -> None:
    with pytest.raises(ValidationError, match=r"payroll\.api_tokens"):
        Config(environment="production", database=PRODUCTION_DB)


@pytest.mark.parametrize("environment", ["production", "development"])
def test_pages_without_sign_in_are_refused(
    environment: Literal["production", "development"],
) -> None:
    payroll = PayrollExportSettings(api_tokens=TOKENS, pages_enabled=True)
    with pytest.raises(ValidationError, match=r"signin\.auth_url"):
        Config(environment=environment, database=PRODUCTION_DB, payroll=payroll)


def test_production_accepts_the_pages_once_sign_in_is_configured() -> None:
    payroll = PayrollExportSettings(
        api_tokens=TOKENS,
        pages_enabled=True,
        signin=PayrollSigninSettings(auth_url="http://auth:8081"),
    )
    config = Config(
        environment="production",
        database=PRODUCTION_DB,
        payroll=payroll,
        token_service=TokenServiceSettings(
            url="http://auth:8081", token=SecretStr("a-production-service-token-0123456789")
        ),
    )
    assert config.payroll.pages_enabled
    assert config.payroll.signin.signin_url == "/signin"


def test_production_with_tokens_starts_and_development_may_be_open() -> None:
    config = Config(
        environment="production",
        database=PRODUCTION_DB,
        payroll=PayrollExportSettings(api_tokens=TOKENS),
    )
    assert set(config.payroll.api_tokens) == {"ops"}
    assert "a-production-payroll-token" not in repr(config)
    assert Config(environment="development").payroll.api_tokens == {}
