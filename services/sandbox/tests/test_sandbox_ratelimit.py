"""Token buckets and one-at-a-time, on an injected clock (no sleeps)."""

from __future__ import annotations

import pytest

from ledgerlink.sandbox.errors import SandboxBusy, SandboxRateLimited
from ledgerlink.sandbox.ratelimit import OneAtATime, SlidingWindow, TokenBucket


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_burst_then_refusal_with_the_time_to_the_next_token() -> None:
    clock = FakeClock()
    bucket = TokenBucket(rate=2, burst=3, clock=clock)
    for _ in range(3):
        bucket.take("tenant-a")
    with pytest.raises(SandboxRateLimited) as refused:
        bucket.take("tenant-a")
    assert refused.value.retry_after == pytest.approx(0.5)
    assert refused.value.retry_after_header == "1"
    clock.now += 0.5
    bucket.take("tenant-a")
    with pytest.raises(SandboxRateLimited):
        bucket.take("tenant-a")


def test_keys_are_independent_and_refill_is_capped_at_burst() -> None:
    clock = FakeClock()
    bucket = TokenBucket(rate=1, burst=2, clock=clock)
    bucket.take("a")
    bucket.take("a")
    bucket.take("b")
    clock.now += 100
    assert bucket.available("a") == 2
    bucket.take("a")
    bucket.take("a")
    with pytest.raises(SandboxRateLimited):
        bucket.take("a")
    bucket.reset()
    assert bucket.available("a") == 2


def test_invalid_bucket_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="rate"):
        TokenBucket(rate=0, burst=1)


async def test_one_at_a_time_refuses_a_concurrent_request_for_the_same_key() -> None:
    guard = OneAtATime()
    async with guard.hold("customer-1"):
        assert guard.busy("customer-1")
        with pytest.raises(SandboxBusy) as busy:
            async with guard.hold("customer-1"):
                pass
        assert busy.value.key == "customer-1"
        async with guard.hold("customer-2"):
            assert guard.busy("customer-2")
    assert not guard.busy("customer-1")
    async with guard.hold("customer-1"):
        assert guard.busy("customer-1")


async def test_one_at_a_time_releases_after_an_error() -> None:
    guard = OneAtATime()
    with pytest.raises(RuntimeError):
        async with guard.hold("c"):
            raise RuntimeError("boom")
    assert not guard.busy("c")


def test_sliding_window_refuses_more_than_the_limit_in_any_window() -> None:
    clock = FakeClock()
    window = SlidingWindow(limit=3, window=1.0, clock=clock)
    window.take("client")
    clock.now += 0.5
    window.take("client")
    window.take("client")
    # A token bucket of 3 at 3/s would have a token again after 1/3 s; the window does not
    # until the first request is a whole second old.
    clock.now += 0.4
    with pytest.raises(SandboxRateLimited) as refused:
        window.take("client")
    assert refused.value.retry_after == pytest.approx(0.1)
    assert window.available("other") == 3
    clock.now += 0.1
    window.take("client")
    assert window.available("client") == 0
    window.reset()
    assert window.available("client") == 3
