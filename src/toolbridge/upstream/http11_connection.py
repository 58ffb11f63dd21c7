"""One connection of the HTTP/1.1 client (`http11`): writing a request, reading its answer.

An asyncio Protocol feeds what arrives to httptools, whose callbacks build the answer: interim
answers (1xx) skipped, the head's size and field count capped, content codings (and transfer
codings beside chunked) undone by `encodings`, the body cut at the size cap, and anything more
than the one answer asked for marking the connection unusable. Every failure is a `BadAnswer`
(or `Late`, a deadline met mid-answer) that `http11` maps to UpstreamUnavailable.

Trusts nothing the server sends.
"""

from __future__ import annotations

import asyncio
from typing import cast

import httptools

from toolbridge.upstream.encodings import Decoder, EncodingError
from toolbridge.upstream.seam import (
    MAX_RESPONSE_HEAD_BYTES,
    MAX_RESPONSE_HEADERS,
    Headers,
    UpstreamResponse,
)

CLOSED_BEFORE = "the connection closed before an answer"
CLOSED_DURING = "the connection closed in the middle of the answer"


class Late(TimeoutError):
    """The deadline came with the answer's head in and its body still coming."""


class BadAnswer(Exception):
    """The connection broke, or what came back was not HTTP; the message says which."""


class Connection(asyncio.Protocol):
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
            raise self.failure or BadAnswer(CLOSED_BEFORE)
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
            self._fail(BadAnswer("the server switched protocols"))
        except httptools.HttpParserError as exc:
            if self.complete:  # what follows the answer is no answer: the answer stands
                self.trailing = True
                self._succeed()
                return
            cause = exc.__context__
            if not isinstance(cause, BadAnswer):
                # llhttp's own words ("Duplicate Content-Length"): fixed texts, no data
                cause = BadAnswer(f"not an HTTP answer: {str(exc)[:120] or type(exc).__name__}")
            self._fail(cause)
        else:
            if self.complete or self.truncated or (self.head_only and self.headers_done):
                self._succeed()
            elif not self.headers_done and self.head_bytes > MAX_RESPONSE_HEAD_BYTES:
                limit = MAX_RESPONSE_HEAD_BYTES
                self._fail(BadAnswer(f"the answer's headers are longer than {limit} bytes"))

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
            raise BadAnswer(f"the answer has more than {MAX_RESPONSE_HEADERS} header fields")
        self.head_size += len(name) + len(value) + 4
        if self.head_size > MAX_RESPONSE_HEAD_BYTES:
            limit = MAX_RESPONSE_HEAD_BYTES
            raise BadAnswer(f"the answer's headers are longer than {limit} bytes")
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
                raise BadAnswer(str(exc)) from None
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
                raise BadAnswer(str(exc)) from None
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
            except BadAnswer as bad:
                self._fail(bad)
                return
            self.complete = True
            self._succeed()
            return
        self._fail(exc or BadAnswer(CLOSED_DURING if self.received else CLOSED_BEFORE))

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
        self._fail(Late() if self.headers_done else TimeoutError())

    def _fail(self, exc: BaseException) -> None:
        waiter = self.waiter
        self.close()
        if waiter is not None and not waiter.done():
            waiter.set_exception(exc)


def _ends_with_connection(headers: list[tuple[bytes, bytes]]) -> bool:
    """Whether a response's body is delimited by the end of the connection (RFC 9112, 6.3)."""
    codings = b",".join(v for k, v in headers if k.lower() == b"transfer-encoding")
    if codings:
        return codings.rsplit(b",", 1)[-1].strip().lower() != b"chunked"
    return not any(k.lower() == b"content-length" for k, _ in headers)


def stale(exc: BaseException) -> bool:
    if isinstance(exc, ConnectionError):
        return True
    return isinstance(exc, BadAnswer) and str(exc) == CLOSED_BEFORE


def _decoded(raw: list[tuple[bytes, bytes]]) -> Headers:
    try:
        return tuple([(k.decode("ascii"), v.decode("utf-8")) for k, v in raw])
    except UnicodeDecodeError:
        return tuple([(k.decode("latin-1"), v.decode("latin-1")) for k, v in raw])
