"""Versioned event contracts (v1).

Each payload model is owned by the service that produces it and never changed in place
once published: a breaking change is a new ``...V2`` type. The ``EVENT_TYPE`` is the
CloudEvents ``type`` attribute and ``TOPIC`` the topic the event is published to.
"""

from __future__ import annotations

import re
import uuid
from datetime import date, datetime
from enum import StrEnum
from typing import Annotated, Any, ClassVar, Literal, Self

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    StringConstraints,
    model_serializer,
    model_validator,
)

from ledgerlink.shared.topics import Topic


class Provider(StrEnum):
    """Where a company's books are kept."""

    NETVISOR = "netvisor"
    PROCOUNTOR = "procountor"
    VISMA_NET = "visma_net"
    TWENTYFOUR_SEVEN_OFFICE = "24sevenoffice"
    NMBRS = "nmbrs"
    SAF_T = "saf_t"
    SIE = "sie"

    @property
    def is_file_based(self) -> bool:
        """File providers need no authorization: the company uploads its export."""
        return self in (Provider.SAF_T, Provider.SIE)


class Country(StrEnum):
    """Countries whose business IDs we validate."""

    FI = "FI"
    NO = "NO"
    SE = "SE"
    NL = "NL"


class Product(StrEnum):
    """The product that asked for the company's data."""

    PLANNING = "planning"
    RECONCILIATION = "reconciliation"
    PAYROLL_EXPORT = "payroll_export"


NonEmpty = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=300)]
BusinessIdText = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=32)
]
ReplaceReason = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=1000)
]
Period = Annotated[str, StringConstraints(pattern=r"^\d{4}-(0[1-9]|1[0-2])$")]
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
Email = Annotated[
    str, StringConstraints(strip_whitespace=True, max_length=320, pattern=_EMAIL.pattern)
]


class Contract(BaseModel):
    """Base of every published model: frozen, strict about unknown fields, and careful
    with fields added to a published version.

    A field added to a v1 model after it was published is optional and named in
    ``ADDITIVE_FIELDS``; while it holds its default it is left out of the serialized payload,
    so a consumer still running the older model (``extra="forbid"``) accepts events from
    an upgraded producer during a rolling upgrade instead of dead-lettering them.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    ADDITIVE_FIELDS: ClassVar[frozenset[str]] = frozenset()

    @model_serializer(mode="wrap")
    def _omit_unset_additive_fields(self, handler: SerializerFunctionWrapHandler) -> Any:
        data = handler(self)
        if self.ADDITIVE_FIELDS and isinstance(data, dict):
            fields = type(self).model_fields
            for name in self.ADDITIVE_FIELDS:
                if getattr(self, name) == fields[name].default:
                    data.pop(name, None)
        return data


class EventData(Contract):
    """Base of every event payload."""

    EVENT_TYPE: ClassVar[str]
    TOPIC: ClassVar[Topic]


class Requester(BaseModel):
    """The person who started an activation."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    email: Email
    name: NonEmpty


class ActivationRequestedV1(EventData):
    """A company asked, usually from a vendor's store, to connect its books to a product."""

    EVENT_TYPE: ClassVar[str] = "ledgerlink.activation.requested.v1"
    TOPIC: ClassVar[Topic] = Topic.ACTIVATIONS

    provider: Provider
    business_id: BusinessIdText
    country: Country
    company_name: NonEmpty
    requested_by: Requester
    product: Product
    store_reference: NonEmpty | None = None


class ConnectionActivatedV1(EventData):
    """A company's books are connected and may be imported."""

    EVENT_TYPE: ClassVar[str] = "ledgerlink.connection.activated.v1"
    TOPIC: ClassVar[Topic] = Topic.CONNECTIONS
    ADDITIVE_FIELDS: ClassVar[frozenset[str]] = frozenset({"transaction_type"})

    connection_id: uuid.UUID
    environment_id: uuid.UUID
    provider: Provider
    business_id: BusinessIdText
    company_name: NonEmpty
    # --- ledger sync (issue 14): optional, producers that predate it send none.
    #: 24SevenOffice: the transaction type (bilagsart ``No``) chosen at activation (seed
    #: 004's "Transaction Type" row); the company's default for anything written to it.
    transaction_type: str | None = Field(default=None, max_length=64)


