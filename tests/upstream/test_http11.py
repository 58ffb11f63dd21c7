"""Http11Upstream against scripted servers on 127.0.0.1: framing, pooling, retries, TLS."""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import gzip
import ipaddress
import ssl
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from urllib.parse import urlsplit

import brotli
import pytest
import zstandard
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from toolbridge.errors import DestinationRefused, UpstreamUnavailable
from toolbridge.upstream.http11 import Http11Upstream, _split
from toolbridge.upstream.seam import Headers, Timeouts, UpstreamRequest, UpstreamResponse

pytestmark = pytest.mark.anyio

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]
OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


@pytest.fixture(params=["asyncio", "uvloop"])
def anyio_backend(request: pytest.FixtureRequest) -> tuple[str, dict[str, bool]]:
    return "asyncio", {"use_uvloop": request.param == "uvloop"}


@pytest.fixture
async def upstream() -> AsyncIterator[Http11Upstream]:
    client = Http11Upstream(user_agent="test-agent")
    try:
        yield client
    finally:
        await client.aclose()


@contextlib.asynccontextmanager
async def serving(
    handler: Handler, context: ssl.SSLContext | None = None
) -> AsyncIterator[tuple[str, list[int]]]:
    """The server's base URL, and the number of each connection it has accepted so far."""
    accepted: list[int] = []
    handlers: dict[asyncio.StreamWriter, asyncio.Task[None]] = {}

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(len(accepted))
        task = asyncio.current_task()
        assert task is not None
        handlers[writer] = task
        try:
            await handler(reader, writer)
        except (asyncio.IncompleteReadError, ConnectionError, ssl.SSLError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=context)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"{'https' if context else 'http'}://127.0.0.1:{port}", accepted
    finally:
        server.close()
        for writer in handlers:  # a handler still reading sees the end of its connection
            writer.transport.abort()
        await asyncio.wait_for(asyncio.gather(*handlers.values()), 5)
        await server.wait_closed()


async def read_request(reader: asyncio.StreamReader) -> bytes:
    head = await reader.readuntil(b"\r\n\r\n")
    for line in head.split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name.lower() == b"content-length":
            return head + await reader.readexactly(int(value))
    return head


def answering(*answers: bytes) -> Handler:
    """Answers the requests on each connection with `answers` in turn, then hangs up."""

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        for answer in answers:
            await read_request(reader)
            writer.write(answer)
            await writer.drain()

    return handler


async def send(
    upstream: Http11Upstream,
    url: str,
    method: str = "GET",
    *,
    headers: Headers = (),
    body: bytes | None = None,
    timeouts: Timeouts = Timeouts(connect=2, total=3),  # noqa: B008
    max_bytes: int = 1000,
    pool: str = "",
) -> UpstreamResponse:
    request = UpstreamRequest(
        server="test", method=method, url=url, headers=headers, body=body, pool=pool
    )
    return await upstream.send(request, timeouts=timeouts, max_bytes=max_bytes)


def old_split(url: str) -> tuple[tuple[str, str, int], str, str]:
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    key = (scheme, parts.hostname or "", parts.port or (443 if scheme == "https" else 80))
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return key, target, "Host: " + parts.netloc.rpartition("@")[2]


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8000/items/7?q=blue%20widget",
        "HTTPS://API.Example.com/v1/a%2Fb?x=1&y=%3F",
        "https://user:pw@api.example.com/v1?key=1",
        "http://[::1]/x",
        "http://[::1]:8080?q=1",
        "http://example.com",
        "http://example.com?",
        "http://example.com/?",
        "http://example.com/a?#frag",
        "http://example.com/a??b?",
        "http://example.com/a?b#c?d",
        "http://example.com#top",
        "http://example.com:8080/a/../b",
        "http://exa\tmple.com/a\r\n/b",
        "  http://example.com/a",
        "1http://example.com/a",
        "http:example.com/a",
    ],
)
def test_split_says_what_urlsplit_says(url: str) -> None:
    origin, target = _split(url)
    assert (origin.key, target, origin.host) == old_split(url)


