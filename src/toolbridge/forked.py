"""Work done in a child process, so that the memory it churns through never becomes the server's.

Rendering a large catalog's list (the gateway's OpenAPI document of 7,948 tools is 45 MB of
JSON) builds and drops hundreds of megabytes of small objects; the allocator keeps much of it
for good, fragmented, even though what is kept of the work is a few megabytes of compressed
bytes. `in_child` runs such work in a forked copy of the process (which sees every object as
it is, for free, and gives everything back when it exits) and takes home only its bytes.

It is a shortcut, never a requirement: where there is no fork (not Linux), or the child fails,
or it takes longer than its timeout, the answer is None and the caller does the work itself.
The child runs nothing but `work` and exits without cleanup (`os._exit`): it touches no socket,
no event loop and no file of the server, and takes the default action on signals.

A child may import modules the server has not (the OpenAPI validator a document's build
needs): a module another thread of the server was importing at the moment of the fork would be
locked in the child for good. `FORK_LOCK` is held while forking, and by whoever imports such a
module in the server (`importing`), so no child starts with one of them half imported.
"""

from __future__ import annotations

import os
import select
import signal
import sys
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import NoReturn

FORK_LOCK = threading.Lock()
"""Held while a child is forked, and while a module a child may also import is imported."""


@contextmanager
def importing() -> Iterator[None]:
    """Hold this around an import that a forked child may make too (see the module docstring)."""
    with FORK_LOCK:
        yield


def in_child(work: Callable[[], bytes], *, timeout: float) -> bytes | None:
    """`work()`'s bytes, computed in a forked child; None when that cannot be done."""
    if sys.platform != "linux":
        return None
    try:
        read, write = os.pipe()
    except OSError:  # no file descriptors left: do it here
        return None
    try:
        with warnings.catch_warnings():  # Python 3.12+ warns about forking with threads running
            warnings.simplefilter("ignore", DeprecationWarning)
            with FORK_LOCK:
                pid = os.fork()
    except OSError:  # no memory or processes left for a child: do it here
        os.close(read)
        os.close(write)
        return None
    if pid == 0:  # the child: do the work, hand the bytes over, leave at once
        os.close(read)
        _child(work, write)
    os.close(write)
    try:
        data = _collect(read, time.monotonic() + timeout)
    finally:
        os.close(read)
    if data is None:
        os.kill(pid, signal.SIGKILL)
    _, status = os.waitpid(pid, 0)
    return data if data is not None and os.waitstatus_to_exitcode(status) == 0 else None


def _child(work: Callable[[], bytes], write: int) -> NoReturn:
    code = 1
    try:
        signal.set_wakeup_fd(-1)  # the server's event loop must not hear of this process
        for number in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(number, signal.SIG_DFL)
        view = memoryview(work())
        while view:
            view = view[os.write(write, view) :]
        code = 0
    finally:
        os._exit(code)


def _collect(read: int, deadline: float) -> bytes | None:
    """Everything the child writes, or None if it is not done by `deadline`."""
    chunks: list[bytes] = []
    while True:
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([read], [], [], left)[0]:
            return None
        chunk = os.read(read, 1 << 20)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)
