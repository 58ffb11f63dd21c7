"""The HTTP API in-process: the gateway's own OpenAPI document and one-turn tool calls.

The gateway reaches the demo notes service through httpx2's ASGI transport, so no socket is
opened; the end-to-end tests in tests/e2e cover the same API over real HTTP.
"""

from __future__ import annotations

import contextlib
import gzip
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx2
import pytest
from openapi_spec_validator import OpenAPIV31SpecValidator

from toolbridge.config import ApiKey, Auth, Config, Grant, Jwt, LocalTools, RateLimit, Server
from toolbridge.demo import DEMO_SPEC
from toolbridge.demo.service import create_demo_app
from toolbridge.gateway import Gateway
from toolbridge.serve.app import create_app
from toolbridge.upstream.clients import HttpxUpstream

pytestmark = pytest.mark.anyio

ALICE = {"Authorization": "Bearer alice-key-0123456789"}
BOB = {"Authorization": "Bearer bob-key-0123456789"}


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@contextlib.asynccontextmanager
async def served(config: Config) -> AsyncIterator[httpx2.AsyncClient]:
    """A client of the gateway for `config`, in-process; remote sources reach the demo notes
    service through httpx2's ASGI transport, so no socket is opened."""
    upstream = HttpxUpstream()
    upstream._client = httpx2.AsyncClient(transport=httpx2.ASGITransport(create_demo_app()))
    gateway = Gateway(config, upstream=upstream)
    gateway.load()
    app = create_app(gateway)
    async with (
        gateway,
        httpx2.AsyncClient(
            transport=httpx2.ASGITransport(app), base_url="http://localhost"
        ) as http,
    ):
        yield http


@pytest.fixture
async def client() -> AsyncIterator[httpx2.AsyncClient]:
    auth = Auth(
        api_keys=(
            ApiKey(user="alice", key="alice-key-0123456789"),
            ApiKey(user="bob", key="bob-key-0123456789"),
        )
    )
    server = Server(
        id="notes",
        spec=str(DEMO_SPEC),
        base_url="http://notes.test",
        access=(Grant(users=("alice",)), Grant(users=("bob",), methods=("GET",))),
    )
    config = Config(auth=auth, servers=(server,), base_dir=Path.cwd())
    async with served(config) as http:
        yield http


async def test_openapi_json_describes_the_callers_tools_and_validates(
    client: httpx2.AsyncClient,
) -> None:
    alice = (await client.get("/openapi.json", headers=ALICE)).json()
    bob = (await client.get("/openapi.json", headers=BOB)).json()
    OpenAPIV31SpecValidator(alice).validate()
    assert sorted(alice["paths"]) == sorted(
        f"/v1/tools/{name}/call"
        for name in ("listNotes", "createNote", "getNote", "deleteNote", "updateNote", "getStatus")
    )
    assert sorted(bob["paths"]) == [
        "/v1/tools/getNote/call",
        "/v1/tools/getStatus/call",
        "/v1/tools/listNotes/call",
    ]
    assert alice["paths"]["/v1/tools/getNote/call"]["post"]["operationId"] == "getNote"
    assert alice["servers"] == [{"url": "http://localhost"}]
    assert (await client.get("/openapi.json")).status_code == 401


