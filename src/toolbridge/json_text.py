"""JSON text of any value JSON can hold, however deep: what orjson (254 levels) and the
standard library (Python's recursion limit) refuse to write; and JSON read and written with
integers of any size, which orjson reads as floats (99999999999999999999 becomes 1e+20) and
refuses to write. Pure: a value in, text out, and back.
"""

from __future__ import annotations

import json
from typing import Any

import orjson


def json_text(value: Any) -> str:
    """`value` as compact JSON text, however deep it is (written without recursion) and with
    integers of any size. TypeError for what is no JSON (a set, an object), ValueError for a
    value that contains itself ("Circular reference") or a float that is no number."""
    out: list[str] = []
    stack: list[tuple[int, Any]] = [(_VALUE, value)]
    open_: set[int] = set()
    while stack:
        kind, item = stack.pop()
        if kind == _TEXT:
            out.append(item)
        elif kind == _CLOSED:
            open_.discard(item)
        elif isinstance(item, dict | list | tuple):
            if id(item) in open_:
                raise ValueError("Circular reference detected")
            open_.add(id(item))
            todo: list[tuple[int, Any]] = [(_CLOSED, id(item))]
            is_dict = isinstance(item, dict)
            todo.append((_TEXT, "}" if is_dict else "]"))
            pairs = list(item.items() if isinstance(item, dict) else enumerate(item))
            for index in range(len(pairs) - 1, -1, -1):
                key, child = pairs[index]
                todo.append((_VALUE, child))
                if is_dict:
                    todo.append((_TEXT, _scalar(_key(key)) + ":"))
                if index:
                    todo.append((_TEXT, ","))
            todo.append((_TEXT, "{" if is_dict else "["))
            stack.extend(todo)
        else:
            out.append(_scalar(item))
    return "".join(out)


_VALUE, _TEXT, _CLOSED = 0, 1, 2


def _scalar(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, allow_nan=False)


def _key(key: Any) -> str:
    """A key as JSON writes it: text as it is; numbers, booleans and None as their JSON."""
    if isinstance(key, str):
        return key
    if key is None or isinstance(key, int | float | bool):
        return _scalar(key)
    raise TypeError(f"keys must be str, int, float, bool or None, not {type(key).__name__}")


def loads(data: bytes | str) -> Any:
    """JSON text as a value, as `orjson.loads` reads it (and refuses what it refuses, with its
    `JSONDecodeError`), but for integers below -2**63 or from 2**64 on: those are the integers
    they are, not floats (a write of 18446744073709551616 must not store 1.8446744073709552e+19).
    """
    value = orjson.loads(data)
    if beyond_64_bits(data):
        return json.loads(data)  # orjson has checked it is JSON; this reads integers exactly
    return value


def dumps(value: Any) -> bytes:
    """`orjson.dumps(value)`, or, for a value holding integers past 64 bits (which orjson
    refuses to write), its JSON text with every digit. TypeError for what is no JSON."""
    try:
        return orjson.dumps(value)
    except orjson.JSONEncodeError as exc:
        if "Integer exceeds 64-bit range" not in str(exc):
            raise
        return json_text(value).encode("utf-8")


def beyond_64_bits(data: bytes | str) -> bool:
    """Whether the JSON `data` holds an integer below -2**63 or from 2**64 on, which orjson
    reads as a float. Only text with a run of 19 digits is read again to tell: the look costs
    about 1 ms a MB."""
    raw = data.encode("utf-8", "surrogatepass") if isinstance(data, str) else data
    if raw.translate(_DIGITS).find(b"0" * 19) < 0:
        return False
    found = False

    def whole(text: str) -> int:
        nonlocal found
        value = int(text)
        found = found or not -(2**63) <= value < 2**64
        return value

    try:
        json.loads(raw, parse_int=whole)
    except ValueError:  # past Python's 4,300 digits: orjson's float it is
        return False
    return found


_DIGITS = bytes(48 if 48 <= c <= 57 else 32 for c in range(256))
"""Every digit to `0`, every other byte to a space: nineteen `0`s in a row are 19 digits."""
