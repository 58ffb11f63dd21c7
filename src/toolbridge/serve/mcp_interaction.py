"""A local tool's dealings with an MCP client while it runs: what the call brings besides its
arguments (`_meta`), the events it emits (progress and log notifications), and the questions
it asks (`__event_call__`, as MCP form elicitation).

- **Context**: `_meta` keys `toolbridge/chat_id`, `toolbridge/message_id`,
  `toolbridge/session_id`, `toolbridge/metadata`, `toolbridge/files`, `toolbridge/model` and
  `toolbridge/messages` (over the `X-Toolbridge-*` headers of the HTTP request).
- **Events**: each event a tool emits is sent as `notifications/progress` (when the call asked
  for progress: progress counts the events, the message says what happened) and as a
  `notifications/message` log entry at `info` (its data the event, its logger
  `toolbridge.events`), where the client takes log entries (on 2026-07-28, only when the
  request opted in with `_meta` `io.modelcontextprotocol/logLevel`; before it, unless the
  session asked for a level above `info` with `logging/setLevel`: `LogLevels`).
- **Questions**: only when the client declared the elicitation capability (form mode).
  `confirmation` and `input` events become a form elicitation (`confirmation`: accept is
  True; `input`: the text entered; decline or cancel: False). Clients of the 2026-07-28
  protocol are asked through input-required rounds: the call answers with the question and a
  `requestState`, the client calls again with the answer, and the tool runs again from the
  start, its earlier answers replayed in order (each bound to the exact question, the tool, its
  arguments and the caller). So what a tool does before it asks happens again on each round:
  ask before acting. A session that can take a server request (a stateful handshake-era
  session) is asked directly, mid-call. Elsewhere (stateless handshake-era clients, clients
  without the capability) `__event_call__` is None. Password inputs and `execute` events are
  never elicited (MCP forbids asking for secrets in a form; there is no browser to run code
  in): the tool gets `{"error": ...}`, the shape Open WebUI answers with when no browser is
  there.

Trust: `requestState` comes back from the client, which could change it. It carries only the
client's own answers, so a changed state can only say what the client could have answered
anyway; an answer counts only for the question, tool, arguments and caller it was given for.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import logging
import typing
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from typing import Any, Final

import orjson
from mcp import types
from mcp.server import ServerRequestContext
from mcp.server.connection import allowed_log_levels
from mcp.server.streamable_http import MCP_SESSION_ID_HEADER
from mcp_types.version import is_version_at_least

from toolbridge.errors import AnswerNeeded
from toolbridge.local.context import FIELDS, CallContext, EventCall

logger = logging.getLogger(__name__)

Context = ServerRequestContext[dict[str, Any], Any]

META_PREFIX: Final = "toolbridge/"
ROUNDS_VERSION: Final = "2026-07-28"
"""The first protocol whose `tools/call` asks through input-required rounds."""
MAX_QUESTIONS: Final = 16
"""Questions one call may ask; more get `{"error": ...}`."""
MAX_STATE_BYTES: Final = 64 * 1024
"""The largest `requestState` sent or read back (the answers given so far)."""
LOGGER: Final = "toolbridge.events"


def meta_context(context: CallContext, meta: Mapping[str, Any] | None) -> CallContext:
    """`context` with the `toolbridge/...` keys of a request's `_meta` applied."""
    given = {
        key.removeprefix(META_PREFIX): value
        for key, value in (meta or {}).items()
        if key.startswith(META_PREFIX) and key.removeprefix(META_PREFIX) in FIELDS
    }
    return context.updated(given, "_meta") if given else context


# -- events -------------------------------------------------------------------------------


