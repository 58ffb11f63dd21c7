"""A conversion as plain JSON values and back, every equal value stored (and rebuilt) once.

A large document's tools repeat themselves: the same parameter schema, the same `$defs`
entry, the same description, the same binding, thousands of times. `pack` walks a `Conversion`
and gives each distinct value one slot: scalars in `atoms`, containers and records in `nodes`
(children before their parents), dict key tuples in `shapes`. `unpack` rebuilds it in one pass,
so equal parts are one object again: what a compiled catalog saves in memory and start time.

What `unpack` trusts: nothing but the format. It builds plain JSON values, tuples, and the
frozen dataclasses named in `RECORDS` (by position in that table, with their declared fields),
nothing else: no class is looked up by name, no code runs. Input that does not fit the format
raises `PackError` (and the caller converts the document again); input that fits it but was
altered builds other plain values, which is why the compiled cache checks a digest of every
entry before unpacking it.

The format (`FORMAT`): the length of a JSON head, a newline, the head `{"format", "atoms",
"shapes", "root"}`, then the nodes as native 32-bit integers. A reference is an index into the
atoms followed by the nodes. A node is `code, count, child * count`: code >= 0 is a dict with
the keys of `shapes[code]` (atom indices), -1 a list, -2 a tuple, and -3 - i a record of
`RECORDS[i]` with one child per field, in the order the dataclass declares them. The bytes are
for this machine (native byte order); the cache that stores them is too.
"""

from __future__ import annotations

import math
import sys
from array import array
from collections.abc import Callable, Iterator
from dataclasses import fields
from itertools import islice
from typing import Any

import orjson

from toolbridge.bulk import collector_paused
from toolbridge.openapi.convert import Conversion
from toolbridge.tools import (
    Annotations,
    BodyPlan,
    FieldEncoding,
    HttpOperation,
    Note,
    ParamBinding,
    SecurityScheme,
    Tool,
)

FORMAT = 1
"""Bumped whenever the layout or `RECORDS` changes."""
RECORDS: tuple[type, ...] = (
    Conversion,
    Tool,
    HttpOperation,
    ParamBinding,
    BodyPlan,
    FieldEncoding,
    Annotations,
    Note,
    SecurityScheme,
)
"""The only classes `unpack` builds, by their index here."""


def _fields(cls: type) -> tuple[str, ...]:
    """The fields of one of `RECORDS`, checked to be what `_builder` may fill directly."""
    if "__slots__" not in cls.__dict__ or hasattr(cls, "__post_init__"):
        raise TypeError(f"{cls.__name__} must be a slots dataclass without __post_init__")
    found = fields(cls)
    if not all(f.init for f in found):
        raise TypeError(f"{cls.__name__}: every field must be an __init__ argument")
    return tuple(f.name for f in found)


def _builder(cls: type) -> Callable[[Iterator[Any]], Any]:
    """Builds `cls` from its field values in declared order, filling its slots directly.

    These are frozen dataclasses whose `__init__` only assigns each field (`_FIELDS` checks
    that: slots, every field in `__init__`, no `__post_init__`); setting the slots directly
    costs half as much, and an unpacked catalog builds tens of thousands of them.
    """
    slots = tuple(getattr(cls, name) for name in _FIELDS[cls])
    new = object.__new__

    def build(values: Iterator[Any]) -> Any:
        record: Any = new(cls)
        for slot, value in zip(slots, values, strict=True):  # ValueError: a field too many
            slot.__set__(record, value)
        return record

    return build


_FIELDS = {cls: _fields(cls) for cls in RECORDS}
_LIST, _TUPLE, _RECORD = -1, -2, -3
_BUILDERS = tuple(_builder(cls) for cls in RECORDS)


class PackError(Exception):
    """A value that cannot be packed, or packed data that cannot be unpacked; says which."""


def pack(conversion: Conversion) -> bytes:
    """The conversion as JSON bytes; raises PackError for a value JSON cannot hold exactly."""
    packer = _Packer()
    root = packer.ref(conversion)
    try:
        head = orjson.dumps(
            {
                "format": FORMAT,
                "atoms": packer.atoms,
                "shapes": packer.shapes,
                "root": packer.final(root),
            }
        )
    except TypeError as exc:  # a string with a lone surrogate, an integer past 64 bits
        raise PackError(f"not JSON: {exc}") from None
    return b"%d\n%s%s" % (len(head), head, packer.numbered().tobytes())


