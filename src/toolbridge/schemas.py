"""Pure helpers over JSON Schema dicts: cleaning text, keyword sets, merging `allOf`, JSON
pointer tokens; and `plain_json`, which tells JSON values apart by their text.

No I/O and no `$ref` resolution happen here; callers pass a `lookup` for local `$defs`.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable
from typing import Any

import orjson

from toolbridge.tools import JsonSchema

MAX_DESCRIPTION = 1024
"""Descriptions longer than this are cut: OpenAI refuses tool descriptions over 1024 characters."""

# Control characters except tab and newline, zero-width characters and bidi overrides: invisible
# text is a classic way to smuggle instructions to a model, and no client needs it.
_INVISIBLE = re.compile(
    "[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u00ad\u061c\u180e\u200b-\u200f\u2028\u2029"
    "\u202a-\u202e\u2060-\u2064\u2066-\u206f\ufeff\ufff9-\ufffb]"
)
_BLANK_LINES = re.compile(r"\n{3,}")

JSON_TYPES = frozenset({"null", "boolean", "object", "array", "number", "string", "integer"})

SUBSCHEMA = ("items", "additionalProperties", "not", "contains", "propertyNames", "if", "then")
SUBSCHEMA_TAIL = ("else", "unevaluatedItems", "unevaluatedProperties", "contentSchema")
SUBSCHEMA_KEYWORDS = SUBSCHEMA + SUBSCHEMA_TAIL
SUBSCHEMA_MAPS = ("properties", "patternProperties", "dependentSchemas")
SUBSCHEMA_LISTS = ("allOf", "anyOf", "oneOf", "prefixItems")

NUMBER_KEYWORDS = ("multipleOf", "maximum", "minimum", "exclusiveMaximum", "exclusiveMinimum")
COUNT_KEYWORDS = (
    "maxLength",
    "minLength",
    "maxItems",
    "minItems",
    "maxContains",
    "minContains",
    "maxProperties",
    "minProperties",
)
PLAIN_KEYWORDS = (
    "title",
    "format",
    "contentEncoding",
    "contentMediaType",
    "uniqueItems",
    "deprecated",
    "readOnly",
    "writeOnly",
)


def clean_text(text: Any, limit: int = MAX_DESCRIPTION) -> tuple[str, bool]:
    """Strip invisible characters and bound the length; return (text, whether it was cut)."""
    if not isinstance(text, str):
        text = "" if text is None else str(text)
    if text.isascii() and text.isprintable():
        text = text.strip()  # no control character, so nothing invisible and no line breaks
    else:
        if not text.isascii():
            text = unicodedata.normalize("NFC", text)
        if "\r" in text:
            text = text.replace("\r\n", "\n")
        text = _INVISIBLE.sub("", text).strip()
        if "\n\n\n" in text:
            text = _BLANK_LINES.sub("\n\n", text)
    if len(text) <= limit:
        return text, False
    cut = text[: limit - 1]
    space = cut.rfind(" ", limit // 2)
    return (cut[:space] if space > 0 else cut).rstrip() + "\u2026", True


def kind_of(value: Any) -> str:
    """What kind of JSON value this is, for messages ("an integer", "a mapping", ...)."""
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number"
    if value is None:
        return "null"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return "a string" if isinstance(value, str) else type(value).__name__


def type_set(schema: JsonSchema) -> set[str]:
    kind = schema.get("type")
    if isinstance(kind, str):
        return {kind}
    if isinstance(kind, list):
        return {k for k in kind if isinstance(k, str)}
    return set()


def add_null(schema: JsonSchema) -> JsonSchema:
    """The schema, also admitting null (OpenAPI 3.0 `nullable`, Swagger `x-nullable`)."""
    kinds = schema.get("type")
    if isinstance(kinds, str):
        if kinds == "null":
            return schema
        out = {**schema, "type": [kinds, "null"]}
    elif isinstance(kinds, list):
        if "null" in kinds:
            return schema
        out = {**schema, "type": [*kinds, "null"]}
    elif "$ref" in schema or any(k in schema for k in SUBSCHEMA_LISTS):
        return {"anyOf": [schema, {"type": "null"}]}
    else:
        return schema  # no type constraint: null is already allowed
    if isinstance(out.get("enum"), list) and None not in out["enum"]:
        out["enum"] = [*out["enum"], None]
    return out


_MERGE_BLOCKERS = frozenset(
    {
        "allOf",
        "anyOf",
        "oneOf",
        "not",
        "if",
        "then",
        "else",
        "additionalProperties",
        "unevaluatedProperties",
        "patternProperties",
        "dependentSchemas",
        "propertyNames",
        "$ref",
    }
)
_FIRST_WINS = frozenset({"title", "description", "examples", "default", "deprecated"})


def merge_all_of(
    schema: JsonSchema, lookup: Callable[[str], JsonSchema | None]
) -> JsonSchema | None:
    """Merge `allOf` into one schema when that is exact; None when it is not.

    Exact means: every member is an object-ish schema without keywords whose meaning depends on
    the member's own property set (`additionalProperties`, composition, ...). Properties named
    by several members are kept as an `allOf` of their schemas. `lookup` resolves a local
    `$ref` to its definition, or returns None when it cannot be inlined (unknown or recursive).
    """
    members: list[JsonSchema] = []
    for member in schema["allOf"]:
        if not isinstance(member, dict):
            return None
        if "$ref" in member:
            if len(member) != 1:
                return None
            target = lookup(member["$ref"])
            if target is None:
                return None
            member = target
        if "allOf" in member:
            nested = merge_all_of(member, lookup)
            if nested is None:
                return None
            member = nested
        members.append(member)
    rest = {k: v for k, v in schema.items() if k != "allOf"}
    if _MERGE_BLOCKERS & rest.keys():
        return None
    merged: JsonSchema = {}
    properties: dict[str, JsonSchema] = {}
    required: list[str] = []
    kinds: set[str] | None = None
    for part in [rest, *members]:
        if _MERGE_BLOCKERS & part.keys():
            return None
        if "type" in part:
            these = type_set(part)
            kinds = these if kinds is None else kinds & these
            if not kinds:
                return None
        for name, sub in (part.get("properties") or {}).items():
            if name in properties and properties[name] != sub:
                properties[name] = {"allOf": [properties[name], sub]}
            else:
                properties[name] = sub
        for name in part.get("required") or ():
            if name not in required:
                required.append(name)
        for key, value in part.items():
            if key in ("type", "properties", "required"):
                continue
            if key in merged and merged[key] != value:
                if key in _FIRST_WINS:
                    continue
                return None
            merged.setdefault(key, value)
    if kinds is not None:
        ordered = sorted(kinds)
        merged["type"] = ordered[0] if len(ordered) == 1 else ordered
    if properties:
        merged["properties"] = properties
    if required:
        merged["required"] = required
    return merged


def pointer_token(key: str) -> str:
    """A key as one token of a JSON pointer (RFC 6901): `~` as `~0`, `/` as `~1`."""
    return key.replace("~", "~0").replace("/", "~1")


def collect_refs(schema: Any) -> set[str]:
    """The `$defs` names a schema refers to, outside of any `$defs` it holds."""
    found: set[str] = set()
    stack = [schema]
    push, pop = stack.append, stack.pop
    while stack:
        node = pop()
        # JSON values: exact types are enough, and much cheaper to test than isinstance.
        if type(node) is dict:
            for key, value in node.items():
                kind = type(value)
                if kind is dict or kind is list:
                    if key != "$defs":
                        push(value)
                elif key == "$ref" and kind is str and value.startswith("#/$defs/"):
                    found.add(value[8:])
        elif type(node) is list:
            for value in node:
                if type(value) is dict or type(value) is list:
                    push(value)
    return found


def unshared(value: Any) -> Any:
    """A copy of a JSON value in which no dict or list is shared: each place has its own, to
    edit in place (`copy.deepcopy` keeps one object that appears twice one object)."""
    if isinstance(value, dict):
        return {key: unshared(item) for key, item in value.items()}
    if isinstance(value, list):
        return [unshared(item) for item in value]
    return value


def one_of_as_any_of(schema: Any, depth: int = 0) -> Any:
    """A copy of `schema` with every `oneOf` read as `anyOf`: a value may match several branches.

    Real documents write `oneOf` where they mean "one of these kinds" (`[integer, number]`
    admits 1 twice), and the APIs accept what any branch accepts. A node that has both keeps
    its `anyOf` and gains `allOf: [{anyOf: <the oneOf branches>}]`. Values that are not
    schemas (`enum`, `const`, `default`, `examples`) are left alone; `$defs` are rewritten too.
    """
    if depth > 256 or not isinstance(schema, dict):
        return schema
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key in SUBSCHEMA_KEYWORDS:
            out[key] = one_of_as_any_of(value, depth + 1)
        elif key in (*SUBSCHEMA_MAPS, "$defs") and isinstance(value, dict):
            out[key] = {name: one_of_as_any_of(v, depth + 1) for name, v in value.items()}
        elif key in SUBSCHEMA_LISTS and isinstance(value, list):
            out[key] = [one_of_as_any_of(v, depth + 1) for v in value]
        else:
            out[key] = value
    branches = out.pop("oneOf", None)
    if branches is None:
        return out
    if "anyOf" not in out:
        out["anyOf"] = branches
    else:
        out["allOf"] = [*out.get("allOf", []), {"anyOf": branches}]
    return out


_PLAIN_JSON = (
    orjson.OPT_PASSTHROUGH_DATACLASS
    | orjson.OPT_PASSTHROUGH_DATETIME
    | orjson.OPT_PASSTHROUGH_SUBCLASS
)
"""Values other than plain JSON ones fail to dump."""


def plain_json(value: Any) -> bytes | None:
    """The JSON of a value, if that tells it apart from every other value; else None (not
    plain JSON: a number past 64 bits, a date; or a `null`, which orjson also writes for NaN
    and the infinities)."""
    try:
        text = orjson.dumps(value, option=_PLAIN_JSON)
    except TypeError:
        return None
    return None if b"null" in text else text


def json_kind(value: object) -> str:
    """What a value is, in JSON's words (`an object`, `an array`, `a string`, `a number`,
    `a boolean`, `null`), for an error that says what it found; other Python values by type."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list | tuple):
        return "an array"
    return type(value).__name__
