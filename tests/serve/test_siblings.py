"""The workers of `serve --workers N` in step: what one appends, the others apply and confirm."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import anyio
import pytest

from toolbridge.serve.siblings import Siblings

pytestmark = pytest.mark.anyio


async def test_what_one_worker_publishes_the_others_apply_and_confirm(tmp_path: Path) -> None:
    first = Siblings(tmp_path, pid=os.getpid(), poll=0.01)
    second = Siblings(tmp_path, pid=os.getppid(), poll=0.01)  # another live process
    applied: list[dict[str, Any]] = []

    async def apply(event: dict[str, Any]) -> None:
        applied.append(event)

    async with anyio.create_task_group() as tasks:
        tasks.start_soon(second.follow, apply)
        end = first.publish({"action": "reload"})
        with anyio.fail_after(5):
            confirmed = await first.wait(end, timeout=5)
        tasks.cancel_scope.cancel()

    assert (confirmed, applied) == ((1, 1), [{"action": "reload", "from": os.getpid()}])


async def test_a_worker_that_died_is_not_waited_for(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    Siblings(tmp_path, pid=int(done.stdout))  # registered, then gone
    first = Siblings(tmp_path, pid=os.getpid(), poll=0.01)

    with anyio.fail_after(5):
        confirmed = await first.wait(first.publish({"action": "reload"}), timeout=5)

    assert (confirmed, sorted(p.name for p in (tmp_path / "acks").iterdir())) == (
        (0, 0),
        [str(os.getpid())],
    )


async def test_a_sibling_that_does_not_catch_up_in_time_is_reported(tmp_path: Path) -> None:
    first = Siblings(tmp_path, pid=os.getpid(), poll=0.01)
    Siblings(tmp_path, pid=os.getppid())  # alive, but never follows

    confirmed = await first.wait(first.publish({"action": "reload"}), timeout=0.1)

    assert confirmed == (0, 1)


async def test_lines_that_are_not_events_are_skipped(tmp_path: Path) -> None:
    follower = Siblings(tmp_path, pid=os.getppid(), poll=0.01)
    with (tmp_path / "events.jsonl").open("ab") as events:
        events.write(b"not json\n[1, 2]\n" + b'{"action": "reload", "from": 1}\n')
    applied: list[dict[str, Any]] = []

    async def apply(event: dict[str, Any]) -> None:
        applied.append(event)

    async with anyio.create_task_group() as tasks:
        tasks.start_soon(follower.follow, apply)
        with anyio.fail_after(5):
            while not applied:
                await anyio.sleep(0.01)
        tasks.cancel_scope.cancel()

    assert applied == [{"action": "reload", "from": 1}]
