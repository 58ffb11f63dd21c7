"""An operation's parameters turned into arguments: merged, filtered, named, typed and bound.

Path-level and operation-level parameters are merged (the operation wins), Swagger 2.0 ones
reshaped as 3.x (`body`/`formData` becoming a request body), reserved headers and API-key
parameters left out with a note, and the path template and path parameters made to agree. The
request body's arguments are `bodies`' job; which parameters carry credentials is `security`'s.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from functools import lru_cache
from typing import Any

from toolbridge import names
from toolbridge import schemas as js
from toolbridge.openapi import swagger2
from toolbridge.openapi.bodies import Draft
from toolbridge.openapi.definitions import Definitions
from toolbridge.openapi.references import References, RefError
from toolbridge.openapi.security import slot_name
from toolbridge.schemas import json_kind
from toolbridge.tools import HEADER_NAME, RESERVED_HEADERS, Note, ParamBinding

Located = tuple[dict[str, Any], str]
"""A parameter or request body object, and the URI of the document it lives in."""

LOCATIONS = ("path", "query", "header", "cookie")
_ORDER = {location: order for order, location in enumerate(LOCATIONS)}
_ABSENT: Any = object()
_RESERVED_WHY = {
    "authorization": "credentials come from the server's config",
    "proxy-authorization": "credentials come from the server's config",
    "cookie": "credentials come from the server's config",
    "content-type": "the gateway sets it from the request body",
    "accept": "the gateway sets it from the documented responses",
    "host": "the gateway sets it from the server's URL",
    "expect": "the gateway sends a request's body at once, without asking first",
}
_CONNECTION_WHY = "it belongs to the gateway's own connection to the upstream, which sets it"
_TEMPLATE = re.compile(r"\{([^{}]+)\}")
_SENT_WHEN_REQUIRED = frozenset({"content-length", "content-type", "accept"})
"""Reserved headers a document may require that the gateway can always send a correct value of
(`Content-Length: 0` for no body; the documented `Content-Type` and `Accept`)."""


def _documented_value(param: dict[str, Any]) -> str | None:
    """The one value a header parameter's schema names (`const`, first `enum`, `default`, an
    `example`), when it is a plain string without CR or LF."""
    schema = param.get("schema")
    schema = schema if isinstance(schema, dict) else {}
    enum = schema.get("enum")
    candidates = [
        schema.get("const"),
        enum[0] if isinstance(enum, list) and enum else None,
        schema.get("default"),
        param.get("example"),
        schema.get("example"),
    ]
    for value in candidates:
        if isinstance(value, str) and value and not any(c in value for c in "\r\n\0"):
            return value
    return None


@dataclass(slots=True, eq=False)
class Param:
    """A parameter object as operations find it (its `$ref` followed), and what is worked out
    for it once per conversion: where it sorts, its 3.x shape (2.0), its schema and binding."""

    param: dict[str, Any]
    uri: str
    """The document the parameter object lives in."""
    name: str
    location: Any
    """Its `in`, as written (anything: `add` says so when it is no location)."""
    key: tuple[str, str]
    """What `merge` tells parameters apart by: an operation's parameter replaces its path
    item's of the same name and location."""
    order: int | None
    """Its location's place in `LOCATIONS` (arguments are sorted by it), None for no location."""
    slot: str
    """Its name as API keys are compared with it (headers ignore case)."""
    shape: Param | None = None
    """2.0: the parameter reshaped as 3.x (3.x: itself), once it is needed."""
    shape_notes: list[Note] = field(default_factory=list)
    plan: tuple[Any, ParamBinding, list[Note]] | None = None
    """Its schema, binding and notes (`_plan`), once it is an argument somewhere."""


