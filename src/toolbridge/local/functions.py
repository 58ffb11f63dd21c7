"""Local Python tools: Open WebUI-style tool files and plain functions, as `Tool`s, and their calls.

A source is a `.py` file, a folder of them, or an importable module (`pkg.mod` or
`pkg.mod:function`). A module with a `class Tools` offers that class's public methods (the
class is instantiated once, with its `Valves` filled from the config); a module without one
offers its public functions defined in that file. `signatures.py` turns each callable into a
`Tool` (schema from signature and docstring); this module imports, instantiates and calls.

Conventions, all decorator-free so that a file runs unchanged in Open WebUI:

- **Read-only.** A tool is read-only (MCP `readOnlyHint`) only when its function has an
  attribute `readonly = True` (`now.readonly = True` after the method). Names are not guessed
  from: `get_or_create_...` would pass for read-only, and clients skip confirmations for those.
- **Frontmatter.** The `key: value` lines of the module docstring, as Open WebUI reads them
  (title, author, version, description, requirements, ...); keys in lower case. Missing
  `requirements` are noted (presence only, no versions); nothing is installed.
- **Names.** A tool is named after its function, with the entry's `prefix`; a function is
  `<module>:<qualname>` (`clock:Tools.now`, `pkg.mod:lookup`), unique within an entry.
- **Injected parameters.** `__user__`, `__metadata__`, `__id__`, `__event_emitter__`,
  `__event_call__`, `__messages__`, `__files__`, `__request__` and `__model__` are filled by the
  host and never appear in the schema; see `call_function` for their values.
"""

from __future__ import annotations

import ast
import dataclasses
import importlib
import importlib.metadata
import importlib.util
import inspect
import logging
import re
import subprocess
import sys
import types
from collections.abc import Callable, Generator, Iterator, Mapping
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, cast

import anyio
import anyio.to_thread
from pydantic import BaseModel, ValidationError
from pydantic_core import to_jsonable_python

from toolbridge import names
from toolbridge.config import LocalTools
from toolbridge.errors import InvalidArguments, SourceError
from toolbridge.local.docstrings import frontmatter
from toolbridge.local.signatures import Arguments, build_tool, cause
from toolbridge.tools import Note, PythonFunction, Tool, ToolResult

logger = logging.getLogger(__name__)

_MODULE_NAME = re.compile(r"[^A-Za-z0-9_]")
_REQUIREMENT = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")

