"""Visma Nmbrs -> Visma.net pages (seed 003): the environment's integration settings.

* ``GET /connect/nmbrs?environment_id=``: the Visma.net account (authorised, or in red not)
  and the Nmbrs API user;
* ``POST /connect/nmbrs/account``: create the named Visma.net account;
* ``POST /connect/nmbrs/account/authorize``: to Visma Connect with a fresh login;
* ``/connect/nmbrs/flows/{id}/company`` (GET, POST): choose the company; success, or no
  write rights;
* ``POST /connect/nmbrs/credential``: the Nmbrs API user's token, checked live.
"""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import Response
from pydantic import SecretStr

from ledgerlink.auth.handlers.pages._flowkit import (
    PAGE_STATUSES,
    FlowKit,
    Refused,
    callback_url,
    html_responses,
    redirect,
)
from ledgerlink.auth.handlers.pages.vismanet import CALLBACK_ROUTE, visma_service
from ledgerlink.auth.services.access import AccessRefused
from ledgerlink.auth.services.environments import EnvironmentService
from ledgerlink.auth.services.nmbrs_account import IntegrationView, NmbrsAccounts
from ledgerlink.auth.services.sessions import ActiveSession
from ledgerlink.auth.services.vismanet_connect import NMBRS_ACCOUNT, FlowProblem
from ledgerlink.auth.storage.vendor_flows import NmbrsClient


def nmbrs_service(kit: FlowKit, session: object) -> NmbrsAccounts:
    """The integration page's use cases on one request's transaction."""
    components = kit.components
    return NmbrsAccounts(
        session,  # type: ignore[arg-type]
        vault=components.vault,
        outbox=components.outbox,
        nmbrs=NmbrsClient(components.config.connect.nmbrs),
        clock=components.clock,
    )


def _uuid(value: str | None, what: str) -> uuid.UUID:
    try:
        return uuid.UUID(str(value))
    except ValueError:
        raise Refused(404, f"No such {what}", f"There is no {what} with this address.") from None


