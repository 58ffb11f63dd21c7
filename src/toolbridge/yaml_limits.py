"""The limits a YAML text must keep before it is composed: how deep it nests, and how much its
aliases expand. Documents (`openapi/yaml_limits`) and the config file (`config_file`) both keep
them.

Both are read off PyYAML's event stream, which is iterative and costs a fraction of a full
load, so a text that breaks a limit is refused before anything large is built.

An alias repeats the whole value its anchor names; a few hundred bytes of nested aliases (an
"alias bomb") would become millions of values, and every one of them would reach the tools' JSON
(or, in a config, every worker's memory at each reload). So the values and the bytes of text
that aliases add, counted with every repeat, may not exceed what the text writes out itself (or
a floor for small texts). No real document comes near: none in the corpus uses an alias at all.
"""

from __future__ import annotations

from typing import Any, NoReturn, Protocol

import yaml

from toolbridge.yaml_loader import YamlLoader

MAX_DEPTH = 256
"""Deeper nesting is refused: no real document comes close, and it keeps recursion safe."""
ALIAS_VALUES_FLOOR = 10_000
"""Values aliases may add to any text; a larger text may add as many as it writes."""
ALIAS_BYTES_FLOOR = 1024 * 1024
"""Bytes of text aliases may add to any text; a larger one may add as many as it has."""


class ShapeError(Exception):
    """A YAML text past a limit; the message says which, and at which line."""


class KeyWatcher(Protocol):
    """Also told of the events (`openapi.yaml_keys.DuplicateKeys`): the one pass serves both."""

    def start(self, event: Any) -> None: ...
    def end(self) -> None: ...
    def scalar(self, event: Any) -> None: ...
    def alias(self, event: Any) -> None: ...


class _Subtree:
    """The values and text bytes under one collection being read, and its anchor."""

    __slots__ = ("anchor", "bytes", "values")

    def __init__(self, anchor: str | None) -> None:
        self.anchor = anchor
        self.values = 1
        self.bytes = 0


def check_shape(raw: bytes | str, keys: KeyWatcher | None = None) -> None:
    """Refuse deep nesting and alias bombs before composing (raises ShapeError).

    The C composer recurses and can crash the process on deep nesting, and a bomb would build
    millions of values: both are caught here, from the events alone.
    """
    written_values = 0
    added_values = 0
    added_bytes = 0
    max_values = ALIAS_VALUES_FLOOR
    max_bytes = max(ALIAS_BYTES_FLOOR, len(raw))
    anchors: dict[str, tuple[int, int]] = {}
    open_: list[_Subtree] = [_Subtree(None)]
    try:
        for event in yaml.parse(raw, Loader=YamlLoader):
            if isinstance(event, yaml.MappingStartEvent | yaml.SequenceStartEvent):
                if len(open_) > MAX_DEPTH:
                    _too_deep(event.start_mark)
                if keys is not None:
                    keys.start(event)
                open_.append(_Subtree(event.anchor))
                written_values += 1
            elif isinstance(event, yaml.MappingEndEvent | yaml.SequenceEndEvent):
                if keys is not None:
                    keys.end()
                done = open_.pop()
                if done.anchor is not None:
                    anchors[done.anchor] = (done.values, done.bytes)
                open_[-1].values += done.values
                open_[-1].bytes += done.bytes
            elif isinstance(event, yaml.ScalarEvent):
                if keys is not None:
                    keys.scalar(event)
                size = len(event.value.encode("utf-8", "replace"))
                if event.anchor is not None:
                    anchors[event.anchor] = (1, size)
                open_[-1].values += 1
                open_[-1].bytes += size
                written_values += 1
            elif isinstance(event, yaml.AliasEvent):
                if keys is not None:
                    keys.alias(event)
                values, size = anchors.get(event.anchor or "", (1, 0))
                open_[-1].values += values
                open_[-1].bytes += size
                added_values += values
                added_bytes += size
                max_values = max(ALIAS_VALUES_FLOOR, written_values)
                if added_values > max_values or added_bytes > max_bytes:
                    _bomb(event.start_mark, added_values, added_bytes, max_values, max_bytes)
    except yaml.MarkedYAMLError as exc:
        # PyYAML 6.0.4 and later refuse deep flow nesting in the scanner, with their own
        # wording; the user sees ours, whichever PyYAML is installed.
        if "nesting depth" in str(exc.problem):
            _too_deep(exc.problem_mark)
        raise


def _bomb(mark: Any, values: int, size: int, max_values: int, max_bytes: int) -> NoReturn:
    where = f" (line {mark.line + 1})" if mark else ""
    raise ShapeError(
        f"YAML aliases expand too far{where}: they add {values} values and {size} bytes of "
        f"text by there; at most {max_values} values and {max_bytes} bytes may be added (what "
        f"the document writes out itself, at least {ALIAS_VALUES_FLOOR} values and "
        f"{ALIAS_BYTES_FLOOR} bytes): an alias bomb?"
    )


def _too_deep(mark: Any) -> NoReturn:
    """Raise our error for too deep nesting; `mark` is PyYAML's (Python or C) position or None."""
    where = f" (line {mark.line + 1})" if mark else ""
    raise ShapeError(f"nested deeper than {MAX_DEPTH} levels{where}")
