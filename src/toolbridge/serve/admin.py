"""The admin API: servers, local tools and filters registered, changed and removed while serving.

Servers are here; local tools and filters, files with their entry, are `admin_files`. Each
entry is checked as a `toolbridge.yaml` entry is (the same keys, the same messages, with
`servers[ID]` standing for the file and line), and its source is loaded once before anything is
stored, so a document that cannot be read or a tool file that does not load is refused with
the error a reload would give. Then it is stored (with its secrets encrypted, its audit entry
and its change-feed entry) and applied: this worker and its siblings reload that source, the
other replicas follow the feed. Sources the config file defines are read-only here: the file
is their truth. Listings never carry a secret.

What it trusts: callers are admins (checked here, for every route); bodies are untrusted JSON.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import anyio.to_thread
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from toolbridge.config import FilterEntry, LocalTools, PerUserAuth, Server
from toolbridge.config_file import validate_entry
from toolbridge.errors import (
    BadRequest,
    ConfigError,
    Conflict,
    DocumentError,
    Forbidden,
    StoreUnavailable,
    ToolbridgeError,
    ToolNotFound,
    quoted,
)
from toolbridge.gateway import Gateway
from toolbridge.generation import Generation
from toolbridge.openapi.documents import DocumentStore
from toolbridge.openapi.references import outside_refs
from toolbridge.policy import Principal
from toolbridge.redaction import entry_secrets, said_without
from toolbridge.registry import SourceStatus, load_server
from toolbridge.serve.admin_files import (
    FILTERS,
    SHADOWED,
    TOOLS,
    Answer,
    Files,
    redacted,
    renamed,
    secret_names,
    time_of,
)
from toolbridge.serve.live import Live
from toolbridge.serve.preconditions import if_match, revision_of
from toolbridge.serve.shared import Shared
from toolbridge.state import scopes
from toolbridge.state.database import MAX_PAGE
from toolbridge.state.registered import materialize
from toolbridge.state.revisions import Expected
from toolbridge.state.secrets import join, server_secret_paths, split
from toolbridge.state.store import Store
from toolbridge.state.values import REDACTED, ServerInClear, ServerRecord
from toolbridge.upstream.credentials import Credentials
from toolbridge.upstream.seam import Upstream

logger = logging.getLogger(__name__)

AUDIT_PAGE = 200
"""Audit entries `GET /v1/admin/audit` answers without a `limit` (1,000 at most with one)."""


class Admin:
    """The admin API's handlers, over plain values: the HTTP layer reads and writes JSON."""

    def __init__(self, gateway: Gateway, live: Live, shared: Shared | None) -> None:
        self.gateway = gateway
        self.live = live
        self.shared = shared
        self.tools = Files(self, TOOLS)
        self.filters = Files(self, FILTERS)

    # -- servers ---------------------------------------------------------------------------

    async def servers(self, principal: Principal) -> Answer:
        store = self.store(principal)
        listed = [self.from_file(s) for s in self.gateway.config.servers if self.in_file(s.id)]
        listed += [
            _server_json(r) | ({"served": False, "note": SHADOWED} if self.shadowed(r.id) else {})
            for r in await store.servers.list()
        ]
        return 200, {"servers": listed}

    async def create_server(self, principal: Principal, body: Any) -> Answer:
        store = self.store(principal)
        entry, document = _server_body(body, None)
        server = validate_entry(Server, entry, f"servers[{entry.get('id')}]")
        self.not_taken(server.id)
        await self._trial_server(entry, document)
        since = self.gateway.generation()
        record = await store.servers.create(entry, document=document, by=principal.id)
        return 201, {"server": _server_json(record), **await self.applied(server.id, since)}

    async def update_server(
        self, principal: Principal, ident: str, body: Any, *, expected: Expected = None
    ) -> Answer:
        store = self.store(principal)
        self.writable(ident, "server")
        entry, document = _server_body(body, ident)
        validate_entry(Server, entry, f"servers[{ident}]")
        # Tried with the secrets it keeps (a listing sent back says `********` for them): a
        # fixed argument's value is checked against the document, the placeholder is not it.
        await self._trial_server(await _kept_secrets(store, ident, entry), document)
        since = self.gateway.generation()
        record = await store.servers.update(
            entry, document=document, by=principal.id, expected=expected
        )
        if record is None:
            raise ToolNotFound(f"no server {quoted(ident)} was registered through the API")
        return 200, {"server": _server_json(record), **await self.applied(ident, since)}

    async def delete_server(
        self, principal: Principal, ident: str, *, expected: Expected = None
    ) -> Answer:
        store = self.store(principal)
        self.writable(ident, "server", deleting=True)
        if not self.shadowed(ident):
            self.in_no_filter_scope(ident, "server")
        since = self.gateway.generation()
        if not await store.servers.delete(ident, by=principal.id, expected=expected):
            raise ToolNotFound(f"no server {quoted(ident)} was registered through the API")
        return 200, {"deleted": ident, **await self.applied(ident, since)}

    async def audit(self, principal: Principal, query: Mapping[str, str]) -> Answer:
        """The admin audit log, newest first: who changed what, when (no values). `limit`
        entries (default AUDIT_PAGE), `before` an entry's id (the page after the one whose last
        entry that is: `next` names it), of one `action` or kind (`server`) only."""
        store = self.store(principal)
        unknown = sorted(set(query) - {"limit", "before", "action"})
        if unknown:
            raise BadRequest(
                f"GET /v1/admin/audit takes limit, before and action; found {unknown[0][:40]!r}"
            )
        limit = _whole(query, "limit", AUDIT_PAGE, 1, MAX_PAGE)
        before = _whole(query, "before", None, 1, 2**63 - 1)
        action = query.get("action") or None
        entries = await store.audit_log(limit=limit, before=before, action=action)
        answer: dict[str, Any] = {
            "audit": [
                {
                    "id": e.id,
                    "at": time_of(e.at),
                    "actor": e.actor,
                    "action": e.action,
                    "target": e.target,
                    "detail": dict(e.detail),
                }
                for e in entries
            ]
        }
        if len(entries) == limit:
            more = {"limit": str(limit), "before": str(entries[-1].id)}
            if action is not None:
                more["action"] = action
            answer["next"] = f"/v1/admin/audit?{urlencode(more)}"
        return 200, answer

    # -- the parts -------------------------------------------------------------------------

    def store(self, principal: Principal) -> Store:
        if not principal.admin:
            raise Forbidden("the admin API is for admins")
        if self.shared is None:
            raise Conflict("this gateway keeps no state: give it a `state` store")
        return self.shared.require()

    def in_file(self, ident: str) -> bool:
        """Whether the config file defines this id (its entry is the one served: the file's
        wins over one registered through the API). An id the catalog still has but neither
        the file nor the store does was deleted by another replica just now: not the file's."""
        shared = self.shared
        return shared is None or ident in shared.file_ids

    def file_sources(self) -> frozenset[str]:
        """The servers and tools entries the config file defines (as last read)."""
        return self.shared.file_sources if self.shared is not None else frozenset()

    @property
    def file_name(self) -> str:
        """The config file as errors name it (`toolbridge.yaml`, or what `-c` named)."""
        path = self.live.config_file
        return path.name if path is not None else "the config file"

    def shadowed(self, ident: str) -> bool:
        """Registered through the API, and not served: the config file defines that id too."""
        shared = self.shared
        return shared is not None and ident in shared.file_ids & shared.registered.ids

    def not_taken(self, ident: str) -> None:
        config = self.gateway.config
        taken = {s.id for s in config.servers} | {t.id for t in config.tools}
        taken |= {f.id for f in config.filters}
        if ident in taken:
            origin = self.file_name if self.in_file(ident) else "the API"
            raise Conflict(f"{ident!r} is already a source (defined in {origin}); pick another id")

    def writable(self, ident: str, kind: str, *, deleting: bool = False) -> None:
        """Conflict for an id the config file's entry is served for: the API changes only what
        it registered (and may delete what it registered that the file shadows)."""
        config = self.gateway.config
        in_file = {s.id for s in config.servers} | {t.id for t in config.tools}
        in_file |= {f.id for f in config.filters}
        if deleting and self.shadowed(ident):
            return
        if ident in in_file and self.in_file(ident):
            also = (
                ": the API's entry of that id is not served (delete it)"
                if self.shadowed(ident)
                else ""
            )
            raise Conflict(
                f"{kind} {ident!r} is defined in {self.file_name}: edit the file (the API "
                f"changes only the sources it registered){also}"
            )

    def in_no_filter_scope(self, ident: str, kind: str) -> None:
        """Conflict when a filter names this source in its `sources`: deleting the source would
        leave the filter scoped to nothing, silently."""
        scoped = [f.id for f in self.gateway.config.filters if ident in f.sources]
        refusal = scopes.scoped(kind, ident, scoped)
        if refusal is not None:
            raise refusal

    async def _trial_server(self, entry: dict[str, Any], document: bytes | None) -> None:
        """Load the source once, aside, before anything is stored."""
        ident = str(entry["id"])
        config = self.gateway.config

        def trial() -> str | None:
            with tempfile.TemporaryDirectory(prefix="toolbridge-trial-") as folder:
                made = materialize([ServerInClear(ident, entry, document)], [], Path(folder))
                if made.problems:
                    return made.problems[0]
                store = DocumentStore(cache_dir=self.gateway.cache_dir)
                if document is not None:
                    # An upload is one document: what it would read besides itself (a file of
                    # this host, say) is no part of it.
                    try:
                        data = store.get(Path(made.servers[0].spec).as_uri()).data
                    except DocumentError:
                        data = None  # not a document: load_server says why, below
                    outside = next(outside_refs(data), None)
                    if outside is not None:
                        pointer, ref = outside
                        return (
                            f"an uploaded document may refer only to itself; found $ref "
                            f"{ref!r} at {pointer}"
                        )
                status = load_server(made.servers[0], store, config.base_dir)
                if status.error is not None:
                    # Named as the admin API's listings name it, not by this passing folder.
                    return renamed(status.error, folder, "admin API: ")
                return _credential_problem(made.servers[0], status, self.gateway.upstream)

        # In anyio's threads, not asyncio's executor, which a stop awaits without end: a trial
        # stuck in the file's own code would hold it (serve ends past such threads in 3 s).
        problem = await anyio.to_thread.run_sync(trial)
        if problem is not None:
            raise ConfigError(f"servers[{ident}]: the source cannot be loaded: {problem}")

    async def applied(self, ident: str, since: Generation) -> dict[str, Any]:
        """Read the registered sources again and apply the one just written (and whatever else
        changed meanwhile), here and on the sibling workers: what changed since `since`, the
        generation served before the write (the change feed may have applied it first)."""
        assert self.shared is not None
        try:
            changed = await self.shared.refresh() | {ident}
        except StoreUnavailable as exc:
            # The write is committed: a 503 would have the client retry what is done (409).
            # The change feed applies it here, and everywhere, once the store answers again.
            logger.error("%s is stored, not applied here yet: %s", ident, exc)
            error = f"stored, not applied here yet: {exc}; it applies when the store answers"
            return {"changes": {"applied": False, "error": error}}
        try:
            return {"changes": await self.live.sources_registered(frozenset(changed), since)}
        except ToolbridgeError as exc:  # the config file, or a secret key, is wrong just now
            logger.error("%s is stored, not applied yet: %s", ident, exc)
            error = f"stored, not applied yet: {exc}; it applies with the next reload that succeeds"
            return {"changes": {"applied": False, "error": error}}

    def from_file(self, entry: Server | LocalTools | FilterEntry) -> dict[str, Any]:
        dumped = entry.model_dump(mode="json", by_alias=True, exclude_defaults=True)
        return {"id": entry.id, "origin": "config", "entry": _redact_entry(dumped)}


