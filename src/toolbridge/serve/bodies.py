"""Request and answer bodies of the HTTP API: JSON in (bounded, and said plainly when it is no
JSON), JSON out, and every error in one shape, `{"error": {"type": ..., "message": ...}}`, the
status and headers from errors.py's one table (Starlette's own 404 and 405 included).

Trusts nothing of a request body: its size is bounded (`MAX_REQUEST_BYTES`) before it is read
whole, and what it is not (compressed, not UTF-8, not JSON) is said without echoing it.
"""

from __future__ import annotations

from typing import Any

import orjson
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Send

from toolbridge import json_text
from toolbridge.errors import (
    BadRequest,
    RateLimited,
    ToolbridgeError,
    ToolsBusy,
    Unauthenticated,
    UpstreamBusy,
    error_body,
    error_status,
    retry_seconds,
)
from toolbridge.tools import Shaped, ToolResult

MAX_REQUEST_BYTES = 8 * 1024 * 1024


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(
        orjson.dumps(body, option=orjson.OPT_NON_STR_KEYS),
        status_code=status,
        media_type="application/json",
        headers=headers,
    )


def error_parts(exc: ToolbridgeError) -> tuple[int, dict[str, Any], dict[str, str]]:
    """Status, body and headers for an error (errors.py holds the one table)."""
    status, _ = error_status(exc)
    headers: dict[str, str] = {}
    if isinstance(exc, Unauthenticated):
        headers["WWW-Authenticate"] = 'Bearer realm="toolbridge"'
    if isinstance(exc, RateLimited | UpstreamBusy | ToolsBusy):
        headers["Retry-After"] = str(retry_seconds(exc.retry_after))
    return status, error_body(exc), headers


def error_response(exc: ToolbridgeError) -> Response:
    status, body, headers = error_parts(exc)
    return json_response(body, status, headers)


async def read_body(receive: Receive) -> bytes:
    chunks = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise BadRequest("the client went away before sending its body")
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_REQUEST_BYTES:
            raise BadRequest(f"the request body is over {MAX_REQUEST_BYTES} bytes", status=413)
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


async def json_body(request: Request) -> Any:
    """The request's body as JSON; BadRequest when it is too large or not JSON."""
    chunks = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_REQUEST_BYTES:
            raise BadRequest(f"the request body is over {MAX_REQUEST_BYTES} bytes", status=413)
        chunks.append(chunk)
    body = b"".join(chunks)
    try:
        return json_text.loads(body)
    except orjson.JSONDecodeError as exc:
        encoding = request.headers.get("content-encoding")
        raise BadRequest(not_json(body, encoding, exc)) from None


def not_json(body: bytes, content_encoding: str | None, exc: Exception) -> str:
    """Why a request body is no JSON, in the caller's terms: compressed (bodies are not
    decompressed), not UTF-8 (where), or the parser's own words."""
    encoding = (content_encoding or "identity").strip().lower()
    if encoding != "identity":
        return (
            f"the body is {encoding}-encoded (Content-Encoding); expected plain JSON (request "
            "bodies are not decompressed)"
        )
    try:
        body.decode("utf-8")
    except UnicodeDecodeError as bad:
        byte = body[bad.start : bad.start + 1]
        return f"the body is not UTF-8 (byte {bad.start}: {byte!r}); expected JSON in UTF-8"
    return f"the body is not valid JSON: {exc}"


async def send_json(send: Send, status: int, body: Any, headers: dict[str, str]) -> None:
    payload = orjson.dumps(body, option=orjson.OPT_NON_STR_KEYS)
    raw_headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(payload)).encode()),
        *((k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()),
    ]
    await send({"type": "http.response.start", "status": status, "headers": raw_headers})
    await send({"type": "http.response.body", "body": payload})


_HTTP_ERRORS = {404: "not_found", 405: "method_not_allowed"}


async def http_error(request: Request, exc: Exception) -> Response:
    """Starlette's own refusals (no such route, a method a route does not take), in the shape
    of every other error body, with their headers (`Allow`)."""
    assert isinstance(exc, HTTPException)
    kind = _HTTP_ERRORS.get(exc.status_code, "bad_request")
    message = f"{request.method} {request.url.path}: {exc.detail.lower()}"
    if exc.status_code == 404:
        message += " (the README lists the endpoints)"
    headers = dict(exc.headers or {})
    return json_response({"error": {"type": kind, "message": message}}, exc.status_code, headers)


async def internal_error(request: Request, exc: Exception) -> Response:
    """A bug of ours anywhere else (the traceback goes to the log, redacted, with no SQL
    parameters): a JSON 500 in the shape of every other error, never the exception's words."""
    message = f"{request.method} {request.url.path}: the gateway failed; its log says why"
    return json_response({"error": {"type": "internal", "message": message}}, 500)


def reply(body: Any, status: int) -> Response:
    return json_response(body, status)


def result_body(result: ToolResult) -> dict[str, Any]:
    body: dict[str, Any] = {
        "ok": result.ok,
        "status": result.status,
        "content_type": result.content_type,
        "result": result.result,
    }
    if result.truncated:
        body["truncated"] = True
    if result.embeds:
        # Views for the person (rich UI), beside what the model reads in `result`.
        body["embeds"] = [
            {"content_type": e.content_type, "content": e.content} for e in result.embeds
        ]
    if result.shaped is not None:
        body["budget"] = budget_body(result.shaped)
    if result.headers:
        body["headers"] = dict(result.headers)
    return body


def headers_text(result: ToolResult) -> str | None:
    """The kept response headers as a model reads them beside the answer (MCP, one-turn
    calls), one per line; None when there are none."""
    if not result.headers:
        return None
    lines = "\n".join(f"{name}: {value}" for name, value in result.headers)
    return f"HTTP response headers:\n{lines}"


def budget_body(shaped: Shaped) -> dict[str, Any]:
    """What a result budget did, as the envelope's `budget` says it."""
    body: dict[str, Any] = {"selected": shaped.selected, "bytes": shaped.size}
    if shaped.max_bytes is not None:
        body["max_bytes"] = shaped.max_bytes
    body["cut"] = shaped.cut
    if shaped.cuts:
        body["left_out"] = [
            {"path": c.path, "kept": c.kept, "left_out": c.left_out, "unit": c.unit}
            for c in shaped.cuts
        ]
    if shaped.more_cuts:
        body["more_left_out"] = shaped.more_cuts
    return body
