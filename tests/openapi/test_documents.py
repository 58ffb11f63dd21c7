"""Reading documents: YAML 1.2 as real documents write it, JSON, limits, the parse cache, errors.

`parse()` never fetches anything: the URI it takes only names the document in messages, so the
tests use an https URI and the messages read the same on every machine.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import textwrap
import threading
from pathlib import Path
from typing import Any

import pytest

from toolbridge.errors import DocumentError
from toolbridge.openapi.convert import convert
from toolbridge.openapi.documents import (
    CACHE_VERSION,
    DocumentStore,
    cache_dir_from,
    location_to_uri,
    parse,
    resolve_pointer,
    uri_to_display,
)
from toolbridge.openapi.yaml_limits import MAX_DEPTH
from toolbridge.tools import Note

YAML_URI = "https://example.com/openapi.yaml"
JSON_URI = "https://example.com/openapi.json"


def parse_yaml(text: str, cache_dir: Path | None = None) -> Any:
    return parse(textwrap.dedent(text).encode(), YAML_URI, cache_dir)


def error_of(raw: bytes, uri: str = YAML_URI) -> str:
    with pytest.raises(DocumentError) as caught:
        parse(raw, uri)
    return str(caught.value)


# -- YAML 1.2 core scalars ----------------------------------------------------------------


def test_yaml_is_read_by_the_yaml_1_2_core_schema() -> None:
    """Dates, times, `no`/`yes`/`on`, leading zeros and underscores mean what YAML 1.2 says,
    not what YAML 1.1 (plain PyYAML) says; every key becomes a string."""
    assert parse_yaml(
        """\
        date: 2020-01-01
        timestamp: 2001-12-14t21:59:43.10-05:00
        time: 12:30
        country: no
        on: yes
        off: On
        y: n
        leading_zero: 010
        octal: 0o17
        hex: 0x1F
        underscored: 1_000
        exponent: 1e3
        half: .5
        tilde: ~
        empty:
        bools: [true, True, TRUE, false, FALSE]
        200: OK
        1.5: one and a half
        true: a key
        null: another key
        """
    ) == {
        "date": "2020-01-01",
        "timestamp": "2001-12-14t21:59:43.10-05:00",
        "time": "12:30",
        "country": "no",
        "on": "yes",
        "off": "On",
        "y": "n",
        "leading_zero": 10,
        "octal": 15,
        "hex": 31,
        "underscored": "1_000",
        "exponent": 1000.0,
        "half": 0.5,
        "tilde": None,
        "empty": None,
        "bools": [True, True, True, False, False],
        "200": "OK",
        "1.5": "one and a half",
        "true": "a key",
        "null": "another key",
    }


def test_quirky_spec_keeps_codes_dates_and_keys(specs: Path) -> None:
    """specs/messy-yaml.yaml: unquoted `200:`, `2020-01-01`, `12:30`, `no`, `on:` and `yes:`."""
    data = DocumentStore(cache_dir=None).get(location_to_uri(str(specs / "messy-yaml.yaml"))).data
    error_response = {
        "description": "Something went wrong.",
        "content": {
            "application/json": {
                "schema": {"type": "object", "properties": {"message": {"type": "string"}}}
            }
        },
    }
    assert data["paths"]["/events"]["get"]["parameters"] == [
        {
            "name": "from",
            "in": "query",
            "schema": {"type": "string", "format": "date", "default": "2020-01-01"},
        },
        {
            "name": "country",
            "in": "query",
            "schema": {"type": "string", "enum": ["se", "no", "dk", "fi"]},
        },
    ]
    assert data["paths"]["/events"]["get"]["responses"] == {
        "200": {
            "description": "Events.",
            "content": {
                "application/json": {
                    "schema": {
                        "type": "array",
                        "items": {"$ref": "#/components/schemas/Event"},
                    }
                }
            },
        },
        "default": error_response,
    }
    assert data["paths"]["/events"]["post"]["responses"] == {
        "201": {"description": "Announced."},
        "400": error_response,
    }


def test_anchors_aliases_and_merge_keys_are_expanded(specs: Path) -> None:
    data = DocumentStore(cache_dir=None).get(location_to_uri(str(specs / "messy-yaml.yaml"))).data
    short_text = {"type": "string", "minLength": 1, "maxLength": 120}
    place = {"type": "object", "properties": {"name": short_text, "city": short_text}}
    assert data["components"]["schemas"]["Event"] == {
        "type": "object",
        "required": ["title", "date"],
        "properties": {
            "title": short_text,
            "host": short_text,
            "date": {"type": "string", "format": "date", "example": "2024-03-15"},
            "startsAt": {"type": "string", "description": "Local time, HH:MM.", "example": "12:30"},
            "on": {
                "description": "Whether the event is on (not cancelled); "
                "a key YAML 1.1 reads as true.",
                "type": "boolean",
                "default": True,
            },
            "yes": {
                "description": "Number of people who answered yes; another YAML 1.1 boolean key.",
                "type": "integer",
                "minimum": 0,
            },
            "venue": {**place, "description": "Where it happens (built with a << merge key)."},
            "backupVenue": place,
        },
    }


def test_merge_key_does_not_override_explicit_keys() -> None:
    assert parse_yaml(
        """\
        base: &base {type: string, maxLength: 5}
        derived:
          <<: *base
          maxLength: 10
        """
    ) == {
        "base": {"type": "string", "maxLength": 5},
        "derived": {"type": "string", "maxLength": 10},
    }


def test_integers_past_64_bits_become_floats_in_json_and_yaml() -> None:
    """orjson (the cache, the responses) holds 64-bit integers; larger ones become floats."""
    expected = {
        "big": 1.2345678901234568e29,
        "max": 18446744073709551615,
        "min": -9223372036854775808,
        "below": -9.223372036854775809e18,
    }
    json_raw = (
        b'{"big": 123456789012345678901234567890, "max": 18446744073709551615, '
        b'"min": -9223372036854775808, "below": -9223372036854775809}'
    )
    yaml_raw = (
        b"big: 123456789012345678901234567890\nmax: 18446744073709551615\n"
        b"min: -9223372036854775808\nbelow: -9223372036854775809\n"
    )
    assert parse(json_raw, JSON_URI) == expected
    assert parse(yaml_raw, YAML_URI) == expected
    assert [type(v) for v in parse(yaml_raw, YAML_URI).values()] == [float, int, int, float]


# -- what is refused ----------------------------------------------------------------------


def test_alias_bomb_is_refused() -> None:
    """Nine levels of nine aliases each: 387 million values once expanded."""
    lines = ['a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for level in range(1, 10):
        lines.append(f"a{level}: &a{level} [{', '.join([f'*a{level - 1}'] * 9)}]")
    raw = "\n".join(lines).encode()
    assert error_of(raw) == (
        "https://example.com/openapi.yaml: YAML aliases expand too far (line 5): they add "
        "15670 values and 41796 bytes of text by there; at most 10000 values and 1048576 "
        "bytes may be added (what the document writes out itself, at least 10000 values and "
        "1048576 bytes): an alias bomb?"
    )


@pytest.mark.parametrize(
    ("text", "where"),
    [("a: &x\n  b: *x\n", "/a/b"), ("a: &x [1, *x]\n", "/a/1"), ("&x [*x]\n", "/0")],
)
def test_self_referencing_alias_is_refused(text: str, where: str) -> None:
    assert error_of(text.encode()) == (
        f"https://example.com/openapi.yaml: an alias refers to itself at {where}"
    )


def nested_lists(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


@pytest.mark.parametrize(
    ("raw", "uri", "message"),
    [
        pytest.param(
            nested_lists(5000), JSON_URI, "nested too deeply", id="json-past-orjson-limit"
        ),
        pytest.param(
            b"[123456789012345678901234567890, " + nested_lists(50_000) + b"]",
            JSON_URI,
            "nested too deeply",
            id="json-past-python-recursion",
        ),
        pytest.param(
            b"a: " + nested_lists(MAX_DEPTH + 1) + b"\n",
            YAML_URI,
            "nested deeper than 256 levels (line 1)",
            id="yaml-flow",
        ),
        pytest.param(
            b"a:\n" + b"".join(b"  " * i + b"  b:\n" for i in range(300)),
            YAML_URI,
            "nested deeper than 256 levels (line 257)",
            id="yaml-block",
        ),
    ],
)
def test_nesting_too_deep_is_a_document_error(raw: bytes, uri: str, message: str) -> None:
    """JSON may nest as deep as orjson reads (1024); YAML is held to MAX_DEPTH before composing."""
    assert error_of(raw, uri) == f"{uri}: {message}"


def test_nesting_up_to_max_depth_is_read() -> None:
    """YAML may hold MAX_DEPTH containers (the top-level one included); JSON more."""
    innermost: Any = []
    for _ in range(MAX_DEPTH):
        innermost = [innermost]
    assert parse(nested_lists(MAX_DEPTH + 1), JSON_URI) == innermost
    assert parse(b"a: " + nested_lists(MAX_DEPTH - 1) + b"\n", YAML_URI) == {"a": innermost[0][0]}


def test_very_deep_yaml_is_a_document_error_not_a_crash() -> None:
    """Run in a child process, because today this kills the interpreter."""
    code = textwrap.dedent(
        """
        from toolbridge.openapi.documents import parse
        from toolbridge.errors import DocumentError
        try:
            parse(b"a: " + b"[" * 100000 + b"]" * 100000, "https://example.com/deep.yaml")
        except DocumentError as exc:
            print(exc)
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    assert (done.returncode, done.stdout.strip()) == (
        0,
        "https://example.com/deep.yaml: nested deeper than 256 levels (line 1)",
    )


