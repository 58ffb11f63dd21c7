"""The gateway's own /openapi.json, used as an OpenAPI client uses it: a second gateway
registers the first by the URL of that document (with the first one's API key) and calls every
one of its operations through it."""

from __future__ import annotations

import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2
import pytest

from toolbridge.config_file import load_config
from toolbridge.demo import demo_config
from toolbridge.demo.service import create_demo_app
from toolbridge.gateway import Gateway
from toolbridge.serve.app import create_app
from toolbridge.serve.loopback import LoopbackServer
from toolbridge.upstream.clients import make_upstream

pytestmark = pytest.mark.e2e

KEY = "first-gateway-key-0123456789"

CALLS: list[tuple[str, dict[str, Any]]] = [
    ("listNotes", {}),
    ("createNote", {"title": "via two gateways", "body": "hello"}),
    ("getNote", {"noteId": 1}),
    ("updateNote", {"noteId": 1, "pinned": False}),
    ("deleteNote", {"noteId": 2}),
    ("getStatus", {}),
    ("now", {}),
    ("days_between", {"start": "2024-01-01", "end": "2024-01-31"}),
    ("convert_time", {"time": "2024-01-01T12:00:00", "to_timezone": "Asia/Tokyo"}),
]


@pytest.fixture(scope="module")
def second_gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with LoopbackServer(create_demo_app()) as notes:
        first_config = demo_config(notes.url)
        auth = {"auth": {"api_keys": [{"user": "second", "key": KEY, "admin": True}]}}
        first_config = first_config.model_validate({**first_config.model_dump(), **auth})
        first = Gateway(first_config, upstream=make_upstream())
        first.load()
        first_app = create_app(first)
        with LoopbackServer(first_app, lifespan="on") as first_server:
            folder: Path = tmp_path_factory.mktemp("second")
            (folder / "toolbridge.yaml").write_text(
                textwrap.dedent(
                    f"""\
                    servers:
                      - id: first
                        spec: {first_server.url}/openapi.json
                        base_url: {first_server.url}
                        auth: {{type: bearer, token: "${{FIRST_KEY}}"}}
                    """
                )
            )
            config = load_config(folder / "toolbridge.yaml", {"FIRST_KEY": KEY})
            second = Gateway(config, upstream=make_upstream())
            second.load()
            with LoopbackServer(create_app(second), lifespan="on") as server:
                yield server.url


def test_every_operation_of_the_gateway_document_becomes_a_tool(second_gateway: str) -> None:
    names = [t["name"] for t in httpx2.get(f"{second_gateway}/v1/tools?format=mcp").json()["tools"]]
    assert sorted(names) == sorted(name for name, _ in CALLS)


@pytest.mark.parametrize(("name", "arguments"), CALLS, ids=[name for name, _ in CALLS])
def test_every_operation_called_through_the_document(
    second_gateway: str, name: str, arguments: dict[str, Any]
) -> None:
    answer = httpx2.post(f"{second_gateway}/v1/tools/{name}/call", json=arguments, timeout=20)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    # The second gateway's result is the first gateway's envelope around the real answer.
    assert (body["ok"], body["status"], body["result"]["ok"]) == (True, 200, True), body
