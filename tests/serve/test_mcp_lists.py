"""MCP `tools/list` from kept pages: cursors as the MCP specification defines them, the same
tools for clients of either era, zstd for those that take it, and each caller's own tools.

In process over httpx2's ASGITransport, the gateway serving the demo notes document (alice may
use every operation, bob only GETs) in pages of `mcp.page_size` = 2.
"""

from __future__ import annotations

import base64
import itertools
import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx2
import pytest
import zstandard
from mcp.client import Client
from mcp.client.streamable_http import streamable_http_client
from starlette.applications import Starlette
from starlette.routing import Route

from toolbridge import listings
from toolbridge.config import Config
from toolbridge.demo import DEMO_SPEC
from toolbridge.formats.render import render
from toolbridge.gateway import Gateway
from toolbridge.policy import Principal
from toolbridge.serve import mcp_lists
from toolbridge.serve.mcp import PATH, create_mcp_app
from toolbridge.serve.mcp_lists import SPLICE_META
from toolbridge.upstream.seam import MockUpstream, UpstreamResponse

pytestmark = pytest.mark.anyio

URL = f"http://gateway.test{PATH}"
KEYS = {"alice": "alice-key-0123456789", "bob": "bob-key-0123456789"}
PRINCIPALS = {"alice": Principal(id="alice", name="alice"), "bob": Principal(id="bob", name="bob")}
MODERN = {
    "Accept": "application/json, text/event-stream",
    "MCP-Protocol-Version": "2026-07-28",
    "Mcp-Method": "tools/list",
}
META = {
    "io.modelcontextprotocol/protocolVersion": "2026-07-28",
    "io.modelcontextprotocol/clientInfo": {"name": "test", "version": "1"},
    "io.modelcontextprotocol/clientCapabilities": {},
}


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


BOB_GETS: list[dict[str, Any]] = [{"users": ["bob"], "methods": ["GET"]}]


def config(page_size: int, bob: list[dict[str, Any]] = BOB_GETS) -> Config:
    return Config.model_validate(
        {
            "auth": {"api_keys": [{"user": u, "key": k} for u, k in KEYS.items()]},
            "servers": [
                {
                    "id": "notes",
                    "spec": str(DEMO_SPEC),
                    "base_url": "http://notes.test",
                    "access": [{"users": ["alice"]}, *bob],
                }
            ],
            "mcp": {"page_size": page_size},
            "base_dir": Path.cwd(),
        }
    )


@pytest.fixture
def gateway() -> Gateway:
    served = Gateway(config(2), upstream=MockUpstream(lambda r: UpstreamResponse(status=204)))
    served.load()
    return served


@asynccontextmanager
async def http(gateway: Gateway, user: str) -> AsyncIterator[httpx2.AsyncClient]:
    mcp = create_mcp_app(gateway)
    app = Starlette(routes=[Route(PATH, mcp)])
    async with mcp.lifespan():
        transport = httpx2.ASGITransport(app=app)
        headers = {"Authorization": f"Bearer {KEYS[user]}"}
        async with httpx2.AsyncClient(transport=transport, headers=headers, timeout=10) as client:
            yield client


def expected(gateway: Gateway, user: str) -> list[dict[str, Any]]:
    return [render(tool, "mcp") for tool in gateway.list_tools(PRINCIPALS[user])]


async def modern_list(
    client: httpx2.AsyncClient, cursor: str | None = None, ident: Any = 9, **headers: str
) -> tuple[httpx2.Response, dict[str, Any]]:
    params: dict[str, Any] = {"_meta": META}
    if cursor is not None:
        params["cursor"] = cursor
    message = {"jsonrpc": "2.0", "id": ident, "method": "tools/list", "params": params}
    request = client.build_request("POST", URL, json=message, headers={**MODERN, **headers})
    response = await client.send(request, stream=True)
    raw = b"".join([chunk async for chunk in response.aiter_raw()])
    await response.aclose()
    if response.headers.get("content-encoding") == "zstd":
        raw = _zstd(raw)
    return response, json.loads(raw)


def _zstd(raw: bytes) -> bytes:
    out = []
    while raw:  # frames one after another
        reader = zstandard.ZstdDecompressor().decompressobj()
        out.append(reader.decompress(raw))
        raw = reader.unused_data
    return b"".join(out)


async def sdk_pages(gateway: Gateway, user: str) -> list[list[dict[str, Any]]]:
    """Every page of `tools/list` as the SDK client pages through them, following cursors."""
    pages: list[list[dict[str, Any]]] = []
    async with (
        http(gateway, user) as client,
        Client(streamable_http_client(URL, http_client=client)) as session,
    ):
        cursor = None
        while True:
            page = await session.list_tools(cursor=cursor)
            pages.append([t.model_dump(by_alias=True, exclude_none=True) for t in page.tools])
            cursor = page.next_cursor
            if cursor is None:
                return pages


