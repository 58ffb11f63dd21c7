"""Where a checked call goes: the remote operation (with the server's credentials, or the
caller's own for a `per_user` server) or the local function, with the filters around it.

`Gateway.call` finds the tool, checks the caller and counts the call; this module carries it
out. The caller's stored UserValves and credentials come from `users` (the state store's,
cached); what the caller sends in headers wins over what is stored.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, replace
from functools import lru_cache
from typing import Any

import anyio
import orjson

from toolbridge.blocking import OFF_LOOP_BYTES, off_loop
from toolbridge.budgets import apply as apply_budget
from toolbridge.config import ForwardAuth, OAuth2ClientCredentials, PerUserAuth, Server
from toolbridge.errors import (
    CredentialRequired,
    InvalidArguments,
    ToolbridgeError,
    ToolNotFound,
    UpstreamUnavailable,
)
from toolbridge.filters.chain import Chain, run_inlets, run_outlets
from toolbridge.fixed_arguments import supplied
from toolbridge.generation import Environment, Generation
from toolbridge.local.calls import call_function, user_valves
from toolbridge.local.context import CallContext, context_from_headers, oauth_token
from toolbridge.local.signatures import unknown_user_valves
from toolbridge.policy import Principal
from toolbridge.redaction import Secrets, call_secrets, secret_fields
from toolbridge.sendable import sendable
from toolbridge.tools import HttpOperation, PythonFunction, Tool, ToolResult
from toolbridge.upstream import remote
from toolbridge.upstream.answers import TRUNCATED
from toolbridge.upstream.credentials import Credentials
from toolbridge.upstream.seam import IDEMPOTENT, AuthParts, Timeouts
from toolbridge.users import UserData

USER_VALVES_HEADER = "x-toolbridge-user-valves"
"""The header a caller sends its UserValves for local tools in: a JSON object."""
FILTER_VALVES_HEADER = "x-toolbridge-filter-valves"
"""The header a caller sends its UserValves for filters in: a JSON object by filter id."""
MAX_RESPONSE_BYTES = 4 * 1024 * 1024
"""Upstream answers longer than this are cut, with an explicit marker: models have small windows."""


@dataclass(slots=True, kw_only=True)
class Dispatch:
    """Carries out calls for one gateway: its upstream, its answer cap, its callers' data."""

    env: Environment
    max_response_bytes: int = MAX_RESPONSE_BYTES
    users: UserData | None = None
    """Each caller's stored UserValves and credentials (when a state store is open)."""
    unknown: Callable[[str], ToolbridgeError | None] | None = None
    """What to answer instead of "no tool named ..." while this process may not serve all that
    was registered (a state store not read yet): a name it does not know may be one of those."""

    def found(self, look: Callable[[], Tool], name: str) -> Tool:
        """`look()` (the tool `name`, or ToolNotFound), with what `unknown` says instead of
        ToolNotFound when it says something."""
        try:
            return look()
        except ToolNotFound as exc:
            instead = self.unknown(name) if self.unknown is not None else None
            if instead is not None:
                raise instead from exc
            raise

    async def invoke(
        self,
        state: Generation,
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
                fixed = state.fixed.get(op.server)
                if fixed:  # the values the config gives (as its tools were built with)
                    checked = supplied(fixed, op, checked)
                result, secrets = await self._call_remote(
                    state, op, checked, caller_headers or {}, tool.name, principal
                )
                if result.truncated and isinstance(result.result, str):
                    result = replace(result, result=_cut(secrets, result.result))
                # Bytes (base64) are redacted here; text and JSON at the edge, with the
                # gateway's secrets, or here, where the caller brought its own.
                result = replace(result, result=secrets.binary(result.result))
                budget = state.budgets.for_tool(tool) if state.budgets else None
                if budget is None and secrets is state.secrets:
                    return result
                try:
                    # Redacted before any cut: a secret cut in two is one no spelling matches.
                    redacted = _redacted(result, secrets)
                except RecursionError:
                    # JSON too deep to walk for secrets: its text, which is redacted as text
                    # and cut as text. Rare: not checked up front.
                    text = sendable(result)
                    redacted = replace(text, result=secrets.value(text.result))
                if budget is None:
                    return redacted
                # Selecting from and cutting up to 4 MiB of answer: off the event loop.
                return await anyio.to_thread.run_sync(apply_budget, budget, redacted)
            case PythonFunction() as fn:
                headers = caller_headers or {}
                user = _user(principal, headers.get(USER_VALVES_HEADER))
                if "valves" in user:
                    _known_valves(fn, user["valves"])  # as PUT /v1/me/valves checks them
                wanted = "__user__" in fn.injected and "valves" not in user
                # Without a UserValves model a tool gets no valves: the store is not asked.
                if wanted and self.users is not None and user_valves(_instance(fn)) is not None:
                    stored = await self.users.valves(principal.id, fn.tool_id)
                    if stored is not None:
                        user["valves"] = stored  # the caller's own, from the store
                if context is None and fn.injected:
                    context = _context(principal, headers)
                own = _secret_values(_instance(fn), user.get("valves"))
                token = context.oauth_token if context is not None else None
                if token is not None and "__oauth_token__" in fn.injected:
                    # The caller's own token, handed to the tool: forwarded, as to an upstream.
                    access = token.get("access_token")
                    own += [access] if isinstance(access, str) else []
                secrets, on_event = _own(state, own, on_event)
                mended = state.validator(tool).mended(arguments)
                with call_secrets(secrets):
                    result = await call_function(
                        fn, mended, user=user, context=context, on_event=on_event
                    )
                # Measured (its JSON written) and cut off our loop: a tool's answer may be
                # hundreds of megabytes, and only its first `max_response_bytes` are kept.
                value = result.result
                size = len(value) if isinstance(value, str) else 0
                if isinstance(value, dict | list) and value:  # its size is known once written
                    size = OFF_LOOP_BYTES
                result = await off_loop(size, capped, result, self.max_response_bytes, secrets)
                return result if secrets is state.secrets else _redacted(result, secrets)

    async def filtered(
        self,
        state: Generation,
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
        if self.users is not None:  # what the request does not say, the caller's stored ones
            for status in chain:
                loaded = status.filter
                if loaded is None or loaded.id in valves or user_valves(loaded.instance) is None:
                    continue
                stored = await self.users.valves(principal.id, loaded.id)
                if stored is not None:
                    valves[loaded.id] = stored
        if context is None:
            context = _context(principal, headers)
        own = [
            value
            for status in chain
            if status.filter is not None
            for value in _secret_values(status.filter.instance, valves.get(status.filter.id))
        ]
        secrets, on_event = _own(state, own, on_event)
        with call_secrets(secrets):
            passed = await run_inlets(
                chain, tool, arguments, user=user, valves=valves, context=context, on_event=on_event
            )
            if isinstance(passed, ToolResult):
                return passed if secrets is state.secrets else _redacted(passed, secrets)
            arguments, context = passed
            result = await self.invoke(
                state, principal, tool, arguments, caller_headers, on_event, context
            )
            result = await run_outlets(
                chain,
                tool,
                arguments,
                result,
                user=user,
                valves=valves,
                context=context,
                on_event=on_event,
            )
        return result if secrets is state.secrets else _redacted(result, secrets)

    async def _call_remote(
        self,
        state: Generation,
        op: HttpOperation,
        arguments: dict[str, Any],
        caller_headers: Mapping[str, str],
        tool_name: str,
        principal: Principal,
    ) -> tuple[ToolResult, Secrets]:
        """The upstream's answer, and the secrets to redact it with: the gateway's (and a token
        fetched just now with the config's credentials, which joins them), plus, for a
        `per_user` or `forward` server, the caller's own credential (the call's alone)."""
        server = state.servers.get(op.server)
        if server is None:
            raise ToolbridgeError(f"no server {op.server!r} in the config")
        credentials = state.credentials[op.server]
        if isinstance(server.auth, PerUserAuth):
            credentials = await self._own_credentials(state, server, server.auth, principal)
        way = state.routes[op.server]  # the server's client, destinations and concurrency cap
        oauth2 = isinstance(server.auth, OAuth2ClientCredentials)
        own = isinstance(server.auth, PerUserAuth | ForwardAuth)  # the caller's credentials
        loop = asyncio.get_running_loop()
        deadline = loop.time() + server.timeout  # the whole call's: token fetches and retry too
        for attempt in (1, 2):
            auth = await _within(credentials.parts(op, caller_headers), deadline, server, oauth2)
            left = deadline - loop.time()
            timeouts = _timeouts(server.timeout) if attempt == 1 and not oauth2 else _left(left)
            secrets = state.secrets
            if auth.secrets and not secrets.holds(auth.secrets):
                if oauth2:
                    state.secrets = secrets = secrets.adding(auth.secrets)  # fetched just now
                else:  # the caller's own (per_user, forward): this call's alone
                    secrets = secrets.adding(auth.secrets)
            with call_secrets(secrets):
                result = await remote.invoke(
                    op,
                    arguments,
                    upstream=way.upstream,
                    base_url=op.base_url,
                    auth=auth,
                    timeouts=timeouts,
                    max_bytes=self.max_response_bytes,
                    tool=tool_name,
                    caller=principal.id if own else None,
                )
            if attempt == 2 or not (result.status == 401 and oauth2):
                break
            # The token may have been revoked before it expired: the next call fetches a new
            # one. This one is sent again with it only when sending twice does nothing twice,
            # and while its time lasts.
            for secret in auth.secrets:
                credentials.discard(secret)
            if op.method.upper() not in IDEMPOTENT or deadline - loop.time() <= 0:
                break
        return result, secrets

    async def _own_credentials(
        self, state: Generation, server: Server, auth: PerUserAuth, principal: Principal
    ) -> Credentials:
        """The caller's own credential for a `per_user` server, as stored in `/v1/me`."""
        stored = await self.users.credential(principal.id, server.id) if self.users else None
        if stored is None:
            example = ", ".join(f'"{field}": "..."' for field in auth.fields)
            where = (
                f"PUT /v1/me/credentials/{server.id} with {{{example}}}"
                if self.users is not None
                else "this process reads no per-user state (the gateway's `state` store "
                "holds it: call the tool through the gateway, as that caller)"
            )
            raise CredentialRequired(
                f"server {server.id!r} takes each caller's own credential, and "
                f"{principal.id!r} has stored none: {where}"
            )
        return state.own_credentials(server, auth, principal.id, stored, self.env)


@lru_cache(maxsize=256)
def _timeouts(total: float) -> Timeouts:
    """A server's limits: its `timeout` in all, at most 10 s of it to connect."""
    return Timeouts(connect=min(10.0, total), total=total)


async def _within(
    fetching: Awaitable[AuthParts], deadline: float, server: Server, oauth2: bool
) -> AuthParts:
    """A call's credentials, within its deadline when they may have to be fetched (an OAuth2
    token): other servers' are at hand, and spare the call a timer."""
    if not oauth2:
        return await fetching
    try:
        async with asyncio.timeout_at(deadline):
            return await fetching
    except TimeoutError:
        raise UpstreamUnavailable(
            server.id,
            f"no access token from the token endpoint within the call's {server.timeout:g} s",
            timeout=True,
        ) from None


def _left(seconds: float) -> Timeouts:
    """What is left of a call's time, once a token was fetched (or a first answer refused)."""
    seconds = max(seconds, 0.001)
    return Timeouts(connect=min(10.0, seconds), total=seconds)


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


def _cut(secrets: Secrets, text: str) -> str:
    """An answer cut at the size cap (`...\n[truncated: ...]`), redacted up to the cut: a
    secret the cut went through leaves its start there."""
    kept, marker, why = text.rpartition(TRUNCATED)
    return secrets.cut(kept) + marker + why if marker else secrets.text(text)


def capped(result: ToolResult, max_bytes: int, secrets: Secrets) -> ToolResult:
    """A local tool's result cut at `max_bytes` as remote answers are: the text (a JSON value's
    JSON text) up to the cap, then a marker, and `truncated` set. What is kept is redacted
    before the cut."""
    value = result.result
    if not isinstance(value, str):
        try:
            text = orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS)
        except (orjson.JSONEncodeError, RecursionError):
            # Integers past 64 bits, nesting deeper than orjson writes: its JSON text (or, for
            # no JSON at all, why not), measured as text.
            result = sendable(result)
            value = result.result
            if not isinstance(value, str):  # (sendable gives text here: the JSON, or why not)
                return result
    if isinstance(value, str):
        if len(value) <= max_bytes // 4:  # at most 4 bytes a character: surely under the cap
            return result
        text = value.encode("utf-8")
    if len(text) <= max_bytes:
        return result
    kept = text[:max_bytes].decode("utf-8", errors="ignore")  # no half character at the cut
    marker = f"{TRUNCATED}the tool's answer was longer than {max_bytes} bytes]"
    kept = secrets.cut(kept)
    return ToolResult(
        ok=result.ok,
        status=result.status,
        content_type="text/plain",
        result=kept + marker,
        truncated=True,
        headers=result.headers,
    )


def _instance(fn: PythonFunction) -> object:
    """The Tools object a local tool is a method of (None for a module's function)."""
    return getattr(fn.func, "__self__", None)


def _known_valves(fn: PythonFunction, valves: Any) -> None:
    """InvalidArguments for names the caller's UserValves (as sent in the header) has no field
    for: a typo would otherwise be dropped without a word, and the caller's stored UserValves,
    which the header replaces, with it."""
    model = user_valves(_instance(fn))
    unknown = unknown_user_valves(model, valves, "$.__user__.valves") if model else []
    if unknown:
        raise InvalidArguments("__user__", unknown)


def _own(
    state: Generation, own: list[str], on_event: Callable[[Any], None] | None
) -> tuple[Secrets, Callable[[Any], None] | None]:
    """The secrets a call is redacted with (the gateway's, and the caller's own, which are this
    call's alone: `redaction.call_secrets`), and its event sink redacting with them."""
    if not own or state.secrets.holds(own):
        return state.secrets, on_event
    secrets = state.secrets.adding(own)
    return secrets, _redacting(on_event, secrets)


def _redacted(result: ToolResult, secrets: Secrets) -> ToolResult:
    """The result's value and kept headers redacted (a JSON value too deep to walk raises
    RecursionError)."""
    headers = tuple((name, secrets.text(value)) for name, value in result.headers)
    return replace(result, result=secrets.value(result.result), headers=headers)


def _redacting(
    on_event: Callable[[Any], None] | None, secrets: Secrets
) -> Callable[[Any], None] | None:
    """`on_event` passed what a tool emits redacted with the call's own secrets (the edge
    redacts with the gateway's alone)."""
    if on_event is None:
        return None
    send = on_event
    return lambda event: send(secrets.value(event))


def _secret_values(instance: object, valves: Any) -> list[str]:
    """The values of the caller's UserValves (for a tool's or a filter's instance) that hold
    secrets (`secret_fields`), given or stored: redacted from the call's answer as the
    instance's own Valves are."""
    model = user_valves(instance)
    if model is None or not isinstance(valves, dict):
        return []
    secret = secret_fields(model)
    return [v for k, v in valves.items() if k in secret and isinstance(v, str)]
