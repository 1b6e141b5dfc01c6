"""HTTP routes of ledger syncs: status for people, syncs on request, a reset; and the
balances the reconciliation product reads. Thin: one service call each."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Literal, Self

from fastapi import APIRouter, HTTPException, Query
from pydantic import BaseModel, ConfigDict, Field, model_validator

from ledgerlink.importer.domain.ledger_sync import SyncMode
from ledgerlink.importer.domain.reports import PeriodRangeError
from ledgerlink.importer.services.reports import CompanyNotFoundError, ReportService
from ledgerlink.importer.services.sync_schedule import (
    SyncControlService,
    SyncRequestRefusedError,
    SyncStatus,
)
from ledgerlink.shared.db import Database, UtcDatetime
from ledgerlink.shared.runtime import error_responses


class SyncRunPublic(BaseModel):
    """One sync of a connection."""

    import_id: uuid.UUID
    mode: str | None
    status: str
    trigger: str
    lines_written: int
    started_at: UtcDatetime | None
    finished_at: UtcDatetime | None


class SyncStatusPublic(BaseModel):
    """A connection's sync as people see it."""

    connection_id: uuid.UUID
    business_id: str
    provider: str
    last_import_id: uuid.UUID | None
    last_mode: str | None
    #: "running", "completed" or "failed".
    last_status: str | None
    last_started_at: UtcDatetime | None
    last_finished_at: UtcDatetime | None
    last_error: str | None
    last_counts: dict[str, int] | None
    #: When the last completed sync began reading: the books hold the vendor's data as of
    #: then.
    data_as_of: UtcDatetime | None
    lag_seconds: float | None = Field(description="How far the books are behind the vendor.")
    next_run_at: UtcDatetime | None
    interval_minutes: int
    #: Why the schedule is paused (None: it runs).
    paused_reason: str | None
    active: SyncRunPublic | None

    @classmethod
    def of(cls, status: SyncStatus) -> SyncStatusPublic:
        state, active = status.state, status.active
        return cls(
            connection_id=state.connection_id,
            business_id=state.business_id,
            provider=state.provider,
            last_import_id=state.last_import_id,
            last_mode=state.last_mode,
            last_status=state.last_status,
            last_started_at=state.last_started_at,
            last_finished_at=state.last_finished_at,
            last_error=state.last_error,
            last_counts=state.last_counts,
            data_as_of=state.last_completed_at,
            lag_seconds=status.lag_seconds,
            next_run_at=state.next_run_at,
            interval_minutes=state.interval_minutes,
            paused_reason=state.paused_reason,
            active=None
            if active is None
            else SyncRunPublic(
                import_id=active.id,
                mode=active.sync_mode,
                status=active.status,
                trigger=active.trigger,
                lines_written=active.progress_lines,
                started_at=active.started_at,
                finished_at=active.finished_at,
            ),
        )


class SyncRequest(BaseModel):
    """Body of POST .../sync (no body: incremental)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    mode: Literal["incremental", "full_refresh", "backfill"] = Field(
        default="incremental",
        description="incremental (what changed), full_refresh (everything, swapped in when "
        "complete), or backfill (the vouchers dated from..to read again and replaced).",
    )
    backfill_from: date | None = Field(
        default=None, alias="from", description="A backfill's first voucher date."
    )
    backfill_to: date | None = Field(
        default=None, alias="to", description="A backfill's last voucher date."
    )

    @model_validator(mode="after")
    def _backfill_has_its_range(self) -> Self:
        if self.mode == "backfill":
            if self.backfill_from is None or self.backfill_to is None:
                raise ValueError("a backfill needs from and to (YYYY-MM-DD)")
            if self.backfill_from > self.backfill_to:
                raise ValueError("from is after to")
        elif self.backfill_from is not None or self.backfill_to is not None:
            raise ValueError("from and to go with mode backfill only")
        return self


class SyncQueued(BaseModel):
    """A sync was queued."""

    import_id: uuid.UUID
    mode: str
    status_url: str


class AccountBalancePublic(BaseModel):
    """An account's balance at a period end (debit positive, decimal string)."""

    account: str
    name: str
    balance: str


class BalancesPublic(BaseModel):
    """Balances per account at the end of a period, for the accounts asked for."""

    business_id: str
    period: str
    as_of_date: str
    data_as_of: datetime | None
    accounts: list[AccountBalancePublic]


_ERRORS = {404: "No such connection (or it is not synced over an API)."}


