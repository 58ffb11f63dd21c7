"""Reading OpenAPI documents: files or http(s) URLs, JSON or YAML, and the files their `$ref`s name.

YAML is read as real documents contain it: the YAML 1.2 core scalars (so `2020-01-01` stays a
string and `on:` stays a key), integer response codes as string keys, anchors within limits
against alias bombs, and deep nesting as a clear error (`yaml_limits`). URLs are read by a
`Fetcher` (`fetching`: deadlines, destinations, the server's transport). Parsed YAML is cached
on disk, keyed by the hash of its bytes, because parsing YAML costs about 90 times as much as
parsing JSON.
Nothing here knows what OpenAPI means; `convert.py` does.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import re
import stat
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urldefrag, urlsplit

import orjson
import yaml

from toolbridge.errors import DocumentError
from toolbridge.file_stamps import MISSING, FileStamp, stamp_of
from toolbridge.openapi.cache_files import read_own
from toolbridge.openapi.duplicate_keys import DuplicateKey, duplicates_from_json
from toolbridge.openapi.fetching import (
    FETCH_TIMEOUT,
    MAX_DOCUMENT_BYTES,
    Fetcher,
    http_fetcher,
)
from toolbridge.openapi.json_keys import json_duplicates
from toolbridge.openapi.yaml_limits import MAX_DEPTH, check_yaml_shape
from toolbridge.yaml_loader import YamlLoader

logger = logging.getLogger(__name__)

MAX_EXPANDED_NODES = 20_000_000
"""Values reachable through YAML aliases, counted with repeats: the budget against alias bombs."""
CACHE_VERSION = b"toolbridge-yaml-4"
"""Part of every cache key: a new version when what a parse refuses or keeps changes (alias
limits; keys given twice, and which)."""


@dataclass(frozen=True, slots=True)
class Document:
    """A parsed document and the URI it was read from (`file:///...` or `http(s)://...`)."""

    uri: str
    data: Any
    sha256: str = ""
    """Of the bytes as read: what `on_change: hold` compares."""
    duplicate_keys: tuple[DuplicateKey, ...] = ()
    """Keys the document gives twice in one mapping (`yaml_keys`, `json_keys`); which value is
    in `data` each says."""


def location_to_uri(location: str, base: Path | None = None) -> str:
    """Turn a config or command-line location (path or URL) into an absolute URI."""
    if re.match(r"^https?://", location, re.IGNORECASE):
        return location
    if location.startswith("file://"):
        return location
    path = Path(location)
    if not path.is_absolute():
        path = (base or Path.cwd()) / path
    return Path(os.path.abspath(path)).as_uri()  # not resolve(): keep the name the user gave


def uri_to_path(uri: str) -> Path:
    """The path of a `file://` URI."""
    return Path(unquote(urlsplit(uri).path))


def uri_to_display(uri: str) -> str:
    """A URI as a person would write it: file URIs become paths relative to the working dir."""
    if uri.startswith("file://"):
        path = uri_to_path(uri)
        try:
            return str(path.relative_to(Path.cwd()))
        except ValueError:
            return str(path)
    return uri


def cache_dir_from(environ: dict[str, str] | os._Environ[str]) -> Path | None:
    """Where parsed YAML is cached: TOOLBRIDGE_CACHE_DIR, else the user's cache folder."""
    explicit = environ.get("TOOLBRIDGE_CACHE_DIR")
    if explicit is not None:
        return Path(explicit) if explicit else None
    base = environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "toolbridge"


