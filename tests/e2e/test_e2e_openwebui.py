"""Open WebUI tools over real HTTP: `__event_call__` answered by MCP elicitation, directly on a
stateful session (which needs the answer streamed while the call waits) and in input-required
rounds on a stateless one, by the SDK's 2.x client and, given `TOOLBRIDGE_MCP1_PYTHON`, by a
client of the 1.x SDK; and a filter file edited while the gateway serves.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx2
import pytest
from mcp import types
from mcp.client import Client
from mcp.client.streamable_http import streamable_http_client
from starlette.applications import Starlette
from starlette.routing import Route

from toolbridge.config import Config
from toolbridge.gateway import Gateway
from toolbridge.serve.app import create_app
from toolbridge.serve.loopback import LoopbackServer
from toolbridge.serve.mcp import PATH, create_mcp_app
from toolbridge.upstream.clients import make_upstream

pytestmark = [pytest.mark.e2e, pytest.mark.anyio]

ROOT = Path(__file__).resolve().parents[2]
KEY = "alice-e2e-key-0123456789"
OPS_KEY = "ops-e2e-key-0123456789"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def config(base_dir: Path = ROOT, **extra: Any) -> Config:
    return Config.model_validate(
        {
            "auth": {
                "api_keys": [
                    {"user": "alice", "key": KEY},
                    {"user": "ops", "key": OPS_KEY, "admin": True},
                ]
            },
            "tools": [
                {
                    "id": "danger",
                    "path": str(ROOT / "tests/fixtures/openwebui/danger_zone.py"),
                    "access": {"users": ["alice"]},
                },
                {
                    "id": "faults",
                    "path": str(ROOT / "tests/fixtures/tools/faults.py"),
                    "access": {"users": ["alice"]},
                },
            ],
            "base_dir": base_dir,
            **extra,
        }
    )


def mcp_only(cfg: Config, *, stateful: bool) -> Starlette:
    """`/mcp` of a gateway for `cfg`, wired as `create_app` wires it."""
    gateway = Gateway(cfg, upstream=make_upstream())
    gateway.load()
    mcp = create_mcp_app(gateway, stateful=stateful)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with gateway, mcp.lifespan():
            yield

    return Starlette(routes=[Route(PATH, mcp)], lifespan=lifespan)


class User:
    def __init__(self, *answers: types.ElicitResult) -> None:
        self.answers = list(answers)
        self.asked: list[str] = []

    async def __call__(self, context: Any, params: types.ElicitRequestParams) -> types.ElicitResult:
        self.asked.append(params.message)
        return self.answers.pop(0)


@pytest.mark.parametrize(("stateful", "mode"), [(True, "legacy"), (False, "auto")])
async def test_elicitation_over_real_http(stateful: bool, mode: str) -> None:
    """Stateful handshake-era sessions are asked mid-call; 2026-07-28 clients in rounds."""
    user = User(
        types.ElicitResult(action="accept", content={}),
        types.ElicitResult(action="accept", content={"value": "tidy up"}),
        types.ElicitResult(action="accept", content={}),
    )
    with LoopbackServer(mcp_only(config(), stateful=stateful), lifespan="on") as server:
        async with httpx2.AsyncClient(
            headers={"Authorization": f"Bearer {KEY}"}, timeout=20
        ) as http:
            transport = streamable_http_client(f"{server.url}{PATH}", http_client=http)
            async with Client(transport, mode=mode, elicitation_callback=user) as client:
                deleted = await client.call_tool("delete_file", {"name": "a.txt"})
                asked = await client.call_tool("ask", {})  # a sync tool, waiting in its thread
    assert [block.text for block in deleted.content if isinstance(block, types.TextContent)] == [
        "Deleted a.txt (tidy up)."
    ]
    assert [block.text for block in asked.content if isinstance(block, types.TextContent)] == [
        "the user said True"
    ]
    assert user.asked == [
        "Delete file?\n\nDelete a.txt for good?",
        "Why?\n\nSay why, for the log.",
        "Sure?",
    ]


MCP1_CLIENT = """
import sys
import anyio
from mcp import ClientSession, types
from mcp.client.streamable_http import streamablehttp_client

url, key = sys.argv[1], sys.argv[2]

async def answer(context, params):
    if "Why?" in params.message:
        return types.ElicitResult(action="accept", content={"value": "from 1.x"})
    return types.ElicitResult(action="accept", content={})

async def main():
    headers = {"Authorization": "Bearer " + key}
    async with streamablehttp_client(url + "/mcp", headers=headers) as (read, write, _):
        async with ClientSession(read, write, elicitation_callback=answer) as session:
            await session.initialize()
            result = await session.call_tool("delete_file", {"name": "b.txt"})
            print(result.content[0].text)

anyio.run(main)
"""


def test_a_client_of_the_1x_sdk_answers_elicitation(tmp_path: Path, mcp1_python: Path) -> None:
    script = tmp_path / "mcp1_client.py"
    script.write_text(MCP1_CLIENT)
    with LoopbackServer(mcp_only(config(), stateful=True), lifespan="on") as server:
        done = subprocess.run(
            [str(mcp1_python), str(script), server.url, KEY],
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "Deleted b.txt (from 1.x)."


def test_an_edited_filter_file_is_reloaded_while_serving(tmp_path: Path) -> None:
    """The watcher sees the edit; the filter's new version filters the next call."""
    filter_file = tmp_path / "redact.py"
    original = (ROOT / "tests/fixtures/filters/redact_emails.py").read_text()
    filter_file.write_text(original)
    cfg = config(tmp_path, filters=[{"id": "redact", "path": "redact.py"}])
    gateway = Gateway(cfg, upstream=make_upstream())
    gateway.load()
    app = create_app(gateway)

    def echo(client: httpx2.Client) -> Any:
        response = client.post("/v1/tools/echo/call", json={"text": "mail eve@example.net"})
        return response.json()["result"]

    with (
        LoopbackServer(app, lifespan="on") as server,
        httpx2.Client(
            base_url=server.url, headers={"Authorization": f"Bearer {KEY}"}, timeout=10
        ) as client,
    ):
        assert echo(client) == "mail [email]"
        filter_file.write_text(original.replace('default="[email]"', 'default="[gone]"'))
        deadline = time.monotonic() + 15
        while echo(client) != "mail [gone]" and time.monotonic() < deadline:
            time.sleep(0.2)
        assert echo(client) == "mail [gone]"
        ops = {"Authorization": f"Bearer {OPS_KEY}"}
        listed = client.get("/v1/servers", headers=ops).json()["filters"]
        assert "filters" not in client.get("/v1/servers").json()  # to admins only
    assert [(f["id"], f["status"]) for f in listed] == [("redact", "ok")]
