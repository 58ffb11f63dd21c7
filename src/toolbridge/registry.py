"""All sources turned into one immutable `Catalog`: name -> Tool, plus how each source fared.

A source that fails to load is reported with its error and contributes no tools; the others
are unaffected. When two sources produce the same tool name, the later source's tool (in
config order) is prefixed with that source's id and the change is noted: deterministic, and
never silent.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Coroutine, Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from toolbridge import names
from toolbridge.bulk import give_back
from toolbridge.config import Config, LocalTools, Server
from toolbridge.config import Selection as SelectionConfig
from toolbridge.errors import ConfigError, DocumentError, SourceError, ToolbridgeError
from toolbridge.local.loader import LocalConversion, ModuleCache, load_tools
from toolbridge.openapi.compiled import convert_cached
from toolbridge.openapi.convert import Conversion, Selection
from toolbridge.openapi.documents import (
    DocumentStore,
    http_fetcher,
    location_to_uri,
    uri_to_display,
)
from toolbridge.tools import Note, Tool
from toolbridge.upstream.clients import make_upstream
from toolbridge.upstream.credentials import Credentials
from toolbridge.upstream.seam import AuthParts


@dataclass(frozen=True, slots=True, kw_only=True)
class SourceStatus:
    """One configured source: what it turned into, or the error that keeps it down."""

    id: str
    kind: str
    location: str
    loaded_at: float
    conversion: Conversion | LocalConversion | None = None
    """What the source turned into: its last good version, also while `error` says it is down."""
    error: str | None = None
    digest: str | None = None
    """The sha256 of the source's documents as read (OpenAPI sources); None when unread."""

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass(frozen=True, slots=True)
class Catalog:
    """The tools of every source, by name, in source order; immutable once built."""

    tools: Mapping[str, Tool]
    sources: tuple[SourceStatus, ...]
    notes: tuple[Note, ...] = ()

    def get(self, name: str) -> Tool | None:
        return self.tools.get(name)

    def __iter__(self) -> Iterator[Tool]:
        return iter(self.tools.values())

    def __len__(self) -> int:
        return len(self.tools)


def servers_from_specs(locations: Iterable[str]) -> tuple[Server, ...]:
    """Ad-hoc servers for `--spec` arguments, with ids from the file or URL names."""
    servers = []
    taken: set[str] = set()
    for location in locations:
        stem = location.rstrip("/").rsplit("/", 1)[-1].split("?")[0].rsplit(".", 1)[0]
        base = names.safe_name(stem or "api")[:30].strip("_-") or "api"
        base = base if base[0].isalpha() else f"api{base}"
        ident, n = base, 2
        while ident in taken:
            ident = f"{base}-{n}"
            n += 1
        taken.add(ident)
        servers.append(Server(id=ident, spec=location))
    return tuple(servers)


def load_server(server: Server, store: DocumentStore, base_dir: Path) -> SourceStatus:
    """One OpenAPI server's tools, or the error that keeps it down.

    A document served by the API itself (on the server's own origin: `base_url`'s, or without
    it the document URL's) is fetched with the server's credentials, in a store of its own so
    an authenticated fetch is never shared with another server.
    """
    auth = _document_auth(server)
    if isinstance(auth, SourceStatus):
        return auth
    if auth is not None:
        origin = _origin_of(server.base_url or server.spec)
        fetch = http_fetcher(auth=auth, auth_origin=origin)
        store = DocumentStore(fetch=fetch, cache_dir=store.cache_dir)
    uri = location_to_uri(server.spec, base_dir)
    started = time.time()
    try:
        with store.tracking() as touched:
            conversion = convert_cached(  # unchanged documents: from the compiled cache
                store,
                uri,
                source=server.id,
                base_url=server.base_url,
                prefix=server.prefix or "",
                include=_selection(server.include),
                exclude=_selection(server.exclude),
            )
    except DocumentError as exc:
        return SourceStatus(
            id=server.id,
            kind="openapi",
            location=uri_to_display(uri),
            loaded_at=started,
            error=str(exc),
        )
    return SourceStatus(
        id=server.id,
        kind="openapi",
        location=uri_to_display(uri),
        loaded_at=started,
        conversion=conversion,
        digest=store.digest(touched),
    )