@pytest.mark.parametrize("user", ["alice", "bob"])
async def test_the_sdk_client_pages_through_exactly_the_callers_tools(
    gateway: Gateway, user: str
) -> None:
    pages = await sdk_pages(gateway, user)
    wanted = expected(gateway, user)
    assert [len(p) for p in pages] == [len(wanted[i : i + 2]) for i in range(0, len(wanted), 2)]
    assert [tool for page in pages for tool in page] == wanted


async def test_a_handshake_era_client_gets_the_same_pages_over_sse(gateway: Gateway) -> None:
    async with http(gateway, "alice") as client:
        headers = {"Accept": "application/json, text/event-stream"}
        init = {
            "protocolVersion": "2025-06-18",
            "capabilities": {},
            "clientInfo": {"name": "x", "version": "1"},
        }
        message = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": init}
        await client.post(URL, json=message, headers=headers)
        headers["MCP-Protocol-Version"] = "2025-06-18"
        listed, cursor = [], None
        while True:
            params: dict[str, str] = {"cursor": cursor} if cursor else {}
            response = await client.post(
                URL,
                json={"jsonrpc": "2.0", "id": 2, "method": "tools/list", "params": params},
                headers=headers,
            )
            assert response.headers["content-type"].startswith("text/event-stream")
            (data,) = [ln[5:] for ln in response.text.splitlines() if ln.startswith("data:")]
            result = json.loads(data)["result"]
            assert SPLICE_META not in result.get("_meta", {})
            listed.extend(result["tools"])
            cursor = result.get("nextCursor")
            if cursor is None:
                break
    assert listed == expected(gateway, "alice")


async def test_a_client_that_takes_zstd_gets_it_and_the_same_answer(gateway: Gateway) -> None:
    async with http(gateway, "alice") as client:
        plain, plain_json = await modern_list(client, **{"Accept-Encoding": "identity"})
        packed, packed_json = await modern_list(client, **{"Accept-Encoding": "gzip, zstd"})
    assert "content-encoding" not in plain.headers
    assert packed.headers["content-encoding"] == "zstd"
    assert int(packed.headers["content-length"]) < int(plain.headers["content-length"])
    assert packed_json == plain_json
    assert plain_json["result"]["tools"] == expected(gateway, "alice")[:2]
    assert "_meta" not in plain_json["result"] or SPLICE_META not in plain_json["result"]["_meta"]


def made(*parts: object) -> str:
    """A cursor as the gateway makes them: [offset, visible set, scope, last tool, next tool]."""
    return base64.urlsafe_b64encode(json.dumps(list(parts)).encode()).decode().rstrip("=")


def visible(gateway: Gateway, user: str) -> listings.Visible:
    return gateway.listing(PRINCIPALS[user]).visible


@pytest.mark.parametrize(
    ("cursor", "message"),
    [
        ("not-a-cursor!", "'not-a-cursor!' is not a cursor of this gateway"),
        ("WzIsImFiYyJd", "'WzIsImFiYyJd' is not a cursor of this gateway"),  # [2, "abc"]
        (
            lambda v: made(2, v.key[:16], "0" * 16, "createNote", "getNote"),
            "the cursor is of another tool list (another endpoint, toolset or mode); "
            "list again from the start",
        ),
        (
            lambda v: made(7, v.key[:16], v.scope[:16], "getStatus", "x"),
            "the cursor is past the end of the list; list again from the start",
        ),
        (lambda v: made(-1, v.key[:16], v.scope[:16], "x", "y"), "is not a cursor of this gateway"),
        (lambda v: made(2, v.key[:16], v.scope[:16], 5, "x"), "is not a cursor of this gateway"),
    ],
)
async def test_a_cursor_not_made_for_this_list_is_invalid_params(
    gateway: Gateway, cursor: str | Callable[[listings.Visible], str], message: str
) -> None:
    text = cursor if isinstance(cursor, str) else cursor(visible(gateway, "alice"))
    async with http(gateway, "alice") as client:
        _, answer = await modern_list(client, text)
    assert answer["error"]["code"] == -32602
    assert message in answer["error"]["message"]


