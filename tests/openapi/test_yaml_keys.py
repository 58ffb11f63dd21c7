"""Keys a YAML document gives twice in one mapping: found, said, kept in the parse cache.

In the documents below each value is the line it is written on (or, on one line, its column),
so every case checks itself against the loader: the line the note says is read is the value
the parsed document holds.
"""

from __future__ import annotations

import os
import textwrap
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import orjson
import pytest

from toolbridge.openapi.convert import convert
from toolbridge.openapi.documents import (
    CACHE_VERSION,
    DocumentStore,
    location_to_uri,
    parse_document,
    resolve_pointer,
)
from toolbridge.openapi.duplicate_keys import MAX_DUPLICATES, MAX_KEY_CHARS, DuplicateKey
from toolbridge.tools import Note

URI = "https://example.com/openapi.yaml"
LONG = "k" * (MAX_KEY_CHARS + 50)


def twice(pointer: str, key: str, kept: tuple[int, int], dropped: tuple[int, int]) -> DuplicateKey:
    """A key given twice: (line, column) of the one read, of the one dropped."""
    return DuplicateKey(pointer, key, *kept, *dropped)


CASES = [
    # two operations under one path: the later is read
    ("paths:\n  /a:\n    get: 3\n    get: 4\n", [twice("/paths/~1a", "get", (4, 5), (3, 5))]),
    # one path twice
    ("paths:\n  /a: 2\n  /b: 3\n  /a: 4\n", [twice("/paths", "/a", (4, 3), (2, 3))]),
    # three times: each one drops the one before
    ("m:\n  x: 2\n  x: 3\n  x: 4\n",
     [twice("/m", "x", (3, 3), (2, 3)), twice("/m", "x", (4, 3), (3, 3))]),
    # on one line: columns tell them apart
    ("m: {x: 5, x: 11}\n", [twice("/m", "x", (1, 11), (1, 5))]),
    # one number, written two ways: the later
    ("m:\n  200: 2\n  0xC8: 3\n", [twice("/m", "200", (3, 3), (2, 3))]),
    # a number and text: two keys to the loader, one in JSON: the text came last, and is read
    ("m:\n  200: 2\n  '200': 3\n", [twice("/m", "200", (3, 3), (2, 3))]),
    # text, then a number, then text again: the number's kind came last, and is read
    ("m:\n  '200': 2\n  200: 3\n  '200': 4\n",
     [twice("/m", "200", (3, 3), (2, 3)), twice("/m", "200", (3, 3), (4, 3))]),
    ("m:\n  true: 2\n  True: 3\n  ~: 4\n  null: 5\n",
     [twice("/m", "true", (3, 3), (2, 3)), twice("/m", "null", (5, 3), (4, 3))]),
    # an alias as a key is the key it names
    ("m:\n  &k get: 2\n  *k : 3\n", [twice("/m", "get", (3, 3), (2, 3))]),
    # in a sequence, under keys with / and ~
    ("s:\n  - {a/b~: {x: 13, x: 20}}\n", [twice("/s/0/a~1b~0", "x", (2, 20), (2, 13))]),
    # a key cut at MAX_KEY_CHARS, said so
    (f"m:\n  {LONG}: 2\n  {LONG}: 3\n", [twice("/m", LONG[:MAX_KEY_CHARS] + "…", (3, 3), (2, 3))]),
    # none: two merges (each merges), an empty key and null (two keys), a number and its text
    # in different mappings
    ("m: {<<: {a: 1}, <<: {b: 1}}\nn: {'': 2, ~: 2}\no: {1: 3}\np: {'1': 4}\n", []),
]  # fmt: skip


@pytest.mark.parametrize(("text", "expected"), CASES)
def test_keys_given_twice_are_found_and_the_value_said_read_is_the_one_read(
    text: str, expected: list[DuplicateKey]
) -> None:
    data, found = parse_document(text.encode(), URI)
    assert list(found) == expected
    assert_read_as_said(data, found)


def assert_read_as_said(data: Any, found: Iterable[DuplicateKey]) -> None:
    """Each key's value in `data` is the one said read: the document's values are their lines
    (or, on one line, their columns)."""
    last = {(d.pointer, d.key): d for d in found}  # the value read in the end
    for d in last.values():
        mapping = resolve_pointer(data, d.pointer)
        key = d.key if not d.key.endswith("…") else LONG
        kept = d.kept_line if d.kept_line != d.dropped_line else d.kept_column
        assert mapping[key] == kept


def test_the_duplicates_are_kept_in_the_parse_cache(tmp_path: Path) -> None:
    text = b"m:\n  x: 2\n  x: 3\n"
    cold = parse_document(text, URI, tmp_path)
    (entry,) = tmp_path.iterdir()
    assert parse_document(text, "https://example.com/other.yaml", tmp_path) == cold
    assert orjson.loads(entry.read_bytes())["duplicates"] == [
        {
            "pointer": "/m",
            "key": "x",
            "kept_line": 3,
            "kept_column": 3,
            "dropped_line": 2,
            "dropped_column": 3,
            "more": 0,
        }
    ]


