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
from dataclasses import dataclass, field, replace
from functools import lru_cache
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import anyio
import orjson

from toolbridge.arguments import ArgumentValidator
from toolbridge.calllog import CallLog
from toolbridge.config import Config, OAuth2ClientCredentials, Server
from toolbridge.errors import (
    AnswerNeeded,
    InvalidArguments,
    RateLimited,
    ToolbridgeError,
    ToolNotFound,
    UpstreamUnavailable,
)
from toolbridge.filters.chain import Chain, run_inlets, run_outlets, select
from toolbridge.filters.loader import FilterCache, FilterStatus, load_filters
from toolbridge.limits import RateLimiter
from toolbridge.local.calls import call_function
from toolbridge.local.context import CallContext, context_from_headers, oauth_token
from toolbridge.local.loader import LocalConversion, ModuleCache
from toolbridge.metrics import Metrics
from toolbridge.openapi.documents import DocumentStore
from toolbridge.policy import Policy, Principal
from toolbridge.registry import Catalog, SourceStatus, build_catalog, load_sources
from toolbridge.tools import HttpOperation, PythonFunction, Tool, ToolResult
from toolbridge.upstream import remote
from toolbridge.upstream.credentials import Credentials
from toolbridge.upstream.seam import Timeouts, Upstream

logger = logging.getLogger(__name__)
call_log = logging.getLogger("toolbridge.calls")

USER_VALVES_HEADER = "x-toolbridge-user-valves"
"""The header a caller sends its UserValves for local tools in: a JSON object."""
FILTER_VALVES_HEADER = "x-toolbridge-filter-valves"
"""The header a caller sends its UserValves for filters in: a JSON object by filter id."""
MAX_RESPONSE_BYTES = 4 * 1024 * 1024
"""Upstream answers longer than this are cut, with an explicit marker: models have small windows."""


@dataclass(slots=True)
class _State:
    """One catalog and everything derived from it; replaced whole on reload."""

    catalog: Catalog
    policy: Policy
    servers: dict[str, Server]
    credentials: dict[str, Credentials]
    loaded_at: float
    validators: dict[str, ArgumentValidator] = field(default_factory=dict)
    filters: tuple[FilterStatus, ...] = ()
    chains: dict[str, Chain] = field(default_factory=dict)

    def chain(self, tool: Tool) -> Chain:
        """The filters around this tool's calls; () at the cost of one test when there are none."""
        if not self.filters:
            return ()
        found = self.chains.get(tool.name)
        if found is None:
            found = self.chains[tool.name] = select(self.filters, tool)
        return found

    def validator(self, tool: Tool) -> ArgumentValidator:
        # Compiled on first use and kept: the per-call cost is then one dictionary lookup.
        found = self.validators.get(tool.name)
        if found is None:
            found = self.validators[tool.name] = ArgumentValidator(tool)
        return found


