"""All SQL of environments' members, organisations and terms (who may see and do what)."""

from __future__ import annotations

import uuid

from sqlalchemy import delete, func
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col, select

from ledgerlink.auth.storage.models import (
    Administration,
    Connection,
    Division,
    Environment,
    EnvironmentMember,
    Organisation,
    OrganisationMember,
    RoleTemplate,
    TermsAcceptance,
    TermsDocument,
    User,
)


class MembershipRepository:
    """Environments' members, and the environments a person belongs to."""

    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def add(self, member: EnvironmentMember) -> EnvironmentMember:
        """Insert a membership."""
        self._session.add(member)
        await self._session.flush()
        return member

    async def get(self, environment_id: uuid.UUID, user_id: uuid.UUID) -> EnvironmentMember | None:
        """The person's membership of the environment, if any."""
        return await self._session.get(EnvironmentMember, (environment_id, user_id))

    async def delete(self, environment_id: uuid.UUID, user_id: uuid.UUID) -> None:
        """Remove a membership."""
        await self._session.execute(
            delete(EnvironmentMember).where(
                col(EnvironmentMember.environment_id) == environment_id,
                col(EnvironmentMember.user_id) == user_id,
            )
        )

    async def members(self, environment_id: uuid.UUID) -> list[tuple[EnvironmentMember, User]]:
        """Every member with their user, oldest first."""
        result = await self._session.execute(
            select(EnvironmentMember, User)
            .join(User, col(User.id) == col(EnvironmentMember.user_id))
            .where(EnvironmentMember.environment_id == environment_id)
            .order_by(col(EnvironmentMember.added_at), col(User.email))
        )
        return [(member, user) for member, user in result.all()]

    async def count(self, environment_id: uuid.UUID) -> int:
        """How many members the environment has (0: unclaimed)."""
        result = await self._session.execute(
            select(func.count())
            .select_from(EnvironmentMember)
            .where(EnvironmentMember.environment_id == environment_id)
        )
        return int(result.scalar_one())

    async def environments_of(
        self, user_id: uuid.UUID
    ) -> list[tuple[Environment, EnvironmentMember]]:
        """The environments the person is a member of, with their membership."""
        result = await self._session.execute(
            select(Environment, EnvironmentMember)
            .join(EnvironmentMember, col(EnvironmentMember.environment_id) == col(Environment.id))
            .where(EnvironmentMember.user_id == user_id)
            .order_by(col(Environment.company_name), col(Environment.id))
        )
        return [(environment, member) for environment, member in result.all()]


class TenancyQueries:
    """Look-ups across environments, users and connections for the access rules."""

    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def subdomains_starting(self, prefix: str) -> set[str]:
        """Subdomains in use that start with ``prefix`` (the candidates a suggestion meets)."""
        result = await self._session.execute(
            select(Environment.subdomain).where(col(Environment.subdomain).startswith(prefix))
        )
        return {value for value in result.scalars().all() if value is not None}

    async def subdomain_owner(self, subdomain: str) -> uuid.UUID | None:
        """The environment using ``subdomain``, if any."""
        result = await self._session.execute(
            select(Environment.id).where(Environment.subdomain == subdomain)
        )
        return result.scalars().first()

    async def users_with_email(self, email: str) -> list[User]:
        """Everyone who signed in with this (lower-cased) e-mail, any provider."""
        result = await self._session.execute(select(User).where(User.email == email.lower()))
        return list(result.scalars().all())

    async def requested_by(self, environment_id: uuid.UUID, email: str) -> bool:
        """Whether one of the environment's activations names ``email`` as its requester."""
        result = await self._session.execute(
            select(Connection.id)
            .where(
                Connection.environment_id == environment_id,
                func.lower(Connection.requested_by_email) == email.lower(),
            )
            .limit(1)
        )
        return result.scalars().first() is not None

    async def connections_of(self, environment_id: uuid.UUID) -> list[Connection]:
        """The environment's connections, oldest first."""
        result = await self._session.execute(
            select(Connection)
            .where(Connection.environment_id == environment_id)
            .order_by(col(Connection.created_at), col(Connection.id))
        )
        return list(result.scalars().all())

    async def connections_visible_to(
        self, user_id: uuid.UUID, business_id: str
    ) -> list[Connection]:
        """Connections whose raw or normalised ID matches, in the person's environments."""
        result = await self._session.execute(
            select(Connection)
            .join(
                EnvironmentMember,
                col(EnvironmentMember.environment_id) == col(Connection.environment_id),
            )
            .where(
                EnvironmentMember.user_id == user_id,
                (Connection.business_id == business_id)
                | (Connection.business_id_raw == business_id),
            )
            .order_by(col(Connection.created_at), col(Connection.id))
        )
        return list(result.scalars().all())


