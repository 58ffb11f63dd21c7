"""Bringing a store's schema to the newest version, each time a store opens.

Idempotent: a store already at the newest version is left as it is. Several processes may
start at once: on PostgreSQL they queue on an advisory lock, on SQLite on the file's write
lock (`BEGIN IMMEDIATE`), and the ones that come after find nothing left to do. Every step
runs in one transaction, so a migration that fails leaves the schema as it was.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from toolbridge.state.engine import writing

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
HEAD = "0003"
"""The newest schema version (`head()` reads it from the migrations; a test holds them equal):
a store at it is opened without loading Alembic (a third of a second and 15 MB)."""


def _config(connection: sa.Connection | None = None) -> Config:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def head() -> str:
    """The newest schema version this code knows."""
    from alembic.script import ScriptDirectory

    revision = ScriptDirectory.from_config(_config()).get_current_head()
    assert revision is not None
    return revision


async def upgrade(engine: AsyncEngine) -> None:
    """Migrate the store behind `engine` to `head()` (holding the migration lock); nothing
    to do, and no lock taken, when it is at `HEAD` already."""
    if await _version(engine) == HEAD:
        return
    from alembic import command

    async with writing(engine) as connection:  # takes the lock
        await connection.run_sync(lambda sync: command.upgrade(_config(sync), "head"))


async def current(engine: AsyncEngine) -> str | None:
    """The store's schema version, or None for an empty database."""
    from alembic.runtime.migration import MigrationContext

    async with engine.connect() as connection:
        return await connection.run_sync(
            lambda sync: MigrationContext.configure(sync).get_current_revision()
        )


async def _version(engine: AsyncEngine) -> str | None:
    """`alembic_version`'s one row, read with plain SQL; None when there is no such table (or
    no single row in it): then Alembic decides."""
    async with engine.connect() as connection:
        try:
            rows = (
                await connection.execute(sa.text("SELECT version_num FROM alembic_version"))
            ).all()
        except sa.exc.DBAPIError:
            return None
    return str(rows[0][0]) if len(rows) == 1 else None
