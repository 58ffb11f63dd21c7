"""The conversion report `toolbridge check` prints: per source, what it became and what changed.

`check_report` builds plain JSON-able values (also the `--json` output); `print_check` formats
them for a person.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from typing import Any, TextIO

from toolbridge.config import Config
from toolbridge.discovery import META_TOOLS
from toolbridge.errors import DocumentError
from toolbridge.filters.loader import FilterStatus
from toolbridge.formats.render import FORMATS, Format
from toolbridge.formats.tokens import BYTES_PER_TOKEN, WARN_TOKENS, estimate
from toolbridge.local.loader import LocalConversion
from toolbridge.openapi.documents import DocumentStore, uri_to_display
from toolbridge.openapi.validation import validate_document
from toolbridge.registry import Catalog, SourceStatus
from toolbridge.tools import Note
from toolbridge.toolsets import build_toolsets, findings

SHOWN_PER_SOURCE = 20


def _note(note: Note) -> dict[str, str]:
    return {"kind": note.kind, "message": note.message, "where": note.where}


def source_report(
    status: SourceStatus, store: DocumentStore, *, validate: bool, progress: TextIO | None
) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "id": status.id,
        "kind": status.kind,
        "location": status.location,
        "ok": status.ok,
        "error": status.error,
    }
    conversion = status.conversion
    if conversion is None:
        return entry
    changes = [
        {"tool": tool.name, **_note(note)} for tool in conversion.tools for note in tool.notes
    ]
    common = {
        "tools": len(conversion.tools),
        "notes": [_note(n) for n in conversion.notes],
        "changes": changes,
        "changes_by_kind": dict(Counter(c["kind"] for c in changes).most_common()),
    }
    if isinstance(conversion, LocalConversion):
        entry.update(
            title=", ".join(m.frontmatter.get("title", m.name) for m in conversion.modules),
            spec_version="python",
            operations=len(conversion.tools),
            filtered=0,
            modules=[
                {"name": m.name, "location": m.location, "frontmatter": dict(m.frontmatter)}
                for m in conversion.modules
            ],
            **common,
        )
        entry["validation"] = {"ran": False, "valid": None, "findings": []}
        return entry
    entry.update(
        title=conversion.title,
        spec_version=conversion.spec_version,
        operations=conversion.operations,
        filtered=conversion.filtered,
        **common,
    )
    if validate:
        if progress is not None:
            print(f"validating {status.id} ...", file=progress, flush=True)
        started = time.perf_counter()
        document = store.get(conversion.uri).data
        findings = validate_document(
            document, conversion.uri, conversion.spec_version, _already_read(store)
        )
        entry["validation"] = {
            "ran": True,
            "valid": not findings,
            "findings": findings,
            "seconds": round(time.perf_counter() - started, 2),
        }
    else:
        entry["validation"] = {"ran": False, "valid": None, "findings": []}
    return entry


def _already_read(store: DocumentStore) -> Callable[[str], Any]:
    """The validator's way to the documents `$ref`s name: those the conversion read, no other
    (it would fetch any URL or file itself, with no deadline)."""

    def read(uri: str) -> Any:
        if store.sha256(uri) is None:
            raise DocumentError(uri_to_display(uri), "not read by the conversion, so not followed")
        return store.get(uri).data

    return read


def check_report(
    catalog: Catalog,
    store: DocumentStore,
    *,
    validate: bool,
    progress: TextIO | None = None,
    admins_only: frozenset[str] = frozenset(),
    config: Config | None = None,
    filters: tuple[FilterStatus, ...] = (),
) -> dict[str, Any]:
    """The report of `toolbridge check`; `admins_only` names the sources without `access`
    in a config that has callers (`auth`), which only admins can see. With the `config`, the
    report also has its toolsets (and what in them selects nothing), and the `filters` as
    loaded: one that cannot load makes the config not usable (its calls would go unfiltered,
    or be refused when it is `required`)."""
    sources = [
        source_report(s, store, validate=validate, progress=progress) for s in catalog.sources
    ]
    for source in sources:
        if source.get("tools"):
            source["tokens"] = estimate(t for t in catalog if t.source == source["id"])
    for source in sources:
        if source["id"] in admins_only:
            source.setdefault("notes", []).append(
                {
                    "kind": "admins-only",
                    "message": "no `access`: only admins see and call these tools",
                    "where": "",
                }
            )
    by_kind: Counter[str] = Counter()
    for source in sources:
        by_kind.update(source.get("changes_by_kind", {}))
    by_kind.update(n.kind for n in catalog.notes)
    down = [s["id"] for s in sources if not s["ok"]]
    no_calls = _with_note(sources, "no-base-url")
    refused = _with_note(sources, "destination-refused")
    by_kind.update(
        n["kind"] for s in sources for n in s.get("notes", ()) if n["kind"] == "destination-refused"
    )
    tokens = estimate(catalog)
    toolsets = build_toolsets(config, catalog) if config is not None else {}
    toolset_tokens = {
        t.id: estimate(META_TOOLS if t.discovery == "search" else t.tools.values())
        for t in toolsets.values()
    }
    filters_down = [f.entry.id for f in filters if f.error is not None]
    return {
        "sources": sources,
        "filters": [
            {
                "id": f.entry.id,
                "location": f.location,
                "ok": f.error is None,
                "error": f.error,
                "required": f.entry.required,
                "switched_off": f.filter is not None and f.filter.off,
                "warnings": list(f.filter.warnings) if f.filter is not None else [],
            }
            for f in filters
        ],
        "catalog_notes": [_note(n) for n in catalog.notes],
        "toolsets": [
            {
                "id": t.id,
                "discovery": t.discovery,
                "tools": len(t.tools),
                "tokens": toolset_tokens[t.id],
            }
            for t in toolsets.values()
        ],
        "findings": [
            {"where": f.path, "key": list(f.where), "message": f.message}
            for f in (findings(config, catalog) if config is not None else [])
        ],
        "tokens": tokens,
        "search_tokens": estimate(META_TOOLS),
        "warnings": _token_warnings(tokens)
        + [
            warning
            for t in toolsets.values()
            if t.discovery == "list"  # (search mode's three tools are as few as it gets)
            for warning in _toolset_warnings(t.id, toolset_tokens[t.id])
        ],
        "summary": {
            "sources": len(sources),
            "down": down,
            "operations": sum(s.get("operations", 0) for s in sources),
            "tools": len(catalog),
            "changes": sum(by_kind.values()),
            "changes_by_kind": dict(by_kind.most_common()),
            "validation_findings": sum(
                len(s.get("validation", {}).get("findings", ())) for s in sources
            ),
            "filters_down": filters_down,
            "usable": not down and not filters_down,
            # Listed, but not callable until the config gives them a `base_url`.
            "no_calls": no_calls,
            # Some calls go where the document says and the config does not allow.
            "refused_calls": refused,
        },
    }


def _past_limit(tokens: dict[Format, int]) -> tuple[Format, int] | None:
    """The format whose tool definitions take the most tokens, when past WARN_TOKENS."""
    worst = max(tokens, key=lambda fmt: tokens[fmt])
    return (worst, tokens[worst]) if tokens[worst] > WARN_TOKENS else None


def _token_warnings(tokens: dict[Format, int]) -> list[str]:
    past = _past_limit(tokens)
    if past is None:
        return []
    worst, count = past
    search = estimate(META_TOOLS)
    return [
        f"the tool definitions take about {count:,} tokens in the {worst} format, more "
        f"than {WARN_TOKENS:,}: give models a few tools at a time, with toolsets "
        "(`toolsets:` in the config, served at /toolsets/{id}/mcp and /toolsets/{id}/openapi.json) "
        "or search mode (`?mode=search`, or `discovery: search` on a toolset: three tools, about "
        f"{search[worst]:,} tokens)"
    ]


def _toolset_warnings(toolset: str, tokens: dict[Format, int]) -> list[str]:
    """A toolset is how a model is given few tools: one that gives it too many says so too."""
    past = _past_limit(tokens)
    if past is None:
        return []
    worst, count = past
    return [
        f"toolset {toolset}'s tool definitions take about {count:,} tokens in the {worst} "
        f"format, more than {WARN_TOKENS:,}: narrow its `include`, or give it `discovery: search`"
    ]


def _tokens(tokens: dict[str, int]) -> str:
    return " · ".join(f"{fmt} {tokens[fmt]:,}" for fmt in FORMATS if fmt in tokens)


def print_check(report: dict[str, Any], out: TextIO, *, verbose: bool = False) -> None:
    for source in report["sources"]:
        _print_source(source, out, verbose)
        print(file=out)
    for found in report.get("filters", ()):
        if not found["ok"]:
            state = f"DOWN: {found['error']}"
        elif found["switched_off"]:
            state = "switched off (`toggle = True`; `switched_on: true` runs it)"
        elif found["warnings"]:
            state = "loaded, but " + "; ".join(found["warnings"])
        else:
            state = "loaded"
        print(f"filter {found['id']}  {found['location']}  {state}", file=out)
    if report.get("filters"):
        print(file=out)
    for note in report["catalog_notes"]:
        print(f"catalog: {note['kind']}: {_line(note['message'])}", file=out)
    ratio = BYTES_PER_TOKEN["openai"]
    print(
        f"tool definitions, estimated tokens (o200k_base, about {ratio} bytes a token): "
        + _tokens(report["tokens"]),
        file=out,
    )
    for toolset in report.get("toolsets", ()):
        print(
            f"toolset {toolset['id']} ({_count(toolset['tools'], 'tool')}, "
            f"{toolset['discovery']}): {_tokens(toolset['tokens'])}",
            file=out,
        )
    print(f"search mode (3 tools): {_tokens(report['search_tokens'])}", file=out)
    for finding in report.get("findings", ()):
        print(f"finding: {finding['where']}: {finding['message']}", file=out)
    for warning in report["warnings"]:
        print(f"warning: {warning}", file=out)
    summary = report["summary"]
    kinds = ", ".join(f"{k} {n}" for k, n in summary["changes_by_kind"].items())
    down = [*summary["down"], *(f"filter {f}" for f in summary.get("filters_down", ()))]
    state = "usable" if summary["usable"] else f"NOT usable: down: {', '.join(down)}"
    if summary["no_calls"]:
        state += f"; cannot make calls until `base_url` is set: {', '.join(summary['no_calls'])}"
    if summary.get("refused_calls"):
        state += "; calls refused (destination-refused, see `allowed_hosts`): " + ", ".join(
            summary["refused_calls"]
        )
    print(
        f"summary: {_count(summary['sources'], 'source')}, "
        f"{_count(summary['operations'], 'operation')}, {_count(summary['tools'], 'tool')}, "
        f"{_count(summary['changes'], 'change')}"
        + (f" ({kinds})" if kinds else "")
        + f", {_count(summary['validation_findings'], 'spec validation finding')}; {state}",
        file=out,
    )


def _print_source(source: dict[str, Any], out: TextIO, verbose: bool) -> None:
    if not source["ok"]:
        print(f"{source['id']}  {source['location']}  DOWN: {source['error']}", file=out)
        return
    print(
        f"{source['id']}  {source['location']}  {source['title']!r} "
        f"({_version_label(source['spec_version'])})",
        file=out,
    )
    filtered = f" ({source['filtered']} filtered out)" if source["filtered"] else ""
    operations = _count(source["operations"], "operation")
    print(f"  {operations} -> {_count(source['tools'], 'tool')}{filtered}", file=out)
    if source.get("tokens"):
        print(f"  estimated tokens: {_tokens(source['tokens'])}", file=out)
    validation = source["validation"]
    if validation["ran"]:
        if validation["valid"]:
            print("  spec validation: valid", file=out)
        else:
            shown = validation["findings"] if verbose else validation["findings"][:5]
            print(f"  spec validation: {len(validation['findings'])} finding(s)", file=out)
            for finding in shown:
                print(f"    - {_line(finding)}", file=out)
            if len(shown) < len(validation["findings"]):
                print("    ... (-v shows all)", file=out)
    for module in source.get("modules", ()):
        meta = module["frontmatter"]
        about = ", ".join(f"{k} {meta[k]}" for k in ("version", "author") if k in meta)
        title = meta.get("title", module["name"])
        print(f"  {module['location']}: {title!r}" + (f" ({about})" if about else ""), file=out)
    for note in source["notes"]:
        where = f" [{_line(note['where'])}]" if note.get("where") else ""
        print(f"  {note['kind']}: {_line(note['message'])}{where}", file=out)
    changes = source["changes"]
    if not changes:
        said = "nothing changed or lost" if not source["notes"] else "no tool changed"
        print(f"  {said}", file=out)
        return
    kinds = ", ".join(f"{k} {n}" for k, n in source["changes_by_kind"].items())
    print(f"  {_count(len(changes), 'change')}: {kinds}", file=out)
    shown = changes if verbose else changes[:SHOWN_PER_SOURCE]
    for change in shown:
        where, tool, message = (_line(change[k]) for k in ("where", "tool", "message"))
        print(f"    {where}  [{tool}]  {change['kind']}: {message}", file=out)
    if len(shown) < len(changes):
        print(f"    ... and {len(changes) - len(shown)} more (-v lists every change)", file=out)


def _line(text: str) -> str:
    """Text a document chose (a path, a key, a validator's finding quoting it) on one line of
    the report: its line breaks written as escapes, so it cannot start a line of its own (the
    CLI's stream escapes every other control character)."""
    return text.replace("\r", "\\r").replace("\n", "\\n")


def _version_label(version: str) -> str:
    if version == "python":
        return "Python tools"
    return f"Swagger {version}" if version.startswith("2") else f"OpenAPI {version}"


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def print_changes(answer: dict[str, Any], out: TextIO) -> None:
    """A reload answer (`POST /v1/admin/reload`) for people: what changed, source by source."""
    verb = "applied" if answer.get("applied") else "would change (dry run)"
    for source in answer.get("sources", []):
        if source["change"] == "unchanged":
            continue
        line = f"{source['id']}: {source['change']} ({_count(source['tools'], 'tool')})"
        if source.get("error"):
            line += f": {source['error']}"
        print(line, file=out)
    tools = answer.get("tools", {})
    for kind in ("added", "removed"):
        if tools.get(kind):
            print(f"tools {kind}: {', '.join(tools[kind])}", file=out)
    for change in tools.get("changed", []):
        print(f"tool changed: {change['name']} ({', '.join(change['fields'])})", file=out)
    if answer.get("settings"):
        print(f"settings changed: {', '.join(answer['settings'])}", file=out)
    workers = answer.get("workers")
    if workers:
        print(f"workers: {workers['applied']} of {workers['total']} applied it", file=out)
    replicas = answer.get("replicas")
    if replicas and not replicas.get("told", True):
        print(f"other replicas NOT told: {replicas.get('reason')}", file=out)
    changed = any(s["change"] != "unchanged" for s in answer.get("sources", []))
    changed = changed or any(tools.get(k) for k in ("added", "removed", "changed"))
    if not changed and not answer.get("settings"):
        verb = "nothing changed" if answer.get("applied") else "nothing would change (dry run)"
    print(f"{verb}: {_count(tools.get('count', 0), 'tool')} in all", file=out)


def _with_note(sources: list[dict[str, Any]], kind: str) -> list[str]:
    """The ids of the sources with a note of this kind."""
    return [s["id"] for s in sources if any(n["kind"] == kind for n in s.get("notes", ()))]