class ConnectionRejectedV1(EventData):
    """An activation was refused; ``reason_code`` is stable, ``message`` is for people."""

    EVENT_TYPE: ClassVar[str] = "ledgerlink.connection.rejected.v1"
    TOPIC: ClassVar[Topic] = Topic.CONNECTIONS

    connection_id: uuid.UUID
    #: None when the activation was refused before an environment could be matched.
    environment_id: uuid.UUID | None
    provider: Provider
    business_id: BusinessIdText
    company_name: NonEmpty
    reason_code: NonEmpty
    message: NonEmpty


class ConnectionStateChange(EventData):
    """What every change of a connection's state says (not an event of its own: each change
    is its own versioned type below). Keyed, like every connection event, by business ID."""

    TOPIC: ClassVar[Topic] = Topic.CONNECTIONS

    connection_id: uuid.UUID
    environment_id: uuid.UUID | None
    provider: Provider
    business_id: BusinessIdText
    #: The status the connection left.
    previous_status: NonEmpty


class ConnectionAuthorizationStartedV1(ConnectionStateChange):
    """A person began authorising the connection at its vendor (status ``authorizing``)."""

    EVENT_TYPE: ClassVar[str] = "ledgerlink.connection.authorization_started.v1"


class ConnectionConfiguredV1(ConnectionStateChange):
    """The connection's first import completed: it is ``active``."""

    EVENT_TYPE: ClassVar[str] = "ledgerlink.connection.configured.v1"

    import_id: uuid.UUID


class ConnectionNeedsReauthV1(ConnectionStateChange):
    """The vendor refused the connection's grant: a person must authorise it again."""

    EVENT_TYPE: ClassVar[str] = "ledgerlink.connection.needs_reauth.v1"

    reason_code: NonEmpty


class ConnectionReauthorizedV1(ConnectionStateChange):
    """The same vendor account authorised the connection again (same connection id)."""

    EVENT_TYPE: ClassVar[str] = "ledgerlink.connection.reauthorized.v1"

    #: ``configuring`` or ``active``: where the connection went back to.
    status: NonEmpty


class ConnectionRevokedV1(ConnectionStateChange):
    """The connection was revoked and its secrets wiped; data already imported stays."""

    EVENT_TYPE: ClassVar[str] = "ledgerlink.connection.revoked.v1"

    #: At the vendor: "revoked", "not_supported" (no revocation endpoint) or "failed".
    vendor_revocation: Literal["revoked", "not_supported", "failed"]


class ConnectionExpiredV1(ConnectionStateChange):
    """An activation was not authorised in its time."""

    EVENT_TYPE: ClassVar[str] = "ledgerlink.connection.expired.v1"


class ConnectionActivationLinkIssuedV1(EventData):
    """The link that finishes an activation in a browser, for upstreams that e-mail it.

    ``url`` opens auth's activation pages (``/activate/link/<token>``); it is single-use (it
    stops working once the activation completes) and expires at ``expires_at``. Anyone
    opening it must still sign in, and only the person who may connect the company can.
    """

    EVENT_TYPE: ClassVar[str] = "ledgerlink.connection.activation_link_issued.v1"
    TOPIC: ClassVar[Topic] = Topic.CONNECTIONS

    connection_id: uuid.UUID
    environment_id: uuid.UUID | None
    provider: Provider
    business_id: BusinessIdText
    store_reference: NonEmpty | None = None
    requested_by: Requester
    url: Annotated[str, StringConstraints(min_length=1, max_length=2000)]
    expires_at: datetime


ImportScope = Literal["companies", "accounts", "dimensions", "ledger"]
ALL_IMPORT_SCOPES: tuple[ImportScope, ...] = ("companies", "accounts", "dimensions", "ledger")


