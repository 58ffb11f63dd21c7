"""The admin API for files registered with their entry: local tools (`/v1/admin/tools`) and
filters (`/v1/admin/filters`), one code for both.

A file is its `content` (the text, frontmatter included) beside the keys of its `tools` or
`filters` entry; its Valves go apart, and those named secret (or whose names say so) are
encrypted at rest and never listed. Each write is checked as a reload checks the YAML entry
(the same keys and messages, `tools[ID]` or `filters[ID]` standing for the file and line; a
filter's `sources` must name servers or tools entries), then the file is loaded once aside, so
one that does not load is refused with its error and nothing is stored. Then it is stored and
applied (`Parts.applied`: this worker, its siblings, the other replicas). Entries the config
file defines are read-only here.

What it trusts: callers are admins (`Parts.store` checks, for every handler); bodies are
untrusted JSON; a file fetched by `import` is taken only when its sha256 is the one given.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Literal, Protocol

import anyio.to_thread
from pydantic import BaseModel

from toolbridge.config import Config, FilterEntry, LocalTools, Server
from toolbridge.config_file import validate_entry
from toolbridge.errors import BadRequest, ConfigError, SourceError, ToolNotFound, quoted
from toolbridge.filters.loader import load_filters
from toolbridge.gateway import Gateway
from toolbridge.generation import Generation
from toolbridge.local.loader import load_tools
from toolbridge.openapi.fetching import http_fetcher
from toolbridge.policy import Principal
from toolbridge.redaction import secret_fields
from toolbridge.secret_names import SECRET_NAME
from toolbridge.state.registered import Registered, materialize
from toolbridge.state.revisions import Expected
from toolbridge.state.scopes import unknown_sources
from toolbridge.state.store import Store
from toolbridge.state.tool_files import ToolFiles
from toolbridge.state.values import REDACTED, ToolInClear, ToolRecord
from toolbridge.tools import PythonFunction

MAX_FILE_BYTES = 1024 * 1024
"""A tool or filter file's content, in UTF-8 (the store's own limit too)."""
IMPORT_TIMEOUT = 30.0
"""Seconds an `import` may take to fetch the file."""
Answer = tuple[int, dict[str, Any]]


SHADOWED = "toolbridge.yaml defines this id too, and its entry is the one served"
"""What a listing says of an entry registered through the API that the config file shadows."""


class Parts(Protocol):
    """What the file handlers use of the admin API (`admin.Admin`)."""

    gateway: Gateway

    def store(self, principal: Principal) -> Store: ...
    def in_file(self, ident: str) -> bool: ...
    def shadowed(self, ident: str) -> bool: ...
    def file_sources(self) -> frozenset[str]: ...
    def not_taken(self, ident: str) -> None: ...
    def writable(self, ident: str, kind: str, *, deleting: bool = False) -> None: ...
    def in_no_filter_scope(self, ident: str, kind: str) -> None: ...
    async def applied(self, ident: str, since: Generation) -> dict[str, Any]: ...
    def from_file(self, entry: Server | LocalTools | FilterEntry) -> dict[str, Any]: ...


@dataclass(frozen=True, slots=True)
class Kind:
    """Local tools or filters: their config key (and URL part), and how one is loaded."""

    key: Literal["tools", "filters"]
    one: Literal["tool", "filter"]
    """The key an answer gives one under; the store's kind."""
    model: type[LocalTools] | type[FilterEntry]
    content: str
    """What `content` must hold, for its error."""
    entries: Callable[[Config], tuple[LocalTools, ...] | tuple[FilterEntry, ...]]
    load: Callable[[Registered, Config], frozenset[str]]
    """Load the one file `materialize` made, aside: the names of its Valves that hold secrets
    (`secret_fields`); SourceError or ConfigError when it fails."""
    source: str | None
    """What one is called as a source that filters may be scoped to (None: it is none)."""


