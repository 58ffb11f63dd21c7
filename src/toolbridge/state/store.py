"""The store: everything the gateway learns at run time, behind one async interface.

`Store.open(url)` connects (SQLite or PostgreSQL), migrates the schema to the newest version
and returns a store whose parts take and give the plain values of `values.py`:

    store.servers     servers registered through the admin API       (servers.py)
    store.tools       local tool files registered through the API, and Valves   (tool_files.py)
    store.filters     filter files registered through the API, and Valves      (tool_files.py)
    store.users       each user's UserValves and upstream credentials  (users.py)
    store.documents   approved document versions (`on_change: hold`)  (documents.py)
    store.audit_log, store.changes_since, store.follow, store.record_change, store.rotate_secrets
    store.prune       deletes audit entries and changes past their time  (retention.py)

Every write runs in one transaction with its audit entry and its change-feed entry, so a
change, the record of who made it, and the notice replicas follow commit together or not at
all. Secrets (a server's credentials and header values, Valves and UserValves named secret,
per-user credentials) are encrypted at rest with the key in `TOOLBRIDGE_SECRET_KEY`; listings
show `REDACTED` instead, and only the `..._in_clear` methods return them, for the gateway to
build its catalog and its upstream requests. A write that sends `REDACTED` back for a secret
keeps the value stored.

What it trusts: entries come checked by the gateway (as a reload checks `toolbridge.yaml`);
the store checks sizes, ids and secrets only. Errors: `StoreUnavailable` when the database is
not there (saying what was attempted), `SecretKeyError` for a missing or wrong key,
`AlreadyExists` for a create of an id already stored, `BadRequest` (413) over a size limit.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Callable, Mapping
from datetime import UTC, datetime
from typing import Any, Self

import anyio
import sqlalchemy as sa

from toolbridge.errors import StoreUnavailable
from toolbridge.state.database import MAX_PAGE, Database
from toolbridge.state.documents import Documents
from toolbridge.state.engine import guard, make_engine, wal_mode
from toolbridge.state.follow import notified, polled
from toolbridge.state.migrate import upgrade
from toolbridge.state.retention import Pruned, prune
from toolbridge.state.rows import aware
from toolbridge.state.secrets import SecretBox
from toolbridge.state.servers import Servers
from toolbridge.state.tables import audit, changes, credentials, servers, tool_valves, user_valves
from toolbridge.state.tool_files import ToolFiles
from toolbridge.state.urls import shown, sqlite_file
from toolbridge.state.users import Users
from toolbridge.state.values import AuditEntry, Change, ChangeKind, Op


class Store:
    """One open state store; open it with `Store.open`, close it with `close` (or `async with`)."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self.url = db.url
        self.servers = Servers(db)
        self.tools = ToolFiles(db, "tool")
        self.filters = ToolFiles(db, "filter")
        self.users = Users(db)
        self.documents = Documents(db)

    @classmethod
    async def open(
        cls,
        url: str,
        *,
        secrets: SecretBox | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> Store:
        """Connect to `url` (`sqlite:///ABSOLUTE_PATH` or `postgresql://...`; see
        `urls.resolve_url`) and migrate it. A SQLite file is created on first open (and its
        folder, readable by its owner only, when missing). `secrets` is the key
        (`SecretBox.from_environ(os.environ)`); without one, storing or reading a secret raises
        `SecretKeyError`."""
        action = "open the state store and bring its schema up to date"
        file = sqlite_file(url)
        if file is not None and not file.parent.is_dir():
            try:  # `sqlite:///state/toolbridge.db`: its folder too is made on first start
                file.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            except OSError as exc:
                # Said here, not by SQLite: a failed aiosqlite connect leaves a thread behind.
                why = f"folder {file.parent} does not exist and cannot be made: {exc.strerror}"
                raise StoreUnavailable(action, shown(url), why) from None
        engine = make_engine(url)
        try:
            with guard(action, url):
                if file is not None:
                    await anyio.to_thread.run_sync(wal_mode, file)
                await upgrade(engine)
        except BaseException:
            await engine.dispose()
            raise
        return cls(Database(url, engine, secrets, clock))

    async def close(self) -> None:
        await self._db.engine.dispose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    def __repr__(self) -> str:
        return f"Store({shown(self.url)!r})"

    @property
    def postgres(self) -> bool:
        """True on PostgreSQL (several replicas may share it), False on SQLite."""
        return self._db.postgres

    async def changes_since(self, after: int, *, limit: int = MAX_PAGE) -> tuple[Change, ...]:
        """Changes with an id above `after`, oldest first, at most `limit` (and `MAX_PAGE`)."""
        query = (
            sa.select(changes)
            .where(changes.c.id > after)
            .order_by(changes.c.id)
            .limit(min(limit, MAX_PAGE))
        )
        async with self._db.read("read the change feed") as connection:
            rows = (await connection.execute(query)).all()
        return tuple(Change(row.id, row.kind, row.op, row.subject, aware(row.at)) for row in rows)

    async def last_change_id(self) -> int:
        """The newest change id (0 in a new store): where a follower starting now begins."""
        async with self._db.read("read the change feed") as connection:
            last = (await connection.execute(sa.select(sa.func.max(changes.c.id)))).scalar()
        return int(last or 0)

    def follow(self, after: int) -> AsyncGenerator[Change, None]:
        """Every change after `after`, as it commits, without end: notified by PostgreSQL, or
        polled on SQLite; after an outage it catches up from the last change it gave."""
        if self._db.postgres:
            return notified(self.changes_since, self.url, after)
        return polled(self.changes_since, self.url, after)

    async def record_change(
        self,
        kind: ChangeKind,
        op: Op,
        subject: Mapping[str, str],
        *,
        by: str,
        detail: Mapping[str, Any] | None = None,
    ) -> int:
        """Announce a change the store did not make itself (a reload); its change id."""
        async with self._db.write(f"record a {kind} change") as connection:
            return await self._db.changed(connection, kind, op, subject, by=by, detail=detail)

    async def audit_log(
        self, *, limit: int = 100, before: int | None = None, action: str | None = None
    ) -> tuple[AuditEntry, ...]:
        """Audit entries, newest first, at most `limit` (and `MAX_PAGE`); `before` pages back
        from an entry's id; `action` keeps those of one action (`server.create`) or of one kind
        (`server`: every `server.*`)."""
        query = sa.select(audit).order_by(audit.c.id.desc()).limit(min(limit, MAX_PAGE))
        if before is not None:
            query = query.where(audit.c.id < before)
        if action is not None:
            kind = audit.c.action.startswith(f"{action}.", autoescape=True)
            query = query.where(sa.or_(audit.c.action == action, kind))
        async with self._db.read("read the audit log") as connection:
            rows = (await connection.execute(query)).all()
        return tuple(
            AuditEntry(row.id, aware(row.at), row.actor, row.action, row.target, row.detail)
            for row in rows
        )

    async def prune(self, *, audit_days: int | None, by: str) -> Pruned:
        """Delete audit entries older than `audit_days` days (None: none) and changes older than
        `retention.KEEP_CHANGES`; what was deleted."""
        return await prune(self._db, audit_days=audit_days, by=by)

    async def rotate_secrets(self, *, by: str) -> int:
        """Re-encrypt every stored secret with the first key of `TOOLBRIDGE_SECRET_KEY`, in one
        transaction; how many sealed values there were."""
        box = self._db.box("rotate the stored secrets")
        count = 0
        async with self._db.write("re-encrypt the stored secrets") as connection:
            for table in (servers, tool_valves, user_valves, credentials):
                keys = list(table.primary_key.columns)
                query = sa.select(*keys, table.c.sealed).where(table.c.sealed.is_not(None))
                for row in (await connection.execute(query)).all():
                    values = [row._mapping[column.name] for column in keys]
                    what = f"{table.name} {'/'.join(map(str, values))}"
                    where = sa.and_(*(c == v for c, v in zip(keys, values, strict=True)))
                    sealed = box.rotate(row.sealed, what)
                    await connection.execute(table.update().where(where).values(sealed=sealed))
                    count += 1
            # A change in the feed: the other replicas read the store again, and one that was
            # not given the new key says so (not ready) now, not at the next unrelated change.
            subject = {"what": "secrets"}
            await self._db.changed(
                connection, "secrets", "rotate", subject, by=by, detail={"count": count}
            )
        return count
