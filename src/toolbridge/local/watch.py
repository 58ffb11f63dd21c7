"""Watching local tool and filter files: an edit reloads that entry only, beside the others.

Polling modification times once a second is enough for files people edit by hand, and needs
no native watcher. The reload builds a new catalog and swaps it in (the last good version of
a module that fails stays), so calls in flight are never disturbed.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from pathlib import Path

import anyio

from toolbridge.config import Config

logger = logging.getLogger(__name__)


def watched_files(config: Config) -> dict[str, list[Path]]:
    """The .py files of each local tools entry and filter given by `path`, by entry id."""
    files: dict[str, list[Path]] = {}
    entries = [(e.id, e.path) for e in config.tools] + [(f.id, f.path) for f in config.filters]
    for ident, given in entries:
        if given is None:
            continue
        path = Path(given)
        path = path if path.is_absolute() else config.base_dir / path
        files[ident] = sorted(path.glob("*.py")) if path.is_dir() else [path]
    return files


def _stamps(files: dict[str, list[Path]]) -> dict[str, tuple[float, ...]]:
    out = {}
    for entry, paths in files.items():
        stamps = []
        for path in paths:
            try:
                stamps.append(path.stat().st_mtime)
            except OSError:
                stamps.append(-1.0)
        out[entry] = tuple(stamps)
    return out


async def watch_tools(
    config: Config,
    reload: Callable[[frozenset[str]], Awaitable[object]],
    *,
    interval: float = 1.0,
) -> None:
    """Run until cancelled: reload the entries whose files changed (or appeared, or went)."""
    files = watched_files(config)
    if not files:
        return
    seen = _stamps(files)
    while True:
        await anyio.sleep(interval)
        files = watched_files(config)  # a folder may have gained or lost files
        now = _stamps(files)
        changed = frozenset(entry for entry, stamps in now.items() if stamps != seen.get(entry))
        seen = now
        if changed:
            logger.info("local tools changed: %s; reloading them", ", ".join(sorted(changed)))
            try:
                await reload(changed)
            except Exception:
                logger.exception("reloading %s failed", ", ".join(sorted(changed)))
