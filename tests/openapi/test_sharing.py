"""What operations share is converted once and shared: parameters, responses, `$defs`.

Large documents repeat themselves (Kubernetes: 8,122 parameters, 48 distinct ones), so the
converter translates a shared piece once per document and hands every tool the same object.
That is what keeps a large catalog small in memory and quick to build; the values are the same
as if each had been translated on its own, which the golden tests hold.
"""

from __future__ import annotations

import gc
import math
import re
import textwrap
import weakref
from pathlib import Path

import pytest

from toolbridge.bulk import collector_paused
from toolbridge.errors import DocumentError
from toolbridge.openapi.convert import convert
from toolbridge.openapi.documents import DocumentStore
from toolbridge.tools import Tool

SHARED = """
    openapi: 3.0.3
    info: {title: shared, version: "1"}
    paths:
      /pets:
        get:
          operationId: listPets
          parameters: [{$ref: "#/components/parameters/limit"}]
          responses:
            "200":
              description: ok
              content: {application/json: {schema: {$ref: "#/components/schemas/Pets"}}}
      /cats:
        get:
          operationId: listCats
          parameters: [{$ref: "#/components/parameters/limit"}]
          responses:
            "200":
              description: ok
              content: {application/json: {schema: {$ref: "#/components/schemas/Pets"}}}
        post:
          operationId: addCat
          requestBody:
            content: {application/json: {schema: {$ref: "#/components/schemas/Pets"}}}
          responses: {"204": {description: done}}
    components:
      parameters:
        limit: {name: limit, in: query, description: "How many.", schema: {type: integer}}
      schemas:
        Pets: {type: array, items: {$ref: "#/components/schemas/Pet"}}
        Pet: {type: object, properties: {name: {type: string}}}
"""

SWAGGER = """
    swagger: "2.0"
    info: {title: shared, version: "1"}
    paths:
      /a:
        get:
          operationId: getA
          parameters: [{$ref: "#/parameters/pretty"}]
          responses: {"200": {description: ok, schema: {$ref: "#/definitions/Thing"}}}
      /b:
        get:
          operationId: getB
          parameters: [{$ref: "#/parameters/pretty"}]
          responses: {"200": {description: ok, schema: {$ref: "#/definitions/Thing"}}}
    parameters:
      pretty: {name: pretty, in: query, type: string, description: "Pretty-print."}
    definitions:
      Thing: {type: object, properties: {id: {type: string}}}
"""


def _convert(tmp_path: Path, text: str) -> dict[str, Tool]:
    path = tmp_path / "openapi.yaml"
    path.write_text(textwrap.dedent(text))
    conversion = convert(DocumentStore(cache_dir=None), path.as_uri())
    return {tool.name: tool for tool in conversion.tools}


def test_a_shared_parameter_is_one_schema_and_one_binding(tmp_path: Path) -> None:
    """Both operations get the same `limit` schema and binding objects, with the same value."""
    tools = _convert(tmp_path, SHARED)
    pets, cats = tools["listPets"], tools["listCats"]
    assert pets.input_schema["properties"]["limit"] == {
        "type": "integer",
        "description": "How many.",
    }
    assert pets.input_schema["properties"]["limit"] is cats.input_schema["properties"]["limit"]
    assert pets.http.params[0] is cats.http.params[0]


def test_tools_needing_the_same_definitions_share_their_defs(tmp_path: Path) -> None:
    tools = _convert(tmp_path, SHARED)
    pets, cats, add = tools["listPets"], tools["listCats"], tools["addCat"]
    assert pets.output_schema == {
        "$ref": "#/$defs/Pets",
        "$defs": {
            "Pet": {"type": "object", "properties": {"name": {"type": "string"}}},
            "Pets": {"type": "array", "items": {"$ref": "#/$defs/Pet"}},
        },
    }
    assert pets.output_schema is cats.output_schema
    # The request side translates separately (readOnly and writeOnly differ), shared within it.
    assert pets.output_schema is not None
    assert add.input_schema["$defs"] == pets.output_schema["$defs"]


