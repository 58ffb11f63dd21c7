"""Sources and filters registered through the admin API, as config entries the loaders can read.

The store holds a registered server's entry and, when one was uploaded, its document's bytes;
a registered tool's (or filter's) file content and entry. The loaders read files, so each
document, tool file and filter file is written to a folder of this process's own (once, and
again only when its content changes, so the module caches keep what did not change), and each
entry is checked as a `toolbridge.yaml` entry is. What it trusts: entries and contents the admin
API checked before it stored them; they are checked again here, and one that does not pass is
left out with its error (never the others).
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from toolbridge.config import Config, FilterEntry, LocalTools, Server
from toolbridge.config_file import validate_entry
from toolbridge.errors import ConfigError
from toolbridge.state.values import ServerInClear, ToolInClear

FileEntry = TypeVar("FileEntry", LocalTools, FilterEntry)

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Registered:
    """The registered sources and filters as config entries, and those that could not be
    made entries."""

    servers: tuple[Server, ...] = ()
    tools: tuple[LocalTools, ...] = ()
    problems: tuple[str, ...] = ()
    filters: tuple[FilterEntry, ...] = ()
    contents: Mapping[str, str] = field(default_factory=dict)
    """The sha256 of each entry's file (or uploaded document), by id: an edit of the content
    alone leaves the entry (and its path) as it was."""

    @property
    def ids(self) -> frozenset[str]:
        return frozenset(self.versions())

    def versions(self) -> dict[str, tuple[object, str | None]]:
        """Each registered id with its entry and its content's sha256: what a change changes."""
        entries: list[Server | LocalTools | FilterEntry] = [*self.servers, *self.tools]
        entries += self.filters
        return {e.id: (e, self.contents.get(e.id)) for e in entries}

    def merged(self, config: Config) -> Config:
        """`config` with the registered sources and filters after its own; an id the file also
        defines is the file's (it is the truth for what it names)."""
        taken = {s.id for s in config.servers} | {t.id for t in config.tools}
        taken |= {f.id for f in config.filters}
        servers = tuple(s for s in self.servers if s.id not in taken)
        tools = tuple(t for t in self.tools if t.id not in taken)
        filters = tuple(f for f in self.filters if f.id not in taken)
        if not servers and not tools and not filters:
            return config
        return config.model_copy(
            update={
                "servers": (*config.servers, *servers),
                "tools": (*config.tools, *tools),
                "filters": (*config.filters, *filters),
            }
        )


def materialize(
    servers: Iterable[ServerInClear],
    tools: Iterable[ToolInClear],
    folder: Path,
    filters: Iterable[ToolInClear] = (),
) -> Registered:
    """Write what the loaders need to `folder` and check every entry; see the module doc."""
    made_servers: list[Server] = []
    problems: list[str] = []
    contents: dict[str, str] = {}
    for server in servers:
        entry: dict[str, Any] = dict(server.entry)
        if server.document is not None:
            entry["spec"] = str(
                _write(folder / "documents", server.id, _suffix(server.document), server.document)
            )
            contents[server.id] = hashlib.sha256(server.document).hexdigest()
        try:
            made_servers.append(validate_entry(Server, entry, f"servers[{server.id}]"))
        except ConfigError as exc:
            problems.append(f"registered server {server.id!r} left out: {exc}")
    made_tools = _files(LocalTools, "tools", tools, folder, problems, contents)
    made_filters = _files(FilterEntry, "filters", filters, folder, problems, contents)
    # Ids are one space. A store written before that was checked across kinds (or by hand) may
    # hold a server and a file of one id: the server keeps it, on every replica alike.
    taken = {s.id for s in made_servers}
    for kind, made in (("tools", made_tools), ("filters", made_filters)):
        problems += [
            f"registered {kind} entry {e.id!r} left out: {e.id!r} is a registered server's id "
            "too (ids are one space: delete one of them)"
            for e in made
            if e.id in taken
        ]
    made_tools = tuple(t for t in made_tools if t.id not in taken)
    made_filters = tuple(f for f in made_filters if f.id not in taken)
    for problem in problems:
        logger.error("%s", problem)
    return Registered(tuple(made_servers), made_tools, tuple(problems), made_filters, contents)


def _files(
    model: type[FileEntry],
    key: str,
    stored: Iterable[ToolInClear],
    folder: Path,
    problems: list[str],
    contents: dict[str, str],
) -> tuple[FileEntry, ...]:
    """Stored files of one kind (`tools` or `filters`) written to `folder/key` as entries."""
    made = []
    for one in stored:
        content = one.content.encode()
        path = _write(folder / key, one.id, ".py", content)
        contents[one.id] = hashlib.sha256(content).hexdigest()
        entry = {**one.entry, "id": one.id, "path": str(path)}
        entry.pop("module", None)
        try:
            made.append(validate_entry(model, entry, f"{key}[{one.id}]"))
        except ConfigError as exc:
            problems.append(f"registered {key} entry {one.id!r} left out: {exc}")
    return tuple(made)


def _suffix(document: bytes) -> str:
    return ".json" if document.lstrip()[:1] in (b"{", b"[") else ".yaml"


def _write(folder: Path, ident: str, suffix: str, content: bytes) -> Path:
    """`folder/ident.suffix` holding `content`, written only when it differs (so its mtime,
    which the tool module cache keys on, changes only with its content)."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{ident}{suffix}"
    try:
        if path.read_bytes() == content:
            return path
    except OSError:
        pass
    handle, name = tempfile.mkstemp(prefix=f".{ident}", suffix=suffix, dir=folder)
    with os.fdopen(handle, "wb") as temporary:
        temporary.write(content)
    os.replace(name, path)  # a loader never reads it half-written
    return path
