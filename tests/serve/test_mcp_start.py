"""`/mcp` starts in the background: the HTTP API serves at once, `/readyz` says how far the MCP
endpoint is, and an MCP request that comes early waits for it (or is told why it cannot)."""

from __future__ import annotations

import time
from pathlib import Path
from types import ModuleType

import httpx2
import pytest

from toolbridge.config import Config, Server
from toolbridge.demo import DEMO_SPEC
from toolbridge.gateway import Gateway
from toolbridge.serve import mcp_start
from toolbridge.serve.app import create_app
from toolbridge.serve.loopback import LoopbackServer
from toolbridge.upstream.seam import MockUpstream, UpstreamResponse

LIST = {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}}
HEADERS = {"Accept": "application/json, text/event-stream", "MCP-Protocol-Version": "2025-06-18"}


@pytest.fixture
def gateway() -> Gateway:
    config = Config(servers=(Server(id="notes", spec=str(DEMO_SPEC)),), base_dir=Path.cwd())
    served = Gateway(config, upstream=MockUpstream(lambda r: UpstreamResponse(status=204)))
    served.load()
    return served


@pytest.fixture
def slow_sdk(monkeypatch: pytest.MonkeyPatch) -> None:
    """The MCP SDK takes two seconds more to load than it does."""
    load = mcp_start.load_sdk

    def slowly() -> ModuleType:
        time.sleep(2.0)
        module: ModuleType = load()
        return module

    monkeypatch.setattr(mcp_start, "load_sdk", slowly)


def test_an_early_mcp_request_waits_for_the_sdk_and_is_answered(
    gateway: Gateway, slow_sdk: None
) -> None:
    with LoopbackServer(create_app(gateway), lifespan="on") as server:
        ready = httpx2.get(f"{server.url}/readyz").json()
        started = time.monotonic()
        listed = httpx2.post(f"{server.url}/mcp", json=LIST, headers=HEADERS, timeout=30)
        waited = time.monotonic() - started
        after = httpx2.get(f"{server.url}/readyz").json()
    assert (ready["status"], ready["mcp"], ready["tools"]) == ("ready", "starting", 6)
    assert listed.status_code == 200
    assert waited > 0.2
    assert after["mcp"] == "ready"


def test_an_sdk_that_cannot_load_is_503_with_the_reason(
    gateway: Gateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken() -> ModuleType:
        raise ImportError("no module named mcp_types")

    monkeypatch.setattr(mcp_start, "load_sdk", broken)
    with LoopbackServer(create_app(gateway), lifespan="on") as server:
        listed = httpx2.post(f"{server.url}/mcp", json=LIST, headers=HEADERS, timeout=30)
        ready = httpx2.get(f"{server.url}/readyz").json()
        tools = httpx2.get(f"{server.url}/v1/tools")
    assert (listed.status_code, listed.json()) == (
        503,
        {
            "error": {
                "type": "unavailable",
                "message": "the MCP endpoint could not start (see the gateway's log)",
            }
        },
    )
    assert ready["mcp"] == "failed"
    assert tools.status_code == 200  # the rest of the API serves regardless
