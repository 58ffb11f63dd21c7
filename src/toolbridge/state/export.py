"""`toolbridge export`: the sources registered through the admin API, as `toolbridge.yaml`
entries and the files they name, so they can move into the config file.

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
from toolbridge.state.values import REDACTED

FILE = "toolbridge.registered.yaml"


@dataclass(frozen=True, slots=True)
class Exported:
    file: Path
    servers: int
    tools: int
    variables: tuple[str, ...]
    """Environment variables the exported entries read their secrets from."""


async def export(store: Store, folder: Path) -> Exported:
    """Write the registered sources under `folder` (its `FILE`, `specs/`, `tools/`)."""
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
    tools = []
    for tool in await store.tools.list():
        path = folder / "tools" / f"{tool.id}.py"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(tool.content, encoding="utf-8")
        entry = {"id": tool.id, "path": f"tools/{tool.id}.py", **dict(tool.entry)}
        valves = await store.tools.get_valves(tool.id)
        if valves is not None:
            entry["valves"] = dict(valves.values)
        tools.append(_placeholders(entry, tool.id.upper(), variables))
    written = folder / FILE
    folder.mkdir(parents=True, exist_ok=True)
    header = (
        "# Sources registered through the admin API, as toolbridge.yaml entries.\n"
        "# Secrets are not exported: set the environment variables they name.\n"
    )
    body = yaml.safe_dump({"servers": servers, "tools": tools}, sort_keys=False)
    written.write_text(header + body, encoding="utf-8")
    return Exported(written, len(servers), len(tools), tuple(variables))


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
