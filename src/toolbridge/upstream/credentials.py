"""Upstream credentials: what a server's `auth` and `headers` add to each request it receives.

A `Credentials` is built once per server at load time, where every config mistake becomes a
`ConfigError`; per call it hands back precomputed `AuthParts` (bearer, basic, an API key placed
as the document says), except for OAuth2 tokens (a `TokenSource`, `oauth2`) and forwarded caller
headers. It builds no request and never forwards the caller's `Authorization` unless
`type: forward` says so.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable, Mapping
from types import MappingProxyType

from toolbridge.config import (
    ApiKeyAuth,
    BasicAuth,
    BearerAuth,
    ForwardAuth,
    OAuth2ClientCredentials,
    PerUserAuth,
    Server,
)
from toolbridge.errors import ConfigError
from toolbridge.tools import (
    CONNECTION_HEADERS,
    HEADER_NAME,
    UNSENDABLE,
    HttpOperation,
    SecurityScheme,
)
from toolbridge.upstream.oauth2 import Clock, TokenSource
from toolbridge.upstream.seam import AuthParts, Timeouts, Upstream
from toolbridge.upstream.static_credentials import (
    basic_credentials,
    checked_header,
    credential_of,
    header_secrets,
    static_headers,
)

_NO_HEADERS: Mapping[str, str] = MappingProxyType({})


class Credentials:
    """The credentials of one server: static parts built once, OAuth2 tokens cached and shared."""

    __slots__ = (
        "_by_scheme",
        "_static",
        "_tokens",
        "auth",
        "clock",
        "server",
        "timeouts",
        "upstream",
    )

    def __init__(
        self,
        server: Server,
        schemes: Mapping[str, SecurityScheme],
        *,
        upstream: Upstream,
        operations: Iterable[HttpOperation] = (),
        timeouts: Timeouts = Timeouts(),  # noqa: B008 -- frozen, so one shared default is safe
        clock: Clock = time.monotonic,
    ) -> None:
        """Check the config against the document's security schemes; raises ConfigError.

        Args:
            operations: the server's operations. Needed only when `api_key` gives no `name`/`in`
                and the document declares several apiKey schemes: each operation's `security`
                then picks one.
        """
        self.server = server.id
        self.auth = server.auth
        self.upstream = upstream
        self.timeouts = timeouts
        self.clock = clock
        static = static_headers(server)
        self._static = AuthParts(headers=static, secrets=header_secrets(static))
        # Set only for an api_key whose place depends on the operation: by scheme name.
        self._by_scheme: dict[str, AuthParts] = {}
        # Set only for OAuth2: the tokens, fetched, cached and shared across calls.
        self._tokens: TokenSource | None = None
        auth = server.auth
        taken = {name.lower() for name, _ in static}
        match auth:
            case None:
                pass
            case BearerAuth():
                _require(server.id, "token", auth.token)
                self._static = self._with(
                    checked_header(
                        server.id, "Authorization", f"Bearer {auth.token}", "auth.token"
                    ),
                    (auth.token,),
                    taken,
                )
            case BasicAuth():
                _require(server.id, "username", auth.username)
                if ":" in auth.username:
                    # RFC 7617 2: the user-id is everything before the first colon.
                    raise ConfigError(f"server {server.id!r}: auth.username must not contain ':'")
                blob = basic_credentials(auth.username, auth.password)
                self._static = self._with(
                    checked_header(server.id, "Authorization", f"Basic {blob}", "auth.password"),
                    (blob, auth.password),
                    taken,
                )
            case ApiKeyAuth():
                _require(server.id, "value", auth.value)
                self._check_api_key(server.id, auth, schemes, list(operations), taken)
            case OAuth2ClientCredentials():
                _require(server.id, "client_id", auth.client_id)
                self._tokens = TokenSource(
                    server.id,
                    auth,
                    static=self._static,
                    upstream=upstream,
                    timeouts=timeouts,
                    clock=clock,
                )
                _conflict(server.id, "Authorization", taken)
            case PerUserAuth():
                pass  # each caller's own credential, settled per call (gateway.py)
            case ForwardAuth():
                if (
                    not HEADER_NAME.fullmatch(auth.header)
                    or auth.header.lower() in CONNECTION_HEADERS
                ):
                    raise ConfigError(
                        f"server {server.id!r}: auth.header: {auth.header!r} cannot be forwarded "
                        "(expected a header name other than the connection's own: Host, "
                        "Content-Length, Transfer-Encoding, Connection, Upgrade, ...)"
                    )
                _conflict(server.id, auth.header, taken)

    # -- per call ------------------------------------------------------------------------------

    async def parts(
        self, op: HttpOperation | None, caller_headers: Mapping[str, str] = _NO_HEADERS
    ) -> AuthParts:
        """What to add to the request for `op` (None: a request that is no operation's, such as
        fetching the document). Raises UpstreamUnavailable when an OAuth2 token cannot be had.
        """
        if self._tokens is not None:
            return await self._tokens.parts()
        match self.auth:
            case ForwardAuth():
                return self._forward_parts(self.auth.header, caller_headers)
            case ApiKeyAuth() if self._by_scheme:
                return self._api_key_parts(op.security if op is not None else ())
            case _:
                return self._static

    def discard(self, access_token: str) -> None:
        """Forget a fetched token the upstream refused (401), so the next call fetches anew.

        Only that token: a newer one another call already fetched stays.
        """
        if self._tokens is not None:
            self._tokens.discard(access_token)

    @property
    def secrets(self) -> tuple[str, ...]:
        """Every secret this server's config holds, and the current token: for masking errors."""
        out = list(self._static.secrets)
        match self.auth:
            case ApiKeyAuth():
                out.append(self.auth.value)
            case OAuth2ClientCredentials() if self._tokens is not None:
                out += self._tokens.secrets
            case _:
                pass
        return tuple(dict.fromkeys(s for s in out if s))

    def __repr__(self) -> str:
        kind = self.auth.type if self.auth is not None else "none"
        names = ", ".join(name for name, _ in self._static.headers)
        return f"<Credentials server={self.server!r} auth={kind!r} headers=[{names}]>"

    # -- api_key -------------------------------------------------------------------------------

    def _check_api_key(
        self,
        server: str,
        auth: ApiKeyAuth,
        schemes: Mapping[str, SecurityScheme],
        operations: list[HttpOperation],
        taken: set[str],
    ) -> None:
        """Settle where the key goes: the config's name and `in`, completed from the document."""
        if auth.name is not None and auth.location is not None:
            self._static = self._api_key_with(_Slot(auth.location, auth.name), auth.value, taken)
            return
        declared = {
            key: _Slot(s.location, s.name)
            for key, s in schemes.items()
            if s.type == "apiKey" and s.location in ("header", "query", "cookie") and s.name
        }
        # A scheme whose name no request can carry (`X-Key: injected`, `Host`, a cookie name
        # with `;`) is the document's fault: it takes no key, and the others serve.
        unusable = {
            key: slot for key, slot in declared.items() if not carried(slot.location, slot.name)
        }
        declared = {key: slot for key, slot in declared.items() if key not in unusable}
        fitting = {
            key: slot
            for key, slot in declared.items()
            if (auth.name is None or slot.same_name(auth.name))
            and (auth.location is None or slot.location == auth.location)
        }
        distinct = set(fitting.values())
        if not distinct:
            raise ConfigError(_api_key_missing(server, auth, declared, unusable))
        if len(distinct) == 1:
            slot = distinct.pop()
            # The config's spelling of the name wins over the document's.
            self._static = self._api_key_with(
                _Slot(slot.location, auth.name or slot.name), auth.value, taken
            )
            return
        # Several schemes fit: each operation's security names the one it takes.
        if not any(_named(op.security, fitting) for op in operations):
            listed = ", ".join(f"{key} ({slot})" for key, slot in sorted(fitting.items()))
            raise ConfigError(
                f"server {server!r}: auth: the document declares several apiKey schemes "
                f"({listed}) and no operation's security names one; set 'name' and 'in' to "
                "say where the key goes"
            )
        # Every fitting scheme is checked now, so a bad name fails at load, not on a call.
        self._by_scheme = {
            key: self._api_key_with(slot, auth.value, taken) for key, slot in fitting.items()
        }

    def _api_key_parts(self, security: tuple[tuple[str, ...], ...]) -> AuthParts:
        """The first scheme the operation's security names: alternatives are ORs, so any one
        will do. An operation that names none takes no key (the document says it needs none)."""
        name = _named(security, self._by_scheme)
        return self._by_scheme[name] if name is not None else self._static

    def _api_key_with(self, slot: _Slot, value: str, taken: set[str]) -> AuthParts:
        server = self.server
        secrets = (value, *self._static.secrets)
        if slot.location != "query" and (
            not HEADER_NAME.fullmatch(slot.name) or slot.name.lower() in CONNECTION_HEADERS
        ):
            raise ConfigError(
                f"server {server!r}: auth.name: {slot.name!r} cannot name a {slot.location}"
            )
        if slot.location == "header":
            return self._with(
                checked_header(server, slot.name, value, "auth.value"), (value,), taken
            )
        if UNSENDABLE.search(value) or (slot.location == "cookie" and re.search(r"[;,\s]", value)):
            raise ConfigError(
                f"server {server!r}: auth.value contains characters a {slot.location} cannot carry"
            )
        pair = ((slot.name, value),)
        if slot.location == "query":
            return AuthParts(headers=self._static.headers, query=pair, secrets=secrets)
        return AuthParts(headers=self._static.headers, cookies=pair, secrets=secrets)

    # -- forward and helpers -------------------------------------------------------------------

    def _forward_parts(self, header: str, caller_headers: Mapping[str, str]) -> AuthParts:
        value = caller_headers.get(header)
        if value is None:
            lowered = header.lower()
            value = next((v for k, v in caller_headers.items() if k.lower() == lowered), None)
        # A value that cannot be sent (control characters) is dropped, not forwarded mangled:
        # the upstream then answers 401, which the model reads as any other refusal.
        if not value or UNSENDABLE.search(value):
            return self._static
        return self._with((header, value), credential_of(value), set())

    def _with(self, header: tuple[str, str], secrets: Iterable[str], taken: set[str]) -> AuthParts:
        """The static parts with one more header in front, checked against the static ones."""
        _conflict(self.server, header[0], taken)
        return AuthParts(
            headers=(header, *self._static.headers),
            secrets=tuple(dict.fromkeys((*secrets, *self._static.secrets))),
        )