@pytest.mark.parametrize(
    ("raw", "uri", "message"),
    [
        (
            b'{"a": [}',
            JSON_URI,
            "https://example.com/openapi.json: is not valid JSON: "
            "Expecting value: line 1 column 8 (char 7)",
        ),
        (
            b"a: [1, 2\n",
            YAML_URI,
            "https://example.com/openapi.yaml: is not valid YAML at line 2, column 1: "
            "did not find expected ',' or ']'",
        ),
        (
            b"a:\n\tb: 1\n",
            YAML_URI,
            "https://example.com/openapi.yaml: is not valid YAML at line 2, column 1: "
            "found character that cannot start any token",
        ),
        (
            b"x: !!python/object/apply:os.system [echo hi]\n",
            YAML_URI,
            "https://example.com/openapi.yaml: is not valid YAML at line 1, column 4: "
            "could not determine a constructor for the tag "
            "'tag:yaml.org,2002:python/object/apply:os.system'",
        ),
        (
            b"x: !custom 1\n",
            YAML_URI,
            "https://example.com/openapi.yaml: is not valid YAML at line 1, column 4: "
            "could not determine a constructor for the tag '!custom'",
        ),
    ],
)
def test_unparsable_documents(raw: bytes, uri: str, message: str) -> None:
    assert error_of(raw, uri) == message


