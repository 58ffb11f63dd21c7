"""Answer shaping: the upstream's answer turned into the `ToolResult` the model reads, by its
content type (JSON parsed, text decoded in its charset, other bytes as base64), marked when it was
cut at the size cap. Bytes that are not text whatever the content type claims (a NUL, or mostly
control characters) come back as base64 too, never as escaped text. A pure function of the
response: sending and redirects are `remote`'s.
"""

from __future__ import annotations

import base64
import codecs
from typing import Any

import orjson

from toolbridge.tools import ToolResult
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

    `ok` is true for 2xx only: a 3xx that was not followed is no success either. A truncated
    answer that no longer parses is text ending in a marker that says it was cut.
    """
    content_type = response.header("content-type")
    result = (
        _shaped_body(response.body, content_type, response.truncated) if response.body else None
    )
    if response.truncated and isinstance(result, str):
        result += f"{TRUNCATED}the upstream answer was longer than {len(response.body)} bytes]"
    return ToolResult(
        ok=200 <= response.status < 300,
        status=response.status,
        content_type=content_type,
        result=result,
        truncated=response.truncated,
    )


def _shaped_body(body: bytes, content_type: str | None, truncated: bool) -> Any:
    mime = (content_type or "").split(";")[0].strip().lower()
    json_type = is_json_type(mime)
    if json_type or not mime:  # without a content type, JSON is sniffed
        try:
            return orjson.loads(body)
        except orjson.JSONDecodeError:
            pass  # not JSON after all (or cut short): read it as text below
    textual = json_type or mime.startswith("text/") or mime.endswith(_TEXT_SUFFIXES)
    if (textual or (not mime and _utf8(body))) and not _binary(body, content_type):
        return _decoded(body, content_type, truncated)
    return {
        "base64": base64.b64encode(body).decode("ascii"),
        "size": len(body),
        "content_type": content_type or "application/octet-stream",
    }


def _decoded(body: bytes, content_type: str | None, truncated: bool) -> str:
    match = CHARSET.search(content_type or "")
    charset = match.group(1) if match else "utf-8"
    try:
        decoder = codecs.getincrementaldecoder(charset)(errors="replace")
    except LookupError:
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    # A cut answer may end inside a multi-byte character: leave that half out.
    return str(decoder.decode(body, final=not truncated))


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
