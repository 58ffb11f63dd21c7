"""All sources turned into one immutable `Catalog`: name -> Tool, plus how each source fared.

A source that fails to load is reported with its error and contributes no tools; the others
are unaffected. When two sources produce the same tool name, the later source's tool (in
config order) is prefixed with that source's id and the change is noted: deterministic, and
never silent.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from toolbridge import names
from toolbridge.blocking import run_to_end, side_by_side
from toolbridge.bulk import give_back
from toolbridge.cold_start import convert_aside
from toolbridge.config import Config, LocalTools, Server
from toolbridge.config import Selection as SelectionConfig
from toolbridge.errors import ConfigError, DocumentError, SourceError, ToolbridgeError
from toolbridge.file_stamps import FileStamp
from toolbridge.fixed_arguments import FixedArgumentError, fixed
from toolbridge.local.imports import MAX_LOADING
from toolbridge.local.loader import LocalConversion, ModuleCache, load_tools
from toolbridge.openapi.compiled import Shape, convert_cached, entry_path
from toolbridge.openapi.convert import Conversion, Selection
from toolbridge.openapi.documents import (
    DocumentStore,
    location_to_uri,
    uri_to_display,
    uri_to_path,
)
from toolbridge.openapi.fetching import http_fetcher
from toolbridge.tools import Note, Tool
from toolbridge.upstream.clients import make_upstream
from toolbridge.upstream.credentials import Credentials, supplied_slots
from toolbridge.upstream.routes import destinations_of, is_url
from toolbridge.upstream.seam import AuthParts, origin
from toolbridge.upstream.transport import Transport, open_client, server_transport

logger = logging.getLogger(__name__)


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
    files: tuple[Path, ...] = ()
    """The local files its documents were read from, or asked for (OpenAPI sources): while
    serving, an edit of one reloads the source (`serve/live.py`)."""
    stamps: tuple[FileStamp, ...] = ()
    """Each of `files` as it was when read (MISSING: not there then)."""

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


def load_server(
    server: Server,
    store: DocumentStore,
    base_dir: Path,
    proxy_environment: Mapping[str, str] | None = None,
) -> SourceStatus:
    """One OpenAPI server's tools, or the error that keeps it down.

    A document read by URL is fetched in a store of its own (so no fetch is shared with a
    server whose policy differs), through the server's transport (`proxy_environment`: the
    proxy variables the config was read with), only from the server's destinations: a remote
    `$ref` elsewhere stays unresolved, with a note. Served by the API itself (on `base_url`'s
    origin, or without it the document URL's), it is fetched with the server's credentials.
    """
    uri, shape = _conversion(server, base_dir)
    given = store
    if is_url(server.spec) and not store.fetches_itself:
        transport = server_transport(server, base_dir, proxy_environment or {})
        auth = _document_auth(server, transport)
        if isinstance(auth, SourceStatus):
            return auth
        fetch = http_fetcher(
            auth=auth,
            auth_origin=origin(server.base_url or server.spec) if auth else None,
            destinations=shape.destinations,
            transport=transport,
            server=server.id,
            timeout=store.fetch_timeout,
            max_bytes=store.max_bytes,
        )
        store = DocumentStore(
            fetch=fetch,
            cache_dir=store.cache_dir,
            max_bytes=store.max_bytes,
            fetch_timeout=store.fetch_timeout,
        )
    started = time.time()
    touched: set[str] = set()

    def status(**outcome: Any) -> SourceStatus:
        files = local_files(touched)
        return SourceStatus(
            id=server.id,
            kind="openapi",
            location=uri_to_display(uri),
            loaded_at=started,
            files=files,
            stamps=store.stamps(files),
            **outcome,
        )

    try:
        with store.tracking() as touched:
            # unchanged documents: from the compiled cache
            conversion = convert_cached(store, uri, shape)
    except DocumentError as exc:
        return status(error=str(exc))
    except Exception as exc:  # a bug of ours meets a document: this source is down, not serve
        logger.error("source %s: loading %s failed", server.id, uri_to_display(uri), exc_info=exc)
        return SourceStatus(
            id=server.id,
            kind="openapi",
            location=uri_to_display(uri),
            loaded_at=started,
            error=f"the document could not be converted ({type(exc).__name__}: {str(exc)[:200]})",
        )
    finally:
        if store is not given:  # what the server's own store read is read, for `check` too
            given.adopt(store, touched)
    if server.output_schema == "publish":
        promised = tuple(replace(tool, output_promised=True) for tool in conversion.tools)
        conversion = replace(conversion, tools=promised)
    try:
        tools, unused, values = fixed(server, conversion.tools)
    except FixedArgumentError as exc:
        return status(error=str(exc), digest=store.digest(touched))
    conversion = replace(conversion, tools=tools, notes=(*conversion.notes, *unused), fixed=values)
    refused = _refused_servers(server, conversion)
    return status(
        conversion=replace(conversion, notes=(*conversion.notes, *refused)),
        digest=store.digest(touched),
    )


def local_files(uris: Iterable[str]) -> tuple[Path, ...]:
    """The files of the `file://` URIs among `uris`, in order."""
    return tuple(sorted(uri_to_path(uri) for uri in uris if uri.startswith("file://")))


def _conversion(server: Server, base_dir: Path) -> tuple[str, Shape]:
    """The document's URI and what else shapes a server's conversion."""
    return location_to_uri(server.spec, base_dir), Shape(
        source=server.id,
        base_url=server.base_url,
        prefix=server.prefix or "",
        include=_selection(server.include),
        exclude=_selection(server.exclude),
        destinations=destinations_of(server),
        supplied=supplied_slots(server),
    )


def _uncompiled_bytes(server: Server, store: DocumentStore, base_dir: Path) -> int:
    """The size of the server's document when it is a local file with no compiled entry yet
    (what a load would have to convert); 0 otherwise (an entry, no cache, or a URL, whose size
    is known only once it is fetched)."""
    uri, shape = _conversion(server, base_dir)
    entry = entry_path(store, uri, shape)
    if entry is None or entry.exists() or not uri.startswith("file://"):
        return 0
    try:
        return uri_to_path(uri).stat().st_size
    except OSError:
        return 0


def _refused_servers(server: Server, conversion: Conversion) -> list[Note]:
    """A note for each server URL the document names that its calls may not go to."""
    named = sorted({t.http.base_url for t in conversion.tools if t.http.base_url})
    policy = destinations_of(server, named)
    notes = []
    for url in named:
        reason = policy.refusal(url)
        if reason is not None:
            count = sum(1 for t in conversion.tools if t.http.base_url == url)
            notes.append(
                Note(
                    kind="destination-refused",
                    message=f"the document sends the calls of {count} "
                    f"tool{'' if count == 1 else 's'} to {url}; they are refused: {reason}",
                )
            )
    return notes


def build_catalog(sources: Iterable[SourceStatus]) -> Catalog:
    """One name -> Tool map over all sources; names are unique without regard to case.

    Names are claimed in order of trust: local tools and documents read from files first, then
    documents fetched from URLs (whose authors the operator does not control), each group in
    config order. A tool whose name (in any case) is already held gets its source id in front,
    with a `name-clash` note. The catalog lists tools in config order all the same.
    """
    statuses = tuple(sources)
    claiming = sorted(
        (s for s in statuses if s.conversion is not None), key=lambda s: not _trusted(s)
    )
    # A renamed tool must not take a name that any source gives one of its own tools.
    reserved = {tool.name.lower() for s in claiming if s.conversion for tool in s.conversion.tools}
    holders: dict[str, Tool] = {}  # by lower-cased name
    named: dict[str, dict[str, Tool]] = {}  # per source, in its own order
    notes: list[Note] = []
    for status in claiming:
        assert status.conversion is not None
        mine = named.setdefault(status.id, {})
        for tool in status.conversion.tools:
            held = holders.get(tool.name.lower())
            if held is not None:
                renamed = _unclash(
                    tool, lambda name: name.lower() in reserved or name.lower() in holders
                )
                same = "" if held.name == tool.name else f" ({held.name!r}: names ignore case)"
                note = Note(
                    kind="name-clash",
                    message=f"{tool.name!r} is already a tool of source {held.source!r}{same}; "
                    f"the one of source {tool.source!r} is {renamed!r} (give "
                    f"{'tools entry' if status.kind == 'python' else 'server'} "
                    f"{tool.source!r} a `prefix` to choose its names)",
                    where=tool.where,
                )
                notes.append(note)
                tool = replace(tool, name=renamed, notes=(*tool.notes, note))
            holders[tool.name.lower()] = tool
            mine[tool.name] = tool
    tools = {name: tool for s in statuses for name, tool in named.get(s.id, {}).items()}
    return Catalog(tools=tools, sources=statuses, notes=tuple(notes))


def _trusted(status: SourceStatus) -> bool:
    """Local tools and file documents: written by the operator, so they keep their names."""
    return status.kind != "openapi" or not status.location.lower().startswith(
        ("http://", "https://")
    )


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
    proxies = config.proxy_environment
    sizes = [(s, _uncompiled_bytes(s, store, config.base_dir)) for s in config.servers]
    uncompiled = [s for s, size in sizes if size]
    convert_aside(  # a cold start of large documents: converted in a child, read back here
        sum(size for _, size in sizes),
        lambda: [load_server(s, store, config.base_dir, proxies) for s in uncompiled],
    )
    fetched = _load_urls_together(config, store)
    statuses = []
    for server in config.servers:
        found = fetched.get(server.id)
        statuses.append(found or load_server(server, store, config.base_dir, proxies))
        store.release()  # its tools hold what they need; the next source starts light
    # Side by side, as URLs are: k tool files that never finish would hold a start k times
    # IMPORT_TIMEOUT (each runs in a thread of its own, bounded; loading is mostly waiting).
    local = side_by_side(
        lambda e: load_local(e, config.base_dir, modules), config.tools, MAX_LOADING
    )
    statuses.extend(local)
    give_back()  # what the conversions freed (documents, drafts) goes back to the system
    return statuses


MAX_FETCHING = 8
"""Servers whose documents are read by URL that load at once (each fetch is bounded on its own:
`DocumentStore.fetch_timeout`, and a source's fetches together)."""


def _load_urls_together(config: Config, store: DocumentStore) -> dict[str, SourceStatus]:
    """The servers whose documents are URLs, loaded side by side (by id): one after the other, k
    documents that do not answer would hold a start (or a reload) for k times a fetch's limit
    before the port is bound. Each has a store of its own (`load_server`); files stay in order,
    as they were."""
    urls = [s for s in config.servers if is_url(s.spec)]
    if len(urls) < 2 or store.fetches_itself:  # (a given fetcher's store is the one shared)
        return {}
    base, proxies = config.base_dir, config.proxy_environment
    loaded = side_by_side(
        lambda server: load_server(server, store, base, proxies), urls, MAX_FETCHING
    )
    return {status.id: status for status in loaded}


def _document_auth(server: Server, transport: Transport) -> AuthParts | SourceStatus | None:
    """The credentials to fetch a server's document with, when it lives on the API's origin
    (`base_url`'s; without one, calls go to the document's own origin)."""
    if server.auth is None and not server.headers:
        return None
    if not is_url(server.spec):
        return None
    if server.base_url and origin(server.spec) != origin(server.base_url):
        return None
    try:
        return run_to_end(_fetch_auth(server, transport))
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


async def _fetch_auth(server: Server, transport: Transport) -> AuthParts:
    # A client of this loop's own, closed right after.
    upstream = make_upstream() if transport.plain else open_client(transport, server.id)
    try:
        return await Credentials(server, {}, upstream=upstream).parts(None, {})
    finally:
        await upstream.aclose()


def load_catalog(config: Config, store: DocumentStore) -> Catalog:
    return build_catalog(load_sources(config, store))


def _unclash(tool: Tool, taken: Callable[[str], bool]) -> str:
    """A name for a clashing tool, with its source id in front; `taken` says whether a name is
    already used (names ignore case)."""
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
