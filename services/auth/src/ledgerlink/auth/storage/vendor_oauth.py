"""Calls to a vendor's OAuth endpoints: refresh a grant (RFC 6749 6), revoke it (RFC 7009).

Deliberately small and without a client library's own refresh machinery: the token service
decides when and under which lock a refresh happens; this module only makes the call and
says what the vendor answered. Errors are logged by their code, never with parameters.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import httpx
from pydantic import SecretStr

from ledgerlink.auth.config import OAuthProviderSettings

__all__ = ["GrantRefusedError", "RefreshedTokens", "VendorOAuthClient", "VendorUnreachableError"]

logger = logging.getLogger(__name__)


class GrantRefusedError(Exception):
    """The token endpoint refused the grant (``invalid_grant``: the refresh token is dead)."""

    def __init__(self, code: str) -> None:
        super().__init__(f"the vendor refused the grant: {code}")
        self.code = code


class VendorUnreachableError(Exception):
    """The token endpoint did not answer usefully (transport error, 5xx, 429, garbage)."""


@dataclass(frozen=True)
class RefreshedTokens:
    """A token endpoint's answer; ``refresh_token`` None when the vendor does not rotate."""

    access_token: SecretStr
    refresh_token: SecretStr | None
    expires_in: float | None
    scope: str | None


class VendorOAuthClient:
    """Refresh and revoke at a vendor, through one shared ``httpx.AsyncClient``."""

    def __init__(self, http: httpx.AsyncClient, *, timeout: float = 15.0) -> None:
        self._http = http
        self._timeout = timeout

    @property
    def http(self) -> httpx.AsyncClient:
        """The shared client (the 24SevenOffice login goes through it too)."""
        return self._http

    def _client_auth(
        self, provider: OAuthProviderSettings, form: dict[str, str]
    ) -> httpx.BasicAuth | None:
        secret = provider.client_secret.get_secret_value() if provider.client_secret else ""
        if provider.token_endpoint_auth_method == "client_secret_basic":  # noqa: S105
            return httpx.BasicAuth(provider.client_id, secret)
        form["client_id"] = provider.client_id
        if provider.token_endpoint_auth_method == "client_secret_post" and secret:  # noqa: S105
            form["client_secret"] = secret
        return None

    async def refresh(
        self, provider_name: str, provider: OAuthProviderSettings, refresh_token: SecretStr
    ) -> RefreshedTokens:
        """Trade ``refresh_token`` for new tokens."""
        form = {"grant_type": "refresh_token", "refresh_token": refresh_token.get_secret_value()}
        return await self._token_request(
            provider_name, provider, form, self._client_auth(provider, form)
        )

    async def client_credentials(
        self,
        provider_name: str,
        provider: OAuthProviderSettings,
        client_id: str,
        client_secret: SecretStr,
        extra: dict[str, str],
    ) -> RefreshedTokens:
        """A machine token for a connection's own client (Visma Connect: ``tenant_id``)."""
        form = {
            "grant_type": "client_credentials",
            "client_id": client_id,
            "client_secret": client_secret.get_secret_value(),
            **extra,
        }
        return await self._token_request(provider_name, provider, form, None)

    async def _token_request(
        self,
        provider_name: str,
        provider: OAuthProviderSettings,
        form: dict[str, str],
        auth: httpx.BasicAuth | None,
    ) -> RefreshedTokens:
        try:
            response = await self._http.post(
                provider.token_url,
                data=form,
                auth=auth if auth is not None else httpx.USE_CLIENT_DEFAULT,
                headers={"Accept": "application/json"},
                timeout=self._timeout,
            )
        except httpx.TransportError as exc:
            raise VendorUnreachableError(
                f"token endpoint unreachable ({type(exc).__name__})"
            ) from None
        body = _json_object(response)
        if response.status_code == 200 and isinstance(body.get("access_token"), str):
            rotated = body.get("refresh_token")
            expires_in = body.get("expires_in")
            return RefreshedTokens(
                access_token=SecretStr(body["access_token"]),
                refresh_token=SecretStr(rotated) if isinstance(rotated, str) and rotated else None,
                expires_in=float(expires_in) if isinstance(expires_in, int | float) else None,
                scope=body.get("scope") if isinstance(body.get("scope"), str) else None,
            )
        code = body.get("error")
        if response.status_code in (400, 401) and isinstance(code, str):
            logger.info("refresh refused", extra={"provider": provider_name, "error": code})
            raise GrantRefusedError(code)
        raise VendorUnreachableError(f"token endpoint answered HTTP {response.status_code}")

    async def revoke(
        self, provider_name: str, provider: OAuthProviderSettings, token: SecretStr, hint: str
    ) -> bool:
        """Revoke ``token`` (RFC 7009); whether the vendor confirmed it."""
        if provider.revocation_url is None:
            return False
        form = {"token": token.get_secret_value(), "token_type_hint": hint}
        auth = self._client_auth(provider, form)
        try:
            response = await self._http.post(
                provider.revocation_url,
                data=form,
                auth=auth if auth is not None else httpx.USE_CLIENT_DEFAULT,
                timeout=self._timeout,
            )
        except httpx.TransportError as exc:
            logger.warning(
                "revocation failed",
                extra={"provider": provider_name, "error": type(exc).__name__},
            )
            return False
        if response.status_code != 200:
            logger.warning(
                "revocation refused",
                extra={"provider": provider_name, "status": response.status_code},
            )
            return False
        return True


def _json_object(response: httpx.Response) -> Mapping[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}