def test_flow_style_yaml_mapping_is_yaml() -> None:
    raw = b'{openapi: 3.0.3, info: {title: t, version: "1"}, paths: {}}\n'
    assert parse(raw, YAML_URI) == {
        "openapi": "3.0.3",
        "info": {"title": "t", "version": "1"},
        "paths": {},
    }


# -- the on-disk parse cache --------------------------------------------------------------

RAW = b"openapi: 3.0.3\ninfo: {title: Cached, version: '1'}\npaths: {}\n"
PARSED = {"openapi": "3.0.3", "info": {"title": "Cached", "version": "1"}, "paths": {}}


def test_parsed_yaml_is_cached_under_the_hash_of_its_bytes(tmp_path: Path) -> None:
    assert parse(RAW, "https://a.example/one.yaml", tmp_path) == PARSED
    key = hashlib.sha256(CACHE_VERSION + RAW).hexdigest()
    assert [p.name for p in tmp_path.iterdir()] == [f"{key}.json"]


def test_cache_entry_is_reused_for_the_same_bytes_anywhere(tmp_path: Path) -> None:
    """The same bytes under another URI come from the cache (here: a planted entry)."""
    parse(RAW, "https://a.example/one.yaml", tmp_path)
    (entry,) = tmp_path.iterdir()
    entry.write_bytes(b'{"data": {"from": "the cache"}, "duplicates": []}')
    assert parse(RAW, "https://b.example/two.yaml", tmp_path) == {"from": "the cache"}
    changed = RAW + b"# one more byte\n"
    assert parse(changed, "https://a.example/one.yaml", tmp_path) == PARSED
    assert len(list(tmp_path.iterdir())) == 2


@pytest.mark.parametrize(
    "planted", [b"{not json", b'{"data": 1}', b'{"data": 1, "duplicates": [{"key": "x"}]}', b"[]"]
)
def test_corrupt_cache_entry_is_ignored(tmp_path: Path, planted: bytes) -> None:
    parse(RAW, YAML_URI, tmp_path)
    (entry,) = tmp_path.iterdir()
    entry.write_bytes(planted)
    assert parse(RAW, YAML_URI, tmp_path) == PARSED


def test_json_is_not_cached(tmp_path: Path) -> None:
    assert parse(b'{"openapi": "3.1.0"}', JSON_URI, tmp_path) == {"openapi": "3.1.0"}
    assert list(tmp_path.iterdir()) == []


def test_unwritable_cache_dir_is_no_error(tmp_path: Path) -> None:
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("")
    assert parse(RAW, YAML_URI, not_a_dir) == PARSED


