"""OpenAPI schemas (2.0, 3.0, 3.1) translated into JSON Schema 2020-12, each referenced schema once.

A `$ref` to a schema becomes `{"$ref": "#/$defs/<name>"}` and the target is translated once per
document and direction, then shared by every tool that needs it; a tool's `$defs` is the closure
of what it references. Recursive schemas therefore stay finite with no special case. A reference
that cannot be followed becomes an unconstrained schema plus a `Note`, so it degrades only what
depends on it. This module holds that bookkeeping and the walk over a schema; following a `$ref`
is `references`', and what each keyword becomes is `keywords`'.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Hashable, Iterable
from typing import Any, Literal, TypeVar
from urllib.parse import urlsplit

from toolbridge import names
from toolbridge import schemas as js
from toolbridge.openapi.documents import uri_to_display
from toolbridge.openapi.keywords import HANDLERS, Found
from toolbridge.openapi.references import References, RefError
from toolbridge.tools import JsonSchema, Note

Version = Literal["2.0", "3.0", "3.1"]
Direction = Literal["request", "response"]

_NAME_JUNK = re.compile(r"[^A-Za-z0-9_.-]+")
T = TypeVar("T")
_MISSING = object()
_NONE: frozenset[str] = frozenset()
MAX_KEPT_TEXT = 4096
"""Longer texts are cleaned at each use rather than kept for the next."""


class Names:
    """The `$defs` names of one document, shared by its request and response translations.

    A referenced schema has one name in both directions, so a definition that translates the
    same either way (no readOnly or writeOnly property, nothing that depended on the order of
    translation) is translated once and its content serves both.
    """

    def __init__(self) -> None:
        self.by_location: dict[tuple[str, str], str] = {}
        self.taken: set[str] = set()
        self.where: dict[str, tuple[Any, str, str]] = {}
        """Each name's schema as found, and its document URI and pointer."""
        self.either: dict[str, tuple[Any, frozenset[str], tuple[Note, ...]]] = {}
        """Definitions translated the same in both directions: content, deps, notes."""


