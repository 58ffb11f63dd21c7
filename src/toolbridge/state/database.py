"""One open database, and what every part of the store writes through.

A write is one transaction holding the change, its audit entry and its change-feed entry (on
PostgreSQL also a `NOTIFY`, delivered when it commits), so the three are never apart. Secrets
are split off the values they sit in, sealed with the key, and put back only on request.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from toolbridge.errors import BadRequest
from toolbridge.state.engine import guard, writing
from toolbridge.state.secrets import SecretBox, no_key, split
from toolbridge.state.secrets import join as join_secrets
from toolbridge.state.tables import audit, changes
from toolbridge.state.values import REDACTED, ChangeKind, Op

MAX_DOCUMENT_BYTES = 64 * 1024 * 1024
"""An uploaded or approved document (the same limit as reading one from a file or URL)."""
MAX_TOOL_BYTES = 1024 * 1024
"""A local tool file's content, in UTF-8."""
MAX_ENTRY_BYTES = 64 * 1024
"""An entry, a set of Valves or UserValves, or a credential, as JSON."""
KEEP_VERSIONS = 10
"""Approved document versions kept per source; older ones are deleted as new ones arrive."""
MAX_PAGE = 1000
"""Most audit entries or changes one call returns."""

CHANNEL = "toolbridge_changes"
"""The PostgreSQL notification channel of the change feed; the payload is the new change id."""


class Database:
    """An engine, the secret key (if any) and the clock, shared by the parts of a `Store`."""

    def __init__(
        self,
        url: str,
        engine: AsyncEngine,
        secrets: SecretBox | None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.url = url
        self.engine = engine
        self.secrets = secrets
        self.clock = clock
        self.postgres = engine.dialect.name == "postgresql"

    @asynccontextmanager
    async def write(self, action: str) -> AsyncIterator[AsyncConnection]:
        """A write transaction; `action` ("register server 'x'") names it in errors."""
        with guard(action, self.url):
            async with writing(self.engine) as connection:
                yield connection

    @asynccontextmanager
    async def read(self, action: str) -> AsyncIterator[AsyncConnection]:
        with guard(action, self.url):
            async with self.engine.connect() as connection:
                yield connection

    async def changed(
        self,
        connection: AsyncConnection,
        kind: ChangeKind,
        op: Op,
        subject: Mapping[str, str],
        *,
        by: str,
        detail: Mapping[str, Any] | None = None,
    ) -> int:
        """Write a change's audit entry and feed entry (and notify); the change's id."""
        await self.audit(connection, f"{kind}.{op}", "/".join(subject.values()), by, detail)
        inserted = await connection.execute(
            changes.insert().values(kind=kind, op=op, subject=dict(subject), at=self.clock())
        )
        change_id = new_id(inserted)
        if self.postgres:
            await connection.execute(sa.select(sa.func.pg_notify(CHANNEL, str(change_id))))
        return change_id

    async def audit(
        self,
        connection: AsyncConnection,
        action: str,
        target: str,
        actor: str,
        detail: Mapping[str, Any] | None,
    ) -> None:
        await connection.execute(
            audit.insert().values(
                at=self.clock(),
                actor=actor,
                action=action,
                target=target,
                detail=dict(detail or {}),
            )
        )

    def box(self, action: str) -> SecretBox:
        """The key, or the error saying that `action` needs one."""
        if self.secrets is None:
            raise no_key(action)
        return self.secrets

    def sealed(
        self,
        data: Mapping[str, Any],
        paths: Iterable[tuple[str, ...]],
        what: str,
        old_sealed: bytes | None,
    ) -> tuple[dict[str, Any], bytes | None]:
        """`data` with the values at `paths` redacted, and those values sealed in one token.

        A secret sent as `REDACTED` (a listing sent back) keeps the value stored before."""
        public, secrets = split(data, paths)
        if any(value == REDACTED for _, value in secrets):
            kept = {tuple(p): v for p, v in (self.opened(old_sealed, what) if old_sealed else [])}
            for pair in secrets:
                if pair[1] == REDACTED:
                    if tuple(pair[0]) not in kept:
                        raise BadRequest(
                            f"{what}: {'.'.join(pair[0])} is {REDACTED!r}, the placeholder "
                            "listings show for a secret, but no secret is stored there to keep"
                        )
                    pair[1] = kept[tuple(pair[0])]
        if not secrets:
            return public, None
        return public, self.box(f"store {what}").seal(secrets)

    def opened(self, sealed: bytes, what: str) -> Any:
        return self.box(f"read {what}").open(sealed, what)

    def unsealed(
        self, public: Mapping[str, Any], sealed: bytes | None, what: str
    ) -> dict[str, Any]:
        """`public` with its sealed secrets put back."""
        return join_secrets(public, self.opened(sealed, what) if sealed else [])


def new_id(inserted: sa.CursorResult[Any]) -> int:
    """The id the database gave the row an insert made."""
    key = inserted.inserted_primary_key
    assert key is not None
    return int(key[0])


def digest(content: bytes) -> str:
    return hashlib.sha256(content).hexdigest()


def too_large(what: str, size: int, limit: int) -> BadRequest:
    return BadRequest(f"{what} is {size:,} bytes; the store holds at most {limit:,}", status=413)


def size_check(value: object, limit: int, what: str) -> None:
    """Refuse (413) a value whose JSON is longer than `limit` bytes."""
    size = len(json.dumps(value).encode("utf-8"))
    if size > limit:
        raise BadRequest(
            f"{what} is {size:,} bytes as JSON; the store holds at most {limit:,}", status=413
        )


def id_of(entry: Mapping[str, Any], kind: str) -> str:
    ident = entry.get("id")
    if not isinstance(ident, str) or not ident:
        raise BadRequest(f"a {kind} entry needs an `id` (a string)")
    return ident
