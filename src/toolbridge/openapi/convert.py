"""An OpenAPI document (Swagger 2.0, OpenAPI 3.0, 3.1) turned into tools, one per operation.

Every operation becomes a `Tool` whose input schema holds its path, query, header and cookie
parameters and its request body, and whose `HttpOperation` records where each argument goes.
Whatever had to change on the way (a name, a skipped media type, an unresolved `$ref`) is a
`Note` on the tool or on the conversion. We parse and resolve references ourselves, because it
is an order of magnitude faster on large documents than going through openapi-core; spec
validation (openapi-spec-validator) is what `toolbridge check` reports, not a gate on loading,
and openapi-core is the oracle in tests that the requests we build conform. Here operations are
selected, named and assembled into tools; their parameters, servers, security, bodies, responses
and schemas are the modules of those names'.
"""

from __future__ import annotations

import fnmatch
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, cast
from urllib.parse import quote

from toolbridge import names
from toolbridge import schemas as js
from toolbridge.bulk import collector_paused
from toolbridge.errors import DocumentError
from toolbridge.openapi import parameters, security
from toolbridge.openapi.bodies import Draft
from toolbridge.openapi.definitions import Definitions, Names, Version
from toolbridge.openapi.documents import DocumentStore, uri_to_display
from toolbridge.openapi.inputs import InputSides
from toolbridge.openapi.operations import Operation, find_operations, strings, unexposed
from toolbridge.openapi.references import References
from toolbridge.openapi.responses import Outputs
from toolbridge.openapi.servers import NO_BASE_URL, server_url
from toolbridge.openapi.soundness import Soundness
from toolbridge.tools import (
    Annotations,
    BodyPlan,
    HttpOperation,
    Note,
    SecurityScheme,
    Tool,
)
from toolbridge.upstream.credentials import carried
from toolbridge.upstream.destinations import Destinations

logger = logging.getLogger(__name__)


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
    fixed: Mapping[tuple[str, str], Mapping[str, Any]] = field(default_factory=dict)
    """Per operation (method, path), the arguments its calls are given by the server's config
    (`arguments`), set where a server loads (`fixed_arguments`): they stay with these tools
    while a reload that fails keeps them. Never packed: the config's values, secrets maybe."""


@dataclass(frozen=True, slots=True, kw_only=True)
class _Document:
    """What every operation of one document shares while it is converted."""

    uri: str
    data: dict[str, Any]
    version: Version
    source: str
    base_url: str | None
    refs: References
    request: Definitions
    response: Definitions
    schemes: dict[str, dict[str, Any]]
    """The declared security schemes, by name, `$ref`s followed."""
    params: parameters.Parameters
    inputs: InputSides
    outputs: Outputs
    soundness: Soundness
    produces: list[str]
    """The document's own `produces` (2.0), for operations without theirs."""
    slots: dict[tuple[tuple[str, ...], ...], set[tuple[str, str]]]
    """Where each security requirement's API keys go (`security.api_key_slots`), by value."""
    annotations: dict[tuple[str, str], Annotations]
    requirements: dict[int, tuple[tuple[str, ...], ...]]
    """Each security list's requirements, by identity (the document's lists live as long)."""
    server_urls: dict[tuple[int, int] | None, str | None]
    """Each choice of `servers` (the operation's, the path item's, by identity): its URL."""


