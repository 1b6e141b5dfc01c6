"""The activation pages' pure rules: links, waiting for the event, identifiers, VAT ID."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from ledgerlink.auth.domain.activation_pages import (
    LinkState,
    WaitState,
    check_netvisor_identifiers,
    link_state,
    new_token,
    parse_since,
    token_hash,
    vat_id,
    wait_state,
)
from ledgerlink.auth.domain.clock import MovableClock
from ledgerlink.auth.domain.lifecycle import ConnectionStatus

NOW = datetime(2026, 11, 21, 10, 0, tzinfo=UTC)


def test_a_link_is_valid_until_it_expires_and_used_wins() -> None:
    expires = NOW + timedelta(hours=72)
    assert link_state(expires_at=expires, used_at=None, now=NOW) is LinkState.VALID
    assert link_state(expires_at=expires, used_at=None, now=expires) is LinkState.EXPIRED
    assert (
        link_state(expires_at=expires, used_at=NOW, now=expires + timedelta(days=1))
        is LinkState.USED
    )
    assert link_state(expires_at=None, used_at=None, now=NOW, found=False) is LinkState.UNKNOWN


def test_tokens_are_random_and_only_their_hash_is_kept() -> None:
    first, second = new_token(), new_token()
    assert first != second
    assert len(first) >= 43  # 256 bits, URL-safe base64
    assert token_hash(first) == token_hash(first)
    assert first not in token_hash(first)
    assert len(token_hash(first)) == 64


@pytest.mark.parametrize(
    ("status", "waited", "expected"),
    [
        (None, timedelta(seconds=10), WaitState.WAITING),
        (None, timedelta(seconds=120), WaitState.GAVE_UP),
        (ConnectionStatus.PENDING_AUTHORIZATION, timedelta(hours=5), WaitState.READY),
        (ConnectionStatus.AUTHORIZING, timedelta(0), WaitState.READY),
        (ConnectionStatus.CONFIGURING, timedelta(0), WaitState.DONE),
        (ConnectionStatus.ACTIVE, timedelta(0), WaitState.DONE),
        (ConnectionStatus.EXPIRED, timedelta(0), WaitState.ENDED),
        (ConnectionStatus.REJECTED, timedelta(0), WaitState.ENDED),
        (ConnectionStatus.REVOKED, timedelta(0), WaitState.ENDED),
    ],
)
def test_the_waiting_page_state(
    status: ConnectionStatus | None, waited: timedelta, expected: WaitState
) -> None:
    state = wait_state(status, since=NOW, now=NOW + waited, wait=timedelta(seconds=120))
    assert state is expected


def test_the_wait_start_cannot_be_moved_into_the_future_or_garbled() -> None:
    earlier = NOW - timedelta(seconds=30)
    assert parse_since(earlier.isoformat(), NOW) == earlier
    # A "+" that reached us unencoded reads as a space.
    assert parse_since(earlier.isoformat().replace("+", " "), NOW) == earlier
    assert parse_since((NOW + timedelta(hours=1)).isoformat(), NOW) == NOW
    assert parse_since("yesterday", NOW) == NOW
    assert parse_since("2026-11-21T09:00:00", NOW) == NOW  # no offset: not ours
    assert parse_since(None, NOW) == NOW


def test_vat_id_from_a_finnish_business_id() -> None:
    assert vat_id("FI", "0112038-9") == "FI01120389"
    assert vat_id("fi", "2331972-7") == "FI23319727"


def test_netvisor_identifiers_are_checked_before_any_call() -> None:
    assert check_netvisor_identifiers("NV_1001_2002", "key-1") == []
    problems = {p.field: p.message for p in check_netvisor_identifiers("", "")}
    assert problems == {
        "customer_id": "Enter the customer ID from Netvisor.",
        "customer_key": "Enter the customer key from Netvisor.",
    }
    [problem] = check_netvisor_identifiers("NV 1001", "key")
    assert problem.field == "customer_id"


def test_the_movable_clock_only_goes_forward() -> None:
    clock = MovableClock(lambda: NOW)
    assert clock() == NOW
    assert clock.advance(3600) == NOW + timedelta(hours=1)
    assert clock() == NOW + timedelta(hours=1)
    with pytest.raises(ValueError, match="forward"):
        clock.advance(-1)
