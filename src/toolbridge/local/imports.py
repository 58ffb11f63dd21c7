"""Executing a tool or filter file as a module of its own, or importing a named module, with
errors that say which import failed and why.

A file that imports `open_webui` (or one of the short names Open WebUI rewrites to it:
`utils`, `apps`, `main`, `config`) needs the Open WebUI application, which is not here: the
error says so and names the import. A missing third-party package names the file's
`requirements` that are not installed, and the `toolbridge[openwebui]` extra when Open WebUI
would have provided the package.

Trust: the files are the operator's (config entries); running them is the point.
"""

from __future__ import annotations

import ast
import asyncio
import importlib
import importlib.abc
import importlib.util
import logging
import re
import sys
import threading
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any

from toolbridge.errors import SourceError
from toolbridge.file_stamps import stamp
from toolbridge.local.docstrings import frontmatter
from toolbridge.local.requirements import installed, requirements
from toolbridge.local.runner import TOOL_LOOP
from toolbridge.local.signatures import cause
from toolbridge.local.sources import LocalModule, display

logger = logging.getLogger(__name__)

_MODULE_NAME = re.compile(r"[^A-Za-z0-9_]")
IMPORT_TIMEOUT = 60.0
"""Seconds a tool or filter file's top level may take to run (its imports included)."""
SLOW_IMPORT = 10.0
"""Seconds after which a file's code still running is logged (a start seems stuck otherwise)."""
MAX_LOADING = 16
"""Files (`tools` entries, a folder's files, `filters` entries) whose code runs at once: one
after the other, k files that never finish would hold a start for k times IMPORT_TIMEOUT."""
OPEN_WEBUI_NAMES = frozenset({"open_webui", "utils", "apps", "main", "config"})
"""`open_webui`, and the old top-level names Open WebUI rewrites to `open_webui.*`."""
OPENWEBUI_EXTRA = {
    "fastapi": "fastapi",
    "requests": "requests",
    "httpx": "httpx",
    "bs4": "beautifulsoup4",
    "aiofiles": "aiofiles",
    "pytz": "pytz",
    "dateutil": "python-dateutil",
    "markdown": "markdown",
    "loguru": "loguru",
}
"""Modules Open WebUI's runtime gives tool files, by import name: `toolbridge[openwebui]`."""


def import_file(label: str, namespace: str, path: Path) -> tuple[types.ModuleType, LocalModule]:
    """Execute `path` as a module under a private name, `namespace` (unique to the entry) and
    the file's stem, that nothing else shares. `label` starts every error (`tools 'x'`)."""
    where = f"{label}: {display(path)}"
    try:
        source = path.read_text(encoding="utf-8")
        tree = ast.parse(source, filename=str(path))
    except SyntaxError as exc:
        raise SourceError(f"{where}:{exc.lineno}: invalid Python: {exc.msg}") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise SourceError(f"{where}: cannot be read: {exc}") from exc
    info = LocalModule(
        name=path.stem, location=display(path), frontmatter=frontmatter(ast.get_docstring(tree))
    )
    name = _MODULE_NAME.sub("_", f"{namespace}__{path.stem}")
    spec = importlib.util.spec_from_file_location(name, path)
    # A `.py` path always gets a spec with a source loader.
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    # Registered under its private name while it runs and after: dataclasses, pydantic and
    # typing look classes' modules up in sys.modules to resolve string annotations.
    sys.modules[name] = module
    loader = spec.loader
    try:
        bounded(
            lambda: loader.exec_module(module),
            module.__name__,
            where=f"{where}: its top level",
            key=("import", str(path), stamp(path)),
        )
    except StillRunning as exc:
        sys.modules.pop(name, None)
        raise SourceError(f"{where}: its top level {exc}") from None
    except (Exception, SystemExit, KeyboardInterrupt) as exc:
        sys.modules.pop(name, None)
        located = line_in(exc, path) is not None
        raise SourceError(
            f"{at_line(where, exc, path)}: {_why(exc, tree, info, located=located)}"
        ) from exc
    return module, info


