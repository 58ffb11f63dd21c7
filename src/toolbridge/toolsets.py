"""Toolsets: named parts of the catalog (`toolsets:` in the config), and what `check` says of them.

A toolset holds the tools that match its `include` (every criterion given must match, any of
its values: sources, tags, methods, tool-name globs), in catalog order, with the descriptions
its `descriptions` replace. It is served as its own MCP endpoint and OpenAPI document, and as
`?toolset=ID` on the HTTP API; `discovery: search` serves it through the three search tools.
Access control is the policy's, inside a toolset as outside: a toolset only narrows.

A toolset is built per catalog (a reload builds them again). An include that names an unknown
source, or a criterion that matches nothing, is not an error (a source may be down, a document
may change): `findings` reports it, for `toolbridge check` and the log.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any, Literal

from toolbridge import schemas as js
from toolbridge.budgets import entry_names
from toolbridge.config import Config, Server, ToolsetInclude
from toolbridge.config import Toolset as ToolsetConfig
from toolbridge.registry import Catalog
from toolbridge.tools import HttpOperation, Tool


@dataclass(frozen=True, slots=True, kw_only=True)
class Toolset:
    """One toolset of a catalog: its tools by name, in catalog order."""

    id: str
    description: str
    discovery: Literal["list", "search"]
    tools: Mapping[str, Tool]
    """The tools it holds, each with the description the toolset gives it."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Finding:
    """Something in a toolset (or a server's `tools`) that selects nothing, said for `check`."""

    where: tuple[str | int, ...]
    """The key path in the config: ("toolsets", 0, "include", "sources", 1)."""
    message: str

    @property
    def path(self) -> str:
        return dotted(self.where)


def build_toolsets(config: Config, catalog: Catalog) -> dict[str, Toolset]:
    """Every toolset of the config over this catalog, by id."""
    return {entry.id: _build(entry, catalog) for entry in config.toolsets}


MAX_TITLE = 120
"""A title made of an override's first line, at most (a display name, not a description)."""


def described(tool: Tool, text: str) -> Tool:
    """`tool` as a toolset describes it: its description, and a title to match (MCP shows
    it): the description's first line when short, else none (clients show the name)."""
    text = js.clean_text(text)[0]  # as a document's: invisible characters out, 1,024 at most
    first = text.split("\n", 1)[0].strip()
    title = first if 0 < len(first) <= MAX_TITLE else None
    return replace(tool, description=text, annotations=replace(tool.annotations, title=title))


def _build(entry: ToolsetConfig, catalog: Catalog) -> Toolset:
    tools: dict[str, Tool] = {}
    for tool in catalog:
        if matches(entry.include, tool):
            text = entry.descriptions.get(tool.name)
            tools[tool.name] = tool if text is None else described(tool, text)
    return Toolset(
        id=entry.id, description=entry.description, discovery=entry.discovery, tools=tools
    )


def matches(include: ToolsetInclude, tool: Tool) -> bool:
    """Whether a tool is in a toolset: every criterion given matches (any of its values)."""
    if include.sources and tool.source not in include.sources:
        return False
    if include.tags and not set(include.tags) & set(tool.tags):
        return False
    if include.methods and method(tool) not in include.methods:
        return False
    return not include.tools or any(fnmatch.fnmatchcase(tool.name, g) for g in include.tools)


def method(tool: Tool) -> str:
    """A tool's HTTP method; a local tool's is POST, or GET when it is marked read-only."""
    if isinstance(tool.target, HttpOperation):
        return tool.target.method
    return "GET" if tool.annotations.read_only else "POST"


def findings(config: Config, catalog: Catalog) -> list[Finding]:
    """What in `toolsets` (and in servers' per-tool `tools` settings) selects nothing."""
    sources = [s.id for s in config.servers] + [t.id for t in config.tools]
    found: list[Finding] = []
    for index, entry in enumerate(config.toolsets):
        at: tuple[str | int, ...] = ("toolsets", index)
        include = entry.include
        for i, source in enumerate(include.sources):
            if source not in sources:
                known = ", ".join(sources) or "none"
                found.append(
                    Finding(
                        where=(*at, "include", "sources", i),
                        message=f"no source {source!r} in the config (sources: {known})",
                    )
                )
        pool = [t for t in catalog if not include.sources or t.source in include.sources]
        checks: list[tuple[str, Iterable[Any], Any]] = [
            ("tags", include.tags, lambda t, v: v in t.tags),
            ("methods", include.methods, lambda t, v: method(t) == v),
            ("tools", include.tools, lambda t, v: fnmatch.fnmatchcase(t.name, v)),
        ]
        for key, values, test in checks:
            for i, value in enumerate(values):
                if not any(test(tool, value) for tool in pool):
                    found.append(
                        Finding(
                            where=(*at, "include", key, i),
                            message=f"{value!r} matches no tool of the selected sources",
                        )
                    )
        selected = _build(entry, catalog).tools
        for name, text in entry.descriptions.items():
            if name not in selected:
                message = f"no tool {name!r} in toolset {entry.id!r}"
            elif js.clean_text(text)[1]:
                message = (
                    f"the description is {len(text):,} characters; its clients get the first "
                    f"{js.MAX_DESCRIPTION:,}, as of a document's"
                )
            else:
                continue
            found.append(Finding(where=(*at, "descriptions", name), message=message))
        if not selected:
            found.append(Finding(where=at, message=f"toolset {entry.id!r} holds no tools"))
    for index, server in enumerate(config.servers):
        found += _tool_entries(index, server, [t for t in catalog if t.source == server.id])
    return found


def _tool_entries(index: int, server: Server, tools: list[Tool]) -> list[Finding]:
    """A server's `tools:` entries that name no tool, or a tool another entry names too (by
    its name and by its operationId: one is used, whole, as `budgets.entry_names` orders them)."""
    if not tools:  # a source that is down: check says so
        return []
    found: list[Finding] = []
    by_name: dict[str, Tool] = {}
    for tool in tools:
        for name in entry_names(tool)[1:]:
            by_name.setdefault(name, tool)
    by_name.update((tool.name, tool) for tool in tools)  # a name wins over another's operationId
    entries: dict[str, list[str]] = {}
    for name in server.tools:
        named = by_name.get(name)
        if named is None:
            message = f"no tool named {name!r} (by name or operationId) in {server.id!r}"
            found.append(Finding(where=("servers", index, "tools", name), message=message))
        else:
            entries.setdefault(named.name, []).append(name)
    for name, given in entries.items():
        if len(given) > 1:
            used = next(n for n in entry_names(by_name[name]) if n in given)
            others = ", ".join(repr(n) for n in given if n != used)
            found.append(
                Finding(
                    where=("servers", index, "tools", used),
                    message=f"{others} names the same tool as {used!r}; only the entry "
                    f"{used!r} is used",
                )
            )
    return found


def dotted(where: tuple[str | int, ...]) -> str:
    """A key path as the config file writes it: toolsets[0].include.sources[1]."""
    out = ""
    for part in where:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out
