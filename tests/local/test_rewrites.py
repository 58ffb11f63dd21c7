"""A tool file caught while an editor rewrites it never replaces its last good version."""

from __future__ import annotations

import os
from pathlib import Path

from toolbridge.config import LocalTools
from toolbridge.local.loader import ModuleCache, load_tools

TOOL = '''
class Tools:
    def shout(self, text: str) -> str:
        """Say it loudly."""
        return text.upper()
'''


def test_an_empty_file_that_had_tools_keeps_its_last_good_version(tmp_path: Path) -> None:
    path = tmp_path / "shout.py"
    path.write_text(TOOL)
    entry = LocalTools(id="shout", path="shout.py")
    cache: ModuleCache = {}
    first = load_tools(entry, tmp_path, cache)

    path.write_text("")  # the truncation an editor makes before it writes
    os.utime(path, ns=(1, 1))
    caught = load_tools(entry, tmp_path, cache)

    assert [t.name for t in caught.tools] == [t.name for t in first.tools] == ["shout"]
    assert [(n.kind, n.message) for n in caught.notes] == [
        ("module-kept", f"{path} is empty (being written?); its last good version is still served")
    ]


def test_an_empty_file_never_loaded_before_is_just_empty(tmp_path: Path) -> None:
    (tmp_path / "empty.py").write_text("")
    loaded = load_tools(LocalTools(id="empty", path="empty.py"), tmp_path, {})
    assert loaded.tools == ()
