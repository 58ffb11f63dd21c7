"""Loading local Python tools: Open WebUI-style tool files and plain functions, as `Tool`s.

A source is a `.py` file, a folder of them, or an importable module (`pkg.mod` or
`pkg.mod:function`). A module with a `class Tools` offers that class's public methods, its own
and inherited ones, as Open WebUI does (the class is instantiated once, with its `Valves`
filled from the config); a module without one offers its public functions defined in that
file. `signatures.py` turns each callable into a
`Tool` (schema from signature and docstring); this module imports and instantiates, and
`calls.py` calls.

Conventions, all decorator-free so that a file runs unchanged in Open WebUI:

- **Read-only.** A tool is read-only (MCP `readOnlyHint`) only when its function has an
  attribute `readonly = True` (`now.readonly = True` after the method). Names are not guessed
  from: `get_or_create_...` would pass for read-only, and clients skip confirmations for those.
- **Frontmatter.** The `key: value` lines of the module docstring, as Open WebUI reads them
  (title, author, version, description, requirements, ...); keys in lower case. Missing
  `requirements` are noted (presence only, no versions); nothing is installed unless the entry
  asks (`requirements.py`).
- **Names.** A tool is named after its function, with the entry's `prefix`; a function is
  `<module>:<qualname>` (`clock:Tools.now`, `pkg.mod:lookup`), unique within an entry.
- **Injected parameters.** Open WebUI's names (`__user__`, `__metadata__`, `__chat_id__`,
  `__event_call__`, ...) and any other `__name__` parameter are filled by the host and never
  appear in the schema; see `calls.injected` for their values.
- **Not tools.** A module with Open WebUI's `class Pipe`, `Filter` or `Action` and no `Tools`
  is an Open WebUI Function: refused, not read as plain functions.
"""

from __future__ import annotations

import dataclasses
import inspect
import threading
import types
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from toolbridge import names
from toolbridge.blocking import side_by_side
from toolbridge.config import LocalTools
from toolbridge.errors import SourceError
from toolbridge.local.docstrings import frontmatter
from toolbridge.local.imports import MAX_LOADING, construct, import_file, import_module
from toolbridge.local.requirements import install_requirements, requirement_notes
from toolbridge.local.signatures import build_tool, set_valves
from toolbridge.local.sources import LocalModule, display, entry_sources
from toolbridge.tools import Note, PythonFunction, Tool

FUNCTION_CLASSES = ("Pipe", "Filter", "Action")
"""Classes of Open WebUI Functions (models, filters, buttons): a file with one is no tool file."""


@dataclass(frozen=True, slots=True, kw_only=True)
class LocalConversion:
    """What one `tools` entry of the config turned into."""

    source: str
    location: str
    tools: tuple[Tool, ...]
    notes: tuple[Note, ...] = ()
    """Notes about the entry as a whole (a file of a folder that failed, unused valves, ...)."""
    modules: tuple[LocalModule, ...] = ()

    def frontmatter(self, function: PythonFunction) -> Mapping[str, str]:
        """The frontmatter of the module a tool of this entry came from."""
        module = function.function.partition(":")[0]
        return next((m.frontmatter for m in self.modules if m.name == module), {})


ModuleCache = dict[tuple[str, str, int, int, str], tuple["LocalModule", list[Tool], set[str]]]
"""Loaded files by (entry id, path, mtime in ns, size, the entry's config as JSON): a reload
imports only what changed, in the file or in its entry (valves, timeout, ...)."""
_CACHE_LOCK = threading.Lock()
"""Held while a ModuleCache is read or written (never while a file runs): files load side by
side, and iterating a dict that another thread adds to fails."""


