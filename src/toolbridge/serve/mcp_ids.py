"""MCP request ids: a request whose `id` is no string or integer gets an error, not silence.

MCP requests carry a string or integer id, never null (unlike plain JSON-RPC). The SDK reads a
message with any other id (`1.5`, `null`, `true`, an object) as a notification, answers `202
Accepted` with no body and never runs it: the client waits for an answer that never comes.
`checked_body` reads a POST's body before the SDK does, answers such a request `400` with a
JSON-RPC `Invalid Request` error that says what the id was, and hands every other body on to
the SDK unchanged.

Trusts nothing of the body: it is read up to `MAX_REQUEST_BYTES` (past that, `413` as the SDK
says it), parsed once here only to look at `id` and `method`, and never echoed (only the id's
JSON type is named).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any, Final

import pydantic_core

from toolbridge.errors import BadRequest
from toolbridge.serve.bodies import read_body, send_json

INVALID_REQUEST: Final = -32600
"""JSON-RPC's code for a message that is JSON but no valid request."""

Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


async def checked_body(receive: Receive, send: Send) -> Receive | None:
    """A `receive` that replays the POST body for the SDK, or None when answered here (a bad
    id, a body past the limit, or a client gone before sending it)."""
    try:
        body = await read_body(receive)
    except BadRequest as exc:
        if exc.status == 413:
            await _error(send, str(exc), 413)
        return None
    found = _bad_id(body)
    if found is not None:
        message = (
            f"Invalid Request: an MCP request's id is a string or an integer; this one's is "
            f"{found} (a message with a method and without an id is a notification)"
        )
        await _error(send, message, 400)
        return None
    return _replaying(body, receive)


def _bad_id(body: bytes) -> str | None:
    """What the id of the request in `body` is when it is no string or integer, else None
    (also for what is no request: the SDK says what is wrong with those)."""
    if b'"id"' not in body:
        return None
    try:
        message = pydantic_core.from_json(body)  # as the SDK reads it: 10**30 is an integer
    except ValueError:
        return None
    if not isinstance(message, dict) or "id" not in message or "method" not in message:
        return None
    return _kind(message["id"])


def _kind(value: Any) -> str | None:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | str):
        return None
    if value is None:
        return "null"
    if isinstance(value, float):
        return "a number with a fraction or an exponent"
    return "an array" if isinstance(value, list) else "an object"


async def _error(send: Send, message: str, status: int) -> None:
    error = {"code": INVALID_REQUEST, "message": message}
    await send_json(send, status, {"jsonrpc": "2.0", "id": None, "error": error}, {})


def _replaying(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if sent:
            return await receive()
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replay
