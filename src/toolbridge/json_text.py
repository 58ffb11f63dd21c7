"""JSON text of any value JSON can hold, however deep: what orjson (254 levels) and the
standard library (Python's recursion limit) refuse to write. Pure: a value in, text out.
"""

from __future__ import annotations

import json
from typing import Any


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
