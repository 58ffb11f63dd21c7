"""An OpenAPI document (Swagger 2.0, OpenAPI 3.0, 3.1) turned into tools, one per operation.

Every operation becomes a `Tool` whose input schema holds its path, query, header and cookie
parameters and its request body, and whose `HttpOperation` records where each argument goes.
Whatever had to change on the way (a name, a skipped media type, an unresolved `$ref`) is a
`Note` on the tool or on the conversion. We parse and resolve references ourselves, because it
is an order of magnitude faster on large documents than going through openapi-core; spec
validation (openapi-spec-validator) is what `toolbridge check` reports, not a gate on loading,
and openapi-core is the oracle in tests that the requests we build conform.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field
from typing import Any, cast
from urllib.parse import urljoin, urlsplit

from . import names, swagger2
from . import schemas as js
from .definitions import Definitions, Found, References, RefError, Version
from .documents import DocumentStore, uri_to_display
from .errors import DocumentError
from .tools import (
    Annotations,
    BodyKind,
    BodyPlan,
    FieldEncoding,
    HttpOperation,
    JsonSchema,
    Method,
    Note,
    ParamBinding,
    Tool,
)

METHODS: tuple[Method, ...] = ("GET", "PUT", "POST", "DELETE", "OPTIONS", "HEAD", "PATCH", "TRACE")
LOCATIONS = ("path", "query", "header", "cookie")
RESERVED_HEADERS = frozenset(
    {
        "authorization",
        "proxy-authorization",
        "cookie",
        "host",
        "content-length",
        "transfer-encoding",
        "connection",
        "content-type",
        "accept",
    }
)
"""Headers the gateway sets itself: credentials, framing, and what the body and Accept imply."""
_RESERVED_WHY = {
    "authorization": "credentials come from the server's config",
    "proxy-authorization": "credentials come from the server's config",
    "cookie": "credentials come from the server's config",
    "content-type": "the gateway sets it from the request body",
    "accept": "the gateway sets it from the documented responses",
}
MAX_OUTPUT_DEFS = 48
"""Output schemas referring to more definitions than this are shortened to their top level."""
SUCCESS_CODES = ("200", "201", "202", "203", "206", "2XX", "2xx")

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


@dataclass(frozen=True, slots=True, kw_only=True)
class Selection:
    """A filter on operations: each given criterion must match (any of its values)."""

    tags: tuple[str, ...] = ()
    operations: tuple[str, ...] = ()
    """Globs over the operationId or the tool name."""
    methods: tuple[str, ...] = ()
    paths: tuple[str, ...] = ()
    """Globs over the path template (`/pets/*`)."""

    def matches(self, *, tags: list[str], names: tuple[str, ...], method: str, path: str) -> bool:
        if self.tags and not set(self.tags) & set(tags):
            return False
        if self.operations and not any(
            fnmatch.fnmatchcase(name, glob) for glob in self.operations for name in names
        ):
            return False
        if self.methods and method.upper() not in {m.upper() for m in self.methods}:
            return False
        return not self.paths or any(fnmatch.fnmatchcase(path, glob) for glob in self.paths)


@dataclass(frozen=True, slots=True, kw_only=True)
class Conversion:
    """What one OpenAPI document turned into."""

    source: str
    uri: str
    title: str
    spec_version: str
    operations: int
    """Operations in the document (before filters)."""
    tools: tuple[Tool, ...]
    notes: tuple[Note, ...] = ()
    """Notes about the document as a whole; each tool carries its own."""
    filtered: int = 0


@dataclass(slots=True)
class _Operation:
    method: Method
    path: str
    where: str
    operation: dict[str, Any]
    path_item: dict[str, Any]
    uri: str
    """The document the operation object lives in (for relative `$ref`s)."""
    name: str = ""
    original: str = ""


@dataclass(slots=True)
class _Builder:
    """The schema and plan of one tool while it is being built."""

    properties: dict[str, Any] = field(default_factory=dict)
    required: list[str] = field(default_factory=list)
    params: list[ParamBinding] = field(default_factory=list)
    notes: list[Note] = field(default_factory=list)
    body: BodyPlan | None = None


def convert(
    store: DocumentStore,
    uri: str,
    *,
    source: str = "api",
    base_url: str | None = None,
    prefix: str = "",
    include: Selection | None = None,
    exclude: Selection | None = None,
) -> Conversion:
    """Load the document at `uri` and turn each (selected) operation into a tool."""
    document = store.get(uri).data
    display = uri_to_display(uri)
    if not isinstance(document, dict):
        raise DocumentError(display, "expected an OpenAPI document (a mapping) at the top level")
    version, notes = _version(document, display)
    converter = _Converter(store, uri, document, version, source, base_url)
    operations, path_notes = converter.operations()
    notes.extend(path_notes)
    notes.extend(_unexposed(document))
    selected: list[_Operation] = []
    for op in operations:
        op_id = op.operation.get("operationId")
        op.original = names.base_name(op_id if isinstance(op_id, str) else None, op.method, op.path)
        plain = names.safe_name(op.original, method_path=op.original != op_id)
        tags = [t for t in op.operation.get("tags") or [] if isinstance(t, str)]
        keys = (op.original, plain)
        kw = {"tags": tags, "names": keys, "method": op.method, "path": op.path}
        if include is not None and not include.matches(**kw):  # type: ignore[arg-type]
            continue
        if exclude is not None and exclude.matches(**kw):  # type: ignore[arg-type]
            continue
        op.name = names.safe_name(op.original, method_path=op.original != op_id, prefix=prefix)
        selected.append(op)
    assigned, name_notes = names.assign(
        (op.name, f"{prefix}_{op.original}" if prefix else op.original, op.where) for op in selected
    )
    by_where: dict[str, list[Note]] = {}
    for note in name_notes:
        by_where.setdefault(note.where, []).append(note)
    tools = []
    for op, name in zip(selected, assigned, strict=True):
        op.name = name
        tools.append(converter.tool(op, by_where.get(op.where, [])))
    info = document.get("info") if isinstance(document.get("info"), dict) else {}
    title = js.clean_text(cast(dict[str, Any], info).get("title") or display, 200)[0]
    return Conversion(
        source=source,
        uri=uri,
        title=title,
        spec_version=str(document.get("openapi") or document.get("swagger")),
        operations=len(operations),
        tools=tuple(tools),
        notes=tuple(notes),
        filtered=len(operations) - len(selected),
    )


def _version(document: dict[str, Any], display: str) -> tuple[Version, list[Note]]:
    if "swagger" in document:
        if str(document["swagger"]) != "2.0":
            raise DocumentError(display, f"swagger {document['swagger']!r}; expected '2.0'")
        return "2.0", []
    raw = document.get("openapi")
    if not isinstance(raw, str):
        raise DocumentError(
            display, "expected a top-level 'openapi' (3.x) or 'swagger' (2.0) version field"
        )
    if raw.startswith("3.0"):
        return "3.0", []
    if raw.startswith("3.1"):
        return "3.1", []
    if raw.startswith("3."):
        note = Note(kind="version", message=f"OpenAPI {raw} is read as 3.1")
        return "3.1", [note]
    raise DocumentError(display, f"openapi {raw!r}; expected 2.0, 3.0.x or 3.1.x")


def _unexposed(document: dict[str, Any]) -> list[Note]:
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
    return notes


class _Converter:
    def __init__(
        self,
        store: DocumentStore,
        uri: str,
        document: dict[str, Any],
        version: Version,
        source: str,
        base_url: str | None,
    ) -> None:
        self.store = store
        self.uri = uri
        self.document = document
        self.version = version
        self.source = source
        self.base_url = base_url
        self.refs = References(store, uri)
        self.request = Definitions(self.refs, version, "request")
        self.response = Definitions(self.refs, version, "response")

    # -- finding operations --------------------------------------------------------------

    def operations(self) -> tuple[list[_Operation], list[Note]]:
        paths = self.document.get("paths")
        notes: list[Note] = []
        found: list[_Operation] = []
        if paths is None:
            return found, notes
        if not isinstance(paths, dict):
            notes.append(Note(kind="invalid-document", message="'paths' is not a mapping"))
            return found, notes
        for path, item in paths.items():
            if not isinstance(path, str) or path.startswith("x-"):
                continue
            item_uri = self.uri
            if isinstance(item, dict) and "$ref" in item:
                try:
                    item, item_uri, _ = self.refs.follow(item["$ref"], self.uri)
                except RefError as exc:
                    notes.append(
                        Note(
                            kind="unresolved-ref",
                            message=f"the path item cannot be read ({exc}); "
                            "its operations are unknown",
                            where=path,
                        )
                    )
                    continue
            if not isinstance(item, dict):
                continue
            for method in METHODS:
                op = item.get(method.lower())
                if op is None:
                    continue
                op_uri = item_uri
                where = f"{method} {path}"
                if isinstance(op, dict) and "$ref" in op:
                    try:
                        op, op_uri, _ = self.refs.follow(op["$ref"], item_uri)
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
                found.append(_Operation(method, path, where, op, item, op_uri))
        return found, notes

    # -- one operation to one tool -------------------------------------------------------

    def tool(self, op: _Operation, name_notes: list[Note]) -> Tool:
        b = _Builder(notes=list(name_notes))
        operation = op.operation
        params, body = self._parameters_and_body(op, b)
        self._add_parameters(params, b)
        if body is not None:
            self._add_body(*body, b)
        input_schema: JsonSchema = {"type": "object", "properties": b.properties}
        if b.required:
            input_schema["required"] = b.required
        input_schema["additionalProperties"] = False
        refs = _collect_refs(b.properties)
        if refs:
            input_schema["$defs"] = self.request.closure(refs)
            b.notes.extend(self.request.notes_for(input_schema["$defs"]))
            cyclic = self.request.recursive(input_schema["$defs"])
            if cyclic:
                b.notes.append(
                    Note(
                        kind="cycle",
                        message="recursive schema(s) kept as references in $defs: "
                        + ", ".join(cyclic[:5])
                        + ("" if len(cyclic) <= 5 else f" and {len(cyclic) - 5} more"),
                    )
                )
        output_schema, accept = self._output(op, b)
        description, summary = self._description(operation, op, b)
        deprecated = operation.get("deprecated") is True
        method = op.method
        annotations = Annotations(
            title=summary or None,
            read_only=method in ("GET", "HEAD", "OPTIONS"),
            destructive=method == "DELETE",
            idempotent=method in ("GET", "HEAD", "OPTIONS", "PUT", "DELETE"),
            open_world=True,
        )
        op_id = operation.get("operationId")
        target = HttpOperation(
            server=self.source,
            method=method,
            path=op.path,
            base_url=self.base_url or self._server_url(op),
            operation_id=op_id if isinstance(op_id, str) else None,
            params=tuple(b.params),
            body=b.body,
            accept=accept,
            security=self._security(operation),
        )
        return Tool(
            name=op.name,
            original_name=op.original,
            description=description,
            input_schema=input_schema,
            output_schema=output_schema,
            annotations=annotations,
            tags=tuple(t for t in operation.get("tags") or () if isinstance(t, str)),
            source=self.source,
            target=target,
            deprecated=deprecated,
            notes=tuple(_unique_notes(b.notes, op.where)),
        )

    def _parameters_and_body(
        self, op: _Operation, b: _Builder
    ) -> tuple[list[tuple[dict[str, Any], str]], tuple[dict[str, Any], str] | None]:
        """Path-level and operation-level parameters merged (the operation wins), and the body."""
        merged: dict[tuple[str, str], tuple[dict[str, Any], str]] = {}
        for raw_list, uri in (
            (op.path_item.get("parameters"), self.uri),
            (op.operation.get("parameters"), op.uri),
        ):
            if not isinstance(raw_list, list):
                continue
            for raw in raw_list:
                param, param_uri = raw, uri
                if isinstance(raw, dict) and "$ref" in raw:
                    try:
                        param, param_uri, _ = self.refs.follow(raw["$ref"], uri)
                    except RefError as exc:
                        b.notes.append(
                            Note(
                                kind="unresolved-ref",
                                message=f"a parameter cannot be read ({exc}); left out",
                            )
                        )
                        continue
                if not isinstance(param, dict) or not isinstance(param.get("name"), str):
                    continue
                merged[(param["name"], str(param.get("in")))] = (param, param_uri)
        params = list(merged.values())
        if self.version == "2.0":
            return self._swagger2(params, op, b)
        body = op.operation.get("requestBody")
        body_uri = op.uri
        if isinstance(body, dict) and "$ref" in body:
            try:
                body, body_uri, _ = self.refs.follow(body["$ref"], op.uri)
            except RefError as exc:
                b.notes.append(
                    Note(
                        kind="unresolved-ref",
                        message=f"the request body cannot be read ({exc}); the tool sends none",
                    )
                )
                body = None
        return params, (body, body_uri) if isinstance(body, dict) else None

    def _swagger2(
        self, params: list[tuple[dict[str, Any], str]], op: _Operation, b: _Builder
    ) -> tuple[list[tuple[dict[str, Any], str]], tuple[dict[str, Any], str] | None]:
        consumes = op.operation.get("consumes") or self.document.get("consumes") or []
        consumes = [c for c in consumes if isinstance(c, str)]
        body_param = next(((p, u) for p, u in params if p.get("in") == "body"), None)
        form = [p for p, _ in params if p.get("in") == "formData"]
        out = []
        for param, uri in params:
            if param.get("in") in ("path", "query", "header"):
                converted, notes = swagger2.parameter(param)
                out.append((converted, uri))
                b.notes.extend(notes)
        body = swagger2.request_body(body_param[0] if body_param else None, form, consumes)
        body_uri = body_param[1] if body_param else op.uri
        return out, (body, body_uri) if body is not None else None

    def _add_parameters(self, params: list[tuple[dict[str, Any], str]], b: _Builder) -> None:
        kept: list[tuple[dict[str, Any], str]] = []
        for param, uri in params:
            location = param.get("in")
            if location not in LOCATIONS:
                b.notes.append(
                    Note(
                        kind="invalid-parameter",
                        message=f"parameter {param['name']!r} is 'in: {location}'; "
                        f"expected one of {', '.join(LOCATIONS)}; left out",
                    )
                )
                continue
            if location == "header" and param["name"].lower() in RESERVED_HEADERS:
                b.notes.append(
                    Note(
                        kind="header-reserved",
                        message=f"header {param['name']!r} is not an argument: "
                        + _RESERVED_WHY.get(param["name"].lower(), "the gateway sets it"),
                    )
                )
                continue
            kept.append((param, uri))
        kept.sort(key=lambda item: LOCATIONS.index(item[0]["in"]))
        arguments, notes = names.argument_names((p["name"], p["in"]) for p, _ in kept)
        b.notes.extend(notes)
        for (param, uri), argument in zip(kept, arguments, strict=True):
            location = param["in"]
            schema, content_type = self._parameter_schema(param, uri, b)
            required = location == "path" or param.get("required") is True
            default_style = "form" if location in ("query", "cookie") else "simple"
            style = param.get("style") if isinstance(param.get("style"), str) else default_style
            explode = param.get("explode")
            b.properties[argument] = schema
            if required:
                b.required.append(argument)
            b.params.append(
                ParamBinding(
                    argument=argument,
                    name=param["name"],
                    location=location,
                    required=required,
                    style=style,
                    explode=explode if isinstance(explode, bool) else style == "form",
                    allow_reserved=param.get("allowReserved") is True,
                    content_type=content_type,
                )
            )

    def _parameter_schema(
        self, param: dict[str, Any], uri: str, b: _Builder
    ) -> tuple[Any, str | None]:
        content_type = None
        raw = param.get("schema")
        content = param.get("content")
        if raw is None and isinstance(content, dict) and content:
            content_type, media = next(iter(content.items()))
            raw = media.get("schema") if isinstance(media, dict) else None
        found = self.request.translate(raw if raw is not None else {}, uri)
        b.notes.extend(found.notes)
        schema = found.schema
        extra: dict[str, Any] = {}
        text = js.clean_text(param.get("description"))[0]
        if text:
            extra["description"] = text
        if param.get("deprecated") is True:
            extra["deprecated"] = True
        example = param.get("example")
        if isinstance(example, str | int | float | bool) and not isinstance(schema, bool):
            extra["examples"] = [example]
        if extra:
            schema = {**schema, **extra} if isinstance(schema, dict) else extra
        return schema, content_type if isinstance(content_type, str) else None

    def _add_body(self, body: dict[str, Any], uri: str, b: _Builder) -> None:
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
                    message=f"request body sent as {media_type}; also offered as "
                    + ", ".join(skipped),
                )
            )
        media = media if isinstance(media, dict) else {}
        kind = body_kind(media_type)
        required = body.get("required") is True
        found = self.request.translate(media.get("schema", {}), uri)
        b.notes.extend(found.notes)
        schema = found.schema
        description = js.clean_text(body.get("description"))[0]
        if kind in ("json", "form", "multipart"):
            if self._flatten(schema, media_type, kind, media, required, b):
                return
            if kind == "multipart":
                schema = _with_files(schema, self.request)
        elif kind == "text":
            schema = schema if _is_string(schema) else {"type": "string"}
        else:
            schema = {"type": "string", "contentEncoding": "base64"}
            description = f"{description} (the bytes as base64)".strip()
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
            encoding=_encoding(media, schema, self.request) if kind != "json" else (),
        )

    def _flatten(
        self,
        schema: Any,
        media_type: str,
        kind: BodyKind,
        media: dict[str, Any],
        required: bool,
        b: _Builder,
    ) -> bool:
        """Put the body's properties beside the parameters, when nothing collides."""
        content = schema
        if isinstance(schema, dict) and "$ref" in schema:
            content = self.request.content(schema["$ref"])
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
        blockers = {"allOf", "anyOf", "oneOf", "not", "if", "patternProperties", "$ref"}
        if blockers & content.keys():
            return False
        extra_props = content.get("additionalProperties")
        if extra_props not in (None, False) and kind == "json":
            return False
        if any(name in b.properties or not names.is_valid_property(name) for name in properties):
            return False
        if kind == "multipart":
            content = _with_files(content, self.request)
            properties = content["properties"]
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
            encoding=_encoding(media, content, self.request) if kind != "json" else (),
        )
        return True

    # -- responses, descriptions, servers, security ------------------------------------

    def _output(self, op: _Operation, b: _Builder) -> tuple[JsonSchema | None, str | None]:
        responses = op.operation.get("responses")
        if self.version == "2.0":
            produces = op.operation.get("produces") or self.document.get("produces") or []
            responses = swagger2.responses(responses, [p for p in produces if isinstance(p, str)])
        if not isinstance(responses, dict):
            return None, None
        keys = {str(k): v for k, v in responses.items()}
        code = next((c for c in SUCCESS_CODES if c in keys), None)
        if code is None:
            code = next((c for c in sorted(keys) if c.startswith("2")), None)
        if code is None:
            return None, None
        response = keys[code]
        response_uri = op.uri
        if isinstance(response, dict) and "$ref" in response:
            try:
                response, response_uri, _ = self.refs.follow(response["$ref"], op.uri)
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
        found = self.response.translate(media["schema"], response_uri)
        b.notes.extend(found.notes)
        return self._bounded_output(found, b), accept

    def _bounded_output(self, found: Found, b: _Builder) -> JsonSchema | None:
        schema = found.schema
        if not isinstance(schema, dict):
            return None
        refs = _collect_refs(schema)
        if not refs:
            return schema
        defs = self.response.closure(refs)
        b.notes.extend(self.response.notes_for(defs))
        if len(defs) <= MAX_OUTPUT_DEFS:
            return {**schema, "$defs": defs}
        top = self.response.content(schema["$ref"]) if "$ref" in schema else schema
        if not isinstance(top, dict):
            return None
        b.notes.append(
            Note(
                kind="output-schema-shortened",
                message=f"the output schema refers to {len(defs)} schemas "
                f"(more than {MAX_OUTPUT_DEFS}); only its top level is described",
            )
        )
        return cast(JsonSchema, _strip_refs(top))

    def _description(
        self, operation: dict[str, Any], op: _Operation, b: _Builder
    ) -> tuple[str, str]:
        summary = js.clean_text(operation.get("summary"), 200)[0]
        description = js.clean_text(operation.get("description"), 100_000)[0]
        parts = [summary] if summary else []
        if description and description != summary:
            parts.append(description)
        text = "\n\n".join(parts) or f"{op.method} {op.path}"
        if operation.get("deprecated") is True:
            text = f"(Deprecated) {text}"
        final, cut = js.clean_text(text)
        if cut:
            b.notes.append(
                Note(
                    kind="description-shortened",
                    message=f"description cut from {len(text)} to {js.MAX_DESCRIPTION} characters",
                )
            )
        return final, summary

    def _server_url(self, op: _Operation) -> str | None:
        if self.version == "2.0":
            url = swagger2.server_url(self.document)
        else:
            url = None
            for holder in (op.operation, op.path_item, self.document):
                servers = holder.get("servers")
                if isinstance(servers, list) and servers and isinstance(servers[0], dict):
                    url = _expand_server(servers[0])
                    break
        if url is None:
            return None
        if urlsplit(self.uri).scheme in ("http", "https"):
            return urljoin(self.uri, url)
        return url

    def _security(self, operation: dict[str, Any]) -> tuple[tuple[str, ...], ...]:
        raw = operation.get("security", self.document.get("security"))
        if not isinstance(raw, list):
            return ()
        return tuple(
            tuple(str(k) for k in requirement)
            for requirement in raw
            if isinstance(requirement, dict)
        )


