"""The output side of an operation: the schema of its main success response, and `Accept`.

Output schemas are bounded: one that refers to more than MAX_OUTPUT_DEFS definitions is cut
to its top level (with a note), so a single response cannot flood a client's tool list.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any, cast

from toolbridge import schemas as js
from toolbridge.openapi.bodies import Draft, body_kind
from toolbridge.openapi.definitions import Definitions
from toolbridge.openapi.keywords import Found
from toolbridge.openapi.references import References, RefError
from toolbridge.openapi.swagger2 import response_as_3
from toolbridge.tools import JsonSchema, Note

MAX_OUTPUT_DEFS = 48
"""Output schemas referring to more definitions than this are shortened to their top level."""
SUCCESS_CODES = ("200", "201", "202", "203", "206", "2XX", "2xx")


class Outputs:
    """The output side of each operation of one conversion (`output_schema`). Swagger 2.0
    documents write their responses out at each operation (Kubernetes: 1,123 operations, 402
    different responses), so 2.0 responses that are the same JSON, produced as the same media
    types, are read once, and their operations share what they became."""

    def __init__(self, refs: References, defs: Definitions) -> None:
        self.refs = refs
        self.defs = defs
        self._read: dict[tuple[str, bytes, tuple[str, ...]], _Read] = {}

    def output(
        self, responses: Any, uri: str, b: Draft, produces: list[str] | None
    ) -> tuple[JsonSchema | None, str | None]:
        """`output_schema` of an operation's responses; `produces`: its 2.0 media types (each
        response is reshaped as 3.x with them), None for 3.x."""
        if produces is None:
            return output_schema(responses, uri, self.refs, self.defs, b)
        text = js.plain_json(responses)
        key = (uri, text, tuple(produces)) if text is not None else None
        known = self._read.get(key) if key is not None else None
        if known is None:
            mark = len(b.notes)
            reshape = partial(response_as_3, produces=produces)
            schema, accept = output_schema(responses, uri, self.refs, self.defs, b, reshape)
            known = (schema, accept, tuple(b.notes[mark:]))
            if key is not None:
                self._read[key] = known
            return schema, accept
        b.notes.extend(known[2])
        return known[0], known[1]


_Read = tuple[JsonSchema | None, str | None, tuple[Note, ...]]
"""What responses became: the output schema, the Accept to send, the notes made."""


def output_schema(
    responses: Any,
    uri: str,
    refs: References,
    defs: Definitions,
    b: Draft,
    reshape: Callable[[Any], Any] | None = None,
) -> tuple[JsonSchema | None, str | None]:
    """The output schema of the main success response, and the Accept header to send.

    `reshape` turns the chosen response object, unless it is a `$ref`, into a 3.x one
    (Swagger 2.0's: only the one response that is read is reshaped).
    """
    if not isinstance(responses, dict):
        return None, None
    keys = {str(k): v for k, v in responses.items()}
    code = next((c for c in SUCCESS_CODES if c in keys), None)
    if code is None:
        code = next((c for c in sorted(keys) if c.startswith("2")), None)
    if code is None:
        return None, None
    response = keys[code]
    if reshape is not None:
        response = reshape(response)
    response_uri = uri
    if isinstance(response, dict) and "$ref" in response:
        try:
            response, response_uri, _ = refs.follow(response["$ref"], uri)
        except RefError as exc:
            b.notes.append(
                Note(
                    kind="unresolved-ref",
                    message=f"the {code} response cannot be read ({exc}); no output schema",
                )
            )
            return None, None
    content = response.get("content") if isinstance(response, dict) else None
    if not isinstance(content, dict) or not content:
        return None, None
    media_types = [mt for mt in content if isinstance(mt, str)]
    json_types = [mt for mt in media_types if body_kind(mt) == "json" and mt != "*/*"]
    accept = json_types[0] if json_types else (media_types[0] if media_types else None)
    if not json_types:
        return None, accept
    media = content[json_types[0]]
    if not isinstance(media, dict) or "schema" not in media:
        return None, accept
    found = defs.translate(media["schema"], response_uri)
    b.notes.extend(found.notes)
    # Operations answering with the same schema share one output schema.
    schema, notes = defs.once(found, "output", _bounded, found, defs)
    b.notes.extend(notes)
    return schema, accept


def _bounded(found: Found, defs: Definitions) -> tuple[JsonSchema | None, list[Note]]:
    """The output schema, with its `$defs` or cut to its top level; and notes on that."""
    schema = found.schema
    if not isinstance(schema, dict):
        return None, []
    refs = defs.refs_in(schema)
    if not refs:
        return schema, []
    closure = defs.closure(refs)
    notes = defs.notes_for(closure)
    if len(closure) <= MAX_OUTPUT_DEFS:
        return {**schema, "$defs": closure}, notes
    top = defs.content(schema["$ref"]) if "$ref" in schema else schema
    if not isinstance(top, dict):
        return None, notes
    notes.append(
        Note(
            kind="output-schema-shortened",
            message=f"the output schema refers to {len(closure)} schemas "
            f"(more than {MAX_OUTPUT_DEFS}); only its top level is described",
        )
    )
    return cast(JsonSchema, _strip_refs(top)), notes


def _strip_refs(schema: Any) -> Any:
    """A copy with every `$ref` replaced by a schema that only names what it stood for."""
    if isinstance(schema, dict):
        if "$ref" in schema:
            name = str(schema["$ref"]).rsplit("/", 1)[-1]
            return {"description": schema.get("description") or f"A {name} (not described here)."}
        return {k: _strip_refs(v) for k, v in schema.items()}
    if isinstance(schema, list):
        return [_strip_refs(v) for v in schema]
    return schema
