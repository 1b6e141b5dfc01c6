"""OAuth 2.0 for connectors, on authlib's ``AsyncOAuth2Client``.

:class:`OAuthSession` holds one connection's grant:

* :meth:`OAuthSession.authorization_url` builds the login URL (PKCE S256 when
  ``use_pkce``) and returns the ``code_verifier`` to keep until the callback;
* :meth:`OAuthSession.exchange_code` trades the code for tokens;
* :meth:`OAuthSession.client_credentials` gets a machine token (vendor extras such as
  Visma's ``tenant_id`` or Procountor's ``api_key`` go in ``**extra``);
* :meth:`OAuthSession.refresh` renews under an ``asyncio.Lock``: concurrent callers that
  saw the same stale token cause one refresh, and the rotated refresh token is stored
  before anyone can use the old one again;
* :meth:`OAuthSession.auth` is an ``httpx.Auth`` for :class:`VendorHttpClient`: bearer
  header, and on a 401 one refresh and one retry; a second 401 raises
  :class:`ReauthorizationRequired`.

Tokens are :class:`TokenSet` with ``SecretStr`` fields, kept in a :class:`TokenStore`
(:class:`MemoryTokenStore`, or :class:`EncryptedTokenStore` which encrypts with
:class:`ledgerlink.shared.secrets.SecretBox`).
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import time
import warnings
from collections.abc import AsyncGenerator, Callable, MutableMapping
from typing import Any, Literal, Protocol

import httpx
from authlib.integrations.base_client.errors import OAuthError as AuthlibOAuthError

with warnings.catch_warnings():
    # authlib 1.6 warns on importing its httpx integration, pointing at a future
    # "httpx2"; for httpx as it is today this integration is the supported one.
    warnings.filterwarnings("ignore", message="The httpx module is deprecated")
    from authlib.integrations.httpx_client import AsyncOAuth2Client
from pydantic import BaseModel, ConfigDict, Field, SecretStr

from ledgerlink.connectors.errors import (
    AuthenticationFailed,
    ConnectorError,
    InvalidData,
    RateLimited,
    ReauthorizationRequired,
    VendorUnavailable,
)
from ledgerlink.connectors.http import retry_after_of
from ledgerlink.shared.secrets import SecretBox

__all__ = [
    "EncryptedTokenStore",
    "MemoryTokenStore",
    "OAuthClientSettings",
    "OAuthSession",
    "TokenSet",
    "TokenStore",
]

logger = logging.getLogger(__name__)


class OAuthClientSettings(BaseModel):
    """A registered OAuth client of one vendor."""

    model_config = ConfigDict(frozen=True)

    client_id: str
    client_secret: SecretStr | None = None
    authorize_url: str | None = Field(default=None, description="Login/authorize endpoint.")
    token_url: str
    redirect_uri: str | None = None
    scopes: tuple[str, ...] = ()
    use_pkce: bool = True
    token_endpoint_auth_method: Literal["client_secret_post", "client_secret_basic", "none"] = (
        "client_secret_post"  # noqa: S105 - a method name, not a secret
    )
    refresh_leeway_seconds: float = Field(
        default=60, ge=0, description="Refresh this long before the access token expires."
    )


class TokenSet(BaseModel):
    """Tokens of one grant; ``expires_at`` is a Unix time."""

    model_config = ConfigDict(frozen=True)

    access_token: SecretStr
    refresh_token: SecretStr | None = None
    token_type: str = "Bearer"  # noqa: S105 - a token type, not a secret
    expires_at: float | None = None
    scope: str | None = None

    def expires_within(self, seconds: float, *, now: float | None = None) -> bool:
        """Whether the access token expires within ``seconds`` (unknown expiry: never)."""
        if self.expires_at is None:
            return False
        return (now if now is not None else time.time()) + seconds >= self.expires_at

    def reveal(self) -> dict[str, Any]:
        """The tokens in clear, for encrypted storage only."""
        return {
            "access_token": self.access_token.get_secret_value(),
            "refresh_token": self.refresh_token.get_secret_value() if self.refresh_token else None,
            "token_type": self.token_type,
            "expires_at": self.expires_at,
            "scope": self.scope,
        }

    @classmethod
    def from_response(cls, body: MutableMapping[str, Any], *, now: float) -> TokenSet:
        """From a token endpoint answer (``expires_in`` relative to ``now``)."""
        expires_at = body.get("expires_at")
        if body.get("expires_in") is not None:
            expires_at = now + float(body["expires_in"])
        refresh = body.get("refresh_token")
        return cls(
            access_token=SecretStr(str(body["access_token"])),
            refresh_token=SecretStr(str(refresh)) if refresh else None,
            token_type=str(body.get("token_type") or "Bearer"),
            expires_at=float(expires_at) if expires_at is not None else None,
            scope=body.get("scope"),
        )


class TokenStore(Protocol):
    """Where a connection's tokens live between runs."""

    async def load(self, key: str) -> TokenSet | None:
        """The stored tokens of ``key``, if any."""

    async def save(self, key: str, tokens: TokenSet) -> None:
        """Store (replace) the tokens of ``key``."""

    async def delete(self, key: str) -> None:
        """Forget the tokens of ``key``."""


