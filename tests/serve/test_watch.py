"""Watched files reload once they have settled: never half-written."""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest

from toolbridge.file_stamps import stamp
from toolbridge.serve.watch import watch

pytestmark = pytest.mark.anyio


async def test_a_change_is_acted_on_once_the_file_has_settled(tmp_path: Path) -> None:
    path = tmp_path / "toolbridge.yaml"
    path.write_text("servers: []\n")
    seen: list[tuple[frozenset[str], str]] = []

    async def on_change(keys: frozenset[str]) -> None:
        seen.append((keys, path.read_text()))

    async with anyio.create_task_group() as tasks:
        tasks.start_soon(
            lambda: watch(lambda: {"config": [path]}, on_change, interval=0.05, settle=0.3)
        )
        await anyio.sleep(0.1)
        path.write_text("")  # an editor truncates ...
        for part in ("servers:\n", "  - id: a\n", "    spec: a.yaml\n"):
            await anyio.sleep(0.1)  # ... and writes in pieces, each sooner than `settle`
            with path.open("a") as file:
                file.write(part)
        with anyio.fail_after(5):
            while not seen:
                await anyio.sleep(0.05)
        await anyio.sleep(0.5)
        tasks.cancel_scope.cancel()

    assert seen == [(frozenset({"config"}), "servers:\n  - id: a\n    spec: a.yaml\n")]


async def test_a_file_that_appears_or_goes_is_a_change(tmp_path: Path) -> None:
    path = tmp_path / "tool.py"
    seen: list[frozenset[str]] = []

    async def on_change(keys: frozenset[str]) -> None:
        seen.append(keys)

    async with anyio.create_task_group() as tasks:
        tasks.start_soon(
            lambda: watch(lambda: {"tools": [path]}, on_change, interval=0.05, settle=0.05)
        )
        await anyio.sleep(0.1)
        path.write_text("x = 1\n")
        await anyio.sleep(0.4)
        path.unlink()
        await anyio.sleep(0.4)
        tasks.cancel_scope.cancel()

    assert seen == [frozenset({"tools"}), frozenset({"tools"})]


async def test_a_key_that_comes_with_a_reload_is_no_change_until_its_files_change(
    tmp_path: Path,
) -> None:
    """A source registered through the admin API is named by the config the reload that loaded
    it made: every start reloaded once more for it, saying its files had changed."""
    first, later = tmp_path / "first.py", tmp_path / "later.py"
    first.write_text("x = 1\n")
    later.write_text("y = 1\n")
    keys = {"first": [first]}
    seen: list[frozenset[str]] = []

    async def on_change(changed: frozenset[str]) -> None:
        seen.append(changed)

    async with anyio.create_task_group() as tasks:
        tasks.start_soon(lambda: watch(lambda: dict(keys), on_change, interval=0.05, settle=0.05))
        await anyio.sleep(0.1)
        keys["later"] = [later]  # a reload named it, and read it
        await anyio.sleep(0.4)
        later.write_text("y = 2\n")
        await anyio.sleep(0.4)
        tasks.cancel_scope.cancel()

    assert seen == [frozenset({"later"})]


async def test_a_file_changed_since_it_was_read_is_a_change_at_the_first_look(
    tmp_path: Path,
) -> None:
    """A start reads the files, then takes seconds to serve: the watcher starts from how each
    was when read, so an edit meanwhile is seen; one not read starts from the first look."""
    edited, kept, unread = tmp_path / "a.yaml", tmp_path / "b.yaml", tmp_path / "c.yaml"
    for path in (edited, kept, unread):
        path.write_text("servers: []\n")
    read = {edited: stamp(edited), kept: stamp(kept)}
    swapped = tmp_path / "a.new"
    swapped.write_text("servers: []\n")  # the same size; a new inode
    swapped.replace(edited)
    unread.write_text("servers: [] \n")
    seen: list[frozenset[str]] = []

    async def on_change(keys: frozenset[str]) -> None:
        seen.append(keys)

    files = {"a": [edited], "b": [kept], "c": [unread]}
    async with anyio.create_task_group() as tasks:
        tasks.start_soon(
            lambda: watch(lambda: files, on_change, read=read, interval=0.05, settle=0.05)
        )
        await anyio.sleep(0.5)
        tasks.cancel_scope.cancel()

    assert seen == [frozenset({"a"})]
