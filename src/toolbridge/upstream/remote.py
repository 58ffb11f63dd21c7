"""Remote calls: an operation's arguments turned into exactly the HTTP request its plan describes,
the upstream's answer turned into a `ToolResult`, and one `invoke` that does both around a send.

Building and shaping are pure functions; the only I/O is `Upstream.send`, and redirects are
followed here, only on the base URL's origin and under its base path. Nothing here validates
arguments against the input schema (the gateway did that) or decides credentials (`AuthParts`
arrive ready-made).
"""

from __future__ import annotations

import base64
import binascii
import codecs
import hashlib
import re
import shlex
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, TypeVar
from urllib.parse import quote, unquote, urljoin, urlsplit

import orjson

from toolbridge.errors import InvalidArguments, UpstreamUnavailable
from toolbridge.tools import (
    RESERVED_HEADERS,
    BodyPlan,
    FieldEncoding,
    HttpOperation,
    ParamBinding,
    ToolResult,
)
from toolbridge.upstream.seam import (
    AuthParts,
    Headers,
    Timeouts,
    Upstream,
    UpstreamRequest,
    UpstreamResponse,
)

MAX_RESPONSE_BYTES = 10 * 1024 * 1024
"""The default cap on an upstream answer's body; more is cut and marked truncated."""
REDIRECTS = frozenset({301, 302, 303, 307, 308})

_UNRESERVED = "-._~"  # with ASCII letters and digits, which `quote` never encodes
_QUERY_RESERVED_OK = ":/?[]@!$'()*,;"  # reserved characters `allowReserved` lets through
# `&`, `=`, `#` and `+` stay encoded even then: literally they would split or end the query.
_COOKIE_SAFE = "!#$&'()*+-./:<=>?@[]^_`{|}~"  # RFC 6265 cookie-octets, less `%`
_TEMPLATE_SAFE = "/:@!$&'()*+,;=-._~%"  # literal path text of the template: pchar and `/`
_DELIMITERS = {"spaceDelimited": "%20", "pipeDelimited": "|", "tabDelimited": "%09"}
_FORBIDDEN_IN_HEADERS = re.compile(r"[\r\n\x00]")
_CHARSET = re.compile(r"charset=\"?([\w.:-]+)", re.IGNORECASE)
_URLSAFE_TO_STANDARD = str.maketrans("-_", "+/")
_VARIABLE = re.compile(r"\{([^{}]+)\}")
"""Headers an argument never sets: credentials, framing, and what the gateway derives."""

Pairs = list[tuple[str, str]]
T = TypeVar("T")
Encode = Callable[[str], str]


# -- building the request ---------------------------------------------------------------


