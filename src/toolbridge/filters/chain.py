"""Running the filters in scope around one call, in priority order (then id order), the same
order for inlets and outlets, as Open WebUI runs them.

- `inlet(call, __user__)` gets `{"tool", "source", "arguments", "model", "messages",
  "metadata"}` and returns it (changed or not; None means unchanged). The call goes on with the
  `arguments` it returns. A filter that raises (or takes longer than its `timeout`) refuses the
  call: the caller gets a failed result whose text is the filter's message, and the tool is not
  called.
- `outlet(result, __user__)` gets `{"tool", "source", "arguments", "ok", "status",
  "content_type", "result", "embeds", "model", "messages", "metadata"}` and returns it, changed
  or not. A filter that raises passes the result on as it was before it, with the error logged;
  a `required` one withholds the result instead.
- `model`, `messages`, `metadata`: what a filter written for Open WebUI's chat requests reads
  (`_chat`), as the caller sent them.
- A filter that could not be loaded is skipped (its error is reported at load), unless it is
  `required`: then the calls in its scope are refused while it is down. A switch
  (`toggle = True`) left off is skipped.

Handlers get Open WebUI's host parameters as tools do (`local.calls.injected`), with
`__user__["valves"]` the filter's `UserValves` filled from what the caller sent for it.
Each filter sees its own copy of the call or result, so one that fails leaves no trace.
"""

from __future__ import annotations

import asyncio
import copy
import fnmatch
import logging
import traceback
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import replace
from functools import partial
from typing import Any

import anyio
import anyio.to_thread

from toolbridge.errors import AnswerNeeded, InvalidArguments, ToolsBusy
from toolbridge.filters.loader import Filter, FilterStatus, Handler
from toolbridge.local.calls import THREADS, EventSink, injected
from toolbridge.local.context import CallContext
from toolbridge.local.runner import TOOL_LOOP, contained
from toolbridge.local.signatures import cause
from toolbridge.tools import Embed, Tool, ToolResult

logger = logging.getLogger(__name__)

Chain = tuple[FilterStatus, ...]
"""The filters that apply to one tool, in the order they run."""

_MISTAKES = (LookupError, TypeError, AttributeError, NameError, ArithmeticError, AssertionError)
"""Errors a filter raises by mistake rather than to refuse: said with their type."""
_KEYS_SAID = "tool, source, arguments, model, messages, metadata"
_PAYLOAD_KEYS = frozenset(_KEYS_SAID.split(", ")) | {
    "ok",
    "status",
    "content_type",
    "result",
    "embeds",
}


def select(statuses: tuple[FilterStatus, ...], tool: Tool) -> Chain:
    """The filters whose scope holds `tool`, loaded or required, in running order."""
    chosen = []
    for status in statuses:
        entry = status.entry
        if entry.sources and tool.source not in entry.sources:
            continue
        if entry.tools and not any(fnmatch.fnmatchcase(tool.name, g) for g in entry.tools):
            continue
        if status.filter is None and not entry.required:
            continue
        if status.filter is not None and status.filter.off:
            continue
        chosen.append(status)
    return tuple(sorted(chosen, key=lambda s: (_priority(s), s.entry.id)))


def _priority(status: FilterStatus) -> int:
    if status.filter is not None:
        return status.filter.priority
    return status.entry.priority or 0


async def run_inlets(
    chain: Chain,
    tool: Tool,
    arguments: Any,
    *,
    user: Mapping[str, Any],
    valves: Mapping[str, Any],
    context: CallContext,
    on_event: EventSink | None,
) -> tuple[Any, CallContext] | ToolResult:
    """The arguments (and context) the call goes on with, or the refusal that ends it."""
    for status in chain:
        loaded = status.filter
        if loaded is None:
            message = f"refused: filter {status.entry.id!r} is not loaded ({status.error})"
            return ToolResult(ok=False, content_type="text/plain", result=message)
        if loaded.inlet is None:
            continue
        payload = {
            "tool": tool.name,
            "source": tool.source,
            "arguments": copy.deepcopy(arguments),
            **_chat(context, user),
        }
        then = partial(_inlet_arguments, payload)
        try:
            changed = await _run(
                loaded, loaded.inlet, payload, user, valves, context, on_event, then
            )
        except (_Failed, TimeoutError) as exc:
            reason = _reason(exc, loaded)
            logger.warning("filter %s refused a call of %s: %s", loaded.id, tool.name, reason)
            message = f"refused by filter {loaded.id!r}: {reason}"
            return ToolResult(ok=False, content_type="text/plain", result=message)
        if isinstance(changed, str):
            message = (
                f"refused by filter {loaded.id!r}: its inlet returned {changed}, expected the "
                "call with its `arguments` object"
            )
            return ToolResult(ok=False, content_type="text/plain", result=message)
        arguments = changed
        if loaded.file_handler:
            metadata = {k: v for k, v in context.metadata.items() if k != "files"}
            context = replace(context, files=(), metadata=metadata)
    return arguments, context


