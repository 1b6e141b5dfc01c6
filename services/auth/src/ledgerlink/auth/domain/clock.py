"""Auth's notion of now: one injectable clock type, so tests move time instead of waiting."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

#: Returns the current time, timezone-aware (UTC); services take one to be testable.
Clock = Callable[[], datetime]


def utc_now() -> datetime:
    """The wall clock in UTC (the default ``Clock``)."""
    return datetime.now(UTC)