def _whole(query: Mapping[str, str], name: str, default: int | None, low: int, high: int) -> Any:
    """The query's whole number `name` (from `low` to `high`), or `default` when not given."""
    text = query.get(name)
    if text is None:
        return default
    if not (text.isascii() and text.isdigit() and low <= int(text) <= high):
        raise BadRequest(
            f"`{name}`: expected a whole number from {low} to {high}, found {text[:40]!r}"
        )
    return int(text)


def _server_body(body: Any, ident: str | None) -> tuple[dict[str, Any], bytes | None]:
    if not isinstance(body, dict):
        raise BadRequest("expected a server entry as a JSON object")
    entry = dict(body)
    document = entry.pop("document", None)
    if ident is not None and entry.setdefault("id", ident) != ident:
        raise BadRequest(
            f"the body's id {quoted(str(entry['id']))} is not the URL's {quoted(ident)}"
        )
    if document is None:
        return entry, None
    if not isinstance(document, str):
        raise BadRequest("`document`: expected the OpenAPI document's text (JSON or YAML)")
    if "spec" in entry:
        raise BadRequest("give `spec` (a path or URL) or `document` (its text), not both")
    entry["spec"] = "(uploaded)"
    return entry, document.encode("utf-8")


async def _kept_secrets(store: Store, ident: str, entry: dict[str, Any]) -> dict[str, Any]:
    """The entry with each secret sent as `REDACTED` (a listing sent back) put back as
    stored: what the store's write keeps. Unchanged without one, or without a stored entry
    to keep it from (the write says so)."""
    _, given = split(entry, server_secret_paths(entry))
    placeholders = [tuple(path) for path, value in given if value == REDACTED]
    if not placeholders:
        return entry
    unopened: list[str] = []
    stored = next((s for s in await store.servers.in_clear(unopened) if s.id == ident), None)
    if stored is None:
        return entry
    _, kept = split(stored.entry, placeholders)
    return join(entry, kept)