def convert(
    store: DocumentStore,
    uri: str,
    *,
    source: str = "api",
    base_url: str | None = None,
    prefix: str = "",
    include: Selection | None = None,
    exclude: Selection | None = None,
    destinations: Destinations | None = None,
    supplied: frozenset[tuple[str, str]] = frozenset(),
) -> Conversion:
    """Load the document at `uri` and turn each (selected) operation into a tool.

    `destinations`: the hosts remote `$ref`s may be fetched from (a server's policy); without
    it, the document's own origin only. `supplied`: (location, slot) of the values the server's
    config sends itself (`upstream.credentials.supplied_slots`), which are no arguments.
    """
    try:
        with collector_paused(), store.tracking() as read:
            found = _convert(
                store, uri, source, base_url, prefix, include, exclude, destinations, supplied
            )
        duplicates = duplicate_notes(store, read)
        return replace(found, notes=found.notes + duplicates) if duplicates else found
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
    destinations: Destinations | None,
    supplied: frozenset[tuple[str, str]],
) -> Conversion:
    document = store.get(uri).data
    display = uri_to_display(uri)
    if not isinstance(document, dict):
        raise DocumentError(display, "expected an OpenAPI document (a mapping) at the top level")
    version, notes = _version(document, display)
    refs = References(store, uri, destinations)
    shared = Names()  # one name per schema in both directions: what translates alike is shared
    request = Definitions(refs, version, "request", shared)
    response = Definitions(refs, version, "response", shared)
    params = parameters.Parameters(refs, request, supplied)
    soundness = Soundness()
    doc = _Document(
        uri=uri,
        data=document,
        version=version,
        source=source,
        base_url=base_url,
        refs=refs,
        request=request,
        response=response,
        schemes=security.declared(document, version, refs, uri),
        params=params,
        inputs=InputSides(params, request, soundness, version, strings(document.get("consumes"))),
        outputs=Outputs(refs, response),
        soundness=soundness,
        produces=strings(document.get("produces")),
        slots={},
        annotations={},
        requirements={},
        server_urls={},
    )
    operations, path_notes = find_operations(document, uri, refs)
    notes.extend(path_notes)
    notes.extend(unexposed(document, operations))
    selected: list[Operation] = []
    derived: set[str] = set()
    for op in operations:
        op_id = op.operation.get("operationId")
        op_id = op_id.strip() if isinstance(op_id, str) and op_id.strip() else None
        op.original = names.base_name(op_id, op.method, op.path)
        op.name = names.safe_name(op.original, method_path=op_id is None, prefix=prefix)
        if include is not None or exclude is not None:
            plain = names.safe_name(op.original, method_path=op_id is None)
            tags = _tags(op.operation)
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
        try:
            tools.append(_tool(doc, op, op_notes))
        except Exception as exc:  # a bug of ours meets a document: one operation is lost
            notes.append(_failed(op, exc))
    if base_url is None and any(tool.http.base_url is None for tool in tools):
        notes.append(Note(kind="no-base-url", message=NO_BASE_URL))
    schemes = security.security_schemes(doc.schemes)
    notes += [
        Note(
            kind="invalid-document",
            message=f"apiKey scheme {key!r} puts its key in {scheme.location} {scheme.name!r}, "
            "where no request can carry one: it takes no key",
        )
        for key, scheme in schemes.items()
        if scheme.type == "apiKey"
        and scheme.location in ("header", "query", "cookie")
        and scheme.name
        and not carried(scheme.location, scheme.name)
    ]
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
        security_schemes=schemes,
    )


def duplicate_notes(store: DocumentStore, uris: set[str]) -> tuple[Note, ...]:
    """One note per key given twice in one mapping of the documents read, located at
    its mapping (the JSON pointer as a URI fragment: percent-encoded, so no key the document
    chose can break the line it is printed on)."""
    notes = []
    for uri in sorted(uris):
        try:
            document = store.get(uri)
        except DocumentError:
            continue  # not read: its error is reported where it was needed
        display = uri_to_display(uri)
        for d in document.duplicate_keys:
            if d.kept_line != d.dropped_line:
                kept, dropped = f"line {d.kept_line}", f"line {d.dropped_line}"
                both = "lines {} and {}".format(*sorted((d.kept_line, d.dropped_line)))
            else:
                kept, dropped = f"column {d.kept_column}", f"column {d.dropped_column}"
                columns = sorted((d.kept_column, d.dropped_column))
                both = "line {}, columns {} and {}".format(d.kept_line, *columns)
            more = f"; {d.more} more keys are given twice after it" if d.more else ""
            notes.append(
                Note(
                    kind="duplicate-key",
                    message=f"key {d.key!r} is given twice in one mapping ({both}): the value "
                    f"at {kept} is read, the one at {dropped} dropped{more}",
                    where=f"{display}#{quote(d.pointer, safe=POINTER_SAFE)}",
                )
            )
    return tuple(notes)


POINTER_SAFE = "/~!$&'()*+,;=:@-._"
"""What a JSON pointer keeps as it is in a URI fragment (RFC 6901 section 6); the rest is
percent-encoded (a space, `#`, `%`, `{`, line breaks, any non-ASCII)."""


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


