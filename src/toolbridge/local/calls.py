"""Calling a local tool's function: arguments checked leniently (Open WebUI does not check), the
host's parameters filled under Open WebUI's names, a sync function run in a thread and an async one
awaited on the tools' own loop (`runner`), under the entry's timeout, and what it returned (or
raised) made a `ToolResult`.

Loading the function is `loader`'s; its arguments model and injected names come from
`signatures`; the caller's context from `context`; rich results are `results`'. `injected`
fills the same names for filters.
"""

from __future__ import annotations

import asyncio
import datetime
import enum
import inspect
import logging
import threading
from collections.abc import Callable, Generator, Mapping
from functools import partial
from typing import Any, cast

import anyio
import anyio.from_thread
import anyio.to_thread
from anyio.lowlevel import RunVar
from pydantic import BaseModel, ValidationError
from pydantic_core import to_jsonable_python

from toolbridge.errors import AnswerNeeded, InvalidArguments, ToolsBusy
from toolbridge.local.context import CallContext, EventCall
from toolbridge.local.results import drained, drained_async, function_result
from toolbridge.local.runner import TOOL_LOOP
from toolbridge.local.signatures import Arguments, cause
from toolbridge.schemas import json_kind
from toolbridge.tools import PythonFunction, ToolResult

logger = logging.getLogger(__name__)

EventSink = Callable[[Any], None]
"""Receives each event a tool emits, made JSON-able (`list.append` will do)."""

NO_CONTEXT = CallContext()


class _Done:
    """What the event emitter returns: awaitable (async tools), harmless to drop (sync ones)."""

    def __await__(self) -> Generator[None, None, None]:
        yield from ()


async def call_function(
    fn: PythonFunction,
    arguments: Mapping[str, Any],
    *,
    user: Mapping[str, Any] | None = None,
    context: CallContext | None = None,
    on_event: EventSink | None = None,
) -> ToolResult:
    """Check the arguments, call the function, and turn what happened into a `ToolResult`.

    Arguments are checked leniently (a number where text is expected becomes text; Open WebUI
    passes them unchecked) and unknown ones are dropped with a log line, as Open WebUI does. Raises
    InvalidArguments (JSON paths like `$.address.city`) for the rest; everything else is a
    result: a raised exception is `ok` false with `"<Type>: message"` (the traceback goes to
    the log), and so is a call that outlives `fn.timeout`. AnswerNeeded (a question the
    caller must answer first) passes through. Injected values: see `injected`.
    """
    if not isinstance(cast(object, arguments), Mapping):  # JSON bodies are not always objects
        found = json_kind(arguments)
        raise InvalidArguments(fn.function, [("$", f"expected an object, found {found}")])
    model = cast(type[Arguments], fn.arguments_model)
    given = dict(arguments)
    if not given.keys() <= model.accepted:
        unknown = sorted(given.keys() - model.accepted)
        # repr: the names are the caller's, and may hold a line break (a forged log line)
        shown = ", ".join(repr(name[:64]) for name in unknown[:20])
        logger.info("local tool %s: unknown arguments dropped: %s", fn.function, shown)
        given = {k: v for k, v in given.items() if k in model.accepted}
    try:
        parsed = model.model_validate(given)
    except ValidationError as exc:
        raise InvalidArguments(fn.function, _problems(exc, "$")) from None
    args: list[Any] = []
    kwargs: dict[str, Any] = {}
    for name, param, positional in model.call_plan:
        if positional:
            args.append(getattr(parsed, name))
        else:
            kwargs[param] = getattr(parsed, name)
    if fn.injected:
        kwargs.update(
            injected(
                fn.injected,
                tool_id=fn.tool_id,
                user=user,
                context=context,
                on_event=on_event,
                instance=getattr(fn.func, "__self__", None),
                where=fn.function,
                is_async=fn.is_async,
            )
        )
    where = fn.function
    with anyio.move_on_after(fn.timeout) as scope:
        # Everything of the tool's own runs off our loop and inside its timeout: its body,
        # an awaitable it returns, and the `__str__` of what it returns or raises.
        if fn.is_async:  # on a loop of its own: a tool that blocks cannot stop ours
            done = await TOOL_LOOP.run(where, _awaited(where, fn.func(*args, **kwargs), parsed))
        else:
            call = partial(_ran, where, partial(fn.func, *args, **kwargs), parsed)
            done = await THREADS.run(call)
        if isinstance(done, _Returned):  # a sync tool returned an awaitable: the tools' loop
            done = await TOOL_LOOP.run(where, _awaited(where, done.awaitable, parsed))
    if scope.cancelled_caught:
        if not fn.is_async:
            logger.warning("local tool %s timed out; its thread runs on", where)
        message = f"timed out after {fn.timeout:g} s"
        return ToolResult(ok=False, content_type="text/plain", result=message)
    assert isinstance(done, ToolResult)
    return done


