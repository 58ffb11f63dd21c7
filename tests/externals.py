"""The programs the tests use from outside this venv, found or installed on first use.

`python -m pytest` on a fresh clone must do its own set-up, so the tests that need these ask
for them through session fixtures (tests/conftest.py), which call `prism()` and
`mcp1_python()` here:

- **Prism** (Stoplight's mock server, the conformance oracle for documents openapi-core cannot
  read): `$TOOLBRIDGE_PRISM` when set, else `.ci/node_modules/.bin/prism`, installed there with
  npm (`npm install --prefix .ci @stoplight/prism-cli@5.14.2`) when it is missing.
- **An MCP client of the 1.x SDK** (the interoperability tests): it cannot share a venv with the
  2.x SDK the gateway uses (one package name), so it gets its own, `.ci/mcp1`, built with pip
  when missing; `$TOOLBRIDGE_MCP1_PYTHON` names another Python that has it.

An install holds an exclusive lock (`.ci/.install.lock`), so test runs started together install
once and the others wait; it writes a marker when it has finished, and one without a marker (an
interrupted run's) is removed and done again. What cannot be installed (no npm, no network) is
`Unavailable` with the command that would do it: the tests fail saying so, they do not skip.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CI = ROOT / ".ci"
LOCK = CI / ".install.lock"
PRISM_VERSION = "5.14.2"
"""The Prism release the tests are written against (the newest that runs on Node 20)."""
PRISM_PACKAGE = f"@stoplight/prism-cli@{PRISM_VERSION}"
PRISM_BINARY = CI / "node_modules" / ".bin" / "prism"
PRISM_MARKER = CI / "node_modules" / f".toolbridge-prism-{PRISM_VERSION}"
MCP1_REQUIREMENT = "mcp>=1.26,<2"
MCP1_VENV = CI / "mcp1"
MCP1_MARKER = MCP1_VENV / ".toolbridge-installed"
INSTALL_TIMEOUT = 600.0
"""Seconds an install may take (npm fetches some 300 packages for Prism)."""


class Unavailable(Exception):
    """A program the tests need is neither there nor installable here; the message says how."""


def prism(environ: Mapping[str, str] = os.environ) -> Path:
    """The `prism` executable: `$TOOLBRIDGE_PRISM`, else ours, installed when missing."""
    configured = environ.get("TOOLBRIDGE_PRISM")
    if configured:
        if _executable(Path(configured)):
            return Path(configured)
        raise Unavailable(f"TOOLBRIDGE_PRISM={configured} is not an executable")
    with _locked():
        if not (PRISM_MARKER.is_file() and _executable(PRISM_BINARY)):
            npm = shutil.which("npm")
            command = f"npm install --no-audit --no-fund --prefix .ci {PRISM_PACKAGE}"
            if npm is None:
                raise Unavailable(f"Prism is not installed and there is no npm to run `{command}`")
            PRISM_MARKER.unlink(missing_ok=True)
            _run([npm, *command.split()[1:], "--loglevel=error"], command)
            PRISM_MARKER.write_text(PRISM_PACKAGE + "\n")
    return PRISM_BINARY


def mcp1_python(environ: Mapping[str, str] = os.environ) -> Path:
    """A Python with the 1.x `mcp` SDK: `$TOOLBRIDGE_MCP1_PYTHON`, else ours, built when missing."""
    configured = environ.get("TOOLBRIDGE_MCP1_PYTHON")
    if configured:
        if _executable(Path(configured)):
            return Path(configured)
        raise Unavailable(f"TOOLBRIDGE_MCP1_PYTHON={configured} is not an executable")
    python = MCP1_VENV / "bin" / "python"
    with _locked():
        if not (MCP1_MARKER.is_file() and _executable(python)):
            shutil.rmtree(MCP1_VENV, ignore_errors=True)
            _run([sys.executable, "-m", "venv", str(MCP1_VENV)], "python -m venv .ci/mcp1")
            pip = [str(python), "-m", "pip", "install", "--quiet", MCP1_REQUIREMENT]
            _run(pip, f".ci/mcp1/bin/python -m pip install '{MCP1_REQUIREMENT}'")
            MCP1_MARKER.write_text(MCP1_REQUIREMENT + "\n")
    return python


@contextlib.contextmanager
def _locked() -> Iterator[None]:
    CI.mkdir(exist_ok=True)
    with LOCK.open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _run(argv: list[str], shown: str) -> None:
    try:
        done = subprocess.run(
            argv,
            cwd=ROOT,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=INSTALL_TIMEOUT,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise Unavailable(f"`{shown}` failed: {exc}") from None
    if done.returncode != 0:
        said = (done.stderr or done.stdout).strip().splitlines()[-5:]
        raise Unavailable(f"`{shown}` exited with {done.returncode}: {' / '.join(said)}")


def _executable(path: Path) -> bool:
    return path.is_file() and os.access(path, os.X_OK)
