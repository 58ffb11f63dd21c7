"""Rows of the store's tables into the plain values of `values.py`.

SQLite gives back timestamps without their time zone; every one stored is UTC, so it is put
back here.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from toolbridge.state.values import (
    CredentialInfo,
    DocumentVersion,
    ServerRecord,
    ToolRecord,
    Valves,
)


def aware(value: datetime) -> datetime:
    """A stored timestamp as an aware UTC datetime."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def server_record(row: sa.Row[Any]) -> ServerRecord:
    return ServerRecord(
        id=row.id,
        entry=row.entry,
        document_sha256=row.document_sha256,
        document_size=row.document_size,
        created_at=aware(row.created_at),
        updated_at=aware(row.updated_at),
        updated_by=row.updated_by,
        revision=row.revision,
    )


def tool_record(row: sa.Row[Any]) -> ToolRecord:
    return ToolRecord(
        id=row.id,
        content=row.content,
        content_sha256=row.content_sha256,
        entry=row.entry,
        created_at=aware(row.created_at),
        updated_at=aware(row.updated_at),
        updated_by=row.updated_by,
        revision=row.revision,
    )


def valves_of(row: sa.Row[Any]) -> Valves:
    return Valves(
        values=row.valves,
        secret=frozenset(row.secret),
        updated_at=aware(row.updated_at),
        updated_by=row.updated_by,
    )


def credential_info(row: sa.Row[Any]) -> CredentialInfo:
    return CredentialInfo(
        user=row.user_id,
        server_id=row.server_id,
        fields=tuple(row.fields),
        updated_at=aware(row.updated_at),
    )


def document_version(row: sa.Row[Any]) -> DocumentVersion:
    return DocumentVersion(
        source_id=row.source_id,
        version=row.version,
        sha256=row.sha256,
        size=row.size,
        approved_at=aware(row.approved_at),
        approved_by=row.approved_by,
    )