class ImportRequestedV1(EventData):
    """Someone (a product, an operator, a schedule) asks for an import of a connection."""

    EVENT_TYPE: ClassVar[str] = "ledgerlink.import.requested.v1"
    TOPIC: ClassVar[Topic] = Topic.IMPORT_REQUESTS
    ADDITIVE_FIELDS: ClassVar[frozenset[str]] = frozenset(
        {"replace", "replace_reason", "mode", "backfill_from", "backfill_to"}
    )

    connection_id: uuid.UUID
    business_id: BusinessIdText
    provider: Provider
    scope: tuple[ImportScope, ...] = ALL_IMPORT_SCOPES
    #: For file providers: where the uploaded file can be read.
    file_location: NonEmpty | None = None
    #: Replace the stored fiscal year even though the file holds fewer kinds of data or
    #: is older than it (the importer refuses that otherwise). Needs ``replace_reason``,
    #: which is recorded on the import job. Optional: producers that predate it send
    #: neither field and get the protection.
    replace: bool = False
    replace_reason: ReplaceReason | None = None
    # --- ledger sync (issue 14): optional, so producers that predate it are unchanged.
    #: For API providers: "incremental" (what changed since the last sync; the default
    #: once a first import completed), "full_refresh" (everything again, swapped in only
    #: when complete) or "backfill" (the vouchers dated ``backfill_from`` to
    #: ``backfill_to`` read again and replaced exactly). Ignored for file providers.
    mode: Literal["incremental", "full_refresh", "backfill"] | None = None
    #: A backfill's first and last voucher date (both included); only with "backfill".
    backfill_from: date | None = None
    backfill_to: date | None = None

    @model_validator(mode="after")
    def _backfill_has_its_range(self) -> Self:
        has_range = self.backfill_from is not None or self.backfill_to is not None
        if self.mode == "backfill":
            if self.backfill_from is None or self.backfill_to is None:
                raise ValueError("a backfill needs backfill_from and backfill_to")
            if self.backfill_from > self.backfill_to:
                raise ValueError("backfill_from is after backfill_to")
        elif has_range:
            raise ValueError("backfill_from and backfill_to go with mode backfill only")
        return self


class ImportQueuedV1(EventData):
    """The importer has recorded an import job and will run it."""

    EVENT_TYPE: ClassVar[str] = "ledgerlink.import.queued.v1"
    TOPIC: ClassVar[Topic] = Topic.IMPORTS

    import_id: uuid.UUID
    connection_id: uuid.UUID
    business_id: BusinessIdText
    provider: Provider
    scope: tuple[ImportScope, ...]
    trigger: Literal["connection_activated", "import_requested"]