class Parameters:
    """The parameter objects of one conversion, each read once.

    Operations name the same few parameters over and over (Kubernetes: 8,849 uses of 1,172
    objects), so following a `$ref`, reshaping a 2.0 parameter and planning its argument are
    done at its first use, and each later use is a lookup. Planning stays at first use, in
    operation order, because it names the `$defs` it translates.
    """

    def __init__(
        self,
        refs: References,
        defs: Definitions,
        supplied: frozenset[tuple[str, str]] = frozenset(),
    ) -> None:
        self.refs = refs
        self.defs = defs
        self.supplied = frozenset((where, slot_name(where, name)) for where, name in supplied)
        """(location, slot) of each value the server's config sends with every request (its
        `headers`, its `auth`'s key): a parameter there is not an argument."""
        self._by_ref: dict[tuple[str, str], Param | Note | None] = {}
        self._params: dict[tuple[int, str], tuple[object, Param | None]] = {}
        """By identity of a parameter object (kept alive here) and its document."""
        self._contents: dict[tuple[str, bytes], Param | None] = {}
        """By the JSON of a parameter object and its document: documents write the same
        parameter out at many operations (Kubernetes: 1,172 objects, 126 different), and
        what is worked out for one is the same for every copy."""

    def merge(self, levels: tuple[tuple[Any, str], ...], b: Draft) -> list[Param]:
        """The parameter lists of each level (path item, then operation) merged; later levels
        win. A `$ref` that cannot be followed is a note, at each use."""
        found: dict[tuple[str, str], Param] = {}
        for raw_list, uri in levels:
            if not isinstance(raw_list, list):
                continue
            for raw in raw_list:
                if isinstance(raw, dict) and "$ref" in raw:
                    ref = raw["$ref"]
                    if type(ref) is str:
                        key = (ref, uri)
                        followed = self._by_ref.get(key, _ABSENT)
                        if followed is _ABSENT:
                            followed = self._by_ref[key] = self._follow(ref, uri)
                    else:
                        followed = self._follow(ref, uri)
                    if isinstance(followed, Note):
                        b.notes.append(followed)
                        continue
                    entry = followed
                else:
                    entry = self.param(raw, uri)
                if entry is not None:
                    found[entry.key] = entry
                else:
                    b.notes.append(_nameless(raw))
        return list(found.values())

    def param(self, param: Any, uri: str) -> Param | None:
        """The `Param` of a parameter object found in the document at `uri` (None when it is
        no parameter: not a mapping, or no name)."""
        key = (id(param), uri)
        known = self._params.get(key)
        if known is not None and known[0] is param:
            return known[1]
        text = js.plain_json(param)
        if text is None:
            found = _param(param, uri)
        else:
            found = self._contents.get((uri, text), _ABSENT)
            if found is _ABSENT:
                found = self._contents[(uri, text)] = _param(param, uri)
        self._params[key] = (param, found)
        return found

    def _follow(self, ref: Any, uri: str) -> Param | Note | None:
        try:
            param, param_uri, _ = self.refs.follow(ref, uri)
        except RefError as exc:
            return Note(
                kind="unresolved-ref", message=f"a parameter cannot be read ({exc}); left out"
            )
        return self.param(param, param_uri)

    def from_swagger2(
        self, params: list[Param], consumes: list[str], uri: str, b: Draft
    ) -> tuple[list[Param], Located | None]:
        """2.0 parameters as 3.x ones, and the request body their `body` or `formData` ones
        make. Each parameter object is reshaped once per conversion (`defs.once`)."""
        body_param: Param | None = None
        form = []
        out = []
        for entry in params:
            location = entry.location
            if location in ("path", "query", "header"):
                shape = entry.shape
                if shape is None:
                    shape = self._reshaped(entry)
                out.append(shape)
                if entry.shape_notes:
                    b.notes.extend(entry.shape_notes)
            elif location == "body":
                if body_param is None:
                    body_param = entry
            elif location == "formData":
                form.append(entry.param)
        body_object = body_param.param if body_param is not None else None
        if body_object is not None and form:
            names = ", ".join(repr(f.get("name")) for f in form)
            b.notes.append(
                Note(
                    kind="invalid-parameter",
                    message=f"formData parameter(s) {names} left out: a Swagger 2.0 operation "
                    "takes a body or form fields, not both; the body is sent",
                )
            )
            form = []
        body = swagger2.request_body(body_object, form, consumes)
        body_uri = body_param.uri if body_param is not None else uri
        return out, (body, body_uri) if body is not None else None

    def _reshaped(self, entry: Param) -> Param:
        converted, notes = self.defs.once(entry.param, "swagger2", swagger2.parameter, entry.param)
        shape = self.param(converted, entry.uri)
        assert shape is not None  # a reshaped parameter keeps its name and location
        entry.shape, entry.shape_notes = shape, notes
        return shape

    def add(self, params: list[Param], credentials: set[tuple[str, str]], b: Draft) -> None:
        """Add each parameter that is an argument to the draft: its schema and its binding."""
        kept: list[Param] = []
        ordered = True
        for entry in params:
            order = entry.order
            if order is None:
                b.notes.append(
                    Note(
                        kind="invalid-parameter",
                        message=f"parameter {entry.name!r} is 'in: {entry.location}'; "
                        f"expected one of {', '.join(LOCATIONS)}; left out",
                    )
                )
                continue
            location = entry.location
            if location == "header" and not HEADER_NAME.fullmatch(entry.name):
                b.notes.append(
                    Note(
                        kind="invalid-parameter",
                        message=f"header parameter {entry.name!r} is not a header name (an "
                        "RFC 9110 token: letters, digits and !#$%&'*+-.^_`|~); left out",
                    )
                )
                continue
            if location == "header" and entry.slot in RESERVED_HEADERS:
                _reserved(entry, b)
                continue
            if credentials and (location, entry.slot) in credentials:
                b.notes.append(
                    Note(
                        kind="credential-parameter",
                        message=f"{location} parameter {entry.name!r} carries the API key of "
                        "a security scheme: not an argument (credentials come from the "
                        "server's config)",
                    )
                )
                continue
            if (location, entry.slot) in self.supplied:
                b.notes.append(
                    Note(
                        kind="configured-parameter",
                        message=f"{location} parameter {entry.name!r} is sent as the server's "
                        "config sets it (`headers` or `auth`): not an argument",
                    )
                )
                continue
            if kept and order < kept[-1].order:  # type: ignore[operator]
                ordered = False
            kept.append(entry)
        if not ordered:
            kept.sort(key=_by_order)  # stable: the document's order within each location
        defs = self.defs
        arguments, notes = defs.arguments(tuple([(e.name, e.location) for e in kept]))
        if notes:
            b.notes.extend(notes)
        properties, required, bindings = b.properties, b.required, b.params
        for entry, argument in zip(kept, arguments, strict=True):
            plan = entry.plan
            if plan is None:
                # A parameter many operations share is one object: planned once.
                plan = entry.plan = defs.once(
                    entry.param, entry.uri, _plan, entry.param, entry.uri, defs
                )
            schema, binding, schema_notes = plan
            if schema_notes:
                b.notes.extend(schema_notes)
            properties[argument] = schema
            if binding.required:
                required.append(argument)
            bindings.append(
                binding if argument == binding.argument else replace(binding, argument=argument)
            )


