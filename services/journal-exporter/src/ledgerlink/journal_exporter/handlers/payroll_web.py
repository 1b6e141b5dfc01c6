"""Server-rendered pages of payroll mappings: the list, a new mapping, runs and periods.

The same plain style as auth's pages (GOV.UK patterns: labels and hints on every field, an
error summary linking to each field's own message, no JavaScript). People sign in through
auth: the browser's auth session cookie (same site) is checked by auth on every page
(:class:`~ledgerlink.journal_exporter.storage.auth_sessions.AuthSessions`), which also says
the person's role in the environments owning a mapping's Nmbrs and Visma.net connections.
Members of those environments see a mapping and its status; only admins of both make or
change mappings. Signed out: to auth's sign-in page and back.
"""

from __future__ import annotations

import hmac
import re
import uuid
from collections.abc import Collection, Sequence
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlencode

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates

from ledgerlink.journal_exporter.config import PayrollSigninSettings
from ledgerlink.journal_exporter.services.payroll import (
    ExportService,
    MappingDraft,
    MappingRefusedError,
    MappingService,
    NotFoundError,
)
from ledgerlink.journal_exporter.storage.auth_sessions import AuthUnavailableError, SignedIn
from ledgerlink.journal_exporter.storage.models import Connection, PostingStatus

__all__ = ["register_payroll_pages"]

WEB_ROOT = Path(__file__).resolve().parent.parent / "web"
_NO_STORE = {"Cache-Control": "no-store"}

#: (field, label, hint) of the new-mapping form, in order.
FIELDS: tuple[tuple[str, str, str], ...] = (
    ("name", "Name of the mapping", "For example the company's name."),
    (
        "nmbrs_connection_id",
        "Visma Nmbrs connection",
        "An authorised Nmbrs account of an environment you are an admin of.",
    ),
    ("nmbrs_company_id", "Visma Nmbrs company", "The company's number in Nmbrs."),
    (
        "vismanet_connection_id",
        "Visma.net connection",
        "An authorised Visma.net account of an environment you are an admin of.",
    ),
    ("vismanet_company_id", "Visma.net company (administration)", ""),
    (
        "cost_centre_description",
        "Description of the cost centre dimension in Visma.net",
        "Leave empty to send no cost centres.",
    ),
    (
        "cost_unit_description",
        "Description of the cost unit dimension in Visma.net",
        "Leave empty to send no cost units.",
    ),
    (
        "start_period",
        "First period sent automatically",
        "As YYYY-MM, for example 2025-01. Leave empty for January of last year.",
    ),
)
_PERIOD = re.compile(r"^\d{4}-(0[1-9]|1[0-2])$")
_REQUIRED = {
    "name": "Enter a name for the mapping",
    "nmbrs_connection_id": "Choose the Nmbrs connection",
    "nmbrs_company_id": "Enter the Nmbrs company",
    "vismanet_connection_id": "Choose the Visma.net connection",
    "vismanet_company_id": "Enter the Visma.net company",
}
STATUS_WORDS = {
    "released": "Released",
    "releasing": "Releasing",
    "posted": "Posted",
    "pending": "Waiting",
    "retrying": "Trying again",
    "refused": "Refused",
    "failed": "Failed",
}


#: The connection fields offered as a choice of the person's connections, by provider.
_CONNECTION_FIELDS = {"nmbrs_connection_id": "nmbrs", "vismanet_connection_id": "visma_net"}


def _choices(known: Sequence[Connection], person: SignedIn) -> dict[str, list[tuple[str, str]]]:
    """Per connection field, (id, label) of the connections the person is an admin of."""
    return {
        field: [
            (str(c.connection_id), f"{c.company_name} ({c.business_id})")
            for c in known
            if c.provider == provider and person.roles.get(c.connection_id) == "admin"
        ]
        for field, provider in _CONNECTION_FIELDS.items()
    }


