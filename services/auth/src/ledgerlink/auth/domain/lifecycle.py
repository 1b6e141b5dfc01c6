"""The connection lifecycle: its states, the allowed transitions and the expiry rule.

::

    pending_authorization -> authorizing -> configuring -> active
                   \\             \\              \\          |
                    expired       expired        needs_reauth <-+
    (any live state) -> revoked; an activation refused up front -> rejected

``configuring`` means authorised and waiting for the first import; ``active`` that the
first import completed. ``needs_reauth`` returns to ``configuring`` or ``active`` (whichever
it left) once the same vendor account authorises again.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from enum import StrEnum
from typing import Final


class ConnectionStatus(StrEnum):
    """Where a connection stands."""

    PENDING_AUTHORIZATION = "pending_authorization"
    AUTHORIZING = "authorizing"
    CONFIGURING = "configuring"
    ACTIVE = "active"
    NEEDS_REAUTH = "needs_reauth"
    REVOKED = "revoked"
    REJECTED = "rejected"
    #: An activation never finished in its time.
    EXPIRED = "expired"


S = ConnectionStatus

TRANSITIONS: Final[dict[ConnectionStatus, frozenset[ConnectionStatus]]] = {
    S.PENDING_AUTHORIZATION: frozenset({S.AUTHORIZING, S.EXPIRED, S.REVOKED}),
    S.AUTHORIZING: frozenset({S.AUTHORIZING, S.CONFIGURING, S.EXPIRED, S.REVOKED}),
    S.CONFIGURING: frozenset({S.ACTIVE, S.NEEDS_REAUTH, S.REVOKED}),
    S.ACTIVE: frozenset({S.NEEDS_REAUTH, S.REVOKED}),
    # A re-authorization stays needs_reauth until it completes, so it is never mistaken
    # for a first authorization (which would start the first import again).
    S.NEEDS_REAUTH: frozenset({S.CONFIGURING, S.ACTIVE, S.REVOKED}),
    S.REVOKED: frozenset(),
    S.REJECTED: frozenset(),
    S.EXPIRED: frozenset(),
}

#: States whose credentials the token service hands out: the first import runs while
#: the connection is still ``configuring``.
USABLE: Final = frozenset({S.CONFIGURING, S.ACTIVE})
#: States that end a connection; a new activation makes a new connection.
TERMINAL: Final = frozenset({S.REVOKED, S.REJECTED, S.EXPIRED})
#: States of an activation still waiting for a person to authorise.
AWAITING_AUTHORIZATION: Final = frozenset({S.PENDING_AUTHORIZATION, S.AUTHORIZING})


class InvalidTransitionError(ValueError):
    """A status change the lifecycle does not allow."""

    def __init__(self, current: ConnectionStatus, wanted: ConnectionStatus) -> None:
        super().__init__(f"a connection that is {current.value} cannot become {wanted.value}")
        self.current = current
        self.wanted = wanted


def check_transition(current: ConnectionStatus, wanted: ConnectionStatus) -> None:
    """Raise :class:`InvalidTransitionError` unless ``current -> wanted`` is allowed."""
    if wanted not in TRANSITIONS[current]:
        raise InvalidTransitionError(current, wanted)


def status_after_authorization(
    current: ConnectionStatus, *, first_import_done: bool
) -> ConnectionStatus:
    """Where a completed authorization leads: configuring, or back to active on a
    re-authorization of a connection whose first import already completed."""
    if current == S.NEEDS_REAUTH and first_import_done:
        return S.ACTIVE
    return S.CONFIGURING


def activation_expired(
    status: ConnectionStatus, started_at: datetime, now: datetime, ttl: timedelta
) -> bool:
    """Whether a pending activation has waited longer than ``ttl`` for authorization."""
    return status in AWAITING_AUTHORIZATION and now - started_at > ttl


def needs_refresh(expires_at: datetime | None, now: datetime, leeway: timedelta) -> bool:
    """Whether an access token expiring at ``expires_at`` is to be renewed now
    (proactively, ``leeway`` before it expires; an unknown expiry never is)."""
    return expires_at is not None and now + leeway >= expires_at
