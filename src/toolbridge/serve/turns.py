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
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, replace
from typing import Any, Literal, assert_never

import anyio
import orjson

from toolbridge import json_text
from toolbridge.discovery import View
from toolbridge.errors import BadRequest, InvalidArguments, ToolbridgeError, error_body
from toolbridge.formats.render import Format
from toolbridge.gateway import Gateway
from toolbridge.local.context import CallContext
from toolbridge.policy import Principal
from toolbridge.schemas import json_kind
from toolbridge.serve.bodies import headers_text
from toolbridge.tools import JsonObject, ToolResult

logger = logging.getLogger(__name__)

INTERNAL = "the gateway failed to run this call; its log says why"
"""What a caller reads of an error of ours: never the exception's own words."""
MAX_CALLS = 64
"""Calls in one turn; models that emit more are looping."""

Family = Literal["chat", "responses", "anthropic", "gemini"]
FORMAT_OF: dict[Family, Format] = {
    "chat": "openai",
    "responses": "openai-responses",
    "anthropic": "anthropic",
    "gemini": "gemini",
}
"""The tool format of each payload family (what `describe_tools` answers in)."""

SHAPES = (
    "an OpenAI `tool_calls` array or the assistant message holding it; OpenAI Responses "
    '`function_call` items, or {"output": [...]} / {"input": [...]} holding them; Anthropic '
    "`tool_use` blocks, or the assistant message holding them; Gemini `functionCall` parts, "
    "or the model content or response holding them"
)


@dataclass(frozen=True, slots=True, kw_only=True)
class _Call:
    id: str
    name: str
    arguments: Any
    """The parsed arguments, or the InvalidArguments that parsing them raised."""
    given_id: bool = True
    """Whether the call came with its id (Gemini's are optional; else `id` is made up)."""


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
    family, calls, conversation = _read_turn(payload)
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

    async def run(index: int, call: _Call) -> None:
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
    call: _Call,
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


def _answer(family: Family, calls: list[_Call], outcomes: list[_Outcome]) -> JsonObject:
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


# -- reading the payload ----------------------------------------------------------------------


def _read_turn(payload: Any) -> tuple[Family, list[_Call], list[Any] | None]:
    """The family, the calls to run, and the conversation when the payload holds one."""
    if isinstance(payload, dict) and isinstance(payload.get("messages"), list):
        return _read_conversation(payload["messages"])
    if isinstance(payload, dict) and isinstance(payload.get("contents"), list):
        return _read_gemini_conversation(payload["contents"])
    family, calls = _read(payload)
    given = payload.get("input") if isinstance(payload, dict) else None
    return family, calls, given if family == "responses" and isinstance(given, list) else None


def _read_conversation(messages: list[Any]) -> tuple[Family, list[_Call], list[Any]]:
    """The calls of the last assistant message that no later message answers."""
    last = _last_of(messages, "assistant")
    if last is None:
        raise BadRequest(f"messages: no assistant message with tool calls; expected {SHAPES}")
    return _unanswered(messages, last, _answered_in_message)


def _read_gemini_conversation(contents: list[Any]) -> tuple[Family, list[_Call], list[Any]]:
    """The calls of the last `model` content that no later `functionResponse` answers: one
    of its id answers that call; one without an id (as `Part.from_function_response` makes
    them), or a call without one, is matched by name, one response to one call, in order."""
    last = _last_of(contents, "model")
    if last is None:
        raise BadRequest(f"contents: no model content with function calls; expected {SHAPES}")
    family, calls = _read(contents[last])
    responses = [
        response
        for index, content in enumerate(contents[last + 1 :], start=last + 1)
        for response in _responses_in(content, f"contents[{index}]")
    ]
    by_id = {ident for ident, _ in responses if ident is not None}
    unmatched = [
        (ident, name) for ident, name in responses if ident is None or ident not in _ids(calls)
    ]
    kept = []
    for call in calls:
        if call.given_id and call.id in by_id:
            continue
        match = next((r for r in unmatched if r[1] == call.name), None)
        if match is not None:
            unmatched.remove(match)
            continue
        kept.append(call)
    return family, kept, contents


