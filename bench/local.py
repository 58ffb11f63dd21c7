"""The overhead of calling a trivial local Python tool through the gateway's HTTP API.

Measured in one run, side by side: the bare function called in-process; a bare Starlette
endpoint (uvicorn, uvloop, httptools) that calls it; and `toolbridge serve` calling it as a
local tool. Printed as ratios: gateway throughput / bare endpoint throughput at c=1 and c=16,
and the time a call takes over the bare function.

    python bench/local.py [--duration S]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from proxy import (
    Process,
    Target,
    free_port,
    load,
    start,
    toolbridge_command,
    wait_ready,
)

TOOL_FILE = '''"""
title: Bench
"""


class Tools:
    def add(self, a: int, b: int) -> int:
        """Add two numbers."""
        return a + b
'''

BARE_APP = """
import importlib.util
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

spec = importlib.util.spec_from_file_location("bench_tool", "tool.py")
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
tools = module.Tools()


async def call(request: Request) -> JSONResponse:
    arguments = await request.json()
    return JSONResponse({"ok": True, "result": tools.add(**arguments)})


app = Starlette(routes=[Route("/add", call, methods=["POST"])])
"""

BODY = b'{"a": 2, "b": 3}'


def bare_function_us(count: int = 200_000) -> float:
    namespace: dict[str, object] = {}
    exec(compile(TOOL_FILE, "tool.py", "exec"), namespace)
    tools = namespace["Tools"]()  # type: ignore[operator]
    began = time.perf_counter()
    for _ in range(count):
        tools.add(2, 3)
    return (time.perf_counter() - began) / count * 1e6


async def main(args: argparse.Namespace) -> int:
    folder = Path(tempfile.mkdtemp(prefix="toolbridge-bench-local-"))
    (folder / "tool.py").write_text(TOOL_FILE)
    (folder / "bare.py").write_text(BARE_APP)
    (folder / "toolbridge.yaml").write_text("tools:\n  - id: bench\n    path: tool.py\n")
    bare_port, gateway_port = free_port(), free_port()
    uvicorn = [sys.executable, "-m", "uvicorn", "bare:app", "--port", str(bare_port)]
    uvicorn += [
        "--loop",
        "uvloop",
        "--http",
        "httptools",
        "--no-access-log",
        "--log-level",
        "warning",
    ]
    gateway_argv = [*toolbridge_command(), "serve", "-c", "toolbridge.yaml"]
    gateway_argv += ["--port", str(gateway_port), "--log-level", "warning"]
    processes: list[Process] = [
        start("bare", uvicorn, folder, folder, None),
        start("gateway", gateway_argv, folder, folder, None),
    ]
    targets = [
        Target(
            "bare endpoint",
            "POST",
            f"http://127.0.0.1:{bare_port}/add",
            BODY,
            tool_call=True,
        ),
        Target(
            "gateway",
            "POST",
            f"http://127.0.0.1:{gateway_port}/v1/tools/add/call",
            BODY,
            tool_call=True,
        ),
    ]
    try:
        for process, target in zip(processes, targets, strict=True):
            problem = await wait_ready(process, target.url, lambda s, _: s == 200, BODY)
            if problem:
                print(f"{target.name} did not start: {problem}")
                return 1
        function_us = bare_function_us()
        print(f"bare function in-process: {function_us:.3f} us a call")
        cells = {}
        for concurrency in (1, 16):
            for target in targets:
                await load(target, concurrency, 0.5)  # warm-up
                cell = await load(target, concurrency, args.duration)
                cells[target.name, concurrency] = cell
                print(
                    f"c={concurrency:<3} {target.name:<14} {cell.rate:8.0f} req/s  "
                    f"p50 {cell.quantile(0.5):.3f} ms  errors {cell.errors}"
                )
        print()
        for concurrency in (1, 16):
            gateway, bare = cells["gateway", concurrency], cells["bare endpoint", concurrency]
            added = gateway.quantile(0.5) - bare.quantile(0.5)
            print(
                f"c={concurrency}: gateway / bare Starlette endpoint throughput "
                f"{gateway.rate / bare.rate:.2f}x; p50 {gateway.quantile(0.5):.3f} ms vs "
                f"{bare.quantile(0.5):.3f} ms (+{added:.3f} ms)"
            )
        c1 = cells["gateway", 1].quantile(0.5) * 1000
        ratio = c1 / function_us
        print(f"a gateway call at c=1 takes {c1:.0f} us at p50: {ratio:.0f}x the bare function")
        return 0
    finally:
        for process in processes:
            process.stop()


def cli() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--duration", type=float, default=3.0, help="seconds per cell (3)")
    return asyncio.run(main(parser.parse_args()))


if __name__ == "__main__":
    raise SystemExit(cli())
