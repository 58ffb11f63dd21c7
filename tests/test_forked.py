"""Work done in a forked child: its bytes come home whole, or the caller is told to do it."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
import time
import zlib

import pytest
import zstandard

from toolbridge import listings
from toolbridge.forked import FORK_LOCK, importing, in_child
from toolbridge.listings import Answer, Listings, build_answer

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="children are forked on Linux")


def test_the_childs_bytes_come_home_whole() -> None:
    big = os.urandom(3 * 1024 * 1024)  # more than a pipe holds at once
    found = in_child(lambda: big + str(os.getpid()).encode(), timeout=30)
    assert found is not None
    assert found[: len(big)] == big
    assert int(found[len(big) :]) != os.getpid()  # made in another process


def test_work_that_fails_or_hangs_comes_back_as_none() -> None:
    def fails() -> bytes:
        raise RuntimeError("no")

    def hangs() -> bytes:
        time.sleep(30)
        return b"late"

    started = time.monotonic()
    assert in_child(fails, timeout=30) is None
    assert in_child(hangs, timeout=0.5) is None
    assert time.monotonic() - started < 10


@pytest.mark.parametrize("size", [10, 10_000])
def test_an_answer_travels_as_bytes(monkeypatch: pytest.MonkeyPatch, size: int) -> None:
    monkeypatch.setattr(listings, "KEEP_IDENTITY_BYTES", 1000)
    answer = build_answer([b"x" * size])
    back = Answer.from_bytes(answer.to_bytes())
    assert (back.etag, back.size, back.zstd, back.gzip) == (
        answer.etag,
        answer.size,
        answer.zstd,
        answer.gzip,
    )
    assert back.ready("identity") is (size <= 1000)
    assert back.body("identity") == b"x" * size
    with pytest.raises(ValueError, match="bytes after the answer"):
        Answer.from_bytes(answer.to_bytes() + b"!")


@pytest.mark.parametrize("spill", [1, 10**9])
def test_a_large_answer_is_kept_in_an_unnamed_file(
    monkeypatch: pytest.MonkeyPatch, spill: int
) -> None:
    """At `SPILL_BYTES` its compressed bytes are in a file no other process can open by name,
    read back whole for each request; below, in memory. Either way the same answer."""
    monkeypatch.setattr(listings, "SPILL_BYTES", spill)
    data = os.urandom(50_000)  # compresses to about as much
    answer = build_answer([data])
    assert answer.in_file is (spill == 1)
    assert answer.body("identity") == data
    assert (
        zstandard.ZstdDecompressor().decompress(answer.body("zstd"), max_output_size=len(data))
        == data
    )
    assert zlib.decompress(answer.body("gzip"), 16 + zlib.MAX_WBITS) == data
    back = Answer.from_bytes(answer.to_bytes())
    assert (back.zstd, back.gzip, back.etag) == (answer.zstd, answer.gzip, answer.etag)
    monkeypatch.setattr(listings, "FILE_PIECE_BYTES", 1000)
    for coding in ("zstd", "gzip"):
        pieces = list(answer.pieces(coding))
        assert b"".join(pieces) == answer.body(coding)
        assert answer.length(coding) == len(answer.body(coding))
        assert answer.ready(coding) is (not answer.in_file)
        assert max(map(len, pieces)) == (1000 if answer.in_file else len(answer.body(coding)))
    if answer.in_file:
        link = os.readlink(f"/proc/self/fd/{answer._file.fileno()}")  # type: ignore[union-attr]
        assert "toolbridge-list-" not in link or link.endswith("(deleted)")


def test_a_large_list_is_built_in_a_child_and_the_same() -> None:
    parent = os.getpid()
    built_in: list[int] = []

    def build() -> list[bytes]:
        built_in.append(os.getpid())  # in the child: its own list, not ours
        return [b'{"tools":[', str(os.getpid() != parent).lower().encode(), b"]}"]

    answer = asyncio.run(Listings().answer(("k",), build, large=True))
    assert answer.body("identity") == b'{"tools":[true]}'
    assert built_in == []


def test_without_a_child_it_is_built_here(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(listings, "in_child", lambda work, timeout: None)
    answer = asyncio.run(Listings().answer(("k",), lambda: [b"[1]"], large=True))
    assert answer.body("identity") == b"[1]"


def test_a_fork_that_fails_is_work_done_here(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_fork() -> int:
        raise OSError(12, "Cannot allocate memory")

    monkeypatch.setattr(os, "fork", no_fork)
    assert in_child(lambda: b"never", timeout=30) is None
    answer = asyncio.run(Listings().answer(("k",), lambda: [b"[2]"], large=True))
    assert answer.body("identity") == b"[2]"


def test_a_child_is_forked_only_while_no_import_it_may_make_is_under_way(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A thread importing under `importing()` holds the fork back until it is done."""
    forked_while_locked: list[bool] = []
    fork = os.fork

    def watched() -> int:
        forked_while_locked.append(FORK_LOCK.locked())
        return fork()

    monkeypatch.setattr(os, "fork", watched)
    release = threading.Event()

    def slow_import() -> None:
        with importing():
            release.wait(10)

    importer = threading.Thread(target=slow_import)
    importer.start()
    started = time.monotonic()
    threading.Timer(0.3, release.set).start()
    assert in_child(lambda: b"done", timeout=30) == b"done"
    importer.join()
    assert time.monotonic() - started >= 0.3  # it waited for the import
    assert forked_while_locked == [True]


def test_the_server_leaves_the_documents_validator_to_the_child() -> None:
    """A large `/openapi.json` built in a child: the validator it needs is imported there."""
    script = """
import asyncio, sys
from toolbridge.listings import Listings
from toolbridge.serve.lists import openapi_json
from toolbridge.tools import HttpOperation, ParamBinding, Tool
tool = Tool(
    name="find", original_name="find", description="Find.", source="s",
    input_schema={"type": "object", "properties": {"q": {"type": "string", "pattern": "^a+$"}}},
    target=HttpOperation(server="s", method="GET", path="/find", base_url="http://127.0.0.1:9",
                         operation_id="find",
                         params=(ParamBinding(argument="q", name="q", location="query"),)),
)
build = lambda: openapi_json([tool], "http://x")
answer = asyncio.run(Listings().answer(("k",), build, large=True))
assert b'"pattern":"^a+$"' in answer.body("identity"), answer.body("identity")
print("openapi_schema_validator" in sys.modules)
"""
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False", out.stderr
