"""The list endpoints' answers as HTTP: built once (`listings`), sent as bytes, revalidated.

`GET /v1/tools` and `GET /openapi.json` answer from the generation's kept bytes: zstd to
clients that take it, gzip to those that take only that, plain to the rest; always with the
answer's ETag, `Vary: Accept-Encoding, Authorization` (the list is the caller's) and
`Cache-Control: private, no-cache` (a client may keep it, and asks again with
`If-None-Match`: 304 while nothing it sees has changed).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping

import orjson

from toolbridge.formats.render import Format, render
from toolbridge.listings import Answer, choose, json_array, not_modified
from toolbridge.serve.openapi_document import gateway_document_json
from toolbridge.tools import Tool

VARY = "Accept-Encoding, Authorization"
CACHE_CONTROL = "private, no-cache"


def http_answer(
    answer: Answer, headers: Mapping[str, str]
) -> tuple[int, dict[str, str], bytes | Iterator[bytes]]:
    """(status, headers, body) for a list request with these request headers; the body is
    bytes, or pieces to send one by one (a large answer decompressed for a plain client, or
    read from the file it is kept in)."""
    out = {"ETag": answer.etag, "Vary": VARY, "Cache-Control": CACHE_CONTROL}
    if not_modified(headers.get("if-none-match"), answer.etag):
        return 304, out, b""
    encoding = choose(headers.get("accept-encoding"))
    if encoding != "identity":
        out["Content-Encoding"] = encoding
    if answer.ready(encoding):
        return 200, out, answer.body(encoding)
    out["Content-Length"] = str(answer.length(encoding))
    return 200, out, answer.pieces(encoding)


def tools_json(tools: Iterable[Tool], fmt: Format, *, strict: bool = False) -> Iterator[bytes]:
    """`{"tools": [...]}` in `fmt`, in parts (one per tool): what `GET /v1/tools` answers."""
    yield b'{"tools":'
    yield from json_array(
        orjson.dumps(render(tool, fmt, strict=strict), option=orjson.OPT_NON_STR_KEYS)
        for tool in tools
    )
    yield b"}"


def openapi_json(
    tools: Iterable[Tool], server_url: str, *, title: str = "toolbridge", authenticated: bool = True
) -> Iterator[bytes]:
    """The gateway's own OpenAPI document of these tools (`openapi_document`), as JSON.

    Building it imports the OpenAPI schema validator (`document_components`), 4 MB of modules
    the serving process has no other use for. A large list is built in a child process
    (`forked`), which imports them itself and takes them with it when it exits; that is safe
    because no thread of the server imports them meanwhile (only a list built here, when no
    child could build it, does).
    """
    return gateway_document_json(
        list(tools), title=title, server_url=server_url, authenticated=authenticated
    )
