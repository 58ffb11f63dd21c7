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
