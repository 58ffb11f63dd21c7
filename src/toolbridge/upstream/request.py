"""Request building: an operation's (already validated) arguments turned into exactly the HTTP
request its plan describes, on the configured base URL and never off its origin or base path.

Places each parameter in the path, query, a header or the Cookie header and settles which source
wins a header name; how a value is spelled is `styles`, the body is `request_body`. Nothing here
validates arguments against the input schema (the gateway did that) or decides credentials
(`AuthParts` arrive ready-made).
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any
from urllib.parse import quote, unquote, urlsplit

from toolbridge.errors import InvalidArguments, UpstreamUnavailable
from toolbridge.http_values import header_problem
from toolbridge.tools import RESERVED_HEADERS, HttpOperation
from toolbridge.upstream.request_body import build_body
from toolbridge.upstream.seam import AuthParts, Headers, UpstreamRequest, pool_of
from toolbridge.upstream.styles import (
    Pairs,
    attempt,
    cookie_enc,
    header_value,
    path_enc,
    path_value,
    query_enc,
    styled_pairs,
)

_TEMPLATE_SAFE = "/:@!$&'()*+,;=-._~%"  # literal path text of the template: pchar and `/`
_VARIABLE = re.compile(r"\{([^{}]+)\}")


def build_request(
    op: HttpOperation,
    arguments: Mapping[str, Any],
    *,
    base_url: str,
    auth: AuthParts = AuthParts(),  # noqa: B008 - frozen, so one shared default is safe
    headers: Headers = (),
    tool: str | None = None,
    caller: str | None = None,
) -> UpstreamRequest:
    """The request the operation's plan describes for these (already validated) arguments.

    `base_url` replaces the document's server (scheme, host and base path); the built URL
    never leaves its origin or base path. `headers` are extra static headers from the config.
    Raises InvalidArguments for a value that cannot be sent (bad base64, CR/LF in a header, a
    path segment of `.` or `..`), UpstreamUnavailable when `base_url` is not absolute http(s).
    `caller`: whose own credentials `auth` holds, if anyone's (the request's `pool`).
    """
    name = tool or op.operation_id or f"{op.method} {op.path}"
    base = split_base(op, base_url)
    problems: list[tuple[str, str]] = []
    path = _path(op, arguments, problems)
    query = _query(op, arguments, auth, problems)
    header_list = _param_headers(op, arguments, auth, problems)
    body, content_type = build_body(op, arguments, problems)
    if body is None and op.required_headers:
        body, content_type = _required_framing(op, content_type)
    if problems:
        raise InvalidArguments(name, problems)
    url = base.origin + base.path + path
    base_query = [base.query] if base.query else []
    if query or base_query:
        url += "?" + "&".join(base_query + [f"{k}={v}" for k, v in query])
    if not inside(url, base):
        # The document's doing (a basePath, a servers URL or a path with a dot segment): no
        # call can be made, whatever the arguments.
        if dot_segment(base.path):
            raise UpstreamUnavailable(
                op.server,
                f"the base path {base.path!r} holds a `.` or `..` segment, which URLs resolve "
                "away: set base_url in the config for this server",
            )
        if dot_segment(_VARIABLE.sub("x", op.path.split("#", 1)[0])):
            raise UpstreamUnavailable(
                op.server,
                f"the operation's path {op.path!r} holds a `.` or `..` segment, which URLs "
                "resolve away: no request can reach it",
            )
        sent = urlsplit(url).path
        problem = (
            f"the arguments make the request path {sent!r}, whose `.` or `..` segment URLs "
            "resolve away"
            if dot_segment(sent)
            else f"the request path {sent!r} would leave the base path {base.path!r}"
        )
        raise InvalidArguments(name, [("$", problem)])
    return UpstreamRequest(
        server=op.server,
        method=op.method,
        url=url,
        headers=_merge_headers(op, content_type, auth, headers, header_list),
        body=body,
        pool=pool_of(op.server, caller),
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class Base:
    """The base URL split: what every built or followed URL must stay on and under."""

    origin: str
    path: str
    """Percent-encoded, without a trailing slash (`/v1`, or empty)."""
    query: str


def split_base(op: HttpOperation, base_url: str) -> Base:
    return _base_of(op.server, base_url)


def dot_segment(path: str) -> bool:
    """Whether a path has a `.` or `..` segment (percent-encoded too: normalizers decode it),
    which URLs resolve away."""
    return any(
        unquote(segment) in (".", "..")
        for segment in path.split("/")
        if "." in segment or "%" in segment
    )


@lru_cache(maxsize=4096)
def _base_of(server: str, base_url: str) -> Base:
    # Cached: a server's base URL is the same on every call.
    parts = urlsplit(base_url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise UpstreamUnavailable(
            server,
            f"base URL {base_url!r} is not an absolute http(s) URL: set base_url in the config "
            "for this server",
        )
    path = quote(parts.path, safe=_TEMPLATE_SAFE).rstrip("/")
    return Base(origin=f"{parts.scheme}://{parts.netloc}", path=path, query=parts.query)


def inside(url: str, base: Base) -> bool:
    """On the base URL's origin, under its base path, with no dot segment (even encoded)."""
    parts = urlsplit(url)
    path = parts.path
    under = path == base.path or path.startswith(base.path + "/")
    return f"{parts.scheme}://{parts.netloc}" == base.origin and under and not dot_segment(path)


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


