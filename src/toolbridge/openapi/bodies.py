"""Request bodies: the media type chosen, the arguments offered, and the plan to send them.

JSON, form and multipart object bodies are flattened beside the parameters when no name
collides; otherwise, and for other bodies, the body is one argument. Multipart file fields take
base64 content and a filename, also inside `oneOf`/`anyOf`/`allOf` branches; a multipart body
whose schema is itself a binary string is one file, taken by a `file` argument and sent as the
part `file`. Which alternatives were passed over is noted, and so is each file reshaped.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from toolbridge import names
from toolbridge import schemas as js
from toolbridge.openapi.definitions import Definitions
from toolbridge.tools import BodyKind, BodyPlan, FieldEncoding, JsonSchema, Note, ParamBinding

FILE_SCHEMA: JsonSchema = {
    "type": "object",
    "description": "A file: its bytes as base64, and its name.",
    "properties": {
        "content": {"type": "string", "contentEncoding": "base64"},
        "filename": {"type": "string"},
        "content_type": {"type": "string"},
    },
    "required": ["content"],
    "additionalProperties": False,
}


FILE_PART = "file"
"""The part name a multipart body that is one binary string is sent under."""
_MAX_FILE_DEPTH = 8
"""Combinator and reference levels searched for multipart file fields."""


@dataclass(slots=True)
class Draft:
    """The schema and plan of one tool while it is being built."""

    properties: dict[str, Any] = field(default_factory=dict)
    required: list[str] = field(default_factory=list)
    params: list[ParamBinding] = field(default_factory=list)
    notes: list[Note] = field(default_factory=list)
    body: BodyPlan | None = None
    reserved: dict[str, str] = field(default_factory=dict)
    """Reserved headers the document requires, lowercased, with a value of the document's."""


def add_body(body: dict[str, Any], uri: str, b: Draft, defs: Definitions) -> None:
    """Add the request body's arguments and plan to the draft."""
    content = body.get("content")
    if not isinstance(content, dict) or not content:
        return
    choices = [(mt, m) for mt, m in content.items() if isinstance(mt, str)]
    if not choices:
        return
    ranked = sorted(enumerate(choices), key=lambda item: (_media_rank(item[1][0]), item[0]))
    media_type, media = ranked[0][1]
    skipped = [mt for mt, _ in choices if mt != media_type]
    if skipped:
        b.notes.append(
            Note(
                kind="media-type-skipped",
                message=f"request body sent as {media_type}; also offered as " + ", ".join(skipped),
            )
        )
    media = media if isinstance(media, dict) else {}
    kind = body_kind(media_type)
    required = body.get("required") is True
    found = defs.translate(media.get("schema", {}), uri)
    b.notes.extend(found.notes)
    schema = found.schema
    description = defs.text(body.get("description"))
    files: frozenset[str] = frozenset()
    if kind in ("json", "form", "multipart") and _holds_nothing(schema, defs):
        b.notes.append(
            Note(
                kind="empty-body",
                message=f"the {media_type} request body admits no fields; none is sent",
            )
        )
        return
    if kind == "multipart" and _is_file(_resolved(schema, defs)):
        _add_file_body(schema, media_type, media, required, b)
        return
    if kind in ("json", "form", "multipart"):
        if _flatten(schema, media_type, kind, media, required, b, defs):
            return
        if kind == "multipart":
            schema, files = _with_files(schema, defs)
            if files and not (isinstance(schema, dict) and "properties" in schema):
                combinators = sorted({"oneOf", "anyOf", "allOf"} & set(schema))
                b.notes.append(
                    Note(
                        kind="multipart-file",
                        message=f"the {media_type} body's file fields ({', '.join(sorted(files))}) "
                        "take {content (base64), filename, content_type} in every branch of "
                        f"its {'/'.join(combinators) or 'schema'}",
                    )
                )
    elif kind == "ndjson" and not (isinstance(schema, dict) and _is_array(schema, defs)):
        kind = "text"
        schema = schema if _is_string(schema) else {"type": "string"}
    elif kind == "ndjson":
        description = description or "The records to send, one JSON document per line."
    elif kind == "text":
        schema = schema if _is_string(schema) else {"type": "string"}
    else:
        schema = {"type": "string", "contentEncoding": "base64"}
        description = (
            f"{description} (the bytes, base64-encoded)"
            if description
            else (f"The {media_type} request body: its bytes, base64-encoded.")
        )
    argument = _free_argument("body", b.properties)
    if description and isinstance(schema, dict):
        schema = {**schema, "description": description}
    b.properties[argument] = schema
    if required:
        b.required.append(argument)
    b.body = BodyPlan(
        media_type=media_type,
        kind=kind,
        required=required,
        argument=argument,
        encoding=_encoding(media, schema, defs, files) if kind != "json" else (),
    )


