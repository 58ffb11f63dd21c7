"""`filters:` entries loaded: each file (or module) with a `class Filter` instantiated once,
its `Valves` filled from the entry's `valves`, its priority, scope and handlers read.

A file is loaded as a tools entry's file is (`local.imports`): under a private module name,
with the same errors. A reload imports only the files that changed; a file that an edit breaks
keeps its last good version, and its status says why.
"""

from __future__ import annotations

import inspect
import logging
import threading
import time
import types
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from toolbridge.blocking import side_by_side
from toolbridge.config import Config, FilterEntry
from toolbridge.errors import SourceError
from toolbridge.local.imports import MAX_LOADING, construct, import_file, import_module
from toolbridge.local.signatures import is_injected, set_valves
from toolbridge.local.sources import display
from toolbridge.schemas import json_kind

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True, kw_only=True)
class Handler:
    """A filter's `inlet` or `outlet`, and how to call it."""

    func: Callable[..., Any]
    payload: str | None
    """The parameter that receives the call (or result) dict; None when it takes none."""
    injected: tuple[str, ...]
    """The host parameters it takes (`__user__`, `__metadata__`, ...)."""
    is_async: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class Filter:
    """One loaded filter."""

    id: str
    location: str
    instance: Any
    inlet: Handler | None
    outlet: Handler | None
    priority: int
    sources: frozenset[str]
    """Source ids it applies to; empty: all."""
    tools: tuple[str, ...]
    """Tool-name globs it applies to; empty: all."""
    required: bool
    timeout: float
    file_handler: bool
    """Open WebUI's `file_handler = True`: the filter handles the call's files itself, so the
    tool gets none."""
    toggle: bool = False
    """Open WebUI's `toggle = True`: a switch, off unless the entry says `switched_on`."""
    switched_on: bool = False
    warnings: tuple[str, ...] = ()
    """What makes it fail every run, or do nothing (said at load, and by `/v1/servers`)."""

    @property
    def off(self) -> bool:
        """A switch left off: loaded, and run on no call."""
        return self.toggle and not self.switched_on


@dataclass(frozen=True, slots=True, kw_only=True)
class FilterStatus:
    """A filter entry as loaded: its filter, or the error that keeps it down (with its last good
    version, when it had one, still serving)."""

    entry: FilterEntry
    location: str
    filter: Filter | None
    error: str | None = None
    loaded_at: float = 0.0


FilterCache = dict[tuple[str, str, int, int], tuple[FilterEntry, Filter]]
"""Loaded filter files by (entry id, path, mtime in ns, size), with the entry they were loaded
for: a reload imports only the files (or entries) that changed."""
_CACHE_LOCK = threading.Lock()
"""Held while a FilterCache is changed (entries load side by side; never held while one runs)."""


def load_filters(
    config: Config,
    cache: FilterCache,
    previous: tuple[FilterStatus, ...] = (),
    only: frozenset[str] | None = None,
) -> tuple[FilterStatus, ...]:
    """Every `filters` entry, in config order. With `only`, the other entries keep what they
    had in `previous`. An entry that fails keeps its previous filter (and says why)."""
    earlier = {status.entry.id: status for status in previous}

    def status(entry: FilterEntry) -> FilterStatus:
        old = earlier.get(entry.id)
        if only is not None and entry.id not in only and old is not None and old.entry == entry:
            return old
        try:
            location, loaded = _load(entry, config.base_dir, cache)
        except SourceError as exc:
            kept = old.filter if old is not None and old.entry == entry else None
            logger.error("filter %s is down: %s", entry.id, exc)
            where = old.location if old is not None else _location(entry, config.base_dir)
            return FilterStatus(
                entry=entry, location=where, filter=kept, error=str(exc), loaded_at=time.time()
            )
        if loaded.off and (old is None or old.filter is not loaded):
            logger.warning(
                "filter %s is a switch (`toggle = True`) and stays off: set `switched_on: true` "
                "in its entry to run it",
                entry.id,
            )
        return FilterStatus(entry=entry, location=location, filter=loaded, loaded_at=time.time())

    # Side by side, as tool files are: k files that never finish hold a start IMPORT_TIMEOUT once.
    return tuple(side_by_side(status, config.filters, MAX_LOADING))


def _location(entry: FilterEntry, base_dir: Path) -> str:
    if entry.module is not None:
        return entry.module
    return display((base_dir / str(entry.path)).resolve())