async def test_request_head_as_sent(upstream: Http11Upstream) -> None:
    heads: list[bytes] = []

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            heads.append(await read_request(reader))
            writer.write(OK)

    async with serving(handler) as (url, _):
        authority = url.removeprefix("http://")
        await send(upstream, f"http://user:pw@{authority}/a?b=1#c", headers=(("X-A", "1"),))
        await send(
            upstream,
            f"{url}?q",
            "post",
            headers=(("host", "x"), ("Connection", "close"), ("user-agent", "mine")),
            body=b"",
        )
        await send(upstream, url, "GET", headers=(("Accept-Encoding", "identity"),), body=b"")
        await send(upstream, url, "PUT", body=b"\x00\xff")
    assert heads == [
        f"GET /a?b=1 HTTP/1.1\r\nHost: {authority}\r\nUser-Agent: test-agent\r\n"
        "Accept-Encoding: gzip, deflate, br, zstd\r\nX-A: 1\r\n\r\n".encode(),
        f"post /?q HTTP/1.1\r\nHost: {authority}\r\nAccept-Encoding: gzip, deflate, br, zstd\r\n"
        "user-agent: mine\r\nContent-Length: 0\r\n\r\n".encode(),
        f"GET / HTTP/1.1\r\nHost: {authority}\r\nUser-Agent: test-agent\r\n"
        "Accept-Encoding: identity\r\n\r\n".encode(),
        f"PUT / HTTP/1.1\r\nHost: {authority}\r\nUser-Agent: test-agent\r\n"
        "Accept-Encoding: gzip, deflate, br, zstd\r\nContent-Length: 2\r\n\r\n\x00\xff".encode(
            "latin-1"
        ),
    ]


