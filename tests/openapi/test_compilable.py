"""`compilable` says a tool schema surely compiles only when `jsonschema_rs` compiles it.

`soundness` skips compiling a schema the grammar accepts, so a wrong "yes" would let a schema
the validator refuses reach a tool (and fail its calls). Held here three ways: each refusal of
the validator we know of, placed where a tool schema can hold it, is not accepted; plain
schemas of every keyword are; and for generated schemas (hypothesis, values of every kind in
every keyword), whatever is accepted compiles. A "no" costs only a compile, so it is not held.
"""

from __future__ import annotations

from typing import Any

import jsonschema_rs
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from toolbridge.openapi.compilable import MAX_DEPTH, Compilable
from toolbridge.openapi.soundness import Soundness, sound_input_schema, sound_schema
from toolbridge.tools import Note


def compiles(schema: Any) -> bool:
    try:
        jsonschema_rs.validator_for(schema)
    except (ValueError, TypeError, RecursionError, jsonschema_rs.ValidationError):
        return False
    return True


def deep(levels: int) -> dict[str, Any]:
    node: dict[str, Any] = {"type": "string"}
    for _ in range(levels):
        node = {"items": node}
    return node


REFUSED: dict[str, dict[str, Any]] = {
    "type unknown": {"type": "file"},
    "type repeated": {"type": ["string", "string"]},
    "type empty": {"type": []},
    "type holding a mapping": {"type": ["string", {}]},
    "required repeated": {"required": ["a", "a"]},
    "required not strings": {"required": [1]},
    "examples not a list": {"examples": 5},
    "maximum not finite": {"maximum": float("inf")},
    "maximum a string": {"maximum": "5"},
    "exclusiveMaximum a flag": {"exclusiveMaximum": True},
    "multipleOf zero": {"multipleOf": 0},
    "minLength negative": {"minLength": -1},
    "minLength a flag": {"minLength": True},
    "uniqueItems a string": {"uniqueItems": "yes"},
    "title a number": {"title": 5},
    "description not UTF-8": {"description": "\ud800"},
    "property name not UTF-8": {"properties": {"\ud800": {}}},
    "property name a number": {"properties": {1: {}}},
    "enum value not UTF-8": {"enum": ["\udc00"]},
    "default key a number": {"default": {1.5: 2}},
    "anyOf empty": {"anyOf": []},
    "prefixItems empty": {"prefixItems": []},
    "items a list": {"items": [{}]},
    "pattern not a regex": {"pattern": "["},
    "patternProperties name not a regex": {"patternProperties": {"[": {}}},
    "dependentRequired not strings": {"dependentRequired": {"a": [1]}},
    "ref to nothing": {"$ref": "#/$defs/nowhere"},
    "a schema that is a number": {"not": 5},
    "nested too deeply": deep(300),
}
"""Keyword values the validator refuses (each is checked to be refused, wherever it is put)."""

ACCEPTED: dict[str, dict[str, Any]] = {
    "object": {
        "type": "object",
        "description": "A thing. “Quoted”.",
        "properties": {"a": {"type": "string", "format": "date-time", "pattern": "^[a-z]+$"}},
        "required": ["a"],
        "additionalProperties": False,
    },
    "numbers": {"type": ["integer", "null"], "minimum": 0, "exclusiveMaximum": 1.5e300},
    "counts": {"minLength": 0, "maxLength": 2**63 - 1, "minItems": 1, "uniqueItems": True},
    "values": {"enum": ["a", 1, None, {"k": [1.5]}], "default": "a", "examples": [1, "b"]},
    "combinators": {"anyOf": [{"type": "string"}, True], "not": {"const": 3}},
    "conditionals": {"if": {"required": ["a"]}, "then": {"minProperties": 1}, "else": False},
    "annotations": {"readOnly": True, "deprecated": False, "contentEncoding": "base64"},
    "references": {"$ref": "#/$defs/a", "description": "siblings of $ref are fine in 2020-12"},
    "dependent": {"dependentRequired": {"a": ["b"]}, "dependentSchemas": {"a": {}}},
    "unevaluated": {"prefixItems": [{}], "unevaluatedItems": False},
    "as deep as allowed": deep(MAX_DEPTH - 10),
}