MAX_THREADS = 64
"""Sync local tool calls that may run at once in a process, those past their timeout included."""
BUSY_RETRY_AFTER = 1.0


class ToolThreads:
    """The threads sync local tools run in, apart from those the gateway's own work takes.

    A thread cannot be stopped: a call past its timeout is answered and its thread runs on,
    still counted here until the tool returns. Once `limit` run, a call is refused at once
    (ToolsBusy, 503 with Retry-After) instead of waiting for one: so a tool that never
    returns cannot take thread after thread, nor hold up every other tool of the process."""

    def __init__(self, limit: int = MAX_THREADS) -> None:
        self.limit = limit
        self.running = 0
        self._lock = threading.Lock()
        self._pool: RunVar[anyio.CapacityLimiter] = RunVar("toolbridge_tool_threads")

    async def run(self, call: Callable[[], Any]) -> Any:
        with self._lock:  # a place taken before the thread starts: a burst cannot pass it
            if self.running >= self.limit:
                raise ToolsBusy(
                    f"busy: {self.limit} calls of this process's sync local tools are running "
                    f"(those past their timeout too); try again in {BUSY_RETRY_AFTER:g} s",
                    retry_after=BUSY_RETRY_AFTER,
                )
            self.running += 1
        place = _Place()
        try:
            pool = self._pool.get()
        except LookupError:  # one per event loop (each worker's), with room for every call
            pool = anyio.CapacityLimiter(self.limit)
            self._pool.set(pool)
        try:
            return await anyio.to_thread.run_sync(
                self._counted, call, place, abandon_on_cancel=True, limiter=pool
            )
        except BaseException:
            with self._lock:  # a call that never started (its caller gone first) runs never
                if not place.started:
                    place.given_up = True
                    self.running -= 1
            raise

    def _counted(self, call: Callable[[], Any], place: _Place) -> Any:
        with self._lock:
            if place.given_up:
                return None
            place.started = True
        try:
            return call()
        finally:
            with self._lock:
                self.running -= 1


class _Place:
    """One call's place among the threads: whether its thread started, or it was given up."""

    def __init__(self) -> None:
        self.started = False
        self.given_up = False


THREADS = ToolThreads()


class _Returned:
    """What a sync tool returned when it is awaitable: awaited on the tools' loop, not ours."""

    def __init__(self, awaitable: Any) -> None:
        self.awaitable = awaitable


def _ran(where: str, call: Callable[[], Any], given: Arguments) -> ToolResult | _Returned:
    """A sync tool called, and what it returned or raised made a result, in its own thread."""
    try:
        value = call()
        if inspect.isgenerator(value):  # its body is the tool's too: read here
            value = drained(value)
    except AnswerNeeded:
        raise
    except BaseException as exc:  # SystemExit, GeneratorExit, a tool's own kinds: its call's
        return _failed(where, exc, given)
    if inspect.isasyncgen(value):  # an `async def` that yields: read on the tools' loop
        return _Returned(drained_async(value))
    return _Returned(value) if inspect.isawaitable(value) else _made(value)


async def _awaited(where: str, awaitable: Any, given: Arguments) -> ToolResult:
    """An async tool's call (or an awaitable a tool returned) awaited, and what came of it made
    a result, on the tools' loop."""
    try:
        value = await awaitable
        while inspect.isawaitable(value):  # a coroutine that returns a coroutine
            value = await value
        if inspect.isasyncgen(value):
            value = await drained_async(value)
        elif inspect.isgenerator(value):
            value = drained(value)
    except (AnswerNeeded, asyncio.CancelledError):
        raise
    except BaseException as exc:  # SystemExit would stop the tools' loop: its call's only
        return _failed(where, exc, given)
    return _made(value)


def _made(value: Any) -> ToolResult:
    try:
        return function_result(value)
    except Exception as exc:  # a `__str__` or `__repr__` of the tool's that raises
        message = f"the tool's answer cannot be sent: its {type(exc).__name__} when made text"
        return ToolResult(ok=False, content_type="text/plain", result=message)


def _failed(where: str, raised: BaseException, given: Arguments) -> ToolResult:
    """A call that raised: `Type: message` for the caller, the traceback to the log."""
    try:
        text = cause(raised) + _typed_hint(raised, given)
    except Exception:  # an exception whose `__str__` raises
        text = type(raised).__name__
    logger.error("local tool %s raised", where, exc_info=raised)
    return ToolResult(ok=False, content_type="text/plain", result=text)


_TYPED = (BaseModel, enum.Enum, datetime.date, datetime.time, datetime.timedelta)
"""What an argument may arrive as, where Open WebUI passes the JSON value as it came."""


