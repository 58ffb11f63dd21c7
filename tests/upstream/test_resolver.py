"""Both clients resolve a name once per connection and connect to the address they checked.

Names are answered by a stand-in for the system resolver (`socket.getaddrinfo`, which asyncio's
default loop and aiohttp's threaded resolver call), so a test can make a name resolve to a
metadata address, or to one address at the check and another a moment later (DNS
rebinding). The server behind 127.0.0.1 is real.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from toolbridge.errors import DestinationRefused
from toolbridge.upstream.clients import AiohttpUpstream
from toolbridge.upstream.http11 import Http11Upstream
from toolbridge.upstream.seam import Timeouts, Upstream, UpstreamRequest

pytestmark = pytest.mark.anyio
OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
LINK_LOCAL = "a link-local address (cloud metadata services live there)"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"  # uvloop resolves in libuv, past socket.getaddrinfo


@pytest.fixture
async def port() -> AsyncIterator[int]:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while await reader.readuntil(b"\r\n\r\n"):
                writer.write(OK)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        await server.wait_closed()


class Names:
    """Answers for host names, in turn per name; counts the lookups."""

    def __init__(self, answers: dict[str, list[list[str]]]) -> None:
        self.answers = answers
        self.lookups: list[str] = []
        self.real = socket.getaddrinfo

    def __call__(self, host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        name = host.decode() if isinstance(host, bytes) else host
        if name not in self.answers:
            return self.real(host, port, *args, **kwargs)
        self.lookups.append(name)
        turns = self.answers[name]
        addresses = turns[0] if len(turns) == 1 else turns.pop(0)
        number = int(port or 0)
        return [
            (socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, number)) for address in addresses
        ]


CLIENTS: dict[str, Callable[[], Upstream]] = {
    "http11": lambda: Http11Upstream(keepalive_expiry=60),
    "aiohttp": lambda: AiohttpUpstream(),
}


async def get(client: Upstream, url: str) -> bytes:
    request = UpstreamRequest(server="test", method="GET", url=url)
    response = await client.send(request, timeouts=Timeouts(connect=2, total=5), max_bytes=100)
    return response.body


@pytest.fixture(params=list(CLIENTS))
async def client(request: pytest.FixtureRequest) -> AsyncIterator[Upstream]:
    made = CLIENTS[request.param]()
    try:
        yield made
    finally:
        await made.aclose()


@pytest.mark.parametrize(
    ("host", "addresses", "message"),
    [
        (
            "meta.test",
            ["169.254.169.254"],
            f"meta.test resolves only to addresses requests never go to: 169.254.169.254 "
            f"({LINK_LOCAL})",
        ),
        (
            "imds.test",
            ["169.254.169.254", "100.100.100.200"],
            f"imds.test resolves only to addresses requests never go to: 169.254.169.254 "
            f"({LINK_LOCAL}), 100.100.100.200 (the Alibaba Cloud metadata service's address)",
        ),
    ],
)
async def test_a_name_resolving_to_a_metadata_address_is_refused(
    client: Upstream,
    port: int,
    monkeypatch: pytest.MonkeyPatch,
    host: str,
    addresses: list[str],
    message: str,
) -> None:
    monkeypatch.setattr(socket, "getaddrinfo", Names({host: [addresses]}))
    with pytest.raises(DestinationRefused) as caught:
        await get(client, f"http://{host}:{port}/")
    assert str(caught.value) == f"upstream 'test': refused: {message}"


async def test_of_several_addresses_only_the_allowed_ones_are_tried(
    client: Upstream, port: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(
        socket, "getaddrinfo", Names({"mixed.test": [["169.254.169.254", "127.0.0.1"]]})
    )
    assert await get(client, f"http://mixed.test:{port}/") == b"ok"


async def test_the_address_checked_is_the_address_connected_to(
    client: Upstream, port: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A name that answers 127.0.0.1 once and the metadata address after (DNS rebinding) is
    looked up once for the connection, which goes to the address that was checked."""
    names = Names({"rebind.test": [["127.0.0.1"], ["169.254.169.254"], ["169.254.169.254"]]})
    monkeypatch.setattr(socket, "getaddrinfo", names)
    assert await get(client, f"http://rebind.test:{port}/") == b"ok"
    assert await get(client, f"http://rebind.test:{port}/") == b"ok"  # the same connection
    assert names.lookups == ["rebind.test"]


@pytest.mark.parametrize(
    "spelling", ["2130706433", "0x7f000001", "127.1", "0177.0.0.1", "[::ffff:127.0.0.1]"]
)
async def test_every_spelling_of_an_address_connects_to_that_address(
    client: Upstream, port: int, monkeypatch: pytest.MonkeyPatch, spelling: str
) -> None:
    names = Names({})
    monkeypatch.setattr(socket, "getaddrinfo", names)
    assert await get(client, f"http://{spelling}:{port}/") == b"ok"
    assert names.lookups == []


@pytest.mark.parametrize(
    ("spelling", "shown"),
    [
        ("0xa9fea9fe", "169.254.169.254"),
        ("2852039166", "169.254.169.254"),
        ("169.254.43518", "169.254.169.254"),
        ("[::ffff:a9fe:a9fe]", "169.254.169.254"),
        ("[fe80::1]", "[fe80::1]"),
        ("metadata.google.internal", "metadata.google.internal"),
    ],
)
async def test_metadata_addresses_are_refused_before_any_connection(
    client: Upstream, monkeypatch: pytest.MonkeyPatch, spelling: str, shown: str
) -> None:
    def no_lookup(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("nothing may be resolved")

    monkeypatch.setattr(socket, "getaddrinfo", no_lookup)
    with pytest.raises(DestinationRefused) as caught:
        await get(client, f"http://{spelling}/latest/meta-data/")
    reason = (
        "a cloud metadata service's host name" if spelling.startswith("metadata") else LINK_LOCAL
    )
    assert (
        str(caught.value)
        == f"upstream 'test': refused: {shown} is {reason}; requests never go there"
    )
