"""What a request sees, and search mode's three tools.

A `View` is what a request asks to see: the whole catalog or one toolset (`?toolset=ID`, or
the `/toolsets/{id}/...` endpoints), listed whole or through search (`?mode=search`, or the
toolset's `discovery: search`), in a client format (which `describe_tools` answers in).

In search mode a client is offered three tools instead of the catalog's thousands:

- `search_tools` (`{"query", "limit"}`): the tools that best match a task in words, as
  `{"tools": [{"name", "description"}]}` (a one-line description each);
- `describe_tools` (`{"names"}`): their full definitions in the caller's format, as
  `{"tools": [...]}`, with `not_found` for names the caller has no tool of;
- `call_tool` (`{"name", "arguments"}`): runs one, answering what that tool answers.

They see and call exactly what the caller may use in the view: the policy decides inside them as
it does everywhere (a tool the caller may not use is never found, described or run). They are
also callable outside search mode (`POST /v1/tools/search_tools/call`), unless the view has a
tool of the same name, which then wins (and which, in search mode, `call_tool` runs). The search
index is built once per generation and view (the catalog, or a toolset) on first use, in a
worker thread; what each caller may see is applied as it searches (`search.SearchIndex`).
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Mapping
from dataclasses import dataclass, replace
from functools import cache
from typing import Any, Literal, Protocol, get_args

import anyio

from toolbridge.arguments import ArgumentValidator
from toolbridge.errors import BadRequest, ToolNotFound, quoted
from toolbridge.formats.render import FORMATS, Format, render
from toolbridge.generation import Generation
from toolbridge.policy import Principal
from toolbridge.tools import Annotations, JsonObject, PythonFunction, Tool, ToolResult

Mode = Literal["list", "search"]
MODES: tuple[Mode, ...] = get_args(Mode)
SEARCH_TOOLS, DESCRIBE_TOOLS, CALL_TOOL = "search_tools", "describe_tools", "call_tool"
DEFAULT_LIMIT = 10
MAX_LIMIT = 50
"""The most tools one search answers."""
MAX_DESCRIBE = 20
"""The most tools one `describe_tools` call describes: full schemas are large."""
SUMMARY_CHARS = 160
"""A search hit's description: the first line of the tool's, cut to this."""
SOURCE = "toolbridge"
"""The `source` of the three tools: the gateway itself."""


@dataclass(frozen=True, slots=True)
class View:
    """What one request sees: a toolset or the catalog, in list or search mode, in a format."""

    toolset: str | None = None
    mode: Mode | None = None
    """None: the toolset's `discovery` (list for the whole catalog)."""
    format: Format | None = None
    """The client's format (describe_tools answers in it); None: the surface's default, openai
    on the HTTP API, the payload's own in /v1/tool_calls."""
    strict: bool = False


def parse_view(query: Mapping[str, str], *, format: Format | None = None) -> View:
    """The view a request's query parameters ask for (`toolset`, `mode`, `format`, `strict`);
    `format`, when given, is the surface's own (MCP's). Raises BadRequest for unknown values."""
    mode = query.get("mode") or None
    if mode is not None and mode not in MODES:
        raise BadRequest(f"unknown mode {mode!r}; expected one of {', '.join(MODES)}")
    fmt = format or query.get("format") or None
    if fmt is not None and fmt not in FORMATS:
        raise BadRequest(f"unknown format {fmt!r}; expected one of {', '.join(FORMATS)}")
    toolset = query.get("toolset")
    if toolset == "":  # read as none, a view meant to narrow the catalog would show all of it
        raise BadRequest("`toolset`: expected a toolset id, found an empty value")
    return View(
        toolset=toolset,
        mode=mode,
        format=fmt,
        strict=flag("strict", query.get("strict") or None),
    )


def flag(name: str, value: str | None) -> bool:
    """A yes/no query parameter: absent is no; a value neither yes nor no is refused (a
    `?dry_run=on` taken as no would do what was only to be tried)."""
    if value is None:
        return False
    if value.lower() in ("1", "true", "yes"):
        return True
    if value.lower() in ("0", "false", "no"):
        return False
    raise BadRequest(f"`{name}`: expected true or false (also 1/0, yes/no), found {value!r}")