def _typed_hint(raised: BaseException, given: Arguments) -> str:
    """What may be wrong when a tool given a model, Enum or date argument (of the arguments
    as checked, `given`) fails at reading it: a file written for Open WebUI reads the JSON
    value it passes (`address["city"]`)."""
    if not isinstance(raised, TypeError | AttributeError):
        return ""
    for field, name, _ in given.call_plan:
        value = getattr(given, field)
        if isinstance(value, _TYPED):
            return (
                f" (the argument {name!r} arrived as {type(value).__name__}, as its "
                "annotation says; Open WebUI passes the JSON value as it came: annotate it "
                "`dict` or `str` for that)"
            )
    return ""


def injected(
    names: tuple[str, ...],
    *,
    tool_id: str,
    user: Mapping[str, Any] | None,
    context: CallContext | None,
    on_event: EventSink | None,
    instance: object = None,
    where: str = "",
    is_async: bool = False,
) -> dict[str, Any]:
    """The values of the host-filled parameters `names`, as Open WebUI fills them:

    - `__user__`: a copy of `user`, with `valves` validated into the `UserValves` of
      `instance` (a Tools or Filter object; from `user["valves"]`, else its defaults);
    - `__metadata__`: the caller's metadata with `user_id` (always the caller's), `chat_id`,
      `message_id`, `session_id`, `files` and `model` resolved; `__id__`: the entry id;
    - `__chat_id__`, `__message_id__`, `__session_id__`: given, or from the metadata, else None;
    - `__messages__` and `__files__`: lists, `[]` when not given; `__model__`: an object or None;
    - `__oauth_token__`: the caller's own bearer token (`access_token`, ...) or None;
    - `__request__`: a view of the HTTP request (`context.RequestView`) or None;
    - `__event_emitter__`: each event (made JSON-able) goes to `on_event`. For an async
      handler (`is_async`) it is an `async def`, as Open WebUI's is (so
      `asyncio.create_task(__event_emitter__(...))` works), and an event goes when awaited; for
      a sync one, a plain function that sends it right away, in the tool's thread (its return
      value may be awaited or dropped). Events are a side channel and never change the result;
    - `__event_call__`: None when nobody can answer (a tool's `if not __event_call__:`
      fallback runs); else it asks the caller: awaitable in an async tool, a plain call that
      waits for the answer in a sync one;
    - any other `__name__`: None.
    """
    ctx = context or NO_CONTEXT
    given_user = dict(user or {})

    def emit(event: Any) -> _Done:
        if on_event is not None:
            on_event(to_jsonable_python(event, fallback=str))
        return _Done()

    async def emit_async(event: Any) -> None:
        emit(event)

    values: dict[str, Any] = {}
    for name in names:
        if name == "__user__":
            values[name] = _user(given_user, instance, where)
        elif name == "__metadata__":
            values[name] = ctx.metadata_for(given_user.get("id"))
        elif name == "__id__":
            values[name] = tool_id
        elif name == "__event_emitter__":
            values[name] = emit_async if is_async else emit
        elif name == "__event_call__":
            values[name] = _event_call(ctx.ask) if ctx.ask is not None else None
        elif name == "__messages__":
            values[name] = list(ctx.messages)
        elif name == "__files__":
            values[name] = ctx.file_list()
        elif name == "__chat_id__":
            values[name] = ctx.chat()
        elif name == "__message_id__":
            values[name] = ctx.message()
        elif name == "__session_id__":
            values[name] = ctx.session()
        elif name == "__model__":
            values[name] = ctx.model if ctx.model is not None else ctx.metadata.get("model")
        elif name == "__oauth_token__":
            values[name] = dict(ctx.oauth_token) if ctx.oauth_token is not None else None
        elif name == "__request__":
            values[name] = ctx.request
        else:
            values[name] = None
    return values


def _event_call(ask: EventCall) -> Callable[[Any], Any]:
    """`ask` for a tool: a coroutine on the event loop's thread (async tools await it); from
    a worker thread (sync tools), the answer itself, waited for."""

    async def answer(event: Any) -> Any:
        return await ask(event)

    def event_call(event: Any) -> Any:
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return anyio.from_thread.run(answer, event)
        return ask(event)

    return event_call


def user_valves(instance: object) -> type[BaseModel] | None:
    """The `UserValves` model of a Tools or Filter object (what each caller may set for it),
    if it has one."""
    model = getattr(instance, "UserValves", None)
    return model if isinstance(model, type) and issubclass(model, BaseModel) else None


def _user(given: dict[str, Any], instance: object, where: str) -> dict[str, Any]:
    user = dict(given)
    model = user_valves(instance)
    if model is None:
        user.pop("valves", None)  # as Open WebUI: no `valves` key without a UserValves model
    else:
        try:
            user["valves"] = model.model_validate(given.get("valves") or {})
        except ValidationError as exc:
            raise InvalidArguments(where, _problems(exc, "$.__user__.valves")) from None
    return user


def _problems(exc: ValidationError, root: str) -> list[tuple[str, str]]:
    problems = []
    for error in exc.errors():
        path = root
        for part in error["loc"]:
            path += f"[{part}]" if isinstance(part, int) else f".{part}"
        problems.append((path, error["msg"]))
    return problems
