"""Async work run to its end from synchronous code (loading, which may itself run inside an
event loop: `check` and `call` have none, a reload in the server has one)."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

T = TypeVar("T")


def run_to_end(coroutine: Coroutine[Any, Any, T]) -> T:
    """The coroutine's result; inside a running loop it runs on a loop of its own in a thread
    (the running loop is blocked meanwhile, as any synchronous call would block it)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coroutine)
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coroutine).result()
