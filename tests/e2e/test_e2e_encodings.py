"""An upstream answering in br and zstd (and a coding nobody decodes), through the whole gateway.

A tiny Starlette API on loopback compresses its JSON answer in the coding the path names,
whatever the request asked for; the gateway, on each of its upstream clients, calls it over
HTTP as a user's call would, and the model must read the JSON, never the compressed bytes.
"""

from __future__ import annotations

import gzip
import textwrap
from collections.abc import Iterator
from pathlib import Path

import brotli
import httpx2
import orjson
import pytest
import zstandard
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tests.e2e.conftest import live_server
from toolbridge.config_file import load_config
from toolbridge.gateway import Gateway
from toolbridge.serve.app import create_app
from toolbridge.serve.loopback import LoopbackServer
from toolbridge.upstream.clients import UpstreamKind, make_upstream

pytestmark = pytest.mark.e2e

ANSWER = {"words": ["fidelity"] * 500, "count": 500}
ENCODE = {
    "gzip": gzip.compress,
    "br": brotli.compress,
    "zstd": zstandard.ZstdCompressor().compress,
    "compress": lambda data: b"\x1f\x9d\x90" + data,  # LZW: nobody's client decodes it
}

DOCUMENT = """\
openapi: 3.0.3
info: {title: Encodings, version: "1"}
paths:
  /answer/{coding}:
    get:
      operationId: answer
      parameters:
        - {name: coding, in: path, required: true, schema: {type: string}}
      responses:
        "200":
          description: the answer, compressed
          content:
            application/json:
              schema:
                type: object
                properties:
                  words: {type: array, items: {type: string}}
                  count: {type: integer}
"""


async def answer(request: Request) -> Response:
    coding = request.path_params["coding"]
    headers = {
        "Content-Encoding": coding,
        "X-Asked": request.headers.get("accept-encoding", ""),
    }
    body = ENCODE[coding](orjson.dumps({**ANSWER, "asked": headers["X-Asked"]}))
    return Response(body, media_type="application/json", headers=headers)


UPSTREAM = Starlette(routes=[Route("/answer/{coding}", answer)])


@pytest.fixture(scope="module")
def upstream_url() -> Iterator[str]:
    with live_server(UPSTREAM) as url:
        yield url


@pytest.fixture(scope="module", params=["http11", "aiohttp", "httpx"])
def gateway(
    request: pytest.FixtureRequest, upstream_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    kind: UpstreamKind = request.param
    folder: Path = tmp_path_factory.mktemp(f"encodings-{kind}")
    (folder / "encodings.yaml").write_text(DOCUMENT)
    (folder / "toolbridge.yaml").write_text(
        textwrap.dedent(
            f"""\
            servers:
              - id: encodings
                spec: encodings.yaml
                base_url: {upstream_url}
            """
        )
    )
    gateway = Gateway(load_config(folder / "toolbridge.yaml", {}), upstream=make_upstream(kind))
    gateway.load()
    with LoopbackServer(create_app(gateway), lifespan="on") as server:
        yield server.url


@pytest.mark.parametrize("coding", ["gzip", "br", "zstd"])
def test_compressed_answers_reach_the_model_as_json(gateway: str, coding: str) -> None:
    response = httpx2.post(f"{gateway}/v1/tools/answer/call", json={"coding": coding}, timeout=20)
    assert response.status_code == 200, response.text
    assert response.json() == {
        "ok": True,
        "status": 200,
        "content_type": "application/json",
        "result": {**ANSWER, "asked": "gzip, deflate, br, zstd"},
    }


def test_a_coding_the_gateway_cannot_decode_is_an_error_not_text(
    gateway: str, upstream_url: str
) -> None:
    response = httpx2.post(
        f"{gateway}/v1/tools/answer/call", json={"coding": "compress"}, timeout=20
    )
    assert (response.status_code, response.json()) == (
        502,
        {
            "error": {
                "type": "upstream_unavailable",
                "message": f"upstream 'encodings': no valid answer from {upstream_url}: the body "
                "is encoded as 'compress', which the gateway cannot decode (it asks for gzip, "
                "deflate, br, zstd)",
            }
        },
    )
