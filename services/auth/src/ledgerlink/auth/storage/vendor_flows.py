"""Live vendor calls of the connection pages: Visma Connect's code exchange and the
companies a Visma.net token reaches, a 24SevenOffice integration user's login, an Nmbrs
API user's token check. Secrets stay ``SecretStr``; errors are logged by code only."""

from __future__ import annotations

import base64
import hashlib
import logging
import secrets
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import httpx
from pydantic import SecretStr

from ledgerlink.auth.config import (
    NmbrsFlowSettings,
    TwentyFourLoginSettings,
    VismaConnectFlowSettings,
)
from ledgerlink.connectors.errors import AuthenticationFailed, ConnectorError, RateLimited
from ledgerlink.connectors.http import RetryPolicy
from ledgerlink.connectors.nmbrs import NmbrsConnector, NmbrsSettings
from ledgerlink.connectors.twentyfour import TwentyFourConnector, TwentyFourSettings

logger = logging.getLogger(__name__)

#: A person waits on the page: one attempt, and a refused login is never repeated.
_ONCE = RetryPolicy(attempts=1)


class VendorRefusedError(Exception):
    """The vendor said no; ``code`` is stable (``invalid_grant``, ``credentials``, ...)."""

    def __init__(self, code: str, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.retry_after = retry_after


class VendorDownError(Exception):
    """The vendor could not be reached or answered nonsense."""


@dataclass(frozen=True)
class GrantedTokens:
    """A Visma Connect token answer."""

    access_token: SecretStr
    refresh_token: SecretStr | None
    expires_in: float | None
    scope: str | None


@dataclass(frozen=True)
class VendorCompany:
    """A company (administration, client) a credential reaches."""

    external_id: str
    name: str
    business_id: str | None = None


def pkce_pair() -> tuple[str, str]:
    """A PKCE verifier and its S256 challenge (RFC 7636 4.1, 4.2)."""
    verifier = secrets.token_urlsafe(48)
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


class VismaConnectClient:
    """Our interactive client at Visma Connect and the ERP API's context list."""

    def __init__(self, settings: VismaConnectFlowSettings, http: httpx.AsyncClient) -> None:
        self.settings = settings
        self._http = http

    def authorize_url(
        self, *, state: str, challenge: str, redirect_uri: str, fresh_login: bool
    ) -> str:
        """Where to send the person (code flow with PKCE S256).

        ``fresh_login``: OpenID Connect Core 3.1.2.1 ``prompt=login`` and ``max_age=0``, so an
        existing Visma session is not reused (seed 003: sign out of Visma.net first, or an
        error is shown).
        """
        query = {
            "response_type": "code",
            "client_id": self.settings.client_id,
            "redirect_uri": redirect_uri,
            "scope": self.settings.scope,
            "state": state,
            "code_challenge": challenge,
            "code_challenge_method": "S256",
        }
        if fresh_login:
            query.update({"prompt": "login", "max_age": "0"})
        return f"{self.settings.authorize_url}?{urlencode(query)}"

    async def exchange(self, code: str, verifier: str, redirect_uri: str) -> GrantedTokens:
        """Trade the code (RFC 6749 4.1.3, client_secret_post, PKCE verifier)."""
        return await self._token(
            {
                "grant_type": "authorization_code",
                "code": code,
                "redirect_uri": redirect_uri,
                "code_verifier": verifier,
            }
        )

    async def refresh(self, refresh_token: SecretStr) -> GrantedTokens:
        """Trade a refresh token (RFC 6749 6); ``invalid_grant``: ask the person again."""
        return await self._token(
            {"grant_type": "refresh_token", "refresh_token": refresh_token.get_secret_value()}
        )

    async def _token(self, form: dict[str, str]) -> GrantedTokens:
        form = {
            **form,
            "client_id": self.settings.client_id,
            "client_secret": self.settings.client_secret.get_secret_value(),
        }
        try:
            response = await self._http.post(
                self.settings.token_url, data=form, headers={"Accept": "application/json"}
            )
        except httpx.TransportError as error:
            raise VendorDownError(f"Visma Connect unreachable ({type(error).__name__})") from None
        body = _json(response)
        token = body.get("access_token")
        if response.status_code == 200 and isinstance(token, str):
            refresh = body.get("refresh_token")
            expires = body.get("expires_in")
            scope = body.get("scope")
            return GrantedTokens(
                access_token=SecretStr(token),
                refresh_token=SecretStr(refresh) if isinstance(refresh, str) else None,
                expires_in=float(expires) if isinstance(expires, int | float) else None,
                scope=scope if isinstance(scope, str) else None,
            )
        refused = body.get("error")
        if response.status_code in (400, 401) and isinstance(refused, str):
            logger.info("visma connect refused", extra={"error": refused})
            raise VendorRefusedError(refused, "Visma Connect refused the authorization")
        raise VendorDownError(f"Visma Connect answered HTTP {response.status_code}")

    async def companies(self, access_token: SecretStr) -> list[VendorCompany]:
        """``GET /resources/v1/context``: "the companies available for this token"
        (Visma.net API, ContextApi; ContextInformation ``id``, ``name``, ``type``).

        UNCONFIRMED: documented on ``integration.visma.net/API``; that the newer
        ``api.finance.visma.net`` host answers it the same is not published.
        """
        url = f"{self.settings.api_base_url.rstrip('/')}/resources/v1/context"
        try:
            response = await self._http.get(
                url,
                headers={
                    "Authorization": f"Bearer {access_token.get_secret_value()}",
                    "Accept": "application/json",
                },
            )
        except httpx.TransportError as error:
            raise VendorDownError(f"Visma.net unreachable ({type(error).__name__})") from None
        if response.status_code == 401:
            raise VendorRefusedError("invalid_token", "Visma.net refused the token")
        if response.status_code != 200:
            raise VendorDownError(f"Visma.net answered HTTP {response.status_code}")
        try:
            rows = response.json()
        except ValueError:
            raise VendorDownError("Visma.net answered something that is not JSON") from None
        if not isinstance(rows, list):
            raise VendorDownError("Visma.net's context list is not a list")
        return [
            VendorCompany(str(row["id"]), str(row.get("name") or row["id"]))
            for row in rows
            if isinstance(row, dict) and row.get("id") is not None
        ]


def _json(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


@dataclass(frozen=True)
class TwentyFourLoginResult:
    """What a successful integration-user login showed."""

    transaction_types: list[tuple[int, str]]
    #: (client id, name): the clients the integration user was given access to.
    clients: list[tuple[str, str]]


class TwentyFourClient:
    """Log an integration user in at 24SevenOffice (SOAP Authenticate service: ``Login``
    with ``credential{ApplicationId, Username, Password}``, then ``GetIdentities``) and read
    the transaction types (TransactionService ``GetTransactionTypes``)."""

    def __init__(
        self,
        settings: TwentyFourLoginSettings,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.settings = settings
        self._transport = transport

    async def login(self, username: str, password: SecretStr) -> TwentyFourLoginResult:
        """Log in once (no retry: a refused login is the person's to correct)."""
        application_id = self.settings.application_id
        if application_id is None:
            raise VendorDownError("24SevenOffice logins are not configured (no ApplicationId)")
        connector = TwentyFourConnector(
            TwentyFourSettings(
                application_id=application_id,
                username=username,
                password=password,
                soap_base_url=self.settings.soap_base_url,
            ),
            retry=_ONCE,
            transport=self._transport,
        )
        try:
            companies = await connector.list_companies()
            types = await connector.read_transaction_types()
        except RateLimited as error:
            raise VendorRefusedError(
                "throttled", "24SevenOffice throttled the login", retry_after=error.retry_after
            ) from None
        except AuthenticationFailed:
            raise VendorRefusedError("credentials", "24SevenOffice refused the login") from None
        except ConnectorError as error:
            logger.info("24sevenoffice login failed", extra={"error": type(error).__name__})
            raise VendorDownError("24SevenOffice could not be used") from None
        finally:
            await connector.aclose()
        return TwentyFourLoginResult(
            transaction_types=[(item.no, item.title) for item in types],
            clients=[(company.external_id, company.name) for company in companies],
        )


class NmbrsClient:
    """Check an Nmbrs API user's token (SOAP v3 ``AuthHeaderWithDomain{Username, Token,
    Domain}``, Nmbrs API docs) by listing the companies it reaches (``List_GetAll``)."""

    def __init__(
        self, settings: NmbrsFlowSettings, transport: httpx.AsyncBaseTransport | None = None
    ) -> None:
        self.settings = settings
        self._transport = transport

    async def companies(self, username: str, token: SecretStr, domain: str) -> list[VendorCompany]:
        """The companies, or :class:`VendorRefusedError` (``credentials``)."""
        connector = NmbrsConnector(
            NmbrsSettings(
                base_url=self.settings.soap_base_url,
                username=username,
                token=token,
                domain=domain,
            ),
            retry=_ONCE,
            transport=self._transport,
        )
        try:
            found = await connector.list_companies()
        except AuthenticationFailed:
            raise VendorRefusedError("credentials", "Nmbrs refused the token") from None
        except ConnectorError as error:
            logger.info("nmbrs check failed", extra={"error": type(error).__name__})
            raise VendorDownError("Nmbrs could not be used") from None
        finally:
            await connector.aclose()
        return [VendorCompany(c.external_id, c.name, c.business_id) for c in found]
