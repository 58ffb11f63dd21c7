"""One HTTP connection under limits: uvicorn's httptools protocol, with what it lacks.

uvicorn closes idle kept-alive connections (`timeout_keep_alive`), but with httptools it puts
no bound on a request's head: a client may send a header byte every few seconds, or megabytes
of headers, for as long as it likes, and each such connection holds what it sent. Here:

- the head (request line and headers) must arrive within `header_timeout` of the connection
  opening, or of the request's first byte on a kept-alive connection: else 408, and closed;
- the body must arrive within `body_timeout` of the head's end: else 408 when no answer has
  started, and the connection is closed either way (the app sees the client go away);
- a head over `max_header_bytes`, or with more than `max_headers` fields, is answered 431 and
  the connection closed, before any route sees it.

Trusts nothing the client sends. The values come from the config's `http` section: `serve`
sets them before the first connection, and every reload again (`serve/live`), so that the
next head, body or idle wait of every connection is held to the config of the moment
(uvicorn's `timeout_keep_alive` included: it is read here, not from uvicorn's config).
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from toolbridge.config import Http

PROTOCOL = "toolbridge.serve.connection:LimitedHttp"
"""What `uvicorn.Config(http=...)` takes: an import string, so worker processes find it too."""


def set_limits(http: Http) -> None:
    """The limits of every connection of this process from now on (`serve` calls it, and each
    worker process, before the first connection; and each reload)."""
    LimitedHttp.limits = http


class LimitedHttp(HttpToolsProtocol):
    limits: Http = Http()

    @property  # type: ignore[override]
    def timeout_keep_alive(self) -> float:
        """uvicorn's idle wait between a kept-alive connection's requests, from the limits."""
        return self.limits.keep_alive_timeout

    @timeout_keep_alive.setter
    def timeout_keep_alive(self, _value: float) -> None:
        pass  # uvicorn's __init__ sets its config's: the limits' is the one taken

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._reset_head()
        self._timer: asyncio.TimerHandle | None = None
        self._arm(self.limits.header_timeout)

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        reading_head = not self._head_done
        super().data_received(data)
        if self.transport.is_closing():
            return
        if reading_head and not self._head_done:
            self._head_bytes += len(data)  # all of it is head: the head is still not complete
            if self._head_bytes > self.limits.max_header_bytes:
                self._refuse(431, f"the request head is over {self.limits.max_header_bytes} bytes")

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._reset_head()
        if self._timer is None:  # a kept-alive connection's next request
            self._arm(self.limits.header_timeout)

    def on_url(self, url: bytes) -> None:
        self._parsed += len(url)
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._fields += 1
        self._parsed += len(name) + len(value) + 4
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._head_done = True
        if self._fields > self.limits.max_headers:
            self._refuse(431, f"more than {self.limits.max_headers} header fields")
            return
        if self._parsed > self.limits.max_header_bytes:  # a whole head that came at once
            self._refuse(431, f"the request head is over {self.limits.max_header_bytes} bytes")
            return
        self._arm(self.limits.body_timeout)
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._disarm()
        super().on_message_complete()

    # -- internals ----------------------------------------------------------------------------

    def _reset_head(self) -> None:
        self._head_done = False
        self._head_bytes = 0  # raw bytes received while the head is incomplete
        self._parsed = 0  # the request target and header fields, as parsed
        self._fields = 0

    def _arm(self, seconds: float) -> None:
        self._disarm()
        self._timer = self.loop.call_later(seconds, self._timed_out)

    def _disarm(self) -> None:
        timer: asyncio.TimerHandle | None = getattr(self, "_timer", None)
        if timer is not None:
            timer.cancel()
        self._timer = None

    def _timed_out(self) -> None:
        self._timer = None
        if self.transport.is_closing():
            return
        cycle: Any = self.cycle
        if self._head_done and cycle is not None and cycle.response_started:
            self.transport.close()  # too late for a 408: the answer has begun
            return
        what = "body" if self._head_done else "request head"
        self._refuse(408, f"the {what} did not arrive in time")

    def _refuse(self, status: int, message: str) -> None:
        """Answer `status` with a JSON error body, and close the connection."""
        self._disarm()
        reason = {408: b"Request Timeout", 431: b"Request Header Fields Too Large"}[status]
        kind = "request_timeout" if status == 408 else "request_header_fields_too_large"
        body = b'{"error":{"type":"%s","message":"%s"}}' % (kind.encode(), message.encode())
        self.transport.write(
            b"HTTP/1.1 %d %s\r\ncontent-type: application/json\r\ncontent-length: %d\r\n"
            b"connection: close\r\n\r\n%s" % (status, reason, len(body), body)
        )
        self.transport.close()
        if self.cycle is not None and not self.cycle.response_complete:
            self.cycle.disconnected = True
            self.cycle.message_event.set()