def unpack(data: bytes) -> Conversion:
    """The conversion `pack` made these bytes from, its equal parts shared."""
    try:
        view = memoryview(data)
        newline = data.index(b"\n", 0, 24)
        end = newline + 1 + int(view[:newline])
        head = orjson.loads(view[newline + 1 : end])
        if head["format"] != FORMAT:
            raise PackError(f"format {head['format']!r}, expected {FORMAT}")
        blob = view[end:]
        with collector_paused():
            conversion = _unpack(head["atoms"], head["shapes"], blob, head["root"])
    except PackError:
        raise
    except (orjson.JSONDecodeError, LookupError, TypeError, ValueError) as exc:
        raise PackError(f"malformed packed conversion: {type(exc).__name__}: {exc}") from None
    if not isinstance(conversion, Conversion):
        raise PackError(f"the root is a {type(conversion).__name__}, expected a Conversion")
    return conversion


class _Packer:
    """One slot per distinct value: equal content, equal slot (types kept apart: 1, 1.0, True)."""

    def __init__(self) -> None:
        self.atoms: list[Any] = []
        self.shapes: list[list[int]] = []
        self.nodes: list[tuple[int, ...]] = []
        self._atoms: dict[tuple[type, Any], int] = {}
        self._shapes: dict[tuple[str, ...], int] = {}
        self._nodes: dict[tuple[int, ...], int] = {}
        self._seen: dict[int, tuple[object, int]] = {}
        """By identity: a shared object is walked once (and kept alive while it is a key)."""

    def ref(self, value: Any) -> int:
        kind = type(value)
        if kind is str or kind is int or kind is bool or value is None:
            return self._atom((kind, value), value)
        if kind is float:
            if not math.isfinite(value):
                raise PackError(f"{value!r} is not a JSON number")
            return self._atom((kind, value.hex()), value)
        seen = self._seen.get(id(value))
        if seen is not None and seen[0] is value:
            return seen[1]
        if kind is dict:
            keys = tuple(value)
            if not all(type(k) is str for k in keys):
                raise PackError(f"a mapping with keys that are not strings: {keys[:3]!r}")
            node = (self._shape(keys), *map(self.ref, value.values()))
        elif kind is list:
            node = (_LIST, *map(self.ref, value))
        elif kind is tuple:
            node = (_TUPLE, *map(self.ref, value))
        elif kind in _FIELDS:
            code = _RECORD - RECORDS.index(kind)
            node = (code, *(self.ref(getattr(value, name)) for name in _FIELDS[kind]))
        else:
            raise PackError(f"cannot pack a {kind.__name__}")
        index = self._nodes.get(node)
        if index is None:
            # Numbered from -1 down while atoms are still being added; see `numbered`.
            index = self._nodes[node] = -1 - len(self.nodes)
            self.nodes.append(node)
        self._seen[id(value)] = (value, index)
        return index

    def final(self, ref: int) -> int:
        """A reference in the output's numbering: atoms first, then nodes."""
        return ref if ref >= 0 else len(self.atoms) - 1 - ref

    def numbered(self) -> array[int]:
        """The nodes, each as code, count, children, in the output's numbering."""
        first = len(self.atoms) - 1
        out = array("i")
        for node in self.nodes:
            out.append(node[0])
            out.append(len(node) - 1)
            out.extend(c if c >= 0 else first - c for c in node[1:])
        return out

    def _atom(self, key: tuple[type, Any], value: Any) -> int:
        index = self._atoms.get(key)
        if index is None:
            index = self._atoms[key] = len(self.atoms)
            self.atoms.append(value)
        return index

    def _shape(self, keys: tuple[str, ...]) -> int:
        index = self._shapes.get(keys)
        if index is None:
            index = self._shapes[keys] = len(self.shapes)
            self.shapes.append([self._atom((str, k), k) for k in keys])
        return index


def _unpack(atoms: list[Any], shapes: list[list[int]], blob: memoryview, root: int) -> Any:
    if any(isinstance(atom, dict | list) for atom in atoms):
        raise PackError("an atom that is not a scalar")
    # Short texts (keys, types, formats, names) are interned: one object across all sources.
    values: list[Any] = [sys.intern(a) if type(a) is str and len(a) <= 64 else a for a in atoms]
    keys = [tuple(_key(values[i]) for i in shape) for shape in shapes]
    sizes = [len(shape) for shape in keys]
    numbers = array("i")
    numbers.frombytes(blob)
    get, push = values.__getitem__, values.append
    stream = iter(numbers.tolist())
    for code in stream:
        count = next(stream, -1)  # islice refuses a negative count: ValueError
        children = map(get, islice(stream, count))
        if code >= 0:
            if sizes[code] != count:
                raise PackError(f"a mapping of {count} values for {sizes[code]} keys")
            push(dict(zip(keys[code], children, strict=False)))  # counted just above
        elif code == _LIST:
            push(list(children))
        elif code == _TUPLE:
            push(tuple(children))
        else:
            push(_BUILDERS[_RECORD - code](children))
    return values[root]


def _key(value: Any) -> str:
    if type(value) is not str:
        raise PackError(f"a mapping key that is not a string: {value!r}"[:200])
    return value