def _draft(values: dict[str, str]) -> tuple[MappingDraft | None, dict[str, str]]:
    errors = {
        field: message for field, message in _REQUIRED.items() if not values.get(field, "").strip()
    }
    ids: dict[str, uuid.UUID] = {}
    for field in ("nmbrs_connection_id", "vismanet_connection_id"):
        if field in errors:
            continue
        try:
            ids[field] = uuid.UUID(values[field].strip())
        except ValueError:
            errors[field] = "Enter the connection's id as shown by Ledgerlink (a UUID)"
    start = values.get("start_period", "").strip()
    if start and not _PERIOD.match(start):
        errors["start_period"] = "Enter the period as YYYY-MM, for example 2025-01"
    if errors:
        return None, errors
    return (
        MappingDraft(
            name=values["name"].strip(),
            nmbrs_connection_id=ids["nmbrs_connection_id"],
            nmbrs_company_id=values["nmbrs_company_id"].strip(),
            vismanet_connection_id=ids["vismanet_connection_id"],
            vismanet_company_id=values["vismanet_company_id"].strip(),
            cost_centre_description=values.get("cost_centre_description", "").strip() or None,
            cost_unit_description=values.get("cost_unit_description", "").strip() or None,
            auto_export=values.get("auto_export") == "yes",
            release=values.get("release") == "yes",
            start_period=start or None,
        ),
        {},
    )


class Sessions(Protocol):
    """Who is signed in (auth's sessions over HTTP in the service)."""

    async def resolve(
        self, cookie: str, connection_ids: Collection[uuid.UUID] = ()
    ) -> SignedIn | None: ...


def _admin_problems(draft: MappingDraft, person: SignedIn) -> dict[str, str]:
    """Errors next to the connection fields the person may not map."""
    errors = {}
    for field, connection_id in (
        ("nmbrs_connection_id", draft.nmbrs_connection_id),
        ("vismanet_connection_id", draft.vismanet_connection_id),
    ):
        role = person.roles.get(connection_id)
        if role is None:
            errors[field] = "No connection with this id belongs to an environment you are in"
        elif role != "admin":
            errors[field] = "Only an admin of the environment that owns this connection can map it"
    return errors


