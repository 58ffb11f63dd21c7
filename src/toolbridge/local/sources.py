"""A tools entry's sources: the `.py` file, the folder's files or the module it names, how
their locations are shown, and `LocalModule`, what one of them is once loaded.

Looks at the file system only to tell a file from a folder and list a folder's files; importing
and executing them is `loader`'s.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from toolbridge.config import LocalTools
from toolbridge.errors import SourceError


@dataclass(frozen=True, slots=True, kw_only=True)
class LocalModule:
    """One module a tools entry loaded (a folder loads one per file)."""

    name: str
    """`clock` (a file's stem) or `pkg.mod`: the part before `:` in each function's name."""
    location: str
    frontmatter: Mapping[str, str] = field(default_factory=dict)


def entry_sources(entry: LocalTools, base_dir: Path) -> tuple[str, list[Path | str], bool]:
    """The entry's location, its files or module, and whether it is a folder."""
    if (entry.path is None) == (entry.module is None):
        raise SourceError(f"tools {entry.id!r}: give exactly one of `path` or `module`")
    if entry.module is not None:
        return entry.module, [entry.module], False
    path = (base_dir / str(entry.path)).resolve()
    location = display(path)
    if path.is_file():
        return location, [path], False
    if not path.is_dir():
        raise SourceError(f"tools {entry.id!r}: {location}: no such file or folder")
    files = sorted(p for p in path.glob("*.py") if not p.name.startswith(("_", ".")))
    return location, list(files), True


def display(path: Path) -> str:
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)
