"""The admin API: servers and local tools registered, changed and removed while serving.

Each entry is checked as a `toolbridge.yaml` entry is (the same keys, the same messages, with
`servers[ID]` standing for the file and line), and its source is loaded once before anything is
stored, so a document that cannot be read or a tool file that does not load is refused with
the error a reload would give. Then it is stored (with its secrets encrypted, its audit entry
and its change-feed entry) and applied: this worker and its siblings reload that source, the
other replicas follow the feed. Sources the config file defines are read-only here: the file
is their truth. Listings never carry a secret.

What it trusts: callers are admins (checked here, for every route); bodies are untrusted JSON.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import tempfile
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from toolbridge.config import LocalTools, Server
from toolbridge.config_file import validate_entry
from toolbridge.errors import (
    BadRequest,
    ConfigError,
    Conflict,
    Forbidden,
    SourceError,
    ToolNotFound,
)
from toolbridge.gateway import Gateway
from toolbridge.local.loader import load_tools
from toolbridge.openapi.documents import DocumentStore
from toolbridge.openapi.fetching import http_fetcher
from toolbridge.policy import Principal
from toolbridge.registry import load_server
from toolbridge.serve.live import Live
from toolbridge.serve.shared import Shared
from toolbridge.state.registered import materialize
from toolbridge.state.store import Store
from toolbridge.state.values import REDACTED, ServerInClear, ServerRecord, ToolInClear, ToolRecord

SECRET_NAME = re.compile(r"key|token|secret|password", re.IGNORECASE)
"""Valves whose names say this are encrypted at rest (and never listed), as are those named in
a request's `secret`."""
MAX_TOOL_BYTES = 1024 * 1024
IMPORT_TIMEOUT = 30.0
Answer = tuple[int, dict[str, Any]]


