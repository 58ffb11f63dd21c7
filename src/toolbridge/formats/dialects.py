"""Schema surgery per provider: a canonical JSON Schema 2020-12 in, what that provider accepts out.

Pure functions over plain dicts: no I/O, and the input is never mutated (canonical schemas are
shared between tools). Outputs are new dicts but may share JSON leaves (`enum` lists, `default`
values) with the input, so treat both as read-only. What each function changes:

- `for_openai`: every array gets `items` (`{}` when it had none or `true`: OpenAI rejects an
  array schema without it). Nothing else changes.
- `for_openai_strict`: OpenAI's structured-outputs subset. Every object is closed
  (`additionalProperties: false`) and lists all its properties in `required`; a property that
  was optional becomes nullable instead, so **the call path must read a `null` for a property
  the canonical schema does not allow to be null as "argument absent"**. `oneOf` becomes
  `anyOf`, `allOf` is merged, unsupported keywords are dropped. It returns None when the schema
  has no strict form: a free-form object (no `properties`) or map, an array without `items`, an
  untyped value (`{}`), an `allOf` whose members contradict, or a schema over OpenAI's size
  limits. Render such a tool with `strict: false`; a JSON-in-a-string stand-in is not an option
  there, since the gateway would receive a string where the upstream wants an object.
- `for_anthropic`: nested property names Anthropic rejects are taken out of `properties`; the
  object is left open so they can still be sent, and the description names them.
- `for_gemini`: Gemini's OpenAPI 3.0 subset. `$ref`s are inlined; a definition may appear at
  most `GEMINI_REF_REPEATS` times on one path, deeper recursion is cut. Emitted nesting is
  bounded by `GEMINI_MAX_DEPTH` and size by `GEMINI_MAX_NODES`: a schema over budget is emitted
  again with a shallower bound, so every top-level argument keeps its type and the output can
  never grow exponentially. Gemini has no way to say "any value" or "any object" (an OBJECT
  needs properties), so a free-form object, an untyped value, a cut recursion or a cut subtree
  becomes `{"type": "STRING", "description": "... (a JSON value, encoded as a string)"}`. The
  call path is expected to decode such strings (it knows the canonical schema); this module
  only marks the places, with `JSON_STRING_NOTE` in the description.

The root of every dialect is a plain `type: object` schema with `properties`: a root `$ref` is
inlined, a root `allOf` merged, and a root `anyOf`/`oneOf` becomes the union of the
alternatives' properties (required: those every alternative requires).
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import unquote

from toolbridge.tools import JsonSchema

JSON_STRING_NOTE = "a JSON value, encoded as a string"
"""Ends the description of every Gemini stand-in for a value Gemini cannot describe."""

GEMINI_REF_REPEATS = 2
"""How often one `$defs` entry may appear on a single path before the recursion is cut."""
GEMINI_MAX_DEPTH = 12
"""Nesting levels (properties, items, anyOf branches) emitted before a subtree is cut."""
GEMINI_MAX_NODES = 1500
"""Nodes per schema; over it, the schema is emitted again with a shallower depth bound."""

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

_GEMINI_FORMATS = {
    "string": {"enum", "date-time"},
    "number": {"float", "double"},
    "integer": {"int32", "int64"},
}
_MAX_HOPS = 8
"""Consecutive `$ref`/`allOf`/`anyOf` rewrites of one node before we give up on it."""
_MAX_LEVELS = 200
"""Recursion guard for the strict walker, which keeps `$ref`s and so never needs this much."""

_PROPERTY_KEY = re.compile(r"^[a-zA-Z0-9_.-]{1,64}$")
_UNSUPPORTED_REGEX = re.compile(r"\(\?[^:]|\\[1-9pPk]")
"""Lookaround, named groups, backreferences, Unicode classes: not for RE2-like regex engines."""

_ONE_SCHEMA = frozenset(
    {"items", "additionalProperties", "not", "if", "then", "else", "contains", "propertyNames"}
    | {"unevaluatedItems", "unevaluatedProperties", "contentSchema"}
)
_SCHEMA_MAP = frozenset({"properties", "patternProperties", "$defs", "dependentSchemas"})
_SCHEMA_LIST = frozenset({"anyOf", "oneOf", "allOf", "prefixItems"})
_ANNOTATIONS = frozenset(
    {"description", "title", "default", "examples", "$comment", "deprecated", "readOnly"}
    | {"writeOnly", "$defs", "discriminator", "xml", "externalDocs", "example"}
)
_NUMERIC = {"minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf", "format"}
_TYPE_KEYWORDS = {
    "string": {"minLength", "maxLength", "pattern", "format", "contentEncoding"},
    "number": _NUMERIC,
    "integer": _NUMERIC,
    "array": {"items", "prefixItems", "minItems", "maxItems", "uniqueItems", "contains"},
    "object": {"properties", "required", "additionalProperties", "patternProperties"}
    | {"minProperties", "maxProperties", "propertyNames", "dependentRequired"},
}
_ALL_TYPE_KEYWORDS = frozenset().union(*_TYPE_KEYWORDS.values())
_SHAPES = frozenset(
    {"type", "properties", "additionalProperties", "items", "prefixItems", "enum", "const"}
    | {"$ref", "anyOf", "oneOf", "allOf"}
)
"""Keywords that say what a value looks like, rather than only restricting it further."""
_LOWER_BOUNDS = frozenset({"minimum", "exclusiveMinimum", "minLength", "minItems", "minProperties"})
_UPPER_BOUNDS = frozenset({"maximum", "exclusiveMaximum", "maxLength", "maxItems", "maxProperties"})


class _NoForm(Exception):
    """Internal: the schema has no form in the target dialect. Never leaves this module."""


# --- shared helpers ---------------------------------------------------------------------------


def _map_schema(node: JsonSchema, fn: Callable[[Any], Any]) -> JsonSchema:
    """A copy of `node` with `fn` applied to each direct subschema."""
    out: JsonSchema = {}
    for key, value in node.items():
        if key in _ONE_SCHEMA:
            out[key] = [fn(v) for v in value] if isinstance(value, list) else fn(value)
        elif key in _SCHEMA_MAP and isinstance(value, dict):
            out[key] = {name: fn(v) for name, v in value.items()}
        elif key in _SCHEMA_LIST and isinstance(value, list):
            out[key] = [fn(v) for v in value]
        else:
            out[key] = value
    return out


def _defs(schema: JsonSchema) -> dict[str, Any]:
    defs = schema.get("$defs")
    return defs if isinstance(defs, dict) else {}


def _resolve(defs: dict[str, Any], ref: object) -> tuple[str, JsonSchema] | None:
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


def _matches(value: object, type_: str) -> bool:
    actual = _value_type(value)
    return actual == type_ or (actual == "integer" and type_ == "number")


def _values(node: JsonSchema) -> list[Any] | None:
    """The values `enum` or `const` allow, or None when neither is given."""
    if isinstance(node.get("enum"), list):
        return list(node["enum"])
    return [node["const"]] if "const" in node else None


def _types(node: JsonSchema) -> list[str]:
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
    return list(dict.fromkeys(_value_type(v) for v in _values(node) or ()))


def _only_type(node: JsonSchema, type_: str) -> JsonSchema:
    """The part of a multi-type node that applies to one type (annotations stay on the parent)."""
    keep = _TYPE_KEYWORDS.get(type_, set())
    out = {
        k: v
        for k, v in node.items()
        if k not in _ANNOTATIONS and (k not in _ALL_TYPE_KEYWORDS or k in keep)
    }
    out["type"] = type_
    out.pop("const", None)
    values = _values(node)
    if values is not None:
        out["enum"] = [v for v in values if _matches(v, type_)]
    return out


def _split(node: JsonSchema, types: list[str]) -> list[JsonSchema]:
    """One branch per type for a node of several types, leaving out types its enum rules out."""
    branches = [_only_type(node, t) for t in types]
    kept = [b for b in branches if b.get("enum") != []]
    return kept or [{k: v for k, v in branches[0].items() if k != "enum"}]


def _dict(node: JsonSchema, key: str) -> dict[str, Any]:
    value = node.get(key)
    return value if isinstance(value, dict) else {}


def _list(node: JsonSchema, key: str) -> list[Any]:
    value = node.get(key)
    return value if isinstance(value, list) else []


def _text(value: object) -> str:
    return value if isinstance(value, str) else ""


def _annotations(node: JsonSchema) -> JsonSchema:
    return {k: node[k] for k in ("title", "description") if isinstance(node.get(k), str)}


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


@functools.lru_cache(maxsize=4096)
def _usable_pattern(pattern: str) -> bool:
    """A regex simple enough for providers whose regex engine is not ECMA-262 (RE2 and kin)."""
    if _UNSUPPORTED_REGEX.search(pattern):
        return False
    try:
        re.compile(pattern)
    except re.error:
        return False
    return True


def _intersect_types(a: object, b: object) -> list[str]:
    left = [a] if isinstance(a, str) else list(a) if isinstance(a, list) else []
    right = [b] if isinstance(b, str) else list(b) if isinstance(b, list) else []
    both = [t for t in left if t in right]
    if ("integer" in left and "number" in right) or ("integer" in right and "number" in left):
        both.append("integer")
    return list(dict.fromkeys(both))


def _merge_key(merged: JsonSchema, key: str, value: Any) -> bool:
    """Add one keyword of an allOf member to `merged`; False when the two contradict."""
    old = merged.get(key)
    if key not in merged or old == value:
        merged[key] = value
    elif key == "properties" and isinstance(old, dict) and isinstance(value, dict):
        both = {n: {"allOf": [old[n], v]} for n, v in value.items() if old.get(n, v) != v}
        merged[key] = {**old, **value, **both}
    elif key == "required" and isinstance(old, list) and isinstance(value, list):
        merged[key] = list(dict.fromkeys([*old, *value]))
    elif key == "type":
        types = _intersect_types(old, value)
        if not types:
            return False
        merged[key] = types[0] if len(types) == 1 else types
    elif key in _LOWER_BOUNDS | _UPPER_BOUNDS and _is_number(old) and _is_number(value):
        merged[key] = max(old, value) if key in _LOWER_BOUNDS else min(old, value)
    elif key == "enum" and isinstance(old, list) and isinstance(value, list):
        merged[key] = [v for v in old if v in value]
        return bool(merged[key])
    elif key == "additionalProperties" and (old is False or value is False):
        merged[key] = False
    elif key in _ONE_SCHEMA:
        merged[key] = {"allOf": [old, value]}
    elif key in {"const", "anyOf", "oneOf", "$ref"}:
        return False
    # Any other keyword (description, format, pattern, ...): the first one given stands.
    return True


def _merge_all_of(node: JsonSchema, defs: dict[str, Any]) -> JsonSchema | None:
    """`node` with its `allOf` members merged in, or None when two of them contradict."""
    merged = {k: v for k, v in node.items() if k != "allOf"}
    pending = list(node["allOf"]) if isinstance(node.get("allOf"), list) else []
    seen: set[str] = set()
    while pending:
        member = pending.pop(0)
        if member is True or member == {}:
            continue
        if not isinstance(member, dict):
            return None
        if "$ref" in member:
            resolved = _resolve(defs, member["$ref"])
            if resolved is None:
                return None
            if resolved[0] in seen:
                continue
            seen.add(resolved[0])
            member = {**resolved[1], **{k: v for k, v in member.items() if k != "$ref"}}
        if isinstance(member.get("allOf"), list):
            pending.extend(member["allOf"])
        for key, value in member.items():
            if key != "allOf" and not _merge_key(merged, key, value):
                return None
    return merged


def _is_constraint_only(branch: object) -> bool:
    """An anyOf/oneOf branch that only restricts its parent (`{"required": ["a"]}`)."""
    return isinstance(branch, dict) and not (_SHAPES & branch.keys())


def _alternatives(node: JsonSchema, defs: dict[str, Any]) -> JsonSchema:
    """`node` with oneOf read as anyOf and its other keywords pushed into each branch.

    `{A, anyOf: [B, C]}` means `anyOf: [A and B, A and C]`. Branches that only restrict the
    parent (lists of required names, typically) are dropped: validation is the gateway's job.
    """
    key = "anyOf" if isinstance(node.get("anyOf"), list) else "oneOf"
    branches = node.get(key)
    base = {k: v for k, v in node.items() if k not in ("anyOf", "oneOf")}
    if not isinstance(branches, list):
        return base
    real = [b for b in branches if not _is_constraint_only(b)]
    if not real:
        return base
    structure = {k: v for k, v in base.items() if k not in _ANNOTATIONS}
    if not structure:
        return {**base, "anyOf": real}
    merged = []
    for branch in real:
        both = _merge_all_of({"allOf": [structure, branch]}, defs)
        merged.append(branch if both is None else both)
    return {**{k: v for k, v in base.items() if k in _ANNOTATIONS}, "anyOf": merged}


def _object_root(schema: JsonSchema) -> JsonSchema:
    """The root as a plain `type: object` schema, which OpenAI, Anthropic and Gemini all need."""
    defs = _defs(schema)
    root = dict(schema)
    resolved = _resolve(defs, root.get("$ref"))
    if resolved is not None:
        root = {**resolved[1], **{k: v for k, v in root.items() if k != "$ref"}}
    if "allOf" in root:
        root = _merge_all_of(root, defs) or {k: v for k, v in root.items() if k != "allOf"}
    if "anyOf" in root or "oneOf" in root:
        root = _union_of_alternatives(root, defs)
    root["type"] = "object"
    if not isinstance(root.get("properties"), dict):
        root["properties"] = {}  # OpenAI: "In context=(), object schema missing properties"
    return root


def _union_of_alternatives(root: JsonSchema, defs: dict[str, Any]) -> JsonSchema:
    flat = _alternatives(root, defs)
    out = {k: v for k, v in flat.items() if k != "anyOf"}
    properties = dict(_dict(out, "properties"))
    required: list[str] | None = None
    for branch in _list(flat, "anyOf"):
        if isinstance(branch, dict) and ("$ref" in branch or "allOf" in branch):
            branch = _merge_all_of({"allOf": [branch]}, defs) or {}
        if not isinstance(branch, dict):
            continue
        for name, sub in _dict(branch, "properties").items():
            properties.setdefault(name, sub)
        needed = [r for r in _list(branch, "required") if isinstance(r, str)]
        required = needed if required is None else [r for r in required if r in needed]
    if properties:
        out["properties"] = properties
    out["required"] = list(dict.fromkeys([*_list(out, "required"), *(required or [])]))
    if not out["required"]:
        del out["required"]
    return out


# --- OpenAI (non-strict) ----------------------------------------------------------------------


def for_openai(schema: JsonSchema) -> JsonSchema:
    """Function `parameters` for OpenAI Chat Completions and Responses without `strict`."""
    out: JsonSchema = _openai_node(_object_root(schema))
    return out


def _openai_node(node: Any) -> Any:
    if not isinstance(node, dict):
        return node
    out = _map_schema(node, _openai_node)
    if "array" in _types(out) and out.get("items", True) is True:
        out["items"] = {}
    return out


# --- OpenAI strict ----------------------------------------------------------------------------


def for_openai_strict(schema: JsonSchema) -> JsonSchema | None:
    """Function `parameters` for OpenAI's `strict: true`, or None when there is no strict form."""
    root = _object_root(schema)
    if not root.get("properties") and root.get("additionalProperties", True) in (True, {}):
        root = {**root, "properties": {}, "additionalProperties": False}  # a tool without arguments
    walker = _Strict(_defs(root))
    try:
        out = walker.node(root, objects=0, level=0)
        if walker.defs:
            out["$defs"] = {name: walker.node(d, 0, 0) for name, d in walker.defs.items()}
            walker.chars += sum(len(name) for name in walker.defs)
        walker.check_totals()
    except _NoForm:
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
            raise _NoForm
        if "allOf" in s:
            s = _merge_all_of(s, self.defs)
            if s is None:
                raise _NoForm
        if "anyOf" in s or "oneOf" in s:
            s = _alternatives(s, self.defs)
        if "$ref" in s:
            return self.ref(s, objects, level)
        out = _annotations(s)
        if "anyOf" in s:
            out["anyOf"] = [self.node(b, objects, level + 1) for b in s["anyOf"]]
            return out
        types = _types(s)
        others = [t for t in types if t != "null"]
        if len(others) > 1:
            out["anyOf"] = [self.node(b, objects, level + 1) for b in _split(s, others)]
            if "null" in types:
                out["anyOf"].append({"type": "null"})
            return out
        if not others:
            if types:  # null and nothing else
                return {**out, "type": "null"}
            raise _NoForm  # untyped: any value at all
        out["type"] = others[0] if len(types) == 1 else [others[0], "null"]
        self.values(s, out)
        self.typed(s, others[0], out, objects, level)
        return out

    def ref(self, s: JsonSchema, objects: int, level: int) -> JsonSchema:
        resolved = _resolve(self.defs, s["$ref"])
        if resolved is None:
            raise _NoForm
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
                raise _NoForm
        if "const" in s:
            out["const"] = s["const"]
            self.chars += len(s["const"]) if isinstance(s["const"], str) else 0

    def typed(self, s: JsonSchema, type_: str, out: JsonSchema, objects: int, level: int) -> None:
        if type_ == "object":
            properties = _dict(s, "properties")
            if not properties and s.get("additionalProperties") is not False:
                raise _NoForm  # a free-form object or a map
            if objects + 1 > STRICT_MAX_OBJECT_DEPTH:
                raise _NoForm
            required = set(_list(s, "required"))
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
                raise _NoForm
            out["items"] = self.node(s["items"], objects, level + 1)
            out.update({k: s[k] for k in ("minItems", "maxItems") if isinstance(s.get(k), int)})
        elif type_ == "string":
            if isinstance(s.get("pattern"), str) and _usable_pattern(s["pattern"]):
                out["pattern"] = s["pattern"]
            if s.get("format") in STRICT_FORMATS:
                out["format"] = s["format"]
        elif type_ in ("number", "integer"):
            keys = ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf")
            out.update({k: s[k] for k in keys if _is_number(s.get(k))})
        elif type_ != "boolean":
            raise _NoForm  # not a JSON type ("file", ...)

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
            raise _NoForm


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


