"""JSON routes of environments, members, subdomains, terms and organisations.

Every route needs a signed-in person (``dependencies.People``); state-changing ones also a
JSON body and the CSRF header. Membership decides the rest, in the services: a
non-member gets 404 (an environment's existence is not revealed), a member 403 naming the
admins for an admin-only action.
"""

# No ``from __future__ import annotations``: FastAPI must see the dependency aliases
# (``Reader``, ``Writer``), which are local to the router's builder, as real objects.
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Query, Response
from pydantic import BaseModel, Field, StringConstraints
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from ledgerlink.auth.domain.environments import Action, Match, Role
from ledgerlink.auth.domain.terms import TermsKind
from ledgerlink.auth.handlers.dependencies import People, install_refusals, statuses
from ledgerlink.auth.handlers.http import ConnectionPublic
from ledgerlink.auth.handlers.web import WebContext
from ledgerlink.auth.services.environments import (
    CompanyDetails,
    EnvironmentService,
    Membership,
    MemberView,
)
from ledgerlink.auth.services.organisations import OrganisationService, OrganisationView
from ledgerlink.auth.services.sessions import ActiveSession
from ledgerlink.auth.services.terms import CurrentDocument, TermsService
from ledgerlink.auth.storage.models import Administration, Division, Environment, RoleTemplate
from ledgerlink.shared.db import UtcDatetime

Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=300)]
Email = Annotated[
    str,
    StringConstraints(strip_whitespace=True, max_length=320, pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$"),
]


class EnvironmentPublic(BaseModel):
    """An environment as its members see it, with the caller's role."""

    id: uuid.UUID
    country: str
    business_id: str
    company_name: str
    official_name: str | None
    company_email: str | None
    subdomain: str | None
    created_at: UtcDatetime
    role: Role

    @classmethod
    def of(cls, environment: Environment, role: Role) -> "EnvironmentPublic":
        return cls(
            id=environment.id,
            country=environment.country,
            business_id=environment.business_id,
            company_name=environment.company_name,
            official_name=environment.official_name,
            company_email=environment.company_email,
            subdomain=environment.subdomain,
            created_at=environment.created_at,
            role=role,
        )

    @classmethod
    def of_membership(cls, membership: Membership) -> "EnvironmentPublic":
        return cls.of(membership.environment, membership.role)


class CreateEnvironment(BaseModel):
    """The company form (seed 001): business ID, official name, company e-mail, subdomain."""

    country: Annotated[str, StringConstraints(min_length=2, max_length=2)]
    business_id: Annotated[str, StringConstraints(min_length=1, max_length=32)]
    official_name: Name
    company_email: Email
    subdomain: Annotated[str, StringConstraints(max_length=100)] | None = Field(
        default=None, description="Omit to take the one suggested from the official name."
    )
    claim: bool = Field(
        default=False,
        description="Claim an environment an earlier activation made and nobody administers "
        "yet (allowed only for the person that activation names).",
    )
    accepted_terms: list[uuid.UUID] = Field(
        default_factory=list,
        max_length=10,
        description="Ids of the current terms and privacy versions the person accepts for this "
        "environment (GET /v1/terms/current lists them); needed to create, claim or join it "
        "unless already accepted there. Without them: 409 terms_required naming the versions.",
    )


class MatchPublic(BaseModel):
    """What the activation did: created, joined or claimed the environment."""

    outcome: Match
    environment: EnvironmentPublic


class EditEnvironment(BaseModel):
    """The company's details an admin may change (omitted fields stay)."""

    official_name: Name | None = None
    company_email: Email | None = None
    subdomain: Annotated[str, StringConstraints(max_length=100)] | None = None


class MemberPublic(BaseModel):
    """A member of an environment."""

    user_id: uuid.UUID
    email: str
    name: str
    role: Role
    added_at: UtcDatetime
    added_by: uuid.UUID | None

    @classmethod
    def of(cls, view: MemberView) -> "MemberPublic":
        return cls(
            user_id=view.user.id,
            email=view.user.email,
            name=view.user.name,
            role=view.role,
            added_at=view.added_at,
            added_by=view.added_by,
        )


class AddMember(BaseModel):
    """Add someone who has signed in once, by their e-mail."""

    email: Email
    role: Role = Role.MEMBER


class ChangeRole(BaseModel):
    """A member's new role."""

    role: Role


class SubdomainSuggestion(BaseModel):
    """A free subdomain for a company name."""

    name: str
    subdomain: str


class SubdomainAvailability(BaseModel):
    """Whether a subdomain can be used, and if not, why."""

    subdomain: str
    available: bool
    message: str | None


class TermsDocumentPublic(BaseModel):
    """A current version of the terms or privacy notice, and whether the caller accepted it."""

    id: uuid.UUID
    kind: TermsKind
    version: int
    title: str
    text: str | None
    url: str | None
    published_at: UtcDatetime
    accepted: bool

    @classmethod
    def of(cls, item: CurrentDocument) -> "TermsDocumentPublic":
        document = item.document
        return cls(
            id=document.id,
            kind=document.kind,
            version=document.version,
            title=document.title,
            text=document.text,
            url=document.url,
            published_at=document.published_at,
            accepted=item.accepted,
        )


class AcceptTerms(BaseModel):
    """Accept current versions, for an environment (or, without one, for oneself)."""

    document_ids: list[uuid.UUID] = Field(min_length=1, max_length=10)
    environment_id: uuid.UUID | None = None


class OrganisationPublic(BaseModel):
    """An organisation, with the caller's role."""

    id: uuid.UUID
    name: str
    created_at: UtcDatetime
    role: Role

    @classmethod
    def of(cls, view: OrganisationView) -> "OrganisationPublic":
        organisation = view.organisation
        return cls(
            id=organisation.id,
            name=organisation.name,
            created_at=organisation.created_at,
            role=view.role,
        )


class CreateOrganisation(BaseModel):
    """A new organisation (an accounting office)."""

    name: Name


class DivisionPublic(BaseModel):
    """A division of an organisation."""

    id: uuid.UUID
    name: str
    created_at: UtcDatetime

    @classmethod
    def of(cls, division: Division) -> "DivisionPublic":
        return cls(id=division.id, name=division.name, created_at=division.created_at)


class CreateDivision(BaseModel):
    """A new division."""

    name: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]


