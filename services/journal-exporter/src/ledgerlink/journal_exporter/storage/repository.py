"""All SQL of the journal exporter."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any, cast

from sqlalchemy import and_, func, insert, or_, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import QueryableAttribute, defer
from sqlmodel import col, select

from ledgerlink.journal_exporter.storage.models import (
    Connection,
    Journal,
    JournalLine,
    JournalStatus,
    PayrollMapping,
    PayrollPosting,
    PayrollRunMark,
    PostingStatus,
)
from ledgerlink.shared.messaging.read_models import ConnectionReadModelRepository

#: A journal's payload holds every line as received: loaded only when asked for.
_PAYLOAD = cast("QueryableAttribute[Any]", Journal.payload)


class JournalRepository:
    """Received journals and the lines of accepted ones."""

    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def find_accepted(self, source: str, journal_id: str) -> Journal | None:
        """The accepted journal with this source and journal id, if any (no payload)."""
        result = await self._session.execute(
            select(Journal)
            .where(
                Journal.source == source,
                Journal.journal_id == journal_id,
                Journal.status == JournalStatus.ACCEPTED,
            )
            .options(defer(_PAYLOAD))
        )
        return result.scalars().first()

    async def add(self, journal: Journal) -> Journal:
        """Insert a received journal."""
        self._session.add(journal)
        await self._session.flush()
        return journal

    async def add_lines(self, lines: Sequence[JournalLine]) -> None:
        """Insert an accepted journal's lines (in bulk: journals can be long)."""
        if lines:
            await self._session.execute(insert(JournalLine), [line.model_dump() for line in lines])

    async def get(self, stored_id: uuid.UUID) -> Journal | None:
        """One journal by our id."""
        return await self._session.get(Journal, stored_id)

    async def lines_of(self, stored_id: uuid.UUID) -> list[JournalLine]:
        """A journal's stored lines, in order."""
        result = await self._session.execute(
            select(JournalLine)
            .where(JournalLine.journal_row_id == stored_id)
            .order_by(col(JournalLine.line_no))
        )
        return list(result.scalars().all())

    async def list_for_business_id(
        self, business_id: str, *, period: str | None, limit: int
    ) -> list[Journal]:
        """The business's journals (of one period, if given), newest first.

        Their payloads are not loaded (a journal can hold many lines).
        """
        statement = (
            select(Journal).where(Journal.business_id == business_id).options(defer(_PAYLOAD))
        )
        if period is not None:
            statement = statement.where(Journal.period == period)
        result = await self._session.execute(
            statement.order_by(col(Journal.received_at).desc(), col(Journal.id)).limit(limit)
        )
        return list(result.scalars().all())


class ConnectionRepository(ConnectionReadModelRepository[Connection]):
    """Activated connections this service knows of (the shared read model's rules)."""

    def __init__(self, session: AsyncSession) -> None:
        super().__init__(session, Connection)

    async def of_providers(self, providers: Sequence[str], *, limit: int) -> list[Connection]:
        """Connections of these providers, by company name (at most ``limit``)."""
        rows = await self._session.execute(
            select(Connection)
            .where(col(Connection.provider).in_(providers))
            .order_by(col(Connection.company_name), col(Connection.connection_id))
            .limit(limit)
        )
        return list(rows.scalars())