class Admin:
    """The admin API's handlers, over plain values: the HTTP layer reads and writes JSON."""

    def __init__(self, gateway: Gateway, live: Live, shared: Shared | None) -> None:
        self.gateway = gateway
        self.live = live
        self.shared = shared

    # -- servers ---------------------------------------------------------------------------

    async def servers(self, principal: Principal) -> Answer:
        store = self._store(principal)
        listed = [self._from_file(s) for s in self.gateway.config.servers if self._in_file(s.id)]
        listed += [_server_json(r) for r in await store.servers.list()]
        return 200, {"servers": listed}

    async def create_server(self, principal: Principal, body: Any) -> Answer:
        store = self._store(principal)
        entry, document = _server_body(body, None)
        server = validate_entry(Server, entry, f"servers[{entry.get('id')}]")
        self._not_taken(server.id)
        await self._trial_server(entry, document)
        record = await store.servers.create(entry, document=document, by=principal.id)
        return 201, {"server": _server_json(record), **await self._applied(server.id)}

    async def update_server(self, principal: Principal, ident: str, body: Any) -> Answer:
        store = self._store(principal)
        self._writable(ident, "server")
        entry, document = _server_body(body, ident)
        validate_entry(Server, entry, f"servers[{ident}]")
        await self._trial_server(entry, document)
        record = await store.servers.update(entry, document=document, by=principal.id)
        if record is None:
            raise ToolNotFound(f"no server {ident!r} was registered through the API")
        return 200, {"server": _server_json(record), **await self._applied(ident)}

    async def delete_server(self, principal: Principal, ident: str) -> Answer:
        store = self._store(principal)
        self._writable(ident, "server")
        if not await store.servers.delete(ident, by=principal.id):
            raise ToolNotFound(f"no server {ident!r} was registered through the API")
        return 200, {"deleted": ident, **await self._applied(ident)}

    # -- local tools -----------------------------------------------------------------------

    async def tools(self, principal: Principal) -> Answer:
        store = self._store(principal)
        listed = [self._from_file(t) for t in self.gateway.config.tools if self._in_file(t.id)]
        for record in await store.tools.list():
            valves = await store.tools.get_valves(record.id)
            listed.append(_tool_json(record, dict(valves.values) if valves else None))
        return 200, {"tools": listed}

    async def create_tool(self, principal: Principal, body: Any) -> Answer:
        store = self._store(principal)
        tool_id, content, entry, valves, secret = _tool_body(body, None)
        self._not_taken(tool_id)
        await self._trial_tool(tool_id, content, entry, valves)
        record = await store.tools.create(
            tool_id, content, entry, valves=valves, secret=secret, by=principal.id
        )
        return 201, {"tool": _tool_json(record, valves), **await self._applied(tool_id)}

    async def update_tool(self, principal: Principal, ident: str, body: Any) -> Answer:
        store = self._store(principal)
        self._writable(ident, "tools")
        tool_id, content, entry, valves, secret = _tool_body(body, ident)
        await self._trial_tool(tool_id, content, entry, valves)
        record = await store.tools.update(
            tool_id, content, entry, valves=valves, secret=secret, by=principal.id
        )
        if record is None:
            raise ToolNotFound(f"no tools entry {ident!r} was registered through the API")
        return 200, {"tool": _tool_json(record, valves), **await self._applied(tool_id)}

    async def delete_tool(self, principal: Principal, ident: str) -> Answer:
        store = self._store(principal)
        self._writable(ident, "tools")
        if not await store.tools.delete(ident, by=principal.id):
            raise ToolNotFound(f"no tools entry {ident!r} was registered through the API")
        return 200, {"deleted": ident, **await self._applied(ident)}

    async def import_tool(self, principal: Principal, body: Any) -> Answer:
        """`{id, url, sha256, ...entry}`: the file at `url`, taken only if its sha256 is that."""
        self._store(principal)
        if not isinstance(body, dict):
            raise BadRequest("expected a JSON object: {id, url, sha256, ...}")
        fields = dict(body)
        url, expected = fields.pop("url", None), fields.pop("sha256", None)
        if not isinstance(url, str) or not url.lower().startswith(("http://", "https://")):
            raise BadRequest("`url`: expected the http(s) URL of a tool file")
        if not isinstance(expected, str) or not re.fullmatch(r"[0-9a-fA-F]{64}", expected):
            raise BadRequest("`sha256`: expected the file's SHA-256, 64 hex digits")
        fetch = http_fetcher(timeout=IMPORT_TIMEOUT, max_bytes=MAX_TOOL_BYTES)
        content = await asyncio.to_thread(fetch, url)
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
            raise BadRequest(f"{url}: not UTF-8 text, so not a tool file", status=422) from None
        return await self.create_tool(principal, fields)

    async def put_tool_valves(self, principal: Principal, ident: str, body: Any) -> Answer:
        store = self._store(principal)
        self._writable(ident, "tools")
        if not isinstance(body, dict):
            raise BadRequest("expected the Valves as a JSON object")
        stored = next((t for t in await store.tools.in_clear() if t.id == ident), None)
        if stored is None:
            raise ToolNotFound(f"no tools entry {ident!r} was registered through the API")
        values = {k: v for k, v in body.items() if k != "secret"}
        secret = secret_names(values, body.get("secret"))
        entry = {k: v for k, v in stored.entry.items() if k != "valves"}
        await self._trial_tool(ident, stored.content, entry, values)
        await store.tools.put_valves(ident, values, secret=secret, by=principal.id)
        shown = _redacted(values, secret)
        return 200, {"tool": ident, "valves": shown, **await self._applied(ident)}

    async def audit(self, principal: Principal) -> Answer:
        """The newest entries of the admin audit log: who changed what, when (no values)."""
        store = self._store(principal)
        return 200, {
            "audit": [
                {
                    "id": e.id,
                    "at": _time(e.at),
                    "actor": e.actor,
                    "action": e.action,
                    "target": e.target,
                    "detail": dict(e.detail),
                }
                for e in await store.audit_log(limit=200)
            ]
        }

    # -- the parts -------------------------------------------------------------------------

    def _store(self, principal: Principal) -> Store:
        if not principal.admin:
            raise Forbidden("the admin API is for admins")
        if self.shared is None:
            raise Conflict("this gateway keeps no state: give it a `state` store")
        return self.shared.require()

    def _in_file(self, ident: str) -> bool:
        return self.shared is None or ident not in self.shared.registered.ids

    def _not_taken(self, ident: str) -> None:
        config = self.gateway.config
        taken = {s.id for s in config.servers} | {t.id for t in config.tools}
        taken |= {f.id for f in config.filters}
        if ident in taken:
            origin = "toolbridge.yaml" if self._in_file(ident) else "the API"
            raise Conflict(f"{ident!r} is already a source (defined in {origin}); pick another id")

    def _writable(self, ident: str, kind: str) -> None:
        config = self.gateway.config
        in_file = {s.id for s in config.servers} | {t.id for t in config.tools}
        if ident in in_file and self._in_file(ident):
            raise Conflict(
                f"{kind} {ident!r} is defined in toolbridge.yaml: edit the file (the API "
                "changes only the sources it registered)"
            )

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
                return load_server(made.servers[0], store, config.base_dir).error

        problem = await asyncio.to_thread(trial)
        if problem is not None:
            raise ConfigError(f"servers[{ident}]: the source cannot be loaded: {problem}")

    async def _trial_tool(
        self, ident: str, content: str, entry: dict[str, Any], valves: Mapping[str, Any] | None
    ) -> None:
        with_valves = {**entry, "valves": dict(valves or {})}

        def trial() -> None:
            with tempfile.TemporaryDirectory(prefix="toolbridge-trial-") as folder:
                made = materialize([], [ToolInClear(ident, content, with_valves)], Path(folder))
                if made.problems:
                    raise ConfigError(made.problems[0])
                load_tools(made.tools[0], Path(folder))

        try:
            await asyncio.to_thread(trial)
        except SourceError as exc:
            raise ConfigError(f"tools[{ident}]: the file cannot be loaded: {exc}") from None

    async def _applied(self, ident: str) -> dict[str, Any]:
        """Read the registered sources again and apply the one just written (and whatever else
        changed meanwhile), here and on the sibling workers."""
        assert self.shared is not None
        changed = await self.shared.refresh() | {ident}
        return {"changes": await self.live.sources_registered(frozenset(changed))}

    def _from_file(self, entry: Server | LocalTools) -> dict[str, Any]:
        dumped = entry.model_dump(mode="json", by_alias=True, exclude_defaults=True)
        return {"id": entry.id, "origin": "config", "entry": _redact_entry(dumped)}


