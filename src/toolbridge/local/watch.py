"""Which files make up each local tools and filter entry: what the watcher looks at for an entry.

The watching itself (polling, waiting for a file to settle, reloading) is the server's
(`serve/watch.py`); this module only knows how a config names local tool files.
"""

from __future__ import annotations

from pathlib import Path

from toolbridge.config import Config


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
