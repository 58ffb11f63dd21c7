"""One model turn's tool calls, run concurrently, answered in the shape the model's API reads back.

Three families of payload are recognised, each answered with what the client appends next:

- OpenAI Chat Completions: a `tool_calls` array, the assistant message holding it, or a whole
  completion (`choices`, one choice). Answer: `{"messages": [{"role": "tool", "tool_call_id",
  "content"}, ...]}`, to append to `messages`.
- OpenAI Responses: `function_call` items, alone or in a list, or `{"output": [...]}` /
  `{"input": [...]}` holding them. Answer: `{"items": [{"type": "function_call_output",
  "call_id", "output"}, ...]}`, to append to `input`.
- Anthropic Messages: `tool_use` blocks, alone or in a list, or the assistant message holding
  them. Answer: `{"messages": [{"role": "user", "content": [{"type": "tool_result",
  "tool_use_id", "content", "is_error"}, ...]}]}`, to append to `messages`: Anthropic takes tool
  results in a user message (before any text of that message), so the answer is that message.
- Gemini: `functionCall` parts (`function_call`, as the Python SDK dumps them), alone or in a
  list, the `model` content holding them (`{"role": "model", "parts": [...]}`), or a whole
  response (`candidates`, one candidate). Answer: `{"contents": [{"role": "user", "parts":
  [{"functionResponse": {"name", "id", "response"}}, ...]}]}`, to append to `contents`; the
  `response` is `{"output": ...}`, or `{"error": ...}` for a call that failed (as the Gemini
  API reads it), holding what the other families' content holds; `id` only where the call had
  one. A conversation, `{"contents": [...]}`, runs the calls of its last `model` content that
  no later `functionResponse` answers (by `id`, else by name).

Only the calls are run: other items and blocks (text, reasoning) are ignored, and in a Responses
list a `function_call` that already has its `function_call_output` there is not run again, so a
client may send the whole `input` it is about to send to the model. Likewise a conversation,
`{"messages": [...]}` (Chat or Anthropic): the calls of its last assistant message that no later
message answers are run, and local tools get the conversation as `__messages__` (a Responses
`input` list is one too).

Besides the calls, an object payload may carry `context`: `chat_id`, `message_id`,
`session_id`, `metadata`, `files`, `model` and `messages` for local tools and filters (over the
`X-Toolbridge-*` headers, which say the same). The answer adds, when there are any,
`events`: `[{"call_id", "tool", "event"}]`, what local tools emitted while they ran, and
`embeds`: `[{"call_id", "tool", "content_type", "content"}]`, views (HTML) made for the person,
which the model reads about in the call's content instead.

What the model reads (`content`, `output`): for a call that succeeded, the result alone, as text
when it is text, else as JSON (`{"ok": true, "status": 204}` when there is no body); for a call
whose upstream answered 4xx/5xx or whose function failed, `{"ok": false, "status", "result"}`;
for a call that could not run (unknown tool, arguments that are not JSON or do not fit, upstream
unreachable), `{"ok": false, "error": {"type", "message", ...}}`, as the HTTP API would answer.
A failed call never fails the turn; a payload of none of these shapes does (BadRequest).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any, assert_never

import anyio
import orjson

from toolbridge.discovery import View
from toolbridge.errors import BadRequest, InvalidArguments, ToolbridgeError, error_body
from toolbridge.formats.render import Format
from toolbridge.gateway import Gateway
from toolbridge.local.context import CallContext
from toolbridge.policy import Principal
from toolbridge.schemas import json_kind
from toolbridge.serve.bodies import headers_text
from toolbridge.serve.turn_calls import Call, Family, read_turn
from toolbridge.tools import JsonObject, ToolResult

logger = logging.getLogger(__name__)

INTERNAL = "the gateway failed to run this call; its log says why"
"""What a caller reads of an error of ours: never the exception's own words."""
MAX_CALLS = 64
"""Calls in one turn; models that emit more are looping."""

