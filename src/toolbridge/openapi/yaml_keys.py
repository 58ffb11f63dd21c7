"""Keys a YAML document gives twice in one mapping, read off PyYAML's event stream.

A key given twice is no error to PyYAML: it keeps one value and drops the other without a word,
and a second `get:` under one path loses an operation. `DuplicateKeys` is fed the events of
the pass that checks a document's limits (`yaml_limits`), so finding them costs no parse of
its own, and says for each which value the tools have and which was dropped.

Keys are compared as the tools' JSON will have them: a plain scalar resolved as the loader
resolves it (YAML 1.2 core: `200`, `0200` and `0xC8` are 200, `True` is true, `~` is null) and
written as `str` writes its value, a quoted or tagged one as its text; an alias as a key is
the key it names. Which value is read follows the loader: of one kind (two numbers `200`), the
later; of two kinds (`200:` and `'200':`, two keys to PyYAML that become one in JSON), the
value of the kind that appeared last for the first time, and of that kind, its later one.

What it trusts: nothing of the document. Keys and the keys on the way to their mapping are cut
at MAX_KEY_CHARS, and at most MAX_DUPLICATES are recorded (the rest counted).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import yaml

from toolbridge.schemas import pointer_token
from toolbridge.yaml_loader import YamlLoader

MAX_DUPLICATES = 100
"""Keys given twice that are recorded (the rest are counted in the last one's `more`)."""
MAX_KEY_CHARS = 200
"""How much of a key given twice, and of each key on the way to its mapping, is recorded (a
document chose them: a megabyte key is cut, and said to be, with `…`)."""


@dataclass(frozen=True, slots=True)
class DuplicateKey:
    """A key given twice in one mapping: where (a JSON pointer to the mapping, each key on the
    way cut at MAX_KEY_CHARS), the key, and the line and column (from 1) of the one whose value
    the tools have and of the one whose value was dropped."""

    pointer: str
    key: str
    kept_line: int
    kept_column: int
    dropped_line: int
    dropped_column: int
    more: int = 0
    """Further duplicates past MAX_DUPLICATES, not recorded (on the last one recorded)."""


def duplicates_from_json(value: Any) -> tuple[DuplicateKey, ...]:
    """Duplicates as `orjson` wrote them (a list of objects of DuplicateKey's fields), checked
    field by field; raises ValueError for anything else (a cache entry not written by us)."""
    if not isinstance(value, list) or len(value) > MAX_DUPLICATES:
        raise ValueError(f"expected a list of at most {MAX_DUPLICATES} keys")
    found = []
    for item in value:
        if not isinstance(item, dict) or set(item) != _FIELDS:
            raise ValueError(f"expected an object of {sorted(_FIELDS)}")
        pointer, key = item["pointer"], item["key"]
        numbers = tuple(item[name] for name in _NUMBERS)
        if not isinstance(pointer, str) or not isinstance(key, str):
            raise ValueError("expected text for pointer and key")
        if not all(type(n) is int and 0 <= n < 2**31 for n in numbers):
            raise ValueError("expected line numbers")
        found.append(DuplicateKey(pointer, key, *numbers))
    return tuple(found)


_NUMBERS = ("kept_line", "kept_column", "dropped_line", "dropped_column", "more")
_FIELDS = frozenset(("pointer", "key", *_NUMBERS))

Key = tuple[str, str]
"""A key as the tools' JSON has it, and its kind to the loader (str, int, float, bool, null)."""


class _Collection:
    """A mapping or sequence being read: its name in its parent, how many nodes it has begun,
    and for a mapping where each key came by kind (the offsets of its first and latest, and
    the latest's line and column) and the key being read."""

    __slots__ = ("children", "keys", "last_key", "name")

    def __init__(self, name: str, mapping: bool) -> None:
        self.name = name
        self.children = 0
        self.keys: dict[str, dict[str, _Place]] | None = {} if mapping else None
        self.last_key = ""


class DuplicateKeys:
    """Fed one document's events in order (`start`, `end`, `scalar`, `alias`); `found` then
    holds the keys it gives twice."""

    def __init__(self) -> None:
        self._open: list[_Collection] = [_Collection("", mapping=False)]
        self._anchored: dict[str, Key | None] = {}
        self.found: list[DuplicateKey] = []

    def start(self, event: yaml.CollectionStartEvent) -> None:
        name = self._child(None, event.start_mark)
        self._open.append(_Collection(name, isinstance(event, yaml.MappingStartEvent)))

    def end(self) -> None:
        self._open.pop()

    def scalar(self, event: yaml.ScalarEvent) -> None:
        key = key_of(event)
        if event.anchor is not None:
            self._anchored[event.anchor] = key
        self._child(key, event.start_mark)

    def alias(self, event: yaml.AliasEvent) -> None:
        self._child(self._anchored.get(event.anchor or ""), event.start_mark)

    def _child(self, key: Key | None, mark: Any) -> str:
        """Count a node beginning in the innermost open collection; a key given there before
        is recorded. Returns the node's name in it (its key, or its index)."""
        parent = self._open[-1]
        parent.children += 1
        keys = parent.keys
        if keys is None:
            return str(parent.children - 1) if len(self._open) > 1 else ""
        if parent.children % 2 == 0:  # a value: named by its key
            return parent.last_key
        parent.last_key = key[0] if key is not None else ""
        if key is None:  # a collection as a key (the loader refuses it), a merge key (merges)
            return ""
        text, kind = key
        here = _Place(mark)
        kinds = keys.get(text)
        if kinds is None:
            keys[text] = {kind: here}
            return ""
        before = _read(kinds)
        first = kinds.setdefault(kind, here)
        kinds[kind] = _Place(mark, first.first)
        after = _read(kinds)
        self._record(text, after, before if after.at == here.at else here)
        return ""

    def _record(self, key: str, kept: _Place, dropped: _Place) -> None:
        if len(self.found) < MAX_DUPLICATES:
            pointer = "".join("/" + pointer_token(_cut(c.name)) for c in self._open[2:])
            self.found.append(
                DuplicateKey(
                    pointer, _cut(key), kept.line, kept.column, dropped.line, dropped.column
                )
            )
        else:
            self.found[-1] = replace(self.found[-1], more=self.found[-1].more + 1)


class _Place:
    """Where a key came (its offset, line and column), and where its kind first came."""

    __slots__ = ("at", "column", "first", "line")

    def __init__(self, mark: Any, first: int | None = None) -> None:
        self.at = mark.index if mark else 0
        self.line = mark.line + 1 if mark else 0
        self.column = mark.column + 1 if mark else 0
        self.first = self.at if first is None else first


def key_of(event: yaml.ScalarEvent) -> Key | None:
    """A scalar as a key of the tools' JSON, and its kind: a plain one resolved as the loader
    resolves it and written as `str` writes its value; a quoted or tagged one, its text. None
    for a merge key (`<<`: each one merges)."""
    value = event.value
    if event.tag not in (None, "!") or not event.implicit[0]:
        return value, "str"
    for tag, pattern in YamlLoader.yaml_implicit_resolvers.get(value[:1], ()):
        if not pattern.match(value):
            continue
        kind = tag.rsplit(":", 1)[-1]
        if kind == "merge":
            return None
        if kind == "null":
            return "null", kind
        if kind == "bool":
            return value.lower(), kind
        if kind == "int":
            digits = value.replace("_", "")
            base = 8 if digits.startswith("0o") else 16 if digits.startswith("0x") else 10
            return str(int(digits[2:] if base != 10 else digits, base)), kind
        if kind == "float":
            lowered = value.lower()
            special = lowered.endswith((".inf", ".nan"))
            return str(float(lowered.replace(".", "") if special else value)), kind
    return value, "str"


def _read(kinds: dict[str, _Place]) -> _Place:
    """Where the value the tools have came: of the kind that appeared last for the first time
    (the loader's dict keeps each kind's key where it first came, and JSON's one key takes
    the last of them), its latest."""
    return max(kinds.values(), key=lambda place: place.first)


def _cut(text: str) -> str:
    return text if len(text) <= MAX_KEY_CHARS else text[:MAX_KEY_CHARS] + "…"
