"""Where one server's requests may go: its destination policy.

Requests go to the origins the operator configured (`base_url`, the document's URL; for a
document read from a file, the servers that file names, since the operator wrote or chose
it) and to the hosts listed in the server's `allowed_hosts`. A host that only a fetched
document names (its `servers`, a remote `$ref`, a redirect) is reached only when it is one of
those. Hosts that are never reached (`hosts.never_reached`: link-local and cloud metadata
addresses) are refused whatever the config says. Every host is compared in its canonical form
(`hosts.canonical_host`), so no spelling of an address slips past. Pure: the address a name
resolves to is checked where the connection is made (`resolver`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from toolbridge.errors import DestinationRefused
from toolbridge.hosts import HostError, canonical_host, display_host, host_port, never_reached

DEFAULT_PORTS = {"http": 80, "https": 443}
_PREFIX = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://[^/?#]*")

Origin = tuple[str, str, int]
"""Scheme, canonical host and port."""


def origin_of(url: str) -> Origin:
    """The (scheme, canonical host, port) a URL goes to; raises HostError for a host no
    connection could be made to, or a URL that is no absolute http(s) URL."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS:
        raise HostError(f"{scheme or 'no'} scheme (expected http or https)")
    try:
        port = parts.port or DEFAULT_PORTS[scheme]
    except ValueError:
        raise HostError(
            f"the port of {parts.netloc.rpartition('@')[2]!r} is not a number"
        ) from None
    host = parts.hostname
    if not host:
        raise HostError("no host")
    return scheme, canonical_host(host), port


def show(origin: Origin) -> str:
    scheme, host, port = origin
    return f"{scheme}://{display_host(host)}:{port}"


@dataclass(frozen=True, slots=True)
class Destinations:
    """The origins and hosts one server's requests may go to."""

    server: str
    origins: frozenset[Origin]
    """The configured origins, reached whatever a document says."""
    hosts: frozenset[tuple[str, int | None]] = frozenset()
    """`allowed_hosts`: canonical host and port; without a port, ports 80 and 443."""
    _seen: dict[str, str | None] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def of(
        cls, server: str, configured: Iterable[str], allowed_hosts: Iterable[str] = ()
    ) -> Destinations:
        """A policy from configured URLs (those that are absolute http(s) URLs count) and
        `allowed_hosts` entries (`host[:port]`; raises HostError for one that is not)."""
        origins = set()
        for url in configured:
            try:
                origins.add(origin_of(url))
            except HostError:
                continue  # no usable origin: calls to it fail on their own, with their reason
        hosts = frozenset(host_port(entry) for entry in allowed_hosts)
        return cls(server, frozenset(origins), hosts)

    def refusal(self, url: str) -> str | None:
        """Why a request to `url` may not go, or None when it may (cached per origin)."""
        match = _PREFIX.match(url)
        prefix = match.group() if match else url
        if prefix in self._seen:
            return self._seen[prefix]
        reason = self._refusal(prefix if match else url)
        if len(self._seen) < 1024:
            self._seen[prefix] = reason
        return reason

    def _refusal(self, url: str) -> str | None:
        try:
            origin = origin_of(url)
        except HostError as exc:
            return f"{_shown(url)} is no destination a request can go to: {exc}"
        _, host, port = origin
        never = never_reached(host)
        if never is not None:
            return f"{show(origin)} is {never}; requests never go there"
        if origin in self.origins:
            return None
        if (host, port) in self.hosts or ((host, None) in self.hosts and port in (80, 443)):
            return None
        return f"{show(origin)} is not among this server's destinations ({self.describe()})"

    def check(self, url: str) -> None:
        """Raise DestinationRefused when a request to `url` may not go."""
        reason = self.refusal(url)
        if reason is not None:
            raise DestinationRefused(self.server, f"refused: {reason}")

    def describe(self) -> str:
        """What may be reached, as an error message lists it."""
        origins = ", ".join(sorted(show(o) for o in self.origins)) or "no configured origin"
        hosts = ", ".join(sorted(display_host(h) + (f":{p}" if p else "") for h, p in self.hosts))
        listed = f"allowed_hosts: {hosts}" if hosts else "no allowed_hosts"
        return f"{origins}; {listed}; add the host to the server's allowed_hosts to reach it"


def _shown(url: str) -> str:
    """Scheme and authority of a URL, without userinfo: what an error may show of it."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}"
