"""Visma.net connection pages (seed 002), and the Visma Connect callback they share with
Nmbrs' Visma.net account (seed 003).

* ``GET /connect/visma_net?organisation_id=``: the organisation's Visma.net connections,
  "New connection", "Import from an existing connection";
* ``POST /connect/visma_net/start``: to Visma Connect (code + PKCE, exact redirect URI);
* ``GET /connect/visma_net/callback``: back from Visma Connect, on to the administrations;
* ``POST /connect/visma_net/import``: the stored login, or Visma Connect when it no longer
  works;
* ``/connect/visma_net/flows/{id}/administrations`` (GET, POST): step 5, choose;
* ``.../details`` (GET, POST): step 6, CoC number or a reason, and a sector;
* ``.../assign`` (GET, POST): step 7, divisions, users, template (or skip), finish;
* ``.../done``: each imported administration's status.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Final

import httpx
from fastapi import APIRouter, Request
from fastapi.responses import Response
from sqlalchemy.ext.asyncio import AsyncSession

from ledgerlink.auth.domain.connect_flows import NoCocReason, Sector
from ledgerlink.auth.handlers.pages.common import (
    N_,
    FormErrors,
    PagesContext,
    form_text,
    gettext,
)
from ledgerlink.auth.handlers.pages.connection_pages import (
    PAGE_STATUSES,
    callback_url,
    guarded,
    html_responses,
    translated,
    uuid_or_404,
    vendor_http,
    wake_relay,
)
from ledgerlink.auth.services.access import AccessRefused
from ledgerlink.auth.services.organisations import OrganisationService
from ledgerlink.auth.services.sessions import ActiveSession
from ledgerlink.auth.services.vismanet_connect import (
    ADMINISTRATIONS,
    NMBRS_ACCOUNT,
    Assignment,
    FlowProblem,
    VismaNetConnect,
)
from ledgerlink.auth.storage.vendor_flows import VismaConnectClient

_ = gettext

PROVIDER: Final = "visma_net"
CONNECT_PATH: Final = "/connect/visma_net"
CALLBACK_PATH: Final = "/connect/visma_net/callback"

#: The reasons and sectors as the page names them (msgids of the catalogs).
REASON_LABELS = {
    NoCocReason.NOT_A_COMPANY.value: N_("Not a company"),
    NoCocReason.TEST_DEMO.value: N_("Test/Demo"),
}
SECTOR_LABELS = {
    Sector.AGRICULTURE.value: N_("Agriculture, forestry and fishing"),
    Sector.MANUFACTURING.value: N_("Manufacturing and energy"),
    Sector.CONSTRUCTION.value: N_("Construction"),
    Sector.TRADE.value: N_("Wholesale and retail trade"),
    Sector.HOSPITALITY.value: N_("Hospitality"),
    Sector.TRANSPORT.value: N_("Transport and storage"),
    Sector.IT_COMMUNICATION.value: N_("Information and communication"),
    Sector.FINANCE.value: N_("Financial services"),
    Sector.REAL_ESTATE.value: N_("Real estate"),
    Sector.PROFESSIONAL_SERVICES.value: N_("Professional and business services"),
    Sector.HEALTHCARE.value: N_("Health and social care"),
    Sector.EDUCATION.value: N_("Education"),
    Sector.PUBLIC_NONPROFIT.value: N_("Public sector and non-profit"),
    Sector.OTHER.value: N_("Other"),
}
STATUS_LABELS = {
    "pending_authorization": N_("Not authorized"),
    "authorizing": N_("Not authorized"),
    "configuring": N_("configuring"),
    "active": N_("active"),
    "needs_reauth": N_("Sign in to Visma again"),
    "revoked": N_("revoked"),
    "expired": N_("expired"),
    "rejected": N_("rejected"),
}


ORGANISATIONS_PATH: Final = "/connect/organisations"
#: Where the organisation form may send the person back to (fixed pages, never the request's).
ORGANISATION_RETURNS: Final = frozenset({CONNECT_PATH, "/connect/24sevenoffice"})


def organisation_form(
    context: PagesContext, request: Request, back: str, errors: FormErrors | None = None
) -> Response:
    """The page that creates the person's first organisation, then returns to ``back``."""
    return context.render(
        request,
        "pages/connect/organisation.html",
        next_path=back,
        name="",
        errors=errors,
    )


