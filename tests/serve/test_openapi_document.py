"""The gateway's own OpenAPI 3.1 document (`GET /openapi.json`): its shape, its components, that
openapi-spec-validator accepts it for `specs/` and for big corpus documents, that toolbridge's own
converter reads it back into the same tools, and that Open WebUI's way of reading it terminates.
"""

from __future__ import annotations

import copy
from dataclasses import replace
from pathlib import Path
from typing import Any

import orjson
import pytest
from openapi_spec_validator import OpenAPIV31SpecValidator

from tests.corpus import CORPUS
from toolbridge.openapi.convert import convert
from toolbridge.openapi.documents import DocumentStore, location_to_uri
from toolbridge.serve.openapi_document import gateway_document, gateway_document_json
from toolbridge.tools import HttpOperation, JsonObject, JsonSchema, PythonFunction, Tool

ROOT = Path(__file__).resolve().parents[2]
SPECS = [*sorted((ROOT / "specs").glob("*.yaml")), ROOT / "specs" / "swagger2.json"]


def remote(name: str, **fields: Any) -> Tool:
    target = HttpOperation(server="s", method="POST", path="/x", base_url=None, operation_id=name)
    fields.setdefault("input_schema", {"type": "object", "properties": {}})
    # Published only where promised (`output_schema: publish`), as MCP's outputSchema is.
    fields.setdefault("output_promised", "output_schema" in fields)
    fields.setdefault("description", f"Do {name}.")
    return Tool(name=name, original_name=name, target=target, **fields)


def tools_of(location: Path, store: DocumentStore | None = None) -> list[Tool]:
    uri = location_to_uri(str(location), ROOT)
    return list(convert(store or DocumentStore(), uri, source=location.stem).tools)


def findings(document: JsonObject) -> list[str]:
    return [str(error).splitlines()[0] for error in OpenAPIV31SpecValidator(document).iter_errors()]


def ref(name: str) -> JsonSchema:
    return {"$ref": f"#/components/schemas/{name}"}


def whole_result(output: JsonSchema) -> JsonSchema:
    """The 200 answer's schema of a tool whose output schema is known."""
    when = {
        "required": ["ok"],
        "properties": {"ok": {"const": True}},
        "not": {"required": ["truncated"]},
    }
    return {
        "allOf": [
            ref("toolbridge.Result"),
            {"if": when, "then": {"properties": {"result": output}}},
        ]
    }


def body(document: JsonObject, name: str) -> Any:
    operation = document["paths"][f"/v1/tools/{name}/call"]["post"]
    return operation["requestBody"]["content"]["application/json"]["schema"]


def result(document: JsonObject, name: str) -> Any:
    operation = document["paths"][f"/v1/tools/{name}/call"]["post"]
    return operation["responses"]["200"]["content"]["application/json"]["schema"]


# -- the document --------------------------------------------------------------------------------

RAN = (
    "The tool ran. `ok` is false when the upstream answered 4xx or 5xx or the local function "
    "failed; `result` then says why."
)
ERRORS = {
    "401": {"$ref": "#/components/responses/toolbridge.Unauthenticated"},
    "404": {"$ref": "#/components/responses/toolbridge.NotFound"},
    "422": {"$ref": "#/components/responses/toolbridge.InvalidArguments"},
    "502": {"$ref": "#/components/responses/toolbridge.UpstreamUnavailable"},
    "504": {"$ref": "#/components/responses/toolbridge.UpstreamTimeout"},
}
RESULT = {
    "type": "object",
    "required": ["ok", "status", "content_type", "result"],
    "properties": {
        "ok": {"type": "boolean", "description": "Whether the tool succeeded."},
        "status": {
            "type": ["integer", "null"],
            "description": "The upstream's HTTP status; null for a local tool.",
        },
        "content_type": {"type": ["string", "null"]},
        "result": {
            "description": "The tool's answer: JSON as parsed, text as text, other bytes as "
            '{"base64", "size", "content_type"}.'
        },
        "truncated": {
            "type": "boolean",
            "description": "Present and true when the answer was cut at the size limit.",
        },
        "budget": {
            "type": "object",
            "description": "Present when the tool's result budget selected part of the "
            "answer or cut it to size: `selected` (the JMESPath expression), `bytes`, "
            "`max_bytes`, `cut`, and `left_out` for the arrays, strings and objects cut "
            "(`path`, `kept`, `left_out`, `unit`: items, characters or keys; the "
            "largest 16, "
            "and `more_left_out` counting the others).",
        },
        "headers": {
            "type": "object",
            "additionalProperties": {"type": "string"},
            "description": "Present when the upstream answered headers a model may need "
            "to go on: the next page (`link`, `next-page`), a count (`x-total-count`), "
            "where a created thing is (`location`), its version (`etag`), when to retry "
            "(`retry-after`). Names in lower case.",
        },
    },
}
ERROR = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["type", "message"],
            "properties": {
                "type": {
                    "type": "string",
                    "description": "unauthenticated, not_found, invalid_arguments, "
                    "upstream_unavailable, upstream_timeout, ...",
                },
                "message": {"type": "string"},
                "problems": {
                    "type": "array",
                    "description": "For invalid_arguments: what is wrong where.",
                    "items": {
                        "type": "object",
                        "required": ["path", "message"],
                        "properties": {
                            "path": {"type": "string", "description": "A JSON path: $.a.b"},
                            "message": {"type": "string"},
                        },
                    },
                },
            },
        }
    },
}