def _redact_entry(entry: dict[str, Any]) -> dict[str, Any]:
    """A config file's entry as listed: what the store seals of a registered one (credentials,
    header values, fixed arguments, URLs holding secrets: `server_secret_paths`) and secret
    valves hidden."""
    out, _ = split(entry, server_secret_paths(entry))
    if isinstance(out.get("valves"), dict):
        out["valves"] = redacted(out["valves"], secret_names(out["valves"], None))
    return out


def _server_json(record: ServerRecord) -> dict[str, Any]:
    return {
        "id": record.id,
        "origin": "api",
        "entry": dict(record.entry),
        "document": (
            {"sha256": record.document_sha256, "size": record.document_size}
            if record.document_sha256
            else None
        ),
        "updated_at": time_of(record.updated_at),
        "updated_by": record.updated_by,
        "revision": record.revision,
    }


Handler = Callable[..., Awaitable[Answer]]


def routes(
    admin: Admin,
    me: Any,
    endpoint: Callable[[Callable[[Request, Principal], Awaitable[Response]]], Any],
    read_json: Callable[[Request], Awaitable[Any]],
    reply: Callable[[Any, int], Response],
) -> list[Route]:
    """The admin API's and `/v1/me`'s routes, with the app's own authentication (`endpoint`),
    body reading and answers."""

    def json_route(
        path: str, handler: Handler, method: str, *, revised: bool = False, query: bool = False
    ) -> tuple[str, str, Callable[[Request], Awaitable[Response]]]:
        """`revised`: a write of one admin entry, which `If-Match` may make conditional;
        `query`: the handler takes the query's parameters (the last of each name)."""

        async def run(request: Request, principal: Principal) -> Response:
            args: list[Any] = [principal, *request.path_params.values()]
            if query:
                args.append(dict(request.query_params))
            if method in ("POST", "PUT"):
                args.append(await read_json(request))
            given = request.headers.getlist("if-match")  # a list may come in several fields
            options = {"expected": if_match(", ".join(given))} if revised and given else {}
            try:
                status, body = await handler(*args, **options)
            except ToolbridgeError as exc:
                # What was sent may be quoted in why it was refused: its secrets are not yet
                # the gateway's, which every answer is redacted with.
                said_without(exc, entry_secrets(args[-1]) if method in ("POST", "PUT") else [])
                raise
            response = reply(body, status)
            revision = revision_of(body) if method in ("POST", "PUT") else None
            if revision is not None:
                response.headers["etag"] = f'"{revision}"'
            return response

        return path, method, endpoint(run)

    return _by_path(
        [
            json_route("/v1/admin/servers", admin.servers, "GET"),
            json_route("/v1/admin/servers", admin.create_server, "POST"),
            json_route("/v1/admin/servers/{id}", admin.update_server, "PUT", revised=True),
            json_route("/v1/admin/servers/{id}", admin.delete_server, "DELETE", revised=True),
            *(
                route
                for files in (admin.tools, admin.filters)
                for route in (
                    json_route(f"/v1/admin/{files.kind.key}", files.listing, "GET"),
                    json_route(f"/v1/admin/{files.kind.key}", files.create, "POST"),
                    json_route(f"/v1/admin/{files.kind.key}/import", files.imported, "POST"),
                    json_route(
                        f"/v1/admin/{files.kind.key}/{{id}}", files.update, "PUT", revised=True
                    ),
                    json_route(
                        f"/v1/admin/{files.kind.key}/{{id}}", files.delete, "DELETE", revised=True
                    ),
                    json_route(
                        f"/v1/admin/{files.kind.key}/{{id}}/valves",
                        files.put_valves,
                        "PUT",
                        revised=True,
                    ),
                )
            ),
            json_route("/v1/admin/audit", admin.audit, "GET", query=True),
            json_route("/v1/me/valves/{tool}", me.valves, "GET"),
            json_route("/v1/me/valves/{tool}", me.put_valves, "PUT"),
            json_route("/v1/me/credentials", me.credentials, "GET"),
            json_route("/v1/me/credentials/{server}", me.put_credential, "PUT"),
            json_route("/v1/me/credentials/{server}", me.delete_credential, "DELETE"),
        ]
    )