class ImportCountsV1(BaseModel):
    """How much of the books an import holds."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    accounts: int
    dimensions: int
    objects: int
    vouchers: int
    lines: int


class AccountDifferenceV1(Contract):
    """An account whose opening balance + movements is not the source's closing balance.

    Amounts are decimal strings, debit positive.
    """

    ADDITIVE_FIELDS: ClassVar[frozenset[str]] = frozenset({"period"})

    account: str
    opening: str
    movements: str
    computed_closing: str
    source_closing: str
    difference: str
    # --- ledger sync (issue 14): optional, file imports reconcile the year and send none.
    #: The period (YYYY-MM) at whose end the vendor's balance differs from ours.
    period: Period | None = None


class ImportStartedV1(EventData):
    """An import job began running (again, after an interrupted attempt: ``attempt`` > 1)."""

    EVENT_TYPE: ClassVar[str] = "ledgerlink.import.started.v1"
    TOPIC: ClassVar[Topic] = Topic.IMPORTS

    import_id: uuid.UUID
    connection_id: uuid.UUID | None
    #: The company; for an upload that did not name it, sent once the file has said
    #: whose books it holds (empty only for a file that never said: then the event, and
    #: the import.failed after it, are keyed by the import id).
    business_id: str = Field(max_length=32)
    provider: Provider
    attempt: int


class ImportCompletedV1(EventData):
    """An import finished; its data is committed (or it was the same file again)."""

    EVENT_TYPE: ClassVar[str] = "ledgerlink.import.completed.v1"
    TOPIC: ClassVar[Topic] = Topic.IMPORTS

    import_id: uuid.UUID
    connection_id: uuid.UUID | None
    business_id: BusinessIdText
    company_name: NonEmpty
    provider: Provider
    #: "imported", "replaced" (the year held older data) or "unchanged" (same file).
    outcome: Literal["imported", "replaced", "unchanged"]
    fiscal_year_start: date
    fiscal_year_end: date
    counts: ImportCountsV1
    #: The fiscal year's periods, YYYY-MM.
    periods: tuple[Period, ...]
    reconciliation_status: Literal["balanced", "differences", "not_available"]
    differences: tuple[AccountDifferenceV1, ...] = ()
    notice_count: int = 0


class ImportFailedV1(EventData):
    """An import was refused or could not run; nothing of it was committed."""

    EVENT_TYPE: ClassVar[str] = "ledgerlink.import.failed.v1"
    TOPIC: ClassVar[Topic] = Topic.IMPORTS

    import_id: uuid.UUID
    connection_id: uuid.UUID | None
    business_id: str = Field(max_length=32)
    provider: Provider
    reason_code: NonEmpty
    message: str = Field(min_length=1, max_length=2000)
    #: Where in the file (name, line or XML element path), when the problem has a place.
    location: str | None = Field(default=None, max_length=1000)


class ReportsReadyV1(EventData):
    """Trial balance, P&L and balance sheet can be read for these periods."""

    EVENT_TYPE: ClassVar[str] = "ledgerlink.reports.ready.v1"
    TOPIC: ClassVar[Topic] = Topic.IMPORTS

    import_id: uuid.UUID
    business_id: BusinessIdText
    fiscal_year_start: date
    fiscal_year_end: date
    periods: tuple[Period, ...]
    #: Paths on the importer's HTTP API, e.g. /v1/companies/{business_id}/trial-balance.
    reports: tuple[str, ...]


class JournalLineV1(BaseModel):
    """One journal line; amounts are decimal strings ("1234.50"), never floats."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    account: str = Field(max_length=64)
    debit: str = Field(default="0", max_length=32)
    credit: str = Field(default="0", max_length=32)
    cost_center: str | None = Field(default=None, max_length=64)
    cost_unit: str | None = Field(default=None, max_length=64)
    description: str | None = Field(default=None, max_length=500)


class JournalReadyV1(EventData):
    """A payroll run's journal is ready to be posted to the company's ledger."""

    EVENT_TYPE: ClassVar[str] = "ledgerlink.journal.ready.v1"
    TOPIC: ClassVar[Topic] = Topic.JOURNALS

    journal_id: NonEmpty
    source: NonEmpty
    business_id: BusinessIdText
    # Checked by the journal-exporter's rules, not here: a malformed period is answered
    # with journal.rejected naming it, rather than dead-lettered.
    period: str = Field(max_length=16, description="Posting period, YYYY-MM.")
    run_reference: NonEmpty
    lines: tuple[JournalLineV1, ...] = Field(max_length=100_000)
    #: For a correction: the earlier period it corrects (posted in ``period``).
    corrects_period: str | None = Field(default=None, max_length=16)


class JournalAcceptedV1(EventData):
    """The journal passed validation and is stored for export."""

    EVENT_TYPE: ClassVar[str] = "ledgerlink.journal.accepted.v1"
    TOPIC: ClassVar[Topic] = Topic.JOURNAL_EXPORTS

    journal_id: NonEmpty
    business_id: BusinessIdText
    period: Period
    corrects_period: Period | None
    line_count: int
    total_debit: str
    total_credit: str


class JournalProblemV1(BaseModel):
    """One reason a journal was refused."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    code: str
    message: str
    line: int | None = None


class JournalRejectedV1(EventData):
    """The journal was refused; ``problems`` lists every reason found."""

    EVENT_TYPE: ClassVar[str] = "ledgerlink.journal.rejected.v1"
    TOPIC: ClassVar[Topic] = Topic.JOURNAL_EXPORTS

    journal_id: NonEmpty
    business_id: BusinessIdText
    reason_code: str
    message: str
    problems: tuple[JournalProblemV1, ...]


# -- Payroll journals posted into a ledger (journal-exporter, issue 15) ------------------------


class PayrollPostingProblemV1(BaseModel):
    """One reason a payroll posting was refused, in an accountant's words, with the
    vendor's own code and message when the vendor gave them."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    code: str = Field(max_length=100)
    message: str = Field(max_length=2000)
    line: int | None = None
    vendor_code: str | None = Field(default=None, max_length=100)
    vendor_message: str | None = Field(default=None, max_length=2000)


