"""The last gate of every HTTP answer: configured secrets replaced by `redaction.MARKER`.

Results (an upstream error body that echoes the bearer token or the query key), error
messages, events, `/v1/servers`, `/metrics`, MCP: whatever the app sends goes through here,
scanned once per body message with the current generation's `Secrets` (a compiled alternation:
one pass, no copy when nothing matches). Response header values are redacted too. A body that
changes length gets its `content-length` fixed; a body sent in several messages under a
`content-length` is gathered first. Each message of a streamed body (server-sent events) is
one whole event here, so a secret is never split between two of them.

An answer redacted where it was built (list answers, kept compressed: `listings`) is marked
so with `already_redacted(scope)` and passes untouched: scanning zstd bytes finds nothing, and
gathering a large plain list whole would undo what streaming it saves.

Trusts nothing the app answers; adds next to no work while no secret is known. The secrets are
read as each body message goes (`secrets()`), so one learned during the call is found in its
own answer.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from toolbridge.blocking import off_loop
from toolbridge.redaction import Secrets

Message = MutableMapping[str, Any]
Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
"""ASGI's shapes, as Starlette spells them (this module needs no Starlette)."""


REDACTED = "toolbridge.redacted"
"""The scope key of a request's mark (a set: empty until the answer is marked)."""


def already_redacted(scope: Scope) -> None:
    """Mark this request's answer as redacted where it was built (no-op outside `Redacting`)."""
    mark = scope.get(REDACTED)
    if isinstance(mark, set):
        mark.add(True)


class Redacting:
    """ASGI middleware: every answer of `app`, with `secrets()` redacted from it."""

    def __init__(self, app: ASGIApp, secrets: Callable[[], Secrets]) -> None:
        self.app = app
        self.secrets = secrets

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start: Message | None = None
        gathered: list[bytes] | None = None
        mark: set[bool] = set()  # copies of the scope share it

        async def redacting_send(message: Message) -> None:
            nonlocal start, gathered
            if mark:
                await send(message)
                return
            kind = message["type"]
            if kind == "http.response.start":
                start = message
                return
            if kind != "http.response.body":
                await send(message)
                return
            # Read as the answer goes, not as the request came: a call may learn a secret
            # (an OAuth2 token fetched for it, the caller's own credential) on its way.
            secrets = self.secrets()
            if not secrets and gathered is None:
                if start is not None:
                    await send(start)
                    start = None
                await send(message)
                return
            body: bytes = message.get("body", b"")
            more = bool(message.get("more_body", False))
            if start is not None and more and gathered is None and _length(start) is not None:
                gathered = []  # a sized body in parts: redact it whole
            if gathered is not None:
                gathered.append(body)
                if more:
                    return
                body, gathered = b"".join(gathered), None
                message = {**message, "body": body}
            clean = await off_loop(len(body), secrets.bytes, body)
            if start is not None:
                await send(_fixed(start, secrets, len(clean) if clean is not body else None))
                start = None
            await send({**message, "body": clean} if clean is not body else message)

        await self.app({**scope, REDACTED: mark}, receive, redacting_send)


_PLAIN = frozenset({b"content-type", b"content-length", b"cache-control", b"x-accel-buffering"})
"""Headers whose values the app sets itself, from no input: not worth a scan."""


def _length(start: Message) -> int | None:
    for name, value in start.get("headers", ()):
        if name.lower() == b"content-length":
            return int(value)
    return None


def _fixed(start: Message, secrets: Secrets, length: int | None) -> Message:
    """The start message with redacted header values and, when the body changed, its length."""
    headers = []
    for name, value in start.get("headers", ()):
        if length is not None and name.lower() == b"content-length":
            value = str(length).encode()
        elif name not in _PLAIN:
            value = secrets.bytes(value)
        headers.append((name, value))
    return {**start, "headers": headers}
