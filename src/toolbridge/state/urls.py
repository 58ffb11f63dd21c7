"""Which store a config points at: the `state.url` key, its default, and what SQLAlchemy needs.

Without `state`, the store is the SQLite file `toolbridge-state.db` in the config file's folder
(the gateway passes the working directory for the bundled demo). A relative SQLite path is
relative to that folder too. PostgreSQL URLs are used as written; the driver is asyncpg.
"""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa

from toolbridge.config import State

DEFAULT_FILE = "toolbridge-state.db"
"""The SQLite file the store lives in when the config has no `state` key."""


def resolve_url(state: State | None, base_dir: Path) -> str:
    """The store URL for a config: `state.url`, with a relative SQLite path made absolute
    against `base_dir` (the config file's folder), or the default SQLite file there."""
    if state is None or state.url is None:
        return f"sqlite:///{(base_dir / DEFAULT_FILE).resolve()}"
    if state.url.startswith("sqlite:///"):
        path = Path(state.url.removeprefix("sqlite:///"))
        return f"sqlite:///{(base_dir / path).resolve()}"
    return state.url


def driver_url(url: str) -> sa.URL:
    """The SQLAlchemy URL with the async driver: aiosqlite for SQLite, asyncpg for PostgreSQL."""
    parsed = sa.make_url(url)
    backend = parsed.drivername.split("+", 1)[0]
    if backend == "sqlite":
        return parsed.set(drivername="sqlite+aiosqlite")
    if backend in ("postgresql", "postgres"):
        return parsed.set(drivername="postgresql+asyncpg")
    raise ValueError(f"expected a sqlite:/// or postgresql:// URL, found scheme {backend!r}")


def sqlite_file(url: str) -> Path | None:
    """The file of a SQLite URL, or None for another database."""
    parsed = sa.make_url(url)
    if parsed.get_backend_name() != "sqlite" or not parsed.database:
        return None
    return Path(parsed.database)


def shown(url: str) -> str:
    """The URL as errors and logs may show it: without its password."""
    try:
        return sa.make_url(url).render_as_string(hide_password=True)
    except sa.exc.ArgumentError:
        return "(an unreadable URL)"
