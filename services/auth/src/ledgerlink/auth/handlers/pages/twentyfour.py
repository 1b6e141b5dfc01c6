"""24SevenOffice -> reconciliation pages (seed 004): "API keys", 24SevenOffice tab.

* ``GET /connect/24sevenoffice?organisation_id=``: the tab (integration user, transaction
  type, companies);
* ``POST .../login``: "Done", a live login (refusals throttled);
* ``POST .../transaction-type``: the transaction type postings get;
* ``POST .../import``: "Import companies";
* ``/connect/24sevenoffice/companies/{id}/setup`` (GET, POST): a company's setup wizard.
"""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Final

from fastapi import APIRouter, Request
from fastapi.responses import Response
from pydantic import SecretStr
from sqlalchemy.ext.asyncio import AsyncSession

from ledgerlink.auth.handlers.pages.common import N_, PagesContext, form_text, gettext
from ledgerlink.auth.handlers.pages.connection_pages import (
    PAGE_STATUSES,
    guarded,
    html_responses,
    translated,
    uuid_or_404,
    wake_relay,
)
from ledgerlink.auth.handlers.pages.vismanet import organisation_form
from ledgerlink.auth.services.organisations import OrganisationService
from ledgerlink.auth.services.sessions import ActiveSession
from ledgerlink.auth.services.twentyfour_keys import TwentyFourKeys
from ledgerlink.auth.storage.vendor_flows import TwentyFourClient

_ = gettext

PROVIDER: Final = "24sevenoffice"
CONNECT_PATH: Final = "/connect/24sevenoffice"
NOTICES: Final = {"imported": N_("Companies imported."), "saved": N_("Saved.")}


def keys_service(context: PagesContext, session: AsyncSession) -> TwentyFourKeys:
    """The "API keys" use cases on one request's transaction."""
    components = context.components
    return TwentyFourKeys(
        session,
        vault=components.vault,
        outbox=components.outbox,
        client=TwentyFourClient(components.config.twentyfour, context.vendor_transport),
        clock=components.clock,
        backoff=timedelta(seconds=components.config.connect.login_backoff_seconds),
    )


