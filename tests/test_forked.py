"""Work done in a forked child: its bytes come home whole, or the caller is told to do it."""

from __future__ import annotations

import asyncio
import os
import sys
import time

import pytest

from toolbridge import listings
from toolbridge.forked import in_child
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