class TemplatePublic(BaseModel):
    """A named role template."""

    id: uuid.UUID
    name: str
    role: Role
    description: str

    @classmethod
    def of(cls, template: RoleTemplate) -> "TemplatePublic":
        return cls(
            id=template.id, name=template.name, role=template.role, description=template.description
        )


class CreateTemplate(BaseModel):
    """A new role template."""

    name: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
    role: Role
    description: Annotated[str, StringConstraints(max_length=1000)] = ""


class AdministrationPublic(BaseModel):
    """A company an organisation administers."""

    environment_id: uuid.UUID
    company_name: str
    business_id: str
    country: str
    division_id: uuid.UUID | None
    added_at: UtcDatetime

    @classmethod
    def of(cls, administration: Administration, environment: Environment) -> "AdministrationPublic":
        return cls(
            environment_id=environment.id,
            company_name=environment.company_name,
            business_id=environment.business_id,
            country=environment.country,
            division_id=administration.division_id,
            added_at=administration.added_at,
        )


class AddAdministration(BaseModel):
    """Attach an environment the caller administers, optionally to a division."""

    environment_id: uuid.UUID
    division_id: uuid.UUID | None = None


@contextmanager
def _subdomain_race() -> Iterator[None]:
    """Two people taking the same free subdomain at once: the store's unique index refuses
    the second at commit; answer that as the 409 a checked conflict gets, not a 500."""
    try:
        yield
    except IntegrityError as error:
        if "subdomain" not in str(error.orig).lower():
            raise
        raise HTTPException(
            409, "that subdomain was taken a moment ago; choose another (see /v1/subdomains)"
        ) from None