class DocumentStore:
    """Reads documents by URI, once each: the root document and every file its `$ref`s name."""

    def __init__(
        self,
        *,
        fetch: Fetcher | None = None,
        cache_dir: Path | None = None,
        max_bytes: int = MAX_DOCUMENT_BYTES,
        fetch_timeout: float = FETCH_TIMEOUT,
    ) -> None:
        """`max_bytes` and `fetch_timeout` bound each document (also those a server's own
        fetcher reads, which the registry builds with these limits)."""
        self._fetch = fetch or http_fetcher(max_bytes=max_bytes, timeout=fetch_timeout)
        self.fetches_itself = fetch is not None
        """A fetcher was given (a test's, or a server's own): the registry keeps it rather than
        build one with the server's transport and destinations."""
        self.cache_dir = cache_dir
        self.max_bytes = self._max_bytes = max_bytes
        self.fetch_timeout = fetch_timeout
        self._documents: dict[str, Document] = {}
        self._failures: dict[str, DocumentError] = {}
        self._touched: set[str] | None = None
        self._sha256: dict[str, str] = {}
        """Of every document read (parsed or only fingerprinted), by URI."""
        self._fetched: dict[str, bytes] = {}
        """Bytes fetched to fingerprint a URL, kept until it is parsed: fetched once."""
        self._stamps: dict[Path, FileStamp] = {}
        """Of every file read, as it was then (what a watcher starts from)."""

    def get(self, uri: str) -> Document:
        """The document at `uri` (without fragment); raises DocumentError if it cannot be read."""
        if "#" in uri:
            uri = urldefrag(uri)[0]
        if self._touched is not None:
            self._touched.add(uri)
        if uri in self._documents:
            return self._documents[uri]
        if uri in self._failures:
            raise self._failures[uri]
        try:
            raw = self._fetched.pop(uri, None) or self._read(uri)
            data, duplicates = parse_document(raw, uri, self.cache_dir)
            document = Document(uri, data, hashlib.sha256(raw).hexdigest(), duplicates)
        except DocumentError as exc:
            self._failures[uri] = exc
            raise
        self._documents[uri] = document
        self._sha256[uri] = document.sha256
        return document

    def fingerprint(self, uri: str) -> str:
        """The sha256 of the document at `uri` as it reads now, without parsing it.

        Raises DocumentError if it cannot be read. A URL's bytes are kept for a `get` that
        may follow, so it is fetched once.
        """
        uri = urldefrag(uri)[0]
        if self._touched is not None:
            self._touched.add(uri)
        found = self._sha256.get(uri)
        if found is not None:
            return found
        if uri in self._failures:
            raise self._failures[uri]
        try:
            raw = self._read(uri)
        except DocumentError as exc:
            self._failures[uri] = exc
            raise
        if urlsplit(uri).scheme.lower() in ("http", "https"):
            self._fetched[uri] = raw
        found = self._sha256[uri] = hashlib.sha256(raw).hexdigest()
        return found

    def sha256(self, uri: str) -> str | None:
        """The sha256 of the document at `uri` as it was read, if it was."""
        return self._sha256.get(urldefrag(uri)[0])

    @property
    def loaded(self) -> list[str]:
        return list(self._documents)

    def adopt(self, other: DocumentStore, uris: Iterable[str]) -> None:
        """Take what `other` read of `uris` (parsed, fingerprinted or fetched, or failed) as
        read here: a server's documents fetched in a store of its own (under its transport and
        destinations) are then found here, by `check`'s validation, and never fetched again
        under this store's rules. What this store read itself stays."""
        for uri in uris:
            if uri in other._documents:
                self._documents.setdefault(uri, other._documents[uri])
            if uri in other._failures:
                self._failures.setdefault(uri, other._failures[uri])
            if uri in other._sha256:
                self._sha256.setdefault(uri, other._sha256[uri])
            if uri in other._fetched:
                self._fetched.setdefault(uri, other._fetched[uri])
        for path, read in other._stamps.items():
            self._stamps.setdefault(path, read)

    def release(self) -> None:
        """Let go of the parsed documents (what was read, and their digests, are kept): a
        large config's documents need not all be held while its last source converts."""
        self._documents.clear()
        self._fetched.clear()

    @contextmanager
    def tracking(self) -> Iterator[set[str]]:
        """Collect the URIs read (or asked for again) inside the block: one source's documents."""
        touched: set[str] = set()
        outer, self._touched = self._touched, touched
        try:
            yield touched
        finally:
            if outer is not None:
                outer |= touched  # in place: the enclosing block holds this very set
            self._touched = outer

    def digest(self, uris: Iterable[str]) -> str:
        """One sha256 over the bytes of these documents (those that were read), by URI."""
        h = hashlib.sha256()
        for uri in sorted(uris):
            sha256 = self._sha256.get(uri)
            if sha256 is not None:
                h.update(f"{uri}\n{sha256}\n".encode())
        return h.hexdigest()

    def stamps(self, paths: Iterable[Path]) -> tuple[FileStamp, ...]:
        """How each of these files was when it was read (MISSING: it was not there)."""
        return tuple(self._stamps.get(path, MISSING) for path in paths)

    def _read(self, uri: str) -> bytes:
        scheme = urlsplit(uri).scheme.lower()
        if scheme in ("http", "https"):
            return self._fetch(uri)
        if scheme != "file":
            raise DocumentError(uri, f"unsupported URI scheme {scheme!r}; expected a file or URL")
        path = Path(unquote(urlsplit(uri).path))
        try:
            # Opened without waiting: a FIFO with no writer would block the open itself, before
            # its kind could be told (a regular file reads as it would anyway).
            flags = os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC
            with os.fdopen(os.open(path, flags), "rb") as handle:
                info = os.fstat(handle.fileno())
                self._stamps[path] = stamp_of(info)
                if not stat.S_ISREG(info.st_mode):  # /dev/zero, a FIFO: endless, or never ends
                    raise DocumentError(
                        uri_to_display(uri), "is not a regular file, expected an OpenAPI document"
                    )
                size = info.st_size
                if size <= self._max_bytes:
                    # Its size and one byte more (one read, no larger buffer): if it grew
                    # meanwhile, the rest up to one past the limit.
                    data = handle.read(size + 1)
                    if len(data) > size:
                        data += handle.read(self._max_bytes + 1 - len(data))
                    size = len(data)
                if size > self._max_bytes:
                    raise DocumentError(
                        uri_to_display(uri),
                        f"{size} bytes is over the {self._max_bytes} byte limit",
                    )
                return data
        except FileNotFoundError as exc:
            raise DocumentError(uri_to_display(uri), "no such file") from exc
        except IsADirectoryError as exc:
            raise DocumentError(
                uri_to_display(uri), "is a directory, expected an OpenAPI document"
            ) from exc
        except OSError as exc:
            raise DocumentError(uri_to_display(uri), f"could not be read: {exc.strerror}") from exc