def visma_service(
    context: PagesContext, session: AsyncSession, http: httpx.AsyncClient
) -> VismaNetConnect:
    """The Visma.net use cases on one request's transaction."""
    components = context.components
    return VismaNetConnect(
        session,
        vault=components.vault,
        outbox=components.outbox,
        client=VismaConnectClient(components.config.connect.visma_connect, http),
        clock=components.clock,
        flow_ttl=timedelta(seconds=components.config.connect.flow_seconds),
    )


def _to_visma(url: str) -> Response:
    # The one redirect to another site: Visma Connect's authorize URL, built from settings.
    return Response(status_code=303, headers={"Location": url, "Cache-Control": "no-store"})


def build_router(context: PagesContext) -> APIRouter:
    """The Visma.net connection pages."""
    router = APIRouter(tags=["connection pages"])
    db = context.web.db
    flows = "/connect/visma_net/flows/{flow_id}"

    def flow_path(flow_id: object, step: str) -> str:
        return f"/connect/visma_net/flows/{flow_id}/{step}"

    @router.get(
        CONNECT_PATH,
        summary="The organisation's Visma.net connections (seed 002).",
        response_class=Response,
        responses=html_responses({200: "The page.", **PAGE_STATUSES}),
    )
    async def overview(request: Request, organisation_id: str | None = None) -> Response:
        async def work(active: ActiveSession) -> Response:
            async with db.transaction() as session, vendor_http(context) as http:
                organisations = await OrganisationService(session, context.components.clock).mine(
                    active.user
                )
                if not organisations:
                    return organisation_form(context, request, CONNECT_PATH)
                chosen = (
                    uuid_or_404(organisation_id, "organisation")
                    if organisation_id
                    else organisations[0].organisation.id
                )
                rows = await visma_service(context, session, http).organisation_connections(
                    active.user, chosen
                )
            current = next(o for o in organisations if o.organisation.id == chosen)
            return context.render(
                request,
                "pages/vismanet/overview.html",
                organisations=organisations,
                organisation=current.organisation,
                role=current.role.value,
                rows=rows,
                statuses=STATUS_LABELS,
                reasons=REASON_LABELS,
            )

        return await guarded(context, request, work)

    @router.post(
        ORGANISATIONS_PATH,
        summary="Create an organisation (the person is its first admin), then back.",
        response_class=Response,
        responses=html_responses({200: "No name: the form again with the error.", **PAGE_STATUSES}),
    )
    async def create_organisation(request: Request) -> Response:
        async def work(active: ActiveSession) -> Response:
            form = await context.form(request)
            name = " ".join(form_text(form, "organisation_name").split())
            back = form_text(form, "next")
            if back not in ORGANISATION_RETURNS:
                back = CONNECT_PATH
            if not name:
                return organisation_form(
                    context,
                    request,
                    back,
                    translated({"organisation_name": N_("Enter the organisation's name.")}),
                )
            async with db.transaction() as session:
                view = await OrganisationService(session, context.components.clock).create(
                    active.user, name[:300]
                )
            return context.redirect(f"{back}?organisation_id={view.organisation.id}")

        return await guarded(context, request, work)

    @router.post(
        "/connect/visma_net/start",
        status_code=303,
        summary="New connection: to Visma Connect.",
        response_class=Response,
        responses=html_responses({**PAGE_STATUSES}),
    )
    async def start(request: Request) -> Response:
        async def work(active: ActiveSession) -> Response:
            form = await context.form(request)
            organisation = uuid_or_404(form_text(form, "organisation_id"), "organisation")
            async with db.transaction() as session, vendor_http(context) as http:
                started = await visma_service(context, session, http).start(
                    active.user,
                    ADMINISTRATIONS,
                    callback_url(context, CALLBACK_PATH),
                    {"organisation_id": str(organisation)},
                )
            return _to_visma(started.authorize_url)

        return await guarded(context, request, work)

    @router.post(
        "/connect/visma_net/import",
        status_code=303,
        summary="Import from an existing connection (the stored Visma login, else a new one).",
        response_class=Response,
        responses=html_responses({**PAGE_STATUSES}),
    )
    async def import_existing(request: Request) -> Response:
        async def work(active: ActiveSession) -> Response:
            form = await context.form(request)
            organisation = uuid_or_404(form_text(form, "organisation_id"), "organisation")
            async with db.transaction() as session, vendor_http(context) as http:
                flow = await visma_service(context, session, http).start_import(
                    active.user, organisation, context.components.credentials
                )
            if flow is not None:
                return context.redirect(flow_path(flow.id, "administrations"))
            # The stored login no longer works (or there is none): ask Visma again.
            async with db.transaction() as session, vendor_http(context) as http:
                started = await visma_service(context, session, http).start(
                    active.user,
                    ADMINISTRATIONS,
                    callback_url(context, CALLBACK_PATH),
                    {"organisation_id": str(organisation), "asked_again": True},
                )
            return _to_visma(started.authorize_url)

        return await guarded(context, request, work)

    @router.get(
        CALLBACK_PATH,
        summary="Back from Visma Connect (the registered redirect URI).",
        response_class=Response,
        responses=html_responses({**PAGE_STATUSES}),
    )
    async def callback(
        request: Request,
        state: str | None = None,
        code: str | None = None,
        error: str | None = None,
    ) -> Response:
        async def work(active: ActiveSession) -> Response:
            failed: FlowProblem | None = None
            async with db.transaction() as session, vendor_http(context) as http:
                try:
                    flow = await visma_service(context, session, http).callback(
                        active.user, state, code, error, callback_url(context, CALLBACK_PATH)
                    )
                except FlowProblem as problem:
                    # Kept: the state is spent even when the sign-in failed.
                    failed = problem
            if failed is not None:
                raise failed
            if flow.kind == NMBRS_ACCOUNT:
                return context.redirect(f"/connect/nmbrs/flows/{flow.id}/company")
            return context.redirect(flow_path(flow.id, "administrations"))

        return await guarded(context, request, work)

    @router.get(
        f"{flows}/administrations",
        summary="Step 5: the administrations the Visma login reaches.",
        response_class=Response,
        responses=html_responses({200: "The page.", **PAGE_STATUSES}),
    )
    async def administrations(request: Request, flow_id: str) -> Response:
        async def work(active: ActiveSession) -> Response:
            async with db.transaction() as session, vendor_http(context) as http:
                service = visma_service(context, session, http)
                flow = await service.flow(
                    active.user, uuid_or_404(flow_id, "connection attempt"), ADMINISTRATIONS
                )
                choices = await service.choices(flow)
            return context.render(
                request,
                "pages/vismanet/administrations.html",
                flow=flow,
                choices=choices,
                chosen=set(flow.data.get("chosen", [])),
            )

        return await guarded(context, request, work)

    @router.post(
        f"{flows}/administrations",
        summary="Step 5: choose administrations.",
        response_class=Response,
        responses=html_responses(
            {200: "None chosen: the page again with the error.", **PAGE_STATUSES}
        ),
    )
    async def choose(request: Request, flow_id: str) -> Response:
        async def work(active: ActiveSession) -> Response:
            form = await context.form(request)
            picked = [str(value) for value in form.getlist("administration")]
            problem: str | None = None
            async with db.transaction() as session, vendor_http(context) as http:
                service = visma_service(context, session, http)
                flow = await service.flow(
                    active.user, uuid_or_404(flow_id, "connection attempt"), ADMINISTRATIONS
                )
                choices = await service.choices(flow)
                try:
                    await service.choose(flow, picked)
                except AccessRefused as refusal:
                    problem = refusal.message
            if problem is not None:
                return context.render(
                    request,
                    "pages/vismanet/administrations.html",
                    flow=flow,
                    choices=choices,
                    chosen=set(),
                    errors=translated({"administrations": problem}),
                )
            return context.redirect(flow_path(flow_id, "details"))

        return await guarded(context, request, work)

    async def details_page(
        request: Request,
        active: ActiveSession,
        flow_id: str,
        answers: dict[str, tuple[str, str, str]],
        errors: dict[str, dict[str, str]],
    ) -> Response:
        async with db.transaction() as session, vendor_http(context) as http:
            service = visma_service(context, session, http)
            flow = await service.flow(
                active.user, uuid_or_404(flow_id, "connection attempt"), ADMINISTRATIONS
            )
            chosen = service.chosen(flow)
        if not chosen:
            return context.redirect(flow_path(flow_id, "administrations"))
        kept = flow.data.get("details") or {}
        values = {}
        for company in chosen:
            before = kept.get(company.external_id) or {}
            values[company.external_id] = answers.get(company.external_id) or (
                before.get("coc") or "",
                before.get("no_coc_reason") or "",
                before.get("sector") or "",
            )
        field_errors = {
            company: translated(problems).fields for company, problems in errors.items()
        }
        summary = FormErrors(
            {
                f"{field}-{company_id}": message
                for company_id, problems in field_errors.items()
                for field, message in problems.items()
            }
        )
        return context.render(
            request,
            "pages/vismanet/details.html",
            flow=flow,
            chosen=chosen,
            values=values,
            field_errors=field_errors,
            errors=summary,
            reasons=REASON_LABELS,
            sectors=SECTOR_LABELS,
        )

    @router.get(
        f"{flows}/details",
        summary="Step 6: CoC number or reason, and sector, per administration.",
        response_class=Response,
        responses=html_responses({200: "The page.", **PAGE_STATUSES}),
    )
    async def details(request: Request, flow_id: str) -> Response:
        async def work(active: ActiveSession) -> Response:
            return await details_page(request, active, flow_id, {}, {})

        return await guarded(context, request, work)

    @router.post(
        f"{flows}/details",
        summary="Step 6: save the details (errors next to their fields).",
        response_class=Response,
        responses=html_responses(
            {
                200: "A field is wrong: the page again, each error next to its field.",
                **PAGE_STATUSES,
            }
        ),
    )
    async def save_details(request: Request, flow_id: str) -> Response:
        async def work(active: ActiveSession) -> Response:
            form = await context.form(request)
            async with db.transaction() as session, vendor_http(context) as http:
                service = visma_service(context, session, http)
                flow = await service.flow(
                    active.user, uuid_or_404(flow_id, "connection attempt"), ADMINISTRATIONS
                )
                answers = {
                    company.external_id: (
                        form_text(form, f"coc-{company.external_id}", limit=40),
                        form_text(form, f"reason-{company.external_id}", limit=40),
                        form_text(form, f"sector-{company.external_id}", limit=40),
                    )
                    for company in service.chosen(flow)
                }
                errors = await service.details(flow, answers)
            if errors:
                return await details_page(request, active, flow_id, answers, errors)
            return context.redirect(flow_path(flow_id, "assign"))

        return await guarded(context, request, work)

    @router.get(
        f"{flows}/assign",
        summary="Step 7: bulk assignment (divisions, users, template); may be skipped.",
        response_class=Response,
        responses=html_responses({200: "The page.", **PAGE_STATUSES}),
    )
    async def assign(request: Request, flow_id: str) -> Response:
        async def work(active: ActiveSession) -> Response:
            async with db.transaction() as session, vendor_http(context) as http:
                service = visma_service(context, session, http)
                flow = await service.flow(
                    active.user, uuid_or_404(flow_id, "connection attempt"), ADMINISTRATIONS
                )
                if not flow.data.get("details"):
                    return context.redirect(flow_path(flow_id, "details"))
                divisions, people, templates = await service.assignment_options(flow)
                chosen = service.chosen(flow)
            return context.render(
                request,
                "pages/vismanet/assign.html",
                flow=flow,
                chosen=chosen,
                divisions=divisions,
                people=people,
                templates=templates,
            )

        return await guarded(context, request, work)

    @router.post(
        f"{flows}/assign",
        summary="Step 7 and finish: import the administrations.",
        response_class=Response,
        responses=html_responses({**PAGE_STATUSES}),
    )
    async def finish(request: Request, flow_id: str) -> Response:
        async def work(active: ActiveSession) -> Response:
            form = await context.form(request)
            assignment = None
            if form_text(form, "action") != "skip":
                division = form_text(form, "division")
                template = form_text(form, "template")
                assignment = Assignment(
                    administrations=[str(v) for v in form.getlist("assign")],
                    division_id=uuid_or_404(division, "division") if division else None,
                    user_ids=[uuid_or_404(v, "person") for v in form.getlist("user")],
                    template_id=uuid_or_404(template, "template") if template else None,
                )
            async with db.transaction() as session, vendor_http(context) as http:
                service = visma_service(context, session, http)
                flow = await service.flow(
                    active.user, uuid_or_404(flow_id, "connection attempt"), ADMINISTRATIONS
                )
                await service.finish(active.user, flow, assignment)
            wake_relay(context)
            return context.redirect(flow_path(flow_id, "done"))

        return await guarded(context, request, work)

    @router.get(
        f"{flows}/done",
        summary="The imported administrations and their status.",
        response_class=Response,
        responses=html_responses({200: "The page.", **PAGE_STATUSES}),
    )
    async def done(request: Request, flow_id: str) -> Response:
        async def work(active: ActiveSession) -> Response:
            async with db.transaction() as session, vendor_http(context) as http:
                organisation_id, rows = await visma_service(context, session, http).finished(
                    active.user, uuid_or_404(flow_id, "connection attempt")
                )
            return context.render(
                request,
                "pages/vismanet/done.html",
                rows=rows,
                organisation_id=organisation_id,
                statuses=STATUS_LABELS,
            )

        return await guarded(context, request, work)

    return router
