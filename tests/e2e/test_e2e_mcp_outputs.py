"""Real MCP clients (the 2.x SDK, and a 1.x SDK in its own venv) list and call tools whose
answers do not match their documents' response schemas: every call the upstream answered
successfully is a success for the client, and the gateway counts the mismatches.

The upstream is a small chromadb-like API on loopback: its metadata values are documented as
`oneOf: [integer, number, string, boolean]` (an integer matches two branches), and its count
is documented as an integer but answered as a string. The gateway serves it twice: as `chroma`
(output schemas withheld from MCP clients, the default) and as `vouched` with `output_schema:
publish` for the one operation whose answers fit once `oneOf` is read as `anyOf`.
"""

from __future__ import annotations

import contextlib
import io
import json
import subprocess
import textwrap
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx2
import pytest
from mcp.client import Client
from mcp.client.streamable_http import streamable_http_client
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from tests.e2e.conftest import live_server
from toolbridge.calllog import CallLog
from toolbridge.config_file import load_config
from toolbridge.gateway import Gateway
from toolbridge.serve.app import create_app
from toolbridge.serve.loopback import LoopbackServer
from toolbridge.upstream.clients import make_upstream

pytestmark = [pytest.mark.e2e, pytest.mark.anyio]

RECORDS = {"ids": ["a", "b"], "metadatas": [{"page": 1, "score": 0.5}, {"title": "x"}]}
COUNT = {"count": "2"}  # documented as an integer

DOCUMENT = """\
openapi: 3.1.0
info: {title: Records, version: "1"}
paths:
  /records:
    get:
      operationId: getRecords
      responses:
        "200":
          description: The records.
          content:
            application/json:
              schema:
                type: object
                required: [ids, metadatas]
                properties:
                  ids: {type: array, items: {type: string}}
                  metadatas:
                    type: array
                    items:
                      type: object
                      additionalProperties:
                        oneOf:
                          - {type: integer}
                          - {type: number}
                          - {type: string}
                          - {type: boolean}
  /count:
    get:
      operationId: countRecords
      responses:
        "200":
          description: How many records there are.
          content:
            application/json:
              schema:
                type: object
                required: [count]
                properties:
                  count: {type: integer}
"""


async def records(request: Request) -> JSONResponse:
    return JSONResponse(RECORDS)


async def count(request: Request) -> JSONResponse:
    return JSONResponse(COUNT)


UPSTREAM = Starlette(routes=[Route("/records", records), Route("/count", count)])


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


CALLS = io.BytesIO()
"""The gateway's call log."""


@pytest.fixture(scope="module")
def gateway_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    folder = tmp_path_factory.mktemp("outputs")
    (folder / "records.yaml").write_text(DOCUMENT)
    with live_server(UPSTREAM) as upstream:
        (folder / "toolbridge.yaml").write_text(
            textwrap.dedent(
                f"""\
                servers:
                  - id: chroma
                    spec: records.yaml
                    base_url: {upstream}
                  - id: vouched
                    spec: records.yaml
                    base_url: {upstream}
                    prefix: vouched
                    include: {{operations: [getRecords]}}
                    output_schema: publish
                """
            )
        )
        gateway = Gateway(
            load_config(folder / "toolbridge.yaml", {}),
            upstream=make_upstream(),
            call_log=CallLog(CALLS, max_delay=0),
        )
        gateway.load()
        with LoopbackServer(create_app(gateway), lifespan="on") as server:
            yield server.url


@contextlib.asynccontextmanager
async def connect(url: str, mode: str) -> AsyncIterator[Client]:
    async with httpx2.AsyncClient(timeout=10) as http:
        streams = streamable_http_client(f"{url}/mcp", http_client=http)
        async with Client(streams, mode=mode) as client:
            yield client


