"""What a local tool returned, as a `ToolResult`: text, JSON, and Open WebUI's rich results.

A tool that returns an `HTMLResponse` with `Content-Disposition: inline` (or a tuple of one and
a context) made a view for the person, not text for the model: the HTML becomes an `Embed`,
and the model reads the context (a string as it is, a dict or list as JSON) or, without one, a
short note that a view was produced. A 4xx/5xx response is a failed call. Any other response
object gives its body (JSON parsed, text as text). Responses are recognised by their shape
(`body`, `status_code`, `headers`), so neither FastAPI nor Starlette is imported here.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import orjson
from pydantic import BaseModel
from pydantic_core import to_jsonable_python

from toolbridge.tools import Embed, ToolResult

VIEW_NOTE = "An interactive view was produced and is shown to the user."
"""What the model reads for an inline HTML view returned without a context."""


def function_result(value: Any) -> ToolResult:
    """The result of a call that returned `value`; a failed call when it cannot be made JSON
    (a dict that holds itself): the tool ran, and its answer is what failed."""
    try:
        return _function_result(value)
    except (ValueError, TypeError, RecursionError) as exc:
        message = f"the tool's answer cannot be sent: {type(exc).__name__}: {exc}"
        return ToolResult(ok=False, content_type="text/plain", result=message)


def _function_result(value: Any) -> ToolResult:
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
