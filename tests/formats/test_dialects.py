"""Schema surgery per provider: one canonical schema in, the provider's dialect out."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from toolbridge.formats.anthropic_dialect import for_anthropic
from toolbridge.formats.gemini_dialect import GEMINI_MAX_NODES, JSON_STRING_NOTE, for_gemini
from toolbridge.formats.openai_dialect import for_openai, for_openai_strict
from toolbridge.tools import JsonSchema

NODE = {
    "type": "object",
    "properties": {
        "value": {"type": "integer"},
        "children": {"type": "array", "items": {"$ref": "#/$defs/Node"}},
    },
    "required": ["value"],
}
TREE = {
    "type": "object",
    "properties": {"root": {"$ref": "#/$defs/Node", "description": "The root."}},
    "required": ["root"],
    "$defs": {"Node": NODE},
}
TYPES = {
    "type": "object",
    "properties": {
        "a": {"type": ["string", "null"]},
        "b": {"type": ["string", "integer"], "description": "Either."},
        "c": {"const": "fixed"},
        "d": {"const": 3},
    },
    "required": ["a"],
}
COMBOS = {
    "type": "object",
    "properties": {
        "pet": {
            "oneOf": [{"$ref": "#/$defs/Cat"}, {"$ref": "#/$defs/Dog"}],
            "discriminator": {"propertyName": "kind"},
        },
        "owner": {
            "allOf": [
                {"$ref": "#/$defs/Person"},
                {
                    "properties": {"since": {"type": "string", "format": "date"}},
                    "required": ["since"],
                },
            ]
        },
    },
    "required": ["pet", "owner"],
    "$defs": {
        "Cat": {
            "type": "object",
            "properties": {"kind": {"const": "cat"}, "lives": {"type": "integer", "maximum": 9}},
            "required": ["kind"],
        },
        "Dog": {"type": "object", "properties": {"kind": {"const": "dog"}}, "required": ["kind"]},
        "Person": {
            "type": "object",
            "properties": {"name": {"type": "string"}},
            "required": ["name"],
        },
    },
}
FREE = {
    "type": "object",
    "properties": {
        "meta": {"type": "object", "description": "Anything."},
        "any": {},
        "labels": {"type": "object", "additionalProperties": {"type": "string"}},
        "tags": {"type": "array"},
    },
}
BIG_INT_ENUM = {
    "type": "object",
    "properties": {"code": {"type": "integer", "enum": list(range(60))}},
}
NO_ARGUMENTS = {"type": "object", "properties": {}}

ALL = [TREE, TYPES, COMBOS, FREE, BIG_INT_ENUM, NO_ARGUMENTS]
DIALECTS = [for_openai, for_openai_strict, for_anthropic, for_gemini]


@pytest.mark.parametrize("dialect", DIALECTS)
@pytest.mark.parametrize("schema", ALL)
def test_input_is_never_mutated(dialect: Any, schema: JsonSchema) -> None:
    before = copy.deepcopy(schema)
    dialect(schema)
    assert schema == before


# --- OpenAI -----------------------------------------------------------------------------------


def test_openai_gives_every_array_items() -> None:
    schema = {
        "type": "object",
        "properties": {
            "tags": {"type": "array"},
            "either": {"anyOf": [{"type": ["array", "null"]}, {"type": "string"}]},
            "all": {"type": "array", "items": True},
        },
        "$defs": {"Rows": {"type": "array", "items": {"type": "array"}}},
    }
    assert for_openai(schema) == {
        "type": "object",
        "properties": {
            "tags": {"type": "array", "items": {}},
            "either": {"anyOf": [{"type": ["array", "null"], "items": {}}, {"type": "string"}]},
            "all": {"type": "array", "items": {}},
        },
        "$defs": {"Rows": {"type": "array", "items": {"type": "array", "items": {}}}},
    }


def test_openai_root_always_has_properties() -> None:
    """OpenAI: "In context=(), object schema missing properties"."""
    assert for_openai({"type": "object"}) == {"type": "object", "properties": {}}


@pytest.mark.parametrize("schema", [TREE, TYPES, COMBOS])
def test_openai_keeps_what_it_accepts(schema: JsonSchema) -> None:
    assert for_openai(schema) == schema


def test_strict_closes_objects_and_makes_optional_nullable() -> None:
    schema = {
        "type": "object",
        "properties": {
            "limit": {"type": "integer", "minimum": 1, "default": 10, "description": "At most."},
            "species": {"type": "string", "enum": ["cat", "dog"]},
            "name": {"type": "string", "minLength": 1, "pattern": "^[a-z]+$", "format": "email"},
            "when": {"type": "string", "format": "iso-week"},
        },
        "required": ["species"],
    }
    assert for_openai_strict(schema) == {
        "type": "object",
        "properties": {
            "limit": {"type": ["integer", "null"], "minimum": 1, "description": "At most."},
            "species": {"type": "string", "enum": ["cat", "dog"]},
            "name": {"type": ["string", "null"], "pattern": "^[a-z]+$", "format": "email"},
            "when": {"type": ["string", "null"]},
        },
        "required": ["limit", "species", "name", "when"],
        "additionalProperties": False,
    }


def test_strict_keeps_recursive_defs_and_inlines_refs_with_siblings() -> None:
    node = {
        "type": "object",
        "properties": {
            "value": {"type": "integer"},
            "children": {"type": ["array", "null"], "items": {"$ref": "#/$defs/Node"}},
        },
        "required": ["value", "children"],
        "additionalProperties": False,
    }
    assert for_openai_strict(TREE) == {
        "type": "object",
        "properties": {"root": {"description": "The root.", **node}},
        "required": ["root"],
        "additionalProperties": False,
        "$defs": {"Node": node},
    }


def test_strict_type_arrays_and_const() -> None:
    assert for_openai_strict(TYPES) == {
        "type": "object",
        "properties": {
            "a": {"type": ["string", "null"]},
            "b": {
                "description": "Either.",
                "anyOf": [{"type": "string"}, {"type": "integer"}, {"type": "null"}],
            },
            "c": {"anyOf": [{"type": "string", "const": "fixed"}, {"type": "null"}]},
            "d": {"anyOf": [{"type": "integer", "const": 3}, {"type": "null"}]},
        },
        "required": ["a", "b", "c", "d"],
        "additionalProperties": False,
    }


def test_strict_one_of_becomes_any_of_and_all_of_is_merged() -> None:
    assert for_openai_strict(COMBOS) == {
        "type": "object",
        "properties": {
            "pet": {"anyOf": [{"$ref": "#/$defs/Cat"}, {"$ref": "#/$defs/Dog"}]},
            "owner": {
                "type": "object",
                "properties": {
                    "name": {"type": "string"},
                    "since": {"type": "string", "format": "date"},
                },
                "required": ["name", "since"],
                "additionalProperties": False,
            },
        },
        "required": ["pet", "owner"],
        "additionalProperties": False,
        "$defs": {
            "Cat": {
                "type": "object",
                "properties": {
                    "kind": {"type": "string", "const": "cat"},
                    "lives": {"type": ["integer", "null"], "maximum": 9},
                },
                "required": ["kind", "lives"],
                "additionalProperties": False,
            },
            "Dog": {
                "type": "object",
                "properties": {"kind": {"type": "string", "const": "dog"}},
                "required": ["kind"],
                "additionalProperties": False,
            },
            "Person": {
                "type": "object",
                "properties": {"name": {"type": "string"}},
                "required": ["name"],
                "additionalProperties": False,
            },
        },
    }


@pytest.mark.parametrize(
    "argument",
    [
        pytest.param({"type": "object"}, id="free-form object"),
        pytest.param({"type": "object", "additionalProperties": {"type": "string"}}, id="map"),
        pytest.param({}, id="any value"),
        pytest.param({"type": "array"}, id="array without items"),
        pytest.param({"allOf": [{"type": "string"}, {"type": "integer"}]}, id="contradiction"),
        pytest.param({"type": "string", "enum": [f"v{i}" for i in range(1001)]}, id="enum limit"),
        # Closing it would make `id` unsendable; the upstream requires it (Figma's bodies).
        pytest.param(
            {"type": "object", "properties": {"name": {"type": "string"}}, "required": ["id"]},
            id="required property never declared",
        ),
    ],
)
def test_strict_gives_up_where_there_is_no_strict_form(argument: JsonSchema) -> None:
    schema = {"type": "object", "properties": {"x": argument}, "required": ["x"]}
    assert for_openai_strict(schema) is None


def test_strict_tool_without_arguments_is_an_empty_closed_object() -> None:
    assert for_openai_strict(NO_ARGUMENTS) == {
        "type": "object",
        "properties": {},
        "required": [],
        "additionalProperties": False,
    }


def test_strict_root_is_never_a_combinator() -> None:
    schema = {
        "anyOf": [
            {"type": "object", "properties": {"id": {"type": "string"}}, "required": ["id"]},
            {"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"]},
        ]
    }
    assert for_openai_strict(schema) == {
        "type": "object",
        "properties": {"id": {"type": ["string", "null"]}, "name": {"type": ["string", "null"]}},
        "required": ["id", "name"],
        "additionalProperties": False,
    }


# --- Anthropic --------------------------------------------------------------------------------


def test_anthropic_flattens_a_root_all_of() -> None:
    schema = {
        "allOf": [
            {"$ref": "#/$defs/Base"},
            {"type": "object", "properties": {"b": {"type": "string"}}},
        ],
        "$defs": {"Base": {"type": "object", "properties": {"a": {"type": "integer"}}}},
    }
    assert for_anthropic(schema) == {
        "type": "object",
        "properties": {"a": {"type": "integer"}, "b": {"type": "string"}},
        "$defs": {"Base": {"type": "object", "properties": {"a": {"type": "integer"}}}},
    }


def test_anthropic_moves_rejected_property_names_into_the_description() -> None:
    schema = {
        "type": "object",
        "properties": {
            "body": {
                "type": "object",
                "description": "A JSON-LD thing.",
                "properties": {"@type": {"type": "string"}, "name": {"type": "string"}},
                "required": ["@type", "name"],
                "additionalProperties": False,
            }
        },
    }
    assert for_anthropic(schema) == {
        "type": "object",
        "properties": {
            "body": {
                "type": "object",
                "description": 'A JSON-LD thing. Also accepts: "@type" (required).',
                "properties": {"name": {"type": "string"}},
                "required": ["name"],
            }
        },
    }


@pytest.mark.parametrize("schema", [TREE, TYPES, COMBOS, FREE])
def test_anthropic_keeps_what_it_accepts(schema: JsonSchema) -> None:
    assert for_anthropic(schema) == schema


# --- Gemini -----------------------------------------------------------------------------------


def test_gemini_inlines_refs_and_cuts_recursion() -> None:
    """A definition appears at most GEMINI_REF_REPEATS (2) times on a path."""
    cut = {"type": "STRING", "description": "Recursion cut; a JSON value, encoded as a string."}
    inner = {
        "type": "OBJECT",
        "properties": {"value": {"type": "INTEGER"}, "children": {"type": "ARRAY", "items": cut}},
        "required": ["value"],
    }
    assert for_gemini(TREE) == {
        "type": "OBJECT",
        "properties": {
            "root": {
                "type": "OBJECT",
                "description": "The root.",
                "properties": {
                    "value": {"type": "INTEGER"},
                    "children": {"type": "ARRAY", "items": inner},
                },
                "required": ["value"],
            }
        },
        "required": ["root"],
    }


def test_gemini_type_arrays_and_const() -> None:
    assert for_gemini(TYPES) == {
        "type": "OBJECT",
        "properties": {
            "a": {"type": "STRING", "nullable": True},
            "b": {"description": "Either.", "anyOf": [{"type": "STRING"}, {"type": "INTEGER"}]},
            "c": {"type": "STRING", "enum": ["fixed"]},
            "d": {"type": "INTEGER", "description": "Allowed values: 3."},
        },
        "required": ["a"],
    }


def test_gemini_one_of_becomes_any_of_and_all_of_is_merged() -> None:
    assert for_gemini(COMBOS) == {
        "type": "OBJECT",
        "properties": {
            "pet": {
                "anyOf": [
                    {
                        "type": "OBJECT",
                        "properties": {
                            "kind": {"type": "STRING", "enum": ["cat"]},
                            "lives": {"type": "INTEGER", "maximum": 9},
                        },
                        "required": ["kind"],
                    },
                    {
                        "type": "OBJECT",
                        "properties": {"kind": {"type": "STRING", "enum": ["dog"]}},
                        "required": ["kind"],
                    },
                ]
            },
            "owner": {
                "type": "OBJECT",
                "properties": {"name": {"type": "STRING"}, "since": {"type": "STRING"}},
                "required": ["name", "since"],
            },
        },
        "required": ["pet", "owner"],
    }


def test_gemini_keeps_the_biggest_member_of_a_contradicting_all_of() -> None:
    schema = {
        "type": "object",
        "properties": {
            "x": {
                "description": "Both.",
                "allOf": [
                    {"type": "object", "properties": {"a": {"type": "string"}}},
                    {"$ref": "#/$defs/Wide"},
                    {"type": "string"},
                ],
            }
        },
        "$defs": {
            "Wide": {
                "type": "object",
                "properties": {"b": {"type": "string"}, "c": {"type": "string"}},
            }
        },
    }
    assert for_gemini(schema) == {
        "type": "OBJECT",
        "properties": {
            "x": {
                "type": "OBJECT",
                "description": "Both. Simplified: must also satisfy constraints not shown here.",
                "properties": {"b": {"type": "STRING"}, "c": {"type": "STRING"}},
            }
        },
    }


def test_gemini_sends_free_form_values_as_json_strings() -> None:
    note = JSON_STRING_NOTE
    assert for_gemini(FREE) == {
        "type": "OBJECT",
        "properties": {
            "meta": {"type": "STRING", "description": f"Anything. ({note})"},
            "any": {"type": "STRING", "description": "Any value, passed on as the text given."},
            "labels": {"type": "STRING", "description": "A JSON value, encoded as a string."},
            "tags": {
                "type": "ARRAY",
                "items": {
                    "type": "STRING",
                    "description": "Any value, passed on as the text given.",
                },
            },
        },
    }


def test_gemini_describes_enums_it_cannot_express() -> None:
    listed = ", ".join(str(i) for i in range(40))
    assert for_gemini(BIG_INT_ENUM) == {
        "type": "OBJECT",
        "properties": {
            "code": {"type": "INTEGER", "description": f"Allowed values: {listed}, ... (20 more)."}
        },
    }


def test_gemini_keeps_only_the_fields_and_formats_it_knows() -> None:
    schema = {
        "type": "object",
        "properties": {
            "when": {"type": "string", "format": "date-time", "examples": ["2024-01-01T00:00:00Z"]},
            "day": {"type": "string", "format": "date", "minLength": 10, "title": "Day"},
            "ratio": {"type": "number", "format": "float", "exclusiveMinimum": 0, "maximum": 1},
            "count": {"type": "integer", "format": "uint8", "exclusiveMaximum": 10, "default": 1},
            "code": {"type": "string", "pattern": "^(?=x)", "enum": ["x1", None]},
            "flag": {"type": "boolean", "readOnly": True, "x-internal": True},
        },
        "additionalProperties": False,
        "required": ["when", "missing"],
    }
    assert for_gemini(schema) == {
        "type": "OBJECT",
        "properties": {
            "when": {"type": "STRING", "format": "date-time"},
            "day": {"type": "STRING", "title": "Day", "minLength": 10},
            "ratio": {"type": "NUMBER", "format": "float", "minimum": 0, "maximum": 1},
            "count": {"type": "INTEGER", "maximum": 9, "default": 1},
            "code": {"type": "STRING", "enum": ["x1"], "nullable": True},
            "flag": {"type": "BOOLEAN"},
        },
        "required": ["when"],
    }


def test_gemini_omits_parameters_of_a_tool_without_arguments() -> None:
    assert for_gemini(NO_ARGUMENTS) is None


def test_gemini_output_stays_bounded_when_refs_fan_out() -> None:
    """Each definition refers to the next one twice: inlining naively is 2**30 nodes."""
    defs: dict[str, JsonSchema] = {
        f"D{i}": {
            "type": "object",
            "properties": {"a": {"$ref": f"#/$defs/D{i + 1}"}, "b": {"$ref": f"#/$defs/D{i + 1}"}},
        }
        for i in range(30)
    }
    defs["D30"] = {"type": "string"}
    schema = {
        "type": "object",
        "properties": {"deep": {"$ref": "#/$defs/D0"}, "plain": {"type": "string"}},
        "$defs": defs,
    }
    out = for_gemini(schema)
    assert out is not None
    assert _count(out) <= GEMINI_MAX_NODES
    assert out["properties"]["plain"] == {"type": "STRING"}
    assert out["properties"]["deep"]["type"] == "OBJECT"


def _count(node: JsonSchema) -> int:
    children = [*node.get("properties", {}).values(), *node.get("anyOf", [])]
    children += [node["items"]] if "items" in node else []
    return 1 + sum(_count(child) for child in children)
