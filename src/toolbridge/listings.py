"""The answers to list requests, built once per generation and visible set, kept as bytes.

`GET /v1/tools`, `/openapi.json` and MCP `tools/list` answer with every tool a caller may see:
for a large catalog, tens of megabytes of JSON that took a second to render. A generation keeps
(in its `Listings`) each caller's visible set (`Visible`, by principal: the policy's decision
for every tool, made once) and each answer built for a visible set (`Answer`, by surface,
format and options), so that asking again costs a lookup and a write of bytes. A reload makes
a new generation, so nothing kept here outlives the catalog it was built from.

An answer is kept compressed, as zstd (level `ZSTD_LEVEL`: 33 MB of tool JSON become 1.5 MB
in 40 ms) and gzip (what every HTTP client takes), both made while it is built, and
uncompressed too when it is small (`KEEP_IDENTITY_BYTES`); a larger one is decompressed for
each client that takes no compression, so that a big catalog's lists cost little memory. Its
ETag is a digest of the uncompressed bytes: the same list has the same ETag in every
generation and every worker.

A large answer's compressed bytes (`SPILL_BYTES` or more, as a big catalog's `/v1/tools` and
`/openapi.json` are: 6 to 11 MB for the whole corpus) are kept in a file rather than in the
process: an unnamed temporary file (`tempfile.TemporaryFile`, in `TMPDIR` or the system's
temporary folder: made readable by this user only and unlinked at once, so no other process
can open it by name; gone when the answer is dropped or the process ends; what it holds was
redacted before it was compressed, like every answer), read for each request in pieces as
they are sent (`os.pread` of `FILE_PIECE_BYTES`: megabytes the kernel's page cache holds take
a millisecond or two). The kernel keeps such pages as long as it has room and gives them back
when it needs it, as it does for any file; the server's own memory holds only the small
answers. Where no temporary file can be made, the bytes stay in memory.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import tempfile
import weakref
import zlib
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import IO, Literal

import orjson
import zstandard

from toolbridge.bulk import give_back
from toolbridge.forked import in_child
from toolbridge.policy import Principal
from toolbridge.redaction import Secrets
from toolbridge.tools import Tool

Encoding = Literal["zstd", "gzip", "identity"]

ZSTD_LEVEL = 3
GZIP_LEVEL = 1
"""Level 1 keeps the build quick (a quarter second for 33 MB) at a fifth of the size."""
KEEP_IDENTITY_BYTES = 1024 * 1024
"""Answers up to this size are also kept uncompressed; larger ones are decompressed for each
client that takes no compression (about 1 ms per MB)."""
PIECE_BYTES = 1024 * 1024
"""A large answer is decompressed for a client without compression in pieces of this size."""
FILE_PIECE_BYTES = 192 * 1024
"""An answer in a file is read and sent in pieces of this size: under `bulk.LARGE_BLOCK`, so
each comes from (and goes back to) the heap, where the next piece reuses it."""
SPILL_BYTES = 1024 * 1024
"""An answer whose zstd and gzip bytes are this many or more together is kept in a file."""
MAX_ANSWERS = 64
"""Answers kept per generation (by surface, format, options and visible set), least recently
used first out."""
FORK_FROM_TOOLS = 2000
"""Lists of this many tools or more are built in a child process (`forked`): rendering them
churns through far more memory than their answer keeps."""
CHILD_TIMEOUT = 120.0
"""Seconds a child may take to build a list before it is stopped and the list built here."""
MAX_VISIBLE = 1024
"""Visible sets kept per generation (one per principal seen), least recently used first out."""


@dataclass(frozen=True, slots=True)
class Visible:
    """The tools one principal may see in one generation, in catalog order."""

    tools: tuple[Tool, ...]
    key: str
    """A digest of their names: equal for every principal who sees the same tools."""
    scope: str = ""
    """A digest of the scope alone (toolset and mode; the same across generations)."""


class Answer:
    """One list answer: its bytes as zstd and gzip (both made as it was built, kept in a file
    when large), and plain (kept when small, else decompressed for each request that needs
    it)."""

    def __init__(
        self, *, zstd: bytes, gzip: bytes, etag: str, size: int, identity: bytes | None
    ) -> None:
        self.etag = etag
        """A weak validator (`W/"..."`): the same for every content coding of the answer."""
        self.size = size
        """The uncompressed length."""
        self._identity = identity
        self._zstd_length = len(zstd)
        self._gzip_length = len(gzip)
        self._file = _spilled(zstd, gzip) if len(zstd) + len(gzip) >= SPILL_BYTES else None
        if self._file is not None:  # closed (and so gone) with the answer
            weakref.finalize(self, self._file.close)
        self._zstd = zstd if self._file is None else b""
        self._gzip = gzip if self._file is None else b""

    @property
    def zstd(self) -> bytes:
        if self._file is None:
            return self._zstd
        return _read(self._file, 0, self._zstd_length)

    @property
    def gzip(self) -> bytes:
        if self._file is None:
            return self._gzip
        return _read(self._file, self._zstd_length, self._gzip_length)

    @property
    def in_file(self) -> bool:
        """Whether the compressed bytes are kept in a file (not in the process)."""
        return self._file is not None

    def to_bytes(self) -> bytes:
        """The answer as one string of bytes (from a child process to the server)."""
        identity, zstd, gzip = self._identity, self.zstd, self.gzip
        head = orjson.dumps(
            {
                "etag": self.etag,
                "size": self.size,
                "zstd": len(zstd),
                "gzip": len(gzip),
                "identity": None if identity is None else len(identity),
            }
        )
        return b"%d\n%s%s%s%s" % (len(head), head, zstd, gzip, identity or b"")

    @classmethod
    def from_bytes(cls, data: bytes) -> Answer:
        """`to_bytes` undone; ValueError (or KeyError, TypeError) when the bytes are not one."""
        newline = data.index(b"\n", 0, 24)
        start = newline + 1 + int(data[:newline])
        head = orjson.loads(data[newline + 1 : start])
        parts, at = [], start
        for length in (head["zstd"], head["gzip"], head["identity"] or 0):
            parts.append(data[at : at + length])
            at += length
        if at != len(data):
            raise ValueError(f"{len(data) - at} bytes after the answer")
        identity = parts[2] if head["identity"] is not None else None
        return cls(
            zstd=parts[0], gzip=parts[1], etag=head["etag"], size=head["size"], identity=identity
        )

    def ready(self, encoding: Encoding) -> bool:
        """Whether `body(encoding)` is at hand, or is better sent in `pieces` (decompressed,
        or read from the answer's file, a piece at a time)."""
        if encoding == "identity":
            return self._identity is not None
        return self._file is None

    def length(self, encoding: Encoding) -> int:
        """The answer's length in this content coding."""
        if encoding == "zstd":
            return self._zstd_length
        if encoding == "gzip":
            return self._gzip_length
        return self.size

    def pieces(self, encoding: Encoding) -> Iterator[bytes]:
        """The answer in this content coding, in pieces when it has to be decompressed (at most
        `PIECE_BYTES`: a large plain answer is never made whole, only sent) or read from its
        file (`FILE_PIECE_BYTES`: reused memory, never a fresh block of megabytes)."""
        if self.ready(encoding):
            yield self.body(encoding)
            return
        if encoding == "identity":
            reader = zstandard.ZstdDecompressor().read_to_iter(self.zstd, write_size=PIECE_BYTES)
            yield from reader
            return
        assert self._file is not None  # not ready, and compressed: it is in a file
        start = 0 if encoding == "zstd" else self._zstd_length
        length = self.length(encoding)
        for at in range(0, length, FILE_PIECE_BYTES):
            yield _read(self._file, start + at, min(FILE_PIECE_BYTES, length - at))

    def body(self, encoding: Encoding) -> bytes:
        """The answer in this content coding."""
        if encoding == "zstd":
            return self.zstd
        if encoding == "gzip":
            return self.gzip
        if self._identity is not None:
            return self._identity
        return zstandard.ZstdDecompressor().decompress(self.zstd, max_output_size=self.size)


def _spilled(zstd: bytes, gzip: bytes) -> IO[bytes] | None:
    """An unnamed temporary file holding `zstd` then `gzip`; None where none can be written."""
    try:
        file = tempfile.TemporaryFile(prefix="toolbridge-list-")  # noqa: SIM115 (kept open)
    except OSError:
        return None
    try:
        file.write(zstd)
        file.write(gzip)
        file.flush()
    except OSError:  # the disk is full: keep them in memory
        file.close()
        return None
    return file


def _read(file: IO[bytes], offset: int, length: int) -> bytes:
    data = os.pread(file.fileno(), length, offset)
    if len(data) != length:  # someone cut the file short: nothing else can answer
        raise OSError(f"a kept list answer is {len(data)} bytes in its file, not {length}")
    return data


def build_answer(parts: Iterable[bytes]) -> Answer:
    """An answer from its bytes, in parts (say one per tool): compressed as they come, so that
    a large answer is never held whole."""
    digest = hashlib.sha256()
    zstd = zstandard.ZstdCompressor(level=ZSTD_LEVEL).compressobj()
    gzip = zlib.compressobj(GZIP_LEVEL, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    zstd_chunks: list[bytes] = []
    gzip_chunks: list[bytes] = []
    kept: list[bytes] | None = []
    size = 0
    for part in parts:
        digest.update(part)
        zstd_chunks.append(zstd.compress(part))
        gzip_chunks.append(gzip.compress(part))
        size += len(part)
        if kept is not None:
            kept.append(part)
            if size > KEEP_IDENTITY_BYTES:
                kept = None
    zstd_chunks.append(zstd.flush())
    gzip_chunks.append(gzip.flush())
    return Answer(
        zstd=b"".join(zstd_chunks),
        gzip=b"".join(gzip_chunks),
        etag=f'W/"{digest.hexdigest()[:32]}"',
        size=size,
        identity=b"".join(kept) if kept is not None else None,
    )


def json_array(items: Iterable[bytes]) -> Iterator[bytes]:
    """`[a,b,...]` from the JSON bytes of each item."""
    yield b"["
    first = True
    for item in items:
        yield item if first else b"," + item
        first = False
    yield b"]"


@dataclass(frozen=True, slots=True)
class Listing:
    """A principal's visible set in one generation, and that generation's kept answers."""

    visible: Visible
    listings: Listings
    secrets: Secrets = field(default_factory=Secrets)
    """Redacted from every answer as it is built: compressed answers pass the HTTP edge's
    redaction (`serve/redacting`) unread, so they are redacted here, before compression."""

    @property
    def tools(self) -> tuple[Tool, ...]:
        return self.visible.tools

    async def answer(self, key: tuple[object, ...], build: Callable[[], Iterable[bytes]]) -> Answer:
        """`Listings.answer` for this visible set: `key` names the surface, format, options."""
        large = len(self.visible.tools) >= FORK_FROM_TOOLS
        secrets = self.secrets
        if secrets:
            parts = build
            build = lambda: (secrets.bytes(part) for part in parts())  # noqa: E731
        return await self.listings.answer((*key, self.visible.key), build, large=large)


class _Bounded(OrderedDict[tuple[object, ...], int]):
    """A dict that forgets its oldest entries past `limit`."""

    def __init__(self, limit: int) -> None:
        super().__init__()
        self.limit = limit

    def __setitem__(self, key: tuple[object, ...], value: int) -> None:
        super().__setitem__(key, value)
        if len(self) > self.limit:
            self.popitem(last=False)


class Listings:
    """What one generation has answered to list requests: visible sets and answers."""

    def __init__(self) -> None:
        self._visible: OrderedDict[tuple[Principal, object], Visible] = OrderedDict()
        self._answers: OrderedDict[tuple[object, ...], Answer] = OrderedDict()
        self._building: dict[tuple[object, ...], asyncio.Future[Answer]] = {}
        self.page_ends = _Bounded(MAX_ANSWERS * 4)
        """Where each MCP page ends, by (visible set, offset, page size): found by size."""

    def visible(
        self,
        principal: Principal,
        allowed: Callable[[], Iterable[Tool]],
        *,
        scope: tuple[str | None, bool] | None = None,
    ) -> Visible:
        """`principal`'s visible set in `scope`: `allowed()` the first time, then kept.

        Keyed by the whole principal (id, groups, admin, ...): everything the policy decides
        on, so a kept set is exactly the decision it would make again; and by the scope (a
        toolset's id, and whether it is searched; None: the whole catalog), which is part of
        the set's key too: a toolset may describe the same tools its own way.
        """
        key = (principal, scope)
        found = self._visible.get(key)
        if found is None:
            tools = tuple(allowed())
            names = hashlib.sha256(repr(scope).encode() if scope is not None else b"")
            scoped = names.hexdigest()
            names.update("\n".join(tool.name for tool in tools).encode())
            found = self._visible[key] = Visible(tools, names.hexdigest(), scoped)
            if len(self._visible) > MAX_VISIBLE:
                self._visible.popitem(last=False)
        else:
            self._visible.move_to_end(key)
        return found

    async def answer(
        self, key: tuple[object, ...], build: Callable[[], Iterable[bytes]], *, large: bool = False
    ) -> Answer:
        """The answer kept under `key`, or `build()`'s parts made one (in a worker thread, so
        the event loop keeps serving; requests for the same key meanwhile wait for it). A
        `large` one is built in a child process (`forked`), where that can be done."""
        found = self._answers.get(key)
        if found is not None:
            self._answers.move_to_end(key)
            return found
        pending = self._building.get(key)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[Answer] = asyncio.get_running_loop().create_future()
        self._building[key] = future
        try:
            answer = await asyncio.to_thread(_build, build, large)
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: waiters, if any, get it from the future
            raise
        finally:
            del self._building[key]
        future.set_result(answer)
        self._answers[key] = answer
        if len(self._answers) > MAX_ANSWERS:
            self._answers.popitem(last=False)
        return answer


def _build(parts: Callable[[], Iterable[bytes]], large: bool) -> Answer:
    if large:
        data = in_child(lambda: build_answer(parts()).to_bytes(), timeout=CHILD_TIMEOUT)
        if data is not None:
            try:
                return Answer.from_bytes(data)
            except (ValueError, KeyError, TypeError):
                pass  # built here instead, as where there is no child to build it
    answer = build_answer(parts())
    give_back()  # rendering a large list frees far more than the answer keeps
    return answer


def accepted(header: str | None) -> frozenset[str]:
    """The content codings an `Accept-Encoding` header accepts (q > 0), lower case."""
    if not header:
        return frozenset({"identity"})
    weights: dict[str, float] = {}
    for item in header.split(","):
        coding, _, params = item.strip().partition(";")
        q = 1.0
        name, _, value = params.strip().partition("=")
        if name.strip().lower() == "q":
            try:
                q = float(value)
            except ValueError:
                q = 0.0
        if coding:
            weights[coding.strip().lower()] = q
    star = weights.get("*", 0.0)
    found = {coding for coding, q in weights.items() if q > 0 and coding != "*"}
    if star > 0:
        found |= {"zstd", "gzip"}
    if weights.get("identity", star if "*" in weights else 1.0) > 0:
        found.add("identity")
    return frozenset(found)


def choose(header: str | None, offered: tuple[Encoding, ...] = ("zstd", "gzip")) -> Encoding:
    """The coding to answer in: the first of `offered` the client accepts, else plain."""
    codings = accepted(header)
    return next((coding for coding in offered if coding in codings), "identity")


def not_modified(if_none_match: str | None, etag: str) -> bool:
    """Whether `If-None-Match` names this ETag (weak comparison, as RFC 9110 says for it)."""
    if not if_none_match:
        return False
    if if_none_match.strip() == "*":
        return True
    wanted = etag.removeprefix("W/")
    return any(tag.strip().removeprefix("W/") == wanted for tag in if_none_match.split(","))
