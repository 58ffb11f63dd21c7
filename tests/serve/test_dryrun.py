"""`toolbridge call --dry-run`: the exact request as a curl line with secrets masked, the local
function a call would run, the same argument checks as a call, and `--as USER`.

Every upstream here fails the test if anything is sent: a dry run sends nothing, not even the
OAuth2 token request.
"""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

import pytest

from toolbridge.config import Config
from toolbridge.errors import (
    DestinationRefused,
    InvalidArguments,
    ToolbridgeError,
    ToolNotFound,
    UpstreamUnavailable,
)
from toolbridge.gateway import Gateway
from toolbridge.policy import ANONYMOUS_ADMIN, Principal
from toolbridge.serve.dryrun import dry_run, principal_for
from toolbridge.upstream.seam import MockUpstream, UpstreamRequest, UpstreamResponse

pytestmark = pytest.mark.anyio

ROOT = Path(__file__).resolve().parents[2]
ALICE = Principal(id="alice", name="alice", groups=frozenset({"support"}))
AUTH = {
    "api_keys": [
        {"user": "alice", "key": "alice-key-1", "groups": ["support"]},
        {"user": "ops", "key": "ops-key-1", "admin": True},
        {"user": "alice", "key": "alice-key-2", "groups": ["support"]},
    ]
}


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def nothing_sent(request: UpstreamRequest) -> UpstreamResponse:
    pytest.fail(f"a dry run sent {request.method} {request.url}")


def gateway_for(*servers: dict[str, Any], tools: tuple[dict[str, Any], ...] = ()) -> Gateway:
    config = Config.model_validate(
        {"auth": AUTH, "servers": list(servers), "tools": list(tools), "base_dir": ROOT}
    )
    gateway = Gateway(config, upstream=MockUpstream(nothing_sent))
    gateway.load()
    return gateway


NOTES = {
    "id": "notes",
    "spec": "specs/demo.yaml",
    "base_url": "http://notes.test/v1",
    "auth": {"type": "bearer", "token": "notes-secret-token"},
    "headers": {"X-Team": "support"},
    "access": {"groups": ["support"], "methods": ["GET"]},
}
CLOCK = {
    "id": "clock",
    "path": "src/toolbridge/demo/tools/clock.py",
    "access": {"users": ["alice"]},
}


async def test_a_remote_call_is_shown_as_the_curl_line_that_sends_it() -> None:
    gateway = gateway_for(NOTES)
    line = await dry_run(
        gateway, ANONYMOUS_ADMIN, "createNote", {"title": "Groceries", "tags": ["it's"]}
    )
    assert line == (
        "curl -g -X POST http://notes.test/v1/notes"
        " -H 'Accept: application/json'"
        " -H 'Content-Type: application/json'"
        " -H 'Authorization: Bearer ***'"
        " -H 'X-Team: support'"
        """ --data-binary '{"title":"Groceries","tags":["it'"'"'s"]}'"""
    )
    assert shlex.split(line)[-1] == '{"title":"Groceries","tags":["it\'s"]}'


async def test_a_key_in_the_query_is_masked_too() -> None:
    server = {
        "id": "pets",
        "spec": "specs/security.yaml",
        "base_url": "https://pets.test/api",
        "auth": {"type": "api_key", "in": "query", "name": "api_key", "value": "query-secret-1"},
    }
    line = await dry_run(gateway_for(server), ANONYMOUS_ADMIN, "createPet", {"name": "Rex"})
    assert line == (
        "curl -g -X POST 'https://pets.test/api/pets?api_key=***'"
        " -H 'Content-Type: application/json' --data-binary '{\"name\":\"Rex\"}'"
    )


async def test_an_oauth2_token_is_not_fetched() -> None:
    server = {
        **NOTES,
        "auth": {
            "type": "oauth2_client_credentials",
            "token_url": "https://auth.test/oauth/token?tenant=t1",
            "client_id": "gateway",
            "client_secret": "client-secret-1",
        },
    }
    line = await dry_run(gateway_for(server), ANONYMOUS_ADMIN, "getNote", {"noteId": 3})
    assert line.splitlines() == [
        "# the token comes from https://auth.test/oauth/token (not fetched in a dry run)",
        "curl -g -X GET http://notes.test/v1/notes/3 -H 'Accept: application/json'"
        " -H 'Authorization: Bearer ***' -H 'X-Team: support'",
    ]


async def test_a_forwarded_header_is_named() -> None:
    server = {**NOTES, "auth": {"type": "forward", "header": "X-Api-Key"}}
    line = await dry_run(gateway_for(server), ANONYMOUS_ADMIN, "listNotes", {"tag": "a b"})
    assert line.splitlines() == [
        "# a call forwards the caller's X-Api-Key header (none here)",
        "curl -g -X GET 'http://notes.test/v1/notes?tag=a%20b' -H 'Accept: application/json'"
        " -H 'X-Team: support'",
    ]