EventSink = Callable[[Any], None]
"""Receives each event a tool emits, made JSON-able (`list.append` will do)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class LocalModule:
    """One module a tools entry loaded (a folder loads one per file)."""

    name: str
    """`clock` (a file's stem) or `pkg.mod`: the part before `:` in each function's name."""
    location: str
    frontmatter: Mapping[str, str] = field(default_factory=dict)


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


class EventCallNotSupported(RuntimeError):
    """Raised into a tool that calls `__event_call__`: there is no chat window to ask in."""


ModuleCache = dict[tuple[str, str, int, int], tuple["LocalModule", list[Tool], set[str]]]
"""Loaded files by (entry id, path, mtime in ns, size): a reload imports only what changed."""


def load_tools(
    entry: LocalTools, base_dir: Path, cache: ModuleCache | None = None
) -> LocalConversion:
    """Import an entry's file, folder or module and turn its callables into tools.

    Raises SourceError when nothing can be loaded. In a folder, a file that fails is a note and
    the other files still load. With `cache`, a file that has not changed since it was loaded
    keeps the tools it gave then: an edit reloads that module only.
    """
    location, sources, folder = _sources(entry, base_dir)
    tools: list[Tool] = []
    modules: list[LocalModule] = []
    notes: list[Note] = []
    used_valves: set[str] = set()
    for source in sources:
        if entry.install_requirements and isinstance(source, Path):
            notes.extend(install_requirements(source))
        try:
            info, found, used, kept = _cached_module(entry, source, cache)
            notes.extend(kept)
        except SourceError as exc:
            if not folder:
                raise
            where = _display(source) if isinstance(source, Path) else source
            notes.append(Note(kind="module-failed", message=str(exc), where=where))
            continue
        modules.append(info)
        tools.extend(found)
        used_valves |= used
        notes.extend(_requirement_notes(info))
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


def _sources(entry: LocalTools, base_dir: Path) -> tuple[str, list[Path | str], bool]:
    """The entry's location, its files or module, and whether it is a folder."""
    if (entry.path is None) == (entry.module is None):
        raise SourceError(f"tools {entry.id!r}: give exactly one of `path` or `module`")
    if entry.module is not None:
        return entry.module, [entry.module], False
    path = (base_dir / str(entry.path)).resolve()
    location = _display(path)
    if path.is_file():
        return location, [path], False
    if not path.is_dir():
        raise SourceError(f"tools {entry.id!r}: {location}: no such file or folder")
    files = sorted(p for p in path.glob("*.py") if not p.name.startswith(("_", ".")))
    return location, list(files), True


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
    key = (entry.id, str(source), stat.st_mtime_ns, stat.st_size)
    if key in cache:
        return (*cache[key], [])
    earlier = [k for k in cache if k[:2] == key[:2]]
    try:
        loaded = _load_module(entry, source)
    except SourceError as exc:
        if not earlier:
            raise
        note = Note(
            kind="module-kept",
            message=f"{exc}; its last good version is still served",
            where=_display(source),
        )
        return (*cache[earlier[-1]], [note])
    for old in earlier:
        del cache[old]
    cache[key] = loaded
    return (*loaded, [])


def _load_module(entry: LocalTools, source: Path | str) -> tuple[LocalModule, list[Tool], set[str]]:
    """One file's or module's tools, and the valve keys its Valves model takes."""
    only: str | None = None
    if isinstance(source, Path):
        module, info = _import_file(entry, source)
    else:
        name, _, attribute = source.partition(":")
        module = _import_module(entry, name)
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


def _import_module(entry: LocalTools, name: str) -> types.ModuleType:
    try:
        return importlib.import_module(name)
    except Exception as exc:
        raise SourceError(
            f"tools {entry.id!r}: module {name!r} cannot be imported: {cause(exc)}"
        ) from exc


def _import_file(entry: LocalTools, path: Path) -> tuple[types.ModuleType, LocalModule]:
    """Execute a file as a module of its own, under a private name no other entry shares."""
    where = f"tools {entry.id!r}: {_display(path)}"
    try:
        source = path.read_text(encoding="utf-8")
        tree = ast.parse(source, filename=str(path))
    except SyntaxError as exc:
        raise SourceError(f"{where}:{exc.lineno}: invalid Python: {exc.msg}") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise SourceError(f"{where}: cannot be read: {exc}") from exc
    info = LocalModule(
        name=path.stem, location=_display(path), frontmatter=frontmatter(ast.get_docstring(tree))
    )
    name = "_toolbridge_tools_" + _MODULE_NAME.sub("_", f"{entry.id}__{path.stem}")
    spec = importlib.util.spec_from_file_location(name, path)
    # A `.py` path always gets a spec with a source loader.
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    # Registered under its private name while it runs and after: dataclasses, pydantic and
    # typing look classes' modules up in sys.modules to resolve string annotations.
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except (Exception, SystemExit) as exc:
        sys.modules.pop(name, None)
        missing = [r for r in _requirements(info) if not _installed(r)]
        hint = f" (requirements not installed: {', '.join(missing)})" if missing else ""
        raise SourceError(f"{where}: cannot be imported: {cause(exc)}{hint}") from exc
    return module, info


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
        for name, value in vars(module).items():
            own = inspect.isfunction(value) and value.__module__ == module.__name__
            if own and not name.startswith("_"):
                yield name, value, set()
        return
    try:
        instance = tools_class()
    except Exception as exc:
        raise SourceError(f"{where}: Tools() failed: {cause(exc)}") from exc
    valves_model = getattr(tools_class, "Valves", None)
    used: set[str] = set()
    if isinstance(valves_model, type) and issubclass(valves_model, BaseModel):
        try:
            instance.valves = valves_model.model_validate(dict(entry.valves))
        except ValidationError as exc:
            problems = "; ".join(
                f"valves.{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()
            )
            raise SourceError(f"{where}: {problems}") from None
        used = {f.alias or n for n, f in valves_model.model_fields.items()}
    for name, value in vars(tools_class).items():
        if name.startswith("_") or isinstance(value, type):
            continue
        if isinstance(value, staticmethod | classmethod) or inspect.isfunction(value):
            yield f"Tools.{name}", getattr(instance, name), used


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


INSTALL_TIMEOUT = 300.0
_SPECIFIER = re.compile(
    r"^[A-Za-z0-9][A-Za-z0-9._-]*(\[[A-Za-z0-9._,-]+\])?"
    r"(\s*(==|!=|<=|>=|~=|<|>)\s*[A-Za-z0-9.*+!_-]+(\s*,\s*(==|!=|<=|>=|~=|<|>)\s*[A-Za-z0-9.*+!_-]+)*)?$"
)
"""A package name with optional extras and version bounds: never a path, URL or pip option."""


def install_requirements(path: Path) -> list[Note]:
    """Install what a tool file's frontmatter `requirements` names, when it is missing.

    Only plain package specifiers are installed (`name`, `name[extra]>=1,<2`); anything else
    (a pip option, a URL, a path) is refused with a note. pip runs with `--` before the
    specifiers, so none can be read as an option.
    """
    try:
        docstring = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8")))
    except (OSError, SyntaxError, ValueError):
        return []  # the import reports the file's problem
    wanted = [r.strip() for r in frontmatter(docstring).get("requirements", "").split(",")]
    notes: list[Note] = []
    install = []
    for requirement in filter(None, wanted):
        if not _SPECIFIER.match(requirement):
            notes.append(
                Note(
                    kind="requirement-refused",
                    message=f"requirement {requirement!r} is not a package specifier; "
                    "not installed",
                    where=_display(path),
                )
            )
        elif not _installed(requirement):
            install.append(requirement)
    if not install:
        return notes
    command = [sys.executable, "-m", "pip", "install", "--disable-pip-version-check"]
    command += ["--no-input", "--quiet", "--", *install]
    try:
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=INSTALL_TIMEOUT, check=False
        )
    except subprocess.TimeoutExpired:
        failure: str | None = f"pip did not finish within {INSTALL_TIMEOUT:g} s"
    else:
        failure = None if done.returncode == 0 else (done.stderr.strip().splitlines() or ["?"])[-1]
    if failure is None:
        logger.info("installed %s for %s", ", ".join(install), path)
        importlib.invalidate_caches()
        return notes
    message = f"installing {', '.join(install)} failed: {failure[:300]}"
    return [*notes, Note(kind="requirement-install-failed", message=message, where=_display(path))]