def build_nmbrs_router(kit: FlowKit) -> APIRouter:
    """The Nmbrs integration pages."""
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
                Refused(400, "The Visma.net account was not authorized", problem.message),
            )
        except AccessRefused as refusal:
            return await kit.refused(
                request, active, Refused(refusal.status, "This cannot be done", refusal.message)
            )

    async def integration_page(
        request: Request,
        active: ActiveSession,
        environment_id: uuid.UUID,
        status: int = 200,
        errors: dict[str, str] | None = None,
        values: dict[str, str] | None = None,
    ) -> Response:
        async with db.transaction() as session:
            view: IntegrationView = await nmbrs_service(kit, session).view(
                active.user, environment_id
            )
        return await kit.page(
            request,
            active,
            "pages/nmbrs/integration.html",
            status,
            view=view,
            errors=errors or {},
            values=values or {},
        )

    @router.get(
        "/connect/nmbrs",
        summary="Visma Nmbrs -> Visma.net: the account and the Nmbrs API user (seed 003).",
        response_class=Response,
        responses=html_responses({200: "The page.", **PAGE_STATUSES}),
    )
    async def integration(request: Request, environment_id: str | None = None) -> Response:
        async def work(active: ActiveSession) -> Response:
            chosen = environment_id
            if chosen is None:
                async with db.transaction() as session:
                    mine = await EnvironmentService(session, kit.components.clock).mine(active.user)
                if not mine:
                    raise Refused(
                        404,
                        "You have no environment yet",
                        "Create your company's environment first.",
                    )
                chosen = str(mine[0].environment.id)
            return await integration_page(request, active, _uuid(chosen, "environment"))

        return await guarded(request, work)

    @router.post(
        "/connect/nmbrs/account",
        summary="Create the named Visma.net account.",
        response_class=Response,
        responses=html_responses(
            {200: "A field is wrong: the page again with the error.", **PAGE_STATUSES}
        ),
    )
    async def create_account(
        request: Request,
        environment_id: Annotated[str, Form()],
        name: Annotated[str, Form()] = "",
        csrf_token: Annotated[str | None, Form()] = None,
    ) -> Response:
        async def work(active: ActiveSession) -> Response:
            await kit.check_csrf(active, csrf_token)
            environment = _uuid(environment_id, "environment")
            async with db.transaction() as session:
                _account, errors = await nmbrs_service(kit, session).create_account(
                    active.user, environment, name
                )
            if errors:
                return await integration_page(
                    request, active, environment, errors=errors, values={"name": name}
                )
            return redirect(f"/connect/nmbrs?environment_id={environment}")

        return await guarded(request, work)

    @router.post(
        "/connect/nmbrs/account/authorize",
        status_code=303,
        summary="Authorize the Visma.net account: to Visma Connect with a fresh login.",
        response_class=Response,
        responses=html_responses({**PAGE_STATUSES}),
    )
    async def authorize(
        request: Request,
        environment_id: Annotated[str, Form()],
        csrf_token: Annotated[str | None, Form()] = None,
    ) -> Response:
        async def work(active: ActiveSession) -> Response:
            await kit.check_csrf(active, csrf_token)
            environment = _uuid(environment_id, "environment")
            async with db.transaction() as session:
                account = await nmbrs_service(kit, session).account_for_authorization(
                    active.user, environment
                )
                started = await visma_service(kit, session).start(
                    active.user,
                    NMBRS_ACCOUNT,
                    callback_url(kit, request, CALLBACK_ROUTE),
                    {"connection_id": str(account.id), "environment_id": str(environment)},
                )
            kit.wake_relay()
            return Response(
                status_code=303,
                headers={"Location": started.authorize_url, "Cache-Control": "no-store"},
            )

        return await guarded(request, work)

    @router.get(
        "/connect/nmbrs/flows/{flow_id}/company",
        summary="Choose the Visma.net company of the account.",
        response_class=Response,
        responses=html_responses({200: "The page.", 400: "Expired attempt.", **PAGE_STATUSES}),
    )
    async def company(request: Request, flow_id: str) -> Response:
        async def work(active: ActiveSession) -> Response:
            async with db.transaction() as session:
                service = visma_service(kit, session)
                flow = await service.flow(
                    active.user, _uuid(flow_id, "connection attempt"), NMBRS_ACCOUNT
                )
                companies = service.companies(flow)
            return await kit.page(
                request, active, "pages/nmbrs/company.html", flow=flow, companies=companies
            )

        return await guarded(request, work)

    @router.post(
        "/connect/nmbrs/flows/{flow_id}/company",
        summary="Authorize the account for the chosen company (write rights checked).",
        response_class=Response,
        responses=html_responses(
            {
                200: "Authorized (success message), no company chosen, or the template "
                "does not grant write rights (said in red).",
                400: "Expired attempt.",
                **PAGE_STATUSES,
            }
        ),
    )
    async def choose_company(
        request: Request,
        flow_id: str,
        company: Annotated[str, Form()] = "",
        csrf_token: Annotated[str | None, Form()] = None,
    ) -> Response:
        async def work(active: ActiveSession) -> Response:
            await kit.check_csrf(active, csrf_token)
            async with db.transaction() as session:
                service = visma_service(kit, session)
                flow = await service.flow(
                    active.user, _uuid(flow_id, "connection attempt"), NMBRS_ACCOUNT
                )
                companies = service.companies(flow)
                if not company:
                    problem: str | None = "Choose the company to send journals to."
                else:
                    problem = None
                    connection, writes = await service.authorize_account(active.user, flow, company)
            if problem is not None:
                return await kit.page(
                    request,
                    active,
                    "pages/nmbrs/company.html",
                    flow=flow,
                    companies=companies,
                    errors={"company": problem},
                )
            kit.wake_relay()
            environment_id = str(flow.data["environment_id"])
            chosen = next(c for c in companies if c.external_id == company)
            return await kit.page(
                request,
                active,
                "pages/nmbrs/authorized.html",
                writes=writes,
                company=chosen,
                connection=connection,
                environment_id=environment_id,
            )

        return await guarded(request, work)

    @router.post(
        "/connect/nmbrs/credential",
        summary="Save the Nmbrs API user's token (checked live with Nmbrs).",
        response_class=Response,
        responses=html_responses(
            {
                200: "A field is wrong or Nmbrs refused: the page again with the error.",
                **PAGE_STATUSES,
            }
        ),
    )
    async def save_credential(
        request: Request,
        environment_id: Annotated[str, Form()],
        nmbrs_username: Annotated[str, Form()] = "",
        nmbrs_token: Annotated[str, Form()] = "",
        nmbrs_domain: Annotated[str, Form()] = "",
        csrf_token: Annotated[str | None, Form()] = None,
    ) -> Response:
        async def work(active: ActiveSession) -> Response:
            await kit.check_csrf(active, csrf_token)
            environment = _uuid(environment_id, "environment")
            async with db.transaction() as session:
                _connection, errors = await nmbrs_service(kit, session).save_nmbrs(
                    active.user, environment, nmbrs_username, SecretStr(nmbrs_token), nmbrs_domain
                )
            if errors:
                return await integration_page(
                    request,
                    active,
                    environment,
                    errors=errors,
                    values={"nmbrs_username": nmbrs_username, "nmbrs_domain": nmbrs_domain},
                )
            kit.wake_relay()
            return redirect(f"/connect/nmbrs?environment_id={environment}")

        return await guarded(request, work)

    return router
