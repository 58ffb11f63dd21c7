"""How often a test's event loop turned while it waited on something that must not block it."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

import anyio


@dataclass
class Ticks:
    """Turns of the loop (one each 50 ms it was free) and the seconds the block took."""

    count: int = 0
    took: float = 0.0


@contextlib.asynccontextmanager
async def ticking() -> AsyncIterator[Ticks]:
    """Count the loop's turns while the block runs (a blocked loop does not turn)."""
    ticks = Ticks()

    async def tick() -> None:
        while True:
            await anyio.sleep(0.05)
            ticks.count += 1

    started = anyio.current_time()
    async with anyio.create_task_group() as group:
        group.start_soon(tick)
        yield ticks
        ticks.took = anyio.current_time() - started
        group.cancel_scope.cancel()
