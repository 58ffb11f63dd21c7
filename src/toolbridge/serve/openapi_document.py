"""The gateway's own OpenAPI 3.1 document: each tool as `POST /v1/tools/{name}/call`.

With it, any OpenAPI tool-server client (Open WebUI among them) can register the gateway as one
tool server. Pure: tools in, a JSON object out; the caller decides which tools (the policy's).

A tool's schemas are self-contained: their `$ref`s say `#/$defs/X`. Inside an OpenAPI document a
`#...` reference resolves against the document root, so every `$defs` entry moves to
`components/schemas` and the references are rewritten to point there. (Keeping `$defs` in place
under an `$id` would also be valid JSON Schema, but OpenAPI clients resolve references only
under `#/components/schemas/`, Open WebUI's among them.) A definition that is the same in every
tool that has it, and refers only to definitions that are too, is shared under its own name
(`Note`); the others take the tool's name in front (`createNote.Note` for the input schema's,
`getNote.result.Note` for the output schema's).

One more rewrite, with no change in meaning: a reference that closes a cycle made only of
references, `properties` and `items` is written `{"allOf": [{"$ref": ...}]}`. Some clients
inline references along exactly those keywords with no cycle check (Open WebUI does, and a
recursion error there drops the whole tool server); `allOf` is where they stop. And every
array of an input schema carries `items` (`{}` when the document gave none): Open WebUI passes
the schemas on to whatever model it uses, and OpenAI's reject an array without it.
"""

from __future__ import annotations

from collections.abc import Iterator

import orjson

from toolbridge import schemas as js
from toolbridge.serve.document_components import Components, pointer
from toolbridge.tools import JsonObject, JsonSchema, Tool

SUMMARY_LENGTH = 120
"""Characters OpenAPI does not allow in a component name."""
_ERROR = "toolbridge.Error"
_RESULT = "toolbridge.Result"
_RESPONSES = {
    "401": ("toolbridge.Unauthenticated", "No API key or token, or one the gateway does not know."),
    "404": (
        "toolbridge.NotFound",
        "No such tool, or one this caller may not use (the two are indistinguishable).",
    ),
    "422": (
        "toolbridge.InvalidArguments",
        "The arguments do not fit the tool's input schema; `problems` says what is wrong where.",
    ),
    "502": ("toolbridge.UpstreamUnavailable", "The tool's upstream could not be reached."),
    "504": ("toolbridge.UpstreamTimeout", "The tool's upstream did not answer in time."),
}


def gateway_document(
    tools: list[Tool],
    *,
    title: str = "toolbridge",
    server_url: str | None = None,
    authenticated: bool = True,
) -> JsonObject:
    """The OpenAPI 3.1 document of `tools`, each as `POST /v1/tools/{name}/call`.

    The request body is the tool's input schema (left out for a tool that takes no arguments,
    since some clients refuse to send an empty body); the 200 answer is the result envelope,
    whose `result` follows the tool's output schema when `ok` is true and the answer was not
    truncated. `server_url` is the gateway's base URL, as its callers reach it. Without
    `authenticated` (a gateway in open mode) the document declares no security scheme and no
    401 answer: it says what the gateway accepts, no more and no less.
    """
    components = Components(tools)
    document = _head(title, server_url)
    document["paths"] = {
        _path(tool): {"post": _operation(tool, components, authenticated)} for tool in tools
    }
    document.update(_tail(components, authenticated))
    return document


def gateway_document_json(
    tools: list[Tool],
    *,
    title: str = "toolbridge",
    server_url: str | None = None,
    authenticated: bool = True,
) -> Iterator[bytes]:
    """`orjson.dumps(gateway_document(...))` in parts, one per tool: never held whole."""
    components = Components(tools)
    yield orjson.dumps(_head(title, server_url))[:-1] + b',"paths":{'
    for index, tool in enumerate(tools):
        item = orjson.dumps({_path(tool): {"post": _operation(tool, components, authenticated)}})
        yield item[1:-1] if index == 0 else b"," + item[1:-1]
    yield b"}," + orjson.dumps(_tail(components, authenticated))[1:]


