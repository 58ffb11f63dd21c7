"""Upstream credentials: what a server's `auth` and `headers` add to each request it receives.

A `Credentials` is built once per server at load time, where every config mistake becomes a
`ConfigError`; per call it hands back precomputed `AuthParts`, except for OAuth2 tokens (fetched
through the `Upstream` seam, cached, refreshed) and forwarded caller headers. It builds no
request and never forwards the caller's `Authorization` unless `type: forward` says so.
"""

from __future__ import annotations

import asyncio
import base64
import math
import re
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from types import MappingProxyType
from typing import Any
from urllib.parse import quote, quote_plus, urlencode, urlsplit

import orjson

from toolbridge.config import (
    ApiKeyAuth,
    BasicAuth,
    BearerAuth,
    ForwardAuth,
    OAuth2ClientCredentials,
    Server,
)
from toolbridge.errors import ConfigError, UpstreamUnavailable
from toolbridge.tools import HttpOperation, SecurityScheme
from toolbridge.upstream.seam import AuthParts, Headers, Timeouts, Upstream, UpstreamRequest

DEFAULT_EXPIRES_IN = 3600.0
"""Token lifetime assumed when the token endpoint does not say (RFC 6749 5.1 makes it optional)."""
EXPIRY_MARGIN = 60.0
"""A token is refreshed this long before it expires, so no request leaves with a stale one."""
MAX_TOKEN_RESPONSE_BYTES = 64 * 1024
MIN_SECRET_LENGTH = 4
"""Shorter values are not masked: hiding every `a` or `42` in a log would hide the log."""

_NO_HEADERS: Mapping[str, str] = MappingProxyType({})
_TOKEN = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
"""A valid HTTP header name (RFC 9110 5.6.2)."""
_UNSENDABLE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
"""Control characters (tab aside): in a header value they would split or corrupt the request."""
_SECRET_NAME = re.compile(r"auth|token|secret|key|passw|cookie|session|credential|signature", re.I)
_FRAMING = frozenset({"host", "content-length", "transfer-encoding", "connection"})
"""Headers the HTTP client owns: a configured value would break the request's framing."""

Clock = Callable[[], float]