async def run_outlets(
    chain: Chain,
    tool: Tool,
    arguments: Any,
    result: ToolResult,
    *,
    user: Mapping[str, Any],
    valves: Mapping[str, Any],
    context: CallContext,
    on_event: EventSink | None,
) -> ToolResult:
    """The result as the outlets leave it."""
    for status in chain:
        loaded = status.filter
        if loaded is None or loaded.outlet is None:
            continue
        payload = {
            "tool": tool.name,
            "source": tool.source,
            "arguments": copy.deepcopy(arguments),
            "ok": result.ok,
            "status": result.status,
            "content_type": result.content_type,
            "result": copy.deepcopy(result.result),
            "embeds": [
                {"content_type": e.content_type, "content": e.content} for e in result.embeds
            ],
            **_chat(context, user),
        }
        # None: the handler changed the payload in place, or not at all (see run_inlets); what
        # it held is compared with the result as it was before.
        then = partial(_outlet_result, result, payload, _before(result))
        try:
            result = await _run(
                loaded, loaded.outlet, payload, user, valves, context, on_event, then
            )
        except (_Failed, TimeoutError) as exc:
            logged = exc.logged if isinstance(exc, _Failed) else _reason(exc, loaded)
            if loaded.required:
                logger.error(
                    "filter %s failed on %s; the result is withheld\n%s",
                    loaded.id,
                    tool.name,
                    logged,
                )
                message = (
                    f"the result was withheld: filter {loaded.id!r} could not check it "
                    f"({_reason(exc, loaded, brief=True)})"
                )
                return ToolResult(
                    ok=False, status=result.status, content_type="text/plain", result=message
                )
            logger.error(
                "filter %s failed on %s; the result goes on unfiltered\n%s",
                loaded.id,
                tool.name,
                logged,
            )
    return result


def _chat(context: CallContext, user: Mapping[str, Any]) -> dict[str, Any]:
    """What an Open WebUI filter reads of the chat request it was written for: the chat's
    `messages` and `model` id as the caller sent them (Open WebUI does; else `[]` and None),
    and the call's `metadata` (`__metadata__`)."""
    model = context.model if context.model is not None else context.metadata.get("model")
    if isinstance(model, Mapping):
        model = model.get("id")
    return {
        "model": model if isinstance(model, str) else None,
        "messages": copy.deepcopy(list(context.messages)),
        "metadata": copy.deepcopy(context.metadata_for(user.get("id"))),
    }


async def _run(
    loaded: Filter,
    handler: Handler,
    payload: dict[str, Any],
    user: Mapping[str, Any],
    valves: Mapping[str, Any],
    context: CallContext,
    on_event: EventSink | None,
    then: Callable[[Any], Any],
) -> Any:
    """`then(what the handler returned)`, both run where the handler runs (a thread, or the
    tools' loop), never on the gateway's loop: what a handler returns or raises is the filter's
    own code too (its `__str__`, a dict of its own kind). _Failed when either raises, with its
    text made there; TimeoutError past the filter's `timeout`."""
    given_user = {**user, "valves": valves.get(loaded.id, {})}
    kwargs = injected(
        handler.injected,
        tool_id=loaded.id,
        user=given_user,
        context=context,
        on_event=on_event,
        instance=loaded.instance,
        where=f"filter {loaded.id}",
        is_async=handler.is_async,
    )
    if handler.payload is not None:
        kwargs[handler.payload] = payload
    with anyio.fail_after(loaded.timeout):
        if handler.is_async:  # on the tools' loop: a handler that blocks cannot stop ours
            answered = _awaited(handler.func(**kwargs), then)
            return await TOOL_LOOP.run(f"filter {loaded.id}", answered)
        # In the threads local tools run in (not the gateway's own), counted with them.
        return await THREADS.run(contained(partial(_ran, partial(handler.func, **kwargs), then)))


