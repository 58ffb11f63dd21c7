"""Which files make up each local tools entry: what the watcher looks at for an entry.

The watching itself (polling, waiting for a file to settle, reloading) is the server's
(`serve/watch.py`); this module only knows how a config names local tool files.
"""

from __future__ import annotations

from pathlib import Path

from toolbridge.config import Config


def watched_files(config: Config) -> dict[str, list[Path]]:
    """The .py files of each local tools entry given by `path`, by entry id."""
    files: dict[str, list[Path]] = {}
    for entry in config.tools:
        if entry.path is None:
            continue
        path = Path(entry.path)
        path = path if path.is_absolute() else config.base_dir / path
        files[entry.id] = sorted(path.glob("*.py")) if path.is_dir() else [path]
    return files
