"""The compiled-catalog cache: used while the documents, the converter and the config are what
it was built from, and ignored (the document converted again) for anything else, whole or not.
"""

from __future__ import annotations

import logging
import os
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from toolbridge import cold_start
from toolbridge.config import Config, Server
from toolbridge.openapi import compiled
from toolbridge.openapi.compiled import Shape, convert_cached, entry_path
from toolbridge.openapi.convert import Conversion, convert
from toolbridge.openapi.documents import DocumentStore
from toolbridge.registry import load_server, load_sources

API = """
    openapi: 3.0.3
    info: {title: pets, version: "1"}
    paths:
      /pets:
        get:
          operationId: listPets
          parameters: [{$ref: "common.yaml#/parameters/limit"}]
          responses:
            "200":
              description: ok
              content: {application/json: {schema: {$ref: "common.yaml#/schemas/Pets"}}}
"""
COMMON = """
    parameters:
      limit: {name: limit, in: query, schema: {type: integer}, description: How many.}
    schemas:
      Pets: {type: array, items: {type: string}}
"""


@pytest.fixture
def api(tmp_path: Path) -> Path:
    folder = tmp_path / "api"
    folder.mkdir()
    (folder / "openapi.yaml").write_text(textwrap.dedent(API))
    (folder / "common.yaml").write_text(textwrap.dedent(COMMON))
    return folder / "openapi.yaml"


class Converted:
    """Counts the conversions `convert_cached` makes (a hit makes none)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.count = 0
        monkeypatch.setattr(compiled, "convert", self)

    def __call__(self, *args: Any, **kwargs: Any) -> Conversion:
        self.count += 1
        return convert(*args, **kwargs)


def load(path: Path, cache: Path, **options: Any) -> Conversion:
    return convert_cached(DocumentStore(cache_dir=cache), path.as_uri(), Shape(**options))


def entries(cache: Path) -> list[Path]:
    return sorted((cache / compiled.FOLDER).glob("*.bin"))


def test_a_second_load_converts_nothing_and_gives_the_same_tools(
    api: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    converted = Converted(monkeypatch)
    cold = load(api, tmp_path / "cache")
    warm = load(api, tmp_path / "cache")
    assert converted.count == 1
    assert warm == cold
    assert warm == convert(DocumentStore(cache_dir=None), api.as_uri())
    (entry,) = entries(tmp_path / "cache")
    assert entry.stat().st_mode & 0o777 == 0o600


def test_past_its_bound_the_folder_keeps_the_entries_used_last(
    api: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Documents read from passing places (an admin write's trial, a process's folder of
    registered documents) leave entries no later start reads: the folder keeps MAX_ENTRIES,
    those written or read last."""
    monkeypatch.setattr(compiled, "MAX_ENTRIES", 2)
    converted = Converted(monkeypatch)
    cache = tmp_path / "cache"
    for prefix in ("a", "b"):
        load(api, cache, prefix=prefix)
    (first, second) = entries(cache)
    os.utime(first, (1, 1))  # long ago: both are as old as can be, b read since
    os.utime(second, (1, 1))
    load(api, cache, prefix="b")  # read: used just now
    load(api, cache, prefix="c")  # written: the third; a, used least lately, goes
    assert converted.count == 3
    assert len(entries(cache)) == 2
    load(api, cache, prefix="b")
    load(api, cache, prefix="c")
    load(api, cache, prefix="a")
    assert converted.count == 4


@pytest.mark.parametrize(
    "change",
    ["the document", "a file it refers to", "the prefix", "the server id", "the converter"],
)
def test_a_change_to_what_shapes_the_conversion_converts_again(
    api: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, change: str
) -> None:
    converted = Converted(monkeypatch)
    cache = tmp_path / "cache"
    first = load(api, cache, source="pets")
    options: dict[str, Any] = {"source": "pets"}
    if change == "the document":
        api.write_text(api.read_text().replace("operationId: listPets", "operationId: allPets"))
    elif change == "a file it refers to":
        common = api.parent / "common.yaml"
        common.write_text(common.read_text().replace("How many.", "How many pets."))
    elif change == "the prefix":
        options["prefix"] = "zoo"
    elif change == "the server id":
        options["source"] = "zoo"
    else:
        compiled.converter_version.cache_clear()
        monkeypatch.setattr(compiled, "CONVERTER_SOURCES", (*compiled.CONVERTER_SOURCES, "cli.py"))
    second = load(api, cache, **options)
    compiled.converter_version.cache_clear()
    assert converted.count == 2
    assert second == convert(DocumentStore(cache_dir=None), api.as_uri(), **options)
    assert (second == first) is (change == "the converter")


