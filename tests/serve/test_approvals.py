"""Approved versions of held sources as the state store keeps them."""

from __future__ import annotations

from pathlib import Path

import pytest

from toolbridge.openapi.convert import convert
from toolbridge.openapi.documents import DocumentStore, location_to_uri
from toolbridge.openapi.packing import PackError
from toolbridge.serve.approvals import MAGIC, _digest_of, decode, encode

ROOT = Path(__file__).resolve().parents[2]


def test_an_approved_version_reads_back_as_it_was_written() -> None:
    conversion = convert(DocumentStore(), location_to_uri("specs/demo.yaml", ROOT))
    data = encode("ab" * 32, conversion)
    digest, back = decode(data)
    assert (digest, back) == ("ab" * 32, conversion)
    assert _digest_of(data) == "ab" * 32


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"something else", "not an approved version of toolbridge's"),
        (MAGIC + b"{}\n", "malformed head: 'digest'"),
        (MAGIC + b'{"digest": 1}\n', "malformed head: the digest is not a string"),
        (MAGIC + b'{"digest": "x"}\n2\n{}', "malformed packed conversion"),
    ],
)
def test_what_is_not_an_approved_version_is_refused_with_why(data: bytes, message: str) -> None:
    with pytest.raises(PackError) as caught:
        decode(data)
    assert str(caught.value).startswith(message)