# -- small pure helpers -------------------------------------------------------------------


def body_kind(media_type: str) -> BodyKind:
    """How a request body of this media type is sent."""
    mt = media_type.split(";")[0].strip().lower()
    if mt in ("application/json", "*/*", "text/json") or mt.endswith(("+json", "/json")):
        return "json"
    if mt == "application/x-www-form-urlencoded":
        return "form"
    if mt.startswith("multipart/"):
        return "multipart"
    textual = ("xml", "yaml", "x-yaml", "sdp", "x-ndjson", "javascript", "graphql", "csv")
    if mt.startswith("text/") or mt.endswith(("+xml", "+yaml")) or mt.split("/")[-1] in textual:
        return "text"
    return "binary"


def _media_rank(media_type: str) -> int:
    mt = media_type.split(";")[0].strip().lower()
    kind = body_kind(mt)
    if kind == "json":
        return 0 if mt == "application/json" else 1 if mt != "*/*" else 2
    order: dict[str, int] = {"form": 3, "multipart": 4, "text": 5, "binary": 7}
    rank = order[kind]
    return rank + 1 if kind == "text" and "xml" in mt else rank


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


def _with_files(schema: Any, defs: Definitions) -> Any:
    """A multipart schema whose binary fields take FILE_SCHEMA (base64 content and a filename)."""
    if isinstance(schema, dict) and "$ref" in schema:
        schema = defs.content(schema["$ref"])
    if not isinstance(schema, dict) or not isinstance(schema.get("properties"), dict):
        return schema
    properties = {}
    for name, sub in schema["properties"].items():
        if _is_file(sub):
            sub = {
                **FILE_SCHEMA,
                "description": sub.get("description") or FILE_SCHEMA["description"],
            }
        elif isinstance(sub, dict) and js.type_set(sub) == {"array"} and _is_file(sub.get("items")):
            sub = {**sub, "items": FILE_SCHEMA}
        properties[name] = sub
    return {**schema, "properties": properties}


