"""The connection lifecycle: authorization results in, status changes and their events out.

Runs inside the caller's transaction (a request or a consumed event); every status change
goes through :func:`ledgerlink.auth.domain.lifecycle.check_transition` and leaves one event
in the outbox, committed with it.
"""

from __future__ import annotations

import logging
import uuid
from datetime import timedelta
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr
from sqlalchemy.ext.asyncio import AsyncSession

from ledgerlink.auth.domain.clock import Clock, utc_now
from ledgerlink.auth.domain.lifecycle import (
    ConnectionStatus,
    activation_expired,
    check_transition,
    status_after_authorization,
)
from ledgerlink.auth.storage.models import Connection, ConnectionCredential
from ledgerlink.auth.storage.repository import ConnectionRepository, CredentialRepository
from ledgerlink.auth.storage.vault import Sealed, Vault
from ledgerlink.shared.db import as_utc
from ledgerlink.shared.events import (
    ConnectionActivatedV1,
    ConnectionAuthorizationStartedV1,
    ConnectionConfiguredV1,
    ConnectionExpiredV1,
    ConnectionNeedsReauthV1,
    ConnectionReauthorizedV1,
    ConnectionRevokedV1,
    EventData,
    Provider,
)
from ledgerlink.shared.messaging.outbox import Outbox

logger = logging.getLogger(__name__)


