"""A real third-party upstream: httpbin (with flasgger's messy Swagger 2.0 document, no
operationIds), registered from YAML by the URL of its own document and called through the
gateway over HTTP, as a user would.
"""

from __future__ import annotations

import base64
import textwrap
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2
import pytest
from httpbin import app as httpbin_app  # type: ignore[import-untyped]
from werkzeug.serving import make_server

from toolbridge.config_file import load_config
from toolbridge.gateway import Gateway
from toolbridge.serve.app import create_app
from toolbridge.serve.loopback import LoopbackServer
from toolbridge.upstream.clients import make_upstream

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def httpbin() -> Iterator[str]:
    server = make_server("127.0.0.1", 0, httpbin_app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join(timeout=10)


@pytest.fixture(scope="module")
def gateway(httpbin: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    path: Path = tmp_path_factory.mktemp("httpbin") / "toolbridge.yaml"
    path.write_text(
        textwrap.dedent(
            f"""\
            servers:
              - id: httpbin
                spec: {httpbin}/spec.json
                base_url: {httpbin}
                headers: {{X-Team: gateway-tests}}
              - id: basic
                spec: {httpbin}/spec.json
                base_url: {httpbin}
                prefix: authed
                include: {{paths: ["/basic-auth/*"]}}
                auth: {{type: basic, username: ann, password: "${{ANN_PASSWORD}}"}}
              - id: bearer
                spec: {httpbin}/spec.json
                base_url: {httpbin}
                prefix: bearer
                include: {{paths: [/bearer]}}
                auth: {{type: bearer, token: "${{BEARER}}"}}
            """
        )
    )
    config = load_config(path, {"ANN_PASSWORD": "s3cret", "BEARER": "tok-123"})
    gateway = Gateway(config, upstream=make_upstream())
    gateway.load()
    with LoopbackServer(create_app(gateway), lifespan="on") as server:
        yield server.url


def call(gateway: str, name: str, arguments: dict[str, Any] | None = None) -> dict[str, Any]:
    response = httpx2.post(f"{gateway}/v1/tools/{name}/call", json=arguments or {}, timeout=20)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def test_every_operation_without_operation_id_is_a_tool(gateway: str) -> None:
    tools = httpx2.get(f"{gateway}/v1/tools?format=mcp", timeout=10).json()["tools"]
    names = [t["name"] for t in tools]
    assert len(names) == len(set(names)) == 78 + 1 + 1  # all of httpbin, and one op each
    assert {
        "get_get",
        "get_status_codes",
        "authed_get_basic-auth_user_passwd",
        "bearer_get_bearer",
    } <= set(names)


def test_a_plain_get_with_static_headers(gateway: str) -> None:
    body = call(gateway, "get_headers")
    headers = body["result"]["headers"]
    assert (body["ok"], headers["X-Team"], "Authorization" in headers) == (
        True,
        "gateway-tests",
        False,
    )


def test_upstream_status_codes_reach_the_model(gateway: str) -> None:
    body = call(gateway, "get_status_codes", {"codes": "418"})
    assert (body["ok"], body["status"]) == (False, 418)


def test_basic_and_bearer_credentials(gateway: str) -> None:
    ok = call(gateway, "authed_get_basic-auth_user_passwd", {"user": "ann", "passwd": "s3cret"})
    assert (ok["status"], ok["result"]) == (200, {"authenticated": True, "user": "ann"})
    wrong = call(gateway, "authed_get_basic-auth_user_passwd", {"user": "bob", "passwd": "x"})
    assert wrong["status"] == 401
    bearer = call(gateway, "bearer_get_bearer")
    # httpbin took the token, and echoes it: redacted on the way back to the caller.
    assert bearer["result"] == {"authenticated": True, "token": "[redacted]"}


def test_an_undeclared_path_parameter_still_reaches_its_place(gateway: str) -> None:
    body = call(gateway, "get_anything_anything", {"anything": "a b"})
    assert body["result"]["url"].endswith("/anything/a%20b")


def test_same_origin_redirects_are_followed(gateway: str) -> None:
    body = call(gateway, "get_redirect_n", {"n": 2})
    assert (body["ok"], body["result"]["url"].endswith("/get")) == (True, True)


def test_binary_text_and_compressed_answers(gateway: str) -> None:
    png = call(gateway, "get_image_png")["result"]
    assert (png["content_type"], base64.b64decode(png["base64"])[:4]) == ("image/png", b"\x89PNG")
    xml = call(gateway, "get_xml")
    assert (xml["content_type"], xml["result"].startswith("<?xml")) == ("application/xml", True)
    gzip = call(gateway, "get_gzip")["result"]
    assert gzip["gzipped"] is True
    assert gzip["headers"]["Accept-Encoding"] == "gzip, deflate, br, zstd"


def test_a_brotli_answer_is_decoded(gateway: str) -> None:
    """httpbin's /brotli answers `Content-Encoding: br`: the model reads the JSON, not bytes."""
    body = call(gateway, "get_brotli")
    result = body["result"]
    assert (body["ok"], body["content_type"], result["brotli"]) == (True, "application/json", True)
    assert result["headers"]["Accept-Encoding"] == "gzip, deflate, br, zstd"
