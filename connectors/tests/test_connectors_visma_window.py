"""Visma.net's fixed rate window as the connector reads it from X-RateLimit headers."""

from __future__ import annotations

import math

import pytest

from ledgerlink.connectors.vismanet import WINDOW_MARGIN_S, WindowTracker


def answer(tracker: WindowTracker, now: float, remaining: int, window_end: float) -> None:
    """An answer read at ``now`` from a vendor whose window ends at ``window_end``."""
    tracker.observe(now, 10, remaining, float(math.ceil(window_end - now)))


def test_nothing_known_before_the_first_answer() -> None:
    assert WindowTracker(rate=10).resume_at() is None


def test_the_window_ends_by_its_first_answer_plus_its_length() -> None:
    # 10 calls per second: a 1 s window that began by 100.3 ends by 101.3, although
    # Reset ("1") alone only says "by 101.3 + up to a second" at every later answer.
    tracker = WindowTracker(rate=10)
    for i in range(10):
        answer(tracker, 100.3 + i * 0.05, 9 - i, window_end=101.0)
    assert tracker.resume_at() == pytest.approx(100.3 + 1.0 * (1 + 1e-4) + WINDOW_MARGIN_S)


def test_reset_bounds_the_end_when_the_length_is_unknown() -> None:
    tracker = WindowTracker(rate=10)
    tracker.observe(50.0, None, 0, 3.0)
    assert tracker.resume_at() == pytest.approx(53.0 + WINDOW_MARGIN_S)


def test_the_smallest_arrival_plus_reset_wins() -> None:
    # A 60 s window (10 calls at 1/6 calls/s) ending at 60: Reset ticks from 3 to 2
    # between 57.4 and 58.1, which pins the end to 60.1 at the latest.
    tracker = WindowTracker(rate=10 / 60)
    for now, remaining in ((56.5, 3), (57.4, 2), (58.1, 1), (58.6, 0)):
        answer(tracker, now, remaining, window_end=60.0)
    assert tracker.ends_by == pytest.approx(60.1)
    assert tracker.resume_at() == pytest.approx(60.1 + WINDOW_MARGIN_S)


def test_a_new_window_starts_a_new_estimate() -> None:
    tracker = WindowTracker(rate=10)
    answer(tracker, 10.2, 0, window_end=11.0)
    answer(tracker, 11.25, 9, window_end=12.0)  # Remaining went up: a new window
    assert tracker.first_seen == 11.25
    assert tracker.ends_by == pytest.approx(12.25)


def test_an_answer_after_the_window_surely_ended_starts_a_new_one() -> None:
    tracker = WindowTracker(rate=10)
    answer(tracker, 10.2, 5, window_end=11.0)
    answer(tracker, 13.4, 3, window_end=14.0)  # fewer left, but the old window is over
    assert tracker.first_seen == 13.4


def test_a_length_that_reset_contradicts_is_not_used() -> None:
    # Configured at 10/s, but the first answer's Reset says an hour: a test client's
    # limit, or a wrong setting. Only Reset counts then.
    tracker = WindowTracker(rate=10)
    tracker.observe(0.0, 10, 9, 3600.0)
    tracker.observe(0.5, 10, 0, 3600.0)
    assert tracker.resume_at() == pytest.approx(3600.0 + WINDOW_MARGIN_S)


def test_after_a_refusal_only_reset_counts() -> None:
    tracker = WindowTracker(rate=10)
    answer(tracker, 100.3, 0, window_end=101.0)
    tracker.refused()
    assert tracker.resume_at() == pytest.approx(101.3 + WINDOW_MARGIN_S)


def test_a_window_past_its_length_is_over_even_with_as_many_calls_left() -> None:
    # One call in each of two 1 s windows: Remaining is 9 both times, and Reset ("1") does
    # not tell them apart; the first window's start + its length does.
    tracker = WindowTracker(rate=10)
    answer(tracker, 10.9, 9, window_end=11.0)
    answer(tracker, 11.95, 9, window_end=12.0)
    assert tracker.first_seen == 11.95