def error_response(description: str) -> JsonObject:
    schema = ref("toolbridge.Error")
    return {"description": description, "content": {"application/json": {"schema": schema}}}


NOTE = {
    "type": "object",
    "properties": {"id": {"type": "integer"}, "title": {"type": "string"}},
    "required": ["id", "title"],
}
GET_NOTE = Tool(
    name="getNote",
    original_name="getNote",
    description="Get one note\n\nReturns the note with this id.",
    input_schema={
        "type": "object",
        "properties": {"noteId": {"type": "integer", "minimum": 1}},
        "required": ["noteId"],
        "additionalProperties": False,
    },
    output_schema={"$ref": "#/$defs/Note", "$defs": {"Note": NOTE}},
    output_promised=True,  # (a server that says `output_schema: publish`)
    source="notes",
    deprecated=True,
    target=HttpOperation(
        server="notes", method="GET", path="/notes/{n}", base_url=None, operation_id="getNote"
    ),
)
NOW = Tool(
    name="now",
    original_name="now",
    description="Tell the current date and time.",
    input_schema={"type": "object", "properties": {}, "additionalProperties": False},
    source="clock",
    target=PythonFunction(
        tool_id="clock", function="clock:Tools.now", func=print, arguments_model=None
    ),
)


def test_an_output_schema_answers_are_not_held_to_is_not_published() -> None:
    """An upstream may answer otherwise than its document says (passed on as it is): only a
    promised output schema (a server's `output_schema: publish`, a local tool's return model)
    is the `result` of the gateway's own document, as only such is MCP's outputSchema."""
    withheld = remote(
        "w", output_schema={"type": "object", "properties": {"n": {"type": "integer"}}}
    )
    document = gateway_document([replace(withheld, output_promised=False)], title="gw")
    operation = document["paths"]["/v1/tools/w/call"]["post"]
    schema = operation["responses"]["200"]["content"]["application/json"]["schema"]
    assert schema == {"$ref": "#/components/schemas/toolbridge.Result"}


