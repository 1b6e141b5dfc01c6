"""HTTP routes of payroll exports: mappings, exports, status per run and period, evidence."""

from __future__ import annotations

import hmac
import uuid
from collections.abc import Mapping
from decimal import Decimal
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Header, HTTPException, Query
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field, SecretStr

from ledgerlink.journal_exporter.services.payroll import (
    ExportRefusedError,
    ExportService,
    MappingDraft,
    MappingRefusedError,
    MappingService,
    NotFoundError,
)
from ledgerlink.journal_exporter.storage.models import (
    PayrollMapping,
    PayrollPosting,
    PostingStatus,
)
from ledgerlink.shared.db import UtcDatetime
from ledgerlink.shared.runtime import error_responses

__all__ = ["build_payroll_router"]

PeriodText = Annotated[str, Field(pattern=r"^\d{4}-(0[1-9]|1[0-2])$")]


class FieldError(BaseModel):
    """One field's problem (a form shows it next to the field)."""

    field: str
    message: str


class Refusal(BaseModel):
    """Why a request was refused: a stable code, a message, and the fields at fault."""

    reason_code: str
    message: str
    errors: list[FieldError] = Field(default_factory=list)


class RefusalBody(BaseModel):
    """The body of a refused payroll request."""

    detail: Refusal


def _refused(status: int, reason_code: str, message: str, errors: list[FieldError]) -> JSONResponse:
    body = RefusalBody(detail=Refusal(reason_code=reason_code, message=message, errors=errors))
    return JSONResponse(body.model_dump(), status_code=status)


class MappingIn(BaseModel):
    """A mapping as entered: an Nmbrs company and a Visma.net company (administration).

    A dimension description left out (null) means the dimension is not sent; when given,
    it must be the description of a dimension in Visma.net.
    """

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=300)
    nmbrs_connection_id: uuid.UUID = Field(description="auth's connection to Nmbrs.")
    nmbrs_company_id: str = Field(min_length=1, max_length=100)
    vismanet_connection_id: uuid.UUID = Field(description="auth's connection to Visma.net.")
    vismanet_company_id: str = Field(min_length=1, max_length=100)
    cost_centre_description: str | None = Field(
        default=None, max_length=300, description="Send cost centres to this Visma.net dimension."
    )
    cost_unit_description: str | None = Field(
        default=None, max_length=300, description="Send cost units to this Visma.net dimension."
    )
    auto_export: bool = Field(
        default=False, description="Export new runs when Nmbrs finalises them (polled)."
    )
    journal_business_id: str | None = Field(
        default=None,
        max_length=32,
        description="Also post journal.ready journals of this business (another payroll "
        "system) through this mapping.",
    )
    release: bool = Field(
        default=False,
        description="Release each batch in Visma.net once posted (off: batches stay "
        "Balanced for an accountant to review and release).",
    )
    start_period: PeriodText | None = Field(
        default=None,
        description="First period (YYYY-MM) whose runs automatic export posts (default: "
        "January of the year before the mapping is made).",
    )

    def draft(self) -> MappingDraft:
        return MappingDraft(**self.model_dump())


class MappingPublic(BaseModel):
    """One version of a mapping."""

    mapping_id: uuid.UUID
    version: int
    name: str
    nmbrs_connection_id: uuid.UUID
    nmbrs_company_id: str
    vismanet_connection_id: uuid.UUID
    vismanet_company_id: str
    cost_centre_description: str | None
    cost_centre_segment: int | None
    cost_unit_description: str | None
    cost_unit_segment: int | None
    auto_export: bool
    journal_business_id: str | None
    release: bool
    start_period: str | None
    created_by: str
    created_at: UtcDatetime

    @classmethod
    def of(cls, mapping: PayrollMapping) -> MappingPublic:
        return cls.model_validate(mapping, from_attributes=True)


class MappingDetail(MappingPublic):
    """The current version of a mapping and every version before it."""

    versions: list[MappingPublic]


class ExportIn(BaseModel):
    """What to export: chosen runs, or the runs of a period range (seed 003: "Export
    journal entries at company level")."""

    model_config = ConfigDict(extra="forbid")

    runs: list[str] | None = Field(default=None, max_length=1000, description="Nmbrs run ids.")
    period_from: PeriodText | None = None
    period_to: PeriodText | None = None


