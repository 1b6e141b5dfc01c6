"""Steps the store-started flows share: loading the activation a step belongs to (with the
browser's progress and the person's standing), the refusal naming the admins, and the
terms to show."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Final

from fastapi import Request
from fastapi.responses import HTMLResponse, Response

from ledgerlink.auth.domain.activation_pages import WaitState, wait_state
from ledgerlink.auth.domain.environments import Contact
from ledgerlink.auth.handlers.pages.activation import done_page, ended_page, find_activation
from ledgerlink.auth.handlers.pages.common import PagesContext, _
from ledgerlink.auth.handlers.web import _html_responses
from ledgerlink.auth.services.activation_pages import ActivationPages, EnvironmentStanding
from ledgerlink.auth.storage.models import Connection, User

#: A step only asks whether its activation can be continued, not how long it waited.
_NEVER: Final = timedelta(days=36500)


#: The OpenAPI answers of a store-started flow's form steps (Netvisor, Procountor).
FORM_RESPONSES: Final = _html_responses(
    {
        303: "On to the next step.",
        400: "The form is missing this browser's CSRF token.",
        403: "The person may not connect this company (the page names whom to ask).",
        404: "No such activation.",
        410: "The activation has ended or is already finished.",
        422: "A field is wrong: the page shows the error next to it.",
    }
)


@dataclass(frozen=True)
class ActivationState:
    """What a step knows about its activation."""

    connection: Connection
    #: This browser's decisions so far (no secrets).
    flow_data: dict[str, Any]
    #: Whether the product's prerequisite (the financial model) is met.
    financial_model_ok: bool
    #: The signed-in person's standing with the company's environment (None: nobody).
    standing: EnvironmentStanding | None


async def load_activation(
    context: PagesContext,
    request: Request,
    provider: str,
    ref: str,
    *,
    person: User | None = None,
) -> ActivationState | Response:
    """The activation of a step, or the page to show instead: the waiting page when its
    event has not arrived, the finished or ended page when it cannot be continued."""
    async with context.web.db.transaction() as session:
        pages = context.pages(session)
        connection = await find_activation(pages, provider, ref)
        if connection is None:
            state = None
        else:
            state = wait_state(
                connection.status, since=context.now(), now=context.now(), wait=_NEVER
            )
        if connection is None or state is not WaitState.READY:
            flow_data: dict[str, Any] = {}
            model_ok = False
            standing = None
        else:
            flow = await pages.flow(connection, context.browser_hash(request))
            flow_data = dict(flow.data)
            model_ok = (
                connection.product not in context.config.pages.financial_model_products
                or await pages.financial_model_active(connection)
            )
            standing = await pages.standing(person, connection) if person is not None else None
    if connection is None:
        return context.redirect(f"/activate/{provider}/{ref}")
    context.use_language(request)
    if state is WaitState.DONE:
        return done_page(context, request, connection)
    if state is WaitState.ENDED:
        return ended_page(context, request, connection)
    return ActivationState(connection, flow_data, model_ok, standing)


def environment_refusal(
    context: PagesContext,
    request: Request,
    admins: list[Contact],
    *,
    message: str | None = None,
) -> HTMLResponse:
    """The page for a person who may not connect this company: whom to ask."""
    context.use_language(request)
    if admins:
        names = ", ".join(
            f"{admin.name} ({admin.email})" if admin.name else admin.email for admin in admins
        )
        text = _(
            "Your company already has an environment in Ledgerlink, and only its admins can "
            "connect it. Ask an admin to make you an admin, or to finish the activation: "
            "%(admins)s.",
            admins=names,
        )
    else:
        text = message or _("Only an admin of the company's environment can connect it.")
    return context.message(
        request,
        title=_("Only an admin can connect this company"),
        paragraphs=[text],
        status=403,
        kind="error",
        actions=[(_("Sign in with another account"), "/signin")],
    )


@dataclass(frozen=True)
class TermsToShow:
    """A document on the terms step (published, or the built-in text when none is)."""

    id: uuid.UUID | None
    title: str
    text: str | None
    url: str | None
    version: int | None


async def terms_for(
    pages: ActivationPages, person: User | None, environment_id: uuid.UUID | None
) -> list[TermsToShow]:
    """The current terms of use and privacy notice to read before connecting (``person``
    None: before anyone has signed in)."""
    documents = (
        [item.document for item in await pages.current_terms(person, environment_id)]
        if person is not None
        else await pages.terms.published()
    )
    if documents:
        return [
            TermsToShow(document.id, document.title, document.text, document.url, document.version)
            for document in documents
        ]
    # No version published yet (a fresh install): the built-in summary, nothing recorded.
    return [
        TermsToShow(
            None,
            _("Ledgerlink terms of use"),
            _(
                "Ledgerlink reads your company's accounting data from the system you connect, "
                "only to build the reports of the products you use. You can revoke the "
                "connection at any time."
            ),
            None,
            None,
        )
    ]
