"""A canonical tool rendered in every client format, and checked against each provider's rules."""

from __future__ import annotations

import dataclasses

import pytest

from tests.providers import check
from toolbridge.formats.render import FORMATS, Format, render, render_tools
from toolbridge.tools import Annotations, HttpOperation, JsonSchema, Tool

TARGET = HttpOperation(server="s", method="GET", path="/x", base_url=None, operation_id=None)
INPUT = {
    "type": "object",
    "properties": {
        "limit": {"type": "integer", "minimum": 1, "description": "How many to return."},
        "species": {"type": "string", "enum": ["cat", "dog"]},
    },
    "required": ["species"],
}
OUTPUT = {"type": "object", "properties": {"names": {"type": "array", "items": {"type": "string"}}}}
PETS = Tool(
    name="list_pets",
    original_name="listPets",
    description="List the pets in the store.",
    input_schema=INPUT,
    output_schema=OUTPUT,
    output_promised=True,
    annotations=Annotations(title="List pets", read_only=True, idempotent=True),
    target=TARGET,
)
GEMINI_PARAMETERS = {
    "type": "OBJECT",
    "properties": {
        "limit": {"type": "INTEGER", "description": "How many to return.", "minimum": 1},
        "species": {"type": "STRING", "enum": ["cat", "dog"]},
    },
    "required": ["species"],
}
STRICT_PARAMETERS = {
    "type": "object",
    "properties": {
        "limit": {"type": ["integer", "null"], "minimum": 1, "description": "How many to return."},
        "species": {"type": "string", "enum": ["cat", "dog"]},
    },
    "required": ["limit", "species"],
    "additionalProperties": False,
}
DESCRIPTION = "List the pets in the store."


@pytest.mark.parametrize(
    ("fmt", "expected"),
    [
        (
            "openai",
            {
                "type": "function",
                "function": {"name": "list_pets", "description": DESCRIPTION, "parameters": INPUT},
            },
        ),
        (
            "openai-responses",
            {
                "type": "function",
                "name": "list_pets",
                "description": DESCRIPTION,
                "parameters": INPUT,
                "strict": False,
            },
        ),
        ("anthropic", {"name": "list_pets", "description": DESCRIPTION, "input_schema": INPUT}),
        (
            "gemini",
            {"name": "list_pets", "description": DESCRIPTION, "parameters": GEMINI_PARAMETERS},
        ),
        (
            "mcp",
            {
                "name": "list_pets",
                "title": "List pets",
                "description": DESCRIPTION,
                "inputSchema": INPUT,
                "outputSchema": OUTPUT,
                "annotations": {
                    "title": "List pets",
                    "readOnlyHint": True,
                    "destructiveHint": False,
                    "idempotentHint": True,
                    "openWorldHint": True,
                },
            },
        ),
    ],
)
def test_render(fmt: Format, expected: JsonSchema) -> None:
    assert render(PETS, fmt) == expected


@pytest.mark.parametrize(
    ("fmt", "expected"),
    [
        (
            "openai",
            {
                "type": "function",
                "function": {
                    "name": "list_pets",
                    "description": DESCRIPTION,
                    "parameters": STRICT_PARAMETERS,
                    "strict": True,
                },
            },
        ),
        (
            "openai-responses",
            {
                "type": "function",
                "name": "list_pets",
                "description": DESCRIPTION,
                "parameters": STRICT_PARAMETERS,
                "strict": True,
            },
        ),
    ],
)
def test_render_strict(fmt: Format, expected: JsonSchema) -> None:
    assert render(PETS, fmt, strict=True) == expected


def test_strict_only_changes_openai_formats() -> None:
    for fmt in ("anthropic", "gemini", "mcp"):
        assert render(PETS, fmt, strict=True) == render(PETS, fmt)


def test_a_tool_without_a_strict_form_is_rendered_non_strict() -> None:
    schema = {"type": "object", "properties": {"filter": {"type": "object"}}}
    tool = dataclasses.replace(PETS, input_schema=schema)
    assert render(tool, "openai", strict=True)["function"] == {
        "name": "list_pets",
        "description": DESCRIPTION,
        "parameters": schema,
        "strict": False,
    }


def test_long_descriptions_are_cut_except_for_mcp() -> None:
    tool = dataclasses.replace(PETS, description="x" * 2000)
    cut = "x" * 1023 + "\u2026"
    assert render(tool, "openai")["function"]["description"] == cut
    assert render(tool, "openai-responses")["description"] == cut
    assert render(tool, "anthropic")["description"] == cut
    assert render(tool, "gemini")["description"] == cut
    assert render(tool, "mcp")["description"] == "x" * 2000


def test_gemini_declaration_without_arguments_has_no_parameters() -> None:
    tool = dataclasses.replace(PETS, input_schema={"type": "object", "properties": {}})
    assert render(tool, "gemini") == {"name": "list_pets", "description": DESCRIPTION}