def test_swagger2_parameters_and_responses_written_out_are_shared(tmp_path: Path) -> None:
    """A 2.0 parameter is reshaped once; `{$ref}` responses written at each use share one."""
    tools = _convert(tmp_path, SWAGGER)
    a, b = tools["getA"], tools["getB"]
    assert a.input_schema["properties"]["pretty"] == {
        "type": "string",
        "description": "Pretty-print.",
    }
    assert a.input_schema["properties"]["pretty"] is b.input_schema["properties"]["pretty"]
    assert a.output_schema is b.output_schema


WRITTEN_OUT = """
    swagger: "2.0"
    info: {title: written out, version: "1"}
    paths:
      /a:
        get:
          operationId: getA
          parameters:
            - {name: watch, in: query, type: boolean, description: "Watch for changes."}
            - {name: limit, in: query, type: number, default: .nan}
          responses: {"200": {description: ok}}
      /b:
        get:
          operationId: getB
          parameters:
            - {name: watch, in: query, type: boolean, description: "Watch for changes."}
            - {name: limit, in: query, type: number, default: null}
          responses: {"200": {description: ok}}
      /c:
        get:
          operationId: getC
          parameters:
            - {name: watch, in: query, type: boolean, description: "Watch, differently."}
          responses: {"200": {description: ok}}
"""


def test_a_parameter_written_out_alike_at_each_operation_is_read_once(tmp_path: Path) -> None:
    """Parameters that are the same JSON (Kubernetes writes its query parameters out at each
    of its 1,123 operations) share one schema and binding; one that differs in anything, or
    whose JSON cannot tell it apart (NaN is written as null), has its own."""
    tools = _convert(tmp_path, WRITTEN_OUT)
    a, b, c = (tools[name].input_schema["properties"] for name in ("getA", "getB", "getC"))
    assert a["watch"] == {"type": "boolean", "description": "Watch for changes."}
    assert a["watch"] is b["watch"]
    assert tools["getA"].http.params[0] is tools["getB"].http.params[0]
    assert c["watch"] == {"type": "boolean", "description": "Watch, differently."}
    assert (math.isnan(a["limit"]["default"]), b["limit"]["default"]) == (True, None)


ALIKE = """
    swagger: "2.0"
    info: {title: alike, version: "1"}
    paths:
      /pods/{name}:
        parameters: [{name: name, in: path, required: true, type: string}]
        get:
          operationId: readPod
          parameters: [{name: pretty, in: query, type: string}]
          responses:
            "200": {description: OK, schema: {type: object, properties: {phase: {type: string}}}}
      /services/{name}:
        parameters: [{name: name, in: path, required: true, type: string}]
        get:
          operationId: readService
          parameters: [{name: pretty, in: query, type: string}]
          responses:
            "200": {description: OK, schema: {type: object, properties: {phase: {type: string}}}}
        put:
          operationId: replaceService
          produces: [application/yaml]
          parameters:
            - {name: pretty, in: query, type: string}
            - {name: dryRun, in: query, type: string}
          responses:
            "200": {description: OK, schema: {type: object, properties: {phase: {type: string}}}}
"""


def test_operations_written_out_alike_share_their_input_and_output_sides(tmp_path: Path) -> None:
    """Kubernetes writes out the same parameters and responses at many operations (1,123
    operations, 475 different input sides, 402 different responses): each different one is
    read once, and the operations that read alike share what it became."""
    tools = _convert(tmp_path, ALIKE)
    pod, service, replace = tools["readPod"], tools["readService"], tools["replaceService"]
    assert pod.input_schema == {
        "type": "object",
        "properties": {"name": {"type": "string"}, "pretty": {"type": "string"}},
        "required": ["name"],
        "additionalProperties": False,
    }
    assert pod.input_schema is service.input_schema
    assert pod.http.params == service.http.params
    assert replace.input_schema["properties"].keys() == {"name", "pretty", "dryRun"}
    assert pod.output_schema == {"type": "object", "properties": {"phase": {"type": "string"}}}
    assert pod.output_schema is service.output_schema
    assert (pod.http.accept, replace.http.accept) == ("application/json", "application/yaml")
    assert replace.output_schema is None  # produced as YAML only: no JSON output schema


