"""Both real `Upstream`s against real servers on 127.0.0.1: what goes out, what comes back."""

from __future__ import annotations

import asyncio
import base64
import gzip
import json
import socket
import struct
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator

import brotli
import pytest
import zstandard
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route

from tests.e2e.conftest import live_server
from toolbridge.errors import UpstreamUnavailable
from toolbridge.upstream.clients import USER_AGENT, UpstreamKind, make_upstream
from toolbridge.upstream.seam import (
    Headers,
    Timeouts,
    Upstream,
    UpstreamRequest,
    UpstreamResponse,
    origin,
)

pytestmark = [pytest.mark.e2e, pytest.mark.anyio]

TIMEOUTS = Timeouts(connect=5, total=10)
MAX_BYTES = 1_000_000
HUGE = 3_000_000
GZIPPED = b'{"word": "gzip"}' * 10_000


async def echo(request: Request) -> Response:
    body = await request.body()
    return JSONResponse(
        {
            "method": request.method,
            "raw_path": request.scope["raw_path"].decode("latin-1"),
            "query": request.scope["query_string"].decode("latin-1"),
            "headers": [[k.decode(), v.decode()] for k, v in request.scope["headers"]],
            "body": base64.b64encode(body).decode(),
        }
    )


async def status(request: Request) -> Response:
    code = int(request.path_params["code"])
    if code == 204:
        return Response(status_code=204)
    return PlainTextResponse(f"status {code}", status_code=code, headers={"X-Code": str(code)})


async def redirect(request: Request) -> Response:
    return Response(status_code=302, headers={"Location": "/echo/elsewhere"})


