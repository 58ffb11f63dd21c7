"""Calling a local tool's function: arguments validated, injected parameters filled, a sync
function run in a thread and an async one awaited on the tools' own loop (`runner`), under the
entry's timeout, and what it returned (or raised) made a `ToolResult`.

Loading the function is `loader`'s; its arguments model and injected names come from
`signatures`.
"""

from __future__ import annotations

import dataclasses
import inspect
import logging
from collections.abc import Callable, Generator, Mapping
from functools import partial
from typing import Any, cast

import anyio
import anyio.to_thread
from pydantic import BaseModel, ValidationError
from pydantic_core import to_jsonable_python

from toolbridge.errors import InvalidArguments
from toolbridge.local.runner import TOOL_LOOP
from toolbridge.local.signatures import Arguments, cause
from toolbridge.tools import PythonFunction, ToolResult

logger = logging.getLogger(__name__)

EventSink = Callable[[Any], None]
"""Receives each event a tool emits, made JSON-able (`list.append` will do)."""


class EventCallNotSupported(RuntimeError):
    """Raised into a tool that calls `__event_call__`: there is no chat window to ask in."""


class _Done:
    """What the event emitter returns: awaitable (async tools), harmless to drop (sync ones)."""

    def __await__(self) -> Generator[None, None, None]:
        yield from ()


async def call_function(
    fn: PythonFunction,
    arguments: Mapping[str, Any],
    *,
    user: Mapping[str, Any] | None = None,
    metadata: Mapping[str, Any] | None = None,
    on_event: EventSink | None = None,
) -> ToolResult:
    """Validate the arguments, call the function, and turn what happened into a `ToolResult`.

    Raises InvalidArguments (JSON paths like `$.address.city`); everything else is a result: a
    raised exception is `ok` false with `"<Type>: message"` (the traceback goes to the log), and
    so is a call that outlives `fn.timeout`. Injected values:

    - `__user__`: a copy of `user`, with `valves` validated into the Tools class's `UserValves`
      (from `user["valves"]`, else its defaults) when it defines one;
    - `__metadata__`: `metadata` or `{}`; `__id__`: the tools entry id;
    - `__event_emitter__`: each event (made JSON-able) goes to `on_event`, called right away, in
      the tool's thread for a sync tool. Events are a side channel and never change `result`:
      the caller collects them (`on_event=events.append`) or streams them;
    - `__event_call__`: raises EventCallNotSupported, so a confirmation is never assumed;
    - `__messages__` and `__files__`: `[]`; `__request__` and `__model__`: None.
    """
    if not isinstance(cast(object, arguments), Mapping):  # JSON bodies are not always objects
        found = type(arguments).__name__
        raise InvalidArguments(fn.function, [("$", f"expected an object, found {found}")])
    try:
        parsed = fn.arguments_model.model_validate(dict(arguments))
    except ValidationError as exc:
        raise InvalidArguments(fn.function, _problems(exc, "$")) from None
    args: list[Any] = []
    kwargs: dict[str, Any] = {}
    for name, param, positional in cast(type[Arguments], type(parsed)).call_plan:
        if positional:
            args.append(getattr(parsed, name))
        else:
            kwargs[param] = getattr(parsed, name)
    kwargs.update(_injected(fn, user, metadata, on_event))
    try:
        with anyio.move_on_after(fn.timeout) as scope:
            if fn.is_async:  # on a loop of its own: a tool that blocks cannot stop ours
                value = await TOOL_LOOP.run(fn.function, fn.func(*args, **kwargs))
            else:
                call = partial(fn.func, *args, **kwargs)
                value = await anyio.to_thread.run_sync(call, abandon_on_cancel=True)
            if inspect.isawaitable(value):
                value = await value
    except (Exception, SystemExit) as exc:
        logger.exception("local tool %s raised", fn.function)
        return ToolResult(ok=False, content_type="text/plain", result=cause(exc))
    if scope.cancelled_caught:
        if not fn.is_async:
            logger.warning("local tool %s timed out; its thread runs on", fn.function)
        message = f"timed out after {fn.timeout:g} s"
        return ToolResult(ok=False, content_type="text/plain", result=message)
    return _result(value)


def _injected(
    fn: PythonFunction,
    user: Mapping[str, Any] | None,
    metadata: Mapping[str, Any] | None,
    on_event: EventSink | None,
) -> dict[str, Any]:
    def emit(event: Any) -> _Done:
        if on_event is not None:
            on_event(to_jsonable_python(event, fallback=str))
        return _Done()

    def event_call(event: Any) -> Any:
        raise EventCallNotSupported(
            "__event_call__ is not supported here: it asks the user in a chat window, and "
            "toolbridge serves tools to programs"
        )

    values: dict[str, Any] = {}
    for name in fn.injected:
        if name == "__user__":
            values[name] = _user(fn, user)
        elif name == "__metadata__":
            values[name] = dict(metadata or {})
        elif name == "__id__":
            values[name] = fn.tool_id
        elif name == "__event_emitter__":
            values[name] = emit
        elif name == "__event_call__":
            values[name] = event_call
        elif name in ("__messages__", "__files__"):
            values[name] = []
        else:
            values[name] = None
    return values


def _user(fn: PythonFunction, user: Mapping[str, Any] | None) -> dict[str, Any]:
    given = dict(user or {})
    model = getattr(getattr(fn.func, "__self__", None), "UserValves", None)
    if isinstance(model, type) and issubclass(model, BaseModel):
        try:
            given["valves"] = model.model_validate(given.get("valves") or {})
        except ValidationError as exc:
            raise InvalidArguments(fn.function, _problems(exc, "$.__user__.valves")) from None
    return given


def _problems(exc: ValidationError, root: str) -> list[tuple[str, str]]:
    problems = []
    for error in exc.errors():
        path = root
        for part in error["loc"]:
            path += f"[{part}]" if isinstance(part, int) else f".{part}"
        problems.append((path, error["msg"]))
    return problems


def _result(value: Any) -> ToolResult:
    if isinstance(value, str):
        return ToolResult(ok=True, content_type="text/plain", result=value)
    if isinstance(value, BaseModel):
        value = value.model_dump(mode="json")
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        value = to_jsonable_python(value, fallback=str)
    elif not isinstance(value, dict | list | tuple | int | float | bool | None):
        return ToolResult(ok=True, content_type="text/plain", result=str(value))
    json = to_jsonable_python(value, fallback=str)
    return ToolResult(ok=True, content_type="application/json", result=json)
