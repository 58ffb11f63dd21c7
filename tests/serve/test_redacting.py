"""The HTTP edge's redaction: bodies in pieces, answers redacted where they were built."""

from __future__ import annotations

import gzip
from collections.abc import Callable, MutableMapping
from typing import Any

import pytest
import zstandard

from toolbridge.listings import Listing, Listings
from toolbridge.policy import Principal
from toolbridge.redaction import MARKER, Secrets
from toolbridge.serve.redacting import Redacting, already_redacted
from toolbridge.tools import HttpOperation, Tool

pytestmark = pytest.mark.anyio

CANARY = "edge-canary-secret-0042"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def _run(
    app: Any, secrets: Callable[[], Secrets] = lambda: Secrets([CANARY])
) -> list[dict[str, Any]]:
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: MutableMapping[str, Any]) -> None:
        sent.append(dict(message))

    scope = {"type": "http", "method": "GET", "path": "/", "headers": []}
    await Redacting(app, secrets)(scope, receive, send)
    return sent


def _sized(pieces: list[bytes], *, mark: bool = False) -> Any:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if mark:
            already_redacted(scope)
        length = str(sum(map(len, pieces))).encode()
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-length", length)]})  # fmt: skip
        for index, piece in enumerate(pieces):
            more = index < len(pieces) - 1
            await send({"type": "http.response.body", "body": piece, "more_body": more})

    return app


async def test_a_sized_body_in_pieces_is_gathered_and_redacted_whole() -> None:
    half = len(CANARY) // 2
    pieces = [b"head ", CANARY[:half].encode(), CANARY[half:].encode() + b" tail", b"!"]
    sent = await _run(_sized(pieces))
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    assert body == b"head " + MARKER.encode() + b" tail!"
    assert sent[0]["headers"] == [(b"content-length", str(len(body)).encode())]
    assert len(sent) == 2  # the start, then the body in one message


async def test_a_clean_sized_body_in_pieces_arrives_whole() -> None:
    pieces = [b"one ", b"two ", b"three"]
    sent = await _run(_sized(pieces))
    assert sent[1:] == [
        {"type": "http.response.body", "body": b"one two three", "more_body": False}
    ]
    assert sent[0]["headers"] == [(b"content-length", b"13")]


async def test_an_answer_redacted_where_it_was_built_passes_untouched() -> None:
    pieces = [b"zstd bytes ", b"never scanned"]
    sent = await _run(_sized(pieces, mark=True))
    assert [m.get("body") for m in sent[1:]] == pieces
    assert [m.get("more_body") for m in sent[1:]] == [True, False]


@pytest.mark.parametrize("encoding", ["zstd", "gzip", "identity"])
async def test_a_list_answer_is_redacted_before_it_is_compressed(encoding: str) -> None:
    tool = Tool(
        name="leaky",
        original_name="leaky",
        description=f"an upstream wrote its token {CANARY} into its document",
        input_schema={"type": "object", "properties": {}},
        source="api",
        target=HttpOperation(
            server="api", method="GET", path="/x", base_url="http://127.0.0.1:1", operation_id=None
        ),
    )
    listings = Listings()
    visible = listings.visible(Principal(id="alice"), lambda: [tool])
    listing = Listing(visible, listings, Secrets([CANARY]))
    answer = await listing.answer(("test",), lambda: [tool.description.encode()])
    body = answer.body(encoding)  # type: ignore[arg-type]
    if encoding == "zstd":
        body = zstandard.ZstdDecompressor().decompress(body, max_output_size=answer.size)
    elif encoding == "gzip":
        body = gzip.decompress(body)
    assert body == f"an upstream wrote its token {MARKER} into its document".encode()


@pytest.mark.parametrize("known_before", [(), ("config-secret-0001",)])
async def test_a_secret_learned_during_the_call_is_redacted_from_its_own_answer(
    known_before: tuple[str, ...],
) -> None:
    """An OAuth2 token fetched for the call, a caller's own credential: learned after the
    request came, and echoed by the upstream in this very answer."""
    secrets = Secrets(known_before)

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        nonlocal secrets
        secrets = secrets.adding([CANARY])  # what dispatch does with a token it fetched
        body = f'{{"echo": "Bearer {CANARY}"}}'.encode()
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-length", str(len(body)).encode())]})  # fmt: skip
        await send({"type": "http.response.body", "body": body, "more_body": False})

    sent = await _run(app, lambda: secrets)
    body = f'{{"echo": "Bearer {MARKER}"}}'.encode()
    assert sent == [
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-length", str(len(body)).encode())],
        },
        {"type": "http.response.body", "body": body, "more_body": False},
    ]
