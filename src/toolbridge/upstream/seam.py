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
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import urlsplit

from toolbridge.errors import DestinationRefused, UpstreamUnavailable
from toolbridge.upstream.resolver import RefusedAddress

Headers = tuple[tuple[str, str], ...]

IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE", "TRACE"})
"""Methods whose request may be sent again without doing anything twice (RFC 9110 9.2.2)."""
MAX_RESPONSE_HEADERS = 128
"""Header fields an answer may carry; one with more is refused (no valid answer)."""
MAX_RESPONSE_HEAD_BYTES = 64 * 1024
"""Bytes the status line and headers of an answer may take together; more is refused."""


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
    pool: str = ""
    """Which requests may share its connection (`pool_of`): one kept alive after it carries
    only requests of the same pool. An upstream that answers once too many, late, when the
    connection already carries the next request, has that request take the extra answer for
    its own: it must be no other server's request, nor another caller's."""


def pool_of(server: str, caller: str | None = None) -> str:
    """The pool of a request to `server`; with `caller`, the caller whose own credentials it
    carries (`per_user`, `forward`)."""
    return server if caller is None else f"{server}\n{caller}"


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


def timed_out(
    request: UpstreamRequest, seconds: float, connecting: bool, *, began: bool = False
) -> UpstreamUnavailable:
    """`began`: the answer's head came, its body did not finish (a slow trickle)."""
    if began:
        message = (
            f"the answer from {origin(request.url)} began but did not end within {seconds:g} s"
        )
        return UpstreamUnavailable(request.server, message, timeout=True, sent=True)
    what = "no connection to" if connecting else "no answer from"
    message = f"{what} {origin(request.url)} within {seconds:g} s"
    return UpstreamUnavailable(request.server, message, timeout=True, sent=not connecting)


def unreachable(
    request: UpstreamRequest, exc: BaseException, *, proxy: str | None = None
) -> UpstreamUnavailable:
    """`proxy`: the proxy (its URL) the request was to go through, and could not reach."""
    refused = _refused(exc)
    if refused is not None:
        return DestinationRefused(request.server, f"refused: {refused}")
    if proxy is not None:  # its origin only: a proxy URL may hold a user and password
        message = (
            f"cannot connect to the proxy {origin(proxy)} (for {origin(request.url)}): "
            f"{reason_of(exc, proxy)}"
        )
        return UpstreamUnavailable(request.server, message)
    message = f"cannot connect to {origin(request.url)}: {reason_of(exc, request.url)}"
    return UpstreamUnavailable(request.server, message)


def bad_answer(request: UpstreamRequest, reason: str) -> UpstreamUnavailable:
    """The connection broke, or what came back was not HTTP (the request may have been sent)."""
    message = f"no valid answer from {origin(request.url)}: {_scrub(reason, request.url)}"
    return UpstreamUnavailable(request.server, message, sent=True)


def _causes(exc: BaseException) -> list[BaseException]:
    """The exception and what it wraps (causes, contexts, aiohttp's `os_error`), in order."""
    found: list[BaseException] = []
    seen: BaseException | None = exc
    for _ in range(16):
        if seen is None or seen in found:
            break
        wrapped = getattr(seen, "certificate_error", None) or getattr(seen, "os_error", None)
        if isinstance(wrapped, BaseException) and wrapped is not seen:
            seen = wrapped  # a wrapper (aiohttp's) whose own errno is its content's
            continue
        found.append(seen)
        seen = seen.__cause__ or seen.__context__
    return found or [exc]


def _refused(exc: BaseException) -> str | None:
    return next((str(e) for e in _causes(exc) if isinstance(e, RefusedAddress)), None)


def reason_of(exc: BaseException, url: str = "") -> str:
    """What went wrong, in words: the TLS failure by its cause, what the operating system said
    (`Connection refused`), else the exception's own words."""
    for seen in _causes(exc):
        if isinstance(seen, RefusedAddress):
            return str(seen)
        if isinstance(seen, ssl.SSLError | ssl.CertificateError):
            return tls_reason(seen)
        if isinstance(seen, socket.gaierror):
            return f"cannot resolve the host name ({seen.strerror or seen})"
        if isinstance(seen, OSError) and isinstance(seen.errno, int) and seen.errno > 0:
            return os.strerror(seen.errno)
    return _scrub(str(exc) or type(exc).__name__, url)


_TLS_REASONS = {
    "WRONG_VERSION_NUMBER": "the server did not answer in TLS (is it plain HTTP?)",
    "RECORD_LAYER_FAILURE": "the server did not answer in TLS (is it plain HTTP?)",
    "TLSV13_ALERT_CERTIFICATE_REQUIRED": "the server requires a client certificate "
    "(set client_cert and client_key)",
    "SSLV3_ALERT_BAD_CERTIFICATE": "the server refused the client certificate",
    "TLSV1_ALERT_UNKNOWN_CA": "the server does not trust the client certificate's issuer",
    "SSLV3_ALERT_HANDSHAKE_FAILURE": "the server refused the handshake (no common protocol or "
    "cipher, or a client certificate is required)",
    "TLSV1_ALERT_PROTOCOL_VERSION": "no TLS version both sides accept",
    "UNSAFE_LEGACY_RENEGOTIATION_DISABLED": "the server needs unsafe legacy renegotiation",
}


def tls_reason(exc: BaseException) -> str:
    """A TLS failure by its cause: `certificate verify failed: Hostname mismatch, ...`."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        detail = exc.verify_message or exc.reason or "the certificate is not trusted"
        return f"TLS: certificate verify failed: {detail}"
    if isinstance(exc, ssl.CertificateError):
        return f"TLS: certificate verify failed: {exc}"
    reason = getattr(exc, "reason", None)
    if isinstance(reason, str) and reason:
        return "TLS: " + _TLS_REASONS.get(reason, reason.replace("_", " ").lower())
    return f"TLS: {type(exc).__name__}"


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
