"""Visma.net through Visma Connect, from the product's pages.

Seed 002 ("Managing Visma.net connection"): New connection -> Visma -> Visma Connect login
and "allow" -> the administrations the login reaches -> CoC number or a reason and a sector
per chosen administration -> bulk assignment (divisions, users, template; skippable) ->
finish: each administration a connection, ``configuring`` until its first import.
"Import from an existing connection" reuses the stored grant and asks for the Visma login
again only when it no longer works.

Seed 003 (Visma Nmbrs): a named Visma.net account is authorised with a fresh Visma login
(``prompt=login``) and one chosen company; it must be allowed to write journals.

No commits: the request commits. The flow's secrets (PKCE verifier, then the tokens) are
sealed by the vault bound to the flow's id; the OAuth ``state`` is kept as its SHA-256.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from pydantic import SecretStr
from sqlalchemy.ext.asyncio import AsyncSession

from ledgerlink.auth.domain.clock import Clock
from ledgerlink.auth.domain.connect_flows import (
    AdministrationDetails,
    FieldErrors,
    check_administration,
    environment_business_id,
    grants_write,
)
from ledgerlink.auth.domain.environments import Role
from ledgerlink.auth.domain.lifecycle import USABLE
from ledgerlink.auth.services.access import BadInput, Conflict, Forbidden, NotFound
from ledgerlink.auth.services.company_import import (
    CompanyImport,
    ImportedCompany,
    open_json,
    seal_json,
)
from ledgerlink.auth.services.lifecycle import LifecycleService, OAuthAuthorization
from ledgerlink.auth.services.organisations import OrganisationService
from ledgerlink.auth.services.token_service import CredentialError, CredentialService
from ledgerlink.auth.storage.connect_flows import (
    ConnectFlowRepository,
    ConnectionSettingsRepository,
    OrganisationPeople,
)
from ledgerlink.auth.storage.models import (
    ConnectFlow,
    Connection,
    ConnectionSettings,
    RoleTemplate,
    User,
)
from ledgerlink.auth.storage.repository import ConnectionRepository
from ledgerlink.auth.storage.tenancy import OrganisationRepository
from ledgerlink.auth.storage.vault import Sealed, Vault
from ledgerlink.auth.storage.vendor_flows import (
    GrantedTokens,
    VendorCompany,
    VendorDownError,
    VendorRefusedError,
    VismaConnectClient,
    pkce_pair,
)
from ledgerlink.shared.events import Product, Provider
from ledgerlink.shared.messaging.outbox import Outbox

logger = logging.getLogger(__name__)

ADMINISTRATIONS = "administrations"
NMBRS_ACCOUNT = "nmbrs_account"
_FLOW_FIELD = "visma_connect_flow"
#: The product the administrations are connected for. UNCONFIRMED: seed 002's office
#: product is a planning/reporting one.
ADMINISTRATION_PRODUCT = Product.PLANNING.value
#: The stand-in business ID prefix of administrations without a CoC number.
VISMA_PREFIX = "VISMA"


class FlowProblem(Exception):  # noqa: N818 - a refusal shown on a page
    """A flow cannot go on; ``code`` is stable, ``message`` is for the person."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def state_hash(state: str) -> str:
    """How a flow is found by its OAuth state without storing the state itself."""
    return hashlib.sha256(state.encode()).hexdigest()


@dataclass(frozen=True)
class Started:
    """A flow sent to Visma Connect: where the browser goes."""

    flow: ConnectFlow
    authorize_url: str


@dataclass(frozen=True)
class ImportChoice:
    """Step 5: a company the login reaches and whether it is already connected."""

    company: VendorCompany
    connected: bool


@dataclass(frozen=True)
class Assignment:
    """Step 7: what the chosen administrations get (None/empty: the defaults)."""

    administrations: list[str]
    division_id: uuid.UUID | None
    user_ids: list[uuid.UUID]
    template_id: uuid.UUID | None


