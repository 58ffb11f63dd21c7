"""The gateway: the tools a principal may use, and calling one of them.

`Gateway.call` reads as its sentence: find the tool, check the caller, check the arguments,
invoke (remote or local), log one line, return the result. Everything it needs per catalog
(policy, credentials, compiled validators) is built beside the catalog and swapped in with it
in one assignment, so a reload never disturbs calls in flight.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import anyio
import orjson

from toolbridge import json_text
from toolbridge.bulk import collector_paused
from toolbridge.calllog import CallLog
from toolbridge.changes import Changes
from toolbridge.config import Config
from toolbridge.discovery import CALL_TOOL, View, call_meta, find, is_meta, listed, searching
from toolbridge.dispatch import MAX_RESPONSE_BYTES, Dispatch
from toolbridge.errors import (
    AnswerNeeded,
    ConfigError,
    DestinationRefused,
    InvalidArguments,
    RateLimited,
    ToolNotFound,
    ToolsBusy,
    UpstreamBusy,
    UpstreamUnavailable,
    quoted,
)
from toolbridge.events import bounded as bounded_events
from toolbridge.filters.loader import FilterCache, FilterStatus, load_filters
from toolbridge.generation import (
    Environment,
    Generation,
    Held,
    approve,
    assemble,
    changes,
    restore,
)
from toolbridge.listings import Listing
from toolbridge.local.context import CallContext
from toolbridge.local.loader import LocalConversion, ModuleCache
from toolbridge.metrics import Metrics
from toolbridge.openapi.convert import Conversion
from toolbridge.openapi.documents import DocumentStore
from toolbridge.outputs import Reported
from toolbridge.policy import Principal
from toolbridge.redaction import Secrets, secrets_of
from toolbridge.registry import Catalog, SourceStatus, load_sources
from toolbridge.sendable import sendable
from toolbridge.shared_limits import SharedRateLimiter
from toolbridge.tools import PythonFunction, Tool, ToolResult
from toolbridge.toolsets import Toolset
from toolbridge.upstream.seam import Upstream
from toolbridge.upstream.transport import Clients

logger = logging.getLogger(__name__)
call_log = logging.getLogger("toolbridge.calls")

_UNAVAILABLE: dict[type[UpstreamUnavailable], str] = {
    UpstreamBusy: "busy",
    DestinationRefused: "refused",
}
"""The call log's outcome for an upstream that could not be used, by why."""
_OUTCOMES: dict[type[BaseException], str] = {
    ToolNotFound: "not_found",
    InvalidArguments: "invalid_arguments",
    RateLimited: "rate_limited",
    ToolsBusy: "busy",  # (local tools: every thread they may use taken)
    AnswerNeeded: "answer_needed",
}  # the call log's outcome for a call that ended in one of these, by its kind


