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

What it trusts: nothing of the document. Keys and the keys on the way to their mapping are cut,
and only so many recorded (`duplicate_keys`).
"""

from __future__ import annotations

from typing import Any

import yaml

from toolbridge.openapi.duplicate_keys import DuplicateKey, Place, record
from toolbridge.yaml_loader import YamlLoader

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
        names = [c.name for c in self._open[2:]]
        record(
            self.found,
            names,
            key,
            Place(kept.line, kept.column),
            Place(dropped.line, dropped.column),
        )


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
