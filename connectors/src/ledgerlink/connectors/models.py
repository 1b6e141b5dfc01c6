"""Vendor-neutral data every connector reads and writes.

All models are frozen pydantic v2 models: a connector translates the vendor's format into
these and back, and nothing downstream ever sees a vendor's own field names. Amounts are
``Decimal`` with the sign convention *debit positive, credit negative*.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "Account",
    "AccountType",
    "Company",
    "Dimension",
    "DimensionKind",
    "DimensionObject",
    "JournalLine",
    "JournalPosting",
    "Period",
    "PostedJournal",
    "SyncCursor",
    "Voucher",
    "VoucherLine",
    "VoucherPage",
]

AccountType = Literal["asset", "liability", "equity", "revenue", "expense"]
DimensionKind = Literal["cost_centre", "cost_unit", "project"]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Company(_Frozen):
    """A company (client, administration, tenant) reachable through a connection."""

    external_id: str = Field(description="The vendor's id of the company (customer id, tenant).")
    business_id: str | None = Field(default=None, description="Y-tunnus, org nr, KvK number.")
    name: str
    currency: str = Field(default="EUR", description="ISO 4217 code of the books' currency.")


class Account(_Frozen):
    """One account of the chart of accounts."""

    number: str
    name: str
    type: AccountType | None = None
    active: bool = True


class DimensionObject(_Frozen):
    """One value of a dimension (a cost centre, a project...)."""

    code: str
    name: str
    active: bool = True


class Dimension(_Frozen):
    """A dimension (cost centre, cost unit, project) with its objects."""

    id: str
    name: str
    kind: DimensionKind | None = None
    objects: tuple[DimensionObject, ...] = ()


class Period(_Frozen):
    """An accounting period and whether postings into it are still accepted."""

    start: dt.date
    end: dt.date
    status: Literal["open", "closed"]


class VoucherLine(_Frozen):
    """One line of a voucher: debit positive, credit negative."""

    account: str
    amount: Decimal
    description: str = ""
    vat_code: str | None = None
    dimensions: dict[str, str] = Field(
        default_factory=dict, description="Dimension name or kind -> object code."
    )


class Voucher(_Frozen):
    """A voucher (receipt, journal transaction, bundle) as read from a ledger."""

    external_id: str
    series: str | None = None
    number: str | None = None
    date: dt.date
    description: str = ""
    status: Literal["valid", "invalidated"] = "valid"
    version: str | None = Field(
        default=None, description="The vendor's version or modification stamp, if any."
    )
    lines: tuple[VoucherLine, ...] = ()

    @property
    def balance(self) -> Decimal:
        """Sum of the line amounts (zero for a balanced voucher)."""
        return sum((line.amount for line in self.lines), Decimal(0))


class JournalLine(_Frozen):
    """One line of a journal to post: debit positive, credit negative."""

    account: str
    amount: Decimal
    description: str = ""
    cost_centre: str | None = None
    cost_unit: str | None = None


class JournalPosting(_Frozen):
    """A journal to post into a ledger (e.g. a payroll run's journal).

    ``period`` is the first day of the period the lines belong to: a retroactive payroll
    correction is posted in the period it corrects, with the reference of the normal run.
    """

    date: dt.date
    period: dt.date
    description: str
    reference: str
    lines: tuple[JournalLine, ...]

    @property
    def balance(self) -> Decimal:
        """Sum of the line amounts (zero for a balanced journal)."""
        return sum((line.amount for line in self.lines), Decimal(0))


class PostedJournal(_Frozen):
    """What the ledger answered to a posting."""

    external_id: str
    status: str = Field(description="The vendor's status word, e.g. UNFINISHED, Balanced, Ok.")
    found_existing: bool = Field(
        default=False,
        description="True when no request was sent: the ledger already held this posting "
        "(found by its reference after an earlier attempt's answer was lost).",
    )


class SyncCursor(_Frozen):
    """Where an incremental voucher read stopped; opaque outside the connector that made it.

    ``token`` is vendor-defined (a timestamp, a page number, a JSON document); an empty token
    means "from the beginning".
    """

    token: str = ""

    @classmethod
    def start(cls) -> SyncCursor:
        """The cursor of a first, full read."""
        return cls(token="")

    @property
    def is_start(self) -> bool:
        """True for the cursor of a first, full read."""
        return self.token == ""


class VoucherPage(_Frozen):
    """One page of vouchers and the cursor to continue from."""

    vouchers: tuple[Voucher, ...]
    cursor: SyncCursor
    has_more: bool


def month_end(day: dt.date) -> dt.date:
    """The last day of ``day``'s month."""
    following = (day.replace(day=28) + dt.timedelta(days=4)).replace(day=1)
    return following - dt.timedelta(days=1)
