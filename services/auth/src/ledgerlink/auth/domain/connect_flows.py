"""Rules of the in-product connection pages (seeds 002, 003, 004): pure, no I/O.

* Visma.net administrations: each needs its CoC (KvK) number or a reason for having none,
  and a sector (seed 002 step 6).
* Nmbrs' Visma.net account: a grant without write rights cannot send journals (seed 003).
* 24SevenOffice: refused logins are not retried in a loop (the vendor throttles them), and a
  company's reconciliation setup needs a start period and accounts (seed 004).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Final

from ledgerlink.shared.business_id import BusinessIdError, parse_business_id


class NoCocReason(StrEnum):
    """Why an administration has no CoC number (seed 002: "Not a company", "Test/Demo")."""

    NOT_A_COMPANY = "not_a_company"
    TEST_DEMO = "test_demo"


class Sector(StrEnum):
    """The sector an administration is filed under.

    UNCONFIRMED: seed 002 asks for "a sector" without listing them; these are the SBI
    (Standaard Bedrijfsindeling) sections the Dutch CoC register itself uses, grouped.
    """

    AGRICULTURE = "agriculture"
    MANUFACTURING = "manufacturing"
    CONSTRUCTION = "construction"
    TRADE = "trade"
    HOSPITALITY = "hospitality"
    TRANSPORT = "transport"
    IT_COMMUNICATION = "it_communication"
    FINANCE = "finance"
    REAL_ESTATE = "real_estate"
    PROFESSIONAL_SERVICES = "professional_services"
    HEALTHCARE = "healthcare"
    EDUCATION = "education"
    PUBLIC_NONPROFIT = "public_nonprofit"
    OTHER = "other"


@dataclass(frozen=True)
class AdministrationDetails:
    """What seed 002's step 6 records for one administration."""

    coc: str | None
    no_coc_reason: NoCocReason | None
    sector: Sector


#: Field-level problems: field name -> message (English; the pages translate them).
FieldErrors = dict[str, str]

COC_REQUIRED: Final = "Enter the CoC (KvK) number, or choose why there is none."
COC_AND_REASON: Final = "Enter a CoC number or choose a reason, not both."
SECTOR_REQUIRED: Final = "Choose a sector."
REASON_UNKNOWN: Final = "Choose one of the listed reasons."


def check_administration(
    coc: str | None, reason: str | None, sector: str | None
) -> tuple[AdministrationDetails | None, FieldErrors]:
    """Validate one administration's step-6 answers.

    The CoC (Kamer van Koophandel, KvK) number is 8 digits (KvK: "Het KvK-nummer bestaat uit
    8 cijfers"); spaces and dots people type are removed. Field names: ``coc``,
    ``reason``, ``sector``.
    """
    errors: FieldErrors = {}
    typed = re.sub(r"[\s.]", "", coc or "")
    chosen_reason: NoCocReason | None = None
    if reason:
        try:
            chosen_reason = NoCocReason(reason)
        except ValueError:
            errors["reason"] = REASON_UNKNOWN
    normal: str | None = None
    if typed and chosen_reason is not None:
        errors["coc"] = COC_AND_REASON
    elif typed:
        try:
            normal = parse_business_id("NL", typed).value
        except BusinessIdError as error:
            errors["coc"] = f"{error.message}."
    elif chosen_reason is None and "reason" not in errors:
        errors["coc"] = COC_REQUIRED
    chosen_sector: Sector | None = None
    try:
        chosen_sector = Sector(sector or "")
    except ValueError:
        errors["sector"] = SECTOR_REQUIRED
    if errors or chosen_sector is None:
        return None, errors
    return AdministrationDetails(normal, chosen_reason, chosen_sector), {}


def environment_business_id(provider_prefix: str, vendor_company: str, coc: str | None) -> str:
    """The business ID an imported company's environment is matched by.

    A CoC number when there is one; otherwise a vendor-scoped stand-in (``VISMA-1234567``,
    ``24SO-42``) so a company without one ("Not a company", "Test/Demo", or a vendor that
    does not publish it) still has exactly one environment.
    """
    if coc:
        return coc
    return f"{provider_prefix}-{vendor_company}"[:32]


#: The Visma.net interactive scope that writes journals (Visma Connect scopes:
#: ``vismanet_erp_interactive_api:create``).
VISMA_WRITE_SCOPE: Final = "vismanet_erp_interactive_api:create"


def grants_write(granted_scope: str | None, requested_scope: str) -> bool:
    """Whether a Visma Connect grant may write journals.

    RFC 6749 5.1: the ``scope`` of a token answer is omitted only when it equals what was
    asked; when present it is what was granted.

    UNCONFIRMED: seed 003's "the template must grant write rights" is a fact of Visma Nmbrs
    that no published API exposes; this careful version judges the grant Visma Connect
    issued (narrowed when the user's template/role may not write), as RFC 6749 3.3 allows.
    """
    scopes = (granted_scope if granted_scope is not None else requested_scope).split()
    return VISMA_WRITE_SCOPE in scopes


#: The longest wait between refused logins.
MAX_BACKOFF: Final = timedelta(minutes=15)


def next_login_allowed(failures: int, last_failed_at: datetime, base: timedelta) -> datetime:
    """When a login may be tried again after ``failures`` refused ones in a row.

    Doubling from ``base``: one refusal waits ``base``, two ``2 * base`` ... at most 15 min.
    """
    if failures <= 0:
        return last_failed_at
    wait: timedelta = min(base * (2 ** min(failures - 1, 10)), MAX_BACKOFF)
    allowed: datetime = last_failed_at + wait
    return allowed


_PERIOD: Final = re.compile(r"^(\d{4})-(0[1-9]|1[0-2])$")
_ACCOUNT: Final = re.compile(r"^\d{4,8}$")


@dataclass(frozen=True)
class ReconciliationSetup:
    """A 24SevenOffice company's setup wizard answers (seed 004)."""

    start_period: str
    accounts: tuple[str, ...]


def check_reconciliation_setup(
    start_period: str | None, accounts: str | None, known_accounts: set[str] | None
) -> tuple[ReconciliationSetup | None, FieldErrors]:
    """Validate the setup wizard: ``start_period`` as YYYY-MM, accounts as numbers
    (comma or space separated) that exist in the company's chart (when known)."""
    errors: FieldErrors = {}
    period = (start_period or "").strip()
    if not _PERIOD.match(period):
        errors["start_period"] = "Enter the first period to reconcile as YYYY-MM, e.g. 2025-01."
    numbers = [part for part in re.split(r"[\s,;]+", accounts or "") if part]
    if not numbers:
        errors["accounts"] = "Enter at least one account number to reconcile."
    else:
        bad = [number for number in numbers if not _ACCOUNT.match(number)]
        unknown = (
            [number for number in numbers if number not in known_accounts]
            if known_accounts is not None
            else []
        )
        if bad:
            errors["accounts"] = f"Account numbers are 4 to 8 digits: {', '.join(bad)}."
        elif unknown:
            errors["accounts"] = f"Not in this company's chart of accounts: {', '.join(unknown)}."
    if errors:
        return None, errors
    return ReconciliationSetup(period, tuple(dict.fromkeys(numbers))), {}