FORMAT_OF: dict[Family, Format] = {
    "chat": "openai",
    "responses": "openai-responses",
    "anthropic": "anthropic",
    "gemini": "gemini",
}
"""The tool format of each payload family (what `describe_tools` answers in)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class _Outcome:
    text: str
    failed: bool
    events: list[Any]
    result: ToolResult | None = None


async def run_turn(
    gateway: Gateway,
    principal: Principal,
    payload: Any,
    *,
    caller_headers: Mapping[str, str] | None = None,
    context: CallContext | None = None,
    view: View | None = None,
) -> JsonObject:
    """Run every tool call in `payload` for `principal`, concurrently; answers in call order.
    With `view`, the calls are made in it (a toolset's tools only; search mode's tools), and
    `describe_tools` answers in the payload's own format unless the view names one.

    `context` is what the request's headers said about the call; the payload's conversation
    and `context` object refine it. Raises BadRequest for a payload of no known shape, or with
    more than MAX_CALLS calls, or a `context` of the wrong shape.
    """
    family, calls, conversation = read_turn(payload)
    if view is not None and view.format is None:
        view = replace(view, format=FORMAT_OF[family])
    if len(calls) > MAX_CALLS:
        raise BadRequest(f"{len(calls)} tool calls in one turn; at most {MAX_CALLS} are run")
    context = context or CallContext()
    if conversation is not None:
        context = context.updated({"messages": conversation}, "$")
    given = payload.get("context") if isinstance(payload, dict) else None
    if given is not None:
        if not isinstance(given, dict):
            raise BadRequest(f"context: expected an object, found {_kind(given)}")
        context = context.updated(given, "context")
    outcomes: list[_Outcome | None] = [None] * len(calls)

    async def run(index: int, call: Call) -> None:
        outcomes[index] = await _run(gateway, principal, call, caller_headers, context, view)

    async with anyio.create_task_group() as group:
        for index, call in enumerate(calls):
            group.start_soon(run, index, call)
    done = [outcome for outcome in outcomes if outcome is not None]
    answer = _answer(family, calls, done)
    events = [
        {"call_id": c.id, "tool": c.name, "event": event}
        for c, o in zip(calls, done, strict=True)
        for event in o.events
    ]
    if events:
        answer["events"] = events
    embeds = [
        {"call_id": c.id, "tool": c.name, "content_type": e.content_type, "content": e.content}
        for c, o in zip(calls, done, strict=True)
        if o.result is not None
        for e in o.result.embeds
    ]
    if embeds:
        answer["embeds"] = embeds
    return answer


async def _run(
    gateway: Gateway,
    principal: Principal,
    call: Call,
    caller_headers: Mapping[str, str] | None,
    context: CallContext,
    view: View | None,
) -> _Outcome:
    events: list[Any] = []
    try:
        if isinstance(call.arguments, InvalidArguments):
            gateway.tool(principal, call.name, view)  # an unknown tool says so first
            raise call.arguments
        result = await gateway.call(
            principal,
            call.name,
            call.arguments,
            caller_headers=caller_headers,
            on_event=events.append,
            context=context,
            view=view,
        )
    except ToolbridgeError as exc:
        text = _json({"ok": False, **error_body(exc)})
        return _Outcome(text=text, failed=True, events=events)
    except Exception:  # a bug of ours fails this call only: the turn's other calls answer
        logger.exception("tool call %s (%s) failed", call.id, call.name)
        error = {"type": "internal", "message": INTERNAL}
        return _Outcome(text=_json({"ok": False, "error": error}), failed=True, events=events)
    return _Outcome(text=_content(result), failed=not result.ok, events=events, result=result)


def _content(result: ToolResult) -> str:
    said = headers_text(result)
    text = _answer_text(result)
    return text if said is None else f"{text}\n\n{said}"


def _answer_text(result: ToolResult) -> str:
    if not result.ok:
        return _json({"ok": False, "status": result.status, "result": result.result})
    if result.result is None:
        return _json({"ok": True, "status": result.status})
    if isinstance(result.result, str):
        return result.result
    return _json(result.result)


def _json(value: Any) -> str:
    return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()


def _answer(family: Family, calls: list[Call], outcomes: list[_Outcome]) -> JsonObject:
    pairs = list(zip(calls, outcomes, strict=True))
    match family:
        case "chat":
            return {
                "messages": [
                    {"role": "tool", "tool_call_id": c.id, "content": o.text} for c, o in pairs
                ]
            }
        case "responses":
            return {
                "items": [
                    {"type": "function_call_output", "call_id": c.id, "output": o.text}
                    for c, o in pairs
                ]
            }
        case "anthropic":
            blocks = [
                {
                    "type": "tool_result",
                    "tool_use_id": c.id,
                    "content": o.text,
                    "is_error": o.failed,
                }
                for c, o in pairs
            ]
            return {"messages": [{"role": "user", "content": blocks}] if blocks else []}
        case "gemini":
            parts = [
                {
                    "functionResponse": {
                        **({"id": c.id} if c.given_id else {}),
                        "name": c.name,
                        "response": {"error" if o.failed else "output": o.text},
                    }
                }
                for c, o in pairs
            ]
            return {"contents": [{"role": "user", "parts": parts}] if parts else []}
        case _:
            assert_never(family)


def _kind(value: Any) -> str:
    return "nothing" if value is None else json_kind(value)
