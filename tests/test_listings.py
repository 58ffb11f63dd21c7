"""What a generation keeps of its list answers: visible sets by principal, answers as bytes in
three codings with an ETag, each built once, bounded in number."""

from __future__ import annotations

import asyncio
import gzip
import hashlib
from functools import partial

import pytest
import zstandard

from toolbridge import listings
from toolbridge.listings import Listings, accepted, build_answer, choose, not_modified
from toolbridge.policy import Principal
from toolbridge.tools import HttpOperation, Tool

pytestmark = pytest.mark.anyio

PARTS = [b'{"tools":[', b'{"name":"a"}', b",", b'{"name":"b"}', b"]}"]
WHOLE = b"".join(PARTS)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def tool(name: str) -> Tool:
    return Tool(
        name=name,
        original_name=name,
        description="",
        input_schema={"type": "object"},
        source="api",
        target=HttpOperation(
            server="api", method="GET", path="/", base_url=None, operation_id=None
        ),
    )


@pytest.mark.parametrize("keep", [True, False])
def test_an_answer_in_every_coding_is_the_same_bytes(
    monkeypatch: pytest.MonkeyPatch, keep: bool
) -> None:
    """Kept plain when small; a larger one is decompressed from zstd when asked for plain."""
    monkeypatch.setattr(listings, "KEEP_IDENTITY_BYTES", 1000 if keep else 10)
    answer = build_answer(iter(PARTS))
    assert answer.ready("identity") is keep
    assert (answer.ready("zstd"), answer.ready("gzip")) == (True, True)
    assert answer.body("identity") == WHOLE
    assert gzip.decompress(answer.body("gzip")) == WHOLE
    assert zstandard.ZstdDecompressor().decompressobj().decompress(answer.body("zstd")) == WHOLE
    assert answer.size == len(WHOLE)
    assert answer.etag == f'W/"{hashlib.sha256(WHOLE).hexdigest()[:32]}"'


def test_equal_content_has_an_equal_etag_whatever_its_parts() -> None:
    assert build_answer([WHOLE]).etag == build_answer(iter(PARTS)).etag
    assert build_answer([WHOLE]).etag != build_answer([WHOLE + b" "]).etag


@pytest.mark.parametrize(
    ("header", "codings", "chosen"),
    [
        (None, {"identity"}, "identity"),
        ("", {"identity"}, "identity"),
        ("gzip, deflate, br", {"gzip", "deflate", "br", "identity"}, "gzip"),
        ("gzip, deflate, br, zstd", {"gzip", "deflate", "br", "zstd", "identity"}, "zstd"),
        ("zstd;q=0, gzip", {"gzip", "identity"}, "gzip"),
        ("GZIP;q=0.5", {"gzip", "identity"}, "gzip"),
        ("gzip;q=0, identity", {"identity"}, "identity"),
        ("*", {"zstd", "gzip", "identity"}, "zstd"),
        ("*;q=0", set(), "identity"),
        ("identity;q=0, *", {"zstd", "gzip"}, "zstd"),
        ("br", {"br", "identity"}, "identity"),
        ("gzip;q=nonsense", {"identity"}, "identity"),
    ],
)
def test_accept_encoding(header: str | None, codings: set[str], chosen: str) -> None:
    assert (accepted(header), choose(header)) == (frozenset(codings), chosen)


@pytest.mark.parametrize(
    ("header", "matches"),
    [
        (None, False),
        ('W/"abc"', True),
        ('"abc"', True),
        ('W/"other", W/"abc"', True),
        ("*", True),
        ('W/"abcd"', False),
    ],
)
def test_if_none_match_compares_weakly(header: str | None, matches: bool) -> None:
    assert not_modified(header, 'W/"abc"') is matches


def test_a_visible_set_is_decided_once_per_principal() -> None:
    kept = Listings()
    decided: list[str] = []
    tools = (tool("a"), tool("b"))

    def allowed(who: str) -> list[Tool]:
        decided.append(who)
        return [t for t in tools if who == "ops" or t.name == "a"]

    alice, ops = Principal(id="alice"), Principal(id="ops", admin=True)
    first = kept.visible(alice, lambda: allowed("alice"))
    again = kept.visible(alice, lambda: allowed("alice"))
    everything = kept.visible(ops, lambda: allowed("ops"))
    assert decided == ["alice", "ops"]
    assert first is again
    assert ([t.name for t in first.tools], [t.name for t in everything.tools]) == (
        ["a"],
        ["a", "b"],
    )
    assert first.key == hashlib.sha256(b"a").hexdigest()
    # Same id, other groups: another principal, decided again.
    kept.visible(Principal(id="alice", groups=frozenset({"x"})), lambda: allowed("alice"))
    assert decided == ["alice", "ops", "alice"]


def test_visible_sets_kept_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(listings, "MAX_VISIBLE", 2)
    kept = Listings()
    decided: list[str] = []

    def allowed(who: str) -> list[Tool]:
        decided.append(who)
        return []

    for who in ["a", "b", "a", "c", "b", "a"]:
        kept.visible(Principal(id=who), partial(allowed, who))
    assert decided == ["a", "b", "c", "b", "a"]


async def test_an_answer_is_built_once_even_when_asked_twice_at_once() -> None:
    kept = Listings()
    built: list[int] = []

    def build() -> list[bytes]:
        built.append(1)
        return PARTS

    first, second = await asyncio.gather(kept.answer(("k",), build), kept.answer(("k",), build))
    third = await kept.answer(("k",), build)
    assert first is second is third
    assert built == [1]
    assert (await kept.answer(("other",), build)) is not first


async def test_a_failed_build_fails_its_waiters_and_is_built_again_next_time() -> None:
    kept = Listings()
    calls: list[int] = []

    def build() -> list[bytes]:
        calls.append(1)
        if len(calls) == 1:
            raise ValueError("rendering failed")
        return PARTS

    results = await asyncio.gather(
        kept.answer(("k",), build), kept.answer(("k",), build), return_exceptions=True
    )
    assert [str(r) for r in results] == ["rendering failed", "rendering failed"]
    assert (await kept.answer(("k",), build)).body("identity") == WHOLE
    assert calls == [1, 1]


async def test_answers_kept_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(listings, "MAX_ANSWERS", 2)
    kept = Listings()
    built: list[str] = []

    def build(key: str) -> list[bytes]:
        built.append(key)
        return [key.encode()]

    for key in ["a", "b", "a", "c", "b"]:
        await kept.answer((key,), partial(build, key))
    assert built == ["a", "b", "c", "b"]