class PostingPublic(BaseModel):
    """A posting and where it stands (amounts are decimal strings in JSON)."""

    id: uuid.UUID
    mapping_id: uuid.UUID
    mapping_version: int
    nmbrs_company_id: str
    run_id: str
    run_period: str
    period: str
    kind: str
    reference: str
    reference_number: str | None
    financial_period: str | None
    status: PostingStatus
    line_count: int
    total_debit: Decimal
    batch_number: str | None
    found_existing: bool
    problems: list[dict[str, Any]]
    last_error: str | None
    trigger: str
    attempts: int
    source_hash: str
    payload_hash: str | None
    created_at: UtcDatetime
    first_attempt_at: UtcDatetime | None
    finished_at: UtcDatetime | None
    release: bool
    released_at: UtcDatetime | None

    @classmethod
    def of(cls, posting: PayrollPosting) -> PostingPublic:
        return cls.model_validate(posting, from_attributes=True)


class PostingEvidence(PostingPublic):
    """A posting with its evidence: the journal as read from Nmbrs and the body sent."""

    source: dict[str, Any]
    payload: str | None


class StatusPublic(BaseModel):
    """Status of a run or a period: ``released`` when every posting of it is released,
    ``posted`` when every one is posted (or released)."""

    key: str
    status: str
    postings: int
    batch_numbers: list[str]


def caller_guard(tokens: Mapping[str, SecretStr]) -> Any:
    """The caller's name from its bearer token (``anonymous`` when no tokens are set)."""
    known = [(name, token.get_secret_value().encode()) for name, token in tokens.items()]

    async def caller(authorization: Annotated[str | None, Header()] = None) -> str:
        if not known:
            return "anonymous"
        presented = b""
        if authorization is not None and authorization[:7].lower() == "bearer ":
            presented = authorization[7:].strip().encode()
        found: str | None = None
        for name, token in known:
            if presented and hmac.compare_digest(presented, token):
                found = name
        if found is None:
            raise HTTPException(
                401,
                "an API token is required (Authorization: Bearer ...)",
                headers={"WWW-Authenticate": "Bearer"},
            )
        return found

    return caller


_MAPPING_REFUSED = "The mapping cannot be saved; each error names its field."
_GUARD: dict[int, str] = {401: "No or an unknown API token (when API tokens are configured)."}


