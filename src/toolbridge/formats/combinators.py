"""`allOf`, `anyOf` and `oneOf` made simpler: members merged, alternatives flattened, a root made
a plain object.

The root of every dialect is a plain `type: object` schema with `properties`: a root `$ref` is
inlined, a root `allOf` merged, and a root `anyOf`/`oneOf` becomes the union of the
alternatives' properties (required: those every alternative requires). Pure; the input is never
mutated.
"""

from __future__ import annotations

from typing import Any

from toolbridge.formats import keywords
from toolbridge.tools import JsonSchema

_SHAPES = frozenset(
    {"type", "properties", "additionalProperties", "items", "prefixItems", "enum", "const"}
    | {"$ref", "anyOf", "oneOf", "allOf"}
)
"""Keywords that say what a value looks like, rather than only restricting it further."""
_LOWER_BOUNDS = frozenset({"minimum", "exclusiveMinimum", "minLength", "minItems", "minProperties"})
_UPPER_BOUNDS = frozenset({"maximum", "exclusiveMaximum", "maxLength", "maxItems", "maxProperties"})


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
    elif (
        key in _LOWER_BOUNDS | _UPPER_BOUNDS
        and keywords.is_number(old)
        and keywords.is_number(value)
    ):
        merged[key] = max(old, value) if key in _LOWER_BOUNDS else min(old, value)
    elif key == "enum" and isinstance(old, list) and isinstance(value, list):
        merged[key] = [v for v in old if v in value]
        return bool(merged[key])
    elif key == "additionalProperties" and (old is False or value is False):
        merged[key] = False
    elif key in keywords.ONE_SCHEMA:
        merged[key] = {"allOf": [old, value]}
    elif key in {"const", "anyOf", "oneOf", "$ref"}:
        return False
    # Any other keyword (description, format, pattern, ...): the first one given stands.
    return True


def merge_all_of(node: JsonSchema, defs: dict[str, Any]) -> JsonSchema | None:
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
            resolved = keywords.resolve(defs, member["$ref"])
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


def alternatives(node: JsonSchema, defs: dict[str, Any]) -> JsonSchema:
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
    structure = {k: v for k, v in base.items() if k not in keywords.ANNOTATIONS}
    if not structure:
        return {**base, "anyOf": real}
    merged = []
    for branch in real:
        both = merge_all_of({"allOf": [structure, branch]}, defs)
        merged.append(branch if both is None else both)
    return {**{k: v for k, v in base.items() if k in keywords.ANNOTATIONS}, "anyOf": merged}


def object_root(schema: JsonSchema) -> JsonSchema:
    """The root as a plain `type: object` schema, which OpenAI, Anthropic and Gemini all need."""
    defs = keywords.defs(schema)
    root = dict(schema)
    resolved = keywords.resolve(defs, root.get("$ref"))
    if resolved is not None:
        root = {**resolved[1], **{k: v for k, v in root.items() if k != "$ref"}}
    if "allOf" in root:
        root = merge_all_of(root, defs) or {k: v for k, v in root.items() if k != "allOf"}
    if "anyOf" in root or "oneOf" in root:
        root = _union_of_alternatives(root, defs)
    root["type"] = "object"
    if not isinstance(root.get("properties"), dict):
        root["properties"] = {}  # OpenAI: "In context=(), object schema missing properties"
    return root


def _union_of_alternatives(root: JsonSchema, defs: dict[str, Any]) -> JsonSchema:
    flat = alternatives(root, defs)
    out = {k: v for k, v in flat.items() if k != "anyOf"}
    properties = dict(keywords.dict_of(out, "properties"))
    required: list[str] | None = None
    for branch in keywords.list_of(flat, "anyOf"):
        if isinstance(branch, dict) and ("$ref" in branch or "allOf" in branch):
            branch = merge_all_of({"allOf": [branch]}, defs) or {}
        if not isinstance(branch, dict):
            continue
        for name, sub in keywords.dict_of(branch, "properties").items():
            properties.setdefault(name, sub)
        needed = [r for r in keywords.list_of(branch, "required") if isinstance(r, str)]
        required = needed if required is None else [r for r in required if r in needed]
    if properties:
        out["properties"] = properties
    out["required"] = list(dict.fromkeys([*keywords.list_of(out, "required"), *(required or [])]))
    if not out["required"]:
        del out["required"]
    return out
