"""A thin HTTP/1.1 client of our own for the upstream hop: an asyncio Protocol and httptools.

The gateway sends one fully built request and reads one answer; it needs no cookies,
redirects, proxies or retries of its own. Doing only that, parsing the answer as it arrives
and leaving no reference cycles behind, costs about 31 us of CPU a call against aiohttp's
70 us (16 calls at a time, in-process, to bench/proxy.py's upstream), which is most of what
separates the gateway from a bare proxy. It keeps a pool of idle keep-alive connections per
origin, decodes every content coding `encodings` knows (gzip, deflate, br, zstd) and refuses
any other, cuts bodies at the size cap (closing that connection), refuses answers whose headers
pass their caps, and maps every failure to UpstreamUnavailable without the URL's path or query.
It resolves each host once per connection and connects to the address it checked (`resolver`),
so a name that resolves to a link-local or metadata address is refused.

What the server sends is trusted for nothing: interim answers (1xx) are skipped until the final
one; a connection that sends more than the one answer asked for (in the same packet, or while
idle) is closed, never reused, so no answer can reach another request.
"""

from __future__ import annotations

import asyncio
import functools
import re
import ssl
import time
from dataclasses import dataclass
from typing import cast
from urllib.parse import SplitResult, urlsplit

import httptools

from toolbridge.errors import DestinationRefused
from toolbridge.tools import CONNECTION_HEADERS, HEADER_NAME
from toolbridge.upstream.encodings import ACCEPT_ENCODING, Decoder, EncodingError
from toolbridge.upstream.resolver import addresses, checked_host
from toolbridge.upstream.seam import (
    IDEMPOTENT,
    MAX_RESPONSE_HEAD_BYTES,
    MAX_RESPONSE_HEADERS,
    Headers,
    Timeouts,
    UpstreamRequest,
    UpstreamResponse,
    bad_answer,
    reason_of,
    timed_out,
    unreachable,
)

_NOT_FORWARDED = CONNECTION_HEADERS
"""Written by this client from the request itself; such a header given is not sent (neither
conversion nor the config lets one through: this is the last line)."""
_ORIGIN = re.compile(r"[^:]*://[^/?#]*")
_CLOSED_BEFORE = "the connection closed before an answer"
_CLOSED_DURING = "the connection closed in the middle of the answer"
_ACCEPT_ENCODING = f"Accept-Encoding: {ACCEPT_ENCODING}"

_Key = tuple[str, str, int]
"""Scheme, host and port: where to connect, and the pool's key."""


class _Late(TimeoutError):
    """The deadline came with the answer's head in and its body still coming."""


class _BadAnswer(Exception):
    """The connection broke, or what came back was not HTTP; the message says which."""


@dataclass(frozen=True, slots=True)
class _Origin:
    key: _Key
    host: str
    """The Host header line: the URL's authority without userinfo, as written."""


def _origin_of(parts: SplitResult) -> _Origin:
    scheme = parts.scheme.lower()
    port = parts.port or (443 if scheme == "https" else 80)
    authority = parts.netloc.rpartition("@")[2]
    host = authority.encode("ascii" if authority.isascii() else "idna").decode("ascii")
    return _Origin((scheme, parts.hostname or "", port), "Host: " + host)


@functools.lru_cache(maxsize=1024)
def _origin(prefix: str) -> _Origin | None:
    """The origin of `scheme://authority`; None when urlsplit reads it otherwise."""
    parts = urlsplit(prefix)
    return None if parts.path else _origin_of(parts)