def _param(param: Any, uri: str) -> Param | None:
    if not isinstance(param, dict):
        return None
    name = param.get("name")
    if not isinstance(name, str):
        return None
    location = param.get("in")
    text = location if isinstance(location, str) else str(location)
    return Param(
        param=param,
        uri=uri,
        name=name,
        location=location,
        key=(name, text),
        order=_ORDER.get(text) if isinstance(location, str) else None,
        slot=slot_name(text, name),
    )


def _nameless(raw: Any) -> Note:
    """The note for a parameter that is no object with a string `name`: it cannot be an
    argument, and is left out, said so rather than silently."""
    if isinstance(raw, dict):
        name = raw.get("name")
        found = "no `name`" if name is None else f"a `name` that is {json_kind(name)}"
        where = f" (in: {raw['in']})" if isinstance(raw.get("in"), str) else ""
    else:
        found, where = json_kind(raw), ""
    return Note(
        kind="invalid-parameter",
        message=f"a parameter{where} with {found}; expected an object with a string `name`; "
        "left out",
    )


def _by_order(entry: Param) -> int:
    return entry.order or 0


def _reserved(entry: Param, b: Draft) -> None:
    """A reserved header is not an argument; one the document requires is always sent."""
    lowered = entry.slot
    why = _RESERVED_WHY.get(lowered, _CONNECTION_WHY)
    if entry.param.get("required") is True and lowered in _SENT_WHEN_REQUIRED:
        b.reserved[lowered] = _documented_value(entry.param) or ""
        why += "; the document requires it, so the gateway always sends it"
    b.notes.append(
        Note(kind="header-reserved", message=f"header {entry.name!r} is not an argument: {why}")
    )


