"""Pruning the audit log and the change feed by age, on SQLite and on a real PostgreSQL: what
is past its time goes, with a marker that tells a follower who had not read it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest

from tests.state.conftest import KEY_A
from toolbridge.state import AuditEntry, Change, SecretBox, Store
from toolbridge.state.retention import KEEP_CHANGES, Pruned, missed

pytestmark = pytest.mark.anyio

START = datetime(2026, 1, 1, tzinfo=UTC)


class Clock:
    """The store's clock, moved by the test."""

    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def store(store_url: str, clock: Clock) -> AsyncIterator[Store]:
    async with await Store.open(store_url, secrets=SecretBox([KEY_A]), clock=clock) as store:
        yield store


async def write(store: Store, n: int) -> None:
    for i in range(n):
        await store.record_change("reload", "reload", {"replica": f"r{i}"}, by="ops")


async def test_what_is_past_its_time_goes_with_a_marker_and_an_audit_entry(
    store: Store, clock: Clock
) -> None:
    await write(store, 3)  # changes and audit entries 1-3, at START
    clock.now = START + timedelta(days=5)
    await write(store, 1)  # 4, five days later
    clock.now = START + KEEP_CHANGES + timedelta(hours=1)  # 1-3 are past a week; 4 is not

    assert await store.prune(audit_days=6, by="gateway") == Pruned(audit=3, changes=3, through=3)

    now = clock.now
    assert await store.changes_since(0) == (
        Change(4, "reload", "reload", {"replica": "r0"}, START + timedelta(days=5)),
        Change(5, "feed", "prune", {"through": "3"}, now),
    )
    assert await store.audit_log() == (
        AuditEntry(5, now, "gateway", "feed.prune", "3", {"audit": 3, "changes": 3}),
        AuditEntry(4, START + timedelta(days=5), "ops", "reload.reload", "r0", {}),
    )


async def test_audit_days_null_keeps_the_audit_log_and_still_prunes_the_feed(
    store: Store, clock: Clock
) -> None:
    await write(store, 2)
    clock.now = START + timedelta(days=400)
    assert await store.prune(audit_days=None, by="gateway") == Pruned(0, 2, 2)
    assert [entry.id for entry in await store.audit_log()] == [3, 2, 1]


async def test_nothing_past_its_time_changes_nothing(store: Store, clock: Clock) -> None:
    await write(store, 2)
    clock.now = START + KEEP_CHANGES - timedelta(seconds=1)
    assert await store.prune(audit_days=7, by="gateway") == Pruned(0, 0, None)
    assert [c.id for c in await store.changes_since(0)] == [1, 2]
    assert [e.id for e in await store.audit_log()] == [2, 1]


async def test_only_audit_entries_gone_are_audited_and_leave_the_feed_alone(
    store: Store, clock: Clock
) -> None:
    await write(store, 1)
    clock.now = START + timedelta(days=2)
    assert await store.prune(audit_days=1, by="gateway") == Pruned(1, 0, None)
    assert [c.id for c in await store.changes_since(0)] == [1]
    assert await store.audit_log() == (
        AuditEntry(2, clock.now, "gateway", "feed.prune", "0", {"audit": 1, "changes": 0}),
    )


async def test_the_newest_marker_covers_every_change_deleted_so_far(
    store: Store, clock: Clock
) -> None:
    """A prune that deletes an older marker writes a newer one, so a follower cut off for
    longer than two prunes still learns it missed changes."""
    await write(store, 2)  # 1, 2
    clock.now = START + KEEP_CHANGES + timedelta(days=1)
    await store.prune(audit_days=None, by="gateway")  # deletes 1-2; marker 3 (through 2)
    await write(store, 1)  # 4
    clock.now += KEEP_CHANGES + timedelta(days=1)
    assert await store.prune(audit_days=None, by="gateway") == Pruned(0, 2, 4)

    (marker,) = await store.changes_since(0)
    assert marker == Change(5, "feed", "prune", {"through": "4"}, clock.now)
    assert [missed(marker, last) for last in (0, 1, 3, 4, 5)] == [True] * 3 + [False] * 2
    reload = Change(6, "reload", "reload", {"through": "9"}, clock.now)
    assert not missed(reload, 0)  # only the feed's own marker says so


async def test_processes_pruning_at_once_delete_once_and_leave_one_marker(
    store_url: str, store: Store, clock: Clock
) -> None:
    await write(store, 20)
    clock.now = START + KEEP_CHANGES + timedelta(days=1)
    others = [await Store.open(store_url, clock=clock) for _ in range(3)]
    try:
        results = await asyncio.gather(
            *(s.prune(audit_days=3, by=f"p{i}") for i, s in enumerate([store, *others]))
        )
    finally:
        for other in others:
            await other.close()
    assert sum(r.changes for r in results) == 20
    assert sum(r.audit for r in results) == 20
    (marker,) = await store.changes_since(0)
    assert (marker.kind, marker.subject) == ("feed", {"through": "20"})