def build_payroll_router(
    mappings: MappingService,
    exports: ExportService,
    tokens: Mapping[str, SecretStr],
    *,
    on_planned: Any = None,
) -> APIRouter:
    """Mappings, exports, statuses and evidence under ``/v1/payroll``."""
    guard = caller_guard(tokens)
    router = APIRouter(prefix="/v1/payroll", tags=["payroll"])

    @router.post(
        "/mappings",
        status_code=201,
        response_model=MappingPublic,
        responses=error_responses(
            {**_GUARD, 422: _MAPPING_REFUSED + " Or the body is malformed."},
            model=RefusalBody,
        ),
    )
    async def create_mapping(body: MappingIn, caller: str = Depends(guard)) -> Any:
        """Pair an Nmbrs company with a Visma.net company (dimensions checked in Visma.net)."""
        try:
            mapping = await mappings.save(body.draft(), created_by=caller)
        except MappingRefusedError as refused:
            return _refused(
                422,
                "mapping_invalid",
                str(refused),
                [FieldError(field=p.field, message=p.message) for p in refused.problems],
            )
        return MappingPublic.of(mapping)

    @router.put(
        "/mappings/{mapping_id}",
        response_model=MappingPublic,
        responses=error_responses(
            {**_GUARD, 404: "No mapping with this id.", 422: _MAPPING_REFUSED},
            model=RefusalBody,
        ),
    )
    async def change_mapping(
        mapping_id: uuid.UUID, body: MappingIn, caller: str = Depends(guard)
    ) -> Any:
        """Change a mapping: a new version (postings keep the version they used)."""
        try:
            mapping = await mappings.save(body.draft(), created_by=caller, mapping_id=mapping_id)
        except NotFoundError as missing:
            return _refused(404, "not_found", str(missing), [])
        except MappingRefusedError as refused:
            return _refused(
                422,
                "mapping_invalid",
                str(refused),
                [FieldError(field=p.field, message=p.message) for p in refused.problems],
            )
        return MappingPublic.of(mapping)

    @router.get("/mappings", response_model=list[MappingPublic], responses=error_responses(_GUARD))
    async def list_mappings(caller: str = Depends(guard)) -> list[MappingPublic]:
        """Every mapping's current version."""
        return [MappingPublic.of(mapping) for mapping in await mappings.all_current()]

    @router.get(
        "/mappings/{mapping_id}",
        response_model=MappingDetail,
        responses=error_responses({**_GUARD, 404: "No mapping with this id."}),
    )
    async def get_mapping(mapping_id: uuid.UUID, caller: str = Depends(guard)) -> MappingDetail:
        """A mapping's current version and its history."""
        try:
            versions = await mappings.versions(mapping_id)
        except NotFoundError as missing:
            raise HTTPException(404, str(missing)) from None
        current = MappingPublic.of(versions[-1])
        return MappingDetail(
            **current.model_dump(), versions=[MappingPublic.of(v) for v in versions]
        )

    @router.post(
        "/mappings/{mapping_id}/exports",
        status_code=202,
        response_model=list[PostingPublic],
        responses=error_responses(
            {
                **_GUARD,
                400: "Neither runs nor a period range, or a range that ends before it starts.",
                404: "No mapping with this id, or a chosen run Nmbrs does not have.",
                422: "Nmbrs refuses this company's journals (test company, blocked debtor), "
                "or the body is malformed.",
                502: "Nmbrs or Visma.net refused to be read.",
                503: "Nmbrs or Visma.net could not be reached; try again later.",
            },
            model=RefusalBody,
        ),
    )
    async def export(mapping_id: uuid.UUID, body: ExportIn, caller: str = Depends(guard)) -> Any:
        """Plan the postings of chosen runs or a period range; the runner posts them.

        Answers every posting of those runs: new ones ``pending`` (or ``refused`` with a
        problem per line), earlier ones as they stand.
        """
        try:
            postings = await exports.export(
                mapping_id,
                trigger=f"http:{caller}",
                runs=body.runs,
                period_from=body.period_from,
                period_to=body.period_to,
            )
        except NotFoundError as missing:
            return _refused(404, "not_found", str(missing), [])
        except ExportRefusedError as refused:
            return _refused(refused.status, refused.reason_code, refused.message, [])
        if on_planned is not None:
            on_planned()
        return [PostingPublic.of(posting) for posting in postings]

    @router.get(
        "/mappings/{mapping_id}/status",
        response_model=list[StatusPublic],
        responses=error_responses({**_GUARD, 404: "No mapping with this id."}),
    )
    async def status(
        mapping_id: uuid.UUID,
        caller: str = Depends(guard),
        by: Literal["run", "period"] = Query(default="run", description="Per run or period."),
    ) -> list[StatusPublic]:
        """Status per run or per period (``posted``: every posting of it is in Visma.net)."""
        try:
            await mappings.current(mapping_id)
        except NotFoundError as missing:
            raise HTTPException(404, str(missing)) from None
        return [
            StatusPublic(
                key=row.key,
                status=row.status,
                postings=row.postings,
                batch_numbers=list(row.batch_numbers),
            )
            for row in await exports.statuses(mapping_id, by)
        ]

    @router.get("/postings", response_model=list[PostingPublic], responses=error_responses(_GUARD))
    async def list_postings(
        caller: str = Depends(guard),
        mapping_id: uuid.UUID | None = None,
        status: PostingStatus | None = None,
        run_id: str | None = None,
    ) -> list[PostingPublic]:
        """Postings, by period and run."""
        return [
            PostingPublic.of(posting)
            for posting in await exports.postings(
                mapping_id=mapping_id, status=status, run_id=run_id
            )
        ]

    @router.get(
        "/postings/{posting_id}",
        response_model=PostingEvidence,
        responses=error_responses({**_GUARD, 404: "No posting with this id."}),
    )
    async def get_posting(posting_id: uuid.UUID, caller: str = Depends(guard)) -> PostingEvidence:
        """A posting with its evidence (source journal, exact body sent, hashes)."""
        try:
            posting = await exports.posting(posting_id)
        except NotFoundError as missing:
            raise HTTPException(404, str(missing)) from None
        return PostingEvidence.model_validate(posting, from_attributes=True)

    @router.get(
        "/evidence.csv",
        response_class=Response,
        responses={
            200: {"content": {"text/csv": {}}, "description": "One row per posting."},
            **error_responses(_GUARD),
        },
    )
    async def evidence(
        caller: str = Depends(guard), mapping_id: uuid.UUID | None = None
    ) -> Response:
        """Every posting's evidence as CSV, for an auditor."""
        return Response(
            await exports.evidence_csv(mapping_id),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": 'attachment; filename="payroll-postings.csv"'},
        )

    return router
