"""The events one call of a local tool (or filter) may emit: how many, and how large.

`__event_emitter__` is the tool's to call as often as it likes with whatever it likes; each
event reaches the caller (the envelope's `events`, an SSE event, an MCP notification), so
without a bound one call could answer gigabytes past the 4 MiB cap on answers, and one event
over 1 MiB breaks the MCP SDK client's stream. So, per call:

- an event over MAX_EVENT_BYTES (as compact JSON) is replaced by a status event saying so;
- after MAX_EVENTS events or MAX_CALL_EVENT_BYTES in all, one status event says the rest are
  left out, and they are.

What it trusts: nothing of the events (they are the tool's); they come already made JSON-able
(`local.calls.injected`), possibly from a worker thread.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, Final

import orjson

MAX_EVENT_BYTES: Final = 256 * 1024
MAX_EVENTS: Final = 1000
MAX_CALL_EVENT_BYTES: Final = 4 * 1024 * 1024

Sink = Callable[[Any], None]


def bounded(sink: Sink) -> Sink:
    """`sink`, passing on one call's events within the limits above (thread-safe, in order)."""
    lock = threading.Lock()
    count = 0
    used = 0
    stopped = False

    def on_event(event: Any) -> None:
        nonlocal count, used, stopped
        with lock:
            if stopped:
                return
            size = _size(event)
            if size is None or size > MAX_EVENT_BYTES:
                event = _status(
                    f"an event of {size:,} bytes was left out (events are at most "
                    f"{MAX_EVENT_BYTES:,} bytes)"
                    if size is not None
                    else "an event no JSON can carry was left out (integers past 64 bits, or "
                    "nested too deep)"
                )
                size = _size(event) or 0
            if count >= MAX_EVENTS or used + size > MAX_CALL_EVENT_BYTES:
                stopped = True
                event = _status(
                    f"the tool's further events were left out (a call sends at most "
                    f"{MAX_EVENTS:,} events, {MAX_CALL_EVENT_BYTES // (1024 * 1024)} MiB in all)"
                )
            count += 1
            used += size
            sink(event)

    return on_event


def _size(event: Any) -> int | None:
    """An event's size as compact JSON; None when orjson cannot write it."""
    try:
        return len(orjson.dumps(event, option=orjson.OPT_NON_STR_KEYS))
    except (orjson.JSONEncodeError, RecursionError):
        return None


def _status(description: str) -> dict[str, Any]:
    return {"type": "status", "data": {"description": description, "done": False}}
