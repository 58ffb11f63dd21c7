"""`/toolsets/{id}/...`: the HTTP API and MCP endpoint of one toolset, at a path of its own.

`/toolsets/{id}/mcp`, `/toolsets/{id}/openapi.json`, `/toolsets/{id}/v1/tools`,
`/toolsets/{id}/v1/tools/{name}[/call]` and `/toolsets/{id}/v1/tool_calls` are the gateway's
own endpoints with `?toolset={id}` (replacing any `toolset` the query gives): this adapter
rewrites the request so, and moves the prefix into the ASGI `root_path`, so that the
toolset's OpenAPI document names `/toolsets/{id}` as its server and its operations
(`/v1/tools/{name}/call`) resolve under it. Other paths under `/toolsets/` are 404.

It trusts nothing of the path but its shape: the id goes on as a query value, and an unknown
one is answered by the endpoint (404, after authentication, like an unknown tool).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import parse_qsl, unquote, urlencode

import orjson

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
App = Callable[[Scope, Receive, Send], Awaitable[None]]

PREFIX = "/toolsets/"
ENDPOINTS = ("/mcp", "/openapi.json", "/v1/tools", "/v1/tool_calls")
"""What a toolset serves under its prefix (and `/v1/tools/...` below the tool list)."""


class ToolsetPaths:
    """ASGI middleware: `/toolsets/{id}/<endpoint>` -> `<endpoint>?toolset={id}`."""

    def __init__(self, app: App) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or not path.startswith(PREFIX):
            await self.app(scope, receive, send)
            return
        ident, _, rest = path[len(PREFIX) :].partition("/")
        tail = "/" + rest
        if not ident or not (tail in ENDPOINTS or tail.startswith("/v1/tools/")):
            await _not_found(send)
            return
        query = [
            (key, value)
            for key, value in parse_qsl(scope.get("query_string", b"").decode("latin-1"), True)
            if key != "toolset"
        ]
        query.append(("toolset", unquote(ident)))
        scope = {
            **scope,
            "path": tail,
            "raw_path": tail.encode("latin-1", "replace"),
            "root_path": scope.get("root_path", "") + PREFIX + ident,
            "query_string": urlencode(query).encode("latin-1"),
        }
        await self.app(scope, receive, send)


async def _not_found(send: Send) -> None:
    body = orjson.dumps(
        {
            "error": {
                "type": "not_found",
                "message": "no such endpoint: a toolset serves /mcp, /openapi.json, /v1/tools, "
                "/v1/tools/{name}, /v1/tools/{name}/call and /v1/tool_calls under "
                "/toolsets/{id}",
            }
        }
    )
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": 404, "headers": headers})
    await send({"type": "http.response.body", "body": body})
