"""Procountor -> planning (seed 001), started from the Procountor Store.

1. ``/activate/procountor/{ref}`` waits for the activation event (``activation.py``).
2. ``.../start``: before anything else, the warning that without payroll rights the
   general ledger will not add up.
3. ``.../terms``: review and accept the terms of use and the privacy notice.
4. ``.../scopes``: one company per activation, and what we will read, in words; "Continue
   to Procountor" goes to Procountor's login (authorization code grant, our client).
5. ``/activate/procountor/callback``: the code is redeemed and the company read. A company
   whose API is closed (a paid add-on, closed by default: Procountor answers 403
   ``API_CLIENTS_NOT_ALLOWED``) gets a page saying how to open it; another company than
   the activation's is refused. The tokens are kept sealed in this browser's progress.
6. ``.../company``: sign-in; the company form (name, company e-mail, subdomain suggested
   from the name when the field gets the focus, VAT ID from Procountor read-only, terms
   again, "Create company"). When the company already has an environment, the same step
   joins it, admins only; anyone else is told whom to ask.
7. ``.../confirm``: "Confirm connection" (a recent sign-in; the provider may ask again):
   tokens into the vault, ``configuring``, ``connection.activated.v1``.
8. ``.../connected``: "Procountor was successfully connected to <name> environment";
   "To <product>" (``.../finish``) asks for sign-in once more, then opens the environment.
"""

from __future__ import annotations

import logging
import secrets
import time
import uuid
from datetime import timedelta
from typing import Final
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from ledgerlink.auth.domain.activation_pages import parse_since, vat_id
from ledgerlink.auth.domain.environments import Role
from ledgerlink.auth.handlers.pages.activation import ended_page, find_activation
from ledgerlink.auth.handlers.pages.common import (
    N_,
    FormErrors,
    PagesContext,
    _,
    form_checked,
    form_text,
    steps,
)
from ledgerlink.auth.handlers.pages.flows import (
    FORM_RESPONSES,
    ActivationState,
    TermsToShow,
    environment_refusal,
    load_activation,
    terms_for,
)
from ledgerlink.auth.handlers.web import _html_responses
from ledgerlink.auth.services.access import AccessRefused
from ledgerlink.auth.services.environments import CompanyDetails
from ledgerlink.auth.services.lifecycle import LifecycleError, OAuthAuthorization
from ledgerlink.auth.services.sessions import ActiveSession
from ledgerlink.auth.storage.vendor_checks import ProcountorApiClosed
from ledgerlink.connectors.errors import ConnectorError
from ledgerlink.shared.business_id import BusinessIdError, parse_business_id

logger = logging.getLogger(__name__)

PROVIDER: Final = "procountor"
STEPS: Final = (
    N_("Payroll rights"),
    N_("Terms"),
    N_("What we read"),
    N_("Procountor login"),
    N_("Company"),
    N_("Confirm"),
)
#: What the planning product reads from Procountor, in words (the endpoints the connector
#: calls: /company, /coa, /dimensions, /fiscalyears, /ledgerreceipts).
SCOPES: Final = (
    N_("Your company's basic information: its name, business ID and currency."),
    N_("The chart of accounts."),
    N_("Dimensions and their items, such as cost centres and projects."),
    N_("Fiscal years and their accounting periods."),
    N_(
        "Ledger receipts and their entries, including payroll receipts when your user may see them."
    ),
)


def first_step(ref: str) -> str:
    """Where the flow begins once the activation has arrived."""
    return f"/activate/{PROVIDER}/{ref}/start"


def _path(ref: str, step: str) -> str:
    return f"/activate/{PROVIDER}/{ref}/{step}"


def _looks_like_email(value: str) -> bool:
    local, at, domain = value.partition("@")
    return bool(local and at and "." in domain and " " not in value and len(value) <= 320)


