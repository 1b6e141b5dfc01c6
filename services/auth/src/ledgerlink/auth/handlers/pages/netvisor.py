"""Netvisor -> planning (seed 000), started from the Netvisor Store.

1. ``/activate/netvisor/{ref}`` waits for the activation event (``activation.py``).
2. ``.../start``: planning needs the company's financial model active first; if it is not,
   the activation cannot complete and the page says what to activate.
3. ``.../environment``: mandatory sign-in; the environment matched by the business ID
   Netvisor sent is selected when the person is its admin (or it is made for them, when
   only the store's activation made it and they are the person who started it); anyone
   else is refused, told whom to ask.
4. ``.../identifiers``: Netvisor's customer ID and customer key, checked with a live,
   signed call (our partner ID and key from settings) before anything is saved; a wrong
   one is shown next to its field.
5. ``.../terms``: read and accept the terms, "Connect" (a recent sign-in is required: the
   provider may ask again). The key goes into the vault, the connection is
   ``configuring`` and ``connection.activated.v1`` leaves through the outbox.
6. ``.../done``: the success page, which goes on to the environment after a few seconds.
"""

from __future__ import annotations

import uuid
from typing import Final

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import SecretStr

from ledgerlink.auth.domain.activation_pages import check_netvisor_identifiers
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
    environment_refusal,
    load_activation,
    terms_for,
)
from ledgerlink.auth.handlers.web import _html_responses
from ledgerlink.auth.services.access import AccessRefused
from ledgerlink.auth.services.environments import CompanyDetails
from ledgerlink.auth.services.lifecycle import LifecycleError, NetvisorAuthorization
from ledgerlink.auth.services.sessions import ActiveSession
from ledgerlink.auth.storage.vendor_checks import CheckOutcome

PROVIDER: Final = "netvisor"
STEPS: Final = (
    N_("Financial model"),
    N_("Sign in"),
    N_("Environment"),
    N_("Netvisor identifiers"),
    N_("Terms and connect"),
)


def first_step(ref: str) -> str:
    """Where the flow begins once the activation has arrived."""
    return f"/activate/{PROVIDER}/{ref}/start"


def _path(ref: str, step: str) -> str:
    return f"/activate/{PROVIDER}/{ref}/{step}"


