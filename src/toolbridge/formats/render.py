"""Render a canonical `Tool` as the tool spec each client format expects.

One small function per format; the schema surgery a provider needs lives in its dialect module
(`openai_dialect`, `anthropic_dialect`, `gemini_dialect`). Nothing here does I/O. Rendered dicts
may share parts with the tool (its schemas are shared, read-only values), so treat them as
read-only too.
"""

from __future__ import annotations

from typing import Literal, assert_never

from toolbridge import schemas as js
from toolbridge.formats.anthropic_dialect import for_anthropic
from toolbridge.formats.gemini_dialect import for_gemini
from toolbridge.formats.openai_dialect import for_openai, for_openai_strict, with_array_items
from toolbridge.tools import JsonObject, JsonSchema, Tool

Format = Literal["openai", "openai-responses", "anthropic", "gemini", "mcp"]
FORMATS: tuple[Format, ...] = ("openai", "openai-responses", "anthropic", "gemini", "mcp")

MAX_DESCRIPTION = 1024
"""The longest tool description OpenAI accepts; Anthropic and Gemini get the same cut."""


def render(tool: Tool, fmt: Format, *, strict: bool = False) -> JsonObject:
    """The tool as one entry of a `tools` list in `fmt`.

    `strict` asks for OpenAI's strict mode (openai and openai-responses only); a tool whose
    schema has no strict form is rendered with `strict: false`.
    """
    match fmt:
        case "openai":
            return _openai(tool, strict)
        case "openai-responses":
            return _openai_responses(tool, strict)
        case "anthropic":
            return _anthropic(tool)
        case "gemini":
            return _gemini(tool)
        case "mcp":
            return _mcp(tool)
        case _:
            assert_never(fmt)


def render_tools(tools: list[Tool], fmt: Format, *, strict: bool = False) -> list[JsonObject]:
    return [render(tool, fmt, strict=strict) for tool in tools]


def _openai(tool: Tool, strict: bool) -> JsonObject:
    function = _function(tool, strict)
    if not strict:
        del function["strict"]  # Chat Completions defaults to non-strict
    return {"type": "function", "function": function}


def _openai_responses(tool: Tool, strict: bool) -> JsonObject:
    # The Responses API defaults `strict` to true, so it is always spelled out.
    return {"type": "function", **_function(tool, strict)}


def _function(tool: Tool, strict: bool) -> JsonObject:
    parameters = for_openai_strict(tool.input_schema) if strict else None
    return {
        "name": tool.name,
        "description": _short(tool.description),
        "parameters": for_openai(tool.input_schema) if parameters is None else parameters,
        "strict": parameters is not None,
    }


def _anthropic(tool: Tool) -> JsonObject:
    return {
        "name": tool.name,
        "description": _short(tool.description),
        "input_schema": for_anthropic(tool.input_schema),
    }


def _gemini(tool: Tool) -> JsonObject:
    declaration: JsonObject = {"name": tool.name, "description": _short(tool.description)}
    parameters = for_gemini(tool.input_schema)
    if parameters is not None:  # Gemini rejects an OBJECT without properties
        declaration["parameters"] = parameters
    return declaration


def _mcp(tool: Tool) -> JsonObject:
    notes = tool.annotations
    title = notes.title or tool.name
    out: JsonObject = {
        "name": tool.name,
        "title": title,
        "description": tool.description,
        # MCP clients hand tools to any model, OpenAI's included: arrays carry `items`.
        "inputSchema": with_array_items(tool.input_schema),
    }
    output = promised_output(tool)
    if output is not None:
        out["outputSchema"] = output
    out["annotations"] = {
        "title": title,
        "readOnlyHint": notes.read_only,
        "destructiveHint": notes.destructive,
        "idempotentHint": notes.idempotent,
        "openWorldHint": notes.open_world,
    }
    return out


def promised_output(tool: Tool) -> JsonSchema | None:
    """The `outputSchema` MCP clients are given for a tool, or None.

    MCP's structuredContent is an object, so only an object schema can describe it; and it is
    a promise clients hold the answers to (the `mcp` SDKs refuse a result that breaks it), so
    only where answers are known to keep it. Promised as the gateway checks answers
    (outputs.py): `oneOf` read as `anyOf`.
    """
    promised = js.one_of_as_any_of(tool.output_schema) if tool.output_promised else None
    return _object_root(promised)


def promises_output(tool: Tool) -> bool:
    """Whether MCP clients are given an `outputSchema` for the tool (`promised_output`), found
    without building it: on a call's path."""
    return tool.output_promised and _object_root(tool.output_schema) is not None


def _object_root(schema: JsonSchema | None) -> JsonSchema | None:
    """The schema with an object at its root: a root `$ref` to an object definition is inlined."""
    if schema is None:
        return None
    if schema.get("type") == "object":
        return schema
    ref = schema.get("$ref")
    defs = schema.get("$defs")
    if isinstance(ref, str) and ref.startswith("#/$defs/") and isinstance(defs, dict):
        target = defs.get(ref.removeprefix("#/$defs/"))
        if isinstance(target, dict) and target.get("type") == "object":
            siblings = {k: v for k, v in schema.items() if k not in ("$ref", "$defs")}
            return {**target, **siblings, "$defs": defs}
    return None


def _short(description: str) -> str:
    if len(description) <= MAX_DESCRIPTION:
        return description
    return description[: MAX_DESCRIPTION - 1] + "\u2026"
