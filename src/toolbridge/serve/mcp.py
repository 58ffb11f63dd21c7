"""`/mcp`: the gateway as an MCP server over streamable HTTP, built on the `mcp` SDK.

A thin adapter, like app.py. Each HTTP request is authenticated here, before the SDK sees it,
and `tools/list` and `tools/call` go to `Gateway.list_tools` and `Gateway.call` for that
request's principal: MCP callers get exactly the access decisions of the HTTP API.

- **Stateless** by default: every POST is served on its own, with no session, so several
  gateway processes behind a load balancer serve one client. Clients of the 2.x SDK probe
  `server/discover` and speak the 2026-07-28 protocol (one request, one answer); older
  clients send `initialize` and then each request with the negotiated version.
- **Tool changes**: `tools_changed()` (call it after a reload) reaches the clients that keep
  a `subscriptions/listen` stream open (2026-07-28). Stateless handshake-era clients have no
  stream to be told on, so they are told nothing (their `initialize` says `listChanged:
  false`): they list the tools again when they start, or when a call answers that a tool is
  unknown. `stateful=True` keeps SDK sessions instead, and sends their GET streams
  `notifications/tools/list_changed`; a stateful gateway needs sticky sessions behind a load
  balancer.
- **Results**: text content (JSON text for JSON), plus `structuredContent` for a JSON object
  from a successful call. A successful call is never made an error here: an answer that does
  not fit the tool's output schema is passed on as the upstream gave it (the gateway counts
  it: outputs.py). That is why `tools/list` declares an `outputSchema` (which clients hold
  results to) only where answers are promised to fit (`Tool.output_promised`: local tools'
  return models, and servers with `output_schema: publish`).
- **Rich results**: an HTML view a local tool made for the person (`ToolResult.embeds`) is an
  embedded `text/html` resource (`ui://toolbridge/<tool>/<n>`) after the text the model reads.
- **Interaction**: the call's `_meta` context, a tool's events as progress and log
  notifications, and `__event_call__` as elicitation: see `mcp_interaction`.
- **Errors**: `call_error` is the one place errors become MCP.
"""

from __future__ import annotations

import contextlib
import logging
import warnings
from collections import OrderedDict
from collections.abc import AsyncIterator
from dataclasses import replace
from http import HTTPStatus
from typing import Any, Final
from urllib.parse import parse_qs

import anyio
import orjson
from mcp import types
from mcp.server import NotificationOptions, Server, ServerRequestContext
from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser
from mcp.server.auth.provider import AccessToken
from mcp.server.context import CallNext, HandlerResult
from mcp.server.models import InitializationOptions
from mcp.server.session import ServerSession
from mcp.server.streamable_http import MCP_SESSION_ID_HEADER
from mcp.server.streamable_http_manager import DEFAULT_MAX_SESSIONS, StreamableHTTPSessionManager
from mcp.server.subscriptions import InMemorySubscriptionBus, ListenHandler, ToolsListChanged
from mcp.shared.exceptions import MCPDeprecationWarning, MCPError
from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from toolbridge import __version__
from toolbridge.discovery import View, parse_view
from toolbridge.errors import (
    AnswerNeeded,
    BadRequest,
    ToolbridgeError,
    ToolNotFound,
    Unauthenticated,
)
from toolbridge.formats.render import promises_output
from toolbridge.gateway import Gateway
from toolbridge.openapi.bodies import body_kind
from toolbridge.policy import Principal
from toolbridge.serve.bodies import MAX_REQUEST_BYTES, headers_text, json_response
from toolbridge.serve.mcp_ids import checked_body
from toolbridge.serve.mcp_interaction import (
    LogLevels,
    asker,
    binding,
    input_required,
    meta_context,
    relayed_events,
)
from toolbridge.serve.mcp_lists import SCOPE_KEY, SPLICE_META, Splices, StaleCursor, page, splicing
from toolbridge.serve.mcp_start import PATH as PATH
from toolbridge.serve.request_context import request_context
from toolbridge.serve.turns import INTERNAL
from toolbridge.tools import Tool, ToolResult

logger = logging.getLogger(__name__)

NOTIFY_TIMEOUT: Final = 5.0
"""Seconds one stateful session may take to accept a change notification before it is skipped."""

_NO_GET_STREAM: Final = (
    "this gateway's MCP endpoint is stateless: it answers each POST on its own and keeps no "
    "stream for GET; clients of the 2026-07-28 protocol hear of tool changes through "
    "subscriptions/listen"
)
_PRINCIPAL: Final = "toolbridge.principal"
"""The scope key the authenticated principal travels under, from `McpApp` to the handlers."""

