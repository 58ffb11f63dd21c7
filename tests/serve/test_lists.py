"""`GET /v1/tools` and `GET /openapi.json` from kept bytes: built once per generation, format and
visible set; every coding the same list; ETags that revalidate, never across callers.

In process, over httpx2's ASGITransport (with `Accept-Encoding` set by each test, decoding
done here), against the demo notes document: alice may use every operation, bob only GETs.
"""

from __future__ import annotations

import gzip
import json
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx2
import orjson
import pytest
import zstandard

from toolbridge import listings
from toolbridge.config import ApiKey, Auth, Config, Grant, Server
from toolbridge.demo import DEMO_SPEC
from toolbridge.formats.render import FORMATS, render, render_tools
from toolbridge.gateway import Gateway
from toolbridge.policy import Principal
from toolbridge.serve import app as app_module
from toolbridge.serve import lists
from toolbridge.serve.app import create_app
from toolbridge.serve.openapi_document import gateway_document, gateway_document_json
from toolbridge.upstream.seam import MockUpstream, UpstreamResponse

pytestmark = pytest.mark.anyio

KEYS = {"alice": "alice-key-0123456789", "bob": "bob-key-0123456789"}
ALICE, BOB = Principal(id="alice", name="alice"), Principal(id="bob", name="bob")


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def config(bob_methods: tuple[str, ...] = ("GET",)) -> Config:
    auth = Auth(api_keys=tuple(ApiKey(user=u, key=k) for u, k in KEYS.items()))
    server = Server(
        id="notes",
        spec=str(DEMO_SPEC),
        base_url="http://notes.test",
        access=(Grant(users=("alice",)), Grant(users=("bob",), methods=bob_methods)),
    )
    return Config(auth=auth, servers=(server,), base_dir=Path.cwd())


class Served:
    def __init__(self) -> None:
        self.config = config()
        self.gateway = Gateway(
            self.config,
            upstream=MockUpstream(lambda request: UpstreamResponse(status=204)),
            reread=lambda: self.config,
        )
        self.gateway.load()
        self.http = httpx2.AsyncClient(
            transport=httpx2.ASGITransport(create_app(self.gateway)),
            base_url="http://gateway.test",
        )

    async def get(self, path: str, user: str = "alice", **headers: str) -> Raw:
        """The answer as sent: the body's bytes in their content coding, not decoded."""
        headers = {k.replace("_", "-"): v for k, v in headers.items()}
        headers.setdefault("Accept-Encoding", "identity")
        headers["Authorization"] = f"Bearer {KEYS[user]}"
        request = self.http.build_request("GET", path, headers=headers)
        response = await self.http.send(request, stream=True)
        raw = b"".join([chunk async for chunk in response.aiter_raw()])
        await response.aclose()
        return Raw(response.status_code, response.headers, raw)


class Raw:
    def __init__(self, status: int, headers: httpx2.Headers, content: bytes) -> None:
        self.status_code, self.headers, self.content = status, headers, content


@pytest.fixture
async def served() -> AsyncIterator[Served]:
    kept = Served()
    async with kept.http:
        yield kept


def body(response: Raw) -> Any:
    """The JSON of the raw answer, decoded from its coding here."""
    raw = response.content
    coding = response.headers.get("content-encoding", "identity")
    if coding == "gzip":
        raw = gzip.decompress(raw)
    elif coding == "zstd":
        raw = zstandard.ZstdDecompressor().decompressobj().decompress(raw)
    return json.loads(raw)


@pytest.mark.parametrize("fmt", FORMATS)
async def test_each_caller_gets_their_own_tools_in_each_format(served: Served, fmt: str) -> None:
    for user, principal in (("alice", ALICE), ("bob", BOB)):
        response = await served.get(f"/v1/tools?format={fmt}", user)
        expected = render_tools(served.gateway.list_tools(principal), fmt)  # type: ignore[arg-type]
        assert body(response) == {"tools": expected}
        assert response.headers["vary"] == "Accept-Encoding, Authorization"
        assert response.headers["cache-control"] == "private, no-cache"
    alice = [t.name for t in served.gateway.list_tools(ALICE)]
    bob = [t.name for t in served.gateway.list_tools(BOB)]
    assert set(bob) < set(alice)


@pytest.mark.parametrize("path", ["/v1/tools", "/v1/tools?format=mcp&strict=true", "/openapi.json"])
async def test_every_coding_is_the_same_list_with_the_same_etag(served: Served, path: str) -> None:
    answers = {c: await served.get(path, accept_encoding=c) for c in ("identity", "gzip", "zstd")}
    assert [a.headers.get("content-encoding", "identity") for a in answers.values()] == list(
        answers
    )
    assert body(answers["gzip"]) == body(answers["zstd"]) == body(answers["identity"])
    assert len({a.headers["etag"] for a in answers.values()}) == 1
    assert answers["identity"].headers["etag"].startswith('W/"')