def at_line(where: str, exc: BaseException, path: Path | str | None) -> str:
    """`where`, and the line of the file `path` the exception was raised from (`line_in`)."""
    line = line_in(exc, path)
    return f"{where}:{line}" if line is not None else where


def line_in(exc: BaseException, path: Path | str | None) -> int | None:
    """The line of the file `path` the exception was raised from (its deepest frame there):
    what an operator looks at first; None when it was not raised from that file."""
    if path is None:
        return None
    wanted = str(path)
    line = None
    tb = exc.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == wanted:
            line = tb.tb_lineno
        tb = tb.tb_next
    return line


class StillRunning(Exception):
    """A file's own code (its top level, its `Tools()`) outlived IMPORT_TIMEOUT; its text says
    so, to follow what ran ("its top level")."""


Key = tuple[Any, ...]
"""What `bounded` runs: ("import", path, stamp), ("construct", path, stamp, class), ("module",
name)."""
_STUCK: dict[Key, threading.Thread | None] = {}
"""The threads of files' code that outlived IMPORT_TIMEOUT, by what they ran (`bounded`'s key:
the file as it was). One per version of a file at most: the same code is not run again while
it still runs, so each reload neither waits IMPORT_TIMEOUT once more nor leaves one more thread.
None: it outlived it in the process that started this one (`serve --workers`' check)."""
_STUCK_LOCK = threading.Lock()
_NOT_STUCK = object()


def stuck() -> list[Any]:
    """The keys of the code still running past its time here, as JSON values (for the worker
    processes this one starts: `taken_as_stuck`)."""
    with _STUCK_LOCK:
        return [key for key, thread in _STUCK.items() if thread is None or thread.is_alive()]


def taken_as_stuck(keys: list[Any]) -> None:
    """Code the process that started this one found running past its time (`stuck`): not run
    here either while it is as it was (each worker would wait IMPORT_TIMEOUT for it again)."""
    with _STUCK_LOCK:
        for key in keys:
            if isinstance(key, list):
                _STUCK.setdefault(_tupled(key), None)


def _tupled(value: Any) -> Any:
    """A key read back from JSON: its lists tuples again (a file's stamp is one)."""
    return tuple(_tupled(v) for v in value) if isinstance(value, list) else value


def bounded(call: Callable[[], Any], name: str, *, where: str = "", key: Key | None = None) -> Any:
    """`call()` run in a thread of its own (named for `name`), waiting IMPORT_TIMEOUT for it: a
    file's code that never returns (`while True: ...` at its top level or in `Tools()`) holds
    that thread, not the start, the reload or the admin request that loads it; StillRunning
    then. What it returns is returned here, and what it raises raised.

    `key` names what `call` runs (a file as it was, by its stamp): while an earlier run of it
    still runs past its time, it is StillRunning at once. `where` names it in the log line that
    says it is slow (after SLOW_IMPORT seconds)."""
    if key is not None:
        with _STUCK_LOCK:
            earlier = _STUCK.get(key, _NOT_STUCK)
            if earlier is None or (isinstance(earlier, threading.Thread) and earlier.is_alive()):
                raise StillRunning(
                    f"did not finish within {IMPORT_TIMEOUT:g} s when it was loaded before, and "
                    "still runs: it is not run again until it changes or the gateway restarts"
                )
            _STUCK.pop(key, None)
    done = threading.Event()
    outcome: list[Any] = []
    raised: list[BaseException] = []

    def run() -> None:
        try:
            # Files that take the current loop at their top level (`asyncio.Lock()` on 3.9,
            # `asyncio.get_event_loop()`) get the loop their async tools run on.
            asyncio.set_event_loop(TOOL_LOOP.loop())
            outcome.append(call())
        except BaseException as exc:
            raised.append(exc)
        finally:
            done.set()

    thread = threading.Thread(target=run, name=f"toolbridge-load-{name}", daemon=True)
    thread.start()
    slow = min(SLOW_IMPORT, IMPORT_TIMEOUT)
    if not done.wait(slow):
        logger.warning(
            "%s has run %g s; it is given up at %g s", where or name, slow, IMPORT_TIMEOUT
        )
        if not done.wait(IMPORT_TIMEOUT - slow):
            if key is not None:
                with _STUCK_LOCK:
                    _STUCK[key] = thread
            raise StillRunning(
                f"did not finish within {IMPORT_TIMEOUT:g} s (it still runs, in a thread of its "
                "own, until the gateway restarts)"
            )
    if raised:
        raise raised[0]
    return outcome[0]