async def test_tool_calls_of_one_turn_in_each_family(client: httpx2.AsyncClient) -> None:
    openai: dict[str, Any] = {
        "role": "assistant",
        "tool_calls": [
            {"id": "a", "type": "function", "function": {"name": "getStatus", "arguments": "{}"}},
            {"id": "b", "type": "function", "function": {"name": "nope", "arguments": "{}"}},
            {"id": "c", "type": "function", "function": {"name": "getNote", "arguments": "{x"}},
        ],
    }
    answer = (await client.post("/v1/tool_calls", json=openai, headers=BOB)).json()
    messages = answer["messages"]
    assert [(m["role"], m["tool_call_id"]) for m in messages] == [
        ("tool", "a"),
        ("tool", "b"),
        ("tool", "c"),
    ]
    assert '"status":"ok"' in messages[0]["content"]
    assert '"not_found"' in messages[1]["content"]
    assert '"ok":false' in messages[2]["content"]

    anthropic = [{"type": "tool_use", "id": "t1", "name": "deleteNote", "input": {"noteId": 1}}]
    answer = (await client.post("/v1/tool_calls", json=anthropic, headers=BOB)).json()
    (block,) = answer["messages"][0]["content"]
    assert (block["type"], block["tool_use_id"], block["is_error"]) == ("tool_result", "t1", True)

    responses = {"type": "function_call", "call_id": "r1", "name": "listNotes", "arguments": "{}"}
    answer = (await client.post("/v1/tool_calls", json=responses, headers=ALICE)).json()
    (item,) = answer["items"]
    assert (item["type"], item["call_id"]) == ("function_call_output", "r1")


async def test_tool_calls_refuse_what_is_not_a_turn(client: httpx2.AsyncClient) -> None:
    response = await client.post("/v1/tool_calls", json={"hello": 1}, headers=ALICE)
    assert (response.status_code, response.json()["error"]["type"]) == (400, "bad_request")
    response = await client.post("/v1/tool_calls", content=b"{not json", headers=ALICE)
    assert response.status_code == 400


def sse(text: str) -> list[tuple[str, Any]]:
    """The (event, data) pairs of a server-sent event stream."""
    events = []
    for block in text.strip().split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines())
        events.append((fields["event"], json.loads(fields["data"])))
    return events


async def test_a_call_streams_a_local_tools_events_then_its_result() -> None:
    """`Accept: text/event-stream`: what the tool emits as it runs, then the usual answer."""
    fixtures = Path(__file__).resolve().parents[1] / "fixtures" / "tools"
    entry = LocalTools(id="faults", path=str(fixtures / "faults.py"))
    config = Config(tools=(entry,), base_dir=Path.cwd())
    gateway = Gateway(config, upstream=HttpxUpstream())
    gateway.load()
    app = create_app(gateway)
    stream = {"Accept": "text/event-stream"}
    async with (
        gateway,
        httpx2.AsyncClient(
            transport=httpx2.ASGITransport(app), base_url="http://localhost"
        ) as http,
    ):
        response = await http.post("/v1/tools/report/call", json={}, headers=stream)
        missing = await http.post("/v1/tools/nope/call", json={}, headers=stream)
    assert response.headers["content-type"] == "text/event-stream"
    events = sse(response.text)
    assert [kind for kind, _ in events] == ["event", "event", "result"]
    assert events[0][1] == {"type": "message", "data": {"content": "half way"}}
    assert events[2][1]["ok"] is True
    assert missing.status_code == 404  # errors before the call starts are plain JSON answers


async def test_a_remote_call_streams_just_its_result(client: httpx2.AsyncClient) -> None:
    headers = {**ALICE, "Accept": "text/event-stream"}
    response = await client.post("/v1/tools/getStatus/call", json={}, headers=headers)
    ((kind, data),) = sse(response.text)
    assert (kind, data["ok"], data["result"]["status"]) == ("result", True, "ok")


async def test_over_the_rate_limit_is_429_with_retry_after() -> None:
    auth = Auth(
        api_keys=(ApiKey(user="alice", key="alice-key-0123456789"),),
        rate_limit=RateLimit(per_minute=6, burst=1),
    )
    server = Server(
        id="notes", spec=str(DEMO_SPEC), base_url="http://notes.test", access=Grant(users=("*",))
    )
    config = Config(auth=auth, servers=(server,), base_dir=Path.cwd())
    async with served(config) as http:
        first = await http.post("/v1/tools/getStatus/call", json={}, headers=ALICE)
        second = await http.post("/v1/tools/getStatus/call", json={}, headers=ALICE)
    assert first.status_code == 200
    assert (second.status_code, second.headers["retry-after"]) == (429, "10")
    assert second.json()["error"]["type"] == "rate_limited"


