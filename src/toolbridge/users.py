"""Each caller's own data, as the store keeps it: UserValves per tool, credentials per server.

Read through on first use and cached in memory, so a call pays the store once per caller and
tool (or server), not every time; the serving side forgets a caller's entries when the store's
change feed says they changed (within a second, on every replica). What it trusts: the loaders
it is given (the store); values are handed to the call as they are (UserValves are checked by
the tool's model, credentials by the server's `per_user` scheme).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Any

Loader = Callable[[str, str], Awaitable[dict[str, Any] | None]]
"""(user, tool id or server id) -> the stored value, or None; raises StoreUnavailable."""

MAX_CACHED = 10_000
"""Entries kept per kind; the least recently used go first."""


class UserData:
    """The store's per-user data for calls: looked up once, then answered from memory."""

    def __init__(
        self, valves: Loader, credentials: Loader, *, max_cached: int = MAX_CACHED
    ) -> None:
        self._loaders = {"valves": valves, "credentials": credentials}
        self._cache: dict[str, OrderedDict[tuple[str, str], dict[str, Any] | None]] = {
            "valves": OrderedDict(),
            "credentials": OrderedDict(),
        }
        self.max_cached = max_cached
        self._forgotten = 0
        """Counts `forget` calls: a read that began before one may hold what it dropped."""

    async def valves(self, user: str, tool_id: str) -> dict[str, Any] | None:
        """`user`'s stored UserValves for a tool, or None."""
        return await self._get("valves", user, tool_id)

    async def credential(self, user: str, server_id: str) -> dict[str, Any] | None:
        """`user`'s stored credential for a server, or None."""
        return await self._get("credentials", user, server_id)

    def forget(self, user: str | None = None, key: str | None = None) -> None:
        """Drop cached entries: a user's (for one tool or server, or all), every user's for
        one tool or server, or everything; and keep out of the cache what reads still in
        flight bring back (they may have read the store before the change that calls this).
        What is not dropped is answered from memory while the store is out of reach: drop no
        more than changed."""
        self._forgotten += 1
        for cache in self._cache.values():
            if user is None and key is None:
                cache.clear()
                continue
            dropped = [
                k for k in cache if (user is None or k[0] == user) and (key is None or k[1] == key)
            ]
            for cached in dropped:
                del cache[cached]

    async def _get(self, kind: str, user: str, key: str) -> dict[str, Any] | None:
        cache = self._cache[kind]
        if (user, key) in cache:
            cache.move_to_end((user, key))
            return cache[(user, key)]
        forgotten = self._forgotten
        found = await self._loaders[kind](user, key)
        if forgotten != self._forgotten:
            return found  # a change came while reading: this call uses it, the cache does not
        cache[(user, key)] = found
        if len(cache) > self.max_cached:
            cache.popitem(last=False)
        return found