class MemoryTokenStore:
    """Tokens in process memory (tests, one-off runs)."""

    def __init__(self) -> None:
        self._tokens: dict[str, TokenSet] = {}

    async def load(self, key: str) -> TokenSet | None:
        """The stored tokens of ``key``, if any."""
        return self._tokens.get(key)

    async def save(self, key: str, tokens: TokenSet) -> None:
        """Store (replace) the tokens of ``key``."""
        self._tokens[key] = tokens

    async def delete(self, key: str) -> None:
        """Forget the tokens of ``key``."""
        self._tokens.pop(key, None)


class EncryptedTokenStore:
    """Tokens encrypted with a :class:`SecretBox` in any string mapping (a table, a cache).

    Only ciphertext reaches ``backend``; a wrong key or tampered data raises
    :class:`ledgerlink.shared.secrets.SecretDecryptionError` on load.
    """

    def __init__(self, box: SecretBox, backend: MutableMapping[str, str] | None = None) -> None:
        self._box = box
        self.backend: MutableMapping[str, str] = backend if backend is not None else {}

    async def load(self, key: str) -> TokenSet | None:
        """The stored tokens of ``key``, if any."""
        stored = self.backend.get(key)
        if stored is None:
            return None
        clear = json.loads(self._box.decrypt(stored).get_secret_value())
        return TokenSet(
            access_token=SecretStr(clear["access_token"]),
            refresh_token=SecretStr(clear["refresh_token"]) if clear["refresh_token"] else None,
            token_type=clear["token_type"],
            expires_at=clear["expires_at"],
            scope=clear["scope"],
        )

    async def save(self, key: str, tokens: TokenSet) -> None:
        """Store (replace) the tokens of ``key``, encrypted."""
        self.backend[key] = self._box.encrypt(SecretStr(json.dumps(tokens.reveal())))

    async def delete(self, key: str) -> None:
        """Forget the tokens of ``key``."""
        self.backend.pop(key, None)


class _BearerAuth(httpx.Auth):
    """Bearer header; on 401 one refresh and one retry; a second 401 needs a person."""

    requires_request_body = True

    def __init__(self, session: OAuthSession) -> None:
        self._session = session

    async def async_auth_flow(
        self, request: httpx.Request
    ) -> AsyncGenerator[httpx.Request, httpx.Response]:
        tokens = await self._session.current_tokens()
        request.headers["Authorization"] = f"Bearer {tokens.access_token.get_secret_value()}"
        response = yield request
        if response.status_code != 401:
            return
        await response.aread()
        fresh = await self._session.refresh(stale=tokens)
        request.headers["Authorization"] = f"Bearer {fresh.access_token.get_secret_value()}"
        response = yield request
        if response.status_code == 401:
            await response.aread()
            raise ReauthorizationRequired(
                self._session.vendor,
                "the vendor refused a freshly refreshed token: authorise the connection again",
                status=401,
            )


