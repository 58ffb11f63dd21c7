"""Shared fixtures: the feature documents in `specs/`."""

from __future__ import annotations

from pathlib import Path

import pytest

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
