"""The first schema: API-registered servers and tools, valves, UserValves, per-user credentials,
approved document versions, the audit log and the change feed.

Revision ID: 0001
Revises:
Create Date: 2026-01-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0001"
down_revision: str | None = None
branch_labels = None
depends_on = None

# The types as they were at this version (tables.py may move on; this file may not).
Json = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
Serial = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
When = sa.DateTime(timezone=True)
Id = sa.String(40)
User = sa.String(320)


def upgrade() -> None:
    op.create_table(
        "servers",
        sa.Column("id", Id, primary_key=True),
        sa.Column("entry", Json, nullable=False),
        sa.Column("sealed", sa.LargeBinary, nullable=True),
        sa.Column("document", sa.LargeBinary, nullable=True),
        sa.Column("document_sha256", sa.String(64), nullable=True),
        sa.Column("document_size", sa.BigInteger, nullable=True),
        sa.Column("created_at", When, nullable=False),
        sa.Column("updated_at", When, nullable=False),
        sa.Column("updated_by", User, nullable=False),
    )
    op.create_table(
        "tools",
        sa.Column("id", Id, primary_key=True),
        sa.Column("content", sa.Text, nullable=False),
        sa.Column("content_sha256", sa.String(64), nullable=False),
        sa.Column("entry", Json, nullable=False),
        sa.Column("created_at", When, nullable=False),
        sa.Column("updated_at", When, nullable=False),
        sa.Column("updated_by", User, nullable=False),
    )
    op.create_table(
        "tool_valves",
        sa.Column("tool_id", Id, primary_key=True),
        sa.Column("valves", Json, nullable=False),
        sa.Column("secret", Json, nullable=False),
        sa.Column("sealed", sa.LargeBinary, nullable=True),
        sa.Column("updated_at", When, nullable=False),
        sa.Column("updated_by", User, nullable=False),
    )
    op.create_table(
        "user_valves",
        sa.Column("user_id", User, primary_key=True),
        sa.Column("tool_id", Id, primary_key=True),
        sa.Column("valves", Json, nullable=False),
        sa.Column("secret", Json, nullable=False),
        sa.Column("sealed", sa.LargeBinary, nullable=True),
        sa.Column("updated_at", When, nullable=False),
        sa.Column("updated_by", User, nullable=False),
    )
    op.create_table(
        "credentials",
        sa.Column("user_id", User, primary_key=True),
        sa.Column("server_id", Id, primary_key=True),
        sa.Column("fields", Json, nullable=False),
        sa.Column("sealed", sa.LargeBinary, nullable=False),
        sa.Column("updated_at", When, nullable=False),
    )
    op.create_table(
        "documents",
        sa.Column("version", Serial, primary_key=True, autoincrement=True),
        sa.Column("source_id", Id, nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("content", sa.LargeBinary, nullable=False),
        sa.Column("approved_at", When, nullable=False),
        sa.Column("approved_by", User, nullable=False),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_documents_source_id", "documents", ["source_id"])
    op.create_table(
        "audit",
        sa.Column("id", Serial, primary_key=True, autoincrement=True),
        sa.Column("at", When, nullable=False),
        sa.Column("actor", User, nullable=False),
        sa.Column("action", sa.String(40), nullable=False),
        sa.Column("target", sa.String(400), nullable=False),
        sa.Column("detail", Json, nullable=False),
        sqlite_autoincrement=True,
    )
    op.create_table(
        "changes",
        sa.Column("id", Serial, primary_key=True, autoincrement=True),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("op", sa.String(20), nullable=False),
        sa.Column("subject", Json, nullable=False),
        sa.Column("at", When, nullable=False),
        sqlite_autoincrement=True,
    )


def downgrade() -> None:
    for table in (
        "changes",
        "audit",
        "documents",
        "credentials",
        "user_valves",
        "tool_valves",
        "tools",
        "servers",
    ):
        op.drop_table(table)
