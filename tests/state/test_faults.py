"""PostgreSQL going away mid-test: reads and writes raise `StoreUnavailable` saying what was
attempted; when it returns the same store works again and followers catch up, missing
nothing and repeating nothing. (These stop and restart the session's server.)"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import pytest

from tests.servers import Postgres
from tests.state.conftest import KEY_A
from tests.state.test_feed import take
from toolbridge.errors import StoreUnavailable
from toolbridge.state import SecretBox, Store

pytestmark = pytest.mark.anyio

Operation = Callable[[Store], Awaitable[Any]]
OPERATIONS: list[tuple[str, Operation]] = [
    ("list servers", lambda s: s.servers.list()),
    ("read servers", lambda s: s.servers.in_clear()),
    ("register server 'new'", lambda s: s.servers.create({"id": "new", "spec": "n.yaml"}, by="o")),
    ("delete server 'pets'", lambda s: s.servers.delete("pets", by="o")),
    ("store the valves of tool 't'", lambda s: s.tools.put_valves("t", {"a": 1}, by="o")),
    ("read the credential of 'alice' for server 'pets'",
     lambda s: s.users.credential_in_clear("alice", "pets")),
    ("store the credential of 'alice' for server 'pets'",
     lambda s: s.users.put_credential("alice", "pets", {"token": "t"})),
    ("approve the document of 'pets'", lambda s: s.documents.approve("pets", b"d", by="o")),
    ("read the change feed", lambda s: s.changes_since(0)),
    ("read the audit log", lambda s: s.audit_log()),
]  # fmt: skip


@pytest.fixture
def postgres(postgres_server: Postgres) -> Iterator[Postgres]:
    """The session's PostgreSQL, running again after the test whatever it did."""
    yield postgres_server
    with contextlib.suppress(RuntimeError):  # already running: pg_ctl refuses to start it twice
        postgres_server.start()


async def test_reads_and_writes_say_what_failed_while_postgres_is_down(postgres: Postgres) -> None:
    url = postgres.create_database()
    async with await Store.open(url, secrets=SecretBox([KEY_A])) as store:
        await store.servers.create({"id": "pets", "spec": "p.yaml"}, by="ops")

        postgres.stop()
        messages = []
        for _, operation in OPERATIONS:
            with pytest.raises(StoreUnavailable) as caught:
                await operation(store)
            messages.append((caught.value.action, str(caught.value).split(" (")[0]))

        assert messages == [
            (action, f"could not {action}: the state store {url} is unavailable")
            for action, _ in OPERATIONS
        ]
        postgres.start()
        await store.servers.create({"id": "after", "spec": "a.yaml"}, by="ops")
        assert [s.id for s in await store.servers.list()] == ["after", "pets"]


async def test_a_follower_catches_up_after_postgres_returns(
    postgres: Postgres, caplog: pytest.LogCaptureFixture
) -> None:
    url = postgres.create_database()
    caplog.set_level(logging.WARNING, logger="toolbridge.state.follow")
    async with (
        await Store.open(url) as writer,
        await Store.open(url) as watcher,
    ):
        follower = watcher.follow(0)
        try:
            await writer.users.put_valves("alice", "t1", {"n": 1})
            assert [c.id for c in await take(follower, 1, within=2.0)] == [1]

            postgres.stop()
            waiting = asyncio.ensure_future(take(follower, 2, within=30.0))
            await asyncio.sleep(1.0)  # the follower finds it gone, and retries
            postgres.start()
            await writer.users.put_valves("alice", "t2", {"n": 2})
            await writer.users.put_valves("alice", "t3", {"n": 3})
            caught_up = await waiting
        finally:
            await follower.aclose()

    assert [(c.id, c.subject["tool"]) for c in caught_up] == [(2, "t2"), (3, "t3")]
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 2
    assert warnings[0].startswith(f"the state store {url} is unavailable (")
    assert warnings[1] == f"the state store {url} is back; following its changes again"


async def test_a_database_that_does_not_exist_is_unavailable(postgres: Postgres) -> None:
    url = postgres.url("nonexistent")
    with pytest.raises(StoreUnavailable) as caught:
        await Store.open(url)
    assert str(caught.value) == (
        "could not open the state store and bring its schema up to date: the state store "
        f"{url} is unavailable "
        '(InvalidCatalogNameError: database "nonexistent" does not exist)'
    )
