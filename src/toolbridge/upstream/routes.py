"""Each server's way out: the client its transport needs, the destinations it may reach and how
many of its requests may be in flight, as one `Upstream` its calls go through.

`Route.upstream` checks every request (redirects and retries too) against the server's
`Destinations` before it is sent, and refuses one past `max_concurrency` at once with
`UpstreamBusy` (never queued: the caller is told to come back). `Route.client` is the server's
transport without those checks, for what the operator configured directly (token URLs).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from toolbridge.config import Server
from toolbridge.errors import UpstreamBusy
from toolbridge.upstream.destinations import Destinations
from toolbridge.upstream.seam import Timeouts, Upstream, UpstreamRequest, UpstreamResponse

BUSY_RETRY_AFTER = 1.0
"""Seconds a caller refused by `max_concurrency` is told to wait (the `Retry-After` header)."""


def is_url(location: str) -> bool:
    return location.lower().startswith(("http://", "https://"))


def destinations_of(server: Server, document_servers: Iterable[str] = ()) -> Destinations:
    """A server's destination policy. Configured: its `base_url` and its document's URL; for a
    document read from a file (which the operator wrote or chose) without `base_url`, also the
    servers that file names (`document_servers`). Plus `allowed_hosts`."""
    configured = [url for url in (server.base_url, server.spec) if url and is_url(url)]
    if server.base_url is None and not is_url(server.spec):
        configured.extend(document_servers)
    return Destinations.of(server.id, configured, server.allowed_hosts)


class Capacity:
    """At most `limit` requests of one server in flight at once, in this process: its share
    of the server's `max_concurrency` (`share_of`)."""

    __slots__ = ("in_flight", "limit", "server", "workers")

    def __init__(self, server: str, limit: int, workers: int = 1) -> None:
        self.server = server
        self.limit = limit
        self.workers = workers
        self.in_flight = 0

    def take(self) -> None:
        """Count one more request, or raise UpstreamBusy when `limit` are in flight."""
        if self.in_flight >= self.limit:
            whose = "its max_concurrency"
            if self.workers > 1:
                whose = f"this worker's share of its max_concurrency, of {self.workers} workers"
            raise UpstreamBusy(
                self.server,
                f"busy: {self.limit} requests to this server are already in flight "
                f"({whose}); try again in {BUSY_RETRY_AFTER:g} s",
                retry_after=BUSY_RETRY_AFTER,
            )
        self.in_flight += 1

    def give(self) -> None:
        self.in_flight -= 1


class RoutedUpstream:
    """Sends through a server's client, after its destination policy and concurrency cap."""

    __slots__ = ("capacity", "client", "destinations")

    def __init__(
        self, client: Upstream, destinations: Destinations, capacity: Capacity | None
    ) -> None:
        self.client = client
        self.destinations = destinations
        self.capacity = capacity

    async def send(
        self, request: UpstreamRequest, *, timeouts: Timeouts, max_bytes: int
    ) -> UpstreamResponse:
        self.destinations.check(request.url)
        capacity = self.capacity
        if capacity is None:
            return await self.client.send(request, timeouts=timeouts, max_bytes=max_bytes)
        capacity.take()
        try:
            return await self.client.send(request, timeouts=timeouts, max_bytes=max_bytes)
        finally:
            capacity.give()

    async def aclose(self) -> None:
        """Nothing: the client belongs to whoever opened it (`transport.Clients`)."""


@dataclass(frozen=True, slots=True)
class Route:
    """How one server's requests leave."""

    client: Upstream
    """The server's transport (CA, client certificate, proxy), without the checks below."""
    upstream: RoutedUpstream
    """What its calls go through: destinations and concurrency checked on every request."""

    @property
    def destinations(self) -> Destinations:
        return self.upstream.destinations


def share_of(max_concurrency: int, workers: int) -> int:
    """The requests one of `workers` processes may have in flight to a server: an equal share
    of its `max_concurrency`, so that all of them together never exceed it (at least 1 each:
    a cap below the number of workers is exceeded by one request per worker at most)."""
    return max(1, max_concurrency // max(1, workers))


def route(
    server: Server,
    client: Upstream,
    document_servers: Iterable[str] = (),
    previous: Route | None = None,
    workers: int = 1,
) -> Route:
    """A server's route; keeps the previous route's count of requests in flight when its cap
    did not change, so a reload neither forgets nor doubles them."""
    capacity = None
    if server.max_concurrency is not None:
        limit = share_of(server.max_concurrency, workers)
        kept = previous.upstream.capacity if previous is not None else None
        if kept is not None and kept.limit == limit:
            capacity = kept
        else:
            capacity = Capacity(server.id, limit, workers)
    destinations = destinations_of(server, document_servers)
    return Route(client=client, upstream=RoutedUpstream(client, destinations, capacity))