def _add_file_body(
    schema: Any, media_type: str, media: dict[str, Any], required: bool, b: Draft
) -> None:
    """A multipart body that is one binary string: one file part, named `file`."""
    argument = _free_argument("file", b.properties)
    description = (schema.get("description") if isinstance(schema, dict) else None) or (
        f"The file the {media_type} body carries."
    )
    b.properties[argument] = {**FILE_SCHEMA, "description": description}
    if required:
        b.required.append(argument)
    rules = media.get("encoding")
    rule = rules.get("file") if isinstance(rules, dict) else None
    content_type = rule.get("contentType") if isinstance(rule, dict) else None
    encoding = FieldEncoding(
        content_type=content_type if isinstance(content_type, str) else None, is_file=True
    )
    b.body = BodyPlan(
        media_type=media_type,
        kind="multipart",
        required=required,
        argument=None,
        fields=((argument, FILE_PART),),
        encoding=((FILE_PART, encoding),),
    )
    b.notes.append(
        Note(
            kind="multipart-file",
            message=f"the {media_type} body is one binary string: the `{argument}` argument "
            "({content (base64), filename, content_type}) is sent as the file part "
            f"'{FILE_PART}'",
        )
    )


def _resolved(schema: Any, defs: Definitions) -> Any:
    if isinstance(schema, dict) and isinstance(schema.get("$ref"), str):
        return defs.content(schema["$ref"])
    return schema


def _holds_nothing(schema: Any, defs: Definitions) -> bool:
    """An object schema with no properties that admits no others (Stripe's GET bodies)."""
    if isinstance(schema, dict) and "$ref" in schema and len(schema) == 1:
        schema = defs.content(schema["$ref"])
    return (
        isinstance(schema, dict)
        and not schema.get("properties")
        and schema.get("additionalProperties") is False
        and not {"allOf", "anyOf", "oneOf", "patternProperties"} & schema.keys()
    )


BODY_WHOLE = frozenset(
    {
        *("allOf", "anyOf", "oneOf", "not", "if", "patternProperties", "$ref"),
        # what constrains the object as a whole, which its properties beside the parameters
        # could no longer say (`minProperties`, PATCH's "give one field at least", is the
        # exception: flattened, with a note, see _flatten)
        *("maxProperties", "dependentRequired", "dependentSchemas"),
        *("dependencies", "propertyNames", "unevaluatedProperties"),
    }
)
"""Keywords of a body schema that keep it one `body` argument rather than flattened."""


