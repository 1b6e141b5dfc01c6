"""Faults the sandbox raises inside a vendor router; each vendor renders them its own way."""

# The names say what the sandbox does to the request (rate limited, reset), as the spec has it.
# ruff: noqa: N818

from __future__ import annotations

__all__ = [
    "SandboxBusy",
    "SandboxConnectionReset",
    "SandboxFault",
    "SandboxRateLimited",
    "SandboxServerError",
]


class SandboxFault(Exception):
    """Base class of the faults the sandbox injects or enforces."""


class SandboxRateLimited(SandboxFault):
    """Answer 429 with ``Retry-After: retry_after`` (seconds), in the vendor's error body."""

    def __init__(self, retry_after: float, message: str = "Too many requests") -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.message = message

    @property
    def retry_after_header(self) -> str:
        """The ``Retry-After`` header value: whole seconds, at least 1."""
        return str(max(1, int(-(-self.retry_after // 1))))


class SandboxBusy(SandboxRateLimited):
    """A second concurrent request for a key that allows one at a time (Netvisor)."""

    def __init__(self, key: str) -> None:
        super().__init__(1.0, f"another request for {key} is in progress")
        self.key = key


class SandboxServerError(SandboxFault):
    """Answer with a 5xx ``status`` (injected outage or maintenance)."""

    def __init__(self, status: int = 503, message: str = "Service unavailable") -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class SandboxConnectionReset(SandboxFault):
    """The connection was aborted; there is nothing to answer."""
