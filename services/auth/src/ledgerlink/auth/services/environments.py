"""Environments for signed-in people: create or match by business ID, edit, members, roles.

Every method takes the acting person and checks their membership first: a non-member
gets NotFound (an environment's existence is not revealed), a member whose role does not
allow the action gets Forbidden naming the admins. No commits: the request commits.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from ledgerlink.auth.domain.clock import Clock
from ledgerlink.auth.domain.environments import (
    SUBDOMAIN_MESSAGES,
    Action,
    Contact,
    LastAdminError,
    Match,
    Role,
    SubdomainError,
    SubdomainProblem,
    ask_admins,
    check_member_change,
    check_subdomain,
    decide_match,
    may,
    slugify,
    subdomain_problem,
    suggest_subdomain,
)
from ledgerlink.auth.domain.terms import (
    NotCurrentError,
    Published,
    TermsRequiredError,
    check_terms_accepted,
    current_versions,
)
from ledgerlink.auth.services.access import BadInput, Conflict, Forbidden, NotFound
from ledgerlink.auth.storage.models import (
    Connection,
    Environment,
    EnvironmentMember,
    TermsAcceptance,
    TermsDocument,
    User,
)
from ledgerlink.auth.storage.repository import ConnectionRepository, EnvironmentRepository
from ledgerlink.auth.storage.tenancy import MembershipRepository, TenancyQueries, TermsRepository
from ledgerlink.shared.business_id import BusinessIdError, parse_business_id
from ledgerlink.shared.db import as_utc

logger = logging.getLogger(__name__)


def published(document: TermsDocument) -> Published:
    """A stored version as the terms rules see it (SQLite hands back naive datetimes)."""
    return Published(document.id, document.kind, document.version, as_utc(document.published_at))


# How much of a slug the look-up of taken subdomains keys on: suffixes (-2, -3 ...) only
# ever shorten the slug's end, so every candidate starts with this much of it.
_PREFIX = 50


@dataclass(frozen=True)
class Membership:
    """An environment as one person sees it: with their role."""

    environment: Environment
    role: Role


@dataclass(frozen=True)
class CompanyDetails:
    """What a person enters for their company (seed 001's "Create Company" form)."""

    country: str
    business_id: str
    official_name: str
    company_email: str
    #: None: suggested from the official name.
    subdomain: str | None = None


@dataclass(frozen=True)
class Matched:
    """The outcome of an activation's match: the environment and what happened."""

    environment: Environment
    outcome: Match


@dataclass(frozen=True)
class MemberView:
    """A member as others in the environment see them."""

    user: User
    role: Role
    added_at: datetime
    added_by: uuid.UUID | None


class EnvironmentService:
    """Environments and who belongs to them."""

    def __init__(self, session: AsyncSession, clock: Clock) -> None:
        self._environments = EnvironmentRepository(session)
        self._connections = ConnectionRepository(session)
        self._members = MembershipRepository(session)
        self._queries = TenancyQueries(session)
        self._terms = TermsRepository(session)
        self._clock = clock

    # Access -------------------------------------------------------------------------

    async def require(self, person: User, environment_id: uuid.UUID, action: Action) -> Membership:
        """The environment if ``person`` may do ``action`` there; NotFound or Forbidden."""
        environment = await self._environments.get(environment_id)
        member = (
            await self._members.get(environment_id, person.id) if environment is not None else None
        )
        if environment is None or member is None:
            raise NotFound(f"no environment {environment_id}")
        if not may(member.role, action):
            raise Forbidden(
                "Only an admin of this environment can do this. "
                + ask_admins(await self.admins(environment_id)),
                code="admin_only",
            )
        return Membership(environment, member.role)

    async def admins(self, environment_id: uuid.UUID) -> list[Contact]:
        """Whom to ask about this environment: its admins."""
        return [
            Contact(user.name, user.email)
            for member, user in await self._members.members(environment_id)
            if member.role is Role.ADMIN
        ]

    async def mine(self, person: User) -> list[Membership]:
        """The environments ``person`` belongs to."""
        return [
            Membership(environment, member.role)
            for environment, member in await self._members.environments_of(person.id)
        ]

    # Terms --------------------------------------------------------------------------

    async def require_current_terms(
        self,
        person: User,
        environment_id: uuid.UUID | None,
        offered: Collection[uuid.UUID] = (),
    ) -> list[uuid.UUID]:
        """Refuse (409 ``terms_required``, naming each version) unless ``person`` accepted
        the current terms and privacy notice for the environment, before or with this
        request (``offered``); the offered ids still to record are returned.

        Which admin actions need it (``domain/terms.py`` has the rule, the README the
        list): creating, claiming or joining an environment through an activation, adding
        a member, making someone an admin. Never what reduces access or only reads.
        """
        current = current_versions(
            (published(document) for document in await self._terms.documents()), self._clock()
        )
        accepted = (
            await self._terms.accepted_ids(person.id, environment_id)
            if environment_id is not None
            else set()
        )
        try:
            return check_terms_accepted(current, accepted, offered)
        except NotCurrentError as error:
            raise Conflict(str(error), code="not_current") from None
        except TermsRequiredError as error:
            raise Conflict(str(error), code="terms_required") from None

    async def _record_terms(
        self, person: User, environment_id: uuid.UUID, document_ids: Collection[uuid.UUID]
    ) -> None:
        now = self._clock()
        for document_id in document_ids:
            await self._terms.add(
                TermsAcceptance(
                    user_id=person.id,
                    document_id=document_id,
                    environment_id=environment_id,
                    accepted_at=now,
                )
            )
            logger.info(
                "terms accepted",
                extra={
                    "user_id": str(person.id),
                    "document_id": str(document_id),
                    "environment_id": str(environment_id),
                },
            )

    # Subdomains ---------------------------------------------------------------------

    async def suggest_subdomain(self, name: str) -> str:
        """A free subdomain for a company called ``name``."""
        base = slugify(name) or "company"
        return suggest_subdomain(name, await self._queries.subdomains_starting(base[:_PREFIX]))

    async def subdomain_available(
        self, subdomain: str, *, for_environment: uuid.UUID | None = None
    ) -> str | None:
        """Why ``subdomain`` cannot be used (a sentence), or None when it can."""
        value = subdomain.strip().lower()
        problem = subdomain_problem(value)
        if problem is not None:
            return SubdomainError(value, problem).message
        owner = await self._queries.subdomain_owner(value)
        if owner is not None and owner != for_environment:
            return SUBDOMAIN_MESSAGES[SubdomainProblem.TAKEN]
        return None

    async def _choose_subdomain(
        self, wanted: str | None, name: str, environment_id: uuid.UUID | None = None
    ) -> str:
        if wanted is None:
            return await self.suggest_subdomain(name)
        try:
            value = check_subdomain(wanted)
        except SubdomainError as error:
            raise BadInput(error.message, code=f"subdomain_{error.problem.value}") from None
        owner = await self._queries.subdomain_owner(value)
        if owner is not None and owner != environment_id:
            raise Conflict(
                f"The subdomain {value} is already used by another company; choose another.",
                code="subdomain_taken",
            )
        return value

    # Create or match ----------------------------------------------------------------

    async def create_or_match(
        self,
        person: User,
        details: CompanyDetails,
        *,
        claim: bool = False,
        accepted_terms: Collection[uuid.UUID] = (),
    ) -> Matched:
        """An activation by ``person`` for a business ID: create, join, claim or refuse.

        * no environment for the business ID: created, ``person`` its first admin;
        * ``person`` is its admin: joined (nothing changes);
        * it has admins and ``person`` is not one: Conflict naming them;
        * it has no members yet (made by a file activation): Conflict asking for an explicit
          claim; with ``claim``, ``person`` becomes its first admin only if one of its
          activations names their verified e-mail (Forbidden otherwise), and the claim is
          recorded (``claimed_by``, ``claimed_at``) and logged.

        Creating, joining and claiming need ``person``'s acceptance of the current terms
        and privacy notice for the environment: recorded earlier (joining) or given as
        ``accepted_terms`` (recorded with the environment, in the same transaction);
        otherwise Conflict ``terms_required`` naming the versions.
        """
        try:
            business_id = parse_business_id(details.country, details.business_id)
        except BusinessIdError as error:
            raise BadInput(error.message, code=error.reason_code) from None
        environment = await self._environments.find_by_business_id(
            business_id.country, business_id.value
        )
        role = None
        members = 0
        named = False
        if environment is not None:
            member = await self._members.get(environment.id, person.id)
            role = member.role if member is not None else None
            members = await self._members.count(environment.id)
            if members == 0 and claim:
                named = await self._queries.requested_by(environment.id, person.email)
        decision = decide_match(
            exists=environment is not None,
            role=role,
            admins=await self.admins(environment.id) if environment is not None else [],
            has_members=members > 0,
            claim=claim,
            named_by_activation=named,
        )
        now = self._clock()
        to_record: list[uuid.UUID] = []
        if decision.outcome in (Match.CREATE, Match.JOIN, Match.CLAIM):
            to_record = await self.require_current_terms(
                person,
                environment.id if environment is not None else None,
                accepted_terms,
            )
        if decision.outcome is Match.CREATE:
            subdomain = await self._choose_subdomain(details.subdomain, details.official_name)
            environment = await self._environments.add(
                Environment(
                    country=business_id.country,
                    business_id=business_id.value,
                    company_name=details.official_name,
                    official_name=details.official_name,
                    company_email=details.company_email.lower(),
                    subdomain=subdomain,
                    created_by=person.id,
                    created_at=now,
                )
            )
            await self._members.add(
                EnvironmentMember(
                    environment_id=environment.id, user_id=person.id, role=Role.ADMIN, added_at=now
                )
            )
            await self._record_terms(person, environment.id, to_record)
            logger.info(
                "environment created",
                extra={"environment_id": str(environment.id), "user_id": str(person.id)},
            )
            return Matched(environment, decision.outcome)
        assert environment is not None
        if decision.outcome is Match.JOIN:
            await self._record_terms(person, environment.id, to_record)
            return Matched(environment, decision.outcome)
        if decision.outcome is Match.CLAIM:
            environment.subdomain = await self._choose_subdomain(
                details.subdomain, details.official_name, environment.id
            )
            environment.official_name = details.official_name
            environment.company_email = details.company_email.lower()
            environment.claimed_by = person.id
            environment.claimed_at = now
            await self._members.add(
                EnvironmentMember(
                    environment_id=environment.id, user_id=person.id, role=Role.ADMIN, added_at=now
                )
            )
            await self._record_terms(person, environment.id, to_record)
            logger.warning(
                "unclaimed environment claimed",
                extra={"environment_id": str(environment.id), "user_id": str(person.id)},
            )
            return Matched(environment, decision.outcome)
        logger.info(
            "activation match refused",
            extra={"outcome": decision.outcome.value, "user_id": str(person.id)},
        )
        if decision.outcome is Match.CLAIM_REFUSED:
            raise Forbidden(decision.message, code=decision.outcome.value)
        raise Conflict(decision.message, code=decision.outcome.value)

    # Edit ---------------------------------------------------------------------------

    async def edit(
        self,
        person: User,
        environment_id: uuid.UUID,
        *,
        official_name: str | None = None,
        company_email: str | None = None,
        subdomain: str | None = None,
    ) -> Environment:
        """Change the company's details (admins only)."""
        environment = (await self.require(person, environment_id, Action.EDIT)).environment
        if subdomain is not None:
            environment.subdomain = await self._choose_subdomain(
                subdomain, environment.company_name, environment.id
            )
        if official_name is not None:
            environment.official_name = official_name
            environment.company_name = official_name
        if company_email is not None:
            environment.company_email = company_email.lower()
        return environment

    # Members ------------------------------------------------------------------------

    async def members(self, person: User, environment_id: uuid.UUID) -> list[MemberView]:
        """Everyone in the environment (any member may see who else is)."""
        await self.require(person, environment_id, Action.VIEW)
        return [
            MemberView(user, member.role, member.added_at, member.added_by)
            for member, user in await self._members.members(environment_id)
        ]

    async def member(
        self, person: User, environment_id: uuid.UUID, user_id: uuid.UUID
    ) -> MemberView:
        """One member; NotFound when ``user_id`` is not one."""
        for view in await self.members(person, environment_id):
            if view.user.id == user_id:
                return view
        raise NotFound(f"no member {user_id} in environment {environment_id}")

    async def add_member(
        self, person: User, environment_id: uuid.UUID, email: str, role: Role
    ) -> MemberView:
        """Add someone who has signed in before, by e-mail (admins only, with the current
        terms accepted for the environment)."""
        await self.require(person, environment_id, Action.MANAGE_MEMBERS)
        await self.require_current_terms(person, environment_id)
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
        if await self._members.get(environment_id, user.id) is not None:
            raise Conflict(f"{user.email} is already a member.", code="already_member")
        member = await self._members.add(
            EnvironmentMember(
                environment_id=environment_id,
                user_id=user.id,
                role=role,
                added_at=self._clock(),
                added_by=person.id,
            )
        )
        logger.info(
            "member added",
            extra={
                "environment_id": str(environment_id),
                "user_id": str(user.id),
                "by": str(person.id),
                "role": role.value,
            },
        )
        return MemberView(user, member.role, member.added_at, member.added_by)

    async def _change(
        self, person: User, environment_id: uuid.UUID, user_id: uuid.UUID, role: Role | None
    ) -> EnvironmentMember:
        await self.require(person, environment_id, Action.MANAGE_MEMBERS)
        members = await self._members.members(environment_id)
        roles = {member.user_id: member.role for member, _ in members}
        target = next((member for member, _ in members if member.user_id == user_id), None)
        if target is None:
            raise NotFound(f"no member {user_id} in environment {environment_id}")
        try:
            check_member_change(roles, user_id, role)
        except LastAdminError as error:
            raise Conflict(error.message, code="last_admin") from None
        return target

    async def change_role(
        self, person: User, environment_id: uuid.UUID, user_id: uuid.UUID, role: Role
    ) -> MemberView:
        """Make a member an admin or a member (admins only; never the last admin away)."""
        target = await self._change(person, environment_id, user_id, role)
        if role is Role.ADMIN and target.role is not Role.ADMIN:
            # Granting more access needs the current terms; taking it away never does.
            await self.require_current_terms(person, environment_id)
        target.role = role
        logger.info(
            "member role changed",
            extra={
                "environment_id": str(environment_id),
                "user_id": str(user_id),
                "by": str(person.id),
                "role": role.value,
            },
        )
        return await self.member(person, environment_id, user_id)

    async def remove_member(
        self, person: User, environment_id: uuid.UUID, user_id: uuid.UUID
    ) -> None:
        """Remove a member (admins only; never the last admin)."""
        await self._change(person, environment_id, user_id, None)
        await self._members.delete(environment_id, user_id)
        logger.info(
            "member removed",
            extra={
                "environment_id": str(environment_id),
                "user_id": str(user_id),
                "by": str(person.id),
            },
        )

    # Connections --------------------------------------------------------------------

    async def connections(self, person: User, environment_id: uuid.UUID) -> list[Connection]:
        """The environment's connections (any member)."""
        await self.require(person, environment_id, Action.VIEW_CONNECTIONS)
        return await self._queries.connections_of(environment_id)

    async def connection(self, person: User, connection_id: uuid.UUID) -> Connection:
        """One connection of one of the person's environments; NotFound otherwise.

        A rejected activation has no environment, so no person sees it here.
        """
        connection = await self._connections.get(connection_id)
        if connection is not None and connection.environment_id is not None:
            member = await self._members.get(connection.environment_id, person.id)
            if member is not None and may(member.role, Action.VIEW_CONNECTIONS):
                return connection
        raise NotFound(f"no connection {connection_id}")

    async def require_connection(
        self, person: User, connection_id: uuid.UUID, action: Action
    ) -> Connection:
        """The connection if ``person`` may do ``action`` in its environment: NotFound for a
        non-member (or no such connection), Forbidden naming the admins for a member."""
        connection = await self._connections.get(connection_id)
        if connection is None or connection.environment_id is None:
            raise NotFound(f"no connection {connection_id}")
        try:
            await self.require(person, connection.environment_id, action)
        except NotFound:
            raise NotFound(f"no connection {connection_id}") from None
        return connection

    async def memberships_for_connections(
        self, person: User, connection_ids: Collection[uuid.UUID]
    ) -> dict[uuid.UUID, Membership | None]:
        """The person's membership of the environment owning each connection (None: no
        such connection, or the person is not a member there): what another service's
        pages authorize by."""
        found: dict[uuid.UUID, Membership | None] = {}
        for connection_id in connection_ids:
            connection = await self._connections.get(connection_id)
            membership = None
            if connection is not None and connection.environment_id is not None:
                environment = await self._environments.get(connection.environment_id)
                member = await self._members.get(connection.environment_id, person.id)
                if environment is not None and member is not None:
                    membership = Membership(environment, member.role)
            found[connection_id] = membership
        return found

    async def connections_for_business_id(self, person: User, business_id: str) -> list[Connection]:
        """Connections for this business ID (raw or normal form) in the person's environments."""
        return await self._queries.connections_visible_to(person.id, business_id)