class Call(Protocol):
    """`Gateway.call`, which `call_tool` runs the tool it names with."""

    def __call__(
        self, principal: Principal, name: str, arguments: Any, *, view: View | None = ...
    ) -> Awaitable[ToolResult]: ...


# -- what a view holds ------------------------------------------------------------------------


def view_tools(state: Generation, view: View) -> Mapping[str, Tool]:
    """The tools of the view's toolset (or of the catalog), by name; not yet by access."""
    if view.toolset is None:
        return state.catalog.tools
    toolset = state.toolsets.get(view.toolset)
    if toolset is None:
        raise ToolNotFound(f"no toolset named {quoted(view.toolset)}")
    return toolset.tools


def searching(state: Generation, view: View) -> bool:
    if view.mode is not None:
        return view.mode == "search"
    toolset = state.toolsets.get(view.toolset) if view.toolset is not None else None
    return toolset is not None and toolset.discovery == "search"


def listed(state: Generation, principal: Principal, view: View) -> list[Tool]:
    """The tools a client is offered: the three search tools in search mode, else the view's
    tools the principal may use."""
    tools = view_tools(state, view)
    if searching(state, view):
        return list(META_TOOLS)
    return [tool for tool in tools.values() if state.policy.allows(principal, tool)]


def find(state: Generation, principal: Principal, name: str, view: View) -> Tool:
    """The tool `name` for this principal in this view; ToolNotFound when there is none (or
    none they may use: the two are the same to them)."""
    tools = view_tools(state, view)
    meta = _META.get(name)
    if meta is not None and (searching(state, view) or name not in tools):
        return meta
    tool = tools.get(name)
    if tool is None or not state.policy.allows(principal, tool):
        # Names are unique whatever their case: one the caller may use, in another case?
        lowered = name.lower()
        other = next((t for n, t in tools.items() if n.lower() == lowered), None)
        if other is not None and other.name != name and state.policy.allows(principal, other):
            raise ToolNotFound(
                f"no tool named {quoted(name)} (names are case-sensitive: {other.name!r})"
            )
        raise ToolNotFound(f"no tool named {quoted(name)}")
    return tool


def is_meta(tool: Tool) -> bool:
    return tool.source == SOURCE and _META.get(tool.name) is tool


# -- the three tools --------------------------------------------------------------------------


async def call_meta(
    state: Generation,
    principal: Principal,
    tool: Tool,
    arguments: Any,
    view: View,
    call: Call,
) -> ToolResult:
    """Run one of the three search tools for a principal, in a view."""
    checked = _validator(tool.name).check(arguments)
    if tool.name == SEARCH_TOOLS:
        limit = checked.get("limit")  # JSON Schema's integer admits 5.0
        limit = int(limit) if isinstance(limit, float) else limit
        found = await search(state, principal, view, checked["query"], limit)
        return _answer({"tools": found})
    if tool.name == DESCRIBE_TOOLS:
        return _answer(describe(state, principal, view, checked["names"]))
    name = checked["name"]
    listing = replace(view, mode="list")  # the view's own tools, whatever its discovery
    try:
        if name in _META and name not in view_tools(state, listing):
            # (A tool of the view's own by that name is the one meant: search found it.)
            raise ToolNotFound(f"{quoted(name)} is one of the search tools: call it directly")
        return await call(principal, name, checked.get("arguments") or {}, view=listing)
    except ToolNotFound as exc:
        # For the model, a name that is wrong is an answer it can act on: search again.
        text = f"{exc}; search_tools finds the tools there are"
        return ToolResult(ok=False, content_type="application/json", result={"error": text})


