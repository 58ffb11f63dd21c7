"""The network seam: one small interface that sends a built request upstream and reads the answer.

Everything above it (request building, credentials, result shaping, the gateway) works with the
plain values below, so tests above the seam need no sockets: `MockUpstream` turns a function
into an upstream. The real implementations live in `clients.py`.
"""

from __future__ import annotations

import inspect
import os
import re
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import urlsplit

from toolbridge.errors import UpstreamUnavailable

Headers = tuple[tuple[str, str], ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class Timeouts:
    """Per-server limits, in seconds."""

    connect: float = 10.0
    total: float = 30.0


@dataclass(frozen=True, slots=True, kw_only=True)
class UpstreamRequest:
    """A request ready to send: every byte decided, nothing left to interpret."""

    server: str
    """The id of the server it goes to (for errors and logs)."""
    method: str
    url: str
    """Absolute, with the path and query already encoded."""
    headers: Headers = ()
    body: bytes | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class UpstreamResponse:
    status: int
    headers: Headers = ()
    body: bytes = b""
    truncated: bool = False
    """The body was longer than the size cap and was cut there."""

    def header(self, name: str) -> str | None:
        lowered = name.lower()
        return next((v for k, v in self.headers if k.lower() == lowered), None)


@dataclass(frozen=True, slots=True, kw_only=True)
class AuthParts:
    """What a server's credentials add to a request: headers, query parameters, cookies."""

    headers: Headers = ()
    query: Headers = ()
    cookies: Headers = ()
    secrets: tuple[str, ...] = ()
    """The secret values in the parts above, so that logs and `--dry-run` can mask them."""


class Upstream(Protocol):
    """Sends one request; raises UpstreamUnavailable when it cannot be reached or times out.

    It never follows redirects: that is the caller's decision. It reads at most `max_bytes` of
    the body and marks the response truncated when there was more.
    """

    async def send(
        self, request: UpstreamRequest, *, timeouts: Timeouts, max_bytes: int
    ) -> UpstreamResponse: ...

    async def aclose(self) -> None: ...


Handler = Callable[[UpstreamRequest], UpstreamResponse | Awaitable[UpstreamResponse]]


class MockUpstream:
    """An upstream that answers with a function, for tests: the seam's MockTransport."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.requests: list[UpstreamRequest] = []

    async def send(
        self, request: UpstreamRequest, *, timeouts: Timeouts, max_bytes: int
    ) -> UpstreamResponse:
        self.requests.append(request)
        answer = self.handler(request)
        response = await answer if inspect.isawaitable(answer) else answer
        assert isinstance(response, UpstreamResponse)
        if len(response.body) > max_bytes:
            return UpstreamResponse(
                status=response.status,
                headers=response.headers,
                body=response.body[:max_bytes],
                truncated=True,
            )
        return response

    async def aclose(self) -> None:
        return None


# -- failures, said without the URL's path, query or userinfo (they may hold secrets) --------

DEFAULT_PORTS = {"http": 80, "https": 443}
_REASON_MAX = 200


def origin(url: str) -> str:
    """`scheme://host:port` of a URL: what messages may show of it (paths and queries may hold
    secrets, and so may userinfo)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    try:
        port = parts.port or DEFAULT_PORTS.get(parts.scheme)
    except ValueError:
        port = None
    return f"{parts.scheme}://{host}:{port}" if port else f"{parts.scheme}://{host}"


def timed_out(request: UpstreamRequest, seconds: float, connecting: bool) -> UpstreamUnavailable:
    what = "no connection to" if connecting else "no answer from"
    message = f"{what} {origin(request.url)} within {seconds:g} s"
    return UpstreamUnavailable(request.server, message, timeout=True)


def unreachable(request: UpstreamRequest, exc: BaseException) -> UpstreamUnavailable:
    message = f"cannot connect to {origin(request.url)}: {reason_of(exc, request.url)}"
    return UpstreamUnavailable(request.server, message)


def bad_answer(request: UpstreamRequest, reason: str) -> UpstreamUnavailable:
    """The connection broke, or what came back was not HTTP."""
    message = f"no valid answer from {origin(request.url)}: {_scrub(reason, request.url)}"
    return UpstreamUnavailable(request.server, message)


def reason_of(exc: BaseException, url: str = "") -> str:
    """What the operating system said (`Connection refused`), else the exception's own words."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, socket.gaierror):
            return f"cannot resolve the host name ({seen.strerror or seen})"
        if isinstance(seen, OSError) and isinstance(seen.errno, int) and seen.errno > 0:
            return os.strerror(seen.errno)
        seen = seen.__cause__ or seen.__context__
    return _scrub(str(exc) or type(exc).__name__, url)


_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s'\"<>]*")


def _scrub(reason: str, url: str) -> str:
    """`reason` on one line, without any URL but its origin, without the request's path and
    query, and short."""
    reason = " ".join(_URL.sub(lambda m: origin(m.group(0)), reason).split()).removesuffix(" ^")
    target = url.partition("://")[2].partition("/")[2]
    if target:
        reason = reason.replace("/" + target, "/...")
    if len(reason) > _REASON_MAX:
        reason = reason[:_REASON_MAX] + "..."
    return reason
