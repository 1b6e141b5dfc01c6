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
from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import Response
from pydantic import SecretStr

from ledgerlink.auth.handlers.pages._flowkit import (
    PAGE_STATUSES,
    FlowKit,
    Refused,
    html_responses,
    redirect,
)
from ledgerlink.auth.services.access import AccessRefused
from ledgerlink.auth.services.organisations import OrganisationService
from ledgerlink.auth.services.sessions import ActiveSession
from ledgerlink.auth.services.twentyfour_keys import TwentyFourKeys
from ledgerlink.auth.storage.vendor_flows import TwentyFourClient

BASE = "/connect/24sevenoffice"


def keys_service(kit: FlowKit, session: object) -> TwentyFourKeys:
    """The "API keys" use cases on one request's transaction."""
    components = kit.components
    return TwentyFourKeys(
        session,  # type: ignore[arg-type]
        vault=components.vault,
        outbox=components.outbox,
        client=TwentyFourClient(components.config.connect.twentyfour),
        clock=components.clock,
        backoff=timedelta(seconds=components.config.connect.login_backoff_seconds),
    )


def _uuid(value: str | None, what: str) -> uuid.UUID:
    try:
        return uuid.UUID(str(value))
    except ValueError:
        raise Refused(404, f"No such {what}", f"There is no {what} with this address.") from None