def _requirements(info: LocalModule) -> list[str]:
    text = info.frontmatter.get("requirements", "")
    return [r.strip() for r in text.split(",") if r.strip()]


def _installed(requirement: str) -> bool:
    match = _REQUIREMENT.match(requirement)
    if match is None:
        return False
    try:
        importlib.metadata.distribution(match.group(1))
    except importlib.metadata.PackageNotFoundError:
        return False
    return True


def _requirement_notes(info: LocalModule) -> list[Note]:
    return [
        Note(
            kind="requirement-missing",
            message=f"requirement {r!r} is not installed (toolbridge installs nothing)",
            where=info.location,
        )
        for r in _requirements(info)
        if not _installed(r)
    ]


def _display(path: Path) -> str:
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


# -- calls -------------------------------------------------------------------------------------


class _Done:
    """What the event emitter returns: awaitable (async tools), harmless to drop (sync ones)."""

    def __await__(self) -> Generator[None, None, None]:
        yield from ()


async def call_function(
    fn: PythonFunction,
    arguments: Mapping[str, Any],
    *,
    user: Mapping[str, Any] | None = None,
    metadata: Mapping[str, Any] | None = None,
    on_event: EventSink | None = None,
) -> ToolResult:
    """Validate the arguments, call the function, and turn what happened into a `ToolResult`.

    Raises InvalidArguments (JSON paths like `$.address.city`); everything else is a result: a
    raised exception is `ok` false with `"<Type>: message"` (the traceback goes to the log), and
    so is a call that outlives `fn.timeout`. Injected values:

    - `__user__`: a copy of `user`, with `valves` validated into the Tools class's `UserValves`
      (from `user["valves"]`, else its defaults) when it defines one;
    - `__metadata__`: `metadata` or `{}`; `__id__`: the tools entry id;
    - `__event_emitter__`: each event (made JSON-able) goes to `on_event`, called right away, in
      the tool's thread for a sync tool. Events are a side channel and never change `result`:
      the caller collects them (`on_event=events.append`) or streams them;
    - `__event_call__`: raises EventCallNotSupported, so a confirmation is never assumed;
    - `__messages__` and `__files__`: `[]`; `__request__` and `__model__`: None.
    """
    if not isinstance(cast(object, arguments), Mapping):  # JSON bodies are not always objects
        found = type(arguments).__name__
        raise InvalidArguments(fn.function, [("$", f"expected an object, found {found}")])
    try:
        parsed = fn.arguments_model.model_validate(dict(arguments))
    except ValidationError as exc:
        raise InvalidArguments(fn.function, _problems(exc, "$")) from None
    args: list[Any] = []
    kwargs: dict[str, Any] = {}
    for name, param, positional in cast(type[Arguments], type(parsed)).call_plan:
        if positional:
            args.append(getattr(parsed, name))
        else:
            kwargs[param] = getattr(parsed, name)
    kwargs.update(_injected(fn, user, metadata, on_event))
    try:
        with anyio.move_on_after(fn.timeout) as scope:
            if fn.is_async:
                value = await fn.func(*args, **kwargs)
            else:
                call = partial(fn.func, *args, **kwargs)
                value = await anyio.to_thread.run_sync(call, abandon_on_cancel=True)
            if inspect.isawaitable(value):
                value = await value
    except (Exception, SystemExit) as exc:
        logger.exception("local tool %s raised", fn.function)
        return ToolResult(ok=False, content_type="text/plain", result=cause(exc))
    if scope.cancelled_caught:
        if not fn.is_async:
            logger.warning("local tool %s timed out; its thread runs on", fn.function)
        message = f"timed out after {fn.timeout:g} s"
        return ToolResult(ok=False, content_type="text/plain", result=message)
    return _result(value)