@pytest.mark.parametrize(
    ("answer", "body"),
    [
        (b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nuntil the end", b"until the end"),
        (b"HTTP/1.0 200 OK\r\n\r\nuntil the end", b"until the end"),
        (
            b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\n\r\n" + gzip.compress(b"z" * 5000),
            b"z" * 5000,
        ),
    ],
    ids=["connection-close", "http-1.0", "gzip"],
)
async def test_body_delimited_by_the_connection_end(
    upstream: Http11Upstream, answer: bytes, body: bytes
) -> None:
    async with serving(answering(answer)) as (url, accepted):
        first = await send(upstream, url, max_bytes=10_000)
        second = await send(upstream, url, max_bytes=10_000)
    assert (first.status, first.body, first.truncated) == (200, body, False)
    assert second.body == body
    assert accepted == [0, 1]


async def test_body_cut_at_max_bytes_closes_the_connection(upstream: Http11Upstream) -> None:
    long = b"HTTP/1.1 200 OK\r\nContent-Length: 5000\r\n\r\n" + b"x" * 5000
    async with serving(answering(long, long)) as (url, accepted):
        first = await send(upstream, url, max_bytes=100)
        second = await send(upstream, url, max_bytes=5000)
    assert (first.body, first.truncated) == (b"x" * 100, True)
    assert (second.body, second.truncated) == (b"x" * 5000, False)
    assert accepted == [0, 1]


async def test_deflate_is_decoded(upstream: Http11Upstream) -> None:
    data = zlib.compress(b"d" * 3000)
    answer = b"HTTP/1.1 200 OK\r\nContent-Encoding: deflate\r\nContent-Length: %d\r\n\r\n" % len(
        data
    )
    async with serving(answering(answer + data)) as (url, _):
        response = await send(upstream, url, max_bytes=10_000)
    assert (response.body, response.truncated) == (b"d" * 3000, False)


@pytest.mark.parametrize("coding", ["gzip", "deflate"])
async def test_body_that_does_not_decode_is_a_bad_answer(
    upstream: Http11Upstream, coding: str
) -> None:
    body = f"not {coding}".encode()
    head = f"HTTP/1.1 200 OK\r\nContent-Encoding: {coding}\r\nContent-Length: {len(body)}\r\n\r\n"
    async with serving(answering(head.encode() + body)) as (url, _):
        with pytest.raises(UpstreamUnavailable) as caught:
            await send(upstream, url)
    assert str(caught.value).startswith(
        f"upstream 'test': no valid answer from {url}: the body is not valid {coding}: Error -3"
    )


@pytest.mark.parametrize(
    ("coding", "encoded"),
    [
        ("br", brotli.compress(b"b" * 30_000)),
        ("zstd", zstandard.ZstdCompressor().compress(b"b" * 30_000)),
        ("gzip, br", brotli.compress(gzip.compress(b"b" * 30_000))),
    ],
    ids=["br", "zstd", "gzip-then-br"],
)
async def test_br_and_zstd_are_decoded_and_cut_at_the_cap(
    upstream: Http11Upstream, coding: str, encoded: bytes
) -> None:
    head = (
        f"HTTP/1.1 200 OK\r\nContent-Encoding: {coding}\r\nContent-Length: {len(encoded)}\r\n\r\n"
    )
    answer = head.encode() + encoded
    async with serving(answering(answer, answer)) as (url, _):
        whole = await send(upstream, url, max_bytes=30_000)
        cut = await send(upstream, url, max_bytes=1000)
    assert (whole.body, whole.truncated) == (b"b" * 30_000, False)
    assert (cut.body, cut.truncated) == (b"b" * 1000, True)


async def test_an_unknown_coding_is_a_bad_answer_not_text(upstream: Http11Upstream) -> None:
    """Bytes in a coding we cannot undo never reach the model as if they were the answer; an
    answer without a body is fine whatever its header says."""
    head = b"HTTP/1.1 200 OK\r\nContent-Encoding: compress\r\nContent-Type: application/json\r\n"
    answers = (
        head + b"Content-Length: 4\r\n\r\n\x1f\x9d\x90{",
        head + b"Content-Length: 0\r\n\r\n",
    )
    async with serving(answering(*answers)) as (url, _):
        with pytest.raises(UpstreamUnavailable) as caught:
            await send(upstream, url)
    async with serving(answering(answers[1])) as (url2, _):
        empty = await send(upstream, url2)
    assert str(caught.value) == (
        f"upstream 'test': no valid answer from {url}: the body is encoded as 'compress', which "
        "the gateway cannot decode (it asks for gzip, deflate, br, zstd)"
    )
    assert (empty.status, empty.body) == (200, b"")


async def test_a_transfer_coding_besides_chunked_is_undone_or_refused(
    upstream: Http11Upstream,
) -> None:
    """`Transfer-Encoding: gzip, chunked` is gzip to undo after the chunks (after any content
    coding's, the other way round); one the gateway cannot undo is refused as a content
    coding is, never passed on as the answer's bytes."""
    inner = gzip.compress(b'{"a": 1}')
    outer = zlib.compress(inner)
    chunked = b"%x\r\n%s\r\n0\r\n\r\n"
    answers = [
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"
        + chunked % (len(inner), inner),
        b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nTransfer-Encoding: deflate\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n" + chunked % (len(outer), outer),
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: compress, chunked\r\n\r\n" + chunked % (2, b"xx"),
    ]
    bodies = []
    for answer in answers[:2]:
        async with serving(answering(answer)) as (url, _):
            bodies.append((await send(upstream, url)).body)
    async with serving(answering(answers[2])) as (url, _):
        with pytest.raises(UpstreamUnavailable) as caught:
            await send(upstream, url)
    assert bodies == [b'{"a": 1}', b'{"a": 1}']
    assert str(caught.value) == (
        f"upstream 'test': no valid answer from {url}: the body is encoded as 'compress', which "
        "the gateway cannot decode (it asks for gzip, deflate, br, zstd)"
    )


async def test_head_ends_with_the_headers(upstream: Http11Upstream) -> None:
    answer = b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\nX-A: 1\r\n\r\n"
    async with serving(answering(answer, answer)) as (url, accepted):
        first = await send(upstream, url, "HEAD")
        second = await send(upstream, url, "HEAD")
    assert (first.status, first.body, first.header("x-a")) == (200, b"", "1")
    assert second.body == b""
    assert accepted == [0, 1]  # a body may still follow: the connection is not reused


async def test_idle_connection_the_server_closed_is_not_reused(upstream: Http11Upstream) -> None:
    async with serving(answering(OK)) as (url, accepted):
        await send(upstream, url)
        await asyncio.sleep(0.1)
        await send(upstream, url, "POST", body=b"once")
    assert accepted == [0, 1]


async def test_idle_connection_that_receives_data_is_not_reused(upstream: Http11Upstream) -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            await read_request(reader)
            writer.write(OK)
            await asyncio.sleep(0.02)
            if writer.is_closing():
                return
            writer.write(b"HTTP/1.1 500 Unasked\r\nContent-Length: 0\r\n\r\n")

    async with serving(handler) as (url, accepted):
        await send(upstream, url)
        await asyncio.sleep(0.1)
        response = await send(upstream, url)
    assert (response.status, accepted) == (200, [0, 1])


def answering_twice_late(delay: float) -> Handler:
    """Answers each request, then `delay` seconds later a second time, unasked, with what the
    request asked for (an upstream, or a box before it, out of step)."""

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        # (until the client closes the connection, as it does one that sent more while idle)
        with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError, RuntimeError):
            while True:
                target = (await read_request(reader)).split(b" ")[1]
                answer = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (
                    len(target),
                    target,
                )
                writer.write(answer)
                await writer.drain()
                await asyncio.sleep(delay)
                writer.write(answer)  # once too many

    return handler


