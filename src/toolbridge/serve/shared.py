"""The state store as a serving gateway uses it: registered sources, callers' data, replicas.

`Shared` opens the store in the app's lifespan, reads the sources and filters registered through
the admin API into the config a reload builds (`merged`), gives the gateway each caller's stored
UserValves and credentials, and follows the store's change feed: what any replica changes
reaches this one within a second (PostgreSQL notifies; SQLite is polled), and a reload another
replica took is taken here too. When the store cannot be reached, calls go on from the catalog
in memory, writes answer 503, and the follower catches up when it is back. Every
`PRUNE_EVERY` seconds it deletes the audit entries and changes past their time
(`state.retention`); a follower that finds changes it had not read were deleted reads
everything again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

from toolbridge.config import Config, State
from toolbridge.errors import SecretKeyError, StoreUnavailable, ToolbridgeError, quoted
from toolbridge.gateway import Gateway
from toolbridge.serve import approvals
from toolbridge.state import retention
from toolbridge.state.registered import Registered, materialize
from toolbridge.state.secrets import SecretBox
from toolbridge.state.store import Store
from toolbridge.state.urls import shown
from toolbridge.state.values import Change
from toolbridge.users import UserData

logger = logging.getLogger(__name__)

Handlers = tuple[
    Callable[[frozenset[str]], Awaitable[object]],
    Callable[[], Awaitable[object]],
    Callable[[str, str], Awaitable[object]],
]
"""What the feed's changes are applied with: sources changed, reloaded and approved elsewhere."""

CALL_READ_TIMEOUT = 5.0
"""Seconds a call waits for the store to read a caller's valves or credential."""
Found = TypeVar("Found")
RETRY = 2.0
"""Seconds between attempts to open a store that could not be reached at start."""
REMIND = 300.0
"""Seconds between the log's reminders that the store is still out of reach at start."""
PRUNE_EVERY = 3600.0
"""Seconds between prunes of the audit log and the change feed (the first at start)."""
APPLY_ATTEMPTS = 8
"""Tries at applying one change from the feed (about 10 s in all) before it is logged as
failed and the next one is taken."""


