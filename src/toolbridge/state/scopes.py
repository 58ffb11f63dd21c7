"""What a stored filter's `sources` name, checked inside a write (writes are serialized), so
that no two replicas' writes can leave a filter scoped to a source one of them deleted.

The admin API checks the same against its process's catalog first, for a quick clear answer;
that view may be a moment old when another replica writes, the store's is not. What it trusts:
the rows of the store (entries the admin API checked when it stored them).
"""

from __future__ import annotations

from collections.abc import Iterable

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from toolbridge.errors import ConfigError, Conflict
from toolbridge.state.tables import servers, tools


def scoped(kind: str, ident: str, filters: Iterable[str]) -> Conflict | None:
    """The refusal to delete a source `filters` name in their `sources`; None for none."""
    names = ", ".join(map(repr, filters))
    if not names:
        return None
    return Conflict(
        f"{kind} {ident!r} is in the sources of filter {names}: take it out of their "
        "`sources` (or delete them) first"
    )


def unknown_sources(filter_id: str, unknown: Iterable[str]) -> ConfigError | None:
    """The refusal of a filter whose `sources` name no source; None when they all name one."""
    names = ", ".join(map(repr, unknown))
    if not names:
        return None
    return ConfigError(f"filters[{filter_id}].sources: {names} is no server or tools id")


async def refuse_if_scoped(connection: AsyncConnection, ident: str, kind: str) -> None:
    """Conflict when a stored filter names this source (about to be deleted) in `sources`."""
    query = sa.select(tools.c.id, tools.c.entry).where(tools.c.kind == "filter")
    rows = (await connection.execute(query.order_by(tools.c.id))).all()
    refusal = scoped(
        kind, ident, [row.id for row in rows if ident in (dict(row.entry).get("sources") or ())]
    )
    if refusal is not None:
        raise refusal


async def refuse_unknown_sources(
    connection: AsyncConnection, filter_id: str, sources: Iterable[str], in_file: frozenset[str]
) -> None:
    """ConfigError when a filter's `sources` name a source neither the config file
    (`in_file`) defines nor the store holds (a registered one deleted meanwhile)."""
    wanted = sorted(set(sources) - in_file)
    if not wanted:
        return
    stored_servers = sa.select(servers.c.id).where(servers.c.id.in_(wanted))
    stored_tools = sa.select(tools.c.id).where(tools.c.id.in_(wanted) & (tools.c.kind == "tool"))
    found = set((await connection.execute(stored_servers)).scalars())
    found |= set((await connection.execute(stored_tools)).scalars())
    refusal = unknown_sources(filter_id, [s for s in wanted if s not in found])
    if refusal is not None:
        raise refusal
