"""OpenAPI schemas (2.0, 3.0, 3.1) translated into JSON Schema 2020-12, each referenced schema once.

A `$ref` to a schema becomes `{"$ref": "#/$defs/<name>"}` and the target is translated once per
document and direction, then shared by every tool that needs it; a tool's `$defs` is the closure
of what it references. Recursive schemas therefore stay finite with no special case. A reference
that cannot be followed becomes an unconstrained schema plus a `Note`, so it degrades only what
depends on it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Literal
from urllib.parse import unquote, urldefrag, urljoin, urlsplit

import jsonschema_rs

from toolbridge import schemas as js
from toolbridge.errors import DocumentError
from toolbridge.openapi.documents import DocumentStore, resolve_pointer, uri_to_display
from toolbridge.tools import JsonSchema, Note

Version = Literal["2.0", "3.0", "3.1"]
Direction = Literal["request", "response"]

MAX_REF_CHAIN = 32
_NAME_JUNK = re.compile(r"[^A-Za-z0-9_.-]+")


@dataclass(slots=True)
class Found:
    """What translating one schema produced: the schema, and notes on what changed."""

    schema: Any
    notes: list[Note] = field(default_factory=list)


class RefError(Exception):
    """A `$ref` that cannot be followed; the message says why."""


@lru_cache(maxsize=4096)
def _valid_regex(pattern: str) -> bool:
    """Whether the validator we compile argument schemas with accepts the pattern."""
    try:
        jsonschema_rs.validator_for({"pattern": pattern})
    except (ValueError, jsonschema_rs.ValidationError):
        return False
    return True


class References:
    """Follows `$ref`s across the documents of one source (files and, for URL sources, URLs)."""

    def __init__(self, store: DocumentStore, root_uri: str) -> None:
        self.store = store
        self.root_uri = root_uri
        self.remote_allowed = urlsplit(root_uri).scheme in ("http", "https")
        self._located: dict[tuple[str, str], tuple[str, str]] = {}

    def locate(self, ref: Any, base_uri: str) -> tuple[str, str]:
        """The (document URI, JSON pointer) a `$ref` names, relative to `base_uri`."""
        if not isinstance(ref, str):
            raise RefError(f"a $ref must be a string, found {type(ref).__name__}")
        key = (ref, base_uri)
        located = self._located.get(key)
        if located is None:
            located = self._locate(ref, base_uri)
            self._located[key] = located
        return located

    def _locate(self, ref: str, base_uri: str) -> tuple[str, str]:
        if ref.startswith("#"):
            return urldefrag(base_uri)[0], unquote(ref[1:])
        target = urljoin(base_uri, ref)
        uri, fragment = urldefrag(target)
        scheme = urlsplit(uri).scheme
        if scheme in ("http", "https") and not self.remote_allowed:
            raise RefError("remote reference not followed for a document read from a file")
        if scheme == "file" and urlsplit(base_uri).scheme != "file":
            raise RefError("a document read from a URL may not refer to local files")
        return uri, unquote(fragment)

    def follow(self, ref: Any, base_uri: str) -> tuple[Any, str, str]:
        """Follow a `$ref` (and any chain of pure `$ref`s) to (value, document URI, pointer)."""
        uri, pointer = self.locate(ref, base_uri)
        for _ in range(MAX_REF_CHAIN):
            try:
                document = self.store.get(uri)
            except DocumentError as exc:
                raise RefError(str(exc)) from exc
            try:
                value = resolve_pointer(document.data, pointer)
            except KeyError:
                raise RefError(f"nothing at #{pointer} in {uri_to_display(uri)}") from None
            if isinstance(value, dict) and "$ref" in value and len(value) == 1:
                uri, pointer = self.locate(value["$ref"], uri)
                continue
            return value, uri, pointer
        raise RefError(f"a chain of more than {MAX_REF_CHAIN} references")


class Definitions:
    """Translated schemas of one source and direction, named and shared between tools."""

    def __init__(self, refs: References, version: Version, direction: Direction) -> None:
        self.refs = refs
        self.version = version
        self.direction = direction
        self.defs: dict[str, Any] = {}
        self.deps: dict[str, frozenset[str]] = {}
        self.def_notes: dict[str, tuple[Note, ...]] = {}
        self._names: dict[tuple[str, str], str] = {}
        self._taken: set[str] = set()
        self._queue: list[tuple[str, Any, str, str]] = []
        self._busy: set[str] = set()

    # -- the public surface -------------------------------------------------------------

    def translate(self, schema: Any, base_uri: str) -> Found:
        """Translate one schema found at `base_uri`; referenced schemas land in `defs`."""
        found = Found(None)
        found.schema = self._node(schema, base_uri, found)
        self._drain()
        return found

    def closure(self, names: Iterable[str]) -> dict[str, Any]:
        """The `$defs` a schema using `names` needs: every definition reachable from them."""
        seen: set[str] = set()
        stack = list(names)
        while stack:
            name = stack.pop()
            if name in seen:
                continue
            seen.add(name)
            self._ensure(name)
            stack.extend(self.deps.get(name, ()))
        return {name: self.defs[name] for name in sorted(seen)}

    def notes_for(self, names: Iterable[str]) -> list[Note]:
        notes: list[Note] = []
        for name in sorted(names):
            notes.extend(self.def_notes.get(name, ()))
        return notes

    def recursive(self, names: Iterable[str]) -> list[str]:
        """The definitions among `names` that can reach themselves."""
        out = []
        for name in names:
            stack = list(self.deps.get(name, ()))
            seen: set[str] = set()
            while stack:
                current = stack.pop()
                if current == name:
                    out.append(name)
                    break
                if current in seen:
                    continue
                seen.add(current)
                stack.extend(self.deps.get(current, ()))
        return out

    def content(self, ref: str) -> Any:
        """The translated definition a local `#/$defs/<name>` reference points to."""
        name = ref.rsplit("/", 1)[-1]
        self._ensure(name)
        return self.defs.get(name)

    # -- naming and the work queue -------------------------------------------------------

    def _name_for(self, uri: str, pointer: str, value: Any) -> str:
        key = (uri, pointer)
        name = self._names.get(key)
        if name is not None:
            return name
        tokens = [t.replace("~1", "/").replace("~0", "~") for t in pointer.split("/") if t]
        if len(tokens) >= 3 and tokens[0] == "components" and tokens[1] == "schemas":
            base = "_".join(tokens[2:])
        elif len(tokens) >= 2 and tokens[0] == "definitions":
            base = "_".join(tokens[1:])
        elif tokens:
            base = "_".join(tokens[-2:])
        else:
            base = urlsplit(uri).path.rsplit("/", 1)[-1].rsplit(".", 1)[0]
        base = _NAME_JUNK.sub("_", base).strip("_")[:60] or "schema"
        name, n = base, 2
        while name in self._taken:
            name = f"{base}_{n}"
            n += 1
        self._taken.add(name)
        self._names[key] = name
        self._queue.append((name, value, uri, pointer))
        return name

    def _drain(self) -> None:
        while self._queue:
            self._build(*self._queue.pop())

    def _ensure(self, name: str) -> None:
        if name in self.defs or name in self._busy:
            return
        for index, item in enumerate(self._queue):
            if item[0] == name:
                del self._queue[index]
                self._build(*item)
                return

    def _build(self, name: str, value: Any, uri: str, pointer: str) -> None:
        self._busy.add(name)
        found = Found(None)
        found.schema = self._node(value, uri, found)
        self.defs[name] = found.schema
        self.deps[name] = frozenset(js.collect_refs(found.schema))
        where = f"{uri_to_display(uri)}#{pointer}"
        self.def_notes[name] = tuple(
            Note(kind=n.kind, message=n.message, where=n.where or where) for n in found.notes
        )
        self._busy.discard(name)

    # -- translation of one schema node -----------------------------------------------------

    def _ref(self, node: dict[str, Any], uri: str, found: Found) -> Any:
        try:
            value, target_uri, pointer = self.refs.follow(node["$ref"], uri)
        except RefError as exc:
            found.notes.append(
                Note(
                    kind="unresolved-ref",
                    message=f"$ref {node['$ref']!r} cannot be followed ({exc}); "
                    "that part accepts any value",
                )
            )
            return {"description": f"Unresolved reference {str(node['$ref'])[:200]}"}
        if isinstance(value, bool):
            return value
        name = self._name_for(target_uri, pointer, value)
        out: dict[str, Any] = {"$ref": f"#/$defs/{name}"}
        siblings = {k: v for k, v in node.items() if k != "$ref"}
        if not siblings:
            return out
        if self.version == "3.1":
            extra = self._node(siblings, uri, found)
            if isinstance(extra, dict):
                out.update(extra)
            return out
        # Before 3.1 siblings of $ref are ignored, but a description or nullable is what the
        # author meant, and keeping them is harmless.
        if "description" in siblings:
            out["description"] = js.clean_text(siblings["description"])[0]
        if siblings.get("nullable") is True or siblings.get("x-nullable") is True:
            return js.add_null(out)
        return out

    def _node(self, node: Any, uri: str, found: Found) -> Any:
        if isinstance(node, bool):
            return node
        if not isinstance(node, dict):
            found.notes.append(
                Note(
                    kind="invalid-schema",
                    message=f"a schema must be an object, found {node!r}"[:200],
                )
            )
            return {}
        if "$ref" in node:
            return self._ref(node, uri, found)
        out: dict[str, Any] = {}
        for key, value in node.items():
            handler = _HANDLERS.get(key)
            if handler is not None:
                handler(self, out, key, value, node, uri, found)
        if "required" in out and isinstance(node.get("properties"), dict):
            kept = out.get("properties", {})
            gone = node["properties"].keys() - kept.keys()
            if gone:
                out["required"] = [r for r in out["required"] if r not in gone]
                if not out["required"]:
                    del out["required"]
        if "allOf" in out:
            merged = js.merge_all_of(out, lambda ref: self._inline(ref, found))
            if merged is not None:
                out = merged
        nullable = node.get("nullable") if self.version == "3.0" else node.get("x-nullable")
        if nullable is True and self.version != "3.1":
            out = js.add_null(out)
        return out

    def _inline(self, ref: str, found: Found) -> JsonSchema | None:
        """A definition's content for merging into an `allOf`, if it is ready and not recursive."""
        name = ref.rsplit("/", 1)[-1]
        self._ensure(name)
        if name in self._busy or name not in self.defs:
            return None
        content = self.defs[name]
        if not isinstance(content, dict) or name in self.deps[name]:
            return None
        found.notes.extend(self.def_notes[name])
        return content

    def _subschemas(self, value: Any, uri: str, found: Found) -> Any:
        return self._node(value, uri, found)

    def _drops(self, sub: Any, uri: str, depth: int = 0) -> bool:
        """A property that does not belong in this direction (readOnly in requests, ...).

        The flag may sit on the property, on what its `$ref` names, or on an `allOf` member.
        """
        flag = "readOnly" if self.direction == "request" else "writeOnly"
        if not isinstance(sub, dict) or depth > 8:
            return False
        if sub.get(flag) is True:
            return True
        if "$ref" in sub:
            try:
                target, uri, _ = self.refs.follow(sub["$ref"], uri)
            except RefError:
                return False
            return self._drops(target, uri, depth + 1)
        members = sub.get("allOf")
        return isinstance(members, list) and any(self._drops(m, uri, depth + 1) for m in members)


