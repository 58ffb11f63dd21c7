"""Rate limits counted once for every gateway process: token buckets in Redis.

The same buckets as `limits.RateLimiter` (`burst` tokens, refilled at `per_minute / 60` a
second, one per call, per caller or per caller and tool), kept in Redis and updated by one Lua
script, atomically, on Redis's own clock: any number of processes on any number of machines
share one count. `take` is async (it asks Redis); otherwise the interface is the local one's,
with the same `RateLimited` error and message.

When Redis cannot be reached, calls are counted by the local limiter of this process instead,
each of a replica's N worker processes allowing its share (so N replicas allow up to N times
the limit), with one loud warning per outage; Redis is
tried again at most every `retry_interval` seconds, and when it answers the count is shared
again (with a second warning saying so). Limits: a Redis round trip may take `TIMEOUT` seconds
before the call falls back; a bucket's key expires once it would be full again.

The Redis client is imported when a limiter is made: a gateway without `auth.rate_limit.redis`
never loads it (20 MB).
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable
from urllib.parse import urlsplit, urlunsplit

from toolbridge.errors import RateLimited, retry_seconds
from toolbridge.limits import RateLimiter

logger = logging.getLogger(__name__)

TIMEOUT = 0.5
"""Seconds to connect to Redis, and for one answer, before a call falls back to local limits."""
RETRY_INTERVAL = 1.0
"""While Redis is away, seconds between attempts to reach it again."""
PREFIX = "toolbridge:rate:"

# KEYS[1]: the bucket. ARGV: tokens per second, burst. Returns {1, "0"} when a token was taken,
# {0, seconds until one is back} when not (seconds as a string: Lua numbers become integers).
_TAKE = """
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
local state = redis.call('HMGET', KEYS[1], 'tokens', 'updated')
local tokens = tonumber(state[1])
local updated = tonumber(state[2])
if tokens == nil or updated == nil then
  tokens = burst
  updated = now
end
tokens = math.min(burst, tokens + math.max(0, now - updated) * rate)
local taken = 0
local wait = 0
if tokens >= 1 then
  tokens = tokens - 1
  taken = 1
else
  wait = (1 - tokens) / rate
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'updated', tostring(now))
redis.call('PEXPIRE', KEYS[1], math.ceil(burst / rate * 1000) + 1000)
return {taken, tostring(wait)}
"""


class SharedRateLimiter:
    """Token buckets per caller (and tool) in Redis at `url`; local ones while it is away."""

    def __init__(
        self,
        url: str,
        per_minute: float,
        burst: int,
        *,
        per_tool: bool = False,
        workers: int = 1,
        retry_interval: float = RETRY_INTERVAL,
        prefix: str = PREFIX,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """`workers`: the processes of this replica (`serve --workers N`), among which the
        local fallback shares the limit, as a gateway without Redis does."""
        self.rate = per_minute / 60.0
        self.burst = burst
        self.per_tool = per_tool
        share = max(1, workers)
        local_burst = max(1, math.floor(burst / share))
        self.local = RateLimiter(per_minute / share, local_burst, per_tool=per_tool, clock=clock)
        self.where = shown(url)
        import redis.asyncio as redis
        from redis.asyncio.retry import Retry
        from redis.backoff import NoBackoff
        from redis.exceptions import RedisError

        self._failures: tuple[type[BaseException], ...] = (RedisError, OSError)
        self._redis = redis.Redis.from_url(
            url,
            socket_connect_timeout=TIMEOUT,
            socket_timeout=TIMEOUT,
            retry=Retry(NoBackoff(), 0),
        )
        self._take = self._redis.register_script(_TAKE)
        self._prefix = prefix
        self._retry_interval = retry_interval
        self._clock = clock
        self._down_until: float | None = None
        """While Redis is away: when to try it again."""

    @property
    def shared(self) -> bool:
        """False while Redis is away and calls are counted locally."""
        return self._down_until is None

    async def take(self, caller: str, tool: str) -> None:
        """Take one token for this call, or raise RateLimited saying when to come back."""
        if self._down_until is not None and self._clock() < self._down_until:
            self.local.take(caller, tool)
            return
        key = self._prefix + json.dumps([caller, tool if self.per_tool else ""])
        try:
            taken, wait = await self._take(keys=[key], args=[repr(self.rate), self.burst])
        except self._failures as exc:
            self._went_away(exc)
            self.local.take(caller, tool)
            return
        if self._down_until is not None:
            logger.warning("Redis at %s is back: rate limits are shared again", self.where)
            self._down_until = None
        if not int(taken):
            seconds = float(wait)
            scope = f" for {tool!r}" if self.per_tool else ""
            again = retry_seconds(seconds)
            raise RateLimited(
                f"{caller!r} is over the rate limit{scope}; try again in {again} s",
                retry_after=seconds,
            )

    async def close(self) -> None:
        await self._redis.aclose()

    def _went_away(self, exc: BaseException) -> None:
        if self._down_until is None:
            logger.warning(
                "Redis at %s is unavailable (%s): rate limits are counted by each gateway "
                "process on its own until it returns",
                self.where,
                f"{type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''}",
            )
        self._down_until = self._clock() + self._retry_interval


def shown(url: str) -> str:
    """A Redis URL as logs may show it: without its password."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.hostname or ""
    netloc = f"{user}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))
