"""Views through the gateway: toolsets, search mode's three tools, and access inside both.

The gateway serves the demo notes document; alice may use its GET operations, bob nothing of
it, ops (an admin) everything. The upstream is a `MockUpstream` that answers every call.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from toolbridge.config import Config
from toolbridge.discovery import META_TOOLS, View, parse_view, summary
from toolbridge.errors import BadRequest, InvalidArguments, ToolNotFound
from toolbridge.formats.render import render
from toolbridge.gateway import Gateway
from toolbridge.policy import Principal
from toolbridge.tools import ToolResult
from toolbridge.upstream.seam import MockUpstream, UpstreamRequest, UpstreamResponse

pytestmark = pytest.mark.anyio

ROOT = Path(__file__).resolve().parents[1]
ALICE = Principal(id="alice")
BOB = Principal(id="bob")
OPS = Principal(id="ops", admin=True)
NOTES = [{"id": 1, "title": "Welcome"}]
CONFIG = Config.model_validate(
    {
        "servers": [
            {
                "id": "notes",
                "spec": "specs/demo.yaml",
                "base_url": "http://notes.test",
                "access": {"users": ["alice"], "methods": ["GET"]},
            }
        ],
        "toolsets": [
            {
                "id": "reading",
                "description": "Reading notes",
                "include": {"sources": ["notes"], "methods": ["GET"]},
                "descriptions": {"listNotes": "Every note, newest first."},
            },
            {"id": "finder", "include": {"sources": ["notes"]}, "discovery": "search"},
        ],
        "base_dir": ROOT,
    }
)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def upstream(request: UpstreamRequest) -> UpstreamResponse:
    body = json.dumps(NOTES if request.method == "GET" else {"id": 2}).encode()
    headers = (("content-type", "application/json"),)
    return UpstreamResponse(
        status=200 if request.method == "GET" else 201, headers=headers, body=body
    )


@pytest.fixture
async def gateway(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Gateway]:
    monkeypatch.chdir(ROOT)
    async with Gateway(CONFIG, upstream=MockUpstream(upstream)) as found:
        yield found


def names(tools: Any) -> list[str]:
    return [tool.name for tool in tools]


async def test_a_toolset_holds_what_its_include_selects_with_its_descriptions(
    gateway: Gateway,
) -> None:
    reading = gateway.list_tools(OPS, View(toolset="reading"))
    assert names(reading) == ["listNotes", "getNote", "getStatus"]
    assert reading[0].description == "Every note, newest first."
    assert gateway.catalog.get("listNotes") is not None
    assert gateway.catalog.tools["listNotes"].description != "Every note, newest first."


@pytest.mark.parametrize(
    ("principal", "view", "expected"),
    [
        (ALICE, View(), ["listNotes", "getNote", "getStatus"]),
        (ALICE, View(toolset="reading"), ["listNotes", "getNote", "getStatus"]),
        (ALICE, View(toolset="finder", mode="list"), ["listNotes", "getNote", "getStatus"]),
        (BOB, View(toolset="reading"), []),
        (OPS, View(toolset="finder", mode="list"), [
            "listNotes", "createNote", "getNote", "deleteNote", "updateNote", "getStatus",
        ]),
        (BOB, View(toolset="finder"), ["search_tools", "describe_tools", "call_tool"]),
        (ALICE, View(mode="search"), ["search_tools", "describe_tools", "call_tool"]),
    ],
)  # fmt: skip
async def test_access_applies_inside_a_toolset_as_outside(
    gateway: Gateway, principal: Principal, view: View, expected: list[str]
) -> None:
    assert names(gateway.list_tools(principal, view)) == expected


async def test_an_unknown_toolset_is_not_found(gateway: Gateway) -> None:
    with pytest.raises(ToolNotFound, match="no toolset named 'nope'"):
        gateway.list_tools(OPS, View(toolset="nope"))


async def test_a_call_in_a_toolset_finds_only_the_toolsets_tools(gateway: Gateway) -> None:
    with pytest.raises(ToolNotFound, match="no tool named 'createNote'"):
        await gateway.call(OPS, "createNote", {"title": "x"}, view=View(toolset="reading"))
    result = await gateway.call(OPS, "listNotes", {}, view=View(toolset="reading"))
    assert (result.ok, result.result) == (True, NOTES)


async def test_a_name_in_another_case_says_the_name_only_to_who_may_use_it(
    gateway: Gateway,
) -> None:
    with pytest.raises(ToolNotFound) as alice:
        await gateway.call(ALICE, "listnotes", {})
    with pytest.raises(ToolNotFound) as bob:
        await gateway.call(BOB, "listnotes", {})
    assert (str(alice.value), str(bob.value)) == (
        "no tool named 'listnotes' (names are case-sensitive: 'listNotes')",
        "no tool named 'listnotes'",
    )


async def search(gateway: Gateway, who: Principal, query: str, view: View) -> Any:
    result = await gateway.call(who, "search_tools", {"query": query, "limit": 10}, view=view)
    assert result.ok
    return result.result


async def test_search_finds_the_callers_tools_with_one_line_descriptions(
    gateway: Gateway,
) -> None:
    found = await search(gateway, ALICE, "read one note", View(toolset="finder"))
    assert found == {
        "tools": [
            {"name": "getNote", "description": "Get one note"},
            {"name": "listNotes", "description": "List notes"},
            {"name": "getStatus", "description": "Service status"},
        ]
    }


CANARY = "deleteNote"
"""A tool alice may not use: nothing of it may reach her, by any of the three tools, but the
name she gave herself, treated as the name of no tool."""


@pytest.mark.parametrize(
    ("tool", "arguments"),
    [
        ("search_tools", {"query": "delete a note", "limit": 50}),
        ("describe_tools", {"names": [CANARY, "noSuchTool"]}),
        ("call_tool", {"name": CANARY, "arguments": {"noteId": 1}}),
    ],
)
@pytest.mark.parametrize("view", [View(mode="search"), View(toolset="finder")])
async def test_a_tool_the_caller_may_not_use_does_not_exist_for_them_in_search_mode(
    gateway: Gateway, tool: str, arguments: dict[str, Any], view: View
) -> None:
    result = await gateway.call(ALICE, tool, arguments, view=view)
    answer = json.dumps(result.result)
    assert ("Delete a note" in answer, "DELETE" in answer) == (False, False)
    if tool == "search_tools":
        assert CANARY not in answer
    if tool == "describe_tools":
        assert result.result == {"tools": [], "not_found": [CANARY, "noSuchTool"]}
    if tool == "call_tool":
        unknown = await gateway.call(ALICE, tool, {"name": "noSuchTool"}, view=view)
        assert result.result == {
            "error": f"no tool named {CANARY!r}; search_tools finds the tools there are"
        }
        assert unknown.result == {
            "error": "no tool named 'noSuchTool'; search_tools finds the tools there are"
        }


async def test_describe_answers_in_the_callers_format(gateway: Gateway) -> None:
    view = View(toolset="reading", mode="search", format="anthropic")
    result = await gateway.call(ALICE, "describe_tools", {"names": ["listNotes"]}, view=view)
    listed = gateway.list_tools(ALICE, View(toolset="reading"))[0]
    assert result.result == {"tools": [render(listed, "anthropic")]}
    assert result.result["tools"][0]["description"] == "Every note, newest first."


async def test_call_tool_answers_what_the_tool_answers(gateway: Gateway) -> None:
    via = await gateway.call(
        ALICE, "call_tool", {"name": "listNotes", "arguments": {}}, view=View(mode="search")
    )
    direct = await gateway.call(ALICE, "listNotes", {})
    assert (
        via
        == direct
        == ToolResult(ok=True, status=200, content_type="application/json", result=NOTES)
    )


async def test_the_search_tools_are_callable_outside_search_mode(gateway: Gateway) -> None:
    found = await search(gateway, OPS, "remove a note", View())
    assert found["tools"][0] == {"name": "deleteNote", "description": "Delete a note"}
    whole = await gateway.call(OPS, "search_tools", {"query": "remove a note", "limit": 2.0})
    assert (whole.ok, len(whole.result["tools"])) == (True, 2)  # JSON Schema's integer: 2.0
    assert names([gateway.tool(ALICE, "call_tool")]) == ["call_tool"]


@pytest.mark.parametrize(
    ("tool", "arguments", "problems"),
    [
        ("search_tools", {}, [("$", '"query" is a required property')]),
        ("search_tools", {"query": "x", "limit": 500}, [
            ("$.limit", "500 is greater than the maximum of 50"),
        ]),
        ("describe_tools", {"names": []}, [("$.names", "[] has less than 1 item")]),
        ("call_tool", {"name": "listNotes", "extra": 1}, [
            ("$", 'Additional properties are not allowed (\'extra\' was unexpected)'),
        ]),
    ],
)  # fmt: skip
async def test_the_search_tools_check_their_arguments(
    gateway: Gateway, tool: str, arguments: dict[str, Any], problems: list[tuple[str, str]]
) -> None:
    with pytest.raises(InvalidArguments) as raised:
        await gateway.call(ALICE, tool, arguments, view=View(mode="search"))
    assert raised.value.problems == problems


def test_a_view_comes_from_query_parameters() -> None:
    assert parse_view({"toolset": "t", "mode": "search", "format": "gemini"}) == View(
        toolset="t", mode="search", format="gemini"
    )
    assert parse_view({}, format="mcp") == View(format="mcp")
    with pytest.raises(BadRequest, match="unknown mode 'find'; expected one of list, search"):
        parse_view({"mode": "find"})
    with pytest.raises(BadRequest, match="unknown format 'xml'"):
        parse_view({"format": "xml"})
    assert [parse_view({"strict": v}).strict for v in ("true", "1", "yes", "false", "0", "")] == [
        True,
        True,
        True,
        False,
        False,
        False,
    ]
    # A typo is said, not taken for no (strict schemas are what a client then relies on).
    with pytest.raises(BadRequest) as raised:
        parse_view({"strict": "ture"})
    assert str(raised.value) == "`strict`: expected true or false (also 1/0, yes/no), found 'ture'"


def test_a_hits_description_is_one_line_without_markup() -> None:
    tool = META_TOOLS[0]
    long = "<p>Creates a <b>customer</b>.</p> " + "word " * 60 + "\nmore"
    assert summary(replace(tool, description="<p>Creates a customer.</p>\nmore")) == (
        "Creates a customer."
    )
    cut = summary(replace(tool, description=long))
    assert (
        cut.startswith("Creates a customer. word"),
        cut.endswith("\u2026"),
        len(cut) <= 160,
    ) == (
        True,
        True,
        True,
    )


CLASHING = """\
openapi: 3.0.3
info: {title: Clash, version: "1"}
paths:
  /search:
    get:
      operationId: search_tools
      summary: Upstream search of items
      responses: {"200": {description: found}}
"""


async def test_a_tool_of_the_view_named_as_a_search_tool_is_called_through_call_tool(
    tmp_path: Path,
) -> None:
    """Search mode finds and describes it, so `call_tool` runs it; called directly in search
    mode, the name is the gateway's search."""
    (tmp_path / "clash.yaml").write_text(CLASHING)
    config = Config.model_validate(
        {
            "servers": [{"id": "clash", "spec": "clash.yaml", "base_url": "http://clash.test"}],
            "base_dir": tmp_path,
        }
    )
    async with Gateway(config, upstream=MockUpstream(upstream)) as gateway:
        search_mode = View(mode="search")
        direct = await gateway.call(OPS, "search_tools", {})  # outside search mode: its own
        via = await gateway.call(
            OPS, "call_tool", {"name": "search_tools", "arguments": {}}, view=search_mode
        )
        meta = await gateway.call(OPS, "search_tools", {"query": "items"}, view=search_mode)
    assert (direct.result, via.result, meta.result) == (
        NOTES,
        NOTES,
        {"tools": [{"name": "search_tools", "description": "Upstream search of items"}]},
    )
