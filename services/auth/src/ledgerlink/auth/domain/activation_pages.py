"""Rules of the activation pages: link tokens, waiting for the event, what a step shows.

Pure: no I/O, no clock of its own (every time rule takes ``now``).
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Final

from ledgerlink.auth.domain.lifecycle import ConnectionStatus

#: Languages the pages speak (gettext catalogs under ``web/locale``); the first is the default.
LANGUAGES: Final = ("en", "fi")
LANGUAGE_NAMES: Final = {"en": "English", "fi": "Suomi"}


def new_token() -> str:
    """A fresh link or cookie token (256 bits, URL-safe)."""
    return secrets.token_urlsafe(32)


def token_hash(token: str) -> str:
    """What the store keeps of a token: its SHA-256, hex."""
    return hashlib.sha256(token.encode()).hexdigest()


class LinkState(StrEnum):
    """What an opened activation link finds."""

    VALID = "valid"
    EXPIRED = "expired"
    USED = "used"
    UNKNOWN = "unknown"


def link_state(
    *, expires_at: datetime | None, used_at: datetime | None, now: datetime, found: bool = True
) -> LinkState:
    """Used wins over expired: a finished activation says so even after the link's time."""
    if not found or expires_at is None:
        return LinkState.UNKNOWN
    if used_at is not None:
        return LinkState.USED
    if now >= expires_at:
        return LinkState.EXPIRED
    return LinkState.VALID


class WaitState(StrEnum):
    """Where a browser that arrived from a store stands with the activation event."""

    #: The event has not been handled yet; keep waiting.
    WAITING = "waiting"
    #: Waited longer than allowed: say so, and what to do.
    GAVE_UP = "gave_up"
    #: The connection exists and awaits authorization: go on with the flow.
    READY = "ready"
    #: Already connected (configuring or active): nothing more to do here.
    DONE = "done"
    #: Refused up front (an invalid business ID ...), expired, or revoked.
    ENDED = "ended"


_AWAITING: Final = frozenset({ConnectionStatus.PENDING_AUTHORIZATION, ConnectionStatus.AUTHORIZING})
_DONE: Final = frozenset({ConnectionStatus.CONFIGURING, ConnectionStatus.ACTIVE})


def wait_state(
    status: ConnectionStatus | None, *, since: datetime, now: datetime, wait: timedelta
) -> WaitState:
    """The page's state: the connection's status if the event came, else how long we waited."""
    if status is None:
        return WaitState.GAVE_UP if now - since >= wait else WaitState.WAITING
    if status in _AWAITING:
        return WaitState.READY
    if status in _DONE:
        return WaitState.DONE
    return WaitState.ENDED


def parse_since(text: str | None, now: datetime) -> datetime:
    """The waiting page's start (an ISO time it carries along), or ``now``.

    It only decides when the page stops waiting, so a forged value gains nothing; a value in
    the future or unparsable counts as now.
    """
    if not text:
        return now
    try:
        # A "+" of the offset that reached us unencoded in a query string reads as a space.
        value = datetime.fromisoformat(text.strip().replace(" ", "+"))
    except ValueError:
        return now
    if value.tzinfo is None or value > now:
        return now
    return value


def vat_id(country: str, business_id: str) -> str:
    """The EU VAT number of a company from its business ID (FI: ``FI`` + the eight digits
    of the Y-tunnus without the hyphen, as the Finnish Tax Administration forms it)."""
    digits = re.sub(r"[^0-9A-Za-z]", "", business_id)
    return f"{country.upper()}{digits}"


# Netvisor's customer identifiers travel in a header and inside the MAC: printable ASCII.
_PRINTABLE: Final = re.compile(r"^[\x21-\x7e]{1,100}$")


def N_(message: str) -> str:  # noqa: N802 - gettext's conventional name for a marker
    """Mark a message for the pages' catalogs (Babel extracts it; the page translates it)."""
    return message


@dataclass(frozen=True)
class FieldProblem:
    """A form field and the message id of what is wrong with it."""

    field: str
    message: str


def check_netvisor_identifiers(customer_id: str, customer_key: str) -> list[FieldProblem]:
    """Problems with the typed-in Netvisor identifiers before any call is made."""
    problems = []
    if not customer_id.strip():
        problems.append(FieldProblem("customer_id", N_("Enter the customer ID from Netvisor.")))
    elif not _PRINTABLE.match(customer_id.strip()):
        problems.append(
            FieldProblem(
                "customer_id",
                N_("The customer ID has letters, digits and punctuation only, no spaces."),
            )
        )
    if not customer_key.strip():
        problems.append(FieldProblem("customer_key", N_("Enter the customer key from Netvisor.")))
    elif not _PRINTABLE.match(customer_key.strip()):
        problems.append(
            FieldProblem(
                "customer_key", N_("The customer key has letters, digits and punctuation only.")
            )
        )
    return problems


_ACCEPT_ITEM: Final = re.compile(
    r"^\s*([A-Za-z]{1,8})(?:-[A-Za-z0-9]{1,8})*\s*(?:;\s*q=([0-9.]+))?"
)


def negotiate_language(accept_language: str | None, wanted: str | None = None) -> str:
    """The page language: ``wanted`` (the switch's cookie) if we speak it, else the best of
    the browser's ``Accept-Language`` we speak, else English."""
    if wanted in LANGUAGES:
        return wanted
    best: tuple[float, int, str] | None = None
    for position, item in enumerate((accept_language or "").split(",")):
        match = _ACCEPT_ITEM.match(item)
        if match is None:
            continue
        language = match.group(1).lower()
        try:
            quality = float(match.group(2)) if match.group(2) else 1.0
        except ValueError:
            continue
        if language in LANGUAGES and quality > 0:
            candidate = (-quality, position, language)
            if best is None or candidate < best:
                best = candidate
    return best[2] if best else LANGUAGES[0]
