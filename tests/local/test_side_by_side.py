"""Tool and filter files load side by side: k files whose code never finishes hold a start (or a
reload) for one IMPORT_TIMEOUT, not k of them.

Each file here waits at its top level (or in `Filter()`) on one barrier for three: the three
load only when their code runs at the same time. One after the other, the first two are given
up at IMPORT_TIMEOUT and only the last loads.
"""

from __future__ import annotations

import sys
import threading
import types
from pathlib import Path

import pytest

from toolbridge.config import Config, FilterEntry, LocalTools
from toolbridge.filters.loader import FilterCache, load_filters
from toolbridge.local import imports
from toolbridge.local.loader import ModuleCache, load_tools
from toolbridge.openapi.documents import DocumentStore
from toolbridge.registry import load_sources

TOOL_FILE = """
from toolbridge_test_rendezvous import barrier
barrier.wait()

def ping_{name}() -> str:
    return "{name}"
"""
FILTER_FILE = """
from toolbridge_test_rendezvous import barrier

class Filter:
    def __init__(self):
        barrier.wait()

    def inlet(self, body: dict) -> dict:
        return body
"""


@pytest.fixture
def rendezvous(monkeypatch: pytest.MonkeyPatch) -> threading.Barrier:
    """A barrier for three files' code, importable as `toolbridge_test_rendezvous`; the files
    are given up after 3 s (each waits 20 s at most)."""
    barrier = threading.Barrier(3, timeout=20)
    module = types.ModuleType("toolbridge_test_rendezvous")
    module.barrier = barrier  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "toolbridge_test_rendezvous", module)
    monkeypatch.setattr(imports, "IMPORT_TIMEOUT", 3.0)
    return barrier


def test_tools_entries_load_side_by_side(tmp_path: Path, rendezvous: threading.Barrier) -> None:
    for name in "abc":
        (tmp_path / f"{name}.py").write_text(TOOL_FILE.format(name=name))
    entries = tuple(LocalTools(id=f"t{name}", path=f"{name}.py") for name in "abc")
    config = Config(tools=entries, base_dir=tmp_path)
    modules: ModuleCache = {}
    statuses = load_sources(config, DocumentStore(), modules)
    assert [(s.id, s.error, [t.name for t in s.conversion.tools] if s.conversion else None)
            for s in statuses] == [
        ("ta", None, ["ping_a"]),
        ("tb", None, ["ping_b"]),
        ("tc", None, ["ping_c"]),
    ]  # fmt: skip
    assert sorted(key[:2] for key in modules) == [
        (f"t{name}", str(tmp_path / f"{name}.py")) for name in "abc"
    ]  # each file's load kept in the cache, though they were written to it at once
    assert (rendezvous.broken, rendezvous.n_waiting) == (False, 0)


def test_a_folders_files_load_side_by_side(tmp_path: Path, rendezvous: threading.Barrier) -> None:
    folder = tmp_path / "tools"
    folder.mkdir()
    for name in "abc":
        (folder / f"{name}.py").write_text(TOOL_FILE.format(name=name))
    conversion = load_tools(LocalTools(id="folder", path="tools"), tmp_path, {})
    assert ([t.name for t in conversion.tools], conversion.notes) == (
        ["ping_a", "ping_b", "ping_c"],  # in the folder's order, as one after the other
        (),
    )


def test_a_folders_file_that_fails_is_a_note_beside_those_that_load(
    tmp_path: Path, rendezvous: threading.Barrier
) -> None:
    folder = tmp_path / "tools"
    folder.mkdir()
    for name in "abc":
        (folder / f"{name}.py").write_text(TOOL_FILE.format(name=name))
    (folder / "b2.py").write_text("raise RuntimeError('b2 is broken')\n")
    conversion = load_tools(LocalTools(id="folder", path="tools"), tmp_path, {})
    assert [t.name for t in conversion.tools] == ["ping_a", "ping_b", "ping_c"]
    assert [(n.kind, n.where) for n in conversion.notes] == [
        ("module-failed", str(folder / "b2.py"))
    ]
    assert "b2 is broken" in conversion.notes[0].message


def test_filters_entries_load_side_by_side(tmp_path: Path, rendezvous: threading.Barrier) -> None:
    for name in "abc":
        (tmp_path / f"{name}.py").write_text(FILTER_FILE)
    entries = tuple(FilterEntry(id=f"f{name}", path=f"{name}.py") for name in "abc")
    cache: FilterCache = {}
    statuses = load_filters(Config(filters=entries, base_dir=tmp_path), cache)
    assert [(s.entry.id, s.error, s.filter is not None) for s in statuses] == [
        ("fa", None, True),
        ("fb", None, True),
        ("fc", None, True),
    ]
    assert sorted(key[0] for key in cache) == ["fa", "fb", "fc"]