def _load_tool(made: Registered, config: Config) -> frozenset[str]:
    """Load it as a reload would, and refuse what a config file's entry is only warned of: valves
    the file has no field for (they would be stored unused, and shown back), or no tool."""
    loaded = load_tools(made.tools[0], config.base_dir)
    for note in loaded.notes:
        if note.kind == "valves-unused":
            raise SourceError(note.message.removesuffix("; they are ignored"))
        if note.kind == "no-tools":
            raise SourceError(f"{note.message}: it defines no `class Tools` nor public function")
    instances = (
        getattr(t.target.func, "__self__", None)
        for t in loaded.tools
        if isinstance(t.target, PythonFunction)
    )
    return next((_secret_valves(i) for i in instances if i is not None), frozenset())


def _secret_valves(instance: object) -> frozenset[str]:
    valves = getattr(instance, "valves", None)
    return secret_fields(type(valves)) if isinstance(valves, BaseModel) else frozenset()


def _load_filter(made: Registered, config: Config) -> frozenset[str]:
    entry = made.filters[0]
    sources = {s.id for s in config.servers} | {t.id for t in config.tools}
    refusal = unknown_sources(entry.id, [s for s in entry.sources if s not in sources])
    if refusal is not None:
        raise refusal
    (status,) = load_filters(config.model_copy(update={"filters": (entry,)}), {})
    if status.error is not None:
        raise SourceError(status.error)
    return _secret_valves(status.filter.instance) if status.filter else frozenset()


TOOLS = Kind(
    key="tools",
    one="tool",
    model=LocalTools,
    content="the tool file's text (frontmatter included)",
    entries=lambda config: config.tools,
    load=_load_tool,
    source="tools entry",
)
FILTERS = Kind(
    key="filters",
    one="filter",
    model=FilterEntry,
    content="the filter file's text (a `class Filter`)",
    entries=lambda config: config.filters,
    load=_load_filter,
    source=None,
)