@pytest.mark.parametrize(
    ("access", "after"),
    [
        # bob's first page was listNotes, getNote; the next began at getStatus.
        # Tools added after getNote (the last sent) come next.
        ([{"users": ["bob"], "methods": ["GET", "DELETE"]}], ["deleteNote", "getStatus"]),
        # Added before it: not shown (list_changed tells the client to list again).
        ([{"users": ["bob"], "methods": ["GET", "POST"]}], ["getStatus"]),
        # getNote gone: from getStatus, the next tool, wherever it now is.
        ([{"users": ["bob"], "tools": ["listNotes", "getStatus"]}], ["getStatus"]),
        # Both gone: from the same position (past the end of a list of one).
        ([{"users": ["bob"], "tools": ["listNotes"]}], []),
    ],
)
async def test_a_cursor_from_before_a_reload_goes_on_in_the_new_list(
    access: list[dict[str, Any]], after: list[str]
) -> None:
    """Clients such as the mcp SDK's do not list again when a page is refused: a cursor made
    before the caller's tools changed goes on in the new list (see `mcp_lists`), never showing a
    tool the caller may not use."""
    gateway = Gateway(
        config(2),
        upstream=MockUpstream(lambda r: UpstreamResponse(status=204)),
        reread=lambda: config(2, access),
    )
    gateway.load()
    names: list[str] = []
    async with http(gateway, "bob") as client:
        _, first = await modern_list(client)
        assert [t["name"] for t in first["result"]["tools"]] == ["listNotes", "getNote"]
        await gateway.reload()
        cursor = first["result"]["nextCursor"]
        while cursor is not None:
            _, answer = await modern_list(client, cursor)
            names.extend(t["name"] for t in answer["result"]["tools"])
            cursor = answer["result"].get("nextCursor")
    assert names == after


async def test_a_cursor_of_another_callers_list_shows_only_the_callers_own_tools(
    gateway: Gateway,
) -> None:
    async with http(gateway, "alice") as client:
        _, first = await modern_list(client)  # listNotes, createNote | getNote, ...
    async with http(gateway, "bob") as client:
        _, answer = await modern_list(client, first["result"]["nextCursor"])
    assert answer["result"]["tools"] == expected(gateway, "bob")[1:]  # getNote, getStatus


async def test_page_size_zero_is_one_page(gateway: Gateway) -> None:
    whole = Gateway(config(0), upstream=MockUpstream(lambda r: UpstreamResponse(status=204)))
    whole.load()
    async with http(whole, "alice") as client:
        _, answer = await modern_list(client)
    assert answer["result"]["tools"] == expected(whole, "alice")
    assert "nextCursor" not in answer["result"]


async def test_pages_end_before_they_grow_past_the_byte_limit(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Clients cap the size of an event (the Python SDK's at 1 MiB): a page holds at most
    MAX_PAGE_BYTES of tools, one at least, whatever `page_size` allows."""
    whole = Gateway(config(0), upstream=MockUpstream(lambda r: UpstreamResponse(status=204)))
    whole.load()
    wanted = expected(whole, "alice")
    sizes = [len(json.dumps(tool, separators=(",", ":"))) + 1 for tool in wanted]
    limit = max(sizes) + min(sizes)  # a large tool and a small one, or two small ones
    monkeypatch.setattr(mcp_lists, "MAX_PAGE_BYTES", limit)
    pages = await sdk_pages(whole, "alice")
    assert [tool for page in pages for tool in page] == wanted
    ends = list(itertools.accumulate(len(page) for page in pages))
    for start, end in zip([0, *ends], ends, strict=False):
        assert sum(sizes[start:end]) <= limit or end - start == 1
        assert end == len(wanted) or sum(sizes[start : end + 1]) > limit
    assert len(pages) > 1


async def test_a_large_page_goes_to_a_plain_client_in_pieces(
    gateway: Gateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(listings, "KEEP_IDENTITY_BYTES", 100)
    monkeypatch.setattr(listings, "PIECE_BYTES", 256)
    async with http(gateway, "alice") as client:
        plain, plain_json = await modern_list(client, **{"Accept-Encoding": "identity"})
        packed, packed_json = await modern_list(client, **{"Accept-Encoding": "zstd"})
    assert plain_json == packed_json
    assert plain_json["result"]["tools"] == expected(gateway, "alice")[:2]
    assert int(plain.headers["content-length"]) > int(packed.headers["content-length"])


@pytest.mark.parametrize("ident", [10**35, "req-1", -3])
async def test_the_answer_carries_the_request_id_as_it_was_sent(
    gateway: Gateway, ident: Any
) -> None:
    """The client matches answers by id: an integer past 64 bits must not come back a float."""
    async with http(gateway, "alice") as client:
        _, answer = await modern_list(client, ident=ident)
    assert (answer["id"], type(answer["id"])) == (ident, type(ident))
