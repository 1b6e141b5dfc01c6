"""The periodic task that expires activations never authorised in their time."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from datetime import timedelta

from ledgerlink.auth.domain.clock import Clock, utc_now
from ledgerlink.auth.services.lifecycle import LifecycleService
from ledgerlink.auth.storage.connect_flows import ConnectFlowRepository
from ledgerlink.shared.db import Database
from ledgerlink.shared.messaging.outbox import Outbox

logger = logging.getLogger(__name__)


class ActivationExpiry:
    """A :class:`ledgerlink.shared.runtime.BackgroundWorker`: every ``interval``, pending
    activations older than ``ttl`` become ``expired``. Replicas may all run it: the rows
    are taken with ``SKIP LOCKED`` and each change is checked against the lifecycle.

    With ``flow_ttl`` it also forgets connection flows (``connect_flows``) started longer ago:
    an abandoned flow's sealed tokens do not stay at rest."""

    def __init__(
        self,
        db: Database,
        outbox: Outbox,
        *,
        ttl: timedelta,
        interval: float,
        clock: Clock = utc_now,
        on_commit: Callable[[], None] = lambda: None,
        flow_ttl: timedelta | None = None,
    ) -> None:
        self._flow_ttl = flow_ttl
        self._db = db
        self._outbox = outbox
        self._ttl = ttl
        self._interval = interval
        self._clock = clock
        self._on_commit = on_commit
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def run_once(self) -> int:
        """Expire what is due now; how many connections expired."""
        async with self._db.transaction() as session:
            expired = await LifecycleService(session, self._outbox, clock=self._clock).expire_stale(
                self._ttl
            )
            if self._flow_ttl is not None:
                forgotten = await ConnectFlowRepository(session).delete_started_before(
                    self._clock() - self._flow_ttl
                )
                if forgotten:
                    logger.info("connection flows forgotten", extra={"count": forgotten})
        if expired:
            self._on_commit()  # wake the outbox relay: the events are committed
            logger.info("activations expired", extra={"count": expired})
        return expired

    def start(self) -> None:
        """Start the periodic task in the running loop."""
        self._stopping.clear()
        self._task = asyncio.create_task(self._run(), name="activation-expiry")

    async def stop(self) -> None:
        """Stop after the current pass."""
        self._stopping.set()
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                await self.run_once()
            except Exception:  # logged and retried on the next pass: a periodic task
                logger.exception("expiring activations failed")
            # Waits for the period or for stop(), whichever comes first (not a sync sleep).
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), self._interval)