class Files:
    """The handlers of one kind of file, over plain values: the HTTP layer reads and writes
    JSON (`admin.routes`)."""

    def __init__(self, parts: Parts, kind: Kind) -> None:
        self.parts = parts
        self.kind = kind

    async def listing(self, principal: Principal) -> Answer:
        """The config file's entries (`"origin": "config"`) and the registered ones, with
        their Valves, secrets redacted."""
        part = self._part(self.parts.store(principal))
        config = self.parts.gateway.config
        listed = [
            self.parts.from_file(e) for e in self.kind.entries(config) if self.parts.in_file(e.id)
        ]
        for record in await part.list():
            valves = await part.get_valves(record.id)
            if valves is None:
                shown = _file_json(record, None, frozenset())
            else:
                shown = _file_json(record, dict(valves.values), valves.secret)
            if self.parts.shadowed(record.id):
                shown |= {"served": False, "note": SHADOWED}
            listed.append(shown)
        return 200, {self.kind.key: listed}

    async def create(self, principal: Principal, body: Any) -> Answer:
        part = self._part(self.parts.store(principal))
        ident, content, entry, valves, secret = self._body(body, None)
        self.parts.not_taken(ident)
        secret |= await self._trial(ident, content, entry, valves)
        since = self.parts.gateway.generation()
        record = await part.create(
            ident,
            content,
            entry,
            valves=valves,
            secret=secret,
            by=principal.id,
            in_file=self.parts.file_sources(),
        )
        shown = _file_json(record, valves, secret)
        return 201, {self.kind.one: shown, **await self.parts.applied(ident, since)}

    async def update(
        self, principal: Principal, ident: str, body: Any, *, expected: Expected = None
    ) -> Answer:
        part = self._part(self.parts.store(principal))
        self.parts.writable(ident, self.kind.key)
        ident, content, entry, valves, secret = self._body(body, ident)
        secret |= await self._trial(ident, content, entry, valves)
        since = self.parts.gateway.generation()
        record = await part.update(
            ident,
            content,
            entry,
            valves=valves,
            secret=secret,
            by=principal.id,
            in_file=self.parts.file_sources(),
            expected=expected,
        )
        if record is None:
            raise self._absent(ident)
        shown = _file_json(record, valves, secret)
        return 200, {self.kind.one: shown, **await self.parts.applied(ident, since)}

    async def delete(
        self, principal: Principal, ident: str, *, expected: Expected = None
    ) -> Answer:
        part = self._part(self.parts.store(principal))
        self.parts.writable(ident, self.kind.key, deleting=True)
        if self.kind.source is not None and not self.parts.shadowed(ident):
            self.parts.in_no_filter_scope(ident, self.kind.source)
        since = self.parts.gateway.generation()
        if not await part.delete(ident, by=principal.id, expected=expected):
            raise self._absent(ident)
        return 200, {"deleted": ident, **await self.parts.applied(ident, since)}

    async def imported(self, principal: Principal, body: Any) -> Answer:
        """`{id, url, sha256, ...entry}`: the file at `url`, taken only if its sha256 is that."""
        self.parts.store(principal)
        if not isinstance(body, dict):
            raise BadRequest("expected a JSON object: {id, url, sha256, ...}")
        fields = dict(body)
        url, expected = fields.pop("url", None), fields.pop("sha256", None)
        if not isinstance(url, str) or not url.lower().startswith(("http://", "https://")):
            raise BadRequest(f"`url`: expected the http(s) URL of a {self.kind.one} file")
        if not isinstance(expected, str) or not re.fullmatch(r"[0-9a-fA-F]{64}", expected):
            raise BadRequest("`sha256`: expected the file's SHA-256, 64 hex digits")
        fetch = http_fetcher(timeout=IMPORT_TIMEOUT, max_bytes=MAX_FILE_BYTES)
        try:
            content = await anyio.to_thread.run_sync(fetch, url)
        except SourceError as exc:  # refused, unreachable, not 200, too large, too slow
            raise BadRequest(f"{exc}; nothing was stored", status=422) from None
        found = hashlib.sha256(content).hexdigest()
        if found != expected.lower():
            raise BadRequest(
                f"{url}: the file's sha256 is {found}, not the {expected.lower()} given; "
                "nothing was stored",
                status=422,
            )
        try:
            fields["content"] = content.decode("utf-8")
        except UnicodeDecodeError:
            raise BadRequest(
                f"{url}: not UTF-8 text, so not a {self.kind.one} file", status=422
            ) from None
        return await self.create(principal, fields)

    async def put_valves(
        self, principal: Principal, ident: str, body: Any, *, expected: Expected = None
    ) -> Answer:
        """Replace the Valves (checked by loading the file with them, as a create is)."""
        part = self._part(self.parts.store(principal))
        self.parts.writable(ident, self.kind.key)
        if not isinstance(body, dict):
            raise BadRequest("expected the Valves as a JSON object")
        stored = next((t for t in await part.in_clear() if t.id == ident), None)
        if stored is None:
            raise self._absent(ident)
        named = body.get("secret")
        if isinstance(named, list):  # the names of the valves to seal
            values = {k: v for k, v in body.items() if k != "secret"}
        else:  # a valve named `secret` (sealed by its name)
            values, named = dict(body), None
        secret = secret_names(values, named)
        entry = {k: v for k, v in stored.entry.items() if k not in ("valves", "secret")}
        secret |= await self._trial(ident, stored.content, entry, values)
        since = self.parts.gateway.generation()
        checked_with = hashlib.sha256(stored.content.encode("utf-8")).hexdigest()
        _, revision = await part.put_valves(
            ident,
            values,
            secret=secret,
            by=principal.id,
            checked_with=checked_with,
            expected=expected,
        )
        shown = redacted(values, secret)
        changes = await self.parts.applied(ident, since)
        return 200, {self.kind.one: ident, "valves": shown, "revision": revision, **changes}

    # -- the parts -------------------------------------------------------------------------

    def _part(self, store: Store) -> ToolFiles:
        return store.tools if self.kind.one == "tool" else store.filters

    def _absent(self, ident: str) -> ToolNotFound:
        return ToolNotFound(
            f"no {self.kind.key} entry {quoted(ident)} was registered through the API"
        )

    def _body(
        self, body: Any, ident: str | None
    ) -> tuple[str, str, dict[str, Any], dict[str, Any] | None, frozenset[str]]:
        key = self.kind.key
        if not isinstance(body, dict):
            raise BadRequest(f"expected a {key} entry as a JSON object: {{id, content, ...}}")
        entry = dict(body)
        content = entry.pop("content", None)
        valves = entry.pop("valves", None)
        secret = secret_names(valves or {}, entry.pop("secret", None))
        if ident is not None and entry.setdefault("id", ident) != ident:
            said = quoted(str(entry["id"]))
            raise BadRequest(f"the body's id {said} is not the URL's {quoted(ident)}")
        if not isinstance(content, str):
            raise BadRequest(f"`content`: expected {self.kind.content}")
        if len(content.encode("utf-8")) > MAX_FILE_BYTES:
            raise BadRequest(f"`content` is over {MAX_FILE_BYTES} bytes", status=413)
        if "path" in entry or "module" in entry:
            raise BadRequest(
                f"a registered {self.kind.one} is its `content`: leave out `path` and `module`"
            )
        if valves is not None and not isinstance(valves, dict):
            raise BadRequest("`valves`: expected a JSON object")
        ident = str(entry.get("id"))
        validate_entry(self.kind.model, {**entry, "path": "(registered)"}, f"{key}[{ident}]")
        return ident, content, entry, valves, secret

    async def _trial(
        self, ident: str, content: str, entry: dict[str, Any], valves: Mapping[str, Any] | None
    ) -> frozenset[str]:
        """Load the file once, aside, with its entry and Valves, before anything is stored: the
        names of its Valves that hold secrets, by their type or marker (sealed as named ones)."""
        stored = [ToolInClear(ident, content, {**entry, "valves": dict(valves or {})})]
        config = self.parts.gateway.config
        kind = self.kind

        def trial() -> frozenset[str]:
            with tempfile.TemporaryDirectory(prefix="toolbridge-trial-") as folder:
                tools, filters = (stored, []) if kind.one == "tool" else ([], stored)
                made = materialize([], tools, Path(folder), filters)
                if made.problems:
                    raise ConfigError(made.problems[0])
                try:
                    return kind.load(made, config)
                except SourceError as exc:
                    # Named as `toolbridge export` writes it, not by this passing folder.
                    shown = renamed(str(exc), folder, "")
                    raise ConfigError(
                        f"{kind.key}[{ident}]: the file cannot be loaded: {shown}"
                    ) from None

        return await anyio.to_thread.run_sync(trial)  # not asyncio's executor, which a stop awaits


