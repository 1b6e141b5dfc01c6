"""Companies an organisation imports from a vendor login (Visma.net administrations,
24SevenOffice clients): each becomes an environment the organisation administers, with a
connection awaiting its credential. Runs in the caller's transaction."""

from __future__ import annotations

import json
import logging
import uuid
from dataclasses import dataclass

from pydantic import SecretStr
from sqlalchemy.ext.asyncio import AsyncSession

from ledgerlink.auth.domain.clock import Clock
from ledgerlink.auth.domain.environments import Role
from ledgerlink.auth.domain.lifecycle import TERMINAL
from ledgerlink.auth.services.access import Conflict
from ledgerlink.auth.storage.connect_flows import ConnectionSettingsRepository
from ledgerlink.auth.storage.models import (
    Administration,
    Connection,
    ConnectionSettings,
    ConnectionStatus,
    Environment,
    EnvironmentMember,
    User,
)
from ledgerlink.auth.storage.repository import ConnectionRepository, EnvironmentRepository
from ledgerlink.auth.storage.tenancy import MembershipRepository, OrganisationRepository
from ledgerlink.auth.storage.vault import Sealed, Vault

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ImportedCompany:
    """One company to import and where it goes."""

    country: str
    business_id: str
    name: str
    provider: str
    product: str
    division_id: uuid.UUID | None
    #: Who becomes a member of a new environment, with which role.
    members: tuple[tuple[uuid.UUID, Role], ...]
    settings: dict[str, object]


class CompanyImport:
    """Environments, administrations and pending connections for imported companies."""

    def __init__(self, session: AsyncSession, clock: Clock) -> None:
        self._session = session
        self._clock = clock
        self._environments = EnvironmentRepository(session)
        self._members = MembershipRepository(session)
        self._organisations = OrganisationRepository(session)
        self._connections = ConnectionRepository(session)
        self._settings = ConnectionSettingsRepository(session)

    async def add(
        self, person: User, organisation_id: uuid.UUID, company: ImportedCompany, reference: str
    ) -> Connection:
        """The company's new connection (``pending_authorization``).

        An environment with the same business ID is reused only when the person is its
        admin: an organisation never takes over a company nobody there administers.
        """
        now = self._clock()
        environment = await self._environments.find_by_business_id(
            company.country, company.business_id
        )
        if environment is None:
            environment = await self._environments.add(
                Environment(
                    country=company.country,
                    business_id=company.business_id,
                    company_name=company.name,
                    official_name=company.name,
                    created_by=person.id,
                    created_at=now,
                )
            )
        else:
            membership = await self._members.get(environment.id, person.id)
            if membership is None or membership.role is not Role.ADMIN:
                raise Conflict(
                    f"{company.business_id} belongs to an environment you do not administer: "
                    "ask its admins to add you first.",
                    code="environment_not_yours",
                )
        for user_id, role in company.members:
            if await self._members.get(environment.id, user_id) is None:
                await self._members.add(
                    EnvironmentMember(
                        environment_id=environment.id,
                        user_id=user_id,
                        role=role,
                        added_at=now,
                        added_by=None if user_id == person.id else person.id,
                    )
                )
        if await self._organisations.administration(organisation_id, environment.id) is None:
            await self._organisations.add(
                Administration(
                    organisation_id=organisation_id,
                    environment_id=environment.id,
                    division_id=company.division_id,
                    added_by=person.id,
                    added_at=now,
                )
            )
        live = await self._connections.find_live(environment.id, company.provider, company.product)
        if live is not None and live.status not in TERMINAL:
            raise Conflict(
                f"{company.name} is already connected ({live.status.value}).",
                code="already_connected",
            )
        connection = await self._connections.add(
            Connection(
                environment_id=environment.id,
                provider=company.provider,
                product=company.product,
                country=company.country,
                business_id_raw=company.business_id,
                business_id=company.business_id,
                company_name=company.name,
                requested_by_email=person.email,
                requested_by_name=person.name or person.email,
                status=ConnectionStatus.PENDING_AUTHORIZATION,
                activation_event_id=reference[:200],
                created_at=now,
                updated_at=now,
            )
        )
        await self._settings.save(
            ConnectionSettings(
                connection_id=connection.id,
                organisation_id=organisation_id,
                settings=dict(company.settings),
                updated_at=now,
            )
        )
        logger.info(
            "company imported",
            extra={
                "connection_id": str(connection.id),
                "environment_id": str(environment.id),
                "provider": company.provider,
            },
        )
        return connection


def seal_json(vault: Vault, owner: uuid.UUID, field: str, values: dict[str, str]) -> Sealed:
    """Seal a few secrets together (a flow's PKCE verifier and tokens)."""
    return vault.seal(owner, field, SecretStr(json.dumps(values)))


def open_json(vault: Vault, owner: uuid.UUID, field: str, sealed: Sealed) -> dict[str, str]:
    """The secrets :func:`seal_json` sealed."""
    opened = json.loads(vault.open(owner, field, sealed).get_secret_value())
    return {str(key): str(value) for key, value in opened.items()}
