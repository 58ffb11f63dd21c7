"""The call log: one JSON line per tool call (never argument values), written in batches.

Each call costs a dictionary and an `orjson.dumps`; the lines reach the stream at most
`max_delay` seconds later, or as soon as `max_buffer` bytes are waiting, or on `flush()`.
Going through `logging` (a LogRecord, a formatter, a flushed write per call) cost a sixth of a
proxied call's CPU time in `bench/proxy.py`.

A log file of its own (`audit.file`) can be rotated as logrotate does: renamed (or removed)
and left to be made again. Each write first looks at the path (one `stat`, at most five times a
second) and, when the file there is no longer the one open, opens the path anew; without it
the lines went on into the renamed file, or into a removed one, lost, its space held.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from pathlib import Path
from typing import Any, BinaryIO

import orjson

from toolbridge.config import Config
from toolbridge.errors import ConfigError


class CallLog:
    def __init__(
        self,
        stream: BinaryIO,
        *,
        max_delay: float = 0.2,
        max_buffer: int = 64 * 1024,
        owned: bool = False,
        path: Path | None = None,
    ) -> None:
        self.stream = stream
        self.max_delay = max_delay
        self.max_buffer = max_buffer
        self.owned = owned
        """The stream is a file this log opened (`audit.file`), to close when it is retired."""
        self.path = path
        """The file's path, followed when the file is rotated away (None: a stream as given)."""
        self._identity = _identity(stream) if path is not None else None
        self._buffer = bytearray()
        self._scheduled = False
        self._successor: CallLog | None = None
        self._retired = False

    def retire(self, successor: CallLog | None) -> None:
        """A reload moved the log: what is buffered goes out, a file of its own is closed (a
        reload that changed `audit.file` 40 times left 40 files open), and what calls still
        running record goes to `successor` (the new log), or nowhere when there is none."""
        self.flush()
        self._successor = successor
        self._retired = True
        if self.owned:
            with contextlib.suppress(OSError):
                self.stream.close()

    def record(self, entry: dict[str, Any]) -> None:
        if self._retired:
            if self._successor is not None:
                self._successor.record(entry)
            return  # else the config keeps no call log any more
        self._buffer += orjson.dumps({"time": round(time.time(), 3), **entry})
        self._buffer += b"\n"
        if len(self._buffer) >= self.max_buffer:
            self.flush()
        elif not self._scheduled:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                self.flush()  # no loop to wait in: write now
                return
            self._scheduled = True
            loop.call_later(self.max_delay, self.flush)

    def flush(self) -> None:
        self._scheduled = False
        if not self._buffer:
            return
        data, self._buffer = bytes(self._buffer), bytearray()
        if self.path is not None and not self._retired:
            self._follow(self.path)
        try:
            self.stream.write(data)
            self.stream.flush()
        except (OSError, ValueError):
            pass  # a closed or broken log stream must not break calls

    def _follow(self, path: Path) -> None:
        """The file at `path`, opened anew when it is not the one open (rotated away)."""
        try:
            found = os.stat(path)
            if (found.st_dev, found.st_ino) == self._identity:
                return
        except OSError:
            pass  # removed: made again
        try:
            stream = path.open("ab")
        except OSError:
            return  # (its folder went too): on into the file open
        with contextlib.suppress(OSError):
            self.stream.close()
        self.stream, self._identity = stream, _identity(stream)


def _identity(stream: BinaryIO) -> tuple[int, int] | None:
    try:
        found = os.fstat(stream.fileno())
    except (OSError, ValueError):
        return None
    return found.st_dev, found.st_ino


def open_audit_file(path: Path) -> CallLog:
    """The call log appending to the config's `audit.file`; ConfigError when it cannot open."""
    try:
        return CallLog(path.open("ab"), owned=True, path=path)
    except OSError as exc:
        raise ConfigError(f"audit.file: cannot open {path}: {exc.strerror}") from exc


def check_audit_file(config: Config) -> None:
    """Raise ConfigError when the config's `audit.file` could not be opened to append to, as a
    start would find (for `check`, which creates no file)."""
    if config.audit is None or config.audit.file == "-":
        return
    path = config.base_dir / config.audit.file
    if path.exists():
        problem = "it is a folder" if path.is_dir() else None
        problem = problem or (None if os.access(path, os.W_OK) else "permission denied")
    elif not path.parent.is_dir():
        problem = f"its folder {path.parent} does not exist"
    else:
        problem = None if os.access(path.parent, os.W_OK) else "its folder is not writable"
    if problem is not None:
        raise ConfigError(f"audit.file: cannot open {path}: {problem}")