def renamed(text: str, folder: str, name: str) -> str:
    """A message about files a trial wrote to `folder`, with the folder named `name` instead
    (`admin API: `, or nothing: as `toolbridge export` writes the files)."""
    for prefix in {folder, str(Path(folder).resolve())}:
        text = text.replace(prefix + os.sep, name)
    return text


def secret_names(values: Mapping[str, Any], named: Any) -> frozenset[str]:
    """The Valves to seal (encrypted at rest, never listed): those `named` in a request's
    `secret`, and those whose names say so (`SECRET_NAME`)."""
    if named is not None and (
        not isinstance(named, list) or not all(isinstance(n, str) for n in named)
    ):
        raise BadRequest("`secret`: expected a list of valve names")
    return frozenset(named or ()) | {k for k in values if SECRET_NAME.search(k)}


def redacted(values: Mapping[str, Any], secret: frozenset[str]) -> dict[str, Any]:
    return {k: REDACTED if k in secret else v for k, v in values.items()}


def time_of(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _file_json(
    record: ToolRecord, valves: Mapping[str, Any] | None, secret: frozenset[str]
) -> dict[str, Any]:
    shown_valves = redacted(valves, secret | secret_names(valves, None)) if valves else None
    return {
        "id": record.id,
        "origin": "api",
        "entry": dict(record.entry),
        "content_sha256": record.content_sha256,
        "valves": shown_valves,
        "updated_at": time_of(record.updated_at),
        "updated_by": record.updated_by,
        "revision": record.revision,
    }