class Shared:
    """One process's link to the state store (see the module docstring)."""

    def __init__(self, url: str, *, folder: Path, replica: str) -> None:
        """
        Args:
            folder: where registered documents and tool files are written for the loaders.
            replica: this serving process group's id; reload announcements it made itself
                are not taken again when the feed brings them back.
        """
        self.url = url
        self.folder = folder
        self.replica = replica
        self.store: Store | None = None
        self.registered = Registered()
        self.file_ids: frozenset[str] = frozenset()
        """The ids the config file defines (as last merged): theirs are served."""
        self.file_sources: frozenset[str] = frozenset()
        """Of those, the servers and tools entries (what a filter's `sources` may name)."""
        self._shadowed: frozenset[str] = frozenset()
        self.users = UserData(self._stored_valves, self._stored_credential)
        self._approvals: dict[str, str] = {}
        """The approved version's digest known to be stored, per `on_change: hold` source."""
        self._refreshing = asyncio.Lock()  # the admin API and the feed may both ask at once
        self._read = False
        self._said_at: float | None = None
        self._unopened: list[str] = []

    def merged(self, config: Config) -> Config:
        """`config` with the registered sources (as last read from the store); an id both
        define is the file's (`file_read`)."""
        self.file_read(config)
        return self.registered.merged(config)

    def file_read(self, config: Config) -> None:
        """Take note of the ids the config file defines: an id it shares with a registered
        source is the file's, and said so in the log (once, until that changes)."""
        self.file_sources = frozenset({s.id for s in config.servers} | {t.id for t in config.tools})
        self.file_ids = self.file_sources | {f.id for f in config.filters}
        shadowed = self.file_ids & self.registered.ids
        for ident in sorted(shadowed - self._shadowed):
            logger.warning(
                "%r is defined in the config file and registered through the admin API: the "
                "file's entry is served, the API's is not (delete the API's, or give one "
                "another id)",
                ident,
            )
        self._shadowed = shadowed

    def shown(self, location: str) -> str:
        """A source's location as `/v1/servers` shows it: what was registered through the admin
        API is named for what it is (`admin API: documents/more.yaml`), not by the folder this
        process wrote it to for its loaders."""
        try:
            inside = Path(location).resolve().relative_to(self.folder.resolve())
        except (ValueError, OSError):
            return location
        return f"admin API: {inside.as_posix()}"

    def unread(self) -> str | None:
        """Why this process serves less than the other replicas, or None: the store has not
        been read since it started (it could not be reached), so what was registered through
        the admin API is not served yet; or some of it is sealed with a key this process was
        not given (a `TOOLBRIDGE_SECRET_KEY` left behind by a rotation), and that is not."""
        # Said to anyone (`/readyz` takes no key): where the store is, and what was registered
        # in it, only the log says.
        if not self._read:
            return (
                "the state store has not been read since this process started: the sources "
                "registered through the admin API are not served yet (the log says why)"
            )
        if self._unopened:
            return (
                "entries registered through the admin API that this process's "
                f"TOOLBRIDGE_SECRET_KEY cannot open are not served here ({len(self._unopened)}; "
                "the log names them)"
            )
        return None

    def unknown_tool(self, name: str) -> ToolbridgeError | None:
        """What a call of a tool this process does not know is told while `unread`: it may be
        one the other replicas serve (503, to try again), not "no tool named" (404)."""
        if not self._read:
            why = "not read since this process started: its registered sources are not served yet"
            return StoreUnavailable(f"find the tool {quoted(name)}", shown(self.url), why)
        if self._unopened:
            return SecretKeyError(
                f"no tool named {quoted(name)} here, and it may be one registered through the "
                "admin API that this process's TOOLBRIDGE_SECRET_KEY cannot open"
            )
        return None

    def require(self) -> Store:
        """The open store; StoreUnavailable while it is not."""
        if self.store is None:
            raise StoreUnavailable("use the state store", shown(self.url), "not connected yet")
        return self.store

    async def refresh(self) -> frozenset[str]:
        """Read the registered sources and filters again; the ids of those that changed (in
        their entry or their content)."""
        store = self.require()
        async with self._refreshing:
            unopened: list[str] = []  # entries this process's keys cannot open: left out
            servers = await store.servers.in_clear(unopened)
            tools = await store.tools.in_clear(unopened)
            filters = await store.filters.in_clear(unopened)
            fresh = await asyncio.to_thread(materialize, servers, tools, self.folder, filters)
            before, after = self.registered.versions(), fresh.versions()
            changed = {i for i in before.keys() | after.keys() if before.get(i) != after.get(i)}
            self.registered = fresh
            if unopened and unopened != self._unopened:
                logger.error("not served here: %s", "; ".join(unopened))
            self._unopened = unopened
        for ident in changed:
            # A delete takes its callers' credentials and UserValves with it (in the store);
            # none cached here may reach what is registered next under that id. Only that id's:
            # the rest stay answered from memory, also while the store is out of reach.
            self.users.forget(key=ident)
        return frozenset(changed)

    async def announce_reload(self, by: str) -> None:
        """Tell the other replicas that this one reloaded its config."""
        store = self.require()
        await store.record_change("reload", "reload", {"replica": self.replica}, by=by)

    async def announce_approval(self, source: str, digest: str, by: str) -> None:
        store = self.require()
        subject = {"replica": self.replica, "source": source, "sha256": digest}
        await store.record_change("document", "approve", subject, by=by)

    @contextlib.asynccontextmanager
    async def running(
        self,
        gateway: Gateway,
        *,
        sources_changed: Callable[[frozenset[str]], Awaitable[object]],
        reloaded_elsewhere: Callable[[], Awaitable[object]],
        approved_elsewhere: Callable[[str, str], Awaitable[object]],
    ) -> AsyncIterator[None]:
        """While the app serves: the store open (or being retried), and its feed followed."""
        gateway.dispatch.users = self.users
        gateway.dispatch.unknown = self.unknown_tool
        handlers = (sources_changed, reloaded_elsewhere, approved_elsewhere)
        opened = await self._open()
        if opened:
            # Held sources first: catching up reloads what was registered, and a reload keeps
            # what it serves as approved, which would approve a held source's new documents.
            await approvals.restore(gateway, self.require())  # before the first request
            await self._catch_up(sources_changed)
            await self.keep_approvals(gateway)
        tasks = [
            asyncio.create_task(self._follow(gateway, opened, handlers)),
            asyncio.create_task(self._prune(gateway)),
        ]
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            if self.store is not None:
                await self.store.close()
                self.store = None

    async def keep_approvals(self, gateway: Gateway, *, by: str = approvals.GATEWAY) -> None:
        """Store the approved version of each `on_change: hold` source, where it is new."""
        if self.store is not None:
            await approvals.keep(gateway, self.store, self._approvals, by=by)

    async def _open(self) -> bool:
        try:
            self.store = await Store.open(self.url, secrets=SecretBox.from_environ(os.environ))
        except StoreUnavailable as exc:
            now = time.monotonic()
            if self._said_at is None or now - self._said_at >= REMIND:  # not every RETRY
                self._said_at = now
                logger.error("%s; serving the config file's sources until it can be reached", exc)
            return False
        return True

    async def _catch_up(
        self, sources_changed: Callable[[frozenset[str]], Awaitable[object]]
    ) -> None:
        changed = await self.refresh()
        if changed:
            await sources_changed(changed)
        self._read = True

    async def _prune(self, gateway: Gateway) -> None:
        """Prune the store now and then, as the config of the moment says (`state.audit_days`)."""
        while True:
            if self.store is not None:
                state = gateway.config.state
                audit_days = state.audit_days if state is not None else State().audit_days
                try:
                    pruned = await self.store.prune(audit_days=audit_days, by=approvals.GATEWAY)
                except StoreUnavailable as exc:
                    logger.warning("pruning the state store failed, again later: %s", exc)
                except Exception:  # not this task's end: the next prune may do better
                    logger.exception("pruning the state store failed, again later")
                else:
                    if pruned.audit or pruned.changes:
                        logger.info(
                            "pruned the state store: %d audit entries, %d changes",
                            pruned.audit,
                            pruned.changes,
                        )
            await asyncio.sleep(PRUNE_EVERY)

    async def _follow(
        self,
        gateway: Gateway,
        opened: bool,
        handlers: Handlers,
    ) -> None:
        sources_changed, _, _ = handlers
        while not opened:
            await asyncio.sleep(RETRY)
            opened = await self._open()
            if opened:
                logger.warning("the state store at %s is reachable again", shown(self.url))
                await self._catch_up(sources_changed)
        store = self.require()
        last = await store.last_change_id()
        while True:
            try:
                async for change in store.follow(last):
                    if retention.missed(change, last):
                        await self._read_again(gateway, handlers)
                    else:
                        await self._apply_soon(change, handlers)
                    last = change.id
            except Exception:  # the feed's own outages are its business; anything else: again
                logger.exception("following the state store's changes failed; again from %d", last)
                await asyncio.sleep(RETRY)

    async def _read_again(self, gateway: Gateway, handlers: Handlers) -> None:
        """After changes this process had not read were pruned: apply whatever they may have
        said (a reload, the registered sources, callers' data, approvals), from the store."""
        sources_changed, reloaded_elsewhere, approved_elsewhere = handlers
        logger.warning(
            "changes in the state store were pruned before this process read them (it was cut "
            "off from the store for longer than %d days): reading everything again",
            retention.KEEP_CHANGES.days,
        )
        self.users.forget()
        await self._catch_up(sources_changed)
        await reloaded_elsewhere()
        for source, digest in (await approvals.newer_in_store(gateway, self.require())).items():
            await approved_elsewhere(source, digest)

    async def _apply_soon(
        self,
        change: Change,
        handlers: Handlers,
    ) -> None:
        """`_apply`, tried again while it fails (a store that is just coming back), at most
        `APPLY_ATTEMPTS` times: a change is never skipped for a passing fault."""
        for attempt in range(1, APPLY_ATTEMPTS + 1):
            try:
                await self._apply(change, handlers)
                return
            except Exception:
                if attempt == APPLY_ATTEMPTS:
                    logger.exception("applying change %d from the state store failed", change.id)
                    return
                await asyncio.sleep(min(RETRY, 0.1 * 2**attempt))

    async def _apply(
        self,
        change: Change,
        handlers: Handlers,
    ) -> None:
        sources_changed, reloaded_elsewhere, approved_elsewhere = handlers
        subject: dict[str, Any] = dict(change.subject)
        match change.kind:
            case "server" | "tool" | "tool_valves" | "filter" | "filter_valves" | "secrets":
                changed = await self.refresh()
                if changed:  # nothing when this process made the change (it applied it)
                    await sources_changed(changed)
            case "user_valves" | "credential":
                key = subject.get("tool", subject.get("server"))  # that one entry of that caller
                self.users.forget(subject.get("user"), key if isinstance(key, str) else None)
            case "reload" if subject.get("replica") != self.replica:
                await reloaded_elsewhere()
            case "document" if change.op == "approve" and subject.get("replica") != self.replica:
                await approved_elsewhere(str(subject.get("source")), str(subject.get("sha256")))
            case _:
                pass

    async def _stored_valves(self, user: str, tool_id: str) -> dict[str, Any] | None:
        what = f"read the user valves of {user!r} for {tool_id!r}"
        return await self._on_a_call(what, self.require().users.valves_in_clear(user, tool_id))

    async def _stored_credential(self, user: str, server_id: str) -> dict[str, Any] | None:
        what = f"read the credential of {user!r} for server {server_id!r}"
        reading = self.require().users.credential_in_clear(user, server_id)
        found = await self._on_a_call(what, reading)
        return dict(found) if found is not None else None

    async def _on_a_call(self, what: str, reading: Awaitable[Found]) -> Found:
        """A read a call waits for: within CALL_READ_TIMEOUT, else StoreUnavailable (a store
        that takes connections and never answers must not hold the call for its full
        statement timeout)."""
        # In a task of its own, left to end by itself when it is late: cancelling a query
        # waits for the driver to cancel it on the server, which a frozen server never
        # answers (the call took 7 s, once 35 s, instead of the 5 promised).
        task: asyncio.Task[Found] = asyncio.ensure_future(reading)
        try:
            done, _ = await asyncio.wait({task}, timeout=CALL_READ_TIMEOUT)
        except asyncio.CancelledError:
            _abandon(task)
            raise
        if task in done:
            return task.result()
        _abandon(task)
        reason = f"no answer within {CALL_READ_TIMEOUT:g} s"
        raise StoreUnavailable(what, shown(self.url), reason)


_ABANDONED: set[asyncio.Task[Any]] = set()
"""Store reads a call stopped waiting for, held until they end (a task nobody holds may be
collected mid-run)."""


def _abandon(task: asyncio.Task[Any]) -> None:
    """Cancel `task` without waiting for it to end; what it ends with is read, not raised."""
    task.cancel()
    _ABANDONED.add(task)

    def ended(finished: asyncio.Task[Any]) -> None:
        _ABANDONED.discard(finished)
        if not finished.cancelled():
            finished.exception()  # read: a late failure is the store's outage, said already

    task.add_done_callback(ended)