def load_tools(
    entry: LocalTools, base_dir: Path, cache: ModuleCache | None = None
) -> LocalConversion:
    """Import an entry's file, folder or module and turn its callables into tools.

    Raises SourceError when nothing can be loaded. In a folder, a file that fails is a note and
    the other files still load. With `cache`, a file that has not changed since it was loaded
    keeps the tools it gave then: an edit reloads that module only.
    """
    location, sources, folder = entry_sources(entry, base_dir)
    tools: list[Tool] = []
    modules: list[LocalModule] = []
    notes: list[Note] = []
    used_valves: set[str] = set()
    installing = entry.install_requirements
    installed: dict[Path | str, list[Note]] = {
        s: install_requirements(s) for s in sources if installing and isinstance(s, Path)
    }
    loaded = side_by_side(lambda source: _loaded(entry, source, cache), sources, MAX_LOADING)
    for source, outcome in zip(sources, loaded, strict=True):
        notes.extend(installed.get(source, ()))
        if isinstance(outcome, SourceError):
            if not folder:
                raise outcome
            where = display(source) if isinstance(source, Path) else source
            notes.append(Note(kind="module-failed", message=str(outcome), where=where))
            continue
        info, found, used, kept = outcome
        notes.extend(kept)
        modules.append(info)
        tools.extend(found)
        used_valves |= used
        if not (entry.install_requirements and isinstance(source, Path)):
            # (installing, what is still missing was refused or failed: noted above)
            notes.extend(requirement_notes(info))
    if sources and not modules:
        raise SourceError("\n".join(note.message for note in notes))
    unused = sorted(set(entry.valves) - used_valves)
    if unused:
        listed = ", ".join(map(repr, unused))
        message = f"valves {listed} are not fields of any Valves model; they are ignored"
        notes.append(Note(kind="valves-unused", message=message, where=location))
    if not tools:
        notes.append(Note(kind="no-tools", message="no public function to offer", where=location))
    return LocalConversion(
        source=entry.id,
        location=location,
        tools=_named(entry, tools),
        notes=tuple(notes),
        modules=tuple(modules),
    )


def _loaded(
    entry: LocalTools, source: Path | str, cache: ModuleCache | None
) -> tuple[LocalModule, list[Tool], set[str], list[Note]] | SourceError:
    """`_cached_module`, or the SourceError it raised (a folder's other files go on)."""
    try:
        return _cached_module(entry, source, cache)
    except SourceError as exc:
        return exc


def _cached_module(
    entry: LocalTools, source: Path | str, cache: ModuleCache | None
) -> tuple[LocalModule, list[Tool], set[str], list[Note]]:
    """A file's tools: as loaded before when it has not changed; its last good version, with a
    note, when a change breaks it."""
    if cache is None or not isinstance(source, Path):
        return (*_load_module(entry, source), [])
    try:
        stat = source.stat()
    except OSError:
        return (*_load_module(entry, source), [])  # reports the missing file
    key = (entry.id, str(source), stat.st_mtime_ns, stat.st_size, entry.model_dump_json())
    with _CACHE_LOCK:  # (files load side by side: the cache is read and written in turn)
        found = cache.get(key)
        earlier = [k for k in cache if k[:2] == key[:2]]
        last = cache[earlier[-1]] if earlier else None
    if found is not None:
        return (*found, [])
    try:
        if stat.st_size == 0 and last is not None:
            # An editor truncates before it writes: an empty file that had tools is taken for
            # one caught mid-write, never for a good version with no tools.
            raise SourceError(f"{display(source)} is empty (being written?)")
        loaded = _load_module(entry, source)
    except SourceError as exc:
        if last is None:
            raise
        note = Note(
            kind="module-kept",
            message=f"{exc}; its last good version is still served",
            where=display(source),
        )
        return (*last, [note])
    with _CACHE_LOCK:
        for old in earlier:
            cache.pop(old, None)
        cache[key] = loaded
    return (*loaded, [])