def test_a_referred_file_that_appears_converts_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A `$ref` to a file that was missing degrades the tool; once the file is there, the
    cached conversion is not used."""
    folder = tmp_path / "api"
    folder.mkdir()
    api = folder / "openapi.yaml"
    api.write_text(textwrap.dedent(API))
    converted = Converted(monkeypatch)
    missing = load(api, tmp_path / "cache")
    assert [n.kind for n in missing.tools[0].notes] == ["unresolved-ref", "unresolved-ref"]
    assert load(api, tmp_path / "cache") == missing
    (folder / "common.yaml").write_text(textwrap.dedent(COMMON))
    found = load(api, tmp_path / "cache")
    assert converted.count == 2
    assert found.tools[0].input_schema["properties"]["limit"] == {
        "type": "integer",
        "description": "How many.",
    }


def _flip_last_byte(entry: Path) -> None:
    data = bytearray(entry.read_bytes())
    data[-1] ^= 0xFF
    entry.write_bytes(bytes(data))


def _foreign(entry: Path) -> None:
    """Another key's entry (the same document with another prefix), under this key's name."""
    uri = (entry.parents[2] / "api" / "openapi.yaml").as_uri()
    cache = entry.parents[1]
    before = set(cache.glob(f"{compiled.FOLDER}/*.bin"))
    convert_cached(DocumentStore(cache_dir=cache), uri, Shape(prefix="other"))
    (other,) = set(cache.glob(f"{compiled.FOLDER}/*.bin")) - before
    other.replace(entry)


@pytest.mark.parametrize(
    ("spoil", "warning"),
    [
        (_flip_last_byte, "does not match its sha256"),
        (lambda e: e.write_bytes(e.read_bytes()[:100]), "ignoring"),
        (lambda e: e.write_bytes(b"not an entry"), "not a compiled entry"),
        (_foreign, "an entry of another key"),
        (lambda e: os.chmod(e, 0o660), "not ours alone"),
        (lambda e: os.chmod(e, 0o606), "not ours alone"),
    ],
    ids=["corrupt", "torn", "not-an-entry", "foreign", "group-writable", "world-writable"],
)
def test_an_entry_that_is_not_whole_or_not_ours_alone_is_ignored(
    api: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    spoil: Any,
    warning: str,
) -> None:
    converted = Converted(monkeypatch)
    cache = tmp_path / "cache"
    first = load(api, cache)
    (entry,) = entries(cache)
    spoil(entry)
    before = converted.count
    with caplog.at_level(logging.WARNING, logger="toolbridge.openapi.compiled"):
        again = load(api, cache)
    assert (converted.count - before, again) == (1, first)
    assert warning in caplog.text
    # ... and the conversion wrote a good entry in its place.
    assert load(api, cache) == first
    assert converted.count - before == 1


def test_without_a_cache_folder_every_load_converts(
    api: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    converted = Converted(monkeypatch)
    store = DocumentStore(cache_dir=None)
    assert convert_cached(store, api.as_uri()) == convert_cached(store, api.as_uri())
    assert converted.count == 2


def test_a_source_loaded_from_the_cache_reports_the_same_digest(api: Path, tmp_path: Path) -> None:
    """The sha256 of the documents read is what a conversion would report (`on_change: hold`)."""
    server = Server(id="pets", spec=str(api))
    cold = load_server(server, DocumentStore(cache_dir=tmp_path / "cache"), tmp_path)
    warm = load_server(server, DocumentStore(cache_dir=tmp_path / "cache"), tmp_path)
    plain = load_server(server, DocumentStore(cache_dir=None), tmp_path)
    assert cold.digest == warm.digest == plain.digest
    assert cold.conversion == warm.conversion


def test_a_missing_document_is_reported_as_without_a_cache(api: Path, tmp_path: Path) -> None:
    server = Server(id="pets", spec=str(api))
    load_server(server, DocumentStore(cache_dir=tmp_path / "cache"), tmp_path)
    api.unlink()
    status = load_server(server, DocumentStore(cache_dir=tmp_path / "cache"), tmp_path)
    assert status.error is not None
    assert status.error.endswith("openapi.yaml: no such file")


def test_a_document_at_a_url_is_fetched_once_per_load_hit_or_miss(tmp_path: Path) -> None:
    """Checking the entry fetches the document; a miss then converts those same bytes."""
    served = {"https://api.example.com/openapi.yaml": textwrap.dedent(API).encode()}
    served["https://api.example.com/common.yaml"] = textwrap.dedent(COMMON).encode()
    fetched: list[str] = []

    def fetch(url: str) -> bytes:
        fetched.append(url)
        return served[url]

    def load_remote() -> Conversion:
        store = DocumentStore(fetch=fetch, cache_dir=tmp_path / "cache")
        return convert_cached(store, "https://api.example.com/openapi.yaml")

    cold = load_remote()
    warm = load_remote()
    served["https://api.example.com/openapi.yaml"] += b"\n# changed\n"
    changed = load_remote()
    assert cold == warm == changed
    assert sorted(fetched) == sorted(list(served) * 3)


def test_an_entry_replaced_by_a_fifo_is_not_waited_on(api: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    warm = load(api, cache)
    entry = entry_path(DocumentStore(cache_dir=cache), api.as_uri(), Shape())
    assert entry is not None
    entry.unlink()
    os.mkfifo(entry)
    assert load(api, cache) == warm


@pytest.mark.parametrize(
    "url",
    [
        "https://api.example.com/openapi.yaml?api_key=canary-5ecret-1",
        "https://api.example.com/openapi.yaml?access_token=canary-5ecret-1&v=2",
        "https://user:canary-5ecret-1@api.example.com/openapi.yaml",
        "https://canary-5ecret-1@api.example.com/openapi.yaml",
        "https://api.example.com/openapi.yaml?api_key=%63anary-5ecret-1",
    ],
)
def test_a_document_whose_url_holds_a_secret_is_never_compiled_to_disk(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, url: str
) -> None:
    """The entry would hold the URL: the source converts every time, and no file of the
    cache folder holds the secret."""
    converted = Converted(monkeypatch)
    cache = tmp_path / "cache"

    def fetch(address: str) -> bytes:
        return textwrap.dedent(API if address == url else COMMON).encode()

    loads = [convert_cached(DocumentStore(fetch=fetch, cache_dir=cache), url) for _ in range(2)]
    written = [p.read_bytes() for p in cache.rglob("*") if p.is_file()]
    assert (loads[0] == loads[1], converted.count, entries(cache)) == (True, 2, [])
    assert [b"canary-5ecret-1" in content for content in written] == [False] * len(written)
    assert entry_path(DocumentStore(cache_dir=cache), url, Shape()) is None


def test_a_server_whose_base_url_holds_a_secret_is_never_compiled_to_disk(
    api: Path, tmp_path: Path
) -> None:
    cache = tmp_path / "cache"
    shape = {"base_url": "https://api.example.com/v1?api_key=canary-5ecret-1"}
    loads = [load(api, cache, **shape) for _ in range(2)]
    written = [p.read_bytes() for p in cache.rglob("*") if p.is_file()]
    assert (loads[0] == loads[1], entries(cache)) == (True, [])
    assert [b"canary-5ecret-1" in content for content in written] == [False] * len(written)


@pytest.mark.skipif(sys.platform != "linux", reason="children are forked on Linux")
@pytest.mark.parametrize("cold_bytes", [1, 10**9])
def test_a_cold_start_of_large_documents_converts_them_in_a_child(
    api: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cold_bytes: int
) -> None:
    """At `COLD_BYTES` of documents without entries, a forked child converts them (its count
    is its own) and writes their entries; the server reads them back, the same tools. Below,
    the server converts them itself."""
    monkeypatch.setattr(cold_start, "COLD_BYTES", cold_bytes)
    config = Config(servers=(Server(id="pets", spec=str(api)),), base_dir=tmp_path)
    converted = Converted(monkeypatch)
    store = DocumentStore(cache_dir=tmp_path / "cache")
    (status,) = load_sources(config, store)
    here = converted.count
    plain = load_server(Server(id="pets", spec=str(api)), DocumentStore(), tmp_path)

    assert here == (0 if cold_bytes == 1 else 1)
    assert len(entries(tmp_path / "cache")) == 1
    assert status.conversion is not None
    assert plain.conversion is not None
    assert status.conversion.tools == plain.conversion.tools
    assert (status.error, status.digest) == (None, plain.digest)


def test_a_child_that_cannot_convert_leaves_it_to_the_server(
    api: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cold_start, "COLD_BYTES", 1)
    monkeypatch.setattr(cold_start, "in_child", lambda work, timeout: None)
    converted = Converted(monkeypatch)
    config = Config(servers=(Server(id="pets", spec=str(api)),), base_dir=tmp_path)
    (status,) = load_sources(config, DocumentStore(cache_dir=tmp_path / "cache"))

    assert (converted.count, status.error) == (1, None)


@pytest.mark.skipif(sys.platform != "linux", reason="children are forked on Linux")
def test_a_child_converts_from_cold_bytes_on() -> None:
    ran: list[int] = []
    below = cold_start.convert_aside(cold_start.COLD_BYTES - 1, lambda: ran.append(1))
    at = cold_start.convert_aside(cold_start.COLD_BYTES, lambda: ran.append(2))
    assert (below, at, ran) == (False, True, [])  # nothing ran here: the child's list is its own
