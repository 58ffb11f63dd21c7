"""Content codings undone under the size cap, and refused when unknown (upstream/encodings.py)."""

from __future__ import annotations

import gzip
import zlib

import brotli
import pytest
import zstandard

from toolbridge.upstream.encodings import ACCEPT_ENCODING, CappedBody, EncodingError

TEXT = b'{"word": "fidelity"}' * 2000
BOMB = 50_000_000


def _raw_deflate(data: bytes) -> bytes:
    compressor = zlib.compressobj(wbits=-zlib.MAX_WBITS)
    return compressor.compress(data) + compressor.flush()


def _zstd_frames(data: bytes) -> bytes:
    half = len(data) // 2
    compressor = zstandard.ZstdCompressor()
    return compressor.compress(data[:half]) + compressor.compress(data[half:])


ENCODED = [
    (None, TEXT),
    ("identity", TEXT),
    ("gzip", gzip.compress(TEXT)),
    ("x-gzip", gzip.compress(TEXT)),
    ("deflate", zlib.compress(TEXT)),
    ("deflate", _raw_deflate(TEXT)),
    ("br", brotli.compress(TEXT)),
    ("BR", brotli.compress(TEXT)),
    ("zstd", zstandard.ZstdCompressor().compress(TEXT)),
    ("zstd", _zstd_frames(TEXT)),
    ("gzip, br", brotli.compress(gzip.compress(TEXT))),
    ("zstd, identity", zstandard.ZstdCompressor().compress(TEXT)),
]
IDS = [
    "none", "identity", "gzip", "x-gzip", "deflate", "raw-deflate", "br", "BR", "zstd",
    "zstd-two-frames", "gzip-then-br", "zstd-identity",
]  # fmt: skip


def read(coding: str | None, wire: bytes, max_bytes: int, chunk: int = 1000) -> tuple[bytes, bool]:
    body = CappedBody(coding, max_bytes)
    for start in range(0, len(wire), chunk):
        if not body.add(wire[start : start + chunk]):
            break
    return body.end()


def test_accept_encoding_names_every_coding_we_decode() -> None:
    assert ACCEPT_ENCODING == "gzip, deflate, br, zstd"


@pytest.mark.parametrize(("coding", "wire"), ENCODED, ids=IDS)
@pytest.mark.parametrize("chunk", [7, 1000, 1 << 20])
def test_decoded_whole(coding: str | None, wire: bytes, chunk: int) -> None:
    assert read(coding, wire, len(TEXT), chunk) == (TEXT, False)


@pytest.mark.parametrize(("coding", "wire"), ENCODED, ids=IDS)
def test_cut_at_the_cap(coding: str | None, wire: bytes) -> None:
    assert read(coding, wire, 1234) == (TEXT[:1234], True)


@pytest.mark.parametrize(
    ("coding", "bomb"),
    [
        ("gzip", gzip.compress(bytes(BOMB))),
        ("br", brotli.compress(bytes(BOMB))),
        ("zstd", zstandard.ZstdCompressor().compress(bytes(BOMB))),
    ],
    ids=["gzip", "br", "zstd"],
)
def test_a_bomb_is_cut_not_unpacked(coding: str, bomb: bytes) -> None:
    """50 MB of zeros in some 50 kB, read in one chunk: only the cap comes out."""
    assert len(bomb) < 60_000
    assert read(coding, bomb, 100_000, chunk=len(bomb)) == (bytes(100_000), True)


@pytest.mark.parametrize(
    ("coding", "message"),
    [
        ("compress", "the body is encoded as 'compress', which the gateway cannot decode (it asks "
         "for gzip, deflate, br, zstd)"),
        ("gzip, x-custom", "the body is encoded as 'x-custom', which the gateway cannot decode "
         "(it asks for gzip, deflate, br, zstd)"),
        ("gzip", "the body is not valid gzip: Error -3 while decompressing data: incorrect header "
         "check"),
        ("br", "the body is not valid br: brotli: decoder failed"),
        ("zstd", "the body is not valid zstd: zstd decompress error: Unknown frame descriptor"),
    ],
)  # fmt: skip
def test_unknown_or_broken_is_an_error(coding: str, message: str) -> None:
    with pytest.raises(EncodingError) as caught:
        read(coding, b"this is not what the header says", 1000)
    assert str(caught.value) == message


def test_no_body_is_no_error_whatever_the_coding() -> None:
    assert read("compress", b"", 1000) == (b"", False)
    assert read("br", b"", 1000) == (b"", False)
