"""A request budget for vendors that publish "N requests per window" and no more.

:class:`~ledgerlink.connectors.http.RateBudget` is a token bucket: right for a vendor whose
own limiter is a token bucket, wrong for one counting requests per window. After an idle
spell a bucket of ``burst`` tokens at ``rate`` lets ``burst + rate * window`` requests
through in the first window; a vendor counting per fixed or sliding window refuses the
ones over its ``limit``.

:class:`SlidingWindowBudget` starts no more than ``limit`` requests in any span of
``window / headroom`` seconds, so a vendor sees at most ``limit`` per ``window`` whether
it counts per sliding window, per fixed window (any fixed window is one of the sliding
ones) or with a token bucket of ``limit`` tokens refilled at ``limit / window`` per
second. It reaches ``headroom`` of the limit when the caller keeps it busy, and lets up
to ``limit`` requests go at once (a latency-bound reader is not held to one at a time).

It is a :class:`RateBudget` (same ``acquire``/``reserve``/``pause``/``now``), so it goes
wherever one goes.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Awaitable, Callable

from ledgerlink.connectors.http import RateBudget

__all__ = ["SlidingWindowBudget"]


class SlidingWindowBudget(RateBudget):
    """At most ``limit`` requests per key in any ``window / headroom`` seconds."""

    def __init__(
        self,
        limit: int,
        window: float,
        *,
        headroom: float = 0.97,
        spread: bool = False,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        """``spread``: requests leave evenly spaced (``span / limit`` apart) instead of up
        to ``limit`` at once: no queue at the vendor's door, whose wait would move a
        request's count into the next window (measured: bench/README.md)."""
        if limit < 1 or window <= 0:
            raise ValueError("limit must be >= 1 and window > 0")
        super().__init__(limit / window, limit, headroom=headroom, clock=clock, sleep=sleep)
        self.window_limit = limit
        #: The span the budget counts in: the vendor's window stretched by the headroom,
        #: so requests that reach the vendor closer together than they left still fit.
        self.span = window / headroom
        self.spread = spread
        #: Spacing of spread requests.
        self.gap = self.span / limit
        self._starts: dict[tuple[str, str], deque[float]] = {}
        self._planned: dict[tuple[str, str], float] = {}

    def reserve(self, key: tuple[str, str]) -> float:
        """Take the earliest start that keeps ``limit`` per span; the seconds to wait
        (:meth:`acquire`, which the HTTP client uses, logs actual starts instead)."""
        now = self._clock()
        start = self._next_start(key, now)
        if self.spread:
            self._planned[key] = start
        starts = self._starts[key]
        starts.append(start)
        if len(starts) > self.window_limit:
            # Only the last ``limit`` starts decide the next one; reservations are taken in
            # order (each later than the one before), so older ones can go.
            starts.popleft()
        return start - now

    def _next_start(self, key: tuple[str, str], now: float) -> float:
        """The earliest moment a request for ``key`` may leave, from the starts logged."""
        starts = self._starts.setdefault(key, deque())
        while starts and starts[0] <= now - self.span:
            starts.popleft()
        start = max(now, self._paused_until.get(key, now))
        if self.spread and key in self._planned:
            start = max(start, self._planned[key] + self.gap)
        if len(starts) >= self.window_limit:
            start = max(start, starts[-self.window_limit] + self.span)
        return start

    async def acquire(self, key: tuple[str, str]) -> float:
        """Wait until a request for ``key`` may leave, log it as leaving now; the seconds
        waited.

        The start logged is the moment the wait ended, not the moment planned: a busy event
        loop wakes a waiter late, and a log of planned starts would then let the next ones
        crowd in behind it. Waiters woken together check again; one goes, the others wait.
        """
        began = self._clock()
        before: float | None = None
        while True:
            now = self._clock()
            start = self._next_start(key, now)
            if before is not None and now <= before:
                # An injected sleep that did not move its clock (a test's): take the slot
                # as planned rather than wait on a clock that stands still.
                now = start
            if start <= now:
                # Spacing counts from the planned starts (a late wake does not push every
                # later request back); the window counts the actual ones.
                planned = self._planned.get(key)
                self._planned[key] = began if planned is None else max(planned + self.gap, began)
                starts = self._starts[key]
                starts.append(now)
                if len(starts) > self.window_limit:
                    starts.popleft()
                return now - began
            before = now
            await self._sleep(start - now)

    @classmethod
    def shared_window(
        cls, vendor: str, limit: int, window: float, *, spread: bool = False
    ) -> SlidingWindowBudget:
        """The process-wide budget of ``vendor`` at this limit (see :meth:`RateBudget.shared`):
        every connection to the same vendor tenant in one process draws on it."""
        budget = _SHARED.get((vendor, limit, window, spread))
        if budget is None:
            budget = _SHARED[(vendor, limit, window, spread)] = cls(limit, window, spread=spread)
        return budget


_SHARED: dict[tuple[str, int, float, bool], SlidingWindowBudget] = {}


def window_budget_for(
    vendor: str,
    limit: int,
    window: float,
    *,
    spread: bool = False,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> SlidingWindowBudget:
    """Like :func:`~ledgerlink.connectors.http.budget_for`: the process-wide budget on real
    time, a private one when the caller injected its own clock and sleep."""
    if sleep is asyncio.sleep and clock is time.monotonic:
        return SlidingWindowBudget.shared_window(vendor, limit, window, spread=spread)
    return SlidingWindowBudget(limit, window, spread=spread, sleep=sleep, clock=clock)