_Handler = Any


def _type(
    d: Definitions, out: dict[str, Any], key: str, value: Any, node: Any, uri: str, found: Found
) -> None:
    if value == "file" and d.version == "2.0":
        out["type"] = "string"
        out.setdefault("format", "binary")
        return
    kinds = [value] if isinstance(value, str) else value if isinstance(value, list) else []
    valid: list[str] = []
    for kind in kinds:
        if kind in js.JSON_TYPES and kind not in valid:
            valid.append(kind)
        elif kind not in js.JSON_TYPES:
            found.notes.append(
                Note(kind="invalid-schema", message=f"unknown type {kind!r} dropped")
            )
    if valid:
        out["type"] = valid[0] if len(valid) == 1 else valid


def _number(
    d: Definitions, out: dict[str, Any], key: str, value: Any, node: Any, uri: str, found: Found
) -> None:
    if isinstance(value, bool):
        # Draft 4 / OpenAPI 3.0 style: exclusiveMinimum: true qualifies minimum.
        bound = "minimum" if key == "exclusiveMinimum" else "maximum"
        if (
            key in ("exclusiveMinimum", "exclusiveMaximum")
            and value
            and _is_number(node.get(bound))
        ):
            out[key] = node[bound]
            out.pop(bound, None)
        return
    if _is_number(value):
        if key in ("minimum", "maximum"):
            exclusive = node.get("exclusiveMinimum" if key == "minimum" else "exclusiveMaximum")
            if exclusive is True:
                return
        if key == "multipleOf" and value <= 0:
            return
        out[key] = value
    elif isinstance(value, str):
        try:
            out[key] = float(value) if "." in value else int(value)
        except ValueError:
            found.notes.append(
                Note(kind="invalid-schema", message=f"{key}: {value!r} is not a number; dropped")
            )


