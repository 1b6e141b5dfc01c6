"""Pure rules of sign-in: the return address, session lifetimes, ID token claims."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from ledgerlink.auth.domain.identity import (
    SigninProblem,
    SigninRefused,
    email_is_verified,
    identity_from_claims,
    issuer_is_valid,
)
from ledgerlink.auth.domain.next_url import DEFAULT_NEXT, UnsafeNextUrl, check_next
from ledgerlink.auth.domain.sessions import SessionPolicy, SessionState, is_recent

NOW = datetime(2027, 3, 1, 12, 0, tzinfo=UTC)
MS_TEMPLATE = "https://login.microsoftonline.com/{tenantid}/v2.0"
TENANT = "aa11aa11-0000-4000-8000-000000000001"


@pytest.mark.parametrize("value", ["/signin", "/me", "/activations/42?step=2#top", "/a/b%2Fc"])
def test_paths_on_auth_are_accepted(value: str) -> None:
    assert check_next(value) == value


@pytest.mark.parametrize("value", [None, ""])
def test_no_next_means_the_signin_page(value: str | None) -> None:
    assert check_next(value) == DEFAULT_NEXT


@pytest.mark.parametrize(
    "value",
    [
        "https://evil.example/",
        "//evil.example",
        "/\\evil.example",
        "\\\\evil.example",
        "javascript:alert(1)",
        "evil.example/x",
        "/ok\r\nSet-Cookie: x=1",
        "/tab\there",
        "/" + "a" * 2000,
    ],
)
def test_anything_else_is_refused(value: str) -> None:
    with pytest.raises(UnsafeNextUrl):
        check_next(value)


POLICY = SessionPolicy(
    idle=timedelta(minutes=30), absolute=timedelta(hours=12), touch_interval=timedelta(minutes=1)
)


def test_a_session_is_active_until_idle_or_absolute_expiry() -> None:
    created = NOW
    expires = POLICY.expires_at(created)
    assert expires == NOW + timedelta(hours=12)
    state = POLICY.state
    assert state(last_seen_at=created, expires_at=expires, now=NOW + timedelta(minutes=29)) is (
        SessionState.ACTIVE
    )
    assert state(last_seen_at=created, expires_at=expires, now=NOW + timedelta(minutes=30)) is (
        SessionState.IDLE
    )
    # Busy all day, still ends at the absolute limit.
    late = NOW + timedelta(hours=12)
    assert state(last_seen_at=late - timedelta(seconds=1), expires_at=expires, now=late) is (
        SessionState.EXPIRED
    )


def test_last_seen_is_written_at_most_once_a_minute() -> None:
    assert not POLICY.needs_touch(last_seen_at=NOW, now=NOW + timedelta(seconds=59))
    assert POLICY.needs_touch(last_seen_at=NOW, now=NOW + timedelta(seconds=60))


def test_lifetimes_must_be_positive() -> None:
    with pytest.raises(ValueError, match="positive"):
        SessionPolicy(idle=timedelta(0), absolute=timedelta(hours=1), touch_interval=timedelta(0))


def test_step_up_compares_the_sign_in_time() -> None:
    assert is_recent(NOW - timedelta(seconds=300), max_age=timedelta(seconds=300), now=NOW)
    assert not is_recent(NOW - timedelta(seconds=301), max_age=timedelta(seconds=300), now=NOW)


def test_microsoft_multi_tenant_issuer_is_checked_against_tid() -> None:
    iss = f"https://login.microsoftonline.com/{TENANT}/v2.0"
    assert issuer_is_valid(MS_TEMPLATE, {"iss": iss, "tid": TENANT})
    other = "bb22bb22-0000-4000-8000-000000000002"
    assert not issuer_is_valid(MS_TEMPLATE, {"iss": iss, "tid": other})
    assert not issuer_is_valid(MS_TEMPLATE, {"iss": iss})
    assert not issuer_is_valid(MS_TEMPLATE, {"iss": iss, "tid": f"{TENANT}/v2.0/x"})
    single = f"https://login.microsoftonline.com/{TENANT}/v2.0"
    assert issuer_is_valid(single, {"iss": iss, "tid": TENANT})
    assert not issuer_is_valid(single, {"iss": iss.replace(TENANT, other), "tid": other})


def test_google_issuer_accepts_its_legacy_form_only() -> None:
    google = "https://accounts.google.com"
    assert issuer_is_valid(google, {"iss": google})
    assert issuer_is_valid(google, {"iss": "accounts.google.com"})
    assert not issuer_is_valid(google, {"iss": "https://accounts.google.com.evil"})
    assert not issuer_is_valid("https://idp.example", {"iss": "idp.example"})


@pytest.mark.parametrize(
    ("provider", "claims", "verified"),
    [
        ("google", {"email_verified": True}, True),
        ("google", {"email_verified": False}, False),
        ("google", {"email_verified": "true"}, False),
        ("google", {"xms_edov": True}, False),
        ("microsoft", {"xms_edov": True}, True),
        ("microsoft", {"xms_edov": False}, False),
        ("microsoft", {}, False),
    ],
)
def test_which_emails_count_as_verified(
    provider: str, claims: dict[str, Any], verified: bool
) -> None:
    assert email_is_verified(provider, claims) is verified


def _claims(**changes: Any) -> dict[str, Any]:
    claims: dict[str, Any] = {
        "sub": "110000000000000000001",
        "email": "Anna@Virtanen-Demo.fi",
        "email_verified": True,
        "name": " Anna Virtanen ",
        "hd": "virtanen-demo.fi",
        "iat": int(NOW.timestamp()),
        "auth_time": int(NOW.timestamp()) - 100,
    }
    claims.update(changes)
    return {key: value for key, value in claims.items() if value is not None}


def test_identity_from_good_claims() -> None:
    identity = identity_from_claims(
        "google", _claims(), now=NOW, max_age=None, leeway=timedelta(seconds=60)
    )
    assert identity.email == "anna@virtanen-demo.fi"
    assert identity.name == "Anna Virtanen"
    assert identity.organisation == "virtanen-demo.fi"
    assert identity.authenticated_at == NOW - timedelta(seconds=100)


@pytest.mark.parametrize(
    ("changes", "max_age", "problem"),
    [
        ({"email_verified": False}, None, SigninProblem.EMAIL_UNVERIFIED),
        ({"email": None}, None, SigninProblem.EMAIL_UNVERIFIED),
        ({"sub": None}, None, SigninProblem.INVALID_TOKEN),
        ({"auth_time": None}, 300, SigninProblem.STALE_SIGNIN),
        ({"auth_time": int(NOW.timestamp()) - 400}, 300, SigninProblem.STALE_SIGNIN),
    ],
)
def test_claims_that_do_not_qualify(
    changes: dict[str, Any], max_age: int | None, problem: SigninProblem
) -> None:
    with pytest.raises(SigninRefused) as refused:
        identity_from_claims(
            "google",
            _claims(**changes),
            now=NOW,
            max_age=timedelta(seconds=max_age) if max_age else None,
            leeway=timedelta(seconds=60),
        )
    assert refused.value.problem is problem


def test_every_problem_has_words_and_a_status() -> None:
    for problem in SigninProblem:
        assert problem.heading
        assert problem.explanation.endswith(".")
        assert problem.status in (400, 401)
