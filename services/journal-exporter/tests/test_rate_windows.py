"""Visma.net's fixed window shared through the store: what one answer's headers prove, the
count every replica draws on, and a 429's pause for all of them (an injected clock, no
waiting: the fake sleep moves the clock)."""

from __future__ import annotations

import asyncio

from ledgerlink.journal_exporter.storage.rate_windows import END_MARGIN_S, StoreRateWindows
from ledgerlink.shared.db import Database

KEY = ("vismanet", "company-1")


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def replica(db: Database, clock: Clock) -> StoreRateWindows:
    return StoreRateWindows(db, rate=1.0, limit=3, clock=clock, sleep=clock.sleep)


async def test_replicas_share_the_window_and_wait_for_the_end_the_headers_prove(
    db: Database,
) -> None:
    clock = Clock()
    first, second = replica(db, clock), replica(db, clock)
    # Visma.net says: 4 calls per window, 3 left, the window ends within 2 s.
    assert await first.acquire(KEY) == 0
    first.observe_window(KEY, limit=4, remaining=3, reset=2)
    clock.now += 0.1
    assert await second.acquire(KEY) == 0  # the second replica counts on the same row
    assert await first.acquire(KEY) == 0  # 3 of 4 (the first answer's Limit is applied)
    assert await second.acquire(KEY) == 0  # 4 of 4
    waited = await first.acquire(KEY)
    # Not before arrival + Reset (never early: no 429), the margin included.
    assert abs(waited - (2 - 0.1 + END_MARGIN_S)) < 1e-6
    assert await second.acquire(KEY) == 0  # the new window's second call


async def test_answers_out_of_order_do_not_free_calls_before_the_proven_end(
    db: Database,
) -> None:
    clock = Clock()
    budget = replica(db, clock)
    for _ in range(2):
        assert await budget.acquire(KEY) == 0
    # Two runners' answers of one window, the later count first (Remaining 1, then 2).
    budget.observe_window(KEY, limit=3, remaining=1, reset=30)
    budget.observe_window(KEY, limit=3, remaining=2, reset=30)
    assert await budget.acquire(KEY) == 0  # the third and last call of the window
    assert abs(await budget.acquire(KEY) - (30 + END_MARGIN_S)) < 1e-6
    # In the next window (one call of ours taken) the vendor counts two: one call is left.
    budget.observe_window(KEY, limit=3, remaining=1, reset=30)
    assert await budget.acquire(KEY) == 0
    assert abs(await budget.acquire(KEY) - (30 + END_MARGIN_S)) < 1e-6


async def test_a_429s_retry_after_holds_back_every_replica(db: Database) -> None:
    clock = Clock()
    stored, go_on = asyncio.Event(), asyncio.Event()

    async def held(seconds: float) -> None:
        stored.set()
        await go_on.wait()

    first = StoreRateWindows(db, rate=1.0, limit=3, clock=clock, sleep=held)
    second = replica(db, clock)
    assert await first.acquire(KEY) == 0
    first.pause(KEY, 5)  # a 429 with Retry-After: 5 ...
    retry = asyncio.create_task(first.acquire(KEY))  # ... its retry stores the pause
    await asyncio.wait_for(stored.wait(), timeout=30)
    assert await second.acquire(KEY) == 5  # the other replica holds back as long
    go_on.set()
    assert await asyncio.wait_for(retry, timeout=30) == 5
