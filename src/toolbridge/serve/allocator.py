"""The C allocator of a serving process: two malloc arenas, not one per thread.

glibc's malloc gives each thread that allocates at once an arena of its own, up to eight per
core, and a freed block goes back to its arena only. A gateway renders lists, rebuilds catalogs
and serves calls at once, on the event loop and in worker threads (`anyio.to_thread`), so the
memory one burst took is spread over many arenas and is hardly ever given back: in a soak with
admin writes, calls and list renders together, each worker's resident memory crept by about
50 MiB an hour with glibc's default, and about 20 with two arenas (with no growth of what
Python holds: tracemalloc's totals stayed flat). Threads that allocate at the same moment
wait for each other a little more.

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