class OAuthSession:
    """One connection's OAuth grant; see the module docstring."""

    def __init__(
        self,
        vendor: str,
        settings: OAuthClientSettings,
        *,
        store: TokenStore | None = None,
        store_key: str = "default",
        transport: httpx.AsyncBaseTransport | None = None,
        timeout: float = 30.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.vendor = vendor
        self.settings = settings
        self.store: TokenStore = store if store is not None else MemoryTokenStore()
        self.store_key = store_key
        self._clock = clock
        self._lock = asyncio.Lock()
        self._tokens: TokenSet | None = None
        self._client_credentials_extra: dict[str, str] | None = None
        #: Number of token endpoint calls that renewed the grant (tests count them).
        self.refresh_count = 0
        secret = settings.client_secret.get_secret_value() if settings.client_secret else None
        self._client = AsyncOAuth2Client(
            client_id=settings.client_id,
            client_secret=secret,
            token_endpoint_auth_method=settings.token_endpoint_auth_method,
            scope=" ".join(settings.scopes) or None,
            redirect_uri=settings.redirect_uri,
            code_challenge_method="S256" if settings.use_pkce else None,
            timeout=timeout,
            transport=transport,
        )

    async def aclose(self) -> None:
        """Close the token endpoint's HTTP client."""
        await self._client.aclose()

    async def __aenter__(self) -> OAuthSession:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    # -- grants -----------------------------------------------------------------------------

    def authorization_url(self, state: str, **extra: str) -> tuple[str, str | None]:
        """The URL to send the person to, and the PKCE ``code_verifier`` to keep (or None)."""
        if self.settings.authorize_url is None:
            raise ValueError("authorize_url is not configured")
        verifier = secrets.token_urlsafe(64) if self.settings.use_pkce else None
        url, _state = self._client.create_authorization_url(
            self.settings.authorize_url, state=state, code_verifier=verifier, **extra
        )
        return str(url), verifier

    async def exchange_code(self, code: str, code_verifier: str | None = None) -> TokenSet:
        """Trade an authorization code (and PKCE verifier) for tokens, and store them."""
        params: dict[str, str] = {"code": code}
        if code_verifier is not None:
            params["code_verifier"] = code_verifier
        if self.settings.redirect_uri is not None:
            params["redirect_uri"] = self.settings.redirect_uri
        async with self._lock:
            body = await self._call(
                self._client.fetch_token(
                    self.settings.token_url, grant_type="authorization_code", **params
                ),
                grant="authorization_code",
            )
            return await self._keep(body)

    async def client_credentials(self, **extra: str) -> TokenSet:
        """A machine token (``extra`` are vendor parameters: ``tenant_id``, ``api_key``)."""
        async with self._lock:
            self._client_credentials_extra = dict(extra)
            return await self._fetch_client_credentials()

    async def _fetch_client_credentials(self) -> TokenSet:
        body = await self._call(
            self._client.fetch_token(
                self.settings.token_url,
                grant_type="client_credentials",
                **(self._client_credentials_extra or {}),
            ),
            grant="client_credentials",
        )
        return await self._keep(body)

    async def refresh(self, stale: TokenSet | None = None) -> TokenSet:
        """Renew the tokens, once for all callers that saw ``stale``.

        A client-credentials grant is fetched again; otherwise the refresh token is used and
        the rotated one stored. A refused refresh raises :class:`ReauthorizationRequired`.
        """
        async with self._lock:
            current = await self._load()
            if (
                stale is not None
                and current is not None
                and current.access_token.get_secret_value() != stale.access_token.get_secret_value()
            ):
                return current  # another caller refreshed while this one waited
            if self._client_credentials_extra is not None:
                self.refresh_count += 1
                return await self._fetch_client_credentials()
            if current is None or current.refresh_token is None:
                raise ReauthorizationRequired(
                    self.vendor, "no refresh token: authorise the connection again"
                )
            self.refresh_count += 1
            try:
                body = await self._call(
                    self._client.refresh_token(
                        self.settings.token_url,
                        refresh_token=current.refresh_token.get_secret_value(),
                    ),
                    grant="refresh_token",
                )
            except ReauthorizationRequired:
                await self.store.delete(self.store_key)
                self._tokens = None
                raise
            if "refresh_token" not in body or not body.get("refresh_token"):
                # No rotation from this vendor: the old refresh token stays valid.
                body = {**body, "refresh_token": current.refresh_token.get_secret_value()}
            return await self._keep(body)

    async def current_tokens(self) -> TokenSet:
        """Valid tokens, refreshed first when about to expire."""
        tokens = await self._load()
        if tokens is None:
            raise ReauthorizationRequired(self.vendor, "not authorised yet")
        if tokens.expires_within(self.settings.refresh_leeway_seconds, now=self._clock()):
            return await self.refresh(stale=tokens)
        return tokens

    def auth(self) -> httpx.Auth:
        """``httpx.Auth`` for the vendor's API client (bearer, refresh once on 401)."""
        return _BearerAuth(self)

    # -- internals --------------------------------------------------------------------------

    async def _load(self) -> TokenSet | None:
        if self._tokens is None:
            self._tokens = await self.store.load(self.store_key)
        return self._tokens

    async def _keep(self, body: MutableMapping[str, Any]) -> TokenSet:
        tokens = TokenSet.from_response(body, now=self._clock())
        await self.store.save(self.store_key, tokens)
        self._tokens = tokens
        return tokens

    async def _call(self, call: Any, *, grant: str) -> MutableMapping[str, Any]:
        """Await an authlib token call, mapping its failures to ConnectorErrors."""
        try:
            body: MutableMapping[str, Any] = await call
        except AuthlibOAuthError as exc:
            raise self._oauth_error(exc, grant) from None
        except httpx.HTTPStatusError as exc:
            status = exc.response.status_code
            if status == 429:
                raise RateLimited(
                    self.vendor,
                    "token endpoint rate limited",
                    retry_after=retry_after_of(exc.response),
                ) from None
            raise VendorUnavailable(
                self.vendor, f"token endpoint answered HTTP {status}", status=status
            ) from None
        except httpx.TransportError as exc:
            raise VendorUnavailable(
                self.vendor, f"token endpoint unreachable ({type(exc).__name__})"
            ) from None
        if "access_token" not in body:
            raise VendorUnavailable(self.vendor, "token endpoint answered without a token")
        return body

    def _oauth_error(self, exc: AuthlibOAuthError, grant: str) -> ConnectorError:
        code = str(getattr(exc, "error", "") or "oauth_error")
        description = getattr(exc, "description", None)
        message = str(description) if description else None
        # Logged by code only: descriptions may echo parameters.
        logger.info("token request refused", extra={"vendor": self.vendor, "error": code})
        if code == "invalid_grant" and grant in {"refresh_token", "authorization_code"}:
            return ReauthorizationRequired(
                self.vendor,
                "the grant is no longer valid: authorise the connection again",
                vendor_code=code,
                vendor_message=message,
            )
        if code in {"invalid_client", "unauthorized_client", "access_denied", "invalid_grant"}:
            return AuthenticationFailed(
                self.vendor,
                "the credentials were refused",
                vendor_code=code,
                vendor_message=message,
            )
        return InvalidData(
            self.vendor, "the token request was refused", vendor_code=code, vendor_message=message
        )
