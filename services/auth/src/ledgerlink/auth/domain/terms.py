"""Terms of use and privacy notice: which versions a person still has to accept."""

from __future__ import annotations

import uuid
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum


class TermsKind(StrEnum):
    """The documents a person accepts."""

    TERMS = "terms"
    PRIVACY = "privacy"


@dataclass(frozen=True)
class Published:
    """One published version of a document."""

    id: uuid.UUID
    kind: TermsKind
    version: int
    published_at: datetime


def current_versions(documents: Iterable[Published], now: datetime) -> dict[TermsKind, Published]:
    """The latest version of each kind published by ``now`` (a scheduled one waits)."""
    latest: dict[TermsKind, Published] = {}
    for document in documents:
        if document.published_at > now:
            continue
        seen = latest.get(document.kind)
        if seen is None or document.version > seen.version:
            latest[document.kind] = document
    return latest


def outstanding(
    current: dict[TermsKind, Published], accepted: Collection[uuid.UUID]
) -> list[Published]:
    """The current documents not yet accepted: an older version's acceptance does not count."""
    return [document for _, document in sorted(current.items()) if document.id not in accepted]


class NotCurrentError(ValueError):
    """An acceptance of a document version that is not (or no longer) the current one."""

    def __init__(self, document_id: uuid.UUID) -> None:
        self.document_id = document_id
        super().__init__(
            f"document {document_id} is not a current version of the terms or privacy "
            "notice; reload them and accept the current versions"
        )


def check_acceptable(
    current: dict[TermsKind, Published], document_ids: Collection[uuid.UUID]
) -> None:
    """Every accepted id must be a current version (no accepting superseded texts)."""
    current_ids = {document.id for document in current.values()}
    for document_id in document_ids:
        if document_id not in current_ids:
            raise NotCurrentError(document_id)


#: What a kind is called in a refusal.
_NAMES = {TermsKind.TERMS: "terms of use", TermsKind.PRIVACY: "privacy notice"}


class TermsRequiredError(ValueError):
    """An admin action that needs the current terms, by someone who has not accepted them
    (for that environment). The message names each version to accept and its id."""

    def __init__(self, missing: list[Published]) -> None:
        self.missing = missing
        named = " and ".join(
            f"the {_NAMES[document.kind]} version {document.version} (id {document.id})"
            for document in missing
        )
        super().__init__(
            f"Accept {named} first: send their ids as accepted_terms, or accept them with "
            "POST /v1/terms/accept for this environment."
        )


def check_terms_accepted(
    current: dict[TermsKind, Published],
    accepted: Collection[uuid.UUID],
    offered: Collection[uuid.UUID] = (),
) -> list[uuid.UUID]:
    """Whether the current versions are accepted: recorded (``accepted``) or given with
    this request (``offered``). Returns the offered ids still to record.

    An offered id that is not a current version is :class:`NotCurrentError` (the person
    read an older text); a current version neither recorded nor offered is
    :class:`TermsRequiredError`. With nothing published, nothing is required.
    """
    check_acceptable(current, offered)
    missing = outstanding(current, set(accepted) | set(offered))
    if missing:
        raise TermsRequiredError(missing)
    return [document_id for document_id in dict.fromkeys(offered) if document_id not in accepted]