def _tool(doc: _Document, op: Operation, name_notes: list[Note]) -> Tool:
    b = Draft(notes=list(name_notes))
    operation = op.operation
    requirements = _requirements(doc, operation)
    credentials = doc.slots.get(requirements)
    if credentials is None:
        credentials = doc.slots[requirements] = security.api_key_slots(requirements, doc.schemes)
    read, inputs = doc.inputs.of(op, requirements, credentials)
    b.notes.extend(read)
    b.notes.extend(inputs.notes)
    produces = None
    if doc.version == "2.0":
        produces = strings(op.operation.get("produces")) or doc.produces
    output, accept = doc.outputs.output(operation.get("responses"), op.uri, b, produces)
    b.notes.extend(inputs.problems)
    if output is not None:
        output, problems = doc.soundness.output_schema(output)
        b.notes.extend(problems)
    b.notes.extend(_malformed(operation))
    description, summary = _description(operation, op, b)
    deprecated = operation.get("deprecated") is True
    method = op.method
    annotations = doc.annotations.get((summary, method))
    if annotations is None:  # the same for every operation of a method and summary: shared
        annotations = doc.annotations[(summary, method)] = Annotations(
            title=summary or None,
            read_only=method in ("GET", "HEAD", "OPTIONS"),
            destructive=method == "DELETE",
            idempotent=method in ("GET", "HEAD", "OPTIONS", "PUT", "DELETE"),
            open_world=True,
        )
    op_id = operation.get("operationId")
    target = HttpOperation(
        server=doc.source,
        method=method,
        path=op.path,
        base_url=doc.base_url or _server_url(doc, op),
        operation_id=op_id if isinstance(op_id, str) else None,
        params=inputs.params,
        body=inputs.body,
        accept=accept or _required_accept(inputs.reserved),
        security=requirements,
        required_headers=_required_headers(inputs.reserved, inputs.body),
    )
    return Tool(
        name=op.name,
        original_name=op.original,
        description=description,
        input_schema=inputs.schema,
        output_schema=output,
        annotations=annotations,
        tags=tuple(_tags(operation)),
        source=doc.source,
        target=target,
        deprecated=deprecated,
        notes=tuple(_unique_notes(b.notes, op.where)),
    )


def _requirements(doc: _Document, operation: dict[str, Any]) -> tuple[tuple[str, ...], ...]:
    """`security.requirements`, once for each security list (most operations share the
    document's)."""
    raw = operation.get("security", doc.data.get("security"))
    found = doc.requirements.get(id(raw))
    if found is None:
        found = doc.requirements[id(raw)] = security.requirements(operation, doc.data)
    return found


def _server_url(doc: _Document, op: Operation) -> str | None:
    """`server_url`, once for each choice of `servers` it can make (2.0: one)."""
    key = (
        None
        if doc.version == "2.0"
        else (id(op.operation.get("servers")), id(op.path_item.get("servers")))
    )
    if key in doc.server_urls:
        return doc.server_urls[key]
    found = doc.server_urls[key] = server_url(
        op.operation, op.path_item, doc.data, doc.version, doc.uri
    )
    return found


def _description(operation: dict[str, Any], op: Operation, b: Draft) -> tuple[str, str]:
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


def _failed(op: Operation, exc: Exception) -> Note:
    """The note for an operation whose conversion raised: it is left out, the rest converts."""
    logger.warning("%s: converting %s failed", op.uri, op.where, exc_info=exc)
    return Note(
        kind="conversion-failed",
        message=f"this operation could not be converted ({type(exc).__name__}: "
        f"{str(exc)[:200]}); it is not a tool",
        where=op.where,
    )


_LISTS = ("tags", "produces", "consumes", "parameters", "security", "servers")
_TEXTS = ("summary", "description", "operationId")


def _malformed(operation: dict[str, Any]) -> list[Note]:
    """A note for each field of the operation that is not of its kind (and so was ignored)."""
    notes = []
    for key in _LISTS:
        value = operation.get(key)
        if value is not None and not isinstance(value, list):
            found = js.kind_of(value)
            notes.append(
                Note(kind="invalid-operation", message=f"{key}: expected a list, found {found}")
            )
    for key in _TEXTS:
        value = operation.get(key)
        if value is not None and not isinstance(value, str):
            found = js.kind_of(value)
            notes.append(
                Note(kind="invalid-operation", message=f"{key}: expected a string, found {found}")
            )
    return notes


def _tags(operation: dict[str, Any]) -> list[str]:
    return strings(operation.get("tags"))


def _prefixed(prefix: str, name: str) -> str:
    return f"{prefix}_{name}" if prefix else name


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


def _required_accept(reserved: dict[str, str]) -> str | None:
    """The Accept a document requires but whose responses name no media type: its own value,
    else `*/*`."""
    return (reserved["accept"] or "*/*") if "accept" in reserved else None


def _required_headers(
    reserved: dict[str, str], body: BodyPlan | None
) -> tuple[tuple[str, str], ...]:
    """Content-Length and Content-Type the document requires, with what to send when the
    request has no body (`0`; the documented type, else the body's media type)."""
    out = []
    if "content-length" in reserved:
        out.append(("content-length", "0"))
    if "content-type" in reserved:
        fallback = body.media_type if body and "*" not in body.media_type else ""
        out.append(("content-type", reserved["content-type"] or fallback or "application/json"))
    return tuple(out)
