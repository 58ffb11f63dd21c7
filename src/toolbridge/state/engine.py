"""The database connection: an async SQLAlchemy engine per store, and its failures as one error.

SQLite runs in WAL mode with a busy timeout, so several worker processes on one machine can
share the file; every write transaction starts with `BEGIN IMMEDIATE`, so two writers queue
instead of deadlocking. The file is put in WAL mode once, as a store opens (`wal_mode`): the
mode is kept in the file, and the switch is the one step SQLite does not wait for.
PostgreSQL connections are checked before use (`pool_pre_ping`), so a server that went away
and came back costs no failed call.

Limits: connecting to PostgreSQL may take `CONNECT_TIMEOUT` seconds and one statement
`STATEMENT_TIMEOUT`; a SQLite writer waits `BUSY_TIMEOUT` seconds for the file's lock.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, closing, contextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from toolbridge.errors import StoreUnavailable
from toolbridge.state.urls import driver_url, shown

CONNECT_TIMEOUT = 5.0
STATEMENT_TIMEOUT = 30.0
BUSY_TIMEOUT = 10.0
FEED_LOCK = 0x74_6F_6F_6C_62_72
"""PostgreSQL advisory lock taken by every write (and by migrations): writes commit in the
order their change ids were given, so a follower that read up to id N never misses one below."""
_WRITE = "toolbridge_write"
_WAL_RETRY = 0.02


def make_engine(url: str) -> AsyncEngine:
    """An engine for `url` (`sqlite:///...` or `postgresql://...`); connects lazily."""
    target = driver_url(url)
    if target.get_backend_name() == "sqlite":
        # hide_parameters: a failed statement's error (and its log line) never holds the
        # values it was given, which may be a caller's secret valves or credential.
        engine = create_async_engine(
            target, connect_args={"timeout": BUSY_TIMEOUT}, hide_parameters=True
        )
        event.listen(engine.sync_engine, "connect", _sqlite_connect)
        event.listen(engine.sync_engine, "begin", _sqlite_begin)
        return engine
    return create_async_engine(
        target,
        pool_pre_ping=True,
        hide_parameters=True,
        connect_args={
            "timeout": CONNECT_TIMEOUT,
            "command_timeout": STATEMENT_TIMEOUT,
            "server_settings": {"application_name": "toolbridge"},
        },
    )


def wal_mode(file: Path, *, timeout: float = BUSY_TIMEOUT) -> None:
    """Put the SQLite file `file` (created when missing) in WAL mode; blocking, run it in a thread.

    Switching a new file to WAL takes its exclusive lock, and SQLite answers "database is
    locked" at once, without waiting its busy timeout, while another connection (another
    worker starting) holds or takes a lock on it; so a locked file is tried again every 20 ms
    for up to `timeout` seconds. A file in WAL mode already is left as it is."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with closing(sqlite3.connect(file, timeout=timeout, isolation_level=None)) as db:
                db.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() >= deadline:
                raise
        time.sleep(_WAL_RETRY)


def _sqlite_connect(dbapi_connection: Any, _record: Any) -> None:
    # The driver's own implicit BEGIN is switched off; `_sqlite_begin` says which BEGIN.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def _sqlite_begin(connection: sa.Connection) -> None:
    write = connection.get_execution_options().get(_WRITE, False)
    connection.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")


@asynccontextmanager
async def writing(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    """A write transaction, committed when the block ends without an error."""
    async with engine.connect() as connection:
        await connection.execution_options(**{_WRITE: True})
        async with connection.begin():
            if engine.dialect.name == "postgresql":
                await connection.execute(sa.select(sa.func.pg_advisory_xact_lock(FEED_LOCK)))
            yield connection


@contextmanager
def guard(action: str, url: str) -> Iterator[None]:
    """Turn "the database is not there" into `StoreUnavailable(action)`; other errors pass."""
    try:
        yield
    except sa.exc.DBAPIError as exc:
        if not _unavailable(exc):
            raise
        raise StoreUnavailable(action, shown(url), _reason(exc.orig)) from None
    except (OSError, TimeoutError, sqlite3.Error) as exc:
        raise StoreUnavailable(action, shown(url), _reason(exc)) from None


_UNAVAILABLE_STATES = ("08", "28", "3D", "53", "57P")
"""SQLSTATE prefixes that mean "no database to talk to": connection exceptions, refused
credentials, no such database, out of resources (too many connections), shutting down."""


def _unavailable(exc: sa.exc.DBAPIError) -> bool:
    if isinstance(exc, sa.exc.OperationalError | sa.exc.InterfaceError):
        return True
    state = getattr(exc.orig, "sqlstate", None) or getattr(exc.orig, "pgcode", None)
    return exc.connection_invalidated or str(state or "").startswith(_UNAVAILABLE_STATES)


def _reason(exc: BaseException | None) -> str:
    """The driver's own words, first line only: never the SQL or its parameters."""
    if exc is None:
        return "no reason given"
    while exc.__cause__ is not None:  # the driver's own error, beneath SQLAlchemy's adapter
        exc = exc.__cause__
    text = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
