"""Checking a successful answer against the tool's output schema, to count the ones that differ.

APIs do not always answer as their documents say (chromadb's metadata values, say, are documented as
`oneOf` kinds that overlap). A successful answer is never turned into an error for that: the gateway
passes it on as the upstream gave it, counts the mismatch (`toolbridge_output_mismatches_total`),
notes it in the call log, and warns once per tool and catalog, and not again for the same tool and
schema in a later catalog (`Reported`). The check reads `oneOf` as `anyOf`, as argument validation
does, and so does the `outputSchema` a server's `output_schema: publish` promises MCP clients
(`formats.render`).

A mismatch is described by where it is and which keyword failed (`$.items[0].count: type`),
never by the value found there: answers may hold anything.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from typing import Any

import jsonschema_rs

from toolbridge import json_text
from toolbridge import schemas as js
from toolbridge.tools import Tool, ToolResult

MAX_REPORTED = 10_000
"""Tools (by name and output schema) a process remembers having warned about."""


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


class Reported:
    """Which tools' mismatches were logged, across catalogs: by name and output schema. A
    reload that keeps a tool as it was does not warn of it again (a busy admin API, or a watched
    folder, reloads every few seconds: each catalog warned anew, thousands of lines an hour);
    a tool whose schema changed is warned of anew. At most MAX_REPORTED, the oldest forgotten."""

    def __init__(self) -> None:
        self._seen: OrderedDict[tuple[str, str], None] = OrderedDict()

    def first(self, check: OutputCheck, tool: Tool) -> bool:
        """Whether this mismatch is the first of `tool` to warn of (in this catalog, `check`
        says; then across catalogs, by the schema's digest)."""
        if check.reported:
            return False
        check.reported = True
        schema = json_text.dumps(tool.output_schema)
        key = (tool.name, hashlib.sha256(schema).hexdigest())
        if key in self._seen:
            return False
        self._seen[key] = None
        if len(self._seen) > MAX_REPORTED:
            self._seen.popitem(last=False)
        return True