def _by_path(
    handlers: list[tuple[str, str, Callable[[Request], Awaitable[Response]]]],
) -> list[Route]:
    """One route per path, taking each of its methods: a 405 then says every method the path
    takes in `Allow` (a route per method said only its own)."""
    methods: dict[str, dict[str, Callable[[Request], Awaitable[Response]]]] = {}
    for path, method, handler in handlers:
        methods.setdefault(path, {})[method] = handler

    def route(path: str, by_method: dict[str, Callable[[Request], Awaitable[Response]]]) -> Route:
        async def run(request: Request) -> Response:
            return await by_method[request.method if request.method != "HEAD" else "GET"](request)

        return Route(path, run, methods=list(by_method))

    return [route(path, by_method) for path, by_method in methods.items()]


def _credential_problem(server: Server, status: SourceStatus, upstream: Upstream) -> str | None:
    """What building the server's credentials finds wrong: an api_key place neither the entry
    nor the document gives, a header its auth would set twice. A `per_user` scheme is tried
    with a stand-in credential (each caller stores their own later)."""
    auth = server.auth
    if isinstance(auth, PerUserAuth):
        stand_in = auth.with_secret(dict.fromkeys(auth.fields, "stand-in-credential"))
        server = server.model_copy(update={"auth": stand_in})
    conversion = status.conversion
    try:
        Credentials(
            server,
            dict(getattr(conversion, "security_schemes", {})),
            upstream=upstream,
            operations=[tool.http for tool in conversion.tools] if conversion else [],
        )
    except ToolbridgeError as exc:
        return str(exc)
    return None
