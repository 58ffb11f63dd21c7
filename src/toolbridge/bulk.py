"""Building many objects at once (a conversion, an unpacked catalog, a list answer).

CPython's cyclic collector runs after every few hundred new container objects and, now and
then, walks every object the process holds. A conversion or an unpacked catalog makes hundreds
of thousands of objects that all live on (or go when their count drops to zero: JSON values
hold no cycles), so each of those walks finds nothing; on large documents they cost a sixth of
the time. `collector_paused()` turns the collector off for the duration, and back on after.
The new objects then age as any do. (Moving them into the oldest generation unwalked, with
`gc.freeze` and `gc.unfreeze`, starved the collector: a freeze zeroes the count of new objects
that starts a collection, and what an unfreeze moves is not counted toward a full one, so a
serving process whose reloads each re-imported a tool file held every earlier import's
cycles, about 4 MB per 100 reloads.)

After a large build, `give_back()` returns the heap it freed to the system (glibc's
`malloc_trim`; nothing elsewhere): the parsed documents of a cold start and the rendering of a
big list are gone, and without it most of their pages would stay in the process for good.
`keep_large_apart()` (once, when a server starts) makes blocks of `LARGE_BLOCK` bytes or more
come from, and go back to, the system directly: glibc otherwise raises that bound to the size
of each large block freed (list answers are megabytes), and later blocks below it then settle
in the heap and fragment it.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import lru_cache


@contextmanager
def collector_paused(*, keep: bool = False) -> Iterator[None]:
    """No cyclic garbage collection inside the block (a no-op if it is off already).

    `keep`: what the process holds at the end (a server's start: its modules and its whole
    catalog) is moved out of the collector's reach for good (`gc.freeze`, once), so that no
    collection walks it again: those walks took a sixth of a warm start. What of it dies later
    (the first catalog, at a reload) goes by its count, as JSON values do; only what of it is
    cyclic stays, once. Reloads never freeze (see the module doc)."""
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        if keep:
            gc.freeze()
        gc.enable()


LARGE_BLOCK = 256 * 1024
_M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter number


def keep_large_apart() -> None:
    """Serve blocks of `LARGE_BLOCK` bytes or more from the system directly (glibc only)."""
    name = ctypes.util.find_library("c")
    try:
        mallopt = ctypes.CDLL(name).mallopt
    except (OSError, AttributeError, TypeError):
        return
    mallopt(_M_MMAP_THRESHOLD, LARGE_BLOCK)


def give_back() -> None:
    """Return the free memory at the heap's disposal to the system, where the C library can."""
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


@lru_cache(maxsize=1)
def _malloc_trim() -> Callable[[int], int] | None:
    name = ctypes.util.find_library("c")
    try:
        trim: Callable[[int], int] = ctypes.CDLL(name).malloc_trim
    except (OSError, AttributeError, TypeError):  # not glibc: the allocator does as it does
        return None
    return trim
