"""The plain values the store takes and gives: frozen dataclasses, no database types.

Entries are mappings "as the YAML would have it" (the keys of `servers[]`, `tools[]` and
`filters[]` in `toolbridge.yaml`); the store does not check them against the config model: the
gateway does, exactly as it checks a reload, before it stores anything. Values a listing returns
have their secrets replaced by `REDACTED`; only the `..._in_clear` methods of `Store` return them
whole.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

REDACTED = "********"
"""What a listing shows in place of a secret value."""

ChangeKind = Literal[
    "server",
    "tool",
    "tool_valves",
    "filter",
    "filter_valves",
    "user_valves",
    "credential",
    "document",
    "reload",
    "secrets",
    "feed",
]
"""What a change in the feed is about; `reload` is announced by the gateway itself, `secrets`
(rotated: every replica reads the store again, and one whose keys open none says so), `feed`
(pruned: see `retention`)."""

Op = Literal["create", "update", "delete", "approve", "reload", "rotate", "prune"]

FileKind = Literal["tool", "filter"]
"""What a stored file is: a local tools file, or a filter (a file with `class Filter`)."""


@dataclass(frozen=True, slots=True)
class ServerRecord:
    """A server registered through the API: its entry, and its uploaded document if any."""

    id: str
    entry: Mapping[str, Any]
    """The server entry (`id`, `spec`, `base_url`, `auth`, ...); secrets redacted in listings."""
    document_sha256: str | None
    """The SHA-256 (hex) of the uploaded document, or None when `spec` names a file or URL."""
    document_size: int | None
    created_at: datetime
    updated_at: datetime
    updated_by: str
    revision: int = 1
    """One more at every write of it: what `If-Match` compares."""


@dataclass(frozen=True, slots=True)
class ServerInClear:
    """What the gateway builds a catalog from: the entry with its secrets, and the document."""

    id: str
    entry: Mapping[str, Any]
    document: bytes | None


@dataclass(frozen=True, slots=True)
class ToolRecord:
    """A local tool file (or a filter file) registered through the API, stored as Open WebUI
    stores tools."""

    id: str
    content: str
    """The file's text, frontmatter included."""
    content_sha256: str
    entry: Mapping[str, Any]
    """The entry keys besides the file (`prefix`, `timeout`, `access`, ...; not `valves`)."""
    created_at: datetime
    updated_at: datetime
    updated_by: str
    revision: int = 1
    """One more at every write of it, its Valves' too: what `If-Match` compares."""


@dataclass(frozen=True, slots=True)
class ToolInClear:
    """What the gateway loads a stored tool (or filter) from: its content, and its entry with
    `valves` (secrets included) when it has stored Valves."""

    id: str
    content: str
    entry: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class Valves:
    """Stored Valves (of a tool) or UserValves (of a user for a tool)."""

    values: Mapping[str, Any]
    """The values; those named in `secret` are `REDACTED` unless read `..._in_clear`."""
    secret: frozenset[str]
    """Names of the values that are encrypted at rest."""
    updated_at: datetime
    updated_by: str


@dataclass(frozen=True, slots=True)
class CredentialInfo:
    """That a user holds a credential for a server, and its field names: never its values."""

    user: str
    server_id: str
    fields: tuple[str, ...]
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class DocumentVersion:
    """One approved version of a source's document (`on_change: hold`)."""

    source_id: str
    version: int
    sha256: str
    size: int
    approved_at: datetime
    approved_by: str


@dataclass(frozen=True, slots=True)
class ApprovedDocument:
    """The latest approved version of a source's document, with its bytes."""

    version: DocumentVersion
    content: bytes


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One admin action: who did what to which thing, and when. Never a secret value."""

    id: int
    at: datetime
    actor: str
    action: str
    """`server.create`, `tool.delete`, `credential.update`, `document.approve`, ..."""
    target: str
    detail: Mapping[str, Any] = field(default_factory=dict)
    """Public facts about the change: keys changed, a document's sha256; never a value that
    was encrypted."""


@dataclass(frozen=True, slots=True)
class Change:
    """One entry of the change feed that replicas follow: ids only, never content."""

    id: int
    """Increases with every change, in commit order."""
    kind: ChangeKind
    op: Op
    subject: Mapping[str, str]
    """What changed: `{"server": id}`, `{"tool": id}`, `{"user": u, "tool": id}`, ..."""
    at: datetime
