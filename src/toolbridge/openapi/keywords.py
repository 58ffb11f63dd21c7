"""The keyword rules of schema translation: what each OpenAPI schema keyword becomes in 2020-12.

One function per kind of keyword (types, numbers and bounds, counts, text, patterns, examples,
subschemas), chosen through `HANDLERS`, writing into the translated node and noting what it
dropped in a `Found`. Following `$ref`s and naming and sharing `$defs` is not done here
(`definitions`); subschemas go back through the translator's `node`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from toolbridge import schemas as js
from toolbridge.openapi.compilable import valid_regex
from toolbridge.openapi.references import References, RefError
from toolbridge.tools import Note


@dataclass(slots=True)
class Found:
    """What translating one schema produced: the schema, and notes on what changed."""

    schema: Any
    notes: list[Note] = field(default_factory=list)
    directed: bool = False
    """The translation depends on its direction (a readOnly or writeOnly property), or on
    what else was being translated at the time: it cannot serve the other direction."""


class Translator(Protocol):
    """What the keyword rules need of the translation they are part of (`Definitions`)."""

    @property
    def refs(self) -> References: ...
    @property
    def version(self) -> str: ...
    @property
    def direction(self) -> str: ...
    def node(self, node: Any, uri: str, found: Found) -> Any: ...
    def text(self, value: Any) -> str: ...


def _flags(
    d: Translator, sub: Any, uri: str, own: str, other: str, depth: int = 0
) -> tuple[bool, bool]:
    """Whether a property is flagged `own` (readOnly in requests, writeOnly in responses: it is
    left out) and, if not, whether it is flagged `other` (the other direction leaves it out).

    A flag may sit on the property, on what its `$ref` names, or on an `allOf` member. The
    search for `own` stops where it is found; `other` is read on the way.
    """
    if not isinstance(sub, dict) or depth > 8:
        return False, False
    if sub.get(own) is True:
        return True, False
    marked = sub.get(other) is True
    if "$ref" in sub:
        try:
            target, uri, _ = d.refs.follow(sub["$ref"], uri)
        except RefError:
            return False, marked
        hit, also = _flags(d, target, uri, own, other, depth + 1)
        return hit, marked or also
    members = sub.get("allOf")
    if isinstance(members, list):
        for member in members:
            hit, also = _flags(d, member, uri, own, other, depth + 1)
            if hit:
                return True, False
            marked = marked or also
    return False, marked


def _type(
    d: Translator, out: dict[str, Any], key: str, value: Any, node: Any, uri: str, found: Found
) -> None:
    if type(value) is str and value in js.JSON_TYPES:  # the common case, as below
        out["type"] = value
        return
    if value == "file" and d.version == "2.0":
        out["type"] = "string"
        out.setdefault("format", "binary")
        return
    kinds = [value] if isinstance(value, str) else value if isinstance(value, list) else []
    valid: list[str] = []
    for kind in kinds:
        if isinstance(kind, str) and kind in js.JSON_TYPES:
            if kind not in valid:
                valid.append(kind)
        else:
            found.notes.append(
                Note(kind="invalid-schema", message=f"unknown type {kind!r} dropped")
            )
    if valid:
        out["type"] = valid[0] if len(valid) == 1 else valid


def _number(
    d: Translator, out: dict[str, Any], key: str, value: Any, node: Any, uri: str, found: Found
) -> None:
    if isinstance(value, bool):
        # Draft 4 / OpenAPI 3.0 style: exclusiveMinimum: true qualifies minimum.
        bound = "minimum" if key == "exclusiveMinimum" else "maximum"
        if (
            key in ("exclusiveMinimum", "exclusiveMaximum")
            and value
            and _is_number(node.get(bound))
        ):
            out[key] = node[bound]
            out.pop(bound, None)
        return
    if _is_number(value):
        if key in ("minimum", "maximum"):
            exclusive = node.get("exclusiveMinimum" if key == "minimum" else "exclusiveMaximum")
            if exclusive is True:
                return
        if key == "multipleOf" and value <= 0:
            return
        out[key] = value
    elif isinstance(value, str):
        try:
            out[key] = float(value) if "." in value else int(value)
        except ValueError:
            found.notes.append(
                Note(kind="invalid-schema", message=f"{key}: {value!r} is not a number; dropped")
            )


def _count(
    d: Translator, out: dict[str, Any], key: str, value: Any, node: Any, uri: str, found: Found
) -> None:
    if _is_number(value) and 0 <= value < 2**63 and float(value).is_integer():
        out[key] = int(value)  # counts past 2**63 fit no JSON parser's integers, and no string
    elif value is not None:
        found.notes.append(
            Note(kind="invalid-schema", message=f"{key} {value!r} is not a count; dropped")
        )


def _plain(
    d: Translator, out: dict[str, Any], key: str, value: Any, node: Any, uri: str, found: Found
) -> None:
    expected: type | tuple[type, ...] = (
        bool if key in ("uniqueItems", "deprecated", "readOnly", "writeOnly") else str
    )
    if isinstance(value, expected):
        out[key] = value


def _description(
    d: Translator, out: dict[str, Any], key: str, value: Any, node: Any, uri: str, found: Found
) -> None:
    text = d.text(value)
    if text:
        out["description"] = text


def _pattern(
    d: Translator, out: dict[str, Any], key: str, value: Any, node: Any, uri: str, found: Found
) -> None:
    if isinstance(value, str) and valid_regex(value):
        out["pattern"] = value
    else:
        found.notes.append(
            Note(
                kind="invalid-schema",
                message=f"pattern {str(value)[:80]!r} is not a valid regular expression; dropped",
            )
        )


def _enum(
    d: Translator, out: dict[str, Any], key: str, value: Any, node: Any, uri: str, found: Found
) -> None:
    if isinstance(value, list) and value:
        out["enum"] = value


def _any(
    d: Translator, out: dict[str, Any], key: str, value: Any, node: Any, uri: str, found: Found
) -> None:
    out[key] = value


def _example(
    d: Translator, out: dict[str, Any], key: str, value: Any, node: Any, uri: str, found: Found
) -> None:
    if key == "example" and isinstance(value, str | int | float | bool) and "examples" not in node:
        out["examples"] = [value]
    elif (
        key == "examples"
        and isinstance(value, list)
        and value
        and all(isinstance(v, str | int | float | bool) for v in value)
    ):
        out["examples"] = value[:5]


def _required(
    d: Translator, out: dict[str, Any], key: str, value: Any, node: Any, uri: str, found: Found
) -> None:
    if isinstance(value, list):
        names = list(dict.fromkeys(v for v in value if isinstance(v, str)))
        if names:
            out["required"] = names


def _properties(
    d: Translator, out: dict[str, Any], key: str, value: Any, node: Any, uri: str, found: Found
) -> None:
    if not isinstance(value, dict):
        return
    if isinstance(value.get("$ref"), str) and len(value) == 1:
        # Not valid OpenAPI, but seen in real documents: the whole mapping by reference.
        try:
            value, uri, _ = d.refs.follow(value["$ref"], uri)
        except RefError as exc:
            found.notes.append(
                Note(kind="unresolved-ref", message=f"{key} by $ref cannot be followed ({exc})")
            )
            return
        if not isinstance(value, dict):
            return
    props: dict[str, Any] = {}
    dropped = []
    own, other = (
        ("readOnly", "writeOnly") if d.direction == "request" else ("writeOnly", "readOnly")
    )
    flagged = key == "properties"
    for name, sub in value.items():
        if flagged and not (
            # Nothing to look for (the usual case), as `_flags` would find: no call.
            type(sub) is dict
            and own not in sub
            and other not in sub
            and "$ref" not in sub
            and "allOf" not in sub
        ):
            left_out, marked = _flags(d, sub, uri, own, other)
            if left_out:
                found.directed = True
                dropped.append(name)
                continue
            if marked:
                found.directed = True  # the other direction leaves it out
        if key == "patternProperties" and not valid_regex(name):
            continue
        props[name] = d.node(sub, uri, found)
    out[key] = props
    if dropped:
        flag = "read-only" if d.direction == "request" else "write-only"
        found.notes.append(
            Note(
                kind=f"{flag}-omitted",
                message=f"{flag} properties left out of the {d.direction}: {', '.join(dropped)}",
            )
        )


def _schema(
    d: Translator, out: dict[str, Any], key: str, value: Any, node: Any, uri: str, found: Found
) -> None:
    if key == "items" and isinstance(value, list):
        out["prefixItems"] = [d.node(v, uri, found) for v in value]
        return
    if key == "additionalItems":
        return
    if isinstance(value, dict | bool):
        out[key] = d.node(value, uri, found)


def _schema_list(
    d: Translator, out: dict[str, Any], key: str, value: Any, node: Any, uri: str, found: Found
) -> None:
    if isinstance(value, list) and value:
        out[key] = [d.node(v, uri, found) for v in value]


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


Handler = Callable[[Translator, dict[str, Any], str, Any, Any, str, Found], None]
"""One keyword's rule: (translator, out, keyword, its value, the whole node, base URI, found)."""

HANDLERS: dict[str, Handler] = {
    "type": _type,
    "description": _description,
    "pattern": _pattern,
    "enum": _enum,
    "const": _any,
    "default": _any,
    "example": _example,
    "examples": _example,
    "required": _required,
    "dependentRequired": _any,
    **dict.fromkeys(js.NUMBER_KEYWORDS, _number),
    **dict.fromkeys(js.COUNT_KEYWORDS, _count),
    **dict.fromkeys(js.PLAIN_KEYWORDS, _plain),
    **dict.fromkeys(js.SUBSCHEMA_MAPS, _properties),
    **dict.fromkeys(js.SUBSCHEMA_KEYWORDS, _schema),
    **dict.fromkeys(js.SUBSCHEMA_LISTS, _schema_list),
}
