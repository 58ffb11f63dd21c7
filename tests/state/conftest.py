"""The store under test, once on SQLite and once on a real PostgreSQL (a fresh database each)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.servers import Postgres
from toolbridge.state import SecretBox, Store

KEY_A = "n9FIdeuS4AXJyM1b2Y3X2Ns2fKR4fbBgAm5bq7Xk2qQ="
KEY_B = "Xv3QkV1o3tqz2Y0Jg4m0m3r8m7f5vWn1Qh6c9y2KxLc="
NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
"""The time every write in these tests happens at (the store's clock is fixed)."""


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"  # asyncpg runs on asyncio only


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A new, empty store: a SQLite file, or a new database on the session's PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'state.db'}"
    postgres: Postgres = request.getfixturevalue("postgres_server")
    return postgres.create_database()


@pytest.fixture
async def store(store_url: str) -> AsyncIterator[Store]:
    """The store at `store_url`, opened with KEY_A and a fixed clock."""
    async with await Store.open(store_url, secrets=SecretBox([KEY_A]), clock=lambda: NOW) as store:
        yield store