def _count(
    d: Definitions, out: dict[str, Any], key: str, value: Any, node: Any, uri: str, found: Found
) -> None:
    if _is_number(value) and value >= 0 and float(value).is_integer():
        out[key] = int(value)


def _plain(
    d: Definitions, out: dict[str, Any], key: str, value: Any, node: Any, uri: str, found: Found
) -> None:
    expected: type | tuple[type, ...] = (
        bool if key in ("uniqueItems", "deprecated", "readOnly", "writeOnly") else str
    )
    if isinstance(value, expected):
        out[key] = value


def _description(
    d: Definitions, out: dict[str, Any], key: str, value: Any, node: Any, uri: str, found: Found
) -> None:
    text = js.clean_text(value)[0]
    if text:
        out["description"] = text


def _pattern(
    d: Definitions, out: dict[str, Any], key: str, value: Any, node: Any, uri: str, found: Found
) -> None:
    if isinstance(value, str) and _valid_regex(value):
        out["pattern"] = value
    else:
        found.notes.append(
            Note(
                kind="invalid-schema",
                message=f"pattern {str(value)[:80]!r} is not a valid regular expression; dropped",
            )
        )


def _enum(
    d: Definitions, out: dict[str, Any], key: str, value: Any, node: Any, uri: str, found: Found
) -> None:
    if isinstance(value, list) and value:
        out["enum"] = value