class PayrollMappingRepository:
    """Mapping versions (the highest version of a mapping is the current one)."""

    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def add(self, mapping: PayrollMapping) -> PayrollMapping:
        """Insert one version (a second writer of the same version fails on the key)."""
        self._session.add(mapping)
        await self._session.flush()
        return mapping

    async def current(self, mapping_id: uuid.UUID) -> PayrollMapping | None:
        """The newest version of a mapping."""
        result = await self._session.execute(
            select(PayrollMapping)
            .where(PayrollMapping.mapping_id == mapping_id)
            .order_by(col(PayrollMapping.version).desc())
            .limit(1)
        )
        return result.scalars().first()

    async def versions(self, mapping_id: uuid.UUID) -> list[PayrollMapping]:
        """Every version of a mapping, oldest first."""
        result = await self._session.execute(
            select(PayrollMapping)
            .where(PayrollMapping.mapping_id == mapping_id)
            .order_by(col(PayrollMapping.version))
        )
        return list(result.scalars().all())

    async def version(self, mapping_id: uuid.UUID, version: int) -> PayrollMapping | None:
        """One version of a mapping."""
        return await self._session.get(PayrollMapping, (mapping_id, version))

    async def all_current(self) -> list[PayrollMapping]:
        """The current version of every mapping, by name."""
        newest = (
            select(
                PayrollMapping.mapping_id,
                func.max(PayrollMapping.version).label("version"),
            )
            .group_by(col(PayrollMapping.mapping_id))
            .subquery()
        )
        result = await self._session.execute(
            select(PayrollMapping)
            .join(
                newest,
                and_(
                    col(PayrollMapping.mapping_id) == newest.c.mapping_id,
                    col(PayrollMapping.version) == newest.c.version,
                ),
            )
            .order_by(col(PayrollMapping.name), col(PayrollMapping.mapping_id))
        )
        return list(result.scalars().all())

    async def for_journal_business_id(self, business_id: str) -> PayrollMapping | None:
        """The mapping whose current version posts ``journal.ready`` journals of this
        business, if any."""
        for mapping in await self.all_current():
            if mapping.journal_business_id == business_id:
                return mapping
        return None

    async def for_nmbrs_company(self, connection_id: uuid.UUID, company_id: str) -> list[uuid.UUID]:
        """Ids of mappings (any version) of this Nmbrs company."""
        result = await self._session.execute(
            select(PayrollMapping.mapping_id)
            .where(
                PayrollMapping.nmbrs_connection_id == connection_id,
                PayrollMapping.nmbrs_company_id == company_id,
            )
            .distinct()
        )
        return list(result.scalars().all())