def test_the_collector_runs_again_after_a_conversion(tmp_path: Path) -> None:
    """Collection is paused while converting, and back on afterwards, nothing more frozen
    (only a server's start keeps what it built out of the collector's reach)."""
    frozen = gc.get_freeze_count()
    _convert(tmp_path, SHARED)
    assert (gc.isenabled(), gc.get_freeze_count() <= frozen) == (True, True)  # some died


def test_a_start_keeps_what_it_built_out_of_the_collectors_walks() -> None:
    frozen = gc.get_freeze_count()
    with collector_paused(keep=True):
        built = [[n] for n in range(1_000)]  # lists are always tracked; such dicts not
    assert (gc.isenabled(), gc.get_freeze_count() - frozen >= len(built)) == (True, True)


def test_cycles_made_between_builds_are_collected_without_being_asked() -> None:
    """Between two small builds (a reload re-reading its servers) a serving process makes a
    few cycles (a re-imported tool file's classes). The collector must still come round to
    them: pausing it must not reset the count that starts a collection (`gc.freeze` did, and
    such a process grew by about 4 MB per 100 reloads)."""

    class Node:
        pass

    gc.collect()
    alive: list[weakref.ref[Node]] = []
    for _ in range(2_000):
        with collector_paused():
            kept: list[dict[str, int]] = [{} for _ in range(5)]
        node = Node()
        node.me = node  # type: ignore[attr-defined]
        alive.append(weakref.ref(node))
        del node, kept
    assert sum(ref() is not None for ref in alive) < 1_000


def test_the_collector_runs_again_after_a_failed_conversion(tmp_path: Path) -> None:
    frozen = gc.get_freeze_count()
    with pytest.raises(DocumentError, match=re.escape("expected 2.0, 3.0.x or 3.1.x")):
        _convert(tmp_path, "openapi: 9.0.0\ninfo: {title: x}\npaths: {}\n")
    assert (gc.isenabled(), gc.get_freeze_count() <= frozen) == (True, True)  # some died


def test_a_paused_collector_stays_paused(tmp_path: Path) -> None:
    """A program that turned collection off itself does not find it on after converting."""
    gc.disable()
    try:
        _convert(tmp_path, SHARED)
        assert not gc.isenabled()
    finally:
        gc.enable()


DIRECTIONS = """
    openapi: 3.0.3
    info: {title: directions, version: "1"}
    paths:
      /pets:
        get:
          operationId: listPets
          responses:
            "200":
              description: ok
              content: {application/json: {schema: {$ref: "#/components/schemas/Pet"}}}
        post:
          operationId: addPet
          requestBody:
            content: {application/json: {schema: {$ref: "#/components/schemas/Wrapper"}}}
          responses: {"204": {description: done}}
    components:
      schemas:
        Wrapper: {type: object, properties: {pet: {$ref: "#/components/schemas/Pet"}}}
        Pet:
          type: object
          properties:
            id: {type: integer, readOnly: true}
            tag: {$ref: "#/components/schemas/Tag"}
        Tag: {type: object, properties: {label: {type: string}}}
"""


def test_a_definition_that_reads_alike_both_ways_is_translated_once(tmp_path: Path) -> None:
    """`Tag` is the same in requests and responses: one object serves both. `Pet` has a
    readOnly property, so requests get their own translation of it, without `id`."""
    tools = _convert(tmp_path, DIRECTIONS)
    request = tools["addPet"].input_schema["$defs"]
    response = tools["listPets"].output_schema
    assert response is not None
    assert request["Pet"] == {"type": "object", "properties": {"tag": {"$ref": "#/$defs/Tag"}}}
    assert response["$defs"]["Pet"] == {
        "type": "object",
        "properties": {"id": {"type": "integer", "readOnly": True}, "tag": {"$ref": "#/$defs/Tag"}},
    }
    assert request["Tag"] == {"type": "object", "properties": {"label": {"type": "string"}}}
    assert request["Tag"] is response["$defs"]["Tag"]
