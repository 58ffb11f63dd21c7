"""How a serving process applies the state store's change feed: no change skipped for a
passing fault."""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime
from pathlib import Path

import pytest

from toolbridge.errors import StoreUnavailable
from toolbridge.serve import shared as shared_module
from toolbridge.serve.shared import Shared
from toolbridge.state.values import Change

pytestmark = pytest.mark.anyio

RELOAD = Change(
    id=7, kind="reload", op="reload", subject={"replica": "other"}, at=datetime.now(UTC)
)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def shared(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Shared:
    monkeypatch.setattr(shared_module, "RETRY", 0.01)
    return Shared("sqlite:///unused.db", folder=tmp_path, replica="this")


async def nothing(*_: object) -> None:
    return None


async def test_a_change_whose_application_fails_for_a_while_is_applied_when_it_can_be(
    shared: Shared,
) -> None:
    attempts: list[int] = []

    async def reloaded_elsewhere() -> None:
        attempts.append(len(attempts) + 1)
        if len(attempts) < 3:
            raise StoreUnavailable("read the config", "postgresql://db", "starting up")

    await shared._apply_soon(RELOAD, (nothing, reloaded_elsewhere, nothing))
    assert attempts == [1, 2, 3]


async def test_a_change_that_never_applies_is_logged_after_its_attempts(
    shared: Shared, caplog: pytest.LogCaptureFixture
) -> None:
    attempts: list[int] = []

    async def reloaded_elsewhere() -> None:
        attempts.append(1)
        raise RuntimeError("a bug")

    await shared._apply_soon(RELOAD, (nothing, reloaded_elsewhere, nothing))
    assert len(attempts) == shared_module.APPLY_ATTEMPTS
    assert [r.getMessage() for r in caplog.records if r.levelname == "ERROR"] == [
        "applying change 7 from the state store failed"
    ]


async def test_a_store_that_never_answers_holds_a_call_only_so_long(
    shared: Shared, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A call waits CALL_READ_TIMEOUT for a caller's stored valves, not the statement's 30 s."""
    import asyncio
    import time

    class Frozen:
        async def valves_in_clear(self, user: str, tool_id: str) -> None:
            await asyncio.Event().wait()  # taken, and never answered (a stopped PostgreSQL)

    class Store:
        users = Frozen()

    monkeypatch.setattr(shared_module, "CALL_READ_TIMEOUT", 0.2)
    shared.store = Store()  # type: ignore[assignment]
    started = time.monotonic()
    with pytest.raises(StoreUnavailable) as caught:
        await shared.users.valves("alice", "weather")
    assert str(caught.value) == (
        "could not read the user valves of 'alice' for 'weather': the state store "
        "sqlite:///unused.db is unavailable (no answer within 0.2 s)"
    )
    assert time.monotonic() - started < 5


async def test_a_late_read_is_left_to_end_by_itself_not_waited_for(
    shared: Shared, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Cancelling a query waits for the driver to cancel it on the server, which a frozen
    server never answers: the call ends at CALL_READ_TIMEOUT all the same."""
    import asyncio

    ended: list[str] = []
    release = asyncio.Event()

    class Frozen:
        async def valves_in_clear(self, user: str, tool_id: str) -> None:
            try:
                await asyncio.Event().wait()
            except asyncio.CancelledError:
                await release.wait()  # asyncpg asking the frozen server to cancel the query
                ended.append("cleaned up")
                raise

    class Store:
        users = Frozen()

    monkeypatch.setattr(shared_module, "CALL_READ_TIMEOUT", 0.1)
    shared.store = Store()  # type: ignore[assignment]
    with pytest.raises(StoreUnavailable):
        await shared.users.valves("alice", "weather")
    when_the_call_ended = list(ended)
    release.set()
    for _ in range(10):
        await asyncio.sleep(0)
    assert (when_the_call_ended, ended, shared_module._ABANDONED) == ([], ["cleaned up"], set())


async def test_a_committed_admin_write_whose_reread_fails_says_so_and_is_no_503(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A store that fails just after the commit (PostgreSQL restarting): the write is done, so
    a 503 would have the client retry it into a 409. The answer says it is stored, not applied
    here yet (the change feed applies it when the store answers)."""
    from typing import Any, cast

    from toolbridge.serve.admin import Admin

    class Failing:
        async def refresh(self) -> frozenset[str]:
            raise StoreUnavailable("read servers", "postgresql://db", "connection reset")

    admin = Admin(cast(Any, None), cast(Any, None), cast(Any, Failing()))
    answer = await admin.applied("pets", cast(Any, None))
    message = (
        "could not read servers: the state store postgresql://db is unavailable (connection reset)"
    )
    assert answer == {
        "changes": {
            "applied": False,
            "error": f"stored, not applied here yet: {message}; it applies when the store answers",
        }
    }
    assert [r.getMessage() for r in caplog.records] == [
        f"pets is stored, not applied here yet: {message}"
    ]


async def test_a_follower_that_missed_pruned_changes_reads_everything_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A process cut off from the store while the changes it had not read were pruned: the
    prune's marker tells it so, and it reads everything again (sources, a reload, callers'
    data); without it, alice's valves cached here would stay as they were."""
    import asyncio
    from datetime import timedelta

    from toolbridge.config import Config
    from toolbridge.demo import DEMO_SPEC
    from toolbridge.gateway import Gateway
    from toolbridge.state.retention import KEEP_CHANGES
    from toolbridge.state.store import Store
    from toolbridge.upstream.seam import MockUpstream, UpstreamResponse

    url, now = f"sqlite:///{tmp_path / 'state.db'}", [datetime.now(UTC)]
    async with await Store.open(url, clock=lambda: now[0]) as writer:
        await writer.users.put_valves("alice", "clock", {"tz": "UTC"})  # change 1
        shared = Shared(url, folder=tmp_path / "files", replica="this")
        assert await shared._open()
        assert await shared.users.valves("alice", "clock") == {"tz": "UTC"}  # cached here
        await writer.users.put_valves("alice", "clock", {"tz": "CET"})  # 2: never read here
        now[0] += KEEP_CHANGES + timedelta(days=1)
        await writer.prune(audit_days=None, by="gateway")  # deletes 1-2, marker 3

    store = shared.require()

    async def had_read_change_1() -> int:
        return 1

    monkeypatch.setattr(store, "last_change_id", had_read_change_1)
    gateway = Gateway(
        Config.model_validate({"servers": [{"id": "notes", "spec": str(DEMO_SPEC)}]}),
        upstream=MockUpstream(lambda r: UpstreamResponse(status=204)),
    )
    gateway.load()
    reloaded = asyncio.Event()

    async def reloaded_elsewhere() -> None:
        reloaded.set()

    task = asyncio.create_task(
        shared._follow(gateway, True, (nothing, reloaded_elsewhere, nothing))
    )
    try:
        await asyncio.wait_for(reloaded.wait(), 10)
        assert await shared.users.valves("alice", "clock") == {"tz": "CET"}
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await store.close()
    assert [r.getMessage() for r in caplog.records if r.levelname == "WARNING"] == [
        "changes in the state store were pruned before this process read them (it was cut off "
        "from the store for longer than 7 days): reading everything again"
    ]


async def test_a_prune_that_fails_is_logged_and_tried_again_later(
    shared: Shared, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    import asyncio
    from typing import Any, cast

    from toolbridge.config import Config
    from toolbridge.state.retention import Pruned

    caplog.set_level("INFO", shared_module.logger.name)
    monkeypatch.setattr(shared_module, "PRUNE_EVERY", 0.01)
    asked: list[int | None] = []
    tried = asyncio.Event()

    class Store:
        async def prune(self, *, audit_days: int | None, by: str) -> Pruned:
            asked.append(audit_days)
            if len(asked) == 1:
                raise StoreUnavailable("prune", "postgresql://db", "connection reset")
            if len(asked) == 2:
                raise RuntimeError("a bug")
            tried.set()
            return Pruned(audit=2, changes=1, through=7)

    class Served:
        config = Config.model_validate({"state": {"audit_days": 30}})

    shared.store = cast(Any, Store())
    task = asyncio.create_task(shared._prune(cast(Any, Served())))
    try:
        await asyncio.wait_for(tried.wait(), 5)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    assert asked[:3] == [30, 30, 30]
    assert [(r.levelname, r.getMessage()) for r in caplog.records][:3] == [
        (
            "WARNING",
            "pruning the state store failed, again later: could not prune: the state store "
            "postgresql://db is unavailable (connection reset)",
        ),
        ("ERROR", "pruning the state store failed, again later"),
        ("INFO", "pruned the state store: 2 audit entries, 1 changes"),
    ]