def build_catalog(sources: Iterable[SourceStatus]) -> Catalog:
    """One name -> Tool map over all sources; clashing names are prefixed with the source id."""
    statuses = tuple(sources)
    converted = [s.conversion for s in statuses if s.conversion is not None]
    # A renamed tool must not take a name that any source gives one of its own tools.
    reserved = {tool.name for conversion in converted for tool in conversion.tools}
    tools: dict[str, Tool] = {}
    notes: list[Note] = []
    for conversion in converted:
        for tool in conversion.tools:
            if tool.name in tools:
                renamed = _unclash(tool, lambda name: name in reserved or name in tools)
                note = Note(
                    kind="name-clash",
                    message=f"{tool.name!r} is already a tool of source "
                    f"{tools[tool.name].source!r}; the one of source {tool.source!r} is "
                    f"{renamed!r} (give server {tool.source!r} a `prefix` to choose its names)",
                    where=tool.where,
                )
                notes.append(note)
                tool = replace(tool, name=renamed, notes=(*tool.notes, note))
            tools[tool.name] = tool
    return Catalog(tools=tools, sources=statuses, notes=tuple(notes))


def load_local(entry: LocalTools, base_dir: Path, cache: ModuleCache | None = None) -> SourceStatus:
    started = time.time()
    location = entry.path or entry.module or ""
    try:
        conversion = load_tools(entry, base_dir, cache)
    except SourceError as exc:
        return SourceStatus(
            id=entry.id, kind="python", location=location, loaded_at=started, error=str(exc)
        )
    kept = [note.message for note in conversion.notes if note.kind == "module-kept"]
    return SourceStatus(
        id=entry.id,
        kind="python",
        location=conversion.location,
        loaded_at=started,
        conversion=conversion,
        # A module that broke on reload still serves its last good version, but is reported.
        error="; ".join(kept) or None,
    )


def load_sources(
    config: Config, store: DocumentStore, modules: ModuleCache | None = None
) -> list[SourceStatus]:
    """Every source of the config, loaded or with the error that keeps it down."""
    statuses = []
    for server in config.servers:
        statuses.append(load_server(server, store, config.base_dir))
        store.release()  # its tools hold what they need; the next source starts light
    statuses.extend(load_local(entry, config.base_dir, modules) for entry in config.tools)
    give_back()  # what the conversions freed (documents, drafts) goes back to the system
    return statuses


def _document_auth(server: Server) -> AuthParts | SourceStatus | None:
    """The credentials to fetch a server's document with, when it lives on the API's origin
    (`base_url`'s; without one, calls go to the document's own origin)."""
    if server.auth is None and not server.headers:
        return None
    if not server.spec.lower().startswith(("http://", "https://")):
        return None
    if server.base_url and _origin_of(server.spec) != _origin_of(server.base_url):
        return None
    try:
        return _run(_fetch_auth(server))
    except ConfigError:
        return None  # e.g. an API key whose place only the document itself can tell
    except ToolbridgeError as exc:
        return SourceStatus(
            id=server.id,
            kind="openapi",
            location=server.spec,
            loaded_at=time.time(),
            error=f"credentials for fetching the document: {exc}",
        )


async def _fetch_auth(server: Server) -> AuthParts:
    upstream = make_upstream("httpx")  # a client of this loop's own, closed right after
    try:
        return await Credentials(server, {}, upstream=upstream).parts(None, {})
    finally:
        await upstream.aclose()


def _origin_of(url: str) -> str:
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return f"{parts.scheme}://{parts.hostname}:{port}"


def _run(coroutine: Coroutine[Any, Any, AuthParts]) -> AuthParts:
    """Run a coroutine to its end from sync loading code, inside a running loop or not."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coroutine)
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coroutine).result()


def load_catalog(config: Config, store: DocumentStore) -> Catalog:
    return build_catalog(load_sources(config, store))


def _unclash(tool: Tool, taken: Callable[[str], bool]) -> str:
    candidate = names.safe_name(tool.name, prefix=tool.source.replace("-", "_"))
    n = 2
    base = candidate
    while taken(candidate):
        suffix = f"_{n}"
        candidate = base[: names.MAX_NAME - len(suffix)] + suffix
        n += 1
    return candidate


def _selection(selection: SelectionConfig | None) -> Selection | None:
    if selection is None:
        return None
    return Selection(
        tags=selection.tags,
        operations=selection.operations,
        methods=selection.methods,
        paths=selection.paths,
    )
