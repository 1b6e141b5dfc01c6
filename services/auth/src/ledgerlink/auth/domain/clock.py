"""Auth's notion of now: one injectable clock type, so tests move time instead of waiting."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

#: Returns the current time, timezone-aware (UTC); services take one to be testable.
Clock = Callable[[], datetime]


def utc_now() -> datetime:
    """The wall clock in UTC (the default ``Clock``)."""
    return datetime.now(UTC)


class MovableClock:
    """The wall clock plus an offset that only grows (development and tests: a process's
    time moved forward from outside, ``pages.clock_control``), never used in production."""

    def __init__(self, base: Clock = utc_now) -> None:
        self._base = base
        self.offset_seconds = 0.0

    def __call__(self) -> datetime:
        return self._base() + timedelta(seconds=self.offset_seconds)

    def advance(self, seconds: float) -> datetime:
        """Move forward by ``seconds`` (never back); the new now."""
        if seconds < 0:
            raise ValueError("the clock only moves forward")
        self.offset_seconds += seconds
        return self()
