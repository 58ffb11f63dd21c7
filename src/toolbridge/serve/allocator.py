"""The C allocator of a serving process: two malloc arenas, not one per thread.

glibc's malloc gives each thread that allocates at once an arena of its own, up to eight per
core, and a freed block goes back to its arena only. A gateway renders lists, rebuilds catalogs
and serves calls at once, on the event loop and in worker threads (`anyio.to_thread`), so what
one burst took is spread over many arenas and is seldom given back. Measured in two soaks of
two replicas under the full mix (admin writes, calls, list renders, MCP sessions), glibc's
default against two arenas: in the first (12 minutes), worker memory grew about 50 MiB an hour
against about 20; in the second (45 minutes, 11 to 13 arenas against one besides the main
one), the growth rates were within noise of each other (17-22 against 12-19 MiB an hour, both
levelling off in the second half, two arenas flat), and workers with two arenas ended about
8 MiB lower (163-166 against 171-174 MiB), at the same throughput and latency. What Python
holds did not grow (tracemalloc). Threads that allocate at the same moment wait for each
other a little more.

`MALLOC_ARENA_MAX` set in the environment is the operator's and is left alone. Elsewhere than
glibc (musl, macOS) nothing is done.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
from collections.abc import MutableMapping

logger = logging.getLogger(__name__)

ARENAS = 2
ENV = "MALLOC_ARENA_MAX"
_M_ARENA_MAX = -8
"""mallopt's parameter for the arena limit (glibc's malloc.h)."""


def limit_arenas(environ: MutableMapping[str, str] = os.environ) -> bool:
    """Limit this process to `ARENAS` arenas, and the processes it starts (`--workers`; they
    read `MALLOC_ARENA_MAX` as they start), unless the environment says otherwise. True when
    the limit was set here."""
    if ENV in environ:
        return False
    environ[ENV] = str(ARENAS)
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc: no mallopt, or no such parameter
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    if mallopt(_M_ARENA_MAX, ARENAS) != 1:
        logger.debug("mallopt(M_ARENA_MAX, %d) refused", ARENAS)
        return False
    return True
