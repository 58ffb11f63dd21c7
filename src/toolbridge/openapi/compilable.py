"""Which tool schemas surely compile, decided by reading them rather than by compiling them.

`soundness` compiles every tool schema with `jsonschema_rs`; on Kubernetes that took three times
as long as converting the document, because the same `$defs` are compiled again for every tool
that needs them. Nearly every translated schema is made of a few keywords with values of the
plain kinds JSON Schema 2020-12's meta-schema asks for, and `$ref`s to `$defs` it holds. This
module recognises that grammar, conservatively: what it accepts, the validator compiles (the
tests hold it to that over the corpus, seeded mutants of hostile documents, and a table of the
validator's refusals); anything else (a keyword not listed, a value of another kind, a
duplicate in `required`, a string that is not UTF-8, nesting near the validator's limit) is left
to the validator, which gives the verdict and the message.

Shared pieces are read once per conversion, by identity: each definition of a `$defs`, each
property schema at the top (a parameter's, shared by every operation that has it), each whole
`$defs`. Entries keep their object alive, so an identity cannot be reused while it is a key.
"""

from __future__ import annotations

import math
import re
from functools import lru_cache
from typing import Any

import jsonschema_rs

from toolbridge import schemas as js

MAX_DEPTH = 64
"""Containers (objects and arrays) a tool's schema may nest: deeper ones are not "surely", and
soundness refuses them (the corpus's deepest is 20; a schema of 124 levels compiled, but no
tool list that holds it could be written: orjson stops at 254)."""

_TEXT, _FLAG, _NUMBER, _COUNT, _TYPE, _NAMES, _VALUE, _VALUES = range(8)
_DEPENDENT, _PATTERN, _REF, _SUB, _MAP, _LIST = range(8, 14)
_RULES: dict[str, int] = {
    **dict.fromkeys(
        ("description", "title", "format", "contentEncoding", "contentMediaType"), _TEXT
    ),
    **dict.fromkeys(("uniqueItems", "deprecated", "readOnly", "writeOnly"), _FLAG),
    **dict.fromkeys(("maximum", "minimum", "exclusiveMaximum", "exclusiveMinimum"), _NUMBER),
    "multipleOf": _NUMBER,
    **dict.fromkeys(js.COUNT_KEYWORDS, _COUNT),
    "type": _TYPE,
    "required": _NAMES,
    "enum": _VALUES,
    "examples": _VALUES,
    "const": _VALUE,
    "default": _VALUE,
    "dependentRequired": _DEPENDENT,
    "pattern": _PATTERN,
    "$ref": _REF,
    **dict.fromkeys(
        (
            "items",
            "additionalProperties",
            "not",
            "contains",
            "propertyNames",
            "if",
            "then",
            "else",
            "unevaluatedItems",
            "unevaluatedProperties",
            "contentSchema",
        ),
        _SUB,
    ),
    **dict.fromkeys(("properties", "patternProperties", "dependentSchemas"), _MAP),
    **dict.fromkeys(("allOf", "anyOf", "oneOf", "prefixItems"), _LIST),
}
"""What each keyword's value must be for the schema to surely compile; keywords not here
(including `$defs` below the top) are left to the validator."""
_TYPES = frozenset({"null", "boolean", "object", "array", "number", "string", "integer"})
_REF_PREFIX = "#/$defs/"
_PLAIN_NAME = re.compile(r"[A-Za-z0-9_.-]+")
"""`$defs` names a `$ref` can point at as written: nothing to escape or decode."""
_LIMIT = 2**63
_FAIL = -1
_ABSENT = object()


@lru_cache(maxsize=4096)
def valid_regex(pattern: str) -> bool:
    """Whether the validator we compile argument schemas with accepts the pattern (as a
    `pattern`, and so also as a `patternProperties` name: both are read as ECMA 262 regexes)."""
    try:
        jsonschema_rs.validator_for({"pattern": pattern})
    except (ValueError, jsonschema_rs.ValidationError):
        return False
    return True


