"""Rate limits per caller (and per caller and tool): token buckets, refilled continuously.

A bucket holds up to `burst` tokens and gains `per_minute / 60` a second; a call takes one.
An empty bucket refuses the call with the seconds until a token is back. A bucket that has
filled up again is the same as none: they are dropped whenever the count of buckets doubles
(from `SWEEP_FLOOR`), so that callers who come once (JWT subjects by the hundred thousand) do
not each keep one for the life of the process.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from toolbridge.errors import RateLimited, retry_seconds

SWEEP_FLOOR = 1024
"""Buckets kept before the first sweep of those full again."""


@dataclass(slots=True)
class _Bucket:
    tokens: float
    updated: float


class RateLimiter:
    def __init__(
        self,
        per_minute: float,
        burst: int,
        *,
        per_tool: bool = False,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.rate = per_minute / 60.0
        self.burst = float(burst)
        self.per_tool = per_tool
        self.clock = clock
        self._buckets: dict[tuple[str, str], _Bucket] = {}
        self._sweep_at = SWEEP_FLOOR

    def take(self, caller: str, tool: str) -> None:
        """Take one token for this call, or raise RateLimited saying when to come back."""
        key = (caller, tool if self.per_tool else "")
        now = self.clock()
        bucket = self._buckets.get(key)
        if bucket is None:
            if len(self._buckets) >= self._sweep_at:
                self._sweep(now)
            bucket = self._buckets[key] = _Bucket(tokens=self.burst, updated=now)
        bucket.tokens = min(self.burst, bucket.tokens + (now - bucket.updated) * self.rate)
        bucket.updated = now
        if bucket.tokens < 1.0:
            wait = (1.0 - bucket.tokens) / self.rate if self.rate > 0 else 60.0
            scope = f" for {tool!r}" if self.per_tool else ""
            raise RateLimited(
                f"{caller!r} is over the rate limit{scope}; try again in {retry_seconds(wait)} s",
                retry_after=wait,
            )
        bucket.tokens -= 1.0

    def _sweep(self, now: float) -> None:
        """Drop the buckets that are full again (the next sweep when the count has doubled)."""
        self._buckets = {
            key: bucket
            for key, bucket in self._buckets.items()
            if bucket.tokens + (now - bucket.updated) * self.rate < self.burst
        }
        self._sweep_at = max(SWEEP_FLOOR, 2 * len(self._buckets))

    def __len__(self) -> int:
        return len(self._buckets)
