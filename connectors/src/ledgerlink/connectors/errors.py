"""What can go wrong when talking to a vendor, in vendor-neutral categories.

Every connector maps the vendor's own error (a Netvisor ``Status`` category, a Procountor
``errors[].message`` code, a Visma ``ExceptionFaultCode``, a SOAP fault...) to one of these
classes and keeps the vendor's code and message on the exception, so an operator can look
the original up. Messages never contain secrets: connectors only ever pass vendor texts and
their own words, never a header, a token or a key (see ``redact``).
"""

# The names are the vendor-neutral categories of the contract (InvalidData, RateLimited...),
# read as what happened rather than as "...Error".
# ruff: noqa: N818

from __future__ import annotations

import re

__all__ = [
    "AccessNotEnabled",
    "AuthenticationFailed",
    "ConcurrencyConflict",
    "ConnectorError",
    "DuplicateData",
    "InvalidData",
    "NotFound",
    "PeriodLocked",
    "RateLimited",
    "ReauthorizationRequired",
    "RequestNotUnique",
    "UnexpectedResponse",
    "VendorUnavailable",
    "redact",
]

# Vendor messages sometimes echo what they were sent; anything that looks like a credential
# is cut out before it reaches an exception message or a log line.
_SECRET_PATTERNS = (
    re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._~+/=-]+"),
    re.compile(
        r"(?i)((?:access_token|refresh_token|client_secret|api_key|password|token|code_verifier"
        r"|customerkey|partnerkey)[\"']?\s*[:=]\s*[\"']?)[^\s\"'&,;<]+"
    ),
)
_MAX_VENDOR_MESSAGE = 500


def redact(text: str) -> str:
    """``text`` with anything that looks like a credential replaced by ``***``."""
    for pattern in _SECRET_PATTERNS:
        text = pattern.sub(r"\1***", text)
    return text


class ConnectorError(Exception):
    """A vendor call failed; ``vendor_code``/``vendor_message`` keep what the vendor said."""

    #: Whether repeating the same request later may succeed.
    retryable: bool = False

    def __init__(
        self,
        vendor: str,
        message: str,
        *,
        vendor_code: str | None = None,
        vendor_message: str | None = None,
        status: int | None = None,
    ) -> None:
        self.vendor = vendor
        self.message = redact(message)
        self.vendor_code = vendor_code
        self.vendor_message = (
            redact(vendor_message)[:_MAX_VENDOR_MESSAGE] if vendor_message is not None else None
        )
        self.status = status
        super().__init__(self.__str__())

    def __str__(self) -> str:
        parts = [f"{self.vendor}: {self.message}"]
        details = []
        if self.status is not None:
            details.append(f"HTTP {self.status}")
        if self.vendor_code:
            details.append(f"code {self.vendor_code}")
        if details:
            parts.append(f"({', '.join(details)})")
        if self.vendor_message and self.vendor_message != self.message:
            parts.append(f"- vendor said: {self.vendor_message}")
        return " ".join(parts)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(vendor={self.vendor!r}, message={self.message!r}, "
            f"vendor_code={self.vendor_code!r}, status={self.status!r})"
        )


class AuthenticationFailed(ConnectorError):
    """The credentials were refused (wrong key, wrong MAC, unknown client)."""


class ReauthorizationRequired(AuthenticationFailed):
    """The grant is gone (refresh token expired, revoked or rotated away): a person must
    authorise the connection again."""


class AccessNotEnabled(ConnectorError):
    """Authenticated, but the API is not enabled, not licensed, or rights are missing."""


class InvalidData(ConnectorError):
    """The vendor refused the content (unknown account, unbalanced voucher, bad field)."""


class DuplicateData(ConnectorError):
    """The vendor already has this item."""


class PeriodLocked(InvalidData):
    """The date lies in a closed or locked accounting period."""


class ConcurrencyConflict(ConnectorError):
    """The item changed since it was read (stale version, ETag mismatch)."""


class NotFound(ConnectorError):
    """The item or resource does not exist."""


class RateLimited(ConnectorError):
    """Too many requests; ``retry_after`` is the wait the vendor asked for, in seconds."""

    retryable = True

    def __init__(
        self,
        vendor: str,
        message: str,
        *,
        retry_after: float | None = None,
        vendor_code: str | None = None,
        vendor_message: str | None = None,
        status: int | None = 429,
    ) -> None:
        self.retry_after = retry_after
        super().__init__(
            vendor,
            message,
            vendor_code=vendor_code,
            vendor_message=vendor_message,
            status=status,
        )


class VendorUnavailable(ConnectorError):
    """The vendor is down, in maintenance, or kept failing (5xx, resets) after retries."""

    retryable = True


class RequestNotUnique(ConnectorError):
    """A request id (e.g. Netvisor's TransactionId) was used twice."""


class UnexpectedResponse(ConnectorError):
    """The vendor answered in a shape its published contract does not allow (a required field
    missing, an unknown enum value, a wrong namespace, a truncated or mistyped body).

    ``endpoint`` is the method and path (no query string: it can carry identifiers) and
    ``detail`` says what was wrong, e.g. ``"Transactions[3].AccountNumber is missing"``. Not
    retryable: the same request would get the same answer; an operator hands the (redacted)
    exchange to us instead.
    """

    def __init__(
        self,
        vendor: str,
        endpoint: str,
        detail: str,
        *,
        status: int | None = None,
    ) -> None:
        self.endpoint = endpoint
        self.detail = detail
        super().__init__(vendor, f"unexpected answer from {endpoint}: {detail}", status=status)
