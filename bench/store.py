"""What the state store costs a tool call: nothing on the hot path, measured.

In one run, three copies of the same gateway app (`create_app`, as `serve` builds it) in this
process: with no store, with the SQLite store, and with a PostgreSQL store. Each is driven
through its ASGI interface, without sockets, so what is timed is the gateway's own work, where
a store would show. The calls, each as caller `alice` (an API key, not an admin):

- `local`: a local tool that takes `__user__`; alice has stored her UserValves for it
  (`PUT /v1/me/valves/units`), which a gateway with a store looks up when a call carries none;
- `remote`: an upstream operation on a loopback server (its own process), with the operator's
  bearer token;
- `per_user` (with a store only): the same operation on a server with `auth: {type: per_user}`,
  with the credential alice stored (`PUT /v1/me/credentials/mine`).

Every SQL statement any engine in the process runs is counted (SQLAlchemy's
`before_cursor_execute` event) and put down to a call when it runs inside one (a context
variable, which asyncio and SQLAlchemy's greenlets carry along), so the change feed's own
reads (SQLite is polled every 0.25 s) are told apart. The first call of each (caller, tool)
may read the store once; after that, targets (PASS/FAIL; exit 1 when one fails or cannot be
measured):

- 0 store statements per call, for every call and store;
- a call's median time with a store / without it <= 1.10 (within this machine's noise), for
  `local` and `remote`, on SQLite and on PostgreSQL.

PostgreSQL: `--postgres URL` (an empty database), else $TOOLBRIDGE_BENCH_POSTGRES, else one
started for the run as the tests start theirs (Debian's `postgresql`, tests/servers.py).

    python bench/store.py [--calls N] [--rounds R] [--postgres URL]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import contextvars
import datetime
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterator, MutableMapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))  # bench/proxy.py
sys.path.insert(1, str(Path(__file__).resolve().parents[1]))  # tests/servers.py

import orjson
import sqlalchemy as sa
from cryptography.fernet import Fernet

from proxy import ITEM_PATH, Process, start_own, wait_ready, write_gateway_config
from toolbridge.config_file import load_config
from toolbridge.gateway import Gateway
from toolbridge.serve.app import create_app
from toolbridge.serve.shared import Shared
from toolbridge.state.secrets import ENV_KEY
from toolbridge.upstream.clients import make_upstream

MAX_RATIO = 1.10
"""A call's median time with a store / without one."""
MAX_STATEMENTS_PER_CALL = 0
KEY = "alice-bench-key-0123456789"

TOOL_FILE = '''"""
title: Bench
"""

from pydantic import BaseModel


class Tools:
    class UserValves(BaseModel):
        unit: str = "cm"

    def measure(self, length: int, __user__: dict) -> str:
        """A length in the caller's unit."""
        return f"{length} {__user__['valves'].unit}"
'''

CALLS = {
    "local": ("measure", {"length": 3}),
    "remote": ("get_item", {"id": 7, "q": "blue widget"}),
    "per_user": ("mine_get_item", {"id": 7, "q": "blue widget"}),
}


# --- counting the store's statements -----------------------------------------------------------

IN_CALL: contextvars.ContextVar[str | None] = contextvars.ContextVar("in_call", default=None)


@dataclass
class Statements:
    """Every statement run by any SQLAlchemy engine here: by call, and in all."""

    total: int = 0
    by_call: dict[str, int] = field(default_factory=dict)

    def __call__(self, *args: Any) -> None:
        self.total += 1
        call = IN_CALL.get()
        if call is not None:
            self.by_call[call] = self.by_call.get(call, 0) + 1


# --- driving an ASGI app without sockets -------------------------------------------------------


