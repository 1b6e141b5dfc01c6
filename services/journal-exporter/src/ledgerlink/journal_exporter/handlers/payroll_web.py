"""Server-rendered pages of payroll mappings: the list, a new mapping, runs and periods.

The same plain style as auth's pages (GOV.UK patterns: labels and hints on every field, an
error summary linking to each field's own message, no JavaScript). They carry no sign-in of
their own: they are mounted only when ``payroll.pages_enabled`` is set, for a deployment
that puts them behind auth's sessions (or in development).
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates

from ledgerlink.journal_exporter.services.payroll import (
    ExportService,
    MappingDraft,
    MappingRefusedError,
    MappingService,
    NotFoundError,
)
from ledgerlink.journal_exporter.storage.models import PostingStatus

__all__ = ["register_payroll_pages"]

WEB_ROOT = Path(__file__).resolve().parent.parent / "web"
_NO_STORE = {"Cache-Control": "no-store"}

#: (field, label, hint) of the new-mapping form, in order.
FIELDS: tuple[tuple[str, str, str], ...] = (
    ("name", "Name of the mapping", "For example the company's name."),
    ("nmbrs_connection_id", "Visma Nmbrs connection", "The id of the authorised Nmbrs account."),
    ("nmbrs_company_id", "Visma Nmbrs company", "The company's number in Nmbrs."),
    ("vismanet_connection_id", "Visma.net connection", "The id of the authorised account."),
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
)
_REQUIRED = {
    "name": "Enter a name for the mapping",
    "nmbrs_connection_id": "Enter the Nmbrs connection",
    "nmbrs_company_id": "Enter the Nmbrs company",
    "vismanet_connection_id": "Enter the Visma.net connection",
    "vismanet_company_id": "Enter the Visma.net company",
}
STATUS_WORDS = {
    "posted": "Posted",
    "pending": "Waiting",
    "retrying": "Trying again",
    "refused": "Refused",
    "failed": "Failed",
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
        ),
        {},
    )


def build_payroll_pages(mappings: MappingService, exports: ExportService) -> APIRouter:
    """The pages under ``/payroll``."""
    templates = Jinja2Templates(directory=str(WEB_ROOT / "templates"))
    router = APIRouter(prefix="/payroll", include_in_schema=False)

    def page(request: Request, template: str, status: int = 200, **values: Any) -> HTMLResponse:
        return templates.TemplateResponse(
            request, template, values, status_code=status, headers=_NO_STORE
        )

    @router.get("", response_class=HTMLResponse)
    async def mapping_list(request: Request) -> HTMLResponse:
        return page(request, "mappings.html", mappings=await mappings.all_current())

    @router.get("/mappings/new", response_class=HTMLResponse)
    async def new_mapping(request: Request) -> HTMLResponse:
        return page(request, "mapping_form.html", fields=FIELDS, values={}, errors={})

    @router.post("/mappings/new", response_model=None)
    async def save_mapping(request: Request) -> Response:
        form = await request.form()
        values = {key: str(value) for key, value in form.items()}
        draft, errors = _draft(values)
        if draft is not None:
            try:
                saved = await mappings.save(draft, created_by="web")
            except MappingRefusedError as refused:
                errors = {problem.field: problem.message for problem in refused.problems}
            else:
                return RedirectResponse(f"/payroll/mappings/{saved.mapping_id}", status_code=303)
        return page(request, "mapping_form.html", 422, fields=FIELDS, values=values, errors=errors)

    @router.get("/mappings/{mapping_id}", response_class=HTMLResponse)
    async def mapping_page(request: Request, mapping_id: uuid.UUID) -> HTMLResponse:
        try:
            mapping = await mappings.current(mapping_id)
        except NotFoundError:
            return page(
                request,
                "mappings.html",
                404,
                mappings=await mappings.all_current(),
            )
        refused = await exports.postings(mapping_id=mapping_id, status=PostingStatus.REFUSED)
        problems = [
            {"run_id": p.run_id, "period": p.period, **problem}
            for p in refused
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
        )

    return router


def register_payroll_pages(app: FastAPI, mappings: MappingService, exports: ExportService) -> None:
    """Mount the pages and their stylesheet."""
    app.mount(
        "/payroll/static",
        StaticFiles(directory=str(WEB_ROOT / "static")),
        name="payroll-static",
    )
    app.include_router(build_payroll_pages(mappings, exports))