class Compilable:
    """The verdicts of one conversion: `surely(schema)` for each tool schema."""

    def __init__(self) -> None:
        self._pieces: dict[int, tuple[object, int, frozenset[str]]] = {}
        """By identity of a definition or a top property schema: it, its depth, its `$ref`s."""
        self._defs: dict[int, tuple[object, int]] = {}
        """By identity of a whole `$defs`: it, and the depth of its deepest definition."""

    def surely(self, schema: Any) -> bool:
        """True only if `jsonschema_rs.validator_for(schema)` succeeds: a mapping read as a
        whole schema, its `$defs` at the top. False means "ask the validator"."""
        if type(schema) is not dict:
            return False
        refs: set[str] = set()
        deepest = 0
        defs = schema.get("$defs", _ABSENT)
        if defs is not _ABSENT:
            depth = self._all_defs(defs)
            if depth == _FAIL:
                return False
            deepest = depth + 1
        for key, value in schema.items():
            if key == "properties" and type(value) is dict:
                depth = self._top_properties(value, refs)
            elif key != "$defs":
                depth = _keyword(key, value, refs, MAX_DEPTH - 1)
            else:
                continue
            if depth == _FAIL:
                return False
            if depth > deepest:
                deepest = depth
        if deepest + 1 > MAX_DEPTH:
            return False
        return not refs or (type(defs) is dict and refs <= defs.keys())

    def _top_properties(self, properties: dict[str, Any], refs: set[str]) -> int:
        if not _texts(properties):
            return _FAIL
        deepest = 0
        pieces = self._pieces
        for sub in properties.values():
            piece = pieces.get(id(sub))
            if piece is None or piece[0] is not sub:
                piece = self._piece(sub)
            depth = piece[1]
            if depth == _FAIL:
                return _FAIL
            if piece[2]:
                refs |= piece[2]
            if depth > deepest:
                deepest = depth
        return deepest + 1

    def _all_defs(self, defs: Any) -> int:
        """The depth of the deepest definition, if each surely compiles and every `$ref` they
        hold names one of them; else _FAIL."""
        known = self._defs.get(id(defs))
        if known is not None and known[0] is defs:
            return known[1]
        deepest = _FAIL
        if type(defs) is dict and _texts(defs):
            deepest = 0
            names = defs.keys()
            pieces = self._pieces
            for sub in defs.values():
                piece = pieces.get(id(sub))
                if piece is None or piece[0] is not sub:
                    piece = self._piece(sub)
                depth = piece[1]
                if depth == _FAIL or (piece[2] and not piece[2] <= names):
                    deepest = _FAIL
                    break
                if depth > deepest:
                    deepest = depth
        self._defs[id(defs)] = (defs, deepest)
        return deepest

    def _piece(self, sub: Any) -> tuple[object, int, frozenset[str]]:
        """A shared schema, its depth (or _FAIL) and the `$defs` names it refers to."""
        refs: set[str] = set()
        depth = _schema(sub, refs, MAX_DEPTH - 2)
        piece = self._pieces[id(sub)] = (sub, depth, frozenset(refs))
        return piece


def _schema(node: Any, refs: set[str], room: int) -> int:
    """The nesting depth of a schema that surely compiles (its `$ref` names added to `refs`),
    or _FAIL; `room` is how deep it may go."""
    if type(node) is not dict:
        return 0 if type(node) is bool else _FAIL
    if room <= 0:
        return _FAIL
    deepest = 0
    for key, value in node.items():
        rule = _RULES.get(key)
        # The commonest keywords first, without a call: texts, a type named, a `$ref`.
        if rule == _TEXT:
            if type(value) is str and (value.isascii() or _utf8(value)):
                continue
            return _FAIL
        if rule == _TYPE and type(value) is str:
            if value in _TYPES:
                continue
            return _FAIL
        if rule == _REF:
            if type(value) is not str or not value.startswith(_REF_PREFIX):
                return _FAIL
            name = value[8:]
            if not _plain_name(name):
                return _FAIL
            refs.add(name)
            continue
        if rule == _SUB:
            depth = _schema(value, refs, room - 1)
        elif rule == _MAP:
            depth = _map(key, value, refs, room - 1)
        else:
            depth = _keyword(key, value, refs, room - 1)
        if depth == _FAIL:
            return _FAIL
        if depth > deepest:
            deepest = depth
    return deepest + 1


@lru_cache(maxsize=65536)
def _plain_name(name: str) -> bool:
    return _PLAIN_NAME.fullmatch(name) is not None


