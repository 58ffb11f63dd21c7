"""Shared fixtures: the feature documents in `specs/`; real PostgreSQL and Redis servers; and
the outside programs some tests use (Prism, an MCP 1.x client), found or installed once per
session by tests/externals.py."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests import externals
from tests.servers import Postgres, Redis

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def specs(monkeypatch: pytest.MonkeyPatch) -> Path:
    """The repository's `specs/` folder, with the working directory at the repository root.

    Notes and errors show file locations relative to the working directory, so with it fixed
    they read `specs/...` wherever pytest was started.
    """
    monkeypatch.chdir(ROOT)
    return ROOT / "specs"


@pytest.fixture(autouse=True)
def no_proxy_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    """Commands read proxy variables from the environment (and honour them): a developer's own
    must not route the tests' loopback servers through their proxy. Tests of proxies give
    their variables explicitly."""
    for name in ("https_proxy", "http_proxy", "all_proxy", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[Postgres]:
    """One real PostgreSQL for the session (tests make a fresh database each: `create_database`)."""
    server = Postgres()
    try:
        server.start()
        yield server
    finally:
        server.close()


@pytest.fixture(scope="session")
def redis_server() -> Iterator[Redis]:
    """One real redis-server for the session (tests flush it or use keys of their own)."""
    server = Redis()
    try:
        server.start()
        yield server
    finally:
        server.close()


@pytest.fixture(scope="session")
def prism_binary() -> Path:
    """Prism's `prism` executable; the tests that use it fail (never skip) without one."""
    try:
        return externals.prism()
    except externals.Unavailable as exc:
        missing = str(exc)
    pytest.fail(missing, pytrace=False)


@pytest.fixture(scope="session")
def mcp1_python() -> Path:
    """A Python with the 1.x `mcp` SDK, for the interoperability tests (fail, never skip)."""
    try:
        return externals.mcp1_python()
    except externals.Unavailable as exc:
        missing = str(exc)
    pytest.fail(missing, pytrace=False)
