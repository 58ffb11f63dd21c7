"""The events one call may emit: each at most MAX_EVENT_BYTES, at most MAX_EVENTS and
MAX_CALL_EVENT_BYTES in all; past that, one status event says the rest were left out."""

from __future__ import annotations

from typing import Any

import pytest

from toolbridge.events import MAX_CALL_EVENT_BYTES, MAX_EVENT_BYTES, MAX_EVENTS, bounded


def status(description: str) -> dict[str, Any]:
    return {"type": "status", "data": {"description": description, "done": False}}


FURTHER = status(
    "the tool's further events were left out (a call sends at most 1,000 events, 4 MiB in all)"
)


def test_an_event_too_large_is_said_in_its_place() -> None:
    seen: list[Any] = []
    on_event = bounded(seen.append)
    on_event({"type": "message", "data": {"content": "x" * MAX_EVENT_BYTES}})
    on_event({"type": "status", "data": {"description": "done", "done": True}})
    on_event({"type": "message", "data": {"n": 2**70}})  # no JSON orjson writes
    size = MAX_EVENT_BYTES + len('{"type":"message","data":{"content":""}}')
    assert seen == [
        status(f"an event of {size:,} bytes was left out (events are at most 262,144 bytes)"),
        {"type": "status", "data": {"description": "done", "done": True}},
        status(
            "an event no JSON can carry was left out (integers past 64 bits, or nested too deep)"
        ),
    ]


def test_after_so_many_events_the_rest_are_left_out_and_said_once() -> None:
    seen: list[Any] = []
    on_event = bounded(seen.append)
    for n in range(MAX_EVENTS + 50):
        on_event({"type": "status", "data": {"description": str(n)}})
    assert seen[:3] == [{"type": "status", "data": {"description": str(n)}} for n in range(3)]
    assert (len(seen), seen[-1]) == (MAX_EVENTS + 1, FURTHER)


def test_after_so_many_bytes_the_rest_are_left_out() -> None:
    seen: list[Any] = []
    on_event = bounded(seen.append)
    event = {"type": "message", "data": {"content": "y" * (MAX_EVENT_BYTES - 100)}}
    for _ in range(40):
        on_event(event)
    kept = MAX_CALL_EVENT_BYTES // (MAX_EVENT_BYTES - 100 + 39)
    assert (len(seen), seen[-1], seen[:kept] == [event] * kept) == (kept + 1, FURTHER, True)


@pytest.mark.anyio
async def test_a_gateway_call_passes_on_a_bounded_number_of_events(tmp_path: Any) -> None:
    from toolbridge.config import Config, LocalTools
    from toolbridge.gateway import Gateway
    from toolbridge.policy import ANONYMOUS_ADMIN
    from toolbridge.upstream.seam import MockUpstream, UpstreamResponse

    (tmp_path / "chatty.py").write_text(
        "class Tools:\n"
        "    def chat(self, __event_emitter__) -> str:\n"
        "        for n in range(5000):\n"
        "            __event_emitter__({'type': 'status', 'data': {'description': str(n)}})\n"
        "        return 'said'\n"
    )
    config = Config(tools=(LocalTools(id="chatty", path="chatty.py"),), base_dir=tmp_path)
    gateway = Gateway(config, upstream=MockUpstream(lambda request: UpstreamResponse(status=500)))
    seen: list[Any] = []
    async with gateway:
        result = await gateway.call(ANONYMOUS_ADMIN, "chat", {}, on_event=seen.append)
    assert (result.result, len(seen), seen[-1]) == ("said", MAX_EVENTS + 1, FURTHER)
