"""How the HTTP API shows a tool, a source and a filter: plain JSON values, never a secret."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from toolbridge.filters.loader import FilterStatus
from toolbridge.generation import Held
from toolbridge.registry import SourceStatus
from toolbridge.tools import HttpOperation, Tool


def describe(tool: Tool, frontmatter: Mapping[str, str] | None = None) -> dict[str, Any]:
    """A tool in canonical form, as `GET /v1/tools/{name}` answers."""
    target = tool.target
    if isinstance(target, HttpOperation):
        source: dict[str, Any] = {
            "kind": "openapi",
            "server": target.server,
            "method": target.method,
            "path": target.path,
            "operation_id": target.operation_id,
        }
    else:
        source = {"kind": "python", "tool": target.tool_id, "function": target.function}
        if frontmatter:
            source["frontmatter"] = dict(frontmatter)
    annotations = tool.annotations
    return {
        "name": tool.name,
        "description": tool.description,
        "input_schema": tool.input_schema,
        "output_schema": tool.output_schema,
        "annotations": {
            "title": annotations.title,
            "readOnlyHint": annotations.read_only,
            "destructiveHint": annotations.destructive,
            "idempotentHint": annotations.idempotent,
            "openWorldHint": annotations.open_world,
        },
        "source": source,
        "original_name": tool.original_name,
        "deprecated": tool.deprecated,
        "notes": [{"kind": n.kind, "message": n.message} for n in tool.notes],
    }


def describe_source(
    status: SourceStatus, held: Held | None = None, *, usable: int | None = None
) -> dict[str, Any]:
    """A source as `GET /v1/servers` lists it; `usable`, how many of its tools the caller may
    use (None: all of them, for an admin): a grant to some of them tells no more."""
    conversion = status.conversion
    described: dict[str, Any] = {
        "id": status.id,
        "kind": status.kind,
        "location": status.location,
        "status": "ok" if status.ok else "error",
        "error": status.error,
        "tools": usable if usable is not None else len(conversion.tools) if conversion else 0,
        "spec_version": getattr(conversion, "spec_version", None),
        "loaded_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(status.loaded_at)),
        "sha256": status.digest,
        "notes": [
            {"kind": n.kind, "message": n.message, "where": n.where}
            for n in (conversion.notes if conversion is not None else ())
        ],
    }
    if held is not None:
        described["held"] = {
            "sha256": held.digest,
            "approved_sha256": held.approved_digest,
            "tools": held.changes.as_json(),
        }
    return described


def describe_filter(status: FilterStatus) -> dict[str, Any]:
    """A filter entry as `GET /v1/servers` lists it under `filters`."""
    loaded = status.filter
    entry = status.entry
    warnings = loaded.warnings if loaded is not None else ()
    return {
        "id": entry.id,
        "location": status.location,
        "status": "error" if status.error is not None else "warning" if warnings else "ok",
        "error": status.error,
        "warnings": list(warnings),
        "switched_off": loaded is not None and loaded.off,
        "priority": loaded.priority if loaded is not None else entry.priority,
        "required": entry.required,
        "sources": list(entry.sources),
        "tools": list(entry.tools),
        "loaded_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(status.loaded_at)),
    }
