"""OpenID Connect sign-in with Google and Microsoft, through authlib's Starlette client.

authlib does the protocol (authlib docs, "Starlette OAuth Client": ``OAuth.register`` with
``server_metadata_url``, ``authorize_redirect``, ``authorize_access_token``): it reads the
discovery document, makes ``state``, ``nonce`` and the PKCE S256 verifier, checks ``state``
on the way back, exchanges the code, verifies the ID token's RS256 signature against the
provider's JWKS (fetched again once when a token names an unknown key, which is how a key
rotation reaches us) and validates its claims. This module adds what authlib leaves to the
application:

* where authlib's state lives: it expects ``request.session`` (normally Starlette's
  ``SessionMiddleware``, a signed cookie for the whole site). Here the state is sealed into a
  short-lived cookie of its own (``AttemptSealer``) and handed to authlib as
  ``request.scope["session"]`` for the two calls that need it;
* the checks authlib does not do by default: ``aud`` (authlib checks it only when told to),
  the issuer of multi-tenant Microsoft (``iss`` against ``tid``), a verified e-mail, and
  ``auth_time`` against a demanded ``max_age``;
* the clock: authlib validates times against ``time.time()``; we give it ours (tests move
  time instead of waiting);
* a clear reason for every refusal (``SigninProblem``), so the page can say what happened.
"""

from __future__ import annotations

import logging
import warnings
from datetime import timedelta
from typing import Any, cast

import httpx
from authlib.integrations.base_client.errors import MismatchingStateError, OAuthError

with warnings.catch_warnings():
    # authlib 1.6 warns on importing its httpx integration (which its Starlette client
    # uses), pointing at a future "httpx2"; for httpx as it is today it is the supported one.
    warnings.filterwarnings("ignore", message="The httpx module is deprecated")
    from authlib.integrations.starlette_client import OAuth, StarletteOAuth2App
from authlib.oidc.core import CodeIDToken
from joserfc.errors import ClaimError, ExpiredTokenError, JoseError
from starlette.requests import Request
from starlette.responses import Response

from ledgerlink.auth.config import ProviderName, SigninSettings
from ledgerlink.auth.domain.clock import Clock
from ledgerlink.auth.domain.identity import (
    SigninProblem,
    SigninRefused,
    VerifiedIdentity,
    identity_from_claims,
    issuer_is_valid,
)
from ledgerlink.auth.domain.next_url import UnsafeNextUrl, check_next
from ledgerlink.auth.services.cookies import AttemptExpired, AttemptSealer, SigninAttempt

logger = logging.getLogger(__name__)

SCOPE = "openid email profile"


def _clocked_id_token(now: int) -> type[CodeIDToken]:
    """authlib's ID token claims, validated at our clock's ``now`` rather than the wall's."""

    class ClockedCodeIDToken(CodeIDToken):  # type: ignore[misc]  # authlib is untyped
        def validate(self, now_: int | None = None, leeway: int = 0) -> None:
            del now_
            super().validate(now=now, leeway=leeway)

    return ClockedCodeIDToken