class _Slot:
    """Where an API key goes: a header (case-insensitive name), query parameter or cookie."""

    __slots__ = ("location", "name")

    def __init__(self, location: str, name: str) -> None:
        self.location = location
        self.name = name

    def same_name(self, name: str) -> bool:
        if self.location == "header":
            return self.name.lower() == name.lower()
        return self.name == name

    def _key(self) -> tuple[str, str]:
        return (self.location, self.name.lower() if self.location == "header" else self.name)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Slot) and self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __str__(self) -> str:
        return f"{self.location} {self.name!r}"


# -- small pure helpers ----------------------------------------------------------------------


def _conflict(server: str, name: str, taken: set[str]) -> None:
    if name.lower() in taken:
        raise ConfigError(
            f"server {server!r}: headers.{name} conflicts with auth, which sets {name} itself; "
            "remove one of them"
        )


def _require(server: str, key: str, value: str) -> None:
    if not value:
        raise ConfigError(
            f"server {server!r}: auth.{key} is empty (is its environment variable set?)"
        )


def supplied_slots(server: Server) -> frozenset[tuple[str, str]]:
    """(location, name) of each value the server's config sends with every request: its
    `headers`, and where its `auth` puts a key it names. A document's parameter there is no
    argument (`openapi.parameters`, which compares them as it compares parameters): a model
    would be asked for a value (a token, often) that the config's replaces. (`Authorization`
    is never an argument anyway.)"""
    slots = {("header", name) for name in server.headers}
    auth = server.auth
    if isinstance(auth, ForwardAuth):
        slots.add(("header", auth.header))
    keyed = isinstance(auth, ApiKeyAuth) or (
        isinstance(auth, PerUserAuth) and auth.scheme == "api_key"
    )
    # (without a name and place, the document's scheme says where: `credential-parameter`)
    if keyed and isinstance(auth, ApiKeyAuth | PerUserAuth) and auth.name and auth.location:
        slots.add((auth.location, auth.name))
    return frozenset(slots)


