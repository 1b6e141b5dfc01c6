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
from typing import Final

from fastapi import APIRouter, Request
from fastapi.responses import Response
from pydantic import SecretStr
from sqlalchemy.ext.asyncio import AsyncSession

from ledgerlink.auth.handlers.pages.common import N_, PagesContext, form_text, gettext
from ledgerlink.auth.handlers.pages.connection_pages import (
    PAGE_STATUSES,
    Refused,
    callback_url,
    guarded,
    html_responses,
    translated,
    uuid_or_404,
    vendor_http,
    wake_relay,
)
from ledgerlink.auth.handlers.pages.vismanet import CALLBACK_PATH, visma_service
from ledgerlink.auth.services.environments import EnvironmentService
from ledgerlink.auth.services.nmbrs_account import IntegrationView, NmbrsAccounts
from ledgerlink.auth.services.sessions import ActiveSession
from ledgerlink.auth.services.vismanet_connect import NMBRS_ACCOUNT
from ledgerlink.auth.storage.vendor_flows import NmbrsClient

_ = gettext

PROVIDER: Final = "nmbrs"
CONNECT_PATH: Final = "/connect/nmbrs"
NOT_AUTHORIZED: Final = N_("The Visma.net account was not authorized")


def nmbrs_service(context: PagesContext, session: AsyncSession) -> NmbrsAccounts:
    """The integration page's use cases on one request's transaction."""
    components = context.components
    return NmbrsAccounts(
        session,
        vault=components.vault,
        outbox=components.outbox,
        nmbrs=NmbrsClient(components.config.connect.nmbrs, context.vendor_transport),
        clock=components.clock,
    )


