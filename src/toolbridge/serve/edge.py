"""The HTTP edge: whose requests the gateway takes at all, before any route sees them.

- **Host** (DNS rebinding): the `Host` header must be one of `http.allowed_hosts`; without
  that key, any host when callers authenticate (`auth`), and loopback names only (localhost,
  any 127.x address, [::1], any port) in open mode, where every caller is an admin. Else 421.
- **Origin** (cross-site requests, and what the MCP specification asks of `/mcp`): a request
  that carries an `Origin` must come from the gateway's own origin, a loopback origin in open
  mode, or one of `http.allowed_origins`. Else 403.
- **Cross-site simple requests** (CSRF): a state-changing request (POST, PUT, PATCH, DELETE)
  that a browser marks `Sec-Fetch-Site: cross-site` or `same-site` is refused (403) unless
  its Origin is allowed, even without an `Origin` header; browsers send one of the two on
  every cross-site form or `text/plain` POST.
- **CORS**, for the origins taken (a browser app on another origin: Open WebUI's tool servers
  added by a user are called from the browser, as are browser MCP clients): a preflight
  (`OPTIONS` with `Access-Control-Request-Method`) is answered here, 204, before any route or
  credential check (it carries none); every answer to such an origin says it may read it
  (`Access-Control-Allow-Origin`, `Vary: Origin`) and the headers a client needs
  (`Mcp-Session-Id`, `ETag`, `Retry-After`, ...). No cookies are asked for: callers send
  their key or token in `Authorization`.

A path's trailing slash is dropped (`/v1/tools/` is `/v1/tools`, a path no endpoint has a 404),
never answered with a redirect.

Trusts only the config; reads the current config at each request, so a reload applies.
Connection limits (timeouts, header sizes) are `connection.py`'s, below the app.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import orjson

from toolbridge.config import Http
from toolbridge.hosts import HostError, address_of, canonical_host

Message = MutableMapping[str, Any]
Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "[::1]", "::1")
STATE_CHANGING = frozenset({"POST", "PUT", "PATCH", "DELETE"})


class Edge:
    """ASGI middleware: refuses requests whose Host, Origin or fetch site the config does not
    allow. `settings()` answers the current `http` settings and whether the gateway is open."""

    def __init__(self, app: ASGIApp, settings: Callable[[], tuple[Http, bool]]) -> None:
        self.app = app
        self.settings = settings

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope.get("path", "")
        if len(path) > 1 and path.endswith("/"):
            # `/v1/tools/` is `/v1/tools`. The router answered it with a redirect built from the
            # Host header: a 307 to whatever host the request named, before authentication.
            scope = {**scope, "path": path.rstrip("/") or "/"}
        http, open_mode = self.settings()
        host = origin = site = None
        for name, value in scope.get("headers", ()):
            if name == b"host":
                host = value.decode("latin-1")
            elif name == b"origin":
                origin = value.decode("latin-1")
            elif name == b"sec-fetch-site":
                site = value.decode("latin-1")
        problem = refusal(
            http,
            open_mode,
            method=scope.get("method", "GET"),
            host=host,
            origin=origin,
            site=site,
            scheme=scope.get("scheme", "http"),
        )
        if problem is None:
            if origin is None or same_origin(origin, own_origin(scope.get("scheme"), host)):
                await self.app(scope, receive, send)
                return
            await self._cross_origin(scope, receive, send, origin)
            return
        status, kind, message = problem
        body = orjson.dumps({"error": {"type": kind, "message": message}})
        headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    async def _cross_origin(self, scope: Scope, receive: Receive, send: Send, origin: str) -> None:
        """A request from another origin the config takes: its preflight answered, or its
        answer marked readable by that origin."""
        allow = [(b"access-control-allow-origin", origin.encode("latin-1")), (b"vary", b"Origin")]
        requested = asked = None
        for name, value in scope.get("headers", ()):
            if name == b"access-control-request-method":
                requested = value
            elif name == b"access-control-request-headers":
                asked = value
        if scope.get("method") == "OPTIONS" and requested is not None:
            # The origin is one the config takes: whatever headers its app asks to send.
            headers = [
                *allow,
                (b"access-control-allow-methods", CORS_METHODS),
                (b"access-control-allow-headers", asked or CORS_REQUEST_HEADERS),
                (b"access-control-max-age", b"600"),
                (b"content-length", b"0"),
            ]
            await send({"type": "http.response.start", "status": 204, "headers": headers})
            await send({"type": "http.response.body", "body": b""})
            return

        async def marked(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers, vary = [], [b"Origin"]
                for key, value in message.get("headers", ()):
                    if key.lower() == b"vary":
                        vary.insert(-1, value)
                    elif not key.lower().startswith(b"access-control-"):
                        headers.append((key, value))
                headers += [
                    allow[0],
                    (b"access-control-expose-headers", CORS_EXPOSED),
                    (b"vary", b", ".join(vary)),
                ]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, marked)


CORS_METHODS = b"GET, POST, PUT, PATCH, DELETE, OPTIONS"
CORS_REQUEST_HEADERS = (
    b"Authorization, Content-Type, Accept, Accept-Encoding, If-None-Match, Last-Event-ID, "
    b"Mcp-Session-Id, Mcp-Protocol-Version, X-Toolbridge-User-Valves, X-Toolbridge-Filter-Valves"
)
"""What a browser client may send besides the simple headers, when its preflight does not say
(it says, as a rule, and is answered with what it asked): its key or token, JSON bodies,
conditional lists, MCP's session and version, a caller's UserValves."""
CORS_EXPOSED = b"Mcp-Session-Id, ETag, Retry-After, WWW-Authenticate, Content-Encoding"
"""What a browser client may read of an answer besides the simple headers."""


def refusal(
    http: Http,
    open_mode: bool,
    *,
    method: str,
    host: str | None,
    origin: str | None,
    site: str | None,
    scheme: str = "http",
) -> tuple[int, str, str] | None:
    """(status, error type, message) when a request must be refused; None when it may pass."""
    if host is not None and not host_allowed(http, open_mode, host):
        return (
            421,
            "misdirected_request",
            f"the Host {host[:100]!r} is not served here (http.allowed_hosts; in open mode, "
            "loopback names only)",
        )
    own = own_origin(scheme, host)
    if origin is not None and not origin_allowed(http, open_mode, origin, own):
        return (
            403,
            "forbidden",
            f"requests from the origin {origin[:100]!r} are not accepted (http.allowed_origins)",
        )
    cross_site = site in ("cross-site", "same-site")
    if method in STATE_CHANGING and cross_site and origin is None:
        return (
            403,
            "forbidden",
            f"a {site} {method} without an Origin is refused (cross-site request forgery)",
        )
    return None


def host_allowed(http: Http, open_mode: bool, host: str) -> bool:
    name = _without_port(host.lower())
    allowed = http.allowed_hosts
    if allowed is None:
        return not open_mode or _loopback(name)
    return any(
        pattern == "*" or fnmatch.fnmatchcase(host.lower(), p) or fnmatch.fnmatchcase(name, p)
        for pattern in allowed
        if (p := pattern.lower())
    )


def own_origin(scheme: str | None, host: str | None) -> str | None:
    """The gateway's own origin, as the request reached it (None without a Host)."""
    return f"{scheme or 'http'}://{host}" if host else None


def same_origin(origin: str, own: str | None) -> bool:
    return own is not None and origin.lower().rstrip("/") == own.lower()


def origin_allowed(http: Http, open_mode: bool, origin: str, own: str | None) -> bool:
    if same_origin(origin, own):
        return True
    origin = origin.lower().rstrip("/")
    if open_mode and http.allowed_origins is None:
        scheme, _, rest = origin.partition("://")
        return scheme in ("http", "https") and _loopback(_without_port(rest))
    return any(
        pattern == "*" or origin == pattern.lower().rstrip("/")
        for pattern in http.allowed_origins or ()
    )


def _loopback(name: str) -> bool:
    """localhost, or an address of the loopback network (127.0.0.0/8, ::1), however spelled."""
    if name in LOOPBACK_HOSTS:
        return True
    try:
        address = address_of(canonical_host(name.strip("[]")))
    except HostError:
        return False
    return address is not None and address.is_loopback


def _without_port(host: str) -> str:
    if host.startswith("["):
        return host[: host.find("]") + 1] if "]" in host else host
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host