def test_mcp_without_title_or_object_output() -> None:
    tool = dataclasses.replace(
        PETS,
        output_schema={"type": "array", "items": {"type": "string"}},
        annotations=Annotations(),
    )
    assert render(tool, "mcp") == {
        "name": "list_pets",
        "title": "list_pets",
        "description": DESCRIPTION,
        "inputSchema": INPUT,
        "annotations": {
            "title": "list_pets",
            "readOnlyHint": False,
            "destructiveHint": False,
            "idempotentHint": False,
            "openWorldHint": True,
        },
    }


def test_mcp_promises_an_output_schema_only_where_answers_keep_it() -> None:
    """Withheld by default; promised as answers are checked: `oneOf` read as `anyOf`."""
    loose = {
        "type": "object",
        "properties": {"value": {"oneOf": [{"type": "integer"}, {"type": "number"}]}},
    }
    withheld = dataclasses.replace(PETS, output_schema=loose, output_promised=False)
    promised = dataclasses.replace(PETS, output_schema=loose)
    assert "outputSchema" not in render(withheld, "mcp")
    assert render(promised, "mcp")["outputSchema"] == {
        "type": "object",
        "properties": {"value": {"anyOf": [{"type": "integer"}, {"type": "number"}]}},
    }


def test_mcp_arrays_carry_items() -> None:
    """OpenAI's models reject an array without `items`, and MCP clients pass tools to them."""
    schema = {
        "type": "object",
        "properties": {
            "ids": {"type": "array"},
            "any": {"type": ["array", "null"], "items": True},
            "nested": {"$ref": "#/$defs/N"},
        },
        "$defs": {"N": {"type": "object", "properties": {"tags": {"type": "array"}}}},
    }
    tool = dataclasses.replace(PETS, input_schema=schema)
    assert render(tool, "mcp")["inputSchema"] == {
        "type": "object",
        "properties": {
            "ids": {"type": "array", "items": {}},
            "any": {"type": ["array", "null"], "items": {}},
            "nested": {"$ref": "#/$defs/N"},
        },
        "$defs": {"N": {"type": "object", "properties": {"tags": {"type": "array", "items": {}}}}},
    }
    assert check("mcp", render(tool, "mcp")) == []
    assert check("mcp", {**render(tool, "mcp"), "inputSchema": schema}) == [
        "inputSchema/properties/ids: array schema missing items",
        "inputSchema/$defs/N/properties/tags: array schema missing items",
    ]
    assert render(PETS, "mcp")["inputSchema"] is PETS.input_schema  # nothing to add: no copy


def test_render_tools() -> None:
    other = dataclasses.replace(PETS, name="other")
    assert render_tools([PETS, other], "anthropic") == [
        render(PETS, "anthropic"),
        render(other, "anthropic"),
    ]


# --- every format, against every provider's rules ---------------------------------------------

TRICKY: dict[str, JsonSchema] = {
    "recursive defs": {
        "type": "object",
        "properties": {"tree": {"$ref": "#/$defs/Node", "description": "The tree."}},
        "required": ["tree"],
        "$defs": {
            "Node": {
                "type": "object",
                "properties": {
                    "name": {"type": "string"},
                    "children": {"type": "array", "items": {"$ref": "#/$defs/Node"}},
                    "parent": {"anyOf": [{"$ref": "#/$defs/Node"}, {"type": "null"}]},
                },
            }
        },
    },
    "type arrays and const": {
        "type": "object",
        "properties": {
            "a": {"type": ["string", "null"], "enum": ["x", "y", None]},
            "b": {"type": ["integer", "string", "boolean"]},
            "c": {"const": "fixed"},
            "d": {"const": 7},
            "e": {"type": "null"},
        },
        "required": ["a", "c"],
    },
    "oneOf and allOf": {
        "type": "object",
        "properties": {
            "shape": {
                "oneOf": [{"$ref": "#/$defs/Circle"}, {"$ref": "#/$defs/Square"}],
                "discriminator": {"propertyName": "kind"},
            },
            "named": {
                "allOf": [{"$ref": "#/$defs/Circle"}, {"properties": {"n": {"type": "string"}}}]
            },
            "clash": {"allOf": [{"type": "string"}, {"type": "integer"}]},
            "either": {
                "type": "object",
                "properties": {"id": {"type": "string"}, "slug": {"type": "string"}},
                "oneOf": [{"required": ["id"]}, {"required": ["slug"]}],
            },
        },
        "$defs": {
            "Circle": {
                "type": "object",
                "properties": {"kind": {"const": "circle"}, "r": {"type": "number"}},
                "required": ["kind", "r"],
            },
            "Square": {
                "type": "object",
                "properties": {"kind": {"const": "square"}, "side": {"type": "number"}},
                "required": ["kind"],
                "additionalProperties": False,
            },
        },
    },
    "free-form values": {
        "type": "object",
        "properties": {
            "meta": {"type": "object"},
            "labels": {"type": "object", "additionalProperties": {"type": "string"}},
            "value": {},
            "nothing": False,
            "anything": True,
            "tags": {"type": "array"},
            "matrix": {"type": "array", "items": {"type": "array"}},
        },
    },
    "big enums of ints": {
        "type": "object",
        "properties": {
            "code": {"type": "integer", "enum": list(range(300))},
            "codes": {"type": "array", "items": {"type": "integer", "enum": [1, 2, 3]}},
            "mixed": {"enum": ["a", 1, True, None]},
        },
    },
    "odd names and keywords": {
        "type": "object",
        "properties": {
            "body": {
                "type": "object",
                "properties": {
                    "@type": {"type": "string"},
                    "$filter": {"type": "string", "format": "uri", "pattern": "^(?!x)"},
                    "n": {"type": "number", "exclusiveMinimum": 0, "multipleOf": 0.5},
                },
                "patternProperties": {"^x-": {"type": "string"}},
                "required": ["@type"],
                "not": {"required": ["n"]},
            },
            "when": {"type": "string", "format": "date-time", "default": "now", "examples": ["x"]},
        },
        "additionalProperties": False,
    },
    "root combinator": {
        "oneOf": [
            {"type": "object", "properties": {"id": {"type": "string"}}, "required": ["id"]},
            {"$ref": "#/$defs/ByName"},
        ],
        "$defs": {
            "ByName": {
                "type": "object",
                "properties": {"name": {"type": "string"}},
                "required": ["name"],
            }
        },
    },
    "no arguments": {"type": "object", "properties": {}},
}


