"""Building many objects at once (a conversion, an unpacked catalog, a list answer).

CPython's cyclic collector runs after every few hundred new container objects and, now and
then, walks every object the process holds. A conversion or an unpacked catalog makes hundreds
of thousands of objects that all live on (or go when their count drops to zero: JSON values
hold no cycles), so each of those walks finds nothing; on large documents they cost a sixth of
the time. `collector_paused()` turns the collector off for the duration and, at the end, moves
the new objects into the oldest generation unwalked (`gc.freeze` then `gc.unfreeze`), as if
they had survived the collections they were spared.

After a large build, `give_back()` returns the heap it freed to the system (glibc's
`malloc_trim`; nothing elsewhere): the parsed documents of a cold start and the rendering of a
big list are gone, and without it most of their pages would stay in the process for good.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import lru_cache


@contextmanager
def collector_paused() -> Iterator[None]:
    """No cyclic garbage collection inside the block (a no-op if it is off already)."""
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        gc.enable()
        gc.unfreeze()


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
