"""One generation of the gateway's state: a config, its catalog, and everything derived from both.

A reload builds a new `Generation` beside the current one and the gateway swaps it in with one
assignment, so calls in flight finish on the generation they started with. What did not change
is carried over (API-key tables, rate-limit buckets, upstream credentials with their cached
tokens), so a reload costs what changed. Servers with `on_change: hold` keep serving their
approved document until a new one is approved: the new version waits here, as `Held`.
No I/O of its own: the sources are loaded by the caller (`registry.load_sources`).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

from toolbridge.arguments import ArgumentValidator
from toolbridge.calllog import CallLog
from toolbridge.changes import (
    Changes,
    SourceOutcome,
    ToolChanges,
    setting_changes,
    source_change,
    tool_changes,
)
from toolbridge.config import Config, RateLimit, Server
from toolbridge.errors import ToolbridgeError
from toolbridge.identity import Authenticator
from toolbridge.limits import RateLimiter
from toolbridge.listings import Listings
from toolbridge.policy import Policy
from toolbridge.registry import Catalog, SourceStatus, build_catalog
from toolbridge.tools import Tool
from toolbridge.upstream.credentials import Credentials
from toolbridge.upstream.seam import Timeouts, Upstream


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
    limiter: RateLimiter | None
    servers: dict[str, Server]
    credentials: dict[str, Credentials]
    call_log: CallLog | None
    approved: dict[str, str]
    """For `on_change: hold` servers: the digest of the document being served."""
    held: dict[str, Held]
    loaded_at: float = field(default_factory=time.time)
    validators: dict[str, ArgumentValidator] = field(default_factory=dict)
    listings: Listings = field(default_factory=Listings)
    """Visible sets and list answers, kept for this generation only."""

    def validator(self, tool: Tool) -> ArgumentValidator:
        # Compiled on first use and kept: the per-call cost is then one dictionary lookup.
        found = self.validators.get(tool.name)
        if found is None:
            found = self.validators[tool.name] = ArgumentValidator(tool)
        return found


@dataclass(frozen=True, slots=True, kw_only=True)
class Environment:
    """What a generation is built with that does not come from the config."""

    upstream: Upstream
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
) -> Generation:
    """A generation from loaded sources; the previous one lends what did not change."""
    if previous is not None:
        statuses = [keep_last_good(s, previous.catalog) for s in statuses]
    servers = {server.id: server for server in config.servers}
    approved: dict[str, str] = {}
    held: dict[str, Held] = {}
    for index, status in enumerate(statuses):
        server = servers.get(status.id)
        if server is not None and server.on_change == "hold":
            statuses[index] = _hold(server, status, previous, approved, held)
    credentials = _credentials(servers, statuses, previous, env)
    for index, status in enumerate(statuses):
        problem = credentials.get(status.id) if status.id in servers else None
        if isinstance(problem, str):
            # Credentials that cannot work keep only this source down.
            statuses[index] = replace(status, conversion=None, error=problem)
    return Generation(
        config=config,
        catalog=build_catalog(statuses),
        policy=Policy.from_config(config),
        authenticator=_authenticator(config, previous),
        limiter=_limiter(config, previous, env.workers),
        servers=servers,
        credentials={k: v for k, v in credentials.items() if isinstance(v, Credentials)},
        call_log=_call_log(config, previous, env),
        approved=approved,
        held=held,
    )


def approve(previous: Generation, source: str, env: Environment) -> Generation:
    """The generation with the held version of `source` served (and approved)."""
    held = previous.held[source]
    statuses = [held.status if s.id == source else s for s in previous.catalog.sources]
    base = replace(previous, approved={**previous.approved, source: held.digest})
    generation = assemble(previous.config, statuses, previous=base, env=env)
    generation.held = {k: v for k, v in previous.held.items() if k != source}
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


def _credentials(
    servers: dict[str, Server],
    statuses: list[SourceStatus],
    previous: Generation | None,
    env: Environment,
) -> dict[str, Credentials | str]:
    """Each loaded server's credentials, or the error that keeps that server down."""
    out: dict[str, Credentials | str] = {}
    for status in statuses:
        server = servers.get(status.id)
        if server is None or status.conversion is None:
            continue
        schemes = dict(getattr(status.conversion, "security_schemes", {}))
        kept = previous.credentials.get(server.id) if previous is not None else None
        if kept is not None and previous is not None and previous.servers.get(server.id) == server:
            old = _source(previous, server.id)
            if old is not None and _security(old) == _security(status):
                out[server.id] = kept  # same entry, same schemes: keep its cached tokens
                continue
        try:
            out[server.id] = Credentials(
                server,
                schemes,
                upstream=env.upstream,
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


def _limiter(config: Config, previous: Generation | None, workers: int) -> RateLimiter | None:
    limit: RateLimit | None = config.auth.rate_limit if config.auth is not None else None
    if limit is None:
        return None
    old = previous.config.auth.rate_limit if previous and previous.config.auth else None
    if previous is not None and old == limit:
        return previous.limiter  # the same limit keeps its buckets
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
    try:
        return CallLog(path.open("ab"))
    except OSError as exc:
        raise ToolbridgeError(f"audit.file: cannot open {path}: {exc.strerror}") from exc


def _entries(config: Config) -> dict[str, dict[str, object]]:
    """Each source's config entry as plain values, by id (to tell whether it was edited)."""
    entries: dict[str, dict[str, object]] = {
        s.id: s.model_dump(mode="json") for s in config.servers
    }
    entries.update({t.id: t.model_dump(mode="json") for t in config.tools})
    return entries