def test_each_tool_is_one_post_operation_of_the_gateway() -> None:
    """A tool without arguments has no request body: Open WebUI refuses to send an empty one."""
    document = gateway_document([GET_NOTE, NOW], title="gw", server_url="http://gw.test/")
    assert document == {
        "openapi": "3.1.0",
        "info": {
            "title": "gw",
            "version": "0.1.0",
            "description": "The tools this caller may use, each one operation: POST its arguments "
            "as a JSON object, read the result envelope.",
        },
        "servers": [{"url": "http://gw.test"}],
        "paths": {
            "/v1/tools/getNote/call": {
                "post": {
                    "operationId": "getNote",
                    "summary": "Get one note",
                    "description": "Get one note\n\nReturns the note with this id.",
                    "tags": ["notes"],
                    "deprecated": True,
                    "requestBody": {
                        "required": True,
                        "content": {"application/json": {"schema": GET_NOTE.input_schema}},
                    },
                    "responses": {
                        "200": {
                            "description": RAN,
                            "content": {"application/json": {"schema": whole_result(ref("Note"))}},
                        },
                        **ERRORS,
                    },
                }
            },
            "/v1/tools/now/call": {
                "post": {
                    "operationId": "now",
                    "summary": "Tell the current date and time.",
                    "tags": ["clock"],
                    "responses": {
                        "200": {
                            "description": RAN,
                            "content": {"application/json": {"schema": ref("toolbridge.Result")}},
                        },
                        **ERRORS,
                    },
                }
            },
        },
        "components": {
            "schemas": {"toolbridge.Result": RESULT, "toolbridge.Error": ERROR, "Note": NOTE},
            "responses": {
                "toolbridge.Unauthenticated": error_response(
                    "No API key or token, or one the gateway does not know."
                ),
                "toolbridge.NotFound": error_response(
                    "No such tool, or one this caller may not use (the two are indistinguishable)."
                ),
                "toolbridge.InvalidArguments": error_response(
                    "The arguments do not fit the tool's input schema; `problems` says what is "
                    "wrong where."
                ),
                "toolbridge.UpstreamUnavailable": error_response(
                    "The tool's upstream could not be reached."
                ),
                "toolbridge.UpstreamTimeout": error_response(
                    "The tool's upstream did not answer in time."
                ),
            },
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "The caller's API key or token.",
                }
            },
        },
        "security": [{"bearer": []}],
    }
    assert findings(document) == []


def test_no_tools_is_a_valid_document_too() -> None:
    document = gateway_document([])
    assert (document["paths"], "servers" in document, findings(document)) == ({}, False, [])


def test_summaries_are_one_short_line() -> None:
    long = remote("long", description="word " * 40 + "\n\nMore.")
    one = remote("one", description="Only a line.")
    document = gateway_document([long, one])
    operations = [document["paths"][f"/v1/tools/{n}/call"]["post"] for n in ("long", "one")]
    assert [(op["summary"], op.get("description")) for op in operations] == [
        ("word " * 22 + "word\u2026", "word " * 40 + "\n\nMore."),
        ("Only a line.", None),
    ]


def test_a_request_body_is_required_only_when_an_argument_is() -> None:
    optional = remote("optional", input_schema={"type": "object", "properties": {"a": {}}})
    free = remote("free", input_schema={"type": "object"})
    document = gateway_document([optional, free])
    bodies = [
        document["paths"][f"/v1/tools/{n}/call"]["post"]["requestBody"]
        for n in ("optional", "free")
    ]
    assert bodies == [
        {"required": False, "content": {"application/json": {"schema": optional.input_schema}}},
        {"required": False, "content": {"application/json": {"schema": {"type": "object"}}}},
    ]


def test_arrays_in_input_schemas_carry_items() -> None:
    """Open WebUI hands the schemas to its model; OpenAI's reject an array without `items`.
    (Optional, so it also takes null: what a call accepts.)"""
    tool = remote(
        "tags", input_schema={"type": "object", "properties": {"tags": {"type": "array"}}}
    )
    document = gateway_document([tool])
    body = document["paths"]["/v1/tools/tags/call"]["post"]["requestBody"]
    assert body["content"]["application/json"]["schema"] == {
        "type": "object",
        "properties": {"tags": {"type": ["array", "null"], "items": {}}},
    }


# -- definitions -------------------------------------------------------------------------------