def build_sync_router(db: Database, *, on_queued: Callable[[], None]) -> APIRouter:
    """Sync status and control per connection; balances per company."""
    router = APIRouter(prefix="/v1")

    @router.get("/syncs", response_model=list[SyncStatusPublic], tags=["syncs"])
    async def list_syncs(business_id: str | None = None) -> list[SyncStatusPublic]:
        """Every connection's sync status (of one business ID)."""
        async with db.transaction() as session:
            statuses = await SyncControlService(session).statuses(business_id)
        return [SyncStatusPublic.of(status) for status in statuses]

    @router.get(
        "/connections/{connection_id}/sync",
        response_model=SyncStatusPublic,
        tags=["syncs"],
        responses=error_responses(_ERRORS),
    )
    async def get_sync(connection_id: uuid.UUID) -> SyncStatusPublic:
        """The connection's last sync, outcome, counts, lag behind the vendor, next run."""
        async with db.transaction() as session:
            status = await SyncControlService(session).status(connection_id)
        if status is None:
            raise HTTPException(404, f"no connection {connection_id} is synced")
        return SyncStatusPublic.of(status)

    @router.post(
        "/connections/{connection_id}/sync",
        status_code=202,
        response_model=SyncQueued,
        tags=["syncs"],
        responses=error_responses({**_ERRORS, 409: "A sync of it is queued or running."}),
    )
    async def run_sync(connection_id: uuid.UUID, body: SyncRequest | None = None) -> SyncQueued:
        """Queue a sync now: incremental (default), a full refresh, or a backfill of a range
        of voucher dates."""
        asked = body or SyncRequest()
        mode = SyncMode(asked.mode)
        backfill = (
            (asked.backfill_from, asked.backfill_to)
            if asked.backfill_from is not None and asked.backfill_to is not None
            else None
        )
        try:
            async with db.transaction() as session:
                job = await SyncControlService(session).request(
                    connection_id, mode, backfill=backfill
                )
        except SyncRequestRefusedError as error:
            raise HTTPException(error.status, error.message) from None
        on_queued()
        return SyncQueued(import_id=job.id, mode=mode.value, status_url=f"/v1/imports/{job.id}")

    @router.post(
        "/connections/{connection_id}/sync/reset",
        status_code=202,
        response_model=SyncQueued,
        tags=["syncs"],
        responses=error_responses({**_ERRORS, 409: "A sync of it is queued or running."}),
    )
    async def reset_sync(connection_id: uuid.UUID) -> SyncQueued:
        """Forget the sync's position and read everything again (swapped in when complete)."""
        try:
            async with db.transaction() as session:
                job = await SyncControlService(session).reset(connection_id)
        except SyncRequestRefusedError as error:
            raise HTTPException(error.status, error.message) from None
        on_queued()
        return SyncQueued(
            import_id=job.id, mode=SyncMode.FULL_REFRESH.value, status_url=f"/v1/imports/{job.id}"
        )

    @router.get(
        "/companies/{business_id}/balances",
        response_model=BalancesPublic,
        tags=["reports"],
        responses=error_responses(
            {404: "No books for this business ID.", 400: "The period is in no fiscal year."}
        ),
    )
    async def get_balances(
        business_id: str,
        period: Annotated[str, Query(description="The period whose end: YYYY-MM.")],
        accounts: Annotated[
            str | None,
            Query(
                description="Comma-separated account numbers (the company's setup); all "
                "accounts with a balance when omitted."
            ),
        ] = None,
    ) -> BalancesPublic:
        """Balance per account at a period end, for the reconciliation product."""
        chosen = {a.strip() for a in accounts.split(",") if a.strip()} if accounts else None
        try:
            async with db.transaction() as session:
                report = await ReportService(session).trial_balance(business_id, None, period)
        except CompanyNotFoundError as error:
            raise HTTPException(404, str(error)) from None
        except PeriodRangeError as error:
            raise HTTPException(400, str(error)) from None
        rows = {row.account: row for row in report.report.rows}
        wanted = sorted(chosen) if chosen is not None else sorted(rows)
        return BalancesPublic(
            business_id=business_id,
            period=report.scope.last_period.strftime("%Y-%m"),
            as_of_date=report.scope.to_date.isoformat(),
            data_as_of=report.scope.data_as_of,
            accounts=[
                AccountBalancePublic(
                    account=number,
                    name=rows[number].name if number in rows else "",
                    balance=f"{rows[number].closing if number in rows else Decimal(0):.2f}",
                )
                for number in wanted
            ],
        )

    return router