class Credentials:
    """The credentials of one server: static parts built once, OAuth2 tokens cached and shared."""

    __slots__ = (
        "_by_scheme",
        "_expires_at",
        "_failure",
        "_fetches",
        "_lock",
        "_static",
        "_token_parts",
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
        static = _static_headers(server)
        self._static = AuthParts(headers=static, secrets=_header_secrets(static))
        # Set only for an api_key whose place depends on the operation: by scheme name.
        self._by_scheme: dict[str, AuthParts] = {}
        self._token_parts: AuthParts | None = None
        self._expires_at = 0.0
        self._failure: UpstreamUnavailable | None = None
        self._fetches = 0
        # Created unbound: asyncio binds a lock to the running loop on first contention.
        self._lock = asyncio.Lock()
        auth = server.auth
        taken = {name.lower() for name, _ in static}
        match auth:
            case None:
                pass
            case BearerAuth():
                _require(server.id, "token", auth.token)
                self._static = self._with(
                    _header(server.id, "Authorization", f"Bearer {auth.token}", "auth.token"),
                    (auth.token,),
                    taken,
                )
            case BasicAuth():
                _require(server.id, "username", auth.username)
                if ":" in auth.username:
                    # RFC 7617 2: the user-id is everything before the first colon.
                    raise ConfigError(f"server {server.id!r}: auth.username must not contain ':'")
                blob = _basic(auth.username, auth.password)
                self._static = self._with(
                    _header(server.id, "Authorization", f"Basic {blob}", "auth.password"),
                    (blob, auth.password),
                    taken,
                )
            case ApiKeyAuth():
                _require(server.id, "value", auth.value)
                self._check_api_key(server.id, auth, schemes, list(operations), taken)
            case OAuth2ClientCredentials():
                _require(server.id, "client_id", auth.client_id)
                _check_token_url(server.id, auth.token_url)
                _conflict(server.id, "Authorization", taken)
            case ForwardAuth():
                if not _TOKEN.match(auth.header) or auth.header.lower() in _FRAMING:
                    raise ConfigError(
                        f"server {server.id!r}: auth.header: {auth.header!r} cannot be forwarded "
                        "(expected a header name other than Host, Content-Length, "
                        "Transfer-Encoding, Connection)"
                    )
                _conflict(server.id, auth.header, taken)

    # -- per call ------------------------------------------------------------------------------

    async def parts(
        self, op: HttpOperation | None, caller_headers: Mapping[str, str] = _NO_HEADERS
    ) -> AuthParts:
        """What to add to the request for `op` (None: a request that is no operation's, such as
        fetching the document). Raises UpstreamUnavailable when an OAuth2 token cannot be had.
        """
        match self.auth:
            case OAuth2ClientCredentials():
                return await self._oauth2_parts(self.auth)
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
        if self._token_parts is not None and access_token in self._token_parts.secrets:
            self._token_parts = None

    @property
    def secrets(self) -> tuple[str, ...]:
        """Every secret this server's config holds, and the current token: for masking errors."""
        out = list(self._static.secrets)
        match self.auth:
            case ApiKeyAuth():
                out.append(self.auth.value)
            case OAuth2ClientCredentials():
                out += [
                    self.auth.client_secret,
                    _client_basic(self.auth.client_id, self.auth.client_secret),
                ]
                if self._token_parts is not None:
                    out += self._token_parts.secrets
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
        fitting = {
            key: slot
            for key, slot in declared.items()
            if (auth.name is None or slot.same_name(auth.name))
            and (auth.location is None or slot.location == auth.location)
        }
        distinct = set(fitting.values())
        if not distinct:
            raise ConfigError(_api_key_missing(server, auth, declared))
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
            not _TOKEN.match(slot.name) or slot.name.lower() in _FRAMING
        ):
            raise ConfigError(
                f"server {server!r}: auth.name: {slot.name!r} cannot name a {slot.location}"
            )
        if slot.location == "header":
            return self._with(_header(server, slot.name, value, "auth.value"), (value,), taken)
        if _UNSENDABLE.search(value) or (slot.location == "cookie" and re.search(r"[;,\s]", value)):
            raise ConfigError(
                f"server {server!r}: auth.value contains characters a {slot.location} cannot carry"
            )
        pair = ((slot.name, value),)
        if slot.location == "query":
            return AuthParts(headers=self._static.headers, query=pair, secrets=secrets)
        return AuthParts(headers=self._static.headers, cookies=pair, secrets=secrets)

    # -- oauth2 --------------------------------------------------------------------------------

    async def _oauth2_parts(self, auth: OAuth2ClientCredentials) -> AuthParts:
        parts = self._token_parts
        if parts is not None and self.clock() < self._expires_at:
            return parts
        seen = self._fetches
        async with self._lock:
            parts = self._token_parts
            if parts is not None and self.clock() < self._expires_at:
                return parts  # fetched by the call we were waiting on
            if self._fetches != seen and self._failure is not None:
                # The fetch we queued behind just failed: share its answer instead of making
                # every waiting call try again, one after the other, against a failing endpoint.
                raise UpstreamUnavailable(
                    self.server, _plain(self._failure, self.server), timeout=self._failure.timeout
                )
            self._failure = None
            try:
                token, lifetime = await self._fetch_token(auth)
            except UpstreamUnavailable as exc:
                self._failure = exc
                raise
            finally:
                self._fetches += 1
            parts = self._with(("Authorization", f"Bearer {token}"), (token,), set())
            self._token_parts = parts
            self._expires_at = self.clock() + lifetime - min(EXPIRY_MARGIN, lifetime / 2)
            return parts

    async def _fetch_token(self, auth: OAuth2ClientCredentials) -> tuple[str, float]:
        """POST the client credentials grant (RFC 6749 4.4); the token and its lifetime."""
        where = f"token endpoint {_display_url(auth.token_url)}"
        form = {"grant_type": "client_credentials"}
        if auth.scopes:
            form["scope"] = " ".join(auth.scopes)
        request = UpstreamRequest(
            server=self.server,
            method="POST",
            url=auth.token_url,
            headers=(
                ("Authorization", f"Basic {_client_basic(auth.client_id, auth.client_secret)}"),
                ("Content-Type", "application/x-www-form-urlencoded"),
                ("Accept", "application/json"),
            ),
            body=urlencode(form).encode(),
        )
        try:
            response = await self.upstream.send(
                request, timeouts=self.timeouts, max_bytes=MAX_TOKEN_RESPONSE_BYTES
            )
        except UpstreamUnavailable as exc:
            message = f"{where}: {_plain(exc, self.server)}"
            raise self._token_error(message, timeout=exc.timeout) from exc
        body = _json_object(response.body) if not response.truncated else None
        if not 200 <= response.status < 300:
            raise self._token_error(f"{where} answered HTTP {response.status}{_oauth_error(body)}")
        if body is None:
            kind = response.header("content-type") or "no content type"
            raise self._token_error(
                f"{where} answered HTTP {response.status} with a body that is not a JSON object "
                f"({kind}{', cut at the size limit' if response.truncated else ''})"
            )
        token = body.get("access_token")
        if not isinstance(token, str) or not token:
            raise self._token_error(f"{where} answered HTTP {response.status} without access_token")
        if _UNSENDABLE.search(token):
            raise self._token_error(f"{where} answered with an access_token no header can carry")
        # token_type is not checked: providers spell it freely ("Bearer", "bearer", "JWT"), and
        # a client credentials token is used as a bearer token in practice.
        return token, _lifetime(body.get("expires_in"))

    def _token_error(self, message: str, *, timeout: bool = False) -> UpstreamUnavailable:
        # The endpoint's own words (error_description, a transport error's URL) are quoted, and
        # nothing guarantees they do not echo what we sent.
        return UpstreamUnavailable(self.server, redact(message, self.secrets), timeout=timeout)

    # -- forward and helpers -------------------------------------------------------------------

    def _forward_parts(self, header: str, caller_headers: Mapping[str, str]) -> AuthParts:
        value = caller_headers.get(header)
        if value is None:
            lowered = header.lower()
            value = next((v for k, v in caller_headers.items() if k.lower() == lowered), None)
        # A value that cannot be sent (control characters) is dropped, not forwarded mangled:
        # the upstream then answers 401, which the model reads as any other refusal.
        if not value or _UNSENDABLE.search(value):
            return self._static
        return self._with((header, value), _credential_of(value), set())

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


