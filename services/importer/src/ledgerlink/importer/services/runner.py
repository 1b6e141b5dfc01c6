"""The import runner: a background task that takes queued jobs and runs them.

The same loop runs file imports (``LedgerImportService``) and API syncs
(``LedgerSyncService``): anything that can claim a job and run it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any, Protocol


class JobSource(Protocol):
    """Claims the next runnable job (None: nothing to do) and runs a claimed one."""

    async def claim_next(self) -> Any | None:
        """The next job this runner holds, or None."""

    async def run(self, claimed: Any) -> Any:
        """Run a claimed job to its end."""


logger = logging.getLogger(__name__)


class ImportRunner:
    """Runs file imports one after another (``workers`` of them concurrently).

    Woken when a job is queued in this process; otherwise it looks for work every
    ``poll_seconds`` (jobs queued by other replicas, or left by a runner that died).
    """

    def __init__(self, service: JobSource, *, workers: int = 1, poll_seconds: float = 2.0) -> None:
        self._service = service
        self._workers = workers
        self._poll_seconds = poll_seconds
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = False

    def wake(self) -> None:
        """Look for work now (a job was just committed)."""
        self._wake.set()

    def start(self) -> None:
        """Start the worker tasks in the running loop."""
        self._stopping = False
        self._tasks = [
            asyncio.create_task(self._work(), name=f"import-runner-{index}")
            for index in range(self._workers)
        ]

    async def stop(self) -> None:
        """Stop; an import in progress is abandoned uncommitted and retried later."""
        self._stopping = True
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []

    async def _work(self) -> None:
        while not self._stopping:
            try:
                claimed = await self._service.claim_next()
                if claimed is not None:
                    await self._service.run(claimed)
                    continue
            except asyncio.CancelledError:
                raise
            except Exception:
                # The store went away mid-import: the job keeps its lease and is taken
                # over when it runs out. Back off before looking again.
                logger.exception("import runner failed; retrying after the poll interval")
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=self._poll_seconds)
