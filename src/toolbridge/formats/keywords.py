"""JSON Schema keywords as the dialects read them: which keywords hold subschemas, a node's types
and allowed values, local `$ref` resolution, and small typed accessors.

Shared by every dialect; it builds no provider's schema itself and does no I/O.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from typing import Any
from urllib.parse import unquote

from toolbridge.tools import JsonSchema

_UNSUPPORTED_REGEX = re.compile(r"\(\?[^:]|\\[1-9pPk]")
"""Lookaround, named groups, backreferences, Unicode classes: not for RE2-like regex engines."""

ONE_SCHEMA = frozenset(
    {"items", "additionalProperties", "not", "if", "then", "else", "contains", "propertyNames"}
    | {"unevaluatedItems", "unevaluatedProperties", "contentSchema"}
)
_SCHEMA_MAP = frozenset({"properties", "patternProperties", "$defs", "dependentSchemas"})
_SCHEMA_LIST = frozenset({"anyOf", "oneOf", "allOf", "prefixItems"})
ANNOTATIONS = frozenset(
    {"description", "title", "default", "examples", "$comment", "deprecated", "readOnly"}
    | {"writeOnly", "$defs", "discriminator", "xml", "externalDocs", "example"}
)
_NUMERIC = {"minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf", "format"}
TYPE_KEYWORDS = {
    "string": {"minLength", "maxLength", "pattern", "format", "contentEncoding"},
    "number": _NUMERIC,
    "integer": _NUMERIC,
    "array": {"items", "prefixItems", "minItems", "maxItems", "uniqueItems", "contains"},
    "object": {"properties", "required", "additionalProperties", "patternProperties"}
    | {"minProperties", "maxProperties", "propertyNames", "dependentRequired"},
}
_ALL_TYPE_KEYWORDS = frozenset().union(*TYPE_KEYWORDS.values())


class NoForm(Exception):
    """The schema has no form in the target dialect: raised and caught inside one dialect."""


def map_schema(node: JsonSchema, fn: Callable[[Any], Any]) -> JsonSchema:
    """A copy of `node` with `fn` applied to each direct subschema."""
    out: JsonSchema = {}
    for key, value in node.items():
        if key in ONE_SCHEMA:
            out[key] = [fn(v) for v in value] if isinstance(value, list) else fn(value)
        elif key in _SCHEMA_MAP and isinstance(value, dict):
            out[key] = {name: fn(v) for name, v in value.items()}
        elif key in _SCHEMA_LIST and isinstance(value, list):
            out[key] = [fn(v) for v in value]
        else:
            out[key] = value
    return out


def defs(schema: JsonSchema) -> dict[str, Any]:
    defs = schema.get("$defs")
    return defs if isinstance(defs, dict) else {}


def resolve(defs: dict[str, Any], ref: object) -> tuple[str, JsonSchema] | None:
    """The name and schema a local `#/$defs/<name>` reference points to."""
    if not isinstance(ref, str) or not ref.startswith("#/$defs/"):
        return None
    name = unquote(ref[len("#/$defs/") :]).replace("~1", "/").replace("~0", "~")
    target = defs.get(name)
    return (name, target) if isinstance(target, dict) else None


def _value_type(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object"


def matches(value: object, type_: str) -> bool:
    actual = _value_type(value)
    return actual == type_ or (actual == "integer" and type_ == "number")


def values(node: JsonSchema) -> list[Any] | None:
    """The values `enum` or `const` allow, or None when neither is given."""
    if isinstance(node.get("enum"), list):
        return list(node["enum"])
    return [node["const"]] if "const" in node else None


def types(node: JsonSchema) -> list[str]:
    """The node's declared JSON types, or the ones its other keywords imply."""
    declared = node.get("type")
    if isinstance(declared, str):
        return [declared]
    if isinstance(declared, list):
        return [t for t in declared if isinstance(t, str)]
    if "properties" in node:
        return ["object"]
    if "items" in node or "prefixItems" in node:
        return ["array"]
    return list(dict.fromkeys(_value_type(v) for v in values(node) or ()))


def _only_type(node: JsonSchema, type_: str) -> JsonSchema:
    """The part of a multi-type node that applies to one type (annotations stay on the parent)."""
    keep = TYPE_KEYWORDS.get(type_, set())
    out = {
        k: v
        for k, v in node.items()
        if k not in ANNOTATIONS and (k not in _ALL_TYPE_KEYWORDS or k in keep)
    }
    out["type"] = type_
    out.pop("const", None)
    allowed = values(node)
    if allowed is not None:
        out["enum"] = [v for v in allowed if matches(v, type_)]
    return out


def split(node: JsonSchema, types: list[str]) -> list[JsonSchema]:
    """One branch per type for a node of several types, leaving out types its enum rules out."""
    branches = [_only_type(node, t) for t in types]
    kept = [b for b in branches if b.get("enum") != []]
    return kept or [{k: v for k, v in branches[0].items() if k != "enum"}]


def dict_of(node: JsonSchema, key: str) -> dict[str, Any]:
    value = node.get(key)
    return value if isinstance(value, dict) else {}


def list_of(node: JsonSchema, key: str) -> list[Any]:
    value = node.get(key)
    return value if isinstance(value, list) else []


def text(value: object) -> str:
    return value if isinstance(value, str) else ""


def annotations_of(node: JsonSchema) -> JsonSchema:
    return {k: node[k] for k in ("title", "description") if isinstance(node.get(k), str)}


def is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


@functools.lru_cache(maxsize=4096)
def usable_pattern(pattern: str) -> bool:
    """A regex simple enough for providers whose regex engine is not ECMA-262 (RE2 and kin)."""
    if _UNSUPPORTED_REGEX.search(pattern):
        return False
    try:
        re.compile(pattern)
    except re.error:
        return False
    return True


def append(description: str, sentence: str) -> str:
    return f"{description} {sentence}" if description else sentence