def redact(text: str, secrets: Sequence[str]) -> str:
    """`text` with every secret (and its URL-encoded forms) replaced by `***`.

    Values shorter than MIN_SECRET_LENGTH are left alone. Longer secrets are matched first, so
    a secret that contains another is masked whole.
    """
    forms: set[str] = set()
    for secret in secrets:
        if len(secret) >= MIN_SECRET_LENGTH:
            # A query API key or a forwarded token shows up percent-encoded in URLs and curl lines.
            forms.update((secret, quote(secret, safe=""), quote_plus(secret, safe="")))
    if not forms:
        return text
    pattern = "|".join(re.escape(s) for s in sorted(forms, key=len, reverse=True))
    return re.sub(pattern, "***", text)


# -- small pure helpers ----------------------------------------------------------------------


def _static_headers(server: Server) -> Headers:
    out: list[tuple[str, str]] = []
    for name, value in server.headers.items():
        if not _TOKEN.match(name):
            raise ConfigError(f"server {server.id!r}: headers: {name!r} is no header name")
        if name.lower() in _FRAMING:
            raise ConfigError(
                f"server {server.id!r}: headers.{name}: set by the HTTP client, not by config"
            )
        out.append(_header(server.id, name, value, f"headers.{name}"))
    seen: set[str] = set()
    for name, _ in out:
        if name.lower() in seen:
            raise ConfigError(f"server {server.id!r}: headers: {name!r} is given twice")
        seen.add(name.lower())
    return tuple(out)


