"""How a browser reaches an activation: from a vendor's store, from an e-mailed link, or
from inside the product; and the pages every flow shares around it.

* ``GET /activate/{provider}/{ref}``: the store's redirect; waits for the activation
  event, then on to the flow's first step.
* ``GET /activate/{provider}/{ref}/status?since=``: JSON for the waiting page's script
  (``waiting``, ``ready``, ``gave_up``, ``done``, ``ended``).
* ``GET /activate/link/{token}``: an e-mailed link; on to the activation, or a page saying
  it expired or was used.
* ``GET /connect/{provider}``: in-product flows (Visma.net, Nmbrs, 24SevenOffice).
* ``GET /environments/{subdomain}``: where a finished flow lands.
* ``GET /language/{code}?next=``: the language switch (a cookie), back to the page.

``ref`` is the activation event's ``store_reference`` (or, for an activation without one,
its connection id). Either the event or the browser may come first: the waiting page asks
``.../status`` every ``pages.poll_seconds`` with a small script (and has a "Check again"
button for browsers without JavaScript); after ``pages.wait_seconds`` it says the
activation has not arrived and what to do.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from datetime import timedelta
from typing import Any, Final
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, FastAPI, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from pydantic import BaseModel, Field

from ledgerlink.auth.domain.activation_pages import (
    LANGUAGES,
    LinkState,
    WaitState,
    parse_since,
    wait_state,
)
from ledgerlink.auth.domain.clock import MovableClock
from ledgerlink.auth.domain.next_url import UnsafeNextUrl, check_next
from ledgerlink.auth.handlers.internal_http import service_token_guard
from ledgerlink.auth.handlers.pages.common import (
    LANGUAGE_COOKIE,
    PagesContext,
    _,
)
from ledgerlink.auth.handlers.web import _html_responses
from ledgerlink.auth.services.activation_pages import ActivationPages
from ledgerlink.auth.storage.models import Connection
from ledgerlink.shared.business_id import BusinessIdError, parse_business_id
from ledgerlink.shared.runtime import error_responses

_NO_STORE: Final = {"Cache-Control": "no-store"}

#: Where each store-started flow begins, given the activation's ref (the flows register).
FlowStart = Callable[[str], str]


async def find_activation(pages: ActivationPages, provider: str, ref: str) -> Connection | None:
    """The connection an activation event made for ``ref`` (store reference or id)."""
    connection = await pages.by_store_reference(provider, ref)
    if connection is not None:
        return connection
    try:
        connection_id = uuid.UUID(ref)
    except ValueError:
        return None
    connection = await pages.connection(connection_id)
    return connection if connection is not None and connection.provider == provider else None


def ended_page(context: PagesContext, request: Request, connection: Connection) -> HTMLResponse:
    """The page of an activation that can no longer be finished, saying why and what to do."""
    status = connection.status.value
    if status == "expired":
        title = _("This activation has expired")
        text = _(
            "It was not finished in time. Start the activation again from the store where "
            "you began; you will get a new link."
        )
    elif status == "rejected":
        title = _("This activation was refused")
        text = _(
            "The company's details could not be accepted: %(reason)s Check the business ID "
            "in your accounting system and start again from the store.",
            reason=connection.message or "",
        )
    else:
        title = _("This connection has ended")
        text = _("The connection was revoked. Start a new activation from the store.")
    return context.message(request, title=title, paragraphs=[text], status=410, kind="error")


def done_page(context: PagesContext, request: Request, connection: Connection) -> HTMLResponse:
    """The page of an activation that is already finished (a used link, a second visit)."""
    return context.message(
        request,
        title=_("This activation is already finished"),
        paragraphs=[
            _(
                "%(company)s is connected. The link has been used and cannot be used again; "
                "sign in to Ledgerlink to see the connection.",
                company=connection.company_name,
            )
        ],
        status=410,
        actions=[(_("Go to sign-in"), "/signin")],
    )


class ActivationStatus(BaseModel):
    """What the waiting page's script asks for."""

    state: WaitState = Field(description="waiting, ready, gave_up, done or ended")
    next: str | None = Field(
        default=None, description="Where the page goes now (ready, done, ended)."
    )


class ClockAdvance(BaseModel):
    """Body of ``POST /internal/v1/clock/advance`` (development and tests)."""

    seconds: float = Field(ge=0, le=10 * 365 * 24 * 3600)


class FinancialModelBody(BaseModel):
    """Body of ``PUT /internal/v1/financial-models/{country}/{business_id}``."""

    active: bool


