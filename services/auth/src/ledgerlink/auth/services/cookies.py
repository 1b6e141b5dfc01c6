"""What auth puts in cookies: signed opaque session tokens and sealed sign-in attempts.

One secret (``Config.session_secret``) serves both, through keys derived per purpose with
HMAC-SHA256, so a value made for one purpose is never accepted for another.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from cryptography.fernet import Fernet, InvalidToken


def _derive(secret: str, purpose: str) -> bytes:
    return hmac.new(secret.encode(), f"ledgerlink-auth:{purpose}".encode(), hashlib.sha256).digest()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


class SessionTokens:
    """Session tokens: random, signed in the cookie, stored only as a hash."""

    def __init__(self, secret: str) -> None:
        self._signing_key = _derive(secret, "session-cookie")
        self._csrf_key = _derive(secret, "csrf")

    @staticmethod
    def new_token() -> str:
        """A fresh opaque token (256 random bits)."""
        return secrets.token_urlsafe(32)

    @staticmethod
    def hash(token: str) -> str:
        """What the store keeps: SHA-256 of the token, hex."""
        return hashlib.sha256(token.encode("ascii")).hexdigest()

    def cookie_value(self, token: str) -> str:
        """``<token>.<signature>``: a tampered or made-up cookie never reaches the store."""
        return (
            f"{token}.{_b64(hmac.new(self._signing_key, token.encode(), hashlib.sha256).digest())}"
        )

    def token_from_cookie(self, value: str | None) -> str | None:
        """The token of a correctly signed cookie value, else None."""
        if not value or value.count(".") != 1 or len(value) > 200:
            return None
        token, signature = value.split(".")
        expected = _b64(hmac.new(self._signing_key, token.encode(), hashlib.sha256).digest())
        return token if hmac.compare_digest(signature, expected) else None

    def csrf_token(self, token: str) -> str:
        """The sign-out form's CSRF token, bound to this session (nothing to store)."""
        return _b64(hmac.new(self._csrf_key, token.encode(), hashlib.sha256).digest())

    def csrf_is_valid(self, token: str, submitted: str | None) -> bool:
        """Whether ``submitted`` is this session's CSRF token."""
        return bool(submitted) and hmac.compare_digest(self.csrf_token(token), submitted or "")


class AttemptExpired(Exception):  # noqa: N818 - names the situation
    """The sealed attempt is authentic but older than allowed."""


@dataclass(frozen=True)
class SigninAttempt:
    """What the browser carries between the redirect to the provider and the callback."""

    provider: str
    next: str
    max_age: int | None
    #: authlib's state data (state, nonce, PKCE verifier, redirect URI), as it wrote it.
    oauth: dict[str, Any]


class AttemptSealer:
    """Seals sign-in attempts (Fernet: AES-CBC and HMAC) into the attempt cookie.

    The attempt holds the PKCE verifier and the nonce; sealing keeps them unreadable in
    the browser and makes the cookie useless once ``ttl_seconds`` have passed.
    """

    def __init__(self, secret: str, ttl_seconds: int) -> None:
        self._fernet = Fernet(base64.urlsafe_b64encode(_derive(secret, "signin-attempt")))
        self._ttl = ttl_seconds

    def seal(self, attempt: SigninAttempt, now: datetime) -> str:
        """The cookie value of ``attempt`` made at ``now``."""
        data = {
            "provider": attempt.provider,
            "next": attempt.next,
            "max_age": attempt.max_age,
            "oauth": attempt.oauth,
        }
        return self._fernet.encrypt_at_time(
            json.dumps(data, separators=(",", ":")).encode(), int(now.timestamp())
        ).decode("ascii")

    def open(self, value: str | None, now: datetime) -> SigninAttempt | None:
        """The attempt in ``value``; None when absent or forged; AttemptExpired when old."""
        if not value:
            return None
        token = value.encode("ascii", "replace")
        try:
            raw = self._fernet.decrypt_at_time(token, self._ttl, int(now.timestamp()))
        except InvalidToken:
            try:
                self._fernet.extract_timestamp(token)
            except InvalidToken:
                return None
            raise AttemptExpired from None
        data = json.loads(raw)
        return SigninAttempt(
            provider=str(data["provider"]),
            next=str(data["next"]),
            max_age=data["max_age"],
            oauth=dict(data["oauth"]),
        )