@asynccontextmanager
async def relayed_events(
    ctx: Context, tool: str, chosen: frozenset[str] | None = None
) -> AsyncIterator[Callable[[Any], None]]:
    """A thread-safe event sink whose events go to the client as notifications, in order,
    all sent before the block ends; log entries only at the levels the request allows and the
    session `chosen` (`LogLevels.of`)."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[Any] = asyncio.Queue()
    levels = allowed_log_levels(ctx.protocol_version, ctx.meta)
    if chosen is not None:
        levels = levels & chosen
    done = object()

    def on_event(event: Any) -> None:
        loop.call_soon_threadsafe(queue.put_nowait, event)

    async def send() -> None:
        count = 0
        while (event := await queue.get()) is not done:
            count += 1
            try:
                await ctx.session.report_progress(count, None, _describe(event))
                if "info" in levels:
                    params = types.LoggingMessageNotificationParams(
                        level="info", data={"tool": tool, "event": event}, logger=LOGGER
                    )
                    await ctx.session.send_notification(
                        types.LoggingMessageNotification(params=params),
                        related_request_id=ctx.request_id,
                    )
            except Exception:  # a client gone away must not fail the call
                logger.debug("an event of %s could not be sent", tool, exc_info=True)

    sender = asyncio.create_task(send())
    try:
        yield on_event
    finally:
        loop.call_soon(queue.put_nowait, done)
        await sender


_LEVELS: Final = typing.get_args(types.LoggingLevel)
"""Log levels from the least severe (debug) up."""


class LogLevels:
    """The levels each stateful handshake-era session asked for with `logging/setLevel`, by
    its `Mcp-Session-Id` (the SDK gives each request a session object of its own).

    Bounded like the SDK's session table, the least recently set leaving first. A stateless
    endpoint has no session to remember a level for: there `logging/setLevel` is answered and
    holds for nothing after it (the 2026-07-28 protocol asks per request instead).
    """

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._chosen: OrderedDict[str, frozenset[str]] = OrderedDict()

    async def set(self, ctx: Context, params: types.SetLevelRequestParams) -> types.EmptyResult:
        """The `logging/setLevel` handler: this session's entries at `params.level` and up."""
        session = _session_id(ctx)
        if session is not None:
            self._chosen[session] = frozenset(_LEVELS[_LEVELS.index(params.level) :])
            self._chosen.move_to_end(session)
            while len(self._chosen) > self._limit:
                self._chosen.popitem(last=False)
        return types.EmptyResult()

    def of(self, ctx: Context) -> frozenset[str] | None:
        """The levels the request's session chose, or None when it chose none."""
        session = _session_id(ctx)
        return self._chosen.get(session) if session is not None else None


def _session_id(ctx: Context) -> str | None:
    request = ctx.request
    headers = getattr(request, "headers", None)
    found = headers.get(MCP_SESSION_ID_HEADER) if headers is not None else None
    return found if isinstance(found, str) and found else None


def _describe(event: Any) -> str:
    """A line for a progress notification: a status's description, else the event as JSON."""
    if isinstance(event, dict):
        data = event.get("data")
        if isinstance(data, dict):
            for key in ("description", "content", "message"):
                if isinstance(data.get(key), str):
                    return f"{event.get('type', 'event')}: {data[key]}"
    return orjson.dumps(event, option=orjson.OPT_NON_STR_KEYS).decode()[:1000]


# -- questions ----------------------------------------------------------------------------


def asker(ctx: Context, params: types.CallToolRequestParams, *, bind: str) -> EventCall | None:
    """Who answers this call's `__event_call__`, or None when nobody can."""
    capabilities = ctx.session.client_capabilities
    elicitation = capabilities.elicitation if capabilities is not None else None
    if elicitation is None or (elicitation.form is None and elicitation.url is not None):
        return None
    if is_version_at_least(ctx.protocol_version, ROUNDS_VERSION):
        return _Rounds(params, bind).ask
    if ctx.session.can_send_request:
        return _direct(ctx)
    return None


