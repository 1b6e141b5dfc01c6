"""The use cases behind the activation pages (issue 13): find the activation a browser came
for, keep each browser's progress, match the person's environment, accept terms, and
finish: credentials into the vault, ``connection.activated.v1`` through the outbox.

Runs in the caller's transaction (one per request); no commits here.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

from pydantic import SecretStr
from sqlalchemy.ext.asyncio import AsyncSession

from ledgerlink.auth.domain.clock import Clock
from ledgerlink.auth.domain.environments import Contact, Role
from ledgerlink.auth.services.activation_links import ActivationLinkService, LinkSettings
from ledgerlink.auth.services.environments import (
    CompanyDetails,
    EnvironmentService,
    Matched,
)
from ledgerlink.auth.services.lifecycle import AnyAuthorization, LifecycleService
from ledgerlink.auth.services.terms import CurrentDocument, TermsService
from ledgerlink.auth.storage.activation_pages import ActivationPageRepository
from ledgerlink.auth.storage.models import (
    ActivationFlow,
    Connection,
    Environment,
    User,
)
from ledgerlink.auth.storage.repository import ConnectionRepository, EnvironmentRepository
from ledgerlink.auth.storage.tenancy import MembershipRepository
from ledgerlink.auth.storage.vault import Sealed, Vault
from ledgerlink.shared.messaging.outbox import Outbox

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class EnvironmentStanding:
    """The activation's environment as the signed-in person stands with it."""

    environment: Environment | None
    #: Their role there (None: not a member).
    role: Role | None
    #: Whom to ask when they are not its admin.
    admins: list[Contact]
    #: It has members (a person made or claimed it), as opposed to one only an
    #: activation event made.
    claimed: bool


