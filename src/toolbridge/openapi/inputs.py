"""An operation's input side as one value: its input schema, request plan and notes.

Built from the operation's parameters (merged: `parameters`) and request body (`bodies`): the
arguments, the path template checked, the `$defs` the schema needs, and its soundness check.
Large documents repeat whole input sides (Kubernetes: 1,123 operations, 475 different ones:
every namespaced `list`, `watch` and `delete` takes the same parameters), so an input side is
built once per conversion for each different set of what it is built from, and operations
that read alike share it (treat it as read-only).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from toolbridge import schemas as js
from toolbridge.openapi import parameters
from toolbridge.openapi.bodies import Draft, add_body
from toolbridge.openapi.definitions import Definitions, Version
from toolbridge.openapi.operations import Operation, strings
from toolbridge.openapi.parameters import Located, Param, Parameters, variables
from toolbridge.openapi.references import RefError
from toolbridge.openapi.soundness import Soundness
from toolbridge.tools import BodyPlan, JsonSchema, Note, ParamBinding


@dataclass(frozen=True, slots=True)
class Inputs:
    """What an operation's parameters and request body became."""

    schema: JsonSchema
    params: tuple[ParamBinding, ...]
    body: BodyPlan | None
    reserved: dict[str, str]
    """Reserved headers the document requires, lowercased, with a value of the document's."""
    notes: tuple[Note, ...]
    """Made while building it, in order."""
    problems: tuple[Note, ...]
    """Of its soundness check (a tool lists them after its output schema's notes)."""


class InputSides:
    """The input sides of one conversion, each built once for what it is built from.

    Read from an operation's parameter lists (the path item's and its own), request body and
    security requirement, and its path template's variables: operations whose lists are the
    same JSON in the same documents (and whose 3.x request body is the same object) share one
    without reading them again. Else from what reading them found: the parameters (their
    `Param`s, which a document's copies of a parameter share) and the request body (a 2.0 one,
    made for each operation, by its JSON; else by identity).
    """

    def __init__(
        self,
        params: Parameters,
        defs: Definitions,
        soundness: Soundness,
        version: Version,
        consumes: list[str],
    ) -> None:
        self.params = params
        self.defs = defs
        self.soundness = soundness
        self.version = version
        self.consumes = consumes
        """The document's own (2.0), for operations without theirs."""
        self._read: dict[tuple[Any, ...], tuple[tuple[Note, ...], Inputs]] = {}
        self._item_texts: dict[int, bytes | None] = {}
        """The JSON of each path item's parameter list, by identity."""
        self._built: dict[tuple[Any, ...], Inputs] = {}
        self._kept: list[object] = []
        """What the keys name by identity, alive: an identity cannot be reused while used."""

    def of(
        self,
        op: Operation,
        requirements: tuple[tuple[str, ...], ...],
        credentials: set[tuple[str, str]],
    ) -> tuple[tuple[Note, ...], Inputs]:
        """An operation's input side, and the notes made reading its parameters and body
        (they come first). `credentials` are where the API keys of `requirements` go."""
        key = self._key(op, requirements)
        found = self._read.get(key) if key is not None else None
        if found is None:
            b = Draft()
            params, body = self._inputs(op, b)
            inputs = self._shared(params, body, credentials, requirements, op.path)
            found = (tuple(b.notes), inputs)
            if key is not None:
                self._read[key] = found
        return found

    def _key(self, op: Operation, requirements: tuple[tuple[str, ...], ...]) -> Any:
        """What an operation's input side is read from, or None when that cannot be told."""
        shared = op.path_item.get("parameters")  # the same list for each of the item's methods
        item = self._item_texts.get(id(shared))
        if item is None:
            item = self._item_texts[id(shared)] = b"" if shared is None else js.plain_json(shared)
            self._kept.append(shared)
        own = op.operation.get("parameters")
        text = b"" if own is None else js.plain_json(own)
        if item is None or text is None:
            return None
        if self.version == "2.0":
            body: Any = tuple(strings(op.operation.get("consumes")) or self.consumes)
        else:
            body = op.operation.get("requestBody")
            self._kept.append(body)
            body = id(body)
        return (op.item_uri, item, op.uri, text, body, requirements, variables(op.path))

    def _inputs(self, op: Operation, b: Draft) -> tuple[list[Param], Located | None]:
        """Path-level and operation-level parameters merged (the operation wins), and the
        request body."""
        item, own = op.path_item.get("parameters"), op.operation.get("parameters")
        params = self.params.merge(((item, op.item_uri), (own, op.uri)), b)
        if self.version == "2.0":
            consumes = strings(op.operation.get("consumes")) or self.consumes
            return self.params.from_swagger2(params, consumes, op.uri, b)
        body = op.operation.get("requestBody")
        body_uri = op.uri
        if isinstance(body, dict) and "$ref" in body:
            try:
                body, body_uri, _ = self.params.refs.follow(body["$ref"], op.uri)
            except RefError as exc:
                b.notes.append(
                    Note(
                        kind="unresolved-ref",
                        message=f"the request body cannot be read ({exc}); the tool sends none",
                    )
                )
                body = None
        return params, (body, body_uri) if isinstance(body, dict) else None

    def _shared(
        self,
        params: list[Param],
        body: Located | None,
        credentials: set[tuple[str, str]],
        requirements: tuple[tuple[str, ...], ...],
        path: str,
    ) -> Inputs:
        """The input side built from what reading found, once for each different one."""
        if body is None:
            body_key: Any = None
        elif self.version == "2.0":  # made for each operation from its parameters
            body_key = js.plain_json(body[0])
            if body_key is None:
                return self._build(params, body, credentials, path)
        else:
            body_key = id(body[0])
            self._kept.append(body[0])
        key = (tuple(map(id, params)), body_key, body and body[1], requirements, variables(path))
        found = self._built.get(key)
        if found is None:
            found = self._built[key] = self._build(params, body, credentials, path)
        return found

    def _build(
        self,
        params: list[Param],
        body: Located | None,
        credentials: set[tuple[str, str]],
        path: str,
    ) -> Inputs:
        b = Draft()
        defs = self.defs
        self.params.add(params, credentials, b)
        parameters.match_template(path, b)
        if body is not None:
            add_body(*body, b, defs)
        schema: JsonSchema = {"type": "object", "properties": b.properties}
        if b.required:
            schema["required"] = b.required
        schema["additionalProperties"] = False
        refs = defs.refs_in_all(b.properties.values())
        if refs:
            schema["$defs"] = defs.closure(refs)
            b.notes.extend(defs.notes_for(schema["$defs"]))
            cyclic = defs.recursive(schema["$defs"])
            if cyclic:
                b.notes.append(
                    Note(
                        kind="cycle",
                        message="recursive schema(s) kept as references in $defs: "
                        + ", ".join(cyclic[:5])
                        + ("" if len(cyclic) <= 5 else f" and {len(cyclic) - 5} more"),
                    )
                )
        schema, problems = self.soundness.input_schema(schema)
        return Inputs(
            schema=schema,
            params=tuple(b.params),
            body=b.body,
            reserved=b.reserved,
            notes=tuple(b.notes),
            problems=tuple(problems),
        )
