"""HTTP routes of the importer: import jobs, uploads, and reports of the imported books."""

from __future__ import annotations

import csv
import io
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import date
from decimal import Decimal
from typing import Annotated, Literal, TypeVar

from fastapi import APIRouter, FastAPI, File, Form, HTTPException, Query, Request, UploadFile
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel

from ledgerlink.importer.config import Config
from ledgerlink.importer.domain.ledger import LedgerImportError, detect_format
from ledgerlink.importer.domain.reports import PeriodRangeError, Statement, TrialBalanceRow
from ledgerlink.importer.services.imports import ImportService
from ledgerlink.importer.services.ledger_import import LedgerImportService
from ledgerlink.importer.services.reports import (
    CompanyNotFoundError,
    ReportScope,
    ReportService,
    StatementReport,
    TrialBalanceReport,
)
from ledgerlink.importer.storage.files import FileArea, UploadTooLargeError
from ledgerlink.importer.storage.models import ImportJob
from ledgerlink.importer.storage.repository import ImportJobRepository
from ledgerlink.shared.db import Database, UtcDatetime
from ledgerlink.shared.events import Provider
from ledgerlink.shared.messaging.outbox import Outbox
from ledgerlink.shared.runtime import ProcessContext

_CHUNK = 1024 * 1024


class ImportJobPublic(BaseModel):
    """An import job as operators see it, with its result once it has one."""

    id: uuid.UUID
    connection_id: uuid.UUID | None
    business_id: str
    provider: str
    scope: list[str]
    trigger: str
    status: str
    file_location: str | None
    filename: str | None
    requested_event_id: str
    outcome: str | None
    progress_lines: int
    fiscal_year_start: date | None
    fiscal_year_end: date | None
    counts: dict[str, int] | None
    periods: list[str] | None
    reconciliation_status: str | None
    differences: list[dict[str, str]] | None
    notices: list[dict[str, str]] | None
    error_code: str | None
    error_message: str | None
    attempts: int
    created_at: UtcDatetime
    updated_at: UtcDatetime
    started_at: UtcDatetime | None
    finished_at: UtcDatetime | None

    @classmethod
    def of(cls, job: ImportJob, progress: int | None = None) -> ImportJobPublic:
        public = cls.model_validate(job, from_attributes=True)
        if progress is not None and progress > public.progress_lines:
            public.progress_lines = progress
        return public


class ImportAccepted(BaseModel):
    """An upload was stored and its import queued."""

    import_id: uuid.UUID
    status: str
    status_url: str


class TrialBalanceRowPublic(BaseModel):
    account: str
    name: str
    opening: str
    debit: str
    credit: str
    movement: str
    closing: str


class ReportHeader(BaseModel):
    business_id: str
    company_name: str
    currency: str
    chart: str
    fiscal_year_start: date
    fiscal_year_end: date
    period_from: str
    period_to: str
    to_date: date

    @classmethod
    def of(cls, scope: ReportScope) -> ReportHeader:
        return cls(
            business_id=scope.company.business_id,
            company_name=scope.company.name,
            currency=scope.company.currency,
            chart=scope.company.chart,
            fiscal_year_start=scope.fiscal_year.start,
            fiscal_year_end=scope.fiscal_year.end,
            period_from=scope.first_period.strftime("%Y-%m"),
            period_to=scope.last_period.strftime("%Y-%m"),
            to_date=scope.to_date,
        )


class TrialBalancePublic(BaseModel):
    """Opening, turnover and closing per account; amounts debit positive."""

    header: ReportHeader
    dimension_id: str | None
    object_id: str | None
    accounts: list[TrialBalanceRowPublic]
    totals: TrialBalanceRowPublic


class StatementLinePublic(BaseModel):
    account: str
    name: str
    amounts: list[str]


class StatementSectionPublic(BaseModel):
    key: str
    title: str
    lines: list[StatementLinePublic]
    totals: list[str]


class StatementPublic(BaseModel):
    """A P&L (revenue positive, costs negative) or balance sheet (both sides positive)."""

    header: ReportHeader
    columns: list[str]
    sections: list[StatementSectionPublic]
    totals: dict[str, list[str]]