def construct(cls: type, where: str, module: types.ModuleType) -> Any:
    """`cls()` (a file's `Tools` or `Filter`), bounded as its top level is: its `__init__` is
    the file's own code too. SourceError, saying so, when it raises or never returns."""
    file = getattr(module, "__file__", None)
    try:
        return bounded(
            cls,
            f"{module.__name__}.{cls.__name__}",
            where=f"{where}: {cls.__name__}()",
            key=("construct", file, stamp(Path(file)), cls.__name__) if file else None,
        )
    except StillRunning as exc:
        raise SourceError(f"{where}: {cls.__name__}() {exc}") from None
    except (Exception, SystemExit, KeyboardInterrupt) as exc:
        at = at_line(where, exc, file)
        raise SourceError(f"{at}: {cls.__name__}() failed: {cause(exc)}") from exc


def import_module(label: str, name: str) -> types.ModuleType:
    """An installed module, imported as a file is run: bounded (`bounded`), in a thread of its
    own; one whose import outlives IMPORT_TIMEOUT is not imported again while it runs."""
    try:
        module = bounded(
            lambda: importlib.import_module(name),
            name,
            where=f"{label}: module {name!r}",
            key=("module", name),
        )
    except StillRunning as exc:
        raise SourceError(f"{label}: module {name!r}: its import {exc}") from None
    except (Exception, SystemExit, KeyboardInterrupt) as exc:
        raise SourceError(f"{label}: module {name!r} cannot be imported: {cause(exc)}") from exc
    assert isinstance(module, types.ModuleType)
    return module


def _why(exc: BaseException, tree: ast.Module, info: LocalModule, *, located: bool) -> str:
    """Why a file could not be imported, naming the import when one failed (and its line,
    unless the error is `located` at it already)."""
    missing = exc.name if isinstance(exc, ModuleNotFoundError) else None
    top = (missing or "").split(".")[0]
    statement = _import_of(tree, top) if top else None
    if top in OPEN_WEBUI_NAMES and not installed(top.replace("_", "-")):
        line, text = statement or (0, f"import {missing}")
        at = f" (line {line})" if line and not located else ""
        return (
            f"needs the Open WebUI application: `{text}`{at} imports Open WebUI's own code, "
            "which exists only inside Open WebUI; toolbridge runs tool files without it"
        )
    hints = []
    named = requirements(info)
    pending = [r for r in named if not installed(r)]
    if pending:
        hints.append(f"requirements not installed: {', '.join(pending)}")
    if named and top and top not in OPENWEBUI_EXTRA and not any(_names(r, top) for r in named):
        hints.append(f"its frontmatter `requirements` do not name {top!r}")
    if top in OPENWEBUI_EXTRA and not installed(OPENWEBUI_EXTRA[top]):
        hints.append("Open WebUI provides it: pip install 'toolbridge[openwebui]'")
    hint = f" ({'; '.join(hints)})" if hints else ""
    return f"cannot be imported: {cause(exc)}{hint}"


def _names(requirement: str, module: str) -> bool:
    """Whether `requirement` (`loguru>=0.7`) names the package of `module`, going by name."""
    name = re.split(r"[\s\[<>=!~;]", requirement.strip(), maxsplit=1)[0]
    return name.lower().replace("-", "_").replace(".", "_") == module.lower()


def _import_of(tree: ast.Module, top: str) -> tuple[int, str] | None:
    """The first statement that imports module `top` (or something under it), as written."""
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        else:
            continue
        if any(name.split(".")[0] == top for name in names):
            return node.lineno, ast.unparse(node)
    return None