async def request(app: Any, method: str, path: str, body: Any = None) -> tuple[int, dict[str, Any]]:
    """One request to `app`, as uvicorn would hand it over; the status and the JSON answer."""
    content = orjson.dumps(body) if body is not None else b""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [
            (b"host", b"127.0.0.1:8080"),
            (b"authorization", f"Bearer {KEY}".encode()),
            (b"content-type", b"application/json"),
            (b"content-length", str(len(content)).encode()),
        ],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8080),
    }
    sent = False
    status = 0
    chunks: list[bytes] = []

    async def receive() -> MutableMapping[str, Any]:
        nonlocal sent
        if sent:
            await asyncio.Event().wait()  # nothing more: the client waits for the answer
        sent = True
        return {"type": "http.request", "body": content, "more_body": False}

    async def send(message: MutableMapping[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]
        elif message["type"] == "http.response.body":
            chunks.append(message.get("body", b""))

    await app(scope, receive, send)
    return status, orjson.loads(b"".join(chunks))


@contextlib.asynccontextmanager
async def lifespan(app: Any) -> AsyncIterator[None]:
    """The app's startup before the block and its shutdown after, as a server runs them."""
    to_app: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    from_app: asyncio.Queue[MutableMapping[str, Any]] = asyncio.Queue()

    async def send(message: MutableMapping[str, Any]) -> None:
        await from_app.put(message)

    task = asyncio.create_task(app({"type": "lifespan"}, to_app.get, send))
    await to_app.put({"type": "lifespan.startup"})
    started = await from_app.get()
    if started["type"] != "lifespan.startup.complete":
        raise RuntimeError(f"the app did not start: {started}")
    try:
        yield
    finally:
        await to_app.put({"type": "lifespan.shutdown"})
        await from_app.get()
        await task


# --- the gateways --------------------------------------------------------------------------------


def write_config(folder: Path, upstream: str) -> Path:
    write_gateway_config(folder, upstream)  # openapi.json, as bench/proxy.py serves it
    (folder / "tool.py").write_text(TOOL_FILE)
    config = folder / "toolbridge.yaml"
    config.write_text(
        f"""\
watch: false
auth:
  api_keys:
    - {{user: alice, key: "{KEY}", groups: [bench]}}
servers:
  - id: bench
    spec: openapi.json
    base_url: {upstream}
    auth: {{type: bearer, token: bench-upstream-token-0123456789}}
    access: {{groups: [bench]}}
  - id: mine
    spec: openapi.json
    base_url: {upstream}
    prefix: mine
    auth: {{type: per_user}}
    access: {{groups: [bench]}}
tools:
  - id: units
    path: tool.py
    access: {{groups: [bench]}}
"""
    )
    return config


@dataclass
class Setup:
    """One gateway app under measurement: its store's name and the calls it is timed on."""

    name: str
    app: Any
    calls: list[str]


def gateway_app(config_file: Path, url: str | None) -> Any:
    """The app `serve` would build on `config_file`, with the store at `url` (or none)."""
    config = load_config(config_file, os.environ)
    gateway = Gateway(config, upstream=make_upstream())
    gateway.load()
    shared = None
    if url is not None:
        folder = Path(tempfile.mkdtemp(prefix="toolbridge-bench-registered-"))
        shared = Shared(url, folder=folder, replica=f"bench-{url.split(':', 1)[0]}")
    return create_app(gateway, config_file=config_file, shared=shared)


async def prepare(gateway: Setup) -> None:
    """alice's stored UserValves and credential, and one call of each kind (read through)."""
    if gateway.name == "none":
        return
    stored = [
        await request(gateway.app, "PUT", "/v1/me/valves/units", {"unit": "mm"}),
        await request(
            gateway.app, "PUT", "/v1/me/credentials/mine", {"token": "alice-own-token-0123456789"}
        ),
    ]
    for status, answer in stored:
        if status != 200:
            raise RuntimeError(f"{gateway.name}: storing alice's data answered {status} {answer}")


async def call_once(gateway: Setup, kind: str) -> float:
    tool, arguments = CALLS[kind]
    token = IN_CALL.set(f"{gateway.name}/{kind}")
    try:
        began = time.perf_counter()
        status, answer = await request(gateway.app, "POST", f"/v1/tools/{tool}/call", arguments)
        took = time.perf_counter() - began
    finally:
        IN_CALL.reset(token)
    if status != 200 or answer.get("ok") is not True:
        raise RuntimeError(f"{gateway.name}: {tool} answered {status} {answer}")
    if kind == "local" and answer["result"] != ("3 cm" if gateway.name == "none" else "3 mm"):
        raise RuntimeError(f"{gateway.name}: {tool} answered {answer['result']!r}")
    return took


# --- the run -------------------------------------------------------------------------------------


@contextlib.contextmanager
def postgres_url(given: str | None) -> Iterator[tuple[str | None, str | None]]:
    """(an empty PostgreSQL database's URL, None), or (None, why there is none)."""
    if given:
        yield given, None
        return
    import pytest  # tests/servers.py says what is missing as pytest's skip (or fail, under CI)
    from tests.servers import Postgres

    try:
        server = Postgres()
    except (pytest.skip.Exception, pytest.fail.Exception) as exc:
        yield None, str(exc)
        return
    try:
        server.start()
        yield server.create_database(), None
    finally:
        server.close()


async def run(args: argparse.Namespace, pg_url: str | None, folder: Path) -> dict[str, Any]:
    upstream_process: Process
    upstream_process, upstream = start_own("upstream", folder, None)
    try:
        problem = await wait_ready(
            upstream_process, f"{upstream}{ITEM_PATH}", lambda s, _: s == 200
        )
        if problem is not None:
            raise RuntimeError(f"the upstream did not start: {problem}")
        config_file = write_config(folder, upstream)
        stores = {"none": None, "sqlite": f"sqlite:///{folder / 'state.db'}", "postgresql": pg_url}
        gateways = [
            Setup(
                name,
                gateway_app(config_file, url),
                ["local", "remote"] + (["per_user"] if url else []),
            )
            for name, url in stores.items()
            if name == "none" or url is not None
        ]
        statements = Statements()
        sa.event.listen(sa.engine.Engine, "before_cursor_execute", statements)
        async with contextlib.AsyncExitStack() as stack:
            for gateway in gateways:
                await stack.enter_async_context(lifespan(gateway.app))
                await prepare(gateway)
            # The feed brings alice's writes back (SQLite is read every 0.25 s), and each one
            # makes every replica, this one too, forget her cached entries: let that pass.
            await asyncio.sleep(1.0)
            first: dict[str, int] = {}
            for gateway in gateways:
                for kind in gateway.calls:
                    before = dict(statements.by_call)
                    await call_once(gateway, kind)
                    key = f"{gateway.name}/{kind}"
                    first[key] = statements.by_call.get(key, 0) - before.get(key, 0)
            for gateway in gateways:  # warm-up
                for kind in gateway.calls:
                    for _ in range(50):
                        await call_once(gateway, kind)
            statements.by_call.clear()
            window_total = statements.total
            window_began = time.monotonic()
            times: dict[str, list[float]] = {}
            for round_ in range(args.rounds):
                # Interleaved, each round starting with another gateway: a burst of load from
                # elsewhere, or the order itself, weighs on every gateway alike.
                shift = round_ % len(gateways)
                for gateway in gateways[shift:] + gateways[:shift]:
                    for kind in gateway.calls:
                        samples = times.setdefault(f"{gateway.name}/{kind}", [])
                        for _ in range(args.calls):
                            samples.append(await call_once(gateway, kind))
            window = time.monotonic() - window_began
            window_total = statements.total - window_total
        sa.event.remove(sa.engine.Engine, "before_cursor_execute", statements)
        return {
            "gateways": [g.name for g in gateways],
            "first": first,
            "times": times,
            "by_call": dict(statements.by_call),
            "window_statements": window_total,
            "window_s": window,
        }
    finally:
        upstream_process.stop()


def report(measured: dict[str, Any], pg_problem: str | None, args: argparse.Namespace) -> int:
    times: dict[str, list[float]] = measured["times"]
    by_call: dict[str, int] = measured["by_call"]
    failed = False
    print(
        f"\n{args.rounds} rounds x {args.calls} calls of each kind, interleaved; "
        f"{measured['window_s']:.1f} s measured\n"
    )
    print(
        "| store | call | median us | p90 us | x no store "
        "| store statements: first call | per call after |"
    )
    print("|---|---|--:|--:|--:|--:|--:|")
    for key, samples in times.items():
        store, kind = key.split("/")
        median = statistics.median(samples) * 1e6
        p90 = statistics.quantiles(samples, n=10)[-1] * 1e6
        base = times.get(f"none/{kind}")
        ratio = statistics.median(samples) / statistics.median(base) if base else None
        per_call = by_call.get(key, 0) / len(samples)
        shown = f"{ratio:.3f}" if ratio is not None else "-"
        print(
            f"| {store} | {kind} | {median:.0f} | {p90:.0f} | {shown} | "
            f"{measured['first'].get(key, 0)} | {per_call:g} |"
        )
    print(
        f"\nStatements outside calls while measuring (the change feed): "
        f"{measured['window_statements'] - sum(by_call.values())} in {measured['window_s']:.1f} s"
    )
    print("\nTargets:")
    for key, samples in times.items():
        store, kind = key.split("/")
        if store == "none":
            continue
        count = by_call.get(key, 0)
        verdict = "PASS" if count / len(samples) <= MAX_STATEMENTS_PER_CALL else "FAIL"
        failed |= verdict == "FAIL"
        print(f"  {store}/{kind}: {count} store statements in {len(samples)} calls", end="")
        print(f" ({verdict}, target {MAX_STATEMENTS_PER_CALL} a call)")
        if kind in ("local", "remote"):
            ratio = statistics.median(samples) / statistics.median(times[f"none/{kind}"])
            verdict = "PASS" if ratio <= MAX_RATIO else "FAIL"
            failed |= verdict == "FAIL"
            print(f"  {store}/{kind}: {ratio:.3f}x the time without a store", end="")
            print(f" ({verdict}, target <= {MAX_RATIO})")
    if pg_problem is not None:
        failed = True
        print(f"  postgresql: unavailable ({pg_problem}) (FAIL: cannot be measured)")
    return 1 if failed else 0


def cli() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=200, help="calls of each kind per round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--postgres", default=os.environ.get("TOOLBRIDGE_BENCH_POSTGRES"))
    args = parser.parse_args()
    os.environ.setdefault(ENV_KEY, Fernet.generate_key().decode())
    print(
        f"bench/store.py {datetime.date.today()} Python {platform.python_version()} "
        f"{platform.machine()}, {os.cpu_count()} CPUs"
    )
    with (
        postgres_url(args.postgres) as (pg_url, pg_problem),
        tempfile.TemporaryDirectory(prefix="toolbridge-bench-store-") as folder,
    ):
        measured = asyncio.run(run(args, pg_url, Path(folder)))
    return report(measured, pg_problem, args)


if __name__ == "__main__":
    raise SystemExit(cli())
