"""Files of the cache folder (`TOOLBRIDGE_CACHE_DIR`), read only when they are this user's own.

The parse cache and the compiled cache both keep what a start would otherwise compute, and
both are trusted once read: anyone who could write a file there could choose our tools. So a
file is read only if it is a regular file, owned by this user, writable by no one else, and
not over a size limit; it is opened without waiting (a FIFO put in its place would block the
open itself) and without following a symlink in its place (`/dev/zero` would never end).
Anything else is ignored with a warning, as if there were no cache.
"""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

logger = logging.getLogger(__name__)

_FLAGS = os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | getattr(os, "O_NOFOLLOW", 0)


def read_own(path: Path, max_bytes: int, what: str) -> bytes | None:
    """The bytes of the cache file `path`, or None: when there is none (the usual miss,
    quietly), and when it is not this user's own regular file of at most `max_bytes` (with a
    warning naming `what` cache it is)."""
    try:
        fd = os.open(path, _FLAGS)
    except FileNotFoundError:
        return None
    except OSError as exc:  # a symlink in its place (ELOOP), no permission, ...
        logger.warning("%s: ignoring %s (%s)", what, path, exc.strerror or exc)
        return None
    with os.fdopen(fd, "rb") as handle:
        info = os.fstat(handle.fileno())
        if not trusted(info) or info.st_size > max_bytes:
            logger.warning("%s: ignoring %s (not ours alone, or too big)", what, path)
            return None
        data = handle.read(max_bytes + 1)
    if len(data) > max_bytes:  # it grew since fstat
        logger.warning("%s: ignoring %s (too big)", what, path)
        return None
    return data


def trusted(info: os.stat_result) -> bool:
    """A regular file of this user that no one else may write."""
    if not stat.S_ISREG(info.st_mode):
        return False
    if hasattr(os, "geteuid") and info.st_uid != os.geteuid():
        return False
    return not info.st_mode & (stat.S_IWGRP | stat.S_IWOTH)