def build_router(context: PagesContext) -> APIRouter:
    """The Nmbrs integration pages."""
    router = APIRouter(tags=["connection pages"])
    db = context.web.db

    def integration_url(environment: uuid.UUID) -> str:
        return f"{CONNECT_PATH}?environment_id={environment}"

    async def integration_page(
        request: Request,
        environment_id: uuid.UUID,
        errors: dict[str, str] | None = None,
        values: dict[str, str] | None = None,
        *,
        active: ActiveSession,
    ) -> Response:
        async with db.transaction() as session:
            view: IntegrationView = await nmbrs_service(context, session).view(
                active.user, environment_id
            )
        return context.render(
            request,
            "pages/nmbrs/integration.html",
            view=view,
            errors=translated(errors or {}),
            values=values or {},
        )

    @router.get(
        CONNECT_PATH,
        summary="Visma Nmbrs -> Visma.net: the account and the Nmbrs API user (seed 003).",
        response_class=Response,
        responses=html_responses({200: "The page.", **PAGE_STATUSES}),
    )
    async def integration(request: Request, environment_id: str | None = None) -> Response:
        async def work(active: ActiveSession) -> Response:
            chosen = environment_id
            if chosen is None:
                async with db.transaction() as session:
                    mine = await EnvironmentService(session, context.components.clock).mine(
                        active.user
                    )
                if not mine:
                    raise Refused(
                        404,
                        N_("You have no environment yet"),
                        N_("Create your company's environment first."),
                    )
                chosen = str(mine[0].environment.id)
            return await integration_page(
                request, uuid_or_404(chosen, "environment"), active=active
            )

        return await guarded(context, request, work)

    @router.post(
        f"{CONNECT_PATH}/account",
        summary="Create the named Visma.net account.",
        response_class=Response,
        responses=html_responses(
            {200: "A field is wrong: the page again with the error.", **PAGE_STATUSES}
        ),
    )
    async def create_account(request: Request) -> Response:
        async def work(active: ActiveSession) -> Response:
            form = await context.form(request)
            environment = uuid_or_404(form_text(form, "environment_id"), "environment")
            name = form_text(form, "name", limit=300)
            async with db.transaction() as session:
                _account, errors = await nmbrs_service(context, session).create_account(
                    active.user, environment, name
                )
            if errors:
                return await integration_page(
                    request, environment, errors, {"name": name}, active=active
                )
            return context.redirect(integration_url(environment))

        return await guarded(context, request, work)

    @router.post(
        f"{CONNECT_PATH}/account/authorize",
        status_code=303,
        summary="Authorize the Visma.net account: to Visma Connect with a fresh login.",
        response_class=Response,
        responses=html_responses({**PAGE_STATUSES}),
    )
    async def authorize(request: Request) -> Response:
        async def work(active: ActiveSession) -> Response:
            form = await context.form(request)
            environment = uuid_or_404(form_text(form, "environment_id"), "environment")
            async with db.transaction() as session, vendor_http(context) as http:
                account = await nmbrs_service(context, session).account_for_authorization(
                    active.user, environment
                )
                started = await visma_service(context, session, http).start(
                    active.user,
                    NMBRS_ACCOUNT,
                    callback_url(context, CALLBACK_PATH),
                    {"connection_id": str(account.id), "environment_id": str(environment)},
                )
            wake_relay(context)
            # The one redirect to another site: Visma Connect, built from settings.
            return Response(
                status_code=303,
                headers={"Location": started.authorize_url, "Cache-Control": "no-store"},
            )

        return await guarded(context, request, work, problem_heading=NOT_AUTHORIZED)

    @router.get(
        f"{CONNECT_PATH}/flows/{{flow_id}}/company",
        summary="Choose the Visma.net company of the account.",
        response_class=Response,
        responses=html_responses({200: "The page.", **PAGE_STATUSES}),
    )
    async def company(request: Request, flow_id: str) -> Response:
        async def work(active: ActiveSession) -> Response:
            async with db.transaction() as session, vendor_http(context) as http:
                service = visma_service(context, session, http)
                flow = await service.flow(
                    active.user, uuid_or_404(flow_id, "connection attempt"), NMBRS_ACCOUNT
                )
                companies = service.companies(flow)
            return context.render(
                request, "pages/nmbrs/company.html", flow=flow, companies=companies
            )

        return await guarded(context, request, work, problem_heading=NOT_AUTHORIZED)

    @router.post(
        f"{CONNECT_PATH}/flows/{{flow_id}}/company",
        summary="Authorize the account for the chosen company (write rights checked).",
        response_class=Response,
        responses=html_responses(
            {
                200: "Authorized (success message), no company chosen, or the template "
                "does not grant write rights (said in red).",
                **PAGE_STATUSES,
            }
        ),
    )
    async def choose_company(request: Request, flow_id: str) -> Response:
        async def work(active: ActiveSession) -> Response:
            form = await context.form(request)
            chosen_id = form_text(form, "company", limit=40)
            async with db.transaction() as session, vendor_http(context) as http:
                service = visma_service(context, session, http)
                flow = await service.flow(
                    active.user, uuid_or_404(flow_id, "connection attempt"), NMBRS_ACCOUNT
                )
                companies = service.companies(flow)
                if chosen_id:
                    connection, writes = await service.authorize_account(
                        active.user, flow, chosen_id
                    )
            if not chosen_id:
                return context.render(
                    request,
                    "pages/nmbrs/company.html",
                    flow=flow,
                    companies=companies,
                    errors=translated({"company": N_("Choose the company to send journals to.")}),
                )
            wake_relay(context)
            chosen = next(c for c in companies if c.external_id == chosen_id)
            return context.render(
                request,
                "pages/nmbrs/authorized.html",
                writes=writes,
                company=chosen,
                connection=connection,
                environment_id=str(flow.data["environment_id"]),
            )

        return await guarded(context, request, work, problem_heading=NOT_AUTHORIZED)

    @router.post(
        f"{CONNECT_PATH}/credential",
        summary="Save the Nmbrs API user's token (checked live with Nmbrs).",
        response_class=Response,
        responses=html_responses(
            {
                200: "A field is wrong or Nmbrs refused: the page again with the error.",
                **PAGE_STATUSES,
            }
        ),
    )
    async def save_credential(request: Request) -> Response:
        async def work(active: ActiveSession) -> Response:
            form = await context.form(request)
            environment = uuid_or_404(form_text(form, "environment_id"), "environment")
            username = form_text(form, "nmbrs_username")
            domain = form_text(form, "nmbrs_domain")
            token = SecretStr(form_text(form, "nmbrs_token", limit=500))
            async with db.transaction() as session:
                _connection, errors = await nmbrs_service(context, session).save_nmbrs(
                    active.user, environment, username, token, domain
                )
            if errors:
                return await integration_page(
                    request,
                    environment,
                    errors,
                    {"nmbrs_username": username, "nmbrs_domain": domain},
                    active=active,
                )
            wake_relay(context)
            return context.redirect(integration_url(environment))

        return await guarded(context, request, work)

    return router
