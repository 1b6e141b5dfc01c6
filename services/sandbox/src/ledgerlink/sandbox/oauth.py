"""A strict OAuth 2.0 authorization server, the vendors' identity stand-in.

It is hand-written on purpose: it must refuse what a careful vendor refuses, so a connector
that passes against it follows the protocol rather than a lenient mock. It implements

* the authorization code grant (RFC 6749 4.1) with a login page, exactly one registered
  redirect URI per client (exact string match, no query string), ``state`` echoed, codes
  single-use with a short TTL, PKCE S256 (RFC 7636; required per server flag or per client);
  a reused code is refused and the tokens issued from it are revoked (RFC 6749 4.1.2);
* opaque access tokens with a TTL;
* rotating refresh tokens: each use issues a new one and the old one is refused with
  ``invalid_grant``; each has its own TTL; optionally only issued when the scope has
  ``offline_access`` (Visma Connect);
* the client credentials grant with a validator hook for vendor extras (Visma ``tenant_id``,
  Procountor ``api_key``);
* :meth:`OAuthServer.authenticate` for the vendor's API routers and
  :meth:`OAuthServer.expire_all` for the token-expiry fault.

Errors of the token endpoint are RFC 6749 5.2 JSON (``{error, error_description}``).
"""

# OAuthTokenInvalid/OAuthTokenExpired are the names the contract gives.
# ruff: noqa: N818

from __future__ import annotations

import base64
import hashlib
import html
import logging
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote_plus, urlencode

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

__all__ = [
    "ClientCredentialsGrant",
    "ClientCredentialsValidator",
    "OAuthClient",
    "OAuthError",
    "OAuthServer",
    "OAuthTokenExpired",
    "OAuthTokenInvalid",
    "OAuthUser",
    "TokenInfo",
    "oauth_router",
]

logger = logging.getLogger(__name__)


class OAuthError(Exception):
    """An RFC 6749 error: ``error`` code, ``description``, HTTP ``status``."""

    def __init__(self, error: str, description: str, status: int = 400) -> None:
        super().__init__(f"{error}: {description}")
        self.error = error
        self.description = description
        self.status = status

    def response(self) -> JSONResponse:
        """The token endpoint's JSON answer for this error."""
        headers = {"Cache-Control": "no-store", "Pragma": "no-cache"}
        if self.status == 401:
            headers["WWW-Authenticate"] = 'Basic realm="token"'
        return JSONResponse(
            {"error": self.error, "error_description": self.description},
            status_code=self.status,
            headers=headers,
        )


class OAuthTokenInvalid(Exception):
    """The bearer token is unknown, revoked or malformed."""


class OAuthTokenExpired(OAuthTokenInvalid):
    """The bearer token was valid but has expired."""


@dataclass(frozen=True)
class TokenInfo:
    """Who an access token speaks for."""

    client_id: str
    subject: str
    tenant: str | None
    scopes: frozenset[str]
    expires_at: float


@dataclass
class OAuthClient:
    """A registered client. ``client_secret=None`` makes it a public client (PKCE only)."""

    client_id: str
    client_secret: str | None
    redirect_uri: str | None = None
    allowed_scopes: frozenset[str] | None = None
    grant_types: frozenset[str] = frozenset(
        {"authorization_code", "refresh_token", "client_credentials"}
    )
    require_pkce: bool = False
    #: After a good login, show a separate "Allow" page before issuing the code (Visma
    #: Connect's consent step, seed 002 step 4); off by default for older tests.
    consent_page: bool = False
    #: Tenant and subject of client-credentials tokens when no validator decides them.
    tenant: str | None = None
    subject: str | None = None


@dataclass
class OAuthUser:
    """A user who can log in on the authorization page."""

    username: str
    password: str
    subject: str
    tenant: str | None = None


@dataclass(frozen=True)
class ClientCredentialsGrant:
    """What a client-credentials validator decides: the token's subject and tenant."""

    subject: str
    tenant: str | None


