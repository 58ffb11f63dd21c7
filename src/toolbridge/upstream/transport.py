"""How one server's connections are made: the CA bundle it trusts, the client certificate it
shows, the proxy its requests go through, and the client that can do all of that.

A `Transport` comes from a server's `ca_file`, `client_cert`, `client_key` and `proxy`, and the
proxy variables the config was read with (`HTTPS_PROXY`, `HTTP_PROXY`, `ALL_PROXY`, `NO_PROXY`,
lower case first). Our own client does TLS with a CA bundle and a client certificate but does
not speak to proxies, so a server whose requests may go through one gets `ProxiedUpstream`:
aiohttp's client for the requests a proxy carries, ours for the others. Servers with the same
transport (and the same file contents) share one client (`Clients`), kept across reloads.
Trusts the files the config names; reads nothing else.
"""

from __future__ import annotations

import hashlib
import ipaddress
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from toolbridge.config import Server
from toolbridge.config_file import PROXY_VARIABLES
from toolbridge.errors import ConfigError
from toolbridge.hosts import HostError, address_of, canonical_host
from toolbridge.upstream.clients import (
    USER_AGENT,
    AiohttpUpstream,
    Pool,
    ProxyChoice,
)
from toolbridge.upstream.http11 import Http11Upstream
from toolbridge.upstream.seam import Timeouts, Upstream, UpstreamRequest, UpstreamResponse


@dataclass(frozen=True, slots=True, kw_only=True)
class Transport:
    """One server's connection settings; the default (all empty) is our plain client."""

    ca_file: Path | None = None
    """PEM certificates trusted instead of the system's (for this server's connections)."""
    client_cert: Path | None = None
    """A PEM client certificate (mTLS); with `client_key`, or holding the key itself."""
    client_key: Path | None = None
    proxy: str | None = None
    """The server's own proxy: every request of this server goes through it."""
    environment: tuple[tuple[str, str], ...] = ()
    """The proxy variables (lower-case names) that apply when `proxy` is not set."""

    @property
    def plain(self) -> bool:
        """Whether the gateway's default client serves this transport."""
        return self == Transport()

    @property
    def proxied(self) -> bool:
        env = dict(self.environment)
        return self.proxy is not None or any(env.get(k) for k in PROXY_VARIABLES[:3])


def server_transport(server: Server, base_dir: Path, environment: Mapping[str, str]) -> Transport:
    """A server's transport from its config (paths relative to the config's folder) and the
    proxy variables the config was read with (`Config.proxy_environment`)."""

    def path(value: str | None) -> Path | None:
        return None if value is None else base_dir / value

    return Transport(
        ca_file=path(server.ca_file),
        client_cert=path(server.client_cert),
        client_key=path(server.client_key),
        proxy=server.proxy,
        # Without a proxy to go through, `no_proxy` alone changes nothing: the plain client.
        environment=()
        if server.proxy is not None or not any(environment.get(k) for k in PROXY_VARIABLES[:3])
        else tuple(sorted(environment.items())),
    )


def ssl_context(transport: Transport, server: str) -> ssl.SSLContext | None:
    """The TLS context a transport asks for (None: the default); raises ConfigError naming the
    key and the file when a file cannot be read or is not what it should be."""
    if transport.ca_file is None and transport.client_cert is None:
        return None
    cafile = None if transport.ca_file is None else _readable(transport.ca_file, server, "ca_file")
    try:
        context = ssl.create_default_context(cafile=cafile)
    except ssl.SSLError as exc:
        raise ConfigError(
            f"server {server!r}: ca_file: {cafile} holds no PEM certificate ({exc.reason or exc})"
        ) from None
    if transport.client_cert is not None:
        cert = _readable(transport.client_cert, server, "client_cert")
        key = None
        if transport.client_key is not None:
            key = _readable(transport.client_key, server, "client_key")
        try:
            context.load_cert_chain(cert, key)
        except ssl.SSLError as exc:
            raise ConfigError(
                f"server {server!r}: client_cert/client_key: {cert} is not a PEM certificate "
                f"with its private key ({exc.reason or exc})"
            ) from None
    return context


def _readable(path: Path, server: str, key: str) -> str:
    try:
        with path.open("rb"):
            pass
    except OSError as exc:
        raise ConfigError(f"server {server!r}: {key}: cannot read {path}: {exc.strerror}") from None
    return str(path)


