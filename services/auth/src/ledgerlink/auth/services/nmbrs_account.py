"""Visma Nmbrs -> Visma.net (seed 003), from the environment's "Integration" page.

A named Visma.net account is created at master level (any name) and authorised with a fresh
Visma login and one chosen company (:mod:`ledgerlink.auth.services.vismanet_connect`); its
status shows whether it is authorised. The Nmbrs API user's token, which the journal
exporter reads payroll journals with, is checked live and kept in the vault.

No commits: the request commits.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass

from pydantic import SecretStr
from sqlalchemy.ext.asyncio import AsyncSession

from ledgerlink.auth.domain.clock import Clock
from ledgerlink.auth.domain.connect_flows import FieldErrors
from ledgerlink.auth.domain.environments import Action
from ledgerlink.auth.domain.lifecycle import USABLE
from ledgerlink.auth.services.access import Conflict, NotFound
from ledgerlink.auth.services.environments import EnvironmentService
from ledgerlink.auth.services.lifecycle import LifecycleService, NmbrsTokenAuthorization
from ledgerlink.auth.storage.connect_flows import ConnectionSettingsRepository
from ledgerlink.auth.storage.models import (
    Connection,
    ConnectionSettings,
    ConnectionStatus,
    Environment,
    User,
)
from ledgerlink.auth.storage.repository import ConnectionRepository
from ledgerlink.auth.storage.vault import Vault
from ledgerlink.auth.storage.vendor_flows import NmbrsClient, VendorDownError, VendorRefusedError
from ledgerlink.shared.events import Product, Provider
from ledgerlink.shared.messaging.outbox import Outbox

logger = logging.getLogger(__name__)

PRODUCT = Product.PAYROLL_EXPORT.value
MAX_NAME = 100


@dataclass(frozen=True)
class IntegrationView:
    """What the environment's Visma.net integration page shows."""

    environment: Environment
    account: Connection | None
    account_settings: dict[str, object]
    nmbrs: Connection | None
    nmbrs_settings: dict[str, object]

    @property
    def authorized(self) -> bool:
        """Whether the Visma.net account is authorised (usable)."""
        return self.account is not None and self.account.status in USABLE