def test_store_uses_the_cache_dir(tmp_path: Path) -> None:
    document = tmp_path / "openapi.yaml"
    document.write_bytes(RAW)
    cache = tmp_path / "cache"
    assert DocumentStore(cache_dir=cache).get(document.as_uri()).data == PARSED
    key = hashlib.sha256(CACHE_VERSION + RAW).hexdigest()
    assert [p.name for p in cache.iterdir()] == [f"{key}.json"]


def test_cached_document_equals_the_parsed_one(tmp_path: Path) -> None:
    raw = b"maximum: .inf\nminimum: -.inf\nd: 1\n"
    fresh = parse(raw, YAML_URI, tmp_path)
    assert fresh == {"maximum": float("inf"), "minimum": float("-inf"), "d": 1}
    assert parse(raw, YAML_URI, tmp_path) == fresh


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({"TOOLBRIDGE_CACHE_DIR": "/srv/cache"}, Path("/srv/cache")),
        ({"TOOLBRIDGE_CACHE_DIR": "", "XDG_CACHE_HOME": "/xdg"}, None),
        ({"XDG_CACHE_HOME": "/xdg"}, Path("/xdg/toolbridge")),
        ({}, Path.home() / ".cache" / "toolbridge"),
    ],
)
def test_cache_dir_from_environment(environ: dict[str, str], expected: Path | None) -> None:
    assert cache_dir_from(environ) == expected


# -- the store: files, errors, reading once -----------------------------------------------


def test_missing_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(DocumentError) as caught:
        DocumentStore(cache_dir=None).get((tmp_path / "missing.yaml").as_uri())
    assert str(caught.value) == "missing.yaml: no such file"
    assert caught.value.location == "missing.yaml"


def test_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "specs").mkdir()
    with pytest.raises(DocumentError) as caught:
        DocumentStore(cache_dir=None).get((tmp_path / "specs").as_uri())
    assert str(caught.value) == "specs: is a directory, expected an OpenAPI document"


def test_unsupported_scheme() -> None:
    with pytest.raises(DocumentError) as caught:
        DocumentStore(cache_dir=None).get("ftp://example.com/openapi.yaml")
    assert str(caught.value) == (
        "ftp://example.com/openapi.yaml: unsupported URI scheme 'ftp'; expected a file or URL"
    )


def test_too_large_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "big.yaml").write_bytes(b"a: " + b"x" * 100 + b"\n")
    with pytest.raises(DocumentError) as caught:
        DocumentStore(cache_dir=None, max_bytes=64).get((tmp_path / "big.yaml").as_uri())
    assert str(caught.value) == "big.yaml: 104 bytes is over the 64 byte limit"


@pytest.mark.parametrize("device", ["/dev/zero", "fifo"])
def test_a_file_that_is_no_regular_file_is_refused_not_read(tmp_path: Path, device: str) -> None:
    """/dev/zero never ends, a FIFO may never answer (no writer: opening it waits for one):
    neither is read, and neither holds the reader."""
    path = Path(device)
    if device == "fifo":
        path = tmp_path / "spec.yaml"
        os.mkfifo(path)
    raised: list[BaseException] = []

    def read() -> None:
        try:
            DocumentStore(cache_dir=None).get(path.as_uri())
        except BaseException as exc:
            raised.append(exc)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    reader.join(timeout=10)
    held = reader.is_alive()
    if held:  # held by the FIFO: a writer lets it go
        os.close(os.open(path, os.O_WRONLY | os.O_NONBLOCK))
        reader.join()
    assert (held, [str(e).partition(": ")[2] for e in raised]) == (
        False,
        ["is not a regular file, expected an OpenAPI document"],
    )


def test_each_document_is_read_once(tmp_path: Path) -> None:
    """Later changes to the file are not seen, and a failure is remembered too."""
    path = tmp_path / "openapi.yaml"
    path.write_bytes(RAW)
    store = DocumentStore(cache_dir=None)
    first = store.get(path.as_uri() + "#/paths")
    path.write_bytes(b"changed: true\n")
    assert store.get(path.as_uri()) is first
    assert first.uri == path.as_uri()
    assert store.loaded == [path.as_uri()]

    missing = tmp_path / "later.yaml"
    with pytest.raises(DocumentError) as caught:
        store.get(missing.as_uri())
    missing.write_bytes(RAW)
    with pytest.raises(DocumentError) as again:
        store.get(missing.as_uri())
    assert again.value is caught.value


