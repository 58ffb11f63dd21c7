"""What `If-Match` asks of a write: that the entry is still at a revision its writer read.

Each registered server, tool file and filter file has a revision: the number, in the store's
change feed, of the newest write of it (its Valves' too). Those numbers only rise, across every
entry, so an entry deleted and registered again never takes a revision an old tag names. A
write that names the revisions it may apply to is refused, with PreconditionFailed, when the
stored one is another: two admins (or a script and an admin) editing one entry no longer undo
each other's change unseen. Writes are serialized by the store, so the check and the write see
the same entry.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from toolbridge.errors import PreconditionFailed

Expected = frozenset[int] | None
"""The revisions a write may apply to; None: any (no `If-Match`, or `If-Match: *`)."""


async def checked(
    connection: AsyncConnection, table: sa.Table, where: Any, expected: Expected, what: str
) -> None:
    """PreconditionFailed when the entry is stored at a revision `expected` does not hold (a
    write without `If-Match` reads nothing here; one of an entry not stored goes on, to be
    found absent by the write)."""
    if expected is None:
        return
    stored = (await connection.execute(sa.select(table.c.revision).where(where))).scalar()
    if stored is not None and stored not in expected:
        named = " or ".join(str(n) for n in sorted(expected)) or (
            "the tag sent (a weak one, or one not as this API writes it, never matches)"
        )
        raise PreconditionFailed(
            f"{what} is at revision {stored}, not {named} (If-Match): it was changed since it "
            "was read; read it again, and send the change made on that"
        )


async def revised(connection: AsyncConnection, table: sa.Table, where: Any, change: int) -> None:
    """The entry's revision set to `change`, the number of the write just made of it."""
    await connection.execute(table.update().where(where).values(revision=change))
