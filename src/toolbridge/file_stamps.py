"""What tells that a file changed: its modification time, size and inode, through symlinks.

Whoever reads a watched file (the config, a document, a local tool file) can keep its stamp as
it was then, so that a change made after the read and before the watcher's first look (a start
takes seconds) is still seen as one.
"""

from __future__ import annotations

import os
from pathlib import Path

FileStamp = tuple[int, int, int]
"""(mtime in ns, size, inode): a file swapped in whole, as a ConfigMap's `..data` is, changes
the inode if nothing else."""
MISSING: FileStamp = (-1, -1, -1)
"""The stamp of a file that is not there (or cannot be looked at)."""


def stamp_of(info: os.stat_result) -> FileStamp:
    return (info.st_mtime_ns, info.st_size, info.st_ino)


def stamp(path: Path) -> FileStamp:
    """The file's stamp now, following symlinks; MISSING when it cannot be looked at."""
    try:
        return stamp_of(path.stat())
    except OSError:
        return MISSING


def stamps_now(files: dict[str, list[Path]]) -> dict[Path, FileStamp]:
    """The stamp of every file of `files` (keyed by anything), by path."""
    return {path: stamp(path) for paths in files.values() for path in paths}