class _Failed(Exception):
    """A handler that raised (or whose answer could not be read), its texts made where it ran."""

    def __init__(self, raised: BaseException) -> None:
        self.timed_out = isinstance(raised, TimeoutError)
        self.kind = type(raised).__name__
        try:
            self.reason = _said(raised)
            self.logged = "".join(traceback.format_exception(raised)).rstrip()
        except Exception:  # an exception of the filter's own whose text fails
            self.reason = self.logged = self.kind
        super().__init__(self.reason)


def _ran(call: Callable[[], Any], then: Callable[[Any], Any]) -> Any:
    try:
        return then(call())
    except (InvalidArguments, ToolsBusy, AnswerNeeded):  # the call's own; a question asked
        raise
    except BaseException as exc:  # SystemExit too: the call's failure, not the thread's
        raise _Failed(exc) from None


async def _awaited(coroutine: Coroutine[Any, Any, Any], then: Callable[[Any], Any]) -> Any:
    try:
        return then(await coroutine)
    except (InvalidArguments, ToolsBusy, AnswerNeeded, asyncio.CancelledError):
        raise
    except BaseException as exc:  # SystemExit would stop the tools' loop: the call's only
        raise _Failed(exc) from None


def _inlet_arguments(payload: dict[str, Any], answer: Any) -> dict[str, Any] | str:
    """The arguments an inlet's answer goes on with; or what it returned instead, said."""
    if answer is None:
        # Open WebUI hands a handler the request itself: one that changes it in place and
        # returns nothing has changed it all the same (a copy here, so taken from it).
        answer = payload
    changed = answer.get("arguments") if isinstance(answer, dict) else None
    if not isinstance(changed, dict):
        return type(answer).__name__ if not isinstance(answer, dict) else "no arguments"
    return changed


def _outlet_result(
    result: ToolResult, payload: dict[str, Any], before: dict[str, Any], answer: Any
) -> ToolResult:
    return _changed(result, payload if answer is None else answer, before)


def _before(result: ToolResult) -> dict[str, Any]:
    """The result as an outlet's payload first held it (what it may have changed)."""
    return {
        "result": result.result,
        "content_type": result.content_type,
        "ok": result.ok,
        "embeds": [{"content_type": e.content_type, "content": e.content} for e in result.embeds],
    }


def _changed(result: ToolResult, answer: Any, before: dict[str, Any]) -> ToolResult:
    if not isinstance(answer, dict):
        raise TypeError(f"the outlet returned {type(answer).__name__}, expected the result object")
    value = answer.get("result", before["result"])
    content_type = answer.get("content_type", before["content_type"])
    if content_type == before["content_type"] and isinstance(value, str) != isinstance(
        before["result"], str
    ):
        content_type = "text/plain" if isinstance(value, str) else "application/json"
    ok = answer.get("ok", before["ok"])
    embeds = answer.get("embeds", before["embeds"])
    if not isinstance(ok, bool) or not isinstance(content_type, str | None):
        raise TypeError("the outlet returned `ok` or `content_type` of the wrong type")
    if not isinstance(embeds, list):
        raise TypeError("the outlet returned `embeds` that is not a list")
    return replace(
        result,
        ok=ok,
        content_type=content_type,
        result=value,
        embeds=tuple(
            Embed(content_type=str(e["content_type"]), content=str(e["content"])) for e in embeds
        ),
    )


def _reason(exc: _Failed | TimeoutError, loaded: Filter, *, brief: bool = False) -> str:
    if isinstance(exc, TimeoutError) or exc.timed_out:
        return f"it did not answer within {loaded.timeout:g} s"
    return exc.kind if brief else exc.reason


def _said(exc: BaseException) -> str:
    """A filter's exception as its refusal says it (made where the filter ran)."""
    said = str(exc)
    reason = cause(exc)  # `KeyError: 'options'` says more than `'options'`
    if not isinstance(exc, _MISTAKES) and said:
        return said  # a refusal in the filter's own words: `raise Exception("...")`
    if isinstance(exc, KeyError) and exc.args and exc.args[0] not in _PAYLOAD_KEYS:
        reason += f" (if the filter read it from the call: the call has {_KEYS_SAID})"
    return reason