class Gateway:
    """Lists and calls the tools of a config, for a principal; reloads it all while serving."""

    def __init__(
        self,
        config: Config,
        *,
        upstream: Upstream,
        reread: Callable[[], Config] | None = None,
        store: DocumentStore | None = None,
        cache_dir: Path | None = None,
        max_response_bytes: int = MAX_RESPONSE_BYTES,
        call_log: CallLog | None = None,
        workers: int = 1,
    ) -> None:
        """
        Args:
            reread: reads the config again (from its file) at each reload; without it a reload
                reads the sources again under the same config.
            call_log: receives one line per call when the config has no `audit`; without it
                they go to the `toolbridge.calls` logger at INFO.
            workers: processes serving this config (`serve --workers N`), so that each takes
                its share of a rate limit when no shared store counts them.
        """
        self.cache_dir = cache_dir
        self.upstream = upstream
        self.store = store
        self.max_response_bytes = max_response_bytes
        self.metrics, self.reported = Metrics(), Reported()
        self.env = Environment(
            upstream=upstream, clients=Clients(upstream), workers=workers, default_log=call_log
        )
        self.dispatch = Dispatch(env=self.env, max_response_bytes=max_response_bytes)
        """Carries out calls; its `users` is set when a state store is open."""
        self._initial = config
        self._reread = reread
        self._state: Generation | None = None
        self._reload_lock = anyio.Lock()
        self._closing: set[asyncio.Task[None]] = set()
        self._modules: ModuleCache = {}
        """Local tool files as loaded: a reload re-imports only the files that changed."""
        self._filter_files: FilterCache = {}

    # -- lifecycle -----------------------------------------------------------------------

    def load(self) -> Catalog:
        """Load every source (blocking); sources that fail are reported, the rest serve. What
        the start builds is kept out of the collector's walks (`collector_paused(keep=True)`)."""
        with collector_paused(keep=True):
            self._state = self._build(self._initial, None, None)
        for status in self._state.catalog.sources:
            if not status.ok:
                logger.error("source %s is down: %s", status.id, status.error)
        return self._state.catalog

    async def reload(
        self,
        only: frozenset[str] | None = None,
        *,
        dry_run: bool = False,
        reread: bool | None = None,
        since: Generation | None = None,
    ) -> Changes:
        """Read the config and its sources again, build a new generation beside the current one
        and swap it in; answer what changed. An invalid config raises ConfigError and changes
        nothing.

        With `only`, just those sources are read again (a local tool file that changed, a
        source registered through the admin API); the config is read again only when `reread`
        says so (by default: without `only`). With `dry_run`, nothing is swapped in: the answer
        says what would change. With `since` (a generation served earlier, see `generation`),
        the answer says what changed from that one: a write's whole effect, also when another
        reload (the change feed's) applied part of it first.
        """
        async with self._reload_lock:
            previous = self._current()
            config = previous.config
            try:  # the file, or what it names that cannot be opened or read
                if (only is None if reread is None else reread) and self._reread is not None:
                    config = await anyio.to_thread.run_sync(self._reread)
                    _keeps_auth(previous.config, config)
                    _keeps_store(previous.config, config)
                state = await anyio.to_thread.run_sync(self._build, config, previous, only)
            except ConfigError as exc:
                logger.error("reload refused, still serving the last config: %s", exc)
                raise
            found = changes(since or previous, state)
            if not dry_run:
                self._swap(previous, state)
        _log_reload(found, previous, dry_run=dry_run, whole=only is None)
        return found

    async def approve(self, source: str) -> Changes:
        """Serve the held new version of an `on_change: hold` source."""
        async with self._reload_lock:
            previous = self._current()
            if source not in previous.held:
                raise ToolNotFound(f"source {quoted(source)} has no held change to approve")
            state = approve(previous, source, self.env)
            found = changes(previous, state)
            self._swap(previous, state)
        logger.info("approved %s: %s", source, found.summary())
        return found

    async def restore(self, source: str, conversion: Conversion, digest: str) -> Changes:
        """Serve an earlier approved version of an `on_change: hold` source (kept in the state
        store across a restart) and hold the version served now."""
        async with self._reload_lock:
            previous = self._current()
            state = restore(previous, source, conversion, digest, self.env)
            found = changes(previous, state)
            self._swap(previous, state)
        logger.info("restored the approved version of %s: %s", source, found.summary())
        return found

    def approved(self) -> Mapping[str, str]:
        """The digest of the version served, per `on_change: hold` source."""
        return self._current().approved

    def held(self) -> Mapping[str, Held]:
        """The new versions of `on_change: hold` sources that wait for approval, by source."""
        return self._current().held

    def _swap(self, previous: Generation, state: Generation) -> None:
        self._state = state
        if previous.call_log is not None and previous.call_log is not state.call_log:
            previous.call_log.retire(state.call_log)  # an `audit` that moved (calllog.py)
        old = previous.limiter
        if isinstance(old, SharedRateLimiter) and old is not state.limiter:
            task = asyncio.get_running_loop().create_task(old.close())  # its Redis connections
            self._closing.add(task)
            task.add_done_callback(self._closing.discard)

    async def __aenter__(self) -> Self:
        if self._state is None:
            self.load()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        state = self._state
        await asyncio.sleep(0)  # the last calls' lines are recorded on the loop's next turn
        if state is not None and state.call_log is not None:
            state.call_log.retire(None)  # written out, and a file of its own closed
        if state is not None and isinstance(state.limiter, SharedRateLimiter):
            await state.limiter.close()
        await self.upstream.aclose()
        if self.env.clients is not None:
            await self.env.clients.aclose()

    def _build(
        self, config: Config, previous: Generation | None, only: frozenset[str] | None
    ) -> Generation:
        # A fresh store each time, so a reload reads every document again.
        store = self.store or DocumentStore(cache_dir=self.cache_dir)
        if previous is not None and only is not None:
            kept = {s.id: s for s in previous.catalog.sources if s.id not in only}
            partial = config.model_copy(
                update={
                    "servers": tuple(s for s in config.servers if s.id in only),
                    "tools": tuple(t for t in config.tools if t.id in only),
                }
            )
            fresh = {s.id: s for s in load_sources(partial, store, self._modules)}
            order = [s.id for s in config.servers] + [t.id for t in config.tools]
            statuses = [fresh.get(i) or kept[i] for i in order if i in fresh or i in kept]
        else:
            statuses = load_sources(config, store, self._modules)
        filters = load_filters(
            config, self._filter_files, previous.filters if previous else (), only
        )
        return assemble(config, statuses, previous=previous, env=self.env, filters=filters)

    @property
    def config(self) -> Config:
        """The config being served (the one given, until the first load)."""
        return self._state.config if self._state is not None else self._initial

    def authenticate(self, authorization: str | None) -> Principal:
        """The caller an `Authorization` header names, by the keys of the current config."""
        return self._current().authenticator.authenticate(authorization)

    @property
    def secrets(self) -> Secrets:
        """The secrets to redact now: the current generation's (the config's, before loading)."""
        if self._state is None:
            return secrets_of(self._initial)
        return self._state.secrets

    @property
    def open(self) -> bool:
        """Open mode: the config has no `auth`, and every caller is an anonymous admin."""
        return self._current().authenticator.open

    @property
    def catalog(self) -> Catalog:
        return self._current().catalog

    def generation(self) -> Generation:
        """The generation served now (to say later what changed since: `reload(since=...)`)."""
        return self._current()

    def _current(self) -> Generation:
        if self._state is None:
            raise RuntimeError("the gateway is not loaded: call load() or enter it first")
        return self._state

    # -- the two operations --------------------------------------------------------------

    def list_tools(self, principal: Principal, view: View | None = None) -> list[Tool]:
        """The tools a principal is offered: the catalog's they may use, or what `view` shows
        (a toolset's; search mode's three tools)."""
        return list(self.listing(principal, view).tools)

    def listing(self, principal: Principal, view: View | None = None) -> Listing:
        """The tools `principal` is offered (in `view`, else the whole catalog) and the list
        answers kept for them, both of the current generation (the decision is made once per
        principal, view and generation)."""
        state = self._current()
        shown = view or View()
        search = searching(state, shown)
        scope = None if shown.toolset is None and not search else (shown.toolset, search)
        visible = state.listings.visible(
            principal, lambda: listed(state, principal, shown), scope=scope
        )
        return Listing(visible, state.listings, state.secrets)

    def tool(self, principal: Principal, name: str, view: View | None = None) -> Tool:
        state = self._current()
        tool = state.catalog.get(name) if view is None else None
        if tool is None or not state.policy.allows(principal, tool):  # (else ToolNotFound)
            return self.dispatch.found(lambda: find(state, principal, name, view or View()), name)
        return tool

    @property
    def toolsets(self) -> Mapping[str, Toolset]:
        """The toolsets of the current catalog, by id."""
        return self._current().toolsets

    async def call(
        self,
        principal: Principal,
        name: str,
        arguments: Any,
        *,
        caller_headers: Mapping[str, str] | None = None,
        on_event: Callable[[Any], None] | None = None,
        argument_bytes: int | None = None,
        context: CallContext | None = None,
        view: View | None = None,
    ) -> ToolResult:
        """Call a tool for a principal. `on_event` receives what a local tool emits while it
        runs (it may be called from a worker thread); `argument_bytes`, the size of the
        arguments as received, saves serializing them again for the call log; `context`, what
        the caller said about the call (else read from `caller_headers` where needed); `view`,
        the toolset (and mode) the call is made in: only its tools are found."""
        state = self._current()  # calls in flight finish on the catalog they started with
        started = time.perf_counter()
        if on_event is not None:
            on_event = bounded_events(on_event)  # so many, so large (events.py)
        outcome = "error"
        tool: Tool | None = None
        result: ToolResult | None = None
        try:
            tool = state.catalog.get(name) if view is None else None
            if tool is None or not state.policy.allows(principal, tool):  # (else ToolNotFound)
                tool = self.dispatch.found(
                    lambda: find(state, principal, name, view or View()), name
                )
            limiter = state.limiter
            if limiter is not None and not principal.admin and tool.name != CALL_TOOL:
                # (call_tool's call counts itself)
                if isinstance(limiter, SharedRateLimiter):
                    await limiter.take(principal.id, tool.name)
                else:
                    limiter.take(principal.id, tool.name)
            if is_meta(tool):
                result = await call_meta(
                    state, principal, tool, arguments, view or View(), self.call
                )
                outcome = "ok" if result.ok else "tool_error"
                return result
            chain = state.chain(tool)
            if chain:
                result = await self.dispatch.filtered(
                    state, chain, principal, tool, arguments, caller_headers, on_event, context
                )
            else:
                result = await self.dispatch.invoke(
                    state, principal, tool, arguments, caller_headers, on_event, context
                )
            result = sendable(result)
            outcome = "ok" if result.ok else "tool_error"
            return result
        except (ToolNotFound, InvalidArguments, RateLimited, ToolsBusy, AnswerNeeded) as exc:
            outcome = next(o for kind, o in _OUTCOMES.items() if isinstance(exc, kind))
            raise
        except UpstreamUnavailable as exc:
            outcome = "timeout" if exc.timeout else _UNAVAILABLE.get(type(exc), "unreachable")
            raise
        except asyncio.CancelledError:  # its caller went away (serve/departures.py)
            outcome = "cancelled"
            raise
        finally:
            elapsed = time.perf_counter() - started
            size = _size(arguments) if argument_bytes is None else argument_bytes
            # Counted and logged on the loop's next turn: after the answer has gone out.
            asyncio.get_running_loop().call_soon(
                self._account, state, tool, principal.id, outcome, result, elapsed, size
            )

    def _account(
        self,
        state: Generation,
        tool: Tool | None,
        caller: str,
        outcome: str,
        result: ToolResult | None,
        elapsed: float,
        argument_bytes: int | None,
    ) -> None:
        """The call's metrics and its log line (never argument values, nor answer values).

        A successful answer that does not fit the tool's output schema is passed on as it is
        (outputs.py), and counted here: after the answer has gone out.
        """
        self.metrics.observe(tool.name if tool else "-", outcome, elapsed)
        line: dict[str, Any] = {
            "event": "tool_call",
            "tool": tool.name if tool else None,
            "source": tool.source if tool else None,
            "caller": caller,
            "outcome": outcome,
            "status": result.status if result else None,
            "duration_ms": round(elapsed * 1000, 2),
            "argument_bytes": argument_bytes,
        }
        if tool is not None and result is not None and tool.output_schema is not None:
            check = state.output_check(tool)
            mismatch = check.mismatch(result)
            if mismatch is not None:
                line["output_mismatch"] = mismatch
                self.metrics.output_mismatch(tool.name)
                if self.reported.first(check, tool):  # once a tool and schema: fix the document
                    logger.warning(
                        "%s answered other than its output schema says (%s); passed on as it "
                        "is, and counted in toolbridge_output_mismatches_total",
                        tool.name,
                        mismatch,
                    )
        log = state.call_log
        if log is not None:
            log.record(line)
        elif call_log.isEnabledFor(logging.INFO):
            call_log.info(orjson.dumps(line).decode())

    def output_mismatch(self, tool: Tool, result: ToolResult) -> str | None:
        """Where and how a successful answer differs from the tool's output schema (None when
        it fits, or there is nothing to check): for an edge that promised the schema."""
        return self._current().output_check(tool).mismatch(result)

    def frontmatter(self, tool: Tool) -> Mapping[str, str] | None:
        """The frontmatter (title, author, version, ...) of a local tool's file."""
        if not isinstance(tool.target, PythonFunction):
            return None
        for status in self._current().catalog.sources:
            if status.id == tool.source and isinstance(status.conversion, LocalConversion):
                return status.conversion.frontmatter(tool.target)
        return None

    def sources(self, principal: Principal | None = None) -> tuple[SourceStatus, ...]:
        """Every source, or with `principal` those that principal may see."""
        state = self._current()
        if principal is None:
            return state.catalog.sources
        return tuple(s for s in state.catalog.sources if state.policy.sees_source(principal, s.id))

    def filters(self) -> tuple[FilterStatus, ...]:
        return self._current().filters