async def test_a_late_extra_answer_reaches_no_request_of_another_pool(
    upstream: Http11Upstream,
) -> None:
    """An extra answer that comes once the connection carries the next request cannot be told
    from that request's own answer: a connection is reused only within its pool (a server,
    or one caller's own credentials on it), so another caller never takes the first's answer
    for theirs. Within one pool the connection is reused as before."""
    async with serving(answering_twice_late(0.3)) as (url, accepted):
        alice = await send(upstream, f"{url}/alice", pool="api\nalice")
        bob = await send(upstream, f"{url}/bob", pool="api\nbob")  # a connection of its own
        await asyncio.sleep(0.05)
        again = await send(upstream, f"{url}/alice-again", pool="api\nalice")  # alice's again
    assert (alice.body, bob.body, accepted) == (b"/alice", b"/bob", [0, 1])
    assert again.body in (b"/alice", b"/alice-again")  # her own answer either way


@pytest.mark.parametrize("interim", [b"100 Continue", b"102 Processing", b"103 Early Hints"])
async def test_an_interim_answer_is_skipped_and_the_final_one_read(
    upstream: Http11Upstream, interim: bytes
) -> None:
    """Sent apart, as a server does: a 1xx taken for the answer left the real answer to the
    next request on the pooled connection (another caller's)."""

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            request = await read_request(reader)
            writer.write(b"HTTP/1.1 " + interim + b"\r\nLink: </style.css>\r\n\r\n")
            await writer.drain()
            await asyncio.sleep(0.05)
            answer = b"alice" if b"/alice" in request else b"bob"
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(answer), answer))
            await writer.drain()

    async with serving(handler) as (url, accepted):
        first = await send(upstream, url + "/alice")
        second = await send(upstream, url + "/bob")
    assert (
        (first.status, first.headers, first.body),
        (second.status, second.body),
        accepted,
    ) == ((200, (("Content-Length", "5"),), b"alice"), (200, b"bob"), [0])


@pytest.mark.parametrize("name", ["X-A\r\nHost: evil", "X-B:", " X-C", "X-D\u017f", ""])
async def test_a_header_name_that_is_no_token_is_refused_and_nothing_sent(
    upstream: Http11Upstream, name: str
) -> None:
    async with serving(answering(OK)) as (url, accepted):
        with pytest.raises(DestinationRefused) as caught:
            await send(upstream, url, headers=((name, "v"),))
    assert (str(caught.value), accepted) == (
        f"upstream 'test': refused: {name!r} is not a header name (an RFC 9110 token)",
        [],
    )


@pytest.mark.parametrize(
    ("answer", "reason"),
    [
        (
            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nhi",
            "Duplicate Content-Length",
        ),
        (
            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\nhi",
            "Transfer-Encoding can't be present with Content-Length",
        ),
        (b"SMTP ready\r\n\r\n", "Expected HTTP/, RTSP/ or ICE/"),
    ],
)
async def test_an_answer_that_is_no_http_says_why(
    upstream: Http11Upstream, answer: bytes, reason: str
) -> None:
    async with serving(answering(answer)) as (url, _):
        with pytest.raises(UpstreamUnavailable) as caught:
            await send(upstream, url)
    assert str(caught.value) == (
        f"upstream 'test': no valid answer from {url}: not an HTTP answer: {reason}"
    )


