"""Rate limits the vendors enforce: token buckets and one-request-at-a-time."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from ledgerlink.sandbox.errors import SandboxBusy, SandboxRateLimited

__all__ = ["OneAtATime", "SlidingWindow", "TokenBucket"]


class TokenBucket:
    """One token bucket per key: ``rate`` tokens per second, at most ``burst`` stored.

    :meth:`take` spends a token or raises :class:`SandboxRateLimited` with the seconds until
    the next token. ``clock`` is injectable so tests need no sleeps.
    """

    def __init__(
        self, rate: float, burst: int, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("rate must be > 0 and burst >= 1")
        self.rate = rate
        self.burst = burst
        self._clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}

    def take(self, key: str, tokens: float = 1.0) -> None:
        """Spend ``tokens`` from ``key``'s bucket or raise :class:`SandboxRateLimited`."""
        now = self._clock()
        level, last = self._buckets.get(key, (float(self.burst), now))
        level = min(float(self.burst), level + (now - last) * self.rate)
        if level < tokens:
            self._buckets[key] = (level, now)
            raise SandboxRateLimited((tokens - level) / self.rate)
        self._buckets[key] = (level - tokens, now)

    def available(self, key: str) -> float:
        """Tokens ``key`` could spend now."""
        now = self._clock()
        level, last = self._buckets.get(key, (float(self.burst), now))
        return min(float(self.burst), level + (now - last) * self.rate)

    def reset(self) -> None:
        """Refill every bucket."""
        self._buckets.clear()


class SlidingWindow:
    """At most ``limit`` requests per key in any ``window`` seconds (a sliding log).

    The strictest way to read "N requests per second": a fixed-window counter or a token
    bucket of N accepts everything this accepts. Same interface as :class:`TokenBucket`.
    """

    def __init__(
        self, limit: int, window: float, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if limit < 1 or window <= 0:
            raise ValueError("limit must be >= 1 and window > 0")
        self.limit = limit
        self.window = window
        self._clock = clock
        self._logs: dict[str, deque[float]] = {}

    def _log(self, key: str, now: float) -> deque[float]:
        log = self._logs.setdefault(key, deque())
        while log and log[0] <= now - self.window:
            log.popleft()
        return log

    def take(self, key: str, tokens: float = 1.0) -> None:
        """Count a request for ``key`` or raise :class:`SandboxRateLimited`."""
        del tokens  # every request counts one
        now = self._clock()
        log = self._log(key, now)
        if len(log) >= self.limit:
            raise SandboxRateLimited(log[0] + self.window - now)
        log.append(now)

    def available(self, key: str) -> float:
        """Requests ``key`` could send now."""
        return float(self.limit - len(self._log(key, self._clock())))

    def reset(self) -> None:
        """Forget every request."""
        self._logs.clear()


class OneAtATime:
    """Refuses a second concurrent request for the same key (:class:`SandboxBusy`).

    Single-threaded asyncio: the check and the mark happen without an ``await`` between
    them, so no lock is needed.
    """

    def __init__(self) -> None:
        self._active: set[str] = set()

    @asynccontextmanager
    async def hold(self, key: str) -> AsyncIterator[None]:
        """Hold ``key`` for the duration of the block, or raise :class:`SandboxBusy`."""
        if key in self._active:
            raise SandboxBusy(key)
        self._active.add(key)
        try:
            yield
        finally:
            self._active.discard(key)

    def busy(self, key: str) -> bool:
        """Whether a request for ``key`` is in progress."""
        return key in self._active

    def reset(self) -> None:
        """Forget every held key."""
        self._active.clear()
