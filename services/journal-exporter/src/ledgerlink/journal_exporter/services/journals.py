"""Received journals: review, store as received, answer accepted or rejected."""

from __future__ import annotations

import logging
from dataclasses import asdict

from sqlalchemy.ext.asyncio import AsyncSession

from ledgerlink.journal_exporter.domain.journal_review import (
    EarlierAcceptance,
    JournalReview,
    rejection_message,
    review_journal,
)
from ledgerlink.journal_exporter.storage.models import Journal, JournalLine, JournalStatus
from ledgerlink.journal_exporter.storage.repository import JournalRepository
from ledgerlink.shared.db import as_utc
from ledgerlink.shared.events import (
    JournalAcceptedV1,
    JournalProblemV1,
    JournalReadyV1,
    JournalRejectedV1,
)
from ledgerlink.shared.messaging.outbox import Outbox

logger = logging.getLogger(__name__)

#: Problems listed in one ``journal.rejected`` event (and its message). A long journal can
#: have a problem per line; all of them are stored, but an event must stay well below the
#: brokers' record size limit or it could never be published.
MAX_PROBLEMS_PER_EVENT = 100


class JournalService:
    """Turns a ``journal.ready`` event into a stored journal and its answer.

    Runs inside the caller's transaction; the events it emits go to the outbox and leave
    only if that transaction commits.
    """

    def __init__(self, session: AsyncSession, outbox: Outbox) -> None:
        self._session = session
        self._outbox = outbox
        self._journals = JournalRepository(session)

    async def receive(self, journal: JournalReadyV1, *, event_id: str) -> Journal:
        """Review, store and answer one journal."""
        earlier = await self._journals.find_accepted(journal.source, journal.journal_id)
        review = review_journal(
            source=journal.source,
            journal_id=journal.journal_id,
            period=journal.period,
            corrects_period=journal.corrects_period,
            lines=journal.lines,
            business_id=journal.business_id,
            earlier=None
            if earlier is None
            else EarlierAcceptance(
                stored_id=earlier.id,
                run_reference=earlier.run_reference,
                received_at=as_utc(earlier.received_at),
            ),
        )
        stored = await self._journals.add(
            Journal(
                journal_id=journal.journal_id,
                source=journal.source,
                business_id=journal.business_id,
                period=journal.period,
                corrects_period=journal.corrects_period,
                run_reference=journal.run_reference,
                status=JournalStatus.ACCEPTED if review.accepted else JournalStatus.REJECTED,
                line_count=len(journal.lines),
                total_debit=review.total_debit,
                total_credit=review.total_credit,
                problems=[asdict(problem) for problem in review.problems],
                payload=journal.model_dump(mode="json"),
                received_event_id=event_id,
            )
        )
        if review.accepted:
            await self._accept(journal, stored, review)
        else:
            await self._reject(journal, stored, review)
        return stored

    async def _accept(
        self, journal: JournalReadyV1, stored: Journal, review: JournalReview
    ) -> None:
        if review.line_amounts is None or review.total_debit is None or review.total_credit is None:
            raise AssertionError("an accepted journal has valid amounts and totals")
        await self._journals.add_lines(
            [
                JournalLine(
                    journal_row_id=stored.id,
                    line_no=number,
                    account=line.account,
                    debit=amounts.debit,
                    credit=amounts.credit,
                    cost_center=line.cost_center,
                    cost_unit=line.cost_unit,
                    description=line.description,
                )
                for number, (line, amounts) in enumerate(
                    zip(journal.lines, review.line_amounts, strict=True), start=1
                )
            ]
        )
        await self._outbox.add(
            self._session,
            JournalAcceptedV1(
                journal_id=journal.journal_id,
                business_id=journal.business_id,
                period=journal.period,
                corrects_period=journal.corrects_period,
                line_count=len(journal.lines),
                total_debit=format(review.total_debit, "f"),
                total_credit=format(review.total_credit, "f"),
            ),
            key=journal.business_id,
            subject=journal.journal_id,
        )
        logger.info(
            "journal accepted",
            extra={
                "stored_id": str(stored.id),
                "journal_id": journal.journal_id,
                "source": journal.source,
                "line_count": len(journal.lines),
            },
        )

    async def _reject(
        self, journal: JournalReadyV1, stored: Journal, review: JournalReview
    ) -> None:
        reason_code = review.reason_code or "invalid_journal"
        await self._outbox.add(
            self._session,
            JournalRejectedV1(
                journal_id=journal.journal_id,
                business_id=journal.business_id,
                reason_code=reason_code,
                message=rejection_message(review.problems, limit=MAX_PROBLEMS_PER_EVENT),
                problems=tuple(
                    JournalProblemV1(code=problem.code, message=problem.message, line=problem.line)
                    for problem in review.problems[:MAX_PROBLEMS_PER_EVENT]
                ),
            ),
            key=journal.business_id,
            subject=journal.journal_id,
        )
        logger.info(
            "journal rejected",
            extra={
                "stored_id": str(stored.id),
                "journal_id": journal.journal_id,
                "source": journal.source,
                "reason_code": reason_code,
                "problem_count": len(review.problems),
            },
        )