def _split(url: str) -> tuple[_Origin, str]:
    """The origin of an absolute URL and its request target (path and query, never the
    fragment), as urlsplit reads them; only the part after the authority is split per call."""
    match = _ORIGIN.match(url)
    origin = _origin(match.group()) if match else None
    rest = url[match.end() :] if match else ""
    if origin is None or "\t" in rest or "\r" in rest or "\n" in rest:
        parts = urlsplit(url)
        return _origin_of(parts), (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    if rest.startswith("/") and "#" not in rest and not rest.endswith("?"):
        return origin, rest
    path, _, query = rest.partition("#")[0].partition("?")
    return origin, (path or "/") + (f"?{query}" if query else "")


class _Connection(asyncio.Protocol):
    """One connection: writes a request and feeds what comes back to httptools, which calls the
    `on_*` methods; the answer completes the future `exchange` returned."""

    transport: asyncio.Transport
    parser: httptools.HttpResponseParser
    head_only: bool
    max_bytes: int
    received: bool
    headers: list[tuple[bytes, bytes]]
    head_bytes: int
    """Bytes received before the headers were complete (a head still arriving)."""
    head_size: int
    """Bytes of the header fields parsed so far."""
    chunks: list[bytes]
    size: int
    headers_done: bool
    complete: bool
    truncated: bool
    keep_alive: bool
    status: int
    """The final answer's status (the parser's is the last message's)."""
    interim: bool
    """The message being read is an interim answer (1xx): skipped, the final one follows."""
    trailing: bool
    """More came after the final answer: nothing the request asked for, so the connection
    is closed after this answer, never reused."""
    decoder: Decoder | None
    """Undoes the body's content coding, when it has one."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.closed = False
        self.failure: Exception | None = None
        """How the connection broke while idle, if it did."""
        self.idle_since = 0.0
        self.reused = False
        self.waiter: asyncio.Future[UpstreamResponse] | None = None
        self.timer: asyncio.TimerHandle | None = None

    def exchange(
        self, data: bytes, head_only: bool, max_bytes: int, deadline: float
    ) -> asyncio.Future[UpstreamResponse]:
        """Sends `data`; the future fails with TimeoutError at `deadline` (loop time)."""
        if self.closed or self.transport.is_closing():
            raise self.failure or _BadAnswer(_CLOSED_BEFORE)
        self.parser = httptools.HttpResponseParser(self)
        self.head_only = head_only
        self.max_bytes = max_bytes
        self.received = self.headers_done = self.complete = False
        self.truncated = self.keep_alive = self.interim = self.trailing = False
        self.status = 0
        self.headers = []
        self.head_bytes = self.head_size = 0
        self.chunks = []
        self.size = 0
        self.decoder = None
        waiter = self.waiter = self.loop.create_future()
        self.timer = self.loop.call_at(deadline, self._expire)
        self.transport.write(data)
        return waiter

    def close(self) -> None:
        self.closed = True
        self.waiter = None
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        self.transport.close()

    # -- asyncio calls these --------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        if self.waiter is None:  # data nobody asked for: the connection is not ours to trust
            self.close()
            return
        self.received = True
        if not self.headers_done:
            self.head_bytes += len(data)
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._fail(_BadAnswer("the server switched protocols"))
        except httptools.HttpParserError as exc:
            if self.complete:  # what follows the answer is no answer: the answer stands
                self.trailing = True
                self._succeed()
                return
            cause = exc.__context__
            if not isinstance(cause, _BadAnswer):
                # llhttp's own words ("Duplicate Content-Length"): fixed texts, no data
                cause = _BadAnswer(f"not an HTTP answer: {str(exc)[:120] or type(exc).__name__}")
            self._fail(cause)
        else:
            if self.complete or self.truncated or (self.head_only and self.headers_done):
                self._succeed()
            elif not self.headers_done and self.head_bytes > MAX_RESPONSE_HEAD_BYTES:
                limit = MAX_RESPONSE_HEAD_BYTES
                self._fail(_BadAnswer(f"the answer's headers are longer than {limit} bytes"))

    def eof_received(self) -> None:
        self._ended(None)

    def connection_lost(self, exc: Exception | None) -> None:
        self._ended(exc)

    # -- httptools calls these ------------------------------------------------------------------

    def on_message_begin(self) -> None:
        if self.complete:
            self.trailing = True

    def on_header(self, name: bytes, value: bytes) -> None:
        if self.trailing:
            return
        if len(self.headers) >= MAX_RESPONSE_HEADERS:
            raise _BadAnswer(f"the answer has more than {MAX_RESPONSE_HEADERS} header fields")
        self.head_size += len(name) + len(value) + 4
        if self.head_size > MAX_RESPONSE_HEAD_BYTES:
            limit = MAX_RESPONSE_HEAD_BYTES
            raise _BadAnswer(f"the answer's headers are longer than {limit} bytes")
        self.headers.append((name, value))

    def on_headers_complete(self) -> None:
        if self.trailing:
            return
        status = self.parser.get_status_code()
        if 100 <= status < 200:  # 100 Continue, 103 Early Hints, ...
            self.interim = True  # (101 Switching Protocols stops the parser: refused)
            return
        self.status = status
        self.headers_done = True
        # Content codings, then transfer codings other than chunked (which the parser undoes):
        # applied in that order, so undone the other way round (`Decoder` undoes the last first).
        codings = [v for k, v in self.headers if k.lower() == b"content-encoding"]
        transfer = b",".join(v for k, v in self.headers if k.lower() == b"transfer-encoding")
        codings += [c for c in transfer.split(b",") if c.strip().lower() not in (b"", b"chunked")]
        if codings:
            decoder = Decoder(b",".join(codings).decode("latin-1"))
            self.decoder = None if decoder.identity else decoder

    def on_body(self, body: bytes) -> None:
        if self.truncated or self.trailing:
            return
        data = body
        if self.decoder is not None:
            try:
                # At most what the cap still admits, and a little more to know there was more.
                data = self.decoder.feed(body, self.max_bytes - self.size)
            except EncodingError as exc:
                raise _BadAnswer(str(exc)) from None
        self.chunks.append(data)
        self.size += len(data)
        if self.size > self.max_bytes:
            self.truncated = True

    def on_message_complete(self) -> None:
        if self.trailing:
            return
        if self.interim:  # its header fields still count toward the head's byte cap
            self.interim = False
            self.headers = []
            return
        self._flush()
        # Read now: httptools forgets it once the message is done.
        self.keep_alive = self.parser.should_keep_alive()
        self.complete = True

    # -- the answer -----------------------------------------------------------------------------

    def _flush(self) -> None:
        if self.decoder is not None and not self.truncated:
            try:
                rest = self.decoder.finish(self.max_bytes - self.size)
            except EncodingError as exc:
                raise _BadAnswer(str(exc)) from None
            if rest:
                self.chunks.append(rest)
                self.size += len(rest)
                self.truncated = self.size > self.max_bytes

    def _ended(self, exc: Exception | None) -> None:
        """The server closed the connection, or it broke (`exc`)."""
        self.closed = True
        if self.waiter is None:
            self.failure = self.failure or exc
            return
        if exc is None and self.headers_done and _ends_with_connection(self.headers):
            try:
                self._flush()
            except _BadAnswer as bad:
                self._fail(bad)
                return
            self.complete = True
            self._succeed()
            return
        self._fail(exc or _BadAnswer(_CLOSED_DURING if self.received else _CLOSED_BEFORE))

    def _succeed(self) -> None:
        waiter = self.waiter
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        self.waiter = None
        body = b"".join(self.chunks)
        response = UpstreamResponse(
            status=self.status,
            headers=_decoded(self.headers),
            body=body[: self.max_bytes] if self.truncated else body,
            truncated=self.truncated,
        )
        if self.truncated or not self.keep_alive or self.trailing:
            self.close()
        if waiter is not None and not waiter.done():
            waiter.set_result(response)

    def _expire(self) -> None:
        self._fail(_Late() if self.headers_done else TimeoutError())

    def _fail(self, exc: BaseException) -> None:
        waiter = self.waiter
        self.close()
        if waiter is not None and not waiter.done():
            waiter.set_exception(exc)


@dataclass(slots=True)
class _Pool:
    """The connections to one origin: at most `slots` in use, and the idle ones."""

    slots: asyncio.Semaphore
    idle: list[_Connection]
    reaping: asyncio.TimerHandle | None = None
    """A look at the idle connections, due when the oldest expires (`Http11Upstream._reap`)."""


class Http11Upstream:
    """Sends over pooled keep-alive HTTP/1.1 connections, one pool per origin.

    Use it from one event loop; `aclose()` closes the idle connections.
    """

    def __init__(
        self,
        *,
        max_connections_per_host: int = 100,
        max_connections: int = 1000,
        keepalive_expiry: float = 4.0,
        user_agent: str = "toolbridge",
        verify: ssl.SSLContext | bool = True,
    ) -> None:
        self.max_connections_per_host = max_connections_per_host
        self._all = asyncio.Semaphore(max_connections)
        """Connections in use to every origin together (idle ones close within the expiry)."""
        self.keepalive_expiry = keepalive_expiry
        self._agent = f"User-Agent: {user_agent}"
        self._ssl: ssl.SSLContext | None = None
        if verify is False:
            self._ssl = ssl.create_default_context()
            self._ssl.check_hostname = False
            self._ssl.verify_mode = ssl.CERT_NONE
        elif isinstance(verify, ssl.SSLContext):
            self._ssl = verify
        self._pools: dict[_Key, _Pool] = {}

    async def send(
        self, request: UpstreamRequest, *, timeouts: Timeouts, max_bytes: int
    ) -> UpstreamResponse:
        origin, target = _split(request.url)
        method = request.method.upper()
        head = self._head(request, method, target, origin)
        data = head + request.body if request.body else head
        pool = self._pools.get(origin.key)
        if pool is None:
            pool = self._pools[origin.key] = _Pool(
                asyncio.Semaphore(self.max_connections_per_host), []
            )
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeouts.total
        connecting = True
        try:
            await _acquire(pool.slots, deadline)
            try:
                await _acquire(self._all, deadline)
            except BaseException:
                pool.slots.release()
                raise
            try:
                for attempt in (1, 2):
                    connection = self._take(pool)
                    if connection is None:
                        connecting = True
                        async with asyncio.timeout_at(
                            min(deadline, loop.time() + timeouts.connect)
                        ):
                            connection = await self._open(loop, origin.key)
                    connecting = False
                    try:
                        response = await connection.exchange(
                            data, method == "HEAD", max_bytes, deadline
                        )
                    except BaseException as exc:
                        # Whatever went wrong (a timeout or a cancellation too), this
                        # connection is in an unknown state: it is never reused.
                        connection.close()
                        # An idle connection the server has just closed: try a fresh one, once,
                        # when sending again cannot do anything twice.
                        retry = method in IDEMPOTENT and _stale(exc)
                        if attempt == 1 and connection.reused and retry:
                            continue
                        raise
                    if not connection.closed:
                        connection.idle_since = time.monotonic()
                        connection.reused = True
                        pool.idle.append(connection)
                        if pool.reaping is None:
                            pool.reaping = loop.call_later(self.keepalive_expiry, self._reap, pool)
                    return response
                raise AssertionError("unreachable")  # pragma: no cover
            finally:
                self._all.release()
                pool.slots.release()
        except TimeoutError as exc:
            seconds = timeouts.connect if connecting else timeouts.total
            began = isinstance(exc, _Late)
            raise timed_out(
                request, min(seconds, timeouts.total), connecting, began=began
            ) from None
        except _BadAnswer as exc:
            raise bad_answer(request, str(exc)) from None
        except (OSError, ssl.SSLError) as exc:
            if connecting:
                raise unreachable(request, exc) from None
            raise bad_answer(request, reason_of(exc)) from None

    def _head(self, request: UpstreamRequest, method: str, target: str, origin: _Origin) -> bytes:
        lines = [f"{request.method} {target} HTTP/1.1", origin.host]
        forwarded = []
        agent = encoding = True
        for name, value in request.headers:
            if not HEADER_NAME.fullmatch(name):  # the last line: conversion leaves such names out
                raise DestinationRefused(
                    request.server,
                    f"refused: {name[:64]!r} is not a header name (an RFC 9110 token)",
                )
            lowered = name.lower()
            if lowered in _NOT_FORWARDED:
                continue
            if lowered == "user-agent":
                agent = False
            elif lowered == "accept-encoding":
                encoding = False
            forwarded.append(f"{name}: {value}")
        if agent:
            lines.append(self._agent)
        if encoding:
            lines.append(_ACCEPT_ENCODING)
        lines += forwarded
        body = request.body
        if body is not None and (body or method not in ("GET", "HEAD")):
            lines.append(f"Content-Length: {len(body)}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")

    def _take(self, pool: _Pool) -> _Connection | None:
        idle = pool.idle
        if not idle:
            return None
        now = time.monotonic()
        while idle:
            connection = idle.pop()  # the most recently used: the least likely to be stale
            if connection.closed or now - connection.idle_since > self.keepalive_expiry:
                connection.close()
                continue
            return connection
        return None

    async def _open(self, loop: asyncio.AbstractEventLoop, key: _Key) -> _Connection:
        """A connection to the first of the host's checked addresses that answers; the name is
        resolved here once, and the certificate checked against it (never against the address)."""
        scheme, host, port = key
        context = None
        if scheme == "https":
            context = self._ssl or ssl.create_default_context()
        failure: OSError | None = None
        for _, address in await addresses(host, port):
            try:
                _, connection = await loop.create_connection(
                    lambda: _Connection(loop),
                    address,
                    port,
                    ssl=context,
                    server_hostname=checked_host(host) if context is not None else None,
                )
            except OSError as exc:
                failure = exc
                continue
            return connection
        raise failure or OSError(f"{host} has no address")

    def _reap(self, pool: _Pool) -> None:
        """Close the pool's idle connections past the expiry, and look again when the next
        one expires: after a burst to an origin no call goes to again, its connections would
        otherwise stay open as long as the process."""
        pool.reaping = None
        now = time.monotonic()
        kept = []
        for connection in pool.idle:
            if connection.closed or now - connection.idle_since >= self.keepalive_expiry:
                connection.close()
            else:
                kept.append(connection)
        pool.idle[:] = kept
        if kept:
            due = min(c.idle_since for c in kept) + self.keepalive_expiry - now
            pool.reaping = asyncio.get_running_loop().call_later(max(due, 0.01), self._reap, pool)

    async def aclose(self) -> None:
        for pool in self._pools.values():
            if pool.reaping is not None:
                pool.reaping.cancel()
                pool.reaping = None
            while pool.idle:
                pool.idle.pop().close()


async def _acquire(slots: asyncio.Semaphore, deadline: float) -> None:
    """A slot, waiting for one until `deadline` (the call's) when none is free."""
    if slots.locked():
        async with asyncio.timeout_at(deadline):
            await slots.acquire()
    else:
        await slots.acquire()


def _ends_with_connection(headers: list[tuple[bytes, bytes]]) -> bool:
    """Whether a response's body is delimited by the end of the connection (RFC 9112, 6.3)."""
    codings = b",".join(v for k, v in headers if k.lower() == b"transfer-encoding")
    if codings:
        return codings.rsplit(b",", 1)[-1].strip().lower() != b"chunked"
    return not any(k.lower() == b"content-length" for k, _ in headers)


def _stale(exc: BaseException) -> bool:
    if isinstance(exc, ConnectionError):
        return True
    return isinstance(exc, _BadAnswer) and str(exc) == _CLOSED_BEFORE


def _decoded(raw: list[tuple[bytes, bytes]]) -> Headers:
    try:
        return tuple([(k.decode("ascii"), v.decode("utf-8")) for k, v in raw])
    except UnicodeDecodeError:
        return tuple([(k.decode("latin-1"), v.decode("latin-1")) for k, v in raw])
