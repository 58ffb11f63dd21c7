"""OpenAI's dialect of JSON Schema, plain and strict (structured outputs). Pure: no I/O, the
input is never mutated, and the output may share JSON leaves with it (see `toolbridge.formats`).

- `for_openai`: every array gets `items` (`{}` when it had none or `true`: OpenAI rejects an
  array schema without it). Nothing else changes. `with_array_items` does only that, for the
  other formats that may reach an OpenAI model (MCP).
- `for_openai_strict`: OpenAI's structured-outputs subset. Every object is closed
  (`additionalProperties: false`) and lists all its properties in `required`; a property that
  was optional becomes nullable instead, so **the call path must read a `null` for a property
  the canonical schema does not allow to be null as "argument absent"**. `oneOf` becomes
  `anyOf`, `allOf` is merged, unsupported keywords are dropped. It returns None when the schema has
  no strict form: a free-form object (no `properties`) or map, an array without `items`, an untyped
  value (`{}`), an `allOf` whose members contradict, an object requiring a property it does not
  declare (closed, it could never be sent), or a schema over OpenAI's size limits. Render such a
  tool with `strict: false`; a JSON-in-a-string stand-in is not an option there, since the gateway
  would receive a string where the upstream wants an object.
"""

from __future__ import annotations

from typing import Any

from toolbridge.formats import combinators, keywords
from toolbridge.tools import JsonSchema

# OpenAI's documented limits for strict schemas.
STRICT_MAX_PROPERTIES = 5000
STRICT_MAX_OBJECT_DEPTH = 10
STRICT_MAX_ENUM_VALUES = 1000
STRICT_MAX_CHARS = 120_000
"""Total length of property names, definition names, and string enum and const values."""
STRICT_LARGE_ENUM = 250
STRICT_LARGE_ENUM_CHARS = 15_000
"""A single string enum of more than 250 values may total at most this many characters."""
STRICT_FORMATS = frozenset(
    {"date-time", "time", "date", "duration", "email", "hostname", "ipv4", "ipv6", "uuid"}
)
_MAX_LEVELS = 200
"""Recursion guard for the strict walker, which keeps `$ref`s and so never needs this much."""


def for_openai(schema: JsonSchema) -> JsonSchema:
    """Function `parameters` for OpenAI Chat Completions and Responses without `strict`."""
    out: JsonSchema = _openai_node(combinators.object_root(schema))
    return out


def _openai_node(node: Any) -> Any:
    if not isinstance(node, dict):
        return node
    out = keywords.map_schema(node, _openai_node)
    if "array" in keywords.types(out) and out.get("items", True) is True:
        out["items"] = {}
    return out


def with_array_items(schema: JsonSchema) -> JsonSchema:
    """`schema` with `items` on every array (`{}` when it had none or `true`), else unchanged:
    what any format that may reach an OpenAI model needs (MCP clients pass tools on to
    whichever model they use, OpenAI's included). The same schema back when nothing lacks it."""
    if not _lacks_items(schema):
        return schema
    out: JsonSchema = _openai_node(schema)
    return out


def _lacks_items(node: Any) -> bool:
    stack = [node]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            if "array" in keywords.types(node) and node.get("items", True) is True:
                return True
            stack.extend(v for v in node.values() if isinstance(v, dict | list))
        elif isinstance(node, list):
            stack.extend(v for v in node if isinstance(v, dict | list))
    return False


# --- strict mode ------------------------------------------------------------------------------


def for_openai_strict(schema: JsonSchema) -> JsonSchema | None:
    """Function `parameters` for OpenAI's `strict: true`, or None when there is no strict form."""
    root = combinators.object_root(schema)
    if not root.get("properties") and root.get("additionalProperties", True) in (True, {}):
        root = {**root, "properties": {}, "additionalProperties": False}  # a tool without arguments
    walker = _Strict(keywords.defs(root))
    try:
        out = walker.node(root, objects=0, level=0)
        if walker.defs:
            out["$defs"] = {name: walker.node(d, 0, 0) for name, d in walker.defs.items()}
            walker.chars += sum(len(name) for name in walker.defs)
        walker.check_totals()
    except keywords.NoForm:
        return None
    return out