class VismaNetConnect:
    """The Visma.net pages' use cases (see the module docstring)."""

    def __init__(
        self,
        session: AsyncSession,
        *,
        vault: Vault,
        outbox: Outbox,
        client: VismaConnectClient,
        clock: Clock,
        flow_ttl: timedelta,
    ) -> None:
        self._session = session
        self._vault = vault
        self._outbox = outbox
        self._client = client
        self._clock = clock
        self._ttl = flow_ttl
        self._flows = ConnectFlowRepository(session)
        self._settings = ConnectionSettingsRepository(session)
        self._organisations = OrganisationService(session, clock)
        self._organisation_rows = OrganisationRepository(session)

    # -- starting --------------------------------------------------------------------------

    async def start(
        self,
        person: User,
        kind: str,
        redirect_uri: str,
        data: dict[str, Any],
    ) -> Started:
        """A new flow and the Visma Connect URL to send the person to."""
        if kind == ADMINISTRATIONS:
            await self._organisations.require(
                person, uuid.UUID(str(data["organisation_id"])), admin=True
            )
        state = secrets.token_urlsafe(32)
        verifier, challenge = pkce_pair()
        flow = ConnectFlow(
            user_id=person.id,
            provider=Provider.VISMA_NET.value,
            kind=kind,
            state_hash=state_hash(state),
            data=dict(data),
            created_at=self._clock(),
        )
        await self._flows.add(flow)
        self._seal(flow, {"verifier": verifier})
        await self._flows.save(flow)
        url = self._client.authorize_url(
            state=state,
            challenge=challenge,
            redirect_uri=redirect_uri,
            fresh_login=kind == NMBRS_ACCOUNT,
        )
        logger.info("visma connect flow started", extra={"flow_id": str(flow.id), "kind": kind})
        return Started(flow, url)

    async def start_import(
        self,
        person: User,
        organisation_id: uuid.UUID,
        credentials: CredentialService,
    ) -> ConnectFlow | None:
        """Import from an existing connection with its stored grant.

        None when there is no usable stored grant (revoked, refused by Visma...): the
        person must log in at Visma again.
        """
        await self._organisations.require(person, organisation_id, admin=True)
        holders = [
            connection
            for connection, settings in await self._settings.of_organisation(
                organisation_id, Provider.VISMA_NET.value
            )
            if settings.settings.get("holds_grant") and connection.status in USABLE
        ]
        for holder in reversed(holders):
            try:
                issued = await credentials.credentials(holder.id)
                companies = await self._client.companies(issued.secrets["access_token"])
            except (CredentialError, VendorRefusedError, KeyError):
                logger.info("stored visma grant unusable", extra={"connection_id": str(holder.id)})
                continue
            flow = ConnectFlow(
                user_id=person.id,
                provider=Provider.VISMA_NET.value,
                kind=ADMINISTRATIONS,
                data={
                    "organisation_id": str(organisation_id),
                    "holder": str(holder.id),
                    "companies": [_company_json(company) for company in companies],
                },
                created_at=self._clock(),
            )
            await self._flows.add(flow)
            return flow
        return None

    async def callback(
        self,
        person: User,
        state: str | None,
        code: str | None,
        error: str | None,
        redirect_uri: str,
    ) -> ConnectFlow:
        """Visma Connect sent the person back: redeem the code, list the companies."""
        flow = await self._flows.by_state(state_hash(state)) if state else None
        if flow is None or flow.user_id != person.id or flow.finished_at is not None:
            raise FlowProblem(
                "unknown_state",
                "This Visma sign-in does not belong to a connection you started here. Start again.",
            )
        flow.state_hash = None  # single use
        if self._expired(flow):
            raise FlowProblem("expired", "This connection attempt took too long. Start again.")
        if error or not code:
            await self._flows.save(flow)
            raise FlowProblem(
                "denied",
                "Visma did not allow the connection"
                + (" (you chose Deny)." if error == "access_denied" else ".")
                + " Start again to try once more.",
            )
        sealed = self._opened(flow)
        try:
            tokens = await self._client.exchange(code, sealed["verifier"], redirect_uri)
            companies = await self._client.companies(tokens.access_token)
        except VendorRefusedError as refusal:
            raise FlowProblem(
                "refused", f"Visma refused the sign-in ({refusal.code}). Start again."
            ) from None
        except VendorDownError:
            raise FlowProblem(
                "unavailable", "Visma could not be reached. Try again in a moment."
            ) from None
        self._seal(flow, _token_secrets(tokens))
        flow.data = {
            **flow.data,
            "companies": [_company_json(company) for company in companies],
            "scope": tokens.scope or self._client.settings.scope,
            "expires_in": tokens.expires_in,
        }
        await self._flows.save(flow)
        return flow

    # -- steps -----------------------------------------------------------------------------

    async def flow(self, person: User, flow_id: uuid.UUID, kind: str) -> ConnectFlow:
        """The person's unfinished flow of ``kind``."""
        flow = await self._flows.get(flow_id)
        if flow is None or flow.user_id != person.id or flow.kind != kind:
            raise NotFound("There is no such connection attempt.")
        if flow.finished_at is not None:
            raise Conflict("This connection attempt is finished.", code="finished")
        if self._expired(flow):
            raise FlowProblem("expired", "This connection attempt took too long. Start again.")
        return flow

    async def choices(self, flow: ConnectFlow) -> list[ImportChoice]:
        """Step 5's list: every company the login reaches, connected ones marked."""
        organisation_id = uuid.UUID(str(flow.data["organisation_id"]))
        connected = {
            str(settings.settings.get("company_id"))
            for connection, settings in await self._settings.of_organisation(
                organisation_id, Provider.VISMA_NET.value
            )
            if connection.status in USABLE or connection.status.value == "needs_reauth"
        }
        return [
            ImportChoice(company, company.external_id in connected) for company in _companies(flow)
        ]

    async def choose(self, flow: ConnectFlow, chosen: list[str]) -> None:
        """Step 5: the administrations to import (at least one, none already connected)."""
        allowed = {c.company.external_id for c in await self.choices(flow) if not c.connected}
        picked = [company for company in dict.fromkeys(chosen) if company in allowed]
        if not picked:
            raise BadInput("Choose at least one administration to import.", code="none_chosen")
        flow.data = {**flow.data, "chosen": picked, "details": {}}
        await self._flows.save(flow)

    def chosen(self, flow: ConnectFlow) -> list[VendorCompany]:
        """The administrations chosen in step 5, in the list's order."""
        wanted = set(flow.data.get("chosen", []))
        return [company for company in _companies(flow) if company.external_id in wanted]

    async def details(
        self, flow: ConnectFlow, answers: dict[str, tuple[str, str, str]]
    ) -> dict[str, FieldErrors]:
        """Step 6: CoC or reason and sector per administration; errors per administration
        and field (nothing is kept until every administration is right, but the typed
        answers are given back to the page)."""
        errors: dict[str, FieldErrors] = {}
        kept: dict[str, dict[str, str | None]] = {}
        for company in self.chosen(flow):
            coc, reason, sector = answers.get(company.external_id, ("", "", ""))
            details, problems = check_administration(coc, reason, sector)
            if problems:
                errors[company.external_id] = problems
            elif details is not None:
                kept[company.external_id] = _details_json(details)
        if not errors:
            flow.data = {**flow.data, "details": kept}
            await self._flows.save(flow)
        return errors

    async def assignment_options(
        self, flow: ConnectFlow
    ) -> tuple[list[Any], list[tuple[User, Role]], list[RoleTemplate]]:
        """Step 7's choices: divisions, members (with their role), templates."""
        organisation_id = uuid.UUID(str(flow.data["organisation_id"]))
        people = [
            (user, member.role)
            for member, user in await OrganisationPeople(self._session).members(organisation_id)
        ]
        return (
            await self._organisation_rows.divisions(organisation_id),
            people,
            await self._organisation_rows.templates(organisation_id),
        )

    async def finish(
        self, person: User, flow: ConnectFlow, assignment: Assignment | None
    ) -> list[Connection]:
        """Step 8: every chosen administration becomes a connection, authorised with the
        login's grant (kept once, on the first of them) -> ``configuring`` and
        ``connection.activated``."""
        organisation_id = uuid.UUID(str(flow.data["organisation_id"]))
        await self._organisations.require(person, organisation_id, admin=True)
        details = flow.data.get("details") or {}
        chosen = [company for company in self.chosen(flow) if company.external_id in details]
        if not chosen:
            raise BadInput("Enter the details of the chosen administrations first.")
        divisions, people, templates = await self.assignment_options(flow)
        admins = [user.id for user, role in people if role is Role.ADMIN]
        assigned = set(assignment.administrations) if assignment else set()
        division = assignment.division_id if assignment else None
        if division is not None and division not in {d.id for d in divisions}:
            raise BadInput("Choose one of the organisation's divisions.", code="unknown_division")
        template = None
        if assignment and assignment.template_id is not None:
            template = next((t for t in templates if t.id == assignment.template_id), None)
            if template is None:
                raise BadInput("Choose one of the organisation's templates.")
        member_ids = {user.id for user, _role in people}
        holder_id = flow.data.get("holder")
        tokens = None if holder_id else self._opened(flow)
        connections: list[Connection] = []
        importer = CompanyImport(self._session, self._clock)
        lifecycle = LifecycleService(
            self._session, self._outbox, vault=self._vault, clock=self._clock
        )
        for company in chosen:
            answer = details[company.external_id]
            members: dict[uuid.UUID, Role] = dict.fromkeys(admins, Role.ADMIN)
            in_bulk = company.external_id in assigned
            if in_bulk and assignment is not None:
                for user_id in assignment.user_ids:
                    if user_id in member_ids and user_id not in members:
                        members[user_id] = template.role if template else Role.MEMBER
            members[person.id] = Role.ADMIN
            connection = await importer.add(
                person,
                organisation_id,
                ImportedCompany(
                    country="NL",
                    business_id=environment_business_id(
                        VISMA_PREFIX, company.external_id, answer.get("coc")
                    ),
                    name=company.name,
                    provider=Provider.VISMA_NET.value,
                    product=ADMINISTRATION_PRODUCT,
                    division_id=division if in_bulk else None,
                    members=tuple(members.items()),
                    settings={
                        "company_id": company.external_id,
                        "coc": answer.get("coc"),
                        "no_coc_reason": answer.get("no_coc_reason"),
                        "sector": answer.get("sector"),
                        "template": template.name if template and in_bulk else None,
                        "holds_grant": holder_id is None and not connections,
                    },
                ),
                reference=f"page:{flow.id}",
            )
            attributes = {"company_id": company.external_id}
            if holder_id is None and not connections:
                assert tokens is not None
                await lifecycle.complete_authorization(
                    connection.id,
                    _authorization(company.external_id, tokens, flow.data),
                    attributes=attributes,
                )
                holder_id = str(connection.id)
            else:
                await lifecycle.complete_authorization(
                    connection.id,
                    OAuthAuthorization(
                        vendor_account=company.external_id,
                        access_token=SecretStr("shared"),
                    ),
                    attributes=attributes,
                    shares_credential_of=uuid.UUID(str(holder_id)),
                )
            connections.append(connection)
        flow.finished_at = self._clock()
        flow.sealed = None
        flow.key_version = None
        flow.data = {**flow.data, "result": [str(c.id) for c in connections]}
        await self._flows.save(flow)
        return connections

    async def organisation_connections(
        self, person: User, organisation_id: uuid.UUID
    ) -> list[tuple[Connection, ConnectionSettings]]:
        """The organisation's Visma.net connections (members see them)."""
        await self._organisations.require(person, organisation_id)
        return await self._settings.of_organisation(organisation_id, Provider.VISMA_NET.value)

    async def finished(
        self, person: User, flow_id: uuid.UUID
    ) -> tuple[uuid.UUID, list[tuple[Connection, ConnectionSettings]]]:
        """A finished import: its organisation and the connections it made."""
        flow = await self._flows.get(flow_id)
        if flow is None or flow.user_id != person.id or flow.finished_at is None:
            raise NotFound("There is no such finished connection attempt.")
        organisation_id = uuid.UUID(str(flow.data["organisation_id"]))
        made = set(flow.data.get("result", []))
        rows = [
            row
            for row in await self.organisation_connections(person, organisation_id)
            if str(row[0].id) in made
        ]
        return organisation_id, rows

    # -- Nmbrs' Visma.net account (seed 003) ------------------------------------------------

    async def authorize_account(
        self, person: User, flow: ConnectFlow, company_id: str
    ) -> tuple[Connection, bool]:
        """Authorise the account's connection for one chosen company.

        The grant must allow writing journals; without it the account stays not
        authorised and the answer's flag is False.
        """
        companies = {company.external_id: company for company in _companies(flow)}
        if company_id not in companies:
            raise BadInput("Choose one of the companies Visma offered.", code="unknown_company")
        connection_id = uuid.UUID(str(flow.data["connection_id"]))
        connection = await ConnectionRepository(self._session).get(connection_id, lock=True)
        if connection is None:
            raise NotFound("There is no such Visma.net account.")
        requested = self._client.settings.scope
        writes = grants_write(flow.data.get("scope"), requested)
        settings = await self._settings.get(connection.id)
        values = dict(settings.settings) if settings else {}
        values.update(
            {
                "company_id": company_id,
                "company_name": companies[company_id].name,
                "write_rights": writes,
            }
        )
        if settings is not None:
            settings.settings = values
            settings.updated_at = self._clock()
            await self._settings.save(settings)
        flow.finished_at = self._clock()
        if not writes:
            flow.sealed = None
            flow.key_version = None
            await self._flows.save(flow)
            logger.info(
                "visma account lacks write rights", extra={"connection_id": str(connection.id)}
            )
            return connection, False
        tokens = self._opened(flow)
        await LifecycleService(
            self._session, self._outbox, vault=self._vault, clock=self._clock
        ).complete_authorization(
            connection.id,
            _authorization(company_id, tokens, flow.data),
            attributes={"company_id": company_id, "company_name": companies[company_id].name},
        )
        flow.sealed = None
        flow.key_version = None
        await self._flows.save(flow)
        return connection, True

    def companies(self, flow: ConnectFlow) -> list[VendorCompany]:
        """The companies the flow's login reaches."""
        return _companies(flow)

    # -- sealing ---------------------------------------------------------------------------

    def _seal(self, flow: ConnectFlow, values: dict[str, str]) -> None:
        sealed = seal_json(self._vault, flow.id, _FLOW_FIELD, values)
        flow.key_version = sealed.key_version
        flow.sealed = sealed.ciphertext

    def _opened(self, flow: ConnectFlow) -> dict[str, str]:
        if flow.sealed is None or flow.key_version is None:
            raise FlowProblem("no_login", "Sign in at Visma first.")
        return open_json(self._vault, flow.id, _FLOW_FIELD, Sealed(flow.key_version, flow.sealed))

    def _expired(self, flow: ConnectFlow) -> bool:
        created = flow.created_at
        if created.tzinfo is None:
            created = created.replace(tzinfo=self._clock().tzinfo)
        return self._clock() - created > self._ttl


