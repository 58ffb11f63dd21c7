"""A thin HTTP/1.1 client of our own for the upstream hop: pools of connections, each an asyncio
Protocol feeding httptools (`http11_connection`).

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
idle) is closed, never reused. One sent later still, once the connection carries the next
request, cannot be told from that request's answer: so a connection is reused only for
requests of its own pool (`UpstreamRequest.pool`: the same server, and for a server that sends
each caller's own credentials, the same caller). Such an answer reaches no other server's
request, nor another caller's.
"""

from __future__ import annotations

import asyncio
import functools
import re
import ssl
import time
from dataclasses import dataclass
from urllib.parse import SplitResult, urlsplit

from toolbridge.errors import DestinationRefused
from toolbridge.tools import CONNECTION_HEADERS, HEADER_NAME
from toolbridge.upstream.encodings import ACCEPT_ENCODING
from toolbridge.upstream.http11_connection import BadAnswer, Connection, Late, stale
from toolbridge.upstream.resolver import addresses, checked_host
from toolbridge.upstream.seam import (
    IDEMPOTENT,
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
_ACCEPT_ENCODING = f"Accept-Encoding: {ACCEPT_ENCODING}"

_Key = tuple[str, str, int]
"""Scheme, host and port: where to connect, and the pool's key."""


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


@dataclass(slots=True)
class _Pool:
    """The connections to one origin: at most `slots` in use, and the idle ones by the pool of
    the requests they may carry (`UpstreamRequest.pool`)."""

    slots: asyncio.Semaphore
    idle: dict[str, list[Connection]]
    busy: int = 0
    """Requests holding a slot (each has a connection, or is about to)."""
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
                asyncio.Semaphore(self.max_connections_per_host), {}
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
            pool.busy += 1
            try:
                for attempt in (1, 2):
                    connection = self._take(pool, request.pool)
                    if connection is None:
                        self._make_room(pool)
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
                        retry = method in IDEMPOTENT and stale(exc)
                        if attempt == 1 and connection.reused and retry:
                            continue
                        raise
                    if not connection.closed:
                        connection.idle_since = time.monotonic()
                        connection.reused = True
                        pool.idle.setdefault(request.pool, []).append(connection)
                        if pool.reaping is None:
                            pool.reaping = loop.call_later(self.keepalive_expiry, self._reap, pool)
                    return response
                raise AssertionError("unreachable")  # pragma: no cover
            finally:
                pool.busy -= 1
                self._all.release()
                pool.slots.release()
        except TimeoutError as exc:
            seconds = timeouts.connect if connecting else timeouts.total
            began = isinstance(exc, Late)
            raise timed_out(
                request, min(seconds, timeouts.total), connecting, began=began
            ) from None
        except BadAnswer as exc:
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

    def _take(self, pool: _Pool, requests: str) -> Connection | None:
        idle = pool.idle.get(requests)
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

    def _make_room(self, pool: _Pool) -> None:
        """Idle connections count toward the origin's cap: at the cap, a new one takes the place
        of the idle one unused longest (another pool's: this one's had none to give). Without
        it, callers' own pools kept one idle connection each, 300 callers 300 connections."""
        idle = sum(map(len, pool.idle.values()))
        if not idle or pool.busy + idle <= self.max_connections_per_host:
            return  # (the usual case: nothing is looked through)
        everyone = (c for kept in pool.idle.values() for c in kept)
        oldest = min(everyone, key=lambda connection: connection.idle_since)
        oldest.close()
        for connections in pool.idle.values():
            if oldest in connections:
                connections.remove(oldest)
                return

    async def _open(self, loop: asyncio.AbstractEventLoop, key: _Key) -> Connection:
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
                    lambda: Connection(loop),
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
        oldest: float | None = None
        for requests, idle in list(pool.idle.items()):
            kept = []
            for connection in idle:
                if connection.closed or now - connection.idle_since >= self.keepalive_expiry:
                    connection.close()
                else:
                    kept.append(connection)
                    since = connection.idle_since
                    oldest = since if oldest is None else min(oldest, since)
            if kept:
                idle[:] = kept
            else:  # (a caller's pool: gone with its connections, however many callers come)
                del pool.idle[requests]
        if oldest is not None:
            due = oldest + self.keepalive_expiry - now
            pool.reaping = asyncio.get_running_loop().call_later(max(due, 0.01), self._reap, pool)

    async def aclose(self) -> None:
        for pool in self._pools.values():
            if pool.reaping is not None:
                pool.reaping.cancel()
                pool.reaping = None
            for idle in pool.idle.values():
                while idle:
                    idle.pop().close()
            pool.idle.clear()


async def _acquire(slots: asyncio.Semaphore, deadline: float) -> None:
    """A slot, waiting for one until `deadline` (the call's) when none is free."""
    if slots.locked():
        async with asyncio.timeout_at(deadline):
            await slots.acquire()
    else:
        await slots.acquire()
