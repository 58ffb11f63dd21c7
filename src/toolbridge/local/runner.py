"""Where async local tools run: on an event loop of their own, in a worker thread, watched.

An async tool that blocks (`time.sleep(6)`, a synchronous HTTP client) would stop the loop it
runs on: on the gateway's own loop that is every request, `/healthz` included, and the call's
timeout could not fire until the tool let go. Here async tools share one loop in one daemon
thread, started on first use; the gateway awaits each call from its own loop, so its timeout
holds (the tool's task is cancelled when its loop gets control back), and the rest of the
gateway keeps answering.

A watchdog thread sends that loop a heartbeat every `BEAT` seconds; when one goes unanswered
for `BLOCKED_AFTER` seconds it logs, once per stall, which tool calls were running there (a
blocking tool stalls the others on that loop, so it is named for the operator to fix).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Coroutine
from typing import Any

logger = logging.getLogger(__name__)

BEAT = 0.25
BLOCKED_AFTER = 1.0
"""Seconds the tools' loop may go without answering a heartbeat before it is reported."""


class ToolStopped(Exception):
    """A tool raised KeyboardInterrupt or SystemExit, which would stop the thread (or the loop,
    or the process) that ran it: kept to the call, where `raised` is said as any error is."""

    def __init__(self, raised: BaseException) -> None:
        super().__init__(raised)
        self.raised = raised


def contained(call: Callable[[], Any]) -> Callable[[], Any]:
    """`call`, with KeyboardInterrupt and SystemExit raised as ToolStopped (for a thread)."""

    def run() -> Any:
        try:
            return call()
        except (KeyboardInterrupt, SystemExit) as exc:
            raise ToolStopped(exc) from None

    return run


class ToolLoop:
    """One event loop in a daemon thread, for async local tools, with its watchdog."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._running: Counter[str] = Counter()
        self._answered = time.monotonic()
        self._reported = False

    async def run(self, name: str, coroutine: Coroutine[Any, Any, Any]) -> Any:
        """Await `coroutine` (a call of the tool `name`) on the tools' loop, from any loop.

        Cancelling the await (a timeout) cancels the tool's task there. The call counts as
        running there until it ends there: a tool that blocks its loop outlives the timeout
        of the call that awaited it, and is still the one to name."""
        loop = self._started()
        with self._lock:
            self._running[name] += 1
        future = asyncio.run_coroutine_threadsafe(self._tracked(name, coroutine), loop)
        return await asyncio.wrap_future(future)

    async def _tracked(self, name: str, coroutine: Coroutine[Any, Any, Any]) -> Any:
        try:
            return await coroutine
        except (KeyboardInterrupt, SystemExit) as exc:  # would stop the loop of every tool
            raise ToolStopped(exc) from None
        finally:
            with self._lock:
                self._running[name] -= 1
                if self._running[name] <= 0:
                    del self._running[name]

    def loop(self) -> asyncio.AbstractEventLoop:
        """The tools' loop (started on first use): the one a tool file's top level finds as
        the current event loop (`asyncio.get_event_loop()`), as Open WebUI's running one."""
        return self._started()

    def _started(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None:
                loop = asyncio.new_event_loop()
                threading.Thread(
                    target=loop.run_forever, name="toolbridge-local-tools", daemon=True
                ).start()
                threading.Thread(
                    target=self._watch, args=(loop,), name="toolbridge-watchdog", daemon=True
                ).start()
                self._loop = loop
            return self._loop

    def _watch(self, loop: asyncio.AbstractEventLoop) -> None:
        while not loop.is_closed():
            time.sleep(BEAT)
            loop.call_soon_threadsafe(self._beat)
            stalled = time.monotonic() - self._answered
            if stalled > BLOCKED_AFTER and not self._reported:
                with self._lock:
                    running = sorted(self._running)
                if not running:
                    # No tool call there: the loop's thread did not get the interpreter (a long
                    # conversion held it, or the process is ending). Nothing to name, or to fix.
                    continue
                self._reported = True
                logger.warning(
                    "an async local tool blocks its event loop (no answer for %.1f s); running "
                    "there: %s. Use `await` (asyncio.sleep, an async client) or a plain `def` "
                    "tool, which runs in a thread of its own",
                    stalled,
                    ", ".join(running),
                )

    def _beat(self) -> None:
        self._answered = time.monotonic()
        self._reported = False


TOOL_LOOP = ToolLoop()
"""The process's loop for async local tools (one thread, started on first use)."""
