"""Revoking a connection: at the vendor where it allows it, then the secrets wiped.

The vendor call happens between two transactions, never inside one: no lock is held while
a remote endpoint takes its time. Data already imported stays (as Codat and Merge keep it):
revoking ends access, not history.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Mapping
from typing import Literal

from sqlalchemy.ext.asyncio import AsyncSession

from ledgerlink.auth.config import OAuthProviderSettings
from ledgerlink.auth.domain.clock import Clock, utc_now
from ledgerlink.auth.domain.lifecycle import ConnectionStatus
from ledgerlink.auth.services.lifecycle import (
    SHARED_CREDENTIAL_ATTRIBUTE,
    ConnectionNotFoundError,
    LifecycleService,
)
from ledgerlink.auth.storage.models import Connection
from ledgerlink.auth.storage.repository import ConnectionRepository, CredentialRepository
from ledgerlink.auth.storage.vault import Vault
from ledgerlink.auth.storage.vendor_oauth import VendorOAuthClient
from ledgerlink.shared.db import Database
from ledgerlink.shared.messaging.outbox import Outbox

logger = logging.getLogger(__name__)

VendorRevocation = Literal["revoked", "not_supported", "failed"]


class RevocationService:
    """``DELETE /v1/connections/{id}`` and ``ledgerlink-auth connections revoke``."""

    def __init__(
        self,
        db: Database,
        vault: Vault,
        vendor: VendorOAuthClient,
        providers: Mapping[str, OAuthProviderSettings],
        outbox: Outbox,
        *,
        clock: Clock = utc_now,
        forget: Callable[[uuid.UUID], None] = lambda _id: None,
    ) -> None:
        self._db = db
        self._vault = vault
        self._vendor = vendor
        self._providers = providers
        self._outbox = outbox
        self._clock = clock
        self._forget = forget

    async def revoke(self, connection_id: uuid.UUID) -> tuple[Connection, VendorRevocation]:
        """Revoke at the vendor (best effort), wipe the secrets, publish the event."""
        async with self._db.transaction() as session:
            connection = await ConnectionRepository(session).get(connection_id)
            if connection is None:
                raise ConnectionNotFoundError(connection_id)
            if connection.status == ConnectionStatus.REVOKED:
                return connection, "revoked"
            # One Visma login may serve several administrations (seed 002): the grant is
            # stored once, on the first connection, and the others name it. Revoking that
            # first connection must not cut the others off: the grant moves to the next one
            # and is not revoked at the vendor (the event says ``not_supported``: v1 has no
            # word for "kept for the others").
            handed_over = await self._hand_over(session, connection_id)
            secrets = (
                {} if handed_over else await CredentialRepository(session).secrets(connection_id)
            )
            provider = self._providers.get(connection.provider)
        outcome: VendorRevocation = "not_supported"
        # UNCONFIRMED: which vendors offer revocation. Visma Connect has an RFC 7009
        # endpoint; Procountor, Nmbrs, Netvisor and 24SevenOffice publish none we know of,
        # so for them the secrets are only wiped here.
        if provider is not None and provider.revocation_url is not None:
            name, hint = (
                ("refresh_token", "refresh_token")
                if "refresh_token" in secrets
                else ("access_token", "access_token")
            )
            if name in secrets:
                token = self._vault.open(connection_id, name, secrets[name])
                confirmed = await self._vendor.revoke(connection.provider, provider, token, hint)
                outcome = "revoked" if confirmed else "failed"
        async with self._db.transaction() as session:
            connection = await LifecycleService(session, self._outbox, clock=self._clock).revoke(
                connection_id, outcome
            )
        self._forget(connection_id)
        return connection, outcome

    async def _hand_over(self, session: AsyncSession, holder_id: uuid.UUID) -> bool:
        """Move the holder's grant to its first sharer; the rest then name that one.

        Runs under the holder's refresh lock, so no refresh rotates the grant while it is
        re-sealed for the heir. False when nobody shares the holder's grant.
        """
        credentials = CredentialRepository(session)
        holder = await credentials.get(holder_id, lock=True)
        if holder is None:
            return False
        sharers = await credentials.sharers(holder_id, SHARED_CREDENTIAL_ATTRIBUTE)
        if not sharers:
            return False
        heir, *others = sharers
        now = self._clock()
        resealed = {
            field: self._vault.seal(
                heir.connection_id, field, self._vault.open(holder_id, field, sealed)
            )
            for field, sealed in (await credentials.secrets(holder_id)).items()
        }
        await credentials.replace_secrets(heir.connection_id, resealed, now)
        heir.attributes = {
            name: value
            for name, value in heir.attributes.items()
            if name != SHARED_CREDENTIAL_ATTRIBUTE
        }
        heir.kind = holder.kind
        heir.access_expires_at = holder.access_expires_at
        heir.refreshed_at = holder.refreshed_at
        heir.updated_at = now
        await credentials.save(heir)
        for other in others:
            other.attributes = {
                **other.attributes,
                SHARED_CREDENTIAL_ATTRIBUTE: str(heir.connection_id),
            }
            other.updated_at = now
            await credentials.save(other)
        self._forget(heir.connection_id)
        for other in others:
            self._forget(other.connection_id)
        logger.info(
            "revoked connection's grant handed over",
            extra={"connection_id": str(holder_id), "heir": str(heir.connection_id)},
        )
        return True
