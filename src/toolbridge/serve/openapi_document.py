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
recursion error there drops the whole tool server); `allOf` is where they stop.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from typing import Any
from urllib.parse import quote, unquote

import orjson

from toolbridge import schemas as js
from toolbridge.tools import JsonObject, JsonSchema, Tool

SUMMARY_LENGTH = 120
_COMPONENT_JUNK = re.compile(r"[^A-Za-z0-9._-]+")
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
    tools: list[Tool], *, title: str = "toolbridge", server_url: str | None = None
) -> JsonObject:
    """The OpenAPI 3.1 document of `tools`, each as `POST /v1/tools/{name}/call`.

    The request body is the tool's input schema (left out for a tool that takes no arguments,
    since some clients refuse to send an empty body); the 200 answer is the result envelope,
    whose `result` follows the tool's output schema when `ok` is true and the answer was not
    truncated. `server_url` is the gateway's base URL, as its callers reach it.
    """
    components = _Components(tools)
    document = _head(title, server_url)
    document["paths"] = {_path(t): {"post": _operation(t, components)} for t in tools}
    document.update(_tail(components))
    return document


def gateway_document_json(
    tools: list[Tool], *, title: str = "toolbridge", server_url: str | None = None
) -> Iterator[bytes]:
    """`orjson.dumps(gateway_document(...))` in parts, one per tool: never held whole."""
    components = _Components(tools)
    yield orjson.dumps(_head(title, server_url))[:-1] + b',"paths":{'
    for index, tool in enumerate(tools):
        item = orjson.dumps({_path(tool): {"post": _operation(tool, components)}})
        yield item[1:-1] if index == 0 else b"," + item[1:-1]
    yield b"}," + orjson.dumps(_tail(components))[1:]


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


