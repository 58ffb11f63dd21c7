"""The import graph stays a layered one: no cycles, and heavy libraries only at their edges."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "toolbridge"

# Which modules may import each edge library (STYLE.md 4.2): everything else stays free of them.
EDGES = {
    "starlette": {"app", "mcp", "loopback", "demo.service"},
    "uvicorn": {"cli", "loopback", "demo.service"},
    "aiohttp": {"http_client"},
    "httptools": {"http11"},
    "yarl": {"http_client"},
    "httpx2": {"documents", "http_client"},
    "openapi_spec_validator": {"validation"},
    "mcp": {"mcp"},
}
PURE = {"schemas", "names", "dialects", "render", "policy", "tools", "errors", "arguments"}
"""Modules that do no I/O: they import no network, file-format or server library at all."""
IO_LIBRARIES = {"starlette", "uvicorn", "aiohttp", "httpx2", "yaml", "openapi_spec_validator"}


def modules() -> dict[str, set[str]]:
    """Each module (dotted, relative to the package) and everything it imports."""
    graph: dict[str, set[str]] = {}
    for path in PACKAGE.rglob("*.py"):
        name = ".".join(path.relative_to(PACKAGE).with_suffix("").parts)
        name = name.removesuffix(".__init__")
        package = name.rsplit(".", 1)[0] if "." in name else ""
        imported: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                imported.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                if node.level == 0:
                    imported.add(node.module or "")
                else:
                    base = package.split(".") if package else []
                    base = base[: len(base) - (node.level - 1)] if node.level > 1 else base
                    target = ".".join([*base, node.module] if node.module else base)
                    imported.add("toolbridge." + target if target else "toolbridge")
                    if node.module is None:
                        imported.update(
                            "toolbridge." + ".".join([*base, alias.name]) for alias in node.names
                        )
        graph[name] = imported
    return graph


def internal(graph: dict[str, set[str]]) -> dict[str, set[str]]:
    known = set(graph)
    return {
        name: {
            i.removeprefix("toolbridge.")
            for i in imports
            if i.removeprefix("toolbridge.") in known and i.startswith("toolbridge.")
        }
        - {name}
        for name, imports in graph.items()
    }


def test_no_import_cycles() -> None:
    edges = internal(modules())
    state: dict[str, int] = {}
    cycles: list[list[str]] = []

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == 1:
                cycles.append([*path[path.index(nxt) :], nxt] if nxt in path else [node, nxt])
            elif nxt not in state:
                visit(nxt, [*path, nxt])
        state[node] = 2

    for node in sorted(edges):
        if node not in state:
            visit(node, [node])
    assert cycles == []


def test_edge_libraries_only_at_their_edges() -> None:
    found = []
    for name, imports in modules().items():
        for library, allowed in EDGES.items():
            if (
                any(i == library or i.startswith(library + ".") for i in imports)
                and name not in allowed
            ):
                found.append(f"{name} imports {library}")
    assert found == []


def test_the_pure_core_does_no_io() -> None:
    found = [
        f"{name} imports {library}"
        for name, imports in modules().items()
        if name in PURE
        for library in IO_LIBRARIES
        if any(i == library or i.startswith(library + ".") for i in imports)
    ]
    assert found == []
