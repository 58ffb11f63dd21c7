"""Draining before a stop: `http.shutdown_delay` seconds between SIGTERM and the stop itself.

A load balancer (a Kubernetes Service, nginx, an ELB) learns that a replica is going away some
time after the replica is told to stop: connections it sends in between were refused, or reset
once accepted, when the gateway closed its port on SIGTERM. With a delay, a SIGTERM first
starts a drain: `/readyz` answers 503 `"status": "stopping"` (the balancer takes the replica out
of its rotation), every answer closes its connection (`Connection: close`: kept-alive clients
connect again, to a replica that stays), and everything is still served. When the delay is
over, uvicorn's graceful stop follows as without one (no new connections, 5 s for what is in
flight). A second SIGTERM, or SIGINT (Ctrl-C), stops at once.

With `serve --workers`, uvicorn's supervisor passes SIGTERM on to each worker, which drains on
its own, by its own config of the moment (a reload may change the delay).

Trusts: the config, and the signals the process gets.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable, MutableMapping
from types import FrameType
from typing import Any

import uvicorn

from toolbridge.serve.edge import ASGIApp, Receive, Scope, Send

logger = logging.getLogger(__name__)

Message = MutableMapping[str, Any]


class Drain:
    """Whether this process is draining (since when), and what makes it drain."""

    def __init__(self) -> None:
        self.since: float | None = None

    def install(self, delay: Callable[[], float]) -> bool:
        """Make SIGTERM drain for `delay()` seconds (read when it comes) before the handler that
        uvicorn's server set takes it. Call it once the server runs (the app's lifespan): its
        handler is set by then. False, and nothing changed, where there is none to wrap (not
        the main thread; another server, or none)."""
        if threading.current_thread() is not threading.main_thread():
            return False
        stop = signal.getsignal(signal.SIGTERM)
        if not callable(stop) or not isinstance(getattr(stop, "__self__", None), uvicorn.Server):
            return False

        def draining(signum: int, frame: FrameType | None) -> None:
            seconds = delay()
            if self.since is not None or seconds <= 0:
                stop(signum, frame)  # a second SIGTERM, or no delay: the stop, now
                return
            self.since = time.monotonic()
            logger.warning(
                "SIGTERM: draining for %g s (`http.shutdown_delay`): /readyz answers 503, "
                "requests are still served; then the server stops",
                seconds,
            )
            timer = threading.Timer(seconds, stop, (signum, None))
            timer.daemon = True
            timer.name = "toolbridge-drain"
            timer.start()

        signal.signal(signal.SIGTERM, draining)
        return True

    def closing(self, app: ASGIApp) -> ASGIApp:
        """`app`, whose answers close their connection while draining."""

        async def run(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] != "http":
                await app(scope, receive, send)
                return

            async def sending(message: Message) -> None:
                if message["type"] == "http.response.start" and self.since is not None:
                    headers = [(k, v) for k, v in message.get("headers", ()) if k != b"connection"]
                    message = {**message, "headers": [*headers, (b"connection", b"close")]}
                await send(message)

            await app(scope, receive, sending)

        return run
