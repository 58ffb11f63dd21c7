"""State that lives beyond one process: the store and what it holds.

What the gateway learns at run time, as opposed to what `toolbridge.yaml` says: servers and
local tools registered through the admin API, tool Valves, each user's UserValves and upstream
credentials, approved document versions (`on_change: hold`), the admin audit log, and the
change feed replicas follow. SQLite by default (a file beside the config), PostgreSQL for
several replicas; SQLAlchemy Core with Alembic migrations; secrets encrypted at rest.

Modules: `store` (the `Store` and its methods), `values` (the plain values in and out),
`tables` and `migrations/` (the schema and its versions), `migrate`, `engine` (connections and
their failures), `follow` (the change feed, notified or polled), `secrets` (encryption at rest),
`urls` (the `state.url` key and its default), `rows`.

May import: `errors`, `tools`, `config`. Imported by the gateway and `serve/`.
"""

from toolbridge.state.secrets import ENV_KEY, SecretBox
from toolbridge.state.store import Store
from toolbridge.state.urls import resolve_url
from toolbridge.state.values import (
    REDACTED,
    ApprovedDocument,
    AuditEntry,
    Change,
    CredentialInfo,
    DocumentVersion,
    ServerInClear,
    ServerRecord,
    ToolInClear,
    ToolRecord,
    Valves,
)

__all__ = [
    "ENV_KEY",
    "REDACTED",
    "ApprovedDocument",
    "AuditEntry",
    "Change",
    "CredentialInfo",
    "DocumentVersion",
    "SecretBox",
    "ServerInClear",
    "ServerRecord",
    "Store",
    "ToolInClear",
    "ToolRecord",
    "Valves",
    "resolve_url",
]