def build_payroll_pages(
    mappings: MappingService,
    exports: ExportService,
    sessions: Sessions,
    signin: PayrollSigninSettings,
) -> APIRouter:
    """The pages under ``/payroll``, each behind auth's sign-in."""
    templates = Jinja2Templates(directory=str(WEB_ROOT / "templates"))
    router = APIRouter(prefix="/payroll", include_in_schema=False)

    def page(request: Request, template: str, status: int = 200, **values: Any) -> HTMLResponse:
        return templates.TemplateResponse(
            request, template, values, status_code=status, headers=_NO_STORE
        )

    async def person_of(
        request: Request, connection_ids: Collection[uuid.UUID] = ()
    ) -> SignedIn | Response:
        """The signed-in person, or the response to give instead (to sign-in, or 503)."""
        cookie = request.cookies.get(signin.cookie_name)
        found = None
        if cookie:
            try:
                found = await sessions.resolve(cookie, connection_ids)
            except AuthUnavailableError:
                return page(
                    request,
                    "problem.html",
                    503,
                    heading="Sign-in is not available",
                    message="Ledgerlink could not check who you are. Try again in a minute.",
                )
        if found is None:
            here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
            return RedirectResponse(
                f"{signin.signin_url}?{urlencode({'next': here})}",
                status_code=303,
                headers=_NO_STORE,
            )
        return found

    def refused(request: Request, person: SignedIn) -> HTMLResponse:
        return page(
            request,
            "problem.html",
            403,
            person=person,
            heading="You cannot see this mapping",
            message="Only members of the environment that owns this mapping's Visma Nmbrs "
            "and Visma.net connections can see it. Ask one of its admins to add you.",
        )

    @router.get("", response_class=HTMLResponse, response_model=None)
    async def mapping_list(request: Request) -> Response:
        every = await mappings.all_current()
        person = await person_of(
            request,
            {c for m in every for c in (m.nmbrs_connection_id, m.vismanet_connection_id)},
        )
        if not isinstance(person, SignedIn):
            return person
        visible = [
            m
            for m in every
            if person.role_over(m.nmbrs_connection_id, m.vismanet_connection_id) is not None
        ]
        return page(request, "mappings.html", mappings=visible, person=person)

    async def known() -> list[Connection]:
        return await mappings.known_connections(tuple(_CONNECTION_FIELDS.values()))

    @router.get("/mappings/new", response_class=HTMLResponse, response_model=None)
    async def new_mapping(request: Request) -> Response:
        connections = await known()
        person = await person_of(request, [c.connection_id for c in connections])
        if not isinstance(person, SignedIn):
            return person
        return page(
            request,
            "mapping_form.html",
            fields=FIELDS,
            values={},
            errors={},
            choices=_choices(connections, person),
            person=person,
            csrf_token=person.csrf_token,
        )

    @router.post("/mappings/new", response_model=None)
    async def save_mapping(request: Request) -> Response:
        form = await request.form()
        values = {key: str(value) for key, value in form.items()}
        draft, errors = _draft(values)
        asked = (
            (draft.nmbrs_connection_id, draft.vismanet_connection_id) if draft is not None else ()
        )
        connections = await known()
        person = await person_of(request, {*asked, *(c.connection_id for c in connections)})
        if not isinstance(person, SignedIn):
            return person
        if not hmac.compare_digest(values.get("csrf_token", ""), person.csrf_token):
            return page(
                request,
                "problem.html",
                403,
                person=person,
                heading="The form has expired",
                message="Open the form again and send it from there.",
            )
        if draft is not None:
            errors = _admin_problems(draft, person)
        if draft is not None and not errors:
            try:
                saved = await mappings.save(draft, created_by=person.email)
            except MappingRefusedError as refused_mapping:
                errors = {problem.field: problem.message for problem in refused_mapping.problems}
            else:
                return RedirectResponse(f"/payroll/mappings/{saved.mapping_id}", status_code=303)
        return page(
            request,
            "mapping_form.html",
            422,
            fields=FIELDS,
            values=values,
            errors=errors,
            choices=_choices(connections, person),
            person=person,
            csrf_token=person.csrf_token,
        )

    @router.get("/mappings/{mapping_id}", response_class=HTMLResponse, response_model=None)
    async def mapping_page(request: Request, mapping_id: uuid.UUID) -> Response:
        try:
            mapping = await mappings.current(mapping_id)
        except NotFoundError:
            person = await person_of(request)
            if not isinstance(person, SignedIn):
                return person
            return page(
                request,
                "problem.html",
                404,
                person=person,
                heading="Page not found",
                message="There is no such mapping.",
            )
        person = await person_of(
            request, (mapping.nmbrs_connection_id, mapping.vismanet_connection_id)
        )
        if not isinstance(person, SignedIn):
            return person
        role = person.role_over(mapping.nmbrs_connection_id, mapping.vismanet_connection_id)
        if role is None:
            return refused(request, person)
        rejected = await exports.postings(mapping_id=mapping_id, status=PostingStatus.REFUSED)
        problems = [
            {"run_id": p.run_id, "period": p.period, **problem}
            for p in rejected
            for problem in p.problems
        ]
        return page(
            request,
            "mapping.html",
            mapping=mapping,
            runs=await exports.statuses(mapping_id, "run"),
            periods=await exports.statuses(mapping_id, "period"),
            problems=problems,
            status_words=STATUS_WORDS,
            person=person,
            role=role,
        )

    return router


def register_payroll_pages(
    app: FastAPI,
    mappings: MappingService,
    exports: ExportService,
    sessions: Sessions,
    signin: PayrollSigninSettings,
) -> None:
    """Mount the pages and their stylesheet."""
    app.mount(
        "/payroll/static",
        StaticFiles(directory=str(WEB_ROOT / "static")),
        name="payroll-static",
    )
    app.include_router(build_payroll_pages(mappings, exports, sessions, signin))
