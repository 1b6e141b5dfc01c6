"""The posting runner: a background task posting due payroll postings, and the schedule
that polls Nmbrs for newly finalised runs."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable

from ledgerlink.journal_exporter.services.payroll import ExportService

logger = logging.getLogger(__name__)


class PostingRunner:
    """Posts due postings (``workers`` at a time); every ``schedule_seconds`` it also asks
    Nmbrs for new runs of the mappings with automatic export.

    Woken when postings are planned in this process; otherwise it looks again every
    ``poll_seconds`` (postings planned by other replicas, retries coming due, postings
    left by a process that died once their lease runs out).
    """

    def __init__(
        self,
        service: ExportService,
        *,
        workers: int = 1,
        poll_seconds: float = 2.0,
        schedule_seconds: float = 900.0,
        monotonic: Callable[[], float] = time.monotonic,
        on_stop: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self._on_stop = on_stop
        self._service = service
        self._workers = workers
        self._poll_seconds = poll_seconds
        self._schedule_seconds = schedule_seconds
        self._monotonic = monotonic
        self._next_schedule = monotonic()
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = False

    def wake(self) -> None:
        """Look for due postings now."""
        self._wake.set()

    def start(self) -> None:
        """Start the worker tasks and the schedule in the running loop."""
        self._stopping = False
        self._tasks = [
            asyncio.create_task(self._work(), name=f"payroll-poster-{index}")
            for index in range(self._workers)
        ]
        self._tasks.append(asyncio.create_task(self._schedule(), name="payroll-schedule"))

    async def stop(self) -> None:
        """Stop; a posting in progress keeps its lease and is taken up again later."""
        self._stopping = True
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        if self._on_stop is not None:
            await self._on_stop()

    async def _work(self) -> None:
        while not self._stopping:
            try:
                if await self._service.post_next():
                    continue
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("payroll posting runner failed; looking again later")
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=self._poll_seconds)

    async def _schedule(self) -> None:
        while not self._stopping:
            if self._monotonic() >= self._next_schedule:
                self._next_schedule = self._monotonic() + self._schedule_seconds
                try:
                    if await self._service.export_new_runs():
                        self.wake()
                except asyncio.CancelledError:
                    raise
                except Exception:
                    logger.exception("polling Nmbrs for new runs failed")
            await asyncio.sleep(max(0.05, min(self._poll_seconds, self._schedule_seconds)))
