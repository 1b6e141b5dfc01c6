"""The interfaces every connector implements.

A ledger (Netvisor, Procountor, Visma.net, 24SevenOffice) is a :class:`LedgerConnector`;
a payroll system that only produces journals (Nmbrs) is a :class:`PayrollSource`. Both are
async context managers: ``async with Connector(settings) as c: ...`` opens the pooled HTTP
client and closes it at the end.
"""

from __future__ import annotations

import abc
import datetime as dt
from collections.abc import AsyncIterator, Sequence
from decimal import Decimal
from types import TracebackType
from typing import ClassVar, Literal, Protocol, Self, runtime_checkable

from pydantic import BaseModel, ConfigDict

from ledgerlink.connectors.models import (
    Account,
    Company,
    Dimension,
    JournalLine,
    JournalPosting,
    Period,
    PostedJournal,
    SyncCursor,
    Voucher,
    VoucherPage,
)

__all__ = [
    "AccountBalanceSource",
    "LedgerConnector",
    "PayrollJournal",
    "PayrollJournalLine",
    "PayrollRun",
    "PayrollSource",
]


class _AsyncResource(abc.ABC):
    """``async with`` support around :meth:`aclose`."""

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    @abc.abstractmethod
    async def aclose(self) -> None:
        """Release the connector's HTTP client and anything else it holds."""


class LedgerConnector(_AsyncResource):
    """Reads a ledger's master data and vouchers, and posts journals into it."""

    vendor: ClassVar[str]

    @abc.abstractmethod
    async def list_companies(self) -> list[Company]:
        """The companies reachable with these credentials."""

    @abc.abstractmethod
    async def read_accounts(self) -> list[Account]:
        """The chart of accounts."""

    @abc.abstractmethod
    async def read_dimensions(self) -> list[Dimension]:
        """Dimensions (cost centres, cost units, projects) with their objects."""

    @abc.abstractmethod
    async def read_periods(self) -> list[Period]:
        """Accounting periods with their open/closed status."""

    @abc.abstractmethod
    async def read_vouchers(
        self, cursor: SyncCursor | None = None, *, page_size: int | None = None
    ) -> VoucherPage:
        """One page of vouchers changed since ``cursor`` (all of them from ``None``/start).

        The returned cursor continues the read; once ``has_more`` is false it is the cursor
        to store for the next incremental sync, which then also returns vouchers that were
        invalidated or edited since.
        """

    async def iter_vouchers(
        self, cursor: SyncCursor | None = None, *, page_size: int | None = None
    ) -> AsyncIterator[tuple[Voucher, SyncCursor]]:
        """Every voucher from ``cursor`` on, page by page, each with the page's cursor."""
        while True:
            page = await self.read_vouchers(cursor, page_size=page_size)
            for voucher in page.vouchers:
                yield voucher, page.cursor
            cursor = page.cursor
            if not page.has_more:
                return

    @abc.abstractmethod
    async def post_journal(self, posting: JournalPosting) -> PostedJournal:
        """Post one balanced journal; raises a ConnectorError subclass when refused."""


@runtime_checkable
class AccountBalanceSource(Protocol):
    """A ledger that reports its own account balances (Netvisor ``accountbalance.nv``...):
    what a sync reconciles the books it read with."""

    async def read_account_balances(
        self, dates: Sequence[dt.date]
    ) -> dict[dt.date, dict[str, Decimal]]:
        """Each account's balance (debit positive) at the end of each of ``dates``."""
        ...


class PayrollRun(BaseModel):
    """A payroll run of one company (a normal run or a retroactive correction)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    run_id: str
    year: int
    period: int
    date: dt.date | None = None
    description: str = ""


class PayrollJournalLine(BaseModel):
    """One line of a payroll journal; ``amount`` is positive, ``debit_credit`` says which."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    gl_account: str
    cost_centre: str | None = None
    cost_unit: str | None = None
    amount: Decimal
    debit_credit: Literal["D", "C"]
    description: str = ""

    @property
    def signed_amount(self) -> Decimal:
        """Debit positive, credit negative."""
        return self.amount if self.debit_credit == "D" else -self.amount


class PayrollJournal(BaseModel):
    """The journal of a run for one period: a run with retroactive corrections yields one
    journal per corrected period, all carrying the normal run's reference."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    run_id: str
    date: dt.date
    period: dt.date
    kind: Literal["normal", "correction"] = "normal"
    reference: str
    lines: tuple[PayrollJournalLine, ...]
    #: SHA-256 (hex) of the run's journal document exactly as the vendor sent it (the
    #: normal part and its corrections come in one document), when the vendor sent one.
    source_sha256: str | None = None

    def to_posting(self, description: str) -> JournalPosting:
        """The journal as a posting for a ledger connector (posted in ``period``)."""
        return JournalPosting(
            date=self.date,
            period=self.period,
            description=description,
            reference=self.reference,
            lines=tuple(
                JournalLine(
                    account=line.gl_account,
                    amount=line.signed_amount,
                    description=line.description,
                    cost_centre=line.cost_centre,
                    cost_unit=line.cost_unit,
                )
                for line in self.lines
            ),
        )


class PayrollSource(_AsyncResource):
    """A payroll system from which run journals are read (e.g. Nmbrs)."""

    vendor: ClassVar[str]

    @abc.abstractmethod
    async def list_companies(self) -> list[Company]:
        """The companies (debtor's companies) reachable with these credentials."""

    @abc.abstractmethod
    async def list_runs(self, company: str, year: int) -> list[PayrollRun]:
        """Payroll runs of ``company`` in ``year``."""

    @abc.abstractmethod
    async def read_run_journal(self, company: str, run: str) -> list[PayrollJournal]:
        """The journals of one run: one per period it posts into (corrections separate)."""
