"""Watching files while serving: the config, local tool files, documents; a change reloads.

Polling modification times and sizes once a second is enough for files people edit by hand and
needs no native watcher. A change is acted on only once the file has settled (two looks
`settle` seconds apart agree), so a file an editor is still truncating and rewriting is never
read half-written.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path

import anyio

from toolbridge.file_stamps import FileStamp, stamp

logger = logging.getLogger(__name__)

Stamp = tuple[FileStamp, ...]
"""The stamp of each file of one key (`file_stamps.py`)."""
MAX_SETTLE_LOOKS = 40
"""A file still changing after this many looks is read anyway (it is being appended to)."""


def stamps(
    files: dict[str, list[Path]], read: Mapping[Path, FileStamp] | None = None
) -> dict[str, Stamp]:
    """Each key's stamp now; or, for the files in `read`, as they were when read."""
    read = read or {}
    return {
        key: tuple(read.get(path) or stamp(path) for path in paths) for key, paths in files.items()
    }


async def watch(
    files: Callable[[], dict[str, list[Path]]],
    on_change: Callable[[frozenset[str]], Awaitable[object]],
    *,
    read: Mapping[Path, FileStamp] | None = None,
    interval: float = 1.0,
    settle: float = 0.25,
    what: str = "files",
) -> None:
    """Run until cancelled: call `on_change` with the keys whose files changed, appeared or
    went, once they have settled. `files` is asked again each time (a config may change).

    `read`: the stamps of files as they were when what is served was read from them. A change
    made since then, before this first looks (a start takes seconds), is a change too; each
    other file starts from how it is at the first look."""
    seen = stamps(files(), read)
    while True:
        await anyio.sleep(interval)
        now = stamps(files())
        # A key new since the last look came with the reload that named it, which read its
        # files then (a source registered through the admin API): its first stamp is where
        # it starts from, not a change.
        changed = frozenset(key for key, stamp in now.items() if key in seen and stamp != seen[key])
        if not changed:
            seen = now
            continue
        for _ in range(MAX_SETTLE_LOOKS):
            await anyio.sleep(settle)
            again = stamps(files())
            if all(again.get(key) == now.get(key) for key in changed):
                break
            now = again
        seen = now
        logger.info("%s changed: %s; reloading", what, ", ".join(sorted(changed)))
        try:
            await on_change(changed)
        except Exception:
            # The reload reports what it refused (an invalid config keeps the running one).
            logger.exception("reloading after a change to %s failed", ", ".join(sorted(changed)))