def _load(entry: FilterEntry, base_dir: Path, cache: FilterCache) -> tuple[str, Filter]:
    label = f"filters {entry.id!r}"
    if (entry.path is None) == (entry.module is None):
        raise SourceError(f"{label}: give exactly one of `path` or `module`")
    if entry.module is not None:
        return entry.module, _filter(entry, entry.module, import_module(label, entry.module))
    path = (base_dir / entry.path).resolve()  # type: ignore[operator]  # checked above
    location = display(path)
    if not path.is_file():
        raise SourceError(f"{label}: {location}: no such file")
    stat = path.stat()
    key = (entry.id, str(path), stat.st_mtime_ns, stat.st_size)
    found = cache.get(key)
    if found is not None and found[0] == entry:
        return location, found[1]
    module, _ = import_file(label, f"_toolbridge_filters_{entry.id}", path)
    loaded = _filter(entry, location, module)
    with _CACHE_LOCK:  # (entries load side by side)
        for old in [k for k in cache if k[:2] == key[:2]]:
            del cache[old]
        cache[key] = (entry, loaded)
    return location, loaded


def _filter(entry: FilterEntry, location: str, module: types.ModuleType) -> Filter:
    where = f"filters {entry.id!r}: {location}"
    cls = getattr(module, "Filter", None)
    if not isinstance(cls, type):
        raise SourceError(f"{where}: has no `class Filter` (an Open WebUI filter function)")
    instance = construct(cls, where, module)
    fields = set_valves(instance, entry.valves, where)
    if fields is not None:
        unknown = sorted(set(entry.valves) - fields)
        if unknown:
            known = ", ".join(sorted(fields)) or "none"
            raise SourceError(
                f"{where}: valves {', '.join(map(repr, unknown))} are not fields of the Filter's "
                f"Valves (it has: {known})"
            )
    elif entry.valves:
        raise SourceError(f"{where}: valves are given, but the Filter has no Valves model")
    warnings: list[str] = []
    inlet = _handler(where, getattr(instance, "inlet", None), "inlet", warnings)
    outlet = _handler(where, getattr(instance, "outlet", None), "outlet", warnings)
    if inlet is None and outlet is None:
        # Open WebUI loads it (a `stream`-only filter is one): it does nothing to tool calls.
        has = (
            "only `stream`, which tool calls have none of"
            if hasattr(instance, "stream")
            else "neither `inlet` nor `outlet`"
        )
        warnings.append(f"the Filter has {has}: it does nothing here")
    for warning in warnings:
        logger.warning("%s: %s", where, warning)
    return Filter(
        id=entry.id,
        location=location,
        instance=instance,
        inlet=inlet,
        outlet=outlet,
        priority=_priority(entry, instance, where),
        sources=frozenset(entry.sources),
        tools=entry.tools,
        required=entry.required,
        timeout=entry.timeout,
        file_handler=getattr(instance, "file_handler", False) is True,
        toggle=getattr(instance, "toggle", False) is True,
        switched_on=entry.switched_on,
        warnings=tuple(warnings),
    )


def _priority(entry: FilterEntry, instance: Any, where: str) -> int:
    """The entry's `priority`, else the Valves' (as Open WebUI reads it), else the Filter's."""
    if entry.priority is not None:
        return entry.priority
    for value in (
        getattr(getattr(instance, "valves", None), "priority", None),
        getattr(instance, "priority", None),
    ):
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise SourceError(f"{where}: priority must be a number, found {json_kind(value)}")
        return int(value)
    return 0


def _handler(where: str, func: Any, name: str, warnings: list[str]) -> Handler | None:
    if func is None:
        return None
    if not callable(func):
        raise SourceError(f"{where}: `{name}` is not a method")
    try:
        signature = inspect.signature(func)
    except (TypeError, ValueError) as exc:
        raise SourceError(f"{where}: {name}: cannot read its signature: {exc}") from exc
    payload: str | None = None
    injected: list[str] = []
    for param in signature.parameters.values():
        if param.kind in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD):
            continue
        if is_injected(param.name):
            injected.append(param.name)
        elif payload is None:
            payload = param.name
        elif param.default is inspect.Parameter.empty:
            # Open WebUI loads such a filter too, and its other handler works: this one
            # raises each time it runs (an inlet refuses, an outlet passes the result on).
            warnings.append(
                f"{name}: parameter {param.name!r} has no default, and the host fills only the "
                f"call ({payload!r}) and Open WebUI's `__name__` parameters: every run of it "
                "will fail"
            )
    return Handler(
        func=func,
        payload=payload,
        injected=tuple(injected),
        is_async=inspect.iscoroutinefunction(func),
    )