def build_router(context: PagesContext) -> APIRouter:
    """The Procountor flow's steps."""
    router = APIRouter(tags=["activation pages"])
    pages_responses = _html_responses(
        {
            303: "On to another step (or to sign-in, or to Procountor's login).",
            403: "The person may not connect this company (the page names whom to ask).",
            404: "No such activation.",
            410: "The activation has ended or is already finished.",
        }
    )
    form_responses = FORM_RESPONSES

    async def person_and_state(
        request: Request, ref: str, *, recent: bool = False, back: str | None = None
    ) -> tuple[ActiveSession, ActivationState] | Response:
        active = (
            await context.recent_person(request, back_to=back)
            if recent
            else await context.person(request)
        )
        if isinstance(active, RedirectResponse):
            return active
        state = await load_activation(context, request, PROVIDER, ref, person=active.user)
        if isinstance(state, Response):
            return state
        return active, state

    # 2. The payroll warning -----------------------------------------------------------

    @router.get(
        "/activate/procountor/{ref}/start",
        response_class=HTMLResponse,
        summary="Procountor: the payroll rights warning, before anything else.",
        responses=pages_responses,
    )
    async def start(request: Request, ref: str) -> Response:
        state = await load_activation(context, request, PROVIDER, ref)
        if isinstance(state, Response):
            return state
        return context.render(
            request,
            "pages/procountor/payroll.html",
            title=_("Payroll rights are needed"),
            connection=state.connection,
            action=_path(ref, "start"),
            step_list=steps(STEPS, 0),
        )

    @router.post(
        "/activate/procountor/{ref}/start",
        response_class=HTMLResponse,
        summary="Procountor: the warning was read.",
        responses=form_responses,
    )
    async def warned(request: Request, ref: str) -> Response:
        await context.form(request)
        state = await load_activation(context, request, PROVIDER, ref)
        if isinstance(state, Response):
            return state
        async with context.web.db.transaction() as session:
            pages = context.pages(session)
            await pages.update(
                await pages.flow(state.connection, context.browser_hash(request)), warned=True
            )
        return context.redirect(_path(ref, "terms"))

    # 3. Terms ---------------------------------------------------------------------------

    async def _terms_page(
        request: Request, ref: str, state: ActivationState, errors: FormErrors
    ) -> HTMLResponse:
        documents = await _published_terms(context)
        return context.render(
            request,
            "pages/procountor/terms.html",
            status=422 if errors else 200,
            title=_("Review and accept the terms"),
            connection=state.connection,
            documents=documents,
            errors=errors,
            action=_path(ref, "terms"),
            step_list=steps(STEPS, 1),
        )

    @router.get(
        "/activate/procountor/{ref}/terms",
        response_class=HTMLResponse,
        summary="Procountor: review and accept the terms.",
        responses=pages_responses,
    )
    async def terms(request: Request, ref: str) -> Response:
        state = await load_activation(context, request, PROVIDER, ref)
        if isinstance(state, Response):
            return state
        if not state.flow_data.get("warned"):
            return context.redirect(_path(ref, "start"))
        return await _terms_page(request, ref, state, FormErrors())

    @router.post(
        "/activate/procountor/{ref}/terms",
        response_class=HTMLResponse,
        summary="Procountor: the terms were accepted.",
        responses=form_responses,
    )
    async def accept_terms(request: Request, ref: str) -> Response:
        form = await context.form(request)
        state = await load_activation(context, request, PROVIDER, ref)
        if isinstance(state, Response):
            return state
        if not form_checked(form, "accept_terms"):
            errors = FormErrors()
            errors.add("accept_terms", _("Accept the terms of use and the privacy notice."))
            return await _terms_page(request, ref, state, errors)
        async with context.web.db.transaction() as session:
            pages = context.pages(session)
            await pages.update(
                await pages.flow(state.connection, context.browser_hash(request)),
                terms_read=True,
            )
        return context.redirect(_path(ref, "scopes"))

    # 4. One company; what we read; on to Procountor -------------------------------------

    @router.get(
        "/activate/procountor/{ref}/scopes",
        response_class=HTMLResponse,
        summary="Procountor: one company per activation, and what we read.",
        responses=pages_responses,
    )
    async def scopes(request: Request, ref: str) -> Response:
        state = await load_activation(context, request, PROVIDER, ref)
        if isinstance(state, Response):
            return state
        if not state.flow_data.get("terms_read"):
            return context.redirect(_path(ref, "terms"))
        return context.render(
            request,
            "pages/procountor/scopes.html",
            title=_("What Ledgerlink will read from Procountor"),
            connection=state.connection,
            scopes=[_(scope) for scope in SCOPES],
            action=_path(ref, "scopes"),
            step_list=steps(STEPS, 2),
        )

    @router.post(
        "/activate/procountor/{ref}/scopes",
        response_class=HTMLResponse,
        summary="Procountor: on to Procountor's login.",
        responses=form_responses,
    )
    async def to_procountor(request: Request, ref: str) -> Response:
        await context.form(request)
        state = await load_activation(context, request, PROVIDER, ref)
        if isinstance(state, Response):
            return state
        # The state names the connection (the callback's path is fixed) and a secret the
        # browser's progress keeps: a callback with another state is refused.
        oauth_state = f"{state.connection.id}.{secrets.token_urlsafe(24)}"
        async with context.web.db.transaction() as session:
            pages = context.pages(session)
            flow = await pages.flow(state.connection, context.browser_hash(request))
            await pages.update(flow, oauth_state=oauth_state, ref=ref)
        return RedirectResponse(
            context.procountor().authorization_url(oauth_state),
            status_code=303,
            headers={"Cache-Control": "no-store"},
        )

    # 5. Back from Procountor --------------------------------------------------------------

    @router.get(
        "/activate/procountor/callback",
        response_class=HTMLResponse,
        summary="Procountor's redirect back: redeem the code, read the company.",
        responses=_html_responses(
            {
                303: "On to the company step.",
                400: "A stale or foreign answer (state), or Procountor refused the code.",
                409: "The company's API is closed, or it is not the activation's company.",
                410: "The activation has ended or is already finished.",
            }
        ),
    )
    async def callback(
        request: Request,
        code: str | None = None,
        state: str | None = None,
        error: str | None = None,
    ) -> Response:
        context.use_language(request)
        connection_text = (state or "").partition(".")[0]
        try:
            connection_id = uuid.UUID(connection_text)
        except ValueError:
            return _stale(context, request)
        async with context.web.db.transaction() as session:
            pages = context.pages(session)
            connection = await pages.connection(connection_id)
            flow = (
                await pages.flow(connection, context.browser_hash(request))
                if connection is not None
                else None
            )
        if connection is None or flow is None or flow.data.get("oauth_state") != state:
            return _stale(context, request)
        ref = str(flow.data.get("ref") or connection.store_reference or connection.id)
        if error or not code:
            return context.message(
                request,
                title=_("Procountor did not give access"),
                paragraphs=[
                    _(
                        "The login at Procountor was cancelled or refused, so nothing was "
                        "connected. You can try again."
                    )
                ],
                status=400,
                kind="error",
                actions=[(_("Try again"), _path(ref, "scopes"))],
            )
        try:
            grant = await context.procountor().redeem(code)
        except ProcountorApiClosed:
            logger.info("procountor API closed", extra={"connection_id": str(connection.id)})
            return context.render(
                request,
                "pages/procountor/api_closed.html",
                status=409,
                title=_("Open the API in Procountor first"),
                connection=connection,
                retry=_path(ref, "scopes"),
                step_list=steps(STEPS, 3),
            )
        except ConnectorError as failure:
            logger.warning(
                "procountor code grant failed",
                extra={"connection_id": str(connection.id), "error": type(failure).__name__},
            )
            return context.message(
                request,
                title=_("Procountor could not be reached"),
                paragraphs=[_("Nothing was connected. Try again in a moment.")],
                status=400,
                kind="error",
                actions=[(_("Try again"), _path(ref, "scopes"))],
            )
        company = grant.company
        try:
            chosen = parse_business_id(connection.country, company.business_id or "").value
        except BusinessIdError:
            chosen = None
        if chosen != connection.business_id:
            return context.message(
                request,
                title=_("This is another company"),
                paragraphs=[
                    _(
                        "You logged in to %(chosen)s in Procountor, but this activation is for "
                        "%(company)s (business ID %(business_id)s). One activation connects one "
                        "company: log in to Procountor as a user of %(company)s.",
                        chosen=company.name,
                        company=connection.company_name,
                        business_id=connection.business_id,
                    )
                ],
                status=409,
                kind="error",
                actions=[(_("Try again"), _path(ref, "scopes"))],
            )
        tokens = grant.tokens
        sealed = {"access_token": tokens.access_token}
        if tokens.refresh_token is not None:
            sealed["refresh_token"] = tokens.refresh_token
        async with context.web.db.transaction() as session:
            pages = context.pages(session)
            flow = await pages.flow(connection, context.browser_hash(request))
            await pages.update(
                flow,
                oauth_state=None,
                procountor_company_id=company.external_id,
                procountor_company=company.name,
                vat_id=vat_id(connection.country, connection.business_id),
                token_expires_at=tokens.expires_at,
                scope=tokens.scope,
            )
            await pages.seal(flow, sealed)
        return context.redirect(_path(ref, "company"))

    # 6. The company form (or joining the existing environment) ---------------------------

    async def _company_page(
        request: Request,
        ref: str,
        active: ActiveSession,
        state: ActivationState,
        errors: FormErrors,
        values: dict[str, str],
    ) -> HTMLResponse:
        standing = state.standing
        assert standing is not None
        async with context.web.db.transaction() as session:
            documents = await terms_for(
                context.pages(session),
                active.user,
                standing.environment.id
                if standing.claimed and standing.environment is not None
                else None,
            )
        return context.render(
            request,
            "pages/procountor/company.html",
            status=422 if errors else 200,
            title=_("Your company in Ledgerlink"),
            connection=state.connection,
            standing=standing,
            person=active.user,
            values=values,
            vat=state.flow_data.get("vat_id", ""),
            documents=documents,
            errors=errors,
            action=_path(ref, "company"),
            step_list=steps(STEPS, 4),
        )

    @router.get(
        "/activate/procountor/{ref}/company",
        response_class=HTMLResponse,
        summary="Procountor: sign in, then the company form (or join the environment).",
        responses=pages_responses,
    )
    async def company(request: Request, ref: str) -> Response:
        found = await person_and_state(request, ref)
        if isinstance(found, Response):
            return found
        active, state = found
        if not state.flow_data.get("procountor_company_id"):
            return context.redirect(_path(ref, "scopes"))
        standing = state.standing
        assert standing is not None
        if standing.claimed and standing.role is not Role.ADMIN:
            return environment_refusal(context, request, standing.admins)
        values = {
            "official_name": str(state.flow_data.get("procountor_company") or ""),
            "company_email": active.user.email,
            "subdomain": "",
        }
        return await _company_page(request, ref, active, state, FormErrors(), values)

    @router.post(
        "/activate/procountor/{ref}/company",
        response_class=HTMLResponse,
        summary="Procountor: Create company (or join the environment).",
        responses=form_responses,
    )
    async def create_company(request: Request, ref: str) -> Response:
        form = await context.form(request)
        found = await person_and_state(request, ref)
        if isinstance(found, Response):
            return found
        active, state = found
        if not state.flow_data.get("procountor_company_id"):
            return context.redirect(_path(ref, "scopes"))
        standing = state.standing
        assert standing is not None
        if standing.claimed and standing.role is not Role.ADMIN:
            return environment_refusal(context, request, standing.admins)
        joining = standing.claimed
        values = {
            "official_name": form_text(form, "official_name"),
            "company_email": form_text(form, "company_email", limit=320),
            "subdomain": form_text(form, "subdomain", limit=63).lower(),
        }
        errors = FormErrors()
        if not joining:
            if not values["official_name"]:
                errors.add("official_name", _("Enter the company's official registered name."))
            if not values["company_email"]:
                errors.add("company_email", _("Enter your e-mail address."))
            elif not _looks_like_email(values["company_email"]):
                errors.add(
                    "company_email",
                    _("Enter an e-mail address in the right form, like name@example.com."),
                )
        if not form_checked(form, "accept_terms"):
            errors.add("accept_terms", _("Accept the terms of use and the privacy notice."))
        refused: AccessRefused | None = None
        if not errors:
            connection = state.connection
            async with context.web.db.transaction() as session:
                pages = context.pages(session)
                if not joining and values["subdomain"]:
                    problem = await pages.environments.subdomain_available(values["subdomain"])
                    if problem is not None:
                        errors.add("subdomain", _subdomain_message(problem))
                if not errors:
                    try:
                        matched = await pages.match(
                            active.user,
                            connection,
                            CompanyDetails(
                                country=connection.country,
                                business_id=connection.business_id,
                                official_name=values["official_name"] or connection.company_name,
                                company_email=values["company_email"] or active.user.email,
                                subdomain=values["subdomain"] or None,
                            ),
                        )
                    except AccessRefused as refusal:
                        refused = refusal
                    else:
                        documents = await pages.current_terms(active.user, matched.environment.id)
                        await pages.accept_terms(
                            active.user,
                            [item.document.id for item in documents],
                            matched.environment.id,
                        )
                        flow = await pages.flow(connection, context.browser_hash(request))
                        await pages.update(
                            flow,
                            environment_id=str(matched.environment.id),
                            user_id=str(active.user.id),
                        )
        if refused is not None:
            if refused.code and refused.code.startswith("subdomain"):
                errors.add("subdomain", _subdomain_message(refused.message))
            else:
                return environment_refusal(context, request, [], message=refused.message)
        if errors:
            return await _company_page(request, ref, active, state, errors, values)
        return context.redirect(_path(ref, "confirm"))

    # 7. Confirm connection ----------------------------------------------------------------

    @router.get(
        "/activate/procountor/{ref}/confirm",
        response_class=HTMLResponse,
        summary="Procountor: check and Confirm connection (recent sign-in).",
        responses=pages_responses,
    )
    async def confirm(request: Request, ref: str) -> Response:
        found = await person_and_state(request, ref, recent=True)
        if isinstance(found, Response):
            return found
        _active, state = found
        if not state.flow_data.get("environment_id"):
            return context.redirect(_path(ref, "company"))
        async with context.web.db.transaction() as session:
            environment = await context.pages(session).environment(
                uuid.UUID(str(state.flow_data["environment_id"]))
            )
        return context.render(
            request,
            "pages/procountor/confirm.html",
            title=_("Confirm the connection"),
            connection=state.connection,
            environment=environment,
            data=state.flow_data,
            action=_path(ref, "confirm"),
            step_list=steps(STEPS, 5),
        )

    @router.post(
        "/activate/procountor/{ref}/confirm",
        response_class=HTMLResponse,
        summary="Procountor: Confirm connection (tokens into the vault, activated).",
        responses=form_responses,
    )
    async def confirmed(request: Request, ref: str) -> Response:
        await context.form(request)
        found = await person_and_state(request, ref, recent=True, back=_path(ref, "confirm"))
        if isinstance(found, Response):
            return found
        active, state = found
        data = state.flow_data
        if not data.get("environment_id"):
            return context.redirect(_path(ref, "company"))
        async with context.web.db.transaction() as session:
            pages = context.pages(session)
            flow = await pages.flow(state.connection, context.browser_hash(request))
            access = pages.open(flow, "access_token")
            if access is None:
                return context.redirect(_path(ref, "scopes"))
            refresh = pages.open(flow, "refresh_token")
            expires_at = data.get("token_expires_at")
            try:
                await pages.complete(
                    state.connection,
                    OAuthAuthorization(
                        vendor_account=str(data["procountor_company_id"]),
                        access_token=access,
                        refresh_token=refresh,
                        # The vendor's token lifetime runs on the wall clock.
                        expires_in=max(0.0, float(expires_at) - time.time())
                        if isinstance(expires_at, int | float)
                        else None,
                        scope=str(data["scope"]) if data.get("scope") else None,
                    ),
                    person=active.user,
                )
            except LifecycleError:
                return context.redirect(f"/activate/{PROVIDER}/{ref}")
        return context.redirect(_path(ref, "connected"))

    # 8. Connected; To <product> ----------------------------------------------------------

    async def _finished(
        request: Request, ref: str
    ) -> tuple[ActiveSession, str, str | None] | Response:
        active = await context.person(request)
        if isinstance(active, RedirectResponse):
            return active
        async with context.web.db.transaction() as session:
            pages = context.pages(session)
            connection = await find_activation(pages, PROVIDER, ref)
            environment = await pages.environment(connection.environment_id) if connection else None
            standing = await pages.standing(active.user, connection) if connection else None
        context.use_language(request)
        if connection is None or environment is None or standing is None or standing.role is None:
            return context.message(
                request,
                title=_("Page not found"),
                paragraphs=[_("There is no activation for this kind of connection.")],
                status=404,
                kind="error",
            )
        if connection.status.value in ("pending_authorization", "authorizing"):
            return context.redirect(_path(ref, "confirm"))
        if connection.status.value not in ("configuring", "active"):
            return ended_page(context, request, connection)
        name = environment.official_name or environment.company_name
        return active, name, context.environment_url(environment)

    @router.get(
        "/activate/procountor/{ref}/connected",
        response_class=HTMLResponse,
        summary="Procountor: connected; To <product>.",
        responses=pages_responses,
    )
    async def connected(request: Request, ref: str) -> Response:
        found = await _finished(request, ref)
        if isinstance(found, Response):
            return found
        _active, name, _url = found
        since = context.now().replace(microsecond=0).isoformat()
        return context.render(
            request,
            "pages/procountor/connected.html",
            title=_("Procountor was successfully connected to %(name)s environment", name=name),
            finish=f"{_path(ref, 'finish')}?{urlencode({'since': since})}",
        )

    @router.get(
        "/activate/procountor/{ref}/finish",
        response_class=HTMLResponse,
        summary="Procountor: sign in once more, then to the environment.",
        responses=pages_responses,
    )
    async def finish(request: Request, ref: str, since: str | None = None) -> Response:
        found = await _finished(request, ref)
        if isinstance(found, Response):
            return found
        active, _name, url = found
        asked = parse_since(since, context.now())
        # The seed: "To <product>" asks for the sign-in once more. A sign-in at or after
        # the click counts (the IdP's auth_time has whole seconds).
        if active.authenticated_at < asked - timedelta(seconds=1):
            return context.sign_in_again(
                active, f"{_path(ref, 'finish')}?{urlencode({'since': asked.isoformat()})}"
            )
        if url is None:
            return context.redirect("/signin")
        return RedirectResponse(url, status_code=303, headers={"Cache-Control": "no-store"})

    return router


def _stale(context: PagesContext, request: Request) -> HTMLResponse:
    return context.message(
        request,
        title=_("This answer from Procountor is out of date"),
        paragraphs=[
            _(
                "It does not belong to an activation in progress in this browser. Start again "
                "from the link or the store page of your activation."
            )
        ],
        status=400,
        kind="error",
    )


def _subdomain_message(message: str) -> str:
    # The environment rules' sentences (domain/environments.py) are English; the field
    # gets our translated one with theirs as the detail.
    return _("Choose another subdomain: %(reason)s", reason=message)


async def _published_terms(context: PagesContext) -> list[TermsToShow]:
    """The terms before anyone is signed in: the published versions (or the built-in)."""
    async with context.web.db.transaction() as session:
        return await terms_for(context.pages(session), None, None)
