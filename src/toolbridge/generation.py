"""One generation of the gateway's state: a config, its catalog, and everything derived from both.

A reload builds a new `Generation` beside the current one and the gateway swaps it in with one
assignment, so calls in flight finish on the generation they started with. What did not change
is carried over (API-key tables, rate-limit buckets, upstream credentials with their cached
tokens, each server's route: its client, destinations and requests in flight), so a reload
costs what changed. Servers with `on_change: hold` keep serving their
approved document until a new one is approved: the new version waits here, as `Held`.
No I/O of its own: the sources are loaded by the caller (`registry.load_sources`).
"""

from __future__ import annotations

import hashlib
import math
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

import orjson

from toolbridge.arguments import ArgumentValidator
from toolbridge.budgets import Budgets
from toolbridge.calllog import CallLog, open_audit_file
from toolbridge.changes import (
    Changes,
    SourceOutcome,
    ToolChanges,
    setting_changes,
    source_change,
    tool_changes,
)
from toolbridge.config import Config, PerUserAuth, RateLimit, Server
from toolbridge.errors import CredentialRequired, ToolbridgeError, ToolNotFound, quoted
from toolbridge.filters.chain import Chain, select
from toolbridge.filters.loader import FilterStatus
from toolbridge.fixed_arguments import Values
from toolbridge.identity import Authenticator
from toolbridge.limits import RateLimiter
from toolbridge.listings import Listings
from toolbridge.openapi.convert import Conversion
from toolbridge.outputs import OutputCheck
from toolbridge.policy import Policy
from toolbridge.redaction import Secrets, secrets_of
from toolbridge.registry import Catalog, SourceStatus, build_catalog
from toolbridge.search import SearchIndexes
from toolbridge.shared_limits import SharedRateLimiter
from toolbridge.tools import Tool
from toolbridge.toolsets import Toolset, build_toolsets
from toolbridge.upstream.credentials import Credentials
from toolbridge.upstream.routes import Route, route
from toolbridge.upstream.seam import Timeouts, Upstream
from toolbridge.upstream.transport import Clients, server_transport

MAX_OWN_CREDENTIALS = 4096
"""Callers' own credentials kept built per generation; the least recently built go first."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Held:
    """A new version of an `on_change: hold` source's document, waiting for approval."""

    status: SourceStatus
    """The source as the new document makes it (not served)."""
    digest: str
    """The sha256 of the new document (and the files it refers to)."""
    approved_digest: str
    """The sha256 of the version still served."""
    changes: ToolChanges
    """What approving it would change."""


