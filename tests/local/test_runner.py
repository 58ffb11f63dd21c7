"""Async local tools run on a loop of their own: one that blocks is named and its timeout holds;
local results are capped like remote ones."""

from __future__ import annotations

import dataclasses
import logging
import time
from pathlib import Path

import anyio
import pytest

from tests.ticking import ticking
from toolbridge.config import Config, LocalTools
from toolbridge.gateway import Gateway
from toolbridge.local.calls import call_function
from toolbridge.local.loader import load_tools
from toolbridge.policy import ANONYMOUS_ADMIN
from toolbridge.tools import PythonFunction, ToolResult
from toolbridge.upstream.seam import MockUpstream, UpstreamResponse

pytestmark = pytest.mark.anyio

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "hostile"
ENTRY = LocalTools(id="hostile", path=str(FIXTURES / "hostile.py"))


def capped_gateway() -> Gateway:
    """The hostile tools behind a gateway whose answers are capped at 1,000 bytes."""
    return Gateway(
        Config(tools=(ENTRY,), base_dir=FIXTURES),
        upstream=MockUpstream(lambda request: UpstreamResponse(status=500)),
        max_response_bytes=1000,
    )


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def function(name: str) -> PythonFunction:
    conversion = load_tools(ENTRY, FIXTURES)
    tool = next(t for t in conversion.tools if t.name == name)
    assert isinstance(tool.target, PythonFunction)
    return tool.target


async def test_an_async_tool_that_blocks_its_loop_is_named_and_its_timeout_holds(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """`time.sleep` in an async tool blocks only the tools' loop: the call answers at its
    timeout, the gateway's loop keeps turning meanwhile, and the log names the tool."""
    fn = dataclasses.replace(function("blocking"), timeout=1.0)
    with caplog.at_level(logging.WARNING, logger="toolbridge.local.runner"):
        async with ticking() as ticks:
            result = await call_function(fn, {"seconds": 2.5})
        await anyio.sleep(2.0)  # the tool lets go of its loop; the watchdog has spoken

    assert result == ToolResult(ok=False, content_type="text/plain", result="timed out after 1 s")
    assert 1.0 <= ticks.took < 1.8
    assert ticks.count >= 12  # about 20 in that second: the gateway's loop was never blocked
    warnings = [r.getMessage() for r in caplog.records if r.name == "toolbridge.local.runner"]
    assert len(warnings) == 1
    assert "blocks its event loop" in warnings[0]
    assert warnings[0].split("running there: ")[1].startswith("hostile:Tools.blocking.")


@pytest.mark.parametrize("name", ["interrupt", "interrupt_async"])
async def test_a_tool_that_raises_keyboardinterrupt_or_systemexit_fails_only_its_call(
    name: str,
) -> None:
    """They would end the thread, the tools' loop or the process: each is the call's error,
    and the next calls (async ones on the same loop) run as before."""
    fn = function(name)
    stopped = [await call_function(fn, {"code": code}) for code in (0, 3)]
    after = await call_function(function("blocking"), {"seconds": 0})
    assert (stopped, after) == (
        [
            ToolResult(ok=False, content_type="text/plain", result="KeyboardInterrupt"),
            ToolResult(ok=False, content_type="text/plain", result="SystemExit: 3"),
        ],
        ToolResult(ok=True, content_type="text/plain", result="done"),
    )


async def test_a_local_answer_with_integers_past_64_bits_is_its_json_text() -> None:
    """As a remote answer with them is passed on: no 500, the numbers exact, capped as text."""
    gateway = capped_gateway()
    async with gateway:
        one = await gateway.call(ANONYMOUS_ADMIN, "big_number", {})
        many = await gateway.call(ANONYMOUS_ADMIN, "big_number", {"count": 100})
        alone = await gateway.call(ANONYMOUS_ADMIN, "big_scalar", {})
    assert one == ToolResult(
        ok=True, content_type="application/json", result=f"[{2**70}]", text_form="json"
    )
    assert alone == ToolResult(
        ok=True, content_type="application/json", result=str(2**70), text_form="json"
    )
    assert (many.ok, many.truncated) == (True, True)
    assert many.result.startswith(f"[{2**70},{2**70 + 1},")


async def test_an_async_tool_that_awaits_still_answers() -> None:
    fn = function("blocking")

    result = await call_function(fn, {"seconds": 0})

    assert result == ToolResult(ok=True, content_type="text/plain", result="done")


@pytest.mark.parametrize(
    ("name", "arguments", "head"),
    [
        ("huge", {"size": 5000}, "x" * 1000),
        ("huge_json", {"items": 1000}, "[0,1,2,3,4,5"),
    ],
)
async def test_local_results_are_capped_like_remote_ones(
    name: str, arguments: dict[str, int], head: str
) -> None:
    gateway = capped_gateway()
    async with gateway:
        result = await gateway.call(ANONYMOUS_ADMIN, name, arguments)
        small = await gateway.call(ANONYMOUS_ADMIN, name, {"size": 10} if name == "huge" else {})

    marker = "\n[truncated: the tool's answer was longer than 1000 bytes]"
    assert (result.ok, result.truncated, result.content_type) == (True, True, "text/plain")
    assert isinstance(result.result, str)
    assert result.result.startswith(head)
    assert result.result.endswith(marker)
    assert len(result.result) == 1000 + len(marker)
    assert small.truncated is False


async def test_a_stall_with_no_tool_call_on_the_loop_is_not_reported(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Its thread may not get the interpreter for a while (a long conversion, the process
    ending): with no call running there, there is no tool to name, and nothing is logged."""
    from toolbridge.local.runner import ToolLoop

    loop = ToolLoop()
    tools_loop = loop._started()
    with caplog.at_level(logging.WARNING, logger="toolbridge.local.runner"):
        tools_loop.call_soon_threadsafe(time.sleep, 1.6)  # the loop stalls; no call runs
        await anyio.sleep(2.2)
    assert [r.getMessage() for r in caplog.records if r.name == "toolbridge.local.runner"] == []
