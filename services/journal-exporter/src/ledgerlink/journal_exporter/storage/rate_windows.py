"""Visma.net's rate window, shared through the store by every runner and replica.

Visma.net publishes its limit as a *fixed window* per company and client: "Policy
4-fixed-window (Standard): X requests per hour for each company and client combination",
and every answer carries ``X-RateLimit-Limit`` ("the total number of calls allowed for the
specific company and client within a time window"), ``X-RateLimit-Remaining``,
``X-RateLimit-Reset`` ("how many seconds remain until the window resets") and
``X-RateLimit-Policy`` (docs.vismasoftware.no/vismanetapi/api-reference/rate-limits/).
The number itself is not published (the 15,000 calls/hour default is the historical
figure: UNCONFIRMED), nor whether windows follow each other without gaps (UNCONFIRMED: this
budget never assumes it) or whether ``Reset`` is rounded up (UNCONFIRMED: assumed, the
careful reading: an answer then proves the window ends by its arrival + Reset).

A token bucket paces evenly and overruns a fixed window when several runners share it (a
refill that arrives before the window turns is a 429). This budget counts calls in the
window instead: a call goes out while the window has calls left, and waits for the window's
end when it has none. The row per (vendor, company) holds the count, the vendor's lowest
``Remaining`` in the window, the earliest "ends by" any answer proved
and a pause a 429's ``Retry-After`` asked for; every runner of every replica takes its slot
in a short transaction on that row (``FOR UPDATE`` on PostgreSQL).
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Final

from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import select

from ledgerlink.connectors.http import RateBudget
from ledgerlink.journal_exporter.storage.models import VendorRateWindow
from ledgerlink.shared.db import Database

__all__ = ["StoreRateWindows"]

#: Added to a proven window end before calling again (the vendor's clock granularity).
END_MARGIN_S: Final = 0.01


@dataclass(frozen=True)
class _Observed:
    at: float
    limit: int | None
    remaining: int
    reset: float | None


class StoreRateWindows(RateBudget):
    """A :class:`RateBudget` that follows the vendor's fixed window through the store.

    ``rate`` x ``length`` is the guess of the window (``limit`` calls per ``length``
    seconds) until the first answer tells the real ``Limit``; ``clock`` is wall-clock epoch
    seconds (replicas compare them), injectable with ``sleep``.
    """

    follows_windows = True

    def __init__(
        self,
        db: Database,
        *,
        rate: float,
        limit: int,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        super().__init__(rate, max(1, limit), headroom=1.0, clock=time.monotonic)
        self._db = db
        self._limit = max(1, limit)
        self._length = self._limit / rate
        self._wall = clock
        self._pause_sleep = sleep
        self._pending: dict[str, list[_Observed]] = {}
        self._pauses: dict[str, float] = {}
        # One process's runners take turns on a row (SQLite has no row locks).
        self._locks: dict[str, asyncio.Lock] = {}
        #: Seconds every acquire of this process waited (what the bench reports).
        self.waited_total = 0.0

    @staticmethod
    def _key(key: tuple[str, str]) -> str:
        return f"{key[0]}|{key[1]}"[:300]

    def now(self) -> float:
        return self._wall()

    def reserve(self, key: tuple[str, str]) -> float:  # pragma: no cover - async only
        raise NotImplementedError("StoreRateWindows is awaited: use acquire()")

    def pause(self, key: tuple[str, str], seconds: float) -> None:
        """A 429's Retry-After: every runner of every replica holds back (stored at the
        next acquire)."""
        name = self._key(key)
        until = self._wall() + seconds
        self._pauses[name] = max(until, self._pauses.get(name, 0.0))

    def observe_window(
        self, key: tuple[str, str], *, limit: int | None, remaining: int, reset: float | None
    ) -> None:
        self._pending.setdefault(self._key(key), []).append(
            _Observed(self._wall(), limit, remaining, reset)
        )

    async def acquire(self, key: tuple[str, str]) -> float:
        """Wait for a call of ``key``'s window; the seconds waited."""
        name = self._key(key)
        waited = 0.0
        lock = self._locks.setdefault(name, asyncio.Lock())
        while True:
            async with lock:
                wait = await self._take(name)
            if wait <= 0:
                self.waited_total += waited
                return waited
            await self._pause_sleep(wait)
            waited += wait

    async def _take(self, name: str) -> float:
        async with self._db.transaction() as session:
            now = self._wall()
            values = {
                "key": name,
                "limit": self._limit,
                "used": 0,
                "length_seconds": self._length,
                "updated_at": now,
            }
            bind = session.bind
            if bind is not None and bind.dialect.name == "sqlite":
                await session.execute(
                    sqlite_insert(VendorRateWindow).values(**values).on_conflict_do_nothing()
                )
            else:
                await session.execute(
                    pg_insert(VendorRateWindow)
                    .values(**values)
                    .on_conflict_do_nothing(index_elements=["key"])
                )
            row: VendorRateWindow = (
                (
                    await session.execute(
                        select(VendorRateWindow)
                        .where(VendorRateWindow.key == name)
                        .with_for_update()
                    )
                )
                .scalars()
                .one()
            )
            for seen in self._pending.pop(name, []):
                _apply(row, seen)
            paused = self._pauses.pop(name, None)
            if paused is not None and paused > (row.paused_until or 0.0):
                row.paused_until = paused
            row.updated_at = now
            if row.paused_until is not None:
                if now < row.paused_until:
                    return row.paused_until - now
                # The vendor's pause is over: its window turned (a 429 spends nothing).
                row.paused_until = None
                _turn(row)
            if row.ends_at is not None and now >= row.ends_at:
                _turn(row)
            if row.used < row.limit:
                row.used += 1
                return 0.0
            if row.ends_at is not None:
                return row.ends_at - now
            # Spent, and no answer told when the window ends (answers without headers):
            # the configured length from now is the careful guess.
            row.ends_at = now + row.length_seconds
            return row.length_seconds


def _turn(row: VendorRateWindow) -> None:
    """A new window: nothing used, its end unknown until an answer says (windows are
    not assumed to follow each other without a gap). Calls the vendor already counted in
    it come back through the next answers' Remaining."""
    row.used = 0
    row.remaining = None
    row.ends_at = None


def _apply(row: VendorRateWindow, seen: _Observed) -> None:
    """One answer's headers: the limit, the calls it proves spent, and the end it proves."""
    if seen.limit is not None and seen.limit > 0:
        row.limit = seen.limit
    if row.ends_at is not None and seen.at >= row.ends_at:
        _turn(row)  # the window this row counted has surely ended
    # A Remaining higher than the last one is *not* taken for a new window: with several
    # runners, answers of one window arrive out of order (a 429 followed when it was). The
    # window turns when its proven end has passed; until then the lowest count stands.
    row.remaining = seen.remaining if row.remaining is None else min(row.remaining, seen.remaining)
    row.used = max(row.used, row.limit - seen.remaining)
    if seen.reset is not None:
        # Reset counts whole seconds, rounded up: the window ends by arrival + Reset.
        bound = seen.at + math.ceil(seen.reset) + END_MARGIN_S
        row.ends_at = bound if row.ends_at is None else min(row.ends_at, bound)
