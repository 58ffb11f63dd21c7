"""A serving process keeps glibc's malloc to two arenas, unless the environment says otherwise.

Measured, not assumed: a child Python starts 12 threads that allocate at once, then prints
glibc's `malloc_stats()` (one `Arena N:` block per arena, on stderr)."""

from __future__ import annotations

import os
import platform
import subprocess
import sys

import pytest

from toolbridge.serve.allocator import ARENAS, ENV, limit_arenas

pytestmark = pytest.mark.skipif(
    platform.system() != "Linux" or platform.libc_ver()[0] != "glibc", reason="glibc only"
)

CHILD = """
import ctypes, sys, threading
from toolbridge.serve.allocator import limit_arenas
if sys.argv[1] == "limit":
    limit_arenas()
start = threading.Barrier(12)
kept = []
def allocate():
    start.wait()
    kept.extend(bytearray(100_000) for _ in range(50))  # malloc'd, below the mmap threshold
threads = [threading.Thread(target=allocate) for _ in range(12)]
for t in threads: t.start()
for t in threads: t.join()
ctypes.CDLL(None).malloc_stats()
"""


def arenas(mode: str, **env: str) -> int:
    environ = {k: v for k, v in os.environ.items() if k != ENV} | env
    done = subprocess.run(
        [sys.executable, "-c", CHILD, mode], env=environ, capture_output=True, text=True, check=True
    )
    return sum(line.startswith("Arena ") for line in done.stderr.splitlines())


def test_two_arenas_whatever_the_threads_do() -> None:
    assert arenas("limit") == ARENAS
    assert arenas("none") > ARENAS  # glibc's default: one per thread, up to 8 per core


def test_the_operators_setting_is_left_alone() -> None:
    assert arenas("limit", **{ENV: "6"}) == 6
    environ = {ENV: "6"}
    assert limit_arenas(environ) is False
    assert environ == {ENV: "6"}


def test_processes_started_later_inherit_the_limit() -> None:
    environ: dict[str, str] = {}
    limit_arenas(environ)  # (this test process's own arenas are limited too: harmless)
    assert environ == {ENV: "2"}