def _map(key: str, value: Any, refs: set[str], room: int) -> int:
    """`properties`, `patternProperties`, `dependentSchemas`: names to schemas."""
    if type(value) is not dict or room <= 0 or not _texts(value):
        return _FAIL
    if key == "patternProperties" and not all(valid_regex(name) for name in value):
        return _FAIL
    deepest = 0
    for sub in value.values():
        depth = _schema(sub, refs, room - 1)
        if depth == _FAIL:
            return _FAIL
        if depth > deepest:
            deepest = depth
    return deepest + 1


def _keyword(key: str, value: Any, refs: set[str], room: int) -> int:
    """The nesting depth of one keyword's value if it surely compiles, else _FAIL."""
    rule = _RULES.get(key)
    kind = type(value)
    if rule == _TEXT:
        return 0 if _text(value) else _FAIL
    if rule == _SUB:
        return _schema(value, refs, room)
    if rule == _MAP:
        return _map(key, value, refs, room)
    if rule == _REF:
        if kind is not str or not value.startswith(_REF_PREFIX):
            return _FAIL
        name = value[8:]
        if not _plain_name(name):
            return _FAIL
        refs.add(name)
        return 0
    if rule == _TYPE:
        if kind is str:
            return 0 if value in _TYPES else _FAIL
        if kind is not list or not value:
            return _FAIL
        if not all(type(v) is str and v in _TYPES for v in value) or len(set(value)) != len(value):
            return _FAIL
        return 1
    if rule == _LIST:
        if kind is not list or not value or room <= 0:
            return _FAIL
        deepest = 0
        for sub in value:
            depth = _schema(sub, refs, room - 1)
            if depth == _FAIL:
                return _FAIL
            deepest = max(deepest, depth)
        return deepest + 1
    if rule == _FLAG:
        return 0 if kind is bool else _FAIL
    if rule == _COUNT:
        return 0 if kind is int and 0 <= value < _LIMIT else _FAIL
    if rule == _NUMBER:
        ok = -_LIMIT < value < _LIMIT if kind is int else kind is float and math.isfinite(value)
        return 0 if ok and (key != "multipleOf" or value > 0) else _FAIL
    if rule == _NAMES:
        return 1 if _names(value) else _FAIL
    if rule == _PATTERN:
        return 0 if _text(value) and valid_regex(value) else _FAIL
    if rule == _VALUES:
        return _value(value, room) if kind is list else _FAIL
    if rule == _VALUE:
        return _value(value, room)
    if rule == _DEPENDENT:
        if kind is not dict or not _texts(value) or not all(map(_names, value.values())):
            return _FAIL
        return 2
    return _FAIL  # a keyword the grammar does not hold (`$defs` below the top, `$id`, ...)


def _names(value: Any) -> bool:
    """A list of distinct strings (`required`, a `dependentRequired` entry)."""
    return type(value) is list and _texts(value) and len(set(value)) == len(value)


def _value(value: Any, room: int) -> int:
    """The nesting depth of a plain JSON value (as `const`, `default`, `enum` and `examples`
    hold), or _FAIL for anything else (a date, a tuple, a number past 64 bits, NaN)."""
    kind = type(value)
    if kind is str:
        return 0 if _text(value) else _FAIL
    if kind is bool or value is None:
        return 0
    if kind is int:
        return 0 if -_LIMIT < value < _LIMIT else _FAIL
    if kind is float:
        return 0 if math.isfinite(value) else _FAIL
    if room <= 0:
        return _FAIL
    deepest = 0
    if kind is list:
        items = value
    elif kind is dict:
        if not _texts(value):
            return _FAIL
        items = value.values()
    else:
        return _FAIL
    for item in items:
        depth = _value(item, room - 1)
        if depth == _FAIL:
            return _FAIL
        deepest = max(deepest, depth)
    return deepest + 1


def _text(value: Any) -> bool:
    """A string the validator can take: UTF-8 (no lone surrogates)."""
    return type(value) is str and (value.isascii() or _utf8(value))


def _texts(values: Any) -> bool:
    """Each of these (a list's items, a mapping's keys) is a string the validator can take."""
    try:
        joined = "".join(values)  # refuses anything but strings; surrogates stay lone
    except TypeError:
        return False
    return joined.isascii() or _utf8(joined)


def _utf8(value: str) -> bool:
    try:
        value.encode()
    except UnicodeEncodeError:
        return False
    return True
