"""Production refuses the payroll routes' development shape (open routes, pages without
sign-in); development keeps both possible."""

from __future__ import annotations

import pytest
from pydantic import SecretStr, ValidationError

from ledgerlink.journal_exporter.config import Config, PayrollExportSettings
from ledgerlink.shared.config import DatabaseSettings

PRODUCTION_DB = DatabaseSettings(url=SecretStr("postgresql+asyncpg://u:p@db:5432/exporter"))
TOKENS = {"ops": SecretStr("a-production-payroll-token-0123456789")}


def test_production_without_payroll_tokens_is_refused() -> None:
    with pytest.raises(ValidationError, match=r"payroll\.api_tokens"):
        Config(environment="production", database=PRODUCTION_DB)


def test_production_refuses_pages_without_sign_in() -> None:
    payroll = PayrollExportSettings(api_tokens=TOKENS, pages_enabled=True)
    with pytest.raises(ValidationError, match="pages_enabled"):
        Config(environment="production", database=PRODUCTION_DB, payroll=payroll)


def test_production_with_tokens_starts_and_development_may_be_open() -> None:
    config = Config(
        environment="production",
        database=PRODUCTION_DB,
        payroll=PayrollExportSettings(api_tokens=TOKENS),
    )
    assert set(config.payroll.api_tokens) == {"ops"}
    assert "a-production-payroll-token" not in repr(config)
    assert Config(environment="development").payroll.api_tokens == {}