@dataclass(slots=True, kw_only=True)
class Generation:
    """Everything one catalog needs to serve calls; replaced whole, never changed in place
    (but for what it keeps as it serves: argument validators, list answers)."""

    config: Config
    catalog: Catalog
    policy: Policy
    authenticator: Authenticator
    limiter: RateLimiter | SharedRateLimiter | None
    servers: dict[str, Server]
    credentials: dict[str, Credentials]
    routes: dict[str, Route]
    """Each loaded server's way out: its client, destination policy and concurrency cap."""
    call_log: CallLog | None
    approved: dict[str, str]
    """For `on_change: hold` servers: the digest of the document being served."""
    held: dict[str, Held]
    filters: tuple[FilterStatus, ...] = ()
    """The config's filters as loaded (each with its error when it is down)."""
    secrets: Secrets = field(default_factory=Secrets)
    """Every secret of the config and its local tools, to redact wherever they would leave
    (grows by the tokens fetched for upstreams, as they arrive)."""
    loaded_at: float = field(default_factory=time.time)
    validators: dict[str, ArgumentValidator] = field(default_factory=dict)
    chains: dict[str, Chain] = field(default_factory=dict)
    own: OrderedDict[tuple[str, str, str], Credentials] = field(default_factory=OrderedDict)
    """Callers' own credentials for `per_user` servers, by (server, user, digest of the secret)."""
    fixed: Mapping[str, Values] = field(default_factory=dict)
    """Per server, the arguments each operation's calls are given by the config, as its tools
    were loaded with (`fixed_arguments`)."""

    def own_credentials(
        self,
        server: Server,
        auth: PerUserAuth,
        user: str,
        secret: Mapping[str, str],
        env: Environment,
    ) -> Credentials:
        """A `per_user` server's credentials for one caller: built once per stored secret."""
        digest = hashlib.sha256(orjson.dumps(dict(secret), option=orjson.OPT_SORT_KEYS)).hexdigest()
        key = (server.id, user, digest)
        found = self.own.get(key)
        if found is None:
            try:
                concrete = auth.with_secret(secret)
            except ValueError as exc:
                raise CredentialRequired(
                    f"the credential {user!r} stored for server {server.id!r} does not fit its "
                    f"{auth.scheme!r} scheme ({exc}): store it again with "
                    f"PUT /v1/me/credentials/{server.id}"
                ) from None
            status = next((s for s in self.catalog.sources if s.id == server.id), None)
            conversion = status.conversion if status is not None else None
            way = self.routes.get(server.id)
            found = Credentials(
                server.model_copy(update={"auth": concrete}),
                dict(getattr(conversion, "security_schemes", {})),
                upstream=way.client if way is not None else env.upstream,
                operations=[t.http for t in conversion.tools] if conversion else [],
                timeouts=timeouts(server.timeout),
            )
            self.own[key] = found
            if len(self.own) > MAX_OWN_CREDENTIALS:
                self.own.popitem(last=False)
        return found

    def chain(self, tool: Tool) -> Chain:
        """The filters around this tool's calls; () at the cost of one test when there are none."""
        if not self.filters:
            return ()
        found = self.chains.get(tool.name)
        if found is None:
            found = self.chains[tool.name] = select(self.filters, tool)
        return found

    toolsets: dict[str, Toolset] = field(default_factory=dict)
    """The config's toolsets over this catalog, by id."""
    budgets: Budgets = field(default_factory=lambda: Budgets(()))
    """The servers' result budgets."""
    search: SearchIndexes = field(default_factory=SearchIndexes)
    """Search indexes over this catalog and its toolsets, built on first use."""
    listings: Listings = field(default_factory=Listings)
    """Visible sets and list answers, kept for this generation only."""

    def validator(self, tool: Tool) -> ArgumentValidator:
        # Compiled on first use and kept: the per-call cost is then one dictionary lookup.
        found = self.validators.get(tool.name)
        if found is None:
            found = self.validators[tool.name] = ArgumentValidator(tool)
        return found

    outputs: dict[str, OutputCheck] = field(default_factory=dict)

    def output_check(self, tool: Tool) -> OutputCheck:
        found = self.outputs.get(tool.name)
        if found is None:
            found = self.outputs[tool.name] = OutputCheck(tool)
        return found


@dataclass(frozen=True, slots=True, kw_only=True)
class Environment:
    """What a generation is built with that does not come from the config."""

    upstream: Upstream
    clients: Clients | None = None
    """The clients servers with their own transport (CA, client certificate, proxy) send
    through; without it, each generation opens its own."""
    workers: int = 1
    """Processes serving this config: without a shared store, each takes its share of a limit."""
    default_log: CallLog | None = None
    """Where call lines go when the config has no `audit`."""
    open_log: Callable[[Path], CallLog] | None = None
    """Opens an `audit.file`; without it, the file is opened for appending."""