def _plan(
    param: dict[str, Any], uri: str, defs: Definitions
) -> tuple[Any, ParamBinding, list[Note]]:
    """A parameter's schema and binding (its argument named as the parameter), and notes."""
    location = param["in"]
    schema, content_type, notes = _parameter_schema(param, uri, defs)
    default_style = "form" if location in ("query", "cookie") else "simple"
    style = param.get("style")
    style = style if isinstance(style, str) else default_style
    if style not in _STYLES.get(location, (style,)):
        listed = ", ".join(_STYLES[location])
        notes.append(
            Note(
                kind="invalid-parameter",
                message=f"style {style!r} of {param['name']!r} is none of a {location} "
                f"parameter's ({listed}); sent as {default_style!r}",
            )
        )
        style = default_style
    explode = param.get("explode")
    binding = ParamBinding(
        argument=param["name"],
        name=param["name"],
        location=location,
        required=location == "path" or param.get("required") is True,
        style=style,
        explode=explode if isinstance(explode, bool) else style == "form",
        allow_reserved=param.get("allowReserved") is True,
        content_type=content_type,
    )
    return schema, binding, notes


_DELIMITED = ("spaceDelimited", "pipeDelimited", "tabDelimited")
_STYLES = {
    "query": ("form", *_DELIMITED, "deepObject"),
    "path": ("simple", "label", "matrix"),
    "header": ("simple", *_DELIMITED),  # delimited: a Swagger 2.0 collectionFormat
    "cookie": ("form",),
}
"""The styles OpenAPI defines for each location (tabDelimited: 2.0's tsv)."""


def match_template(path: str, b: Draft) -> None:
    """Make the path parameters and the path template agree, saying where they did not."""
    in_path = variables(path)
    declared = {p.name for p in b.params if p.location == "path"}
    for binding in [p for p in b.params if p.location == "path" and p.name not in in_path]:
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
    for variable in in_path:
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


@lru_cache(maxsize=4096)
def variables(path: str) -> tuple[str, ...]:
    """The `{name}`s of a path template, in order, once each (a fragment is never sent)."""
    return tuple(dict.fromkeys(_TEMPLATE.findall(path.split("#", 1)[0])))


def _parameter_schema(
    param: dict[str, Any], uri: str, defs: Definitions
) -> tuple[Any, str | None, list[Note]]:
    content_type = None
    raw = param.get("schema")
    content = param.get("content")
    if raw is None and isinstance(content, dict) and content:
        content_type, media = next(iter(content.items()))
        raw = media.get("schema") if isinstance(media, dict) else None
    found = defs.translate(raw if raw is not None else {}, uri)
    schema = found.schema
    extra: dict[str, Any] = {}
    text = defs.text(param.get("description"))
    if text:
        extra["description"] = text
    if param.get("deprecated") is True:
        extra["deprecated"] = True
    example = param.get("example")
    if isinstance(example, str | int | float | bool) and not isinstance(schema, bool):
        extra["examples"] = [example]
    if extra:
        schema = {**schema, **extra} if isinstance(schema, dict) else extra
    return schema, content_type if isinstance(content_type, str) else None, found.notes
