"""Huge catalogs: the whole shared corpus served as one config, against issue 14's limits.

`toolbridge serve` on a config of every document in MANIFEST.tsv (42 servers, 7,948 tools), as a
user would start it: how soon it is ready with an empty cache (cold) and with the compiled
catalog and parse caches filled by a previous start (warm), how much memory it holds, and how
fast it answers its lists (`GET /v1/tools`, `GET /openapi.json`, MCP `tools/list`) once they
are built; plus Kubernetes' conversion against its `json.loads` time. Every number is checked
against its limit in the same run; the exit status is 1 when one fails.
Run: `.venv/bin/python bench/catalog.py [--repeat N] [--baseline OTHER/src]`.
"""

from __future__ import annotations

import argparse
import csv
import datetime
import gc
import json
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httptools
import orjson
import zstandard

from toolbridge.openapi.convert import convert
from toolbridge.openapi.documents import DocumentStore, location_to_uri
from toolbridge.registry import servers_from_specs

BENCH = Path(__file__).resolve().parent
CACHE = BENCH / ".cache"
MIB = 1024 * 1024

WARM_START_S = 1.5
COLD_START_S = 17.0
"""Today's cold start, as issue 14 measured it on this machine (parse cache unused)."""
MAX_RSS_MIB = 150.0
MAX_LIST_MS = 20.0
MAX_KUBERNETES_RATIO = 10.0
READY_TIMEOUT_S = 300.0


@dataclass
class Row:
    """One measured number, and its limit when it has one."""

    what: str
    value: float
    unit: str
    limit: float | None = None
    note: str = ""
    at_least: float | None = None
    """A lower limit instead (recall)."""

    @property
    def ok(self) -> bool:
        if self.at_least is not None:
            return self.value >= self.at_least
        return self.limit is None or self.value < self.limit


@dataclass
class Run:
    """What every section may read: the corpus config, and the rows measured so far."""

    config: Path
    caches: Path
    repeat: int
    tools: int
    baseline: Path | None = None
    """The `src` folder of another revision, whose cold start is the limit of ours."""
    rows: list[Row] = field(default_factory=list)


# -- the corpus, served ---------------------------------------------------------------------


def corpus_dir() -> Path:
    return Path(os.environ.get("TOOLBRIDGE_CORPUS") or BENCH.parent.parent / "shared" / "corpus")


def corpus_config(folder: Path) -> tuple[Path, int]:
    """A toolbridge.yaml serving every document of the corpus (ids from the file names), and
    how many operations the manifest says they hold."""
    corpus = corpus_dir()
    if not (corpus / "MANIFEST.tsv").is_file():
        raise SystemExit(
            f"bench/catalog.py: the shared corpus is not at {corpus} (no MANIFEST.tsv); set "
            "TOOLBRIDGE_CORPUS to its folder"
        )
    with (corpus / "MANIFEST.tsv").open(newline="") as handle:
        rows = list(csv.DictReader(handle, delimiter="\t"))
    servers = servers_from_specs(str(corpus / row["file"]) for row in rows)
    lines = ["servers:"] + [f"  - {{id: {s.id}, spec: {json.dumps(s.spec)}}}" for s in servers]
    path = folder / "toolbridge.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path, sum(int(row["operations"]) for row in rows)


