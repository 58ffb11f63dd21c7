"""Async work run to its end from synchronous code (loading, which may itself run inside an
event loop: `check` and `call` have none, a reload in the server has one); large work kept off
the event loop (`off_loop`); and loads that mostly wait run side by side (`side_by_side`)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import anyio

T = TypeVar("T")
R = TypeVar("R")

OFF_LOOP_BYTES = 1024 * 1024
"""Answers this large or larger are parsed and redacted in a worker thread: 4 MiB of JSON costs
tens of milliseconds, and fifty of them at once held every other caller (and `/healthz`) for
seconds. The GIL still serializes the work, but the loop gets its turns between (every 5 ms)."""


async def off_loop(size: int, work: Callable[..., T], *args: Any) -> T:
    """`work(*args)`, in a worker thread when `size` (bytes it works on) is OFF_LOOP_BYTES or
    more, else here: a thread costs more than a small answer's work."""
    if size < OFF_LOOP_BYTES:
        return work(*args)
    return await anyio.to_thread.run_sync(work, *args)


def run_to_end(coroutine: Coroutine[Any, Any, T]) -> T:
    """The coroutine's result; inside a running loop it runs on a loop of its own in a thread
    (the running loop is blocked meanwhile, as any synchronous call would block it)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coroutine)
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coroutine).result()


def side_by_side(work: Callable[[T], R], items: Sequence[T], limit: int) -> list[R]:
    """`work(item)` for every item, up to `limit` at once in threads, the results in the items'
    order (one item runs here). For loads that mostly wait, each bounded on its own (a document
    fetched, a tool file's code): one after the other, k that never finish would hold a start
    for k times the bound. What `work` raises is raised here, after every item has run."""
    if len(items) < 2:
        return [work(item) for item in items]
    with ThreadPoolExecutor(max_workers=min(limit, len(items))) as pool:
        return list(pool.map(work, items))
