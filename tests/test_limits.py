"""Token buckets per caller (and per caller and tool)."""

from __future__ import annotations

import pytest

from toolbridge.errors import RateLimited
from toolbridge.limits import RateLimiter


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