class PayrollJournalInLedger(EventData):
    """What the posted and released events say of a journal in the ledger (not an event)."""

    posting_id: uuid.UUID
    mapping_id: uuid.UUID
    mapping_version: int
    source: NonEmpty
    source_company: NonEmpty
    run_id: NonEmpty
    period: Period
    kind: Literal["normal", "correction"]
    reference: NonEmpty
    ledger: NonEmpty
    ledger_company: NonEmpty
    batch_number: NonEmpty


class PayrollJournalPostedV1(PayrollJournalInLedger):
    """A payroll run's journal (its normal part, or one correction) is in the ledger."""

    EVENT_TYPE: ClassVar[str] = "ledgerlink.payroll_journal.posted.v1"
    TOPIC: ClassVar[Topic] = Topic.JOURNAL_EXPORTS

    #: True when the batch was found by its reference (an earlier answer was lost).
    found_existing: bool = False


class PayrollJournalReleasedV1(PayrollJournalInLedger):
    """A posted payroll batch is released in the ledger (mappings that release; also when
    it was found released already, by a person or an earlier attempt)."""

    EVENT_TYPE: ClassVar[str] = "ledgerlink.payroll_journal.released.v1"
    TOPIC: ClassVar[Topic] = Topic.JOURNAL_EXPORTS

    #: True when the batch was released before we asked (a person, or an attempt whose
    #: answer was lost).
    found_released: bool = False


class PayrollJournalFailedV1(EventData):
    """A payroll posting was refused (final) or gave up after its retries."""

    EVENT_TYPE: ClassVar[str] = "ledgerlink.payroll_journal.failed.v1"
    TOPIC: ClassVar[Topic] = Topic.JOURNAL_EXPORTS

    posting_id: uuid.UUID
    mapping_id: uuid.UUID
    mapping_version: int
    source: NonEmpty
    source_company: NonEmpty
    run_id: NonEmpty
    period: Period
    kind: Literal["normal", "correction"]
    reference: NonEmpty
    reason_code: NonEmpty
    message: str = Field(min_length=1, max_length=2000)
    problems: tuple[PayrollPostingProblemV1, ...] = Field(max_length=100)


#: Auth's lifecycle events after activation. Consumers of ``ledgerlink.connections`` that
#: only want ``connection.activated`` ignore these (rather than dead-letter them).
CONNECTION_LIFECYCLE_EVENT_TYPES: tuple[str, ...] = tuple(
    model.EVENT_TYPE
    for model in (
        ConnectionAuthorizationStartedV1,
        ConnectionConfiguredV1,
        ConnectionNeedsReauthV1,
        ConnectionReauthorizedV1,
        ConnectionRevokedV1,
        ConnectionExpiredV1,
        ConnectionActivationLinkIssuedV1,
    )
)

EVENT_TYPES: dict[str, type[EventData]] = {
    model.EVENT_TYPE: model
    for model in (
        ActivationRequestedV1,
        ConnectionActivatedV1,
        ConnectionRejectedV1,
        ConnectionAuthorizationStartedV1,
        ConnectionConfiguredV1,
        ConnectionNeedsReauthV1,
        ConnectionReauthorizedV1,
        ConnectionRevokedV1,
        ConnectionExpiredV1,
        ConnectionActivationLinkIssuedV1,
        ImportRequestedV1,
        ImportQueuedV1,
        ImportStartedV1,
        ImportCompletedV1,
        ImportFailedV1,
        ReportsReadyV1,
        JournalReadyV1,
        JournalAcceptedV1,
        JournalRejectedV1,
        # journal-exporter: payroll journals posted into a ledger
        PayrollJournalPostedV1,
        PayrollJournalReleasedV1,
        PayrollJournalFailedV1,
    )
}
