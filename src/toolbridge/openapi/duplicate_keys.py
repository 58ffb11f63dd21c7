"""Keys a document gives twice in one mapping: the value that says where, for YAML's
(`yaml_keys`) and JSON's (`json_keys`).

No parser used here says a word about a key given twice: each keeps one value and drops the
other, and a second `get` under one path loses an operation. A `DuplicateKey` says which key,
in which mapping, which value the tools have and which was dropped. What it trusts: nothing of
the document; keys and the keys on the way to their mapping are cut at MAX_KEY_CHARS, and at
most MAX_DUPLICATES are recorded (the rest counted).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Any, NamedTuple

from toolbridge.schemas import pointer_token

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


class Place(NamedTuple):
    """A line and a column, from 1."""

    line: int
    column: int


def record(
    found: list[DuplicateKey], names: Iterable[str], key: str, kept: Place, dropped: Place
) -> None:
    """Add a key given twice (in the mapping `names` leads to from the root) to `found`, or,
    past MAX_DUPLICATES, count it on the last one recorded."""
    if len(found) < MAX_DUPLICATES:
        pointer = "".join("/" + pointer_token(cut(name)) for name in names)
        found.append(DuplicateKey(pointer, cut(key), *kept, *dropped))
    else:
        found[-1] = replace(found[-1], more=found[-1].more + 1)


def cut(text: str) -> str:
    """A key as recorded: at most MAX_KEY_CHARS, and `…` where it was cut."""
    return text if len(text) <= MAX_KEY_CHARS else text[:MAX_KEY_CHARS] + "…"


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
