"""Each caller's stored data, cached: a change forgets it, also while a read is in flight."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

import anyio
import pytest

from toolbridge.config import Config
from toolbridge.errors import StoreUnavailable
from toolbridge.gateway import Gateway
from toolbridge.policy import Principal
from toolbridge.upstream.seam import MockUpstream
from toolbridge.users import UserData

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def test_a_read_in_flight_across_a_change_does_not_put_the_old_value_back() -> None:
    """The store's read sees the old token; the change commits and is forgotten before that
    read's answer comes back. Kept, the revoked token would be served from memory until the
    next change for that caller."""
    store: dict[tuple[str, str], dict[str, Any]] = {("alice", "pu"): {"token": "old"}}
    reads = 0

    async def credential(user: str, server: str) -> dict[str, Any] | None:
        nonlocal reads
        reads += 1
        seen = store.get((user, server))  # the SELECT runs now ...
        await anyio.sleep(0.05)  # ... and its answer arrives later
        return seen

    async def valves(user: str, tool: str) -> dict[str, Any] | None:
        return None

    users = UserData(valves, credential)
    async with anyio.create_task_group() as group:
        first: list[Any] = []

        async def call() -> None:
            first.append(await users.credential("alice", "pu"))

        group.start_soon(call)
        await anyio.sleep(0.01)
        store[("alice", "pu")] = {"token": "new"}  # the write commits
        users.forget("alice")  # and the change feed says so
    later = [await users.credential("alice", "pu") for _ in range(3)]
    assert (first, later, reads) == ([{"token": "old"}], [{"token": "new"}] * 3, 2)


async def test_reads_are_cached_until_forgotten() -> None:
    reads: list[str] = []

    async def valves(user: str, tool: str) -> dict[str, Any] | None:
        reads.append(f"{user}/{tool}")
        return {"home": user}

    async def credential(user: str, server: str) -> dict[str, Any] | None:
        return None

    users = UserData(valves, credential)
    for _ in range(3):
        await users.valves("bob", "weather")
    users.forget("bob", "weather")
    await users.valves("bob", "weather")
    assert reads == ["bob/weather", "bob/weather"]


@pytest.mark.parametrize(
    ("user", "key", "forgotten"),
    [
        (None, None, ["alice/weather", "alice/shout", "bob/weather"]),
        (None, "weather", ["alice/weather", "bob/weather"]),  # a registered tool changed
        ("alice", None, ["alice/weather", "alice/shout"]),
        ("alice", "weather", ["alice/weather"]),  # one caller's valves for one tool
    ],
)
async def test_forgetting_drops_only_what_it_names_and_the_rest_outlives_an_outage(
    user: str | None, key: str | None, forgotten: list[str]
) -> None:
    """What is still cached is answered while the store is out of reach: an admin write of one
    tool forgot every caller's everything, so their calls failed (503) until it came back."""
    reads: list[str] = []
    down = False

    async def valves(user: str, tool: str) -> dict[str, Any] | None:
        if down:
            raise StoreUnavailable("read the user valves", "sqlite:///s.db", "gone")
        reads.append(f"{user}/{tool}")
        return {"home": user}

    async def credential(user: str, server: str) -> dict[str, Any] | None:
        return None

    users = UserData(valves, credential)
    asked = [("alice", "weather"), ("alice", "shout"), ("bob", "weather")]
    for who, tool in asked:
        await users.valves(who, tool)
    users.forget(user, key)
    down = True
    answered = []
    for who, tool in asked:
        with contextlib.suppress(StoreUnavailable):
            answered.append(f"{who}/{tool}" if await users.valves(who, tool) else "")
    kept = [f"{who}/{tool}" for who, tool in asked if f"{who}/{tool}" not in forgotten]
    assert (answered, reads) == (kept, [f"{who}/{tool}" for who, tool in asked])


TOOL_FILE = '''
from pydantic import BaseModel


class Tools:
    def plain(self, __user__: dict) -> str:
        """Who asks."""
        return f"{__user__['id']} {sorted(__user__)}"


class Settings:
    class UserValves(BaseModel):
        city: str = "Paris"

    def __init__(self) -> None:
        pass
'''


async def test_a_tool_without_user_valves_never_asks_the_store(tmp_path: Path) -> None:
    """Its `__user__` holds no valves whatever is stored: reading them only made its calls
    fail (503) while the store was out of reach."""
    (tmp_path / "plain.py").write_text(TOOL_FILE)
    (tmp_path / "valved.py").write_text(
        TOOL_FILE.replace("class Tools:", "class Plain:").replace("class Settings:", "class Tools:")
        + "\n    def city(self, __user__: dict) -> str:\n"
        + '        """Where."""\n        return __user__["valves"].city\n'
    )
    asked: list[tuple[str, str]] = []

    async def down(user: str, key: str) -> dict[str, Any] | None:
        asked.append((user, key))
        raise StoreUnavailable("read the user valves", "sqlite:///s.db", "gone")

    config = Config.model_validate(
        {
            "tools": [{"id": "plain", "path": "plain.py"}, {"id": "valved", "path": "valved.py"}],
            "base_dir": tmp_path,
        }
    )
    async with Gateway(
        config, upstream=MockUpstream(lambda request: pytest.fail(f"sent {request}"))
    ) as gateway:
        gateway.dispatch.users = UserData(down, down)
        caller = Principal(id="alice", admin=True)
        result = await gateway.call(caller, "plain", {})
        with pytest.raises(StoreUnavailable):
            await gateway.call(caller, "city", {})
    assert (result.result, asked) == (
        "alice ['email', 'groups', 'id', 'name', 'role']",
        [("alice", "valved")],
    )