def build_request(
    op: HttpOperation,
    arguments: Mapping[str, Any],
    *,
    base_url: str,
    auth: AuthParts = AuthParts(),  # noqa: B008 - frozen, so one shared default is safe
    headers: Headers = (),
    tool: str | None = None,
) -> UpstreamRequest:
    """The request the operation's plan describes for these (already validated) arguments.

    `base_url` replaces the document's server (scheme, host and base path); the built URL
    never leaves its origin or base path. `headers` are extra static headers from the config.
    Raises InvalidArguments for a value that cannot be sent (bad base64, CR/LF in a header, a
    path segment of `.` or `..`), UpstreamUnavailable when `base_url` is not absolute http(s).
    """
    name = tool or op.operation_id or f"{op.method} {op.path}"
    base = _split_base(op, base_url)
    problems: list[tuple[str, str]] = []
    path = _path(op, arguments, problems)
    query = _query(op, arguments, auth, problems)
    header_list = _param_headers(op, arguments, auth, problems)
    body, content_type = _body(op, arguments, problems)
    if problems:
        raise InvalidArguments(name, problems)
    url = base.origin + base.path + path
    base_query = [base.query] if base.query else []
    if query or base_query:
        url += "?" + "&".join(base_query + [f"{k}={v}" for k, v in query])
    if not _inside(url, base):
        problem = f"the request path {urlsplit(url).path!r} would leave the base path {base.path!r}"
        raise InvalidArguments(name, [("$", problem)])
    return UpstreamRequest(
        server=op.server,
        method=op.method,
        url=url,
        headers=_merge_headers(op, content_type, auth, headers, header_list),
        body=body,
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class _Base:
    """The base URL split: what every built or followed URL must stay on and under."""

    origin: str
    path: str
    """Percent-encoded, without a trailing slash (`/v1`, or empty)."""
    query: str


def _split_base(op: HttpOperation, base_url: str) -> _Base:
    return _base_of(op.server, base_url)


@lru_cache(maxsize=4096)
def _base_of(server: str, base_url: str) -> _Base:
    # Cached: a server's base URL is the same on every call.
    parts = urlsplit(base_url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise UpstreamUnavailable(
            server,
            f"base URL {base_url!r} is not an absolute http(s) URL: set base_url in the config "
            "for this server",
        )
    path = quote(parts.path, safe=_TEMPLATE_SAFE).rstrip("/")
    return _Base(origin=f"{parts.scheme}://{parts.netloc}", path=path, query=parts.query)


def _inside(url: str, base: _Base) -> bool:
    """On the base URL's origin, under its base path, with no dot segment (even encoded)."""
    parts = urlsplit(url)
    path = parts.path
    under = path == base.path or path.startswith(base.path + "/")
    dots = any(
        unquote(segment) in (".", "..")
        for segment in path.split("/")
        if "." in segment or "%" in segment
    )
    return f"{parts.scheme}://{parts.netloc}" == base.origin and under and not dots


@lru_cache(maxsize=8192)
def _template(path: str) -> tuple[tuple[str, str | None], ...]:
    """A path template as (encoded literal, variable or None) pieces, parsed once per path."""
    # A `#` can only start a fragment, which is never sent: documents use `/x#variant` to put
    # two operations on one path, and the request goes to `/x`.
    template = path.split("#", 1)[0]
    template = template if template.startswith("/") else "/" + template
    pieces: list[tuple[str, str | None]] = []
    last = 0
    for match in _VARIABLE.finditer(template):
        pieces.append((quote(template[last : match.start()], safe=_TEMPLATE_SAFE), match.group(1)))
        last = match.end()
    pieces.append((quote(template[last:], safe=_TEMPLATE_SAFE), None))
    return tuple(pieces)


def _path(op: HttpOperation, arguments: Mapping[str, Any], problems: list[tuple[str, str]]) -> str:
    pieces = _template(op.path)
    if len(pieces) == 1:
        return pieces[0][0]
    out: list[str] = []
    for literal, variable in pieces:
        out.append(literal)
        if variable is None:
            continue
        binding = next((b for b in op.params if b.name == variable and b.location == "path"), None)
        value = arguments.get(binding.argument) if binding else None
        if binding is None or value is None:
            what = "has no value" if binding else "is not described by the document"
            where = f"$.{binding.argument}" if binding else "$"
            problems.append((where, f"path parameter {variable!r} {what}"))
            continue
        text = _attempt(binding.argument, problems, _path_value, binding, value)
        if text is None:
            continue
        if unquote(text) in (".", ".."):
            # RFC 3986 normalizes %2E to `.`: a dot segment would climb the route, so refuse it.
            problems.append((f"$.{binding.argument}", f"{value!r} is not a usable path segment"))
        out.append(text)
    return "".join(out)


def _path_value(b: ParamBinding, value: Any) -> str:
    """Path styles simple, label and matrix (OpenAPI's style tables), every value encoded."""
    if b.style == "simple" and b.content_type is None and type(value) in (str, int):
        return _path_enc(str(value))  # the common case: one plain value, spelled as in JSON
    if b.content_type is not None:
        return _path_enc(_content_text(b.content_type, value))
    e = _path_enc
    name = e(b.name)
    if b.style == "matrix":
        if isinstance(value, dict):
            if b.explode:
                return "".join(f";{e(k)}={e(_text(v))}" for k, v in value.items())
            return f";{name}=" + ",".join(f"{e(k)},{e(_text(v))}" for k, v in value.items())
        if isinstance(value, list | tuple):
            if b.explode:
                return "".join(f";{name}={e(_text(v))}" for v in value)
            return f";{name}=" + ",".join(e(_text(v)) for v in value)
        text = e(_text(value))
        return f";{name}={text}" if text else f";{name}"
    label = b.style == "label"
    separator = "." if label and b.explode else ","
    if isinstance(value, dict):
        pairs = (
            f"{e(k)}={e(_text(v))}" if b.explode else f"{e(k)},{e(_text(v))}"
            for k, v in value.items()
        )
        joined = separator.join(pairs)
    elif isinstance(value, list | tuple):
        joined = separator.join(e(_text(v)) for v in value)
    else:
        joined = e(_text(value))
    return "." + joined if label else joined


def _query(
    op: HttpOperation,
    arguments: Mapping[str, Any],
    auth: AuthParts,
    problems: list[tuple[str, str]],
) -> Pairs:
    credential_names = {name for name, _ in auth.query} if auth.query else ()
    out: Pairs = []
    for b in op.params:
        if b.location != "query":
            continue
        value = arguments.get(b.argument)
        if value is None or b.name in credential_names:
            continue  # absent optional arguments are not sent; credentials win over arguments
        args = (b.name, value, b.style, b.explode, b.content_type, _query_enc(b.allow_reserved))
        out.extend(_attempt(b.argument, problems, _styled_pairs, *args) or ())
    out.extend((_path_enc(name), _path_enc(value)) for name, value in auth.query)
    return out


def _styled_pairs(
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
            return [(e(k), e(_text(v))) for k, v in value.items()]
        return [(key, delimiter.join(f"{e(k)}{delimiter}{e(_text(v))}" for k, v in value.items()))]
    if isinstance(value, list | tuple):
        if delimiter is None:
            return [(key, e(_text(v))) for v in value]
        return [(key, delimiter.join(e(_text(v)) for v in value))]
    return [(key, e(_text(value)))]


def _deep_pairs(prefix: str, value: Any, e: Encode) -> Pairs:
    """deepObject as Stripe and Rails read it: `a[b][c]=v`, arrays indexed `a[0]=v`."""
    if isinstance(value, dict):
        items: Iterable[tuple[str, Any]] = ((e(str(k)), v) for k, v in value.items())
    elif isinstance(value, list | tuple):
        items = ((str(i), v) for i, v in enumerate(value))
    else:
        return [(prefix, e(_text(value)))]
    out: Pairs = []
    for key, item in items:
        out.extend(_deep_pairs(f"{prefix}%5B{key}%5D", item, e))
    return out


def _param_headers(
    op: HttpOperation,
    arguments: Mapping[str, Any],
    auth: AuthParts,
    problems: list[tuple[str, str]],
) -> Headers:
    """Header parameters (simple style) and one Cookie header with the credentials' cookies."""
    out: list[tuple[str, str]] = []
    cookies: list[tuple[str, str]] = []
    credential_cookies = {name for name, _ in auth.cookies} if auth.cookies else ()
    for b in op.params:
        if b.location in ("path", "query"):
            continue
        value = arguments.get(b.argument)
        if value is None:
            continue
        if b.location == "header" and b.name.lower() not in RESERVED_HEADERS:
            text = _attempt(b.argument, problems, _header_value, b, value)
            if text is None:
                continue
            if _FORBIDDEN_IN_HEADERS.search(text):
                problems.append((f"$.{b.argument}", "a header value cannot hold CR, LF or NUL"))
            out.append((b.name, text))
        elif b.location == "cookie" and b.name not in credential_cookies:
            args = (b.name, value, "form", b.explode, b.content_type, _cookie_enc)
            cookies.extend(_attempt(b.argument, problems, _styled_pairs, *args) or ())
    for name, value in auth.cookies:
        cookies.append((_cookie_enc(name), _cookie_enc(value)))
    if cookies:
        out.append(("Cookie", "; ".join(f"{k}={v}" for k, v in cookies)))
    return tuple(out)


def _header_value(b: ParamBinding, value: Any) -> str:
    if b.content_type is not None:
        return _content_text(b.content_type, value)
    if isinstance(value, dict):
        pair = "{}={}" if b.explode else "{},{}"
        return ",".join(pair.format(k, _text(v)) for k, v in value.items())
    if isinstance(value, list | tuple):
        return ",".join(_text(v) for v in value)
    return _text(value)


def _merge_headers(
    op: HttpOperation,
    content_type: str | None,
    auth: AuthParts,
    extra: Headers,
    from_arguments: Headers,
) -> Headers:
    """All headers, each name from one source only.

    Which source wins a name: the body's Content-Type, then credentials, then the config's
    extra headers, then Accept, then arguments. They are listed in the order a reader expects:
    Accept, Content-Type, arguments, credentials, extra headers.
    """
    accept: Headers = (("Accept", op.accept),) if op.accept else ()
    framing: Headers = (("Content-Type", content_type),) if content_type else ()
    if not (auth.headers or extra or from_arguments):
        return accept + framing
    by_rank = (framing, auth.headers, extra, accept, from_arguments)
    owner: dict[str, int] = {}
    for rank, layer in enumerate(by_rank):
        for name, _ in layer:
            owner.setdefault(name.lower(), rank)
    return tuple(
        (name, value)
        for rank in (3, 0, 4, 1, 2)  # Accept, Content-Type, arguments, credentials, extra
        for name, value in by_rank[rank]
        if owner[name.lower()] == rank
    )


# -- the body ---------------------------------------------------------------------------


def _body(
    op: HttpOperation, arguments: Mapping[str, Any], problems: list[tuple[str, str]]
) -> tuple[bytes | None, str | None]:
    plan = op.body
    if plan is None:
        return None, None
    bound = {b.argument for b in op.params}  # a parameter's argument never goes in the body
    if plan.argument is not None:
        value = arguments.get(plan.argument)
        if value is None:
            return None, None
        where = f"$.{plan.argument}"
    else:
        present = [(a, f) for a, f in plan.fields if a in arguments and a not in bound]
        if not present and not plan.required:
            return None, None
        value = {f: arguments[a] for a, f in present}
        where = "$"
    try:
        return _encode_body(plan, value, where)
    except _Unsendable as exc:
        problems.append((exc.where or where, exc.message))
        return None, None


def _encode_body(plan: BodyPlan, value: Any, where: str) -> tuple[bytes, str]:
    media_type = plan.media_type
    match plan.kind:
        case "json":
            concrete = media_type if "*" not in media_type else "application/json"
            return _json(value, where), concrete
        case "form":
            fields = _fields(value, where)
            return _form(fields, dict(plan.encoding)).encode("ascii"), media_type
        case "multipart":
            fields = _fields(value, where)
            body, boundary = _multipart(fields, dict(plan.encoding), where)
            return body, f"multipart/form-data; boundary={boundary}"
        case "ndjson":
            if not isinstance(value, list | tuple):
                raise _Unsendable(where, "expected a list of records for this body")
            lines = [_json(item, f"{where}[{i}]") for i, item in enumerate(value)]
            return b"".join(line + b"\n" for line in lines), media_type
        case "text":
            if isinstance(value, dict | list | tuple):
                raise _Unsendable(where, "expected text for this body, found a JSON structure")
            return _encoded_text(_text(value), media_type, where)
        case "binary":
            concrete = media_type if "*" not in media_type else "application/octet-stream"
            return _base64(value, where), concrete


def _encoded_text(text: str, media_type: str, where: str) -> tuple[bytes, str]:
    """Text in the charset the media type names, else UTF-8 (said so for text/* types)."""
    match = _CHARSET.search(media_type)
    if match is None:
        suffix = "; charset=utf-8" if media_type.lower().startswith("text/") else ""
        return text.encode("utf-8"), media_type + suffix
    charset = match.group(1)
    try:
        return text.encode(charset), media_type
    except LookupError as exc:
        raise _Unsendable(where, f"the body's charset {charset!r} is unknown") from exc
    except UnicodeEncodeError as exc:
        where_in = f"character {exc.start}"
        raise _Unsendable(where, f"cannot be sent as {charset}: {where_in} is not in it") from exc


def _fields(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _Unsendable(where, f"expected an object of form fields, found {_kind(value)}")
    return {k: v for k, v in value.items() if v is not None}


def _form(fields: Mapping[str, Any], encoding: Mapping[str, FieldEncoding]) -> str:
    enc = _query_enc(False)
    pairs: Pairs = []
    for name, value in fields.items():
        rule = encoding.get(name, FieldEncoding())
        pairs.extend(_styled_pairs(name, value, rule.style, rule.explode, rule.content_type, enc))
    return "&".join(f"{k}={v}" for k, v in pairs)


def _multipart(
    fields: Mapping[str, Any], encoding: Mapping[str, FieldEncoding], where: str
) -> tuple[bytes, str]:
    parts: list[bytes] = []
    for name, value in fields.items():
        rule = encoding.get(name, FieldEncoding())
        path = f"{where}.{name}" if where != "$" else f"$.{name}"
        many = isinstance(value, list | tuple)
        items = list(value) if many else [value]
        if rule.is_file:
            for i, item in enumerate(items):
                parts.append(_file_part(name, item, f"{path}[{i}]" if many else path))
        elif rule.content_type is not None and _is_json_type(rule.content_type):
            parts.append(_part(name, _json(value, path), rule.content_type))
        else:
            parts.extend(_value_part(name, item, rule.content_type, path) for item in items)
    boundary = "toolbridge-" + hashlib.blake2b(b"".join(parts), digest_size=16).hexdigest()
    body = b"".join(b"--" + boundary.encode() + b"\r\n" + part for part in parts)
    return body + b"--" + boundary.encode() + b"--\r\n", boundary


def _file_part(name: str, value: Any, where: str) -> bytes:
    if not isinstance(value, dict) or "content" not in value:
        raise _Unsendable(where, f"expected a file {{content, filename}}, found {_kind(value)}")
    content = _base64(value["content"], f"{where}.content")
    filename = value.get("filename") or name
    content_type = value.get("content_type") or "application/octet-stream"
    if not isinstance(filename, str) or not isinstance(content_type, str):
        raise _Unsendable(where, "filename and content_type must be strings")
    if _FORBIDDEN_IN_HEADERS.search(content_type):
        raise _Unsendable(f"{where}.content_type", "cannot hold CR, LF or NUL")
    return _part(name, content, content_type, filename)


def _value_part(name: str, value: Any, content_type: str | None, where: str) -> bytes:
    if isinstance(value, dict | list | tuple):
        return _part(name, _json(value, where), content_type or "application/json")
    return _part(name, _text(value).encode("utf-8"), content_type)


def _part(
    name: str, content: bytes, content_type: str | None, filename: str | None = None
) -> bytes:
    disposition = f'form-data; name="{_disposition_text(name)}"'
    if filename is not None:
        disposition += f'; filename="{_disposition_text(filename)}"'
    head = f"Content-Disposition: {disposition}\r\n"
    if content_type:
        head += f"Content-Type: {content_type}\r\n"
    return head.encode("utf-8") + b"\r\n" + content + b"\r\n"


def _disposition_text(text: str) -> str:
    """As browsers escape field and file names in multipart/form-data (the HTML standard)."""
    return text.replace('"', "%22").replace("\r", "%0D").replace("\n", "%0A")


# -- values -------------------------------------------------------------------------------


class _Unsendable(Exception):
    """A value that cannot be serialized as the plan says (becomes InvalidArguments)."""

    def __init__(self, where: str, message: str) -> None:
        super().__init__(message)
        self.where = where
        self.message = message


def _attempt(
    argument: str, problems: list[tuple[str, str]], build: Callable[..., T], *args: Any
) -> T | None:
    """`build(*args)`, or None with the problem recorded under the argument's JSON path."""
    try:
        return build(*args)
    except _Unsendable as exc:
        problems.append((f"$.{argument}", exc.message))
        return None


def _text(value: Any) -> str:
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
        return orjson.dumps(value).decode()
    if isinstance(value, dict | list | tuple):
        return orjson.dumps(value).decode()  # a nested structure the style cannot spell
    raise _Unsendable("", f"expected a JSON value, found {_kind(value)}")


def _content_text(content_type: str, value: Any) -> str:
    """A parameter described by `content`: JSON-encoded when its media type is JSON."""
    if _is_json_type(content_type):
        return orjson.dumps(value).decode()
    return _text(value)


def _json(value: Any, where: str) -> bytes:
    try:
        return orjson.dumps(value)
    except TypeError as exc:
        raise _Unsendable(where, f"cannot be sent as JSON: {exc}") from exc


def _base64(value: Any, where: str) -> bytes:
    if not isinstance(value, str):
        raise _Unsendable(where, f"expected base64 text, found {_kind(value)}")
    # Line-wrapped (MIME), unpadded and URL-safe base64 are all common: accept each, strictly.
    compact = "".join(value.split()).translate(_URLSAFE_TO_STANDARD)
    try:
        return base64.b64decode(compact + "=" * (-len(compact) % 4), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise _Unsendable(where, f"is not valid base64 ({exc})") from exc


def _is_json_type(media_type: str) -> bool:
    mt = media_type.split(";")[0].strip().lower()
    return mt == "application/json" or mt.endswith(("+json", "/json"))


def _kind(value: Any) -> str:
    names = {dict: "an object", list: "an array", str: "a string", bool: "a boolean"}
    return names.get(type(value), type(value).__name__)


def _escaped(run: re.Match[str]) -> str:
    return "".join([f"%{byte:02X}" for byte in run.group().encode("utf-8")])


def _percent_encoder(safe: str) -> Encode:
    """`quote(text, safe=safe)` (UTF-8, upper-case hex), but one regular-expression pass that
    calls back only for the runs of characters to escape: most values have none or few."""
    unsafe = re.compile("[^A-Za-z0-9" + re.escape(safe) + "]+")
    return lambda text: unsafe.sub(_escaped, text)


_path_enc = _percent_encoder(_UNRESERVED)
_reserved_enc = _percent_encoder(_UNRESERVED + _QUERY_RESERVED_OK)
_cookie_enc = _percent_encoder(_COOKIE_SAFE)


def _query_enc(allow_reserved: bool) -> Encode:
    return _reserved_enc if allow_reserved else _path_enc


# -- the answer ---------------------------------------------------------------------------

_TEXT_SUFFIXES = ("+xml", "+yaml", "/xml", "/yaml", "/x-yaml", "/javascript", "/x-ndjson", "/csv")


def shape_result(response: UpstreamResponse) -> ToolResult:
    """The answer as the model reads it: JSON parsed, text decoded, other bytes as base64.

    `ok` is true for 2xx only: a 3xx that was not followed is no success either. A truncated
    answer that no longer parses is text ending in a marker that says it was cut.
    """
    content_type = response.header("content-type")
    result = (
        _shaped_body(response.body, content_type, response.truncated) if response.body else None
    )
    if response.truncated and isinstance(result, str):
        result += f"\n[truncated: the upstream answer was longer than {len(response.body)} bytes]"
    return ToolResult(
        ok=200 <= response.status < 300,
        status=response.status,
        content_type=content_type,
        result=result,
        truncated=response.truncated,
    )


def _shaped_body(body: bytes, content_type: str | None, truncated: bool) -> Any:
    mime = (content_type or "").split(";")[0].strip().lower()
    json_type = _is_json_type(mime)
    if json_type or not mime:  # without a content type, JSON is sniffed
        try:
            return orjson.loads(body)
        except orjson.JSONDecodeError:
            pass  # not JSON after all (or cut short): read it as text below
    textual = json_type or mime.startswith("text/") or mime.endswith(_TEXT_SUFFIXES)
    if textual or (not mime and _utf8(body)):
        return _decoded(body, content_type, truncated)
    return {
        "base64": base64.b64encode(body).decode("ascii"),
        "size": len(body),
        "content_type": content_type or "application/octet-stream",
    }


def _decoded(body: bytes, content_type: str | None, truncated: bool) -> str:
    match = _CHARSET.search(content_type or "")
    charset = match.group(1) if match else "utf-8"
    try:
        decoder = codecs.getincrementaldecoder(charset)(errors="replace")
    except LookupError:
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    # A cut answer may end inside a multi-byte character: leave that half out.
    return str(decoder.decode(body, final=not truncated))


def _utf8(body: bytes) -> bool:
    try:
        body.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


# -- one call -----------------------------------------------------------------------------


async def invoke(
    op: HttpOperation,
    arguments: Mapping[str, Any],
    *,
    upstream: Upstream,
    base_url: str | None,
    auth: AuthParts = AuthParts(),  # noqa: B008 - frozen, so one shared default is safe
    headers: Headers = (),
    timeouts: Timeouts = Timeouts(),  # noqa: B008 - frozen, so one shared default is safe
    max_bytes: int = MAX_RESPONSE_BYTES,
    max_redirects: int = 5,
    tool: str | None = None,
) -> ToolResult:
    """Build the request, send it, follow redirects that stay on the base URL, shape the answer.

    Raises UpstreamUnavailable (no usable base URL, or the upstream cannot be reached) and
    InvalidArguments; an upstream 4xx/5xx, or a redirect off the base URL, is a result.
    """
    if base_url is None or urlsplit(base_url).scheme not in ("http", "https"):
        found = (
            "the document names no server"
            if base_url is None
            else f"the server URL {base_url!r} is not an absolute http(s) URL"
        )
        raise UpstreamUnavailable(
            op.server, f"no base URL: set base_url in the config for this server ({found})"
        )
    request = build_request(op, arguments, base_url=base_url, auth=auth, headers=headers, tool=tool)
    base = _split_base(op, base_url)
    response = await upstream.send(request, timeouts=timeouts, max_bytes=max_bytes)
    for _ in range(max_redirects):
        following = _redirect(request, response, base)
        if following is None:
            break
        request = following
        response = await upstream.send(request, timeouts=timeouts, max_bytes=max_bytes)
    return shape_result(response)


def _redirect(
    request: UpstreamRequest, response: UpstreamResponse, base: _Base
) -> UpstreamRequest | None:
    """The request a redirect asks for, when it stays on the base URL; else None."""
    if response.status not in REDIRECTS:
        return None
    location = response.header("location")
    if not location:
        return None
    target = urljoin(request.url, location.strip())
    if not _inside(target, base):
        return None
    method, body, headers = request.method, request.body, request.headers
    # 303 always, and 301/302 after a POST, continue as GET without the body (as curl does).
    if response.status == 303 or (response.status in (301, 302) and method == "POST"):
        method = "GET" if method != "HEAD" else "HEAD"
        body = None
        headers = tuple((k, v) for k, v in headers if k.lower() != "content-type")
    target = target.split("#", 1)[0]
    return UpstreamRequest(
        server=request.server, method=method, url=target, headers=headers, body=body
    )


# -- --dry-run ----------------------------------------------------------------------------


def curl_line(request: UpstreamRequest, secrets: Sequence[str]) -> str:
    """A curl command that sends the same request, with every secret value shown as `***`."""
    words = ["curl", "-g"]  # -g: brackets in URLs are literal, not curl globs
    words += ["-I"] if request.method == "HEAD" else ["-X", request.method]
    words.append(shlex.quote(_masked(request.url, secrets)))
    for name, value in request.headers:
        words += ["-H", shlex.quote(f"{name}: {_masked(value, secrets)}")]
    if request.body is not None:
        words += ["--data-binary", _shell_bytes(request.body, secrets)]
    return " ".join(words)


def _masked(text: str, secrets: Sequence[str]) -> str:
    for secret in sorted((s for s in secrets if s), key=len, reverse=True):
        for form in {secret, quote(secret, safe=""), _cookie_enc(secret)}:
            text = text.replace(form, "***")
    return text


def _shell_bytes(body: bytes, secrets: Sequence[str]) -> str:
    """The body as one shell word: plain quoting for text, bash $'...' for other bytes."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        text = None
    if text is not None and text.isprintable():
        return shlex.quote(_masked(text, secrets))
    if text is not None:
        text = _masked(text, secrets)
        body = text.encode("utf-8")
    escaped = "".join(
        chr(b) if 0x20 <= b < 0x7F and b not in (0x27, 0x5C) else f"\\x{b:02x}" for b in body
    )
    return f"$'{escaped}'"
