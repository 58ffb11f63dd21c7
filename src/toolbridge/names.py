"""Tool and argument names: safe for every client format, unique, deterministic, explained.

A name that has to change (illegal characters, too long, a duplicate) changes the same way on
every run, and the change is returned as a `Note` for the conversion report: never silently.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Iterable
from functools import lru_cache

from toolbridge.tools import Note

MAX_NAME = 64
_ILLEGAL = re.compile(r"[^A-Za-z0-9_-]+")
_ILLEGAL_PROPERTY = re.compile(r"[^A-Za-z0-9_.-]+")
_VALID_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]{0,63}$")
_VALID_PROPERTY = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


def is_valid_name(name: str) -> bool:
    return bool(_VALID_NAME.match(name))


@lru_cache(maxsize=4096)
def is_valid_property(name: str) -> bool:
    return bool(_VALID_PROPERTY.match(name))


def _ascii(text: str) -> str:
    if text.isascii():
        return text
    return unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:8]


def base_name(operation_id: str | None, method: str, path: str) -> str:
    """What a tool's name is derived from: its operationId, else `METHOD /path`."""
    if operation_id and operation_id.strip():
        return operation_id.strip()
    return f"{method.upper()} {path}"


def safe_name(original: str, *, method_path: bool = False, prefix: str = "") -> str:
    """A name matching ^[A-Za-z_][A-Za-z0-9_-]{0,63}$ derived from `original`.

    `GET /pets/{petId}` becomes `get_pets_petId`; `repos/get` becomes `repos_get`. A name that
    is still too long keeps its head and gains a short hash of the whole original, so two long
    names that share a head stay distinct.
    """
    text = _ascii(original)
    if method_path:
        method, _, path = text.partition(" ")
        segments = [s for s in path.replace("{", "").replace("}", "").split("/") if s]
        text = "_".join([method.lower(), *segments])
    name = _ILLEGAL.sub("_", text).strip("_-")
    if not name:
        name = f"op_{_digest(original)}"
    if prefix:
        name = f"{prefix}_{name}"
    if not name[0].isalpha() and name[0] != "_":
        name = f"_{name}"
    if len(name) > MAX_NAME:
        name = f"{name[: MAX_NAME - 9].rstrip('_-')}_{_digest(original)}"
    return name


def assign(candidates: Iterable[tuple[str, str, str]]) -> tuple[list[str], list[Note]]:
    """Make names unique in order. Each candidate is (name, original, where).

    Names are unique without regard to case (`search` and `SEARCH` would be one name to a
    person, and to some clients). The first holder of a name keeps it; later ones get `_2`,
    `_3`, ... (shortened if needed), always in the same document order, so the result is
    deterministic.
    """
    items = list(candidates)
    taken = {name.lower() for name, _, _ in items}
    seen: dict[str, str] = {}  # lower-cased -> as held
    names: list[str] = []
    notes: list[Note] = []
    for name, original, where in items:
        final = name
        held = seen.get(final.lower())
        if held is not None:
            n = 2
            while True:
                suffix = f"_{n}"
                final = name[: MAX_NAME - len(suffix)] + suffix
                if final.lower() not in seen and final.lower() not in taken:
                    break
                n += 1
            case = "" if held == name else f" ({held!r}; names ignore case)"
            notes.append(
                Note(
                    kind="name-deduplicated",
                    message=f"{name!r} is also the name of an earlier operation{case}; "
                    f"this one is {final!r}",
                    where=where,
                )
            )
        elif final != original:
            why = "too long" if len(original) > MAX_NAME else "not a valid tool name"
            notes.append(
                Note(
                    kind="name-changed",
                    message=f"{original!r} is {why}; the tool is named {final!r}",
                    where=where,
                )
            )
        seen[final.lower()] = final
        names.append(final)
    return names, notes


def argument_names(wanted: Iterable[tuple[str, str]]) -> tuple[list[str], list[Note]]:
    """Unique argument names for (name, location) pairs: valid property names, first wins."""
    out: list[str] = []
    notes: list[Note] = []
    seen: set[str] = set()
    for name, location in wanted:
        candidate = name
        if not is_valid_property(candidate):
            candidate = _ILLEGAL_PROPERTY.sub("_", _ascii(name)).strip("_")[:MAX_NAME] or "arg"
        if candidate in seen:
            candidate = f"{location}_{candidate}"[:MAX_NAME]
        n = 2
        base = candidate
        while candidate in seen:
            candidate = f"{base[: MAX_NAME - 3]}_{n}"
            n += 1
        if candidate != name:
            notes.append(
                Note(
                    kind="argument-renamed",
                    message=f"{location} parameter {name!r} is the argument {candidate!r}",
                )
            )
        seen.add(candidate)
        out.append(candidate)
    return out, notes
