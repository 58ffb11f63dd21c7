"""Arguments checked against a tool's compiled input schema, with the two known mends."""

from __future__ import annotations

from typing import Any

import pytest

from toolbridge.arguments import ArgumentValidator
from toolbridge.errors import InvalidArguments
from toolbridge.tools import HttpOperation, Tool

SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "petId": {"type": "integer"},
        "tags": {"type": "array", "items": {"type": "string"}},
        "filter": {"type": "object", "properties": {"kind": {"type": "string"}}},
        "note": {"type": ["string", "null"]},
        "owner": {"$ref": "#/$defs/Owner"},
    },
    "required": ["petId"],
    "additionalProperties": False,
    "$defs": {
        "Owner": {
            "type": "object",
            "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
            "required": ["name"],
        }
    },
}
TOOL = Tool(
    name="updatePet",
    original_name="updatePet",
    description="",
    input_schema=SCHEMA,
    target=HttpOperation(server="s", method="PUT", path="/p", base_url=None, operation_id=None),
)


def problems(arguments: Any) -> list[tuple[str, str]]:
    with pytest.raises(InvalidArguments) as caught:
        ArgumentValidator(TOOL).check(arguments)
    return caught.value.problems


@pytest.mark.parametrize(
    ("arguments", "expected"),
    [
        ({"petId": 1}, {"petId": 1}),
        # strict mode sends null for what it leaves out
        ({"petId": 1, "tags": None, "owner": None}, {"petId": 1}),
        # but null stays where the schema admits it
        ({"petId": 1, "note": None}, {"petId": 1, "note": None}),
        # Gemini sends free-form objects and arrays as JSON strings
        ({"petId": 1, "filter": '{"kind": "cat"}'}, {"petId": 1, "filter": {"kind": "cat"}}),
        ({"petId": 1, "tags": '["a", "b"]'}, {"petId": 1, "tags": ["a", "b"]}),
        (
            {"petId": 1, "owner": {"name": "Ann", "age": None}},
            {"petId": 1, "owner": {"name": "Ann"}},
        ),
    ],
)
def test_valid_and_mended_arguments(arguments: dict[str, Any], expected: dict[str, Any]) -> None:
    assert ArgumentValidator(TOOL).check(arguments) == expected


@pytest.mark.parametrize(
    ("arguments", "expected"),
    [
        ([1, 2], [("$", "expected an object of arguments, found a list")]),
        ({}, [("$", '"petId" is a required property')]),
        ({"petId": "x"}, [("$.petId", '"x" is not of type "integer"')]),
        (
            {"petId": 1, "extra": True},
            [("$", "Additional properties are not allowed ('extra' was unexpected)")],
        ),
        ({"petId": 1, "tags": [1]}, [("$.tags[0]", '1 is not of type "string"')]),
        ({"petId": 1, "owner": {}}, [("$.owner", '"name" is a required property')]),
        ({"petId": 1, "filter": "not json"}, [("$.filter", '"not json" is not of type "object"')]),
        ({"petId": None}, [("$.petId", 'null is not of type "integer"')]),
    ],
)
def test_invalid_arguments_list_each_problem_and_where(
    arguments: Any, expected: list[tuple[str, str]]
) -> None:
    assert problems(arguments) == expected


METADATA = Tool(
    name="add",
    original_name="add",
    description="",
    input_schema={
        "type": "object",
        "properties": {
            # chromadb's metadata values: an integer matches `integer` and `number`
            "metadata": {
                "type": "object",
                "additionalProperties": {
                    "oneOf": [
                        {"type": "integer"},
                        {"type": "number"},
                        {"type": "string"},
                        {"type": "boolean"},
                    ]
                },
            },
            "where": {"$ref": "#/$defs/Where"},
            "both": {
                "anyOf": [{"type": "integer"}, {"type": "string"}],
                "oneOf": [{"type": "integer"}, {"minimum": 0}],
            },
        },
        "$defs": {"Where": {"oneOf": [{"type": "number"}, {"type": "integer", "minimum": 0}]}},
    },
    target=HttpOperation(server="s", method="POST", path="/a", base_url=None, operation_id=None),
)


@pytest.mark.parametrize(
    "arguments",
    [
        {"metadata": {"k": 1, "f": 1.5, "s": "x", "b": True}},
        {"where": 3},  # in a definition too
        {"both": 5},  # matches both oneOf branches, and the anyOf
    ],
)
def test_one_of_is_read_as_any_of(arguments: dict[str, Any]) -> None:
    """A value that fits several `oneOf` branches is accepted, as the APIs themselves do."""
    assert ArgumentValidator(METADATA).check(arguments) == arguments


def test_one_of_still_refuses_what_fits_no_branch() -> None:
    with pytest.raises(InvalidArguments) as caught:
        ArgumentValidator(METADATA).check({"metadata": {"k": [1]}, "both": 1.5})
    assert caught.value.problems == [
        ("$.both", "1.5 is not valid under any of the schemas listed in the 'anyOf' keyword"),
        (
            "$.metadata.k",
            "[1] is not valid under any of the schemas listed in the 'anyOf' keyword",
        ),
    ]
    # what clients see keeps the document's oneOf
    assert "oneOf" in METADATA.input_schema["properties"]["metadata"]["additionalProperties"]
