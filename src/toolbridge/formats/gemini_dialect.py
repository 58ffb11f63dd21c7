"""Gemini's dialect: the OpenAPI 3.0 subset Gemini accepts. Pure: no I/O, the input is never
mutated, and the output may share JSON leaves with it (see `toolbridge.formats`).

`for_gemini` inlines `$ref`s; a definition may appear at most `GEMINI_REF_REPEATS` times on one
path, deeper recursion is cut. Emitted nesting is bounded by `GEMINI_MAX_DEPTH` and size by
`GEMINI_MAX_NODES`: a schema over budget is emitted again with a shallower bound, so every
top-level argument keeps its type and the output can never grow exponentially. Gemini has no way
to say "any value" or "any object" (an OBJECT needs properties), so a free-form object, a
cut recursion or a cut subtree becomes
`{"type": "STRING", "description": "... (a JSON value, encoded as a string)"}`; the call path
decodes such a string where the canonical schema wants an object or array (`arguments._mend`);
this module only marks the places, with `JSON_STRING_NOTE` in the description. An untyped value
(`{}`) becomes a STRING said to be passed on as the text given (`ANY_TEXT_NOTE`).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from toolbridge.formats import combinators, keywords
from toolbridge.tools import JsonSchema

JSON_STRING_NOTE = "a JSON value, encoded as a string"
"""Ends the description of every Gemini stand-in for a value Gemini cannot describe."""
ANY_TEXT_NOTE = "any value, passed on as the text given"
"""Ends the description of an untyped value (`{}`): nothing decodes it, as nothing could tell
an encoded value from text (Open WebUI, too, types an unannotated parameter as a string)."""

GEMINI_REF_REPEATS = 2
"""How often one `$defs` entry may appear on a single path before the recursion is cut."""
GEMINI_MAX_DEPTH = 12
"""Nesting levels (properties, items, anyOf branches) emitted before a subtree is cut."""
GEMINI_MAX_NODES = 1500
"""Nodes per schema; over it, the schema is emitted again with a shallower depth bound."""

_GEMINI_FORMATS = {
    "string": {"enum", "date-time"},
    "number": {"float", "double"},
    "integer": {"int32", "int64"},
}
_MAX_HOPS = 8
"""Consecutive `$ref`/`allOf`/`anyOf` rewrites of one node before we give up on it."""


def for_gemini(schema: JsonSchema) -> JsonSchema | None:
    """A Gemini `FunctionDeclaration.parameters`, or None when the tool takes no arguments."""
    root = combinators.object_root(schema)
    if not isinstance(root.get("properties"), dict) or not root["properties"]:
        return None
    defs = keywords.defs(root)
    for max_depth in (GEMINI_MAX_DEPTH, GEMINI_MAX_DEPTH // 2, GEMINI_MAX_DEPTH // 4):
        try:
            return _Gemini(defs, max_depth, GEMINI_MAX_NODES).node(root, 0, 0, ())
        except keywords.NoForm:
            continue
    # Top-level arguments only; the size is now linear in the schema's own size.
    return _Gemini(defs, 1, None).node(root, 0, 0, ())


def _json_string(description: str, why: str = "") -> JsonSchema:
    note = f"{why}; {JSON_STRING_NOTE}" if why else JSON_STRING_NOTE
    text = f"{description} ({note})" if description else note[0].upper() + note[1:] + "."
    return {"type": "STRING", "description": text}


def _text(description: str) -> JsonSchema:
    text = f"{description} ({ANY_TEXT_NOTE})" if description else ANY_TEXT_NOTE.capitalize() + "."
    return {"type": "STRING", "description": text}


def _allowed(description: str, values: Iterable[Any]) -> str:
    listed = [json.dumps(v) for v in values]
    shown = ", ".join(listed[:40]) + (
        f", ... ({len(listed) - 40} more)" if len(listed) > 40 else ""
    )
    return keywords.append(description, f"Allowed values: {shown}.")


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
            raise keywords.NoForm
        if not isinstance(s, dict):
            return _json_string("")
        description = keywords.text(s.get("description"))
        if depth > self.max_depth or hops > _MAX_HOPS:
            return _json_string(description, "cut here")
        if "$ref" in s:
            return self.ref(s, depth, hops, path)
        if "allOf" in s:
            return self.node(self.all_of(s), depth, hops + 1, path)
        if "anyOf" in s or "oneOf" in s:
            s = combinators.alternatives(s, self.defs)
            if "anyOf" in s:
                return self.any_of(s, depth, hops, path)
        types = keywords.types(s)
        others = [t for t in types if t != "null"]
        if len(others) > 1:
            branches = keywords.split(s, others)
            nulls = [{"type": "null"}] if "null" in types else []
            return self.any_of(
                {**keywords.annotations_of(s), "anyOf": branches + nulls}, depth, hops, path
            )
        if not types:  # untyped: any value, which a model gives as text and the tool gets so
            return _text(description)
        if not others or others[0] not in (*keywords.TYPE_KEYWORDS, "boolean"):
            return _json_string(description)
        out: JsonSchema = {"type": others[0].upper(), **keywords.annotations_of(s)}
        if "null" in types or s.get("nullable") is True:
            out["nullable"] = True
        return self.typed(s, others[0], out, depth, path)

    def ref(self, s: JsonSchema, depth: int, hops: int, path: tuple[str, ...]) -> JsonSchema:
        description = keywords.text(s.get("description"))
        resolved = keywords.resolve(self.defs, s["$ref"])
        if resolved is None:
            return _json_string(description, "unresolvable reference")
        name, target = resolved
        if path.count(name) >= GEMINI_REF_REPEATS:
            return _json_string(
                description or keywords.text(target.get("description")), "recursion cut"
            )
        merged = {**target, **{k: v for k, v in s.items() if k != "$ref"}}
        return self.node(merged, depth, hops + 1, (*path, name))

    def all_of(self, s: JsonSchema) -> JsonSchema:
        merged = combinators.merge_all_of(s, self.defs)
        if merged is not None:
            return merged
        # Contradicting members: keep the one with the most properties, and say so.
        members = [m for m in s["allOf"] if isinstance(m, dict)]
        best = max(members, key=self.size, default={})
        rest = {k: v for k, v in s.items() if k != "allOf"}
        note = "Simplified: must also satisfy constraints not shown here."
        return {
            **best,
            **rest,
            "description": keywords.append(keywords.text(rest.get("description")), note),
        }

    def size(self, member: JsonSchema) -> int:
        resolved = keywords.resolve(self.defs, member.get("$ref"))
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
            out = {
                **keywords.annotations_of(s),
                "anyOf": [self.node(b, depth + 1, 0, path) for b in branches],
            }
        else:
            return _json_string(keywords.text(s.get("description")))
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
                    return _json_string(keywords.text(s.get("description")))
                out["properties"] = {
                    name: self.node(sub, depth + 1, 0, path) for name, sub in properties.items()
                }
                required = dict.fromkeys(keywords.list_of(s, "required"))
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
                if isinstance(s.get("pattern"), str) and keywords.usable_pattern(s["pattern"]):
                    out["pattern"] = s["pattern"]
                bounds = ("minLength", "maxLength")
            case "number" | "integer":
                self.exclusive_bounds(s, type_, out)
                bounds = ("minimum", "maximum")
            case _:
                bounds = ()
        out.update({k: s[k] for k in bounds if keywords.is_number(s.get(k))})
        self.values(s, type_, out)
        if s.get("format") in _GEMINI_FORMATS.get(type_, ()) and (
            s["format"] != "enum" or "enum" in out
        ):
            out["format"] = s["format"]
        if (
            "default" in s
            and type_ not in ("object", "array")
            and keywords.matches(s["default"], type_)
        ):
            out["default"] = s["default"]
        return out

    @staticmethod
    def exclusive_bounds(s: JsonSchema, type_: str, out: JsonSchema) -> None:
        step = 1 if type_ == "integer" else 0  # a number bound stays inclusive: slightly looser
        if keywords.is_number(s.get("exclusiveMinimum")):
            out["minimum"] = s["exclusiveMinimum"] + step
        if keywords.is_number(s.get("exclusiveMaximum")):
            out["maximum"] = s["exclusiveMaximum"] - step

    @staticmethod
    def values(s: JsonSchema, type_: str, out: JsonSchema) -> None:
        values = keywords.values(s)
        if values is None:
            return
        if None in values:
            out["nullable"] = True
        values = [v for v in values if v is not None]
        if type_ == "string" and values and all(isinstance(v, str) for v in values):
            out["enum"] = values
        elif values:  # Gemini enums are strings only: tell the model in words instead
            out["description"] = _allowed(keywords.text(out.get("description")), values)