def assemble(
    config: Config,
    statuses: list[SourceStatus],
    *,
    previous: Generation | None,
    env: Environment,
    filters: tuple[FilterStatus, ...] = (),
) -> Generation:
    """A generation from loaded sources (and filters); the previous one lends what did not
    change."""
    if previous is not None:
        statuses = [keep_last_good(s, previous.catalog) for s in statuses]
    servers = {server.id: server for server in config.servers}
    approved: dict[str, str] = {}
    held: dict[str, Held] = {}
    for index, status in enumerate(statuses):
        server = servers.get(status.id)
        if server is not None and server.on_change == "hold":
            statuses[index] = _hold(server, status, previous, approved, held)
    routes = _routes(config, statuses, previous, env)
    credentials = _credentials(servers, statuses, previous, routes)
    for index, status in enumerate(statuses):
        way, made = routes.get(status.id), credentials.get(status.id)
        problem = way if isinstance(way, str) else made if isinstance(made, str) else None
        if status.id in servers and problem is not None:
            # Credentials or a transport that cannot work keep only this source down.
            statuses[index] = replace(status, conversion=None, error=problem)
    budgets = Budgets(config.servers)
    catalog = build_catalog(statuses)
    fixed: dict[str, Values] = {}
    for status in catalog.sources:
        if isinstance(status.conversion, Conversion) and status.conversion.fixed:
            fixed[status.id] = status.conversion.fixed
    if budgets:  # a tool whose answers are reshaped promises no output schema
        tools = {tool.name: tool for tool in budgets.reshape(catalog)}
        catalog = replace(catalog, tools=tools)
    return Generation(
        config=config,
        catalog=catalog,
        toolsets=build_toolsets(config, catalog),
        budgets=budgets,
        secrets=secrets_of(
            config,
            catalog,
            (f.filter for f in filters if f.filter),
            fixed=[given for values in fixed.values() for given in values.values()],
        ),
        fixed=fixed,
        policy=Policy.from_config(config),
        authenticator=_authenticator(config, previous),
        limiter=_limiter(config, previous, env.workers),
        servers=servers,
        credentials={k: v for k, v in credentials.items() if isinstance(v, Credentials)},
        routes={k: v for k, v in routes.items() if isinstance(v, Route)},
        call_log=_call_log(config, previous, env),
        approved=approved,
        held=held,
        filters=filters,
    )


def approve(previous: Generation, source: str, env: Environment) -> Generation:
    """The generation with the held version of `source` served (and approved)."""
    held = previous.held[source]
    statuses = [held.status if s.id == source else s for s in previous.catalog.sources]
    base = replace(previous, approved={**previous.approved, source: held.digest})
    generation = assemble(
        previous.config, statuses, previous=base, env=env, filters=previous.filters
    )
    generation.held = {k: v for k, v in previous.held.items() if k != source}
    return generation


def restore(
    previous: Generation, source: str, conversion: Conversion, digest: str, env: Environment
) -> Generation:
    """The generation with an earlier approved version of `source` served (`conversion`, from
    documents whose digest is `digest`), and the version `previous` serves held."""
    current = _source(previous, source)
    if current is None or current.conversion is None or current.digest is None:
        raise ToolNotFound(f"source {quoted(source)} has no version to hold")
    served = replace(current, conversion=conversion, digest=digest, error=None)
    statuses = [served if s.id == source else s for s in previous.catalog.sources]
    base = replace(previous, approved={**previous.approved, source: digest})
    generation = assemble(
        previous.config, statuses, previous=base, env=env, filters=previous.filters
    )
    generation.held = {
        **previous.held,
        source: Held(
            status=current,
            digest=current.digest,
            approved_digest=digest,
            changes=tool_changes(conversion.tools, current.conversion.tools),
        ),
    }
    return generation


