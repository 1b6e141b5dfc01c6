"""Connector errors keep the vendor's words and never a secret."""

from __future__ import annotations

from ledgerlink.connectors.errors import (
    AuthenticationFailed,
    ConnectorError,
    InvalidData,
    PeriodLocked,
    RateLimited,
    ReauthorizationRequired,
    VendorUnavailable,
    redact,
)


def test_message_keeps_vendor_code_message_and_status() -> None:
    error = InvalidData(
        "netvisor",
        "voucher refused",
        vendor_code="INVALID_DATA",
        vendor_message="Account 9999 does not exist",
        status=200,
    )
    text = str(error)
    assert text.startswith("netvisor: voucher refused")
    assert "code INVALID_DATA" in text
    assert "Account 9999 does not exist" in text
    assert "HTTP 200" in text
    assert error.vendor_message == "Account 9999 does not exist"


def test_hierarchy_lets_callers_catch_broad_categories() -> None:
    assert issubclass(ReauthorizationRequired, AuthenticationFailed)
    assert issubclass(PeriodLocked, InvalidData)
    assert all(
        issubclass(cls, ConnectorError)
        for cls in (AuthenticationFailed, InvalidData, RateLimited, VendorUnavailable)
    )
    assert RateLimited.retryable
    assert VendorUnavailable.retryable
    assert not InvalidData.retryable


def test_rate_limited_carries_retry_after() -> None:
    error = RateLimited("vismanet", "slow down", retry_after=7.0)
    assert error.retry_after == 7.0
    assert error.status == 429


def test_secrets_echoed_by_a_vendor_are_redacted() -> None:
    error = AuthenticationFailed(
        "procountor",
        "refused Bearer abc.def.ghi",
        vendor_message='client_secret=hunter2&api_key="k-123" password: pw1 token=tok9',
    )
    text = f"{error} {error!r}"
    for secret in ("abc.def.ghi", "hunter2", "k-123", "pw1", "tok9"):
        assert secret not in text
    assert "client_secret=***" in text


def test_redact_leaves_ordinary_text_alone() -> None:
    assert redact("Period 2024-03 is locked") == "Period 2024-03 is locked"


def test_long_vendor_messages_are_cut() -> None:
    error = VendorUnavailable("twentyfour", "down", vendor_message="x" * 5000)
    assert error.vendor_message is not None
    assert len(error.vendor_message) == 500


def test_unexpected_response_names_vendor_endpoint_and_what_was_wrong() -> None:
    from ledgerlink.connectors.errors import ConnectorError, UnexpectedResponse

    error = UnexpectedResponse(
        "vismanet", "GET /v2/journaltransaction", "batchNumber is missing", status=200
    )
    assert isinstance(error, ConnectorError)
    assert error.retryable is False
    assert str(error) == (
        "vismanet: unexpected answer from GET /v2/journaltransaction: batchNumber is missing "
        "(HTTP 200)"
    )
    assert error.endpoint == "GET /v2/journaltransaction"
    assert error.detail == "batchNumber is missing"