@lru_cache(maxsize=8192)
def whole_segments(path: str) -> frozenset[str]:
    """The variables of a path template that fill a segment of their own (`/users/{id}/x`, not
    `/files/{name}.json`): an empty value there would make `//`, which servers read as another
    route (many merge the slashes)."""
    pieces = _template(path)
    return frozenset(
        variable
        for (literal, variable), (after, _) in itertools.pairwise(pieces)
        if variable is not None and literal.endswith("/") and after[:1] in ("/", "")
    )


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
        text = attempt(binding.argument, problems, path_value, binding, value)
        if text is None:
            continue
        if unquote(text) in (".", ".."):
            # RFC 3986 normalizes %2E to `.`: a dot segment would climb the route, so refuse it.
            problems.append((f"$.{binding.argument}", f"{value!r} is not a usable path segment"))
        elif not text and variable in whole_segments(op.path):
            # `/users//delete`: many servers merge the slashes, and the call goes elsewhere.
            problems.append(
                (f"$.{binding.argument}", f"{value!r} is empty, and a path segment cannot be")
            )
        out.append(text)
    return "".join(out)


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
        args = (b.name, value, b.style, b.explode, b.content_type, query_enc(b.allow_reserved))
        out.extend(attempt(b.argument, problems, styled_pairs, *args) or ())
    out.extend((path_enc(name), path_enc(value)) for name, value in auth.query)
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
            text = attempt(b.argument, problems, header_value, b, value)
            if text is None:
                continue
            problem = header_problem(text)
            if problem is not None:
                problems.append((f"$.{b.argument}", problem))
                continue
            out.append((b.name, text))
        elif b.location == "cookie" and b.name not in credential_cookies:
            args = (b.name, value, "form", b.explode, b.content_type, cookie_enc)
            cookies.extend(attempt(b.argument, problems, styled_pairs, *args) or ())
    for name, value in auth.cookies:
        cookies.append((cookie_enc(name), cookie_enc(value)))
    if cookies:
        out.append(("Cookie", "; ".join(f"{k}={v}" for k, v in cookies)))
    return tuple(out)


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


def _required_framing(op: HttpOperation, content_type: str | None) -> tuple[bytes, str | None]:
    """A bodiless request whose document requires Content-Length or Content-Type: an empty body
    (so every client sends `Content-Length: 0`) and the documented Content-Type."""
    for name, value in op.required_headers:
        if name == "content-type":
            content_type = value
    return b"", content_type