async def test_a_local_tool_shows_the_function_and_its_arguments() -> None:
    gateway = gateway_for(tools=(CLOCK,))
    days = await dry_run(
        gateway, ALICE, "days_between", {"start": "2024-01-01", "end": "2024-03-01"}
    )
    now = await dry_run(gateway, ALICE, "now", {})
    assert (days.splitlines(), now.splitlines()) == (
        [
            "# clock:Tools.days_between is a local Python tool: it runs in-process, "
            "no HTTP request is sent",
            "Tools.days_between(start='2024-01-01', end='2024-03-01')",
        ],
        [
            "# clock:Tools.now is a local Python tool: it runs in-process, no HTTP request is sent",
            "Tools.now(__user__=...)",
        ],
    )


@pytest.mark.parametrize(
    ("name", "arguments", "problems"),
    [
        ("getNote", {"noteId": 0}, [("$.noteId", "0 is less than the minimum of 1")]),
        ("getNote", [], [("$", "expected an object of arguments, found an array")]),
        (
            "days_between",
            {"start": [1]},
            [("$.end", "Field required"), ("$.start", "Input should be a valid string")],
        ),
        ("days_between", "x", [("$", "expected an object, found a string")]),
    ],
)
async def test_arguments_are_checked_as_a_call_checks_them(
    name: str, arguments: Any, problems: list[tuple[str, str]]
) -> None:
    with pytest.raises(InvalidArguments) as caught:
        await dry_run(gateway_for(NOTES, tools=(CLOCK,)), ALICE, name, arguments)
    assert sorted(caught.value.problems) == problems


@pytest.mark.parametrize("name", ["deleteNote", "convert_time", "nothing"])
async def test_a_tool_the_caller_may_not_use_does_not_exist(name: str) -> None:
    gateway = gateway_for(
        NOTES, tools=({**CLOCK, "access": {"users": ["alice"], "tools": ["now"]}},)
    )
    with pytest.raises(ToolNotFound) as caught:
        await dry_run(gateway, ALICE, name, {})
    assert str(caught.value) == f"no tool named {name!r}"


async def test_a_server_without_a_base_url_says_so(tmp_path: Path) -> None:
    spec = tmp_path / "bare.yaml"
    spec.write_text(
        "openapi: 3.1.0\ninfo: {title: Bare, version: '1'}\n"
        "paths:\n  /ping:\n    get:\n      operationId: ping\n"
        "      responses: {'200': {description: Pong.}}\n"
    )
    gateway = gateway_for({"id": "bare", "spec": str(spec)})
    with pytest.raises(UpstreamUnavailable) as caught:
        await dry_run(gateway, ANONYMOUS_ADMIN, "ping", {})
    assert str(caught.value) == (
        "upstream 'bare': no base URL: set base_url in the config for this server "
        "(the document names no server)"
    )


async def test_a_destination_the_call_would_refuse_is_refused() -> None:
    gateway = gateway_for({**NOTES, "base_url": "http://0xa9fea9fe/latest"})
    with pytest.raises(DestinationRefused) as caught:
        await dry_run(gateway, ANONYMOUS_ADMIN, "listNotes", {})
    assert str(caught.value) == (
        "upstream 'notes': refused: http://169.254.169.254:80 is a link-local address (cloud "
        "metadata services live there); requests never go there"
    )


# -- --as USER -----------------------------------------------------------------------------------


def test_without_as_a_command_line_call_is_the_anonymous_admin() -> None:
    assert principal_for(Config.model_validate({"auth": AUTH}), None) is ANONYMOUS_ADMIN
    assert principal_for(Config(), None) is ANONYMOUS_ADMIN


def test_as_a_user_of_the_api_keys() -> None:
    config = Config.model_validate({"auth": AUTH})
    assert (principal_for(config, "alice"), principal_for(config, "ops")) == (
        Principal(id="alice", name="alice", groups=frozenset({"support"})),
        Principal(id="ops", name="ops", admin=True),
    )


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"auth": AUTH}, "--as bob: no such user in auth.api_keys (users: alice, ops)"),
        (
            {},
            "--as bob: the config has no auth.api_keys, so there are no users to act as "
            "(without `auth`, every caller is an anonymous admin)",
        ),
    ],
)
def test_as_an_unknown_user_names_the_users_there_are(config: dict[str, Any], message: str) -> None:
    with pytest.raises(ToolbridgeError) as caught:
        principal_for(Config.model_validate(config), "bob")
    assert str(caught.value) == message
