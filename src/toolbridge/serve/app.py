"""The HTTP API: a thin Starlette adapter over `Gateway`; its bodies and errors are bodies.py's.

Authentication happens here (the `Authorization` header becomes a `Principal`); everything
else is the gateway's. Every error body is `{"error": {"type": ..., "message": ...}}`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, TypeVar, overload
from urllib.parse import parse_qsl, unquote

import orjson
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from toolbridge import json_text
from toolbridge.bulk import give_back, keep_large_apart
from toolbridge.discovery import View, flag, parse_view
from toolbridge.errors import (
    Forbidden,
    InvalidArguments,
    ShuttingDown,
    ToolbridgeError,
    ToolNotFound,
    quoted,
)
from toolbridge.file_stamps import FileStamp
from toolbridge.gateway import Gateway
from toolbridge.local.context import CallContext
from toolbridge.policy import Principal
from toolbridge.serve.admin import Admin
from toolbridge.serve.admin import routes as admin_routes
from toolbridge.serve.bodies import (
    error_parts,
    error_response,
    http_error,
    internal_error,
    json_body,
    json_response,
    not_json,
    read_body,
    result_body,
    send_json,
)
from toolbridge.serve.departures import GONE_STATUS, ClientGone, unless_gone
from toolbridge.serve.describe import describe, describe_filter, describe_source
from toolbridge.serve.draining import Drain
from toolbridge.serve.edge import Edge
from toolbridge.serve.lists import http_answer, openapi_json, tools_json
from toolbridge.serve.live import Live
from toolbridge.serve.mcp_start import PATH as MCP_PATH
from toolbridge.serve.mcp_start import DeferredMcp
from toolbridge.serve.me import Me
from toolbridge.serve.redacting import Redacting, already_redacted
from toolbridge.serve.request_context import request_context, scope_url
from toolbridge.serve.shared import Shared
from toolbridge.serve.siblings import Siblings
from toolbridge.serve.toolset_paths import ToolsetPaths
from toolbridge.serve.turns import INTERNAL, run_turn
from toolbridge.tools import PythonFunction

logger = logging.getLogger(__name__)

App = ASGIApp
"""What `create_app` returns, for modules that must not import Starlette themselves."""


T = TypeVar("T")


class ScopeHeaders(Mapping[str, str]):
    """The request headers of an ASGI scope, looked up case-insensitively, decoded on demand."""

    def __init__(self, raw: list[tuple[bytes, bytes]]) -> None:
        self._raw = raw

    def __getitem__(self, name: str) -> str:
        found = self.get(name)
        if found is None:
            raise KeyError(name)
        return found

    @overload
    def get(self, name: str, /) -> str | None: ...

    @overload
    def get(self, name: str, /, default: str | T) -> str | T: ...

    def get(self, name: str, /, default: object = None) -> object:
        # Without raising and catching KeyError, as Mapping.get would: most lookups miss.
        key = name.lower().encode("latin-1")
        for header, value in self._raw:
            if header == key:
                return value.decode("latin-1")
        return default

    def __iter__(self) -> Iterator[str]:
        return (header.decode("latin-1") for header, _ in self._raw)

    def __len__(self) -> int:
        return len(self._raw)


class CallEndpoint:
    """`POST /v1/tools/{name}/call` as a raw ASGI handler in front of the Starlette routes.

    It is the hot path of the gateway: skipping the router, the middleware stack and the
    Request object halves what the HTTP layer costs per call (bench/proxy.py).
    """

    PREFIX = "/v1/tools/"
    SUFFIX = "/call"

    def __init__(self, app: ASGIApp, gateway: Gateway) -> None:
        self.app = app
        self.gateway = gateway

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if (
            scope["type"] != "http"
            or not path.startswith(self.PREFIX)
            or not path.endswith(self.SUFFIX)
            or "/" in path[len(self.PREFIX) : -len(self.SUFFIX)]
        ):
            await self.app(scope, receive, send)
            return
        if scope["method"] != "POST":
            await send_json(
                send,
                405,
                {"error": {"type": "method_not_allowed", "message": "use POST"}},
                {"Allow": "POST"},
            )
            return
        name = unquote(path[len(self.PREFIX) : -len(self.SUFFIX)])
        headers = ScopeHeaders(scope["headers"])
        try:
            principal = self.gateway.authenticate(headers.get("authorization"))
            query = scope.get("query_string")
            view = parse_view(dict(parse_qsl(query.decode("latin-1")))) if query else None
            tool = self.gateway.tool(principal, name, view)  # 404 before reading the body
            context = (
                request_context(principal, headers, url=scope_url(scope, headers))
                if isinstance(tool.target, PythonFunction) and tool.target.injected
                else None  # else the gateway reads what filters need from the headers
            )
            raw = await read_body(receive)
            try:
                arguments = json_text.loads(raw) if raw.strip() else {}
            except orjson.JSONDecodeError as exc:
                problem = not_json(raw, headers.get("content-encoding"), exc)
                raise InvalidArguments(name, [("$", problem)]) from None
            if "text/event-stream" in headers.get("accept", ""):
                await self._stream(send, principal, name, arguments, headers, context, view)
                return
            events: list[Any] = []
            call = self.gateway.call(
                principal,
                name,
                arguments,
                caller_headers=headers,
                on_event=events.append,
                argument_bytes=len(raw),
                context=context,
                view=view,
            )
            result = await unless_gone(receive, call)
        except ClientGone:
            await send({"type": "http.response.start", "status": GONE_STATUS, "headers": []})
            await send({"type": "http.response.body", "body": b""})
            return
        except asyncio.CancelledError:
            # uvicorn ends what its shutdown's grace period did not see finish: said in our
            # words (it would answer a plain-text 500), and the request ends here.
            status, body, extra = error_parts(ShuttingDown())
            await send_json(send, status, body, extra)
            return
        except ToolbridgeError as exc:
            status, body, extra = error_parts(exc)
            await send_json(send, status, body, extra)
            return
        except Exception:  # a bug of ours: a JSON 500 in our words, the traceback in the log
            logger.exception("call of %s failed", name)
            await send_json(send, 500, {"error": {"type": "internal", "message": INTERNAL}}, {})
            return
        answer = result_body(result)
        if events:
            answer["events"] = events  # what a local tool emitted while it ran, in order
        await send_json(send, 200, answer, {})

    async def _stream(
        self,
        send: Send,
        principal: Principal,
        name: str,
        arguments: Any,
        headers: Mapping[str, str],
        context: CallContext | None,
        view: View | None,
    ) -> None:
        """The call as server-sent events: each event the tool emits (`event: event`), then
        `event: result` with the usual answer, or `event: error` with the error body."""
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()

        def on_event(event: Any) -> None:
            # Sync tools run in a worker thread: hand the event to the loop's thread.
            loop.call_soon_threadsafe(queue.put_nowait, ("event", event))

        async def run() -> None:
            try:
                result = await self.gateway.call(
                    principal,
                    name,
                    arguments,
                    caller_headers=headers,
                    on_event=on_event,
                    context=context,
                    view=view,
                )
                loop.call_soon(queue.put_nowait, ("result", result_body(result)))
            except ToolbridgeError as exc:
                loop.call_soon(queue.put_nowait, ("error", error_parts(exc)[1]))

        task = asyncio.create_task(run())
        start_headers = [
            (b"content-type", b"text/event-stream"),
            (b"cache-control", b"no-cache"),
            (b"x-accel-buffering", b"no"),  # proxies must not hold events back
        ]
        await send({"type": "http.response.start", "status": 200, "headers": start_headers})
        try:
            while True:
                kind, data = await queue.get()
                message = b"event: " + kind.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"
                await send({"type": "http.response.body", "body": message, "more_body": True})
                if kind != "event":
                    break
        finally:
            await task
        await send({"type": "http.response.body", "body": b"", "more_body": False})


def create_app(
    gateway: Gateway,
    *,
    config_file: Path | None = None,
    siblings: Siblings | None = None,
    shared: Shared | None = None,
    applied: Callable[[], None] | None = None,
    read: Mapping[Path, FileStamp] | None = None,
) -> ASGIApp:
    """The ASGI app serving `gateway`; it must already be loaded (or entered).

    Args:
        config_file: the file the gateway's config came from, watched (unless the config says
            `watch: false`) so that an edit reloads it.
        siblings: the other worker processes of `serve --workers N`, which apply every reload
            and approval this one takes.
        shared: the state store (registered sources, callers' data, other replicas); without
            it the admin API's writes and `/v1/me` answer that there is no state.
        applied: told after each reload this process applied.
        read: the stamps the config file and local tool files had when they were read, for
            the watchers to start from (documents keep their own).
    """
    keep_large_apart()  # list answers are megabytes: they must not fragment the heap
    # The MCP SDK takes over half a second to import: it loads in the background (mcp_start).
    mcp = DeferredMcp(gateway)

    drain = Drain()  # SIGTERM's `http.shutdown_delay` (draining.py)
    live = Live(
        gateway,
        tools_changed=mcp.tools_changed,
        config_file=config_file,
        siblings=siblings,
        shared=shared,
        applied=applied,
        read=read,
    )

    Handler = Callable[[Request, Principal], Awaitable[Response]]

    def endpoint(
        handler: Handler, *, public: bool = False
    ) -> Callable[[Request], Awaitable[Response]]:
        async def run(request: Request) -> Response:
            try:
                principal = (
                    gateway.authenticate(request.headers.get("authorization"))
                    if not public
                    else Principal(id="-")
                )
                return await handler(request, principal)
            except ToolbridgeError as exc:
                return error_response(exc)
            except asyncio.CancelledError:  # the end of shutdown's grace period, as above
                return error_response(ShuttingDown())

        return run

    async def list_tools(request: Request, principal: Principal) -> Response:
        view = parse_view(request.query_params)
        fmt, strict = view.format or "openai", view.strict
        listing = gateway.listing(principal, view)  # built once per generation, then bytes
        answer = await listing.answer(
            ("tools", fmt, strict), lambda: tools_json(listing.tools, fmt, strict=strict)
        )
        already_redacted(request.scope)  # as it was built (`Listing.answer`)
        return _listed(*http_answer(answer, request.headers))

    async def get_tool(request: Request, principal: Principal) -> Response:
        view = parse_view(request.query_params)
        tool = gateway.tool(principal, request.path_params["name"], view)
        return json_response(describe(tool, gateway.frontmatter(tool)))

    async def openapi(request: Request, principal: Principal) -> Response:
        view = parse_view(request.query_params)
        listing = gateway.listing(principal, view)
        title = f"toolbridge: {view.toolset}" if view.toolset else "toolbridge"
        server_url, authenticated = str(request.base_url), not gateway.open
        # A generator: nothing is built until the answer is wanted.
        parts = openapi_json(listing.tools, server_url, title=title, authenticated=authenticated)
        answer = await listing.answer(("openapi", server_url, title, authenticated), lambda: parts)
        already_redacted(request.scope)  # as it was built (`Listing.answer`)
        return _listed(*http_answer(answer, request.headers))

    async def tool_calls(request: Request, principal: Principal) -> Response:
        view = parse_view(request.query_params)
        if view.toolset is not None and view.toolset not in gateway.toolsets:
            # (as every other surface of an unknown toolset: not a turn of failed calls)
            raise ToolNotFound(f"no toolset named {quoted(view.toolset)}")
        payload = await json_body(request)
        context = request_context(principal, request.headers, url=str(request.url))
        turn = run_turn(
            gateway,
            principal,
            payload,
            caller_headers=request.headers,
            context=context,
            view=view,
        )
        try:
            answer = await unless_gone(request.receive, turn)
        except ClientGone:
            return Response(status_code=GONE_STATUS)
        return json_response(answer)

    async def servers(request: Request, principal: Principal) -> Response:
        held = gateway.held()
        listed = None if principal.admin else gateway.listing(principal).tools
        usable = Counter(t.source for t in listed) if listed is not None else None
        body: dict[str, Any] = {
            "servers": [
                describe_source(s, held.get(s.id), usable=None if usable is None else usable[s.id])
                for s in gateway.sources(principal)
            ]
        }
        if gateway.config.filters and principal.admin:
            body["filters"] = [describe_filter(f) for f in gateway.filters()]
        if shared is not None:
            for entry in (*body["servers"], *body.get("filters", ())):
                entry["location"] = shared.shown(entry["location"])
        return json_response(body)

    async def reload(request: Request, principal: Principal) -> Response:
        if not principal.admin:
            raise Forbidden("reloading is for admins")
        dry_run = flag("dry_run", request.query_params.get("dry_run"))
        return json_response(await live.reload(dry_run=dry_run, by=principal.id))

    async def approve(request: Request, principal: Principal) -> Response:
        if not principal.admin:
            raise Forbidden("approving a held change is for admins")
        return json_response(await live.approve(request.path_params["id"], by=principal.id))

    async def healthz(request: Request, principal: Principal) -> Response:
        return json_response({"status": "ok"})

    async def readyz(request: Request, principal: Principal) -> Response:
        sources = gateway.sources()
        unread = shared.unread() if shared is not None else None
        body = {
            "status": "ready",
            "tools": len(gateway.catalog),
            "sources": len(sources),
            "mcp": mcp.state,
        }
        if unread is not None:  # a load balancer sends its callers to a replica that has all
            return json_response({**body, "status": "not_ready", "reason": unread}, 503)
        if drain.since is not None:  # (it still serves: the balancer sends no one new)
            reason = "shutting down: draining before the server stops (`http.shutdown_delay`)"
            return json_response({**body, "status": "stopping", "reason": reason}, 503)
        return json_response(body)

    async def metrics(request: Request, principal: Principal) -> Response:
        from toolbridge.metrics import CONTENT_TYPE

        auth = gateway.config.auth
        readers = auth.metrics if auth is not None else "public"
        if readers != "public":  # (as the config says now: it may change on any reload)
            principal = gateway.authenticate(request.headers.get("authorization"))
            if readers == "admins" and not principal.admin:
                raise Forbidden("`/metrics` is for admins (`auth.metrics: admins`)")
        return Response(gateway.metrics.exposition(), media_type=CONTENT_TYPE)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        # The MCP SDK loads after the rest has started: its import would slow a start down.
        async with gateway, live.running(), mcp.lifespan():
            drain.install(lambda: gateway.config.http.shutdown_delay)  # uvicorn's handler is set
            yield

    routes = Starlette(
        routes=[
            Route("/v1/tools", endpoint(list_tools), methods=["GET"]),
            Route("/v1/tools/{name}", endpoint(get_tool), methods=["GET"]),
            Route("/v1/tool_calls", endpoint(tool_calls), methods=["POST"]),
            Route("/openapi.json", endpoint(openapi), methods=["GET"]),
            Route("/v1/servers", endpoint(servers), methods=["GET"]),
            Route("/v1/admin/reload", endpoint(reload), methods=["POST"]),
            Route("/v1/admin/sources/{id}/approve", endpoint(approve), methods=["POST"]),
            Route("/healthz", endpoint(healthz, public=True), methods=["GET"]),
            Route("/readyz", endpoint(readyz, public=True), methods=["GET"]),
            Route("/metrics", endpoint(metrics, public=True), methods=["GET"]),
            *admin_routes(
                Admin(gateway, live, shared),
                Me(gateway, shared),
                endpoint,
                json_body,
                json_response,
            ),
            Route(MCP_PATH, mcp),  # every method: the SDK answers POST, GET and DELETE
        ],
        lifespan=lifespan,
        exception_handlers={HTTPException: http_error, Exception: internal_error},
    )
    routes.router.redirect_slashes = False  # (the edge drops a trailing slash)
    # Requests the edge refuses reach no route (edge.py); secrets never leave in an answer,
    # whichever route made it (redacting.py).
    paths = ToolsetPaths(CallEndpoint(routes, gateway))
    redacted = Redacting(paths, lambda: gateway.secrets)
    return drain.closing(Edge(redacted, lambda: (gateway.config.http, gateway.open)))


def _listed(status: int, headers: dict[str, str], body: bytes | Iterator[bytes]) -> Response:
    if isinstance(body, bytes):
        return Response(body, status_code=status, headers=headers, media_type="application/json")
    return StreamingResponse(_each(body), status, headers, media_type="application/json")


async def _each(pieces: Iterator[bytes]) -> AsyncIterator[bytes]:
    """A large list answer sent piece by piece; then what sending it freed is given back: the
    pieces (and the redaction's copies of a plain answer's) left the heap spread, and the
    serving corpus kept about 5 MiB of them in 3 starts of 9 (`bench/catalog.py`)."""
    for piece in pieces:  # a megabyte decompressed, or a piece read, at a time: quick enough
        yield piece
    give_back()
