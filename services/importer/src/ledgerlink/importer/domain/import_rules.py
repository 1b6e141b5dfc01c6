"""What makes an import request one the importer can carry out.

Pure domain logic: no I/O. The vocabulary (providers, import scopes) is the one of the
v1 event contracts.

Rules for an explicit import request (``ledgerlink.import.requested.v1``):

* The scope names at least one part of the books. Repeated parts are dropped and the
  parts are put in their canonical order (companies, accounts, dimensions, ledger).
* A file-based provider (SAF-T, SIE) has no API to read from: the request must say
  where the uploaded file is (``file_location``).
* When the importer already knows the connection (from its activation), the request
  must name the same business ID and provider. An unknown connection is allowed:
  events on different topics may arrive in any order.

A request that breaks a rule can never succeed however often it is retried, so the
errors raised here are permanent (:class:`ImportRequestError` and its subclasses).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass

from ledgerlink.shared.events import ALL_IMPORT_SCOPES, ImportScope, Provider

__all__ = [
    "BusinessIdMismatchError",
    "EmptyScopeError",
    "FileLocationMissingError",
    "ImportRequestError",
    "KnownConnection",
    "ProviderMismatchError",
    "ReplaceReasonMissingError",
    "check_import_request",
    "normalise_scope",
    "replace_reason_of",
]


class ImportRequestError(ValueError):
    """An import request that can never be carried out; retrying cannot help.

    ``reason_code`` is stable and machine-readable; ``message`` (also ``str(error)``)
    says what is wrong in words.
    """

    reason_code: str = "invalid_import_request"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class FileLocationMissingError(ImportRequestError):
    """A file-based provider was asked to import without a file location."""

    reason_code = "file_location_missing"


class BusinessIdMismatchError(ImportRequestError):
    """The request names another business ID than the connection's."""

    reason_code = "business_id_mismatch"


class ProviderMismatchError(ImportRequestError):
    """The request names another provider than the connection's."""

    reason_code = "provider_mismatch"


class ReplaceReasonMissingError(ImportRequestError):
    """A replacement of a stored fiscal year was asked for without saying why."""

    reason_code = "replace_reason_missing"


def replace_reason_of(*, replace: bool, reason: str | None) -> str | None:
    """The reason recorded for an explicit replacement; None when none was asked for.

    Asking to overwrite a year's books (with less data, or an older state of them)
    must say why: the reason is kept on the import job as its audit trail.
    """
    reason = (reason or "").strip() or None
    if replace and reason is None:
        raise ReplaceReasonMissingError(
            "replace=true needs a reason (why the stored fiscal year may be replaced by a "
            "file that holds less or is older); it is recorded on the import job"
        )
    return reason if replace else None


class EmptyScopeError(ImportRequestError):
    """The request asks to import nothing."""

    reason_code = "empty_scope"


@dataclass(frozen=True)
class KnownConnection:
    """What the importer knows of a connection from its activation."""

    connection_id: uuid.UUID
    business_id: str
    provider: str


def normalise_scope(
    scope: Iterable[ImportScope], *, connection_id: uuid.UUID
) -> tuple[ImportScope, ...]:
    """The scope without repeats, in canonical order; :class:`EmptyScopeError` if empty."""
    wanted = set(scope)
    normalised = tuple(part for part in ALL_IMPORT_SCOPES if part in wanted)
    if not normalised:
        raise EmptyScopeError(
            f"import request for connection {connection_id} has an empty scope; "
            f"expected one or more of {', '.join(ALL_IMPORT_SCOPES)}"
        )
    return normalised


def check_import_request(
    *,
    connection_id: uuid.UUID,
    business_id: str,
    provider: Provider,
    scope: Iterable[ImportScope],
    file_location: str | None,
    known: KnownConnection | None,
) -> tuple[ImportScope, ...]:
    """Check one import request against the rules; return its normalised scope.

    ``known`` is the connection as the importer knows it, or None if no activation has
    been seen for ``connection_id`` (yet).

    Raises:
        ImportRequestError: a subclass naming the rule that was broken.
    """
    normalised = normalise_scope(scope, connection_id=connection_id)
    if provider.is_file_based and file_location is None:
        raise FileLocationMissingError(
            f"import request for connection {connection_id} has no file_location; "
            f"{provider.value} is a file-based provider, so the import needs the location "
            "of the uploaded file"
        )
    if known is not None:
        if known.business_id != business_id:
            raise BusinessIdMismatchError(
                f"import request for connection {connection_id} names business ID "
                f"{business_id} but the connection belongs to {known.business_id}"
            )
        if known.provider != provider.value:
            raise ProviderMismatchError(
                f"import request for connection {connection_id} names provider "
                f"{provider.value} but the connection's provider is {known.provider}"
            )
    return normalised
