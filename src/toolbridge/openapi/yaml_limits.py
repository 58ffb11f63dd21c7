"""The limits a YAML document must keep before it is composed: how deep it nests and how much
its aliases expand; and the keys it gives twice in one mapping.

All are read off PyYAML's event stream, which is iterative and costs a fraction of a full
load, so a document that breaks a limit is refused before anything large is built.

An alias repeats the whole value its anchor names; a few hundred bytes of nested aliases (an
"alias bomb") would become millions of values, and every one of them would reach the tools' JSON.
So the values and the bytes of text that aliases add, counted with every repeat, may not
exceed what the document writes out itself (or a floor for small documents). No real
document comes near: none in the corpus uses an alias at all.

A key given twice is no error to PyYAML, which keeps the last value and drops the first without
a word (a second `get:` under one path loses an operation): the duplicates are returned, for
the conversion to say what was dropped.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NoReturn

import yaml

from toolbridge.errors import DocumentError
from toolbridge.yaml_loader import YamlLoader

MAX_DEPTH = 256
"""Deeper nesting is refused: no real document comes close, and it keeps recursion safe."""
ALIAS_VALUES_FLOOR = 10_000
"""Values aliases may add to any document; a larger document may add as many as it writes."""
ALIAS_BYTES_FLOOR = 1024 * 1024
"""Bytes of text aliases may add to any document; a larger one may add as many as it has."""


MAX_DUPLICATES = 100
"""Keys given twice that are recorded (the rest are counted in the last one's `more`)."""


@dataclass(frozen=True, slots=True)
class DuplicateKey:
    """A key given twice in one mapping: where (a JSON pointer to the mapping), the key, and
    the lines of its first and its later appearance (the value kept is the later one's)."""

    pointer: str
    key: str
    first_line: int
    line: int
    more: int = 0
    """Further duplicates past MAX_DUPLICATES, not recorded (on the last one recorded)."""


class _Subtree:
    """The values and text bytes under one collection being read, and its anchor; for a
    mapping, the keys seen (by their text) and the key being read; its name in its parent."""

    __slots__ = ("anchor", "bytes", "children", "keys", "last_key", "name", "values")

    def __init__(self, anchor: str | None, name: str, mapping: bool) -> None:
        self.anchor = anchor
        self.values = 1
        self.bytes = 0
        self.name = name
        self.children = 0
        self.keys: dict[str, int] | None = {} if mapping else None
        self.last_key = ""


def check_yaml_shape(raw: bytes, display: str) -> tuple[DuplicateKey, ...]:
    """Refuse deep nesting and alias bombs before composing (raises DocumentError), and
    return the keys given twice in one mapping.

    The C composer recurses and can crash the process on deep nesting, and a bomb would build
    millions of values: both are caught here, from the events alone. Keys are compared by
    their text (`200` and `'200'` are one key to the tools, as JSON has it).
    """
    written_values = 0
    added_values = 0
    added_bytes = 0
    max_values = ALIAS_VALUES_FLOOR
    max_bytes = max(ALIAS_BYTES_FLOOR, len(raw))
    anchors: dict[str, tuple[int, int]] = {}
    open_: list[_Subtree] = [_Subtree(None, "", False)]
    duplicates: list[DuplicateKey] = []
    try:
        for event in yaml.parse(raw, Loader=YamlLoader):
            if isinstance(event, yaml.MappingStartEvent | yaml.SequenceStartEvent):
                if len(open_) > MAX_DEPTH:
                    _too_deep(display, event.start_mark)
                name = _child(open_, None, event.start_mark, duplicates)
                mapping = isinstance(event, yaml.MappingStartEvent)
                open_.append(_Subtree(event.anchor, name, mapping))
                written_values += 1
            elif isinstance(event, yaml.MappingEndEvent | yaml.SequenceEndEvent):
                done = open_.pop()
                if done.anchor is not None:
                    anchors[done.anchor] = (done.values, done.bytes)
                open_[-1].values += done.values
                open_[-1].bytes += done.bytes
            elif isinstance(event, yaml.ScalarEvent):
                _child(open_, event.value, event.start_mark, duplicates)
                size = len(event.value.encode("utf-8", "replace"))
                if event.anchor is not None:
                    anchors[event.anchor] = (1, size)
                open_[-1].values += 1
                open_[-1].bytes += size
                written_values += 1
            elif isinstance(event, yaml.AliasEvent):
                _child(open_, None, event.start_mark, duplicates)
                values, size = anchors.get(event.anchor or "", (1, 0))
                open_[-1].values += values
                open_[-1].bytes += size
                added_values += values
                added_bytes += size
                max_values = max(ALIAS_VALUES_FLOOR, written_values)
                if added_values > max_values or added_bytes > max_bytes:
                    _bomb(
                        display, event.start_mark, added_values, added_bytes, max_values, max_bytes
                    )
    except yaml.MarkedYAMLError as exc:
        # PyYAML 6.0.4 and later refuse deep flow nesting in the scanner, with their own
        # wording; the user sees ours, whichever PyYAML is installed.
        if "nesting depth" in str(exc.problem):
            _too_deep(display, exc.problem_mark)
        raise
    return tuple(duplicates)


def _child(open_: list[_Subtree], text: str | None, mark: Any, found: list[DuplicateKey]) -> str:
    """Count a node starting in the innermost open collection; a scalar key (`text`) given
    there before is recorded. Returns the node's name in it (its key, or its index)."""
    parent = open_[-1]
    parent.children += 1
    keys = parent.keys
    if keys is None:
        return str(parent.children - 1) if len(open_) > 1 else ""
    if parent.children % 2 == 0:  # a value: named by its key
        return parent.last_key
    parent.last_key = text if text is not None else ""
    if text is None or text == "<<":  # an alias or a collection as a key; a merge (each is)
        return ""
    line = mark.line + 1 if mark else 0
    if text in keys:
        _record(open_, text, keys[text], line, found)
    else:
        keys[text] = line
    return ""


def _record(
    open_: list[_Subtree], key: str, first: int, line: int, found: list[DuplicateKey]
) -> None:
    if len(found) < MAX_DUPLICATES:
        pointer = "".join("/" + _escaped(s.name) for s in open_[2:])  # below the top level
        found.append(DuplicateKey(pointer, key, first, line))
    else:
        last = found[-1]
        found[-1] = DuplicateKey(last.pointer, last.key, last.first_line, last.line, last.more + 1)


def _escaped(segment: str) -> str:
    return segment.replace("~", "~0").replace("/", "~1")


def _bomb(
    display: str, mark: Any, values: int, size: int, max_values: int, max_bytes: int
) -> NoReturn:
    where = f" (line {mark.line + 1})" if mark else ""
    raise DocumentError(
        display,
        f"YAML aliases expand too far{where}: they add {values} values and {size} bytes of "
        f"text by there; at most {max_values} values and {max_bytes} bytes may be added (what "
        f"the document writes out itself, at least {ALIAS_VALUES_FLOOR} values and "
        f"{ALIAS_BYTES_FLOOR} bytes): an alias bomb?",
    )


def _too_deep(display: str, mark: Any) -> NoReturn:
    """Raise our error for too deep nesting; `mark` is PyYAML's (Python or C) position or None."""
    where = f" (line {mark.line + 1})" if mark else ""
    raise DocumentError(display, f"nested deeper than {MAX_DEPTH} levels{where}")