# --- Anthropic --------------------------------------------------------------------------------


def for_anthropic(schema: JsonSchema) -> JsonSchema:
    """An Anthropic `input_schema`: an object root with no combinator and only safe key names."""
    out: JsonSchema = _anthropic_node(_object_root(schema))
    return out


def _anthropic_node(node: Any) -> Any:
    if not isinstance(node, dict):
        return node
    out = _map_schema(node, _anthropic_node)
    properties = out.get("properties")
    if not isinstance(properties, dict):
        return out
    rejected = [name for name in properties if not _PROPERTY_KEY.match(name)]
    if not rejected:
        return out
    out["properties"] = {k: v for k, v in properties.items() if k not in rejected}
    required = _list(out, "required")
    out["required"] = [name for name in required if name not in rejected]
    if not out["required"]:
        del out["required"]
    for key in ("additionalProperties", "unevaluatedProperties"):
        out.pop(key, None)  # the rejected keys must stay sendable
    listed = ", ".join(json.dumps(k) + (" (required)" if k in required else "") for k in rejected)
    out["description"] = _append(_text(out.get("description")), f"Also accepts: {listed}.")
    return out


def _append(description: str, sentence: str) -> str:
    return f"{description} {sentence}" if description else sentence


# --- Gemini -----------------------------------------------------------------------------------


