"""Sources registered through the admin API, as config entries the loaders can read.

The store holds a registered server's entry and, when one was uploaded, its document's bytes;
a registered tool's file content and entry. The loaders read files, so each document and tool
file is written to a folder of this process's own (once, and again only when its content
changes, so the module cache keeps what did not change), and each entry is checked as a
`toolbridge.yaml` entry is. What it trusts: entries and contents the admin API checked before
it stored them; they are checked again here, and one that does not pass is left out with its
error (never the others).
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from toolbridge.config import Config, LocalTools, Server
from toolbridge.config_file import validate_entry
from toolbridge.errors import ConfigError
from toolbridge.state.values import ServerInClear, ToolInClear

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Registered:
    """The registered sources as config entries, and those that could not be made entries."""

    servers: tuple[Server, ...] = ()
    tools: tuple[LocalTools, ...] = ()
    problems: tuple[str, ...] = ()

    @property
    def ids(self) -> frozenset[str]:
        return frozenset(s.id for s in self.servers) | frozenset(t.id for t in self.tools)

    def merged(self, config: Config) -> Config:
        """`config` with the registered sources after its own; an id the file also defines is
        the file's (it is the truth for what it names)."""
        taken = {s.id for s in config.servers} | {t.id for t in config.tools}
        taken |= {f.id for f in config.filters}
        servers = tuple(s for s in self.servers if s.id not in taken)
        tools = tuple(t for t in self.tools if t.id not in taken)
        if not servers and not tools:
            return config
        return config.model_copy(
            update={"servers": (*config.servers, *servers), "tools": (*config.tools, *tools)}
        )


def materialize(
    servers: Iterable[ServerInClear], tools: Iterable[ToolInClear], folder: Path
) -> Registered:
    """Write what the loaders need to `folder` and check every entry; see the module doc."""
    made_servers: list[Server] = []
    made_tools: list[LocalTools] = []
    problems: list[str] = []
    for server in servers:
        entry: dict[str, Any] = dict(server.entry)
        if server.document is not None:
            entry["spec"] = str(
                _write(folder / "documents", server.id, _suffix(server.document), server.document)
            )
        try:
            made_servers.append(validate_entry(Server, entry, f"servers[{server.id}]"))
        except ConfigError as exc:
            problems.append(f"registered server {server.id!r} left out: {exc}")
    for tool in tools:
        path = _write(folder / "tools", tool.id, ".py", tool.content.encode())
        entry = {**tool.entry, "id": tool.id, "path": str(path)}
        entry.pop("module", None)
        try:
            made_tools.append(validate_entry(LocalTools, entry, f"tools[{tool.id}]"))
        except ConfigError as exc:
            problems.append(f"registered tool {tool.id!r} left out: {exc}")
    for problem in problems:
        logger.error("%s", problem)
    return Registered(tuple(made_servers), tuple(made_tools), tuple(problems))


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