class SigninService:
    """Begins and completes sign-ins; knows nothing of sessions or the store."""

    def __init__(
        self,
        settings: SigninSettings,
        sealer: AttemptSealer,
        clock: Clock,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._settings = settings
        self._sealer = sealer
        self._clock = clock
        self._oauth = OAuth()
        for name in settings.enabled():
            provider = settings.provider(name)
            assert provider is not None
            client_kwargs: dict[str, Any] = {
                "scope": SCOPE,
                "code_challenge_method": "S256",
                "timeout": settings.http_timeout_seconds,
            }
            if transport is not None:
                client_kwargs["transport"] = transport
            self._oauth.register(
                name,
                client_id=provider.client_id,
                client_secret=provider.client_secret.get_secret_value(),
                server_metadata_url=provider.discovery_url,
                client_kwargs=client_kwargs,
            )

    def providers(self) -> list[ProviderName]:
        """The providers a person can choose."""
        return self._settings.enabled()

    def _client(self, provider: str) -> StarletteOAuth2App:
        if self._settings.provider(provider) is None:
            raise SigninRefused(SigninProblem.UNKNOWN_PROVIDER, provider)
        return cast(StarletteOAuth2App, self._oauth.create_client(provider))

    async def begin(
        self,
        request: Request,
        provider: str,
        *,
        next_url: str | None,
        max_age: int | None,
        redirect_uri: str,
    ) -> tuple[Response, str]:
        """The redirect to the provider and the sealed attempt for the attempt cookie."""
        client = self._client(provider)
        try:
            safe_next = check_next(next_url)
        except UnsafeNextUrl as error:
            raise SigninRefused(SigninProblem.UNSAFE_NEXT, str(error)) from None
        extra: dict[str, Any] = {}
        if max_age is not None:
            # Step-up: the provider must ask the person again (OIDC Core 3.1.2.1).
            extra = {"prompt": "login", "max_age": max_age}
        request.scope["session"] = {}
        try:
            response = await client.authorize_redirect(request, redirect_uri, **extra)
        except httpx.HTTPError as error:
            raise SigninRefused(SigninProblem.PROVIDER_UNAVAILABLE, repr(error)) from None
        attempt = SigninAttempt(
            provider=provider,
            next=safe_next,
            max_age=max_age,
            oauth=dict(request.scope["session"]),
        )
        return response, self._sealer.seal(attempt, self._clock())

    async def complete(
        self, request: Request, provider: str, attempt_cookie: str | None
    ) -> tuple[VerifiedIdentity, str]:
        """The verified person and where they go next; :class:`SigninRefused` otherwise."""
        client = self._client(provider)
        now = self._clock()
        try:
            attempt = self._sealer.open(attempt_cookie, now)
        except AttemptExpired:
            raise SigninRefused(SigninProblem.ATTEMPT_EXPIRED) from None
        if attempt is None or attempt.provider != provider:
            raise SigninRefused(SigninProblem.STATE_MISMATCH, "no sign-in started here")
        if request.query_params.get("error"):
            raise SigninRefused(
                SigninProblem.PROVIDER_REFUSED, request.query_params.get("error", "")
            )
        metadata = await self._metadata(client)
        request.scope["session"] = dict(attempt.oauth)
        leeway = self._settings.clock_leeway_seconds
        try:
            token = await client.authorize_access_token(
                request,
                claims_cls=_clocked_id_token(int(now.timestamp())),
                claims_options=self._claims_options(client.client_id, str(metadata["issuer"])),
                leeway=leeway,
            )
        except SigninRefused:
            raise
        except Exception as error:
            raise self._refusal(error) from None
        claims = token.get("userinfo")
        if not claims:
            raise SigninRefused(SigninProblem.INVALID_TOKEN, "the token response had no ID token")
        identity = identity_from_claims(
            provider,
            claims,
            now=now,
            max_age=timedelta(seconds=attempt.max_age) if attempt.max_age is not None else None,
            leeway=timedelta(seconds=leeway),
        )
        return identity, attempt.next

    async def _metadata(self, client: StarletteOAuth2App) -> dict[str, Any]:
        try:
            metadata: dict[str, Any] = await client.load_server_metadata()
        except (httpx.HTTPError, ValueError) as error:
            raise SigninRefused(SigninProblem.PROVIDER_UNAVAILABLE, repr(error)) from None
        if not isinstance(metadata.get("issuer"), str):
            raise SigninRefused(SigninProblem.PROVIDER_UNAVAILABLE, "discovery has no issuer")
        return metadata

    @staticmethod
    def _claims_options(client_id: str, issuer: str) -> dict[str, Any]:
        def valid_issuer(claims: dict[str, Any], value: object) -> bool:
            return issuer_is_valid(issuer, claims)

        return {
            "iss": {"essential": True, "validate": valid_issuer},
            # authlib skips the audience check unless it is given one.
            "aud": {"essential": True, "values": [client_id]},
            "sub": {"essential": True},
            "exp": {"essential": True},
        }

    @staticmethod
    def _refusal(error: Exception) -> SigninRefused:
        detail = f"{type(error).__name__}: {error}"
        if isinstance(error, MismatchingStateError):
            return SigninRefused(SigninProblem.STATE_MISMATCH, detail)
        if isinstance(error, OAuthError):
            # The token endpoint's RFC 6749 5.2 answer, e.g. invalid_grant for a used code.
            return SigninRefused(SigninProblem.CODE_REJECTED, f"{error.error}: {detail}")
        # authlib 1.9 validates ID tokens with joserfc, so its errors are joserfc's.
        if isinstance(error, ExpiredTokenError):
            return SigninRefused(SigninProblem.TOKEN_EXPIRED, detail)
        if isinstance(error, ClaimError):
            if error.claim == "nonce":
                return SigninRefused(SigninProblem.NONCE_MISMATCH, detail)
            if error.claim == "iss":
                return SigninRefused(SigninProblem.WRONG_ISSUER, detail)
            if error.claim in ("aud", "azp"):
                return SigninRefused(SigninProblem.WRONG_AUDIENCE, detail)
            return SigninRefused(SigninProblem.INVALID_TOKEN, detail)
        if isinstance(error, JoseError):
            # Unknown kid (even after fetching the JWKS again), bad signature, algorithm
            # not allowed, or a token that does not decode.
            return SigninRefused(SigninProblem.BAD_SIGNATURE, detail)
        if isinstance(error, httpx.HTTPError | ValueError):
            return SigninRefused(SigninProblem.PROVIDER_UNAVAILABLE, detail)
        logger.exception("unexpected error completing a sign-in")
        return SigninRefused(SigninProblem.INVALID_TOKEN, detail)
