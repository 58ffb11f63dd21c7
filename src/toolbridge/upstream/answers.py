"""Answer shaping: the upstream's answer turned into the `ToolResult` the model reads, by its
content type (JSON parsed, text decoded in its charset, other bytes as base64), marked when it was
cut at the size cap. Bytes that are not text whatever the content type claims (a NUL, or mostly
control characters) come back as base64 too, never as escaped text. A pure function of the
response: sending and redirects are `remote`'s.
"""

from __future__ import annotations

import base64
import codecs
import re
from collections.abc import Iterable
from typing import Any

import orjson

from toolbridge.json_text import beyond_64_bits
from toolbridge.tools import TextForm, ToolResult
from toolbridge.upstream.media_types import CHARSET, is_json_type
from toolbridge.upstream.seam import UpstreamResponse

_TEXT_SUFFIXES = ("+xml", "+yaml", "/xml", "/yaml", "/x-yaml", "/javascript", "/x-ndjson", "/csv")
_CONTROLS = bytes([*range(9), 11, *range(14, 27), *range(28, 32), 127])
"""C0 controls (and DEL) that text does not hold: not TAB, LF, FF, CR or ESC."""
TRUNCATED = "\n[truncated: "
"""What a cut answer's text says where it was cut (then why)."""
_SNIFFED = 8192
"""How much of a body is looked at to tell text from binary."""


def shape_result(response: UpstreamResponse) -> ToolResult:
    """The answer as the model reads it: JSON parsed, text decoded, other bytes as base64.

    `ok` is true for 2xx, and for 304 (Not Modified: what a conditional request the caller made
    hopes for); another 3xx that was not followed is no success. A truncated
    answer that no longer parses is text ending in a marker that says it was cut.
    """
    content_type = response.header("content-type")
    result, form = (
        _shaped_body(response.body, content_type, response.truncated)
        if response.body
        else (None, None)
    )
    if response.truncated and isinstance(result, str):
        result += f"{TRUNCATED}the upstream answer was longer than {len(response.body)} bytes]"
    return ToolResult(
        ok=200 <= response.status < 300 or response.status == 304,
        status=response.status,
        content_type=content_type,
        result=result,
        truncated=response.truncated,
        text_form=form,
        headers=kept_headers(response.headers),
    )


KEPT_HEADERS = re.compile(
    r"(?:x-)?(?:link|location|content-location|etag|last-modified|retry-after"
    r"|(?:next|prev|previous|first|last)(?:[-_](?:page|cursor|link|url|offset|marker))*"
    r"|(?:total|page|per[-_]page|pagination|cursor|ratelimit|rate[-_]limit)(?:[-_][a-z0-9]+)*)",
    re.IGNORECASE,
)
"""Response headers a model may need to go on, by name: the next page (`Link`, Kinto's
`Next-Page`, `X-Next-Cursor`), how many there are (`Total-Records`, `X-Total-Count`), where a
created thing is (`Location`), its version (`ETag`, for `If-Match`), and when to come back
(`Retry-After`, `X-RateLimit-Reset`). Nothing else is passed on (cookies, credentials, the
server's own): the answer's body is the answer."""
MAX_KEPT = 16
MAX_KEPT_VALUE = 2048
"""At most this many kept headers, each at most this long (a longer one is left out)."""


def kept_headers(headers: Iterable[tuple[str, str]]) -> tuple[tuple[str, str], ...]:
    """The headers of `KEPT_HEADERS` in an answer, in its order; the values of a name given
    twice (two `Link` fields) joined with ", ", as HTTP reads them."""
    kept: dict[str, str] = {}
    for name, value in headers:
        key = name.lower()
        if len(value) > MAX_KEPT_VALUE or not KEPT_HEADERS.fullmatch(key):
            continue
        if key in kept:
            kept[key] = f"{kept[key]}, {value}"[: MAX_KEPT_VALUE + 1]
        elif len(kept) < MAX_KEPT:
            kept[key] = value
    return tuple((k, v) for k, v in kept.items() if len(v) <= MAX_KEPT_VALUE)


def _shaped_body(body: bytes, content_type: str | None, truncated: bool) -> tuple[Any, TextForm]:
    """The body as the model reads it, and what its text is (`ToolResult.text_form`)."""
    mime = (content_type or "").split(";")[0].strip().lower()
    json_type = is_json_type(mime)
    if json_type or not mime:  # without a content type, JSON is sniffed
        try:
            parsed = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            # Not JSON after all (or cut short): read it as text below. orjson stops at 1,024
            # levels before it knows whether what is deeper is JSON: said so, not "not JSON".
            if json_type and str(exc).startswith("depth limit"):
                return _decoded(body, content_type, truncated), "too_deep"
        else:
            if beyond_64_bits(body):  # its JSON text: orjson would read them as floats
                return body.decode("utf-8"), "json"
            return parsed, None
    textual = json_type or mime.startswith("text/") or mime.endswith(_TEXT_SUFFIXES)
    if (textual or (not mime and _utf8(body))) and not _binary(body, content_type):
        return _decoded(body, content_type, truncated), "not_json" if json_type else None
    binary = {
        "base64": base64.b64encode(body).decode("ascii"),
        "size": len(body),
        "content_type": content_type or "application/octet-stream",
    }
    return binary, None


def _decoded(body: bytes, content_type: str | None, truncated: bool) -> str:
    charset = _charset(content_type, body)
    try:
        decoder = codecs.getincrementaldecoder(charset)(errors="replace")
        # A cut answer may end inside a multi-byte character: leave that half out.
        return str(decoder.decode(body, final=not truncated))
    except (UnicodeError, ValueError):  # a codec that will not replace what it cannot read
        return body.decode("utf-8", errors="replace")


_NO_CHARSETS = frozenset({"punycode", "idna", "undefined", "unicode-escape", "raw-unicode-escape"})
"""Codecs Python has that no answer's charset can be: text transforms (punycode decodes in
quadratic time: 300 KB of it held the gateway for 20 s), or none at all."""


def _charset(content_type: str | None, body: bytes) -> str:
    """The codec to read a text answer with: its `charset` when that is a character set
    Python reads (bytes-to-bytes codecs such as base64 or rot13, and `_NO_CHARSETS`, are not),
    else UTF-8. UTF-16 and UTF-32 without a byte order mark are big-endian (RFC 2781)."""
    match = CHARSET.search(content_type or "")
    if match is None:
        return "utf-8"
    try:
        info = codecs.lookup(match.group(1))
    except LookupError:
        return "utf-8"
    name = info.name.replace("_", "-")
    if not getattr(info, "_is_text_encoding", True) or name in _NO_CHARSETS:
        return "utf-8"
    if name in ("utf-16", "utf-32") and not body.startswith(_BOMS[name]):
        return f"{name}-be"
    return name


_BOMS = {
    "utf-16": (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE),
    "utf-32": (codecs.BOM_UTF32_LE, codecs.BOM_UTF32_BE),
}


def _binary(body: bytes, content_type: str | None) -> bool:
    """Whether bytes are no text: a NUL anywhere (outside UTF-16 and UTF-32, which hold them),
    or more than one control character in ten at the start."""
    match = CHARSET.search(content_type or "")
    if match and match.group(1).lower().replace("-", "").startswith(("utf16", "utf32")):
        return False
    if b"\x00" in body:
        return True
    head = body[:_SNIFFED]
    return len(head.translate(None, _CONTROLS)) * 10 < len(head) * 9


def _utf8(body: bytes) -> bool:
    try:
        body.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True