def fingerprint(transport: Transport) -> str:
    """A digest of the files a transport reads: a renewed certificate makes a new client."""
    h = hashlib.sha256()
    for path in (transport.ca_file, transport.client_cert, transport.client_key):
        if path is not None:
            try:
                h.update(path.read_bytes())
            except OSError:
                h.update(b"unreadable")
        h.update(b"\0")
    return h.hexdigest()


# -- proxies -----------------------------------------------------------------------------------


def proxy_for(url: str, transport: Transport) -> str | None:
    """The proxy a request to `url` goes through: the server's `proxy`, else the environment's
    for the URL's scheme unless `no_proxy` names its host or the host is loopback (as Go's
    clients do); None for a direct connection."""
    if transport.proxy is not None:
        return transport.proxy
    env = dict(transport.environment)
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    chosen = env.get(f"{scheme}_proxy") or env.get("all_proxy")
    if not chosen:
        return None
    try:
        port = parts.port or (443 if scheme == "https" else 80)
        host = canonical_host(parts.hostname or "")
    except (ValueError, HostError):
        return chosen
    if _loopback(host) or bypassed(host, port, env.get("no_proxy", "")):
        return None
    return chosen


def _loopback(host: str) -> bool:
    address = address_of(host)
    if address is not None:
        return address.is_loopback
    return host == "localhost" or host.endswith(".localhost")


def bypassed(host: str, port: int, no_proxy: str) -> bool:
    """Whether `no_proxy` (comma-separated: `*`, names, `.domains`, addresses, CIDR ranges,
    each with an optional `:port`) names this canonical host."""
    address = address_of(host)
    for raw in no_proxy.replace(" ", ",").split(","):
        entry = raw.strip().lower()
        if not entry:
            continue
        if entry == "*":
            return True
        entry, port_text = _split_port(entry)
        if port_text is not None and port_text != str(port):
            continue
        if address is not None:
            try:
                if address in ipaddress.ip_network(entry.strip("[]"), strict=False):
                    return True
            except ValueError:
                pass
            continue
        domain = entry.lstrip("*").lstrip(".").rstrip(".")
        if domain and (host == domain or host.endswith("." + domain)):
            return True
    return False


def _split_port(entry: str) -> tuple[str, str | None]:
    if entry.startswith("["):
        inside, _, rest = entry[1:].partition("]")
        return inside, rest[1:] if rest.startswith(":") else None
    if entry.count(":") == 1:
        host, _, port = entry.partition(":")
        return host, port
    return entry, None


class ProxiedUpstream:
    """A server whose requests may go through a proxy: those that do use aiohttp's client (ours
    speaks no proxy protocol), the others ours."""

    def __init__(self, transport: Transport, context: ssl.SSLContext | None) -> None:
        self.transport = transport
        choose: ProxyChoice = lambda url: proxy_for(url, transport)  # noqa: E731
        self.direct = Http11Upstream(user_agent=USER_AGENT, verify=context or True)
        self.proxied = AiohttpUpstream(Pool(verify=context or True), proxy=choose)

    async def send(
        self, request: UpstreamRequest, *, timeouts: Timeouts, max_bytes: int
    ) -> UpstreamResponse:
        through = self.proxied if proxy_for(request.url, self.transport) else self.direct
        return await through.send(request, timeouts=timeouts, max_bytes=max_bytes)

    async def aclose(self) -> None:
        await self.direct.aclose()
        await self.proxied.aclose()


def open_client(transport: Transport, server: str) -> Upstream:
    """A new client for a transport (not the plain one); raises ConfigError for bad files."""
    context = ssl_context(transport, server)
    if transport.proxied:
        return ProxiedUpstream(transport, context)
    return Http11Upstream(user_agent=USER_AGENT, verify=context or True)


class Clients:
    """The clients the gateway sends through: its default one for plain servers, and one per
    other transport, opened on first use, shared by servers with the same settings and kept
    across reloads (a changed file makes a new one)."""

    def __init__(self, default: Upstream) -> None:
        self.default = default
        self._opened: dict[tuple[Transport, str], Upstream] = {}

    def client(self, transport: Transport, server: str) -> Upstream:
        """The client for a server's transport; raises ConfigError when its files are bad."""
        if transport.plain:
            return self.default
        key = (transport, fingerprint(transport))
        found = self._opened.get(key)
        if found is None:
            found = self._opened[key] = open_client(transport, server)
        return found

    async def aclose(self) -> None:
        """Close every client but the default one (its owner closes it)."""
        opened, self._opened = self._opened, {}
        for client in opened.values():
            await client.aclose()