def _header(server: str, name: str, value: str, key: str) -> tuple[str, str]:
    if _UNSENDABLE.search(value):
        # The value is a secret: say which key holds it, never what it is.
        raise ConfigError(
            f"server {server!r}: {key} contains a line break or control character, which no "
            "HTTP header can carry"
        )
    return (name, value)


def _header_secrets(headers: Headers) -> tuple[str, ...]:
    out: list[str] = []
    for name, value in headers:
        if _SECRET_NAME.search(name):
            out += _credential_of(value)
    return tuple(dict.fromkeys(out))


def _credential_of(value: str) -> tuple[str, ...]:
    """The value, and the credential alone when it follows a scheme word (`Bearer abc`)."""
    scheme, _, rest = value.partition(" ")
    if rest.strip() and re.fullmatch(r"[A-Za-z][A-Za-z0-9_-]*", scheme):
        return (value, rest.strip())
    return (value,)


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


def _check_token_url(server: str, url: str) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(
            f"server {server!r}: auth.token_url: expected an absolute http(s) URL, "
            f"found {_display_url(url)!r}"
        )
    if parts.username is not None or parts.password is not None:
        raise ConfigError(
            f"server {server!r}: auth.token_url must not carry credentials; "
            "use client_id and client_secret"
        )


def _display_url(url: str) -> str:
    """The URL without user info or query, either of which could hold a secret."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    port = f":{parts.port}" if parts.port is not None else ""
    return f"{parts.scheme}://{host}{port}{parts.path}" if parts.scheme else parts.path


def _basic(user: str, password: str) -> str:
    return base64.b64encode(f"{user}:{password}".encode()).decode("ascii")


def _client_basic(client_id: str, client_secret: str) -> str:
    # RFC 6749 2.3.1: id and secret are form-urlencoded before Basic encoding, so a ':' in
    # either survives.
    return _basic(quote_plus(client_id, safe=""), quote_plus(client_secret, safe=""))


def _api_key_missing(server: str, auth: ApiKeyAuth, declared: dict[str, _Slot]) -> str:
    missing = " and ".join(
        repr(k) for k, v in (("name", auth.name), ("in", auth.location)) if v is None
    )
    if not declared:
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


def _json_object(body: bytes) -> dict[str, Any] | None:
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    return value if isinstance(value, dict) else None


def _oauth_error(body: dict[str, Any] | None) -> str:
    """RFC 6749 5.2's error code and description, when the endpoint gave them."""
    if body is None or not isinstance(body.get("error"), str):
        return ""
    description = body.get("error_description")
    text = body["error"] + (f": {description}" if isinstance(description, str) else "")
    text = _UNSENDABLE.sub(" ", text)
    return f" ({text[:200]})"


def _lifetime(expires_in: Any) -> float:
    # Some providers send the number as a string; anything unusable means "not given".
    if isinstance(expires_in, str):
        try:
            expires_in = float(expires_in)
        except ValueError:
            return DEFAULT_EXPIRES_IN
    if (
        isinstance(expires_in, bool)
        or not isinstance(expires_in, int | float)
        or not math.isfinite(expires_in)
    ):
        return DEFAULT_EXPIRES_IN
    return max(float(expires_in), 0.0)


def _plain(exc: UpstreamUnavailable, server: str) -> str:
    """The message without the `upstream 'id': ` prefix the exception adds."""
    return str(exc).removeprefix(f"upstream {server!r}: ")