#: ``scope_filter(user, requested)``: the scopes the user's rights allow (RFC 6749 3.3: the
#: server may issue a narrower scope and then names it in the token answer).
ScopeFilter = Callable[[OAuthUser, frozenset[str]], frozenset[str]]

#: ``validator(client, extra_params, scopes)``: raise OAuthError to refuse.
ClientCredentialsValidator = Callable[
    [OAuthClient, Mapping[str, str], frozenset[str]], ClientCredentialsGrant
]


@dataclass
class _Code:
    client_id: str
    redirect_uri: str
    subject: str
    tenant: str | None
    scopes: frozenset[str]
    code_challenge: str | None
    expires_at: float
    used: bool = False
    issued_tokens: list[str] = field(default_factory=list)


@dataclass
class _RefreshToken:
    client_id: str
    subject: str
    tenant: str | None
    scopes: frozenset[str]
    expires_at: float
    code: str | None


@dataclass
class _AccessToken:
    info: TokenInfo
    code: str | None


def _s256(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def _scopes(text: str | None) -> frozenset[str]:
    return frozenset((text or "").split())


class OAuthServer:
    """In-memory authorization server; see the module docstring for what it enforces."""

    def __init__(
        self,
        name: str,
        *,
        access_token_ttl: float = 3600,
        refresh_token_ttl: float = 30 * 24 * 3600,
        code_ttl: float = 60,
        require_pkce: bool = False,
        refresh_requires_offline_access: bool = False,
        issue_refresh_tokens: bool = True,
        client_credentials_validator: ClientCredentialsValidator | None = None,
        clock: Callable[[], float] = time.time,
        scope_filter: ScopeFilter | None = None,
    ) -> None:
        self.name = name
        self.scope_filter = scope_filter
        #: Browser sessions of the login page (cookie value -> username): a later
        #: authorization without ``prompt=login`` skips the password (single sign-on).
        self.browser_sessions: dict[str, str] = {}
        #: Logins that passed the password and wait for "Allow" (form value -> username).
        self._awaiting_consent: dict[str, str] = {}
        #: Logins on the page so far (tests prove a fresh login was asked for).
        self.page_logins = 0
        self.access_token_ttl = access_token_ttl
        self.refresh_token_ttl = refresh_token_ttl
        self.code_ttl = code_ttl
        self.require_pkce = require_pkce
        self.refresh_requires_offline_access = refresh_requires_offline_access
        self.issue_refresh_tokens = issue_refresh_tokens
        self.client_credentials_validator = client_credentials_validator
        self.clock = clock
        self.clients: dict[str, OAuthClient] = {}
        self.users: dict[str, OAuthUser] = {}
        self._codes: dict[str, _Code] = {}
        self._access: dict[str, _AccessToken] = {}
        self._refresh: dict[str, _RefreshToken] = {}
        #: Number of successful token responses per grant type (tests count refreshes).
        self.grant_counts: dict[str, int] = {}
        #: Refused token requests per RFC 6749 error code (``invalid_grant``...).
        self.error_counts: dict[str, int] = {}
        #: Tokens revoked through the revocation endpoint.
        self.revocations = 0

    # -- registration ----------------------------------------------------------------------

    def register_client(self, client: OAuthClient) -> OAuthClient:
        """Register (or replace) a client."""
        if client.redirect_uri is not None and "?" in client.redirect_uri:
            raise ValueError("a registered redirect URI carries no query string")
        self.clients[client.client_id] = client
        return client

    def add_user(
        self, username: str, password: str, *, subject: str | None = None, tenant: str | None
    ) -> OAuthUser:
        """Register a user of the login page."""
        user = OAuthUser(username, password, subject or username, tenant)
        self.users[username] = user
        return user

    # -- authorization endpoint ------------------------------------------------------------

    def check_authorization_request(self, params: Mapping[str, str]) -> OAuthClient:
        """Validate client and redirect URI; errors here must not redirect (RFC 6749 4.1.2.1)."""
        client = self.clients.get(params.get("client_id", ""))
        if client is None:
            raise OAuthError("invalid_client", "unknown client_id", 400)
        if client.redirect_uri is None or params.get("redirect_uri") != client.redirect_uri:
            raise OAuthError("invalid_request", "redirect_uri does not match the registered one")
        return client

    def check_redirectable(self, client: OAuthClient, params: Mapping[str, str]) -> None:
        """Errors reported back to the client by redirect (RFC 6749 4.1.2.1)."""
        if params.get("response_type") != "code":
            raise OAuthError("unsupported_response_type", "response_type must be code")
        if "authorization_code" not in client.grant_types:
            raise OAuthError("unauthorized_client", "client may not use the code grant")
        scopes = _scopes(params.get("scope"))
        if client.allowed_scopes is not None and not scopes <= client.allowed_scopes:
            raise OAuthError("invalid_scope", "scope not allowed for this client")
        challenge = params.get("code_challenge")
        if challenge:
            if params.get("code_challenge_method") != "S256":
                raise OAuthError("invalid_request", "code_challenge_method must be S256")
            if not 43 <= len(challenge) <= 128:
                raise OAuthError("invalid_request", "malformed code_challenge")
        elif self.require_pkce or client.require_pkce:
            raise OAuthError("invalid_request", "PKCE code_challenge required")

    def issue_code(self, client: OAuthClient, user: OAuthUser, params: Mapping[str, str]) -> str:
        """A single-use authorization code for ``user`` (after a successful login)."""
        code = secrets.token_urlsafe(32)
        scopes = _scopes(params.get("scope"))
        if self.scope_filter is not None:
            scopes = self.scope_filter(user, scopes)
        self._codes[code] = _Code(
            client_id=client.client_id,
            redirect_uri=params["redirect_uri"],
            subject=user.subject,
            tenant=user.tenant,
            scopes=scopes,
            code_challenge=params.get("code_challenge") or None,
            expires_at=self.clock() + self.code_ttl,
        )
        return code

    def start_browser_session(self, user: OAuthUser) -> str:
        """A login-page session for ``user`` (the value of its cookie)."""
        value = secrets.token_urlsafe(24)
        self.browser_sessions[value] = user.username
        return value

    def browser_user(self, cookie: str | None) -> OAuthUser | None:
        """The user of a login-page session cookie, if it is one."""
        username = self.browser_sessions.get(cookie or "")
        return self.users.get(username) if username else None

    def await_consent(self, user: OAuthUser) -> str:
        """A one-time handle of a login that passed the password and waits for "Allow"."""
        handle = secrets.token_urlsafe(24)
        self._awaiting_consent[handle] = user.username
        return handle

    def consented(self, handle: str) -> OAuthUser | None:
        """The user who pressed "Allow" with this handle (single use)."""
        username = self._awaiting_consent.pop(handle, None)
        return self.users.get(username) if username else None

    def login(self, username: str, password: str) -> OAuthUser | None:
        """The user with these credentials, if any (constant-time password compare)."""
        user = self.users.get(username)
        if user is None or not secrets.compare_digest(user.password.encode(), password.encode()):
            return None
        return user

    # -- token endpoint --------------------------------------------------------------------

    def authenticate_client(
        self, form: Mapping[str, str], authorization: str | None
    ) -> OAuthClient:
        """The client from HTTP Basic or ``client_id``/``client_secret`` form fields."""
        client_id = form.get("client_id")
        client_secret = form.get("client_secret")
        if authorization and authorization.lower().startswith("basic "):
            try:
                decoded = base64.b64decode(authorization[6:].strip()).decode()
                basic_id, _, basic_secret = decoded.partition(":")
            except (ValueError, UnicodeDecodeError):
                raise OAuthError("invalid_client", "malformed Basic credentials", 401) from None
            client_id, client_secret = unquote_plus(basic_id), unquote_plus(basic_secret)
        client = self.clients.get(client_id or "")
        if client is None:
            raise OAuthError("invalid_client", "client authentication failed", 401)
        if client.client_secret is not None and (
            client_secret is None
            or not secrets.compare_digest(client.client_secret.encode(), client_secret.encode())
        ):
            raise OAuthError("invalid_client", "client authentication failed", 401)
        return client

    def token(self, form: Mapping[str, str], authorization: str | None = None) -> dict[str, Any]:
        """Handle a token request; the RFC 6749 success body, or raise :class:`OAuthError`."""
        try:
            return self._token(form, authorization)
        except OAuthError as error:
            self.error_counts[error.error] = self.error_counts.get(error.error, 0) + 1
            raise

    def _token(self, form: Mapping[str, str], authorization: str | None) -> dict[str, Any]:
        grant_type = form.get("grant_type")
        if grant_type not in {"authorization_code", "refresh_token", "client_credentials"}:
            raise OAuthError("unsupported_grant_type", "unsupported grant_type")
        client = self.authenticate_client(form, authorization)
        if grant_type not in client.grant_types:
            raise OAuthError("unauthorized_client", f"client may not use {grant_type}")
        if grant_type == "authorization_code":
            body = self._code_grant(client, form)
        elif grant_type == "refresh_token":
            body = self._refresh_grant(client, form)
        else:
            body = self._client_credentials_grant(client, form)
        self.grant_counts[grant_type] = self.grant_counts.get(grant_type, 0) + 1
        return body

    def _code_grant(self, client: OAuthClient, form: Mapping[str, str]) -> dict[str, Any]:
        code_value = form.get("code", "")
        code = self._codes.get(code_value)
        if code is None or code.client_id != client.client_id:
            raise OAuthError("invalid_grant", "unknown authorization code")
        if code.used:
            # RFC 6749 4.1.2: a code used twice revokes what was issued from it.
            for token in code.issued_tokens:
                self._access.pop(token, None)
                self._refresh.pop(token, None)
            raise OAuthError("invalid_grant", "authorization code already used")
        code.used = True
        if self.clock() > code.expires_at:
            raise OAuthError("invalid_grant", "authorization code expired")
        if form.get("redirect_uri") != code.redirect_uri:
            raise OAuthError("invalid_grant", "redirect_uri does not match the authorization")
        if code.code_challenge is not None:
            verifier = form.get("code_verifier")
            if not verifier or not secrets.compare_digest(_s256(verifier), code.code_challenge):
                raise OAuthError("invalid_grant", "PKCE verification failed")
        elif form.get("code_verifier"):
            raise OAuthError("invalid_request", "code_verifier without a code_challenge")
        return self._issue(
            client.client_id, code.subject, code.tenant, code.scopes, code_value, refresh=True
        )

    def _refresh_grant(self, client: OAuthClient, form: Mapping[str, str]) -> dict[str, Any]:
        value = form.get("refresh_token", "")
        # Rotation: the presented token is spent whatever happens next.
        record = self._refresh.pop(value, None)
        if record is None or record.client_id != client.client_id:
            raise OAuthError("invalid_grant", "refresh token is invalid, expired or rotated")
        if self.clock() > record.expires_at:
            raise OAuthError("invalid_grant", "refresh token is invalid, expired or rotated")
        scopes = record.scopes
        if "scope" in form:
            requested = _scopes(form["scope"])
            if not requested <= record.scopes:
                raise OAuthError("invalid_scope", "scope exceeds the original grant")
            scopes = requested
        return self._issue(
            client.client_id, record.subject, record.tenant, scopes, record.code, refresh=True
        )

    def _client_credentials_grant(
        self, client: OAuthClient, form: Mapping[str, str]
    ) -> dict[str, Any]:
        scopes = _scopes(form.get("scope"))
        if client.allowed_scopes is not None and not scopes <= client.allowed_scopes:
            raise OAuthError("invalid_scope", "scope not allowed for this client")
        standard = {"grant_type", "client_id", "client_secret", "scope"}
        extra = {key: value for key, value in form.items() if key not in standard}
        if self.client_credentials_validator is not None:
            grant = self.client_credentials_validator(client, extra, scopes)
        else:
            grant = ClientCredentialsGrant(client.subject or client.client_id, client.tenant)
        # RFC 6749 4.4.3: no refresh token for client credentials.
        return self._issue(client.client_id, grant.subject, grant.tenant, scopes, None, False)

    def _issue(
        self,
        client_id: str,
        subject: str,
        tenant: str | None,
        scopes: frozenset[str],
        code: str | None,
        refresh: bool,
    ) -> dict[str, Any]:
        now = self.clock()
        access = secrets.token_urlsafe(32)
        info = TokenInfo(client_id, subject, tenant, scopes, now + self.access_token_ttl)
        self._access[access] = _AccessToken(info, code)
        body: dict[str, Any] = {
            "access_token": access,
            "token_type": "Bearer",
            "expires_in": int(self.access_token_ttl),
        }
        if scopes:
            body["scope"] = " ".join(sorted(scopes))
        issued = [access]
        wants_refresh = refresh and self.issue_refresh_tokens
        if wants_refresh and self.refresh_requires_offline_access:
            wants_refresh = "offline_access" in scopes
        if wants_refresh:
            refresh_token = secrets.token_urlsafe(32)
            self._refresh[refresh_token] = _RefreshToken(
                client_id, subject, tenant, scopes, now + self.refresh_token_ttl, code
            )
            body["refresh_token"] = refresh_token
            issued.append(refresh_token)
        if code is not None and code in self._codes:
            self._codes[code].issued_tokens.extend(issued)
        return body

    # -- resource side ---------------------------------------------------------------------

    def authenticate(self, bearer: str | None) -> TokenInfo:
        """The token's info; :class:`OAuthTokenInvalid` / :class:`OAuthTokenExpired` else.

        ``bearer`` may be the raw token or the whole ``Authorization`` header value.
        """
        if not bearer:
            raise OAuthTokenInvalid("no bearer token")
        token = bearer[7:].strip() if bearer[:7].lower() == "bearer " else bearer.strip()
        record = self._access.get(token)
        if record is None:
            raise OAuthTokenInvalid("unknown or revoked token")
        if self.clock() >= record.info.expires_at:
            raise OAuthTokenExpired("token expired")
        return record.info

    def expire_all(self) -> None:
        """Expire every access token now (refresh tokens stay valid)."""
        now = self.clock()
        for token, record in self._access.items():
            if record.info.expires_at > now:
                info = record.info
                self._access[token] = _AccessToken(
                    TokenInfo(info.client_id, info.subject, info.tenant, info.scopes, now),
                    record.code,
                )

    def revoke(self, form: Mapping[str, str], authorization: str | None = None) -> None:
        """RFC 7009: revoke a refresh or access token of the authenticated client.

        An unknown token is not an error (7009 2.2); another client's token is left alone.
        """
        client = self.authenticate_client(form, authorization)
        token = form.get("token")
        if not token:
            raise OAuthError("invalid_request", "token is required")
        refresh = self._refresh.get(token)
        if refresh is not None and refresh.client_id == client.client_id:
            del self._refresh[token]
            self.revocations += 1
        access = self._access.get(token)
        if access is not None and access.info.client_id == client.client_id:
            del self._access[token]
            self.revocations += 1

    def revoke_all(self) -> None:
        """Forget every access and refresh token (the grant must be authorised again)."""
        self._access.clear()
        self._refresh.clear()

    def reset(self) -> None:
        """Forget tokens, codes and counters; clients and users stay registered."""
        self.revoke_all()
        self._codes.clear()
        self.browser_sessions.clear()
        self._awaiting_consent.clear()
        self.page_logins = 0
        self.grant_counts.clear()
        self.error_counts.clear()
        self.revocations = 0


# ------------------------------------------------------------------------------------------
# HTTP
# ------------------------------------------------------------------------------------------

_AUTHORIZE_PARAMS = (
    "response_type",
    "client_id",
    "redirect_uri",
    "scope",
    "state",
    "code_challenge",
    "code_challenge_method",
    "prompt",
    "max_age",
)


def _session_cookie(name: str) -> str:
    return "sandbox_login_" + "".join(c for c in name.lower() if c.isalnum())


def _wants_fresh_login(params: Mapping[str, str]) -> bool:
    # OpenID Connect Core 3.1.2.1: prompt=login and max_age=0 both demand a new login.
    return "login" in params.get("prompt", "").split() or params.get("max_age") == "0"


def _consent_page(action: str, params: Mapping[str, str], name: str, handle: str) -> str:
    hidden = "\n".join(
        f'<input type="hidden" name="{key}" value="{html.escape(params[key])}">'
        for key in _AUTHORIZE_PARAMS
        if params.get(key)
    )
    scopes = "".join(
        f"<li>{html.escape(scope)}</li>" for scope in sorted(_scopes(params.get("scope")))
    )
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>{html.escape(name)}: allow access</title></head>
<body>
<h1>Allow {html.escape(params.get("client_id", ""))} to use your account?</h1>
<p>This is a sandbox, not the real service. It asks for:</p>
<ul>{scopes}</ul>
<form method="post" action="{html.escape(action)}">
{hidden}
<input type="hidden" name="consent" value="{html.escape(handle)}">
<button type="submit" name="decision" value="allow">Allow</button>
<button type="submit" name="decision" value="deny">Deny</button>
</form>
</body></html>"""


def _login_page(action: str, params: Mapping[str, str], name: str, error: str = "") -> str:
    hidden = "\n".join(
        f'<input type="hidden" name="{key}" value="{html.escape(params[key])}">'
        for key in _AUTHORIZE_PARAMS
        if params.get(key)
    )
    message = f'<p class="error">{html.escape(error)}</p>' if error else ""
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>{html.escape(name)} sandbox login</title></head>
<body>
<h1>{html.escape(name)} sandbox login</h1>
<p>This is a sandbox, not the real service.</p>
{message}
<form method="post" action="{html.escape(action)}">
{hidden}
<label>User name <input name="username" autocomplete="username"></label>
<label>Password <input name="password" type="password" autocomplete="current-password"></label>
<button type="submit">Log in and allow</button>
</form>
</body></html>"""


def _error_page(name: str, error: OAuthError) -> HTMLResponse:
    body = (
        f"<!doctype html><html><body><h1>{html.escape(name)}: authorization error</h1>"
        f"<p>{html.escape(error.error)}: {html.escape(error.description)}</p></body></html>"
    )
    return HTMLResponse(body, status_code=400)


def redirect_with(uri: str, params: Mapping[str, str | None]) -> RedirectResponse:
    """A 302 to ``uri`` with ``params`` (those that are not None) as its query."""
    query = urlencode({key: value for key, value in params.items() if value is not None})
    return RedirectResponse(f"{uri}?{query}", status_code=302)


async def form_fields(request: Request) -> dict[str, str]:
    """The request's form fields that are text (file parts left out)."""
    return {key: value for key, value in (await request.form()).items() if isinstance(value, str)}


def oauth_router(
    server: OAuthServer,
    *,
    authorize_path: str,
    token_path: str,
    revocation_path: str | None = None,
) -> APIRouter:
    """Routes for the login page (GET/POST ``authorize_path``), the token endpoint and,
    where the vendor has one, the RFC 7009 revocation endpoint."""
    router = APIRouter()

    if revocation_path is not None:

        @router.post(revocation_path, include_in_schema=False)
        async def revoke(request: Request) -> Response:
            form = await form_fields(request)
            try:
                server.revoke(form, request.headers.get("authorization"))
            except OAuthError as error:
                return error.response()
            return Response(status_code=200)

    @router.get(authorize_path, response_class=HTMLResponse, include_in_schema=False)
    async def authorize_page(request: Request) -> Response:
        params = dict(request.query_params)
        try:
            client = server.check_authorization_request(params)
        except OAuthError as error:
            return _error_page(server.name, error)
        try:
            server.check_redirectable(client, params)
        except OAuthError as error:
            return redirect_with(
                client.redirect_uri or "",
                {
                    "error": error.error,
                    "error_description": error.description,
                    "state": params.get("state"),
                },
            )
        known = server.browser_user(request.cookies.get(_session_cookie(server.name)))
        if known is not None and client.consent_page and not _wants_fresh_login(params):
            # A live login-page session: no password, straight to "Allow".
            page = _consent_page(request.url.path, params, server.name, server.await_consent(known))
            return HTMLResponse(page)
        return HTMLResponse(_login_page(request.url.path, params, server.name))

    @router.post(authorize_path, response_class=HTMLResponse, include_in_schema=False)
    async def authorize_submit(request: Request) -> Response:
        form = {
            key: value for key, value in (await request.form()).items() if isinstance(value, str)
        }
        try:
            client = server.check_authorization_request(form)
        except OAuthError as error:
            return _error_page(server.name, error)
        try:
            server.check_redirectable(client, form)
        except OAuthError as error:
            return redirect_with(
                client.redirect_uri or "",
                {
                    "error": error.error,
                    "error_description": error.description,
                    "state": form.get("state"),
                },
            )
        if form.get("consent"):
            consenting = server.consented(form["consent"])
            if consenting is None:
                return _error_page(server.name, OAuthError("invalid_request", "stale consent"))
            if form.get("decision") != "allow":
                return redirect_with(
                    client.redirect_uri or "",
                    {
                        "error": "access_denied",
                        "error_description": "the user denied access",
                        "state": form.get("state"),
                    },
                )
            code = server.issue_code(client, consenting, form)
            return redirect_with(
                client.redirect_uri or "", {"code": code, "state": form.get("state")}
            )
        user = server.login(form.get("username", ""), form.get("password", ""))
        if user is None:
            page = _login_page(request.url.path, form, server.name, "Wrong user name or password")
            return HTMLResponse(page, status_code=401)
        server.page_logins += 1
        cookie = server.start_browser_session(user)
        response: Response
        if client.consent_page:
            handle = server.await_consent(user)
            response = HTMLResponse(_consent_page(request.url.path, form, server.name, handle))
        else:
            code = server.issue_code(client, user, form)
            response = redirect_with(
                client.redirect_uri or "", {"code": code, "state": form.get("state")}
            )
        response.set_cookie(
            _session_cookie(server.name), cookie, httponly=True, samesite="lax", path="/"
        )
        return response

    @router.post(token_path, include_in_schema=False)
    async def token(request: Request) -> Response:
        content_type = request.headers.get("content-type", "")
        if not content_type.startswith("application/x-www-form-urlencoded"):
            return OAuthError(
                "invalid_request", "the token request must be form-encoded"
            ).response()
        form = {
            key: value for key, value in (await request.form()).items() if isinstance(value, str)
        }
        try:
            body = server.token(form, request.headers.get("authorization"))
        except OAuthError as error:
            logger.info(
                "token request refused",
                extra={"oauth_server": server.name, "error": error.error},
            )
            return error.response()
        return JSONResponse(body, headers={"Cache-Control": "no-store", "Pragma": "no-cache"})

    return router
