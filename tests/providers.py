"""What each client format accepts, written down from the providers' documented rules.

`check(fmt, tool)` lists every problem a provider would reject a rendered tool for (an empty
list: accepted). It is the oracle for `toolbridge.formats.render` and deliberately shares no
code with the `toolbridge.formats` dialects. The rules come from: OpenAI's function calling and
structured outputs guides (and the errors its API returns, such as "array schema missing
items"); Anthropic's tool use docs (`input_schema` is JSON Schema 2020-12, an object without a
root combinator, property keys `^[a-zA-Z0-9_.-]{1,64}$`); Gemini's `Schema` reference, an
OpenAPI 3.0 subset, and its errors ("should be non-empty for OBJECT type", "items: missing
field", "enum only allowed for STRING type"); and the MCP `Tool` definition, with OpenAI's
`items` rule for its `inputSchema`: MCP clients hand their tools to whatever model they use.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import unquote

import jsonschema_rs
from jsonschema import Draft202012Validator

from toolbridge.tools import JsonObject

NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
GEMINI_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_.:-]{0,63}$")
PROPERTY_KEY = re.compile(r"^[a-zA-Z0-9_.-]{1,64}$")
MAX_DESCRIPTION = 1024

STRICT_KEYWORDS = frozenset(
    {"type", "properties", "required", "additionalProperties", "items", "enum", "const"}
    | {"anyOf", "$ref", "$defs", "description", "title", "pattern", "format", "minimum"}
    | {"maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf", "minItems", "maxItems"}
)
STRICT_FORMATS = frozenset(
    {"date-time", "time", "date", "duration", "email", "hostname", "ipv4", "ipv6", "uuid"}
)
STRICT_LIMITS = {"properties": 5000, "nesting": 10, "enum values": 1000, "characters": 120_000}

GEMINI_FIELDS = frozenset(
    {"type", "format", "title", "description", "nullable", "enum", "maxItems", "minItems"}
    | {"properties", "required", "minProperties", "maxProperties", "minLength", "maxLength"}
    | {"pattern", "example", "anyOf", "propertyOrdering", "default", "items", "minimum"}
    | {"maximum"}
)
GEMINI_TYPES = frozenset({"STRING", "NUMBER", "INTEGER", "BOOLEAN", "ARRAY", "OBJECT"})
GEMINI_FORMATS = {
    "STRING": {"enum", "date-time"},
    "NUMBER": {"float", "double"},
    "INTEGER": {"int32", "int64"},
}

_META = Draft202012Validator(
    Draft202012Validator.META_SCHEMA, format_checker=Draft202012Validator.FORMAT_CHECKER
)
_ONE = frozenset(
    {"items", "additionalProperties", "not", "if", "then", "else", "contains", "propertyNames"}
    | {"unevaluatedItems", "unevaluatedProperties", "contentSchema"}
)
_MAP = ("properties", "patternProperties", "$defs", "dependentSchemas")
_LIST = ("anyOf", "oneOf", "allOf", "prefixItems")


def check(fmt: str, tool: JsonObject) -> list[str]:
    """Every reason the provider behind `fmt` would reject `tool`."""
    checker = _CHECKS.get(fmt)
    return [f"unknown format {fmt!r}"] if checker is None else checker(tool)


# --- per format -------------------------------------------------------------------------------


def _openai(tool: JsonObject) -> list[str]:
    if tool.get("type") != "function" or not isinstance(tool.get("function"), dict):
        return ['expected {"type": "function", "function": {...}}']
    return _function(tool["function"], "function.")


def _openai_responses(tool: JsonObject) -> list[str]:
    if tool.get("type") != "function":
        return ['type: expected "function"']
    problems = _function(tool, "")
    if not isinstance(tool.get("strict"), bool):
        problems.append("strict: must be given, the Responses API defaults it to true")
    return problems


def _function(function: JsonObject, where: str) -> list[str]:
    problems = _name(function.get("name"), where) + _description(function, where)
    parameters = function.get("parameters")
    at = f"{where}parameters"
    if not isinstance(parameters, dict):
        return [*problems, f"{at}: expected a JSON Schema object"]
    problems += schema_problems(parameters, at)
    if parameters.get("type") != "object":
        problems.append(f'{at}: the root must have "type": "object"')
    if not isinstance(parameters.get("properties"), dict):
        problems.append(f"{at}: object schema missing properties")
    for path, node in _subschemas(parameters):
        if isinstance(node, dict) and "array" in _types(node) and "items" not in node:
            problems.append(f"{at}{path[1:]}: array schema missing items")
    strict = function.get("strict", False)
    if not isinstance(strict, bool):
        problems.append(f"{where}strict: expected a boolean")
    elif strict:
        problems += _strict(parameters, at)
    return problems


def _strict(schema: JsonObject, where: str) -> list[str]:
    problems = []
    if "anyOf" in schema:
        problems.append(f"{where}: the root must not be anyOf")
    totals = dict.fromkeys(STRICT_LIMITS, 0)
    totals["characters"] = sum(len(name) for name in schema.get("$defs", {}))
    for path, node in _subschemas(schema):
        at = f"{where}{path[1:]}"
        if node is False and path.endswith("/additionalProperties"):
            continue
        if not isinstance(node, dict):
            problems.append(f"{at}: boolean schemas are not supported")
            continue
        if unknown := sorted(node.keys() - STRICT_KEYWORDS):
            problems.append(f"{at}: keywords not supported in strict mode: {unknown}")
        if "$ref" in node and len(node) > 1:
            problems.append(f"{at}: $ref cannot have sibling keywords")
        if not {"type", "anyOf", "$ref"} & node.keys():
            problems.append(f"{at}: every schema needs a type")
        types = _types(node)
        properties = node.get("properties", {})
        if "object" in types:
            if node.get("additionalProperties") is not False:
                problems.append(f"{at}: additionalProperties must be false")
            if sorted(node.get("required", [])) != sorted(properties):
                problems.append(f"{at}: required must list every property")
        if "array" in types and not isinstance(node.get("items"), dict):
            problems.append(f"{at}: array schema missing items")
        if "format" in node and node["format"] not in STRICT_FORMATS:
            problems.append(f"{at}: format {node['format']!r} is not supported")
        enum = node.get("enum", [])
        strings = [v for v in [*enum, node.get("const")] if isinstance(v, str)]
        totals["properties"] += len(properties)
        totals["enum values"] += len(enum)
        totals["characters"] += sum(map(len, properties)) + sum(map(len, strings))
        if len(enum) > 250 and sum(map(len, strings)) > 15_000:
            problems.append(f"{at}: a string enum of over 250 values may total 15,000 chars")
    totals["nesting"] = max(
        [_nesting(schema), *(_nesting(d) for d in schema.get("$defs", {}).values())]
    )
    for limit, most in STRICT_LIMITS.items():
        if totals[limit] > most:
            problems.append(f"{where}: {totals[limit]} {limit}, strict mode allows {most}")
    return problems


def _nesting(node: Any) -> int:
    """Levels of nested objects, not following $refs."""
    if not isinstance(node, dict):
        return 0
    inner = [_nesting(node.get("items")), *(_nesting(b) for b in node.get("anyOf", []))]
    if "object" in _types(node):
        inner.append(1 + max([0, *(_nesting(p) for p in node.get("properties", {}).values())]))
    return max(inner)


def _anthropic(tool: JsonObject) -> list[str]:
    problems = _name(tool.get("name"), "") + _description(tool, "")
    schema = tool.get("input_schema")
    if not isinstance(schema, dict):
        return [*problems, "input_schema: expected a JSON Schema object"]
    problems += schema_problems(schema, "input_schema")
    if schema.get("type") != "object":
        problems.append('input_schema: the root must have "type": "object"')
    if combinators := sorted({"oneOf", "anyOf", "allOf"} & schema.keys()):
        problems.append(f"input_schema: {combinators} not supported at the top level")
    for path, node in _subschemas(schema):
        properties = node.get("properties") if isinstance(node, dict) else None
        for key in properties if isinstance(properties, dict) else ():
            if not PROPERTY_KEY.match(key):
                problems.append(f"input_schema{path[1:]}/properties: key {key!r} is not allowed")
    return problems


def _gemini(tool: JsonObject) -> list[str]:
    problems = _name(tool.get("name"), "") + _description(tool, "")
    if isinstance(tool.get("name"), str) and not GEMINI_NAME.match(tool["name"]):
        problems.append("name: must start with a letter or an underscore")
    if "parameters" not in tool:
        return problems
    parameters = tool["parameters"]
    if not isinstance(parameters, dict) or parameters.get("type") != "OBJECT":
        return [*problems, "parameters: schema should be of type OBJECT"]
    return problems + _gemini_schema(parameters, "parameters")


def _gemini_schema(node: Any, at: str) -> list[str]:
    if not isinstance(node, dict):
        return [f"{at}: expected a Schema object"]
    problems = [f"{at}: unknown field {key!r}" for key in node if key not in GEMINI_FIELDS]
    type_ = node.get("type")
    if type_ is None and "anyOf" not in node:
        problems.append(f"{at}: needs a type (or anyOf)")
    elif type_ is not None and type_ not in GEMINI_TYPES:
        problems.append(f"{at}: type {type_!r} is not one of {sorted(GEMINI_TYPES)}")
    properties = node.get("properties")
    if type_ == "OBJECT" and (not isinstance(properties, dict) or not properties):
        problems.append(f"{at}.properties: should be non-empty for OBJECT type")
    if type_ == "ARRAY" and "items" not in node:
        problems.append(f"{at}.items: missing field")
    for name in node.get("required", []):
        if not isinstance(properties, dict) or name not in properties:
            problems.append(f"{at}.required: property {name!r} is not defined")
    if "enum" in node:
        enum = node["enum"]
        if type_ != "STRING":
            problems.append(f"{at}.enum: only allowed for STRING type")
        if not isinstance(enum, list) or not enum or not all(isinstance(v, str) for v in enum):
            problems.append(f"{at}.enum: expected a non-empty list of strings")
    if "format" in node:
        if node["format"] not in GEMINI_FORMATS.get(str(type_), ()):
            problems.append(f"{at}.format: {node['format']!r} is not supported for {type_}")
        elif node["format"] == "enum" and "enum" not in node:
            problems.append(f"{at}.enum: should be non-empty for STRING type with enum format")
    for key in ("description", "title"):
        if key in node and not isinstance(node[key], str):
            problems.append(f"{at}.{key}: expected a string")
    if "nullable" in node and not isinstance(node["nullable"], bool):
        problems.append(f"{at}.nullable: expected a boolean")
    for key in ("minimum", "maximum", "minItems", "maxItems", "minLength", "maxLength"):
        if key in node and (isinstance(node[key], bool) or not isinstance(node[key], int | float)):
            problems.append(f"{at}.{key}: expected a number")
    if "anyOf" in node and (not isinstance(node["anyOf"], list) or not node["anyOf"]):
        problems.append(f"{at}.anyOf: expected a non-empty list")
    for name, sub in properties.items() if isinstance(properties, dict) else ():
        problems += _gemini_schema(sub, f"{at}.properties[{name}]")
    if "items" in node:
        problems += _gemini_schema(node["items"], f"{at}.items")
    for i, sub in enumerate(node.get("anyOf", []) if isinstance(node.get("anyOf"), list) else []):
        problems += _gemini_schema(sub, f"{at}.anyOf[{i}]")
    return problems


def _mcp(tool: JsonObject) -> list[str]:
    problems = _name(tool.get("name"), "")
    for key in ("title", "description"):
        if not isinstance(tool.get(key, ""), str):
            problems.append(f"{key}: expected a string")
    for key in ("inputSchema", "outputSchema"):
        if key == "outputSchema" and key not in tool:
            continue
        schema = tool.get(key)
        if not isinstance(schema, dict) or schema.get("type") != "object":
            problems.append(f'{key}: expected a JSON Schema with "type": "object"')
            continue
        problems += schema_problems(schema, key)
        if key == "outputSchema":
            continue
        # MCP clients (VS Code, Copilot) pass tools on to OpenAI's models, which reject an
        # array schema without `items`.
        for path, node in _subschemas(schema):
            if isinstance(node, dict) and "array" in _types(node) and "items" not in node:
                problems.append(f"{key}{path[1:]}: array schema missing items")
    annotations = tool.get("annotations", {})
    if not isinstance(annotations, dict):
        return [*problems, "annotations: expected an object"]
    if not isinstance(annotations.get("title", ""), str):
        problems.append("annotations.title: expected a string")
    for hint in ("readOnlyHint", "destructiveHint", "idempotentHint", "openWorldHint"):
        if hint in annotations and not isinstance(annotations[hint], bool):
            problems.append(f"annotations.{hint}: expected a boolean")
    return problems


_CHECKS: dict[str, Callable[[JsonObject], list[str]]] = {
    "openai": _openai,
    "openai-responses": _openai_responses,
    "anthropic": _anthropic,
    "gemini": _gemini,
    "mcp": _mcp,
}


# --- shared rules -----------------------------------------------------------------------------


def _name(name: object, where: str) -> list[str]:
    if isinstance(name, str) and NAME.match(name):
        return []
    return [f"{where}name: {name!r} does not match {NAME.pattern}"]


def _description(tool: JsonObject, where: str) -> list[str]:
    description = tool.get("description", "")
    if not isinstance(description, str):
        return [f"{where}description: expected a string"]
    if len(description) > MAX_DESCRIPTION:
        return [f"{where}description: {len(description)} characters, at most {MAX_DESCRIPTION}"]
    return []


def schema_problems(schema: JsonObject, where: str) -> list[str]:
    """Valid JSON Schema 2020-12 (as `check_schema` says), and every `$ref` resolves locally.

    The `jsonschema` library is the judge, but it takes tens of milliseconds on a big schema,
    so jsonschema-rs's meta-validation (plus the regex check it leaves out) goes first and the
    library only runs to confirm a rejection and word it.
    """
    problems = []
    regexes_ok = True
    for path, node in _subschemas(schema):
        if not isinstance(node, dict):
            continue
        regexes = [node.get("pattern"), *_dict(node, "patternProperties")]
        regexes_ok = regexes_ok and all(_compiles(r) for r in regexes if r is not None)
        ref = node.get("$ref")
        if ref is not None and not _resolves(schema, ref):
            problems.append(f"{where}{path[1:]}: $ref {ref!r} does not resolve in this schema")
    if not (regexes_ok and jsonschema_rs.meta.is_valid(schema)):
        errors = {f"{e.json_path}: {e.message}": None for e in _META.iter_errors(schema)}
        problems[:0] = [f"{where}: invalid JSON Schema 2020-12 at {e}" for e in list(errors)[:3]]
    return problems


def _compiles(regex: object) -> bool:
    if not isinstance(regex, str):
        return False
    try:
        re.compile(regex)
    except re.error:
        return False
    return True


def _dict(node: JsonObject, key: str) -> dict[str, Any]:
    value = node.get(key)
    return value if isinstance(value, dict) else {}


def _resolves(root: JsonObject, ref: object) -> bool:
    if not isinstance(ref, str) or not ref.startswith("#"):
        return False
    node: Any = root
    for part in [p for p in unquote(ref[1:]).split("/") if p]:
        part = part.replace("~1", "/").replace("~0", "~")
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return False
    return isinstance(node, dict | bool)


def _subschemas(schema: Any, path: str = "#") -> Iterator[tuple[str, Any]]:
    """Every schema inside a JSON Schema 2020-12 schema, with its JSON pointer."""
    yield path, schema
    if not isinstance(schema, dict):
        return
    for key, value in schema.items():
        if key in _ONE and isinstance(value, dict | bool):
            yield from _subschemas(value, f"{path}/{key}")
        elif key in _MAP and isinstance(value, dict):
            for name, sub in value.items():
                yield from _subschemas(sub, f"{path}/{key}/{name}")
        elif key in _LIST and isinstance(value, list):
            for i, sub in enumerate(value):
                yield from _subschemas(sub, f"{path}/{key}/{i}")


def _types(node: JsonObject) -> list[str]:
    type_ = node.get("type")
    return [type_] if isinstance(type_, str) else type_ if isinstance(type_, list) else []
