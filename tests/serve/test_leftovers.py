"""Folders of a killed `serve` go when the next one starts; nothing else does."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from toolbridge.serve.leftovers import OWNER, mark, sweep


def test_only_the_marked_folders_of_processes_that_are_gone_are_removed(tmp_path: Path) -> None:
    ended = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], check=True,
                           capture_output=True, text=True)  # fmt: skip
    dead_pid = int(ended.stdout)
    folders = {
        name: tmp_path / name
        for name in (
            "toolbridge-killed",
            "toolbridge-living",
            "toolbridge-ours",
            "toolbridge-unmarked",
            "toolbridge-garbled",
            "other-killed",
        )
    }
    for folder in folders.values():
        folder.mkdir()
        (folder / "kept.py").write_text("x = 1\n")
    for name in ("toolbridge-killed", "other-killed"):
        (folders[name] / OWNER).write_text(str(dead_pid))
    (folders["toolbridge-living"] / OWNER).write_text(str(os.getppid()))
    mark(folders["toolbridge-ours"])
    (folders["toolbridge-garbled"] / OWNER).write_text("not a pid")
    (tmp_path / "toolbridge-link").symlink_to(folders["other-killed"])

    removed = sweep(tmp_path)

    assert removed == [folders["toolbridge-killed"]]
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "other-killed",
        "toolbridge-garbled",
        "toolbridge-link",
        "toolbridge-living",
        "toolbridge-ours",
        "toolbridge-unmarked",
    ]