def test_definitions_move_to_the_components_shared_when_they_mean_the_same() -> None:
    """`Tag` is the same everywhere: shared under its name. `Note` differs between input and
    output (its optional `tags` may be null in the input): each meaning is named after the first
    tool part that has it, and the two outputs that mean the same share one. `Page` has one
    meaning (its `Note` is the same wherever `Page` is): its own name."""
    tag = {"type": "string", "maxLength": 20}
    tags_in = {"tags": {"type": "array", "items": {"$ref": "#/$defs/Tag"}}}
    note_in = {"type": "object", "properties": tags_in}
    note_out = {"type": "object", "properties": {**tags_in, "id": {"type": "integer"}}}
    page = {"type": "array", "items": {"$ref": "#/$defs/Note"}}
    create = remote(
        "createNote",
        input_schema={
            "type": "object",
            "properties": {"note": {"$ref": "#/$defs/Note"}, "tag": {"$ref": "#/$defs/Tag"}},
            "required": ["note", "tag"],
            "$defs": {"Note": note_in, "Tag": tag},
        },
        output_schema={"$ref": "#/$defs/Note", "$defs": {"Note": note_out, "Tag": tag}},
    )
    listing = remote(
        "listNotes",
        output_schema={
            "$ref": "#/$defs/Page",
            "$defs": {"Page": page, "Note": note_out, "Tag": tag},
        },
    )
    document = gateway_document([create, listing])
    tags = {"type": "array", "items": ref("Tag")}
    assert document["components"]["schemas"] == {
        "toolbridge.Result": RESULT,
        "toolbridge.Error": ERROR,
        "createNote.Note": {
            "type": "object",
            "properties": {"tags": {"type": ["array", "null"], "items": ref("Tag")}},
        },
        "Tag": tag,
        "createNote.result.Note": {
            "type": "object",
            "properties": {"tags": tags, "id": {"type": "integer"}},
        },
        "Page": {"type": "array", "items": ref("createNote.result.Note")},
    }
    assert (
        body(document, "createNote"),
        result(document, "createNote"),
        result(document, "listNotes"),
    ) == (
        {
            "type": "object",
            "properties": {"note": ref("createNote.Note"), "tag": ref("Tag")},
            "required": ["note", "tag"],
        },
        whole_result(ref("createNote.result.Note")),
        whole_result(ref("Page")),
    )
    assert findings(document) == []


def test_definitions_are_shared_by_everything_they_reach_cycles_included() -> None:
    """`Tree` refers to itself through `Node`: the same cycle in two tools is one pair of
    components. A third tool's `Tree` is the same JSON, but its `Node` differs: `Tree` there
    means something else, and gets a name of its own too. A definition that refers to its
    tool's root schema is that tool's alone, even where its JSON is the same."""
    tree = {"type": "object", "properties": {"children": {"$ref": "#/$defs/Node"}}}
    node = {"type": "array", "items": {"$ref": "#/$defs/Tree"}}
    other_node = {"type": "array", "items": {"$ref": "#/$defs/Tree"}, "maxItems": 3}
    rooted = {"type": "object", "properties": {"again": {"$ref": "#"}}}

    def tool(name: str, defs: dict[str, Any]) -> Tool:
        output = {
            "type": "object",
            "properties": {"tree": {"$ref": "#/$defs/Tree"}, "up": {"$ref": "#/$defs/Up"}},
            "$defs": {**defs, "Up": rooted},
        }
        return remote(name, output_schema=output)

    document = gateway_document(
        [
            tool("a", {"Tree": tree, "Node": node}),
            tool("b", {"Node": node, "Tree": tree}),
            tool("c", {"Tree": tree, "Node": other_node}),
        ]
    )
    schemas = document["components"]["schemas"]
    names = [name for name in schemas if not name.startswith("toolbridge.")]
    assert names == [
        "a.result.Tree",
        "a.result.Node",
        "a.result.Up",
        "a.result",
        "b.result.Up",
        "b.result",
        "c.result.Tree",
        "c.result.Node",
        "c.result.Up",
        "c.result",
    ]
    assert (schemas["a.result.Node"], schemas["c.result.Node"]) == (
        {"type": "array", "items": {"allOf": [ref("a.result.Tree")]}},  # closes the cycle
        {"type": "array", "items": {"allOf": [ref("c.result.Tree")]}, "maxItems": 3},
    )
    assert schemas["b.result"]["properties"]["tree"] == ref("a.result.Tree")
    assert findings(document) == []


def test_component_names_are_unique_and_legal() -> None:
    """A definition named like one of the gateway's own, or with characters OpenAPI refuses."""
    one = remote(
        "one",
        input_schema={
            "type": "object",
            "properties": {
                "a": {"$ref": "#/$defs/toolbridge.Error"},
                "b": {"$ref": "#/$defs/a%20b~1c"},
            },
            "required": ["a", "b"],  # so that no optional argument takes null here
            "$defs": {"toolbridge.Error": {"type": "string"}, "a b/c": {"type": "integer"}},
        },
    )
    document = gateway_document([one])
    assert body(document, "one") == {
        "type": "object",
        "properties": {"a": ref("toolbridge.Error_2"), "b": ref("a_b_c")},
        "required": ["a", "b"],
    }
    assert list(document["components"]["schemas"]) == [
        "toolbridge.Result",
        "toolbridge.Error",
        "toolbridge.Error_2",
        "a_b_c",
    ]
    assert findings(document) == []