def binding(tool: str, arguments: Any, caller: str) -> str:
    """What an answer is bound to besides its question: the tool, its arguments, the caller."""
    raw = orjson.dumps([tool, arguments, caller], option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(raw).hexdigest()


def input_required(pending: AnswerNeeded) -> types.InputRequiredResult:
    """The answer to a call whose tool asked a question the client must answer first."""
    request = types.ElicitRequest.model_validate(pending.request)
    return types.InputRequiredResult(
        input_requests={pending.key: request}, request_state=pending.state
    )


def _direct(ctx: Context) -> EventCall:
    async def ask(event: Any) -> Any:
        rendered = _render(event)
        if isinstance(rendered, str):
            return {"error": rendered}
        params = rendered["params"]
        result = await ctx.session.elicit_form(
            params["message"], params["requestedSchema"], related_request_id=ctx.request_id
        )
        return _answer(event, result.action, result.content)

    return ask


class _Rounds:
    """Answers from the client's input-required rounds, replayed as the tool asks again."""

    def __init__(self, params: types.CallToolRequestParams, bind: str) -> None:
        self.bind = bind
        self.responses = params.input_responses or {}
        state = _decode(params.request_state, bind)
        self.answers: list[dict[str, Any]] = state.get("answers", [])
        self.asked: dict[str, str] = state.get("asked", {})
        self.count = 0

    async def ask(self, event: Any) -> Any:
        index, self.count = self.count, self.count + 1
        if index >= MAX_QUESTIONS:
            return {"error": f"a call may ask at most {MAX_QUESTIONS} questions over MCP"}
        rendered = _render(event)
        if isinstance(rendered, str):
            return {"error": rendered}
        question = _digest(rendered)
        if index < len(self.answers):
            if self.answers[index]["q"] == question:
                given = self.answers[index]
                return _answer(event, given["action"], given.get("content"))
            del self.answers[index:]  # the tool asks something else now: ask again
        key = f"ask{index + 1}"
        response = self.responses.get(key)
        if isinstance(response, types.ElicitResult) and self.asked.get(key) == question:
            recorded = {"q": question, "action": response.action, "content": response.content}
            self.answers.append(recorded)
            return _answer(event, response.action, response.content)
        state = _encode({"bind": self.bind, "answers": self.answers, "asked": {key: question}})
        if len(state) > MAX_STATE_BYTES:
            return {"error": f"the answers so far are over {MAX_STATE_BYTES} bytes to carry"}
        raise AnswerNeeded(key, rendered, state)


def _render(event: Any) -> dict[str, Any] | str:
    """The elicitation an Open WebUI event asks for, or why it cannot be asked over MCP."""
    kind = event.get("type") if isinstance(event, dict) else None
    data = event.get("data") if isinstance(event, dict) else None
    data = data if isinstance(data, dict) else {}
    title, text = data.get("title"), data.get("message")
    message = "\n\n".join(str(part) for part in (title, text) if part) or "Please confirm"
    if kind == "confirmation":
        schema: dict[str, Any] = {"type": "object", "properties": {}}
    elif kind == "input":
        input_type = data.get("type") or (data.get("input") or {}).get("type")
        if input_type == "password":
            return "a password cannot be asked for over MCP (a form must not request secrets)"
        value: dict[str, Any] = {"type": "string", "title": str(title or "Answer")}
        if data.get("placeholder"):
            value["description"] = str(data["placeholder"])
        if isinstance(data.get("value"), str) and data["value"]:
            value["default"] = data["value"]
        schema = {"type": "object", "properties": {"value": value}, "required": ["value"]}
    else:
        return f"{kind!r} events cannot be answered over MCP: only confirmation and input"
    return {
        "method": "elicitation/create",
        "params": {"mode": "form", "message": message, "requestedSchema": schema},
    }


def _answer(event: Any, action: str, content: Mapping[str, Any] | None) -> Any:
    if action != "accept":
        return False
    if event.get("type") == "confirmation":
        return True
    value = (content or {}).get("value")
    return value if isinstance(value, str) else False


def _digest(rendered: dict[str, Any]) -> str:
    return hashlib.sha256(orjson.dumps(rendered, option=orjson.OPT_SORT_KEYS)).hexdigest()


def _encode(state: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(orjson.dumps(state)).decode()


def _decode(raw: str | None, bind: str) -> dict[str, Any]:
    """The state a client sent back, or {} when there is none or it is not ours to use."""
    if not raw or len(raw) > MAX_STATE_BYTES:
        return {}
    try:
        state = orjson.loads(base64.urlsafe_b64decode(raw.encode()))
    except (ValueError, orjson.JSONDecodeError):
        return {}
    if not isinstance(state, dict) or state.get("bind") != bind:
        return {}
    answers = state.get("answers")
    asked = state.get("asked")
    if not isinstance(answers, list) or not isinstance(asked, dict):
        return {}
    if not all(isinstance(a, dict) and isinstance(a.get("q"), str) for a in answers):
        return {}
    return {"answers": answers[:MAX_QUESTIONS], "asked": asked}
