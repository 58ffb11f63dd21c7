"""Draining before a stop: `http.shutdown_delay` seconds between SIGTERM and the stop itself.

A load balancer (a Kubernetes Service, nginx, an ELB) learns that a replica is going away some
time after the replica is told to stop: connections it sends in between were refused, or reset
once accepted, when the gateway closed its port on SIGTERM. With a delay, a SIGTERM first
starts a drain: `/readyz` answers 503 `"status": "stopping"` (the balancer takes the replica out
of its rotation), every answer closes its connection (`Connection: close`: kept-alive clients
connect again, to a replica that stays), and everything is still served. When the delay is
over, uvicorn's graceful stop follows as without one (no new connections, 5 s for what is in
flight). A second SIGTERM, or SIGINT (Ctrl-C), stops at once.

With `serve --workers`, each worker drains by its own config of the moment (a reload may change
the delay). The supervisor (workers.py) does not pass a SIGTERM on as one: it asks its workers
to drain (`DRAIN_SIGNAL`) and waits for them to stop; a second SIGTERM or a SIGINT makes it ask
them to stop at once (`STOP_SIGNAL`). A SIGTERM sent to the whole process group (systemd's
default) reaches each worker itself too, and the supervisor's request to drain is then no
second SIGTERM: only a second SIGTERM stops a drain.

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


DRAIN_SIGNAL = signal.SIGUSR1
"""What `serve --workers`' supervisor sends its workers for a SIGTERM: drain, as for a first
SIGTERM, but never taken for a second one."""
STOP_SIGNAL = signal.SIGUSR2
"""What it sends them for a second SIGTERM, a SIGINT, or a stop of its own: stop at once."""

Stop = Callable[[int, FrameType | None], Any]


def _uvicorn_stop() -> Stop | None:
    """The SIGTERM handler uvicorn's server set in this (main) thread, if it did."""
    if threading.current_thread() is not threading.main_thread():
        return None
    stop = signal.getsignal(signal.SIGTERM)
    if not callable(stop) or not isinstance(getattr(stop, "__self__", None), uvicorn.Server):
        return None
    return stop


def stop_when_asked() -> None:
    """In a worker, before its app runs (the config loads): the supervisor's DRAIN_SIGNAL and
    STOP_SIGNAL stop it, as a SIGTERM does then. Their default action would end the process
    outright, with none of its cleanup. `Drain.install` takes them over once it serves."""
    stop = _uvicorn_stop()
    if stop is not None:
        for number in (DRAIN_SIGNAL, STOP_SIGNAL):
            signal.signal(number, lambda signum, frame: stop(signal.SIGTERM, frame))


class Drain:
    """Whether this process is draining (since when), and what makes it drain."""

    def __init__(self) -> None:
        self.since: float | None = None

    def install(self, delay: Callable[[], float]) -> bool:
        """Make SIGTERM (and DRAIN_SIGNAL) drain for `delay()` seconds (read when it comes)
        before the handler that uvicorn's server set for SIGTERM takes it; a second SIGTERM,
        or STOP_SIGNAL, stops at once. Call it once the server runs (the app's lifespan): its
        handler is set by then. False, and nothing changed, where there is none to wrap (not
        the main thread; another server, or none)."""
        stop = _uvicorn_stop()
        if stop is None:
            return False
        terms = 0

        def begin() -> None:
            if self.since is not None:
                return
            seconds = delay()
            if seconds <= 0:
                stop(signal.SIGTERM, None)  # no delay: the stop, now
                return
            self.since = time.monotonic()
            logger.warning(
                "SIGTERM: draining for %g s (`http.shutdown_delay`): /readyz answers 503, "
                "requests are still served; then the server stops",
                seconds,
            )
            timer = threading.Timer(seconds, stop, (signal.SIGTERM, None))
            timer.daemon = True
            timer.name = "toolbridge-drain"
            timer.start()

        def terminated(signum: int, frame: FrameType | None) -> None:
            nonlocal terms
            terms += 1
            if terms > 1:
                stop(signal.SIGTERM, frame)  # a second SIGTERM: the stop, now
            else:
                begin()

        signal.signal(signal.SIGTERM, terminated)
        signal.signal(DRAIN_SIGNAL, lambda signum, frame: begin())
        signal.signal(STOP_SIGNAL, lambda signum, frame: stop(signal.SIGTERM, frame))
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
