"""The cluster of `docker compose --profile cluster up`, run from the same files without Docker.

Our machines and CI have Docker's client but no engine, so compose itself cannot run here
(tests/test_compose.py checks the compose file). What it starts can: Debian's nginx runs the
very `deploy/cluster/nginx.conf`, and two real `toolbridge serve` replicas run the very
`deploy/cluster/toolbridge.yaml`, on one real PostgreSQL and one Redis, in front of the demo
notes API. Only the addresses change: the compose services' names and ports (`gateway-a:8080`,
`postgres:5432`, ...) become loopback ones, and each replacement must find its text.
"""

from __future__ import annotations

import contextlib
import re
import signal
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx2
import pytest
from cryptography.fernet import Fernet
from mcp.client import Client
from mcp.client.streamable_http import streamable_http_client

from tests.e2e.conftest import live_server
from tests.e2e.serving import KEYS, Served, bearer, free_port
from tests.servers import Nginx, Postgres, Redis
from toolbridge.demo.service import create_demo_app

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
CLUSTER = ROOT / "deploy" / "cluster"
WITHIN = 1.0
"""Seconds a change made through one replica may take to reach the other."""


@dataclass
class Cluster:
    nginx: Nginx
    replicas: tuple[Served, Served]

    @property
    def url(self) -> str:
        return self.nginx.url

    def calls(self) -> tuple[int, int]:
        """Successful tool calls each replica has answered so far (its own /metrics)."""
        return (ok_calls(self.replicas[0].url), ok_calls(self.replicas[1].url))


def ok_calls(url: str) -> int:
    text = httpx2.get(f"{url}/metrics", timeout=10).text
    found = re.findall(
        r'^toolbridge_tool_calls_total\{outcome="ok",tool="[^"]+"\} (\S+)$', text, re.M
    )
    return int(sum(float(value) for value in found))


def replaced(text: str, replacements: dict[str, str]) -> str:
    """`text` with each key replaced; fails when a key is not in it (the file changed)."""
    for old, new in replacements.items():
        assert old in text, f"expected {old!r} in the cluster's file, to point it at {new!r}"
        text = text.replace(old, new)
    return text


def stop_if_running(served: Served) -> None:
    if served.process.poll() is None:
        served.stop()


@pytest.fixture(scope="module")
def notes() -> Iterator[str]:
    """The demo notes API, as the compose service `notes` runs it."""
    with live_server(create_demo_app()) as url:
        yield url


@contextlib.contextmanager
def cluster(folder: Path, notes: str, postgres: Postgres, redis: Redis) -> Iterator[Cluster]:
    """nginx and two replicas, from deploy/cluster with loopback addresses, on a new database."""
    database = postgres.create_database()
    host_port_db = database.removeprefix("postgresql://toolbridge@")
    config = replaced(
        (CLUSTER / "toolbridge.yaml").read_text(),
        {
            "postgres:5432/toolbridge": host_port_db,
            "redis:6379": redis.url.removeprefix("redis://").removesuffix("/0"),
            "notes:8901": notes.removeprefix("http://"),
        },
    )
    (folder / "toolbridge.yaml").write_text(config)
    env = {
        "ALICE_KEY": KEYS["alice"],
        "OPS_KEY": KEYS["ops"],
        "POSTGRES_PASSWORD": "unused-with-trust-auth",
        "TOOLBRIDGE_SECRET_KEY": Fernet.generate_key().decode(),
    }
    with contextlib.ExitStack() as stack:
        with ThreadPoolExecutor(2) as pool:  # both at once, as compose starts them
            starting = [pool.submit(Served, folder, env=env, log=f"{n}.log") for n in "ab"]
        for future in starting:
            if future.exception() is None:
                stack.callback(stop_if_running, future.result())
        replicas = [future.result() for future in starting]  # the first failure, if any
        port = free_port()
        nginx_conf = replaced(
            (CLUSTER / "nginx.conf").read_text(),
            {
                "server gateway-a:8080 ": f"server {replicas[0].url.removeprefix('http://')} ",
                "server gateway-b:8080 ": f"server {replicas[1].url.removeprefix('http://')} ",
                "listen 8080;": f"listen 127.0.0.1:{port};",
            },
        )
        (folder / "nginx.conf").write_text(nginx_conf)
        nginx = Nginx(folder / "nginx.conf", port)
        stack.callback(nginx.close)
        nginx.start()
        yield Cluster(nginx, (replicas[0], replicas[1]))


@pytest.fixture(scope="module")
def started_cluster(
    tmp_path_factory: pytest.TempPathFactory,
    notes: str,
    postgres_server: Postgres,
    redis_server: Redis,
) -> Iterator[Cluster]:
    with cluster(tmp_path_factory.mktemp("cluster"), notes, postgres_server, redis_server) as c:
        yield c


@pytest.fixture
def shared_cluster(started_cluster: Cluster) -> Cluster:
    """The module's cluster, with both replicas alive (the last test kills one)."""
    dead = [r.url for r in started_cluster.replicas if r.process.poll() is not None]
    assert not dead, f"replicas {dead} were killed by an earlier test of this module"
    return started_cluster


def soon(check: Callable[[], bool], within: float = WITHIN) -> None:
    started = time.monotonic()
    while not check():
        if time.monotonic() - started > within:
            pytest.fail(f"not within {within} s")
        time.sleep(0.02)


def call(url: str, tool: str, user: str = "alice") -> httpx2.Response:
    return httpx2.post(f"{url}/v1/tools/{tool}/call", json={}, headers=bearer(user), timeout=10)


def answering(url: str, tool: str, status: int) -> Callable[[], bool]:
    """Whether a call of `tool` at `url` answers `status` now."""
    return lambda: call(url, tool).status_code == status