def build_router(context: PagesContext) -> APIRouter:
    """The Netvisor flow's steps."""
    router = APIRouter(tags=["activation pages"])
    pages_responses = _html_responses(
        {
            303: "On to another step (or to sign-in).",
            403: "The person may not connect this company (the page names whom to ask).",
            404: "No such activation.",
            410: "The activation has ended or is already finished.",
        }
    )
    start_responses = _html_responses(
        {
            303: "On to sign-in and the environment (or to the waiting page).",
            409: "The company's financial model is not active: the page says what to do.",
            410: "The activation has ended or is already finished.",
        }
    )
    form_responses = FORM_RESPONSES

    async def signed_in(
        request: Request, ref: str, *, recent: bool = False, back: str | None = None
    ) -> tuple[ActiveSession, ActivationState] | Response:
        if recent:
            active = await context.recent_person(request, back_to=back)
        else:
            active = await context.person(request)
        if isinstance(active, RedirectResponse):
            return active
        state = await load_activation(context, request, PROVIDER, ref, person=active.user)
        if isinstance(state, Response):
            return state
        return active, state

    @router.get(
        "/activate/netvisor/{ref}/start",
        response_class=HTMLResponse,
        summary="Netvisor: the financial model check, then on to sign-in.",
        responses=start_responses,
    )
    async def start(request: Request, ref: str) -> Response:
        state = await load_activation(context, request, PROVIDER, ref)
        if isinstance(state, Response):
            return state
        if not state.financial_model_ok:
            return context.render(
                request,
                "pages/netvisor/financial_model.html",
                status=409,
                title=_("Activate the financial model first"),
                connection=state.connection,
                step_list=steps(STEPS, 0),
            )
        return context.redirect(_path(ref, "environment"))

    @router.get(
        "/activate/netvisor/{ref}/environment",
        response_class=HTMLResponse,
        summary="Netvisor: sign in and select the company's environment.",
        responses=pages_responses,
    )
    async def environment(request: Request, ref: str) -> Response:
        found = await signed_in(request, ref)
        if isinstance(found, Response):
            return found
        active, state = found
        if not state.financial_model_ok:
            return context.redirect(_path(ref, "start"))
        standing = state.standing
        assert standing is not None
        if standing.claimed and standing.role is not Role.ADMIN:
            return environment_refusal(context, request, standing.admins)
        return context.render(
            request,
            "pages/netvisor/environment.html",
            title=_("Choose the environment"),
            connection=state.connection,
            standing=standing,
            person=active.user,
            action=_path(ref, "environment"),
            step_list=steps(STEPS, 2),
        )

    @router.post(
        "/activate/netvisor/{ref}/environment",
        response_class=HTMLResponse,
        summary="Netvisor: use (or create) the environment.",
        responses=form_responses,
    )
    async def choose_environment(request: Request, ref: str) -> Response:
        await context.form(request)
        found = await signed_in(request, ref)
        if isinstance(found, Response):
            return found
        active, state = found
        connection = state.connection
        refused: AccessRefused | None = None
        async with context.web.db.transaction() as session:
            pages = context.pages(session)
            try:
                matched = await pages.match(
                    active.user,
                    connection,
                    CompanyDetails(
                        country=connection.country,
                        business_id=connection.business_id,
                        official_name=connection.company_name,
                        company_email=active.user.email,
                    ),
                )
            except AccessRefused as refusal:
                refused = refusal
            else:
                flow = await pages.flow(connection, context.browser_hash(request))
                await pages.update(
                    flow,
                    environment_id=str(matched.environment.id),
                    user_id=str(active.user.id),
                )
        if refused is not None:
            return environment_refusal(context, request, [], message=refused.message)
        return context.redirect(_path(ref, "identifiers"))

    def _identifiers_page(
        request: Request, ref: str, state: ActivationState, errors: FormErrors, customer_id: str
    ) -> HTMLResponse:
        return context.render(
            request,
            "pages/netvisor/identifiers.html",
            status=422 if errors else 200,
            title=_("Enter your Netvisor identifiers"),
            connection=state.connection,
            customer_id=customer_id,
            errors=errors,
            action=_path(ref, "identifiers"),
            step_list=steps(STEPS, 3),
        )

    @router.get(
        "/activate/netvisor/{ref}/identifiers",
        response_class=HTMLResponse,
        summary="Netvisor: the customer ID and key form.",
        responses=pages_responses,
    )
    async def identifiers(request: Request, ref: str) -> Response:
        found = await signed_in(request, ref)
        if isinstance(found, Response):
            return found
        _active, state = found
        if state.flow_data.get("environment_id") is None:
            return context.redirect(_path(ref, "environment"))
        return _identifiers_page(
            request, ref, state, FormErrors(), str(state.flow_data.get("customer_id", ""))
        )

    @router.post(
        "/activate/netvisor/{ref}/identifiers",
        response_class=HTMLResponse,
        summary="Netvisor: check the identifiers with a live call, keep them for Connect.",
        responses=form_responses,
    )
    async def check_identifiers(request: Request, ref: str) -> Response:
        form = await context.form(request)
        found = await signed_in(request, ref)
        if isinstance(found, Response):
            return found
        _active, state = found
        if state.flow_data.get("environment_id") is None:
            return context.redirect(_path(ref, "environment"))
        customer_id = form_text(form, "customer_id", limit=100)
        customer_key = SecretStr(form_text(form, "customer_key", limit=200))
        errors = FormErrors()
        for problem in check_netvisor_identifiers(customer_id, customer_key.get_secret_value()):
            errors.add(problem.field, _(problem.message))
        check = context.netvisor_check()
        if not errors and check is None:
            errors.add(
                "customer_id",
                _(
                    "Netvisor connections are not set up on this service yet (our partner "
                    "identity is missing). Nothing was saved; please contact support."
                ),
            )
        elif not errors and check is not None:
            outcome = await check.check(
                customer_id=customer_id,
                customer_key=customer_key,
                business_id=state.connection.business_id,
            )
            if outcome is CheckOutcome.WRONG_CUSTOMER_ID:
                errors.add(
                    "customer_id",
                    _(
                        "Netvisor does not know this customer ID for %(company)s. Copy it "
                        "again from Netvisor.",
                        company=state.connection.company_name,
                    ),
                )
            elif outcome is CheckOutcome.WRONG_KEY:
                errors.add(
                    "customer_key",
                    _(
                        "Netvisor did not accept this customer key. Copy the key again, or "
                        "make a new one in Netvisor."
                    ),
                )
            elif outcome is CheckOutcome.API_CLOSED:
                errors.add(
                    "customer_id",
                    _(
                        "Netvisor accepted the identifiers, but this user has no rights to "
                        "the interface. Give the integration user rights to Netvisor's "
                        "interface, then try again."
                    ),
                )
            elif outcome is CheckOutcome.UNAVAILABLE:
                errors.add(
                    "customer_id",
                    _("Netvisor could not be reached just now. Nothing was saved; try again."),
                )
        if errors:
            return _identifiers_page(request, ref, state, errors, customer_id)
        async with context.web.db.transaction() as session:
            pages = context.pages(session)
            flow = await pages.flow(state.connection, context.browser_hash(request))
            await pages.update(flow, customer_id=customer_id)
            await pages.seal(flow, {"customer_key": customer_key})
        return context.redirect(_path(ref, "terms"))

    async def _terms_page(
        request: Request,
        ref: str,
        active: ActiveSession,
        state: ActivationState,
        errors: FormErrors,
    ) -> HTMLResponse:
        environment_id = uuid.UUID(str(state.flow_data["environment_id"]))
        async with context.web.db.transaction() as session:
            documents = await terms_for(context.pages(session), active.user, environment_id)
        return context.render(
            request,
            "pages/netvisor/terms.html",
            status=422 if errors else 200,
            title=_("Read and accept the terms"),
            connection=state.connection,
            documents=documents,
            errors=errors,
            action=_path(ref, "terms"),
            step_list=steps(STEPS, 4),
        )

    @router.get(
        "/activate/netvisor/{ref}/terms",
        response_class=HTMLResponse,
        summary="Netvisor: the terms and the Connect button (recent sign-in).",
        responses=pages_responses,
    )
    async def terms(request: Request, ref: str) -> Response:
        found = await signed_in(request, ref, recent=True)
        if isinstance(found, Response):
            return found
        active, state = found
        if state.flow_data.get("customer_id") is None:
            return context.redirect(_path(ref, "identifiers"))
        return await _terms_page(request, ref, active, state, FormErrors())

    @router.post(
        "/activate/netvisor/{ref}/terms",
        response_class=HTMLResponse,
        summary="Netvisor: Connect (keys into the vault, connection.activated.v1).",
        responses=form_responses,
    )
    async def connect(request: Request, ref: str) -> Response:
        form = await context.form(request)
        found = await signed_in(request, ref, recent=True, back=_path(ref, "terms"))
        if isinstance(found, Response):
            return found
        active, state = found
        if state.flow_data.get("customer_id") is None:
            return context.redirect(_path(ref, "identifiers"))
        if not form_checked(form, "accept_terms"):
            errors = FormErrors()
            errors.add("accept_terms", _("Accept the terms to connect Netvisor."))
            return await _terms_page(request, ref, active, state, errors)
        environment_id = uuid.UUID(str(state.flow_data["environment_id"]))
        customer_id = str(state.flow_data["customer_id"])
        async with context.web.db.transaction() as session:
            pages = context.pages(session)
            flow = await pages.flow(state.connection, context.browser_hash(request))
            key = pages.open(flow, "customer_key")
            if key is None:
                return context.redirect(_path(ref, "identifiers"))
            documents = await pages.current_terms(active.user, environment_id)
            await pages.accept_terms(
                active.user, [item.document.id for item in documents], environment_id
            )
            try:
                await pages.complete(
                    state.connection,
                    NetvisorAuthorization(
                        vendor_account=customer_id,
                        customer_id=customer_id,
                        customer_key=key,
                        organisation_id=state.connection.business_id,
                    ),
                    person=active.user,
                )
            except LifecycleError:
                # Finished meanwhile (another browser) or ended: the entry page says which.
                return context.redirect(f"/activate/{PROVIDER}/{ref}")
        return context.redirect(_path(ref, "done"))

    @router.get(
        "/activate/netvisor/{ref}/done",
        response_class=HTMLResponse,
        summary="Netvisor: connected; on to the environment in a few seconds.",
        responses=pages_responses,
    )
    async def done(request: Request, ref: str) -> Response:
        active = await context.person(request)
        if isinstance(active, RedirectResponse):
            return active
        async with context.web.db.transaction() as session:
            pages = context.pages(session)
            connection = await find_activation(pages, PROVIDER, ref)
            environment = await pages.environment(connection.environment_id) if connection else None
            standing = (
                await pages.standing(active.user, connection) if connection is not None else None
            )
        context.use_language(request)
        if connection is None or environment is None or standing is None or standing.role is None:
            return context.message(
                request,
                title=_("Page not found"),
                paragraphs=[_("There is no activation for this kind of connection.")],
                status=404,
                kind="error",
            )
        if connection.status.value not in ("configuring", "active"):
            if connection.status.value in ("pending_authorization", "authorizing"):
                return context.redirect(_path(ref, "terms"))
            return ended_page(context, request, connection)
        return context.render(
            request,
            "pages/success.html",
            title=_(
                "Netvisor was successfully connected to %(name)s environment",
                name=environment.official_name or environment.company_name,
            ),
            environment=environment,
            environment_url=context.environment_url(environment),
            redirect_seconds=5,
        )

    return router
