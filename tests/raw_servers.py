"""Servers on loopback that speak raw bytes, each in a thread with its own event loop (so they
answer while the test's own loop is busy, e.g. in a synchronous load): scripted HTTP answers,
TLS with a given context, and a small but real HTTP proxy (absolute-form requests forwarded,
CONNECT tunnels) that records what it carried. `BlockingTlsServer` serves TLS the way most
servers do, with blocking OpenSSL sockets, so a refused handshake sends its alert."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import socket
import ssl
import threading
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Any, Self
from urllib.parse import urlsplit

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


class RawServer:
    """`with RawServer(handler) as server:` serves `handler` at `server.url` until the block
    ends."""

    def __init__(
        self, handler: Handler, *, host: str = "127.0.0.1", context: ssl.SSLContext | None = None
    ) -> None:
        self.handler = handler
        self.host = host
        self.context = context
        self.port = 0
        self.loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)

    @property
    def url(self) -> str:
        return f"{'https' if self.context else 'http'}://{self.host}:{self.port}"

    def _run(self) -> None:
        self.loop.run_until_complete(self._serve())

    async def _serve(self) -> None:
        self._stop = asyncio.Event()
        tasks: set[asyncio.Task[None]] = set()

        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            task = asyncio.current_task()
            assert task is not None
            tasks.add(task)
            try:
                await self.handler(reader, writer)
            except (asyncio.IncompleteReadError, ConnectionError, ssl.SSLError, OSError):
                pass
            finally:
                writer.close()
                tasks.discard(task)

        server = await asyncio.start_server(handle, self.host, 0, ssl=self.context)
        self.port = server.sockets[0].getsockname()[1]
        self._ready.set()
        await self._stop.wait()
        server.close()
        for task in list(tasks):
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await server.wait_closed()

    def __enter__(self) -> Self:
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("the raw server did not start")
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        assert self._stop is not None
        self.loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)
        self.loop.close()


async def read_request(reader: asyncio.StreamReader) -> tuple[bytes, bytes]:
    """One request's head and body (Content-Length bodies only)."""
    head = await reader.readuntil(b"\r\n\r\n")
    for line in head.split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return head, await reader.readexactly(int(value))
    return head, b""


def answering(answer: bytes) -> Handler:
    """Answers every request on a connection with the same bytes."""

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            await read_request(reader)
            writer.write(answer)
            await writer.drain()

    return handler


class Proxy:
    """An HTTP proxy: forwards absolute-form requests (one per connection) and tunnels CONNECT;
    `seen` holds each request line it served. With `credentials` (`user:password`), a request
    without them gets 407. `names` are host names it resolves itself (to an address)."""

    def __init__(self, credentials: str | None = None, names: dict[str, str] | None = None) -> None:
        self.seen: list[str] = []
        self.credentials = credentials
        self.names = names or {}

    async def __call__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head, body = await read_request(reader)
        first, _, rest = head.partition(b"\r\n")
        method, target, _ = first.decode("latin-1").split(" ", 2)
        lines = [line for line in rest.split(b"\r\n") if line]
        if self.credentials is not None:
            wanted = b"basic " + base64.b64encode(self.credentials.encode())
            given = [
                v.strip().lower()
                for k, _, v in (x.partition(b":") for x in lines)
                if k.strip().lower() == b"proxy-authorization"
            ]
            if wanted.lower() not in given:
                self.seen.append(f"407 {method} {target}")
                writer.write(
                    b"HTTP/1.1 407 Proxy Authentication Required\r\nContent-Length: 0\r\n\r\n"
                )
                await writer.drain()
                return
        self.seen.append(f"{method} {target}")
        if method == "CONNECT":
            host, _, port = target.rpartition(":")
            host = self.names.get(host, host.strip("[]"))
            far_reader, far_writer = await asyncio.open_connection(host, int(port))
            try:
                writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
                await writer.drain()
                await asyncio.gather(
                    _pipe(reader, far_writer), _pipe(far_reader, writer), return_exceptions=True
                )
            finally:
                far_writer.close()
            return
        parts = urlsplit(target)
        name = parts.hostname or ""
        far_reader, far_writer = await asyncio.open_connection(
            self.names.get(name, name), parts.port or 80
        )
        try:
            kept = [
                line
                for line in lines
                if not line.lower().startswith((b"proxy-", b"connection:", b"keep-alive:"))
            ]
            origin_form = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
            far_writer.write(
                f"{method} {origin_form} HTTP/1.1\r\n".encode("latin-1")
                + b"\r\n".join([*kept, b"Connection: close"])
                + b"\r\n\r\n"
                + body
            )
            await far_writer.drain()
            await _pipe(far_reader, writer)
        finally:
            far_writer.close()


async def _pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
    try:
        while data := await source.read(65536):
            sink.write(data)
            await sink.drain()
    finally:
        with contextlib.suppress(Exception):
            sink.close()


class BlockingTlsServer:
    """TLS on blocking sockets, one thread per connection: a failed handshake (a missing or
    untrusted client certificate) sends its alert, as nginx and most servers do. Answers each
    request with `answer(peer_certificate)`."""

    def __init__(self, context: ssl.SSLContext, answer: Callable[[dict[str, Any]], bytes]):
        self.context = context
        self.answer = answer
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.2)
        self.url = f"https://127.0.0.1:{self._listener.getsockname()[1]}"
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)

    def _accept(self) -> None:
        while not self._stopped.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        conn.settimeout(5)
        try:
            with self.context.wrap_socket(
                conn, server_side=True, do_handshake_on_connect=False
            ) as tls:
                try:
                    tls.do_handshake()
                except ssl.SSLError:
                    # The alert is out; read what the client still sends before closing, so
                    # that it reads the alert rather than a reset (a lingering close).
                    raw = socket.socket(fileno=tls.detach())
                    with contextlib.suppress(OSError):
                        while raw.recv(65536):
                            pass
                    raw.close()
                    return
                data = b""
                while b"\r\n\r\n" not in data:
                    chunk = tls.recv(65536)
                    if not chunk:
                        return
                    data += chunk
                tls.sendall(self.answer(tls.getpeercert() or {}))
        except (OSError, ssl.SSLError):
            pass
        finally:
            conn.close()

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stopped.set()
        self._thread.join(5)
        self._listener.close()