def _load_module(entry: LocalTools, source: Path | str) -> tuple[LocalModule, list[Tool], set[str]]:
    """One file's or module's tools, and the valve keys its Valves model takes."""
    only: str | None = None
    label = f"tools {entry.id!r}"
    if isinstance(source, Path):
        module, info = import_file(label, f"_toolbridge_tools_{entry.id}", source)
    else:
        name, _, attribute = source.partition(":")
        module = import_module(label, name)
        info = LocalModule(name=name, location=name, frontmatter=frontmatter(module.__doc__))
        only = attribute or None
    where = f"tools {entry.id!r}: {info.location}"
    tools: list[Tool] = []
    used: set[str] = set()
    for qualname, func, valves in _callables(entry, module, info, only):
        function = f"{info.name}:{qualname}"
        tools.append(build_tool(func, source=entry.id, function=function, where=where))
        used |= valves
    return info, tools, used


def _callables(
    entry: LocalTools, module: types.ModuleType, info: LocalModule, attribute: str | None
) -> Iterator[tuple[str, Callable[..., Any], set[str]]]:
    """(qualified name, callable, valve keys used) for every tool the module offers."""
    where = f"tools {entry.id!r}: {info.location}"
    if attribute is not None:
        func = getattr(module, attribute, None)
        if not callable(func):
            raise SourceError(f"{where}: has no function {attribute!r}")
        yield attribute, func, set()
        return
    tools_class = getattr(module, "Tools", None)
    if not isinstance(tools_class, type):
        kind = next(
            (k for k in FUNCTION_CLASSES if isinstance(getattr(module, k, None), type)), None
        )
        if kind is not None:
            hint = " (load it as a `filters` entry)" if kind == "Filter" else ""
            raise SourceError(
                f"{where}: defines `class {kind}`, an Open WebUI Function, not a `class Tools`: "
                f"it has no tools to offer{hint}"
            )
        for name, value in vars(module).items():
            own = inspect.isfunction(value) and value.__module__ == module.__name__
            if own and not name.startswith("_"):
                yield name, value, set()
        return
    instance = construct(tools_class, where, module)
    used = set(set_valves(instance, entry.valves, where) or ())
    for name in _methods(tools_class):
        yield f"Tools.{name}", getattr(instance, name), used


def _methods(tools_class: type) -> list[str]:
    """The public methods of a Tools class, its own first, then those it inherits (as Open
    WebUI lists them), each once, in the order the classes define them."""
    found: list[str] = []
    for klass in tools_class.__mro__:
        if klass is object:
            continue
        for name, value in vars(klass).items():
            if name.startswith("_") or name in found or isinstance(value, type):
                continue
            if isinstance(value, staticmethod | classmethod) or inspect.isfunction(value):
                found.append(name)
            elif callable(value) and inspect.isfunction(getattr(value, "__wrapped__", None)):
                found.append(name)  # a method behind a decorator object (`functools.lru_cache`)
    return found


def _named(entry: LocalTools, tools: list[Tool]) -> tuple[Tool, ...]:
    """Prefix the names, make them valid and unique within the entry, and say what changed."""
    prefix = entry.prefix or ""
    final, notes = names.assign(
        (names.safe_name(t.original_name, prefix=prefix), _prefix(prefix, t.original_name), t.where)
        for t in tools
    )
    by_where = {note.where: note for note in notes}
    return tuple(
        dataclasses.replace(
            tool,
            name=name,
            notes=(*tool.notes, by_where[tool.where]) if tool.where in by_where else tool.notes,
            target=_with_timeout(tool.target, entry.timeout),
        )
        for tool, name in zip(tools, final, strict=True)
    )


def _with_timeout(target: Any, timeout: float | None) -> Any:
    """The entry's `timeout`, when it gives one, on each of its functions."""
    if timeout is None or not isinstance(target, PythonFunction):
        return target
    return dataclasses.replace(target, timeout=timeout)


def _prefix(prefix: str, name: str) -> str:
    return f"{prefix}_{name}" if prefix else name