def _amount(value: Decimal) -> str:
    return f"{value:.2f}"


def trial_balance_public(report: TrialBalanceReport) -> TrialBalancePublic:
    def row(r: TrialBalanceRow) -> TrialBalanceRowPublic:
        return TrialBalanceRowPublic(
            account=r.account,
            name=r.name,
            opening=_amount(r.opening),
            debit=_amount(r.debit),
            credit=_amount(r.credit),
            movement=_amount(r.movement),
            closing=_amount(r.closing),
        )

    return TrialBalancePublic(
        header=ReportHeader.of(report.scope),
        dimension_id=report.dimension_id,
        object_id=report.object_id,
        accounts=[row(r) for r in report.report.rows],
        totals=row(report.report.totals),
    )


def statement_public(report: StatementReport) -> StatementPublic:
    statement: Statement = report.statement
    return StatementPublic(
        header=ReportHeader.of(report.scope),
        columns=list(statement.columns),
        sections=[
            StatementSectionPublic(
                key=section.key,
                title=section.title,
                lines=[
                    StatementLinePublic(
                        account=line.account,
                        name=line.name,
                        amounts=[_amount(a) for a in line.amounts],
                    )
                    for line in section.lines
                ],
                totals=[_amount(a) for a in section.totals],
            )
            for section in statement.sections
        ],
        totals={key: [_amount(a) for a in values] for key, values in statement.totals.items()},
    )


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

    @router.get("/imports/{import_id}", response_model=ImportJobPublic, tags=["imports"])
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

    @router.post("/imports", status_code=202, response_model=ImportAccepted, tags=["imports"])
    async def upload(
        request: Request,
        file: Annotated[UploadFile, File(description="A SIE 4 or SAF-T Financial file.")],
        business_id: Annotated[
            str | None,
            Form(description="Whose books these must be; the import fails for another's."),
        ] = None,
    ) -> ImportAccepted:
        """Upload a ledger file and queue its import; poll the returned status URL."""
        head = await file.read(4096)
        if not head.strip():
            raise HTTPException(400, "the uploaded file is empty")
        try:
            fmt = detect_format(head)
        except LedgerImportError as error:
            raise HTTPException(400, str(error)) from None
        import_id = uuid.uuid4()

        async def chunks() -> AsyncIterator[bytes]:
            yield head
            while chunk := await file.read(_CHUNK):
                yield chunk

        try:
            location, _ = await files.save_upload(
                import_id, file.filename or "upload", chunks(), max_bytes=max_upload_bytes
            )
        except UploadTooLargeError as error:
            raise HTTPException(413, str(error)) from None
        provider = Provider.SIE if fmt.value == "sie" else Provider.SAF_T
        async with db.transaction() as session:
            await ImportService(session, outbox).file_uploaded(
                import_id=import_id,
                provider=provider,
                file_location=location,
                filename=file.filename or location,
                business_id=business_id.strip() if business_id else None,
            )
        if on_queued is not None:
            on_queued()
        return ImportAccepted(
            import_id=import_id,
            status="queued",
            status_url=str(request.url_for("get_import", import_id=import_id)),
        )

    @router.get(
        "/companies/{business_id}/trial-balance",
        response_model=TrialBalancePublic,
        tags=["reports"],
        responses={200: {"content": {"text/csv": {}}}},
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
        responses={200: {"content": {"text/csv": {}}}},
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
        responses={200: {"content": {"text/csv": {}}}},
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
    config: Config,
    imports: LedgerImportService,
    on_queued: Callable[[], None],
) -> None:
    """Attach the routes to the service's app."""
    app.include_router(
        build_router(
            process.db,
            process.outbox,
            FileArea(config.files_dir, extra_roots=config.file_roots),
            max_upload_bytes=config.max_upload_bytes,
            runner_progress=imports.progress,
            on_queued=on_queued,
        )
    )

    @app.exception_handler(PeriodRangeError)
    async def period_range(_: Request, error: PeriodRangeError) -> JSONResponse:
        return JSONResponse({"detail": str(error)}, status_code=400)