def changes(before: Generation | None, after: Generation) -> Changes:
    """What going from `before` to `after` changes, per source, tool and setting."""
    old_sources = {s.id: s for s in before.catalog.sources} if before else {}
    old_entries = _entries(before.config) if before else {}
    new_entries = _entries(after.config)
    outcomes: list[SourceOutcome] = []
    for status in after.catalog.sources:
        old = old_sources.get(status.id)
        old_tools = old.conversion.tools if old and old.conversion else ()
        new_tools = status.conversion.tools if status.conversion else ()
        held = after.held.get(status.id)
        change = source_change(
            status.id,
            before=old_entries.get(status.id) if old is not None else None,
            after=new_entries.get(status.id),
            tools_changed=bool(tool_changes(old_tools, new_tools)),
            failed=not status.ok,
            held=held is not None,
            recovered=old is not None and not old.ok and status.ok,
        )
        error = status.error
        if change == "held" and held is not None:
            error = f"document changed (sha256 {held.digest[:12]}); held for approval"
        outcomes.append(
            SourceOutcome(id=status.id, change=change, tools=len(new_tools), error=error)
        )
    outcomes.extend(
        SourceOutcome(id=ident, change="removed", tools=0)
        for ident in old_sources
        if ident not in {s.id for s in after.catalog.sources}
    )
    return Changes(
        sources=tuple(outcomes),
        tools=tool_changes(before.catalog if before else (), after.catalog),
        settings=setting_changes(before.config, after.config) if before else (),
        count=len(after.catalog),
    )


def keep_last_good(status: SourceStatus, catalog: Catalog) -> SourceStatus:
    """A source that fails on reload keeps the version it had, and says why it did not update."""
    if status.ok or status.conversion is not None:
        return status  # up, or down in part but still serving what it has
    old = next((s for s in catalog.sources if s.id == status.id), None)
    if old is None or old.conversion is None:
        return status
    return replace(status, conversion=old.conversion, digest=old.digest)


def timeouts(total: float) -> Timeouts:
    """A server's limits: its `timeout` in all, at most 10 s of it to connect."""
    return Timeouts(connect=min(10.0, total), total=total)


def _hold(
    server: Server,
    status: SourceStatus,
    previous: Generation | None,
    approved: dict[str, str],
    held: dict[str, Held],
) -> SourceStatus:
    """The status to serve for a held server; records what is approved and what waits."""
    if status.digest is None or status.conversion is None:
        if previous is not None and status.id in previous.approved:
            approved[status.id] = previous.approved[status.id]
        return status  # down: nothing new to hold
    before = previous.approved.get(status.id) if previous is not None else None
    old = _source(previous, status.id)
    if previous is not None and status is old and status.id in previous.held:
        # Not read again (a reload of other sources): what was held still waits for approval.
        approved[status.id] = previous.approved[status.id]
        held[status.id] = previous.held[status.id]
        return status
    entry_changed = previous is not None and previous.servers.get(status.id) != server
    if (
        before is None
        or before == status.digest
        or entry_changed  # the operator's own edit of this entry applies
        or old is None
        or old.conversion is None
    ):
        approved[status.id] = status.digest
        return status
    approved[status.id] = before
    held[status.id] = Held(
        status=status,
        digest=status.digest,
        approved_digest=before,
        changes=tool_changes(old.conversion.tools, status.conversion.tools),
    )
    return replace(old, loaded_at=status.loaded_at)


def _source(generation: Generation | None, ident: str) -> SourceStatus | None:
    if generation is None:
        return None
    return next((s for s in generation.catalog.sources if s.id == ident), None)


def _routes(
    config: Config, statuses: list[SourceStatus], previous: Generation | None, env: Environment
) -> dict[str, Route | str]:
    """Each loaded server's route, or the error (an unreadable CA file, ...) that keeps it down."""
    clients = env.clients or Clients(env.upstream)
    servers = {server.id: server for server in config.servers}
    out: dict[str, Route | str] = {}
    for status in statuses:
        server = servers.get(status.id)
        if server is None or status.conversion is None:
            continue
        transport = server_transport(server, config.base_dir, config.proxy_environment)
        try:
            client = clients.client(transport, server.id)
        except ToolbridgeError as exc:
            out[server.id] = str(exc)
            continue
        named = {t.http.base_url for t in status.conversion.tools if t.http.base_url}
        kept = previous.routes.get(server.id) if previous is not None else None
        out[server.id] = route(server, client, sorted(named), kept, env.workers)
    return out


