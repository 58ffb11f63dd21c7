"""The audit log and the change feed: one entry of each per write, in commit order, followed
by other replicas (PostgreSQL notifies, SQLite is polled) within a second."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncGenerator
from hashlib import sha256

import anyio
import pytest

from tests.state.conftest import KEY_A, NOW
from toolbridge.errors import StoreUnavailable
from toolbridge.state import AuditEntry, Change, SecretBox, Store, follow

pytestmark = pytest.mark.anyio


async def take(follower: AsyncGenerator[Change, None], count: int, within: float) -> list[Change]:
    """The next `count` changes a follower gives, failing after `within` seconds."""
    found: list[Change] = []
    with anyio.fail_after(within):
        async for change in follower:
            found.append(change)
            if len(found) == count:
                break
    return found


async def test_every_write_is_one_change_and_one_audit_entry(store: Store) -> None:
    await store.servers.create({"id": "pets", "spec": "p.yaml"}, by="ops")
    await store.tools.create("clock", "class Tools: pass\n", {}, by="ops")
    await store.tools.put_valves("clock", {"tz": "UTC"}, by="ops")
    await store.users.put_valves("alice", "clock", {"units": "metric"})
    await store.users.put_credential("alice", "pets", {"token": "t"})
    await store.documents.approve("pets", b"doc", by="ops")
    await store.servers.delete("pets", by="bob")
    await store.record_change("reload", "reload", {"config": "toolbridge.yaml"}, by="ops")

    assert await store.changes_since(0) == (
        Change(1, "server", "create", {"server": "pets"}, NOW),
        Change(2, "tool", "create", {"tool": "clock"}, NOW),
        Change(3, "tool_valves", "update", {"tool": "clock"}, NOW),
        Change(4, "user_valves", "update", {"user": "alice", "tool": "clock"}, NOW),
        Change(5, "credential", "update", {"user": "alice", "server": "pets"}, NOW),
        Change(6, "document", "approve", {"source": "pets"}, NOW),
        Change(7, "server", "delete", {"server": "pets"}, NOW),
        Change(8, "reload", "reload", {"config": "toolbridge.yaml"}, NOW),
    )
    doc, tool = sha256(b"doc").hexdigest(), sha256(b"class Tools: pass\n").hexdigest()
    assert await store.audit_log() == (
        AuditEntry(8, NOW, "ops", "reload.reload", "toolbridge.yaml", {}),
        AuditEntry(7, NOW, "bob", "server.delete", "pets", {}),
        AuditEntry(6, NOW, "ops", "document.approve", "pets",
                   {"sha256": doc, "size": 3, "version": 1}),
        AuditEntry(5, NOW, "alice", "credential.update", "alice/pets", {"fields": ["token"]}),
        AuditEntry(4, NOW, "alice", "user_valves.update", "alice/clock",
                   {"keys": ["units"], "secret": []}),
        AuditEntry(3, NOW, "ops", "tool_valves.update", "clock", {"keys": ["tz"], "secret": []}),
        AuditEntry(2, NOW, "ops", "tool.create", "clock",
                   {"keys": [], "sha256": tool}),
        AuditEntry(1, NOW, "ops", "server.create", "pets", {"keys": ["id", "spec"]}),
    )  # fmt: skip


async def test_the_feed_and_the_log_page(store: Store) -> None:
    for n in range(5):
        await store.users.put_valves("alice", f"t{n}", {"n": n})

    assert await store.last_change_id() == 5
    assert [c.id for c in await store.changes_since(2)] == [3, 4, 5]
    assert [c.id for c in await store.changes_since(0, limit=2)] == [1, 2]
    assert await store.changes_since(5) == ()
    assert [e.id for e in await store.audit_log(limit=2)] == [5, 4]
    assert [e.id for e in await store.audit_log(before=4)] == [3, 2, 1]


async def test_the_log_is_read_by_action_or_by_kind(store: Store) -> None:
    await store.tools.create("clock", "class Tools: pass\n", {}, by="ops")  # 1 tool.create
    await store.tools.put_valves("clock", {"tz": "UTC"}, by="ops")  # 2 tool_valves.update
    await store.servers.create({"id": "pets", "spec": "p.yaml"}, by="ops")  # 3 server.create
    await store.tools.update("clock", "class Tools: pass\n", {"timeout": 5}, by="ops")  # 4
    await store.record_change("reload", "reload", {"replica": "a%"}, by="ops")  # 5

    def ids(entries: tuple[AuditEntry, ...]) -> list[int]:
        return [e.id for e in entries]

    assert ids(await store.audit_log(action="tool")) == [4, 1]  # not tool_valves
    assert ids(await store.audit_log(action="tool.create")) == [1]
    assert ids(await store.audit_log(action="tool_valves")) == [2]
    assert ids(await store.audit_log(action="tool", before=4)) == [1]
    assert ids(await store.audit_log(action="tool%")) == []  # a pattern's signs are letters
    assert ids(await store.audit_log(action="reload.reload", limit=1)) == [5]


async def test_a_new_store_has_an_empty_feed(store: Store) -> None:
    assert (await store.last_change_id(), await store.changes_since(0)) == (0, ())
    assert await store.audit_log() == ()


async def test_another_replica_sees_a_change_within_a_second(store_url: str) -> None:
    box = SecretBox([KEY_A])
    async with (
        await Store.open(store_url, secrets=box) as one,
        await Store.open(store_url, secrets=box) as two,
    ):
        await one.servers.create({"id": "old", "spec": "o.yaml"}, by="ops")
        follower = two.follow(await two.last_change_id())
        try:
            await asyncio.sleep(0.3)  # the follower is listening, or has polled once
            started = time.monotonic()
            await one.servers.create({"id": "pets", "spec": "p.yaml"}, by="ops")
            [change] = await take(follower, 1, within=1.0)
            elapsed = time.monotonic() - started
        finally:
            await follower.aclose()

    assert (change.id, change.kind, change.op, change.subject) == (
        2, "server", "create", {"server": "pets"},
    )  # fmt: skip
    assert elapsed < 1.0


async def test_concurrent_writers_are_followed_in_order_without_gaps(store_url: str) -> None:
    """Two replicas writing at once: every change reaches a third once, in id order."""
    box = SecretBox([KEY_A])
    async with (
        await Store.open(store_url, secrets=box) as one,
        await Store.open(store_url, secrets=box) as two,
        await Store.open(store_url, secrets=box) as watcher,
    ):
        follower = watcher.follow(0)

        async def write(store: Store, user: str) -> None:
            for n in range(12):
                await store.users.put_valves(user, f"tool{n}", {"n": n})

        try:
            async with anyio.create_task_group() as group:
                group.start_soon(write, one, "alice")
                group.start_soon(write, two, "bob")
            seen = await take(follower, 24, within=10.0)
        finally:
            await follower.aclose()
        stored = await watcher.changes_since(0)

    assert [c.id for c in seen] == sorted(c.id for c in seen)
    assert seen == list(stored)
    assert sorted((c.subject["user"], c.subject["tool"]) for c in seen) == sorted(
        (user, f"tool{n}") for user in ("alice", "bob") for n in range(12)
    )


async def test_a_polling_follower_rides_out_an_outage(caplog: pytest.LogCaptureFixture) -> None:
    """SQLite's follower: one warning when the store goes, one when it is back, nothing lost."""
    caplog.set_level(logging.WARNING, logger="toolbridge.state.follow")
    feed = [Change(n, "server", "update", {"server": "s"}, NOW) for n in range(1, 5)]
    answers: list[tuple[Change, ...] | StoreUnavailable] = [
        (feed[0],),
        StoreUnavailable("read the change feed", "sqlite:///s.db", "disk I/O error"),
        StoreUnavailable("read the change feed", "sqlite:///s.db", "disk I/O error"),
        (feed[1], feed[2]),
        (feed[3],),
    ]
    asked: list[int] = []

    async def changes_since(after: int) -> tuple[Change, ...]:
        asked.append(after)
        answer = answers.pop(0) if answers else ()
        if isinstance(answer, StoreUnavailable):
            raise answer
        return answer

    follower = follow.polled(changes_since, "sqlite:////x/s.db", 0, interval=0.01)
    try:
        seen = await take(follower, 4, within=2.0)
    finally:
        await follower.aclose()

    assert (seen, asked) == (feed, [0, 1, 1, 1, 3])
    assert [r.getMessage() for r in caplog.records] == [
        "the state store sqlite:////x/s.db is unavailable (disk I/O error): changes made "
        "meanwhile are picked up when it returns; retrying every 1 s at most",
        "the state store sqlite:////x/s.db is back; following its changes again",
    ]