class PayrollPostingRepository:
    """Postings: intents, outcomes and their evidence."""

    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def add_if_new(self, posting: PayrollPosting) -> bool:
        """Insert a planned posting unless its identity exists (True when inserted)."""
        values = posting.model_dump()
        bind = self._session.bind
        if bind is not None and bind.dialect.name == "sqlite":
            lite = sqlite_insert(PayrollPosting).values(**values).on_conflict_do_nothing()
            result = await self._session.execute(lite)
        else:
            statement = (
                pg_insert(PayrollPosting)
                .values(**values)
                .on_conflict_do_nothing(index_elements=["posting_key"])
            )
            result = await self._session.execute(statement)
        return bool(getattr(result, "rowcount", 0))

    async def get(self, posting_id: uuid.UUID) -> PayrollPosting | None:
        """One posting by id."""
        return await self._session.get(PayrollPosting, posting_id)

    async def by_key(self, posting_key: str) -> PayrollPosting | None:
        """The posting with this identity."""
        result = await self._session.execute(
            select(PayrollPosting).where(PayrollPosting.posting_key == posting_key)
        )
        return result.scalars().first()

    async def run_ids_of(self, mapping_id: uuid.UUID) -> set[str]:
        """The runs of a mapping that have postings."""
        result = await self._session.execute(
            select(PayrollPosting.run_id).where(PayrollPosting.mapping_id == mapping_id).distinct()
        )
        return set(result.scalars().all())

    async def claim_due(
        self, now: datetime, lease_until: datetime, skip: set[uuid.UUID]
    ) -> PayrollPosting | None:
        """Take the oldest due posting (pending, or retrying whose time came) whose lease is
        free, and lease it until ``lease_until``; None when nothing is due.

        ``FOR UPDATE SKIP LOCKED`` keeps two replicas off the same row; the lease keeps it
        theirs while the vendor is called outside any transaction.
        """
        statement = (
            select(PayrollPosting)
            .where(
                col(PayrollPosting.status).in_(
                    [PostingStatus.PENDING, PostingStatus.RETRYING, PostingStatus.RELEASING]
                ),
                or_(
                    col(PayrollPosting.next_attempt_at).is_(None),
                    col(PayrollPosting.next_attempt_at) <= now,
                ),
                or_(
                    col(PayrollPosting.lease_until).is_(None),
                    col(PayrollPosting.lease_until) <= now,
                ),
            )
            .order_by(col(PayrollPosting.created_at), col(PayrollPosting.period))
            .limit(1)
            .with_for_update(skip_locked=True)
        )
        if skip:
            statement = statement.where(col(PayrollPosting.id).not_in(skip))
        posting: PayrollPosting | None = (await self._session.execute(statement)).scalars().first()
        if posting is None:
            return None
        # Compare-and-set: only one claimer's UPDATE finds the lease still free (SQLite has
        # no row locks, and two runners may have read the same row).
        taken = await self._session.execute(
            update(PayrollPosting)
            .where(
                col(PayrollPosting.id) == posting.id,
                or_(
                    col(PayrollPosting.lease_until).is_(None),
                    col(PayrollPosting.lease_until) <= now,
                ),
            )
            .values(lease_until=lease_until)
            .execution_options(synchronize_session=False)
        )
        if getattr(taken, "rowcount", 0) != 1:
            return None
        await self._session.refresh(posting)
        return posting

    async def next_due_at(self) -> datetime | None:
        """When the next waiting posting becomes due (None: nothing waits)."""
        result = await self._session.execute(
            select(func.min(PayrollPosting.next_attempt_at)).where(
                col(PayrollPosting.status).in_(
                    [PostingStatus.PENDING, PostingStatus.RETRYING, PostingStatus.RELEASING]
                )
            )
        )
        value: datetime | None = result.scalar_one_or_none()
        return value

    async def find(
        self,
        *,
        mapping_id: uuid.UUID | None = None,
        status: PostingStatus | None = None,
        run_id: str | None = None,
        limit: int = 1000,
    ) -> list[PayrollPosting]:
        """Postings (without their source and payload bodies), by period and run."""
        statement = select(PayrollPosting).options(
            defer(cast("QueryableAttribute[Any]", PayrollPosting.source)),
            defer(cast("QueryableAttribute[Any]", PayrollPosting.payload)),
        )
        if mapping_id is not None:
            statement = statement.where(PayrollPosting.mapping_id == mapping_id)
        if status is not None:
            statement = statement.where(PayrollPosting.status == status)
        if run_id is not None:
            statement = statement.where(PayrollPosting.run_id == run_id)
        result = await self._session.execute(
            statement.order_by(
                col(PayrollPosting.period), col(PayrollPosting.run_id), col(PayrollPosting.kind)
            ).limit(limit)
        )
        return list(result.scalars().all())

    async def with_bodies(self, mapping_id: uuid.UUID | None) -> list[PayrollPosting]:
        """Postings with their payloads (the auditor's export)."""
        statement = select(PayrollPosting)
        if mapping_id is not None:
            statement = statement.where(PayrollPosting.mapping_id == mapping_id)
        result = await self._session.execute(
            statement.order_by(col(PayrollPosting.period), col(PayrollPosting.run_id))
        )
        return list(result.scalars().all())


class PayrollRunMarkRepository:
    """How far the schedule has looked at each mapping's runs, per year."""

    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def of_mapping(self, mapping_id: uuid.UUID) -> dict[int, PayrollRunMark]:
        """The marks of one mapping by year."""
        result = await self._session.execute(
            select(PayrollRunMark).where(PayrollRunMark.mapping_id == mapping_id)
        )
        return {mark.year: mark for mark in result.scalars().all()}

    async def save(self, mark: PayrollRunMark) -> None:
        """Insert or update one mark."""
        await self._session.merge(mark)
