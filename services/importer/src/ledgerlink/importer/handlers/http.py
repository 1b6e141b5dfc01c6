"""HTTP routes of the importer: import jobs, uploads, and reports of the imported books."""

from __future__ import annotations

import csv
import io
import uuid
from collections.abc import Awaitable, Callable
from typing import Annotated, Final, Literal, TypeVar

from fastapi import APIRouter, FastAPI, File, Form, HTTPException, Query, Request, UploadFile
from fastapi.responses import JSONResponse, Response

from ledgerlink.importer.domain.import_rules import ImportRequestError, replace_reason_of
from ledgerlink.importer.domain.ledger import LedgerImportError
from ledgerlink.importer.domain.reports import PeriodRangeError
from ledgerlink.importer.factory import ImporterParts
from ledgerlink.importer.handlers.schemas import (
    ImportAccepted,
    ImportJobPublic,
    StatementPublic,
    TrialBalancePublic,
    statement_public,
    trial_balance_public,
)
from ledgerlink.importer.handlers.sync_http import build_sync_router
from ledgerlink.importer.services.imports import ImportService
from ledgerlink.importer.services.reports import CompanyNotFoundError, ReportService
from ledgerlink.importer.services.uploads import EmptyUploadError, UploadService
from ledgerlink.importer.storage.files import FileArea, UploadTooLargeError
from ledgerlink.importer.storage.repository import ImportJobRepository
from ledgerlink.shared.db import Database
from ledgerlink.shared.messaging.outbox import Outbox
from ledgerlink.shared.runtime import ProcessContext, error_responses


