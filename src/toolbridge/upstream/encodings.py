"""Content encodings: which ones the upstream hop asks for, and decoding them under the size cap.

Every upstream client (our `http11`, and aiohttp and httpx2 in `clients`) sends
`Accept-Encoding: gzip, deflate, br, zstd` unless the request names its own, and decodes the
answer here, chunk by chunk as it arrives, so all three decode the same codings the same way
and the size cap counts decoded bytes: a small compressed body cannot blow past it.

- `gzip` (and `x-gzip`), `deflate` (zlib-wrapped, or raw deflate as some servers send it), `br`
  (the `brotli` package) and `zstd` (the `zstandard` package, windows of at most 8 MiB as RFC
  9659 sets for HTTP) are decoded; `identity` is the bytes as sent. Several codings
  (`Content-Encoding: gzip, br`) are undone in reverse order.
- Any other coding is `EncodingError` as soon as a body byte arrives, never bytes passed on as
  if they were the answer: the client turns it into `UpstreamUnavailable` ("no valid answer").
  An answer without a body (HEAD, 204, 304) is never an error, whatever its header says.
- A body that is not valid in its coding is `EncodingError` with the decoder's reason.

Trusts nothing of the upstream's: the header and the bytes are both read as untrusted input.
"""

from __future__ import annotations

import contextlib
import zlib
from collections.abc import Iterator
from typing import IO, Protocol, cast

import brotli
import zstandard

ACCEPT_ENCODING = "gzip, deflate, br, zstd"
"""What every upstream client asks for, unless the request says otherwise."""
DECODED = ("gzip", "x-gzip", "deflate", "br", "zstd")
"""The codings `Decoder` undoes (besides `identity`)."""
ZSTD_MAX_WINDOW = 8 * 1024 * 1024
"""The largest zstd window accepted (RFC 9659: HTTP's zstd coding uses at most 8 MiB)."""
ZSTD_WRITE_SIZE = 64 * 1024
"""zstd output is produced in pieces of at most this size, so the cap is checked between them."""


class EncodingError(Exception):
    """The body's content coding is unknown, or the body is not valid in it."""


class _Stage(Protocol):
    name: str

    def feed(self, data: bytes, room: int) -> bytes:
        """The decoded output for `data`: more than `room` bytes when there are (then the rest
        may be held back: the body is cut there anyway)."""
        ...

    def finish(self) -> bytes: ...


class Decoder:
    """Undoes one answer's `Content-Encoding`: `feed` each body chunk, then `finish`.

    `room` is how many more decoded bytes the caller keeps; output past it only says that
    there was more. Raises EncodingError (see the module's docstring).
    """

    def __init__(self, content_encoding: str | None) -> None:
        codings = [c.strip().lower() for c in (content_encoding or "").split(",")]
        self.codings = tuple(c for c in codings if c and c != "identity")
        self._stages: list[_Stage] | None = None

    @property
    def identity(self) -> bool:
        """Nothing to undo: the body is passed through as it arrives."""
        return not self.codings

    def feed(self, data: bytes, room: int) -> bytes:
        if not data:
            return b""
        stages = self._stages
        if stages is None:
            stages = self._stages = [_stage(coding) for coding in reversed(self.codings)]
        for stage in stages:
            with _reading(stage):
                data = stage.feed(data, room)
            if not data:
                return b""
        return data

    def finish(self, room: int) -> bytes:
        """What the decoders still held at the end of the body."""
        out = b""
        for stage in self._stages or ():
            with _reading(stage):
                out = (stage.feed(out, room) if out else b"") + stage.finish()
        return out


@contextlib.contextmanager
def _reading(stage: _Stage) -> Iterator[None]:
    try:
        yield
    except (zlib.error, brotli.error, zstandard.ZstdError) as exc:
        raise EncodingError(f"the body is not valid {stage.name}: {exc}") from None