def build_router(context: PagesContext) -> APIRouter:
    """The 24SevenOffice tab of "API keys" and the companies' setup wizard."""
    router = APIRouter(tags=["connection pages"])
    db = context.web.db

    def keys_url(organisation: uuid.UUID, notice: str) -> str:
        return f"{CONNECT_PATH}?organisation_id={organisation}&notice={notice}"

    async def keys_page(
        request: Request,
        active: ActiveSession,
        organisation_id: uuid.UUID | None,
        errors: dict[str, str] | None = None,
        values: dict[str, str] | None = None,
        notice: str | None = None,
    ) -> Response:
        async with db.transaction() as session:
            organisations = await OrganisationService(session, context.components.clock).mine(
                active.user
            )
            if not organisations:
                return organisation_form(context, request, CONNECT_PATH)
            chosen = organisation_id or organisations[0].organisation.id
            view = await keys_service(context, session).view(active.user, chosen)
        current = next(o for o in organisations if o.organisation.id == chosen)
        return context.render(
            request,
            "pages/twentyfour/keys.html",
            organisation=current.organisation,
            role=current.role.value,
            view=view,
            errors=translated(errors or {}),
            values=values or {},
            notice=_(notice) if notice else None,
        )

    @router.get(
        CONNECT_PATH,
        summary='"API keys", 24SevenOffice tab (seed 004).',
        response_class=Response,
        responses=html_responses({200: "The page.", **PAGE_STATUSES}),
    )
    async def keys(
        request: Request, organisation_id: str | None = None, notice: str | None = None
    ) -> Response:
        async def work(active: ActiveSession) -> Response:
            chosen = uuid_or_404(organisation_id, "organisation") if organisation_id else None
            return await keys_page(request, active, chosen, notice=NOTICES.get(notice or ""))

        return await guarded(context, request, work)

    @router.post(
        f"{CONNECT_PATH}/login",
        summary='"Done": log the integration user in at 24SevenOffice.',
        response_class=Response,
        responses=html_responses(
            {
                200: "Refused, throttled or a field is wrong: the page again, the error next "
                "to its field.",
                **PAGE_STATUSES,
            }
        ),
    )
    async def login(request: Request) -> Response:
        async def work(active: ActiveSession) -> Response:
            form = await context.form(request)
            organisation = uuid_or_404(form_text(form, "organisation_id"), "organisation")
            username = form_text(form, "username", limit=320)
            password = SecretStr(form_text(form, "password", limit=500))
            async with db.transaction() as session:
                outcome = await keys_service(context, session).login(
                    active.user, organisation, username, password
                )
            if not outcome.ok:
                assert outcome.field is not None
                assert outcome.message is not None
                return await keys_page(
                    request,
                    active,
                    organisation,
                    errors={outcome.field: outcome.message},
                    values={"username": username},
                )
            return context.redirect(keys_url(organisation, "saved"))

        return await guarded(context, request, work)

    @router.post(
        f"{CONNECT_PATH}/transaction-type",
        summary="Choose the transaction type postings get.",
        response_class=Response,
        responses=html_responses(
            {200: "Not one of the vendor's types: the page again with the error.", **PAGE_STATUSES}
        ),
    )
    async def transaction_type(request: Request) -> Response:
        async def work(active: ActiveSession) -> Response:
            form = await context.form(request)
            organisation = uuid_or_404(form_text(form, "organisation_id"), "organisation")
            async with db.transaction() as session:
                errors = await keys_service(context, session).choose_transaction_type(
                    active.user, organisation, form_text(form, "transaction_type", limit=20)
                )
            if errors:
                return await keys_page(request, active, organisation, errors=errors)
            return context.redirect(keys_url(organisation, "saved"))

        return await guarded(context, request, work)

    @router.post(
        f"{CONNECT_PATH}/import",
        summary='"Import companies": every client the integration user reaches.',
        response_class=Response,
        responses=html_responses(
            {200: "The login was refused or throttled: the page with the error.", **PAGE_STATUSES}
        ),
    )
    async def import_companies(request: Request) -> Response:
        async def work(active: ActiveSession) -> Response:
            form = await context.form(request)
            organisation = uuid_or_404(form_text(form, "organisation_id"), "organisation")
            async with db.transaction() as session:
                _added, outcome = await keys_service(context, session).import_companies(
                    active.user, organisation, reference=f"page:24so:{organisation}"
                )
            if not outcome.ok:
                assert outcome.message is not None
                return await keys_page(
                    request, active, organisation, errors={"password": outcome.message}
                )
            wake_relay(context)
            return context.redirect(keys_url(organisation, "imported"))

        return await guarded(context, request, work)

    async def setup_page(
        request: Request,
        active: ActiveSession,
        organisation: uuid.UUID,
        connection_id: uuid.UUID,
        errors: dict[str, str] | None = None,
        values: dict[str, str] | None = None,
    ) -> Response:
        async with db.transaction() as session:
            connection, settings = await keys_service(context, session).company(
                active.user, organisation, connection_id
            )
        return context.render(
            request,
            "pages/twentyfour/setup.html",
            organisation_id=organisation,
            connection=connection,
            settings=settings,
            errors=translated(errors or {}),
            values=values
            or {
                "start_period": str(settings.settings.get("start_period") or ""),
                "accounts": ", ".join(settings.settings.get("accounts") or []),
            },
        )

    @router.get(
        f"{CONNECT_PATH}/companies/{{connection_id}}/setup",
        summary="A company's setup wizard (start period, accounts to reconcile).",
        response_class=Response,
        responses=html_responses({200: "The page.", **PAGE_STATUSES}),
    )
    async def setup(request: Request, connection_id: str, organisation_id: str) -> Response:
        async def work(active: ActiveSession) -> Response:
            return await setup_page(
                request,
                active,
                uuid_or_404(organisation_id, "organisation"),
                uuid_or_404(connection_id, "company"),
            )

        return await guarded(context, request, work)

    @router.post(
        f"{CONNECT_PATH}/companies/{{connection_id}}/setup",
        summary="Complete the setup wizard.",
        response_class=Response,
        responses=html_responses(
            {200: "A field is wrong: the page again, the error next to its field.", **PAGE_STATUSES}
        ),
    )
    async def complete_setup(request: Request, connection_id: str) -> Response:
        async def work(active: ActiveSession) -> Response:
            form = await context.form(request)
            organisation = uuid_or_404(form_text(form, "organisation_id"), "organisation")
            connection = uuid_or_404(connection_id, "company")
            start_period = form_text(form, "start_period", limit=20)
            accounts = form_text(form, "accounts", limit=1000)
            async with db.transaction() as session:
                errors = await keys_service(context, session).complete_setup(
                    active.user, organisation, connection, start_period, accounts
                )
            if errors:
                return await setup_page(
                    request,
                    active,
                    organisation,
                    connection,
                    errors=errors,
                    values={"start_period": start_period, "accounts": accounts},
                )
            return context.redirect(keys_url(organisation, "saved"))

        return await guarded(context, request, work)

    return router
