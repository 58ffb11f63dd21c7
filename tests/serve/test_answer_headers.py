"""The response headers a model needs to go on (the next page, a new thing's location, its
version) come with the answer, on every surface; no other header does.

Kinto pages with a `Next-Page` header and a `_token` argument: without the header a model saw
one page and took it for the whole collection. The upstream here is in-process (httpx2's ASGI
transport) and answers a page of records with the headers such APIs send, and some no model
may see.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx2
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.serve.in_process import client_of, gateway_before
from toolbridge.gateway import Gateway
from toolbridge.serve.mcp import create_mcp_app
from toolbridge.tools import ToolResult
from toolbridge.upstream.answers import kept_headers

pytestmark = pytest.mark.anyio

NEXT = "http://records.test/records?_limit=1&_token=abc"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def records(request: Request) -> Response:
    headers = {
        "Next-Page": NEXT,
        "Total-Records": "3",
        "ETag": '"1700000000"',
        "Set-Cookie": "session=s3cr3t-cookie-value",
        "X-Internal-Trace": "node-7",
        "Server": "kinto",
    }
    return JSONResponse({"data": [{"id": "a"}]}, headers=headers)


DOCUMENT = {
    "openapi": "3.0.3",
    "info": {"title": "records", "version": "1"},
    "servers": [{"url": "http://records.test"}],
    "paths": {
        "/records": {
            "get": {
                "operationId": "getRecords",
                "parameters": [
                    {"name": "_limit", "in": "query", "schema": {"type": "integer"}},
                    {"name": "_token", "in": "query", "schema": {"type": "string"}},
                ],
                "responses": {"200": {"description": "a page of records"}},
            }
        }
    },
}
KEPT = {"next-page": NEXT, "total-records": "3", "etag": '"1700000000"'}
SAID = f'HTTP response headers:\nnext-page: {NEXT}\ntotal-records: 3\netag: "1700000000"'


@pytest.fixture
async def gateway(tmp_path: Path) -> AsyncIterator[Gateway]:
    service = Starlette(routes=[Route("/records", records)])
    async with gateway_before(service, DOCUMENT, tmp_path) as served:
        yield served


@pytest.fixture
async def http(gateway: Gateway) -> AsyncIterator[httpx2.AsyncClient]:
    async with client_of(gateway) as client:
        yield client


async def test_the_envelope_has_the_headers_to_go_on(http: httpx2.AsyncClient) -> None:
    answer = await http.post("/v1/tools/getRecords/call", json={"_limit": 1})
    assert answer.json() == {
        "ok": True,
        "status": 200,
        "content_type": "application/json",
        "result": {"data": [{"id": "a"}]},
        "headers": KEPT,
    }


async def test_a_one_turn_tool_message_says_them_after_the_answer(
    http: httpx2.AsyncClient,
) -> None:
    turn = {
        "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "getRecords", "arguments": "{}"}}
        ]
    }
    answer = await http.post("/v1/tool_calls", json=turn)
    (message,) = answer.json()["messages"]
    assert message["content"] == '{"data":[{"id":"a"}]}\n\n' + SAID


async def test_mcp_says_them_in_a_text_beside_the_answer(gateway: Gateway) -> None:
    (tool,) = tuple(gateway.catalog)
    result = ToolResult(
        ok=True,
        status=200,
        content_type="application/json",
        result={"data": []},
        headers=tuple(KEPT.items()),
    )
    said = create_mcp_app(gateway).tool_result(tool, result)
    assert [c.text for c in said.content if c.type == "text"] == ['{"data":[]}', SAID]
    assert said.structured_content == {"data": []}


@pytest.mark.parametrize(
    ("headers", "kept"),
    [
        (
            [("Link", '<https://x/?page=2>; rel="next"')],
            [("link", '<https://x/?page=2>; rel="next"')],
        ),
        ([("Link", "<a>"), ("link", "<b>")], [("link", "<a>, <b>")]),  # one field, as HTTP reads
        (
            [("X-Total-Count", "9"), ("X-RateLimit-Remaining", "4")],
            [("x-total-count", "9"), ("x-ratelimit-remaining", "4")],
        ),
        (
            [("Location", "/r/1"), ("Retry-After", "3")],
            [("location", "/r/1"), ("retry-after", "3")],
        ),
        ([("Set-Cookie", "a=b"), ("Authorization", "x"), ("X-Api-Key", "k"), ("Server", "s")], []),
        ([("Link", "x" * 2049)], []),  # longer than a model needs
        ([(f"X-Page-{i}", "1") for i in range(20)], [(f"x-page-{i}", "1") for i in range(16)]),
    ],
)
def test_only_the_headers_to_go_on_are_kept(
    headers: list[tuple[str, str]], kept: list[tuple[str, str]]
) -> None:
    assert list(kept_headers(headers)) == kept