def require_admin_of(role: Role) -> None:
    """Only admins connect companies."""
    if role is not Role.ADMIN:
        raise Forbidden("Only an admin of the organisation can add connections.")


def _company_json(company: VendorCompany) -> dict[str, str]:
    return {"id": company.external_id, "name": company.name}


def _companies(flow: ConnectFlow) -> list[VendorCompany]:
    return [
        VendorCompany(str(item["id"]), str(item["name"])) for item in flow.data.get("companies", [])
    ]


def _details_json(details: AdministrationDetails) -> dict[str, str | None]:
    return {
        "coc": details.coc,
        "no_coc_reason": details.no_coc_reason.value if details.no_coc_reason else None,
        "sector": details.sector.value,
    }


def _token_secrets(tokens: GrantedTokens) -> dict[str, str]:
    values = {"access_token": tokens.access_token.get_secret_value()}
    if tokens.refresh_token is not None:
        values["refresh_token"] = tokens.refresh_token.get_secret_value()
    return values


def _authorization(
    company_id: str, tokens: dict[str, str], data: dict[str, Any]
) -> OAuthAuthorization:
    expires = data.get("expires_in")
    return OAuthAuthorization(
        vendor_account=company_id,
        access_token=SecretStr(tokens["access_token"]),
        refresh_token=SecretStr(tokens["refresh_token"]) if "refresh_token" in tokens else None,
        expires_in=float(expires) if isinstance(expires, int | float) else None,
        scope=str(data.get("scope") or "") or None,
    )
