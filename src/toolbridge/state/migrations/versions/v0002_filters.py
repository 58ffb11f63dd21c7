"""Filters registered through the admin API: a `kind` on each stored file, `tool` or `filter`.

A filter is stored as a tool file is (its text, its entry, its Valves in `tool_valves`); ids stay
unique across both, as they are across a config's `tools` and `filters`. Files stored before
this version are tools.

Revision ID: 0002
Revises: 0001
Create Date: 2026-02-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision: str | None = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("tools", sa.Column("kind", sa.String(10), nullable=False, server_default="tool"))


def downgrade() -> None:
    op.execute(
        "DELETE FROM tool_valves WHERE tool_id IN (SELECT id FROM tools WHERE kind <> 'tool')"
    )
    op.execute("DELETE FROM tools WHERE kind <> 'tool'")
    with op.batch_alter_table("tools") as batch:
        batch.drop_column("kind")