async def test_a_local_tool_is_described_with_its_frontmatter() -> None:
    clock = (
        Path(__file__).resolve().parents[2] / "src" / "toolbridge" / "demo" / "tools" / "clock.py"
    )
    config = Config(tools=(LocalTools(id="clock", path=str(clock)),), base_dir=Path.cwd())
    async with served(config) as http:
        source = (await http.get("/v1/tools/now")).json()["source"]
    assert (source["kind"], source["tool"], source["function"]) == (
        "python",
        "clock",
        "clock:Tools.now",
    )
    assert {k: source["frontmatter"][k] for k in ("title", "version")} == {
        "title": "Clock",
        "version": "1.0.0",
    }


async def test_user_valves_travel_in_a_header_and_are_validated() -> None:
    weather = Path(__file__).resolve().parents[1] / "fixtures" / "tools" / "weather.py"
    config = Config(tools=(LocalTools(id="weather", path=str(weather)),), base_dir=Path.cwd())
    async with served(config) as http:
        home = {"X-Toolbridge-User-Valves": '{"home": "Oslo"}'}
        oslo = await http.post("/v1/tools/get_weather/call", json={}, headers=home)
        bad = {"X-Toolbridge-User-Valves": '{"max_days": 0}'}
        refused = await http.post("/v1/tools/get_weather/call", json={}, headers=bad)
        typo = {"X-Toolbridge-User-Valves": '{"hom": "Oslo"}'}
        mistyped = await http.post("/v1/tools/get_weather/call", json={}, headers=typo)
    assert oslo.json()["result"].startswith("Oslo: sunny")
    assert refused.status_code == 422
    assert refused.json()["error"]["problems"][0]["path"] == "$.__user__.valves.max_days"
    # As PUT /v1/me/valves refuses it: a typo is no silent reset of the caller's valves.
    assert (mistyped.status_code, mistyped.json()["error"]["problems"]) == (
        422,
        [
            {
                "path": "$.__user__.valves.hom",
                "message": "not a field of its UserValves (it has: home, max_days)",
            }
        ],
    )


async def test_a_callers_token_handed_to_a_local_tool_never_comes_back(tmp_path: Path) -> None:
    """`__oauth_token__` is the caller's JWT: a tool answering it sent it back in clear (only
    a `forward` server's call, made earlier, taught the gateway to hide it)."""
    import time

    import jwt

    (tmp_path / "token.py").write_text(
        "class Tools:\n"
        "    def token(self, __oauth_token__: dict) -> str:\n"
        '        """The token."""\n'
        '        return "mine: " + __oauth_token__["access_token"]\n'
    )
    secret = "jwt-secret-0123456789-0123456789-01"
    config = Config(
        auth=Auth(jwt=Jwt(secret=secret)),
        tools=(
            LocalTools(
                id="token", path=str(tmp_path / "token.py"), access=(Grant(users=("dana",)),)
            ),
        ),
        base_dir=tmp_path,
    )
    token = jwt.encode({"sub": "dana", "exp": int(time.time()) + 60}, secret)
    async with served(config) as http:
        answer = await http.post(
            "/v1/tools/token/call", json={}, headers={"Authorization": f"Bearer {token}"}
        )
    assert answer.json()["result"] == "mine: [redacted]"


async def test_without_streaming_the_events_come_with_the_result() -> None:
    fixtures = Path(__file__).resolve().parents[1] / "fixtures" / "tools"
    config = Config(
        tools=(LocalTools(id="faults", path=str(fixtures / "faults.py")),), base_dir=Path.cwd()
    )
    async with served(config) as http:
        body = (await http.post("/v1/tools/report/call", json={})).json()
    assert body["ok"] is True
    assert body["events"][0] == {"type": "message", "data": {"content": "half way"}}
    assert len(body["events"]) == 2


