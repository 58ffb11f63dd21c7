"""`/mcp` started in the background, so that the gateway serves before the MCP SDK has loaded.

Importing the `mcp` SDK builds several hundred pydantic models: more than half a second, as
long as everything else a start does with a compiled catalog. So the HTTP API serves at once,
and the SDK is imported in a worker thread while it does. Its lifespan is entered last, once
the rest of the app has started: an import beside the start would slow the start down. An MCP
request that comes before it is ready waits for it (at most `START_TIMEOUT`, then 503), so no
request is refused for being early. `/readyz` says which: `"mcp": "starting"` or `"ready"`.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from contextlib import AbstractAsyncContextManager
from typing import Any, Final, Literal, Protocol

import anyio
import orjson

from toolbridge.gateway import Gateway

logger = logging.getLogger(__name__)

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
"""ASGI's shapes, as Starlette spells them (this module imports no server library)."""


class Endpoint(Protocol):
    """What this module needs of `serve.mcp.McpApp` (named by string: it imports the SDK)."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None: ...
    def lifespan(self) -> AbstractAsyncContextManager[None]: ...
    async def tools_changed(self) -> None: ...


PATH: Final = "/mcp"
START_TIMEOUT: Final = 60.0
"""Seconds an early MCP request waits for the SDK to load before it is answered 503."""


class DeferredMcp:
    """The `/mcp` endpoint (an ASGI app) whose `McpApp` is built in the background.

    Enter `lifespan()` in the hosting app's lifespan: the SDK loads there, and its session
    manager runs there until the app stops.
    """

    def __init__(self, gateway: Gateway, *, stateful: bool = False) -> None:
        self.gateway = gateway
        self.stateful = stateful
        self._app: Endpoint | None = None
        self._ready = anyio.Event()
        self._stop = anyio.Event()

    @property
    def state(self) -> Literal["starting", "ready", "failed"]:
        if self._app is not None:
            return "ready"
        return "failed" if self._ready.is_set() else "starting"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        with anyio.move_on_after(START_TIMEOUT):
            await self._ready.wait()
        if self._app is None:
            await _unavailable(send, self.state)
            return
        await self._app(scope, receive, send)

    @contextlib.asynccontextmanager
    async def lifespan(self) -> AsyncIterator[None]:
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(self._run)
            try:
                yield
            finally:
                self._stop.set()

    async def tools_changed(self) -> None:
        """Tell MCP clients the tool list changed (none are connected before it is ready)."""
        if self._app is not None:
            await self._app.tools_changed()

    async def _run(self) -> None:
        try:
            module = await anyio.to_thread.run_sync(load_sdk)
            app: Endpoint = module.create_mcp_app(self.gateway, stateful=self.stateful)
        except Exception:
            logger.exception("the MCP endpoint could not start; /mcp answers 503")
            self._ready.set()
            return
        async with app.lifespan():
            self._app = app
            self._ready.set()
            await self._stop.wait()


def load_sdk() -> Any:
    """`serve.mcp`, which imports the MCP SDK (named by string: importing it is the slow part)."""
    return importlib.import_module("toolbridge.serve.mcp")


async def _unavailable(send: Send, state: str) -> None:
    message = (
        "the MCP endpoint could not start (see the gateway's log)"
        if state == "failed"
        else f"the MCP endpoint is still starting after {START_TIMEOUT:g} s"
    )
    body = orjson.dumps({"error": {"type": "unavailable", "message": message}})
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
    if state == "starting":
        headers.append((b"retry-after", b"5"))
    await send({"type": "http.response.start", "status": 503, "headers": headers})
    await send({"type": "http.response.body", "body": body})
