"""The worker processes of one `toolbridge serve --workers N` stay in step.

A reload or an approval that one worker takes (from the admin API or a signal) is appended as
one JSON line to an event file in a runtime folder the serving parent made for its workers;
every worker follows that file and applies what the others appended, then records how far it
got in a file of its own (`acks/<pid>`). The worker that took the request waits until every
live sibling has caught up before it answers, so a caller who reloads and then calls sees the
new state on whichever worker the next connection reaches.

Trust: the folder is created by the serving process (mode 0700) and read only by its workers;
a line that is not a JSON object is skipped with a warning.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio
import orjson

logger = logging.getLogger(__name__)

RUNTIME_ENV = "TOOLBRIDGE_RUNTIME_DIR"
"""Where the serving parent tells its workers the shared runtime folder is."""
KEPT_CONFIG = "config.yaml"
"""The text of the config the workers serve (the parent's at start, then each reload's): a
worker started anew while the file holds an edit a reload refused serves this instead."""
EVENTS = "events.jsonl"
MAX_LINE = 64 * 1024
"""An event line is a few hundred bytes; anything longer is not ours."""


class Siblings:
    """One worker's view of the event file it shares with its siblings."""

    def __init__(self, directory: Path, *, pid: int | None = None, poll: float = 0.1) -> None:
        self.directory = directory
        self.pid = pid if pid is not None else os.getpid()
        self.poll = poll
        self.events = directory / EVENTS
        self.acks = directory / "acks"
        self.acks.mkdir(exist_ok=True)
        self.events.touch(exist_ok=True)
        # A worker that starts (or is restarted) loads the config itself: what came before
        # is already part of what it loaded.
        self.offset = self.events.stat().st_size
        self._ack(self.offset)

    @classmethod
    def from_environ(cls, environ: dict[str, str] | os._Environ[str]) -> Siblings | None:
        directory = environ.get(RUNTIME_ENV)
        return cls(Path(directory)) if directory else None

    def keep_config(self, text: str) -> None:
        """Keep the text of the config being served, for a worker started after."""
        keep_config(self.directory, text)

    def kept_config(self) -> str | None:
        """The text of the config the workers serve, if one was kept."""
        try:
            return (self.directory / KEPT_CONFIG).read_text("utf-8")
        except OSError:
            return None

    def publish(self, event: dict[str, Any]) -> int:
        """Append an event for the siblings; returns the offset just past it."""
        line = orjson.dumps({**event, "from": self.pid}) + b"\n"
        fd = os.open(self.events, os.O_WRONLY | os.O_APPEND)
        try:
            os.write(fd, line)  # one write with O_APPEND: lines from workers never interleave
            end = os.lseek(fd, 0, os.SEEK_CUR)
        finally:
            os.close(fd)
        return end

    async def follow(self, apply: Callable[[dict[str, Any]], Awaitable[object]]) -> None:
        """Run until cancelled: apply each event a sibling appends, then record it applied."""
        while True:
            await anyio.sleep(self.poll)
            size = self.events.stat().st_size
            if size <= self.offset:
                continue
            with self.events.open("rb") as file:
                file.seek(self.offset)
                chunk = file.read(size - self.offset)
            consumed = chunk.rfind(b"\n") + 1  # only whole lines; the rest is still being written
            for raw in chunk[:consumed].splitlines():
                event = _event(raw)
                if event is None or event.get("from") == self.pid:
                    continue
                try:
                    await apply(event)
                except Exception:
                    logger.exception("applying %s from worker %s failed", event, event.get("from"))
            self.offset += consumed
            self._ack(self.offset)

    async def wait(self, offset: int, *, timeout: float) -> tuple[int, int]:
        """Wait until every live sibling has applied up to `offset`; (caught up, siblings)."""
        deadline = time.monotonic() + timeout
        while True:
            waiting, total = self._behind(offset)
            if not waiting or time.monotonic() >= deadline:
                return total - len(waiting), total
            await anyio.sleep(self.poll)

    def _behind(self, offset: int) -> tuple[list[int], int]:
        behind, total = [], 0
        for path in self.acks.iterdir():
            if not path.name.isdigit() or int(path.name) == self.pid:
                continue
            pid = int(path.name)
            if not alive(pid):
                with contextlib.suppress(OSError):
                    path.unlink()  # a worker that died: its replacement registers anew
                continue
            total += 1
            try:
                done = int(path.read_text() or 0)
            except (OSError, ValueError):
                done = 0
            if done < offset:
                behind.append(pid)
        return behind, total

    def _ack(self, offset: int) -> None:
        target = self.acks / str(self.pid)
        temporary = self.acks / f".{self.pid}.tmp"
        temporary.write_text(str(offset))
        temporary.replace(target)  # atomic: a reader sees the old number or the new one


def keep_config(directory: Path, text: str) -> None:
    """Write the served config's text into the runtime folder, whole or not at all."""
    temporary = directory / f".{KEPT_CONFIG}.{os.getpid()}"
    try:
        temporary.write_text(text, "utf-8")
        temporary.replace(directory / KEPT_CONFIG)
    except OSError as exc:
        logger.warning("cannot keep the served config for later workers: %s", exc)


def _event(raw: bytes) -> dict[str, Any] | None:
    if len(raw) > MAX_LINE:
        logger.warning("skipping an event line of %d bytes", len(raw))
        return None
    try:
        event = orjson.loads(raw)
    except orjson.JSONDecodeError:
        logger.warning("skipping an event line that is not JSON")
        return None
    return event if isinstance(event, dict) else None


def alive(pid: int) -> bool:
    """Whether a process of that id lives (one of another user's counts)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
