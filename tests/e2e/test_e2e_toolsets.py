"""Toolsets and search mode over real HTTP: `toolbridge`'s whole app on uvicorn, the demo notes
service on another loopback port, and the `mcp` SDK's client at `/toolsets/{id}/mcp`."""

from __future__ import annotations

import textwrap
from collections.abc import Iterator
from pathlib import Path

import httpx2
import pytest
from mcp.client import Client
from mcp.client.streamable_http import streamable_http_client

from toolbridge.config_file import load_config
from toolbridge.demo.service import create_demo_app
from toolbridge.gateway import Gateway
from toolbridge.serve.app import create_app
from toolbridge.serve.loopback import LoopbackServer
from toolbridge.upstream.clients import make_upstream

pytestmark = [pytest.mark.e2e, pytest.mark.anyio]

ROOT = Path(__file__).resolve().parents[2]
ALICE = {"Authorization": "Bearer alice-secret-key-2"}


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
def gateway_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    path = tmp_path_factory.mktemp("toolsets") / "toolbridge.yaml"
    with LoopbackServer(create_demo_app()) as notes:
        path.write_text(
            textwrap.dedent(
                f"""\
                auth:
                  api_keys: [{{user: alice, key: "${{ALICE_KEY}}"}}]
                servers:
                  - id: notes
                    spec: {ROOT}/specs/demo.yaml
                    base_url: {notes.url}
                    access: {{users: [alice], methods: [GET]}}
                    tools: {{listNotes: {{result: {{select: "[].title"}}}}}}
                toolsets:
                  - {{id: reading, include: {{methods: [GET]}}}}
                  - {{id: finder, include: {{sources: [notes]}}, discovery: search}}
                """
            )
        )
        config = load_config(path, {"ALICE_KEY": ALICE["Authorization"].split()[1]})
        gateway = Gateway(config, upstream=make_upstream())
        gateway.load()
        with LoopbackServer(create_app(gateway), lifespan="on") as server:
            yield server.url


async def test_a_model_finds_describes_and_calls_through_a_toolsets_mcp_endpoint(
    gateway_url: str,
) -> None:
    async with (
        httpx2.AsyncClient(headers=ALICE, timeout=10) as http,
        Client(
            streamable_http_client(f"{gateway_url}/toolsets/finder/mcp", http_client=http)
        ) as client,
    ):
        listed = [tool.name for tool in (await client.list_tools()).tools]
        found = await client.call_tool("search_tools", {"query": "show me all my notes"})
        described = await client.call_tool("describe_tools", {"names": ["deleteNote"]})
        called = await client.call_tool("call_tool", {"name": "listNotes", "arguments": {}})
    assert listed == ["search_tools", "describe_tools", "call_tool"]
    assert isinstance(found.structured_content, dict)
    assert found.structured_content["tools"][0] == {
        "name": "listNotes",
        "description": "List notes",
    }
    assert "deleteNote" not in [t["name"] for t in found.structured_content["tools"]]
    assert described.structured_content == {"tools": [], "not_found": ["deleteNote"]}
    assert called.is_error is False
    assert called.content[0].text.startswith('["Welcome"')  # type: ignore[union-attr]


async def test_a_toolsets_openapi_document_and_calls_under_its_path(gateway_url: str) -> None:
    async with httpx2.AsyncClient(base_url=gateway_url, headers=ALICE, timeout=10) as http:
        document = (await http.get("/toolsets/reading/openapi.json")).json()
        called = await http.post("/toolsets/reading/v1/tools/listNotes/call")
    assert document["servers"] == [{"url": f"{gateway_url}/toolsets/reading"}]
    assert sorted(document["paths"]) == [
        "/v1/tools/getNote/call",
        "/v1/tools/getStatus/call",
        "/v1/tools/listNotes/call",
    ]
    body = called.json()
    assert (body["ok"], body["result"][0], body["budget"]["selected"]) == (
        True,
        "Welcome",
        "[].title",
    )
