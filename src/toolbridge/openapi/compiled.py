"""Compiled conversions kept on disk, so that a start with unchanged documents converts nothing.

An entry holds one server's `Conversion`, packed (`packing`), in `<cache dir>/compiled/`, the
parse cache's folder. It is found by a key over what shapes the conversion: the converter's
version (a digest of the source of the modules that convert, so any change to them misses),
the document's URI and the server's `id`, `base_url`, `prefix`, `include`, `exclude` and
destination policy (its origins and `allowed_hosts`). It
lists every document the conversion read with its sha256, and is used only when each of them
still reads the same; otherwise the document is converted and the entry written anew. So an
entry is keyed by the documents' bytes, the converter and the config, as a conversion is.

What a read trusts: a file in the cache folder that this user owns and nobody else may write
(anyone who can write there could otherwise choose our tools; `cache_files`). Such a file is
still checked:
its key, every document's sha256, and a sha256 of the packed conversion must match before it
is unpacked, and unpacking builds only plain values and our own dataclasses (`packing`).
Anything else (another user's file, a torn or foreign entry, one from another version) is
ignored, and the document converted as if there were no cache. Writing is best effort: a
cache folder that cannot be written only costs the next start its conversion.

Whether cached or not, what is served is the unpacked conversion: equal parts shared, so a
cold start and a warm one serve the same compact objects.

A document whose URL carries a secret (user info, a query value named like a key or token:
`?api_key=`; `secret_names.url_secrets`), or a server whose `base_url` does, is never compiled
to disk: its entry would hold the URL (the conversion's URI, its notes' places, its tools'
base URL), and a secret the gateway masks everywhere else would sit in the cache folder. Such
a source converts at every start, as without a cache.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import tempfile
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import orjson

from toolbridge import __version__
from toolbridge.errors import DocumentError
from toolbridge.openapi.cache_files import read_own
from toolbridge.openapi.convert import Conversion, Selection, convert
from toolbridge.openapi.documents import DocumentStore
from toolbridge.openapi.packing import FORMAT, PackError, pack, unpack
from toolbridge.secret_names import url_secrets
from toolbridge.upstream.destinations import Destinations

logger = logging.getLogger(__name__)

FOLDER = "compiled"
"""The entries' folder, under the parse cache's (`TOOLBRIDGE_CACHE_DIR`)."""
MAGIC = b"toolbridge-compiled\n"
MAX_ENTRY_BYTES = 256 * 1024 * 1024
"""Larger entries are neither written nor read (the whole corpus packs into about 10 MB)."""
MAX_ENTRIES = 256
"""Entries the folder keeps: writing one past this removes the least recently used (by
modification time; a read that uses an entry marks it). A document edited in place replaces
its own entry, but one read from a passing place (an admin API write's trial load, each serving
process's folder of registered documents) leaves an entry no later start reads: thousands, over
months, without a bound."""
CONVERTER_SOURCES = (
    "__init__.py",
    "errors.py",
    "hosts.py",
    "names.py",
    "schemas.py",
    "tools.py",
    "yaml_loader.py",
    "upstream/destinations.py",
    "upstream/credentials.py",  # which apiKey schemes a request can carry (a note)
    "upstream/static_credentials.py",
    "openapi",
)
"""What a conversion depends on, relative to the package: the converter's version is their
digest (with `packing.FORMAT`)."""


@dataclass(frozen=True, slots=True)
class Shape:
    """What, besides its documents, shapes a server's conversion (`convert`'s options), and so
    its entry's key."""

    source: str = "api"
    base_url: str | None = None
    prefix: str = ""
    include: Selection | None = None
    exclude: Selection | None = None
    destinations: Destinations | None = None
    supplied: frozenset[tuple[str, str]] = frozenset()
    """Where the server's config sends values itself (its `headers`, its `auth`'s key)."""


def convert_cached(store: DocumentStore, uri: str, shape: Shape = Shape()) -> Conversion:
    """`convert(store, uri, ...)` with `shape`'s options, from the compiled cache when its
    documents are unchanged.

    The destination policy is part of the key: the documents an entry lists were each fetched
    under it, so they are read again (to compare digests) only under the same policy.
    """
    key = _key(uri, shape)
    folder = store.cache_dir / FOLDER if store.cache_dir is not None else None
    if folder is not None and key:
        found = _read(folder / f"{key}.bin", key, store)
        if found is not None:
            return found
    with store.tracking() as touched:
        conversion = convert(
            store,
            uri,
            source=shape.source,
            base_url=shape.base_url,
            prefix=shape.prefix,
            include=shape.include,
            exclude=shape.exclude,
            destinations=shape.destinations,
            supplied=shape.supplied,
        )
    try:
        packed = pack(conversion)
    except PackError as exc:
        logger.debug("%s: not compiled (%s)", shape.source, exc)
        return conversion
    if folder is not None and key and not any(map(_holds_secret, touched)):
        read = {uri: sha256 for uri in touched if (sha256 := store.sha256(uri)) is not None}
        missing = sorted(touched - read.keys())  # referred to, but could not be read
        _write(folder, key, sorted(read.items()), missing, packed)
    return unpack(packed)


