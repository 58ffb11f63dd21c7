"""aiohttp's resolver, guarded: what a server whose requests go through aiohttp resolves with.

Its own module so that aiohttp is imported only when such a client is opened (`clients`).
Trusts nothing a host name resolves to: every address passes `resolver.checked` first.
"""

from __future__ import annotations

import socket

import aiohttp.abc
import aiohttp.resolver

from toolbridge.hosts import address_of
from toolbridge.upstream.resolver import checked, checked_host


class GuardedResolver(aiohttp.abc.AbstractResolver):
    """aiohttp's resolver, but each address it hands the connector has passed `checked`, and a
    host that is an address in any spelling (`2130706433`) is read as that address."""

    def __init__(self) -> None:
        self._inner = aiohttp.resolver.DefaultResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[aiohttp.abc.ResolveResult]:
        canonical = checked_host(host)  # raises RefusedAddress, an OSError aiohttp reports
        ip = address_of(canonical)
        if ip is not None:
            numeric = socket.AF_INET6 if ip.version == 6 else socket.AF_INET
            return [
                aiohttp.abc.ResolveResult(
                    hostname=canonical,
                    host=canonical,
                    port=port,
                    family=numeric,
                    proto=0,
                    flags=socket.AI_NUMERICHOST,
                )
            ]
        found = await self._inner.resolve(canonical, port, family)
        allowed = set(checked(canonical, [(r["family"], r["host"]) for r in found]))
        return [r for r in found if (r["family"], r["host"]) in allowed]

    async def close(self) -> None:
        await self._inner.close()
