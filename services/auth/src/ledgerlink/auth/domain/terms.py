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
