"""Draining before a stop (serve/draining.py), in-process: what answers carry while draining,
and where SIGTERM is left alone. A real `serve` drains in tests/e2e/test_e2e_serve.py."""

from __future__ import annotations

import signal
import threading
from typing import Any

import httpx2
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from toolbridge.serve.draining import Drain


async def answer(request: Request) -> PlainTextResponse:
    return PlainTextResponse("ok", headers={"Connection": "keep-alive"})


@pytest.mark.anyio
async def test_answers_close_their_connection_only_while_draining() -> None:
    drain = Drain()
    app = drain.closing(Starlette(routes=[Route("/", answer)]))
    transport = httpx2.ASGITransport(app=app)
    async with httpx2.AsyncClient(transport=transport, base_url="http://gw") as client:
        before = (await client.get("/")).headers.get_list("connection")
        drain.since = 1.0
        during = (await client.get("/")).headers.get_list("connection")
    assert (before, during) == (["keep-alive"], ["close"])  # replaced, not added beside


def test_sigterm_is_left_alone_where_no_uvicorn_server_set_it() -> None:
    """Not the main thread (the tests' loopback servers), or a handler of someone else's."""
    found: list[bool] = []
    thread = threading.Thread(target=lambda: found.append(Drain().install(lambda: 5.0)))
    thread.start()
    thread.join()

    def theirs(signum: int, frame: Any) -> None:
        raise AssertionError("not called")

    previous = signal.signal(signal.SIGTERM, theirs)
    try:
        found.append(Drain().install(lambda: 5.0))
        kept = signal.getsignal(signal.SIGTERM) is theirs
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert (found, kept) == ([False, False], True)