class NmbrsAccounts:
    """The use cases of the integration page; see the module docstring."""

    def __init__(
        self,
        session: AsyncSession,
        *,
        vault: Vault,
        outbox: Outbox,
        nmbrs: NmbrsClient,
        clock: Clock,
    ) -> None:
        self._session = session
        self._vault = vault
        self._outbox = outbox
        self._nmbrs = nmbrs
        self._clock = clock
        self._environments = EnvironmentService(session, clock)
        self._connections = ConnectionRepository(session)
        self._settings = ConnectionSettingsRepository(session)

    async def view(self, person: User, environment_id: uuid.UUID) -> IntegrationView:
        """The page's state (members see it)."""
        environment = (
            await self._environments.require(person, environment_id, Action.VIEW_CONNECTIONS)
        ).environment
        account = await self._connections.find_live(
            environment_id, Provider.VISMA_NET.value, PRODUCT
        )
        nmbrs = await self._connections.find_live(environment_id, Provider.NMBRS.value, PRODUCT)
        account_settings = await self._settings.get(account.id) if account else None
        nmbrs_settings = await self._settings.get(nmbrs.id) if nmbrs else None
        return IntegrationView(
            environment,
            account,
            dict(account_settings.settings) if account_settings else {},
            nmbrs,
            dict(nmbrs_settings.settings) if nmbrs_settings else {},
        )

    async def create_account(
        self, person: User, environment_id: uuid.UUID, name: str
    ) -> tuple[Connection | None, FieldErrors]:
        """A new Visma.net account (not authorised yet). Any name (seed 003)."""
        environment = (
            await self._environments.require(person, environment_id, Action.EDIT)
        ).environment
        name = " ".join(name.split())
        if not name:
            return None, {"name": "Enter a name for the Visma.net account."}
        if len(name) > MAX_NAME:
            return None, {"name": f"Use at most {MAX_NAME} characters."}
        existing = await self._connections.find_live(
            environment_id, Provider.VISMA_NET.value, PRODUCT
        )
        if existing is not None:
            return None, {"name": "This environment already has a Visma.net account."}
        connection = await self._new_connection(
            person, environment, Provider.VISMA_NET.value, {"account_name": name}
        )
        return connection, {}

    async def account_for_authorization(
        self, person: User, environment_id: uuid.UUID
    ) -> Connection:
        """The account to authorise, moved to ``authorizing`` (an admin's action)."""
        await self._environments.require(person, environment_id, Action.EDIT)
        account = await self._connections.find_live(
            environment_id, Provider.VISMA_NET.value, PRODUCT
        )
        if account is None:
            raise NotFound("Create the Visma.net account first.")
        lifecycle = LifecycleService(self._session, self._outbox, clock=self._clock)
        if account.status == ConnectionStatus.PENDING_AUTHORIZATION:
            await lifecycle.begin_authorization(account.id)
        elif account.status not in (ConnectionStatus.AUTHORIZING, ConnectionStatus.NEEDS_REAUTH):
            raise Conflict("This Visma.net account is already authorised.", code="authorized")
        return account

    async def save_nmbrs(
        self,
        person: User,
        environment_id: uuid.UUID,
        username: str,
        token: SecretStr,
        domain: str,
    ) -> tuple[Connection | None, FieldErrors]:
        """Check the Nmbrs API user's token live and keep it (``configuring``,
        ``connection.activated``: the journal exporter may read payroll journals)."""
        environment = (
            await self._environments.require(person, environment_id, Action.EDIT)
        ).environment
        errors: FieldErrors = {}
        username, domain = username.strip(), domain.strip()
        if not username:
            errors["nmbrs_username"] = "Enter the Nmbrs API user's e-mail address."
        if not token.get_secret_value().strip():
            errors["nmbrs_token"] = "Enter the API token (Nmbrs: My profile -> API token)."  # noqa: S105
        if not domain:
            errors["nmbrs_domain"] = "Enter your Nmbrs domain (the part before .nmbrs.nl)."
        if errors:
            return None, errors
        existing = await self._connections.find_live(environment_id, Provider.NMBRS.value, PRODUCT)
        if existing is not None and existing.status in USABLE:
            return None, {"nmbrs_username": "An Nmbrs API user is already connected."}
        try:
            companies = await self._nmbrs.companies(username, token, domain)
        except VendorRefusedError:
            return None, {
                "nmbrs_token": "Nmbrs refused this user, token and domain (1001: Invalid "
                "Authentication). Check all three."
            }
        except VendorDownError:
            return None, {"nmbrs_token": "Nmbrs could not be reached. Try again later."}
        connection = existing or await self._new_connection(
            person,
            environment,
            Provider.NMBRS.value,
            {"companies": [[c.external_id, c.name] for c in companies]},
        )
        await LifecycleService(
            self._session, self._outbox, vault=self._vault, clock=self._clock
        ).complete_authorization(
            connection.id,
            NmbrsTokenAuthorization(
                vendor_account=domain, username=username, domain=domain, token=token
            ),
        )
        logger.info("nmbrs api user saved", extra={"connection_id": str(connection.id)})
        return connection, {}

    async def _new_connection(
        self,
        person: User,
        environment: Environment,
        provider: str,
        settings: dict[str, object],
    ) -> Connection:
        now = self._clock()
        connection = await self._connections.add(
            Connection(
                environment_id=environment.id,
                provider=provider,
                product=PRODUCT,
                country=environment.country,
                business_id_raw=environment.business_id,
                business_id=environment.business_id,
                company_name=environment.official_name or environment.company_name,
                requested_by_email=person.email,
                requested_by_name=person.name or person.email,
                status=ConnectionStatus.PENDING_AUTHORIZATION,
                activation_event_id=f"page:{provider}:{environment.id}",
                created_at=now,
                updated_at=now,
            )
        )
        await self._settings.save(
            ConnectionSettings(connection_id=connection.id, settings=settings, updated_at=now)
        )
        return connection
