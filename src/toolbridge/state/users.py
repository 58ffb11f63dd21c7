"""What each user keeps for themselves: UserValves per tool, upstream credentials per server.

A credential is sealed whole; listings give its field names only, and `credential_in_clear`
is the one method that returns its values (the gateway builds the upstream request with it).
UserValves are sealed where the caller names them secret, as tool Valves are.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import sqlalchemy as sa

from toolbridge.errors import BadRequest, ToolNotFound, quoted
from toolbridge.schemas import json_kind
from toolbridge.state.database import MAX_ENTRY_BYTES, Database, size_check
from toolbridge.state.rows import aware, credential_info, valves_of
from toolbridge.state.tables import credentials, servers, tools, user_valves
from toolbridge.state.tool_files import valves_detail
from toolbridge.state.values import CredentialInfo, Valves


class Users:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def put_valves(
        self,
        user: str,
        tool_id: str,
        values: Mapping[str, Any],
        *,
        secret: Iterable[str] = (),
        by: str | None = None,
        registered: bool = False,
    ) -> Valves:
        """Replace `user`'s UserValves for a tool; those named in `secret` are encrypted. For
        a tool or filter `registered` through the admin API, raises ToolNotFound when the store
        no longer holds it (deleted while this was asked: nothing is stored for what is gone)."""
        what = f"the user valves of {user!r} for tool {tool_id!r}"
        values, names = dict(values), set(secret) & set(values)
        size_check(values, MAX_ENTRY_BYTES, what)
        key = (user_valves.c.user_id == user) & (user_valves.c.tool_id == tool_id)
        async with self._db.write(f"store {what}") as connection:
            if registered:
                await _still_there(connection, tools, tool_id, "tool or filter")
            old = (await connection.execute(sa.select(user_valves.c.sealed).where(key))).first()
            paths = [(name,) for name in sorted(names)]
            public, sealed = self._db.sealed(values, paths, what, old.sealed if old else None)
            row = {
                "valves": public,
                "secret": sorted(names),
                "sealed": sealed,
                "updated_at": self._db.clock(),
                "updated_by": by or user,
            }
            if old is None:
                await connection.execute(
                    user_valves.insert().values(user_id=user, tool_id=tool_id, **row)
                )
            else:
                await connection.execute(user_valves.update().where(key).values(**row))
            await self._db.changed(
                connection,
                "user_valves",
                "update",
                {"user": user, "tool": tool_id},
                by=by or user,
                detail=valves_detail(values, names),
            )
        found = await self.get_valves(user, tool_id)
        if found is None:  # its tool deleted (with every caller's valves) just after
            raise ToolNotFound(f"no tool {quoted(tool_id)}: it was deleted just now")
        return found

    async def get_valves(self, user: str, tool_id: str) -> Valves | None:
        """`user`'s UserValves for a tool, secrets redacted."""
        row = await self._valves_row(user, tool_id)
        return None if row is None else valves_of(row)

    async def valves_in_clear(self, user: str, tool_id: str) -> dict[str, Any] | None:
        """`user`'s UserValves with their secrets: what a call by that user is given."""
        row = await self._valves_row(user, tool_id)
        what = f"the user valves of {user!r} for tool {tool_id!r}"
        return None if row is None else self._db.unsealed(row.valves, row.sealed, what)

    async def delete_valves(self, user: str, tool_id: str, *, by: str | None = None) -> bool:
        key = (user_valves.c.user_id == user) & (user_valves.c.tool_id == tool_id)
        async with self._db.write(f"delete the user valves of {user!r}") as connection:
            if (await connection.execute(user_valves.delete().where(key))).rowcount == 0:
                return False
            await self._db.changed(
                connection, "user_valves", "delete", {"user": user, "tool": tool_id}, by=by or user
            )
        return True

    async def put_credential(
        self,
        user: str,
        server_id: str,
        secret: Mapping[str, str],
        *,
        by: str | None = None,
        registered: bool = False,
    ) -> CredentialInfo:
        """Store `user`'s own upstream credential for a server (`{"token": ...}`, ...). For a
        server `registered` through the admin API, raises ToolNotFound when the store no
        longer holds it (deleted while this was asked: nothing is stored for what is gone)."""
        what = f"the credential of {user!r} for server {server_id!r}"
        size_check(dict(secret), MAX_ENTRY_BYTES, what)
        for name, value in secret.items():
            if not isinstance(value, str):
                raise BadRequest(f"{what}: {name!r} must be a string, found {json_kind(value)}")
        fields, now = sorted(secret), self._db.clock()
        row = {
            "fields": fields,
            "sealed": self._db.box(f"store {what}").seal(dict(secret)),
            "updated_at": now,
        }
        key = (credentials.c.user_id == user) & (credentials.c.server_id == server_id)
        async with self._db.write(f"store {what}") as connection:
            if registered:
                await _still_there(connection, servers, server_id, "server")
            updated = await connection.execute(credentials.update().where(key).values(**row))
            if updated.rowcount == 0:
                await connection.execute(
                    credentials.insert().values(user_id=user, server_id=server_id, **row)
                )
            await self._db.changed(
                connection,
                "credential",
                "update",
                {"user": user, "server": server_id},
                by=by or user,
                detail={"fields": fields},
            )
        return CredentialInfo(user, server_id, tuple(fields), aware(now))

    async def credentials(self, user: str | None = None) -> tuple[CredentialInfo, ...]:
        """Which credentials are stored (one user's, or everyone's): field names, no values."""
        query = sa.select(*(c for c in credentials.c if c.name != "sealed")).order_by(
            credentials.c.user_id, credentials.c.server_id
        )
        if user is not None:
            query = query.where(credentials.c.user_id == user)
        async with self._db.read("list credentials") as connection:
            rows = (await connection.execute(query)).all()
        return tuple(credential_info(row) for row in rows)

    async def credential_in_clear(self, user: str, server_id: str) -> dict[str, str] | None:
        """`user`'s credential for a server, decrypted, for the upstream request; None when
        they have stored none. The only method that returns a credential's values."""
        what = f"the credential of {user!r} for server {server_id!r}"
        key = (credentials.c.user_id == user) & (credentials.c.server_id == server_id)
        async with self._db.read(f"read {what}") as connection:
            row = (await connection.execute(sa.select(credentials.c.sealed).where(key))).first()
        if row is None:
            return None
        opened: dict[str, str] = self._db.opened(row.sealed, what)
        return opened

    async def delete_credential(self, user: str, server_id: str, *, by: str | None = None) -> bool:
        key = (credentials.c.user_id == user) & (credentials.c.server_id == server_id)
        async with self._db.write(f"delete the credential of {user!r}") as connection:
            if (await connection.execute(credentials.delete().where(key))).rowcount == 0:
                return False
            await self._db.changed(
                connection,
                "credential",
                "delete",
                {"user": user, "server": server_id},
                by=by or user,
            )
        return True

    async def _valves_row(self, user: str, tool_id: str) -> sa.Row[Any] | None:
        key = (user_valves.c.user_id == user) & (user_valves.c.tool_id == tool_id)
        async with self._db.read(f"read the user valves of {user!r}") as connection:
            return (await connection.execute(sa.select(user_valves).where(key))).first()


async def _still_there(connection: Any, table: sa.Table, ident: str, what: str) -> None:
    """Inside a write (writes are serialized): the registered source is still stored."""
    found = (await connection.execute(sa.select(table.c.id).where(table.c.id == ident))).first()
    if found is None:
        raise ToolNotFound(f"no {what} {quoted(ident)}: it was deleted just now")