class Gateway:
    """`toolbridge serve` in a process of its own, on a free loopback port."""

    def __init__(self, config: Path, cache_dir: Path, source: Path | None = None) -> None:
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        sock.close()
        env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
        env["TOOLBRIDGE_CACHE_DIR"] = str(cache_dir)
        # Compiled bytecode as an installed package has it, kept out of the source tree.
        env["PYTHONPYCACHEPREFIX"] = str(CACHE / "pycache")
        if source is not None:  # another tree's toolbridge (--baseline)
            env["PYTHONPATH"] = str(source)
        command = [sys.executable, "-m", "toolbridge", "serve", "-c", str(config)]
        command += ["--port", str(self.port), "--log-level", "warning"]
        self.started = time.perf_counter()
        self.process = subprocess.Popen(command, env=env, stderr=subprocess.DEVNULL)

    def ready(self) -> tuple[float, dict[str, Any]]:
        """Seconds from the start until `/readyz` answers 200, and its answer."""
        while time.perf_counter() - self.started < READY_TIMEOUT_S:
            if self.process.poll() is not None:
                raise RuntimeError(f"serve exited with status {self.process.returncode}")
            try:
                with Client(self.port) as client:
                    status, _, body = client.request("GET", "/readyz")
                if status == 200:
                    return time.perf_counter() - self.started, orjson.loads(body)
            except OSError:
                pass
            time.sleep(0.005)
        raise RuntimeError(f"not ready after {READY_TIMEOUT_S:g} s")

    def wait_for_mcp(self) -> float:
        """Seconds from the start until `/readyz` says the MCP endpoint is ready too."""
        while time.perf_counter() - self.started < READY_TIMEOUT_S:
            with Client(self.port) as client:
                _, _, body = client.request("GET", "/readyz")
            if orjson.loads(body).get("mcp") == "ready":
                return time.perf_counter() - self.started
            time.sleep(0.005)
        raise RuntimeError("the MCP endpoint did not start")

    def rss_mib(self) -> float:
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return float("nan")

    def stop(self) -> None:
        self.process.send_signal(signal.SIGINT)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


