"""Two gateway replicas on one PostgreSQL and one Redis agree, as behind a load balancer.

Two real `toolbridge serve` processes share a config folder, a PostgreSQL state store and a
Redis for rate limits. What one is told, the other does within a second; a limit holds for
both together; one can die without the other losing a call.
"""

from __future__ import annotations

import shutil
import signal
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx2
import pytest
import yaml
from cryptography.fernet import Fernet

from tests.e2e.conftest import live_server
from tests.e2e.serving import KEYS, Served, bearer
from tests.fake_upstream import create_upstream
from tests.servers import Postgres, Redis

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
WITHIN = 1.0
"""Seconds a change made through one replica may take to reach the other."""


@pytest.fixture(scope="module")
def upstream() -> Iterator[str]:
    with live_server(create_upstream()) as url:
        yield url


def config(upstream: str, database: str, redis: str, *, limit: int | None = None) -> dict[str, Any]:
    auth: dict[str, Any] = {
        "api_keys": [
            {"user": "alice", "key": KEYS["alice"], "groups": ["support"]},
            {"user": "bob", "key": KEYS["bob"], "groups": ["support"]},
            {"user": "ops", "key": KEYS["ops"], "admin": True},
        ]
    }
    if limit is not None:
        auth["rate_limit"] = {"per_minute": 1, "burst": limit, "redis": redis}
    return {
        "watch": False,
        "state": {"url": database},
        "auth": auth,
        "servers": [
            {
                "id": "notes",
                "spec": "specs/demo.yaml",
                "base_url": upstream,
                "access": {"groups": ["support"]},
            }
        ],
    }


@pytest.fixture
def pair(
    tmp_path: Path,
    upstream: str,
    postgres_server: Postgres,
    redis_server: Redis,
    request: pytest.FixtureRequest,
) -> Iterator[tuple[Served, Served]]:
    """Replicas A and B of one config (the test's `limit` marker sets a shared rate limit)."""
    (tmp_path / "specs").mkdir()
    shutil.copy(ROOT / "specs" / "demo.yaml", tmp_path / "specs" / "demo.yaml")
    marker = request.node.get_closest_marker("limit")
    limit = marker.args[0] if marker else None
    database = postgres_server.create_database()
    written = config(upstream, database, redis_server.url, limit=limit)
    (tmp_path / "toolbridge.yaml").write_text(yaml.safe_dump(written, sort_keys=False))
    env = {"TOOLBRIDGE_SECRET_KEY": Fernet.generate_key().decode()}
    first = Served(tmp_path, env=env, log="a.log")
    try:
        second = Served(tmp_path, env=env, log="b.log")
    except BaseException:
        first.stop()
        raise
    yield first, second
    for served in (first, second):
        if served.process.poll() is None:
            served.stop()


def soon(check: Callable[[], bool], within: float = WITHIN) -> float:
    """Seconds until `check()` holds; fails past `within`."""
    started = time.monotonic()
    while not check():
        if time.monotonic() - started > within:
            pytest.fail(f"not within {within} s")
        time.sleep(0.02)
    return time.monotonic() - started


def test_a_server_registered_through_one_is_called_through_the_other(
    pair: tuple[Served, Served], upstream: str
) -> None:
    first, second = pair
    created = httpx2.post(
        f"{first.url}/v1/admin/servers",
        json={
            "id": "more",
            "document": (ROOT / "specs" / "demo.yaml").read_text(),
            "base_url": upstream,
            "prefix": "more",
            "include": {"operations": ["getStatus"]},
            "access": {"groups": ["support"]},
        },
        headers=bearer("ops"),
        timeout=60,
    )
    assert created.status_code == 201, created.text

    soon(lambda: second.call("more_getStatus").status_code == 200)
    deleted = httpx2.delete(f"{second.url}/v1/admin/servers/more", headers=bearer("ops"))
    assert deleted.status_code == 200
    soon(lambda: first.call("more_getStatus").status_code == 404)


