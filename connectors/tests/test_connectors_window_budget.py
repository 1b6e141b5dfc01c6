"""The sliding-window budget: never more than the limit in any window a vendor may count,
at the headroom's share of the limit when kept busy; a vendor's pause holds it back."""

from __future__ import annotations

import asyncio
import bisect
import itertools

from ledgerlink.connectors.window_budget import SlidingWindowBudget


class _Time:
    """A clock and a sleep that advances it (waits are never slept)."""

    def __init__(self) -> None:
        self.now = 0.0

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += max(0.0, seconds)


def _most_in_any_window(starts: list[float], window: float) -> int:
    ordered = sorted(starts)
    return max(
        bisect.bisect_left(ordered, start + window) - index for index, start in enumerate(ordered)
    )


async def _run(
    budget: SlidingWindowBudget, fake: _Time, requests: int, workers: int
) -> list[float]:
    starts: list[float] = []
    queue = iter(range(requests))

    async def worker() -> None:
        for _ in queue:
            await budget.acquire(("procountor", "client"))
            starts.append(fake.now)
            await asyncio.sleep(0)

    await asyncio.gather(*(worker() for _ in range(workers)))
    return starts


async def test_never_more_than_the_limit_in_any_window_and_97_percent_of_it() -> None:
    fake = _Time()
    budget = SlidingWindowBudget(20, 1.0, clock=fake.clock, sleep=fake.sleep)
    starts = await _run(budget, fake, requests=2000, workers=1)
    # Any window of the vendor's length (sliding, hence every fixed one too): at most 20.
    assert _most_in_any_window(starts, 1.0) == 20
    rate = len(starts) / max(starts)
    assert 0.96 * 20 <= rate <= 20


async def test_up_to_the_limit_leaves_at_once_after_an_idle_spell() -> None:
    fake = _Time()
    budget = SlidingWindowBudget(20, 1.0, clock=fake.clock, sleep=fake.sleep)
    first = [budget.reserve(("v", "t")) for _ in range(21)]
    assert first[:20] == [0.0] * 20
    assert first[20] > 1.0  # the 21st waits for the first to leave the (stretched) window
    fake.now = 100.0
    assert budget.reserve(("v", "t")) == 0.0
    assert budget.reserve(("v", "other")) == 0.0  # budgets are per key


async def test_a_vendor_pause_holds_every_request_back() -> None:
    fake = _Time()
    budget = SlidingWindowBudget(5, 1.0, clock=fake.clock, sleep=fake.sleep)
    budget.pause(("v", "t"), 3.0)
    assert budget.reserve(("v", "t")) == 3.0


async def test_spread_requests_leave_evenly_spaced_within_the_same_limit() -> None:
    fake = _Time()
    budget = SlidingWindowBudget(20, 1.0, spread=True, clock=fake.clock, sleep=fake.sleep)
    starts = await _run(budget, fake, requests=400, workers=8)
    gaps = [later - earlier for earlier, later in itertools.pairwise(starts)]
    assert min(gaps) >= 1.0 / 0.97 / 20 - 1e-9
    assert _most_in_any_window(starts, 1.0) <= 20
    assert len(starts) / max(starts) >= 0.96 * 20


async def test_a_late_wake_is_logged_when_it_happened_so_no_window_overflows() -> None:
    class _Oversleeping(_Time):
        """Every third sleep wakes 0.2 s late (a busy event loop)."""

        calls = 0

        async def sleep(self, seconds: float) -> None:
            self.calls += 1
            self.now += max(0.0, seconds) + (0.2 if self.calls % 3 == 0 else 0.0)

    fake = _Oversleeping()
    budget = SlidingWindowBudget(20, 1.0, spread=True, clock=fake.clock, sleep=fake.sleep)
    starts = await _run(budget, fake, requests=300, workers=8)
    assert _most_in_any_window(starts, 1.0) <= 20


async def test_a_sleep_that_does_not_move_its_clock_cannot_hang_the_budget() -> None:
    now = 5.0
    slept: list[float] = []

    async def standing_sleep(seconds: float) -> None:
        slept.append(seconds)

    budget = SlidingWindowBudget(2, 1.0, spread=True, clock=lambda: now, sleep=standing_sleep)
    for _ in range(5):
        await asyncio.wait_for(budget.acquire(("v", "t")), timeout=1)
    assert len(slept) == 4  # every request after the first was told to wait once
