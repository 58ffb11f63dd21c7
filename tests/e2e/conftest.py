"""Real uvicorn servers on 127.0.0.1, on a port the OS picks, run in a thread."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from starlette.types import ASGIApp

from toolbridge.serve.loopback import LoopbackServer


@contextmanager
def live_server(app: ASGIApp) -> Iterator[str]:
    """Serve `app` on a pre-bound loopback socket; yield its base URL; stop on exit."""
    with LoopbackServer(app) as server:
        yield server.url