PROMISED = {
    "type": "object",
    "required": ["ids", "metadatas"],
    "properties": {
        "ids": {"type": "array", "items": {"type": "string"}},
        "metadatas": {
            "type": "array",
            "items": {
                "type": "object",
                "additionalProperties": {
                    "anyOf": [
                        {"type": "integer"},
                        {"type": "number"},
                        {"type": "string"},
                        {"type": "boolean"},
                    ]
                },
            },
        },
    },
}
NAMES = ["getRecords", "countRecords", "vouched_getRecords"]
EXPECTED: dict[str, Any] = {
    "schemas": {"getRecords": None, "countRecords": None, "vouched_getRecords": PROMISED},
    "calls": {
        "getRecords": [False, RECORDS],
        "countRecords": [False, COUNT],
        "vouched_getRecords": [False, RECORDS],
    },
}


def mismatches(url: str) -> dict[str, float]:
    """toolbridge_output_mismatches_total by tool, read off /metrics."""
    out = {}
    for line in httpx2.get(f"{url}/metrics", timeout=10).text.splitlines():
        if line.startswith("toolbridge_output_mismatches_total{"):
            labels, _, value = line.partition("} ")
            out[labels.split('tool="')[1].rstrip('"')] = float(value)
    return out


@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_the_2x_client_gets_every_successful_answer(gateway_url: str, mode: str) -> None:
    before = mismatches(gateway_url)
    async with connect(gateway_url, mode) as client:
        listed = (await client.list_tools()).tools
        calls: dict[str, list[Any]] = {}
        for name in NAMES:
            result = await client.call_tool(name, {})  # the client checks what it was promised
            calls[name] = [result.is_error, result.structured_content]
    schemas = {tool.name: tool.output_schema for tool in listed}
    assert {"schemas": schemas, "calls": calls} == EXPECTED
    after = mismatches(gateway_url)
    # The integers fit once oneOf reads as anyOf; the string count does not, and is counted.
    assert after.get("countRecords", 0) - before.get("countRecords", 0) == 1
    assert after.get("getRecords", 0) == before.get("getRecords", 0)


MCP1_CLIENT = """
import json, sys
import anyio
from mcp import ClientSession
from mcp.client.streamable_http import streamablehttp_client

async def main():
    async with streamablehttp_client(sys.argv[1] + "/mcp") as (read, write, _):
        async with ClientSession(read, write) as session:
            await session.initialize()
            tools = (await session.list_tools()).tools
            report = {"schemas": {t.name: t.outputSchema for t in tools}, "calls": {}}
            for name in sys.argv[2:]:
                result = await session.call_tool(name, {})
                report["calls"][name] = [result.isError, result.structuredContent]
    print(json.dumps(report))

anyio.run(main)
"""


def test_the_1x_client_gets_every_successful_answer(
    gateway_url: str, tmp_path: Path, mcp1_python: Path
) -> None:
    script = tmp_path / "mcp1_outputs.py"
    script.write_text(MCP1_CLIENT)
    done = subprocess.run(
        [mcp1_python, str(script), gateway_url, *NAMES],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == EXPECTED


def test_mismatches_are_in_the_call_log_without_the_values(gateway_url: str) -> None:
    """Where the answer differs and which keyword, never what it held."""
    start = len(CALLS.getvalue())
    for name in NAMES:
        answer = httpx2.post(f"{gateway_url}/v1/tools/{name}/call", json={}, timeout=10)
        assert answer.json()["ok"] is True
    for _ in range(100):  # written on the server's loop, just after each answer
        lines = CALLS.getvalue()[start:].decode().splitlines()
        if len(lines) == 3:
            break
        time.sleep(0.02)
    entries = [json.loads(line) for line in lines]
    assert [(e["tool"], e["outcome"], e.get("output_mismatch")) for e in entries] == [
        ("getRecords", "ok", None),
        ("countRecords", "ok", "$.count: type"),
        ("vouched_getRecords", "ok", None),
    ]
    assert '"2"' not in lines[1]