def test_keys_given_twice_past_the_limit_are_counted() -> None:
    raw = b"".join(b"m%d: {a: 1, a: 2}\n" % i for i in range(MAX_DUPLICATES + 5))
    _, found = parse_document(raw, URI)
    last = MAX_DUPLICATES - 1
    assert (len(found), found[-1]) == (
        MAX_DUPLICATES,
        DuplicateKey(f"/m{last}", "a", last + 1, 13, last + 1, 7, more=5),
    )


GOOD = {"pointer": "/m", "key": "x", "kept_line": 3, "kept_column": 3, "dropped_line": 2}


@pytest.mark.parametrize(
    "duplicates",
    [
        [{**GOOD, "dropped_column": 3, "more": 0, "extra": 1}],
        [{**GOOD, "dropped_column": "3\nsummary: forged", "more": 0}],
        [{**GOOD, "dropped_column": 3, "more": -1}],
        [{**GOOD, "dropped_column": 3, "more": True}],
        [{**GOOD, "key": 5, "dropped_column": 3, "more": 0}],
        [{**GOOD, "dropped_column": 3, "more": 2**40}],
        [{**GOOD, "dropped_column": 3, "more": 0}] * (MAX_DUPLICATES + 1),
        {"pointer": "/m"},
        "x",
    ],
)
def test_a_cache_entry_not_as_we_write_it_is_parsed_again(tmp_path: Path, duplicates: Any) -> None:
    text = b"m:\n  x: 2\n  x: 3\n"
    fresh = parse_document(text, URI, tmp_path)
    (entry,) = tmp_path.iterdir()
    entry.write_bytes(orjson.dumps({"data": {"planted": True}, "duplicates": duplicates}))
    assert parse_document(text, URI, tmp_path) == fresh


@pytest.mark.parametrize("kind", ["fifo", "symlink", "others-may-write", "too-big"])
def test_a_cache_entry_that_is_not_ours_alone_is_not_read(
    tmp_path: Path, kind: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Not waited on (a FIFO), not followed (a symlink to /dev/zero), not trusted (a file
    others may write could choose our tools), not read past its limit."""
    import hashlib

    from toolbridge.openapi import documents

    text = b"openapi: 3.0.3\n"
    entry = tmp_path / f"{hashlib.sha256(CACHE_VERSION + text).hexdigest()}.json"
    planted = orjson.dumps({"data": {"planted": True}, "duplicates": []})
    if kind == "fifo":
        os.mkfifo(entry)
    elif kind == "symlink":
        entry.symlink_to("/dev/zero")
    else:
        entry.write_bytes(planted)
        entry.chmod(0o666 if kind == "others-may-write" else 0o600)
        monkeypatch.setattr(documents, "MAX_CACHE_ENTRY_BYTES", 10 if kind == "too-big" else 1000)
    assert parse_document(text, URI, tmp_path) == ({"openapi": "3.0.3"}, ())


def test_a_conversion_notes_the_keys_its_documents_give_twice(tmp_path: Path) -> None:
    (tmp_path / "pets.yaml").write_text(
        textwrap.dedent("""\
            openapi: 3.0.3
            info: {title: t, version: '1'}
            servers: [{url: 'http://x'}]
            paths:
              /pets:
                get: {operationId: listPets}
                get: {operationId: listAll}
              /owners: {$ref: 'owners.yaml#/owners'}
              "/a b#\\n{c}":
                get: {operationId: odd, x-a: 1, x-a: 2}
        """)
    )
    (tmp_path / "owners.yaml").write_text(
        "owners:\n  get: {operationId: listOwners}\n  get: {operationId: listOwners}\n"
    )
    found = convert(DocumentStore(), location_to_uri(str(tmp_path / "pets.yaml")))
    said = "key {!r} is given twice in one mapping ({}): the value at {} is read, the one at {} "
    said += "dropped"
    assert ([t.name for t in found.tools], found.notes) == (
        ["listAll", "listOwners", "odd"],
        (
            Note(
                kind="duplicate-key",
                message=said.format("get", "lines 2 and 3", "line 3", "line 2"),
                where=f"{tmp_path / 'owners.yaml'}#/owners",
            ),
            Note(
                kind="duplicate-key",
                message=said.format("get", "lines 6 and 7", "line 7", "line 6"),
                where=f"{tmp_path / 'pets.yaml'}#/paths/~1pets",
            ),
            Note(
                kind="duplicate-key",
                message=said.format("x-a", "line 10, columns 29 and 37", "column 37", "column 29"),
                where=f"{tmp_path / 'pets.yaml'}#/paths/~1a%20b%23%0A%7Bc%7D/get",
            ),
        ),
    )
