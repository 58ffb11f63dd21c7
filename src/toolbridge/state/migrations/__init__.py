"""Alembic migrations of the store: `env.py`, and one file per schema version in `versions/`.

Run by `toolbridge.state.migrate.upgrade` each time a store opens (idempotent); never edit a
released version: add the next one (`alembic revision` with this folder as script location).
"""
