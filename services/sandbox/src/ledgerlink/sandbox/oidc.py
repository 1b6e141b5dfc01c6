"""OpenID Connect providers that behave like Google's and Microsoft's, for people's sign-in.

Development, demos and tests only. Two providers are mounted:

* ``/google``: issuer ``<base>/google`` (Google's is ``https://accounts.google.com``),
  discovery at ``/google/.well-known/openid-configuration``, authorization at
  ``/google/o/oauth2/v2/auth``, token at ``/google/token``, keys at
  ``/google/oauth2/v3/certs``, userinfo at ``/google/v1/userinfo``. ID tokens carry
  ``email_verified`` and, for a Workspace user, ``hd`` (Google OpenID Connect reference,
  developers.google.com/identity/openid-connect/reference).
* ``/microsoft/{tenant}``: the Microsoft identity platform v2.0 shape. ``{tenant}`` is
  ``common``, ``organizations`` or a tenant id. Discovery at
  ``/microsoft/{tenant}/v2.0/.well-known/openid-configuration``, authorization at
  ``/microsoft/{tenant}/oauth2/v2.0/authorize``, token at ``/microsoft/{tenant}/oauth2/v2.0/token``,
  keys at ``/microsoft/{tenant}/discovery/v2.0/keys``. As Microsoft's multi-tenant discovery
  documents do, the issuer of ``common``/``organizations`` is the template
  ``<base>/microsoft/{tenantid}/v2.0``; each ID token's ``iss`` names the user's own tenant,
  which its ``tid`` claim repeats, so a client must check ``iss`` against ``tid``
  (learn.microsoft.com, "ID token claims reference" and the Q&A "why doesn't the /common
  endpoint work"). Microsoft does not send ``email_verified``; the optional claim ``xms_edov``
  ("email domain owner verified") says the e-mail's domain is verified for the tenant
  (learn.microsoft.com, "Optional claims reference"). UNCONFIRMED: the exact conditions under
  which Entra sets ``xms_edov`` true; the sandbox sets it per test user.

What the providers enforce: a registered client (secret checked at the token endpoint by
HTTP Basic or form fields), an exactly registered redirect URI, ``response_type=code``,
``scope`` with ``openid``, PKCE S256 (required here; the real providers allow confidential
clients without it), single-use codes that live ``authorization_code_ttl_seconds``,
``nonce`` echoed into the ID token. The login page lists the test users; the provider keeps
a browser session (a cookie), so a second authorization skips the page unless the client
sends ``prompt=login`` or a ``max_age`` the session is older than.

ID tokens are RS256 JWTs signed with keys generated at first use (``cryptography``).
``POST /_sandbox/oidc/{provider}/rotate-keys`` makes a new current key; the old one stays
published for ``oidc_key_retention_seconds``. Faults for the refusal tests
(``POST /_sandbox/oidc/{provider}/faults``): ``wrong_nonce`` (the ID token names another
nonce), ``unknown_key`` (signed by a key never published), ``clock_offset_seconds`` (the
provider's clock runs that far off: a negative offset issues tokens that are already
expired). Tests in the same process inject the world's clock instead.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
import secrets
import weakref
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import unquote_plus

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from fastapi import APIRouter, FastAPI, HTTPException, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field

from ledgerlink.sandbox.config import SandboxConfig
from ledgerlink.sandbox.oauth import form_fields, redirect_with
from ledgerlink.sandbox.world import World

__all__ = [
    "MICROSOFT_TENANTS",
    "IdentityProvider",
    "OidcFaults",
    "OidcUser",
    "identity_providers",
    "mount",
]

ProviderKind = Literal["google", "microsoft"]

#: Tenants of the Microsoft stand-in: a Finnish and a Swedish organisation.
MICROSOFT_TENANTS: dict[str, str] = {
    "aa11aa11-0000-4000-8000-000000000001": "Contoso Oy (sandbox)",
    "bb22bb22-0000-4000-8000-000000000002": "Fabrikam AB (sandbox)",
}
_MULTI_TENANT = frozenset({"common", "organizations"})
_SESSION_COOKIE = "sandbox_idp_session"


@dataclass(frozen=True)
class OidcUser:
    """A person on a provider's login page."""

    username: str
    subject: str
    email: str
    email_verified: bool
    name: str
    #: Google Workspace domain (``hd``) or Microsoft tenant id (``tid``).
    organisation: str | None = None


