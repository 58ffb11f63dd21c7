"""The store's tables, as SQLAlchemy Core sees them (the migrations in `migrations/` make them).

A test compares these with what the migrations build, so the two cannot drift apart. Columns
named `sealed` hold one Fernet token with every secret of their row; nothing else in any
table is secret.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

metadata = sa.MetaData()

Json = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
Serial = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
"""An increasing id: BIGSERIAL on PostgreSQL, an AUTOINCREMENT rowid on SQLite (never reused)."""
When = sa.DateTime(timezone=True)
Id = sa.String(40)
"""A source id (the config's id pattern allows 40 characters)."""
User = sa.String(320)
"""A caller's user id (an API key's user, a JWT claim: an e-mail address at most)."""

servers = sa.Table(
    "servers",
    metadata,
    sa.Column("id", Id, primary_key=True),
    sa.Column("entry", Json, nullable=False),
    sa.Column("sealed", sa.LargeBinary, nullable=True),
    sa.Column("document", sa.LargeBinary, nullable=True),
    sa.Column("document_sha256", sa.String(64), nullable=True),
    sa.Column("document_size", sa.BigInteger, nullable=True),
    sa.Column("created_at", When, nullable=False),
    sa.Column("updated_at", When, nullable=False),
    sa.Column("updated_by", User, nullable=False),
    # Its newest change's number in the feed: what `If-Match` compares (migration 0003).
    sa.Column("revision", sa.BigInteger, nullable=False, server_default="1"),
)

tools = sa.Table(
    "tools",
    metadata,
    sa.Column("id", Id, primary_key=True),
    # `tool` (a local tools file) or `filter` (a file with `class Filter`): one id space.
    sa.Column("kind", sa.String(10), nullable=False, server_default="tool"),
    sa.Column("content", sa.Text, nullable=False),
    sa.Column("content_sha256", sa.String(64), nullable=False),
    sa.Column("entry", Json, nullable=False),
    sa.Column("created_at", When, nullable=False),
    sa.Column("updated_at", When, nullable=False),
    sa.Column("updated_by", User, nullable=False),
    # Its (or its Valves') newest change's number in the feed: what `If-Match` compares
    # (migration 0003).
    sa.Column("revision", sa.BigInteger, nullable=False, server_default="1"),
)

tool_valves = sa.Table(
    "tool_valves",
    metadata,
    sa.Column("tool_id", Id, primary_key=True),
    sa.Column("valves", Json, nullable=False),
    sa.Column("secret", Json, nullable=False),
    sa.Column("sealed", sa.LargeBinary, nullable=True),
    sa.Column("updated_at", When, nullable=False),
    sa.Column("updated_by", User, nullable=False),
)

user_valves = sa.Table(
    "user_valves",
    metadata,
    sa.Column("user_id", User, primary_key=True),
    sa.Column("tool_id", Id, primary_key=True),
    sa.Column("valves", Json, nullable=False),
    sa.Column("secret", Json, nullable=False),
    sa.Column("sealed", sa.LargeBinary, nullable=True),
    sa.Column("updated_at", When, nullable=False),
    sa.Column("updated_by", User, nullable=False),
)

credentials = sa.Table(
    "credentials",
    metadata,
    sa.Column("user_id", User, primary_key=True),
    sa.Column("server_id", Id, primary_key=True),
    sa.Column("fields", Json, nullable=False),
    sa.Column("sealed", sa.LargeBinary, nullable=False),
    sa.Column("updated_at", When, nullable=False),
)

documents = sa.Table(
    "documents",
    metadata,
    sa.Column("version", Serial, primary_key=True, autoincrement=True),
    sa.Column("source_id", Id, nullable=False, index=True),
    sa.Column("sha256", sa.String(64), nullable=False),
    sa.Column("size", sa.BigInteger, nullable=False),
    sa.Column("content", sa.LargeBinary, nullable=False),
    sa.Column("approved_at", When, nullable=False),
    sa.Column("approved_by", User, nullable=False),
    sqlite_autoincrement=True,
)

audit = sa.Table(
    "audit",
    metadata,
    sa.Column("id", Serial, primary_key=True, autoincrement=True),
    sa.Column("at", When, nullable=False),
    sa.Column("actor", User, nullable=False),
    sa.Column("action", sa.String(40), nullable=False),
    sa.Column("target", sa.String(400), nullable=False),
    sa.Column("detail", Json, nullable=False),
    sqlite_autoincrement=True,
)

changes = sa.Table(
    "changes",
    metadata,
    sa.Column("id", Serial, primary_key=True, autoincrement=True),
    sa.Column("kind", sa.String(20), nullable=False),
    sa.Column("op", sa.String(20), nullable=False),
    sa.Column("subject", Json, nullable=False),
    sa.Column("at", When, nullable=False),
    sqlite_autoincrement=True,
)