def parse(raw: bytes, uri: str, cache_dir: Path | None = None) -> Any:
    """Parse JSON or YAML bytes into plain JSON values (string keys, no dates, no aliases)."""
    return parse_document(raw, uri, cache_dir)[0]


Parsed = tuple[Any, tuple[DuplicateKey, ...]]
"""A document's values, and the keys it gives twice in one mapping (`yaml_keys`, `json_keys`)."""


def parse_document(raw: bytes, uri: str, cache_dir: Path | None = None) -> Parsed:
    """`parse`, and the keys the document gives twice in one mapping."""
    display = uri_to_display(uri)
    text_start = raw.lstrip()[:1]
    if text_start in (b"{", b"["):
        try:
            data = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            if "recursion" in str(exc):
                raise DocumentError(display, "nested too deeply (over 1024 levels)") from exc
            # orjson refuses integers past 64 bits; and `{a: 1}` is YAML, not JSON.
            return _parse_json_slowly(raw, display, cache_dir)
        return data, json_duplicates(raw)
    return _parse_yaml(raw, display, cache_dir)


def _parse_json_slowly(raw: bytes, display: str, cache_dir: Path | None) -> Parsed:
    try:
        data = json.loads(raw)
    except RecursionError as exc:
        raise DocumentError(display, "nested too deeply") from exc
    except ValueError as exc:
        try:
            return _parse_yaml(raw, display, cache_dir)
        except DocumentError:
            raise DocumentError(display, f"is not valid JSON: {exc}") from exc
    return _Normalizer(display).run(data), json_duplicates(raw)


