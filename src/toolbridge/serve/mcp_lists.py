"""MCP `tools/list` from kept bytes: pages with cursors, spliced into the SDK's own answer.

A page of a large catalog is megabytes of tool JSON, and the SDK would validate and serialize
it through pydantic for every request (half a second for the corpus). So a page is rendered
once per generation and visible set (`listings`), and `tools/list` answers with an empty page
marked with a one-time token in its `_meta`; the SDK wraps that in its envelope (protocol
version, result type, JSON-RPC id, JSON or SSE framing, session header) as for any answer,
and `splicing` finds the token in what the SDK writes and puts the kept page in place of the
empty one. Nothing of the envelope is ours, and a request served without `McpApp` in front
(no splice holder in its scope) is answered the plain way.

Pages: `page_size` tools each (the config's `mcp.page_size`; 0 is one page) and at most
`MAX_PAGE_BYTES` of them (one tool at least), in catalog order, with an opaque `nextCursor`
while more follow, as the MCP specification defines. (The Python SDK's client refuses an
event over 1 MiB: a page of 1,000 Kubernetes tools is 14 MB.) A cursor names the position, the
visible set and the scope (endpoint, toolset, mode) it was made for, and the tools on either
side of it. In the same visible set it is the position. After a reload (or a change of what the
caller may see) it goes on after the last tool sent, if the new list has it, else at the next
one, else at the same position: the client gets the rest of the list as it now is, and the
`list_changed` notification tells it to list again. (Refusing such cursors failed 9% of
sessions in a soak with admin writes every second or two: clients such as the mcp SDK's do not
list again on an error.) A cursor of another scope is refused (`StaleCursor`), as is one the
gateway did not make.
What the cursor holds is the caller's to read; it decides only where the caller's own list
goes on, never what is in it.

A JSON answer goes out zstd-compressed to clients that accept it (frames may follow one
another: the kept page is one, the envelope's head and tail are two more), plain otherwise;
an SSE answer always plain.
"""

from __future__ import annotations

import base64
import binascii
import json
import secrets
from collections.abc import Awaitable, Callable, Iterable, Iterator, MutableMapping, Sequence
from typing import Any, Final

import anyio
import orjson
import zstandard

from toolbridge.formats.render import render
from toolbridge.listings import Answer, Listing, choose, json_array
from toolbridge.tools import Tool

SPLICE_META: Final = "dev.toolbridge/splice"
"""The `_meta` key the token travels under from the handler to `splicing` (never sent)."""
SCOPE_KEY: Final = "toolbridge.splices"
"""Where `McpApp` puts this request's `Splices` in the ASGI scope."""
MAX_PAGE_BYTES: Final = 512 * 1024
"""A `tools/list` page's tools, at most, as JSON (clients cap an event: the SDK's at 1 MiB)."""

Message = MutableMapping[str, Any]
Send = Callable[[Message], Awaitable[None]]


class StaleCursor(Exception):
    """A cursor this gateway did not make, or made for another visible set."""


class Splices(dict[str, Answer]):
    """One HTTP request's pages to splice in, by token (several for a JSON-RPC batch)."""

    def add(self, answer: Answer) -> str:
        token = secrets.token_hex(16)
        self[token] = answer
        return token


async def page(listing: Listing, cursor: str | None, page_size: int) -> tuple[Answer, str | None]:
    """The page a cursor names (the first without one) as kept bytes, and the next cursor."""
    tools = listing.tools
    size = page_size if page_size > 0 else max(len(tools), 1)
    offset = _offset(cursor, listing) if cursor is not None else 0
    ends = listing.listings.page_ends
    where = (listing.visible.key, offset, size)
    end = ends.get(where)
    if end is None:
        end = await anyio.to_thread.run_sync(_page_end, tools, offset, size)
        ends[where] = end
    chosen = tools[offset:end]
    answer = await listing.answer(
        ("mcp", offset, end), lambda: json_array(orjson.dumps(render(t, "mcp")) for t in chosen)
    )
    next_cursor = _cursor(end, listing, tools[end - 1 : end + 1]) if end < len(tools) else None
    return answer, next_cursor


def _page_end(tools: Sequence[Tool], offset: int, size: int) -> int:
    """Where the page from `offset` ends: after `size` tools, or before the tool that would take
    it past MAX_PAGE_BYTES (one tool at least)."""
    used = 0
    for end in range(offset, min(offset + size, len(tools))):
        used += len(orjson.dumps(render(tools[end], "mcp"))) + 1
        if used > MAX_PAGE_BYTES and end > offset:
            return end
    return min(offset + size, len(tools))


