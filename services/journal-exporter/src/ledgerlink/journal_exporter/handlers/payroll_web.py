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
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlencode

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates

from ledgerlink.journal_exporter.config import PayrollSigninSettings
from ledgerlink.journal_exporter.services.payroll import (
    ExportRefusedError,
    ExportService,
    MappingDraft,
    MappingRefusedError,
    MappingService,
    NotFoundError,
)
from ledgerlink.journal_exporter.storage.auth_sessions import AuthUnavailableError, SignedIn
from ledgerlink.journal_exporter.storage.models import Connection, PayrollMapping, PostingStatus

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
#: (field, label, hint) of the form that sends journals (seed 003: "Journalposter Export").
EXPORT_FIELDS: tuple[tuple[str, str, str], ...] = (
    (
        "runs",
        "Runs",
        "The runs as Nmbrs numbers them, separated by commas, for example 2025-1, 2025-2. "
        "Or leave this empty and give periods below.",
    ),
    ("period_from", "First period", "As YYYY-MM, for example 2025-01."),
    ("period_to", "Last period", "As YYYY-MM. Every run of these periods is sent."),
)
_PERIOD_FORMAT = "Enter the period as YYYY-MM, for example 2025-01"
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


@dataclass(frozen=True)
class ExportRequest:
    """What the send-journals form asks for: runs, or the runs of a period range."""

    runs: list[str]
    period_from: str | None
    period_to: str | None


def _export_request(values: dict[str, str]) -> tuple[ExportRequest | None, dict[str, str]]:
    runs = [run.strip() for run in values.get("runs", "").split(",") if run.strip()]
    first = values.get("period_from", "").strip()
    last = values.get("period_to", "").strip()
    errors: dict[str, str] = {}
    for field, period in (("period_from", first), ("period_to", last)):
        if period and not _PERIOD.match(period):
            errors[field] = _PERIOD_FORMAT
    if errors:
        return None, errors
    if runs and (first or last):
        errors["runs"] = "Enter either the runs or the periods, not both"
    elif not runs and not first and not last:
        errors["runs"] = "Enter the runs to send, or the first and last period"
    elif not runs and not last:
        errors["period_to"] = "Enter the last period too"
    elif not runs and not first:
        errors["period_from"] = "Enter the first period too"
    elif not runs and last < first:
        errors["period_to"] = "The last period must be the same as the first or after it"
    if errors:
        return None, errors
    return ExportRequest(runs, first or None, last or None), {}


