"""Rules of browser sessions: when one has ended, when last-seen is worth writing, step-up.

Pure functions of times: the clock is the caller's (tests pass a fake one).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum


class SessionState(StrEnum):
    """Where a session stands at a given moment."""

    ACTIVE = "active"
    #: Unused for longer than the idle lifetime.
    IDLE = "idle"
    #: Past its absolute end, however busy it was.
    EXPIRED = "expired"


@dataclass(frozen=True)
class SessionPolicy:
    """Lifetimes of a session (OWASP Session Management: an idle and an absolute timeout)."""

    idle: timedelta
    absolute: timedelta
    #: Last-seen is written at most this often.
    touch_interval: timedelta

    def __post_init__(self) -> None:
        if self.idle <= timedelta(0) or self.absolute <= timedelta(0):
            raise ValueError("session lifetimes must be positive")

    def expires_at(self, created_at: datetime) -> datetime:
        """The absolute end of a session created at ``created_at``."""
        return created_at + self.absolute

    def state(self, *, last_seen_at: datetime, expires_at: datetime, now: datetime) -> SessionState:
        """Whether the session is still usable at ``now``."""
        if now >= expires_at:
            return SessionState.EXPIRED
        if now - last_seen_at >= self.idle:
            return SessionState.IDLE
        return SessionState.ACTIVE

    def needs_touch(self, *, last_seen_at: datetime, now: datetime) -> bool:
        """Whether to record ``now`` as last seen (skipped within the touch interval)."""
        return now - last_seen_at >= self.touch_interval


def is_recent(authenticated_at: datetime, *, max_age: timedelta, now: datetime) -> bool:
    """Whether a sign-in at ``authenticated_at`` is newer than ``max_age`` (step-up)."""
    return now - authenticated_at <= max_age