def test_urls_are_read_with_the_given_fetcher() -> None:
    fetched: list[str] = []

    def fetch(url: str) -> bytes:
        fetched.append(url)
        return RAW

    store = DocumentStore(fetch=fetch, cache_dir=None)
    assert store.get("https://example.com/openapi.yaml#/info").data == PARSED
    assert store.get("https://example.com/openapi.yaml").data == PARSED
    assert fetched == ["https://example.com/openapi.yaml"]


# -- not an OpenAPI document --------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "expected an OpenAPI document (a mapping) at the top level"),
        ("- openapi\n- 3.0.3\n", "expected an OpenAPI document (a mapping) at the top level"),
        (
            "title: not an API\n",
            "expected a top-level 'openapi' (3.x) or 'swagger' (2.0) version field",
        ),
        ("swagger: '1.2'\n", "swagger '1.2'; expected '2.0'"),
        ("openapi: 4.0.0\n", "openapi '4.0.0'; expected 2.0, 3.0.x or 3.1.x"),
        ("openapi: 2.0.0\n", "openapi '2.0.0'; expected 2.0, 3.0.x or 3.1.x"),
    ],
)
def test_not_an_openapi_document(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str, message: str
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "doc.yaml").write_text(text)
    with pytest.raises(DocumentError) as caught:
        convert(DocumentStore(cache_dir=None), (tmp_path / "doc.yaml").as_uri())
    assert str(caught.value) == f"doc.yaml: {message}"


@pytest.mark.parametrize(
    ("text", "version", "notes"),
    [
        ("swagger: 2.0\ninfo: {title: t, version: '1'}\npaths: {}\n", "2.0", ()),
        (
            "openapi: 3.2.0\ninfo: {title: t, version: '1'}\npaths: {}\n",
            "3.2.0",
            (Note(kind="version", message="OpenAPI 3.2.0 is read as 3.1"),),
        ),
    ],
)
def test_versions_read_with_tolerance(
    tmp_path: Path, text: str, version: str, notes: tuple[Note, ...]
) -> None:
    """An unquoted `swagger: 2.0` (a YAML float) is 2.0; a newer 3.x is read as 3.1."""
    (tmp_path / "doc.yaml").write_text(text)
    conversion = convert(DocumentStore(cache_dir=None), (tmp_path / "doc.yaml").as_uri())
    assert (conversion.spec_version, conversion.notes, conversion.tools) == (version, notes, ())


# -- locations and pointers ---------------------------------------------------------------


def test_location_to_uri(tmp_path: Path) -> None:
    assert location_to_uri("https://example.com/a.yaml") == "https://example.com/a.yaml"
    assert location_to_uri("HTTP://example.com/a.yaml") == "HTTP://example.com/a.yaml"
    assert location_to_uri("file:///srv/a.yaml") == "file:///srv/a.yaml"
    assert location_to_uri("/srv/api/openapi.yaml") == "file:///srv/api/openapi.yaml"
    assert location_to_uri("../b.yaml", base=tmp_path / "c") == (tmp_path / "b.yaml").as_uri()
    assert location_to_uri("my api.yaml", base=Path("/srv")) == "file:///srv/my%20api.yaml"


def test_uri_to_display(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert uri_to_display((tmp_path / "specs" / "a b.yaml").as_uri()) == "specs/a b.yaml"
    assert uri_to_display("file:///elsewhere/a.yaml") == "/elsewhere/a.yaml"
    assert uri_to_display("https://example.com/a.yaml") == "https://example.com/a.yaml"


POINTED = {
    "paths": {"/pets/{id}": {"get": {"x": 1}}},
    "a/b": {"c~d": [10, 20, {"e": None}]},
}


@pytest.mark.parametrize(
    ("pointer", "value"),
    [
        ("", POINTED),
        ("/", POINTED),
        ("/paths/~1pets~1{id}/get", {"x": 1}),
        ("/paths/~1pets~1%7Bid%7D/get/x", 1),
        ("/a~1b/c~0d/1", 20),
        ("/a~1b/c~0d/2/e", None),
    ],
)
def test_resolve_pointer(pointer: str, value: Any) -> None:
    assert resolve_pointer(POINTED, pointer) == value


@pytest.mark.parametrize(
    "pointer", ["paths", "/nope", "/a~1b/c~0d/3", "/a~1b/c~0d/-1", "/a~1b/c~0d/x", "/paths/x/y"]
)
def test_resolve_pointer_leading_nowhere(pointer: str) -> None:
    with pytest.raises(KeyError):
        resolve_pointer(POINTED, pointer)