@pytest.mark.parametrize(
    ("method", "path", "status", "error", "allow"),
    [
        (
            "GET",
            "/nope",
            404,
            {
                "type": "not_found",
                "message": "GET /nope: not found (the README lists the endpoints)",
            },
            None,
        ),
        (
            "DELETE",
            "/v1/tools",
            405,
            {"type": "method_not_allowed", "message": "DELETE /v1/tools: method not allowed"},
            "GET, HEAD",
        ),
        (  # a path two handlers share says both
            "GET",
            "/v1/admin/servers/x",
            405,
            {
                "type": "method_not_allowed",
                "message": "GET /v1/admin/servers/x: method not allowed",
            },
            "PUT, DELETE",
        ),
        (
            "PATCH",
            "/v1/me/credentials/x",
            405,
            {
                "type": "method_not_allowed",
                "message": "PATCH /v1/me/credentials/x: method not allowed",
            },
            "PUT, DELETE",
        ),
    ],
)
async def test_no_route_and_a_wrong_method_are_json_errors(
    client: httpx2.AsyncClient,
    method: str,
    path: str,
    status: int,
    error: dict[str, str],
    allow: str | None,
) -> None:
    response = await client.request(method, path, headers=ALICE)
    allowed = response.headers.get("allow")  # Starlette's order varies between runs
    assert (response.status_code, response.json(), allowed and set(allowed.split(", "))) == (
        status,
        {"error": error},
        allow and set(allow.split(", ")),
    )


async def test_a_trailing_slash_is_the_path_without_it_never_a_redirect(
    client: httpx2.AsyncClient,
) -> None:
    """The router answered `/v1/servers/` with a 307 built from the Host header, before any
    key was asked for: a redirect to whatever host the request named."""
    evil = {"Host": "attacker.example"}
    unauthenticated = await client.get("/v1/admin/servers/", headers=evil)
    listed = await client.get("/v1/tools/", headers=ALICE)
    unknown = await client.get("/nope//", headers=ALICE)
    assert (unauthenticated.status_code, "location" in unauthenticated.headers) == (401, False)
    assert (listed.status_code, listed.json()) == (
        200,
        (await client.get("/v1/tools", headers=ALICE)).json(),
    )
    assert (unknown.status_code, unknown.json()["error"]["type"]) == (404, "not_found")


@pytest.mark.parametrize(
    ("body", "headers", "status", "message"),
    [
        (
            b'{"a": "\xff"}',
            {},
            422,
            "the body is not UTF-8 (byte 7: b'\\xff'); expected JSON in UTF-8",
        ),
        (
            gzip.compress(b"{}"),
            {"Content-Encoding": "gzip"},
            422,
            "the body is gzip-encoded (Content-Encoding); expected plain JSON (request bodies "
            "are not decompressed)",
        ),
    ],
    ids=["not-utf-8", "gzip"],
)
async def test_a_body_that_is_no_json_text_says_what_it_is(
    client: httpx2.AsyncClient, body: bytes, headers: dict[str, str], status: int, message: str
) -> None:
    response = await client.post(
        "/v1/tools/getStatus/call", content=body, headers={**ALICE, **headers}
    )
    error = response.json()["error"]
    assert (response.status_code, error["problems"]) == (
        status,
        [{"path": "$", "message": message}],
    )


async def test_a_bug_of_ours_is_a_json_500_that_says_nothing_of_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Anywhere: the error body's shape, never the exception's own words (they may hold what
    they were given); the traceback goes to the log."""
    gateway = Gateway(Config(base_dir=Path.cwd()), upstream=HttpxUpstream())
    gateway.load()

    def broken(authorization: str | None) -> None:
        raise RuntimeError("a detail of ours: canary-detail-41c7")

    monkeypatch.setattr(gateway, "authenticate", broken)
    transport = httpx2.ASGITransport(create_app(gateway), raise_app_exceptions=False)
    async with (
        gateway,
        httpx2.AsyncClient(transport=transport, base_url="http://localhost") as http,
    ):
        answer = await http.get("/v1/servers")
    assert (answer.status_code, answer.json()) == (
        500,
        {
            "error": {
                "type": "internal",
                "message": "GET /v1/servers: the gateway failed; its log says why",
            }
        },
    )
