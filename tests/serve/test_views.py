"""Toolsets and search mode on every surface, in process: `/toolsets/{id}/...`, `?toolset=`,
`?mode=search`, the search tools' call paths, one-turn calls, and MCP.

The gateway serves the demo notes document (alice: its GET operations; ops: an admin) and two
toolsets; its upstream is a `MockUpstream`, so no socket is opened.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx2
import pytest
from mcp.client import Client
from mcp.client.streamable_http import streamable_http_client
from openapi_spec_validator import OpenAPIV31SpecValidator
from starlette.applications import Starlette
from starlette.routing import Route

from toolbridge.config import Config
from toolbridge.gateway import Gateway
from toolbridge.serve.app import create_app
from toolbridge.serve.mcp import PATH, create_mcp_app
from toolbridge.serve.toolset_paths import ToolsetPaths
from toolbridge.upstream.seam import MockUpstream, UpstreamRequest, UpstreamResponse

pytestmark = pytest.mark.anyio

ROOT = Path(__file__).resolve().parents[2]
ALICE = {"Authorization": "Bearer alice-key-1"}
OPS = {"Authorization": "Bearer ops-key-1"}
NOTES = [{"id": 1, "title": "Welcome"}]
META = ["search_tools", "describe_tools", "call_tool"]
CONFIG = Config.model_validate(
    {
        "auth": {
            "api_keys": [
                {"user": "alice", "key": "alice-key-1"},
                {"user": "ops", "key": "ops-key-1", "admin": True},
            ]
        },
        "servers": [
            {
                "id": "notes",
                "spec": "specs/demo.yaml",
                "base_url": "http://notes.test",
                "access": {"users": ["alice"], "methods": ["GET"]},
            }
        ],
        "toolsets": [
            {"id": "reading", "include": {"methods": ["GET"]}},
            {"id": "finder", "include": {"sources": ["notes"]}, "discovery": "search"},
        ],
        "base_dir": ROOT,
    }
)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def notes(request: UpstreamRequest) -> UpstreamResponse:
    headers = (("content-type", "application/json"),)
    return UpstreamResponse(status=200, headers=headers, body=json.dumps(NOTES).encode())


@pytest.fixture
async def gateway(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Gateway]:
    monkeypatch.chdir(ROOT)
    async with Gateway(CONFIG, upstream=MockUpstream(notes)) as found:
        yield found


@pytest.fixture
async def http(gateway: Gateway) -> AsyncIterator[httpx2.AsyncClient]:
    transport = httpx2.ASGITransport(create_app(gateway))
    async with httpx2.AsyncClient(transport=transport, base_url="http://gateway.test") as client:
        yield client


def listed(response: httpx2.Response, key: str = "name") -> list[str]:
    assert response.status_code == 200, response.text
    return [
        tool[key] if key in tool else tool["function"][key] for tool in response.json()["tools"]
    ]


async def test_a_toolset_is_served_under_its_path_and_as_a_query_parameter(
    http: httpx2.AsyncClient,
) -> None:
    by_path = await http.get("/toolsets/reading/v1/tools?format=anthropic", headers=OPS)
    by_query = await http.get("/v1/tools?toolset=reading&format=anthropic", headers=OPS)
    everything = await http.get("/v1/tools", headers=OPS)
    assert listed(by_path) == listed(by_query) == ["listNotes", "getNote", "getStatus"]
    assert len(listed(everything)) == 6


async def test_a_toolsets_openapi_document_names_its_own_path_as_its_server(
    http: httpx2.AsyncClient,
) -> None:
    document = (await http.get("/toolsets/reading/openapi.json", headers=ALICE)).json()
    OpenAPIV31SpecValidator(document).validate()
    assert (document["info"]["title"], document["servers"], sorted(document["paths"])) == (
        "toolbridge: reading",
        [{"url": "http://gateway.test/toolsets/reading"}],
        [
            "/v1/tools/getNote/call",
            "/v1/tools/getStatus/call",
            "/v1/tools/listNotes/call",
        ],
    )
    call = await http.post("/toolsets/reading/v1/tools/listNotes/call", headers=ALICE)
    assert call.json() == {
        "ok": True,
        "status": 200,
        "content_type": "application/json",
        "result": NOTES,
    }


async def test_outside_its_toolset_a_tool_is_not_found(http: httpx2.AsyncClient) -> None:
    inside = await http.post("/toolsets/reading/v1/tools/deleteNote/call", headers=OPS)
    unknown = await http.post("/toolsets/nope/v1/tools", headers=OPS)
    elsewhere = await http.get("/toolsets/reading/v1/admin/reload", headers=OPS)
    assert (inside.status_code, inside.json()["error"]["message"]) == (
        404,
        "no tool named 'deleteNote'",
    )
    assert unknown.status_code == 405  # the tool list is read with GET
    missing = await http.get("/toolsets/nope/v1/tools", headers=OPS)
    assert (missing.status_code, missing.json()["error"]["message"]) == (
        404,
        "no toolset named 'nope'",
    )
    assert elsewhere.status_code == 404


async def test_a_turn_in_an_unknown_or_unnamed_toolset_is_refused_whole(
    http: httpx2.AsyncClient,
) -> None:
    """Not 200 with every call failed inside it; and `?toolset=` empty is no whole catalog."""
    turn = {"tool_calls": [{"id": "c", "function": {"name": "listNotes", "arguments": "{}"}}]}
    answers = [
        await http.post("/toolsets/nope/v1/tool_calls", headers=ALICE, json=turn),
        await http.post("/v1/tool_calls?toolset=nope", headers=ALICE, json=turn),
        await http.post("/v1/tool_calls?toolset=", headers=ALICE, json=turn),
        await http.get("/v1/tools?toolset=", headers=ALICE),
    ]
    assert [(a.status_code, a.json()["error"]["message"]) for a in answers] == [
        (404, "no toolset named 'nope'"),
        (404, "no toolset named 'nope'"),
        (400, "`toolset`: expected a toolset id, found an empty value"),
        (400, "`toolset`: expected a toolset id, found an empty value"),
    ]


async def test_search_mode_offers_three_tools_everywhere(http: httpx2.AsyncClient) -> None:
    tools = await http.get("/v1/tools?mode=search", headers=ALICE)
    toolset = await http.get("/toolsets/finder/v1/tools?format=gemini", headers=ALICE)
    document = (await http.get("/openapi.json?mode=search", headers=ALICE)).json()
    OpenAPIV31SpecValidator(document).validate()
    assert listed(tools) == listed(toolset) == META
    assert sorted(document["paths"]) == sorted(f"/v1/tools/{name}/call" for name in META)


async def test_the_search_tools_are_called_like_any_tool(http: httpx2.AsyncClient) -> None:
    found = await http.post(
        "/v1/tools/search_tools/call?toolset=finder", headers=ALICE, json={"query": "get a note"}
    )
    described = await http.post(
        "/toolsets/finder/v1/tools/describe_tools/call?format=anthropic",
        headers=ALICE,
        json={"names": ["getNote"]},
    )
    called = await http.post(
        "/toolsets/finder/v1/tools/call_tool/call",
        headers=ALICE,
        json={"name": "listNotes", "arguments": {}},
    )
    assert found.json()["result"]["tools"][0] == {"name": "getNote", "description": "Get one note"}
    assert [t["name"] for t in described.json()["result"]["tools"]] == ["getNote"]
    assert set(described.json()["result"]["tools"][0]) == {"name", "description", "input_schema"}
    assert called.json()["result"] == NOTES


async def test_one_turn_in_a_toolset_in_the_payloads_own_format(http: httpx2.AsyncClient) -> None:
    turn = {
        "role": "assistant",
        "content": [
            {"type": "tool_use", "id": "a", "name": "describe_tools",
             "input": {"names": ["getNote"]}},
            {"type": "tool_use", "id": "b", "name": "deleteNote", "input": {"noteId": 1}},
        ],
    }  # fmt: skip
    answer = (await http.post("/v1/tool_calls?toolset=finder", headers=OPS, json=turn)).json()
    blocks = answer["messages"][0]["content"]
    described = json.loads(blocks[0]["content"])
    assert set(described["tools"][0]) == {"name", "description", "input_schema"}
    assert (blocks[1]["is_error"], json.loads(blocks[1]["content"])) == (False, NOTES)


@asynccontextmanager
async def mcp_client(gateway: Gateway, path: str) -> AsyncIterator[Client]:
    mcp = create_mcp_app(gateway)
    app = ToolsetPaths(Starlette(routes=[Route(PATH, mcp)]))
    async with (
        mcp.lifespan(),
        httpx2.AsyncClient(transport=httpx2.ASGITransport(app), headers=ALICE, timeout=10) as h,
        Client(streamable_http_client(f"http://gateway.test{path}", http_client=h)) as client,
    ):
        yield client


async def test_a_toolsets_mcp_endpoint_lists_and_calls_in_search_mode(gateway: Gateway) -> None:
    async with mcp_client(gateway, "/toolsets/finder/mcp") as client:
        tools = [tool.name for tool in (await client.list_tools()).tools]
        found = await client.call_tool("search_tools", {"query": "list the notes", "limit": 2})
        described = await client.call_tool("describe_tools", {"names": ["listNotes"]})
        called = await client.call_tool("call_tool", {"name": "listNotes"})
    assert tools == META
    assert found.structured_content == {
        "tools": [
            {"name": "listNotes", "description": "List notes"},
            {"name": "getNote", "description": "Get one note"},
        ]
    }
    structured: Any = described.structured_content
    assert set(structured["tools"][0]) >= {"name", "title", "inputSchema", "annotations"}
    assert called.structured_content is None  # a list is text content only
    assert json.loads(called.content[0].text) == NOTES  # type: ignore[union-attr]


async def test_a_toolsets_mcp_endpoint_in_list_mode_and_an_unknown_one(gateway: Gateway) -> None:
    async with mcp_client(gateway, "/toolsets/reading/mcp") as client:
        tools = [tool.name for tool in (await client.list_tools()).tools]
    assert tools == ["listNotes", "getNote", "getStatus"]
    mcp = create_mcp_app(gateway)
    app = ToolsetPaths(Starlette(routes=[Route(PATH, mcp)]))
    async with mcp.lifespan(), httpx2.AsyncClient(transport=httpx2.ASGITransport(app)) as h:
        response = await h.post("http://gateway.test/toolsets/nope/mcp", headers=ALICE, json={})
    assert (response.status_code, response.json()) == (
        404,
        {"error": {"type": "not_found", "message": "no toolset named 'nope'"}},
    )


async def test_servers_count_the_tools_the_caller_may_use(http: httpx2.AsyncClient) -> None:
    """alice may use the notes server's GET operations: its count says those, not all six."""
    mine = (await http.get("/v1/servers", headers=ALICE)).json()["servers"]
    every = (await http.get("/v1/servers", headers=OPS)).json()["servers"]
    listed = (await http.get("/v1/tools", headers=ALICE)).json()["tools"]
    assert (
        [(s["id"], s["tools"]) for s in mine],
        [(s["id"], s["tools"]) for s in every],
        len(listed),
    ) == ([("notes", 3)], [("notes", 6)], 3)
