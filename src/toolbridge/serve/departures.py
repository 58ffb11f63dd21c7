"""A call whose caller has gone: stopped, so that it holds nothing for no one.

A client that gives up (its own timeout, a closed tab, an agent that moved on) leaves uvicorn
with a connection that says `http.disconnect`; nothing else tells the app. Without a look, a
call to a slow upstream would keep its connection, its origin's pool slot and its server's
`max_concurrency` slot until the server's `timeout`: clients that time out and retry would lock
the server out for everyone. So the call endpoints run the call beside a look at the client,
and cancel it when the client goes. A request already sent upstream may still act there (its
outcome was as unknown to the caller as if it had stayed); the call log says `cancelled`.

Trusts the server's `receive` to say `http.disconnect` once the client is gone (uvicorn does),
and only after the request's body was read whole.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any, TypeVar

Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
"""An ASGI `receive` (as Starlette's type says it, without importing Starlette here)."""

T = TypeVar("T")


WATCH_AFTER = 0.5
"""Seconds into a call before the client is looked at: a client gone within them holds its
slots that much longer, at most."""

GONE_STATUS = 499
"""The status of the answer no one receives (nginx's "client closed request"): for access logs."""


class ClientGone(Exception):
    """The client disconnected before its answer: there is no one to send it to."""


async def unless_gone(receive: Receive, work: Awaitable[T]) -> T:
    """`work`'s result; raises ClientGone, having cancelled it, when the client goes first.

    Call it once the request's body has been read: what `receive` gives then is the end of the
    connection, or nothing. The look starts WATCH_AFTER seconds in: most calls end before, and
    a task per call cost a sixth of the gateway's throughput (`bench/proxy.py`). The work runs
    in this task, which the look cancels; a cancellation of anyone else's (shutdown's) is not
    taken for the client's."""
    current = asyncio.current_task()
    assert current is not None
    loop = asyncio.get_running_loop()
    looking: list[asyncio.Task[None]] = []
    gone: list[bool] = []

    async def look() -> None:
        while (await receive())["type"] != "http.disconnect":
            pass
        gone.append(True)
        current.cancel()

    timer = loop.call_later(WATCH_AFTER, lambda: looking.append(loop.create_task(look())))
    try:
        return await work
    except asyncio.CancelledError:
        if gone and current.uncancel() == 0:
            raise ClientGone from None
        raise
    finally:
        timer.cancel()
        for task in looking:
            task.cancel()
