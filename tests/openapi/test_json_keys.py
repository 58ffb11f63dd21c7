"""Keys a JSON document gives twice in one object: found, located, said.

As in test_yaml_keys, each value below is the line it is written on (or, on one line, its
column), so every case checks itself against the parser: the value the note says is read is
the value the parsed document holds.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from tests.openapi.test_yaml_keys import LONG, assert_read_as_said, twice
from toolbridge.openapi.convert import convert
from toolbridge.openapi.documents import (
    DocumentStore,
    location_to_uri,
    parse_document,
)
from toolbridge.openapi.duplicate_keys import MAX_DUPLICATES, MAX_KEY_CHARS, DuplicateKey
from toolbridge.tools import Note

URI = "https://example.com/openapi.json"


CASES = [
    # two operations under one path: the later is read
    ('{"paths": {"/a": {\n"get": 2,\n"get": 3}}}', [twice("/paths/~1a", "get", (3, 1), (2, 1))]),
    # three times: each one drops the one before
    ('{"m": {\n "x": 2,\n "x": 3,\n "x": 4}}',
     [twice("/m", "x", (3, 2), (2, 2)), twice("/m", "x", (4, 2), (3, 2))]),
    # on one line: columns tell them apart
    ('{"m": {"x": 8, "x": 16}}', [twice("/m", "x", (1, 16), (1, 8))]),
    # one key written two ways (an escape is its letter); strings holding punctuation
    ('{"m": {"get": "{[,:\\"", \n"g\\u0065t": 2}}', [twice("/m", "get", (2, 1), (1, 8))]),
    # in an array, under keys with / and ~, after values of every kind
    ('{"s": [1, true, null, {"a/b~": {"y": [], "x": 42, "x": 51}}]}',
     [twice("/s/3/a~1b~0", "x", (1, 51), (1, 42))]),
    # the same key in two objects is no duplicate; nor a key and a value alike
    ('{"m": {"x": 1}, "n": {"x": 1, "y": "x"}, "o": ["x", "x"]}', []),
    # a key cut at MAX_KEY_CHARS, said so
    (f'{{"m": {{\n"{LONG}": 2,\n"{LONG}": 3}}}}',
     [twice("/m", LONG[:MAX_KEY_CHARS] + "…", (3, 1), (2, 1))]),
    # at the root; line breaks as \r\n
    ('{"a": 1,\r\n"a": 2}', [twice("", "a", (2, 1), (1, 2))]),
]  # fmt: skip


@pytest.mark.parametrize(("text", "expected"), CASES)
def test_keys_given_twice_are_found_and_the_value_said_read_is_the_one_read(
    text: str, expected: list[DuplicateKey]
) -> None:
    data, found = parse_document(text.encode(), URI)
    assert list(found) == expected
    assert_read_as_said(data, found)


def test_a_document_orjson_refuses_is_looked_through_too() -> None:
    """An integer past 64 bits sends the document to the standard library's parser."""
    data, found = parse_document(b'{"n": 123456789012345678901234567890,\n"n": 2}', URI)
    assert (data, found) == ({"n": 2}, (twice("", "n", (2, 1), (1, 2)),))


def test_a_document_deeper_than_the_first_pass_goes_is_scanned() -> None:
    depth = 1010  # orjson reads 1024 levels; the standard library's parser fewer
    raw = ('{"a": ' * depth + '{"x": 1, "x": 2}' + "}" * depth).encode()
    _, found = parse_document(raw, URI)
    assert found == (twice("/a" * depth, "x", (1, 6 * depth + 10), (1, 6 * depth + 2)),)


def test_a_document_past_the_size_checked_is_not_looked_through(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Serializers write large JSON documents, and cannot write a key twice: the pass would
    cost as much as the parse."""
    from toolbridge.openapi import json_keys

    raw = b'{"a": 1, "a": 2}'
    monkeypatch.setattr(json_keys, "MAX_CHECKED_BYTES", len(raw) - 1)
    assert parse_document(raw, URI) == ({"a": 2}, ())


def test_keys_given_twice_past_the_limit_are_counted() -> None:
    lines = [f'"m{i}": {{"a": 1, "a": 2}}' for i in range(MAX_DUPLICATES + 5)]
    _, found = parse_document(("{" + ",\n".join(lines) + "}").encode(), URI)
    last = MAX_DUPLICATES - 1
    kept, dropped = lines[last].rindex('"a"') + 1, lines[last].index('"a"') + 1
    assert (len(found), found[-1]) == (
        MAX_DUPLICATES,
        DuplicateKey(f"/m{last}", "a", last + 1, kept, last + 1, dropped, more=5),
    )


def test_a_conversion_notes_the_keys_a_json_document_gives_twice(tmp_path: Path) -> None:
    (tmp_path / "pets.json").write_text(
        textwrap.dedent("""\
            {"openapi": "3.0.3", "info": {"title": "t", "version": "1"},
             "servers": [{"url": "http://x"}],
             "paths": {
              "/pets": {
                "get": {"operationId": "listPets"},
                "get": {"operationId": "listAll"}
              }
             }
            }
        """)
    )
    found = convert(DocumentStore(), location_to_uri(str(tmp_path / "pets.json")))
    assert ([t.name for t in found.tools], found.notes) == (
        ["listAll"],
        (
            Note(
                kind="duplicate-key",
                message="key 'get' is given twice in one mapping (lines 5 and 6): the value at "
                "line 6 is read, the one at line 5 dropped",
                where=f"{tmp_path / 'pets.json'}#/paths/~1pets",
            ),
        ),
    )
