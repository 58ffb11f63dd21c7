"""Alembic's environment: run the migrations on the connection `migrate.upgrade` hands in.

That connection is already inside a transaction (holding the migration lock), so Alembic runs
every step in it and the caller commits.
"""

from __future__ import annotations

from alembic import context

context.configure(connection=context.config.attributes["connection"])
with context.begin_transaction():
    context.run_migrations()