def _injected(
    fn: PythonFunction,
    user: Mapping[str, Any] | None,
    metadata: Mapping[str, Any] | None,
    on_event: EventSink | None,
) -> dict[str, Any]:
    def emit(event: Any) -> _Done:
        if on_event is not None:
            on_event(to_jsonable_python(event, fallback=str))
        return _Done()

    def event_call(event: Any) -> Any:
        raise EventCallNotSupported(
            "__event_call__ is not supported here: it asks the user in a chat window, and "
            "toolbridge serves tools to programs"
        )

    values: dict[str, Any] = {}
    for name in fn.injected:
        if name == "__user__":
            values[name] = _user(fn, user)
        elif name == "__metadata__":
            values[name] = dict(metadata or {})
        elif name == "__id__":
            values[name] = fn.tool_id
        elif name == "__event_emitter__":
            values[name] = emit
        elif name == "__event_call__":
            values[name] = event_call
        elif name in ("__messages__", "__files__"):
            values[name] = []
        else:
            values[name] = None
    return values


def _user(fn: PythonFunction, user: Mapping[str, Any] | None) -> dict[str, Any]:
    given = dict(user or {})
    model = getattr(getattr(fn.func, "__self__", None), "UserValves", None)
    if isinstance(model, type) and issubclass(model, BaseModel):
        try:
            given["valves"] = model.model_validate(given.get("valves") or {})
        except ValidationError as exc:
            raise InvalidArguments(fn.function, _problems(exc, "$.__user__.valves")) from None
    return given


def _problems(exc: ValidationError, root: str) -> list[tuple[str, str]]:
    problems = []
    for error in exc.errors():
        path = root
        for part in error["loc"]:
            path += f"[{part}]" if isinstance(part, int) else f".{part}"
        problems.append((path, error["msg"]))
    return problems


def _result(value: Any) -> ToolResult:
    if isinstance(value, str):
        return ToolResult(ok=True, content_type="text/plain", result=value)
    if isinstance(value, BaseModel):
        value = value.model_dump(mode="json")
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        value = to_jsonable_python(value, fallback=str)
    elif not isinstance(value, dict | list | tuple | int | float | bool | None):
        return ToolResult(ok=True, content_type="text/plain", result=str(value))
    json = to_jsonable_python(value, fallback=str)
    return ToolResult(ok=True, content_type="application/json", result=json)
