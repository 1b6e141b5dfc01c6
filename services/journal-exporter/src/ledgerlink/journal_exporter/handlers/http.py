"""HTTP routes of the journal exporter."""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Any

from fastapi import APIRouter, FastAPI, HTTPException, Query
from pydantic import BaseModel

from ledgerlink.journal_exporter.storage.models import Journal, JournalLine
from ledgerlink.journal_exporter.storage.repository import JournalRepository
from ledgerlink.shared.db import Database, UtcDatetime
from ledgerlink.shared.runtime import ProcessContext, error_responses


class JournalSummary(BaseModel):
    """A received journal (amounts are decimal strings in JSON)."""

    id: uuid.UUID
    journal_id: str
    source: str
    business_id: str
    period: str
    corrects_period: str | None
    run_reference: str
    status: str
    line_count: int
    total_debit: Decimal | None
    total_credit: Decimal | None
    received_event_id: str
    received_at: UtcDatetime

    @classmethod
    def of(cls, journal: Journal) -> JournalSummary:
        return cls.model_validate(journal, from_attributes=True)


class JournalProblemPublic(BaseModel):
    """One reason a journal was rejected."""

    code: str
    message: str
    line: int | None


class JournalLinePublic(BaseModel):
    """One stored line of an accepted journal."""

    line_no: int
    account: str
    debit: Decimal
    credit: Decimal
    cost_center: str | None
    cost_unit: str | None
    description: str | None


class JournalDetail(JournalSummary):
    """A journal with its problems and, when accepted, its lines."""

    problems: list[JournalProblemPublic]
    lines: list[JournalLinePublic]

    @classmethod
    def with_lines(cls, journal: Journal, lines: list[JournalLine]) -> JournalDetail:
        fields: dict[str, Any] = JournalSummary.of(journal).model_dump()
        return cls(
            **fields,
            problems=[JournalProblemPublic.model_validate(p) for p in journal.problems],
            lines=[JournalLinePublic.model_validate(line, from_attributes=True) for line in lines],
        )


def build_router(db: Database) -> APIRouter:
    """Read-only views of received journals."""
    router = APIRouter(prefix="/v1", tags=["journals"])

    @router.get(
        "/journals/{stored_id}",
        response_model=JournalDetail,
        responses=error_responses({404: "No journal with this id."}),
    )
    async def get_journal(stored_id: uuid.UUID) -> JournalDetail:
        async with db.transaction() as session:
            journals = JournalRepository(session)
            journal = await journals.get(stored_id)
            lines = await journals.lines_of(stored_id) if journal is not None else []
        if journal is None:
            raise HTTPException(404, f"no journal {stored_id}")
        return JournalDetail.with_lines(journal, lines)

    @router.get("/journals", response_model=list[JournalSummary])
    async def list_journals(
        business_id: str,
        period: str | None = Query(default=None, description="Only this period (YYYY-MM)."),
        limit: int = Query(default=100, ge=1, le=1000, description="Most journals returned."),
    ) -> list[JournalSummary]:
        """The business's received journals, newest first."""
        async with db.transaction() as session:
            journals = await JournalRepository(session).list_for_business_id(
                business_id, period=period, limit=limit
            )
        return [JournalSummary.of(journal) for journal in journals]

    return router


def register_http_routes(process: ProcessContext, app: FastAPI) -> None:
    """Attach the routes to the service's app."""
    app.include_router(build_router(process.db))
