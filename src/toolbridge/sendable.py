"""A call's answer made sendable as JSON, whatever the tool, its upstream or a filter left in it.

Every surface (the HTTP envelope, `/v1/tool_calls`, MCP) writes a result as JSON. Some values
cannot be written so: JSON nested deeper than the encoder goes (`MAX_DEPTH`; an upstream may
answer such, and it parses), or what a local tool or a filter's outlet put there that is no
JSON at all (a set, an object referring to itself). Such an answer becomes, once, here:

- too deep, but JSON: its JSON text, as a string (nothing of it is lost);
- not JSON: an error result saying why (`ok` false), not a failed request.

Trusts nothing of the value: it comes from upstreams, tool files and filters.
"""

from __future__ import annotations

from dataclasses import replace

import orjson

from toolbridge.json_text import json_text
from toolbridge.tools import ToolResult

MAX_DEPTH = 254
"""How deep orjson writes JSON (it refuses deeper); `json_text` writes any depth."""
ENVELOPE_DEPTH = 8
"""Levels a surface may wrap a result in (the HTTP envelope 1, `/v1/tool_calls` 3, MCP's
`structuredContent` 2, with room to spare): a value goes as JSON when it is this much shallower
than MAX_DEPTH, else as its text."""


def sendable(result: ToolResult) -> ToolResult:
    """`result`, or one that can be written as JSON (see the module)."""
    value = result.result
    if value is None or isinstance(value, str | float | bool):
        return result
    if isinstance(value, int) and -(2**63) <= value < 2**64:  # what orjson writes
        return result
    wrapped = value
    for _ in range(ENVELOPE_DEPTH):
        wrapped = [wrapped]
    try:
        orjson.dumps(wrapped, option=orjson.OPT_NON_STR_KEYS)
        return result
    except orjson.JSONEncodeError as exc:
        problem = str(exc)
    try:
        text = json_text(value)
    except (TypeError, ValueError) as exc:
        reason = "it refers to itself" if "Circular" in str(exc) else _plain(problem, exc)
        return ToolResult(
            ok=False,
            status=result.status,
            content_type="text/plain",
            result=f"the tool's answer cannot be sent as JSON: {reason}",
        )
    return replace(result, result=text, text_form="json")


def _plain(problem: str, exc: BaseException) -> str:
    if isinstance(exc, RecursionError):
        return "it is nested too deep"
    return problem if "not JSON serializable" in problem else str(exc)