def test_a_reference_to_the_schema_itself_gets_the_schema_a_name() -> None:
    tree = remote(
        "tree",
        input_schema={
            "type": "object",
            "properties": {
                "name": {"type": "string"},
                "children": {"type": "array", "items": {"$ref": "#"}},
            },
            "required": ["name", "children"],  # so that no optional argument takes null here
        },
    )
    document = gateway_document([tree])
    assert (body(document, "tree"), document["components"]["schemas"]["tree.input"]) == (
        ref("tree.input"),
        {
            "type": "object",
            "properties": {
                "name": {"type": "string"},
                "children": {"type": "array", "items": {"allOf": [ref("tree.input")]}},
            },
            "required": ["name", "children"],
        },
    )
    assert findings(document) == []


def test_a_cycle_through_properties_and_items_is_closed_with_all_of() -> None:
    """Same meaning; but a client that inlines along properties and items stops at `allOf`."""
    person = {
        "type": "object",
        "properties": {
            "friends": {"type": "array", "items": {"$ref": "#/$defs/Person"}},
            "employer": {"$ref": "#/$defs/Company"},
            "nickname": {"anyOf": [{"$ref": "#/$defs/Person"}, {"type": "null"}]},
        },
        "required": ["friends", "employer", "nickname"],  # no optional argument takes null
    }
    company = {
        "type": "object",
        "properties": {"owner": {"$ref": "#/$defs/Person", "description": "Boss."}},
        "required": ["owner"],
    }
    tool = remote(
        "people",
        input_schema={
            "type": "object",
            "properties": {"person": {"$ref": "#/$defs/Person"}},
            "required": ["person"],
            "$defs": {"Person": person, "Company": company},
        },
    )
    document = gateway_document([tool])
    schemas = document["components"]["schemas"]
    assert (schemas["Person"], schemas["Company"]) == (
        {
            "type": "object",
            "properties": {
                "friends": {"type": "array", "items": {"allOf": [ref("Person")]}},
                "employer": ref("Company"),
                "nickname": {"anyOf": [ref("Person"), {"type": "null"}]},
            },
            "required": ["friends", "employer", "nickname"],
        },
        {
            "type": "object",
            "properties": {"owner": {"allOf": [ref("Person")], "description": "Boss."}},
            "required": ["owner"],
        },
    )
    assert open_webui_tools(document) == [
        {
            "name": "people",
            "description": "Do people.",
            "parameters": {
                "type": "object",
                "properties": {
                    "person": {
                        "type": "object",
                        "properties": {
                            "friends": {"type": "array", "items": {"allOf": [ref("Person")]}},
                            "employer": {
                                "type": "object",
                                "properties": {
                                    "owner": {"allOf": [ref("Person")], "description": "Boss."}
                                },
                                "required": ["owner"],
                            },
                            "nickname": {"anyOf": [ref("Person"), {"type": "null"}]},
                        },
                        "required": ["friends", "employer", "nickname"],
                    }
                },
                "required": ["person"],
            },
        }
    ]
    assert findings(document) == []


REQUIRED = ["flag", "when", "size", "big", "id", "kept"]


def test_defaults_the_schema_refuses_and_foreign_regexes_are_left_out() -> None:
    """Both come from real documents (okta, xero); openapi-spec-validator rejects them."""
    tool = remote(
        "odd",
        input_schema={
            "type": "object",
            "properties": {
                "flag": {"type": "boolean", "default": "false"},
                "when": {"type": "string", "format": "date-time", "default": "Assigned"},
                "size": {"$ref": "#/$defs/Size", "default": 3},
                "big": {"$ref": "#/$defs/Size", "default": 300},
                "id": {"type": "string", "pattern": "(?i)^[0-9a-f]+$", "default": "ab"},
                "kept": {"type": "string", "pattern": "^[a-z]+$", "default": "ok"},
            },
            "required": REQUIRED,  # so that no optional argument takes null here
            "$defs": {"Size": {"type": "integer", "maximum": 10, "default": "ten"}},
        },
    )
    document = gateway_document([tool])
    assert (body(document, "odd"), document["components"]["schemas"]["Size"]) == (
        {
            "type": "object",
            "properties": {
                "flag": {"type": "boolean"},
                "when": {"type": "string", "format": "date-time"},
                "size": {**ref("Size"), "default": 3},
                "big": ref("Size"),
                "id": {"type": "string", "default": "ab"},
                "kept": {"type": "string", "pattern": "^[a-z]+$", "default": "ok"},
            },
            "required": REQUIRED,
        },
        {"type": "integer", "maximum": 10},
    )
    assert tool.input_schema["properties"]["flag"] == {"type": "boolean", "default": "false"}
    assert findings(document) == []