def _any(
    d: Definitions, out: dict[str, Any], key: str, value: Any, node: Any, uri: str, found: Found
) -> None:
    out[key] = value


def _example(
    d: Definitions, out: dict[str, Any], key: str, value: Any, node: Any, uri: str, found: Found
) -> None:
    if key == "example" and isinstance(value, str | int | float | bool) and "examples" not in node:
        out["examples"] = [value]
    elif (
        key == "examples"
        and isinstance(value, list)
        and value
        and all(isinstance(v, str | int | float | bool) for v in value)
    ):
        out["examples"] = value[:5]


def _required(
    d: Definitions, out: dict[str, Any], key: str, value: Any, node: Any, uri: str, found: Found
) -> None:
    if isinstance(value, list):
        names = list(dict.fromkeys(v for v in value if isinstance(v, str)))
        if names:
            out["required"] = names


def _properties(
    d: Definitions, out: dict[str, Any], key: str, value: Any, node: Any, uri: str, found: Found
) -> None:
    if not isinstance(value, dict):
        return
    if isinstance(value.get("$ref"), str) and len(value) == 1:
        # Not valid OpenAPI, but seen in real documents: the whole mapping by reference.
        try:
            value, uri, _ = d.refs.follow(value["$ref"], uri)
        except RefError as exc:
            found.notes.append(
                Note(kind="unresolved-ref", message=f"{key} by $ref cannot be followed ({exc})")
            )
            return
        if not isinstance(value, dict):
            return
    props: dict[str, Any] = {}
    dropped = []
    for name, sub in value.items():
        if key == "properties" and d._drops(sub, uri):
            dropped.append(name)
            continue
        if key == "patternProperties" and not _valid_regex(name):
            continue
        props[name] = d._node(sub, uri, found)
    out[key] = props
    if dropped:
        flag = "read-only" if d.direction == "request" else "write-only"
        found.notes.append(
            Note(
                kind=f"{flag}-omitted",
                message=f"{flag} properties left out of the {d.direction}: {', '.join(dropped)}",
            )
        )


def _schema(
    d: Definitions, out: dict[str, Any], key: str, value: Any, node: Any, uri: str, found: Found
) -> None:
    if key == "items" and isinstance(value, list):
        out["prefixItems"] = [d._node(v, uri, found) for v in value]
        return
    if key == "additionalItems":
        return
    if isinstance(value, dict | bool):
        out[key] = d._node(value, uri, found)


def _schema_list(
    d: Definitions, out: dict[str, Any], key: str, value: Any, node: Any, uri: str, found: Found
) -> None:
    if isinstance(value, list) and value:
        out[key] = [d._node(v, uri, found) for v in value]


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


_HANDLERS: dict[str, Any] = {
    "type": _type,
    "description": _description,
    "pattern": _pattern,
    "enum": _enum,
    "const": _any,
    "default": _any,
    "example": _example,
    "examples": _example,
    "required": _required,
    "dependentRequired": _any,
    **dict.fromkeys(js.NUMBER_KEYWORDS, _number),
    **dict.fromkeys(js.COUNT_KEYWORDS, _count),
    **dict.fromkeys(js.PLAIN_KEYWORDS, _plain),
    **dict.fromkeys(js.SUBSCHEMA_MAPS, _properties),
    **dict.fromkeys(js.SUBSCHEMA_KEYWORDS, _schema),
    **dict.fromkeys(js.SUBSCHEMA_LISTS, _schema_list),
}