def _flatten(
    schema: Any,
    media_type: str,
    kind: BodyKind,
    media: dict[str, Any],
    required: bool,
    b: Draft,
    defs: Definitions,
) -> bool:
    """Put the body's properties beside the parameters, when nothing collides."""
    content = schema
    inlined: list[str] = []
    if isinstance(schema, dict) and "$ref" in schema:
        content = defs.content(schema["$ref"])
        inlined.append(schema["$ref"].rsplit("/", 1)[-1])
        extra = set(schema) - {"$ref", "description"}
        if extra:
            return False
    if not isinstance(content, dict):
        return False
    properties = content.get("properties")
    if not isinstance(properties, dict) or not properties:
        return False
    kinds = js.type_set(content)
    if kinds and kinds != {"object"}:
        return False
    if BODY_WHOLE & content.keys():
        return False
    if any(name not in properties for name in content.get("required") or ()):
        return False  # required, and undeclared: as one argument it can still be sent
    extra_props = content.get("additionalProperties")
    if extra_props not in (None, False) and kind == "json":
        return False
    if any(name in b.properties or not names.is_valid_property(name) for name in properties):
        return False
    if not required and content.get("required"):
        # An optional body whose fields are required when it is sent cannot be flattened
        # exactly: as one argument, "all or none" stays expressible.
        return False
    files: frozenset[str] = frozenset()
    if kind == "multipart":
        content, files = _with_files(content, defs)
        properties = content["properties"]
    b.notes.extend(defs.notes_for(inlined))
    least = content.get("minProperties")
    if isinstance(least, int) and least > 0:
        # PATCH bodies say "give one field at least" so: arguments beside the parameters
        # are worth more to a model than one `body` object, and the API still checks it.
        b.notes.append(
            Note(
                kind="body-constraint-unchecked",
                message=f"the body wants at least {least} of its fields given; the API checks "
                "that, not the gateway (they are arguments of their own here)",
            )
        )
    body_required = content.get("required") or []
    for name, sub in properties.items():
        b.properties[name] = sub
        if required and name in body_required:
            b.required.append(name)
    b.body = BodyPlan(
        media_type=media_type,
        kind=kind,
        required=required,
        argument=None,
        fields=tuple((name, name) for name in properties),
        encoding=_encoding(media, content, defs, files) if kind != "json" else (),
    )
    return True


# -- responses, descriptions, servers, security ------------------------------------


@lru_cache(maxsize=1024)
def body_kind(media_type: str) -> BodyKind:
    """How a request body of this media type is sent."""
    mt = media_type.split(";")[0].strip().lower()
    if mt in ("application/json", "*/*", "text/json") or mt.endswith(("+json", "/json")):
        return "json"
    if mt == "application/x-www-form-urlencoded":
        return "form"
    if mt.startswith("multipart/"):
        return "multipart"
    if mt in ("application/x-ndjson", "application/jsonl", "application/jsonlines"):
        return "ndjson"
    textual = ("xml", "yaml", "x-yaml", "sdp", "x-ndjson", "javascript", "graphql", "csv")
    if mt.startswith("text/") or mt.endswith(("+xml", "+yaml")) or mt.split("/")[-1] in textual:
        return "text"
    return "binary"


@lru_cache(maxsize=1024)
def _media_rank(media_type: str) -> int:
    mt = media_type.split(";")[0].strip().lower()
    kind = body_kind(mt)
    if kind == "json":
        return 0 if mt == "application/json" else 1 if mt != "*/*" else 2
    order: dict[str, int] = {"form": 3, "multipart": 4, "ndjson": 5, "text": 5, "binary": 7}
    rank = order[kind]
    return rank + 1 if kind == "text" and "xml" in mt else rank


def _is_array(schema: Any, defs: Definitions) -> bool:
    if isinstance(schema, dict) and "$ref" in schema:
        schema = defs.content(schema["$ref"])
    return isinstance(schema, dict) and js.type_set(schema) == {"array"}


def _is_string(schema: Any) -> bool:
    return isinstance(schema, dict) and js.type_set(schema) == {"string"}


def _is_file(schema: Any) -> bool:
    if not isinstance(schema, dict) or not js.type_set(schema) & {"string"}:
        return False
    return (
        schema.get("format") in ("binary", "byte", "base64")
        or "contentMediaType" in schema
        or schema.get("contentEncoding") in ("base64", "binary")
    )


