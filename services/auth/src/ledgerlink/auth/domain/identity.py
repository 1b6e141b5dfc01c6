"""Who an ID token says signed in, and the rules a token must pass first.

Pure rules over claims that have already passed the signature check.

Sources:

* OpenID Connect Core 1.0, 3.1.3.7 (ID token validation: ``iss``, ``aud``, ``azp``, ``exp``,
  ``iat``, ``nonce``, ``auth_time`` with ``max_age``).
* Google, "OpenID Connect" reference (developers.google.com/identity/openid-connect/reference):
  the issuer is ``https://accounts.google.com``, and ``accounts.google.com`` is still
  returned "for legacy implementations"; ``email_verified`` says whether the address was
  verified; ``hd`` is the Workspace domain.
* Microsoft identity platform, "ID token claims reference" and the multi-tenant discovery
  documents (login.microsoftonline.com/{common,organizations}/v2.0/...): their ``issuer``
  is the template ``https://login.microsoftonline.com/{tenantid}/v2.0``; a token's ``iss``
  names the signing tenant, which its ``tid`` repeats, so the check is "``iss`` equals the
  template filled with the token's ``tid``". Microsoft sends no ``email_verified``; its
  optional claim ``xms_edov`` ("email domain owner verified", "Optional claims reference")
  says the address's domain is verified in the tenant. UNCONFIRMED: whether every Entra
  tenant can emit ``xms_edov`` (the app registration must request it as an optional claim);
  without it, Microsoft sign-ins are refused as unverified, which is the safe side.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

TENANT_TEMPLATE = "{tenantid}"
_GOOGLE_ISSUER = "https://accounts.google.com"


class SigninProblem(StrEnum):
    """Why a sign-in was refused; each has a page title and words for a person."""

    UNKNOWN_PROVIDER = "unknown_provider"
    UNSAFE_NEXT = "unsafe_next"
    STATE_MISMATCH = "state_mismatch"
    ATTEMPT_EXPIRED = "attempt_expired"
    PROVIDER_REFUSED = "provider_refused"
    CODE_REJECTED = "code_rejected"
    PROVIDER_UNAVAILABLE = "provider_unavailable"
    BAD_SIGNATURE = "bad_signature"
    TOKEN_EXPIRED = "token_expired"  # noqa: S105 - a reason code, not a secret
    NONCE_MISMATCH = "nonce_mismatch"
    WRONG_ISSUER = "wrong_issuer"
    WRONG_AUDIENCE = "wrong_audience"
    INVALID_TOKEN = "invalid_token"  # noqa: S105 - a reason code, not a secret
    EMAIL_UNVERIFIED = "email_unverified"
    STALE_SIGNIN = "stale_signin"

    @property
    def heading(self) -> str:
        """The page's heading."""
        return _TITLES[self]

    @property
    def explanation(self) -> str:
        """What went wrong and what to do, in plain words."""
        return _EXPLANATIONS[self]

    @property
    def status(self) -> int:
        """HTTP status of the page: 400 for a bad request, 401 for a refused identity."""
        return 400 if self in _BAD_REQUESTS else 401


_BAD_REQUESTS = frozenset(
    {
        SigninProblem.UNKNOWN_PROVIDER,
        SigninProblem.UNSAFE_NEXT,
        SigninProblem.STATE_MISMATCH,
        SigninProblem.ATTEMPT_EXPIRED,
        SigninProblem.PROVIDER_REFUSED,
        SigninProblem.CODE_REJECTED,
        SigninProblem.PROVIDER_UNAVAILABLE,
    }
)

_TITLES = {
    SigninProblem.UNKNOWN_PROVIDER: "This sign-in service is not offered",
    SigninProblem.UNSAFE_NEXT: "The return address is not allowed",
    SigninProblem.STATE_MISMATCH: "This sign-in did not start in this browser",
    SigninProblem.ATTEMPT_EXPIRED: "This sign-in took too long",
    SigninProblem.PROVIDER_REFUSED: "The sign-in service did not sign you in",
    SigninProblem.CODE_REJECTED: "The sign-in code was not accepted",
    SigninProblem.PROVIDER_UNAVAILABLE: "The sign-in service could not be reached",
    SigninProblem.BAD_SIGNATURE: "The sign-in could not be verified",
    SigninProblem.TOKEN_EXPIRED: "The sign-in had already expired",
    SigninProblem.NONCE_MISMATCH: "The sign-in answer does not belong to this sign-in",
    SigninProblem.WRONG_ISSUER: "The sign-in came from the wrong service",
    SigninProblem.WRONG_AUDIENCE: "The sign-in was meant for another application",
    SigninProblem.INVALID_TOKEN: "The sign-in answer was not valid",
    SigninProblem.EMAIL_UNVERIFIED: "Your e-mail address is not verified",
    SigninProblem.STALE_SIGNIN: "You need to sign in again",
}

