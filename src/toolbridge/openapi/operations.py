"""The operations of an OpenAPI document: its paths walked, path items and operations read.

Each operation is found with the documents its objects live in (for relative `$ref`s), in
document order; webhooks and callbacks, which describe calls the API makes, are noted and not
returned. Turning an operation into a tool is `convert`'s job.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from toolbridge.openapi.references import References, RefError
from toolbridge.tools import Method, Note
from toolbridge.upstream.request import dot_segment

METHODS: tuple[Method, ...] = ("GET", "PUT", "POST", "DELETE", "OPTIONS", "HEAD", "PATCH", "TRACE")
_KEYS = tuple((method, method.lower()) for method in METHODS)
_LOWER = frozenset(key for _, key in _KEYS)


@dataclass(slots=True)
class Operation:
    """One operation of the document, where it lives, and (once chosen) its tool name."""

    method: Method
    path: str
    where: str
    operation: dict[str, Any]
    path_item: dict[str, Any]
    uri: str
    """The document the operation object lives in (for relative `$ref`s)."""
    item_uri: str
    """The document the path item lives in."""
    name: str = ""
    original: str = ""


def find_operations(
    document: dict[str, Any], uri: str, refs: References
) -> tuple[list[Operation], list[Note]]:
    """Every operation of the document's paths, in document order, `$ref`s followed."""
    paths = document.get("paths")
    notes: list[Note] = []
    found: list[Operation] = []
    if paths is None:
        return found, notes
    if not isinstance(paths, dict):
        notes.append(Note(kind="invalid-document", message="'paths' is not a mapping"))
        return found, notes
    for path, item in paths.items():
        if not isinstance(path, str) or path.startswith("x-"):
            continue
        item_uri = uri
        if isinstance(item, dict) and "$ref" in item:
            try:
                item, item_uri, _ = refs.follow(item["$ref"], uri)
            except RefError as exc:
                notes.append(
                    Note(
                        kind="unresolved-ref",
                        message=f"the path item cannot be read ({exc}); its operations are unknown",
                        where=path,
                    )
                )
                continue
        if not isinstance(item, dict):
            continue
        notes += _misspelled_methods(item, path)
        if dot_segment(path.split("#", 1)[0]):
            if any(item.get(key) is not None for _, key in _KEYS):
                notes.append(
                    Note(
                        kind="invalid-operation",
                        message="the path holds a `.` or `..` segment, which URLs resolve "
                        "away: no request can reach it; its operations are left out",
                        where=path,
                    )
                )
            continue
        for method, key in _KEYS:
            op = item.get(key)
            if op is None:
                continue
            op_uri = item_uri
            where = f"{method} {path}"
            if isinstance(op, dict) and "$ref" in op:
                try:
                    op, op_uri, _ = refs.follow(op["$ref"], item_uri)
                except RefError as exc:
                    notes.append(
                        Note(
                            kind="unresolved-ref",
                            message=f"the operation cannot be read ({exc}); "
                            "it is a tool without parameters",
                            where=where,
                        )
                    )
                    op = {}
            if not isinstance(op, dict):
                op = {}
            found.append(Operation(method, path, where, op, item, op_uri, item_uri))
    return found, notes


def _misspelled_methods(item: dict[str, Any], path: str) -> list[Note]:
    """A method key in another case (`GET:`, `Post:`): not an operation to OpenAPI, said."""
    return [
        Note(
            kind="invalid-operation",
            message=f"{key!r} is no operation: methods are lower case ({key.lower()!r}); left out",
            where=f"{key.upper()} {path}",
        )
        for key in item
        if isinstance(key, str) and key != key.lower() and key.lower() in _LOWER
    ]


def unexposed(document: dict[str, Any], operations: list[Operation]) -> list[Note]:
    """Webhooks and callbacks describe calls the API makes to others: they are not tools."""
    notes = []
    webhooks = document.get("webhooks")
    if isinstance(webhooks, dict) and webhooks:
        notes.append(
            Note(
                kind="webhooks-not-tools",
                message=f"{len(webhooks)} webhook(s) describe calls the API makes, not tools; "
                "not exposed",
            )
        )
    callbacks = [op.where for op in operations if op.operation.get("callbacks")]
    if callbacks:
        notes.append(
            Note(
                kind="callbacks-not-tools",
                message=f"{len(callbacks)} operation(s) declare callbacks (calls the API makes, "
                "not tools); not exposed: "
                + ", ".join(callbacks[:5])
                + ("" if len(callbacks) <= 5 else ", ..."),
            )
        )
    return notes


def strings(value: Any) -> list[str]:
    """The strings of a list of them (`tags`, `produces`, `consumes`); nothing from a value of
    another kind (the operation's notes say so: `convert._malformed`)."""
    return [v for v in value if isinstance(v, str)] if isinstance(value, list) else []
