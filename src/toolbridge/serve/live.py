"""Live configuration while serving: every way a reload starts, and what follows one.

A reload starts from the admin API, SIGHUP, an edit of the config file or of a local tool file
(both watched, unless the config says `watch: false`), or a sibling worker of `serve --workers
N`. Whatever started it, MCP clients that listen are told the tool list changed, and a reload
or approval this worker took is handed to its siblings, whose answer it waits for.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Mapping
from pathlib import Path
from typing import Any

from toolbridge.errors import ToolbridgeError
from toolbridge.file_stamps import FileStamp
from toolbridge.gateway import Gateway
from toolbridge.generation import Generation
from toolbridge.local.watch import watched_files
from toolbridge.serve import approvals
from toolbridge.serve.connection import set_limits
from toolbridge.serve.shared import Shared
from toolbridge.serve.siblings import Siblings
from toolbridge.serve.watch import watch

logger = logging.getLogger(__name__)

DOWN_RETRY = 30.0
"""Seconds between attempts at a server that has nothing to serve (its document could not be
read at start: a URL down, a store not there yet), until it loads."""
SIBLING_WAIT = 120.0
"""Seconds a reload answer waits for the other workers to apply it (a big catalog takes a while)."""


class Live:
    """Reloads and approvals for one served gateway, and the background work that starts them."""

    def __init__(
        self,
        gateway: Gateway,
        *,
        tools_changed: Callable[[], Awaitable[None]],
        config_file: Path | None = None,
        siblings: Siblings | None = None,
        shared: Shared | None = None,
        applied: Callable[[], None] | None = None,
        read: Mapping[Path, FileStamp] | None = None,
    ) -> None:
        self.gateway = gateway
        self.tools_changed = tools_changed
        self.config_file = config_file
        self.siblings = siblings
        self.shared = shared
        self.applied = applied
        """Told after each reload this process applied (`serve` keeps the config's text)."""
        self.read = dict(read or {})
        """Files' stamps as they were read, for the watchers to start from (`create_app`)."""

    async def reload(
        self,
        only: frozenset[str] | None = None,
        *,
        dry_run: bool = False,
        tell: bool = True,
        reread: bool | None = None,
        by: str | None = None,
        since: Generation | None = None,
    ) -> dict[str, Any]:
        """Reload (or, dry, say what a reload would change): the admin API's answer. With
        `tell`, the sibling workers apply it too, and the answer waits for them; with `by` (who
        asked), the other replicas sharing the state store are told as well."""
        found = await self.gateway.reload(only, dry_run=dry_run, reread=reread, since=since)
        answer = {"applied": not dry_run, **found.as_json()}
        if not dry_run:
            set_limits(self.gateway.config.http)
            if self.applied is not None:
                self.applied()
            if found.lists_changed:
                await self.tools_changed()
            if self.shared is not None:
                await self.shared.keep_approvals(self.gateway)  # a new `hold` source's first
            if tell and self.siblings is not None:
                event = {"action": "refresh" if only is not None else "reload"}
                answer["workers"] = await self._tell(event)
            if by is not None and only is None and self.shared is not None:
                untold = await self._announce(self.shared.announce_reload(by))
                if untold is not None:
                    answer["replicas"] = untold
        return answer

    async def sources_registered(
        self, changed: frozenset[str], since: Generation | None = None
    ) -> dict[str, Any]:
        """Sources the admin API (or another replica) registered, changed or removed: read
        them again, here and on every sibling; what changed since `since` (before the write)."""
        return await self.reload(changed, reread=True, since=since)

    async def approve(self, source: str, *, by: str | None = None) -> dict[str, Any]:
        """Serve the held new version of `source`, here, on every sibling and every replica."""
        held = self.gateway.held().get(source)
        found = await self.gateway.approve(source)
        await self.tools_changed()
        if self.shared is not None:
            await self.shared.keep_approvals(self.gateway, by=by or approvals.GATEWAY)
        answer: dict[str, Any] = {"applied": True, **found.as_json()}
        if self.siblings is not None and held is not None:
            event = {"action": "approve", "source": source, "digest": held.digest}
            answer["workers"] = await self._tell(event)
        if self.shared is not None and held is not None and by is not None:
            untold = await self._announce(self.shared.announce_approval(source, held.digest, by))
            if untold is not None:
                answer["replicas"] = untold
        return answer

    async def _announce(self, announcement: Awaitable[None]) -> dict[str, Any] | None:
        """None once the other replicas are told (through the store); else what the answer
        says of them: applied here, and not there until they reload."""
        try:
            await announcement
        except ToolbridgeError as exc:
            logger.warning("could not tell the other replicas: %s", exc)
            return {
                "told": False,
                "reason": f"{exc}; applied here only: the other replicas apply it when they "
                "reload next (reload them once the store is back)",
            }
        return None

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """While the app serves: SIGHUP handled, files watched, siblings followed."""
        _install_sighup(self._signalled)
        read = {**self.read, **self._documents_read()}
        background = [
            watch(self._config_files, self._config_changed, read=read, what="the config"),
            watch(self._tool_files, self._files_changed, read=read, what="local tool files"),
            watch(self._document_files, self._files_changed, read=read, what="OpenAPI documents"),
        ]
        background.append(self._retry_down())
        if self.siblings is not None:
            background.append(self.siblings.follow(self._from_sibling))
        tasks = [asyncio.create_task(job) for job in background]
        try:
            async with contextlib.AsyncExitStack() as stack:
                if self.shared is not None:
                    await stack.enter_async_context(
                        self.shared.running(
                            self.gateway,
                            sources_changed=self._registered_elsewhere,
                            reloaded_elsewhere=self._reloaded_elsewhere,
                            approved_elsewhere=self._approved_elsewhere,
                        )
                    )
                yield
        finally:
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    async def _retry_down(self) -> None:
        """Every DOWN_RETRY seconds, read again each server that is down with nothing to serve
        (each worker its own; one that kept its last good version serves that meanwhile)."""
        while True:
            await asyncio.sleep(DOWN_RETRY)
            servers = {s.id for s in self.gateway.config.servers}
            down = frozenset(
                s.id for s in self.gateway.sources() if s.id in servers and s.conversion is None
            )
            if not down:
                continue
            try:
                await self.reload(down, tell=False, reread=False)
            except ToolbridgeError as exc:
                logger.warning("retrying %s: %s", ", ".join(sorted(down)), exc)

    async def _tell(self, event: dict[str, Any]) -> dict[str, int]:
        """Append an event for the other workers and wait until they have applied it."""
        assert self.siblings is not None
        done, others = await self.siblings.wait(self.siblings.publish(event), timeout=SIBLING_WAIT)
        return {"total": others + 1, "applied": done + 1}

    async def _from_sibling(self, event: dict[str, Any]) -> None:
        """What another worker did, done here too."""
        if event.get("action") == "reload":
            await self.reload(tell=False)
        elif event.get("action") == "refresh" and self.shared is not None:
            changed = await self.shared.refresh()
            if changed:
                await self.reload(changed, tell=False, reread=True)
        elif event.get("action") == "approve":
            await self._approved_elsewhere(str(event.get("source")), str(event.get("digest")))

    async def _registered_elsewhere(self, changed: frozenset[str]) -> None:
        await self.reload(changed, tell=False, reread=True)

    async def _reloaded_elsewhere(self) -> None:
        try:
            await self.reload(tell=False)
        except ToolbridgeError as exc:
            logger.error("another replica reloaded; this one refused the config: %s", exc)

    async def _approved_elsewhere(self, source: str, digest: str) -> None:
        held = self.gateway.held().get(source)
        if held is None or held.digest != digest:
            await self.gateway.reload()  # this worker may not have read the new version yet
            held = self.gateway.held().get(source)
        if held is not None and held.digest == digest:
            await self.gateway.approve(source)
            await self.tools_changed()
            if self.shared is not None:
                await self.shared.keep_approvals(self.gateway)

    async def _signalled(self) -> None:
        try:
            await self.reload()
        except ToolbridgeError as exc:
            logger.error("SIGHUP: the config was not applied; still serving the last one: %s", exc)

    async def _config_changed(self, _: frozenset[str]) -> None:
        try:
            await self.reload(tell=False)  # every worker watches the file itself
        except ToolbridgeError as exc:
            logger.error(
                "the config changed but was not applied; still serving the last one: %s", exc
            )

    async def _files_changed(self, entries: frozenset[str]) -> None:
        await self.reload(entries, tell=False)

    def _config_files(self) -> dict[str, list[Path]]:
        if self.config_file is None or not self.gateway.config.watch:
            return {}
        return {str(self.config_file): [self.config_file]}

    def _tool_files(self) -> dict[str, list[Path]]:
        return watched_files(self.gateway.config) if self.gateway.config.watch else {}

    def _document_files(self) -> dict[str, list[Path]]:
        """The local files each OpenAPI source's documents were read from (`$ref`s too)."""
        if not self.gateway.config.watch:
            return {}
        return {s.id: list(s.files) for s in self.gateway.sources() if s.files}

    def _documents_read(self) -> dict[Path, FileStamp]:
        """The stamps the documents' files had when the sources served were read from them."""
        return {
            path: read
            for s in self.gateway.sources()
            for path, read in zip(s.files, s.stamps, strict=False)
        }


def _install_sighup(reload: Callable[[], Coroutine[Any, Any, None]]) -> None:
    """SIGHUP (sent by an operator, a process manager, or our worker supervisor) reloads."""
    loop = asyncio.get_running_loop()
    running: set[asyncio.Task[Any]] = set()  # the loop keeps only weak references to tasks

    def on_sighup() -> None:
        task = loop.create_task(reload())
        running.add(task)
        task.add_done_callback(running.discard)

    with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
        loop.add_signal_handler(signal.SIGHUP, on_sighup)