@pytest.mark.parametrize("strict", [False, True])
@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("schema", TRICKY.values(), ids=TRICKY.keys())
def test_every_format_is_accepted_by_its_provider(
    schema: JsonSchema, fmt: Format, strict: bool
) -> None:
    if fmt == "mcp" and "oneOf" in schema:
        pytest.skip("MCP carries the canonical schema, whose root must already be an object")
    tool = dataclasses.replace(PETS, input_schema=schema, output_schema=schema)
    assert check(fmt, render(tool, fmt, strict=strict)) == []


@pytest.mark.parametrize(
    ("fmt", "tool", "problem"),
    [
        (
            "openai",
            {"type": "function", "function": {"name": "a b", "parameters": {"type": "object"}}},
            "function.name: 'a b' does not match ^[a-zA-Z0-9_-]{1,64}$",
        ),
        (
            "openai",
            {
                "type": "function",
                "function": {
                    "name": "t",
                    "parameters": {"type": "object", "properties": {"a": {"type": "array"}}},
                },
            },
            "function.parameters/properties/a: array schema missing items",
        ),
        (
            "openai-responses",
            {"type": "function", "name": "t", "parameters": {"type": "object"}},
            "strict: must be given, the Responses API defaults it to true",
        ),
        (
            "openai-responses",
            {"type": "function", "name": "t", "parameters": {"type": "object"}, "strict": False},
            "parameters: object schema missing properties",
        ),
        (
            "openai",
            {
                "type": "function",
                "function": {
                    "name": "t",
                    "strict": True,
                    "parameters": {"type": "object", "properties": {"a": {"type": "string"}}},
                },
            },
            "function.parameters: additionalProperties must be false",
        ),
        (
            "anthropic",
            {"name": "t", "input_schema": {"type": "object", "anyOf": [{"required": ["a"]}]}},
            "input_schema: ['anyOf'] not supported at the top level",
        ),
        (
            "anthropic",
            {"name": "t", "input_schema": {"type": "object", "properties": {"a": {"$ref": "#/x"}}}},
            "input_schema/properties/a: $ref '#/x' does not resolve in this schema",
        ),
        (
            "gemini",
            {
                "name": "t",
                "parameters": {"type": "OBJECT", "properties": {"a": {"type": "OBJECT"}}},
            },
            "parameters.properties[a].properties: should be non-empty for OBJECT type",
        ),
        (
            "gemini",
            {"name": "t", "parameters": {"type": "OBJECT", "properties": {"a": {"enum": [1]}}}},
            "parameters.properties[a]: needs a type (or anyOf)",
        ),
        (
            "gemini",
            {"name": "t", "parameters": {"type": "OBJECT", "properties": {"a": {"$ref": "#/x"}}}},
            "parameters.properties[a]: unknown field '$ref'",
        ),
        (
            "mcp",
            {"name": "t", "inputSchema": {"type": "object"}, "outputSchema": {"type": "array"}},
            'outputSchema: expected a JSON Schema with "type": "object"',
        ),
    ],
)
def test_the_provider_rules_catch_what_providers_reject(
    fmt: str, tool: JsonSchema, problem: str
) -> None:
    assert problem in check(fmt, tool)
