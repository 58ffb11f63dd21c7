"""What a reload changed: per source, per tool and per setting, as plain values.

Pure: two catalogs and two configs in, a `Changes` out. The reload answer, its log line and the
held diff of an `on_change: hold` source are all made of these. Secret values never appear:
settings are named by their key path only.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from toolbridge.config import Config
from toolbridge.tools import Tool

SourceChange = Literal["added", "removed", "reloaded", "unchanged", "failed", "held"]
TOOL_FIELDS = (
    "description",
    "input_schema",
    "output_schema",
    "output_promised",
    "annotations",
    "target",
)
"""What makes a tool `changed` (its notes and tags do not: a model does not see them)."""
SETTINGS = (
    ("auth", "api_keys"),
    ("auth", "jwt"),
    ("auth", "rate_limit"),
    ("auth", "metrics"),
    ("audit",),
    ("http",),
    ("state",),
    ("toolsets",),
    ("mcp",),
    ("watch",),
)
"""The key paths outside `servers` and `tools` a reload reports when they change."""
LISTED = frozenset({"auth.api_keys", "auth.jwt", "toolsets", "mcp"})
"""The settings that change what a caller's tool list holds (grants, toolsets, pages)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ToolChange:
    name: str
    fields: tuple[str, ...]
    """Which of TOOL_FIELDS differ."""
    description: tuple[str, str] | None = None
    """(before, after) when the description changed: what a person approving a change reads."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ToolChanges:
    added: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    changed: tuple[ToolChange, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.added or self.removed or self.changed)

    def as_json(self) -> dict[str, Any]:
        return {
            "added": list(self.added),
            "removed": list(self.removed),
            "changed": [_tool_change_json(c) for c in self.changed],
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class SourceOutcome:
    id: str
    change: SourceChange
    tools: int
    """Tools the source serves after the reload."""
    error: str | None = None
    """Why the source is down, or why its new version was not taken."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Changes:
    """Everything a reload changed (or would change, for a dry run)."""

    sources: tuple[SourceOutcome, ...] = ()
    tools: ToolChanges = field(default_factory=ToolChanges)
    settings: tuple[str, ...] = ()
    """Key paths of settings that changed (`auth.api_keys`, ...), never their values."""
    count: int = 0
    """Tools in the catalog after the reload."""

    @property
    def lists_changed(self) -> bool:
        """Whether a caller's tool list may read otherwise: a tool added, removed or changed,
        a source whose entry changed (its `access` decides who sees its tools), or a setting
        that decides what is listed. Listening clients are told only then: not when a reload
        changed nothing, nor when a source that was down is down still."""
        return (
            bool(self.tools)
            or any(s.change in ("added", "removed", "reloaded") for s in self.sources)
            or not LISTED.isdisjoint(self.settings)
        )

    def as_json(self) -> dict[str, Any]:
        return {
            "sources": [
                {"id": s.id, "change": s.change, "tools": s.tools, "error": s.error}
                for s in self.sources
            ],
            "tools": {"count": self.count, **self.tools.as_json()},
            "settings": list(self.settings),
        }

    def summary(self) -> str:
        """One line for the log: counts per kind of change, and the sources that failed."""
        by_kind: dict[str, list[str]] = {}
        for source in self.sources:
            by_kind.setdefault(source.change, []).append(source.id)
        parts = [f"{kind} {', '.join(ids)}" for kind, ids in by_kind.items() if kind != "unchanged"]
        tools = self.tools
        parts.append(
            f"tools +{len(tools.added)} -{len(tools.removed)} ~{len(tools.changed)} "
            f"({self.count} in all)"
        )
        if self.settings:
            parts.append(f"settings {', '.join(self.settings)}")
        return "; ".join(parts)


def tool_changes(before: Iterable[Tool], after: Iterable[Tool]) -> ToolChanges:
    """Tools added, removed and changed between two sets of tools, by name."""
    old = {tool.name: tool for tool in before}
    new = {tool.name: tool for tool in after}
    changed = []
    for name in new.keys() & old.keys():
        fields = tuple(f for f in TOOL_FIELDS if _field(old[name], f) != _field(new[name], f))
        if fields:
            description = (
                (old[name].description, new[name].description) if "description" in fields else None
            )
            changed.append(ToolChange(name=name, fields=fields, description=description))
    return ToolChanges(
        added=tuple(n for n in new if n not in old),
        removed=tuple(n for n in old if n not in new),
        changed=tuple(sorted(changed, key=lambda c: c.name)),
    )


def setting_changes(before: Config, after: Config) -> tuple[str, ...]:
    """The key paths of SETTINGS whose values differ (compared whole, reported by name)."""
    return tuple(
        ".".join(path) for path in SETTINGS if _setting(before, path) != _setting(after, path)
    )


def _setting(config: Config, path: tuple[str, ...]) -> Any:
    value: Any = config
    for part in path:
        value = getattr(value, part, None)
        if value is None:
            return None
    return value


def _field(tool: Tool, name: str) -> Any:
    if name == "target":
        # The source too: the same name now reaching another server (its credentials, its
        # upstream) is a change. Not the function object: a re-imported module's is new.
        return (tool.source, tool.where)
    return getattr(tool, name)


def _tool_change_json(change: ToolChange) -> dict[str, Any]:
    out: dict[str, Any] = {"name": change.name, "fields": list(change.fields)}
    if change.description is not None:
        out["description"] = {"before": change.description[0], "after": change.description[1]}
    return out


def source_change(
    ident: str,
    *,
    before: Mapping[str, Any] | None,
    after: Mapping[str, Any] | None,
    tools_changed: bool,
    failed: bool,
    held: bool,
    recovered: bool = False,
) -> SourceChange:
    """How one source fared: `before`/`after` are its config entries (None when absent);
    `recovered`: it was down before and is up now (reloaded, also with the same tools)."""
    if after is None:
        return "removed"
    if held:
        return "held"
    if failed:
        return "failed"
    if before is None:
        return "added"
    return "reloaded" if tools_changed or recovered or before != after else "unchanged"