async def test_garbage_after_a_whole_answer_leaves_the_answer(upstream: Http11Upstream) -> None:
    """A 204 with a body: the 204 is the answer; what follows is nobody's (closed)."""
    answer = b"HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\nhello"
    async with serving(answering(answer)) as (url, accepted):
        first = await send(upstream, url)
        second = await send(upstream, url)
    assert ((first.status, first.body), (second.status, second.body), accepted) == (
        (204, b""),
        (204, b""),
        [0, 1],
    )


async def test_more_after_the_answer_closes_the_connection(upstream: Http11Upstream) -> None:
    """A second answer in the same packet is nobody's: the first stands, the connection goes."""
    both = b"HTTP/1.1 204 No Content\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nother"
    async with serving(answering(both, OK)) as (url, accepted):
        first = await send(upstream, url)
        second = await send(upstream, url)  # on a new connection: the first answer again
    assert ((first.status, first.body), (second.status, second.body), accepted) == (
        (204, b""),
        (204, b""),
        [0, 1],
    )


def hanging_up_on_a_second_request() -> Handler:
    """Answers one request on the first connection, then hangs up; answers on the others."""
    connections = 0

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        first = connections == 1
        while True:
            await read_request(reader)
            writer.write(OK)
            await writer.drain()
            if first:
                await read_request(reader)
                return

    return handler


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE"])
async def test_stale_connection_is_retried_once_when_idempotent(
    upstream: Http11Upstream, method: str
) -> None:
    async with serving(hanging_up_on_a_second_request()) as (url, accepted):
        await send(upstream, url, method)
        response = await send(upstream, url, method)
    assert (response.status, response.body, accepted) == (200, b"ok", [0, 1])


async def test_stale_connection_is_not_retried_for_post(upstream: Http11Upstream) -> None:
    async with serving(hanging_up_on_a_second_request()) as (url, accepted):
        await send(upstream, url, "POST", body=b"1")
        with pytest.raises(UpstreamUnavailable) as caught:
            await send(upstream, url, "POST", body=b"2")
    assert str(caught.value) == (
        f"upstream 'test': no valid answer from {url}: the connection closed before an answer"
    )
    assert accepted == [0]


async def test_fresh_connection_that_closes_is_not_retried(upstream: Http11Upstream) -> None:
    async with serving(answering()) as (url, accepted):
        with pytest.raises(UpstreamUnavailable) as caught:
            await send(upstream, url)
    assert str(caught.value).startswith(f"upstream 'test': no valid answer from {url}: ")
    assert accepted == [0]


async def test_cancelled_request_closes_its_connection(upstream: Http11Upstream) -> None:
    ended = asyncio.Event()

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        if not ended.is_set():
            with contextlib.suppress(ConnectionError):
                await reader.read()
            ended.set()
            return
        writer.write(OK)
        await writer.drain()

    async with serving(handler) as (url, accepted):
        task = asyncio.create_task(send(upstream, url))
        await asyncio.sleep(0.1)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await asyncio.wait_for(ended.wait(), 2)
        response = await send(upstream, url)
    assert (response.status, accepted) == (200, [0, 1])


async def test_requests_wait_for_a_free_connection() -> None:
    upstream = Http11Upstream(max_connections_per_host=1)
    release = asyncio.Event()

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            await read_request(reader)
            await release.wait()
            writer.write(OK)
            await writer.drain()

    try:
        async with serving(handler) as (url, accepted):
            slow = asyncio.create_task(send(upstream, url))
            await asyncio.sleep(0.05)
            with pytest.raises(UpstreamUnavailable) as caught:
                await send(upstream, url, timeouts=Timeouts(connect=5, total=0.2))
            waiting = asyncio.create_task(send(upstream, url))
            await asyncio.sleep(0.05)
            release.set()
            assert [(await slow).status, (await waiting).status] == [200, 200]
    finally:
        await upstream.aclose()
    assert caught.value.timeout
    assert str(caught.value) == f"upstream 'test': no connection to {url} within 0.2 s"
    assert accepted == [0]