class Definitions:
    """Translated schemas of one source and direction, named and shared between tools."""

    def __init__(
        self, refs: References, version: Version, direction: Direction, shared: Names | None = None
    ) -> None:
        self.refs = refs
        self.version = version
        self.direction = direction
        self.shared = shared or Names()
        self.defs: dict[str, Any] = {}
        self.deps: dict[str, frozenset[str]] = {}
        self.def_notes: dict[str, tuple[Note, ...]] = {}
        self._queue: list[str] = []
        self._queued: set[str] = set()
        self._busy: set[str] = set()
        self._directed: set[str] = set()
        self._once: dict[tuple[str, int], tuple[object, Any]] = {}
        self._reached: dict[str, frozenset[str]] = {}
        self._by_ref: dict[tuple[str, str], Found] = {}
        self._displays: dict[str, str] = {}
        self._texts: dict[str, str] = {}
        self._kept: dict[Hashable, Any] = {}
        self._arguments: dict[tuple[tuple[str, str], ...], tuple[list[str], list[Note]]] = {}
        self._closures: dict[frozenset[str], dict[str, Any]] = {}
        self._notes: dict[frozenset[str], tuple[Note, ...]] = {}
        self._cyclic: dict[str, bool] = {}
        self._refs: dict[int, tuple[Any, frozenset[str]]] = {}
        self._targets: dict[tuple[str, str], str] = {}
        """Each `$ref` (and where it was written) followed: the `#/$defs/<name>` it became."""
        """By identity of a translated schema (kept alive here): the names it refers to."""

    # -- the public surface -------------------------------------------------------------

    def translate(self, schema: Any, base_uri: str) -> Found:
        """Translate one schema found at `base_uri`; referenced schemas land in `defs`.

        The same schema object (a shared parameter, a response by `$ref`) is translated once:
        every tool that uses it shares the answer, so treat it as read-only.
        """
        if type(schema) is dict and len(schema) == 1 and type(schema.get("$ref")) is str:
            # `{"$ref": ...}` written out at each use (Swagger 2.0 bodies and responses): by
            # what it names, so every use shares one answer too.
            key = (base_uri, schema["$ref"])
            found = self._by_ref.get(key)
            if found is None:
                found = self._by_ref[key] = self._translate(schema, base_uri)
            return found
        return self.once(schema, base_uri, self._translate, schema, base_uri)

    def once(self, value: object, tag: str, compute: Callable[..., T], *args: Any) -> T:
        """`compute(*args)`'s answer for `value` (by identity) and `tag`, computed once per
        conversion. The entry keeps `value` alive, so its identity cannot be reused while it is
        a key."""
        key = (tag, id(value))
        found = self._once.get(key)
        if found is not None and found[0] is value:
            kept: T = found[1]
            return kept
        answer = compute(*args)
        self._once[key] = (value, answer)
        return answer

    def kept(self, key: Hashable, compute: Callable[..., T], *args: Any) -> T:
        """`compute(*args)`'s answer for a key naming its inputs, computed once per conversion
        (objects in a key by `id` must live as long as the conversion: the document's do)."""
        found = self._kept.get(key, _MISSING)
        if found is _MISSING:
            found = self._kept[key] = compute(*args)
        answer: T = found
        return answer

    def _translate(self, schema: Any, base_uri: str) -> Found:
        found = Found(None)
        found.schema = self.node(schema, base_uri, found)
        self._drain()
        return found

    def closure(self, names: Iterable[str]) -> dict[str, Any]:
        """The `$defs` a schema using `names` needs: every definition reachable from them.

        Tools that need the same definitions share one answer: treat it as read-only.
        """
        key = frozenset(names)
        found = self._closures.get(key)
        if found is None:
            seen: set[str] = set()
            for name in key:
                seen.update(self._reach(name))
            found = self._closures[key] = {name: self.defs[name] for name in sorted(seen)}
        return found

    def notes_for(self, names: Iterable[str]) -> list[Note]:
        """The notes of translating these definitions, in name order."""
        key = frozenset(names)
        found = self._notes.get(key)
        if found is None:
            found = self._notes[key] = tuple(
                note for name in sorted(key) for note in self.def_notes.get(name, ())
            )
        return list(found)

    def text(self, value: Any) -> str:
        """`schemas.clean_text(value)[0]`, once per distinct text of this conversion (documents
        repeat their descriptions: Kubernetes has 8,000 parameters and 48 texts)."""
        if value is None:
            return ""
        if not isinstance(value, str) or len(value) > MAX_KEPT_TEXT:
            return js.clean_text(value)[0]
        found = self._texts.get(value)
        if found is None:
            found = self._texts[value] = js.clean_text(value)[0]
        return found

    def arguments(self, wanted: tuple[tuple[str, str], ...]) -> tuple[list[str], list[Note]]:
        """`names.argument_names(wanted)`, once per distinct list of parameters."""
        found = self._arguments.get(wanted)
        if found is None:
            found = self._arguments[wanted] = names.argument_names(wanted)
        return found

    def refs_in(self, schema: Any) -> frozenset[str]:
        """The `$defs` names a translated schema refers to (once per schema object)."""
        known = self._refs.get(id(schema))
        if known is not None and known[0] is schema:
            return known[1]
        found = frozenset(js.collect_refs(schema))
        self._refs[id(schema)] = (schema, found)
        return found

    def refs_in_all(self, schemas: Iterable[Any]) -> frozenset[str]:
        """The `$defs` names these translated schemas refer to, together."""
        out: frozenset[str] = _NONE
        known = self._refs
        for schema in schemas:
            found = known.get(id(schema))
            names = found[1] if found is not None and found[0] is schema else self.refs_in(schema)
            if names:
                out = out | names if out else names
        return out

    def recursive(self, names: Iterable[str]) -> list[str]:
        """The definitions among `names` that can reach themselves."""
        out = []
        for name in names:
            cyclic = self._cyclic.get(name)
            if cyclic is None:
                self._ensure(name)
                deps = self.deps.get(name, ())
                cyclic = self._cyclic[name] = any(name in self._reach(dep) for dep in deps)
            if cyclic:
                out.append(name)
        return out

    def _reach(self, name: str) -> frozenset[str]:
        """`name` and every definition reachable from it (built, so that the answer is final)."""
        found = self._reached.get(name)
        if found is not None:
            return found
        seen: set[str] = set()
        stack = [name]
        while stack:
            current = stack.pop()
            if current in seen:
                continue
            known = self._reached.get(current)
            if known is not None:
                seen.update(known)
                continue
            seen.add(current)
            self._ensure(current)
            stack.extend(self.deps.get(current, ()))
        found = self._reached[name] = frozenset(seen)
        return found

    def content(self, ref: str) -> Any:
        """The translated definition a local `#/$defs/<name>` reference points to."""
        name = ref.rsplit("/", 1)[-1]
        self._ensure(name)
        return self.defs.get(name)

    # -- naming and the work queue -------------------------------------------------------

    def _name_for(self, uri: str, pointer: str, value: Any) -> str:
        shared = self.shared
        name = shared.by_location.get((uri, pointer))
        if name is None:
            name = self._new_name(uri, pointer)
            shared.by_location[(uri, pointer)] = name
            shared.where[name] = (value, uri, pointer)
        if name not in self._queued:
            self._queued.add(name)
            self._queue.append(name)
        return name

    def _new_name(self, uri: str, pointer: str) -> str:
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
        while name in self.shared.taken:
            name = f"{base}_{n}"
            n += 1
        self.shared.taken.add(name)
        return name

    def _drain(self) -> None:
        while self._queue:
            self._ensure(self._queue.pop())

    def _ensure(self, name: str) -> None:
        if name not in self.defs and name not in self._busy and name in self.shared.where:
            self._build(name)

    def _build(self, name: str) -> None:
        either = self.shared.either.get(name)
        if either is not None:  # translated the same in the other direction already
            self.defs[name], self.deps[name], self.def_notes[name] = either
            for dep in either[1]:
                if dep not in self._queued:
                    self._queued.add(dep)
                    self._queue.append(dep)
            return
        value, uri, pointer = self.shared.where[name]
        self._busy.add(name)
        found = Found(None)
        found.schema = self.node(value, uri, found)
        self.defs[name] = found.schema
        self.deps[name] = frozenset(js.collect_refs(found.schema))
        display = self._displays.get(uri)
        if display is None:
            display = self._displays[uri] = uri_to_display(uri)
        where = f"{display}#{pointer}"
        self.def_notes[name] = tuple(
            Note(kind=n.kind, message=n.message, where=n.where or where) for n in found.notes
        )
        self._busy.discard(name)
        if found.directed:
            self._directed.add(name)
        else:
            self.shared.either[name] = (self.defs[name], self.deps[name], self.def_notes[name])

    # -- translation of one schema node -----------------------------------------------------

    def _ref(self, node: dict[str, Any], uri: str, found: Found) -> Any:
        ref = node["$ref"]
        key = (ref, uri) if type(ref) is str else None
        target = self._targets.get(key) if key is not None else None
        if target is None:
            try:
                value, target_uri, pointer = self.refs.follow(ref, uri)
            except RefError as exc:
                found.notes.append(
                    Note(
                        kind="unresolved-ref",
                        message=f"$ref {ref!r} cannot be followed ({exc}); "
                        "that part accepts any value",
                    )
                )
                return {"description": f"Unresolved reference {str(ref)[:200]}"}
            if isinstance(value, bool):
                return value
            target = f"#/$defs/{self._name_for(target_uri, pointer, value)}"
            if key is not None:
                self._targets[key] = target  # named (and queued) for good: a lookup from now
        out: dict[str, Any] = {"$ref": target}
        if len(node) == 1:
            return out
        siblings = {k: v for k, v in node.items() if k != "$ref"}
        if self.version == "3.1":
            extra = self.node(siblings, uri, found)
            if isinstance(extra, dict):
                out.update(extra)
            return out
        # Before 3.1 siblings of $ref are ignored, but a description or nullable is what the
        # author meant, and keeping them is harmless.
        if "description" in siblings:
            out["description"] = self.text(siblings["description"])
        if siblings.get("nullable") is True or siblings.get("x-nullable") is True:
            return js.add_null(out)
        return out

    def node(self, node: Any, uri: str, found: Found) -> Any:
        """One schema node translated; the keyword rules come back here for subschemas."""
        if isinstance(node, bool):
            return node
        if not isinstance(node, dict):
            found.notes.append(
                Note(
                    kind="invalid-schema",
                    message=f"a schema must be an object, found {js.json_kind(node)}",
                )
            )
            return {}
        if "$ref" in node:
            return self._ref(node, uri, found)
        out: dict[str, Any] = {}
        for key, value in node.items():
            # The commonest keywords first, as their rules (`keywords`) would: no call.
            if key == "description":
                text = self.text(value)
                if text:
                    out["description"] = text
                continue
            if key == "type" and type(value) is str and value in js.JSON_TYPES:
                out["type"] = value
                continue
            handler = HANDLERS.get(key)
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
        if name in self._busy:
            found.directed = True  # in the middle of its own translation: order decided
            return None
        if name not in self.defs:
            return None
        content = self.defs[name]
        if not isinstance(content, dict) or name in self.deps[name]:
            return None
        if name in self._directed:
            found.directed = True  # merging a direction's content makes this one directed
        found.notes.extend(self.def_notes[name])
        return content
