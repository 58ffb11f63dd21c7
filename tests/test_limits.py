"""Token buckets per caller (and per caller and tool)."""

from __future__ import annotations

import pytest

from toolbridge.errors import RateLimited
from toolbridge.limits import SWEEP_FLOOR, RateLimiter


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_burst_then_the_steady_rate() -> None:
    clock = Clock()
    limiter = RateLimiter(per_minute=60, burst=3, clock=clock)
    for _ in range(3):
        limiter.take("alice", "x")
    with pytest.raises(RateLimited) as caught:
        limiter.take("alice", "x")
    assert (str(caught.value), caught.value.retry_after) == (
        "'alice' is over the rate limit; try again in 1 s",
        1.0,
    )
    limiter.take("bob", "x")  # every caller has a bucket of their own
    clock.now = 1.0  # one token a second
    limiter.take("alice", "x")
    with pytest.raises(RateLimited):
        limiter.take("alice", "y")


def test_per_tool_buckets() -> None:
    limiter = RateLimiter(per_minute=1, burst=1, per_tool=True, clock=Clock())
    limiter.take("alice", "x")
    limiter.take("alice", "y")
    with pytest.raises(RateLimited) as caught:
        limiter.take("alice", "x")
    assert str(caught.value) == "'alice' is over the rate limit for 'x'; try again in 60 s"


def test_buckets_full_again_are_dropped_as_callers_come_and_go() -> None:
    """240,000 JWT subjects that each called once kept a bucket each, for good (310 B apiece).
    A bucket full again is dropped when their count has doubled; one still short is kept."""
    clock = Clock()
    limiter = RateLimiter(per_minute=60, burst=2, clock=clock)
    for n in range(SWEEP_FLOOR):  # at 0 s: each has one token of two left
        limiter.take(f"early-{n}", "x")
    clock.now = 10.0  # each full again: the next new caller's sweep drops them all
    limiter.take("late", "x")
    limiter.take("late", "x")  # empty
    for n in range(SWEEP_FLOOR):  # a sweep at the 1,024th keeps these (one token short)
        limiter.take(f"next-{n}", "x")
    assert len(limiter) == SWEEP_FLOOR + 1  # the next ones, and late
    with pytest.raises(RateLimited):
        limiter.take("late", "x")