def _last_of(messages: list[Any], role: str) -> int | None:
    """The index of the last message of `role` (the model's, that made the calls)."""
    return next(
        (
            i
            for i in range(len(messages) - 1, -1, -1)
            if isinstance(messages[i], dict) and messages[i].get("role") == role
        ),
        None,
    )


def _unanswered(
    messages: list[Any], last: int, answered_in: Callable[[Any], Iterator[Any]]
) -> tuple[Family, list[_Call], list[Any]]:
    """The calls of `messages[last]` whose id no message after it answers."""
    family, calls = _read(messages[last])
    answered = {key for message in messages[last + 1 :] for key in answered_in(message)}
    return family, [c for c in calls if c.id not in answered], messages


def _ids(calls: list[_Call]) -> set[str]:
    return {c.id for c in calls if c.given_id}


def _answered_in_message(message: Any) -> Iterator[Any]:
    """The calls a Chat `tool` message or Anthropic `tool_result` blocks answer."""
    if not isinstance(message, dict):
        return
    if message.get("role") == "tool":
        yield message.get("tool_call_id")
    if isinstance(message.get("content"), list):
        yield from (b.get("tool_use_id") for b in message["content"] if _is(b, "tool_result"))


def _responses_in(content: Any, where: str) -> Iterator[tuple[str | None, str]]:
    """(id or None, name) of each `functionResponse` part of a Gemini content."""
    parts = content.get("parts") if isinstance(content, dict) else None
    for index, part in enumerate(parts if isinstance(parts, list) else []):
        response = _gemini_part(part, "functionResponse", "function_response")
        if not isinstance(response, dict):
            continue
        at = f"{where}.parts[{index}].functionResponse"
        ident = response.get("id")
        yield (
            None if ident is None or ident == "" else _text(ident, f"{at}.id"),
            _text(response.get("name"), f"{at}.name"),
        )


def _read(payload: Any) -> tuple[Family, list[_Call]]:
    """The family of the payload and its calls, in order."""
    if isinstance(payload, dict):
        if isinstance(payload.get("choices"), list):
            return _read(_only_choice(payload["choices"]))
        if isinstance(payload.get("candidates"), list):
            return _read(_only_candidate(payload["candidates"]))
        if isinstance(payload.get("parts"), list) and payload.get("role") in ("model", None):
            return "gemini", _items(payload["parts"], "parts", "gemini")
        if "tool_calls" in payload:  # null in an assistant message that calls no tool
            return "chat", _items(payload["tool_calls"] or [], "tool_calls", "chat")
        for key in ("output", "input"):
            if isinstance(payload.get(key), list):
                return "responses", _items(payload[key], key, "responses")
        if payload.get("role") == "assistant" and isinstance(payload.get("content"), list):
            return "anthropic", _items(payload["content"], "content", "anthropic")
        family = _family_of(payload)
        if family is not None:
            return family, [_READERS[family](payload, "$")]
    if isinstance(payload, list):
        families = {f for f in map(_family_of, payload) if f is not None}
        if len(families) == 1:
            family = families.pop()
            return family, _items(payload, "$", family)
        if len(families) > 1:
            raise BadRequest(f"the list mixes tool calls of several APIs; expected {SHAPES}")
    raise BadRequest(f"no tool calls found; expected {SHAPES}")


def _only_choice(choices: list[Any]) -> Any:
    if len(choices) != 1 or not isinstance(choices[0], dict):
        raise BadRequest(f"expected a completion with one choice, found {len(choices)} choices")
    return choices[0].get("message")