async def test_idle_connections_of_every_pool_count_toward_the_origins_cap() -> None:
    """Callers' own pools each keep their idle connection: at the cap, a new connection takes
    the place of the one idle longest, so an origin never has more than its cap open (300
    callers of a `per_user` server had 300 connections open to it)."""
    upstream = Http11Upstream(max_connections_per_host=2)
    open_now, most = 0, 0

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal open_now, most
        open_now += 1
        most = max(most, open_now)
        try:
            with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError):
                while True:
                    await read_request(reader)
                    writer.write(OK)
                    await writer.drain()
        finally:
            open_now -= 1

    try:
        async with serving(handler) as (url, accepted):
            answers = [
                (await send(upstream, url, pool=f"api\n{caller}")).status
                for caller in ("a", "b", "c", "d", "a", "d")
            ]
            await asyncio.sleep(0.05)  # (the server sees the closed ones go)
            still_open = open_now
    finally:
        await upstream.aclose()
    assert (answers, still_open, len(accepted)) == ([200] * 6, 2, 5)
    # ^ a, b, then c (a's closed), d (b's closed), a again (c's closed); d's reused
    assert most <= 3  # (a third only while the server had yet to see the oldest close)


async def test_connections_to_every_origin_together_are_capped() -> None:
    """Two origins, one connection in all: the second origin's request waits for the first's,
    and gives up at its own deadline."""
    upstream = Http11Upstream(max_connections_per_host=5, max_connections=1)
    release = asyncio.Event()

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        await release.wait()
        writer.write(OK)
        await writer.drain()

    try:
        async with serving(handler) as (one, first), serving(handler) as (other, second):
            slow = asyncio.create_task(send(upstream, one))
            await asyncio.sleep(0.05)
            with pytest.raises(UpstreamUnavailable) as caught:
                await send(upstream, other, timeouts=Timeouts(connect=5, total=0.2))
            waiting = asyncio.create_task(send(upstream, other))
            await asyncio.sleep(0.05)
            assert (first, second) == ([0], [])
            release.set()
            assert [(await slow).status, (await waiting).status] == [200, 200]
    finally:
        await upstream.aclose()
    assert str(caught.value) == f"upstream 'test': no connection to {other} within 0.2 s"


async def test_idle_connections_are_closed_once_expired_with_no_call_after_them() -> None:
    upstream = Http11Upstream(keepalive_expiry=0.2)
    ended = asyncio.Event()

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(OK)
        await writer.drain()
        await reader.read()  # until the client closes it
        ended.set()

    try:
        async with serving(handler) as (url, _):
            assert (await send(upstream, url)).status == 200
            await asyncio.wait_for(ended.wait(), 2)
    finally:
        await upstream.aclose()


@pytest.mark.parametrize(
    ("sent", "said"),
    [
        # The head in, the body trickling: the timeout covers the whole answer.
        (
            b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nslow",
            "the answer from {url} began but did not end within 0.3 s",
        ),
        (b"HTTP/1.1 200 OK\r\nContent-Le", "no answer from {url} within 0.3 s"),  # no whole head
    ],
)
async def test_answer_timeout_covers_the_whole_request(
    upstream: Http11Upstream, sent: bytes, said: str
) -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(sent)
        await writer.drain()
        await reader.read()

    async with serving(handler) as (url, _):
        with pytest.raises(UpstreamUnavailable) as caught:
            await send(upstream, url, timeouts=Timeouts(connect=0.1, total=0.3))
    assert (caught.value.timeout, str(caught.value)) == (
        True,
        "upstream 'test': " + said.format(url=url),
    )


def certificate(folder: Path) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """A server context with a self-signed certificate for 127.0.0.1, and a client context
    that trusts it."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "toolbridge test")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    (folder / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (folder / "key.pem").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(str(folder / "cert.pem"), str(folder / "key.pem"))
    client = ssl.create_default_context(cafile=str(folder / "cert.pem"))
    return server, client


async def test_tls(tmp_path: Path) -> None:
    server, client = certificate(tmp_path)
    trusting = Http11Upstream(verify=client)
    unverified = Http11Upstream(verify=False)
    verified = Http11Upstream()
    try:
        async with serving(answering(OK, OK), server) as (url, accepted):
            assert (await send(trusting, url)).body == b"ok"
            assert (await send(trusting, url)).body == b"ok"
            assert (await send(unverified, url)).body == b"ok"
            with pytest.raises(UpstreamUnavailable) as caught:
                await send(verified, url)
    finally:
        for upstream in (trusting, unverified, verified):
            await upstream.aclose()
    assert accepted == [0, 1]  # the failed handshake never reached the handler
    assert not caught.value.timeout
    assert str(caught.value).startswith(f"upstream 'test': cannot connect to {url}: ")