STAMP = """
class Filter:
    def outlet(self, body):
        body["result"] = {"stamped": "v1"}
        return body
"""


def test_a_filter_registered_and_changed_through_one_acts_on_the_other(
    pair: tuple[Served, Served],
) -> None:
    """Its file's content alone changes (the same size, the same entry): still taken."""
    first, second = pair

    def stamped(served: Served) -> Any:
        return served.call("getStatus").json()["result"]

    def send(method: str, path: str, body: Any = None) -> httpx2.Response:
        return httpx2.request(
            method, first.url + path, json=body, headers=bearer("ops"), timeout=60
        )

    created = send("POST", "/v1/admin/filters", {"id": "stamp", "content": STAMP})
    assert created.status_code == 201, created.text
    soon(lambda: stamped(second) == {"stamped": "v1"})
    edited = send("PUT", "/v1/admin/filters/stamp", {"content": STAMP.replace("v1", "v2")})
    assert edited.status_code == 200, edited.text
    soon(lambda: stamped(second) == {"stamped": "v2"})
    assert send("DELETE", "/v1/admin/filters/stamp").status_code == 200
    soon(lambda: "stamped" not in stamped(second))
    assert "stamped" not in stamped(first)


def test_a_key_revoked_through_one_is_refused_by_the_other_within_a_second(
    pair: tuple[Served, Served], tmp_path: Path
) -> None:
    first, second = pair
    assert second.call("getStatus", user="bob").status_code == 200
    written = yaml.safe_load((tmp_path / "toolbridge.yaml").read_text())
    written["auth"]["api_keys"] = [k for k in written["auth"]["api_keys"] if k["user"] != "bob"]
    (tmp_path / "toolbridge.yaml").write_text(yaml.safe_dump(written, sort_keys=False))

    assert first.reload().status_code == 200
    soon(lambda: second.call("getStatus", user="bob").status_code == 401)
    assert second.call("getStatus", user="alice").status_code == 200


@pytest.mark.limit(4)
def test_one_rate_limit_for_both(pair: tuple[Served, Served]) -> None:
    first, second = pair
    statuses = [(first if i % 2 else second).call("getStatus").status_code for i in range(6)]
    assert statuses == [200, 200, 200, 200, 429, 429]


def test_one_replica_dies_under_load_and_the_other_loses_no_call(
    pair: tuple[Served, Served],
) -> None:
    first, second = pair
    answered: dict[str, list[int | str]] = {"first": [], "second": []}
    stop = threading.Event()

    def load(name: str, served: Served) -> None:
        with httpx2.Client(headers=bearer("alice"), timeout=10) as client:
            while not stop.is_set():
                try:
                    response = client.post(f"{served.url}/v1/tools/getStatus/call", json={})
                    answered[name].append(response.status_code)
                except httpx2.TransportError as exc:
                    answered[name].append(type(exc).__name__)

    threads = [
        threading.Thread(target=load, args=(name, served))
        for name, served in (("first", first), ("second", second))
        for _ in range(4)
    ]
    for thread in threads:
        thread.start()
    time.sleep(1.0)
    first.process.send_signal(signal.SIGKILL)
    first.process.wait()
    time.sleep(1.0)
    stop.set()
    for thread in threads:
        thread.join()

    assert set(answered["second"]) == {200}
    assert len(answered["second"]) > 20
    assert 200 in answered["first"]
    assert {a for a in answered["first"] if a != 200} <= {
        "ConnectError",
        "RemoteProtocolError",
        "ReadError",
    }


def status_source(ident: str, upstream: str) -> dict[str, Any]:
    """A server entry for the admin API: the demo's `getStatus` only, as `{ident}_getStatus`."""
    return {
        "id": ident,
        "document": (ROOT / "specs" / "demo.yaml").read_text(),
        "base_url": upstream,
        "prefix": ident,
        "include": {"operations": ["getStatus"]},
        "access": {"groups": ["support"]},
    }