def _default_users(kind: ProviderKind) -> list[OidcUser]:
    if kind == "google":
        return [
            OidcUser("anna", "110000000000000000001", "anna@virtanen-demo.fi", True,
                     "Anna Virtanen", "virtanen-demo.fi"),
            OidcUser("ola", "110000000000000000002", "ola.nordmann@gmail-demo.test", True,
                     "Ola Nordmann"),
            OidcUser("unverified", "110000000000000000003", "pending@unverified-demo.test",
                     False, "Pekka Pending"),
        ]  # fmt: skip
    contoso, fabrikam = list(MICROSOFT_TENANTS)
    return [
        OidcUser("erik", "AAAAAAAAAAAAAAAAAAAAAErikSvenssonSub001", "erik@contoso-demo.fi",
                 True, "Erik Svensson", contoso),
        OidcUser("maja", "AAAAAAAAAAAAAAAAAAAAAMajaLindqvistSub02", "maja@fabrikam-demo.se",
                 True, "Maja Lindqvist", fabrikam),
        OidcUser("unverified", "AAAAAAAAAAAAAAAAAAAAAUnverifiedUserSub3",
                 "guest@unverified-demo.test", False, "Guest Unverified", contoso),
    ]  # fmt: skip


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _int_b64url(value: int) -> str:
    return _b64url(value.to_bytes((value.bit_length() + 7) // 8, "big"))


@dataclass
class SigningKey:
    """An RS256 key; ``retired_at`` set when a newer key took over."""

    kid: str
    private_key: rsa.RSAPrivateKey
    retired_at: float | None = None

    @classmethod
    def generate(cls) -> SigningKey:
        return cls(secrets.token_hex(8), rsa.generate_private_key(65537, 2048))

    def jwk(self) -> dict[str, str]:
        """The public half as a JWK (RFC 7517)."""
        numbers = self.private_key.public_key().public_numbers()
        return {
            "kty": "RSA",
            "use": "sig",
            "alg": "RS256",
            "kid": self.kid,
            "n": _int_b64url(numbers.n),
            "e": _int_b64url(numbers.e),
        }

    def sign(self, claims: Mapping[str, Any]) -> str:
        """A compact JWS (RFC 7515) of ``claims`` with RS256 (RFC 7518 3.3)."""
        header = {"alg": "RS256", "kid": self.kid, "typ": "JWT"}
        signing_input = (
            _b64url(json.dumps(header, separators=(",", ":")).encode())
            + "."
            + _b64url(json.dumps(dict(claims), separators=(",", ":")).encode())
        )
        signature = self.private_key.sign(
            signing_input.encode("ascii"), padding.PKCS1v15(), hashes.SHA256()
        )
        return f"{signing_input}.{_b64url(signature)}"


class OidcFaults(BaseModel):
    """Misbehaviour switched on through the control API (refusal tests)."""

    model_config = ConfigDict(extra="forbid")

    wrong_nonce: bool = Field(default=False, description="ID tokens name another nonce.")
    unknown_key: bool = Field(
        default=False, description="ID tokens are signed by a key that is never published."
    )
    clock_offset_seconds: float = Field(
        default=0, description="The provider's clock runs this far off (negative: the past)."
    )


class OidcError(Exception):
    """An OAuth error (RFC 6749 5.2 at the token endpoint)."""

    def __init__(self, error: str, description: str, status: int = 400) -> None:
        super().__init__(f"{error}: {description}")
        self.error = error
        self.description = description
        self.status = status

    def response(self) -> JSONResponse:
        return JSONResponse(
            {"error": self.error, "error_description": self.description},
            status_code=self.status,
            headers={"Cache-Control": "no-store"},
        )


@dataclass
class _Code:
    client_id: str
    redirect_uri: str
    user: OidcUser
    nonce: str | None
    code_challenge: str
    scopes: frozenset[str]
    auth_time: int
    issuer_base: str
    expires_at: float
    used: bool = False


@dataclass
class _IdpSession:
    username: str
    auth_time: int


@dataclass
class IdentityProvider:
    """One stand-in provider: its clients, users, keys, codes and browser sessions."""

    kind: ProviderKind
    config: SandboxConfig
    clock: Callable[[], float]
    users: dict[str, OidcUser] = field(default_factory=dict)
    faults: OidcFaults = field(default_factory=OidcFaults)
    keys: list[SigningKey] = field(default_factory=list)
    _codes: dict[str, _Code] = field(default_factory=dict)
    _access_tokens: dict[str, tuple[OidcUser, float]] = field(default_factory=dict)
    _sessions: dict[str, _IdpSession] = field(default_factory=dict)
    _rogue_key: SigningKey | None = None
    #: Successful token responses (tests count them).
    tokens_issued: int = 0

    def __post_init__(self) -> None:
        for user in _default_users(self.kind):
            self.users.setdefault(user.username, user)

    # -- time and keys ---------------------------------------------------------------------

    def now(self) -> float:
        """The provider's clock: the world's clock plus the fault offset."""
        return self.clock() + self.faults.clock_offset_seconds

    def current_key(self) -> SigningKey:
        """The key new tokens are signed with (generated at first use)."""
        if not self.keys:
            self.keys.append(SigningKey.generate())
        return self.keys[-1]

    def rotate_keys(self) -> SigningKey:
        """A new current key; the old one stays published for the retention period."""
        previous = self.current_key()
        previous.retired_at = self.now()
        key = SigningKey.generate()
        self.keys.append(key)
        return key

    def published_keys(self) -> list[SigningKey]:
        """Keys in the JWKS: the current one and retired ones within the retention."""
        self.current_key()
        retention = self.config.oidc_key_retention_seconds
        now = self.now()
        return [
            key for key in self.keys if key.retired_at is None or now < key.retired_at + retention
        ]

    def jwks(self) -> dict[str, Any]:
        """The JSON Web Key Set document."""
        return {"keys": [key.jwk() for key in self.published_keys()]}

    def _signing_key(self) -> SigningKey:
        if self.faults.unknown_key:
            if self._rogue_key is None:
                self._rogue_key = SigningKey.generate()
            return self._rogue_key
        return self.current_key()

    # -- clients ---------------------------------------------------------------------------

    def check_client(self, client_id: str | None, redirect_uri: str | None) -> None:
        """The client is known and the redirect URI registered (no redirect on failure)."""
        if client_id != self.config.oidc_client_id:
            raise OidcError("invalid_client", "unknown client_id")
        if redirect_uri not in self.config.oidc_redirect_uris:
            raise OidcError("invalid_request", "redirect_uri is not registered for this client")

    def authenticate_client(self, form: Mapping[str, str], authorization: str | None) -> str:
        """The client id after checking its secret (HTTP Basic or form fields)."""
        client_id, secret = form.get("client_id"), form.get("client_secret")
        if authorization and authorization.lower().startswith("basic "):
            try:
                decoded = base64.b64decode(authorization[6:].strip()).decode()
            except (ValueError, UnicodeDecodeError):
                raise OidcError("invalid_client", "malformed Basic credentials", 401) from None
            basic_id, _, basic_secret = decoded.partition(":")
            client_id, secret = unquote_plus(basic_id), unquote_plus(basic_secret)
        expected = self.config.oidc_client_secret.get_secret_value()
        if client_id != self.config.oidc_client_id or not secrets.compare_digest(
            (secret or "").encode(), expected.encode()
        ):
            raise OidcError("invalid_client", "client authentication failed", 401)
        return client_id

    # -- authorization ---------------------------------------------------------------------

    def check_request(self, params: Mapping[str, str]) -> None:
        """Errors reported to the client by redirect (RFC 6749 4.1.2.1)."""
        if params.get("response_type") != "code":
            raise OidcError("unsupported_response_type", "response_type must be code")
        if "openid" not in params.get("scope", "").split():
            raise OidcError("invalid_scope", "scope must include openid")
        challenge = params.get("code_challenge", "")
        if params.get("code_challenge_method") != "S256" or not 43 <= len(challenge) <= 128:
            raise OidcError("invalid_request", "PKCE with code_challenge_method=S256 is required")
        prompt = params.get("prompt", "").split()
        if "none" in prompt and len(prompt) > 1:
            raise OidcError("invalid_request", "prompt=none cannot be combined")

    def session_user(self, session_id: str | None, params: Mapping[str, str]) -> _IdpSession | None:
        """The browser's provider session when it may skip the login page."""
        session = self._sessions.get(session_id or "")
        if session is None or "login" in params.get("prompt", "").split():
            return None
        max_age = params.get("max_age")
        if max_age is not None:
            try:
                limit = int(max_age)
            except ValueError:
                raise OidcError("invalid_request", "max_age must be an integer") from None
            if self.now() - session.auth_time > limit:
                return None
        return session

    def sign_in(self, username: str) -> tuple[str, _IdpSession]:
        """A fresh provider session for the user who chose themselves on the login page."""
        session = _IdpSession(username, int(self.now()))
        session_id = secrets.token_urlsafe(24)
        self._sessions[session_id] = session
        return session_id, session

    def issue_code(self, params: Mapping[str, str], session: _IdpSession, issuer_base: str) -> str:
        """A single-use code for the session's user."""
        code = secrets.token_urlsafe(32)
        self._codes[code] = _Code(
            client_id=params["client_id"],
            redirect_uri=params["redirect_uri"],
            user=self.users[session.username],
            nonce=params.get("nonce") or None,
            code_challenge=params["code_challenge"],
            scopes=frozenset(params.get("scope", "").split()),
            auth_time=session.auth_time,
            issuer_base=issuer_base,
            expires_at=self.now() + self.config.authorization_code_ttl_seconds,
        )
        return code

    # -- token -----------------------------------------------------------------------------

    def issuer_for(self, issuer_base: str, user: OidcUser) -> str:
        """The ``iss`` of this user's tokens."""
        if self.kind == "google":
            return issuer_base
        return f"{issuer_base}/{user.organisation}/v2.0"

    def token(self, form: Mapping[str, str], authorization: str | None) -> dict[str, Any]:
        """The token response of the code grant, or :class:`OidcError`."""
        if form.get("grant_type") != "authorization_code":
            raise OidcError("unsupported_grant_type", "only authorization_code is supported")
        client_id = self.authenticate_client(form, authorization)
        code = self._codes.get(form.get("code", ""))
        if code is None or code.client_id != client_id:
            raise OidcError("invalid_grant", "unknown authorization code")
        if code.used:
            raise OidcError("invalid_grant", "authorization code already used")
        code.used = True
        if self.now() > code.expires_at:
            raise OidcError("invalid_grant", "authorization code expired")
        if form.get("redirect_uri") != code.redirect_uri:
            raise OidcError("invalid_grant", "redirect_uri does not match the authorization")
        verifier = form.get("code_verifier", "")
        challenge = _b64url(hashlib.sha256(verifier.encode("ascii", "replace")).digest())
        if not verifier or not secrets.compare_digest(challenge, code.code_challenge):
            raise OidcError("invalid_grant", "PKCE verification failed")
        now = int(self.now())
        ttl = self.config.oidc_id_token_ttl_seconds
        access_token = secrets.token_urlsafe(32)
        self._access_tokens[access_token] = (code.user, now + ttl)
        body: dict[str, Any] = {
            "access_token": access_token,
            "token_type": "Bearer",
            "expires_in": ttl,
            "scope": " ".join(sorted(code.scopes)),
            "id_token": self._signing_key().sign(self._claims(code, access_token, now, ttl)),
        }
        self.tokens_issued += 1
        return body

    def _claims(self, code: _Code, access_token: str, now: int, ttl: int) -> dict[str, Any]:
        user = code.user
        digest = hashlib.sha256(access_token.encode("ascii")).digest()
        claims: dict[str, Any] = {
            "iss": self.issuer_for(code.issuer_base, user),
            "sub": user.subject,
            "aud": code.client_id,
            "iat": now,
            "exp": now + ttl,
            "auth_time": code.auth_time,
            # OpenID Connect Core 3.1.3.6: the left half of the access token's SHA-256.
            "at_hash": _b64url(digest[: len(digest) // 2]),
        }
        if code.nonce is not None:
            claims["nonce"] = "not-the-nonce-you-sent" if self.faults.wrong_nonce else code.nonce
        if "email" in code.scopes:
            claims["email"] = user.email
        if "profile" in code.scopes:
            claims["name"] = user.name
        if self.kind == "google":
            claims["azp"] = code.client_id
            if "email" in code.scopes:
                claims["email_verified"] = user.email_verified
            if user.organisation:
                claims["hd"] = user.organisation
        else:
            claims.update(
                {
                    "nbf": now,
                    "tid": user.organisation,
                    "ver": "2.0",
                    "preferred_username": user.email,
                    "oid": hashlib.sha256(user.subject.encode()).hexdigest()[:32],
                    "xms_edov": user.email_verified,
                }
            )
        return claims

    def userinfo(self, authorization: str | None) -> dict[str, Any]:
        """The OpenID Connect UserInfo of a bearer access token."""
        token = (authorization or "")[7:].strip() if authorization else ""
        record = self._access_tokens.get(token)
        if record is None or self.now() >= record[1]:
            raise OidcError("invalid_token", "unknown or expired access token", 401)
        user = record[0]
        info: dict[str, Any] = {"sub": user.subject, "email": user.email, "name": user.name}
        if self.kind == "google":
            info["email_verified"] = user.email_verified
        return info

    def reset(self) -> None:
        """Forget codes, tokens, sessions and faults; users and keys stay."""
        self._codes.clear()
        self._access_tokens.clear()
        self._sessions.clear()
        self.faults = OidcFaults()
        self.tokens_issued = 0


_PROVIDERS: weakref.WeakKeyDictionary[World, dict[str, IdentityProvider]] = (
    weakref.WeakKeyDictionary()
)


def identity_providers(world: World) -> dict[str, IdentityProvider]:
    """The world's two providers (``google``, ``microsoft``), created on first use."""
    providers = _PROVIDERS.get(world)
    if providers is None:
        providers = {
            kind: IdentityProvider(kind, world.config, lambda: world.clock())
            for kind in ("google", "microsoft")
        }
        _PROVIDERS[world] = providers

        def reset_all() -> None:
            for provider in providers.values():
                provider.reset()

        world.on_reset(reset_all)
    return providers


# ------------------------------------------------------------------------------------------
# HTTP
# ------------------------------------------------------------------------------------------

_FORWARDED_PARAMS = (
    "response_type",
    "client_id",
    "redirect_uri",
    "scope",
    "state",
    "nonce",
    "code_challenge",
    "code_challenge_method",
    "prompt",
    "max_age",
    "login_hint",
)


def _base_url(request: Request, config: SandboxConfig) -> str:
    if config.oidc_issuer_base_url:
        return config.oidc_issuer_base_url.rstrip("/")
    return str(request.base_url).rstrip("/")


def _login_page(
    provider: IdentityProvider, action: str, params: Mapping[str, str], error: str = ""
) -> str:
    title = f"Sign in to the {provider.kind.capitalize()} sandbox"
    hidden = "\n".join(
        f'<input type="hidden" name="{key}" value="{html.escape(params[key])}">'
        for key in _FORWARDED_PARAMS
        if params.get(key)
    )
    options = "\n".join(
        f'<div><input type="radio" id="user-{html.escape(user.username)}" name="username" '
        f'value="{html.escape(user.username)}"{" checked" if index == 0 else ""}>'
        f'<label for="user-{html.escape(user.username)}">{html.escape(user.name)} '
        f"({html.escape(user.email)}"
        f"{'' if user.email_verified else ', e-mail not verified'})</label></div>"
        for index, user in enumerate(provider.users.values())
    )
    message = f'<p role="alert">{html.escape(error)}</p>' if error else ""
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title></head>
<body>
<h1>{html.escape(title)}</h1>
<p>This is a sandbox identity provider for development and tests, not the real service.</p>
{message}
<form method="post" action="{html.escape(action)}">
{hidden}
<fieldset><legend>Choose a test user</legend>
{options}
</fieldset>
<button type="submit">Sign in</button>
</form>
</body></html>"""


def _error_page(provider: IdentityProvider, error: OidcError) -> HTMLResponse:
    body = (
        f'<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f"<title>Sign-in error</title></head><body>"
        f"<h1>{html.escape(provider.kind.capitalize())} sandbox: sign-in error</h1>"
        f"<p>{html.escape(error.error)}: {html.escape(error.description)}</p></body></html>"
    )
    return HTMLResponse(body, status_code=400)


def _check_tenant(provider: IdentityProvider, tenant: str | None) -> None:
    if provider.kind == "microsoft" and tenant not in _MULTI_TENANT | set(MICROSOFT_TENANTS):
        raise HTTPException(404, f"no tenant {tenant!r}")


def _authorization_routes(
    router: APIRouter, provider: IdentityProvider, config: SandboxConfig, path: str
) -> None:
    async def authorize(request: Request, params: dict[str, str], submitted: bool) -> Response:
        tenant = request.path_params.get("tenant")
        _check_tenant(provider, tenant)
        try:
            provider.check_client(params.get("client_id"), params.get("redirect_uri"))
        except OidcError as error:
            return _error_page(provider, error)
        redirect_uri = params["redirect_uri"]
        state = params.get("state")
        session_id: str | None
        try:
            provider.check_request(params)
            if submitted:
                user = provider.users.get(params.get("username", ""))
                if user is None:
                    page = _login_page(provider, request.url.path, params, "Choose a test user.")
                    return HTMLResponse(page, status_code=400)
                if tenant in MICROSOFT_TENANTS and user.organisation != tenant:
                    page = _login_page(
                        provider,
                        request.url.path,
                        params,
                        f"{user.email} is not in this organisation's directory.",
                    )
                    return HTMLResponse(page, status_code=400)
                session_id, session = provider.sign_in(user.username)
            else:
                session_id = request.cookies.get(_SESSION_COOKIE)
                existing = provider.session_user(session_id, params)
                if existing is None:
                    if "none" in params.get("prompt", "").split():
                        raise OidcError("login_required", "the user must sign in")
                    return HTMLResponse(_login_page(provider, request.url.path, params))
                session = existing
        except OidcError as error:
            return redirect_with(
                redirect_uri,
                {"error": error.error, "error_description": error.description, "state": state},
            )
        issuer_base = _base_url(request, config) + (
            "/google" if provider.kind == "google" else "/microsoft"
        )
        code = provider.issue_code(params, session, issuer_base)
        response = redirect_with(redirect_uri, {"code": code, "state": state})
        if submitted and session_id is not None:
            response.set_cookie(
                _SESSION_COOKIE, session_id, httponly=True, samesite="lax", path=request.url.path
            )
        return response

    @router.get(path, include_in_schema=False)
    async def authorize_page(request: Request) -> Response:
        return await authorize(request, dict(request.query_params), submitted=False)

    @router.post(path, include_in_schema=False)
    async def authorize_submit(request: Request) -> Response:
        return await authorize(request, await form_fields(request), submitted=True)


def _token_routes(router: APIRouter, provider: IdentityProvider, path: str) -> None:
    @router.post(path, include_in_schema=False)
    async def token(request: Request) -> Response:
        _check_tenant(provider, request.path_params.get("tenant"))
        if not request.headers.get("content-type", "").startswith(
            "application/x-www-form-urlencoded"
        ):
            return OidcError("invalid_request", "the token request must be form-encoded").response()
        try:
            body = provider.token(await form_fields(request), request.headers.get("authorization"))
        except OidcError as error:
            return error.response()
        return JSONResponse(body, headers={"Cache-Control": "no-store", "Pragma": "no-cache"})


def _discovery(provider: IdentityProvider, base: str, tenant: str | None = None) -> dict[str, Any]:
    if provider.kind == "google":
        root = f"{base}/google"
        issuer = root
        endpoints = {
            "authorization_endpoint": f"{root}/o/oauth2/v2/auth",
            "token_endpoint": f"{root}/token",
            "userinfo_endpoint": f"{root}/v1/userinfo",
            "jwks_uri": f"{root}/oauth2/v3/certs",
        }
        claims = ["aud", "email", "email_verified", "exp", "hd", "iat", "iss", "name", "sub"]
    else:
        root = f"{base}/microsoft/{tenant}"
        issuer = (
            f"{base}/microsoft/{{tenantid}}/v2.0" if tenant in _MULTI_TENANT else f"{root}/v2.0"
        )
        endpoints = {
            "authorization_endpoint": f"{root}/oauth2/v2.0/authorize",
            "token_endpoint": f"{root}/oauth2/v2.0/token",
            "userinfo_endpoint": f"{base}/microsoft/oidc/userinfo",
            "jwks_uri": f"{root}/discovery/v2.0/keys",
        }
        claims = ["aud", "email", "exp", "iat", "iss", "name", "nonce", "oid", "sub", "tid"]
    return {
        "issuer": issuer,
        **endpoints,
        "response_types_supported": ["code"],
        "subject_types_supported": ["public" if provider.kind == "google" else "pairwise"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "scopes_supported": ["openid", "email", "profile"],
        "token_endpoint_auth_methods_supported": ["client_secret_post", "client_secret_basic"],
        "claims_supported": claims,
        "code_challenge_methods_supported": ["S256"],
        "grant_types_supported": ["authorization_code"],
    }


def _provider_router(provider: IdentityProvider, config: SandboxConfig) -> APIRouter:
    router = APIRouter(tags=[f"{provider.kind} sign-in (sandbox)"])
    if provider.kind == "google":

        @router.get("/google/.well-known/openid-configuration")
        async def google_discovery(request: Request) -> dict[str, Any]:
            return _discovery(provider, _base_url(request, config))

        @router.get("/google/oauth2/v3/certs")
        async def google_keys() -> dict[str, Any]:
            return provider.jwks()

        _authorization_routes(router, provider, config, "/google/o/oauth2/v2/auth")
        _token_routes(router, provider, "/google/token")
        userinfo_path = "/google/v1/userinfo"
    else:

        @router.get("/microsoft/{tenant}/v2.0/.well-known/openid-configuration")
        async def microsoft_discovery(request: Request, tenant: str) -> dict[str, Any]:
            _check_tenant(provider, tenant)
            return _discovery(provider, _base_url(request, config), tenant)

        @router.get("/microsoft/{tenant}/discovery/v2.0/keys")
        async def microsoft_keys(tenant: str) -> dict[str, Any]:
            _check_tenant(provider, tenant)
            return provider.jwks()

        _authorization_routes(router, provider, config, "/microsoft/{tenant}/oauth2/v2.0/authorize")
        _token_routes(router, provider, "/microsoft/{tenant}/oauth2/v2.0/token")
        userinfo_path = "/microsoft/oidc/userinfo"

    @router.get(userinfo_path)
    async def userinfo(request: Request) -> Response:
        try:
            return JSONResponse(provider.userinfo(request.headers.get("authorization")))
        except OidcError as error:
            return error.response()

    return router


def _control_router(providers: dict[str, IdentityProvider]) -> APIRouter:
    router = APIRouter(prefix="/_sandbox/oidc", tags=["sandbox control"])

    def provider_or_404(name: str) -> IdentityProvider:
        provider = providers.get(name)
        if provider is None:
            raise HTTPException(404, f"no identity provider {name!r}")
        return provider

    @router.post("/{name}/rotate-keys")
    async def rotate_keys(name: str) -> dict[str, Any]:
        provider = provider_or_404(name)
        key = provider.rotate_keys()
        return {"current_kid": key.kid, "published": [k.kid for k in provider.published_keys()]}

    @router.post("/{name}/faults")
    async def set_faults(name: str, faults: OidcFaults) -> OidcFaults:
        provider_or_404(name).faults = faults
        return faults

    @router.delete("/{name}/faults", status_code=204)
    async def clear_faults(name: str) -> Response:
        provider_or_404(name).faults = OidcFaults()
        return Response(status_code=204)

    @router.get("/{name}/users")
    async def users(name: str) -> list[dict[str, Any]]:
        return [
            {
                "username": user.username,
                "email": user.email,
                "email_verified": user.email_verified,
                "name": user.name,
                "organisation": user.organisation,
            }
            for user in provider_or_404(name).users.values()
        ]

    return router


def mount(app: FastAPI, world: World) -> None:
    """Mount both providers and their control routes on the sandbox app."""
    providers = identity_providers(world)
    for provider in providers.values():
        app.include_router(_provider_router(provider, world.config))
    app.include_router(_control_router(providers))
