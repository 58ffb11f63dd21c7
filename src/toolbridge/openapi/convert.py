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
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, cast
from urllib.parse import urljoin, urlsplit

from toolbridge import names
from toolbridge import schemas as js
from toolbridge.errors import DocumentError
from toolbridge.openapi import swagger2
from toolbridge.openapi.bodies import Draft, add_body
from toolbridge.openapi.definitions import Definitions, References, RefError, Version
from toolbridge.openapi.documents import DocumentStore, uri_to_display
from toolbridge.openapi.responses import output_schema
from toolbridge.tools import (
    RESERVED_HEADERS,
    Annotations,
    HttpOperation,
    JsonSchema,
    Method,
    Note,
    ParamBinding,
    SecurityScheme,
    Tool,
)

METHODS: tuple[Method, ...] = ("GET", "PUT", "POST", "DELETE", "OPTIONS", "HEAD", "PATCH", "TRACE")
LOCATIONS = ("path", "query", "header", "cookie")
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
    security_schemes: Mapping[str, SecurityScheme] = field(default_factory=dict)
    """The schemes the document declares, by name (what credential goes where)."""


@dataclass(slots=True)
class _Operation:
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
    try:
        return _convert(store, uri, source, base_url, prefix, include, exclude)
    except RecursionError as exc:
        # JSON may nest up to orjson's 1024 levels; schemas that deep cannot be walked.
        raise DocumentError(uri_to_display(uri), "schemas nested too deeply to convert") from exc


def _convert(
    store: DocumentStore,
    uri: str,
    source: str,
    base_url: str | None,
    prefix: str,
    include: Selection | None,
    exclude: Selection | None,
) -> Conversion:
    document = store.get(uri).data
    display = uri_to_display(uri)
    if not isinstance(document, dict):
        raise DocumentError(display, "expected an OpenAPI document (a mapping) at the top level")
    version, notes = _version(document, display)
    converter = _Converter(store, uri, document, version, source, base_url)
    operations, path_notes = converter.operations()
    notes.extend(path_notes)
    notes.extend(_unexposed(document, operations))
    selected: list[_Operation] = []
    derived: set[str] = set()
    for op in operations:
        op_id = op.operation.get("operationId")
        op_id = op_id.strip() if isinstance(op_id, str) and op_id.strip() else None
        op.original = names.base_name(op_id, op.method, op.path)
        op.name = names.safe_name(op.original, method_path=op_id is None, prefix=prefix)
        plain = names.safe_name(op.original, method_path=op_id is None)
        tags = [t for t in op.operation.get("tags") or [] if isinstance(t, str)]
        keys = (op.original, plain, op.name)
        if include is not None and not include.matches(
            tags=tags, names=keys, method=op.method, path=op.path
        ):
            continue
        if exclude is not None and exclude.matches(
            tags=tags, names=keys, method=op.method, path=op.path
        ):
            continue
        if op_id is None:
            derived.add(op.where)
        selected.append(op)
    if operations and not selected:
        notes.append(
            Note(
                kind="nothing-selected",
                message=f"the include/exclude filters leave none of the {len(operations)} "
                "operations",
            )
        )
    assigned, name_notes = names.assign(
        (op.name, op.name if op.where in derived else _prefixed(prefix, op.original), op.where)
        for op in selected
    )
    by_where: dict[str, list[Note]] = {}
    for note in name_notes:
        by_where.setdefault(note.where, []).append(note)
    tools = []
    for op, name in zip(selected, assigned, strict=True):
        op.name = name
        op_notes = by_where.get(op.where, [])
        if op.where in derived:
            op_notes.insert(
                0,
                Note(
                    kind="name-derived",
                    message=f"no operationId: named {op.name!r} from its method and path",
                    where=op.where,
                ),
            )
        tools.append(converter.tool(op, op_notes))
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
        security_schemes=converter.security_schemes(),
    )


_TEMPLATE = re.compile(r"\{([^{}]+)\}")


def _match_template(path: str, b: Draft) -> None:
    """Make the path parameters and the path template agree, saying where they did not."""
    template = path.split("#", 1)[0]  # a fragment is never sent
    variables = list(dict.fromkeys(_TEMPLATE.findall(template)))
    declared = {p.name for p in b.params if p.location == "path"}
    for binding in [p for p in b.params if p.location == "path" and p.name not in variables]:
        b.params.remove(binding)
        b.properties.pop(binding.argument, None)
        b.required[:] = [r for r in b.required if r != binding.argument]
        b.notes.append(
            Note(
                kind="invalid-parameter",
                message=f"path parameter {binding.name!r} has no {{{binding.name}}} in the path "
                "template; not an argument",
            )
        )
    for variable in variables:
        if variable in declared:
            continue
        argument = variable if names.is_valid_property(variable) else f"path_{len(b.params)}"
        while argument in b.properties:
            argument = f"path_{argument}"
        b.properties[argument] = {
            "type": "string",
            "description": f"The {{{variable}}} of the path.",
        }
        b.required.append(argument)
        b.params.append(
            ParamBinding(argument=argument, name=variable, location="path", required=True)
        )
        b.notes.append(
            Note(
                kind="undeclared-path-parameter",
                message=f"the path template has {{{variable}}} but no parameter describes it; "
                f"it is the string argument {argument!r}",
            )
        )


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _slot_name(location: str, name: str) -> str:
    return name.lower() if location == "header" else name


