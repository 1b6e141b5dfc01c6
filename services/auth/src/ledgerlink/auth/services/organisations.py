"""Organisations (an accounting office): their administrations, divisions and templates.

Members of an organisation see it; only its admins change it. Adding an administration
also needs the person to be an admin of that environment: an organisation never pulls in
a company nobody there administers. No commits: the request commits.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from ledgerlink.auth.domain.clock import Clock
from ledgerlink.auth.domain.environments import (
    Action,
    Contact,
    LastAdminError,
    Role,
    ask_admins,
    check_member_change,
)
from ledgerlink.auth.services.access import BadInput, Conflict, Forbidden, NotFound
from ledgerlink.auth.services.environments import EnvironmentService, MemberView
from ledgerlink.auth.storage.models import (
    Administration,
    Division,
    Environment,
    Organisation,
    OrganisationMember,
    RoleTemplate,
    User,
)
from ledgerlink.auth.storage.tenancy import OrganisationRepository, TenancyQueries

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class OrganisationView:
    """An organisation with the person's role in it."""

    organisation: Organisation
    role: Role


class OrganisationService:
    """Organisations and what they hold."""

    def __init__(self, session: AsyncSession, clock: Clock) -> None:
        self._organisations = OrganisationRepository(session)
        self._queries = TenancyQueries(session)
        self._environments = EnvironmentService(session, clock)
        self._clock = clock

    async def require(
        self, person: User, organisation_id: uuid.UUID, *, admin: bool = False
    ) -> OrganisationView:
        """The organisation if ``person`` belongs to it (and is an admin, when asked)."""
        organisation = await self._organisations.get(organisation_id)
        member = (
            await self._organisations.member(organisation_id, person.id)
            if organisation is not None
            else None
        )
        if organisation is None or member is None:
            raise NotFound(f"no organisation {organisation_id}")
        if admin and member.role is not Role.ADMIN:
            admins = [
                Contact(user.name, user.email)
                for user in await self._organisations.admins(organisation_id)
            ]
            message = ask_admins(admins).replace("environment", "organisation")
            raise Forbidden(
                "Only an admin of this organisation can do this. " + message, code="admin_only"
            )
        return OrganisationView(organisation, member.role)

    async def mine(self, person: User) -> list[OrganisationView]:
        """The organisations ``person`` belongs to."""
        return [
            OrganisationView(organisation, member.role)
            for organisation, member in await self._organisations.of_user(person.id)
        ]

    async def create(self, person: User, name: str) -> OrganisationView:
        """A new organisation with ``person`` as its first admin."""
        now = self._clock()
        organisation = Organisation(name=name, created_by=person.id, created_at=now)
        await self._organisations.add(organisation)
        await self._organisations.add(
            OrganisationMember(
                organisation_id=organisation.id, user_id=person.id, role=Role.ADMIN, added_at=now
            )
        )
        logger.info(
            "organisation created",
            extra={"organisation_id": str(organisation.id), "user_id": str(person.id)},
        )
        return OrganisationView(organisation, Role.ADMIN)

    async def divisions(self, person: User, organisation_id: uuid.UUID) -> list[Division]:
        """The organisation's divisions."""
        await self.require(person, organisation_id)
        return await self._organisations.divisions(organisation_id)

    async def add_division(self, person: User, organisation_id: uuid.UUID, name: str) -> Division:
        """A new division (admins only; names are unique in the organisation)."""
        await self.require(person, organisation_id, admin=True)
        if any(d.name == name for d in await self._organisations.divisions(organisation_id)):
            raise Conflict(f"There is already a division called {name}.", code="duplicate_name")
        division = Division(organisation_id=organisation_id, name=name, created_at=self._clock())
        await self._organisations.add(division)
        return division

    async def templates(self, person: User, organisation_id: uuid.UUID) -> list[RoleTemplate]:
        """The organisation's role templates."""
        await self.require(person, organisation_id)
        return await self._organisations.templates(organisation_id)

    async def add_template(
        self, person: User, organisation_id: uuid.UUID, name: str, role: Role, description: str
    ) -> RoleTemplate:
        """A new named role template (admins only; names are unique in the organisation)."""
        await self.require(person, organisation_id, admin=True)
        if any(t.name == name for t in await self._organisations.templates(organisation_id)):
            raise Conflict(f"There is already a template called {name}.", code="duplicate_name")
        template = RoleTemplate(
            organisation_id=organisation_id,
            name=name,
            role=role,
            description=description,
            created_at=self._clock(),
        )
        await self._organisations.add(template)
        return template

    async def administrations(
        self, person: User, organisation_id: uuid.UUID
    ) -> list[tuple[Administration, Environment]]:
        """The companies the organisation administers."""
        await self.require(person, organisation_id)
        return await self._organisations.administrations(organisation_id)

    async def add_administration(
        self,
        person: User,
        organisation_id: uuid.UUID,
        environment_id: uuid.UUID,
        division_id: uuid.UUID | None,
    ) -> tuple[Administration, Environment]:
        """Attach an environment the person administers (admins of both only)."""
        await self.require(person, organisation_id, admin=True)
        environment = (
            await self._environments.require(person, environment_id, Action.ADD_TO_ORGANISATION)
        ).environment
        # Giving an accounting office access to the company needs the current terms.
        await self._environments.require_current_terms(person, environment_id)
        if division_id is not None:
            division = await self._organisations.division(division_id)
            if division is None or division.organisation_id != organisation_id:
                raise BadInput(
                    f"There is no division {division_id} in this organisation.",
                    code="unknown_division",
                )
        if await self._organisations.administration(organisation_id, environment_id):
            raise Conflict(
                "This organisation already administers this environment.", code="already_added"
            )
        administration = Administration(
            organisation_id=organisation_id,
            environment_id=environment_id,
            division_id=division_id,
            added_by=person.id,
            added_at=self._clock(),
        )
        await self._organisations.add(administration)
        logger.info(
            "administration added",
            extra={
                "organisation_id": str(organisation_id),
                "environment_id": str(environment_id),
                "by": str(person.id),
            },
        )
        return administration, environment

    # Members ------------------------------------------------------------------------

    async def members(self, person: User, organisation_id: uuid.UUID) -> list[MemberView]:
        """Everyone in the organisation (any member may see who else is)."""
        await self.require(person, organisation_id)
        return [
            MemberView(user, member.role, member.added_at, None)
            for member, user in await self._organisations.members(organisation_id)
        ]

    async def member(
        self, person: User, organisation_id: uuid.UUID, user_id: uuid.UUID
    ) -> MemberView:
        """One member; NotFound when ``user_id`` is not one."""
        for view in await self.members(person, organisation_id):
            if view.user.id == user_id:
                return view
        raise NotFound(f"no member {user_id} in organisation {organisation_id}")

    async def add_member(
        self, person: User, organisation_id: uuid.UUID, email: str, role: Role
    ) -> MemberView:
        """Add someone who has signed in before, by e-mail (admins only)."""
        await self.require(person, organisation_id, admin=True)
        users = await self._queries.users_with_email(email)
        if not users:
            raise BadInput(
                f"Nobody with the e-mail {email.lower()} has signed in to Ledgerlink yet. "
                "Ask them to sign in once, then add them.",
                code="unknown_person",
            )
        if len(users) > 1:
            raise Conflict(
                f"More than one account (Google and Microsoft) uses {email.lower()}; "
                "ask the person which one they use.",
                code="ambiguous_person",
            )
        [user] = users
        if await self._organisations.member(organisation_id, user.id) is not None:
            raise Conflict(f"{user.email} is already a member.", code="already_member")
        member = OrganisationMember(
            organisation_id=organisation_id, user_id=user.id, role=role, added_at=self._clock()
        )
        await self._organisations.add(member)
        logger.info(
            "organisation member added",
            extra={
                "organisation_id": str(organisation_id),
                "user_id": str(user.id),
                "by": str(person.id),
                "role": role.value,
            },
        )
        return MemberView(user, member.role, member.added_at, None)

    async def _change(
        self, person: User, organisation_id: uuid.UUID, user_id: uuid.UUID, role: Role | None
    ) -> OrganisationMember:
        await self.require(person, organisation_id, admin=True)
        members = await self._organisations.members(organisation_id)
        roles = {member.user_id: member.role for member, _ in members}
        target = next((member for member, _ in members if member.user_id == user_id), None)
        if target is None:
            raise NotFound(f"no member {user_id} in organisation {organisation_id}")
        try:
            check_member_change(roles, user_id, role)
        except LastAdminError as error:
            raise Conflict(
                error.message.replace("environment", "organisation"), code="last_admin"
            ) from None
        return target

    async def change_role(
        self, person: User, organisation_id: uuid.UUID, user_id: uuid.UUID, role: Role
    ) -> MemberView:
        """Make a member an admin or a member (admins only; never the last admin away)."""
        target = await self._change(person, organisation_id, user_id, role)
        target.role = role
        logger.info(
            "organisation member role changed",
            extra={
                "organisation_id": str(organisation_id),
                "user_id": str(user_id),
                "by": str(person.id),
                "role": role.value,
            },
        )
        return await self.member(person, organisation_id, user_id)

    async def remove_member(
        self, person: User, organisation_id: uuid.UUID, user_id: uuid.UUID
    ) -> None:
        """Remove a member (admins only; never the last admin)."""
        await self._change(person, organisation_id, user_id, None)
        await self._organisations.delete_member(organisation_id, user_id)
        logger.info(
            "organisation member removed",
            extra={
                "organisation_id": str(organisation_id),
                "user_id": str(user_id),
                "by": str(person.id),
            },
        )
