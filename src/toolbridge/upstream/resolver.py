"""Resolving a host once per connection, and refusing the addresses no request may reach.

The address checked is the address connected to: `Http11Upstream` connects to what
`addresses` returns, and aiohttp's connector to what `guarded_resolver.GuardedResolver`
returns after `checked` has seen it; neither resolves the name again. This holds for every server
whatever its config: the per-server part of the destination policy (which hosts) is
`destinations`, checked on the URL before anything is sent.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterable

from toolbridge.hosts import (
    HostError,
    address_of,
    canonical_host,
    display_host,
    never_reached,
    never_reached_address,
)


class RefusedAddress(OSError):
    """The host is, or resolves only to, addresses that are never reached; says which and why."""


def checked_host(host: str) -> str:
    """The canonical host, when it may be connected to; raises RefusedAddress otherwise."""
    try:
        canonical = canonical_host(host)
    except HostError as exc:
        raise RefusedAddress(f"{host!r} is no host a connection can be made to: {exc}") from None
    reason = never_reached(canonical)
    if reason is not None:
        raise RefusedAddress(f"{display_host(canonical)} is {reason}; requests never go there")
    return canonical


def checked(host: str, found: Iterable[tuple[int, str]]) -> list[tuple[int, str]]:
    """The resolved (family, address) pairs that may be connected to, without repeats; raises
    RefusedAddress when every one of them is refused."""
    allowed: list[tuple[int, str]] = []
    refused: list[str] = []
    for family, address in dict.fromkeys(found):
        ip = address_of(address)
        reason = never_reached_address(ip) if ip is not None else None
        if reason is None:
            allowed.append((family, address))
        else:
            refused.append(f"{address} ({reason})")
    if not allowed and refused:
        raise RefusedAddress(
            f"{host} resolves only to addresses requests never go to: {', '.join(refused)}"
        )
    return allowed


async def addresses(host: str, port: int) -> list[tuple[int, str]]:
    """Where to connect for `host`: its address when it is one, else what it resolves to, each
    checked. Raises RefusedAddress, or socket.gaierror when the name does not resolve."""
    canonical = checked_host(host)
    ip = address_of(canonical)
    if ip is not None:
        family = socket.AF_INET6 if ip.version == 6 else socket.AF_INET
        return [(family, canonical)]
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(canonical, port, type=socket.SOCK_STREAM)
    return checked(canonical, ((family, str(sockaddr[0])) for family, _, _, _, sockaddr in infos))