def _cursor(offset: int, listing: Listing, around: Sequence[Tool]) -> str:
    """A cursor to `offset`, between the two tools `around` (the last sent, the next)."""
    visible = listing.visible
    last, following = (tool.name for tool in around)
    raw = orjson.dumps([offset, visible.key[:16], visible.scope[:16], last, following])
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _offset(cursor: str, listing: Listing) -> int:
    """Where the page a cursor names starts in `listing` (see the module's docstring)."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        offset, made_for, scope, last, following = orjson.loads(raw)
    except (binascii.Error, orjson.JSONDecodeError, ValueError, TypeError):
        raise StaleCursor(f"{cursor[:40]!r} is not a cursor of this gateway") from None
    visible, tools = listing.visible, listing.tools
    if not (isinstance(offset, int) and offset >= 0 and isinstance(last, str)):
        raise StaleCursor(f"{cursor[:40]!r} is not a cursor of this gateway")
    if scope != visible.scope[:16]:
        raise StaleCursor(
            "the cursor is of another tool list (another endpoint, toolset or mode); "
            "list again from the start"
        )
    if made_for == visible.key[:16]:
        if offset > len(tools):
            raise StaleCursor("the cursor is past the end of the list; list again from the start")
        return offset
    names = [tool.name for tool in tools]
    if last in names:
        return names.index(last) + 1
    if following in names:
        return names.index(following)
    return min(offset, len(tools))


def splicing(send: Send, splices: Splices, accept_encoding: str | None) -> Send:
    """`send`, with each kept page put in place of the empty one its token marks.

    Messages pass through untouched until the handler has registered a page; from then, a
    response start is held until its body is in (its length and coding change), and body
    chunks that carry a token are rewritten.
    """
    held: Message | None = None

    async def wrapped(message: Message) -> None:
        nonlocal held
        kind = message["type"]
        if not splices or kind not in ("http.response.start", "http.response.body"):
            if held is not None:
                await send(held)
                held = None
            await send(message)
            return
        if kind == "http.response.start":
            held = message
            return
        more = bool(message.get("more_body", False))
        body = bytes(message.get("body", b""))
        parts: list[Part] = _spliced(body, splices) or [body]
        if held is None:  # the stream had started already (SSE): plain, no length to fix
            await _send_parts(send, _plain(parts), more)
            return
        start, held = held, None
        headers = [(k, v) for k, v in start.get("headers", []) if k.lower() != b"content-length"]
        packed: list[bytes] | None = None
        json_answer = _header(headers, b"content-type").startswith(b"application/json")
        if json_answer and not more and not _header(headers, b"content-encoding"):
            headers.append((b"vary", b"Accept-Encoding"))
            if choose(accept_encoding, ("zstd",)) == "zstd":
                packed = _zstd(parts)
                headers.append((b"content-encoding", b"zstd"))
        if not more:
            size = sum(map(len, packed)) if packed is not None else _plain_size(parts)
            headers.append((b"content-length", b"%d" % size))
        await send({**start, "headers": headers})
        await _send_parts(send, packed if packed is not None else _plain(parts), more)

    return wrapped


Part = bytes | Answer
"""A piece of a rewritten body: bytes of the envelope, or a kept page."""


def _spliced(body: bytes, splices: Splices) -> list[Part] | None:
    """The body with each page in place, in parts; None if it holds no token."""
    if not any(token.encode() in body for token in splices):
        return None
    text = body.decode()
    if text.lstrip().startswith(("{", "[")):
        return _splice_json(text, splices)
    out: list[Part] = []  # SSE: each `data:` line is one JSON-RPC message
    for line in text.splitlines(keepends=True):
        stripped = line.rstrip("\r\n")
        if stripped.startswith("data:") and any(token in stripped for token in splices):
            out.append(b"data: ")
            out.extend(_splice_json(stripped[5:].removeprefix(" "), splices))
            out.append(line[len(stripped) :].encode())
        else:
            out.append(line.encode())
    return out


def _splice_json(text: str, splices: Splices) -> list[Part]:
    """A JSON-RPC message (or batch) with each marked result's tools replaced by its page.

    The envelope is read and written with the standard `json`: a request id is the client's
    to match, and an integer past 64 bits (which orjson reads as a float) must come back as
    it was sent. It holds no tools (the page is spliced in as bytes), so it is small."""
    message = json.loads(text)
    found: dict[bytes, Answer] = {}
    for item in message if isinstance(message, list) else [message]:
        result = item.get("result") if isinstance(item, dict) else None
        if not isinstance(result, dict) or not isinstance(result.get("_meta"), dict):
            continue
        meta = result["_meta"]
        token = meta.pop(SPLICE_META, None)
        if not isinstance(token, str) or token not in splices:
            continue
        if not meta:
            del result["_meta"]
        result["tools"] = f"toolbridge-page-{token}"
        found[orjson.dumps(f"toolbridge-page-{token}")] = splices.pop(token)
    out: list[Part] = [json.dumps(message, separators=(",", ":"), ensure_ascii=False).encode()]
    for marker, answer in found.items():
        last = out.pop()
        assert isinstance(last, bytes)  # the tail after the previous page: envelope bytes
        head, _, tail = last.partition(marker)
        out.extend((head, answer, tail))
    return out


def _plain(parts: list[Part]) -> Iterator[bytes]:
    """The parts uncompressed, a large page a piece at a time (never made whole)."""
    for part in parts:
        if isinstance(part, bytes):
            yield part
        else:
            yield from part.pieces("identity")


def _plain_size(parts: list[Part]) -> int:
    return sum(len(p) if isinstance(p, bytes) else p.size for p in parts)


def _zstd(parts: list[Part]) -> list[bytes]:
    """The parts as zstd frames one after another: the envelope compressed here, each page
    as it is kept."""
    compressor = zstandard.ZstdCompressor(level=3)
    return [compressor.compress(p) if isinstance(p, bytes) else p.zstd for p in parts]


async def _send_parts(send: Send, parts: Iterable[bytes], more: bool) -> None:
    """Each part as a body message, the last one closing the body unless `more` follows."""
    pending: bytes | None = None
    for part in parts:
        if pending is not None:
            await send({"type": "http.response.body", "body": pending, "more_body": True})
        pending = part
    await send({"type": "http.response.body", "body": pending or b"", "more_body": more})


def _header(headers: list[tuple[bytes, bytes]], name: bytes) -> bytes:
    return next((v.lower() for k, v in headers if k.lower() == name), b"")