async def huge(request: Request) -> Response:
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(HUGE // 100_000):
            yield b"x" * 100_000

    return StreamingResponse(chunks(), media_type="application/octet-stream")


async def exactly(request: Request) -> Response:
    return Response(b"y" * MAX_BYTES, media_type="application/octet-stream")


async def slow(request: Request) -> Response:
    for _ in range(100):  # gives up when the client has gone, so teardown is quick
        if await request.is_disconnected():
            break
        await asyncio.sleep(0.05)
    return PlainTextResponse("late")


async def gzipped(request: Request) -> Response:
    compressed = gzip.compress(GZIPPED)
    headers = {"Content-Encoding": "gzip", "Content-Type": "application/json"}
    return Response(compressed, headers=headers)


ENCODERS = {
    "gzip": gzip.compress,
    "br": brotli.compress,
    "zstd": zstandard.ZstdCompressor().compress,
    "compress": lambda data: b"\x1f\x9d\x90" + data,  # no client of ours decodes it
}


async def encoded(request: Request) -> Response:
    """GZIPPED in the coding the path names, whatever the request asked for."""
    coding = request.path_params["coding"]
    headers = {"Content-Encoding": coding, "Content-Type": "application/json"}
    return Response(ENCODERS[coding](GZIPPED), headers=headers)


async def connection(request: Request) -> Response:
    client = request.scope["client"]
    return JSONResponse({"port": client[1]})


async def cookie(request: Request) -> Response:
    response = PlainTextResponse("have a cookie")
    response.set_cookie("session", "s3cret")
    return response


APP = Starlette(
    routes=[
        Route(
            "/echo/{rest:path}",
            echo,
            methods=["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "QUERY"],
        ),
        Route("/status/{code:int}", status),
        Route("/redirect", redirect),
        Route("/huge", huge),
        Route("/exactly", exactly),
        Route("/slow", slow),
        Route("/gzip", gzipped),
        Route("/encoded/{coding}", encoded),
        Route("/connection", connection),
        Route("/cookie", cookie),
    ]
)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
def base_url() -> Iterator[str]:
    with live_server(APP) as url:
        yield url


@pytest.fixture(params=["http11", "aiohttp", "httpx"])
async def upstream(request: pytest.FixtureRequest) -> AsyncIterator[Upstream]:
    kind: UpstreamKind = request.param
    client = make_upstream(kind)
    try:
        yield client
    finally:
        await client.aclose()


async def send(
    upstream: Upstream,
    url: str,
    method: str = "GET",
    *,
    headers: Headers = (),
    body: bytes | None = None,
    timeouts: Timeouts = TIMEOUTS,
    max_bytes: int = MAX_BYTES,
) -> UpstreamResponse:
    request = UpstreamRequest(server="test", method=method, url=url, headers=headers, body=body)
    return await upstream.send(request, timeouts=timeouts, max_bytes=max_bytes)


def echoed(response: UpstreamResponse) -> dict[str, object]:
    value = json.loads(response.body)
    assert isinstance(value, dict)
    return value


@pytest.mark.parametrize(
    ("method", "body"),
    [
        ("GET", None),
        ("DELETE", None),
        ("OPTIONS", None),
        ("POST", b'{"name": "Rex"}'),
        ("PUT", bytes(range(256))),
        ("PATCH", b""),
        ("QUERY", b"select *"),
    ],
)
async def test_request_goes_out_as_built(
    upstream: Upstream, base_url: str, method: str, body: bytes | None
) -> None:
    """Method, the encoded path and query, repeated headers and the body arrive byte for byte."""
    headers: Headers = (("X-Multi", "one"), ("X-Multi", "two"), ("Accept", "application/json"))
    if body:
        headers += (("Content-Type", "application/octet-stream"),)
    url = f"{base_url}/echo/a%2Fb/%2E%2E/c%20d%3F?x=1&y=%26&y=2&z=%2E%2E%2F"
    response = await send(upstream, url, method, headers=headers, body=body)
    assert response.status == 200
    answer = echoed(response)
    received = answer.pop("headers")
    assert answer == {
        "method": method,
        "raw_path": "/echo/a%2Fb/%2E%2E/c%20d%3F",
        "query": "x=1&y=%26&y=2&z=%2E%2E%2F",
        "body": base64.b64encode(body or b"").decode(),
    }
    assert isinstance(received, list)
    names = [name for name, _ in received]
    assert [v for k, v in received if k == "x-multi"] == ["one", "two"]
    assert ["accept", "application/json"] in received
    assert ["user-agent", USER_AGENT] in received
    assert "cookie" not in names
    assert ("content-type" in names) == bool(body)
    assert names.count("host") == 1


@pytest.mark.parametrize("code", [200, 201, 204, 400, 404, 418, 500, 503])
async def test_status_passes_through(upstream: Upstream, base_url: str, code: int) -> None:
    response = await send(upstream, f"{base_url}/status/{code}")
    body = b"" if code == 204 else f"status {code}".encode()
    assert (response.status, response.body, response.truncated) == (code, body, False)
    if code != 204:
        assert response.header("x-code") == str(code)


async def test_redirect_is_not_followed(upstream: Upstream, base_url: str) -> None:
    response = await send(upstream, f"{base_url}/redirect")
    assert (response.status, response.header("location")) == (302, "/echo/elsewhere")


async def test_cookies_are_not_kept(upstream: Upstream, base_url: str) -> None:
    first = await send(upstream, f"{base_url}/cookie")
    assert first.header("set-cookie") is not None
    received = echoed(await send(upstream, f"{base_url}/echo/after"))["headers"]
    assert isinstance(received, list)
    assert [name for name, _ in received if name == "cookie"] == []


async def test_huge_body_is_cut_at_max_bytes(upstream: Upstream, base_url: str) -> None:
    """A cut body's connection is closed, not reused: the next request gets a fresh one."""
    before = echoed(await send(upstream, f"{base_url}/connection"))["port"]
    started = time.monotonic()
    response = await send(upstream, f"{base_url}/huge", max_bytes=MAX_BYTES)
    assert (response.status, len(response.body), response.truncated) == (200, MAX_BYTES, True)
    assert time.monotonic() - started < 5
    after = await send(upstream, f"{base_url}/connection")
    assert after.status == 200
    assert echoed(after)["port"] != before


async def test_body_of_exactly_max_bytes_is_whole(upstream: Upstream, base_url: str) -> None:
    response = await send(upstream, f"{base_url}/exactly", max_bytes=MAX_BYTES)
    assert (response.body, response.truncated) == (b"y" * MAX_BYTES, False)


async def test_gzip_is_decoded(upstream: Upstream, base_url: str) -> None:
    response = await send(upstream, f"{base_url}/gzip")
    assert (response.status, response.body, response.truncated) == (200, GZIPPED, False)
    assert response.header("content-encoding") == "gzip"


async def test_gzip_cap_counts_decoded_bytes(upstream: Upstream, base_url: str) -> None:
    """The cap bounds what we hold, not what crossed the wire: a small gzip cannot blow it up."""
    response = await send(upstream, f"{base_url}/gzip", max_bytes=1000)
    assert (response.body, response.truncated) == (GZIPPED[:1000], True)


@pytest.mark.parametrize("coding", ["br", "zstd"])
async def test_br_and_zstd_are_asked_for_and_decoded(
    upstream: Upstream, base_url: str, coding: str
) -> None:
    asked = echoed(await send(upstream, f"{base_url}/echo/x"))["headers"]
    whole = await send(upstream, f"{base_url}/encoded/{coding}")
    cut = await send(upstream, f"{base_url}/encoded/{coding}", max_bytes=1000)
    assert ["accept-encoding", "gzip, deflate, br, zstd"] in asked  # type: ignore[operator]
    assert (whole.status, whole.body, whole.truncated) == (200, GZIPPED, False)
    assert (cut.body, cut.truncated) == (GZIPPED[:1000], True)


async def test_a_coding_we_cannot_decode_is_an_error(upstream: Upstream, base_url: str) -> None:
    with pytest.raises(UpstreamUnavailable) as caught:
        await send(upstream, f"{base_url}/encoded/compress")
    assert str(caught.value) == (
        f"upstream 'test': no valid answer from {base_url}: the body is encoded as 'compress', "
        "which the gateway cannot decode (it asks for gzip, deflate, br, zstd)"
    )


async def test_connections_are_reused(upstream: Upstream, base_url: str) -> None:
    ports = {echoed(await send(upstream, f"{base_url}/connection"))["port"] for _ in range(20)}
    assert len(ports) == 1


async def test_concurrent_requests_share_the_pool(upstream: Upstream, base_url: str) -> None:
    """Connections opened for a burst stay in the pool and serve the next burst."""

    async def one() -> object:
        return echoed(await send(upstream, f"{base_url}/connection"))["port"]

    first = await asyncio.gather(*(one() for _ in range(8)))
    second = await asyncio.gather(*(one() for _ in range(8)))
    assert set(second) <= set(first)


async def test_slow_upstream_times_out(upstream: Upstream, base_url: str) -> None:
    started = time.monotonic()
    with pytest.raises(UpstreamUnavailable) as caught:
        await send(upstream, f"{base_url}/slow?token=s3cret", timeouts=Timeouts(total=0.3))
    assert time.monotonic() - started < 2
    assert caught.value.timeout
    assert str(caught.value) == f"upstream 'test': no answer from {base_url} within 0.3 s"


async def test_connect_timeout(upstream: Upstream) -> None:
    """A listener whose accept queue is full drops new SYNs: the connect phase times out."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        port = listener.getsockname()[1]
        fillers = [socket.socket() for _ in range(3)]
        for filler in fillers:
            filler.setblocking(False)
            filler.connect_ex(("127.0.0.1", port))
        started = time.monotonic()
        try:
            with pytest.raises(UpstreamUnavailable) as caught:
                await send(upstream, f"http://127.0.0.1:{port}/x", timeouts=Timeouts(connect=0.2))
        finally:
            for filler in fillers:
                filler.close()
    assert time.monotonic() - started < 2
    assert caught.value.timeout
    assert (
        str(caught.value)
        == f"upstream 'test': no connection to http://127.0.0.1:{port} within 0.2 s"
    )


async def test_closed_port_is_refused(upstream: Upstream) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(UpstreamUnavailable) as caught:
        await send(upstream, f"http://127.0.0.1:{port}/items?token=s3cret")
    assert not caught.value.timeout
    assert str(caught.value) == (
        f"upstream 'test': cannot connect to http://127.0.0.1:{port}: Connection refused"
    )


async def test_unknown_host_cannot_connect(upstream: Upstream) -> None:
    with pytest.raises(UpstreamUnavailable) as caught:
        await send(upstream, "http://no-such-host.invalid/items?token=s3cret")
    assert not caught.value.timeout
    message = str(caught.value)
    assert message.startswith(
        "upstream 'test': cannot connect to http://no-such-host.invalid:80: "
        "cannot resolve the host name ("
    )
    assert "s3cret" not in message


async def garbage(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await reader.readuntil(b"\r\n\r\n")
    writer.write(b"this is not HTTP at all /items?token=s3cret\r\n\r\n")
    await writer.drain()
    writer.close()


async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await reader.readuntil(b"\r\n\r\n")
    writer.close()


async def reset(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await reader.readuntil(b"\r\n\r\n")
    sock = writer.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


async def half_body(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await reader.readuntil(b"\r\n\r\n")
    writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly some")
    await writer.drain()
    writer.close()


@pytest.mark.parametrize("handler", [garbage, hang_up, reset, half_body])
async def test_broken_server_is_unavailable(
    upstream: Upstream,
    handler: Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]],
) -> None:
    """A server that answers with something other than HTTP, or with nothing, is a 502."""
    server = await asyncio.start_server(handler, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    url = f"http://127.0.0.1:{port}/items?token=s3cret"
    try:
        with pytest.raises(UpstreamUnavailable) as caught:
            await send(upstream, url, timeouts=Timeouts(total=3))
    finally:
        server.close()
        await server.wait_closed()
    assert not caught.value.timeout
    # The client's exception (its repr holds the URL, in aiohttp's case the headers) is not chained.
    assert (caught.value.__cause__, caught.value.__suppress_context__) == (None, True)
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(f"upstream 'test': no valid answer from http://127.0.0.1:{port}: ")
    assert "s3cret" not in message


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("http://127.0.0.1:8000/a?key=1", "http://127.0.0.1:8000"),
        ("https://user:pw@api.example.com/v1?key=1", "https://api.example.com:443"),
        ("http://[::1]/x", "http://[::1]:80"),
        ("http://Example.COM:8080", "http://example.com:8080"),
    ],
)
def test_origin_shows_no_path_query_or_userinfo(url: str, expected: str) -> None:
    assert origin(url) == expected
