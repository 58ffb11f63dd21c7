"""Keys a JSON document gives twice in one object.

JSON parsers (orjson, the standard library's) keep the later value of a key given twice and
drop the earlier without a word, as YAML's do (`yaml_keys`). `json_duplicates` looks in two
steps: a pass of the standard library's parser that builds nothing and stops at the first key
given twice, and only then, for a document that has one, a scan of its text that says where
each is (the mapping as a JSON pointer, the line and column of the value read and of the value
dropped). The first pass takes about as long as orjson's parse of the same bytes, so it is made
on documents of up to MAX_CHECKED_BYTES only: a key given twice is a hand edit's mistake, and
larger JSON documents are written by serializers, which cannot write one (Kubernetes' 4 MB
would pay 15 ms more on a conversion of 140).

What it trusts: nothing of the document. The scan keeps no recursion (any depth is a list),
keys and the keys on the way are cut and only so many recorded (`duplicate_keys`).
"""

from __future__ import annotations

import bisect
import json
import re
from typing import Any

from toolbridge.openapi.duplicate_keys import DuplicateKey, Place, record

MAX_CHECKED_BYTES = 1024 * 1024
"""JSON documents larger than this are not looked through for keys given twice (see above)."""

_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"|[{}\[\]:,]|[^\s{}\[\]:,"]+', re.DOTALL)
"""A string, a punctuation mark, or any other run (a number, true, false, null)."""


class _Twice(Exception):
    """Raised by the first pass at the first key given twice."""


def _check(pairs: list[tuple[str, Any]]) -> None:
    count = len(pairs)
    if count > 1 and len(dict(pairs)) != count:  # (a dict of them: built in C, no loop here)
        raise _Twice


def json_duplicates(raw: bytes) -> tuple[DuplicateKey, ...]:
    """The keys a JSON document (already parsed once, so known to be JSON) gives twice in one
    object, in the order of the text; () for none, or for a document past MAX_CHECKED_BYTES."""
    if len(raw) > MAX_CHECKED_BYTES:
        return ()
    try:
        json.loads(raw, object_pairs_hook=_check)
    except _Twice:
        pass
    except (ValueError, RecursionError):
        pass  # deeper than this parser goes, or text it reads otherwise: the scan decides
    else:
        return ()
    return _locate(raw.decode("utf-8", errors="replace"))


class _Open:
    """An object or array being read: its name in its parent; for an object, where each key
    was last given and the key whose value is next; for an array, its items so far."""

    __slots__ = ("items", "key", "keys", "name")

    def __init__(self, name: str, is_object: bool) -> None:
        self.name = name
        self.keys: dict[str, int] | None = {} if is_object else None
        self.key: str | None = None
        self.items = 0


def _locate(text: str) -> tuple[DuplicateKey, ...]:
    lines = [m.start() for m in re.finditer("\n", text)]

    def place(offset: int) -> Place:
        line = bisect.bisect_left(lines, offset)
        return Place(line + 1, offset - (lines[line - 1] if line else -1))

    found: list[DuplicateKey] = []
    open_: list[_Open] = []
    for match in _TOKEN.finditer(text):
        token = match.group()
        inner = open_[-1] if open_ else None
        if token in "{[":
            name = ""
            if inner is not None:
                name = inner.key or "" if inner.keys is not None else str(inner.items)
            open_.append(_Open(name, token == "{"))
        elif token in "}]":
            if open_:
                open_.pop()
        elif token == ",":
            if inner is not None:
                inner.key, inner.items = None, inner.items + 1
        elif token == ":":
            continue
        elif inner is not None and inner.keys is not None and inner.key is None:
            key = _key(token)
            inner.key = key
            before = inner.keys.get(key)
            inner.keys[key] = match.start()
            if before is not None:
                names = [o.name for o in open_[1:]]
                record(found, names, key, place(match.start()), place(before))
    return tuple(found)


def _key(token: str) -> str:
    if "\\" not in token:
        return token[1:-1]
    try:
        key = json.loads(token)
    except ValueError:
        return token[1:-1]
    return key if isinstance(key, str) else token
