"""An operation's parameters turned into arguments: merged, filtered, named, typed and bound.

Path-level and operation-level parameters are merged (the operation wins), Swagger 2.0 ones
reshaped as 3.x (`body`/`formData` becoming a request body), reserved headers and API-key
parameters left out with a note, and the path template and path parameters made to agree. The
request body's arguments are `bodies`' job; which parameters carry credentials is `security`'s.
"""

from __future__ import annotations

import re
from dataclasses import replace
from functools import lru_cache
from typing import Any

from toolbridge import names
from toolbridge.openapi import swagger2
from toolbridge.openapi.bodies import Draft
from toolbridge.openapi.definitions import Definitions
from toolbridge.openapi.references import References, RefError
from toolbridge.openapi.security import slot_name
from toolbridge.tools import RESERVED_HEADERS, Note, ParamBinding

Located = tuple[dict[str, Any], str]
"""A parameter or request body object, and the URI of the document it lives in."""

LOCATIONS = ("path", "query", "header", "cookie")
_RESERVED_WHY = {
    "authorization": "credentials come from the server's config",
    "proxy-authorization": "credentials come from the server's config",
    "cookie": "credentials come from the server's config",
    "content-type": "the gateway sets it from the request body",
    "accept": "the gateway sets it from the documented responses",
}
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


def merge(levels: tuple[tuple[Any, str], ...], refs: References, b: Draft) -> list[Located]:
    """The parameter lists of each level (path item, then operation) merged; later levels win."""
    found: dict[tuple[str, str], Located] = {}
    for raw_list, uri in levels:
        if not isinstance(raw_list, list):
            continue
        for raw in raw_list:
            param, param_uri = raw, uri
            if isinstance(raw, dict) and "$ref" in raw:
                try:
                    param, param_uri, _ = refs.follow(raw["$ref"], uri)
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
            found[(param["name"], str(param.get("in")))] = (param, param_uri)
    return list(found.values())


def from_swagger2(
    params: list[Located], consumes: list[str], uri: str, b: Draft, defs: Definitions
) -> tuple[list[Located], Located | None]:
    """2.0 parameters as 3.x ones, and the request body their `body` or `formData` ones make.

    Each parameter object is reshaped once per conversion (`defs.once`), so a parameter many
    operations share stays one object, translated once.
    """
    body_param = next(((p, u) for p, u in params if p.get("in") == "body"), None)
    form = [p for p, _ in params if p.get("in") == "formData"]
    out = []
    for param, param_uri in params:
        if param.get("in") in ("path", "query", "header"):
            converted, notes = defs.once(param, "swagger2", swagger2.parameter, param)
            out.append((converted, param_uri))
            b.notes.extend(notes)
    body = swagger2.request_body(body_param[0] if body_param else None, form, consumes)
    body_uri = body_param[1] if body_param else uri
    return out, (body, body_uri) if body is not None else None


def add_parameters(
    params: list[Located], credentials: set[tuple[str, str]], b: Draft, defs: Definitions
) -> None:
    """Add each parameter that is an argument to the draft: its schema and its binding."""
    kept: list[Located] = []
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
            lowered = param["name"].lower()
            why = _RESERVED_WHY.get(lowered, "the gateway sets it")
            if param.get("required") is True and lowered in _SENT_WHEN_REQUIRED:
                b.reserved[lowered] = _documented_value(param) or ""
                why += "; the document requires it, so the gateway always sends it"
            b.notes.append(
                Note(
                    kind="header-reserved",
                    message=f"header {param['name']!r} is not an argument: {why}",
                )
            )
            continue
        if (location, slot_name(location, param["name"])) in credentials:
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
    arguments, notes = defs.arguments(tuple((p["name"], p["in"]) for p, _ in kept))
    b.notes.extend(notes)
    for (param, uri), argument in zip(kept, arguments, strict=True):
        # A parameter many operations share is one object: planned once, its binding shared.
        schema, binding, schema_notes = defs.once(param, uri, _plan, param, uri, defs)
        b.notes.extend(schema_notes)
        b.properties[argument] = schema
        if binding.required:
            b.required.append(argument)
        b.params.append(
            binding if argument == binding.argument else replace(binding, argument=argument)
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


def match_template(path: str, b: Draft) -> None:
    """Make the path parameters and the path template agree, saying where they did not."""
    variables = _variables(path)
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


@lru_cache(maxsize=4096)
def _variables(path: str) -> tuple[str, ...]:
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
