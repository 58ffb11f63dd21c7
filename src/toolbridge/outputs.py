"""Checking a successful answer against the tool's output schema, to count the ones that differ.

APIs do not always answer as their documents say (chromadb's metadata values, say, are
documented as `oneOf` kinds that overlap). A successful answer is never turned into an error
for that: the gateway passes it on as the upstream gave it, counts the mismatch
(`toolbridge_output_mismatches_total`), notes it in the call log, and warns once per tool and
catalog. The check reads `oneOf` as `anyOf`, as argument validation does, and so does the
`outputSchema` a server's `output_schema: publish` promises MCP clients (`formats.render`).

A mismatch is described by where it is and which keyword failed (`$.items[0].count: type`),
never by the value found there: answers may hold anything.
"""

from __future__ import annotations

from typing import Any

import jsonschema_rs

from toolbridge import schemas as js
from toolbridge.tools import Tool, ToolResult


class OutputCheck:
    """The compiled output schema of one tool (None: the tool has none, nothing to check)."""

    def __init__(self, tool: Tool) -> None:
        schema = tool.output_schema
        self._validator = (
            jsonschema_rs.validator_for(js.one_of_as_any_of(schema)) if schema else None
        )
        self.reported = False
        """Whether this tool's first mismatch was logged (once per tool and catalog)."""

    def mismatch(self, result: ToolResult) -> str | None:
        """Where and how a successful answer differs from the schema; None when it fits (or
        when there is nothing to check: no schema, a failed call, a cut answer)."""
        if self._validator is None or not result.ok or result.truncated:
            return None
        if not is_json(result) or result.result is None:
            return f"$: expected JSON, found {_kind(result)}"
        # `validate` stops at the first error; `iter_errors` builds them all before the first
        # comes (a 4 MB answer of 200,000 mismatching items: a second and more of the loop).
        try:
            self._validator.validate(result.result)
        except jsonschema_rs.ValidationError as error:
            return _where(error)
        return None


def _where(error: jsonschema_rs.ValidationError) -> str:
    where = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in error.instance_path)
    keyword = next((str(p) for p in reversed(error.schema_path) if isinstance(p, str)), "")
    return f"${where}: {keyword or 'schema'}"


def is_json(result: ToolResult) -> bool:
    """A JSON answer: a JSON content type, or none (local tools' values, sniffed JSON)."""
    mime = (result.content_type or "").split(";")[0].strip().lower()
    return not mime or mime == "application/json" or mime.endswith(("+json", "/json"))


def _kind(result: ToolResult) -> str:
    value: Any = result.result
    if value is None:
        return "no content"
    if isinstance(value, str):
        return "text"
    return f"{result.content_type} content"
