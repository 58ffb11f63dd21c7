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
from functools import lru_cache
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import anyio
import orjson

from toolbridge.calllog import CallLog
from toolbridge.changes import Changes
from toolbridge.config import Config, OAuth2ClientCredentials
from toolbridge.errors import (
    InvalidArguments,
    RateLimited,
    ToolbridgeError,
    ToolNotFound,
    UpstreamUnavailable,
)
from toolbridge.generation import Environment, Generation, Held, approve, assemble, changes
from toolbridge.listings import Listing
from toolbridge.local.calls import call_function
from toolbridge.local.loader import LocalConversion, ModuleCache
from toolbridge.metrics import Metrics
from toolbridge.openapi.documents import DocumentStore
from toolbridge.policy import Principal
from toolbridge.registry import Catalog, SourceStatus, load_sources
from toolbridge.tools import HttpOperation, PythonFunction, Tool, ToolResult
from toolbridge.upstream import remote
from toolbridge.upstream.seam import Timeouts, Upstream

logger = logging.getLogger(__name__)
call_log = logging.getLogger("toolbridge.calls")

USER_VALVES_HEADER = "x-toolbridge-user-valves"
"""The header a caller sends its UserValves for local tools in: a JSON object."""
MAX_RESPONSE_BYTES = 4 * 1024 * 1024
"""Upstream answers longer than this are cut, with an explicit marker: models have small windows."""


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
        self.metrics = Metrics()
        self.env = Environment(upstream=upstream, workers=workers, default_log=call_log)
        self._initial = config
        self._reread = reread
        self._state: Generation | None = None
        self._reload_lock = anyio.Lock()
        self._modules: ModuleCache = {}
        """Local tool files as loaded: a reload re-imports only the files that changed."""

    # -- lifecycle -----------------------------------------------------------------------

    def load(self) -> Catalog:
        """Load every source (blocking); sources that fail are reported, the rest serve."""
        self._state = self._build(self._initial, None, None)
        for status in self._state.catalog.sources:
            if not status.ok:
                logger.error("source %s is down: %s", status.id, status.error)
        return self._state.catalog

    async def reload(self, only: frozenset[str] | None = None, *, dry_run: bool = False) -> Changes:
        """Read the config and its sources again, build a new generation beside the current one
        and swap it in; answer what changed. An invalid config raises ConfigError and changes
        nothing.

        With `only`, just those sources are read again, under the current config (a local tool
        file that changed). With `dry_run`, nothing is swapped in: the answer says what would
        change.
        """
        async with self._reload_lock:
            previous = self._current()
            config = previous.config
            if only is None and self._reread is not None:
                config = await anyio.to_thread.run_sync(self._reread)
            state = await anyio.to_thread.run_sync(self._build, config, previous, only)
            found = changes(previous, state)
            if not dry_run:
                self._swap(previous, state)
        verb = "reload (dry run)" if dry_run else "reloaded"
        for outcome in found.sources:
            if outcome.change == "failed":
                logger.error("%s: source %s is down: %s", verb, outcome.id, outcome.error)
        logger.info("%s: %s", verb, found.summary())
        return found

    async def approve(self, source: str) -> Changes:
        """Serve the held new version of an `on_change: hold` source."""
        async with self._reload_lock:
            previous = self._current()
            if source not in previous.held:
                raise ToolNotFound(f"source {source!r} has no held change to approve")
            state = approve(previous, source, self.env)
            found = changes(previous, state)
            self._swap(previous, state)
        logger.info("approved %s: %s", source, found.summary())
        return found

    def held(self) -> Mapping[str, Held]:
        """The new versions of `on_change: hold` sources that wait for approval, by source."""
        return self._current().held

    def _swap(self, previous: Generation, state: Generation) -> None:
        self._state = state
        if previous.call_log is not None and previous.call_log is not state.call_log:
            previous.call_log.flush()  # an `audit` that moved: what is buffered goes out first

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
        if state is not None and state.call_log is not None:
            state.call_log.flush()
        await self.upstream.aclose()

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
        return assemble(config, statuses, previous=previous, env=self.env)

    @property
    def config(self) -> Config:
        """The config being served (the one given, until the first load)."""
        return self._state.config if self._state is not None else self._initial

    def authenticate(self, authorization: str | None) -> Principal:
        """The caller an `Authorization` header names, by the keys of the current config."""
        return self._current().authenticator.authenticate(authorization)

    @property
    def catalog(self) -> Catalog:
        return self._current().catalog

    def _current(self) -> Generation:
        if self._state is None:
            raise RuntimeError("the gateway is not loaded: call load() or enter it first")
        return self._state

    # -- the two operations --------------------------------------------------------------

    def list_tools(self, principal: Principal) -> list[Tool]:
        return list(self.listing(principal).tools)

    def listing(self, principal: Principal) -> Listing:
        """The tools `principal` may see and the list answers kept for them, both of the
        current generation (the decision is made once per principal and generation)."""
        state = self._current()
        visible = state.listings.visible(
            principal, lambda: (t for t in state.catalog if state.policy.allows(principal, t))
        )
        return Listing(visible, state.listings)

    def tool(self, principal: Principal, name: str) -> Tool:
        state = self._current()
        tool = state.catalog.get(name)
        if tool is None or not state.policy.allows(principal, tool):
            raise ToolNotFound(f"no tool named {name!r}")
        return tool

    async def call(
        self,
        principal: Principal,
        name: str,
        arguments: Any,
        *,
        caller_headers: Mapping[str, str] | None = None,
        on_event: Callable[[Any], None] | None = None,
        argument_bytes: int | None = None,
    ) -> ToolResult:
        """Call a tool for a principal. `on_event` receives what a local tool emits while it
        runs (it may be called from a worker thread); `argument_bytes`, the size of the
        arguments as received, saves serializing them again for the call log."""
        state = self._current()  # calls in flight finish on the catalog they started with
        started = time.perf_counter()
        outcome, status = "error", None
        tool: Tool | None = None
        try:
            tool = state.catalog.get(name)
            if tool is None or not state.policy.allows(principal, tool):
                raise ToolNotFound(f"no tool named {name!r}")
            if state.limiter is not None and not principal.admin:
                state.limiter.take(principal.id, tool.name)
            match tool.target:
                case HttpOperation() as op:
                    checked = state.validator(tool).check(arguments)
                    result = await self._call_remote(
                        state, op, checked, caller_headers or {}, tool.name
                    )
                case PythonFunction() as fn:
                    user = _user(principal, (caller_headers or {}).get(USER_VALVES_HEADER))
                    result = await call_function(fn, arguments, user=user, on_event=on_event)
            outcome = "ok" if result.ok else "tool_error"
            status = result.status
            return result
        except ToolNotFound:
            outcome = "not_found"
            raise
        except InvalidArguments:
            outcome = "invalid_arguments"
            raise
        except RateLimited:
            outcome = "rate_limited"
            raise
        except UpstreamUnavailable as exc:
            outcome = "timeout" if exc.timeout else "unreachable"
            raise
        finally:
            elapsed = time.perf_counter() - started
            size = _size(arguments) if argument_bytes is None else argument_bytes
            # Counted and logged on the loop's next turn: after the answer has gone out.
            asyncio.get_running_loop().call_soon(
                self._account, state.call_log, tool, principal.id, outcome, status, elapsed, size
            )

    def _account(
        self,
        log: CallLog | None,
        tool: Tool | None,
        caller: str,
        outcome: str,
        status: int | None,
        elapsed: float,
        argument_bytes: int | None,
    ) -> None:
        """The call's metrics and its log line (never argument values)."""
        self.metrics.observe(tool.name if tool else "-", outcome, elapsed)
        line = {
            "event": "tool_call",
            "tool": tool.name if tool else None,
            "source": tool.source if tool else None,
            "caller": caller,
            "outcome": outcome,
            "status": status,
            "duration_ms": round(elapsed * 1000, 2),
            "argument_bytes": argument_bytes,
        }
        if log is not None:
            log.record(line)
        elif call_log.isEnabledFor(logging.INFO):
            call_log.info(orjson.dumps(line).decode())

    async def _call_remote(
        self,
        state: Generation,
        op: HttpOperation,
        arguments: dict[str, Any],
        caller_headers: Mapping[str, str],
        tool_name: str,
    ) -> ToolResult:
        server = state.servers.get(op.server)
        if server is None:
            raise ToolbridgeError(f"no server {op.server!r} in the config")
        credentials = state.credentials[op.server]
        timeouts = _timeouts(server.timeout)
        for attempt in (1, 2):
            auth = await credentials.parts(op, caller_headers)
            result = await remote.invoke(
                op,
                arguments,
                upstream=self.upstream,
                base_url=op.base_url,
                auth=auth,
                timeouts=timeouts,
                max_bytes=self.max_response_bytes,
                tool=tool_name,
            )
            if attempt == 2 or not (
                result.status == 401 and isinstance(server.auth, OAuth2ClientCredentials)
            ):
                break
            # The token may have been revoked before it expired: fetch a new one, once.
            for secret in auth.secrets:
                credentials.discard(secret)
        return result

    def frontmatter(self, tool: Tool) -> Mapping[str, str] | None:
        """The frontmatter (title, author, version, ...) of a local tool's file."""
        if not isinstance(tool.target, PythonFunction):
            return None
        for status in self._current().catalog.sources:
            if status.id == tool.source and isinstance(status.conversion, LocalConversion):
                return status.conversion.frontmatter(tool.target)
        return None

    def sources(self) -> tuple[SourceStatus, ...]:
        return self._current().catalog.sources


def _size(arguments: Any) -> int | None:
    """How big the arguments were, for the log: their size, never their values."""
    try:
        return len(orjson.dumps(arguments))
    except TypeError:
        return None


@lru_cache(maxsize=256)
def _timeouts(total: float) -> Timeouts:
    """A server's limits: its `timeout` in all, at most 10 s of it to connect."""
    return Timeouts(connect=min(10.0, total), total=total)


def _user(principal: Principal, valves: str | None = None) -> dict[str, Any]:
    """The `__user__` a local tool receives (Open WebUI's shape), with the caller's UserValves
    as sent in the USER_VALVES_HEADER (a JSON object; the tool's UserValves model checks it)."""
    user: dict[str, Any] = {
        "id": principal.id,
        "name": principal.name or principal.id,
        "email": principal.email,
        "role": "admin" if principal.admin else "user",
        "groups": sorted(principal.groups),
    }
    if valves:
        try:
            user["valves"] = orjson.loads(valves)
        except orjson.JSONDecodeError as exc:
            problem = f"the {USER_VALVES_HEADER} header is not JSON: {exc}"
            raise InvalidArguments("__user__", [("$.__user__.valves", problem)]) from None
    return user
