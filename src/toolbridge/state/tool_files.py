"""Local tool files and filter files registered through the admin API, and their Valves.

A tool is stored as Open WebUI stores one: the file's text with its frontmatter, beside the
entry keys (`prefix`, `timeout`, `access`, ...). Its Valves live apart, so they can change
without the file; the values the caller names secret are sealed and listed as `REDACTED`. A
filter (a file with `class Filter`, and the keys of a `filters` entry) is stored the same way,
in the same tables, marked by its `kind`: `store.tools` and `store.filters` are this class for
one kind each, and neither sees the other's files. Ids are unique across both kinds.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, MutableSequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from toolbridge.errors import (
    AlreadyExists,
    BadRequest,
    Conflict,
    SecretKeyError,
    ToolNotFound,
    quoted,
)
from toolbridge.state.database import (
    MAX_ENTRY_BYTES,
    MAX_TOOL_BYTES,
    Database,
    digest,
    size_check,
    too_large,
)
from toolbridge.state.revisions import Expected, checked, revised
from toolbridge.state.rows import tool_record, valves_of
from toolbridge.state.scopes import refuse_if_scoped, refuse_unknown_sources
from toolbridge.state.tables import servers, tool_valves, tools, user_valves
from toolbridge.state.values import FileKind, ToolInClear, ToolRecord, Valves


class ToolFiles:
    """The stored files of one kind (`tool` or `filter`) and their Valves."""

    def __init__(self, db: Database, kind: FileKind = "tool") -> None:
        self._db = db
        self.kind: FileKind = kind
        self._mine = tools.c.kind == kind

    async def create(
        self,
        tool_id: str,
        content: str,
        entry: Mapping[str, Any],
        *,
        valves: Mapping[str, Any] | None = None,
        secret: Iterable[str] = (),
        by: str,
        in_file: frozenset[str] | None = None,
    ) -> ToolRecord:
        """Store a new file, its entry keys and (optionally) its Valves, in one change. With
        `in_file` (the sources the config file defines), a filter's `sources` must name those
        or sources the store holds (`scopes`)."""
        row = _row(self.kind, tool_id, content, entry)
        now = self._db.clock()
        async with self._db.write(f"register {self.kind} {tool_id!r}") as connection:
            await self._scoped(connection, tool_id, entry, in_file)
            # One space of ids with servers (writes are serialized: see Servers.create).
            taken = (
                await connection.execute(sa.select(servers.c.id).where(servers.c.id == tool_id))
            ).first()
            if taken is not None:
                raise AlreadyExists(f"{tool_id!r} is already registered, as a server")
            try:
                await connection.execute(
                    tools.insert().values(
                        id=tool_id,
                        kind=self.kind,
                        created_at=now,
                        updated_at=now,
                        updated_by=by,
                        **row,
                    )
                )
            except sa.exc.IntegrityError:
                raise AlreadyExists(f"{self.kind} {tool_id!r} is already registered") from None
            if valves is not None:
                await self._put_valves(connection, tool_id, valves, secret, by)
            change = await self._db.changed(
                connection, self.kind, "create", self._subject(tool_id), by=by, detail=_detail(row)
            )
            await revised(connection, tools, tools.c.id == tool_id, change)
        return await self._stored(tool_id)

    async def update(
        self,
        tool_id: str,
        content: str,
        entry: Mapping[str, Any],
        *,
        valves: Mapping[str, Any] | None = None,
        secret: Iterable[str] = (),
        by: str,
        in_file: frozenset[str] | None = None,
        expected: Expected = None,
    ) -> ToolRecord | None:
        """Replace a file and its entry (and Valves, when given); None when absent,
        PreconditionFailed when its revision is not one of `expected`. `in_file` as for
        `create`."""
        row = _row(self.kind, tool_id, content, entry)
        key = (tools.c.id == tool_id) & self._mine
        async with self._db.write(f"update {self.kind} {tool_id!r}") as connection:
            await checked(connection, tools, key, expected, f"{self.kind} {tool_id!r}")
            await self._scoped(connection, tool_id, entry, in_file)
            updated = await connection.execute(
                tools.update().where(key).values(updated_at=self._db.clock(), updated_by=by, **row)
            )
            if updated.rowcount == 0:
                return None
            if valves is not None:
                await self._put_valves(connection, tool_id, valves, secret, by)
            change = await self._db.changed(
                connection, self.kind, "update", self._subject(tool_id), by=by, detail=_detail(row)
            )
            await revised(connection, tools, key, change)
        return await self._stored(tool_id)

    async def delete(self, tool_id: str, *, by: str, expected: Expected = None) -> bool:
        """Remove a file, its Valves and every user's UserValves for it; Conflict for a tools
        file a stored filter names in its `sources`, PreconditionFailed when its revision is
        not one of `expected`."""
        async with self._db.write(f"delete {self.kind} {tool_id!r}") as connection:
            key = (tools.c.id == tool_id) & self._mine
            await checked(connection, tools, key, expected, f"{self.kind} {tool_id!r}")
            if self.kind == "tool":
                await refuse_if_scoped(connection, tool_id, "tools")
            deleted = await connection.execute(
                tools.delete().where((tools.c.id == tool_id) & self._mine)
            )
            if deleted.rowcount == 0:
                return False
            await connection.execute(tool_valves.delete().where(tool_valves.c.tool_id == tool_id))
            await connection.execute(user_valves.delete().where(user_valves.c.tool_id == tool_id))
            await self._db.changed(connection, self.kind, "delete", self._subject(tool_id), by=by)
        return True

    async def get(self, tool_id: str) -> ToolRecord | None:
        query = sa.select(tools).where((tools.c.id == tool_id) & self._mine)
        async with self._db.read(f"read {self.kind} {tool_id!r}") as connection:
            row = (await connection.execute(query)).first()
        return None if row is None else tool_record(row)

    async def list(self) -> tuple[ToolRecord, ...]:
        """Every stored file of this kind, by id (Valves apart: `get_valves`)."""
        async with self._db.read(f"list {self.kind}s") as connection:
            query = sa.select(tools).where(self._mine).order_by(tools.c.id)
            rows = (await connection.execute(query)).all()
        return tuple(tool_record(row) for row in rows)

    async def in_clear(
        self, unopened: MutableSequence[str] | None = None
    ) -> tuple[ToolInClear, ...]:
        """Every stored file of this kind with its Valves, secrets included: what the gateway
        loads, in the order they were registered (then by id). One whose sealed valves no
        configured key opens raises SecretKeyError, or, with an `unopened` list, is left out
        and said there."""
        query = (
            sa.select(tools, tool_valves.c.valves, tool_valves.c.sealed)
            .outerjoin(tool_valves, tool_valves.c.tool_id == tools.c.id)
            .where(self._mine)
        )
        async with self._db.read(f"read {self.kind}s") as connection:
            # In the order they were registered: the order their tools claim names in.
            rows = (await connection.execute(query.order_by(tools.c.created_at, tools.c.id))).all()
        loaded = []
        for row in rows:
            entry = dict(row.entry)
            if row.valves is not None:
                what = f"the valves of {self.kind} {row.id!r}"
                try:
                    entry["valves"] = self._db.unsealed(row.valves, row.sealed, what)
                    # The valves sealed at rest are secrets wherever they would leave, too.
                    sealed = self._db.opened(row.sealed, what) if row.sealed else []
                except SecretKeyError as exc:
                    if unopened is None:
                        raise
                    unopened.append(str(exc))
                    continue
                entry["secret"] = sorted({path[0] for path, _ in sealed if len(path) == 1})
            loaded.append(ToolInClear(row.id, row.content, entry))
        return tuple(loaded)

    async def put_valves(
        self,
        tool_id: str,
        values: Mapping[str, Any],
        *,
        secret: Iterable[str] = (),
        by: str,
        checked_with: str | None = None,
        expected: Expected = None,
    ) -> tuple[Valves, int]:
        """Replace the Valves of a stored file (a new revision of it); the Valves as stored and
        the file's revision now. The values named in `secret` are encrypted at rest.
        `checked_with`: the sha256 of the file the values were checked with; Conflict when the
        stored file is another by now (replaced meanwhile), ToolNotFound when gone,
        PreconditionFailed when its revision is not one of `expected`."""
        async with self._db.write(f"store the valves of {self.kind} {tool_id!r}") as connection:
            key = (tools.c.id == tool_id) & self._mine
            await checked(connection, tools, key, expected, f"{self.kind} {tool_id!r}")
            if checked_with is not None:
                query = sa.select(tools.c.content_sha256).where(key)
                stored = (await connection.execute(query)).scalar()
                if stored is None:
                    raise ToolNotFound(f"no {self.kind} {quoted(tool_id)}: it was deleted just now")
                if stored != checked_with:
                    raise Conflict(
                        f"{self.kind} {tool_id!r} was replaced while its valves were checked: "
                        "send them again (they are checked against the file stored now)"
                    )
            await self._put_valves(connection, tool_id, values, secret, by)
            change = await self._db.changed(
                connection,
                "tool_valves" if self.kind == "tool" else "filter_valves",
                "update",
                self._subject(tool_id),
                by=by,
                detail=valves_detail(values, secret),
            )
            await revised(connection, tools, key, change)
        found = await self.get_valves(tool_id)
        assert found is not None
        return found, change

    async def get_valves(self, tool_id: str) -> Valves | None:
        """The stored Valves of a file, secrets redacted."""
        row = await self._valves_row(tool_id)
        return None if row is None else valves_of(row)

    async def valves_in_clear(self, tool_id: str) -> dict[str, Any] | None:
        """The stored Valves of a file with their secrets: what it is loaded with."""
        row = await self._valves_row(tool_id)
        what = f"the valves of {self.kind} {tool_id!r}"
        return None if row is None else self._db.unsealed(row.valves, row.sealed, what)

    async def _valves_row(self, tool_id: str) -> sa.Row[Any] | None:
        # Valves of another kind's file are not this kind's (ids are shared by both kinds).
        query = (
            sa.select(tool_valves)
            .outerjoin(tools, tools.c.id == tool_valves.c.tool_id)
            .where((tool_valves.c.tool_id == tool_id) & (self._mine | tools.c.kind.is_(None)))
        )
        async with self._db.read(f"read the valves of {self.kind} {tool_id!r}") as connection:
            return (await connection.execute(query)).first()

    async def _put_valves(
        self,
        connection: AsyncConnection,
        tool_id: str,
        values: Mapping[str, Any],
        secret: Iterable[str],
        by: str,
    ) -> None:
        what = f"the valves of {self.kind} {tool_id!r}"
        values, names = dict(values), set(secret) & set(values)
        size_check(values, MAX_ENTRY_BYTES, what)
        key = tool_valves.c.tool_id == tool_id
        old = (await connection.execute(sa.select(tool_valves.c.sealed).where(key))).first()
        paths = [(name,) for name in sorted(names)]
        public, sealed = self._db.sealed(values, paths, what, old.sealed if old else None)
        row = {
            "valves": public,
            "secret": sorted(names),
            "sealed": sealed,
            "updated_at": self._db.clock(),
            "updated_by": by,
        }
        if old is None:
            await connection.execute(tool_valves.insert().values(tool_id=tool_id, **row))
        else:
            await connection.execute(tool_valves.update().where(key).values(**row))

    async def _scoped(
        self,
        connection: AsyncConnection,
        tool_id: str,
        entry: Mapping[str, Any],
        in_file: frozenset[str] | None,
    ) -> None:
        sources = entry.get("sources")
        if self.kind == "filter" and in_file is not None and isinstance(sources, list):
            await refuse_unknown_sources(connection, tool_id, map(str, sources), in_file)

    async def _stored(self, tool_id: str) -> ToolRecord:
        """The entry as just written; another replica's delete may have come between."""
        found = await self.get(tool_id)
        if found is None:
            raise ToolNotFound(f"no {self.kind} {quoted(tool_id)}: it was deleted just now")
        return found

    def _subject(self, tool_id: str) -> dict[str, str]:
        return {self.kind: tool_id}


def _row(kind: FileKind, tool_id: str, content: str, entry: Mapping[str, Any]) -> dict[str, Any]:
    if "valves" in entry:
        raise BadRequest(
            f"{kind} {tool_id!r}: give its valves apart from the entry (`valves=`), so the ones "
            "that are secret can be sealed"
        )
    encoded = content.encode("utf-8")
    if len(encoded) > MAX_TOOL_BYTES:
        raise too_large(f"the content of {kind} {tool_id!r}", len(encoded), MAX_TOOL_BYTES)
    size_check(dict(entry), MAX_ENTRY_BYTES, f"the entry of {kind} {tool_id!r}")
    return {"content": content, "content_sha256": digest(encoded), "entry": dict(entry)}


def _detail(row: Mapping[str, Any]) -> dict[str, Any]:
    return {"keys": sorted(row["entry"]), "sha256": row["content_sha256"]}


def valves_detail(values: Mapping[str, Any], secret: Iterable[str]) -> dict[str, Any]:
    """What the audit log says about stored Valves: their names, never their values."""
    return {"keys": sorted(values), "secret": sorted(set(secret) & set(values))}