def _parse_yaml(raw: bytes, display: str, cache_dir: Path | None) -> Parsed:
    key = hashlib.sha256(CACHE_VERSION + raw).hexdigest()
    cached = _cache_read(cache_dir, key)
    if cached is not None:
        return cached
    try:
        duplicates = check_yaml_shape(raw, display)
        loaded = yaml.load(raw, Loader=YamlLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise DocumentError(display, f"is not valid YAML{where}: {exc.problem}") from exc
    except yaml.YAMLError as exc:
        raise DocumentError(display, f"is not valid YAML: {exc}") from exc
    except RecursionError as exc:
        raise DocumentError(display, f"nested deeper than {MAX_DEPTH} levels") from exc
    normalizer = _Normalizer(display)
    data = normalizer.run(loaded)
    if normalizer.json_safe:
        _cache_write(cache_dir, key, {"data": data, "duplicates": duplicates})
    return data, duplicates


class _Normalizer:
    """Turn what PyYAML built into plain JSON values, refusing bombs, cycles and deep nesting."""

    def __init__(self, display: str) -> None:
        self.display = display
        self.done: dict[int, tuple[Any, int]] = {}
        self.active: set[int] = set()
        self.expanded = 0
        self.json_safe = True
        """False when a value JSON cannot hold exactly (NaN, infinities): then no caching."""

    def run(self, value: Any) -> Any:
        return self._walk(value, 0, "")[0]

    def _walk(self, value: Any, depth: int, where: str) -> tuple[Any, int]:
        if isinstance(value, dict | list):
            ident = id(value)
            if ident in self.done:
                result, size = self.done[ident]
                self._count(size)
                return result, size
            if ident in self.active:
                raise DocumentError(self.display, f"an alias refers to itself at {where or '/'}")
            if depth > MAX_DEPTH:
                raise DocumentError(
                    self.display, f"nested deeper than {MAX_DEPTH} levels at {where[:200]}"
                )
            self.active.add(ident)
            size = 1
            out: Any
            if isinstance(value, dict):
                out = {}
                for k, v in value.items():
                    key = _key_text(k)
                    out[key], n = self._walk(v, depth + 1, f"{where}/{key}")
                    size += n
            else:
                out = []
                for i, v in enumerate(value):
                    item, n = self._walk(v, depth + 1, f"{where}/{i}")
                    out.append(item)
                    size += n
            self.active.discard(ident)
            self.done[ident] = (out, size)
            self._count(1)
            return out, size
        self._count(1)
        if isinstance(value, int) and not isinstance(value, bool) and not -(2**63) <= value < 2**64:
            return float(value), 1
        if isinstance(value, float) and not math.isfinite(value):
            self.json_safe = False
        if isinstance(value, bytes):  # !!binary
            return value.decode("latin-1"), 1
        return value, 1

    def _count(self, n: int) -> None:
        self.expanded += n
        if self.expanded > MAX_EXPANDED_NODES:
            raise DocumentError(
                self.display,
                f"expands to more than {MAX_EXPANDED_NODES} values through YAML aliases "
                "(an alias bomb?)",
            )


def _key_text(key: Any) -> str:
    if isinstance(key, str):
        return key
    if isinstance(key, bool):
        return "true" if key else "false"
    if key is None:
        return "null"
    return str(key)


MAX_CACHE_ENTRY_BYTES = 256 * 1024 * 1024
"""A parse cache entry larger than this is not read (a document is at most 64 MiB)."""


def _cache_read(cache_dir: Path | None, key: str) -> Parsed | None:
    """A parse cache entry, or None when there is none or it is not one of ours: it is read
    only when it is this user's own file (`cache_files`), and only as `_cache_write` writes
    it (a JSON object of the data and the keys given twice, each checked)."""
    if cache_dir is None:
        return None
    raw = read_own(cache_dir / f"{key}.json", MAX_CACHE_ENTRY_BYTES, "document cache")
    if raw is None:
        return None
    try:
        entry = orjson.loads(raw)
        if not isinstance(entry, dict) or set(entry) != {"data", "duplicates"}:
            raise ValueError("expected an object of data and duplicates")
        return entry["data"], duplicates_from_json(entry["duplicates"])
    except (orjson.JSONDecodeError, ValueError):
        return None  # written by an older version, or torn: parsed again and rewritten


def _cache_write(cache_dir: Path | None, key: str, data: Any) -> None:
    if cache_dir is None:
        return
    try:
        payload = orjson.dumps(data)
    except TypeError:
        return  # a value JSON cannot hold (NaN is fine, but e.g. huge floats): skip the cache
    try:
        cache_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=cache_dir, suffix=".tmp")  # readable by us only
        with os.fdopen(fd, "wb") as handle:
            handle.write(payload)
        os.replace(tmp, cache_dir / f"{key}.json")
    except OSError as exc:
        logger.debug("cannot write the document cache in %s: %s", cache_dir, exc)


def resolve_pointer(data: Any, pointer: str) -> Any:
    """Follow a JSON pointer (`/components/schemas/Pet`); raises KeyError when it leads nowhere."""
    if pointer in ("", "/"):
        return data
    if not pointer.startswith("/"):
        raise KeyError(pointer)
    current = data
    for raw_token in pointer[1:].split("/"):
        token = unquote(raw_token).replace("~1", "/").replace("~0", "~")
        if isinstance(current, dict):
            if token not in current:
                raise KeyError(pointer)
            current = current[token]
        elif isinstance(current, list):
            if not token.isdigit() or int(token) >= len(current):
                raise KeyError(pointer)
            current = current[int(token)]
        else:
            raise KeyError(pointer)
    return current
