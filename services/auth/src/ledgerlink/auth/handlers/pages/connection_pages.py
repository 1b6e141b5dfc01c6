"""What the in-product connection pages (Visma.net, Nmbrs' Visma.net account,
24SevenOffice) share on top of :mod:`.common`: the signed-in guard that turns the
services' refusals into pages, vendor HTTP clients, exact redirect URIs, and their OpenAPI
statuses."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import Any, Final

import httpx
from fastapi import Request
from fastapi.responses import HTMLResponse, Response

from ledgerlink.auth.handlers.pages.common import N_, FormErrors, PagesContext, gettext
from ledgerlink.auth.services.access import AccessRefused
from ledgerlink.auth.services.sessions import ActiveSession
from ledgerlink.auth.services.vismanet_connect import FlowProblem

_ = gettext

#: Statuses every connection page can answer.
PAGE_STATUSES: Final = {
    303: "Not signed in: to the sign-in page, which comes back here.",
    400: "The form's CSRF token is missing or wrong, or an attempt expired or was refused.",
    403: "Only an admin may do this.",
    404: "No such organisation, environment, company or connection attempt (or not yours).",
    409: "The current state forbids it (already connected, finished attempt ...).",
}

#: Refusal headings (translated when shown).
CANNOT: Final = N_("This cannot be done")
NOT_FOUND: Final = N_("Not found")


class Refused(Exception):  # noqa: N818 - a page's refusal, shown to the person
    """Stop and show a refusal page (status, heading and message in English msgids)."""

    def __init__(self, status: int, heading: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.heading = heading
        self.message = message


def html_responses(statuses: dict[int, str]) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` of a page route (redirects carry no body)."""
    return {
        status: {"description": text}
        if 300 <= status < 400
        else {"description": text, "content": {"text/html": {}}}
        for status, text in statuses.items()
    }


def uuid_or_404(value: object, what: str) -> uuid.UUID:
    """An id from a path or form, or a 404 page."""
    try:
        return uuid.UUID(str(value))
    except ValueError:
        raise Refused(404, NOT_FOUND, f"There is no {what} with this address.") from None


def vendor_http(context: PagesContext) -> httpx.AsyncClient:
    """A client for one page's vendor calls (the test transport when one is set)."""
    return httpx.AsyncClient(
        transport=context.vendor_transport, timeout=context.config.vendor_timeout_seconds
    )


def callback_url(context: PagesContext, path: str) -> str:
    """An exact redirect URI registered at a vendor: auth's public address and ``path``,
    never taken from the request."""
    return f"{context.config.public_base_url}{path}"


def refusal_page(context: PagesContext, request: Request, refusal: Refused) -> HTMLResponse:
    """The page of a refusal."""
    context.use_language(request)
    return context.message(
        request,
        title=_(refusal.heading),
        paragraphs=[_(refusal.message)],
        status=refusal.status,
        kind="error",
    )


async def guarded(
    context: PagesContext,
    request: Request,
    work: Callable[[ActiveSession], Awaitable[Response]],
    *,
    problem_heading: str = N_("The connection could not go on"),
) -> Response:
    """Run ``work`` for the signed-in person (else to sign in), refusals as pages."""
    active = await context.person(request)
    if not isinstance(active, ActiveSession):
        return active
    context.use_language(request)
    try:
        return await work(active)
    except Refused as refusal:
        return refusal_page(context, request, refusal)
    except FlowProblem as problem:
        return refusal_page(context, request, Refused(400, problem_heading, problem.message))
    except AccessRefused as refusal:
        return refusal_page(context, request, Refused(refusal.status, CANNOT, refusal.message))


def wake_relay(context: PagesContext) -> None:
    """Events were committed to the outbox: send them now."""
    context.components.credentials.on_commit()


def translated(errors: dict[str, str]) -> FormErrors:
    """Field errors in the page's language (the services speak English msgids)."""
    return FormErrors({name: _(message) for name, message in errors.items()})
