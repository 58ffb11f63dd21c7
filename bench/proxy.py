"""Tool-call throughput and latency through the gateway, against the same upstream called directly.

In one run, on 127.0.0.1 only: a tiny upstream (uvicorn with uvloop and httptools, `GET
/items/{id}?q=` answering a small JSON object) called directly; two naive Starlette proxies
forwarding to it, one with httpx2 and one with aiohttp's client; and the gateway, started as a
user would (`toolbridge serve -c <generated toolbridge.yaml> --port P`) and called with `POST
/v1/tools/get_item/call`. Each runs in its own process. At concurrency 1, 16 and 64 it prints
req/s, p50, p99 and the ratio to direct, measured with a wrk-like load generator of its own
(requests encoded once, one keep-alive connection per worker); then it times our `Upstream`s
in-process. Exits 1 when a target fails or cannot be measured.
Run: `.venv/bin/python bench/proxy.py [--duration S]`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime
import json
import os
import platform
import shlex
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from typing import Literal, cast

import aiohttp
import httptools
import httpx2
import uvicorn
import uvloop
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from yarl import URL

from toolbridge.upstream.clients import UpstreamKind, make_upstream
from toolbridge.upstream.seam import Timeouts, UpstreamRequest

LEVELS = (1, 16, 64)
TOOL = "get_item"
ARGUMENTS = {"id": 7, "q": "blue widget"}
ITEM_PATH = "/items/7?q=blue%20widget"
MIN_THROUGHPUT_RATIO = 0.8
"""Gateway throughput / naive aiohttp proxy throughput, at c=16 and c=64."""
MAX_ADDED_P50_MS = 0.3
"""Gateway p50 - direct p50, at c=1."""
MAX_REQUESTS_PER_CELL = 50_000
STARTUP_S = 30.0

ProxyKind = Literal["httpx", "aiohttp"]


# --- the servers, each run in a child process: `proxy.py serve upstream|httpx|aiohttp` ----------


def upstream_app() -> Starlette:
    async def item(request: Request) -> Response:
        return JSONResponse(
            {
                "id": request.path_params["id"],
                "q": request.query_params.get("q"),
                "name": "widget",
                "price": 9.5,
                "tags": ["blue", "small"],
            }
        )

    return Starlette(routes=[Route("/items/{id:int}", item)])


def proxy_app(kind: ProxyKind, upstream: str) -> Starlette:
    """A naive forwarding proxy: one shared client, path and query passed on, body read whole."""
    if kind == "httpx":
        holder: dict[str, httpx2.AsyncClient] = {}

        @contextlib.asynccontextmanager
        async def lifespan_httpx(app: Starlette) -> AsyncIterator[None]:
            async with httpx2.AsyncClient(trust_env=False) as client:
                holder["client"] = client
                yield

        async def forward_httpx(request: Request) -> Response:
            answer = await holder["client"].request(
                request.method, f"{upstream}{request.url.path}?{request.url.query}"
            )
            return Response(
                answer.content,
                status_code=answer.status_code,
                media_type=answer.headers.get("content-type"),
            )

        routes = [Route("/{path:path}", forward_httpx)]
        return Starlette(routes=routes, lifespan=lifespan_httpx)

    sessions: dict[str, aiohttp.ClientSession] = {}

    @contextlib.asynccontextmanager
    async def lifespan_aiohttp(app: Starlette) -> AsyncIterator[None]:
        async with aiohttp.ClientSession() as session:
            sessions["session"] = session
            yield

    async def forward_aiohttp(request: Request) -> Response:
        url = f"{upstream}{request.url.path}?{request.url.query}"
        async with sessions["session"].request(request.method, url) as answer:
            body = await answer.read()
            return Response(
                body, status_code=answer.status, media_type=answer.headers.get("Content-Type")
            )

    return Starlette(routes=[Route("/{path:path}", forward_aiohttp)], lifespan=lifespan_aiohttp)


def serve(what: str, fd: int, upstream: str) -> None:
    app = (
        upstream_app()
        if what == "upstream"
        else proxy_app("httpx" if what == "httpx" else "aiohttp", upstream)
    )
    config = uvicorn.Config(
        app, loop="uvloop", http="httptools", log_level="warning", access_log=False
    )
    uvicorn.Server(config).run(sockets=[socket.socket(fileno=fd)])


# --- processes ----------------------------------------------------------------------------------


@dataclass
class Process:
    name: str
    popen: subprocess.Popen[bytes]
    log: Path

    def tail(self, lines: int = 15) -> str:
        try:
            text = self.log.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.terminate()
            try:
                self.popen.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()


def listening_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def start(
    name: str,
    argv: list[str],
    logs: Path,
    cwd: Path,
    cpus: set[int] | None,
    fds: tuple[int, ...] = (),
) -> Process:
    log = logs / f"{name.replace(' ', '-')}.log"
    with log.open("wb") as out:
        popen = subprocess.Popen(
            argv,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=cwd,
            pass_fds=fds,
            preexec_fn=(lambda: os.sched_setaffinity(0, cpus)) if cpus else None,
        )
    return Process(name, popen, log)


def start_own(
    what: str, logs: Path, cpus: set[int] | None, upstream: str = ""
) -> tuple[Process, str]:
    sock = listening_socket()
    try:
        argv = [sys.executable, __file__, "serve", what, str(sock.fileno()), upstream]
        process = start(what, argv, logs, logs, cpus, (sock.fileno(),))
        return process, f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        sock.close()


def toolbridge_command() -> list[str]:
    script = Path(sys.executable).with_name("toolbridge")
    return [str(script)] if script.exists() else [sys.executable, "-m", "toolbridge"]


def write_gateway_config(folder: Path, upstream: str) -> Path:
    spec = {
        "openapi": "3.0.3",
        "info": {"title": "bench upstream", "version": "1"},
        "paths": {
            "/items/{id}": {
                "get": {
                    "operationId": TOOL,
                    "summary": "One item",
                    "parameters": [
                        {
                            "name": "id",
                            "in": "path",
                            "required": True,
                            "schema": {"type": "integer"},
                        },
                        {"name": "q", "in": "query", "schema": {"type": "string"}},
                    ],
                    "responses": {
                        "200": {
                            "description": "the item",
                            "content": {"application/json": {"schema": {"type": "object"}}},
                        }
                    },
                }
            }
        },
    }
    (folder / "openapi.json").write_text(json.dumps(spec, indent=2))
    config = folder / "toolbridge.yaml"
    # A bearer token, as real servers have: every answer is scanned for it (redaction.py).
    config.write_text(
        f"servers:\n  - id: bench\n    spec: openapi.json\n    base_url: {upstream}\n"
        "    auth: {type: bearer, token: bench-upstream-token-0123456789}\n"
    )
    return config


async def wait_ready(
    process: Process, url: str, check: Callable[[int, bytes], bool], body: bytes | None = None
) -> str | None:
    """None once `url` answers as `check` wants; else why not (the process died, time ran out)."""
    deadline = time.monotonic() + STARTUP_S
    last = "no answer"
    async with aiohttp.ClientSession() as session:
        while time.monotonic() < deadline:
            if process.popen.poll() is not None:
                return f"exited with {process.popen.returncode}:\n{process.tail()}"
            try:
                method = "GET" if body is None else "POST"
                headers = {} if body is None else {"Content-Type": "application/json"}
                async with session.request(method, url, data=body, headers=headers) as answer:
                    content = await answer.read()
                    if check(answer.status, content):
                        return None
                    last = f"{answer.status} {content[:300]!r}"
            except aiohttp.ClientError as exc:
                last = f"{type(exc).__name__}: {exc}"
            await asyncio.sleep(0.1)
    return f"not ready after {STARTUP_S:g} s: {last}\n{process.tail()}"


# --- the load generator ------------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    name: str
    method: str
    url: str
    body: bytes | None = None
    tool_call: bool = False
    """The answer is a tool-call result: a 200 counts only with `"ok": true` (upstream 2xx)."""

    def request_bytes(self) -> bytes:
        """The whole request, encoded once: the load generator only writes it (as wrk does)."""
        url = URL(self.url)
        lines = [f"{self.method} {url.raw_path_qs} HTTP/1.1", f"Host: {url.raw_authority}"]
        lines.append("Accept: */*")
        if self.body is not None:
            lines += ["Content-Type: application/json", f"Content-Length: {len(self.body)}"]
        return "\r\n".join(lines).encode("ascii") + b"\r\n\r\n" + (self.body or b"")


@dataclass
class Cell:
    requests: int
    seconds: float
    latencies: list[float]
    errors: int

    @property
    def rate(self) -> float:
        return self.requests / self.seconds

    def quantile(self, q: float) -> float:
        """In milliseconds (nearest rank)."""
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


class _Connection(asyncio.Protocol):
    """One keep-alive connection of the load generator: writes a request, reads one answer."""

    def __init__(self) -> None:
        self.parser = httptools.HttpResponseParser(self)
        self.transport: asyncio.Transport | None = None
        self.waiter: asyncio.Future[int] | None = None
        self.body: list[bytes] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(exc)

    def connection_lost(self, exc: Exception | None) -> None:
        self._fail(exc or ConnectionError("the server closed the connection"))

    def _fail(self, exc: BaseException) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(exc)

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(self.parser.get_status_code())

    async def exchange(self, request: bytes) -> tuple[int, bytes]:
        assert self.transport is not None
        self.waiter = asyncio.get_running_loop().create_future()
        self.body = []
        self.transport.write(request)
        status = await self.waiter
        return status, b"".join(self.body)


async def load(target: Target, concurrency: int, seconds: float) -> Cell:
    """`concurrency` connections, each sending the target's request again as soon as the answer
    is in, for `seconds`. The answers are checked after the clock has stopped."""
    loop = asyncio.get_running_loop()
    url = URL(target.url)
    host, port = url.host or "127.0.0.1", url.port or 80
    request = target.request_bytes()
    latencies: list[float] = []
    answers: list[tuple[int, bytes]] = []
    errors = 0
    per_worker = MAX_REQUESTS_PER_CELL // concurrency

    async def worker() -> None:
        nonlocal errors
        clock = time.perf_counter
        deadline = clock() + seconds
        connection: _Connection | None = None
        try:
            for _ in range(per_worker):
                began = clock()
                if began >= deadline:
                    return
                try:
                    if connection is None:
                        _, connection = await loop.create_connection(_Connection, host, port)
                    answer = await connection.exchange(request)
                except (OSError, httptools.HttpParserError):
                    errors += 1
                    if connection is not None and connection.transport is not None:
                        connection.transport.close()
                    connection = None
                    continue
                latencies.append(clock() - began)
                answers.append(answer)
        finally:
            if connection is not None and connection.transport is not None:
                connection.transport.close()

    began = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    seconds_taken = time.perf_counter() - began
    errors += sum(
        status != 200 or (target.tool_call and not succeeded(content))
        for status, content in answers
    )
    return Cell(len(latencies), seconds_taken, latencies, errors)


def succeeded(content: bytes) -> bool:
    with contextlib.suppress(ValueError, AttributeError):
        return json.loads(content).get("ok") is True
    return False


async def measure(
    targets: list[Target], duration: float, warmup: float, rounds: int
) -> dict[tuple[str, int], Cell]:
    """Every target at every level, adjacent in time; with rounds > 1, the best of each cell."""
    results: dict[tuple[str, int], Cell] = {}
    for _ in range(rounds):
        for concurrency in LEVELS:
            for target in targets:
                await load(target, concurrency, warmup)
                cell = await load(target, concurrency, duration)
                key = (target.name, concurrency)
                if key not in results or cell.rate > results[key].rate:
                    results[key] = cell
                print(
                    f"  c={concurrency:<3} {target.name:<16} {cell.rate:8.0f} req/s"
                    + (f"  ({cell.errors} errors)" if cell.errors else ""),
                    file=sys.stderr,
                    flush=True,
                )
    return results


# --- our two Upstream implementations, in-process --------------------------------------------


async def time_upstream(kind: UpstreamKind, url: str, count: int, concurrency: int) -> float:
    """Requests per second through `make_upstream(kind)` (after a warm-up)."""
    upstream = make_upstream(kind)
    request = UpstreamRequest(
        server="bench", method="GET", url=url, headers=(("Accept", "application/json"),)
    )
    timeouts = Timeouts()

    async def worker(n: int) -> None:
        for _ in range(n):
            answer = await upstream.send(request, timeouts=timeouts, max_bytes=1 << 20)
            assert answer.status == 200, answer

    try:
        await asyncio.gather(*(worker(50) for _ in range(concurrency)))
        began = time.perf_counter()
        await asyncio.gather(*(worker(count // concurrency) for _ in range(concurrency)))
        return (count // concurrency * concurrency) / (time.perf_counter() - began)
    finally:
        await upstream.aclose()


async def compare_upstreams(
    url: str, count: int, rounds: int
) -> dict[tuple[UpstreamKind, int], float]:
    best: dict[tuple[UpstreamKind, int], float] = {}
    for _ in range(rounds):  # interleaved, best of `rounds`
        for concurrency in (1, 16):
            kinds: tuple[UpstreamKind, ...] = ("http11", "aiohttp", "httpx")
            for kind in kinds:
                rate = await time_upstream(kind, url, count, concurrency)
                key = (kind, concurrency)
                best[key] = max(best.get(key, 0.0), rate)
    return best


# --- report --------------------------------------------------------------------------------------


def report(
    names: list[str],
    unavailable: dict[str, str],
    cells: dict[tuple[str, int], Cell],
    clients: dict[tuple[UpstreamKind, int], float],
) -> bool:
    print()
    columns = ("req/s", "p50 ms", "p99 ms", "+p50 ms", "x direct")
    print(f"{'target':<16} {'c':>3} " + " ".join(f"{c:>8}" for c in columns))
    for concurrency in LEVELS:
        direct = cells["direct", concurrency]
        for name in names:
            if name in unavailable:
                print(f"{name:<16} {concurrency:>3} {'unavailable':>8}")
                continue
            cell = cells[name, concurrency]
            added = cell.quantile(0.5) - direct.quantile(0.5)
            errors = f"  {cell.errors} errors" if cell.errors else ""
            print(
                f"{name:<16} {concurrency:>3} {cell.rate:8.0f} {cell.quantile(0.5):8.3f} "
                f"{cell.quantile(0.99):8.3f} {added:8.3f} {cell.rate / direct.rate:8.2f}x{errors}"
            )
        print()
    for name, why in unavailable.items():
        print(f"{name} unavailable: {why}\n")

    print("Our Upstream implementations in-process, to the same upstream (req/s, best of 3):")
    for concurrency in (1, 16):
        o = clients["http11", concurrency]
        a, h = clients["aiohttp", concurrency], clients["httpx", concurrency]
        print(
            f"  c={concurrency:<3} Http11Upstream {o:7.0f}   AiohttpUpstream {a:7.0f}   "
            f"HttpxUpstream {h:7.0f}   ours/aiohttp {o / a:.2f}x"
        )
    print()

    ok = True
    print("Targets:")
    if "gateway" in unavailable or "aiohttp proxy" in unavailable:
        print("  not measured: the gateway or the aiohttp proxy is unavailable  FAIL")
        return False
    for concurrency in (16, 64):
        ratio = cells["gateway", concurrency].rate / cells["aiohttp proxy", concurrency].rate
        passed = ratio >= MIN_THROUGHPUT_RATIO
        ok &= passed
        print(
            f"  c={concurrency}: gateway / naive aiohttp proxy throughput {ratio:.2f}x "
            f"(target >= {MIN_THROUGHPUT_RATIO}x)  {'PASS' if passed else 'FAIL'}"
        )
    added = cells["gateway", 1].quantile(0.5) - cells["direct", 1].quantile(0.5)
    passed = added < MAX_ADDED_P50_MS
    ok &= passed
    print(
        f"  c=1: added p50 latency {added:.3f} ms (target < {MAX_ADDED_P50_MS} ms)  "
        f"{'PASS' if passed else 'FAIL'}"
    )
    hop = cells["aiohttp proxy", 1].quantile(0.5) - cells["direct", 1].quantile(0.5)
    print(
        f"       (for scale: the naive aiohttp proxy adds {hop:.3f} ms; the gateway adds "
        f"{added - hop:.3f} ms more than it)"
    )
    failed = sum(cell.errors for cell in cells.values())
    if failed:
        print(f"  {failed} requests failed  FAIL")
        ok = False
    return ok


def header(args: argparse.Namespace) -> None:
    load1, load5, _ = os.getloadavg()
    print(
        f"bench/proxy.py on {datetime.date.today()}: Python {platform.python_version()}, "
        f"{os.cpu_count()} CPUs, load average {load1:.1f} / {load5:.1f}; "
        f"aiohttp {aiohttp.__version__}, httpx2 {httpx2.__version__}, "
        f"uvicorn {uvicorn.__version__}, uvloop {version('uvloop')}; "
        f"{args.duration:g} s per cell after {args.warmup:g} s warm-up"
        + (f", best of {args.rounds} rounds" if args.rounds > 1 else ", one sample per cell")
        + ("; pinned: load generator on CPU 0, servers on the others" if args.pin else "")
    )


async def main(args: argparse.Namespace) -> int:
    header(args)
    cpus = set(range(1, os.cpu_count() or 1)) if args.pin else None
    if args.pin:
        os.sched_setaffinity(0, {0})
    processes: list[Process] = []
    unavailable: dict[str, str] = {}
    with tempfile.TemporaryDirectory(prefix="toolbridge-bench-") as tmp:
        folder = Path(tmp)
        try:
            upstream, upstream_url = start_own("upstream", folder, cpus)
            processes.append(upstream)
            why = await wait_ready(upstream, upstream_url + ITEM_PATH, lambda s, _: s == 200)
            if why:
                print(f"the upstream did not start: {why}", file=sys.stderr)
                return 1
            targets = [Target("direct", "GET", upstream_url + ITEM_PATH)]
            for kind in ("aiohttp", "httpx"):
                name = f"{'httpx2' if kind == 'httpx' else kind} proxy"
                process, url = start_own(kind, folder, cpus, upstream_url)
                processes.append(process)
                why = await wait_ready(process, url + ITEM_PATH, lambda s, _: s == 200)
                targets.append(Target(name, "GET", url + ITEM_PATH))
                if why:
                    unavailable[name] = why

            port = free_port()
            config = write_gateway_config(folder, upstream_url)
            argv = [*toolbridge_command(), "serve", "-c", str(config), "--port", str(port)]
            argv += shlex.split(args.gateway_args)
            gateway = start("gateway", argv, folder, folder, cpus)
            processes.append(gateway)
            call_url = f"http://127.0.0.1:{port}/v1/tools/{TOOL}/call"
            body = json.dumps(ARGUMENTS).encode()

            why = await wait_ready(
                gateway,
                call_url,
                lambda status, content: status == 200 and succeeded(content),
                body,
            )
            targets.append(Target("gateway", "POST", call_url, body, tool_call=True))
            if why:
                unavailable["gateway"] = f"`{' '.join(argv)}` {why}"

            print("measuring ...", file=sys.stderr, flush=True)
            cells = await measure(
                [t for t in targets if t.name not in unavailable],
                args.duration,
                args.warmup,
                args.rounds,
            )
            clients = await compare_upstreams(upstream_url + ITEM_PATH, args.client_requests, 3)
        finally:
            for process in reversed(processes):
                process.stop()
        ok = report([t.name for t in targets], unavailable, cells, clients)
    return 0 if ok else 1


def cli() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "serve":
        serve(sys.argv[2], int(sys.argv[3]), sys.argv[4])
        return 0
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=3.0, help="seconds per cell (3)")
    parser.add_argument(
        "--warmup", type=float, default=0.5, help="seconds of warm-up per cell (0.5)"
    )
    parser.add_argument(
        "--rounds", type=int, default=1, help="sweeps over all cells; best of each (1)"
    )
    parser.add_argument(
        "--client-requests", type=int, default=3000, help="requests per in-process client timing"
    )
    parser.add_argument(
        "--gateway-args",
        default="",
        help="more arguments for `toolbridge serve`, e.g. '--log-level warning'",
    )
    parser.add_argument(
        "--pin", action="store_true", help="load generator on CPU 0, every server on the others"
    )
    return uvloop.run(main(parser.parse_args()))


if __name__ == "__main__":
    sys.exit(cli())
