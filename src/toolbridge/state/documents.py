"""Approved versions of sources' documents, for servers with `on_change: hold`.

The gateway serves a held source from its latest approved version until an admin approves the
new one. The newest `KEEP_VERSIONS` versions of each source are kept (older ones are deleted
as new ones arrive), so an earlier version can be approved again.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from toolbridge.state.database import (
    KEEP_VERSIONS,
    MAX_DOCUMENT_BYTES,
    Database,
    digest,
    new_id,
    too_large,
)
from toolbridge.state.rows import document_version
from toolbridge.state.tables import documents
from toolbridge.state.values import ApprovedDocument, DocumentVersion


class Documents:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def approve(self, source_id: str, content: bytes, *, by: str) -> DocumentVersion:
        """Record `content` as the approved version of a source's document; when the newest
        version is already that content, nothing is written (replicas that start together each
        keep the same first version: it is kept once)."""
        what = f"the document of {source_id!r}"
        if len(content) > MAX_DOCUMENT_BYTES:
            raise too_large(what, len(content), MAX_DOCUMENT_BYTES)
        sha256 = digest(content)
        async with self._db.write(f"approve {what}") as connection:
            # Writes are serialised (the feed lock, or SQLite's writer lock): this reads what
            # the last writer left.
            newest = (
                await connection.execute(
                    sa.select(documents.c.sha256)
                    .where(documents.c.source_id == source_id)
                    .order_by(documents.c.version.desc())
                    .limit(1)
                )
            ).scalar()
            if newest != sha256:
                inserted = await connection.execute(
                    documents.insert().values(
                        source_id=source_id,
                        sha256=sha256,
                        size=len(content),
                        content=content,
                        approved_at=self._db.clock(),
                        approved_by=by,
                    )
                )
                version = new_id(inserted)
                await _prune(connection, source_id)
                await self._db.changed(
                    connection,
                    "document",
                    "approve",
                    {"source": source_id},
                    by=by,
                    detail={"sha256": sha256, "size": len(content), "version": version},
                )
        found = await self.approved(source_id)
        assert found is not None
        return found.version

    async def approved(self, source_id: str) -> ApprovedDocument | None:
        """The latest approved version of a source's document, with its bytes."""
        query = (
            sa.select(documents)
            .where(documents.c.source_id == source_id)
            .order_by(documents.c.version.desc())
            .limit(1)
        )
        async with self._db.read(f"read the approved document of {source_id!r}") as connection:
            row = (await connection.execute(query)).first()
        return None if row is None else ApprovedDocument(document_version(row), row.content)

    async def versions(self, source_id: str) -> tuple[DocumentVersion, ...]:
        """The versions kept for a source, newest first (without their bytes)."""
        query = (
            sa.select(*(c for c in documents.c if c.name != "content"))
            .where(documents.c.source_id == source_id)
            .order_by(documents.c.version.desc())
        )
        async with self._db.read(f"list the documents of {source_id!r}") as connection:
            rows = (await connection.execute(query)).all()
        return tuple(document_version(row) for row in rows)


async def _prune(connection: AsyncConnection, source_id: str) -> None:
    """Delete the versions of a source older than its newest `KEEP_VERSIONS`."""
    cutoff = (
        await connection.execute(
            sa.select(documents.c.version)
            .where(documents.c.source_id == source_id)
            .order_by(documents.c.version.desc())
            .offset(KEEP_VERSIONS - 1)
            .limit(1)
        )
    ).scalar()
    if cutoff is not None:
        await connection.execute(
            documents.delete().where(
                (documents.c.source_id == source_id) & (documents.c.version < cutoff)
            )
        )