async def search(
    state: Generation, principal: Principal, view: View, query: str, limit: int | None
) -> list[JsonObject]:
    """The best tools of the view for a task, among those the principal may use."""
    tools = view_tools(state, view)
    key = view.toolset
    index = await anyio.to_thread.run_sync(state.search.index, key, lambda: list(tools.values()))
    visible = None
    if not principal.admin:
        who = (key, principal.id, principal.groups)
        visible = state.search.visible(
            who,
            lambda: (i for i, t in enumerate(index.tools) if state.policy.allows(principal, t)),
        )
    hits = index.search(query, limit or DEFAULT_LIMIT, visible)
    return [
        {"name": index.tools[hit.position].name, "description": summary(index.tools[hit.position])}
        for hit in hits
    ]


def describe(state: Generation, principal: Principal, view: View, names: list[str]) -> JsonObject:
    """The full definitions of the named tools in the view's format, and the names not found."""
    listing = replace(view, mode="list")
    described, missing = [], []
    for name in dict.fromkeys(names):
        try:
            tool = find(state, principal, name, listing)
        except ToolNotFound:
            missing.append(name)
            continue
        described.append(render(tool, view.format or "openai", strict=view.strict))
    answer: JsonObject = {"tools": described}
    if missing:
        answer["not_found"] = missing
    return answer


_TAG = re.compile(r"<[^>]*>")


def summary(tool: Tool) -> str:
    """A tool's description in one line: its first, HTML tags dropped, cut to SUMMARY_CHARS."""
    line = _TAG.sub("", tool.description.strip().split("\n", 1)[0]).strip()
    if len(line) <= SUMMARY_CHARS:
        return line
    cut = line[: SUMMARY_CHARS - 1]
    space = cut.rfind(" ", SUMMARY_CHARS // 2)
    return (cut[:space] if space > 0 else cut).rstrip() + "\u2026"


def _answer(result: JsonObject) -> ToolResult:
    return ToolResult(ok=True, content_type="application/json", result=result)


@cache
def _validator(name: str) -> ArgumentValidator:
    return ArgumentValidator(_META[name])


def _meta(name: str, description: str, schema: JsonObject, *, read_only: bool) -> Tool:
    return Tool(
        name=name,
        original_name=name,
        description=description,
        input_schema={"type": "object", **schema, "additionalProperties": False},
        annotations=Annotations(read_only=read_only, idempotent=read_only, open_world=False),
        source=SOURCE,
        target=PythonFunction(tool_id=SOURCE, function=name, func=None, arguments_model=None),
    )


META_TOOLS: tuple[Tool, ...] = (
    _meta(
        SEARCH_TOOLS,
        "Find the tools for a task. Give the task in a few words; get the names and one-line "
        "descriptions of the best matching tools. Then get their parameters with "
        "describe_tools and run one with call_tool.",
        {
            "properties": {
                "query": {
                    "type": "string",
                    "minLength": 1,
                    "maxLength": 1000,
                    "description": "The task, in words: 'create an issue in a GitHub repository'",
                },
                "limit": {
                    "type": "integer",
                    "minimum": 1,
                    "maximum": MAX_LIMIT,
                    "description": f"How many tools at most (default {DEFAULT_LIMIT})",
                },
            },
            "required": ["query"],
        },
        read_only=True,
    ),
    _meta(
        DESCRIBE_TOOLS,
        "Get the full definitions (description and parameter schema) of tools by name.",
        {
            "properties": {
                "names": {
                    "type": "array",
                    "items": {"type": "string"},
                    "minItems": 1,
                    "maxItems": MAX_DESCRIBE,
                    "description": "Tool names, as search_tools found them",
                }
            },
            "required": ["names"],
        },
        read_only=True,
    ),
    _meta(
        CALL_TOOL,
        "Run a tool by name. Its arguments must fit the parameter schema describe_tools gave.",
        {
            "properties": {
                "name": {"type": "string", "minLength": 1, "description": "The tool's name"},
                # Open, and saying so: clients that make schemas strict (pydantic-ai, even when
                # not strict) close an object that does not, to one that holds nothing.
                "arguments": {
                    "type": "object",
                    "additionalProperties": True,
                    "description": "The tool's arguments",
                },
            },
            "required": ["name"],
        },
        read_only=False,
    ),
)
"""search_tools, describe_tools and call_tool, as every format renders them."""
_META = {tool.name: tool for tool in META_TOOLS}
