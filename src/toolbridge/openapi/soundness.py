"""The last check on a converted tool's schemas: they must compile, or calling the tool would fail.

Translation (`keywords`) keeps what a document says where it can; a document can still say
things no validator accepts (`items: []` read as an empty `prefixItems`, a `pattern` that is no
regular expression, a type list holding a mapping). Each schema is compiled here once, with the
validator the gateway checks arguments with (`jsonschema_rs`, JSON Schema 2020-12); a keyword
it refuses is dropped from its schema object, with an `invalid-schema` note naming where, and
the schema is compiled again, at most `MAX_REPAIRS` times. A schema that still does not compile
(or fails where no keyword can be named) becomes unconstrained, with a note: the tool stays.
So does one nested deeper than `compilable.MAX_DEPTH` objects and arrays: it would compile, but
no tool list holding it could be written (JSON writers stop at about 254 levels).

A conversion checks its tools through one `Soundness`: a schema of the plain grammar that
`compilable` reads (nearly all of them) is not compiled at all, and an output schema several
tools share is checked once. The answers are the same as compiling each schema.
"""

from __future__ import annotations

import copy
from typing import Any

import jsonschema_rs

from toolbridge.openapi.compilable import MAX_DEPTH, Compilable
from toolbridge.tools import JsonSchema, Note

MAX_REPAIRS = 20
"""Keywords dropped from one schema before it is given up as unconstrained."""

_OPEN_INPUT: JsonSchema = {"type": "object"}


def sound_schema(
    schema: JsonSchema, what: str, *, fallback: JsonSchema | None = None
) -> tuple[JsonSchema, list[Note]]:
    """`schema` as it compiles, and a note for each keyword dropped on the way.

    `what` names the schema in notes ("input schema", "output schema"). `fallback` is what a
    schema that cannot be repaired becomes (for input schemas: any object; else anything).
    """
    if _deeper_than(schema, MAX_DEPTH):
        return _unusable(what, f"nested deeper than {MAX_DEPTH} levels", fallback, [])
    notes: list[Note] = []
    current = schema
    for _ in range(MAX_REPAIRS):
        problem = _compile_problem(current)
        if problem is None:
            return current, notes
        path, message = problem
        if current is schema:
            current = copy.deepcopy(schema)  # the document's own objects stay as they were
        if not path or not _drop(current, path):
            break
        where = "/".join(str(p) for p in path)
        notes.append(
            Note(
                kind="invalid-schema",
                message=f"{what}: {where}: {message}; that keyword is left out",
            )
        )
    left = _compile_problem(current)
    why = left[1] if left is not None else f"more than {MAX_REPAIRS} keywords are wrong"
    return _unusable(what, why, fallback, notes)


def _unusable(
    what: str, why: str, fallback: JsonSchema | None, notes: list[Note]
) -> tuple[JsonSchema, list[Note]]:
    """What a schema that cannot be used becomes (`fallback`, else anything), said last."""
    notes.append(
        Note(kind="invalid-schema", message=f"{what} cannot be used ({why}); it accepts any value")
    )
    return dict(fallback) if fallback is not None else {}, notes


def sound_input_schema(schema: JsonSchema) -> tuple[JsonSchema, list[Note]]:
    return sound_schema(schema, "input schema", fallback=_OPEN_INPUT)


class Soundness:
    """The soundness checks of one conversion (`sound_input_schema`, `sound_schema`), with
    what its schemas share read once."""

    def __init__(self) -> None:
        self._grammar = Compilable()
        self._outputs: dict[int, tuple[JsonSchema, JsonSchema, tuple[Note, ...]]] = {}
        """By identity of an output schema: it, what it became, and the notes on that."""

    def input_schema(self, schema: JsonSchema) -> tuple[JsonSchema, list[Note]]:
        if self._grammar.surely(schema):
            return schema, []
        return sound_input_schema(schema)

    def output_schema(self, schema: JsonSchema) -> tuple[JsonSchema, list[Note]]:
        """`sound_schema(schema, "output schema")`, once per output schema object (operations
        answering alike share one: treat the answer as read-only)."""
        known = self._outputs.get(id(schema))
        if known is not None and known[0] is schema:
            return known[1], list(known[2])
        notes: list[Note] = []
        if self._grammar.surely(schema):
            sound = schema
        else:
            sound, notes = sound_schema(schema, "output schema")
        self._outputs[id(schema)] = (schema, sound, tuple(notes))
        return sound, notes


def _deeper_than(schema: Any, limit: int) -> bool:
    """Whether objects and arrays nest more than `limit` levels in `schema` (walked without
    recursion: it may be far deeper than Python's stack)."""
    stack: list[tuple[Any, int]] = [(schema, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict | list):
            if depth > limit:
                return True
            stack.extend(
                (child, depth + 1) for child in (node.values() if isinstance(node, dict) else node)
            )
    return False


def _compile_problem(schema: JsonSchema) -> tuple[list[str | int], str] | None:
    """Why the schema does not compile (where, and the first line of the message), or None."""
    try:
        jsonschema_rs.validator_for(schema)
    except jsonschema_rs.ValidationError as exc:
        return list(exc.instance_path), exc.message.splitlines()[0][:200]
    except (ValueError, TypeError, RecursionError) as exc:
        return [], str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
    return None


def _drop(schema: Any, path: list[str | int]) -> bool:
    """Remove the value at `path` (a keyword of a schema object, or an item of a list)."""
    node = schema
    for part in path[:-1]:
        try:
            node = node[part]
        except (KeyError, IndexError, TypeError):
            return False
    last = path[-1]
    if isinstance(node, dict) and last in node:
        del node[last]
        return True
    if isinstance(node, list) and isinstance(last, int) and 0 <= last < len(node):
        node.pop(last)
        return True
    return False