def _only_candidate(candidates: list[Any]) -> Any:
    if len(candidates) != 1:
        found = len(candidates)
        raise BadRequest(f"expected a response with one candidate, found {found} candidates")
    if not isinstance(candidates[0], dict):
        raise BadRequest(f"candidates[0]: expected an object, found {_kind(candidates[0])}")
    return candidates[0].get("content")


def _gemini_part(part: Any, *keys: str) -> Any:
    """What a Gemini part holds under the first of `keys` (its REST and Python SDK spellings)."""
    if not isinstance(part, dict):
        return None
    return next((part[key] for key in keys if part.get(key) is not None), None)


def _family_of(item: Any) -> Family | None:
    if not isinstance(item, dict):
        return None
    if isinstance(_gemini_part(item, "functionCall", "function_call"), dict):
        return "gemini"
    kind = item.get("type")
    if kind == "function_call":
        return "responses"
    if kind == "tool_use":
        return "anthropic"
    if isinstance(item.get("function"), dict):
        return "chat"
    return None


def _items(items: Any, where: str, family: Family) -> list[_Call]:
    if not isinstance(items, list):
        raise BadRequest(f"{where}: expected a list, found {_kind(items)}")
    read = _READERS[family]
    answered = (
        {i.get("call_id") for i in items if _is(i, "function_call_output")}
        if family == "responses"
        else set()
    )
    calls = []
    for index, item in enumerate(items):
        if _family_of(item) != family:
            if family == "chat":  # every entry of `tool_calls` is a call
                raise BadRequest(f"{where}[{index}]: expected a tool call, found {_kind(item)}")
            continue  # text, reasoning and the like, beside the calls
        call = read(item, f"{where}[{index}]")
        if call.id not in answered:
            calls.append(call)
    return calls


def _is(item: Any, kind: str) -> bool:
    return isinstance(item, dict) and item.get("type") == kind


def _chat_call(item: JsonObject, where: str) -> _Call:
    function = item["function"]
    name = _text(function.get("name"), f"{where}.function.name")
    return _Call(
        id=_text(item.get("id"), f"{where}.id"),
        name=name,
        arguments=_arguments(function.get("arguments"), name),
    )


def _responses_call(item: JsonObject, where: str) -> _Call:
    name = _text(item.get("name"), f"{where}.name")
    return _Call(
        id=_text(item.get("call_id"), f"{where}.call_id"),
        name=name,
        arguments=_arguments(item.get("arguments"), name),
    )


def _anthropic_call(item: JsonObject, where: str) -> _Call:
    name = _text(item.get("name"), f"{where}.name")
    return _Call(
        id=_text(item.get("id"), f"{where}.id"),
        name=name,
        arguments=_arguments(item.get("input"), name),
    )


def _gemini_call(item: JsonObject, where: str) -> _Call:
    key = "functionCall" if isinstance(item.get("functionCall"), dict) else "function_call"
    call = item[key]
    name = _text(call.get("name"), f"{where}.{key}.name")
    given = call.get("id")
    if given is not None:
        _text(given, f"{where}.{key}.id")
    return _Call(
        id=given if given is not None else f"{name}@{where}",
        name=name,
        arguments=_arguments(call.get("args"), name),
        given_id=given is not None,
    )


_READERS: dict[Family, Callable[[JsonObject, str], _Call]] = {
    "chat": _chat_call,
    "responses": _responses_call,
    "anthropic": _anthropic_call,
    "gemini": _gemini_call,
}


def _text(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value:
        found = "an empty string" if value == "" else _kind(value)
        raise BadRequest(f"{where}: expected a non-empty string, found {found}")
    return value


def _arguments(value: Any, name: str) -> Any:
    """Arguments as sent: a JSON string (OpenAI), an object (Anthropic), or nothing at all."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return {}
    if not isinstance(value, str):
        return value
    try:
        return json_text.loads(value)
    except orjson.JSONDecodeError as exc:
        return InvalidArguments(name, [("$", f"the arguments are not valid JSON: {exc}")])


def _kind(value: Any) -> str:
    return "nothing" if value is None else json_kind(value)
