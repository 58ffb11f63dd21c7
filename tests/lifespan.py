"""Run an ASGI app's lifespan in a test, as a server would (httpx's ASGITransport does not)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, MutableMapping
from typing import Any

import anyio
from starlette.types import ASGIApp


@contextlib.asynccontextmanager
async def lifespan(app: ASGIApp) -> AsyncIterator[None]:
    """Startup before the block, shutdown after it; fails when the app says either failed."""
    to_app, from_test = anyio.create_memory_object_stream[MutableMapping[str, Any]](2)
    to_test, from_app = anyio.create_memory_object_stream[MutableMapping[str, Any]](2)

    async def receive() -> MutableMapping[str, Any]:
        return await from_test.receive()

    async def send(message: MutableMapping[str, Any]) -> None:
        await to_test.send(message)

    async def run() -> None:
        await app({"type": "lifespan", "asgi": {"version": "3.0"}}, receive, send)

    async with to_app, from_test, to_test, from_app, anyio.create_task_group() as tasks:
        tasks.start_soon(run)
        await to_app.send({"type": "lifespan.startup"})
        started = await from_app.receive()
        assert started["type"] == "lifespan.startup.complete", started
        try:
            yield
        finally:
            await to_app.send({"type": "lifespan.shutdown"})
            stopped = await from_app.receive()
            assert stopped["type"] == "lifespan.shutdown.complete", stopped