def build_activation_router(
    context: PagesContext, flow_starts: Mapping[str, FlowStart]
) -> APIRouter:
    """The shared activation routes (see the module docstring)."""
    router = APIRouter(tags=["activation pages"])
    wait = timedelta(seconds=context.config.pages.wait_seconds)

    def base(provider: str, ref: str) -> str:
        return f"/activate/{provider}/{ref}"

    async def state_of(
        provider: str, ref: str, since_text: str | None
    ) -> tuple[WaitState, Connection | None, str]:
        now = context.now()
        since = parse_since(since_text, now)
        async with context.web.db.transaction() as session:
            connection = await find_activation(context.pages(session), provider, ref)
        state = wait_state(
            connection.status if connection is not None else None,
            since=since,
            now=now,
            wait=wait,
        )
        return state, connection, since.isoformat()

    @router.get(
        "/activate/link/{token}",
        response_class=HTMLResponse,
        summary="An e-mailed activation link: on to the activation, or why it cannot be used.",
        responses=_html_responses(
            {
                303: "On to the activation.",
                404: "The link is not one we issued (mistyped or cut short).",
                410: "The link has expired, or the activation it leads to is finished.",
            }
        ),
    )
    async def activation_link(request: Request, token: str) -> Response:
        async with context.web.db.transaction() as session:
            opened = await context.pages(session).links.open(token)
        context.use_language(request)
        connection = opened.connection
        if opened.state is LinkState.UNKNOWN or connection is None:
            return context.message(
                request,
                title=_("This link does not work"),
                paragraphs=[
                    _(
                        "Check that you copied the whole link from the e-mail, or start the "
                        "activation again from the store."
                    )
                ],
                status=404,
                kind="error",
            )
        if opened.state is LinkState.USED:
            return done_page(context, request, connection)
        if opened.state is LinkState.EXPIRED:
            return context.message(
                request,
                title=_("This link has expired"),
                paragraphs=[
                    _(
                        "Activation links work for %(hours)s hours. Start the activation "
                        "again from the store and use the new link you get.",
                        hours=f"{context.config.pages.link_ttl_hours:g}",
                    )
                ],
                status=410,
                kind="error",
            )
        ref = connection.store_reference or str(connection.id)
        if connection.provider not in flow_starts:
            return context.message(
                request,
                title=_("Page not found"),
                paragraphs=[_("There is no activation for this kind of connection.")],
                status=404,
                kind="error",
            )
        return context.redirect(base(connection.provider, ref))

    @router.get(
        "/activate/{provider}/{ref}",
        response_class=HTMLResponse,
        summary="A vendor store's redirect: wait for the activation, then its first step.",
        responses=_html_responses(
            {
                303: "On to the flow's first step (the activation has arrived).",
                404: "No such provider's activation pages.",
                410: "The activation has ended (expired, refused, revoked) or is finished.",
            }
        ),
    )
    async def activation_entry(
        request: Request, provider: str, ref: str, since: str | None = None
    ) -> Response:
        start = flow_starts.get(provider)
        if start is None:
            context.use_language(request)
            return context.message(
                request,
                title=_("Page not found"),
                paragraphs=[_("There is no activation for this kind of connection.")],
                status=404,
                kind="error",
            )
        state, connection, since_text = await state_of(provider, ref, since)
        if state is WaitState.READY:
            return context.redirect(start(ref))
        context.use_language(request)
        if state is WaitState.DONE and connection is not None:
            return done_page(context, request, connection)
        if state is WaitState.ENDED and connection is not None:
            return ended_page(context, request, connection)
        return context.render(
            request,
            "pages/waiting.html",
            provider=provider,
            gave_up=state is WaitState.GAVE_UP,
            since=since_text,
            status_url=f"{base(provider, ref)}/status?{urlencode({'since': since_text})}",
            check_url=base(provider, ref),
            poll_ms=int(context.config.pages.poll_seconds * 1000),
        )

    @router.get(
        "/activate/{provider}/{ref}/status",
        response_model=ActivationStatus,
        summary="Whether the activation event has arrived (the waiting page asks).",
        responses=error_responses({404: "No such provider's activation pages."}),
    )
    async def activation_status(provider: str, ref: str, since: str | None = None) -> JSONResponse:
        start = flow_starts.get(provider)
        if start is None:
            return JSONResponse({"detail": "no such provider"}, status_code=404)
        state, _connection, _since = await state_of(provider, ref, since)
        next_url = None
        if state is WaitState.READY:
            next_url = start(ref)
        elif state in (WaitState.DONE, WaitState.ENDED, WaitState.GAVE_UP):
            next_url = f"{base(provider, ref)}?{urlencode({'since': _since})}"
        return JSONResponse(
            ActivationStatus(state=state, next=next_url).model_dump(mode="json"),
            headers=_NO_STORE,
        )

    @router.get(
        "/connect/{provider}",
        response_class=HTMLResponse,
        summary="Start an in-product connection flow.",
        responses=_html_responses(
            {303: "On to the flow's first page.", 404: "No such connection flow."}
        ),
    )
    async def connect(request: Request, provider: str) -> Response:
        entry = context.connect_entries.get(provider)
        if entry is None:
            context.use_language(request)
            return context.message(
                request,
                title=_("Page not found"),
                paragraphs=[_("There is no connection flow for this system.")],
                status=404,
                kind="error",
            )
        return context.redirect(entry)

    @router.get(
        "/environments/{subdomain}",
        response_class=HTMLResponse,
        summary="An environment's own page: its connections and their states.",
        responses=_html_responses(
            {303: "Not signed in: to the sign-in page.", 404: "No such environment (or not yours)."}
        ),
    )
    async def environment_page(request: Request, subdomain: str) -> Response:
        active = await context.person(request)
        if isinstance(active, RedirectResponse):
            return active
        async with context.web.db.transaction() as session:
            pages = context.pages(session)
            memberships = await pages.environments.mine(active.user)
            found = next(
                (m for m in memberships if m.environment.subdomain == subdomain.lower()), None
            )
            connections = (
                await pages.environments.connections(active.user, found.environment.id)
                if found is not None
                else []
            )
        context.use_language(request)
        if found is None:
            return context.message(
                request,
                title=_("Page not found"),
                paragraphs=[_("There is no environment at this address that you belong to.")],
                status=404,
                kind="error",
            )
        return context.render(
            request,
            "pages/environment.html",
            environment=found.environment,
            role=found.role.value,
            connections=connections,
        )

    @router.get(
        "/language/{code}",
        response_class=HTMLResponse,
        summary="Switch the pages' language (a cookie), back to the page.",
        responses=_html_responses({303: "Back to the page.", 400: "Unknown language."}),
    )
    async def switch_language(
        request: Request, code: str, next: str = Query(default="/signin")
    ) -> Response:
        try:
            back = check_next(next)
        except UnsafeNextUrl:
            back = "/signin"
        if code not in LANGUAGES:
            context.use_language(request)
            return context.message(
                request,
                title=_("Unknown language"),
                paragraphs=[_("The pages are in English and Finnish.")],
                status=400,
                kind="error",
            )
        response = RedirectResponse(back, status_code=303, headers=_NO_STORE)
        response.set_cookie(
            LANGUAGE_COOKIE,
            code,
            max_age=365 * 24 * 3600,
            path="/",
            httponly=True,
            samesite="lax",
            secure=context.config.cookie_secure,
        )
        return response

    return router


