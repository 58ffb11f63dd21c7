"""How one argument value is spelled in a path, query, header, cookie or form field: OpenAPI's
styles (simple, label, matrix, form, delimited, deepObject), the JSON spelling of primitives, and
percent-encoding. `Unsendable` marks a value that has no spelling. Nothing here places a value in
a request (`request`) or encodes a whole body (`request_body`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from toolbridge.json_text import dumps
from toolbridge.tools import ParamBinding
from toolbridge.upstream.media_types import is_json_type

_UNRESERVED = "-._~"  # with ASCII letters and digits, which `quote` never encodes
_QUERY_RESERVED_OK = ":/?[]@!$'()*,;"  # reserved characters `allowReserved` lets through
# `&`, `=`, `#` and `+` stay encoded even then: literally they would split or end the query.
_COOKIE_SAFE = "!#$&'()*+-./:<=>?@[]^_`{|}~"  # RFC 6265 cookie-octets, less `%`
_DELIMITERS = {"spaceDelimited": "%20", "pipeDelimited": "|", "tabDelimited": "%09"}
_HEADER_DELIMITERS = {"spaceDelimited": " ", "pipeDelimited": "|", "tabDelimited": "\t"}
"""A header list's delimiter by style: what a Swagger 2.0 `collectionFormat` says (not encoded)."""
Pairs = list[tuple[str, str]]
T = TypeVar("T")
Encode = Callable[[str], str]


# -- the styles ---------------------------------------------------------------------------


def path_value(b: ParamBinding, value: Any) -> str:
    """Path styles simple, label and matrix (OpenAPI's style tables), every value encoded."""
    if b.style == "simple" and b.content_type is None and type(value) in (str, int):
        return path_enc(str(value))  # the common case: one plain value, spelled as in JSON
    if b.content_type is not None:
        return path_enc(_content_text(b.content_type, value))
    e = path_enc
    name = e(b.name)
    if b.style == "matrix":
        if isinstance(value, dict):
            if b.explode:
                return "".join(f";{e(k)}={e(text_of(v))}" for k, v in value.items())
            return f";{name}=" + ",".join(f"{e(k)},{e(text_of(v))}" for k, v in value.items())
        if isinstance(value, list | tuple):
            if b.explode:
                return "".join(f";{name}={e(text_of(v))}" for v in value)
            return f";{name}=" + ",".join(e(text_of(v)) for v in value)
        text = e(text_of(value))
        return f";{name}={text}" if text else f";{name}"
    label = b.style == "label"
    separator = "." if label and b.explode else ","
    if isinstance(value, dict):
        pairs = (
            f"{e(k)}={e(text_of(v))}" if b.explode else f"{e(k)},{e(text_of(v))}"
            for k, v in value.items()
        )
        joined = separator.join(pairs)
    elif isinstance(value, list | tuple):
        joined = separator.join(e(text_of(v)) for v in value)
    else:
        joined = e(text_of(value))
    return "." + joined if label else joined


def styled_pairs(
    name: str, value: Any, style: str, explode: bool, content_type: str | None, e: Encode
) -> Pairs:
    """Query and form-field styles: form, space/pipe/tab-delimited, deepObject."""
    key = e(name)
    if isinstance(value, str) and content_type is None:
        return [(key, e(value))]  # one string reads the same in every style
    if content_type is not None:
        return [(key, e(_content_text(content_type, value)))]
    if style == "deepObject" and isinstance(value, dict | list | tuple):
        return _deep_pairs(key, value, e)
    delimiter = _DELIMITERS.get(style, ",") if not explode else None
    if isinstance(value, dict):
        if delimiter is None:
            return [(e(k), e(text_of(v))) for k, v in value.items()]
        return [
            (key, delimiter.join(f"{e(k)}{delimiter}{e(text_of(v))}" for k, v in value.items()))
        ]
    if isinstance(value, list | tuple):
        if delimiter is None:
            return [(key, e(text_of(v))) for v in value]
        return [(key, delimiter.join(e(text_of(v)) for v in value))]
    return [(key, e(text_of(value)))]


def _deep_pairs(prefix: str, value: Any, e: Encode) -> Pairs:
    """deepObject as Stripe and Rails read it: `a[b][c]=v`, arrays indexed `a[0]=v`."""
    if isinstance(value, dict):
        items: Iterable[tuple[str, Any]] = ((e(str(k)), v) for k, v in value.items())
    elif isinstance(value, list | tuple):
        items = ((str(i), v) for i, v in enumerate(value))
    else:
        return [(prefix, e(text_of(value)))]
    out: Pairs = []
    for key, item in items:
        out.extend(_deep_pairs(f"{prefix}%5B{key}%5D", item, e))
    return out