class Client:
    """A blocking HTTP/1.1 client on one keep-alive connection: bytes as they came, so that
    what is timed is the gateway and the wire, not a client library's decoding."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buffer = bytearray(4 * MIB)

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.sock.close()

    def request(
        self, method: str, path: str, headers: dict[str, str] | None = None, body: bytes = b""
    ) -> tuple[int, dict[str, str], bytes]:
        lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1"]
        lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
        if body:
            lines.append(f"Content-Length: {len(body)}")
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
        answer = _Answer()
        parser = httptools.HttpResponseParser(answer)
        view = memoryview(self.buffer)
        while not answer.done:
            n = self.sock.recv_into(self.buffer)
            if n == 0:
                raise OSError("the connection closed before the answer was complete")
            parser.feed_data(view[:n])
        return parser.get_status_code(), answer.headers, b"".join(answer.body)


class _Answer:
    def __init__(self) -> None:
        self.headers: dict[str, str] = {}
        self.body: list[bytes] = []
        self.done = False

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers[name.decode().lower()] = value.decode()

    def on_body(self, chunk: bytes) -> None:
        self.body.append(bytes(chunk))

    def on_message_complete(self) -> None:
        self.done = True


# -- start and memory -----------------------------------------------------------------------


def starts(run: Run) -> Gateway:
    """Cold start, then warm starts (best of `repeat`); answers the last gateway, running."""
    limit, note = COLD_START_S, "the limit: today's, as issue 14 measured it"
    if run.baseline is not None:
        baseline = Gateway(run.config, run.caches / "baseline", source=run.baseline)
        limit, _ = baseline.ready()
        run.rows.append(Row("cold start of --baseline, ready", limit, "s", note=str(run.baseline)))
        baseline.stop()
        note = "the limit: --baseline's, this run"
    cold_dir = run.caches / "cold"
    gateway = Gateway(run.config, cold_dir)
    cold, answer = gateway.ready()
    if answer.get("tools") != run.tools:
        raise RuntimeError(f"the corpus served {answer.get('tools')} tools, not {run.tools}")
    cold_rss = gateway.rss_mib()
    gateway.stop()
    run.rows.append(Row("cold start, ready (/readyz 200)", cold, "s", limit, note))
    run.rows.append(Row("resident memory at ready, cold start", cold_rss, "MiB", MAX_RSS_MIB))
    best, best_mcp, rss, rss_mcp = float("inf"), float("inf"), float("nan"), float("nan")
    for attempt in range(run.repeat):
        gateway = Gateway(run.config, cold_dir)  # the caches the cold start filled
        ready, _ = gateway.ready()
        if ready < best:
            best, rss = ready, gateway.rss_mib()
        best_mcp = min(best_mcp, gateway.wait_for_mcp())
        rss_mcp = gateway.rss_mib()
        if attempt < run.repeat - 1:
            gateway.stop()
    run.rows.append(Row("warm start, ready (/readyz 200)", best, "s", WARM_START_S))
    note = "the MCP SDK loads in the background; /mcp requests wait for it"
    run.rows.append(Row("warm start, /mcp ready", best_mcp, "s", note=note))
    run.rows.append(Row("resident memory at ready", rss, "MiB", MAX_RSS_MIB))
    run.rows.append(Row("resident memory, /mcp ready too", rss_mcp, "MiB", MAX_RSS_MIB))
    return gateway


# -- lists ----------------------------------------------------------------------------------

MCP_HEADERS = {
    "Accept": "application/json, text/event-stream",
    "Content-Type": "application/json",
    "MCP-Protocol-Version": "2026-07-28",
    "Mcp-Method": "tools/list",
}


def mcp_list(cursor: str | None = None) -> bytes:
    params: dict[str, Any] = {
        "_meta": {
            "io.modelcontextprotocol/protocolVersion": "2026-07-28",
            "io.modelcontextprotocol/clientInfo": {"name": "bench", "version": "1"},
            "io.modelcontextprotocol/clientCapabilities": {},
        }
    }
    if cursor is not None:
        params["cursor"] = cursor
    return orjson.dumps({"jsonrpc": "2.0", "id": 7, "method": "tools/list", "params": params})


def decoded(headers: dict[str, str], body: bytes) -> bytes:
    coding = headers.get("content-encoding", "identity")
    if coding == "gzip":
        return zlib.decompress(body, 16 + zlib.MAX_WBITS)
    if coding == "zstd":  # frames may follow one another (MCP): read them all
        out = []
        while body:
            reader = zstandard.ZstdDecompressor().decompressobj()
            out.append(reader.decompress(body))
            body = reader.unused_data
        return b"".join(out)
    return body


def lists(run: Run, gateway: Gateway) -> None:
    """Each list: its first answer (built), then best of `repeat` per content coding, and a
    revalidation; every answer decoded and read (`json.loads`) to check what it holds."""
    http = ("gzip", "zstd", "identity")
    surfaces: list[
        tuple[str, str, str, bytes, dict[str, str], Callable[[Any], int], tuple[str, ...]]
    ] = [
        ("GET /v1/tools", "GET", "/v1/tools?format=openai", b"", {}, _tools, http),
        ("GET /openapi.json", "GET", "/openapi.json", b"", {}, _paths, http),
        # The SDK's envelope is spliced around the kept page: zstd frames follow one another,
        # gzip members do not (for httpx2), so MCP answers zstd or plain.
        (
            "MCP tools/list, page 1",
            "POST",
            "/mcp",
            mcp_list(),
            MCP_HEADERS,
            _page,
            ("zstd", "identity"),
        ),
    ]
    with Client(gateway.port) as client:
        for name, method, path, body, headers, count, codings in surfaces:
            started = time.perf_counter()
            status, got, raw = client.request(method, path, headers, body)
            first = time.perf_counter() - started
            if status != 200:
                raise RuntimeError(f"{name}: HTTP {status}: {raw[:200]!r}")
            tools = count(json.loads(decoded(got, raw)))
            run.rows.append(
                Row(
                    f"{name}: first answer (built)",
                    first * 1e3,
                    "ms",
                    note=f"{tools} tools, {len(decoded(got, raw)) / MIB:.1f} MiB",
                )
            )
            for coding in codings:
                best, size = float("inf"), 0
                for _ in range(run.repeat):
                    started = time.perf_counter()
                    status, got, raw = client.request(
                        method, path, {**headers, "Accept-Encoding": coding}, body
                    )
                    best = min(best, time.perf_counter() - started)
                    size = len(raw)
                assert got.get("content-encoding", "identity") == coding, (name, coding, got)
                assert count(json.loads(decoded(got, raw))) == tools
                limit = MAX_LIST_MS if coding != "identity" else None
                note = f"{size / MIB:.2f} MiB on the wire"
                if coding == "identity":
                    note += " (info: no compression, as curl without --compressed)"
                run.rows.append(Row(f"{name}: {coding}", best * 1e3, "ms", limit, note))
            etag = got.get("etag")
            if etag and method == "GET":
                started = time.perf_counter()
                status, _, _ = client.request(method, path, {"If-None-Match": etag})
                elapsed = (time.perf_counter() - started) * 1e3
                assert status == 304, (name, status)
                run.rows.append(Row(f"{name}: If-None-Match, 304", elapsed, "ms", MAX_LIST_MS))
    run.rows.append(Row("resident memory after the lists", gateway.rss_mib(), "MiB", MAX_RSS_MIB))


def _tools(answer: Any) -> int:
    return len(answer["tools"])


def _paths(answer: Any) -> int:
    return len(answer["paths"])


def _page(answer: Any) -> int:
    return len(answer["result"]["tools"])


# -- conversion -----------------------------------------------------------------------------


def kubernetes(run: Run) -> None:
    """Kubernetes' load+convert against `json.loads` of its text, as bench/convert.py compares
    them: best of `repeat` (at least 5), interleaved. The limit applies to CPU time: on a
    shared machine a 250 ms run is interrupted far more often than a 15 ms one, which skews
    wall-clock ratios; wall clock is shown too."""
    path = corpus_dir() / "kubernetes" / "swagger.json"
    text = path.read_text(encoding="utf-8")
    uri = location_to_uri(str(path))
    best = {"loads": [float("inf")] * 2, "convert": [float("inf")] * 2}
    for _ in range(max(run.repeat, 5)):
        for name, action in (
            ("loads", lambda: json.loads(text)),
            ("convert", lambda: convert(DocumentStore(cache_dir=None), uri)),
        ):
            wall, cpu = _timed(action)
            best[name] = [min(best[name][0], cpu), min(best[name][1], wall)]
    (loads_cpu, loads_wall), (work_cpu, work_wall) = best["loads"], best["convert"]
    note = f"wall clock: {work_wall * 1e3:.0f} ms / {loads_wall * 1e3:.1f} ms"
    run.rows.append(Row("Kubernetes: json.loads (CPU)", loads_cpu * 1e3, "ms"))
    run.rows.append(Row("Kubernetes: load+convert (CPU)", work_cpu * 1e3, "ms"))
    run.rows.append(
        Row(
            "Kubernetes: load+convert / json.loads (CPU)",
            work_cpu / loads_cpu,
            "x",
            MAX_KUBERNETES_RATIO,
            f"{note} = {work_wall / loads_wall:.1f}x",
        )
    )


def _timed(action: Callable[[], object]) -> tuple[float, float]:
    """(wall, CPU) seconds of one run, the collector run just before, freeing not timed."""
    gc.collect()
    wall, cpu = time.perf_counter(), time.process_time()
    result = action()
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    del result
    return wall, cpu


# -- tokens and search ----------------------------------------------------------------------

MAX_SEARCH_TOKENS = 3000
"""Issue 14: GitHub, Stripe and Kubernetes together through under 3,000 tokens of tools."""


def tokens(run: Run, gateway: Gateway) -> None:
    """The estimated tokens of the tool definitions a model is given (formats/tokens.py: each
    tool's compact JSON as the gateway served it, at the format's measured bytes a token), for
    the whole catalog and in search mode, in every format."""
    from toolbridge.formats.render import FORMATS
    from toolbridge.formats.tokens import tokens as estimated

    with Client(gateway.port) as client:
        for fmt in FORMATS:
            counts = []
            for mode in ("list", "search"):
                path = f"/v1/tools?format={fmt}&mode={mode}"
                status, headers, body = client.request("GET", path, {"Accept-Encoding": "zstd"})
                if status != 200:
                    raise RuntimeError(f"GET {path} answered {status}")
                listed = orjson.loads(decoded(headers, body))["tools"]
                size = sum(len(orjson.dumps(tool)) for tool in listed)
                counts.append((len(listed), estimated(size, fmt)))
            (whole, whole_tokens), (search, search_tokens) = counts
            run.rows.append(
                Row(f"tokens, {fmt}: the whole catalog", whole_tokens, "", note=f"{whole} tools")
            )
            run.rows.append(
                Row(
                    f"tokens, {fmt}: search mode",
                    search_tokens,
                    "",
                    MAX_SEARCH_TOKENS,
                    f"{search} tools",
                )
            )


def recall(run: Run, gateway: Gateway) -> None:
    """recall@5 of tool search over bench/search.py's written tasks (its catalog of five large
    documents, its index, as the gateway's `search_tools` ranks), against issue 14's 0.9."""
    import search as bench_search  # bench/search.py, beside this script
    from toolbridge.search import SearchIndex

    tools = bench_search.load_tools(bench_search.corpus())
    index = SearchIndex(tools)
    total = bench_search.Recall()
    for path in bench_search.TASKS.values():
        found = bench_search.measure(index, bench_search.load_tasks(path))
        total.tasks += found.tasks
        total.catalog += found.catalog
    note = f"{total.tasks} tasks, {len(tools)} tools; bench/search.py says more"
    run.rows.append(
        Row("recall@5 of tool search", total.catalog_recall, "", None, note, at_least=0.9)
    )


EXTRA: list[Callable[[Run, Gateway], None]] = [tokens, recall]
"""More sections, each adding rows to the run with the corpus gateway running."""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("-n", "--repeat", type=int, default=3, help="repetitions; best is kept")
    parser.add_argument(
        "--baseline",
        type=Path,
        help="the src folder of another revision: its cold start is the limit of ours",
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="toolbridge-catalog-") as tmp:
        folder = Path(tmp)
        config, tools = corpus_config(folder)
        run = Run(
            config=config,
            caches=folder,
            repeat=max(1, args.repeat),
            tools=tools,
            baseline=args.baseline,
        )
        kubernetes(run)
        gateway = starts(run)
        try:
            lists(run, gateway)
            for section in EXTRA:
                section(run, gateway)
        finally:
            gateway.stop()
        shutil.rmtree(folder / "cold", ignore_errors=True)
    report(run)
    return 0 if all(row.ok for row in run.rows) else 1


def report(run: Run) -> None:
    print(
        f"\n{datetime.date.today()}, Python {platform.python_version()}, "
        f"{platform.machine()} x{os.cpu_count()}, load average "
        f"{os.getloadavg()[0]:.1f}, best of {run.repeat}; {run.tools} tools\n"
    )
    print("| measure | value | limit | | note |")
    print("|---|--:|--:|---|---|")
    for row in run.rows:
        limit = f"< {row.limit:,g} {row.unit}".rstrip() if row.limit is not None else ""
        if row.at_least is not None:
            limit = f">= {row.at_least:.3g}"
        limited = row.limit is not None or row.at_least is not None
        verdict = ("PASS" if row.ok else "FAIL") if limited else ""
        value = f"{row.value:,.0f}" if row.unit == "" and row.value >= 100 else f"{row.value:.3g}"
        if row.unit:
            value = f"{row.value:.2f} {row.unit}"
        print(f"| {row.what} | {value} | {limit} | {verdict} | {row.note} |")


if __name__ == "__main__":
    sys.exit(main())
