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

import uuid
from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import Response

from ledgerlink.auth.domain.connect_flows import NoCocReason, Sector
from ledgerlink.auth.handlers.pages._flowkit import (
    PAGE_STATUSES,
    FlowKit,
    Refused,
    callback_url,
    html_responses,
    redirect,
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

CALLBACK_ROUTE = "visma_connect_callback"

#: The reasons and sectors as the page names them (msgids of the catalogs).
REASON_LABELS = {
    NoCocReason.NOT_A_COMPANY.value: "Not a company",
    NoCocReason.TEST_DEMO.value: "Test/Demo",
}
SECTOR_LABELS = {
    Sector.AGRICULTURE.value: "Agriculture, forestry and fishing",
    Sector.MANUFACTURING.value: "Manufacturing and energy",
    Sector.CONSTRUCTION.value: "Construction",
    Sector.TRADE.value: "Wholesale and retail trade",
    Sector.HOSPITALITY.value: "Hospitality",
    Sector.TRANSPORT.value: "Transport and storage",
    Sector.IT_COMMUNICATION.value: "Information and communication",
    Sector.FINANCE.value: "Financial services",
    Sector.REAL_ESTATE.value: "Real estate",
    Sector.PROFESSIONAL_SERVICES.value: "Professional and business services",
    Sector.HEALTHCARE.value: "Health and social care",
    Sector.EDUCATION.value: "Education",
    Sector.PUBLIC_NONPROFIT.value: "Public sector and non-profit",
    Sector.OTHER.value: "Other",
}
STATUS_LABELS = {
    "pending_authorization": "Not authorized",
    "authorizing": "Not authorized",
    "configuring": "configuring",
    "active": "active",
    "needs_reauth": "Sign in to Visma again",
    "revoked": "revoked",
    "expired": "expired",
    "rejected": "rejected",
}


def visma_service(kit: FlowKit, session: object) -> VismaNetConnect:
    """The Visma.net use cases on one request's transaction."""
    components = kit.components
    return VismaNetConnect(
        session,  # type: ignore[arg-type]
        vault=components.vault,
        outbox=components.outbox,
        client=VismaConnectClient(components.config.connect.visma_connect, kit.http),
        clock=components.clock,
        flow_ttl=timedelta(seconds=components.config.connect.flow_seconds),
    )


def _uuid(value: str | None, what: str) -> uuid.UUID:
    try:
        return uuid.UUID(str(value))
    except ValueError:
        raise Refused(404, f"No such {what}", f"There is no {what} with this address.") from None


def build_vismanet_router(kit: FlowKit) -> APIRouter:
    """The Visma.net connection pages."""
    router = APIRouter(tags=["connection pages"])
    db = kit.context.db

    async def guarded(request: Request, work: object) -> Response:
        active = await kit.person(request)
        if not isinstance(active, ActiveSession):
            return active
        try:
            return await work(active)  # type: ignore[operator,no-any-return]
        except Refused as refusal:
            return await kit.refused(request, active, refusal)
        except FlowProblem as problem:
            return await kit.refused(
                request,
                active,
                Refused(400, "The Visma connection could not go on", problem.message),
            )
        except AccessRefused as refusal:
            return await kit.refused(
                request, active, Refused(refusal.status, "This cannot be done", refusal.message)
            )

    @router.get(
        "/connect/visma_net",
        summary="The organisation's Visma.net connections (seed 002).",
        response_class=Response,
        responses=html_responses({200: "The page.", **PAGE_STATUSES}),
    )
    async def overview(request: Request, organisation_id: str | None = None) -> Response:
        async def work(active: ActiveSession) -> Response:
            async with db.transaction() as session:
                organisations = await OrganisationService(session, kit.components.clock).mine(
                    active.user
                )
                if not organisations:
                    raise Refused(
                        404,
                        "You have no organisation yet",
                        "Create your organisation first; Visma.net administrations are "
                        "connected to an organisation.",
                    )
                chosen = (
                    _uuid(organisation_id, "organisation")
                    if organisation_id
                    else organisations[0].organisation.id
                )
                rows = await visma_service(kit, session).organisation_connections(
                    active.user, chosen
                )
            current = next(o for o in organisations if o.organisation.id == chosen)
            return await kit.page(
                request,
                active,
                "pages/vismanet/overview.html",
                organisations=organisations,
                organisation=current.organisation,
                role=current.role.value,
                rows=rows,
                statuses=STATUS_LABELS,
            )

        return await guarded(request, work)

    @router.post(
        "/connect/visma_net/start",
        status_code=303,
        summary="New connection: to Visma Connect.",
        response_class=Response,
        responses=html_responses({**PAGE_STATUSES}),
    )
    async def start(
        request: Request,
        organisation_id: Annotated[str, Form()],
        csrf_token: Annotated[str | None, Form()] = None,
    ) -> Response:
        async def work(active: ActiveSession) -> Response:
            await kit.check_csrf(active, csrf_token)
            async with db.transaction() as session:
                started = await visma_service(kit, session).start(
                    active.user,
                    ADMINISTRATIONS,
                    callback_url(kit, request, CALLBACK_ROUTE),
                    {"organisation_id": str(_uuid(organisation_id, "organisation"))},
                )
            return Response(
                status_code=303,
                headers={"Location": started.authorize_url, "Cache-Control": "no-store"},
            )

        return await guarded(request, work)

    @router.post(
        "/connect/visma_net/import",
        status_code=303,
        summary="Import from an existing connection (the stored Visma login, else a new one).",
        response_class=Response,
        responses=html_responses({**PAGE_STATUSES}),
    )
    async def import_existing(
        request: Request,
        organisation_id: Annotated[str, Form()],
        csrf_token: Annotated[str | None, Form()] = None,
    ) -> Response:
        async def work(active: ActiveSession) -> Response:
            await kit.check_csrf(active, csrf_token)
            organisation = _uuid(organisation_id, "organisation")
            async with db.transaction() as session:
                flow = await visma_service(kit, session).start_import(
                    active.user, organisation, kit.components.credentials
                )
            if flow is not None:
                return redirect(f"/connect/visma_net/flows/{flow.id}/administrations")
            # The stored login no longer works (or there is none): ask Visma again.
            async with db.transaction() as session:
                started = await visma_service(kit, session).start(
                    active.user,
                    ADMINISTRATIONS,
                    callback_url(kit, request, CALLBACK_ROUTE),
                    {"organisation_id": str(organisation), "asked_again": True},
                )
            return Response(
                status_code=303,
                headers={"Location": started.authorize_url, "Cache-Control": "no-store"},
            )

        return await guarded(request, work)

    @router.get(
        "/connect/visma_net/callback",
        name=CALLBACK_ROUTE,
        summary="Back from Visma Connect (the registered redirect URI).",
        response_class=Response,
        responses=html_responses(
            {400: "Not a sign-in started here, expired, denied or refused.", **PAGE_STATUSES}
        ),
    )
    async def callback(
        request: Request,
        state: str | None = None,
        code: str | None = None,
        error: str | None = None,
    ) -> Response:
        async def work(active: ActiveSession) -> Response:
            async with db.transaction() as session:
                failed: FlowProblem | None = None
                try:
                    flow = await visma_service(kit, session).callback(
                        active.user, state, code, error, callback_url(kit, request, CALLBACK_ROUTE)
                    )
                except FlowProblem as problem:
                    # Kept: the state is spent even when the sign-in failed.
                    failed = problem
            if failed is not None:
                raise failed
            if flow.kind == NMBRS_ACCOUNT:
                return redirect(f"/connect/nmbrs/flows/{flow.id}/company")
            return redirect(f"/connect/visma_net/flows/{flow.id}/administrations")

        return await guarded(request, work)

    @router.get(
        "/connect/visma_net/flows/{flow_id}/administrations",
        summary="Step 5: the administrations the Visma login reaches.",
        response_class=Response,
        responses=html_responses({200: "The page.", 400: "Expired attempt.", **PAGE_STATUSES}),
    )
    async def administrations(request: Request, flow_id: str) -> Response:
        async def work(active: ActiveSession) -> Response:
            async with db.transaction() as session:
                service = visma_service(kit, session)
                flow = await service.flow(
                    active.user, _uuid(flow_id, "connection attempt"), ADMINISTRATIONS
                )
                choices = await service.choices(flow)
            return await kit.page(
                request,
                active,
                "pages/vismanet/administrations.html",
                flow=flow,
                choices=choices,
                chosen=set(flow.data.get("chosen", [])),
            )

        return await guarded(request, work)

    @router.post(
        "/connect/visma_net/flows/{flow_id}/administrations",
        summary="Step 5: choose administrations.",
        response_class=Response,
        responses=html_responses(
            {
                200: "None chosen: the page again with the error.",
                400: "Expired attempt.",
                **PAGE_STATUSES,
            }
        ),
    )
    async def choose(
        request: Request,
        flow_id: str,
        csrf_token: Annotated[str | None, Form()] = None,
        administration: Annotated[list[str] | None, Form()] = None,
    ) -> Response:
        async def work(active: ActiveSession) -> Response:
            await kit.check_csrf(active, csrf_token)
            async with db.transaction() as session:
                service = visma_service(kit, session)
                flow = await service.flow(
                    active.user, _uuid(flow_id, "connection attempt"), ADMINISTRATIONS
                )
                choices = await service.choices(flow)
                problem: str | None = None
                try:
                    await service.choose(flow, administration or [])
                except AccessRefused as refusal:
                    problem = refusal.message
            if problem is not None:
                return await kit.page(
                    request,
                    active,
                    "pages/vismanet/administrations.html",
                    status=200,
                    flow=flow,
                    choices=choices,
                    chosen=set(),
                    errors={"administrations": problem},
                )
            return redirect(f"/connect/visma_net/flows/{flow_id}/details")

        return await guarded(request, work)

    async def details_page(
        request: Request,
        active: ActiveSession,
        flow_id: str,
        answers: dict[str, tuple[str, str, str]],
        errors: dict[str, dict[str, str]],
    ) -> Response:
        async with db.transaction() as session:
            service = visma_service(kit, session)
            flow = await service.flow(
                active.user, _uuid(flow_id, "connection attempt"), ADMINISTRATIONS
            )
            chosen = service.chosen(flow)
        if not chosen:
            return redirect(f"/connect/visma_net/flows/{flow_id}/administrations")
        kept = flow.data.get("details") or {}
        values = {
            company.external_id: answers.get(company.external_id)
            or (
                (kept.get(company.external_id) or {}).get("coc") or "",
                (kept.get(company.external_id) or {}).get("no_coc_reason") or "",
                (kept.get(company.external_id) or {}).get("sector") or "",
            )
            for company in chosen
        }
        summary = {
            f"{field}-{company_id}": message
            for company_id, problems in errors.items()
            for field, message in problems.items()
        }
        return await kit.page(
            request,
            active,
            "pages/vismanet/details.html",
            flow=flow,
            chosen=chosen,
            values=values,
            field_errors=errors,
            errors=summary,
            reasons=REASON_LABELS,
            sectors=SECTOR_LABELS,
        )

    @router.get(
        "/connect/visma_net/flows/{flow_id}/details",
        summary="Step 6: CoC number or reason, and sector, per administration.",
        response_class=Response,
        responses=html_responses({200: "The page.", 400: "Expired attempt.", **PAGE_STATUSES}),
    )
    async def details(request: Request, flow_id: str) -> Response:
        async def work(active: ActiveSession) -> Response:
            return await details_page(request, active, flow_id, {}, {})

        return await guarded(request, work)

    @router.post(
        "/connect/visma_net/flows/{flow_id}/details",
        summary="Step 6: save the details (errors next to their fields).",
        response_class=Response,
        responses=html_responses(
            {
                200: "A field is wrong: the page again, each error next to its field.",
                400: "Expired attempt.",
                **PAGE_STATUSES,
            }
        ),
    )
    async def save_details(request: Request, flow_id: str) -> Response:
        async def work(active: ActiveSession) -> Response:
            form = await request.form()
            await kit.check_csrf(active, str(form.get("csrf_token") or ""))
            async with db.transaction() as session:
                service = visma_service(kit, session)
                flow = await service.flow(
                    active.user, _uuid(flow_id, "connection attempt"), ADMINISTRATIONS
                )
                answers = {
                    company.external_id: (
                        str(form.get(f"coc-{company.external_id}") or ""),
                        str(form.get(f"reason-{company.external_id}") or ""),
                        str(form.get(f"sector-{company.external_id}") or ""),
                    )
                    for company in service.chosen(flow)
                }
                errors = await service.details(flow, answers)
            if errors:
                return await details_page(request, active, flow_id, answers, errors)
            return redirect(f"/connect/visma_net/flows/{flow_id}/assign")

        return await guarded(request, work)

    @router.get(
        "/connect/visma_net/flows/{flow_id}/assign",
        summary="Step 7: bulk assignment (divisions, users, template); may be skipped.",
        response_class=Response,
        responses=html_responses({200: "The page.", 400: "Expired attempt.", **PAGE_STATUSES}),
    )
    async def assign(request: Request, flow_id: str) -> Response:
        async def work(active: ActiveSession) -> Response:
            async with db.transaction() as session:
                service = visma_service(kit, session)
                flow = await service.flow(
                    active.user, _uuid(flow_id, "connection attempt"), ADMINISTRATIONS
                )
                if not flow.data.get("details"):
                    return redirect(f"/connect/visma_net/flows/{flow_id}/details")
                divisions, people, templates = await service.assignment_options(flow)
                chosen = service.chosen(flow)
            return await kit.page(
                request,
                active,
                "pages/vismanet/assign.html",
                flow=flow,
                chosen=chosen,
                divisions=divisions,
                people=people,
                templates=templates,
            )

        return await guarded(request, work)

    @router.post(
        "/connect/visma_net/flows/{flow_id}/assign",
        summary="Step 7 and finish: import the administrations.",
        response_class=Response,
        responses=html_responses({400: "Expired attempt or a bad choice.", **PAGE_STATUSES}),
    )
    async def finish(request: Request, flow_id: str) -> Response:
        async def work(active: ActiveSession) -> Response:
            form = await request.form()
            await kit.check_csrf(active, str(form.get("csrf_token") or ""))
            skip = form.get("action") == "skip"
            assignment = None
            if not skip:
                division = str(form.get("division") or "")
                template = str(form.get("template") or "")
                assignment = Assignment(
                    administrations=[str(v) for v in form.getlist("assign")],
                    division_id=_uuid(division, "division") if division else None,
                    user_ids=[_uuid(str(v), "person") for v in form.getlist("user")],
                    template_id=_uuid(template, "template") if template else None,
                )
            async with db.transaction() as session:
                service = visma_service(kit, session)
                flow = await service.flow(
                    active.user, _uuid(flow_id, "connection attempt"), ADMINISTRATIONS
                )
                await service.finish(active.user, flow, assignment)
            kit.wake_relay()
            return redirect(f"/connect/visma_net/flows/{flow_id}/done")

        return await guarded(request, work)

    @router.get(
        "/connect/visma_net/flows/{flow_id}/done",
        summary="The imported administrations and their status.",
        response_class=Response,
        responses=html_responses({200: "The page.", **PAGE_STATUSES}),
    )
    async def done(request: Request, flow_id: str) -> Response:
        async def work(active: ActiveSession) -> Response:
            async with db.transaction() as session:
                organisation_id, rows = await visma_service(kit, session).finished(
                    active.user, _uuid(flow_id, "connection attempt")
                )
            return await kit.page(
                request,
                active,
                "pages/vismanet/done.html",
                rows=rows,
                organisation_id=organisation_id,
                statuses=STATUS_LABELS,
            )

        return await guarded(request, work)

    return router
