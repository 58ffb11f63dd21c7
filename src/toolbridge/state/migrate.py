"""Bringing a store's schema to the newest version, each time a store opens.

Idempotent: a store already at the newest version is left as it is. Several processes may
start at once: on PostgreSQL they queue on an advisory lock, on SQLite on the file's write
lock (`BEGIN IMMEDIATE`), and the ones that come after find nothing left to do. Every step
runs in one transaction, so a migration that fails leaves the schema as it was.
"""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.ext.asyncio import AsyncEngine

from toolbridge.state.engine import writing

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def _config(connection: sa.Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def head() -> str:
    """The newest schema version this code knows."""
    revision = ScriptDirectory.from_config(_config()).get_current_head()
    assert revision is not None
    return revision


async def upgrade(engine: AsyncEngine) -> None:
    """Migrate the store behind `engine` to `head()` (holding the migration lock)."""
    async with writing(engine) as connection:  # takes the lock
        await connection.run_sync(lambda sync: command.upgrade(_config(sync), "head"))


async def current(engine: AsyncEngine) -> str | None:
    """The store's schema version, or None for an empty database."""
    async with engine.connect() as connection:
        return await connection.run_sync(
            lambda sync: MigrationContext.configure(sync).get_current_revision()
        )