@pytest.mark.parametrize("authenticated", [True, False])
def test_the_document_in_parts_is_the_document(authenticated: bool) -> None:
    tools = [GET_NOTE, NOW]
    parts = list(gateway_document_json(tools, server_url="http://x", authenticated=authenticated))
    assert len(parts) == len(tools) + 2  # a head, one part per tool, a tail
    assert orjson.loads(b"".join(parts)) == gateway_document(
        tools, server_url="http://x", authenticated=authenticated
    )
    assert orjson.loads(b"".join(gateway_document_json([]))) == gateway_document([])


# -- the feature documents, and the corpus ---------------------------------------------------------


@pytest.mark.parametrize("spec", SPECS, ids=[p.name for p in SPECS])
def test_the_document_of_each_feature_spec_validates(spec: Path) -> None:
    document = gateway_document(tools_of(spec), server_url="http://127.0.0.1:8080")
    assert findings(document) == []


@pytest.mark.parametrize("spec", SPECS, ids=[p.name for p in SPECS])
def test_the_converter_reads_the_document_back_into_the_same_tools(
    spec: Path, tmp_path: Path
) -> None:
    tools = tools_of(spec)
    assert round_trip(tools, tmp_path) == arguments(tools)


@pytest.mark.parametrize("spec", SPECS, ids=[p.name for p in SPECS])
def test_open_webui_reads_every_tool(spec: Path) -> None:
    tools = tools_of(spec)
    assert [t["name"] for t in open_webui_tools(gateway_document(tools))] == [t.name for t in tools]


def or_null(schema: JsonSchema) -> JsonSchema:
    """An optional argument of a plain type as the document says it: null is taken too."""
    return {**schema, "type": [schema["type"], "null"]}


def test_what_open_webui_makes_of_the_demo() -> None:
    """Every optional argument also takes null (the gateway reads it as "not given")."""
    document = gateway_document(tools_of(ROOT / "specs" / "demo.yaml"))
    payload = {t["name"]: t["parameters"] for t in open_webui_tools(document)}
    title = {
        "type": "string",
        "minLength": 1,
        "maxLength": 100,
        "description": "A short title.",
        "examples": ["Groceries"],
    }
    note_input = {
        "title": title,
        "body": or_null(
            {
                "type": "string",
                "maxLength": 10000,
                "default": "",
                "description": "The text of the note.",
                "examples": ["Milk", "eggs", "coffee."],
            }
        ),
        "tags": or_null(
            {
                "type": "array",
                "items": {"type": "string"},
                "default": [],
                "description": "Labels to find the note by.",
            }
        ),
        "pinned": or_null(
            {
                "type": "boolean",
                "default": False,
                "description": "Pinned notes are listed first.",
            }
        ),
    }
    note_id = {
        "type": "integer",
        "minimum": 1,
        "description": "The id of the note, as returned by listNotes or createNote.",
    }
    empty = {"type": "object", "properties": {}, "required": []}
    assert payload == {
        "listNotes": {
            "type": "object",
            "properties": {
                "tag": or_null(
                    {
                        "type": "string",
                        "examples": ["shopping"],
                        "description": "Only notes that carry this tag.",
                    }
                )
            },
            "required": [],
        },
        "createNote": {"type": "object", "properties": note_input, "required": ["title"]},
        "getNote": {"type": "object", "properties": {"noteId": note_id}, "required": ["noteId"]},
        "deleteNote": {"type": "object", "properties": {"noteId": note_id}, "required": ["noteId"]},
        "updateNote": {
            "type": "object",
            "properties": {
                "noteId": note_id,
                "title": or_null(
                    {
                        "type": "string",
                        "minLength": 1,
                        "maxLength": 100,
                        "description": "New title.",
                    }
                ),
                "body": or_null({"type": "string", "maxLength": 10000, "description": "New text."}),
                "tags": or_null(
                    {
                        "type": "array",
                        "description": "New tags; replaces the old list.",
                        "items": {"type": "string"},
                    }
                ),
                "pinned": or_null(
                    {"type": "boolean", "description": "Pinned notes are listed first."}
                ),
            },
            "required": ["noteId"],
        },
        "getStatus": empty,
    }