def _head(title: str, server_url: str | None) -> JsonObject:
    document: JsonObject = {
        "openapi": "3.1.0",
        "info": {
            "title": title,
            "version": _version(),
            "description": "The tools this caller may use, each one operation: POST its "
            "arguments as a JSON object, read the result envelope.",
        },
    }
    if server_url is not None:
        document["servers"] = [{"url": server_url.rstrip("/") or "/"}]
    return document


def _path(tool: Tool) -> str:
    return f"/v1/tools/{tool.name}/call"


def _tail(components: Components, authenticated: bool) -> JsonObject:
    tail: JsonObject = {
        "components": {
            "schemas": {_RESULT: _result_schema(), _ERROR: _error_schema(), **components.schemas},
            "responses": {
                name: {
                    "description": text,
                    "content": {"application/json": {"schema": {"$ref": pointer(_ERROR)}}},
                }
                for status, (name, text) in _RESPONSES.items()
                if authenticated or status != "401"
            },
        }
    }
    if authenticated:
        tail["components"]["securitySchemes"] = {
            "bearer": {
                "type": "http",
                "scheme": "bearer",
                "description": "The caller's API key or token.",
            }
        }
        tail["security"] = [{"bearer": []}]
    return tail


def _operation(tool: Tool, components: Components, authenticated: bool) -> JsonObject:
    operation: JsonObject = {"operationId": tool.name}
    summary = _summary(tool.description)
    description = js.clean_text(tool.description)[0]
    if summary:
        operation["summary"] = summary
    if description != summary:  # Open WebUI reads the description, else the summary
        operation["description"] = description
    if tool.source:
        operation["tags"] = [tool.source]
    if tool.deprecated:
        operation["deprecated"] = True
    if _takes_arguments(tool.input_schema):
        operation["requestBody"] = {
            "required": bool(tool.input_schema.get("required")),
            "content": {"application/json": {"schema": components.schema(tool, "input")}},
        }
    responses: JsonObject = {
        "200": {
            "description": "The tool ran. `ok` is false when the upstream answered 4xx or 5xx "
            "or the local function failed; `result` then says why.",
            "content": {
                "application/json": {"schema": _envelope(components.schema(tool, "result"))}
            },
        }
    }
    for status, (name, _) in _RESPONSES.items():
        if authenticated or status != "401":
            responses[status] = {"$ref": f"#/components/responses/{name}"}
    operation["responses"] = responses
    return operation


def _takes_arguments(schema: JsonSchema) -> bool:
    """Whether a client needs to send a body: a closed object with no properties takes none."""
    if schema.get("properties") or schema.get("required"):
        return True
    closed = schema.get("additionalProperties") is False
    return not (closed and schema.get("type") == "object" and set(schema) <= _PLAIN_OBJECT)


_PLAIN_OBJECT = frozenset({"type", "properties", "additionalProperties", "description", "title"})


def _envelope(output: JsonSchema | None) -> JsonSchema:
    if output is None:
        return {"$ref": pointer(_RESULT)}
    # Only a successful, whole answer follows the output schema: an error body does not.
    when_whole = {
        "required": ["ok"],
        "properties": {"ok": {"const": True}},
        "not": {"required": ["truncated"]},
    }
    return {
        "allOf": [
            {"$ref": pointer(_RESULT)},
            {"if": when_whole, "then": {"properties": {"result": output}}},
        ]
    }


def _result_schema() -> JsonSchema:
    return {
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


def _error_schema() -> JsonSchema:
    return {
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


def _summary(description: str) -> str:
    first_line = js.clean_text(description)[0].split("\n", 1)[0]
    return js.clean_text(first_line, SUMMARY_LENGTH)[0]


def _version() -> str:
    from toolbridge import __version__

    return __version__


# -- schemas into components ----------------------------------------------------------------