def _tail(components: _Components) -> JsonObject:
    return {
        "components": {
            "schemas": {_RESULT: _result_schema(), _ERROR: _error_schema(), **components.schemas},
            "responses": {
                name: {
                    "description": text,
                    "content": {"application/json": {"schema": {"$ref": _pointer(_ERROR)}}},
                }
                for name, text in _RESPONSES.values()
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


class DocumentCache:
    """The last few documents built, by the tools they hold: a big catalog takes a while.

    Keyed on the identity of the tools (a reload makes new ones); each entry keeps its tools
    alive, so an identity is never reused while it is a key.
    """

    def __init__(self, size: int = 8) -> None:
        self.size = size
        self._entries: dict[tuple[Any, ...], tuple[list[Tool], JsonObject]] = {}

    def get(
        self, tools: list[Tool], *, title: str = "toolbridge", server_url: str | None = None
    ) -> JsonObject:
        """`gateway_document(tools, ...)`, built once per tool set, title and URL: shared, so
        treat it as read-only."""
        key = (tuple(map(id, tools)), title, server_url)
        found = self._entries.pop(key, None)
        if found is None:
            found = (list(tools), gateway_document(tools, title=title, server_url=server_url))
            if len(self._entries) >= self.size:
                del self._entries[next(iter(self._entries))]
        self._entries[key] = found  # most recently used last
        return found[1]


def _operation(tool: Tool, components: _Components) -> JsonObject:
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
        return {"$ref": _pointer(_RESULT)}
    # Only a successful, whole answer follows the output schema: an error body does not.
    when_whole = {
        "required": ["ok"],
        "properties": {"ok": {"const": True}},
        "not": {"required": ["truncated"]},
    }
    return {
        "allOf": [
            {"$ref": _pointer(_RESULT)},
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


class _Components:
    """The `components/schemas` of the document, and each tool's schemas rewritten to use them."""

    def __init__(self, tools: Iterable[Tool]) -> None:
        self.schemas: dict[str, JsonSchema] = {}
        self._taken: set[str] = {_RESULT, _ERROR}
        self._shared: dict[str, str] = {}
        parts = [(tool, part, schema) for tool in tools for part, schema in _parts(tool)]
        shareable = _shareable(defs for _, _, schema in parts if (defs := _defs_of(schema)))
        self._rewritten: dict[tuple[str, str], JsonSchema] = {}
        for tool, part, schema in parts:
            prefix = tool.name if part == "input" else f"{tool.name}.{part}"
            names: dict[str, str] = {}
            for key in _defs_of(schema):
                if key in shareable:
                    if key not in self._shared:
                        self._shared[key] = self._take(key)
                    names[key] = self._shared[key]
                else:
                    names[key] = self._take(f"{prefix}.{key}")
            own: str | None = None
            if _refers_to_root(schema):
                # A reference to the schema itself (`#`, `#/properties/...`) needs the schema at
                # a name of its own, which the operation then refers to.
                own = self._take(f"{tool.name}.input" if part == "input" else prefix)
            rewrite = _Rewrite(names, own, _defs_of(schema))
            for key, definition in _defs_of(schema).items():
                if names[key] not in self.schemas:
                    self.schemas[names[key]] = rewrite(definition)
            rewritten = rewrite({k: v for k, v in schema.items() if k != "$defs"})
            if own is not None:
                self.schemas[own] = rewritten
                rewritten = {"$ref": _pointer(own)}
            self._rewritten[(tool.name, part)] = rewritten
        _break_cycles(self.schemas)

    def schema(self, tool: Tool, part: str) -> JsonSchema | None:
        return self._rewritten.get((tool.name, part))

    def _take(self, wanted: str) -> str:
        base = _COMPONENT_JUNK.sub("_", wanted) or "schema"
        name, n = base, 2
        while name in self._taken:
            name = f"{base}_{n}"
            n += 1
        self._taken.add(name)
        return name


def _is_regex(pattern: Any) -> bool:
    # Imported when a document is built, not at start: the validator's libraries take a while.
    from openapi_schema_validator import oas31_format_checker

    return bool(oas31_format_checker.conforms(pattern, "regex"))


def _break_cycles(schemas: dict[str, JsonSchema]) -> None:
    """Wrap, in place, each reference that closes a cycle of references, properties and items."""
    prefix = "#/components/schemas/"
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    for start in schemas:
        if start in state:
            continue
        state[start] = 1
        stack = [(start, iter(_inlined_refs(schemas[start])))]
        while stack:
            name, refs = stack[-1]
            node = next(refs, None)
            if node is None:
                state[name] = 2
                stack.pop()
                continue
            ref = node["$ref"]
            target = unquote(ref[len(prefix) :]) if ref.startswith(prefix) else None
            if target is None or target not in schemas:
                continue
            if state.get(target) == 1:
                node["allOf"] = [{"$ref": node.pop("$ref")}, *node.get("allOf", ())]
            elif target not in state:
                state[target] = 1
                stack.append((target, iter(_inlined_refs(schemas[target]))))


def _inlined_refs(schema: Any) -> list[JsonSchema]:
    """The nodes holding a `$ref` that a client reaches going down `properties` and `items`."""
    found = []
    stack = [schema]
    while stack:
        node = stack.pop()
        if not isinstance(node, dict):
            continue
        if isinstance(node.get("$ref"), str):
            found.append(node)
            continue  # such clients read nothing beside a reference
        properties = node.get("properties")
        if isinstance(properties, dict):
            stack.extend(properties.values())
        stack.append(node.get("items"))
    return found


def _parts(tool: Tool) -> list[tuple[str, JsonSchema]]:
    parts = [("input", tool.input_schema)]
    if tool.output_schema is not None:
        parts.append(("result", tool.output_schema))
    return parts


def _defs_of(schema: JsonSchema) -> dict[str, Any]:
    defs = schema.get("$defs")
    return defs if isinstance(defs, dict) else {}


def _shareable(all_defs: Iterable[dict[str, Any]]) -> set[str]:
    """Definition names that mean the same wherever they appear, down to what they refer to."""
    contents: dict[str, set[bytes]] = {}
    refers: dict[str, set[str | None]] = {}
    for defs in all_defs:
        for key, definition in defs.items():
            contents.setdefault(key, set()).add(
                orjson.dumps(definition, option=orjson.OPT_SORT_KEYS)
            )
            refers.setdefault(key, set()).update(_local_refs(definition))
    shared = {key for key, seen in contents.items() if len(seen) == 1}
    changed = True
    while changed:  # drop whatever refers to a definition that is not shared, until none does
        changed = False
        for key in list(shared):
            if not refers[key] <= shared:  # None (a reference to the root) is never shared
                shared.discard(key)
                changed = True
    return shared


def _local_refs(schema: Any) -> set[str | None]:
    """The `$defs` names a schema refers to; None for a reference to the root schema."""
    found: set[str | None] = set()
    for ref in _refs(schema):
        name = _def_name(ref)
        if name is not None:
            found.add(name[0])
        elif ref.startswith("#"):
            found.add(None)
    return found


def _refers_to_root(schema: JsonSchema) -> bool:
    return any(ref.startswith("#") and _def_name(ref) is None for ref in _refs(schema))


def _refs(schema: Any) -> Iterable[str]:
    stack = [schema]
    while stack:
        node = stack.pop()
        if not isinstance(node, dict):
            continue
        ref = node.get("$ref")
        if isinstance(ref, str):
            yield ref
        stack.extend(_subschemas(node))


def _subschemas(node: JsonSchema) -> Iterable[Any]:
    """The schemas directly inside a schema (never values such as `default` or `enum`)."""
    for key, value in node.items():
        if key in js.SUBSCHEMA_KEYWORDS:
            yield from value if isinstance(value, list) else (value,)
        elif key in js.SUBSCHEMA_MAPS or key == "$defs":
            if isinstance(value, dict):
                yield from value.values()
        elif key in js.SUBSCHEMA_LISTS and isinstance(value, list):
            yield from value


def _def_name(ref: str) -> tuple[str, str] | None:
    """(definition name, the rest of the pointer) for `#/$defs/<name>...`, else None."""
    if not ref.startswith("#/$defs/"):
        return None
    token, slash, rest = ref[len("#/$defs/") :].partition("/")
    return unquote(token).replace("~1", "/").replace("~0", "~"), slash + rest


def _pointer(name: str) -> str:
    return "#/components/schemas/" + quote(name, safe="._-")


class _Rewrite:
    """Copies the schemas of one tool part for the document.

    References point into the document's components, and two things the OpenAPI validator
    refuses are left out: a `default` its own schema rejects, and a `pattern` that is no regular
    expression in the dialect's sense (ECMA-262). Both come from real documents; the gateway
    still checks arguments against the tool's own schema.
    """

    def __init__(self, names: dict[str, str], root: str | None, defs: dict[str, Any]) -> None:
        self.names = names
        self.root = root
        self.defs = defs

    def __call__(self, node: Any) -> Any:
        if isinstance(node, list):
            return [self(item) for item in node]
        if not isinstance(node, dict):
            return node
        out: JsonSchema = {}
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                out[key] = self._target(value)
            elif key in js.SUBSCHEMA_KEYWORDS or key in js.SUBSCHEMA_LISTS:
                out[key] = self(value)
            elif key in js.SUBSCHEMA_MAPS and isinstance(value, dict):
                out[key] = {name: self(sub) for name, sub in value.items()}
            elif self._keeps(key, value, node):
                out[key] = value
        return out

    def _target(self, ref: str) -> str:
        found = _def_name(ref)
        if found is not None and found[0] in self.names:
            return _pointer(self.names[found[0]]) + found[1]
        if ref.startswith("#") and self.root is not None:
            return _pointer(self.root) + ref[1:]
        return ref

    def _keeps(self, key: str, value: Any, node: JsonSchema) -> bool:
        if key == "pattern":
            return _is_regex(value)
        return key != "default" or self._fits(value, node)

    def _fits(self, value: Any, node: JsonSchema) -> bool:
        """Whether `value` fits the node as the document has it (less a pattern left out)."""
        from openapi_schema_validator import OAS31Validator, oas31_format_checker

        schema = {k: v for k, v in node.items() if k != "pattern" or _is_regex(v)}
        if self.defs:
            schema["$defs"] = self.defs
        try:
            return bool(OAS31Validator(schema, format_checker=oas31_format_checker).is_valid(value))
        except Exception:  # a schema the validator cannot use makes no promise about a default
            return False