def _server_body(body: Any, ident: str | None) -> tuple[dict[str, Any], bytes | None]:
    if not isinstance(body, dict):
        raise BadRequest("expected a server entry as a JSON object")
    entry = dict(body)
    document = entry.pop("document", None)
    if ident is not None and entry.setdefault("id", ident) != ident:
        raise BadRequest(f"the body's id {entry['id']!r} is not the URL's {ident!r}")
    if document is None:
        return entry, None
    if not isinstance(document, str):
        raise BadRequest("`document`: expected the OpenAPI document's text (JSON or YAML)")
    if "spec" in entry:
        raise BadRequest("give `spec` (a path or URL) or `document` (its text), not both")
    entry["spec"] = "(uploaded)"
    return entry, document.encode("utf-8")


def _tool_body(
    body: Any, ident: str | None
) -> tuple[str, str, dict[str, Any], dict[str, Any] | None, frozenset[str]]:
    if not isinstance(body, dict):
        raise BadRequest("expected a tools entry as a JSON object: {id, content, ...}")
    entry = dict(body)
    content = entry.pop("content", None)
    valves = entry.pop("valves", None)
    secret = secret_names(valves or {}, entry.pop("secret", None))
    if ident is not None and entry.setdefault("id", ident) != ident:
        raise BadRequest(f"the body's id {entry['id']!r} is not the URL's {ident!r}")
    if not isinstance(content, str):
        raise BadRequest("`content`: expected the tool file's text (frontmatter included)")
    if len(content.encode("utf-8")) > MAX_TOOL_BYTES:
        raise BadRequest(f"`content` is over {MAX_TOOL_BYTES} bytes", status=413)
    if "path" in entry or "module" in entry:
        raise BadRequest("a registered tool is its `content`: leave out `path` and `module`")
    if valves is not None and not isinstance(valves, dict):
        raise BadRequest("`valves`: expected a JSON object")
    ident = str(entry.get("id"))
    validate_entry(LocalTools, {**entry, "path": "(registered)"}, f"tools[{ident}]")
    return ident, content, entry, valves, secret