def test_with_postgresql_down_calls_go_on_writes_say_so_and_the_replicas_catch_up(
    pair: tuple[Served, Served], postgres_server: Postgres, upstream: str
) -> None:
    first, second = pair
    entry = status_source("later", upstream)
    postgres_server.stop()
    try:
        calls = [served.call("getStatus").status_code for served in pair]
        refused = httpx2.post(
            f"{first.url}/v1/admin/servers", json=entry, headers=bearer("ops"), timeout=60
        )
        reloaded = first.reload().json()
    finally:
        postgres_server.start()
    assert calls == [200, 200]
    assert (reloaded["applied"], reloaded["replicas"]["told"]) == (True, False)
    assert reloaded["replicas"]["reason"].startswith("could not record a reload change: ")
    assert reloaded["replicas"]["reason"].endswith(
        "; applied here only: the other replicas apply it when they reload next (reload them "
        "once the store is back)"
    )
    assert (refused.status_code, refused.json()["error"]["type"]) == (503, "store_unavailable")
    assert refused.json()["error"]["message"].startswith("could not register server 'later'")

    def registered() -> bool:
        answer = httpx2.post(
            f"{first.url}/v1/admin/servers", json=entry, headers=bearer("ops"), timeout=60
        )
        return answer.status_code == 201

    soon(registered, within=30)  # the first replica's pool reconnects
    # The second follows the feed again once its listener reconnects (a shared, loaded CI
    # machine has taken over 10 s).
    soon(lambda: second.call("later_getStatus").status_code == 200, within=30)


def test_a_replica_started_with_postgresql_down_is_not_ready_until_it_has_read_it(
    pair: tuple[Served, Served], postgres_server: Postgres, upstream: str, tmp_path: Path
) -> None:
    """It serves the config file's sources only: ready, it would answer 404 behind a load
    balancer for what the others serve. It says so once in its log, not at every retry."""
    first, _ = pair
    entry = status_source("early", upstream)
    made = httpx2.post(f"{first.url}/v1/admin/servers", json=entry, headers=bearer("ops"))
    assert made.status_code == 201
    postgres_server.stop()
    try:
        third = Served(tmp_path, env=first.env, log="c.log", until="/healthz")
    except BaseException:
        postgres_server.start()
        raise
    try:
        try:
            time.sleep(5)  # two retries at least
            ready = httpx2.get(f"{third.url}/readyz", timeout=10)
            calls = [third.call(tool).status_code for tool in ("getStatus", "early_getStatus")]
        finally:
            postgres_server.start()
        soon(lambda: httpx2.get(f"{third.url}/readyz").status_code == 200, within=30)
        late = third.call("early_getStatus").status_code
    finally:
        third.stop()
    database = yaml.safe_load((tmp_path / "toolbridge.yaml").read_text())["state"]["url"]
    assert database.split("@")[-1].split("/")[0] not in ready.text  # where it is: the log's
    assert (ready.status_code, ready.json()["status"], ready.json()["reason"]) == (
        503,
        "not_ready",
        "the state store has not been read since this process started: the sources "
        "registered through the admin API are not served yet (the log says why)",
    )
    assert (calls, late) == ([200, 503], 200)  # not "no tool named": try again, or elsewhere
    said = [line for line in third.log.read_text().splitlines() if "could not open" in line]
    assert len(said) == 1, said


@pytest.mark.limit(2)
def test_with_redis_down_limits_are_local_and_shared_again_when_it_returns(
    pair: tuple[Served, Served], redis_server: Redis
) -> None:
    first = pair[0]
    redis_server.stop()
    try:
        local = [first.call("getStatus").status_code for _ in range(3)]
    finally:
        redis_server.start()
    time.sleep(1.2)  # the limiter tries Redis again at most every second
    shared = [served.call("getStatus", user="bob").status_code for served in (*pair, *pair)]
    assert local == [200, 200, 429]  # this replica's own count, in the meantime
    assert shared == [200, 200, 429, 429]
    assert "rate limits are counted by each gateway" in first.log.read_text()
    assert "rate limits are shared again" in first.log.read_text()
