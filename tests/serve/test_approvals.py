"""Approved versions of held sources as the state store keeps them."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import anyio
import pytest

from toolbridge.openapi.convert import convert
from toolbridge.openapi.documents import DocumentStore, location_to_uri
from toolbridge.openapi.packing import PackError
from toolbridge.registry import Catalog, SourceStatus
from toolbridge.serve.approvals import MAGIC, _stored_digest, decode, encode, keep

ROOT = Path(__file__).resolve().parents[2]


def test_an_approved_version_reads_back_as_it_was_written() -> None:
    conversion = convert(DocumentStore(), location_to_uri("specs/demo.yaml", ROOT))
    data = encode("ab" * 32, conversion)
    digest, back = decode(data)
    assert (digest, back) == ("ab" * 32, conversion)
    assert _stored_digest(data) == "ab" * 32


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


class _Documents:
    """The store's `documents`, counted: what `keep` reads and writes."""

    def __init__(self) -> None:
        self.reads = 0
        self.written: list[tuple[str, str, str]] = []

    async def approved(self, source: str) -> None:
        self.reads += 1

    async def approve(self, source: str, content: bytes, *, by: str) -> None:
        self.written.append((source, _stored_digest(content) or "", by))


class _Gateway:
    def __init__(self, status: SourceStatus, digest: str) -> None:
        self.catalog = Catalog(tools={}, sources=(status,))
        self._approved = {status.id: digest}

    def approved(self) -> dict[str, str]:
        return self._approved


def test_keep_writes_a_new_approved_version_once_and_then_reads_the_store_no_more() -> None:
    conversion = convert(DocumentStore(), location_to_uri("specs/demo.yaml", ROOT))
    status = SourceStatus(id="notes", kind="openapi", location="x", loaded_at=0.0)
    gateway = _Gateway(replace(status, conversion=conversion, digest="d1"), "d1")
    documents = _Documents()
    store = SimpleNamespace(documents=documents)
    kept: dict[str, str] = {}

    async def twice() -> None:
        await keep(gateway, store, kept, by="ops")  # type: ignore[arg-type]
        await keep(gateway, store, kept, by="ops")  # type: ignore[arg-type]

    anyio.run(twice)
    assert (documents.reads, documents.written, kept) == (
        1,
        [("notes", "d1", "ops")],
        {"notes": "d1"},
    )