class _Strict:
    """One walk over a schema and its `$defs`, counting what OpenAI's limits count."""

    def __init__(self, defs: dict[str, Any]) -> None:
        self.defs = defs
        self.inlining: set[str] = set()
        self.properties = 0
        self.enum_values = 0
        self.chars = 0

    def node(self, s: Any, objects: int, level: int) -> JsonSchema:
        if not isinstance(s, dict) or level > _MAX_LEVELS:
            raise keywords.NoForm
        if "allOf" in s:
            s = combinators.merge_all_of(s, self.defs)
            if s is None:
                raise keywords.NoForm
        if "anyOf" in s or "oneOf" in s:
            s = combinators.alternatives(s, self.defs)
        if "$ref" in s:
            return self.ref(s, objects, level)
        out = keywords.annotations_of(s)
        if "anyOf" in s:
            out["anyOf"] = [self.node(b, objects, level + 1) for b in s["anyOf"]]
            return out
        types = keywords.types(s)
        others = [t for t in types if t != "null"]
        if len(others) > 1:
            out["anyOf"] = [self.node(b, objects, level + 1) for b in keywords.split(s, others)]
            if "null" in types:
                out["anyOf"].append({"type": "null"})
            return out
        if not others:
            if types:  # null and nothing else
                return {**out, "type": "null"}
            raise keywords.NoForm  # untyped: any value at all
        out["type"] = others[0] if len(types) == 1 else [others[0], "null"]
        self.values(s, out)
        self.typed(s, others[0], out, objects, level)
        return out

    def ref(self, s: JsonSchema, objects: int, level: int) -> JsonSchema:
        resolved = keywords.resolve(self.defs, s["$ref"])
        if resolved is None:
            raise keywords.NoForm
        name, target = resolved
        siblings = {k: v for k, v in s.items() if k != "$ref"}
        if not siblings or name in self.inlining:
            return {"$ref": s["$ref"]}
        # OpenAI rejects keywords beside a $ref in strict mode: inline that one reference
        # (once per path, so a recursive definition still ends in a plain $ref).
        self.inlining.add(name)
        try:
            return self.node({**target, **siblings}, objects, level + 1)
        finally:
            self.inlining.discard(name)

    def values(self, s: JsonSchema, out: JsonSchema) -> None:
        if isinstance(s.get("enum"), list):
            out["enum"] = list(s["enum"])
            strings = sum(len(v) for v in s["enum"] if isinstance(v, str))
            self.enum_values += len(s["enum"])
            self.chars += strings
            if len(s["enum"]) > STRICT_LARGE_ENUM and strings > STRICT_LARGE_ENUM_CHARS:
                raise keywords.NoForm
        if "const" in s:
            out["const"] = s["const"]
            self.chars += len(s["const"]) if isinstance(s["const"], str) else 0

    def typed(self, s: JsonSchema, type_: str, out: JsonSchema, objects: int, level: int) -> None:
        if type_ == "object":
            properties = keywords.dict_of(s, "properties")
            if not properties and s.get("additionalProperties") is not False:
                raise keywords.NoForm  # a free-form object or a map
            if objects + 1 > STRICT_MAX_OBJECT_DEPTH:
                raise keywords.NoForm
            required = set(keywords.list_of(s, "required"))
            if not required <= properties.keys():
                raise keywords.NoForm  # closed, a required property it never declares is unsendable
            self.properties += len(properties)
            self.chars += sum(len(name) for name in properties)
            out["properties"] = {
                name: self.property(sub, name in required, objects + 1, level + 1)
                for name, sub in properties.items()
            }
            out["required"] = list(properties)
            out["additionalProperties"] = False
        elif type_ == "array":
            if not isinstance(s.get("items"), dict):
                raise keywords.NoForm
            out["items"] = self.node(s["items"], objects, level + 1)
            out.update({k: s[k] for k in ("minItems", "maxItems") if isinstance(s.get(k), int)})
        elif type_ == "string":
            if isinstance(s.get("pattern"), str) and keywords.usable_pattern(s["pattern"]):
                out["pattern"] = s["pattern"]
            if s.get("format") in STRICT_FORMATS:
                out["format"] = s["format"]
        elif type_ in ("number", "integer"):
            keys = ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf")
            out.update({k: s[k] for k in keys if keywords.is_number(s.get(k))})
        elif type_ != "boolean":
            raise keywords.NoForm  # not a JSON type ("file", ...)

    def property(self, s: Any, required: bool, objects: int, level: int) -> JsonSchema:
        out = self.node(s, objects, level)
        if required:
            return out
        nullable = _nullable(out)
        self.enum_values += len(nullable.get("enum", ())) - len(out.get("enum", ()))
        return nullable

    def check_totals(self) -> None:
        if (
            self.properties > STRICT_MAX_PROPERTIES
            or self.enum_values > STRICT_MAX_ENUM_VALUES
            or self.chars > STRICT_MAX_CHARS
        ):
            raise keywords.NoForm


def _nullable(s: JsonSchema) -> JsonSchema:
    """`s` that also accepts null: how strict mode says a property is optional."""
    type_ = s.get("type")
    if "anyOf" in s:
        if any(b.get("type") == "null" for b in s["anyOf"]):
            return s
        return {**s, "anyOf": [*s["anyOf"], {"type": "null"}]}
    if type_ is None or "const" in s:
        return {"anyOf": [s, {"type": "null"}]}
    types = [type_] if isinstance(type_, str) else list(type_)
    if "null" in types:
        return s
    out = {**s, "type": [*types, "null"]}
    if "enum" in s and None not in s["enum"]:
        out["enum"] = [*s["enum"], None]
    return out
