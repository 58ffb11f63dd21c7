"""The `requirements` of a tool file's frontmatter: which are installed, notes for those that are
not, and installing them for an entry that asks (`install_requirements: true`).

Only presence is checked (no versions). Importing the file is `loader`'s; this module only reads
its docstring.
"""

from __future__ import annotations

import ast
import importlib
import importlib.metadata
import importlib.util
import logging
import re
import subprocess
import sys
import threading
from pathlib import Path

from toolbridge.local.docstrings import frontmatter
from toolbridge.local.sources import LocalModule, display
from toolbridge.tools import Note

logger = logging.getLogger(__name__)

_REQUIREMENT = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")

INSTALL_TIMEOUT = 300.0
_PIP = threading.Lock()
"""One pip at a time in this process: `tools` entries load side by side, and two pips writing
one environment at once can leave it broken."""
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
                    where=display(path),
                )
            )
        elif not installed(requirement):
            install.append(requirement)
    if not install:
        return notes
    command = [sys.executable, "-m", "pip", "install", "--disable-pip-version-check"]
    command += ["--no-input", "--quiet", "--", *install]
    try:
        with _PIP:
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
    return [*notes, Note(kind="requirement-install-failed", message=message, where=display(path))]


def requirements(info: LocalModule) -> list[str]:
    text = info.frontmatter.get("requirements", "")
    return [r.strip() for r in text.split(",") if r.strip()]


def installed(requirement: str) -> bool:
    """Whether the package `requirement` names is installed, or a module of that name can be
    imported (files name `bs4`, the module of the package beautifulsoup4)."""
    match = _REQUIREMENT.match(requirement)
    if match is None:
        return False
    try:
        importlib.metadata.distribution(match.group(1))
    except importlib.metadata.PackageNotFoundError:
        pass
    else:
        return True
    module = match.group(1).replace("-", "_")
    if "." in module:  # finding `a.b` would import `a`
        return False
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def requirement_notes(info: LocalModule) -> list[Note]:
    return [
        Note(
            kind="requirement-missing",
            message=f"requirement {r!r} is not installed (toolbridge installs a file's "
            "requirements only when its entry says `install_requirements: true`)",
            where=info.location,
        )
        for r in requirements(info)
        if not installed(r)
    ]