def placed(piece: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """A piece where a tool schema can hold it: at the top, as a property, as a definition
    a property refers to, and below another keyword inside a definition."""
    defs = {"a": {"type": "string"}}
    return {
        "top": {**piece, "$defs": defs},
        "property": {"type": "object", "properties": {"p": piece}, "$defs": defs},
        "definition": {
            "type": "object",
            "properties": {"p": {"$ref": "#/$defs/d"}},
            "$defs": {**defs, "d": piece},
        },
        "below": {"$ref": "#/$defs/d", "$defs": {**defs, "d": {"anyOf": [{"items": piece}]}}},
    }


@pytest.mark.parametrize("piece", list(REFUSED.values()), ids=list(REFUSED))
def test_what_the_validator_refuses_is_never_accepted(piece: dict[str, Any]) -> None:
    for where, schema in placed(piece).items():
        assert (where, compiles(schema)) == (where, False)
        assert (where, Compilable().surely(schema)) == (where, False)


@pytest.mark.parametrize("piece", list(ACCEPTED.values()), ids=list(ACCEPTED))
def test_plain_schemas_are_accepted_without_compiling(piece: dict[str, Any]) -> None:
    for where, schema in placed(piece).items():
        assert (where, compiles(schema), Compilable().surely(schema)) == (where, True, True)


def test_shared_pieces_are_judged_in_the_schema_that_holds_them() -> None:
    """A definition read once keeps its verdict, but whether its `$ref`s resolve and how deep
    it sits are decided for each schema that holds it."""
    grammar = Compilable()
    piece = {"items": {"$ref": "#/$defs/b"}}
    holds_b = {"properties": {"p": piece}, "$defs": {"b": {}}}
    lacks_b = {"properties": {"p": piece}, "$defs": {"c": {}}}
    assert (grammar.surely(holds_b), grammar.surely(lacks_b)) == (True, False)
    assert (compiles(holds_b), compiles(lacks_b)) == (True, False)
    shallow = deep(MAX_DEPTH - 5)
    assert grammar.surely({"properties": {"p": shallow}}) is True
    deeper = {"properties": {"p": {"anyOf": [{"items": {"items": {"items": shallow}}}]}}}
    assert grammar.surely(deeper) is False


def test_soundness_answers_as_compiling_each_schema_does() -> None:
    """The same schemas and notes as `sound_input_schema` and `sound_schema`, accepted or not;
    an output schema several tools share is checked once and answered alike."""
    soundness = Soundness()
    good = {"type": "object", "properties": {"q": {"type": "string"}}}
    bad = {"type": "object", "properties": {"q": {"type": "array", "prefixItems": []}}}
    for schema in (good, bad):
        assert soundness.input_schema(schema) == sound_input_schema(schema)
        expected = sound_schema(schema, "output schema")
        assert soundness.output_schema(schema) == expected
        assert soundness.output_schema(schema) == expected
    assert soundness.input_schema(good)[0] is good
    assert bad == {"type": "object", "properties": {"q": {"type": "array", "prefixItems": []}}}


# -- generated schemas ------------------------------------------------------------------------

KEYWORDS = [
    "type",
    "description",
    "title",
    "format",
    "pattern",
    "enum",
    "const",
    "default",
    "examples",
    "required",
    "dependentRequired",
    "minimum",
    "maximum",
    "exclusiveMinimum",
    "multipleOf",
    "minLength",
    "maxItems",
    "minContains",
    "uniqueItems",
    "readOnly",
    "$ref",
    "items",
    "additionalProperties",
    "not",
    "if",
    "then",
    "unevaluatedProperties",
    "contentSchema",
    "properties",
    "patternProperties",
    "dependentSchemas",
    "allOf",
    "anyOf",
    "prefixItems",
    "$defs",
    "$id",
    "x-extension",
]
NAMES = st.sampled_from(["a", "b", "d", "a/b", "é", "\ud800", "[", "^x$", "$ref", ""])
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(),
    st.sampled_from(
        ["string", "integer", "null", "file", "[", "^a+$", "#/$defs/a", "#/$defs/d", "#/x"]
    ),
    st.text(max_size=4),
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(NAMES, inner, max_size=3)),
    max_leaves=6,
)


def _schemas(inner: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    anything = st.one_of(
        VALUES,
        inner,
        st.lists(inner, max_size=3),
        st.dictionaries(NAMES, inner, max_size=3),
        st.lists(st.sampled_from(["string", "null", "a", "b"]), max_size=3),
    )
    fitting = {  # a value of the keyword's own kind, half the time, so that some schemas pass
        "type": st.sampled_from(["string", ["integer", "null"]]),
        "required": st.lists(NAMES, max_size=3),
        "enum": st.lists(VALUES, max_size=3),
        "examples": st.lists(VALUES, max_size=2),
        "minimum": st.one_of(st.integers(), st.floats()),
        "multipleOf": st.one_of(st.integers(), st.floats()),
        "minLength": st.integers(min_value=-1, max_value=2**64),
        "$ref": st.sampled_from(["#/$defs/a", "#/$defs/d", "#/$defs/a~1b", "#/$defs/x"]),
        "properties": st.dictionaries(NAMES, inner, max_size=3),
        "patternProperties": st.dictionaries(NAMES, inner, max_size=2),
        "anyOf": st.lists(inner, max_size=3),
        "prefixItems": st.lists(inner, max_size=2),
        "dependentRequired": st.dictionaries(NAMES, st.lists(NAMES, max_size=2), max_size=2),
    }

    def entry(keyword: str) -> st.SearchStrategy[tuple[str, Any]]:
        own = fitting.get(keyword, inner)
        return st.tuples(st.just(keyword), st.one_of(own, own, anything))

    return st.lists(st.sampled_from(KEYWORDS).flatmap(entry), max_size=4).map(dict)


SCHEMAS: st.SearchStrategy[Any] = st.recursive(
    st.one_of(st.booleans(), st.just({})), _schemas, max_leaves=12
)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    top=SCHEMAS,
    defs=st.dictionaries(st.sampled_from(["a", "d", "a/b"]), SCHEMAS, max_size=3),
    with_defs=st.booleans(),
)
def test_what_is_accepted_compiles(top: Any, defs: dict[str, Any], with_defs: bool) -> None:
    schema = {**top, "$defs": defs} if with_defs and isinstance(top, dict) else top
    if Compilable().surely(schema):
        assert compiles(schema), schema


@pytest.mark.parametrize("levels", [MAX_DEPTH, 124, 300])
def test_a_schema_nested_too_deeply_to_list_accepts_any_value(levels: int) -> None:
    """It would compile (up to about 255 levels), but no tool list holding it could be written:
    it becomes unconstrained, with a note, and the tool stays."""
    schema = {"type": "object", "properties": {"p": deep(levels)}}
    note = Note(
        kind="invalid-schema",
        message=f"input schema cannot be used (nested deeper than {MAX_DEPTH} levels); it "
        "accepts any value",
    )
    assert (Soundness().input_schema(schema), sound_input_schema(schema)) == (
        ({"type": "object"}, [note]),
        ({"type": "object"}, [note]),
    )
