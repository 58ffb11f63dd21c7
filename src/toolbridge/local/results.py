"""What a local tool returned, as a `ToolResult`: text, JSON, and Open WebUI's rich results.

A tool that returns an `HTMLResponse` with `Content-Disposition: inline` (or a tuple of one and
a context) made a view for the person, not text for the model: the HTML becomes an `Embed`,
and the model reads the context (a string as it is, a dict or list as JSON) or, without one, a
short note that a view was produced. A 4xx/5xx response is a failed call. Any other response
object gives its body (JSON parsed, text as text). Responses are recognised by their shape
(`body`, `status_code`, `headers`), so neither FastAPI nor Starlette is imported here.

A generator (sync or async) is read to its end where the tool runs, within the call's time
(`local/calls.py`, with `drained`), as what it yields: its pieces joined when they are all text
(a tool streaming its answer), else a list, at most MAX_PIECES pieces or MAX_TEXT characters of
text (then it is closed, and the answer says it was cut); what it raises is the call's failure.
Bytes are text when they are UTF-8, else `{"base64"}`. A float that is not a number (NaN,
infinity) is JSON's null.
"""

from __future__ import annotations

import base64
import dataclasses
from collections.abc import AsyncIterator, Iterator
from typing import Any

import orjson
from pydantic import BaseModel
from pydantic_core import to_jsonable_python

from toolbridge.tools import Embed, ToolResult

VIEW_NOTE = "An interactive view was produced and is shown to the user."
"""What the model reads for an inline HTML view returned without a context."""
MAX_PIECES = 10_000
"""Pieces of a generator's answer read at most (a generator may never end)."""
MAX_TEXT = 4 * 1024 * 1024
"""Characters of text a generator's answer holds at most (the answer cap's size)."""


def function_result(value: Any) -> ToolResult:
    """The result of a call that returned `value`; a failed call when it cannot be made JSON
    (a dict that holds itself): the tool ran, and its answer is what failed."""
    try:
        return _function_result(value)
    except (ValueError, TypeError, RecursionError) as exc:
        message = f"the tool's answer cannot be sent: {type(exc).__name__}: {exc}"
        return ToolResult(ok=False, content_type="text/plain", result=message)


class _Pieces:
    """What a generator yielded, up to the caps; whether it was cut."""

    def __init__(self) -> None:
        self.items: list[Any] = []
        self.text = 0
        self.cut = False

    def take(self, item: Any) -> bool:
        """Keep `item`; False once the caps are reached (stop reading)."""
        self.items.append(item)
        self.text += len(item) if isinstance(item, str) else 0
        self.cut = len(self.items) >= MAX_PIECES or self.text >= MAX_TEXT
        return not self.cut

    def answer(self) -> Any:
        """Text when every piece is text, else the list; said when cut."""
        said = f"… (the tool's generator was stopped after {len(self.items)} pieces)"
        if all(isinstance(item, str) for item in self.items):
            text = "".join(self.items)[:MAX_TEXT]
            return text + said if self.cut else text
        return [*self.items, said] if self.cut else self.items


def drained(generator: Iterator[Any]) -> Any:
    """A sync generator read to its end (or the caps), and closed."""
    pieces = _Pieces()
    try:
        for item in generator:
            if not pieces.take(item):
                break
    finally:
        close = getattr(generator, "close", None)
        if close is not None:
            close()
    return pieces.answer()


async def drained_async(generator: AsyncIterator[Any]) -> Any:
    """An async generator read to its end (or the caps), and closed."""
    pieces = _Pieces()
    try:
        async for item in generator:
            if not pieces.take(item):
                break
    finally:
        close = getattr(generator, "aclose", None)
        if close is not None:
            await close()
    return pieces.answer()


def _function_result(value: Any) -> ToolResult:
    if isinstance(value, bytes | bytearray | memoryview):
        try:
            value = bytes(value).decode("utf-8")
        except UnicodeDecodeError:
            value = {"base64": base64.b64encode(bytes(value)).decode("ascii")}
    if isinstance(value, tuple) and len(value) == 2 and _is_response(value[0]):
        response, context = value
        return _response_result(response, context)
    if _is_response(value):
        return _response_result(value, None)
    if isinstance(value, str):  # a plain copy: a subclass's own `__len__` must not run later
        return ToolResult(ok=True, content_type="text/plain", result=str.__str__(value))
    if isinstance(value, BaseModel):
        value = value.model_dump(mode="json")
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        value = to_jsonable_python(value, fallback=str)
    elif not isinstance(value, dict | list | tuple | int | float | bool | None):
        return ToolResult(ok=True, content_type="text/plain", result=str(value))
    json = to_jsonable_python(value, fallback=str)
    return ToolResult(ok=True, content_type="application/json", result=json)


def _is_response(value: Any) -> bool:
    return (
        isinstance(getattr(value, "body", None), bytes | memoryview)
        and isinstance(getattr(value, "status_code", None), int)
        and hasattr(value, "headers")
    )


def _response_result(response: Any, context: Any) -> ToolResult:
    headers = response.headers
    content_type = str(headers.get("content-type") or getattr(response, "media_type", "") or "")
    disposition = str(headers.get("content-disposition") or "")
    body = bytes(response.body)
    status = response.status_code
    ok = 200 <= status < 300
    if "inline" in disposition.lower() and content_type.lower().startswith("text/html"):
        embed = Embed(content_type="text/html", content=body.decode("utf-8", "replace"))
        if not ok:
            message = f"the view answered HTTP {status}"
            return ToolResult(ok=False, content_type="text/plain", result=message, embeds=(embed,))
        if isinstance(context, str):
            return ToolResult(ok=True, content_type="text/plain", result=context, embeds=(embed,))
        if isinstance(context, dict | list):
            json = to_jsonable_python(context, fallback=str)
            return ToolResult(
                ok=True, content_type="application/json", result=json, embeds=(embed,)
            )
        return ToolResult(ok=True, content_type="text/plain", result=VIEW_NOTE, embeds=(embed,))
    mime = content_type.split(";")[0].strip().lower()
    if mime == "application/json" or mime.endswith("+json"):
        try:
            return ToolResult(ok=ok, content_type=mime, result=orjson.loads(body))
        except orjson.JSONDecodeError:
            pass
    return ToolResult(
        ok=ok, content_type=mime or "text/plain", result=body.decode("utf-8", "replace")
    )