@pytest.mark.parametrize("path", ["/v1/tools", "/openapi.json"])
async def test_a_large_answer_kept_in_a_file_is_the_same_list(
    served: Served, path: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Kept in the process, then (a reload later) in a file: the same bytes in every coding."""
    in_memory = {c: await served.get(path, accept_encoding=c) for c in ("gzip", "zstd")}
    spilled: list[int] = []
    spill = listings._spilled

    def counted(zstd: bytes, gzip: bytes) -> Any:
        file = spill(zstd, gzip)
        spilled.append(os.fstat(file.fileno()).st_size if file is not None else -1)
        return file

    monkeypatch.setattr(listings, "SPILL_BYTES", 1)
    monkeypatch.setattr(listings, "_spilled", counted)
    await served.gateway.reload()
    in_file = {c: await served.get(path, accept_encoding=c) for c in ("gzip", "zstd")}
    assert len(spilled) == 1
    assert spilled[0] == sum(len(a.content) for a in in_file.values())
    for coding in ("gzip", "zstd"):
        assert in_file[coding].headers["etag"] == in_memory[coding].headers["etag"]
        assert in_file[coding].headers["content-encoding"] == coding
        assert body(in_file[coding]) == body(in_memory[coding])


@pytest.mark.parametrize("path", ["/v1/tools", "/openapi.json"])
async def test_if_none_match_answers_304_until_the_list_changes(served: Served, path: str) -> None:
    first = await served.get(path)
    etag = first.headers["etag"]
    again = await served.get(path, if_none_match=etag)
    assert (again.status_code, again.content, again.headers["etag"]) == (304, b"", etag)
    # bob sees other tools: alice's ETag is no validator of his list (and tells him nothing).
    assert (await served.get(path, "bob", if_none_match=etag)).status_code == 200
    # A reload that changes what alice sees makes a new list, and a new ETag.
    served.config = config(bob_methods=("GET", "DELETE"))
    await served.gateway.reload()
    assert (await served.get(path, if_none_match=etag)).status_code == 304  # alice: the same
    bob_before = (await served.get(path, "bob")).headers["etag"]
    assert bob_before != etag


async def test_a_reload_drops_the_kept_answers(served: Served) -> None:
    before = await served.get("/v1/tools", "bob")
    served.config = config(bob_methods=("GET", "DELETE"))
    await served.gateway.reload()
    after = await served.get("/v1/tools", "bob", if_none_match=before.headers["etag"])
    assert after.status_code == 200
    expected = render_tools(served.gateway.list_tools(BOB), "openai")
    assert body(after) == {"tools": expected}
    assert len(expected) > len(body(before)["tools"])


async def test_a_list_is_rendered_once_per_generation_and_visible_set(
    served: Served, monkeypatch: pytest.MonkeyPatch
) -> None:
    rendered: list[str] = []
    original = render

    def counting(tool: Any, fmt: Any, *, strict: bool = False) -> Any:
        rendered.append(tool.name)
        return original(tool, fmt, strict=strict)

    monkeypatch.setattr(lists, "render", counting)
    for _ in range(3):
        await served.get("/v1/tools", accept_encoding="gzip")
        await served.get("/v1/tools", accept_encoding="identity")
    assert rendered == [t.name for t in served.gateway.list_tools(ALICE)]


async def test_openapi_json_is_kept_per_server_url(served: Served) -> None:
    here = body(await served.get("/openapi.json"))
    there = await served.get("http://elsewhere.test/openapi.json")
    tools = served.gateway.list_tools(ALICE)
    assert here == gateway_document(tools, server_url="http://gateway.test/")
    assert body(there) == gateway_document(tools, server_url="http://elsewhere.test/")


async def test_an_unknown_caller_gets_401_and_no_list(served: Served) -> None:
    response = await served.http.get("/v1/tools", headers={"Authorization": "Bearer nope"})
    assert response.status_code == 401
    assert "etag" not in response.headers


@pytest.mark.parametrize("server_url", [None, "http://gateway.test/"])
@pytest.mark.parametrize("count", [0, 1, 6])
async def test_the_document_in_parts_is_the_document(
    served: Served, server_url: str | None, count: int
) -> None:
    tools = served.gateway.list_tools(ALICE)[:count]
    parts = list(gateway_document_json(tools, server_url=server_url))
    assert len(parts) == count + 2
    whole = gateway_document(tools, server_url=server_url)
    assert b"".join(parts) == orjson.dumps(whole)


@pytest.mark.parametrize("path", ["/v1/tools?format=mcp", "/openapi.json"])
async def test_a_large_list_goes_to_a_plain_client_in_pieces(
    served: Served, path: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Too large to keep plain, the answer is decompressed a piece at a time as it is sent,
    with its whole length said up front."""
    monkeypatch.setattr(listings, "KEEP_IDENTITY_BYTES", 100)
    monkeypatch.setattr(listings, "PIECE_BYTES", 256)
    given_back: list[int] = []
    monkeypatch.setattr(app_module, "give_back", lambda: given_back.append(1))
    plain = await served.get(path, accept_encoding="identity")
    after_plain = len(given_back)  # what sending it in pieces freed goes back to the system
    packed = await served.get(path, accept_encoding="zstd")  # kept whole: nothing to give back
    assert int(plain.headers["content-length"]) == len(plain.content) > 1000
    assert "content-encoding" not in plain.headers
    assert body(plain) == body(packed)
    assert (after_plain, len(given_back)) == (1, 1)
