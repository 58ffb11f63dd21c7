"""The tool calls of one model turn, read from what each model API writes (`serve/turns.py`
runs them).

Trust: none in the payload. Each call's name and id must be non-empty strings, its arguments
JSON (a string that is not is that call's InvalidArguments, not the turn's); a payload of no
known shape is a BadRequest that says the shapes expected.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Literal

import orjson

from toolbridge import json_text
from toolbridge.errors import BadRequest, InvalidArguments
from toolbridge.schemas import json_kind
from toolbridge.tools import JsonObject

Family = Literal["chat", "responses", "anthropic", "gemini"]


SHAPES = (
    "an OpenAI `tool_calls` array or the assistant message holding it; OpenAI Responses "
    '`function_call` items, or {"output": [...]} / {"input": [...]} holding them; Anthropic '
    "`tool_use` blocks, or the assistant message holding them; Gemini `functionCall` parts, "
    "or the model content or response holding them"
)


@dataclass(frozen=True, slots=True, kw_only=True)
class Call:
    id: str
    name: str
    arguments: Any
    """The parsed arguments, or the InvalidArguments that parsing them raised."""
    given_id: bool = True
    """Whether the call came with its id (Gemini's are optional; else `id` is made up)."""


def read_turn(payload: Any) -> tuple[Family, list[Call], list[Any] | None]:
    """The family, the calls to run, and the conversation when the payload holds one."""
    if isinstance(payload, dict) and isinstance(payload.get("messages"), list):
        return _read_conversation(payload["messages"])
    if isinstance(payload, dict) and isinstance(payload.get("contents"), list):
        return _read_gemini_conversation(payload["contents"])
    family, calls = _read(payload)
    given = payload.get("input") if isinstance(payload, dict) else None
    return family, calls, given if family == "responses" and isinstance(given, list) else None


def _read_conversation(messages: list[Any]) -> tuple[Family, list[Call], list[Any]]:
    """The calls of the last assistant message that no later message answers."""
    last = _last_of(messages, "assistant")
    if last is None:
        raise BadRequest(f"messages: no assistant message with tool calls; expected {SHAPES}")
    return _unanswered(messages, last, _answered_in_message)


def _read_gemini_conversation(contents: list[Any]) -> tuple[Family, list[Call], list[Any]]:
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
    ids = {c.id for c in calls if c.given_id}
    by_id = {ident for ident, _ in responses if ident is not None}
    by_name = [name for ident, name in responses if ident is None or ident not in ids]
    kept = []
    for call in calls:
        if call.given_id and call.id in by_id:
            continue
        if call.name in by_name:
            by_name.remove(call.name)  # one response, one call
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
) -> tuple[Family, list[Call], list[Any]]:
    """The calls of `messages[last]` whose id no message after it answers."""
    family, calls = _read(messages[last])
    answered = {key for message in messages[last + 1 :] for key in answered_in(message)}
    return family, [c for c in calls if c.id not in answered], messages


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


def _read(payload: Any) -> tuple[Family, list[Call]]:
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


def _items(items: Any, where: str, family: Family) -> list[Call]:
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


def _reader(id_key: str, arguments_key: str, inside: str = "") -> Callable[[JsonObject, str], Call]:
    """How one family writes a call: its id under `id_key`, its name and arguments (under
    `arguments_key`) in the item or in its `inside` object (Chat's `function`)."""

    def read(item: JsonObject, where: str) -> Call:
        body, at = (item[inside], f"{where}.{inside}") if inside else (item, where)
        name = _text(body.get("name"), f"{at}.name")
        ident = _text(item.get(id_key), f"{where}.{id_key}")
        return Call(id=ident, name=name, arguments=_arguments(body.get(arguments_key), name))

    return read


def _gemini_call(item: JsonObject, where: str) -> Call:
    key = "functionCall" if isinstance(item.get("functionCall"), dict) else "function_call"
    call = item[key]
    name = _text(call.get("name"), f"{where}.{key}.name")
    given = call.get("id")
    if given is not None:
        _text(given, f"{where}.{key}.id")
    return Call(
        id=given if given is not None else f"{name}@{where}",
        name=name,
        arguments=_arguments(call.get("args"), name),
        given_id=given is not None,
    )


_READERS: dict[Family, Callable[[JsonObject, str], Call]] = {
    "chat": _reader("id", "arguments", inside="function"),
    "responses": _reader("call_id", "arguments"),
    "anthropic": _reader("id", "input"),
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