def _encoding(
    media: dict[str, Any], schema: Any, defs: Definitions
) -> tuple[tuple[str, FieldEncoding], ...]:
    raw = media.get("encoding") if isinstance(media.get("encoding"), dict) else {}
    if isinstance(schema, dict) and "$ref" in schema:
        schema = defs.content(schema["$ref"])
    props = schema.get("properties") if isinstance(schema, dict) else None
    fields = list(props) if isinstance(props, dict) else []
    out = []
    for name in fields:
        rule = raw.get(name) if isinstance(raw.get(name), dict) else {}
        sub = props[name] if props else None
        is_file = sub is FILE_SCHEMA or (
            isinstance(sub, dict)
            and (
                sub.get("properties") == FILE_SCHEMA["properties"]
                or (
                    isinstance(sub.get("items"), dict)
                    and sub["items"].get("properties") == FILE_SCHEMA["properties"]
                )
            )
        )
        style = rule.get("style") if isinstance(rule.get("style"), str) else "form"
        explode = rule.get("explode")
        encoding = FieldEncoding(
            content_type=rule.get("contentType")
            if isinstance(rule.get("contentType"), str)
            else None,
            style=style,
            explode=explode if isinstance(explode, bool) else style == "form",
            is_file=is_file,
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


def _expand_server(server: dict[str, Any]) -> str | None:
    url = server.get("url")
    if not isinstance(url, str):
        return None
    variables = server.get("variables")
    if isinstance(variables, dict):
        for name, variable in variables.items():
            if isinstance(variable, dict) and "default" in variable:
                url = url.replace("{" + str(name) + "}", str(variable["default"]))
    return url


def _collect_refs(schema: Any) -> set[str]:
    """The `$defs` names a schema refers to, outside of any `$defs` it holds."""
    found: set[str] = set()
    stack = [schema]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/$defs/"):
                found.add(ref[8:])
            stack.extend(v for k, v in node.items() if k != "$defs" and isinstance(v, dict | list))
        elif isinstance(node, list):
            stack.extend(v for v in node if isinstance(v, dict | list))
    return found


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


def _unique_notes(notes: list[Note], where: str) -> list[Note]:
    seen: set[tuple[str, str]] = set()
    out = []
    for note in notes:
        key = (note.kind, note.message)
        if key in seen:
            continue
        seen.add(key)
        out.append(note if note.where else Note(kind=note.kind, message=note.message, where=where))
    return out
