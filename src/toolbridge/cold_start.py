"""A cold start's large documents converted in a forked child, so that the server keeps none of
what converting them churned through.

Converting the whole shared corpus (42 documents, 7,948 tools) builds and drops a great many
objects; the allocator keeps much of that memory for good, fragmented: a server that converted
it held 196 MiB, one that read the same catalog from the compiled cache 127 MiB. So when the
local documents still to convert (those without a compiled entry) add up to `COLD_BYTES` or
more, a forked child (`forked`) converts them, writing their entries, and exits; the server
then reads every source from the compiled cache, as a warm start does. A cold start takes the
half second that reading costs longer, and nothing else changes: a document the child could
not convert (or one that changed meanwhile) is converted in the server as before, with its
error if it has one. Where there is no fork, no cache, or the child fails, the server converts
everything itself.

What it trusts: nothing but the compiled cache's own checks (`openapi/compiled.py`); the child
only writes entries, and the server reads them as it reads any entry.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from toolbridge.forked import in_child

logger = logging.getLogger(__name__)

COLD_BYTES = 4 * 1024 * 1024
"""Local documents still to convert, in bytes, from which they are converted in a child."""
CHILD_TIMEOUT = 600.0
"""Seconds the child may take (the corpus takes about 12) before it is stopped."""


def convert_aside(uncompiled_bytes: int, convert: Callable[[], object]) -> bool:
    """Run `convert` (which converts the documents and writes their compiled entries) in a
    forked child when `uncompiled_bytes` reach `COLD_BYTES`; whether a child did it."""
    if uncompiled_bytes < COLD_BYTES:
        return False

    def work() -> bytes:
        convert()
        return b"done"

    done = in_child(work, timeout=CHILD_TIMEOUT) == b"done"
    if not done:
        logger.info("converting the documents here: no child could (%d bytes)", uncompiled_bytes)
    return done