BIG = [
    "stripe/spec3.yaml",
    "kubernetes/swagger.json",
    "github/api.github.com.yaml",
    "openai/openapi.yaml",  # defaults its schemas refuse
    "okta/management-minimal.yaml",  # defaults that are no date-time; (?i) in patterns
    "xero/xero_accounting.yaml",  # "false" as a boolean default; cycles through properties
]


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> DocumentStore:
    """One parse cache beside the corpus tests' (tests/test_corpus.py), so YAML is parsed once."""
    return DocumentStore(cache_dir=tmp_path_factory.getbasetemp() / "cache")


@pytest.mark.corpus
@pytest.mark.parametrize("name", BIG)
def test_corpus_documents_validate_and_read_back(
    name: str, store: DocumentStore, tmp_path: Path
) -> None:
    tools = tools_of(CORPUS / name, store)
    document = gateway_document(tools, server_url="http://127.0.0.1:8080")
    assert findings(document)[:5] == []
    assert len(open_webui_tools(document)) == len(tools)
    assert round_trip(tools, tmp_path) == arguments(tools)


# -- helpers -------------------------------------------------------------------------------------


def arguments(tools: list[Tool]) -> dict[str, tuple[list[str], list[str]]]:
    """Each tool's argument names and required arguments."""
    return {
        t.name: (
            sorted(t.input_schema.get("properties") or {}),
            sorted(t.input_schema.get("required") or []),
        )
        for t in tools
    }


def round_trip(tools: list[Tool], folder: Path) -> dict[str, tuple[list[str], list[str]]]:
    path = folder / "gateway.json"
    path.write_bytes(orjson.dumps(gateway_document(tools, server_url="http://gw.test")))
    return arguments(list(convert(DocumentStore(), path.as_uri(), source="gateway").tools))


def open_webui_tools(document: JsonObject) -> list[JsonObject]:
    """The tool payloads Open WebUI makes of a tool server's OpenAPI document.

    As `convert_openapi_to_tool_payload` in open_webui/utils/tools.py (0.6) does it: the JSON
    request body's schema with its references inlined along `properties` and `items` (with no
    cycle check: a cycle is a RecursionError, and Open WebUI drops the server), its properties and
    required list taken as the tool's parameters.
    """
    components = document.get("components", {})

    def resolve(schema: Any) -> Any:
        if not schema:
            return {}
        if "$ref" in schema:
            found = components
            for part in schema["$ref"].strip("#/").split("/")[1:]:
                found = found.get(part, {})
            return resolve(found)
        out = copy.deepcopy(schema)
        for key, sub in (out.get("properties") or {}).items():
            out["properties"][key] = resolve(sub)
        if "items" in out:
            out["items"] = resolve(out["items"])
        return out

    payload = []
    for methods in document["paths"].values():
        for operation in methods.values():
            tool = {
                "name": operation["operationId"],
                "description": operation.get("description", operation.get("summary")),
                "parameters": {"type": "object", "properties": {}, "required": []},
            }
            schema = (
                operation.get("requestBody", {})
                .get("content", {})
                .get("application/json", {})
                .get("schema")
            )
            if schema:
                resolved = resolve(schema)
                if resolved.get("properties"):
                    tool["parameters"]["properties"].update(resolved["properties"])
                    tool["parameters"]["required"] = sorted(resolved.get("required", []))
                elif resolved.get("type") == "array":
                    tool["parameters"] = resolved
            payload.append(tool)
    return payload


def test_in_open_mode_the_document_asks_for_no_credentials() -> None:
    """Without `auth` the gateway takes every caller: its document says so (no scheme, no 401)."""
    closed = gateway_document([GET_NOTE])
    opened = gateway_document([GET_NOTE], authenticated=False)

    assert (closed["security"], list(closed["components"]["securitySchemes"])) == (
        [{"bearer": []}],
        ["bearer"],
    )
    assert "security" not in opened
    assert "securitySchemes" not in opened["components"]
    assert "toolbridge.Unauthenticated" not in opened["components"]["responses"]
    responses = opened["paths"]["/v1/tools/getNote/call"]["post"]["responses"]
    assert list(responses) == ["200", "404", "422", "502", "504"]