def _credentials(
    servers: dict[str, Server],
    statuses: list[SourceStatus],
    previous: Generation | None,
    routes: dict[str, Route | str],
) -> dict[str, Credentials | str]:
    """Each loaded server's credentials, or the error that keeps that server down."""
    out: dict[str, Credentials | str] = {}
    for status in statuses:
        server = servers.get(status.id)
        way = routes.get(status.id)
        if server is None or status.conversion is None or not isinstance(way, Route):
            continue
        schemes = dict(getattr(status.conversion, "security_schemes", {}))
        kept = previous.credentials.get(server.id) if previous is not None else None
        if kept is not None and previous is not None and previous.servers.get(server.id) == server:
            old = _source(previous, server.id)
            if (
                old is not None
                and _security(old) == _security(status)
                and kept.upstream is way.client
            ):
                out[server.id] = kept  # same entry, same schemes: keep its cached tokens
                continue
        try:
            out[server.id] = Credentials(
                server,
                schemes,
                upstream=way.client,
                operations=[tool.http for tool in status.conversion.tools],
                timeouts=timeouts(server.timeout),
            )
        except ToolbridgeError as exc:
            out[server.id] = str(exc)
    return out


def _security(status: SourceStatus) -> object:
    """What a server's credentials depend on besides its entry: schemes and operations."""
    conversion = status.conversion
    if conversion is None:
        return None
    return (
        dict(getattr(conversion, "security_schemes", {})),
        [tool.http.security for tool in conversion.tools],
    )


def _authenticator(config: Config, previous: Generation | None) -> Authenticator:
    if previous is not None and previous.config.auth is not None and config.auth is not None:
        old, new = previous.config.auth, config.auth
        if (old.api_keys, old.jwt) == (new.api_keys, new.jwt):
            return previous.authenticator
    elif previous is not None and previous.config.auth is None and config.auth is None:
        return previous.authenticator
    return Authenticator(config.auth, base_dir=config.base_dir)


def _limiter(
    config: Config, previous: Generation | None, workers: int
) -> RateLimiter | SharedRateLimiter | None:
    limit: RateLimit | None = config.auth.rate_limit if config.auth is not None else None
    if limit is None:
        return None
    old = previous.config.auth.rate_limit if previous and previous.config.auth else None
    if previous is not None and old == limit:
        return previous.limiter  # the same limit keeps its buckets
    if limit.redis is not None:
        # Counted once in Redis for every process of every replica.
        return SharedRateLimiter(
            limit.redis, limit.per_minute, limit.burst, per_tool=limit.per_tool, workers=workers
        )
    # Without a shared store, each of N worker processes allows its share: never more than
    # the configured limit in all (a caller may meet it early when load spreads unevenly).
    share = max(1, workers)
    return RateLimiter(
        limit.per_minute / share,
        max(1, math.floor(limit.burst / share)),
        per_tool=limit.per_tool,
    )


def _call_log(config: Config, previous: Generation | None, env: Environment) -> CallLog | None:
    if config.audit is None:
        return env.default_log
    if previous is not None and previous.config.audit == config.audit:
        return previous.call_log
    if config.audit.file == "-":
        import sys

        return CallLog(sys.stdout.buffer)
    path = config.base_dir / config.audit.file
    if env.open_log is not None:
        return env.open_log(path)
    return open_audit_file(path)


def _entries(config: Config) -> dict[str, dict[str, object]]:
    """Each source's config entry as plain values, by id (to tell whether it was edited)."""
    entries: dict[str, dict[str, object]] = {
        s.id: s.model_dump(mode="json") for s in config.servers
    }
    entries.update({t.id: t.model_dump(mode="json") for t in config.tools})
    return entries