def _form_values(mapping: PayrollMapping) -> dict[str, str]:
    """A mapping's current version as the form shows it (to change it)."""
    values = {
        field: "" if (value := getattr(mapping, field, None)) is None else str(value)
        for field, _, _ in FIELDS
    }
    values.update(
        auto_export="yes" if mapping.auto_export else "",
        release="yes" if mapping.release else "",
    )
    return values


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
    on_planned: Callable[[], None] | None = None,
) -> APIRouter:
    """The pages under ``/payroll``, each behind auth's sign-in.

    ``on_planned`` is called after journals were planned from the send form (the service
    wakes its runner with it).
    """
    templates = Jinja2Templates(directory=str(WEB_ROOT / "templates"))
    router = APIRouter(prefix="/payroll", include_in_schema=False)

    def page(request: Request, template: str, status: int = 200, **values: Any) -> HTMLResponse:
        return templates.TemplateResponse(
            request, template, values, status_code=status, headers=_NO_STORE
        )

    def problem(
        request: Request, status: int, heading: str, message: str, person: SignedIn | None = None
    ) -> HTMLResponse:
        """The problem page: what went wrong and what to do."""
        return page(
            request, "problem.html", status, person=person, heading=heading, message=message
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
                return problem(
                    request,
                    503,
                    "Sign-in is not available",
                    "Ledgerlink could not check who you are. Try again in a minute.",
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
        return problem(
            request,
            403,
            "You cannot see this mapping",
            "Only members of the environment that owns this mapping's Visma Nmbrs "
            "and Visma.net connections can see it. Ask one of its admins to add you.",
            person=person,
        )

    def form_expired(request: Request, person: SignedIn) -> HTMLResponse:
        return problem(
            request,
            403,
            "The form has expired",
            "Open the form again and send it from there.",
            person=person,
        )

    def not_found(request: Request, person: SignedIn) -> HTMLResponse:
        return problem(
            request,
            404,
            "Page not found",
            "There is no such mapping.",
            person=person,
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
            heading="New mapping",
            action="/payroll/mappings/new",
            button="Save mapping",
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
            return form_expired(request, person)
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
            heading="New mapping",
            action="/payroll/mappings/new",
            button="Save mapping",
        )

    async def mapping_and_person(
        request: Request, mapping_id: uuid.UUID, also: Collection[uuid.UUID] = ()
    ) -> tuple[PayrollMapping, SignedIn, str] | Response:
        """The mapping, the signed-in person and their role over it, or the response to
        give instead (sign-in, 404, or 403 to a non-member). ``also``: more connections
        whose roles the page needs (the form's choices)."""
        try:
            mapping = await mappings.current(mapping_id)
        except NotFoundError:
            person = await person_of(request)
            return person if not isinstance(person, SignedIn) else not_found(request, person)
        person = await person_of(
            request, {mapping.nmbrs_connection_id, mapping.vismanet_connection_id, *also}
        )
        if not isinstance(person, SignedIn):
            return person
        role = person.role_over(mapping.nmbrs_connection_id, mapping.vismanet_connection_id)
        if role is None:
            return refused(request, person)
        return mapping, person, role

    def admins_only(request: Request, person: SignedIn, what: str) -> HTMLResponse:
        return problem(
            request,
            403,
            f"Only an admin can {what}",
            "Only an admin of the environment that owns this mapping's Visma Nmbrs "
            f"and Visma.net connections can {what}. You can see its runs and periods.",
            person=person,
        )

    async def admin_form(
        request: Request,
        mapping_id: uuid.UUID,
        values: dict[str, str],
        what: str,
        also: Collection[uuid.UUID] = (),
    ) -> tuple[PayrollMapping, SignedIn, str] | Response:
        """For a form sent by a mapping's admin: the mapping, the person and their role, or
        the response to give instead (sign-in, 404, 403 to a member or stranger, an
        expired form)."""
        found = await mapping_and_person(request, mapping_id, also)
        if isinstance(found, Response):
            return found
        _, person, role = found
        if role != "admin":
            return admins_only(request, person, what)
        if not hmac.compare_digest(values.get("csrf_token", ""), person.csrf_token):
            return form_expired(request, person)
        return found

    async def mapping_view(
        request: Request,
        mapping: PayrollMapping,
        person: SignedIn,
        role: str,
        status: int = 200,
        export_values: dict[str, str] | None = None,
        export_errors: dict[str, str] | None = None,
    ) -> HTMLResponse:
        mapping_id = mapping.mapping_id
        rejected = await exports.postings(mapping_id=mapping_id, status=PostingStatus.REFUSED)
        problems = [
            {"run_id": p.run_id, "period": p.period, **problem}
            for p in rejected
            for problem in p.problems
        ]
        sent = request.query_params.get("sent", "")
        return page(
            request,
            "mapping.html",
            status,
            mapping=mapping,
            runs=await exports.statuses(mapping_id, "run"),
            periods=await exports.statuses(mapping_id, "period"),
            problems=problems,
            status_words=STATUS_WORDS,
            person=person,
            role=role,
            export_fields=EXPORT_FIELDS,
            export_values=export_values or {},
            export_errors=export_errors or {},
            sent=int(sent) if sent.isdigit() else None,
            csrf_token=person.csrf_token,
        )

    @router.get("/mappings/{mapping_id}", response_class=HTMLResponse, response_model=None)
    async def mapping_page(request: Request, mapping_id: uuid.UUID) -> Response:
        found = await mapping_and_person(request, mapping_id)
        if isinstance(found, Response):
            return found
        return await mapping_view(request, *found)

    @router.post("/mappings/{mapping_id}/export", response_model=None)
    async def send_journals(request: Request, mapping_id: uuid.UUID) -> Response:
        """Plan the postings of the chosen runs or periods (seed 003: "Journalposter
        Export"); the runner posts them. Errors next to their fields; a refusal by Nmbrs
        (test company, blocked debtor) or an unreachable vendor in the error summary."""
        form = await request.form()
        values = {key: str(value) for key, value in form.items()}
        found = await admin_form(request, mapping_id, values, "send journals")
        if isinstance(found, Response):
            return found
        mapping, person, role = found
        wanted, errors = _export_request(values)
        if wanted is not None:
            try:
                postings = await exports.export(
                    mapping_id,
                    trigger=f"page:{person.email}",
                    runs=wanted.runs or None,
                    period_from=wanted.period_from,
                    period_to=wanted.period_to,
                )
            except ExportRefusedError as refused_export:
                errors = {"send": refused_export.message}
            except NotFoundError as missing:
                errors = {"runs": str(missing)}
            else:
                if on_planned is not None:
                    on_planned()
                return RedirectResponse(
                    f"/payroll/mappings/{mapping_id}?sent={len(postings)}", status_code=303
                )
        return await mapping_view(
            request, mapping, person, role, 422, export_values=values, export_errors=errors
        )

    def edit_form(
        request: Request,
        mapping: PayrollMapping,
        person: SignedIn,
        values: dict[str, str],
        errors: dict[str, str],
        connections: Sequence[Connection],
        status: int = 200,
    ) -> HTMLResponse:
        return page(
            request,
            "mapping_form.html",
            status,
            fields=FIELDS,
            values=values,
            errors=errors,
            choices=_choices(connections, person),
            person=person,
            csrf_token=person.csrf_token,
            heading=f"Change {mapping.name}",
            action=f"/payroll/mappings/{mapping.mapping_id}/edit",
            button="Save a new version",
            back=f"/payroll/mappings/{mapping.mapping_id}",
        )

    @router.get("/mappings/{mapping_id}/edit", response_class=HTMLResponse, response_model=None)
    async def edit_mapping(request: Request, mapping_id: uuid.UUID) -> Response:
        connections = await known()
        found = await mapping_and_person(
            request, mapping_id, [c.connection_id for c in connections]
        )
        if isinstance(found, Response):
            return found
        mapping, person, role = found
        if role != "admin":
            return admins_only(request, person, "change this mapping")
        return edit_form(request, mapping, person, _form_values(mapping), {}, connections)

    @router.post("/mappings/{mapping_id}/edit", response_model=None)
    async def save_new_version(request: Request, mapping_id: uuid.UUID) -> Response:
        """A new version of the mapping (postings keep the version they were made with)."""
        form = await request.form()
        values = {key: str(value) for key, value in form.items()}
        draft, errors = _draft(values)
        connections = await known()
        # The person must be an admin of the connections chosen now, too.
        chosen = (
            (draft.nmbrs_connection_id, draft.vismanet_connection_id) if draft is not None else ()
        )
        found = await admin_form(
            request,
            mapping_id,
            values,
            "change this mapping",
            {*chosen, *(c.connection_id for c in connections)},
        )
        if isinstance(found, Response):
            return found
        mapping, person, _ = found
        if draft is not None:
            errors = _admin_problems(draft, person)
        if draft is not None and not errors:
            # Kept from the version before: what the form does not show.
            draft = replace(draft, journal_business_id=mapping.journal_business_id)
            try:
                await mappings.save(draft, created_by=person.email, mapping_id=mapping_id)
            except MappingRefusedError as refused_mapping:
                errors = {problem.field: problem.message for problem in refused_mapping.problems}
            else:
                return RedirectResponse(f"/payroll/mappings/{mapping_id}", status_code=303)
        return edit_form(request, mapping, person, values, errors, connections, 422)

    return router


def register_payroll_pages(
    app: FastAPI,
    mappings: MappingService,
    exports: ExportService,
    sessions: Sessions,
    signin: PayrollSigninSettings,
    on_planned: Callable[[], None] | None = None,
) -> None:
    """Mount the pages and their stylesheet."""
    app.mount(
        "/payroll/static",
        StaticFiles(directory=str(WEB_ROOT / "static")),
        name="payroll-static",
    )
    app.include_router(build_payroll_pages(mappings, exports, sessions, signin, on_planned))
