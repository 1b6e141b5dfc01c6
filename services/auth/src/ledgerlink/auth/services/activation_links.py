"""Activation links: issued with each activation that needs a person, single-use, expiring.

The link is ``<public url>/activate/link/<token>``; the store keeps the token's SHA-256
only. It is published in ``connection.activation_link_issued.v1`` (through the outbox, in
the activation's transaction) for upstreams that e-mail it. Opening it leads to the
provider's pages; once the activation completes the link is used and shows so.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from ledgerlink.auth.domain.activation_pages import (
    LinkState,
    link_state,
    new_token,
    token_hash,
)
from ledgerlink.auth.domain.clock import Clock
from ledgerlink.auth.storage.activation_pages import ActivationPageRepository
from ledgerlink.auth.storage.models import ActivationLink, Connection
from ledgerlink.auth.storage.repository import ConnectionRepository
from ledgerlink.shared.db import as_utc
from ledgerlink.shared.events import ConnectionActivationLinkIssuedV1, Provider, Requester
from ledgerlink.shared.messaging.outbox import Outbox

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class LinkSettings:
    """Where links point and how long they live."""

    public_url: str
    ttl: timedelta


@dataclass(frozen=True)
class PendingLink:
    """A link issued by a batch: its row (inserted in bulk) and the event announcing it."""

    row: dict[str, Any]
    event: ConnectionActivationLinkIssuedV1


@dataclass(frozen=True)
class OpenedLink:
    """What an opened link found: its state and, unless unknown, its connection."""

    state: LinkState
    connection: Connection | None


class ActivationLinkService:
    """Issues, opens and uses up activation links (in the caller's transaction)."""

    def __init__(
        self, session: AsyncSession, outbox: Outbox, settings: LinkSettings, clock: Clock
    ) -> None:
        self._session = session
        self._outbox = outbox
        self._settings = settings
        self._clock = clock
        self._pages = ActivationPageRepository(session)
        self._connections = ConnectionRepository(session)

    async def issue(self, connection: Connection) -> str:
        """A new link for ``connection``, stored as a hash and published; the URL."""
        token = new_token()
        now = self._clock()
        link = await self._pages.add_link(
            ActivationLink(
                connection_id=connection.id,
                token_hash=token_hash(token),
                created_at=now,
                expires_at=now + self._settings.ttl,
            )
        )
        url = f"{self._settings.public_url.rstrip('/')}/activate/link/{token}"
        await self._outbox.add(
            self._session,
            ConnectionActivationLinkIssuedV1(
                connection_id=connection.id,
                environment_id=connection.environment_id,
                provider=Provider(connection.provider),
                business_id=connection.business_id,
                store_reference=connection.store_reference,
                requested_by=Requester(
                    email=connection.requested_by_email, name=connection.requested_by_name
                ),
                url=url,
                expires_at=link.expires_at,
            ),
            key=connection.business_id,
            subject=str(connection.id),
        )
        logger.info(
            "activation link issued",
            extra={"connection_id": str(connection.id), "link_id": str(link.id)},
        )
        return url

    def pending(self, connection: Mapping[str, Any]) -> PendingLink:
        """What :meth:`issue` does for the connection whose row values are ``connection``
        (made by a batch, not inserted yet), without writing: see :meth:`insert_pending`.

        The caller adds ``event`` to the outbox (keyed by the business ID, subject the
        connection id) and logs "activation link issued", in its events' order.
        """
        token = new_token()
        now = self._clock()
        row = {
            "id": uuid.uuid4(),
            "connection_id": connection["id"],
            "token_hash": token_hash(token),
            "created_at": now,
            "expires_at": now + self._settings.ttl,
            "used_at": None,
        }
        url = f"{self._settings.public_url.rstrip('/')}/activate/link/{token}"
        event = ConnectionActivationLinkIssuedV1(
            connection_id=connection["id"],
            environment_id=connection["environment_id"],
            provider=Provider(connection["provider"]),
            business_id=connection["business_id"],
            store_reference=connection["store_reference"],
            requested_by=Requester(
                email=connection["requested_by_email"], name=connection["requested_by_name"]
            ),
            url=url,
            expires_at=row["expires_at"],
        )
        return PendingLink(row, event)

    async def insert_pending(self, links: Sequence[PendingLink]) -> None:
        """Insert the rows of links made by :meth:`pending` (one multi-row insert)."""
        await self._pages.insert_links([link.row for link in links])

    async def open(self, token: str) -> OpenedLink:
        """The state of the link ``token`` names (never marks it used: a mail scanner that
        follows it must not spend it)."""
        link = await self._pages.link_by_hash(token_hash(token))
        if link is None:
            return OpenedLink(LinkState.UNKNOWN, None)
        connection = await self._connections.get(link.connection_id)
        state = link_state(
            expires_at=as_utc(link.expires_at),
            used_at=link.used_at,
            now=self._clock(),
        )
        return OpenedLink(state, connection)

    async def use_up(self, connection_id: uuid.UUID) -> None:
        """Mark every link of a completed activation used."""
        now = self._clock()
        for link in await self._pages.links_of(connection_id):
            if link.used_at is None:
                link.used_at = now
                await self._pages.save_link(link)
