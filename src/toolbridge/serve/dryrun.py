"""`toolbridge call --dry-run`: what a call would do, without doing it.

For a remote tool that is the exact HTTP request, as a curl line with every secret shown as
`***`; for a local tool, the function and the arguments it would receive. The arguments are
checked as a call checks them, and nothing is sent: not the request, not an OAuth2 token request.
Also here: the principal a command-line call acts as (`--as USER`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

import orjson
from pydantic import ValidationError

from toolbridge.arguments import ArgumentValidator
from toolbridge.config import Config, ForwardAuth, OAuth2ClientCredentials, PerUserAuth
from toolbridge.errors import InvalidArguments, ToolbridgeError, UpstreamUnavailable
from toolbridge.fixed_arguments import supplied
from toolbridge.gateway import Gateway
from toolbridge.policy import ANONYMOUS_ADMIN, Principal
from toolbridge.redaction import argument_secrets
from toolbridge.schemas import json_kind
from toolbridge.tools import HttpOperation, PythonFunction, SecurityScheme, Tool
from toolbridge.upstream.credentials import Credentials
from toolbridge.upstream.curl import curl_line
from toolbridge.upstream.request import build_request
from toolbridge.upstream.routes import destinations_of
from toolbridge.upstream.seam import Timeouts, UpstreamRequest, UpstreamResponse


async def dry_run(gateway: Gateway, principal: Principal, name: str, arguments: Any) -> str:
    """What calling `name` with `arguments` would do, for a person to read (or paste in a shell).

    Raises what the call would raise before sending anything: ToolNotFound, InvalidArguments,
    UpstreamUnavailable for a server without a usable base URL, DestinationRefused for a
    destination the server may not reach.
    """
    tool = gateway.tool(principal, name)
    match tool.target:
        case HttpOperation() as op:
            return await _http(gateway, tool, op, arguments)
        case PythonFunction() as fn:
            return _local(fn, arguments)


def principal_for(config: Config, user: str | None) -> Principal:
    """Who a command-line call acts as: `user` of `auth.api_keys`, or by default an admin.

    Whoever can read the config can do what it allows, so the default is the anonymous admin
    (the open-mode caller); `--as USER` narrows a call to what that user may use.
    """
    if user is None:
        return ANONYMOUS_ADMIN
    keys = config.auth.api_keys if config.auth is not None else ()
    entry = next((key for key in keys if key.user == user), None)
    if entry is None:
        if not keys:
            raise ToolbridgeError(
                f"--as {user}: the config has no auth.api_keys, so there are no users to act as "
                "(without `auth`, every caller is an anonymous admin)"
            )
        users = ", ".join(sorted({key.user for key in keys}))
        raise ToolbridgeError(f"--as {user}: no such user in auth.api_keys (users: {users})")
    return Principal(
        id=entry.user, name=entry.user, groups=frozenset(entry.groups), admin=entry.admin
    )


async def _http(gateway: Gateway, tool: Tool, op: HttpOperation, arguments: Any) -> str:
    checked = ArgumentValidator(tool).check(arguments)
    server = next((s for s in gateway.config.servers if s.id == op.server), None)
    if server is None:
        raise ToolbridgeError(f"no server {op.server!r} in the config")
    conversion = _conversion(gateway, op.server)
    fixed = getattr(conversion, "fixed", {})
    checked = supplied(fixed, op, checked)
    if op.base_url is None:
        raise UpstreamUnavailable(
            op.server,
            "no base URL: set base_url in the config for this server "
            "(the document names no server)",
        )
    schemes, operations = _security(gateway, op.server)
    # Built anew, over an upstream that sends nothing: the gateway's own would fetch tokens.
    credentials = Credentials(server, schemes, upstream=_Unsent(), operations=operations)
    parts = await credentials.parts(op)
    request = build_request(op, checked, base_url=op.base_url, auth=parts, tool=tool.name)
    # A request the call would refuse to send is refused here too (DestinationRefused).
    destinations_of(server, [o.base_url for o in operations if o.base_url]).check(request.url)
    lines = []
    match server.auth:
        case OAuth2ClientCredentials():
            lines.append(
                f"# the token comes from {_shown(server.auth.token_url)} (not fetched in a dry run)"
            )
        case ForwardAuth():
            lines.append(f"# a call forwards the caller's {server.auth.header} header (none here)")
        case PerUserAuth():
            lines.append(
                f"# a call sends the caller's own credential (PUT /v1/me/credentials/{server.id})"
            )
        case _:
            pass
    given = [v for values in fixed.values() for v in argument_secrets(values)]
    lines.append(curl_line(request, (*credentials.secrets, *parts.secrets, *given)))
    return "\n".join(lines)


def _conversion(gateway: Gateway, source: str) -> Any:
    status = next((s for s in gateway.sources() if s.id == source), None)
    return status.conversion if status is not None else None


def _security(
    gateway: Gateway, source: str
) -> tuple[Mapping[str, SecurityScheme], list[HttpOperation]]:
    conversion = _conversion(gateway, source)
    if conversion is None:
        return {}, []
    schemes: Mapping[str, SecurityScheme] = getattr(conversion, "security_schemes", {})
    return schemes, [t.http for t in conversion.tools if isinstance(t.target, HttpOperation)]


def _shown(url: str) -> str:
    """A URL without its user info, query or fragment: those may hold credentials."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname or ''}{f':{parts.port}' if parts.port else ''}" + (
        parts.path
    )


class _Unsent:
    """An upstream that sends nothing: it answers a token request with a placeholder (masked
    like any token in the curl line)."""

    async def send(
        self, request: UpstreamRequest, *, timeouts: Timeouts, max_bytes: int
    ) -> UpstreamResponse:
        token = {"access_token": "dry-run-token", "token_type": "Bearer", "expires_in": 3600}
        return UpstreamResponse(
            status=200,
            headers=(("Content-Type", "application/json"),),
            body=orjson.dumps(token),
        )

    async def aclose(self) -> None:
        return None


def _local(fn: PythonFunction, arguments: Any) -> str:
    if not isinstance(arguments, dict):
        found = json_kind(arguments)
        raise InvalidArguments(fn.function, [("$", f"expected an object, found {found}")])
    try:
        parsed = fn.arguments_model.model_validate(arguments)
    except ValidationError as exc:
        raise InvalidArguments(fn.function, _problems(exc)) from None
    words = []
    for field, param, positional in type(parsed).call_plan:
        value = getattr(parsed, field)
        words.append(repr(value) if positional else f"{param}={value!r}")
    words += [f"{name}=..." for name in fn.injected]
    function = fn.function.partition(":")[2] or fn.function
    return "\n".join(
        [
            f"# {fn.function} is a local Python tool: it runs in-process, no HTTP request is sent",
            f"{function}({', '.join(words)})",
        ]
    )


def _problems(exc: ValidationError) -> list[tuple[str, str]]:
    problems = []
    for error in exc.errors():
        path = "$"
        for part in error["loc"]:
            path += f"[{part}]" if isinstance(part, int) else f".{part}"
        problems.append((path, error["msg"]))
    return problems
