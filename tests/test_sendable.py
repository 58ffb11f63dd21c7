"""Answers no surface could write as JSON: too deep for the encoder, or no JSON at all."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import orjson
import pytest

from toolbridge.config import Config
from toolbridge.gateway import Gateway
from toolbridge.policy import Principal
from toolbridge.sendable import ENVELOPE_DEPTH, MAX_DEPTH, sendable
from toolbridge.tools import ToolResult
from toolbridge.upstream.seam import MockUpstream, UpstreamRequest, UpstreamResponse

ROOT = Path(__file__).resolve().parents[1]
DEEP = "[" * (MAX_DEPTH + 50) + "]" * (MAX_DEPTH + 50)


def nested(depth: int) -> list[Any]:
    outer: list[Any] = []
    inner = outer
    for _ in range(depth):
        inner.append([])
        inner = inner[0]
    return outer


def itself() -> dict[str, Any]:
    loop: dict[str, Any] = {}
    loop["again"] = loop
    return loop


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ({"a": [1, "b"]}, ToolResult(ok=True, result={"a": [1, "b"]})),
        (2**64 - 1, ToolResult(ok=True, result=2**64 - 1)),
        (2**70, ToolResult(ok=True, result=str(2**70), text_form="json")),
        (-(2**63) - 1, ToolResult(ok=True, result=str(-(2**63) - 1), text_form="json")),
        ("text", ToolResult(ok=True, result="text")),
        (orjson.loads(DEEP), ToolResult(ok=True, result=DEEP, text_form="json")),
        (
            {1, 2},
            ToolResult(
                ok=False,
                content_type="text/plain",
                result="the tool's answer cannot be sent as JSON: Type is not JSON serializable: "
                "set",
            ),
        ),
        (
            itself(),
            ToolResult(
                ok=False,
                content_type="text/plain",
                result="the tool's answer cannot be sent as JSON: it refers to itself",
            ),
        ),
        (
            nested(50_000),
            ToolResult(ok=True, result="[" * 50_001 + "]" * 50_001, text_form="json"),
        ),
        # The surfaces wrap a result in a few levels more (the envelope, MCP's answer).
        (
            nested(MAX_DEPTH - 2),
            ToolResult(
                ok=True, result="[" * (MAX_DEPTH - 1) + "]" * (MAX_DEPTH - 1), text_form="json"
            ),
        ),
        (
            nested(MAX_DEPTH - ENVELOPE_DEPTH - 1),
            ToolResult(ok=True, result=nested(MAX_DEPTH - ENVELOPE_DEPTH - 1)),
        ),
        (
            {"n": 10**30, "m": [True, None]},
            ToolResult(
                ok=True, result='{"n":' + "1" + "0" * 30 + ',"m":[true,null]}', text_form="json"
            ),
        ),
    ],
    ids=[
        "json",
        "the-largest-integer-orjson-writes",
        "an-integer-past-64-bits",
        "a-negative-one",
        "text",
        "too-deep-json",
        "a-set",
        "itself",
        "deeper-than-python-goes",
        "too-deep-in-an-envelope",
        "deep-but-not-too-deep",
        "integers-past-64-bits",
    ],
)
def test_an_answer_that_cannot_be_written_as_json(value: Any, expected: ToolResult) -> None:
    assert sendable(ToolResult(ok=True, result=value)) == expected


async def test_an_upstreams_too_deep_answer_comes_back_as_its_text() -> None:
    def upstream(request: UpstreamRequest) -> UpstreamResponse:
        body = ('{"a": ' * 300 + "1" + "}" * 300).encode()
        return UpstreamResponse(
            status=200, headers=(("content-type", "application/json"),), body=body
        )

    config = Config.model_validate(
        {
            "servers": [{"id": "notes", "spec": "specs/demo.yaml", "base_url": "http://n.test"}],
            "base_dir": ROOT,
        }
    )
    async with Gateway(config, upstream=MockUpstream(upstream)) as gateway:
        result = await gateway.call(Principal(id="ops", admin=True), "listNotes", {})
    assert (result.ok, json.loads(result.result)) == (
        True,
        json.loads('{"a": ' * 300 + "1" + "}" * 300),
    )


pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"
