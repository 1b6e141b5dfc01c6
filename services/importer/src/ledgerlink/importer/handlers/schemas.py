"""The importer's public HTTP models: import jobs, uploads, reports.

Clients (the CLI among them) import these, not the route module.
"""

from __future__ import annotations

import uuid
from datetime import date
from decimal import Decimal

from pydantic import BaseModel

from ledgerlink.importer.domain.reports import Statement, TrialBalanceRow
from ledgerlink.importer.services.reports import ReportScope, StatementReport, TrialBalanceReport
from ledgerlink.importer.storage.models import ImportJob
from ledgerlink.shared.db import UtcDatetime


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
    differences: list[dict[str, str | None]] | None
    notices: list[dict[str, str]] | None
    replace_reason: str | None
    #: API syncs: first, incremental, full_refresh or backfill (None: a file import).
    sync_mode: str | None = None
    #: A backfill's range of voucher dates (both included); None for other imports.
    sync_from: date | None = None
    sync_to: date | None = None
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
    #: How fresh the books are: when the last completed sync of the vendor's API began
    #: reading (or when the file was imported). Nothing changed at the vendor after it is
    #: in the report.
    data_as_of: UtcDatetime | None = None
    #: What the books are known to lack: read them with it (e.g. Procountor payroll hidden
    #: from the connection's user, so the P&L and balance sheet are wrong).
    warnings: list[str] = []

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
            data_as_of=scope.data_as_of,
            warnings=list(scope.warnings),
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