def build_tenancy_router(context: WebContext, people: People) -> APIRouter:
    """The routes; ``people`` resolves the signed-in person."""
    router = APIRouter(prefix="/v1")
    Reader = Annotated[ActiveSession, Depends(people.person)]  # noqa: N806 - a type alias
    Writer = Annotated[ActiveSession, Depends(people.writer)]  # noqa: N806 - a type alias
    db = context.db
    clock = context.clock
    read = statuses(401, 404, 422)

    def environments(session: AsyncSession) -> EnvironmentService:
        return EnvironmentService(session, clock)

    # Environments -------------------------------------------------------------------

    @router.get(
        "/environments",
        tags=["environments"],
        summary="The environments the signed-in person belongs to.",
        response_model=list[EnvironmentPublic],
        responses=statuses(401),
    )
    async def list_environments(active: Reader) -> list[EnvironmentPublic]:
        async with db.transaction() as session:
            mine = await environments(session).mine(active.user)
        return [EnvironmentPublic.of_membership(membership) for membership in mine]

    @router.post(
        "/environments",
        tags=["environments"],
        summary="Create the company's environment, or join (admins) or claim the existing one.",
        response_model=MatchPublic,
        status_code=201,
        responses={
            200: {
                "description": "Joined (the person is its admin) or claimed.",
                "model": MatchPublic,
            },
            **statuses(400, 401, 403, 409, 415, 422),
        },
    )
    async def create_environment(
        body: CreateEnvironment, active: Writer, response: Response
    ) -> MatchPublic:
        with _subdomain_race():
            async with db.transaction() as session:
                matched = await environments(session).create_or_match(
                    active.user,
                    CompanyDetails(
                        country=body.country.upper(),
                        business_id=body.business_id,
                        official_name=body.official_name,
                        company_email=body.company_email,
                        subdomain=body.subdomain,
                    ),
                    claim=body.claim,
                    accepted_terms=body.accepted_terms,
                )
        if matched.outcome is not Match.CREATE:
            response.status_code = 200
        return MatchPublic(
            outcome=matched.outcome,
            environment=EnvironmentPublic.of(matched.environment, Role.ADMIN),
        )

    @router.get(
        "/environments/{environment_id}",
        tags=["environments"],
        summary="One environment (members only).",
        response_model=EnvironmentPublic,
        responses=read,
    )
    async def get_environment(environment_id: uuid.UUID, active: Reader) -> "EnvironmentPublic":
        async with db.transaction() as session:
            membership = await environments(session).require(
                active.user, environment_id, Action.VIEW
            )
        return EnvironmentPublic.of_membership(membership)

    @router.patch(
        "/environments/{environment_id}",
        tags=["environments"],
        summary="Change the company's details (admins only).",
        response_model=EnvironmentPublic,
        responses=statuses(400, 401, 403, 404, 409, 415, 422),
    )
    async def edit_environment(
        environment_id: uuid.UUID, body: EditEnvironment, active: Writer
    ) -> "EnvironmentPublic":
        with _subdomain_race():
            async with db.transaction() as session:
                environment = await environments(session).edit(
                    active.user,
                    environment_id,
                    official_name=body.official_name,
                    company_email=body.company_email,
                    subdomain=body.subdomain,
                )
        return EnvironmentPublic.of(environment, Role.ADMIN)

    @router.get(
        "/environments/{environment_id}/connections",
        tags=["environments"],
        summary="The environment's connections (members only).",
        response_model=list[ConnectionPublic],
        responses=read,
    )
    async def environment_connections(
        environment_id: uuid.UUID, active: Reader
    ) -> list[ConnectionPublic]:
        async with db.transaction() as session:
            connections = await environments(session).connections(active.user, environment_id)
        return [ConnectionPublic.of(connection) for connection in connections]

    # Members ------------------------------------------------------------------------

    @router.get(
        "/environments/{environment_id}/members",
        tags=["environments"],
        summary="Who belongs to the environment (members only).",
        response_model=list[MemberPublic],
        responses=read,
    )
    async def list_members(environment_id: uuid.UUID, active: Reader) -> list[MemberPublic]:
        async with db.transaction() as session:
            views = await environments(session).members(active.user, environment_id)
        return [MemberPublic.of(view) for view in views]

    @router.post(
        "/environments/{environment_id}/members",
        tags=["environments"],
        summary="Add someone who has signed in once (admins only).",
        response_model=MemberPublic,
        status_code=201,
        responses=statuses(400, 401, 403, 404, 409, 415, 422),
    )
    async def add_member(
        environment_id: uuid.UUID, body: AddMember, active: Writer
    ) -> "MemberPublic":
        async with db.transaction() as session:
            view = await environments(session).add_member(
                active.user, environment_id, body.email, body.role
            )
        return MemberPublic.of(view)

    @router.get(
        "/environments/{environment_id}/members/{user_id}",
        tags=["environments"],
        summary="One member (members only).",
        response_model=MemberPublic,
        responses=read,
    )
    async def get_member(
        environment_id: uuid.UUID, user_id: uuid.UUID, active: Reader
    ) -> "MemberPublic":
        async with db.transaction() as session:
            view = await environments(session).member(active.user, environment_id, user_id)
        return MemberPublic.of(view)

    @router.patch(
        "/environments/{environment_id}/members/{user_id}",
        tags=["environments"],
        summary="Change a member's role (admins only; the last admin stays).",
        response_model=MemberPublic,
        responses=statuses(401, 403, 404, 409, 415, 422),
    )
    async def change_role(
        environment_id: uuid.UUID, user_id: uuid.UUID, body: ChangeRole, active: Writer
    ) -> "MemberPublic":
        async with db.transaction() as session:
            view = await environments(session).change_role(
                active.user, environment_id, user_id, body.role
            )
        return MemberPublic.of(view)

    @router.delete(
        "/environments/{environment_id}/members/{user_id}",
        tags=["environments"],
        summary="Remove a member (admins only; the last admin stays).",
        status_code=204,
        response_class=Response,
        responses=statuses(401, 403, 404, 409, 422),
    )
    async def remove_member(
        environment_id: uuid.UUID, user_id: uuid.UUID, active: Writer
    ) -> Response:
        async with db.transaction() as session:
            await environments(session).remove_member(active.user, environment_id, user_id)
        return Response(status_code=204)

    # Subdomains ---------------------------------------------------------------------

    @router.get(
        "/subdomains/suggest",
        tags=["environments"],
        summary="A free subdomain suggested from a company name.",
        response_model=SubdomainSuggestion,
        responses=statuses(401, 422),
    )
    async def suggest_subdomain(
        active: Reader, name: Annotated[str, Query(min_length=1, max_length=300)]
    ) -> SubdomainSuggestion:
        async with db.transaction() as session:
            subdomain = await environments(session).suggest_subdomain(name)
        return SubdomainSuggestion(name=name, subdomain=subdomain)

    @router.get(
        "/subdomains/availability",
        tags=["environments"],
        summary="Whether a subdomain can be used (and why not).",
        response_model=SubdomainAvailability,
        responses=statuses(401, 422),
    )
    async def subdomain_availability(
        active: Reader,
        subdomain: Annotated[str, Query(min_length=1, max_length=100)],
        environment_id: uuid.UUID | None = None,
    ) -> SubdomainAvailability:
        async with db.transaction() as session:
            problem = await environments(session).subdomain_available(
                subdomain, for_environment=environment_id
            )
        return SubdomainAvailability(
            subdomain=subdomain.strip().lower(), available=problem is None, message=problem
        )

    # Terms --------------------------------------------------------------------------

    @router.get(
        "/terms/current",
        tags=["terms"],
        summary="The current terms and privacy notice, and whether the caller accepted them.",
        response_model=list[TermsDocumentPublic],
        responses=read,
    )
    async def current_terms(
        active: Reader, environment_id: uuid.UUID | None = None
    ) -> list[TermsDocumentPublic]:
        async with db.transaction() as session:
            current = await TermsService(session, clock).current(active.user, environment_id)
        return [TermsDocumentPublic.of(item) for item in current]

    @router.post(
        "/terms/accept",
        tags=["terms"],
        summary="Accept the current versions (for an environment, or for oneself).",
        response_model=list[TermsDocumentPublic],
        responses=statuses(401, 403, 404, 409, 415, 422),
    )
    async def accept_terms(body: AcceptTerms, active: Writer) -> list[TermsDocumentPublic]:
        async with db.transaction() as session:
            current = await TermsService(session, clock).accept(
                active.user, body.document_ids, body.environment_id
            )
        return [TermsDocumentPublic.of(item) for item in current]

    # Organisations ------------------------------------------------------------------

    @router.get(
        "/organisations",
        tags=["organisations"],
        summary="The organisations the signed-in person belongs to.",
        response_model=list[OrganisationPublic],
        responses=statuses(401),
    )
    async def list_organisations(active: Reader) -> list[OrganisationPublic]:
        async with db.transaction() as session:
            mine = await OrganisationService(session, clock).mine(active.user)
        return [OrganisationPublic.of(view) for view in mine]

    @router.post(
        "/organisations",
        tags=["organisations"],
        summary="Create an organisation (the caller is its first admin).",
        response_model=OrganisationPublic,
        status_code=201,
        responses=statuses(401, 403, 415, 422),
    )
    async def create_organisation(body: CreateOrganisation, active: Writer) -> "OrganisationPublic":
        async with db.transaction() as session:
            view = await OrganisationService(session, clock).create(active.user, body.name)
        return OrganisationPublic.of(view)

    @router.get(
        "/organisations/{organisation_id}/administrations",
        tags=["organisations"],
        summary="The companies the organisation administers (members only).",
        response_model=list[AdministrationPublic],
        responses=read,
    )
    async def list_administrations(
        organisation_id: uuid.UUID, active: Reader
    ) -> list[AdministrationPublic]:
        async with db.transaction() as session:
            rows = await OrganisationService(session, clock).administrations(
                active.user, organisation_id
            )
        return [AdministrationPublic.of(administration, env) for administration, env in rows]

    @router.post(
        "/organisations/{organisation_id}/administrations",
        tags=["organisations"],
        summary="Attach an environment (admins of both only).",
        response_model=AdministrationPublic,
        status_code=201,
        responses=statuses(400, 401, 403, 404, 409, 415, 422),
    )
    async def add_administration(
        organisation_id: uuid.UUID, body: AddAdministration, active: Writer
    ) -> "AdministrationPublic":
        async with db.transaction() as session:
            administration, environment = await OrganisationService(
                session, clock
            ).add_administration(
                active.user, organisation_id, body.environment_id, body.division_id
            )
        return AdministrationPublic.of(administration, environment)

    @router.get(
        "/organisations/{organisation_id}/members",
        tags=["organisations"],
        summary="Who belongs to the organisation (members only).",
        response_model=list[MemberPublic],
        responses=read,
    )
    async def list_organisation_members(
        organisation_id: uuid.UUID, active: Reader
    ) -> list[MemberPublic]:
        async with db.transaction() as session:
            views = await OrganisationService(session, clock).members(active.user, organisation_id)
        return [MemberPublic.of(view) for view in views]

    @router.post(
        "/organisations/{organisation_id}/members",
        tags=["organisations"],
        summary="Add someone who has signed in once (admins only).",
        response_model=MemberPublic,
        status_code=201,
        responses=statuses(400, 401, 403, 404, 409, 415, 422),
    )
    async def add_organisation_member(
        organisation_id: uuid.UUID, body: AddMember, active: Writer
    ) -> "MemberPublic":
        async with db.transaction() as session:
            view = await OrganisationService(session, clock).add_member(
                active.user, organisation_id, body.email, body.role
            )
        return MemberPublic.of(view)

    @router.patch(
        "/organisations/{organisation_id}/members/{user_id}",
        tags=["organisations"],
        summary="Change a member's role (admins only; the last admin stays).",
        response_model=MemberPublic,
        responses=statuses(401, 403, 404, 409, 415, 422),
    )
    async def change_organisation_role(
        organisation_id: uuid.UUID, user_id: uuid.UUID, body: ChangeRole, active: Writer
    ) -> "MemberPublic":
        async with db.transaction() as session:
            view = await OrganisationService(session, clock).change_role(
                active.user, organisation_id, user_id, body.role
            )
        return MemberPublic.of(view)

    @router.delete(
        "/organisations/{organisation_id}/members/{user_id}",
        tags=["organisations"],
        summary="Remove a member (admins only; the last admin stays).",
        status_code=204,
        response_class=Response,
        responses=statuses(401, 403, 404, 409, 422),
    )
    async def remove_organisation_member(
        organisation_id: uuid.UUID, user_id: uuid.UUID, active: Writer
    ) -> Response:
        async with db.transaction() as session:
            await OrganisationService(session, clock).remove_member(
                active.user, organisation_id, user_id
            )
        return Response(status_code=204)

    @router.get(
        "/organisations/{organisation_id}/divisions",
        tags=["organisations"],
        summary="The organisation's divisions (members only).",
        response_model=list[DivisionPublic],
        responses=read,
    )
    async def list_divisions(organisation_id: uuid.UUID, active: Reader) -> list[DivisionPublic]:
        async with db.transaction() as session:
            divisions = await OrganisationService(session, clock).divisions(
                active.user, organisation_id
            )
        return [DivisionPublic.of(division) for division in divisions]

    @router.post(
        "/organisations/{organisation_id}/divisions",
        tags=["organisations"],
        summary="Add a division (admins only).",
        response_model=DivisionPublic,
        status_code=201,
        responses=statuses(401, 403, 404, 409, 415, 422),
    )
    async def add_division(
        organisation_id: uuid.UUID, body: CreateDivision, active: Writer
    ) -> "DivisionPublic":
        async with db.transaction() as session:
            division = await OrganisationService(session, clock).add_division(
                active.user, organisation_id, body.name
            )
        return DivisionPublic.of(division)

    @router.get(
        "/organisations/{organisation_id}/templates",
        tags=["organisations"],
        summary="The organisation's role templates (members only).",
        response_model=list[TemplatePublic],
        responses=read,
    )
    async def list_templates(organisation_id: uuid.UUID, active: Reader) -> list[TemplatePublic]:
        async with db.transaction() as session:
            templates = await OrganisationService(session, clock).templates(
                active.user, organisation_id
            )
        return [TemplatePublic.of(template) for template in templates]

    @router.post(
        "/organisations/{organisation_id}/templates",
        tags=["organisations"],
        summary="Add a role template (admins only).",
        response_model=TemplatePublic,
        status_code=201,
        responses=statuses(401, 403, 404, 409, 415, 422),
    )
    async def add_template(
        organisation_id: uuid.UUID, body: CreateTemplate, active: Writer
    ) -> "TemplatePublic":
        async with db.transaction() as session:
            template = await OrganisationService(session, clock).add_template(
                active.user, organisation_id, body.name, body.role, body.description
            )
        return TemplatePublic.of(template)

    return router


def register_tenancy_routes(app: FastAPI, context: WebContext, people: People) -> None:
    """Attach the routes and the JSON answers of the services' refusals."""
    install_refusals(app)
    app.include_router(build_tenancy_router(context, people))
