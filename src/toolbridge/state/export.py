"""`toolbridge export`: the sources and filters registered through the admin API, as
`toolbridge.yaml` entries and the files they name, so they can move into the config file.

Secrets are never exported: each is written as a `${VARIABLE}` the file reads from the
environment, and the variables are listed for the operator to set. Nothing is read in clear.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from toolbridge.state.store import Store
from toolbridge.state.tool_files import ToolFiles
from toolbridge.state.values import REDACTED

FILE = "toolbridge.registered.yaml"


@dataclass(frozen=True, slots=True)
class Exported:
    file: Path
    servers: int
    tools: int
    variables: tuple[str, ...]
    """Environment variables the exported entries read their secrets from."""
    filters: int = 0


async def export(store: Store, folder: Path) -> Exported:
    """Write the registered sources and filters under `folder` (its `FILE`, `specs/`, `tools/`,
    `filters/`)."""
    variables: list[str] = []
    servers = []
    for record in await store.servers.list():
        entry = _placeholders(dict(record.entry), record.id.upper(), variables)
        if record.document_sha256:
            document = await store.servers.document(record.id)
            suffix = ".json" if document.lstrip()[:1] in (b"{", b"[") else ".yaml"
            path = folder / "specs" / f"{record.id}{suffix}"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(document)
            entry["spec"] = f"specs/{path.name}"
        servers.append(entry)
    tools = await _files(store.tools, folder / "tools", variables)
    filters = await _files(store.filters, folder / "filters", variables)
    written = folder / FILE
    folder.mkdir(parents=True, exist_ok=True)
    header = (
        "# Sources registered through the admin API, as toolbridge.yaml entries.\n"
        "# Secrets are not exported: set the environment variables they name.\n"
    )
    entries: dict[str, Any] = {"servers": servers, "tools": tools}
    if filters:
        entries["filters"] = filters
    written.write_text(header + yaml.safe_dump(entries, sort_keys=False), encoding="utf-8")
    return Exported(written, len(servers), len(tools), tuple(variables), len(filters))


async def _files(part: ToolFiles, folder: Path, variables: list[str]) -> list[dict[str, Any]]:
    """The stored files of one kind written to `folder`, and their entries naming them."""
    entries = []
    for record in await part.list():
        path = folder / f"{record.id}.py"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(record.content, encoding="utf-8")
        entry = {"id": record.id, "path": f"{folder.name}/{path.name}", **dict(record.entry)}
        valves = await part.get_valves(record.id)
        if valves is not None:
            entry["valves"] = dict(valves.values)
        entries.append(_placeholders(entry, record.id.upper(), variables))
    return entries


def _placeholders(value: Any, prefix: str, variables: list[str]) -> Any:
    """Each redacted secret as `${PREFIX_KEY_PATH}`, named after where it sits."""
    if isinstance(value, dict):
        return {
            k: _placeholders(v, f"{prefix}_{_name(str(k))}", variables) for k, v in value.items()
        }
    if isinstance(value, list):
        return [_placeholders(v, f"{prefix}_{i}", variables) for i, v in enumerate(value)]
    if value == REDACTED:
        name = "TOOLBRIDGE_" + prefix.removeprefix("_")
        variables.append(name)
        return "${" + name + "}"
    return value


def _name(key: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "_", key).strip("_").upper()
