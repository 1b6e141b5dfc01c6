"""Terms of use and privacy notice: publish versions, show the current ones, record
acceptances (who, which version, when, for which environment). No commits here."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from ledgerlink.auth.domain.clock import Clock
from ledgerlink.auth.domain.environments import Action
from ledgerlink.auth.domain.terms import (
    NotCurrentError,
    Published,
    TermsKind,
    check_acceptable,
    current_versions,
)
from ledgerlink.auth.services.access import BadInput, Conflict
from ledgerlink.auth.services.environments import EnvironmentService
from ledgerlink.auth.storage.models import TermsAcceptance, TermsDocument, User
from ledgerlink.auth.storage.tenancy import TermsRepository
from ledgerlink.shared.db import as_utc

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class CurrentDocument:
    """A current version and whether the person accepted it (for this environment)."""

    document: TermsDocument
    accepted: bool


def _published(document: TermsDocument) -> Published:
    # SQLite hands back naive datetimes; the store writes UTC.
    return Published(document.id, document.kind, document.version, as_utc(document.published_at))


class TermsService:
    """Versions of the terms and privacy notice, and people's acceptances."""

    def __init__(self, session: AsyncSession, clock: Clock) -> None:
        self._terms = TermsRepository(session)
        self._environments = EnvironmentService(session, clock)
        self._clock = clock

    async def publish(
        self,
        kind: TermsKind,
        version: int,
        title: str,
        *,
        text: str | None = None,
        url: str | None = None,
        published_at: datetime | None = None,
    ) -> TermsDocument:
        """A new version (operators, seeding); it must be newer than every earlier one."""
        if (text is None) == (url is None):
            raise BadInput("A terms document has either its text or its URL.")
        for existing in await self._terms.documents():
            if existing.kind == kind and existing.version >= version:
                raise Conflict(
                    f"{kind.value} version {existing.version} exists; publish a higher one.",
                    code="version_exists",
                )
        document = TermsDocument(
            kind=kind,
            version=version,
            title=title,
            text=text,
            url=url,
            published_at=published_at or self._clock(),
        )
        await self._terms.add(document)
        logger.info("terms published", extra={"kind": kind.value, "version": version})
        return document

    async def _current(self) -> dict[TermsKind, TermsDocument]:
        documents = {document.id: document for document in await self._terms.documents()}
        latest = current_versions((_published(d) for d in documents.values()), self._clock())
        return {kind: documents[published.id] for kind, published in latest.items()}

    async def published(self) -> list[TermsDocument]:
        """The current version of each document (for a page shown before sign-in)."""
        return [document for _, document in sorted((await self._current()).items())]

    async def _check_environment(self, person: User, environment_id: uuid.UUID | None) -> None:
        if environment_id is not None:
            await self._environments.require(person, environment_id, Action.VIEW)

    async def current(
        self, person: User, environment_id: uuid.UUID | None = None
    ) -> list[CurrentDocument]:
        """The current version of each document, and whether ``person`` accepted it there."""
        await self._check_environment(person, environment_id)
        accepted = await self._terms.accepted_ids(person.id, environment_id)
        return [
            CurrentDocument(document, document.id in accepted)
            for _, document in sorted((await self._current()).items())
        ]

    async def outstanding(
        self, person: User, environment_id: uuid.UUID | None = None
    ) -> list[TermsDocument]:
        """What ``person`` must still accept (an older version's acceptance does not count)."""
        return [
            item.document
            for item in await self.current(person, environment_id)
            if not item.accepted
        ]

    async def accept(
        self, person: User, document_ids: Collection[uuid.UUID], environment_id: uuid.UUID | None
    ) -> list[CurrentDocument]:
        """Record ``person``'s acceptance of current versions (idempotent per environment)."""
        await self._check_environment(person, environment_id)
        current = await self._current()
        try:
            check_acceptable(
                {kind: _published(document) for kind, document in current.items()}, document_ids
            )
        except NotCurrentError as error:
            raise Conflict(str(error), code="not_current") from None
        already = await self._terms.accepted_ids(person.id, environment_id)
        now = self._clock()
        for document_id in dict.fromkeys(document_ids):
            if document_id in already:
                continue
            await self._terms.add(
                TermsAcceptance(
                    user_id=person.id,
                    document_id=document_id,
                    environment_id=environment_id,
                    accepted_at=now,
                )
            )
            logger.info(
                "terms accepted",
                extra={
                    "user_id": str(person.id),
                    "document_id": str(document_id),
                    "environment_id": str(environment_id) if environment_id else None,
                },
            )
        return await self.current(person, environment_id)
