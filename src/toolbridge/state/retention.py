"""How long the store keeps its records: the audit log and the change feed, pruned by age.

Every write adds one audit entry and one change, so both grow for as long as the gateway runs
(about 870 of each in 20 minutes of heavy admin use); `prune` deletes what is past its time:

- audit entries older than `state.audit_days` (the config's; none when it is null);
- changes older than `KEEP_CHANGES`. Only replicas read the feed, as it happens, so a week is
  ample. A replica cut off from the store for longer than that would not know what it
  missed: so a prune that deletes changes leaves one of its own in the feed, `feed.prune`,
  saying the highest id it deleted (`through`). A follower whose last change is below that
  has missed some and reads everything again (`serve/shared`); the newest such marker always
  covers every id deleted so far (a prune that deletes an older marker writes a newer one).

A prune that deleted anything has an audit entry saying what (`feed.prune`); one that deleted
changes is also a change of the feed, its marker. Several processes may prune at once; the
deletes are idempotent, and only one that deleted changes writes a marker. What it trusts: the
clock of the process that prunes.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Final

import sqlalchemy as sa

from toolbridge.state.database import Database
from toolbridge.state.tables import audit, changes
from toolbridge.state.values import Change

KEEP_CHANGES = timedelta(days=7)
"""How long changes stay in the feed."""
PRUNED: Final = "feed"
"""The change kind of the marker a prune leaves (op `prune`, subject `{"through": id}`)."""


@dataclass(frozen=True, slots=True)
class Pruned:
    """What one prune deleted."""

    audit: int
    changes: int
    through: int | None
    """The highest change id deleted (None when none was)."""


async def prune(db: Database, *, audit_days: int | None, by: str) -> Pruned:
    """Delete audit entries past `audit_days` (None: keep them) and changes past KEEP_CHANGES,
    in one transaction with the marker and audit entry of what was deleted."""
    now = db.clock()
    async with db.write("prune the audit log and the change feed") as connection:
        old = sa.select(sa.func.max(changes.c.id)).where(changes.c.at < now - KEEP_CHANGES)
        through = (await connection.execute(old)).scalar()
        gone_changes = 0
        if through is not None:
            deleted = await connection.execute(changes.delete().where(changes.c.id <= through))
            gone_changes = deleted.rowcount
        gone_audit = 0
        if audit_days is not None:
            cutoff = now - timedelta(days=audit_days)
            deleted = await connection.execute(audit.delete().where(audit.c.at < cutoff))
            gone_audit = deleted.rowcount
        detail = {"audit": gone_audit, "changes": gone_changes}
        if gone_changes:
            subject = {"through": str(through)}
            await db.changed(connection, PRUNED, "prune", subject, by=by, detail=detail)
        elif gone_audit:  # the feed lost nothing: its followers need not hear of it
            await db.audit(connection, f"{PRUNED}.prune", "0", by, detail)
    return Pruned(gone_audit, gone_changes, through if gone_changes else None)


def missed(change: Change, last: int) -> bool:
    """Whether `change` is a prune's marker saying that changes after `last` were deleted
    before this follower read them."""
    if change.kind != PRUNED:
        return False
    through = change.subject.get("through", "0")
    return through.isdigit() and int(through) > last