def for_gemini(schema: JsonSchema) -> JsonSchema | None:
    """A Gemini `FunctionDeclaration.parameters`, or None when the tool takes no arguments."""
    root = _object_root(schema)
    if not isinstance(root.get("properties"), dict) or not root["properties"]:
        return None
    defs = _defs(root)
    for max_depth in (GEMINI_MAX_DEPTH, GEMINI_MAX_DEPTH // 2, GEMINI_MAX_DEPTH // 4):
        try:
            return _Gemini(defs, max_depth, GEMINI_MAX_NODES).node(root, 0, 0, ())
        except _NoForm:
            continue
    # Top-level arguments only; the size is now linear in the schema's own size.
    return _Gemini(defs, 1, None).node(root, 0, 0, ())


def _json_string(description: str, why: str = "") -> JsonSchema:
    note = f"{why}; {JSON_STRING_NOTE}" if why else JSON_STRING_NOTE
    text = f"{description} ({note})" if description else note[0].upper() + note[1:] + "."
    return {"type": "STRING", "description": text}


def _allowed(description: str, values: Iterable[Any]) -> str:
    listed = [json.dumps(v) for v in values]
    shown = ", ".join(listed[:40]) + (
        f", ... ({len(listed) - 40} more)" if len(listed) > 40 else ""
    )
    return _append(description, f"Allowed values: {shown}.")


class _Gemini:
    """One inlining walk, with a depth bound and (unless None) a node budget."""

    def __init__(self, defs: dict[str, Any], max_depth: int, budget: int | None) -> None:
        self.defs = defs
        self.max_depth = max_depth
        self.budget = budget
        self.nodes = 0

    def node(self, s: Any, depth: int, hops: int, path: tuple[str, ...]) -> JsonSchema:
        """Emit `s`; `depth` counts emitted nesting, `hops` rewrites of this same node."""
        self.nodes += 1
        if self.budget is not None and self.nodes > self.budget:
            raise _NoForm
        if not isinstance(s, dict):
            return _json_string("")
        description = _text(s.get("description"))
        if depth > self.max_depth or hops > _MAX_HOPS:
            return _json_string(description, "cut here")
        if "$ref" in s:
            return self.ref(s, depth, hops, path)
        if "allOf" in s:
            return self.node(self.all_of(s), depth, hops + 1, path)
        if "anyOf" in s or "oneOf" in s:
            s = _alternatives(s, self.defs)
            if "anyOf" in s:
                return self.any_of(s, depth, hops, path)
        types = _types(s)
        others = [t for t in types if t != "null"]
        if len(others) > 1:
            branches = _split(s, others)
            nulls = [{"type": "null"}] if "null" in types else []
            return self.any_of({**_annotations(s), "anyOf": branches + nulls}, depth, hops, path)
        if not others or others[0] not in (*_TYPE_KEYWORDS, "boolean"):
            return _json_string(description)
        out: JsonSchema = {"type": others[0].upper(), **_annotations(s)}
        if "null" in types or s.get("nullable") is True:
            out["nullable"] = True
        return self.typed(s, others[0], out, depth, path)

    def ref(self, s: JsonSchema, depth: int, hops: int, path: tuple[str, ...]) -> JsonSchema:
        description = _text(s.get("description"))
        resolved = _resolve(self.defs, s["$ref"])
        if resolved is None:
            return _json_string(description, "unresolvable reference")
        name, target = resolved
        if path.count(name) >= GEMINI_REF_REPEATS:
            return _json_string(description or _text(target.get("description")), "recursion cut")
        merged = {**target, **{k: v for k, v in s.items() if k != "$ref"}}
        return self.node(merged, depth, hops + 1, (*path, name))

    def all_of(self, s: JsonSchema) -> JsonSchema:
        merged = _merge_all_of(s, self.defs)
        if merged is not None:
            return merged
        # Contradicting members: keep the one with the most properties, and say so.
        members = [m for m in s["allOf"] if isinstance(m, dict)]
        best = max(members, key=self.size, default={})
        rest = {k: v for k, v in s.items() if k != "allOf"}
        note = "Simplified: must also satisfy constraints not shown here."
        return {**best, **rest, "description": _append(_text(rest.get("description")), note)}

    def size(self, member: JsonSchema) -> int:
        resolved = _resolve(self.defs, member.get("$ref"))
        properties = (resolved[1] if resolved else member).get("properties")
        return len(properties) if isinstance(properties, dict) else 0

    def any_of(self, s: JsonSchema, depth: int, hops: int, path: tuple[str, ...]) -> JsonSchema:
        branches = [b for b in s["anyOf"] if not (isinstance(b, dict) and b.get("type") == "null")]
        nullable = len(branches) < len(s["anyOf"])
        if len(branches) == 1:
            single = branches[0]
            if isinstance(single, dict) and "description" in s and "description" not in single:
                single = {**single, "description": s["description"]}
            out = self.node(single, depth, hops + 1, path)
        elif branches:
            out = {**_annotations(s), "anyOf": [self.node(b, depth + 1, 0, path) for b in branches]}
        else:
            return _json_string(_text(s.get("description")))
        if nullable:
            out["nullable"] = True
        return out

    def typed(
        self, s: JsonSchema, type_: str, out: JsonSchema, depth: int, path: tuple[str, ...]
    ) -> JsonSchema:
        match type_:
            case "object":
                properties = s.get("properties")
                if not isinstance(properties, dict) or not properties:
                    return _json_string(_text(s.get("description")))
                out["properties"] = {
                    name: self.node(sub, depth + 1, 0, path) for name, sub in properties.items()
                }
                required = dict.fromkeys(_list(s, "required"))
                if present := [name for name in required if name in properties]:
                    out["required"] = present
                bounds: tuple[str, ...] = ("minProperties", "maxProperties")
            case "array":
                items = s.get("items")
                out["items"] = self.node(
                    items if isinstance(items, dict) else {}, depth + 1, 0, path
                )
                bounds = ("minItems", "maxItems")
            case "string":
                if isinstance(s.get("pattern"), str) and _usable_pattern(s["pattern"]):
                    out["pattern"] = s["pattern"]
                bounds = ("minLength", "maxLength")
            case "number" | "integer":
                self.exclusive_bounds(s, type_, out)
                bounds = ("minimum", "maximum")
            case _:
                bounds = ()
        out.update({k: s[k] for k in bounds if _is_number(s.get(k))})
        self.values(s, type_, out)
        if s.get("format") in _GEMINI_FORMATS.get(type_, ()) and (
            s["format"] != "enum" or "enum" in out
        ):
            out["format"] = s["format"]
        if "default" in s and type_ not in ("object", "array") and _matches(s["default"], type_):
            out["default"] = s["default"]
        return out

    @staticmethod
    def exclusive_bounds(s: JsonSchema, type_: str, out: JsonSchema) -> None:
        step = 1 if type_ == "integer" else 0  # a number bound stays inclusive: slightly looser
        if _is_number(s.get("exclusiveMinimum")):
            out["minimum"] = s["exclusiveMinimum"] + step
        if _is_number(s.get("exclusiveMaximum")):
            out["maximum"] = s["exclusiveMaximum"] - step

    @staticmethod
    def values(s: JsonSchema, type_: str, out: JsonSchema) -> None:
        values = _values(s)
        if values is None:
            return
        if None in values:
            out["nullable"] = True
        values = [v for v in values if v is not None]
        if type_ == "string" and values and all(isinstance(v, str) for v in values):
            out["enum"] = values
        elif values:  # Gemini enums are strings only: tell the model in words instead
            out["description"] = _allowed(_text(out.get("description")), values)