def build_pages_internal_router(context: PagesContext) -> APIRouter:
    """Service-token routes of the pages: the financial model fact, and (development and
    tests only) moving auth's clock."""
    guard = Depends(service_token_guard(context.config.service_tokens))
    router = APIRouter(prefix="/internal/v1", tags=["internal"], dependencies=[guard])

    @router.put(
        "/financial-models/{country}/{business_id}",
        status_code=204,
        summary="Record whether a company's financial model is active (planning needs it).",
        responses=error_responses(
            {
                400: "Not a valid business ID for the country.",
                401: "No or an unknown service token (Authorization: Bearer).",
            }
        ),
    )
    async def set_financial_model(
        country: str, business_id: str, body: FinancialModelBody
    ) -> Response:
        try:
            parsed = parse_business_id(country.upper(), business_id)
        except BusinessIdError as error:
            return JSONResponse({"detail": error.message}, status_code=400)
        async with context.web.db.transaction() as session:
            await context.pages(session).set_financial_model(
                parsed.country, parsed.value, body.active
            )
        return Response(status_code=204)

    clock = context.components.clock
    if context.config.pages.clock_control and isinstance(clock, MovableClock):
        movable = clock

        @router.post("/clock/advance", include_in_schema=False)
        async def advance_clock(body: ClockAdvance) -> dict[str, Any]:
            now = movable.advance(body.seconds)
            return {"now": now.isoformat(), "offset_seconds": movable.offset_seconds}

    return router


def register_activation_routes(
    app: FastAPI, context: PagesContext, flow_starts: Mapping[str, FlowStart]
) -> None:
    """Attach the shared activation routes and the pages' internal routes."""
    app.include_router(build_activation_router(context, flow_starts))
    app.include_router(build_pages_internal_router(context))
