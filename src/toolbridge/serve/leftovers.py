"""Folders a `serve` that was killed left behind, removed by the next one that starts.

`serve` keeps temporary folders (its workers' runtime folder, the registered documents and
tool files it loads) and removes them when it stops; a process killed outright (SIGKILL, the
OOM killer) cannot, and over months of such deaths they pile up in the temporary folder. Each
folder is marked with the id of the process it belongs to (`mark`); `sweep` removes those of
this user whose process is gone.

Trust: only folders named `toolbridge-*`, owned by this user, not symlinks, whose mark holds the
id of no living process; a folder with no readable mark (made by anything else) is left alone.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from pathlib import Path

from toolbridge.serve.siblings import alive

logger = logging.getLogger(__name__)

OWNER = ".toolbridge-owner"
"""The file in a folder that names the process it belongs to."""


def mark(folder: Path) -> None:
    """Say that `folder` belongs to this process (removed with it, or by a later `sweep`)."""
    (folder / OWNER).write_text(str(os.getpid()))


def sweep(root: Path | None = None) -> list[Path]:
    """Remove the marked folders under `root` (the temporary folder) whose process is gone."""
    removed = []
    for folder in sorted(Path(root or tempfile.gettempdir()).glob("toolbridge-*")):
        try:
            if folder.is_symlink() or not folder.is_dir() or folder.stat().st_uid != os.getuid():
                continue
            pid = int((folder / OWNER).read_text().strip())
        except (OSError, ValueError):
            continue
        if pid == os.getpid() or alive(pid):
            continue
        shutil.rmtree(folder, ignore_errors=True)
        removed.append(folder)
    if removed:
        logger.info(
            "removed %d temporary folders of serve processes that were killed: %s",
            len(removed),
            ", ".join(f.name for f in removed),
        )
    return removed