def build_twentyfour_router(kit: FlowKit) -> APIRouter:
    """The 24SevenOffice tab of "API keys" and the companies' setup wizard."""
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
        except AccessRefused as refusal:
            return await kit.refused(
                request, active, Refused(refusal.status, "This cannot be done", refusal.message)
            )

    async def keys_page(
        request: Request,
        active: ActiveSession,
        organisation_id: uuid.UUID | None,
        status: int = 200,
        errors: dict[str, str] | None = None,
        values: dict[str, str] | None = None,
        notice: str | None = None,
    ) -> Response:
        async with db.transaction() as session:
            organisations = await OrganisationService(session, kit.components.clock).mine(
                active.user
            )
            if not organisations:
                raise Refused(
                    404,
                    "You have no organisation yet",
                    "Create your organisation first; API keys belong to an organisation.",
                )
            chosen = organisation_id or organisations[0].organisation.id
            view = await keys_service(kit, session).view(active.user, chosen)
        current = next((o for o in organisations if o.organisation.id == chosen), None)
        if current is None:
            raise Refused(404, "No such organisation", "There is no organisation here.")
        return await kit.page(
            request,
            active,
            "pages/twentyfour/keys.html",
            status,
            organisation=current.organisation,
            role=current.role.value,
            view=view,
            errors=errors or {},
            values=values or {},
            notice=notice,
        )

    @router.get(
        BASE,
        summary='"API keys", 24SevenOffice tab (seed 004).',
        response_class=Response,
        responses=html_responses({200: "The page.", **PAGE_STATUSES}),
    )
    async def keys(
        request: Request, organisation_id: str | None = None, notice: str | None = None
    ) -> Response:
        async def work(active: ActiveSession) -> Response:
            chosen = _uuid(organisation_id, "organisation") if organisation_id else None
            message = {"imported": "Companies imported.", "saved": "Saved."}.get(notice or "")
            return await keys_page(request, active, chosen, notice=message)

        return await guarded(request, work)

    @router.post(
        f"{BASE}/login",
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
    async def login(
        request: Request,
        organisation_id: Annotated[str, Form()],
        username: Annotated[str, Form()] = "",
        password: Annotated[str, Form()] = "",
        csrf_token: Annotated[str | None, Form()] = None,
    ) -> Response:
        async def work(active: ActiveSession) -> Response:
            await kit.check_csrf(active, csrf_token)
            organisation = _uuid(organisation_id, "organisation")
            async with db.transaction() as session:
                outcome = await keys_service(kit, session).login(
                    active.user, organisation, username, SecretStr(password)
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
            return redirect(f"{BASE}?organisation_id={organisation}&notice=saved")

        return await guarded(request, work)

    @router.post(
        f"{BASE}/transaction-type",
        summary="Choose the transaction type postings get.",
        response_class=Response,
        responses=html_responses(
            {200: "Not one of the vendor's types: the page again with the error.", **PAGE_STATUSES}
        ),
    )
    async def transaction_type(
        request: Request,
        organisation_id: Annotated[str, Form()],
        transaction_type: Annotated[str, Form()] = "",
        csrf_token: Annotated[str | None, Form()] = None,
    ) -> Response:
        async def work(active: ActiveSession) -> Response:
            await kit.check_csrf(active, csrf_token)
            organisation = _uuid(organisation_id, "organisation")
            async with db.transaction() as session:
                errors = await keys_service(kit, session).choose_transaction_type(
                    active.user, organisation, transaction_type
                )
            if errors:
                return await keys_page(request, active, organisation, errors=errors)
            return redirect(f"{BASE}?organisation_id={organisation}&notice=saved")

        return await guarded(request, work)

    @router.post(
        f"{BASE}/import",
        summary='"Import companies": every client the integration user reaches.',
        response_class=Response,
        responses=html_responses(
            {200: "The login was refused or throttled: the page with the error.", **PAGE_STATUSES}
        ),
    )
    async def import_companies(
        request: Request,
        organisation_id: Annotated[str, Form()],
        csrf_token: Annotated[str | None, Form()] = None,
    ) -> Response:
        async def work(active: ActiveSession) -> Response:
            await kit.check_csrf(active, csrf_token)
            organisation = _uuid(organisation_id, "organisation")
            async with db.transaction() as session:
                _added, outcome = await keys_service(kit, session).import_companies(
                    active.user, organisation, reference=f"page:24so:{organisation}"
                )
            if not outcome.ok:
                assert outcome.message is not None
                return await keys_page(
                    request, active, organisation, errors={"password": outcome.message}
                )
            kit.wake_relay()
            return redirect(f"{BASE}?organisation_id={organisation}&notice=imported")

        return await guarded(request, work)

    async def setup_page(
        request: Request,
        active: ActiveSession,
        organisation: uuid.UUID,
        connection_id: uuid.UUID,
        errors: dict[str, str] | None = None,
        values: dict[str, str] | None = None,
    ) -> Response:
        async with db.transaction() as session:
            connection, settings = await keys_service(kit, session).company(
                active.user, organisation, connection_id
            )
        return await kit.page(
            request,
            active,
            "pages/twentyfour/setup.html",
            organisation_id=organisation,
            connection=connection,
            settings=settings,
            errors=errors or {},
            values=values
            or {
                "start_period": str(settings.settings.get("start_period") or ""),
                "accounts": ", ".join(settings.settings.get("accounts") or []),
            },
        )

    @router.get(
        f"{BASE}/companies/{{connection_id}}/setup",
        summary="A company's setup wizard (start period, accounts to reconcile).",
        response_class=Response,
        responses=html_responses({200: "The page.", **PAGE_STATUSES}),
    )
    async def setup(request: Request, connection_id: str, organisation_id: str) -> Response:
        async def work(active: ActiveSession) -> Response:
            return await setup_page(
                request,
                active,
                _uuid(organisation_id, "organisation"),
                _uuid(connection_id, "company"),
            )

        return await guarded(request, work)

    @router.post(
        f"{BASE}/companies/{{connection_id}}/setup",
        summary="Complete the setup wizard.",
        response_class=Response,
        responses=html_responses(
            {200: "A field is wrong: the page again, the error next to its field.", **PAGE_STATUSES}
        ),
    )
    async def complete_setup(
        request: Request,
        connection_id: str,
        organisation_id: Annotated[str, Form()],
        start_period: Annotated[str, Form()] = "",
        accounts: Annotated[str, Form()] = "",
        csrf_token: Annotated[str | None, Form()] = None,
    ) -> Response:
        async def work(active: ActiveSession) -> Response:
            await kit.check_csrf(active, csrf_token)
            organisation = _uuid(organisation_id, "organisation")
            connection = _uuid(connection_id, "company")
            async with db.transaction() as session:
                errors = await keys_service(kit, session).complete_setup(
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
            return redirect(f"{BASE}?organisation_id={organisation}&notice=saved")

        return await guarded(request, work)

    return router
