"""Swagger 2.0 operations reshaped as OpenAPI 3.0 ones, so one converter serves both.

`formData` parameters become a form or multipart request body, a `body` parameter becomes
`requestBody`, `collectionFormat` becomes `style`/`explode`, response `schema`s get the
`produces` media types, and `host` + `basePath` + `schemes` become the server URL. Schemas are
left as they are: `definitions` and `keywords` read 2.0 schemas (`x-nullable`, `type: file`)
themselves.
"""

from __future__ import annotations

from typing import Any

from toolbridge.tools import Note

_SCHEMA_KEYS = (
    "type",
    "format",
    "items",
    "enum",
    "default",
    "minimum",
    "maximum",
    "exclusiveMinimum",
    "exclusiveMaximum",
    "minLength",
    "maxLength",
    "pattern",
    "minItems",
    "maxItems",
    "uniqueItems",
    "multipleOf",
    "x-nullable",
)

# collectionFormat -> (style, explode) for query parameters; other locations use `simple`.
_COLLECTION_STYLES = {
    "csv": ("form", False),
    "ssv": ("spaceDelimited", False),
    "pipes": ("pipeDelimited", False),
    "multi": ("form", True),
    "tsv": ("tabDelimited", False),
}


def parameter_schema(param: dict[str, Any]) -> dict[str, Any]:
    """The schema of a non-body 2.0 parameter, from its inline type keywords."""
    schema = {k: param[k] for k in _SCHEMA_KEYS if k in param}
    items = schema.get("items")
    if isinstance(items, dict):
        schema["items"] = {k: items[k] for k in _SCHEMA_KEYS if k in items} or items
    if "description" in param:
        schema["description"] = param["description"]
    return schema


def parameter(param: dict[str, Any]) -> tuple[dict[str, Any], list[Note]]:
    """A 2.0 path, query or header parameter as a 3.0 parameter."""
    notes: list[Note] = []
    out: dict[str, Any] = {
        k: param[k] for k in ("name", "in", "description", "required") if k in param
    }
    out["schema"] = parameter_schema(param)
    if param.get("type") == "array":
        fmt = param.get("collectionFormat", "csv")
        fmt = fmt if isinstance(fmt, str) else str(fmt)
        style, explode = _COLLECTION_STYLES.get(fmt, ("form", False))
        if fmt not in _COLLECTION_STYLES:
            notes.append(
                Note(
                    kind="invalid-parameter",
                    message=f"collectionFormat {fmt!r} of {param.get('name')!r} is unknown; "
                    "sent comma-separated",
                )
            )
        if param.get("in") == "query":
            out["style"], out["explode"] = style, explode
        elif param.get("in") == "header" and fmt in ("ssv", "pipes", "tsv"):
            # 3.x says `simple` (commas) for headers; 2.0 lets a header name its delimiter.
            out["style"], out["explode"] = style, False
        elif fmt == "multi":
            notes.append(
                Note(
                    kind="invalid-parameter",
                    message=f"collectionFormat multi is only valid in query; "
                    f"{param.get('name')!r} is sent comma-separated",
                )
            )
    return out, notes


def request_body(
    body_param: dict[str, Any] | None,
    form_params: list[dict[str, Any]],
    consumes: list[str],
) -> dict[str, Any] | None:
    """The 3.0 `requestBody` equivalent of a 2.0 body parameter or formData parameters."""
    if body_param is not None:
        media_types = [c for c in consumes if "form" not in c] or ["application/json"]
        body_schema = body_param.get("schema", {})
        out: dict[str, Any] = {
            "required": bool(body_param.get("required")),
            "content": {mt: {"schema": body_schema} for mt in media_types},
        }
        if "description" in body_param:
            out["description"] = body_param["description"]
        return out
    if not form_params:
        return None
    has_file = any(p.get("type") == "file" for p in form_params)
    if has_file or (
        "multipart/form-data" in consumes and ("application/x-www-form-urlencoded" not in consumes)
    ):
        media_type = "multipart/form-data"
    else:
        media_type = "application/x-www-form-urlencoded"
    properties: dict[str, Any] = {}
    required: list[str] = []
    encoding: dict[str, Any] = {}
    for param in form_params:
        name = param.get("name")
        if not isinstance(name, str):
            continue
        properties[name] = parameter_schema(param)
        if param.get("required"):
            required.append(name)
        if param.get("type") == "array":
            fmt = param.get("collectionFormat", "csv")
            fmt = fmt if isinstance(fmt, str) else str(fmt)
            style, explode = _COLLECTION_STYLES.get(fmt, ("form", False))
            encoding[name] = {"style": style, "explode": explode}
    schema: dict[str, Any] = {"type": "object", "properties": properties}
    if required:
        schema["required"] = required
    media: dict[str, Any] = {"schema": schema}
    if encoding:
        media["encoding"] = encoding
    return {"required": bool(required), "content": {media_type: media}}


def response_as_3(response: Any, produces: list[str]) -> Any:
    """One 2.0 response with its `schema` under `content` (a `$ref` or a non-mapping as is)."""
    if not isinstance(response, dict) or "$ref" in response:
        return response
    converted = {k: v for k, v in response.items() if k != "schema"}
    if "schema" in response:
        converted["content"] = {
            mt: {"schema": response["schema"]} for mt in produces or ["application/json"]
        }
    return converted


def server_url(document: dict[str, Any]) -> str | None:
    """`schemes` + `host` + `basePath` as one URL; a relative path when there is no host."""
    base_path = document.get("basePath")
    base_path = base_path if isinstance(base_path, str) else ""
    host = document.get("host")
    if not isinstance(host, str) or not host:
        return base_path or None
    schemes = [s for s in document.get("schemes") or [] if s in ("https", "http")]
    scheme = "https" if "https" in schemes or not schemes else schemes[0]
    return f"{scheme}://{host}{base_path}"