def _stage(coding: str) -> _Stage:
    match coding:
        case "gzip" | "x-gzip":
            return _Zlib("gzip", 16 + zlib.MAX_WBITS)
        case "deflate":
            return _Zlib("deflate", zlib.MAX_WBITS)
        case "br":
            return _Brotli()
        case "zstd":
            return _Zstd()
    raise EncodingError(
        f"the body is encoded as {coding!r}, which the gateway cannot decode "
        f"(it asks for {ACCEPT_ENCODING})"
    )


class _Zlib:
    def __init__(self, name: str, wbits: int) -> None:
        self.name = name
        self._wbits = wbits
        self._decoder = zlib.decompressobj(wbits)
        self._started = False

    def feed(self, data: bytes, room: int) -> bytes:
        try:
            out = self._decoder.decompress(data, room + 1)
        except zlib.error:
            if self._started or self.name != "deflate":
                raise
            # Raw deflate, without the zlib wrapper that RFC 9110 says `deflate` has.
            self._decoder = zlib.decompressobj(-zlib.MAX_WBITS)
            out = self._decoder.decompress(data, room + 1)
        self._started = True
        return out

    def finish(self) -> bytes:
        return self._decoder.flush()


class _Brotli:
    name = "br"

    def __init__(self) -> None:
        self._decoder = brotli.Decompressor()

    def feed(self, data: bytes, room: int) -> bytes:
        # The output buffer stops growing at the limit: a brotli bomb is cut, not unpacked.
        out: bytes = self._decoder.process(data, output_buffer_limit=room + 1)
        return out

    def finish(self) -> bytes:
        return b""


class _Full(Exception):
    """The zstd sink received more than the limit: stop decoding."""


class _Sink:
    """Where the zstd writer puts its output, in pieces of at most ZSTD_WRITE_SIZE."""

    def __init__(self) -> None:
        self.chunks: list[bytes] = []
        self.size = 0
        self.limit = 0

    def write(self, data: bytes) -> int:
        self.chunks.append(bytes(data))
        self.size += len(data)
        if self.size > self.limit:
            raise _Full
        return len(data)

    def take(self) -> bytes:
        out = b"".join(self.chunks)
        self.chunks.clear()
        self.size = 0
        return out


class _Zstd:
    name = "zstd"

    def __init__(self) -> None:
        self._sink = _Sink()
        self._writer = zstandard.ZstdDecompressor(max_window_size=ZSTD_MAX_WINDOW).stream_writer(
            # The writer calls only `write` on its sink: the rest of IO[bytes] is not needed.
            cast(IO[bytes], self._sink),
            write_size=ZSTD_WRITE_SIZE,
            closefd=False,
        )

    def feed(self, data: bytes, room: int) -> bytes:
        self._sink.limit = room
        with contextlib.suppress(_Full):  # past the room: the body is cut here
            self._writer.write(data)
        return self._sink.take()

    def finish(self) -> bytes:
        return b""


class CappedBody:
    """A body read chunk by chunk off the wire: decoded, and cut after `max_bytes` decoded bytes.

    `add` each raw chunk until it returns False (the cap is reached: stop reading, and close
    the connection), then `end()` gives the body and whether it was cut.
    """

    def __init__(self, content_encoding: str | None, max_bytes: int) -> None:
        decoder = Decoder(content_encoding)
        self._decoder = None if decoder.identity else decoder
        self._max = max_bytes
        self._chunks: list[bytes] = []
        self._size = 0

    def add(self, raw: bytes) -> bool:
        data = raw if self._decoder is None else self._decoder.feed(raw, self._max - self._size)
        self._keep(data)
        return self._size <= self._max

    def end(self) -> tuple[bytes, bool]:
        if self._decoder is not None and self._size <= self._max:
            self._keep(self._decoder.finish(self._max - self._size))
        body = self._chunks[0] if len(self._chunks) == 1 else b"".join(self._chunks)
        if self._size > self._max:
            return body[: self._max], True
        return body, False

    def _keep(self, data: bytes) -> None:
        if data:
            self._chunks.append(data)
            self._size += len(data)