_AGAIN = "Start again from the sign-in page."
_EXPLANATIONS = {
    SigninProblem.UNKNOWN_PROVIDER: "Sign in with one of the services listed on the sign-in page.",
    SigninProblem.UNSAFE_NEXT: "After signing in we only take you to pages of this site. "
    "Follow the link you were given again, or start from the sign-in page.",
    SigninProblem.STATE_MISMATCH: "The answer from the sign-in service does not match a sign-in "
    f"started in this browser, so we did not sign you in. {_AGAIN}",
    SigninProblem.ATTEMPT_EXPIRED: f"A sign-in must be finished within a few minutes. {_AGAIN}",
    SigninProblem.PROVIDER_REFUSED: "The sign-in service answered with an error instead of "
    f"signing you in. {_AGAIN}",
    SigninProblem.CODE_REJECTED: "The sign-in service refused the one-time code: it was already "
    f"used or has expired. {_AGAIN}",
    SigninProblem.PROVIDER_UNAVAILABLE: "We could not talk to the sign-in service. "
    "Try again in a moment.",
    SigninProblem.BAD_SIGNATURE: "The identity token is not signed by a key the sign-in service "
    f"publishes, so we cannot trust it. {_AGAIN}",
    SigninProblem.TOKEN_EXPIRED: "The identity token from the sign-in service was out of date "
    f"when it arrived. Check your computer's clock, then start again. {_AGAIN}",
    SigninProblem.NONCE_MISMATCH: "The identity token was issued for a different sign-in "
    f"(its nonce does not match), so we did not use it. {_AGAIN}",
    SigninProblem.WRONG_ISSUER: "The identity token does not name the sign-in service we asked. "
    f"{_AGAIN}",
    SigninProblem.WRONG_AUDIENCE: f"The identity token was issued to another application. {_AGAIN}",
    SigninProblem.INVALID_TOKEN: f"The identity token was incomplete or malformed. {_AGAIN}",
    SigninProblem.EMAIL_UNVERIFIED: "The sign-in service has not verified the e-mail address "
    "of your account, so we cannot use it. Verify the address with your e-mail provider, "
    "or sign in with a work account whose address is verified.",
    SigninProblem.STALE_SIGNIN: "This step needs a recent sign-in, and the sign-in service "
    f"did not confirm one. {_AGAIN}",
}


class SigninRefused(Exception):  # noqa: N818 - a refusal, not a programming error
    """A sign-in that must not create a session; ``detail`` goes to the log, not the page."""

    def __init__(self, problem: SigninProblem, detail: str = "") -> None:
        super().__init__(f"{problem.value}: {detail}" if detail else problem.value)
        self.problem = problem
        self.detail = detail


@dataclass(frozen=True)
class VerifiedIdentity:
    """A person as an ID token that passed every check describes them."""

    provider: str
    subject: str
    email: str
    name: str
    organisation: str | None
    authenticated_at: datetime


def issuer_is_valid(expected: str, claims: Mapping[str, Any]) -> bool:
    """Whether the token's ``iss`` is the provider's issuer (see the module's sources)."""
    issuer = claims.get("iss")
    if not isinstance(issuer, str) or not issuer:
        return False
    if TENANT_TEMPLATE in expected:
        tenant = claims.get("tid")
        if not isinstance(tenant, str) or not tenant or "/" in tenant:
            return False
        return issuer == expected.replace(TENANT_TEMPLATE, tenant)
    if expected == _GOOGLE_ISSUER:
        return issuer in (_GOOGLE_ISSUER, "accounts.google.com")
    return issuer == expected


def email_is_verified(provider: str, claims: Mapping[str, Any]) -> bool:
    """Whether the provider vouches for the e-mail address (only ``true``, never a string)."""
    if claims.get("email_verified") is True:
        return True
    return provider == "microsoft" and claims.get("xms_edov") is True


def identity_from_claims(
    provider: str,
    claims: Mapping[str, Any],
    *,
    now: datetime,
    max_age: timedelta | None,
    leeway: timedelta,
) -> VerifiedIdentity:
    """The person the checked claims name; :class:`SigninRefused` when they do not qualify."""
    subject = claims.get("sub")
    if not isinstance(subject, str) or not subject or len(subject) > 255:
        raise SigninRefused(SigninProblem.INVALID_TOKEN, "sub missing or malformed")
    email = claims.get("email")
    if not isinstance(email, str) or "@" not in email or len(email) > 320:
        raise SigninRefused(SigninProblem.EMAIL_UNVERIFIED, "no e-mail address in the token")
    if not email_is_verified(provider, claims):
        raise SigninRefused(SigninProblem.EMAIL_UNVERIFIED, "e-mail not verified")
    auth_time = claims.get("auth_time")
    if isinstance(auth_time, int | float) and not isinstance(auth_time, bool):
        authenticated_at = datetime.fromtimestamp(auth_time, UTC)
    elif max_age is not None:
        # Core 3.1.2.1: with max_age the provider must send auth_time.
        raise SigninRefused(SigninProblem.STALE_SIGNIN, "auth_time missing under max_age")
    else:
        # Without auth_time the sign-in is as old as the token (UNCONFIRMED whether Google
        # always sends auth_time; its reference lists it as optional).
        issued = claims.get("iat")
        authenticated_at = datetime.fromtimestamp(issued, UTC) if isinstance(issued, int) else now
    if max_age is not None and now - authenticated_at > max_age + leeway:
        raise SigninRefused(SigninProblem.STALE_SIGNIN, "auth_time older than max_age")
    organisation = claims.get("hd") if provider == "google" else claims.get("tid")
    name = claims.get("name")
    return VerifiedIdentity(
        provider=provider,
        subject=subject,
        email=email.strip().lower(),
        name=name.strip()[:300] if isinstance(name, str) else "",
        organisation=organisation if isinstance(organisation, str) and organisation else None,
        authenticated_at=authenticated_at,
    )