def _optional_file(schema: Any, defs: Definitions) -> bool:
    """`anyOf`/`oneOf` of a file and null (`file: anyOf [{$ref: File}, {type: null}]`)."""
    if not isinstance(schema, dict):
        return False
    for key in ("anyOf", "oneOf"):
        branches = schema.get(key)
        if isinstance(branches, list):
            kept = [_resolved(b, defs) for b in branches]
            kept = [b for b in kept if not (isinstance(b, dict) and b.get("type") == "null")]
            return bool(kept) and all(_is_file(b) for b in kept)
    return False


def _with_files(schema: Any, defs: Definitions, depth: int = 0) -> tuple[Any, frozenset[str]]:
    """A multipart schema whose binary fields take FILE_SCHEMA, and the names of those fields.

    Fields inside `oneOf`/`anyOf`/`allOf` branches count too; a referenced definition that
    holds a file field is inlined with its files reshaped (the definition itself stays as it
    is for its other uses).
    """
    if isinstance(schema, dict) and isinstance(schema.get("$ref"), str):
        rewritten, found = _with_files(defs.content(schema["$ref"]), defs, depth + 1)
        if not found or not isinstance(rewritten, dict):
            return schema, frozenset()
        return {**rewritten, **{k: v for k, v in schema.items() if k != "$ref"}}, found
    if not isinstance(schema, dict) or depth > _MAX_FILE_DEPTH:
        return schema, frozenset()
    out = dict(schema)
    files: set[str] = set()
    if isinstance(schema.get("properties"), dict):
        properties = {}
        for name, sub in schema["properties"].items():
            target = _resolved(sub, defs)  # `file: {$ref: .../File}`, File a binary string
            if _is_file(target) or _optional_file(target, defs):
                description = (
                    (isinstance(sub, dict) and sub.get("description"))
                    or target.get("description")
                    or FILE_SCHEMA["description"]
                )
                sub = {**FILE_SCHEMA, "description": description}
                files.add(name)
            elif (
                isinstance(target, dict)
                and js.type_set(target) == {"array"}
                and _is_file(_resolved(target.get("items"), defs))
            ):
                sub = {**target, "items": FILE_SCHEMA}
                files.add(name)
            properties[name] = sub
        out["properties"] = properties
    for key in ("oneOf", "anyOf", "allOf"):
        branches = schema.get(key)
        if isinstance(branches, list):
            rewritten_branches = []
            for branch in branches:
                rewritten, found = _with_files(branch, defs, depth + 1)
                rewritten_branches.append(rewritten)
                files |= found
            out[key] = rewritten_branches
    return out, frozenset(files)


def _encoding(
    media: dict[str, Any], schema: Any, defs: Definitions, files: frozenset[str]
) -> tuple[tuple[str, FieldEncoding], ...]:
    """The `encoding` rules of a form or multipart body, per field that has any."""
    rules = media.get("encoding")
    if isinstance(schema, dict) and "$ref" in schema:
        schema = defs.content(schema["$ref"])
    props = schema.get("properties") if isinstance(schema, dict) else None
    fields = list(props) if isinstance(props, dict) else []
    fields += sorted(files - set(fields))  # file fields of `oneOf`/`anyOf`/`allOf` branches
    out = []
    for name in fields:
        rule = rules.get(name) if isinstance(rules, dict) else None
        rule = rule if isinstance(rule, dict) else {}
        style = rule.get("style")
        style = style if isinstance(style, str) else "form"
        explode = rule.get("explode")
        content_type = rule.get("contentType")
        encoding = FieldEncoding(
            content_type=content_type if isinstance(content_type, str) else None,
            style=style,
            explode=explode if isinstance(explode, bool) else style == "form",
            is_file=name in files,
        )
        if encoding != FieldEncoding():
            out.append((name, encoding))
    return tuple(out)


def _free_argument(wanted: str, taken: dict[str, Any]) -> str:
    for candidate in (wanted, f"request_{wanted}", f"{wanted}_"):
        if candidate not in taken:
            return candidate
    n = 2
    while f"{wanted}_{n}" in taken:
        n += 1
    return f"{wanted}_{n}"
