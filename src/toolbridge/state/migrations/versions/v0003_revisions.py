"""A revision number on each registered server, tool file and filter file, for `If-Match`.

Every write of an entry (its Valves too) sets it to the number of that write's change in the
store's feed, so an admin who read revision 3 can ask that a change apply only while it is
still 3, instead of undoing another admin's change unseen. Entries stored before this version
start at 1.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision: str | None = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    for table in ("servers", "tools"):
        column = sa.Column("revision", sa.BigInteger, nullable=False, server_default="1")
        op.add_column(table, column)


def downgrade() -> None:
    for table in ("servers", "tools"):
        with op.batch_alter_table(table) as batch:
            batch.drop_column("revision")
