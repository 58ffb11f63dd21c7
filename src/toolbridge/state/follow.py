"""Following the change feed: every change as it commits, from any process sharing the store.

Both followers are async iterators of `Change`, started after a change id, that never end on
their own (close them with `aclose()`, or let the task that iterates be cancelled):

- `notified` (PostgreSQL) keeps one connection of its own that `LISTEN`s on `CHANNEL`; every
  write `NOTIFY`s there when it commits, and the follower then reads the feed past the last id
  it gave. It also reads every `SAFETY_INTERVAL` seconds, in case a notice is lost.
- `polled` (SQLite: several worker processes sharing one file) reads the feed every
  `POLL_INTERVAL` seconds.

When the database goes away, both log one warning, retry with backoff (`BACKOFF_FIRST` doubling
to `BACKOFF_MAX` seconds, so a store that returns is seen within a second), log once more when
it is back, and catch up from the last id they gave: no change is skipped or given twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncGenerator, Awaitable, Callable
from typing import Any

import sqlalchemy as sa

from toolbridge.errors import StoreUnavailable
from toolbridge.state.database import CHANNEL, MAX_PAGE
from toolbridge.state.engine import CONNECT_TIMEOUT
from toolbridge.state.urls import shown
from toolbridge.state.values import Change

logger = logging.getLogger(__name__)

POLL_INTERVAL = 0.25
SAFETY_INTERVAL = 5.0
BACKOFF_FIRST = 0.05
BACKOFF_MAX = 1.0

ChangesSince = Callable[[int], Awaitable[tuple[Change, ...]]]


class _Outage:
    """Says once that the store is gone and once that it is back; paces the retries."""

    def __init__(self, where: str) -> None:
        self.where = where
        self.down = False
        self.delay = BACKOFF_FIRST

    async def failed(self, reason: str) -> None:
        if not self.down:
            logger.warning(
                "the state store %s is unavailable (%s): changes made meanwhile are picked up "
                "when it returns; retrying every %.2g s at most",
                self.where,
                reason,
                BACKOFF_MAX,
            )
            self.down = True
        await asyncio.sleep(self.delay)
        self.delay = min(self.delay * 2, BACKOFF_MAX)

    def ok(self) -> None:
        if self.down:
            logger.warning("the state store %s is back; following its changes again", self.where)
        self.down = False
        self.delay = BACKOFF_FIRST


async def polled(
    changes_since: ChangesSince, url: str, after: int, *, interval: float = POLL_INTERVAL
) -> AsyncGenerator[Change, None]:
    """Every change after `after`, read from the feed every `interval` seconds."""
    last = after
    outage = _Outage(shown(url))
    while True:
        try:
            batch = await changes_since(last)
        except StoreUnavailable as exc:
            await outage.failed(exc.reason)
            continue
        outage.ok()
        for change in batch:
            last = change.id
            yield change
        if len(batch) < MAX_PAGE:
            await asyncio.sleep(interval)


async def _listen(connection: Any) -> asyncio.Event:
    """An event set when a change is notified on `connection`, or when it closes."""
    signal = asyncio.Event()
    connection.add_termination_listener(lambda _connection: signal.set())
    await connection.add_listener(CHANNEL, lambda *_notice: signal.set())
    return signal


async def notified(
    changes_since: ChangesSince,
    url: str,
    after: int,
    *,
    safety_interval: float = SAFETY_INTERVAL,
) -> AsyncGenerator[Change, None]:
    """Every change after `after`, read when PostgreSQL notifies that one committed."""
    import asyncpg  # here: only a PostgreSQL store's follower needs it

    last = after
    outage = _Outage(shown(url))
    dsn = sa.make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    while True:
        connection: Any = None
        try:
            connection = await asyncpg.connect(dsn, timeout=CONNECT_TIMEOUT)
            signal = await _listen(connection)
            while True:
                signal.clear()  # before reading: a notice that arrives during the read counts
                batch = await changes_since(last)
                outage.ok()
                for change in batch:
                    last = change.id
                    yield change
                if len(batch) >= MAX_PAGE:
                    continue
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(signal.wait(), safety_interval)
                if connection.is_closed():
                    raise ConnectionResetError("the listening connection was closed")
        except (
            OSError,
            TimeoutError,
            asyncpg.PostgresError,
            asyncpg.InterfaceError,
            StoreUnavailable,
        ) as exc:
            text = str(exc).strip().splitlines()
            reason = f"{type(exc).__name__}: {text[0][:200]}" if text else type(exc).__name__
            await outage.failed(exc.reason if isinstance(exc, StoreUnavailable) else reason)
        finally:
            if connection is not None and not connection.is_closed():
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(connection.close(), CONNECT_TIMEOUT)
