"""Rate limits counted once in a real Redis for every process; local ones, loudly, while Redis
is away, and shared again when it returns."""

from __future__ import annotations

import asyncio
import logging
import subprocess
import sys
from collections.abc import Iterator

import pytest
import redis.asyncio as redis

from tests.servers import Redis, free_port
from toolbridge.errors import RateLimited
from toolbridge.shared_limits import SharedRateLimiter, shown

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def redis_url(redis_server: Redis) -> str:
    """The session's Redis, emptied for this test."""
    client = redis.Redis.from_url(redis_server.url)
    await client.flushdb()
    await client.aclose()
    return redis_server.url


def limiter(
    url: str, per_minute: float = 60, burst: int = 3, **options: object
) -> SharedRateLimiter:
    return SharedRateLimiter(url, per_minute, burst, **options)  # type: ignore[arg-type]


async def refused(limiter: SharedRateLimiter, caller: str, tool: str = "t") -> RateLimited:
    with pytest.raises(RateLimited) as caught:
        await limiter.take(caller, tool)
    return caught.value


async def test_two_processes_share_one_bucket(redis_url: str) -> None:
    one, two = limiter(redis_url), limiter(redis_url)
    try:
        await one.take("alice", "x")
        await two.take("alice", "y")
        await one.take("alice", "x")
        error = await refused(two, "alice")
        await one.take("bob", "x")  # every caller has a bucket of their own
    finally:
        await one.close()
        await two.close()

    assert str(error) == "'alice' is over the rate limit; try again in 1 s"
    assert 0.9 < error.retry_after <= 1.0


async def test_a_separate_process_counts_in_the_same_bucket(redis_url: str) -> None:
    """A real second process takes two of the three tokens; this one gets the last."""
    script = (
        "import asyncio, sys\n"
        "from toolbridge.shared_limits import SharedRateLimiter\n"
        "async def main():\n"
        "    limiter = SharedRateLimiter(sys.argv[1], 60, 3)\n"
        "    await limiter.take('alice', 'x')\n"
        "    await limiter.take('alice', 'x')\n"
        "    await limiter.close()\n"
        "asyncio.run(main())\n"
    )
    done = await asyncio.to_thread(
        subprocess.run, [sys.executable, "-c", script, redis_url], capture_output=True, text=True
    )
    assert (done.returncode, done.stderr) == (0, "")
    here = limiter(redis_url)
    try:
        await here.take("alice", "x")
        await refused(here, "alice")
    finally:
        await here.close()


async def test_per_tool_buckets_and_refill(redis_url: str) -> None:
    shared = limiter(redis_url, per_minute=600, burst=1, per_tool=True)  # a token every 0.1 s
    try:
        await shared.take("alice", "x")
        await shared.take("alice", "y")
        error = await refused(shared, "alice", "x")
        await asyncio.sleep(0.15)
        await shared.take("alice", "x")
        client = redis.Redis.from_url(redis_url)
        ttls = [await client.pttl(key) for key in sorted(await client.keys("toolbridge:rate:*"))]
        await client.aclose()
    finally:
        await shared.close()

    assert str(error).startswith("'alice' is over the rate limit for 'x'; try again in 1 s")
    assert len(ttls) == 2
    assert all(0 < ttl <= 1100 for ttl in ttls)  # a bucket's key expires once it is full again


@pytest.fixture
def redis_down(redis_server: Redis) -> Iterator[Redis]:
    """The session's Redis, running again after the test whatever it did."""
    yield redis_server
    if redis_server.process is None:
        redis_server.start()


async def test_local_limits_while_redis_is_away_and_shared_again_after(
    redis_url: str, redis_down: Redis, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="toolbridge.shared_limits")
    shared = limiter(redis_url, burst=2, retry_interval=0.1)
    modes = []
    try:
        await shared.take("alice", "x")  # shared: one of two tokens left in Redis
        modes.append(shared.shared)

        redis_down.stop()
        await shared.take("alice", "x")  # local: a bucket of its own, two tokens
        await shared.take("alice", "x")
        local_error = await refused(shared, "alice")
        modes.append(shared.shared)

        redis_down.start()
        await asyncio.sleep(0.15)  # past the retry interval
        await shared.take("alice", "x")  # shared again: a new Redis, a new bucket
        modes.append(shared.shared)
        await shared.take("alice", "x")
        shared_error = await refused(shared, "alice")
    finally:
        await shared.close()

    assert modes == [True, False, True]
    assert (
        str(local_error)
        == str(shared_error)
        == ("'alice' is over the rate limit; try again in 1 s")
    )
    messages = [record.getMessage() for record in caplog.records]
    assert len(messages) == 2  # once per outage, however many calls it saw
    assert messages[0].startswith(f"Redis at {redis_url} is unavailable (ConnectionError: ")
    assert messages[0].endswith(
        "rate limits are counted by each gateway process on its own until it returns"
    )
    assert messages[1] == f"Redis at {redis_url} is back: rate limits are shared again"


async def test_an_unreachable_redis_never_shows_its_password(
    caplog: pytest.LogCaptureFixture,
) -> None:
    port = free_port()
    caplog.set_level(logging.WARNING, logger="toolbridge.shared_limits")
    shared = limiter(f"redis://:s3cr3t-pw@127.0.0.1:{port}/0")
    try:
        await shared.take("alice", "x")
    finally:
        await shared.close()

    assert (
        caplog.records[0]
        .getMessage()
        .startswith(f"Redis at redis://:***@127.0.0.1:{port}/0 is unavailable (")
    )
    assert "s3cr3t" not in caplog.text


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("redis://127.0.0.1:6379/0", "redis://127.0.0.1:6379/0"),
        ("redis://user:pw@cache:6380/1", "redis://user:***@cache:6380/1"),
        ("rediss://:pw@cache/0", "rediss://:***@cache/0"),
    ],
)
def test_urls_are_shown_without_passwords(url: str, expected: str) -> None:
    assert shown(url) == expected


async def test_while_redis_is_away_each_worker_allows_its_share(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """As a gateway without Redis does: its N workers never allow more than the limit in all
    (each allowed the whole limit, so 2 replicas of 2 workers let 4 times it through)."""
    caplog.set_level(logging.ERROR, logger="toolbridge.shared_limits")
    shared = limiter(f"redis://127.0.0.1:{free_port()}/0", burst=4, workers=2)
    try:
        await shared.take("alice", "x")
        await shared.take("alice", "x")
        error = await refused(shared, "alice")
    finally:
        await shared.close()
    assert (shared.shared, str(error)) == (
        False,
        "'alice' is over the rate limit; try again in 2 s",  # its half of 60 a minute
    )