def _csv(rows: list[list[str]], filename: str) -> Response:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerows(rows)
    return Response(
        buffer.getvalue(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


def _wants_csv(request: Request, fmt: str | None) -> bool:
    if fmt is not None:
        return fmt == "csv"
    accept = request.headers.get("accept", "")
    return "text/csv" in accept and "application/json" not in accept


def trial_balance_csv(report: TrialBalancePublic) -> list[list[str]]:
    rows = [["account", "name", "opening", "debit", "credit", "movement", "closing"]]
    rows.extend(
        [r.account, r.name, r.opening, r.debit, r.credit, r.movement, r.closing]
        for r in [*report.accounts, report.totals]
    )
    return rows


def statement_csv(report: StatementPublic) -> list[list[str]]:
    rows = [["section", "account", "name", *report.columns]]
    for section in report.sections:
        rows.extend([section.key, line.account, line.name, *line.amounts] for line in section.lines)
        rows.append([section.key, "", f"Total {section.title}", *section.totals])
    for key, values in report.totals.items():
        rows.append(["total", "", key, *values])
    return rows


_REPORT_ERRORS: Final = error_responses(
    {
        400: "A malformed or impossible period range (or dimension without object).",
        404: "No books have been imported for this business ID.",
    }
)

Format = Annotated[
    Literal["json", "csv"] | None,
    Query(description="json or csv; without it the Accept header decides (JSON by default)."),
]


def build_router(
    db: Database,
    outbox: Outbox,
    files: FileArea,
    *,
    max_upload_bytes: int,
    runner_progress: dict[uuid.UUID, int] | None = None,
    on_queued: Callable[[], None] | None = None,
) -> APIRouter:
    """Import jobs, uploads and reports."""
    router = APIRouter(prefix="/v1")
    progress = runner_progress if runner_progress is not None else {}
    uploads = UploadService(files, max_bytes=max_upload_bytes)

    @router.get(
        "/imports/{import_id}",
        response_model=ImportJobPublic,
        tags=["imports"],
        responses=error_responses({404: "No import with this id."}),
    )
    async def get_import(import_id: uuid.UUID) -> ImportJobPublic:
        """One import job: status, progress and, once finished, its result."""
        async with db.transaction() as session:
            job = await ImportJobRepository(session).get(import_id)
        if job is None:
            raise HTTPException(404, f"no import {import_id}")
        return ImportJobPublic.of(job, progress.get(import_id))

    @router.get("/imports", response_model=list[ImportJobPublic], tags=["imports"])
    async def list_imports(
        business_id: str,
        limit: int = Query(default=100, ge=1, le=1000, description="Most jobs returned."),
    ) -> list[ImportJobPublic]:
        """The business's import jobs, newest first."""
        async with db.transaction() as session:
            jobs = await ImportJobRepository(session).list_for_business_id(business_id, limit=limit)
        return [ImportJobPublic.of(job, progress.get(job.id)) for job in jobs]

    @router.post(
        "/imports",
        status_code=202,
        response_model=ImportAccepted,
        tags=["imports"],
        responses=error_responses(
            {
                400: "The file is empty or neither SIE 4 nor SAF-T, or replace=true "
                "came without a reason.",
                413: "The file is larger than the configured limit.",
            }
        ),
    )
    async def upload(
        request: Request,
        file: Annotated[UploadFile, File(description="A SIE 4 or SAF-T Financial file.")],
        business_id: Annotated[
            str | None,
            Form(description="Whose books these must be; the import fails for another's."),
        ] = None,
        replace: Annotated[
            bool,
            Form(
                description="Replace the stored fiscal year even though the file holds fewer "
                "kinds of data (no vouchers, no balances) or is older than it; needs `reason`."
            ),
        ] = False,
        reason: Annotated[
            str | None,
            Form(
                description="Why the stored year may be replaced (recorded on the job).",
                max_length=1000,
            ),
        ] = None,
    ) -> ImportAccepted:
        """Upload a ledger file and queue its import; poll the returned status URL."""
        try:
            replace_reason = replace_reason_of(replace=replace, reason=reason)
        except ImportRequestError as error:
            raise HTTPException(400, str(error)) from None
        try:
            stored = await uploads.receive(file.read, file.filename)
        except (EmptyUploadError, LedgerImportError) as error:
            raise HTTPException(400, str(error)) from None
        except UploadTooLargeError as error:
            raise HTTPException(413, str(error)) from None
        async with db.transaction() as session:
            await ImportService(session, outbox).file_uploaded(
                import_id=stored.import_id,
                provider=stored.provider,
                file_location=stored.location,
                filename=stored.filename,
                business_id=business_id.strip() if business_id else None,
                replace_reason=replace_reason,
            )
        if on_queued is not None:
            on_queued()
        import_id = stored.import_id
        return ImportAccepted(
            import_id=import_id,
            status="queued",
            status_url=str(request.url_for("get_import", import_id=import_id)),
        )

    @router.get(
        "/companies/{business_id}/trial-balance",
        response_model=TrialBalancePublic,
        tags=["reports"],
        responses={200: {"content": {"text/csv": {}}}, **_REPORT_ERRORS},
    )
    async def get_trial_balance(
        request: Request,
        business_id: str,
        start: Annotated[
            str | None, Query(alias="from", description="First period: YYYY-MM or its 1st day.")
        ] = None,
        end: Annotated[
            str | None, Query(alias="to", description="Last period: YYYY-MM or its last day.")
        ] = None,
        dimension: Annotated[str | None, Query(description="Dimension id (with object).")] = None,
        object_id: Annotated[
            str | None, Query(alias="object", description="Object id of the dimension.")
        ] = None,
        format: Format = None,
    ) -> TrialBalancePublic | Response:
        """Trial balance over whole periods of one fiscal year, in total or for one object."""
        async with db.transaction() as session:
            report = await _answer(
                ReportService(session).trial_balance(
                    business_id, start, end, dimension_id=dimension, object_id=object_id
                )
            )
        public = trial_balance_public(report)
        if _wants_csv(request, format):
            return _csv(trial_balance_csv(public), f"trial-balance-{business_id}.csv")
        return public

    @router.get(
        "/companies/{business_id}/profit-and-loss",
        response_model=StatementPublic,
        tags=["reports"],
        responses={200: {"content": {"text/csv": {}}}, **_REPORT_ERRORS},
    )
    async def get_profit_and_loss(
        request: Request,
        business_id: str,
        start: Annotated[str | None, Query(alias="from")] = None,
        end: Annotated[str | None, Query(alias="to")] = None,
        format: Format = None,
    ) -> StatementPublic | Response:
        """Profit and loss for the periods and the year to date (revenue positive)."""
        async with db.transaction() as session:
            report = await _answer(ReportService(session).profit_and_loss(business_id, start, end))
        public = statement_public(report)
        if _wants_csv(request, format):
            return _csv(statement_csv(public), f"profit-and-loss-{business_id}.csv")
        return public

    @router.get(
        "/companies/{business_id}/balance-sheet",
        response_model=StatementPublic,
        tags=["reports"],
        responses={200: {"content": {"text/csv": {}}}, **_REPORT_ERRORS},
    )
    async def get_balance_sheet(
        request: Request,
        business_id: str,
        end: Annotated[
            str | None,
            Query(alias="to", description="Period (YYYY-MM) or its last day; default: year end."),
        ] = None,
        format: Format = None,
    ) -> StatementPublic | Response:
        """Balance sheet at the end of a period, the year's result so far in equity."""
        async with db.transaction() as session:
            report = await _answer(ReportService(session).balance_sheet(business_id, end))
        public = statement_public(report)
        if _wants_csv(request, format):
            return _csv(statement_csv(public), f"balance-sheet-{business_id}.csv")
        return public

    return router


_T = TypeVar("_T")


async def _answer(pending: Awaitable[_T]) -> _T:
    """Await a report; unknown companies are 404, bad ranges 400 with the reason."""
    try:
        return await pending
    except CompanyNotFoundError as error:
        raise HTTPException(404, str(error)) from None
    except PeriodRangeError as error:
        raise HTTPException(400, str(error)) from None


def register_http_routes(
    process: ProcessContext,
    app: FastAPI,
    parts: ImporterParts,
    on_queued: Callable[[], None],
    on_sync_queued: Callable[[], None] | None = None,
) -> None:
    """Attach the routes to the service's app."""
    app.include_router(
        build_router(
            process.db,
            parts.outbox,
            parts.files,
            max_upload_bytes=parts.uploads.max_bytes,
            runner_progress=parts.imports.progress,
            on_queued=on_queued,
        )
    )

    app.include_router(build_sync_router(process.db, on_queued=on_sync_queued or on_queued))

    @app.exception_handler(PeriodRangeError)
    async def period_range(_: Request, error: PeriodRangeError) -> JSONResponse:
        return JSONResponse({"detail": str(error)}, status_code=400)
