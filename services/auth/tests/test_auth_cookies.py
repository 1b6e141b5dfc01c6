"""Session tokens (signed, stored as a hash, CSRF bound to them) and sealed sign-in attempts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from ledgerlink.auth.services.cookies import (
    AttemptExpired,
    AttemptSealer,
    SessionTokens,
    SigninAttempt,
)

SECRET = "a-test-secret-that-is-long-enough-0123456789"
NOW = datetime(2027, 3, 1, 12, 0, tzinfo=UTC)


def test_a_signed_cookie_gives_back_its_token_and_a_tampered_one_nothing() -> None:
    tokens = SessionTokens(SECRET)
    token = tokens.new_token()
    value = tokens.cookie_value(token)
    assert tokens.token_from_cookie(value) == token
    assert tokens.token_from_cookie(tokens.new_token() + value[value.index(".") :]) is None
    assert tokens.token_from_cookie(value + "x") is None
    assert tokens.token_from_cookie(token) is None
    assert SessionTokens(SECRET + "-other").token_from_cookie(value) is None
    assert tokens.hash(token) != token
    assert len(tokens.hash(token)) == 64


def test_csrf_tokens_belong_to_one_session() -> None:
    tokens = SessionTokens(SECRET)
    first, second = tokens.new_token(), tokens.new_token()
    assert tokens.csrf_is_valid(first, tokens.csrf_token(first))
    assert not tokens.csrf_is_valid(first, tokens.csrf_token(second))
    assert not tokens.csrf_is_valid(first, None)
    # The CSRF token is not the cookie's signature (a different derived key).
    assert tokens.csrf_token(first) not in tokens.cookie_value(first)


ATTEMPT = SigninAttempt(
    provider="google",
    next="/me",
    max_age=None,
    oauth={"_state_google_abc": {"data": {"nonce": "n", "code_verifier": "v"}}},
)


def test_an_attempt_opens_within_its_lifetime_and_hides_its_verifier() -> None:
    sealer = AttemptSealer(SECRET, ttl_seconds=600)
    sealed = sealer.seal(ATTEMPT, NOW)
    assert "code_verifier" not in sealed
    assert sealer.open(sealed, NOW + timedelta(seconds=599)) == ATTEMPT
    with pytest.raises(AttemptExpired):
        sealer.open(sealed, NOW + timedelta(seconds=601))


def test_a_forged_or_foreign_attempt_is_nothing() -> None:
    sealer = AttemptSealer(SECRET, ttl_seconds=600)
    sealed = sealer.seal(ATTEMPT, NOW)
    assert sealer.open(None, NOW) is None
    assert sealer.open("not-a-token", NOW) is None
    assert sealer.open(sealed[:-4] + "AAAA", NOW) is None
    assert AttemptSealer(SECRET + "-other", 600).open(sealed, NOW) is None