Context = ServerRequestContext[dict[str, Any], Any]


class McpApp:
    """The `/mcp` endpoint: an ASGI app, and `lifespan()` for the hosting app's lifespan.

    Route it at `PATH` in the Starlette app (`Route(PATH, mcp_app)`: every method goes to the
    SDK), and enter `lifespan()` once the gateway is loaded: the SDK's session manager runs its
    requests in a task group that lives there.
    """

    def __init__(self, gateway: Gateway, *, stateful: bool = False) -> None:
        self.gateway = gateway
        self.stateful = stateful
        self._bus = InMemorySubscriptionBus()
        self._listen = ListenHandler(self._bus)
        self._sessions = _Sessions(DEFAULT_MAX_SESSIONS) if stateful else None
        self._log_levels = LogLevels(DEFAULT_MAX_SESSIONS)
        with warnings.catch_warnings():
            # The SDK warns that 2026-07-28 drops `logging/setLevel`; the earlier protocols
            # we serve have it, and their log entries need the capability it declares.
            warnings.simplefilter("ignore", MCPDeprecationWarning)
            self.server = _Server(
                "toolbridge",
                version=__version__,
                title="toolbridge",
                # Our input schemas keep only standard JSON Schema keywords, never
                # `x-mcp-header`, so the SDK's Mcp-Param-* header check has nothing to compare.
                # Saying so spares it a full tools/list before every 2026-07-28 call.
                get_tool_input_schema=lambda name: None,
                on_list_tools=self._list_tools,
                on_call_tool=self._call_tool,
                on_subscriptions_listen=self._listen,
                on_set_logging_level=self._log_levels.set,
            )
        self.server.announce_tools_changed = stateful
        if self._sessions is not None:
            self.server.middleware.append(self._sessions.track)
        self._manager = StreamableHTTPSessionManager(
            self.server, stateless=not stateful, max_request_body_size=MAX_REQUEST_BYTES
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = Headers(scope=scope)
        try:
            principal = self.gateway.authenticate(headers.get("authorization"))
        except Unauthenticated as exc:
            await _unauthenticated(exc)(scope, receive, send)
            return
        toolset = parse_qs(scope.get("query_string", b"").decode("latin-1")).get("toolset")
        if toolset and toolset[-1] not in self.gateway.toolsets:
            body = {"error": {"type": "not_found", "message": f"no toolset named {toolset[-1]!r}"}}
            await Response(orjson.dumps(body), 404, media_type="application/json")(
                scope, receive, send
            )
            return
        if scope["method"] == "GET" and not self.stateful:
            # A stateless server has no stream to send on: the SDK would hold one open, with
            # nothing ever to come, for every GET (1,000 of them held 89 MiB). MCP allows 405.
            body = {"error": {"type": "method_not_allowed", "message": _NO_GET_STREAM}}
            await json_response(body, 405, {"Allow": "POST"})(scope, receive, send)
            return
        if scope["method"] == "POST":
            replay = await checked_body(receive, send)
            if replay is None:
                return
            receive = replay
        splices = Splices()
        scope = {**scope, _PRINCIPAL: principal, SCOPE_KEY: splices}
        if self._sessions is not None:
            # The SDK binds each session to the principal that opened it, through the
            # Starlette user it knows, so that a leaked session id is no use to anyone else.
            token = AccessToken(token="-", client_id=principal.id, scopes=[])
            scope["user"] = AuthenticatedUser(token)
            session_id = headers.get(MCP_SESSION_ID_HEADER)
            if scope["method"] == "DELETE" and session_id:
                self._sessions.forget(session_id)
        send = splicing(send, splices, headers.get("accept-encoding"))
        await self._manager.handle_request(scope, receive, send)

    @contextlib.asynccontextmanager
    async def lifespan(self) -> AsyncIterator[None]:
        async with self._manager.run():
            try:
                yield
            finally:
                # Listen streams still open now end with their closing frame. (uvicorn closes
                # connections before the lifespan ends: its clients see the stream lost, and
                # listen again elsewhere, as the spec expects of them.)
                self._listen.close()

    async def tools_changed(self) -> None:
        """Tell the clients that can be told that the tool list changed (after a reload)."""
        await self._bus.publish(ToolsListChanged())
        if self._sessions is not None:
            await self._sessions.notify()

    # -- the two tool methods ------------------------------------------------------------

    async def _list_tools(
        self, ctx: Context, params: types.PaginatedRequestParams | None
    ) -> types.ListToolsResult:
        principal, _ = _caller(ctx)
        listing = self.gateway.listing(principal, _view(ctx))
        cursor = params.cursor if params is not None else None
        try:
            answer, next_cursor = await page(listing, cursor, self.gateway.config.mcp.page_size)
        except StaleCursor as exc:
            raise MCPError(types.INVALID_PARAMS, str(exc)) from None
        splices = ctx.request.scope[SCOPE_KEY] if isinstance(ctx.request, Request) else None
        if not isinstance(splices, Splices):
            raise MCPError(types.INVALID_REQUEST, "unauthenticated: serve this through McpApp")
        # An empty page marked with a token; `splicing` puts the kept page in its place as the
        # answer goes out. The result's cache defaults (ttlMs 0, cacheScope private) are
        # right: the list is per caller, and a reload may change it at any time.
        return types.ListToolsResult(
            tools=[], next_cursor=next_cursor, meta={SPLICE_META: splices.add(answer)}
        )

    async def _call_tool(
        self, ctx: Context, params: types.CallToolRequestParams
    ) -> types.CallToolResult | types.InputRequiredResult:
        principal, headers = _caller(ctx)
        arguments = params.arguments or {}
        view = _view(ctx)
        try:
            tool = self.gateway.tool(principal, params.name, view)
            url = str(ctx.request.url) if isinstance(ctx.request, Request) else None
            context = meta_context(request_context(principal, headers, url=url), params.meta)
            bind = binding(tool.name, arguments, principal.id)
            context = replace(context, ask=asker(ctx, params, bind=bind))
            chosen = self._log_levels.of(ctx)
            async with relayed_events(ctx, tool.name, chosen) as on_event:
                result = await self.gateway.call(
                    principal,
                    tool.name,
                    arguments,
                    caller_headers=headers,
                    on_event=on_event,
                    context=context,
                    view=view,
                )
        except AnswerNeeded as pending:
            return input_required(pending)
        except ToolbridgeError as exc:
            return call_error(exc)
        except Exception:  # a bug of ours: said in our words, never an exception's (or codec's)
            logger.exception("MCP call of %s failed", params.name)
            return _failed(INTERNAL)
        return self.tool_result(tool, result)

    def tool_result(self, tool: Tool, result: ToolResult) -> types.CallToolResult:
        """A gateway result as MCP's: text (or an image), structured content, `isError`
        exactly when the call failed."""
        said = headers_text(result)
        if not result.ok:
            return _failed(_failure_text(result) + (f"\n\n{said}" if said else ""))
        broken = self.gateway.output_mismatch(tool, result) if promises_output(tool) else None
        if broken is not None:
            # `tools/list` promised its outputSchema, which SDK clients hold a successful result
            # to (they raise, and the model never sees it): one that breaks it goes as an error,
            # its text whole, so the model reads what the tool said (often an error message).
            why = f"(the answer does not fit the tool's output schema: {broken})"
            return _failed(f"{_text(result)}\n\n{why}")
        structured = result.result if _is_json_object(result) else None
        content: list[types.ContentBlock] = [_content(result)]
        if said is not None:  # the next page, a new thing's location: beside the answer
            content.append(types.TextContent(text=said))
        content += [
            types.EmbeddedResource(
                resource=types.TextResourceContents(
                    uri=f"ui://toolbridge/{tool.name}/{index}",
                    mime_type=embed.content_type,
                    text=embed.content,
                )
            )
            for index, embed in enumerate(result.embeds, start=1)
        ]
        return types.CallToolResult(content=content, structured_content=structured)


def create_mcp_app(gateway: Gateway, *, stateful: bool = False) -> McpApp:
    """The `/mcp` endpoint for a loaded gateway (see `McpApp` for mounting it); callers are
    authenticated by the gateway's current keys, so a reload revokes a key at once."""
    return McpApp(gateway, stateful=stateful)


# -- errors --------------------------------------------------------------------------------


def call_error(exc: ToolbridgeError) -> types.CallToolResult:
    """The one place errors become MCP, as the spec divides them.

    An unknown tool is a protocol error: JSON-RPC -32602 (invalid params). A tool the caller
    may not use is unknown to them, as on the HTTP API (404). Everything that goes wrong while
    calling a tool the caller has (invalid arguments, an upstream that is down or slow, an
    upstream 4xx/5xx, a local tool that raised) is a tool result with `isError`, which the
    model reads and can act on: fix its arguments, or try again later.
    """
    if isinstance(exc, ToolNotFound):
        raise MCPError(types.INVALID_PARAMS, str(exc)) from None
    return _failed(str(exc))


def _failed(text: str) -> types.CallToolResult:
    return types.CallToolResult(content=[types.TextContent(text=text)], is_error=True)


def _unauthenticated(exc: Unauthenticated) -> Response:
    # As the HTTP API answers (app.py's error table), so every endpoint says it the same way.
    body = {"error": {"type": "unauthenticated", "message": str(exc)}}
    return Response(
        orjson.dumps(body),
        status_code=401,
        media_type="application/json",
        headers={"WWW-Authenticate": 'Bearer realm="toolbridge"'},
    )


def _caller(ctx: Context) -> tuple[Principal, Headers]:
    """Who sent the HTTP request a message came in, and its headers."""
    request = ctx.request
    principal = request.scope.get(_PRINCIPAL) if isinstance(request, Request) else None
    if not isinstance(request, Request) or not isinstance(principal, Principal):
        # Only reachable by serving `McpApp.server` without `McpApp` in front of it.
        raise MCPError(types.INVALID_REQUEST, "unauthenticated: serve this through McpApp")
    return principal, request.headers


def _view(ctx: Context) -> View:
    """What the request sees (`?toolset=`, `?mode=`; `/toolsets/{id}/mcp` arrives as the
    former), in MCP's format."""
    request = ctx.request
    query = request.query_params if isinstance(request, Request) else {}
    try:
        return parse_view(query, format="mcp")
    except BadRequest as exc:
        raise MCPError(types.INVALID_PARAMS, str(exc)) from None


# -- results -------------------------------------------------------------------------------


def _content(result: ToolResult) -> types.TextContent | types.ImageContent | types.AudioContent:
    value, mime = result.result, _mime(result.content_type)
    if isinstance(value, dict) and isinstance(value.get("base64"), str):
        # A binary answer (answers.py's shape): images and sound as MCP content of their own.
        if mime.startswith("image/"):
            return types.ImageContent(data=value["base64"], mime_type=mime)
        if mime.startswith("audio/"):
            return types.AudioContent(data=value["base64"], mime_type=mime)
    return types.TextContent(text=_text(result))


def _text(result: ToolResult) -> str:
    value = result.result
    if isinstance(value, str):
        return value
    if value is None and result.status is not None:
        return f"HTTP {_status_line(result.status)}, no content"
    return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()


def _failure_text(result: ToolResult) -> str:
    if result.status is None:  # a local tool: its message says it all
        return _text(result)
    line = f"the upstream answered HTTP {_status_line(result.status)}"
    return line if result.result is None else f"{line}:\n{_text(result)}"


def _status_line(status: int) -> str:
    try:
        return f"{status} {HTTPStatus(status).phrase}"
    except ValueError:
        return str(status)


def _mime(content_type: str | None) -> str:
    return (content_type or "").split(";")[0].strip().lower()


def _is_json(result: ToolResult) -> bool:
    mime = _mime(result.content_type)
    return not mime or body_kind(mime) == "json"


def _is_json_object(result: ToolResult) -> bool:
    return isinstance(result.result, dict) and _is_json(result)


# -- stateful sessions ----------------------------------------------------------------------


class _Server(Server[dict[str, Any]]):
    """The SDK's low-level server, saying in `initialize` whether tool changes are announced."""

    announce_tools_changed = False

    def create_initialization_options(
        self,
        notification_options: NotificationOptions | None = None,
        experimental_capabilities: dict[str, dict[str, Any]] | None = None,
        extensions: dict[str, dict[str, Any]] | None = None,
    ) -> InitializationOptions:
        if notification_options is None:
            notification_options = NotificationOptions(tools_changed=self.announce_tools_changed)
        return super().create_initialization_options(
            notification_options, experimental_capabilities, extensions
        )


class _Sessions:
    """The stateful (handshake-era) sessions seen lately, to tell when the tools change.

    The SDK does not say when a session ends by idling out, so the registry is bounded like
    the SDK's own session table, the least recently seen session leaving first; telling a
    session that has ended is a no-op.
    """

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._open: OrderedDict[str, ServerSession] = OrderedDict()

    async def track(self, ctx: Context, call_next: CallNext) -> HandlerResult:
        """Server middleware: note the session of every message that names one."""
        request = ctx.request
        session_id = request.headers.get(MCP_SESSION_ID_HEADER) if request is not None else None
        if session_id:
            self._open[session_id] = ctx.session  # any of its messages reaches its GET stream
            self._open.move_to_end(session_id)
            while len(self._open) > self._limit:
                self._open.popitem(last=False)
        return await call_next(ctx)

    def forget(self, session_id: str) -> None:
        self._open.pop(session_id, None)

    async def notify(self) -> None:
        async def tell(session: ServerSession) -> None:
            with anyio.move_on_after(NOTIFY_TIMEOUT):
                await session.send_tool_list_changed()

        async with anyio.create_task_group() as tg:
            for session in list(self._open.values()):
                tg.start_soon(tell, session)
