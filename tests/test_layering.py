"""The import graph stays a layered one: no cycles, and heavy libraries only at their edges."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "toolbridge"

# The rooms of the package, lowest first: a module may import only from its own room and the
# rooms before it. Top-level modules are rooms of their own, named by module.
LAYERS: list[set[str]] = [
    # plain values, the YAML loader, host names, which names hold secrets; bulk, forked and
    # blocking work; what tells a file changed
    {
        "errors",
        "tools",
        "yaml_loader",
        "hosts",
        "bulk",
        "forked",
        "blocking",
        "secret_names",
        "file_stamps",
    },
    # JSON text of any depth; what a `result.select` may be; what HTTP can carry
    {"json_text", "selects", "http_values"},
    # where a value is in a YAML file; what it may not be; the kinds of value config keys take
    {"yaml_paths", "yaml_limits", "config_values"},
    {"schemas", "names", "config"},  # pure helpers over those values; what a valid config is
    {"config_file"},  # toolbridge.yaml read into a Config (and admin API entries checked)
    {"state"},  # the store: what the gateway learns at run time (SQLite or PostgreSQL)
    {"formats"},  # client formats: pure rendering of tools
    {"upstream"},  # the network seam, our clients, credentials, request building
    {"openapi", "local"},  # conversion of documents; local Python tools
    # per-call pieces; result budgets; answers made sendable; the search index
    {
        "arguments",
        "policy",
        "limits",
        "metrics",
        "calllog",
        "changes",
        "events",
        "filters",
        "budgets",
        "outputs",
        "redaction",
        "sendable",
    },
    {"fixed_arguments"},  # document parameters whose values the config gives
    {"search_query"},  # a task in words, read for tool search
    {"search_document"},  # a tool, read for tool search
    {"search"},  # the search index over a catalog
    {"shared_limits"},  # rate limits counted once for all processes (Redis), local as fallback
    {"identity", "listings"},  # credentials -> principals; list answers kept per generation
    {"cold_start"},  # a cold start's large documents converted in a child
    {"registry"},  # all sources -> one Catalog
    {"toolsets"},  # named parts of a catalog
    {"users"},  # each caller's stored data, cached
    {"generation"},  # one config's catalog and all derived from it
    {"dispatch", "discovery"},  # where a checked call goes; what a request sees
    {"report", "gateway"},  # the check report; the service
    {"demo"},  # the bundled demo service
    {"serve"},  # the edges: HTTP, MCP, one-turn calls, the gateway's own document
    {"cli_state"},  # the commands over the state store (export, rotate-secrets)
    {"cli"},  # the command line; nothing imports it
    {"__main__"},  # `python -m toolbridge`
]
"""The allowed order between rooms; a room absent from this table fails the test."""

# Which modules may import each edge library (STYLE.md 4.2): everything else stays free of them.
EDGES = {
    "starlette": {
        "serve.app",
        "serve.bodies",
        "serve.admin",
        "serve.mcp",
        "serve.loopback",
        "demo.service",
    },
    "uvicorn": {
        "cli",
        "serve.loopback",
        "serve.workers",
        "serve.process",
        "serve.connection",
        "serve.draining",
        "demo.service",
    },
    "aiohttp": {"upstream.clients", "upstream.guarded_resolver"},
    "httptools": {"upstream.http11", "upstream.http11_connection"},
    "yarl": {"upstream.clients"},
    "httpx2": {"openapi.documents", "upstream.clients", "cli"},
    "openapi_spec_validator": {"openapi.validation"},
    "mcp": {"serve.mcp", "serve.mcp_interaction"},
    "sqlalchemy": {
        "state.database",
        "state.engine",
        "state.follow",
        "state.migrate",
        "state.rows",
        "state.scopes",
        "state.servers",
        "state.store",
        "state.tables",
        "state.tool_files",
        "state.users",
        "state.documents",
        "state.urls",
        "state.revisions",
        "state.retention",
        "state.migrations.versions.v0001_initial",
        "state.migrations.versions.v0002_filters",
        "state.migrations.versions.v0003_revisions",
    },
    "alembic": {
        "state.migrate",
        "state.migrations.env",
        "state.migrations.versions.v0001_initial",
        "state.migrations.versions.v0002_filters",
        "state.migrations.versions.v0003_revisions",
    },
    "asyncpg": {"state.follow"},
    "aiosqlite": set(),  # only through SQLAlchemy's `sqlite+aiosqlite` driver
    "cryptography": {"state.secrets"},
    "redis": {"shared_limits"},
    "bm25s": {"search"},
    "numpy": {"search"},
    "Stemmer": {"search"},
    "jmespath": {"selects", "budgets"},
}
PURE = {
    "hosts",
    "upstream.destinations",
    "schemas",
    "names",
    "formats.keywords",
    "formats.combinators",
    "formats.openai_dialect",
    "formats.anthropic_dialect",
    "formats.gemini_dialect",
    "formats.render",
    "policy",
    "tools",
    "errors",
    "arguments",
    "budgets",
    "fixed_arguments",
    "toolsets",
    "formats.tokens",
    "outputs",
}
"""Modules that do no I/O: they import no network, file-format or server library at all."""
MAX_MODULE_LINES = 520
"""About 500 lines, the split point; a few lines of slack so a docstring does not break CI."""
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


def room(module: str) -> str:
    return module.split(".", 1)[0] if module else ""


def rank(module: str) -> int:
    for i, rooms in enumerate(LAYERS):
        if room(module) in rooms:
            return i
    raise AssertionError(f"{module!r} is in no room of LAYERS; add its room to the table")


def test_rooms_import_only_their_own_and_lower_rooms() -> None:
    """Conversion never imports serving, nothing imports the CLI, and so on down the table."""
    found = [
        f"{name} imports {target}"
        for name, imports in internal(modules()).items()
        if name
        for target in imports
        if target and room(target) != room(name) and rank(target) >= rank(name)
    ]
    assert found == []


def test_every_room_says_what_it_holds_and_may_import() -> None:
    missing = [
        path.parent.name
        for path in PACKAGE.glob("*/__init__.py")
        if "import" not in (ast.get_docstring(ast.parse(path.read_text())) or "")
        and path.parent.name != "demo"
    ]
    assert missing == []


def test_no_module_is_past_the_split_point() -> None:
    """STYLE: around 500 lines, look for the seam; nothing here is allowed to grow past it."""
    long = {
        str(path.relative_to(PACKAGE)): n
        for path in PACKAGE.rglob("*.py")
        if (n := len(path.read_text().splitlines())) > MAX_MODULE_LINES
    }
    assert long == {}