def test_calls_through_nginx_are_shared_by_both_replicas(shared_cluster: Cluster) -> None:
    before = shared_cluster.calls()
    answers = [call(shared_cluster.url, "getStatus") for _ in range(10)]
    after = shared_cluster.calls()

    assert [(a.status_code, a.json()["ok"]) for a in answers] == [(200, True)] * 10
    assert [a.json()["result"] for a in answers] == [answers[0].json()["result"]] * 10
    # Round robin: one call each in turn.
    assert (after[0] - before[0], after[1] - before[1]) == (5, 5)


def test_a_server_registered_and_removed_through_nginx_is_so_on_both_replicas(
    shared_cluster: Cluster, notes: str
) -> None:
    created = httpx2.post(
        f"{shared_cluster.url}/v1/admin/servers",
        json={
            "id": "more",
            "document": (ROOT / "specs" / "demo.yaml").read_text(),
            "base_url": notes,
            "prefix": "more",
            "include": {"operations": ["getStatus"]},
            "access": {"groups": ["support"]},
        },
        headers=bearer("ops"),
        timeout=60,
    )
    assert created.status_code == 201, created.text

    for replica in shared_cluster.replicas:
        soon(answering(replica.url, "more_getStatus", 200))
    answers = [call(shared_cluster.url, "more_getStatus") for _ in range(4)]
    assert [(a.status_code, a.json()["ok"]) for a in answers] == [(200, True)] * 4

    deleted = httpx2.delete(f"{shared_cluster.url}/v1/admin/servers/more", headers=bearer("ops"))
    assert deleted.status_code == 200, deleted.text
    for replica in shared_cluster.replicas:
        soon(answering(replica.url, "more_getStatus", 404))


@pytest.mark.anyio
@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_mcp_through_nginx_is_served_by_either_replica(
    shared_cluster: Cluster, mode: str
) -> None:
    """/mcp keeps no session: each request of one client may go to another replica."""
    before = shared_cluster.calls()
    async with (
        httpx2.AsyncClient(headers=bearer("alice"), timeout=10) as http,
        Client(
            streamable_http_client(f"{shared_cluster.url}/mcp", http_client=http), mode=mode
        ) as client,
    ):
        names = [tool.name for tool in (await client.list_tools()).tools]
        results = [await client.call_tool("getStatus", {}) for _ in range(4)]
    after = shared_cluster.calls()

    assert names == ["listNotes", "createNote", "getNote", "updateNote", "getStatus"]
    assert [r.is_error for r in results] == [False] * 4
    assert all(isinstance(r.structured_content, dict) for r in results)
    assert [r.structured_content["status"] for r in results if r.structured_content] == ["ok"] * 4
    served = (after[0] - before[0], after[1] - before[1])
    assert (sum(served), min(served) > 0) == (4, True), served


@dataclass(frozen=True)
class Answered:
    started: float
    ended: float
    status: int | str


def test_one_replica_killed_under_load_loses_only_the_calls_it_was_answering(
    tmp_path: Path, notes: str, postgres_server: Postgres, redis_server: Redis
) -> None:
    """nginx sends every call it could not deliver to the replica left; a call the dying replica
    had already received is lost (nginx does not send a POST twice: it may have acted)."""
    workers = 4
    with cluster(tmp_path, notes, postgres_server, redis_server) as running:
        answered: list[Answered] = []
        stop = threading.Event()

        def load() -> None:
            # As ops, an admin: the cluster's rate limit (100 at once) would stop a load test.
            with httpx2.Client(headers=bearer("ops"), timeout=10) as client:
                while not stop.is_set():
                    started = time.monotonic()
                    try:
                        response = client.post(f"{running.url}/v1/tools/getStatus/call", json={})
                        status: int | str = response.status_code
                    except httpx2.TransportError as exc:
                        status = type(exc).__name__
                    answered.append(Answered(started, time.monotonic(), status))

        threads = [threading.Thread(target=load) for _ in range(workers)]
        for thread in threads:
            thread.start()
        time.sleep(0.7)
        dead = running.replicas[0]
        signalled = time.monotonic()
        dead.process.send_signal(signal.SIGKILL)
        dead.process.wait()
        killed = time.monotonic()
        time.sleep(1.0)
        stop.set()
        for thread in threads:
            thread.join()

    before = [a for a in answered if a.ended < signalled]
    after = [a for a in answered if a.started > killed]
    lost = [a for a in answered if a.status != 200]
    assert {a.status for a in before} == {200}
    assert {a.status for a in after} == {200}
    assert len(after) > 20
    # Only calls in flight at the kill, at most one per worker, may be lost: answered 502, or
    # cut short when the replica died in the middle of its answer.
    assert all(a.started < killed and a.ended > signalled for a in lost), lost
    assert {a.status for a in lost} <= {502, "RemoteProtocolError"}, lost
    assert len(lost) <= workers


def test_a_replica_that_died_between_calls_is_passed_over(shared_cluster: Cluster) -> None:
    """The call nginx tries on the dead replica (refused) it sends to the other one.

    This kills the module's shared replica a, so it is the module's last test (pytest runs
    them in the order they are written); the fixture makes any test after it fail at once.
    """
    dead, alive = shared_cluster.replicas
    dead.process.send_signal(signal.SIGKILL)
    dead.process.wait()
    before = ok_calls(alive.url)
    answers = [call(shared_cluster.url, "getStatus") for _ in range(6)]
    after = ok_calls(alive.url)

    assert [a.status_code for a in answers] == [200] * 6
    assert [a.json()["ok"] for a in answers] == [True] * 6
    assert after - before == 6
