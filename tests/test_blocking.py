"""Work kept off the event loop when it is large, and async work run to its end from sync code."""

from __future__ import annotations

import asyncio
import threading

import pytest

from toolbridge.blocking import OFF_LOOP_BYTES, off_loop, run_to_end

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def test_large_work_runs_in_a_worker_thread_and_small_work_here() -> None:
    """A 4 MiB answer parsed on the loop held every other caller; a small one is not worth a
    thread."""
    here = threading.get_ident()

    def where(label: str) -> tuple[str, bool]:
        return label, threading.get_ident() == here

    assert [
        await off_loop(OFF_LOOP_BYTES - 1, where, "small"),
        await off_loop(OFF_LOOP_BYTES, where, "large"),
    ] == [("small", True), ("large", False)]


def test_a_coroutine_runs_to_its_end_with_or_without_a_running_loop() -> None:
    async def answer() -> int:
        await asyncio.sleep(0)
        return 42

    async def inside() -> int:
        return run_to_end(answer())

    assert (run_to_end(answer()), asyncio.run(inside())) == (42, 42)
