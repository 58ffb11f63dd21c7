"""Arguments checked against a tool's compiled input schema, with the two known mends."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import jsonschema_rs
import orjson
import pytest

from toolbridge.arguments import (
    BASE64_PATTERN,
    HEADER_VALUE_PATTERN,
    PATH_SEGMENT_PATTERN,
    WHOLE_SEGMENT_PATTERN,
    ArgumentValidator,
    accepted_schema,
)
from toolbridge.config import LocalTools
from toolbridge.errors import InvalidArguments
from toolbridge.local.calls import call_function
from toolbridge.local.loader import load_tools
from toolbridge.tools import BodyPlan, HttpOperation, ParamBinding, PythonFunction, Tool
from toolbridge.upstream.request import build_request

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
        ([1, 2], [("$", "expected an object of arguments, found an array")]),
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
        # A long value is quoted by its ends: the answer does not carry it back whole.
        (
            {"petId": "7" * 100_000},
            [
                (
                    "$.petId",
                    '"'
                    + "7" * 149
                    + "… (99727 characters left out) …"
                    + "7" * 124
                    + '" is not of type "integer"',
                )
            ],
        ),
    ],
)
def test_invalid_arguments_list_each_problem_and_where(
    arguments: Any, expected: list[tuple[str, str]]
) -> None:
    assert problems(arguments) == expected


@pytest.mark.parametrize(("depth", "refused"), [(200, False), (254, False), (255, True)])
def test_an_invalid_argument_nested_too_deeply_to_be_said_is_refused_whole(
    depth: int, refused: bool
) -> None:
    """The validator cannot hand back an error whose value is nested 255 levels or more (it
    raised ValueError: a 500): such arguments are refused as a whole, with why."""
    deep = orjson.loads(b"[" * depth + b"]" * depth)
    found = problems({"petId": 1, "extra": deep})
    assert found == (
        [("$", "nested too deeply to be checked (over 250 levels)")]
        if refused
        else [("$", "Additional properties are not allowed ('extra' was unexpected)")]
    )


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


# -- what the gateway's own document says it accepts -------------------------------------------

ACCEPTING = Tool(
    name="echo",
    original_name="echo",
    description="",
    input_schema={
        "type": "object",
        "properties": {
            "item": {"type": "string"},
            "X-Note": {"type": "string"},
            "X-Tags": {"type": "array", "items": {"type": "string"}},
            "If-Match": {"type": "string", "pattern": '^"[0-9]+"$'},  # Kinto's
            "kind": {"type": "string", "enum": ["a", "b"]},
            "owner": {"$ref": "#/$defs/Owner"},
            "file": {"type": "string", "contentEncoding": "base64"},
            "note": {"type": ["string", "null"]},
        },
        "required": ["item"],
        "additionalProperties": False,
        "$defs": {
            "Owner": {
                "type": "object",
                "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
                "required": ["name"],
            }
        },
    },
    target=HttpOperation(
        server="s",
        method="POST",
        path="/echo/{item}",
        base_url=None,
        operation_id="echo",
        params=(
            ParamBinding(argument="item", name="item", location="path", required=True),
            ParamBinding(argument="X-Note", name="X-Note", location="header"),
            ParamBinding(argument="X-Tags", name="X-Tags", location="header"),
            ParamBinding(argument="If-Match", name="If-Match", location="header"),
        ),
        body=BodyPlan(media_type="application/octet-stream", kind="binary", argument="file"),
    ),
)


def test_the_accepted_schema_says_what_calls_take() -> None:
    """Optional arguments also take null; header text, path segments and base64 are narrowed
    to what the request builder sends."""
    assert accepted_schema(ACCEPTING) == {
        "type": "object",
        "properties": {
            "item": {"type": "string", "pattern": WHOLE_SEGMENT_PATTERN},
            "X-Note": {"type": ["string", "null"], "pattern": HEADER_VALUE_PATTERN},
            "X-Tags": {
                "type": ["array", "null"],
                "items": {"type": "string", "pattern": HEADER_VALUE_PATTERN},
            },
            "If-Match": {
                "anyOf": [
                    {
                        "allOf": [
                            {"type": "string", "pattern": '^"[0-9]+"$'},
                            {"pattern": HEADER_VALUE_PATTERN},
                        ]
                    },
                    {"type": "null"},
                ]
            },
            "kind": {"type": ["string", "null"], "enum": ["a", "b", None]},
            "owner": {"$ref": "#/$defs/Owner.or_null"},
            "file": {
                "type": ["string", "null"],
                "contentEncoding": "base64",
                "pattern": BASE64_PATTERN,
            },
            "note": {"type": ["string", "null"]},
        },
        "required": ["item"],
        "additionalProperties": False,
        "$defs": {
            "Owner": {
                "type": "object",
                "properties": {"name": {"type": "string"}, "age": {"type": ["integer", "null"]}},
                "required": ["name"],
            },
            "Owner.or_null": {
                "type": ["object", "null"],
                "properties": {"name": {"type": "string"}, "age": {"type": ["integer", "null"]}},
                "required": ["name"],
            },
        },
    }
    assert ACCEPTING.input_schema["properties"]["X-Note"] == {"type": "string"}  # not changed


def test_base64_is_narrowed_only_where_the_gateway_decodes_it() -> None:
    """A JSON body's string the document says is base64 goes to the upstream as the text given
    (Discord's take data URIs): the accepted schema does not refuse what the call would send."""
    said = {"type": "string", "contentEncoding": "base64"}
    tool = Tool(
        name="avatar",
        original_name="avatar",
        description="",
        input_schema={
            "type": "object",
            "properties": {"q": said, "avatar": said},
            "required": ["q", "avatar"],
        },
        target=HttpOperation(
            server="s",
            method="POST",
            path="/avatar",
            base_url=None,
            operation_id="avatar",
            params=(ParamBinding(argument="q", name="q", location="query", required=True),),
            body=BodyPlan(
                media_type="application/json", kind="json", fields=(("avatar", "avatar"),)
            ),
        ),
    )
    assert accepted_schema(tool)["properties"] == {"q": said, "avatar": said}


def test_a_path_argument_within_a_segment_may_be_empty() -> None:
    """`/files/{name}.json` with `name` empty is `/files/.json`: a segment all the same."""
    tool = Tool(
        name="f",
        original_name="f",
        description="",
        input_schema={
            "type": "object",
            "properties": {"name": {"type": "string"}},
            "required": ["name"],
        },
        target=HttpOperation(
            server="s",
            method="GET",
            path="/files/{name}.json",
            base_url=None,
            operation_id="f",
            params=(ParamBinding(argument="name", name="name", location="path", required=True),),
        ),
    )
    assert accepted_schema(tool)["properties"]["name"] == {
        "type": "string",
        "pattern": PATH_SEGMENT_PATTERN,
    }


def test_an_optional_property_in_a_union_is_nullable_where_the_call_mends_it() -> None:
    """Stripe's `created: {gt, lte} | integer`: the call takes `lte: null` (not given) in the
    object branch, so the document says so; it says nothing the call would refuse."""
    created = {
        "anyOf": [
            {"type": "object", "properties": {"gt": {"type": "integer"}}},
            {"type": "integer"},
        ]
    }
    tool = Tool(
        name="t",
        original_name="t",
        description="",
        input_schema={"type": "object", "properties": {"created": created}},
        target=HttpOperation(server="s", method="GET", path="/a", base_url=None, operation_id=None),
    )
    accepted = accepted_schema(tool)
    validator = jsonschema_rs.validator_for(accepted)
    arguments = {"created": {"gt": None}}
    assert (validator.is_valid(arguments), ArgumentValidator(tool).check(arguments)) == (
        True,
        {"created": {}},
    )


def test_a_sub_schema_the_catalog_shares_is_made_nullable_only_where_it_is_optional() -> None:
    """The catalog keeps equal sub-schemas as one object (Stripe's `{enabled: boolean}` is
    required in `automatic_tax` and optional in `installments`): made nullable in one place,
    it must not become so in the other, where a call refuses null."""
    shared = {"enabled": {"type": "boolean"}}
    tool = Tool(
        name="t",
        original_name="t",
        description="",
        input_schema={
            "type": "object",
            "properties": {
                "automatic_tax": {"type": "object", "properties": shared, "required": ["enabled"]},
                "installments": {"type": "object", "properties": shared},
            },
        },
        target=HttpOperation(
            server="s", method="POST", path="/a", base_url=None, operation_id=None
        ),
    )
    properties = accepted_schema(tool)["properties"]
    assert (
        properties["automatic_tax"]["properties"]["enabled"],
        properties["installments"]["properties"]["enabled"],
        tool.input_schema["properties"]["installments"]["properties"]["enabled"],
    ) == ({"type": "boolean"}, {"type": ["boolean", "null"]}, {"type": "boolean"})


@pytest.mark.parametrize(
    "arguments",
    [
        {"item": "a"},
        {"item": "a", "X-Note": None, "kind": None, "owner": None, "file": None},
        {"item": "a", "owner": {"name": "Ann", "age": None}},
        {"item": "a", "owner": {"name": None}},
        {"item": None},
        {"item": "."},
        {"item": ".."},
        {"item": ".\n"},
        {"item": "..."},
        {"item": ""},  # `/echo/`: a whole segment cannot be empty
        {"item": "a", "X-Note": "café\tok"},
        {"item": "a", "X-Note": "日本"},
        {"item": "a", "X-Note": "line\n"},
        {"item": "a", "X-Note": "\x1b"},
        {"item": "a", "X-Note": "\x7f"},
        {"item": "a", "X-Tags": ["ok", "b\r"]},
        {"item": "a", "If-Match": None},
        {"item": "a", "If-Match": '"12"'},
        {"item": "a", "If-Match": "12"},
        {"item": "a", "kind": "c"},
        {"item": "a", "file": "QUJD\nRA=="},
        {"item": "a", "file": "Q"},
        {"item": "a", "file": "a-_b"},
    ],
)
def test_the_accepted_schema_and_a_call_agree(arguments: dict[str, Any]) -> None:
    """A value the document allows is sent; one it refuses is a 422: never one without the
    other (what schemathesis checks against a running gateway)."""
    validator = jsonschema_rs.validator_for(accepted_schema(ACCEPTING))
    try:
        checked = ArgumentValidator(ACCEPTING).check(arguments)
        build_request(ACCEPTING.http, checked, base_url="http://upstream.test")
        taken = True
    except InvalidArguments:
        taken = False
    assert validator.is_valid(arguments) is taken


@pytest.mark.parametrize(
    "value", ["", ".", "..", "...", "x", [], ["a"], ["a", "."], {}, {"a": "."}, {"a": "b"}]
)
def test_every_path_style_and_the_accepted_schema_agree(value: Any) -> None:
    """Over the corpus's document of every parameter style (simple, label, matrix; exploded or
    not; primitive, array, object), each value in each path argument: the document allows it
    exactly when a call takes it. (An array of one item that is `.` or empty is refused by the
    call and not said by the schema: left out here, and said in the README.)"""
    from tests.corpus import CORPUS
    from toolbridge.openapi.convert import convert
    from toolbridge.openapi.documents import DocumentStore, location_to_uri

    document = CORPUS / "readme-oas-examples" / "3.0" / "parameters-style.yaml"
    tools = convert(DocumentStore(), location_to_uri(str(document))).tools
    base = {"primitive": "p", "array": ["a"], "object": {"k": "v"}}
    disagreements = []
    for tool in tools:
        if tool.http is None or not tool.name.startswith("paths_"):
            continue
        validator = jsonschema_rs.validator_for(accepted_schema(tool))
        for binding in tool.http.params:
            arguments = {**base, binding.argument: value}
            try:
                checked = ArgumentValidator(tool).check(arguments)
                build_request(tool.http, checked, base_url="http://upstream.test")
                taken = True
            except InvalidArguments:
                taken = False
            if validator.is_valid(arguments) is not taken:
                disagreements.append((tool.name, binding.argument, taken))
    assert disagreements == []


LENIENT_TOOL = '''
def lookup(city: str, days: int = 1, unit: str = "metric") -> str:
    """Look the weather up.

    :param city: the city
    :param days: how many days
    :param unit: metric or imperial
    """
    return f"{city}:{days}:{unit}"
'''


def _local_tool(tmp_path: Path) -> Tool:
    (tmp_path / "weather.py").write_text(LENIENT_TOOL)
    [tool] = load_tools(LocalTools(id="w", path="weather.py"), tmp_path).tools
    return tool


def test_a_local_tools_accepted_schema_takes_what_open_webui_would(tmp_path: Path) -> None:
    """Unknown arguments are dropped and a number is text where text is wanted (local.calls):
    the schema a caller reads says so, the one a model reads stays strict."""
    tool = _local_tool(tmp_path)
    assert accepted_schema(tool)["properties"] == {
        "city": {"type": ["string", "number"], "description": "the city"},
        "days": {"type": ["integer", "null"], "description": "how many days", "default": 1},
        "unit": {
            "type": ["string", "number", "null"],
            "description": "metric or imperial",
            "default": "metric",
        },
    }
    assert "additionalProperties" not in accepted_schema(tool)
    assert tool.input_schema["additionalProperties"] is False


@pytest.mark.parametrize(
    "arguments",
    [
        {"city": "Paris"},
        {"city": 75},
        {"city": "Paris", "x-unknown": 42},
        {"city": "Paris", "days": None},
        {"city": "Paris", "days": "three"},
        {"city": None},
        {},
        {"city": ["Paris"]},
    ],
)
def test_a_local_tools_accepted_schema_and_a_call_agree(
    tmp_path: Path, arguments: dict[str, Any]
) -> None:
    tool = _local_tool(tmp_path)
    assert isinstance(tool.target, PythonFunction)
    validator = jsonschema_rs.validator_for(accepted_schema(tool))
    mended = ArgumentValidator(tool).mended(arguments)
    try:
        result = asyncio.run(call_function(tool.target, mended))
        taken = result.ok
    except InvalidArguments:
        taken = False
    assert validator.is_valid(arguments) is taken


@pytest.mark.parametrize(
    "arguments",
    [
        {"query": "a note"},
        {"query": 5},
        {"query": "a note", "limit": 2},
        {"query": "a note", "extra": 1},
        {"name": "x"},
    ],
)
def test_the_search_tools_accepted_schema_is_what_they_check(arguments: dict[str, Any]) -> None:
    """They are no local tool: nothing lenient is said of them that they would refuse."""
    from toolbridge.discovery import META_TOOLS

    search_tools = META_TOOLS[0]
    validator = jsonschema_rs.validator_for(accepted_schema(search_tools))
    try:
        ArgumentValidator(search_tools).check(arguments)
        taken = True
    except InvalidArguments:
        taken = False
    assert validator.is_valid(arguments) is taken