class _Result(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    #: Who authorised at the vendor (Visma tenant, Netvisor customer, Nmbrs domain...):
    #: a re-authorization must come from the same account.
    vendor_account: str = Field(min_length=1, max_length=300)


class OAuthAuthorization(_Result):
    """Tokens after an authorization code exchange (Procountor, Visma.net, Nmbrs REST)."""

    kind: Literal["oauth"] = "oauth"
    access_token: SecretStr
    refresh_token: SecretStr | None = None
    expires_in: float | None = Field(default=None, ge=0, description="Seconds from now.")
    scope: str | None = Field(default=None, max_length=2000)


class NetvisorAuthorization(_Result):
    """A Netvisor customer's integration identity (the key signs every request)."""

    kind: Literal["netvisor"] = "netvisor"
    customer_id: str = Field(min_length=1, max_length=200)
    customer_key: SecretStr
    organisation_id: str | None = Field(default=None, max_length=32)


class TwentyFourAuthorization(_Result):
    """A 24SevenOffice integration user."""

    kind: Literal["twentyfour"] = "twentyfour"
    username: str = Field(min_length=1, max_length=300)
    password: SecretStr
    identity_id: str | None = Field(default=None, max_length=200)


class NmbrsTokenAuthorization(_Result):
    """An Nmbrs API user's token (SOAP)."""

    kind: Literal["nmbrs_token"] = "nmbrs_token"
    username: str = Field(min_length=1, max_length=300)
    domain: str = Field(min_length=1, max_length=300)
    token: SecretStr


class ClientCredentialsAuthorization(_Result):
    """A connection's own OAuth client for machine access (Visma.net service API: the
    customer's ``tenant_id``); the token service fetches and renews its tokens."""

    kind: Literal["client_credentials"] = "client_credentials"
    client_id: str = Field(min_length=1, max_length=300)
    client_secret: SecretStr
    tenant_id: str | None = Field(default=None, max_length=200)
    scope: str | None = Field(default=None, max_length=2000)


AnyAuthorization = (
    OAuthAuthorization
    | ClientCredentialsAuthorization
    | NetvisorAuthorization
    | TwentyFourAuthorization
    | NmbrsTokenAuthorization
)
AuthorizationResult = Annotated[AnyAuthorization, Field(discriminator="kind")]

#: Which kinds of authorization each provider takes.
KINDS_OF_PROVIDER: dict[str, frozenset[str]] = {
    Provider.PROCOUNTOR.value: frozenset({"oauth"}),
    Provider.VISMA_NET.value: frozenset({"oauth", "client_credentials"}),
    Provider.NMBRS.value: frozenset({"oauth", "nmbrs_token"}),
    Provider.NETVISOR.value: frozenset({"netvisor"}),
    Provider.TWENTYFOUR_SEVEN_OFFICE.value: frozenset({"twentyfour"}),
}


def split_result(
    result: AnyAuthorization,
) -> tuple[dict[str, SecretStr], dict[str, str]]:
    """The secrets (to seal) and the plain attributes of an authorization result."""
    if isinstance(result, OAuthAuthorization):
        secrets = {"access_token": result.access_token}
        if result.refresh_token is not None:
            secrets["refresh_token"] = result.refresh_token
        return secrets, ({"scope": result.scope} if result.scope else {})
    if isinstance(result, ClientCredentialsAuthorization):
        attributes = {"client_id": result.client_id}
        if result.tenant_id:
            attributes["tenant_id"] = result.tenant_id
        if result.scope:
            attributes["scope"] = result.scope
        return {"client_secret": result.client_secret}, attributes
    if isinstance(result, NetvisorAuthorization):
        attributes = {"customer_id": result.customer_id}
        if result.organisation_id:
            attributes["organisation_id"] = result.organisation_id
        return {"customer_key": result.customer_key}, attributes
    if isinstance(result, TwentyFourAuthorization):
        attributes = {"username": result.username}
        if result.identity_id:
            attributes["identity_id"] = result.identity_id
        return {"password": result.password}, attributes
    return {"token": result.token}, {"username": result.username, "domain": result.domain}


#: Attribute of a credential kept on another connection (see complete_authorization).
SHARED_CREDENTIAL_ATTRIBUTE = "credential_of"


class LifecycleError(Exception):
    """A lifecycle request that cannot be honoured; ``reason_code`` is stable."""

    def __init__(self, reason_code: str, message: str, *, status: int = 409) -> None:
        super().__init__(message)
        self.reason_code = reason_code
        self.message = message
        self.status = status


class ConnectionNotFoundError(LifecycleError):
    """No such connection."""

    def __init__(self, connection_id: uuid.UUID) -> None:
        super().__init__("not_found", f"no connection {connection_id}", status=404)


def change_event(
    model: type[EventData], connection: Connection, previous: ConnectionStatus, **fields: object
) -> EventData:
    """A lifecycle event about ``connection`` leaving ``previous``."""
    return model.model_validate(
        {
            "connection_id": connection.id,
            "environment_id": connection.environment_id,
            "provider": connection.provider,
            "business_id": connection.business_id,
            "previous_status": previous.value,
            **fields,
        }
    )


class LifecycleService:
    """Status changes of connections; see the module docstring."""

    def __init__(
        self,
        session: AsyncSession,
        outbox: Outbox,
        *,
        vault: Vault | None = None,
        clock: Clock = utc_now,
    ) -> None:
        self._session = session
        self._outbox = outbox
        self._vault = vault
        self._clock = clock
        self._connections = ConnectionRepository(session)
        self._credentials = CredentialRepository(session)

    async def _change(
        self, connection: Connection, wanted: ConnectionStatus, event: EventData | None
    ) -> None:
        check_transition(connection.status, wanted)
        connection.status = wanted
        connection.updated_at = self._clock()
        if event is not None:
            await self._outbox.add(
                self._session, event, key=connection.business_id, subject=str(connection.id)
            )
        await self._session.flush()
        logger.info(
            "connection status changed",
            extra={"connection_id": str(connection.id), "status": wanted.value},
        )

    async def _get(self, connection_id: uuid.UUID) -> Connection:
        connection = await self._connections.get(connection_id, lock=True)
        if connection is None:
            raise ConnectionNotFoundError(connection_id)
        return connection

    async def begin_authorization(self, connection_id: uuid.UUID) -> Connection:
        """A person was sent to the vendor: ``authorizing``."""
        connection = await self._get(connection_id)
        previous = connection.status
        if previous == ConnectionStatus.AUTHORIZING:
            return connection
        self._refuse_unless(connection, ConnectionStatus.AUTHORIZING)
        await self._change(
            connection,
            ConnectionStatus.AUTHORIZING,
            change_event(ConnectionAuthorizationStartedV1, connection, previous),
        )
        return connection

    async def complete_authorization(
        self,
        connection_id: uuid.UUID,
        result: AnyAuthorization,
        *,
        attributes: dict[str, str] | None = None,
        shares_credential_of: uuid.UUID | None = None,
    ) -> Connection:
        """Store the vendor's answer in the vault and move the connection on.

        First authorization: ``-> authorizing -> configuring`` and ``connection.activated``
        (the importer starts the first import on it). Re-authorization of a
        ``needs_reauth`` connection: same id, only from the vendor account first connected.
        """
        assert self._vault is not None, "complete_authorization needs the vault"
        connection = await self._get(connection_id)
        if result.kind not in KINDS_OF_PROVIDER.get(connection.provider, frozenset()):
            raise LifecycleError(
                "wrong_credential_kind",
                f"a {connection.provider} connection is not authorised with {result.kind!r}",
                status=422,
            )
        if connection.vendor_account is not None and connection.vendor_account != (
            result.vendor_account
        ):
            raise LifecycleError(
                "vendor_account_mismatch",
                "this connection was authorised by another vendor account; re-authorise with "
                "the account first connected, or revoke it and activate a new connection",
            )
        previous = connection.status
        if previous == ConnectionStatus.PENDING_AUTHORIZATION:
            await self.begin_authorization(connection_id)
        self._refuse_unless(connection, ConnectionStatus.CONFIGURING)
        await self._store_credential(
            connection.id, result, dict(attributes or {}), shares_credential_of
        )
        connection.vendor_account = result.vendor_account
        connection.reason_code = None
        connection.message = None
        if previous == ConnectionStatus.NEEDS_REAUTH:
            wanted = status_after_authorization(
                previous, first_import_done=connection.first_import_completed_at is not None
            )
            await self._change(
                connection,
                wanted,
                change_event(ConnectionReauthorizedV1, connection, previous, status=wanted.value),
            )
            return connection
        await self._change(connection, ConnectionStatus.CONFIGURING, None)
        assert connection.environment_id is not None  # only rejected connections lack one
        await self._outbox.add(
            self._session,
            ConnectionActivatedV1(
                connection_id=connection.id,
                environment_id=connection.environment_id,
                provider=Provider(connection.provider),
                business_id=connection.business_id,
                company_name=connection.company_name,
                # 24SevenOffice: the transaction type chosen on the API keys page, the
                # importer's default for anything written to the company (seed 004).
                transaction_type=(attributes or {}).get("transaction_type"),
            ),
            key=connection.business_id,
            subject=str(connection.id),
        )
        return connection

    def _refuse_unless(self, connection: Connection, wanted: ConnectionStatus) -> None:
        allowed = {
            ConnectionStatus.AUTHORIZING: {ConnectionStatus.PENDING_AUTHORIZATION},
            ConnectionStatus.CONFIGURING: {
                ConnectionStatus.AUTHORIZING,
                ConnectionStatus.NEEDS_REAUTH,
            },
        }[wanted]
        if connection.status not in allowed:
            raise LifecycleError(
                f"connection_{connection.status.value}",
                f"the connection is {connection.status.value}: it cannot be authorised now",
            )

    async def _store_credential(
        self,
        connection_id: uuid.UUID,
        result: AnyAuthorization,
        extra: dict[str, str],
        shares_credential_of: uuid.UUID | None,
    ) -> None:
        assert self._vault is not None
        now = self._clock()
        secrets, attributes = split_result(result)
        attributes = {**attributes, **extra}
        if shares_credential_of is not None:
            secrets = {}
            attributes[SHARED_CREDENTIAL_ATTRIBUTE] = str(shares_credential_of)
        sealed: dict[str, Sealed] = {
            field: self._vault.seal(connection_id, field, value) for field, value in secrets.items()
        }
        expires_at = None
        if isinstance(result, OAuthAuthorization) and result.expires_in is not None:
            expires_at = now + timedelta(seconds=result.expires_in)
        await self._credentials.replace_secrets(connection_id, sealed, now)
        await self._credentials.save(
            ConnectionCredential(
                connection_id=connection_id,
                kind=result.kind,
                attributes=attributes,
                access_expires_at=expires_at,
                refreshed_at=None,
                refresh_count=0,
                updated_at=now,
            )
        )

    async def import_completed(self, connection_id: uuid.UUID, import_id: uuid.UUID) -> None:
        """The first completed import of a ``configuring`` connection makes it ``active``."""
        connection = await self._connections.get(connection_id, lock=True)
        if connection is None or connection.status != ConnectionStatus.CONFIGURING:
            return  # a later import, a file connection, or someone else's connection
        connection.first_import_completed_at = self._clock()
        connection.reason_code = None
        connection.message = None
        await self._change(
            connection,
            ConnectionStatus.ACTIVE,
            change_event(
                ConnectionConfiguredV1,
                connection,
                ConnectionStatus.CONFIGURING,
                import_id=import_id,
            ),
        )

    async def import_failed(self, connection_id: uuid.UUID, reason_code: str, message: str) -> None:
        """A failed first import leaves the connection ``configuring`` and says why."""
        connection = await self._connections.get(connection_id, lock=True)
        if connection is None or connection.status != ConnectionStatus.CONFIGURING:
            return
        connection.reason_code = reason_code[:64]
        connection.message = message[:1000]
        connection.updated_at = self._clock()
        await self._session.flush()

    async def mark_needs_reauth(self, connection: Connection, reason_code: str) -> None:
        """The vendor refused the grant: wipe the dead tokens, ``needs_reauth``."""
        previous = connection.status
        await self._credentials.wipe(connection.id)
        connection.reason_code = reason_code[:64]
        connection.message = "the vendor refused the connection's grant: authorise it again"
        await self._change(
            connection,
            ConnectionStatus.NEEDS_REAUTH,
            change_event(ConnectionNeedsReauthV1, connection, previous, reason_code=reason_code),
        )

    async def revoke(
        self,
        connection_id: uuid.UUID,
        vendor_revocation: Literal["revoked", "not_supported", "failed"],
    ) -> Connection:
        """Wipe the secrets (rows deleted) and make the connection ``revoked``."""
        # Credential row first, then the connection: the token service's order.
        await self._credentials.get(connection_id, lock=True)
        connection = await self._get(connection_id)
        if connection.status == ConnectionStatus.REVOKED:
            return connection
        previous = connection.status
        if previous not in _REVOCABLE_FROM:
            raise LifecycleError(
                f"connection_{previous.value}", f"a {previous.value} connection is not revocable"
            )
        wiped = await self._credentials.wipe(connection.id)
        await self._change(
            connection,
            ConnectionStatus.REVOKED,
            change_event(
                ConnectionRevokedV1, connection, previous, vendor_revocation=vendor_revocation
            ),
        )
        logger.info(
            "connection revoked",
            extra={"connection_id": str(connection.id), "secrets_wiped": wiped},
        )
        return connection

    async def expire_stale(self, ttl: timedelta) -> int:
        """Pending activations not authorised within ``ttl`` become ``expired``."""
        now = self._clock()
        expired = 0
        for connection in await self._connections.awaiting_authorization_since(now - ttl):
            if not activation_expired(connection.status, as_utc(connection.updated_at), now, ttl):
                continue
            previous = connection.status
            await self._credentials.wipe(connection.id)
            await self._change(
                connection,
                ConnectionStatus.EXPIRED,
                change_event(ConnectionExpiredV1, connection, previous),
            )
            expired += 1
        return expired


_REVOCABLE_FROM = frozenset(
    {
        ConnectionStatus.PENDING_AUTHORIZATION,
        ConnectionStatus.AUTHORIZING,
        ConnectionStatus.CONFIGURING,
        ConnectionStatus.ACTIVE,
        ConnectionStatus.NEEDS_REAUTH,
    }
)