def carried(location: str, name: str) -> bool:
    """Whether a request can carry a key where an apiKey scheme puts it."""
    if location == "query":
        return not UNSENDABLE.search(name)
    if location == "cookie" and re.search(r"[;,=\s]", name):
        return False
    return HEADER_NAME.fullmatch(name) is not None and name.lower() not in CONNECTION_HEADERS


def _api_key_missing(
    server: str, auth: ApiKeyAuth, declared: dict[str, _Slot], unusable: dict[str, _Slot]
) -> str:
    missing = " and ".join(
        repr(k) for k, v in (("name", auth.name), ("in", auth.location)) if v is None
    )
    if not declared and unusable:
        listed = ", ".join(
            f"{key} ({slot.location} {slot.name!r})" for key, slot in sorted(unusable.items())
        )
        found = f"the document's apiKey schemes name a place no request can carry a key: {listed}"
    elif not declared:
        found = "the document declares no apiKey security scheme to take it from"
    else:
        listed = ", ".join(f"{key} ({slot})" for key, slot in sorted(declared.items()))
        found = f"none of the document's apiKey schemes fits: {listed}"
    verb = "are" if " and " in missing else "is"
    return f"server {server!r}: auth: api_key {missing} {verb} missing and {found}"


def _named(security: tuple[tuple[str, ...], ...], schemes: Mapping[str, object]) -> str | None:
    """The first scheme among `schemes` that the operation's security requirements name."""
    for alternative in security:
        for name in alternative:
            if name in schemes:
                return name
    return None
