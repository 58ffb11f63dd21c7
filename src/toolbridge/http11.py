"""A thin HTTP/1.1 client of our own for the upstream hop: asyncio streams and httptools.

The gateway sends one fully built request and reads one answer; it needs no cookies,
redirects, proxies or retries of its own. Doing only that costs about 45 us of CPU a call
against aiohttp's 110 us (bench/proxy.py), which is most of what separates the gateway from a
bare proxy. It keeps a pool of idle keep-alive connections per origin, decodes gzip and
deflate, cuts bodies at the size cap (closing that connection), and maps every failure to
UpstreamUnavailable without the URL's path or query.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import time
import zlib
from collections import deque
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import httptools

from .upstream import (
    Headers,
    Timeouts,
    UpstreamRequest,
    UpstreamResponse,
    bad_answer,
    timed_out,
    unreachable,
)

_READ = 64 * 1024
_IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE", "TRACE"})


class _BadAnswer(Exception):
    """The connection broke, or what came back was not HTTP; the message says which."""


@dataclass(slots=True)
class _Connection:
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    idle_since: float = 0.0
    reused: bool = False

    def close(self) -> None:
        self.writer.close()


@dataclass(slots=True)
class _Answer:
    """What the parser has seen of one response (httptools calls these methods)."""

    max_bytes: int
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)
    chunks: list[bytes] = field(default_factory=list)
    size: int = 0
    complete: bool = False
    headers_done: bool = False
    decoder: Any = None
    """A zlib decompressor when the body is gzip- or deflate-encoded."""
    truncated: bool = False
    parser: Any = None
    keep_alive: bool = False
    """Read when the message completes: httptools forgets it once the message is done."""

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name, value))

    def on_headers_complete(self) -> None:
        self.headers_done = True
        encoding = next(
            (v.strip().lower() for k, v in self.headers if k.lower() == b"content-encoding"),
            b"",
        )
        if encoding in (b"gzip", b"x-gzip"):
            self.decoder = zlib.decompressobj(16 + zlib.MAX_WBITS)
        elif encoding == b"deflate":
            self.decoder = zlib.decompressobj()

    def on_body(self, body: bytes) -> None:
        if self.truncated:
            return
        data = body
        if self.decoder is not None:
            try:
                # At most what the cap still admits, plus one byte to know there was more.
                data = self.decoder.decompress(body, self.max_bytes - self.size + 1)
            except zlib.error as exc:
                raise _BadAnswer(f"the body is not valid {self._encoding()}: {exc}") from None
        self.chunks.append(data)
        self.size += len(data)
        if self.size > self.max_bytes:
            self.truncated = True

    def on_message_complete(self) -> None:
        if self.decoder is not None and not self.truncated:
            rest = self.decoder.flush()
            if rest:
                self.chunks.append(rest)
                self.size += len(rest)
                self.truncated = self.size > self.max_bytes
        self.keep_alive = bool(self.parser is not None and self.parser.should_keep_alive())
        self.complete = True

    def done(self) -> bool:
        return self.complete or self.truncated

    def _encoding(self) -> str:
        return "gzip" if self.decoder is not None else "data"

    def body(self) -> bytes:
        body = b"".join(self.chunks)
        return body[: self.max_bytes] if self.truncated else body


class Http11Upstream:
    """Sends over pooled keep-alive HTTP/1.1 connections, one pool per origin.

    Use it from one event loop; `aclose()` closes the idle connections.
    """

    def __init__(
        self,
        *,
        max_connections_per_host: int = 100,
        keepalive_expiry: float = 4.0,
        user_agent: str = "toolbridge",
        verify: ssl.SSLContext | bool = True,
    ) -> None:
        self.max_connections_per_host = max_connections_per_host
        self.keepalive_expiry = keepalive_expiry
        self.user_agent = user_agent.encode("latin-1")
        self._ssl: ssl.SSLContext | None = None
        if verify is False:
            self._ssl = ssl.create_default_context()
            self._ssl.check_hostname = False
            self._ssl.verify_mode = ssl.CERT_NONE
        elif isinstance(verify, ssl.SSLContext):
            self._ssl = verify
        self._idle: dict[tuple[str, str, int], deque[_Connection]] = {}
        self._slots: dict[tuple[str, str, int], asyncio.Semaphore] = {}

    async def send(
        self, request: UpstreamRequest, *, timeouts: Timeouts, max_bytes: int
    ) -> UpstreamResponse:
        parts = urlsplit(request.url)
        scheme = parts.scheme.lower()
        host = parts.hostname or ""
        port = parts.port or (443 if scheme == "https" else 80)
        key = (scheme, host, port)
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        head = self._head(request, target, parts.netloc.rpartition("@")[2])
        slots = self._slots.get(key)
        if slots is None:
            slots = self._slots[key] = asyncio.Semaphore(self.max_connections_per_host)
        connecting = True
        try:
            async with asyncio.timeout(timeouts.total), slots:
                for attempt in (1, 2):
                    connection = self._take(key)
                    if connection is None:
                        connecting = True
                        async with asyncio.timeout(timeouts.connect):
                            connection = await self._open(key)
                    connecting = False
                    try:
                        return await self._exchange(connection, key, request, head, max_bytes)
                    except BaseException as exc:
                        # Whatever went wrong (a timeout or a cancellation too), this
                        # connection is in an unknown state: it is never reused.
                        connection.close()
                        # An idle connection the server has just closed: try a fresh one, once,
                        # when sending again cannot do anything twice.
                        retry = request.method.upper() in _IDEMPOTENT and _stale(exc)
                        if attempt == 1 and connection.reused and retry:
                            continue
                        raise
            raise AssertionError("unreachable")  # pragma: no cover
        except TimeoutError:
            seconds = timeouts.connect if connecting else timeouts.total
            raise timed_out(request, min(seconds, timeouts.total), connecting) from None
        except _BadAnswer as exc:
            raise bad_answer(request, str(exc)) from None
        except (OSError, ssl.SSLError) as exc:
            if connecting:
                raise unreachable(request, exc) from None
            raise bad_answer(request, _os_reason(exc)) from None

    def _head(self, request: UpstreamRequest, target: str, authority: str) -> bytes:
        lines = [f"{request.method} {target} HTTP/1.1".encode("latin-1")]
        names = {name.lower() for name, _ in request.headers}
        lines.append(b"Host: " + authority.encode("idna" if not authority.isascii() else "ascii"))
        if "user-agent" not in names:
            lines.append(b"User-Agent: " + self.user_agent)
        if "accept-encoding" not in names:
            lines.append(b"Accept-Encoding: gzip, deflate")
        for name, value in request.headers:
            if name.lower() in ("host", "content-length", "transfer-encoding", "connection"):
                continue
            lines.append(name.encode("latin-1") + b": " + value.encode("latin-1"))
        body = request.body
        if body is not None and (body or request.method.upper() not in ("GET", "HEAD")):
            lines.append(b"Content-Length: " + str(len(body)).encode())
        return b"\r\n".join(lines) + b"\r\n\r\n"

    async def _exchange(
        self,
        connection: _Connection,
        key: tuple[str, str, int],
        request: UpstreamRequest,
        head: bytes,
        max_bytes: int,
    ) -> UpstreamResponse:
        writer, reader = connection.writer, connection.reader
        writer.write(head + request.body if request.body else head)
        await writer.drain()
        answer = _Answer(max_bytes=max_bytes)
        parser = httptools.HttpResponseParser(answer)
        answer.parser = parser
        received = 0
        while not answer.done():
            data = await reader.read(_READ)
            if not data:
                if answer.headers_done:
                    with contextlib.suppress(httptools.HttpParserError):
                        parser.feed_data(b"")  # a body that ends with the connection
                if answer.done():
                    break
                raise _BadAnswer(
                    "the connection closed before an answer"
                    if received == 0
                    else "the connection closed in the middle of the answer"
                )
            received += len(data)
            try:
                parser.feed_data(data)
            except httptools.HttpParserUpgrade:
                raise _BadAnswer("the server switched protocols") from None
            except httptools.HttpParserError as exc:
                raise _BadAnswer(f"not an HTTP answer ({type(exc).__name__})") from None
            if request.method.upper() == "HEAD" and answer.headers_done:
                answer.complete = True
        status = parser.get_status_code()
        if answer.truncated or not answer.keep_alive:
            connection.close()
        else:
            connection.idle_since = time.monotonic()
            connection.reused = True
            self._idle.setdefault(key, deque()).append(connection)
        return UpstreamResponse(
            status=status,
            headers=_decoded(answer.headers),
            body=answer.body(),
            truncated=answer.truncated,
        )

    def _take(self, key: tuple[str, str, int]) -> _Connection | None:
        idle = self._idle.get(key)
        now = time.monotonic()
        while idle:
            connection = idle.pop()  # the most recently used: the least likely to be stale
            if now - connection.idle_since > self.keepalive_expiry or connection.reader.at_eof():
                connection.close()
                continue
            return connection
        return None

    async def _open(self, key: tuple[str, str, int]) -> _Connection:
        scheme, host, port = key
        context = None
        if scheme == "https":
            context = self._ssl or ssl.create_default_context()
        reader, writer = await asyncio.open_connection(host, port, ssl=context, limit=_READ * 4)
        return _Connection(reader=reader, writer=writer)

    async def aclose(self) -> None:
        for idle in self._idle.values():
            while idle:
                idle.pop().close()
        self._idle.clear()


def _stale(exc: BaseException) -> bool:
    if isinstance(exc, ConnectionError):
        return True
    return isinstance(exc, _BadAnswer) and str(exc) == "the connection closed before an answer"


def _os_reason(exc: BaseException) -> str:
    import os

    if isinstance(exc, OSError) and isinstance(exc.errno, int) and exc.errno > 0:
        return os.strerror(exc.errno)
    return type(exc).__name__


def _decoded(raw: list[tuple[bytes, bytes]]) -> Headers:
    try:
        return tuple((k.decode("ascii"), v.decode("utf-8")) for k, v in raw)
    except UnicodeDecodeError:
        return tuple((k.decode("latin-1"), v.decode("latin-1")) for k, v in raw)