def _prefixed(prefix: str, name: str) -> str:
    return f"{prefix}_{name}" if prefix else name


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


def _unexposed(document: dict[str, Any], operations: list[_Operation]) -> list[Note]:
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
        self._schemes: dict[str, dict[str, Any]] = {}

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
                found.append(_Operation(method, path, where, op, item, op_uri, item_uri))
        return found, notes

    # -- one operation to one tool -------------------------------------------------------

    def tool(self, op: _Operation, name_notes: list[Note]) -> Tool:
        b = Draft(notes=list(name_notes))
        operation = op.operation
        params, body = self._parameters_and_body(op, b)
        self._add_parameters(params, op.operation, b)
        _match_template(op.path, b)
        if body is not None:
            add_body(*body, b, self.request)
        input_schema: JsonSchema = {"type": "object", "properties": b.properties}
        if b.required:
            input_schema["required"] = b.required
        input_schema["additionalProperties"] = False
        refs = js.collect_refs(b.properties)
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
        responses = op.operation.get("responses")
        if self.version == "2.0":
            produces = op.operation.get("produces") or self.document.get("produces") or []
            produces = [p for p in produces if isinstance(p, str)]
            responses = swagger2.responses(responses, produces)
        output, accept = output_schema(responses, op.uri, self.refs, self.response, b)
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
            output_schema=output,
            annotations=annotations,
            tags=tuple(t for t in operation.get("tags") or () if isinstance(t, str)),
            source=self.source,
            target=target,
            deprecated=deprecated,
            notes=tuple(_unique_notes(b.notes, op.where)),
        )

    def _parameters_and_body(
        self, op: _Operation, b: Draft
    ) -> tuple[list[tuple[dict[str, Any], str]], tuple[dict[str, Any], str] | None]:
        """Path-level and operation-level parameters merged (the operation wins), and the body."""
        merged: dict[tuple[str, str], tuple[dict[str, Any], str]] = {}
        for raw_list, uri in (
            (op.path_item.get("parameters"), op.item_uri),
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
        self, params: list[tuple[dict[str, Any], str]], op: _Operation, b: Draft
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

    def _add_parameters(
        self, params: list[tuple[dict[str, Any], str]], operation: dict[str, Any], b: Draft
    ) -> None:
        kept: list[tuple[dict[str, Any], str]] = []
        credentials = self._api_key_slots(operation)
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
            if (location, _slot_name(location, param["name"])) in credentials:
                b.notes.append(
                    Note(
                        kind="credential-parameter",
                        message=f"{location} parameter {param['name']!r} carries the API key of "
                        "a security scheme: not an argument (credentials come from the "
                        "server's config)",
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
            style = param.get("style")
            style = style if isinstance(style, str) else default_style
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
        self, param: dict[str, Any], uri: str, b: Draft
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

    def _description(self, operation: dict[str, Any], op: _Operation, b: Draft) -> tuple[str, str]:
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

    def _api_key_slots(self, operation: dict[str, Any]) -> set[tuple[str, str]]:
        """Where the operation's apiKey security schemes put their keys: (location, name)."""
        slots: set[tuple[str, str]] = set()
        for alternative in self._security(operation):
            for scheme_name in alternative:
                scheme = self._schemes.get(scheme_name) or self._scheme(scheme_name)
                if scheme.get("type") == "apiKey" and isinstance(scheme.get("name"), str):
                    location = str(scheme.get("in"))
                    slots.add((location, _slot_name(location, scheme["name"])))
        return slots

    def _scheme(self, name: str) -> dict[str, Any]:
        if self.version == "2.0":
            schemes = self.document.get("securityDefinitions")
        else:
            components = self.document.get("components")
            schemes = components.get("securitySchemes") if isinstance(components, dict) else None
        scheme = schemes.get(name) if isinstance(schemes, dict) else None
        if isinstance(scheme, dict) and "$ref" in scheme:
            try:
                scheme = self.refs.follow(scheme["$ref"], self.uri)[0]
            except RefError:
                scheme = None
        self._schemes[name] = scheme if isinstance(scheme, dict) else {}
        return self._schemes[name]

    def security_schemes(self) -> dict[str, SecurityScheme]:
        if self.version == "2.0":
            declared = self.document.get("securityDefinitions")
        else:
            components = self.document.get("components")
            declared = components.get("securitySchemes") if isinstance(components, dict) else None
        out = {}
        for name in declared if isinstance(declared, dict) else ():
            raw = self._scheme(str(name))
            kind = raw.get("type")
            if not isinstance(kind, str):
                continue
            if kind == "basic":  # Swagger 2.0
                kind, raw = "http", {"scheme": "basic"}
            out[str(name)] = SecurityScheme(
                type=kind,
                location=_text(raw.get("in")),
                name=_text(raw.get("name")),
                scheme=(_text(raw.get("scheme")) or "").lower() or None,
            )
        return out

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