def header_value(b: ParamBinding, value: Any) -> str:
    if b.content_type is not None:
        return _content_text(b.content_type, value)
    if isinstance(value, dict):
        pair = "{}={}" if b.explode else "{},{}"
        return ",".join(pair.format(k, text_of(v)) for k, v in value.items())
    if isinstance(value, list | tuple):
        # `simple`'s commas, or the delimiter a 2.0 `collectionFormat` names (pipes, ssv, tsv)
        return _HEADER_DELIMITERS.get(b.style, ",").join(text_of(v) for v in value)
    return text_of(value)


# -- values -------------------------------------------------------------------------------


class Unsendable(Exception):
    """A value that cannot be serialized as the plan says (becomes InvalidArguments)."""

    def __init__(self, where: str, message: str) -> None:
        super().__init__(message)
        self.where = where
        self.message = message


def attempt(
    argument: str, problems: list[tuple[str, str]], build: Callable[..., T], *args: Any
) -> T | None:
    """`build(*args)`, or None with the problem recorded under the argument's JSON path."""
    try:
        return build(*args)
    except Unsendable as exc:
        problems.append((f"$.{argument}", exc.message))
        return None


def text_of(value: Any) -> str:
    """A primitive as it appears in a URL, header or form: JSON spelling for non-strings."""
    if isinstance(value, str):
        return value
    if value is True:
        return "true"
    if value is False:
        return "false"
    if value is None:
        return ""
    if isinstance(value, int | float):
        return dumps(whole_numbers(value)).decode()
    if isinstance(value, dict | list | tuple):
        # a nested structure the style cannot spell
        return dumps(whole_numbers(value)).decode()
    raise Unsendable("", f"expected a JSON value, found {kind_of(value)}")


MAX_EXACT = 2**53
"""Floats up to this are integers exactly; larger ones are sent as they are."""
MAX_DEPTH = 256
"""How deep `whole_numbers` looks (deeper JSON cannot be written anyway)."""


def whole_numbers(value: Any, depth: int = 0) -> Any:
    """`value` with each float that is a whole number (`5.0`, as JSON parsers read `5.0` or
    `1e3`) as an integer: the same number, spelled as an API that wants an integer reads it
    (`?limit=5`, not `5.0`). The same object, nothing copied, when there is none."""
    if isinstance(value, float):
        return int(value) if value.is_integer() and abs(value) <= MAX_EXACT else value
    if depth >= MAX_DEPTH or not isinstance(value, dict | list | tuple):
        return value
    pairs = value.items() if isinstance(value, dict) else enumerate(value)
    copied: Any = None
    for key, item in pairs:
        mended = whole_numbers(item, depth + 1)
        if mended is not item:
            if copied is None:
                copied = dict(value) if isinstance(value, dict) else list(value)
            copied[key] = mended
    return value if copied is None else copied


def _content_text(content_type: str, value: Any) -> str:
    """A parameter described by `content`: JSON-encoded when its media type is JSON."""
    if is_json_type(content_type):
        return dumps(whole_numbers(value)).decode()
    return text_of(value)


def kind_of(value: Any) -> str:
    names = {dict: "an object", list: "an array", str: "a string", bool: "a boolean"}
    return names.get(type(value), type(value).__name__)


def _escaped(run: re.Match[str]) -> str:
    return "".join([f"%{byte:02X}" for byte in run.group().encode("utf-8")])


def _percent_encoder(safe: str) -> Encode:
    """`quote(text, safe=safe)` (UTF-8, upper-case hex), but one regular-expression pass that
    calls back only for the runs of characters to escape: most values have none or few."""
    unsafe = re.compile("[^A-Za-z0-9" + re.escape(safe) + "]+")
    return lambda text: unsafe.sub(_escaped, text)


path_enc = _percent_encoder(_UNRESERVED)
_reserved_enc = _percent_encoder(_UNRESERVED + _QUERY_RESERVED_OK)
cookie_enc = _percent_encoder(_COOKIE_SAFE)


def query_enc(allow_reserved: bool) -> Encode:
    return _reserved_enc if allow_reserved else path_enc