class Gateway:
    """Lists and calls the tools of a config, for a principal."""

    def __init__(
        self,
        config: Config,
        *,
        upstream: Upstream,
        store: DocumentStore | None = None,
        cache_dir: Path | None = None,
        max_response_bytes: int = MAX_RESPONSE_BYTES,
        call_log: CallLog | None = None,
    ) -> None:
        """`call_log` receives one line per call; without it they go to the
        `toolbridge.calls` logger at INFO."""
        self.cache_dir = cache_dir
        self.call_log = call_log
        limit = config.auth.rate_limit if config.auth is not None else None
        self.limiter = (
            RateLimiter(limit.per_minute, limit.burst, per_tool=limit.per_tool) if limit else None
        )
        self.config = config
        self.upstream = upstream
        self.store = store
        self.max_response_bytes = max_response_bytes
        self.metrics = Metrics()
        self._state: _State | None = None
        self._reload_lock = anyio.Lock()
        self._modules: ModuleCache = {}
        """Local tool files as loaded: a reload re-imports only the files that changed."""
        self._filter_files: FilterCache = {}

    # -- lifecycle -----------------------------------------------------------------------

    def load(self) -> Catalog:
        """Load every source (blocking); sources that fail are reported, the rest serve."""
        self._state = self._build(None)
        for status in self._state.catalog.sources:
            if not status.ok:
                logger.error("source %s is down: %s", status.id, status.error)
        return self._state.catalog

    async def reload(self, only: frozenset[str] | None = None) -> Catalog:
        """Build a new catalog beside the current one and swap it in.

        With `only`, just those sources are read again; the others keep what they had.
        """
        async with self._reload_lock:
            previous = self._state
            state = await anyio.to_thread.run_sync(self._build, previous, only)
            self._state = state
        for status in state.catalog.sources:
            if not status.ok:
                logger.error("reload: source %s is down: %s", status.id, status.error)
        logger.info("reloaded: %d tools", len(state.catalog))
        return state.catalog

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
        if self.call_log is not None:
            self.call_log.flush()
        await self.upstream.aclose()

    def _build(self, previous: _State | None, only: frozenset[str] | None = None) -> _State:
        # A fresh store each time, so a reload reads every document again.
        store = self.store or DocumentStore(cache_dir=self.cache_dir)
        if previous is not None and only is not None:
            kept = {s.id: s for s in previous.catalog.sources if s.id not in only}
            config = self.config.model_copy(
                update={
                    "servers": tuple(s for s in self.config.servers if s.id in only),
                    "tools": tuple(t for t in self.config.tools if t.id in only),
                }
            )
            fresh = {s.id: s for s in load_sources(config, store, self._modules)}
            order = [s.id for s in self.config.servers] + [t.id for t in self.config.tools]
            statuses = [fresh.get(i) or kept[i] for i in order if i in fresh or i in kept]
        else:
            statuses = load_sources(self.config, store, self._modules)
        if previous is not None:
            statuses = [_keep_last_good(s, previous.catalog) for s in statuses]
        servers = {server.id: server for server in self.config.servers}
        credentials: dict[str, Credentials] = {}
        for index, status in enumerate(statuses):
            server = servers.get(status.id)
            if server is None or status.conversion is None:
                continue
            conversion = status.conversion
            try:
                credentials[server.id] = Credentials(
                    server,
                    getattr(conversion, "security_schemes", {}),
                    upstream=self.upstream,
                    operations=[tool.http for tool in conversion.tools],
                    timeouts=_timeouts(server.timeout),
                )
            except ToolbridgeError as exc:
                # Credentials that cannot work keep only this source down.
                statuses[index] = replace(status, conversion=None, error=str(exc))
        catalog = build_catalog(statuses)
        filters = load_filters(
            self.config, self._filter_files, previous.filters if previous else (), only
        )
        return _State(
            catalog=catalog,
            policy=Policy.from_config(self.config),
            servers=servers,
            credentials=credentials,
            loaded_at=time.time(),
            filters=filters,
        )

    @property
    def catalog(self) -> Catalog:
        return self._current().catalog

    def _current(self) -> _State:
        if self._state is None:
            raise RuntimeError("the gateway is not loaded: call load() or enter it first")
        return self._state

    # -- the two operations --------------------------------------------------------------

    def list_tools(self, principal: Principal) -> list[Tool]:
        state = self._current()
        return [tool for tool in state.catalog if state.policy.allows(principal, tool)]

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
        context: CallContext | None = None,
    ) -> ToolResult:
        """Call a tool for a principal. `on_event` receives what a local tool emits while it
        runs (it may be called from a worker thread); `argument_bytes`, the size of the
        arguments as received, saves serializing them again for the call log; `context`, what
        the caller said about the call (else read from `caller_headers` where needed)."""
        state = self._current()  # calls in flight finish on the catalog they started with
        started = time.perf_counter()
        outcome, status = "error", None
        tool: Tool | None = None
        try:
            tool = self.tool(principal, name)
            if self.limiter is not None and not principal.admin:
                self.limiter.take(principal.id, tool.name)
            chain = state.chain(tool)
            if chain:
                result = await self._filtered(
                    state, chain, principal, tool, arguments, caller_headers, on_event, context
                )
            else:
                result = await self._invoke(
                    state, principal, tool, arguments, caller_headers, on_event, context
                )
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
        except AnswerNeeded:
            outcome = "answer_needed"
            raise
        finally:
            elapsed = time.perf_counter() - started
            size = _size(arguments) if argument_bytes is None else argument_bytes
            # Counted and logged on the loop's next turn: after the answer has gone out.
            asyncio.get_running_loop().call_soon(
                self._account, tool, principal.id, outcome, status, elapsed, size
            )

    async def _invoke(
        self,
        state: _State,
        principal: Principal,
        tool: Tool,
        arguments: Any,
        caller_headers: Mapping[str, str] | None,
        on_event: Callable[[Any], None] | None,
        context: CallContext | None,
    ) -> ToolResult:
        match tool.target:
            case HttpOperation() as op:
                checked = state.validator(tool).check(arguments)
                return await self._call_remote(state, op, checked, caller_headers or {}, tool.name)
            case PythonFunction() as fn:
                headers = caller_headers or {}
                user = _user(principal, headers.get(USER_VALVES_HEADER))
                if context is None and fn.injected:
                    context = _context(principal, headers)
                return await call_function(
                    fn, arguments, user=user, context=context, on_event=on_event
                )

    async def _filtered(
        self,
        state: _State,
        chain: Chain,
        principal: Principal,
        tool: Tool,
        arguments: Any,
        caller_headers: Mapping[str, str] | None,
        on_event: Callable[[Any], None] | None,
        context: CallContext | None,
    ) -> ToolResult:
        """The call with its filters' inlets before it and outlets after it (filters/chain)."""
        headers = caller_headers or {}
        user = _user(principal)
        valves = _filter_valves(headers.get(FILTER_VALVES_HEADER))
        if context is None:
            context = _context(principal, headers)
        passed = await run_inlets(
            chain, tool, arguments, user=user, valves=valves, context=context, on_event=on_event
        )
        if isinstance(passed, ToolResult):
            return passed  # refused
        arguments, context = passed
        result = await self._invoke(
            state, principal, tool, arguments, caller_headers, on_event, context
        )
        return await run_outlets(
            chain,
            tool,
            arguments,
            result,
            user=user,
            valves=valves,
            context=context,
            on_event=on_event,
        )

    def _account(
        self,
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
        if self.call_log is not None:
            self.call_log.record(line)
        elif call_log.isEnabledFor(logging.INFO):
            call_log.info(orjson.dumps(line).decode())

    async def _call_remote(
        self,
        state: _State,
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

    def filters(self) -> tuple[FilterStatus, ...]:
        return self._current().filters


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


def _context(principal: Principal, headers: Mapping[str, str]) -> CallContext:
    """The context a call's headers carry, for a caller that gave none itself."""
    token = oauth_token(headers.get("authorization"), principal.token_expires_at)
    return context_from_headers(headers, oauth_token=token)


def _filter_valves(raw: str | None) -> dict[str, Any]:
    """The caller's UserValves for filters, by filter id, as sent in FILTER_VALVES_HEADER."""
    if not raw:
        return {}
    try:
        valves = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        problem = f"the {FILTER_VALVES_HEADER} header is not JSON: {exc}"
        raise InvalidArguments("__user__", [("$.__user__.valves", problem)]) from None
    if not isinstance(valves, dict):
        problem = f"the {FILTER_VALVES_HEADER} header is not a JSON object by filter id"
        raise InvalidArguments("__user__", [("$.__user__.valves", problem)])
    return valves


def _keep_last_good(status: SourceStatus, catalog: Catalog) -> SourceStatus:
    """A source that fails on reload keeps the version it had, and says why it did not update."""
    if status.ok or status.conversion is not None:
        return status  # up, or down in part but still serving what it has
    old = next((s for s in catalog.sources if s.id == status.id), None)
    if old is None or old.conversion is None:
        return status
    return replace(status, conversion=old.conversion)