class ActivationPages:
    """See the module docstring."""

    def __init__(
        self,
        session: AsyncSession,
        outbox: Outbox,
        vault: Vault,
        clock: Clock,
        links: LinkSettings,
    ) -> None:
        self._session = session
        self._outbox = outbox
        self._vault = vault
        self._clock = clock
        self._pages = ActivationPageRepository(session)
        self._connections = ConnectionRepository(session)
        self._environments = EnvironmentRepository(session)
        self._members = MembershipRepository(session)
        self.links = ActivationLinkService(session, outbox, links, clock)
        self.environments = EnvironmentService(session, clock)
        self.terms = TermsService(session, clock)

    # Finding the activation ---------------------------------------------------------------

    async def by_store_reference(self, provider: str, store_reference: str) -> Connection | None:
        """The connection the activation event with this store reference made, if it came."""
        return await self._pages.connection_for_store_reference(provider, store_reference)

    async def connection(self, connection_id: uuid.UUID) -> Connection | None:
        """One connection."""
        return await self._connections.get(connection_id)

    async def environment(self, environment_id: uuid.UUID | None) -> Environment | None:
        """One environment."""
        return None if environment_id is None else await self._environments.get(environment_id)

    # A browser's progress -----------------------------------------------------------------

    async def flow(self, connection: Connection, browser_hash: str) -> ActivationFlow:
        """This browser's progress through ``connection``'s activation (made on first use)."""
        flow = await self._pages.flow(connection.id, browser_hash)
        if flow is None:
            now = self._clock()
            flow = await self._pages.save_flow(
                ActivationFlow(
                    connection_id=connection.id,
                    browser_hash=browser_hash,
                    created_at=now,
                    updated_at=now,
                )
            )
        return flow

    async def update(self, flow: ActivationFlow, **data: Any) -> ActivationFlow:
        """Record what a step decided (plain values only; secrets go through :meth:`seal`)."""
        flow.data = {**flow.data, **data}
        flow.updated_at = self._clock()
        return await self._pages.save_flow(flow)

    async def forget(self, flow: ActivationFlow, *names: str) -> ActivationFlow:
        """Drop decisions (going back a step)."""
        flow.data = {key: value for key, value in flow.data.items() if key not in names}
        flow.updated_at = self._clock()
        return await self._pages.save_flow(flow)

    def _field(self, flow: ActivationFlow, name: str) -> str:
        # Bound to the flow: a ciphertext copied to another flow or name does not open.
        return f"flow/{flow.id}/{name}"

    async def seal(self, flow: ActivationFlow, secrets: dict[str, SecretStr]) -> None:
        """Keep vendor secrets a step obtained, sealed by the vault, until the flow ends."""
        sealed = dict(flow.sealed)
        for name, secret in secrets.items():
            box = self._vault.seal(flow.connection_id, self._field(flow, name), secret)
            sealed[name] = {"key_version": box.key_version, "ciphertext": box.ciphertext}
        flow.sealed = sealed
        flow.updated_at = self._clock()
        await self._pages.save_flow(flow)

    def open(self, flow: ActivationFlow, name: str) -> SecretStr | None:
        """A secret :meth:`seal` kept, or None."""
        box = flow.sealed.get(name)
        if not isinstance(box, dict):
            return None
        return self._vault.open(
            flow.connection_id,
            self._field(flow, name),
            Sealed(int(box["key_version"]), str(box["ciphertext"])),
        )

    # Facts the flows check ----------------------------------------------------------------

    async def financial_model_active(self, connection: Connection) -> bool:
        """Whether the company's financial model is active (seed 000)."""
        row = await self._pages.financial_model(connection.country, connection.business_id)
        return row is not None and row.active

    async def set_financial_model(self, country: str, business_id: str, active: bool) -> None:
        """Record the company's financial model as (in)active."""
        await self._pages.set_financial_model(country, business_id, active, self._clock())
        logger.info("financial model changed", extra={"business_id": business_id, "active": active})

    async def standing(self, person: User, connection: Connection) -> EnvironmentStanding:
        """The environment matched by the activation's business ID, and the person's role."""
        environment = await self.environment(connection.environment_id)
        if environment is None:
            environment = await self._environments.find_by_business_id(
                connection.country, connection.business_id
            )
        if environment is None:
            return EnvironmentStanding(None, None, [], claimed=False)
        member = await self._members.get(environment.id, person.id)
        members = await self._members.count(environment.id)
        return EnvironmentStanding(
            environment,
            member.role if member is not None else None,
            await self.environments.admins(environment.id),
            claimed=members > 0,
        )

    async def match(self, person: User, connection: Connection, details: CompanyDetails) -> Matched:
        """Create, join or claim the environment for the activation (refusals raise the
        access errors of :mod:`ledgerlink.auth.services.access`)."""
        return await self.environments.create_or_match(person, details, claim=True)

    async def current_terms(
        self, person: User, environment_id: uuid.UUID | None
    ) -> list[CurrentDocument]:
        """The published terms and privacy notice, and whether ``person`` accepted them."""
        return await self.terms.current(person, environment_id)

    async def accept_terms(
        self, person: User, document_ids: Collection[uuid.UUID], environment_id: uuid.UUID
    ) -> None:
        """Record the acceptance of the current versions for the environment."""
        if document_ids:
            await self.terms.accept(person, document_ids, environment_id)

    # Finishing ----------------------------------------------------------------------------

    async def complete(
        self, connection: Connection, result: AnyAuthorization, *, person: User
    ) -> Connection:
        """Credentials into the vault, the connection ``configuring`` and
        ``connection.activated.v1`` in the outbox; the links used up, every browser's
        progress (and sealed secrets) deleted."""
        lifecycle = LifecycleService(
            self._session, self._outbox, vault=self._vault, clock=self._clock
        )
        done = await lifecycle.complete_authorization(connection.id, result)
        await self.links.use_up(connection.id)
        await self._pages.delete_flows(connection.id)
        logger.info(
            "activation completed in the browser",
            extra={
                "connection_id": str(connection.id),
                "provider": connection.provider,
                "user_id": str(person.id),
            },
        )
        return done
