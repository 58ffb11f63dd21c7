"""Watching files while serving: the config, local tool files, documents; a change reloads.

Polling modification times and sizes once a second is enough for files people edit by hand and
needs no native watcher. A change is acted on only once the file has settled (two looks
`settle` seconds apart agree), so a file an editor is still truncating and rewriting is never
read half-written.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from pathlib import Path

import anyio

logger = logging.getLogger(__name__)

Stamp = tuple[tuple[int, int, int], ...]
"""(mtime in ns, size, inode) of each file of one key, through symlinks (a file swapped in whole,
as a ConfigMap's `..data` is, changes the inode if nothing else); (-1, -1, -1) when missing."""
MAX_SETTLE_LOOKS = 40
"""A file still changing after this many looks is read anyway (it is being appended to)."""


def stamps(files: dict[str, list[Path]]) -> dict[str, Stamp]:
    out = {}
    for key, paths in files.items():
        found = []
        for path in paths:
            try:
                stat = path.stat()
                found.append((stat.st_mtime_ns, stat.st_size, stat.st_ino))
            except OSError:
                found.append((-1, -1, -1))
        out[key] = tuple(found)
    return out


async def watch(
    files: Callable[[], dict[str, list[Path]]],
    on_change: Callable[[frozenset[str]], Awaitable[object]],
    *,
    interval: float = 1.0,
    settle: float = 0.25,
    what: str = "files",
) -> None:
    """Run until cancelled: call `on_change` with the keys whose files changed, appeared or
    went, once they have settled. `files` is asked again each time (a config may change)."""
    seen = stamps(files())
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
