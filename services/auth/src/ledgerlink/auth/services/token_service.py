"""The token service: what a connector needs right now, refreshed safely across replicas.

A request is answered, in order of cost:

1. **from memory** when this replica issued the credential recently and it is not near
   expiry (no database access; bounded by ``cache_seconds`` so a status change made by
   another replica is seen soon);
2. **from the store** (one read transaction, no write) when the access token is fresh;
3. **by a refresh**, one per connection at a time:

   * in this process, concurrent requests of one connection share one in-flight refresh
     (5,000 callers do not queue 5,000 transactions);
   * across replicas, the refresh holds ``SELECT ... FOR UPDATE`` on the connection's
     credential row (PostgreSQL; SQLite, dev only, serialises writers), then **re-reads**
     the row: another replica may have refreshed already, and then its token is used;
   * the rotated refresh token and the new access token are **committed before** the access
     token is handed out, so no caller ever holds a token whose refresh token is lost;
   * ``invalid_grant``: the secrets are re-read first (a rotation we lost the race to is
     not a failure); otherwise the connection becomes ``needs_reauth`` with its event.

A caller whose token the vendor refused (HTTP 401) may ask again naming the refused token
by its SHA-256: if it is still the current one, it is refreshed (once for all such callers).

Besides OAuth grants:

* **Netvisor**: the signing identity, the customer's id and key (vault) with our partner id
  and key (settings), handed out as stored; nothing to renew.
* **24SevenOffice**: a live SOAP session. The token service logs in with the stored
  integration user, under the same row lock and re-read as a refresh (one login per
  connection at a time across replicas), keeps the session sealed in the vault and hands
  it out until shortly before ``session_seconds`` after its login, or until a caller
  reports it refused. A refused login is never repeated: the vendor throttles repeated
  logins (seed 004), so a rejected user or password makes the connection
  ``needs_reauth`` (its secrets wiped, so no further attempt is possible) with its event.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from pydantic import SecretStr

from ledgerlink.auth.config import NetvisorPartnerSettings, OAuthProviderSettings
from ledgerlink.auth.domain.clock import Clock, utc_now
from ledgerlink.auth.domain.lifecycle import USABLE, ConnectionStatus, needs_refresh
from ledgerlink.auth.services.lifecycle import SHARED_CREDENTIAL_ATTRIBUTE, LifecycleService
from ledgerlink.auth.storage.models import Connection, ConnectionCredential
from ledgerlink.auth.storage.repository import ConnectionRepository, CredentialRepository
from ledgerlink.auth.storage.twentyfour_login import (
    LoginRefusedError,
    LoginThrottledError,
    LoginUnconfiguredError,
    TwentyFourLoginClient,
)
from ledgerlink.auth.storage.vault import Sealed, Vault
from ledgerlink.auth.storage.vendor_oauth import (
    GrantRefusedError,
    VendorOAuthClient,
    VendorUnreachableError,
)
from ledgerlink.shared.db import Database, as_utc
from ledgerlink.shared.messaging.outbox import Outbox

__all__ = ["CredentialError", "CredentialService", "IssuedCredential", "fingerprint"]

logger = logging.getLogger(__name__)

#: The kinds handed out as they are stored (no token endpoint involved).
_KIND_NAMES = {
    "oauth": "bearer",
    "client_credentials": "bearer",
    "netvisor": "netvisor",
    "twentyfour": "twentyfour_session",
    "nmbrs_token": "nmbrs_token",
}


#: Kinds whose access token the token service renews at the vendor.
_RENEWED_KINDS = frozenset({"oauth", "client_credentials"})
#: Kinds for which the token service logs in and hands out the vendor's session.
_SESSION_KINDS = frozenset({"twentyfour"})

#: The secret a vendor refuses, per issued kind: what a caller's refusal names by SHA-256
#: (``ledgerlink.connectors.credentials.PRIMARY_SECRET`` on the caller's side).
PRIMARY_SECRET = {
    "bearer": "access_token",
    "netvisor": "customer_key",
    "twentyfour_session": "session_id",
    "nmbrs_token": "token",
}


def _public_attributes(credential: ConnectionCredential) -> dict[str, Any]:
    """What the caller sees besides the secrets (a machine grant's client id stays here)."""
    if credential.kind == "client_credentials":
        return {name: value for name, value in credential.attributes.items() if name != "client_id"}
    return dict(credential.attributes)


def fingerprint(secret: str) -> str:
    """SHA-256 (hex) of a token: how a caller names a refused token without sending it."""
    return hashlib.sha256(secret.encode()).hexdigest()


class CredentialError(Exception):
    """A credential cannot be given; ``status`` is the HTTP answer, ``reason_code`` stable."""

    def __init__(self, status: int, reason_code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.reason_code = reason_code
        self.message = message


@dataclass(frozen=True)
class IssuedCredential:
    """What the caller gets: secrets in clear (only in this answer), plain attributes."""

    connection_id: uuid.UUID
    provider: str
    kind: str
    expires_at: datetime | None
    secrets: Mapping[str, SecretStr]
    attributes: Mapping[str, Any] = field(default_factory=dict)

    def is_refused(self, refused_sha256: str | None) -> bool:
        """Whether the caller reports this credential's primary secret as refused."""
        token = self.secrets.get(PRIMARY_SECRET.get(self.kind, "access_token"))
        return (
            refused_sha256 is not None
            and token is not None
            and fingerprint(token.get_secret_value()) == refused_sha256
        )


@dataclass(frozen=True)
class _Cached:
    issued: IssuedCredential
    fresh_until: datetime


class CredentialService:
    """One per process: its memory cache and in-flight refreshes are the process's."""

    def __init__(
        self,
        db: Database,
        vault: Vault,
        vendor: VendorOAuthClient,
        providers: Mapping[str, OAuthProviderSettings],
        outbox: Outbox,
        *,
        refresh_leeway: timedelta,
        cache_for: timedelta,
        netvisor: NetvisorPartnerSettings | None = None,
        twentyfour: TwentyFourLoginClient | None = None,
        session_lifetime: timedelta = timedelta(minutes=20),
        clock: Clock = utc_now,
        on_commit: Callable[[], None] = lambda: None,
    ) -> None:
        self._db = db
        self._vault = vault
        self._vendor = vendor
        self._providers = providers
        self._outbox = outbox
        self._leeway = refresh_leeway
        self._cache_for = cache_for
        self._netvisor = netvisor or NetvisorPartnerSettings()
        self._twentyfour = twentyfour
        self._session_lifetime = session_lifetime
        self._clock = clock
        self.on_commit = on_commit
        self._cache: dict[uuid.UUID, _Cached] = {}
        self._inflight: dict[uuid.UUID, asyncio.Future[IssuedCredential]] = {}
        #: Refreshes this process made at a token endpoint (tests and metrics read it).
        self.refreshes = 0
        #: 24SevenOffice logins this process made (tests and metrics read it).
        self.logins = 0
        #: Called with a connection id whenever it is forgotten (revoked, re-authorised,
        #: no longer usable), so whatever an entrypoint keeps of its answer goes too.
        self.forget_listeners: list[Callable[[uuid.UUID], None]] = []

    def forget(self, connection_id: uuid.UUID) -> None:
        """Drop what this process remembers of the connection (revoked, re-authorised)."""
        self._cache.pop(connection_id, None)
        for listener in self.forget_listeners:
            listener(connection_id)

    async def credentials(
        self, connection_id: uuid.UUID, *, refused_sha256: str | None = None
    ) -> IssuedCredential:
        """A credential usable now; see the module docstring."""
        cached = self._cache.get(connection_id)
        if (
            cached is not None
            and self._clock() < cached.fresh_until
            and not cached.issued.is_refused(refused_sha256)
        ):
            return cached.issued
        issued = await self._shared_load(connection_id, refused_sha256)
        if issued.is_refused(refused_sha256):
            # The shared load had started before this caller's refusal was known.
            issued = await self._shared_load(connection_id, refused_sha256)
        return issued

    async def _shared_load(
        self, connection_id: uuid.UUID, refused_sha256: str | None
    ) -> IssuedCredential:
        task = self._inflight.get(connection_id)
        if task is None:
            task = asyncio.ensure_future(self._load(connection_id, refused_sha256))
            self._inflight[connection_id] = task

            def done(finished: asyncio.Future[IssuedCredential]) -> None:
                if self._inflight.get(connection_id) is finished:
                    del self._inflight[connection_id]
                if not finished.cancelled():
                    finished.exception()  # retrieved: waiters re-raise it themselves

            task.add_done_callback(done)
        # Shielded: one caller giving up must not cancel the refresh the others wait for.
        return await asyncio.shield(task)

    async def _load(self, connection_id: uuid.UUID, refused_sha256: str | None) -> IssuedCredential:
        async with self._db.transaction() as session:
            connection = await ConnectionRepository(session).get(connection_id)
            credential, secrets = await self._usable(session, connection, connection_id)
            assert connection is not None
            holder = credential.attributes.get(SHARED_CREDENTIAL_ATTRIBUTE)
            if holder is None:
                issued = self._issue(connection, credential, secrets)
        if holder is not None:
            # One vendor grant for several companies (a Visma Connect login reaching many
            # administrations): the holder's token, with this connection's own facts.
            shared = await self.credentials(uuid.UUID(holder), refused_sha256=refused_sha256)
            own = {
                k: v for k, v in credential.attributes.items() if k != SHARED_CREDENTIAL_ATTRIBUTE
            }
            return self._remember(
                replace(
                    shared, connection_id=connection_id, attributes={**shared.attributes, **own}
                )
            )
        if not self._wants_refresh(credential, issued, refused_sha256):
            return self._remember(issued)
        if credential.kind in _SESSION_KINDS:
            return await self._login(connection_id, refused_sha256)
        return await self._refresh(connection_id, refused_sha256)

    def _wants_refresh(
        self, credential: ConnectionCredential, issued: IssuedCredential, refused: str | None
    ) -> bool:
        if credential.kind in _SESSION_KINDS:
            if "session_id" not in issued.secrets:
                return True  # never logged in yet
        elif credential.kind not in _RENEWED_KINDS:
            return False
        elif "access_token" not in issued.secrets:
            return True  # a machine grant not fetched yet
        expires_at = as_utc(credential.access_expires_at) if credential.access_expires_at else None
        return needs_refresh(expires_at, self._clock(), self._leeway) or issued.is_refused(refused)

    async def _usable(
        self, session: Any, connection: Connection | None, connection_id: uuid.UUID
    ) -> tuple[ConnectionCredential, dict[str, Sealed]]:
        if connection is None:
            self.forget(connection_id)
            raise CredentialError(404, "not_found", f"no connection {connection_id}")
        if connection.status not in USABLE:
            self.forget(connection_id)
            raise CredentialError(
                409,
                f"connection_{connection.status.value}",
                f"the connection is {connection.status.value}"
                + (
                    ": a person must authorise it again"
                    if connection.status == ConnectionStatus.NEEDS_REAUTH
                    else ""
                ),
            )
        credentials = CredentialRepository(session)
        credential = await credentials.get(connection_id)
        if credential is None:
            raise CredentialError(409, "no_credential", "the connection holds no credential")
        return credential, await credentials.secrets(connection_id)

    async def _refresh(
        self, connection_id: uuid.UUID, refused_sha256: str | None
    ) -> IssuedCredential:
        needs_reauth = False
        async with self._db.transaction() as session:
            credentials = CredentialRepository(session)
            # The lock first, then everything read again: another replica may have
            # refreshed while this one waited for the lock. Lock order everywhere: the
            # credential row, then the connection row (revocation does the same), so a
            # refresh and a revocation never deadlock; the connection's lock keeps a
            # revocation from being overwritten by needs_reauth.
            await credentials.get(connection_id, lock=True)
            connection = await ConnectionRepository(session).get(connection_id, lock=True)
            credential, secrets = await self._usable(session, connection, connection_id)
            assert connection is not None
            current = self._issue(connection, credential, secrets)
            if not self._wants_refresh(credential, current, refused_sha256):
                return self._remember(current)
            provider = self._providers.get(connection.provider)
            if provider is None:
                raise CredentialError(
                    503,
                    "refresh_unavailable",
                    f"the access token is due and no OAuth client is configured for "
                    f"{connection.provider}",
                )
            machine = credential.kind == "client_credentials"
            # What is kept besides the access token: the rotating refresh token, or the
            # connection's own client secret.
            kept_field = "client_secret" if machine else "refresh_token"
            kept = secrets.get(kept_field)
            if kept is None:
                raise CredentialError(
                    503,
                    "refresh_unavailable",
                    "the access token is due and there is no refresh token to renew it",
                )
            kept_clear = self._vault.open(connection_id, kept_field, kept)
            try:
                if machine:
                    extra = {
                        name: str(credential.attributes[name])
                        for name in ("tenant_id", "scope")
                        if credential.attributes.get(name)
                    }
                    tokens = await self._vendor.client_credentials(
                        connection.provider,
                        provider,
                        str(credential.attributes["client_id"]),
                        kept_clear,
                        extra,
                    )
                else:
                    tokens = await self._vendor.refresh(connection.provider, provider, kept_clear)
            except GrantRefusedError as refused:
                if not machine and refused.code != "invalid_grant":
                    raise CredentialError(
                        502, "vendor_refused", f"the vendor refused the refresh ({refused.code})"
                    ) from None
                # A lost race is not a failure: if the stored refresh token changed, the
                # winner's tokens are the answer.
                again = await credentials.secrets(connection_id)
                if again.get(kept_field) != kept:
                    return self._remember(self._issue(connection, credential, again))
                # Refresh token dead, or the connection's client secret refused.
                await LifecycleService(session, self._outbox, clock=self._clock).mark_needs_reauth(
                    connection, refused.code
                )
                needs_reauth = True
            except VendorUnreachableError as exc:
                expires_at = current.expires_at
                if expires_at is not None and self._clock() < expires_at:
                    # Proactive refresh failed; the token still works for a while.
                    logger.warning(
                        "refresh failed; the current token is still valid",
                        extra={"connection_id": str(connection_id), "error": str(exc)},
                    )
                    return current
                raise CredentialError(503, "vendor_unavailable", str(exc)) from None
            else:
                now = self._clock()
                renewed = (tokens.refresh_token if not machine else None) or kept_clear
                sealed = {
                    "access_token": self._vault.seal(
                        connection_id, "access_token", tokens.access_token
                    ),
                    kept_field: self._vault.seal(connection_id, kept_field, renewed),
                }
                await credentials.replace_secrets(connection_id, sealed, now)
                credential.access_expires_at = (
                    now + timedelta(seconds=tokens.expires_in) if tokens.expires_in else None
                )
                credential.refreshed_at = now
                credential.refresh_count += 1
                credential.updated_at = now
                await session.flush()
                self.refreshes += 1
                issued = IssuedCredential(
                    connection_id=connection_id,
                    provider=connection.provider,
                    kind="bearer",
                    expires_at=credential.access_expires_at,
                    secrets={"access_token": tokens.access_token},
                    attributes=_public_attributes(credential),
                )
        # The transaction above has committed here, by design before the new access token
        # leaves: had it rolled back, the vendor would hold a rotated refresh token we lost.
        if needs_reauth:
            self.forget(connection_id)
            self.on_commit()
            raise CredentialError(
                409,
                "connection_needs_reauth",
                "the vendor refused the connection's grant: a person must authorise it again",
            )
        logger.info("access token refreshed", extra={"connection_id": str(connection_id)})
        return self._remember(issued)

    async def _login(
        self, connection_id: uuid.UUID, refused_sha256: str | None
    ) -> IssuedCredential:
        """A new 24SevenOffice session, one login per connection at a time (see the module
        docstring); the same lock order and re-read as :meth:`_refresh`."""
        refusal: str | None = None
        async with self._db.transaction() as session:
            credentials = CredentialRepository(session)
            await credentials.get(connection_id, lock=True)
            connection = await ConnectionRepository(session).get(connection_id, lock=True)
            credential, secrets = await self._usable(session, connection, connection_id)
            assert connection is not None
            current = self._issue(connection, credential, secrets)
            if not self._wants_refresh(credential, current, refused_sha256):
                return self._remember(current)  # another replica logged in meanwhile
            password = secrets.get("password")
            if password is None:
                raise CredentialError(409, "no_credential", "no integration user is stored")
            if self._twentyfour is None:
                raise CredentialError(
                    503, "login_unconfigured", "no 24SevenOffice login is configured"
                )
            identity = credential.attributes.get("identity_id")
            try:
                session_id = await self._twentyfour.login(
                    str(credential.attributes.get("username") or ""),
                    self._vault.open(connection_id, "password", password),
                    str(identity) if identity else None,
                )
            except LoginRefusedError as refused:
                # Never tried again: the secrets go with needs_reauth, so no caller can
                # make another failed login count against the user at the vendor.
                await LifecycleService(session, self._outbox, clock=self._clock).mark_needs_reauth(
                    connection, refused.reason_code
                )
                refusal = refused.reason_code
            except LoginThrottledError as throttled:
                wait = f"{throttled.retry_after:.0f} s" if throttled.retry_after else "a while"
                raise CredentialError(
                    503,
                    "vendor_throttled",
                    f"24SevenOffice throttles this user's logins; ask again in {wait}",
                ) from None
            except LoginUnconfiguredError as exc:
                logger.error(
                    "24SevenOffice login not possible", extra={"connection_id": str(connection_id)}
                )
                raise CredentialError(503, "login_unconfigured", str(exc)) from None
            except VendorUnreachableError as exc:
                expires_at = current.expires_at
                if (
                    "session_id" in current.secrets
                    and expires_at is not None
                    and self._clock() < expires_at
                    and not current.is_refused(refused_sha256)
                ):
                    return current  # an early renewal failed; the session still works
                raise CredentialError(503, "vendor_unavailable", str(exc)) from None
            else:
                now = self._clock()
                await credentials.replace_secrets(
                    connection_id,
                    {
                        "password": password,
                        "session_id": self._vault.seal(connection_id, "session_id", session_id),
                    },
                    now,
                )
                credential.access_expires_at = now + self._session_lifetime
                credential.refreshed_at = now
                credential.refresh_count += 1
                credential.updated_at = now
                await session.flush()
                self.logins += 1
                issued = IssuedCredential(
                    connection_id=connection_id,
                    provider=connection.provider,
                    kind=_KIND_NAMES["twentyfour"],
                    expires_at=credential.access_expires_at,
                    secrets={"session_id": session_id},
                    attributes=_public_attributes(credential),
                )
        if refusal is not None:
            self.forget(connection_id)
            self.on_commit()
            raise CredentialError(
                409,
                "connection_needs_reauth",
                f"24SevenOffice refused the integration user's login ({refusal}): a person "
                "must enter it again",
            )
        logger.info("24SevenOffice session opened", extra={"connection_id": str(connection_id)})
        return self._remember(issued)

    def _issue(
        self,
        connection: Connection,
        credential: ConnectionCredential,
        secrets: Mapping[str, Sealed],
    ) -> IssuedCredential:
        if credential.kind in _RENEWED_KINDS:
            wanted: tuple[str, ...] = ("access_token",)
        elif credential.kind in _SESSION_KINDS:
            wanted = ("session_id",)  # never the password: only auth logs in
        else:
            wanted = tuple(secrets)
        opened = {
            name: self._vault.open(connection.id, name, secrets[name])
            for name in wanted
            if name in secrets
        }
        attributes = _public_attributes(credential)
        if credential.kind == "netvisor":
            opened, attributes = self._netvisor_identity(opened, attributes)
        return IssuedCredential(
            connection_id=connection.id,
            provider=connection.provider,
            kind=_KIND_NAMES.get(credential.kind, credential.kind),
            expires_at=as_utc(credential.access_expires_at)
            if credential.access_expires_at
            else None,
            secrets=opened,
            attributes=attributes,
        )

    def _netvisor_identity(
        self, opened: dict[str, SecretStr], attributes: dict[str, Any]
    ) -> tuple[dict[str, SecretStr], dict[str, Any]]:
        """The customer's identity plus our partner identity: all the connector signs with.

        Our partner id and key come from auth's settings rather than the caller's, so the
        partner key, like every other vendor secret, is held by auth alone and rotated in
        one place; callers keep the whole identity in memory only.
        """
        partner = self._netvisor
        if partner.partner_id is None or partner.partner_key is None:
            raise CredentialError(
                503,
                "partner_unconfigured",
                "auth has no Netvisor partner identity (NETVISOR__PARTNER_ID/PARTNER_KEY)",
            )
        return (
            {**opened, "partner_key": partner.partner_key},
            {**attributes, "partner_id": partner.partner_id},
        )

    def _remember(self, issued: IssuedCredential) -> IssuedCredential:
        fresh_until = self._clock() + self._cache_for
        if issued.expires_at is not None:
            fresh_until = min(fresh_until, issued.expires_at - self._leeway)
        self._cache[issued.connection_id] = _Cached(issued, fresh_until)
        return issued
