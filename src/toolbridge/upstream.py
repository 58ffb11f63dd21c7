"""The network seam: one small interface that sends a built request upstream and reads the answer.

Everything above it (request building, credentials, result shaping, the gateway) works with the
plain values below, so tests above the seam need no sockets: `MockUpstream` turns a function
into an upstream. The real implementation lives in `http_client.py`.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

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
