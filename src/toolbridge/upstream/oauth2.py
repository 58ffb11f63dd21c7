"""OAuth2 client credentials: a `TokenSource` fetches one server's token through the `Upstream`
seam (RFC 6749 4.4), caches it, refreshes it before it expires, and fetches once for concurrent
calls. Its errors never carry a secret. Static credentials and choosing among auth types are
`credentials`' business.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable
from typing import Any
from urllib.parse import quote_plus, urlencode, urlsplit

import orjson

from toolbridge.config import OAuth2ClientCredentials
from toolbridge.errors import ConfigError, UpstreamUnavailable
from toolbridge.tools import UNSENDABLE
from toolbridge.upstream.seam import AuthParts, Timeouts, Upstream, UpstreamRequest
from toolbridge.upstream.static_credentials import basic_credentials, redact

DEFAULT_EXPIRES_IN = 3600.0
"""Token lifetime assumed when the token endpoint does not say (RFC 6749 5.1 makes it optional)."""
EXPIRY_MARGIN = 60.0
"""A token is refreshed this long before it expires, so no request leaves with a stale one."""
MAX_TOKEN_RESPONSE_BYTES = 64 * 1024

Clock = Callable[[], float]


class TokenSource:
    """The tokens of one server: fetched once for concurrent calls, cached and shared, refreshed."""

    __slots__ = (
        "_expires_at",
        "_failure",
        "_fetches",
        "_lock",
        "_token_parts",
        "auth",
        "clock",
        "server",
        "static",
        "timeouts",
        "upstream",
    )

    def __init__(
        self,
        server: str,
        auth: OAuth2ClientCredentials,
        *,
        static: AuthParts,
        upstream: Upstream,
        timeouts: Timeouts,
        clock: Clock,
    ) -> None:
        """Check the token URL; raises ConfigError.

        Args:
            static: the server's static parts (its config `headers`), sent behind the token.
        """
        _check_token_url(server, auth.token_url)
        self.server = server
        self.auth = auth
        self.static = static
        self.upstream = upstream
        self.timeouts = timeouts
        self.clock = clock
        self._token_parts: AuthParts | None = None
        self._expires_at = 0.0
        self._failure: UpstreamUnavailable | None = None
        self._fetches = 0
        # Created unbound: asyncio binds a lock to the running loop on first contention.
        self._lock = asyncio.Lock()

    async def parts(self) -> AuthParts:
        """The static parts with a valid token in front; raises UpstreamUnavailable when no token
        can be had."""
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
                token, lifetime = await self._fetch_token(self.auth)
            except UpstreamUnavailable as exc:
                self._failure = exc
                raise
            finally:
                self._fetches += 1
            parts = AuthParts(
                headers=(("Authorization", f"Bearer {token}"), *self.static.headers),
                secrets=tuple(dict.fromkeys((token, *self.static.secrets))),
            )
            self._token_parts = parts
            self._expires_at = self.clock() + lifetime - min(EXPIRY_MARGIN, lifetime / 2)
            return parts

    def discard(self, access_token: str) -> None:
        """Forget a fetched token the upstream refused (401), so the next call fetches anew.

        Only that token: a newer one another call already fetched stays.
        """
        if self._token_parts is not None and access_token in self._token_parts.secrets:
            self._token_parts = None

    @property
    def secrets(self) -> tuple[str, ...]:
        """The client secret, as given and as sent, then the current token's parts' secrets."""
        out = [
            self.auth.client_secret,
            _client_basic(self.auth.client_id, self.auth.client_secret),
        ]
        if self._token_parts is not None:
            out += self._token_parts.secrets
        return tuple(out)

    async def _fetch_token(self, auth: OAuth2ClientCredentials) -> tuple[str, float]:
        """POST the client credentials grant (RFC 6749 4.4); the token and its lifetime."""
        where = f"token endpoint {_display_url(auth.token_url)}"
        form = {"grant_type": "client_credentials"}
        if auth.scopes:
            form["scope"] = " ".join(auth.scopes)
        request = UpstreamRequest(
            server=self.server,
            pool=f"token:{self.server}",  # (never a call's connection: see UpstreamRequest.pool)
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
        if UNSENDABLE.search(token):
            raise self._token_error(f"{where} answered with an access_token no header can carry")
        # token_type is not checked: providers spell it freely ("Bearer", "bearer", "JWT"), and
        # a client credentials token is used as a bearer token in practice.
        return token, _lifetime(body.get("expires_in"))

    def _token_error(self, message: str, *, timeout: bool = False) -> UpstreamUnavailable:
        # The endpoint's own words (error_description, a transport error's URL) are quoted, and
        # nothing guarantees they do not echo what we sent.
        secrets = (*self.static.secrets, *self.secrets)
        return UpstreamUnavailable(self.server, redact(message, secrets), timeout=timeout)


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


def _client_basic(client_id: str, client_secret: str) -> str:
    # RFC 6749 2.3.1: id and secret are form-urlencoded before Basic encoding, so a ':' in
    # either survives.
    return basic_credentials(quote_plus(client_id, safe=""), quote_plus(client_secret, safe=""))


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
    text = UNSENDABLE.sub(" ", text)
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