class OrganisationRepository:
    """Organisations, their members, divisions, templates and administrations."""

    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def add(
        self, item: Organisation | OrganisationMember | Division | RoleTemplate | Administration
    ) -> None:
        """Insert any of the organisation's rows."""
        self._session.add(item)
        await self._session.flush()

    async def get(self, organisation_id: uuid.UUID) -> Organisation | None:
        """One organisation by id."""
        return await self._session.get(Organisation, organisation_id)

    async def member(
        self, organisation_id: uuid.UUID, user_id: uuid.UUID
    ) -> OrganisationMember | None:
        """The person's membership of the organisation, if any."""
        return await self._session.get(OrganisationMember, (organisation_id, user_id))

    async def admins(self, organisation_id: uuid.UUID) -> list[User]:
        """The organisation's admins."""
        result = await self._session.execute(
            select(User)
            .join(OrganisationMember, col(OrganisationMember.user_id) == col(User.id))
            .where(
                OrganisationMember.organisation_id == organisation_id,
                OrganisationMember.role == "admin",
            )
            .order_by(col(User.email))
        )
        return list(result.scalars().all())

    async def members(self, organisation_id: uuid.UUID) -> list[tuple[OrganisationMember, User]]:
        """Every member with their user, oldest first."""
        result = await self._session.execute(
            select(OrganisationMember, User)
            .join(User, col(User.id) == col(OrganisationMember.user_id))
            .where(OrganisationMember.organisation_id == organisation_id)
            .order_by(col(OrganisationMember.added_at), col(User.email))
        )
        return [(member, user) for member, user in result.all()]

    async def delete_member(self, organisation_id: uuid.UUID, user_id: uuid.UUID) -> None:
        """Remove a membership."""
        await self._session.execute(
            delete(OrganisationMember).where(
                col(OrganisationMember.organisation_id) == organisation_id,
                col(OrganisationMember.user_id) == user_id,
            )
        )

    async def of_user(self, user_id: uuid.UUID) -> list[tuple[Organisation, OrganisationMember]]:
        """The organisations the person belongs to."""
        result = await self._session.execute(
            select(Organisation, OrganisationMember)
            .join(
                OrganisationMember,
                col(OrganisationMember.organisation_id) == col(Organisation.id),
            )
            .where(OrganisationMember.user_id == user_id)
            .order_by(col(Organisation.name), col(Organisation.id))
        )
        return [(organisation, member) for organisation, member in result.all()]

    async def divisions(self, organisation_id: uuid.UUID) -> list[Division]:
        """The organisation's divisions by name."""
        result = await self._session.execute(
            select(Division)
            .where(Division.organisation_id == organisation_id)
            .order_by(col(Division.name))
        )
        return list(result.scalars().all())

    async def division(self, division_id: uuid.UUID) -> Division | None:
        """One division by id."""
        return await self._session.get(Division, division_id)

    async def templates(self, organisation_id: uuid.UUID) -> list[RoleTemplate]:
        """The organisation's role templates by name."""
        result = await self._session.execute(
            select(RoleTemplate)
            .where(RoleTemplate.organisation_id == organisation_id)
            .order_by(col(RoleTemplate.name))
        )
        return list(result.scalars().all())

    async def administrations(
        self, organisation_id: uuid.UUID
    ) -> list[tuple[Administration, Environment]]:
        """The environments the organisation administers."""
        result = await self._session.execute(
            select(Administration, Environment)
            .join(Environment, col(Environment.id) == col(Administration.environment_id))
            .where(Administration.organisation_id == organisation_id)
            .order_by(col(Environment.company_name), col(Environment.id))
        )
        return [(administration, environment) for administration, environment in result.all()]

    async def administration(
        self, organisation_id: uuid.UUID, environment_id: uuid.UUID
    ) -> Administration | None:
        """The organisation's administration of the environment, if any."""
        return await self._session.get(Administration, (organisation_id, environment_id))


class TermsRepository:
    """Published terms and privacy texts and people's acceptances of them."""

    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def add(self, item: TermsDocument | TermsAcceptance) -> None:
        """Insert a document version or an acceptance."""
        self._session.add(item)
        await self._session.flush()

    async def documents(self) -> list[TermsDocument]:
        """Every published version (few: one a year or so)."""
        result = await self._session.execute(
            select(TermsDocument).order_by(col(TermsDocument.kind), col(TermsDocument.version))
        )
        return list(result.scalars().all())

    async def accepted_ids(
        self, user_id: uuid.UUID, environment_id: uuid.UUID | None
    ) -> set[uuid.UUID]:
        """The document versions the person accepted for this environment (or themselves)."""
        query = select(TermsAcceptance.document_id).where(TermsAcceptance.user_id == user_id)
        if environment_id is None:
            query = query.where(col(TermsAcceptance.environment_id).is_(None))
        else:
            query = query.where(TermsAcceptance.environment_id == environment_id)
        result = await self._session.execute(query)
        return set(result.scalars().all())