def _size(arguments: Any) -> int | None:
    """How big the arguments were, for the log: their size, never their values."""
    try:
        return len(json_text.dumps(arguments))
    except TypeError:
        return None


def _keeps_auth(before: Config, after: Config) -> None:
    """A reload may change `auth`, not remove it: without it every caller, from wherever the
    gateway listens, is an anonymous admin (who may register code through the admin API).
    Going to open mode takes a restart, which warns where it starts."""
    if before.auth is not None and after.auth is None:
        raise ConfigError(
            "the config has no `auth` section any more: a reload does not remove it (every "
            "caller would be an anonymous admin); restart the gateway to serve without it"
        )


def _keeps_store(before: Config, after: Config) -> None:
    """A reload may not move the state store: the one open holds what was registered through
    the admin API and each caller's data, and writes would go on there while `export` and the
    next start read the other. Moving it takes a restart (with `toolbridge export` first)."""
    from toolbridge.state.urls import resolve_url, shown  # (SQLAlchemy: loaded when needed)

    was, now = resolve_url(before.state, before.base_dir), resolve_url(after.state, after.base_dir)
    if was != now:
        raise ConfigError(
            f"the config names another state store ({shown(now)}) than the one open "
            f"({shown(was)}): a reload does not move it, as it holds what the admin API "
            "registered and each caller's data; restart the gateway to use the other"
        )


def _log_reload(found: Changes, previous: Generation, *, dry_run: bool, whole: bool) -> None:
    """A reload in the log: a source that went down (or fails otherwise than before) at ERROR,
    one down still with the same error at DEBUG, and the summary at INFO, but for a reload of
    some sources only (`whole` False: a 30 s retry of those down, a registered source) that
    changed nothing, at DEBUG: a source that stays down would fill the log."""
    verb = "reload (dry run)" if dry_run else "reloaded"
    before = {status.id: status.error for status in previous.catalog.sources}
    news = whole or bool(found.tools) or bool(found.settings)
    for outcome in found.sources:
        if outcome.change == "failed" and before.get(outcome.id) == outcome.error:
            logger.debug("%s: source %s is down still: %s", verb, outcome.id, outcome.error)
            continue
        if outcome.change == "failed":
            logger.error("%s: source %s is down: %s", verb, outcome.id, outcome.error)
        news = news or outcome.change != "unchanged"
    logger.log(logging.INFO if news else logging.DEBUG, "%s: %s", verb, found.summary())
