"""Fixed arguments over HTTP, on Slack's own document: `arguments: {token: ...}` and the model
is never asked for Slack's token (a header on some operations, a query or form parameter on
others), while every call carries it. A real gateway and a real echoing upstream on 127.0.0.1;
the canary token never comes back, in answers, listings, the log or the CLI's dry run."""

from __future__ import annotations

import logging
import os
import re
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import httpx2
import pytest

from tests.corpus import CORPUS
from tests.fake_upstream import create_upstream, digest
from toolbridge.config_file import load_config
from toolbridge.gateway import Gateway
from toolbridge.serve.app import create_app
from toolbridge.serve.loopback import LoopbackServer
from toolbridge.upstream.clients import make_upstream

pytestmark = pytest.mark.e2e

SLACK = CORPUS / "slack" / "slack_web_openapi_v2.json"
CANARY = "xoxb-canary-fixed-0d15ea5e"


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    with LoopbackServer(create_upstream()) as upstream:
        path = tmp_path_factory.mktemp("fixed")
        (path / "toolbridge.yaml").write_text(
            textwrap.dedent(
                f"""\
                servers:
                  - id: slack
                    spec: {SLACK}
                    base_url: {upstream.url}/api
                    arguments: {{token: "${{SLACK_TOKEN}}"}}
                    tools:
                      chat_postMessage: {{arguments: {{channel: C0ALERTS}}}}
                """
            )
        )
        yield path


@pytest.fixture(scope="module")
def gateway(folder: Path) -> Iterator[str]:
    config = load_config(folder / "toolbridge.yaml", {"SLACK_TOKEN": CANARY})
    served = Gateway(config, upstream=make_upstream())
    served.load()
    with LoopbackServer(create_app(served), lifespan="on") as server:
        yield server.url


def call(gateway: str, name: str, arguments: dict[str, Any]) -> dict[str, Any]:
    response = httpx2.post(f"{gateway}/v1/tools/{name}/call", json=arguments, timeout=20)
    assert CANARY not in response.text
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def test_no_slack_tool_asks_for_the_token(gateway: str) -> None:
    response = httpx2.get(f"{gateway}/v1/tools?format=mcp", timeout=20)
    tools = response.json()["tools"]
    asking = [t["name"] for t in tools if "token" in t["inputSchema"].get("properties", {})]
    assert (len(tools), asking) == (174, [])
    assert CANARY not in response.text


@pytest.mark.parametrize(
    ("tool", "arguments", "path", "where"),
    [
        ("auth_test", {}, "/api/auth.test", "header"),
        ("team_info", {}, "/api/team.info", "query"),
        ("dnd_setSnooze", {"num_minutes": "60"}, "/api/dnd.setSnooze", "form"),
    ],
)
def test_every_call_carries_the_token_where_its_operation_wants_it(
    gateway: str, tool: str, arguments: dict[str, Any], path: str, where: str
) -> None:
    echoed = call(gateway, tool, arguments)["result"]
    assert echoed["path"] == path
    sent = {
        "header": echoed["header_sha256"].get("token") == digest(CANARY),
        "query": dict(parse_qsl(echoed["query"])).get("token") == "[redacted]",
        "form": dict(parse_qsl(echoed["body"])).get("token") == "[redacted]",
    }
    assert sent == {kind: kind == where for kind in sent}
    if where == "form":
        assert dict(parse_qsl(echoed["body"]))["num_minutes"] == "60"


def test_one_tool_posts_to_its_own_channel_only(gateway: str) -> None:
    """`tools: {chat_postMessage: {arguments: {channel: ...}}}`: that tool asks for no channel
    and always sends the config's; another tool that takes a channel still asks for it."""
    listed = httpx2.get(f"{gateway}/v1/tools?format=mcp", timeout=20).json()["tools"]
    tools = {t["name"]: t for t in listed}
    schemas = [
        tools[name]["inputSchema"]["properties"]
        for name in ("chat_postMessage", "conversations_history")
    ]
    echoed = call(gateway, "chat_postMessage", {"text": "build broke"})["result"]
    refused = httpx2.post(
        f"{gateway}/v1/tools/chat_postMessage/call",
        json={"text": "hi", "channel": "C0GENERAL"},
        timeout=20,
    )
    assert ("channel" in schemas[0], "channel" in schemas[1]) == (False, True)
    assert echoed["path"] == "/api/chat.postMessage"
    assert dict(parse_qsl(echoed["body"])) == {"channel": "C0ALERTS", "text": "build broke"}
    assert echoed["header_sha256"]["token"] == digest(CANARY)  # the server's, in its header
    assert refused.status_code == 422


def test_a_model_that_sends_the_token_itself_is_refused(gateway: str) -> None:
    response = httpx2.post(
        f"{gateway}/v1/tools/team_info/call", json={"token": "the-model's-guess"}, timeout=20
    )
    assert response.status_code == 422
    assert "token" in response.text


def test_listings_hold_no_token(gateway: str) -> None:
    for path in ("/v1/servers", "/openapi.json", "/v1/tools"):
        response = httpx2.get(f"{gateway}{path}", timeout=30)
        assert (response.status_code, CANARY in response.text) == (200, False)


def test_the_dry_run_and_the_log_hold_no_token(
    folder: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    done = subprocess.run(
        [sys.executable, "-m", "toolbridge", "call", "team_info", "--dry-run"],
        cwd=folder,
        env={**os.environ, "SLACK_TOKEN": CANARY, "TOOLBRIDGE_CACHE_DIR": ""},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert (done.returncode, CANARY in done.stdout + done.stderr) == (0, False), done.stderr
    line = r"curl -g -X GET 'http://127\.0\.0\.1:\d+/api/team\.info\?token=\*\*\*' "
    assert re.fullmatch(line + r"-H 'Accept: application/json'\n", done.stdout), done.stdout
    assert CANARY not in caplog.text
