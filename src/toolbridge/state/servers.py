"""Servers registered through the admin API: their entries and uploaded documents.

A server's secrets (its `auth` credentials and every header value) are sealed; listings show
`REDACTED` in their place, and only `in_clear` gives them back, for the catalog.
"""

from __future__ import annotations

from collections.abc import Mapping, MutableSequence
from typing import Any

import sqlalchemy as sa

from toolbridge.errors import AlreadyExists, SecretKeyError, ToolNotFound, quoted
from toolbridge.state.database import (
    MAX_DOCUMENT_BYTES,
    MAX_ENTRY_BYTES,
    Database,
    digest,
    id_of,
    size_check,
    too_large,
)
from toolbridge.state.revisions import Expected, checked, revised
from toolbridge.state.rows import server_record
from toolbridge.state.scopes import refuse_if_scoped
from toolbridge.state.secrets import server_secret_paths
from toolbridge.state.tables import credentials, documents, servers, tools
from toolbridge.state.values import ServerInClear, ServerRecord

_LISTED = sa.select(*(c for c in servers.c if c.name not in ("document", "sealed")))


class Servers:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def create(
        self, entry: Mapping[str, Any], *, document: bytes | None = None, by: str
    ) -> ServerRecord:
        """Store a new server entry (and its uploaded document); `AlreadyExists` if the id is."""
        server_id = id_of(entry, "server")
        row = self._row(server_id, entry, document, None)
        now = self._db.clock()
        async with self._db.write(f"register server {server_id!r}") as connection:
            # One space of ids with tool and filter files (writes are serialized: the check
            # and the insert see the same store).
            kind = (
                await connection.execute(sa.select(tools.c.kind).where(tools.c.id == server_id))
            ).scalar()
            if kind is not None:
                raise AlreadyExists(f"{server_id!r} is already registered, as a {kind}")
            try:
                await connection.execute(
                    servers.insert().values(
                        id=server_id, created_at=now, updated_at=now, updated_by=by, **row
                    )
                )
            except sa.exc.IntegrityError:
                raise AlreadyExists(f"server {server_id!r} is already registered") from None
            change = await self._db.changed(
                connection, "server", "create", {"server": server_id}, by=by, detail=_detail(row)
            )
            await revised(connection, servers, servers.c.id == server_id, change)
        return await self._stored(server_id)

    async def update(
        self,
        entry: Mapping[str, Any],
        *,
        document: bytes | None = None,
        by: str,
        expected: Expected = None,
    ) -> ServerRecord | None:
        """Replace a server's entry and document whole; None when no such server is stored;
        PreconditionFailed when its revision is not one of `expected`."""
        server_id = id_of(entry, "server")
        key = servers.c.id == server_id
        async with self._db.write(f"update server {server_id!r}") as connection:
            await checked(connection, servers, key, expected, f"server {server_id!r}")
            old = (await connection.execute(sa.select(servers.c.sealed).where(key))).first()
            if old is None:
                return None
            row = self._row(server_id, entry, document, old.sealed)
            await connection.execute(
                servers.update()
                .where(key)
                .values(updated_at=self._db.clock(), updated_by=by, **row)
            )
            change = await self._db.changed(
                connection, "server", "update", {"server": server_id}, by=by, detail=_detail(row)
            )
            await revised(connection, servers, key, change)
        return await self._stored(server_id)

    async def delete(self, server_id: str, *, by: str, expected: Expected = None) -> bool:
        """Remove a server, every user's credential for it and its approved documents;
        Conflict when a stored filter names it in its `sources`, PreconditionFailed when its
        revision is not one of `expected`."""
        async with self._db.write(f"delete server {server_id!r}") as connection:
            key = servers.c.id == server_id
            await checked(connection, servers, key, expected, f"server {server_id!r}")
            await refuse_if_scoped(connection, server_id, "server")
            deleted = await connection.execute(servers.delete().where(key))
            if deleted.rowcount == 0:
                return False
            await connection.execute(
                credentials.delete().where(credentials.c.server_id == server_id)
            )
            await connection.execute(documents.delete().where(documents.c.source_id == server_id))
            await self._db.changed(connection, "server", "delete", {"server": server_id}, by=by)
        return True

    async def get(self, server_id: str) -> ServerRecord | None:
        """One server, secrets redacted."""
        async with self._db.read(f"read server {server_id!r}") as connection:
            row = (await connection.execute(_LISTED.where(servers.c.id == server_id))).first()
        return None if row is None else server_record(row)

    async def document(self, server_id: str) -> bytes:
        """A server's uploaded document (not a secret); empty when it was given by `spec`."""
        query = sa.select(servers.c.document).where(servers.c.id == server_id)
        async with self._db.read(f"read the document of server {server_id!r}") as connection:
            found = (await connection.execute(query)).scalar()
        return bytes(found or b"")

    async def list(self) -> tuple[ServerRecord, ...]:
        """Every stored server, by id, secrets redacted (documents: their hash and size)."""
        async with self._db.read("list servers") as connection:
            rows = (await connection.execute(_LISTED.order_by(servers.c.id))).all()
        return tuple(server_record(row) for row in rows)

    async def in_clear(
        self, unopened: MutableSequence[str] | None = None
    ) -> tuple[ServerInClear, ...]:
        """Every stored server with its secrets and document: what the catalog is built from,
        in the order they were registered (then by id), which is the order their tools claim
        names in: a server registered later cannot take a name one registered earlier serves.

        A server whose secrets no configured key opens raises SecretKeyError, or, with an
        `unopened` list, is left out and said there."""
        query = sa.select(servers).order_by(servers.c.created_at, servers.c.id)
        async with self._db.read("read servers") as connection:
            rows = (await connection.execute(query)).all()
        found = []
        for row in rows:
            try:
                entry = self._db.unsealed(row.entry, row.sealed, f"server {row.id!r}")
            except SecretKeyError as exc:
                if unopened is None:
                    raise
                unopened.append(str(exc))
                continue
            found.append(ServerInClear(id=row.id, entry=entry, document=row.document))
        return tuple(found)

    def _row(
        self,
        server_id: str,
        entry: Mapping[str, Any],
        document: bytes | None,
        old_sealed: bytes | None,
    ) -> dict[str, Any]:
        what = f"server {server_id!r}"
        size_check(dict(entry), MAX_ENTRY_BYTES, f"the entry of {what}")
        if document is not None and len(document) > MAX_DOCUMENT_BYTES:
            raise too_large(f"the document of {what}", len(document), MAX_DOCUMENT_BYTES)
        public, sealed = self._db.sealed(entry, server_secret_paths(entry), what, old_sealed)
        return {
            "entry": public,
            "sealed": sealed,
            "document": document,
            "document_sha256": None if document is None else digest(document),
            "document_size": None if document is None else len(document),
        }

    async def _stored(self, server_id: str) -> ServerRecord:
        """The server as just written; another replica's delete may have come between."""
        found = await self.get(server_id)
        if found is None:
            raise ToolNotFound(f"no server {quoted(server_id)}: it was deleted just now")
        return found


def _detail(row: Mapping[str, Any]) -> dict[str, Any]:
    """What the audit log says about a stored entry: its keys and document hash, no values."""
    detail: dict[str, Any] = {"keys": sorted(row["entry"])}
    if row["document_sha256"] is not None:
        detail["document_sha256"] = row["document_sha256"]
    return detail