def _holds_secret(url: str | None) -> bool:
    """Whether a URL (a document's, a `base_url`) carries a secret (user info, a query value
    named like a key or token)."""
    return url is not None and any(url_secrets(url))


def entry_path(store: DocumentStore, uri: str, shape: Shape) -> Path | None:
    """Where `convert_cached(store, uri, shape)` keeps its entry (None: no cache). Whether the
    entry is there says nothing of whether it is still good: reading it checks that."""
    key = _key(uri, shape)
    if store.cache_dir is None or not key:
        return None
    return store.cache_dir / FOLDER / f"{key}.bin"


def _key(uri: str, shape: Shape) -> str:
    """The entry's key: over the converter's version and everything that shapes the result;
    "" (no entry) without a version, or when the document URL or `base_url` holds a secret."""
    version = converter_version()
    if not version or _holds_secret(uri) or _holds_secret(shape.base_url):
        return ""
    parts = [
        uri,
        shape.source,
        shape.base_url,
        shape.prefix,
        _selection(shape.include),
        _selection(shape.exclude),
        _destinations(shape.destinations),
        sorted(shape.supplied),
    ]
    return hashlib.sha256(orjson.dumps([FORMAT, version, *parts])).hexdigest()


@lru_cache(maxsize=1)
def converter_version() -> str:
    """A digest of the converter's source; "" (no cache) when the source cannot be read."""
    package = Path(__file__).resolve().parents[1]
    h = hashlib.sha256(f"{__version__}\n{FORMAT}\n".encode())
    try:
        for name in CONVERTER_SOURCES:
            path = package / name
            files = sorted(path.rglob("*.py")) if path.is_dir() else [path]
            for file in files:
                h.update(f"{file.relative_to(package).as_posix()}\n".encode())
                h.update(hashlib.sha256(file.read_bytes()).digest())
    except OSError as exc:
        logger.warning("compiled cache off: cannot read the converter's source (%s)", exc)
        return ""
    return h.hexdigest()


def _read(path: Path, key: str, store: DocumentStore) -> Conversion | None:
    """The entry's conversion, if it is ours, whole, and built from the documents as they are."""
    data = read_own(path, MAX_ENTRY_BYTES, "compiled cache")
    if data is None:
        return None
    try:
        if not data.startswith(MAGIC):
            raise PackError("not a compiled entry")
        newline = data.index(b"\n", len(MAGIC))
        head = orjson.loads(memoryview(data)[len(MAGIC) : newline])
        payload = data[newline + 1 :]
        if head["key"] != key:
            raise PackError("an entry of another key")
        for uri, sha256 in head["documents"]:
            if store.fingerprint(uri) != sha256:
                return None  # a document changed: convert it again
        for uri in head["missing"]:
            if _readable(store, uri):
                return None  # a document it refers to is there now
        if hashlib.sha256(payload).hexdigest() != head["sha256"]:
            raise PackError("the packed conversion does not match its sha256")
        with contextlib.suppress(OSError):
            os.utime(path)  # used: the last to be pruned
        return unpack(payload)
    except DocumentError:
        return None  # the conversion will say what is wrong with the document
    except (PackError, orjson.JSONDecodeError, LookupError, TypeError, ValueError) as exc:
        logger.warning("compiled cache: ignoring %s (%s)", path, exc)
        return None


def _readable(store: DocumentStore, uri: str) -> bool:
    try:
        store.fingerprint(uri)
    except DocumentError:
        return False
    return True


def _write(
    folder: Path, key: str, documents: list[tuple[str, str]], missing: list[str], packed: bytes
) -> None:
    if len(packed) > MAX_ENTRY_BYTES:
        logger.info("compiled cache: %d bytes, over the limit of %d", len(packed), MAX_ENTRY_BYTES)
        return
    head = {
        "key": key,
        "documents": documents,
        "missing": missing,
        "sha256": hashlib.sha256(packed).hexdigest(),
    }
    try:
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{key[:16]}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as handle:  # mkstemp: readable and writable by us only
                handle.write(MAGIC + orjson.dumps(head) + b"\n")
                handle.write(packed)
            os.replace(tmp, folder / f"{key}.bin")
        except BaseException:
            os.unlink(tmp)
            raise
    except OSError as exc:
        logger.debug("compiled cache: cannot write in %s: %s", folder, exc)
        return
    _prune(folder)


def _prune(folder: Path) -> None:
    """Remove the least recently used entries past MAX_ENTRIES (another process may be doing
    the same: what is gone already is gone; a reader holding one open reads it whole)."""
    try:
        with os.scandir(folder) as found:
            entries = [(e.stat().st_mtime, e.path) for e in found if e.name.endswith(".bin")]
    except OSError:
        return
    entries.sort()
    for _, path in entries[: max(0, len(entries) - MAX_ENTRIES)]:
        with contextlib.suppress(OSError):
            os.unlink(path)


def _destinations(destinations: Destinations | None) -> list[Any] | None:
    if destinations is None:
        return None
    return [
        sorted(list(origin) for origin in destinations.origins),
        sorted([host, port or 0] for host, port in destinations.hosts),
    ]


def _selection(selection: Selection | None) -> list[list[str]] | None:
    if selection is None:
        return None
    return [
        list(selection.tags),
        list(selection.operations),
        list(selection.methods),
        list(selection.paths),
    ]
