"""No document, however malformed, crashes a load, a check, a reload or a call.

A seeded, bounded fuzz: every feature document in `specs/` and a few small corpus documents,
each mutated `MUTANTS` times (`tests/mutants.py`: values of the wrong kind, dropped keys, copied
subtrees, `$ref`s to nowhere), and a few byte-level cuts and flips. Each mutant goes the whole
way, in-process: loaded by a gateway (a URL document on a mock network), every tool rendered in
every client format, described, put in the gateway's own OpenAPI document, reported by `check`,
called with no arguments and with arguments made from its schema, and reloaded from the
original document. A bad part may make a note or keep the source down with an error; nothing
may raise, and nothing may reach the last-resort guards (`conversion-failed` notes, a source
that "could not be converted"), which are there for bugs this test is meant to find.

`TOOLBRIDGE_FUZZ_MUTANTS` and `TOOLBRIDGE_FUZZ_SEED` run more, or other, mutants locally.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import orjson
import pytest

from tests.conftest import ROOT
from tests.corpus import CORPUS
from tests.mutants import mutants
from toolbridge.config import Config, Server
from toolbridge.errors import DocumentError, InvalidArguments, UpstreamUnavailable
from toolbridge.formats.render import FORMATS, render_tools
from toolbridge.gateway import Gateway
from toolbridge.openapi.documents import DocumentStore, parse
from toolbridge.policy import ANONYMOUS_ADMIN
from toolbridge.report import check_report, print_check
from toolbridge.serve.describe import describe
from toolbridge.serve.openapi_document import gateway_document
from toolbridge.upstream.seam import MockUpstream, UpstreamRequest, UpstreamResponse

MUTANTS = int(os.environ.get("TOOLBRIDGE_FUZZ_MUTANTS", "24"))
"""Mutants per document: with the documents below, about 600 in all, in well under a minute."""
SEED = int(os.environ.get("TOOLBRIDGE_FUZZ_SEED", "20260512"))
URL = "http://fuzz.invalid/openapi.json"
BASE_URL = "http://upstream.invalid/v1"

DOCUMENTS = sorted(
    [
        *(ROOT / "specs").glob("*.yaml"),
        ROOT / "specs" / "swagger2.json",
        CORPUS / "oai-examples/v2.0/json/uber.json",
        CORPUS / "oai-examples/v3.0/callback-example.yaml",
        CORPUS / "oai-examples/v3.0/petstore-expanded.json",
        CORPUS / "readme-oas-examples/3.0/parameters-style.yaml",
        CORPUS / "readme-oas-examples/3.1/security.json",
    ]
)


def answer(request: UpstreamRequest) -> UpstreamResponse:
    return UpstreamResponse(
        status=200, headers=(("content-type", "application/json"),), body=b'{"ok": true}'
    )


def sample(schema: Any, defs: dict[str, Any], depth: int = 0) -> Any:
    """A value shaped like `schema` wants (often valid, not always: the gateway must cope)."""
    if depth > 6 or not isinstance(schema, dict):
        return "x"
    ref = schema.get("$ref")
    if isinstance(ref, str):
        return sample(defs.get(ref.rsplit("/", 1)[-1]), defs, depth + 1)
    enum = schema.get("enum")
    if isinstance(enum, list) and enum:
        return enum[0]
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), None)
    if kind == "object" or isinstance(schema.get("properties"), dict):
        properties = schema.get("properties")
        properties = properties if isinstance(properties, dict) else {}
        return {k: sample(v, defs, depth + 1) for k, v in properties.items()}
    simple = {"array": [], "integer": 1, "number": 1.5, "boolean": True, "null": None}
    if kind == "array":
        return [sample(schema.get("items"), defs, depth + 1)]
    if kind in simple:
        return simple[kind]
    for key in ("anyOf", "oneOf", "allOf"):
        members = schema.get(key)
        if isinstance(members, list) and members:
            return sample(members[0], defs, depth + 1)
    return "x"


def exercise(raw: bytes, original: bytes) -> None:
    """Everything a document goes through, from load to call to reload; raises on a crash."""
    documents = {URL: raw}

    def fetch(url: str) -> bytes:
        if url not in documents:
            raise DocumentError(url, "fetch answered HTTP 404, expected 200")
        return documents[url]

    store = DocumentStore(fetch=fetch, cache_dir=None)
    config = Config(servers=(Server(id="fuzz", spec=URL, base_url=BASE_URL),))
    gateway = Gateway(config, upstream=MockUpstream(answer), store=store)
    catalog = gateway.load()
    for status in catalog.sources:
        assert "could not be converted" not in (status.error or ""), status.error
        notes = status.conversion.notes if status.conversion else ()
        failed = [n.message for n in notes if n.kind == "conversion-failed"]
        assert failed == []
    tools = list(catalog)
    for fmt in FORMATS:
        orjson.dumps(render_tools(tools, fmt))
        if fmt in ("openai", "openai-responses"):
            orjson.dumps(render_tools(tools, fmt, strict=True))
    orjson.dumps([describe(tool) for tool in tools])
    orjson.dumps(gateway_document(tools, server_url="http://gateway.invalid/"))
    report = check_report(catalog, store, validate=False)
    print_check(report, io.StringIO(), verbose=True)
    orjson.dumps(report)

    async def calls() -> None:
        async with gateway:
            for tool in tools:
                defs = tool.input_schema.get("$defs")
                tries: list[Any] = [{}, sample(tool.input_schema, defs or {})]
                for arguments in tries:
                    # The caller's error, or no upstream: answers (422, 502), not crashes.
                    with contextlib.suppress(InvalidArguments, UpstreamUnavailable):
                        await gateway.call(ANONYMOUS_ADMIN, tool.name, arguments)
            documents[URL] = original
            await gateway.reload()

    anyio.run(calls)


def cases() -> Iterator[Any]:
    for path in DOCUMENTS:
        name = str(path.relative_to(CORPUS if CORPUS in path.parents else ROOT))
        yield pytest.param(path, id=name)


@pytest.fixture(autouse=True)
def quiet() -> Iterator[None]:
    """Mutants make sources go down loudly; the log is not what is tested here."""
    logging.disable(logging.CRITICAL)
    try:
        yield
    finally:
        logging.disable(logging.NOTSET)


@pytest.mark.parametrize("path", list(cases()))
def test_mutated_documents_never_crash_the_gateway(path: Path) -> None:
    raw = path.read_bytes()
    document = parse(raw, path.resolve().as_uri())
    original = orjson.dumps(document)
    seed = SEED + sum(raw)  # each document its own sequence, the same on every run
    crashes = []
    for index, mutant in enumerate(mutants(document, seed, MUTANTS)):
        try:
            exercise(_dumps(mutant), original)
        except Exception as exc:
            crashes.append(f"mutant {index}: {type(exc).__name__}: {exc}")
    rng = random.Random(seed)
    for index in range(4):  # bytes cut short or flipped: parse errors, never crashes
        cut = bytearray(raw[: rng.randrange(1, len(raw))])
        cut[rng.randrange(len(cut))] = rng.randrange(256)
        try:
            exercise(bytes(cut), original)
        except Exception as exc:
            crashes.append(f"bytes {index}: {type(exc).__name__}: {exc}")
    assert crashes == []


def _dumps(value: Any) -> bytes:
    """JSON for a mutant: orjson, or the standard library for integers past 64 bits."""
    try:
        return orjson.dumps(value)
    except TypeError:
        import json

        return json.dumps(value).encode()


# -- the mistakes the issue names, one by one ------------------------------------------------

HOSTILE_PARTS = {
    "tags-5": (
        {"tags": 5},
        [("invalid-operation", "tags: expected a list, found an integer")],
    ),
    "type-with-a-mapping": (
        {"parameters": [{"name": "q", "in": "query", "schema": {"type": ["string", {}]}}]},
        [("invalid-schema", "unknown type {} dropped")],
    ),
    "items-empty-list": (
        {"parameters": [{"name": "q", "in": "query", "schema": {"type": "array", "items": []}}]},
        [
            (
                "invalid-schema",
                "input schema: properties/q/prefixItems: [] has less than 1 item; that keyword "
                "is left out",
            )
        ],
    ),
    "pattern-not-a-regex": (
        {
            "parameters": [
                {"name": "q", "in": "query", "schema": {"type": "string", "pattern": "["}}
            ]
        },
        [("invalid-schema", "pattern '[' is not a valid regular expression; dropped")],
    ),
    "summary-a-list": (
        {"summary": ["a"], "operationId": 7},
        [
            ("invalid-operation", "summary: expected a string, found a list"),
            ("invalid-operation", "operationId: expected a string, found an integer"),
        ],
    ),
    "count-past-64-bits": (
        {"parameters": [{"name": "q", "in": "query", "schema": {"maxLength": 1e30}}]},
        [("invalid-schema", "maxLength 1e+30 is not a count; dropped")],
    ),
}


@pytest.mark.parametrize(
    ("operation", "expected"), list(HOSTILE_PARTS.values()), ids=list(HOSTILE_PARTS)
)
def test_a_bad_part_is_a_note_on_its_operation_and_the_rest_converts(
    operation: dict[str, Any], expected: list[tuple[str, str]]
) -> None:
    document = {
        "openapi": "3.0.3",
        "info": {"title": "t", "version": "1"},
        "paths": {
            "/bad": {"get": {"operationId": "bad", **operation, "responses": {}}},
            "/good": {"get": {"operationId": "good", "responses": {}}},
        },
    }
    store = DocumentStore(fetch={URL: orjson.dumps(document)}.__getitem__, cache_dir=None)
    config = Config(servers=(Server(id="api", spec=URL, base_url=BASE_URL),))
    catalog = Gateway(config, upstream=MockUpstream(answer), store=store).load()

    names = [tool.name for tool in catalog]
    bad = next(tool for tool in catalog if tool.where == "GET /bad")
    assert (len(names), "good" in names) == (2, True)
    assert [(n.kind, n.message) for n in bad.notes if n.kind.startswith("invalid")] == expected