def secret_names(values: Mapping[str, Any], named: Any) -> frozenset[str]:
    if named is not None and (
        not isinstance(named, list) or not all(isinstance(n, str) for n in named)
    ):
        raise BadRequest("`secret`: expected a list of valve names")
    return frozenset(named or ()) | {k for k in values if SECRET_NAME.search(k)}


def _redacted(values: Mapping[str, Any], secret: frozenset[str]) -> dict[str, Any]:
    return {k: REDACTED if k in secret else v for k, v in values.items()}


def _redact_entry(entry: dict[str, Any]) -> dict[str, Any]:
    """A config file's entry as listed: credentials, header values and secret valves hidden."""
    out = dict(entry)
    auth = out.get("auth")
    if isinstance(auth, dict):
        kept = ("type", "scheme", "name", "in", "header", "token_url", "client_id", "scopes")
        out["auth"] = {k: (v if k in kept else REDACTED) for k, v in auth.items()}
    if isinstance(out.get("headers"), dict):
        out["headers"] = dict.fromkeys(out["headers"], REDACTED)
    if isinstance(out.get("valves"), dict):
        out["valves"] = _redacted(out["valves"], secret_names(out["valves"], None))
    return out


def _time(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


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
        "updated_at": _time(record.updated_at),
        "updated_by": record.updated_by,
    }


def _tool_json(record: ToolRecord, valves: Mapping[str, Any] | None) -> dict[str, Any]:
    shown_valves = _redacted(valves, secret_names(valves, None)) if valves else None
    return {
        "id": record.id,
        "origin": "api",
        "entry": dict(record.entry),
        "content_sha256": record.content_sha256,
        "valves": shown_valves,
        "updated_at": _time(record.updated_at),
        "updated_by": record.updated_by,
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

    def json_route(path: str, handler: Handler, method: str) -> Route:
        async def run(request: Request, principal: Principal) -> Response:
            args: list[Any] = [principal, *request.path_params.values()]
            if method in ("POST", "PUT"):
                args.append(await read_json(request))
            status, body = await handler(*args)
            return reply(body, status)

        return Route(path, endpoint(run), methods=[method])

    return [
        json_route("/v1/admin/servers", admin.servers, "GET"),
        json_route("/v1/admin/servers", admin.create_server, "POST"),
        json_route("/v1/admin/servers/{id}", admin.update_server, "PUT"),
        json_route("/v1/admin/servers/{id}", admin.delete_server, "DELETE"),
        json_route("/v1/admin/tools", admin.tools, "GET"),
        json_route("/v1/admin/tools", admin.create_tool, "POST"),
        json_route("/v1/admin/tools/import", admin.import_tool, "POST"),
        json_route("/v1/admin/tools/{id}", admin.update_tool, "PUT"),
        json_route("/v1/admin/tools/{id}", admin.delete_tool, "DELETE"),
        json_route("/v1/admin/tools/{id}/valves", admin.put_tool_valves, "PUT"),
        json_route("/v1/admin/audit", admin.audit, "GET"),
        json_route("/v1/me/valves/{tool}", me.valves, "GET"),
        json_route("/v1/me/valves/{tool}", me.put_valves, "PUT"),
        json_route("/v1/me/credentials", me.credentials, "GET"),
        json_route("/v1/me/credentials/{server}", me.put_credential, "PUT"),
        json_route("/v1/me/credentials/{server}", me.delete_credential, "DELETE"),
    ]
